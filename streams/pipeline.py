"""The live worker's consume-process-write loop around `processors.batch`.

One consumer in the group `hotspot-worker` reads `pings` in micro-batches
(`getmany`, up to `worker_batch_max` records or `worker_batch_window_s`), and
for each batch: decode, drop what each device's state has already applied, run
the processors, add the rows to the ClickHouse writer and start writing them
while the next batch is processed, publish events and rejects. The processors
decide everything about pings; this module only moves data.

Checkpoints make a crash harmless. Every `worker_commit_interval_s`, and before
partitions are handed to another worker, the loop stops taking batches and:

1. waits until ClickHouse holds every row of every batch so far (the writer
   retries through outages for as long as it takes: consumption stops, which is
   the backpressure, and the partitions are paused so the group keeps us);
2. writes the state of each device that changed, with the offset of the last
   ping it applied, to the compacted changelog (`streams.statestore`);
3. waits for Kafka to acknowledge those states and the events and rejects;
4. commits the offsets.

Killed before 2, the batches are consumed again from the older states and give
the same rows with the same ids, which the replacing tables collapse. Killed
after 2, the states already cover those pings and their offsets make the
worker skip them. Nothing is lost and nothing is counted twice; events on
`patrol-events` may repeat (at least once), with the same `event_id`.

Held pings. The processors hold each live ping for at most `reorder_hold_s`
of arrival time (processors.reorder), so that a ping overtaken in the network
can still be put back in order. Arrival is the time the broker appended the
ping to `pings` (the topic stamps LogAppendTime, core.kafka.ARRIVAL_CLOCK),
which never decreases along a partition. Every turn of the loop (at least
every batch window) releases what has served its hold, on each partition's
arrival clock: the newest arrival handled from the partition, or, once a fresh
look at the log end shows the partition handled to its end, the wall clock as
it was before that look. Judged so, a release never comes before a ping that
arrived in time is read, whatever the loop's speed: after a restart (a
backlog) and on a busy machine the result is what replaying the same pings
with their arrival times gives. The Faust timer does the same for silence
(`signal_loss_s`) every `worker_expire_interval_s`.

Why a plain aiokafka consumer rather than a Faust agent stream: Faust delivers
each record as its own event through its conductor, and at 20,000 pings/s that
per-record machinery and the per-batch table writes cost more than the
analytics themselves (bench/RESULTS.md, "Live pipeline"). The Faust app still
hosts the worker (streams/worker.py): this loop, the expiry timer and the
hot-spot and allocation feeds are its task, timer and services.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from processors.batch import BatchResult, expire, open_visits, process_batch
from processors.device import DeviceState
from processors.geofence import HotspotIndex
from processors.model import IMPLIED_SPEED, TIME_JUMP, Ping
from processors.reorder import hold_expired
from processors.visits import OPEN
from core import topics
from core.codecs import codec_for
from schemas.codec import CodecError
from sinks import metrics
from sinks.clickhouse import is_embedded, make_client, migrate
from sinks.query_server import serve_readonly_queries
from sinks.writer import ClickHouseWriter, RetryPolicy, is_permanent
from formats import records as rows
from streams.hotspotfeed import CompactedFeed, HotspotFeed
from core.kafka import make_consumer, make_producer
from core.settings import Settings
from streams.statestore import DeviceStates

log = logging.getLogger("hotspot.worker")
EXIT_BATCH_FAILED = 70  # EX_SOFTWARE: a bug, the supervisor should restart us and someone should look
GROUP_ID = "hotspot-worker"
PINGS = topics.PINGS
LOG_APPEND_TIME = 1  # ConsumerRecord.timestamp_type of a record stamped by the broker


def _open_store_when_available(settings: Settings) -> None:
    """Apply migrations, waiting for ClickHouse for as long as it takes.

    Until it answers, the worker consumes nothing: pings wait in Kafka, which is
    the backpressure, and are processed once the store is back. Only errors that
    retrying cannot cure (bad SQL, refused credentials) stop the worker.
    """
    import random

    rng = random.Random()
    policy = RetryPolicy(initial_delay_s=0.5, max_delay_s=5.0)
    attempt = 0
    while True:
        try:
            migrate(make_client(settings.effective_clickhouse_dsn), settings.clickhouse_database, settings.pings_ttl_days)
            metrics.SINK_HEALTHY.labels(sink="worker").set(1)
            return
        except Exception as exc:
            if is_permanent(exc):
                raise
            attempt += 1
            delay_s = policy.delay_s(attempt, rng)
            metrics.SINK_HEALTHY.labels(sink="worker").set(0)
            log.warning("ClickHouse is not available (%s); retrying in %.1fs while pings wait in Kafka",
                        str(exc).splitlines()[0][:200], delay_s)
            time.sleep(delay_s)  # nothing else to do before the store opens: the consumer has not started


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
        self._positions: dict[TopicPartition, int] = {}  # next offset to commit, per partition handled
        self._start_positions: dict[TopicPartition, int] = {}  # where consumption began, for those not yet handled
        self._committed: dict[TopicPartition, int] = {}
        self._acks: list[asyncio.Future] = []             # sends not yet known to be acknowledged
        self._flushing: asyncio.Future | None = None      # the ClickHouse insert running behind the loop
        self._last_checkpoint = time.monotonic()
        self._arrival_clock: dict[int, int] = {}         # newest received_ms handled, per pings partition
        self._held: set[str] = set()                      # devices with pings in their reorder buffer
        self._unflushed = False                           # rows added since the last flush started
        self._caused_ms: list[int] = []                   # arrival of each event's causing fix, since that flush
        self._inside: set[str] = set()                    # devices with an open visit, for the gauge
        self._stopping = False
        if not joined_store:  # a joining worker writes through the owner (sinks.shared_store)
            _open_store_when_available(settings)
        self.query_server = None
        if is_embedded(settings.effective_clickhouse_dsn) and not joined_store:
            # This process owns the embedded store now: it answers `hotspot sql` for everyone else.
            self.query_server = serve_readonly_queries(settings.effective_clickhouse_dsn, settings.data_dir,
                                                       settings.clickhouse_database)
        self.writer = ClickHouseWriter(settings.effective_clickhouse_dsn, settings.clickhouse_database,
                                       max_rows=10 * settings.worker_batch_max, name="worker",
                                       client_factory=client_factory, arrow_inserts=True if joined_store else None)

    # --- hot spots ------------------------------------------------------------
    async def follow_hotspots(self) -> None:
        feed = HotspotFeed(self.settings.bootstrap_servers, on_change=self._hotspots_changed)
        await feed.start()
        self.ready.set()
        try:
            await asyncio.Event().wait()  # follow until the worker stops
        finally:
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
                        if self._unflushed:
                            await self._start_flush()
                        if time.monotonic() - self._last_checkpoint >= s.worker_commit_interval_s:
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
        positions = self._positions
        clock = self._arrival_clock
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
        self._add_rows(result, record_of, source_of, undecodable)
        self._queue_publish(result, record_of, [u for _, u in undecodable])
        self._count(result, len(undecodable))
        caused = self._caused_ms
        for p in result.causes:
            if p is not None and p.received_ms:
                caused.append(p.received_ms)

    async def _partition_clocks(self) -> dict[int, int]:
        """Arrival clock per owned pings partition, on the broker's append-time scale.

        It is the newest arrival handled from the partition, or, when the partition
        has been handled to its end, the wall clock as it was just before that end
        was looked up (less `worker_arrival_margin_s`). Append times never decrease
        along a partition, so at that clock every ping that arrived earlier has been
        handled: a release on it is the release the data itself would have caused,
        however long the loop took. The consumer's `highwater` is only a first look:
        it is as old as the last fetch response, which after a long batch is seconds
        stale, so a partition it shows as read to its end is confirmed with a fresh
        request for the log end.

        A partition with neither (just assigned, nothing read yet) has no clock: nothing of it is released.
        """
        consumer = self.consumer
        clocks: dict[int, int] = {}
        maybe_at_end: dict[TopicPartition, int] = {}
        try:
            for tp in consumer.assignment():
                if tp.topic != PINGS or not self.store.owns(tp.partition):
                    continue
                clock = self._arrival_clock.get(tp.partition)
                if clock is not None:
                    clocks[tp.partition] = clock
                highwater = consumer.highwater(tp)
                if highwater is not None:  # None: no fetch answered yet
                    position = await self._handled_position(tp)
                    if position >= highwater:
                        maybe_at_end[tp] = position
            if maybe_at_end:
                now_ms = int((time.time() - self.settings.worker_arrival_margin_s) * 1000)  # before the request
                ends = await consumer.end_offsets(list(maybe_at_end))
                for tp, position in maybe_at_end.items():
                    if position >= ends[tp]:
                        clocks[tp.partition] = max(clocks.get(tp.partition, now_ms), now_ms)
        except Exception:  # the consumer is rebalancing: no clock this time
            return {}
        return clocks

    async def _handled_position(self, tp: TopicPartition) -> int:
        """The offset after the last record of `tp` this loop has handled.

        Not the consumer's position: that moves as soon as `getmany` returns records,
        and the timer can run before the loop has handled them (right after a restart
        that is a whole backlog, which must not pass for a partition read to its end).
        Before any record is handled it is where consumption started: the group's
        committed offset, or the start of the partition.
        """
        position = self._positions.get(tp)
        if position is None:
            position = self._start_positions.get(tp)
        if position is None:
            position = await self.consumer.committed(tp)
            if position is None:
                position = (await self.consumer.beginning_offsets([tp]))[tp]
            self._start_positions[tp] = position
        return position

    async def _release_held(self) -> None:
        """Release the held pings whose hold is over on their partition's arrival clock."""
        clocks = await self._partition_clocks()
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

    async def _start_flush(self) -> None:
        """Write the rows added so far in the background; at most one such write runs at a time."""
        await self._await_flush()
        flushing = asyncio.ensure_future(self.writer.flush_async())
        self._unflushed = False
        caused, self._caused_ms = self._caused_ms, []
        if caused:
            def observe(f: asyncio.Future, caused=caused) -> None:
                if not f.cancelled() and f.exception() is None:
                    # From the arrival of the fix that caused each event to the event being durable.
                    now_s = time.time()
                    for received_ms in caused:
                        metrics.PING_TO_EVENT_SECONDS.observe(max(0.0, now_s - received_ms / 1000))
            flushing.add_done_callback(observe)
        self._flushing = flushing

    async def _await_flush(self) -> None:
        """Wait for the background insert; through an outage, keep polling with the partitions paused.

        Polling keeps this member in the group (no rebalance storm while ClickHouse
        is away); paused partitions return nothing, so nothing more is taken in.
        """
        f = self._flushing
        if f is None:
            return
        paused: set[TopicPartition] = set()
        try:
            while not f.done():
                done, _ = await asyncio.wait({f}, timeout=1.0)
                if done:
                    break
                if not paused:
                    paused = set(self.consumer.assignment())
                    self.consumer.pause(*paused)
                    log.warning("ClickHouse insert still waiting; consumption paused until it lands")
                await self.consumer.getmany(timeout_ms=0)
        finally:
            if paused:
                still_ours = paused & set(self.consumer.assignment())
                if still_ours:
                    self.consumer.resume(*still_ours)
                log.info("ClickHouse insert landed; consumption resumed")
        self._flushing = None
        f.result()  # an insert ClickHouse refused for good raises here

    async def _checkpoint(self) -> None:
        """Rows durable, then changed states, then acknowledgements, then offsets (see the module doc)."""
        await self._await_flush()
        self._add_open_visit_rows()
        # The rest (those progress rows, rows of the timer) through the same path as every other
        # insert: through an outage it keeps polling with the partitions paused, never blocks the loop.
        await self._start_flush()
        await self._await_flush()
        dirty = self.store.dirty
        acks = self._acks + await self.store.write_dirty(self.producer)
        self._acks = []
        if acks:
            await asyncio.gather(*acks)
        offsets = {tp: off for tp, off in self._positions.items() if self._committed.get(tp) != off}
        if offsets:
            try:
                await self.consumer.commit(offsets)
                self._committed.update(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on without us (e.g. a session lost to a long pause). The states
                # are in the changelog with their offsets, so whoever owns these partitions next
                # skips what we applied; the rebalance that follows reloads ours from there.
                log.warning("offset commit refused (%s); the changelog's offsets cover it", exc)
        self._last_checkpoint = time.monotonic()
        self._update_gauges(dirty)

    def _add_open_visit_rows(self) -> None:
        """Open visits' dwell so far (issue 12), for the devices whose state changed since the last
        checkpoint: the control room and dosage_daily see presence while it lasts. Idempotent rows
        (version = last inside fix), so a restart writing them again changes nothing."""
        states = self.store.states
        changed = [st for d in self.store.dirty if (st := states.get(d)) is not None]
        for v in open_visits(changed):
            self.writer.add("visits", rows.visit_progress_row(v))

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
            position = self._positions.get(tp, self._committed.get(tp))
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
                self._positions.pop(tp, None)
                self._start_positions.pop(tp, None)
                self._committed.pop(tp, None)
                if tp.topic == PINGS:
                    self._arrival_clock.pop(tp.partition, None)
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
        clocks = await self._partition_clocks()
        if not clocks:
            return
        cfg = self.config

        def due(st: DeviceState, clock: int) -> bool:
            deadline = st.deadline_ms(cfg)
            return deadline is not None and deadline <= clock

        devices, events, released = self._expire_due(self.store.states.items(), clocks, due)
        if devices:
            log.info("expired %d quiet devices: %d events, %d pings released", devices, events, released)
            await self._start_flush()

    # --- output ---------------------------------------------------------------
    def _add_rows(self, result: BatchResult, record_of: dict, source_of: dict, undecodable) -> None:
        w = self.writer
        accepted = result.accepted
        if accepted or result.rejected or result.events or undecodable:
            self._unflushed = True
        if accepted:
            # One Arrow batch for the pings: no Python object per row (pings held over from an
            # earlier batch have no record here and are written as ping_record(ping), whose
            # source the Ping carries).
            w.add_arrow("pings", rows.ping_rows_arrow([record_of.get(id(a.ping)) or a.ping for a in accepted],
                                                            [a.hotspot_ids for a in accepted],
                                                            [a.low_accuracy for a in accepted]))
        for r in result.rejected:
            rec = rows.reject_record(r, record_of.get(id(r.ping)))
            # Rejected on admission: the record's place in Kafka. Rejected once released (implied
            # speed) or once later pings judged it (time_jump), which may be in a later batch, or in
            # another one after a restart: the device, fix time and reason, which no other ping of
            # the device shares.
            reject_id = (source_of.get(id(r.ping)) if r.reason not in (IMPLIED_SPEED, TIME_JUMP) else None) \
                or f"{r.ping.device_id}/{r.ping.ts_ms}/{r.reason}"
            w.add("pings_rejected", rows.rejected_row(rec, reject_id))
        for reject_id, rec in undecodable:
            w.add("pings_rejected", rows.rejected_row(rec, reject_id))
        for e in result.events:
            table, row = rows.patrol_event_row(rows.event_record(e))
            w.add(table, row)

    def _queue_publish(self, result: BatchResult, record_of: dict, undecodable: list[dict]) -> None:
        """Hand events and rejects to the producer; their acknowledgements are awaited at the checkpoint."""
        if not (result.events or result.rejected or undecodable):
            return
        emitted_ms = int(time.time() * 1000)
        out: list[tuple[str, bytes, bytes]] = []
        for e in result.events:
            out.append((topics.PATROL_EVENTS, e.device_id.encode(), self.event_codec.encode(rows.event_record(e, emitted_ms))))
        for r in result.rejected:
            out.append((topics.PINGS_REJECTED, r.ping.device_id.encode(),
                        self.reject_codec.encode(rows.reject_record(r, record_of.get(id(r.ping))))))
        for u in undecodable:
            out.append((topics.PINGS_REJECTED, (u["device_id"] or "").encode(), self.reject_codec.encode(u)))
        self._acks.append(asyncio.ensure_future(self._send_all(out)))

    async def _send_all(self, out: list[tuple[str, bytes, bytes]]) -> None:
        send = self.producer.send
        futures = [await send(topic, key=key, value=value) for topic, key, value in out]
        await asyncio.gather(*futures)

    def _count(self, result: BatchResult, undecodable: int) -> None:
        for r in result.rejected:
            metrics.PINGS_REJECTED.labels(reason=r.reason).inc()
        if undecodable:
            metrics.PINGS_REJECTED.labels(reason="undecodable").inc(undecodable)
        for e in result.events:
            metrics.EVENTS.labels(type=e.type).inc()

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
