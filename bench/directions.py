"""Officer API latency: `POST /v1/directions` and `GET /v1/hotspots/nearby` with 5,000 hot spots and 500 officers.

A real gateway process (`hotspot gateway`: uvicorn, uvloop, httptools) on a
real Kafka broker, with 5,000 hot spots (150 m squares on a 71 x 71 grid,
about 10.6 km across) published on the `hotspots` topic and 500 officer users
signed in, each with its own cookie jar and connection. Each officer, placed
at random on the grid, repeats: nearby, then directions, with an exponential
pause of mean `--think-s` between requests (an open, per-officer Poisson
load: 500 officers tapping every `--think-s` seconds on average). With
`--think-s 0` every officer sends its next request as soon as the last is
answered: 500 requests always in flight, the worst case of every officer
tapping at once. Latency is measured from the request written to the answer
read; every answer must be 200 or 201 (409 counted apart: a hot spot past its
cap). The load generator runs on the same machine: its own cost is in the
figures.

    python bench/directions.py --start-broker                 # throw-away broker and data directory
    python bench/directions.py --start-broker --think-s 0     # saturation: 500 requests in flight
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LAT0, LON0 = 51.45, -0.20
CELL_DEG_LAT = 150 / 111_320


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grid(n: int) -> list[dict]:
    """n hot-spot records (Avro Hotspot) on a square grid of 150 m cells."""
    import math

    side = math.ceil(math.sqrt(n))
    dlon = 150 / (111_320 * math.cos(math.radians(LAT0)))
    out = []
    for i in range(n):
        r, c = divmod(i, side)
        lat, lon = LAT0 + r * CELL_DEG_LAT, LON0 + c * dlon
        ring = [[lon, lat], [lon + dlon, lat], [lon + dlon, lat + CELL_DEG_LAT], [lon, lat + CELL_DEG_LAT], [lon, lat]]
        out.append({"id": f"HS-{i:05d}", "name": f"Cell {r}-{c}", "briefing": "Robbery and assault at night\nmore",
                    "geometry_geojson": json.dumps({"type": "Polygon", "coordinates": [ring]}), "buffer_m": None,
                    "target_minutes": 15.0, "active_from_ms": None, "active_to_ms": None, "stats_json": None,
                    "published_ms": int(time.time() * 1000)})
    return out, side, dlon


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] if s else float("nan")


async def run_load(base: str, creds, side, dlon, rounds, think_s, seed):
    import aiohttp

    rng = random.Random(seed)
    out = {"nearby": [], "directions": [], "status": {}, "signed_in": asyncio.Event()}
    # One connection per officer, closed by the client after 3 s idle: uvicorn drops keep-alive connections
    # idle 5 s, and a request racing that close would fail on a reset (a phone reconnects the same way).
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, keepalive_timeout=3),
                                      cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=600))
                for _ in creds]
    signed = 0
    lock = asyncio.Lock()

    async def one(s, name, secret, pos, orng):
        nonlocal signed
        async with s.post(f"{base}/v1/session", json={"name": name, "secret": secret}) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf_token"]
        async with lock:
            signed += 1
            if signed == len(creds):
                out["t0"] = time.perf_counter()
                out["signed_in"].set()
        await out["signed_in"].wait()
        lat, lon = pos
        for _ in range(rounds):
            for kind in ("nearby", "directions"):
                if think_s > 0:
                    await asyncio.sleep(orng.expovariate(1 / think_s))  # the officer's pause between taps
                t = time.perf_counter()
                if kind == "nearby":
                    async with s.get(f"{base}/v1/hotspots/nearby", params={"lat": lat, "lon": lon, "limit": 10}) as r:
                        await r.read()
                else:
                    async with s.post(f"{base}/v1/directions", json={"lat": lat, "lon": lon},
                                      headers={"X-CSRF-Token": csrf}) as r:
                        await r.read()
                out[kind].append((time.perf_counter() - t) * 1000)
                out["status"][r.status] = out["status"].get(r.status, 0) + 1

    try:
        tasks = []
        for s, (name, secret) in zip(sessions, creds.items()):
            pos = (LAT0 + rng.uniform(0, side) * CELL_DEG_LAT, LON0 + rng.uniform(0, side) * dlon)
            tasks.append(one(s, name, secret, pos, random.Random(rng.random())))
        await asyncio.gather(*tasks)
        out["elapsed_s"] = time.perf_counter() - out["t0"]
    finally:
        for s in sessions:
            await s.close()
    return out


def _wait_for_hotspots(base: str, name: str, secret: str, timeout_s: float = 120) -> None:
    """Until the gateway has read the hot spots and the schedule: nearby answers 200 with hot spots listed."""
    import httpx

    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.post("/v1/session", json={"name": name, "secret": secret}).status_code == 200
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            r = c.get("/v1/hotspots/nearby", params={"lat": LAT0, "lon": LON0})
            if r.status_code == 200 and r.json()["hotspots"]:
                return
            time.sleep(0.2)  # readiness poll with a deadline
    raise SystemExit("the gateway did not list hot spots in time")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bootstrap", help="a running broker (default: --start-broker)")
    p.add_argument("--start-broker", action="store_true", help="start a throw-away local broker")
    p.add_argument("--hotspots", type=int, default=5000)
    p.add_argument("--officers", type=int, default=500)
    p.add_argument("--rounds", type=int, default=4, help="nearby + directions pairs per officer (default 4)")
    p.add_argument("--think-s", type=float, default=10.0, help="mean pause between an officer's requests (0: none)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    from gateway.credentials import CredentialStore, path_in
    from streams.broker import LocalBroker
    from streams.hotspotfeed import publish
    from streams.kafka import ensure_topics
    from streams.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-directions-"))
    broker = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    env.update(HOTSPOT_DATA_DIR=str(tmp / "var"), HOTSPOT_DIRECTIONS_DAILY_CAP="1000000")
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        kport, cport = _free_port(), _free_port()
        s = Settings(data_dir=tmp / "var", kafka_port=kport, kafka_controller_port=cport)
        broker = LocalBroker.from_settings(s)
        broker.start()
        bootstrap = s.bootstrap_servers
    env["HOTSPOT_KAFKA_BOOTSTRAP"] = bootstrap
    gateway = None
    try:
        records, side, dlon = grid(args.hotspots)
        asyncio.run(ensure_topics(bootstrap, 4))
        asyncio.run(publish(bootstrap, records, 4))
        store = CredentialStore(path_in(tmp / "var"))
        creds = {f"pc{i:04d}": store.add(f"pc{i:04d}", "user", "officer")[1] for i in range(args.officers)}
        probe_secret = store.add("probe", "user", "officer")[1]
        store.close()
        port = _free_port()
        log = open(tmp / "gateway.log", "w")
        gateway = subprocess.Popen([sys.executable, "-m", "streams.cli", "gateway", "--port", str(port),
                                    "--log-level", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        import urllib.request

        deadline = time.monotonic() + 120
        while True:  # ready once the gateway has read the hot spots: nearby answers 200 and lists some
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit(f"gateway did not start; see {tmp / 'gateway.log'}")
                time.sleep(0.2)  # readiness poll with a deadline
        _wait_for_hotspots(base, "probe", probe_secret)
        out = asyncio.run(run_load(base, creds, side, dlon, args.rounds, args.think_s, args.seed))
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=30)
        if broker is not None:
            broker.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    n = len(out["nearby"]) + len(out["directions"])
    print(f"hot spots {args.hotspots}, officers {args.officers}, rounds {args.rounds}, think {args.think_s:g} s: "
          f"{n} requests in {out['elapsed_s']:.1f} s ({n / out['elapsed_s']:.0f}/s), statuses {out['status']}")
    for kind in ("nearby", "directions"):
        v = out[kind]
        print(f"  {kind:<10} n={len(v)}  p50 {percentile(v, 50):.1f} ms  p95 {percentile(v, 95):.1f} ms  "
              f"p99 {percentile(v, 99):.1f} ms  max {max(v):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
