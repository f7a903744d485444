"""ClickHouse going away while the worker runs, then coming back: consumption holds, nothing is lost.

The worker runs in this process (the same `LivePipeline` `hotspot worker` runs,
against the real broker and the embedded engine) so that the outage can be
switched on and off at the client: while it is on, every insert fails as a
connection failure would (`OperationalError`). The store itself stays readable,
which lets the test watch that nothing is written meanwhile.
"""
from __future__ import annotations

import asyncio
import subprocess
import threading

from clickhouse_connect.driver.exceptions import OperationalError

from sinks.clickhouse import make_client
from streams.pipeline import LivePipeline
from streams.settings import Settings
from streams.worker import prepare_topics
from tests.conftest import HOTSPOT
from tests.integration.live import replay, simulate, wait_until
from tests.integration.test_pipeline import NO_SILENCE, _accounted, _line_count, _live, assert_live_equals_replay, live_tables


class _Outage:
    """A client factory whose clients refuse inserts while `down` is set."""

    def __init__(self, dsn: str, database: str):
        self.dsn, self.database = dsn, database
        self.down = threading.Event()
        self.refused = 0

    def __call__(self):
        client = make_client(self.dsn, self.database)
        for name in ("insert", "raw_insert"):
            real = getattr(client, name)

            def guarded(*args, _real=real, **kwargs):
                if self.down.is_set():
                    self.refused += 1
                    raise OperationalError("connection refused (test outage)")
                return _real(*args, **kwargs)

            setattr(client, name, guarded)
        return client


class _InProcessWorker:
    """LivePipeline's loop, expiry timer and hot-spot feed on an event loop in a thread."""

    def __init__(self, pipeline: LivePipeline):
        self.pipeline = pipeline
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        p = self.pipeline
        self._stop = asyncio.Event()
        feed = asyncio.ensure_future(p.follow_hotspots())
        run = asyncio.ensure_future(p.run())

        async def timer():
            while True:
                await asyncio.sleep(p.settings.worker_expire_interval_s)  # the timer's period, as Faust's timer
                await p.expire()

        ticking = asyncio.ensure_future(timer())
        await self._stop.wait()
        await p.stop(run)
        for t in (feed, ticking):
            t.cancel()
        await asyncio.gather(feed, ticking, return_exceptions=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        wait_until(lambda: self._stop is not None, 30, "the worker loop to start")
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the worker did not stop"


def _backlog(bootstrap: str) -> int:
    """Pings in Kafka beyond the worker group's committed offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.kafka import make_admin
    from streams.pipeline import GROUP_ID

    async def count() -> int:
        admin, consumer = make_admin(bootstrap), AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await admin.start()
        await consumer.start()
        try:
            tps = [TopicPartition("pings", p) for p in range(4)]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(GROUP_ID, partitions=tps)
            return sum(ends[tp] - max(0, committed[tp].offset if tp in committed else 0) for tp in tps)
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(count())


def test_clickhouse_down_mid_run_pauses_consumption_and_loses_nothing_when_back(make_broker, tmp_path):
    sim = simulate(tmp_path / "sim", officers=6, hours=1.5, seed=61, ago_h=2)
    total = _line_count(sim / "pings.csv")
    expected = replay(sim, tmp_path / "replay", NO_SILENCE)
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    settings = Settings(data_dir=live.data_dir, kafka_bootstrap=live.broker.bootstrap, processing=NO_SILENCE,
                        worker_metrics_port=0, worker_expire_interval_s=1)
    asyncio.run(prepare_topics(settings))
    outage = _Outage(settings.effective_clickhouse_dsn, settings.clickhouse_database)
    pipeline = LivePipeline(settings, client_factory=outage)
    worker = _InProcessWorker(pipeline)
    worker.start()
    sender = subprocess.Popen([HOTSPOT, "pings", "send", "--rate", "600", str(sim / "pings.csv")], env=live.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _accounted(live) >= total // 4, 120, "a quarter of the pings to be stored")
        outage.down.set()
        wait_until(lambda: pipeline.consumer.paused(), 60, "consumption to pause while inserts fail")
        held = _accounted(live)
        assert not pipeline.writer.healthy
        _, err = sender.communicate(timeout=300)  # the rest of the pings reach Kafka meanwhile
        assert sender.returncode == 0, err
        assert _accounted(live) == held < total, "nothing is written while ClickHouse is down"
        assert {tp.partition for tp in pipeline.consumer.assignment()} == {0, 1, 2, 3}, "the worker keeps its partitions"
        assert _backlog(settings.bootstrap_servers) > 0, "the pings wait in Kafka"
        assert outage.refused >= 2, "the writer kept retrying"

        outage.down.clear()  # ClickHouse is back
        wait_until(lambda: _accounted(live) >= total, 300, "the worker to catch up")
        assert _accounted(live) == total
        assert not pipeline.consumer.paused() and pipeline.writer.healthy
        assert_live_equals_replay(live_tables(live), expected)
    finally:
        outage.down.clear()
        if sender.poll() is None:
            sender.kill()
        worker.stop()
