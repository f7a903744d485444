"""Benchmark: the analysts' reports over 90 trial days of 2,000 officers (target: each <= 60 s).

Generates a synthetic force straight into an embedded store (migrations applied): 200 hot spots in a
crossover trial (half treated each day), 2,000 officers in 40 teams, each on duty 5 days in 7; an
officer on duty is directed twice a day to treated hot spots and gets there 80% of the time, staying
a log-normal 12 minutes (median), and passes through 3 random hot spots a day for a log-normal
4 minutes untasked; 20,000 crimes with exact times in the hot spots. Then times `build_report` and
`write_report` for dosage, compliance and trial over all 90 days, in this process, as
`hotspot report` runs them when no worker owns the store.

    .venv/bin/python bench/reports.py                     # 90 days x 2,000 officers
    .venv/bin/python bench/reports.py --days 30 --officers 500
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

UTC = dt.timezone.utc
START = dt.date(2026, 1, 5)  # winter: London time is UTC, trial days start 06:00 UTC


def generate(client, days: int, officers: int, hotspots: int, seed: int) -> dict[str, int]:
    import json

    import numpy as np

    rng = np.random.default_rng(seed)
    hs_ids = [f"HS{i:04d}" for i in range(hotspots)]
    base = dt.datetime.combine(START, dt.time(6), UTC)
    base_ms = int(base.timestamp() * 1000)
    day_ms = 86_400_000
    now = dt.datetime.now(UTC)

    poly = json.dumps({"type": "Polygon", "coordinates": [[[-1.26, 51.75], [-1.259, 51.75], [-1.259, 51.751],
                                                           [-1.26, 51.751], [-1.26, 51.75]]]})
    client.insert("hotspot.hotspots", [[h, 1, h, "", poly, None, 15.0, None, None, "{}", 0, now] for h in hs_ids],
                  column_names=["id", "version", "name", "briefing", "geometry_geojson", "buffer_m", "target_minutes",
                                "active_from", "active_to", "stats_json", "retired", "published_at"])
    # Crossover: a random half treated each day.
    treated = np.zeros((days, hotspots), bool)
    for d in range(days):
        treated[d, rng.permutation(hotspots)[: hotspots // 2]] = True
    alloc = [["BENCH", h, START + dt.timedelta(days=d), base + dt.timedelta(days=d),
              base + dt.timedelta(days=d + 1), "treatment" if treated[d, j] else "control", "", "crossover", seed]
             for d in range(days) for j, h in enumerate(hs_ids)]
    client.insert("hotspot.allocations", alloc, column_names=["trial_id", "hotspot_id", "day", "starts_at", "ends_at",
                                                              "arm", "block", "design", "seed"])
    users = [f"officer{i:05d}" for i in range(officers)]
    devices = [f"device{i:05d}" for i in range(officers)]
    client.insert("hotspot.officer_teams", [users, [f"team{i % 40:02d}" for i in range(officers)], [now] * officers],
                  column_names=["user", "team", "updated_at"], column_oriented=True)

    on_duty = rng.random((days, officers)) < 5 / 7
    d_idx, o_idx = np.nonzero(on_duty)
    n_duty = len(d_idx)
    # Two assignments per officer-day, at 08:00-12:00 and 14:00-18:00 (local = UTC in January), to treated hot spots.
    a_day = np.repeat(d_idx, 2)
    a_off = np.repeat(o_idx, 2)
    slot = np.tile([2, 8], n_duty)  # hours after 06:00
    a_ms = base_ms + a_day * day_ms + (slot * 3600 + rng.integers(0, 4 * 3600, 2 * n_duty)) * 1000
    treated_idx = [np.nonzero(treated[d])[0] for d in range(days)]
    a_hs = np.array([treated_idx[d][k % len(treated_idx[d])] for d, k in
                     zip(a_day.tolist(), rng.integers(0, hotspots, 2 * n_duty).tolist())])
    n_a = len(a_ms)
    client.insert("hotspot.assignments", [
        [f"a{i}" for i in range(n_a)], [users[o] for o in a_off.tolist()], [devices[o] for o in a_off.tolist()],
        [hs_ids[h] for h in a_hs.tolist()], [dt.datetime.fromtimestamp(m / 1000, UTC) for m in a_ms.tolist()],
        [START + dt.timedelta(days=d) for d in a_day.tolist()], ["treatment"] * n_a],
        column_names=["assignment_id", "user", "device_id", "hotspot_id", "assigned_at", "trial_day", "arm"],
        column_oriented=True)

    # Tasked visits: 80% of assignments, 5-30 min after, log-normal around 12 min.
    go = rng.random(n_a) < 0.8
    t_start = a_ms[go] + rng.integers(5 * 60, 30 * 60, go.sum()) * 1000
    t_len = np.clip(rng.lognormal(np.log(12 * 60), 0.5, go.sum()), 60, 3 * 3600)
    t_dev, t_hs = a_off[go], a_hs[go]
    # Untasked visits: 3 per officer-day at random times 06:00-24:00, log-normal around 4 min.
    u_day, u_off = np.repeat(d_idx, 3), np.repeat(o_idx, 3)
    u_start = base_ms + u_day * day_ms + rng.integers(0, 18 * 3600, len(u_day)) * 1000
    u_len = np.clip(rng.lognormal(np.log(4 * 60), 0.8, len(u_day)), 30, 3600)
    u_hs = rng.integers(0, hotspots, len(u_day))
    start = np.concatenate([t_start, u_start])
    length_s = np.concatenate([t_len, u_len])
    dev = np.concatenate([t_dev, u_off])
    hs = np.concatenate([t_hs, u_hs])
    n_v = len(start)
    bridged = np.where(rng.random(n_v) < 0.1, np.minimum(length_s * 0.2, 300), 0.0)
    foot = length_s * rng.uniform(0.3, 0.9, n_v)
    vehicle = (length_s - foot) * 0.5
    chunk = 200_000
    for lo in range(0, n_v, chunk):
        hi = min(n_v, lo + chunk)
        s = start[lo:hi]
        L = length_s[lo:hi]
        client.insert("hotspot.visits", [
            [f"v{i}" for i in range(lo, hi)], [devices[o] for o in dev[lo:hi].tolist()],
            [hs_ids[h] for h in hs[lo:hi].tolist()], [dt.datetime.fromtimestamp(m / 1000, UTC) for m in s.tolist()],
            [dt.datetime.fromtimestamp((m + x * 1000) / 1000, UTC) for m, x in zip(s.tolist(), L.tolist())],
            L.tolist(), (L - bridged[lo:hi]).tolist(), bridged[lo:hi].tolist(), foot[lo:hi].tolist(),
            vehicle[lo:hi].tolist(), (L - foot[lo:hi] - vehicle[lo:hi]).tolist(), [0] * (hi - lo), [10] * (hi - lo),
            ["exit"] * (hi - lo), [1] * (hi - lo)],
            column_names=["visit_id", "device_id", "hotspot_id", "entered_at", "exited_at", "dwell_s", "observed_s",
                          "inferred_s", "foot_s", "vehicle_s", "stationary_s", "stop_count", "ping_count",
                          "end_reason", "version"], column_oriented=True)
    n_c = 20_000
    c_ms = base_ms + rng.integers(0, days * 86_400, n_c) * 1000
    client.insert("hotspot.crimes", [
        [f"c{i}" for i in range(n_c)], ["generic"] * n_c, [dt.datetime.fromtimestamp(m / 1000, UTC) for m in c_ms.tolist()],
        ["exact"] * n_c, [51.7505] * n_c, [-1.2595] * n_c, ["Violence and sexual offences"] * n_c,
        rng.choice([5.0, 20.0, 365.0], n_c).tolist(), [""] * n_c,
        [[hs_ids[h]] for h in rng.integers(0, hotspots, n_c).tolist()], [now] * n_c],
        column_names=["crime_key", "source", "occurred_at", "precision", "lat", "lon", "category", "harm_days",
                      "location", "hotspot_ids", "loaded_at"], column_oriented=True)
    return {"hotspots": hotspots, "officers": officers, "officer_days": n_duty, "assignments": n_a, "visits": n_v,
            "allocations": len(alloc), "crimes": n_c}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--officers", type=int, default=2000)
    ap.add_argument("--hotspots", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from reports.build import build_report
    from reports.render import write_report
    from reports.store import Store
    from sinks.clickhouse import make_client, migrate
    from core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        dsn = f"chdb://{Path(tmp) / 'ch'}"
        client = make_client(dsn)
        migrate(client, "hotspot", pings_ttl_days=3650)
        t = time.perf_counter()
        counts = generate(client, args.days, args.officers, args.hotspots, args.seed)
        client.command("OPTIMIZE TABLE hotspot.visits FINAL")
        print(f"generated in {time.perf_counter() - t:.1f} s: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
        store = Store(Settings(data_dir=Path(tmp) / "data", clickhouse_dsn=dsn))
        store._client = client
        first, last = START, START + dt.timedelta(days=args.days - 1)
        total = 0.0
        for kind in ("dosage", "compliance", "trial"):
            t = time.perf_counter()
            steps: list[tuple[str, float]] = []

            def progress(text, steps=steps):
                steps.append((text, time.perf_counter()))

            report = build_report(store, kind, first, last, progress=progress)
            built = time.perf_counter() - t
            marks = steps + [("", t + built)]
            slowest = max((b[1] - a[1], a[0]) for a, b in zip(marks, marks[1:]))
            write_report(report, Path(tmp) / kind)
            took = time.perf_counter() - t
            total += took
            rows = sum(len(tb.rows) for tb in report.tables.values())
            print(f"{kind:10s} {took:6.1f} s (queries and figures {built:.1f} s, files {took - built:.1f} s), "
                  f"{rows:,} table rows, {len(report.plots)} plots; slowest step {slowest[0]:.1f} s ({slowest[1]})")
        print(f"all three  {total:6.1f} s for {args.days} days x {args.officers:,} officers")
        client.close()
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
