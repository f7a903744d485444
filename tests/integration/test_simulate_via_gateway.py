"""`hotspot simulate --via gateway`: simulated officers through a real gateway process into the real broker.

Every planned ping lands in Kafka `pings` under the simulator's device id, whichever protocol carried it.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from datetime import datetime, timezone

import httpx
import pytest

from core.kafka import ensure_topics
from simulation.live import plan
from tests.conftest import HOTSPOT, free_port, wait_until
from tests.integration.test_gateway_kafka import _read_pings

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_process(kafka_broker, tmp_path):
    asyncio.run(ensure_topics(kafka_broker.bootstrap, 4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env.update(HOTSPOT_DATA_DIR=str(tmp_path / "var"), HOTSPOT_KAFKA_BOOTSTRAP=kafka_broker.bootstrap)
    port = free_port()
    proc = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    def connected() -> bool:
        assert proc.poll() is None, f"gateway exited: {proc.stdout.read()}"
        try:
            return httpx.get(url + "/healthz", timeout=1).json()["kafka"] == "connected"
        except httpx.HTTPError:
            return False

    try:
        wait_until(connected, 30, "the gateway to connect to Kafka", interval_s=0.1)
        yield url, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_simulate_via_gateway_lands_every_planned_ping_in_kafka_under_the_simulators_device_ids(gateway_process):
    url, env = gateway_process
    start_ms = (int(time.time()) - 3600) * 1000
    start_iso = datetime.fromtimestamp(start_ms / 1000, timezone.utc).isoformat()
    seed = 4242
    cmd = [HOTSPOT, "simulate", "--via", "gateway", "--url", url, "--speed", "max", "--officers", "3",
           "--hours", "0.1", "--seed", str(seed), "--start", start_iso, "--protocols", "native,owntracks,osmand",
           "--device-prefix", "sim", "--settle", "0"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    planned = list(plan(3, seed, 0.1, start_ms).pings())
    devices = {p.device_id for p in planned}
    assert devices == {"sim-001", "sim-002", "sim-003"}
    found = asyncio.run(_read_pings(env["HOTSPOT_KAFKA_BOOTSTRAP"], devices, len(planned)))
    # Other tests of the session may have sent sim-00N pings of their own, but not of this past shift.
    found = [p for p in found if start_ms <= p["ts_ms"] <= start_ms + 7 * 60_000]
    assert Counter((p["device_id"], p["ts_ms"]) for p in found) == Counter((p.device_id, p.ts_ms) for p in planned)
    assert {p["device_id"]: p["source"] for p in found} == {"sim-001": "native", "sim-002": "owntracks",
                                                            "sim-003": "osmand"}
    by_key = {(p["device_id"], p["ts_ms"]): p for p in found}
    for want in planned:
        got = by_key[(want.device_id, want.ts_ms)]
        assert (got["lat"], got["lon"]) == (pytest.approx(want.lat, abs=1e-9), pytest.approx(want.lon, abs=1e-9))
        if want.speed_mps is not None:
            assert got["speed_mps"] == pytest.approx(want.speed_mps, abs=1e-6)  # km/h and knots converted back
    assert f"acknowledged {len(planned)} of {len(planned)} pings" in done.stdout
    # The OsmAnd officer was registered with a random identifier; its name alone posts nothing.
    from gateway.credentials import CredentialStore, path_in

    store = CredentialStore(path_in(env["HOTSPOT_DATA_DIR"]))
    try:
        assert {p.name: p.osmand for p in store.list("device")} == {"sim-001": False, "sim-002": False, "sim-003": True}
    finally:
        store.close()
    assert httpx.get(url + "/v1/osmand", params={"id": "sim-003", "lat": "51.5", "lon": "-0.1"}).status_code == 403


def test_simulate_via_gateway_reports_what_the_worker_did_with_the_pings(make_broker, tmp_path):
    """Not only the gateway's 202s: the worker's verdict on every ping, read back from ClickHouse."""
    import re

    from tests.integration.live import LiveSystem

    broker = make_broker()
    broker.start()
    live = LiveSystem(tmp_path / "var", broker)
    live.start_worker()
    port = free_port()
    gateway = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "warning"], env=live.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def connected() -> bool:
            try:
                return httpx.get(url + "/healthz", timeout=1).json()["kafka"] == "connected"
            except httpx.HTTPError:
                return False

        wait_until(connected, 60, "the gateway to connect to Kafka", interval_s=0.1)
        out = live.hotspot("simulate", "--via", "gateway", "--url", url, "--speed", "max", "--officers", "2",
                           "--hours", "0.1", "--seed", "7", "--device-prefix", "verdict", "--settle", "120")
        acknowledged = int(re.search(r"acknowledged (\d+) of", out).group(1))
        verdict = re.search(r"worker: (\d+) accepted into hotspot.pings, (\d+) rejected \((.*)\), (\d+) not", out)
        assert verdict, out
        accepted, rejected, not_yet = int(verdict.group(1)), int(verdict.group(2)), int(verdict.group(4))
        where = "device_id IN ('verdict-001', 'verdict-002')"
        assert accepted == int(live.scalar(f"SELECT count() FROM hotspot.pings FINAL WHERE {where}")) > 0
        assert rejected == int(live.scalar(f"SELECT count() FROM hotspot.pings_rejected FINAL WHERE {where}"))
        assert accepted + rejected + not_yet == acknowledged
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        live.stop_worker()
