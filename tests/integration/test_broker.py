"""The local broker is a real Apache Kafka 4 in KRaft mode, run and stopped by `hotspot broker`."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from core.kafka import TopicSpec, describe_topics, ensure_topics, make_producer
from tests.conftest import HOTSPOT, running


async def _produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            await consumer._client.force_metadata_update()
            parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        got: list[tuple[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(got) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend((r.key, r.value) for r in records)
        return got
    finally:
        await consumer.stop()


def test_status_reports_a_live_kraft_broker_with_listener_pid_and_version(kafka_broker):
    proc = kafka_broker.status("--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["running"] is True
    assert status["listener"] == kafka_broker.bootstrap
    assert status["version"].startswith("4.")
    assert status["pid"] == kafka_broker.pid()
    cmdline = Path(f"/proc/{status['pid']}/cmdline").read_bytes()
    assert b"kafka.Kafka" in cmdline
    props = (kafka_broker.data_dir / "server.properties").read_text()
    assert "process.roles=broker,controller" in props  # KRaft, no ZooKeeper


def test_aiokafka_round_trip_keeps_keys_values_and_per_key_order(kafka_broker):
    spec = TopicSpec("roundtrip")
    asyncio.run(ensure_topics(kafka_broker.bootstrap, 3, topics=(spec,)))
    items = [(f"dev-{i % 5}".encode(), f"ping-{i}".encode()) for i in range(200)]
    asyncio.run(_produce(kafka_broker.bootstrap, "roundtrip", items))
    got = asyncio.run(_consume_all(kafka_broker.bootstrap, "roundtrip", len(items)))
    assert sorted(got) == sorted(items)
    for key in {k for k, _ in items}:
        assert [v for k, v in got if k == key] == [v for k, v in items if k == key]


def test_topics_are_created_with_the_requested_partition_counts(kafka_broker):
    specs = (TopicSpec("six-parts"), TopicSpec("compacted-two", compacted=True))
    created = asyncio.run(ensure_topics(kafka_broker.bootstrap, 6, topics=specs[:1]))
    created += asyncio.run(ensure_topics(kafka_broker.bootstrap, 2, topics=specs[1:]))
    assert created == ["six-parts", "compacted-two"]
    assert asyncio.run(ensure_topics(kafka_broker.bootstrap, 6, topics=specs)) == []  # idempotent
    described = asyncio.run(describe_topics(kafka_broker.bootstrap))
    assert described["six-parts"] == 6
    assert described["compacted-two"] == 2


def test_data_survives_a_broker_stop_and_start(make_broker):
    broker = make_broker()
    broker.start()
    asyncio.run(ensure_topics(broker.bootstrap, 2, topics=(TopicSpec("durable"),)))
    items = [(b"k%d" % i, b"v%d" % i) for i in range(50)]
    asyncio.run(_produce(broker.bootstrap, "durable", items))
    pid_before = broker.pid()
    broker.stop()
    assert not running(pid_before)
    broker.start()
    assert broker.pid() != pid_before
    got = asyncio.run(_consume_all(broker.bootstrap, "durable", len(items)))
    assert sorted(got) == sorted(items)


def test_second_start_on_a_running_data_dir_refuses_and_stop_leaves_no_java(make_broker):
    broker = make_broker()
    broker.start()
    pid = broker.pid()
    again = broker._cli("start", check=False)
    assert again.returncode != 0
    assert "already running" in again.stderr
    assert broker.pid() == pid  # the running broker was left alone
    broker.stop()
    assert not running(pid)
    ours = subprocess.run(["pgrep", "-f", str(broker.data_dir)], capture_output=True, text=True)
    assert ours.stdout.strip() == ""
    status = broker.status()
    assert status.returncode != 0 and "stopped" in status.stdout


def test_missing_java_is_named_in_one_clear_line(tmp_path, cli_env):
    env = {**cli_env, "PATH": str(tmp_path / "empty-bin")}
    env.pop("JAVA_HOME", None)
    proc = subprocess.run([HOTSPOT, "broker", "start", "--data-dir", str(tmp_path / "k")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "java not found" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_maven_is_named_when_the_jars_are_not_cached(tmp_path, cli_env):
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("java"), bin_dir / "java")
    env = {**cli_env, "PATH": str(bin_dir), "HOTSPOT_KAFKA_JARS_DIR": str(tmp_path / "jars")}
    proc = subprocess.run([HOTSPOT, "broker", "start", "--data-dir", str(tmp_path / "k")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert "mvn not found" in proc.stderr and "Maven" in proc.stderr and "Traceback" not in proc.stderr


def test_a_cluster_id_that_begins_with_a_dash_still_formats(make_broker):
    # URL-safe base64 ids begin with "-" one time in 64; the storage tool must not read it as an option.
    broker = make_broker()
    broker.data_dir.mkdir(parents=True)
    (broker.data_dir / "cluster.id").write_text("-e5DMVdpQMqyTH7eBDk3Hg\n")
    broker.start()
    assert "cluster.id=-e5DMVdpQMqyTH7eBDk3Hg" in (broker.data_dir / "data" / "meta.properties").read_text()
