"""The officer app's backend end to end (issue 14): a real gateway process, broker and worker.

Sign in, go on duty, get directions under a published trial schedule, walk into
the hot spot under the session, log an activity: the assignment (with its
seed, eligible set and weights), the activity, the sign-in's audit record and
the visit reach ClickHouse through Kafka and the worker's record sink, the
compliance view fills, and /v1/me/status shows the visit from ClickHouse.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import httpx
import pytest

from processors.allocation import trial_day
from tests.conftest import HOTSPOT, free_port, wait_until
from tests.integration.live import LiveSystem

pytestmark = pytest.mark.integration

LAT, LON = 51.5000, -0.1000


def square(lat: float, lon: float, half_deg: float = 0.0008) -> dict:
    ring = [[lon - half_deg, lat - half_deg], [lon + half_deg, lat - half_deg], [lon + half_deg, lat + half_deg],
            [lon - half_deg, lat + half_deg], [lon - half_deg, lat - half_deg]]
    return {"type": "Polygon", "coordinates": [ring]}


def town(tmp_path):
    features = [{"type": "Feature", "geometry": square(LAT + i * 0.004, LON),
                 "properties": {"id": f"HS-{i}", "name": f"Hot spot {i}", "briefing": f"Night-time robbery {i}\nmore",
                                "target_minutes": 2}} for i in range(6)]
    path = tmp_path / "town.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


@pytest.fixture
def system(kafka_broker, tmp_path):
    live = LiveSystem(tmp_path / "var", kafka_broker, {"signal_loss_s": 600})
    live.extra_env.update(HOTSPOT_DOSAGE_CACHE_S="1", HOTSPOT_SESSION_REFRESH_S="0.5")
    port = free_port()
    gateway = None
    try:
        live.start_worker()
        hotspots = town(tmp_path)
        live.hotspot("hotspots", "publish", str(hotspots))
        today = trial_day(dt.datetime.now(dt.timezone.utc))
        live.hotspot("allocate", "--hotspots", str(hotspots), "--design", "crossover", "--start", today.isoformat(),
                     "--days", "1", "--seed", "7", "--publish", "--out", str(tmp_path / "schedule.csv"))
        log = open(tmp_path / "gateway.log", "w")
        gateway = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "info"], env=live.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url, gateway), 60, "the gateway", interval_s=0.1)
        yield live, url, tmp_path
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=30)
        live.stop_worker()


def _healthy(url, proc) -> bool:
    assert proc.poll() is None, "the gateway exited"
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_directions_to_compliance_through_kafka_and_the_worker(system):
    live, url, tmp_path = system
    user = json.loads(live.hotspot("users", "add", "officer1", "--role", "officer", "--json"))
    arms = {}
    with open(tmp_path / "schedule.csv") as fh:
        header = fh.readline().strip().split(",")
        for line in fh:
            row = dict(zip(header, line.strip().split(",")))
            arms[row["hotspot_id"]] = row["arm"]
    client = httpx.Client(base_url=url, timeout=30)
    r = client.post("/v1/session", json={"name": "officer1", "secret": user["secret"]})
    assert r.status_code == 200, r.text
    h = {"X-CSRF-Token": r.json()["csrf_token"]}
    assert client.post("/v1/duty", json={"on_duty": True}, headers=h).json()["on_duty"] is True

    # The gateway learns the hot spots and the schedule from Kafka: wait until it offers a direction.
    def direction():
        got = client.post("/v1/directions", json={"lat": LAT, "lon": LON}, headers=h)
        return got if got.status_code == 201 else None

    d = wait_until(direction, 60, "a direction").json()
    assert arms[d["hotspot"]["id"]] == "treatment"
    assert all(arms[i] == "treatment" for i in d["eligible"])
    listed = client.get("/v1/hotspots/nearby", params={"lat": LAT, "lon": LON, "limit": 20}).json()["hotspots"]
    assert {x["id"] for x in listed} == {i for i, a in arms.items() if a == "treatment"}

    # Walk into the hot spot and stay 3 minutes (pings stamped from now; the worker takes them as they come).
    lat, lon = (float(v) for v in d["geo_uri"].removeprefix("geo:").split(","))
    t0 = int(time.time() * 1000)
    pings = [{"ts_ms": t0 + i * 5000, "lat": lat + (i % 3) * 0.00005, "lon": lon, "accuracy_m": 6, "speed_mps": 0.5}
             for i in range(37)]
    for i in range(0, len(pings), 6):
        r = client.post("/v1/pings", json=pings[i:i + 6], headers={**h, "Idempotency-Key": f"b{i}"})
        assert r.status_code == 202, r.text
    again = client.post("/v1/pings", json=pings[:6], headers={**h, "Idempotency-Key": "b0"})
    assert again.status_code == 202 and again.headers.get("idempotent-replayed") == "true"
    a = client.post("/v1/activity", json={"client_id": "c1", "ts": t0 + 60_000, "kind": "community",
                                          "note": "spoke to the shop keepers", "assignment_id": d["assignment_id"]},
                    headers=h)
    assert a.status_code == 202 and a.json()["hotspot_id"] == d["hotspot"]["id"]

    aid = d["assignment_id"]
    rows = wait_until(lambda: live.sql(f"SELECT assignment_id, user, device_id, hotspot_id, seed, eligible, weights, arm "
                                       f"FROM hotspot.assignments FINAL WHERE assignment_id = '{aid}'"),
                      90, "the assignment in ClickHouse", interval_s=0.5)
    (row,) = rows
    assert (row["user"], row["device_id"], row["hotspot_id"]) == ("officer1", "app-officer1", d["hotspot"]["id"])
    assert int(row["seed"]) == d["seed"] and row["eligible"] == d["eligible"] and row["arm"] == "treatment"
    assert row["weights"] == pytest.approx(d["weights"])
    assert wait_until(lambda: live.sql("SELECT kind, hotspot_id FROM hotspot.activity FINAL WHERE kind = 'community'"),
                      60, "the activity") == [{"kind": "community", "hotspot_id": d["hotspot"]["id"]}]
    audit = wait_until(lambda: live.sql("SELECT action FROM hotspot.audit FINAL WHERE user = 'officer1'"), 60, "audit")
    assert {"action": "signin_ok"} in audit

    # The visit of the officer's app device fills the compliance view and shows in the officer's status.
    comp = wait_until(lambda: [r for r in live.sql(f"SELECT visited, dwell_minutes FROM hotspot.compliance "
                                                   f"WHERE assignment_id = '{aid}'") if r["visited"] == 1],
                      120, "compliance with a visit", interval_s=0.5)
    assert comp[0]["dwell_minutes"] > 0

    def visit_shown():
        status = client.get("/v1/me/status").json()
        # an earlier read of the store may hold the open visit's first row, dwell 0: wait for its progress
        visit = status["visit"]
        return status if visit is not None and status["dosage_known"] and visit["minutes_so_far"] > 0 else None

    status = wait_until(visit_shown, 60, "the visit in /v1/me/status", interval_s=0.5)
    assert status["visit"]["hotspot_id"] == d["hotspot"]["id"] and status["visit"]["minutes_so_far"] > 0
    assert status["assignment"]["assignment_id"] == aid and status["on_duty"] is True
