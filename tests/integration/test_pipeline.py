"""The live pipeline on the real broker and the ClickHouse engine.

Pings go in through `hotspot pings send`, the worker turns them into patrol
events, and the tables must say exactly what `hotspot replay` says of the same
pings: the live and batch paths call the same processors. "The same pings" is
what Kafka holds once they are sent, with the time the broker appended each
(`as_arrived`): the live worker's reorder hold runs on that clock, so a sender
that stalled or a busy machine changes the data both paths see, never one path
alone. A long signal-loss
setting keeps silence from closing visits while a test runs, so the only
difference allowed is at the end of the data: what replay closes as
`end_of_data` is still open live.
"""
from __future__ import annotations

import subprocess
from collections import Counter

import pytest

from tests.integration.live import LiveSystem, export_arrived, ms, replay, simulate, wait_until

# Signal loss is judged on the arrival clock live and on fix times in replay: off, for both. Replay's
# rows carry no arrival time, so it is told the window live pings have (unstamped rows default to a
# 600 s and 10-row one, for files shuffled by rows): a straggler late live is late in replay too.
NO_SILENCE = {"signal_loss_s": 36000, "unstamped_reorder_window_s": 10, "unstamped_reorder_rows": 0}


def _line_count(path) -> int:
    with open(path) as fh:
        return sum(1 for _ in fh) - 1


def _accounted(live: LiveSystem) -> int:
    """Pings stored or rejected so far; -1 while the store cannot answer (a worker starting up)."""
    try:
        return int(live.scalar("SELECT (SELECT count() FROM hotspot.pings FINAL) + "
                               "(SELECT count() FROM hotspot.pings_rejected FINAL)"))
    except AssertionError:
        return -1


def as_arrived(live: LiveSystem, sim, tmp_path, total: int) -> dict[str, list[dict]]:
    """Replay of exactly the pings the worker was given, with their arrival times (see the module doc)."""
    arrived = export_arrived(live.broker.bootstrap, tmp_path / "arrived.csv", total)
    return replay(sim, tmp_path / "replay", NO_SILENCE, pings=arrived)


def _live(make_broker, tmp_path, hotspots=None) -> LiveSystem:
    """A fresh broker and data directory, with these hot spots published (no worker yet)."""
    broker = make_broker()
    broker.start()
    live = LiveSystem(tmp_path / "var", broker, NO_SILENCE)
    if hotspots is not None:
        live.hotspot("hotspots", "publish", str(hotspots))
    return live


def live_tables(live: LiveSystem) -> dict[str, list[dict]]:
    return {
        "visits": live.sql("SELECT visit_id, device_id, hotspot_id, toUnixTimestamp64Milli(entered_at) AS entered_ms, "
                           "toUnixTimestamp64Milli(exited_at) AS exited_ms, dwell_s, foot_s, vehicle_s, stationary_s, "
                           "stop_count, ping_count, end_reason FROM hotspot.visits FINAL ORDER BY visit_id"),
        "stops": live.sql("SELECT stop_id, toUnixTimestamp64Milli(started_at) AS started_ms, "
                          "toUnixTimestamp64Milli(ended_at) AS ended_ms, duration_s, lat, lon FROM hotspot.stops FINAL"),
        "modes": live.sql("SELECT device_id, toUnixTimestamp64Milli(started_at) AS started_ms, "
                          "toUnixTimestamp64Milli(ended_at) AS ended_ms, mode, distance_m FROM hotspot.mode_segments FINAL"),
        "rejected": live.sql("SELECT reason, count() AS n FROM hotspot.pings_rejected FINAL GROUP BY reason"),
    }


def pings_by_source(live: LiveSystem) -> dict[str, int]:
    return {r["source"]: int(r["n"]) for r in live.sql("SELECT source, count() AS n FROM hotspot.pings FINAL GROUP BY source")}


def assert_live_equals_replay(live: dict[str, list[dict]], expected: dict[str, list[dict]]) -> None:
    # Visits: every visit replay found, with the same id; closed ones identical in every column.
    got = {v["visit_id"]: v for v in live["visits"]}
    want = {v["visit_id"]: v for v in expected["visits"]}
    assert set(got) == set(want)
    assert want, "the scenario should produce visits"
    for vid, w in want.items():
        g = got[vid]
        assert (g["device_id"], g["hotspot_id"], g["entered_ms"]) == (w["device_id"], w["hotspot_id"], ms(w["entered_at"]))
        if w["end_reason"] == "end_of_data":
            assert g["end_reason"] == "open", vid
            continue
        assert g["end_reason"] == w["end_reason"]
        assert g["exited_ms"] == ms(w["exited_at"])
        for col in ("dwell_s", "foot_s", "vehicle_s", "stationary_s"):
            assert g[col] == pytest.approx(float(w[col]), abs=1e-3), (vid, col)
        assert (g["stop_count"], g["ping_count"]) == (int(w["stop_count"]), int(w["ping_count"]))

    # Stops: the same ids; closed ones identical.
    got_stops = {s["stop_id"]: s for s in live["stops"]}
    assert set(got_stops) == {s["stop_id"] for s in expected["stops"]}
    for w in expected["stops"]:
        g = got_stops[w["stop_id"]]
        assert g["started_ms"] == ms(w["started_at"])
        if g["ended_ms"] is not None:
            assert g["ended_ms"] == ms(w["ended_at"]) and g["duration_s"] == pytest.approx(float(w["duration_s"]), abs=1e-3)

    # Mode segments: replay closes each device's last one at the end of the data; live keeps it open.
    live_modes = {(m["device_id"], m["started_ms"], m["ended_ms"], m["mode"]) for m in live["modes"]}
    replay_modes = {(m["device_id"], ms(m["started_at"]), ms(m["ended_at"]), m["mode"]) for m in expected["modes"]}
    assert live_modes <= replay_modes
    last_per_device = Counter(d for d, *_ in replay_modes - live_modes)
    assert set(last_per_device.values()) <= {1}

    # Rejections: the same reasons, the same counts.
    assert {r["reason"]: int(r["n"]) for r in live["rejected"]} == dict(Counter(r["reason"] for r in expected["rejected"]))


def test_live_pings_give_the_same_visits_stops_modes_and_rejects_as_replay(make_broker, tmp_path):
    sim = simulate(tmp_path / "sim", officers=6, hours=1.5, seed=11, ago_h=2)
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    live.start_worker()
    try:
        live.hotspot("pings", "send", str(sim / "pings.csv"))
        total = _line_count(sim / "pings.csv")
        wait_until(lambda: _accounted(live) == total, 180, f"all {total} pings stored or rejected")
        expected = as_arrived(live, sim, tmp_path, total)
        assert_live_equals_replay(live_tables(live), expected)
        # Every stored ping keeps the source it was sent with, also those held for reordering
        # from one batch to the next (nearly all of them, live).
        assert pings_by_source(live) == {"replay": total - len(expected["rejected"])}
        assert_metrics_tell_the_same_story(live, total, expected)
    finally:
        live.stop_worker()


def _metric_sum(samples: dict, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def assert_metrics_tell_the_same_story(live: LiveSystem, total: int, expected: dict[str, list[dict]]) -> None:
    """The worker's /metrics agree with the tables: what an operator's dashboard would show."""
    still_open = {v["device_id"] for v in expected["visits"] if v["end_reason"] == "end_of_data"}
    # Gauges are refreshed at each checkpoint (every second): wait for the one after the last batch.
    def settled():
        m = live.metrics()
        drained = _metric_sum(m, "consumer_lag", topic="pings") == 0
        return m if drained and m.get(("devices_inside_hotspots", ())) == len(still_open) else None

    samples = wait_until(settled, 30, "the gauges to show a drained topic and the devices still inside a hot spot")
    assert _metric_sum(samples, "pings_in_total") == total
    rejected = Counter(r["reason"] for r in expected["rejected"])
    assert {reason: _metric_sum(samples, "pings_rejected_total", reason=reason) for reason in rejected} == rejected
    assert _metric_sum(samples, "pings_rejected_total") == sum(rejected.values())
    visits = expected["visits"]
    assert _metric_sum(samples, "events_total", type="visit_started") == len(visits)
    assert _metric_sum(samples, "events_total", type="visit_ended") == sum(v["end_reason"] != "end_of_data" for v in visits)
    assert _metric_sum(samples, "events_total", type="stop_started") == len(expected["stops"])
    assert len({lab for (n, lab) in samples if n == "consumer_lag"}) == 4  # one per pings partition
    assert _metric_sum(samples, "ping_to_event_seconds_count") > 0
    assert _metric_sum(samples, "batch_size_count", stage="worker") > 0
    assert _metric_sum(samples, "sink_rows_written_total", table="visits") >= len(visits)
    assert _metric_sum(samples, "sink_failures_total") == 0


def test_a_hot_spot_published_while_the_worker_runs_takes_effect_without_restart(make_broker, tmp_path):
    before = simulate(tmp_path / "before", officers=4, hours=1, seed=21, ago_h=3)
    after = simulate(tmp_path / "after", officers=4, hours=1, seed=22, ago_h=1.5,
                     extra=("--hotspots", str(before / "hotspots.geojson")))
    live = _live(make_broker, tmp_path)
    live.start_worker()
    try:
        live.hotspot("pings", "send", str(before / "pings.csv"))
        wait_until(lambda: _accounted(live) == _line_count(before / "pings.csv"), 180, "the first shift to be stored")
        assert live.scalar("SELECT count() FROM hotspot.visits FINAL") == 0  # no hot spots yet

        live.hotspot("hotspots", "publish", str(before / "hotspots.geojson"))
        wait_until(lambda: "index rebuilt: 20 active" in live.log_text(), 60, "the worker to load the new hot spots")
        pid = live.worker.pid
        live.hotspot("pings", "send", str(after / "pings.csv"))
        total = _line_count(before / "pings.csv") + _line_count(after / "pings.csv")
        wait_until(lambda: _accounted(live) == total, 180, "the second shift to be stored")
        visits = live.sql("SELECT min(toUnixTimestamp64Milli(entered_at)) AS first, count() AS n FROM hotspot.visits FINAL")[0]
        assert int(visits["n"]) > 0
        assert int(visits["first"]) >= ms(_first_ts(after / "pings.csv")) - 600_000
        assert live.worker.pid == pid and live.worker.poll() is None  # the same process, never restarted
        assert int(live.scalar("SELECT count() FROM hotspot.hotspots_current")) == 20
    finally:
        live.stop_worker()


def _first_ts(path) -> str:
    import csv

    with open(path) as fh:
        return min(row["ts"] for row in csv.DictReader(fh))


def test_trial_allocations_and_retired_hot_spots_reach_clickhouse_through_the_worker(make_broker, tmp_path):
    import csv

    sim = simulate(tmp_path / "sim", officers=1, hours=0.2, seed=41, ago_h=1)
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    live.start_worker()
    try:
        schedule = tmp_path / "schedule.csv"
        live.hotspot("allocate", "--hotspots", str(sim / "hotspots.geojson"), "--design", "crossover",
                     "--start", "2026-12-01", "--days", "14", "--seed", "9", "--out", str(schedule), "--publish")
        with open(schedule) as fh:
            want = sorted((r["hotspot_id"], r["day"], r["arm"]) for r in csv.DictReader(fh))
        assert len(want) == 20 * 14
        wait_until(lambda: int(live.scalar("SELECT count() FROM hotspot.allocations FINAL")) == len(want), 60,
                   "the schedule to be recorded")
        got = live.sql("SELECT hotspot_id, toString(day) AS day, arm FROM hotspot.allocations FINAL")
        assert sorted((r["hotspot_id"], r["day"], r["arm"]) for r in got) == want
        treated = live.sql("SELECT day, countIf(arm = 'treatment') AS t FROM hotspot.allocations FINAL GROUP BY day")
        assert {int(r["t"]) for r in treated} == {10}  # crossover: half of 20 hot spots treated each day

        retired = live.sql("SELECT id FROM hotspot.hotspots_current WHERE retired = 0 ORDER BY id LIMIT 1")[0]["id"]
        live.hotspot("hotspots", "retire", retired)
        wait_until(lambda: live.scalar(f"SELECT retired FROM hotspot.hotspots_current WHERE id = '{retired}'") == 1, 60,
                   "the retirement to be recorded")
        assert int(live.scalar("SELECT count() FROM hotspot.hotspots_current WHERE retired = 0")) == 19
        assert retired not in live.hotspot("hotspots", "list")
    finally:
        live.stop_worker()


def test_clickhouse_unavailable_for_a_while_then_back_loses_nothing(make_broker, tmp_path):
    import sys

    sim = simulate(tmp_path / "sim", officers=4, hours=1, seed=51, ago_h=1.5)
    total = _line_count(sim / "pings.csv")
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    # Another process holds the ClickHouse store: for the worker, ClickHouse is down.
    dsn = f"chdb://{live.data_dir / 'clickhouse'}"
    holder = subprocess.Popen([sys.executable, "-c", f"from sinks.clickhouse import make_client; c = make_client({dsn!r}); "
                               "print('holding', flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        live.start_worker(wait_ready=False)
        wait_until(lambda: "ClickHouse is not available" in live.log_text(), 60, "the worker to notice the outage")
        live.hotspot("pings", "send", str(sim / "pings.csv"))  # they wait in Kafka meanwhile
        assert live.worker.poll() is None, "the worker must wait, not die"
        holder.communicate("\n", timeout=60)  # ClickHouse is back
        wait_until(lambda: _accounted(live) >= total, 300, "the worker to catch up")
        assert _accounted(live) == total
        assert_live_equals_replay(live_tables(live), as_arrived(live, sim, tmp_path, total))
    finally:
        if holder.poll() is None:
            holder.kill()
        live.stop_worker()


def run_with_kills(live: LiveSystem, sim, total: int, kills: int, rng, rate: int = 2000) -> list[float]:
    """Stream `sim`'s pings while killing the worker (-9) `kills` times at random points of progress.

    Each kill comes 1,500-8,000 pings after the previous restart's progress, so it
    lands anywhere in a batch, an insert or a checkpoint. Returns the restart times.
    """
    import time

    from tests.conftest import HOTSPOT

    sender = subprocess.Popen([HOTSPOT, "pings", "send", "--rate", str(rate), str(sim / "pings.csv")],
                              env=live.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    restarts = []
    try:
        for _ in range(kills):
            target = min(total - 1, max(0, _accounted(live)) + rng.randint(1_500, 8_000))
            wait_until(lambda: _accounted(live) >= target, 300, f"progress to {target} pings")
            live.kill_worker()
            started = time.monotonic()
            live.start_worker()
            restarts.append(time.monotonic() - started)
        _, err = sender.communicate(timeout=600)
        assert sender.returncode == 0, err
    finally:
        if sender.poll() is None:
            sender.kill()
    wait_until(lambda: _accounted(live) >= total, 600, f"all {total} pings stored or rejected")
    return restarts


def test_kill_9_of_the_worker_at_random_moments_then_restart_loses_and_doubles_nothing(make_broker, tmp_path):
    import os
    import random

    seed = int(os.environ.get("HOTSPOT_CRASH_SEED") or random.SystemRandom().randrange(1 << 30))
    sim = simulate(tmp_path / "sim", officers=45, hours=3, seed=31, ago_h=3.2)
    total = _line_count(sim / "pings.csv")
    assert total >= 50_000
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    live.start_worker()
    try:
        run_with_kills(live, sim, total, kills=4, rng=random.Random(seed))
        assert _accounted(live) == total, f"seed {seed}"
        expected = as_arrived(live, sim, tmp_path, total)  # an uninterrupted run of the same processors
        # Rows written twice (a batch redone after a kill) collapse under FINAL to one per key:
        # exactly the pings replay accepted.
        assert int(live.scalar("SELECT count() FROM hotspot.pings FINAL")) == total - len(expected["rejected"])
        assert_live_equals_replay(live_tables(live), expected)
        # held pings restored from the changelog after a kill keep their source too
        assert pings_by_source(live) == {"replay": total - len(expected["rejected"])}
    except AssertionError as exc:
        raise AssertionError(f"HOTSPOT_CRASH_SEED={seed}: {exc}\n--- worker logs (tail) ---\n{live.log_text()[-4000:]}") from exc
    finally:
        live.stop_worker()
