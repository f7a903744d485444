"""Ping filters: named predicates, each returning a reason code or None.

Two kinds. `check_ping` needs only the ping (and its arrival time): impossible
coordinates, the (0, 0) no-fix placeholder, clocks never set, nonsense
accuracy, fix times too far ahead of or behind arrival. `check_in_order` (the
teleport filter) needs the device's last accepted fix, so it runs in event-time
order after the reorder window (processors.reorder) has put the pings in order.

Accuracy worse than `max_accuracy_m` is not a rejection: such pings are kept,
annotated `low_accuracy`, and ignored by the state machines.
"""
from __future__ import annotations

import math

from processors.config import ProcessingConfig
from processors.geo import M_PER_DEG, M_PER_DEG_LAT, RAD
from processors.model import (BAD_ACCURACY, BAD_COORDINATES, BAD_TIMESTAMP, FUTURE_TIMESTAMP, IMPLIED_SPEED,
                              NULL_ISLAND, STALE_TIMESTAMP, Ping)

_isfinite = math.isfinite


def check_ping(p: Ping, cfg: ProcessingConfig) -> str | None:
    """The first stateless filter the ping fails, or None."""
    lat, lon = p.lat, p.lon
    if not (_isfinite(lat) and _isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return BAD_COORDINATES
    if abs(lat) < cfg.null_island_deg and abs(lon) < cfg.null_island_deg:
        return NULL_ISLAND
    t = p.ts_ms
    if t < cfg.min_ts_ms:
        return BAD_TIMESTAMP
    acc = p.accuracy_m
    if acc is not None and not (acc >= 0.0 and _isfinite(acc)):
        return BAD_ACCURACY
    received = p.received_ms
    if received is not None:
        if t > received + cfg.future_tolerance_s * 1000.0:
            return FUTURE_TIMESTAMP
        if t < received - cfg.max_age_s * 1000.0:
            return STALE_TIMESTAMP
    return None


def implied_speed_mps(a_ts_ms: int, a_lat: float, a_lon: float, a_acc_m: float,
                      b: Ping) -> float:
    """Lower bound of the speed needed to get from fix a to ping b: both accuracy radii are given back first.

    Giving the accuracies back keeps a jittery but honest fix a second after the
    last one from looking like a teleport, while a wild fix hundreds of metres
    off that still claims good accuracy does not get that benefit.
    """
    return _implied_speed(a_ts_ms, a_lat, a_lon, a_acc_m, b.ts_ms, b.lat, b.lon, b.accuracy_m or 0.0)


def _implied_speed(a_ts_ms: int, a_lat: float, a_lon: float, a_acc_m: float,
                   b_ts_ms: int, b_lat: float, b_lon: float, b_acc_m: float) -> float:
    dt_ms = b_ts_ms - a_ts_ms
    if dt_ms <= 0:
        return math.inf
    # processors.geo.distance_m, inlined: this runs for every fix.
    dy = (b_lat - a_lat) * M_PER_DEG_LAT
    dx = (b_lon - a_lon) * M_PER_DEG * math.cos((a_lat + b_lat) * (0.5 * RAD))
    d = math.sqrt(dx * dx + dy * dy) - a_acc_m - b_acc_m
    return d * 1000.0 / dt_ms if d > 0.0 else 0.0


def check_in_order(st, p: Ping, cfg: ProcessingConfig) -> str | None:
    """The teleport filter, on fixes in event-time order; keeps `st.anchor` / `st.suspect` (a DeviceState).

    The anchor is the last accepted fix of usable accuracy. A fix too fast from
    it is rejected and remembered as the suspect; if the next fix is too fast
    from the anchor as well but consistent with the suspect, two fixes agree
    against one: the anchor was the outlier (a wild first fix, say), so the new
    fix is accepted and becomes the anchor. Without that, one bad anchor would
    reject a device's track for good.

    The other way round, an outlier can be accepted: one 150-600 m off that claims
    good accuracy from a fix seconds before can be within the speed bound once both
    accuracies are given back. The next good fix then looks too fast from it; if it
    is consistent with the anchor before it (`st.before`), and further from it than
    the anchor was, the outlier was a spike between two fixes that agree, and the
    good fix is accepted, not lost. (Without "further": an outlier right after two
    good fixes is often within the bound from the earlier of them, twice as long
    ago, and was taken for the good fix, the good anchor for the spike.)
    """
    acc = p.accuracy_m
    good = acc is None or acc <= cfg.max_accuracy_m
    fix = (p.ts_ms, p.lat, p.lon, acc or 0.0)
    anchor = st.anchor
    if anchor is not None and p.ts_ms <= anchor[0]:
        # Fixes come out of the reorder window in time order unless the device's clock went back
        # and the window followed it: speeds across that step mean nothing, so start afresh.
        anchor = st.anchor = st.suspect = st.before = None
    if anchor is None or implied_speed_mps(anchor[0], anchor[1], anchor[2], anchor[3], p) <= cfg.max_speed_mps:
        if good:
            st.before = anchor
            st.anchor = fix
            st.suspect = None
        return None
    before = st.before
    if good and before is not None:
        # Which of the two that disagree is the odd one? The one further (in speed) from the fix before
        # both: p may be within the bound from `before` only because twice the time has passed, while
        # the anchor sat right next to it (an outlier after two good fixes, not a spike before this).
        from_before = implied_speed_mps(before[0], before[1], before[2], before[3], p)
        if from_before <= cfg.max_speed_mps and from_before < _implied_speed(*before, *anchor):
            st.anchor = fix                 # the anchor was a spike; `before` stays the last fix before it
            st.suspect = None
            return None
    suspect = st.suspect
    if good and suspect is not None and \
            implied_speed_mps(suspect[0], suspect[1], suspect[2], suspect[3], p) <= cfg.max_speed_mps:
        st.before = suspect
        st.anchor = fix
        st.suspect = None
        return None
    if good:
        st.suspect = fix
    return IMPLIED_SPEED
