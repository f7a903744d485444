"""`hotspot hotspots ...`: build hot spots from crime records (publish, list and retire join later).

Each sub-command is added by its own `add_<name>(actions)` function listed in
SUBCOMMANDS, so a new one is a function and a line.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cli.args import bounded, iso_date

EXAMPLES = """examples:
  hotspot hotspots build --crimes 2024-*-street.csv --out hotspots.geojson
  hotspot hotspots build --crimes extract.csv --out hs.geojson --shape hex --day-night --top 30 --preview map.png
  hotspot hotspots build --crimes extract.csv --out hs.geojson --harm-share 0.25 --gi-star --exclude prisons.geojson
"""

BUILD_HELP = """Build hot spots from crime records.

Reads police.uk street-level CSV files and/or generic CSV files
(occurred_at, lat, lon, category[, harm]), weighs each offence by the harm
table, bins harm into square or hexagonal cells in a metric grid (British
National Grid in Great Britain, otherwise a UTM zone), ranks cells by harm
over the window and writes the chosen cells as GeoJSON hot spots, each with
statistics and a plain-English briefing.

Default categories are serious violence as the data labels it (violence with
injury, robbery, possession of weapons, sexual offences, and police.uk's
combined 'Violence and sexual offences'). police.uk gives only the month of
each offence, so hot spots built from it have no peak days or hours, and
--day-night cannot use it.
"""

_as_date = iso_date("2024-06-30")
_share = bounded(float, lambda v: 0 < v <= 1, "the harm share must be between 0 and 1, e.g. 0.5")
_positive_int = bounded(int, lambda v: v >= 1, "must be at least 1")
_positive_float = bounded(float, lambda v: v > 0, "must be greater than 0")


def register(sub) -> None:
    p = sub.add_parser("hotspots", help="build hot spots from crime records",
                       description="Hot spots: build them from crime records.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for add in SUBCOMMANDS:
        add(actions)


def add_build(actions) -> None:
    a = actions.add_parser("build", help="build hot spots from crime CSV files into GeoJSON",
                           description=BUILD_HELP, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--crimes", nargs="+", required=True, metavar="FILE", help="police.uk street-level or generic crime CSV files")
    a.add_argument("--out", required=True, metavar="FILE", help="GeoJSON file to write")
    g = a.add_argument_group("cells")
    g.add_argument("--shape", choices=("square", "hex"), default="square", help="cell shape (default square)")
    g.add_argument("--cell-size", type=_positive_float, default=150.0, metavar="METRES",
                   help="side of a square, or width across flats of a hexagon (default 150)")
    g.add_argument("--crs", type=int, metavar="EPSG", help="metric CRS to grid in (default: 27700 in Great Britain, else UTM)")
    g.add_argument("--exclude", action="append", default=[], metavar="FILE",
                   help="GeoJSON polygons to leave out (crimes inside and cells centred inside); repeatable")
    g.add_argument("--merge-adjacent", action="store_true", help="merge chosen cells sharing an edge into one hot spot")
    g = a.add_argument_group("what and when")
    g.add_argument("--categories", metavar="LIST",
                   help="comma-separated categories as the data labels them, or 'all' (default: serious violence per the harm table)")
    g.add_argument("--harm-table", metavar="FILE", help="the force's harm table CSV (default: the shipped table; see its header)")
    g.add_argument("--window", type=_positive_int, default=365, metavar="DAYS", help="days of records to rank on (default 365)")
    g.add_argument("--as-of", type=_as_date, metavar="DATE", help="last day of the window (default: the day or month of the newest record)")
    g.add_argument("--day-night", action="store_true", help="rank day and night 12-hour periods separately (needs times of day)")
    g.add_argument("--day-starts", type=int, default=7, choices=range(24), metavar="HOUR",
                   help="local hour the 12-hour day period starts (default 7: day 07:00-19:00, night 19:00-07:00)")
    g.add_argument("--tz", default="Europe/London", metavar="ZONE", help="the force's time zone (default Europe/London)")
    g = a.add_argument_group("selection")
    pick = g.add_mutually_exclusive_group()
    pick.add_argument("--top", type=_positive_int, metavar="N", help="the N cells with most harm, per period (default 20)")
    pick.add_argument("--harm-share", type=_share, metavar="FRACTION", help="the fewest cells holding this share of harm, e.g. 0.5")
    g.add_argument("--gi-star", action="store_true", help="keep only cells whose Getis-Ord Gi* is significantly high")
    g.add_argument("--gi-alpha", type=_share, default=0.05, metavar="P", help="significance level for --gi-star (default 0.05)")
    g = a.add_argument_group("output")
    g.add_argument("--preview", metavar="PNG", help="also draw the hot spots over the crime points")
    g.add_argument("--rows", type=int, default=25, metavar="N", help="hot spots listed in the terminal summary (default 25)")
    a.set_defaults(handler=_build)


SUBCOMMANDS = [add_build]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _build(args) -> int:
    from collections import Counter
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from processors.hotspots import NO_TIME_OF_DAY, BuildOptions, HarmTableError, build_hotspots
    from cli import CommandError
    from formats.crimes import CrimeFileError, read_crime_files, read_harm_table, read_mask, write_geojson

    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"unknown time zone {args.tz!r} (e.g. Europe/London)") from None
    try:
        harm_table = read_harm_table(args.harm_table)
    except HarmTableError as exc:
        raise CommandError(f"{args.harm_table}: {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot read the harm table {args.harm_table}: {exc.strerror}") from None
    try:
        masks = [g for path in args.exclude for g in read_mask(path)]
    except CrimeFileError as exc:
        raise CommandError(str(exc)) from None

    if args.crs is not None:
        _check_metric_crs(args.crs)
    t0 = time.monotonic()

    def progress(rep):
        bad = sum(rep.bad.values())
        _say(f"read {rep.path} ({rep.format}): {rep.rows:,} rows, {rep.records:,} usable, {bad:,} bad "
             f"[{time.monotonic() - t0:.1f}s]")

    try:
        records, reports = read_crime_files(args.crimes, tz=args.tz, progress=progress)
    except CrimeFileError as exc:
        raise CommandError(str(exc)) from None

    categories = tuple(c.strip() for c in args.categories.split(",") if c.strip()) if args.categories else None
    options = BuildOptions(shape=args.shape, cell_size_m=args.cell_size, window_days=args.window, as_of=args.as_of,
                           day_night=args.day_night, day_starts_hour=args.day_starts, categories=categories,
                           top_n=args.top, harm_share=args.harm_share, gi_star=args.gi_star, gi_alpha=args.gi_alpha,
                           merge_adjacent=args.merge_adjacent, exclude=tuple(masks), tz=args.tz, epsg=args.crs)
    _say(f"building {args.shape} cells of {args.cell_size:g} m from {len(records):,} records ...")
    build = build_hotspots(records, harm_table, options)
    _say(f"built in {time.monotonic() - t0:.1f}s")

    bad = sum((r.bad for r in reports), start=Counter()) + build.bad_rows
    _report_rows(reports, build, bad)
    if build.unknown_categories:
        _say("warning: no records of category " + ", ".join(repr(c) for c in build.unknown_categories)
             + " (categories found: " + ", ".join(sorted(set(records.categories))[:12]) + ")")
    if not any(v["offences"] for v in build.totals.values()):
        if args.day_night and build.bad_rows.get(NO_TIME_OF_DAY):
            raise CommandError("--day-night needs times of day, and these records have none "
                               "(police.uk data gives only the month)")
        raise CommandError(f"no usable records of the chosen categories in the window "
                           f"{build.window_from} to {build.window_to}; nothing to rank")

    selection = f"top {args.top or 20}" if args.harm_share is None else f"fewest cells holding {args.harm_share:g} of harm"
    if args.day_night:
        selection += ", day and night ranked separately"
    if args.gi_star:
        selection += f", Gi* significantly high at false discovery rate {args.gi_alpha:g}"
    collection = build.feature_collection(selection=selection)
    try:
        write_geojson(args.out, collection)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror}") from None
    if build.hotspots:
        print_summary(build, rows=args.rows)
    else:
        _say("warning: no cell met the selection" + (" (none is significantly high under Gi*)" if args.gi_star else "")
             + "; the file has no hot spots")
    for note in build.notes:
        _say(f"note: {note}")
    if args.preview:
        try:
            drawn = draw_preview(build, args.preview)
        except OSError as exc:
            raise CommandError(f"cannot write {args.preview}: {exc.strerror}") from None
        _say(f"preview: {args.preview} ({drawn.labels} ranked hot spots, {drawn.offences_shown:,} offences"
             + (f", basemap from {drawn.basemap}" if drawn.basemap else ", no basemap") + ")")
        for note in drawn.notes:
            _say(f"preview note: {note}")
    _say(f"wrote {len(build.hotspots)} hot spots to {args.out} [{time.monotonic() - t0:.1f}s]")
    return 0


def _check_metric_crs(epsg: int) -> None:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from cli import CommandError

    try:
        crs = CRS.from_epsg(epsg)
    except CRSError:
        raise CommandError(f"--crs {epsg}: not a known EPSG code") from None
    if not crs.is_projected or crs.axis_info[0].unit_name not in ("metre", "meter"):
        raise CommandError(f"--crs {epsg}: not a projected CRS in metres (cells must be measured on the ground)")


def _report_rows(reports, build, bad) -> None:
    for rep in reports:
        for reason, n in sorted(rep.bad.items(), key=lambda kv: -kv[1]):
            first = rep.first_bad_row.get(reason)
            where = f" (first at data row {first})" if first else ""
            _say(f"  {rep.path}: {n:,} {'row' if n == 1 else 'rows'} skipped: {reason}{where}")
    for reason, n in sorted(build.bad_rows.items(), key=lambda kv: -kv[1]):
        _say(f"  {n:,} {'record' if n == 1 else 'records'} skipped: {reason}")
    kept = {k: v for k, v in build.filtered.items() if v}
    if kept:
        _say("  left out by choice: " + ", ".join(f"{k} {v:,}" for k, v in kept.items()))
    _say(f"window {build.window_from} to {build.window_to}; "
         + "; ".join(f"{p}: {t['offences']:,} offences, {t['harm_days']:,.0f} harm-days" for p, t in build.totals.items())
         + (f"; {sum(bad.values()):,} bad rows in all" if bad else ""))


def print_summary(build, rows: int = 25, out=None) -> None:
    """The terminal table: one line per hot spot."""
    out = out or sys.stdout
    header = ("rank", "id", "name", "offences", "harm", "share", "cum", "trend", "busiest")
    lines = []
    for h in build.hotspots[:rows]:
        s = h.stats
        prev = s["previous"]
        trend = "-" if prev is None else f"{s['trend']} from {prev['offences']}"
        when = []
        if s["peak_days"]:
            when.append("/".join(d[:3] for d in s["peak_days"]))
        if s["peak_hours"]:
            when.append(f"{s['peak_hours']['from']}-{s['peak_hours']['to']}")
        lines.append((str(h.rank) + (f" {h.period}" if h.period else ""), h.id, h.name[:34], str(s["offences"]),
                      f"{s['harm_days']:,.0f}", f"{100 * s['share_of_harm']:.1f}%",
                      f"{100 * s['cumulative_share_of_harm']:.1f}%", trend, " ".join(when) or "-"))
    widths = [max(len(r[k]) for r in [header, *lines]) for k in range(len(header))]
    right = {3, 4, 5, 6}
    for r in [header, *lines]:
        print("  ".join(c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))).rstrip(),
              file=out)
    if len(build.hotspots) > rows:
        print(f"... and {len(build.hotspots) - rows} more (all in the GeoJSON)", file=out)
    previous = next((h.stats["previous"] for h in build.hotspots if h.stats["previous"]), None)
    # A person reading "up from 0" needs to know what the 0 counts: say it once under the table.
    print("share: of all harm in the window; cum: of the hot spots ranked so far; busiest: peak days and hours",
          file=out)
    if previous is not None:
        print(f"trend: offences against the window before ({previous['from'][:10]} to {previous['to'][:10]}), "
              f"e.g. \"up from 0\": none in that window", file=out)
    else:
        print("trend: - (the records do not reach back a whole window before this one)", file=out)


def draw_preview(build, path: str, max_points: int = 200_000):
    """The preview PNG (formats.preview_map), over basemap tiles when HOTSPOT_MAP_TILE_URL is set."""
    from formats.preview_map import draw_preview as draw
    from core.settings import get_settings

    return draw(build, path, tile_url=get_settings().map_tile_url, max_points=max_points)


# --- publish / list / retire: the live set on the compacted `hotspots` topic -----------

LIVE_EXAMPLES = """examples:
  hotspot hotspots publish hotspots.geojson
  hotspot hotspots list
  hotspot hotspots retire sq150m_27700_3143_1156
"""


def _live_parser(actions, name: str, help_: str, description: str, handler) -> argparse.ArgumentParser:
    p = actions.add_parser(name, help=help_, description=description, epilog=LIVE_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def add_publish(actions) -> None:
    _live_parser(actions, "publish", "load a hot-spot file into the running system",
                 "Validate a hot-spot GeoJSON file and publish each hot spot, as a new version, to the compacted "
                 "`hotspots` topic. Workers apply it without a restart and record it in ClickHouse.", _publish,
                 ).add_argument("file", type=Path, help="GeoJSON FeatureCollection (DESIGN.md: id, name, briefing, ...)")


def add_list(actions) -> None:
    _live_parser(actions, "list", "the hot spots the system has now",
                 "Read the `hotspots` topic and list the active hot spots.", _list,
                 ).add_argument("--json", action="store_true", help="one JSON object per line")


def add_retire(actions) -> None:
    _live_parser(actions, "retire", "withdraw hot spots by id",
                 "Publish a tombstone for each id: workers stop matching it; ClickHouse keeps its history.", _retire,
                 ).add_argument("ids", nargs="+", metavar="ID")


def _publish(args) -> int:
    import asyncio
    import time

    from cli import CommandError
    from core.settings import get_settings
    from formats.hotspots import HotspotFileError, read_collection, records_from_geojson
    from core.feeds import publish

    try:
        records = records_from_geojson(read_collection(args.file), int(time.time() * 1000))
    except HotspotFileError as exc:  # already names the file
        raise CommandError(str(exc)) from None
    except ValueError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    settings = get_settings()
    count = asyncio.run(publish(settings.bootstrap_servers, records, settings.partitions))
    print(f"published {count} hot spot{'s' if count != 1 else ''} from {args.file}")
    return 0


def _list(args) -> int:
    import asyncio
    import json
    from datetime import datetime, timezone

    from core.feeds import read_all
    from core.settings import get_settings

    current = asyncio.run(read_all(get_settings().bootstrap_servers))
    if args.json:
        for hid in sorted(current):
            print(json.dumps(current[hid]))
        return 0
    print(f"{'id':<28} {'name':<32} {'buffer_m':>8} {'target':>6}  published (UTC)")
    for hid in sorted(current):
        r = current[hid]
        when = datetime.fromtimestamp(r["published_ms"] / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")
        target = "" if r.get("target_minutes") is None else f"{r['target_minutes']:g}"
        print(f"{hid:<28} {r['name'][:32]:<32} {r.get('buffer_m') or 0:>8g} {target:>6}  {when}")
    print(f"({len(current)} active hot spot{'s' if len(current) != 1 else ''})")
    return 0


def _retire(args) -> int:
    import asyncio

    from cli import CommandError
    from core.feeds import read_all, retire
    from core.settings import get_settings

    bootstrap = get_settings().bootstrap_servers
    current = asyncio.run(read_all(bootstrap))
    unknown = [i for i in args.ids if i not in current]
    if unknown:
        raise CommandError(f"no active hot spot with id {', '.join(unknown)}; see `hotspot hotspots list`")
    asyncio.run(retire(bootstrap, args.ids))
    print(f"retired {len(args.ids)} hot spot{'s' if len(args.ids) != 1 else ''}")
    return 0


SUBCOMMANDS += [add_publish, add_list, add_retire]
