"""Stops: inside a hot spot, within 30 m for at least 2 minutes."""
from __future__ import annotations

import pytest

from processors.model import stop_id
from tests.unit.tracks import H, index, lat_lon, ping, run, s, square, stay, stop_starts, stops, visits, walk


def _walk_stand_walk(stand_s: float, every_s: float = 5.0):
    """Walk in at 1.5 m/s to (75, 75) by t=70, stand until 75+stand_s, walk out east."""
    inbound = walk(0, 70, every_s, (-30, 75), (75, 75), speed_mps=1.5)
    standing = stay(75, 75 + stand_s, every_s, (75, 75))
    t1 = 75 + stand_s + every_s
    outbound = walk(t1, t1 + 120, every_s, (80, 75), (260, 75), speed_mps=1.5)
    return inbound + standing + outbound


def test_standing_three_minutes_is_one_stop_from_first_to_last_still_fix():
    events = run(_walk_stand_walk(180))
    (stop,) = stops(events)
    assert (stop.started_ms, stop.ended_ms, stop.duration_s) == (s(75), s(255), 180.0)
    assert (stop.lat, stop.lon) == pytest.approx(lat_lon(75, 75), abs=1e-9)
    assert stop.hotspot_id == "H" and stop.stop_id == stop_id("d1", "H", s(75))
    (started,) = stop_starts(events)
    assert started.started_ms == s(75) and started.stop_id == stop.stop_id
    (v,) = visits(events)
    assert v.stop_count == 1


def test_stop_is_announced_when_it_reaches_two_minutes():
    # The walk's last fix (70 s) is at the spot: the walker stopped right after it, so the 5 s before the
    # first standing fix count (dead reckoning: no step left to cover).
    events = run(_walk_stand_walk(180)[:15 + 23])   # fixes up to t=185: 5 + 110 s standing
    assert stop_starts(events) == [] and stops(events) == []
    events = run(_walk_stand_walk(180)[:15 + 24])   # up to t=190: 5 + 115 s
    assert [e.started_ms for e in stop_starts(events)] == [s(75)]


def test_standing_under_two_minutes_is_no_stop():
    events = run(_walk_stand_walk(100))
    assert stops(events) == []
    assert visits(events)[0].stop_count == 0


def test_walking_slowly_in_a_small_loop_is_no_stop():
    # Round and round a 20 m square at 0.9 m/s with the device reporting its speed.
    corners = [(65, 65), (85, 65), (85, 85), (65, 85)]
    track = []
    t = 0.0
    for lap in range(8):
        for k in range(4):
            a, b = corners[k], corners[(k + 1) % 4]
            track += walk(t, t + 20, 5, a, b, speed_mps=0.9)[:-1]
            t += 20
    assert stops(run(track)) == []


def test_one_stray_fix_does_not_end_a_stop():
    track = stay(0, 100, 5, (75, 75)) + [ping(105, 75, 135, speed_mps=0.0)] + stay(110, 200, 5, (75, 75))
    (stop,) = stops(run(track))
    assert (stop.started_ms, stop.ended_ms) == (s(0), s(200))


def test_two_fixes_away_end_a_stop_at_its_last_fix_within():
    track = stay(0, 150, 5, (75, 75)) + stay(155, 160, 5, (75, 135)) + stay(165, 300, 5, (75, 75))
    first, second = stops(run(track))
    assert (first.started_ms, first.ended_ms) == (s(0), s(150))
    assert (second.started_ms, second.ended_ms) == (s(165), s(300))


def test_a_stale_fix_repeated_after_a_silence_does_not_split_a_stop():
    # Standing at (75, 75); silent 150-210 s; the phone then sends its cached fix, 60 m off, twice
    # (the same coordinates to the last digit), then fixes at the stay again: one stop.
    stale = stay(0, 150, 10, (75, 75)) + [ping(210, 75, 135, speed_mps=0.0), ping(220, 75, 135, speed_mps=0.0)]
    stale += stay(230, 400, 10, (75, 75))
    (stop,) = stops(run(stale))
    assert (stop.started_ms, stop.ended_ms) == (s(0), s(400))
    # Two different fixes there (two measurements) end it at its last fix within, as before.
    moved = stay(0, 150, 10, (75, 75)) + [ping(210, 75, 135, speed_mps=0.0), ping(220, 75, 136, speed_mps=0.0)]
    moved += stay(230, 400, 10, (75, 75))
    assert [(x.started_ms, x.ended_ms) for x in stops(run(moved))][:1] == [(s(0), s(150))]


def test_stop_without_device_speed_is_found_from_positions():
    track = [ping(10 * k, 75 + (3 if k % 2 else -3), 75, acc_m=8.0, speed_mps=None) for k in range(20)]
    (stop,) = stops(run(track))
    assert (stop.started_ms, stop.ended_ms) == (s(0), s(190))


def test_stop_outside_every_hot_spot_is_not_reported():
    events = run(stay(0, 300, 5, (400, 400)))
    assert stops(events) == [] and stop_starts(events) == []


def test_stop_in_overlapping_hot_spots_is_reported_for_each():
    idx = index(H, square("G", 50, 50, 100))
    got = sorted((st.hotspot_id, st.started_ms, st.ended_ms) for st in stops(run(stay(0, 200, 5, (75, 75)), idx)))
    assert got == [("G", s(0), s(200)), ("H", s(0), s(200))]


def test_a_stop_ends_with_its_visit():
    # Standing, then the signal is lost for good: the stop ends at its last fix with the visit.
    events = run(stay(0, 200, 5, (75, 75)))
    (stop,) = stops(events)
    (v,) = visits(events)
    assert stop.ended_ms == v.exited_ms == s(200)
    assert events.index(stop) < events.index(v)


# --------------------------------------------------------------------------- sparse and poor fixes

def _sparse_stand(leave_s: float, standing_speed_mps: float | None = 0.0, walk_m: float = 42.0):
    """60 s interval: a walking fix (1.4 m/s) at 0 s walk_m west of (75, 75), standing there at 60 and
    120 s, then away east at leave_s, walk_m from the stay, and leave_s + 60 (the device left between 120 s
    and leave_s)."""
    # (75, 75) then (76, 75): a real GPS never repeats a fix to the last digit (see the stale fix tests).
    return [ping(0, 75 - walk_m, 75, speed_mps=1.4), ping(60, 75, 75, speed_mps=standing_speed_mps),
            ping(120, 76, 75, speed_mps=standing_speed_mps)] + \
        [ping(leave_s, 75.5 + walk_m, 75, speed_mps=1.4), ping(leave_s + 60, 140, 130, speed_mps=1.4)]


def test_a_stop_between_sparse_fixes_counts_the_unseen_parts_of_the_intervals_around_them():
    # Two fixes 60 s apart at the spot. The walker was 42 m away at 0 s at 1.4 m/s: arrived after 30 s
    # (the step less both 5 m errors in quadrature: 41.4 m), 30.4 s before the first fix; left 42 m
    # east at 1.4 m/s, 29.2 s before the fix at 180 s: 30.8 s after the last. A 121 s stay, announced
    # when the first fix away comes (180 s), reported from the first fix to the last.
    events = run(_sparse_stand(180))
    (stop,) = stops(events)
    assert (stop.started_ms, stop.ended_ms, stop.duration_s) == (s(60), s(120), 60.0)
    assert [e.started_ms for e in stop_starts(events)] == [s(60)]
    assert visits(events)[0].stop_count == 1


def test_a_stay_whose_fixes_and_unseen_parts_span_under_two_minutes_is_no_stop():
    # The same two fixes, but the device was 42 m away 10 s after the last one: it left at once.
    assert stops(run(_sparse_stand(130))) == []


def test_the_walk_on_either_side_dates_a_sparse_stay_by_dead_reckoning():
    # The walker was 65 m away at both fixes outside the stay: at 1.4 m/s it arrived at 46 s and left at
    # 134 s, an 88 s stay. Half of each minute (the credit without a speed to reckon with) would have
    # made it the two minutes of a stop.
    assert stops(run(_sparse_stand(180, walk_m=65.0))) == []


def test_reckoning_claims_no_more_unseen_stay_than_the_fixes_show():
    # Walking in 61 m from the spot, then nothing for 280 s (short of signal loss), then two standing
    # fixes 10 s apart and away. Reckoned straight at 1.4 m/s the device arrived 44 s after the walking
    # fix and stood 236 s unseen; but nobody saw that, and the fixes show 10 s: at most the half-interval
    # allowance (30 s) is credited on each side, 70 s in all.
    track = [ping(-20, -14, 75, speed_mps=1.4), ping(0, 14, 75, speed_mps=1.4), ping(280, 75, 75, speed_mps=0.0),
             ping(290, 76, 75, speed_mps=0.0), ping(300, 90, 75, speed_mps=1.4), ping(310, 104, 75, speed_mps=1.4)]
    assert stops(run(track)) == []


def test_no_credit_without_a_standing_speed_two_sparse_fixes_near_each_other_are_no_stop():
    # The same stay with no device speed: a walker who turned back looks the same, so the fixes
    # alone (60 s) must span two minutes, and they do not.
    assert stops(run(_sparse_stand(180, standing_speed_mps=None))) == []


def test_a_walker_whose_fixes_alternate_moving_speed_and_none_is_no_stop():
    # Back and forth between (50, 75) and (100, 75) at 1.5 m/s, 25 m fixes every 30 s: every fix lies
    # within the stop radius plus its accuracy of the mean. Every other fix reports 1.5 m/s, the others
    # no speed: a fix without speed does not clear the moving one before it, so two moving fixes with
    # only a speedless one between end the cluster.
    track = [ping(t, 50 if (t // 30) % 2 == 0 else 100, 75, acc_m=25.0, speed_mps=1.5 if (t // 30) % 2 else None)
             for t in range(0, 600, 30)]
    assert stops(run(track)) == []


def test_a_stayer_with_one_moving_reading_and_a_speedless_fix_after_it_is_still_one_stop():
    # Standing with speed readings; one reads 1.0 m/s (noise) and the fix after it has no speed: the
    # next still reading clears it, so the stop goes on.
    track = stay(0, 100, 10, (75, 75)) + [ping(110, 75, 75, speed_mps=1.0), ping(120, 75, 75)] + \
        stay(130, 240, 10, (75, 75))
    (stop,) = stops(run(track))
    assert (stop.started_ms, stop.ended_ms) == (s(0), s(240))
