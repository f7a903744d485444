"""Simulated officers tasked through the officer app's API (issue 14): `hotspot tasked`.

Owns driving the officer routes the way the web app does, so `hotspot run`
has tasked officers beside the untasked ones of `hotspot simulate --live`
(compliance and background presence then both have data). Each simulated
officer is a user of role officer (registered here, like `hotspot users add`),
and in a loop:

1. signs in (`POST /v1/session`), goes on duty (`POST /v1/duty`);
2. asks for a direction (`POST /v1/directions`) from where it stands;
3. walks there at `walk_mps`, sending a ping every `ping_interval_s` under its
   session (`POST /v1/pings` with the CSRF header and an `Idempotency-Key`,
   as the app's queue does), then patrols inside for the target minutes;
4. logs an activity (`POST /v1/activity`) and asks again.

With no eligible hot spot (409) it patrols where it is for a while and asks
again. Positions are a straight walk with a few metres of jitter: what is
tested here is the tasking path, not the motion model (processors.simulation
owns realistic motion for the untasked officers).
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from pathlib import Path

log = logging.getLogger("hotspot.tasked")

M_PER_DEG_LAT = 111_320.0


def register_officers(data_dir: Path, names: list[str]) -> dict[str, str]:
    """A fresh secret for each officer user (an existing one is revoked and issued again)."""
    from gateway.credentials import CredentialError, CredentialStore, path_in

    store = CredentialStore(path_in(data_dir))
    try:
        out = {}
        for name in names:
            try:
                _, secret = store.add(name, "user", "officer")
            except CredentialError:
                store.revoke(name, "user")
                _, secret = store.add(name, "user", "officer")
            out[name] = secret
        return out
    finally:
        store.close()


def _step(lat: float, lon: float, to_lat: float, to_lon: float, metres: float) -> tuple[float, float, float]:
    """Move up to `metres` from (lat, lon) toward the target; returns the new point and the distance left."""
    m_lon = M_PER_DEG_LAT * math.cos(math.radians(lat))
    dy, dx = (to_lat - lat) * M_PER_DEG_LAT, (to_lon - lon) * m_lon
    dist = math.hypot(dx, dy)
    if dist <= metres:
        return to_lat, to_lon, 0.0
    f = metres / dist
    return lat + dy * f / M_PER_DEG_LAT, lon + dx * f / m_lon, dist - metres


def _jitter(rng: random.Random, lat: float, lon: float, radius_m: float) -> tuple[float, float]:
    r, a = radius_m * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
    return lat + r * math.cos(a) / M_PER_DEG_LAT, lon + r * math.sin(a) / (M_PER_DEG_LAT * math.cos(math.radians(lat)))


class TaskedOfficer:
    def __init__(self, client, name: str, secret: str, start: tuple[float, float], rng: random.Random, *,
                 ping_interval_s: float = 5.0, walk_mps: float = 1.4, clock=time.time, sleep=asyncio.sleep):
        self.client, self.name, self.secret = client, name, secret
        self.lat, self.lon = start
        self.rng = rng
        self.ping_interval_s = ping_interval_s
        self.walk_mps = walk_mps
        self.clock, self.sleep = clock, sleep
        self.headers: dict[str, str] = {}
        self.assignments = 0
        self.pings = 0

    async def _request(self, method: str, path: str, *, extra_headers: dict | None = None, **kw):
        """One request, retried through 5xx, 429 and connection errors (the gateway or Kafka restarting).
        A retried ping keeps its Idempotency-Key, so a lost answer does not store it twice."""
        import httpx

        delay = 0.5
        headers = {**self.headers, **(extra_headers or {})}
        for _ in range(8):
            try:
                r = await self.client.request(method, path, headers=headers, **kw)
            except httpx.HTTPError as exc:
                log.info("%s %s: %s; retrying", method, path, exc)
            else:
                if r.status_code < 500 and r.status_code != 429:
                    return r
            await self.sleep(delay)  # back-off between retries
            delay = min(delay * 2, 10.0)
        return None

    async def sign_in(self) -> None:
        deadline = self.clock() + 15  # a running gateway sees a new user within about a second
        while True:
            r = await self._request("POST", "/v1/session", json={"name": self.name, "secret": self.secret})
            if r is not None and r.status_code == 200:
                self.headers = {"X-CSRF-Token": r.json()["csrf_token"]}
                break
            if self.clock() > deadline:
                raise RuntimeError(f"{self.name} could not sign in: {None if r is None else r.status_code}")
            await self.sleep(0.5)  # the credential is not visible to the gateway yet
        await self._request("POST", "/v1/duty", json={"on_duty": True, "lat": self.lat, "lon": self.lon})

    async def ping(self, speed_mps: float) -> None:
        body = [{"ts_ms": int(self.clock() * 1000), "lat": self.lat, "lon": self.lon, "accuracy_m": 8.0,
                 "speed_mps": speed_mps}]
        r = await self._request("POST", "/v1/pings", json=body, extra_headers={"Idempotency-Key": secrets.token_hex(8)})
        if r is not None and r.status_code == 401:
            await self.sign_in()  # the session ended (revoked, expired): sign in again
        elif r is not None and r.status_code == 202:
            self.pings += 1

    async def walk_to(self, lat: float, lon: float) -> None:
        left = float("inf")
        while left > 5:
            self.lat, self.lon, left = _step(self.lat, self.lon, lat, lon, self.walk_mps * self.ping_interval_s)
            self.lat, self.lon = _jitter(self.rng, self.lat, self.lon, 2.0)
            await self.ping(self.walk_mps)
            await self.sleep(self.ping_interval_s)  # the phone's reporting interval

    async def patrol(self, lat: float, lon: float, minutes: float) -> None:
        until = self.clock() + minutes * 60
        while self.clock() < until:
            self.lat, self.lon = _jitter(self.rng, lat, lon, 25.0)
            await self.ping(0.8)
            await self.sleep(self.ping_interval_s)  # the phone's reporting interval

    async def shift(self, until_s: float, categories: list[str]) -> None:
        await self.sign_in()
        while self.clock() < until_s:
            r = await self._request("POST", "/v1/directions", json={"lat": self.lat, "lon": self.lon})
            if r is None or r.status_code != 201:
                await self.patrol(self.lat, self.lon, 2.0)  # nothing eligible (or no answer): stay, ask again
                continue
            d = r.json()
            self.assignments += 1
            lat, lon = (float(v) for v in d["geo_uri"].removeprefix("geo:").split("?")[0].split(","))
            await self.walk_to(lat, lon)
            await self.patrol(lat, lon, float(d["hotspot"]["target_minutes"]) * self.rng.uniform(0.8, 1.3))
            await self._request("POST", "/v1/activity", json={
                "client_id": secrets.token_hex(8), "ts": int(self.clock() * 1000), "kind": self.rng.choice(categories),
                "note": "simulated", "lat": self.lat, "lon": self.lon, "assignment_id": d["assignment_id"]})
        await self._request("POST", "/v1/duty", json={"on_duty": False})


async def run(url: str, data_dir: Path, *, officers: int, hours: float, seed: int, prefix: str,
              start: tuple[float, float], spread_m: float = 800.0) -> list[TaskedOfficer]:
    import httpx

    names = [f"{prefix}-{i:03d}" for i in range(1, officers + 1)]
    creds = register_officers(data_dir, names)
    rng = random.Random(seed)
    until = time.time() + hours * 3600
    async with httpx.AsyncClient(base_url=url, timeout=30) as probe:
        r = await probe.get("/v1/activity/categories")  # 401 without a session: the default list is used
        categories = [c["id"] for c in r.json()["categories"]] if r.status_code == 200 else ["community", "other"]
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for _ in names]  # one cookie jar per officer
    team = [TaskedOfficer(c, n, creds[n], _jitter(rng, *start, spread_m), random.Random(rng.random()))
            for c, n in zip(clients, names)]
    try:
        await asyncio.gather(*(o.shift(until, categories) for o in team))
    finally:
        for c in clients:
            await c.aclose()
    return team
