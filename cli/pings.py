"""`hotspot pings send`: publish replay-format files into the live system.

Live pings are stamped with the time they are sent as their arrival time, so
the worker rejects fixes older than its staleness limit (processing
`max_age_s`, 7 days) as `stale_timestamp`. A historical export sent that way
would be rejected whole while the command said "sent", so `send` reads the
files first and refuses (exit 1) when most pings are that old, naming
`--backfill`: historical pings sent with no arrival time (`received_ms` 0 in
the Avro record, `extra.backfill`), which the worker orders by fix time alone
and does not age-check, exactly as `hotspot replay` treats the same file.
Refusing rather than warning: a warning scrolls past in a script whose exit
status says all went well, and a backfill is never what `send` without the
flag should silently do, because live pings of the same device would then be
judged against history.
"""
from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  hotspot pings send export.csv                    # as fast as Kafka takes them
  hotspot pings send day1.csv day2.jsonl --rate 500
  hotspot pings send track.gpx --device van-12
  hotspot pings send export-2024.csv --backfill    # history: older than the 7-day staleness limit

--backfill sends pings with no arrival time: the worker orders them by fix time
alone and skips the staleness check, as `hotspot replay` does. Backfill a device
before it sends live pings (or after its live history): a device's pings are
put in order, and one older than what the device already sent comes too late.
"""
STALE_SHARE_REFUSED = 0.5  # more than this share of stale pings without --backfill: refuse


def register(sub) -> None:
    p = sub.add_parser("pings", help="publish pings from files into the live system",
                       description="Send pings into the live system through Kafka.", epilog=EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser("send", help="publish replay-format files (CSV, JSON Lines, GPX) to the pings topic",
                           description="Read replay-format files and publish every readable row to Kafka `pings`, keyed "
                                       "by device, stamped with the time it is sent as its arrival time. Rows that cannot "
                                       "be read are counted and reported; the rest are sent.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("files", nargs="+", type=Path, metavar="FILE")
    s.add_argument("--rate", type=float, default=0.0, metavar="N", help="pings per second (default: as fast as possible)")
    s.add_argument("--device", help="device id for GPX files (default: the file name)")
    s.add_argument("--source", default="replay", choices=("replay", "simulator", "other"), help="source recorded on each ping")
    s.add_argument("--backfill", action="store_true",
                   help="historical pings: no arrival time, so the worker orders them by fix time and does not "
                        "reject them as stale (marked extra.backfill=true)")
    s.set_defaults(handler=_send)


def _send(args) -> int:
    import asyncio

    from cli import CommandError
    from formats.replayfiles import ReplayFileError
    from core.settings import get_settings

    for f in args.files:
        if not f.is_file():
            raise CommandError(f"{f}: no such file")
    settings = get_settings()
    try:
        if not args.backfill:
            _check_staleness(args.files, args.device, settings.processing_config().max_age_s)
        from replay.send import send_files

        sent, bad, elapsed = asyncio.run(send_files(settings.bootstrap_servers, args.files, rate=args.rate,
                                                    device=args.device, source=args.source, backfill=args.backfill))
    except ReplayFileError as exc:
        raise CommandError(str(exc)) from None
    for reason, count in sorted(bad.items()):
        print(f"skipped {count} unreadable row{'s' if count != 1 else ''}: {reason}")
    print(f"sent {sent} {'historical ' if args.backfill else ''}pings in {elapsed:.1f}s "
          f"({sent / elapsed if elapsed else 0:,.0f}/s)")
    return 0


def _check_staleness(files: list[Path], device: str | None, max_age_s: float) -> None:
    import sys
    import time

    from cli import CommandError

    from replay.send import count_stale

    stale, total = count_stale(files, device, max_age_s, int(time.time() * 1000))
    if not stale:
        return
    what = (f"{stale:,} of {total:,} pings are older than the worker's staleness limit "
            f"(processing max_age_s = {max_age_s:g} s, {max_age_s / 86400:g} days)")
    if stale > STALE_SHARE_REFUSED * total:
        raise CommandError(f"{what}: the worker would reject them as stale_timestamp; nothing sent. "
                           "Send historical pings with --backfill.")
    print(f"warning: {what}; the worker will reject those as stale_timestamp (--backfill sends history)",
          file=sys.stderr)
