"""Retention per table as ClickHouse TTLs (sinks/retention.py, migration 0008).

The embedded engine is real ClickHouse: a TTL set here deletes rows at a merge
exactly as a server's would, so the tests force the merge (OPTIMIZE … FINAL)
and look at what is left.
"""
from __future__ import annotations

import gc

import time

import pytest

from sinks.clickhouse import load_migrations, make_client, migrate
from sinks.retention import RETENTION, apply_retention, current_ttls, days_by_table, ttl_expression
from core.settings import Settings

DAY_MS = 86_400_000


@pytest.fixture
def store(tmp_path):
    client = make_client(f"chdb://{tmp_path / 'ch'}")
    migrate(client, "hotspot", pings_ttl_days=30)
    yield client
    # chDB serves one store per process: close this one even when the test failed and its traceback
    # still holds the client, or every later test's store is refused.
    client.close()
    gc.collect()


@pytest.fixture
def store_before_audit_and_crimes(tmp_path):
    """A store as migrated before the tables `audit` (0009) and `crimes` (0007) existed: 0001-0006 and 0008."""
    client = make_client(f"chdb://{tmp_path / 'ch'}")
    migrate(client, "hotspot", pings_ttl_days=30,
            migrations=[m for m in load_migrations() if m.version <= 6 or m.version == 8])
    yield client
    client.close()
    gc.collect()


def test_migrations_0008_and_0010_give_every_table_with_officers_data_its_default_retention(store):
    ttls = current_ttls(store, "hotspot")
    defaults = Settings.model_construct()  # the fields' defaults, whatever the environment says
    for r in RETENTION:
        days = 30 if r.setting == "pings_ttl_days" else getattr(defaults, r.setting)
        assert ttls[r.table] == ttl_expression(r.time_column, days), r.table
    # raw pings the shortest; the force's hot spots and trial designs are kept
    kept = [getattr(defaults, r.setting) for r in RETENTION if r.setting != "pings_ttl_days"]
    assert min(kept) > defaults.pings_ttl_days
    assert ttls["hotspots"] is None and ttls["allocations"] is None
    assert 8 in {m.version for m in load_migrations()}


def test_a_changed_setting_is_applied_once_and_old_rows_expire(store):
    now_ms = int(time.time() * 1000)
    rows = [[f"v-{age}", "dev-1", "hs-1", now_ms - age * DAY_MS, None, 60.0, 0.0, 0.0, 0.0, 0, 3, "exit", 1]
            for age in (10, 200, 500)]
    store.insert("hotspot.visits", rows, column_names=["visit_id", "device_id", "hotspot_id", "entered_at", "exited_at",
                                                       "dwell_s", "foot_s", "vehicle_s", "stationary_s", "stop_count",
                                                       "ping_count", "end_reason", "version"])
    defaults = days_by_table(Settings.model_construct(pings_ttl_days=30))
    assert apply_retention(store, "hotspot", defaults) == []  # what 0008 set: nothing to do

    shorter = {**defaults, "visits": 100}
    changed = apply_retention(store, "hotspot", shorter)
    assert changed == [("visits", ttl_expression("entered_at", 730), ttl_expression("entered_at", 100))]
    assert apply_retention(store, "hotspot", shorter) == []  # only when different
    assert current_ttls(store, "hotspot")["pings"] == ttl_expression("ts", 30)  # the others untouched

    store.command("OPTIMIZE TABLE hotspot.visits FINAL")
    left = store.query("SELECT visit_id FROM hotspot.visits ORDER BY visit_id").result_rows
    assert left == [("v-10",)]  # 200 and 500 days old are past 100 days


def test_a_table_made_by_a_later_migration_gets_its_retention_once_it_exists(store_before_audit_and_crimes):
    store = store_before_audit_and_crimes
    days = days_by_table(Settings.model_construct(audit_ttl_days=2000))
    assert "audit" not in [t for t, _, _ in apply_retention(store, "hotspot", days)]  # absent: skipped
    # the audit table of the shared contract (sign-in and audit, migration 0009)
    store.command("CREATE TABLE hotspot.audit (ts DateTime64(3, 'UTC'), `user` String, role String, action String, "
                  "subject String, detail_json String, address String) ENGINE = MergeTree ORDER BY ts")
    changed = apply_retention(store, "hotspot", days)
    assert ("audit", None, ttl_expression("ts", 2000)) in changed
    assert current_ttls(store, "hotspot")["audit"] == ttl_expression("ts", 2000)


def test_a_table_that_cannot_take_this_ttl_is_skipped_with_a_warning(store_before_audit_and_crimes, caplog):
    store = store_before_audit_and_crimes
    days = days_by_table(Settings.model_construct())
    # a Distributed-like table with no TTL of its own, and a time column that may be NULL
    store.command("CREATE TABLE hotspot.crimes (occurred_at DateTime, category String) ENGINE = Memory")
    store.command("CREATE TABLE hotspot.audit (ts Nullable(DateTime64(3, 'UTC')), action String) "
                  "ENGINE = MergeTree ORDER BY action")
    with caplog.at_level("WARNING", logger="hotspot.retention"):
        changed = apply_retention(store, "hotspot", days)
    assert {t for t, _, _ in changed}.isdisjoint({"crimes", "audit"})
    assert "hotspot.crimes not applied: a Memory table" in caplog.text
    assert "hotspot.audit not applied: column ts is Nullable(DateTime64(3, 'UTC'))" in caplog.text
    assert current_ttls(store, "hotspot")["audit"] is None


def test_a_required_table_that_is_missing_is_an_error(store):
    store.command("DROP TABLE hotspot.activity")
    with pytest.raises(RuntimeError, match="hotspot.activity does not exist"):
        apply_retention(store, "hotspot", days_by_table(Settings.model_construct()))


def test_a_worker_applies_the_retention_settings_at_start_and_answers_healthz(make_broker, tmp_path):
    import json
    import urllib.request

    from tests.integration.live import LiveSystem

    broker = make_broker()
    broker.start()
    live = LiveSystem(tmp_path / "var", broker, extra_env={"HOTSPOT_VISITS_TTL_DAYS": "400",
                                                           "HOTSPOT_AUDIT_TTL_DAYS": "3000"})
    live.start_worker()
    try:
        engine = live.scalar("SELECT engine_full FROM system.tables WHERE database = 'hotspot' AND name = 'visits'")
        assert f"TTL {ttl_expression('entered_at', 400)}" in engine
        assert "retention of hotspot.visits set to 400 days" in live.log_text()
        # the worker's health check (docker-compose.yml) on its metrics port
        with urllib.request.urlopen(f"http://127.0.0.1:{live.metrics_port}/healthz", timeout=10) as r:
            assert r.status == 200
            assert json.loads(r.read()) == {"status": "ok", "sinks": {"worker": True, "records": True}}  # pings loop, record sink
    finally:
        live.stop_worker()
