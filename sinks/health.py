"""The worker's `/healthz`, served beside `/metrics` on the worker's metrics port.

A worker has no web app of its own (Faust's is off), so the HTTP server that
exports its Prometheus metrics also answers the health checks of Docker,
Kubernetes or a load balancer. Health is read from the same registry a scrape
reads, so the check and the dashboards never disagree: `sink_healthy{sink=…}`
is 1 once the worker's ClickHouse writer exists (the store answered and its
migrations ran) and while its writes succeed, 0 while it waits for ClickHouse
at start or retries refused inserts (pings then wait in Kafka, nothing is
lost). `/healthz` answers 200 `{"status": "ok", …}` in the first case and 503
with the reason otherwise; every other path is the metrics exposition, as
before.
"""
from __future__ import annotations

import json
import socket
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from sinks.metrics import MetricsServer

HEALTH_PATH = "/healthz"


def worker_health(registry: CollectorRegistry = REGISTRY) -> tuple[int, dict]:
    """(HTTP status, body) of the worker's health, from the sinks' `sink_healthy` gauges in `registry`."""
    sinks: dict[str, bool] = {}
    for family in registry.collect():
        if family.name == "sink_healthy":
            for sample in family.samples:
                sinks[sample.labels["sink"]] = sample.value == 1
    if not sinks:
        return 503, {"status": "starting", "reason": "the ClickHouse store is not open yet (waiting for it, "
                                                    "or applying migrations)", "sinks": {}}
    failing = sorted(name for name, ok in sinks.items() if not ok)
    if failing:
        return 503, {"status": "unavailable", "reason": f"ClickHouse writes are failing for {', '.join(failing)}; "
                                                        "pings wait in Kafka until they succeed", "sinks": sinks}
    return 200, {"status": "ok", "sinks": sinks}


def metrics_and_health_app(registry: CollectorRegistry = REGISTRY):
    """A WSGI app: `/healthz` as above, anything else the metrics exposition."""
    metrics_app = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == HEALTH_PATH:
            status, body = worker_health(registry)
            reason = "OK" if status == 200 else "Service Unavailable"
            start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps(body).encode()]
        return metrics_app(environ, start_response)

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung scrape never keeps the worker from exiting


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # a probe every few seconds is not worth a log line
        pass


def serve_metrics_and_health(port: int, host: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY) -> MetricsServer:
    """Serve /metrics and /healthz on host:port from a daemon thread; port 0 picks a free port (see .port).

    Raises OSError (EADDRINUSE) when the port is taken, like sinks.metrics.serve_metrics.
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_cls = type("_FamilyServer", (_Server,), {"address_family": family})
    server = make_server(host, port, metrics_and_health_app(registry), server_cls, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
