"""Generated crime data with a concentration we choose, for tests and bench/hotspots.py.

Points are placed well inside chosen grid cells (never within 20% of a cell's
edge), so which cell holds which record is known exactly, whatever the shape.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from processors.hotspots.grid import Grid, to_wgs84
from processors.hotspots.records import EXACT, CrimeRecords, make_records


def points_in_cell(grid: Grid, i: int, j: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n lon/lat points inside cell (i, j): centre plus at most 0.3 of the cell size each way."""
    cx, cy = grid.centre_of(np.array([i]), np.array([j]))
    x = cx[0] + rng.uniform(-0.3, 0.3, n) * grid.size_m
    y = cy[0] + rng.uniform(-0.3, 0.3, n) * grid.size_m
    return to_wgs84(grid.epsg, x, y)


def epoch(text: str) -> int:
    """UTC epoch seconds of an ISO-8601 instant with offset, e.g. '2024-05-03T22:15:00+01:00'."""
    return int(datetime.fromisoformat(text).timestamp())


def planted(grid: Grid, spec: list[tuple[tuple[int, int], int, str, list[int] | np.ndarray]], seed: int = 0,
            harm_days=None) -> CrimeRecords:
    """Records from (cell (i, j), how many, category, UTC epoch seconds per record or one for all)."""
    rng = np.random.default_rng(seed)
    lons, lats, times, cats = [], [], [], []
    for (i, j), n, category, when in spec:
        lon, lat = points_in_cell(grid, i, j, n, rng)
        lons.append(lon)
        lats.append(lat)
        when = np.asarray(when, np.int64)
        times.append(np.broadcast_to(when, (n,)) if when.ndim == 0 or len(when) == 1 else when)
        cats += [category] * n
    times = np.concatenate([np.asarray(t).reshape(-1) for t in times])
    return make_records(np.concatenate(lats), np.concatenate(lons), times, cats, precision=EXACT, harm_days=harm_days)


def synthetic_city(n: int, seed: int = 1, *, origin_en=(500_000.0, 170_000.0), size_m: float = 30_000.0,
                   hot_points: int = 300, hot_fraction: float = 0.35, start="2023-01-01", days: int = 730):
    """Columns of a plausible force extract around London: (lat, lon, epoch_s, category labels).

    A share `hot_fraction` of records falls within ~60 m of a few hundred "hot points" (night-time
    economy), the rest spread around a handful of town centres.
    """
    rng = np.random.default_rng(seed)
    e0, n0 = origin_en
    n_hot = int(n * hot_fraction)
    hot = rng.uniform(0, size_m, (hot_points, 2))
    which = rng.integers(0, hot_points, n_hot)
    xy_hot = hot[which] + rng.normal(0, 60, (n_hot, 2))
    centres = rng.uniform(0.1 * size_m, 0.9 * size_m, (12, 2))
    c = rng.integers(0, len(centres), n - n_hot)
    xy_rest = centres[c] + rng.normal(0, size_m / 12, (n - n_hot, 2))
    xy = np.vstack([xy_hot, xy_rest])
    lon, lat = to_wgs84(27700, e0 + xy[:, 0], n0 + xy[:, 1])
    t0 = datetime.fromisoformat(start).replace(tzinfo=timezone.utc).timestamp()
    day = rng.integers(0, days, n)
    hour = rng.choice(24, n, p=_NIGHT_HEAVY)
    t = (t0 + day * 86400 + hour * 3600 + rng.integers(0, 3600, n)).astype(np.int64)
    labels = np.array(["Violence with injury", "Violence without injury", "Robbery", "Possession of weapons",
                       "Sexual offences", "Shoplifting", "Burglary", "Criminal damage and arson"])
    cat = labels[rng.choice(len(labels), n, p=[0.22, 0.30, 0.06, 0.04, 0.05, 0.15, 0.10, 0.08])]
    return lat, lon, t, cat


_hours = np.array([6, 5, 4, 3, 2, 1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4, 5, 6, 7, 8, 8, 7], dtype=float)
_NIGHT_HEAVY = _hours / _hours.sum()


def write_generic_csv(path: str | Path, lat, lon, epoch_s, categories, *, harm=None) -> None:
    """A generic crime CSV; times written as UTC with a Z (pandas does the formatting fast)."""
    import pandas as pd

    df = pd.DataFrame({
        "occurred_at": pd.to_datetime(np.asarray(epoch_s, np.int64), unit="s").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lat": np.round(lat, 6), "lon": np.round(lon, 6), "category": categories})
    if harm is not None:
        df["harm"] = harm
    df.to_csv(path, index=False)


def write_police_uk_csv(path: str | Path, lat, lon, epoch_s, categories) -> None:
    """A police.uk street-level CSV (month only, snapped locations omitted) from the same columns."""
    import pandas as pd

    n = len(lat)
    month = pd.to_datetime(np.asarray(epoch_s, np.int64), unit="s").strftime("%Y-%m")
    cat = np.asarray(categories).astype(object)
    cat[np.isin(cat, ["Violence with injury", "Violence without injury", "Sexual offences"])] = "Violence and sexual offences"
    df = pd.DataFrame({
        "Crime ID": [f"{k:064x}" for k in range(n)], "Month": month, "Reported by": "Example Police",
        "Falls within": "Example Police", "Longitude": np.round(lon, 6), "Latitude": np.round(lat, 6),
        "Location": "On or near Example Street", "LSOA code": "E01000001", "LSOA name": "Example 001A",
        "Crime type": cat, "Last outcome category": "Under investigation", "Context": ""})
    df.to_csv(path, index=False)
