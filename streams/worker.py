"""The live worker: Kafka `pings` → processors → ClickHouse and Kafka events.

A Faust app with one agent over `pings` (keyed by device id) that handles
micro-batches, a changelog-backed table of per-device state, a timer that
closes visits of devices that went silent, and a feed of the compacted
`hotspots` topic that swaps in a new hot-spot index whenever the set changes.

The order of work for each batch is what makes a crash harmless:

1. run the pure processors over the batch (`processors.batch.process_batch`);
2. write raw pings, rejects and patrol events to ClickHouse, retrying until
   they land (backpressure: no new batch is taken meanwhile);
3. store each device's new state together with the offset of the last ping it
   has applied, in the table (whose changelog Faust flushes before it commits
   offsets);
4. publish the events to Kafka; Faust then acks the batch and commits.

Killed after 2, the batch is consumed again from the older state and yields the
same rows with the same ids, which the replacing tables collapse. Killed after
3, the state already covers those pings and the offsets stored with it make the
worker skip them. Nothing is lost and nothing is counted twice.
"""
from __future__ import annotations

import logging
import struct

import faust

from streams.settings import Settings

log = logging.getLogger("hotspot.worker")

APP_ID = "hotspot-worker"
STATE_TABLE = "device-state"

# Table value: a small envelope around the processors' own versioned bytes.
#   version (B) | last applied pings offset (q) | reserved (q) | state bytes
_ENVELOPE = struct.Struct(">Bqq")
_ENVELOPE_VERSION = 1


def pack_state(last_offset: int, last_ts_ms: int, state_bytes: bytes) -> bytes:
    return _ENVELOPE.pack(_ENVELOPE_VERSION, last_offset, last_ts_ms) + state_bytes


def unpack_state(blob: bytes) -> tuple[int, int, bytes]:
    version, last_offset, last_ts_ms = _ENVELOPE.unpack_from(blob)
    if version != _ENVELOPE_VERSION:
        raise ValueError(f"device state envelope version {version} is not understood")
    return last_offset, last_ts_ms, blob[_ENVELOPE.size:]


def create_app(settings: Settings) -> faust.App:
    from streams.pipeline import LivePipeline

    app = faust.App(
        APP_ID,
        broker=";".join(f"kafka://{h}" for h in settings.bootstrap_servers.split(",")),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        # A worker killed outright holds its partitions until its session expires:
        # keep that short so a restarted worker resumes within seconds, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        producer_acks=-1,
        # Changelog writes are one per device per batch: let them share produce requests.
        producer_linger=0.01,
        producer_max_batch_size=256 * 1024,
        stream_wait_empty=False,
        web_enabled=False,
        datadir=str(settings.data_dir / "faust"),
        table_standby_replicas=0,
    )
    pings_topic = app.topic("pings", schema=faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                                                         value_serializer="raw"), partitions=settings.partitions)
    # bytes key and value types make Faust use the raw serializer for the changelog and its recovery.
    # use_partitioner: the changelog partition comes from the key, exactly as the
    # pings' did, so state and pings stay co-partitioned and the expiry timer may
    # write outside stream iteration.
    table = app.Table(STATE_TABLE, default=None, partitions=settings.partitions,
                      key_type=bytes, value_type=bytes, use_partitioner=True)
    pipeline = LivePipeline(app, settings, table)

    @app.agent(pings_topic, concurrency=1)
    async def process_pings(stream):
        async for events in stream.take_events(settings.worker_batch_max, within=settings.worker_batch_window_s):
            await pipeline.handle(events)

    @app.timer(interval=settings.worker_expire_interval_s)
    async def close_silent_devices():
        await pipeline.expire()

    @app.task
    async def follow_hotspots():
        await pipeline.follow_hotspots()

    @app.task
    async def follow_allocations():
        await pipeline.follow_allocations()

    app.pipeline = pipeline  # for tests and the run command
    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Block running the worker until SIGINT/SIGTERM."""
    import asyncio as _asyncio

    from faust.worker import Worker

    from streams.kafka import ensure_topics

    _asyncio.run(ensure_topics(settings.bootstrap_servers, settings.partitions))
    app = create_app(settings)
    if settings.worker_metrics_port:
        from sinks.metrics import serve_metrics

        served = serve_metrics(settings.worker_metrics_port, host=settings.http_host)
        log.info("worker metrics on http://%s:%d/metrics", settings.http_host, served.port)
    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner puts the root logger at DEBUG, so every library debug call
    # builds a record (6% of the worker's time in a profile) and escape codes fill the log.
    worker.spinner = None
    worker.execute_from_commandline()

