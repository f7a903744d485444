"""The simulator's output records (plain data): delivered pings, the noise-free track, devices and the truth.

Times are UTC epoch milliseconds. simulation/files.py writes them; simulation/scoring.py compares them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from processors.model import StopEnded

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
    mode: np.ndarray      # FOOT_CODE, VEHICLE_CODE or STATIONARY_CODE
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


# A true standing stop: the columns of stops.csv, as the processors' StopEnded has them (the one owner of
# those columns, so truth and prediction cannot drift apart), and the episode it belongs to.
TruthStop = NamedTuple("TruthStop", [(f.name, f.type) for f in dataclasses.fields(StopEnded)] + [("episode_id", str)])


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
