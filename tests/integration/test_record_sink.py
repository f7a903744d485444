"""The worker's record sink (streams/recordsink.py) through kill -9: nothing lost, nothing doubled."""
from __future__ import annotations

import asyncio
import time

import pytest

from core.codecs import codec_for
from core.kafka import make_producer
from tests.integration.live import LiveSystem, wait_until

pytestmark = pytest.mark.integration

# Recent (an hour ago): rows past their retention (sinks/retention.py) would be dropped as they are stored.
BASE_MS = int(time.time() * 1000) - 3_600_000


async def _send(bootstrap: str, first: int, count: int) -> None:
    codec = codec_for("Assignment")
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = []
        for i in range(first, first + count):
            rec = {"assignment_id": f"ks-{i:05d}", "user": f"u{i % 7}", "device_id": f"app-u{i % 7}",
                   "hotspot_id": f"HS-{i % 11}", "assigned_ms": BASE_MS + i, "officer_lat": None,
                   "officer_lon": None, "distance_m": None, "candidates": 3, "trial_day": None, "arm": None,
                   "seed": i, "eligible": ["HS-1", "HS-2"], "weights": [0.5, 0.5], "dosage_known": True,
                   "target_minutes": 15.0}
            futures.append(await producer.send("assignments", codec.encode(rec), key=rec["user"].encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_kill_9_between_waves_loses_and_doubles_nothing(kafka_broker, tmp_path):
    live = LiveSystem(tmp_path / "var", kafka_broker)
    try:
        live.start_worker()
        total = 0
        for wave in range(3):
            asyncio.run(_send(kafka_broker.bootstrap, total, 1500))
            total += 1500
            live.kill_worker()  # at whatever point the sink had reached in this wave
            live.start_worker()
        query = "SELECT count() AS n, uniqExact(assignment_id) AS ids FROM hotspot.assignments FINAL WHERE startsWith(assignment_id, 'ks-')"
        row = wait_until(lambda: [r for r in live.sql(query) if int(r["n"]) >= total], 120, "every assignment stored")[0]
        assert (int(row["n"]), int(row["ids"])) == (total, total)
    finally:
        live.stop_worker()
