"""The patrol tables and views (migrations 0002+) on the real engine: columns, replacement, dosage, compliance."""
from __future__ import annotations

import datetime as dt
import gc

import pytest

from tests.conftest import KEEP_FIXED_DATES

from sinks.clickhouse import load_migrations, make_client, migrate
from formats.records import hotspot_row, patrol_event_row, retired_hotspot_row

UTC = dt.timezone.utc


def ms(text: str) -> int:
    """Epoch ms of an ISO time written in UTC."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# The views are checked on fixed days around the spring 2024 clock change, older than the default
# retention of visits and assignments (730 days, sinks/retention.py): keep them for this store.

@pytest.fixture
def client(tmp_path):
    c = make_client(f"chdb://{tmp_path / 'ch'}")
    migrate(c, "hotspot", pings_ttl_days=30, retention_days=KEEP_FIXED_DATES)
    yield c
    c.close()
    gc.collect()


def columns(client, table: str) -> list[tuple[str, str]]:
    return client.query(f"SELECT name, type FROM system.columns WHERE database = 'hotspot' AND table = '{table}' "
                        "ORDER BY position").result_rows


def test_every_statement_of_the_new_migrations_can_run_twice(client):
    for mig in load_migrations():
        if mig.version >= 2:
            for stmt in mig.statements(db="hotspot", pings_ttl_days=30):
                client.command(stmt)
    tables = {name for (name,) in client.query("SELECT name FROM system.tables WHERE database = 'hotspot'").result_rows}
    assert {"pings", "visits", "stops", "mode_segments", "hotspots", "pings_rejected", "assignments", "activity",
            "allocations", "visits_current", "stops_current", "mode_segments_current", "hotspots_current",
            "dosage_daily", "compliance"} <= tables


def test_table_columns_match_the_replay_files(client):
    # visits.csv, stops.csv and modes.csv columns, in order, then the replacing version and when the row landed
    assert [n for n, _ in columns(client, "visits")] == [
        "visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "observed_s", "inferred_s",
        "foot_s", "vehicle_s", "stationary_s", "stop_count", "ping_count", "end_reason", "version", "ingested_at"]
    assert [n for n, _ in columns(client, "stops")] == [
        "stop_id", "device_id", "hotspot_id", "started_at", "ended_at", "duration_s", "lat", "lon", "version",
        "ingested_at"]
    assert [n for n, _ in columns(client, "mode_segments")] == [
        "device_id", "started_at", "ended_at", "mode", "distance_m", "version", "ingested_at"]
    types = dict(columns(client, "visits"))
    assert types["entered_at"] == "DateTime64(3, 'UTC')" and types["exited_at"] == "Nullable(DateTime64(3, 'UTC'))"
    ddl = client.query("SHOW CREATE TABLE hotspot.pings_rejected").result_rows[0][0]
    assert "TTL toDateTime(received_at) + toIntervalDay(30)" in ddl


def test_every_row_says_when_it_reached_clickhouse(client):
    import time

    before_ms = int(time.time() * 1000)
    insert(client, "visits", [visit("v9", "dev-9", "hs-A", "2024-03-30T05:30:00", None, 60)])
    after_ms = int(time.time() * 1000)
    (landed,) = client.query("SELECT toUnixTimestamp64Milli(ingested_at) FROM hotspot.visits").result_rows[0]
    assert before_ms - 1000 <= landed <= after_ms + 1000   # the insert's clock, not a value the writer sent
    assert dict(columns(client, "pings"))["ingested_at"] == "DateTime64(3, 'UTC')"


def insert(client, table: str, rows: list[dict]) -> None:
    names = list(rows[0])
    client.insert(f"hotspot.{table}", [[r[n] for n in names] for r in rows], column_names=names)


def visit(visit_id, device, hotspot, entered, exited, dwell_s, *, foot_s=None, reason="exit", version=1):
    return {"visit_id": visit_id, "device_id": device, "hotspot_id": hotspot, "entered_at": ms(entered),
            "exited_at": None if exited is None else ms(exited), "dwell_s": float(dwell_s),
            "foot_s": float(dwell_s if foot_s is None else foot_s), "vehicle_s": 0.0, "stationary_s": 0.0,
            "stop_count": 0, "ping_count": 10, "end_reason": "open" if exited is None else reason, "version": version}


@pytest.fixture
def patrols(client):
    """Visits around the trial-day boundary (06:00 London) and the spring clock change (2024-03-31 01:00 UTC)."""
    insert(client, "visits", [
        # 05:30-06:30 GMT: half on trial day 03-29, half on 03-30; written open first, then closed
        visit("v1", "dev-1", "hs-A", "2024-03-30T05:30:00", None, 600, version=10),
        visit("v1", "dev-1", "hs-A", "2024-03-30T05:30:00", "2024-03-30T06:30:00", 3600, version=11),
        # 05:50-06:10 BST (04:50-05:10 UTC) on the morning the clocks went forward: 10 min each side
        visit("v2", "dev-2", "hs-A", "2024-03-31T04:50:00", "2024-03-31T05:10:00", 1200, foot_s=600),
        # still open: 10 minutes so far
        visit("v3", "dev-3", "hs-B", "2024-03-30T10:00:00", None, 600),
    ])
    return client


def test_visits_current_keeps_the_closed_row_of_a_visit_written_open_then_closed(patrols):
    assert patrols.query("SELECT visit_id, end_reason, dwell_s FROM hotspot.visits_current ORDER BY visit_id").result_rows == [
        ("v1", "exit", 3600.0), ("v2", "exit", 1200.0), ("v3", "open", 600.0)]


def test_daily_dosage_splits_visits_at_0600_london_across_the_clock_change(patrols):
    rows = patrols.query("SELECT hotspot_id, toString(trial_day), dwell_minutes, foot_minutes, visits, officers, open_visits "
                         "FROM hotspot.dosage_daily ORDER BY hotspot_id, trial_day").result_rows
    assert rows == [
        ("hs-A", "2024-03-29", 30.0, 30.0, 1, 1, 0),
        ("hs-A", "2024-03-30", 40.0, 35.0, 1, 2, 0),
        ("hs-A", "2024-03-31", 10.0, 5.0, 0, 1, 0),
        ("hs-B", "2024-03-30", 10.0, 10.0, 1, 1, 1),
    ]


def test_compliance_counts_the_officer_time_in_the_assigned_hot_spot_within_the_assignment_window(patrols):
    insert(patrols, "hotspots", [hotspot_row({"id": "hs-B", "name": "B", "geometry_geojson": "{}", "target_minutes": 5.0,
                                              "published_ms": ms("2024-03-01T00:00:00")})])

    def assignment(aid, user, device, hotspot, at, target):
        return {"assignment_id": aid, "user": user, "device_id": device, "hotspot_id": hotspot, "assigned_at": ms(at),
                "trial_day": None, "arm": "treatment", "target_minutes": target, "officer_lat": None, "officer_lon": None,
                "distance_m": None, "candidates": None}

    insert(patrols, "assignments", [
        # window 05:00-05:45 (the officer's next assignment): 15 of v1's 60 minutes fall inside
        assignment("a1", "u1", "dev-1", "hs-A", "2024-03-30T05:00:00", 20.0),
        # window 05:45-06:00 (end of trial day 03-29); dev-1 never went to hs-B; target from the hot spot
        assignment("a2", "u1", "dev-1", "hs-B", "2024-03-30T05:45:00", None),
        # dev-3 arrives an hour later and has been there 10 minutes so far
        assignment("a3", "u2", "dev-3", "hs-B", "2024-03-30T09:00:00", 8.0),
        # no device, no target anywhere
        assignment("a4", "u3", "", "hs-A", "2024-03-30T09:00:00", None),
    ])
    rows = patrols.query("SELECT assignment_id, toString(window_end), toString(trial_day), visits, visited, dwell_minutes, "
                         "arrival_s, target_minutes, dose_ratio, complied FROM hotspot.compliance ORDER BY assignment_id").result_rows
    assert rows == [
        ("a1", "2024-03-30 05:45:00.000", "2024-03-29", 1, 1, 15.0, 1800.0, 20.0, 0.75, 0),
        ("a2", "2024-03-30 06:00:00.000", "2024-03-29", 0, 0, 0.0, None, 5.0, 0.0, 0),
        ("a3", "2024-03-31 05:00:00.000", "2024-03-30", 1, 1, 10.0, 3600.0, 8.0, 1.25, 1),
        ("a4", "2024-03-31 05:00:00.000", "2024-03-30", 0, 0, 0.0, None, None, None, None),
    ]


def test_hotspots_current_shows_the_latest_version_including_retirement(client):
    rows = [hotspot_row({"id": "hs-1", "name": "Market", "geometry_geojson": "{}", "published_ms": 1000}),
            hotspot_row({"id": "hs-1", "name": "Market Sq", "geometry_geojson": "{}", "published_ms": 2000}),
            hotspot_row({"id": "hs-2", "name": "Station", "geometry_geojson": "{}", "published_ms": 1500})]
    insert(client, "hotspots", rows + rows)  # published twice: identical versions collapse
    insert(client, "hotspots", [retired_hotspot_row("hs-2", 3000)])
    assert client.query("SELECT id, name, version, retired FROM hotspot.hotspots_current ORDER BY id").result_rows == [
        ("hs-1", "Market Sq", 2000, 0), ("hs-2", "", 3000, 1)]
    assert client.query("SELECT count() FROM hotspot.hotspots FINAL").result_rows == [(4,)]


def test_stop_and_mode_rows_from_patrol_events_replace_by_key(client):
    t = ms("2024-05-01T12:00:00")
    stop = {"type": "stop_started", "device_id": "dev-1", "hotspot_id": "hs-1", "ts_ms": t + 120_000,
            "stop": {"stop_id": "st-1", "started_ms": t, "ended_ms": None, "duration_s": 120.0, "lat": 51.0, "lon": -1.0}}
    ended = {**stop, "type": "stop_ended", "ts_ms": t + 300_000, "stop": {**stop["stop"], "ended_ms": t + 290_000, "duration_s": 290.0}}
    mode = {"type": "mode_segment", "device_id": "dev-1", "hotspot_id": None, "ts_ms": t,
            "mode": {"started_ms": t, "ended_ms": t + 60_000, "mode": "vehicle", "distance_m": 700.0}}
    for e in (ended, stop, mode, mode):  # order of arrival does not matter, the version decides
        table, row = patrol_event_row(e)
        insert(client, table, [row])
    assert client.query("SELECT stop_id, toUnixTimestamp64Milli(ended_at), duration_s FROM hotspot.stops_current").result_rows == [
        ("st-1", t + 290_000, 290.0)]
    assert client.query("SELECT mode, distance_m FROM hotspot.mode_segments_current").result_rows == [("vehicle", 700.0)]
    with pytest.raises(ValueError, match="no table"):
        patrol_event_row({"type": "unknown"})


def test_an_open_visits_progress_row_counts_in_dosage_until_its_bridged_end_replaces_it(client):
    from processors.model import VisitEnded, VisitProgress
    from formats.records import patrol_event_row, visit_progress_row
    from formats.records import event_record

    t0 = ms("2024-05-01T10:00:00")
    # Open, 19 min in (issue 12: the control room showed 0), then a silence of 6 min bridged, then its end.
    progress = VisitProgress("v7", "dev-7", "hs-A", t0, t0 + 19 * 60_000, 1140.0, 1140.0, 0.0, 1000.0, 0.0,
                             140.0, 1, 229)
    insert(client, "visits", [visit_progress_row(progress)])
    rows = client.query("SELECT end_reason, dwell_s, observed_s, inferred_s FROM hotspot.visits_current").result_rows
    assert rows == [("open", 1140.0, 1140.0, 0.0)]
    daily = client.query("SELECT dwell_minutes, observed_minutes, bridged_minutes, open_visits "
                         "FROM hotspot.dosage_daily").result_rows
    assert daily == [(19.0, 19.0, 0.0, 1)]
    ended = VisitEnded("v7", "dev-7", "hs-A", t0, t0 + 40 * 60_000, 2400.0, 2000.0, 0.0, 400.0, 2, 300, "exit",
                       2040.0, 360.0)
    table, row = patrol_event_row(event_record(ended))
    insert(client, table, [row])
    rows = client.query("SELECT end_reason, dwell_s, observed_s, inferred_s FROM hotspot.visits_current").result_rows
    assert rows == [("exit", 2400.0, 2040.0, 360.0)]
    daily = client.query("SELECT dwell_minutes, observed_minutes, bridged_minutes, open_visits "
                         "FROM hotspot.dosage_daily").result_rows
    assert daily == [(40.0, 34.0, 6.0, 0)]
