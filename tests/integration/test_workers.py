"""Several workers in one group on 8 partitions and one embedded store.

The first worker owns the ClickHouse store and writes for the others, which join it
(`HOTSPOT_WORKER_JOIN_STORE`, sinks/shared_store.py). Two workers share the partitions,
a third joins while pings flow, then the store's owner is killed with -9: another worker
takes the store over, the killed one's partitions move with their device state, and the
tables equal what `hotspot replay` makes of the same pings as the broker holds them (with
their arrival times: see tests/integration/test_pipeline.py).
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest

from tests.conftest import HOTSPOT, free_port
from tests.integration.live import LiveSystem, simulate, wait_until
from tests.integration.test_pipeline import (NO_SILENCE, _accounted, _line_count, as_arrived,
                                             assert_live_equals_replay, live_tables, pings_by_source)

pytestmark = pytest.mark.integration
PARTITIONS = 8


async def group_assignment(bootstrap: str) -> dict[str, list[int]]:
    from core.kafka import group_assignment as assignment

    return await assignment(bootstrap, "hotspot-worker", "pings")


async def committed_equals_end(bootstrap: str, group: str = "hotspot-worker") -> dict[int, tuple[int, int]]:
    """Partition -> (committed offset of the group, end offset) for every `pings` partition."""
    from aiokafka import TopicPartition

    from core.kafka import make_consumer

    consumer = make_consumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition("pings", p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (await consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


def test_two_then_three_workers_share_8_partitions_and_killing_the_store_owner_changes_no_result(make_broker, tmp_path):
    sim = simulate(tmp_path / "sim", officers=16, hours=1.5, seed=71, ago_h=2)
    total = _line_count(sim / "pings.csv")
    broker = make_broker()
    broker.start()
    live = LiveSystem(tmp_path / "var", broker, NO_SILENCE,
                      extra_env={"HOTSPOT_PARTITIONS": str(PARTITIONS), "HOTSPOT_WORKER_JOIN_STORE": "true"})
    live.hotspot("hotspots", "publish", str(sim / "hotspots.geojson"))
    workers = [live.start_worker()]  # owns the store
    workers.append(live.start_worker(extra_env={"HOTSPOT_WORKER_METRICS_PORT": str(free_port())}))
    sender = subprocess.Popen([HOTSPOT, "pings", "send", "--rate", str(max(200, total // 30)), str(sim / "pings.csv")],
                              env=live.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: len(asyncio.run(group_assignment(broker.bootstrap))) == 2, 60, "two members in the group")
        wait_until(lambda: _accounted(live) >= total // 4, 300, "a quarter of the pings")
        workers.append(live.start_worker(extra_env={"HOTSPOT_WORKER_METRICS_PORT": str(free_port())}))
        wait_until(lambda: _accounted(live) >= total // 2, 300, "half of the pings")
        os.killpg(workers[0].pid, signal.SIGKILL)  # the store's owner, mid-stream
        workers[0].wait(timeout=60)
        _, err = sender.communicate(timeout=600)
        assert sender.returncode == 0, err
        wait_until(lambda: _accounted(live) >= total, 300, f"all {total} pings stored or rejected")
        # Replay of what Kafka holds, with the broker's arrival times: a sender slowed by a busy machine
        # reorders pings past the live hold, and that is in the data both paths see (test_pipeline).
        expected = as_arrived(live, sim, tmp_path, total)

        assert _accounted(live) == total
        assert int(live.scalar("SELECT count() FROM hotspot.pings FINAL")) == total - len(expected["rejected"])
        assert_live_equals_replay(live_tables(live), expected)
        assert pings_by_source(live) == {"replay": total - len(expected["rejected"])}
        assert "owns the store now" in live.log_text(), "a joined worker took the store over"
        # The two survivors own every partition between them, and all is committed.
        members = wait_until(lambda: (m := asyncio.run(group_assignment(broker.bootstrap))) and len(m) == 2 and m,
                             60, "the killed worker to leave the group")
        owned = sorted(p for parts in members.values() for p in parts)
        assert owned == list(range(PARTITIONS)) and all(members.values()), members
        offsets = wait_until(lambda: (o := asyncio.run(committed_equals_end(broker.bootstrap)))
                             and all(c == e for c, e in o.values()) and o, 60, "every partition committed to its end")
        assert sum(e for _, e in offsets.values()) == total
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker logs (tail) ---\n{live.log_text()[-5000:]}") from exc
    finally:
        if sender.poll() is None:
            sender.kill()
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
