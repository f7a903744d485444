"""Scoring of patrol analytics against ground truth: the acceptance figures of issue 3.

Takes plain records (truth from the simulator, predictions from `hotspot replay`
or the live path; times in UTC epoch milliseconds) and computes:

- dwell error: for each officer x hot spot pair whose true total dwell is at
  least `dwell_floor_s` (default 300 s: below that a relative error says more
  about a 10 s drive-through than about dosage), |predicted - true| / true of the
  total dwell; median and 90th percentile (numpy's linear interpolation). Pairs
  with a true visit overlapped by a signal outage of `outage_exclude_s` or more
  (default 300 s, the signal-loss timeout of DESIGN.md section 3) are left out:
  no processor can see dwell during a silence that long, and an honest one must
  not invent it. They are listed apart (`outage_pairs`) so they stay visible;
- false dwell: predicted in-hot-spot time during which the true track was not
  in that hot spot, attributed to the true episode kind at that moment (drive_by,
  edge_walk, patrol, ...), in minutes per 10 device-hours of simulated shift;
- stop F1: a predicted stop matches a true stop of the same device and hot spot
  when their intervals overlap by at least `stop_min_overlap` (default half) of
  the shorter one; matching is one-to-one, best overlap first. A true stop of
  which signal outages leave less than `stop_min_s` (120 s) visible cannot be
  seen by any processor: if it is not found it is counted apart
  (`stops_hidden`), not as a miss; if it is found it is a match;
- foot/vehicle accuracy: over the time the truth says foot (walking) or vehicle
  (moving or waiting in traffic), outside signal outages, the share of time the
  predicted mode is the same. True stationary time (standing stops, sitting in
  the parked car) is left out of that figure and shown in the confusion table;
  predicted stationary, unknown or no prediction during true foot/vehicle time
  counts as wrong.

Pure: no I/O. Everything needed to pool several runs is kept raw in `Scores`
(pair errors, seconds, counts) and `pool()` recombines them.

Length (~550 lines): every acceptance figure with the interval arithmetic it needs and the report that
prints them; split further, the figures would be read away from the thresholds that judge them.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from formats.timestamps import iso_utc

# Acceptance targets of issue 3.
DWELL_MEDIAN_MAX = 0.05
DWELL_P90_MAX = 0.15
FALSE_DWELL_MAX_MIN_PER_10H = 1.0
STOP_F1_MIN = 0.95
FOOT_VEHICLE_MIN = 0.95

EDGE_KINDS = ("drive_by", "edge_walk")
SCORED_MODES = ("foot", "vehicle")


class Visit(NamedTuple):
    device_id: str
    hotspot_id: str
    start_ms: int
    end_ms: int
    dwell_s: float


class Span(NamedTuple):
    """A labelled time interval of one device: a stop (label = hot spot), a mode or an episode kind."""

    device_id: str
    label: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class TruthSet:
    visits: Sequence[Visit]
    stops: Sequence[Span]       # label: hot spot id
    modes: Sequence[Span]       # label: foot | vehicle | stationary
    episodes: Sequence[Span]    # label: episode kind
    gaps: Sequence[Span]        # signal outages, label unused
    device_hours: float
    device_info: Mapping[str, str] = field(default_factory=dict)  # device -> "airwave 5m" etc., for breakdowns


@dataclass(frozen=True)
class Predicted:
    visits: Sequence[Visit]
    stops: Sequence[Span]       # label: hot spot id ("" if none)
    modes: Sequence[Span]       # label: foot | vehicle | stationary | unknown


class PairError(NamedTuple):
    device_id: str
    hotspot_id: str
    true_s: float
    predicted_s: float

    @property
    def rel_error(self) -> float:
        return abs(self.predicted_s - self.true_s) / self.true_s


class FalseDwell(NamedTuple):
    device_id: str
    hotspot_id: str
    start_ms: int
    end_ms: int
    kind: str


class StopMiss(NamedTuple):
    device_id: str
    hotspot_id: str
    start_ms: int
    end_ms: int
    what: str  # "missed" (true stop not found) or "false" (predicted stop with no true stop)


class Check(NamedTuple):
    name: str
    value: float
    target: str
    passed: bool


@dataclass
class Scores:
    """Raw material of the figures; properties compute them, `pool` merges runs."""

    dwell_floor_s: float
    device_hours: float
    pair_errors: list[PairError]
    small_pairs: list[PairError]                 # true dwell below the floor (drive-throughs...)
    outage_pairs: list[PairError]                # a long signal outage hid part of a true visit
    false_s_by_kind: dict[str, float]
    false_dwell: list[FalseDwell]
    stops_true: int
    stops_pred: int
    stops_matched: int
    stops_hidden: int
    stop_misses: list[StopMiss]
    mode_seconds: dict[tuple[str, str], float]   # (true, predicted) -> seconds, outside outages
    edge_exposure_s: float
    device_info: dict[str, str] = field(default_factory=dict)
    # device class (device_info) -> [seconds right, seconds scored] of foot/vehicle time
    mode_by_class: dict[str, list[float]] = field(default_factory=dict)

    # --- dwell
    @property
    def dwell_pairs(self) -> int:
        return len(self.pair_errors)

    def _rel(self) -> np.ndarray:
        return np.array([p.rel_error for p in self.pair_errors])

    @property
    def dwell_median(self) -> float:
        r = self._rel()
        return float(np.median(r)) if len(r) else math.nan

    @property
    def dwell_p90(self) -> float:
        r = self._rel()
        return float(np.percentile(r, 90)) if len(r) else math.nan

    @property
    def dwell_bias(self) -> float:
        """Median signed relative error: negative means dwell is under-counted."""
        r = [(p.predicted_s - p.true_s) / p.true_s for p in self.pair_errors]
        return float(np.median(r)) if r else math.nan

    # --- false dwell
    def false_min_per_10h(self, kinds: Iterable[str] | None = None) -> float:
        if self.device_hours <= 0:
            return math.nan
        secs = sum(v for k, v in self.false_s_by_kind.items() if kinds is None or k in kinds)
        return secs / 60.0 * 10.0 / self.device_hours

    @property
    def false_edges(self) -> float:
        """Minutes of false dwell from drive-bys and edge walks per 10 device-hours."""
        return self.false_min_per_10h(EDGE_KINDS)

    # --- stops
    @property
    def stop_precision(self) -> float:
        return self.stops_matched / self.stops_pred if self.stops_pred else math.nan

    @property
    def stop_recall(self) -> float:
        return self.stops_matched / self.stops_true if self.stops_true else math.nan

    @property
    def stop_f1(self) -> float:
        total = self.stops_true + self.stops_pred
        return 2.0 * self.stops_matched / total if total else math.nan

    # --- modes
    @property
    def foot_vehicle_accuracy(self) -> float:
        scored = sum(v for (t, _), v in self.mode_seconds.items() if t in SCORED_MODES)
        right = sum(v for (t, p), v in self.mode_seconds.items() if t in SCORED_MODES and p == t)
        return right / scored if scored else math.nan

    @property
    def three_class_agreement(self) -> float:
        total = sum(self.mode_seconds.values())
        right = sum(v for (t, p), v in self.mode_seconds.items() if p == t)
        return right / total if total else math.nan

    # --- acceptance
    def checks(self) -> list[Check]:
        return [
            Check("dwell median relative error", self.dwell_median, f"<= {DWELL_MEDIAN_MAX:.0%}",
                  self.dwell_median <= DWELL_MEDIAN_MAX),
            Check("dwell p90 relative error", self.dwell_p90, f"<= {DWELL_P90_MAX:.0%}", self.dwell_p90 <= DWELL_P90_MAX),
            Check("false dwell, drive-bys + edge walks (min / 10 device-h)", self.false_edges,
                  f"< {FALSE_DWELL_MAX_MIN_PER_10H:g}", self.false_edges < FALSE_DWELL_MAX_MIN_PER_10H),
            Check("stop F1", self.stop_f1, f">= {STOP_F1_MIN:g}", self.stop_f1 >= STOP_F1_MIN),
            Check("foot/vehicle right (share of time)", self.foot_vehicle_accuracy, f">= {FOOT_VEHICLE_MIN:.0%}",
                  self.foot_vehicle_accuracy >= FOOT_VEHICLE_MIN),
        ]

    def summary(self) -> dict[str, float]:
        return {
            "dwell_pairs": self.dwell_pairs,
            "dwell_median": self.dwell_median,
            "dwell_p90": self.dwell_p90,
            "dwell_bias": self.dwell_bias,
            "false_edges_min_per_10h": self.false_edges,
            "false_all_min_per_10h": self.false_min_per_10h(),
            "stop_f1": self.stop_f1,
            "stop_precision": self.stop_precision,
            "stop_recall": self.stop_recall,
            "foot_vehicle": self.foot_vehicle_accuracy,
            "three_class": self.three_class_agreement,
            "device_hours": self.device_hours,
        }

    def report(self, max_rows: int = 5) -> str:
        """Figures, then the worst cases behind them: enough to reproduce a miss."""
        lines = [
            f"dwell: {self.dwell_pairs} officer x hot-spot pairs with true dwell >= {self.dwell_floor_s:g} s; "
            f"median error {_pct(self.dwell_median)}, p90 {_pct(self.dwell_p90)}, median signed {_pct(self.dwell_bias, True)}",
            f"false dwell per 10 device-h ({self.device_hours:.1f} device-h, {self.edge_exposure_s / 3600:.1f} h of "
            f"drive-bys/edge walks): drive-by+edge {self.false_edges:.2f} min, all {self.false_min_per_10h():.2f} min "
            f"[{', '.join(f'{k} {v / 60:.1f} min' for k, v in sorted(self.false_s_by_kind.items()) if v > 0) or 'none'}]",
            f"stops: {self.stops_true} true, {self.stops_pred} predicted, {self.stops_matched} matched; "
            f"precision {_f(self.stop_precision)}, recall {_f(self.stop_recall)}, F1 {_f(self.stop_f1)}"
            + (f" ({self.stops_hidden} true stops hidden by signal outages, not scored)" if self.stops_hidden else ""),
            f"modes: foot/vehicle right {_pct(self.foot_vehicle_accuracy)} of the time; "
            f"3-class agreement {_pct(self.three_class_agreement)}",
        ]
        if self.device_info and self.pair_errors:
            by = defaultdict(list)
            for p in self.pair_errors:
                by[self.device_info.get(p.device_id, "?")].append(p.rel_error)
            lines.append("dwell error by device: " + "; ".join(
                f"{k}: median {_pct(float(np.median(v)))} p90 {_pct(float(np.percentile(v, 90)))} (n={len(v)})"
                for k, v in sorted(by.items())))
        if self.outage_pairs:
            over = sum(1 for p in self.outage_pairs if p.predicted_s > p.true_s * 1.05)
            lines.append(f"not scored: {len(self.outage_pairs)} pairs whose true visit a signal outage hid "
                         f"(median error {_pct(float(np.median([p.rel_error for p in self.outage_pairs])))}; "
                         f"{over} over-counted by more than 5%)")
        if self.mode_by_class:
            lines.append("foot/vehicle right by device: " + "; ".join(
                f"{k}: {_pct(r / n if n else math.nan)}" for k, (r, n) in sorted(self.mode_by_class.items())))
        worst = sorted(self.pair_errors, key=lambda p: -p.rel_error)[:max_rows]
        if worst:
            lines.append("worst dwell pairs (device, hot spot, true s, predicted s):")
            lines += [f"  {p.device_id} {p.hotspot_id} {p.true_s:.0f} {p.predicted_s:.0f} ({_pct(p.rel_error)})"
                      for p in worst]
        edge_false = sorted((f for f in self.false_dwell if f.kind in EDGE_KINDS),
                            key=lambda f: f.start_ms - f.end_ms)[:max_rows]
        if edge_false:
            lines.append("largest false dwell on drive-bys/edge walks (device, hot spot, from, seconds):")
            lines += [f"  {f.device_id} {f.hotspot_id} {iso_utc(f.start_ms)} {(f.end_ms - f.start_ms) / 1000:.0f} s ({f.kind})"
                      for f in edge_false]
        if self.stop_misses:
            lines.append("stop mismatches (device, hot spot, from, seconds, what):")
            lines += [f"  {m.device_id} {m.hotspot_id} {iso_utc(m.start_ms)} {(m.end_ms - m.start_ms) / 1000:.0f} s {m.what}"
                      for m in self.stop_misses[:max_rows]]
        wrong = sorted(((k, v) for k, v in self.mode_seconds.items() if k[0] in SCORED_MODES and k[0] != k[1]),
                       key=lambda kv: -kv[1])
        if wrong:
            lines.append("mode confusion on foot/vehicle time (true -> predicted): " + ", ".join(
                f"{t}->{p} {v / 60:.1f} min" for (t, p), v in wrong[:6]))
        return "\n".join(lines)


def _pct(v: float, signed: bool = False) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"


def _f(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.3f}"


# ---------------------------------------------------------------------------
# Interval arithmetic on sorted, disjoint [start, end) lists (milliseconds)

def merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def subtract(a: tuple[int, int], cover: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Parts of interval a not covered by the merged intervals `cover`."""
    pieces, cur = [], a[0]
    for s, e in cover:
        if e <= cur or s >= a[1]:
            continue
        if s > cur:
            pieces.append((cur, s))
        cur = max(cur, e)
        if cur >= a[1]:
            break
    if cur < a[1]:
        pieces.append((cur, a[1]))
    return pieces


def overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


# ---------------------------------------------------------------------------
# The figures

def dwell_errors(truth: Sequence[Visit], predicted: Sequence[Visit], floor_s: float,
                 outages: Sequence[Span] = (), outage_exclude_s: float = 300.0
                 ) -> tuple[list[PairError], list[PairError], list[PairError]]:
    """Total dwell per device x hot spot: (scored pairs, pairs below the floor, pairs hit by a long outage)."""
    true_tot: dict[tuple[str, str], float] = defaultdict(float)
    pred_tot: dict[tuple[str, str], float] = defaultdict(float)
    long_out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for g in outages:
        if g.end_ms - g.start_ms >= outage_exclude_s * 1000:
            long_out[g.device_id].append((g.start_ms, g.end_ms))
    hidden: set[tuple[str, str]] = set()
    for v in truth:
        key = (v.device_id, v.hotspot_id)
        true_tot[key] += v.dwell_s
        if any(overlap((v.start_ms, v.end_ms), g) > 0 for g in long_out.get(v.device_id, ())):
            hidden.add(key)
    for v in predicted:
        pred_tot[(v.device_id, v.hotspot_id)] += v.dwell_s
    scored, small, hit = [], [], []
    for key in sorted(true_tot):
        pe = PairError(key[0], key[1], true_tot[key], pred_tot.get(key, 0.0))
        if pe.true_s < floor_s:
            small.append(pe)
        elif key in hidden:
            hit.append(pe)
        else:
            scored.append(pe)
    return scored, small, hit


def false_dwell(truth: Sequence[Visit], predicted: Sequence[Visit],
                episodes: Sequence[Span]) -> tuple[dict[str, float], list[FalseDwell]]:
    """Predicted visit time outside the true visits of the same device and hot spot, by episode kind."""
    inside: dict[tuple[str, str], list] = defaultdict(list)
    for v in truth:
        inside[(v.device_id, v.hotspot_id)].append((v.start_ms, v.end_ms))
    inside = {k: merge(v) for k, v in inside.items()}
    eps: dict[str, list[Span]] = defaultdict(list)
    for e in episodes:
        eps[e.device_id].append(e)
    for v in eps.values():
        v.sort(key=lambda e: e.start_ms)
    starts = {d: np.array([e.start_ms for e in v]) for d, v in eps.items()}
    by_kind: dict[str, float] = defaultdict(float)
    pieces: list[FalseDwell] = []
    for v in predicted:
        for a, b in subtract((v.start_ms, v.end_ms), inside.get((v.device_id, v.hotspot_id), [])):
            dev_eps = eps.get(v.device_id, [])
            covered = 0
            first = max(0, int(np.searchsorted(starts[v.device_id], a, side="right")) - 1) if dev_eps else 0
            for e in dev_eps[first:]:
                if e.start_ms >= b:
                    break
                o = overlap((a, b), (e.start_ms, e.end_ms))
                if o:
                    by_kind[e.label] += o / 1000.0
                    covered += o
                    pieces.append(FalseDwell(v.device_id, v.hotspot_id, max(a, e.start_ms), min(b, e.end_ms), e.label))
            if b - a > covered:
                by_kind["none"] += (b - a - covered) / 1000.0
    return dict(by_kind), pieces


def split_hidden_stops(stops: Sequence[Span], outages: Sequence[Span],
                       min_visible_s: float) -> tuple[list[Span], list[Span]]:
    """(stops a processor could see, stops signal outages leave under min_visible_s of)."""
    by_dev: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for g in outages:
        by_dev[g.device_id].append((g.start_ms, g.end_ms))
    visible, hidden = [], []
    for s in stops:
        gone = sum(overlap((s.start_ms, s.end_ms), g) for g in merge(by_dev.get(s.device_id, [])))
        (visible if (s.end_ms - s.start_ms - gone) >= min_visible_s * 1000 else hidden).append(s)
    return visible, hidden


def match_stops(truth: Sequence[Span], predicted: Sequence[Span],
                min_overlap: float = 0.5) -> tuple[int, list[StopMiss]]:
    """One-to-one matching of stops; returns (matches, the unmatched stops of either side)."""
    cands = []
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for j, p in enumerate(predicted):
        by_key[(p.device_id, p.label)].append(j)
    for i, t in enumerate(truth):
        for j in by_key.get((t.device_id, t.label), []):
            p = predicted[j]
            o = overlap((t.start_ms, t.end_ms), (p.start_ms, p.end_ms))
            shorter = min(t.end_ms - t.start_ms, p.end_ms - p.start_ms)
            if o > 0 and o >= min_overlap * shorter:
                cands.append((-o, i, j))
    cands.sort()
    used_t, used_p = set(), set()
    for _, i, j in cands:
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
    misses = [StopMiss(t.device_id, t.label, t.start_ms, t.end_ms, "missed")
              for i, t in enumerate(truth) if i not in used_t]
    misses += [StopMiss(p.device_id, p.label, p.start_ms, p.end_ms, "false")
               for j, p in enumerate(predicted) if j not in used_p]
    misses.sort(key=lambda m: (m.device_id, m.start_ms))
    return len(used_t), misses


def mode_confusion(truth: Sequence[Span], predicted: Sequence[Span],
                   gaps: Sequence[Span]) -> dict[tuple[str, str], float]:
    """Seconds of (true mode, predicted mode) over the true spans, outside outages.

    Time no predicted span covers is labelled "none".
    """
    out: dict[tuple[str, str], float] = defaultdict(float)
    devices = sorted({s.device_id for s in truth})
    pred_by = defaultdict(list)
    gap_by = defaultdict(list)
    for p in predicted:
        pred_by[p.device_id].append(p)
    for g in gaps:
        gap_by[g.device_id].append((g.start_ms, g.end_ms))
    for d in devices:
        ts = [s for s in truth if s.device_id == d]
        ps = sorted(pred_by[d], key=lambda s: s.start_ms)
        cuts = sorted({x for s in ts for x in (s.start_ms, s.end_ms)} | {x for s in ps for x in (s.start_ms, s.end_ms)}
                      | {x for g in gap_by[d] for x in g})
        if len(cuts) < 2:
            continue
        cuts = np.array(cuts, dtype=np.int64)
        mids = (cuts[:-1] + cuts[1:]) / 2.0
        lens = np.diff(cuts) / 1000.0
        t_lab = _label_at(mids, ts)
        p_lab = _label_at(mids, ps)
        in_gap = np.zeros(len(mids), dtype=bool)
        for a, b in gap_by[d]:
            in_gap |= (mids > a) & (mids < b)
        for tl, pl, ln, g in zip(t_lab, p_lab, lens, in_gap):
            if tl is not None and not g:
                out[(tl, pl or "none")] += float(ln)
    return dict(out)


def _label_at(points: np.ndarray, spans: Sequence[Span]) -> list[str | None]:
    labels: list[str | None] = [None] * len(points)
    if not spans:
        return labels
    order = sorted(spans, key=lambda s: s.start_ms)
    starts = np.array([s.start_ms for s in order])
    idx = np.searchsorted(starts, points, side="right") - 1
    for k, (i, x) in enumerate(zip(idx, points)):
        if i >= 0 and order[i].start_ms <= x < order[i].end_ms:
            labels[k] = order[i].label
    return labels


def score(truth: TruthSet, predicted: Predicted, *, dwell_floor_s: float = 300.0,
          outage_exclude_s: float = 300.0, stop_min_overlap: float = 0.5, stop_min_s: float = 120.0) -> Scores:
    big, small, hit = dwell_errors(truth.visits, predicted.visits, dwell_floor_s, truth.gaps, outage_exclude_s)
    by_kind, pieces = false_dwell(truth.visits, predicted.visits, truth.episodes)
    # A hidden stop that was found anyway is a match; one that was not is no miss.
    _visible, hidden = split_hidden_stops(truth.stops, truth.gaps, stop_min_s)
    matched, misses = match_stops(truth.stops, predicted.stops, stop_min_overlap)
    hidden_keys = {(h.device_id, h.label, h.start_ms, h.end_ms) for h in hidden}
    unseen = [m for m in misses if m.what == "missed" and (m.device_id, m.hotspot_id, m.start_ms, m.end_ms) in hidden_keys]
    misses = [m for m in misses if m not in unseen]
    confusion = mode_confusion(truth.modes, predicted.modes, truth.gaps)
    by_class: dict[str, list[float]] = {}
    if truth.device_info:
        for dev, label in truth.device_info.items():
            c = mode_confusion([m for m in truth.modes if m.device_id == dev],
                               [m for m in predicted.modes if m.device_id == dev],
                               [g for g in truth.gaps if g.device_id == dev])
            acc = by_class.setdefault(label, [0.0, 0.0])
            acc[0] += sum(v for (t, p), v in c.items() if t in SCORED_MODES and t == p)
            acc[1] += sum(v for (t, _), v in c.items() if t in SCORED_MODES)
    exposure = sum((e.end_ms - e.start_ms) / 1000.0 for e in truth.episodes if e.label in EDGE_KINDS)
    return Scores(dwell_floor_s=dwell_floor_s, device_hours=truth.device_hours, pair_errors=big, small_pairs=small,
                  outage_pairs=hit,
                  false_s_by_kind=by_kind, false_dwell=pieces, stops_true=len(truth.stops) - len(unseen),
                  stops_pred=len(predicted.stops), stops_matched=matched, stops_hidden=len(unseen),
                  stop_misses=misses,
                  mode_seconds=confusion, edge_exposure_s=exposure, device_info=dict(truth.device_info),
                  mode_by_class=by_class)


def pool(runs: Sequence[Scores]) -> Scores:
    """Several runs as one: pairs, seconds and counts added up (device ids should differ or be prefixed)."""
    if not runs:
        raise ValueError("nothing to pool")
    kinds: dict[str, float] = defaultdict(float)
    modes: dict[tuple[str, str], float] = defaultdict(float)
    info: dict[str, str] = {}
    by_class: dict[str, list[float]] = {}
    for r in runs:
        for k, (right, n) in r.mode_by_class.items():
            acc = by_class.setdefault(k, [0.0, 0.0])
            acc[0] += right
            acc[1] += n
        for k, v in r.false_s_by_kind.items():
            kinds[k] += v
        for k, v in r.mode_seconds.items():
            modes[k] += v
        info.update(r.device_info)
    return Scores(
        dwell_floor_s=runs[0].dwell_floor_s, device_hours=sum(r.device_hours for r in runs),
        pair_errors=[p for r in runs for p in r.pair_errors], small_pairs=[p for r in runs for p in r.small_pairs],
        outage_pairs=[p for r in runs for p in r.outage_pairs],
        false_s_by_kind=dict(kinds), false_dwell=[f for r in runs for f in r.false_dwell],
        stops_true=sum(r.stops_true for r in runs), stops_pred=sum(r.stops_pred for r in runs),
        stops_matched=sum(r.stops_matched for r in runs), stops_hidden=sum(r.stops_hidden for r in runs),
        stop_misses=[m for r in runs for m in r.stop_misses],
        mode_seconds=dict(modes), edge_exposure_s=sum(r.edge_exposure_s for r in runs), device_info=info,
        mode_by_class=by_class)
