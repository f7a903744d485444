"""`hotspot report dosage|compliance|trial`: the analysts' reports as CSV, PNG and index.html.

Thin: parses arguments and calls the `reports` package (reports/build.py, reports/render.py).
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  hotspot report dosage --from 2026-01-12 --to 2026-01-18 --out reports/week3
  hotspot report compliance --from 2026-01-12 --to 2026-01-18 --out reports/week3-compliance
  hotspot report trial --from 2026-01-12 --to 2026-02-08 --out reports/trial --trial T1

Trial days run 06:00 to 05:59 Europe/London; --from and --to are trial days, both included.
Reads the configured ClickHouse: through the running worker when it owns the embedded store (as
`hotspot sql` does), the store directly when nothing runs, or a ClickHouse server.
writes to DIR: one CSV per table, one PNG per plot, index.html (summary, plots, tables).
"""


def register(sub) -> None:
    p = sub.add_parser("report", help="dosage, compliance and trial reports (CSV, PNG, index.html)",
                       description="Build a report from ClickHouse: tables as CSV, plots as PNG and an index.html "
                                   "with a plain-English summary.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("dosage", "compliance", "trial"), help="which report")
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE", help="first trial day (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", required=True, metavar="DATE", help="last trial day (YYYY-MM-DD), included")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; files in it replaced)")
    p.add_argument("--trial", metavar="ID", help="trial id (trial report; needed when several trials overlap)")
    p.set_defaults(handler=_report)


def parse_day(text: str, option: str):
    import datetime as dt

    from cli import CommandError

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option} {text!r} is not a date (YYYY-MM-DD)") from None


def _report(args) -> int:
    import time

    from reports.build import build_report
    from reports.render import write_report
    from reports.store import Store, StoreError
    from cli import CommandError

    a, b = parse_day(args.date_from, "--from"), parse_day(args.date_to, "--to")
    if b < a:
        raise CommandError(f"--to {b} is before --from {a}")
    started = time.monotonic()
    say = lambda text: print(f"[{time.monotonic() - started:5.1f}s] {text}", file=sys.stderr, flush=True)  # noqa: E731
    store = Store()
    say(f"{args.kind} report for trial days {a} to {b} from the {store.describe()}")
    try:
        report = build_report(store, args.kind, a, b, trial_id=args.trial, progress=say)
        paths = write_report(report, args.out, progress=say)
    except StoreError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    finally:
        store.close()
    print(report.summary)
    for note in report.notes:
        print(f"note: {note}")
    say(f"wrote {len(paths)} files to {args.out} (open {args.out}/index.html)")
    return 0
