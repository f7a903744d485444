"""A restarted `hotspot run` keeps its simulated data: the new run's officers are devices of its own.

Before, a second run re-planned the same device ids "ten minutes ago", behind the state the first run had
left, and the worker rejected its first minutes as `late` or `implied_speed`. The simulator also plans a few
faults of its own (late deliveries, wild outliers); the second run may have those rejected, and nothing more.
"""
from __future__ import annotations

import asyncio
import re
import signal
import subprocess

import numpy as np
import pytest

from core.feeds import read_all
from simulation.live import plan, published_features
from tests.conftest import HOTSPOT, free_port, wait_until
from tests.integration.test_run import _sql, read_until

pytestmark = pytest.mark.integration

OFFICERS = 3


def _run_until_pings(env, data_dir, min_pings: int) -> tuple[str, list[str]]:
    """One `hotspot run --simulate`, stopped with Ctrl-C once its officers have `min_pings` accepted pings;
    returns its device-id prefix (from the simulation's log) and what its officers' pings were rejected for."""
    log = data_dir / "logs" / "simulation.log"
    before = log.stat().st_size if log.exists() else 0  # the log is appended to, run after run
    proc = subprocess.Popen([HOTSPOT, "run", "--simulate", str(OFFICERS), "--no-gateway"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        read_until(proc, "ready in", 240)
        prefix = wait_until(lambda: log.exists() and re.search(r"ids of this run: (sim-\d{6})-NNN",
                                                               log.read_bytes()[before:].decode()),
                            120, "the simulation to name its devices").group(1)
        wait_until(lambda: int((_sql(env, f"SELECT count() FROM hotspot.pings WHERE startsWith(device_id, "
                                          f"'{prefix}-')") or ["0"])[0]) >= min_pings,
                   180, f"{min_pings} accepted pings of {prefix}", interval_s=0.5)
        reasons = _sql(env, f"SELECT reason FROM hotspot.pings_rejected FINAL WHERE startsWith(device_id, '{prefix}-') "
                            f"AND reason IN ('late', 'implied_speed')")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        return prefix, reasons
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_run_has_no_late_or_teleport_rejections_beyond_the_simulators_own_faults(tmp_path, cli_env):
    env = {**cli_env, "HOTSPOT_KAFKA_PORT": str(free_port()), "HOTSPOT_KAFKA_CONTROLLER_PORT": str(free_port()),
           "HOTSPOT_WORKER_METRICS_PORT": "0"}
    data_dir = tmp_path / "var"
    try:
        first, _ = _run_until_pings(env, data_dir, 50)
        # the second run begins while the first run's devices' state is seconds old
        second, reasons = _run_until_pings(env, data_dir, 150)
        assert first != second
        # what the simulator itself planned as faults for the second run's devices, over its whole backlog
        # and the seconds after it: an upper bound for honest rejections
        subprocess.run([HOTSPOT, "broker", "start"], env=env, capture_output=True, timeout=180, check=True)
        features = published_features(asyncio.run(read_all(f"127.0.0.1:{env['HOTSPOT_KAFKA_PORT']}")))
        table = plan(OFFICERS, 1, 12.0, 0, features, device_prefix=second).ping_table()
        early = table.delivered_ms <= (600 + 300) * 1000  # backlog + five minutes
        planned_faults = int(np.sum((table.late | (table.outlier > 0)) & early))
        assert len(reasons) <= planned_faults, (reasons, planned_faults)
    finally:
        subprocess.run([HOTSPOT, "broker", "stop"], env=env, capture_output=True, timeout=120)
