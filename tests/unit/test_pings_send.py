"""`hotspot pings send` of history: refused without --backfill, processed with it.

A backfill ping travels with no arrival time (Avro `received_ms` 0), so the
worker's pure path (`formats.records.ping_from_record`, then `processors.batch`)
orders it by fix time and does not age-check it, as `hotspot replay` does.
"""
from __future__ import annotations

import os
import subprocess
import time

from processors.batch import expire, process_batch
from processors.config import ProcessingConfig
from processors.geofence import HotspotIndex
from processors.model import STALE_TIMESTAMP, Ping
from processors.validation import check_ping
from core.codecs import codec_for
from replay.send import BACKFILL_EXTRA, count_stale
from formats.records import ping_from_record, ping_record
from tests.conftest import HOTSPOT

DAY_MS = 86_400_000


def _through_kafka(p: Ping, extra=None) -> Ping:
    """What the worker makes of a ping `hotspot pings send` published: Avro out, Avro in."""
    codec = codec_for("Ping")
    return ping_from_record(codec.decode(codec.encode(ping_record(p, "replay", extra))))


def _track(start_ms: int, n: int, received_ms: int | None) -> list[Ping]:
    return [Ping("van-12", start_ms + i * 10_000, 51.5 + i * 1e-5, -0.12, 8.0, 1.0, None, None, None, received_ms)
            for i in range(n)]


def test_a_backfill_ping_reaches_the_worker_with_no_arrival_time_and_passes_validation():
    now_ms = int(time.time() * 1000)
    ping = _through_kafka(_track(now_ms - 30 * DAY_MS, 1, None)[0], BACKFILL_EXTRA)
    assert ping.received_ms is None
    assert check_ping(ping, ProcessingConfig()) is None


def test_backfill_pings_older_than_7_days_are_accepted_while_the_same_pings_sent_live_are_stale():
    cfg = ProcessingConfig()
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - 8 * DAY_MS
    index = HotspotIndex.from_hotspots([])

    live = [_through_kafka(p) for p in _track(start_ms, 20, now_ms)]
    result = process_batch({}, live, index, cfg)
    assert [r.reason for r in result.rejected] == [STALE_TIMESTAMP] * 20

    backfill = [_through_kafka(p, BACKFILL_EXTRA) for p in _track(start_ms, 20, None)]
    result = process_batch({}, backfill, index, cfg)
    assert result.rejected == []
    # The live timer releases a quiet device's pings that carry no arrival time by the wall clock.
    released = expire(result.states, now_ms, index, cfg)
    assert released.rejected == []
    assert [a.ping.ts_ms for a in result.accepted + released.accepted] == [p.ts_ms for p in backfill]


def _csv(path, start_ms: int, n: int, step_ms: int = 60_000):
    from datetime import datetime, timezone

    lines = ["device_id,ts,lat,lon"]
    for i in range(n):
        ts = datetime.fromtimestamp((start_ms + i * step_ms) / 1000, timezone.utc).isoformat()
        lines.append(f"van-12,{ts},{51.5 + i * 1e-4},-0.12")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_count_stale_counts_pings_older_than_the_limit(tmp_path):
    now_ms = int(time.time() * 1000)
    old = _csv(tmp_path / "old.csv", now_ms - 9 * DAY_MS, 30)
    recent = _csv(tmp_path / "recent.csv", now_ms - DAY_MS, 10)
    assert count_stale([old, recent], None, 7 * 86400.0, now_ms) == (30, 40)


def _send(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    # Nothing listens there: the command must decide before it tries Kafka.
    env.update(HOTSPOT_DATA_DIR=str(tmp_path / "var"), HOTSPOT_KAFKA_BOOTSTRAP="127.0.0.1:9")
    return subprocess.run([HOTSPOT, "pings", "send", *args], env=env, capture_output=True, text=True, timeout=120)


def test_sending_a_historical_export_without_backfill_is_refused_naming_the_flag(tmp_path):
    export = _csv(tmp_path / "export.csv", int(time.time() * 1000) - 30 * DAY_MS, 500)
    done = _send(tmp_path, str(export))
    assert done.returncode == 1
    assert "sent" not in done.stdout
    last = done.stderr.strip().splitlines()[-1]
    assert "500 of 500 pings are older than the worker's staleness limit" in last
    assert "stale_timestamp" in last and "--backfill" in last and "nothing sent" in last


def test_a_rejected_backfill_ping_keeps_a_received_at_the_table_ttl_does_not_drop_at_once():
    from processors.model import DUPLICATE, RejectedPing
    from formats.records import rejected_row
    from formats.records import reject_record

    codec = codec_for("Ping")
    ts_ms = int(time.time() * 1000) - 9 * DAY_MS
    record = codec.decode(codec.encode(ping_record(_track(ts_ms, 1, None)[0], "replay", BACKFILL_EXTRA)))
    row = rejected_row(reject_record(RejectedPing(ping_from_record(record), DUPLICATE), record), "pings/0/7")
    # pings_rejected expires rows pings_ttl_days after received_at; 1970 would expire it at once.
    assert row["received_at"] == ts_ms and row["rejected_at"] == ts_ms
