"""Gateway throughput: accepted pings/s of one gateway process, single-ping requests and batches of 100.

The gateway runs in its own process (uvicorn, uvloop, httptools) against a real
Kafka broker; this process is the load generator: keep-alive HTTP/1.1
connections on loopback sending pre-built requests, bounded in count and time.
Every request must be answered 202; the pings Kafka gained (end offsets of
`pings` before and after) must equal the pings acknowledged.

    python bench/gateway.py --bootstrap 127.0.0.1:19092            # a running broker
    python bench/gateway.py --start-broker                          # a throw-away local broker

Per-device rate limits are raised for the run (it measures the process, not the policy).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEVICES = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- server side

def serve(args) -> None:
    import uvicorn
    import uvloop

    from core.settings import Settings
    from gateway.main import create_app

    settings = Settings(kafka_bootstrap=args.bootstrap, data_dir=Path(args.data_dir),
                        gateway_device_rate_pings_per_s=1e9, gateway_device_burst_pings=10 ** 9)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=args.port,
                                           loop="uvloop", http="httptools", log_level="warning", access_log=False,
                                           backlog=4096))
    uvloop.run(server.serve())


# --------------------------------------------------------------------------- load generator

def _request(path: str, token: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def _bodies(batch: int, count: int, t0_ms: int) -> list[bytes]:
    import orjson

    out = []
    for i in range(count):
        items = [{"ts_ms": t0_ms + (i * batch + j) * 10, "lat": 51.5 + j * 1e-5, "lon": -0.12 - i * 1e-6,
                  "accuracy_m": 8.0, "speed_mps": 1.3, "heading_deg": 90.0, "battery": 0.8} for j in range(batch)]
        out.append(orjson.dumps(items[0] if batch == 1 else items))
    return out


async def _connection(port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int],
                      deadline: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for req in requests:
            if time.perf_counter() > deadline:
                break
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run_load(port: int, tokens: list[str], batch: int, total_requests: int, connections: int,
                    time_limit_s: float) -> dict:
    t0_ms = int(time.time() * 1000) - 3_600_000
    bodies = _bodies(batch, min(total_requests, 500), t0_ms)
    reqs = [_request("/v1/pings", tokens[i % len(tokens)], bodies[i % len(bodies)]) for i in range(total_requests)]
    per_conn = [reqs[i::connections] for i in range(connections)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, r, latencies, statuses, start + time_limit_s) for r in per_conn))
    elapsed = time.perf_counter() - start
    latencies.sort()
    done = len(latencies)
    return {"requests": done, "elapsed_s": elapsed, "req_per_s": done / elapsed,
            "pings_per_s": statuses.get(202, 0) * batch / elapsed, "statuses": statuses,
            "accepted_pings": statuses.get(202, 0) * batch,
            "p50_ms": latencies[done // 2] * 1000 if done else 0, "p99_ms": latencies[int(done * 0.99)] * 1000 if done else 0}


async def _pings_end_offsets(bootstrap: str) -> int:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic("pings") or set()
        offsets = await consumer.end_offsets([TopicPartition("pings", p) for p in parts])
        return sum(offsets.values())
    finally:
        await consumer.stop()


async def _wait_healthy(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.read(200)
            writer.close()
            if b" 200 " in head[:13] and b'"connected"' in body:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)  # readiness poll bounded by the deadline
    raise SystemExit(f"gateway on port {port} not healthy within {timeout_s:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: settings)")
    parser.add_argument("--start-broker", action="store_true", help="start a throw-away local broker for the run")
    parser.add_argument("--single", type=int, default=30_000, help="single-ping requests (default 30000)")
    parser.add_argument("--batches", type=int, default=2_000, help="requests of 100 pings (default 2000)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per phase at most")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return 0

    import uvloop

    from gateway.credentials import CredentialStore
    from core.kafka import ensure_topics
    from core.settings import get_settings

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    broker = None
    if args.start_broker:
        from tests.integration.conftest import Broker

        broker = Broker(work / "kafka")
        broker.start()
        bootstrap = broker.bootstrap
    else:
        bootstrap = args.bootstrap or get_settings().bootstrap_servers
    gateway = None
    try:
        uvloop.run(ensure_topics(bootstrap, get_settings().partitions))
        store = CredentialStore(work / "credentials.sqlite3")
        tokens = [store.add(f"bench-{i}", "device")[1] for i in range(DEVICES)]
        store.close()
        port = _free_port()
        gateway = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(port), "--data-dir", str(work),
                                    "--bootstrap", bootstrap], cwd=REPO)
        uvloop.run(_wait_healthy(port, 60))
        # The first request of each device pays scrypt once; warm the cache outside the measurement.
        uvloop.run(_run_load(port, tokens, 1, DEVICES, 16, 60))
        results = {}
        for label, batch, count in (("single", 1, args.single), ("batch100", 100, args.batches)):
            before = uvloop.run(_pings_end_offsets(bootstrap))
            r = uvloop.run(_run_load(port, tokens, batch, count, args.connections, args.time_limit))
            after = uvloop.run(_pings_end_offsets(bootstrap))
            r["kafka_gained"] = after - before
            results[label] = r
            print(f"{label:9} {r['requests']:7d} requests in {r['elapsed_s']:5.1f}s  {r['req_per_s']:8.0f} req/s  "
                  f"{r['pings_per_s']:8.0f} pings/s  p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                  f"statuses {r['statuses']}  Kafka gained {r['kafka_gained']} (acknowledged {r['accepted_pings']})",
                  flush=True)
        ok = all(r["statuses"].keys() == {202} and r["kafka_gained"] >= r["accepted_pings"] for r in results.values())
        print(f"cores {os.cpu_count()}, {args.connections} connections, {DEVICES} devices, broker {bootstrap}; "
              f"targets: >= 2000 req/s single, >= 50000 pings/s in batches of 100")
        return 0 if ok else 1
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
