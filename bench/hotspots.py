"""Benchmark: build hot spots from 1,000,000 generated crime records (target: <= 60 s on one core).

Generates a synthetic force extract (generic CSV, or police.uk format with --format police.uk),
then times each stage of `hotspot hotspots build` in this process: read CSV, build, write GeoJSON.

    .venv/bin/python bench/hotspots.py                  # 1,000,000 records, default options
    .venv/bin/python bench/hotspots.py --records 200000 --format police.uk
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# One core, as the target says: keep BLAS/numexpr from spreading.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(var, "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--format", choices=("generic", "police.uk"), default="generic")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from processors.hotspots import BuildOptions, build_hotspots
    from formats.crimes import read_crime_files, read_harm_table, write_geojson
    from tests.data.generate import synthetic_city, write_generic_csv, write_police_uk_csv

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "crimes.csv"
        t = time.perf_counter()
        lat, lon, epoch_s, cat = synthetic_city(args.records, args.seed)
        (write_generic_csv if args.format == "generic" else write_police_uk_csv)(src, lat, lon, epoch_s, cat)
        print(f"generated {args.records:,} {args.format} records ({src.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - t:.1f} s (not counted)")
        harm = read_harm_table()
        runs = [("top 20 (default)", BuildOptions()),
                ("hex, harm share 0.5", BuildOptions(shape="hex", harm_share=0.5)),
                ("top 50, Gi*, merge", BuildOptions(top_n=50, gi_star=True, merge_adjacent=True))]
        if args.format == "generic":
            runs.append(("day/night, top 20", BuildOptions(day_night=True)))
        t = time.perf_counter()
        records, reports = read_crime_files([src])
        read_s = time.perf_counter() - t
        print(f"read        {read_s:6.2f} s  ({len(records):,} records, {sum(sum(r.bad.values()) for r in reports)} bad)")
        print(f"{'options':22} {'build s':>8} {'write s':>8} {'total s':>8} {'hot spots':>9}")
        for name, opts in runs:
            t = time.perf_counter()
            build = build_hotspots(records, harm, opts)
            build_s = time.perf_counter() - t
            t = time.perf_counter()
            write_geojson(Path(tmp) / "out.geojson", build.feature_collection())
            write_s = time.perf_counter() - t
            print(f"{name:22} {build_s:8.2f} {write_s:8.2f} {read_s + build_s + write_s:8.2f} {len(build.hotspots):9,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
