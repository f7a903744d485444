"""infra/: Prometheus scrapes what the processes serve, Grafana shows metrics that exist.

The dashboards' JSON parses, their data sources are the provisioned ones, and
every metric name in every PromQL expression is one the project's
prometheus_client objects export (with the suffixes the client adds: a Counter
`pings_in` is scraped as `pings_in_total`, a Histogram as `_bucket`, `_sum`,
`_count`). The Prometheus jobs name the ports and paths the worker and the
gateway really serve. The ClickHouse panels' SQL runs in
tests/integration/test_grafana_dashboards.py.
"""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import yaml

import gateway.metrics  # noqa: F401  (registers the gateway's metrics)
import sinks.metrics  # noqa: F401  (registers the worker's and sinks' metrics)
from prometheus_client import REGISTRY
from core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
DASHBOARDS = sorted((INFRA / "grafana" / "dashboards").glob("*.json"))
PROMQL_FUNCTIONS_AND_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without", "on",
    "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "topk", "bottomk", "abs",
    "clamp_min", "clamp_max", "delta", "deriv", "time", "vector", "scalar", "label_replace", "sort", "sort_desc",
}
BUILT_IN_SERIES = {"up"}  # made by Prometheus itself for every target


def exported_names() -> set[str]:
    """Every sample name the default registry can expose, children or not."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",)}
    names = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def promql_metric_names(expr: str) -> set[str]:
    """Metric names of a PromQL expression: identifiers left once strings, label matchers, ranges,
    grouping clauses, dashboard variables and function calls are taken out."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    idents = re.findall(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", e)
    return {i for i in idents if i not in PROMQL_FUNCTIONS_AND_WORDS}


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def provisioned_datasources() -> dict[str, str]:
    doc = yaml.safe_load((INFRA / "grafana" / "provisioning" / "datasources" / "hotspot.yml").read_text())
    return {d["uid"]: d["type"] for d in doc["datasources"]}


def test_promql_names_are_parsed_out_of_expressions():
    expr = 'histogram_quantile(0.99, sum by (le, sink) (rate(sink_flush_seconds_bucket{sink="worker"}[$__rate_interval])))'
    assert promql_metric_names(expr) == {"sink_flush_seconds_bucket"}
    assert promql_metric_names("sum(rate(a_total[5m])) / sum(rate(b_count[5m]))") == {"a_total", "b_count"}


def test_two_dashboards_parse_with_unique_ids_and_use_provisioned_data_sources():
    boards = dashboards()
    assert set(boards) == {"patrol-dosage.json", "pipeline-health.json"}
    sources = provisioned_datasources()
    assert sources == {"hotspot-clickhouse": "grafana-clickhouse-datasource", "hotspot-prometheus": "prometheus"}
    assert len({b["uid"] for b in boards.values()}) == 2
    for name, board in boards.items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                ds = target.get("datasource") or panel["datasource"]
                assert sources[ds["uid"]] == ds["type"], (name, panel["title"])
    kinds = {t["datasource"]["uid"] for p in boards["patrol-dosage.json"]["panels"] for t in p["targets"]}
    assert kinds == {"hotspot-clickhouse"}


def test_every_promql_metric_name_is_one_our_processes_export():
    exported = exported_names() | BUILT_IN_SERIES
    used = set()
    for name, board in dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                if "expr" in target:
                    names = promql_metric_names(target["expr"])
                    assert names, (panel["title"], target["expr"])
                    assert names <= exported, (name, panel["title"], names - exported)
                    used |= names
    # the pipeline-health panels the issue asks for
    for wanted in ("pings_in_total", "gateway_pings_accepted_total", "consumer_lag", "pings_rejected_total",
                   "sink_flush_seconds_bucket", "sink_failures_total", "ping_to_event_seconds_bucket"):
        assert wanted in used, wanted


def prometheus_jobs() -> dict[str, dict]:
    doc = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in doc["scrape_configs"]}


def compose_env(service: str) -> dict:
    svc = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][service]
    return svc.get("environment") or {}


def test_prometheus_scrapes_the_ports_and_path_the_worker_and_gateway_serve(tmp_path):
    jobs = prometheus_jobs()
    defaults = Settings.model_construct()
    worker, gateway = jobs["hotspot-worker"], jobs["hotspot-gateway"]
    assert worker["metrics_path"] == gateway["metrics_path"] == "/metrics"
    assert worker["dns_sd_configs"][0]["names"] == ["worker"] and gateway["dns_sd_configs"][0]["names"] == ["gateway"]
    assert worker["dns_sd_configs"][0]["port"] == int(compose_env("worker").get("HOTSPOT_WORKER_METRICS_PORT",
                                                                               defaults.worker_metrics_port))
    assert gateway["dns_sd_configs"][0]["port"] == int(compose_env("gateway").get("HOTSPOT_HTTP_PORT", defaults.http_port))
    # the worker binds its metrics port on HOTSPOT_HTTP_HOST: reachable from Prometheus's container
    assert compose_env("worker")["HOTSPOT_HTTP_HOST"] == "0.0.0.0"

    from gateway.main import create_app

    app = create_app(Settings(data_dir=tmp_path))
    assert "/metrics" in {getattr(r, "path", None) for r in app.routes}

    from sinks.health import serve_metrics_and_health

    server = serve_metrics_and_health(0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{worker['metrics_path']}", timeout=10) as r:
            assert r.status == 200 and "# TYPE pings_in_total counter" in r.read().decode()
    finally:
        server.close()


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_services():
    provider = yaml.safe_load((INFRA / "grafana" / "provisioning" / "dashboards" / "hotspot.yml").read_text())["providers"][0]
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    assert mounts[provider["options"]["path"]] == "./infra/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./infra/grafana/provisioning"
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    doc = yaml.safe_load((INFRA / "grafana" / "provisioning" / "datasources" / "hotspot.yml").read_text())
    ch = next(d for d in doc["datasources"] if d["type"] == "grafana-clickhouse-datasource")
    assert (ch["jsonData"]["host"], ch["jsonData"]["port"], ch["jsonData"]["defaultDatabase"]) == ("clickhouse", 8123, "hotspot")
    assert ch["jsonData"]["username"] == "hotspot_reader"  # read-only: a dashboard query can never write
    prom = next(d for d in doc["datasources"] if d["type"] == "prometheus")
    assert prom["url"] == "http://prometheus:9090"
