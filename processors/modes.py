"""Mode of travel of one device: stationary, foot, vehicle, or unknown, as closed segments.

Owns the per-device mode state machine and the recent mode timeline visits
read their foot/vehicle/stationary seconds from. Every accepted ping with a
usable accuracy goes through `ModeTracker.update`, inside hot spots or not.

The rule (docs/decisions.md, "Analytics core"):

* Speed evidence per ping: the device's own speed when it is trustworthy
  (present, non-negative, on a fix at least `speed_trust_max_accuracy_m`
  accurate, and not contradicted by the displacement), otherwise the
  displacement speed over at least `mode_window_s` back (or over the last
  fixes if they already show a move much larger than their accuracy) so GPS
  jitter averages out instead of looking like walking.
* No evidence (docs/decisions.md, "Modes: wander is no evidence, switches
  dated by dead reckoning"): a displacement
  within the two fixes' errors combined (sqrt(acc1^2 + acc2^2)) proves no
  movement, and one whose window reaches back before a pending run began mixes
  the old mode into it; neither starts a run nor breaks one.
* Evidence classes: stationary <= `stationary_max_mps` < foot <=
  `foot_max_mps` < ambiguous < `vehicle_min_mps` <= vehicle. Ambiguous evidence
  keeps foot or vehicle as they are (the hysteresis band).
* A switch needs a run of evidence for the new mode lasting a confirmation
  time that depends on the pair (a vehicle must stand still for
  `vehicle_wait_max_s` before it counts as stationary: lights and junctions
  stay vehicle), over two fixes, or one interval twice that long (sparse
  devices; but standing shown only by displacement, which is the least
  distance covered and so cannot prove standing in one interval, takes two
  fixes). A confirmed switch is backdated to the start of the run, so the
  smoothing delays the decision, not the boundary; a run to vehicle also
  takes the ambiguous evidence just before it. Inside the interval before
  the run's first fix the switch is dated by dead reckoning: slowing down,
  the device went on at its last speed for the step since the last fix;
  speeding up, it covered the step at its new speed; when the step is lost in
  the fixes' errors, a device speed dates it halfway.
* A silence of `signal_loss_s` closes the segment at the last fix. The silence
  is an `unknown` segment unless it is bridged (docs/decisions.md, "Modes: a
  silence is bridged by the modes on either side"). A silence of at most
  `gap_bridge_max_s` waits for the first mode decided after it; the straight
  step across it (less both fixes' errors in quadrature) is what the device
  must have covered in it. The same mode on both sides, with the step covered
  at that mode's pace (stationary: at most `stationary_max_mps`; foot: above
  that, at most `foot_max_mps`; vehicle: more than `foot_max_mps`, which nobody
  walks for minutes): the silence is that mode, part of the segment after it.
  Walking on both sides but back near where it fell silent says nothing of
  the silence (a walk round, or a stand: a phone dozes when still), so it is
  not counted as foot.
  Standing on one side and moving on the other: dead reckoning, as for a
  switch between fixes; the step was covered at the moving side's speed, next
  to it, and the rest of the silence was spent standing. Anything else, or a
  step that cannot be covered in the silence, stays unknown. The first mode
  after a silence is otherwise backdated to the first fix after it.
* Distance counts only moves beyond the jitter radius, so a phone lying still
  does not accumulate metres.
"""
from __future__ import annotations

import math
from itertools import chain

from processors.config import ProcessingConfig
from processors.geo import M_PER_DEG, M_PER_DEG_LAT, RAD
from processors.model import FOOT, STATIONARY, UNKNOWN, VEHICLE, ModeSegment, segment_id

# Internal codes; AMBIGUOUS is evidence only, never a mode.
U, S, F, V, AMBIGUOUS, NONE = 0, 1, 2, 3, 4, 5   # NONE: a fix that is no evidence of movement or of standing
MODE_NAMES = (UNKNOWN, STATIONARY, FOOT, VEHICLE)

_WINDOW_MAX_FIXES = 16

_new = object.__new__
_cos, _sqrt = math.cos, math.sqrt


class ModeTracker:
    __slots__ = ("mode", "fresh", "seg_start_ms", "seg_dist_m", "in_gap",
                 "cand", "cand_start_ms", "cand_pings", "cand_dist_m", "amb_start_ms",
                 "last_ms", "last_lat", "last_lon", "last_acc_m",
                 "anchor_lat", "anchor_lon", "window", "timeline", "cand_lead_ms", "last_v_mps",
                 "bridge_mode", "bridge_from_ms", "bridge_v_mps", "bridge_step_m")

    def __init__(self) -> None:
        self.mode = U
        self.fresh = False            # the current segment's mode is still undecided (backdated when decided)
        self.seg_start_ms: int | None = None
        self.seg_dist_m = 0.0
        self.in_gap = False           # closed by a silence; the unknown segment ends at the next fix
        # A silence that may be bridged: the mode before it and the speed evidence of its last fix (U
        # and -1: none); once a fix has ended it, where it began and the step across it, until the first
        # mode after it is decided (_switch).
        self.bridge_mode = U
        self.bridge_v_mps = -1.0
        self.bridge_from_ms: int | None = None
        self.bridge_step_m = 0.0
        self.cand = U                 # mode the current evidence run argues for (U: none)
        self.cand_start_ms = 0
        self.cand_lead_ms = 0         # how far after cand_start_ms the new mode is dated once confirmed
        self.cand_pings = 0
        self.cand_dist_m = 0.0
        self.amb_start_ms: int | None = None   # start of the run of ambiguous evidence just before, if any
        self.last_ms: int | None = None
        self.last_lat = self.last_lon = self.last_acc_m = 0.0
        self.last_v_mps = -1.0        # the speed evidence of the last fix (device or displacement; -1: none)
        self.anchor_lat = self.anchor_lon = 0.0
        # Tuples, replaced rather than changed, so that copies can share them (DeviceState.copy).
        # The window is flat, t_ms, lat, lon, acc_m of each fix in turn: no tuple per fix to make.
        self.window: tuple[int | float, ...] = ()         # recent fixes, oldest first
        self.timeline: tuple[tuple[int, int], ...] = ()   # (start_ms, mode) of recent segments

    # ------------------------------------------------------------------ per ping
    def update(self, device_id: str, t: int, lat: float, lon: float, acc_m: float, device_speed_mps: float | None,
               cfg: ProcessingConfig, events: list) -> float:
        """Take one fix in time order; returns the device's trusted speed at this fix (m/s), or -1 if none."""
        last_ms = self.last_ms
        if last_ms is None:
            self._begin(device_id, t, lat, lon, acc_m, cfg, events)
            return -1.0
        kx = M_PER_DEG * _cos(lat * RAD)   # local metres per degree (one cosine per fix)
        # Distance travelled, without the jitter of a device standing still.
        inc = 0.0
        jitter_m = acc_m if acc_m < 30.0 else 30.0
        if jitter_m < cfg.distance_jitter_m:
            jitter_m = cfg.distance_jitter_m
        dx = (lon - self.anchor_lon) * kx
        dy = (lat - self.anchor_lat) * M_PER_DEG_LAT
        d2 = dx * dx + dy * dy
        if d2 > jitter_m * jitter_m:
            inc = _sqrt(d2)
            self.seg_dist_m += inc
            self.anchor_lat = lat
            self.anchor_lon = lon
        # Speed evidence: the device's speed if the displacement since the last fix (less both
        # accuracies; only worked out when there is a plausible device speed to check) allows it.
        v = device_speed_mps
        trusted = False
        since_ms = t
        if v is not None and 0.0 <= v <= cfg.max_speed_mps and acc_m <= cfg.speed_trust_max_accuracy_m:
            dx = (lon - self.last_lon) * kx
            dy = (lat - self.last_lat) * M_PER_DEG_LAT
            lower_mps = (_sqrt(dx * dx + dy * dy) - acc_m - self.last_acc_m) / ((t - last_ms) / 1000.0)
            if lower_mps < 0.0:
                lower_mps = 0.0
            trusted = lower_mps <= v + cfg.speed_mismatch_mps
        if trusted:
            moving_mps = v
        else:
            # Displacement speaks for the interval before this fix, not for whether the device is
            # moving at it: leave that to the stop detector's positions.
            v, within_error, since_ms = self._displacement_speed(t, lat, lon, acc_m, kx, cfg)
            moving_mps = -1.0
            if within_error and v > cfg.stationary_max_mps:
                # A displacement no larger than the two fixes' errors combined proves no movement:
                # GPS wander of a phone lying still looks like walking over 30 s (at 25 m accuracy,
                # 30-40 m). It is no evidence either way, so it neither starts a run towards foot nor
                # breaks a run towards stationary that device speeds are making.
                v = -1.0
        # Add this fix; keep at least two fixes, dropping those older than twice the window
        # and those beyond the cap (the new fix is never among the dropped ones).
        window = self.window
        horizon = t - 2000.0 * cfg.mode_window_s
        n = len(window) // 4 + 1
        k = 0
        while n - k > 2 and (window[4 * k] < horizon or n - k > _WINDOW_MAX_FIXES):
            k += 1
        self.window = window[4 * k:] + (t, lat, lon, acc_m)
        if v < 0.0:
            e = NONE
        elif v <= cfg.stationary_max_mps:
            e = S
        elif v <= cfg.foot_max_mps:
            e = F
        elif v >= cfg.vehicle_min_mps:
            e = V
        else:
            e = AMBIGUOUS
        if e == self.mode and not trusted and self.cand in (S, F) \
                and since_ms < self.cand_start_ms + self.cand_lead_ms:
            # Displacement averages over its window; one that reaches back before the pending run
            # began mixes the old mode into it (the walk before a stop, the stop before a walk), so it
            # cannot say the run was wrong. Device speeds, and windows inside the run, still can.
            e = NONE
        if e != NONE and (e != self.mode or self.cand != U or self.amb_start_ms is not None):
            # The distance covered since the last fix, less the fixes' errors in quadrature (the
            # expected true step): with a speed, it dates a stop or a start inside the interval.
            dx = (lon - self.last_lon) * kx
            dy = (lat - self.last_lat) * M_PER_DEG_LAT
            step2 = dx * dx + dy * dy - acc_m * acc_m - self.last_acc_m * self.last_acc_m
            self._evidence(device_id, e, t, inc, cfg, events, trusted, v,
                           _sqrt(step2) if step2 > 0.0 else -1.0)
        self.last_v_mps = v
        self.last_ms = t
        self.last_lat = lat
        self.last_lon = lon
        self.last_acc_m = acc_m
        return moving_mps

    def _begin(self, device_id: str, t: int, lat: float, lon: float, acc_m: float, cfg: ProcessingConfig,
               events: list) -> None:
        """First fix ever, or the first after a silence (an unknown segment, unless it may be bridged)."""
        if self.in_gap and self.seg_start_ms is not None and t > self.seg_start_ms:
            gap_start = self.seg_start_ms
            if self.bridge_mode != U and t - gap_start <= cfg.gap_bridge_max_s * 1000.0:
                # Decided by the first mode after it (_switch). The last fix before it is still last_*.
                kx = M_PER_DEG * _cos(lat * RAD)
                dx = (lon - self.last_lon) * kx
                dy = (lat - self.last_lat) * M_PER_DEG_LAT
                step2 = dx * dx + dy * dy - acc_m * acc_m - self.last_acc_m * self.last_acc_m
                self.bridge_from_ms, self.bridge_step_m = gap_start, _sqrt(step2) if step2 > 0.0 else 0.0
            else:
                events.append(ModeSegment(segment_id(device_id, gap_start), device_id, gap_start, t, UNKNOWN, 0.0))
                self.bridge_mode, self.bridge_v_mps = U, -1.0
        else:
            self.bridge_mode, self.bridge_v_mps = U, -1.0
        self.in_gap = False
        self.mode, self.fresh = U, True
        self.seg_start_ms, self.seg_dist_m = t, 0.0
        self.cand, self.cand_pings, self.cand_dist_m = U, 0, 0.0
        self.amb_start_ms = None
        self.last_ms, self.last_lat, self.last_lon, self.last_acc_m = t, lat, lon, acc_m
        self.last_v_mps = -1.0
        self.anchor_lat, self.anchor_lon = lat, lon
        self.window = (t, lat, lon, acc_m)
        self._mark(t, U)

    def _displacement_speed(self, t: int, lat: float, lon: float, acc_m: float, kx: float,
                            cfg: ProcessingConfig) -> tuple[float, bool, int]:
        """Speed from the displacement since the newest fix at least mode_window_s old (or clearly far),
        whether that displacement lies within the two fixes' errors combined (sqrt(acc1^2 + acc2^2)),
        and the time of that older fix (where the window begins)."""
        window_ms = cfg.mode_window_s * 1000.0
        tj = t
        d = 0.0
        aj = acc_m
        w = self.window
        for j in range(len(w) - 4, -1, -4):     # newest first
            tj, la, lo, aj = w[j], w[j + 1], w[j + 2], w[j + 3]
            dx = (lon - lo) * kx
            dy = (lat - la) * M_PER_DEG_LAT
            d = math.sqrt(dx * dx + dy * dy)
            if t - tj >= window_ms or d >= 4.0 * (acc_m + aj):
                break
        return (d * 1000.0 / (t - tj) if t > tj else 0.0), d * d <= acc_m * acc_m + aj * aj, tj

    def _evidence(self, device_id: str, e: int, t: int, inc: float, cfg: ProcessingConfig, events: list,
                  instant: bool = False, v: float = -1.0, step_m: float = 0.0) -> None:
        m = self.mode
        if self.cand != U:
            self.cand_dist_m += inc
        if e == m:
            self.cand, self.cand_pings, self.cand_dist_m = U, 0, 0.0
            self.amb_start_ms = None
            return
        if e == AMBIGUOUS:
            # Moving, but inside the hysteresis band: neither for nor against foot or vehicle,
            # so a run towards either goes on; it does rule out standing still.
            if self.amb_start_ms is None:
                self.amb_start_ms = self.last_ms
            if self.cand == S:
                self.cand, self.cand_pings, self.cand_dist_m = U, 0, 0.0
            return
        if self.cand != e:
            # The run starts with the interval this evidence describes; a vehicle run also takes
            # the ambiguous stretch just before it (nobody walks at 2.5-4.5 m/s for long: that
            # was the vehicle pulling away, or driving through junctions between sparse fixes).
            start = self.last_ms
            if e == V and self.amb_start_ms is not None:
                start = self.amb_start_ms
            self.cand, self.cand_start_ms, self.cand_pings, self.cand_dist_m = e, start, 0, inc
            # When, inside the interval before this fix, did the new mode begin? Dating it from the
            # fix before gave each stop half an interval of the walk that arrived at it (at 60 s, 4.7%
            # of foot time); the step covered and the speeds on either side say where (_lead_ms). A
            # vehicle run that took the ambiguous stretch before it keeps that start.
            self.cand_lead_ms = self._lead_ms(e, t, start, instant, v, step_m, cfg)
        self.amb_start_ms = None
        self.cand_pings += 1
        if self.fresh:
            self._switch(device_id, e, events, cfg, v)
            return
        if m == V:
            need_s = cfg.vehicle_wait_max_s if e == S else cfg.vehicle_to_foot_confirm_s
        elif e == V:
            need_s = cfg.to_vehicle_confirm_s
        elif e == F:
            need_s = cfg.to_foot_confirm_s
        else:
            need_s = cfg.to_stationary_confirm_s
        # Two fixes of evidence, or one interval twice as long as the confirmation (sparse devices). A
        # displacement is the least distance covered, so one interval of it can show moving but not
        # standing (a walker turning back on himself covers little ground): standing on displacement
        # alone takes two fixes.
        run_ms = t - self.cand_start_ms
        need_ms = need_s * 1000.0
        if run_ms >= need_ms and (self.cand_pings >= 2 or (run_ms >= 2.0 * need_ms and (instant or e != S))):
            self._switch(device_id, e, events, cfg, v)

    def _lead_ms(self, e: int, t: int, start: int, instant: bool, v: float, step_m: float,
                 cfg: ProcessingConfig) -> int:
        """How far into the interval [start, t] before this fix the switch to mode e happened.

        Dead reckoning from the step since the last fix (less the fixes' errors): slowing down, the
        device went on at its last speed v_last for step / v_last, then changed (a stop, or a walk
        after a drive); speeding up, it covered the step at its new speed v, having set off step / v
        before this fix. With the step lost in the errors there is nothing to reckon with: a device
        speed (an instant) dates a stop or a walk halfway, displacement (which speaks for the whole
        interval) and vehicle runs at the interval's start."""
        if start != self.last_ms or e == AMBIGUOUS:
            return 0
        span = t - start
        last_v = self.last_v_mps
        if step_m < 0.0:
            pass                    # the step is lost in the fixes' errors: nothing to reckon with
        elif last_v > cfg.stationary_max_mps and last_v > v:
            return int(min(span, 1000.0 * step_m / last_v))
        elif e != S and v > cfg.stationary_max_mps:
            return int(max(0.0, span - 1000.0 * step_m / v))
        if e == V:
            return 0
        return span // 2 if instant else 0

    def _switch(self, device_id: str, new: int, events: list, cfg: ProcessingConfig, v: float) -> None:
        """Switch to mode `new`, on evidence of speed v (m/s; -1: none)."""
        tb = self.cand_start_ms + self.cand_lead_ms
        if self.fresh or tb <= self.seg_start_ms:
            # The whole current segment is the new mode.
            self.fresh = False
            self.mode = new
            if self.bridge_from_ms is not None:
                self._bridge(device_id, new, v, cfg, events)
            self._mark(self.seg_start_ms, new)
        else:
            events.append(ModeSegment(segment_id(device_id, self.seg_start_ms), device_id, self.seg_start_ms, tb,
                                      MODE_NAMES[self.mode], round(self.seg_dist_m - self.cand_dist_m, 1)))
            self.seg_start_ms, self.seg_dist_m, self.mode = tb, self.cand_dist_m, new
            self._mark(tb, new)
        self.cand, self.cand_pings, self.cand_dist_m = U, 0, 0.0

    def _bridge(self, device_id: str, after: int, v_after: float, cfg: ProcessingConfig, events: list) -> None:
        """The first mode after a silence is decided (`after`, the current segment, which starts at the
        fix that ended the silence): say how the silence was spent (see the module's docstring).

        The part spent in the mode after joins the current segment (it starts earlier); the part spent in
        the mode before, or the whole silence when neither explains it, is a segment of its own. The
        silence adds no distance: nobody saw the path."""
        a, b = self.bridge_from_ms, self.seg_start_ms
        before, v_before, step_m = self.bridge_mode, self.bridge_v_mps, self.bridge_step_m
        self.bridge_mode, self.bridge_v_mps, self.bridge_from_ms, self.bridge_step_m = U, -1.0, None, 0.0
        gap_s = (b - a) / 1000.0
        v = step_m / gap_s
        split = -1                                       # where the mode after began (-1: not bridged)
        if before == after:
            if (v <= cfg.stationary_max_mps if after == S else
                    cfg.stationary_max_mps < v <= cfg.foot_max_mps if after == F else cfg.foot_max_mps < v <= cfg.max_speed_mps):
                split = a
        elif before == S and v_after > cfg.stationary_max_mps:
            moving_s = step_m / v_after                  # set off at the speed it was then seen moving at
            if moving_s <= gap_s:
                split = int(b - 1000.0 * moving_s)
        elif after == S and before != U and v_before > cfg.stationary_max_mps:
            moving_s = step_m / v_before                 # went on at its last speed, then stood
            if moving_s <= gap_s:
                split = int(a + 1000.0 * moving_s)
        if split < 0:
            events.append(ModeSegment(segment_id(device_id, a), device_id, a, b, UNKNOWN, 0.0))
            return
        if split > a:
            events.append(ModeSegment(segment_id(device_id, a), device_id, a, split, MODE_NAMES[before],
                                      0.0 if before == S else round(step_m, 1)))
        self.seg_start_ms = split
        self.timeline = tuple(e for e in self.timeline if e[0] < a) + (((a, before),) if split > a else ())

    def _unbridged(self, device_id: str, events: list) -> None:
        """The silence awaiting the mode after it is not bridged after all: an unknown segment."""
        a, b = self.bridge_from_ms, self.seg_start_ms
        events.append(ModeSegment(segment_id(device_id, a), device_id, a, b, UNKNOWN, 0.0))
        self.bridge_mode, self.bridge_v_mps, self.bridge_from_ms, self.bridge_step_m = U, -1.0, None, 0.0

    def _mark(self, start_ms: int, mode: int) -> None:
        tl = self.timeline
        if tl and tl[-1][0] >= start_ms:
            self.timeline = tl[:-1] + ((tl[-1][0], mode),)
        else:
            self.timeline = tl + ((start_ms, mode),)

    # ------------------------------------------------------------------ closing
    def close(self, device_id: str, events: list, *, gap: bool) -> None:
        """Close the current segment at the last fix: for a silence (gap=True) or the end of the data."""
        if self.last_ms is None:
            return
        end = self.last_ms
        if self.bridge_from_ms is not None:
            self._unbridged(device_id, events)      # silent again, or the end, before a mode was decided
        mode = U if self.fresh else self.mode
        if self.seg_start_ms is not None and end > self.seg_start_ms:
            events.append(ModeSegment(segment_id(device_id, self.seg_start_ms), device_id, self.seg_start_ms, end,
                                      MODE_NAMES[mode], round(self.seg_dist_m, 1) if mode != U else 0.0))
        self.bridge_mode, self.bridge_v_mps = (mode, self.last_v_mps) if gap else (U, -1.0)
        self.mode, self.fresh = U, False
        self.seg_start_ms, self.seg_dist_m = end, 0.0
        self.cand, self.cand_pings, self.cand_dist_m = U, 0, 0.0
        self.amb_start_ms = None
        self.last_ms = None
        self.window = ()
        self.in_gap = gap
        self._mark(end, U)

    # ------------------------------------------------------------------ timeline
    def seconds(self, a_ms: float, b_ms: float) -> tuple[float, float, float]:
        """(foot_s, vehicle_s, stationary_s) within [a_ms, b_ms]; the open segment counts as its current mode."""
        foot = vehicle = stationary = 0.0
        tl = self.timeline
        for k, (start, mode) in enumerate(tl):
            end = tl[k + 1][0] if k + 1 < len(tl) else b_ms
            lo, hi = max(start, a_ms), min(end, b_ms)
            if hi <= lo:
                continue
            if mode == F:
                foot += hi - lo
            elif mode == V:
                vehicle += hi - lo
            elif mode == S:
                stationary += hi - lo
        return foot / 1000.0, vehicle / 1000.0, stationary / 1000.0

    def prune(self, keep_from_ms: float) -> None:
        """Forget segments that ended before keep_from_ms (no open or future visit can reach back that far)."""
        tl = self.timeline
        k = 0
        while k + 1 < len(tl) and tl[k + 1][0] <= keep_from_ms:
            k += 1
        if k:
            self.timeline = tl[k:]

    # ------------------------------------------------------------------ state
    def copy(self) -> "ModeTracker":
        """Field by field (see DeviceState.copy); the window and timeline are immutable, so shared."""
        c = _new(ModeTracker)
        c.mode = self.mode
        c.fresh = self.fresh
        c.seg_start_ms = self.seg_start_ms
        c.seg_dist_m = self.seg_dist_m
        c.in_gap = self.in_gap
        c.cand = self.cand
        c.cand_start_ms = self.cand_start_ms
        c.cand_lead_ms = self.cand_lead_ms
        c.last_v_mps = self.last_v_mps
        c.bridge_mode = self.bridge_mode
        c.bridge_v_mps = self.bridge_v_mps
        c.bridge_from_ms = self.bridge_from_ms
        c.bridge_step_m = self.bridge_step_m
        c.cand_pings = self.cand_pings
        c.cand_dist_m = self.cand_dist_m
        c.amb_start_ms = self.amb_start_ms
        c.last_ms = self.last_ms
        c.last_lat = self.last_lat
        c.last_lon = self.last_lon
        c.last_acc_m = self.last_acc_m
        c.anchor_lat = self.anchor_lat
        c.anchor_lon = self.anchor_lon
        c.window = self.window
        c.timeline = self.timeline
        return c

    def to_list(self) -> list:
        return [self.mode, self.fresh, self.seg_start_ms, self.seg_dist_m, self.in_gap,
                self.cand, self.cand_start_ms, self.cand_pings, self.cand_dist_m, self.amb_start_ms,
                self.last_ms, self.last_lat, self.last_lon, self.last_acc_m,
                self.anchor_lat, self.anchor_lon,
                [self.window[j:j + 4] for j in range(0, len(self.window), 4)],   # [t, lat, lon, acc] per fix
                self.timeline,   # (orjson writes tuples as arrays)
                self.cand_lead_ms, self.last_v_mps,
                self.bridge_mode, self.bridge_v_mps, self.bridge_from_ms, self.bridge_step_m]

    @classmethod
    def from_list(cls, v: list) -> "ModeTracker":
        m = cls.__new__(cls)
        (m.mode, m.fresh, m.seg_start_ms, m.seg_dist_m, m.in_gap,
         m.cand, m.cand_start_ms, m.cand_pings, m.cand_dist_m, m.amb_start_ms,
         m.last_ms, m.last_lat, m.last_lon, m.last_acc_m,
         m.anchor_lat, m.anchor_lon, window, timeline) = v[:18]
        m.cand_lead_ms = v[18] if len(v) > 18 else 0     # (device state version 2 and before: none)
        m.last_v_mps = v[19] if len(v) > 19 else -1.0    # (device state version 3 and before: none)
        # (device state version 4 and before: no silence awaiting a bridge; one closed by a silence
        # stays unknown, as it would have then)
        m.bridge_mode, m.bridge_v_mps, m.bridge_from_ms, m.bridge_step_m = v[20:24] if len(v) > 23 else \
            (U, -1.0, None, 0.0)
        m.window = tuple(chain.from_iterable(window))
        m.timeline = tuple(map(tuple, timeline))
        return m
