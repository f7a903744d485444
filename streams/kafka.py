"""The one place that makes Kafka clients and knows the topics.

Topic names and their shapes are contracts (DESIGN.md §2). Every data topic is
created up front with the configured partition count, because Faust refuses to
join topics whose partition counts disagree, and the broker is run with
automatic topic creation off so a typo cannot create a stray topic.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    retention_ms: int | None = None


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("pings"),
    TopicSpec("hotspots", compacted=True),
    TopicSpec("patrol-events"),
    TopicSpec("assignments"),
    TopicSpec("activity"),
    TopicSpec("pings-rejected"),
    TopicSpec("allocations", compacted=True),
)


def make_producer(bootstrap_servers: str, **overrides) -> AIOKafkaProducer:
    """Idempotent, acks=all producer: a send that returns was durably written."""
    options = dict(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        compression_type=None,
        request_timeout_ms=15000,
    )
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_admin(bootstrap_servers: str, **overrides) -> AIOKafkaAdminClient:
    options = dict(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    options.update(overrides)
    return AIOKafkaAdminClient(**options)


async def ensure_topics(bootstrap_servers: str, partitions: int, topics=TOPICS) -> list[str]:
    """Create missing topics; return the names created. Existing ones are left as they are."""
    admin = make_admin(bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = []
        for spec in topics:
            if spec.name in existing:
                continue
            config = {}
            if spec.compacted:
                config["cleanup.policy"] = "compact"
            if spec.retention_ms is not None:
                config["retention.ms"] = str(spec.retention_ms)
            wanted.append(NewTopic(spec.name, num_partitions=partitions, replication_factor=1, topic_configs=config))
        if not wanted:
            return []
        try:
            response = await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            return []  # another process won the race; the topics are there either way
        return _created_topics(response)
    finally:
        await admin.close()


# Kafka error code of a topic that already exists: the broker's metadata cache
# can lag a creation by a moment, so a second caller may ask for it again.
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


def _created_topics(response) -> list[str]:
    """Names the broker created, from a CreateTopics response.

    The broker answers per topic. A topic that already exists is not ours to
    report; any other per-topic error (a bad config, a policy refusal) is raised,
    since carrying on would leave the system without a topic it needs.
    """
    created, failed = [], []
    for entry in response.topic_errors:
        topic, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else None
        if code == 0:
            created.append(topic)
        elif code != _TOPIC_ALREADY_EXISTS:
            failed.append(f"{topic}: error {code}{f' ({message})' if message else ''}")
    if failed:
        raise KafkaError("could not create topics: " + "; ".join(failed))
    return created


async def describe_topics(bootstrap_servers: str) -> dict[str, int]:
    """Topic name -> partition count, internal topics excluded."""
    admin = make_admin(bootstrap_servers)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if not n.startswith("__")]
        if not names:
            return {}
        described = await admin.describe_topics(names)
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def wait_for_metadata(bootstrap_servers: str, timeout_s: float) -> None:
    """Return once the cluster answers a metadata request; raise TimeoutError otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # Refused connections are the expected answer while the broker boots; the
    # caller reports the last one if the deadline passes.
    quiet = logging.getLogger("aiokafka")
    saved_level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        await _poll_metadata(bootstrap_servers, loop, deadline)
    finally:
        quiet.setLevel(saved_level)


async def _poll_metadata(bootstrap_servers: str, loop, deadline: float) -> None:
    last: Exception | None = None
    timeout_s = deadline - loop.time()
    while loop.time() < deadline:
        admin = make_admin(bootstrap_servers, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(admin.start(), timeout=max(0.5, deadline - loop.time()))
            await asyncio.wait_for(admin.describe_cluster(), timeout=max(0.5, deadline - loop.time()))
            return
        except (KafkaConnectionError, KafkaError, OSError, asyncio.TimeoutError) as exc:
            last = exc
        finally:
            try:
                await admin.close()
            except Exception:  # a half-started client may fail to close; nothing to release
                pass
        await asyncio.sleep(0.25)  # poll interval of a readiness loop bounded by the deadline
    raise TimeoutError(f"no metadata from {bootstrap_servers} within {timeout_s:.0f}s ({last!r})")
