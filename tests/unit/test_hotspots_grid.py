"""Grids are true squares and hexagons on the ground, anchored so ids never move."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from processors.hotspots import BuildOptions, build_hotspots, parse_cell_id
from processors.hotspots.grid import Grid, choose_metric_epsg, os_grid_reference, to_metric
from processors.hotspots.ids import cell_id
from formats.crimes import read_harm_table
from tests.data.generate import epoch, planted

GEOD = Geod(ellps="WGS84")
HARM = read_harm_table()


@pytest.mark.parametrize("lon, lat, epsg", [
    (-0.1276, 51.5072, 27700),   # London
    (-3.1883, 55.9533, 27700),   # Edinburgh
    (-6.3, 49.92, 27700),        # Isles of Scilly, far west of the grid's central meridian
    (2.3522, 48.8566, 32631),    # Paris
    (-74.006, 40.7128, 32618),   # New York
    (151.2093, -33.8688, 32756),  # Sydney
])
def test_metric_crs_is_british_national_grid_in_britain_and_utm_elsewhere(lon, lat, epsg):
    assert choose_metric_epsg(np.array([lon]), np.array([lat])) == epsg


@pytest.mark.parametrize("shape", ["square", "hex"])
@pytest.mark.parametrize("lon, lat", [(-0.1276, 51.5072), (-6.3, 49.92), (-1.14, 60.15), (151.2093, -33.8688)])
def test_built_cells_are_within_1pct_of_nominal_area_on_the_ground(shape, lon, lat):
    epsg = choose_metric_epsg(np.array([lon]), np.array([lat]))
    grid = Grid(shape, 150.0, epsg)
    x, y = to_metric(epsg, np.array([lon]), np.array([lat]))
    i, j = grid.index_of(x, y)
    records = planted(grid, [((int(i[0]), int(j[0])), 3, "Robbery", epoch("2024-05-03T22:00:00+00:00"))])
    build = build_hotspots(records, HARM, BuildOptions(shape=shape))
    (h,) = build.hotspots
    assert h.geometry_xy.area == pytest.approx(grid.nominal_area_m2, rel=1e-9)  # exact in the metric CRS
    ring = np.array(h.geometry["coordinates"][0])
    ground_m2, _ = GEOD.polygon_area_perimeter(ring[:, 0], ring[:, 1])
    assert abs(abs(ground_m2) / grid.nominal_area_m2 - 1) < 0.01
    assert len(ring) == (5 if shape == "square" else 7)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-1e6, 1e6), y=st.floats(-1e6, 1e7), shape=st.sampled_from(["square", "hex"]),
       size=st.sampled_from([50.0, 150.0, 250.0]))
def test_every_point_falls_inside_the_cell_it_is_binned_to(x, y, shape, size):
    grid = Grid(shape, size, 27700)
    i, j = grid.index_of(np.array([x]), np.array([y]))
    poly = shapely.polygons(grid.vertices_of(i, j))[0]
    assert poly.buffer(1e-6 * size).contains(shapely.Point(x, y))


def test_hexagon_neighbours_share_an_edge_and_touching_squares_include_corners():
    hexes = Grid("hex", 150.0, 27700)
    centre = shapely.polygons(hexes.vertices_of(np.array([0]), np.array([0])))[0]
    for di, dj in hexes.edge_offsets():
        other = shapely.polygons(hexes.vertices_of(np.array([di]), np.array([dj])))[0]
        assert centre.buffer(1e-6).intersection(other.boundary).length == pytest.approx(150.0 / np.sqrt(3), rel=1e-6)
        assert centre.intersection(other).area == pytest.approx(0.0, abs=1e-6)
    assert len(Grid("square", 150.0, 27700).touching_offsets()) == 8


def test_cell_ids_name_the_grid_and_the_index_and_parse_back():
    assert cell_id("square", 150.0, 27700, 3456, -12) == "sq150m_27700_3456_-12"
    assert parse_cell_id("hx150m_32631_120_-5") == ("hex", 150.0, 32631, 120, -5)
    with pytest.raises(ValueError):
        parse_cell_id("grp_sq150m_27700_1_2")


def test_ordnance_survey_grid_reference_of_big_ben():
    assert os_grid_reference(530268, 179640) == "TQ 302 796"
    assert os_grid_reference(-5, 10) is None
