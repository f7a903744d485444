"""The ClickHouse engine (embedded chDB) behind the same client and migrations as a server."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from sinks.clickhouse import Migration, applied_versions, load_migrations, make_client, migrate
from tests.conftest import HOTSPOT


def test_migrations_apply_once_and_are_recorded(tmp_path):
    client = make_client(f"chdb://{tmp_path / 'ch'}")
    first = migrate(client, "hotspot", pings_ttl_days=30)
    assert [m.version for m in first] == [m.version for m in load_migrations()]
    assert migrate(client, "hotspot", pings_ttl_days=30) == []
    assert set(applied_versions(client, "hotspot")) == {m.version for m in first}
    ddl = client.query("SHOW CREATE TABLE hotspot.pings").result_rows[0][0]
    assert "TTL toDateTime(ts) + toIntervalDay(30)" in ddl


def test_an_applied_migration_that_was_edited_is_refused(tmp_path):
    client = make_client(f"chdb://{tmp_path / 'ch'}")
    original = Migration(1, "things", "CREATE TABLE IF NOT EXISTS {db}.things (a UInt8) ENGINE = MergeTree ORDER BY a;")
    migrate(client, "hotspot", migrations=[original])
    edited = Migration(1, "things", original.sql.replace("UInt8", "UInt16"))
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        migrate(client, "hotspot", migrations=[edited])


def test_a_store_written_by_one_process_is_read_by_the_next(tmp_path):
    dsn = f"chdb://{tmp_path / 'ch'}"
    now_ms = int(time.time() * 1000)  # inside the pings TTL
    writer = textwrap.dedent(f"""
        from sinks.clickhouse import make_client, migrate
        c = make_client({dsn!r}); migrate(c)
        c.insert("hotspot.pings", [["dev-1", {now_ms}, {now_ms}, 51.75, -1.26, "native", ["hs-1"]],
                                   ["dev-2", {now_ms + 1000}, {now_ms + 1000}, 51.76, -1.25, "owntracks", []]],
                 column_names=["device_id", "ts", "received_at", "lat", "lon", "source", "hotspot_ids"])
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, timeout=120)
    reader = textwrap.dedent(f"""
        from sinks.clickhouse import make_client
        c = make_client({dsn!r})
        print(c.query("SELECT device_id, toUnixTimestamp64Milli(ts), hotspot_ids FROM hotspot.pings ORDER BY device_id").result_rows)
    """)
    out = subprocess.run([sys.executable, "-c", reader], check=True, timeout=120, capture_output=True, text=True).stdout
    assert out.strip() == str([("dev-1", now_ms, ["hs-1"]), ("dev-2", now_ms + 1000, [])])


def test_hotspot_sql_answers_read_only_queries_and_refuses_writes(tmp_path, cli_env):
    dsn = f"chdb://{tmp_path / 'ch'}"
    migrate(make_client(dsn))
    env = {**cli_env, "HOTSPOT_CLICKHOUSE_DSN": dsn}
    ok = subprocess.run([HOTSPOT, "sql", "--format", "csv", "SELECT name FROM system.tables WHERE database = 'hotspot' AND name IN ('pings', 'schema_migrations') ORDER BY name"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["name", "pings", "schema_migrations"]
    bad = subprocess.run([HOTSPOT, "sql", "INSERT INTO hotspot.pings (device_id) VALUES ('x')"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("hotspot sql: only one read-only statement may run (SELECT, WITH ... SELECT, "
                                  "DESCRIBE, SHOW, EXISTS, EXPLAIN SELECT); INSERT is not allowed")


def test_an_embedded_store_owned_by_a_running_process_is_reported_busy(tmp_path):
    dsn = f"chdb://{tmp_path / 'ch'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from sinks.clickhouse import make_client; c = make_client({dsn!r}); print('open', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        probe = subprocess.run(
            [sys.executable, "-c", f"from sinks.clickhouse import make_client, StoreBusy\ntry:\n make_client({dsn!r})\nexcept StoreBusy as e:\n print('busy:', e)"],
            capture_output=True, text=True, timeout=120)
        assert probe.stdout.startswith("busy: the embedded ClickHouse store"), probe.stdout + probe.stderr
    finally:
        holder.communicate("\n", timeout=60)
