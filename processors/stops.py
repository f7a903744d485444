"""Stops inside a hot spot: the device stayed within `stop_radius_m` for at least `stop_min_duration_s`.

Owns one stop detector per visit track (processors.visits feeds it the track's
fixes, so a stop is always inside the visit of its hot spot, and overlapping
hot spots each see the stop).

The rule (docs/decisions.md, "Analytics core"): fixes gather into a cluster
while each lies within `stop_radius_m` of the cluster's centre (the mean of its
fixes), allowing for the fix's own accuracy up to `stop_accuracy_allowance_m`,
and the device does not report moving (a trusted device speed above
`stop_max_speed_mps`). One stray fix is ignored (and so are repeats of its
exact coordinates when it ended a silence of `stale_fix_gap_s`: a phone's
cached fix sent again); two fixes
in a row away end the cluster, which restarts from those of them standing still. A cluster
lasting `stop_min_duration_s` (first to last fix) is a stop, announced once the
visit is confirmed and only if it began while the device was inside; it ends at
its last fix within (or at the visit's end).
"""
from __future__ import annotations

from processors.config import ProcessingConfig
from processors.geo import distance_m
from processors.model import StopEnded, StopStarted, stop_id

_new = object.__new__


class StopTracker:
    __slots__ = ("start_ms", "sum_lat", "sum_lon", "n", "last_ms", "away_ms", "away_lat", "away_lon", "away_still",
                 "announced")

    def __init__(self) -> None:
        self.start_ms: int | None = None     # first fix of the cluster
        self.sum_lat = self.sum_lon = 0.0
        self.n = 0
        self.last_ms = 0                     # last fix within the cluster
        self.away_ms: int | None = None      # a single fix outside, held to see if the next one agrees
        self.away_lat = self.away_lon = 0.0
        self.away_still = False
        self.announced = False               # StopStarted emitted

    def _seed(self, t: int, lat: float, lon: float) -> None:
        self.start_ms, self.sum_lat, self.sum_lon, self.n, self.last_ms = t, lat, lon, 1, t
        self.away_ms = None
        self.announced = False

    def centre(self) -> tuple[float, float]:
        return self.sum_lat / self.n, self.sum_lon / self.n

    def feed(self, device_id: str, hotspot_id: str, t: int, lat: float, lon: float, acc_m: float, moving_mps: float,
             last_inside_ms: int, cfg: ProcessingConfig, events: list) -> None:
        """One fix of the track; last_inside_ms is the visit's last inside fix (no stop ends after it)."""
        still = moving_mps <= cfg.stop_max_speed_mps
        if self.start_ms is None:
            if still:
                self._seed(t, lat, lon)
            return
        reach_m = cfg.stop_radius_m + min(acc_m, cfg.stop_accuracy_allowance_m)
        if still and distance_m(self.sum_lat / self.n, self.sum_lon / self.n, lat, lon) <= reach_m:
            self.sum_lat += lat
            self.sum_lon += lon
            self.n += 1
            self.last_ms = t
            self.away_ms = None
            return
        if self.away_ms is None:
            self.away_ms, self.away_lat, self.away_lon = t, lat, lon
            self.away_still = still
            return
        if lat == self.away_lat and lon == self.away_lon and \
                self.away_ms - self.last_ms >= cfg.stale_fix_gap_s * 1000.0:
            # The same coordinates to the last digit as a stray fix that ended a silence: the phone
            # repeating its cached fix, not a second measurement. One stale fix is one stray fix.
            return
        # Two fixes in a row away: whatever stop there was is over; start again from those
        # of the two that were standing still.
        self.end(device_id, hotspot_id, last_inside_ms, events)
        held = (self.away_ms, self.away_lat, self.away_lon) if self.away_still else None
        self.start_ms = None
        self.away_ms = None
        if held is not None:
            self._seed(*held)
            if still and distance_m(held[1], held[2], lat, lon) <= reach_m:
                self.sum_lat += lat
                self.sum_lon += lon
                self.n += 1
                self.last_ms = t
                return
        if still:
            self._seed(t, lat, lon)

    def maybe_announce(self, device_id: str, hotspot_id: str, last_inside_ms: int, cfg: ProcessingConfig,
                       events: list) -> bool:
        """Emit StopStarted if the cluster has become a stop; True when it did (the visit counts it)."""
        if self.announced or self.start_ms is None or self.start_ms > last_inside_ms:
            return False
        if self.last_ms - self.start_ms < cfg.stop_min_duration_s * 1000.0:
            return False
        self.announced = True
        lat, lon = self.centre()
        events.append(StopStarted(stop_id(device_id, hotspot_id, self.start_ms), device_id, hotspot_id,
                                  self.start_ms, lat, lon))
        return True

    def end(self, device_id: str, hotspot_id: str, limit_ms: int, events: list) -> None:
        """End an announced stop at its last fix within, or at limit_ms if earlier (the visit's end)."""
        if self.announced and self.start_ms is not None:
            end = max(self.start_ms, min(self.last_ms, limit_ms))
            lat, lon = self.centre()
            events.append(StopEnded(stop_id(device_id, hotspot_id, self.start_ms), device_id, hotspot_id,
                                    self.start_ms, end, (end - self.start_ms) / 1000.0, lat, lon))
        self.announced = False

    # ------------------------------------------------------------------ state
    def copy(self) -> "StopTracker":
        """Field by field (see DeviceState.copy)."""
        c = _new(StopTracker)
        c.start_ms = self.start_ms
        c.sum_lat = self.sum_lat
        c.sum_lon = self.sum_lon
        c.n = self.n
        c.last_ms = self.last_ms
        c.away_ms = self.away_ms
        c.away_lat = self.away_lat
        c.away_lon = self.away_lon
        c.away_still = self.away_still
        c.announced = self.announced
        return c

    def to_list(self) -> list:
        return [self.start_ms, self.sum_lat, self.sum_lon, self.n, self.last_ms, self.away_ms, self.away_lat,
                self.away_lon, self.away_still, self.announced]

    @classmethod
    def from_list(cls, v: list) -> "StopTracker":
        s = cls.__new__(cls)
        (s.start_ms, s.sum_lat, s.sum_lon, s.n, s.last_ms, s.away_ms, s.away_lat, s.away_lon, s.away_still,
         s.announced) = v
        return s
