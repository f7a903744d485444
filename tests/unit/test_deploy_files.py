"""docker-compose.yml and the Dockerfile describe a deployable system.

No Docker engine runs on the development machines, so these checks read the
files: the compose file validates against the Compose specification's JSON
schema (as shipped by check-jsonschema, a test dependency `make setup`
installs; `docker compose config -q` checks the same schema and more, see
docs/deploy.md), every service has a health check and a known image or our
build, the health checks poll ports and routes our processes really serve, the
project's services run commands the CLI has, and the Dockerfile copies folders
that exist and gives its user the data volume.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from cli import COMMANDS
from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_has_kafka_kraft_clickhouse_worker_and_gateway_with_health_checks():
    services = compose()["services"]
    assert set(services) >= {"kafka", "clickhouse", "worker", "gateway"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name, svc in services.items():
        assert "healthcheck" in svc, name
        assert svc.get("volumes"), f"{name} keeps its data in a volume"


def test_project_services_are_built_here_and_run_real_cli_commands():
    services = compose()["services"]
    for name in ("worker", "gateway"):
        svc = services[name]
        assert svc["build"] == "."
        assert svc["command"][0] in COMMANDS
        assert svc["environment"]["HOTSPOT_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert svc["environment"]["HOTSPOT_CLICKHOUSE_DSN"].startswith("http://")
        assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_dockerfile_copies_folders_that_exist_and_runs_the_cli():
    text = (REPO / "Dockerfile").read_text()
    copied = [src for line in re.findall(r"^COPY (.+)$", text, flags=re.M) if not line.startswith("--from=")
              for src in line.split()[:-1]]
    assert copied
    for src in copied:
        assert (REPO / src).exists(), src
    assert 'ENTRYPOINT ["hotspot"]' in text
    # every package pyproject installs, and the pages the gateway serves from web/ beside them
    packages = re.search(r'^include = \[(.*)\]$', (REPO / "pyproject.toml").read_text(), flags=re.M).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert package in copied, package
    assert "web/app" in copied and "web/control" in copied


def test_the_image_user_owns_the_data_volume_and_the_api_docs_assets_are_installed():
    text = (REPO / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", text, flags=re.M)[-1]
    volume = json.loads(re.search(r"^VOLUME (.+)$", text, flags=re.M).group(1))
    assert volume == ["/data"] and "HOTSPOT_DATA_DIR=/data" in text
    # the folder exists in the image, owned by the user and private to it, before VOLUME copies it to a new volume
    setup = re.search(r"^RUN mkdir -p /data && chown (\S+):\S+ /data && chmod 0700 /data$", text, flags=re.M)
    assert setup and setup.group(1) == user
    assert text.index(setup.group(0)) < text.index("USER ") < text.index("VOLUME ")
    # Swagger UI and ReDoc from the lock file, where HOTSPOT_WEB_ASSETS_DIR says
    assert "COPY web/package.json web/package-lock.json ./" in text and "RUN npm ci " in text
    dest = re.search(r"^COPY --from=web /web/node_modules (\S+)$", text, flags=re.M).group(1)
    assert f"HOTSPOT_WEB_ASSETS_DIR=/app/{dest}" in text and re.search(r"^WORKDIR /app$", text, flags=re.M)


def check_compose_schema(path: Path) -> subprocess.CompletedProcess:
    tool = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_compose_file_validates_against_the_compose_specification(tmp_path):
    ok = check_compose_schema(REPO / "docker-compose.yml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "docker-compose.yml"  # the validator does catch a misspelt key
    broken.write_text((REPO / "docker-compose.yml").read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    assert check_compose_schema(broken).returncode != 0


def test_compose_references_services_volumes_and_files_that_exist():
    doc = compose()
    services, volumes = doc["services"], set(doc["volumes"])
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), (name, source)
            else:
                assert source in volumes, (name, source)
    assert {"prometheus", "grafana"} <= set(services)


def health_url(service: str) -> str:
    test = compose()["services"][service]["healthcheck"]["test"]
    found = re.findall(r"https?://[^'\" ]+", " ".join(test))
    assert len(found) == 1, test
    return found[0]


def test_health_checks_poll_ports_and_routes_that_exist(tmp_path):
    defaults = Settings.model_construct()
    services = compose()["services"]

    gateway = urlsplit(health_url("gateway"))
    assert gateway.port == int(services["gateway"]["environment"]["HOTSPOT_HTTP_PORT"]) == defaults.http_port
    from gateway.main import create_app

    app = create_app(Settings(data_dir=tmp_path))
    assert gateway.path in {getattr(r, "path", None) for r in app.routes}

    worker = urlsplit(health_url("worker"))
    assert worker.port == int(services["worker"]["environment"]["HOTSPOT_WORKER_METRICS_PORT"]) == defaults.worker_metrics_port
    from sinks.health import serve_metrics_and_health

    server = serve_metrics_and_health(0)  # what `hotspot worker` serves on its metrics port
    try:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{worker.path}", timeout=10) as r:
                status, body = r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 503 until a store is open in this process
            status, body = exc.code, json.loads(exc.read())
        assert status in (200, 503) and body["status"] in ("ok", "starting", "unavailable")
    finally:
        server.close()

    for service, port in (("clickhouse", 8123), ("prometheus", 9090), ("grafana", 3000)):
        assert urlsplit(health_url(service)).port == port, service
