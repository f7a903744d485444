"""Pings to Kafka, acknowledged only once Kafka has them, with the spool as the fallback.

Owns the gateway's delivery promise. `send` returns only after the producer's
futures resolved (acks=all, idempotent producer from `core.kafka`), or
raises `KafkaUnavailable`; the HTTP layer answers 503 and the client retries.
`send_or_spool` is for clients that take any reply as delivery (OwnTracks):
what Kafka cannot take in time is fsync'd into the spool first, and a
background task replays the spool in order when Kafka is back. While the
spool is not empty, new pings for it join the end of the spool so a device's
pings stay in order.

The producer is anything with aiokafka's `send(topic, value, key=)` coroutine
returning an awaitable: the real one in production (created, started and
restarted here), any object a test passes in.

Readiness: a connected producer does not notice a broker that went away until
a send fails, so a background probe asks every `probe_interval_s` whether a
write could succeed now (metadata answered, every partition of the topic has a
leader, and each leader is reachable) and keeps the answer in `problem`
(None: Kafka can take writes). `/healthz` reports it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from core import topics
from gateway import metrics
from gateway.spool import Record, Spool
from core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge in time; nothing may be acknowledged to the client."""


class Publisher:
    def __init__(self, *, codec, topic: str = topics.PINGS, producer: Any = None,
                 producer_factory: Callable[[], Any] | None = None, spool: Spool | None = None,
                 ack_timeout_s: float = 10.0, replay_batch: int = 500, probe_interval_s: float = 1.0,
                 on_connect: Callable[[], Any] | None = None):
        if producer is None and producer_factory is None:
            raise ValueError("give a producer or a producer_factory")
        self.codec = codec
        self.topic = topic
        self.producer = producer
        self._factory = producer_factory
        self._owns_producer = producer is None
        self.spool = spool
        self.ack_timeout_s = ack_timeout_s
        self.replay_batch = replay_batch
        self.probe_interval_s = probe_interval_s
        self._on_connect = on_connect  # coroutine function run before a new producer is used (topics)
        self.problem: str | None = "not connected to Kafka yet"  # None: Kafka can take writes now
        self._tasks: list[asyncio.Task] = []
        self._partitioner = DefaultPartitioner()
        self._spooled = asyncio.Event() if spool is not None else None
        self._spool_lock = asyncio.Lock()
        if spool is not None:
            metrics.SPOOL_DEPTH.set(spool.depth)

    @property
    def ready(self) -> bool:
        return self.producer is not None

    # ---- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        if self.producer is None:
            if not await self._try_connect():
                self._tasks.append(asyncio.create_task(self._connect_loop(), name="kafka-connect"))
        self.problem = await self.probe()
        self._tasks.append(asyncio.create_task(self._probe_loop(), name="kafka-probe"))
        if self.spool is not None:
            self._tasks.append(asyncio.create_task(self._replay_loop(), name="spool-replay"))
            if self.spool.depth:
                self._spooled.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        if self._owns_producer and self.producer is not None:
            try:
                await self.producer.stop()  # flushes what is in flight
            except Exception as exc:
                log.warning("kafka producer did not stop cleanly: %s", exc)
            self.producer = None
        if self.spool is not None:
            self.spool.close()

    async def _try_connect(self) -> bool:
        producer = self._factory()
        try:
            await producer.start()
            if self._on_connect is not None:
                await self._on_connect()
        except Exception as exc:
            log.warning("kafka not reachable or not ready yet (%s); retrying in the background", exc)
            try:
                await producer.stop()
            except Exception:
                pass  # a producer that never started has nothing to release
            return False
        self.producer = producer
        return True

    def _replace_producer(self, broken) -> None:
        """Swap a producer that failed a send for a fresh one.

        An idempotent producer whose batches expired during an outage keeps
        failing every later send (OutOfOrderSequenceNumber) even once the
        broker is back; only a new producer, with a new producer id, recovers.
        Injected producers belong to the caller and are left alone.
        """
        if not self._owns_producer or self.producer is not broken:
            return
        self.producer = None  # until reconnected: native answers 503 at once, OwnTracks goes to the spool
        log.warning("replacing the Kafka producer after a failed send")

        async def close_old():
            try:
                await asyncio.wait_for(broken.stop(), 5)
            except (Exception, asyncio.TimeoutError):
                pass  # its unsent batches were not acknowledged to anyone

        self._tasks.append(asyncio.create_task(close_old(), name="kafka-close-broken"))
        self._tasks.append(asyncio.create_task(self._connect_loop(), name="kafka-reconnect"))

    async def _connect_loop(self) -> None:
        delay = 0.5
        while not await self._try_connect():
            await asyncio.sleep(delay)  # back-off between connection attempts
            delay = min(delay * 2, 5.0)

    # ---- readiness ------------------------------------------------------------
    async def probe(self, timeout_s: float = 3.0) -> str | None:
        """None if Kafka could take a write to the topic now, else why not (one line)."""
        producer = self.producer
        if producer is None:
            return "not connected to Kafka"
        client = getattr(producer, "client", None)
        if client is None:
            return None  # an injected producer: its owner answers for it
        topic = self.topic
        try:
            await asyncio.wait_for(client.add_topic(topic), timeout_s)
            if not await asyncio.wait_for(client.force_metadata_update(), timeout_s):
                return "no Kafka broker answers a metadata request"
            partitions = client.cluster.partitions_for_topic(topic)
            if not partitions:
                return f"Kafka has no topic {topic!r}"
            leaders = {client.cluster.leader_for_partition(TopicPartition(topic, p)) for p in partitions}
            if None in leaders or -1 in leaders:
                return f"a partition of topic {topic!r} has no leader"
            for node in sorted(leaders):
                if not await asyncio.wait_for(client.ready(node), timeout_s):
                    return f"Kafka broker {node}, a leader of topic {topic!r}, is not reachable"
        except asyncio.TimeoutError:
            return f"Kafka did not answer within {timeout_s:g}s"
        except (KafkaError, OSError) as exc:
            return f"Kafka: {type(exc).__name__}: {exc}"
        return None

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self.probe_interval_s)  # the probe's period
            try:
                problem = await self.probe()
            except Exception as exc:  # a probe that fails in an unforeseen way still means "not ready"
                problem = f"Kafka probe failed: {type(exc).__name__}: {exc}"
            if problem != self.problem:
                if problem is None:
                    log.info("Kafka takes writes again")
                else:
                    log.warning("Kafka cannot take writes: %s", problem)
            self.problem = problem

    # ---- sending --------------------------------------------------------------
    def _records(self, pings: list[dict]) -> list[tuple[bytes, bytes]]:
        encode = self.codec.encode
        return [(p["device_id"].encode(), encode(p)) for p in pings]

    async def _send_records(self, records: list[tuple[bytes | None, bytes]]) -> None:
        producer = self.producer
        if producer is None:
            raise KafkaUnavailable("not connected to Kafka yet")
        started = time.perf_counter()

        async def send_all():
            if len(records) > 1 and hasattr(producer, "send_batch"):
                futures = await self._send_batched(producer, records)
            else:
                send = producer.send
                topic = self.topic
                futures = [await send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(send_all(), self.ack_timeout_s)
        except asyncio.TimeoutError:
            metrics.KAFKA_FAILURES.labels("timeout").inc()
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self.ack_timeout_s:g}s") from None
        except Exception as exc:  # aiokafka raises KafkaError subclasses and OSErrors; all mean "not stored"
            metrics.KAFKA_FAILURES.labels("error").inc()
            self._replace_producer(producer)
            raise KafkaUnavailable(f"Kafka refused the pings: {type(exc).__name__}: {exc}") from None
        metrics.KAFKA_ACK_SECONDS.observe(time.perf_counter() - started)

    async def _send_batched(self, producer, records: list[tuple[bytes | None, bytes]]) -> list:
        """One record batch per partition instead of one `send` per ping: half the producer's cost per ping.

        The partition is the one `send` would choose for the key (murmur2 of the
        key over all partitions), so batched and single pings of a device land
        in the same partition, in order.
        """
        partitions = sorted(await producer.partitions_for(self.topic))
        by_partition: dict[int, list] = {}
        for key, value in records:
            by_partition.setdefault(self._partitioner(key, partitions, partitions), []).append((key, value))
        futures = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # batch full: ship it, start another
                    batch.close()
                    futures.append(await self._enqueue(producer, batch, partition))
                    batch = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            batch.close()
            futures.append(await self._enqueue(producer, batch, partition))
        return futures

    async def _enqueue(self, producer, batch, partition: int):
        # aiokafka queues one batch per partition and, while waiting for the
        # slot, shrinks its timeout by the total elapsed time on every wake-up,
        # so busy partitions raise KafkaTimeoutError long before the timeout.
        # Nothing was enqueued then, so trying again is safe; the caller's
        # ack timeout bounds the whole wait.
        while True:
            try:
                return await producer.send_batch(batch, self.topic, partition=partition)
            except KafkaTimeoutError:
                await asyncio.sleep(0)

    def spool_records(self, pings: list[dict]) -> list[Record]:
        """The pings encoded as the records a spool keeps."""
        return [Record(self.topic, key, value) for key, value in self._records(pings)]

    async def send_records(self, records: list[Record]) -> None:
        """Spooled records to Kafka; return once acknowledged, else raise KafkaUnavailable."""
        await self._send_records([(r.key, r.value) for r in records])

    async def send(self, pings: list[dict]) -> None:
        """Return once Kafka acknowledged every ping; raise KafkaUnavailable otherwise."""
        await self._send_records(self._records(pings))

    async def send_to(self, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
        """Already encoded records to another topic (assignments, activity, audit) through the same producer;
        return once acknowledged, else raise KafkaUnavailable."""
        producer = self.producer
        if producer is None:
            raise KafkaUnavailable("not connected to Kafka yet")
        try:
            futures = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.wait_for(asyncio.gather(*futures), self.ack_timeout_s)
        except asyncio.TimeoutError:
            metrics.KAFKA_FAILURES.labels("timeout").inc()
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self.ack_timeout_s:g}s") from None
        except Exception as exc:
            metrics.KAFKA_FAILURES.labels("error").inc()
            self._replace_producer(producer)
            raise KafkaUnavailable(f"Kafka refused the records: {type(exc).__name__}: {exc}") from None

    async def send_or_spool(self, pings: list[dict]) -> str:
        """Kafka, or the durable spool when Kafka cannot take them now. Returns "kafka" or "spool"."""
        records = self._records(pings)
        if self.spool is None:
            await self._send_records(records)
            return "kafka"
        if self.ready and self.spool.depth == 0:
            try:
                await self._send_records(records)
                return "kafka"
            except KafkaUnavailable as exc:
                log.warning("spooling %d pings: %s", len(records), exc)
        await self._append([Record(self.topic, key, value) for key, value in records])
        return "spool"

    async def _append(self, records: list[Record]) -> None:
        async with self._spool_lock:  # one fsync'd append at a time keeps the spool in arrival order
            await asyncio.to_thread(self.spool.append, records)
        metrics.SPOOLED.inc(len(records))
        metrics.SPOOL_DEPTH.set(self.spool.depth)
        self._spooled.set()

    # ---- replay ---------------------------------------------------------------
    async def _replay_loop(self) -> None:
        delay = 0.2
        while True:
            try:
                await asyncio.wait_for(self._spooled.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            if self.spool.depth == 0:
                self._spooled.clear()
                continue
            if not self.ready:
                await asyncio.sleep(delay)
                continue
            records, pos = await asyncio.to_thread(self.spool.read, self.replay_batch)
            if not records:
                self._spooled.clear()
                continue
            try:
                await self._send_records([(r.key, r.value) for r in records])
            except KafkaUnavailable as exc:
                log.info("spool replay waits for Kafka: %s", exc)
                await asyncio.sleep(delay)  # back-off while Kafka is away
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            await asyncio.to_thread(self.spool.commit, pos, len(records))
            metrics.SPOOL_REPLAYED.inc(len(records))
            metrics.SPOOL_DEPTH.set(self.spool.depth)

    async def drained(self, timeout_s: float) -> bool:
        """Wait until the spool is empty (tests, shutdown); False if it is not within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.spool is not None and self.spool.depth > 0:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)  # polling a condition, bounded by the deadline
        return True

