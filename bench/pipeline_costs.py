"""What one worker micro-batch costs without Kafka and Faust: the ceiling of the worker's own steps.

Companion of `bench/pipeline.py`. It takes the same device mix (replicas of a
`hotspot simulate` run, thousands of devices in delivery order), encodes the
pings as the topic holds them, and times, per micro-batch, the steps the live
worker performs on its main thread, in a plain loop on one core:

    decode (Codec.decode)  ->  Ping objects  ->  load device state (from_bytes)
    ->  process_batch  ->  save device state (to_bytes)  ->  table rows (formats.records)
    ->  ClickHouseWriter.add  ->  flush (one insert per table into embedded chDB)

The state of each device is kept as bytes between batches, as the worker keeps it
in its Faust table. The ClickHouse store is a throw-away one of this process's own
(no worker runs meanwhile). Prints µs per ping for each step and the pings/s
the steps alone would allow. Figures only, no assertions.

    .venv/bin/python bench/pipeline_costs.py                       # simulate, 150k pings, batches of 1,900 and 5,000
    .venv/bin/python bench/pipeline_costs.py --sim DIR --pings 100000
"""
from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sim", type=Path, help="an existing `hotspot simulate` output directory")
    ap.add_argument("--officers", type=int, default=100)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--replicas", type=int, default=20)
    ap.add_argument("--pings", type=int, default=150_000)
    ap.add_argument("--batches", default="1900,5000", help="micro-batch sizes to time (comma-separated)")
    args = ap.parse_args()

    import pipeline as pb  # bench/pipeline.py: simulation loading and replicas

    from core.codecs import codec_for
    from formats import records as rows
    from sinks.clickhouse import make_client, migrate
    from sinks.writer import ClickHouseWriter
    from processors.batch import process_batch
    from processors.config import ProcessingConfig
    from processors.device import DeviceState
    from formats.hotspots import load_index as load_hotspots

    tmp = Path(tempfile.mkdtemp(prefix="hotspot-bench-costs-"))
    sim_dir = args.sim
    if sim_dir is None:
        sim_dir = tmp / "sim"
        start = int(time.time() * 1000) - int(args.hours * 3_600_000) - 15 * 60_000
        subprocess.run([str(REPO / ".venv" / "bin" / "hotspot"), "simulate", "--out", str(sim_dir), "--officers",
                        str(args.officers), "--hours", str(args.hours), "--seed", str(args.seed), "--start",
                        dt.datetime.fromtimestamp(start / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pings, delivered, sim_start = pb.load_simulation(sim_dir)
    now = int(time.time() * 1000)
    items = pb.replicas(pings, delivered, sim_start, "T", args.replicas, 0.0, 7.5, 25.0, now - 45 * 60_000)[:args.pings]
    index = load_hotspots(sim_dir / "hotspots.geojson")
    config = ProcessingConfig()
    codec = codec_for("Ping")
    values = []
    for it in items:
        it.received_ms = now
        values.append(codec.encode(it.record(now)))
    print(f"{len(items):,} pings from {len({i.device for i in items}):,} devices, {len(index.hotspots) if hasattr(index, 'hotspots') else '?'} hot spots")

    dsn = f"chdb://{tmp / 'clickhouse'}"
    migrate(make_client(dsn), "hotspot", 90)
    for size in [int(x) for x in args.batches.split(",")]:
        writer = ClickHouseWriter(dsn, "hotspot", max_rows=10 * size, name=f"costs{size}")
        stored: dict[str, bytes] = {}
        t = dict.fromkeys(("decode", "ping objects", "state load", "process_batch", "state save", "rows + add",
                           "ClickHouse insert"), 0.0)
        devices_touched = 0
        state_bytes = 0
        events = 0
        t_all = time.perf_counter()
        for lo in range(0, len(values), size):
            chunk = values[lo:lo + size]
            a = time.perf_counter()
            recs = [codec.decode(v) for v in chunk]
            b = time.perf_counter()
            fresh = [rows.ping_from_record(r) for r in recs]
            rec_of = {id(p): r for p, r in zip(fresh, recs)}
            c = time.perf_counter()
            states = {}
            for r in recs:
                d = r["device_id"]
                if d not in states and d in stored:
                    states[d] = DeviceState.from_bytes(stored[d])
            devices_touched += len({r["device_id"] for r in recs})
            e = time.perf_counter()
            result = process_batch(states, fresh, index, config)
            f = time.perf_counter()
            for d, st in result.states.items():
                blob = st.to_bytes()
                stored[d] = blob
                state_bytes += len(blob)
            g = time.perf_counter()
            for acc in result.accepted:
                # pings held over from an earlier batch come back from the state bytes as new objects
                rec = rec_of.get(id(acc.ping)) or rows.ping_record(acc.ping)
                writer.add("pings", rows.ping_row(rec, hotspot_ids=acc.hotspot_ids,
                                                        low_accuracy=acc.low_accuracy))
            for rj in result.rejected:
                rec = rows.reject_record(rj, rec_of.get(id(rj.ping)))
                writer.add("pings_rejected", rows.rejected_row(rec, f"{rj.ping.device_id}/{rj.ping.ts_ms}"))
            for ev in result.events:
                table, row = rows.patrol_event_row(rows.event_record(ev))
                writer.add(table, row)
            events += len(result.events)
            h = time.perf_counter()
            writer.flush()
            i = time.perf_counter()
            for k, v in zip(t, (b - a, c - b, e - c, f - e, g - f, h - g, i - h)):
                t[k] += v
        wall = time.perf_counter() - t_all
        n = len(values)
        print(f"\nbatches of {size:,}: {n / wall:,.0f} pings/s on one core for the steps below "
              f"({wall:.1f}s; {devices_touched / n:.2f} device states loaded+saved per ping, "
              f"mean state {state_bytes / max(1, devices_touched):,.0f} bytes, {events:,} events)")
        for k, v in t.items():
            print(f"  {k:<18} {1e6 * v / n:7.1f} µs/ping  {100 * v / wall:5.1f}%")
        writer.close() if hasattr(writer, "close") else None
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
