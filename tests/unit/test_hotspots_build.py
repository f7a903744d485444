"""Hot-spot building on generated records whose concentration we planted."""
from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import shapely
from shapely.geometry import box

from processors.hotspots import (NO_HARM_WEIGHT, NO_TIME_OF_DAY, BuildOptions, build_hotspots, make_records,
                                 parse_harm_table)
from processors.hotspots.grid import Grid, to_wgs84
from formats.crimes import read_harm_table
from tests.data.generate import epoch, planted

HARM = read_harm_table()
GRID = Grid("square", 150.0, 27700)
I0, J0 = 3500, 1200  # a cell in central London (easting 525 km, northing 180 km)
MAY = epoch("2024-05-03T22:30:00+01:00")


def concentrated():
    """Four cells of 10 robberies (3,650 harm-days each) over 100 cells of one wounding (180 each)."""
    spec = [((I0 + 3 * k, J0), 10, "Robbery", MAY) for k in range(4)]
    spec += [((I0 + a, J0 + 5 + b), 1, "Violence with injury", MAY) for a in range(10) for b in range(10)]
    return planted(GRID, spec)


TOTAL = 4 * 3650 + 100 * 180  # 32,600


def test_harm_share_selects_the_fewest_cells_holding_that_share():
    build = build_hotspots(concentrated(), HARM, BuildOptions(harm_share=0.4))
    assert [h.cell_ids[0] for h in build.hotspots] == [f"sq150m_27700_{I0 + 3 * k}_{J0}" for k in range(4)]
    assert [h.stats["share_of_harm"] for h in build.hotspots] == [round(3650 / TOTAL, 5)] * 4
    assert build.hotspots[-1].stats["cumulative_share_of_harm"] == round(4 * 3650 / TOTAL, 5)
    assert build.totals == {"all": {"offences": 140, "harm_days": TOTAL}}
    assert len(build_hotspots(concentrated(), HARM, BuildOptions(harm_share=0.3)).hotspots) == 3
    # half is 16,300: the four robbery cells (14,600) and ten woundings (1,800)
    assert len(build_hotspots(concentrated(), HARM, BuildOptions(harm_share=0.5)).hotspots) == 4 + 10


def test_top_n_ranks_by_harm_then_offences_then_position():
    build = build_hotspots(concentrated(), HARM, BuildOptions(top_n=6))
    assert [h.rank for h in build.hotspots] == [1, 2, 3, 4, 5, 6]
    assert [h.stats["offences"] for h in build.hotspots] == [10, 10, 10, 10, 1, 1]
    # ties keep the same order on every build
    assert [h.id for h in build.hotspots] == [h.id for h in build_hotspots(concentrated(), HARM, BuildOptions(top_n=6)).hotspots]


def test_ids_and_geometry_stay_put_when_rebuilt_with_newer_records():
    first = build_hotspots(concentrated(), HARM, BuildOptions(top_n=4))
    newer = planted(GRID, [((I0 + 9, J0 + 9), 30, "Robbery", epoch("2024-11-20T23:00:00+00:00")),
                           ((I0 + 3, J0), 5, "Robbery", epoch("2024-10-01T01:00:00+01:00"))], seed=7)
    from processors.hotspots import CrimeRecords

    second = build_hotspots(CrimeRecords.concat([concentrated(), newer]), HARM, BuildOptions(top_n=4))
    assert second.hotspots[0].id == f"sq150m_27700_{I0 + 9}_{J0 + 9}"  # the new leader
    before = {h.id: h.geometry for h in first.hotspots}
    after = {h.id: h.geometry for h in second.hotspots}
    shared = before.keys() & after.keys()
    assert f"sq150m_27700_{I0 + 3}_{J0}" in shared and len(shared) == 3
    assert all(before[k] == after[k] for k in shared)


def test_day_and_night_are_ranked_separately_on_local_clock_time():
    summer_night = epoch("2024-07-05T23:30:00+01:00")
    winter_day = epoch("2024-01-12T13:00:00+00:00")
    # 06:30 UTC is 07:30 BST (day) in July but 06:30 GMT (night) in January.
    summer_0630z = epoch("2024-07-06T06:30:00+00:00")
    winter_0630z = epoch("2024-01-13T06:30:00+00:00")
    records = planted(GRID, [((I0, J0), 10, "Robbery", summer_night), ((I0 + 4, J0), 8, "Robbery", winter_day),
                             ((I0 + 8, J0), 3, "Robbery", summer_0630z), ((I0 + 12, J0), 2, "Robbery", winter_0630z)])
    build = build_hotspots(records, HARM, BuildOptions(day_night=True, top_n=2))
    by_period = {p: [h.id for h in build.hotspots if h.period == p] for p in ("day", "night")}
    assert by_period == {"day": [f"sq150m_27700_{I0 + 4}_{J0}_day", f"sq150m_27700_{I0 + 8}_{J0}_day"],
                         "night": [f"sq150m_27700_{I0}_{J0}_night", f"sq150m_27700_{I0 + 12}_{J0}_night"]}
    assert build.totals["day"]["offences"] == 11 and build.totals["night"]["offences"] == 12
    night = build.hotspots[2]
    assert night.hours == "19:00–07:00" and night.feature()["properties"]["ground_id"] == f"sq150m_27700_{I0}_{J0}"


def test_day_night_counts_records_without_a_time_of_day_as_bad():
    timed = planted(GRID, [((I0, J0), 4, "Robbery", MAY)])
    untimed = make_records(timed.lat_deg, timed.lon_deg, timed.occurred_s, ["Robbery"] * 4, precision=2)
    from processors.hotspots import CrimeRecords

    build = build_hotspots(CrimeRecords.concat([timed, untimed]), HARM, BuildOptions(day_night=True))
    assert build.bad_rows == {NO_TIME_OF_DAY: 4}
    assert build.totals["night"]["offences"] == 4


def test_window_counts_the_last_365_days_and_the_trend_compares_the_365_before():
    spec = [((I0, J0), 1, "Robbery", epoch(t)) for t in (
        "2024-06-30T23:00:00+01:00", "2024-01-01T00:30:00+00:00", "2023-07-01T00:30:00+01:00",  # window
        "2023-06-30T23:30:00+01:00", "2022-07-02T12:00:00+01:00",  # previous window
        "2022-06-30T12:00:00+01:00")]  # older than both
    build = build_hotspots(planted(GRID, spec), HARM, BuildOptions())
    assert (build.window_from, build.window_to) == (date(2023, 7, 2), date(2024, 6, 30))
    # 2023-07-01 00:30 BST is before the window's first local midnight
    (h,) = build.hotspots
    assert h.stats["offences"] == 2 and h.stats["previous"]["offences"] == 3 and h.stats["trend"] == "down"
    assert build.filtered["before the window"] == 1
    assert h.briefing.endswith("2 serious violence offences in the 12 months to 30 June 2024, down from 3 in the 12 months before.")


def test_as_of_date_cuts_newer_records_and_a_short_history_has_no_trend():
    spec = [((I0, J0), 1, "Robbery", epoch(t)) for t in ("2024-06-30T23:00:00+01:00", "2024-04-01T12:00:00+01:00")]
    build = build_hotspots(planted(GRID, spec), HARM, BuildOptions(as_of=date(2024, 5, 31), window_days=90))
    (h,) = build.hotspots
    assert h.stats["offences"] == 1 and h.stats["previous"] is None and h.stats["trend"] is None
    assert build.filtered["after the as-of date"] == 1
    assert h.briefing.endswith("1 serious violence offence in the 90 days to 31 May 2024; there is no earlier data to compare with.")


def test_excluded_areas_drop_their_crimes_and_the_cells_centred_in_them():
    records = concentrated()
    # The mask covers the first hot cell's centre and half of it, and nothing else.
    x0, y0 = I0 * 150.0, J0 * 150.0
    lon, lat = to_wgs84(27700, np.array([x0 - 10, x0 + 100]), np.array([y0 - 10, y0 + 160]))
    mask = box(lon[0], lat[0], lon[1], lat[1])
    build = build_hotspots(records, HARM, BuildOptions(harm_share=0.4, exclude=(mask,)))
    ids = [h.cell_ids[0] for h in build.hotspots]
    assert f"sq150m_27700_{I0}_{J0}" not in ids
    assert build.filtered["inside an excluded area"] > 0
    assert build.totals["all"]["offences"] == 140 - build.filtered["inside an excluded area"]


def test_merge_adjacent_joins_cells_sharing_an_edge_under_the_south_west_cell_id():
    records = planted(GRID, [((I0, J0), 5, "Robbery", MAY), ((I0 + 1, J0), 4, "Robbery", MAY),
                             ((I0 + 1, J0 + 1), 3, "Robbery", MAY), ((I0 + 5, J0 + 5), 2, "Robbery", MAY),
                             ((I0 + 6, J0 + 6), 2, "Robbery", MAY)])  # corner-touching only: not merged
    build = build_hotspots(records, HARM, BuildOptions(top_n=5, merge_adjacent=True))
    assert [h.id for h in build.hotspots] == [f"grp_sq150m_27700_{I0}_{J0}", f"sq150m_27700_{I0 + 5}_{J0 + 5}",
                                              f"sq150m_27700_{I0 + 6}_{J0 + 6}"]
    group = build.hotspots[0]
    assert group.stats["offences"] == 12 and len(group.cell_ids) == 3
    assert group.geometry["type"] == "Polygon" and group.geometry_xy.area == pytest.approx(3 * 22500)


def test_gi_star_keeps_a_cluster_and_its_ring_and_drops_a_lone_cell_that_beats_the_background():
    cluster = {(I0 + a, J0 + b) for a in (-1, 0, 1) for b in (-1, 0, 1)}
    lone = (I0 + 10, J0)
    spec = [(c, 5, "Robbery", MAY) for c in sorted(cluster)] + [(lone, 1, "Robbery", MAY)]
    spec += [((I0 + a, J0 + b), 1, "Violence with injury", MAY) for a in range(-15, 16) for b in range(-15, 16)
             if (I0 + a, J0 + b) not in cluster and (I0 + a, J0 + b) != lone]
    records = planted(GRID, spec)
    plain = build_hotspots(records, HARM, BuildOptions(top_n=10))
    assert plain.hotspots[-1].cell_ids == [f"sq150m_27700_{lone[0]}_{lone[1]}"]  # 365 harm-days beats 180
    gi = build_hotspots(records, HARM, BuildOptions(top_n=100, gi_star=True))
    kept = [h.cell_ids[0] for h in gi.hotspots]
    ring = {(I0 + a, J0 + b) for a in range(-2, 3) for b in range(-2, 3)}
    assert set(kept) == {f"sq150m_27700_{i}_{j}" for i, j in ring}
    assert set(kept[:9]) == {f"sq150m_27700_{i}_{j}" for i, j in cluster}  # still ranked by harm
    assert all(h.stats["gi_star"]["z"] > 3 for h in gi.hotspots)


def test_default_categories_are_the_serious_violence_set_and_all_takes_everything():
    records = planted(GRID, [((I0, J0), 3, "Shoplifting", MAY), ((I0 + 1, J0), 1, "robbery", MAY),
                             ((I0 + 2, J0), 2, "Violence without injury", MAY)])
    build = build_hotspots(records, HARM, BuildOptions())
    assert [h.cell_ids[0] for h in build.hotspots] == [f"sq150m_27700_{I0 + 1}_{J0}"]
    assert build.filtered["other categories"] == 5
    everything = build_hotspots(records, HARM, BuildOptions(categories=("all",)))
    assert len(everything.hotspots) == 3 and everything.totals["all"]["harm_days"] == 3 * 5 + 365 + 2 * 10
    named = build_hotspots(records, HARM, BuildOptions(categories=("Shoplifting", "Knife crime")))
    assert named.unknown_categories == ["Knife crime"] and named.totals["all"]["offences"] == 3


def test_record_harm_overrides_the_table_and_unweighted_categories_are_counted_bad():
    table = parse_harm_table("category,harm_days,serious_violence\nRobbery,365,yes\nStabbing,0,yes\n")
    records = planted(GRID, [((I0, J0), 2, "Robbery", MAY), ((I0 + 1, J0), 1, "Stabbing", MAY)],
                      harm_days=[np.nan, np.nan, 1000.0])
    build = build_hotspots(records, table, BuildOptions())
    assert [h.stats["harm_days"] for h in build.hotspots] == [1000.0, 730.0]
    other = planted(GRID, [((I0, J0), 2, "Robbery", MAY), ((I0 + 1, J0), 1, "Knife crime", MAY)])
    build = build_hotspots(other, table, BuildOptions(categories=("Robbery", "Knife crime")))
    assert build.bad_rows == {NO_HARM_WEIGHT: 1}


def test_hexagon_hot_spots_have_six_sided_cells_of_the_nominal_area():
    hexes = Grid("hex", 150.0, 27700)
    records = planted(hexes, [((2900, 1390), 4, "Robbery", MAY)])
    (h,) = build_hotspots(records, HARM, BuildOptions(shape="hex")).hotspots
    assert h.id == "hx150m_27700_2900_1390"
    assert h.stats["cell"]["area_m2"] == pytest.approx(np.sqrt(3) / 2 * 150**2, abs=0.1)


def test_feature_collection_follows_the_hot_spot_file_contract():
    build = build_hotspots(concentrated(), HARM, BuildOptions(top_n=3))
    fc = build.feature_collection(selection="top 3")
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    for f in fc["features"]:
        props = f["properties"]
        assert f["type"] == "Feature" and f["id"] == props["id"]
        assert isinstance(props["name"], str) and props["briefing"].endswith(".")
        assert shapely.geometry.shape(f["geometry"]).is_valid
        assert set(props["stats"]) >= {"offences", "harm_days", "share_of_harm", "by_category", "trend", "peak_hours",
                                       "peak_days", "previous"}
