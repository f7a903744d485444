"""The pipeline's Prometheus metrics: names, labels, buckets, and both ways of serving /metrics."""
from __future__ import annotations

import asyncio
import re
import urllib.request

import httpx
from prometheus_client import REGISTRY

from sinks import metrics

EXPECTED = {
    "pings_in_total": "counter",
    "pings_rejected_total": "counter",
    "events_total": "counter",
    "batch_size": "histogram",
    "sink_flush_seconds": "histogram",
    "sink_failures_total": "counter",
    "sink_pending_rows": "gauge",
    "consumer_lag": "gauge",
    "ping_to_event_seconds": "histogram",
    "devices_inside_hotspots": "gauge",
}


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def types_in(text: str) -> dict[str, str]:
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M))


def test_every_metric_the_dashboards_use_is_exported_with_its_type():
    metrics.PINGS_REJECTED.labels("out_of_range")
    metrics.EVENTS.labels("visit_started")
    metrics.BATCH_SIZE.labels("worker")
    metrics.SINK_FLUSH_SECONDS.labels("clickhouse")
    metrics.SINK_FAILURES.labels("clickhouse", "visits")
    metrics.SINK_PENDING_ROWS.labels("clickhouse")
    metrics.CONSUMER_LAG.labels("pings", "0")
    types = types_in(metrics.metrics_text())
    assert {n: types.get(n) for n in EXPECTED} == EXPECTED


def test_labelled_counters_count_per_label():
    before_range = value("pings_rejected_total", reason="out_of_range")
    before_future = value("pings_rejected_total", reason="future_ts")
    before_in = value("pings_in_total")
    metrics.PINGS_IN.inc(5)
    metrics.PINGS_REJECTED.labels("out_of_range").inc(2)
    metrics.EVENTS.labels("stop_ended").inc()
    assert value("pings_in_total") - before_in == 5
    assert value("pings_rejected_total", reason="out_of_range") - before_range == 2
    assert value("pings_rejected_total", reason="future_ts") - before_future == 0
    metrics.CONSUMER_LAG.labels("pings", "3").set(1234)
    metrics.DEVICES_INSIDE_HOTSPOTS.set(7)
    assert value("consumer_lag", topic="pings", partition="3") == 1234
    assert value("devices_inside_hotspots") == 7


def test_ping_to_event_buckets_resolve_10ms_to_10s_and_the_2s_target():
    text = metrics.metrics_text()
    bounds = [float(b) for b in re.findall(r'^ping_to_event_seconds_bucket\{le="([^"]+)"\}', text, flags=re.M) if b != "+Inf"]
    assert bounds[0] == 0.01 and bounds[-1] == 10.0 and 2.0 in bounds
    assert len([b for b in bounds if b <= 2.0]) >= 8  # fine resolution under the p99 target
    before = value("ping_to_event_seconds_bucket", le="0.2")
    before_count = value("ping_to_event_seconds_count")
    metrics.PING_TO_EVENT_SECONDS.observe(0.15)
    metrics.PING_TO_EVENT_SECONDS.observe(4.0)
    assert value("ping_to_event_seconds_bucket", le="0.2") - before == 1
    assert value("ping_to_event_seconds_count") - before_count == 2


def test_metrics_are_served_on_their_own_port():
    server = metrics.serve_metrics(0)
    try:
        metrics.EVENTS.labels("visit_ended").inc()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            body = r.read().decode()
        assert r.status == 200
        assert re.search(r'^events_total\{type="visit_ended"\} [1-9]', body, flags=re.M)
    finally:
        server.close()


def test_the_asgi_app_serves_the_same_registry_for_the_gateway_to_mount():
    async def scrape() -> httpx.Response:
        transport = httpx.ASGITransport(app=metrics.metrics_asgi_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get("/")

    metrics.SINK_PENDING_ROWS.labels("asgi-test").set(42)
    response = asyncio.run(scrape())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'sink_pending_rows{sink="asgi-test"} 42.0' in response.text
