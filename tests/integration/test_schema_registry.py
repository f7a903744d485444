"""Gateway -> real Kafka -> worker with a schema registry configured: the worker decodes every ping.

With `HOTSPOT_SCHEMA_REGISTRY_URL` set, the gateway writes the Confluent wire
format (`00` + schema id + body) and registers `Ping` under `pings-value`.
The worker once built its codec without the registry and rejected every such
ping as undecodable (issue 11); both now get theirs from `core.codecs.codec_for`.

The registry here is a stand-in: a small HTTP server answering the two calls
our codec makes of a Confluent-compatible registry (`POST
/subjects/{subject}/versions`, `GET /schemas/ids/{id}`), for this test only
(no registry can be run on this machine; docs/decisions.md). It counts the
calls, so the test also shows the worker resolved the id through it.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fastapi.testclient import TestClient

from core.settings import Settings
from gateway.credentials import CredentialStore, path_in
from gateway.main import create_app
from tests.conftest import free_port
from tests.integration.live import LiveSystem, wait_until


class _Registry(BaseHTTPRequestHandler):
    """The Confluent REST subset the codec uses; ids by canonical schema text, as a registry assigns them."""

    schemas: dict[int, str] = {}
    ids: dict[str, int] = {}
    calls: list[tuple[str, str]] = []

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.calls.append(("POST", self.path))
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._answer(404, {"error_code": 404, "message": "not found"})
        schema = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        key = json.dumps(json.loads(schema), sort_keys=True)
        if key not in self.ids:
            self.ids[key] = 100 + len(self.ids)   # not 1: an id the codec could only have from here
            self.schemas[self.ids[key]] = schema
        self._answer(200, {"id": self.ids[key]})

    def do_GET(self):  # noqa: N802
        self.calls.append(("GET", self.path))
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit() and int(parts[2]) in self.schemas:
            return self._answer(200, {"schema": self.schemas[int(parts[2])]})
        self._answer(404, {"error_code": 40403, "message": "Schema not found"})

    def log_message(self, *args):  # keep the test output quiet
        pass


def _track(count: int) -> list[dict]:
    """A walk of `count` fixes ten seconds apart that ended a minute ago: fresh, plausible, in order."""
    end_ms = int(time.time() * 1000) - 60_000
    return [{"ts_ms": end_ms - 10_000 * (count - 1 - k), "lat": 51.5 + 0.0001 * k, "lon": -0.1, "accuracy_m": 8.0,
             "speed_mps": 1.2} for k in range(count)]


def test_the_worker_decodes_every_ping_the_gateway_wrote_through_a_schema_registry(make_broker, tmp_path):
    registry = ThreadingHTTPServer(("127.0.0.1", free_port()), _Registry)
    threading.Thread(target=registry.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{registry.server_address[1]}"
    live = None
    try:
        broker = make_broker()
        broker.start()
        live = LiveSystem(tmp_path / "var", broker, extra_env={"HOTSPOT_SCHEMA_REGISTRY_URL": url})
        live.start_worker()

        settings = Settings(kafka_bootstrap=broker.bootstrap, data_dir=tmp_path / "gw", schema_registry_url=url)
        store = CredentialStore(path_in(settings.data_dir), refresh_s=0)
        device, secret = store.add("pc-registry", "device")
        pings = _track(40)
        with TestClient(create_app(settings, credentials=store)) as client:
            for i in range(0, len(pings), 10):   # several requests, so several batches for the worker
                r = client.post("/v1/pings", headers={"Authorization": f"Bearer {secret}"}, json=pings[i:i + 10])
                assert r.status_code == 202 and r.json()["accepted"] == 10, r.text
        assert ("POST", "/subjects/pings-value/versions") in _Registry.calls  # the gateway wrote Confluent framing

        def accounted() -> int:
            try:
                return int(live.scalar("SELECT (SELECT count() FROM hotspot.pings FINAL WHERE device_id = 'pc-registry') "
                                       "+ (SELECT count() FROM hotspot.pings_rejected FINAL)"))
            except AssertionError:
                return -1

        wait_until(lambda: accounted() >= len(pings), 180, "the worker to store or reject every ping")
        rejected = live.sql("SELECT reason, count() AS n FROM hotspot.pings_rejected FINAL GROUP BY reason")
        assert rejected == [], f"the worker rejected pings it should have decoded: {rejected}"
        assert int(live.scalar("SELECT count() FROM hotspot.pings FINAL WHERE device_id = 'pc-registry'")) == len(pings)
        got = live.sql("SELECT toUnixTimestamp64Milli(ts) AS ts_ms, lat FROM hotspot.pings FINAL "
                       "WHERE device_id = 'pc-registry' ORDER BY ts")
        assert [(int(r["ts_ms"]), float(r["lat"])) for r in got] == \
            [(p["ts_ms"], p["lat"]) for p in pings]
        # The worker found the gateway's schema id through the registry, not in its own files.
        assert any(m == "GET" and p.startswith("/schemas/ids/") for m, p in _Registry.calls)
    finally:
        if live is not None:
            live.stop_worker()
        registry.shutdown()
