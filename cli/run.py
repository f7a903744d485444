"""`hotspot run`: the whole system on one machine with embedded defaults.

It starts, in order: the local Kafka broker (unless HOTSPOT_KAFKA_BOOTSTRAP names
a cluster), the topics, a worker process (which owns the embedded ClickHouse
store, applies its migrations and answers `hotspot sql`), the gateway (HTTP),
and optionally simulated officers. Each child's output goes to a log under
<data_dir>/logs. Ctrl-C, SIGTERM, or any child dying stops everything it started.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = """examples:
  hotspot run                     # local Kafka + embedded ClickHouse under ./var
  hotspot run --simulate 20       # ... with 20 simulated officers patrolling
  HOTSPOT_KAFKA_BOOTSTRAP=kafka:9092 HOTSPOT_CLICKHOUSE_DSN=http://ch:8123 hotspot run
then, in another terminal:
  hotspot sql "SELECT device_id, hotspot_id, entered_at, dwell_s FROM hotspot.visits_current ORDER BY entered_at DESC LIMIT 10"
"""


def register(sub) -> None:
    p = sub.add_parser("run", help="run everything on this machine (embedded defaults)",
                       description="Start the local Kafka broker (unless HOTSPOT_KAFKA_BOOTSTRAP names one), the worker, "
                                   "the gateway and, with --simulate, simulated officers; run until Ctrl-C. "
                                   "Stops what it started.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--simulate", type=int, default=0, metavar="N", help="number of simulated officers (default 0)")
    p.add_argument("--seed", type=int, default=1, help="seed of the simulated officers (default 1)")
    p.add_argument("--no-gateway", action="store_true", help="do not start the HTTP gateway")
    p.set_defaults(handler=_run)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when `hotspot run` dies, even by SIGKILL,
    so no worker or gateway outlives the command that started it."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux/glibc: the normal stop path still applies


class Child:
    def __init__(self, name: str, args: list[str], log: Path):
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fh = open(log, "ab")
        # The log is appended to across runs: readiness is judged on what this start wrote.
        self._start_offset = self._fh.tell()
        # -P: the current directory is not put on sys.path, so a folder there named like one of our
        # packages (core, cli, replay...) cannot stand in for it.
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "cli", *args], stdout=self._fh,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        """The last lines this start wrote (never an earlier run's)."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self._start_offset)
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal(self, sig: int) -> None:
        for send in (lambda: os.killpg(self.proc.pid, sig), lambda: self.proc.send_signal(sig)):
            try:
                send()
            except ProcessLookupError:
                pass  # already gone, or it left its group: the other way reaches it

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._fh.close()


def _wait_for(child: Child, ready, timeout_s: float, what: str) -> None:
    from cli import CommandError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if not child.alive():
            raise CommandError(f"the {child.name} exited while starting ({what}); last lines of {child.log}:\n{child.tail()}")
        time.sleep(0.2)  # readiness poll with a deadline
    raise CommandError(f"the {child.name} was not ready within {timeout_s:.0f}s ({what}); see {child.log}")


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _publish_simulated_town(s, seed: int) -> None:
    """Publish the simulated town's hot spots before the worker starts, if the force has none yet,
    so the officers' first pings are matched against them."""
    import asyncio

    from simulation.config import scenario_config
    from simulation.simulate import Simulation
    from formats.hotspots import records_from_geojson
    from core.feeds import publish, read_all

    if asyncio.run(read_all(s.bootstrap_servers)):
        return
    town = Simulation(scenario_config("mixed", seed=seed, officers=1, hours=0.1)).feature_collection()
    count = asyncio.run(publish(s.bootstrap_servers, records_from_geojson(town, int(time.time() * 1000)), s.partitions))
    print(f"hot spots  published the simulated town's {count} hot spots", flush=True)


def tasked_share(officers: int) -> int:
    """How many of the simulated officers are tasked through the directions API: a quarter, at least one of two
    or more (the rest patrol untasked, the background presence a trial measures)."""
    return 0 if officers < 2 else max(1, officers // 4)


LOGINS = (("officer1", "officer", "/app"), ("supervisor1", "supervisor", "/control"))


def _print_logins(s, base: str) -> None:
    """Ready-made users for the officer app and the control room, each with a fresh secret shown once here
    (stored hashed, like `hotspot users add`; an earlier run's secret is revoked)."""
    from gateway.credentials import CredentialError, CredentialStore, path_in

    store = CredentialStore(path_in(s.data_dir))
    try:
        for name, role, page in LOGINS:
            try:
                _, secret = store.add(name, "user", role)
            except CredentialError:
                store.revoke(name, "user")
                _, secret = store.add(name, "user", role)
            label = "officer app" if role == "officer" else "control room"
            print(f"{label:<11} {base}{page}  sign in as {name} / {secret}", flush=True)
    finally:
        store.close()


def _run(args) -> int:
    import asyncio

    from sinks.clickhouse import mask_dsn
    from core.broker import BrokerError, LocalBroker
    from cli import CommandError
    from core.datadir import Locked, RoleLock, private_dir
    from core.kafka import ensure_topics, wait_for_metadata
    from core.settings import get_settings
    from streams.readiness import is_ready

    s = get_settings()
    private_dir(s.data_dir)
    try:
        # One `hotspot run` per data directory, held until this process ends.
        run_lock = RoleLock(s.data_dir / "run.lock").acquire()
    except Locked as exc:
        raise CommandError(f"another `hotspot run` (pid {exc.pid if exc.pid is not None else '?'}) is using "
                           f"{s.data_dir}; stop it first, or set HOTSPOT_DATA_DIR to another directory") from None
    # Set both explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    started: LocalBroker | None = None
    children: list[Child] = []
    logs = s.data_dir / "logs"
    t0 = time.monotonic()
    try:
        if s.local_kafka:
            try:
                broker = LocalBroker.from_settings(s)
            except BrokerError as exc:
                raise CommandError(str(exc)) from None
            if broker.pid() is None:
                print(f"starting local Kafka on {broker.bootstrap} ...", flush=True)
                try:
                    broker.start()
                except BrokerError as exc:
                    raise CommandError(str(exc)) from None
                started = broker
            else:
                print(f"using the local Kafka already running on {broker.bootstrap}", flush=True)
        try:
            asyncio.run(wait_for_metadata(s.bootstrap_servers, 30))
        except TimeoutError as exc:
            raise CommandError(str(exc)) from None
        created = asyncio.run(ensure_topics(s.bootstrap_servers, s.partitions))
        print(f"kafka      {s.bootstrap_servers}  topics ready" + (f" (created {', '.join(created)})" if created else "")
              + (f"  log {LocalBroker.from_settings(s).log_file}" if s.local_kafka else ""), flush=True)

        if args.simulate > 0:
            _publish_simulated_town(s, args.seed)
        worker = Child("worker", ["worker"], logs / "worker.log")
        children.append(worker)
        _wait_for(worker, lambda: is_ready(s.data_dir, worker.proc.pid), 180, "waiting for it to load hot spots")
        print(f"worker     pid {worker.proc.pid}  ClickHouse {mask_dsn(s.effective_clickhouse_dsn)} "
              f"(migrations applied)  log {worker.log}", flush=True)
        if s.worker_metrics_port:
            print(f"           metrics http://{s.http_host}:{s.worker_metrics_port}/metrics (Prometheus)", flush=True)

        if not args.no_gateway:
            gateway = Child("gateway", ["gateway"], logs / "gateway.log")
            children.append(gateway)
            base = f"http://{s.http_host}:{s.http_port}"
            _wait_for(gateway, lambda: _http_ok(f"{base}/healthz"), 60, f"waiting for {base}/healthz")
            print(f"gateway    {base}  (devices: POST /v1/pings, /v1/owntracks, /v1/osmand; API docs {base}/docs)",
                  flush=True)
            _print_logins(s, base)  # issue 14

        tasked = 0 if args.no_gateway else tasked_share(args.simulate)
        if args.simulate - tasked > 0:
            sim = Child("simulation", ["simulate", "--live", "--officers", str(args.simulate - tasked), "--seed",
                                       str(args.seed), "--hours", "12"], logs / "simulation.log")
            children.append(sim)
            print(f"simulation {args.simulate - tasked} officers on patrol, untasked  log {sim.log}", flush=True)
        if tasked:
            team = Child("tasked", ["tasked", "--officers", str(tasked), "--seed", str(args.seed), "--url", base,
                                    "--hours", "12"], logs / "tasked.log")
            children.append(team)
            print(f"           {tasked} officers tasked through the officer app's directions API  log {team.log}",
                  flush=True)

        print(f"ready in {time.monotonic() - t0:.1f}s — try: hotspot sql \"SELECT * FROM hotspot.visits_current "
              f"ORDER BY entered_at DESC LIMIT 10\"; Ctrl-C to stop", flush=True)
        while True:
            for child in children:
                if not child.alive():
                    raise CommandError(f"the {child.name} stopped unexpectedly (status {child.proc.returncode}); "
                                       f"last lines of {child.log}:\n{child.tail()}")
            time.sleep(1.0)  # supervision tick
    except KeyboardInterrupt:
        print("stopping ...", file=sys.stderr, flush=True)
    finally:
        for child in reversed(children):
            child.stop()
        if started is not None:
            started.stop()
            print("local Kafka stopped", file=sys.stderr, flush=True)
        run_lock.release()
    return 0
