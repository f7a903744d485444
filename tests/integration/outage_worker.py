"""`python -m tests.integration.outage_worker FLAG`: the live worker, whose ClickHouse inserts fail while FLAG exists.

Used by test_pipeline_outage.py. It runs the same `LivePipeline` as `hotspot worker`
(settings from the HOTSPOT_* environment, real broker, embedded engine) in a process
of its own, since chDB allows one embedded store per process. While the flag file
exists every insert fails as a refused connection would (`OperationalError`).
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from clickhouse_connect.driver.exceptions import OperationalError

from sinks.clickhouse import make_client
from streams.pipeline import LivePipeline
from core.settings import get_settings
from streams.worker import prepare_topics

log = logging.getLogger("hotspot.worker")


def outage_factory(dsn: str, database: str, flag: Path):
    def open_client():
        client = make_client(dsn, database)
        for name in ("insert", "raw_insert"):
            real = getattr(client, name)

            def guarded(*args, _real=real, **kwargs):
                if flag.exists():
                    log.warning("test outage: insert refused")
                    raise OperationalError("connection refused (test outage)")
                return _real(*args, **kwargs)

            setattr(client, name, guarded)
        return client

    return open_client


async def serve(pipeline: LivePipeline) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    feed = asyncio.ensure_future(pipeline.follow_hotspots())
    run = asyncio.ensure_future(pipeline.run())

    async def timer():
        while True:
            await asyncio.sleep(pipeline.settings.worker_expire_interval_s)  # the timer's period
            await pipeline.expire()

    ticking = asyncio.ensure_future(timer())
    await stop.wait()
    await pipeline.stop(run)
    for t in (feed, ticking):
        t.cancel()
    await asyncio.gather(feed, ticking, return_exceptions=True)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(message)s")
    settings = get_settings()
    asyncio.run(prepare_topics(settings))
    pipeline = LivePipeline(settings, client_factory=outage_factory(settings.effective_clickhouse_dsn,
                                                                    settings.clickhouse_database, Path(sys.argv[1])))
    pipeline.open()
    asyncio.run(serve(pipeline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
