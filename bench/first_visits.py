"""The first minutes of `hotspot run --simulate N` as a new user sees them, twice on the same data directory.

For each run: seconds from start to `ready`, from `ready` to the first visit of this run's officers in
`hotspot sql`, the lateness (received_at - ts) of the pings stamped after `ready` (the backlog of the
ten minutes before is sent at once, like phones catching up, and is late by design) and the
`late` / `implied_speed` rejections of this run's devices in its first WINDOW seconds. Runs on a temporary
data directory and free ports, so it never touches ./var or a running system.

    .venv/bin/python bench/first_visits.py [--officers 20] [--window 120]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import HOTSPOT, free_port  # noqa: E402


def sql(env, query: str) -> list[list[str]]:
    proc = subprocess.run([HOTSPOT, "sql", "--format", "csv", query], capture_output=True, text=True, env=env,
                          timeout=60)
    return [line.split(",") for line in proc.stdout.splitlines()[1:]] if proc.returncode == 0 else []


def one_run(env, data_dir: Path, officers: int, window_s: float) -> dict:
    log = data_dir / "logs" / "simulation.log"
    before = log.stat().st_size if log.exists() else 0  # the log is appended to, run after run
    t0 = time.monotonic()
    proc = subprocess.Popen([HOTSPOT, "run", "--simulate", str(officers), "--no-gateway"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("ready in"):
                break
        ready = time.monotonic()
        ready_wall_ms = int(time.time() * 1000)
        prefix = None
        first_visit = None
        while time.monotonic() - ready < window_s:
            if prefix is None and log.exists():
                m = re.search(r"ids of this run: (sim-\d{6})-NNN", log.read_bytes()[before:].decode())
                prefix = m.group(1) if m else None
            if prefix and first_visit is None:
                rows = sql(env, f"SELECT count() FROM hotspot.visits_current WHERE startsWith(device_id, '{prefix}-')")
                if rows and int(rows[0][0]) > 0:
                    first_visit = time.monotonic() - ready
            time.sleep(0.5)  # polling cadence of the measurement
        where = f"startsWith(device_id, '{prefix}-')"
        late = sql(env, "SELECT quantiles(0.5, 0.9)(toUnixTimestamp64Milli(received_at) - toUnixTimestamp64Milli(ts)) "
                        f"FROM hotspot.pings WHERE {where} AND toUnixTimestamp64Milli(ts) > {ready_wall_ms}")
        rejected = sql(env, f"SELECT reason, count() FROM hotspot.pings_rejected FINAL WHERE {where} "
                            "AND reason IN ('late', 'implied_speed') GROUP BY reason")
        pings = sql(env, f"SELECT count() FROM hotspot.pings WHERE {where}")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        if not pings or not int(pings[0][0]):
            for name in ("simulation", "worker"):
                path = data_dir / "logs" / f"{name}.log"
                print(f"--- no pings of this run: end of {path}\n"
                      + (path.read_text(errors="replace")[-2000:] if path.exists() else "(none)"), flush=True)
        return {"prefix": prefix, "ready_s": round(ready - t0, 1),
                "first_visit_after_ready_s": None if first_visit is None else round(first_visit, 1),
                "lateness_ms_p50_p90_of_pings_stamped_after_ready": late[0] if late else None,
                "rejected_late_or_implied_speed": {r: int(n) for r, n in rejected},
                "pings_accepted": int(pings[0][0]) if pings else 0}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--officers", type=int, default=20)
    ap.add_argument("--window", type=float, default=120.0, help="seconds after ready to watch each run")
    ap.add_argument("--keep", metavar="DIR", help="use (and keep) this directory instead of a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.keep or tmp) / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
        env.update(HOTSPOT_DATA_DIR=str(data_dir), HOTSPOT_KAFKA_PORT=str(free_port()),
                   HOTSPOT_KAFKA_CONTROLLER_PORT=str(free_port()), HOTSPOT_WORKER_METRICS_PORT="0")
        try:
            for n in (1, 2):
                print(f"run {n}: {one_run(env, data_dir, args.officers, args.window)}", flush=True)
        finally:
            subprocess.run([HOTSPOT, "broker", "stop"], env=env, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
