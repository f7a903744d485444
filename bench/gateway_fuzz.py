"""Fuzzing soak of the device gateway: ≥ 10,000 generated requests from its own /openapi.json, zero 5xx.

Requests are generated with hypothesis from the OpenAPI document the running
gateway serves: every operation, bodies built from its request schema and then
mutated (fields dropped, retyped, out of range, unknown fields added), plus
arbitrary JSON, raw bytes, wrong content types, random query strings for
OsmAnd, and every kind of credential (valid Bearer, valid Basic, wrong secret,
malformed header, none). Valid requests are real traffic: they reach Kafka,
hit the per-device rate limit and, for OwnTracks, the held queue. Counts are
printed by status class; any 5xx is printed with its request, and the run
fails. Loopback only.

    python bench/gateway_fuzz.py                       # throw-away broker + gateway process, 10,000 requests
    python bench/gateway_fuzz.py --requests 20000
    python bench/gateway_fuzz.py --url http://127.0.0.1:8080 --data-dir var   # a running gateway (registers a device there)
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode, urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HOTSPOT = str(Path(sys.executable).with_name("hotspot"))


# --------------------------------------------------------------------------- strategies from the document

def _strategies(spec: dict, device_id: str, secret: str, osmand_id: str):
    from hypothesis import strategies as st

    components = spec.get("components", {}).get("schemas", {})
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64), st.floats(allow_nan=False),
                        st.text(max_size=30), st.sampled_from(["", "NaN", "inf", "-1e309", "1e999", "0x10", " 1 ",
                                                               "2023-11-14T22:13:00Z", "9999-99-99", "\u0000"]))
    any_json = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                            max_leaves=12)

    def from_schema(schema: dict, depth: int = 0):
        if "$ref" in schema:
            return from_schema(components[schema["$ref"].rsplit("/", 1)[1]], depth)
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return st.one_of([from_schema(s, depth) for s in schema[key]])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            required = set(schema.get("required", ()))
            fields = {name: from_schema(sub, depth + 1) for name, sub in props.items()}

            @st.composite
            def obj(draw):
                out = {}
                for name, strat in fields.items():
                    if name in required or draw(st.booleans()):
                        out[name] = draw(strat)
                return out
            return obj()
        if kind == "array":
            return st.lists(from_schema(schema.get("items", {}), depth + 1), max_size=5 if depth else 30)
        if kind == "number":
            lo, hi = schema.get("minimum"), schema.get("maximum")
            return st.one_of(st.floats(lo, hi, allow_nan=False, allow_infinity=False), st.floats(allow_nan=False))
        if kind == "integer":
            return st.one_of(st.integers(946_684_800_000, 4_102_444_799_999), st.integers())
        if kind == "string":
            return st.text(max_size=40)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return any_json

    @st.composite
    def mutated(draw, base):
        value = draw(base)
        if isinstance(value, dict) and value and draw(st.integers(0, 3)) == 0:
            key = draw(st.sampled_from(sorted(value)))
            choice = draw(st.integers(0, 2))
            if choice == 0:
                del value[key]
            elif choice == 1:
                value[key] = draw(any_json)
            else:
                value[draw(st.text(min_size=1, max_size=10))] = draw(any_json)
        return value

    def auth():
        basic = lambda user, pw: "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()  # noqa: E731
        return st.one_of(
            st.just({"Authorization": f"Bearer {secret}"}),
            st.just({"Authorization": basic(device_id, secret)}),
            st.just({"Authorization": basic("someone-else", secret)}),
            st.just({"Authorization": f"Bearer {secret.split('.')[0]}.wrong"}),
            st.just({}),
            # printable ASCII: anything else is refused by the HTTP client before it is sent
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
                lambda t: {"Authorization": t.strip()}),
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
                lambda t: {"Authorization": ("Bearer " + t).strip()}),
        )

    operations = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            body_schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"))
            params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            operations.append((method.upper(), path, body_schema, params))

    query_value = st.one_of(st.text(max_size=20), st.floats(allow_nan=True).map(repr), st.integers().map(str),
                            st.just(device_id), st.just(osmand_id))

    @st.composite
    def request(draw):
        method, path, schema, params = draw(st.sampled_from(operations))
        headers = dict(draw(auth()))
        query = {}
        if params:
            chosen = draw(st.lists(st.sampled_from(params), unique=True, max_size=len(params)))
            query = {name: draw(query_value) for name in chosen}
            if draw(st.booleans()):
                query["id"] = draw(st.sampled_from([osmand_id, osmand_id, device_id]))
        kind = draw(st.integers(0, 9))
        # stdlib json: it writes integers past 64 bits, and Infinity, which a gateway must survive too
        if schema is not None and kind < 6:
            body = json.dumps(draw(mutated(from_schema(schema)))).encode()
        elif kind < 8:
            body = json.dumps(draw(any_json)).encode()
        else:
            body = draw(st.binary(max_size=200))
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "text/plain",
                                                        "application/x-www-form-urlencoded", "application/json"]))
        if method == "GET" and draw(st.booleans()):
            body = b""
        return method, path + ("?" + urlencode(query) if query else ""), headers, body

    return request()


# --------------------------------------------------------------------------- the run

def _start_gateway(work: Path):
    """A throw-away broker and gateway process on free loopback ports: (url, data dir, cleanups, process)."""
    import asyncio

    import httpx

    from core.kafka import ensure_topics
    from tests.integration.conftest import Broker

    broker = Broker(work / "kafka")
    broker.start()
    asyncio.run(ensure_topics(broker.bootstrap, 4))
    data_dir = work / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    # One source address sends every request: without a wide allowance, the unknown OsmAnd
    # identifiers it sends would soon get 429 for all OsmAnd requests and hide the paths behind.
    env.update(HOTSPOT_DATA_DIR=str(data_dir), HOTSPOT_KAFKA_BOOTSTRAP=broker.bootstrap,
               HOTSPOT_GATEWAY_OSMAND_UNKNOWN_BURST="1000000000")
    from tests.conftest import free_port

    port = free_port()
    proc = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).json()["kafka"] == "connected":
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit("gateway did not come up")
        time.sleep(0.2)  # waiting for the process to listen

    def cleanup():
        proc.terminate()
        proc.wait(timeout=30)
        broker.stop()
    return url, data_dir, [cleanup], proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running gateway on 127.0.0.1 (default: start a broker and a gateway)")
    parser.add_argument("--data-dir", help="with --url: the gateway's data dir, to register a fuzzing device")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import httpx
    from hypothesis import HealthCheck, Phase, given, seed, settings

    from gateway.credentials import CredentialStore, path_in

    cleanups, proc = [], None
    work = Path(tempfile.mkdtemp(prefix="gateway-fuzz-"))
    if args.url:
        host = urlparse(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("loopback only: --url must point at 127.0.0.1")
        if not args.data_dir:
            raise SystemExit("--url needs --data-dir (to register the fuzzing device)")
        url, data_dir = args.url.rstrip("/"), Path(args.data_dir)
    else:
        url, data_dir, cleanups, proc = _start_gateway(work)
    try:
        store = CredentialStore(path_in(data_dir))
        device_id = f"fuzz-{os.getpid()}"
        _, secret = store.add(device_id, "device")
        _, osmand_id = store.add(f"{device_id}-osmand", "device", osmand=True)
        store.close()
        client = httpx.Client(base_url=url, timeout=120)
        spec = client.get("/openapi.json").json()
        requests = _strategies(spec, device_id, secret, osmand_id)
        counts: Counter = Counter()
        statuses: Counter = Counter()
        counts_unsent: Counter = Counter()
        failures: list[str] = []
        started = time.monotonic()

        @seed(args.seed)
        @settings(max_examples=args.requests, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(requests)
        def fuzz(req):
            if sum(counts.values()) >= args.requests:
                return
            method, path, headers, body = req
            try:
                r = client.request(method, path, headers=headers, content=body)
                status = r.status_code
            except httpx.LocalProtocolError:
                counts_unsent["refused by the client"] += 1  # never left this process: not a request
                return
            except httpx.HTTPError as exc:
                counts["no answer"] += 1
                failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
                return
            statuses[status] += 1
            counts[f"{status // 100}xx"] += 1
            if status >= 500 and len(failures) < 20:
                failures.append(f"{status} {method} {path} headers={headers} body={body[:300]!r} -> {r.text[:300]}")
            done = sum(counts.values())
            if done % 2000 == 0:
                print(f"  {done:,} requests, {dict(sorted(counts.items()))}", file=sys.stderr, flush=True)

        round_ = 0
        while sum(counts.values()) < args.requests and round_ < 10:
            seed(args.seed + round_)(fuzz)()
            round_ += 1
        elapsed = time.monotonic() - started
        health = client.get("/healthz").json()
        alive = proc is None or proc.poll() is None
        total = sum(counts.values())
        print(f"{total:,} generated requests in {elapsed:.1f}s ({total / elapsed:,.0f}/s) from {len(spec['paths'])} "
              f"paths of /openapi.json")
        print("by status class: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
        print("by status: " + ", ".join(f"{k} {v:,}" for k, v in sorted(statuses.items())))
        print(f"gateway alive: {alive}; /healthz: {health}; generated but not sendable: {dict(counts_unsent)}")
        for line in failures:
            print("FAIL " + line)
        ok = counts["5xx"] == 0 and counts["no answer"] == 0 and alive and total >= args.requests
        print("PASS: zero 5xx" if ok else "FAILED")
        return 0 if ok else 1
    finally:
        for cleanup in cleanups:
            cleanup()


if __name__ == "__main__":
    sys.exit(main())
