"""`hotspot export --pseudonymise`: tables for evaluators with officers and devices pseudonymised.

Thin: reports/export.py does the work (pseudonyms, coarsening, paging).
"""
from __future__ import annotations

import argparse
import sys

EXAMPLES = """examples:
  hotspot export --pseudonymise --from 2026-01-12 --to 2026-02-08 --out evaluation/
  hotspot export --pseudonymise --from 2026-01-12 --to 2026-01-18 --out eval/ --time-resolution 15min --grid-m 250

writes to DIR: visits.csv, stops.csv, mode_segments.csv, assignments.csv, activity.csv,
allocations.csv (pings.csv with --include-pings) and manifest.json. Officers, devices and ids made
from them are keyed pseudonyms (HMAC-SHA256 with the export salt: setting HOTSPOT_EXPORT_SALT, else
DATA_DIR/export.salt); activity notes are left out. --from and --to are trial days (06:00-05:59 London).
"""


def register(sub) -> None:
    p = sub.add_parser("export", help="pseudonymised export for evaluators",
                       description="Export patrol tables for an evaluation with officers and devices pseudonymised.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pseudonymise", action="store_true", required=True,
                   help="required: replace officers, devices and ids made from them by keyed pseudonyms")
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE", help="first trial day (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", required=True, metavar="DATE", help="last trial day (YYYY-MM-DD), included")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; files in it replaced)")
    p.add_argument("--time-resolution", metavar="STEP", help="floor every time to this step, e.g. 15min, 1h")
    p.add_argument("--grid-m", type=float, default=0.0, metavar="M",
                   help="move every position to the centre of its M-metre grid cell, e.g. 250")
    p.add_argument("--include-pings", action="store_true", help="also export raw pings (large; positions coarsened "
                                                                 "by --grid-m when given)")
    p.set_defaults(handler=_export)


def _export(args) -> int:
    import time

    from reports.export import ExportError, ExportOptions, export, load_salt, parse_resolution
    from reports.store import Store, StoreError
    from cli import CommandError
    from cli.report import parse_day
    from core.settings import get_settings

    a, b = parse_day(args.date_from, "--from"), parse_day(args.date_to, "--to")
    try:
        resolution_s = parse_resolution(args.time_resolution) if args.time_resolution else 0
    except ValueError as exc:
        raise CommandError(f"--time-resolution: {exc}") from None
    if args.grid_m < 0:
        raise CommandError("--grid-m must be positive")
    started = time.monotonic()
    say = lambda text: print(f"[{time.monotonic() - started:5.1f}s] {text}", file=sys.stderr, flush=True)  # noqa: E731
    store = Store()
    say(f"exporting trial days {a} to {b} from the {store.describe()}")
    try:
        counts = export(store, args.out, ExportOptions(a, b, resolution_s, args.grid_m, args.include_pings),
                        load_salt(get_settings()), progress=say)
    except (ExportError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    finally:
        store.close()
    say(f"wrote {sum(counts.values()):,} rows in {len(counts)} tables to {args.out}")
    return 0
