"""Per-device state of the pings partitions a worker owns: live objects in memory, a compacted topic behind them.

The processors keep one `DeviceState` per device (reorder buffer, open visits,
stop and mode trackers). The worker holds the states of the devices in its
`pings` partitions as live objects and hands them to `process_batch`, which
advances them; nothing is parsed or serialised per batch. At each checkpoint
the states that changed since the last one are written, once each, to the
compacted changelog topic, keyed by device id, on the partition number of the
device's pings partition, each wrapped with the offset of the last ping it has
applied (`pack_state`). When partitions are assigned (start, restart,
rebalance) their states are read back from the changelog to its end, so a
worker resumes exactly where the last checkpoint of whoever owned them left off.

Why not write on every batch: at 20,000 pings/s almost every ping is a
different device, and a ~1 KB write per device per batch was the largest single
cost of the worker (bench/RESULTS.md, "Live pipeline"). Once per checkpoint,
just before the offsets are committed, is all that crash safety needs.

The changelog topic keeps the name the first (Faust table) version of the
worker gave it, and the same value layout, so existing state carries over.
"""
from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable, Iterator

from aiokafka import AIOKafkaProducer, TopicPartition

from processors.device import DeviceState
from core import topics
from core.kafka import make_consumer

log = logging.getLogger("hotspot.worker")

CHANGELOG_TOPIC = topics.DEVICE_STATE_CHANGELOG

# Changelog value: a small envelope around the processors' own versioned bytes.
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


class DeviceStates:
    """The live states of the devices in the partitions this worker owns.

    `applied[device]` is the offset of the highest `pings` record the state has
    applied: a device's pings share one partition and arrive in offset order,
    so a record at or below it was seen already (before a crash, or earlier in
    a batch after a rebalance moved the partition back) and must be skipped.
    """

    def __init__(self, bootstrap_servers: str, topic: str = CHANGELOG_TOPIC):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.states: dict[str, DeviceState] = {}
        self.applied: dict[str, int] = {}
        self._partition_of: dict[str, int] = {}
        self._members: dict[int, set[str]] = {}
        self._dirty: set[str] = set()

    # ---- ownership --------------------------------------------------------------
    @property
    def partitions(self) -> frozenset[int]:
        return frozenset(self._members)

    def owns(self, partition: int) -> bool:
        return partition in self._members

    def partition_of(self, did: str) -> int | None:
        """The pings partition a device's state belongs to, or None for a device not held here."""
        return self._partition_of.get(did)

    async def load(self, partitions: Iterable[int]) -> int:
        """Read the changelog partitions to their end; return the number of device states now held for them."""
        wanted = sorted(set(partitions) - set(self._members))
        for p in wanted:
            self._members[p] = set()
        if not wanted:
            return 0
        consumer = make_consumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False,
                                 group_id=None, fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in wanted]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            remaining = {tp for tp in tps if ends[tp] > 0}
            loaded = 0
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=1000)
                for tp, records in batch.items():
                    for rec in records:
                        self._apply_changelog(tp.partition, rec.key, rec.value)
                        loaded += 1
                for tp in list(remaining):
                    if await consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
        finally:
            await consumer.stop()
        held = sum(len(self._members[p]) for p in wanted)
        log.info("device state for pings partitions %s: %d devices (%d changelog records read)", wanted, held, loaded)
        return held

    def _apply_changelog(self, partition: int, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        did = key.decode()
        if value is None:  # a tombstone: the device was forgotten
            self._forget(did)
            return
        offset, _, state_bytes = unpack_state(value)
        self.states[did] = DeviceState.from_bytes(state_bytes)
        self.applied[did] = offset
        self._partition_of[did] = partition
        self._members[partition].add(did)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions handed to another worker (after their last checkpoint)."""
        for p in partitions:
            for did in self._members.pop(p, ()):
                self._forget(did)

    def _forget(self, did: str) -> None:
        self.states.pop(did, None)
        self.applied.pop(did, None)
        p = self._partition_of.pop(did, None)
        if p is not None:
            self._members.get(p, set()).discard(did)
        self._dirty.discard(did)

    # ---- use ----------------------------------------------------------------------
    def applied_offset(self, did: str) -> int:
        return self.applied.get(did, -1)

    def note_applied(self, did: str, partition: int, offset: int) -> None:
        """`did`'s ping at `offset` is part of the batch being processed."""
        if did not in self._partition_of:
            self._partition_of[did] = partition
            self._members[partition].add(did)
        self.applied[did] = offset
        self._dirty.add(did)

    def update(self, states: dict[str, DeviceState]) -> None:
        """Take the states a processors call returned (new or advanced) as current."""
        self.states.update(states)
        self._dirty.update(d for d in states if d in self._partition_of)

    def __len__(self) -> int:
        return len(self.states)

    def items(self) -> Iterator[tuple[str, DeviceState]]:
        return iter(list(self.states.items()))

    @property
    def dirty(self) -> frozenset[str]:
        return frozenset(self._dirty)

    # ---- checkpoint -----------------------------------------------------------------
    async def write_dirty(self, producer: AIOKafkaProducer) -> list[asyncio.Future]:
        """Send each state changed since the last checkpoint; return the acknowledgement futures."""
        futures = []
        send = producer.send
        topic = self.topic
        for did in sorted(self._dirty):
            st = self.states.get(did)
            if st is None:
                continue  # a device whose first pings were all rejected has nothing to keep
            blob = pack_state(self.applied.get(did, -1), 0, st.to_bytes())
            futures.append(await send(topic, key=did.encode(), value=blob, partition=self._partition_of[did]))
        self._dirty.clear()
        return futures
