"""The per-device reorder window: arrival order in, event-time order out, stragglers named."""
from __future__ import annotations

from processors.batch import expire, finish, process_batch
from processors.device import DeviceState
from processors.model import DUPLICATE, LATE
from processors.reorder import admit, release
from tests.unit.tracks import CFG, H, T0, index, ping

IDX = index(H)


def _ts(pings):
    return [(p.ts_ms - T0) // 1000 for p in pings]


def test_pings_are_released_once_the_window_has_passed_them_in_event_time():
    st = DeviceState("d1")
    for t in (0, 5, 10):
        assert admit(st, ping(t, 0, 0), CFG) is None
    assert _ts(release(st, CFG)) == []            # newest is 10 s: nothing older than 0 s yet
    admit(st, ping(12, 0, 0), CFG)
    assert _ts(release(st, CFG)) == [0]            # older than 12 - 10 = 2 s
    admit(st, ping(30, 0, 0), CFG)
    assert _ts(release(st, CFG)) == [5, 10, 12]
    assert _ts(release(st, CFG, flush=True)) == [30]


def test_shuffled_arrivals_within_the_window_come_out_in_order():
    st = DeviceState("d1")
    for t in (5, 0, 10, 8, 20, 14, 30):
        assert admit(st, ping(t, 0, 0), CFG) is None
    assert _ts(release(st, CFG)) == [0, 5, 8, 10, 14]


def test_a_ping_older_than_the_window_is_late():
    st = DeviceState("d1")
    admit(st, ping(100, 0, 0), CFG)
    assert admit(st, ping(89, 0, 0), CFG) == LATE
    assert admit(st, ping(90, 0, 0), CFG) is None


def test_a_repeated_fix_time_is_a_duplicate_whether_held_or_released():
    st = DeviceState("d1")
    admit(st, ping(0, 0, 0), CFG)
    assert admit(st, ping(0, 5, 5), CFG) == DUPLICATE     # held
    admit(st, ping(60, 0, 0), CFG)
    release(st, CFG)
    assert admit(st, ping(0, 0, 0), CFG) == DUPLICATE     # released, and now older than the window


def test_after_a_timer_flush_an_older_ping_is_late():
    r = process_batch({}, [ping(0, 0, 0, received_s=1)], IDX, CFG)
    assert r.accepted == []
    flushed = expire(r.states, T0 + 11_000, IDX, CFG)
    assert _ts(a.ping for a in flushed.accepted) == [0]
    r2 = process_batch(flushed.states, [ping(-3, 0, 0, received_s=12)], IDX, CFG)
    assert [(_ts([p])[0], reason) for p, reason in r2.rejected] == [(-3, LATE)]


def test_expire_does_nothing_before_the_window_has_passed_in_arrival_time():
    r = process_batch({}, [ping(0, 0, 0, received_s=1)], IDX, CFG)
    assert expire(r.states, T0 + 10_999, IDX, CFG).states == {}


def test_finish_releases_everything_held():
    r = process_batch({}, [ping(t, 0, 0) for t in (0, 5, 10)], IDX, CFG)
    assert len(r.accepted) == 0
    assert _ts(a.ping for a in finish(r.states, IDX, CFG).accepted) == [0, 5, 10]
