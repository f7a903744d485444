"""Seeded simulator of officers patrolling a town's hot spots, with ground truth.

This module owns the synthetic world the analytics are tested against: a town
(a rotated street grid and hot-spot polygons), officers driving and walking
through it (transit drives with junction waits, park-and-walk patrols with
standing stops, drive-throughs, drive-bys and walks 10-25 m outside hot-spot
edges), the devices that report them (update interval, accuracy class, GPS
error correlated in time, signal gaps, duplicates, late delivery, wild
outliers) and the truth those devices only approximate: when each officer was
really inside each hot spot, where they really stood still, and whether they
were on foot or in a vehicle. Truth comes from the noise-free track alone.

Pure: no I/O and no clock. All randomness flows from `SimConfig.seed` through a
numpy SeedSequence tree (one child for the town, one per officer), so the same
configuration gives the same pings and truth, and officer k's day does not
depend on how many other officers are simulated.

Geometry works in metres in a local azimuthal-equidistant frame centred on the
town; hot spots are converted from the WGS84 coordinates exactly as written to
the hot-spot file, so truth uses the polygon as drawn (widened by `buffer_m`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, shape

FOOT, VEHICLE, STATIONARY = 0, 1, 2
MODE_NAMES = ("foot", "vehicle", "stationary")

# Episode kinds written to the truth. `drive` is transit along the street grid,
# `park` the pause beside the parked car, the others are the behaviours proper.
EPISODE_KINDS = ("drive", "park", "patrol", "drive_through", "drive_by", "edge_walk")
BEHAVIOURS = ("patrol", "drive_through", "drive_by", "edge_walk")

# The accuracy a phone reports is the radius of its 68% confidence circle
# (Android's convention). For an isotropic 2-D Gaussian error with per-axis
# standard deviation s, P(|e| <= R) = 1 - exp(-R^2 / 2s^2), so R68 = 1.5096 s.
ACCURACY_TO_SIGMA = 1.0 / math.sqrt(-2.0 * math.log(1.0 - 0.68))


@dataclass(frozen=True)
class DeviceProfile:
    """How a class of device reports: nominal update interval and optional fields."""

    name: str
    interval_s: float
    reports_speed: bool
    reports_heading: bool
    reports_battery: bool


# Update intervals in use (DOMAIN.md): Airwave radios 5 s, vehicle tracking 10 s,
# handheld trackers 60 s. Every simulated device travels with its officer.
PROFILES: dict[str, DeviceProfile] = {
    "airwave": DeviceProfile("airwave", 5.0, reports_speed=True, reports_heading=True, reports_battery=False),
    "vehicle": DeviceProfile("vehicle", 10.0, reports_speed=True, reports_heading=True, reports_battery=False),
    "handheld": DeviceProfile("handheld", 60.0, reports_speed=False, reports_heading=False, reports_battery=True),
}


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes a simulated day. Units are in the names."""

    seed: int = 1
    officers: int = 8
    hours: float = 8.0
    start_ms: int = 1_749_711_600_000  # 2025-06-12T07:00:00Z, 08:00 in the UK (BST)
    origin_lat: float = 51.7520
    origin_lon: float = -1.2577
    hotspot_count: int = 20
    town_radius_m: float = 1600.0
    street_spacing_m: float = 200.0
    # Assigned round-robin by officer index so small runs still mix them.
    profiles: tuple[str, ...] = ("airwave", "vehicle", "handheld")
    accuracy_classes_m: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0, 30.0)
    behaviours: tuple[tuple[str, float], ...] = (
        ("patrol", 0.4), ("drive_through", 0.2), ("drive_by", 0.2), ("edge_walk", 0.2))
    # Driving and walking
    drive_mps: tuple[float, float] = (8.0, 15.0)
    walk_mps: tuple[float, float] = (1.1, 1.6)
    junction_wait_prob: float = 0.3
    junction_wait_s: tuple[float, float] = (10.0, 60.0)
    patrol_inside_s: tuple[float, float] = (600.0, 1200.0)
    stop_s: tuple[float, float] = (150.0, 360.0)
    edge_offset_m: tuple[float, float] = (10.0, 25.0)
    # Device imperfections
    noise_tau_s: float = 60.0
    gap_rate_per_h: float = 0.5
    long_gap_share: float = 0.1
    duplicate_rate: float = 0.01
    late_rate: float = 0.02
    outlier_rate: float = 0.002
    shift_stagger_s: float = 900.0
    # Device ids are f"{device_prefix}-001", ...; a live run gives its officers a prefix of their own, so a
    # restarted run never continues another run's devices from a different place and time.
    device_prefix: str = "sim"

    def __post_init__(self) -> None:
        if self.officers < 1:
            raise ValueError("officers must be at least 1")
        if not 0 < self.hours <= 168:
            raise ValueError("hours must be in (0, 168]")
        unknown = [p for p in self.profiles if p not in PROFILES]
        if unknown or not self.profiles:
            raise ValueError(f"unknown device profiles {unknown}; known: {', '.join(PROFILES)}")
        if not self.accuracy_classes_m or min(self.accuracy_classes_m) <= 0:
            raise ValueError("accuracy classes must be positive metres")
        names = [b for b, _ in self.behaviours]
        if not names or any(b not in BEHAVIOURS for b in names) or any(w < 0 for _, w in self.behaviours) \
                or sum(w for _, w in self.behaviours) <= 0:
            raise ValueError(f"behaviours must be weights over {', '.join(BEHAVIOURS)}")
        lo, hi = self.edge_offset_m
        if not 0 < lo <= hi:
            raise ValueError("edge_offset_m must be 0 < low <= high")
        for name in ("duplicate_rate", "late_rate", "outlier_rate", "long_gap_share", "junction_wait_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability")


# Named scenarios used by the scenario tests and bench/scenarios.py.
SCENARIOS: dict[str, dict] = {
    # Every behaviour, every device class and accuracy class, all imperfections.
    "mixed": {},
    # The false-dwell check: only drive-bys and edge walks 10-25 m outside, 15 m accuracy.
    "edges_15m": {"behaviours": (("drive_by", 1.0), ("edge_walk", 1.0)), "accuracy_classes_m": (15.0,)},
    # Dosage on foot: park-and-walk patrols only.
    "patrols": {"behaviours": (("patrol", 1.0),)},
}


def scenario_config(name: str, **overrides) -> SimConfig:
    """The SimConfig of a named scenario, with keyword overrides (seed, officers, hours...)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return SimConfig(**{**SCENARIOS[name], **overrides})


# ---------------------------------------------------------------------------
# Output records (plain data). Times are UTC epoch milliseconds.

class SimPing(NamedTuple):
    """One delivered ping. `ts_ms` is the fix (event) time, `delivered_ms` when it reaches the server."""

    device_id: str
    ts_ms: int
    delivered_ms: int
    lat: float
    lon: float
    accuracy_m: float
    speed_mps: float | None
    heading_deg: float | None
    altitude_m: float | None
    battery: int | None


@dataclass(frozen=True)
class PingTable:
    """All delivered pings as columns, in delivery order. NaN (or -1 for battery) means absent.

    `true_x_m`/`true_y_m` are the noise-free position in the local frame; `kind` is
    0 normal, 1 wild outlier; `late` and `duplicate` flag the delivery faults.
    """

    device: np.ndarray        # int index into device_ids
    device_ids: tuple[str, ...]
    ts_ms: np.ndarray
    delivered_ms: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    accuracy_m: np.ndarray
    speed_mps: np.ndarray
    heading_deg: np.ndarray
    altitude_m: np.ndarray
    battery: np.ndarray
    true_lat: np.ndarray
    true_lon: np.ndarray
    error_m: np.ndarray
    outlier: np.ndarray
    late: np.ndarray
    duplicate: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)


class TrueTrack(NamedTuple):
    """An officer's noise-free track, one sample a second; mode[k] is the mode of the second before sample k."""

    t_ms: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    mode: np.ndarray      # FOOT, VEHICLE or STATIONARY
    episode_kind: list[str]


class SimDevice(NamedTuple):
    device_id: str
    profile: str
    interval_s: float
    accuracy_class_m: float
    shift_start_ms: int
    shift_end_ms: int


class TruthVisit(NamedTuple):
    visit_id: str
    device_id: str
    hotspot_id: str
    entered_ms: int
    exited_ms: int
    dwell_s: float
    foot_s: float
    vehicle_s: float
    stationary_s: float
    kind: str            # episode kind at entry
    episode_id: str
    end_reason: str      # exit | end_of_data


class TruthStop(NamedTuple):
    stop_id: str
    device_id: str
    hotspot_id: str
    started_ms: int
    ended_ms: int
    duration_s: float
    lat: float
    lon: float
    episode_id: str


class TruthMode(NamedTuple):
    device_id: str
    started_ms: int
    ended_ms: int
    mode: str            # foot | vehicle | stationary
    distance_m: float


class TruthEpisode(NamedTuple):
    episode_id: str
    device_id: str
    kind: str
    hotspot_id: str      # the target hot spot, "" for transit
    started_ms: int
    ended_ms: int
    offset_m: float      # drive_by / edge_walk: least true distance outside the target; NaN otherwise


class TruthGap(NamedTuple):
    device_id: str
    started_ms: int      # last fix before the outage
    ended_ms: int        # first fix after it


@dataclass(frozen=True)
class Truth:
    devices: tuple[SimDevice, ...]
    visits: tuple[TruthVisit, ...]
    stops: tuple[TruthStop, ...]
    modes: tuple[TruthMode, ...]
    episodes: tuple[TruthEpisode, ...]
    gaps: tuple[TruthGap, ...]

    @property
    def device_hours(self) -> float:
        return sum(d.shift_end_ms - d.shift_start_ms for d in self.devices) / 3_600_000.0


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


# ---------------------------------------------------------------------------
# Kinematics: the noise-free track, sampled every second.

def _drive_timing(points: np.ndarray, waits: np.ndarray, cruise: float, accel: float, decel: float,
                  corner_mps: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Time-distance profile of a drive along a polyline.

    The car starts and ends at rest, stops for each wait, slows to corner_mps at
    turns sharper than 30 degrees, and otherwise keeps under `cruise` with the
    given acceleration and braking. Returns (t_s, s_m) knots for interpolation,
    the polyline's cumulative vertex distances, and each vertex's arrival time.
    """
    seg = np.diff(points, axis=0)
    seglen = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seglen)])
    k = len(points)
    vlim = np.full(k, cruise)
    vlim[0] = vlim[-1] = 0.0
    if k > 2:
        a, b = seg[:-1], seg[1:]
        cosang = np.einsum("ij,ij->i", a, b) / np.maximum(seglen[:-1] * seglen[1:], 1e-9)
        sharp = cosang < math.cos(math.radians(30))
        vlim[1:-1] = np.where(sharp, np.minimum(corner_mps, cruise), cruise)
    vlim[waits > 0] = 0.0
    # Distance grid of about 2 m steps that contains every vertex.
    pieces = [np.linspace(cum[i], cum[i + 1], max(2, int(math.ceil(seglen[i] / 2.0)) + 1))[:-1]
              for i in range(k - 1)]
    s = np.concatenate(pieces + [cum[-1:]])
    vertex_idx = np.searchsorted(s, cum - 1e-9)
    vmax2 = np.full(len(s), cruise ** 2)
    vmax2[vertex_idx] = vlim ** 2
    # Speed limits propagate forward under acceleration and backward under braking:
    # v^2(s) <= vmax^2(s') + 2a|s - s'| for every s', which is a running minimum.
    fwd = 2 * accel * s + np.minimum.accumulate(vmax2 - 2 * accel * s)
    r = s[-1] - s
    bwd = 2 * decel * r + np.minimum.accumulate((vmax2 - 2 * decel * r)[::-1])[::-1]
    v = np.sqrt(np.clip(np.minimum(fwd, bwd), 0.0, None))
    ds = np.diff(s)
    dt = 2 * ds / np.maximum(v[:-1] + v[1:], 1e-3)
    t = np.concatenate([[0.0], np.cumsum(dt)])
    # Waits hold the car at a vertex: shift everything after it and add a flat knot.
    shift = np.zeros(len(s))
    extra_t, extra_s = [], []
    arrival = t[vertex_idx].copy()
    for i in np.flatnonzero(waits > 0):
        g = vertex_idx[i]
        shift[g + 1:] += waits[i]
        arrival[i + 1:] += waits[i]
        extra_t.append(t[g] + shift[g] + waits[i])
        extra_s.append(s[g])
    t = t + shift
    if extra_t:
        t = np.concatenate([t, extra_t])
        s = np.concatenate([s, extra_s])
        order = np.lexsort((s, t))
        t, s = t[order], s[order]
    return t, s, cum, arrival


class _Track:
    """Builds one officer's noise-free track at 1 s steps, with modes, episodes and stops."""

    def __init__(self, start: np.ndarray, end_s: int):
        self.end_s = end_s  # the shift ends here; the track is cut at it
        self.xs: list[np.ndarray] = [np.array([start[0]])]
        self.ys: list[np.ndarray] = [np.array([start[1]])]
        self.modes: list[np.ndarray] = [np.array([VEHICLE], dtype=np.int8)]
        self.eps: list[np.ndarray] = [np.array([0], dtype=np.int32)]
        self.n = 1
        self.pos = np.asarray(start, dtype=float)
        self.episodes: list[tuple[str, str, float]] = [("drive", "", math.nan)]
        self.stops: list[tuple[int, int, float, float, int]] = []

    @property
    def t(self) -> int:
        """Seconds since the shift started at the last sample."""
        return self.n - 1

    def begin(self, kind: str, hotspot_id: str = "", offset_m: float = math.nan) -> int:
        self.episodes.append((kind, hotspot_id, offset_m))
        return len(self.episodes) - 1

    def _append(self, x: np.ndarray, y: np.ndarray, mode: np.ndarray | int, ep: np.ndarray | int) -> None:
        m = len(x)
        if m == 0:
            return
        self.xs.append(np.asarray(x, dtype=float))
        self.ys.append(np.asarray(y, dtype=float))
        self.modes.append(np.broadcast_to(np.asarray(mode, dtype=np.int8), (m,)).copy())
        self.eps.append(np.broadcast_to(np.asarray(ep, dtype=np.int32), (m,)).copy())
        self.n += m
        self.pos = np.array([x[-1], y[-1]])

    def drive(self, points: np.ndarray, waits: np.ndarray, marks: list[tuple[int, int]],
              cruise: float, accel: float) -> None:
        """Drive the polyline; marks [(vertex, episode)] say where each episode starts."""
        keep = np.concatenate([[True], np.hypot(*np.diff(points, axis=0).T) > 0.05])
        # Merge waits and marks of dropped duplicate vertices into the kept one before them.
        index_map = np.cumsum(keep) - 1
        pts = points[keep]
        w = np.zeros(len(pts))
        np.add.at(w, index_map, waits)
        w[0] = w[-1] = 0.0
        if len(pts) < 2:
            return
        t, s, cum, arrival = _drive_timing(pts, w, cruise, accel, decel=2.0)
        tt = np.arange(1, int(math.ceil(t[-1])) + 1, dtype=float)
        ss = np.interp(tt, t, s)
        x = np.interp(ss, cum, pts[:, 0])
        y = np.interp(ss, cum, pts[:, 1])
        mark_t = np.array([arrival[index_map[v]] for v, _ in marks])
        mark_ep = np.array([e for _, e in marks])
        which = np.clip(np.searchsorted(mark_t, tt, side="left") - 1, 0, len(marks) - 1)
        self._append(x, y, VEHICLE, mark_ep[which])

    def walk(self, points: np.ndarray, speed: float, ep: int) -> None:
        seg = np.diff(points, axis=0)
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        if cum[-1] < 0.05:
            return
        tt = np.arange(1, int(math.ceil(cum[-1] / speed)) + 1, dtype=float)
        ss = np.minimum(tt * speed, cum[-1])
        self._append(np.interp(ss, cum, points[:, 0]), np.interp(ss, cum, points[:, 1]), FOOT, ep)

    def stand(self, seconds: float, ep: int, rng: np.random.Generator | None, stop: bool = False) -> None:
        """Stay put; an officer on foot shifts about within a few metres, a parked car does not."""
        m = int(round(seconds))
        if m <= 0:
            return
        cx, cy = self.pos
        if rng is None:
            x, y = np.full(m, cx), np.full(m, cy)
        else:
            # Shifting weight and turning about: a drift of a metre or so, changing over ~20 s,
            # never more than 2.5 m from the spot.
            knots_t = np.arange(0, m + 20, 20)
            z = _ou(rng, knots_t.astype(float), 40.0, 2)
            z[0] = 0.0
            tt = np.arange(1, m + 1)
            off = np.column_stack([np.interp(tt, knots_t, z[:, 0]), np.interp(tt, knots_t, z[:, 1])])
            r = np.hypot(off[:, 0], off[:, 1])
            off *= np.minimum(1.0, 2.5 / np.maximum(r, 1e-9))[:, None]
            x, y = cx + off[:, 0], cy + off[:, 1]
        start = self.t
        self._append(x, y, STATIONARY, ep)
        if stop:
            self.stops.append((start, self.t, float(cx), float(cy), ep))
        if rng is not None:
            self.pos = np.array([cx, cy])  # walk on from the spot itself
            self.xs[-1][-1], self.ys[-1][-1] = cx, cy


# ---------------------------------------------------------------------------
# Behaviours. Each plans its geometry first and returns False, touching nothing,
# when the plan does not fit (the officer then picks another hot spot).

def _outward_normal(poly: Polygon, s: float) -> tuple[np.ndarray, np.ndarray]:
    ring = poly.exterior
    L = ring.length
    b = np.array(ring.interpolate(s % L).coords[0])
    p1 = np.array(ring.interpolate((s - 1.0) % L).coords[0])
    p2 = np.array(ring.interpolate((s + 1.0) % L).coords[0])
    tan = p2 - p1
    n = np.array([tan[1], -tan[0]]) / max(np.hypot(*tan), 1e-9)
    if poly.contains(Point(b + 2.0 * n)):
        n = -n
    return b, n


def _lingers(xy: np.ndarray, window_s: int = 120, radius_m: float = 30.0) -> bool:
    """True if some window of walking stays within radius_m of its centroid (it would look like a stop)."""
    if len(xy) <= window_s:
        return False
    win = np.lib.stride_tricks.sliding_window_view(xy, (window_s + 1, 2))[:, 0]
    cen = win.mean(axis=1, keepdims=True)
    far = np.hypot(*(win - cen).transpose(2, 0, 1)).max(axis=1)
    return bool((far <= radius_m).any())


@dataclass
class _Officer:
    rng: np.random.Generator
    town: Town
    cfg: SimConfig
    track: _Track
    prev_target: str | None = None

    def cruise(self) -> float:
        return float(self.rng.uniform(*self.cfg.drive_mps))

    def accel(self) -> float:
        return float(self.rng.uniform(1.2, 2.2))

    def drive_to(self, dest: np.ndarray, then: np.ndarray | None = None, then_waits: np.ndarray | None = None,
                 then_ep: int | None = None) -> None:
        """Transit along streets to dest, optionally continuing along a behaviour path."""
        pts, waits = self.town.route(self.track.pos, dest, self.rng)
        marks = [(0, self.track.begin("drive"))]
        if then is not None:
            marks.append((len(pts) - 1, then_ep))
            pts = np.vstack([pts, then[1:]])
            waits = np.concatenate([waits, then_waits[1:]])
        self.track.drive(pts, waits, marks, self.cruise(), self.accel())

    def junction_wait(self) -> float:
        return float(self.rng.uniform(*self.cfg.junction_wait_s)) if self.rng.uniform() < 0.25 else 0.0

    # --- drive-through: straight across the hot spot, maybe held at lights inside
    def drive_through(self, hs: SimHotspot) -> bool:
        rng = self.rng
        part = hs.parts[int(rng.integers(0, len(hs.parts)))]
        inner = part.buffer(-10.0)
        if inner.is_empty:
            inner = part
        x0, y0, x1, y1 = inner.bounds
        for _ in range(50):
            p = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
            if inner.contains(Point(p)):
                break
        else:
            return False
        a = rng.uniform(0, 2 * math.pi)
        u = np.array([math.cos(a), math.sin(a)])
        verts = np.asarray(part.exterior.coords) - p
        lo, hi = (verts @ u).min() - 120.0, (verts @ u).max() + 120.0
        path = np.array([p + lo * u, p, p + hi * u])
        waits = np.array([0.0, self.junction_wait(), 0.0])
        ep = self.track.begin("drive_through", hs.id)
        self.drive_to(path[0], path, waits, ep)
        return True

    # --- drive-by: along a straight street 10-25 m outside one side of the hot spot
    def drive_by(self, hs: SimHotspot) -> bool:
        rng = self.rng
        d = float(rng.uniform(*self.cfg.edge_offset_m))
        rect = np.asarray(hs.area.minimum_rotated_rectangle.exterior.coords)
        j = int(rng.integers(0, 2))  # along either side of the hot spot's bounding rectangle
        edge = rect[j + 1] - rect[j]
        u = edge / np.hypot(*edge)
        n = np.array([-u[1], u[0]]) * (1 if rng.uniform() < 0.5 else -1)
        verts = np.vstack([np.asarray(p.exterior.coords) for p in hs.parts])
        h = (verts @ n).max() + d
        lo, hi = (verts @ u).min() - 120.0, (verts @ u).max() + 120.0
        p0, p1 = lo * u + h * n, hi * u + h * n
        if rng.uniform() < 0.5:
            p0, p1 = p1, p0
        line = LineString([p0, p1])
        if self.town.min_distance(line, exclude=hs.id) < self.cfg.edge_offset_m[0]:
            return False
        offset = shapely.distance(line, hs.area)
        mid = (p0 + p1) / 2
        path = np.array([p0, mid, p1])
        waits = np.array([0.0, self.junction_wait(), 0.0])
        ep = self.track.begin("drive_by", hs.id, float(offset))
        self.drive_to(p0, path, waits, ep)
        return True

    def _park(self, seconds: float) -> None:
        ep = self.track.begin("park")
        self.track.stand(seconds, ep, None)

    # --- edge walk: park, walk along the hot spot's edge 10-25 m outside and back
    def edge_walk(self, hs: SimHotspot) -> bool:
        rng = self.rng
        lo, hi = self.cfg.edge_offset_m
        d = float(rng.uniform(min(lo + 0.3, hi), hi))  # +0.3: the buffered ring's chords cut corners by < 0.1 m
        part = hs.parts[int(rng.integers(0, len(hs.parts)))]
        ring_poly = part.buffer(d, quad_segs=32)
        ring = ring_poly.exterior
        L = ring.length
        length = min(float(rng.uniform(150.0, 350.0)), 0.8 * L)
        s0 = float(rng.uniform(0, L))
        dist = np.append(np.arange(0.0, length, 5.0), length)
        out = np.array([ring.interpolate((s0 + x) % L).coords[0] for x in dist])
        start, n = _outward_normal(ring_poly, s0)
        car = start + n * float(rng.uniform(30.0, 50.0))
        path = np.vstack([car, out, out[::-1][1:], car])
        line = LineString(path)
        if self.town.min_distance(line) < lo:
            return False
        offset = float(shapely.distance(line, hs.area))
        self.drive_to(car)
        self._park(rng.uniform(20.0, 60.0))
        ep = self.track.begin("edge_walk", hs.id, offset)
        self.track.walk(path, float(rng.uniform(*self.cfg.walk_mps)), ep)
        self._park(rng.uniform(10.0, 40.0))
        return True

    # --- patrol: park outside, walk in, patrol 10-20 min with standing stops, walk back
    def patrol(self, hs: SimHotspot) -> bool:
        rng = self.rng
        cfg = self.cfg
        part = max(hs.parts, key=lambda p: p.area) if rng.uniform() < 0.7 else hs.parts[int(rng.integers(0, len(hs.parts)))]
        inner = part.buffer(-15.0)
        if inner.is_empty or inner.area < 2500:
            inner = part.buffer(-6.0)
        if isinstance(inner, MultiPolygon):
            inner = max(inner.geoms, key=lambda p: p.area)
        if inner.is_empty:
            return False
        b, n = _outward_normal(part, float(rng.uniform(0, part.exterior.length)))
        car = b + n * float(rng.uniform(25.0, 60.0))
        if self.town.min_distance(Point(car)) < 10.0:
            return False
        speed = float(rng.uniform(*cfg.walk_mps))
        inside_s = float(rng.uniform(*cfg.patrol_inside_s))
        n_stops = int(rng.choice([1, 1, 2, 2, 3]))
        stop_s = rng.uniform(*cfg.stop_s, n_stops)
        while stop_s.sum() > 0.6 * inside_s and len(stop_s) > 1:
            stop_s = stop_s[:-1]
        # Walking distance between the first and last waypoint; the walks in from the
        # edge and back out (about 15 m each) make up the rest of the time inside.
        budget = (inside_s - stop_s.sum()) * speed - 30.0
        lo_s, hi_s = cfg.patrol_inside_s
        for _attempt in range(12):
            w0 = np.array(inner.exterior.interpolate(inner.exterior.project(Point(b))).coords[0])
            pts = [w0]
            heading = math.atan2(*(w0 - car)[::-1])
            walked = 0.0
            while budget - walked >= 20.0:
                remaining = budget - walked
                for tries in range(60):
                    max_turn = math.radians(90 if tries < 30 else 120)
                    a = heading + rng.uniform(-max_turn, max_turn)
                    leg = rng.uniform(60.0, 130.0) if tries < 45 else rng.uniform(45.0, 60.0)
                    if remaining < leg + 45.0:  # the last leg ends the patrol on time
                        leg = remaining
                    cand = pts[-1] + leg * np.array([math.cos(a), math.sin(a)])
                    if inner.covers(LineString([pts[-1], cand])):
                        break
                else:
                    break
                pts.append(cand)
                heading = a
                walked += leg
            # Stops at waypoints spread through the patrol (never the entry point).
            k = len(pts)
            stop_at: dict[int, float] = {}
            if k > 1:
                slots = np.unique(np.clip(np.round(np.linspace(1, k - 1, len(stop_s) + 2)[1:-1]).astype(int), 1, k - 1))
                stop_at = {int(slot): float(secs) for slot, secs in zip(slots, stop_s)}
            walk_xy = np.vstack([car, np.array(pts), car])
            # The time inside as planned, including the walks in and out.
            planned_s = LineString(walk_xy).intersection(hs.area).length / speed + sum(stop_at.values())
            if abs(planned_s - inside_s) > 30.0 or not lo_s <= planned_s <= hi_s:
                budget -= (planned_s - inside_s) * speed
                continue
            # Sample the plan at 1 s to check it never dawdles like a stop.
            seg = np.diff(walk_xy, axis=0)
            cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
            ss = np.arange(0.0, cum[-1], speed)
            sampled = np.column_stack([np.interp(ss, cum, walk_xy[:, 0]), np.interp(ss, cum, walk_xy[:, 1])])
            if not _lingers(sampled):
                break
        else:
            return False
        self.drive_to(car)
        self._park(rng.uniform(20.0, 60.0))
        ep = self.track.begin("patrol", hs.id)
        self.track.walk(np.array([car, pts[0]]), speed, ep)
        for i in range(1, k):
            self.track.walk(np.array([self.track.pos, pts[i]]), speed, ep)
            # A stop the end of the shift would cut short is not made: a cut stop sits on the
            # 2-minute threshold, which tests the threshold rather than the stop detector.
            if i in stop_at and self.track.t + stop_at[i] <= self.track.end_s:
                self.track.stand(stop_at[i], ep, rng, stop=True)
        self.track.walk(np.array([self.track.pos, car]), speed, ep)
        self._park(rng.uniform(10.0, 40.0))
        return True

    def choose_target(self) -> SimHotspot:
        d = np.hypot(*(self.town.centroids - self.track.pos).T)
        w = np.exp(-d / 1500.0)
        for i, h in enumerate(self.town.hotspots):
            if h.id == self.prev_target and len(w) > 1:
                w[i] = 0.0
        return self.town.hotspots[int(self.rng.choice(len(w), p=w / w.sum()))]


def _simulate_officer(rng: np.random.Generator, town: Town, cfg: SimConfig, shift_s: int) -> _Track:
    track = _Track(town.station, shift_s)
    off = _Officer(rng, town, cfg, track)
    names = [b for b, _ in cfg.behaviours]
    weights = np.array([w for _, w in cfg.behaviours], dtype=float)
    weights /= weights.sum()
    while track.t < shift_s:
        kind = names[int(rng.choice(len(names), p=weights))]
        for _attempt in range(30):
            hs = off.choose_target()
            if getattr(off, kind)(hs):
                off.prev_target = hs.id
                break
        else:  # nothing fits near here: drive somewhere else and try again
            off.drive_to(town.centroids[int(rng.integers(0, len(town.centroids)))] + rng.normal(0, 300, 2))
    return track


# ---------------------------------------------------------------------------
# Truth from the noise-free track

def _inside_intervals(x: np.ndarray, y: np.ndarray, area) -> list[tuple[float, float]]:
    """[(enter_s, exit_s)] of a track sampled at t = 0, 1, 2... with straight moves between samples."""
    ins = shapely.contains_xy(area, x, y)
    if not ins.any():
        return []
    d = np.diff(ins.astype(np.int8))
    k = np.flatnonzero(d != 0)
    entering = d[k] == 1
    lo, hi = np.zeros(len(k)), np.ones(len(k))
    dx, dy = x[k + 1] - x[k], y[k + 1] - y[k]
    for _ in range(26):  # bisection to ~15 microseconds
        mid = (lo + hi) / 2
        inside_mid = shapely.contains_xy(area, x[k] + mid * dx, y[k] + mid * dy)
        moved_hi = inside_mid == entering   # the crossing lies before mid
        hi = np.where(moved_hi, mid, hi)
        lo = np.where(moved_hi, lo, mid)
    cross = k + (lo + hi) / 2
    starts = list(cross[entering])
    ends = list(cross[~entering])
    if ins[0]:
        starts.insert(0, 0.0)
    if ins[-1]:
        ends.append(float(len(x) - 1))
    return list(zip(starts, ends))


def _mode_seconds(modes: np.ndarray, a: float, b: float) -> np.ndarray:
    """Seconds per mode within [a, b]; sample k carries the mode of the second (k-1, k]."""
    out = np.zeros(3)
    k0, k1 = int(math.floor(a)) + 1, int(math.ceil(b))
    for k in range(max(k0, 1), min(k1, len(modes) - 1) + 1):
        overlap = min(b, k) - max(a, k - 1)
        if overlap > 0:
            out[modes[k]] += overlap
    return out


# ---------------------------------------------------------------------------
# Observation: what the device reports

def _ou(rng: np.random.Generator, t_s: np.ndarray, tau_s: float, dims: int) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck (Gauss-Markov) samples at irregular times."""
    z = np.empty((len(t_s), dims))
    if len(t_s) == 0:
        return z
    phi = np.exp(-np.diff(t_s) / tau_s)
    shocks = rng.normal(size=(len(t_s), dims))
    z[0] = shocks[0]
    scale = np.sqrt(1 - phi * phi)
    for i in range(1, len(t_s)):
        z[i] = phi[i - 1] * z[i - 1] + scale[i - 1] * shocks[i]
    return z


@dataclass
class _Observed:
    ts_ms: np.ndarray
    delivered_ms: np.ndarray
    x: np.ndarray
    y: np.ndarray
    true_x: np.ndarray
    true_y: np.ndarray
    accuracy_m: np.ndarray
    speed_mps: np.ndarray
    heading_deg: np.ndarray
    altitude_m: np.ndarray
    battery: np.ndarray
    outlier: np.ndarray
    late: np.ndarray
    duplicate: np.ndarray
    gaps: list[tuple[int, int]] = field(default_factory=list)


def _observe(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, shift_start_ms: int,
             profile: DeviceProfile, accuracy_class_m: float, cfg: SimConfig) -> _Observed:
    n = len(x)
    shift_s = n - 1
    # Fix times: the nominal interval with a little jitter, whole seconds.
    nominal = profile.interval_s
    count = int(shift_s / nominal * 1.2) + 4
    steps = np.maximum(1.0, nominal + rng.normal(0, 0.05 * nominal, count))
    t = rng.uniform(0, nominal) + np.concatenate([[0.0], np.cumsum(steps)])
    t = np.unique(np.round(t[t <= shift_s]).astype(np.int64))
    # Signal gaps: a Poisson number of outages, mostly short, some long enough to lose the visit.
    n_gaps = rng.poisson(cfg.gap_rate_per_h * shift_s / 3600.0)
    drop = np.zeros(len(t), dtype=bool)
    for _ in range(n_gaps):
        g0 = rng.uniform(0, shift_s)
        if rng.uniform() < cfg.long_gap_share:
            length = rng.uniform(300.0, 1200.0)
        else:
            length = math.exp(rng.uniform(math.log(15.0), math.log(240.0)))
        drop |= (t >= g0) & (t < g0 + length)
    kept = t[~drop]
    gaps = []
    if len(kept) > 1:
        # An outage shows as a silence clearly longer than the device's own rhythm.
        gaps_at = np.flatnonzero(np.diff(kept) > 1.5 * nominal + 2)
        was_dropped = [bool(drop[(t > kept[i]) & (t < kept[i + 1])].any()) for i in gaps_at]
        gaps = [(int(kept[i]), int(kept[i + 1])) for i, dropped in zip(gaps_at, was_dropped) if dropped]
    t = kept
    m = len(t)
    tx, ty = x[t], y[t]
    # Reported accuracy wanders slowly within about a third of the device's class (sky
    # view, buildings); the actual error is drawn to match what is reported.
    z_acc = _ou(rng, t.astype(float), 300.0, 1)[:, 0]
    acc = np.round(np.clip(accuracy_class_m * np.exp(0.15 * z_acc), 0.7 * accuracy_class_m,
                           1.4 * accuracy_class_m), 1)
    sigma = acc * ACCURACY_TO_SIGMA
    z = _ou(rng, t.astype(float), cfg.noise_tau_s, 3)
    ex, ey = sigma * z[:, 0], sigma * z[:, 1]
    # Wild outliers: a multipath or cell-tower fix hundreds of metres to kilometres off,
    # sometimes for a few fixes running; half of them still claim a good accuracy.
    outlier = np.zeros(m, dtype=bool)
    starts = np.flatnonzero(rng.uniform(size=m) < cfg.outlier_rate)
    for s0 in starts:
        run = int(rng.choice([1, 1, 1, 2, 3]))
        dist = math.exp(rng.uniform(math.log(200.0), math.log(3000.0)))
        a = rng.uniform(0, 2 * math.pi)
        claims_good = rng.uniform() < 0.5
        for j in range(s0, min(m, s0 + run)):
            outlier[j] = True
            ex[j], ey[j] = dist * math.cos(a) + rng.normal(0, 5), dist * math.sin(a) + rng.normal(0, 5)
            if not claims_good:
                acc[j] = round(dist * rng.uniform(0.3, 1.2), 1)
    # True motion at the fix, from the 1 s track (central differences).
    i0, i1 = np.maximum(t - 1, 0), np.minimum(t + 1, n - 1)
    vx, vy = (x[i1] - x[i0]) / (i1 - i0), (y[i1] - y[i0]) / (i1 - i0)
    v = np.hypot(vx, vy)
    speed = np.round(np.maximum(0.0, v + rng.normal(0, 0.25, m)), 2) if profile.reports_speed else np.full(m, np.nan)
    heading = np.full(m, np.nan)
    if profile.reports_heading:
        moving = v >= 1.0
        hd = (np.degrees(np.arctan2(vx, vy)) + rng.normal(0, 4.0, m)) % 360.0
        heading[moving] = np.round(hd[moving], 1) % 360.0
    altitude = np.round(65.0 + 1.5 * sigma * z[:, 2], 1)
    if profile.reports_battery:
        level0, drain = rng.uniform(60, 100), rng.uniform(3, 8)
        battery = np.maximum(5, np.floor(level0 - drain * t / 3600.0)).astype(np.int64)
    else:
        battery = np.full(m, -1, dtype=np.int64)
    ts_ms = shift_start_ms + t * 1000
    # Delivery: a second or so of network latency, some fixes held back long enough
    # to arrive after later ones, and some sent twice (a retry after a lost reply).
    # Ordinary latency stays under 3 s so that only the `late` pings change the order.
    delivered = ts_ms + 300 + np.round(np.minimum(2700.0, np.exp(rng.normal(math.log(900.0), 0.6, m)))).astype(np.int64)
    late = rng.uniform(size=m) < cfg.late_rate
    delivered[late] += np.round(rng.uniform(8000, 45000, late.sum())).astype(np.int64)
    dup = np.flatnonzero(rng.uniform(size=m) < cfg.duplicate_rate)
    dup_delivered = delivered[dup] + np.round(rng.uniform(2000, 60000, len(dup))).astype(np.int64)
    idx = np.concatenate([np.arange(m), dup])
    is_dup = np.concatenate([np.zeros(m, dtype=bool), np.ones(len(dup), dtype=bool)])
    return _Observed(
        ts_ms=ts_ms[idx], delivered_ms=np.concatenate([delivered, dup_delivered]),
        x=(tx + ex)[idx], y=(ty + ey)[idx], true_x=tx[idx], true_y=ty[idx], accuracy_m=acc[idx],
        speed_mps=speed[idx], heading_deg=heading[idx], altitude_m=altitude[idx], battery=battery[idx],
        outlier=outlier[idx], late=late[idx], duplicate=is_dup,
        gaps=[(shift_start_ms + a * 1000, shift_start_ms + b * 1000) for a, b in gaps])


# ---------------------------------------------------------------------------
# The simulation

@dataclass
class _OfficerResult:
    device: SimDevice
    visits: list[TruthVisit]
    stops: list[TruthStop]
    modes: list[TruthMode]
    episodes: list[TruthEpisode]
    observed: _Observed
    track: TrueTrack


class Simulation:
    """A seeded day of simulated officers: pings in delivery order and the truth behind them.

    >>> sim = Simulation(SimConfig(seed=7, officers=3, hours=1))
    >>> for p in sim.pings(): ...          # delivery order; pace a live demo by p.delivered_ms
    >>> truth = sim.truth()                  # visits, stops, modes, episodes, gaps

    `hotspots` are GeoJSON features (the hot-spot file format); without them a town
    of `config.hotspot_count` synthetic hot spots is generated. Work happens on
    first use and is cached; `run(progress)` does it eagerly with a callback
    `progress(officers_done, officers_total)`.
    """

    def __init__(self, config: SimConfig | None = None, hotspots: Sequence[Mapping] | None = None):
        self.config = config or SimConfig()
        root = np.random.SeedSequence(self.config.seed)
        self._town_seed, officers_seed = root.spawn(2)
        self._officer_seeds = officers_seed.spawn(self.config.officers)
        self._given = [dict(f) for f in hotspots] if hotspots is not None else None
        if self._given is not None and not self._given:
            raise ValueError("no hot spots given")
        self._results: list[_OfficerResult] | None = None
        self._by_officer: dict[int, _OfficerResult] = {}

    # --- the world
    @cached_property
    def _town(self) -> Town:
        rng = np.random.default_rng(self._town_seed)
        if self._given is None:
            frame = LocalFrame(self.config.origin_lat, self.config.origin_lon)
            features = generate_hotspots(rng, frame, self.config.hotspot_count, self.config.town_radius_m)
        else:
            frame = LocalFrame(*features_centre(self._given))
            features = self._given
        self._features = features
        return Town(frame, hotspots_from_features(features, frame), rng, self.config.street_spacing_m,
                    self.config.junction_wait_prob, self.config.junction_wait_s)

    @property
    def hotspots_given(self) -> bool:
        """True when the hot spots came from the caller rather than a generated town."""
        return self._given is not None

    @property
    def frame(self) -> LocalFrame:
        return self._town.frame

    @property
    def hotspots(self) -> list[dict]:
        """The hot-spot features (generated or given), as written to hotspots.geojson."""
        self._town
        return self._features

    def hotspot_areas(self) -> dict[str, Polygon | MultiPolygon]:
        """Each hot spot's polygon as truth counts it (drawn + buffer_m), in local metres."""
        return {h.id: h.area for h in self._town.hotspots}

    def feature_collection(self) -> dict:
        return {"type": "FeatureCollection", "features": self.hotspots}

    @property
    def device_ids(self) -> tuple[str, ...]:
        return tuple(f"{self.config.device_prefix}-{i + 1:03d}" for i in range(self.config.officers))

    # --- running
    def run(self, progress: Callable[[int, int], None] | None = None) -> "Simulation":
        if self._results is None:
            results = []
            for i in range(self.config.officers):
                results.append(self._planned(i))
                if progress:
                    progress(i + 1, self.config.officers)
            self._results = results
        return self

    def _planned(self, i: int) -> _OfficerResult:
        if i not in self._by_officer:
            self._by_officer[i] = self._officer(i)
        return self._by_officer[i]

    def officer_pings(self, i: int) -> list[SimPing]:
        """Officer i's delivered pings in delivery order, planning only that officer (about 1/officers of
        `run()`): a live simulation starts sending the first officer's pings while it plans the others."""
        o = self._planned(i).observed
        lon, lat = self.frame.to_lonlat(o.x, o.y)
        lat, lon = np.round(np.asarray(lat), 7), np.round(np.asarray(lon), 7)
        device_id = self.device_ids[i]

        def opt(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        order = np.argsort(o.delivered_ms, kind="stable")  # the same order as pings() within one device
        return [SimPing(device_id, int(o.ts_ms[k]), int(o.delivered_ms[k]), float(lat[k]), float(lon[k]),
                        float(o.accuracy_m[k]), opt(o.speed_mps[k]), opt(o.heading_deg[k]), opt(o.altitude_m[k]),
                        None if int(o.battery[k]) < 0 else int(o.battery[k])) for k in order]

    def _officer(self, i: int) -> _OfficerResult:
        cfg = self.config
        town = self._town
        track_seed, obs_seed, shift_seed = self._officer_seeds[i].spawn(3)
        stagger = int(np.random.default_rng(shift_seed).uniform(0, cfg.shift_stagger_s))
        shift_s = int(round(cfg.hours * 3600))
        shift_start = cfg.start_ms + stagger * 1000
        track = _simulate_officer(np.random.default_rng(track_seed), town, cfg, shift_s)
        n = shift_s + 1
        x = np.concatenate(track.xs)[:n]
        y = np.concatenate(track.ys)[:n]
        modes = np.concatenate(track.modes)[:n]
        eps = np.concatenate(track.eps)[:n]
        profile = PROFILES[cfg.profiles[i % len(cfg.profiles)]]
        acc_class = float(cfg.accuracy_classes_m[i % len(cfg.accuracy_classes_m)])
        device_id = self.device_ids[i]
        device = SimDevice(device_id, profile.name, profile.interval_s, acc_class, shift_start,
                           shift_start + shift_s * 1000)

        def ms(sec: float) -> int:
            return shift_start + int(round(sec * 1000))

        # Episodes: runs of the per-sample label; sample k covers (k-1, k].
        episodes: list[TruthEpisode] = []
        ep_of_id: dict[int, str] = {}
        change = np.flatnonzero(np.diff(eps[1:])) + 2 if n > 2 else np.array([], dtype=int)
        bounds = np.concatenate([[1], change, [n]])
        for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            if a >= b:
                continue
            e = int(eps[a])
            kind, hid, offset = track.episodes[e]
            eid = f"{device_id}-e{len(episodes) + 1:04d}"
            ep_of_id.setdefault(e, eid)
            episodes.append(TruthEpisode(eid, device_id, kind, hid, ms(a - 1), ms(b - 1), offset))
        # Visits
        visits: list[TruthVisit] = []
        for hs in town.hotspots:
            for a, b in _inside_intervals(x, y, hs.area):
                secs = _mode_seconds(modes, a, b)
                e = int(eps[min(n - 1, int(math.floor(a)) + 1)])
                visits.append(TruthVisit("", device_id, hs.id, ms(a), ms(b), round(float(b - a), 3),
                                         round(float(secs[FOOT]), 3), round(float(secs[VEHICLE]), 3),
                                         round(float(secs[STATIONARY]), 3),
                                         track.episodes[e][0], ep_of_id.get(e, ""),
                                         "end_of_data" if b >= n - 1 else "exit"))
        visits.sort(key=lambda v: (v.entered_ms, v.hotspot_id))
        visits = [v._replace(visit_id=f"{device_id}-v{k + 1:04d}") for k, v in enumerate(visits)]
        # Stops: the designed standing stops, cut at the end of the shift, in every hot spot holding them.
        stops: list[TruthStop] = []
        for a, b, cx, cy, e in track.stops:
            b = min(b, shift_s)
            if b - a < 120:
                continue
            lon, lat = town.frame.to_lonlat(cx, cy)
            for hs in town.hotspots:
                if shapely.contains_xy(hs.area, cx, cy):
                    stops.append(TruthStop(f"{device_id}-s{len(stops) + 1:04d}", device_id, hs.id, ms(a), ms(b),
                                           float(b - a), round(lat, 7), round(lon, 7), ep_of_id.get(e, "")))
        # Modes
        mode_rows: list[TruthMode] = []
        step = np.hypot(np.diff(x), np.diff(y))
        mchange = np.flatnonzero(np.diff(modes[1:])) + 2 if n > 2 else np.array([], dtype=int)
        mb = np.concatenate([[1], mchange, [n]])
        for a, b in zip(mb[:-1], mb[1:]):
            if a < b:
                mode_rows.append(TruthMode(device_id, ms(a - 1), ms(b - 1), MODE_NAMES[int(modes[a])],
                                           round(float(step[a - 1:b - 1].sum()), 1)))
        observed = _observe(np.random.default_rng(obs_seed), x, y, shift_start, profile, acc_class, cfg)
        kinds = [track.episodes[int(e)][0] for e in eps]
        true_track = TrueTrack(shift_start + np.arange(n, dtype=np.int64) * 1000, x, y, modes, kinds)
        return _OfficerResult(device, visits, stops, mode_rows, episodes, observed, true_track)

    def _all(self) -> list[_OfficerResult]:
        self.run()
        return self._results  # type: ignore[return-value]

    # --- outputs
    def devices(self) -> tuple[SimDevice, ...]:
        return tuple(r.device for r in self._all())

    def true_track(self, device_id: str) -> TrueTrack:
        """The noise-free track of one device's officer (local metres; `frame` converts to WGS84)."""
        return self._all()[self.device_ids.index(device_id)].track

    def truth(self) -> Truth:
        rs = self._all()
        gaps = [TruthGap(r.device.device_id, a, b) for r in rs for a, b in r.observed.gaps]
        return Truth(devices=tuple(r.device for r in rs),
                     visits=tuple(v for r in rs for v in r.visits),
                     stops=tuple(s for r in rs for s in r.stops),
                     modes=tuple(m for r in rs for m in r.modes),
                     episodes=tuple(e for r in rs for e in r.episodes),
                     gaps=tuple(gaps))

    @cached_property
    def _table(self) -> PingTable:
        rs = self._all()
        obs = [r.observed for r in rs]
        dev = np.concatenate([np.full(len(o.ts_ms), i, dtype=np.int32) for i, o in enumerate(obs)])
        seq = np.concatenate([np.arange(len(o.ts_ms)) for o in obs])

        def cat(name):
            return np.concatenate([getattr(o, name) for o in obs])

        delivered = cat("delivered_ms")
        order = np.lexsort((seq, dev, delivered))
        x, y, tx, ty = cat("x"), cat("y"), cat("true_x"), cat("true_y")
        lon, lat = self.frame.to_lonlat(x, y)
        tlon, tlat = self.frame.to_lonlat(tx, ty)
        return PingTable(
            device=dev[order], device_ids=self.device_ids, ts_ms=cat("ts_ms")[order], delivered_ms=delivered[order],
            lat=np.round(np.asarray(lat), 7)[order], lon=np.round(np.asarray(lon), 7)[order],
            accuracy_m=cat("accuracy_m")[order], speed_mps=cat("speed_mps")[order],
            heading_deg=cat("heading_deg")[order], altitude_m=cat("altitude_m")[order],
            battery=cat("battery")[order], true_lat=np.round(np.asarray(tlat), 7)[order],
            true_lon=np.round(np.asarray(tlon), 7)[order],
            error_m=np.round(np.hypot(x - tx, y - ty), 2)[order], outlier=cat("outlier")[order],
            late=cat("late")[order], duplicate=cat("duplicate")[order])

    def ping_table(self) -> PingTable:
        """Every delivered ping as columns, in delivery order (fast path for writers)."""
        return self._table

    def pings(self) -> Iterator[SimPing]:
        """Delivered pings one by one, in delivery order, each with its event and delivery time."""
        tb = self._table
        ids = tb.device_ids

        def opt(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        for i in range(len(tb)):
            b = int(tb.battery[i])
            yield SimPing(ids[tb.device[i]], int(tb.ts_ms[i]), int(tb.delivered_ms[i]), float(tb.lat[i]),
                          float(tb.lon[i]), float(tb.accuracy_m[i]), opt(tb.speed_mps[i]), opt(tb.heading_deg[i]),
                          opt(tb.altitude_m[i]), None if b < 0 else b)
