"""Randomised trial schedules for hot-spot patrols, and "is this hot spot treated now?".

Designs:
- crossover: every trial day each block's units are split afresh, half treated
  and half control, so each hot spot is its own control on other days;
- parallel: each block's units are split once, and each stays in its arm for
  the whole trial.

A unit is what gets randomised: one hot spot, or several hot spots that must
move together (a hot spot made of several patrol areas). A block is a set of
units balanced against each other (an area code, a neighbourhood).

A trial day runs from 06:00 local time to 05:59:59 the next morning, in the
force's time zone, so a Friday-night shift belongs to Friday. On the days the
clocks change a trial day lasts 23 or 25 hours. `starts_at` and `ends_at` are
UTC and half-open: `ends_at` is the next day's `starts_at`.

Randomisation, chosen to be reproducible anywhere and stable under edits:
a unit's place in its block on day d is the SHA-256 digest of
"seed:d:block:unit" (crossover) or "seed:parallel:block:unit" (parallel); the
first half in digest order is treated. The digest, unlike a shuffle, does not
depend on the Python or numpy version, on the order of the input file, or on
which other units exist, and adding days to a trial leaves earlier days as
they were.

Odd blocks: a block of n = 2k + 1 units treats k or k + 1. Odd blocks are put
in a fixed random order (digest of "seed:odd:block"); on day d the m-th odd
block treats k + 1 when m + d is even. So each odd block alternates day by day
(its treated share over the trial is as close to half as whole days allow), and
on any day the odd blocks between them treat at most one extra unit, keeping
the trial-wide split within one of half. For parallel designs d is 0.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

CROSSOVER = "crossover"
PARALLEL = "parallel"
DESIGNS = (CROSSOVER, PARALLEL)
TREATMENT = "treatment"
CONTROL = "control"
DAY_STARTS = time(6, 0)

# Column order of the ClickHouse `allocations` table and of the CSV export.
ALLOCATION_COLUMNS = ("trial_id", "hotspot_id", "day", "starts_at", "ends_at", "arm", "block", "design", "seed")


class AllocationError(ValueError):
    """The units cannot be allocated as asked; the message says why."""


@dataclass(frozen=True)
class TrialUnit:
    unit_id: str
    hotspot_ids: tuple[str, ...]
    block: str = ""


@dataclass(frozen=True)
class Allocation:
    trial_id: str
    hotspot_id: str
    day: date  # the trial day, named by the date on which it starts at 06:00 local
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC, exclusive
    arm: str
    block: str
    unit_id: str


@dataclass(frozen=True)
class Schedule:
    trial_id: str
    design: str
    seed: int
    start: date
    days: int
    tz: str
    allocations: tuple[Allocation, ...]
    day_starts: time = DAY_STARTS
    _arm: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if not self._arm:
            self._arm.update({(a.hotspot_id, a.day): a.arm for a in self.allocations})

    def arm_of(self, hotspot_id: str, day: date) -> str | None:
        return self._arm.get((hotspot_id, day))


def make_units(hotspots: Iterable[tuple[str, str | None, str | None]]) -> list[TrialUnit]:
    """Units from (hotspot_id, block, group) triples.

    Hot spots sharing a non-empty group form one unit (named after the group);
    the others are units of one. A unit's hot spots must share a block.
    """
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen: set[str] = set()
    for hid, block, group in hotspots:
        if not hid:
            raise AllocationError("a hot spot has no id")
        if hid in seen:
            raise AllocationError(f"hot spot id {hid!r} appears twice")
        seen.add(hid)
        unit = f"group:{group}" if group not in (None, "") else hid
        groups[unit].append((hid, "" if block is None else str(block)))
    units = []
    for unit, members in groups.items():
        blocks = {b for _, b in members}
        if len(blocks) > 1:
            raise AllocationError(f"{unit} spans blocks {', '.join(sorted(blocks))}: a unit must sit in one block")
        units.append(TrialUnit(unit, tuple(sorted(h for h, _ in members)), blocks.pop()))
    return sorted(units, key=lambda u: u.unit_id)


def _digest(*parts) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def trial_day_bounds(day: date, tz: str = "Europe/London", day_starts: time = DAY_STARTS) -> tuple[datetime, datetime]:
    """UTC start and (exclusive) end of the trial day named `day`."""
    zone = ZoneInfo(tz)

    def start_of(d: date) -> datetime:
        return datetime.combine(d, day_starts, tzinfo=zone).astimezone(timezone.utc)

    return start_of(day), start_of(day + timedelta(days=1))


def trial_day(when_utc: datetime, tz: str = "Europe/London", day_starts: time = DAY_STARTS) -> date:
    """The trial day an instant belongs to: its local date, or the day before if before 06:00 local."""
    if when_utc.tzinfo is None:
        raise ValueError("when_utc must be timezone-aware")
    local = when_utc.astimezone(ZoneInfo(tz))
    return local.date() if local.time() >= day_starts else local.date() - timedelta(days=1)


def make_schedule(units: Sequence[TrialUnit], *, design: str, start: date, days: int, seed: int,
                  tz: str = "Europe/London", trial_id: str | None = None,
                  day_starts: time = DAY_STARTS) -> Schedule:
    if design not in DESIGNS:
        raise AllocationError(f"design must be crossover or parallel, not {design!r}")
    if days < 1:
        raise AllocationError("a trial needs at least one day")
    if not units:
        raise AllocationError("no hot spots to allocate")
    if design == CROSSOVER and len(units) < 2:
        raise AllocationError("a crossover trial needs at least two units")
    trial_id = trial_id or f"{design}-{start.isoformat()}-seed{seed}"
    blocks: dict[str, list[TrialUnit]] = defaultdict(list)
    for u in units:
        blocks[u.block].append(u)
    odd = sorted((b for b, us in blocks.items() if len(us) % 2), key=lambda b: _digest(seed, "odd", b))
    odd_pos = {b: m for m, b in enumerate(odd)}

    rows: list[Allocation] = []
    parallel_arms = _split(blocks, odd_pos, seed, None) if design == PARALLEL else None
    for d in range(days):
        day = start + timedelta(days=d)
        starts_at, ends_at = trial_day_bounds(day, tz, day_starts)
        arms = parallel_arms or _split(blocks, odd_pos, seed, d)
        for u in sorted(units, key=lambda u: (u.block, u.unit_id)):
            for hid in u.hotspot_ids:
                rows.append(Allocation(trial_id, hid, day, starts_at, ends_at, arms[u.unit_id], u.block, u.unit_id))
    return Schedule(trial_id, design, seed, start, days, tz, tuple(rows), day_starts)


def _split(blocks: dict[str, list[TrialUnit]], odd_pos: dict[str, int], seed: int, day_index: int | None) -> dict[str, str]:
    arms = {}
    salt = PARALLEL if day_index is None else day_index
    for block, members in blocks.items():
        order = sorted(members, key=lambda u: _digest(seed, salt, block, u.unit_id))
        n_treated = len(members) // 2
        if block in odd_pos and (odd_pos[block] + (day_index or 0)) % 2 == 0:
            n_treated += 1
        for k, u in enumerate(order):
            arms[u.unit_id] = TREATMENT if k < n_treated else CONTROL
    return arms


def arm_at(schedule: Schedule, hotspot_id: str, when_utc: datetime) -> str | None:
    """'treatment' or 'control' for the hot spot at that instant; None outside the trial or for other hot spots."""
    return schedule.arm_of(hotspot_id, trial_day(when_utc, schedule.tz, schedule.day_starts))


def is_treated(schedule: Schedule, hotspot_id: str, when_utc: datetime) -> bool:
    """True when the hot spot is in the treatment arm on the trial day holding `when_utc`."""
    return arm_at(schedule, hotspot_id, when_utc) == TREATMENT


def allocation_rows(schedule: Schedule) -> list[dict]:
    """Rows for the ClickHouse `allocations` table (columns ALLOCATION_COLUMNS; datetimes UTC-aware)."""
    return [{"trial_id": a.trial_id, "hotspot_id": a.hotspot_id, "day": a.day, "starts_at": a.starts_at,
             "ends_at": a.ends_at, "arm": a.arm, "block": a.block, "design": schedule.design, "seed": schedule.seed}
            for a in schedule.allocations]


def schedule_from_rows(rows: Iterable[dict], *, tz: str = "Europe/London", day_starts: time = DAY_STARTS) -> Schedule:
    """Rebuild a Schedule from stored `allocations` rows (one trial), e.g. for the direction logic."""
    rows = list(rows)
    if not rows:
        raise AllocationError("no allocation rows")
    first = rows[0]
    allocs = []
    for r in rows:
        day = r["day"] if isinstance(r["day"], date) else date.fromisoformat(str(r["day"]))
        allocs.append(Allocation(r["trial_id"], r["hotspot_id"], day, _utc(r["starts_at"]), _utc(r["ends_at"]),
                                 r["arm"], r.get("block", ""), r.get("unit_id", r["hotspot_id"])))
    days = sorted({a.day for a in allocs})
    return Schedule(first["trial_id"], first["design"], int(first["seed"]), days[0], (days[-1] - days[0]).days + 1,
                    tz, tuple(allocs), day_starts)


def _utc(value) -> datetime:
    """A stored instant as an aware UTC datetime (ClickHouse returns naive UTC; CSV gives ISO text)."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def balance(schedule: Schedule) -> dict:
    """Checks for people: treated units per block per day, and treated days per unit."""
    per_day_block: dict[tuple[date, str], set[str]] = defaultdict(set)
    units_per_block: dict[str, set[str]] = defaultdict(set)
    treated_days: dict[str, set[date]] = defaultdict(set)
    for a in schedule.allocations:
        units_per_block[a.block].add(a.unit_id)
        treated_days.setdefault(a.unit_id, set())
        if a.arm == TREATMENT:
            per_day_block[(a.day, a.block)].add(a.unit_id)
            treated_days[a.unit_id].add(a.day)
    days = sorted({a.day for a in schedule.allocations})
    treated_per_day = [sum(len(per_day_block[(d, b)]) for b in units_per_block) for d in days]
    return {
        "units": sum(len(v) for v in units_per_block.values()),
        "blocks": {b: len(v) for b, v in sorted(units_per_block.items())},
        "treated_per_day": {"min": min(treated_per_day), "max": max(treated_per_day)},
        "treated_days_per_unit": {"min": min(len(v) for v in treated_days.values()),
                                  "max": max(len(v) for v in treated_days.values())},
        "days": len(days),
    }
