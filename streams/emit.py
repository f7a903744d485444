"""What the live worker makes of a processors result: table rows for ClickHouse, records for Kafka, counts.

`Emitter.add(result, ...)` is the one place a `processors.batch.BatchResult`
leaves the worker: accepted pings, rejects and patrol events go to the
ClickHouse writer (a sink: `add` now, `flush` at the checkpoint), events and
rejects to `patrol-events` and `pings-rejected` (their acknowledgements are
awaited at the checkpoint: `take_acks`), and the metrics are counted. Rows
and records are mapped by formats/records.py only.
"""
from __future__ import annotations

import asyncio
import time

from core import topics
from formats import records as rows
from processors.batch import BatchResult
from processors.model import IMPLIED_SPEED, TIME_JUMP
from sinks import metrics


class Emitter:
    def __init__(self, writer, event_codec, reject_codec):
        self.writer = writer
        self.event_codec = event_codec
        self.reject_codec = reject_codec
        self.producer = None      # set once the loop has started its producer
        self.unflushed = False    # rows added since the last flush started
        self._acks: list[asyncio.Future] = []

    def add(self, result: BatchResult, record_of: dict, source_of: dict, undecodable: list[tuple[str, dict]]) -> None:
        """Rows, records and counts of one result. `record_of`/`source_of`: the Avro record and Kafka place
        of each ping by id(); `undecodable`: (place, RejectedPing record) of what the codec could not read."""
        self._add_rows(result, record_of, source_of, undecodable)
        self._queue_publish(result, record_of, [u for _, u in undecodable])
        self._count(result, len(undecodable))

    def take_acks(self) -> list[asyncio.Future]:
        acks, self._acks = self._acks, []
        return acks

    def _add_rows(self, result: BatchResult, record_of: dict, source_of: dict, undecodable) -> None:
        w = self.writer
        accepted = result.accepted
        if accepted or result.rejected or result.events or undecodable:
            self.unflushed = True
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
            out.append((topics.PATROL_EVENTS, e.device_id.encode(),
                        self.event_codec.encode(rows.event_record(e, emitted_ms))))
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

    @staticmethod
    def _count(result: BatchResult, undecodable: int) -> None:
        for r in result.rejected:
            metrics.PINGS_REJECTED.labels(reason=r.reason).inc()
        if undecodable:
            metrics.PINGS_REJECTED.labels(reason="undecodable").inc(undecodable)
        for e in result.events:
            metrics.EVENTS.labels(type=e.type).inc()
