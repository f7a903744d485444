"""Token buckets per key: a device may send `rate` pings per second with bursts up to `burst`.

The same buckets, keyed by source address, count the unknown OsmAnd identifiers
an address sends (`wait_s` asks without taking). Buckets that have refilled
carry no information and are dropped once there are more than `max_keys`, so
a scan from many addresses cannot grow the table without end.
"""
from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float, clock=time.monotonic, max_keys: int = 100_000):
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at)

    def wait_s(self, key: str, cost: float = 1.0) -> float:
        """Seconds until `cost` could pass for `key` (0.0: now); takes nothing."""
        tokens, at = self._buckets.get(key, (self.burst, 0.0))
        tokens = min(self.burst, tokens + (self.clock() - at) * self.rate)
        cost = min(cost, self.burst)
        if tokens >= cost:
            return 0.0
        return (cost - tokens) / self.rate if self.rate > 0 else float("inf")

    def _prune(self, now: float) -> None:
        full_after_s = self.burst / self.rate if self.rate > 0 else float("inf")
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= full_after_s]:
            del self._buckets[key]

    def take(self, device_id: str, cost: float = 1.0) -> float:
        """0.0 if `cost` pings may pass now (and takes them), else seconds until they may."""
        cost = min(cost, self.burst)  # a batch larger than the burst passes when the bucket is full
        now = self.clock()
        if len(self._buckets) > self.max_keys:
            self._prune(now)
        tokens, at = self._buckets.get(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= cost:
            self._buckets[device_id] = (tokens - cost, now)
            return 0.0
        self._buckets[device_id] = (tokens, now)
        return (cost - tokens) / self.rate if self.rate > 0 else float("inf")

    def take_up_to(self, device_id: str, most: int) -> tuple[int, float]:
        """Take as many whole pings as the bucket holds now, at most `most`.

        Returns (taken, seconds until one more ping may pass). Used to release
        held pings at exactly the device's allowed rate.
        """
        now = self.clock()
        tokens, at = self._buckets.get(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        taken = max(0, min(int(most), int(tokens)))
        tokens -= taken
        self._buckets[device_id] = (tokens, now)
        if tokens >= 1:
            return taken, 0.0
        return taken, (1 - tokens) / self.rate if self.rate > 0 else float("inf")
