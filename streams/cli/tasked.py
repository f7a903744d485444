"""`hotspot tasked`: simulated officers tasked through the officer app's API (streams/taskedsim.py)."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  hotspot tasked --officers 5                     # against the gateway at HTTP_HOST:HTTP_PORT, for 12 hours
  hotspot tasked --officers 2 --url http://127.0.0.1:8080 --hours 1
"""


def register(sub) -> None:
    p = sub.add_parser("tasked", help="simulated officers directed through the officer app's API",
                       description="Register N officer users, sign them in, and have each ask POST /v1/directions, walk "
                                   "to the hot spot, patrol its target minutes and log an activity, in a loop, sending "
                                   "its pings under its session as the web app does.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--officers", type=int, default=3, metavar="N", help="tasked officers (default 3)")
    p.add_argument("--url", metavar="URL", help="gateway base URL (default http://HTTP_HOST:HTTP_PORT)")
    p.add_argument("--hours", type=float, default=12.0, metavar="H", help="how long they patrol (default 12)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--prefix", metavar="P", help="user names P-001, ... (default tasked-HHMMSS, the run's UTC start)")
    p.set_defaults(handler=_tasked)


def _tasked(args) -> int:
    import asyncio
    import logging
    import time

    from streams.cli import CommandError
    from streams.hotspotfeed import read_all
    from streams.settings import get_settings
    from streams.taskedsim import run

    s = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hotspots = asyncio.run(read_all(s.bootstrap_servers))
    if not hotspots:
        raise CommandError("no hot spots are published: `hotspot hotspots publish FILE` first")
    from processors.direction import candidates_from_records

    cands = candidates_from_records(hotspots.values())
    start = (sum(c.lat for c in cands) / len(cands), sum(c.lon for c in cands) / len(cands))
    prefix = args.prefix or "tasked-" + time.strftime("%H%M%S", time.gmtime())
    url = args.url or f"http://{s.http_host}:{s.http_port}"
    print(f"{args.officers} tasked officers ({prefix}-001...) through {url}", flush=True)
    team = asyncio.run(run(url, s.data_dir, officers=args.officers, hours=args.hours, seed=args.seed, prefix=prefix,
                           start=start))
    print(f"assignments {sum(o.assignments for o in team)}, pings {sum(o.pings for o in team)}", flush=True)
    return 0
