"""From crime records to ranked, briefed hot spots.

`build_hotspots(records, harm_table, options)` is the whole algorithm, pure:
select categories, weigh harm, cut the time window (and the previous window of
the same length, for the trend), split day and night, project to a metric grid,
drop excluded areas, rank cells by harm, optionally keep only Gi*-significant
cells, select top N or the fewest cells holding a share of harm, optionally
merge touching cells, then compute each hot spot's statistics and briefing.

Rows that cannot be used are counted by reason in `HotspotBuild.bad_rows`;
rows left out by choice (other categories, outside the window, in an excluded
area) are counted in `HotspotBuild.filtered`. Neither stops the build.

Length (~540 lines): one algorithm, pure, whose steps (grid, harm, Gi*, ranking, polygons, briefing data)
share the options and the grid; its parts that stand alone are already in grid, harm, gistar and briefing.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from processors.hotspots import localtime
from processors.hotspots.briefing import window_phrase, write_briefing
from processors.hotspots.grid import BNG_EPSG, Grid, choose_metric_epsg, os_grid_reference, pack, to_metric, to_wgs84, unpack
from processors.hotspots.harm import HarmTable, category_key
from processors.hotspots.ids import cell_id, hotspot_id
from processors.hotspots.records import DAY, EXACT, MONTH, CrimeRecords

ALL_CATEGORIES = "all"
LUMPED_POLICE_UK = category_key("Violence and sexual offences")

# Bad-row reasons (stable strings: they are printed and tested).
NO_HARM_WEIGHT = "category not in the harm table and no harm value"
NO_TIME_OF_DAY = "no time of day (needed for --day-night)"
NOT_PROJECTABLE = "coordinates cannot be projected to the metric grid"


@dataclass(frozen=True)
class BuildOptions:
    shape: str = "square"
    cell_size_m: float = 150.0
    window_days: int = 365
    as_of: date | None = None  # last local day in the window; default: day (or month) of the newest record
    day_night: bool = False
    day_starts_hour: int = 7  # day = [07:00, 19:00), night = [19:00, 07:00) local
    categories: tuple[str, ...] | None = None  # None: the harm table's serious-violence set; ("all",): everything
    top_n: int | None = None
    harm_share: float | None = None  # fewest cells holding at least this share of the period's harm
    gi_star: bool = False
    gi_alpha: float = 0.05
    merge_adjacent: bool = False
    exclude: tuple = ()  # shapely (Multi)Polygons in WGS84 lon/lat
    tz: str = "Europe/London"
    epsg: int | None = None  # metric CRS; default chosen from the data

    def __post_init__(self):
        if self.top_n is not None and self.harm_share is not None:
            raise ValueError("choose either top_n or harm_share, not both")
        if self.top_n is not None and self.top_n < 1:
            raise ValueError("top_n must be at least 1")
        if self.harm_share is not None and not 0 < self.harm_share <= 1:
            raise ValueError("harm_share must be in (0, 1]")
        if self.window_days < 1:
            raise ValueError("window_days must be at least 1")
        if not 0 <= self.day_starts_hour <= 23:
            raise ValueError("day_starts_hour must be 0..23")


DEFAULT_TOP_N = 20


@dataclass
class Hotspot:
    id: str
    name: str
    briefing: str
    rank: int
    period: str | None  # "day", "night" or None (no split)
    hours: str | None
    cell_ids: list[str]
    geometry_xy: object  # shapely geometry in the metric CRS
    geometry: dict  # GeoJSON geometry, WGS84
    stats: dict

    def feature(self) -> dict:
        props = {"id": self.id, "name": self.name, "briefing": self.briefing}
        if self.period:
            # Day and night hot spots of the same ground share `ground_id` (useful as allocate --group-by).
            props["ground_id"] = self.id[: -len(self.period) - 1]
            props["period"] = self.period
            props["hours"] = self.hours
        props["stats"] = self.stats
        return {"type": "Feature", "id": self.id, "geometry": self.geometry, "properties": props}


@dataclass
class HotspotBuild:
    hotspots: list[Hotspot]
    grid: Grid
    as_of: date
    window_from: date
    window_to: date
    previous: tuple[date, date] | None  # (from, to) inclusive, when the data covers it
    bad_rows: Counter
    filtered: Counter
    totals: dict  # per period: {"offences", "harm_days"}
    used_categories: list[str]  # labels of the categories that were selected and present
    unknown_categories: list[str]  # asked for, not in the data
    points_xy: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False, default=None)  # x, y, period code
    # for the preview map: each point's category, an index into the names
    points_category: tuple[np.ndarray, list[str]] = field(repr=False, default=None)
    notes: list[str] = field(default_factory=list)

    def feature_collection(self, *, selection: str = "") -> dict:
        return {
            "type": "FeatureCollection",
            "generator": {
                "by": "hotspot hotspots build",
                "as_of": self.as_of.isoformat(),
                "window": {"from": self.window_from.isoformat(), "to": self.window_to.isoformat()},
                "crs": f"EPSG:{self.grid.epsg}",
                "cell": {"shape": self.grid.shape, "size_m": self.grid.size_m,
                         "area_m2": round(self.grid.nominal_area_m2, 1)},
                "categories": self.used_categories,
                "selection": selection,
                "totals": self.totals,
                "notes": self.notes,
            },
            "features": [h.feature() for h in self.hotspots],
        }


def _period_hours(start_hour: int) -> tuple[str, str]:
    day = f"{start_hour:02d}:00–{(start_hour + 12) % 24:02d}:00"
    night = f"{(start_hour + 12) % 24:02d}:00–{start_hour:02d}:00"
    return day, night


def build_hotspots(records: CrimeRecords, harm_table: HarmTable, options: BuildOptions = BuildOptions()) -> HotspotBuild:
    o = options
    bad: Counter = Counter()
    filtered: Counter = Counter()
    notes: list[str] = []

    # --- categories and harm -------------------------------------------------------------
    keys = [category_key(c) for c in records.categories]
    everything = o.categories is not None and [c.strip().lower() for c in o.categories] == [ALL_CATEGORIES]
    if o.categories is None:
        wanted = set(harm_table.serious_violence)
    elif everything:
        wanted = set(keys)
    else:
        wanted = {category_key(c) for c in o.categories}
    present = set(keys)
    unknown = [] if o.categories is None or everything else [c for c in o.categories if category_key(c) not in present]
    selected_cat = np.array([k in wanted for k in keys] + [False], dtype=bool)
    table_weight = np.array([harm_table.weights_days.get(k, np.nan) for k in keys] + [np.nan])
    cat = records.category
    chosen = selected_cat[cat] if len(records) else np.zeros(0, bool)
    filtered["other categories"] += int((~chosen).sum())
    harm = np.where(np.isfinite(records.harm_days), records.harm_days, table_weight[cat] if len(records) else 0.0)
    no_weight = chosen & ~np.isfinite(harm)
    bad[NO_HARM_WEIGHT] += int(no_weight.sum())
    missing = sorted({records.categories[c] for c in np.unique(cat[no_weight])})
    if missing:
        notes.append("no harm weight for: " + ", ".join(missing))
    use = chosen & ~no_weight

    # --- time window ---------------------------------------------------------------------
    t = records.occurred_s
    prec = records.precision
    if o.as_of is not None:
        as_of = o.as_of
    elif use.any():
        newest = int(np.argmax(np.where(use, t, np.iinfo(np.int64).min)))
        as_of = localtime.month_last_day(t[newest]) if prec[newest] == MONTH else localtime.local_date(t[newest], o.tz)
    else:
        as_of = date(1970, 1, 1)
    window_to = as_of
    window_from = as_of - timedelta(days=o.window_days - 1)
    end_s = localtime.local_midnight_s(as_of + timedelta(days=1), o.tz)
    start_s = localtime.local_midnight_s(window_from, o.tz)
    prev_from = window_from - timedelta(days=o.window_days)
    prev_start_s = localtime.local_midnight_s(prev_from, o.tz)
    in_window = use & (t >= start_s) & (t < end_s)
    in_prev = use & (t >= prev_start_s) & (t < start_s)
    filtered["after the as-of date"] += int((use & (t >= end_s)).sum())
    filtered["before the window"] += int((use & (t < start_s)).sum() - in_prev.sum())
    # The previous period is comparable only if the data reaches back to its start (a month's slack
    # for police.uk months, which are dated mid-month).
    earliest = int(t[use].min()) if use.any() else end_s
    has_previous = earliest <= prev_start_s + 31 * 86400
    previous = (prev_from, window_from - timedelta(days=1)) if has_previous else None

    # --- local time parts and periods ------------------------------------------------------
    relevant = in_window | in_prev
    local_s = np.zeros(len(records), np.int64)
    if relevant.any():
        local_s[relevant] = localtime.local_seconds(t[relevant], o.tz)
    hour = localtime.local_hour(local_s)
    if o.day_night:
        untimed = relevant & (prec != EXACT)
        bad[NO_TIME_OF_DAY] += int((untimed & in_window).sum())
        in_window &= ~untimed
        in_prev &= ~untimed
        relevant = in_window | in_prev
        is_day = ((hour - o.day_starts_hour) % 24) < 12
        period_code = np.where(is_day, 0, 1).astype(np.int8)
        day_hours, night_hours = _period_hours(o.day_starts_hour)
        periods = [("day", day_hours), ("night", night_hours)]
        if not in_window.any() and (use & ~(prec == EXACT)).any():
            notes.append("no records have a time of day, so there is no day/night split to make")
    else:
        period_code = np.zeros(len(records), np.int8)
        periods = [(None, None)]

    # --- projection and cells ------------------------------------------------------------
    idx = np.nonzero(relevant)[0]
    epsg = o.epsg or choose_metric_epsg(records.lon_deg[idx], records.lat_deg[idx])
    grid = Grid(o.shape, float(o.cell_size_m), epsg)
    x, y = to_metric(epsg, records.lon_deg[idx], records.lat_deg[idx])
    ok = np.isfinite(x) & np.isfinite(y) & (np.abs(x) < 1e8) & (np.abs(y) < 1e8)
    bad[NOT_PROJECTABLE] += int((~ok & in_window[idx]).sum())
    idx, x, y = idx[ok], x[ok], y[ok]

    excluded_geoms = []
    if o.exclude:
        import shapely

        excluded_geoms = [shapely.transform(g, lambda c: np.column_stack(to_metric(epsg, c[:, 0], c[:, 1])))
                          for g in o.exclude]
        mask_union = shapely.union_all(excluded_geoms)
        shapely.prepare(mask_union)
        inside = shapely.contains_xy(mask_union, x, y)
        filtered["inside an excluded area"] += int(inside[in_window[idx]].sum())
        idx, x, y = idx[~inside], x[~inside], y[~inside]
    else:
        mask_union = None

    ci, cj = grid.index_of(x, y)
    key = pack(ci, cj)
    win = in_window[idx]
    prv = in_prev[idx]
    per = period_code[idx]
    rec_harm = harm[idx]

    hotspots: list[Hotspot] = []
    totals: dict = {}
    for p, (pname, phours) in enumerate(periods):
        sel = win & (per == p)
        cell_keys, inv = np.unique(key[sel], return_inverse=True)
        cell_harm = np.bincount(inv, weights=rec_harm[sel], minlength=len(cell_keys))
        cell_count = np.bincount(inv, minlength=len(cell_keys))
        total_harm = float(cell_harm.sum())
        totals[pname or "all"] = {"offences": int(sel.sum()), "harm_days": round(total_harm, 3)}
        if total_harm <= 0:
            continue
        candidate = cell_harm > 0  # a hot spot must hold some harm (weight-0 categories alone do not count)
        if mask_union is not None:
            import shapely

            cx, cy = grid.centre_of(*unpack(cell_keys))
            candidate &= ~shapely.contains_xy(mask_union, cx, cy)
        gi = None
        if o.gi_star:
            from processors.hotspots.gistar import gi_star, significant_high

            z, pval = gi_star(grid, cell_keys, cell_harm)
            gi = (z, pval)
            significant = significant_high(z, pval, o.gi_alpha)
            dropped = int((candidate & ~significant).sum())
            candidate &= significant
            notes.append(f"Gi*{' ' + pname if pname else ''}: {int(candidate.sum())} cells significantly high "
                         f"(false discovery rate {o.gi_alpha:g}), {dropped} others left out")
        # Rank: most harm first, then most offences, then the key (deterministic ties).
        order = np.lexsort((cell_keys, -cell_count, -cell_harm))
        order = order[candidate[order]]
        if o.harm_share is not None:
            cum = np.cumsum(cell_harm[order])
            n_take = int(np.searchsorted(cum, o.harm_share * total_harm - 1e-9 * total_harm) + 1)
            order = order[:min(n_take, len(order))]
        else:
            order = order[:o.top_n or DEFAULT_TOP_N]
        if len(order) == 0:
            continue
        if o.merge_adjacent:
            # A merged group ranks by its total harm (ties: its best cell's rank).
            harm_of = dict(zip(cell_keys[order].tolist(), cell_harm[order].tolist()))
            groups = _merge_groups(grid, cell_keys[order])
            groups = [g for _, g in sorted(enumerate(groups), key=lambda ng: (-sum(harm_of[k] for k in ng[1]), ng[0]))]
        else:
            groups = [[k] for k in cell_keys[order].tolist()]
        hotspots.extend(_describe(
            groups, pname, phours, p, grid, records, harm_table, o, idx, key, win, prv, per, rec_harm,
            cell_keys, cell_harm, gi, total_harm, as_of, window_from, previous, prec, local_s, hour))

    used = sorted({str(records.categories[c]) for c in np.unique(cat[in_window])}) if in_window.any() else []
    lumped = any(category_key(c) == LUMPED_POLICE_UK for c in used)
    if lumped:
        notes.append("police.uk's 'Violence and sexual offences' mixes violence with and without injury, "
                     "harassment and sexual offences; it is weighed as one category")
    if (prec[in_window] == MONTH).any():
        notes.append("some records give only the month (police.uk): no peak days or hours for them")
    pts = (x[win], y[win], per[win])
    bad, filtered = +bad, +filtered  # drop zero counts
    return HotspotBuild(hotspots, grid, as_of, window_from, window_to, previous, bad, filtered, totals, used, unknown,
                        pts, (cat[idx][win], [str(c) for c in records.categories]), notes)


def _merge_groups(grid: Grid, keys: np.ndarray) -> list[list[int]]:
    """Connected groups of selected cells sharing an edge, in the order of their best-ranked cell."""
    rank = {int(k): n for n, k in enumerate(keys)}
    parent = list(range(len(keys)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    ki, kj = unpack(keys)
    for n in range(len(keys)):
        for di, dj in grid.edge_offsets():
            m = rank.get(int(pack(ki[n] + di, kj[n] + dj)))
            if m is not None:
                ra, rb = find(n), find(m)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for n in range(len(keys)):
        groups.setdefault(find(n), []).append(int(keys[n]))
    return [groups[r] for r in sorted(groups)]


def _describe(groups, pname, phours, p, grid, records, harm_table, o, idx, key, win, prv, per, rec_harm,
              cell_keys, cell_harm, gi, total_harm, as_of, window_from, previous, prec, local_s, hour):
    """Statistics, briefing and geometry for each group of cells (vectorised over records)."""
    import shapely

    n_groups = len(groups)
    member_keys = np.concatenate([np.asarray(g, np.int64) for g in groups])
    member_group = np.concatenate([np.full(len(g), n) for n, g in enumerate(groups)])
    order = np.argsort(member_keys)
    member_keys, member_group = member_keys[order], member_group[order]
    pos = np.searchsorted(member_keys, key)
    pos[pos == len(member_keys)] = 0
    group_of = np.where(member_keys[pos] == key, member_group[pos], -1)
    group_of = np.where(per == p, group_of, -1)

    w = win & (group_of >= 0)
    gw = group_of[w]
    rec_idx = idx[w]
    n_cat = len(records.categories)
    cat_w = records.category[rec_idx]
    counts = np.bincount(gw, minlength=n_groups)
    harms = np.bincount(gw, weights=rec_harm[w], minlength=n_groups)
    cat_counts = np.bincount(gw * n_cat + cat_w, minlength=n_groups * n_cat).reshape(n_groups, max(n_cat, 1))
    cat_harm = np.bincount(gw * n_cat + cat_w, weights=rec_harm[w], minlength=n_groups * n_cat).reshape(n_groups, max(n_cat, 1))
    pr = prv & (group_of >= 0)
    prev_counts = np.bincount(group_of[pr], minlength=n_groups)
    prev_harm = np.bincount(group_of[pr], weights=rec_harm[pr], minlength=n_groups)

    rp = prec[rec_idx]
    exact = rp == EXACT
    hours = np.bincount(gw[exact] * 24 + hour[rec_idx][exact], minlength=n_groups * 24).reshape(n_groups, 24)
    dayish = rp != MONTH
    wd = localtime.local_weekday(local_s[rec_idx][dayish], 6)
    days = np.bincount(gw[dayish] * 7 + wd, minlength=n_groups * 7).reshape(n_groups, 7)
    n_exact = np.bincount(gw[exact], minlength=n_groups)
    n_day = np.bincount(gw[rp == DAY], minlength=n_groups)
    n_month = np.bincount(gw[rp == MONTH], minlength=n_groups)

    # Most frequent police.uk "Location" in each group, for a name an officer recognises.
    place = [None] * n_groups
    loc = records.location[rec_idx]
    has_loc = loc >= 0
    if has_loc.any():
        pair, pair_n = np.unique(gw[has_loc].astype(np.int64) * (len(records.locations) + 1) + loc[has_loc],
                                 return_counts=True)
        best = np.lexsort((pair, -pair_n, pair // (len(records.locations) + 1)))
        seen = set()
        for b in best:
            g = int(pair[b] // (len(records.locations) + 1))
            if g not in seen:
                seen.add(g)
                place[g] = records.locations[int(pair[b] % (len(records.locations) + 1))]

    cell_pos = {int(k): n for n, k in enumerate(cell_keys)}
    period_start = None if pname is None else (o.day_starts_hour if pname == "day" else (o.day_starts_hour + 12) % 24)
    cumulative = 0.0
    out = []
    for g, members in enumerate(groups):
        members = sorted(members)
        mi, mj = unpack(np.asarray(members, np.int64))
        ids = [cell_id(grid.shape, grid.size_m, grid.epsg, a, b) for a, b in zip(mi, mj)]
        anchor = min(zip(mj.tolist(), mi.tolist(), ids))[2]  # south-westernmost: lowest row, then column
        hid = hotspot_id(anchor, merged=len(members) > 1, period=pname)
        verts = grid.vertices_of(mi, mj)
        polys = shapely.polygons(verts)
        geom_xy = polys[0] if len(members) == 1 else shapely.union_all(polys)
        geom_xy = shapely.normalize(geom_xy) if len(members) > 1 else geom_xy
        geometry = _to_geojson(grid.epsg, geom_xy)

        cumulative += harms[g]
        by_cat = {}
        for c in np.argsort(-cat_harm[g], kind="stable"):
            if cat_counts[g, c]:
                by_cat[harm_table.label_of(records.categories[c])] = {
                    "offences": int(cat_counts[g, c]), "harm_days": round(float(cat_harm[g, c]), 3)}
        cx, cy = geom_xy.centroid.x, geom_xy.centroid.y
        if place[g] is None:
            ref = os_grid_reference(cx, cy) if grid.epsg == BNG_EPSG else None
            lon, lat = to_wgs84(grid.epsg, np.array([cx]), np.array([cy]))
            place_name = f"grid ref {ref}" if ref else f"{float(lat[0]):.4f}, {float(lon[0]):.4f}"
        else:
            place_name = place[g]
        stats = {
            "rank": g + 1,
            "period": pname or "all",
            "hours": phours,
            "window": {"from": window_from.isoformat(), "to": as_of.isoformat(), "days": o.window_days},
            "offences": int(counts[g]),
            "harm_days": round(float(harms[g]), 3),
            "share_of_harm": round(float(harms[g] / total_harm), 5),
            "cumulative_share_of_harm": round(float(min(cumulative / total_harm, 1.0)), 5),
            "by_category": by_cat,
            "previous": None if previous is None else {
                "from": previous[0].isoformat(), "to": previous[1].isoformat(),
                "offences": int(prev_counts[g]), "harm_days": round(float(prev_harm[g]), 3)},
            "trend": None if previous is None else _trend(int(counts[g]), int(prev_counts[g])),
            "time_known": {"exact": int(n_exact[g]), "day_only": int(n_day[g]), "month_only": int(n_month[g])},
            "offences_by_hour": hours[g].tolist() if n_exact[g] else None,
            "offences_by_day": dict(zip(localtime.WEEKDAYS, days[g].tolist())) if (n_exact[g] + n_day[g]) else None,
            "days_start_at": "06:00",
            "peak_hours": peak_hours(hours[g], period_start) if n_exact[g] else None,
            "peak_days": peak_days(days[g]) if (n_exact[g] + n_day[g]) else None,
            "cell": {"crs": f"EPSG:{grid.epsg}", "shape": grid.shape, "size_m": grid.size_m,
                     "cells": ids, "area_m2": round(float(geom_xy.area), 1)},
        }
        if gi is not None:
            at = [cell_pos[k] for k in members]
            stats["gi_star"] = {"z": round(float(np.max(gi[0][at])), 3), "p": float(np.min(gi[1][at]))}
        briefing = write_briefing(stats, window=window_phrase(o.window_days), as_of=as_of,
                                  default_categories=o.categories is None)
        name = place_name if not pname else f"{place_name} ({pname})"
        out.append(Hotspot(hid, name, briefing, g + 1, pname, phours, ids, geom_xy, geometry, stats))
    return out


def _trend(now: int, before: int) -> str:
    if now == before:
        return "level"
    return "up" if now > before else "down"


MIN_TIMED_FOR_PATTERN = 8
PATTERN_ALPHA = 0.05


def _binomial_tail(x: int, n: int, p: float) -> float:
    """P(X >= x) for X ~ Binomial(n, p), summed in log space (n can be thousands)."""
    if x <= 0:
        return 1.0
    if x > n:
        return 0.0
    lp, lq = math.log(p), math.log1p(-p)
    logs = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * lp + (n - k) * lq
            for k in range(x, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def peak_hours(by_hour: np.ndarray, period_start_hour: int | None = None) -> dict | None:
    """The shortest run of clock hours holding at least half the timed offences, if it is a real peak.

    Over the whole day runs wrap midnight; within a 12-hour period (`period_start_hour`) they stay
    inside it. Claimed only when the run is at most a third of the hours available (so at least 1.5
    times as busy as an even spread) and an even spread would rarely pack that many offences into any
    run of that length: binomial tail, Bonferroni over every start and length tried, below 5%.
    Random noise otherwise invents a "peak" in nearly every small hot spot.
    """
    by_hour = np.asarray(by_hour)
    span = 24 if period_start_hour is None else 12
    offset = 0 if period_start_hour is None else period_start_hour
    counts = np.roll(by_hour, -offset)[:span]
    n = int(counts.sum())
    if n < MIN_TIMED_FOR_PATTERN:
        return None
    padded = np.concatenate([counts, counts]) if span == 24 else counts
    for length in range(1, span // 3 + 1):
        starts = range(24) if span == 24 else range(span - length + 1)
        sums = np.array([padded[s:s + length].sum() for s in starts])
        best = int(np.argmax(sums))
        if sums[best] * 2 >= n:
            tries = len(starts) * length
            if tries * _binomial_tail(int(sums[best]), n, length / span) > PATTERN_ALPHA:
                return None
            start = (best + offset) % 24
            return {"from": f"{start:02d}:00", "to": f"{(start + length) % 24:02d}:00",
                    "offences": int(sums[best]), "of": n}
    return None


def peak_days(by_day: np.ndarray) -> list[str] | None:
    """The fewest weekdays (at most three) holding at least half the offences, if they really stand out.

    Same guard as peak_hours: an even spread over the week would rarely put that many offences on any
    set of that many days (binomial tail times the number of such sets, below 5%).
    """
    by_day = np.asarray(by_day)
    n = int(by_day.sum())
    if n < MIN_TIMED_FOR_PATTERN:
        return None
    order = np.argsort(-by_day, kind="stable")
    cum = np.cumsum(by_day[order])
    k = int(np.searchsorted(cum * 2, n) + 1)
    if k > 3 or math.comb(7, k) * _binomial_tail(int(cum[k - 1]), n, k / 7) > PATTERN_ALPHA:
        return None
    return [localtime.WEEKDAYS[d] for d in sorted(order[:k].tolist())]


def _to_geojson(epsg: int, geom) -> dict:
    import shapely

    wgs = shapely.transform(geom, lambda c: np.column_stack(to_wgs84(epsg, c[:, 0], c[:, 1])))
    gj = shapely.geometry.mapping(wgs)

    def rnd(obj):
        if isinstance(obj, (list, tuple)):
            if obj and isinstance(obj[0], float):
                return [round(v, 7) for v in obj]
            return [rnd(v) for v in obj]
        return obj

    return {"type": gj["type"], "coordinates": rnd(gj["coordinates"])}
