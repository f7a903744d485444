"""The hot-spot file (GeoJSON FeatureCollection, DESIGN.md section 2): the one reader.

Every command and service that takes a hot-spot file reads it here: `hotspot
replay` (`load_index`), `hotspot hotspots publish` and the simulators
(`records_from_geojson`, the Avro `Hotspot` records of the `hotspots` topic),
`hotspot simulate --hotspots` (`features`) and `hotspot allocate` (`units`).
So a file is either good for all of them or refused by all of them with the
same one-line reason naming the file and the feature (0-based) and the
problem. `processors.geofence` builds the index from the `Hotspot`s parsed
here and knows nothing of files.
"""
from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

import orjson
from shapely.geometry import shape

from processors.geofence import Hotspot, HotspotIndex


class HotspotFileError(ValueError):
    """A hot-spot file that cannot be used: one line naming the file and the problem."""


def read_collection(path: str | Path) -> dict:
    """The parsed JSON of a hot-spot file (not yet checked as hot spots)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HotspotFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise HotspotFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM, as some Windows tools write
        data = data[3:]
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = data.count(b"\n", 0, exc.pos) + 1 if exc.pos is not None else 1
        raise HotspotFileError(f"{path}:{line}: not valid JSON ({exc.msg})") from None


def load(path: str | Path) -> tuple[dict, list[Hotspot]]:
    """The document and its checked hot spots; HotspotFileError names the file, the feature and the problem."""
    doc = read_collection(path)
    try:
        return doc, hotspots_from_geojson(doc)
    except ValueError as exc:
        raise HotspotFileError(f"{path}: {exc}") from None


def load_index(path: str | Path) -> HotspotIndex:
    """The hot-spot file as the index the processors match against (`hotspot replay`)."""
    return HotspotIndex.from_hotspots(load(path)[1])


def features(path: str | Path) -> list[dict]:
    """The checked features of a hot-spot file, at least one (the simulators build their town around them)."""
    doc, hotspots = load(path)
    if not hotspots:
        raise HotspotFileError(f"{path}: the FeatureCollection has no features")
    return doc["features"]


def units(path: str | Path, block_by: str | None, group_by: str | None) -> list[tuple[str, str, str | None]]:
    """(hotspot_id, block, group) of each hot spot, for a trial allocation (`hotspot allocate`)."""
    doc, hotspots = load(path)
    out, missing = [], []
    for hs, f in zip(hotspots, doc["features"]):
        props = f.get("properties") or {}
        block = props.get(block_by) if block_by else ""
        if block_by and block in (None, ""):
            missing.append(hs.id)
        group = props.get(group_by) if group_by else None
        out.append((hs.id, "" if block is None else str(block), None if group in (None, "") else str(group)))
    if missing:
        raise HotspotFileError(f"{path}: {len(missing)} hot spots have no {block_by!r} property (first: {missing[0]})")
    return out


def records_from_geojson(doc: dict, published_ms: int) -> list[dict]:
    """Avro `Hotspot` records of a hot-spot document; raises ValueError naming the feature and problem."""
    checked = hotspots_from_geojson(doc)  # validates ids, geometry, buffer, activity window
    out = []
    for hs, feature in zip(checked, doc["features"]):
        props = feature.get("properties") or {}
        target = props.get("target_minutes")
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float)) or target < 0):
            raise ValueError(f"hot spot {hs.id!r}: target_minutes must be a non-negative number")
        stats = props.get("stats")
        out.append({
            "id": hs.id, "name": hs.name or hs.id, "briefing": str(props.get("briefing") or ""),
            "geometry_geojson": json.dumps(feature["geometry"], separators=(",", ":")),
            "buffer_m": hs.buffer_m or None, "target_minutes": None if target is None else float(target),
            "active_from_ms": hs.active_from_ms, "active_to_ms": hs.active_to_ms,
            "stats_json": None if stats is None else json.dumps(stats, separators=(",", ":"), sort_keys=True),
            "published_ms": published_ms,
        })
    return out


def hotspots_from_geojson(doc: Mapping) -> list[Hotspot]:
    """Hot spots from a GeoJSON FeatureCollection; raises ValueError naming the feature and the problem."""
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection" \
            or not isinstance(doc.get("features"), list):
        raise ValueError("not a GeoJSON FeatureCollection (needs \"type\": \"FeatureCollection\" and \"features\")")
    out: list[Hotspot] = []
    seen: set[str] = set()
    for i, feat in enumerate(doc["features"]):
        where = f"feature {i}"
        if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
            raise ValueError(f"{where}: not a GeoJSON Feature")
        props = feat.get("properties") or {}
        if not isinstance(props, Mapping):
            raise ValueError(f"{where}: properties must be an object")
        hid = props.get("id")
        if not isinstance(hid, (str, int)) or isinstance(hid, bool) or str(hid) == "":
            raise ValueError(f"{where}: properties.id must be a non-empty string")
        hid = str(hid)
        where = f"feature {i} (id {hid!r})"
        if hid in seen:
            raise ValueError(f"{where}: id appears twice")
        seen.add(hid)
        geom = feat.get("geometry")
        if not isinstance(geom, Mapping) or geom.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"{where}: geometry must be a Polygon or MultiPolygon")
        try:
            g = shape(geom)
        except Exception as exc:  # shapely raises several types for malformed coordinates
            raise ValueError(f"{where}: unusable coordinates ({exc})") from None
        if g.is_empty:
            raise ValueError(f"{where}: empty geometry")
        minx, miny, maxx, maxy = g.bounds
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) \
                or not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise ValueError(f"{where}: coordinates are not WGS84 longitude/latitude")
        buf = props.get("buffer_m", 0.0)
        if buf is None:
            buf = 0.0
        if isinstance(buf, bool) or not isinstance(buf, (int, float)) or not math.isfinite(buf) or buf < 0:
            raise ValueError(f"{where}: buffer_m must be a non-negative number of metres")
        active_from = _parse_active(props.get("active_from"), where, "active_from", end=False)
        active_to = _parse_active(props.get("active_to"), where, "active_to", end=True)
        if active_from is not None and active_to is not None and active_to <= active_from:
            raise ValueError(f"{where}: active_to is not after active_from")
        name = props.get("name")
        out.append(Hotspot(hid, g, float(buf), str(name) if name is not None else "", active_from, active_to))
    return out


def _parse_active(value, where: str, field: str, *, end: bool) -> int | None:
    """ISO-8601 datetime with offset (exact), or a date (UTC day; active_to includes that whole day)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{where}: {field} must be an ISO-8601 date or date-time string")
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            if end:
                d += timedelta(days=1)
            return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() * 1000)
        t = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{where}: {field} {value!r} is not ISO-8601") from None
    if t.tzinfo is None:
        raise ValueError(f"{where}: {field} {value!r} needs a UTC offset (e.g. +01:00 or Z)")
    return int(round(t.timestamp() * 1000))
