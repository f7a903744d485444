"""Analysts' views (migration 0007), reports, crime loading and the pseudonymised export, on the real
ClickHouse engine (embedded chDB) with the hand-worked scenario of tests/analysts_fixture.py."""
from __future__ import annotations

import datetime as dt
import gc
import json
import os
import struct
import subprocess

import pytest

from reports.build import build_report
from reports.crimes import load_crimes
from reports.export import ExportOptions, coarsen_position, export
from reports.render import write_report
from reports.store import Store
from sinks.clickhouse import make_client, migrate
from tests import analysts_fixture as fx
from tests.conftest import HOTSPOT

D12, D13 = fx.DAY12, fx.DAY13


@pytest.fixture(scope="module")
def store_env(tmp_path_factory):
    """A migrated store holding the scenario, closed again so each test's Store opens it itself."""
    root = tmp_path_factory.mktemp("analysts")
    dsn = f"chdb://{root / 'ch'}"
    client = make_client(dsn)
    migrate(client, "hotspot", pings_ttl_days=fx.PINGS_TTL_DAYS)
    fx.write_fixture(client)
    (root / "crimes.csv").write_text(fx.CRIMES_CSV)
    (root / "teams.csv").write_text(fx.TEAMS_CSV)
    yield root, dsn, client
    client.close()
    gc.collect()  # chDB opens one store per process: let the next module's tests open theirs


@pytest.fixture(scope="module")
def store(store_env):
    from core.settings import Settings

    root, dsn, client = store_env
    s = Store(Settings(data_dir=root / "data", clickhouse_dsn=dsn, pings_ttl_days=fx.PINGS_TTL_DAYS))
    s._client = client  # the module's one chDB handle: one process, one store
    return s


def rows(store, sql):
    return [tuple(r) for r in store.query(sql).rows]


# ---------------------------------------------------------------------------------------- views
def test_daily_dosage_splits_presence_into_tasked_and_untasked(store):
    got = rows(store, "SELECT hotspot_id, trial_day, dwell_minutes, observed_minutes, bridged_minutes, tasked_minutes, "
                      "untasked_minutes, visits, officers, open_visits FROM hotspot.dosage_daily_tasked "
                      "ORDER BY hotspot_id, trial_day")
    assert got == [
        # H1 day 12: v1 20 (18 seen + 2 bridged, in a1) + v3 12 (in a3) + v5's 10 min before 06:00 (in a3) = 42 tasked
        ("H1", D12, 42.0, 40.0, 2.0, 42.0, 0.0, 3, 2, 0),
        # H1 day 13: v5's 10 min after 06:00, when bob's a3 window had closed: untasked; v5 began on day 12
        ("H1", D13, 10.0, 10.0, 0.0, 0.0, 10.0, 0, 1, 0),
        ("H2", D12, 10.0, 10.0, 0.0, 10.0, 0.0, 1, 1, 0),   # v2 in a2
        ("H2", D13, 5.0, 5.0, 0.0, 0.0, 5.0, 1, 1, 1),      # v8 open, 5 min so far, dave has no assignment
        ("H3", D12, 6.0, 6.0, 0.0, 0.0, 6.0, 1, 1, 0),      # v4: carol's a4 is the next day
        ("H3", D13, 16.0, 16.0, 0.0, 16.0, 0.0, 1, 1, 0),   # v6 in a4
        ("H4", D13, 3.0, 3.0, 0.0, 0.0, 3.0, 1, 1, 0),      # v7: alice was sent to H2, not H4
    ]
    # The same presence as dosage_daily (0006), only split.
    assert rows(store, "SELECT hotspot_id, trial_day, dwell_minutes FROM hotspot.dosage_daily ORDER BY 1, 2") == \
        [(h, d, m) for h, d, m, *_ in got]


def test_compliance_per_officer_and_team(store):
    assert rows(store, "SELECT trial_day, user, assignments, visited, complied, with_target, dwell_minutes "
                       "FROM hotspot.compliance_officer_daily ORDER BY 1, 2") == [
        (D12, "alice", 2, 2, 1, 2, 30.0),   # a1 20 min >= 15 complied; a2 10 min did not
        (D12, "bob", 1, 1, 1, 1, 22.0),     # a3: v3 12 + v5's 10 before 06:00
        (D13, "carol", 1, 1, 1, 1, 16.0),
    ]
    assert rows(store, "SELECT trial_day, team, officers, assignments, complied, with_target "
                       "FROM hotspot.compliance_team_daily ORDER BY 1, 2") == [
        (D12, "Team A", 1, 2, 1, 2), (D12, "Team B", 1, 1, 1, 1), (D13, "(no team)", 1, 1, 1, 1)]


def test_trial_arms_by_day(store):
    assert rows(store, "SELECT trial_day, arm, hotspots, dwell_minutes, mean_minutes_per_hotspot, tasked_minutes, "
                       "untasked_minutes, visits, hotspots_with_15_minutes FROM hotspot.trial_arms_daily "
                       "WHERE trial_id = 'T1' ORDER BY 1, 2") == [
        (D12, "control", 2, 6.0, 3.0, 0.0, 6.0, 1, 0),      # H3 6 + H4 0
        (D12, "treatment", 2, 52.0, 26.0, 52.0, 0.0, 4, 1),   # H1 42 + H2 10
        (D13, "control", 2, 15.0, 7.5, 0.0, 15.0, 1, 0),    # H1 10 + H2 5, all background
        (D13, "treatment", 2, 19.0, 9.5, 16.0, 3.0, 2, 1),    # H3 16 + H4 3
    ]


def test_visit_lengths_leave_out_open_visits(store):
    assert rows(store, "SELECT length_band, count() FROM hotspot.visit_lengths GROUP BY length_band ORDER BY 1") == [
        ("0-5", 1), ("10-15", 2), ("15-20", 1), ("20-30", 2), ("5-10", 1)]  # v7 | v2 v3 | v6 | v1 v5 | v4; v8 open


# -------------------------------------------------------------------------------------- reports
def _png_ok(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 200 and height > 200
    return data


def test_dosage_report_numbers_plots_and_index(store, tmp_path):
    r = build_report(store, "dosage", D12, D13)
    assert r.figures == {
        "hotspots": 4, "days": 2, "dwell_minutes": 92.0,     # 42 + 10 + 10 + 5 + 6 + 16 + 3
        "bridged_minutes": 2.0, "untasked_minutes": 24.0,    # 10 + 5 + 6 + 3
        "hotspot_days_on_target": 2, "hotspot_days": 8,      # H1 day 12 (42), H3 day 13 (16)
        "closed_visits": 7, "visits_10_to_15": 2,            # v2 10, v3 12
        "visits_at_least_10": 5}                             # v1 v2 v3 v5 v6
    plots = {p.name: p for p in r.plots}
    assert plots["dosage_over_time.png"].title == "Dosage over time per hot spot"
    ax = plots["dosage_over_time.png"].figure.axes[0]
    assert len([ln for ln in ax.get_lines() if ln.get_label() in fx.HOTSPOTS]) == 4 == plots["dosage_over_time.png"].series
    h1 = next(ln for ln in ax.get_lines() if ln.get_label() == "H1")
    assert list(h1.get_ydata()) == [42.0, 10.0]
    koper = plots["visit_lengths.png"]
    assert koper.title == "Visit lengths against the 10-15 minute guidance"
    bars = koper.figure.axes[0].containers[0]
    assert sorted((round(b.get_x()), b.get_height()) for b in bars) == [(3, 1), (6, 1), (10, 1), (12, 1), (16, 1), (20, 2)]
    summary = {row[0]: row for row in r.tables["dosage_by_hotspot"].rows}
    assert summary["H1"][3:6] == [52.0, 26.0, 1]   # 52 minutes over 2 days, target reached on day 12
    paths = write_report(r, tmp_path / "out")
    index = (tmp_path / "out" / "index.html").read_text()
    assert index.index(r.summary.split(",")[0]) < index.index("<img")   # summary first
    for p in r.plots:
        assert f'src="{p.name}"' in index
        _png_ok(tmp_path / "out" / p.name)
    for name in r.tables:
        assert f'href="{name}.csv"' in index
    assert all(os.stat(p).st_mode & 0o077 == 0 for p in paths)
    assert (tmp_path / "out" / "dosage_daily.csv").read_text().splitlines()[1].startswith("H1,2026-01-12,42.0,40.0,2.0,42.0")


def test_compliance_report_by_team(store):
    r = build_report(store, "compliance", D12, D13)
    assert r.figures == {"assignments": 4, "visited": 4, "complied": 3, "with_target": 4}
    assert "Team A (50% of 2 assignments)" in r.summary   # the team that complied least
    (plot,) = r.plots
    assert plot.title == "Compliance by team"
    bars = plot.figure.axes[0].containers[0]
    labels = [t.get_text() for t in plot.figure.axes[0].get_yticklabels()]
    assert dict(zip(labels, [b.get_width() for b in bars])) == {"Team A": 50.0, "(no team)": 100.0, "Team B": 100.0}


def test_trial_report_with_intervals_then_crime_outcomes(store, store_env, tmp_path):
    r = build_report(store, "trial", D12, D13)
    # treated hot-spot days 42, 10, 16, 3: mean 17.75; control 6, 0, 10, 5: mean 5.25
    assert r.figures["mean_treated_minutes"] == 17.75 and r.figures["mean_control_minutes"] == 5.25
    # per-day differences of arm means: 26 - 3 = 23 and 9.5 - 7.5 = 2; mean 12.5, sd 14.849, t(0.975, 1) = 12.706:
    # half width 12.706 * 14.849 / sqrt(2) = 133.4
    assert r.figures["difference_minutes"] == 12.5
    assert r.figures["difference_low"] == pytest.approx(-120.915, abs=1e-3)
    assert r.figures["difference_high"] == pytest.approx(145.915, abs=1e-3)
    assert r.figures["background_minutes"] == 5.25   # untasked minutes in control hot spots on control days
    assert r.figures["crimes_loaded"] is False and [p.name for p in r.plots] == ["trial_arms_minutes.png"]
    (plot,) = r.plots
    assert plot.title == "Treated vs control: minutes per hot spot per day" and plot.series == 2
    ci = {(row[0], row[1]): row for row in r.tables["trial_arms_ci"].rows}
    # day 12 treated: H1 42, H2 10 -> mean 26, sd 22.627, half width 12.706 * 22.627 / sqrt(2) = 203.3
    assert ci[(D12, "treatment")][3:6] == [26.0, pytest.approx(-177.29, abs=0.01), pytest.approx(229.29, abs=0.01)]

    root, _, _ = store_env
    loaded = load_crimes(store, root / "crimes.csv")
    assert (loaded.loaded, loaded.in_hotspots, loaded.hotspots) == (4, 3, 4)   # the fourth is outside every hot spot
    assert rows(store, "SELECT hotspot_id, trial_day, crimes, harm_days FROM hotspot.crimes_daily ORDER BY 1, 2") == [
        ("H1", D12, 2, 30.0),   # 20:00 on the 12th and 05:30 on the 13th are both trial day 12
        ("H3", D13, 1, 5.0)]
    load_crimes(store, root / "crimes.csv")   # loading again replaces
    assert rows(store, "SELECT count() FROM hotspot.crimes FINAL") == [(4,)]
    r = build_report(store, "trial", D12, D13)
    assert [p.name for p in r.plots] == ["trial_arms_minutes.png", "trial_arms_crimes.png"]
    crimes_plot = r.plots[1]
    assert crimes_plot.title == "Treated vs control: crimes per hot spot per day" and crimes_plot.series == 2
    assert len(crimes_plot.figure.axes[0].containers) == 2   # one error-bar series per arm
    assert "not an impact evaluation" in r.summary
    # crimes per hot spot: day 12 treated (2 + 0) / 2 = 1 vs control 0; day 13 treated (1 + 0) / 2 = 0.5 vs 0
    assert "0.75 crimes per day more" in r.summary
    write_report(r, tmp_path / "trial")
    index = (tmp_path / "trial" / "index.html").read_text()
    assert 'src="trial_arms_crimes.png"' in index and "not an impact evaluation" in index


# --------------------------------------------------------------------------------------- export
def test_pseudonymised_export_leaks_no_identifier(store, tmp_path):
    opts = ExportOptions(D12, D13, time_resolution_s=900, grid_m=250.0, include_pings=True)
    counts = export(store, tmp_path / "e1", opts, b"salt-one")
    assert counts == {"visits": 8, "stops": 1, "mode_segments": 1, "assignments": 4, "activity": 1,
                      "allocations": 8, "pings": 3}
    identifiers = fx.USERS + fx.DEVICES + ["act-alice-1", "dave"]
    for f in sorted((tmp_path / "e1").iterdir()):
        data = f.read_bytes()
        for ident in identifiers:
            assert ident.encode() not in data.lower(), f"{ident} appears in {f.name}"
        assert os.stat(f).st_mode & 0o077 == 0
    visits = (tmp_path / "e1" / "visits.csv").read_text().splitlines()
    first = visits[1].split(",")
    assert first[1].startswith("device-") and first[3] == "2026-01-12T09:00:00.000Z"   # 09:10 floored to 15 min
    stop = (tmp_path / "e1" / "stops.csv").read_text().splitlines()[1].split(",")
    lat, lon = fx.inside("H1")
    assert (float(stop[6]), float(stop[7])) == coarsen_position(lat, lon, 250.0) != (lat, lon)
    assert "note" not in (tmp_path / "e1" / "activity.csv").read_text().splitlines()[0]

    # Same salt, same pseudonyms (exports can be joined); another salt, none in common.
    export(store, tmp_path / "e2", opts, b"salt-one")
    export(store, tmp_path / "e3", opts, b"salt-two")
    v1, v2, v3 = ((tmp_path / d / "visits.csv").read_text() for d in ("e1", "e2", "e3"))
    assert v1 == v2
    ids1 = {line.split(",")[1] for line in v1.splitlines()[1:]}
    ids3 = {line.split(",")[1] for line in v3.splitlines()[1:]}
    assert len(ids1) == 4 and not ids1 & ids3
    assert json.loads((tmp_path / "e1" / "manifest.json").read_text())["grid_m"] == 250.0


def test_coarse_grid_cells_are_about_the_size_asked():
    import math

    a = coarsen_position(51.75001, -1.26001, 250.0)
    b = coarsen_position(51.75001 + 250 / 111_320, -1.26001, 250.0)   # one cell north
    c = coarsen_position(51.75001, -1.26001 + 250 / (111_320 * math.cos(math.radians(a[0]))), 250.0)  # one east
    assert (b[0] - a[0]) * 111_320 == pytest.approx(250.0, rel=1e-4)
    assert (c[1] - a[1]) * 111_320 * math.cos(math.radians(a[0])) == pytest.approx(250.0, rel=1e-4) and c[0] == a[0]
    assert coarsen_position(51.75002, -1.26002, 250.0) == a   # a few metres away: the same cell


def test_reports_on_days_without_data_say_so(store, tmp_path):
    quiet = dt.date(2026, 2, 1)
    r = build_report(store, "compliance", quiet, quiet)
    assert "no assignments were recorded" in r.summary
    r = build_report(store, "dosage", quiet, quiet)
    assert r.figures["dwell_minutes"] == 0 and r.figures["closed_visits"] == 0
    write_report(r, tmp_path / "quiet")   # empty plots are still written
    _png_ok(tmp_path / "quiet" / "visit_lengths.png")
    with pytest.raises(Exception, match="no trial allocations"):
        build_report(store, "trial", quiet, quiet)


def test_police_uk_months_are_loaded_but_counted_in_no_trial_day(store, tmp_path):
    lat, lon = fx.inside("H3")
    path = tmp_path / "street.csv"
    path.write_text("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
                    "Crime type,Last outcome category,Context\n"
                    f"abc1,2026-01,Thames Valley Police,Thames Valley Police,{lon},{lat},On or near X,E01,Oxford 1,"
                    "Robbery,Under investigation,\n"
                    f",2026-01,Thames Valley Police,Thames Valley Police,{lon},{lat},On or near X,E01,Oxford 1,"
                    "Anti-social behaviour,,\n")
    loaded = load_crimes(store, path)
    assert (loaded.format, loaded.loaded, loaded.in_hotspots) == ("police.uk", 2, 2)
    from formats.crimes import read_harm_table

    weight = read_harm_table().weight_of   # no harm column in police.uk files: the shipped table's weights
    assert rows(store, "SELECT precision, category, harm_days FROM hotspot.crimes FINAL "
                       "WHERE source = 'police.uk' ORDER BY category") == [
        ("month", "Anti-social behaviour", weight("Anti-social behaviour")), ("month", "Robbery", weight("Robbery"))]
    assert weight("Robbery") > 0
    assert rows(store, "SELECT count() FROM hotspot.crimes_daily WHERE hotspot_id = 'H3' AND crimes > 1") == [(0,)]
    r = build_report(store, "trial", D12, D13)
    assert any("2 loaded crime records (police.uk) carry only their month" in n for n in r.notes)


# ------------------------------------------------------------------------------------ the CLI
def test_cli_reports_loads_and_exports_through_a_running_owner(store_env, tmp_path, cli_env):
    """With a process owning the embedded store (this one, as a worker does), the commands go through its query
    and insert servers; the figures are those of reading the store directly (the tests above)."""
    from sinks.query_server import serve_readonly_queries
    from sinks.shared_store import serve_inserts

    root, dsn, _ = store_env
    data_dir = tmp_path / "data"
    (tmp_path / "teams.csv").write_text("user,team\nalice,Team A\n")   # bob's team stays as loaded
    queries = serve_readonly_queries(dsn, data_dir)
    inserts = serve_inserts(dsn, data_dir)
    env = {**cli_env, "HOTSPOT_DATA_DIR": str(data_dir), "HOTSPOT_CLICKHOUSE_DSN": dsn}
    try:
        def run(*args):
            done = subprocess.run([HOTSPOT, *args], capture_output=True, text=True, env=env, timeout=300)
            assert done.returncode == 0, done.stderr
            return done

        loaded = run("teams", "load", str(tmp_path / "teams.csv"))
        assert "1 officers' teams loaded" in loaded.stderr
        loaded = run("crimes", "load", str(root / "crimes.csv"))   # once or again: the same 4 rows
        assert "4 records loaded (generic), 3 inside one of 4 hot spots" in loaded.stderr
        out = run("report", "trial", "--from", "2026-01-12", "--to", "2026-01-13", "--out", str(tmp_path / "trial"))
        assert "through the running worker" in out.stderr
        assert "the difference, averaged over trial days, is 12.5 minutes" in out.stdout
        assert "0.75 crimes per day more" in out.stdout and "not an impact evaluation" in out.stdout
        out = run("report", "compliance", "--from", "2026-01-12", "--to", "2026-01-13", "--out", str(tmp_path / "c"))
        assert "Team A (50% of 2 assignments)" in out.stdout
        for name in ("index.html", "compliance_by_team.png", "compliance_by_team.csv"):
            assert (tmp_path / "c" / name).stat().st_size > 0
        run("report", "dosage", "--from", "2026-01-12", "--to", "2026-01-13", "--out", str(tmp_path / "d"))
        assert "H1,2026-01-12,42.0" in (tmp_path / "d" / "dosage_daily.csv").read_text()
        run("export", "--pseudonymise", "--from", "2026-01-12", "--to", "2026-01-13", "--out", str(tmp_path / "e"))
        assert (data_dir / "export.salt").stat().st_mode & 0o077 == 0
        exported = (tmp_path / "e" / "assignments.csv").read_bytes()
        assert b"alice" not in exported and exported.count(b"officer-") == 4
    finally:
        queries.close()
        inserts.close()
    bad = subprocess.run([HOTSPOT, "report", "dosage", "--from", "2026-01-13", "--to", "2026-01-12", "--out",
                          str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "before --from" in bad.stderr
