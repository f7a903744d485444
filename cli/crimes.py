"""`hotspot crimes load FILE...`: crime records into ClickHouse for the trial report's outcomes.

Thin: the files are read by formats/crimes.py and written by reports/crimes.py.
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  hotspot crimes load 2026-01-thames-valley-street.csv
  hotspot crimes load incidents.csv --harm-table force_harm.csv

input: police.uk street-level CSV, or a generic CSV (occurred_at, lat, lon, category [, harm]).
Each record is placed in the hot spots published now; loading a file again replaces its rows.
police.uk records carry only their month: they count in no trial day.
"""


def register(sub) -> None:
    p = sub.add_parser("crimes", help="load crime records for trial outcomes",
                       description="Crime records into ClickHouse table crimes (trial report outcomes).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser("load", help="load police.uk or generic crime CSV files", epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    load.add_argument("files", nargs="+", metavar="FILE", help="crime CSV files")
    load.add_argument("--harm-table", metavar="FILE", help="the force's harm weights (default: the shipped table)")
    load.add_argument("--tz", default="Europe/London", help="time zone of times without an offset (default Europe/London)")
    load.set_defaults(handler=_load)


def _load(args) -> int:
    from processors.hotspots.harm import HarmTableError
    from reports.crimes import load_crimes
    from reports.store import Store, StoreError
    from cli import CommandError
    from formats.crimes import CrimeFileError

    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    store = Store()
    say(f"loading into the {store.describe()}")
    try:
        for path in args.files:
            r = load_crimes(store, path, harm_table_path=args.harm_table, tz=args.tz, progress=say)
            bad = ", ".join(f"{n} {reason}" for reason, n in r.bad.most_common()) or "none"
            say(f"{path}: {r.loaded:,} records loaded ({r.format}), {r.in_hotspots:,} inside one of "
                f"{r.hotspots} hot spots, {r.without_harm:,} without a harm weight; rows skipped: {bad}")
    except (CrimeFileError, HarmTableError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{exc.filename or ''}: {exc.strerror or exc}") from None
    finally:
        store.close()
    return 0
