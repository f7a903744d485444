"""`hotspot sql "SELECT ..."`: a read-only query against the configured ClickHouse.

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
    p.add_argument("query", help="a SELECT (or SHOW/DESCRIBE) statement")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.set_defaults(handler=_sql)


def run_readonly(query: str):
    """Return (column_names, rows); raises CommandError with ClickHouse's message on failure."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from sinks.clickhouse import StoreBusy, is_embedded, make_client, query_readonly
    from streams.cli import CommandError
    from streams.settings import get_settings

    s = get_settings()
    if is_embedded(s.effective_clickhouse_dsn) and _owner_running(s):
        # Asking the owner first keeps chDB from printing its lock error on the way.
        return _via_owner(query, s, StoreBusy("the embedded ClickHouse store is owned by a running process"))
    try:
        # readonly=1 is a session setting: this client is opened for this one query.
        client = make_client(s.effective_clickhouse_dsn, database=s.clickhouse_database)
        columns, _, rows = query_readonly(client, query)
    except StoreBusy as exc:
        return _via_owner(query, s, exc)
    except ClickHouseError as exc:
        raise CommandError(str(exc).strip().splitlines()[0]) from None
    return columns, rows


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
    from streams.cli import CommandError

    try:
        return query_owner(s.data_dir, query, dsn=s.effective_clickhouse_dsn)
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
