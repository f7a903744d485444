"""Followers of compacted Kafka topics, and hot spots on `hotspots`: publish, retire, read, follow.

The worker, the gateway (officer API, control room), the CLI and the simulators all follow these
topics, so the followers live in the platform layer.

The topic is the system's record of which hot spots exist: key = hot-spot id,
value = the Avro `Hotspot` (its `published_ms` is the version), a tombstone
(null value) retires one. Compaction keeps the newest value per id, so any
process can rebuild the full set by reading every partition from the start.

Every worker follows the whole topic (not just its partitions: any device may
walk into any hot spot) with a consumer outside the consumer group, and is told
each time the set changes so it can rebuild its index without a restart.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from core import topics
from core.codecs import codec_for
from schemas.codec import Codec
from core.kafka import ensure_topics, make_consumer, make_producer

TOPIC = topics.HOTSPOTS
log = logging.getLogger(__name__)

def codec() -> Codec:
    return codec_for("Hotspot")


async def publish(bootstrap: str, records: Iterable[dict], partitions: int = 4) -> int:
    """Write each record (the Avro `Hotspot` as a dict) under its id; return the count."""
    return await publish_records(bootstrap, TOPIC, "Hotspot", ((r["id"], r) for r in records), partitions)


async def retire(bootstrap: str, ids: Iterable[str]) -> int:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(TOPIC, None, key=i.encode()) for i in ids]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


def apply(current: dict[str, dict], key: bytes | None, value: bytes | None,
          retired: dict[str, int] | None = None, timestamp_ms: int = 0, codec_: Codec | None = None) -> bool:
    """Fold one topic record into `current` (and tombstones into `retired`); True if the set changed."""
    if key is None:
        return False  # unkeyed records cannot be hot spots; ignore rather than crash
    hid = key.decode("utf-8", errors="replace")
    if value is None:
        if retired is not None:
            retired[hid] = timestamp_ms
        return current.pop(hid, None) is not None
    try:
        record = (codec_ or codec()).decode(value)
    except Exception as exc:  # a bad record must not stop every worker; it is logged and skipped
        log.error("skipping unreadable record %r: %s", hid, exc)
        return False
    if current.get(hid) == record:
        return False
    current[hid] = record
    if retired is not None:
        retired.pop(hid, None)
    return True


class CompactedFeed:
    """Follows a compacted topic from its beginning and keeps the current value of every key.

    `await feed.start()` returns once everything on the topic when it was called
    has been read, so a worker never matches pings against a half-loaded set.
    `on_change(hotspots, retired)` is awaited after each poll that changed the
    set; `retired` maps the ids retired so far to their tombstones' times.
    """

    def __init__(self, bootstrap: str,
                 on_change: Callable[[dict[str, dict], dict[str, int]], Awaitable[None] | None] | None = None,
                 topic: str = TOPIC, schema: str = "Hotspot"):
        self.bootstrap = bootstrap
        self.topic = topic
        self.codec = codec_for(schema)
        self.on_change = on_change
        self.current: dict[str, dict] = {}
        self.retired: dict[str, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self, timeout_s: float = 60.0) -> None:
        self._consumer = make_consumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                       auto_offset_reset="earliest", group_id=None)
        try:
            await self._consumer.start()
        except BaseException:
            await self._consumer.stop()
            raise
        parts = self._consumer.partitions_for_topic(self.topic)
        if not parts:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(self.topic) or set()
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = await self._consumer.end_offsets(tps) if tps else {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while await self._behind(end):
            if loop.time() > deadline:
                raise TimeoutError(f"could not read topic {self.topic} to its end within {timeout_s}s")
            await self._poll_once(notify=False)
        await self._notify()
        self._task = asyncio.create_task(self._follow(), name="hotspot-feed")

    async def _behind(self, end: dict) -> bool:
        for tp, offset in end.items():
            if await self._consumer.position(tp) < offset:
                return True
        return False

    async def _poll_once(self, notify: bool = True) -> None:
        batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
        changed = False
        for records in batches.values():
            for r in records:
                changed |= apply(self.current, r.key, r.value, self.retired, r.timestamp, self.codec)
        if changed and notify:
            await self._notify()

    async def _notify(self) -> None:
        if self.on_change is not None:
            result = self.on_change(dict(self.current), dict(self.retired))
            if asyncio.iscoroutine(result):
                await result

    async def _follow(self) -> None:
        while True:
            try:
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be restarting; keep following
                log.warning("following %s: %s; retrying", self.topic, exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.stop()


HotspotFeed = CompactedFeed  # the hot spots are the default topic and schema


async def publish_records(bootstrap: str, topic: str, schema: str, keyed: Iterable[tuple[str, dict]],
                          partitions: int = 4) -> int:
    """Write Avro records under their keys to a compacted topic; return the count once all are acknowledged."""
    await ensure_topics(bootstrap, partitions)
    codec_ = codec_for(schema)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        futures = [await producer.send(topic, codec_.encode(r), key=k.encode()) for k, r in keyed]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def read_all(bootstrap: str, timeout_s: float = 60.0) -> dict[str, dict]:
    feed = HotspotFeed(bootstrap)
    await feed.start(timeout_s)
    await feed.stop()
    return feed.current
