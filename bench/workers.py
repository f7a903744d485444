"""Several workers: throughput of 1, 2 and 3 workers on one backlog, and how long a partition
takes to move after a worker is killed with -9.

Everything on 127.0.0.1 in a throw-away directory, 8 partitions:

1. simulates officers once (`hotspot simulate --out`), anchored to the present;
2. for N in --workers (default 1 2 3): a fresh broker and data directory, the
   simulation's hot spots published and all its pings preloaded into `pings`,
   then N `hotspot worker` processes started at the same moment (the one that
   takes the store's lock owns the embedded store, the others join it and
   write through it, sinks/shared_store.py). Throughput counts only the time
   all N are in the group: pings committed by group `hotspot-worker` from the
   moment it is stable with N members to the end offsets, over that time;
3. partition move: two workers, a trickle of live pings (`pings send --rate`),
   the worker that does not own the store killed with -9; reported: the time
   until the group is stable again with every partition owned by the survivor
   (the consumer session timeout, 10 s, bounds it), and until every partition
   the killed worker held has committed new pings.

It prints figures, never asserts.

    .venv/bin/python bench/workers.py                      # 150 officers x 3 h (~170k pings)
    .venv/bin/python bench/workers.py --officers 40 --workers 1 2
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HOTSPOT = str(REPO / ".venv" / "bin" / "hotspot")
GROUP, TOPIC, PARTITIONS = "hotspot-worker", "pings", 8
READY = "hot-spot index rebuilt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _wait(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval_s)  # a benchmark's poll, bounded by the deadline
    raise TimeoutError(what)


async def _committed_and_end(bootstrap: str) -> tuple[dict[int, int], dict[int, int]]:
    from aiokafka import TopicPartition

    from core.kafka import make_consumer

    consumer = make_consumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        committed = {tp.partition: (await consumer.committed(tp)) or 0 for tp in tps}
        return committed, {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


def _members(bootstrap: str) -> dict[str, list[int]]:
    from core.kafka import group_assignment

    return asyncio.run(group_assignment(bootstrap, GROUP, TOPIC))


class System:
    """One broker and data directory; workers started and killed."""

    def __init__(self, root: Path):
        self.root = root
        self.port, self.controller = _free_port(), _free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
        self.env.update(HOTSPOT_DATA_DIR=str(root / "var"), HOTSPOT_KAFKA_BOOTSTRAP=self.bootstrap,
                        HOTSPOT_PARTITIONS=str(PARTITIONS), HOTSPOT_WORKER_JOIN_STORE="true",
                        HOTSPOT_PROCESSING='{"signal_loss_s": 36000}')
        self.workers: list[subprocess.Popen] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def hotspot(self, *args: str) -> None:
        subprocess.run([HOTSPOT, *args], env=self.env, check=True, capture_output=True, timeout=900)

    def broker(self, action: str) -> None:
        self.hotspot("broker", action, "--data-dir", str(self.root / "kafka"), "--port", str(self.port),
                     "--controller-port", str(self.controller), *(["--heap", "512m"] if action == "start" else []))

    def start_worker(self) -> subprocess.Popen:
        log = self.root / f"worker-{len(self.workers)}.log"
        env = {**self.env, "HOTSPOT_WORKER_METRICS_PORT": str(_free_port())}
        with open(log, "w") as fh:
            w = subprocess.Popen([HOTSPOT, "worker"], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        w.log = log
        self.workers.append(w)
        return w

    def stop(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in self.workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
        try:
            self.broker("stop")
        except subprocess.CalledProcessError:
            pass


def throughput(root: Path, sim: Path, n: int) -> dict:
    """The backlog preloaded, then N workers started at the same moment; the rate counted only
    while all N are in the group: pings committed from the moment the group is stable with N
    members to the end, over that time. (Sending while the workers run would measure the
    sender, which on 2 cores is no faster than the workers.)"""
    system = System(root)
    try:
        system.broker("start")
        system.hotspot("hotspots", "publish", str(sim / "hotspots.geojson"))
        t_send = time.monotonic()
        system.hotspot("pings", "send", str(sim / "pings.csv"))
        sent_s = time.monotonic() - t_send
        _, ends = asyncio.run(_committed_and_end(system.bootstrap))
        total = sum(ends.values())
        for _ in range(n):  # together: whichever takes the store's lock first owns it, the others join
            system.start_worker()
        members = _wait(lambda: (m := _members(system.bootstrap)) and len(m) == n and m, 300, f"{n} members")
        t0 = time.monotonic()
        head_start = sum(asyncio.run(_committed_and_end(system.bootstrap))[0].values())

        def done():
            committed, _ = asyncio.run(_committed_and_end(system.bootstrap))
            return sum(committed.values()) >= total

        _wait(done, 1800, "the backlog to drain", interval_s=0.2)
        elapsed = time.monotonic() - t0
        counted = total - head_start
        rate = counted / elapsed
        _log(f"{n} worker(s) (partitions per member {sorted(len(p) for p in members.values())}): {total} pings "
             f"preloaded in {sent_s:.1f}s; {head_start} committed before all {n} were in the group; the other "
             f"{counted} in {elapsed:.1f}s: {rate:,.0f} pings/s")
        return {"workers": n, "pings": counted, "seconds": elapsed, "head_start": head_start, "rate": rate}
    finally:
        system.stop()


def partition_move(root: Path, sim: Path, rate: int) -> dict:
    system = System(root)
    try:
        system.broker("start")
        system.hotspot("hotspots", "publish", str(sim / "hotspots.geojson"))
        owner = system.start_worker()
        _wait(lambda: READY in owner.log.read_text(), 180, "the owner")
        victim = system.start_worker()
        _wait(lambda: READY in victim.log.read_text(), 180, "the second worker")
        sender = subprocess.Popen([HOTSPOT, "pings", "send", "--rate", str(rate), str(sim / "pings.csv")],
                                  env=system.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            members = _wait(lambda: (m := _members(system.bootstrap)) and len(m) == 2 and m, 120, "two members")
            # Let pings flow on every partition first.
            time.sleep(5)  # a benchmark lets the stream settle; nothing is asserted on it
            committed_before, _ = asyncio.run(_committed_and_end(system.bootstrap))
            os.killpg(victim.pid, signal.SIGKILL)
            t_kill = time.monotonic()
            victim.wait(timeout=30)
            moved = _wait(lambda: (m := _members(system.bootstrap)) and len(m) == 1 and m, 120, "the group to settle")
            t_settled = time.monotonic() - t_kill
            [(survivor, owned)] = moved.items()
            # The partitions the survivor (same member id) had not held before the kill moved to it.
            moved_parts = sorted(set(owned) - set(members.get(survivor, [])))
            base = {p: committed_before[p] for p in moved_parts}

            def resumed():
                committed, _ = asyncio.run(_committed_and_end(system.bootstrap))
                return all(committed[p] > base[p] for p in moved_parts)

            _wait(resumed, 120, "the moved partitions to commit new pings", interval_s=0.1)
            t_resumed = time.monotonic() - t_kill
            _log(f"kill -9 of a worker holding partitions {moved_parts}: group settled with all {len(owned)} "
                 f"partitions on the survivor after {t_settled:.1f}s; the moved partitions committed new pings "
                 f"after {t_resumed:.1f}s")
            return {"moved": moved_parts, "settled_s": t_settled, "resumed_s": t_resumed}
        finally:
            sender.kill()
            sender.wait()
    finally:
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--officers", type=int, default=150)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trickle-rate", type=int, default=300, help="pings/s during the partition-move phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        work = Path(tmp)
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=args.hours + 0.2)
        _log(f"host: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
             f"simulating {args.officers} officers x {args.hours:g} h")
        subprocess.run([HOTSPOT, "simulate", "--out", str(work / "sim"), "--officers", str(args.officers),
                        "--hours", str(args.hours), "--seed", "7", "--start", start.replace(microsecond=0).isoformat()],
                       check=True, capture_output=True, timeout=1800)
        results = [throughput(work / f"n{n}", work / "sim", n) for n in args.workers]
        move = partition_move(work / "move", work / "sim", args.trickle_rate)
        print("\nworkers  counted   seconds  pings/s  vs 1 worker  (committed before all joined)")
        base = next((r["rate"] for r in results if r["workers"] == 1), None)
        for r in results:
            ratio = f"{r['rate'] / base:.2f}x" if base else "-"
            print(f"{r['workers']:>7}  {r['pings']:>7}  {r['seconds']:>7.1f}  {r['rate']:>7,.0f}  {ratio:>11}  "
                  f"{r['head_start']}")
        print(f"partition move after kill -9: group settled {move['settled_s']:.1f}s, "
              f"moved partitions committing again {move['resumed_s']:.1f}s")


if __name__ == "__main__":
    main()
