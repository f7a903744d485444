"""Device protocols, decoded into the one Ping shape: pure functions, no I/O, no clock.

Owns the translation of what phones send (our native JSON, OwnTracks HTTP
mode, OsmAnd / Traccar Client as query string, form or JSON body) into a Ping
dict matching `schemas/Ping.avsc`, with every unit converted: metres, m/s,
degrees, battery as a 0-1 fraction, UTC epoch milliseconds. The caller passes
the device id (taken from the credential) and the arrival time.

A problem with the input raises `FieldError(field, problem)`; the HTTP layer
turns it into a 4xx body or a per-item rejection that names the field. Range
checks here are structural (a latitude is within ±90); whether a ping is
plausible in context (in the future, too fast, (0,0)) is the worker's
validation, which keeps the rejected ping and its reason.

Accuracy, per protocol: an accuracy radius the device cannot have meant is
"unknown" (None), never a rejection and never a perfect fix, because the visit
and stop logic trusts small radii. Impossible means 0 (the classic Traccar
Client sends `accuracy=0.0` with every fix), negative (iOS and the Traccar JSON
client say -1 for "no valid accuracy"), NaN or infinite, or wider than
`MAX_ACCURACY_M` (10 km: wider than any GPS, Wi-Fi or cell fix a patrol can use).
Native `accuracy_m`, OwnTracks `acc`, OsmAnd `accuracy` and Traccar JSON
`coords.accuracy` all go through `accuracy_or_none()`. OsmAnd `hdop` is a
dimensionless dilution of precision, not metres: it is kept in `extra` as sent
and never turned into `accuracy_m`. A value that is not a number at all is
still a malformed field (FieldError).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import orjson

from formats.timestamps import parse_ts_ms

KNOT_MPS = 1852.0 / 3600.0
KMH_MPS = 1.0 / 3.6
MPH_MPS = 1609.344 / 3600.0
SPEED_UNITS_MPS = {"kn": KNOT_MPS, "knots": KNOT_MPS, "kmh": KMH_MPS, "mps": 1.0, "mph": MPH_MPS}

# Epoch numbers below 1e11 are seconds, above are milliseconds (formats.timestamps.SECONDS_BELOW).
_MIN_TS_MS = 946_684_800_000      # 2000-01-01: older "fixes" are a device clock reset
_MAX_TS_MS = 4_102_444_800_000    # 2100-01-01

MAX_EXTRA_KEYS = 32
MAX_EXTRA_KEY_LEN = 64
MAX_EXTRA_VALUE_LEN = 512

_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class FieldError(ValueError):
    """One input field is missing, of the wrong type or out of range."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# --------------------------------------------------------------------------- values

def _number(value: Any, field: str) -> float:
    if isinstance(value, bool):
        raise FieldError(field, "must be a number, got a boolean")
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        s = value.strip()
        if not _NUMERIC.match(s):
            raise FieldError(field, f"must be a number, got {_show(value)}")
        x = float(s)
    else:
        raise FieldError(field, f"must be a number, got {_type_name(value)}")
    if not math.isfinite(x):
        raise FieldError(field, "must be a finite number")
    return x


def _ranged(value: Any, field: str, lo: float, hi: float) -> float:
    x = _number(value, field)
    if not lo <= x <= hi:
        raise FieldError(field, f"must be between {lo:g} and {hi:g}, got {x:g}")
    return x


def _optional(value: Any, field: str, lo: float, hi: float) -> float | None:
    if value is None or value == "":
        return None
    return _ranged(value, field, lo, hi)


MAX_ACCURACY_M = 10_000.0
_NOT_FINITE = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})


def accuracy_or_none(value: Any, field: str) -> float | None:
    """An accuracy radius in metres, or None when absent or impossible (0, negative, NaN, > MAX_ACCURACY_M)."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and value.strip().lower() in _NOT_FINITE:
        return None
    x = _number(value, field)
    return x if 0.0 < x <= MAX_ACCURACY_M else None


def _heading(value: Any, field: str) -> float | None:
    h = _optional(value, field, 0.0, 360.0)
    return None if h is None else h % 360.0


def _show(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 40 else s[:37] + "..."


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def timestamp_ms(value: Any, field: str = "timestamp") -> int:
    """UTC epoch ms from epoch seconds, epoch ms, ISO-8601 or `yyyy-MM-dd HH:mm:ss` (naive means UTC)."""
    if isinstance(value, bool) or value is None:
        raise FieldError(field, f"must be a timestamp, got {_type_name(value)}")
    if isinstance(value, str) and not _NUMERIC.match(value.strip()):
        try:
            ms = parse_ts_ms(value, naive_utc=True)   # the one parser (formats.timestamps)
        except ValueError:
            raise FieldError(field, f"not epoch seconds/ms, ISO-8601 or 'yyyy-MM-dd HH:mm:ss': {_show(value)}") from None
    else:
        ms = parse_ts_ms(_number(value, field))
    if not _MIN_TS_MS <= ms < _MAX_TS_MS:
        raise FieldError(field, f"must be between 2000-01-01 and 2100-01-01, got {_show(value)}")
    return ms


def _extra_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or value is None:
        return orjson.dumps(value).decode()
    return orjson.dumps(value).decode()


def _add_extra(extra: dict[str, str], key: str, value: Any, field: str = "extra") -> None:
    if len(extra) >= MAX_EXTRA_KEYS:
        raise FieldError(field, f"at most {MAX_EXTRA_KEYS} extra attributes")
    if not key or len(key) > MAX_EXTRA_KEY_LEN:
        raise FieldError(field, f"attribute names must have 1-{MAX_EXTRA_KEY_LEN} characters, got {_show(key)}")
    try:
        text = _extra_value(value)
    except (TypeError, orjson.JSONEncodeError):
        raise FieldError(f"{field}.{key}", "must be a JSON value") from None
    if len(text) > MAX_EXTRA_VALUE_LEN:
        raise FieldError(f"{field}.{key}", f"at most {MAX_EXTRA_VALUE_LEN} characters")
    extra[key] = text


def _ping(device_id: str, ts_ms: int, lat: float, lon: float, received_ms: int, source: str, *,
          accuracy_m=None, speed_mps=None, heading_deg=None, altitude_m=None, battery=None,
          extra: dict[str, str] | None = None) -> dict:
    return {
        "device_id": device_id, "ts_ms": ts_ms, "lat": lat, "lon": lon,
        "accuracy_m": accuracy_m, "speed_mps": speed_mps, "heading_deg": heading_deg,
        "altitude_m": altitude_m, "battery": battery, "received_ms": received_ms,
        "source": source, "extra": extra if extra is not None else {},
    }


# --------------------------------------------------------------------------- native

NATIVE_FIELDS = ("ts", "ts_ms", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "altitude_m",
                 "battery", "extra", "device_id")


def parse_native(item: Any, *, device_id: str, received_ms: int, source: str = "native") -> dict:
    """One item of `POST /v1/pings`: our own JSON with SI units in the field names."""
    if not isinstance(item, dict):
        raise FieldError("ping", f"must be an object, got {_type_name(item)}")
    for key in item:
        if key not in NATIVE_FIELDS:
            raise FieldError(key, f"unknown field (known: {', '.join(NATIVE_FIELDS)})")
    claimed = item.get("device_id")
    if claimed is not None and claimed != device_id:
        raise FieldError("device_id", "differs from the authenticated device (omit it: the credential names the device)")
    if "ts_ms" in item and "ts" in item:
        raise FieldError("ts", "give ts or ts_ms, not both")
    if "ts_ms" in item:
        raw = item["ts_ms"]
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise FieldError("ts_ms", f"must be an integer (epoch milliseconds), got {_type_name(raw)}")
        ts = timestamp_ms(raw, "ts_ms")
    elif "ts" in item:
        ts = timestamp_ms(item["ts"], "ts")
    else:
        raise FieldError("ts", "required (ISO-8601 with offset, epoch seconds or milliseconds; or ts_ms)")
    for required in ("lat", "lon"):
        if item.get(required) is None:
            raise FieldError(required, "required")
    extra: dict[str, str] = {}
    raw_extra = item.get("extra")
    if raw_extra is not None:
        if not isinstance(raw_extra, dict):
            raise FieldError("extra", f"must be an object of strings, got {_type_name(raw_extra)}")
        for k, v in raw_extra.items():
            _add_extra(extra, k, v)
    return _ping(
        device_id, ts,
        _ranged(item["lat"], "lat", -90.0, 90.0),
        _ranged(item["lon"], "lon", -180.0, 180.0),
        received_ms, source,
        accuracy_m=accuracy_or_none(item.get("accuracy_m"), "accuracy_m"),
        speed_mps=_optional(item.get("speed_mps"), "speed_mps", 0.0, 1000.0),
        heading_deg=_heading(item.get("heading_deg"), "heading_deg"),
        altitude_m=_optional(item.get("altitude_m"), "altitude_m", -12_000.0, 100_000.0),
        battery=_optional(item.get("battery"), "battery", 0.0, 1.0),
        extra=extra,
    )


# --------------------------------------------------------------------------- OwnTracks

# Location fields we turn into Ping fields; everything else in the message is kept in `extra`.
_OWNTRACKS_MAPPED = {"_type", "lat", "lon", "tst", "acc", "alt", "batt", "vel", "cog"}


def parse_owntracks(message: Any, *, device_id: str, received_ms: int) -> dict | None:
    """An OwnTracks HTTP-mode message; None for the types that carry no position (transition, waypoint ...)."""
    if not isinstance(message, dict):
        raise FieldError("body", f"must be an OwnTracks JSON object, got {_type_name(message)}")
    kind = message.get("_type")
    if not isinstance(kind, str):
        raise FieldError("_type", "required (a string such as \"location\")")
    if kind != "location":
        return None
    for required in ("lat", "lon", "tst"):
        if message.get(required) is None:
            raise FieldError(required, "required in a location message")
    extra: dict[str, str] = {}
    for key, value in message.items():
        if key not in _OWNTRACKS_MAPPED:
            _add_extra(extra, key, value, field=key)
    vel_kmh = _optional(message.get("vel"), "vel", 0.0, 3600.0)
    batt_pct = _optional(message.get("batt"), "batt", 0.0, 100.0)
    return _ping(
        device_id, timestamp_ms(message["tst"], "tst"),
        _ranged(message["lat"], "lat", -90.0, 90.0),
        _ranged(message["lon"], "lon", -180.0, 180.0),
        received_ms, "owntracks",
        accuracy_m=accuracy_or_none(message.get("acc"), "acc"),
        speed_mps=None if vel_kmh is None else vel_kmh * KMH_MPS,
        heading_deg=_heading(message.get("cog"), "cog"),
        altitude_m=_optional(message.get("alt"), "alt", -12_000.0, 100_000.0),
        battery=None if batt_pct is None else batt_pct / 100.0,
        extra=extra,
    )


# --------------------------------------------------------------------------- OsmAnd / Traccar

_OSMAND_MAPPED = {"id", "deviceid", "lat", "lon", "location", "timestamp", "speed", "bearing", "heading",
                  "altitude", "accuracy", "batt"}


def osmand_device_id(params: Mapping[str, str]) -> str:
    """The device identifier of an OsmAnd request (`id`, or `deviceid` in older clients)."""
    value = params.get("id") or params.get("deviceid")
    if not value or not value.strip():
        raise FieldError("id", "required: the identifier `hotspot devices add NAME --osmand` printed")
    return value.strip()


def parse_osmand(params: Mapping[str, str], *, device_id: str, received_ms: int, speed_unit: str = "kn") -> dict:
    """OsmAnd / Traccar Client parameters (query string or form), speed in `speed_unit` (knots by default)."""
    lat_raw, lon_raw = params.get("lat"), params.get("lon")
    if (lat_raw is None or lon_raw is None) and params.get("location"):
        parts = params["location"].split(",")
        if len(parts) != 2:
            raise FieldError("location", f"must be 'lat,lon', got {_show(params['location'])}")
        lat_raw, lon_raw = parts
    if lat_raw is None:
        raise FieldError("lat", "required (or location=lat,lon)")
    if lon_raw is None:
        raise FieldError("lon", "required (or location=lat,lon)")
    extra: dict[str, str] = {}
    if params.get("timestamp"):
        ts = timestamp_ms(params["timestamp"], "timestamp")
    else:
        ts = received_ms  # Traccar does the same: a fix without a time is taken as now
        extra["ts_from"] = "gateway"
    speed = _optional(params.get("speed"), "speed", 0.0, 2000.0)
    batt = _optional(params.get("batt"), "batt", 0.0, 100.0)
    for key, value in params.items():
        if key not in _OSMAND_MAPPED:
            _add_extra(extra, key, value, field=key)
    heading_key = "bearing" if params.get("bearing") not in (None, "") else "heading"
    return _ping(
        device_id, ts,
        _ranged(lat_raw, "lat", -90.0, 90.0),
        _ranged(lon_raw, "lon", -180.0, 180.0),
        received_ms, "osmand",
        accuracy_m=accuracy_or_none(params.get("accuracy"), "accuracy"),
        speed_mps=None if speed is None else speed * SPEED_UNITS_MPS[speed_unit],
        heading_deg=_heading(params.get(heading_key), heading_key),
        altitude_m=_optional(params.get("altitude"), "altitude", -12_000.0, 100_000.0),
        battery=None if batt is None else batt / 100.0,
        extra=extra,
    )


def traccar_json_device_id(body: Any) -> str:
    if not isinstance(body, dict):
        raise FieldError("body", f"must be a JSON object, got {_type_name(body)}")
    value = body.get("device_id")
    if not isinstance(value, str) or not value.strip():
        raise FieldError("device_id", "required: the identifier `hotspot devices add NAME --osmand` printed")
    return value.strip()


def _unknown_is_negative(value: Any, field: str, lo: float, hi: float) -> float | None:
    """The JSON client reports -1 for 'not known' (speed, heading, accuracy, battery)."""
    if value is None:
        return None
    x = _number(value, field)
    if x < 0 and lo >= 0:
        return None
    return _ranged(x, field, lo, hi)


def parse_traccar_json(body: Any, *, device_id: str, received_ms: int) -> dict:
    """The JSON body newer Traccar Clients POST: SI units (speed m/s, battery 0-1), ISO timestamp."""
    if not isinstance(body, dict):
        raise FieldError("body", f"must be a JSON object, got {_type_name(body)}")
    loc = body.get("location")
    if isinstance(loc, list) and len(loc) == 1:
        loc = loc[0]
    if not isinstance(loc, dict):
        raise FieldError("location", f"must be an object, got {_type_name(loc)}")
    coords = loc.get("coords")
    if not isinstance(coords, dict):
        raise FieldError("location.coords", f"must be an object, got {_type_name(coords)}")
    for required in ("latitude", "longitude"):
        if coords.get(required) is None:
            raise FieldError(f"location.coords.{required}", "required")
    if loc.get("timestamp") is None:
        raise FieldError("location.timestamp", "required")
    battery = loc.get("battery") if isinstance(loc.get("battery"), dict) else {}
    extra: dict[str, str] = {}
    if "is_moving" in loc:
        _add_extra(extra, "is_moving", loc["is_moving"], "location.is_moving")
    if "odometer" in loc:
        _add_extra(extra, "odometer", loc["odometer"], "location.odometer")
    if "is_charging" in battery:
        _add_extra(extra, "charge", battery["is_charging"], "location.battery.is_charging")
    activity = loc.get("activity")
    if isinstance(activity, dict) and "type" in activity:
        _add_extra(extra, "activity", activity["type"], "location.activity.type")
    if isinstance(loc.get("event"), str):
        _add_extra(extra, "event", loc["event"], "location.event")
    return _ping(
        device_id, timestamp_ms(loc["timestamp"], "location.timestamp"),
        _ranged(coords["latitude"], "location.coords.latitude", -90.0, 90.0),
        _ranged(coords["longitude"], "location.coords.longitude", -180.0, 180.0),
        received_ms, "osmand",
        accuracy_m=accuracy_or_none(coords.get("accuracy"), "location.coords.accuracy"),
        speed_mps=_unknown_is_negative(coords.get("speed"), "location.coords.speed", 0.0, 1000.0),
        heading_deg=_heading(_unknown_is_negative(coords.get("heading"), "location.coords.heading", 0.0, 360.0),
                             "location.coords.heading"),
        altitude_m=_optional(coords.get("altitude"), "location.coords.altitude", -12_000.0, 100_000.0),
        battery=_unknown_is_negative(battery.get("level"), "location.battery.level", 0.0, 1.0),
        extra=extra,
    )
