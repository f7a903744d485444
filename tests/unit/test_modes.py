"""Mode of travel: foot, vehicle, stationary, unknown, as closed segments for every fix."""
from __future__ import annotations

import random

import pytest

from tests.unit.tracks import H, index, modes, ping, run, s, stay, visits, walk

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
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(65, 125, 5, (1144, 0), (1864, 0), speed_mps=12.0)
    assert _modes(track) == [(0, 60, "foot"), (60, 125, "vehicle")]


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
    assert _modes(track) == [(0, 300, "foot"), (300, 420, "vehicle")]


def test_a_silence_is_an_unknown_segment_between_the_last_and_next_fix():
    track = walk(0, 60, 5, (1000, 0), (1084, 0), speed_mps=1.4) + walk(660, 720, 5, (1200, 0), (1284, 0), speed_mps=1.4)
    assert _modes(track) == [(0, 60, "foot"), (60, 660, "unknown"), (660, 720, "foot")]


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


def test_a_switch_shown_by_a_device_speed_is_dated_halfway_through_the_interval_before_it():
    # 60 s fixes: walking (1.4 m/s) at 0 and 60 s, then the device reports 0 at 120, 180, 240 s
    # standing where it arrived. The officer stopped somewhere between 60 and 120 s: the stationary
    # segment starts at 90 s, not at 60 s (which gave a stop half a minute of the walk to it).
    track = [ping(0, 1000, 0, speed_mps=1.4), ping(60, 1084, 0, speed_mps=1.4)] + \
        stay(120, 240, 60, (1150, 0), speed_mps=0.0)
    assert _modes(track) == [(0, 90, "foot"), (90, 240, "stationary")]


def test_a_switch_shown_by_displacement_alone_starts_with_its_interval():
    # The same without device speed: the displacement speaks for the interval before a fix. The fix
    # at 120 s is 66 m from the one before (walking); the one at 180 s shows no move since 120 s, so
    # the standing run starts with that interval, at 120 s, as before.
    track = [ping(0, 1000, 0), ping(60, 1084, 0)] + stay(120, 300, 60, (1150, 0), speed_mps=None)
    assert _modes(track) == [(0, 120, "foot"), (120, 300, "stationary")]
