"""`hotspot run` brings the system up on embedded defaults and takes it down again."""
from __future__ import annotations

import os
import queue
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import HOTSPOT, free_port, running, wait_until


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


def _ours(data_dir) -> list[str]:
    """Live processes started for this data directory: its path on the command line (the broker)
    or as HOTSPOT_DATA_DIR in the environment (worker, gateway, simulation)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not running(int(proc.name)):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if str(data_dir) in cmdline or f"HOTSPOT_DATA_DIR={data_dir}".encode() in environ:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def _sql_raw(env, query: str) -> str:
    proc = subprocess.run([HOTSPOT, "sql", query], capture_output=True, text=True, env=env, timeout=60)
    return f"rc={proc.returncode} out={proc.stdout.strip()!r} err={proc.stderr.strip()[-500:]!r}"


def _sql(env, query: str) -> list[str]:
    proc = subprocess.run([HOTSPOT, "sql", "--format", "csv", query], capture_output=True, text=True, env=env, timeout=60)
    return proc.stdout.splitlines()[1:] if proc.returncode == 0 else []


def _not_private(root: Path) -> list[str]:
    """Files and folders under `root` that any other user could read, write or enter."""
    loose = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(root)}")
    return loose


def test_run_brings_up_the_system_with_simulated_officers_and_ctrl_c_stops_all_of_it(tmp_path, cli_env):
    env = {**cli_env, "HOTSPOT_KAFKA_PORT": str(free_port()), "HOTSPOT_KAFKA_CONTROLLER_PORT": str(free_port()),
           "HOTSPOT_HTTP_PORT": str(free_port()), "HOTSPOT_WORKER_METRICS_PORT": str(free_port())}
    data_dir = tmp_path / "var"
    data_dir.mkdir(mode=0o755)  # as earlier versions left it
    os.chmod(data_dir, 0o755)
    proc = subprocess.Popen([HOTSPOT, "run", "--simulate", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        lines = read_until(proc, "ready in", 240)
        assert any(line.startswith("kafka ") and "created pings" in line for line in lines), lines
        assert any(line.startswith("hot spots ") and "20 hot spots" in line for line in lines), lines
        assert any(line.startswith("worker ") for line in lines), lines
        # the banner says where to look: the broker's log and the worker's metrics
        assert any(line.startswith("kafka ") and f"log {data_dir / 'kafka' / 'broker.log'}" in line for line in lines)
        metrics = f"http://127.0.0.1:{env['HOTSPOT_WORKER_METRICS_PORT']}/metrics"
        assert any(line.split() == ["metrics", metrics, "(Prometheus)"] for line in lines), lines
        assert any(line.startswith("gateway ") and f":{env['HOTSPOT_HTTP_PORT']}" in line for line in lines), lines
        broker_pid = int((data_dir / "kafka" / "broker.pid").read_text())
        assert running(broker_pid)

        # The simulated officers are already on patrol: visits show up through `hotspot sql`
        # (answered by the worker, which owns the embedded store).
        try:
            wait_until(lambda: _sql(env, "SELECT visit_id FROM hotspot.visits_current"), 120, "a visit",
                       interval_s=0.2)
        except AssertionError:
            logs = {name: (data_dir / "logs" / f"{name}.log") for name in ("worker", "simulation")}
            tails = {n: p.read_text(errors="replace")[-3000:] if p.exists() else "(none)" for n, p in logs.items()}
            raise AssertionError(f"no visit within 120 s of the system being ready; sql: "
                                 f"{_sql_raw(env, 'SELECT count() FROM hotspot.pings')}\n"
                                 f"worker log:\n{tails['worker']}\nsimulation log:\n{tails['simulation']}")

        # issue 14: the app's URL and a ready-made officer login that works; a quarter of the simulated
        # officers are tasked through the directions API, so assignments reach ClickHouse.
        base = f"http://127.0.0.1:{env['HOTSPOT_HTTP_PORT']}"
        (app_line,) = [line for line in lines if line.startswith("officer app")]
        assert f"{base}/app" in app_line and "sign in as officer1 / " in app_line
        assert any(line.startswith("control room") and f"{base}/control" in line for line in lines), lines
        secret = app_line.split(" / ", 1)[1].strip()
        import httpx

        signed_in = httpx.post(base + "/v1/session", json={"name": "officer1", "secret": secret}, timeout=30)
        assert signed_in.status_code == 200 and signed_in.json()["device_id"] == "app-officer1"
        assert any("1 officers tasked through the officer app's directions API" in line for line in lines), lines
        wait_until(lambda: _sql(env, "SELECT assignment_id FROM hotspot.assignments FINAL WHERE startsWith(user, 'tasked-')"),
                   120, "an assignment of a tasked officer", interval_s=0.5)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0
        assert not running(broker_pid)
        assert "local Kafka stopped" in proc.stderr.read()
        assert _ours(data_dir) == []
    finally:
        if proc.poll() is None:
            proc.kill()  # its children get SIGTERM from the kernel (PR_SET_PDEATHSIG)
            proc.wait()

    # Broker segments and logs, the ClickHouse store, credentials, logs: all private to the user.
    assert (data_dir / "clickhouse").is_dir() and (data_dir / "kafka" / "broker.log").is_file()
    assert (data_dir / "credentials.sqlite3").is_file()
    assert _not_private(data_dir) == []

    # A second run finds topics and hot spots in place and the store already migrated.
    proc = subprocess.Popen([HOTSPOT, "run", "--no-gateway"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        lines = read_until(proc, "ready in", 240)
        assert not any("created" in line or line.startswith("hot spots ") for line in lines), lines
        assert int(_sql(env, "SELECT count() FROM hotspot.visits FINAL")[0]) > 0

        # Another run on this data directory, or another worker on its store, is refused naming the owner.
        again = subprocess.run([HOTSPOT, "run", "--no-gateway"], capture_output=True, text=True, env=env, timeout=120)
        assert again.returncode == 1 and again.stdout == "", (again.stdout, again.stderr)
        assert f"another `hotspot run` (pid {proc.pid}) is using {data_dir}" in again.stderr
        [worker] = [line for line in _ours(data_dir) if "streams.cli worker" in line]
        worker_pid = int(worker.split(":")[0])
        second = subprocess.run([HOTSPOT, "worker"], capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert f"owned by another worker (pid {worker_pid}" in second.stderr and "Traceback" not in second.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        assert _ours(data_dir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Even a `run` killed outright takes its children with it.
    proc = subprocess.Popen([HOTSPOT, "run", "--no-gateway"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        read_until(proc, "ready in", 240)
        workers = [line for line in _ours(data_dir) if "streams.cli worker" in line]
        assert len(workers) == 1, workers
        proc.kill()
        proc.wait(timeout=30)
        wait_until(lambda: not any("streams.cli worker" in line for line in _ours(data_dir)), 60,
                   "the killed run's worker to exit")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # The broker is not a child (it outlives `run` by design when run is killed): stop it.
        subprocess.run([HOTSPOT, "broker", "stop"], env=env, capture_output=True, timeout=120)
