"""The worker's record sink: Kafka `assignments`, `activity`, `audit` → ClickHouse tables of the same names.

Owns getting the officer app's records (issue 14) into ClickHouse. A consumer
in its own group (`hotspot-records`, so several workers share the partitions)
reads the three topics in batches; each batch's rows are written and ClickHouse
has acknowledged them before the batch's offsets are committed. The writer
waits through a ClickHouse outage for as long as it takes (nothing is
committed meanwhile, so nothing is lost).

A worker killed between the insert and the commit reads the batch again after
the restart and inserts the same rows again: every row has a stable key
(`assignment_id`; `user, ts, activity_id`; `ts, audit_id`) in a
ReplacingMergeTree, so the repeat replaces instead of doubling (read with
FINAL, as the `compliance` view does). A record that cannot be decoded is
logged, counted and skipped: it could never be stored, and must not hold up
the rest.

The worker registers it with one task in streams/worker.py.
"""
from __future__ import annotations

import asyncio
import logging
import os

from schemas.codec import Codec
from sinks import rows as table_rows
from sinks.writer import ClickHouseWriter

log = logging.getLogger("hotspot.records")

GROUP_ID = "hotspot-records"
TOPICS = {
    # topic: (schema, table, row function)
    "assignments": ("Assignment", "assignments", table_rows.assignment_row),
    "activity": ("Activity", "activity", table_rows.activity_row),
    "audit": ("Audit", "audit", table_rows.audit_row),
}


class RecordSink:
    def __init__(self, settings, *, client_factory=None, joined_store: bool = False, batch_max: int = 5000):
        self.settings = settings
        self.batch_max = batch_max
        self.codecs = {topic: Codec(schema) for topic, (schema, _, _) in TOPICS.items()}
        self.writer = ClickHouseWriter(settings.effective_clickhouse_dsn, settings.clickhouse_database,
                                       max_rows=10 * batch_max, name="records", client_factory=client_factory,
                                       arrow_inserts=True if joined_store else None)
        self.stored = {topic: 0 for topic in TOPICS}  # rows written, per topic (tests, logs)
        self.skipped = 0
        self.consumer = None

    def rows_of(self, batches: dict) -> tuple[int, dict]:
        """Add the rows of one getmany() result to the writer; returns (rows added, offsets to commit)."""
        added, offsets = 0, {}
        for tp, records in batches.items():
            _, table, row_of = TOPICS[tp.topic]
            codec = self.codecs[tp.topic]
            for r in records:
                try:
                    row = row_of(codec.decode(r.value))
                except Exception as exc:  # unreadable: it could never be stored; say so and go on
                    self.skipped += 1
                    log.error("skipping record %s[%d]@%d: %s", tp.topic, tp.partition, r.offset, exc)
                    continue
                self.writer.add(table, row)
                self.stored[tp.topic] += 1
                added += 1
            if records:
                offsets[tp] = records[-1].offset + 1
        return added, offsets

    async def run(self) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError

        from streams.kafka import make_consumer

        s = self.settings
        self.consumer = make_consumer(
            bootstrap_servers=s.bootstrap_servers, group_id=GROUP_ID, client_id=f"{GROUP_ID}-{os.getpid()}",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=self.batch_max,
            session_timeout_ms=10_000, heartbeat_interval_ms=2_000,
            max_poll_interval_ms=600_000,  # a flush may wait out a ClickHouse outage
        )
        self.consumer.subscribe(list(TOPICS))
        await self.consumer.start()
        log.info("storing topics %s in ClickHouse as group %s", ", ".join(TOPICS), GROUP_ID)
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.batch_max)
                if not batches:
                    continue
                added, offsets = self.rows_of(batches)
                if added:
                    await self.writer.flush_async()  # durable in ClickHouse before the offsets move
                try:
                    await self.consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as exc:
                    # The partitions went to another member: it reads them again from the last
                    # commit and re-inserts the same rows, which replace ours.
                    log.warning("record offsets not committed (%s); the rows repeat harmlessly", exc)
        finally:
            await self.consumer.stop()
            self.writer.close()
