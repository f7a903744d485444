"""`hotspot broker start|stop|status`: the local single-node Kafka broker."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

EXAMPLES = """examples:
  hotspot broker start                      # resolve jars (first time), format, start, wait until ready
  hotspot broker status
  hotspot broker start --data-dir /tmp/k --port 29092 --controller-port 29093
  hotspot broker stop
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="run the local single-node Kafka (KRaft) broker",
                       description="Start, stop or inspect the local Apache Kafka broker (KRaft mode) run from Maven-resolved jars.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, fn, help_ in (("start", _start, "start the broker and wait until it answers metadata requests"),
                            ("stop", _stop, "stop the broker of this data directory and wait for it"),
                            ("status", _status, "listener, pid, version and topics")):
        a = actions.add_parser(name, help=help_, description=help_, epilog=EXAMPLES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        a.add_argument("--data-dir", type=Path, help="broker data directory (default: $HOTSPOT_DATA_DIR/kafka)")
        a.add_argument("--port", type=int, help="client port (default: $HOTSPOT_KAFKA_PORT or 19092)")
        a.add_argument("--controller-port", type=int, help="KRaft controller port (default 19093)")
        if name == "start":
            a.add_argument("--heap", help="JVM heap, e.g. 512m (default: $HOTSPOT_KAFKA_HEAP)")
            a.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
        if name == "status":
            a.add_argument("--json", action="store_true", help="print one JSON object")
        a.set_defaults(handler=fn)


def broker_from_args(args) -> "LocalBroker":  # noqa: F821
    from core.broker import BrokerError, LocalBroker
    from cli import CommandError
    from core.settings import get_settings

    s = get_settings()
    try:
        b = LocalBroker.from_settings(s)
    except BrokerError as exc:
        raise CommandError(str(exc)) from None
    if getattr(args, "data_dir", None):
        b.dir = args.data_dir.resolve()
    if getattr(args, "port", None):
        b.port = args.port
    if getattr(args, "controller_port", None):
        b.controller_port = args.controller_port
    if getattr(args, "heap", None):
        b.heap = args.heap
    return b


def _start(args) -> int:
    from core.broker import BrokerError
    from cli import CommandError

    b = broker_from_args(args)
    t0 = time.monotonic()
    try:
        pid = b.start(timeout_s=args.timeout)
    except BrokerError as exc:
        raise CommandError(str(exc)) from None
    print(f"kafka ready on {b.bootstrap} (pid {pid}, data {b.dir}) in {time.monotonic() - t0:.1f}s")
    return 0


def _stop(args) -> int:
    b = broker_from_args(args)
    if b.stop():
        print(f"kafka stopped ({b.dir})")
    else:
        print(f"no broker running on {b.dir}")
    return 0


def _status(args) -> int:
    b = broker_from_args(args)
    st = b.status()
    if args.json:
        print(json.dumps({"running": st.running, "pid": st.pid, "listener": st.listener, "version": st.version,
                          "data_dir": str(st.data_dir), "topics": st.topics}))
    else:
        print(f"kafka {st.version}  {'running' if st.running else 'stopped'}")
        print(f"  listener  {b.security.protocol}://{st.listener}")
        print(f"  pid       {st.pid if st.pid else '-'}")
        print(f"  data      {st.data_dir}")
        if st.topics is not None:
            if st.topics:
                for name, parts in sorted(st.topics.items()):
                    print(f"  topic     {name} ({parts} partitions)")
            else:
                print("  topics    none")
    return 0 if st.running else 3
