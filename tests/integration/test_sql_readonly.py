"""`hotspot sql` is read-only for real: the attack catalogue against a real store, directly and through the
owner's query server, with the schema and row counts unchanged; limits on time, memory and rows; a query
whose client went away is killed; nothing is shared between requests; a missing store is reported."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from tests.conftest import HOTSPOT, wait_until
from tests.integration.test_query_server import OWNER, post
from tests.sql_attacks import LEGITIMATE, attacks

SEED = textwrap.dedent("""
    import time
    from sinks.clickhouse import make_client, migrate
    def seed(dsn):
        c = make_client(dsn); migrate(c)
        now = int(time.time() * 1000)  # inside the pings TTL
        c.insert("hotspot.pings", [["dev-2", now, now, 51.76, -1.25, "owntracks", []],
                                   ["dev-1", now - 1000, now, 51.75, -1.26, "native", ["hs-1"]]],
                 column_names=["device_id", "ts", "received_at", "lat", "lon", "source", "hotspot_ids"])
        return c
""")

# What must not change: every database, table (with its definition and row count) and column.
FINGERPRINT = [
    "SELECT name FROM system.databases ORDER BY name",
    "SELECT database, name, engine, create_table_query, total_rows FROM system.tables "
    "WHERE database IN ('hotspot', 'default') ORDER BY database, name",
    "SELECT database, table, name, type FROM system.columns WHERE database IN ('hotspot', 'default') "
    "ORDER BY database, table, name",
    "SELECT (SELECT count() FROM hotspot.pings), (SELECT count() FROM hotspot.schema_migrations)",
]

DIRECT = SEED + textwrap.dedent("""
    import hashlib, json, sys
    from clickhouse_connect.driver.exceptions import ClickHouseError
    from sinks.clickhouse import make_readonly_client
    from sinks.sql_guard import QueryFailed, QueryNotAllowed, ReadonlyLimits, new_tag, readonly_settings, run_readonly_query
    dsn, queries, fingerprint = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    admin = seed(dsn)
    def digest():
        return hashlib.sha256(json.dumps([admin.query(q).result_rows for q in fingerprint], default=str).encode()).hexdigest()
    limits = ReadonlyLimits(30.0, 1 << 30, 100_000)
    before = digest()
    results = []
    for q in queries:  # what `hotspot sql` runs when no process owns the store
        try:
            results.append({"rows": run_readonly_query(dsn, "hotspot", q, limits).rows})
        except (QueryNotAllowed, QueryFailed) as exc:
            results.append({"refused": str(exc)})
    # Under the checker, the engine itself: the per-query client refuses writes and setting changes.
    engine = []
    ro = make_readonly_client(dsn, "hotspot", readonly_settings(limits, new_tag()))
    for statement in ("CREATE TABLE default.q (x UInt8) ENGINE = Memory", "SELECT 1 SETTINGS max_result_rows = 0",
                      "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'x String')"):
        try:
            ro.query(statement)
            engine.append("ran")
        except ClickHouseError as exc:
            engine.append(str(exc).splitlines()[0])
    print(json.dumps({"before": before, "after": digest(), "results": results, "engine": engine}, default=str))
""")


def test_every_attack_is_refused_on_the_direct_path_and_the_store_is_unchanged(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    catalogue = attacks(out_dir)
    queries = catalogue + [q for q, _ in LEGITIMATE]
    proc = subprocess.run([sys.executable, "-c", DIRECT, f"chdb://{tmp_path / 'ch'}", json.dumps(queries),
                           json.dumps(FINGERPRINT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for query, result in zip(catalogue, report["results"]):
        assert "refused" in result, (query, result)
        assert result["refused"] and "\n" not in result["refused"], query
    for (query, rows), result in zip(LEGITIMATE, report["results"][len(catalogue):]):
        assert result == {"rows": rows}, query
    assert report["after"] == report["before"]
    assert list(out_dir.iterdir()) == []
    assert all("READONLY" in line for line in report["engine"]), report["engine"]


def start_owner(tmp_path, **env):
    """A process that owns a seeded store and serves queries; returns (process, env for `hotspot`, data_dir)."""
    data_dir = tmp_path / "var"
    dsn = f"chdb://{data_dir / 'clickhouse'}"
    owner_env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")} | env
    proc = subprocess.Popen([sys.executable, "-c", OWNER, dsn, str(data_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=owner_env)
    line = proc.stdout.readline().split()
    assert line[:1] == ["serving"], line
    cli = {**owner_env, "HOTSPOT_DATA_DIR": str(data_dir), "HOTSPOT_CLICKHOUSE_DSN": dsn}
    return proc, cli, data_dir


@pytest.fixture
def owner_factory(tmp_path):
    started = []

    def start(**env):
        owner = start_owner(tmp_path, **env)
        started.append(owner[0])
        return owner

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _owner_info(data_dir):
    info = json.loads((data_dir / "clickhouse.owner").read_text())
    return info["port"], info["token"]


def _digest(port, token) -> str:
    answers = []
    for q in FINGERPRINT:
        status, body = post(port, token, {"sql": q})
        assert status == 200, (q, body)
        answers.append(body["rows"])
    return hashlib.sha256(json.dumps(answers, default=str).encode()).hexdigest()


def test_every_attack_is_refused_through_the_query_server_and_the_store_is_unchanged(owner_factory, tmp_path):
    proc, env, data_dir = owner_factory()
    port, token = _owner_info(data_dir)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = _digest(port, token)
    for query in attacks(out_dir):
        status, body = post(port, token, {"sql": query})
        assert status == 400, (query, body)
        assert body["error"] and "\n" not in body["error"], query
    for query, rows in LEGITIMATE:
        status, body = post(port, token, {"sql": query})
        assert (status, body.get("rows")) == (200, rows), (query, body)
    assert _digest(port, token) == before
    assert list(out_dir.iterdir()) == []


def sql(env, *args, timeout_s=120):
    return subprocess.run([HOTSPOT, "sql", *args], capture_output=True, text=True, env=env, timeout=timeout_s)


STACKED = ("SELECT 1; CREATE TABLE default.p (x UInt8) ENGINE=MergeTree ORDER BY x; "
           "INSERT INTO default.p VALUES (7); SELECT 2")


def test_the_issue_s_stacked_statements_are_refused_by_hotspot_sql_on_both_paths(owner_factory, tmp_path, cli_env):
    # directly: nobody owns this store
    dsn = f"chdb://{tmp_path / 'direct'}"
    subprocess.run([sys.executable, "-c", SEED + f"seed({dsn!r})"], check=True, timeout=120)
    env = {**cli_env, "HOTSPOT_CLICKHOUSE_DSN": dsn}
    for e in (env, owner_factory()[1]):
        refused = sql(e, STACKED)
        assert refused.returncode == 1
        assert refused.stderr.strip() == "hotspot sql: only one statement may run: remove the ';' and what follows it"
        gone = sql(e, "--format", "csv", "EXISTS TABLE default.p")
        assert gone.returncode == 0 and gone.stdout.splitlines() == ["result", "0"], gone.stdout + gone.stderr


def test_select_with_describe_and_show_tables_still_work_through_hotspot_sql_on_both_paths(owner_factory, tmp_path,
                                                                                            cli_env):
    dsn = f"chdb://{tmp_path / 'direct'}"
    subprocess.run([sys.executable, "-c", SEED + f"seed({dsn!r})"], check=True, timeout=120)
    for env in ({**cli_env, "HOTSPOT_CLICKHOUSE_DSN": dsn}, owner_factory()[1]):
        cases = {
            "SELECT device_id FROM hotspot.pings ORDER BY device_id": ["device_id", "dev-1", "dev-2"],
            "WITH 'dev-1' AS d SELECT count() AS n FROM hotspot.pings WHERE device_id = d": ["n", "1"],
        }
        for query, lines in cases.items():
            done = sql(env, "--format", "csv", query)
            assert done.returncode == 0 and done.stdout.splitlines() == lines, done.stderr
        described = sql(env, "--format", "csv", "DESCRIBE TABLE hotspot.pings")
        assert described.returncode == 0
        assert described.stdout.splitlines()[:2] == [
            "name,type,default_type,default_expression,comment,codec_expression,ttl_expression",
            "device_id,LowCardinality(String),,,,,"]
        tables = sql(env, "--format", "csv", "SHOW TABLES FROM hotspot")
        assert tables.returncode == 0 and {"pings", "schema_migrations"} <= set(tables.stdout.splitlines())


def _both_paths(owner_factory, tmp_path, cli_env, **limits) -> tuple[dict, dict]:
    """Environments for `hotspot sql` with `limits`: on a seeded store of its own (direct), and through an owner."""
    dsn = f"chdb://{tmp_path / 'direct'}"
    subprocess.run([sys.executable, "-c", SEED + f"seed({dsn!r})"], check=True, timeout=120)
    return {**cli_env, "HOTSPOT_CLICKHOUSE_DSN": dsn, **limits}, owner_factory(**limits)[1]


def test_a_result_over_the_row_limit_is_a_clear_error_on_both_paths(owner_factory, tmp_path, cli_env):
    for env in _both_paths(owner_factory, tmp_path, cli_env, HOTSPOT_SQL_MAX_RESULT_ROWS="1"):
        over = sql(env, "SELECT device_id FROM hotspot.pings")
        assert over.returncode == 1
        assert over.stderr.strip() == ("hotspot sql: the result has more than sql_max_result_rows (1) rows: "
                                       "add a LIMIT or aggregate")
        within = sql(env, "--format", "csv", "SELECT count() AS n FROM hotspot.pings")
        assert within.stdout.splitlines() == ["n", "2"], within.stderr


ENDLESS = "SELECT count() FROM numbers(100000000000000)"  # days of work on any machine


def test_a_long_query_is_cut_by_the_time_limit_on_both_paths(owner_factory, tmp_path, cli_env):
    for env in _both_paths(owner_factory, tmp_path, cli_env, HOTSPOT_SQL_MAX_EXECUTION_TIME_S="1"):
        cut = sql(env, ENDLESS)
        assert cut.returncode == 1
        assert cut.stderr.strip() == "hotspot sql: the query ran longer than sql_max_execution_time_s (1 s) and was stopped"


def _running(port, token) -> int:
    status, body = post(port, token, {"sql": "SELECT count() FROM system.processes WHERE query LIKE '%100000000000000%' "
                                             "AND query_id != queryID()"})
    assert status == 200, body
    return body["rows"][0][0]


def test_a_query_whose_client_goes_away_is_cancelled_and_blocks_nobody(owner_factory):
    proc, env, data_dir = owner_factory(HOTSPOT_SQL_MAX_EXECUTION_TIME_S="3600")
    port, token = _owner_info(data_dir)
    body = json.dumps({"sql": ENDLESS}).encode()
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(b"POST /query HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode()
                   + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                   + b"\r\n\r\n" + body)
    wait_until(lambda: _running(port, token) == 1, 60, "the endless query to be running")
    # While it runs, other requests are answered: nothing waits on it.
    assert post(port, token, {"sql": "SELECT 1 AS one"}) == (200, {"columns": ["one"], "types": ["UInt8"], "rows": [[1]]})
    client.close()  # the analyst gave up (Ctrl-C, a closed laptop)
    wait_until(lambda: _running(port, token) == 0, 60, "the abandoned query to be killed")


def test_concurrent_requests_each_get_their_own_answer(owner_factory):
    proc, env, data_dir = owner_factory()
    port, token = _owner_info(data_dir)
    answers: dict[int, tuple] = {}

    def ask(i: int) -> None:
        sql_text = (f"SELECT {i} AS i, number FROM numbers({i})" if i % 3 else
                    f"SELECT {i}; SELECT * FROM hotspot.pings")  # failing requests in between
        answers[i] = post(port, token, {"sql": sql_text})

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(1, 25)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i in range(1, 25):
        status, body = answers[i]
        if i % 3:
            assert (status, body["rows"]) == (200, [[i, n] for n in range(i)]), i
        else:
            assert status == 400 and body["error"].startswith("only one statement may run"), (i, body)


def test_hotspot_sql_without_a_store_says_so_and_creates_nothing(tmp_path, cli_env):
    missing = tmp_path / "var"
    done = sql(cli_env, "SELECT 1")
    assert done.returncode == 1
    assert done.stderr.strip() == (f"hotspot sql: no ClickHouse store at {missing / 'clickhouse'}: start `hotspot run` "
                                   "(or a worker) first, or point HOTSPOT_DATA_DIR or HOTSPOT_CLICKHOUSE_DSN at an "
                                   "existing store")
    assert not missing.exists()


def test_a_query_over_the_memory_limit_is_stopped_on_both_paths(owner_factory, tmp_path, cli_env):
    for env in _both_paths(owner_factory, tmp_path, cli_env, HOTSPOT_SQL_MAX_MEMORY_BYTES="16000000"):
        # 100 million UInt64 in one array: 800 MB, fifty times the limit
        big = sql(env, "SELECT length(groupArray(number)) FROM numbers(100000000)")
        assert big.returncode == 1
        assert big.stderr.strip() == ("hotspot sql: the query needed more memory than sql_max_memory_bytes "
                                      "(16000000 bytes) and was stopped")
