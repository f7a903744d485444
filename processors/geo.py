"""Small-distance geodesy for the per-ping state machines.

The state machines compare positions metres to kilometres apart, so a local
equirectangular approximation on the WGS84 ellipsoid (scale taken at the mean
latitude of the two points) is within about 0.5% of the geodesic there (the
state machines' thresholds are not that sharp), and costs a cosine and a hypot
instead of the trigonometry of a great-circle formula.
"""
from __future__ import annotations

import math

_A = 6378137.0                 # WGS84 semi-major axis, m
_E2 = 6.69437999014e-3         # WGS84 first eccentricity squared
RAD = math.pi / 180.0


def metres_per_degree(lat_deg: float) -> tuple[float, float]:
    """(metres per degree of longitude, metres per degree of latitude) at a latitude."""
    s = math.sin(lat_deg * RAD)
    w = 1.0 - _E2 * s * s
    n = _A / math.sqrt(w)                 # prime-vertical radius of curvature
    m = _A * (1.0 - _E2) / (w * math.sqrt(w))  # meridional radius of curvature
    return n * math.cos(lat_deg * RAD) * RAD, m * RAD


# Meridional metres per degree varies by 1% between the equator and the poles;
# the longitude scale is what matters, so a mid-latitude constant is fine here.
M_PER_DEG_LAT = metres_per_degree(45.0)[1]
M_PER_DEG = _A * RAD
"""Metres per degree of latitude (mid-latitude), and of longitude at the equator (times cos(lat) elsewhere).
Hot loops inline `distance_m` with these."""


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Approximate ground distance between two nearby WGS84 points, metres."""
    dy = (lat2 - lat1) * M_PER_DEG_LAT
    dx = (lon2 - lon1) * M_PER_DEG * math.cos((lat1 + lat2) * (0.5 * RAD))
    return math.hypot(dx, dy)
