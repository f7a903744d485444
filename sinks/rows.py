"""Table rows from the decoded Avro records (schemas/*.avsc): the one mapping.

Each function takes a record as `schemas.codec` decodes it (timestamps as
epoch-ms ints, enums as strings, nulls as None) and returns `(table, row)` or
the row, ready for `ClickHouseWriter.add`. Keys and versions come from the
record only, never from the clock, so processing the same input twice gives
the same rows (see sinks/writer.py on idempotency).

`pings` has one row per accepted ping, by far the most rows. For it,
`ping_rows_arrow` builds the rows of a whole micro-batch as one Arrow record
batch in a single pass in C, for `ClickHouseWriter.add_arrow` (the cheapest
way, the one the worker uses), and `ping_rows_columns` as Python columns, for
`ClickHouseWriter.add_columns`. Both give exactly the rows of `ping_row`.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

VISIT_OPEN = "open"


def state_version(ts_ms: int, closed: bool) -> int:
    """Version of a visit/stop row: event time, with a closed row beating an open one of the same ms."""
    return int(ts_ms) * 2 + (1 if closed else 0)


def _f(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def visit_progress_row(v) -> dict[str, Any]:
    """The visits row of an open visit's dwell so far (processors.model.VisitProgress): open, with a
    version from its last inside fix, so it replaces the visit's start and earlier progress, and its end
    (a higher version: closed, and never earlier than the last inside fix) replaces it."""
    return {
        "visit_id": v.visit_id, "device_id": v.device_id, "hotspot_id": v.hotspot_id,
        "entered_at": v.entered_ms, "exited_at": None, "dwell_s": float(v.dwell_s),
        "observed_s": float(v.observed_s), "inferred_s": float(v.inferred_s), "foot_s": float(v.foot_s),
        "vehicle_s": float(v.vehicle_s), "stationary_s": float(v.stationary_s), "stop_count": int(v.stop_count),
        "ping_count": int(v.ping_count), "end_reason": VISIT_OPEN, "version": state_version(v.last_in_ms, False),
    }


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
            # Writers before observed/inferred existed bridged nothing: all their dwell was observed.
            "observed_s": _f(v["dwell_s"] if v.get("observed_s") is None else v["observed_s"]),
            "inferred_s": _f(v.get("inferred_s")),
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


# Columns of `pings` (migration 0001), in table order: the names ping_row and ping_rows_columns give.
PING_COLUMNS: tuple[str, ...] = ("device_id", "ts", "received_at", "lat", "lon", "accuracy_m", "speed_mps",
                                 "heading_deg", "altitude_m", "battery", "source", "hotspot_ids", "low_accuracy", "late")
# The Ping record fields behind the first 11 of them; the first 5 are required, the others read with .get().
_PING_FIELDS = ("device_id", "ts_ms", "received_ms", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg",
                "altitude_m", "battery", "source")
_PING_REQUIRED = 5
_ping_fields = itemgetter(*_PING_FIELDS)


def ping_rows_columns(pings: Sequence[Mapping[str, Any]], hotspot_ids: Sequence[Iterable[str]] | None = None,
                      low_accuracy: Sequence[bool] | None = None,
                      late: Sequence[bool] | None = None) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
    """`(PING_COLUMNS, columns)` of `pings` for many decoded Pings at once, for `ClickHouseWriter.add_columns`.

    `hotspot_ids[i]`, `low_accuracy[i]` and `late[i]` go with `pings[i]` (None: no hot spot,
    False for all). `columns[j]` holds the values of column `PING_COLUMNS[j]`, one per ping
    (lists or tuples), equal to `[ping_row(p, hotspot_ids=h, low_accuracy=l, late=t)[name] ...]`,
    without a dict per row: the fields are read by one C-level getter per record
    and the rows turned into columns by zip. `ping_rows_arrow` is cheaper still.

        acc = result.accepted                                 # AcceptedPing tuples
        recs = [record_of.get(id(a.ping)) or ping_record(a.ping) for a in acc]
        writer.add_columns("pings", *ping_rows_columns(recs, [a.hotspot_ids for a in acc],
                                                       [a.low_accuracy for a in acc]))
    """
    n = len(pings)
    for name, given in (("hotspot_ids", hotspot_ids), ("low_accuracy", low_accuracy), ("late", late)):
        if given is not None and len(given) != n:
            raise ValueError(f"{name} has {len(given)} values for {n} pings")
    if n == 0:
        return PING_COLUMNS, [[] for _ in PING_COLUMNS]
    try:
        columns: list[Sequence[Any]] = list(zip(*map(_ping_fields, pings)))
    except KeyError:  # a record without some optional field: ping_row's .get() for those
        columns = [[p[k] for p in pings] for k in _PING_FIELDS[:_PING_REQUIRED]]
        columns += [[p.get(k) for p in pings] for k in _PING_FIELDS[_PING_REQUIRED:]]
    source = columns[10]
    if not all(source):
        columns[10] = [s or "other" for s in source]
    columns.append([[] for _ in range(n)] if hotspot_ids is None else list(map(list, hotspot_ids)))
    columns.append([0] * n if low_accuracy is None else list(map(int, low_accuracy)))
    columns.append([0] * n if late is None else list(map(int, late)))
    return PING_COLUMNS, columns


_PING_FLOAT32 = ("accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery")
_ping_struct = None


def _ping_record_type():
    global _ping_struct
    if _ping_struct is None:
        import pyarrow as pa  # only the Arrow builder needs it

        _ping_struct = pa.struct([("device_id", pa.string()), ("ts_ms", pa.int64()), ("received_ms", pa.int64()),
                                  ("lat", pa.float64()), ("lon", pa.float64())]
                                 + [(name, pa.float32()) for name in _PING_FLOAT32] + [("source", pa.string())])
    return _ping_struct


def _ping_tuples(pings: Sequence[Any]) -> list[tuple]:
    """The fields of records and of Ping objects in _PING_FIELDS order, for pyarrow's tuple-to-struct conversion."""
    get = _ping_fields
    try:
        return [get(p) if isinstance(p, dict) else
                (p.device_id, p.ts_ms, p.received_ms or 0, p.lat, p.lon, p.accuracy_m, p.speed_mps, p.heading_deg,
                 p.altitude_m, p.battery, getattr(p, "source", None)) for p in pings]
    except KeyError:  # a record without some field: None, as .get() in ping_row (a required one is refused later)
        return [tuple(p.get(k) for k in _PING_FIELDS) if isinstance(p, dict) else _ping_tuples([p])[0] for p in pings]


def ping_rows_arrow(pings: Sequence[Any], hotspot_ids: Sequence[Iterable[str]] | None = None,
                    low_accuracy: Sequence[bool] | None = None, late: Sequence[bool] | None = None):
    """The `pings` rows of many decoded Pings as one pyarrow RecordBatch, for `ClickHouseWriter.add_arrow`.

    Arguments as for `ping_rows_columns`. The rows are those of `ping_row`, as
    columns PING_COLUMNS with the Arrow types the writer inserts as they are:
    string, timestamp[ms, UTC] (the epoch-ms ints), float64, float32,
    list<string>, uint8. All records are read and converted in one pass in C
    (pyarrow's dict-to-struct conversion): no Python object is made per ping,
    so besides being the cheapest way it adds no work for the garbage collector.

    An item of `pings` is a dict with the types of the Avro Ping as
    `schemas.codec` decodes it (str, int epoch ms, float, None), or a
    `processors.model.Ping` (anything with its attributes) that has no record
    any more, such as a ping held over from an earlier batch: its row is that
    of `ping_row(streams.rows.ping_record(p))`, without making that dict
    (its own source, or "other" without one; received_at 0 when received_ms is None). pyarrow
    converts by type, so a float where an int belongs would be truncated rather
    than refused: for records of another origin use `ping_rows_columns`, whose
    values the writer checks as its standard path does. A NULL device_id,
    ts_ms, received_ms, lat or lon raises ValueError (where ping_row raises
    KeyError for a missing key and the standard insert refuses a None). A value
    beyond float32 keeps its column float64, which the writer leaves to its
    standard path, which refuses it as before.

        acc = result.accepted                                 # AcceptedPing tuples
        writer.add_arrow("pings", ping_rows_arrow([record_of.get(id(a.ping)) or a.ping for a in acc],
                                                  [a.hotspot_ids for a in acc], [a.low_accuracy for a in acc]))
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(pings)
    for name, given in (("hotspot_ids", hotspot_ids), ("low_accuracy", low_accuracy), ("late", late)):
        if given is not None and len(given) != n:
            raise ValueError(f"{name} has {len(given)} values for {n} pings")
    records_only = all(isinstance(p, dict) for p in pings)
    fields = pa.array(pings if records_only else _ping_tuples(pings), type=_ping_record_type()).flatten()
    for name, arr in zip(_PING_FIELDS[:_PING_REQUIRED], fields):
        if arr.null_count:
            raise ValueError(f"{arr.null_count} of {n} pings have no {name}")
    ts = pa.timestamp("ms", tz="UTC")
    columns = [fields[0], fields[1].view(ts), fields[2].view(ts), fields[3], fields[4]]
    for i, name in enumerate(_PING_FLOAT32, start=5):
        arr = fields[i]
        if arr.null_count < n and pc.any(pc.is_inf(arr)).as_py():
            wide = pa.array([p.get(name) if isinstance(p, dict) else getattr(p, name) for p in pings], type=pa.float64())
            if pc.sum(pc.is_inf(wide)).as_py() != pc.sum(pc.is_inf(arr)).as_py():
                arr = wide  # overflows float32: the standard path decides (it refuses)
        columns.append(arr)
    source = fields[10]
    columns.append(pc.if_else(pc.fill_null(pc.equal(source, ""), True), "other", source))
    if hotspot_ids is None:
        columns.append(pa.ListArray.from_arrays(pa.repeat(pa.scalar(0, pa.int32()), n + 1), pa.array([], type=pa.string())))
    else:
        ids = pa.array(hotspot_ids, type=pa.list_(pa.string()))
        if ids.null_count:
            raise ValueError("hotspot_ids holds None where a list belongs")
        columns.append(ids)
    for flags in (low_accuracy, late):
        if flags is None:
            columns.append(pa.repeat(pa.scalar(0, pa.uint8()), n))
            continue
        try:
            arr = pa.array(flags, type=pa.bool_())
            if arr.null_count:
                raise TypeError("None for a flag")  # as int(None) in ping_row
            columns.append(arr.cast(pa.uint8()))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # not bools: int() them, as ping_row does
            columns.append(pa.array(list(map(int, flags)), type=pa.uint8()))
    return pa.RecordBatch.from_arrays(columns, names=list(PING_COLUMNS))


def rejected_row(rejected: Mapping[str, Any], reject_id: str) -> dict[str, Any]:
    """Row of `pings_rejected` for a decoded RejectedPing.

    `reject_id` must be stable for this input: the pings-rejected
    topic/partition/offset it was read from, or the pings offset it was made from.
    """
    p = rejected.get("ping") or {}
    # A backfilled ping has no arrival time (received_ms 0): the table's TTL counts from
    # received_at, and 1970 would drop the row at once, so it takes the rejection time.
    received = p.get("received_ms") or rejected["rejected_ms"]
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
        "target_minutes": target_minutes if target_minutes is not None else a.get("target_minutes"),
        "officer_lat": a.get("officer_lat"),
        "officer_lon": a.get("officer_lon"),
        "distance_m": a.get("distance_m"),
        "candidates": a.get("candidates"),
        # issue 14: the randomisation, recorded (Assignment v2; v1 records have none)
        "seed": a.get("seed"),
        "eligible": list(a.get("eligible") or ()),
        "weights": list(a.get("weights") or ()),
        "dosage_known": None if a.get("dosage_known") is None else int(bool(a["dosage_known"])),
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


def audit_row(a: Mapping[str, Any]) -> dict[str, Any]:
    """Row of `audit` for a decoded Audit (issue 14)."""
    return {"audit_id": a["audit_id"], "ts": int(a["ts_ms"]), "user": a["user"], "role": a.get("role") or "",
            "action": a["action"], "subject": a.get("subject") or "", "detail_json": a.get("detail_json") or "{}",
            "address": a.get("address") or ""}


def allocation_row(a: Mapping[str, Any]) -> dict[str, Any]:
    """Row of `allocations` for a decoded Allocation (one hot spot, one trial day)."""
    return {
        "trial_id": a["trial_id"], "hotspot_id": a["hotspot_id"], "day": _dt.date.fromisoformat(a["day"]),
        "starts_at": int(a["starts_ms"]), "ends_at": int(a["ends_ms"]), "arm": a["arm"], "block": a.get("block") or "",
        "design": a["design"], "seed": int(a["seed"]),
    }
