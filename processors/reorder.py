"""The per-device reorder window: pings go in in arrival order and come out in event-time order.

Owns admission (duplicate and late verdicts) and release. The rule, chosen so
that batch boundaries and shuffles inside the window cannot change the output:

* the watermark is the newest fix time the device has sent; the device's
  arrival clock is the newest arrival time (`received_ms`) among its pings;
* a held ping is released, oldest first, once it is older than
  `watermark - reorder_window_s`, or once it has been held `reorder_hold_s`
  of arrival time (only pings that carry an arrival time: live ones);
  releasing a ping releases every older one with it;
* a ping that would have to go before a ping already released (or due to
  be) is a straggler: `duplicate` if its fix time was taken already (held, or
  among the last `recent_ts_kept` released), otherwise `late`.

Everything released is therefore newer than anything released before. A ping
delayed by less than the window relative to the newest one, and by less than
the hold relative to the pings it overtakes, is never late. The hold is what
keeps the live ping-to-event delay short: without it a fix would wait for a
fix `reorder_window_s` newer from the same device, which for a device
reporting every 5-60 s is 10-60 s. The live worker's timer releases by the
same rule on its own clock (`release(..., clock_ms=...)`), and flushes a
quiet device's pings that carry no arrival time once no ping has arrived
for the window; a ping that shows up after such a release is late.
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
    arrival = p.received_ms
    if arrival is None:
        arrival = t
    last = st.last_arrival_ms
    clock = arrival if last is None or arrival > last else last
    if buf and t <= buf[-1].ts_ms:
        k = bisect_left(buf, t, key=_ts)
        if k < len(buf) and buf[k].ts_ms == t:
            return DUPLICATE
        # A held ping newer than this one whose hold is over by the clock this arrival sets was
        # released already, had the pings come one batch each or had the live timer run just
        # before: this one comes too late. Judging so keeps batch size and the timer from
        # changing a verdict.
        if hold_expired(buf, clock, cfg, start=k):
            return LATE
        buf.insert(k, p)
    else:
        buf.append(p)
    if wm is None or t > wm:
        st.watermark_ms = t
    st.last_arrival_ms = clock
    return None


def hold_expired(buf: list[Ping], clock_ms: int, cfg: ProcessingConfig, start: int = 0) -> bool:
    """True when some held ping from position `start` on has been held `reorder_hold_s` by `clock_ms`."""
    cutoff = clock_ms - cfg.reorder_hold_s * 1000.0
    for q in buf[start:] if start else buf:
        r = q.received_ms
        if r is not None and r <= cutoff:
            return True
    return False


def release(st: DeviceState, cfg: ProcessingConfig, *, flush: bool = False,
            clock_ms: int | None = None) -> list[Ping]:
    """Take the pings that can no longer be overtaken (all of them with flush=True), oldest first.

    The arrival clock is the device's own (its newest ping's arrival), or
    `clock_ms` when that is later: the live worker's clock, for a device that
    has sent nothing since.
    """
    buf = st.buffer
    if not buf:
        return []
    n = len(buf)
    if flush:
        k = n
    else:
        horizon = st.watermark_ms - cfg.reorder_window_s * 1000.0
        clock = st.last_arrival_ms
        if clock_ms is not None and (clock is None or clock_ms > clock):
            clock = clock_ms
        cutoff = -1.0 if clock is None else clock - cfg.reorder_hold_s * 1000.0
        # From the newest back to the first that must go: past the window, or held long enough.
        k = n
        while k:
            q = buf[k - 1]
            if q.ts_ms < horizon:
                break
            r = q.received_ms
            if r is not None and r <= cutoff:
                break
            k -= 1
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
