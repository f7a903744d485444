"""Publishing replay-format files into the live system (`hotspot pings send`).

Reads the files with formats/replayfiles.py, maps each ping to its Avro record
(formats/records.py) and writes it to `pings` with the one codec factory, as
the gateway would. A ping sent live carries the time it was sent as its
arrival; `backfill` sends history without one (and marks it in `extra`), so
the worker's arrival-time checks (future, stale) leave it alone.
"""
from __future__ import annotations

from pathlib import Path

from core import topics

BACKFILL_EXTRA = {"backfill": "true"}


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
