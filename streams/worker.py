"""The live worker: Kafka `pings` → processors → ClickHouse and Kafka events.

A Faust app hosts it: a task runs the consume-process-write loop over `pings`
(streams/pipeline.py: micro-batches, per-device state kept live and
checkpointed to a compacted changelog topic, rows written to ClickHouse before
offsets are committed), a timer closes the visits of devices that went silent,
and two more tasks follow the compacted `hotspots` and `allocations` topics,
swapping in a new hot-spot index whenever the set changes.

Crash safety, the checkpoint order and why `pings` is read with a plain
aiokafka consumer rather than a Faust agent stream: see streams/pipeline.py.
"""
from __future__ import annotations

import asyncio
import logging

import faust
import mode
from faust.app.base import BootStrategy

from streams.kafka import KafkaSecurity
from streams.settings import Settings
from streams.statestore import CHANGELOG_TOPIC, pack_state, unpack_state  # noqa: F401  (the changelog's value layout)

log = logging.getLogger("hotspot.worker")

APP_ID = "hotspot-worker-app"


class _Boot(BootStrategy):
    """Faust's own consumer and producer stay off: the pipeline runs its batch consumer and producer."""

    enable_kafka_consumer = False
    enable_kafka_producer = False


class WorkerApp(faust.App):
    BootStrategy = _Boot


def create_app(settings: Settings, metrics_url: str | None = None, joined=None) -> faust.App:
    """`metrics_url`: where this process serves /metrics, said in the log once logging is set up.
    `joined`: a sinks.shared_store.JoinedStore when another worker owns the embedded store."""
    from sinks.clickhouse import is_embedded
    from streams.pipeline import LivePipeline

    app = WorkerApp(
        APP_ID,
        broker=";".join(f"kafka://{h}" for h in settings.bootstrap_servers.split(",")),
        # Faust's own Kafka clients are off (_Boot), but any it opens must be able to authenticate too.
        broker_credentials=KafkaSecurity.from_settings(settings).faust_credentials(),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=False,
        datadir=str(settings.data_dir / "faust"),
    )
    pipeline = LivePipeline(settings, client_factory=joined, joined_store=joined is not None)
    if joined is None and is_embedded(settings.effective_clickhouse_dsn):
        # The owner of an embedded store writes for the workers that join it (sinks.shared_store).
        from sinks.shared_store import serve_inserts

        app.insert_server = serve_inserts(settings.effective_clickhouse_dsn, settings.data_dir,
                                          settings.clickhouse_database)

    @app.service
    class ConsumePings(mode.Service):
        """The pings loop; stopping it takes a last checkpoint and leaves the group at once."""

        async def on_start(self) -> None:
            if metrics_url:
                log.info("worker metrics on %s", metrics_url)
            self._loop_task = asyncio.ensure_future(pipeline.run())

        async def on_stop(self) -> None:
            await pipeline.stop(self._loop_task)

    @app.timer(interval=settings.worker_expire_interval_s)
    async def close_silent_devices():
        await pipeline.expire()

    @app.task
    async def follow_hotspots():
        await pipeline.follow_hotspots()

    @app.task
    async def follow_allocations():
        await pipeline.follow_allocations()

    # issue 14: the officer app's records (assignments, activity, audit) into ClickHouse (streams.recordsink)
    from streams.recordsink import RecordSink

    app.records = RecordSink(settings, client_factory=joined, joined_store=joined is not None)

    @app.task
    async def store_records():
        await app.records.run()

    app.pipeline = pipeline  # for tests and the run command
    return app


async def prepare_topics(settings: Settings) -> None:
    """Create the data topics and the state changelog; refuse a changelog that does not match `pings`."""
    from streams.kafka import TOPICS, TopicSpec, describe_topics, ensure_topics

    await ensure_topics(settings.bootstrap_servers, settings.partitions,
                        (*TOPICS, TopicSpec(CHANGELOG_TOPIC, compacted=True)))
    counts = await describe_topics(settings.bootstrap_servers)
    if counts.get(CHANGELOG_TOPIC) != counts.get("pings"):
        raise SystemExit(f"topic {CHANGELOG_TOPIC} has {counts.get(CHANGELOG_TOPIC)} partitions but pings has "
                         f"{counts.get('pings')}: device state is kept on the partition of the device's pings, so "
                         f"they must match (recreate the changelog with {counts.get('pings')} partitions)")


def _tune_gc() -> None:
    """Fewer, cheaper garbage collections on the hot path.

    The worker allocates a few short-lived objects per ping and keeps long-lived
    ones (modules, device states); with the default thresholds full collections
    keep rescanning the long-lived heap. Everything alive after start-up is moved
    out of the collector's sight (`gc.freeze`) and the youngest generation is
    collected every 50,000 allocations instead of 700.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def store_lock_path(settings: Settings):
    """The lock a worker holds while it owns an embedded store (None for a ClickHouse server,
    which any number of workers may write to)."""
    from pathlib import Path
    from urllib.parse import urlsplit

    from sinks.clickhouse import is_embedded

    dsn = settings.effective_clickhouse_dsn
    if not is_embedded(dsn):
        return None
    store = Path(urlsplit(dsn).path).resolve()
    return store.parent / f"{store.name}.lock"


class MetricsPortBusy(Exception):
    pass


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Block running the worker until SIGINT/SIGTERM.

    Raises streams.datadir.Locked when another worker owns the embedded store,
    and MetricsPortBusy when the metrics port is taken, before touching either.
    """
    import asyncio as _asyncio
    import errno

    from faust.worker import Worker

    from streams.datadir import Locked, RoleLock, private_dir

    private_dir(settings.data_dir)
    # Another hotspot worker owning the store is a refusal, not an outage to wait out: its lock
    # says so (any other holder of the store is waited for, see pipeline), unless this worker
    # is to join it and write through it.
    joined = None
    if (lock_path := store_lock_path(settings)) is not None:
        try:
            # Held (the object kept) for the life of the process; the kernel frees it at exit.
            run_worker.store_lock = RoleLock(lock_path).acquire()
        except Locked:
            if not settings.worker_join_store:
                raise
            from sinks.shared_store import JoinedStore

            joined = JoinedStore(settings, lock_path)
    metrics_url = None
    if settings.worker_metrics_port:
        from sinks.metrics import serve_metrics

        try:
            served = serve_metrics(settings.worker_metrics_port, host=settings.http_host)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise MetricsPortBusy(f"the metrics port {settings.http_host}:{settings.worker_metrics_port} is in use "
                                  "(set HOTSPOT_WORKER_METRICS_PORT to a free port, or 0 for none)") from None
        metrics_url = f"http://{settings.http_host}:{served.port}/metrics"
    _asyncio.run(prepare_topics(settings))
    app = create_app(settings, metrics_url, joined)
    _tune_gc()
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner puts the root logger at DEBUG, so every library debug call
    # builds a record (6% of the worker's time in a profile) and escape codes fill the log.
    worker.spinner = None
    worker.execute_from_commandline()

