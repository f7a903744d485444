"""Simulated officers through the device gateway's HTTP API: `hotspot simulate --via gateway`.

Owns driving the system the way phones do, not the way `hotspot simulate
--live` does (straight into Kafka). Each simulated officer gets a real device
credential, registered in the same credentials database and with the same
store functions as `hotspot devices add`, under the simulator's device id
(sim-001, ...) so visits in the system line up with the simulator's truth.
Officers are given a protocol in turn (native Bearer API, OwnTracks HTTP mode
with Basic auth, OsmAnd query strings), and each one's pings are sent when
their delivery time comes, one sender per device so a device's pings keep
their order; what is due together for a device goes in one request (OsmAnd
carries one position per request). 5xx answers and connection errors are
retried with exponential back-off and jitter, 429 waits for Retry-After, and
for a few seconds after registration 401 (or OsmAnd's unknown device) is
retried too, since a running gateway re-reads credentials about once a second.
With `speed="max"` nothing waits for the clock: every ping is sent as fast as
the gateway accepts it.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

log = logging.getLogger("hotspot.simulate")

PROTOCOLS = ("native", "owntracks", "osmand")
MPS_KNOTS = 3600.0 / 1852.0
MAX_BATCH = 100                 # pings per native/OwnTracks request
REGISTRATION_GRACE_S = 5.0      # a running gateway sees a new credential within ~1 s
MAX_RETRY_AFTER_S = 60.0


@dataclass
class Stats:
    acknowledged: int = 0            # pings the gateway answered 2xx for (and did not reject)
    rejected: int = 0                # pings refused with a 4xx or a per-item rejection: not retried
    failed: int = 0                  # pings given up on after `max_retries` failures
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_protocol: dict[str, int] = field(default_factory=dict)
    first_problem: str | None = None

    def problem(self, text: str) -> None:
        if self.first_problem is None:
            self.first_problem = text
            log.warning("%s", text)


def register_devices(data_dir: Path, device_ids: Sequence[str], osmand: Sequence[str] = ()) -> dict[str, str]:
    """A fresh secret for each device id, as `hotspot devices add --json` issues it.

    Ids in `osmand` are registered as `hotspot devices add --osmand` does: their
    secret is the random OsmAnd identifier they send as `id`.

    The store keeps only hashes, so the secret of an id registered by an earlier
    run cannot be recovered: such an id is revoked and registered again, which
    is what the CLI asks an operator to do for a new secret.
    """
    from gateway.credentials import CredentialError, CredentialStore, path_in

    store = CredentialStore(path_in(data_dir))
    try:
        secrets = {}
        for device_id in device_ids:
            for_osmand = device_id in osmand
            try:
                _, secret = store.add(device_id, "device", osmand=for_osmand)
            except CredentialError:
                store.revoke(device_id, "device")
                _, secret = store.add(device_id, "device", osmand=for_osmand)
            secrets[device_id] = secret
        return secrets
    finally:
        store.close()


def assign_protocols(device_ids: Sequence[str], protocols: Sequence[str]) -> dict[str, str]:
    """Protocols handed to devices in turn: sim-001 the first, sim-002 the second, ..."""
    return {d: protocols[i % len(protocols)] for i, d in enumerate(device_ids)}


# --------------------------------------------------------------------------- requests

def _native(p) -> dict:
    item = {"ts_ms": int(p.ts_ms), "lat": p.lat, "lon": p.lon, "accuracy_m": p.accuracy_m,
            "speed_mps": p.speed_mps, "heading_deg": p.heading_deg, "altitude_m": p.altitude_m,
            "battery": None if p.battery is None else p.battery / 100.0}
    return {k: v for k, v in item.items() if v is not None and v == v}


def _owntracks(p) -> dict:
    msg = {"_type": "location", "tid": p.device_id[-2:], "lat": p.lat, "lon": p.lon, "tst": p.ts_ms / 1000,
           "acc": p.accuracy_m, "alt": p.altitude_m, "cog": p.heading_deg,
           "vel": None if p.speed_mps is None else p.speed_mps * 3.6, "batt": p.battery}
    return {k: v for k, v in msg.items() if v is not None and v == v}


def _osmand(p, identifier: str) -> dict:
    params = {"id": identifier, "lat": repr(p.lat), "lon": repr(p.lon), "timestamp": str(int(p.ts_ms)),
              "accuracy": p.accuracy_m, "altitude": p.altitude_m, "bearing": p.heading_deg,
              "speed": None if p.speed_mps is None else p.speed_mps * MPS_KNOTS, "batt": p.battery}
    return {k: (v if isinstance(v, str) else repr(v)) for k, v in params.items() if v is not None and v == v}


def build_request(protocol: str, device_id: str, secret: str, pings: list) -> tuple[str, str, dict, bytes | None]:
    """(method, path with query, headers, body) of one request carrying `pings` (OsmAnd: exactly one)."""
    import base64

    import orjson

    if protocol == "native":
        return ("POST", "/v1/pings", {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
                orjson.dumps([_native(p) for p in pings]))
    if protocol == "owntracks":
        basic = base64.b64encode(f"{device_id}:{secret}".encode()).decode()
        body = [_owntracks(p) for p in pings]
        return ("POST", f"/v1/owntracks?u=sim&d={device_id}",
                {"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
                orjson.dumps(body[0] if len(body) == 1 else body))
    if protocol == "osmand":
        (p,) = pings
        return "GET", "/v1/osmand?" + urlencode(_osmand(p, secret)), {}, None  # the identifier is the secret
    raise ValueError(f"unknown protocol {protocol!r}")


# --------------------------------------------------------------------------- sending

class GatewayDriver:
    """Sends simulated pings to one gateway with bounded concurrency and retries."""

    def __init__(self, url: str, secrets: dict[str, str], protocols: dict[str, str], *, concurrency: int = 16,
                 max_retries: int = 8, stop: asyncio.Event | None = None, registered_at: float | None = None):
        import httpx

        self.url = url.rstrip("/")
        self.secrets = secrets
        self.protocols = protocols
        self.max_retries = max_retries
        self.stop = stop or asyncio.Event()
        self.registered_at = time.monotonic() if registered_at is None else registered_at
        self.stats = Stats()
        self._slots = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(base_url=self.url, timeout=30.0,
                                         limits=httpx.Limits(max_connections=concurrency,
                                                             max_keepalive_connections=concurrency))

    async def close(self) -> None:
        await self._client.aclose()

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds` unless stopped first; False when stopped."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
            return False
        except asyncio.TimeoutError:
            return True

    async def deliver(self, device_id: str, pings: list) -> None:
        """One request for `pings`, retried until answered for good, given up on, or stopped."""
        import httpx
        import orjson

        protocol = self.protocols[device_id]
        method, path, headers, body = build_request(protocol, device_id, self.secrets[device_id], pings)
        failures = 0
        while not self.stop.is_set():
            async with self._slots:
                self.stats.requests += 1
                try:
                    r = await self._client.request(method, path, headers=headers, content=body)
                    status, text, retry_after = r.status_code, r.text, r.headers.get("retry-after")
                except httpx.TransportError as exc:
                    status, text, retry_after = None, f"{type(exc).__name__}: {exc}", None
            if status is not None and 200 <= status < 300:
                rejected = orjson.loads(text).get("rejected", []) if protocol == "native" else []
                if rejected:
                    self.stats.problem(f"{device_id}: gateway rejected a ping: {rejected[0]}")
                self.stats.rejected += len(rejected)
                self.stats.acknowledged += len(pings) - len(rejected)
                self.stats.by_protocol[protocol] = self.stats.by_protocol.get(protocol, 0) + len(pings) - len(rejected)
                return
            if status == 429:
                self.stats.rate_limited += 1
                try:
                    wait_s = min(max(float(retry_after or 1), 0.1), MAX_RETRY_AFTER_S)
                except ValueError:
                    wait_s = 1.0
                if not await self._pause(wait_s):
                    return
                continue
            just_registered = time.monotonic() - self.registered_at < REGISTRATION_GRACE_S
            if just_registered and (status == 401 or (status == 400 and "unknown_device" in text)):
                if not await self._pause(0.25):  # the gateway has not re-read the credentials yet
                    return
                continue
            if status is None or status >= 500:
                failures += 1
                self.stats.retries += 1
                if failures > self.max_retries:
                    self.stats.failed += len(pings)
                    self.stats.problem(f"{device_id}: gave up after {failures} attempts: {status or text}")
                    return
                backoff_s = min(0.2 * 2 ** (failures - 1), 10.0) * random.uniform(0.5, 1.0)
                if not await self._pause(backoff_s):
                    return
                continue
            self.stats.rejected += len(pings)
            self.stats.problem(f"{device_id} ({protocol}): HTTP {status}: {text[:200]}")
            return

    async def run_device(self, device_id: str, queue: asyncio.Queue) -> None:
        """Send a device's pings in order; each request takes what is queued (one for OsmAnd)."""
        most = 1 if self.protocols[device_id] == "osmand" else MAX_BATCH
        done = False
        while not done:
            batch = [await queue.get()]
            while len(batch) < most and not queue.empty():
                batch.append(queue.get_nowait())
            if batch[-1] is None:
                batch.pop()
                done = True
            if batch:
                await self.deliver(device_id, batch)
            if self.stop.is_set():
                return


async def run_via_gateway(sim, url: str, secrets: dict[str, str], protocols: dict[str, str], *,
                          speed: str = "real", backlog_s: float = 0.0, concurrency: int = 16,
                          stop: asyncio.Event | None = None, registered_at: float | None = None,
                          progress: Callable[[Stats], None] | None = None) -> Stats:
    """Send the planned shift to the gateway; real time (`speed="real"`) or as fast as it accepts ("max").

    In real time the plan's clock starts `backlog_s` after its first shift start:
    what was due before then is sent at once, like phones catching up.
    """
    driver = GatewayDriver(url, secrets, protocols, concurrency=concurrency, stop=stop, registered_at=registered_at)
    queues: dict[str, asyncio.Queue] = {d: asyncio.Queue() for d in secrets}
    senders = [asyncio.create_task(driver.run_device(d, q), name=f"sim-{d}") for d, q in queues.items()]
    started_mono = time.monotonic()
    clock_ms = sim.config.start_ms + int(backlog_s * 1000)
    last_report = started_mono
    try:
        for p in sim.pings():
            if driver.stop.is_set():
                break
            if speed != "max":
                wait_s = (p.delivered_ms - clock_ms) / 1000 - (time.monotonic() - started_mono)
                if wait_s > 0 and not await driver._pause(wait_s):  # real-time pacing
                    break
            queues[p.device_id].put_nowait(p)
            if progress is not None and time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                progress(driver.stats)
        for q in queues.values():
            q.put_nowait(None)
        await asyncio.gather(*senders)
    finally:
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        await driver.close()
    return driver.stats
