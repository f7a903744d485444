"""Crash soak: the CI test's kill -9 scenario (tests/integration/test_pipeline.py) with
more kills, more runs, a chosen seed and, if asked, every core kept busy: kill -9 the worker
at random moments while ~50,000 pings stream in, then compare the tables with `hotspot replay`
of the same pings as Kafka received them. Prints what differs.

    .venv/bin/python bench/crash_soak.py [--kills 4] [--seed 2026] [--runs 1] [--busy N] [--keep DIR]

`--busy N` runs N busy loops (bench/contention.py) for the whole soak: the load under which
the worker once judged two pings late that replay accepted. Each run has its own broker on
free ports in a temporary directory and a seed of its own (seed, seed+1, ...); a run takes a
few minutes, more under load. Exits non-zero if any run lost, doubled or differed.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.contention import _spin  # noqa: E402
from tests.integration.conftest import Broker  # noqa: E402
from tests.integration.live import LiveSystem, simulate  # noqa: E402
from tests.integration.test_pipeline import (  # noqa: E402
    NO_SILENCE, _accounted, _line_count, as_arrived, assert_live_equals_replay, live_tables, run_with_kills)


def soak(root: Path, sim: Path, kills: int, seed: int, rate: int) -> tuple[bool, str]:
    total = _line_count(sim / "pings.csv")
    broker = Broker(root / "kafka")
    broker.start()
    live = LiveSystem(root / "var", broker, NO_SILENCE)
    t0 = time.monotonic()
    try:
        live.hotspot("hotspots", "publish", str(sim / "hotspots.geojson"))
        live.start_worker()
        restarts = run_with_kills(live, sim, total, kills, random.Random(seed), rate=rate)
        expected = as_arrived(live, sim, root, total)
        accounted = _accounted(live)
        stored = int(live.scalar("SELECT count() FROM hotspot.pings FINAL"))
        rows = int(live.scalar("SELECT count() FROM hotspot.pings"))
        want = total - len(expected["rejected"])
        line = (f"seed {seed}: {total} pings, {kills} kills, restart-to-ready {min(restarts):.1f}-{max(restarts):.1f}s, "
                f"accounted {accounted}, stored {stored} of {want} expected (lost {max(0, want - stored)}, "
                f"doubled {max(0, stored - want)}; {rows - stored} repeated inserts collapsed), "
                f"{time.monotonic() - t0:.0f}s, load average {os.getloadavg()[0]:.1f}")
        try:
            assert accounted == total and stored == want
            assert_live_equals_replay(live_tables(live), expected)
            return True, line + "; tables equal replay: yes"
        except AssertionError as exc:
            return False, line + f"; tables equal replay: NO\n{exc}"
    finally:
        live.stop_worker()
        broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--busy", type=int, default=0, help="busy loops kept running meanwhile (0: none)")
    ap.add_argument("--rate", type=int, default=2000, help="pings per second sent")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="crash-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    loops = [mp.Process(target=_spin, args=(os.getpid(),), daemon=True) for _ in range(args.busy)]
    for p in loops:
        p.start()
    failed = 0
    try:
        sim = simulate(root / "sim", officers=45, hours=3, seed=31, ago_h=3.2)
        for run in range(args.runs):
            ok, line = soak(root / f"run-{run}", sim, args.kills, args.seed + run, args.rate)
            failed += not ok
            print(f"run {run + 1}/{args.runs} {line}", flush=True)
    finally:
        for p in loops:
            p.terminate()
        print(f"{args.runs - failed} of {args.runs} runs equal to replay, none lost or doubled"
              if not failed else f"{failed} of {args.runs} runs FAILED", flush=True)
        print(f"work directory: {root}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
