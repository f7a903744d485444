"""The thin I/O shell of the live worker around `processors.batch`.

For one micro-batch of Kafka records: decode, drop what each device's stored
state has already applied, run the processors, write ClickHouse (retrying until
it lands), save state with the last applied offset, publish events. The
processors decide everything about pings; this module only moves data.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from processors.batch import BatchResult, expire, process_batch
from processors.geofence import HotspotIndex
from processors.device import DeviceState
from schemas.codec import Codec, CodecError
from sinks import metrics, rows as table_rows
from sinks.clickhouse import is_embedded, make_client, migrate
from sinks.query_server import serve_readonly_queries
from sinks.writer import ClickHouseWriter, RetryPolicy, is_permanent
from streams import rows
from streams.hotspotfeed import CompactedFeed, HotspotFeed
from streams.settings import Settings
from streams.worker import pack_state, unpack_state

log = logging.getLogger("hotspot.worker")
EXIT_BATCH_FAILED = 70  # EX_SOFTWARE: a bug, the supervisor should restart us and someone should look


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


class LivePipeline:
    def __init__(self, app, settings: Settings, table):
        self.app = app
        self.settings = settings
        self.table = table
        self.config = settings.processing_config()
        self._last_batch_full = False
        self.index = HotspotIndex.from_hotspots([])
        self.ping_codec = Codec("Ping")
        self.event_codec = Codec("PatrolEvent")
        self.reject_codec = Codec("RejectedPing")
        # Decoded device states by key, with the exact bytes they came from: while the table
        # still holds those bytes, the decoded state is reused instead of parsed again.
        self._decoded: dict[bytes, tuple[bytes, DeviceState]] = {}
        self.lock = asyncio.Lock()  # the agent and the expiry timer both write device state
        self.ready = asyncio.Event()  # set once the hot-spot topic has been read to its end
        self._partitioner = DefaultPartitioner()
        self._partitions = list(range(settings.partitions))
        _open_store_when_available(settings)
        self.query_server = None
        if is_embedded(settings.effective_clickhouse_dsn):
            # This process owns the embedded store now: it answers `hotspot sql` for everyone else.
            self.query_server = serve_readonly_queries(settings.effective_clickhouse_dsn, settings.data_dir,
                                                       settings.clickhouse_database)
        self.writer = ClickHouseWriter(settings.effective_clickhouse_dsn, settings.clickhouse_database,
                                       max_rows=10 * settings.worker_batch_max, name="worker")
        self.events_topic = app.topic("patrol-events", key_serializer="raw", value_serializer="raw")
        self.rejects_topic = app.topic("pings-rejected", key_serializer="raw", value_serializer="raw")

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
            self.writer.add("hotspots", table_rows.hotspot_row(record))
        for hid, retired_ms in retired.items():
            self.writer.add("hotspots", table_rows.retired_hotspot_row(hid, retired_ms))
        await self.writer.flush_async()
        log.info("hot-spot index rebuilt: %d active hot spots", len(current))

    # --- trial allocations -------------------------------------------------------
    async def follow_allocations(self) -> None:
        """Record the trial schedules published on `allocations` (`hotspot allocate --publish`)."""
        written: dict[str, dict] = {}

        async def changed(current: dict[str, dict], _retired: dict[str, int]) -> None:
            new = [r for k, r in current.items() if written.get(k) != r]
            for r in new:
                self.writer.add("allocations", table_rows.allocation_row(r))
            if new:
                await self.writer.flush_async()
                written.update({k: current[k] for k in current})
                log.info("recorded %d trial allocation rows", len(new))

        feed = CompactedFeed(self.settings.bootstrap_servers, on_change=changed, topic="allocations", schema="Allocation")
        await feed.start()
        try:
            await asyncio.Event().wait()
        finally:
            await feed.stop()

    # --- pings ----------------------------------------------------------------
    async def handle(self, events) -> None:
        """Process one batch. A failure stops the worker rather than letting Faust ack the batch."""
        await self.ready.wait()
        try:
            async with self.lock:
                await self._handle(events)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Faust would ack the batch once an exception leaves the agent, and an app
            # "crash" leaves the process up. Leave at once instead: nothing of this batch
            # is committed, and a restart consumes it again (safe, as after kill -9).
            log.exception("batch of %d pings failed; exiting so it is consumed again after restart", len(events))
            logging.shutdown()
            os._exit(EXIT_BATCH_FAILED)

    async def _handle(self, events) -> None:
        # A full batch means more input is waiting: silence must not be judged until it is read.
        self._last_batch_full = len(events) >= self.settings.worker_batch_max
        received_ms = int(time.time() * 1000)
        decoded: list[tuple[Any, dict]] = []
        undecodable: list[tuple[str, dict]] = []
        for ev in events:
            msg = ev.message
            try:
                decoded.append((msg, self.ping_codec.decode(msg.value)))
            except CodecError as exc:
                undecodable.append((f"pings/{msg.partition}/{msg.offset}",
                                    rows.undecodable_record(msg, str(exc), received_ms)))
        metrics.PINGS_IN.inc(len(events))

        states: dict[str, DeviceState] = {}
        applied: dict[str, int] = {}
        newest: dict[str, int] = {}
        fresh, source_of, record_of = [], {}, {}
        for msg, record in decoded:
            did = record["device_id"]
            if did not in applied:
                blob = self.table.get(did.encode())
                if blob is None:
                    applied[did] = -1
                else:
                    applied[did], states[did] = self._load(did.encode(), blob)
            # A device's pings share one partition, delivered in offset order, so anything at or
            # below the highest offset already applied was seen: before a crash (saved state), or
            # earlier in this very batch when a rebalance seeks the partition back.
            if msg.offset <= applied[did]:
                continue
            applied[did] = msg.offset
            ping = rows.ping_from_record(record)
            fresh.append(ping)
            source_of[id(ping)] = f"pings/{msg.partition}/{msg.offset}"
            record_of[id(ping)] = record
            newest[did] = msg.offset

        result = process_batch(states, fresh, self.index, self.config)
        self._add_rows(result, record_of, source_of, undecodable)
        await self.writer.flush_async()  # returns once ClickHouse holds every row: backpressure

        for did, offset in newest.items():
            state = result.states.get(did) or states.get(did)
            if state is not None:
                self._save(did.encode(), offset, state)
        await self._publish(result, record_of, [u for _, u in undecodable])
        self._count(result, len(undecodable))
        metrics.BATCH_SIZE.labels(stage="worker").observe(len(events))
        if result.events:
            # Arrival at the gateway to the event being durable in ClickHouse.
            lag_s = [(time.time() * 1000 - p.received_ms) / 1000 for p in fresh if p.received_ms]
            if lag_s:
                metrics.PING_TO_EVENT_SECONDS.observe(max(lag_s))

    async def expire(self) -> None:
        """Release reorder buffers and close visits of devices that have gone quiet."""
        await self.ready.wait()
        if self._last_batch_full or not self._caught_up():
            return  # a backlog (e.g. after a restart) is not silence: read it first
        now_ms = int(time.time() * 1000)  # the arrival clock that received_ms is stamped on
        async with self.lock:
            offsets: dict[str, int] = {}
            states: dict[str, DeviceState] = {}
            for key, blob in list(self.table.items()):
                offset, state = self._load(key, blob)
                if state.deadline_ms(self.config) is not None and state.deadline_ms(self.config) <= now_ms:
                    did = key.decode()
                    offsets[did], states[did] = offset, state
            if not states:
                return
            result = expire(states, now_ms, self.index, self.config)
            log.info("expired %d quiet devices: %d events, %d pings released", len(states), len(result.events),
                     len(result.accepted) + len(result.rejected))
            self._add_rows(result, {}, {}, [])
            await self.writer.flush_async()
            for did, state in result.states.items():
                self._save(did.encode(), offsets[did], state)
            await self._publish(result, {}, [])
            self._count(result, 0)

    def _load(self, key: bytes, blob: bytes) -> tuple[int, DeviceState]:
        """(highest applied offset, state) of a table value; parsed only if it changed."""
        cached = self._decoded.get(key)
        offset, _, state_bytes = unpack_state(blob)
        if cached is not None and cached[0] is blob:
            return offset, cached[1]
        state = DeviceState.from_bytes(state_bytes)
        self._decoded[key] = (blob, state)
        return offset, state

    def _save(self, key: bytes, offset: int, state: DeviceState) -> None:
        blob = pack_state(offset, 0, state.to_bytes())
        self.table[key] = blob
        self._decoded[key] = (blob, state)

    def _caught_up(self) -> bool:
        """True when this worker holds pings partitions and has read each to its end.

        During a rebalance (as after a restart) nothing is assigned yet: that is
        not caught up, or the timer would judge devices silent whose pings are
        still waiting in Kafka.
        """
        consumer = self.app.consumer
        try:
            mine = [tp for tp in consumer.assignment() if tp.topic == "pings"]
            if not mine:
                return False
            for tp in mine:
                highwater = consumer.highwater(tp)
                if highwater is None:
                    return False
                position = consumer._read_offset.get(tp)  # Faust's last offset read from this partition
                if (position is None and highwater > 0) or (position is not None and position + 1 < highwater):
                    return False
        except Exception:  # consumer not ready (rebalancing): not caught up
            return False
        return True

    # --- output ---------------------------------------------------------------
    def _add_rows(self, result: BatchResult, record_of: dict, source_of: dict, undecodable) -> None:
        w = self.writer
        for a in result.accepted:
            rec = record_of.get(id(a.ping)) or rows.ping_record(a.ping, "other")
            w.add("pings", table_rows.ping_row(rec, hotspot_ids=a.hotspot_ids, low_accuracy=a.low_accuracy))
        for r in result.rejected:
            rec = rows.reject_record(r, record_of.get(id(r.ping)))
            reject_id = source_of.get(id(r.ping)) or f"{r.ping.device_id}/{r.ping.ts_ms}/{r.reason}"
            w.add("pings_rejected", table_rows.rejected_row(rec, reject_id))
        for reject_id, rec in undecodable:
            w.add("pings_rejected", table_rows.rejected_row(rec, reject_id))
        for e in result.events:
            table, row = table_rows.patrol_event_row(rows.event_record(e))
            w.add(table, row)

    async def _publish(self, result: BatchResult, record_of: dict, undecodable: list[dict]) -> None:
        emitted_ms = int(time.time() * 1000)
        for e in result.events:
            await self.events_topic.send(key=e.device_id.encode(),
                                         value=self.event_codec.encode(rows.event_record(e, emitted_ms)))
        for r in result.rejected:
            await self.rejects_topic.send(key=r.ping.device_id.encode(),
                                          value=self.reject_codec.encode(rows.reject_record(r, record_of.get(id(r.ping)))))
        for u in undecodable:
            await self.rejects_topic.send(key=(u["device_id"] or "").encode(), value=self.reject_codec.encode(u))

    def _count(self, result: BatchResult, undecodable: int) -> None:
        for r in result.rejected:
            metrics.PINGS_REJECTED.labels(reason=r.reason).inc()
        if undecodable:
            metrics.PINGS_REJECTED.labels(reason="undecodable").inc(undecodable)
        for e in result.events:
            metrics.EVENTS.labels(type=e.type).inc()
