"""ClickHouse going away while the worker runs, then coming back: consumption holds, nothing is lost.

The worker (the same `LivePipeline` `hotspot worker` runs, on the real broker and
the embedded engine) runs from tests/integration/outage_worker.py so that the
outage can be switched on and off at its client with a flag file: while it
exists, every insert fails as a refused connection would. The store itself
stays readable, which lets the test watch that nothing is written meanwhile.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from tests.conftest import HOTSPOT, REPO
from tests.integration.live import simulate, wait_until
from tests.integration.test_pipeline import (NO_SILENCE, _accounted, _line_count, _live, as_arrived,
                                             assert_live_equals_replay, live_tables)


def _backlog(bootstrap: str) -> int:
    """Pings in Kafka beyond the worker group's committed offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from core.kafka import make_admin
    from streams.pipeline import GROUP_ID

    async def count() -> int:
        admin, consumer = make_admin(bootstrap), AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await admin.start()
        await consumer.start()
        try:
            tps = [TopicPartition("pings", p) for p in range(4)]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(GROUP_ID, partitions=tps)
            return sum(ends[tp] - max(0, committed[tp].offset if tp in committed else 0) for tp in tps)
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(count())


def _split(path, out_dir) -> tuple:
    """The pings file cut in two at its middle row (each device's pings stay in order across the two)."""
    lines = path.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    first, second = out_dir / "first.csv", out_dir / "second.csv"
    first.write_text(header + "".join(rows[:len(rows) // 2]))
    second.write_text(header + "".join(rows[len(rows) // 2:]))
    return first, len(rows) // 2, second


def test_clickhouse_down_mid_run_pauses_consumption_and_loses_nothing_when_back(make_broker, tmp_path):
    sim = simulate(tmp_path / "sim", officers=6, hours=1.5, seed=61, ago_h=2)
    total = _line_count(sim / "pings.csv")
    first, in_first, second = _split(sim / "pings.csv", tmp_path)
    live = _live(make_broker, tmp_path, hotspots=sim / "hotspots.geojson")
    flag = tmp_path / "clickhouse-down"
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "tests.integration.outage_worker", str(flag)], cwd=REPO,
                                  env=live.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    sender = None
    try:
        # The first half is stored before the outage begins, so the outage falls mid-run by
        # construction, not by racing a sender (on a busy machine the race was sometimes lost).
        live.hotspot("pings", "send", str(first))
        wait_until(lambda: _accounted(live) == in_first, 120, "the first half of the pings to be stored")
        flag.touch()
        sender = subprocess.Popen([HOTSPOT, "pings", "send", "--rate", "600", str(second)], env=live.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # An insert that was merely slow (a busy machine) pauses consumption too: what counts is a
        # pause after an insert was refused. From then on the one insert in flight is the refused
        # one, retried until the outage ends, so nothing more can land.
        def paused_by_the_outage() -> bool:
            text = log.read_text()
            refused = text.find("test outage: insert refused")
            return refused >= 0 and "consumption paused" in text[refused:]

        wait_until(paused_by_the_outage, 120, "consumption to pause while inserts are refused")
        _, err = sender.communicate(timeout=300)  # the rest of the pings reach Kafka meanwhile
        assert sender.returncode == 0, err
        assert _accounted(live) == in_first < total, "nothing is written while ClickHouse is down"
        assert _backlog(live.broker.bootstrap) > 0, "the pings wait in Kafka"
        text = log.read_text()
        assert text.count("test outage: insert refused") >= 2, "the writer kept retrying"
        assert "handed back" not in text, "the worker keeps its partitions through the outage"
        assert worker.poll() is None

        flag.unlink()  # ClickHouse is back
        wait_until(lambda: _accounted(live) >= total, 300, "the worker to catch up")
        assert _accounted(live) == total
        assert "consumption resumed" in log.read_text()
        assert_live_equals_replay(live_tables(live), as_arrived(live, sim, tmp_path, total))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log (tail) ---\n{log.read_text()[-3000:]}") from exc
    finally:
        if flag.exists():
            flag.unlink()
        if sender is not None and sender.poll() is None:
            sender.kill()
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
