"""The live worker's consume-process-write loop around `processors.batch`.

One consumer in the group `hotspot-worker` reads `pings` in micro-batches
(`getmany`, up to `worker_batch_max` records or `worker_batch_window_s`), and
for each batch: decode, drop what each device's state has already applied, run
the processors, add the rows to the ClickHouse writer and start writing them
while the next batch is processed, publish events and rejects. The processors
decide everything about pings; this module only moves data.

The loop's parts live beside it, one job each: `streams.clocks` (the
per-partition arrival clocks that release held pings and judge silence),
`streams.emit` (rows, events and rejects of a result), `streams.checkpoint`
(rows durable, states, acknowledgements, offsets: why a crash is harmless),
`streams.statestore` (device state and its changelog), `core.feeds`
(the hot-spot and allocation feeds) and `streams.store` (opening the store
and serving `hotspot sql`, which `open()` does, not the constructor).

Held pings. The processors hold each live ping for at most `reorder_hold_s`
of arrival time (processors.reorder), so that a ping overtaken in the network
can still be put back in order; every turn of the loop (at least every batch
window) releases what has served its hold, on each partition's arrival clock
(streams.clocks). The Faust timer does the same for silence (`signal_loss_s`)
every `worker_expire_interval_s`.

Why a plain aiokafka consumer rather than a Faust agent stream: Faust delivers
each record as its own event through its conductor, and at 20,000 pings/s that
per-record machinery and the per-batch table writes cost more than the
analytics themselves (bench/RESULTS.md, "Live pipeline"). The Faust app still
hosts the worker (streams/worker.py): this loop, the expiry timer and the
hot-spot and allocation feeds are its task, timer and services.

Length (~440 lines): the loop, its rebalance handling and the expiry timer share the device-state lock
and the held-ping bookkeeping; everything with a job of its own is in the modules named below.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from core import topics
from core.codecs import codec_for
from core.kafka import make_consumer, make_producer
from core.settings import Settings
from formats import records as rows
from processors.batch import BatchResult, expire, process_batch
from processors.device import DeviceState
from processors.geofence import HotspotIndex
from processors.model import Ping
from processors.reorder import hold_expired
from processors.visits import OPEN
from schemas.codec import CodecError
from sinks import metrics
from sinks.writer import ClickHouseWriter
from streams import readiness
from streams.checkpoint import Checkpoint
from streams.clocks import PartitionClocks
from streams.emit import Emitter
from core.feeds import CompactedFeed, HotspotFeed
from streams.statestore import DeviceStates
from streams.store import open_store

log = logging.getLogger("hotspot.worker")
EXIT_BATCH_FAILED = 70  # EX_SOFTWARE: a bug, the supervisor should restart us and someone should look
GROUP_ID = "hotspot-worker"
PINGS = topics.PINGS
LOG_APPEND_TIME = 1  # ConsumerRecord.timestamp_type of a record stamped by the broker


def _fatal(what: str) -> None:
    """Leave at once: nothing uncommitted is acknowledged, and a restart resumes safely (as after kill -9)."""
    log.exception("%s; exiting so the uncommitted input is consumed again after restart", what)
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, pipeline: "LivePipeline"):
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked):
        await self.pipeline.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned):
        await self.pipeline.partitions_assigned(assigned)


class LivePipeline:
    """`client_factory`: opens the ClickHouse client for the writer (default: from the settings' DSN)."""

    def __init__(self, settings: Settings, client_factory=None, joined_store: bool = False):
        self.settings = settings
        self.config = settings.processing_config()
        self.index = HotspotIndex.from_hotspots([])
        # The one codec factory: with a schema registry configured, the gateway's Confluent-framed pings
        # are resolved through it (a worker built without it rejected them all: issue 11).
        self.ping_codec = codec_for("Ping", settings)
        self.event_codec = codec_for("PatrolEvent", settings)
        self.reject_codec = codec_for("RejectedPing", settings)
        self.store = DeviceStates(settings.bootstrap_servers)
        self.lock = asyncio.Lock()  # the loop, the expiry timer and rebalances all touch device state
        self.ready = asyncio.Event()  # set once the hot-spot topic has been read to its end
        self.consumer: AIOKafkaConsumer | None = None
        self.producer = None
        self.joined_store = joined_store
        self.query_server = None  # set by open() when this process owns the embedded store
        self.writer = ClickHouseWriter(settings.effective_clickhouse_dsn, settings.clickhouse_database,
                                       max_rows=10 * settings.worker_batch_max, name="worker",
                                       client_factory=client_factory, arrow_inserts=True if joined_store else None)
        self.clocks = PartitionClocks(self.store.owns, settings.worker_arrival_margin_s)
        self.emit = Emitter(self.writer, self.event_codec, self.reject_codec)
        self.checkpoint = Checkpoint(self.writer, self.emit, self.store, self.clocks, settings.worker_commit_interval_s)
        self._held: set[str] = set()                      # devices with pings in their reorder buffer
        self._inside: set[str] = set()                    # devices with an open visit, for the gauge
        self._stopping = False

    def open(self) -> None:
        """Open the store (migrations, waiting for ClickHouse as long as it takes) and, when this process owns
        the embedded store, answer `hotspot sql` for everyone else. Blocks: call before the loop starts."""
        self.query_server = open_store(self.settings, joined_store=self.joined_store)

    # --- hot spots ------------------------------------------------------------
    async def follow_hotspots(self) -> None:
        feed = HotspotFeed(self.settings.bootstrap_servers, on_change=self._hotspots_changed)
        await feed.start()
        self.ready.set()
        readiness.mark_ready(self.settings.data_dir, len(feed.current))
        try:
            await asyncio.Event().wait()  # follow until the worker stops
        finally:
            readiness.clear_ready(self.settings.data_dir)
            await feed.stop()

    async def _hotspots_changed(self, current: dict[str, dict], retired: dict[str, int]) -> None:
        self.index = await asyncio.to_thread(HotspotIndex.from_hotspots, rows.hotspots_for_index(current))
        for record in current.values():
            self.writer.add("hotspots", rows.hotspot_row(record))
        for hid, retired_ms in retired.items():
            self.writer.add("hotspots", rows.retired_hotspot_row(hid, retired_ms))
        await self.writer.flush_async()
        log.info("hot-spot index rebuilt: %d active hot spots", len(current))

    # --- trial allocations -------------------------------------------------------
    async def follow_allocations(self) -> None:
        """Record the trial schedules published on `allocations` (`hotspot allocate --publish`)."""
        written: dict[str, dict] = {}

        async def changed(current: dict[str, dict], _retired: dict[str, int]) -> None:
            new = [r for k, r in current.items() if written.get(k) != r]
            for r in new:
                self.writer.add("allocations", rows.allocation_row(r))
            if new:
                await self.writer.flush_async()
                written.update({k: current[k] for k in current})
                log.info("recorded %d trial allocation rows", len(new))

        feed = CompactedFeed(self.settings.bootstrap_servers, on_change=changed, topic=topics.ALLOCATIONS, schema="Allocation")
        await feed.start()
        try:
            await asyncio.Event().wait()
        finally:
            await feed.stop()

    # --- the loop -------------------------------------------------------------------
    async def run(self) -> None:
        """Consume `pings` until `stop`; a failure in a batch ends the process (see `_fatal`)."""
        await self.ready.wait()  # no ping is judged against an empty hot-spot set
        s = self.settings
        self.producer = make_producer(s.bootstrap_servers, enable_idempotence=False, linger_ms=10)
        await self.producer.start()
        self.emit.producer = self.producer
        self.consumer = make_consumer(
            bootstrap_servers=s.bootstrap_servers, group_id=GROUP_ID, client_id=f"{GROUP_ID}-{os.getpid()}",
            group_instance_id=s.worker_instance_id or None,
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_uncommitted",
            max_poll_records=s.worker_batch_max, fetch_max_bytes=32 << 20, max_partition_fetch_bytes=8 << 20,
            # A worker killed outright holds its partitions until its session expires: keep that short
            # so a restarted worker resumes within seconds.
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
            # The loop polls at least every batch window, and keeps polling (paused) through a
            # ClickHouse outage, so a long poll gap means the process is wedged.
            max_poll_interval_ms=600_000,
        )
        self.consumer.subscribe([PINGS], listener=_Rebalance(self))
        await self.consumer.start()
        log.info("consuming %s as group %s (batches of up to %d pings, checkpoint every %.1fs)",
                 PINGS, GROUP_ID, s.worker_batch_max, s.worker_commit_interval_s)
        try:
            while not self._stopping:
                records = await self._next_batch()
                async with self.lock:
                    try:
                        if records:
                            self._handle(records)
                        if self._held:
                            await self._release_held()
                        if self.emit.unflushed:
                            await self.checkpoint.start_flush(self.consumer)
                        if self.checkpoint.due():
                            await self._checkpoint()
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        _fatal(f"batch of {len(records)} pings failed")
        finally:
            await self._shutdown()

    async def _next_batch(self) -> list:
        """Up to worker_batch_max records, waiting at most the batch window for them."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.worker_batch_window_s
        out: list = []
        while len(out) < s.worker_batch_max:
            wait_ms = max(0, int((deadline - loop.time()) * 1000))
            got = await self.consumer.getmany(timeout_ms=wait_ms, max_records=s.worker_batch_max - len(out))
            for records in got.values():
                out.extend(records)
            if wait_ms == 0 or (not got and out):
                break
        return out

    def _handle(self, records: list) -> None:
        received_ms = int(time.time() * 1000)
        store = self.store
        applied = store.applied
        decode = self.ping_codec.decode_many
        undecodable: list[tuple[str, dict]] = []
        fresh: list[Ping] = []
        source_of: dict[int, str] = {}
        record_of: dict[int, dict] = {}
        positions = self.clocks.positions
        clock = self.clocks.arrival
        try:
            decoded = decode([m.value for m in records])
        except (CodecError, TypeError):
            decoded = None  # some record is bad: decode one by one to keep the good ones
        for i, msg in enumerate(records):
            partition, offset = msg.partition, msg.offset
            if not store.owns(partition):
                continue  # fetched before the partition moved to another worker, which will handle it
            positions[TopicPartition(msg.topic, partition)] = offset + 1
            if decoded is not None:
                record = decoded[i]
            else:
                try:
                    record = self.ping_codec.decode(msg.value)
                except CodecError as exc:
                    undecodable.append((f"pings/{partition}/{offset}",
                                        rows.undecodable_record(msg, str(exc), received_ms)))
                    continue
            arrived = record["received_ms"]
            if arrived:  # None or 0: no arrival time (a backfill of history), event time alone orders it
                if msg.timestamp_type == LOG_APPEND_TIME:
                    # Arrival is when Kafka appended the ping (see core.kafka.ARRIVAL_CLOCK).
                    record["received_ms"] = arrived = msg.timestamp
                if arrived > clock.get(partition, 0):
                    clock[partition] = arrived
            did = record["device_id"]
            # At or below the highest offset applied: seen before a crash (saved state), or earlier
            # in this batch when a rebalance moved the partition back.
            if offset <= applied.get(did, -1):
                continue
            store.note_applied(did, partition, offset)
            ping = rows.ping_from_record(record)
            fresh.append(ping)
            key = id(ping)
            source_of[key] = f"pings/{partition}/{offset}"
            record_of[key] = record
        metrics.PINGS_IN.inc(len(records))

        result = process_batch(store.states, fresh, self.index, self.config)
        self._apply(result, record_of, source_of, undecodable)
        metrics.BATCH_SIZE.labels(stage="worker").observe(len(records))

    def _apply(self, result: BatchResult, record_of: dict, source_of: dict, undecodable: list) -> None:
        """Take a processors result: new states, rows for ClickHouse, events and rejects for Kafka."""
        self.store.update(result.states)
        held = self._held
        for did, st in result.states.items():
            if st.buffer:
                held.add(did)
            else:
                held.discard(did)
        self.emit.add(result, record_of, source_of, undecodable)
        caused = self.checkpoint.caused_ms
        for p in result.causes:
            if p is not None and p.received_ms:
                caused.append(p.received_ms)

    async def _release_held(self) -> None:
        """Release the held pings whose hold is over on their partition's arrival clock."""
        clocks = await self.clocks.current(self.consumer)
        if not clocks:
            return
        states, cfg = self.store.states, self.config
        gone = [did for did in self._held if not (did in states and states[did].buffer)]
        self._held.difference_update(gone)
        self._expire_due(((did, states[did]) for did in self._held), clocks,
                         lambda st, clock: hold_expired(st.buffer, clock, cfg))

    def _expire_due(self, candidates, clocks: dict[int, int], is_due) -> tuple[int, int, int]:
        """Run `expire` for the candidate devices `is_due(state, clock)` on their partition's clock.

        Returns (devices, events, pings released).
        """
        partition_of = self.store.partition_of
        due: dict[int, dict[str, DeviceState]] = {}
        for did, st in candidates:
            p = partition_of(did)
            clock = clocks.get(p)
            if clock is not None and is_due(st, clock):
                due.setdefault(p, {})[did] = st
        events = released = 0
        for p, group in due.items():
            result = expire(group, clocks[p], self.index, self.config)
            self._apply(result, {}, {}, [])
            events += len(result.events)
            released += len(result.accepted) + len(result.rejected)
        return sum(map(len, due.values())), events, released

    async def _checkpoint(self) -> None:
        """streams.checkpoint: rows durable, then changed states, then acknowledgements, then offsets."""
        dirty = await self.checkpoint.run(self.consumer)
        self._update_gauges(dirty)

    def _update_gauges(self, dirty) -> None:
        states = self.store.states
        for did in dirty:
            st = states.get(did)
            if st is not None and any(tr.phase == OPEN for tr in st.tracks.values()):
                self._inside.add(did)
            else:
                self._inside.discard(did)
        metrics.DEVICES_INSIDE_HOTSPOTS.set(len(self._inside))
        consumer = self.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = self.clocks.positions.get(tp, self.checkpoint.committed.get(tp))
            if highwater is not None and position is not None:
                metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(0, highwater - position))

    # --- rebalances -----------------------------------------------------------------
    async def partitions_revoked(self, revoked) -> None:
        """Checkpoint before another worker may take these partitions, then forget them."""
        async with self.lock:
            try:
                await self._checkpoint()
            except Exception:
                _fatal("checkpoint before a rebalance failed")
            gone = [tp.partition for tp in revoked if tp.topic == PINGS]
            self.store.drop(gone)
            for tp in revoked:
                self.clocks.forget(tp)
                self.checkpoint.committed.pop(tp, None)
                try:
                    metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
                except KeyError:
                    pass  # no lag was reported for it yet
            self._inside &= set(self.store.states)
            if gone:
                log.info("pings partitions %s handed back", sorted(gone))

    async def partitions_assigned(self, assigned) -> None:
        """Read the device states of newly assigned partitions from the changelog before their pings."""
        async with self.lock:
            try:
                mine = sorted(tp.partition for tp in assigned if tp.topic == PINGS)
                await self.store.load(mine)
                self._inside = {d for d, st in self.store.states.items()
                                if any(tr.phase == OPEN for tr in st.tracks.values())}
                self._held = {d for d, st in self.store.states.items() if st.buffer}
                metrics.DEVICES_INSIDE_HOTSPOTS.set(len(self._inside))
            except Exception:
                _fatal("loading device state for assigned partitions failed")

    # --- silence --------------------------------------------------------------------
    async def expire(self) -> None:
        """The timer: close the visits of devices gone quiet, flush buffers of pings without arrival times."""
        await self.ready.wait()
        if self.consumer is None:
            return
        async with self.lock:
            try:
                await self._expire()
            except asyncio.CancelledError:
                raise
            except Exception:
                _fatal("closing quiet devices failed")

    async def _expire(self) -> None:
        # Silence is judged on each partition's arrival clock, never on a backlog not yet read:
        # right after a restart the clock is that of the pings handled so far.
        clocks = await self.clocks.current(self.consumer)
        if not clocks:
            return
        cfg = self.config

        def due(st: DeviceState, clock: int) -> bool:
            deadline = st.deadline_ms(cfg)
            return deadline is not None and deadline <= clock

        devices, events, released = self._expire_due(self.store.states.items(), clocks, due)
        if devices:
            log.info("expired %d quiet devices: %d events, %d pings released", devices, events, released)
            await self.checkpoint.start_flush(self.consumer)

    # --- stop -----------------------------------------------------------------------
    async def stop(self, loop_task: asyncio.Future, timeout_s: float = 30.0) -> None:
        """Let the loop finish its batch and take a last checkpoint; give up after `timeout_s`.

        Leaving the group on the way out hands the partitions to the next worker at
        once instead of after the session timeout. A stop that times out (ClickHouse
        unreachable) loses nothing: the next start resumes from the last checkpoint.
        """
        self._stopping = True
        if self.consumer is None:  # still waiting for the hot spots: nothing taken in yet
            loop_task.cancel()
            return
        try:
            await asyncio.wait_for(asyncio.shield(loop_task), timeout_s)
        except asyncio.TimeoutError:
            log.warning("no clean stop within %.0fs; the next start resumes from the last checkpoint", timeout_s)
            loop_task.cancel()
        except Exception:  # the loop's own failure was logged where it happened
            pass

    async def _shutdown(self) -> None:
        """A clean stop: last checkpoint, leave the group, close the clients."""
        try:
            if self.consumer is not None:
                async with self.lock:
                    await self._checkpoint()
        except Exception:
            log.exception("last checkpoint failed; the next start resumes from the previous one")
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception:  # stopping a client that lost its broker may fail; nothing left to save
                    pass
