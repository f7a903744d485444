"""The officer app's tables on the real engine (issue 14): migration 0009, the record rows, compliance from
an app assignment, and the gateway's dosage queries (gateway/dosage.py) against visits."""
from __future__ import annotations

from gateway.dosage import queries, snapshot_from_rows
from formats.records import activity_row, assignment_row, audit_row
# `client`: the migrated store of fixed-date rows that test_sink_tables' tests use too (a fixture, imported)
from tests.integration.test_sink_tables import client, insert, ms, visit  # noqa: F401


ASSIGNMENT = {"assignment_id": "a1", "user": "officer1", "device_id": "app-officer1", "hotspot_id": "HS-01",
              "assigned_ms": ms("2024-05-01T10:00:00"), "officer_lat": 51.5, "officer_lon": -0.1, "distance_m": 400.0,
              "candidates": 3, "trial_day": "2024-05-01", "arm": "treatment", "seed": 2**62 + 5,
              "eligible": ["HS-01", "HS-02", "HS-03"], "weights": [0.5, 0.25, 0.125], "dosage_known": True,
              "target_minutes": 10.0}


def test_assignment_rows_keep_the_randomisation_and_repeat_without_doubling(client):
    for _ in range(2):  # a worker restart between insert and commit stores it again
        insert(client, "assignments", [assignment_row(ASSIGNMENT)])
    rows = client.query("SELECT assignment_id, seed, eligible, weights, dosage_known, target_minutes, toString(trial_day) "
                        "FROM hotspot.assignments FINAL").result_rows
    assert rows == [("a1", 2**62 + 5, ["HS-01", "HS-02", "HS-03"], [0.5, 0.25, 0.125], 1, 10.0, "2024-05-01")]


def test_a_version_1_assignment_still_stores(client):
    v1 = {k: v for k, v in ASSIGNMENT.items() if k not in ("seed", "eligible", "weights", "dosage_known", "target_minutes")}
    insert(client, "assignments", [assignment_row(v1)])
    assert client.query("SELECT seed, eligible, dosage_known FROM hotspot.assignments").result_rows == [(None, [], None)]


def test_audit_and_activity_rows(client):
    audit = {"audit_id": "x1", "ts_ms": ms("2024-05-01T09:00:00"), "user": "sgt1", "role": "supervisor",
             "action": "signin_ok", "subject": "sgt1", "detail_json": "{}", "address": "10.1.2.3"}
    insert(client, "audit", [audit_row(audit), audit_row(audit)])
    assert client.query("SELECT user, role, action, address FROM hotspot.audit FINAL").result_rows == [
        ("sgt1", "supervisor", "signin_ok", "10.1.2.3")]
    act = {"activity_id": "c1", "user": "officer1", "device_id": "app-officer1", "ts_ms": ms("2024-05-01T10:20:00"),
           "kind": "community", "hotspot_id": "HS-01", "assignment_id": "a1", "note": "spoke to the shop", "lat": 51.5,
           "lon": -0.1, "attributes": {"client_id": "c-1"}}
    insert(client, "activity", [activity_row(act), activity_row(act)])
    assert client.query("SELECT count() FROM hotspot.activity FINAL").result_rows == [(1,)]


def test_compliance_fills_from_an_app_assignment(client):
    insert(client, "assignments", [assignment_row(ASSIGNMENT)])
    insert(client, "visits", [visit("v1", "app-officer1", "HS-01", "2024-05-01T10:06:00", "2024-05-01T10:18:00", 720)])
    rows = client.query("SELECT assignment_id, visited, dwell_minutes, arrival_s, target_minutes, complied "
                        "FROM hotspot.compliance").result_rows
    assert rows == [("a1", 1, 12.0, 360.0, 10.0, 1)]


def test_the_gateways_dosage_queries(client):
    insert(client, "visits", [
        visit("v1", "app-officer1", "HS-01", "2024-05-01T10:00:00", "2024-05-01T10:12:00", 720),
        visit("v2", "sim-1", "HS-01", "2024-05-01T04:30:00", "2024-05-01T05:30:00", 3600),  # 30 min before 06:00 BST=05:00 UTC
        visit("v3", "app-officer1", "HS-02", "2024-05-01T11:00:00", None, 300),             # open, 5 min so far
    ])
    day_start, day_end = ms("2024-05-01T05:00:00"), ms("2024-05-02T05:00:00")
    q1, q2 = queries("hotspot", day_start, day_end)
    per_hotspot = client.query(q1).result_rows
    per_device = client.query(q2).result_rows
    snap = snapshot_from_rows(day_start, 1.0, per_hotspot, per_device)
    assert snap.minutes == {"HS-01": 42.0, "HS-02": 5.0}
    assert snap.device_minutes == {"app-officer1": {"HS-01": 12.0, "HS-02": 5.0}}
    assert list(snap.open_visits) == ["app-officer1"]
    open_visit = snap.open_visits["app-officer1"]
    assert (open_visit.hotspot_id, open_visit.entered_ms, open_visit.dwell_s) == ("HS-02", ms("2024-05-01T11:00:00"), 300.0)


def test_the_dosage_queries_pass_the_read_only_guard(client, tmp_path):
    """They reach ClickHouse the `hotspot sql` way (sinks/sql_guard.py): checked, limited, read-only."""
    from sinks.sql_guard import ReadonlyLimits, run_readonly_query

    insert(client, "visits", [visit("v1", "app-officer1", "HS-01", "2024-05-01T10:00:00", "2024-05-01T10:12:00", 720)])
    limits = ReadonlyLimits(10.0, 1 << 30, 100_000)
    q1, q2 = queries("hotspot", ms("2024-05-01T05:00:00"), ms("2024-05-02T05:00:00"))
    dsn = f"chdb://{tmp_path / 'ch'}"
    assert [list(r) for r in run_readonly_query(dsn, "hotspot", q1, limits).rows] == [["HS-01", 12.0]]
    assert [r[:3] for r in run_readonly_query(dsn, "hotspot", q2, limits).rows] == [["app-officer1", "HS-01", 12.0]]
