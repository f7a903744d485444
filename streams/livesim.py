"""Simulated officers in real time: `hotspot simulate --live` and `hotspot run --simulate N`.

The seeded simulator (processors.simulation) plans a shift that began
`backlog_s` ago, as if the officers were already out when the system started;
pings are published to Kafka `pings` when their delivery time comes, stamped
with the real arrival time, so the worker sees what it would see from phones.
The part of the shift already past is sent at once, like phones catching up.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger("hotspot.simulate")


def plan(officers: int, seed: int, hours: float, start_ms: int, hotspots: Sequence[Mapping] | None = None):
    from processors.simulation import Simulation, scenario_config

    config = scenario_config("mixed", seed=seed, officers=officers, hours=hours, start_ms=start_ms,
                             shift_stagger_s=0.0)
    sim = Simulation(config, list(hotspots) if hotspots else None)
    sim.run()
    return sim


async def run_live(bootstrap: str, partitions: int, officers: int, seed: int = 1, hours: float = 12.0,
                   backlog_s: float = 600.0, publish_town: bool = True, stop: asyncio.Event | None = None,
                   say=print) -> int:
    """Publish the simulated shift in real time until it ends or `stop` is set; return pings sent."""
    from schemas.codec import Codec
    from streams.hotspotfeed import publish, read_all, records_from_geojson
    from streams.kafka import ensure_topics, make_producer

    await ensure_topics(bootstrap, partitions)
    current = await read_all(bootstrap)
    features = None
    if current:
        import json

        # Patrol the hot spots the force has published.
        features = [{"type": "Feature", "geometry": json.loads(r["geometry_geojson"]),
                     "properties": {"id": r["id"], "name": r["name"], "briefing": r.get("briefing", ""),
                                    "buffer_m": r.get("buffer_m") or 0.0}}
                    for _, r in sorted(current.items())]  # a fixed order: the same seed plans the same shift
    now_ms = int(time.time() * 1000)
    sim = await asyncio.to_thread(plan, officers, seed, hours, now_ms - int(backlog_s * 1000), features)
    if not current and publish_town:
        records = records_from_geojson(sim.feature_collection(), now_ms)
        await publish(bootstrap, records, partitions)
        say(f"published the simulated town's {len(records)} hot spots")
    codec = Codec("Ping")
    producer = make_producer(bootstrap, linger_ms=10)
    await producer.start()
    sent = 0
    started_mono = time.monotonic()
    start_ms = sim.config.start_ms + int(backlog_s * 1000)  # wall time of started_mono on the plan's clock
    try:
        for p in sim.pings():
            if stop is not None and stop.is_set():
                break
            wait_s = (p.delivered_ms - start_ms) / 1000 - (time.monotonic() - started_mono)
            if wait_s > 0:
                if stop is not None:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=wait_s)
                        break
                    except asyncio.TimeoutError:
                        pass
                else:
                    await asyncio.sleep(wait_s)  # real-time pacing of a live simulation
            record = {"device_id": p.device_id, "ts_ms": int(p.ts_ms), "lat": float(p.lat), "lon": float(p.lon),
                      "accuracy_m": _opt(p.accuracy_m), "speed_mps": _opt(p.speed_mps),
                      "heading_deg": _opt(p.heading_deg), "altitude_m": _opt(p.altitude_m),
                      "battery": None if p.battery is None else float(p.battery) / 100.0, "received_ms": int(time.time() * 1000),
                      "source": "simulator", "extra": {}}
            await producer.send("pings", codec.encode(record), key=p.device_id.encode())
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def _opt(v):
    if v is None:
        return None
    f = float(v)
    return None if f != f else f  # NaN means "not reported"
