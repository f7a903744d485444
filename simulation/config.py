"""What a simulated day is made of: device profiles, the scenario settings (`SimConfig`) and the named scenarios.

The mode codes of the noise-free track (`FOOT_CODE`...) are the simulator's own small ints; their names
(`MODE_NAMES`) are the processors' mode names (processors.model), so truth and analytics speak one vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from processors.model import FOOT, STATIONARY, VEHICLE

FOOT_CODE, VEHICLE_CODE, STATIONARY_CODE = 0, 1, 2
MODE_NAMES = (FOOT, VEHICLE, STATIONARY)  # by code

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
