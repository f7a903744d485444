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

import bisect

from processors.config import ProcessingConfig
from processors.device import DeviceState
from processors.model import DUPLICATE, LATE, Ping


def _ts(p: Ping) -> int:
    return p.ts_ms


def _held(buf: list[Ping], t: int) -> int:
    k = bisect.bisect_left(buf, t, key=_ts)
    return k if k < len(buf) and buf[k].ts_ms == t else -1


def admit(st: DeviceState, p: Ping, cfg: ProcessingConfig) -> str | None:
    """Hold p in the device's buffer, or say why not (DUPLICATE or LATE)."""
    t = p.ts_ms
    wm = st.watermark_ms
    buf = st.buffer
    if (wm is not None and t < wm - cfg.reorder_window_s * 1000.0) or \
            (st.frontier_ms is not None and t <= st.frontier_ms):
        return DUPLICATE if t in st.recent_ts or _held(buf, t) >= 0 else LATE
    if buf and t <= buf[-1].ts_ms:
        k = bisect.bisect_left(buf, t, key=_ts)
        if k < len(buf) and buf[k].ts_ms == t:
            return DUPLICATE
        buf.insert(k, p)
    else:
        buf.append(p)
    if wm is None or t > wm:
        st.watermark_ms = t
    arrival = p.received_ms if p.received_ms is not None else t
    if st.last_arrival_ms is None or arrival > st.last_arrival_ms:
        st.last_arrival_ms = arrival
    return None


def release(st: DeviceState, cfg: ProcessingConfig, *, flush: bool = False) -> list[Ping]:
    """Take the pings that can no longer be overtaken (all of them with flush=True), oldest first."""
    buf = st.buffer
    if not buf:
        return []
    if flush:
        k = len(buf)
    else:
        horizon = st.watermark_ms - cfg.reorder_window_s * 1000.0
        k = 0
        n = len(buf)
        while k < n and buf[k].ts_ms < horizon:
            k += 1
        if not k:
            return []
    out = buf[:k]
    del buf[:k]
    st.frontier_ms = out[-1].ts_ms
    recent = st.recent_ts
    recent.extend(p.ts_ms for p in out)
    if len(recent) > cfg.recent_ts_kept:
        del recent[:len(recent) - cfg.recent_ts_kept]
    return out
