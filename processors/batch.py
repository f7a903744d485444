"""The analytics' entry points: the live worker and `hotspot replay` call exactly these.

API (all pure: no I/O, no clock; time comes from the pings or from `now_ms`):

    process_batch(states: Mapping[str, DeviceState], pings: Sequence[Ping],
                  index: HotspotIndex, config: ProcessingConfig) -> BatchResult
        Pings in arrival order, any mix of devices. Returns the new states of
        the devices the batch touched (the input objects are not modified), the
        events, the rejected pings with their reason codes, and the accepted
        pings annotated with the hot spots containing them.

    expire(states, now_ms: int, index, config) -> BatchResult
        For the live timer. `now_ms` is the arrival clock (the gateway's
        `received_ms`). Releases the held pings that have served their
        `reorder_hold_s` by then, flushes the reorder buffer of devices quiet
        for `reorder_window_s` (and rejects the pings they hold aside as a
        possible time jump that nothing confirmed, as `finish` does), and closes the visits of devices quiet for
        `signal_loss_s` (end_reason signal_lost, at the last inside fix).
        `DeviceState.deadline_ms(config)` says when a device will next need it.

    open_visits(states) -> list[VisitProgress]
        Each open visit's dwell so far (the live worker's progress rows).

    finish(states, index, config) -> BatchResult
        End of the data (replay): releases every buffer and closes every open
        visit with end_reason end_of_data. Open visits never vanish.

    BatchResult(states, events, rejected, accepted, causes)
        states:   dict device_id -> DeviceState, only those that changed;
                  persist with `state.to_bytes()`, restore with `DeviceState.from_bytes`.
        events:   VisitStarted, VisitEnded, StopStarted, StopEnded, ModeSegment
                  (processors.model), each with a stable `event_id`, in event
                  order per device.
        rejected: RejectedPing(ping, reason), reason one of processors.model.REASONS.
        accepted: AcceptedPing(ping, hotspot_ids, low_accuracy), in event order per device.
        causes:   beside each event, the fix whose arrival brought it about, or
                  None when silence did (signal loss seen by `expire`, end of
                  data): what ping-to-event latency is measured from.

Determinism: every state transition is a function of one device's pings in
event-time order, and the reorder window decides that order from the pings
alone, so the same pings give the same events per device whatever the batch
boundaries, the interleaving of devices, a shuffle within the window, or a
restart from serialised state. The live timer is the only exception: after it
has released a quiet device's buffer, an older ping is `late`; and it judges
signal loss on the arrival clock, so a backlog delivered more than
`signal_loss_s` late finds its visit already closed (`signal_lost`).

Per batch: stateless checks and admission per ping; release and the teleport
filter per device; ONE vectorised geofence query for every released fix of
the batch; then the per-fix state machines, the only per-ping Python left.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from typing import Iterable, Mapping, Sequence

import numpy as np

from processors.config import ProcessingConfig
from processors.device import DeviceState, close_all, step
from processors.geofence import HotspotIndex
from processors.model import (END_OF_DATA, END_SIGNAL_LOST, LATE, TIME_JUMP, AcceptedPing, Event, Ping, RejectedPing,
                              VisitProgress)
from processors.reorder import admit, hold_expired, release
from processors.validation import check_in_order, check_ping

_ACC, _LAT, _LON, _TS = (attrgetter(a) for a in ("accuracy_m", "lat", "lon", "ts_ms"))
# AcceptedPing from a (ping, hotspot_ids, low_accuracy) tuple without the Python-level
# NamedTuple constructor: one per accepted ping, so it is built in C through map().
_accepted = partial(tuple.__new__, AcceptedPing)

__all__ = ["BatchResult", "process_batch", "expire", "finish", "open_visits", "DeviceState", "ProcessingConfig", "HotspotIndex"]


@dataclass
class BatchResult:
    states: dict[str, DeviceState] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    rejected: list[RejectedPing] = field(default_factory=list)
    accepted: list[AcceptedPing] = field(default_factory=list)
    causes: list[Ping | None] = field(default_factory=list)


def process_batch(states: Mapping[str, DeviceState], pings: Sequence[Ping], index: HotspotIndex,
                  config: ProcessingConfig) -> BatchResult:
    result = BatchResult()
    work = result.states
    reject = result.rejected.append
    for p in pings:
        reason = check_ping(p, config)
        if reason is None:
            d = p.device_id
            st = work.get(d)
            if st is None:
                old = states.get(d)
                st = work[d] = old.copy() if old is not None else DeviceState(d)
            reason = admit(st, p, config, result.rejected)
            if reason is None:
                continue
        reject(RejectedPing(p, reason))
    _advance([(st, release(st, config)) for st in work.values()], index, config, result)
    return result


def expire(states: Mapping[str, DeviceState], now_ms: int, index: HotspotIndex,
           config: ProcessingConfig) -> BatchResult:
    result = BatchResult()
    window_ms = config.reorder_window_s * 1000.0
    loss_ms = config.signal_loss_s * 1000.0
    released = []
    for d, old in states.items():
        arrival = old.last_arrival_ms
        if arrival is None:
            continue
        quiet_ms = now_ms - arrival
        buf = old.buffer
        flush = bool(buf) and quiet_ms >= window_ms
        held = bool(buf) and not flush and hold_expired(buf, now_ms, config)
        silent = quiet_ms >= loss_ms and not old.silenced and old.last_ms is not None
        # Pings held aside as a possible time jump that nothing confirmed before the device went
        # quiet for the window: judged as finish judges them (a live device's next fix comes at its
        # pace, so a real jump is confirmed well before; a backfill sent at once confirms in the burst).
        stuck = bool(old.ahead or old.behind) and now_ms - old.aside_arrival_ms() >= window_ms
        if flush or held or silent or stuck:
            st = result.states[d] = old.copy()
            if stuck:
                _reject_held_aside(st, result)
            released.append((st, release(st, config, flush=flush, clock_ms=now_ms)))
    _advance(released, index, config, result)
    for d, st in result.states.items():
        if now_ms - st.last_arrival_ms >= loss_ms and not st.silenced and st.last_ms is not None:
            close_all(st, END_SIGNAL_LOST, config, result.events)
    _no_cause_for_the_rest(result)
    return result


def finish(states: Mapping[str, DeviceState], index: HotspotIndex, config: ProcessingConfig) -> BatchResult:
    result = BatchResult()
    for d, old in states.items():
        st = result.states[d] = old.copy()
        _reject_held_aside(st, result)
    _advance([(st, release(st, config, flush=True)) for st in result.states.values()], index, config, result)
    for st in result.states.values():
        if not st.silenced and st.last_ms is not None:
            close_all(st, END_OF_DATA, config, result.events)
    _no_cause_for_the_rest(result)
    return result


def _reject_held_aside(st: DeviceState, result: BatchResult) -> None:
    """Pings held aside that nothing confirmed: a jump ahead never followed, a run behind never followed."""
    result.rejected.extend(RejectedPing(q, TIME_JUMP) for q in st.ahead)
    result.rejected.extend(RejectedPing(q, LATE) for q in st.behind)
    st.ahead, st.behind = [], []


def open_visits(states: Iterable[DeviceState]) -> list[VisitProgress]:
    """Each open visit's dwell so far, from the given states (pure: the live worker writes these rows
    at its checkpoints for the devices whose state changed; replay has no use for them)."""
    out = []
    for st in states:
        for h in sorted(st.tracks):
            row = st.tracks[h].progress(st.device_id, st.mode)
            if row is not None:
                out.append(row)
    return out


def _no_cause_for_the_rest(result: BatchResult) -> None:
    """Events added after the fixes' step (closures for silence or end of data) have no causing fix."""
    missing = len(result.events) - len(result.causes)
    if missing:
        result.causes.extend([None] * missing)


def _advance(released: Iterable[tuple[DeviceState, list[Ping]]], index: HotspotIndex, config: ProcessingConfig,
             result: BatchResult) -> None:
    """Teleport filter on the released fixes, one geofence query for all, then the state machines.

    The fixes of the batch go into one flat list, one device after another,
    with each fix's state beside it (`owners`), so that the state machines run
    in one flat loop over the fixes and their hot spots.
    """
    reject = result.rejected.append
    fixes: list[Ping] = []
    owners: list[DeviceState] = []
    for st, out in released:
        for p in out:
            reason = check_in_order(st, p, config)
            if reason is None:
                fixes.append(p)
                owners.append(st)
            else:
                reject(RejectedPing(p, reason))
    if not fixes:
        return
    n = len(fixes)
    acc = np.array(list(map(_ACC, fixes)), dtype=np.float64)      # None (no accuracy) becomes NaN
    acc[np.isnan(acc)] = config.default_accuracy_m
    low = acc > config.max_accuracy_m
    edge_m = np.where(low, 0.0, acc * config.edge_accuracy_factor)
    lat = np.fromiter(map(_LAT, fixes), dtype=np.float64, count=n)
    lon = np.fromiter(map(_LON, fixes), dtype=np.float64, count=n)
    ts = np.fromiter(map(_TS, fixes), dtype=np.int64, count=n)
    inside_ids, edge_ids = index.match(lat, lon, edge_m, ts).per_point(n)
    low_list = low.tolist()
    events = result.events
    causes = result.causes
    for st, p, ins, edge, lo in zip(owners, fixes, inside_ids, edge_ids, low_list):
        step(st, p, ins, edge, lo, config, events)
        if len(events) != len(causes):
            causes.extend([p] * (len(events) - len(causes)))
    result.accepted.extend(map(_accepted, zip(fixes, inside_ids, low_list)))
