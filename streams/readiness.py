"""The worker's readiness signal: a file that says "this worker takes pings now", instead of a log line.

A worker is ready once it owns its store (migrations applied, `hotspot sql`
answered) and has read the hot-spot topic to its end, so no ping is judged
against an empty set. It then writes `<data_dir>/run/worker-<pid>.ready`
(private to its user) and removes it when it stops. `hotspot run` and the
integration tests wait for that file for the pid they started; several
workers on one data directory each have their own.

A killed worker leaves its file behind: readers check that the pid named is
the one they started and is alive, never the file alone.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from core.datadir import write_private


def ready_path(data_dir: str | os.PathLike[str], pid: int | None = None) -> Path:
    return Path(data_dir) / "run" / f"worker-{os.getpid() if pid is None else pid}.ready"


def mark_ready(data_dir: str | os.PathLike[str], hotspots: int) -> Path:
    """Say this process is ready, with what it was ready with (the active hot spots)."""
    path = ready_path(data_dir)
    write_private(path, json.dumps({"pid": os.getpid(), "ready_ms": int(time.time() * 1000), "hotspots": hotspots}))
    return path


def clear_ready(data_dir: str | os.PathLike[str]) -> None:
    try:
        ready_path(data_dir).unlink()
    except FileNotFoundError:
        pass


def is_ready(data_dir: str | os.PathLike[str], pid: int) -> bool:
    """True when worker `pid` has said it is ready (and has not stopped since)."""
    try:
        return json.loads(ready_path(data_dir, pid).read_text()).get("pid") == pid
    except (FileNotFoundError, ValueError):
        return False
