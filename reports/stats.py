"""Confidence intervals for the reports: Student's t interval of a mean.

Why t: an arm on one trial day holds a few dozen hot spots at most, and the spread of their dosage is
not known in advance, so the interval must widen for small samples (the normal interval would be too
narrow below about 30). Dosage is skewed (many hot spots get nothing, a few get a lot), so the interval
is approximate; it is what trial reports in this field show, and it says plainly how little a few days
can tell. The comparison of arms takes the trial day as its unit: in a crossover trial the same hot
spots recur every day (their days are not independent), while each day is its own randomisation, so
the per-day difference of arm means is the closer thing to independent observations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def t_interval(values, level: float = 0.95) -> MeanCI:
    """Mean and two-sided Student t interval; with one value there is no spread to measure and the
    bounds are NaN (no interval), with none everything is NaN."""
    from scipy import stats

    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan)
    mean = sum(xs) / n
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(n, mean, mean - half, mean + half)
