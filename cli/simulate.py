"""`hotspot simulate`: simulated officers written to files with their ground truth."""
from __future__ import annotations

import argparse
import sys
import time

EXAMPLES = """examples:
  hotspot simulate --out sim/                              # 8 officers, 8 hours, a generated town
  hotspot simulate --out sim/ --officers 20 --hours 12 --seed 7
  hotspot simulate --out sim/ --hotspots hotspots.geojson  # patrol your own hot spots
  hotspot simulate --out edges/ --scenario edges_15m       # only drive-bys and edge walks, 15 m accuracy
  hotspot simulate --live --officers 20                    # into the running system, in real time
  hotspot simulate --via gateway --officers 20             # the same through the gateway's HTTP API, as phones do
  hotspot simulate --via gateway --protocols native,owntracks,osmand --speed max --hours 1
  hotspot replay --pings sim/pings.csv --hotspots sim/hotspots.geojson --out sim/replay

writes to DIR: pings.csv (replay format, delivery order), hotspots.geojson, and the truth:
  truth_visits.csv, truth_stops.csv, truth_modes.csv, truth_episodes.csv, truth_gaps.csv,
  truth_pings.csv, devices.csv, simulation.json. The same arguments give the same bytes.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate", help="simulated officers: pings in the replay format plus their ground truth",
        description="Simulate officers driving, patrolling on foot, driving through and past hot spots and walking "
                    "along their edges, with realistic phone GPS (correlated noise, 5-30 m accuracy classes, "
                    "5-60 s intervals, gaps, duplicates, late delivery, wild outliers). Seeded and reproducible.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", metavar="DIR", help="output directory (created; files in it replaced)")
    p.add_argument("--live", action="store_true",
                   help="publish to the running system in real time instead of writing files (officers already "
                        "10 minutes into their shift; patrols the published hot spots, or publishes a generated town)")
    p.add_argument("--via", choices=("kafka", "gateway"), default=None,
                   help="live path: kafka (same as --live) or gateway: register a device credential per officer "
                        "(sim-001, ...) and POST their pings to the gateway over HTTP")
    p.add_argument("--url", metavar="URL", help="gateway base URL for --via gateway (default http://HTTP_HOST:HTTP_PORT "
                                                "from the settings, i.e. http://127.0.0.1:8080)")
    p.add_argument("--speed", choices=("real", "max"), default="real",
                   help="--via gateway: real time (default), or max: every ping as fast as the gateway accepts")
    p.add_argument("--protocols", default="native", metavar="P[,P...]",
                   help="--via gateway: protocols handed to officers in turn: native, owntracks, osmand (default native)")
    p.add_argument("--concurrency", type=int, default=16, metavar="N",
                   help="--via gateway: most requests in flight (default 16)")
    p.add_argument("--device-prefix", metavar="P",
                   help="--live / --via gateway: device ids P-001, P-002, ... (default sim-HHMMSS, the run's UTC start: "
                        "ids of its own for each run, so a rerun never continues earlier devices from elsewhere)")
    p.add_argument("--settle", type=float, default=60.0, metavar="S",
                   help="--via gateway: after sending, wait up to S seconds for the worker's verdict on every ping "
                        "(read back from ClickHouse pings / pings_rejected; 0: do not wait)")
    p.add_argument("--officers", type=int, default=8, metavar="N", help="officers, one device each (default 8)")
    p.add_argument("--hours", type=float, default=8.0, metavar="H", help="shift length in hours (default 8)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--hotspots", metavar="FILE.geojson",
                   help="patrol these hot spots instead of a generated town (hot-spot GeoJSON format)")
    p.add_argument("--scenario", default="mixed", metavar="NAME",
                   help="behaviour preset: mixed (default), edges_15m, patrols")
    p.add_argument("--start", metavar="ISO", help="shift start, ISO-8601 with offset (default 2025-06-12T08:00:00+01:00)")
    p.add_argument("--hotspot-count", type=int, metavar="N", help="hot spots in a generated town (default 20)")
    p.add_argument("--accuracy-m", metavar="M[,M...]",
                   help="accuracy classes in metres, assigned to devices in turn (default 5,10,15,20,30)")
    p.add_argument("--profiles", metavar="P[,P...]",
                   help="device profiles assigned in turn: airwave (5 s), vehicle (10 s), handheld (60 s)")
    p.set_defaults(handler=_simulate)


def _simulate(args) -> int:
    from pathlib import Path

    if args.via == "gateway":
        return _simulate_via_gateway(args)
    if args.live or args.via == "kafka":
        return _simulate_live(args)

    from simulation.config import PROFILES, SCENARIOS, scenario_config
    from simulation.simulate import Simulation
    from cli import CommandError
    from formats.timestamps import parse_ts_ms
    from simulation.files import write_simulation

    if args.scenario not in SCENARIOS:
        raise CommandError(f"unknown --scenario {args.scenario!r}; choose one of {', '.join(SCENARIOS)}")
    if args.officers < 1 or args.officers > 10_000:
        raise CommandError("--officers must be between 1 and 10000")
    if not 0 < args.hours <= 168:
        raise CommandError("--hours must be more than 0 and at most 168")
    overrides: dict = {"seed": args.seed, "officers": args.officers, "hours": args.hours}
    if args.start:
        if "T" not in args.start or not (args.start.endswith("Z") or "+" in args.start[10:] or "-" in args.start[10:]):
            raise CommandError(f"--start {args.start!r} needs a date, a time and an offset, e.g. 2025-06-12T08:00:00+01:00")
        try:
            overrides["start_ms"] = parse_ts_ms(args.start, naive_utc=True)
        except ValueError:
            raise CommandError(f"--start {args.start!r} is not ISO-8601, e.g. 2025-06-12T08:00:00+01:00") from None
    if args.hotspot_count is not None:
        if not 1 <= args.hotspot_count <= 200:
            raise CommandError("--hotspot-count must be between 1 and 200")
        overrides["hotspot_count"] = args.hotspot_count
    if args.accuracy_m:
        try:
            classes = tuple(float(x) for x in args.accuracy_m.split(","))
        except ValueError:
            raise CommandError(f"--accuracy-m {args.accuracy_m!r}: give metres separated by commas, e.g. 10,15") from None
        if any(not 1 <= c <= 500 for c in classes):
            raise CommandError("--accuracy-m classes must be between 1 and 500 m")
        overrides["accuracy_classes_m"] = classes
    if args.profiles:
        profiles = tuple(x.strip() for x in args.profiles.split(","))
        bad = [x for x in profiles if x not in PROFILES]
        if bad:
            raise CommandError(f"unknown --profiles {', '.join(bad)}; choose from {', '.join(PROFILES)}")
        overrides["profiles"] = profiles
    features = _features(args)
    try:
        config = scenario_config(args.scenario, **overrides)
        sim = Simulation(config, features)
    except ValueError as exc:
        raise CommandError(str(exc)) from None

    if not args.out:
        raise CommandError("give --out DIR (or --live to publish to the running system)")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} exists and is not a directory")
    t0 = time.monotonic()

    tty = sys.stderr.isatty()

    def officer_done(done: int, total: int) -> None:
        if tty:
            print(f"\rsimulating officers {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
        elif done == total or done * 4 // total != (done - 1) * 4 // total:
            print(f"simulated officers {done}/{total}", file=sys.stderr, flush=True)

    sim.run(officer_done)
    try:
        counts = write_simulation(sim, out, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except OSError as exc:
        raise CommandError(f"cannot write to {out}: {exc.strerror or exc}") from None
    truth = sim.truth()
    print(f"wrote {counts['pings.csv']:,} pings from {config.officers} officers ({truth.device_hours:g} device-hours) "
          f"around {counts['hotspots.geojson']} hot spots; truth: {len(truth.visits)} visits, {len(truth.stops)} stops, "
          f"{len(truth.episodes)} episodes -> {out} ({time.monotonic() - t0:.1f}s)")
    return 0


def _simulate_live(args) -> int:
    import asyncio
    import signal

    from cli import CommandError
    from simulation.live import run_live
    from core.settings import get_settings

    if not 1 <= args.officers <= 10_000:
        raise CommandError("--officers must be between 1 and 10000")
    settings = get_settings()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"simulating {args.officers} officers live into {settings.bootstrap_servers} (Ctrl-C to stop)", flush=True)
        return await run_live(settings.bootstrap_servers, settings.partitions, args.officers, seed=args.seed,
                              hours=args.hours, stop=stop, say=lambda m: print(m, flush=True),
                              device_prefix=args.device_prefix)

    sent = asyncio.run(main())
    print(f"sent {sent} simulated pings", flush=True)
    return 0


def _simulate_via_gateway(args) -> int:
    import asyncio
    import signal

    from cli import CommandError
    from simulation.via_gateway import PROTOCOLS, assign_protocols, register_devices, run_via_gateway
    from simulation.live import plan, run_prefix
    from core.settings import get_settings
    from formats.timestamps import parse_ts_ms

    if not 1 <= args.officers <= 10_000:
        raise CommandError("--officers must be between 1 and 10000")
    if not 0 < args.hours <= 168:
        raise CommandError("--hours must be more than 0 and at most 168")
    if not 1 <= args.concurrency <= 1024:
        raise CommandError("--concurrency must be between 1 and 1024")
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    bad = [x for x in protocols if x not in PROTOCOLS]
    if bad or not protocols:
        raise CommandError(f"unknown --protocols {', '.join(bad) or '(none)'}; choose from {', '.join(PROTOCOLS)}")
    settings = get_settings()
    url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    if not url.startswith(("http://", "https://")):
        raise CommandError(f"--url {url!r} must start with http:// or https://")
    backlog_s = 600.0
    if args.start:
        try:
            start_ms = parse_ts_ms(args.start, naive_utc=True)
        except ValueError:
            raise CommandError(f"--start {args.start!r} is not ISO-8601, e.g. 2025-06-12T08:00:00+01:00") from None
        backlog_s = max(0.0, time.time() - start_ms / 1000)  # a shift already under way: catch up, then real time
    else:
        start_ms = int(time.time() * 1000) - int(backlog_s * 1000)
    features = _features(args)
    sim = plan(args.officers, args.seed, args.hours, start_ms, features,
               device_prefix=args.device_prefix or run_prefix(int(time.time() * 1000)))
    device_ids = list(sim.device_ids)
    assigned = assign_protocols(device_ids, protocols)
    secrets = register_devices(settings.data_dir, device_ids,
                               osmand=[d for d, protocol in assigned.items() if protocol == "osmand"])
    registered_at = time.monotonic()
    total = len(sim.ping_table())
    print(f"registered {len(device_ids)} devices ({device_ids[0]}..{device_ids[-1]}) in {settings.data_dir}; "
          f"sending {total:,} pings to {url} ({', '.join(protocols)}; speed {args.speed})", flush=True)

    def progress(stats) -> None:
        print(f"  {stats.acknowledged:,}/{total:,} pings acknowledged, {stats.requests:,} requests, "
              f"{stats.retries} retries, {stats.rate_limited} rate-limited", file=sys.stderr, flush=True)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_via_gateway(sim, url, secrets, assigned, speed=args.speed, backlog_s=backlog_s,
                                     concurrency=args.concurrency, stop=stop, registered_at=registered_at,
                                     progress=progress)

    t0 = time.monotonic()
    stats = asyncio.run(main())
    per = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.by_protocol.items()))
    print(f"acknowledged {stats.acknowledged:,} of {total:,} pings ({per}) in {stats.requests:,} requests, "
          f"{stats.retries} retries, {stats.rate_limited} rate-limited, {stats.rejected} rejected, "
          f"{stats.failed} failed ({time.monotonic() - t0:.1f}s)", flush=True)
    if stats.failed or stats.rejected:
        raise CommandError(f"{stats.failed + stats.rejected} pings not delivered: {stats.first_problem}")
    if args.settle > 0 and stats.acknowledged:
        _report_verdicts(device_ids, stats.acknowledged, args.settle)
    return 0


def verdicts(device_ids: list[str]) -> tuple[int, dict[str, int]]:
    """What the worker did with these devices' pings: (accepted, {reason: rejected}), from ClickHouse
    through `hotspot sql`'s reader (the worker's query server when it owns the embedded store)."""
    from cli.sql import run_readonly

    ids = ", ".join("'" + d.replace("\\", "").replace("'", "") + "'" for d in device_ids)
    _, rows = run_readonly(f"SELECT count() FROM hotspot.pings FINAL WHERE device_id IN ({ids})")
    accepted = int(rows[0][0])
    _, rows = run_readonly(f"SELECT reason, count() FROM hotspot.pings_rejected FINAL WHERE device_id IN ({ids}) "
                           f"GROUP BY reason ORDER BY reason")
    return accepted, {str(r): int(n) for r, n in rows}


def _report_verdicts(device_ids: list[str], acknowledged: int, settle_s: float) -> None:
    """The gateway's acknowledgement says a ping reached Kafka, not that the worker took it: read back the verdict.
    The wait also ends once the counts stop growing for 10 s (a ping still held, or a worker that is down)."""
    from cli import CommandError

    deadline = time.monotonic() + settle_s
    last, still_since = None, time.monotonic()
    while True:
        try:
            accepted, rejected = verdicts(device_ids)
        except CommandError as exc:
            print(f"worker's verdict unknown: cannot read ClickHouse ({exc})", flush=True)
            return
        seen = accepted + sum(rejected.values())
        if seen != last:
            last, still_since = seen, time.monotonic()
        if seen >= acknowledged or time.monotonic() > deadline or (seen and time.monotonic() - still_since > 10):
            break
        time.sleep(1.0)  # poll interval while the worker catches up
    why = ", ".join(f"{k} {v:,}" for k, v in rejected.items()) or "none"
    print(f"worker: {accepted:,} accepted into hotspot.pings, {sum(rejected.values()):,} rejected ({why}), "
          f"{max(0, acknowledged - seen):,} not (yet) in ClickHouse", flush=True)


def _features(args):
    """The hot spots of --hotspots as GeoJSON features, or None for a generated town."""
    from pathlib import Path

    from cli import CommandError
    from formats.hotspots import features

    if not args.hotspots:
        return None
    try:
        return features(Path(args.hotspots))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
