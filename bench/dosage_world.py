"""The world of bench/dosage_eval.py: officers' true 1 Hz tracks and what their phones report of them.

Owns the generator and the truth (issue 12's definitions), nothing else; independent of
simulation/simulate.py on purpose, so the analytics are not scored on the data they were tuned on.

Truth, per second of an officer's shift: position (metres in a local frame), mode label (foot,
vehicle, stationary, cycling), and the hot spot physically containing the position. From it:
a visit is a maximal stretch inside one hot spot, stretches less than 60 s apart merged, kept if
at least 60 s; dosage is the total time inside per officer x hot spot; a stop is standing still at
least 120 s inside a hot spot; near misses are the episodes spent 10-25 m outside an edge.

Observation: every 5/10/30/60 s with +-20% jitter; AR(1) position error (time constant 20-60 s)
of sigma 4/8/15/25 m, reported accuracy 0.7-1.6 sigma; device speed on 70% of rows; 1-3 silences
of 2-6 min (one of them during a standing stop inside a hot spot, where phones go quiet most);
1% duplicated rows, 2% rows swapped with one up to 8 rows later, 0.3% wild outliers 150-600 m off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import box

from processors.geo import metres_per_degree
from processors.geofence import Hotspot, HotspotIndex
from processors.model import Ping

LAT0, LON0 = 51.5072, -0.1276
KX, KY = metres_per_degree(LAT0)
T0_MS = 1_767_254_400_000          # 2026-01-01T08:00:00Z
SIDE_M = 160.0                     # hot spot squares
GRID_M = 1200.0                    # their spacing
N_SPOTS = 9                        # a 3 x 3 grid

FOOT, VEHICLE, STATIONARY, CYCLING = "foot", "vehicle", "stationary", "cycling"


def spot_origin(k: int) -> tuple[float, float]:
    return (k % 3) * GRID_M, (k // 3) * GRID_M


def hotspot_index() -> HotspotIndex:
    spots = []
    for k in range(N_SPOTS):
        x0, y0 = spot_origin(k)
        a, b = LAT0 + y0 / KY, LON0 + x0 / KX
        c, d = LAT0 + (y0 + SIDE_M) / KY, LON0 + (x0 + SIDE_M) / KX
        spots.append(Hotspot(f"H{k}", box(b, a, d, c)))
    return HotspotIndex.from_hotspots(spots)


def inside_spot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Index of the hot spot containing each position, -1 outside."""
    out = np.full(len(x), -1, dtype=np.int64)
    for k in range(N_SPOTS):
        x0, y0 = spot_origin(k)
        m = (x >= x0) & (x <= x0 + SIDE_M) & (y >= y0) & (y <= y0 + SIDE_M)
        out[m] = k
    return out


@dataclass
class Truth:
    x: np.ndarray
    y: np.ndarray
    mode: list
    spot: np.ndarray
    stops: list = field(default_factory=list)        # (hotspot_id, start_s, end_s)
    near: list = field(default_factory=list)         # (hotspot_id, start_s, end_s, kind)


class _Track:
    def __init__(self, rng):
        self.rng = rng
        self.x: list[float] = []
        self.y: list[float] = []
        self.mode: list[str] = []
        self.stops: list = []
        self.near: list = []

    @property
    def t(self) -> int:
        return len(self.x)

    def pos(self):
        return self.x[-1], self.y[-1]

    def go(self, tx, ty, speed, mode):
        x, y = self.pos()
        d = math.hypot(tx - x, ty - y)
        n = max(1, int(math.ceil(d / speed)))
        for k in range(1, n + 1):
            self.x.append(x + (tx - x) * k / n)
            self.y.append(y + (ty - y) * k / n)
            self.mode.append(mode)

    def stay(self, seconds, mode=STATIONARY):
        x, y = self.pos()
        for _ in range(int(seconds)):
            self.x.append(x)
            self.y.append(y)
            self.mode.append(mode)

    def drive(self, tx, ty):
        # Along the grid (x then y) at 8-14 m/s, with a wait at lights now and then.
        rng = self.rng
        x, y = self.pos()
        self.go(tx, y, rng.uniform(8, 14), VEHICLE)
        if rng.random() < 0.5:
            self.stay(rng.uniform(10, 60), VEHICLE)
        self.go(tx, ty, rng.uniform(8, 14), VEHICLE)


def _patrol(tr: _Track, k: int) -> None:
    """Park 30-40 m outside, walk in, wander 8-25 min with 1-3 stops and brief excursions, walk back."""
    rng = tr.rng
    x0, y0 = spot_origin(k)
    side = rng.integers(4)
    along = rng.uniform(30, SIDE_M - 30)
    off = rng.uniform(30, 40)
    park = [(x0 + along, y0 - off), (x0 + along, y0 + SIDE_M + off), (x0 - off, y0 + along),
            (x0 + SIDE_M + off, y0 + along)][side]
    tr.drive(*park)
    tr.stay(rng.uniform(20, 60))                 # park, get out
    start = tr.t
    duration = rng.uniform(8, 25) * 60
    n_stops = int(rng.integers(1, 4))
    stop_at = sorted(rng.uniform(0.1, 0.9, n_stops) * duration)
    n_exc = int(rng.integers(0, 3))
    exc_at = sorted(rng.uniform(0.1, 0.9, n_exc) * duration)
    walk = rng.uniform(1.1, 1.6)
    while tr.t - start < duration:
        el = tr.t - start
        if stop_at and el >= stop_at[0]:
            stop_at.pop(0)
            x, y = tr.pos()
            if x0 + 5 < x < x0 + SIDE_M - 5 and y0 + 5 < y < y0 + SIDE_M - 5:
                s0 = tr.t
                tr.stay(rng.uniform(120, 360))
                tr.stops.append((f"H{k}", s0, tr.t))
                # Stops due during this one are dropped: two stops in a row are one stop.
                while stop_at and stop_at[0] <= tr.t - start:
                    stop_at.pop(0)
                tr.go(x0 + rng.uniform(15, SIDE_M - 15), y0 + rng.uniform(15, SIDE_M - 15), walk, FOOT)
            continue
        if exc_at and el >= exc_at[0]:
            exc_at.pop(0)
            # Out through the nearest edge, 10-20 m beyond it, a few seconds there, and back.
            x, y = tr.pos()
            d = [x - x0, x0 + SIDE_M - x, y - y0, y0 + SIDE_M - y]
            e = int(np.argmin(d))
            out = rng.uniform(10, 20)
            tx, ty = [(x0 - out, y), (x0 + SIDE_M + out, y), (x, y0 - out), (x, y0 + SIDE_M + out)][e]
            tr.go(tx, ty, walk, FOOT)
            tr.stay(rng.uniform(5, 20))
            tr.go(x, y, walk, FOOT)
            continue
        tx, ty = x0 + rng.uniform(15, SIDE_M - 15), y0 + rng.uniform(15, SIDE_M - 15)
        tr.go(tx, ty, walk, FOOT)
    tr.go(*park, walk, FOOT)
    tr.stay(rng.uniform(20, 60))                 # back in the car


def _near_miss(tr: _Track, k: int) -> None:
    """Walk, stand or drive 10-25 m outside an edge of hot spot k for minutes."""
    rng = tr.rng
    x0, y0 = spot_origin(k)
    off = rng.uniform(10, 25)
    kind = ["walk", "stand", "drive"][int(rng.integers(3))]
    y = y0 - off
    a, b = x0 - 60, x0 + SIDE_M + 60
    tr.drive(a - 150, y)
    if kind == "drive":
        s0 = tr.t
        for _ in range(int(rng.integers(2, 5))):
            tr.go(b, y, rng.uniform(5, 9), VEHICLE)
            tr.go(a, y, rng.uniform(5, 9), VEHICLE)
    else:
        tr.go(a, y, 10, VEHICLE)
        tr.stay(rng.uniform(10, 30))
        s0 = tr.t
        if kind == "walk":
            tr.go(b, y, rng.uniform(1.1, 1.6), FOOT)
            tr.go(a, y, rng.uniform(1.1, 1.6), FOOT)
        else:
            tr.go(x0 + SIDE_M / 2, y, 1.3, FOOT)
            tr.stay(rng.uniform(180, 420))
            tr.go(a, y, 1.3, FOOT)
    tr.near.append((f"H{k}", s0, tr.t, kind))


def _cycle(tr: _Track) -> None:
    rng = tr.rng
    x, y = tr.pos()
    for _ in range(int(rng.integers(2, 5))):
        tx, ty = x + rng.uniform(-600, 600), y + rng.uniform(-600, 600)
        tr.go(tx, ty, rng.uniform(4, 6), CYCLING)
        x, y = tx, ty


def true_track(rng: np.random.Generator, hours: float) -> Truth:
    tr = _Track(rng)
    tr.x.append(-500.0)
    tr.y.append(-500.0)
    tr.mode.append(STATIONARY)
    end = int(hours * 3600)
    while tr.t < end:
        r = rng.random()
        k = int(rng.integers(N_SPOTS))
        if r < 0.55:
            _patrol(tr, k)
        elif r < 0.8:
            _near_miss(tr, k)
        elif r < 0.9:
            _cycle(tr)
        else:
            tr.drive(*(np.array(spot_origin(k)) + rng.uniform(-400, -250, 2)))
            tr.stay(rng.uniform(120, 900))           # a break in the parked car
    x, y = np.array(tr.x[:end]), np.array(tr.y[:end])
    return Truth(x, y, tr.mode[:end], inside_spot(x, y),
                 [s for s in tr.stops if s[2] <= end], [n for n in tr.near if n[2] <= end])


@dataclass
class Observed:
    pings: list                       # in file order
    good: set                         # ids of rows that must not be rejected
    bad: dict                         # id(row) -> expected reason
    outliers: set
    interval_s: float
    sigma_m: float
    gaps: list = field(default_factory=list)   # silences (start_s, end_s)


def observe(rng: np.random.Generator, truth: Truth, device: str, interval_s: float, sigma_m: float) -> Observed:
    n = len(truth.x)
    times = [0.0]
    while True:
        t = times[-1] + interval_s * rng.uniform(0.8, 1.2)
        if t >= n - 1:
            break
        times.append(t)
    times = np.array(times)
    # Silences: one during a standing stop inside a hot spot when there is one, the rest anywhere.
    gaps = []
    n_gaps = int(rng.integers(1, 4))
    if truth.stops:
        h, a, b = truth.stops[int(rng.integers(len(truth.stops)))]
        g0 = rng.uniform(a, max(a + 1, b - 60))
        gaps.append((g0, g0 + rng.uniform(120, 360)))
    while len(gaps) < n_gaps:
        g0 = rng.uniform(0, n - 400)
        gaps.append((g0, g0 + rng.uniform(120, 360)))
    keep = np.ones(len(times), dtype=bool)
    for a, b in gaps:
        keep &= ~((times > a) & (times < b))
    times = times[keep]
    # AR(1) error at 1 Hz, sampled at the fix times.
    tau = rng.uniform(20, 60)
    phi = math.exp(-1.0 / tau)
    e = np.zeros((n, 2))
    e[0] = rng.normal(0, sigma_m, 2)
    noise = rng.normal(0, sigma_m * math.sqrt(1 - phi * phi), (n, 2))
    for k in range(1, n):
        e[k] = phi * e[k - 1] + noise[k]
    acc_factor = rng.uniform(0.7, 1.6)
    rows, good, outliers = [], set(), set()
    speed = np.hypot(np.gradient(truth.x), np.gradient(truth.y))
    for t in times:
        k = int(t)
        fx, fy = truth.x[k] + e[k, 0], truth.y[k] + e[k, 1]
        out = rng.random() < 0.003
        if out:
            ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(150, 600)
            fx, fy = fx + dist * math.cos(ang), fy + dist * math.sin(ang)
        sp = max(0.0, speed[k] + rng.normal(0, 0.3)) if rng.random() < 0.7 else None
        acc = round(sigma_m * acc_factor * rng.uniform(0.9, 1.1), 1)
        p = Ping(device, T0_MS + int(t * 1000), LAT0 + fy / KY, LON0 + fx / KX, acc, sp)
        rows.append(p)
        (outliers if out else good).add(id(p))
        if rng.random() < 0.01:
            rows.append(Ping(device, p.ts_ms, p.lat, p.lon, p.accuracy_m, p.speed_mps))   # retransmitted
    for i in range(len(rows) - 9):
        if rng.random() < 0.02:
            j = i + int(rng.integers(1, 9))
            rows[i], rows[j] = rows[j], rows[i]
    return Observed(rows, good, {}, outliers, interval_s, sigma_m, gaps)


def bad_rows(rng: np.random.Generator, obs: Observed) -> None:
    """The three bad rows of a set: null island, latitude out of range, a timestamp two days ahead."""
    dev = obs.pings[0].device_id
    for reason in ("null_island", "bad_coordinates", "time_jump"):
        k = int(rng.integers(10, len(obs.pings) - 10))
        ref = obs.pings[k]
        if reason == "null_island":
            p = Ping(dev, ref.ts_ms + 1, 0.0, 0.0, 5.0)
        elif reason == "bad_coordinates":
            p = Ping(dev, ref.ts_ms + 1, 95.0, ref.lon, 5.0)
        else:
            p = Ping(dev, ref.ts_ms + 2 * 86_400_000, ref.lat, ref.lon, ref.accuracy_m)
        obs.pings.insert(k + 1, p)
        obs.bad[id(p)] = reason
