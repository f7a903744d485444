"""Scoring against truth: each figure on a tiny hand-made case with an exact answer."""
from __future__ import annotations

import csv

import pytest

from simulation.scoring import (
    Predicted, Span, TruthSet, Visit, dwell_errors, false_dwell, match_stops, mode_confusion, pool, score,
)
from simulation.config import SimConfig
from simulation.simulate import Simulation
from simulation.files import score_dirs, write_simulation

S = 1000  # milliseconds per second


def V(dev, hs, a, b, dwell=None):
    return Visit(dev, hs, a * S, b * S, float(b - a) if dwell is None else dwell)


def T(dev, label, a, b):
    return Span(dev, label, a * S, b * S)


def truth_of(visits=(), stops=(), modes=(), episodes=(), gaps=(), hours=1.0):
    return TruthSet(list(visits), list(stops), list(modes), list(episodes), list(gaps), hours)


# --- dwell -----------------------------------------------------------------------

def test_dwell_error_is_per_officer_and_hot_spot_total_above_the_floor():
    truth = [V("a", "h1", 0, 600), V("a", "h1", 1000, 1400),   # 1000 s in total
             V("a", "h2", 0, 500),                             # 500 s
             V("b", "h1", 0, 20)]                              # a drive-through: below the floor
    pred = [V("a", "h1", 10, 590, dwell=580), V("a", "h1", 1000, 1400),  # 980 s: 2% short
            V("a", "h2", 0, 550),                                       # 550 s: 10% long
            V("c", "h9", 0, 900)]                                       # no truth: false dwell, not a pair
    big, small, hidden = dwell_errors(truth, pred, floor_s=300)
    assert hidden == []
    assert [(p.device_id, p.hotspot_id, p.true_s, p.predicted_s) for p in big] == [
        ("a", "h1", 1000.0, 980.0), ("a", "h2", 500.0, 550.0)]
    assert [p.rel_error for p in big] == pytest.approx([0.02, 0.10])
    assert [(p.device_id, p.true_s, p.predicted_s) for p in small] == [("b", 20.0, 0.0)]
    s = score(truth_of(visits=truth), Predicted(pred, [], []), dwell_floor_s=300)
    assert s.dwell_pairs == 2
    assert s.dwell_median == pytest.approx(0.06)
    assert s.dwell_p90 == pytest.approx(0.02 + 0.9 * 0.08)   # numpy's linear interpolation
    assert s.dwell_bias == pytest.approx((-0.02 + 0.10) / 2)


def test_pairs_whose_visit_a_long_outage_hid_are_listed_apart_not_scored():
    truth = [V("a", "h1", 0, 900), V("a", "h2", 1000, 1900), V("a", "h3", 2000, 2900)]
    outages = [T("a", "gap", 100, 400),      # 300 s: as long as the signal-loss timeout -> h1 not scored
               T("a", "gap", 1100, 1399)]    # 299 s: a processor must bridge it -> h2 scored
    pred = [V("a", "h1", 0, 100), V("a", "h2", 1000, 1900), V("a", "h3", 2000, 2900)]
    scored, small, hidden = dwell_errors(truth, pred, 300, outages, outage_exclude_s=300)
    assert [p.hotspot_id for p in scored] == ["h2", "h3"]
    assert [(p.hotspot_id, p.true_s, p.predicted_s) for p in hidden] == [("h1", 900.0, 100.0)]
    s = score(truth_of(visits=truth, gaps=outages), Predicted(pred, [], []))
    assert s.dwell_median == 0.0 and len(s.outage_pairs) == 1
    assert "not scored: 1 pairs" in s.report()


def test_a_missed_visit_is_a_100_percent_error():
    s = score(truth_of(visits=[V("a", "h1", 0, 900)]), Predicted([], [], []))
    assert s.dwell_median == 1.0


# --- false dwell -------------------------------------------------------------------

def test_false_dwell_is_predicted_time_outside_the_true_visit_charged_to_the_episode_then():
    truth = [V("a", "h1", 100, 200)]
    episodes = [T("a", "patrol", 0, 200), T("a", "drive_by", 200, 260), T("a", "edge_walk", 260, 400)]
    pred = [V("a", "h1", 90, 230),      # 10 s early (patrol), 30 s late (drive_by)
            V("a", "h2", 300, 330),     # a hot spot never entered: 30 s during the edge walk
            V("a", "h1", 500, 520)]     # after the last episode
    by_kind, pieces = false_dwell(truth, pred, episodes)
    assert by_kind == {"patrol": 10.0, "drive_by": 30.0, "edge_walk": 30.0, "none": 20.0}
    assert sorted((p.hotspot_id, p.start_ms // S, p.end_ms // S, p.kind) for p in pieces) == [
        ("h1", 90, 100, "patrol"), ("h1", 200, 230, "drive_by"), ("h2", 300, 330, "edge_walk")]
    s = score(truth_of(visits=truth, episodes=episodes, hours=2.0), Predicted(pred, [], []))
    assert s.false_edges == pytest.approx(60 / 60 * 10 / 2.0)          # 1 min in 2 device-hours -> 5 per 10 h
    assert s.false_min_per_10h() == pytest.approx(90 / 60 * 10 / 2.0)
    assert s.edge_exposure_s == 200.0


def test_a_prediction_inside_the_true_visit_has_no_false_dwell():
    by_kind, pieces = false_dwell([V("a", "h1", 0, 100)], [V("a", "h1", 10, 90)], [T("a", "patrol", 0, 100)])
    assert by_kind == {} and pieces == []


# --- stops ---------------------------------------------------------------------------

def test_stops_match_one_to_one_by_overlap_of_half_the_shorter():
    truth = [T("a", "h1", 100, 300), T("a", "h1", 1000, 1200), T("a", "h2", 2000, 2200), T("b", "h1", 0, 200)]
    pred = [T("a", "h1", 80, 330),      # covers the first true stop: match
            T("a", "h1", 250, 400),     # overlaps it by 50 s of 150: not enough, and already taken
            T("a", "h1", 1000, 1050),   # a fragment of the second true stop: match (overlap = all of it)
            T("a", "h1", 1060, 1200),   # the other fragment: false
            T("a", "h1", 2000, 2200),   # right time, wrong hot spot: false, and h2's stop missed
            T("b", "", 0, 200)]         # a stop outside any hot spot: false
    matched, misses = match_stops(truth, pred)
    assert matched == 2
    assert sorted(m.what for m in misses) == ["false"] * 4 + ["missed"] * 2
    s = score(truth_of(stops=truth), Predicted([], pred, []))
    assert (s.stops_true, s.stops_pred, s.stops_matched) == (4, 6, 2)
    assert s.stop_precision == pytest.approx(2 / 6)
    assert s.stop_recall == pytest.approx(2 / 4)
    assert s.stop_f1 == pytest.approx(2 * 2 / (4 + 6))


def test_a_stop_an_outage_leaves_under_2_minutes_of_is_not_scored():
    truth = [T("a", "h", 0, 300), T("a", "h", 1000, 1200)]
    gaps = [T("a", "gap", 100, 250),     # 150 s of the first stop visible: scored (and missed)
            T("a", "gap", 1050, 1200)]   # 50 s of the second visible: nobody could see it
    s = score(truth_of(stops=truth, gaps=gaps), Predicted([], [], []))
    assert (s.stops_true, s.stops_hidden, s.stops_matched) == (1, 1, 0)
    assert "1 true stops hidden by signal outages" in s.report()
    found_anyway = score(truth_of(stops=truth, gaps=gaps), Predicted([], [T("a", "h", 1000, 1200)], []))
    assert (found_anyway.stops_true, found_anyway.stops_hidden, found_anyway.stops_matched) == (2, 0, 1)


def test_the_best_overlap_wins_a_contested_true_stop():
    matched, misses = match_stops([T("a", "h", 0, 300)], [T("a", "h", 0, 200), T("a", "h", 100, 300)])
    assert matched == 1
    assert [(m.start_ms // S, m.what) for m in misses] == [(100, "false")]


# --- modes --------------------------------------------------------------------------

def test_foot_vehicle_accuracy_is_time_weighted_outside_outages_without_true_stationary():
    truth = [T("a", "foot", 0, 100), T("a", "vehicle", 100, 200), T("a", "stationary", 200, 300)]
    pred = [T("a", "foot", 0, 90), T("a", "vehicle", 90, 150), T("a", "stationary", 160, 290)]
    gaps = [T("a", "gap", 150, 160)]   # the processor saw nothing here: not scored
    conf = mode_confusion(truth, pred, gaps)
    assert conf == {("foot", "foot"): 90.0, ("foot", "vehicle"): 10.0, ("vehicle", "vehicle"): 50.0,
                    ("vehicle", "stationary"): 40.0, ("stationary", "stationary"): 90.0,
                    ("stationary", "none"): 10.0}
    s = score(truth_of(modes=truth, gaps=gaps), Predicted([], [], pred))
    assert s.foot_vehicle_accuracy == pytest.approx(140 / 190)   # a waiting vehicle called stationary is wrong
    assert s.three_class_agreement == pytest.approx(230 / 290)


def test_time_without_any_predicted_mode_counts_as_wrong():
    s = score(truth_of(modes=[T("a", "vehicle", 0, 100)]), Predicted([], [], [T("a", "vehicle", 0, 50)]))
    assert s.foot_vehicle_accuracy == pytest.approx(0.5)


# --- pooling and acceptance -----------------------------------------------------------

def test_pooling_runs_equals_scoring_them_together():
    t1 = truth_of(visits=[V("a", "h", 0, 1000)], stops=[T("a", "h", 0, 200)], modes=[T("a", "foot", 0, 1000)],
                  episodes=[T("a", "patrol", 0, 1100)], hours=1.0)
    p1 = Predicted([V("a", "h", 0, 1100)], [T("a", "h", 0, 200)], [T("a", "foot", 0, 1000)])
    t2 = truth_of(visits=[V("b", "h", 0, 500)], stops=[T("b", "h", 0, 200)], modes=[T("b", "vehicle", 0, 500)],
                  episodes=[T("b", "drive_by", 500, 600)], hours=3.0)
    p2 = Predicted([V("b", "h", 0, 600)], [], [T("b", "foot", 0, 500)])
    both = score(truth_of(visits=t1.visits + t2.visits, stops=t1.stops + t2.stops, modes=t1.modes + t2.modes,
                          episodes=t1.episodes + t2.episodes, hours=4.0),
                 Predicted(p1.visits + p2.visits, p1.stops, p1.modes + p2.modes))
    pooled = pool([score(t1, p1), score(t2, p2)])
    assert pooled.summary() == pytest.approx(both.summary(), nan_ok=True)


def test_checks_apply_the_issue_targets():
    s = score(truth_of(visits=[V("a", "h", 0, 1000)], stops=[T("a", "h", 0, 200)], modes=[T("a", "foot", 0, 1000)],
                       episodes=[T("a", "patrol", 0, 1000), T("a", "edge_walk", 1000, 2000)], hours=10.0),
              Predicted([V("a", "h", 0, 1040), V("a", "h2", 1500, 1530)], [T("a", "h", 0, 200)],
                        [T("a", "foot", 0, 960), T("a", "vehicle", 960, 1000)]))
    assert s.dwell_median == pytest.approx(0.04) and s.dwell_p90 == pytest.approx(0.04)
    assert s.false_edges == pytest.approx(70 / 60)   # 40 s + 30 s in 10 device-hours
    assert s.stop_f1 == 1.0
    assert s.foot_vehicle_accuracy == pytest.approx(0.96)
    assert {c.name: c.passed for c in s.checks()} == {
        "dwell median relative error": True,
        "dwell p90 relative error": True,
        "false dwell, drive-bys + edge walks (min / 10 device-h)": False,
        "stop F1": True,
        "foot/vehicle right (share of time)": True,
    }


def test_report_names_the_worst_cases():
    s = score(truth_of(visits=[V("sim-007", "hs-003", 0, 1000)], episodes=[T("sim-007", "drive_by", 1000, 1100)]),
              Predicted([V("sim-007", "hs-003", 0, 700), V("sim-007", "hs-003", 1010, 1050)], [], []))
    text = s.report()
    assert "sim-007 hs-003 1000 740" in text
    assert "40 s (drive_by)" in text


# --- the file harness ------------------------------------------------------------------

def test_perfect_replay_output_scores_perfectly(tmp_path):
    """Truth rewritten as replay output must score zero error: the readers and the scoring agree."""
    sim = Simulation(SimConfig(seed=21, officers=3, hours=2)).run()
    write_simulation(sim, tmp_path / "sim")
    out = tmp_path / "replay"
    out.mkdir()

    def copy(src, dst, header, row):
        with open(tmp_path / "sim" / src, newline="") as fi, open(out / dst, "w", newline="") as fo:
            w = csv.writer(fo)
            w.writerow(header)
            for r in csv.DictReader(fi):
                w.writerow(row(r))

    copy("truth_visits.csv", "visits.csv", ["visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s"],
         lambda r: [r["visit_id"], r["device_id"], r["hotspot_id"], r["entered_at"], r["exited_at"], r["dwell_s"]])
    copy("truth_stops.csv", "stops.csv", ["stop_id", "device_id", "hotspot_id", "started_at", "ended_at"],
         lambda r: [r["stop_id"], r["device_id"], r["hotspot_id"], r["started_at"], r["ended_at"]])
    copy("truth_modes.csv", "modes.csv", ["device_id", "started_at", "ended_at", "mode"],
         lambda r: [r["device_id"], r["started_at"], r["ended_at"], r["mode"]])
    s = score_dirs(tmp_path / "sim", out)
    assert s.dwell_pairs >= 3 and s.dwell_median == 0.0 and s.dwell_p90 == 0.0
    assert s.false_min_per_10h() == 0.0
    assert s.stops_true > 0 and s.stop_f1 == 1.0
    assert s.foot_vehicle_accuracy == 1.0 and s.three_class_agreement == 1.0
    assert all(c.passed for c in s.checks())
    assert s.device_hours == pytest.approx(6.0)
