"""`hotspot replay`: historical GPS/AVL/radio exports through the same processors as the live worker."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  hotspot replay --pings pings.csv --hotspots hotspots.geojson --out results/
  hotspot replay --pings day1.csv.gz day2.jsonl --hotspots hs.geojson --out results/
  hotspot replay --pings walk.gpx --device officer-17 --hotspots hs.geojson --out results/
  hotspot replay --pings pings.csv --hotspots hs.geojson --out r/ --param enter_confirm_s=45

input: CSV or JSON Lines with device_id, ts, lat, lon [, accuracy_m, speed_mps, heading_deg,
  altitude_m, battery]; ts ISO-8601 with offset, or epoch seconds or milliseconds. GPX track
  points too (device from --device or the file name). Files are read in the order given.
writes to DIR: visits.csv, stops.csv, modes.csv, rejected.csv (timestamps ISO-8601 UTC).
"""

_PROGRESS_MIN_BYTES = 4 << 20


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay", help="batch path: ping files through the analytics into visits, stops, modes",
        description="Replay historical pings (GPS, AVL or radio exports) through the same validation, geofence "
                    "and visit/stop/mode state machines as the live worker, without Kafka.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pings", nargs="+", required=True, metavar="FILE",
                   help="CSV, JSON Lines (.jsonl/.ndjson) or GPX files, optionally .gz")
    p.add_argument("--hotspots", required=True, metavar="FILE.geojson", help="hot-spot GeoJSON FeatureCollection")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created; the four CSVs replaced)")
    p.add_argument("--device", metavar="ID", help="device id for GPX files (default: the file name)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a processing parameter (repeatable), e.g. exit_confirm_s=90")
    p.add_argument("--batch-size", type=int, default=20_000, metavar="N", help="pings per batch (default 20000)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(handler=_replay)


def _replay(args) -> int:
    import sys
    from pathlib import Path

    from processors.config import ProcessingConfig
    from cli import CommandError
    from formats.hotspots import HotspotFileError, load_index
    from formats.replayfiles import ReplayFileError
    from replay.batch import replay

    paths = [Path(p) for p in args.pings]
    for p in paths + [Path(args.hotspots)]:
        if not p.is_file():
            raise CommandError(f"{p}: no such file")
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    from dataclasses import replace

    from core.settings import get_settings

    try:
        # The worker's settings first (HOTSPOT_PROCESSING or [processing]), then --param on top,
        # so the live and batch paths run with the same parameters unless told otherwise.
        base = get_settings().processing_config()
    except (ValueError, TypeError) as exc:
        raise CommandError(f"processing settings: {exc}") from None
    try:
        config = replace(base, **{k: v for k, v in ProcessingConfig.from_pairs(args.param).as_dict().items()
                                   if any(p.partition("=")[0].strip() == k for p in args.param)})
    except (ValueError, TypeError) as exc:
        raise CommandError(f"--param: {exc}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out}: exists and is not a directory")

    total = sum(p.stat().st_size for p in paths)
    bar = None
    if not args.quiet and total >= _PROGRESS_MIN_BYTES:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, desc="replay", file=sys.stderr, mininterval=0.5)
    try:
        index = load_index(Path(args.hotspots))
        summary = replay(paths, index, out, config, device=args.device, batch_size=args.batch_size,
                         progress=bar.update if bar is not None else None)
    except (ReplayFileError, HotspotFileError) as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{exc.filename or out}: {exc.strerror or exc}") from None
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.rejected_by_reason.items()))
        print(f"{summary.pings:,} pings from {len(paths)} file(s), {summary.devices:,} devices: "
              f"{summary.visits:,} visits, {summary.stops:,} stops, {summary.mode_segments:,} mode segments, "
              f"{summary.rejected:,} rejected{f' ({reasons})' if reasons else ''} -> {out}", file=sys.stderr)
    return 0
