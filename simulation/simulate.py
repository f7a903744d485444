"""Seeded simulator of officers patrolling a town's hot spots, with ground truth: the `Simulation` that runs it.

The package owns the synthetic world the analytics are tested against, one
job a module: simulation/config.py (profiles, scenarios), world.py (the town
and its hot spots), officers.py (officer behaviour: the noise-free track),
device.py (device noise: what phones report), truth.py and records.py (the
truth and the output records); this module plans a day and puts them
together. Described whole: a town
(a rotated street grid and hot-spot polygons), officers driving and walking
through it (transit drives with junction waits, park-and-walk patrols with
standing stops, drive-throughs, drive-bys and walks 10-25 m outside hot-spot
edges), the devices that report them (update interval, accuracy class, GPS
error correlated in time, signal gaps, duplicates, late delivery, wild
outliers) and the truth those devices only approximate: when each officer was
really inside each hot spot, where they really stood still, and whether they
were on foot or in a vehicle. Truth comes from the noise-free track alone.

Pure: no I/O and no clock. All randomness flows from `SimConfig.seed` through a
numpy SeedSequence tree (one child for the town, one per officer), so the same
configuration gives the same pings and truth, and officer k's day does not
depend on how many other officers are simulated.

Geometry works in metres in a local azimuthal-equidistant frame centred on the
town; hot spots are converted from the WGS84 coordinates exactly as written to
the hot-spot file, so truth uses the polygon as drawn (widened by `buffer_m`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

from simulation.config import FOOT_CODE, MODE_NAMES, PROFILES, STATIONARY_CODE, SimConfig, VEHICLE_CODE
from simulation.device import Observed, observe
from simulation.officers import simulate_officer
from simulation.records import PingTable, SimDevice, SimPing, TrueTrack, Truth, TruthEpisode, TruthGap, TruthMode, TruthStop, TruthVisit
from simulation.truth import inside_intervals, mode_seconds
from simulation.world import LocalFrame, Town, features_centre, generate_hotspots, hotspots_from_features

# ---------------------------------------------------------------------------
# The simulation

@dataclass
class _OfficerResult:
    device: SimDevice
    visits: list[TruthVisit]
    stops: list[TruthStop]
    modes: list[TruthMode]
    episodes: list[TruthEpisode]
    observed: Observed
    track: TrueTrack


class Simulation:
    """A seeded day of simulated officers: pings in delivery order and the truth behind them.

    >>> sim = Simulation(SimConfig(seed=7, officers=3, hours=1))
    >>> for p in sim.pings(): ...          # delivery order; pace a live demo by p.delivered_ms
    >>> truth = sim.truth()                  # visits, stops, modes, episodes, gaps

    `hotspots` are GeoJSON features (the hot-spot file format); without them a town
    of `config.hotspot_count` synthetic hot spots is generated. Work happens on
    first use and is cached; `run(progress)` does it eagerly with a callback
    `progress(officers_done, officers_total)`.
    """

    def __init__(self, config: SimConfig | None = None, hotspots: Sequence[Mapping] | None = None):
        self.config = config or SimConfig()
        root = np.random.SeedSequence(self.config.seed)
        self._town_seed, officers_seed = root.spawn(2)
        self._officer_seeds = officers_seed.spawn(self.config.officers)
        self._given = [dict(f) for f in hotspots] if hotspots is not None else None
        if self._given is not None and not self._given:
            raise ValueError("no hot spots given")
        self._results: list[_OfficerResult] | None = None
        self._by_officer: dict[int, _OfficerResult] = {}

    # --- the world
    @cached_property
    def _town(self) -> Town:
        rng = np.random.default_rng(self._town_seed)
        if self._given is None:
            frame = LocalFrame(self.config.origin_lat, self.config.origin_lon)
            features = generate_hotspots(rng, frame, self.config.hotspot_count, self.config.town_radius_m)
        else:
            frame = LocalFrame(*features_centre(self._given))
            features = self._given
        self._features = features
        return Town(frame, hotspots_from_features(features, frame), rng, self.config.street_spacing_m,
                    self.config.junction_wait_prob, self.config.junction_wait_s)

    @property
    def hotspots_given(self) -> bool:
        """True when the hot spots came from the caller rather than a generated town."""
        return self._given is not None

    @property
    def frame(self) -> LocalFrame:
        return self._town.frame

    @property
    def hotspots(self) -> list[dict]:
        """The hot-spot features (generated or given), as written to hotspots.geojson."""
        self._town
        return self._features

    def hotspot_areas(self) -> dict[str, Polygon | MultiPolygon]:
        """Each hot spot's polygon as truth counts it (drawn + buffer_m), in local metres."""
        return {h.id: h.area for h in self._town.hotspots}

    def feature_collection(self) -> dict:
        return {"type": "FeatureCollection", "features": self.hotspots}

    @property
    def device_ids(self) -> tuple[str, ...]:
        return tuple(f"{self.config.device_prefix}-{i + 1:03d}" for i in range(self.config.officers))

    # --- running
    def run(self, progress: Callable[[int, int], None] | None = None) -> "Simulation":
        if self._results is None:
            results = []
            for i in range(self.config.officers):
                results.append(self._planned(i))
                if progress:
                    progress(i + 1, self.config.officers)
            self._results = results
        return self

    def _planned(self, i: int) -> _OfficerResult:
        if i not in self._by_officer:
            self._by_officer[i] = self._officer(i)
        return self._by_officer[i]

    def officer_pings(self, i: int) -> list[SimPing]:
        """Officer i's delivered pings in delivery order, planning only that officer (about 1/officers of
        `run()`): a live simulation starts sending the first officer's pings while it plans the others."""
        o = self._planned(i).observed
        lon, lat = self.frame.to_lonlat(o.x, o.y)
        lat, lon = np.round(np.asarray(lat), 7), np.round(np.asarray(lon), 7)
        device_id = self.device_ids[i]

        def opt(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        order = np.argsort(o.delivered_ms, kind="stable")  # the same order as pings() within one device
        return [SimPing(device_id, int(o.ts_ms[k]), int(o.delivered_ms[k]), float(lat[k]), float(lon[k]),
                        float(o.accuracy_m[k]), opt(o.speed_mps[k]), opt(o.heading_deg[k]), opt(o.altitude_m[k]),
                        None if int(o.battery[k]) < 0 else int(o.battery[k])) for k in order]

    def _officer(self, i: int) -> _OfficerResult:
        cfg = self.config
        town = self._town
        track_seed, obs_seed, shift_seed = self._officer_seeds[i].spawn(3)
        stagger = int(np.random.default_rng(shift_seed).uniform(0, cfg.shift_stagger_s))
        shift_s = int(round(cfg.hours * 3600))
        shift_start = cfg.start_ms + stagger * 1000
        track = simulate_officer(np.random.default_rng(track_seed), town, cfg, shift_s)
        n = shift_s + 1
        x = np.concatenate(track.xs)[:n]
        y = np.concatenate(track.ys)[:n]
        modes = np.concatenate(track.modes)[:n]
        eps = np.concatenate(track.eps)[:n]
        profile = PROFILES[cfg.profiles[i % len(cfg.profiles)]]
        acc_class = float(cfg.accuracy_classes_m[i % len(cfg.accuracy_classes_m)])
        device_id = self.device_ids[i]
        device = SimDevice(device_id, profile.name, profile.interval_s, acc_class, shift_start,
                           shift_start + shift_s * 1000)

        def ms(sec: float) -> int:
            return shift_start + int(round(sec * 1000))

        # Episodes: runs of the per-sample label; sample k covers (k-1, k].
        episodes: list[TruthEpisode] = []
        ep_of_id: dict[int, str] = {}
        change = np.flatnonzero(np.diff(eps[1:])) + 2 if n > 2 else np.array([], dtype=int)
        bounds = np.concatenate([[1], change, [n]])
        for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            if a >= b:
                continue
            e = int(eps[a])
            kind, hid, offset = track.episodes[e]
            eid = f"{device_id}-e{len(episodes) + 1:04d}"
            ep_of_id.setdefault(e, eid)
            episodes.append(TruthEpisode(eid, device_id, kind, hid, ms(a - 1), ms(b - 1), offset))
        # Visits
        visits: list[TruthVisit] = []
        for hs in town.hotspots:
            for a, b in inside_intervals(x, y, hs.area):
                secs = mode_seconds(modes, a, b)
                e = int(eps[min(n - 1, int(math.floor(a)) + 1)])
                visits.append(TruthVisit("", device_id, hs.id, ms(a), ms(b), round(float(b - a), 3),
                                         round(float(secs[FOOT_CODE]), 3), round(float(secs[VEHICLE_CODE]), 3),
                                         round(float(secs[STATIONARY_CODE]), 3),
                                         track.episodes[e][0], ep_of_id.get(e, ""),
                                         "end_of_data" if b >= n - 1 else "exit"))
        visits.sort(key=lambda v: (v.entered_ms, v.hotspot_id))
        visits = [v._replace(visit_id=f"{device_id}-v{k + 1:04d}") for k, v in enumerate(visits)]
        # Stops: the designed standing stops, cut at the end of the shift, in every hot spot holding them.
        stops: list[TruthStop] = []
        for a, b, cx, cy, e in track.stops:
            b = min(b, shift_s)
            if b - a < 120:
                continue
            lon, lat = town.frame.to_lonlat(cx, cy)
            for hs in town.hotspots:
                if shapely.contains_xy(hs.area, cx, cy):
                    stops.append(TruthStop(f"{device_id}-s{len(stops) + 1:04d}", device_id, hs.id, ms(a), ms(b),
                                           float(b - a), round(lat, 7), round(lon, 7), ep_of_id.get(e, "")))
        # Modes
        mode_rows: list[TruthMode] = []
        step = np.hypot(np.diff(x), np.diff(y))
        mchange = np.flatnonzero(np.diff(modes[1:])) + 2 if n > 2 else np.array([], dtype=int)
        mb = np.concatenate([[1], mchange, [n]])
        for a, b in zip(mb[:-1], mb[1:]):
            if a < b:
                mode_rows.append(TruthMode(device_id, ms(a - 1), ms(b - 1), MODE_NAMES[int(modes[a])],
                                           round(float(step[a - 1:b - 1].sum()), 1)))
        observed = observe(np.random.default_rng(obs_seed), x, y, shift_start, profile, acc_class, cfg)
        kinds = [track.episodes[int(e)][0] for e in eps]
        true_track = TrueTrack(shift_start + np.arange(n, dtype=np.int64) * 1000, x, y, modes, kinds)
        return _OfficerResult(device, visits, stops, mode_rows, episodes, observed, true_track)

    def _all(self) -> list[_OfficerResult]:
        self.run()
        return self._results  # type: ignore[return-value]

    # --- outputs
    def devices(self) -> tuple[SimDevice, ...]:
        return tuple(r.device for r in self._all())

    def true_track(self, device_id: str) -> TrueTrack:
        """The noise-free track of one device's officer (local metres; `frame` converts to WGS84)."""
        return self._all()[self.device_ids.index(device_id)].track

    def truth(self) -> Truth:
        rs = self._all()
        gaps = [TruthGap(r.device.device_id, a, b) for r in rs for a, b in r.observed.gaps]
        return Truth(devices=tuple(r.device for r in rs),
                     visits=tuple(v for r in rs for v in r.visits),
                     stops=tuple(s for r in rs for s in r.stops),
                     modes=tuple(m for r in rs for m in r.modes),
                     episodes=tuple(e for r in rs for e in r.episodes),
                     gaps=tuple(gaps))

    @cached_property
    def _table(self) -> PingTable:
        rs = self._all()
        obs = [r.observed for r in rs]
        dev = np.concatenate([np.full(len(o.ts_ms), i, dtype=np.int32) for i, o in enumerate(obs)])
        seq = np.concatenate([np.arange(len(o.ts_ms)) for o in obs])

        def cat(name):
            return np.concatenate([getattr(o, name) for o in obs])

        delivered = cat("delivered_ms")
        order = np.lexsort((seq, dev, delivered))
        x, y, tx, ty = cat("x"), cat("y"), cat("true_x"), cat("true_y")
        lon, lat = self.frame.to_lonlat(x, y)
        tlon, tlat = self.frame.to_lonlat(tx, ty)
        return PingTable(
            device=dev[order], device_ids=self.device_ids, ts_ms=cat("ts_ms")[order], delivered_ms=delivered[order],
            lat=np.round(np.asarray(lat), 7)[order], lon=np.round(np.asarray(lon), 7)[order],
            accuracy_m=cat("accuracy_m")[order], speed_mps=cat("speed_mps")[order],
            heading_deg=cat("heading_deg")[order], altitude_m=cat("altitude_m")[order],
            battery=cat("battery")[order], true_lat=np.round(np.asarray(tlat), 7)[order],
            true_lon=np.round(np.asarray(tlon), 7)[order],
            error_m=np.round(np.hypot(x - tx, y - ty), 2)[order], outlier=cat("outlier")[order],
            late=cat("late")[order], duplicate=cat("duplicate")[order])

    def ping_table(self) -> PingTable:
        """Every delivered ping as columns, in delivery order (fast path for writers)."""
        return self._table

    def pings(self) -> Iterator[SimPing]:
        """Delivered pings one by one, in delivery order, each with its event and delivery time."""
        tb = self._table
        ids = tb.device_ids

        def opt(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        for i in range(len(tb)):
            b = int(tb.battery[i])
            yield SimPing(ids[tb.device[i]], int(tb.ts_ms[i]), int(tb.delivered_ms[i]), float(tb.lat[i]),
                          float(tb.lon[i]), float(tb.accuracy_m[i]), opt(tb.speed_mps[i]), opt(tb.heading_deg[i]),
                          opt(tb.altitude_m[i]), None if b < 0 else b)
