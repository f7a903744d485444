"""Mode of travel: foot, vehicle, stationary, unknown, as closed segments for every fix."""
from __future__ import annotations

import random

import pytest

from tests.unit.tracks import CFG, H, index, modes, ping, run, s, stay, visits, walk

FAR = index(H)   # the hot spot plays no part: modes are computed everywhere


def _modes(track):
    return modes(run(track, FAR))


def test_walking_with_device_speed_is_one_foot_segment():
    track = walk(0, 120, 5, (1000, 0), (1168, 0), speed_mps=1.4)
    assert _modes(track) == [(0, 120, "foot")]


def test_foot_segment_distance_is_the_path_walked():
    track = walk(0, 120, 5, (1000, 0), (1168, 0), speed_mps=1.4)
    (seg,) = [e for e in run(track, FAR) if e.type == "mode_segment"]
    assert seg.distance_m == pytest.approx(168.0, abs=0.5)


def test_a_phone_lying_still_accumulates_no_distance():
    rng = random.Random(3)
    track = [ping(10 * k, 1000 + rng.uniform(-6, 6), rng.uniform(-6, 6), acc_m=10.0, speed_mps=None)
             for k in range(30)]
    events = run(track, FAR)
    assert modes(events) == [(0, 290, "stationary")]
    assert [e.distance_m for e in events if e.type == "mode_segment"] == [0.0]


def test_vehicle_waiting_at_lights_stays_a_vehicle():
    track = (walk(0, 60, 5, (1000, 0), (1720, 0), speed_mps=12.0)
             + stay(65, 125, 5, (1720, 0))
             + walk(130, 190, 5, (1725, 0), (2445, 0), speed_mps=12.0))
    assert _modes(track) == [(0, 190, "vehicle")]


def test_parked_vehicle_becomes_stationary_from_when_it_stopped():
    # The device says 12 m/s at 60 s and 0 at 65 s: it stopped in between, at 62.5 s on average.
    track = walk(0, 60, 5, (1000, 0), (1720, 0), speed_mps=12.0) + stay(65, 300, 5, (1720, 0))
    assert _modes(track) == [(0, 62.5, "vehicle"), (62.5, 300, "stationary")]


def test_walk_then_drive_switches_at_the_start_of_the_vehicle_evidence():
    # The first vehicle fix is 60 m on at 12 m/s: it set off 5 s before it, at the last foot fix (to
    # the 5 m accuracies, taken off the step in quadrature: tens of milliseconds).
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(65, 125, 5, (1144, 0), (1864, 0), speed_mps=12.0)
    assert _modes(track) == [(0, pytest.approx(60, abs=0.1), "foot"), (pytest.approx(60, abs=0.1), 125, "vehicle")]


def test_park_and_walk_ends_the_vehicle_where_walking_starts():
    track = (walk(0, 60, 5, (1000, 0), (1720, 0), speed_mps=12.0) + stay(65, 90, 5, (1720, 0))
             + walk(95, 215, 5, (1727, 0), (1895, 0), speed_mps=1.4))
    # (Walking set off between the still fix at 90 s and the walking one at 95 s.)
    assert _modes(track) == [(0, 92.5, "vehicle"), (92.5, 215, "foot")]


def test_speeds_in_the_hysteresis_band_keep_the_current_mode():
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(65, 185, 5, (1090, 0), (1510, 0), speed_mps=3.5)
    assert _modes(track) == [(0, 185, "foot")]
    track = walk(0, 60, 5, (1000, 0), (1720, 0), speed_mps=12.0) + walk(65, 185, 5, (1730, 0), (2150, 0), speed_mps=3.5)
    assert _modes(track) == [(0, 185, "vehicle")]


def test_without_device_speed_the_displacement_decides():
    track = walk(0, 300, 10, (1000, 0), (1420, 0), acc_m=10.0)        # 1.4 m/s
    assert _modes(track) == [(0, 300, "foot")]
    track = walk(0, 300, 10, (1000, 0), (4600, 0), acc_m=10.0)        # 12 m/s
    assert _modes(track) == [(0, 300, "vehicle")]


def test_a_reported_speed_the_positions_contradict_is_ignored():
    # A device that always says 0 m/s while covering 12 m/s.
    track = walk(0, 120, 5, (1000, 0), (2440, 0), speed_mps=0.0)
    assert _modes(track) == [(0, 120, "vehicle")]


def test_sparse_device_switches_on_one_long_interval():
    track = (walk(0, 300, 60, (1000, 0), (1420, 0), acc_m=10.0, speed_mps=None)
             + [ping(360, 2000, 0, acc_m=10.0), ping(420, 2600, 0, acc_m=10.0)])
    assert _modes(track) == [(0, pytest.approx(300, abs=0.1), "foot"), (pytest.approx(300, abs=0.1), 420, "vehicle")]


def test_one_short_displacement_does_not_prove_a_stand():
    # A walker zigzagging in a small hot spot, one fix a minute, device speeds on most fixes. The fix at
    # 180 s has no speed, and the walk since 120 s turned back on itself: 20 m net in 60 s (0.33 m/s,
    # less than standing's 0.5). A straight line is the least distance covered, so it can show moving
    # in one interval but not standing: the walker stays on foot.
    track = [ping(0, 1000, 0, speed_mps=1.3), ping(60, 1060, 30, speed_mps=1.3), ping(120, 1020, 80, speed_mps=1.3),
             ping(180, 1030, 62), ping(240, 1000, 0, speed_mps=1.3), ping(300, 1060, 30, speed_mps=1.3)]
    assert _modes(track) == [(0, 300, "foot")]
    # Two such fixes in a row are a stand (dated from the first one's interval, as any switch).
    track = track[:3] + [ping(180, 1030, 62), ping(240, 1032, 60), ping(300, 1031, 61)]
    assert [m for _, _, m in _modes(track)] == ["foot", "stationary"]


def test_a_silence_walked_through_is_foot():
    # Walking, ten minutes of silence, walking on 516 m away (0.9 m/s: a walking pace): foot.
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(660, 720, 5, (1600, 0), (1684, 0), speed_mps=1.4)
    assert _modes(track) == [(0, 60, "foot"), (60, 720, "foot")]
    # Walking on 116 m away (0.2 m/s): a walk round, or a stand and a few steps: not counted as foot.
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(660, 720, 5, (1200, 0), (1284, 0), speed_mps=1.4)
    assert _modes(track) == [(0, 60, "foot"), (60, 660, "unknown"), (660, 720, "foot")]


def test_a_silence_is_unknown_when_the_step_across_it_does_not_fit_the_mode():
    # Walking on both sides, but 3 km apart after ten minutes (5 m/s): nobody walked that.
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(660, 720, 5, (4000, 0), (4084, 0), speed_mps=1.4)
    assert _modes(track) == [(0, 60, "foot"), (60, 660, "unknown"), (660, 720, "foot")]
    # Driving on both sides, back where it was (it parked, or drove round): not a vehicle's pace.
    track = walk(0, 60, 5, (1000, 0), (1720, 0), speed_mps=12.0) + walk(660, 720, 5, (1730, 0), (2450, 0), speed_mps=12.0)
    assert _modes(track) == [(0, 60, "vehicle"), (60, 660, "unknown"), (660, 720, "vehicle")]


def test_a_silence_longer_than_the_bridge_stays_unknown():
    late = CFG.gap_bridge_max_s + 120
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + \
        walk(late, late + 60, 5, (1100, 0), (1184, 0), speed_mps=1.4)
    assert _modes(track) == [(0, 60, "foot"), (60, late, "unknown"), (late, late + 60, "foot")]


def test_a_silence_between_standing_and_walking_is_split_by_dead_reckoning():
    # Standing, silent for 300 s, then walking at 1.4 m/s 140 m away (less the 5 m accuracies): the
    # officer set off 100 s before the first fix after the silence.
    # (The segment before the silence was closed when it fell silent: the bridge is a row of its own.)
    track = stay(0, 60, 5, (1000, 0), speed_mps=0.0) + walk(420, 480, 5, (1140, 0), (1224, 0), speed_mps=1.4)
    ((_, _, _), (a, b, still), (c, d, foot)) = _modes(track)
    assert (a, still, d, foot) == (60, "stationary", 480, "foot") and b == c
    assert 420 - 100 <= b <= 420 - 99.5
    # Walking, then standing 70 m on: went on at 1.4 m/s for 50 s, then stood.
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + stay(420, 480, 5, (1154, 0), speed_mps=0.0)
    ((_, _, _), (a, b, foot), (c, d, still)) = _modes(track)
    assert (a, foot, d, still) == (60, "foot", 480, "stationary") and b == c
    assert 60 + 49.5 <= b <= 60 + 50
    # A step longer than the silence allows at the speed seen: unknown.
    track = stay(0, 60, 5, (1000, 0), speed_mps=0.0) + walk(420, 480, 5, (1600, 0), (1684, 0), speed_mps=1.4)
    assert [m for _, _, m in _modes(track)] == ["stationary", "unknown", "foot"]


def test_a_bridged_silence_counts_in_the_visit_it_was_spent_in():
    # Standing in hot spot H for a minute, silent for 5 min (the phone in doze), standing on: the visit
    # goes on through the silence (inferred) and the silence is stationary time in it.
    track = stay(0, 60, 5, (75, 75), speed_mps=0.0) + stay(380, 500, 5, (77, 75), speed_mps=0.0)
    events = run(track)
    assert modes(events) == [(0, 60, "stationary"), (60, 500, "stationary")]
    v = visits(events)[-1]                                   # the row of the visit resumed
    assert v.stationary_s == pytest.approx(v.dwell_s) and v.foot_s == v.vehicle_s == 0.0


def test_single_fix_gives_no_segment():
    assert _modes([ping(0, 1000, 0)]) == []


def test_visit_mode_seconds_follow_the_segments():
    # Drive in at 10 m/s, park at the centre for 4 minutes, walk out at 1.4 m/s.
    track = (walk(0, 20, 5, (-125, 75), (75, 75), speed_mps=10.0) + stay(25, 265, 5, (75, 75))
             + walk(270, 380, 5, (82, 75), (236, 75), speed_mps=1.4))
    events = run(track)
    # Each switch is dated halfway between the last fix of the old mode and the first device speed
    # of the new one (the speed speaks for the instant of its fix).
    assert modes(events)[:3] == [(0, 22.5, "vehicle"), (22.5, 267.5, "stationary"), (267.5, 380, "foot")]
    (v,) = visits(events)
    assert (v.entered_ms, v.exited_ms) == (s(15), s(315))     # x=25 .. x=145
    # Each end credits half of its 5 s interval: the visit's time runs from 12.5 s to 317.5 s.
    assert (v.vehicle_s, v.stationary_s, v.foot_s) == (10.0, 245.0, 50.0)
    assert v.vehicle_s + v.stationary_s + v.foot_s == v.dwell_s


def test_a_stop_is_dated_by_the_step_covered_at_the_last_speed():
    # 60 s fixes: walking (1.4 m/s) at 0 and 60 s, then the device reports 0 at 120, 180, 240 s
    # standing 42 m on. Walking on at 1.4 m/s, the officer covered those 42 m in 30 s: the
    # stationary segment starts at 90 s (less the 5 m accuracies taken off the step in quadrature),
    # not at 60 s (which gave a stop half a minute of the walk to it).
    track = [ping(0, 1000, 0, speed_mps=1.4), ping(60, 1084, 0, speed_mps=1.4)] + \
        stay(120, 240, 60, (1126, 0), speed_mps=0.0)
    ((a, b, foot), (c, d, still)) = _modes(track)
    assert (a, foot, d, still) == (0, "foot", 240, "stationary") and b == c and 88.5 < b < 90.0
    # 66 m on: the walk took 47 s of the interval.
    track = track[:2] + stay(120, 240, 60, (1150, 0), speed_mps=0.0)
    ((a, b, foot), (c, d, still)) = _modes(track)
    assert b == c and 106.0 < b < 107.2


def test_a_switch_shown_by_a_device_speed_is_dated_halfway_when_the_step_is_lost_in_the_errors():
    # The same, but the standing fixes are 6 m on, within the 5 m accuracies of both fixes: the
    # step says nothing, and a device speed (an instant) dates the stop halfway through the interval.
    track = [ping(0, 1000, 0, speed_mps=1.4), ping(60, 1084, 0, speed_mps=1.4)] + \
        stay(120, 240, 60, (1090, 0), speed_mps=0.0)
    assert _modes(track) == [(0, 90, "foot"), (90, 240, "stationary")]


def test_a_switch_shown_by_displacement_alone_starts_with_its_interval():
    # The same without device speed: the displacement speaks for the interval before a fix. The fix
    # at 120 s is 66 m from the one before (walking); the one at 180 s shows no move since 120 s, so
    # the standing run starts with that interval, at 120 s, as before.
    track = [ping(0, 1000, 0), ping(60, 1084, 0)] + stay(120, 300, 60, (1150, 0), speed_mps=None)
    assert _modes(track) == [(0, 120, "foot"), (120, 300, "stationary")]


def _wander(t0, t1, step, x0, amp_m, acc_m, speed_every=3):
    """A phone lying still indoors: fixes wandering up to amp_m around x0, every third without speed."""
    import math
    return [ping(t, x0 + amp_m * math.sin(2 * math.pi * t / 90), amp_m * math.cos(2 * math.pi * t / 70),
                 acc_m=acc_m, speed_mps=None if k % speed_every == speed_every - 1 else 0.0)
            for k, t in enumerate(range(t0, t1 + 1, step))]


def test_gps_wander_within_the_fixes_errors_does_not_keep_a_stayer_on_foot():
    # Walk in at 1.4 m/s, then stand for 10 min indoors: 25 m accuracy, the fixes wandering 15 m
    # around the spot (26 m over 30 s: 0.9 m/s of displacement, foot speed), the device reporting
    # 0 m/s on two fixes of three. The wander is within the two fixes' errors (35 m combined), so it
    # is no evidence of walking: the standing speeds make the stay stationary from its start.
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + _wander(65, 665, 5, 1084, 15.0, 25.0)
    ((a, b, foot), (c, d, still)) = _modes(track)
    assert (a, foot, still, d) == (0, "foot", "stationary", 665) and b == c and 60 <= b <= 65


def test_slow_walking_without_device_speed_stays_foot():
    # 0.8 m/s with good fixes and no device speed: 24 m over 30 s, well beyond 5 m fixes' errors.
    track = walk(0, 300, 10, (1000, 0), (1240, 0), speed_mps=None)
    assert _modes(track) == [(0, 300, "foot")]


def test_displacement_reaching_back_into_the_walk_does_not_undo_a_stop_the_device_speeds_show():
    # Walk in at 1.4 m/s, then stand (good fixes, 0 m/s on two fixes of three, no speed on the third).
    # For 30 s after the stop a speedless fix's displacement window still holds the walk (foot speed);
    # it mixes the walk into the stand, so it does not break the run of standing speeds: the stop is
    # dated where the standing began (halfway through the interval before the first standing fix:
    # the step is within the 5 m accuracies), not after the last such fix.
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + \
        [ping(t, 1084, 0, speed_mps=None if k % 3 == 2 else 0.0) for k, t in enumerate(range(65, 306, 5))]
    assert _modes(track) == [(0, 62.5, "foot"), (62.5, 305, "stationary")]
