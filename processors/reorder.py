"""The per-device reorder window: pings go in in arrival order and come out in event-time order.

Owns admission (duplicate and late verdicts) and release. The rule, chosen so
that batch boundaries and shuffles inside the window cannot change the output:

* the watermark is the newest fix time the device has sent;
* a ping older than `watermark - reorder_window_s`, or not newer than the last
  released fix, is a straggler: `duplicate` if its fix time was taken already
  (held, or among the last `recent_ts_kept` released), otherwise `late`;
* pings older than `watermark - reorder_window_s` are released, oldest first.

Everything released is therefore newer than anything released before, and a
ping delayed by less than the window relative to the newest one is never late.
The live worker's timer (`flush`) releases a quiet device's pings early, once
no ping has arrived for the window; a ping that shows up after that is late.
"""
from __future__ import annotations

from bisect import bisect_left
from operator import attrgetter

from processors.config import ProcessingConfig
from processors.device import DeviceState
from processors.model import DUPLICATE, LATE, Ping

_ts = attrgetter("ts_ms")


def _held(buf: list[Ping], t: int) -> int:
    k = bisect_left(buf, t, key=_ts)
    return k if k < len(buf) and buf[k].ts_ms == t else -1


def admit(st: DeviceState, p: Ping, cfg: ProcessingConfig) -> str | None:
    """Hold p in the device's buffer, or say why not (DUPLICATE or LATE)."""
    t = p.ts_ms
    wm = st.watermark_ms
    buf = st.buffer
    frontier = st.frontier_ms
    if (wm is not None and t < wm - cfg.reorder_window_s * 1000.0) or (frontier is not None and t <= frontier):
        return DUPLICATE if t in st.recent_ts or _held(buf, t) >= 0 else LATE
    if buf and t <= buf[-1].ts_ms:
        k = bisect_left(buf, t, key=_ts)
        if k < len(buf) and buf[k].ts_ms == t:
            return DUPLICATE
        buf.insert(k, p)
    else:
        buf.append(p)
    if wm is None or t > wm:
        st.watermark_ms = t
    arrival = p.received_ms
    if arrival is None:
        arrival = t
    last = st.last_arrival_ms
    if last is None or arrival > last:
        st.last_arrival_ms = arrival
    return None


def release(st: DeviceState, cfg: ProcessingConfig, *, flush: bool = False) -> list[Ping]:
    """Take the pings that can no longer be overtaken (all of them with flush=True), oldest first."""
    buf = st.buffer
    if not buf:
        return []
    n = len(buf)
    if flush:
        k = n
    else:
        horizon = st.watermark_ms - cfg.reorder_window_s * 1000.0
        if buf[-1].ts_ms < horizon:
            k = n                      # all of it (a sparse device: one ping per batch or less)
        else:
            k = 0
            while buf[k].ts_ms < horizon:
                k += 1
            if not k:
                return []
    if k == n:
        out = buf                      # hand the whole list over rather than copy it
        st.buffer = []
    else:
        out = buf[:k]
        del buf[:k]
    st.frontier_ms = out[-1].ts_ms
    recent = st.recent_ts + tuple(map(_ts, out))
    if len(recent) > cfg.recent_ts_kept:
        recent = recent[len(recent) - cfg.recent_ts_kept:]
    st.recent_ts = recent
    return out
