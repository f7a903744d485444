"""OwnTracks pings over their device's rate limit: held on disk, released at the device's rate.

Owns the promise to OwnTracks phones that a rate limit never loses a ping. The
app counts any HTTP answer as delivered, so answering 429 would throw the
ping away. Instead a rate-limited OwnTracks request is appended (fsync'd) to a
queue of its own device, a `Spool` under `<data_dir>/gateway-held/<device>/`,
and answered 200. A background task releases each device's queue into Kafka
in order, no faster than the device's token bucket allows (the same bucket
its fresh pings draw on). While a device has held pings its new pings join
the end of its queue, so its order is kept and the release is the only
consumer of its tokens. Nothing is released while the outage spool still has
pings, so a device's older spooled pings reach Kafka first.

The disk is bounded twice: `max_per_device` held pings per device (plus at
most one request body) and `max_total` over all devices. A request that would
pass a bound gets no answer yet: it is parked until the release makes room,
then held and answered 200. Not answering is the only honest reply to a
client that takes every answer as delivery: a phone whose request times out
keeps the message and sends it again, and the worker drops the duplicate
(device, ts). Parked requests are bounded too (per device, in total, and in
time, `park_s`); past those bounds the answer is 429 with Retry-After, which
only a client with many requests in flight for one device, or one that waits
longer than `park_s` for an answer, ever sees. See docs/decisions.md.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from gateway import metrics
from gateway.ratelimit import RateLimiter
from gateway.spool import Record, Spool
from core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class HeldPings:
    def __init__(self, root: Path, limiter: RateLimiter, *, max_per_device: int, max_total: int,
                 park_s: float, park_per_device: int, park_total: int, release_batch: int = 500):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.limiter = limiter
        self.max_per_device = max_per_device
        self.max_total = max_total
        self.park_s = park_s
        self.park_per_device = park_per_device
        self.park_total = park_total
        self.release_batch = release_batch
        self._queues: dict[str, Spool] = {}
        for path in sorted(p for p in self.root.iterdir() if p.is_dir()):
            queue = Spool(path)
            if queue.depth:
                self._queues[path.name] = queue
            else:
                queue.close()
                shutil.rmtree(path)
        self._total = sum(q.depth for q in self._queues.values())
        self._lock = asyncio.Lock()        # appends, and a drained queue's removal, one at a time
        self._work = asyncio.Event()       # something was held
        self._freed = asyncio.Event()      # replaced on every release: parked requests wait on the one they saw
        self._parked: dict[str, int] = {}
        self._parked_total = 0
        self._task: asyncio.Task | None = None
        metrics.HELD_DEPTH.set(self._total)

    # ---- state ----------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Held pings over all devices."""
        return self._total

    def device_depth(self, device_id: str) -> int:
        queue = self._queues.get(device_id)
        return queue.depth if queue is not None else 0

    def holding(self, device_id: str) -> bool:
        """True while the device has held pings: its new ones must queue behind them."""
        return device_id in self._queues

    # ---- holding --------------------------------------------------------------
    async def hold(self, device_id: str, records: list[Record]) -> bool:
        """Append to the device's queue and fsync; False, with nothing written, if a bound is reached."""
        count = len(records)
        async with self._lock:
            queue = self._queues.get(device_id)
            have = queue.depth if queue is not None else 0
            # An empty queue takes one request whatever its size, so a batch larger
            # than the cap is not parked forever; the body limit bounds it.
            if (have and have + count > self.max_per_device) or self._total + count > self.max_total:
                return False
            if queue is None:
                queue = await asyncio.to_thread(Spool, self.root / device_id)
                self._queues[device_id] = queue
            await asyncio.to_thread(queue.append, records)
            self._total += count
        metrics.HELD.inc(count)
        metrics.HELD_DEPTH.set(self._total)
        self._work.set()
        return True

    async def admit(self, device_id: str, records: list[Record]) -> bool:
        """Hold the records, waiting unanswered for room up to `park_s`; False if they could not be held."""
        freed = self._freed
        if await self.hold(device_id, records):
            return True
        if self._parked.get(device_id, 0) >= self.park_per_device or self._parked_total >= self.park_total:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.park_s
        self._parked[device_id] = self._parked.get(device_id, 0) + 1
        self._parked_total += 1
        metrics.PARKED.set(self._parked_total)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(freed.wait(), remaining)
                except asyncio.TimeoutError:
                    return False
                freed = self._freed  # taken before trying, so a release during the try is not missed
                if await self.hold(device_id, records):
                    return True
        finally:
            self._parked[device_id] -= 1
            if not self._parked[device_id]:
                del self._parked[device_id]
            self._parked_total -= 1
            metrics.PARKED.set(self._parked_total)

    # ---- releasing ------------------------------------------------------------
    def start(self, publisher) -> None:
        self._task = asyncio.create_task(self._release_loop(publisher), name="owntracks-held-release")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None
        for queue in self._queues.values():
            queue.close()

    async def _release_loop(self, publisher) -> None:
        from gateway.publisher import KafkaUnavailable

        backoff_s = 0.2
        while True:
            next_s = 1.0
            outage_spool = publisher.spool.depth if publisher.spool is not None else 0
            if self._queues and publisher.ready and not outage_spool:
                try:
                    next_s = await self._release_round(publisher)
                    backoff_s = 0.2
                except KafkaUnavailable as exc:
                    log.info("held OwnTracks pings wait for Kafka: %s", exc)
                    next_s, backoff_s = backoff_s, min(backoff_s * 2, 5.0)
            elif self._queues:
                next_s = 0.2  # Kafka away or the outage spool first: look again soon
            if next_s > 0:
                try:
                    await asyncio.wait_for(self._work.wait(), timeout=next_s)  # pacing to the devices' rates
                except asyncio.TimeoutError:
                    pass
            self._work.clear()

    async def _release_round(self, publisher) -> float:
        """Release what each device's bucket allows now; seconds until the next device may release."""
        next_s = 1.0
        for device_id in list(self._queues):
            queue = self._queues[device_id]
            taken, wait_s = self.limiter.take_up_to(device_id, min(queue.depth, self.release_batch))
            if taken:
                records, pos = await asyncio.to_thread(queue.read, taken)
                await publisher.send_records(records)
                async with self._lock:
                    await asyncio.to_thread(queue.commit, pos, len(records))
                    if queue.depth == 0:
                        queue.close()
                        del self._queues[device_id]
                        await asyncio.to_thread(shutil.rmtree, queue.dir, True)
                    # Counted out only now: a depth of 0 (what `drained` waits for) means nothing
                    # is left on disk either, not a queue whose removal is still under way.
                    self._total -= len(records)
                metrics.HELD_RELEASED.inc(len(records))
                metrics.HELD_DEPTH.set(self._total)
                freed, self._freed = self._freed, asyncio.Event()
                freed.set()
            if device_id in self._queues:
                next_s = min(next_s, wait_s)
        return next_s

    async def drained(self, timeout_s: float) -> bool:
        """Wait until nothing is held (tests, shutdown); False if not within `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._total > 0:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.05)  # polling a condition under a deadline
        return True
