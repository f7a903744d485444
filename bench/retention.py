"""What retention costs at a worker's start: the no-change check, and a changed TTL on a full table.

`sinks.retention.apply_retention_settings` runs at every worker start. When no
setting changed it reads system.tables and system.columns and issues nothing;
when one changed it issues `ALTER TABLE … MODIFY TTL`, after which ClickHouse
rewrites the table's parts to drop expired rows (a mutation, run in the
background). This script fills a throw-away embedded store with N raw pings
spread over 120 days, then prints: the no-change check's time, the ALTER's own
time, the time until the TTL mutation is done, and the rows left. Figures only,
no assertions.

    .venv/bin/python bench/retention.py                 # 5,000,000 pings
    .venv/bin/python bench/retention.py --pings 1000000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pings", type=int, default=5_000_000)
    args = ap.parse_args()

    from sinks.clickhouse import make_client, migrate
    from sinks.retention import apply_retention, days_by_table
    from core.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        client = make_client(f"chdb://{Path(tmp) / 'ch'}")
        migrate(client, "hotspot", pings_ttl_days=365)  # nothing expires while the table fills
        now_s = int(time.time())
        age = f"intDiv(number * {120 * 86400}, {args.pings})"  # evenly over 120 days
        t0 = time.perf_counter()
        client.command(
            "INSERT INTO hotspot.pings (device_id, ts, received_at, lat, lon, source, hotspot_ids) "
            f"SELECT concat('dev-', toString(number % 2000)), toDateTime64({now_s} - {age}, 3), "
            f"toDateTime64({now_s} - {age}, 3), 51.75 + (number % 1000) / 1e5, "
            f"-1.26 + (number % 997) / 1e5, 'native', [] FROM numbers({args.pings})")
        client.command("OPTIMIZE TABLE hotspot.pings FINAL")
        print(f"{args.pings:,} pings over 120 days written and merged in {time.perf_counter() - t0:.1f} s")

        unchanged = days_by_table(Settings.model_construct(pings_ttl_days=365))
        t0 = time.perf_counter()
        changed = apply_retention(client, "hotspot", unchanged)
        print(f"start-up check, nothing to change: {1000 * (time.perf_counter() - t0):.1f} ms ({len(changed)} ALTERs)")

        t0 = time.perf_counter()
        changed = apply_retention(client, "hotspot", {**unchanged, "pings": 90})
        alter_s = time.perf_counter() - t0
        deadline = time.monotonic() + 600
        while client.query("SELECT count() FROM system.mutations WHERE database = 'hotspot' AND table = 'pings' "
                           "AND NOT is_done").result_rows[0][0]:
            if time.monotonic() > deadline:
                raise SystemExit("the TTL mutation was not done within 600 s")
            time.sleep(0.05)  # polling the mutation's state, not a fixed wait
        done_s = time.perf_counter() - t0
        client.command("OPTIMIZE TABLE hotspot.pings FINAL")  # TTL deletes at a merge; force it to count
        left = client.query("SELECT count() FROM hotspot.pings").result_rows[0][0]
        print(f"pings 365 -> 90 days: ALTER returned in {1000 * alter_s:.0f} ms, TTL mutation done after {done_s:.1f} s, "
              f"{left:,} of {args.pings:,} rows left (expected about {args.pings * 90 // 120:,})")


if __name__ == "__main__":
    main()
