"""Stops inside a hot spot: the device stayed within `stop_radius_m` for at least `stop_min_duration_s`.

Owns one stop detector per visit track (processors.visits feeds it the track's
fixes, so a stop is always inside the visit of its hot spot, and overlapping
hot spots each see the stop).

The rule (docs/decisions.md, "Analytics core"): fixes gather into a cluster
while each lies within `stop_radius_m` of the cluster's centre (the mean of its
fixes), allowing for the fix's own accuracy up to `stop_accuracy_allowance_m`,
and the device does not report moving (a trusted device speed above
`stop_max_speed_mps`; a fix with no device speed does not clear a moving one
before it, since at poor accuracy its position cannot tell a walker from a
stayer). One stray fix is ignored (and so are repeats of its
exact coordinates when it ended a silence of `stale_fix_gap_s`: a phone's
cached fix sent again); two fixes
in a row away end the cluster, which restarts from those of them standing still. A cluster
lasting `stop_min_duration_s` is a stop, announced once the visit is confirmed
and only if it began while the device was inside; it starts at its first fix and
ends at its last fix within (or at the visit's end). Its duration is judged on the
stay the fixes show, not on the fixes alone: the device arrived somewhere in the
interval before the first fix and left somewhere in the interval after the last,
so that unseen part counts, the second once the first fix away has come. How much:
by dead reckoning when the fix on the other side shows the device moving (its speed
evidence, device or displacement, above `stop_max_speed_mps`): it covered the step
between that fix and the stay at that speed, so it arrived step / v after the fix
before, and left step / v before the fix after (docs/decisions.md, "Stops: the
unseen ends of a stay by dead reckoning"). Otherwise half the interval, at most
`edge_credit_max_s` (the visits' own credit for the unseen part of an interval).
Either way no more is inferred on a side than the fixes themselves span (or that
allowance, if more): straight at the last speed holds over a walk's last leg, not
across a long silence.
That credit is inference, so it needs positive evidence of standing: a fix of the
cluster reporting a standing device speed. Without one, two sparse fixes near each
other are as likely a walker who turned back, and the fixes must span the minimum. At
60 s intervals a 150 s stop has two or three fixes spanning 60-120 s; the time it
covers is what decides (docs/decisions.md, "Stops and modes on poor fixes").

"""
from __future__ import annotations

from processors.config import ProcessingConfig
from processors.geo import distance_m
from processors.model import StopEnded, StopStarted, stop_id

_new = object.__new__


class StopTracker:
    __slots__ = ("start_ms", "sum_lat", "sum_lon", "n", "last_ms", "away_ms", "away_lat", "away_lon", "away_still",
                 "announced", "lead_ms", "prev_ms", "speed_still", "trail_ms")

    def __init__(self) -> None:
        self.start_ms: int | None = None     # first fix of the cluster
        self.sum_lat = self.sum_lon = 0.0
        self.n = 0
        self.last_ms = 0                     # last fix within the cluster
        self.away_ms: int | None = None      # a single fix outside, held to see if the next one agrees
        self.away_lat = self.away_lon = 0.0
        self.away_still = False
        self.announced = False               # StopStarted emitted
        self.lead_ms = 0.0                   # unseen part of the interval before the first fix credited to the stay
        self.prev_ms: int | None = None      # the last fix fed (whatever it was)
        self.speed_still = False             # a fix of the cluster reported a standing device speed
        self.trail_ms: float | None = None   # unseen part of the interval after the last fix within, once a fix away came

    def _seed(self, t: int, lat: float, lon: float, prev_ms: int | None, cfg: ProcessingConfig,
              before: tuple | None = None, acc_m: float = 0.0) -> None:
        self.start_ms, self.sum_lat, self.sum_lon, self.n, self.last_ms = t, lat, lon, 1, t
        self.away_ms = None
        self.trail_ms = None
        self.announced = False
        self.lead_ms = _credit_ms(t, prev_ms, cfg)
        if before is not None and before[0] == prev_ms:
            # The fix before showed the device moving: it covered the step from there at that speed.
            reckoned = _reckoned_ms(t, prev_ms, distance_m(before[1], before[2], lat, lon), before[3], acc_m,
                                    before[4], cfg)
            if reckoned is not None:
                self.lead_ms = reckoned
        self.speed_still = False

    def centre(self) -> tuple[float, float]:
        return self.sum_lat / self.n, self.sum_lon / self.n

    def feed(self, device_id: str, hotspot_id: str, t: int, lat: float, lon: float, acc_m: float, moving_mps: float,
             last_inside_ms: int, cfg: ProcessingConfig, events: list, before: tuple | None = None,
             v_mps: float = -1.0) -> None:
        """One fix of the track; last_inside_ms is the visit's last inside fix (no stop ends after it).

        `before` is the device's fix before this one, (ts_ms, lat, lon, accuracy_m, speed evidence m/s),
        or None; v_mps this fix's speed evidence (processors.modes; -1: none): what dead reckoning uses."""
        prev_ms, self.prev_ms = self.prev_ms, t
        still = moving_mps <= cfg.stop_max_speed_mps
        if self.start_ms is None:
            if still:
                self._seed(t, lat, lon, prev_ms, cfg, before, acc_m)
                self.speed_still = moving_mps >= 0.0
            return
        reach_m = cfg.stop_radius_m + min(acc_m, cfg.stop_accuracy_allowance_m)
        within = distance_m(self.sum_lat / self.n, self.sum_lon / self.n, lat, lon) <= reach_m
        if within and moving_mps < 0.0 and self.away_ms is not None and not self.away_still:
            # The fix before reported moving; this one reports no speed and its position cannot tell a
            # walker from a stayer at this accuracy: no evidence either way. The moving fix stays
            # pending, so that a walker whose fixes alternate moving speed and none ends the cluster.
            return
        if still and within:
            self.sum_lat += lat
            self.sum_lon += lon
            self.n += 1
            self.last_ms = t
            self.away_ms = None
            if moving_mps >= 0.0:
                self.speed_still = True
            return
        if self.away_ms is None:
            self.away_ms, self.away_lat, self.away_lon = t, lat, lon
            self.away_still = still
            # Left the stay at this fix's speed, having covered the step from it (from the centre).
            c_lat, c_lon = self.sum_lat / self.n, self.sum_lon / self.n
            self.trail_ms = _reckoned_ms(t, self.last_ms, distance_m(c_lat, c_lon, lat, lon), 0.0, acc_m, v_mps, cfg)
            return
        if lat == self.away_lat and lon == self.away_lon and \
                self.away_ms - self.last_ms >= cfg.stale_fix_gap_s * 1000.0:
            # The same coordinates to the last digit as a stray fix that ended a silence: the phone
            # repeating its cached fix, not a second measurement. One stale fix is one stray fix.
            return
        # Two fixes in a row away: whatever stop there was is over; start again from those
        # of the two that were standing still.
        self.end(device_id, hotspot_id, last_inside_ms, events)
        held = (self.away_ms, self.away_lat, self.away_lon, self.last_ms, cfg) if self.away_still else None
        self.start_ms = None
        self.away_ms = None
        if held is not None:
            self._seed(*held)
            if still and distance_m(held[1], held[2], lat, lon) <= reach_m:
                self.sum_lat += lat
                self.sum_lon += lon
                self.n += 1
                self.last_ms = t
                self.speed_still = moving_mps >= 0.0
                return
        if still:
            self._seed(t, lat, lon, prev_ms, cfg, before, acc_m)
            self.speed_still = moving_mps >= 0.0

    def maybe_announce(self, device_id: str, hotspot_id: str, last_inside_ms: int, cfg: ProcessingConfig,
                       events: list) -> bool:
        """Emit StopStarted if the cluster has become a stop; True when it did (the visit counts it)."""
        if self.announced or self.start_ms is None or self.start_ms > last_inside_ms:
            return False
        seen_ms = stay_ms = self.last_ms - self.start_ms
        # Inferred on each side: at most what was seen (or the half-interval allowance): reckoning that
        # the device went straight at its last speed holds over a walk's last leg, not over a long silence.
        most_ms = max(seen_ms, cfg.edge_credit_max_s * 1000.0)
        if self.speed_still:
            stay_ms += min(self.lead_ms, most_ms)
        if self.speed_still and self.away_ms is not None:
            trail = self.trail_ms                                      # left after the last fix within
            stay_ms += min(_credit_ms(self.away_ms, self.last_ms, cfg) if trail is None else trail, most_ms)
        if stay_ms < cfg.stop_min_duration_s * 1000.0:
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
        c.lead_ms = self.lead_ms
        c.prev_ms = self.prev_ms
        c.speed_still = self.speed_still
        c.trail_ms = self.trail_ms
        return c

    def to_list(self) -> list:
        return [self.start_ms, self.sum_lat, self.sum_lon, self.n, self.last_ms, self.away_ms, self.away_lat,
                self.away_lon, self.away_still, self.announced, self.lead_ms, self.prev_ms, self.speed_still,
                self.trail_ms]

    @classmethod
    def from_list(cls, v: list) -> "StopTracker":
        s = cls.__new__(cls)
        (s.start_ms, s.sum_lat, s.sum_lon, s.n, s.last_ms, s.away_ms, s.away_lat, s.away_lon, s.away_still,
         s.announced) = v[:10]
        # (Device state version 2 stored ten fields: no credit before the first fix, no fix before.)
        s.lead_ms, s.prev_ms, s.speed_still = v[10:13] if len(v) > 10 else (0.0, None, False)
        # (Device state version 4 and before: no reckoned credit after the last fix; half the interval.)
        s.trail_ms = v[13] if len(v) > 13 else None
        return s


def _reckoned_ms(t: int, other_ms: int | None, d_m: float, acc_a: float, acc_b: float, v_mps: float,
                 cfg: ProcessingConfig) -> float | None:
    """Dead reckoning across the interval between a fix of the stay and `other_ms`, a fix d_m away whose speed
    evidence v_mps shows the device moving: the part of the interval spent standing (the rest it took to
    cover the step, d less both errors in quadrature, at v). None when there is nothing to reckon with."""
    if other_ms is None or v_mps <= cfg.stop_max_speed_mps:
        return None
    span_ms = abs(t - other_ms)
    step2 = d_m * d_m - acc_a * acc_a - acc_b * acc_b
    moving_ms = 1000.0 * (step2 ** 0.5 if step2 > 0.0 else 0.0) / v_mps
    return max(0.0, span_ms - moving_ms)


def _credit_ms(t: int, prev_ms: int | None, cfg: ProcessingConfig) -> float:
    """Half the interval between two fixes (at most edge_credit_max_s): when, unseen, the device arrived or left."""
    if prev_ms is None or t <= prev_ms:
        return 0.0
    return min((t - prev_ms) / 2.0, cfg.edge_credit_max_s * 1000.0)
