"""Every tunable of the patrol analytics, in one frozen dataclass with units in the names.

The defaults are DESIGN.md section 3 plus the choices docs/decisions.md
("Analytics core") explains. The live worker and `hotspot replay` build one
`ProcessingConfig` and hand it to every processor; nothing in processors/ reads
settings or the environment itself.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    # --- validation (DESIGN.md section 3)
    max_accuracy_m: float = 100.0
    """Pings reporting a worse accuracy are kept and annotated but never change state."""
    future_tolerance_s: float = 300.0
    """A fix time more than this ahead of its arrival time is rejected (future_timestamp)."""
    max_age_s: float = 7 * 86400.0
    """A fix time more than this before its arrival time is rejected (stale_timestamp)."""
    min_ts_ms: int = 946_684_800_000
    """Fix times before 2000-01-01 are a device clock fault (bad_timestamp), arrival time or not."""
    max_speed_mps: float = 70.0
    """Implied speed from the last accepted ping above this is a teleport (implied_speed)."""
    null_island_deg: float = 1e-6
    """|lat| and |lon| both below this is the (0, 0) no-fix placeholder (null_island)."""

    # --- order
    reorder_window_s: float = 10.0
    """Per device, a ping is held at most until a ping at least this much newer (event time) has
    arrived, or, for pings without an arrival time, until the device has been quiet this long."""
    unstamped_reorder_window_s: float = 600.0
    """The reorder window of pings without an arrival time (replay files, `hotspot pings send`): a row
    may come this far (in fix time) behind the device's newest and still be put in order. Files have
    no clock to bound a wait by and need no latency bound: ten rows of the sparsest common interval
    (60 s, handheld trackers), for files merged from exports or written by loggers that flush in
    batches. Rows further ahead than time_jump_s are held aside and move nothing (a jump), so a row
    moved up a file never makes others late either."""
    unstamped_reorder_rows: int = 16
    """A row without an arrival time is late only when it is both more than unstamped_reorder_window_s
    behind the device's newest fix and at least this many of the device's held rows are newer: a file
    reorders by rows, and a silence adds fix time without rows, so a row moved a few rows down a file
    across a silence is not lost. 16: as many rows as the device remembers released fix times
    (recent_ts_kept), and two overlapping moves of up to 8 rows (measured: a row moved 11 rows, 660 s,
    by two swaps at 60 s); 0: seconds only, as before."""
    reorder_hold_s: float = 0.25
    """A ping stamped with its arrival time is held at most this long in arrival time: released once
    the device's arrival clock (or the live worker's) is this far past its arrival. Pings from one
    device that overtake each other by less than this are put back in order; it bounds what the
    reorder window adds to the ping-to-event delay, whatever the device's reporting interval."""
    recent_ts_kept: int = 16
    """Released fix times remembered per device to tell a retransmitted duplicate from a straggler."""
    time_jump_s: float = 300.0
    """A ping whose fix time is further ahead of the device's newest fix than this (plus the arrival time
    that passed between them, for pings stamped on arrival) is provisional: it moves nothing until
    `time_jump_confirm_pings` pings agree with it, and is rejected (time_jump) once the old timeline
    has run on this long without reaching it. A ping this far behind is the start of a clock that went
    back: followed once confirmed the same way, else late. 300 s is the clock error the live path
    already accepts against arrival (future_tolerance_s) and the silence that ends a visit."""
    time_jump_confirm_pings: int = 2
    """Pings on a new timeline (the jumped one included) that confirm it: one bad row never does. Two,
    so that a device back from a silence longer than time_jump_s (replay has no arrival time to tell a
    silence from a jump) is followed from its second fix."""

    # --- geofence
    default_accuracy_m: float = 10.0
    """Accuracy assumed for pings that report none (GPX, AVL exports)."""
    edge_accuracy_factor: float = 1.5
    """A ping straddles a hot-spot edge when the edge is within this many reported accuracy radii."""

    # --- visits
    enter_confirm_s: float = 30.0
    """A candidate visit is confirmed by a firm inside fix this long after its first firm inside fix."""
    enter_confirm_uncertain_s: float = 120.0
    """...or by an unbroken run of inside fixes this long even if all are on the edge (poor accuracy, small hot spot)."""
    exit_confirm_s: float = 60.0
    signal_loss_s: float = 300.0
    gap_bridge_max_s: float = 900.0
    """A visit closed by signal loss goes on (same visit, the silence counted as inferred_s) when the
    device's next fix is inside the same hot spot at most this long after its last inside fix. 15 min is
    the dose a trial asks for (DOMAIN.md, Dosage): a bridge can claim at most one dose that nobody saw,
    while a phone in doze or a pocket in a stairwell, the silences this is for, come back within it."""
    gap_bridge_max_mps: float = 2.5
    """...and when the distance between the two fixes, less both accuracies, could be walked in the
    silence at this speed (foot_max_mps): an officer who drove off and back is not counted as present."""
    edge_credit_max_s: float = 30.0
    """Dwell credit for the unseen part of the interval across the entry and the exit ping (half of it, at most this)."""

    # --- stops
    stop_radius_m: float = 30.0
    stop_min_duration_s: float = 120.0
    stop_accuracy_allowance_m: float = 30.0
    """A ping still counts as within the stop radius when its accuracy circle (capped at this) reaches it."""
    stale_fix_gap_s: float = 60.0
    """A stray fix that ends a silence this long and is then repeated with exactly the same coordinates
    is the phone's cached fix sent again, one piece of evidence, not two: it does not end a stop. A
    real GPS never repeats coordinates to the last digit; hand-held devices resend their cached fix
    when they wake from doze, and a minute is the shortest doze interval in common use."""
    stop_max_speed_mps: float = 0.8
    """A device-reported speed above this means the device is moving, so not (or no longer) stopped."""

    # --- modes
    stationary_max_mps: float = 0.5
    foot_max_mps: float = 2.5
    vehicle_min_mps: float = 4.5
    mode_window_s: float = 30.0
    """Displacement speed (no trustworthy device speed) is taken over at least this span, to average GPS jitter out."""
    speed_trust_max_accuracy_m: float = 50.0
    """A device speed is trusted only on fixes at least this accurate."""
    speed_mismatch_mps: float = 3.0
    """A device speed is distrusted when the displacement (less both accuracies) shows it this much faster."""
    to_vehicle_confirm_s: float = 20.0
    to_foot_confirm_s: float = 20.0
    vehicle_to_foot_confirm_s: float = 30.0
    to_stationary_confirm_s: float = 30.0
    vehicle_wait_max_s: float = 120.0
    """A vehicle standing still for less than this (lights, junctions, traffic) stays a vehicle."""
    distance_jitter_m: float = 5.0
    """Distance travelled is added only once the device is this far (or its accuracy, up to 30 m) from the last counted point."""

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and (not math.isfinite(v) or v < 0):
                raise ValueError(f"{f.name} must be a finite, non-negative number, not {v!r}")
        if not self.foot_max_mps < self.vehicle_min_mps:
            raise ValueError("foot_max_mps must be below vehicle_min_mps (the band between them is the hysteresis)")
        if not self.stationary_max_mps < self.foot_max_mps:
            raise ValueError("stationary_max_mps must be below foot_max_mps")
        if not self.reorder_hold_s <= self.reorder_window_s:
            raise ValueError("reorder_hold_s must not be longer than reorder_window_s")
        if not self.reorder_window_s < self.signal_loss_s:
            raise ValueError("reorder_window_s must be shorter than signal_loss_s")
        if not self.exit_confirm_s < self.signal_loss_s:
            raise ValueError("exit_confirm_s must be shorter than signal_loss_s")
        if self.time_jump_confirm_pings < 2:
            raise ValueError("time_jump_confirm_pings must be at least 2 (the jumped ping and one that agrees)")
        if not self.reorder_window_s < self.time_jump_s:
            raise ValueError("reorder_window_s must be shorter than time_jump_s")
        if self.recent_ts_kept < 1:
            raise ValueError("recent_ts_kept must be at least 1")

    def replace(self, **changes) -> "ProcessingConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> "ProcessingConfig":
        """Build from NAME=VALUE strings (the replay command's --param); raises ValueError naming the bad one."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, float | int] = {}
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            name = name.strip()
            if not sep or name not in known:
                raise ValueError(f"unknown parameter {name!r}; known: {', '.join(sorted(known))}")
            try:
                values[name] = int(raw) if known[name].type in ("int", int) else float(raw)
            except ValueError:
                raise ValueError(f"parameter {name} needs a number, not {raw!r}") from None
        return cls(**values)

    def as_dict(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
