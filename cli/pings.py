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

from core import topics

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


BACKFILL_EXTRA = {"backfill": "true"}


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
        sent, bad, elapsed = asyncio.run(send_files(settings.bootstrap_servers, args.files, rate=args.rate,
                                                    device=args.device, source=args.source, backfill=args.backfill))
    except ReplayFileError as exc:
        raise CommandError(str(exc)) from None
    for reason, count in sorted(bad.items()):
        print(f"skipped {count} unreadable row{'s' if count != 1 else ''}: {reason}")
    print(f"sent {sent} {'historical ' if args.backfill else ''}pings in {elapsed:.1f}s "
          f"({sent / elapsed if elapsed else 0:,.0f}/s)")
    return 0


def count_stale(files: list[Path], device: str | None, max_age_s: float, now_ms: int) -> tuple[int, int]:
    """(pings older than `max_age_s` before `now_ms`, readable pings) over the files."""
    from formats.replayfiles import read_blocks

    cutoff_ms = now_ms - max_age_s * 1000.0
    stale = total = 0
    for path in files:
        for pings, _ in read_blocks(path, device):
            total += len(pings)
            stale += sum(1 for p in pings if p.ts_ms < cutoff_ms)
    return stale, total


def _check_staleness(files: list[Path], device: str | None, max_age_s: float) -> None:
    import sys
    import time

    from cli import CommandError

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


async def send_files(bootstrap: str, files: list[Path], rate: float = 0.0, device: str | None = None,
                     source: str = "replay", progress: bool = True,
                     backfill: bool = False) -> tuple[int, dict[str, int], float]:
    """Publish every readable row; return (sent, unreadable rows by reason, seconds).

    `backfill`: no arrival time on the pings (historical; see the module's docstring).
    """
    import asyncio
    import sys
    import time

    from tqdm import tqdm

    from core.codecs import codec_for
    from core.kafka import ensure_topics, make_producer
    from formats.replayfiles import BadRow, read_file
    from formats.records import ping_record
    from core.settings import get_settings

    await ensure_topics(bootstrap, get_settings().partitions)
    codec = codec_for("Ping")
    producer = make_producer(bootstrap, linger_ms=20)
    await producer.start()
    bad: dict[str, int] = {}
    sent = 0
    pending = []
    started = time.monotonic()
    bar = tqdm(unit=" pings", file=sys.stderr, disable=not progress or not sys.stderr.isatty())
    try:
        for path in files:
            for item in read_file(path, device=device):
                if isinstance(item, BadRow):
                    bad[item.reason] = bad.get(item.reason, 0) + 1
                    continue
                if rate > 0:
                    # Pace against the schedule, not the previous send, so the rate holds on average.
                    ahead_s = sent / rate - (time.monotonic() - started)
                    if ahead_s > 0:
                        await asyncio.sleep(ahead_s)
                item.received_ms = None if backfill else int(time.time() * 1000)
                value = codec.encode(ping_record(item, source, BACKFILL_EXTRA if backfill else None))
                pending.append(await producer.send(topics.PINGS, value, key=item.device_id.encode()))
                sent += 1
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    pending.clear()
        await asyncio.gather(*pending)  # every ping acknowledged before we say it was sent
        bar.update(len(pending))
    finally:
        bar.close()
        await producer.stop()
    return sent, bad, time.monotonic() - started
