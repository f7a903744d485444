"""The live worker's checkpoint: what makes a crash harmless.

The worker talks to its ClickHouse sink through `add` and `flush` only (the
`sinks.writer.ClickHouseWriter` shape). Rows of each batch are added as it is
handled; `start_flush` writes them in the background while the next batch is
processed (at most one such write at a time). Every
`worker_commit_interval_s`, and before partitions are handed to another
worker, the loop stops taking batches and `Checkpoint.run`:

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
"""
from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from formats import records as rows
from processors.batch import open_visits
from sinks import metrics

log = logging.getLogger("hotspot.worker")


class Checkpoint:
    """`sink`: add(table, row) / flush_async(); `emit`: the streams.emit.Emitter whose rows and sends it covers;
    `store`: streams.statestore.DeviceStates; `clocks`: streams.clocks.PartitionClocks (the offsets handled)."""

    def __init__(self, sink, emit, store, clocks, interval_s: float):
        self.sink = sink
        self.emit = emit
        self.store = store
        self.clocks = clocks
        self.interval_s = interval_s
        self.committed: dict[TopicPartition, int] = {}
        self.caused_ms: list[int] = []          # arrival of each event's causing fix, since that flush
        self._flushing: asyncio.Future | None = None  # the ClickHouse insert running behind the loop
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s

    async def start_flush(self, consumer) -> None:
        """Write the rows added so far in the background; at most one such write runs at a time."""
        await self.await_flush(consumer)
        flushing = asyncio.ensure_future(self.sink.flush_async())
        self.emit.unflushed = False
        caused, self.caused_ms = self.caused_ms, []
        if caused:
            def observe(f: asyncio.Future, caused=caused) -> None:
                if not f.cancelled() and f.exception() is None:
                    # From the arrival of the fix that caused each event to the event being durable.
                    now_s = time.time()
                    for received_ms in caused:
                        metrics.PING_TO_EVENT_SECONDS.observe(max(0.0, now_s - received_ms / 1000))
            flushing.add_done_callback(observe)
        self._flushing = flushing

    async def await_flush(self, consumer) -> None:
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
                    paused = set(consumer.assignment())
                    consumer.pause(*paused)
                    log.warning("ClickHouse insert still waiting; consumption paused until it lands")
                await consumer.getmany(timeout_ms=0)
        finally:
            if paused:
                still_ours = paused & set(consumer.assignment())
                if still_ours:
                    consumer.resume(*still_ours)
                log.info("ClickHouse insert landed; consumption resumed")
        self._flushing = None
        f.result()  # an insert ClickHouse refused for good raises here

    async def run(self, consumer) -> set[str]:
        """Rows durable, then changed states, then acknowledgements, then offsets; returns the devices written."""
        await self.await_flush(consumer)
        self._add_open_visit_rows()
        # The rest (those progress rows, rows of the timer) through the same path as every other
        # insert: through an outage it keeps polling with the partitions paused, never blocks the loop.
        await self.start_flush(consumer)
        await self.await_flush(consumer)
        dirty = self.store.dirty
        acks = self.emit.take_acks() + await self.store.write_dirty(self.emit.producer)
        if acks:
            await asyncio.gather(*acks)
        offsets = {tp: off for tp, off in self.clocks.positions.items() if self.committed.get(tp) != off}
        if offsets:
            try:
                await consumer.commit(offsets)
                self.committed.update(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # The group moved on without us (e.g. a session lost to a long pause). The states
                # are in the changelog with their offsets, so whoever owns these partitions next
                # skips what we applied; the rebalance that follows reloads ours from there.
                log.warning("offset commit refused (%s); the changelog's offsets cover it", exc)
        self._last = time.monotonic()
        return dirty

    def _add_open_visit_rows(self) -> None:
        """Open visits' dwell so far (issue 12), for the devices whose state changed since the last
        checkpoint: the control room and dosage_daily see presence while it lasts. Idempotent rows
        (version = last inside fix), so a restart writing them again changes nothing."""
        states = self.store.states
        changed = [st for d in self.store.dirty if (st := states.get(d)) is not None]
        for v in open_visits(changed):
            self.sink.add("visits", rows.visit_progress_row(v))
