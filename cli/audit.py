"""`hotspot audit`: who saw which officers' locations, and who signed in, from the ClickHouse `audit` table.

The gateway records every sign-in (officer-api), every connection to the control
room's live feed (`live_view`) and every look at an officer's path (`path_view`,
subject = the device) on the Kafka topic `audit`; the worker stores them. This
command reads them back through the same read-only path as `hotspot sql`
(cli/sql.py), newest first.
"""
from __future__ import annotations

import argparse
import re

EXAMPLES = """examples:
  hotspot audit                                  # the last 24 hours, newest first
  hotspot audit --since 7d --action path_view    # who looked at officers' paths this week
  hotspot audit --user sgt-jones --format csv > jones.csv
"""
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def register(sub) -> None:
    p = sub.add_parser("audit", help="list the audit trail (sign-ins, live map views, path views)",
                       description="List audit records from ClickHouse: who signed in, who watched the live map, "
                                   "whose path was looked at by whom. Newest first.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--since", default="24h", type=_duration_s, metavar="DURATION",
                   help="how far back: 90s, 30m, 24h, 7d (default 24h)")
    p.add_argument("--user", help="only this user")
    p.add_argument("--action", help="only this action (signin_ok, signin_failed, signout, live_view, path_view, ...)")
    p.add_argument("--limit", type=int, default=1000, help="most rows shown (default 1000)")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format (default table)")
    p.set_defaults(handler=_audit)


def _duration_s(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 30m, 24h or 7d")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def audit_query(since_s: int, user: str | None = None, action: str | None = None, limit: int = 1000) -> str:
    where = [f"ts >= now64(3) - toIntervalSecond({int(since_s)})"]
    if user:
        where.append(f"user = {_quote(user)}")
    if action:
        where.append(f"action = {_quote(action)}")
    return ("SELECT ts, user, role, action, subject, address, detail_json FROM hotspot.audit "
            f"WHERE {' AND '.join(where)} ORDER BY ts DESC LIMIT {max(1, int(limit))}")


def _audit(args) -> int:
    from cli.sql import print_rows, run_readonly

    cols, rows = run_readonly(audit_query(args.since, args.user, args.action, args.limit))
    print_rows(cols, rows, args.format)
    return 0
