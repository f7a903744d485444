"""Invariants of the analytics over random tracks (hypothesis).

Tracks wander among three hot spots (two overlapping) with random intervals
(including silences past signal loss), accuracies (including useless ones),
device speeds, wild outliers and retransmitted duplicates. Randomness comes
from a drawn seed, so a failing example is reproducible from its seed.
"""
from __future__ import annotations

import dataclasses
import random
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from processors.batch import expire, finish, process_batch
from processors.device import DeviceState
from processors.model import LATE, ModeSegment, StopEnded, VisitEnded, VisitStarted
from tests.unit.tracks import CFG, H, index, ping, square

IDX = index(H, square("G", 100, 0, 150), square("K", 400, 400, 40))
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _device_track(rng: random.Random, device: str, n: int, clock_faults: bool = False) -> list:
    """With `clock_faults`: now and then a row two days ahead, and on some devices the clock set back
    an hour (or forward, within the live tolerance: ten minutes) from a random fix on."""
    out = []
    shift_at = rng.randrange(n) if clock_faults and rng.random() < 0.3 else n
    shift_s = rng.choice([-3600.0, 600.0])
    t = rng.uniform(0, 30)
    x, y = rng.uniform(-50, 450), rng.uniform(-50, 450)
    vx = vy = 0.0
    speed = 0.0
    for k in range(n):
        dt = rng.choice([1, 5, 5, 10, 10, 10, 30, 60, 61, 200, 400])
        t += dt
        if rng.random() < 0.2:
            speed = rng.choice([0.0, 0.0, 1.4, 1.4, 3.5, 12.0])
            vx, vy = rng.uniform(-1, 1), rng.uniform(-1, 1)
        x = min(450.0, max(-50.0, x + vx * speed * dt))
        y = min(450.0, max(-50.0, y + vy * speed * dt))
        acc = rng.choice([None, 3.0, 8.0, 15.0, 30.0, 150.0])
        px, py = (x + rng.uniform(-3000, 3000), y) if rng.random() < 0.02 else (x, y)
        t_clock = t + (shift_s if k >= shift_at else 0.0)
        p = ping(round(t_clock, 3), px, py, acc_m=acc, speed_mps=rng.choice([None, speed]), device=device)
        out.append(p)
        if clock_faults and rng.random() < 0.02:
            out.append(ping(round(t + 2 * 86400, 3), px, py, acc_m=acc, device=device))
        if rng.random() < 0.03:
            out.append(p)              # retransmitted
    return out


def _world(seed: int, devices: int, n: int, clock_faults: bool = False) -> dict[str, list]:
    rng = random.Random(seed)
    return {f"d{k}": _device_track(rng, f"d{k}", n, clock_faults) for k in range(devices)}


def _interleave(tracks: dict[str, list], rng: random.Random) -> list:
    """One arrival order: each device's pings in their own order, devices mixed at random."""
    queues = {d: list(p) for d, p in tracks.items()}
    out = []
    while queues:
        d = rng.choice(sorted(queues))
        out.append(queues[d].pop(0))
        if not queues[d]:
            del queues[d]
    return out


def _run_batches(pings: list, cuts: list[int], states=None):
    states = dict(states or {})
    events, rejected, accepted = [], [], []
    bounds = [0, *sorted(cuts), len(pings)]
    for a, b in zip(bounds, bounds[1:]):
        r = process_batch(states, pings[a:b], IDX, CFG)
        states.update(r.states)
        events += r.events
        rejected += r.rejected
        accepted += r.accepted
    r = finish(states, IDX, CFG)
    states.update(r.states)
    return states, events + r.events, rejected + r.rejected, accepted + r.accepted


def _by_device(events) -> dict[str, list]:
    out = defaultdict(list)
    for e in events:
        out[e.device_id].append(e)
    return dict(out)


worlds = st.builds(_world, st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(2, 80))
# Gaps past time_jump_s and signal loss are in every world; these add rows two days ahead and clocks set back.
faulty_worlds = st.builds(_world, st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(2, 80), st.just(True))


@PROPS
@given(worlds, st.randoms(use_true_random=False))
def test_visits_are_consistent_with_their_fixes(tracks, rng):
    states, events, rejected, accepted = _run_batches(_interleave(tracks, rng), [])
    fixes = defaultdict(list)
    for a in accepted:
        fixes[a.ping.device_id].append(a.ping.ts_ms)
    for v in fixes.values():
        assert v == sorted(v)                       # accepted in event-time order per device
    started = {e.visit_id for e in events if isinstance(e, VisitStarted)}
    # A visit closed by signal loss and resumed (a bridged silence) ends twice: the later row replaces
    # the earlier one (same visit id), as in ClickHouse. Only signal loss is ever replaced.
    last = {}
    for e in events:
        if isinstance(e, VisitEnded):
            if e.visit_id in last:
                assert last[e.visit_id].end_reason == "signal_lost" and last[e.visit_id].exited_ms < e.exited_ms
            last[e.visit_id] = e
    ended = list(last.values())
    assert started == set(last)                    # open visits never vanish, none ends unannounced
    for v in ended:
        assert v.observed_s + v.inferred_s == pytest.approx(v.dwell_s, abs=2e-3) and v.inferred_s >= 0
    per_pair = defaultdict(list)
    for v in ended:
        per_pair[(v.device_id, v.hotspot_id)].append(v)
        span_s = (v.exited_ms - v.entered_ms) / 1000
        assert 0 <= span_s <= v.dwell_s <= span_s + 2 * CFG.edge_credit_max_s + 1e-9
        ts = fixes[v.device_id]
        before = max((t for t in ts if t < v.entered_ms), default=v.entered_ms)
        after = min((t for t in ts if t > v.exited_ms), default=v.exited_ms)
        assert v.dwell_s <= (after - before) / 1000 + 1e-9   # never more than the span of its fixes
        assert v.foot_s + v.vehicle_s + v.stationary_s <= v.dwell_s + 1e-6
        assert v.ping_count >= 1 and v.end_reason in ("exit", "signal_lost", "end_of_data")
    for visits in per_pair.values():
        visits.sort(key=lambda v: v.entered_ms)
        for a, b in zip(visits, visits[1:]):
            assert a.exited_ms < b.entered_ms          # visits of one device in one hot spot never overlap
    for stop in (e for e in events if isinstance(e, StopEnded)):
        assert any(v.entered_ms <= stop.started_ms <= stop.ended_ms <= v.exited_ms
                   for v in per_pair[(stop.device_id, stop.hotspot_id)])
        # First to last fix; the stay it stands for also takes the unseen part of the interval on each
        # side (at most what its fixes span, or edge_credit_max_s if more), so the fixes alone may span
        # that much less than the minimum.
        seen_s = (stop.ended_ms - stop.started_ms) / 1000
        assert seen_s + 2 * max(seen_s, CFG.edge_credit_max_s) >= CFG.stop_min_duration_s or \
            any(v.exited_ms == stop.ended_ms for v in per_pair[(stop.device_id, stop.hotspot_id)])
    for device, evs in _by_device(e for e in events if isinstance(e, ModeSegment)).items():
        for a, b in zip(evs, evs[1:]):
            assert a.started_ms < a.ended_ms == b.started_ms   # contiguous, one mode at a time


@PROPS
@given(faulty_worlds, st.randoms(use_true_random=False), st.lists(st.integers(0, 400), max_size=6))
# A clock set back an hour onto a fix time the device had passed: one batch of the whole file held the
# old fix still, and called the new one its duplicate; cut at 32, the old one was released and forgotten.
@example(tracks=_world(1101025, 1, 64, True), rng=random.Random(0), cuts=[32])
def test_batch_boundaries_change_nothing(tracks, rng, cuts):
    pings = _interleave(tracks, rng)
    cuts = [c for c in cuts if c <= len(pings)]
    one = _run_batches(pings, [])
    many = _run_batches(pings, cuts)
    assert _by_device(many[1]) == _by_device(one[1])
    assert {d: s.to_bytes() for d, s in many[0].items()} == {d: s.to_bytes() for d, s in one[0].items()}
    assert sorted((p.device_id, p.ts_ms, r) for p, r in many[2]) == sorted((p.device_id, p.ts_ms, r) for p, r in one[2])


@PROPS
@given(worlds, st.randoms(use_true_random=False), st.randoms(use_true_random=False))
def test_device_interleaving_changes_nothing(tracks, rng1, rng2):
    a = _run_batches(_interleave(tracks, rng1), [17, 50])
    b = _run_batches(_interleave(tracks, rng2), [33])
    assert _by_device(a[1]) == _by_device(b[1])


@PROPS
@given(worlds, st.randoms(use_true_random=False))
def test_shuffling_within_the_reorder_window_changes_nothing(tracks, rng):
    window_ms = CFG.reorder_window_s * 1000
    in_order = {d: sorted(p, key=lambda q: q.ts_ms) for d, p in tracks.items()}
    # Each ping arrives up to just under a window late: nothing can overtake it by more than the window.
    shuffled = {d: [q for _, _, q in sorted((q.ts_ms + rng.uniform(0, window_ms - 1), k, q) for k, q in enumerate(p))]
                for d, p in in_order.items()}
    a = _run_batches(_interleave(in_order, rng), [])
    b = _run_batches(_interleave(shuffled, rng), [25])
    assert _by_device(b[1]) == _by_device(a[1])
    assert all(reason != LATE for _, reason in b[2])


@PROPS
@given(faulty_worlds, st.randoms(use_true_random=False), st.integers(0, 400))
def test_resuming_from_serialised_state_mid_stream_changes_nothing(tracks, rng, cut):
    pings = _interleave(tracks, rng)
    cut = min(cut, len(pings))
    whole = _run_batches(pings, [])
    first = process_batch({}, pings[:cut], IDX, CFG)
    blobs = {d: s.to_bytes() for d, s in first.states.items()}
    restored = {d: DeviceState.from_bytes(b) for d, b in blobs.items()}
    assert {d: s.to_bytes() for d, s in restored.items()} == blobs
    rest = _run_batches(pings[cut:], [], restored)
    assert _by_device(first.events + rest[1]) == _by_device(whole[1])


# --------------------------------------------------------------------------- live pings: arrival times and the hold

NO_LOSS = CFG.replace(signal_loss_s=1e7)  # expire judges silence on its own clock; here only the hold is at issue


def _arrivals(tracks: dict[str, list], rng: random.Random) -> list:
    """Stamp each ping with an arrival time (network delay 0.05-2 s, now and then 20 s) and merge in arrival order.

    Delays overtake pings of one device by up to a couple of seconds: more than the
    hold for some, less for others.
    """
    stamped = []
    for pings in tracks.values():
        for q in pings:
            delay_s = rng.choice([0.05, 0.1, 0.3, 0.6, 1.0, 2.0]) if rng.random() > 0.02 else 20.0
            stamped.append(dataclasses.replace(q, received_ms=q.ts_ms + int(delay_s * 1000)))
    stamped.sort(key=lambda q: q.received_ms)
    return stamped


def _run_live(pings: list, cuts: list[int], cfg, timer: bool):
    """Batches cut at `cuts`; with `timer`, the live timer runs between batches on the arrival clock
    of the next ping to come (nothing older is still unread, as when the worker has read its partitions)."""
    states, events, rejected = {}, [], []
    bounds = [0, *sorted(set(cuts)), len(pings)]
    for a, b in zip(bounds, bounds[1:]):
        r = process_batch(states, pings[a:b], IDX, cfg)
        states.update(r.states)
        events += r.events
        rejected += r.rejected
        if timer and b < len(pings):
            clock = pings[b].received_ms
            r = expire(states, clock, IDX, cfg)
            states.update(r.states)
            events += r.events
            rejected += r.rejected
            hold_ms = cfg.reorder_hold_s * 1000
            assert all(q.received_ms > clock - hold_ms for s in states.values() for q in s.buffer), \
                "a ping was held past the hold"
    r = finish(states, IDX, cfg)
    return _by_device(events + r.events), sorted((p.device_id, p.ts_ms, why) for p, why in rejected + r.rejected)


@PROPS
@given(worlds, st.randoms(use_true_random=False), st.lists(st.integers(0, 400), max_size=8))
def test_with_arrival_times_batch_boundaries_change_nothing(tracks, rng, cuts):
    pings = _arrivals(tracks, rng)
    cuts = [c for c in cuts if c <= len(pings)]
    assert _run_live(pings, cuts, CFG, timer=False) == _run_live(pings, [], CFG, timer=False)


@PROPS
@given(worlds, st.randoms(use_true_random=False), st.lists(st.integers(0, 400), min_size=1, max_size=12))
def test_the_live_timer_changes_nothing_when_it_runs_on_the_clock_of_what_is_unread(tracks, rng, cuts):
    pings = _arrivals(tracks, rng)
    cuts = [c for c in cuts if c <= len(pings)]
    assert _run_live(pings, cuts, NO_LOSS, timer=True) == _run_live(pings, [], NO_LOSS, timer=False)
