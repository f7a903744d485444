"""The per-device reorder window: arrival order in, event-time order out, stragglers named."""
from __future__ import annotations

import pytest

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
    r = process_batch({}, [ping(0, 0, 0)], IDX, CFG)
    assert r.accepted == []
    flushed = expire(r.states, T0 + 10_000, IDX, CFG)
    assert _ts(a.ping for a in flushed.accepted) == [0]
    r2 = process_batch(flushed.states, [ping(-3, 0, 0)], IDX, CFG)
    assert [(_ts([p])[0], reason) for p, reason in r2.rejected] == [(-3, LATE)]


def test_without_arrival_times_expire_waits_for_the_window_in_arrival_time():
    r = process_batch({}, [ping(0, 0, 0)], IDX, CFG)     # an export: the fix time stands in for arrival
    assert expire(r.states, T0 + 9_999, IDX, CFG).states == {}
    assert _ts(a.ping for a in expire(r.states, T0 + 10_000, IDX, CFG).accepted) == [0]


def test_finish_releases_everything_held():
    r = process_batch({}, [ping(t, 0, 0) for t in (0, 5, 10)], IDX, CFG)
    assert len(r.accepted) == 0
    assert _ts(a.ping for a in finish(r.states, IDX, CFG).accepted) == [0, 5, 10]


# --------------------------------------------------------------------------- the hold (arrival time)

HOLD_S = CFG.reorder_hold_s


def test_a_live_ping_is_released_once_held_for_the_hold_by_the_next_pings_arrival():
    st = DeviceState("d1")
    admit(st, ping(0, 0, 0, received_s=100), CFG)
    admit(st, ping(5, 0, 0, received_s=100 + HOLD_S - 0.001), CFG)
    assert _ts(release(st, CFG)) == []                        # 5 s newer: still inside the window
    admit(st, ping(6, 0, 0, received_s=100 + HOLD_S), CFG)
    assert _ts(release(st, CFG)) == [0]                       # the first has been held long enough


def test_the_timer_releases_a_held_ping_on_its_own_clock_long_before_the_window():
    r = process_batch({}, [ping(0, 0, 0, received_s=3)], IDX, CFG)
    assert r.accepted == []
    hold_ms = int(HOLD_S * 1000)
    assert expire(r.states, T0 + 3_000 + hold_ms - 1, IDX, CFG).states == {}
    out = expire(r.states, T0 + 3_000 + hold_ms, IDX, CFG)
    assert _ts(a.ping for a in out.accepted) == [0]


def test_releasing_a_held_ping_takes_every_older_one_with_it():
    st = DeviceState("d1")
    admit(st, ping(10, 0, 0, received_s=100), CFG)
    admit(st, ping(8, 0, 0, received_s=100 + HOLD_S * 0.8), CFG)   # overtaken in the network
    assert _ts(release(st, CFG, clock_ms=T0 + 100_000 + int(HOLD_S * 1000))) == [8, 10]


def test_a_straggler_behind_a_ping_whose_hold_ran_out_is_late_in_any_batch():
    first, late = ping(10, 0, 0, received_s=100), ping(8, 0, 0, received_s=100 + HOLD_S * 1.5)
    after = ping(12, 0, 0, received_s=100 + HOLD_S * 1.8)
    # one ping a batch: the first is released when the straggler's arrival shows its hold is over
    states, verdicts = {}, []
    for p in (first, after, late):
        r = process_batch(states, [p], IDX, CFG)
        states.update(r.states)
        verdicts += [(_ts([q])[0], why) for q, why in r.rejected]
    # all in one batch: the same verdict
    together = process_batch({}, [first, after, late], IDX, CFG)
    assert verdicts == [(8, LATE)]
    assert [(_ts([q])[0], why) for q, why in together.rejected] == [(8, LATE)]


def test_a_straggler_within_the_hold_is_put_back_in_order():
    r = process_batch({}, [ping(10, 0, 0, received_s=100), ping(8, 0, 0, received_s=100 + HOLD_S * 0.9)], IDX, CFG)
    assert r.rejected == []
    out = expire(r.states, T0 + 101_000, IDX, CFG)
    assert _ts(a.ping for a in out.accepted) == [8, 10]


def test_the_hold_cannot_outlast_the_window():
    with pytest.raises(ValueError, match="reorder_hold_s"):
        CFG.replace(reorder_hold_s=CFG.reorder_window_s + 1)
