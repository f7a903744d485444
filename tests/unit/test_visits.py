"""Visits: entry and exit hysteresis, accuracy awareness, signal loss, and the dwell rule, on hand-built tracks.

The world is one 150 m square hot spot H from (0, 0) to (150, 150) metres
(tests/unit/tracks.py). With the default edge factor 1.5, a fix reporting 5 m
accuracy is on the edge within 7.5 m of the boundary.
"""
from __future__ import annotations

import random

from processors.config import ProcessingConfig
from processors.model import END_OF_DATA, END_SIGNAL_LOST, visit_id
from tests.unit.tracks import CFG, H, T0, index, ping, run, s, square, starts, stay, visits, walk


def test_walk_through_is_one_visit_backdated_to_first_inside_fix_and_closed_at_last():
    # 1.5 m/s along y=75 from x=-55, fixes every 10 s: x = -55 + 15k.
    track = walk(0, 210, 10, (-55, 75), (260, 75), speed_mps=1.5)
    events = run(track)
    (v,) = visits(events)
    assert (v.entered_ms, v.exited_ms) == (s(40), s(130))   # x=5 (on the edge but inside) .. x=140
    assert v.end_reason == "exit"
    assert v.ping_count == 10
    # 90 s between the first and last inside fix, plus half of the 10 s interval at each end.
    assert v.dwell_s == 100.0
    assert (v.foot_s, v.vehicle_s, v.stationary_s) == (100.0, 0.0, 0.0)
    assert v.visit_id == visit_id("d1", "H", s(40))
    (started,) = starts(events)
    assert started.entered_ms == s(40) and started.visit_id == v.visit_id


def test_entry_is_confirmed_only_after_a_firm_fix_30_s_after_the_first_firm_fix():
    track = walk(0, 210, 10, (-55, 75), (260, 75), speed_mps=1.5)
    r_events = run(track[:8])   # up to t=70 (x=50): firm since t=50, only 20 s
    assert starts(r_events) == [] and visits(r_events) == []
    r_events = run(track[:9])   # t=80: 30 s after the first firm fix at t=50
    assert [e.entered_ms for e in starts(r_events)] == [s(40)]


def test_drive_through_shorter_than_the_confirmation_makes_no_visit():
    # 10 m/s, fixes every 5 s: about 15 s inside.
    events = run(walk(0, 40, 5, (-55, 75), (345, 75), speed_mps=10.0))
    assert starts(events) == [] and visits(events) == []


def test_brief_excursion_stays_inside_the_visit():
    track = stay(0, 100, 5, (75, 75)) + stay(105, 140, 5, (190, 75)) + stay(145, 300, 5, (75, 75))
    (v,) = visits(run(track))
    assert (v.entered_ms, v.exited_ms, v.end_reason) == (s(0), s(300), END_OF_DATA)
    assert v.ping_count == len(track)
    assert v.dwell_s == 300.0   # no fix before the first nor after the last: no edge credit


def test_excursion_longer_than_exit_confirmation_splits_the_visit():
    track = stay(0, 100, 5, (75, 75)) + stay(105, 175, 5, (190, 75)) + stay(180, 300, 5, (75, 75))
    first, second = visits(run(track))
    assert (first.entered_ms, first.exited_ms, first.end_reason) == (s(0), s(100), "exit")
    assert first.dwell_s == 102.5     # half of the 5 s interval to the first outside fix
    assert (second.entered_ms, second.exited_ms, second.end_reason) == (s(180), s(300), END_OF_DATA)
    assert second.dwell_s == 122.5


def test_exit_needs_a_firm_outside_fix_60_s_after_the_first_one():
    track = stay(0, 100, 5, (75, 75)) + stay(105, 160, 5, (190, 75))
    (v,) = visits(run(track))
    assert v.end_reason == END_OF_DATA    # 55 s outside: not yet an exit when the data ends
    (v,) = visits(run(track + [ping(165, 190, 75)]))
    assert v.end_reason == "exit" and v.exited_ms == s(100)


def test_jitter_across_the_edge_within_accuracy_makes_no_visit():
    # Standing 10 m outside the east edge (x=150), fixes jumping 15 m either way, 20 m accuracy (30 m edge zone).
    track = [ping(5 * k, 145 if k % 2 else 175, 75, acc_m=20.0) for k in range(60)]
    events = run(track)
    assert starts(events) == [] and visits(events) == []


def test_walk_along_edge_15m_outside_with_15m_noise_makes_no_visit():
    rng = random.Random(7)
    track = [ping(5 * k, 165 + rng.uniform(-20, 20), -50 + 1.4 * 5 * k, acc_m=15.0, speed_mps=1.4)
             for k in range(40)]
    events = run(track)
    assert starts(events) == [] and visits(events) == []


def test_fixes_straddling_the_edge_never_end_an_open_visit():
    # Inside, then 4 minutes hovering at the edge with 20 m accuracy (outside by 8 m), then back in.
    track = stay(0, 60, 10, (75, 75)) + stay(70, 310, 10, (158, 75), acc_m=20.0) + stay(320, 360, 10, (75, 75))
    (v,) = visits(run(track))
    assert (v.entered_ms, v.exited_ms, v.end_reason) == (s(0), s(360), END_OF_DATA)


def test_a_fix_straddling_the_edge_neither_starts_nor_confirms_a_visit():
    # 2 minutes on the inside edge: inside, but within the accuracy zone.
    events = run(stay(0, 60, 10, (146, 75), acc_m=5.0))
    assert starts(events) == []


def test_poor_accuracy_fixes_are_kept_but_never_change_state():
    idx = index(H)
    # Inside for 3 minutes, but with 150 m accuracy: no visit.
    events = run(stay(0, 180, 10, (75, 75), acc_m=150.0), idx)
    assert starts(events) == []
    # An open visit is not ended by 3 minutes of 150 m fixes reported outside.
    track = stay(0, 60, 10, (75, 75)) + stay(70, 250, 10, (400, 75), acc_m=150.0) + stay(260, 300, 10, (75, 75))
    (v,) = visits(run(track, idx))
    assert (v.entered_ms, v.exited_ms) == (s(0), s(300))
    assert v.ping_count == len(track)


def test_signal_loss_closes_the_visit_at_its_last_inside_fix():
    # Silent inside H from 120 s, back outside it at 420 s: the visit stays closed where it was.
    track = stay(0, 120, 10, (75, 75)) + stay(420, 500, 10, (400, 75))
    (v,) = visits(run(track))
    assert (v.exited_ms, v.end_reason, v.dwell_s, v.observed_s, v.inferred_s) == \
        (s(120), END_SIGNAL_LOST, 120.0, 120.0, 0.0)


def test_a_silence_that_begins_and_ends_inside_the_hot_spot_is_bridged_as_inferred_time():
    # Silent from 120 s to 420 s, standing inside H: the same visit goes on, its signal_lost row
    # replaced (same visit id) by the row at its real end, the 300 s silence counted apart.
    track = stay(0, 120, 10, (75, 75)) + stay(420, 500, 10, (75, 75))
    lost, final = visits(run(track))
    assert lost.visit_id == final.visit_id == visit_id("d1", "H", s(0))
    assert (lost.exited_ms, lost.end_reason, lost.dwell_s) == (s(120), END_SIGNAL_LOST, 120.0)
    assert (final.entered_ms, final.exited_ms, final.end_reason) == (s(0), s(500), END_OF_DATA)
    assert (final.dwell_s, final.observed_s, final.inferred_s) == (500.0, 200.0, 300.0)


def test_a_silence_longer_than_gap_bridge_max_s_is_not_bridged():
    track = stay(0, 120, 10, (75, 75)) + stay(120 + 901, 1100, 10, (75, 75))
    first, second = visits(run(track))
    assert (first.exited_ms, first.end_reason, first.inferred_s) == (s(120), END_SIGNAL_LOST, 0.0)
    assert (second.entered_ms, second.dwell_s, second.inferred_s) == (s(1021), 80.0, 0.0)


def test_a_return_too_far_to_have_walked_in_the_silence_is_not_bridged():
    # A hot spot 2 km long: last seen at one end, back at the other 310 s later (6.5 m/s).
    long_h = square("L", 0, 0, 2000)
    track = stay(0, 120, 10, (20, 20)) + stay(430, 500, 10, (2000 - 20, 2000 - 20))
    first, second = visits(run(track, index(long_h)))
    assert (first.end_reason, first.inferred_s, second.entered_ms) == (END_SIGNAL_LOST, 0.0, s(430))


def test_a_gap_just_under_signal_loss_keeps_the_visit_and_counts_the_gap():
    track = stay(0, 120, 10, (75, 75)) + stay(419, 500, 10, (75, 75))
    (v,) = visits(run(track))
    assert (v.entered_ms, v.exited_ms) == (s(0), s(499))
    assert v.dwell_s == 499.0


def test_sparse_fixes_60_s_apart_credit_half_an_interval_at_each_end():
    xs = [(0, -40), (60, 40), (120, 75), (180, 110), (240, 190), (300, 230), (360, 260)]
    (v,) = visits(run([ping(t, x, 75) for t, x in xs]))
    assert (v.entered_ms, v.exited_ms, v.ping_count) == (s(60), s(180), 3)
    # 120 s between the first and last inside fix, plus 30 s on each side.
    assert v.dwell_s == 180.0


def test_edge_credit_is_half_the_neighbouring_interval_capped_at_30_s():
    # 200 s before the first inside fix and 280 s after the last: half of each would be 100 s and 140 s.
    track = [ping(0, -40, 75), ping(200, 40, 75), ping(260, 75, 75), ping(320, 110, 75), ping(600, 400, 75),
             ping(700, 400, 75)]
    (v,) = visits(run(track))
    assert (v.entered_ms, v.exited_ms, v.end_reason) == (s(200), s(320), "exit")
    assert v.dwell_s == 120.0 + 30.0 + 30.0


def test_edge_credit_can_be_switched_off():
    xs = [(0, -40), (60, 40), (120, 75), (180, 110), (240, 190), (300, 230), (360, 260)]
    (v,) = visits(run([ping(t, x, 75) for t, x in xs], cfg=CFG.replace(edge_credit_max_s=0)))
    assert v.dwell_s == 120.0


def test_overlapping_hot_spots_each_get_their_visit():
    idx = index(H, square("G", 100, 0, 150))
    events = run(stay(0, 120, 10, (125, 75)), idx)
    got = sorted((v.hotspot_id, v.entered_ms, v.exited_ms) for v in visits(events))
    assert got == [("G", s(0), s(120)), ("H", s(0), s(120))]


def test_buffer_m_widens_the_hot_spot():
    track = stay(0, 120, 10, (170, 75))    # 20 m east of the drawn edge
    assert visits(run(track, index(square("H", 0, 0, 150)))) == []
    (v,) = visits(run(track, index(square("H", 0, 0, 150, buffer_m=30))))
    assert (v.entered_ms, v.exited_ms) == (s(0), s(120))


def test_a_device_too_inaccurate_for_firm_fixes_is_confirmed_after_90_s_of_inside_fixes():
    # 60 m accuracy: the 90 m edge zone covers the whole 150 m square.
    track = stay(0, 200, 10, (75, 75), acc_m=60.0)
    assert [e.entered_ms for e in starts(run(track[:9]))] == []        # up to 80 s
    (v,) = visits(run(track))
    assert (v.entered_ms, v.exited_ms) == (s(0), s(200))


def test_an_outside_fix_cancels_a_candidate_visit():
    track = stay(0, 20, 10, (75, 75)) + [ping(30, 250, 75)] + stay(40, 60, 10, (75, 75))
    events = run(track)
    assert starts(events) == []


def test_ping_count_includes_excursion_fixes_but_not_fixes_after_the_last_inside_one():
    track = stay(0, 60, 10, (75, 75)) + [ping(70, 200, 75)] + stay(80, 120, 10, (75, 75)) + \
        stay(130, 200, 10, (300, 75))
    (v,) = visits(run(track))
    assert v.ping_count == 7 + 1 + 5
    assert v.exited_ms == s(120)


def test_hot_spot_active_window_limits_matching():
    hs = square("H", 0, 0, 150, active_from_ms=T0 + 100_000)
    (v,) = visits(run(stay(0, 200, 10, (75, 75)), index(hs)))
    assert v.entered_ms == s(100)


def test_other_confirmation_periods_are_honoured():
    cfg = ProcessingConfig(enter_confirm_s=60, exit_confirm_s=120)
    track = walk(0, 400, 10, (-55, 75), (345, 75), speed_mps=1.0)
    (v,) = visits(run(track, cfg=cfg))
    (d,) = visits(run(track))
    assert (v.entered_ms, v.exited_ms) == (d.entered_ms, d.exited_ms) == (s(60), s(200))
    short = walk(0, 100, 10, (-55, 75), (45, 75), speed_mps=1.0)   # firm from t=70 (x=15)..t=100: 30 s
    assert starts(run(short)) != [] and starts(run(short, cfg=cfg)) == []


def test_an_open_visit_reports_its_dwell_so_far_up_to_its_last_inside_fix():
    from processors.batch import open_visits, process_batch
    from formats.records import state_version, visit_progress_row

    r = process_batch({}, stay(0, 120, 10, (75, 75)) + stay(420, 600, 10, (75, 75)), index(H), CFG)
    (p,) = open_visits(r.states.values())
    # The newest fix is 590 s; those within the 10 s reorder window of it are still held.
    assert (p.visit_id, p.entered_ms, p.last_in_ms) == (visit_id("d1", "H", s(0)), s(0), s(580))
    assert (p.dwell_s, p.observed_s, p.inferred_s) == (580.0, 280.0, 300.0)
    row = visit_progress_row(p)
    assert (row["end_reason"], row["exited_at"], row["dwell_s"]) == ("open", None, 580.0)
    # It replaces the visit's start and its signal_lost row (version 120 s, closed); its end replaces it.
    assert state_version(s(0), False) < state_version(s(120), True) < row["version"] < state_version(s(580), True)
    # A candidate (not yet confirmed) or nothing at all: no row.
    assert open_visits(process_batch({}, stay(0, 20, 10, (75, 75)), index(H), CFG).states.values()) == []
