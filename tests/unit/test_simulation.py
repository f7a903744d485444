"""The simulator is itself a specification: its behaviours, its devices' faults and its truth."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import shapely

from simulation.config import ACCURACY_TO_SIGMA, FOOT_CODE, STATIONARY_CODE, VEHICLE_CODE, SimConfig, scenario_config
from simulation.simulate import Simulation
from simulation.world import hotspots_from_features
from cli import main
from formats.timestamps import iso_local_many, parse_ts_ms
from simulation.files import LOCAL_ZONE, read_truth, write_simulation


@pytest.fixture(scope="module")
def day() -> Simulation:
    """Six officers for three hours: one of each profile x two accuracy classes."""
    return Simulation(SimConfig(seed=11, officers=6, hours=3, accuracy_classes_m=(10.0, 20.0))).run()


@pytest.fixture(scope="module")
def faulty() -> Simulation:
    """Exaggerated fault rates so that rates can be measured on a small sample."""
    return Simulation(SimConfig(seed=5, officers=3, hours=4, profiles=("airwave",), duplicate_rate=0.05,
                                late_rate=0.08, outlier_rate=0.01, gap_rate_per_h=3.0)).run()


def _errors_xy(sim: Simulation, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tb = sim.ping_table()
    x, y = sim.frame.to_xy(tb.lon[mask], tb.lat[mask])
    tx, ty = sim.frame.to_xy(tb.true_lon[mask], tb.true_lat[mask])
    return np.asarray(x) - tx, np.asarray(y) - ty


def _device_pings(sim: Simulation, device: int, *, originals: bool = True) -> np.ndarray:
    tb = sim.ping_table()
    m = tb.device == device
    if originals:
        m &= ~tb.duplicate
    return m


# --- determinism -------------------------------------------------------------

def test_same_seed_writes_byte_identical_files(tmp_path):
    args = ["simulate", "--officers", "3", "--hours", "1", "--seed", "42"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "pings.csv" in names and "truth_visits.csv" in names and "hotspots.geojson" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_another_seed_gives_another_day():
    a = Simulation(SimConfig(seed=1, officers=1, hours=0.5)).ping_table()
    b = Simulation(SimConfig(seed=2, officers=1, hours=0.5)).ping_table()
    assert len(a) != len(b) or not np.array_equal(a.lat, b.lat)


def test_an_officers_day_does_not_depend_on_how_many_others_are_simulated():
    two = Simulation(SimConfig(seed=9, officers=2, hours=0.5))
    three = Simulation(SimConfig(seed=9, officers=3, hours=0.5))
    for sim in (two, three):
        sim.run()
    a, b = two.ping_table(), three.ping_table()
    ma, mb = a.device == 1, b.device == 1
    assert np.array_equal(a.ts_ms[ma], b.ts_ms[mb])
    assert np.array_equal(a.lat[ma], b.lat[mb])
    assert two.truth().visits[-1] in three.truth().visits


# --- devices -------------------------------------------------------------------

def test_ping_intervals_follow_the_device_profiles(day):
    tb = day.ping_table()
    expected = {"airwave": 5.0, "vehicle": 10.0, "handheld": 60.0}
    for i, dev in enumerate(day.devices()):
        ts = np.sort(tb.ts_ms[_device_pings(day, i)])
        assert np.median(np.diff(ts)) / 1000 == expected[dev.profile], dev


def test_reported_accuracy_is_the_68_percent_radius_of_the_actual_error(day):
    tb = day.ping_table()
    for cls in (10.0, 20.0):
        devices = [i for i, d in enumerate(day.devices()) if d.accuracy_class_m == cls]
        m = np.isin(tb.device, devices) & ~tb.outlier & ~tb.duplicate
        assert 0.9 * cls <= np.median(tb.accuracy_m[m]) <= 1.1 * cls
        within = np.mean(tb.error_m[m] <= tb.accuracy_m[m])
        assert 0.63 <= within <= 0.73, (cls, within)


def test_gps_error_is_correlated_in_time_like_a_gauss_markov_process():
    sim = Simulation(SimConfig(seed=3, officers=3, hours=4, profiles=("airwave", "vehicle", "handheld"),
                               accuracy_classes_m=(15.0,), gap_rate_per_h=0.0, outlier_rate=0.0)).run()
    tb = sim.ping_table()
    for i, interval in enumerate((5.0, 10.0, 60.0)):
        m = _device_pings(sim, i)
        order = np.argsort(tb.ts_ms[m])
        ex, ey = _errors_xy(sim, m)
        sigma = tb.accuracy_m[m][order] * ACCURACY_TO_SIGMA
        zx, zy = ex[order] / sigma, ey[order] / sigma   # unit variance once the accuracy is divided out
        lag1 = np.mean([np.corrcoef(z[:-1], z[1:])[0, 1] for z in (zx, zy)])
        assert abs(lag1 - math.exp(-interval / 60.0)) < 0.12, (interval, lag1)
        assert 0.8 < np.std(np.concatenate([zx, zy])) < 1.2


def test_duplicates_are_exact_copies_delivered_later_at_the_requested_rate(faulty):
    tb = faulty.ping_table()
    originals = (~tb.duplicate).sum()
    rate = tb.duplicate.sum() / originals
    assert abs(rate - 0.05) < 3 * math.sqrt(0.05 * 0.95 / originals)
    for i in np.flatnonzero(tb.duplicate)[:50]:
        twin = np.flatnonzero((tb.device == tb.device[i]) & (tb.ts_ms == tb.ts_ms[i]) & ~tb.duplicate)
        assert len(twin) == 1
        j = twin[0]
        assert (tb.lat[i], tb.lon[i], tb.accuracy_m[i]) == (tb.lat[j], tb.lon[j], tb.accuracy_m[j])
        assert tb.delivered_ms[i] > tb.delivered_ms[j]


def test_late_pings_arrive_after_later_fixes_at_the_requested_rate(faulty):
    tb = faulty.ping_table()
    assert np.all(np.diff(tb.delivered_ms) >= 0), "the table is in delivery order"
    m = ~tb.duplicate
    out_of_order = np.zeros(len(tb), dtype=bool)
    for d in np.unique(tb.device):
        idx = np.flatnonzero(m & (tb.device == d))
        ts = tb.ts_ms[idx]
        # out of order: a fix delivered earlier has a later fix time
        out_of_order[idx[1:]] = ts[1:] < np.maximum.accumulate(ts)[:-1]
    n = m.sum()
    assert abs(tb.late[m].mean() - 0.08) < 3 * math.sqrt(0.08 * 0.92 / n)
    assert not (out_of_order & ~tb.late).any(), "only late pings are out of order"
    # with 5 s fixes and 8-45 s extra delay a late ping is overtaken unless a silence follows it
    assert out_of_order[m & tb.late].mean() > 0.9
    # ... and only slightly: by at most the 45 s of delay, i.e. ten 5 s fixes
    for d in np.unique(tb.device):
        ts = tb.ts_ms[m & (tb.device == d)]
        for k in np.flatnonzero(out_of_order[m & (tb.device == d)]):
            assert 1 <= np.count_nonzero(ts[:k] > ts[k]) <= 10


def test_wild_outliers_are_rare_and_hundreds_of_metres_to_kilometres_off(faulty):
    tb = faulty.ping_table()
    m = ~tb.duplicate
    share = tb.outlier[m].mean()
    assert 0.005 < share < 0.03
    assert tb.error_m[m & tb.outlier].min() >= 190
    assert tb.error_m[m & tb.outlier].max() <= 3100
    assert tb.error_m[m & ~tb.outlier].max() < 200


def test_signal_gaps_are_silences_recorded_in_the_truth(faulty):
    tb = faulty.ping_table()
    gaps = faulty.truth().gaps
    assert len(gaps) >= 10
    for g in gaps:
        dev = faulty.device_ids.index(g.device_id)
        ts = tb.ts_ms[(tb.device == dev) & (tb.ts_ms > g.started_ms) & (tb.ts_ms < g.ended_ms)]
        assert len(ts) == 0
        assert g.ended_ms - g.started_ms > 1.5 * 5000


def test_pings_file_is_the_replay_format_in_delivery_order_with_uk_offsets(day, tmp_path):
    write_simulation(day, tmp_path)
    with open(tmp_path / "pings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["device_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg",
                             "altitude_m", "battery"]
    assert len(rows) == len(day.ping_table())
    assert all(r["ts"].endswith("+01:00") for r in rows)  # June: British Summer Time
    streamed = list(day.pings())
    for r, p in zip(rows[:200], streamed[:200]):
        assert r["device_id"] == p.device_id and parse_ts_ms(r["ts"]) == p.ts_ms
        assert float(r["lat"]) == p.lat and float(r["lon"]) == p.lon
        assert (r["speed_mps"] == "") == (p.speed_mps is None)
    assert [p.delivered_ms for p in streamed] == sorted(p.delivered_ms for p in streamed)
    handheld = [r for r in rows if r["device_id"] == "sim-003"]
    assert handheld and all(r["speed_mps"] == "" and r["battery"] != "" for r in handheld)


def test_local_offsets_follow_the_uk_clock_change():
    # 2025-10-26 01:00 UTC the UK goes back from BST (+01:00) to GMT (+00:00)
    before, after = parse_ts_ms("2025-10-26T00:59:59Z"), parse_ts_ms("2025-10-26T01:00:00Z")
    assert iso_local_many([before, after], LOCAL_ZONE) == ["2025-10-26T01:59:59+01:00", "2025-10-26T01:00:00+00:00"]


# --- behaviours and truth ------------------------------------------------------

def _speed(track) -> np.ndarray:
    v = np.hypot(np.diff(track.x_m), np.diff(track.y_m))  # metres per 1 s step
    return np.concatenate([[0.0], v])


def test_vehicles_drive_at_8_to_15_mps_and_stay_vehicles_while_waiting_at_junctions(day):
    waits = []
    for d in day.device_ids:
        tr = day.true_track(d)
        v = _speed(tr)
        veh = tr.mode == VEHICLE_CODE
        assert v[veh].max() <= 15.0 + 1e-6
        assert np.percentile(v[veh & (v > 1)], 75) >= 8.0
        # runs of standing still inside vehicle time are the junction waits
        still = veh & (v < 0.01)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(int), [0]])))
        waits += list(np.diff(edges)[::2])
    assert waits and 10 <= max(waits) <= 61
    assert sum(1 for w in waits if w >= 10) >= 5


def test_officers_walk_at_1_1_to_1_6_mps(day):
    for d in day.device_ids:
        tr = day.true_track(d)
        v = _speed(tr)
        walking = (tr.mode == FOOT_CODE) & (v > 0.5)
        assert 1.1 - 1e-6 <= np.median(v[walking]) <= 1.6 + 1e-6
        assert v[walking].max() <= 1.6 + 1e-6


def test_patrols_spend_10_to_20_minutes_inside_with_standing_stops(day):
    truth = day.truth()
    patrols = [v for v in truth.visits if v.kind == "patrol" and v.end_reason == "exit"]
    assert len(patrols) >= 10
    assert all(598 <= v.dwell_s <= 1202 for v in patrols), [v.dwell_s for v in patrols]
    assert all(v.vehicle_s == 0 and v.foot_s > 0 for v in patrols)
    with_stop = {(s.device_id, s.episode_id) for s in truth.stops}
    assert sum((v.device_id, v.episode_id) in with_stop for v in patrols) == len(patrols)


def test_standing_stops_last_over_2_minutes_within_a_few_metres_inside_the_hot_spot(day):
    truth = day.truth()
    areas = day.hotspot_areas()
    assert len(truth.stops) >= 10
    for s in truth.stops:
        assert 150 <= s.duration_s <= 360   # never cut short by the end of the shift
        tr = day.true_track(s.device_id)
        k = (tr.t_ms >= s.started_ms) & (tr.t_ms <= s.ended_ms)
        cx, cy = day.frame.to_xy(s.lon, s.lat)
        assert np.hypot(tr.x_m[k] - cx, tr.y_m[k] - cy).max() <= 3.0
        assert (tr.mode[k][1:] == STATIONARY_CODE).all()
        assert shapely.contains_xy(areas[s.hotspot_id], cx, cy)


def test_walking_never_dawdles_like_a_stop(day):
    """Outside the designed stops nobody stays within 30 m for 2 minutes on foot, so truth stops are the only stops."""
    for d in day.device_ids:
        tr = day.true_track(d)
        foot = tr.mode == FOOT_CODE
        edges = np.flatnonzero(np.diff(np.concatenate([[0], foot.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a <= 120:
                continue
            xy = np.column_stack([tr.x_m[a:b], tr.y_m[a:b]])
            win = np.lib.stride_tricks.sliding_window_view(xy, (121, 2))[:, 0]
            spread = np.hypot(*(win - win.mean(axis=1, keepdims=True)).transpose(2, 0, 1)).max(axis=1)
            assert spread.min() > 30.0, (d, a)


def test_drive_bys_and_edge_walks_stay_10_to_25_m_outside_every_hot_spot():
    sim = Simulation(scenario_config("edges_15m", seed=4, officers=3, hours=2)).run()
    areas = sim.hotspot_areas()
    truth = sim.truth()
    kinds = {e.kind for e in truth.episodes}
    assert {"drive_by", "edge_walk"} <= kinds and "patrol" not in kinds
    for e in truth.episodes:
        if e.kind not in ("drive_by", "edge_walk"):
            continue
        tr = sim.true_track(e.device_id)
        k = (tr.t_ms > e.started_ms) & (tr.t_ms <= e.ended_ms)
        pts = shapely.points(tr.x_m[k], tr.y_m[k])
        to_target = shapely.distance(pts, areas[e.hotspot_id]).min()
        assert 10.0 <= to_target <= 25.0 + 1e-6, (e, to_target)
        assert min(shapely.distance(pts, a).min() for a in areas.values()) >= 10.0
        assert abs(to_target - e.offset_m) < 1.0
    assert not [v for v in truth.visits if v.kind in ("drive_by", "edge_walk")]


def test_drive_throughs_are_short_true_visits_in_a_vehicle(day):
    dt = [v for v in day.truth().visits if v.kind == "drive_through"]
    assert dt
    assert all(v.vehicle_s == pytest.approx(v.dwell_s, abs=1e-3) and v.dwell_s < 200 for v in dt)


def test_truth_visits_are_exactly_the_time_the_true_track_is_inside(day):
    areas = day.hotspot_areas()
    truth = day.truth()
    for d in day.device_ids:
        tr = day.true_track(d)
        for hid, area in areas.items():
            inside = shapely.contains_xy(area, tr.x_m, tr.y_m)
            mine = [v for v in truth.visits if v.device_id == d and v.hotspot_id == hid]
            # one visit per run of inside samples, and the sampled inside time agrees to a second a visit
            runs = np.count_nonzero(np.diff(np.concatenate([[0], inside.astype(int)])) == 1)
            assert len(mine) == runs
            assert abs(inside.sum() - sum(v.dwell_s for v in mine)) <= len(mine) + 1
            for v in mine:
                assert v.dwell_s == pytest.approx((v.exited_ms - v.entered_ms) / 1000, abs=2e-3)
                assert v.foot_s + v.vehicle_s + v.stationary_s == pytest.approx(v.dwell_s, abs=0.01)


def test_truth_counts_the_buffer_as_inside():
    square = {"type": "Feature", "properties": {"id": "sq", "name": "Square", "briefing": "b", "buffer_m": 20},
              "geometry": {"type": "Polygon", "coordinates": [[[-1.2600, 51.7500], [-1.2578, 51.7500],
                                                               [-1.2578, 51.7514], [-1.2600, 51.7514],
                                                               [-1.2600, 51.7500]]]}}
    sim = Simulation(scenario_config("patrols", seed=2, officers=1, hours=1), hotspots=[square]).run()
    hs = hotspots_from_features([square], sim.frame)[0]
    assert hs.area.area > hs.drawn.area
    tr = sim.true_track("sim-001")
    patrol = [v for v in sim.truth().visits if v.kind == "patrol"]
    assert patrol
    v = patrol[0]
    k = int(np.searchsorted(tr.t_ms, v.entered_ms))  # first sample after entering
    p = shapely.Point(tr.x_m[k], tr.y_m[k])
    assert shapely.distance(p, hs.drawn) <= 20.0 + 2.0  # entered through the buffer ring, not the drawn edge
    assert shapely.distance(p, hs.drawn) >= 20.0 - 2.0


def test_modes_cover_the_whole_shift_without_overlap(day):
    truth = day.truth()
    for dev in truth.devices:
        spans = [m for m in truth.modes if m.device_id == dev.device_id]
        assert spans[0].started_ms == dev.shift_start_ms and spans[-1].ended_ms == dev.shift_end_ms
        assert all(a.ended_ms == b.started_ms and a.mode != b.mode for a, b in zip(spans, spans[1:]))
        assert {m.mode for m in spans} == {"foot", "vehicle", "stationary"}


def test_generated_hot_spots_follow_the_hot_spot_file_format(day, tmp_path):
    write_simulation(day, tmp_path)
    doc = json.loads((tmp_path / "hotspots.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 20
    ids = set()
    for f in doc["features"]:
        p = f["properties"]
        assert p["id"] and p["name"] and len(p["briefing"]) > 40
        ids.add(p["id"])
        g = shapely.geometry.shape(f["geometry"])
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon") and g.is_valid
        lon, lat = g.centroid.x, g.centroid.y
        assert 51.72 < lat < 51.78 and -1.31 < lon < -1.21
    assert len(ids) == 20
    assert any(f["geometry"]["type"] == "MultiPolygon" for f in doc["features"])
    assert any("buffer_m" in f["properties"] for f in doc["features"])
    truth = read_truth(tmp_path)
    assert truth.device_hours == pytest.approx(18.0)


# --- command line --------------------------------------------------------------

def test_simulate_around_given_hot_spots(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path / "a"), "--officers", "2", "--hours", "0.5"]) == 0
    src = tmp_path / "a" / "hotspots.geojson"
    assert main(["simulate", "--out", str(tmp_path / "b"), "--officers", "2", "--hours", "1",
                 "--hotspots", str(src), "--scenario", "patrols"]) == 0
    assert (tmp_path / "b" / "hotspots.geojson").read_text() == src.read_text()
    with open(tmp_path / "b" / "truth_visits.csv") as fh:
        assert any(r["kind"] == "patrol" for r in csv.DictReader(fh))
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--officers", "0"], "--officers"),
    (["--hours", "-1"], "--hours"),
    (["--scenario", "nope"], "--scenario"),
    (["--profiles", "pager"], "pager"),
    (["--accuracy-m", "ten"], "--accuracy-m"),
    (["--start", "yesterday"], "--start"),
    (["--hotspots", "missing.geojson"], "missing.geojson"),
])
def test_simulate_refuses_bad_arguments_with_one_line(tmp_path, capsys, args, message):
    assert main(["simulate", "--out", str(tmp_path)] + args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_simulate_refuses_a_hot_spot_file_without_ids(tmp_path, capsys):
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "x"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0, 1e-3], [1e-3, 0], [0, 0]]]}}]}))
    assert main(["simulate", "--out", str(tmp_path / "o"), "--hotspots", str(bad)]) == 1
    assert "feature 0: properties.id must be a non-empty string" in capsys.readouterr().err
