"""The worker's in-memory device states: ownership, applied offsets, what a checkpoint writes."""
from __future__ import annotations

import asyncio

import pytest

from processors.device import DeviceState
from streams.statestore import DeviceStates, pack_state, unpack_state


class _Producer:
    """Records sends; each returns an already-acknowledged future, as AIOKafkaProducer.send's does once acked."""

    def __init__(self):
        self.sent: list[tuple[str, bytes, bytes, int]] = []

    async def send(self, topic, key=None, value=None, partition=None):
        self.sent.append((topic, key, value, partition))
        f = asyncio.get_running_loop().create_future()
        f.set_result(None)
        return f


def _store(*partitions: int) -> DeviceStates:
    store = DeviceStates("unused:9092")
    for p in partitions:
        store._members[p] = set()  # as after load() of an empty changelog partition
    return store


def test_the_envelope_round_trips_and_refuses_other_versions():
    state = DeviceState("dev-1").to_bytes()
    assert unpack_state(pack_state(12345, 0, state)) == (12345, 0, state)
    with pytest.raises(ValueError, match="version 2"):
        unpack_state(b"\x02" + pack_state(1, 0, state)[1:])


def test_a_checkpoint_writes_each_changed_device_once_on_its_pings_partition_with_its_offset():
    store = _store(0, 3)
    for offset in (10, 11, 12):
        store.note_applied("a", 3, offset)
    store.note_applied("b", 0, 7)
    store.update({"a": DeviceState("a"), "b": DeviceState("b")})
    producer = _Producer()
    asyncio.run(store.write_dirty(producer))
    sent = {key: (partition, unpack_state(value)[0]) for _, key, value, partition in producer.sent}
    assert sent == {b"a": (3, 12), b"b": (0, 7)}
    assert store.dirty == frozenset()
    producer.sent.clear()
    asyncio.run(store.write_dirty(producer))
    assert producer.sent == []  # nothing changed since


def test_a_device_whose_pings_were_all_rejected_has_no_state_to_write():
    store = _store(1)
    store.note_applied("junk", 1, 4)
    producer = _Producer()
    asyncio.run(store.write_dirty(producer))
    assert producer.sent == []
    assert store.applied_offset("junk") == 4


def test_dropping_a_partition_forgets_its_devices_and_only_them():
    store = _store(0, 1)
    store.note_applied("a", 0, 1)
    store.note_applied("b", 1, 1)
    store.update({"a": DeviceState("a"), "b": DeviceState("b")})
    store.drop([0])
    assert not store.owns(0) and store.owns(1)
    assert set(store.states) == {"b"} and store.applied_offset("a") == -1
    assert store.dirty == frozenset({"b"})


def test_changelog_records_restore_state_and_tombstones_forget_it():
    store = _store(2)
    st = DeviceState("x")
    st.last_ms = 1_700_000_000_000
    store._apply_changelog(2, b"x", pack_state(99, 0, st.to_bytes()))
    assert store.states["x"] == st and store.applied_offset("x") == 99
    store._apply_changelog(2, b"x", None)
    assert "x" not in store.states and store.applied_offset("x") == -1
