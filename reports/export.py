"""Pseudonymised export for evaluators (`hotspot export --pseudonymise`).

Officers (`user`), devices and every id derived from them (visit, stop, assignment and activity ids:
visit ids are unsalted hashes of the device id, so a dictionary of device names would undo them) are
replaced by keyed pseudonyms: HMAC-SHA256 with a secret salt, truncated to 16 hex digits and prefixed
with their kind (`officer-…`, `device-…`). The same salt gives the same pseudonym in every export, so
an evaluator can join exports over time; without the salt nobody can link a pseudonym back. The salt
is the `export_salt` setting, else `<data_dir>/export.salt` (32 random bytes, made on first use, 0600).

Left out entirely: activity notes and attributes (free text may name people), raw pings unless asked
for, names of officers and devices. Optional coarsening: times floored to `time_resolution_s`, positions
moved to the centre of a `grid_m` square grid cell (cells `grid_m` tall in latitude and, per row of
cells, `grid_m` wide in longitude at that row's middle latitude).

Rows are those of trial days date_from..date_to (06:00-05:59 London), read in pages so a running
worker's row limit for read-only queries is never reached.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from reports.store import Store

SALT_FILE = "export.salt"
PAGE_ROWS = 50_000
M_PER_DEG_LAT = 111_320.0

# table -> (time column for the window, select list, ORDER BY key). Times are read as epoch ms
# (`*_ms`) so both store routes give the same values; what each column becomes is in COLUMN_KIND.
TABLES: dict[str, tuple[str, str, str]] = {
    "visits": ("entered_at",
               "visit_id, device_id, hotspot_id, toUnixTimestamp64Milli(entered_at) AS entered_ms, "
               "if(exited_at IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(exited_at))) AS exited_ms, "
               "dwell_s, observed_s, inferred_s, foot_s, vehicle_s, stationary_s, stop_count, ping_count, end_reason",
               "visit_id"),
    "stops": ("started_at",
              "stop_id, device_id, hotspot_id, toUnixTimestamp64Milli(started_at) AS started_ms, "
              "if(ended_at IS NULL, NULL, toUnixTimestamp64Milli(assumeNotNull(ended_at))) AS ended_ms, "
              "duration_s, lat, lon", "stop_id"),
    "mode_segments": ("started_at",
                      "device_id, toUnixTimestamp64Milli(started_at) AS started_ms, "
                      "toUnixTimestamp64Milli(ended_at) AS ended_ms, mode, distance_m", "device_id, started_ms"),
    "assignments": ("assigned_at",
                    "assignment_id, `user`, device_id, hotspot_id, toUnixTimestamp64Milli(assigned_at) AS assigned_ms, "
                    "trial_day, arm, target_minutes, officer_lat AS lat, officer_lon AS lon, distance_m, candidates",
                    "assignment_id"),
    "activity": ("ts",
                 "activity_id, `user`, device_id, toUnixTimestamp64Milli(ts) AS ts_ms, kind, hotspot_id, assignment_id, "
                 "lat, lon", "activity_id"),
    "allocations": ("starts_at",
                    "trial_id, hotspot_id, day, toUnixTimestamp64Milli(starts_at) AS starts_ms, "
                    "toUnixTimestamp64Milli(ends_at) AS ends_ms, arm, block, design", "trial_id, day, hotspot_id"),
    "pings": ("ts",
              "device_id, toUnixTimestamp64Milli(ts) AS ts_ms, lat, lon, accuracy_m, speed_mps, source, "
              "hotspot_ids, low_accuracy, late", "device_id, ts_ms"),
}
COLUMN_KIND = {
    "visit_id": "visit", "stop_id": "stop", "assignment_id": "assignment", "activity_id": "activity",
    "user": "officer", "device_id": "device",
}
FINAL_TABLES = {"visits", "stops", "mode_segments", "assignments", "activity", "allocations", "pings"}


class ExportError(Exception):
    """The export cannot be made; the message is one line."""


@dataclass(frozen=True)
class ExportOptions:
    date_from: dt.date
    date_to: dt.date
    time_resolution_s: int = 0   # 0: times as stored (ms)
    grid_m: float = 0.0          # 0: positions as stored
    include_pings: bool = False
    tz: str = "Europe/London"


def load_salt(settings) -> bytes:
    """The export salt: the setting, else the data directory's salt file (made private on first use)."""
    given = settings.export_salt.get_secret_value()
    if given:
        return given.encode()
    path = Path(settings.data_dir) / SALT_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    salt = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another export made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as fh:
        fh.write(salt)
    return salt


class Pseudonymiser:
    def __init__(self, salt: bytes):
        if not salt:
            raise ExportError("the export salt is empty")
        self._salt = salt
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, value) -> str:
        if value is None or value == "":
            return ""
        key = (kind, str(value))
        got = self._cache.get(key)
        if got is None:
            digest = hmac.new(self._salt, f"{kind}\x1f{value}".encode(), hashlib.sha256).hexdigest()[:16]
            got = self._cache[key] = f"{kind}-{digest}"
        return got


def coarsen_time_ms(ms, resolution_s: int):
    if ms is None or ms == "":
        return None
    ms = int(ms)
    if resolution_s > 0:
        step = resolution_s * 1000
        ms -= ms % step
    return ms


def coarsen_position(lat, lon, grid_m: float):
    """(lat, lon) of the centre of the grid cell holding the point; unchanged without a grid."""
    if lat is None or lon is None or lat == "" or lon == "" or grid_m <= 0:
        return lat, lon
    dlat = grid_m / M_PER_DEG_LAT
    row = math.floor(float(lat) / dlat)
    lat_c = (row + 0.5) * dlat
    dlon = grid_m / (M_PER_DEG_LAT * max(math.cos(math.radians(lat_c)), 1e-6))
    col = math.floor(float(lon) / dlon)
    return round(lat_c, 7), round((col + 0.5) * dlon, 7)


def select_names(select: str) -> list[str]:
    """The output column names of a select list: each item's alias, else the item (top-level commas only)."""
    import re

    items, depth, cur = [], 0, ""
    for ch in select:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    items.append(cur)
    names = []
    for item in items:
        m = re.search(r"\bAS\s+`?(\w+)`?\s*$", item.strip())
        names.append(m.group(1) if m else item.strip().strip("`"))
    return names


def _iso(ms) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(int(ms) / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _window_ms(opts: ExportOptions) -> tuple[int, int]:
    zone = ZoneInfo(opts.tz)
    start = dt.datetime.combine(opts.date_from, dt.time(6), zone)
    end = dt.datetime.combine(opts.date_to + dt.timedelta(days=1), dt.time(6), zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def export(store: Store, out_dir, opts: ExportOptions, salt: bytes, progress=lambda text: None) -> dict[str, int]:
    """Write one CSV per table (and manifest.json) to out_dir; return rows written per table."""
    if opts.date_to < opts.date_from:
        raise ExportError(f"--to {opts.date_to} is before --from {opts.date_from}")
    pseudo = Pseudonymiser(salt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    lo_ms, hi_ms = _window_ms(opts)
    counts: dict[str, int] = {}
    for table, (time_col, select, order) in TABLES.items():
        if table == "pings" and not opts.include_pings:
            continue
        where = (f"toUnixTimestamp64Milli({time_col}) >= {lo_ms} AND toUnixTimestamp64Milli({time_col}) < {hi_ms}")
        path = out / f"{table}.csv"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        n = 0
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            names = select_names(select)
            writer.writerow([("ts" if c == "ts_ms" else c[:-3] + "_at") if c.endswith("_ms") else c for c in names])
            offset = 0
            while True:
                page = store.query(f"SELECT {select} FROM hotspot.{table}{' FINAL' if table in FINAL_TABLES else ''} "
                                   f"WHERE {where} ORDER BY {order} LIMIT {PAGE_ROWS} OFFSET {offset}")
                for row in page.rows:
                    writer.writerow(_transform(names, row, pseudo, opts))
                n += len(page.rows)
                if len(page.rows) < PAGE_ROWS:
                    break
                offset += PAGE_ROWS
        counts[table] = n
        progress(f"{table}: {n:,} rows")
    manifest = {
        "trial_days": [opts.date_from.isoformat(), opts.date_to.isoformat()],
        "window_utc": [_iso(lo_ms), _iso(hi_ms)],
        "pseudonyms": "HMAC-SHA256 of kind and identifier with a private salt, 16 hex digits; stable across "
                      "exports made with the same salt",
        "time_resolution_s": opts.time_resolution_s or None,
        "grid_m": opts.grid_m or None,
        "left_out": ["activity notes and attributes", "names of officers and devices"]
                    + ([] if opts.include_pings else ["raw pings"]),
        "rows": counts,
    }
    fd = os.open(out / "manifest.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2)
    return counts


def _transform(columns: list[str], row: list, pseudo: Pseudonymiser, opts: ExportOptions) -> list:
    values = dict(zip(columns, row))
    if "lat" in values and "lon" in values:
        values["lat"], values["lon"] = coarsen_position(values["lat"], values["lon"], opts.grid_m)
    out = []
    for c in columns:
        v = values[c]
        if c in COLUMN_KIND:
            out.append(pseudo(COLUMN_KIND[c], v))
        elif c.endswith("_ms"):
            out.append(_iso(coarsen_time_ms(v, opts.time_resolution_s)))
        elif isinstance(v, (list, tuple)):
            out.append(";".join(map(str, v)))
        elif v is None:
            out.append("")
        else:
            out.append(v)
    return out


def parse_resolution(text: str) -> int:
    """Seconds of `15min`, `1h`, `30s`, `1d` or a bare number of seconds; ValueError otherwise."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*(s|sec|min|m|h|d)?\s*", text or "")
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a time resolution (e.g. 15min, 1h, 30s)")
    unit = {"s": 1, "sec": 1, None: 1, "min": 60, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    return int(m.group(1)) * unit
