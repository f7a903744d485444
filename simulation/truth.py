"""Ground truth from the noise-free track: when the officer was really inside each hot spot, and in which mode.
"""
from __future__ import annotations

import math

import numpy as np
import shapely

# ---------------------------------------------------------------------------
# Truth from the noise-free track

def inside_intervals(x: np.ndarray, y: np.ndarray, area) -> list[tuple[float, float]]:
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


def mode_seconds(modes: np.ndarray, a: float, b: float) -> np.ndarray:
    """Seconds per mode within [a, b]; sample k carries the mode of the second (k-1, k]."""
    out = np.zeros(3)
    k0, k1 = int(math.floor(a)) + 1, int(math.ceil(b))
    for k in range(max(k0, 1), min(k1, len(modes) - 1) + 1):
        overlap = min(b, k) - max(a, k - 1)
        if overlap > 0:
            out[modes[k]] += overlap
    return out
