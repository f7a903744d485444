"""Visits of one device to one hot spot: entry and exit with hysteresis, accuracy awareness, and honest dwell.

Owns the per-(device, hot spot) `Track` and its transitions. processors.device
calls `observe` for every usable fix near the hot spot or while a track exists,
and `close` when the visit ends (exit confirmed here; signal loss and end of
data decided by the device).

Each fix is classified against the hot spot by the index (processors.geofence):
*inside* (the position is in the polygon) and *edge* (the boundary is within
`edge_accuracy_factor` accuracy radii). A firm fix is one that is not on the
edge; only firm fixes change state, so one jittery fix at the boundary never
flips it.

* Entry: a run of inside fixes (edge or firm) becomes a candidate; any outside
  fix cancels it. The visit is confirmed by a firm inside fix at least
  `enter_confirm_s` after the candidate's first firm inside fix, or, for
  devices too inaccurate to give firm fixes in a small hot spot, by an
  unbroken run of inside fixes (three or more) lasting
  `enter_confirm_uncertain_s`. It is backdated to the first fix of the run.
* While open, inside fixes extend it. A firm outside fix starts an exit; a firm
  inside fix cancels it (a brief excursion stays in the visit); a firm outside
  fix `exit_confirm_s` after the exit began confirms it, and the visit ends at
  its last inside fix.
* Silence: signal loss closes the visit (a row with end_reason signal_lost),
  but a visit the device went silent inside is kept, `lost`. If the next fix
  is inside the same hot spot within `gap_bridge_max_s` of the last inside fix
  and could have been walked to (`gap_bridge_max_mps`, accuracies given back),
  the visit goes on: same visit id, so its later row replaces the signal_lost
  one, and the silence is counted as `inferred_s`. Any other next fix drops
  it. The live worker (signal loss seen by its timer) and replay (seen by the
  next fix) go through the same close and the same resume, so they agree.
* Dwell: the time from the first to the last inside fix (every interval
  between them counts: a gap of `signal_loss_s` or more would have ended the
  visit) plus, at each end, half the interval to the neighbouring fix, at most
  `edge_credit_max_s`: with fixes every 60 s the crossing happened, on average,
  half an interval before the first inside fix and after the last.
"""
from __future__ import annotations

from processors.config import ProcessingConfig
from processors.geo import distance_m
from processors.model import VisitEnded, VisitProgress, VisitStarted, visit_id
from processors.modes import ModeTracker
from processors.stops import StopTracker

PRE, CANDIDATE, OPEN = 0, 1, 2

_new = object.__new__


class Track:
    __slots__ = ("hotspot_id", "phase", "first_ms", "firm_ms", "edge_in_ms", "last_in_ms", "exit_since_ms",
                 "after_in_ms", "n_in", "n_pending", "stop_count", "stop",
                 "in_lat", "in_lon", "inferred_ms", "lost")

    def __init__(self, hotspot_id: str, t: int, firm: bool, edge_in_ms: float) -> None:
        self.hotspot_id = hotspot_id
        self.phase = CANDIDATE if firm else PRE
        self.first_ms = t                  # first fix of the inside run: the visit's entered_ms
        self.firm_ms = t if firm else None  # first firm inside fix of the candidate
        self.edge_in_ms = edge_in_ms       # dwell credit before first_ms
        self.last_in_ms = t                # last inside fix
        self.exit_since_ms: int | None = None
        self.after_in_ms: int | None = None  # first fix after last_in_ms
        self.n_in = 1                      # fixes from first_ms to last_in_ms
        self.n_pending = 0                 # fixes after last_in_ms
        self.stop_count = 0
        self.stop = StopTracker()
        self.in_lat = self.in_lon = None   # position of the last inside fix
        self.inferred_ms = 0.0             # silences bridged
        self.lost = False                  # closed by signal loss while inside: may resume

    def observe(self, device_id: str, t: int, inside: bool, edge: bool, cfg: ProcessingConfig,
                events: list, lat: float | None = None, lon: float | None = None) -> bool:
        """One usable fix. Returns False when the track is over (candidate cancelled or visit closed)."""
        if self.phase != OPEN:
            if not inside:
                return False
            self.n_in += self.n_pending + 1
            self.n_pending = 0
            self.last_in_ms = t
            self.in_lat, self.in_lon = lat, lon
            self.after_in_ms = None
            if not edge:
                if self.firm_ms is None:
                    self.firm_ms = t
                    self.phase = CANDIDATE
                elif t - self.firm_ms >= cfg.enter_confirm_s * 1000.0:
                    self._open(device_id, events)
                    return True
            if t - self.first_ms >= cfg.enter_confirm_uncertain_s * 1000.0 and self.n_in >= 3:
                self._open(device_id, events)
            return True
        if inside and (self.exit_since_ms is None or not edge):
            self.exit_since_ms = None
            self.after_in_ms = None
            self.n_in += self.n_pending + 1
            self.n_pending = 0
            self.last_in_ms = t
            self.in_lat, self.in_lon = lat, lon
            return True
        self.n_pending += 1
        if self.after_in_ms is None:
            self.after_in_ms = t
        if not inside and not edge:
            if self.exit_since_ms is None:
                self.exit_since_ms = t
            elif t - self.exit_since_ms >= cfg.exit_confirm_s * 1000.0:
                return False
        return True

    def _open(self, device_id: str, events: list) -> None:
        self.phase = OPEN
        events.append(VisitStarted(visit_id(device_id, self.hotspot_id, self.first_ms), device_id, self.hotspot_id,
                                   self.first_ms))

    def skip(self, t: int) -> None:
        """A fix too inaccurate to say where it was: it changes no state, but it is the next fix in time
        (ping_count if the visit goes on; the end of the interval credited at the exit)."""
        self.n_pending += 1
        if self.after_in_ms is None:
            self.after_in_ms = t

    def may_resume(self) -> bool:
        """After a signal-loss close: the visit was open and its last fix was inside, so it may go on."""
        return self.phase == OPEN and self.n_pending == 0 and self.in_lat is not None

    def resume(self, t: int, lat: float, lon: float, acc_m: float, cfg: ProcessingConfig) -> bool:
        """The first fix after the silence, inside this hot spot: go on if it is in time and walkable
        (its accuracy given back twice: the last fix's is not kept, and a device's accuracy is steady)."""
        gap_ms = t - self.last_in_ms
        if not 0 < gap_ms <= cfg.gap_bridge_max_s * 1000.0:   # (<= 0: the device's clock went back)
            return False
        d = distance_m(self.in_lat, self.in_lon, lat, lon) - 2.0 * acc_m
        if d > cfg.gap_bridge_max_mps * gap_ms / 1000.0:
            return False
        self.lost = False
        self.inferred_ms += gap_ms
        self.stop = StopTracker()          # the stop before the silence was ended with the signal_lost row
        return True

    def progress(self, device_id: str, mode: ModeTracker) -> VisitProgress | None:
        """An open visit's dwell so far (to its last inside fix, no credit past it); None unless open."""
        if self.phase != OPEN or self.lost:
            return None
        a = self.first_ms - self.edge_in_ms
        b = self.last_in_ms
        foot_s, vehicle_s, stationary_s = mode.seconds(a, b)
        dwell_s = round((b - a) / 1000.0, 3)
        inferred_s = round(self.inferred_ms / 1000.0, 3)
        return VisitProgress(visit_id(device_id, self.hotspot_id, self.first_ms), device_id, self.hotspot_id,
                             self.first_ms, self.last_in_ms, dwell_s, round(dwell_s - inferred_s, 3), inferred_s,
                             round(foot_s, 3), round(vehicle_s, 3), round(stationary_s, 3), self.stop_count,
                             self.n_in)

    def close(self, device_id: str, reason: str, mode: ModeTracker, cfg: ProcessingConfig, events: list) -> None:
        """Emit the end of the visit (its stop first) if it was confirmed; a candidate just disappears."""
        if self.phase != OPEN or self.lost:
            return
        edge_out_ms = 0.0
        if self.after_in_ms is not None:
            gap = self.after_in_ms - self.last_in_ms
            if gap < cfg.signal_loss_s * 1000.0:
                edge_out_ms = min(gap / 2.0, cfg.edge_credit_max_s * 1000.0)
        a = self.first_ms - self.edge_in_ms
        b = self.last_in_ms + edge_out_ms
        foot_s, vehicle_s, stationary_s = mode.seconds(a, b)
        self.stop.end(device_id, self.hotspot_id, self.last_in_ms, events)
        dwell_s = round((b - a) / 1000.0, 3)
        inferred_s = round(self.inferred_ms / 1000.0, 3)
        events.append(VisitEnded(visit_id(device_id, self.hotspot_id, self.first_ms), device_id, self.hotspot_id,
                                 self.first_ms, self.last_in_ms, dwell_s, round(foot_s, 3),
                                 round(vehicle_s, 3), round(stationary_s, 3), self.stop_count, self.n_in, reason,
                                 round(dwell_s - inferred_s, 3), inferred_s))

    # ------------------------------------------------------------------ state
    def copy(self) -> "Track":
        """Field by field (see DeviceState.copy)."""
        c = _new(Track)
        c.hotspot_id = self.hotspot_id
        c.phase = self.phase
        c.first_ms = self.first_ms
        c.firm_ms = self.firm_ms
        c.edge_in_ms = self.edge_in_ms
        c.last_in_ms = self.last_in_ms
        c.exit_since_ms = self.exit_since_ms
        c.after_in_ms = self.after_in_ms
        c.n_in = self.n_in
        c.n_pending = self.n_pending
        c.stop_count = self.stop_count
        c.stop = self.stop.copy()
        c.in_lat = self.in_lat
        c.in_lon = self.in_lon
        c.inferred_ms = self.inferred_ms
        c.lost = self.lost
        return c

    def to_list(self) -> list:
        return [self.hotspot_id, self.phase, self.first_ms, self.firm_ms, self.edge_in_ms, self.last_in_ms,
                self.exit_since_ms, self.after_in_ms, self.n_in, self.n_pending, self.stop_count,
                self.stop.to_list(), self.in_lat, self.in_lon, self.inferred_ms, self.lost]

    @classmethod
    def from_list(cls, v: list) -> "Track":
        tr = cls.__new__(cls)
        (tr.hotspot_id, tr.phase, tr.first_ms, tr.firm_ms, tr.edge_in_ms, tr.last_in_ms, tr.exit_since_ms,
         tr.after_in_ms, tr.n_in, tr.n_pending, tr.stop_count, stop) = v[:12]
        tr.stop = StopTracker.from_list(stop)
        # Device state version 1 wrote twelve fields: no position, nothing bridged, not lost.
        tr.in_lat, tr.in_lon, tr.inferred_ms, tr.lost = v[12:] if len(v) > 12 else (None, None, 0.0, False)
        return tr
