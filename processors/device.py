"""Everything the analytics remember about one device, and the per-fix step that advances it.

Owns `DeviceState` (reorder buffer, last accepted fix, mode tracker, visit
tracks) and its byte form for the Faust changelog table: one version byte, then
the state as a JSON array (orjson). JSON keeps it explicit and inspectable,
round-trips floats exactly, and at a few hundred bytes per device needs no
schema machinery; the version byte lets a later layout be read beside this one.

`step` is the one place the state machines meet, in this order for each fix in
event time: signal loss (a silence of `signal_loss_s` closes everything at the
last fix), mode of travel, then each hot spot the fix is near or has a track in
(visit, then its stop).
"""
from __future__ import annotations

import orjson

from processors.config import ProcessingConfig
from processors.model import END_SIGNAL_LOST, Ping
from processors.modes import ModeTracker
from processors.visits import OPEN, Track

# Version 1 stores a buffered ping as [ts_ms, lat, lon, accuracy_m, speed_mps, heading_deg,
# altitude_m, battery, received_ms], followed by its source when it has one. Readers of
# version 1 have always taken both lengths, so states written before `source` was kept still load.
# Version 2 appends the time-jump fields (processors.reorder): the pings held ahead of the
# timeline, its base and votes, the pings held behind it and their votes; then the teleport
# filter's anchor before the anchor; and to each track its last inside position, bridged time and
# lost flag (processors.visits). Version 1 still loads (nothing held aside, nothing bridged).
# Version 3 appends to each track's stop detector the credit before its first fix, the time of
# the last fix it was fed and whether a fix of its cluster reported a standing speed
# (processors.stops), and to the mode tracker how far after its run's start a switch is dated
# (processors.modes); versions 1 and 2 load with none of them (no credit, no offset).
# Version 4 appends to the mode tracker the speed evidence of its last fix, which dates a switch
# inside the interval before it (processors.modes); earlier versions load with none (-1).
# Version 5 appends to the mode tracker the silence that may be bridged (the mode before it, and
# where it began once it has ended: processors.modes); earlier versions load with none.
STATE_VERSION = 5
_READABLE = (1, 2, 3, 4, 5)

_new = object.__new__


class DeviceState:
    __slots__ = ("device_id",
                 # reorder (processors.reorder)
                 "buffer", "watermark_ms", "frontier_ms", "last_arrival_ms", "recent_ts",
                 # time jumps (processors.reorder)
                 "ahead", "ahead_base_ms", "ahead_votes", "behind", "behind_votes", "released_early",
                 # order-dependent validation (processors.validation)
                 "anchor", "suspect", "before",
                 # state machines
                 "last_ms", "silenced", "mode", "tracks")

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.buffer: list[Ping] = []              # held pings, sorted by ts_ms
        self.watermark_ms: int | None = None      # newest fix time seen
        self.frontier_ms: int | None = None       # newest fix time released
        self.last_arrival_ms: int | None = None   # arrival (or, without one, fix) time of the newest ping admitted
        self.recent_ts: tuple[int, ...] = ()      # fix times released lately, to recognise duplicates
        self.ahead: list[Ping] = []               # pings far ahead of the timeline, not yet confirmed
        self.ahead_base_ms: int | None = None     # the watermark when the first of them came
        self.ahead_votes = 0                      # pings on the old timeline since
        self.behind: list[Ping] = []              # pings far behind it (a clock set back?), not yet confirmed
        self.behind_votes = 0
        self.released_early: list[Ping] = []      # the old timeline's held pings when a clock went back:
        #                                           released by the next release(), never stored
        self.anchor: tuple[int, float, float, float] | None = None   # last accepted good fix (ts, lat, lon, acc)
        self.suspect: tuple[int, float, float, float] | None = None  # last fix rejected for implied speed
        self.before: tuple[int, float, float, float] | None = None   # the anchor before the anchor
        self.last_ms: int | None = None           # last accepted fix time
        self.silenced = False                     # a silence already closed everything after last_ms
        self.mode = ModeTracker()
        self.tracks: dict[str, Track] = {}

    # ------------------------------------------------------------------ state
    def copy(self) -> "DeviceState":
        """A copy that can be advanced without touching this one (process_batch's input states).

        It runs for every device of every batch, so it is spelt out field by
        field (a getattr/setattr loop over `__slots__` took four times as long)
        and copies only the objects the state machines change in place: the
        buffer, the mode tracker and the tracks. Pings and tuples are shared,
        which is why `recent_ts` and the mode tracker's window and timeline are
        tuples, replaced rather than changed. That also spares the cyclic
        garbage collector: lists stay in its view, tuples of numbers leave it,
        and each object a batch leaves behind brings the next full collection
        (a pass over the whole process) nearer: on the bench/pipeline_costs.py
        workload a batch of 5,000 pings left 6,200 new lists behind, now 1,600.
        """
        c = _new(DeviceState)
        c.device_id = self.device_id
        c.buffer = self.buffer.copy()
        c.watermark_ms = self.watermark_ms
        c.frontier_ms = self.frontier_ms
        c.last_arrival_ms = self.last_arrival_ms
        c.recent_ts = self.recent_ts
        c.ahead = self.ahead.copy()
        c.ahead_base_ms = self.ahead_base_ms
        c.ahead_votes = self.ahead_votes
        c.behind = self.behind.copy()
        c.behind_votes = self.behind_votes
        c.released_early = self.released_early.copy()
        c.anchor = self.anchor
        c.suspect = self.suspect
        c.before = self.before
        c.last_ms = self.last_ms
        c.silenced = self.silenced
        c.mode = self.mode.copy()
        c.tracks = {h: tr.copy() for h, tr in self.tracks.items()} if self.tracks else {}
        return c

    def to_bytes(self) -> bytes:
        # released_early is empty between batches (process_batch, expire and finish release every
        # state they touch), so it is not stored.
        body = [self.device_id, _rows(self.buffer),
                self.watermark_ms, self.frontier_ms, self.last_arrival_ms, self.recent_ts,
                self.anchor, self.suspect, self.last_ms, self.silenced,
                self.mode.to_list(), [tr.to_list() for tr in self.tracks.values()],
                _rows(self.ahead), self.ahead_base_ms, self.ahead_votes, _rows(self.behind), self.behind_votes,
                self.before]
        return bytes((STATE_VERSION,)) + orjson.dumps(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> "DeviceState":
        if not data or data[0] not in _READABLE:
            raise ValueError(f"device state version {data[:1].hex() or 'missing'} is not one of {_READABLE}")
        body = orjson.loads(data[1:])
        (device_id, buffer, watermark_ms, frontier_ms, last_arrival_ms, recent_ts, anchor, suspect, last_ms,
         silenced, mode, tracks) = body[:12]
        ahead, ahead_base_ms, ahead_votes, behind, behind_votes, before = \
            body[12:] if data[0] >= 2 else ([], None, 0, [], 0, None)
        st = cls.__new__(cls)
        st.device_id = device_id
        st.buffer = [Ping(device_id, *row) for row in buffer]
        st.ahead = [Ping(device_id, *row) for row in ahead]
        st.ahead_base_ms, st.ahead_votes = ahead_base_ms, ahead_votes
        st.behind = [Ping(device_id, *row) for row in behind]
        st.behind_votes = behind_votes
        st.released_early = []
        st.watermark_ms, st.frontier_ms, st.last_arrival_ms = watermark_ms, frontier_ms, last_arrival_ms
        st.recent_ts = tuple(recent_ts)
        st.anchor = tuple(anchor) if anchor is not None else None
        st.suspect = tuple(suspect) if suspect is not None else None
        st.before = tuple(before) if before is not None else None
        st.last_ms, st.silenced = last_ms, silenced
        st.mode = ModeTracker.from_list(mode)
        st.tracks = {}
        for row in tracks:
            tr = Track.from_list(row)
            st.tracks[tr.hotspot_id] = tr
        return st

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DeviceState) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return (f"DeviceState({self.device_id!r}, buffered={len(self.buffer)}, last_ms={self.last_ms}, "
                f"tracks={sorted(self.tracks)})")

    def aside_arrival_ms(self) -> int:
        """The device's arrival clock counting the pings held aside (which do not move it)."""
        newest = self.last_arrival_ms
        for q in self.ahead + self.behind:
            r = q.received_ms
            if r is not None and r > newest:
                newest = r
        return newest

    def deadline_ms(self, cfg: ProcessingConfig) -> int | None:
        """Earliest arrival-clock time at which `expire` would change this state, or None if it never would.

        The live worker can keep these in a heap instead of offering every device to every timer tick.
        """
        if self.last_arrival_ms is None:
            return None
        times = []
        if self.ahead or self.behind:
            times.append(self.aside_arrival_ms() + int(cfg.reorder_window_s * 1000))
        if self.buffer:
            times.append(self.last_arrival_ms + int(cfg.reorder_window_s * 1000))
            arrivals = [q.received_ms for q in self.buffer if q.received_ms is not None]
            if arrivals:  # the first held ping's hold runs out (processors.reorder)
                times.append(min(arrivals) + int(cfg.reorder_hold_s * 1000))
        if not self.silenced and self.last_ms is not None:
            times.append(self.last_arrival_ms + int(cfg.signal_loss_s * 1000))
        return min(times) if times else None


def _rows(pings: list[Ping]) -> list[list]:
    return [[p.ts_ms, p.lat, p.lon, p.accuracy_m, p.speed_mps, p.heading_deg, p.altitude_m, p.battery,
             p.received_ms] if p.source is None else
            [p.ts_ms, p.lat, p.lon, p.accuracy_m, p.speed_mps, p.heading_deg, p.altitude_m, p.battery,
             p.received_ms, p.source] for p in pings]


# ---------------------------------------------------------------------------
# The per-fix step

def step(st: DeviceState, p: Ping, inside: tuple[str, ...], edge: tuple[str, ...], low_accuracy: bool,
         cfg: ProcessingConfig, events: list) -> None:
    """Advance the state machines by one accepted fix (fixes come in event-time order)."""
    t = p.ts_ms
    prev = st.last_ms
    if prev is not None and t <= prev:
        # The device's clock went back and the reorder window followed it (processors.reorder):
        # what was open ends where the old timeline left it, and the new timeline starts afresh.
        if not st.silenced:
            close_all(st, END_SIGNAL_LOST, cfg, events)
        st.mode = ModeTracker()
        prev = None
    elif prev is not None and not st.silenced and t - prev >= cfg.signal_loss_s * 1000.0:
        close_all(st, END_SIGNAL_LOST, cfg, events)
    st.silenced = False
    st.last_ms = t
    tracks = st.tracks
    if tracks and any(tr.lost for tr in tracks.values()):
        # Back after a silence that closed visits it was inside: each goes on if this fix is inside
        # it in time and within walking reach (processors.visits), else it stays closed.
        acc = p.accuracy_m or cfg.default_accuracy_m
        for h in [h for h, tr in tracks.items() if tr.lost]:
            if low_accuracy or h not in inside or \
                    not tracks[h].resume(t, p.lat, p.lon, acc, cfg):
                del tracks[h]
    if low_accuracy:
        for tr in tracks.values():
            tr.skip(t)
        return
    acc = p.accuracy_m
    if acc is None:
        acc = cfg.default_accuracy_m
    dev = st.device_id
    mode = st.mode
    lat, lon = p.lat, p.lon
    # The fix before (for the stops' dead reckoning): where it was, and how fast the device went there.
    before = (mode.last_ms, mode.last_lat, mode.last_lon, mode.last_acc_m, mode.last_v_mps) \
        if mode.last_ms is not None and (tracks or inside or edge) else None
    moving_mps = mode.update(dev, t, lat, lon, acc, p.speed_mps, cfg, events)
    v_now = mode.last_v_mps
    if not tracks and not inside and not edge:
        # Nowhere near a hot spot: the common case, done with the mode tracker alone.
        if len(mode.timeline) > 2:
            mode.prune(t)
        return
    # Hot spots to look at: those with a track, then new ones this fix is inside.
    ended = ()
    for h, tr in tracks.items():
        if not tr.observe(dev, t, h in inside, h in edge, cfg, events, lat, lon):
            tr.close(dev, "exit", mode, cfg, events)
            ended += (h,)
            continue
        stop = tr.stop
        stop.feed(dev, h, t, lat, lon, acc, moving_mps, tr.last_in_ms, cfg, events, before, v_now)
        # (`announced` first: once a stop is announced, most fixes of the visit need no call.)
        if tr.phase == OPEN and not stop.announced and stop.maybe_announce(dev, h, tr.last_in_ms, cfg, events):
            tr.stop_count += 1
    for h in ended:
        del tracks[h]
    for h in inside:
        if h in tracks:
            continue
        edge_in_ms = 0.0
        if prev is not None and t - prev < cfg.signal_loss_s * 1000.0:
            edge_in_ms = min((t - prev) / 2.0, cfg.edge_credit_max_s * 1000.0)
        tr = Track(h, t, h not in edge, edge_in_ms)
        tr.in_lat, tr.in_lon = lat, lon
        tr.stop.feed(dev, h, t, lat, lon, acc, moving_mps, t, cfg, events, before, v_now)
        tracks[h] = tr
    if len(mode.timeline) > 2:
        keep = t
        for tr in tracks.values():
            if tr.first_ms - tr.edge_in_ms < keep:
                keep = tr.first_ms - tr.edge_in_ms
        mode.prune(keep)


def close_all(st: DeviceState, reason: str, cfg: ProcessingConfig, events: list) -> None:
    """Close every open visit (at its last inside fix) and the mode segment; candidates lapse."""
    dev = st.device_id
    for h in sorted(st.tracks):
        st.tracks[h].close(dev, reason, st.mode, cfg, events)
    if reason == END_SIGNAL_LOST:
        # Visits the device went silent inside stay, lost, for the next fix to resume (processors.visits).
        st.tracks = {h: tr for h, tr in st.tracks.items() if tr.lost or tr.may_resume()}
        for tr in st.tracks.values():
            tr.lost = True
    else:
        st.tracks.clear()
    st.mode.close(dev, events, gap=(reason == END_SIGNAL_LOST))
    st.silenced = True
