"""The officer routes (issue 14) on the production app, Kafka replaced by a producer that keeps what it gets.

Hot spots, the trial schedule and today's dosage are given to the app's
OfficerService directly, as its feeds and ClickHouse snapshot would.
"""
from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient

from gateway.config import GatewayConfig
from gateway.credentials import CredentialStore
from gateway.dosage import snapshot_from_rows
from gateway.main import create_app
from schemas.codec import Codec
from streams.settings import Settings
from tests.unit.test_gateway_api import PING, KeepingProducer

LAT, LON = 51.5000, -0.1000


def square(lat, lon, half_deg=0.0005):
    ring = [[lon - half_deg, lat - half_deg], [lon + half_deg, lat - half_deg], [lon + half_deg, lat + half_deg],
            [lon - half_deg, lat + half_deg], [lon - half_deg, lat - half_deg]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def hotspot(i: int, dlat: float, target=15.0) -> dict:
    return {"id": f"HS-{i:02d}", "name": f"Hot spot {i}", "briefing": f"Robbery at night {i}\nSecond line",
            "geometry_geojson": square(LAT + dlat, LON), "buffer_m": None, "target_minutes": target,
            "active_from_ms": None, "active_to_ms": None, "stats_json": None, "published_ms": 1}


def schedule(arms: dict[str, str]) -> dict[str, dict]:
    now = int(time.time() * 1000)
    return {f"t/{h}": {"trial_id": "t", "hotspot_id": h, "day": "2030-01-01", "starts_ms": now - 3_600_000,
                       "ends_ms": now + 3_600_000, "arm": arm, "block": "", "design": "crossover", "seed": 1}
            for h, arm in arms.items()}


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_dir=tmp_path, environment="development", session_refresh_s=0.0, directions_daily_cap=1000,
                        dosage_cache_s=0)
    config = GatewayConfig(data_dir=tmp_path, ack_timeout_s=2.0, credentials_refresh_s=0)
    store = CredentialStore(config.credentials_path, refresh_s=0)
    producer = KeepingProducer()
    app = create_app(settings, config=config, producer=producer, credentials=store)
    secrets_ = {n: store.add(n, "user", r)[1] for n, r in (("officer1", "officer"), ("sgt1", "supervisor"),
                                                           ("ana1", "analyst"))}
    service = app.state.gateway.officer
    # 10 hot spots 0-1 km north of the officer (0.001 deg ~ 111 m)
    service.set_hotspots([hotspot(i, i * 0.001) for i in range(10)])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield type("Env", (), dict(client=client, app=app, producer=producer, store=store, secrets=secrets_,
                                   service=service))


def sign_in(env, name="officer1") -> dict:
    r = env.client.post("/v1/session", json={"name": name, "secret": env.secrets[name]})
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf_token"]}


def sent(env, topic, schema):
    codec = Codec(schema)
    return [codec.decode(v) for t, _, v in env.producer.sent if t == topic]


def test_directions_answer_the_contract_and_record_the_draw(env):
    h = sign_in(env)
    r = env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body["hotspot"]) == {"id", "name", "briefing", "why", "target_minutes"}
    assert body["geo_uri"].startswith("geo:") and body["map_url"].startswith("https://")
    assert body["hotspot"]["id"] in body["eligible"] and len(body["eligible"]) == len(body["weights"]) == 10
    assert body["dosage_known"] is False  # no ClickHouse in this test: said, and need is the full target
    (rec,) = sent(env, "assignments", "Assignment")
    assert rec["assignment_id"] == body["assignment_id"] and rec["user"] == "officer1"
    assert rec["device_id"] == "app-officer1" and rec["seed"] == body["seed"]
    assert rec["eligible"] == body["eligible"] and rec["weights"] == body["weights"]
    from processors.direction import draw

    assert rec["eligible"][draw(rec["eligible"], rec["weights"], rec["seed"])] == rec["hotspot_id"]


def test_control_hot_spots_are_never_offered_nor_listed_over_200_requests(env):
    arms = {f"HS-{i:02d}": ("treatment" if i % 2 else "control") for i in range(10)}
    env.service.allocations = schedule(arms)
    h = sign_in(env)
    chosen = set()
    for _ in range(200):
        r = env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h)
        assert r.status_code == 201, r.text
        body = r.json()
        chosen.add(body["hotspot"]["id"])
        assert all(arms[i] == "treatment" for i in body["eligible"])
    assert chosen and all(arms[i] == "treatment" for i in chosen)
    listed = env.client.get("/v1/hotspots/nearby", params={"lat": LAT, "lon": LON, "limit": 100}).json()["hotspots"]
    assert {x["id"] for x in listed} == {i for i, a in arms.items() if a == "treatment"}
    assert all(x["arm"] == "treatment" for x in listed)


def test_no_eligible_hot_spot_is_409(env):
    h = sign_in(env)
    r = env.client.post("/v1/directions", json={"lat": LAT + 1.0, "lon": LON}, headers=h)
    assert r.status_code == 409 and r.json()["error"] == "no_eligible_hotspot"
    assert sent(env, "assignments", "Assignment") == []


def test_daily_cap_drops_a_hot_spot_out(env):
    env.service.set_hotspots([hotspot(0, 0.0), hotspot(1, 0.001)])
    env.service.policy = type(env.service.policy)(3000, 2, 1000, 15)
    h = sign_in(env)
    got = [env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h) for _ in range(5)]
    assert [r.status_code for r in got] == [201, 201, 201, 201, 409]


def test_wrong_role_is_403_and_no_session_401(env):
    assert env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}).status_code == 401
    for name in ("sgt1", "ana1"):
        h = sign_in(env, name)
        assert env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h).status_code == 403
        assert env.client.get("/v1/hotspots/nearby", params={"lat": LAT, "lon": LON}).status_code == 403
        assert env.client.get("/v1/me/status").status_code == 403
        assert env.client.get("/v1/activity/categories").status_code == 200  # any signed-in user


def test_nearby_lists_in_distance_order_with_todays_minutes(env):
    h = sign_in(env)
    day_start = env.service.day_bounds(int(time.time() * 1000))[0]
    env.service.dosage.snapshot = snapshot_from_rows(day_start, time.time(), [("HS-01", 6.5)], [])
    r = env.client.get("/v1/hotspots/nearby", params={"lat": LAT, "lon": LON, "limit": 3}, headers=h)
    body = r.json()
    assert [x["id"] for x in body["hotspots"]] == ["HS-00", "HS-01", "HS-02"]
    first = body["hotspots"][1]
    assert first["briefing_first_line"] == "Robbery at night 1" and first["minutes_today"] == 6.5
    assert 105 < first["distance_m"] < 118 and first["bearing_deg"] == pytest.approx(0, abs=0.5)
    assert body["dosage_known"] is True and first["arm"] is None
    bad = env.client.get("/v1/hotspots/nearby", params={"lat": 95, "lon": LON})
    assert bad.status_code == 422


def test_dosage_weights_the_draw(env):
    env.service.set_hotspots([hotspot(0, 0.0), hotspot(1, 0.0001)])
    day_start = env.service.day_bounds(int(time.time() * 1000))[0]
    env.service.dosage.snapshot = snapshot_from_rows(day_start, time.time(), [("HS-00", 15.0)], [])
    h = sign_in(env)
    r = env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h).json()
    assert r["eligible"] == ["HS-01"] and r["dosage_known"] is True  # HS-00 has had its 15 minutes today


def test_duty_is_published_and_read_back(env):
    h = sign_in(env)
    assert env.client.get("/v1/duty").json() == {"on_duty": False, "since": None}
    r = env.client.post("/v1/duty", json={"on_duty": True, "lat": LAT, "lon": LON}, headers=h)
    assert r.status_code == 200 and r.json()["on_duty"] is True
    assert env.client.get("/v1/duty").json()["on_duty"] is True
    env.client.post("/v1/duty", json={"on_duty": False}, headers=h)
    kinds = [a["kind"] for a in sent(env, "activity", "Activity")]
    assert kinds == ["duty_on", "duty_off"]
    assert env.client.post("/v1/duty", json={"on_duty": True}).status_code == 403  # no CSRF header


def test_activity_is_idempotent_by_client_id(env):
    h = sign_in(env)
    cats = env.client.get("/v1/activity/categories").json()["categories"]
    assert {"id": "community", "label": "Community engagement"} in cats
    entry = {"client_id": "c-1", "ts": "2030-01-01T10:00:00Z", "kind": "community", "note": "talked to shop owners",
             "lat": LAT, "lon": LON}
    a = env.client.post("/v1/activity", json=entry, headers=h)
    b = env.client.post("/v1/activity", json=entry, headers=h)
    assert a.status_code == b.status_code == 202 and a.json() == b.json()
    (rec,) = sent(env, "activity", "Activity")
    assert rec["kind"] == "community" and rec["user"] == "officer1" and rec["ts_ms"] == 1893492000000
    bad = env.client.post("/v1/activity", json={**entry, "client_id": "c-2", "kind": "karaoke"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "kind"


def test_pings_under_the_session_go_to_the_officers_device_once_per_key(env):
    h = sign_in(env)
    body = [PING]
    r1 = env.client.post("/v1/pings", json=body, headers={**h, "Idempotency-Key": "batch-1"})
    r2 = env.client.post("/v1/pings", json=body, headers={**h, "Idempotency-Key": "batch-1"})
    assert r1.status_code == r2.status_code == 202 and r1.json() == r2.json()
    assert r2.headers.get("idempotent-replayed") == "true"
    pings = [p for t, _, v in env.producer.sent if t == "pings" for p in [Codec("Ping").decode(v)]]
    assert [p["device_id"] for p in pings] == ["app-officer1"]
    assert env.client.post("/v1/pings", json=body).status_code == 403  # cookie without CSRF
    env.client.cookies.clear()
    h2 = sign_in(env, "sgt1")
    assert env.client.post("/v1/pings", json=body, headers=h2).status_code == 403


def test_me_status_shows_the_visit_and_todays_minutes(env):
    h = sign_in(env)
    env.client.post("/v1/duty", json={"on_duty": True}, headers=h)
    now = time.time()
    day_start = env.service.day_bounds(int(now * 1000))[0]
    env.service.dosage.snapshot = snapshot_from_rows(
        day_start, now, [("HS-03", 7.0)], [("app-officer1", "HS-03", 7.0, int(now * 1000) - 420_000, 420.0, 1)])
    s = env.client.get("/v1/me/status").json()
    assert s["on_duty"] is True
    assert s["visit"]["hotspot_id"] == "HS-03" and s["visit"]["minutes_so_far"] == 7.0
    assert s["visit"]["target_minutes"] == 15.0 and s["today"] == [{"hotspot_id": "HS-03", "minutes": 7.0}]
    assert s["dosage_known"] is True and s["dosage_as_of"]


def test_me_status_shows_the_assignment_just_made_and_bad_keys_are_refused(env):
    h = sign_in(env)
    d = env.client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h).json()
    s = env.client.get("/v1/me/status").json()
    assert s["assignment"]["assignment_id"] == d["assignment_id"] and s["assignment"]["hotspot_id"] == d["hotspot"]["id"]
    assert s["visit"] is None and s["dosage_known"] is False and s["dosage_problem"]
    r = env.client.post("/v1/pings", json=[PING], headers={**h, "Idempotency-Key": "k" * 200})
    assert r.status_code == 400 and r.json()["field"] == "idempotency-key"
