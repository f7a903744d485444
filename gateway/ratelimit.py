"""Per-device token buckets: a device may send `rate` pings per second with bursts up to `burst`."""
from __future__ import annotations

import time


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float, clock=time.monotonic):
        self.rate = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at)

    def take(self, device_id: str, cost: float = 1.0) -> float:
        """0.0 if `cost` pings may pass now (and takes them), else seconds until they may."""
        cost = min(cost, self.burst)  # a batch larger than the burst passes when the bucket is full
        now = self.clock()
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
