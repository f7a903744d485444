"""`hotspot allocate`: a seeded, reproducible trial schedule from a hot-spot file, as CSV.

The schedule is computed by processors.allocation (pure); this module reads the
GeoJSON, writes the CSV and prints a balance summary. `schedule_rows(...)` are
the rows the ClickHouse `allocations` table takes.
"""
from __future__ import annotations

import argparse
import sys

from cli.args import bounded, iso_date
from core import topics

EXAMPLES = """examples:
  hotspot allocate --hotspots hotspots.geojson --design crossover --start 2025-03-03 --days 90 --seed 20250303 --out schedule.csv
  hotspot allocate --hotspots hotspots.geojson --design parallel --start 2025-03-03 --days 180 --seed 7 --block-by area --out schedule.csv
  hotspot allocate --hotspots analyst.geojson --design crossover --start 2025-03-03 --days 30 --seed 1 --group-by patrol_area
  hotspot allocate --hotspots hotspots.geojson --design crossover --start 2025-03-03 --days 90 --seed 5 --publish  # into ClickHouse

A trial day runs 06:00 to 05:59 local time (--tz, default Europe/London), named by
the date it starts. Crossover: each day half of each block's units are treated.
Parallel: half of each block's units are treated for the whole trial. Odd blocks
treat one more or one fewer on alternate days; a block of one alternates.
The same file, options and seed always give the same schedule.
"""


def register(sub) -> None:
    p = sub.add_parser("allocate", help="randomised trial schedule (crossover or parallel), seeded",
                       description="Allocate hot spots to treatment and control for a randomised patrol trial and "
                                   "write the schedule as CSV (one row per hot spot per trial day).",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hotspots", required=True, metavar="FILE", help="hot-spot GeoJSON (hotspot hotspots build, or analyst-made)")
    p.add_argument("--design", required=True, choices=("crossover", "parallel"), help="trial design")
    p.add_argument("--start", required=True, type=_as_date, metavar="DATE", help="first trial day, e.g. 2025-03-03")
    p.add_argument("--days", required=True, type=_days, metavar="N", help="number of trial days")
    p.add_argument("--seed", required=True, type=_seed, metavar="S", help="random seed (a whole number >= 0); record it")
    p.add_argument("--block-by", metavar="FIELD", help="feature property to balance within (e.g. an area code)")
    p.add_argument("--group-by", metavar="FIELD",
                   help="feature property naming hot spots randomised together as one unit (several patrol areas)")
    p.add_argument("--tz", default="Europe/London", metavar="ZONE", help="the force's time zone (default Europe/London)")
    p.add_argument("--trial-id", metavar="ID", help="trial identifier (default: DESIGN-START-seedS)")
    p.add_argument("--out", metavar="FILE", help="CSV to write (default: standard output)")
    p.add_argument("--publish", action="store_true",
                   help="also publish the schedule to the running system (Kafka `allocations`); "
                        "the worker records it in ClickHouse table `allocations`")
    p.set_defaults(handler=_allocate)


_as_date = iso_date("2025-03-03")
_days = bounded(int, lambda v: 1 <= v <= 3660, "days must be between 1 and 3660")
_seed = bounded(int, lambda v: v >= 0, "the seed must be >= 0")


def schedule_rows(schedule) -> list[dict]:
    """Rows for the ClickHouse `allocations` table; see processors.allocation.allocation_rows."""
    from processors.allocation import allocation_rows

    return allocation_rows(schedule)


def compute_schedule(args):
    """The Schedule for parsed `allocate` arguments (reads the hot-spot file; the rest is pure)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from cli import CommandError
    from formats.hotspots import units as hotspot_units
    from processors.allocation import AllocationError, make_schedule, make_units

    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"unknown time zone {args.tz!r} (e.g. Europe/London)") from None
    try:
        triples = hotspot_units(args.hotspots, args.block_by, args.group_by)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    try:
        units = make_units(triples)
        return make_schedule(units, design=args.design, start=args.start, days=args.days, seed=args.seed,
                             tz=args.tz, trial_id=args.trial_id)
    except AllocationError as exc:
        raise CommandError(f"{args.hotspots}: {exc}") from None


def write_schedule_csv(schedule, out) -> None:
    import csv

    from processors.allocation import ALLOCATION_COLUMNS

    w = csv.writer(out, lineterminator="\n")
    w.writerow(ALLOCATION_COLUMNS)
    for r in schedule_rows(schedule):
        w.writerow([r["trial_id"], r["hotspot_id"], r["day"].isoformat(),
                    r["starts_at"].strftime("%Y-%m-%dT%H:%M:%SZ"), r["ends_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    r["arm"], r["block"], r["design"], r["seed"]])


def _allocate(args) -> int:
    from processors.allocation import balance
    from cli import CommandError

    schedule = compute_schedule(args)
    if args.out:
        try:
            with open(args.out, "w", newline="", encoding="utf-8") as fh:
                write_schedule_csv(schedule, fh)
        except OSError as exc:
            raise CommandError(f"cannot write {args.out}: {exc.strerror}") from None
    else:
        try:
            write_schedule_csv(schedule, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. piped into `head`: the reader has what it wanted
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    b = balance(schedule)
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    say(f"trial {schedule.trial_id}: {schedule.design}, {b['units']} units in {len(b['blocks'])} "
        f"block{'s' if len(b['blocks']) != 1 else ''}, {b['days']} days from {schedule.start} (06:00 {schedule.tz})")
    sizes = ", ".join(f"{k or '(all)'}={v}" for k, v in list(b["blocks"].items())[:12])
    say(f"  block sizes: {sizes}{' ...' if len(b['blocks']) > 12 else ''}")
    say(f"  units treated per day: {b['treated_per_day']['min']}-{b['treated_per_day']['max']}; "
        f"treated days per unit: {b['treated_days_per_unit']['min']}-{b['treated_days_per_unit']['max']}")
    singles = [k or "(all)" for k, v in b["blocks"].items() if v == 1]
    if singles:
        say(f"  warning: {len(singles)} block(s) hold one unit and simply alternate ({', '.join(singles[:5])})")
    if args.out:
        say(f"wrote {len(schedule.allocations):,} rows to {args.out}")
    if args.publish:
        count = publish_schedule(schedule)
        say(f"published {count:,} allocation rows to the running system (ClickHouse table allocations)")
    return 0


def allocation_record(row: dict) -> dict:
    """The Avro `Allocation` of one `schedule_rows` row."""
    return {"trial_id": row["trial_id"], "hotspot_id": row["hotspot_id"], "day": row["day"].isoformat(),
            "starts_ms": int(row["starts_at"].timestamp() * 1000), "ends_ms": int(row["ends_at"].timestamp() * 1000),
            "arm": row["arm"], "block": row["block"] or "", "design": row["design"], "seed": int(row["seed"])}


def publish_schedule(schedule) -> int:
    import asyncio

    from core.feeds import publish_records
    from core.settings import get_settings

    s = get_settings()
    keyed = [(f"{r['trial_id']}/{r['day'].isoformat()}/{r['hotspot_id']}", allocation_record(r))
             for r in schedule_rows(schedule)]
    return asyncio.run(publish_records(s.bootstrap_servers, topics.ALLOCATIONS, "Allocation", keyed, s.partitions))
