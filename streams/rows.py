"""Between `processors` and the Avro contracts: Ping records in, PatrolEvent and RejectedPing out.

The Avro record is the one intermediate shape: the worker publishes it to Kafka
and turns it into ClickHouse rows with `sinks.rows`, so each mapping is
written once (processors → Avro here, Avro → table there).
"""
from __future__ import annotations

import json
from typing import Any

from processors.model import (
    ModeSegment,
    Ping,
    RejectedPing,
    StopEnded,
    StopStarted,
    VisitEnded,
    VisitStarted,
)

def ping_from_record(r: dict) -> Ping:
    """The processors `Ping` of an Avro `Ping`. `received_ms` 0 is "no arrival time" (a historical ping,
    `hotspot pings send --backfill`; the Avro field is not nullable): None, which skips the arrival-based
    checks, as `hotspot replay` does for the same pings."""
    return Ping(
        device_id=r["device_id"], ts_ms=int(r["ts_ms"]), lat=float(r["lat"]), lon=float(r["lon"]),
        accuracy_m=r.get("accuracy_m"), speed_mps=r.get("speed_mps"), heading_deg=r.get("heading_deg"),
        altitude_m=r.get("altitude_m"), battery=r.get("battery"), received_ms=r.get("received_ms") or None,
        source=r.get("source"),
    )


def ping_record(p: Ping, source: str | None = None, extra: dict[str, str] | None = None) -> dict:
    """The Avro `Ping` of a processors `Ping` (for publishers such as `hotspot pings send`).

    `source` defaults to the ping's own, or "other" when it has none.
    """
    return {
        "device_id": p.device_id, "ts_ms": p.ts_ms, "lat": p.lat, "lon": p.lon,
        "accuracy_m": p.accuracy_m, "speed_mps": p.speed_mps, "heading_deg": p.heading_deg,
        "altitude_m": p.altitude_m, "battery": p.battery, "received_ms": p.received_ms or 0,
        "source": source or p.source or "other", "extra": extra or {},
    }


# --- Kafka -------------------------------------------------------------------------

def event_record(e, emitted_ms: int | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"event_id": e.event_id, "type": e.type, "device_id": e.device_id,
                           "hotspot_id": getattr(e, "hotspot_id", None), "ts_ms": e.ts_ms,
                           "emitted_ms": emitted_ms, "visit": None, "stop": None, "mode": None}
    if isinstance(e, VisitStarted):
        rec["visit"] = {"visit_id": e.visit_id, "entered_ms": e.entered_ms, "exited_ms": None, "dwell_s": None,
                        "foot_s": None, "vehicle_s": None, "stationary_s": None, "stop_count": None,
                        "ping_count": None, "end_reason": None, "observed_s": None, "inferred_s": None}
    elif isinstance(e, VisitEnded):
        rec["visit"] = {"visit_id": e.visit_id, "entered_ms": e.entered_ms, "exited_ms": e.exited_ms,
                        "dwell_s": e.dwell_s, "foot_s": e.foot_s, "vehicle_s": e.vehicle_s,
                        "stationary_s": e.stationary_s, "stop_count": e.stop_count,
                        "ping_count": e.ping_count, "end_reason": e.end_reason,
                        "observed_s": e.observed_s, "inferred_s": e.inferred_s}
    elif isinstance(e, StopStarted):
        rec["stop"] = {"stop_id": e.stop_id, "started_ms": e.started_ms, "ended_ms": None, "duration_s": None,
                       "lat": e.lat, "lon": e.lon}
    elif isinstance(e, StopEnded):
        rec["stop"] = {"stop_id": e.stop_id, "started_ms": e.started_ms, "ended_ms": e.ended_ms,
                       "duration_s": e.duration_s, "lat": e.lat, "lon": e.lon}
    elif isinstance(e, ModeSegment):
        rec["mode"] = {"started_ms": e.started_ms, "ended_ms": e.ended_ms, "mode": e.mode,
                       "distance_m": e.distance_m}
    return rec


def reject_record(r: RejectedPing, ping_rec: dict | None) -> dict[str, Any]:
    """The Avro RejectedPing of a ping the processors refused. `rejected_ms` is its arrival
    time, not the clock, so processing it again yields the same record."""
    p = r.ping
    return {"device_id": p.device_id, "ping": ping_rec or ping_record(p), "raw": None,
            "reason": r.reason, "detail": "", "stage": "worker", "rejected_ms": p.received_ms or p.ts_ms}


def undecodable_record(msg, detail: str, received_ms: int) -> dict[str, Any]:
    """A Kafka record the Ping codec could not read: kept with its bytes, never dropped."""
    key = (msg.key or b"").decode("utf-8", errors="replace")
    return {"device_id": key or None, "ping": None, "raw": (msg.value or b"").hex()[:8192],
            "reason": "undecodable", "detail": detail[:500], "stage": "decode",
            "rejected_ms": msg.timestamp if msg.timestamp and msg.timestamp > 0 else received_ms}


# --- hot spots -------------------------------------------------------------------

def hotspots_for_index(current: dict[str, dict]) -> list:
    """Records from the `hotspots` topic as the `Hotspot`s `HotspotIndex.from_hotspots` takes."""
    from shapely.geometry import shape

    from processors.geofence import Hotspot

    return [Hotspot(hid, shape(json.loads(r["geometry_geojson"])), r.get("buffer_m") or 0.0, r["name"],
                    r.get("active_from_ms"), r.get("active_to_ms"))
            for hid, r in sorted(current.items())]
