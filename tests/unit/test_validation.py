"""Ping validation: every rejection keeps the ping and names its reason."""
from __future__ import annotations

import math

import pytest

from processors.batch import finish, process_batch
from processors.config import ProcessingConfig
from processors.model import (BAD_ACCURACY, BAD_COORDINATES, BAD_TIMESTAMP, FUTURE_TIMESTAMP, IMPLIED_SPEED,
                              NULL_ISLAND, STALE_TIMESTAMP, Ping)
from processors.validation import check_ping, implied_speed_mps
from tests.unit.tracks import CFG, LAT0, LON0, T0, H, index, ping

IDX = index(H)


def _p(**kw) -> Ping:
    base = dict(device_id="d1", ts_ms=T0, lat=LAT0, lon=LON0, accuracy_m=5.0)
    base.update(kw)
    return Ping(**base)


@pytest.mark.parametrize("lat, lon", [(91.0, 0.5), (-90.5, 0.5), (10.0, 180.5), (10.0, -181.0),
                                      (math.nan, 1.0), (1.0, math.inf)])
def test_coordinates_out_of_range_or_not_finite_are_bad_coordinates(lat, lon):
    assert check_ping(_p(lat=lat, lon=lon), CFG) == BAD_COORDINATES


def test_zero_zero_is_null_island():
    assert check_ping(_p(lat=0.0, lon=0.0), CFG) == NULL_ISLAND
    assert check_ping(_p(lat=0.0, lon=0.001), CFG) is None


def test_clock_never_set_is_bad_timestamp():
    assert check_ping(_p(ts_ms=0), CFG) == BAD_TIMESTAMP


@pytest.mark.parametrize("acc", [-1.0, math.nan, math.inf])
def test_negative_or_non_finite_accuracy_is_bad_accuracy(acc):
    assert check_ping(_p(accuracy_m=acc), CFG) == BAD_ACCURACY


def test_fix_more_than_5_minutes_ahead_of_arrival_is_future_timestamp():
    assert check_ping(_p(ts_ms=T0 + 300_001, received_ms=T0), CFG) == FUTURE_TIMESTAMP
    assert check_ping(_p(ts_ms=T0 + 300_000, received_ms=T0), CFG) is None


def test_fix_more_than_7_days_before_arrival_is_stale_timestamp():
    week_ms = 7 * 86400 * 1000
    assert check_ping(_p(ts_ms=T0 - week_ms - 1, received_ms=T0), CFG) == STALE_TIMESTAMP
    assert check_ping(_p(ts_ms=T0 - week_ms, received_ms=T0), CFG) is None


def test_without_arrival_time_future_and_stale_checks_are_skipped():
    assert check_ping(_p(ts_ms=T0 + 10**10), CFG) is None
    assert check_ping(_p(ts_ms=T0 - 10**10), CFG) is None


def test_poor_accuracy_is_not_a_rejection_but_an_annotation():
    r = process_batch({}, [ping(0, 75, 75, acc_m=500.0), ping(30, 75, 75, acc_m=5.0), ping(60, 400, 0)], IDX, CFG)
    assert r.rejected == []
    assert [(a.low_accuracy, a.hotspot_ids) for a in r.accepted] == [(True, ("H",)), (False, ("H",))]


def test_implied_speed_gives_back_both_accuracies():
    a = ping(0, 0, 0, acc_m=10.0)
    b = ping(1, 100, 0, acc_m=20.0)
    # (100 m - 10 m - 20 m) / 1 s; the processors' small-distance geodesy is good to about 0.5%.
    assert implied_speed_mps(a.ts_ms, a.lat, a.lon, 10.0, b) == pytest.approx(70.0, rel=5e-3)


def _run(pings, cfg=CFG):
    r = process_batch({}, pings, IDX, cfg)
    rejected = r.rejected + finish(r.states, IDX, cfg).rejected
    return [(p.ts_ms - T0) // 1000 for p, _ in rejected], [reason for _, reason in rejected]


def test_a_teleport_is_rejected_and_the_track_goes_on():
    track = [ping(0, 0, 0), ping(5, 7, 0), ping(10, 2000, 0), ping(15, 14, 0), ping(20, 21, 0)]
    assert _run(track) == ([10], [IMPLIED_SPEED])


def test_an_outlier_let_through_by_its_accuracy_costs_no_good_fix():
    # 25 m accuracy: a fix 375 m off 5 s after the last is (375 - 50) / 5 = 65 m/s from it, within the
    # bound, so it is accepted; the good fix 4 s later is (370 - 50) / 4 = 80 m/s from the spike but
    # no distance from the fix before it: accepted, not rejected as the spike's teleport.
    track = [ping(0, 0, 0, acc_m=25.0), ping(5, 5, 0, acc_m=25.0), ping(10, 380, 0, acc_m=25.0),
             ping(14, 10, 0, acc_m=25.0), ping(20, 20, 0, acc_m=25.0)]
    assert _run(track) == ([], [])
    spike = track[2]
    assert implied_speed_mps(spike.ts_ms, spike.lat, spike.lon, 25.0, track[3]) > CFG.max_speed_mps


def test_an_outlier_after_two_good_fixes_is_not_taken_for_the_good_one():
    # 590 m off 5 s after the last fix (116 m/s) is a teleport. From the fix before that it is 58 m/s,
    # within the bound only because twice the time has passed; the last fix, next to that one, was not
    # the spike: the outlier is rejected and the walk goes on.
    track = [ping(0, 0, 0), ping(5, 5, 0), ping(10, 10, 0), ping(15, 600, 0), ping(20, 20, 0), ping(25, 25, 0)]
    assert _run(track) == ([15], [IMPLIED_SPEED])


def test_two_agreeing_fixes_overrule_a_wild_first_fix():
    # The first fix is 3 km off; the next two agree with each other, so the first was the outlier.
    track = [ping(0, 3000, 0), ping(5, 0, 0), ping(10, 7, 0), ping(15, 14, 0)]
    assert _run(track) == ([5], [IMPLIED_SPEED])


def test_after_a_long_gap_a_far_fix_is_plausible():
    # An hour's silence is longer than time_jump_s: the fix after it is provisional until the next
    # one agrees, then both count (and 50 km in an hour is no teleport).
    track = [ping(0, 0, 0), ping(3600, 50_000, 0), ping(3610, 50_010, 0)]
    assert _run(track) == ([], [])


def test_a_low_accuracy_fix_far_away_is_kept_but_does_not_become_the_anchor():
    track = [ping(0, 0, 0), ping(5, 400, 0, acc_m=900.0), ping(10, 7, 0)]
    assert _run(track) == ([], [])


def test_max_speed_is_configurable():
    track = [ping(0, 0, 0), ping(10, 300, 0)]     # 30 m/s less 10 m of accuracy
    assert _run(track) == ([], [])
    assert _run(track, ProcessingConfig(max_speed_mps=25)) == ([10], [IMPLIED_SPEED])
