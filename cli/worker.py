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
    from sinks.clickhouse import StoreBusy, mask_dsn
    from cli import CommandError
    from core.datadir import Locked
    from core.settings import get_settings
    from streams.worker import MetricsPortBusy, run_worker

    s = get_settings()
    try:
        run_worker(s, loglevel=args.loglevel)
    except Locked as exc:
        raise CommandError(f"the embedded ClickHouse store {mask_dsn(s.effective_clickhouse_dsn)} is owned by another "
                           f"worker (pid {exc.pid if exc.pid is not None else '?'}, lock {exc.path}); one process owns "
                           "an embedded store: stop that worker, set HOTSPOT_WORKER_JOIN_STORE=true to join it (rows "
                           "written through it), or point HOTSPOT_CLICKHOUSE_DSN at a ClickHouse server") from None
    except MetricsPortBusy as exc:
        raise CommandError(str(exc)) from None
    except StoreBusy as exc:
        raise CommandError(f"{exc}; is another worker or `hotspot run` using it?") from None
    return 0
