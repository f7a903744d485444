"""The data directory's promises: private to its user, one owner per role with its pid named;
and set-up that shows what it is doing."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.datadir import Locked, RoleLock, private_dir
from tests.conftest import HOTSPOT, wait_until

REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys; from pathlib import Path; from core.datadir import RoleLock; "
        "RoleLock(Path(sys.argv[1])).acquire(); print('held', flush=True); sys.stdin.read()")


def test_a_held_lock_is_refused_with_the_holders_pid_and_freed_when_it_is_killed(tmp_path):
    lock = tmp_path / "run.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Locked) as refused:
            RoleLock(lock).acquire()
        assert refused.value.pid == holder.pid
        os.kill(holder.pid, signal.SIGKILL)  # no clean-up code runs: the kernel drops the lock
        holder.wait(timeout=30)
        mine = wait_until(lambda: _try(lock), 10, "the lock to be free")
        assert lock.read_text().strip() == str(os.getpid())
        mine.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _try(lock: Path):
    try:
        return RoleLock(lock).acquire()
    except Locked:
        return None


def test_a_data_directory_left_0755_by_an_earlier_version_is_made_private(tmp_path):
    old = tmp_path / "var"
    old.mkdir()
    os.chmod(old, 0o755)
    private_dir(old)
    assert oct(old.stat().st_mode & 0o777) == "0o700"
    assert oct(private_dir(tmp_path / "new" / "var").stat().st_mode & 0o777) == "0o700"


def test_the_cli_entry_makes_everything_it_creates_private(tmp_path):
    # Any command: the umask is set before the command runs, and children inherit it.
    code = ("import os, sys; from cli import main; main(['config']); "
            "open(sys.argv[1], 'w').close(); os.mkdir(sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "f"), str(tmp_path / "d")], check=True,
                   capture_output=True, cwd=REPO, env={**os.environ, "HOTSPOT_DATA_DIR": str(tmp_path / "var")})
    assert oct((tmp_path / "f").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "d").stat().st_mode & 0o777) == "0o700"


def test_set_up_names_its_steps_and_shows_pip_progress():
    makefile = (REPO / "Makefile").read_text()
    pip_lines = [line for line in makefile.splitlines() if "pip install" in line]
    assert len(pip_lines) == 2
    for line in pip_lines:
        assert not re.search(r"\s(--quiet|-q)\b", line), line
        assert "--progress-bar on" in line
    lines = makefile.splitlines()
    for line in pip_lines:
        assert lines[lines.index(line) - 1].lstrip().startswith("@echo"), f"no step name before: {line}"


def test_a_worker_whose_metrics_port_is_taken_says_so_in_one_line(tmp_path, cli_env):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**cli_env, "HOTSPOT_WORKER_METRICS_PORT": str(port)}
        proc = subprocess.run([HOTSPOT, "worker"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"the metrics port 127.0.0.1:{port} is in use" in proc.stderr
    assert "Traceback" not in proc.stderr
