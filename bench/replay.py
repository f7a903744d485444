"""End-to-end `hotspot replay` throughput: synthetic patrol pings in, the four CSVs out, one core.

Generates a town of 150 m hot spots and officers who drive between them, walk
patrols inside them with standing stops, on devices reporting every 5, 10 or
60 s (no speed field on the 60 s ones) with correlated GPS noise, 1% late and
1% duplicated deliveries. Writes them as the replay CSV (ts ISO-8601 with a
+01:00 offset, the slowest form to parse), then times:

* the command itself, `hotspot replay --pings ... --hotspots ... --out ...`, as a
  subprocess (interpreter start-up and imports included);
* the same run in this process, split into reading/parsing and processing.

    .venv/bin/python bench/replay.py                         # 1,000,000 pings, 500 hot spots
    .venv/bin/python bench/replay.py --pings 200000 --hotspots 2000
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LAT0, LON0 = 51.75, -1.26
HOTSPOT = str(Path(sys.executable).with_name("hotspot"))


def make_town(n_hotspots: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Centres (metres) of n 150 m squares covering about 3% of a square town."""
    side = math.sqrt(n_hotspots * 150.0 ** 2 / 0.03)
    return rng.uniform(-side / 2, side / 2, (n_hotspots, 2)), side


def write_hotspots(path: Path, centres: np.ndarray) -> None:
    import json

    from processors.geo import metres_per_degree

    kx, ky = metres_per_degree(LAT0)
    feats = []
    for k, (x, y) in enumerate(centres):
        ring = [[LON0 + (x + dx) / kx, LAT0 + (y + dy) / ky] for dx, dy in
                ((-75, -75), (75, -75), (75, 75), (-75, 75), (-75, -75))]
        feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                      "properties": {"id": f"hs-{k:05d}", "name": f"Hot spot {k}", "briefing": ""}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))


def officer_track(rng: np.random.Generator, centres: np.ndarray, hours: float):
    """Waypoints (t_s, x, y, speed) of one shift: drive to a hot spot, walk a patrol with a stop, repeat."""
    t, pos = 0.0, centres[rng.integers(len(centres))] + rng.normal(0, 300, 2)
    ts, xs, ys, vs = [t], [pos[0]], [pos[1]], [0.0]

    def go(target, speed):
        nonlocal t, pos
        d = float(np.hypot(*(target - pos)))
        t += max(d / speed, 1.0)
        pos = target
        ts.append(t); xs.append(pos[0]); ys.append(pos[1]); vs.append(speed)

    end = hours * 3600
    while t < end:
        c = centres[rng.integers(len(centres))]
        go(c + rng.uniform(-60, 60, 2), rng.uniform(8, 14))          # drive
        for _ in range(rng.integers(3, 8)):                          # patrol on foot
            go(c + rng.uniform(-70, 70, 2), rng.uniform(1.1, 1.6))
        t += rng.uniform(150, 300)                                   # standing stop
        ts.append(t); xs.append(pos[0]); ys.append(pos[1]); vs.append(0.0)
    return np.array(ts), np.array(xs), np.array(ys), np.array(vs)


def write_pings(path: Path, centres: np.ndarray, target: int, rng: np.random.Generator) -> int:
    from processors.geo import metres_per_degree

    kx, ky = metres_per_degree(LAT0)
    start_ms = 1_749_711_600_000  # 2025-06-12T07:00Z
    hours = 8.0
    chunks = []
    n = 0
    k = 0
    while n < target:
        interval = (5, 10, 60)[k % 3]
        acc = (5.0, 10.0, 15.0, 20.0, 30.0)[k % 5]
        wt, wx, wy, wv = officer_track(rng, centres, hours)
        t = np.arange(rng.uniform(0, 60), hours * 3600, interval)
        x, y = np.interp(t, wt, wx), np.interp(t, wt, wy)
        seg = np.clip(np.searchsorted(wt, t), 1, len(wt) - 1)
        speed = wv[seg]
        # Correlated noise: AR(1) with a 60 s time constant.
        a = math.exp(-interval / 60.0)
        e = rng.normal(0, acc / 1.5, (len(t), 2))
        for i in range(1, len(t)):
            e[i] = a * e[i - 1] + math.sqrt(1 - a * a) * e[i]
        ms = (start_ms + t * 1000).astype(np.int64)
        arrival = ms + 1000
        late = rng.uniform(size=len(t)) < 0.01
        arrival[late] += rng.integers(3000, 9000, late.sum())
        rows = np.arange(len(t))
        dup = rows[rng.uniform(size=len(t)) < 0.01]
        rows = np.concatenate([rows, dup])
        arrival = np.concatenate([arrival, arrival[dup] + 2000])
        chunks.append((f"officer-{k:04d}", ms[rows], arrival, LAT0 + (y + e[:, 1])[rows] / ky,
                       LON0 + (x + e[:, 0])[rows] / kx, np.full(len(rows), acc),
                       None if interval == 60 else np.abs(speed + rng.normal(0, 0.2, len(t)))[rows]))
        n += len(rows)
        k += 1
    device = np.concatenate([np.full(len(c[1]), c[0]) for c in chunks])
    ms = np.concatenate([c[1] for c in chunks])
    arrival = np.concatenate([c[2] for c in chunks])
    lat = np.concatenate([c[3] for c in chunks])
    lon = np.concatenate([c[4] for c in chunks])
    acc = np.concatenate([c[5] for c in chunks])
    speed = np.concatenate([np.full(len(c[1]), np.nan) if c[6] is None else c[6] for c in chunks])
    order = np.argsort(arrival, kind="stable")[:target]
    local = (ms[order] + 3_600_000).astype("datetime64[ms]")
    ts_text = np.char.add(np.datetime_as_string(local, unit="s"), "+01:00")
    with open(path, "w") as fh:
        fh.write("device_id,ts,lat,lon,accuracy_m,speed_mps,heading_deg,altitude_m,battery\n")
        for d, ts, la, lo, ac, sp in zip(device[order], ts_text, lat[order], lon[order], acc[order], speed[order]):
            fh.write(f"{d},{ts},{la:.7f},{lo:.7f},{ac:.1f},{'' if sp != sp else f'{sp:.2f}'},,,\n")
    return len(order), k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pings", type=int, default=1_000_000)
    ap.add_argument("--hotspots", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", metavar="DIR", help="write the data here and keep it")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    centres, side = make_town(args.hotspots, rng)
    write_hotspots(work / "hotspots.geojson", centres)
    t = time.perf_counter()
    n, officers = write_pings(work / "pings.csv", centres, args.pings, rng)
    size_mb = (work / "pings.csv").stat().st_size / 1e6
    print(f"# hotspot replay, {platform.machine()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}")
    print(f"data: {n:,} pings ({size_mb:.0f} MB CSV) from {officers} officers around {args.hotspots} hot spots "
          f"in a {side / 1000:.1f} km square town (generated in {time.perf_counter() - t:.1f} s)")

    cmd = [HOTSPOT, "replay", "--quiet", "--pings", str(work / "pings.csv"), "--hotspots",
           str(work / "hotspots.geojson"), "--out", str(work / "out")]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"hotspot replay failed: {res.stderr.strip()}")
    rows = {name: sum(1 for _ in open(work / "out" / name)) - 1
            for name in ("visits.csv", "stops.csv", "modes.csv", "rejected.csv")}
    print(f"command: {' '.join(cmd[1:3])} ... : {wall:.2f} s wall -> **{n / wall:,.0f} pings/s** "
          f"({', '.join(f'{k} {v:,}' for k, v in rows.items())})")

    from processors.batch import finish, process_batch
    from processors.config import ProcessingConfig
    from formats.hotspots import load_index as load_hotspots
    from formats.replayfiles import BadRow, read_file

    gc.set_threshold(100_000, 50, 100)
    t = time.perf_counter()
    index = load_hotspots(work / "hotspots.geojson")
    t_index = time.perf_counter() - t
    t = time.perf_counter()
    pings = [p for p in read_file(work / "pings.csv") if type(p) is not BadRow]
    t_read = time.perf_counter() - t
    cfg = ProcessingConfig()
    t = time.perf_counter()
    states: dict = {}
    events = 0
    for k in range(0, len(pings), 20_000):
        r = process_batch(states, pings[k:k + 20_000], index, cfg)
        states.update(r.states)
        events += len(r.events)
    events += len(finish(states, index, cfg).events)
    t_proc = time.perf_counter() - t
    print(f"in process: index {t_index:.2f} s; read+parse {t_read:.2f} s ({n / t_read:,.0f}/s); "
          f"processors {t_proc:.2f} s ({n / t_proc:,.0f}/s, {events:,} events)")
    if not args.keep:
        for f in (work / "out").iterdir():
            f.unlink()
        (work / "out").rmdir()
        for f in work.iterdir():
            f.unlink()
        os.rmdir(work)


if __name__ == "__main__":
    main()
