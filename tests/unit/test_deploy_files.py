"""docker-compose.yml and the Dockerfile describe a deployable system.

No Docker engine runs on the development machines, so these checks read the
files: every service has a health check and a known image or our build, the
project's services run commands the CLI has, and the Dockerfile copies folders
that exist. `docker-compose config -q` (see README) validates the schema.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from cli import COMMANDS

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
    copied = re.findall(r"^COPY (\S+) ", text, flags=re.M)
    assert copied
    for src in copied:
        assert (REPO / src).exists(), src
    assert 'ENTRYPOINT ["hotspot"]' in text
