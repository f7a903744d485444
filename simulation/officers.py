"""Officer behaviour: the noise-free track of one officer's shift, sampled every second.

Kinematics (drives along the street grid with junction waits, walks, standing stops) and the behaviours that
use them: park-and-walk patrols, drive-throughs, drive-bys and walks 10-25 m outside hot-spot edges. Each
behaviour plans its geometry first and touches nothing when the plan does not fit. Why this runs near 400
lines: the behaviours share the track builder's private state and are only meaningful together.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon

from simulation.config import FOOT_CODE, STATIONARY_CODE, SimConfig, VEHICLE_CODE
from simulation.device import ou_samples
from simulation.world import SimHotspot, Town

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
        self.modes: list[np.ndarray] = [np.array([VEHICLE_CODE], dtype=np.int8)]
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
        self._append(x, y, VEHICLE_CODE, mark_ep[which])

    def walk(self, points: np.ndarray, speed: float, ep: int) -> None:
        seg = np.diff(points, axis=0)
        cum = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
        if cum[-1] < 0.05:
            return
        tt = np.arange(1, int(math.ceil(cum[-1] / speed)) + 1, dtype=float)
        ss = np.minimum(tt * speed, cum[-1])
        self._append(np.interp(ss, cum, points[:, 0]), np.interp(ss, cum, points[:, 1]), FOOT_CODE, ep)

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
            z = ou_samples(rng, knots_t.astype(float), 40.0, 2)
            z[0] = 0.0
            tt = np.arange(1, m + 1)
            off = np.column_stack([np.interp(tt, knots_t, z[:, 0]), np.interp(tt, knots_t, z[:, 1])])
            r = np.hypot(off[:, 0], off[:, 1])
            off *= np.minimum(1.0, 2.5 / np.maximum(r, 1e-9))[:, None]
            x, y = cx + off[:, 0], cy + off[:, 1]
        start = self.t
        self._append(x, y, STATIONARY_CODE, ep)
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


def simulate_officer(rng: np.random.Generator, town: Town, cfg: SimConfig, shift_s: int) -> _Track:
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
