"""`hotspot pings send`: publish replay-format files into the live system."""
from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """examples:
  hotspot pings send export.csv                    # as fast as Kafka takes them
  hotspot pings send day1.csv day2.jsonl --rate 500
  hotspot pings send track.gpx --device van-12
"""


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
    s.set_defaults(handler=_send)


def _send(args) -> int:
    import asyncio

    from streams.cli import CommandError
    from streams.replayfiles import ReplayFileError
    from streams.settings import get_settings

    for f in args.files:
        if not f.is_file():
            raise CommandError(f"{f}: no such file")
    try:
        sent, bad, elapsed = asyncio.run(send_files(get_settings().bootstrap_servers, args.files, rate=args.rate,
                                                    device=args.device, source=args.source))
    except ReplayFileError as exc:
        raise CommandError(str(exc)) from None
    for reason, count in sorted(bad.items()):
        print(f"skipped {count} unreadable row{'s' if count != 1 else ''}: {reason}")
    print(f"sent {sent} pings in {elapsed:.1f}s ({sent / elapsed if elapsed else 0:,.0f}/s)")
    return 0


async def send_files(bootstrap: str, files: list[Path], rate: float = 0.0, device: str | None = None,
                     source: str = "replay", progress: bool = True) -> tuple[int, dict[str, int], float]:
    """Publish every readable row; return (sent, unreadable rows by reason, seconds)."""
    import asyncio
    import sys
    import time

    from tqdm import tqdm

    from schemas.codec import Codec
    from streams.kafka import ensure_topics, make_producer
    from streams.replayfiles import BadRow, read_file
    from streams.rows import ping_record
    from streams.settings import get_settings

    await ensure_topics(bootstrap, get_settings().partitions)
    codec = Codec("Ping")
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
                item.received_ms = int(time.time() * 1000)
                value = codec.encode(ping_record(item, source))
                pending.append(await producer.send("pings", value, key=item.device_id.encode()))
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
