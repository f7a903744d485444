"""Fixtures shared by every test folder."""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOTSPOT = str(Path(sys.executable).with_name("hotspot"))

# Retention for stores that tests fill with rows of fixed past dates (2023, 2024): the default TTLs
# (sinks/retention.py) would drop such rows as they are inserted, which is what retention is for and
# what tests/integration/test_retention.py checks, not what a test of the tables or views is about.
KEEP_FIXED_DATES = {setting: 3_650 for setting in ("visits_ttl_days", "stops_ttl_days", "mode_segments_ttl_days",
                                                   "assignments_ttl_days", "activity_ttl_days", "audit_ttl_days",
                                                   "crimes_ttl_days")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cli_env(tmp_path):
    """Environment for a `hotspot` subprocess with its own data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env["HOTSPOT_DATA_DIR"] = str(tmp_path / "var")
    return env


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.05):
    """Poll `predicate` until it returns something truthy (returned); fail naming `what` at the deadline.

    The one way tests wait: on a condition, never for a fixed time.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)  # the poll interval of a wait bounded by the deadline
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last: {last!r})")


def running(pid: int | None) -> bool:
    """True while `pid` is a live (not zombie) process."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
