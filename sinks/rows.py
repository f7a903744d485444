"""Table rows from the decoded Avro records (schemas/*.avsc): the one mapping.

Each function takes a record as `schemas.codec` decodes it (timestamps as
epoch-ms ints, enums as strings, nulls as None) and returns `(table, row)` or
the row, ready for `ClickHouseWriter.add`. Keys and versions come from the
record only, never from the clock, so processing the same input twice gives
the same rows (see sinks/writer.py on idempotency).
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

VISIT_OPEN = "open"


def state_version(ts_ms: int, closed: bool) -> int:
    """Version of a visit/stop row: event time, with a closed row beating an open one of the same ms."""
    return int(ts_ms) * 2 + (1 if closed else 0)


def _f(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def patrol_event_row(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(table, row) for a PatrolEvent: visits for visit_*, stops for stop_*, mode_segments for mode_segment."""
    kind = event["type"]
    if kind in ("visit_started", "visit_ended"):
        v = event["visit"]
        closed = kind == "visit_ended"
        return "visits", {
            "visit_id": v["visit_id"],
            "device_id": event["device_id"],
            "hotspot_id": event["hotspot_id"] or "",
            "entered_at": v["entered_ms"],
            "exited_at": v["exited_ms"] if closed else None,
            "dwell_s": _f(v["dwell_s"]),
            "foot_s": _f(v["foot_s"]),
            "vehicle_s": _f(v["vehicle_s"]),
            "stationary_s": _f(v["stationary_s"]),
            "stop_count": int(v["stop_count"] or 0),
            "ping_count": int(v["ping_count"] or 0),
            "end_reason": (v["end_reason"] or "other") if closed else VISIT_OPEN,
            "version": state_version(event["ts_ms"], closed),
        }
    if kind in ("stop_started", "stop_ended"):
        s = event["stop"]
        closed = kind == "stop_ended"
        return "stops", {
            "stop_id": s["stop_id"],
            "device_id": event["device_id"],
            "hotspot_id": event["hotspot_id"] or "",
            "started_at": s["started_ms"],
            "ended_at": s["ended_ms"] if closed else None,
            "duration_s": _f(s["duration_s"]),
            "lat": float(s["lat"]),
            "lon": float(s["lon"]),
            "version": state_version(event["ts_ms"], closed),
        }
    if kind == "mode_segment":
        m = event["mode"]
        return "mode_segments", {
            "device_id": event["device_id"],
            "started_at": m["started_ms"],
            "ended_at": m["ended_ms"],
            "mode": m["mode"],
            "distance_m": float(m["distance_m"]),
            "version": int(m["ended_ms"]),
        }
    raise ValueError(f"patrol event type {kind!r} has no table")


def ping_row(ping: Mapping[str, Any], *, hotspot_ids: Iterable[str] = (), low_accuracy: bool = False,
             late: bool = False) -> dict[str, Any]:
    """Row of `pings` for a decoded Ping and what the worker made of it."""
    return {
        "device_id": ping["device_id"],
        "ts": ping["ts_ms"],
        "received_at": ping["received_ms"],
        "lat": ping["lat"],
        "lon": ping["lon"],
        "accuracy_m": ping.get("accuracy_m"),
        "speed_mps": ping.get("speed_mps"),
        "heading_deg": ping.get("heading_deg"),
        "altitude_m": ping.get("altitude_m"),
        "battery": ping.get("battery"),
        "source": ping.get("source") or "other",
        "hotspot_ids": list(hotspot_ids),
        "low_accuracy": int(low_accuracy),
        "late": int(late),
    }


def rejected_row(rejected: Mapping[str, Any], reject_id: str) -> dict[str, Any]:
    """Row of `pings_rejected` for a decoded RejectedPing.

    `reject_id` must be stable for this input: the pings-rejected
    topic/partition/offset it was read from, or the pings offset it was made from.
    """
    p = rejected.get("ping") or {}
    received = p.get("received_ms", rejected["rejected_ms"])
    return {
        "reject_id": reject_id,
        "device_id": rejected.get("device_id") or p.get("device_id") or "",
        "ts": p.get("ts_ms"),
        "received_at": received,
        "rejected_at": rejected["rejected_ms"],
        "lat": p.get("lat"),
        "lon": p.get("lon"),
        "accuracy_m": p.get("accuracy_m"),
        "speed_mps": p.get("speed_mps"),
        "heading_deg": p.get("heading_deg"),
        "altitude_m": p.get("altitude_m"),
        "battery": p.get("battery"),
        "source": p.get("source") or "",
        "raw": rejected.get("raw") or "",
        "reason": rejected["reason"],
        "detail": rejected.get("detail") or "",
        "stage": rejected.get("stage") or "",
    }


def hotspot_row(hotspot: Mapping[str, Any]) -> dict[str, Any]:
    """Row of `hotspots` for a decoded Hotspot (one published version)."""
    return {
        "id": hotspot["id"],
        "version": int(hotspot["published_ms"]),
        "name": hotspot["name"],
        "briefing": hotspot.get("briefing") or "",
        "geometry_geojson": hotspot["geometry_geojson"],
        "buffer_m": hotspot.get("buffer_m"),
        "target_minutes": hotspot.get("target_minutes"),
        "active_from": hotspot.get("active_from_ms"),
        "active_to": hotspot.get("active_to_ms"),
        "stats_json": hotspot.get("stats_json") or "",
        "retired": 0,
        "published_at": int(hotspot["published_ms"]),
    }


def retired_hotspot_row(hotspot_id: str, retired_ms: int) -> dict[str, Any]:
    """Row of `hotspots` for a tombstone; `retired_ms` should be the tombstone's Kafka timestamp."""
    return {
        "id": hotspot_id, "version": int(retired_ms), "name": "", "briefing": "", "geometry_geojson": "",
        "buffer_m": None, "target_minutes": None, "active_from": None, "active_to": None,
        "stats_json": "", "retired": 1, "published_at": int(retired_ms),
    }


def assignment_row(a: Mapping[str, Any], target_minutes: float | None = None) -> dict[str, Any]:
    """Row of `assignments` for a decoded Assignment."""
    day = a.get("trial_day")
    return {
        "assignment_id": a["assignment_id"],
        "user": a["user"],
        "device_id": a.get("device_id") or "",
        "hotspot_id": a["hotspot_id"],
        "assigned_at": a["assigned_ms"],
        "trial_day": _dt.date.fromisoformat(day) if day else None,
        "arm": a.get("arm") or "",
        "target_minutes": target_minutes,
        "officer_lat": a.get("officer_lat"),
        "officer_lon": a.get("officer_lon"),
        "distance_m": a.get("distance_m"),
        "candidates": a.get("candidates"),
    }


def activity_row(a: Mapping[str, Any]) -> dict[str, Any]:
    """Row of `activity` for a decoded Activity."""
    return {
        "activity_id": a["activity_id"],
        "user": a["user"],
        "device_id": a.get("device_id") or "",
        "ts": a["ts_ms"],
        "kind": a["kind"],
        "hotspot_id": a.get("hotspot_id") or "",
        "assignment_id": a.get("assignment_id") or "",
        "note": a.get("note") or "",
        "lat": a.get("lat"),
        "lon": a.get("lon"),
        "attributes": dict(a.get("attributes") or {}),
    }


def allocation_row(a: Mapping[str, Any]) -> dict[str, Any]:
    """Row of `allocations` for a decoded Allocation (one hot spot, one trial day)."""
    return {
        "trial_id": a["trial_id"], "hotspot_id": a["hotspot_id"], "day": _dt.date.fromisoformat(a["day"]),
        "starts_at": int(a["starts_ms"]), "ends_at": int(a["ends_ms"]), "arm": a["arm"], "block": a.get("block") or "",
        "design": a["design"], "seed": int(a["seed"]),
    }
