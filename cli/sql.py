"""`hotspot sql "SELECT ..."`: a read-only query against the configured ClickHouse.

Exactly one read-only statement runs, under the `sql_max_*` limits (sinks/sql_guard.py). A ClickHouse
server is read through `clickhouse_readonly_dsn`, a user that can only read; an embedded store that does
not exist is reported, never created.

When the embedded store is owned by a running process (`hotspot run`, a
worker), the query goes to that process's read-only query server, found
through `<data_dir>/clickhouse.owner` (see sinks/query_server.py).
"""
from __future__ import annotations

import argparse
import json
import sys

EXAMPLES = """examples:
  hotspot sql "SELECT count() FROM hotspot.pings"
  hotspot sql --format csv "SELECT * FROM hotspot.visits FINAL ORDER BY entered_at" > visits.csv
"""


def register(sub) -> None:
    p = sub.add_parser("sql", help="run a read-only SQL query", description="Run one read-only query against ClickHouse (embedded or server) and print the result.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("query", help="one SELECT, WITH ... SELECT, DESCRIBE, SHOW, EXISTS or EXPLAIN SELECT statement")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.set_defaults(handler=_sql)


def run_readonly(query: str):
    """Return (column_names, rows); raises CommandError with one clear line on any refusal or failure.

    What may run and how is sinks/sql_guard.py's: one read-only statement, on a client of its own opened
    with readonly=1 and the `sql_max_*` limits.
    """
    from sinks.clickhouse import StoreBusy, StoreMissing, embedded_path, is_embedded
    from sinks.sql_guard import QueryFailed, QueryNotAllowed, ReadonlyLimits, run_readonly_query
    from cli import CommandError
    from core.settings import get_settings

    s = get_settings()
    limits = ReadonlyLimits.from_settings(s)
    dsn = s.effective_clickhouse_dsn
    if is_embedded(dsn):
        if _owner_running(s):
            # Asking the owner first keeps chDB from printing its lock error on the way.
            return _via_owner(query, s, StoreBusy("the embedded ClickHouse store is owned by a running process"))
    elif s.clickhouse_readonly_dsn:
        dsn = s.clickhouse_readonly_dsn
    else:
        raise CommandError("the ClickHouse store is a server: set HOTSPOT_CLICKHOUSE_READONLY_DSN to a ClickHouse "
                           "user that can only read (README: read-only ClickHouse user)")
    try:
        result = run_readonly_query(dsn, s.clickhouse_database, query, limits)
    except StoreMissing:
        raise CommandError(f"no ClickHouse store at {embedded_path(dsn)}: start `hotspot run` (or a worker) first, "
                           "or point HOTSPOT_DATA_DIR or HOTSPOT_CLICKHOUSE_DSN at an existing store") from None
    except StoreBusy as exc:
        return _via_owner(query, s, exc)
    except (QueryNotAllowed, QueryFailed) as exc:
        raise CommandError(str(exc)) from None
    return result.columns, result.rows


def _owner_running(s) -> bool:
    from sinks.query_server import OwnerUnavailable, read_owner

    try:
        read_owner(s.data_dir, dsn=s.effective_clickhouse_dsn)
    except OwnerUnavailable:
        return False
    return True


def _via_owner(query: str, s, busy: Exception):
    """The embedded store is owned by a running process: ask that process (sinks/query_server.py)."""
    from sinks.query_server import OwnerUnavailable, QueryRefused, query_owner
    from cli import CommandError

    try:
        # The owner stops the query at its own sql_max_execution_time_s; wait a little longer than that.
        return query_owner(s.data_dir, query, dsn=s.effective_clickhouse_dsn,
                           timeout_s=s.sql_max_execution_time_s + 30)
    except QueryRefused as exc:
        raise CommandError(str(exc)) from None
    except OwnerUnavailable as exc:
        raise CommandError(f"{busy}, and {exc}") from None


def _sql(args) -> int:
    cols, rows = run_readonly(args.query)
    print_rows(cols, rows, args.format)
    return 0


def print_rows(cols, rows, fmt: str, out=sys.stdout) -> None:
    if fmt == "json":
        for r in rows:
            out.write(json.dumps(dict(zip(cols, r)), default=str) + "\n")
        return
    if fmt == "csv":
        import csv

        w = csv.writer(out)
        w.writerow(cols)
        w.writerows(rows)
        return
    text = [[str(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(cols)]
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in text:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
