"""The simulated world: a local metric frame, hot spots (generated or from a file) and the town's street grid.

Geometry works in metres in a local azimuthal-equidistant frame centred on the town; hot spots are converted
from the WGS84 coordinates exactly as written to the hot-spot file, so truth uses the polygon as drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Point, Polygon, shape

# ---------------------------------------------------------------------------
# Geometry

class LocalFrame:
    """WGS84 <-> metres in an azimuthal-equidistant frame centred on the town."""

    def __init__(self, lat0: float, lon0: float):
        self.lat0, self.lon0 = lat0, lon0
        proj = f"+proj=aeqd +lat_0={lat0!r} +lon_0={lon0!r} +datum=WGS84 +units=m +no_defs"
        self._fwd = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
        self._inv = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)

    def to_xy(self, lon, lat):
        return self._fwd.transform(lon, lat)

    def to_lonlat(self, x, y):
        return self._inv.transform(x, y)

    def geom_to_xy(self, geom):
        return shapely.transform(geom, lambda c: np.column_stack(self._fwd.transform(c[:, 0], c[:, 1])))

    def geom_to_lonlat(self, geom):
        return shapely.transform(geom, lambda c: np.column_stack(self._inv.transform(c[:, 0], c[:, 1])))


@dataclass(frozen=True)
class SimHotspot:
    id: str
    drawn: Polygon | MultiPolygon   # local metres, from the coordinates as written
    area: Polygon | MultiPolygon    # drawn widened by buffer_m: what truth counts as inside
    buffer_m: float

    @cached_property
    def parts(self) -> list[Polygon]:
        return list(self.area.geoms) if isinstance(self.area, MultiPolygon) else [self.area]


def _round_ring(coords: np.ndarray) -> list[list[float]]:
    return [[round(float(lon), 7), round(float(lat), 7)] for lon, lat in coords]


def _polygon_to_geojson(poly: Polygon | MultiPolygon) -> dict:
    polys = list(poly.geoms) if isinstance(poly, MultiPolygon) else [poly]
    rings = []
    for p in polys:
        p = shapely.geometry.polygon.orient(p, 1.0)  # RFC 7946: exterior counter-clockwise
        rings.append([_round_ring(np.asarray(p.exterior.coords))])
    if len(rings) == 1:
        return {"type": "Polygon", "coordinates": rings[0]}
    return {"type": "MultiPolygon", "coordinates": rings}


_STREET_WORDS = ("Market", "Station", "Castle", "Bridge", "Mill", "Church", "Park", "Victoria", "Albert",
                 "Kings", "Queens", "High", "North", "South", "Canal", "Abbey", "Orchard", "Meadow",
                 "Hill", "Cross", "Foundry", "Tannery", "Wharf", "Chapel", "Priory", "Rope")
_STREET_TYPES = ("Street", "Road", "Lane", "Square", "Way", "Parade", "Walk", "Row")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TRENDS = ("rising over the last quarter", "steady", "falling slowly but still high",
           "rising at weekends", "up since the new licensed premises opened")


def generate_hotspots(rng: np.random.Generator, frame: LocalFrame, count: int,
                      radius_m: float) -> list[dict]:
    """Synthetic hot spots around the frame origin: 150 m cells, irregular polygons, one two-part area.

    Centres keep 380 m apart so walks and drive-bys 25 m outside one hot spot stay
    clear of its neighbours; none lies within 250 m of the station at the origin.
    """
    centres: list[tuple[float, float]] = []
    tries = 0
    while len(centres) < count and tries < count * 400:
        tries += 1
        r = radius_m * math.sqrt(rng.uniform(0.02, 1.0))
        a = rng.uniform(0, 2 * math.pi)
        c = (r * math.cos(a), r * math.sin(a))
        if math.hypot(*c) < 250 or any(math.hypot(c[0] - o[0], c[1] - o[1]) < 380 for o in centres):
            continue
        centres.append(c)
    features = []
    for i, (cx, cy) in enumerate(centres):
        roll = rng.uniform()
        if i == 3:  # one area drawn as two parts either side of a road
            half = 50.0
            parts = [shapely.box(cx - 80 - half, cy - half, cx - 80 + half, cy + half),
                     shapely.box(cx + 80 - half, cy - half, cx + 80 + half, cy + half)]
            geom = MultiPolygon(parts)
        elif roll < 0.6:  # 150 m grid cell, north-aligned like a British National Grid cell
            geom = shapely.box(cx - 75, cy - 75, cx + 75, cy + 75)
        else:  # irregular convex area, e.g. an estate or a park
            k = int(rng.integers(7, 11))
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            ax, ay = rng.uniform(80, 110), rng.uniform(70, 100)
            rot = rng.uniform(0, math.pi)
            rad = rng.uniform(0.88, 1.12, k)
            px, py = ax * rad * np.cos(ang), ay * rad * np.sin(ang)
            xs = cx + px * math.cos(rot) - py * math.sin(rot)
            ys = cy + px * math.sin(rot) + py * math.cos(rot)
            geom = shapely.MultiPoint(np.column_stack([xs, ys])).convex_hull
        buffer_m = float(rng.choice([10.0, 15.0, 20.0])) if rng.uniform() < 0.2 else 0.0
        crimes = int(rng.integers(8, 40))
        harm = int(crimes * rng.integers(30, 400))
        day = _DAYS[int(rng.integers(0, 7))]
        hour = int(rng.choice([15, 17, 20, 21, 22, 23]))
        name = f"{_STREET_WORDS[int(rng.integers(0, len(_STREET_WORDS)))]} " \
               f"{_STREET_TYPES[int(rng.integers(0, len(_STREET_TYPES)))]}"
        trend = _TRENDS[int(rng.integers(0, len(_TRENDS)))]
        props = {
            "id": f"hs-{i + 1:03d}",
            "name": name,
            "briefing": (f"{crimes} violence-against-the-person offences in the last 12 months "
                         f"(harm {harm} days); busiest {day} {hour:02d}:00-{(hour + 4) % 24:02d}:00; {trend}. "
                         f"Be seen on foot for 15 minutes."),
            "target_minutes": 15,
            "stats": {"crimes_12m": crimes, "harm_days_12m": harm},
        }
        if buffer_m:
            props["buffer_m"] = buffer_m
        features.append({"type": "Feature", "properties": props,
                         "geometry": _polygon_to_geojson(frame.geom_to_lonlat(geom))})
    return features


def hotspots_from_features(features: Sequence[Mapping], frame: LocalFrame) -> list[SimHotspot]:
    """Hot-spot features (GeoJSON, WGS84) to local polygons, widened by their buffer_m."""
    out = []
    for f in features:
        props = f.get("properties") or {}
        drawn = frame.geom_to_xy(shape(f["geometry"]))
        if not drawn.is_valid:
            drawn = shapely.make_valid(drawn)
        buffer_m = float(props.get("buffer_m") or 0.0)
        # A point counts as inside when it is within buffer_m of the polygon as drawn.
        area = drawn.buffer(buffer_m, quad_segs=16) if buffer_m > 0 else drawn
        if isinstance(area, shapely.GeometryCollection) and not isinstance(area, MultiPolygon):
            area = MultiPolygon([g for g in area.geoms if isinstance(g, Polygon)])
        out.append(SimHotspot(id=str(props["id"]), drawn=drawn, area=area, buffer_m=buffer_m))
    return out


def features_centre(features: Sequence[Mapping]) -> tuple[float, float]:
    """(lat, lon) at the middle of the hot spots' bounding box."""
    bounds = np.array([shape(f["geometry"]).bounds for f in features])
    return float((bounds[:, 1].min() + bounds[:, 3].max()) / 2), float((bounds[:, 0].min() + bounds[:, 2].max()) / 2)


class Town:
    """Street grid, hot spots and station in local metres, with the route planner."""

    def __init__(self, frame: LocalFrame, hotspots: list[SimHotspot], rng: np.random.Generator,
                 spacing_m: float, junction_wait_prob: float, junction_wait_s: tuple[float, float]):
        self.frame = frame
        self.hotspots = hotspots
        self.spacing = spacing_m
        self.angle = rng.uniform(math.radians(5), math.radians(40))
        self.u0, self.v0 = rng.uniform(0, spacing_m, 2)
        self.wait_prob = junction_wait_prob
        self.wait_s = junction_wait_s
        self._areas = [h.area for h in hotspots]
        self._tree = shapely.STRtree(self._areas)
        self.centroids = np.array([[h.area.centroid.x, h.area.centroid.y] for h in hotspots])
        self.station = self._clear_point(np.zeros(2), 60.0)

    def _clear_point(self, p: np.ndarray, clearance_m: float) -> np.ndarray:
        """The nearest point on a spiral around p that is clearance_m from every hot spot."""
        for k in range(2000):
            r, a = 30.0 * math.sqrt(k), k * 2.4
            q = p + r * np.array([math.cos(a), math.sin(a)])
            if self.min_distance(Point(q)) >= clearance_m:
                return q
        return p

    # Rotated street frame: u along one family of streets, v along the other.
    def to_uv(self, p):
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([c * p[0] + s * p[1], -s * p[0] + c * p[1]])

    def from_uv(self, q):
        c, s = math.cos(self.angle), math.sin(self.angle)
        q = np.asarray(q)
        return np.column_stack([c * q[:, 0] - s * q[:, 1], s * q[:, 0] + c * q[:, 1]])

    def min_distance(self, geom, exclude: str | None = None) -> float:
        """Least distance from geom to any hot spot (as counted by truth), optionally skipping one."""
        idx = self._tree.query(geom, predicate="dwithin", distance=200.0)
        dists = [shapely.distance(geom, self._areas[i]) for i in idx if self.hotspots[i].id != exclude]
        return min(dists) if dists else math.inf

    def route(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A street-grid route from a to b: (points, wait_s per point), junction waits drawn at random."""
        if np.hypot(*(b - a)) < 80:
            return np.array([a, b]), np.zeros(2)
        S = self.spacing
        ua, ub = self.to_uv(a), self.to_uv(b)

        def snap(c: float, off: float) -> float:
            return round((c - off) / S) * S + off

        def onto_street(q):
            su, sv = snap(q[0], self.u0), snap(q[1], self.v0)
            if abs(q[0] - su) <= abs(q[1] - sv):
                return np.array([su, q[1]]), "u"   # on a street of constant u
            return np.array([q[0], sv]), "v"

        a1, fa = onto_street(ua)
        b1, fb = onto_street(ub)
        pts = [ua, a1]
        if fa == "u" and fb == "v":
            pts.append(np.array([a1[0], b1[1]]))
        elif fa == "v" and fb == "u":
            pts.append(np.array([b1[0], a1[1]]))
        elif fa == "u":
            if abs(a1[0] - b1[0]) > 1:
                vc = snap((a1[1] + b1[1]) / 2, self.v0)
                pts += [np.array([a1[0], vc]), np.array([b1[0], vc])]
        elif abs(a1[1] - b1[1]) > 1:
            uc = snap((a1[0] + b1[0]) / 2, self.u0)
            pts += [np.array([uc, a1[1]]), np.array([uc, b1[1]])]
        pts += [b1, ub]
        # Junctions crossed along the way become vertices where the car may wait.
        full = [pts[0]]
        junction = [False]
        for p, q in zip(pts[:-1], pts[1:]):
            if abs(p[0] - q[0]) < 1e-6 and abs(p[0] - snap(p[0], self.u0)) < 1e-6:
                lo, hi = sorted((p[1], q[1]))
                ks = np.arange(math.ceil((lo - self.v0) / S + 1e-9), math.floor((hi - self.v0) / S - 1e-9) + 1)
                cross = [np.array([p[0], k * S + self.v0]) for k in ks]
            elif abs(p[1] - q[1]) < 1e-6 and abs(p[1] - snap(p[1], self.v0)) < 1e-6:
                lo, hi = sorted((p[0], q[0]))
                ks = np.arange(math.ceil((lo - self.u0) / S + 1e-9), math.floor((hi - self.u0) / S - 1e-9) + 1)
                cross = [np.array([k * S + self.u0, p[1]]) for k in ks]
            else:
                cross = []
            if cross and (q - p) @ (cross[-1] - cross[0]) < 0:
                cross.reverse()
            for c in cross + [q]:
                if np.hypot(*(c - full[-1])) > 0.5:
                    full.append(c)
                    junction.append(c is not q)
                else:
                    junction[-1] = junction[-1] or c is not q
        waits = np.zeros(len(full))
        for i in range(1, len(full) - 1):
            if junction[i] and rng.uniform() < self.wait_prob:
                waits[i] = rng.uniform(*self.wait_s)
        return self.from_uv(np.array(full)), waits
