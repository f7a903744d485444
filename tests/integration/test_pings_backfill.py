"""`hotspot pings send --backfill`: a shift from nine days ago is stored by the live worker, not rejected as stale.

Without the flag the same export is refused before anything reaches Kafka.
"""
from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tests.conftest import HOTSPOT
from tests.integration.live import replay, simulate, wait_until
from tests.integration.test_pipeline import NO_SILENCE, _accounted, _line_count, _live

pytestmark = pytest.mark.integration


def test_a_nine_day_old_export_is_refused_live_and_stored_as_a_backfill(make_broker, tmp_path):
    sim = simulate(tmp_path / "sim", officers=3, hours=0.5, seed=23, ago_h=9 * 24)
    expected = replay(sim, tmp_path / "replay", NO_SILENCE)
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    total = _line_count(sim / "pings.csv")

    refused = subprocess.run([HOTSPOT, "pings", "send", str(sim / "pings.csv")], env=live.env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 1 and "--backfill" in refused.stderr, refused.stdout + refused.stderr

    live.start_worker()
    try:
        out = live.hotspot("pings", "send", "--backfill", str(sim / "pings.csv"))
        assert f"sent {total} historical pings" in out
        wait_until(lambda: _accounted(live) == total, 180, f"all {total} pings stored or rejected")
        rejected = {r["reason"]: int(r["n"]) for r in
                    live.sql("SELECT reason, count() AS n FROM hotspot.pings_rejected FINAL GROUP BY reason")}
        assert "stale_timestamp" not in rejected
        # The stateless verdicts are replay's (a pause of the sender may still let the live timer
        # release a device's held pings early, so `late` is not compared).
        want = Counter(r["reason"] for r in expected["rejected"])
        assert {k: v for k, v in rejected.items() if k != "late"} == {k: v for k, v in want.items() if k != "late"}
        stored = int(live.scalar("SELECT count() FROM hotspot.pings FINAL"))
        assert stored == total - sum(rejected.values()) and stored >= total - len(expected["rejected"]) - 5
        assert int(live.scalar("SELECT count() FROM hotspot.visits FINAL")) > 0
    finally:
        live.stop_worker()
