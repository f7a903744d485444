"""The control room's routes in the production app (gateway/live.py): roles, the stream, resume, audit.

The app runs under uvicorn on a loopback port (an endless event stream needs a real server; the
TestClient waits for a body's end) with a producer that keeps what it is given (no broker). Its live hub
is fed inside the server's loop through a test-only route, as its Kafka follower would feed it.
"""
from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest
import uvicorn
from fastapi import APIRouter
from fastapi.responses import Response

from tests.conftest import free_port, wait_until
from tests.unit.test_sessions import audits, make_env


@pytest.fixture
def env(tmp_path):
    app, store, producer, secrets_ = make_env(tmp_path)
    hub = app.state.live_hub
    probe = APIRouter()

    @probe.post("/test/feed")
    async def feed_hub(n: int = 1) -> Response:
        for _ in range(n):  # a new device each time: positions of one device are throttled
            hub.on_ping({"device_id": f"sim-{len(hub.officers)}", "ts_ms": now_ms(), "lat": 51.5, "lon": -0.1,
                         "received_ms": now_ms()}, now_ms())
        hub.flush()
        return Response(status_code=204)

    @probe.post("/test/hotspot")
    async def add_hotspot() -> Response:
        hub.on_hotspot("H1", {"id": "H1", "name": "Market", "briefing": "why", "target_minutes": 15.0,
                              "geometry_geojson": "{}"}, now_ms())
        return Response(status_code=204)

    app.include_router(probe)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 60, "the gateway to listen")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield type("Env", (), dict(client=client, app=app, producer=producer, secrets=secrets_, hub=hub))
    server.should_exit = True
    thread.join(timeout=30)


def sign_in(client, name, secret):
    return client.post("/v1/session", json={"name": name, "secret": secret})


def now_ms() -> int:
    return int(time.time() * 1000)


def feed(env, n: int = 3) -> None:
    assert env.client.post("/test/feed", params={"n": n}).status_code == 204


def read_events(client, headers=None, params=None, count: int = 1) -> list[tuple[str, str, dict]]:
    """The first `count` events (id, event, data) of one connection to /v1/live."""
    out = []
    with client.stream("GET", "/v1/live", headers=headers or {}, params=params or {}) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        block: dict = {}
        for line in r.iter_lines():
            if not line:
                if "event" in block:
                    out.append((block["id"], block["event"], orjson.loads(block["data"])))
                    if len(out) == count:
                        return out
                block = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                block[key] = value
    return out


def test_control_page_sends_strangers_to_sign_in_refuses_officers_and_serves_supervisors(env):
    r = env.client.get("/control", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/control/signin"
    assert env.client.get("/control/signin").status_code == 200
    sign_in(env.client, "officer1", env.secrets["officer1"])
    assert env.client.get("/control").status_code == 403
    assert env.client.get("/v1/live").status_code == 403
    env.client.cookies.clear()
    sign_in(env.client, "sgt1", env.secrets["sgt1"])
    r = env.client.get("/control")
    assert r.status_code == 200 and "/control/assets/leaflet.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]  # nothing from a CDN


def test_live_snapshot_then_resume_by_last_event_id_with_every_view_audited(env):
    assert env.client.get("/v1/live").status_code == 401
    sign_in(env.client, "sgt1", env.secrets["sgt1"])
    feed(env, 2)
    (snap_id, kind, snap), = read_events(env.client)
    assert kind == "snapshot" and sorted(o["device_id"] for o in snap["officers"]) == ["sim-0", "sim-1"]
    feed(env, 3)  # three more positions while the client is away
    resumed = read_events(env.client, headers={"Last-Event-ID": snap_id}, count=3)
    instance, seq = snap_id.rsplit(".", 1)
    assert [e[0] for e in resumed] == [f"{instance}.{int(seq) + i}" for i in (1, 2, 3)]
    assert all(e[1] == "position" for e in resumed)
    # the page's own reconnect passes the id as a query parameter
    again = read_events(env.client, params={"last_event_id": resumed[0][0]}, count=2)
    assert [e[0] for e in again] == [e[0] for e in resumed[1:]]
    # an id from another instance: a snapshot again
    assert read_events(env.client, headers={"Last-Event-ID": "other.5"})[0][1] == "snapshot"
    views = [a for a in audits(env.producer) if a["action"] == "live_view"]
    assert len(views) == 4 and {v["user"] for v in views} == {"sgt1"}
    assert [orjson.loads(v["detail_json"])["resumed"] for v in views] == [False, True, True, False]


def test_live_view_is_refused_when_it_cannot_be_audited(env):
    sign_in(env.client, "sgt1", env.secrets["sgt1"])
    env.producer.down = True
    r = env.client.get("/v1/live")
    assert r.status_code == 503 and r.json()["error"] == "audit_unavailable"


def test_hotspot_detail_and_officer_detail(env):
    sign_in(env.client, "sgt1", env.secrets["sgt1"])
    env.client.post("/test/hotspot")
    r = env.client.get("/v1/live/hotspots/H1")
    assert r.status_code == 200 and r.json()["briefing"] == "why" and r.json()["visits"] == []
    assert env.client.get("/v1/live/hotspots/nope").status_code == 404
    assert env.client.get("/v1/live/officers/sim-9").status_code == 404  # not on duty: nothing to see
    feed(env, 1)
    r = env.client.get("/v1/live/officers/sim-0")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["officer"]["device_id"] == "sim-0" and isinstance(body["path"], list)
    views = [a for a in audits(env.producer) if a["action"] == "path_view"]
    assert [(v["user"], v["subject"]) for v in views] == [("sgt1", "sim-0")]
