"""Square and hexagonal grids in a metric CRS.

Cells must be true squares or hexagons on the ground, so records are projected
from WGS84 to a conformal metric CRS before binning: the British National Grid
(EPSG:27700) when the data lies within its area of use, otherwise the UTM zone
of the data's median longitude (WGS84 / UTM, EPSG:326zz north, 327zz south).
Both are Transverse Mercator projections with scale within about 0.1% of true
over a police force's area, so a 150 m cell is 150 m on the ground to well
within 1%.

Grids are anchored at the CRS origin (0, 0) so a cell's integer index depends
only on the ground it covers. Squares are indexed (i, j) = floor(x/s, y/s).
Hexagons are "pointy-top" with `size_m` the distance across flats (east-west
width); they use axial coordinates (q, r) with centre x = s*(q + r/2),
y = s*sqrt(3)/2 * r.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

BNG_EPSG = 27700
# EPSG:27700 area of use (west, south, east, north), degrees.
BNG_BOUNDS_DEG = (-9.01, 49.75, 2.01, 61.01)

SQRT3 = np.sqrt(3.0)
# Packed cell keys: (i + OFFSET) * STRIDE + (j + OFFSET); fits int64 for |i|, |j| < 2**30.
_OFFSET = 2**30
_STRIDE = 2**31


def choose_metric_epsg(lon_deg: np.ndarray, lat_deg: np.ndarray) -> int:
    """British National Grid inside its area of use, else the UTM zone of the median point."""
    if len(lon_deg) == 0:
        return BNG_EPSG
    lon = float(np.median(lon_deg))
    lat = float(np.median(lat_deg))
    w, s, e, n = BNG_BOUNDS_DEG
    if w <= lon <= e and s <= lat <= n:
        return BNG_EPSG
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=16)
def _transformers(epsg: int):
    from pyproj import Transformer

    fwd = Transformer.from_crs(4326, epsg, always_xy=True)
    inv = Transformer.from_crs(epsg, 4326, always_xy=True)
    return fwd, inv


def to_metric(epsg: int, lon_deg: np.ndarray, lat_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project WGS84 degrees to metres; points that cannot be projected come back as inf or NaN."""
    fwd, _ = _transformers(epsg)
    x, y = fwd.transform(np.asarray(lon_deg, dtype=np.float64), np.asarray(lat_deg, dtype=np.float64), errcheck=False)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_wgs84(epsg: int, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    _, inv = _transformers(epsg)
    lon, lat = inv.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon), np.asarray(lat)


def pack(i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return (np.asarray(i, np.int64) + _OFFSET) * _STRIDE + (np.asarray(j, np.int64) + _OFFSET)


def unpack(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    key = np.asarray(key, np.int64)
    return key // _STRIDE - _OFFSET, key % _STRIDE - _OFFSET


@dataclass(frozen=True)
class Grid:
    shape: str  # "square" or "hex"
    size_m: float  # square side, or hexagon width across flats
    epsg: int

    def __post_init__(self):
        if self.shape not in ("square", "hex"):
            raise ValueError(f"cell shape must be square or hex, not {self.shape!r}")
        if not self.size_m > 0:
            raise ValueError("cell size must be positive")

    @property
    def nominal_area_m2(self) -> float:
        s = self.size_m
        return s * s if self.shape == "square" else SQRT3 / 2.0 * s * s

    def index_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer cell index of each point (vectorised)."""
        s = self.size_m
        if self.shape == "square":
            return np.floor(x / s).astype(np.int64), np.floor(y / s).astype(np.int64)
        # Fractional axial coordinates, then round in cube space (x + y + z = 0).
        r = y / (s * SQRT3 / 2.0)
        q = x / s - r / 2.0
        cx, cz = q, r
        cy = -cx - cz
        rx, ry, rz = np.rint(cx), np.rint(cy), np.rint(cz)
        dx, dy, dz = np.abs(rx - cx), np.abs(ry - cy), np.abs(rz - cz)
        fix_x = (dx > dy) & (dx > dz)
        fix_z = ~fix_x & (dz >= dy)
        rx = np.where(fix_x, -ry - rz, rx)
        rz = np.where(fix_z, -rx - ry, rz)
        return rx.astype(np.int64), rz.astype(np.int64)

    def centre_of(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = self.size_m
        i = np.asarray(i, dtype=np.float64)
        j = np.asarray(j, dtype=np.float64)
        if self.shape == "square":
            return (i + 0.5) * s, (j + 0.5) * s
        return s * (i + j / 2.0), s * SQRT3 / 2.0 * j

    def vertices_of(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Counter-clockwise ring vertices (without the closing repeat), shape (n, k, 2)."""
        cx, cy = self.centre_of(i, j)
        s = self.size_m
        if self.shape == "square":
            ox = np.array([-0.5, 0.5, 0.5, -0.5]) * s
            oy = np.array([-0.5, -0.5, 0.5, 0.5]) * s
        else:
            radius = s / SQRT3  # centre to vertex
            ang = np.radians(np.arange(6) * 60.0 - 30.0)
            ox, oy = radius * np.cos(ang), radius * np.sin(ang)
        return np.stack([cx[:, None] + ox[None, :], cy[:, None] + oy[None, :]], axis=-1)

    def touching_offsets(self) -> list[tuple[int, int]]:
        """Neighbours sharing a corner or an edge (Gi* neighbourhood)."""
        if self.shape == "square":
            return [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]
        return self.edge_offsets()

    def edge_offsets(self) -> list[tuple[int, int]]:
        """Neighbours sharing an edge (used to merge adjacent cells)."""
        if self.shape == "square":
            return [(1, 0), (-1, 0), (0, 1), (0, -1)]
        return [(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)]


def os_grid_reference(easting_m: float, northing_m: float) -> str | None:
    """Ordnance Survey 6-figure grid reference (100 m), e.g. 'TQ 302 796'; None off the grid."""
    e, n = int(np.floor(easting_m)), int(np.floor(northing_m))
    if not (0 <= e < 700_000 and 0 <= n < 1_300_000):
        return None
    e100, n100 = e // 100_000, n // 100_000
    l1 = (19 - n100) - (19 - n100) % 5 + (e100 + 10) // 5
    l2 = (19 - n100) * 5 % 25 + e100 % 5
    letters = "".join(chr(ord("A") + (v + 1 if v > 7 else v)) for v in (l1, l2))  # the grid has no I
    return f"{letters} {e % 100_000 // 100:03d} {n % 100_000 // 100:03d}"
