"""The hot-spot index: batch matching of positions, with edges, buffers, overlaps and active windows."""
from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from formats.hotspots import hotspots_from_geojson
from processors.geofence import Hotspot, HotspotIndex
from tests.unit.tracks import KX, KY, LAT0, LON0, T0, H, index, lat_lon, polygon, square


def _match(idx, xy_m, edge_m=0.0, ts_ms=None):
    lat, lon = zip(*(lat_lon(x, y) for x, y in xy_m))
    m = idx.match(np.array(lat), np.array(lon), edge_m, ts_ms)
    ins, edge = m.per_point(len(xy_m))
    return list(zip(ins, edge))


def test_inside_outside_and_edge():
    got = _match(index(H), [(75, 75), (145, 75), (155, 75), (175, 75), (-500, -500)], edge_m=10.0)
    assert got == [(("H",), ()), (("H",), ("H",)), ((), ("H",)), ((), ()), ((), ())]


def test_zero_edge_distance_means_no_edge_zone():
    assert _match(index(H), [(149, 75), (151, 75)]) == [(("H",), ()), ((), ())]


def test_per_point_edge_distances():
    got = _match(index(H), [(140, 75), (140, 75)], edge_m=np.array([5.0, 15.0]))
    assert got == [(("H",), ()), (("H",), ("H",))]


def test_a_point_in_overlapping_hot_spots_matches_all_of_them():
    idx = index(H, square("G", 100, 100, 100), square("K", 1000, 1000, 50))
    assert _match(idx, [(125, 125), (50, 50), (1025, 1025)]) == [(("H", "G"), ()), (("H",), ()), (("K",), ())]


def test_multipolygon_and_concave_polygon():
    a = square("A", 0, 0, 50).geometry
    b = square("B", 200, 0, 50).geometry
    l_shape = polygon("L", [(0, 300), (100, 300), (100, 320), (20, 320), (20, 400), (0, 400)])
    idx = index(Hotspot("M", MultiPolygon([a, b])), l_shape)
    got = _match(idx, [(25, 25), (225, 25), (125, 25), (10, 350), (60, 360)])
    assert got == [(("M",), ()), (("M",), ()), ((), ()), (("L",), ()), ((), ())]


def test_buffer_widens_by_metres():
    idx = index(square("H", 0, 0, 150, buffer_m=30))
    assert _match(idx, [(179, 75), (181, 75), (75, -29), (75, -31)]) == [(("H",), ()), ((), ()), (("H",), ()),
                                                                         ((), ())]


def test_active_window_filters_by_fix_time():
    idx = index(square("H", 0, 0, 150, active_from_ms=T0, active_to_ms=T0 + 1000))
    ts = np.array([T0 - 1, T0, T0 + 999, T0 + 1000])
    assert [ins for ins, _ in _match(idx, [(75, 75)] * 4, ts_ms=ts)] == [(), ("H",), ("H",), ()]
    assert [ins for ins, _ in _match(idx, [(75, 75)])] == [("H",)]   # without times: always


def test_empty_index_matches_nothing():
    idx = HotspotIndex.from_hotspots([])
    assert len(idx) == 0
    assert _match(idx, [(0, 0)], edge_m=50.0) == [((), ())]


def test_self_intersecting_polygon_is_repaired():
    bowtie = polygon("X", [(0, 0), (100, 100), (100, 0), (0, 100)])
    assert _match(index(bowtie), [(90, 50), (50, 10), (50, 90), (10, 50)]) == [(("X",), ()), ((), ()), ((), ()),
                                                                             (("X",), ())]


def test_hot_spots_far_apart_still_match_with_a_coarser_grid():
    far = Hotspot("F", shapely.box(LON0 + 10, LAT0 - 5, LON0 + 10.002, LAT0 - 4.998))
    idx = index(H, far)
    lat = np.array([LAT0 + 75 / KY, LAT0 - 4.999])
    lon = np.array([LON0 + 75 / KX, LON0 + 10.001])
    assert idx.match(lat, lon).per_point(2)[0] == [("H",), ("F",)]


def test_batch_matching_equals_a_point_by_point_shapely_check():
    rng = np.random.default_rng(5)
    hs = []
    for k in range(60):
        x, y = rng.uniform(0, 3000, 2)
        side = rng.uniform(40, 200)
        hs.append(square(f"h{k}", x, y, side, buffer_m=float(rng.choice([0.0, 0.0, 25.0]))))
    idx = index(*hs)
    n = 4000
    x, y = rng.uniform(-300, 3300, n), rng.uniform(-300, 3300, n)
    edge = rng.choice([0.0, 5.0, 30.0, 80.0], n)
    lat, lon = LAT0 + y / KY, LON0 + x / KX
    m = idx.match(lat, lon, edge)
    got = {(int(i), idx.ids[int(h)], bool(a), bool(b)) for i, h, a, b in zip(m.point, m.hotspot, m.inside, m.edge)}
    # Reference: the index's own metric polygons, one point at a time.
    px, py = idx.to_xy(lat, lon)
    want = set()
    for i in range(n):
        pt = shapely.Point(px[i], py[i])
        for h, poly in zip(idx.ids, idx._polys):
            d = poly.distance(pt)
            inside = poly.contains(pt)
            near = poly.exterior.distance(pt) <= edge[i] if isinstance(poly, Polygon) else \
                poly.boundary.distance(pt) <= edge[i]
            if inside or d <= edge[i]:
                want.add((i, h, inside, bool(near) if inside else True))
    assert got == want
    assert list(m.point) == sorted(m.point)


def test_metric_frame_distances_are_right_near_the_centre():
    idx = index(H)
    x, y = idx.to_xy(np.array([LAT0 + 100 / KY]), np.array([LON0 + 100 / KX]))
    centre_x, centre_y = idx.to_xy(np.array([LAT0]), np.array([LON0]))
    assert float(x[0] - centre_x[0]) == pytest.approx(100.0, rel=1e-3)
    assert float(y[0] - centre_y[0]) == pytest.approx(100.0, rel=1e-3)


# --------------------------------------------------------------------------- the hot-spot file

def _feature(hid="a", geometry=None, **props):
    geometry = geometry or {"type": "Polygon",
                            "coordinates": [[[-1.26, 51.75], [-1.25, 51.75], [-1.25, 51.76], [-1.26, 51.75]]]}
    return {"type": "Feature", "geometry": geometry, "properties": {"id": hid, "name": "A", "briefing": "", **props}}


def _fc(*features):
    return {"type": "FeatureCollection", "features": list(features)}


def test_geojson_hot_spots_with_optional_fields():
    (h,) = hotspots_from_geojson(_fc(_feature(buffer_m=20, active_from="2025-06-01", active_to="2025-06-30",
                                              target_minutes=15, stats={"harm": 3})))
    assert (h.id, h.name, h.buffer_m) == ("a", "A", 20.0)
    assert h.active_from_ms == 1748736000000           # 2025-06-01T00:00Z
    assert h.active_to_ms == 1751328000000             # 2025-07-01T00:00Z: the whole last day counts
    (h,) = hotspots_from_geojson(_fc(_feature(active_from="2025-06-01T06:00:00+01:00")))
    assert h.active_from_ms == 1748754000000


@pytest.mark.parametrize("doc, message", [
    ({"type": "Feature"}, "FeatureCollection"),
    (_fc(_feature(hid="")), "properties.id"),
    (_fc(_feature(), _feature()), "appears twice"),
    (_fc(_feature(geometry={"type": "Point", "coordinates": [0, 0]})), "Polygon or MultiPolygon"),
    (_fc(_feature(geometry={"type": "Polygon", "coordinates": [[[500, 0], [501, 0], [501, 1], [500, 0]]]})),
     "WGS84"),
    (_fc(_feature(geometry={"type": "Polygon", "coordinates": "nonsense"})), "unusable coordinates"),
    (_fc(_feature(buffer_m=-5)), "buffer_m"),
    (_fc(_feature(active_from="yesterday")), "active_from"),
    (_fc(_feature(active_from="2025-06-01T06:00:00")), "offset"),
    (_fc(_feature(active_from="2025-06-02", active_to="2025-06-01")), "not after"),
])
def test_geojson_errors_name_the_feature_and_the_problem(doc, message):
    with pytest.raises(ValueError, match=message):
        hotspots_from_geojson(doc)


def test_duplicate_ids_are_refused_by_the_index_too():
    with pytest.raises(ValueError, match="twice"):
        index(H, H)
