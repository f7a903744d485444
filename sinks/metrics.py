"""Prometheus metrics of the worker and the sinks, defined once per process.

Every metric the pipeline exports lives here, in the default registry, so a
scrape of any process shows the same names: the worker increments them, the
ClickHouse writer keeps the sink ones current, and `/metrics` is served either
by `serve_metrics(port)` (a worker on its own) or by mounting
`metrics_asgi_app()` in the gateway's FastAPI app (`hotspot run`, where both
share a process and so one registry). The gateway's own metrics
(gateway/metrics.py) carry a `gateway_` prefix and sit in the same registry.

Counters are declared without the `_total` suffix; prometheus-client adds it
on exposition (`pings_in` is scraped as `pings_in_total`).
"""
from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest, make_asgi_app, start_http_server
from prometheus_client.registry import CollectorRegistry

# Ping-to-event latency: the target is p99 <= 2 s at 5,000 pings/s (DESIGN §5),
# so buckets are dense around 0.1-2 s and reach 10 s for outages and catch-up.
PING_TO_EVENT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
# One flush is one insert per table; chDB writes 100k rows in ~30 ms, a server
# over the network takes longer, and a flush that waits out an outage longer still.
FLUSH_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000)

PINGS_IN = Counter("pings_in", "Pings consumed by the worker from the pings topic")
PINGS_REJECTED = Counter("pings_rejected", "Pings not used, by reason code (validation, decoding, lateness)", ["reason"])
EVENTS = Counter("events", "Patrol events emitted, by type (visit_started, visit_ended, stop_started, ...)", ["type"])
BATCH_SIZE = Histogram("batch_size", "Items per batch: stage=worker for a micro-batch of pings, stage=sink for rows per flush",
                       ["stage"], buckets=BATCH_SIZE_BUCKETS)
SINK_FLUSH_SECONDS = Histogram("sink_flush_seconds", "Wall time of a sink flush until its rows were durable, retries included",
                               ["sink"], buckets=FLUSH_BUCKETS_S)
SINK_FAILURES = Counter("sink_failures", "Failed insert attempts (each retry counts)", ["sink", "table"])
SINK_PENDING_ROWS = Gauge("sink_pending_rows", "Rows accepted by a sink and not yet durably written", ["sink"])
SINK_HEALTHY = Gauge("sink_healthy", "1 when the sink's last write succeeded, 0 while it is retrying or refused", ["sink"])
SINK_ROWS_WRITTEN = Counter("sink_rows_written", "Rows durably written", ["sink", "table"])
CONSUMER_LAG = Gauge("consumer_lag", "Messages between the worker's position and the end of the partition", ["topic", "partition"])
PING_TO_EVENT_SECONDS = Histogram("ping_to_event_seconds", "From a ping's arrival at the gateway to the event it caused being written",
                                  buckets=PING_TO_EVENT_BUCKETS_S)
DEVICES_INSIDE_HOTSPOTS = Gauge("devices_inside_hotspots", "Devices with an open visit right now")


def metrics_asgi_app(registry: CollectorRegistry = REGISTRY):
    """An ASGI app answering any GET with the exposition text; mount it at /metrics."""
    return make_asgi_app(registry)


def metrics_text(registry: CollectorRegistry = REGISTRY) -> str:
    """The current exposition text (what a scrape would return)."""
    return generate_latest(registry).decode()


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve /metrics on host:port from a daemon thread; port 0 picks a free port (see .port)."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server, thread)
