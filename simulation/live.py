"""Simulated officers in real time: `hotspot simulate --live` and `hotspot run --simulate N`.

The seeded simulator (simulation.simulate) plans a shift that began
`backlog_s` before sending starts, as if the officers were already out when the
system started. Planning a whole shift takes tens of seconds, so officers are
planned one at a time and the clock is read only once the first is planned:
from then on the plan's time maps to real time, every ping is stamped in real
time and sent when its delivery time comes, and the part of a shift already
past is sent at once, like phones catching up (`LiveSchedule`). Each run's
officers have device ids of their own (`run_prefix`), so a restarted run never
continues an earlier run's devices from another place: nothing it sends is
`late` or a teleport for the worker.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from core import topics

log = logging.getLogger("hotspot.simulate")


def run_prefix(now_ms: int) -> str:
    """Device-id prefix of one live run: `sim-HHMMSS` (UTC start time); runs start seconds apart at least."""
    return "sim-" + datetime.fromtimestamp(now_ms / 1000, timezone.utc).strftime("%H%M%S")


def plan(officers: int, seed: int, hours: float, start_ms: int, hotspots: Sequence[Mapping] | None = None,
         device_prefix: str = "sim", eager: bool = True):
    from simulation.config import scenario_config
    from simulation.simulate import Simulation

    config = scenario_config("mixed", seed=seed, officers=officers, hours=hours, start_ms=start_ms,
                             shift_stagger_s=0.0, device_prefix=device_prefix)
    sim = Simulation(config, list(hotspots) if hotspots else None)
    return sim.run() if eager else sim


def published_features(current: Mapping[str, Mapping]) -> list[dict] | None:
    """The hot spots the force has published (core.feeds.read_all) as the features officers patrol,
    in a fixed order so the same seed plans the same shift; None when there are none."""
    import json

    if not current:
        return None
    return [{"type": "Feature", "geometry": json.loads(r["geometry_geojson"]),
             "properties": {"id": r["id"], "name": r["name"], "briefing": r.get("briefing", ""),
                            "buffer_m": r.get("buffer_m") or 0.0}}
            for _, r in sorted(current.items())]


@dataclass(frozen=True)
class LiveSchedule:
    """Maps a plan's clock onto real time once planning is done enough to start sending.

    `plan_start_ms` is the shift start on the plan's clock, `backlog_s` how far into the shift sending
    starts, `clock_ms` the real time read when sending starts (after planning, never before it).
    """

    plan_start_ms: int
    backlog_s: float
    clock_ms: int

    @property
    def offset_ms(self) -> int:
        return self.clock_ms - (self.plan_start_ms + int(self.backlog_s * 1000))

    def stamp_ms(self, plan_ms: int) -> int:
        """Real time of a plan time (a fix's ts_ms, or when a ping is due)."""
        return plan_ms + self.offset_ms

    def due_ms(self, delivered_ms: int) -> int:
        """When to send a ping: its delivery time in real time, or at once for the shift already past."""
        return max(self.clock_ms, self.stamp_ms(delivered_ms))


async def run_live(bootstrap: str, partitions: int, officers: int, seed: int = 1, hours: float = 12.0,
                   backlog_s: float = 600.0, publish_town: bool = True, stop: asyncio.Event | None = None,
                   say=print, device_prefix: str | None = None) -> int:
    """Publish the simulated shift in real time until it ends or `stop` is set; return pings sent."""
    from core.codecs import codec_for
    from formats.hotspots import records_from_geojson
    from core.feeds import publish, read_all
    from core.kafka import ensure_topics, make_producer

    await ensure_topics(bootstrap, partitions)
    current = await read_all(bootstrap)
    features = published_features(current)
    now_ms = int(time.time() * 1000)
    prefix = device_prefix or run_prefix(now_ms)
    sim = plan(officers, seed, hours, now_ms - int(backlog_s * 1000), features, device_prefix=prefix, eager=False)
    if not current and publish_town:
        records = records_from_geojson(sim.feature_collection(), now_ms)
        await publish(bootstrap, records, partitions)
        say(f"published the simulated town's {len(records)} hot spots")
    codec = codec_for("Ping")
    producer = make_producer(bootstrap, linger_ms=10)
    await producer.start()
    say(f"officers {', '.join(sim.device_ids[:3])}{', ...' if officers > 3 else ''} "
        f"(ids of this run: {prefix}-NNN)")
    # (due real ms, officer, index) of each planned officer's next ping; officers join as they are planned
    due: list[tuple[int, int, int]] = []
    planned: dict[int, list] = {}
    schedule: LiveSchedule | None = None
    joined = asyncio.Event()

    async def plan_officers() -> None:
        nonlocal schedule
        for i in range(officers):
            pings = await asyncio.to_thread(sim.officer_pings, i)
            if schedule is None:  # the clock is read after planning, so the first pings are stamped in real time
                schedule = LiveSchedule(sim.config.start_ms, backlog_s, int(time.time() * 1000))
            planned[i] = pings
            if pings:
                heapq.heappush(due, (schedule.due_ms(pings[0].delivered_ms), i, 0))
            joined.set()

    sent = 0
    planner = asyncio.create_task(plan_officers())
    try:
        while not (stop is not None and stop.is_set()):
            if not due:
                if planner.done():
                    planner.result()  # raises what planning raised
                    break
                joined.clear()
                await _wait_any(joined, stop, None)
                continue
            due_ms, i, k = due[0]
            wait_s = (due_ms - time.time() * 1000) / 1000
            if wait_s > 0:
                joined.clear()  # a newly planned officer may have pings due before this one
                await _wait_any(joined, stop, wait_s)
                continue
            heapq.heappop(due)
            p = planned[i][k]
            record = {"device_id": p.device_id, "ts_ms": schedule.stamp_ms(int(p.ts_ms)), "lat": float(p.lat),
                      "lon": float(p.lon), "accuracy_m": _opt(p.accuracy_m), "speed_mps": _opt(p.speed_mps),
                      "heading_deg": _opt(p.heading_deg), "altitude_m": _opt(p.altitude_m),
                      "battery": None if p.battery is None else float(p.battery) / 100.0,
                      "received_ms": int(time.time() * 1000), "source": "simulator", "extra": {}}
            await producer.send(topics.PINGS, codec.encode(record), key=p.device_id.encode())
            sent += 1
            if k + 1 < len(planned[i]):
                heapq.heappush(due, (schedule.due_ms(planned[i][k + 1].delivered_ms), i, k + 1))
            else:
                del planned[i]
        await producer.flush()
    finally:
        planner.cancel()
        await producer.stop()
    return sent


async def _wait_any(joined: asyncio.Event, stop: asyncio.Event | None, timeout_s: float | None) -> None:
    """Until an officer joins, `stop` is set, or `timeout_s` passes (real-time pacing of a live simulation)."""
    waits = [asyncio.create_task(joined.wait())]
    if stop is not None:
        waits.append(asyncio.create_task(stop.wait()))
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _opt(v):
    if v is None:
        return None
    f = float(v)
    return None if f != f else f  # NaN means "not reported"
