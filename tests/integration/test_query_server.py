"""`hotspot sql` while another process owns the embedded store: through that process's read-only query server."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import pytest

from tests.conftest import HOTSPOT, running, wait_until

OWNER = textwrap.dedent("""
    import sys, time
    from sinks.clickhouse import make_client, migrate
    from sinks.query_server import serve_readonly_queries
    dsn, data_dir = sys.argv[1], sys.argv[2]
    c = make_client(dsn); migrate(c)
    now = int(time.time() * 1000)  # inside the pings TTL
    c.insert("hotspot.pings", [["dev-2", now, now, 51.76, -1.25, "owntracks", []], ["dev-1", now - 1000, now, 51.75, -1.26, "native", ["hs-1"]]],
             column_names=["device_id", "ts", "received_at", "lat", "lon", "source", "hotspot_ids"])
    server = serve_readonly_queries(dsn, data_dir)
    print("serving", server.port, flush=True)
    sys.stdin.readline()
    server.close()
    print("closed", flush=True)
""")


@pytest.fixture
def owner(tmp_path, cli_env):
    """A process that owns the store and serves queries; yields (process, env for `hotspot`, data_dir)."""
    data_dir = tmp_path / "var"
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    proc = subprocess.Popen([sys.executable, "-c", OWNER, dsn, str(data_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert line[:1] == ["serving"], line
    yield proc, {**cli_env, "HOTSPOT_DATA_DIR": str(data_dir), "HOTSPOT_CLICKHOUSE_DSN": dsn}, data_dir
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def sql(env, *args):
    return subprocess.run([HOTSPOT, "sql", *args], capture_output=True, text=True, env=env, timeout=120)


def post(port: int, token: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/query", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_hotspot_sql_answers_through_the_process_that_owns_the_store(owner):
    proc, env, data_dir = owner
    ok = sql(env, "--format", "csv", "SELECT device_id, hotspot_ids FROM hotspot.pings ORDER BY device_id")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["device_id,hotspot_ids", "dev-1,['hs-1']", "dev-2,[]"]
    table = sql(env, "SELECT count() AS n FROM hotspot.pings")
    assert table.returncode == 0 and table.stdout.splitlines() == ["n", "-", "2", "(1 row)"]


def test_writes_through_the_owner_are_refused(owner):
    proc, env, data_dir = owner
    bad = sql(env, "INSERT INTO hotspot.pings (device_id) VALUES ('x')")
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("hotspot sql: only one read-only statement may run (SELECT, WITH ... SELECT, "
                                  "DESCRIBE, SHOW, EXISTS, EXPLAIN SELECT); INSERT is not allowed")
    owner_file = json.loads((data_dir / "clickhouse.owner").read_text())
    for statement in ("DROP TABLE hotspot.pings", "SET readonly = 0",
                      "SELECT * FROM file('/etc/hostname', LineAsString)"):
        status, body = post(owner_file["port"], owner_file["token"], {"sql": statement})
        assert status == 400, (statement, body)
    status, body = post(owner_file["port"], owner_file["token"], {"sql": "SELECT count() FROM hotspot.pings"})
    assert (status, body["rows"]) == (200, [[2]])


def test_the_owner_file_is_private_names_the_owner_and_goes_away_on_close(owner):
    proc, env, data_dir = owner
    path = data_dir / "clickhouse.owner"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = json.loads(path.read_text())
    assert info["pid"] == proc.pid and info["port"] > 0 and len(info["token"]) >= 32
    assert info["store"] == str((data_dir / "clickhouse").resolve())
    status, body = post(info["port"], "wrong-" + info["token"], {"sql": "SELECT 1"})
    assert (status, body) == (401, {"error": "missing or wrong token"})
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "closed"
    assert not path.exists()
    proc.wait(timeout=30)


def test_a_missing_or_stale_owner_file_gives_one_clear_line(tmp_path, cli_env):
    data_dir = tmp_path / "var"
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    env = {**cli_env, "HOTSPOT_DATA_DIR": str(data_dir), "HOTSPOT_CLICKHOUSE_DSN": dsn}
    holder = subprocess.Popen([sys.executable, "-c", f"from sinks.clickhouse import make_client; c = make_client({dsn!r}); "
                                                     "print('open', flush=True); input()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        missing = sql(env, "SELECT 1")
        assert missing.returncode == 1
        assert missing.stderr.strip().splitlines()[-1] == (
            f"hotspot sql: the embedded ClickHouse store {data_dir / 'clickhouse'} is in use by another process, "
            f"and the owning process does not serve queries (no {data_dir / 'clickhouse.owner'})")
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait(timeout=30)
        wait_until(lambda: not running(gone.pid), 10, "the short-lived process to be gone", interval_s=0.01)
        (data_dir / "clickhouse.owner").write_text(json.dumps({"pid": gone.pid, "port": 1, "token": "t",
                                                               "store": str((data_dir / "clickhouse").resolve())}))
        stale = sql(env, "SELECT 1")
        assert stale.returncode == 1
        assert stale.stderr.strip().splitlines()[-1].endswith(
            f"clickhouse.owner is stale: process {gone.pid} is not running"), stale.stderr
    finally:
        holder.communicate("\n", timeout=60)
    os.unlink(data_dir / "clickhouse.owner")
