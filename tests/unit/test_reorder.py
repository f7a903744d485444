"""The per-device reorder window: arrival order in, event-time order out, stragglers named."""
from __future__ import annotations

import pytest

from processors.batch import expire, finish, process_batch
from processors.device import DeviceState
from processors.model import DUPLICATE, LATE, TIME_JUMP
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


# --------------------------------------------------------------------------- time jumps

DAY_S = 86_400


def _run_all(pings, cuts=()):
    states, accepted, rejected = {}, [], []
    bounds = [0, *cuts, len(pings)]
    for a, b in zip(bounds, bounds[1:]):
        r = process_batch(states, pings[a:b], IDX, CFG)
        states.update(r.states)
        accepted += r.accepted
        rejected += r.rejected
    r = finish(states, IDX, CFG)
    return _ts(a.ping for a in accepted + r.accepted), sorted((_ts([p])[0], why) for p, why in rejected + r.rejected)


def test_one_row_two_days_ahead_is_rejected_and_the_shift_goes_on():
    track = [ping(t, 0, 0) for t in range(0, 600, 10)]
    track.insert(20, ping(2 * DAY_S, 0, 0))
    accepted, rejected = _run_all(track)
    assert accepted == list(range(0, 600, 10))
    assert rejected == [(2 * DAY_S, TIME_JUMP)]


def test_the_jump_is_rejected_once_the_old_timeline_has_run_time_jump_s_past_it():
    st = DeviceState("d1")
    dropped = []
    for t in (0, 10):
        admit(st, ping(t, 0, 0), CFG, dropped)
    assert admit(st, ping(5000, 0, 0), CFG, dropped) is None            # provisional: moves nothing
    assert st.watermark_ms == T0 + 10_000
    for t in range(20, 310, 10):                                        # 290 s on: not yet
        admit(st, ping(t, 0, 0), CFG, dropped)
    assert dropped == [] and _ts(st.ahead) == [5000]
    admit(st, ping(310, 0, 0), CFG, dropped)                            # 300 s on from 10 s
    assert [(_ts([p])[0], why) for p, why in dropped] == [(5000, TIME_JUMP)] and st.ahead == []


def test_a_silence_longer_than_time_jump_s_is_followed_from_its_second_fix():
    track = [ping(t, 0, 0) for t in (0, 10, 20)] + [ping(t, 0, 0) for t in (1000, 1010, 1020)]
    assert _run_all(track) == ([0, 10, 20, 1000, 1010, 1020], [])


def test_a_row_moved_up_a_file_is_taken_once_the_timeline_reaches_it():
    # 60 s interval: the row of 480 s comes before those of 60..420 s (a swap 8 rows later).
    ts = list(range(0, 900, 60))
    order = [0, 480, 60, 120, 180, 240, 300, 360, 420] + ts[9:]
    track = [ping(t, 0, 0) for t in order]
    accepted, rejected = _run_all(track)
    assert rejected == [] and accepted == ts


def test_a_clock_set_back_an_hour_that_stays_back_is_followed():
    # Received in real time; at 600 s the phone's clock goes back an hour (NTP or time-zone fix).
    before = [ping(t, 0, 0, received_s=t) for t in range(0, 600, 10)]
    after = [ping(t - 3600, 0, 0, received_s=t) for t in range(600, 1200, 10)]
    accepted, rejected = _run_all(before + after, cuts=(55, 61, 62, 90))
    assert rejected == []
    assert accepted == list(range(0, 600, 10)) + list(range(600 - 3600, 1200 - 3600, 10))


def test_a_burst_of_old_stragglers_is_late_not_a_new_timeline():
    # Three pings an hour old arrive at once (retransmitted), then the device goes on as before.
    track = [ping(t, 0, 0, received_s=t) for t in range(3600, 3700, 10)]
    track += [ping(t, 0, 0, received_s=3700) for t in (100, 110, 120)]
    track += [ping(t, 0, 0, received_s=t) for t in range(3700, 3800, 10)]
    accepted, rejected = _run_all(track)
    assert accepted == list(range(3600, 3800, 10))
    assert rejected == [(100, LATE), (110, LATE), (120, LATE)]


def test_a_clock_that_goes_back_closes_the_visit_at_the_old_timeline_and_starts_afresh():
    from processors.model import VisitEnded, VisitStarted
    before = [ping(t, 75, 75, received_s=t) for t in range(0, 300, 10)]
    after = [ping(t - 3600, 75, 75, received_s=t) for t in range(300, 600, 10)]
    r = process_batch({}, before + after, IDX, CFG)
    f = finish(r.states, IDX, CFG)
    ended = [(e.entered_ms - T0) // 1000 for e in r.events + f.events if isinstance(e, VisitEnded)]
    started = [(e.entered_ms - T0) // 1000 for e in r.events + f.events if isinstance(e, VisitStarted)]
    assert started == [0, 300 - 3600] and ended == [0, 300 - 3600]
    assert r.rejected == [] and f.rejected == []


def test_rows_of_a_file_swapped_by_less_than_a_jump_are_put_in_order_by_default():
    # 60 s interval; the row of 240 s comes four rows early. Unstamped rows have a 300 s window by
    # default (unstamped_reorder_window_s = time_jump_s), so nothing is late; with 10 s, three were.
    from processors.config import ProcessingConfig
    ts = list(range(0, 900, 60))
    order = [0, 240, 60, 120, 180] + ts[5:]
    track = [ping(t, 0, 0) for t in order]
    default = ProcessingConfig()
    r = process_batch({}, track, IDX, default)
    f = finish(r.states, IDX, default)
    assert r.rejected == [] and _ts(a.ping for a in r.accepted + f.accepted) == ts
    r10 = process_batch({}, track, IDX, CFG)
    assert sorted(_ts([p])[0] for p, why in r10.rejected if why == LATE) == [60, 120, 180]


def test_the_live_timer_rejects_a_jump_nothing_confirmed_once_the_device_is_quiet():
    # A backfill sent at once (arrival stamps all at 1,000 s): the last fix comes after a 20 min
    # silence, so it is a possible jump, and nothing follows it. finish() would reject it; the live
    # timer does the same once the device has been quiet for the window, so that every ping is
    # accounted for and live agrees with replay.
    track = [ping(t, 0, 0, received_s=1000) for t in (0, 10, 20)] + [ping(1220, 0, 0, received_s=1000)]
    r = process_batch({}, track, IDX, CFG)
    st = r.states["d1"]
    assert _ts(st.ahead) == [1220]
    before = expire(r.states, T0 + 1_009_000, IDX, CFG)        # releases the held fixes, nothing else
    assert before.rejected == [] and _ts(before.states["d1"].ahead) == [1220]
    assert before.states["d1"].deadline_ms(CFG) == T0 + 1_010_000
    later = expire(before.states, T0 + 1_010_000, IDX, CFG)
    assert [(_ts([p])[0], why) for p, why in later.rejected] == [(1220, TIME_JUMP)]
    assert later.states["d1"].ahead == []
    replayed = finish(r.states, IDX, CFG)
    assert [(_ts([p])[0], why) for p, why in replayed.rejected] == [(1220, TIME_JUMP)]


def _replay_default(track):
    from processors.config import ProcessingConfig
    default = ProcessingConfig()          # unstamped_reorder_window_s = 600 s, as `hotspot replay` runs
    r = process_batch({}, track, IDX, default)
    f = finish(r.states, IDX, default)
    return _ts(a.ping for a in r.accepted + f.accepted), [(_ts([p])[0], why) for p, why in r.rejected + f.rejected]


def test_a_row_after_a_silence_moved_up_a_file_is_early_not_a_jump():
    # 60 s interval, a 380 s silence after 420 s; the first row after it (800 s) comes seven rows early.
    # The old timeline runs 420 s on without reaching it (more than time_jump_s, less than the 600 s
    # window of unstamped rows), then the row of 860 s agrees with it.
    ts = list(range(0, 480, 60)) + list(range(800, 1200, 60))
    order = [0, 800] + list(range(60, 480, 60)) + list(range(860, 1200, 60))
    assert _replay_default([ping(t, 0, 0) for t in order]) == (ts, [])


def test_a_row_between_the_old_timeline_and_a_held_one_does_not_reject_it():
    # After the silence, the row of 1160 s comes first, then 800 s: 300+ s before the held row but
    # within the 600 s window, so the held row was early, not a third timeline.
    ts = list(range(0, 480, 60)) + list(range(800, 1400, 60))
    order = list(range(0, 480, 60)) + [1160] + [t for t in range(800, 1400, 60) if t != 1160]
    assert _replay_default([ping(t, 0, 0) for t in order]) == (ts, [])


def test_a_row_moved_down_a_file_across_a_silence_is_a_few_rows_late_not_lost():
    # 60 s interval, a 360 s silence after 420 s; the row of 420 s comes six rows down, after the
    # silence: 780 s behind the newest row when it comes (more than the 600 s window), but only six
    # rows late, within the 16-row bound of a file's order.
    ts = list(range(0, 480, 60)) + list(range(780, 2400, 60))
    order = [t for t in ts if t != 420]
    order.insert(order.index(780) + 6, 420)
    assert _replay_default([ping(t, 0, 0) for t in order]) == (ts, [])


def test_a_row_both_more_than_the_window_and_sixteen_rows_late_is_late():
    # The same silence; the row of 420 s comes eighteen rows down: later than any reordering a file
    # is allowed, in rows and in seconds.
    ts = list(range(0, 480, 60)) + list(range(780, 2400, 60))
    order = [t for t in ts if t != 420]
    order.insert(order.index(780) + 18, 420)
    accepted, rejected = _replay_default([ping(t, 0, 0) for t in order])
    assert accepted == [t for t in ts if t != 420] and rejected == [(420, LATE)]


def test_the_row_bound_gives_the_same_verdicts_whatever_the_batches():
    # Rows released by one batch or judged against the held rows in the next: the same verdicts.
    from processors.config import ProcessingConfig
    default = ProcessingConfig()
    ts = list(range(0, 480, 60)) + list(range(780, 2400, 60))
    order = [t for t in ts if t not in (300, 420)]
    order.insert(order.index(780) + 6, 420)
    order.insert(order.index(780) + 17, 300)
    track = [ping(t, 0, 0) for t in order]
    whole = _replay_default(track)
    assert whole[1] == [(300, LATE)]
    for cut in range(1, len(track)):
        r1 = process_batch({}, track[:cut], IDX, default)
        r2 = process_batch(r1.states, track[cut:], IDX, default)
        f = finish(r2.states, IDX, default)
        got = (_ts(a.ping for a in r1.accepted + r2.accepted + f.accepted),
               [(_ts([p])[0], why) for p, why in r1.rejected + r2.rejected + f.rejected])
        assert got == whole, cut
