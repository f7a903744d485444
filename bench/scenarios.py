"""Issue 3 acceptance figures over many seeded scenarios.

For each scenario and seed: simulate a day (simulation.simulate), write it,
run `hotspot replay` on it through its command line, and score the output
against the simulator's truth (simulation.scoring). Prints one row per run,
then the figures pooled over the seeds with the targets they must meet:
dwell and stops on the scenarios where officers patrol (mixed, patrols), false
dwell on edges_15m (only drive-bys and edge walks 10-25 m outside, 15 m
accuracy), foot/vehicle on all.

    .venv/bin/python bench/scenarios.py                       # 10 seeds x 3 scenarios, 8 officers x 8 h
    .venv/bin/python bench/scenarios.py --seeds 3 --hours 4 --report
    .venv/bin/python bench/scenarios.py --scenarios edges_15m --keep /tmp/runs
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from simulation.scoring import Scores, pool  # noqa: E402
from simulation.config import SCENARIOS, scenario_config  # noqa: E402
from simulation.simulate import Simulation  # noqa: E402
from simulation.files import run_replay, score_dirs, write_simulation  # noqa: E402

# Which acceptance checks each scenario is meant to exercise.
APPLIES = {
    "mixed": {"dwell median relative error", "dwell p90 relative error", "stop F1", "foot/vehicle right (share of time)"},
    "patrols": {"dwell median relative error", "dwell p90 relative error", "stop F1", "foot/vehicle right (share of time)"},
    "edges_15m": {"false dwell, drive-bys + edge walks (min / 10 device-h)", "foot/vehicle right (share of time)"},
}


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v * 100:.1f}%" if pct else f"{v:.3f}"


def run_one(name: str, seed: int, officers: int, hours: float, work: Path) -> tuple[Scores, int, float, float]:
    t0 = time.perf_counter()
    sim = Simulation(scenario_config(name, seed=seed, officers=officers, hours=hours))
    counts = write_simulation(sim, work / "sim")
    t1 = time.perf_counter()
    run_replay(work / "sim", work / "replay")
    t2 = time.perf_counter()
    return score_dirs(work / "sim", work / "replay"), counts["pings.csv"], t1 - t0, t2 - t1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10, help="seeds per scenario (default 10)")
    ap.add_argument("--first-seed", type=int, default=1000, help="first seed (default 1000)")
    ap.add_argument("--officers", type=int, default=8, help="officers per run (default 8)")
    ap.add_argument("--hours", type=float, default=8.0, help="shift hours per run (default 8)")
    ap.add_argument("--scenarios", default="mixed,patrols,edges_15m", help="comma-separated (default all)")
    ap.add_argument("--keep", type=Path, help="keep the simulated days and replay outputs here")
    ap.add_argument("--report", action="store_true", help="print the worst cases behind each pooled figure")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")

    tmp = None
    root = args.keep
    if root is None:
        tmp = tempfile.TemporaryDirectory(prefix="hotspot-scenarios-")
        root = Path(tmp.name)
    print(f"{'scenario':<10} {'seed':>5} {'pings':>7} {'dev-h':>6} {'pairs':>5} {'dwell med':>9} {'dwell p90':>9} "
          f"{'false e.':>8} {'stopF1':>6} {'foot/veh':>8} {'sim s':>6} {'replay s':>8}")
    all_ok = True
    summaries = []
    for name in names:
        runs = []
        for k in range(args.seeds):
            seed = args.first_seed + k
            s, n_pings, t_sim, t_rep = run_one(name, seed, args.officers, args.hours, root / f"{name}-{seed}")
            runs.append(s)
            print(f"{name:<10} {seed:>5} {n_pings:>7} {s.device_hours:>6.0f} {s.dwell_pairs:>5} "
                  f"{_fmt(s.dwell_median, True):>9} {_fmt(s.dwell_p90, True):>9} {s.false_edges:>8.2f} "
                  f"{_fmt(s.stop_f1):>6} {_fmt(s.foot_vehicle_accuracy, True):>8} {t_sim:>6.1f} {t_rep:>8.1f}",
                  flush=True)
        summaries.append((name, pool(runs), runs))
    print()
    for name, p, runs in summaries:
        p90s = [r.dwell_p90 for r in runs if not math.isnan(r.dwell_p90)]
        print(f"== {name}: {len(runs)} seeds pooled, {p.device_hours:.0f} device-hours, {p.dwell_pairs} pairs, "
              f"{p.stops_true} true stops")
        for c in p.checks():
            if c.name not in APPLIES.get(name, set()):
                continue
            all_ok &= bool(c.passed)
            value = _fmt(c.value, pct="%" in c.target)
            print(f"   {'PASS' if c.passed else 'FAIL'}  {c.name}: {value} (target {c.target})")
        seeds_failing = {c.name: sum(1 for r in runs for rc in r.checks() if rc.name == c.name and not rc.passed)
                         for c in p.checks() if c.name in APPLIES.get(name, set())}
        print("   seeds failing per check: " + ", ".join(f"{k}: {v}/{len(runs)}" for k, v in seeds_failing.items()))
        print(f"   also: dwell bias {_fmt(p.dwell_bias, True)}, false dwell all kinds "
              f"{p.false_min_per_10h():.2f} min/10 device-h, stop precision {_fmt(p.stop_precision)} "
              f"recall {_fmt(p.stop_recall)}, 3-class mode agreement {_fmt(p.three_class_agreement, True)}; "
              f"worst seed's dwell p90 {_fmt(max(p90s) if p90s else math.nan, True)}")
        if args.report:
            print("   " + p.report(max_rows=8).replace("\n", "\n   "))
    if tmp is not None:
        tmp.cleanup()
    print("\nall applicable targets met" if all_ok else "\nsome targets missed (see FAIL lines)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
