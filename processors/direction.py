"""Directions: which hot spots an officer may be sent to, how much each weighs, and the seeded draw.

Owns the rule of issue 14, pure (no clock, no I/O: the caller passes the time,
today's facts and the seed), so an evaluator can re-run any recorded draw:

- **Eligible** = active at `now_ms` (published, inside its active window),
  within `max_distance_m` of the officer, treated today when a trial schedule
  covers today (a control hot spot is never offered, and a hot spot outside
  the schedule is not either: the trial designs the whole set), fewer than
  `daily_cap` assignments this trial day, and still some need (target minus
  dosage so far today > 0). The hot spot the officer was just sent to is left
  out unless it is the only one.
- **Weight** = need fraction x distance factor:
  `(need_min / target_min) * scale_m / (scale_m + distance_m)`: a hot spot
  that has had none of its dose today weighs twice one that has had half;
  one `distance_scale_m` away weighs half one at the officer's feet.
  Without today's dosage (ClickHouse unreachable) every need is the full
  target, and the assignment records that (`dosage_known=False`).
- **Draw**: `random.Random(seed)`, one uniform number against the cumulative
  weights of the eligible set in id order. The seed, the ids and the weights
  are recorded with the assignment; `draw(ids, weights, seed)` gives the same
  choice again.

Distances are to the hot spot's centroid (local equirectangular, processors.geo).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from processors.geo import M_PER_DEG, M_PER_DEG_LAT, RAD

TREATMENT = "treatment"
CONTROL = "control"


@dataclass(frozen=True)
class Candidate:
    """A published hot spot as directions see it."""

    id: str
    name: str
    briefing: str
    lat: float  # centroid
    lon: float
    target_minutes: float | None = None
    active_from_ms: int | None = None
    active_to_ms: int | None = None
    stats_json: str = ""

    def active_at(self, now_ms: int) -> bool:
        return ((self.active_from_ms is None or self.active_from_ms <= now_ms)
                and (self.active_to_ms is None or now_ms < self.active_to_ms))


@dataclass(frozen=True)
class Policy:
    max_distance_m: float = 3000.0
    daily_cap: int = 6
    distance_scale_m: float = 1000.0
    default_target_minutes: float = 15.0


@dataclass(frozen=True)
class Today:
    """What is known about the current trial day, gathered by the caller."""

    arms: Mapping[str, str] | None = None          # hot spot -> arm; None or empty: no trial schedule today
    assignments: Mapping[str, int] = field(default_factory=dict)   # hot spot -> assignments this trial day
    minutes: Mapping[str, float] = field(default_factory=dict)     # hot spot -> dosage minutes this trial day
    dosage_known: bool = True                      # False: `minutes` could not be read; need = full target
    last_assigned: str | None = None               # the officer's latest hot spot this trial day

    @property
    def trial(self) -> bool:
        return bool(self.arms)


@dataclass(frozen=True)
class Option:
    candidate: Candidate
    distance_m: float
    target_minutes: float
    minutes_today: float
    need_minutes: float
    weight: float


@dataclass(frozen=True)
class Choice:
    chosen: Option
    options: tuple[Option, ...]  # the eligible set, in id order (the draw's order)
    seed: int

    @property
    def eligible(self) -> list[str]:
        return [o.candidate.id for o in self.options]

    @property
    def weights(self) -> list[float]:
        return [o.weight for o in self.options]


# --------------------------------------------------------------------------- geometry

def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dy = (lat2 - lat1) * M_PER_DEG_LAT
    dx = (lon2 - lon1) * M_PER_DEG * math.cos((lat1 + lat2) * (0.5 * RAD))
    return math.hypot(dx, dy)


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north, 0-360."""
    p1, p2, dl = lat1 * RAD, lat2 * RAD, (lon2 - lon1) * RAD
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(y, x)) + 360.0) % 360.0


def candidates_from_records(records: Iterable[Mapping]) -> list[Candidate]:
    """Candidates from decoded Avro `Hotspot` records (the `hotspots` topic); unreadable geometry is skipped."""
    from shapely.geometry import shape

    out = []
    for r in records:
        try:
            c = shape(json.loads(r["geometry_geojson"])).centroid
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
        if c.is_empty:
            continue
        out.append(Candidate(r["id"], r.get("name") or r["id"], r.get("briefing") or "", c.y, c.x,
                             r.get("target_minutes"), r.get("active_from_ms"), r.get("active_to_ms"),
                             r.get("stats_json") or ""))
    return sorted(out, key=lambda c: c.id)


# --------------------------------------------------------------------------- trial days

def arms_at(allocations: Iterable[Mapping], now_ms: int) -> dict[str, str]:
    """Hot spot -> arm of every allocation (Avro `Allocation`) whose trial day contains `now_ms`.
    A hot spot that two schedules put in different arms is control: sending an officer could contaminate one."""
    arms: dict[str, str] = {}
    for a in allocations:
        if a["starts_ms"] <= now_ms < a["ends_ms"]:
            hid = a["hotspot_id"]
            arms[hid] = CONTROL if arms.get(hid, a["arm"]) != a["arm"] else a["arm"]
    return arms


def trial_day_of(allocations: Iterable[Mapping], now_ms: int) -> str | None:
    """The name (YYYY-MM-DD) of the scheduled trial day containing `now_ms`, if any."""
    for a in allocations:
        if a["starts_ms"] <= now_ms < a["ends_ms"]:
            return a["day"]
    return None


# --------------------------------------------------------------------------- the rule

def target_of(c: Candidate, policy: Policy) -> float:
    return c.target_minutes if c.target_minutes and c.target_minutes > 0 else policy.default_target_minutes


def weight(need_minutes: float, target_minutes: float, distance: float, scale_m: float) -> float:
    if need_minutes <= 0 or target_minutes <= 0:
        return 0.0
    return (min(need_minutes, target_minutes) / target_minutes) * scale_m / (scale_m + max(0.0, distance))


def listed(c: Candidate, today: Today, now_ms: int) -> bool:
    """Whether an officer may see `c` at all: active, and not a control hot spot during a trial."""
    if not c.active_at(now_ms):
        return False
    return not (today.trial and today.arms.get(c.id) == CONTROL)


def options(near: Iterable[tuple[Candidate, float]], today: Today, policy: Policy, now_ms: int) -> list[Option]:
    """The eligible set with weights, in id order. `near`: (candidate, distance_m) pairs."""
    out = []
    for c, d in near:
        if d > policy.max_distance_m or not c.active_at(now_ms):
            continue
        if today.trial and today.arms.get(c.id) != TREATMENT:
            continue
        if today.assignments.get(c.id, 0) >= policy.daily_cap:
            continue
        target = target_of(c, policy)
        done = today.minutes.get(c.id, 0.0) if today.dosage_known else 0.0
        need = max(0.0, target - done)
        w = weight(need, target, d, policy.distance_scale_m)
        if w > 0:
            out.append(Option(c, d, target, done, need, w))
    out.sort(key=lambda o: o.candidate.id)
    if len(out) > 1 and today.last_assigned is not None:
        out = [o for o in out if o.candidate.id != today.last_assigned] or out
    return out


def draw(ids: Sequence[str], weights: Sequence[float], seed: int) -> int:
    """Index chosen by the seeded weighted draw (the recorded randomisation, reproducible)."""
    if not ids or len(ids) != len(weights):
        raise ValueError("draw needs as many weights as ids, at least one")
    total = math.fsum(weights)
    if not total > 0:
        raise ValueError("weights must sum to more than 0")
    u = random.Random(seed).random() * total
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if u < acc:
            return i
    return len(weights) - 1  # u within rounding of the total


def choose(near: Iterable[tuple[Candidate, float]], today: Today, policy: Policy, now_ms: int,
           seed: int) -> Choice | None:
    """The seeded weighted choice among the eligible hot spots, or None when there is none."""
    opts = options(near, today, policy, now_ms)
    if not opts:
        return None
    i = draw([o.candidate.id for o in opts], [o.weight for o in opts], seed)
    return Choice(opts[i], tuple(opts), seed)


# --------------------------------------------------------------------------- the same rule, vectorised

@dataclass(frozen=True)
class Table:
    """Candidates as arrays, in id order, for the gateway's per-request path (`choose_vectorised`)."""

    candidates: tuple[Candidate, ...]
    ids: tuple[str, ...]
    target: "object"       # numpy float array: own target, 0 where none
    active_from: "object"  # numpy float arrays: -inf / +inf where open
    active_to: "object"


def table_of(candidates: Sequence[Candidate]) -> Table:
    import numpy as np

    cands = tuple(sorted(candidates, key=lambda c: c.id))
    return Table(cands, tuple(c.id for c in cands),
                 np.array([c.target_minutes if c.target_minutes and c.target_minutes > 0 else 0.0 for c in cands], float),
                 np.array([-math.inf if c.active_from_ms is None else c.active_from_ms for c in cands], float),
                 np.array([math.inf if c.active_to_ms is None else c.active_to_ms for c in cands], float))


def choose_vectorised(table: Table, dist_m, today: Today, policy: Policy, now_ms: int, seed: int) -> Choice | None:
    """`choose` over every candidate of `table` at distances `dist_m` (numpy, same order), in numpy.

    Same eligibility, same weights to the last bit (the same float operations in the same order) and the
    same draw as `choose(zip(candidates, dist_m), ...)`; tested equal. Only the chosen option is built in
    full: `Choice.options` holds just it, and `eligible` / `weights` come from the arrays.
    """
    import numpy as np

    ids = table.ids
    mask = (dist_m <= policy.max_distance_m) & (table.active_from <= now_ms) & (now_ms < table.active_to)
    idx = np.nonzero(mask)[0]
    if today.trial and len(idx):
        arms = today.arms
        idx = idx[np.fromiter((arms.get(ids[i]) == TREATMENT for i in idx), bool, len(idx))]
    if today.assignments and len(idx):
        counts = today.assignments
        idx = idx[np.fromiter((counts.get(ids[i], 0) < policy.daily_cap for i in idx), bool, len(idx))]
    if not len(idx):
        return None
    own = table.target[idx]
    target = np.where(own > 0, own, policy.default_target_minutes)
    if today.dosage_known and today.minutes:
        minutes = today.minutes
        done = np.fromiter((minutes.get(ids[i], 0.0) for i in idx), float, len(idx))
    else:
        done = np.zeros(len(idx))
    need = np.maximum(0.0, target - done)
    d = dist_m[idx]
    scale = policy.distance_scale_m
    w = (np.minimum(need, target) / target) * scale / (scale + np.maximum(0.0, d))
    w = np.where((need > 0) & (target > 0), w, 0.0)
    keep = w > 0
    idx, target, done, need, d, w = idx[keep], target[keep], done[keep], need[keep], d[keep], w[keep]
    if len(idx) > 1 and today.last_assigned is not None:
        other = np.fromiter((ids[i] != today.last_assigned for i in idx), bool, len(idx))
        if other.any():
            idx, target, done, need, d, w = idx[other], target[other], done[other], need[other], d[other], w[other]
    if not len(idx):
        return None
    eligible = [ids[i] for i in idx]
    weights = w.tolist()
    k = draw(eligible, weights, seed)
    chosen = Option(table.candidates[int(idx[k])], float(d[k]), float(target[k]), float(done[k]), float(need[k]),
                    weights[k])
    return _VectorChoice(chosen, (chosen,), seed, eligible, weights)


@dataclass(frozen=True)
class _VectorChoice(Choice):
    eligible_ids: list = field(default_factory=list)
    weight_list: list = field(default_factory=list)

    @property
    def eligible(self) -> list[str]:
        return self.eligible_ids

    @property
    def weights(self) -> list[float]:
        return self.weight_list


def why(choice: Choice, today: Today, arm: str | None) -> str:
    """One plain sentence on why this hot spot was chosen, for the officer."""
    o = choice.chosen
    parts = []
    if today.trial and arm == TREATMENT:
        parts.append("treated today in the trial")
    if today.dosage_known:
        parts.append(f"{o.need_minutes:.0f} of its {o.target_minutes:.0f} patrol minutes still needed today")
    else:
        parts.append(f"target {o.target_minutes:.0f} patrol minutes (today's patrol time could not be read)")
    parts.append(f"{o.distance_m:,.0f} m away")
    n = len(choice.eligible)
    pick = "the only eligible hot spot" if n == 1 else (
        f"drawn at random from {n} eligible hot spots, weighted by need and distance")
    return (", ".join(parts) + "; " + pick).capitalize()
