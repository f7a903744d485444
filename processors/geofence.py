"""The hot-spot index: which hot spots contain a batch of positions, and which edges their accuracy straddles.

Owns the geometry side of the analytics. `HotspotIndex.from_hotspots` takes hot
spots in WGS84 (polygon or multipolygon, `buffer_m` widening), and
`HotspotIndex.match` answers, for arrays of positions, every (point, hot spot)
pair where the point is inside the hot spot or within its edge distance of the
hot spot's boundary. The index is immutable: when hot spots change, build a new
one (20,000 hot spots take well under a second).

How it works, and why (docs/decisions.md, "Analytics core"):

* One metric frame per index: an equirectangular projection at the centre of
  the hot spots' extent, scaled by the WGS84 radii of curvature there. It is an
  affine map of longitude/latitude, so point-in-polygon answers are exactly
  those of the polygons as drawn (GeoJSON edges are straight in lon/lat);
  distances (accuracy radii) are off by the cosine ratio, under 1% within
  about 50 km north or south of the centre. `buffer_m` is applied in a frame
  centred on each hot spot, so buffers are right anywhere.
* A bucket grid (100 m cells) lists, per cell, the hot spots whose bounding
  box grown by `grid_margin_m` (50 m) touches it: one numpy gather turns a
  batch of points into candidate (point, hot spot) pairs, and most pings of a
  force area land in empty cells. Points whose edge distance exceeds the
  margin (poor accuracy) get their candidates from a shapely STRtree instead.
* Candidates are refined in numpy over the hot spots' ring segments: inside by
  the even-odd crossing rule (holes and multipolygons included), edge by the
  squared distance to the nearest segment. No GEOS call and no point object
  per ping; bench/geofence.py checks the answers against shapely's predicates
  and measures this against shapely's vectorised STRtree and the `rtree`
  package (bench/RESULTS.md, docs/decisions.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from processors.geo import metres_per_degree

_MIN_MS = np.iinfo(np.int64).min
_MAX_MS = np.iinfo(np.int64).max
_MAX_GRID_CELLS = 64_000_000


@dataclass(frozen=True)
class Hotspot:
    """A hot spot as the analytics need it: stable id, WGS84 area, and how far to widen it."""

    id: str
    geometry: Polygon | MultiPolygon      # lon/lat
    buffer_m: float = 0.0
    name: str = ""
    active_from_ms: int | None = None     # inclusive; None: always
    active_to_ms: int | None = None       # exclusive; None: always


@dataclass(frozen=True)
class Matches:
    """(point, hot spot) pairs of one `match` call, sorted by point then hot-spot index.

    `inside`: the position is inside the (buffered) polygon. `edge`: the
    polygon's boundary is within the point's edge distance, so the point could
    be on either side. Every pair has at least one of the two.
    """

    point: np.ndarray      # int64 index into the query arrays
    hotspot: np.ndarray    # int64 index into HotspotIndex.ids
    inside: np.ndarray     # bool
    edge: np.ndarray       # bool
    ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.point)

    def per_point(self, n: int) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
        """For each of n points: (ids it is inside, ids whose edge it straddles)."""
        empty: tuple[str, ...] = ()
        inside_ids: list[tuple[str, ...]] = [empty] * n
        edge_ids: list[tuple[str, ...]] = [empty] * n
        if not len(self.point):
            return inside_ids, edge_ids
        ids = self.ids
        # A point in (or on the edge of) one hot spot alone gets that hot spot's (id,) tuple,
        # made once per call and shared: most points are near one hot spot at most, and every
        # object the accepted pings keep is one more for the garbage collector to count.
        alone: dict[int, tuple[str, ...]] = {}
        for i, j, is_in, is_edge in zip(self.point.tolist(), self.hotspot.tolist(), self.inside.tolist(),
                                        self.edge.tolist()):
            if is_in:
                got = inside_ids[i]
                inside_ids[i] = got + (ids[j],) if got else alone.get(j) or alone.setdefault(j, (ids[j],))
            if is_edge:
                got = edge_ids[i]
                edge_ids[i] = got + (ids[j],) if got else alone.get(j) or alone.setdefault(j, (ids[j],))
        return inside_ids, edge_ids


class HotspotIndex:
    """Immutable index over hot spots; build with `from_hotspots`, query with `match`."""

    def __init__(self, hotspots: Sequence[Hotspot], polygons_xy: np.ndarray, lat0: float, lon0: float,
                 grid_cell_m: float, grid_margin_m: float):
        self.hotspots = tuple(hotspots)
        self.ids: tuple[str, ...] = tuple(h.id for h in hotspots)
        self.lat0, self.lon0 = lat0, lon0
        self.kx, self.ky = metres_per_degree(lat0)
        self._polys = polygons_xy
        self._tree = shapely.STRtree(self._polys)
        self._active_from = np.array([_MIN_MS if h.active_from_ms is None else h.active_from_ms for h in hotspots],
                                     dtype=np.int64)
        self._active_to = np.array([_MAX_MS if h.active_to_ms is None else h.active_to_ms for h in hotspots],
                                   dtype=np.int64)
        self._has_windows = bool((self._active_from != _MIN_MS).any() or (self._active_to != _MAX_MS).any())
        self._build_grid(grid_cell_m, grid_margin_m)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_hotspots(cls, hotspots: Iterable[Hotspot], *, grid_cell_m: float = 100.0,
                      grid_margin_m: float = 50.0) -> "HotspotIndex":
        hs = list(hotspots)
        seen: set[str] = set()
        for h in hs:
            if not h.id:
                raise ValueError("a hot spot has an empty id")
            if h.id in seen:
                raise ValueError(f"hot-spot id {h.id!r} appears twice")
            seen.add(h.id)
            if not isinstance(h.geometry, (Polygon, MultiPolygon)) or h.geometry.is_empty:
                raise ValueError(f"hot spot {h.id!r}: geometry must be a non-empty Polygon or MultiPolygon")
            if not (math.isfinite(h.buffer_m) and h.buffer_m >= 0):
                raise ValueError(f"hot spot {h.id!r}: buffer_m must be a non-negative number")
            minx, miny, maxx, maxy = h.geometry.bounds
            if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
                raise ValueError(f"hot spot {h.id!r}: coordinates are not WGS84 longitude/latitude")
        if hs:
            b = shapely.bounds(np.array([h.geometry for h in hs], dtype=object))
            lat0 = float((b[:, 1].min() + b[:, 3].max()) / 2)
            lon0 = float((b[:, 0].min() + b[:, 2].max()) / 2)
        else:
            lat0 = lon0 = 0.0
        kx, ky = metres_per_degree(lat0)
        polys = np.empty(len(hs), dtype=object)
        for k, h in enumerate(hs):
            g = h.geometry
            if not g.is_valid:
                g = _polygonal(shapely.make_valid(g))
                if g is None:
                    raise ValueError(f"hot spot {h.id!r}: geometry is not a valid polygon")
            if h.buffer_m > 0:
                g = _buffer_locally(g, h.buffer_m)
            polys[k] = g
        if hs:
            polys = shapely.transform(polys, lambda c: (c - (lon0, lat0)) * (kx, ky))
        return cls(hs, polys, lat0, lon0, grid_cell_m, grid_margin_m)

    def _build_grid(self, cell_m: float, margin_m: float) -> None:
        """Bucket grid: for every cell, the hot spots whose bounding box (grown by the margin) touches it."""
        self._margin_m = margin_m
        if not len(self._polys):
            self._grid_shape = None
            return
        b = shapely.bounds(self._polys)
        self._bbox = b
        x0, y0 = b[:, 0].min() - margin_m, b[:, 1].min() - margin_m
        x1, y1 = b[:, 2].max() + margin_m, b[:, 3].max() + margin_m
        while True:
            nx, ny = int((x1 - x0) // cell_m) + 1, int((y1 - y0) // cell_m) + 1
            ix0 = ((b[:, 0] - margin_m - x0) // cell_m).astype(np.int64)
            ix1 = ((b[:, 2] + margin_m - x0) // cell_m).astype(np.int64)
            iy0 = ((b[:, 1] - margin_m - y0) // cell_m).astype(np.int64)
            iy1 = ((b[:, 3] + margin_m - y0) // cell_m).astype(np.int64)
            entries = int(((ix1 - ix0 + 1) * (iy1 - iy0 + 1)).sum())
            if nx * ny <= _MAX_GRID_CELLS and entries <= _MAX_GRID_CELLS:
                break
            cell_m *= 2.0
        cells, owners = [], []
        for h, (a, c, d, e) in enumerate(zip(ix0.tolist(), ix1.tolist(), iy0.tolist(), iy1.tolist())):
            gx, gy = np.meshgrid(np.arange(a, c + 1), np.arange(d, e + 1), indexing="ij")
            cells.append((gx * ny + gy).ravel())
            owners.append(np.full(gx.size, h, dtype=np.int64))
        cells_a, owners_a = np.concatenate(cells), np.concatenate(owners)
        order = np.argsort(cells_a, kind="stable")
        self._cell_hotspots = owners_a[order]
        self._cell_start = np.searchsorted(cells_a[order], np.arange(nx * ny + 1))
        self._grid_shape = (nx, ny)
        self._grid_origin = (x0, y0)
        self._grid_cell_m = cell_m
        self._build_segments()

    def _build_segments(self) -> None:
        """Every ring of every hot spot as segments, for the vectorised point-in-polygon and edge distance."""
        x1s, y1s, x2s, y2s, counts = [], [], [], [], []
        for g in self._polys:
            n = 0
            for poly in shapely.get_parts(g):
                for ring in [poly.exterior, *poly.interiors]:
                    c = np.asarray(ring.coords)[:, :2]
                    x1s.append(c[:-1, 0]); y1s.append(c[:-1, 1])
                    x2s.append(c[1:, 0]); y2s.append(c[1:, 1])
                    n += len(c) - 1
            counts.append(n)
        x1, y1, x2, y2 = (np.concatenate(v) for v in (x1s, y1s, x2s, y2s))
        dx, dy = x2 - x1, y2 - y1
        len2 = dx * dx + dy * dy
        with np.errstate(divide="ignore", invalid="ignore"):
            self._seg_inv_len2 = np.where(len2 > 0, 1.0 / len2, 0.0)
            self._seg_dxdy = np.where(dy != 0, dx / dy, 0.0)
        self._seg_x1, self._seg_y1, self._seg_dx, self._seg_dy = x1, y1, dx, dy
        self._seg_y2 = y2
        self._seg_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ query
    # The query calls ndarray methods (a.clip, a.repeat) rather than the np.* wrappers: the same
    # functions with less overhead per call, which is most of a query's cost for the small
    # batches of a quiet live stream.
    def to_xy(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """WGS84 degrees to the index's metric frame."""
        return (np.asarray(lon, dtype=np.float64) - self.lon0) * self.kx, \
               (np.asarray(lat, dtype=np.float64) - self.lat0) * self.ky

    def match(self, lat: np.ndarray, lon: np.ndarray, edge_m: np.ndarray | float = 0.0,
              ts_ms: np.ndarray | None = None) -> Matches:
        """Every (point, hot spot) pair with the point inside or within edge_m of the hot spot's boundary.

        `edge_m` (per point or one value, metres) is how far the point may be
        from where it is reported: the caller derives it from the accuracy.
        With `ts_ms`, hot spots outside their active window at that time are left out.
        """
        lat = np.asarray(lat, dtype=np.float64)
        n = len(lat)
        if self._grid_shape is None or not n:
            return self._empty()
        edge = np.ascontiguousarray(np.broadcast_to(np.asarray(edge_m, dtype=np.float64), (n,)))
        x, y = self.to_xy(lat, lon)
        qi, hj = self._candidate_pairs(x, y, edge)
        if not len(qi):
            return self._empty()
        # Bounding boxes grown by each point's edge distance: most grid neighbours stop here.
        px, py, pe = x[qi], y[qi], edge[qi]
        b = self._bbox[hj]
        near_box = (px >= b[:, 0] - pe) & (px <= b[:, 2] + pe) & (py >= b[:, 1] - pe) & (py <= b[:, 3] + pe)
        qi, hj, px, py, pe = qi[near_box], hj[near_box], px[near_box], py[near_box], pe[near_box]
        if not len(qi):
            return self._empty()
        inside, d2 = self._rings(hj, px, py)
        on_edge = d2 <= pe * pe
        keep = inside | on_edge
        if self._has_windows and ts_ms is not None:
            t = np.asarray(ts_ms, dtype=np.int64)[qi]
            keep &= (t >= self._active_from[hj]) & (t < self._active_to[hj])
        qi, hj, inside, on_edge = qi[keep], hj[keep], inside[keep], on_edge[keep]
        order = np.lexsort((hj, qi))
        return Matches(qi[order], hj[order], inside[order], on_edge[order], self.ids)

    def _candidate_pairs(self, x: np.ndarray, y: np.ndarray, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, hot spot) pairs sharing a grid cell; points reaching past the margin ask the R-tree."""
        nx, ny = self._grid_shape
        inv = 1.0 / self._grid_cell_m
        fx = (x - self._grid_origin[0]) * inv
        fy = (y - self._grid_origin[1]) * inv
        in_grid = (fx >= 0) & (fx < nx) & (fy >= 0) & (fy < ny)
        cell = fx.clip(0, nx - 1).astype(np.int64) * ny + fy.clip(0, ny - 1).astype(np.int64)
        starts = self._cell_start[cell]
        counts = np.where(in_grid, self._cell_start[cell + 1] - starts, 0)
        wide = edge > self._margin_m
        counts[wide] = 0
        pts = counts.nonzero()[0]
        counts, starts = counts[pts], starts[pts]
        total = int(counts.sum())
        first = counts.cumsum() - counts
        qi = pts.repeat(counts)
        hj = self._cell_hotspots[(starts - first).repeat(counts) + np.arange(total)]
        wide_pts = wide.nonzero()[0]
        if len(wide_pts):
            e = edge[wide_pts]
            wx, wy = x[wide_pts], y[wide_pts]
            wi, wj = self._tree.query(shapely.box(wx - e, wy - e, wx + e, wy + e))
            qi = np.concatenate([qi, wide_pts[wi]])
            hj = np.concatenate([hj, wj.astype(np.int64)])
        return qi, hj

    def _rings(self, hj: np.ndarray, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each (hot spot, point): inside by the even-odd rule over all rings, and squared distance to the boundary."""
        s0 = self._seg_start[hj]
        counts = self._seg_start[hj + 1] - s0
        total = int(counts.sum())
        first = counts.cumsum() - counts
        seg = (s0 - first).repeat(counts) + np.arange(total)
        sx = px.repeat(counts)
        sy = py.repeat(counts)
        x1, y1 = self._seg_x1[seg], self._seg_y1[seg]
        rx, ry = sx - x1, sy - y1
        # Crossing of a ray going east from the point.
        crosses = ((y1 > sy) != (self._seg_y2[seg] > sy)) & (rx < ry * self._seg_dxdy[seg])
        inside = (np.add.reduceat(crosses.view(np.int8), first) & 1).astype(bool)
        dx, dy = self._seg_dx[seg], self._seg_dy[seg]
        t = ((rx * dx + ry * dy) * self._seg_inv_len2[seg]).clip(0.0, 1.0)
        ex, ey = rx - t * dx, ry - t * dy
        d2 = np.minimum.reduceat(ex * ex + ey * ey, first)
        return inside, d2

    def _empty(self) -> Matches:
        e = np.empty(0, dtype=np.int64)
        return Matches(e, e, np.empty(0, dtype=bool), np.empty(0, dtype=bool), self.ids)


def _polygonal(g) -> Polygon | MultiPolygon | None:
    parts = [p for p in shapely.get_parts(g) if isinstance(p, (Polygon, MultiPolygon)) and not p.is_empty]
    if not parts:
        return None
    u = shapely.union_all(parts)
    return u if isinstance(u, (Polygon, MultiPolygon)) else None


def _buffer_locally(g, buffer_m: float):
    """Buffer a lon/lat geometry by metres in a frame centred on it, and return it in lon/lat."""
    c = g.centroid
    kx, ky = metres_per_degree(c.y)
    local = shapely.transform(g, lambda a: (a - (c.x, c.y)) * (kx, ky))
    grown = shapely.buffer(local, buffer_m, quad_segs=8)
    return shapely.transform(grown, lambda a: a / (kx, ky) + (c.x, c.y))
