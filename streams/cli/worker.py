"""`hotspot worker`: the stream processor on its own, for scale-out."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  hotspot worker                                   # against the local broker and embedded ClickHouse
  HOTSPOT_KAFKA_BOOTSTRAP=k1:9092,k2:9092 HOTSPOT_CLICKHOUSE_DSN=http://ch:8123 hotspot worker
"""


def register(sub) -> None:
    p = sub.add_parser("worker", help="run the stream worker (pings → patrol events)",
                       description="Consume `pings`, run the processors, write ClickHouse and `patrol-events`. "
                                   "Run several against one Kafka cluster and a ClickHouse server to scale out.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loglevel", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(handler=_worker)


def _worker(args) -> int:
    from sinks.clickhouse import StoreBusy
    from streams.cli import CommandError
    from streams.settings import get_settings
    from streams.worker import run_worker

    try:
        run_worker(get_settings(), loglevel=args.loglevel)
    except StoreBusy as exc:
        raise CommandError(f"{exc}; is another worker or `hotspot run` using it?") from None
    return 0
