"""Directions' eligibility, weights and seeded draw (processors/direction.py, issue 14)."""
from __future__ import annotations

import random

import pytest

from processors import direction as d
from processors.direction import Candidate, Policy, Today

NOW = 1_714_550_000_000
POLICY = Policy(max_distance_m=3000, daily_cap=3, distance_scale_m=1000, default_target_minutes=15)

# Chi-square critical values at p = 0.001 (upper tail), from the standard table
# (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.4), by degrees of freedom.
CHI2_CRITICAL_P001 = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322}


def cand(i: str, *, target=None, **kw) -> Candidate:
    return Candidate(i, f"HS {i}", f"briefing {i}\nmore", 51.5, -0.1, target, **kw)


def near(*pairs):
    return [(cand(i, target=t), dist) for i, t, dist in pairs]


def test_weight_is_need_fraction_times_distance_factor():
    assert d.weight(15, 15, 0, 1000) == 1.0
    assert d.weight(7.5, 15, 0, 1000) == 0.5
    assert d.weight(15, 15, 1000, 1000) == 0.5
    assert d.weight(0, 15, 0, 1000) == 0.0


def test_eligibility_rules():
    pairs = near(("a", 15, 100), ("b", 15, 3500), ("c", 15, 200), ("d", 10, 300), ("e", 20, 400))
    today = Today(assignments={"c": 3}, minutes={"d": 10.0, "e": 5.0})
    opts = d.options(pairs, today, POLICY, NOW)
    # b too far, c at its cap, d has had its dose
    assert [o.candidate.id for o in opts] == ["a", "e"]
    e = opts[1]
    assert e.need_minutes == 15 and e.weight == pytest.approx(0.75 * 1000 / 1400)


def test_inactive_hot_spots_are_not_eligible_nor_listed():
    c = Candidate("x", "X", "", 51.5, -0.1, 15, active_from_ms=NOW + 1)
    assert d.options([(c, 10)], Today(), POLICY, NOW) == []
    assert not d.listed(c, Today(), NOW)
    assert d.listed(Candidate("x", "X", "", 51.5, -0.1, 15, active_to_ms=NOW + 1), Today(), NOW)


def test_during_a_trial_only_treated_hot_spots_are_offered_and_control_is_not_listed():
    pairs = near(("a", 15, 100), ("b", 15, 100), ("c", 15, 100))
    today = Today(arms={"a": "treatment", "b": "control"})
    assert [o.candidate.id for o in d.options(pairs, today, POLICY, NOW)] == ["a"]
    assert [c.id for c, _ in pairs if d.listed(c, today, NOW)] == ["a", "c"]


def test_control_hot_spots_are_never_offered_over_200_requests():
    rng = random.Random(5)
    pairs = [(cand(f"h{i:02d}"), rng.uniform(0, 2500)) for i in range(40)]
    arms = {c.id: ("treatment" if i % 2 else "control") for i, (c, _) in enumerate(pairs)}
    offered = set()
    for seed in range(200):
        choice = d.choose(pairs, Today(arms=arms, minutes={c.id: rng.uniform(0, 10) for c, _ in pairs}), POLICY,
                          NOW, seed)
        offered.add(choice.chosen.candidate.id)
        assert all(arms[i] == "treatment" for i in choice.eligible)
    assert offered and all(arms[i] == "treatment" for i in offered)
    assert len(offered) > 5  # the draw does spread over the treated ones


def test_not_the_hot_spot_just_assigned_unless_it_is_the_only_one():
    pairs = near(("a", 15, 100), ("b", 15, 100))
    for seed in range(50):
        assert d.choose(pairs, Today(last_assigned="a"), POLICY, NOW, seed).chosen.candidate.id == "b"
    only = near(("a", 15, 100))
    assert d.choose(only, Today(last_assigned="a"), POLICY, NOW, 1).chosen.candidate.id == "a"


def test_without_dosage_the_need_is_the_full_target():
    pairs = near(("a", 15, 0))
    opts = d.options(pairs, Today(minutes={"a": 15.0}, dosage_known=False), POLICY, NOW)
    assert opts[0].need_minutes == 15 and opts[0].weight == 1.0


def test_none_eligible():
    assert d.choose(near(("a", 15, 5000)), Today(), POLICY, NOW, 1) is None


def test_the_recorded_draw_reproduces_the_choice():
    pairs = near(("a", 15, 100), ("b", 15, 900), ("c", 15, 2000), ("d", 20, 50))
    for seed in (0, 1, 2**62, 987654321):
        choice = d.choose(pairs, Today(minutes={"b": 3.0}), POLICY, NOW, seed)
        assert choice.eligible[d.draw(choice.eligible, choice.weights, choice.seed)] == choice.chosen.candidate.id


def test_draws_follow_the_intended_weights_chi_square():
    """10,000 seeded draws against the weights: the chi-square statistic stays under its p=0.001 critical value."""
    pairs = near(("a", 15, 0), ("b", 15, 1000), ("c", 15, 3000), ("d", 20, 250), ("e", 10, 1500))
    today = Today(minutes={"a": 5.0, "d": 2.0, "e": 9.0})
    opts = d.options(pairs, today, POLICY, NOW)
    ids, weights = [o.candidate.id for o in opts], [o.weight for o in opts]
    assert len(ids) == 5
    n = 10_000
    counts = dict.fromkeys(ids, 0)
    for seed in range(n):
        counts[ids[d.draw(ids, weights, seed)]] += 1
    total = sum(weights)
    expected = {i: n * w / total for i, w in zip(ids, weights)}
    chi2 = sum((counts[i] - expected[i]) ** 2 / expected[i] for i in ids)
    assert chi2 < CHI2_CRITICAL_P001[len(ids) - 1], (chi2, counts, expected)
    # And it is sensitive: the same counts against uniform weights are far off.
    uniform = sum((counts[i] - n / len(ids)) ** 2 / (n / len(ids)) for i in ids)
    assert uniform > CHI2_CRITICAL_P001[len(ids) - 1]


def test_chi_square_table_matches_scipy_when_present():
    try:
        from scipy.stats import chi2
    except ImportError:
        return  # the table is the reference then
    for dof, value in CHI2_CRITICAL_P001.items():
        assert chi2.ppf(0.999, dof) == pytest.approx(value, abs=5e-3)


def test_arms_at_and_conflicting_schedules():
    day = {"starts_ms": NOW - 1000, "ends_ms": NOW + 1000, "day": "2024-05-01"}
    allocs = [{**day, "hotspot_id": "a", "arm": "treatment"}, {**day, "hotspot_id": "b", "arm": "control"},
              {**day, "hotspot_id": "c", "arm": "treatment"}, {**day, "hotspot_id": "c", "arm": "control"},
              {"starts_ms": NOW + 1000, "ends_ms": NOW + 2000, "day": "2024-05-02", "hotspot_id": "a", "arm": "control"}]
    assert d.arms_at(allocs, NOW) == {"a": "treatment", "b": "control", "c": "control"}
    assert d.trial_day_of(allocs, NOW) == "2024-05-01"
    assert d.arms_at(allocs, NOW + 5000) == {}


def test_candidates_from_records_and_bearing():
    rec = {"id": "hs-1", "name": "Market", "briefing": "Why", "target_minutes": 12.0, "active_from_ms": None,
           "active_to_ms": None, "stats_json": None,
           "geometry_geojson": '{"type":"Polygon","coordinates":[[[0,51],[0.002,51],[0.002,51.002],[0,51.002],[0,51]]]}'}
    bad = {**rec, "id": "hs-2", "geometry_geojson": "not json"}
    (c,) = d.candidates_from_records([rec, bad])
    assert c.lat == pytest.approx(51.001) and c.lon == pytest.approx(0.001)
    assert d.bearing_deg(51, 0, 51.01, 0) == pytest.approx(0, abs=1e-6)
    assert d.bearing_deg(51, 0, 51, 0.01) == pytest.approx(90, abs=0.01)
    assert d.distance_m(51, 0, 51.01, 0) == pytest.approx(1112, rel=0.01)


def test_the_vectorised_path_gives_the_same_eligible_set_weights_and_choice():
    """The gateway's numpy path (choose_vectorised) against the plain rule, on random towns and days."""
    import numpy as np

    rng = random.Random(11)
    for trial in range(60):
        n = rng.randint(1, 80)
        cands = [Candidate(f"h{i:03d}", f"H{i}", "", 51.5, -0.1, rng.choice([None, 0.0, 10.0, 15.0, 20.0]),
                           active_from_ms=rng.choice([None, NOW - 10, NOW + 10]),
                           active_to_ms=rng.choice([None, NOW + 10, NOW])) for i in range(n)]
        rng.shuffle(cands)
        dist = np.array([rng.uniform(0, 4000) for _ in cands])
        table = d.table_of(cands)
        order = {c.id: k for k, c in enumerate(cands)}
        tdist = np.array([dist[order[i]] for i in table.ids])
        ids = [c.id for c in cands]
        today = Today(arms={i: rng.choice(["treatment", "control"]) for i in ids} if trial % 3 else None,
                      assignments={i: rng.randint(0, 4) for i in ids if rng.random() < 0.3},
                      minutes={i: rng.uniform(0, 20) for i in ids if rng.random() < 0.5},
                      dosage_known=trial % 4 != 0, last_assigned=rng.choice(ids))
        seed = rng.randrange(2**63)
        plain = d.choose(list(zip(cands, dist.tolist())), today, POLICY, NOW, seed)
        fast = d.choose_vectorised(table, tdist, today, POLICY, NOW, seed)
        if plain is None:
            assert fast is None
            continue
        assert fast.eligible == plain.eligible and fast.weights == plain.weights  # to the last bit
        assert fast.chosen == plain.chosen
