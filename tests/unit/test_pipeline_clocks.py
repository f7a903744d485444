"""The worker's per-partition arrival clock: when a partition counts as read to its end.

The live worker releases held pings and judges silence on each pings partition's
clock: the newest arrival it has handled, or the wall clock once it has handled
the partition to its end. "Its end" is asked of the broker afresh: the consumer's
highwater is as old as its last fetch, and on a busy machine pings that arrived
while a long batch was processed are beyond it. Right after a restart `getmany` can have returned a
whole backlog that the loop has not handled yet; the consumer's own position is
then already at the end, and taking it for "handled" would release held pings
by the wall clock before the pings behind them are read.
"""
from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from streams.clocks import PartitionClocks
from streams.pipeline import PINGS

TP = TopicPartition(PINGS, 1)


class _Consumer:
    """What the clock asks of aiokafka: records up to `end` have been returned to the loop."""

    def __init__(self, committed: int | None, end: int, start: int = 0, log_end: int | None = None):
        self._committed, self._end, self._start = committed, end, start
        self._log_end = end if log_end is None else log_end   # what the broker says now
        self.asked_at_s: list[float] = []

    def assignment(self):
        return {TP}

    def highwater(self, tp):
        return self._end          # as of the last fetch response

    async def end_offsets(self, tps):
        import time

        self.asked_at_s.append(time.time())
        return {tp: self._log_end for tp in tps}

    async def position(self, tp):
        return self._end          # getmany has handed everything over

    async def committed(self, tp):
        return self._committed

    async def beginning_offsets(self, tps):
        return {tp: self._start for tp in tps}


class _Store:
    def owns(self, partition: int) -> bool:
        return partition == TP.partition


class _Clocks:
    """The worker's clocks (streams.clocks.PartitionClocks) with a consumer: no broker, store or writer needed."""

    def __init__(self, consumer: _Consumer, handled: int | None, newest_arrival_ms: int | None):
        self.consumer = consumer
        self.clocks = PartitionClocks(_Store().owns, margin_s=0.1)
        if handled is not None:
            self.clocks.positions[TP] = handled
        if newest_arrival_ms is not None:
            self.clocks.arrival[TP.partition] = newest_arrival_ms

    async def handled_position(self, tp):
        return await self.clocks.handled_position(self.consumer, tp)

    async def current(self):
        return await self.clocks.current(self.consumer)


def _pipeline(consumer: _Consumer, handled: int | None = None, newest_arrival_ms: int | None = None) -> _Clocks:
    return _Clocks(consumer, handled, newest_arrival_ms)


def test_a_backlog_returned_but_not_handled_is_not_the_end_of_the_partition():
    p = _pipeline(_Consumer(committed=9000, end=10_000), newest_arrival_ms=1_750_000_000_000)
    assert asyncio.run(p.handled_position(TP)) == 9000
    assert asyncio.run(p.current()) == {1: 1_750_000_000_000}   # the data's clock, not the wall's


def test_with_nothing_handled_and_nothing_read_there_is_no_clock():
    assert asyncio.run(_pipeline(_Consumer(committed=9000, end=10_000)).current()) == {}


def test_a_partition_handled_to_its_end_runs_on_the_wall_clock_as_it_was_before_the_end_was_asked():
    import time

    before = int((time.time() - 0.1) * 1000)
    consumer = _Consumer(committed=9000, end=10_000)
    clocks = asyncio.run(_pipeline(consumer, handled=10_000, newest_arrival_ms=1_750_000_000_000).current())
    # Everything appended before that moment was below the end the broker gave: less the margin.
    assert before <= clocks[1] <= int((consumer.asked_at_s[0] - 0.1) * 1000)


def test_a_stale_highwater_does_not_pass_for_the_end_when_more_has_arrived_since():
    # The last fetch said 10,000 and the loop handled that much; meanwhile (a long batch on a busy
    # machine) a straggler arrived at offset 10,000. Releasing on the wall clock now would judge it late.
    p = _pipeline(_Consumer(committed=9000, end=10_000, log_end=10_001), handled=10_000,
                  newest_arrival_ms=1_750_000_000_000)
    assert asyncio.run(p.current()) == {1: 1_750_000_000_000}


def test_an_idle_partition_never_committed_starts_at_its_beginning():
    p = _pipeline(_Consumer(committed=None, end=0, start=0))
    assert asyncio.run(p.handled_position(TP)) == 0
    assert 1 in asyncio.run(p.current())   # nothing to read: its devices can still fall silent
