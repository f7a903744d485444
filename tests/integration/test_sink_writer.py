"""The ClickHouse writer on the real engine (chDB): batches land once, outages are waited out, replays collapse."""
from __future__ import annotations

import asyncio
import datetime as dt
import gc
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from prometheus_client import REGISTRY

from sinks.clickhouse import make_client, migrate
from formats.records import patrol_event_row, ping_rows_arrow, ping_rows_columns, state_version
from sinks.writer import ClickHouseWriter, RetryPolicy, SinkBackpressure, SinkRejected
from tests.conftest import KEEP_FIXED_DATES, free_port, wait_until

FAST_RETRY = RetryPolicy(initial_delay_s=0.01, max_delay_s=0.05)
# Some tests write events of November 2023 (t = 1_700_000_000_000), older than the default retention of
# visits, stops and modes (730 days, sinks/retention.py): the store keeps them for these tests.

class Store:
    """One chDB store for one test; every client opened on it is closed at the end,
    because a process can only switch to another store once all handles are closed."""

    def __init__(self, path):
        self.dsn = f"chdb://{path}"
        self.db = "hotspot"
        self.admin = make_client(self.dsn)
        migrate(self.admin, self.db, retention_days=KEEP_FIXED_DATES)
        self._writers: list[ClickHouseWriter] = []
        self._clients = []

    def writer(self, **kw) -> ClickHouseWriter:
        w = ClickHouseWriter(self.dsn, self.db, **{"retry": FAST_RETRY, **kw})
        self._writers.append(w)
        return w

    def flaky(self, failures: int = 0) -> FlakyClient:
        c = FlakyClient(make_client(self.dsn, self.db), failures)
        self._clients.append(c.real)
        return c

    def rows(self, sql: str) -> list[tuple]:
        return self.admin.query(sql).result_rows

    def close(self):
        for w in self._writers:
            w.close()
        for c in self._clients:
            c.close()
        self.admin.close()
        gc.collect()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "ch")
    yield s
    s.close()


class FlakyClient:
    """A real client whose insert fails, like a server that went away, until `fail_until` says otherwise."""

    def __init__(self, real, failures: int = 0):
        self.real = real
        self.failures_left = failures
        self.up = threading.Event()  # cleared: down until set
        self.up.set()
        self.inserts: list[tuple[str, list[str], bool]] = []
        self.attempt_times: list[float] = []

    def insert(self, table, data, column_names, column_oriented):
        self.attempt_times.append(time.monotonic())
        if self.failures_left > 0 or not self.up.is_set():
            self.failures_left -= 1
            raise OperationalError("Error HTTPConnectionPool(host='ch', port=8123): Max retries exceeded "
                                   "(Caused by NewConnectionError: [Errno 111] Connection refused)")
        self.inserts.append((table, list(column_names), column_oriented))
        return self.real.insert(table, data, column_names=column_names, column_oriented=column_oriented)

    def close(self):
        pass  # the real client is the store's


def now_ms() -> int:
    return int(time.time() * 1000)


def visit_event(visit_id: str, kind: str, ts_ms: int, entered_ms: int, exited_ms=None, dwell_s=None, reason=None):
    return {"event_id": f"{visit_id}:{kind}", "type": kind, "device_id": "dev-1", "hotspot_id": "hs-1", "ts_ms": ts_ms,
            "visit": {"visit_id": visit_id, "entered_ms": entered_ms, "exited_ms": exited_ms, "dwell_s": dwell_s,
                      "foot_s": dwell_s, "vehicle_s": 0.0 if dwell_s is not None else None, "stationary_s": None,
                      "stop_count": 0, "ping_count": 3, "end_reason": reason}}


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- types and shape
def test_columns_round_trip_nullable_arrays_maps_dates_and_millisecond_timestamps(store):
    t = now_ms()  # pings and pings_rejected have a TTL: current times only
    w = store.writer()
    w.add("pings", {"device_id": "dev-1", "ts": t, "received_at": t + 7, "lat": 51.5, "lon": -0.12, "accuracy_m": None,
                    "speed_mps": 1.25, "heading_deg": None, "altitude_m": None, "battery": 0.5, "source": "native",
                    "hotspot_ids": ["hs-1", "hs-2"], "low_accuracy": 0, "late": 1})
    w.add("pings", {"device_id": "dev-2", "ts": t + 1, "received_at": t + 2, "lat": 51.6, "lon": -0.13, "accuracy_m": 12.5,
                    "speed_mps": None, "heading_deg": 90.0, "altitude_m": 10.0, "battery": None, "source": "owntracks",
                    "hotspot_ids": [], "low_accuracy": 1, "late": 0})
    w.add("visits", patrol_event_row(visit_event("v-1", "visit_started", t, t - 30_001))[1])
    w.add("activity", {"activity_id": "a-1", "user": "pc101", "device_id": "", "ts": t, "kind": "note", "hotspot_id": "hs-1",
                       "assignment_id": "", "note": "all quiet", "lat": None, "lon": 1.5, "attributes": {"k": "v", "x": ""}})
    w.add("allocations", {"trial_id": "t1", "hotspot_id": "hs-1", "day": dt.date(2024, 3, 31), "starts_at": t, "ends_at": t + 1,
                          "arm": "treatment", "block": "north", "design": "crossover", "seed": 2**63 + 5})
    assert w.flush() == 5
    assert store.rows("SELECT device_id, toUnixTimestamp64Milli(ts), toUnixTimestamp64Milli(received_at), accuracy_m, speed_mps, "
                      "heading_deg, battery, source, hotspot_ids, low_accuracy, late FROM hotspot.pings ORDER BY device_id") == [
        ("dev-1", t, t + 7, None, 1.25, None, 0.5, "native", ["hs-1", "hs-2"], 0, 1),
        ("dev-2", t + 1, t + 2, 12.5, None, 90.0, None, "owntracks", [], 1, 0),
    ]
    assert store.rows("SELECT visit_id, toUnixTimestamp64Milli(entered_at), exited_at, dwell_s, end_reason, version "
                      "FROM hotspot.visits") == [("v-1", t - 30_001, None, 0.0, "open", state_version(t, False))]
    assert store.rows("SELECT user, device_id, toUnixTimestamp64Milli(ts), lat, lon, attributes FROM hotspot.activity") == [
        ("pc101", "", t, None, 1.5, {"k": "v", "x": ""})]
    assert store.rows("SELECT day, toUnixTimestamp64Milli(starts_at), seed FROM hotspot.allocations") == [
        (dt.date(2024, 3, 31), t, 2**63 + 5)]


def test_flush_writes_one_column_oriented_insert_per_table(store):
    flaky = store.flaky()
    w = ClickHouseWriter(database=store.db, client_factory=lambda: flaky, retry=FAST_RETRY)
    n = 3000
    starts = np.arange(n, dtype=np.int64) * 1000 + 1_700_000_000_000
    w.add_many("mode_segments", {"device_id": ["dev-1"] * n, "started_at": starts, "ended_at": starts + 999,
                                 "mode": ["foot"] * n, "distance_m": np.full(n, 1.5), "version": starts + 999})
    for i in range(n):
        w.add("stops", {"stop_id": f"s-{i}", "device_id": "dev-1", "hotspot_id": "hs-1", "started_at": 1_700_000_000_000 + i,
                        "ended_at": None, "duration_s": 0.0, "lat": 51.0, "lon": -1.0, "version": i})
    assert w.pending_rows == 2 * n
    assert w.flush() == 2 * n
    assert [(table, cols[0], oriented) for table, cols, oriented in flaky.inserts] == [
        ("hotspot.mode_segments", "device_id", True), ("hotspot.stops", "stop_id", True)]
    assert w.pending_rows == 0 and w.state == "idle" and w.flush() == 0
    assert store.rows("SELECT count(), sum(toUnixTimestamp64Milli(ended_at) - toUnixTimestamp64Milli(started_at)) "
                      "FROM hotspot.mode_segments") == [(n, 999 * n)]


def test_rows_naming_other_columns_than_the_buffered_ones_are_refused_at_add(store):
    w = store.writer()
    w.add("pings_rejected", {"reject_id": "r1", "reason": "x", "ts": None})
    with pytest.raises(ValueError, match=r"missing \['ts'\], unexpected \['raw'\]"):
        w.add("pings_rejected", {"reject_id": "r2", "reason": "x", "raw": "{}"})
    with pytest.raises(ValueError, match="differ in length"):
        w.add_many("stops", {"stop_id": ["a", "b"], "lat": [1.0]})
    assert w.pending_rows == 1


def test_due_when_the_batch_is_full_or_old(store):
    clock = [100.0]
    w = store.writer(max_rows=3, max_age_s=0.5, clock=lambda: clock[0])
    assert not w.due()
    row = {"stop_id": "s", "device_id": "d", "hotspot_id": "h", "started_at": now_ms(), "ended_at": None,
           "duration_s": 0.0, "lat": 0.0, "lon": 0.0, "version": 0}
    w.add("stops", row)
    assert not w.due(100.4)
    assert w.due(100.5)
    clock[0] = 200.0
    w.flush()
    w.add("stops", row)
    w.add("stops", row)
    assert not w.due(200.0)
    w.add("stops", row)
    assert w.due(200.0)


# --------------------------------------------------------------------------- failures
def test_a_failing_insert_is_retried_with_growing_waits_and_lands_exactly_once(store):
    flaky = store.flaky(4)
    retry = RetryPolicy(initial_delay_s=0.02, max_delay_s=0.2, multiplier=2.0, jitter=0.5)
    w = ClickHouseWriter(database=store.db, client_factory=lambda: flaky, retry=retry, name="test-retry", seed=1)
    failures_before = sample("sink_failures_total", sink="test-retry", table="visits")
    t = 1_700_000_000_000
    for i in range(100):
        w.add("visits", patrol_event_row(visit_event(f"v-{i}", "visit_ended", t + 90_000, t, t + 60_000, 60.0, "exit"))[1])
    assert sample("sink_pending_rows", sink="test-retry") == 100
    assert w.flush() == 100
    assert w.healthy and w.attempts == 5
    waits = np.diff(flaky.attempt_times)
    # The writer's waits are the policy's, drawn from its seeded generator: nominal 0.02, 0.04,
    # 0.08, 0.16, each shortened by at most half. Each was waited out in full (a busy machine
    # can only make a wait longer, so no upper bound on the measured time is asserted).
    rng = random.Random(1)
    chosen = [retry.delay_s(attempt, rng) for attempt in range(1, 5)]
    for wait, delay, nominal in zip(waits, chosen, (0.02, 0.04, 0.08, 0.16)):
        assert nominal * 0.5 <= delay <= nominal, (chosen, nominal)
        assert wait >= delay, (waits, chosen)
    assert len(waits) == 4 and chosen == sorted(chosen)
    assert sample("sink_failures_total", sink="test-retry", table="visits") - failures_before == 4
    assert sample("sink_pending_rows", sink="test-retry") == 0
    assert sample("sink_healthy", sink="test-retry") == 1
    assert store.rows("SELECT count(), uniqExact(visit_id) FROM hotspot.visits") == [(100, 100)]


def test_an_unreachable_server_gives_backpressure_after_the_attempt_limit_and_keeps_the_rows():
    port = free_port()  # nothing listens there
    w = ClickHouseWriter(f"http://default:secret@127.0.0.1:{port}", "hotspot", name="test-down",
                         retry=RetryPolicy(initial_delay_s=0.01, max_delay_s=0.02, max_attempts=3))
    w.add("stops", {"stop_id": "s1", "device_id": "d", "hotspot_id": "h", "started_at": now_ms(), "ended_at": None,
                    "duration_s": 0.0, "lat": 0.0, "lon": 0.0, "version": 0})
    with pytest.raises(SinkBackpressure) as err:
        w.flush()
    assert err.value.retry_after_s > 0
    assert "secret" not in str(err.value)
    assert not w.healthy and w.state == "retrying" and w.attempts == 3
    assert w.pending_rows == 1 and w.due()
    assert sample("sink_healthy", sink="test-down") == 0
    # with a time limit instead of an attempt limit
    w2 = ClickHouseWriter(f"http://127.0.0.1:{port}", "hotspot", retry=FAST_RETRY)
    w2.add("stops", {"stop_id": "s1"})
    with pytest.raises(SinkBackpressure, match="still failing at the time limit"):
        w2.flush(timeout_s=0.3)
    assert w2.pending_rows == 1 and w2.attempts >= 2


def test_rows_clickhouse_refuses_raise_at_once_and_stay_buffered(store):
    w = store.writer()
    w.add("visits", {"visit_id": "v1", "no_such_column": 1})
    with pytest.raises(SinkRejected, match="no_such_column"):
        w.flush()
    assert w.attempts == 1 and w.state == "rejected" and w.pending_rows == 1
    w2 = store.writer()
    w2.add("no_such_table", {"a": 1})
    with pytest.raises(SinkRejected, match="UNKNOWN_TABLE|does not exist"):
        w2.flush()
    assert w2.attempts == 1 and w2.pending_rows == 1


def test_a_store_owned_by_another_process_is_an_outage_the_flush_waits_out(tmp_path):
    """A real outage: another process holds the embedded store; the writer retries until it is released."""
    dsn = f"chdb://{tmp_path / 'ch'}"
    admin = make_client(dsn)
    migrate(admin)
    admin.close()
    gc.collect()
    holder = subprocess.Popen([sys.executable, "-c", f"from sinks.clickhouse import make_client; c = make_client({dsn!r}); "
                                                     "print('holding', flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    w = ClickHouseWriter(dsn, "hotspot", retry=RetryPolicy(initial_delay_s=0.05, max_delay_s=0.2), name="test-busy")
    try:
        assert holder.stdout.readline().strip() == "holding"
        t = now_ms()
        w.add_many("pings", {"device_id": ["dev-1"] * 500, "ts": list(range(t, t + 500)), "received_at": [t] * 500,
                             "lat": [51.0] * 500, "lon": [-1.0] * 500, "accuracy_m": [None] * 500, "speed_mps": [None] * 500,
                             "heading_deg": [None] * 500, "altitude_m": [None] * 500, "battery": [None] * 500,
                             "source": ["native"] * 500, "hotspot_ids": [[]] * 500, "low_accuracy": [0] * 500, "late": [0] * 500})
        done = []
        flusher = threading.Thread(target=lambda: done.append(w.flush()))
        flusher.start()
        wait_until(lambda: w.attempts >= 3, 60, "three failed attempts while the store is held")
        assert flusher.is_alive() and not done
        assert not w.healthy and w.state == "retrying" and w.pending_rows == 500
        assert "in use by another process" in w.last_error
        holder.communicate("\n", timeout=60)
        flusher.join(timeout=60)
        assert done == [500] and w.healthy and w.pending_rows == 0
        client = make_client(dsn)
        assert client.query("SELECT count(), uniqExact(ts) FROM hotspot.pings").result_rows == [(500, 500)]
        client.close()
    finally:
        w.close()
        if holder.poll() is None:
            holder.kill()
        gc.collect()


def test_flush_async_keeps_the_event_loop_running_while_inserts_fail(store):
    flaky = store.flaky()
    flaky.up.clear()
    w = ClickHouseWriter(database=store.db, client_factory=lambda: flaky, retry=FAST_RETRY)
    w.add("stops", {"stop_id": "s1", "device_id": "d", "hotspot_id": "h", "started_at": now_ms(), "ended_at": None,
                    "duration_s": 0.0, "lat": 0.0, "lon": 0.0, "version": 0})

    async def scenario():
        ticks = 0
        flush = asyncio.create_task(w.flush_async())
        while ticks < 20:  # the loop keeps running (heartbeats would be sent) while the insert fails
            await asyncio.sleep(0.005)
            ticks += 1
        assert not flush.done() and not w.healthy
        flaky.up.set()
        return await asyncio.wait_for(flush, 30)

    assert asyncio.run(scenario()) == 1
    assert w.healthy and store.rows("SELECT count() FROM hotspot.stops") == [(1,)]


def test_rows_added_during_a_flush_wait_for_the_next_flush(store):
    flaky = store.flaky()
    flaky.up.clear()
    w = ClickHouseWriter(database=store.db, client_factory=lambda: flaky, retry=FAST_RETRY)
    row = {"stop_id": "s1", "device_id": "d", "hotspot_id": "h", "started_at": now_ms(), "ended_at": None,  # within the TTL
           "duration_s": 0.0, "lat": 0.0, "lon": 0.0, "version": 0}
    w.add("stops", row)
    done = []
    flusher = threading.Thread(target=lambda: done.append(w.flush()))
    flusher.start()
    wait_until(lambda: w.attempts >= 1, 30, "the flush to start")
    w.add("stops", {**row, "stop_id": "s2"})
    assert w.pending_rows == 2
    flaky.up.set()
    flusher.join(timeout=30)
    assert done == [1] and w.pending_rows == 1 and w.due(time.monotonic() + w.max_age_s)
    assert store.rows("SELECT stop_id FROM hotspot.stops") == [("s1",)]
    assert w.flush() == 1
    assert store.rows("SELECT stop_id FROM hotspot.stops ORDER BY stop_id") == [("s1",), ("s2",)]


# --------------------------------------------------------------------------- idempotency
def test_writing_the_same_events_again_in_other_batches_leaves_the_same_rows_under_final(store):
    t = 1_700_000_000_000
    events = [visit_event("v-1", "visit_started", t + 30_000, t),
              visit_event("v-2", "visit_started", t + 40_000, t + 10_000),
              visit_event("v-1", "visit_ended", t + 200_000, t, t + 120_000, 120.0, "exit"),
              {"event_id": "m1", "type": "mode_segment", "device_id": "dev-1", "hotspot_id": None, "ts_ms": t + 5000,
               "mode": {"started_ms": t, "ended_ms": t + 5000, "mode": "foot", "distance_m": 6.5}},
              {"event_id": "s1", "type": "stop_started", "device_id": "dev-1", "hotspot_id": "hs-1", "ts_ms": t + 150_000,
               "stop": {"stop_id": "st-1", "started_ms": t + 30_000, "ended_ms": None, "duration_s": 120.0, "lat": 51.0, "lon": -1.0}}]
    final = ("SELECT visit_id, end_reason, exited_at IS NULL, dwell_s, version FROM hotspot.visits FINAL ORDER BY visit_id",
             # every column but when the row landed, which is the later insert's time
             "SELECT * EXCEPT (ingested_at) FROM hotspot.stops FINAL",
             "SELECT * EXCEPT (ingested_at) FROM hotspot.mode_segments FINAL")

    first = store.writer()
    for e in events:  # the uninterrupted run: one batch
        first.add(*patrol_event_row(e))
    first.flush()
    before = [store.rows(q) for q in final]
    assert before[0] == [("v-1", "exit", 0, 120.0, state_version(t + 200_000, True)),
                         ("v-2", "open", 1, 0.0, state_version(t + 40_000, False))]

    replay = store.writer()  # after a crash: the same input again, cut into different batches
    for i, e in enumerate(events):
        replay.add(*patrol_event_row(e))
        if i % 2 == 0:
            replay.flush()
    replay.flush()
    assert [store.rows(q) for q in final] == before
    store.admin.command("OPTIMIZE TABLE hotspot.visits FINAL")
    assert store.rows("SELECT visit_id, end_reason FROM hotspot.visits ORDER BY visit_id") == [("v-1", "exit"), ("v-2", "open")]


# --------------------------------------------------------------------------- Arrow inserts
def ping_records(t: int, n: int) -> tuple[list[dict], list[tuple], list[bool]]:
    """Pings as the worker has them: decoded records with NULLs, hot spot ids, low-accuracy flags."""
    recs = [{"device_id": f"dev-{i % 37}", "ts_ms": t + i * 997, "received_ms": t + i * 997 + 1500,
             "lat": 51.75 + (i % 101) * 1.37e-4, "lon": -1.26 + (i % 89) * 2.9e-4,
             "accuracy_m": None if i % 13 == 0 else 3.0 + (i % 40) / 3, "speed_mps": None if i % 7 == 0 else (i % 50) / 7,
             "heading_deg": None if i % 5 == 0 else (i * 37 % 3600) / 10, "altitude_m": None if i % 3 else 60.1 + i % 9,
             "battery": None if i % 4 else (i % 100) / 100, "source": ("simulator", "other", "", None)[i % 4], "extra": {}}
            for i in range(n)]
    hotspots = [() if i % 3 else (f"hs-{i % 20:03d}",) if i % 9 else ("hs-001", "hs-002") for i in range(n)]
    low = [(recs[i]["accuracy_m"] or 0) > 15 for i in range(n)]
    return recs, hotspots, low


def every_table_of_the_worker(w: ClickHouseWriter, t: int, pings: str) -> None:
    """A worker flush: pings as an Arrow batch, as columns or row by row (`pings`), the rest by rows."""
    from formats.records import hotspot_row, ping_row, rejected_row, retired_hotspot_row

    recs, hotspots, low = ping_records(t, 3000)
    if pings == "arrow":
        w.add_arrow("pings", ping_rows_arrow(recs, hotspots, low))
    elif pings == "columns":
        w.add_columns("pings", *ping_rows_columns(recs, hotspots, low))
    else:
        for rec, h, lo in zip(recs, hotspots, low):
            w.add("pings", ping_row(rec, hotspot_ids=h, low_accuracy=lo))
    for i in range(60):
        w.add(*patrol_event_row(visit_event(f"v-{i}", "visit_started", t + i, t - 30_000)))
        w.add(*patrol_event_row(visit_event(f"w-{i}", "visit_ended", t + i, t - 90_000, t + i, 90.5 + i, "exit")))
        w.add(*patrol_event_row({"event_id": f"m{i}", "type": "mode_segment", "device_id": f"dev-{i}", "hotspot_id": None,
                                 "ts_ms": t, "mode": {"started_ms": t - i * 1000, "ended_ms": t, "mode": "foot", "distance_m": 6.5 * i}}))
        stop = {"stop_id": f"st-{i}", "started_ms": t - 60_000, "ended_ms": t if i % 2 else None, "duration_s": 60.25,
                "lat": 51.0 + i / 1e3, "lon": -1.0}
        w.add(*patrol_event_row({"event_id": f"s{i}", "type": "stop_ended" if i % 2 else "stop_started", "device_id": "dev-1",
                                 "hotspot_id": "hs-1" if i % 3 else None, "ts_ms": t + i, "stop": stop}))
        ping = {"device_id": f"dev-{i}", "ts_ms": t + i, "received_ms": t + i + 5, "lat": 91.0, "lon": 0.5, "accuracy_m": 5.5,
                "speed_mps": None, "heading_deg": None, "altitude_m": None, "battery": 0.25, "source": "native"}
        w.add("pings_rejected", rejected_row({"device_id": None, "ping": None if i % 4 == 0 else ping, "raw": "{}" if i % 4 == 0 else None,
                                              "reason": "out_of_range", "detail": "lat", "stage": "worker", "rejected_ms": t + i},
                                             f"pings/0/{i}"))
    w.add("hotspots", hotspot_row({"id": "hs-1", "name": "Market", "geometry_geojson": "{}", "published_ms": t,
                                   "target_minutes": 15.0, "buffer_m": None, "active_from_ms": t - 1, "active_to_ms": None}))
    w.add("hotspots", retired_hotspot_row("hs-2", t))


WORKER_TABLES = ("pings", "visits", "stops", "mode_segments", "pings_rejected", "hotspots")


def written_columns(store, table: str) -> str:
    """The columns a writer fills, in table order: all but `ingested_at`, which ClickHouse stamps itself."""
    names = store.rows(f"SELECT name FROM system.columns WHERE database = 'hotspot' AND table = '{table}' "
                       "AND name != 'ingested_at' ORDER BY position")
    return ", ".join(n for (n,) in names)


@pytest.mark.parametrize("pings, arrow_inserts", [("arrow", None), ("columns", None), ("arrow", False), ("rows", None)])
def test_every_way_in_writes_exactly_the_rows_of_ping_row_add_and_the_standard_insert(store, pings, arrow_inserts):
    """The same flush the old way (ping_row, add, clickhouse-connect's insert) and another way, into two
    databases of one store: identical rows, column for column, type for type, Float32 bit for bit."""
    migrate(store.admin, "standard")
    t = now_ms()
    ours = store.writer(arrow_inserts=arrow_inserts)  # None: embedded chDB inserts through Arrow
    standard = ClickHouseWriter(store.dsn, "standard", arrow_inserts=False)
    store._writers.append(standard)
    every_table_of_the_worker(ours, t, pings)
    every_table_of_the_worker(standard, t, "rows")
    for w in (ours, standard):
        assert w.flush() == 3000 + 5 * 60 + 2
    if arrow_inserts is None:
        assert ours.inserts == {"arrow": len(WORKER_TABLES), "standard": 0} and ours.arrow_fallbacks == 0
    else:
        assert ours.inserts == {"arrow": 0, "standard": len(WORKER_TABLES)}
    for table in WORKER_TABLES:
        cols = written_columns(store, table)
        query = f"SELECT {cols}, toTypeName(tuple({cols})) FROM {{db}}.{table} ORDER BY ALL"
        theirs = store.rows(query.format(db="standard"))
        assert store.rows(query.format(db="hotspot")) == theirs and len(theirs) > 1, table
    bits = ("SELECT groupArray(tuple(reinterpretAsUInt32(ifNull(accuracy_m, 0)), reinterpretAsUInt32(ifNull(battery, 0)))) "
            f"FROM (SELECT {written_columns(store, 'pings')} FROM {{db}}.pings ORDER BY ALL)")
    assert store.rows(bits.format(db="hotspot")) == store.rows(bits.format(db="standard"))


def test_values_arrow_cannot_carry_exactly_go_through_the_standard_path(store):
    """A datetime for a DateTime64, a bool for an integer, tables with Map and Date columns: written as before."""
    migrate(store.admin, "standard")
    t = now_ms()
    visit = patrol_event_row(visit_event("v-1", "visit_ended", t, t - 60_000, t, 60.0, "exit"))[1]
    when = dt.datetime.fromtimestamp((t - 60_000) / 1000, dt.UTC)
    arrow = store.writer()
    standard = ClickHouseWriter(store.dsn, "standard", arrow_inserts=False)
    store._writers.append(standard)
    for w in (arrow, standard):
        w.add("visits", {**visit, "entered_at": when, "stop_count": True})
        w.add("activity", {"activity_id": "a-1", "user": "pc101", "device_id": "", "ts": t, "kind": "note", "hotspot_id": "",
                           "assignment_id": "", "note": "", "lat": None, "lon": None, "attributes": {"k": "v"}})
        assert w.flush() == 2
    assert arrow.inserts == {"arrow": 0, "standard": 2} and arrow.arrow_fallbacks == 1
    for table in ("visits", "activity"):
        cols = written_columns(store, table)
        assert store.rows(f"SELECT {cols} FROM hotspot.{table} ORDER BY ALL") == \
            store.rows(f"SELECT {cols} FROM standard.{table} ORDER BY ALL")
    # rows the standard path refuses are refused as before, and stay buffered
    w = store.writer()
    w.add("stops", {"stop_id": "s", "device_id": "d", "hotspot_id": "h", "started_at": t, "ended_at": None,
                    "duration_s": None, "lat": 0.0, "lon": 0.0, "version": 0})
    with pytest.raises(SinkRejected, match="None"):
        w.flush()
    assert w.pending_rows == 1 and w.attempts == 1 and w.arrow_fallbacks == 1
    w = store.writer()  # a value beyond Float32, from an Arrow batch: refused as ever
    recs, hotspots, low = ping_records(t, 3)
    recs[1]["accuracy_m"] = 1e39
    w.add_arrow("pings", ping_rows_arrow(recs, hotspots, low))
    with pytest.raises(SinkRejected, match="accuracy_m.*out of range"):
        w.flush()
    assert w.pending_rows == 3 and w.arrow_fallbacks == 1


class ArrowTrouble:
    """A real client whose Arrow inserts fail: `refusals` times as ClickHouse refusing them, `outages` times as an outage."""

    def __init__(self, real, refusals: int = 0, outages: int = 0):
        self.real, self.refusals, self.outages = real, refusals, outages
        self.raw_inserts = 0
        self.inserts = 0

    def raw_insert(self, *args, **kwargs):
        self.raw_inserts += 1
        if self.outages > 0:
            self.outages -= 1
            raise OperationalError("Error HTTPConnectionPool(host='ch', port=8123): Connection refused")
        if self.refusals > 0:
            self.refusals -= 1
            raise DatabaseError("Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)", code=53)
        return self.real.raw_insert(*args, **kwargs)

    def insert(self, *args, **kwargs):
        self.inserts += 1
        return self.real.insert(*args, **kwargs)

    def query(self, *args, **kwargs):
        return self.real.query(*args, **kwargs)

    def close(self):
        pass  # the real client is the store's


def stop_rows(n: int, t: int) -> dict[str, list]:
    return {"stop_id": [f"s-{i}" for i in range(n)], "device_id": ["d"] * n, "hotspot_id": ["h"] * n, "started_at": [t] * n,
            "ended_at": [None] * n, "duration_s": [0.0] * n, "lat": [0.0] * n, "lon": [0.0] * n, "version": list(range(n))}


def test_an_arrow_insert_clickhouse_refuses_is_written_by_the_standard_path(store):
    client = ArrowTrouble(store.admin, refusals=1)
    w = ClickHouseWriter(database=store.db, client_factory=lambda: client, retry=FAST_RETRY, arrow_inserts=True)
    t = now_ms()
    w.add_many("stops", stop_rows(10, t))
    assert w.flush() == 10
    assert (client.raw_inserts, client.inserts, w.attempts, w.arrow_fallbacks) == (1, 1, 1, 1) and w.healthy
    w.add_many("stops", stop_rows(5, t))  # that table stays on the standard path while this client lives
    assert w.flush() == 5 and (client.raw_inserts, client.inserts) == (1, 2)
    w.add_many("mode_segments", {"device_id": ["d"], "started_at": [t], "ended_at": [t], "mode": ["foot"],
                                 "distance_m": [1.0], "version": [t]})
    assert w.flush() == 1 and (client.raw_inserts, client.inserts) == (2, 2)
    assert store.rows("SELECT count(), uniqExact(stop_id) FROM hotspot.stops") == [(15, 10)]


def test_an_outage_during_an_arrow_insert_is_retried_like_any_other(store):
    client = ArrowTrouble(store.admin, outages=2)
    w = ClickHouseWriter(database=store.db, client_factory=lambda: client, retry=FAST_RETRY, arrow_inserts=True)
    w.add_many("stops", stop_rows(100, now_ms()))
    assert w.flush() == 100
    assert (client.raw_inserts, client.inserts, w.attempts, w.arrow_fallbacks) == (3, 0, 3, 0) and w.healthy
    assert store.rows("SELECT count() FROM hotspot.stops") == [(100,)]
