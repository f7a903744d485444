"""`hotspot run` brings the system up on embedded defaults and takes it down again."""
from __future__ import annotations

import queue
import signal
import subprocess
import threading
import time

from tests.conftest import HOTSPOT, free_port, running


def read_until(proc: subprocess.Popen, prefix: str, timeout_s: float) -> list[str]:
    """Lines of stdout up to and including the first that starts with `prefix`."""
    if not hasattr(proc, "_lines"):
        proc._lines = queue.Queue()
        threading.Thread(target=lambda: [proc._lines.put(l.rstrip("\n")) for l in proc.stdout] + [proc._lines.put(None)],
                         daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = proc._lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"no line starting {prefix!r} within {timeout_s}s; got {lines}")


def test_run_starts_broker_and_store_then_ctrl_c_stops_what_it_started(tmp_path, cli_env):
    env = {**cli_env, "HOTSPOT_KAFKA_PORT": str(free_port()), "HOTSPOT_KAFKA_CONTROLLER_PORT": str(free_port())}
    proc = subprocess.Popen([HOTSPOT, "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = read_until(proc, "ready in", 180)
        assert any(line.startswith("kafka ") and "created pings" in line for line in lines), lines
        assert any(line.startswith("clickhouse ") and "0001_pings" in line for line in lines), lines
        broker_pid = int((tmp_path / "var" / "kafka" / "broker.pid").read_text())
        assert running(broker_pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        assert not running(broker_pid)
        assert "local Kafka stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # A second run finds topics and migrations already in place.
    proc = subprocess.Popen([HOTSPOT, "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = read_until(proc, "ready in", 180)
        assert any(line.startswith("clickhouse ") and "(up to date)" in line for line in lines), lines
        assert not any("created" in line for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
