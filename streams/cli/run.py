"""`hotspot run`: the whole system on one machine with embedded defaults."""
from __future__ import annotations

import argparse
import signal
import sys
import time

EXAMPLES = """examples:
  hotspot run                     # local Kafka + embedded ClickHouse under ./var
  hotspot run --simulate 20       # ... with 20 simulated officers patrolling
  HOTSPOT_KAFKA_BOOTSTRAP=kafka:9092 HOTSPOT_CLICKHOUSE_DSN=http://ch:8123 hotspot run
"""


def register(sub) -> None:
    p = sub.add_parser("run", help="run everything on this machine (embedded defaults)",
                       description="Start the local Kafka broker (unless HOTSPOT_KAFKA_BOOTSTRAP names one), create topics, "
                                   "apply ClickHouse migrations, and run until Ctrl-C. Stops what it started.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--simulate", type=int, default=0, metavar="N", help="number of simulated officers (default 0)")
    p.set_defaults(handler=_run)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _run(args) -> int:
    import asyncio

    from sinks.clickhouse import StoreBusy, make_client, mask_dsn, migrate
    from streams.broker import BrokerError, LocalBroker
    from streams.cli import CommandError
    from streams.kafka import ensure_topics, wait_for_metadata
    from streams.settings import get_settings

    s = get_settings()
    # Set both explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    started: LocalBroker | None = None
    t0 = time.monotonic()
    try:
        if s.local_kafka:
            broker = LocalBroker.from_settings(s)
            if broker.pid() is None:
                print(f"starting local Kafka on {broker.bootstrap} ...", flush=True)
                try:
                    broker.start()
                except BrokerError as exc:
                    raise CommandError(str(exc)) from None
                started = broker
            else:
                print(f"using the local Kafka already running on {broker.bootstrap}", flush=True)
        try:
            asyncio.run(wait_for_metadata(s.bootstrap_servers, 30))
        except TimeoutError as exc:
            raise CommandError(str(exc)) from None
        created = asyncio.run(ensure_topics(s.bootstrap_servers, s.partitions))
        print(f"kafka     {s.bootstrap_servers}  topics ready" + (f" (created {', '.join(created)})" if created else ""), flush=True)
        try:
            client = make_client(s.effective_clickhouse_dsn)
        except StoreBusy as exc:
            raise CommandError(str(exc)) from None
        applied = migrate(client, s.clickhouse_database, s.pings_ttl_days)
        print(f"clickhouse {mask_dsn(s.effective_clickhouse_dsn)}  database {s.clickhouse_database}"
              + (f" (applied {', '.join(f'{m.version:04d}_{m.name}' for m in applied)})" if applied else " (up to date)"), flush=True)
        print(f"ready in {time.monotonic() - t0:.1f}s — press Ctrl-C to stop", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        print("stopping ...", file=sys.stderr, flush=True)
    finally:
        if started is not None:
            started.stop()
            print("local Kafka stopped", file=sys.stderr, flush=True)
    return 0
