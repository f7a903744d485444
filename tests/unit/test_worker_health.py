"""The worker's /healthz, served beside /metrics on its metrics port (sinks/health.py)."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Counter, Gauge

from sinks.health import serve_metrics_and_health


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_healthz_follows_the_sinks_and_metrics_stay_on_every_other_path():
    registry = CollectorRegistry()
    healthy = Gauge("sink_healthy", "test", ["sink"], registry=registry)
    Counter("pings_in", "test", registry=registry).inc(3)
    server = serve_metrics_and_health(0, registry=registry)
    base = f"http://127.0.0.1:{server.port}"
    try:
        status, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["status"] == "starting"  # no writer yet: store not open

        healthy.labels("worker").set(1)
        status, body = get(base + "/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok", "sinks": {"worker": True}}

        healthy.labels("worker").set(0)  # ClickHouse refusing inserts: pings wait in Kafka
        status, body = get(base + "/healthz")
        assert status == 503
        assert json.loads(body)["status"] == "unavailable" and "worker" in json.loads(body)["reason"]

        status, body = get(base + "/metrics")
        assert status == 200 and b"pings_in_total 3.0" in body
    finally:
        server.close()
