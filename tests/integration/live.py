"""Driving the live system from tests: a worker process, `hotspot` commands, replay outputs.

Everything goes through the real CLI against a real broker and the embedded
ClickHouse engine; the worker owns its store, so reads go through `hotspot sql`
(which asks the worker's read-only query server).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from streams.readiness import is_ready
from tests.conftest import HOTSPOT, free_port, running, wait_until  # noqa: F401  (wait_until re-exported for tests)



@dataclass
class LiveSystem:
    """One data directory and broker; workers started and killed at will."""

    data_dir: Path
    broker: object  # tests.integration.conftest.Broker
    processing: dict = field(default_factory=dict)
    worker: subprocess.Popen | None = None
    logs: list[Path] = field(default_factory=list)
    metrics_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)  # more HOTSPOT_* settings (Kafka security, ...)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
        env.update({
            "HOTSPOT_DATA_DIR": str(self.data_dir),
            "HOTSPOT_KAFKA_BOOTSTRAP": self.broker.bootstrap,
            "HOTSPOT_WORKER_METRICS_PORT": str(self.metrics_port),
            "HOTSPOT_WORKER_EXPIRE_INTERVAL_S": "1",
            "HOTSPOT_PROCESSING": json.dumps(self.processing),
        })
        env.update(self.extra_env)
        return env

    def hotspot(self, *args: str, timeout_s: float = 300) -> str:
        proc = subprocess.run([HOTSPOT, *args], capture_output=True, text=True, env=self.env, timeout=timeout_s)
        if proc.returncode != 0:
            raise AssertionError(f"hotspot {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def start_worker(self, wait_ready: bool = True, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a worker (the newest is `self.worker`); `extra_env` for this one only (its metrics port, ...)."""
        log = self.data_dir / f"worker-{len(self.logs)}.log"
        self.logs.append(log)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            self.worker = subprocess.Popen([HOTSPOT, "worker", "--loglevel", "info"], stdout=fh, stderr=subprocess.STDOUT,
                                           env={**self.env, **(extra_env or {})}, start_new_session=True)
        if wait_ready:
            wait_until(lambda: is_ready(self.data_dir, self.worker.pid) or self.worker.poll() is not None, 180,
                       "the worker to say it is ready (streams.readiness)")
            assert self.worker.poll() is None, f"worker exited:\n{log.read_text()[-3000:]}"
        return self.worker

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in self.logs if p.exists())

    def kill_worker(self) -> None:
        """kill -9: no shutdown code of ours runs."""
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=60)
        wait_until(lambda: not (self.data_dir / "clickhouse.owner").exists() or not running(self.worker.pid), 30,
                   "the killed worker to be gone")

    def stop_worker(self) -> None:
        if self.worker and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            try:
                self.worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.worker.pid, signal.SIGKILL)
                self.worker.wait(timeout=30)

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """The running worker's /metrics, scraped: (sample name, sorted labels) -> value."""
        import re
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        found = re.findall(r"worker metrics on (http://\S+/metrics)", self.logs[-1].read_text())
        assert found, "the worker did not say where its metrics are"
        with urllib.request.urlopen(found[-1], timeout=10) as resp:
            text = resp.read().decode()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def sql(self, query: str) -> list[dict]:
        out = self.hotspot("sql", "--format", "json", query)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def scalar(self, query: str):
        rows = self.sql(query)
        return next(iter(rows[0].values())) if rows else None


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def simulate(out: Path, *, officers: int, hours: float, seed: int, ago_h: float, extra: tuple[str, ...] = ()) -> Path:
    """A simulated shift that ended shortly before now (pings older than 7 days are stale by design)."""
    start = datetime.now(timezone.utc).timestamp() - ago_h * 3600
    start_iso = datetime.fromtimestamp(int(start), timezone.utc).isoformat()
    subprocess.run([HOTSPOT, "simulate", "--out", str(out), "--officers", str(officers), "--hours", str(hours),
                    "--seed", str(seed), "--start", start_iso, *extra], check=True, capture_output=True, timeout=300)
    return out


def replay(sim: Path, out: Path, processing: dict | None = None, pings: Path | None = None) -> dict[str, list[dict]]:
    """`hotspot replay` of the simulation's pings (or of `pings`, e.g. an export of what Kafka received)."""
    params = [a for k, v in (processing or {}).items() for a in ("--param", f"{k}={v}")]
    subprocess.run([HOTSPOT, "replay", "--pings", str(pings or sim / "pings.csv"),
                    "--hotspots", str(sim / "hotspots.geojson"), "--out", str(out), *params],
                   check=True, capture_output=True, timeout=300)
    return {name: read_csv(out / f"{name}.csv") for name in ("visits", "stops", "modes", "rejected")}


def export_arrived(bootstrap: str, out: Path, expected: int) -> Path:
    """The `pings` topic as a replay file, in the order each partition holds it, each ping with its arrival.

    Arrival (`received_at`) is the broker's append time, the clock the live worker's
    reorder hold runs on (core.kafka.ARRIVAL_CLOCK). Replaying this file is
    replaying exactly what the worker was given, as it was given: whether a sender
    stalled, or a machine was busy, is in the data, so the comparison with the live
    tables does not depend on how fast anything ran.
    """
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from core.codecs import codec_for
    from core.kafka import describe_topics

    async def read() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            parts = [TopicPartition("pings", p) for p in range((await describe_topics(bootstrap))["pings"])]
            ends = await consumer.end_offsets(parts)
            assert sum(ends.values()) == expected, f"{sum(ends.values())} pings in Kafka, {expected} sent"
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            got: dict[int, list] = {tp.partition: [] for tp in parts}
            while any(len(got[tp.partition]) < ends[tp] for tp in parts):
                for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                    got[tp.partition].extend(records)
            return [r for p in sorted(got) for r in got[p]]
        finally:
            await consumer.stop()

    codec = codec_for("Ping")
    columns = ("device_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery",
               "received_at")
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in asyncio.run(read()):
            p = codec.decode(r.value)
            received = p["received_ms"] or None  # 0: a backfill, no arrival time
            if received is not None and r.timestamp_type == 1:  # LogAppendTime: what the worker uses
                received = r.timestamp
            w.writerow([p["device_id"], p["ts_ms"], *("" if p[k] is None else repr(float(p[k])) for k in columns[2:9]),
                        "" if received is None else received])
    return out
