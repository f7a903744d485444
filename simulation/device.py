"""Device noise: what a phone reports of the noise-free track (update interval, accuracy class, GPS error
correlated in time, signal gaps, duplicates, late delivery, wild outliers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulation.config import ACCURACY_TO_SIGMA, DeviceProfile, SimConfig

# ---------------------------------------------------------------------------
# Observation: what the device reports

def ou_samples(rng: np.random.Generator, t_s: np.ndarray, tau_s: float, dims: int) -> np.ndarray:
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
class Observed:
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


def observe(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, shift_start_ms: int,
             profile: DeviceProfile, accuracy_class_m: float, cfg: SimConfig) -> Observed:
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
    z_acc = ou_samples(rng, t.astype(float), 300.0, 1)[:, 0]
    acc = np.round(np.clip(accuracy_class_m * np.exp(0.15 * z_acc), 0.7 * accuracy_class_m,
                           1.4 * accuracy_class_m), 1)
    sigma = acc * ACCURACY_TO_SIGMA
    z = ou_samples(rng, t.astype(float), cfg.noise_tau_s, 3)
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
    return Observed(
        ts_ms=ts_ms[idx], delivered_ms=np.concatenate([delivered, dup_delivered]),
        x=(tx + ex)[idx], y=(ty + ey)[idx], true_x=tx[idx], true_y=ty[idx], accuracy_m=acc[idx],
        speed_mps=speed[idx], heading_deg=heading[idx], altitude_m=altitude[idx], battery=battery[idx],
        outlier=outlier[idx], late=late[idx], duplicate=is_dup,
        gaps=[(shift_start_ms + a * 1000, shift_start_ms + b * 1000) for a, b in gaps])
