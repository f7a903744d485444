"""The per-device reorder window: pings go in in arrival order and come out in event-time order.

Owns admission (duplicate and late verdicts) and release. The rule, chosen so
that batch boundaries and shuffles inside the window cannot change the output:

* the watermark is the newest fix time the device has sent; the device's
  arrival clock is the newest arrival time (`received_ms`) among its pings;
* a held ping is released, oldest first, once it is older than
  `watermark - reorder_window_s`, or once it has been held `reorder_hold_s`
  of arrival time (only pings that carry an arrival time: live ones); a row
  without an arrival time (a file's) once it is older than `watermark -
  unstamped_reorder_window_s` and `unstamped_reorder_rows` newer rows are held;
  releasing a ping releases every older one with it;
* a ping that would have to go before a ping already released (or due to
  be) is a straggler: `duplicate` if its fix time is among the device's newest
  `recent_ts_kept` fixes (released or held), otherwise `late`.

Time jumps (DESIGN.md section 3): no single ping moves the timeline. A ping
further ahead of the watermark than `time_jump_s` (plus the arrival time that
passed since the device's newest ping) is held aside, provisional; it is
taken once another ping agrees with it (`time_jump_confirm_pings`: a later
one), or once the old timeline reaches it (a row moved up a file), and
rejected `time_jump` once the old timeline has run `time_jump_s` on without
it. A ping more than `time_jump_s` behind is held aside the same way: a clock
set back that stays back (confirmed by agreeing pings that, when stamped on
arrival, arrive at the pace their fix times advance) is followed, the old
timeline's held pings going out first; stragglers the old timeline outruns
are late. Replay rows carry no arrival time and get the same protection from
the device's own fixes.

Everything released is therefore newer than anything released before, except
across a followed clock set back (processors.device.step handles that step). A ping
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

from bisect import bisect_left, insort
from operator import attrgetter

from processors.config import ProcessingConfig
from processors.device import DeviceState
from processors.model import DUPLICATE, LATE, TIME_JUMP, Ping, RejectedPing

_ts = attrgetter("ts_ms")


def _held(buf: list[Ping], t: int) -> int:
    k = bisect_left(buf, t, key=_ts)
    return k if k < len(buf) and buf[k].ts_ms == t else -1


def admit(st: DeviceState, p: Ping, cfg: ProcessingConfig, dropped: list | None = None) -> str | None:
    """Hold p in the device's buffer (or aside, while its timeline is unconfirmed), or say why not.

    Returns DUPLICATE or LATE for p itself. Pings held aside earlier and judged now (a jump that was
    not followed: TIME_JUMP; a run behind the timeline that the old timeline outran: LATE) are
    appended to `dropped` as RejectedPing.
    """
    t = p.ts_ms
    wm = st.watermark_ms
    if wm is not None:
        jump_ms = cfg.time_jump_s * 1000.0 + _arrival_gap_ms(st, p)
        ahead = st.ahead
        if t > wm + jump_ms:
            if not ahead:
                st.ahead = [p]
                st.ahead_base_ms = wm
                st.ahead_votes = 0
                return None
            if _taken(ahead, t):
                return DUPLICATE
            if t >= ahead[0].ts_ms - max(cfg.time_jump_s * 1000.0, _window_ms(p, cfg)):
                # Off the old timeline and not a jump back from the provisional pings (however far
                # after them: a device reporting every ten minutes advances by jumps; before them by
                # no more than the reorder window: they were a row moved up a file before a silence,
                # and this is the first row after it): theirs goes on.
                insort(ahead, p, key=_ts)
                if len(ahead) >= cfg.time_jump_confirm_pings:
                    _take_ahead(st, cfg, dropped)      # confirmed: the device's clock did move on
                return None
            # A third timeline: the provisional one was never confirmed, this one starts afresh.
            _drop(ahead, TIME_JUMP, dropped)
            st.ahead = [p]
            st.ahead_base_ms = wm
            st.ahead_votes = 0
            return None
    # The old timeline goes on. Once it reaches the pings held ahead they were only early (a row moved
    # up a file, a gap): they go in first, then this one. Once it has run time_jump_s on without
    # them, they were a bad clock.
    if st.ahead and st.ahead[0].ts_ms <= max(t, wm) + min(cfg.time_jump_s * 1000.0, _window_ms(st.ahead[0], cfg)):
        _take_ahead(st, cfg, dropped)
    reason = _admit(st, p, cfg, dropped)
    if reason is None and st.ahead:
        st.ahead_votes += 1
        wm = st.watermark_ms
        # The old timeline must run on past both the jump threshold and the reorder window: a row moved
        # up a file by up to the window (600 s of an unstamped file: ten rows at 60 s) and followed by
        # a silence is early, not a jump, and the row after the silence confirms it.
        run_ms = max(cfg.time_jump_s * 1000.0, _window_ms(st.ahead[0], cfg))
        if st.ahead_votes >= cfg.time_jump_confirm_pings - 1 and wm - st.ahead_base_ms >= run_ms \
                and st.ahead[0].ts_ms > wm + cfg.time_jump_s * 1000.0:
            _drop(st.ahead, TIME_JUMP, dropped)
            st.ahead = []
    return reason


def _rows_behind(buf: list[Ping], p: Ping, cfg: ProcessingConfig) -> bool:
    """Is p, already more than its window behind the newest fix, also out of place by the row bound?

    Pings stamped on arrival: always (their window is in arrival-clock terms). Rows of a file: only
    when at least `unstamped_reorder_rows` held rows are newer, i.e. it came that many rows late. A
    row's displacement in a file is a count of rows; a silence adds fix time without adding rows, so a
    row moved a few rows down across one is far behind in seconds and still only a few rows late."""
    rows = cfg.unstamped_reorder_rows
    if p.received_ms is not None or rows <= 0:
        return True
    return len(buf) - bisect_left(buf, p.ts_ms, key=_ts) >= rows


def _seen(st: DeviceState, t: int, cfg: ProcessingConfig) -> bool:
    """Is fix time t among the device's newest `recent_ts_kept` fixes, released or held?

    Counted over both, oldest released to newest held, so that what a straggler is compared with
    does not depend on how much of the timeline a batch boundary happened to release: one batch of
    a whole file holds every row at once, and a fix time far back in it (a clock set back onto a
    time it had already passed) is no more a retransmission than it would be after a release."""
    buf = st.buffer
    n, kept = len(buf), cfg.recent_ts_kept
    if n >= kept:
        k = bisect_left(buf, t, lo=n - kept, key=_ts)
        return k < n and buf[k].ts_ms == t
    recent = st.recent_ts
    return t in recent[max(0, len(recent) - (kept - n)):] or _held(buf, t) >= 0


def _window_ms(p: Ping, cfg: ProcessingConfig) -> float:
    """How far behind the newest fix a ping may come and still be put in order: reorder_window_s for
    pings stamped on arrival, unstamped_reorder_window_s for rows of a file, which have no clock."""
    return (cfg.reorder_window_s if p.received_ms is not None else cfg.unstamped_reorder_window_s) * 1000.0


def _arrival_gap_ms(st: DeviceState, p: Ping) -> int:
    """Arrival time passed since the device's newest ping: a fix may be that much further ahead."""
    r, last = p.received_ms, st.last_arrival_ms
    return r - last if r is not None and last is not None and r > last else 0


def _taken(pings: list[Ping], t: int) -> bool:
    return _held(pings, t) >= 0


def _drop(pings: list[Ping], reason: str, dropped: list | None) -> None:
    if dropped is not None:
        dropped.extend(RejectedPing(q, reason) for q in pings)


def _take_ahead(st: DeviceState, cfg: ProcessingConfig, dropped: list | None) -> None:
    ahead, st.ahead = st.ahead, []
    for q in ahead:
        reason = _admit(st, q, cfg, dropped)
        if reason is not None and dropped is not None:
            dropped.append(RejectedPing(q, reason))


def _admit(st: DeviceState, p: Ping, cfg: ProcessingConfig, dropped: list | None) -> str | None:
    t = p.ts_ms
    wm = st.watermark_ms
    buf = st.buffer
    frontier = st.frontier_ms
    if (frontier is not None and t <= frontier) or (wm is not None and t < wm - _window_ms(p, cfg)
                                                     and _rows_behind(buf, p, cfg)):
        if _seen(st, t, cfg):
            return DUPLICATE
        if t < wm - cfg.time_jump_s * 1000.0:
            return _behind(st, p, cfg, dropped)
        return LATE
    arrival = p.received_ms
    if arrival is None:
        arrival = t
    last = st.last_arrival_ms
    clock = arrival if last is None or arrival > last else last
    if buf and t <= buf[-1].ts_ms:
        k = bisect_left(buf, t, key=_ts)
        # A held ping at or after this one whose hold is over by the clock this arrival sets was
        # released already, had the pings come one batch each or had the live timer run just
        # before: this one is a straggler, judged as one. Judging so keeps batch size and the
        # timer from changing a verdict.
        if hold_expired(buf, clock, cfg, start=k):
            return DUPLICATE if _seen(st, t, cfg) else LATE
        if k < len(buf) and buf[k].ts_ms == t:
            return DUPLICATE
        buf.insert(k, p)
    else:
        buf.append(p)
    if wm is None or t > wm:
        st.watermark_ms = t
    st.last_arrival_ms = clock
    if st.behind:
        # The old timeline went on: the run behind it was stragglers after all.
        st.behind_votes += 1
        if st.behind_votes >= cfg.time_jump_confirm_pings - 1:
            _drop(st.behind, LATE, dropped)
            st.behind = []
    return None


def _behind(st: DeviceState, p: Ping, cfg: ProcessingConfig, dropped: list | None) -> str | None:
    """A ping more than time_jump_s behind the timeline: a straggler, or a clock set back.

    It waits aside with the pings that continue it. Once `time_jump_confirm_pings` of them agree,
    and (when they carry arrival times) arrived at the pace their fix times advance (a clock set
    back keeps reporting in real time; a burst of retransmitted stragglers arrives at once), the
    device follows the new timeline: everything held on the old one is released first, and the
    state machines see time go back (processors.device.step closes what was open). Until then
    nothing moves; if the old timeline goes on instead they are late.
    """
    t = p.ts_ms
    behind = st.behind
    if behind:
        if _taken(behind, t):
            return DUPLICATE
        if t < behind[-1].ts_ms - cfg.reorder_window_s * 1000.0:
            return LATE
        insort(behind, p, key=_ts)
    else:
        st.behind = behind = [p]
        st.behind_votes = 0
    if len(behind) < cfg.time_jump_confirm_pings:
        return None
    arrivals = [q.received_ms for q in behind if q.received_ms is not None]
    if len(arrivals) == len(behind):
        fix_span = behind[-1].ts_ms - behind[0].ts_ms
        if max(arrivals) - min(arrivals) < 0.5 * fix_span:
            return None                                 # a burst: wait for more (or for the old timeline)
    # Follow the clock back: the old timeline's held pings go out first, then a fresh window.
    st.released_early = st.released_early + st.buffer
    st.buffer = []
    st.watermark_ms = st.frontier_ms = None
    st.recent_ts = ()
    st.behind = []
    for q in behind:
        reason = _admit(st, q, cfg, dropped)
        if reason is not None and dropped is not None:
            dropped.append(RejectedPing(q, reason))
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
    early = st.released_early
    if early:
        # The old timeline's pings, held when the device's clock went back: they go first.
        st.released_early = []
        return early + release(st, cfg, flush=flush, clock_ms=clock_ms)
    buf = st.buffer
    if not buf:
        return []
    n = len(buf)
    if flush:
        k = n
    else:
        wm = st.watermark_ms
        horizon = wm - cfg.reorder_window_s * 1000.0
        horizon_unstamped = wm - cfg.unstamped_reorder_window_s * 1000.0
        clock = st.last_arrival_ms
        if clock_ms is not None and (clock is None or clock_ms > clock):
            clock = clock_ms
        cutoff = -1.0 if clock is None else clock - cfg.reorder_hold_s * 1000.0
        rows = cfg.unstamped_reorder_rows
        # From the newest back to the first that must go: past the window (for a row of a file, also
        # with `unstamped_reorder_rows` held rows newer than it), or held long enough.
        k = n
        while k:
            q = buf[k - 1]
            r = q.received_ms
            if r is not None:
                if q.ts_ms < horizon or r <= cutoff:
                    break
            elif q.ts_ms < horizon_unstamped and n - k >= rows:
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
