"""The dosage, compliance and trial reports: their queries, tables, plots and summary.

`build_report(store, kind, date_from, date_to)` reads the analysts' views (migration 0007) for trial
days date_from..date_to (inclusive; a trial day runs 06:00 to 05:59 London) and returns a `Report`:
tables (column names and rows, written as CSV), plots (matplotlib Figure objects, not yet saved: tests
look at their titles and series) and a one-paragraph summary in plain English. `reports.render`
writes it to a folder. Every figure comes from SQL over the same views `docs/analysts.md` documents, so
what a report prints is what an analyst's query gives.

Queries aggregate in ClickHouse and return at most a row per hot spot (or officer) and day, so they
stay under `hotspot sql`'s row limit when they go through a running worker.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from processors.allocation import CONTROL, TREATMENT  # the arms `hotspot allocate` writes
from reports.stats import t_interval
from reports.store import Store, StoreError, Table, to_date

KINDS = ("dosage", "compliance", "trial")
KOPER_LOW_MIN, KOPER_HIGH_MIN = 10, 15  # Koper (1995): ~10 min beats a drive-through; 11-15 best
MAX_LINES = 12  # hot spots drawn one line each in the dosage-over-time plot
HIST_MAX_MIN = 60  # visit-length histogram: 1-minute bins, the last one 60+


@dataclass
class Plot:
    name: str          # file name, e.g. dosage_over_time.png
    title: str
    caption: str
    figure: object     # matplotlib.figure.Figure
    series: int        # lines, bar groups or error-bar series drawn


@dataclass
class Report:
    kind: str
    date_from: dt.date
    date_to: dt.date
    summary: str
    tables: dict[str, Table] = field(default_factory=dict)
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # headline numbers (tests, the summary)


def _days(a: dt.date, b: dt.date) -> str:
    return f"trial_day BETWEEN toDate('{a.isoformat()}') AND toDate('{b.isoformat()}')"


def _figure(width=9.0, height=4.8):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def build_report(store: Store, kind: str, date_from: dt.date, date_to: dt.date, *, trial_id: str | None = None,
                 progress=lambda text: None) -> Report:
    if kind not in KINDS:
        raise ValueError(f"unknown report {kind!r}; one of {', '.join(KINDS)}")
    if date_to < date_from:
        raise ValueError(f"--to {date_to} is before --from {date_from}")
    return {"dosage": _dosage, "compliance": _compliance, "trial": _trial}[kind](
        store, date_from, date_to, progress, trial_id)


# ------------------------------------------------------------------------------------------ dosage
def _dosage(store: Store, a: dt.date, b: dt.date, progress, _trial) -> Report:
    progress("querying daily dosage per hot spot")
    daily = store.query(
        "SELECT hotspot_id, trial_day, dwell_minutes, observed_minutes, bridged_minutes, tasked_minutes, "
        "untasked_minutes, foot_minutes, vehicle_minutes, stationary_minutes, visits, officers, open_visits "
        f"FROM hotspot.dosage_daily_tasked WHERE {_days(a, b)} ORDER BY trial_day, hotspot_id")
    progress("querying hot spots and their targets")
    spots = store.query("SELECT id, name, ifNull(target_minutes, 15) FROM hotspot.hotspots_current "
                        "WHERE retired = 0 ORDER BY id")
    progress("querying visit lengths")
    hist = store.query(
        f"SELECT toUInt32(least(floor(dwell_minutes), {HIST_MAX_MIN})) AS minute, count() AS visits "
        f"FROM hotspot.visit_lengths WHERE {_days(a, b)} GROUP BY minute ORDER BY minute")
    bands = store.query(
        "SELECT length_band, count() AS visits, round(avg(dwell_minutes), 3) AS mean_minutes "
        f"FROM hotspot.visit_lengths WHERE {_days(a, b)} GROUP BY length_band ORDER BY min(dwell_minutes)")

    n_days = (b - a).days + 1
    targets = {str(r[0]): float(r[2]) for r in spots.rows}
    names = {str(r[0]): str(r[1]) for r in spots.rows}
    per_spot: dict[str, dict] = {hid: {"minutes": 0.0, "days_on_target": 0, "visits": 0} for hid in targets}
    by_day: dict[tuple[str, dt.date], float] = {}
    for r in daily.dicts():
        hid = str(r["hotspot_id"])
        s = per_spot.setdefault(hid, {"minutes": 0.0, "days_on_target": 0, "visits": 0})
        minutes = float(r["dwell_minutes"])
        s["minutes"] += minutes
        s["visits"] += int(r["visits"])
        s["days_on_target"] += minutes >= targets.get(hid, 15.0)
        by_day[(hid, to_date(r["trial_day"]))] = minutes
    summary_rows = [[hid, names.get(hid, ""), targets.get(hid, 15.0), round(s["minutes"], 3),
                     round(s["minutes"] / n_days, 3), s["days_on_target"], n_days, s["visits"]]
                    for hid, s in sorted(per_spot.items())]
    summary_table = Table(["hotspot_id", "name", "target_minutes", "dwell_minutes", "mean_minutes_per_day",
                           "days_on_target", "days", "visits"], summary_rows)

    progress("drawing plots")
    plots = [_plot_dosage_over_time(by_day, per_spot, a, b), _plot_koper(hist)]
    total_visits = sum(int(r[1]) for r in hist.rows)
    in_band = sum(int(r[1]) for r in hist.rows if KOPER_LOW_MIN <= int(r[0]) < KOPER_HIGH_MIN)
    at_least_10 = sum(int(r[1]) for r in hist.rows if int(r[0]) >= KOPER_LOW_MIN)
    spot_days = len(per_spot) * n_days
    on_target = sum(s["days_on_target"] for s in per_spot.values())
    total_min = sum(float(r["dwell_minutes"]) for r in daily.dicts())
    bridged = sum(float(r["bridged_minutes"]) for r in daily.dicts())
    untasked = sum(float(r["untasked_minutes"]) for r in daily.dicts())
    figures = {"hotspots": len(per_spot), "days": n_days, "dwell_minutes": round(total_min, 3),
               "bridged_minutes": round(bridged, 3), "untasked_minutes": round(untasked, 3),
               "hotspot_days_on_target": on_target, "hotspot_days": spot_days, "closed_visits": total_visits,
               "visits_10_to_15": in_band, "visits_at_least_10": at_least_10}
    summary = (
        f"From {a} to {b} ({n_days} trial day{'s' if n_days != 1 else ''}, 06:00 to 05:59 London), "
        f"{len(per_spot)} hot spots received {_fmt(total_min)} minutes of police presence in all, "
        f"{_fmt(bridged)} of them bridged across reporting gaps inside a hot spot and {_fmt(untasked)} from "
        f"officers who had not been sent there. A hot spot reached its target (usually 15 minutes) on "
        f"{on_target} of {spot_days} hot-spot days. Of {total_visits} finished visits, {in_band} lasted "
        f"{KOPER_LOW_MIN} to {KOPER_HIGH_MIN} minutes, the length the Koper curve suggests, and {at_least_10} "
        f"lasted at least {KOPER_LOW_MIN} minutes; shorter visits are closer to drive-throughs.")
    return Report("dosage", a, b, summary,
                  {"dosage_daily": daily, "dosage_by_hotspot": summary_table, "visit_lengths_by_minute": hist,
                   "visit_length_bands": bands}, plots, [], figures)


def _plot_dosage_over_time(by_day, per_spot, a, b) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    days = [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]
    ranked = sorted(per_spot, key=lambda h: (-per_spot[h]["minutes"], h))
    shown = ranked[:MAX_LINES]
    for hid in shown:
        ax.plot(days, [by_day.get((hid, d), 0.0) for d in days], marker="o", markersize=3, linewidth=1.2, label=hid)
    ax.axhline(15, color="grey", linestyle="--", linewidth=1)
    ax.text(days[0], 15, " 15-minute target", va="bottom", color="grey", fontsize=8)
    more = f" (the {len(shown)} with most presence of {len(ranked)})" if len(ranked) > len(shown) else ""
    title = "Dosage over time per hot spot" + more
    ax.set_title(title)
    ax.set_xlabel("trial day (06:00-05:59 London)")
    ax.set_ylabel("minutes of presence (observed + bridged)")
    if shown:
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.autofmt_xdate()
    return Plot("dosage_over_time.png", title,
                "Minutes of police presence in each hot spot per trial day, against the 15-minute target.",
                fig, len(shown))


def _plot_koper(hist: Table) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    minutes = [int(r[0]) for r in hist.rows]
    counts = [int(r[1]) for r in hist.rows]
    ax.axvspan(KOPER_LOW_MIN, KOPER_HIGH_MIN, color="tab:green", alpha=0.15,
               label=f"{KOPER_LOW_MIN}-{KOPER_HIGH_MIN} min guidance (Koper)")
    ax.bar(minutes, counts, width=1.0, align="edge", color="tab:blue", edgecolor="white", label="visits")
    ax.set_xlim(0, HIST_MAX_MIN + 1)
    ax.set_xticks(list(range(0, HIST_MAX_MIN + 1, 5)))
    ax.set_xticklabels([str(m) for m in range(0, HIST_MAX_MIN, 5)] + [f"{HIST_MAX_MIN}+"])
    title = "Visit lengths against the 10-15 minute guidance"
    ax.set_title(title)
    ax.set_xlabel("visit length, minutes (1-minute bins)")
    ax.set_ylabel("finished visits")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return Plot("visit_lengths.png", title,
                "How long finished visits lasted, against the Koper curve's 10-15 minutes.", fig, 1)


# ------------------------------------------------------------------------------------- compliance
def _compliance(store: Store, a: dt.date, b: dt.date, progress, _trial) -> Report:
    progress("querying compliance per team")
    teams = store.query(
        "SELECT team, uniqExact(`user`) AS officers, sum(assignments) AS assignments, sum(visited) AS visited, "
        "sum(complied) AS complied, sum(with_target) AS with_target, round(sum(dwell_minutes), 3) AS dwell_minutes, "
        "round(sum(target_minutes), 3) AS target_minutes, "
        "round(if(with_target = 0, NULL, complied / with_target), 4) AS complied_share "
        "FROM (SELECT o.`user` AS `user`, if(ifNull(t.team, '') = '', '(no team)', t.team) AS team, o.assignments, "
        "o.visited, o.complied, o.with_target, o.dwell_minutes, o.target_minutes "
        f"FROM hotspot.compliance_officer_daily AS o LEFT JOIN hotspot.officer_teams_current AS t ON t.`user` = o.`user` "
        f"WHERE o.{_days(a, b)}) GROUP BY team ORDER BY complied_share, team")
    progress("querying compliance per officer")
    officers = store.query(
        "SELECT `user`, sum(assignments) AS assignments, sum(visited) AS visited, sum(complied) AS complied, "
        "sum(with_target) AS with_target, round(sum(dwell_minutes), 3) AS dwell_minutes, "
        "round(sum(target_minutes), 3) AS target_minutes "
        f"FROM hotspot.compliance_officer_daily WHERE {_days(a, b)} GROUP BY `user` ORDER BY `user`")
    progress("querying compliance per day")
    days = store.query(
        "SELECT trial_day, sum(assignments) AS assignments, sum(visited) AS visited, sum(complied) AS complied, "
        "sum(with_target) AS with_target, round(sum(dwell_minutes), 3) AS dwell_minutes "
        f"FROM hotspot.compliance_officer_daily WHERE {_days(a, b)} GROUP BY trial_day ORDER BY trial_day")
    progress("drawing plots")
    plots = [_plot_compliance_by_team(teams)]
    n_assign = sum(int(r[2]) for r in teams.rows)
    n_visited = sum(int(r[3]) for r in teams.rows)
    n_complied = sum(int(r[4]) for r in teams.rows)
    n_target = sum(int(r[5]) for r in teams.rows)
    share = n_complied / n_target if n_target else math.nan
    worst = [r for r in teams.rows if r[8] is not None]
    worst_text = (f" The team that complied least was {worst[0][0]} ({_fmt(100 * float(worst[0][8]), 0)}% of "
                  f"{int(worst[0][5])} assignments).") if worst else ""
    if n_assign:
        summary = (
            f"From {a} to {b}, officers were given {n_assign} assignments to hot spots; they reached the hot spot "
            f"on {n_visited} of them and stayed for the target time (usually 15 minutes, counted only while the "
            f"assignment was open) on {n_complied} of the {n_target} that had a target, "
            f"{_fmt(100 * share, 0)}%.{worst_text} Teams come from `hotspot teams load`; officers without one are "
            "shown as (no team).")
    else:
        summary = (f"From {a} to {b} no assignments were recorded: officers were not directed to hot spots through "
                   "the app, so there is no compliance to measure (presence is in the dosage report).")
    figures = {"assignments": n_assign, "visited": n_visited, "complied": n_complied, "with_target": n_target}
    return Report("compliance", a, b, summary, {"compliance_by_team": teams, "compliance_by_officer": officers,
                                                "compliance_by_day": days}, plots, [], figures)


def _plot_compliance_by_team(teams: Table) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    rows = [r for r in teams.rows if int(r[5]) > 0]
    labels = [str(r[0]) for r in rows]
    shares = [100.0 * int(r[4]) / int(r[5]) for r in rows]
    bars = ax.barh(labels, shares, color="tab:blue")
    for bar, r in zip(bars, rows):
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, f"{int(r[4])}/{int(r[5])}",
                va="center", fontsize=8)
    ax.set_xlim(0, 110)
    title = "Compliance by team"
    ax.set_title(title)
    ax.set_xlabel("assignments with the target time reached, % (labels: complied / with a target)")
    return Plot("compliance_by_team.png", title,
                "Share of assignments on which the officer stayed the target time, per team.", fig, 1)


# ------------------------------------------------------------------------------------------ trial
def _trial(store: Store, a: dt.date, b: dt.date, progress, trial_id) -> Report:
    progress("finding the trial")
    trials = store.query(f"SELECT trial_id, count() FROM hotspot.trial_hotspot_days WHERE {_days(a, b)} "
                         "GROUP BY trial_id ORDER BY trial_id")
    ids = [str(r[0]) for r in trials.rows]
    if trial_id is None:
        if not ids:
            raise StoreError(f"no trial allocations between {a} and {b} (publish one with `hotspot allocate --publish`)")
        if len(ids) > 1:
            raise StoreError(f"{len(ids)} trials run between {a} and {b} ({', '.join(ids[:5])}): choose one with --trial")
        trial_id = ids[0]
    elif trial_id not in ids:
        raise StoreError(f"trial {trial_id!r} has no allocations between {a} and {b}")
    tq = trial_id.replace("\\", "\\\\").replace("'", "\\'")
    progress("querying hot-spot days by arm")
    spot_days = store.query(
        "SELECT trial_day, hotspot_id, arm, dwell_minutes, observed_minutes, bridged_minutes, tasked_minutes, "
        f"untasked_minutes, visits, officers, crimes, harm_days FROM hotspot.trial_hotspot_days "
        f"WHERE trial_id = '{tq}' AND {_days(a, b)} ORDER BY trial_day, arm, hotspot_id")
    arms_daily = store.query(
        "SELECT trial_day, arm, hotspots, dwell_minutes, mean_minutes_per_hotspot, tasked_minutes, untasked_minutes, "
        f"visits, hotspots_with_15_minutes, crimes, harm_days FROM hotspot.trial_arms_daily "
        f"WHERE trial_id = '{tq}' AND {_days(a, b)} ORDER BY trial_day, arm")
    progress("checking for crime records")
    crimes_loaded = int(store.query("SELECT count() FROM hotspot.crimes").rows[0][0]) > 0
    monthly = int(store.query("SELECT count() FROM hotspot.crimes WHERE `precision` = 'month'").rows[0][0])

    rows = spot_days.dicts()
    days = sorted({to_date(r["trial_day"]) for r in rows})
    arm_names = (TREATMENT, CONTROL)

    grouped: dict[tuple[dt.date, str], list[dict]] = {}
    for r in rows:
        grouped.setdefault((to_date(r["trial_day"]), r["arm"]), []).append(r)

    def values(day, arm, col):
        return [float(r[col]) for r in grouped.get((day, arm), ())]

    ci_rows, diffs, diffs_crimes = [], [], []
    for d in days:
        means = {}
        for arm in arm_names:
            m = t_interval(values(d, arm, "dwell_minutes"))
            c = t_interval(values(d, arm, "crimes"))
            u = t_interval(values(d, arm, "untasked_minutes"))
            means[arm] = (m, c)
            ci_rows.append([d, arm, m.n, round(m.mean, 3), round(m.low, 3), round(m.high, 3), round(u.mean, 3),
                            round(c.mean, 4), round(c.low, 4), round(c.high, 4)])
        if means[TREATMENT][0].n and means[CONTROL][0].n:
            diffs.append(means[TREATMENT][0].mean - means[CONTROL][0].mean)
            diffs_crimes.append(means[TREATMENT][1].mean - means[CONTROL][1].mean)
    ci_table = Table(["trial_day", "arm", "hotspots", "mean_minutes", "ci95_low", "ci95_high",
                      "mean_untasked_minutes", "mean_crimes", "crimes_ci95_low", "crimes_ci95_high"], ci_rows)
    diff = t_interval(diffs)
    diff_crimes = t_interval(diffs_crimes)
    background = t_interval([float(r["untasked_minutes"]) for r in rows if r["arm"] == CONTROL])
    treated_all = [float(r["dwell_minutes"]) for r in rows if r["arm"] == TREATMENT]
    control_all = [float(r["dwell_minutes"]) for r in rows if r["arm"] == CONTROL]
    progress("drawing plots")
    plots = [_plot_arms(ci_rows, "mean_minutes", "Treated vs control: minutes per hot spot per day",
                        "mean minutes of presence per hot spot (95% t interval)", "trial_arms_minutes.png",
                        "Mean minutes per hot spot in each arm per trial day, with 95% Student t intervals.")]
    notes = [
        "Intervals: 95% Student t intervals. Per day and arm, over that arm's hot spots; for the difference "
        "between arms, over trial days (each day is its own randomisation, while the same hot spots recur every "
        "day). Dosage is skewed and carry-over between days (up to about 4 days) is possible: read them as rough.",
    ]
    crime_text = ""
    if crimes_loaded:
        plots.append(_plot_arms(ci_rows, "mean_crimes", "Treated vs control: crimes per hot spot per day",
                                "mean recorded crimes per hot spot (95% t interval)", "trial_arms_crimes.png",
                                "Mean recorded crimes per hot spot in each arm per trial day, with 95% t intervals."))
        n_crimes = sum(int(r["crimes"]) for r in rows)
        crime_text = (f" {n_crimes} recorded crimes with a known day fell in the trial's hot spots; treated hot spots "
                      f"had {_fmt(diff_crimes.mean, 2)} crimes per day more than control ones on average "
                      f"({_interval(diff_crimes, 2)}). A window of a few days or weeks is not "
                      "an impact evaluation: crime counts per hot spot are small and noisy, and this is no test of "
                      "whether patrols reduce crime.")
        notes.append("Crime outcomes over a short window are not an impact evaluation: counts are small, "
                     "effects may carry over between days, and a trial needs its pre-registered analysis.")
        if monthly:
            notes.append(f"{monthly} loaded crime records (police.uk) carry only their month and are left out of "
                         "day-by-day outcomes.")
    else:
        notes.append("No crime records are loaded (`hotspot crimes load FILE`): the report shows dosage only.")
    summary = (
        f"Trial {trial_id} from {a} to {b} ({len(days)} trial day{'s' if len(days) != 1 else ''}): treated hot "
        f"spots received {_fmt(sum(treated_all) / len(treated_all) if treated_all else math.nan)} minutes of "
        f"police presence per hot spot per day on average and control hot spots "
        f"{_fmt(sum(control_all) / len(control_all) if control_all else math.nan)}; the difference, averaged over "
        f"trial days, is {_fmt(diff.mean)} minutes ({_interval(diff)}). "
        f"Background presence (officers not sent there) in control hot spots on control days was "
        f"{_fmt(background.mean)} minutes per hot spot per day.{crime_text}")
    figures = {"days": len(days), "mean_treated_minutes": sum(treated_all) / len(treated_all) if treated_all else math.nan,
               "mean_control_minutes": sum(control_all) / len(control_all) if control_all else math.nan,
               "difference_minutes": diff.mean, "difference_low": diff.low, "difference_high": diff.high,
               "background_minutes": background.mean, "crimes_loaded": crimes_loaded}
    return Report("trial", a, b, summary, {"trial_hotspot_days": spot_days, "trial_arms_daily": arms_daily,
                                           "trial_arms_ci": ci_table}, plots, notes, figures)


def _interval(ci, digits: int = 1) -> str:
    if ci.n < 2:
        return f"{ci.n} trial day{'s' if ci.n != 1 else ''}: too few for an interval"
    return f"95% interval {_fmt(ci.low, digits)} to {_fmt(ci.high, digits)}"


def _plot_arms(ci_rows, column, title, ylabel, name, caption) -> Plot:
    fig = _figure()
    ax = fig.add_subplot()
    idx = {"mean_minutes": (3, 4, 5), "mean_crimes": (7, 8, 9)}[column]
    series = 0
    for offset, (arm, colour) in enumerate(((TREATMENT, "tab:orange"), (CONTROL, "tab:blue"))):
        pts = [r for r in ci_rows if r[1] == arm and r[2] > 0]
        if not pts:
            continue
        xs = [r[0] + dt.timedelta(hours=-3 + 6 * offset) for r in pts]  # side by side within a day
        ys = [r[idx[0]] for r in pts]
        # No bar where an arm had one hot spot that day (no interval).
        err = [[0.0 if math.isnan(r[idx[1]]) else max(0.0, r[idx[0]] - r[idx[1]]) for r in pts],
               [0.0 if math.isnan(r[idx[2]]) else max(0.0, r[idx[2]] - r[idx[0]]) for r in pts]]
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, color=colour, label=arm)
        series += 1
    ax.set_title(title)
    ax.set_xlabel("trial day (06:00-05:59 London)")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.autofmt_xdate()
    return Plot(name, title, caption, fig, series)
