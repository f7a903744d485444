"""Per-partition arrival clocks of the live worker: when held pings may be released and silence judged.

Arrival is the time the broker appended a ping to `pings` (the topic stamps
LogAppendTime, core.kafka.ARRIVAL_CLOCK), which never decreases along a
partition. A partition's clock is the newest arrival the loop has handled
from it, or, once a fresh look at the log end shows the partition handled to
its end, the wall clock as it was before that look (less
`worker_arrival_margin_s`). Judged so, a release never comes before a ping
that arrived in time is read, whatever the loop's speed: after a restart (a
backlog) and on a busy machine the result is what replaying the same pings
with their arrival times gives.

This module also keeps where the loop is in each partition (`positions`, the
offsets the checkpoint commits), since "handled to its end" is asked of them.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from aiokafka import TopicPartition

from core import topics


class PartitionClocks:
    """`owns(partition)`: whether this worker handles the partition now (streams.statestore.DeviceStates.owns)."""

    def __init__(self, owns: Callable[[int], bool], margin_s: float):
        self.owns = owns
        self.margin_s = margin_s
        self.positions: dict[TopicPartition, int] = {}        # next offset to commit, per partition handled
        self.start_positions: dict[TopicPartition, int] = {}  # where consumption began, for those not yet handled
        self.arrival: dict[int, int] = {}                     # newest received_ms handled, per pings partition

    def forget(self, tp: TopicPartition) -> None:
        """A partition handed to another worker."""
        self.positions.pop(tp, None)
        self.start_positions.pop(tp, None)
        if tp.topic == topics.PINGS:
            self.arrival.pop(tp.partition, None)

    async def current(self, consumer) -> dict[int, int]:
        """Arrival clock per owned pings partition, on the broker's append-time scale.

        The consumer's `highwater` is only a first look: it is as old as the last
        fetch response, which after a long batch is seconds stale, so a partition
        it shows as read to its end is confirmed with a fresh request for the log
        end. A partition with neither a handled arrival nor a confirmed end (just
        assigned, nothing read yet) has no clock: nothing of it is released.
        """
        clocks: dict[int, int] = {}
        maybe_at_end: dict[TopicPartition, int] = {}
        try:
            for tp in consumer.assignment():
                if tp.topic != topics.PINGS or not self.owns(tp.partition):
                    continue
                clock = self.arrival.get(tp.partition)
                if clock is not None:
                    clocks[tp.partition] = clock
                highwater = consumer.highwater(tp)
                if highwater is not None:  # None: no fetch answered yet
                    position = await self.handled_position(consumer, tp)
                    if position >= highwater:
                        maybe_at_end[tp] = position
            if maybe_at_end:
                now_ms = int((time.time() - self.margin_s) * 1000)  # before the request
                ends = await consumer.end_offsets(list(maybe_at_end))
                for tp, position in maybe_at_end.items():
                    if position >= ends[tp]:
                        clocks[tp.partition] = max(clocks.get(tp.partition, now_ms), now_ms)
        except Exception:  # the consumer is rebalancing: no clock this time
            return {}
        return clocks

    async def handled_position(self, consumer, tp: TopicPartition) -> int:
        """The offset after the last record of `tp` the loop has handled.

        Not the consumer's position: that moves as soon as `getmany` returns records,
        and the timer can run before the loop has handled them (right after a restart
        that is a whole backlog, which must not pass for a partition read to its end).
        Before any record is handled it is where consumption started: the group's
        committed offset, or the start of the partition.
        """
        position = self.positions.get(tp)
        if position is None:
            position = self.start_positions.get(tp)
        if position is None:
            position = await consumer.committed(tp)
            if position is None:
                position = (await consumer.beginning_offsets([tp]))[tp]
            self.start_positions[tp] = position
        return position
