"""Control room under load: 1,000 officers on duty, a fix every 5 s each, 20 supervisors on /v1/live.

A throw-away local broker and one gateway process (`hotspot gateway`); this process is the load
generator and the supervisors. The officers are Traccar Client phones (OsmAnd protocol, GET
/v1/osmand) moving about a town, 200 requests/s in all; the supervisors are SSE connections
signed in as a supervisor, each parsing every event. Printed:

* ping received by the gateway -> position event received by a supervisor: p50/p99/max over every
  position every client got (the gateway stamps `received_ms` on arrival, before Kafka's ack, so
  this is an upper bound on accepted -> shown);
* gateway CPU (user+system from /proc) per second with no supervisor and with 20, and so per
  connected supervisor;
* with --browser: the /control page in headless chromium (Debian's, via Playwright) with 1,000
  moving markers: frame intervals (requestAnimationFrame) and ping -> drawn-on-the-page lag.

No worker runs: positions go pings -> gateway's own consumer -> clients, and patrol events add the
worker's ping-to-event time (bench/pipeline.py) to the same fan-out.

    python bench/control_room.py                   # 1000 officers, 20 supervisors, 60 s
    python bench/control_room.py --browser         # ... and the page's frame time
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CENTRE = (51.5000, -0.1000)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads_cpu_s(pid: int) -> float:
    return _cpu_s(pid)  # utime/stime of a process include all its threads


# --------------------------------------------------------------------------- officers

class Officers:
    """`n` phones walking or driving random legs around the centre, one fix every `interval_s` each."""

    def __init__(self, ids: list[str], interval_s: float, seed: int = 7):
        rnd = random.Random(seed)
        self.ids = ids
        self.interval_s = interval_s
        self.pos = [[CENTRE[0] + rnd.uniform(-0.01, 0.01), CENTRE[1] + rnd.uniform(-0.016, 0.016)] for _ in ids]
        self.vel = [(rnd.uniform(-1, 1) * 2e-5, rnd.uniform(-1, 1) * 3e-5) for _ in ids]
        self.sent = 0
        self.statuses: dict[int, int] = {}

    def request(self, i: int) -> bytes:
        p, v = self.pos[i], self.vel[i]
        p[0] += v[0] * self.interval_s
        p[1] += v[1] * self.interval_s
        if abs(p[0] - CENTRE[0]) > 0.012 or abs(p[1] - CENTRE[1]) > 0.02:
            self.vel[i] = (-v[0], -v[1])
        speed_kn = math.hypot(v[0] * 111_000, v[1] * 69_000) / 0.514444
        query = (f"id={self.ids[i]}&lat={p[0]:.6f}&lon={p[1]:.6f}&timestamp={int(time.time())}"
                 f"&speed={speed_kn:.1f}&accuracy=6")
        return f"GET /v1/osmand?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()

    async def run(self, port: int, until: float, connections: int = 20) -> None:
        """Each device sends every `interval_s`, the devices spread evenly over the interval."""
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def sender():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                while True:
                    i = await queue.get()
                    writer.write(self.request(i))
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head[9:12])
                    length = next((int(line[15:]) for line in head.split(b"\r\n")
                                   if line[:15].lower() == b"content-length:"), 0)
                    if length:
                        await reader.readexactly(length)
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    self.sent += 1
            finally:
                writer.close()

        senders = [asyncio.create_task(sender()) for _ in range(connections)]
        loop = asyncio.get_running_loop()
        step = self.interval_s / len(self.ids)
        start = loop.time()
        k = 0
        try:
            while loop.time() < until:
                target = start + k * step
                delay = target - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the fix schedule
                queue.put_nowait(k % len(self.ids))
                k += 1
        finally:
            for s in senders:
                s.cancel()


# --------------------------------------------------------------------------- supervisors

SNAPSHOT_DEADLINE_S = 120.0  # longest wait for every supervisor's snapshot on connect


class Supervisor:
    """One SSE connection to /v1/live; records ping-received -> event-received lags of positions."""

    def __init__(self, cookie: str, measuring: asyncio.Event):
        self.cookie = cookie
        self.measuring = measuring  # set once every client has its snapshot: lags count from then on
        self.snapshot = asyncio.Event()
        self.lags_ms: list[float] = []
        self.events = 0
        self.snapshot_bytes = 0

    async def run(self, port: int, until: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
        writer.write(f"GET /v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                     f"Cookie: hp_session={self.cookie}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head[:13]:
            raise SystemExit(f"/v1/live refused: {head[:200]!r}")
        loop = asyncio.get_running_loop()
        kind = None
        try:
            while loop.time() < until:
                try:
                    line = await asyncio.wait_for(reader.readline(), max(0.1, until - loop.time()))
                except asyncio.TimeoutError:
                    break
                if not line:
                    break
                # chunked transfer: size lines are hex digits alone, harmless to skip
                if line.startswith(b"event: "):
                    kind = line[7:].strip()
                elif line.startswith(b"data: "):
                    self.events += 1
                    if kind == b"position" and self.measuring.is_set():
                        now = time.time() * 1000
                        # the one field needed, without decoding the event: the client must keep up on a busy box
                        at = line.find(b'"received_ms":') + 14
                        self.lags_ms.append(now - int(line[at:line.find(b",", at)]))
                    elif kind == b"snapshot":
                        self.snapshot_bytes = len(line)
                        self.snapshot.set()
        finally:
            writer.close()


async def sign_in(port: int, name: str, secret: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.post("/v1/session", json={"name": name, "secret": secret})
        r.raise_for_status()
        return r.cookies["hp_session"]


async def wait_healthy(port: int, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get("/healthz", timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)  # readiness poll bounded by the deadline
    raise SystemExit(f"gateway on port {port} not healthy within {timeout_s:.0f}s")


async def measure(port: int, pid: int, officers: Officers, cookie: str, args) -> dict:
    loop = asyncio.get_running_loop()
    out: dict = {}
    # Phase 1: the officers alone (warm-up, then CPU with no supervisor connected).
    t0 = loop.time()
    load = asyncio.create_task(officers.run(port, t0 + args.warmup + args.idle + args.seconds + 5))
    await asyncio.sleep(args.warmup)  # warm-up: every device's first request, the consumer catching up
    cpu_a, wall_a = _cpu_s(pid), time.monotonic()
    sent_a = officers.sent
    await asyncio.sleep(args.idle)  # measurement window
    out["cpu_idle"] = (_cpu_s(pid) - cpu_a) / (time.monotonic() - wall_a)
    out["rate_idle"] = (officers.sent - sent_a) / (time.monotonic() - wall_a)
    # Phase 2: the supervisors, in a process of their own so that parsing their events cannot slow the
    # officers' schedule (the gateway must do the same work in both phases for the CPU difference to mean
    # anything).
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--supervise", "--port", str(port), "--cookie", cookie, "--clients",
        str(args.clients), "--seconds", str(args.seconds), stdout=asyncio.subprocess.PIPE)
    # Every client connected and holding its snapshot, outside the CPU window.
    ready = await asyncio.wait_for(child.stdout.readline(), SNAPSHOT_DEADLINE_S + 10)
    if ready.strip() != b"ready":
        raise SystemExit(f"the supervisors did not get their snapshots: {ready[:200]!r}")
    cpu_b, wall_b = _cpu_s(pid), time.monotonic()
    sent_b = officers.sent
    browser = None
    if args.browser:
        browser = asyncio.create_task(asyncio.to_thread(page_frames, port, args.supervisor, args.secret,
                                                        min(30.0, args.seconds - 15)))
    stdout, _ = await child.communicate()
    out["cpu_clients"] = (_cpu_s(pid) - cpu_b) / (time.monotonic() - wall_b)
    out["rate_clients"] = (officers.sent - sent_b) / (time.monotonic() - wall_b)
    out.update(json.loads(stdout.decode().strip().splitlines()[-1]))
    if browser is not None:
        out["browser"] = await browser
    load.cancel()
    out["statuses"] = dict(officers.statuses)
    return out


async def supervise(port: int, cookie: str, clients: int, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    start = loop.time()
    measuring = asyncio.Event()
    sups = [Supervisor(cookie, measuring) for _ in range(clients)]
    runs = asyncio.gather(*(s.run(port, start + seconds) for s in sups))
    # Ready when every client has its snapshot: the parent starts its CPU window on this line.
    await asyncio.wait_for(asyncio.gather(*(s.snapshot.wait() for s in sups)), SNAPSHOT_DEADLINE_S)
    measuring.set()
    print("ready", flush=True)
    await runs
    lags = [lag for s in sups for lag in s.lags_ms]
    return dict(lags=len(lags), p50=_pct(lags, 0.5), p99=_pct(lags, 0.99), max=max(lags) if lags else float("nan"),
                events_per_client=sum(s.events for s in sups) / len(sups), snapshot_bytes=sups[0].snapshot_bytes)


def page_frames(port: int, name: str, secret: str, seconds: float) -> dict:
    """Frame intervals of /control with every officer moving, in Debian's chromium (headless)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{port}/control/signin")
        page.fill("#name", name)
        page.fill("#secret", secret)
        page.click("button[type=submit]")
        page.wait_for_url(f"http://127.0.0.1:{port}/control")
        page.wait_for_function("() => window.controlRoom && Object.keys(window.controlRoom.officers).length >= 900",
                               timeout=60_000)
        result = page.evaluate("""async (seconds) => {
            const r = window.controlRoom;
            r.lags = [];
            const frames = [];
            let last = performance.now();
            const end = last + seconds * 1000;
            await new Promise(done => {
              function frame(t) { frames.push(t - last); last = t; if (t < end) requestAnimationFrame(frame); else done(); }
              requestAnimationFrame(frame);
            });
            frames.sort((a, b) => a - b);
            const lags = r.lags.slice().sort((a, b) => a - b);
            const q = (xs, p) => xs.length ? xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] : null;
            return {frames: frames.length, fps: frames.length / seconds, frame_p50_ms: q(frames, .5),
                    frame_p95_ms: q(frames, .95), frame_max_ms: frames[frames.length - 1],
                    markers: Object.keys(r.officers).length, positions: lags.length,
                    lag_p50_ms: q(lags, .5), lag_p99_ms: q(lags, .99)};
        }""", seconds)
        browser.close()
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--officers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between one officer's fixes")
    parser.add_argument("--clients", type=int, default=20, help="supervisors connected to /v1/live")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement with the supervisors connected")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--idle", type=float, default=20.0, help="CPU measurement with no supervisor")
    parser.add_argument("--browser", action="store_true", help="also measure the page in headless chromium")
    parser.add_argument("--supervise", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cookie", help=argparse.SUPPRESS)
    args = parser.parse_args()

    import uvloop

    if args.supervise:
        print(json.dumps(uvloop.run(supervise(args.port, args.cookie, args.clients, args.seconds))))
        return 0

    from gateway.credentials import CredentialStore, path_in
    from core.kafka import ensure_topics
    from tests.conftest import HOTSPOT, free_port
    from tests.integration.conftest import Broker

    work = Path(tempfile.mkdtemp(prefix="bench-control-"))
    broker = Broker(work / "kafka")
    broker.start()
    gateway = None
    try:
        uvloop.run(ensure_topics(broker.bootstrap, 4))
        data_dir = work / "var"
        data_dir.mkdir(mode=0o700)
        store = CredentialStore(path_in(data_dir))
        ids = [store.add(f"bench-{i:04d}", "device", osmand=True)[1] for i in range(args.officers)]
        args.supervisor, args.secret = "bench-sup", store.add("bench-sup", "user", "supervisor")[1]
        store.close()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
        env.update(HOTSPOT_DATA_DIR=str(data_dir), HOTSPOT_KAFKA_BOOTSTRAP=broker.bootstrap,
                   HOTSPOT_GATEWAY_OSMAND_UNKNOWN_BURST="100000")
        log = open(work / "gateway.log", "w")
        gateway = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "warning"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        uvloop.run(wait_healthy(port, 60))
        cookie = uvloop.run(sign_in(port, args.supervisor, args.secret))
        officers = Officers(ids, args.interval)
        r = uvloop.run(measure(port, gateway.pid, officers, cookie, args))
        per_sup = (r["cpu_clients"] - r["cpu_idle"]) / args.clients
        print(f"officers {args.officers} (a fix every {args.interval:g} s: {r['rate_idle']:.0f} req/s without "
              f"supervisors, {r['rate_clients']:.0f} with; statuses {r['statuses']}), supervisors {args.clients}, "
              f"{args.seconds:g} s; cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        print(f"ping received -> position at a supervisor: p50 {r['p50']:.0f} ms  p99 {r['p99']:.0f} ms  "
              f"max {r['max']:.0f} ms  over {r['lags']} positions ({r['events_per_client']:.0f} events per client; "
              f"snapshot {r['snapshot_bytes'] / 1024:.0f} KiB)")
        ms_idle = r["cpu_idle"] / r["rate_idle"] * 1000
        ms_clients = r["cpu_clients"] / r["rate_clients"] * 1000
        print(f"gateway CPU: {r['cpu_idle'] * 100:.1f}% of a core with no supervisor, {r['cpu_clients'] * 100:.1f}% "
              f"with {args.clients}: {per_sup * 100:.2f}% of a core per connected supervisor; per ping "
              f"{ms_idle:.3f} ms without supervisors, {ms_clients:.3f} ms with {args.clients} "
              f"({(ms_clients - ms_idle) / args.clients * 1000:.1f} us per ping per supervisor)")
        if "browser" in r:
            b = r["browser"]
            print(f"page (headless chromium, {b['markers']} markers): {b['fps']:.1f} frames/s, frame p50 "
                  f"{b['frame_p50_ms']:.1f} ms p95 {b['frame_p95_ms']:.1f} ms max {b['frame_max_ms']:.1f} ms; "
                  f"ping -> drawn p50 {b['lag_p50_ms']} ms p99 {b['lag_p99_ms']} ms over {b['positions']} positions")
        print(json.dumps({k: v for k, v in r.items()}, default=str))
        return 0
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
