"""Crash soak: the CI test's kill -9 scenario (tests/integration/test_pipeline.py) with
more kills and a chosen seed: kill -9 the worker at random moments while ~50,000 pings stream
in, then compare the tables with `hotspot replay` of the same pings. Prints what differs.

    .venv/bin/python bench/crash_soak.py [--kills 4] [--seed 2026] [--keep DIR]

Runs its own broker on free ports in a temporary directory; takes a few minutes.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.conftest import Broker  # noqa: E402
from tests.integration.live import LiveSystem, replay, simulate  # noqa: E402
from tests.integration.test_pipeline import (  # noqa: E402
    NO_SILENCE, _accounted, _line_count, assert_live_equals_replay, live_tables, run_with_kills)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--rate", type=int, default=2000, help="pings per second sent")
    ap.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="crash-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    sim = simulate(root / "sim", officers=45, hours=3, seed=31, ago_h=3.2)
    total = _line_count(sim / "pings.csv")
    expected = replay(sim, root / "replay", NO_SILENCE)
    broker = Broker(root / "kafka")
    broker.start()
    live = LiveSystem(root / "var", broker, NO_SILENCE)
    rng = random.Random(args.seed)
    t0 = time.monotonic()
    try:
        live.hotspot("hotspots", "publish", str(sim / "hotspots.geojson"))
        live.start_worker()
        restarts = run_with_kills(live, sim, total, args.kills, rng, rate=args.rate)
        print(f"{total} pings, {args.kills} kills, restart-to-ready {min(restarts):.1f}-{max(restarts):.1f}s, "
              f"accounted {_accounted(live)}, {time.monotonic() - t0:.0f}s in all")
        try:
            assert_live_equals_replay(live_tables(live), expected)
            print("tables equal replay: yes")
            return 0
        except AssertionError as exc:
            print(f"tables equal replay: NO\n{exc}")
            return 1
    finally:
        live.stop_worker()
        broker.stop()
        print(f"work directory: {root}")


if __name__ == "__main__":
    sys.exit(main())
