"""The officer app's API (issue 14): duty, nearby hot spots, directions, activity, status.

`install(app, state, settings)` is the one hook `gateway.main` calls: it makes
the session store (refusing to start without an acceptable secret key outside
development), the sign-in limiter and the `OfficerService`, and includes the
routers of `gateway.auth` and this module. `start`/`stop` run from the
gateway's lifespan.

What the routes know, and from where (so every gateway instance agrees):

- hot spots: the compacted `hotspots` topic (core.feeds.HotspotFeed,
  as the worker follows it), centroids precomputed at each change;
- trial schedule: the compacted `allocations` topic (`hotspot allocate
  --publish`); a hot spot's arm today is that of the allocation whose trial
  day contains now;
- assignments made today (daily caps, each officer's latest) and duty state:
  the `assignments` and `activity` topics, followed from 24 h back; what this
  instance publishes is applied at once as well (ids make the echo harmless);
- today's dosage and each officer's open visit: ClickHouse, through
  gateway.dosage (a background snapshot; its age is in every answer that
  uses it).

The choice itself is processors.direction's (pure): eligibility, weights and
the seeded draw, recorded with the assignment (seed, eligible ids, weights).

Over 400 lines on purpose: the routes and the `OfficerService` whose state they
share (feeds, daily caps, duty, each officer's latest assignment) change
together; the pure rule, the ClickHouse reads, sessions and idempotency are
already in their own modules.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from core import topics
from gateway import auth
from gateway.deps import AnyUser, ApiError, OfficerUser
from gateway.idempotency import MAX_KEY_CHARS
from gateway.publisher import KafkaUnavailable
from gateway.ratelimit import RateLimiter
from gateway.sessions import SessionUser
from processors import direction as dirn
from core.tasks import cancel_and_wait

log = logging.getLogger(__name__)
router = APIRouter(tags=["officer"])

DAY_MS = 86_400_000
FOLLOW_BACK_MS = DAY_MS  # the assignments and activity topics are read from this far back at start


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(status: int, body: Any, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


@dataclass
class Duty:
    on_duty: bool
    since_ms: int


class OfficerService:
    """What the officer routes read and write; one per gateway process (see the module doc)."""

    def __init__(self, settings, *, follow: bool):
        self.settings = settings
        self.follow = follow
        self.policy = dirn.Policy(settings.directions_max_distance_m, settings.directions_daily_cap,
                                  settings.directions_distance_scale_m, settings.directions_default_target_minutes)
        self.categories = dict(settings.activity_categories)
        self.candidates: list[dirn.Candidate] = []
        self.table = dirn.table_of([])
        self._lat = np.zeros(0)
        self._lon = np.zeros(0)
        self.by_id: dict[str, dirn.Candidate] = {}
        self.allocations: dict[str, dict] = {}
        self.assigned: dict[str, Counter] = {}       # trial day -> hot spot -> assignments
        self.latest: dict[str, dict] = {}           # user -> latest Assignment record
        self.duty: dict[str, Duty] = {}
        self._seen: set[str] = set()                # assignment and activity ids applied
        self.assignment_codec = self.activity_codec = None
        self.dosage = None
        self.idempotency = None
        self._feeds: list = []
        self._tasks: list[asyncio.Task] = []
        # Directions wait until both the hot spots and the schedule are read: with the hot spots alone a
        # control hot spot could be offered before the gateway knows there is a trial.
        self.ready = not follow

    # ---- hot spots and schedule ------------------------------------------------
    def set_hotspots(self, records) -> None:
        self.table = dirn.table_of(dirn.candidates_from_records(records))
        cands = list(self.table.candidates)
        self.candidates = cands
        self.by_id = {c.id: c for c in cands}
        self._lat = np.array([c.lat for c in cands], dtype=float)
        self._lon = np.array([c.lon for c in cands], dtype=float)

    def distances_m(self, lat: float, lon: float) -> np.ndarray:
        """Distance from (lat, lon) to every candidate's centroid (processors.geo's approximation, vectorised)."""
        from processors.geo import M_PER_DEG, M_PER_DEG_LAT, RAD

        dy = (self._lat - lat) * M_PER_DEG_LAT
        dx = (self._lon - lon) * M_PER_DEG * np.cos((self._lat + lat) * (0.5 * RAD))
        return np.hypot(dx, dy)

    def day(self, now_ms: int) -> tuple[str, int, int]:
        """The trial day containing now: (YYYY-MM-DD, start ms, end ms), from the schedule when it covers now."""
        for a in self.allocations.values():
            if a["starts_ms"] <= now_ms < a["ends_ms"]:
                return a["day"], a["starts_ms"], a["ends_ms"]
        from processors.allocation import trial_day, trial_day_bounds

        day = trial_day(dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc))
        start, end = trial_day_bounds(day)
        return day.isoformat(), int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def day_bounds(self, now_ms: int) -> tuple[int, int]:
        _, start, end = self.day(now_ms)
        return start, end

    def today(self, user: str | None, now_ms: int) -> tuple[dirn.Today, str]:
        day = self.day(now_ms)[0]
        arms = dirn.arms_at(self.allocations.values(), now_ms)
        snap = self.dosage.snapshot if self.dosage is not None else None
        known = snap is not None and snap.known and not self.dosage.stale
        last = self.latest.get(user) if user else None
        last_id = last["hotspot_id"] if last is not None and last.get("trial_day") == day else None
        return dirn.Today(arms=arms, assignments=self.assigned.get(day, Counter()),
                          minutes=snap.minutes if known else {}, dosage_known=known, last_assigned=last_id), day

    # ---- assignments and activity (own and from Kafka) -------------------------------
    def apply_assignment(self, a: dict) -> None:
        if a["assignment_id"] in self._seen:
            return
        self._seen.add(a["assignment_id"])
        day = a.get("trial_day") or self.day(a["assigned_ms"])[0]
        self.assigned.setdefault(day, Counter())[a["hotspot_id"]] += 1
        old = self.latest.get(a["user"])
        if old is None or old["assigned_ms"] <= a["assigned_ms"]:
            self.latest[a["user"]] = {**a, "trial_day": day}

    def apply_activity(self, a: dict) -> None:
        if a["activity_id"] in self._seen:
            return
        self._seen.add(a["activity_id"])
        if a["kind"] in ("duty_on", "duty_off"):
            old = self.duty.get(a["user"])
            if old is None or old.since_ms <= a["ts_ms"]:
                self.duty[a["user"]] = Duty(a["kind"] == "duty_on", a["ts_ms"])

    def _prune(self, now_ms: int) -> None:
        day = self.day(now_ms)[0]
        for old in [d for d in self.assigned if d < day]:
            del self.assigned[old]
        if len(self._seen) > 1_000_000:
            self._seen.clear()  # a repeat this old is already counted in a pruned day

    # ---- lifecycle ------------------------------------------------------------------
    async def start(self, state) -> None:
        if not self.follow:
            return
        from core.feeds import CompactedFeed, HotspotFeed

        bootstrap = state.settings.bootstrap_servers

        def hotspots_changed(current, _retired):
            self.set_hotspots(current.values())

        def allocations_changed(current, _retired):
            self.allocations = dict(current)

        async def start_feeds():
            # Kafka may be away at the gateway's start: keep trying in the background, the routes answer
            # from what is known meanwhile (no hot spots: 409 no_eligible_hotspot).
            for feed in (HotspotFeed(bootstrap, on_change=hotspots_changed),
                         CompactedFeed(bootstrap, on_change=allocations_changed, topic=topics.ALLOCATIONS,
                                       schema="Allocation")):
                while True:
                    try:
                        await feed.start()
                        self._feeds.append(feed)
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        log.warning("following %s: %s; retrying", feed.topic, exc)
                        await asyncio.sleep(2.0)  # back-off while Kafka is away
            self.ready = True
            await self._follow_recent(bootstrap)

        self._tasks.append(asyncio.create_task(start_feeds(), name="officer-feeds"))
        if self.dosage is not None:
            self.dosage.start()

    async def _follow_recent(self, bootstrap: str) -> None:
        """Read `assignments` and `activity` from 24 h back, then follow them."""
        from aiokafka import TopicPartition

        from core.codecs import codec_for
        from core.kafka import make_consumer

        codecs = {topics.ASSIGNMENTS: (codec_for("Assignment"), self.apply_assignment),
                  topics.ACTIVITY: (codec_for("Activity"), self.apply_activity)}
        while True:
            consumer = make_consumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                     auto_offset_reset="earliest")
            try:
                await consumer.start()
                tps = []
                for topic in codecs:
                    parts = consumer.partitions_for_topic(topic) or set()
                    tps += [TopicPartition(topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                since = await consumer.offsets_for_times({tp: _now_ms() - FOLLOW_BACK_MS for tp in tps})
                for tp in tps:
                    found = since.get(tp)
                    if found is None:
                        await consumer.seek_to_end(tp)
                    else:
                        consumer.seek(tp, found.offset)
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                    for tp, records in batches.items():
                        codec, apply = codecs[tp.topic]
                        for r in records:
                            try:
                                apply(codec.decode(r.value))
                            except Exception as exc:  # one unreadable record must not stop the follower
                                log.warning("skipping unreadable %s record: %s", tp.topic, exc)
                    self._prune(_now_ms())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("following assignments/activity: %s; retrying", exc)
                await asyncio.sleep(2.0)  # back-off while Kafka is away
            finally:
                await consumer.stop()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()
        for feed in self._feeds:
            await feed.stop()
        self._feeds.clear()
        if self.dosage is not None:
            await self.dosage.stop()
        if self.idempotency is not None:
            self.idempotency.close()


def install(app, state, settings) -> None:
    from gateway.dosage import DosageReader, make_reader
    from gateway.idempotency import FILE_NAME, IdempotencyStore
    from core.codecs import codec_for

    data_dir = state.settings.data_dir
    state.sessions = auth.build_sessions(settings, data_dir)
    state.signin_limiter = RateLimiter(settings.signin_per_s, settings.signin_burst)
    # Only a gateway with its own Kafka producer follows the topics; tests pass a producer and set the state.
    service = OfficerService(settings, follow=state.publisher._owns_producer)
    service.assignment_codec = codec_for("Assignment", state.settings)
    service.activity_codec = codec_for("Activity", state.settings)
    service.idempotency = IdempotencyStore(data_dir / FILE_NAME, ttl_s=settings.idempotency_ttl_s)
    service.dosage = DosageReader(make_reader(settings), service.day_bounds, database=settings.clickhouse_database,
                                  interval_s=settings.dosage_cache_s)
    state.officer = service
    app.include_router(auth.router)
    app.include_router(router)


async def start(state) -> None:
    """Background work of the officer routes (feeds, dosage); called from the gateway's lifespan."""
    if state.officer is not None:
        await state.officer.start(state)


async def stop(state) -> None:
    if state.officer is not None:
        await state.officer.stop()
    if state.sessions is not None:
        state.sessions.close()


def service_of(request: Request) -> OfficerService:
    return request.app.state.gateway.officer


Service = Annotated[OfficerService, Depends(service_of)]


async def _publish(state, topic: str, key: str, codec, record: dict) -> None:
    try:
        await state.publisher.send_to(topic, [(key.encode(), codec.encode(record))])
    except KafkaUnavailable as exc:
        log.warning("answering 503: %s", exc)
        raise ApiError(503, "kafka_unavailable", f"not stored, send again: {exc}", headers={"Retry-After": "5"}) from None


def _freshness(service: OfficerService) -> dict:
    snap = service.dosage.snapshot if service.dosage is not None else None
    known = snap is not None and snap.known and not service.dosage.stale
    out = {"dosage_known": known, "dosage_as_of": _iso(int(snap.read_at_s * 1000)) if snap and snap.read_at_s else None}
    if not known:
        out["dosage_problem"] = (snap.problem if snap is not None else None) or "today's patrol time is not available"
    return out


# --------------------------------------------------------------------------- duty

class DutyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    on_duty: bool
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)


@router.post("/v1/duty", summary="Go on or off duty (published on topic activity as duty_on / duty_off)")
async def post_duty(body: DutyIn, user: OfficerUser, service: Service, request: Request) -> Response:
    now = _now_ms()
    current = service.duty.get(user.name)
    if current is not None and current.on_duty == body.on_duty:
        return _json(200, {"on_duty": current.on_duty, "since": _iso(current.since_ms)})
    record = {"activity_id": f"duty-{secrets.token_hex(10)}", "user": user.name, "device_id": user.device_id,
              "ts_ms": now, "kind": "duty_on" if body.on_duty else "duty_off", "hotspot_id": None,
              "assignment_id": None, "note": None, "lat": body.lat, "lon": body.lon, "attributes": {}}
    await _publish(request.app.state.gateway, topics.ACTIVITY, user.name, service.activity_codec, record)
    service.apply_activity(record)
    return _json(200, {"on_duty": body.on_duty, "since": _iso(now)})


@router.get("/v1/duty", summary="The officer's duty state")
async def get_duty(user: OfficerUser, service: Service) -> Response:
    current = service.duty.get(user.name)
    return _json(200, {"on_duty": bool(current and current.on_duty), "since": _iso(current.since_ms) if current else None})


# --------------------------------------------------------------------------- nearby and directions

def _check_position(lat: float, lon: float) -> None:
    if not (-90 <= lat <= 90) or not (-180 <= lon <= 180) or (lat == 0 and lon == 0):
        raise ApiError(422, "invalid_field", "lat must be in [-90, 90], lon in [-180, 180], not (0, 0)", field="lat")


@router.get("/v1/hotspots/nearby", summary="Nearest active hot spots with distance, bearing, briefing and today's "
            "patrol minutes (control hot spots are left out during a trial)")
async def nearby(user: OfficerUser, service: Service, lat: float = Query(...), lon: float = Query(...),
                 limit: int = Query(10, ge=1, le=100)) -> Response:
    _check_position(lat, lon)
    if not service.ready:
        raise ApiError(503, "starting", "the gateway is still reading the hot spots and the trial schedule",
                       headers={"Retry-After": "2"})
    now = _now_ms()
    today, _ = service.today(user.name, now)
    snap = service.dosage.snapshot if service.dosage is not None else None
    out = []
    if service.candidates:
        dist = service.distances_m(lat, lon)
        for i in np.argsort(dist, kind="stable"):
            c = service.candidates[int(i)]
            if not dirn.listed(c, today, now):
                continue
            out.append({"id": c.id, "name": c.name, "briefing": c.briefing, "briefing_first_line": first_line(c.briefing),
                        "target_minutes": dirn.target_of(c, service.policy), "distance_m": round(float(dist[i]), 1),
                        "bearing_deg": round(dirn.bearing_deg(lat, lon, c.lat, c.lon), 1),
                        "minutes_today": round(snap.minutes.get(c.id, 0.0), 1) if today.dosage_known and snap else None,
                        "arm": (today.arms or {}).get(c.id)})
            if len(out) >= limit:
                break
    return _json(200, {"hotspots": out, **_freshness(service)})


class DirectionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lat: float = Field(..., ge=-90, le=90)
    lon: float = Field(..., ge=-180, le=180)
    accuracy_m: float | None = Field(None, ge=0)


@router.post("/v1/directions", status_code=201, summary="Direct the officer to a randomised eligible hot spot and "
             "record the assignment (seed, eligible set and weights)",
             responses={409: {"description": "no eligible hot spot near the officer"}})
async def directions(body: DirectionsIn, user: OfficerUser, service: Service, request: Request) -> Response:
    _check_position(body.lat, body.lon)
    if not service.ready:
        raise ApiError(503, "starting", "the gateway is still reading the hot spots and the trial schedule",
                       headers={"Retry-After": "2"})
    now = _now_ms()
    today, day = service.today(user.name, now)
    dist = service.distances_m(body.lat, body.lon)
    seed = secrets.randbits(63)
    choice = dirn.choose_vectorised(service.table, dist, today, service.policy, now, seed)
    if choice is None:
        raise ApiError(409, "no_eligible_hotspot",
                       f"no hot spot within {service.policy.max_distance_m:,.0f} m is eligible now (treated today, under "
                       "its daily cap, with patrol time still needed)",
                       extra={"within_reach": int((dist <= service.policy.max_distance_m).sum())})
    o = choice.chosen
    c = o.candidate
    arm = (today.arms or {}).get(c.id)
    record = {"assignment_id": secrets.token_hex(12), "user": user.name, "device_id": user.device_id,
              "hotspot_id": c.id, "assigned_ms": now, "officer_lat": body.lat, "officer_lon": body.lon,
              "distance_m": round(o.distance_m, 1), "candidates": len(choice.eligible), "trial_day": day,
              "arm": arm, "seed": seed, "eligible": choice.eligible, "weights": choice.weights,
              "dosage_known": today.dosage_known, "target_minutes": o.target_minutes}
    await _publish(request.app.state.gateway, topics.ASSIGNMENTS, user.name, service.assignment_codec, record)
    service.apply_assignment(record)
    return _json(201, {
        "assignment_id": record["assignment_id"],
        "hotspot": {"id": c.id, "name": c.name, "briefing": c.briefing, "why": dirn.why(choice, today, arm),
                    "target_minutes": o.target_minutes},
        "distance_m": round(o.distance_m, 1), "bearing_deg": round(dirn.bearing_deg(body.lat, body.lon, c.lat, c.lon), 1),
        "geo_uri": f"geo:{c.lat:.6f},{c.lon:.6f}",
        "map_url": f"https://www.openstreetmap.org/?mlat={c.lat:.6f}&mlon={c.lon:.6f}#map=17/{c.lat:.6f}/{c.lon:.6f}",
        "seed": seed, "eligible": choice.eligible, "weights": choice.weights, "assigned_at": _iso(now),
        "trial_day": day, "arm": arm, **_freshness(service),
    })


# --------------------------------------------------------------------------- activity

@router.get("/v1/activity/categories", summary="The activity log's categories (setting activity_categories)")
async def categories(user: AnyUser, service: Service) -> Response:
    return _json(200, {"categories": [{"id": k, "label": v} for k, v in service.categories.items()]})


class ActivityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: str = Field(..., min_length=1, max_length=MAX_KEY_CHARS, description="The app's id of the entry: its idempotency key.")
    ts: str | float = Field(..., description="When: ISO-8601 with offset, or epoch seconds or milliseconds.")
    kind: str = Field(..., description="A category id from GET /v1/activity/categories.")
    note: str = Field("", max_length=4000)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    assignment_id: str | None = Field(None, max_length=64)


@router.post("/v1/activity", status_code=202, summary="A patrol activity log entry; client_id makes a repeat harmless")
async def post_activity(body: ActivityIn, user: OfficerUser, service: Service, request: Request) -> Response:
    from gateway.protocols import FieldError, timestamp_ms

    if body.kind not in service.categories:
        raise ApiError(422, "invalid_field", f"kind must be one of {', '.join(service.categories)}", field="kind")
    try:
        ts = timestamp_ms(body.ts, "ts")
    except FieldError as exc:
        raise ApiError(422, "invalid_field", exc.problem, field="ts") from None
    store = service.idempotency
    async with store.lock(user.name, "activity:" + body.client_id):
        stored = store.get(user.name, "activity:" + body.client_id)
        if stored is not None:
            return Response(stored[1], status_code=stored[0], media_type="application/json")
        hotspot_id = None
        latest = service.latest.get(user.name)
        if body.assignment_id and latest is not None and latest["assignment_id"] == body.assignment_id:
            hotspot_id = latest["hotspot_id"]
        elif service.dosage is not None and (visit := service.dosage.snapshot.open_visits.get(user.device_id)):
            hotspot_id = visit.hotspot_id
        activity_id = hashlib.sha256(f"{user.name}\0{body.client_id}".encode()).hexdigest()[:24]
        record = {"activity_id": activity_id, "user": user.name, "device_id": user.device_id, "ts_ms": ts,
                  "kind": body.kind, "hotspot_id": hotspot_id, "assignment_id": body.assignment_id,
                  "note": body.note or None, "lat": body.lat, "lon": body.lon,
                  "attributes": {"client_id": body.client_id}}
        await _publish(request.app.state.gateway, topics.ACTIVITY, user.name, service.activity_codec, record)
        service.apply_activity(record)
        answer = orjson.dumps({"activity_id": activity_id, "hotspot_id": hotspot_id, "stored": True})
        store.put(user.name, "activity:" + body.client_id, 202, answer)
    store.release(user.name, "activity:" + body.client_id)
    return Response(answer, status_code=202, media_type="application/json")


# --------------------------------------------------------------------------- status

@router.get("/v1/me/status", summary="Duty, current assignment, the visit under way and today's minutes per hot spot "
            "(from ClickHouse: as fresh as dosage_as_of, plus the worker's checkpoint interval)")
async def me_status(user: OfficerUser, service: Service) -> Response:
    now = _now_ms()
    day = service.day(now)[0]
    duty = service.duty.get(user.name)
    snap = service.dosage.snapshot if service.dosage is not None else None
    mine = (snap.device_minutes.get(user.device_id, {}) if snap is not None else {})
    latest = service.latest.get(user.name)
    assignment = None
    if latest is not None and latest.get("trial_day") == day:
        c = service.by_id.get(latest["hotspot_id"])
        assignment = {"assignment_id": latest["assignment_id"], "hotspot_id": latest["hotspot_id"],
                      "name": c.name if c else latest["hotspot_id"], "assigned_at": _iso(latest["assigned_ms"]),
                      "target_minutes": latest.get("target_minutes") or (dirn.target_of(c, service.policy) if c else None),
                      "minutes_today": round(mine.get(latest["hotspot_id"], 0.0), 1)}
    visit = None
    open_visit = snap.open_visits.get(user.device_id) if snap is not None else None
    if open_visit is not None:
        c = service.by_id.get(open_visit.hotspot_id)
        visit = {"hotspot_id": open_visit.hotspot_id, "name": c.name if c else open_visit.hotspot_id,
                 "entered_at": _iso(open_visit.entered_ms), "minutes_so_far": round(open_visit.dwell_s / 60, 1),
                 "target_minutes": dirn.target_of(c, service.policy) if c else service.policy.default_target_minutes}
    return _json(200, {"on_duty": bool(duty and duty.on_duty), "assignment": assignment, "visit": visit,
                       "today": [{"hotspot_id": h, "minutes": round(m, 1)} for h, m in sorted(mine.items())],
                       **_freshness(service)})


# --------------------------------------------------------------------------- pings under the officer's session

async def ping_device(request: Request):
    """The device of a `POST /v1/pings`: a Bearer device credential, or else an officer's session (cookie and
    CSRF header), whose pings are stored under the officer's own device `app-<name>`."""
    from gateway.deps import bearer_device

    if request.headers.get("authorization") or not request.cookies.get(auth.COOKIE):
        return await bearer_device(request)  # devices, and the 401 asking for a credential
    user: SessionUser = await auth.current_user(request)
    if user.role != "officer" or user.device_id is None:
        raise ApiError(403, "forbidden", f"role {user.role} sends no pings; officers do")
    state = request.app.state.gateway
    device = state.credentials.device(user.device_id)
    if device is None or device.revoked:
        raise ApiError(403, "forbidden", f"device {user.device_id} is revoked", field="device_id")
    return device


PingDevice = Annotated[Any, Depends(ping_device)]


async def idempotent(request: Request, scope: str, handler) -> Response:
    """Run `handler()` once per `Idempotency-Key` of `scope` (see gateway.idempotency); without the header, always."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return await handler()
    if not key or len(key) > MAX_KEY_CHARS:
        raise ApiError(400, "bad_header", f"Idempotency-Key must be 1-{MAX_KEY_CHARS} characters",
                       field="idempotency-key")
    store = request.app.state.gateway.officer.idempotency
    async with store.lock(scope, key):
        stored = store.get(scope, key)
        if stored is not None:
            return Response(stored[1], status_code=stored[0], media_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
        response = await handler()
        if 200 <= response.status_code < 300:
            store.put(scope, key, response.status_code, bytes(response.body))
    store.release(scope, key)
    return response
