"""Live pipeline: one `hotspot worker` from a real Kafka broker into embedded ClickHouse.

One run, everything on 127.0.0.1, in a throw-away directory:

1. starts its own broker (`hotspot broker start` on free ports) and simulates
   officers (`hotspot simulate`, anchored to the present), publishes the
   simulation's hot spots (`hotspot hotspots publish`);
2. builds two sets of devices from the simulation: each "replica" takes a
   window of the simulated shift under its own device-id prefix (T.. for the
   throughput phase, L.. for the latency phase), so there are thousands of
   devices, interleaved in delivery order, in time order per device (late
   deliveries, duplicates and outliers as simulated);
3. preloads the T pings into `pings` (received_ms = when each is produced);
4. baseline: a bare aiokafka consumer reads `pings` from the beginning and
   decodes every value with `codec_for("Ping")`: msgs/s;
5. starts `hotspot worker` (a subprocess that owns the embedded store) and
   measures how fast it drains the backlog: committed offsets of consumer
   group `hotspot-worker` against the end offsets, polled from here; then the
   rows in ClickHouse through the worker's read-only query server;
6. offered load in real time: thousands more devices (L..), each replaying a
   stretch of a simulated officer's pings at the pace the phone sent them
   (a fix every 5-60 s), so many that together they offer the target rate
   (default 5,000 pings/s); received_ms = send time. Two latencies:
     - ping -> row:     from a ping's arrival to its row landing in
       `hotspot.pings` (`ingested_at`, stamped by ClickHouse at the insert),
       for every accepted ping: reorder hold, Kafka, micro-batching,
       processing and the insert;
     - ping -> event:   the worker's `ping_to_event_seconds` histogram, one
       observation per patrol event, from the arrival of the fix that caused
       it to the insert that wrote it returning (the event is durable).

It prints figures, never asserts. The broker and the worker are stopped at the
end, also on failure, Ctrl-C or the overall deadline.

    .venv/bin/python bench/pipeline.py                     # defaults: ~300k preload, 5,000/s for 40 s
    .venv/bin/python bench/pipeline.py --profile           # the worker under pyinstrument (sampling), where time goes
    .venv/bin/python bench/pipeline.py --profile cprofile  # ... under cProfile (3-4x slower), top entries printed
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import datetime as dt
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HOTSPOT = str(REPO / ".venv" / "bin" / "hotspot")
PYTHON = sys.executable
GROUP = "hotspot-worker"  # streams.pipeline.GROUP_ID, the consumer group of the pings loop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- processes

class Processes:
    """What this run started, so that `finally` stops exactly those."""

    def __init__(self, env: dict, work: Path, kafka_port: int, controller_port: int):
        self.env = env
        self.work = work
        self.kafka_dir = work / "kafka"
        self.kafka_port = kafka_port
        self.controller_port = controller_port
        self.worker: subprocess.Popen | None = None
        self.worker_log = work / "worker.log"
        self.broker_started = False

    def broker_args(self) -> list[str]:
        return ["--data-dir", str(self.kafka_dir), "--port", str(self.kafka_port),
                "--controller-port", str(self.controller_port)]

    def broker_pid(self) -> int | None:
        try:
            return int((self.kafka_dir / "broker.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def start_worker(self, cmd: list[str]) -> None:
        out = open(self.worker_log, "ab")
        self.worker = subprocess.Popen(cmd, env=self.env, cwd=self.work, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        out.close()

    def stop_worker(self, timeout_s: float = 40.0) -> int | None:
        w = self.worker
        if w is None or w.poll() is not None:
            return None if w is None else w.returncode
        w.send_signal(signal.SIGTERM)
        try:
            return w.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _log(f"worker {w.pid} did not stop within {timeout_s:.0f}s; killing it")
            w.kill()
            return w.wait(timeout=10)

    def stop_broker(self) -> None:
        if not self.kafka_dir.exists():
            return
        subprocess.run([HOTSPOT, "broker", "stop", *self.broker_args()], env=self.env, cwd=self.work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=90)

    def worker_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.worker_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of a process (threads of the same name summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        if tid == str(pid):
            name = "main (event loop)"
        out[name] = out.get(name, 0.0) + cpu
    return out


def _proc_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- pings

class Item:
    """One ping to send: a simulated ping moved to a replica's device and time."""

    __slots__ = ("device", "key", "ts_ms", "order_ms", "ping", "received_ms")

    def __init__(self, device: str, ts_ms: int, order_ms: int, ping):
        self.device = device
        self.key = device.encode()
        self.ts_ms = ts_ms
        self.order_ms = order_ms
        self.ping = ping
        self.received_ms = 0

    def record(self, received_ms: int) -> dict:
        p = self.ping
        return {"device_id": self.device, "ts_ms": self.ts_ms, "lat": p.lat, "lon": p.lon,
                "accuracy_m": p.accuracy_m, "speed_mps": p.speed_mps, "heading_deg": p.heading_deg,
                "altitude_m": p.altitude_m, "battery": p.battery, "received_ms": received_ms,
                "source": "simulator", "extra": {}}


def load_simulation(sim_dir: Path) -> tuple[list, list[int], int]:
    """(pings in delivery order, their delivery times, shift start) from `hotspot simulate` output."""
    from formats.replayfiles import BadRow, read_file
    from formats.timestamps import parse_ts_ms

    pings = [p for p in read_file(sim_dir / "pings.csv") if not isinstance(p, BadRow)]
    delivered: list[int] = []
    with open(sim_dir / "truth_pings.csv", newline="") as f:
        for row in csv.DictReader(f):
            delivered.append(parse_ts_ms(row["delivered_at"]))
    if len(delivered) != len(pings):
        raise SystemExit(f"pings.csv ({len(pings)}) and truth_pings.csv ({len(delivered)}) do not line up")
    start_ms = json.loads((sim_dir / "simulation.json").read_text())["config"]["start_ms"]
    return pings, delivered, start_ms


def replicas(pings, delivered, sim_start_ms: int, prefix: str, count: int, first_offset_min: float,
             step_min: float, window_min: float, base_ms: int) -> list[Item]:
    """`count` replicas: replica k is the simulation's pings delivered in
    [start + first + k*step, +window), under device ids `{prefix}{k:02d}-{id}`,
    moved so that every window begins at `base_ms`. Merged in delivery order."""
    items: list[Item] = []
    win = int(window_min * 60_000)
    for k in range(count):
        lo = sim_start_ms + int((first_offset_min + k * step_min) * 60_000)
        lo_i = bisect.bisect_left(delivered, lo)
        hi_i = bisect.bisect_left(delivered, lo + win)
        shift = base_ms - lo
        tag = f"{prefix}{k:02d}-"
        for i in range(lo_i, hi_i):
            p = pings[i]
            items.append(Item(tag + p.device_id, p.ts_ms + shift, delivered[i] + shift, p))
    items.sort(key=lambda it: it.order_ms)  # stable: per-device delivery order is kept
    return items


def realtime_replicas(pings, delivered, sim_start_ms: int, prefix: str, rate: float, window_s: float) -> list[Item]:
    """Devices that together offer `rate` pings/s in real time for `window_s`.

    `replicas` of `window_s` stretches spread evenly over the shift, as many as
    the rate needs, so each device sends at the pace its phone did. Times are
    relative to the start of the stretch (`order_ms`: when to send, `ts_ms`: the
    fix time); `start_at` moves them to the wall clock.
    """
    if not delivered:
        return []
    win = int(window_s * 1000)
    span = delivered[-1] - sim_start_ms - win
    if span <= 0:
        raise SystemExit("the simulated shift is shorter than the latency window")
    probes = [sim_start_ms + span * i // 20 for i in range(20)]
    per_window = sum(bisect.bisect_left(delivered, lo + win) - bisect.bisect_left(delivered, lo) for lo in probes) / 20
    count = max(1, int(round(rate * window_s / max(1.0, per_window))))
    return replicas(pings, delivered, sim_start_ms, prefix, count, 0.0, span / count / 60_000, window_s / 60, 0)


def start_at(items: list[Item], base_ms: int) -> None:
    for it in items:
        it.ts_ms += base_ms
        it.order_ms += base_ms


# --------------------------------------------------------------------------- Kafka helpers

async def preload(bootstrap: str, items: list[Item]) -> float:
    from core.codecs import codec_for
    from core.kafka import make_producer

    codec = codec_for("Ping")
    producer = make_producer(bootstrap, linger_ms=20)
    await producer.start()
    t0 = time.perf_counter()
    try:
        pending = []
        for it in items:
            it.received_ms = _now_ms()
            pending.append(await producer.send("pings", codec.encode(it.record(it.received_ms)), key=it.key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def end_offsets(bootstrap: str, topic: str = "pings") -> dict:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return await c.end_offsets(tps)
    finally:
        await c.stop()


async def baseline(bootstrap: str, total: int, time_limit_s: float) -> dict:
    """A bare consume-and-decode loop over `pings` from the beginning."""
    from aiokafka import AIOKafkaConsumer

    from core.codecs import codec_for

    codec = codec_for("Ping")
    consumer = AIOKafkaConsumer("pings", bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    t_start = time.perf_counter()
    await consumer.start()
    n = 0
    t_first = None
    cpu0 = time.process_time()
    try:
        while n < total and time.perf_counter() - t_start < time_limit_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for msgs in batches.values():
                if t_first is None:
                    t_first = time.perf_counter()
                n += len(codec.decode_many([m.value for m in msgs]))
        t_end = time.perf_counter()
    finally:
        await consumer.stop()
    cpu = time.process_time() - cpu0
    span = t_end - (t_first or t_end)
    return {"messages": n, "seconds": span, "msgs_per_s": n / span if span else 0.0,
            "with_connect_s": t_end - t_start, "cpu_s": cpu,
            "settings": "aiokafka defaults (max_partition_fetch_bytes 1 MiB), getmany(max_records=10000), "
                        "Codec('Ping').decode_many"}


async def committed(admin, tps) -> int:
    try:
        offsets = await admin.list_consumer_group_offsets(GROUP, partitions=tps)
    except Exception:  # the group does not exist yet
        return 0
    return sum(max(0, o.offset) for tp, o in offsets.items() if o is not None and tp.topic == "pings")


# --------------------------------------------------------------------------- ClickHouse via the worker

def query(data_dir: Path, dsn: str, sql: str, timeout_s: float = 60.0):
    from sinks.query_server import query_owner

    return query_owner(data_dir, sql, dsn=dsn, timeout_s=timeout_s)[1]


def table_counts(data_dir: Path, dsn: str, prefix: str) -> dict[str, int]:
    out = {}
    for table in ("pings", "pings_rejected", "visits", "stops", "mode_segments"):
        rows = query(data_dir, dsn, f"SELECT count() FROM hotspot.{table} WHERE device_id LIKE '{prefix}%'")
        out[table] = int(rows[0][0])
    out["pings FINAL"] = int(query(data_dir, dsn, f"SELECT count() FROM hotspot.pings FINAL "
                                                  f"WHERE device_id LIKE '{prefix}%'")[0][0])
    return out


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def histogram(text: str, name: str, labels: dict | None = None) -> dict:
    """{'buckets': [(le, cumulative)], 'sum': s, 'count': n} of one histogram in exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets, total, count = [], 0.0, 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name != name:
            continue
        for s in fam.samples:
            if labels and any(s.labels.get(k) != v for k, v in labels.items()):
                continue
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_sum"):
                total = s.value
            elif s.name.endswith("_count"):
                count = s.value
    buckets.sort()
    return {"buckets": buckets, "sum": total, "count": count}


def hist_diff(after: dict, before: dict) -> dict:
    b = dict(before["buckets"])
    return {"buckets": [(le, v - b.get(le, 0.0)) for le, v in after["buckets"]],
            "sum": after["sum"] - before["sum"], "count": after["count"] - before["count"]}


def hist_quantile(h: dict, q: float) -> str:
    n = h["count"]
    if not n:
        return "n/a"
    target = q * n
    prev_le, prev_c = 0.0, 0.0
    for le, c in h["buckets"]:
        if c >= target:
            if le == float("inf"):
                return f"> {prev_le:g} s"
            frac = (target - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return f"{prev_le + frac * (le - prev_le):.3f} s (bucket {prev_le:g}-{le:g})"
        prev_le, prev_c = le, c
    return "n/a"


# --------------------------------------------------------------------------- the run

async def run(args, procs: Processes, data_dir: Path, bootstrap: str, metrics_port: int, results: dict) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.structs import TopicPartition

    from core.kafka import ensure_topics
    from core.settings import Settings

    settings = Settings()
    dsn = settings.effective_clickhouse_dsn
    window_ms = settings.processing_config().reorder_window_s * 1000.0
    env, work = procs.env, procs.work
    results["settings"] = {"partitions": settings.partitions, "worker_batch_max": settings.worker_batch_max,
                           "worker_batch_window_s": settings.worker_batch_window_s,
                           "worker_expire_interval_s": settings.worker_expire_interval_s,
                           "reorder_window_s": window_ms / 1000,
                           "reorder_hold_s": settings.processing_config().reorder_hold_s, "clickhouse": "embedded chDB"}

    # --- broker and simulation, side by side ---------------------------------------
    now = _now_ms()
    sim_start = now - int(args.hours * 3_600_000) - 15 * 60_000
    sim_dir = work / "sim"
    _log(f"starting broker on {bootstrap} and simulating {args.officers} officers x {args.hours:g} h "
         f"(seed {args.seed}, start {_iso(sim_start)})")
    t0 = time.perf_counter()
    sim = subprocess.Popen([HOTSPOT, "simulate", "--out", str(sim_dir), "--officers", str(args.officers),
                            "--hours", str(args.hours), "--seed", str(args.seed), "--start", _iso(sim_start)],
                           env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.broker_started = True
    broker = subprocess.run([HOTSPOT, "broker", "start", *procs.broker_args()], env=env, cwd=work,
                            capture_output=True, text=True, timeout=180)
    if broker.returncode != 0:
        raise RuntimeError(f"broker did not start: {broker.stderr.strip() or broker.stdout.strip()}")
    _log(broker.stdout.strip())
    sim_out, _ = sim.communicate(timeout=300)
    if sim.returncode != 0:
        raise RuntimeError("hotspot simulate failed")
    _log(sim_out.strip() + f" [broker+simulation {time.perf_counter() - t0:.1f}s]")

    await ensure_topics(bootstrap, settings.partitions)
    pub = subprocess.run([HOTSPOT, "hotspots", "publish", str(sim_dir / "hotspots.geojson")], env=env, cwd=work,
                         capture_output=True, text=True, timeout=120)
    if pub.returncode != 0:
        raise RuntimeError(f"hotspots publish failed: {pub.stderr.strip()}")
    _log(pub.stdout.strip().splitlines()[-1] if pub.stdout.strip() else "hot spots published")

    # --- devices -------------------------------------------------------------------
    pings, delivered, sim_start_ms = load_simulation(sim_dir)
    now = _now_ms()
    n_t = args.preload
    t_items = replicas(pings, delivered, sim_start_ms, "T", args.replicas, 0.0, args.replica_step_min,
                       args.preload_window_min, now - int(args.preload_window_min * 60_000) - 20 * 60_000)[:n_t]
    l_items = realtime_replicas(pings, delivered, sim_start_ms, "L", args.rate, args.warmup + args.duration)
    t_dev = len({it.device for it in t_items})
    l_dev = len({it.device for it in l_items})
    results["load"] = {"preload_pings": len(t_items), "preload_devices": t_dev,
                       "latency_pings": len(l_items), "latency_devices": l_dev, "latency_time_compression": 1.0}
    _log(f"throughput set: {len(t_items):,} pings from {t_dev:,} devices; latency set: {len(l_items):,} pings "
         f"from {l_dev:,} devices, each at its own pace in real time ({args.warmup + args.duration:g} s)")
    if len(t_items) < n_t:
        _log("WARNING: the simulation is too small for the requested counts; using what it has")
    del pings, delivered

    # --- preload -------------------------------------------------------------------
    secs = await preload(bootstrap, t_items)
    ends = await end_offsets(bootstrap)
    total = sum(ends.values())
    results["preload"] = {"pings": total, "seconds": secs, "pings_per_s": len(t_items) / secs}
    _log(f"preloaded {total:,} pings into `pings` ({len(ends)} partitions) in {secs:.1f}s "
         f"({len(t_items) / secs:,.0f}/s, acks=all)")
    if total != len(t_items):
        _log(f"WARNING: topic holds {total} records, {len(t_items)} were sent")

    # --- baseline ------------------------------------------------------------------
    base = await baseline(bootstrap, total, 120.0)
    results["baseline"] = base
    _log(f"baseline: consumed and decoded {base['messages']:,} in {base['seconds']:.2f}s = "
         f"{base['msgs_per_s']:,.0f} msgs/s (bench process CPU {base['cpu_s']:.1f}s)")

    # --- worker: drain the backlog -------------------------------------------------
    if args.profile:
        cmd = [PYTHON, str(REPO / "bench" / "profile_worker.py"), str(work / "worker"), args.profile]
    else:
        cmd = [HOTSPOT, "worker", "--loglevel", "warning"]
    broker_pid = procs.broker_pid()
    tps = [TopicPartition("pings", p) for p in sorted(tp.partition for tp in ends)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        t_launch = time.perf_counter()
        procs.start_worker(cmd)
        wpid = procs.worker.pid
        _log(f"worker started (pid {wpid}{', under ' + args.profile if args.profile else ''}); draining {total:,} pings")
        progress: list[tuple[float, int]] = []
        t_first = t_done = None
        cpu_first = cpu_done = None
        broker_cpu_first = broker_cpu_done = 0.0
        bench_cpu_first = bench_cpu_done = 0.0
        last_print = 0.0
        while True:
            if procs.worker.poll() is not None:
                raise RuntimeError(f"the worker exited with status {procs.worker.returncode}:\n{procs.worker_tail()}")
            c = await committed(admin, tps)
            now_p = time.perf_counter()
            progress.append((now_p, c))
            if c > 0 and t_first is None:
                t_first, c_first = now_p, c
                cpu_first, broker_cpu_first, bench_cpu_first = _thread_cpu(wpid), _proc_cpu(broker_pid), time.process_time()
                _log(f"first commit {now_p - t_launch:.1f}s after launch: {c:,} pings")
            if c >= total:
                t_done = now_p
                cpu_done, broker_cpu_done, bench_cpu_done = _thread_cpu(wpid), _proc_cpu(broker_pid), time.process_time()
                break
            if now_p - t_launch > args.drain_timeout:
                _log(f"drain timeout ({args.drain_timeout:.0f}s): {c:,} of {total:,} committed")
                t_done = now_p
                cpu_done, broker_cpu_done, bench_cpu_done = _thread_cpu(wpid), _proc_cpu(broker_pid), time.process_time()
                break
            if now_p - last_print >= 5:
                last_print = now_p
                if t_first is not None:
                    _log(f"  committed {c:,} / {total:,} ({(c - c_first) / max(1e-9, now_p - t_first):,.0f}/s so far)")
            await asyncio.sleep(0.25)
        c_done = progress[-1][1]
        drained = c_done - c_first if t_first else 0
        span = (t_done - t_first) if t_first else 0.0
        rate = drained / span if span > 0 else 0.0
        # Steadiest stretch: the rate between 10% and 90% of the backlog.
        lo = next((t for t, c in progress if c >= 0.1 * total), None)
        hi = next((t for t, c in progress if c >= 0.9 * total), None)
        mid_rate = 0.8 * total / (hi - lo) if lo is not None and hi is not None and hi > lo else float("nan")
        results["pipeline"] = {"committed": c_done, "of": total, "first_commit_after_launch_s": (t_first or 0) - t_launch,
                               "drain_s": span, "pings_per_s": rate, "pings_per_s_10_90": mid_rate,
                               "launch_to_done_s": t_done - t_launch, "completed": c_done >= total}
        _log(f"pipeline: {drained:,} pings from first commit to {'all' if c_done >= total else 'timeout'} committed in "
             f"{span:.1f}s = {rate:,.0f} pings/s (10%-90% of backlog: {mid_rate:,.0f}/s; "
             f"launch to done {t_done - t_launch:.1f}s)")
        if cpu_first is not None and cpu_done is not None:
            per_thread = sorted(((name, cpu_done.get(name, 0) - cpu_first.get(name, 0)) for name in cpu_done),
                                key=lambda kv: -kv[1])
            worker_cpu = sum(v for _, v in per_thread)
            results["cpu_during_drain"] = {
                "wall_s": span, "worker_cpu_s": worker_cpu,
                "worker_threads": [(n, round(v, 2)) for n, v in per_thread if v >= 0.05],
                "broker_cpu_s": broker_cpu_done - broker_cpu_first, "bench_cpu_s": bench_cpu_done - bench_cpu_first}
            _log(f"CPU during the drain ({span:.1f}s wall, 2 cores): worker {worker_cpu:.1f}s, broker JVM "
                 f"{broker_cpu_done - broker_cpu_first:.1f}s, this process {bench_cpu_done - bench_cpu_first:.1f}s")
            for name, v in per_thread[:8]:
                if v >= 0.05:
                    _log(f"    worker thread {name:<22} {v:6.1f}s CPU ({100 * v / span:4.0f}% of a core)")

        # Pings held in reorder buffers reach ClickHouse when the expiry timer releases them.
        t_rows = time.perf_counter()
        counts = {}
        while time.perf_counter() - t_rows < 40:
            counts = await asyncio.to_thread(table_counts, data_dir, dsn, "T")
            if counts["pings"] + counts["pings_rejected"] >= total:
                break
            await asyncio.sleep(2)
        results["rows_after_drain"] = counts
        _log(f"ClickHouse after the drain (+{time.perf_counter() - t_rows:.1f}s): " +
             ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        text_after_drain = scrape(metrics_port)
        fl = histogram(text_after_drain, "sink_flush_seconds", {"sink": "worker"})
        bs = histogram(text_after_drain, "batch_size", {"stage": "worker"})
        results["worker_metrics_after_drain"] = {
            "flushes": fl["count"], "flush_s_total": fl["sum"], "flush_ms_mean": 1000 * fl["sum"] / max(1, fl["count"]),
            "batches": bs["count"], "batch_mean": bs["sum"] / max(1, bs["count"])}
        _log(f"worker metrics: {bs['count']:.0f} micro-batches, mean {bs['sum'] / max(1, bs['count']):,.0f} pings; "
             f"{fl['count']:.0f} ClickHouse flushes, {fl['sum']:.1f}s in total "
             f"(mean {1000 * fl['sum'] / max(1, fl['count']):.0f} ms)")
    finally:
        await admin.close()

    # --- latency at a fixed offered load -------------------------------------------
    if not l_items:
        return
    await latency_phase(args, procs, data_dir, dsn, bootstrap, metrics_port, l_items, results)


async def latency_phase(args, procs, data_dir, dsn, bootstrap, metrics_port, items: list[Item], results: dict) -> None:
    from core.codecs import codec_for
    from core.kafka import make_producer

    codec = codec_for("Ping")
    producer = make_producer(bootstrap)  # as the gateway's: acks=all, idempotent, linger 5 ms
    await producer.start()
    text_before = scrape(metrics_port)
    before = histogram(text_before, "ping_to_event_seconds")
    flush_before = histogram(text_before, "sink_flush_seconds", {"sink": "worker"})
    batch_before = histogram(text_before, "batch_size", {"stage": "worker"})
    acked = [0, 0]

    def on_ack(fut):
        if fut.cancelled() or fut.exception() is not None:
            acked[1] += 1
        else:
            acked[0] += 1

    total = len(items)
    window_s = args.warmup + args.duration
    t0_ms = _now_ms() + 500
    start_at(items, t0_ms)
    _log(f"offered load in real time: {total:,} pings from {len({i.device for i in items}):,} devices over "
         f"{window_s:g}s ({total / window_s:,.0f} pings/s), each device at its own pace")
    sent = 0
    late_ms: list[int] = []  # how far behind its schedule each send was (the sender's own lag)
    try:
        while sent < total:
            now = _now_ms()
            while sent < total and items[sent].order_ms <= now:
                it = items[sent]
                it.received_ms = _now_ms()
                late_ms.append(it.received_ms - it.order_ms)
                fut = await producer.send("pings", codec.encode(it.record(it.received_ms)), key=it.key)
                fut.add_done_callback(on_ack)
                sent += 1
            await asyncio.sleep(0.002)
        t_sent_ms = _now_ms()
        await producer.flush()
    finally:
        await producer.stop()
    late_ms.sort()
    offered = total / ((t_sent_ms - t0_ms) / 1000)
    _log(f"sent {total:,} in {(t_sent_ms - t0_ms) / 1000:.1f}s ({offered:,.0f}/s achieved; acked {acked[0]:,}, "
         f"failed {acked[1]}; sends behind schedule p50 {_pct(late_ms, 0.5):.0f} ms, p99 {_pct(late_ms, 0.99):.0f} ms)")

    # Every accepted ping reaches ClickHouse within the hold of the last one sent; wait for all of them.
    t_wait = time.perf_counter()
    counts: dict[str, int] = {}
    while time.perf_counter() - t_wait < args.tail_timeout:
        counts = await asyncio.to_thread(table_counts, data_dir, dsn, "L")
        if counts["pings"] + counts["pings_rejected"] >= total:
            break
        await asyncio.sleep(0.5)
    done_ms = _now_ms()
    text_after = scrape(metrics_port)
    after = histogram(text_after, "ping_to_event_seconds")
    fl = hist_diff(histogram(text_after, "sink_flush_seconds", {"sink": "worker"}), flush_before)
    bs = hist_diff(histogram(text_after, "batch_size", {"stage": "worker"}), batch_before)
    handled = counts.get("pings", 0) + counts.get("pings_rejected", 0)
    kept_up = handled >= total and done_ms - t_sent_ms < 10_000
    _log(f"worker handled {handled:,} of {total:,} L pings, the last {(done_ms - t_sent_ms) / 1000:.1f}s after the "
         f"last send; " + ("it kept up" if kept_up else "it did NOT keep up: the latencies below are mostly queueing"))
    warm_ms = t0_ms + int(args.warmup * 1000)
    row = await asyncio.to_thread(
        query, data_dir, dsn,
        "SELECT count(), quantilesExact(0.5, 0.9, 0.99, 1)(toUnixTimestamp64Milli(ingested_at) - "
        "toUnixTimestamp64Milli(received_at)) FROM hotspot.pings "
        f"WHERE device_id LIKE 'L%' AND toUnixTimestamp64Milli(received_at) >= {warm_ms}", 120.0)
    n_rows, qs = int(row[0][0]), [float(x) for x in row[0][1]]
    h = hist_diff(after, before)
    results["latency"] = {
        "offered_per_s": offered, "target_per_s": args.rate, "sent": total, "handled": handled,
        "kept_up": kept_up, "sender_behind_ms_p99": _pct(late_ms, 0.99),
        "ping_to_row": {"n": n_rows, "p50_ms": qs[0], "p90_ms": qs[1], "p99_ms": qs[2], "max_ms": qs[3]},
        "ping_to_event": {"events": h["count"], "p50": hist_quantile(h, 0.5), "p90": hist_quantile(h, 0.9),
                          "p99": hist_quantile(h, 0.99), "mean_s": h["sum"] / h["count"] if h["count"] else float("nan"),
                          "buckets": h["buckets"]},
        "rows": counts,
        "worker": {"batches": bs["count"], "batch_mean": bs["sum"] / max(1, bs["count"]), "flushes": fl["count"],
                   "flush_ms_mean": 1000 * fl["sum"] / max(1, fl["count"]), "flush_p99": hist_quantile(fl, 0.99)},
    }
    r = results["latency"]
    _log(f"latency, pings that arrived after the first {args.warmup:g}s:")
    v = r["ping_to_row"]
    _log(f"    ping -> row in ClickHouse (ingested_at - received_at)  p50 {v['p50_ms']:6.0f} ms  p90 {v['p90_ms']:6.0f} ms  "
         f"p99 {v['p99_ms']:6.0f} ms  max {v['max_ms']:6.0f} ms  (n={v['n']:,})")
    e = r["ping_to_event"]
    _log(f"    ping -> event durable (worker ping_to_event_seconds)  p50 {e['p50']}, p90 {e['p90']}, p99 {e['p99']} "
         f"({e['events']:.0f} events)")
    w = r["worker"]
    _log(f"    worker: {w['batches']:.0f} micro-batches (mean {w['batch_mean']:,.0f} pings), {w['flushes']:.0f} ClickHouse "
         f"flushes (mean {w['flush_ms_mean']:.0f} ms, p99 {w['flush_p99']})")
    _log("    ClickHouse L rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


def print_profile(work: Path, kind: str, top: int, out_dir: Path) -> None:
    import shutil

    src = work / ("worker.prof" if kind == "cprofile" else "worker.pyisession")
    if not src.exists():
        _log(f"no profile at {src} (did the worker stop cleanly?)")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    dst = out_dir / src.name
    shutil.copyfile(src, dst)
    _log(f"profile saved to {dst}")
    if kind == "cprofile":
        import pstats

        stats = pstats.Stats(str(dst))
        by_pkg: dict[str, float] = {}
        for (filename, _line, _fn), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
            by_pkg[_package(filename)] = by_pkg.get(_package(filename), 0.0) + tt
        total = sum(by_pkg.values())
        print(f"\n--- worker cProfile, own time by package (main thread, {total:.1f}s) ---")
        for pkg, t in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {pkg:<28} {t:7.1f}s {100 * t / total:5.1f}%")
        for key in ("tottime", "cumulative"):
            print(f"\n--- worker cProfile, top {top} by {key} (main thread only) ---", flush=True)
            stats.strip_dirs().sort_stats(key).print_stats(top)
        return
    from pyinstrument.session import Session

    root = Session.load(str(dst)).root_frame()
    if root is None:
        return
    total = root.time
    own: dict[str, float] = {}

    def walk(frame, parent_pkg: str):
        path = frame.file_path or ""
        if frame.is_synthetic or not path or path.startswith("<"):
            # [self], [await] and C functions: time of the Python frame that called them
            pkg = parent_pkg
            if parent_pkg == "stdlib selectors" and ("poll" in frame.function or "select" in frame.function):
                pkg = "idle (epoll/select)"
        else:
            pkg = _package(path, frame.function)
        kids = sum(c.time for c in frame.children)
        own[pkg] = own.get(pkg, 0.0) + max(0.0, frame.time - kids)
        for c in frame.children:
            walk(c, pkg)

    walk(root, "[root]")
    idle = own.get("idle (epoll/select)", 0.0)
    busy = total - idle
    print(f"\n--- worker pyinstrument: {total:.1f}s sampled on the main thread, {idle:.1f}s of it idle in epoll "
          f"(waiting: ClickHouse flush thread, Kafka, timers); busy {busy:.1f}s ---")
    print("own (self) time by package, % of busy:")
    for pkg, t in sorted(own.items(), key=lambda kv: -kv[1])[:16]:
        if pkg != "idle (epoll/select)":
            print(f"  {pkg:<28} {t:7.1f}s {100 * t / busy:5.1f}%")
    print("inclusive time of chosen subtrees (they overlap), % of busy:")
    for label, pred in _SUBTREES:
        t = _inclusive(root, pred)
        print(f"  {label:<62} {t:7.1f}s {100 * t / busy:5.1f}%")
    print("\n--- worker pyinstrument call tree (main thread; frames under 1% hidden) ---")
    from pyinstrument.renderers import ConsoleRenderer

    text = ConsoleRenderer(unicode=False, color=False, processor_options={"filter_threshold": 0.01}).render(
        Session.load(str(dst)))
    lines = text.splitlines()
    print("\n".join(lines[:top * 4]))


def _package(path: str, function: str = "") -> str:
    p = path.replace("\\", "/")
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in p:
            rest = p.split(marker, 1)[1]
            head = rest.split("/", 1)[0]
            return ("stdlib " if marker.startswith("/lib") else "") + head.removesuffix(".py")
    if "/work/main/" in p or p.startswith(str(REPO)):
        rel = p.split(str(REPO) + "/", 1)[-1]
        return "project " + rel.split("/", 1)[0] + ("/" + rel.split("/")[1] if rel.count("/") else "")
    return p or "[C / synthetic]"


def _fn(file_part: str, function: str | None = None):
    return lambda f: (f.file_path or "").endswith(file_part) and (function is None or f.function == function)


_SUBTREES = [
    ("streams/pipeline.py LivePipeline._handle (whole batch, main thread)", _fn("streams/pipeline.py", "_handle")),
    ("  processors.batch.process_batch", _fn("processors/batch.py", "process_batch")),
    ("  Codec.decode_many", _fn("schemas/codec.py", "decode_many")),
    ("  ping_from_record (Ping objects)", _fn("formats/records.py", "ping_from_record")),
    ("  Emitter._add_rows (ClickHouse rows)", _fn("streams/emit.py", "_add_rows")),
    ("  Emitter._queue_publish (events, rejects encoded)", _fn("streams/emit.py", "_queue_publish")),
    ("Checkpoint.run (LivePipeline._checkpoint)", _fn("streams/checkpoint.py", "run")),
    ("  DeviceStates.write_dirty (changelog: to_bytes + send)", _fn("streams/statestore.py", "write_dirty")),
    ("LivePipeline._next_batch (getmany)", _fn("streams/pipeline.py", "_next_batch")),
    ("aiokafka producer (sender, accumulator, socket writes)", lambda f: "aiokafka/producer/" in (f.file_path or "")),
    ("aiokafka consumer fetcher", lambda f: (f.file_path or "").endswith("aiokafka/consumer/fetcher.py")),
    ("logging (any logger call, incl. the debug records)", lambda f: (f.file_path or "").endswith("logging/__init__.py")),
    ("ClickHouseWriter.flush_async (main-thread side only)", _fn("sinks/writer.py", "flush_async")),
    ("LivePipeline.expire (timer)", _fn("streams/pipeline.py", "expire")),
]


def _inclusive(frame, pred) -> float:
    if pred(frame):
        return frame.time
    return sum(_inclusive(c, pred) for c in frame.children)


def summary(results: dict) -> None:
    print("\n================ live pipeline benchmark ================")
    m = results.get("machine", {})
    print(f"machine   {m.get('cpu')} ({m.get('cores')} cores), Python {m.get('python')}, load before {m.get('load')}")
    s = results.get("settings", {})
    print(f"settings  partitions {s.get('partitions')}, worker_batch_max {s.get('worker_batch_max')}, "
          f"batch window {s.get('worker_batch_window_s')} s, reorder window {s.get('reorder_window_s')} s, "
          f"hold {s.get('reorder_hold_s')} s, "
          f"{s.get('clickhouse')}, commit interval 1 s, acks=all")
    ld = results.get("load", {})
    if ld:
        print(f"load      preload {ld['preload_pings']:,} pings / {ld['preload_devices']:,} devices; "
              f"offered load {ld['latency_pings']:,} pings / {ld['latency_devices']:,} devices")
    b = results.get("baseline")
    p = results.get("pipeline")
    if b:
        print(f"baseline  bare aiokafka consume + decode: {b['msgs_per_s']:,.0f} msgs/s ({b['messages']:,} in {b['seconds']:.2f}s)")
    if p:
        print(f"pipeline  one worker, Kafka -> ClickHouse: {p['pings_per_s']:,.0f} pings/s "
              f"({p['committed']:,}/{p['of']:,} in {p['drain_s']:.1f}s; 10-90%: {p['pings_per_s_10_90']:,.0f}/s)"
              f"   target >= 20,000")
    if b and p and b["msgs_per_s"]:
        print(f"ratio     pipeline / baseline = {p['pings_per_s'] / b['msgs_per_s']:.3f}")
    lat = results.get("latency")
    if lat:
        r, e = lat["ping_to_row"], lat["ping_to_event"]
        print(f"latency   {lat['offered_per_s']:,.0f} pings/s offered in real time: ping->row p50 {r['p50_ms']:.0f} ms, "
              f"p99 {r['p99_ms']:.0f} ms; ping->event p50 {e['p50']}, p99 {e['p99']}   target p99 <= 2,000 ms")
        if not lat["kept_up"]:
            print("          the worker did not keep up: these latencies are queueing")
    print("==========================================================", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--officers", type=int, default=100, help="simulated officers (default 100)")
    ap.add_argument("--hours", type=float, default=3.0, help="simulated shift, hours (default 3)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--replicas", type=int, default=20, help="windows of the shift, each its own devices (default 20)")
    ap.add_argument("--replica-step-min", type=float, default=7.5, help="offset between replica windows, minutes")
    ap.add_argument("--preload", type=int, default=300_000, help="pings preloaded for the throughput phase")
    ap.add_argument("--preload-window-min", type=float, default=25.0)
    ap.add_argument("--rate", type=float, default=5000.0, help="offered load, pings/s (default 5000)")
    ap.add_argument("--duration", type=float, default=40.0, help="offered-load seconds (default 40)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of offered load not counted in latency")
    ap.add_argument("--tail-timeout", type=float, default=40.0)
    ap.add_argument("--drain-timeout", type=float, default=200.0)
    ap.add_argument("--partitions", type=int, help="HOTSPOT_PARTITIONS for the run (default: settings)")
    ap.add_argument("--batch-max", type=int, help="HOTSPOT_WORKER_BATCH_MAX for the run (default: settings)")
    ap.add_argument("--batch-window", type=float, help="HOTSPOT_WORKER_BATCH_WINDOW_S for the run (default: settings)")
    ap.add_argument("--processing", help="HOTSPOT_PROCESSING for the run, e.g. '{\"reorder_hold_s\": 0.25}'")
    ap.add_argument("--profile", nargs="?", const="pyinstrument", choices=("pyinstrument", "cprofile"),
                    help="run the worker under a profiler (default pyinstrument) and print where its time goes")
    ap.add_argument("--profile-out", type=Path, default=Path(tempfile.gettempdir()) / "hotspot-bench-profile",
                    help="where the profile file is kept")
    ap.add_argument("--profile-top", type=int, default=35)
    ap.add_argument("--deadline", type=float, default=570.0, help="stop everything after this many seconds")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hotspot-bench-pipeline-"))
    data_dir = work / "data"
    data_dir.mkdir()
    kafka_port, controller_port, metrics_port = _free_port(), _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env.update({"HOTSPOT_DATA_DIR": str(data_dir), "HOTSPOT_KAFKA_PORT": str(kafka_port),
                "HOTSPOT_KAFKA_CONTROLLER_PORT": str(controller_port),
                "HOTSPOT_WORKER_METRICS_PORT": str(metrics_port), "PYTHONUNBUFFERED": "1"})
    if args.partitions:
        env["HOTSPOT_PARTITIONS"] = str(args.partitions)
    if args.batch_max:
        env["HOTSPOT_WORKER_BATCH_MAX"] = str(args.batch_max)
    if args.batch_window:
        env["HOTSPOT_WORKER_BATCH_WINDOW_S"] = str(args.batch_window)
    if args.processing:
        env["HOTSPOT_PROCESSING"] = args.processing
    os.environ.clear()
    os.environ.update(env)  # this process reads the same settings as its children
    bootstrap = f"127.0.0.1:{kafka_port}"
    procs = Processes(env, work, kafka_port, controller_port)
    results: dict = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                                 "load": " ".join(f"{x:.2f}" for x in os.getloadavg())},
                     "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                     "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    _log(f"work dir {work}; kafka {bootstrap}, controller {controller_port}, worker metrics {metrics_port}")
    status = 0
    try:
        asyncio.run(asyncio.wait_for(run(args, procs, data_dir, bootstrap, metrics_port, results), args.deadline))
    except (asyncio.TimeoutError, TimeoutError):
        _log(f"overall deadline of {args.deadline:.0f}s reached; stopping")
        status = 1
    except KeyboardInterrupt:
        _log("interrupted; stopping")
        status = 130
    except Exception as exc:
        _log(f"FAILED: {type(exc).__name__}: {exc}")
        if procs.worker is not None:
            print(procs.worker_tail(), flush=True)
        status = 1
    finally:
        rc = procs.stop_worker()
        if procs.worker is not None:
            _log(f"worker stopped (exit status {rc})")
        if procs.broker_started:
            procs.stop_broker()
            _log("broker stopped")
    summary(results)
    if args.profile:
        print_profile(work, args.profile, args.profile_top, args.profile_out)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    if args.keep or status:
        _log(f"kept {work} (worker log: {procs.worker_log})")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return status


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
