"""Geofence matching throughput: batch (HotspotIndex.match) against per-ping loops, 1k and 20k hot spots.

Hot spots are ~150 m cells (squares, rotated squares and hexagons, a tenth of
them with a 20 m buffer) scattered over an area sized so they cover about 2%
of it, as in a force's serious-violence map. Pings carry 5-30 m accuracy (the
edge distance is 1.5 x accuracy, as in ProcessingConfig). Three ping mixes:

* city:   uniform over the area (most pings far from any hot spot);
* patrol: 30% within ~100 m of a hot spot, the rest uniform;
* near:   every ping within ~100 m of a hot spot (worst case).

Methods (same answers, checked on a sample):

* batch:            HotspotIndex.match (bucket grid, then point-in-ring and edge distance in numpy);
* STRtree batch:    shapely only, vectorised: STRtree dwithin query, contains_xy, dwithin on boundaries;
* rtree bulk:       rtree.Index.intersection_v on accuracy boxes, then the same shapely refinement;
* STRtree per ping: one shapely query per ping (Python loop);
* rtree per ping:   one rtree.Index.intersection per ping, shapely predicates on the candidates.

    .venv/bin/python bench/geofence.py                 # 1,000,000 pings per batch run
    .venv/bin/python bench/geofence.py --pings 200000 --per-ping 5000
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import shapely  # noqa: E402
from shapely import affinity  # noqa: E402

from processors.geofence import Hotspot, HotspotIndex  # noqa: E402
from processors.geo import metres_per_degree  # noqa: E402

LAT0, LON0 = 51.75, -1.26
EDGE_FACTOR = 1.5


def make_hotspots(n: int, rng: np.random.Generator) -> tuple[list[Hotspot], float]:
    side_area_m = math.sqrt(n * 150.0 * 150.0 / 0.02)
    kx, ky = metres_per_degree(LAT0)
    cx = rng.uniform(0, side_area_m, n) - side_area_m / 2
    cy = rng.uniform(0, side_area_m, n) - side_area_m / 2
    hexagon = shapely.Polygon([(75 * math.cos(a), 75 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 7)[:-1]])
    square = shapely.box(-75, -75, 75, 75)
    out = []
    for k in range(n):
        shape = hexagon if k % 3 == 0 else affinity.rotate(square, 30 if k % 3 == 1 else 0, origin=(0, 0))
        geom = shapely.transform(shape, lambda c, k=k: np.column_stack(
            [LON0 + (c[:, 0] + cx[k]) / kx, LAT0 + (c[:, 1] + cy[k]) / ky]))
        out.append(Hotspot(f"h{k}", geom, 20.0 if k % 10 == 0 else 0.0))
    return out, side_area_m


def make_pings(n: int, near_share: float, idx: HotspotIndex, side_m: float, rng: np.random.Generator):
    near = int(n * near_share)
    x = rng.uniform(-side_m / 2, side_m / 2, n)
    y = rng.uniform(-side_m / 2, side_m / 2, n)
    if near:
        c = shapely.centroid(idx._polys)
        pick = rng.integers(0, len(c), near)
        x[:near] = shapely.get_x(c)[pick] + rng.normal(0, 80, near)
        y[:near] = shapely.get_y(c)[pick] + rng.normal(0, 80, near)
    # From the index's metric frame back to degrees (the frame is centred on the hot spots).
    lat = idx.lat0 + y / idx.ky
    lon = idx.lon0 + x / idx.kx
    acc = np.clip(rng.lognormal(math.log(12), 0.5, n), 3, 60)
    order = rng.permutation(n)
    return lat[order], lon[order], acc[order] * EDGE_FACTOR


# --------------------------------------------------------------------------- methods

def batch(idx, lat, lon, edge):
    m = idx.match(lat, lon, edge)
    return set(zip(m.point.tolist(), m.hotspot.tolist(), m.inside.tolist(), m.edge.tolist()))


def shapely_kit(idx):
    """What the shapely-only methods need, prepared as they would be in production."""
    polys = idx._polys.copy()
    bounds = shapely.boundary(polys)
    shapely.prepare(polys)
    shapely.prepare(bounds)
    return polys, bounds, shapely.STRtree(polys)


def strtree_batch(idx, kit, lat, lon, edge):
    polys, bounds, tree = kit
    x, y = idx.to_xy(lat, lon)
    pts = shapely.points(x, y)
    qi, hj = tree.query(pts, predicate="dwithin", distance=edge)
    ins = shapely.contains_xy(polys[hj], x[qi], y[qi])
    near = ~ins
    need = np.flatnonzero(ins & (edge[qi] > 0))
    near[need] = shapely.dwithin(bounds[hj[need]], pts[qi[need]], edge[qi[need]])
    return set(zip(qi.tolist(), hj.tolist(), ins.tolist(), near.tolist()))


def rtree_index(idx):
    from rtree import index as rindex

    b = shapely.bounds(idx._polys)
    return rindex.Index(((k, tuple(b[k]), None) for k in range(len(b))))


def rtree_bulk(idx, kit, rt, lat, lon, edge):
    polys, bounds, _ = kit
    x, y = idx.to_xy(lat, lon)
    ids, counts = rt.intersection_v(np.column_stack([x - edge, y - edge]), np.column_stack([x + edge, y + edge]))
    qi = np.repeat(np.arange(len(x)), counts.astype(np.int64))
    hj = ids.astype(np.int64)
    pts = shapely.points(x[qi], y[qi])
    keep = shapely.dwithin(polys[hj], pts, edge[qi])
    qi, hj, pts = qi[keep], hj[keep], pts[keep]
    ins = shapely.contains_xy(polys[hj], x[qi], y[qi])
    near = ~ins
    need = np.flatnonzero(ins & (edge[qi] > 0))
    near[need] = shapely.dwithin(bounds[hj[need]], pts[need], edge[qi[need]])
    return set(zip(qi.tolist(), hj.tolist(), ins.tolist(), near.tolist()))


def strtree_per_ping(idx, kit, lat, lon, edge):
    x, y = idx.to_xy(lat, lon)
    out = set()
    polys, bounds, tree = kit
    for i in range(len(x)):
        pt = shapely.Point(x[i], y[i])
        for h in tree.query(pt, predicate="dwithin", distance=edge[i]).tolist():
            inside = polys[h].contains(pt)
            near = (not inside) or (edge[i] > 0 and bounds[h].distance(pt) <= edge[i])
            out.add((i, h, inside, near))
    return out


def rtree_per_ping(idx, kit, rt, lat, lon, edge):
    x, y = idx.to_xy(lat, lon)
    out = set()
    polys, bounds, _ = kit
    for i in range(len(x)):
        e = edge[i]
        cands = list(rt.intersection((x[i] - e, y[i] - e, x[i] + e, y[i] + e)))
        if not cands:
            continue
        pt = shapely.Point(x[i], y[i])
        for h in cands:
            if polys[h].distance(pt) > e:
                continue
            inside = polys[h].contains(pt)
            near = (not inside) or (e > 0 and bounds[h].distance(pt) <= e)
            out.add((i, h, inside, near))
    return out


def timed(fn, *args, repeat=1):
    best = math.inf
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pings", type=int, default=1_000_000, help="pings per batch measurement")
    ap.add_argument("--per-ping", type=int, default=20_000, help="pings for the per-ping loops")
    ap.add_argument("--sizes", default="1000,20000", help="hot-spot counts")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"# geofence matching, {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"shapely {shapely.__version__}, {time.strftime('%Y-%m-%d')}")
    print("| hot spots | mix | method | pings | s | pings/s | pairs |")
    print("|---|---|---|---|---|---|---|")
    for n_hs in (int(s) for s in args.sizes.split(",")):
        hs, side = make_hotspots(n_hs, rng)
        t = time.perf_counter()
        idx = HotspotIndex.from_hotspots(hs)
        build_s = time.perf_counter() - t
        kit = shapely_kit(idx)
        t = time.perf_counter()
        rt = rtree_index(idx)
        rtree_build_s = time.perf_counter() - t
        print(f"| {n_hs:,} | build | HotspotIndex.from_hotspots / rtree.Index | - | {build_s:.2f} / "
              f"{rtree_build_s:.2f} | - | - |")
        for mix, share in (("city", 0.0), ("patrol", 0.3), ("near", 1.0)):
            lat, lon, edge = make_pings(args.pings, share, idx, side, rng)
            s, got = timed(batch, idx, lat, lon, edge, repeat=3)
            print(f"| {n_hs:,} | {mix} | batch | {args.pings:,} | {s:.3f} | **{args.pings / s:,.0f}** | {len(got):,} |")
            s2, got2 = timed(strtree_batch, idx, kit, lat, lon, edge)
            print(f"| {n_hs:,} | {mix} | STRtree batch | {args.pings:,} | {s2:.3f} | {args.pings / s2:,.0f} | "
                  f"{len(got2):,} |")
            assert got2 == got, "STRtree batch disagrees"
            m = min(args.pings, 200_000)
            s3, got3 = timed(rtree_bulk, idx, kit, rt, lat[:m], lon[:m], edge[:m])
            print(f"| {n_hs:,} | {mix} | rtree bulk | {m:,} | {s3:.3f} | {m / s3:,.0f} | {len(got3):,} |")
            assert got3 == {g for g in got if g[0] < m}, "rtree bulk disagrees"
            k = args.per_ping
            s4, got4 = timed(strtree_per_ping, idx, kit, lat[:k], lon[:k], edge[:k])
            print(f"| {n_hs:,} | {mix} | STRtree per ping | {k:,} | {s4:.3f} | {k / s4:,.0f} | {len(got4):,} |")
            s5, got5 = timed(rtree_per_ping, idx, kit, rt, lat[:k], lon[:k], edge[:k])
            print(f"| {n_hs:,} | {mix} | rtree per ping | {k:,} | {s5:.3f} | {k / s5:,.0f} | {len(got5):,} |")
            want = {g for g in got if g[0] < k}
            assert got4 == want and got5 == want, "per-ping answers disagree with the batch"
            sys.stdout.flush()


if __name__ == "__main__":
    main()
