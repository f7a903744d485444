"""The live simulation's clock: planned first, then stamped and sent in real time; each run's own device ids."""
from __future__ import annotations

from simulation.live import LiveSchedule, plan, run_prefix

HOUR_MS = 3_600_000


def test_officers_planned_one_at_a_time_send_exactly_the_pings_of_the_whole_plan():
    whole = plan(3, 5, 0.2, 1_749_711_600_000)
    lazy = plan(3, 5, 0.2, 1_749_711_600_000, eager=False)
    for i, device in enumerate(whole.device_ids):
        assert lazy.officer_pings(i) == [p for p in whole.pings() if p.device_id == device]


def test_the_clock_read_after_planning_stamps_the_first_live_ping_at_or_after_it():
    backlog_s = 600.0
    sim = plan(2, 3, 0.5, 1_000_000_000_000 - int(backlog_s * 1000), eager=False)
    pings = sim.officer_pings(0) + sim.officer_pings(1)
    # planning took 75 s: the clock is read after it, so the plan's "now" is the moment sending starts
    clock_ms = 1_000_000_000_000 + 75_000
    schedule = LiveSchedule(sim.config.start_ms, backlog_s, clock_ms)
    backlog = [p for p in pings if p.delivered_ms <= sim.config.start_ms + backlog_s * 1000]
    live = [p for p in pings if p.delivered_ms > sim.config.start_ms + backlog_s * 1000]
    assert backlog and live
    # the shift already past goes at once, stamped up to its real age (never from the future) ...
    assert all(schedule.due_ms(p.delivered_ms) == clock_ms for p in backlog)
    assert all(clock_ms - backlog_s * 1000 <= schedule.stamp_ms(p.ts_ms) <= clock_ms for p in backlog)
    # ... and from then on each ping is due when its phone delivers it, late only by the phone's own delay,
    # whatever the planning took
    first = min(live, key=lambda p: p.delivered_ms)
    assert schedule.due_ms(first.delivered_ms) >= clock_ms
    assert all(schedule.due_ms(p.delivered_ms) - schedule.stamp_ms(p.ts_ms) == p.delivered_ms - p.ts_ms
               for p in live)


def test_each_run_has_device_ids_of_its_own():
    first, second = run_prefix(1_764_770_400_000), run_prefix(1_764_770_400_000 + 9_000)  # restarted 9 s later
    assert (first, second) == ("sim-140000", "sim-140009")
    assert plan(2, 1, 0.1, 0, device_prefix=second, eager=False).device_ids == ("sim-140009-001", "sim-140009-002")
    assert plan(2, 1, 0.1, 0, eager=False).device_ids == ("sim-001", "sim-002")
