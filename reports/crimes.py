"""Crime records into ClickHouse (`hotspot crimes load FILE`), for the trial report's outcomes.

Files are read by formats/crimes.py, the one reader of crime files (police.uk street-level or
generic CSV, bad rows counted by reason). Each record is placed in the hot spots it lies in, as
published when the file is loaded (hotspots_current, retired ones left out), and written to
`crimes` (migration 0007) with a stable key: loading the same file again replaces its rows.

Harm: the file's own `harm` column when given, else the weight of the category in the harm table
(the shipped default, or the force's `--harm-table`), else NULL (the category is not in the table).
police.uk records carry only their month: they are stored with precision 'month' and have no trial
day, so trial reports leave them out of day-by-day outcomes (docs/analysts.md).
"""
from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from reports.store import Store

PRECISION_NAMES = {0: "exact", 1: "day", 2: "month"}
INSERT_CHUNK_ROWS = 100_000
CRIME_COLUMNS = ["crime_key", "source", "occurred_at", "precision", "lat", "lon", "category", "harm_days",
                 "location", "hotspot_ids", "loaded_at"]


@dataclass
class LoadResult:
    path: str
    format: str
    rows: int
    loaded: int
    in_hotspots: int
    without_harm: int
    bad: Counter = field(default_factory=Counter)
    hotspots: int = 0


def current_hotspots(store: Store):
    """The published, unretired hot spots (processors.geofence.Hotspot) from the store."""
    from shapely.geometry import shape

    from processors.geofence import Hotspot

    table = store.query("SELECT id, geometry_geojson, ifNull(buffer_m, 0) FROM hotspot.hotspots_current "
                        "WHERE retired = 0 ORDER BY id")
    out = []
    for hid, geojson, buffer_m in table.rows:
        try:
            geom = shape(json.loads(geojson))
        except (ValueError, TypeError, AttributeError):
            continue  # the worker refuses such a hot spot too
        if geom.geom_type in ("Polygon", "MultiPolygon") and not geom.is_empty:
            out.append(Hotspot(str(hid), geom, float(buffer_m or 0.0)))
    return out


def crime_keys(source: str, occurred_s: np.ndarray, lat: np.ndarray, lon: np.ndarray, categories: list[str],
               locations: list[str]) -> list[str]:
    """A stable key per record: its fields, and its ordinal among identical records of the file (two
    identical rows are two crimes; the same file loaded again gives the same keys)."""
    seen: Counter = Counter()
    keys = []
    for t, la, lo, cat, loc in zip(occurred_s.tolist(), lat.tolist(), lon.tolist(), categories, locations):
        identity = f"{source}\x1f{t}\x1f{la:.6f}\x1f{lo:.6f}\x1f{cat}\x1f{loc}"
        seen[identity] += 1
        keys.append(hashlib.blake2b(f"{identity}\x1f{seen[identity]}".encode(), digest_size=12).hexdigest())
    return keys


def load_crimes(store: Store, path, *, harm_table_path=None, tz: str = "Europe/London",
                progress=lambda text: None) -> LoadResult:
    """Read `path`, place its records in hot spots, write them to `crimes`; CrimeFileError if unreadable."""
    import datetime as dt

    from processors.geofence import HotspotIndex
    from formats.crimes import read_crime_file, read_harm_table

    records, report = read_crime_file(path, tz=tz)
    progress(f"read {report.records:,} records of {report.rows:,} rows from {path} ({report.format})")
    harm_table = read_harm_table(harm_table_path)
    hotspots = current_hotspots(store)
    n = len(records)
    inside: list[tuple[str, ...]] = [()] * n
    if hotspots and n:
        index = HotspotIndex.from_hotspots(hotspots)
        inside, _ = index.match(records.lat_deg, records.lon_deg).per_point(n)
    categories = [records.categories[c] for c in records.category.tolist()]
    locations = [records.locations[c] if c >= 0 else "" for c in records.location.tolist()]
    weights = {label: harm_table.weight_of(label) for label in records.categories}
    harm = [None if np.isnan(h) and weights[c] is None else (weights[c] if np.isnan(h) else float(h))
            for h, c in zip(records.harm_days.tolist(), categories)]
    keys = crime_keys(report.format, records.occurred_s, records.lat_deg, records.lon_deg, categories, locations)
    occurred = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t in records.occurred_s.tolist()]
    precision = [PRECISION_NAMES[p] for p in records.precision.tolist()]
    now = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc)
    lat, lon = records.lat_deg.tolist(), records.lon_deg.tolist()
    for start in range(0, n, INSERT_CHUNK_ROWS):
        end = min(n, start + INSERT_CHUNK_ROWS)
        store.insert("crimes", CRIME_COLUMNS, [
            keys[start:end], [report.format] * (end - start), occurred[start:end], precision[start:end],
            lat[start:end], lon[start:end], categories[start:end], harm[start:end], locations[start:end],
            [list(ids) for ids in inside[start:end]], [now] * (end - start)])
        progress(f"wrote {end:,} of {n:,} records")
    return LoadResult(str(path), report.format, report.rows, n, sum(1 for ids in inside if ids),
                      sum(1 for h in harm if h is None), report.bad, len(hotspots))
