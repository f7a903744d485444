"""The control room over HTTP: `/v1/live` (server-sent events), `/control` (the map page) and its side routes.

Each gateway instance follows Kafka with a consumer of its own (no consumer
group, nothing committed: every instance must see every record, and a restart
simply reads its bounded look-back again) and keeps what it reads in a
`gateway.livefeed.LiveHub`, which numbers the events and holds the ring buffer
that lets a client resume with `Last-Event-ID`. Where it starts reading:

* `hotspots`, `allocations` (compacted): from the beginning, the whole set;
* `patrol-events`: from the start of today's patrol day (today's minutes);
* `activity`, `assignments`: `live_duty_lookback_s` back (duty state, current tasks);
* `pings`: `live_ping_lookback_s` back (last positions).

Records read before the instance was live update the state silently; from then
on each one also becomes an event. Everything a supervisor can see here reveals
officers' locations, so every route is for `SupervisorUser` (supervisor, admin)
and every connection to the feed and every look at an officer's path is
audited (gateway/audit.py).
"""
from __future__ import annotations

import asyncio
import html
import logging
import time
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import orjson
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse

from core import topics
from core.tasks import cancel_and_wait
from gateway.deps import ApiError, SupervisorUser
from gateway.livefeed import LiveHub

log = logging.getLogger(__name__)



@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Merged into the gateway's lifespan by `include_router`: runs inside it, after the publisher started."""
    follower = getattr(app.state, "live_follower", None)
    if follower is not None:
        follower.start()
    try:
        yield
    finally:
        if follower is not None:
            await follower.stop()


router = APIRouter(tags=["control room"], lifespan=_lifespan)

WEB_DIR = Path(__file__).resolve().parent.parent / "web" / "control"
LEAFLET_DIR = "leaflet/dist"  # under settings.web_assets_dir (web/node_modules)
TOPIC_SCHEMAS = {topics.PINGS: "Ping", topics.PATROL_EVENTS: "PatrolEvent", topics.ASSIGNMENTS: "Assignment",
                 topics.ACTIVITY: "Activity", topics.HOTSPOTS: "Hotspot", topics.ALLOCATIONS: "Allocation"}
KEEPALIVE_S = 15.0
TICK_S = 1.0
DOSAGE_REFRESH_S = 15.0
# The page loads nothing from elsewhere but the configured tiles (img-src); the feed is same-origin.
_CONTROL_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: {tiles}; "
                "connect-src 'self'; frame-ancestors 'none'")


def _now_ms() -> int:
    return int(time.time() * 1000)


class LiveFollower:
    """The instance's own Kafka consumer feeding its hub."""

    def __init__(self, hub: LiveHub, bootstrap: str, *, ping_lookback_s: float, duty_lookback_s: float,
                 day_start_ms, consumer_factory=None):
        self.hub = hub
        self.bootstrap = bootstrap
        self.ping_lookback_ms = int(ping_lookback_s * 1000)
        self.duty_lookback_ms = int(duty_lookback_s * 1000)
        self.day_start_ms = day_start_ms  # callable: now_ms -> start of today's patrol day, epoch ms
        self.consumer_factory = consumer_factory
        self.ready = asyncio.Event()
        self.started_ms = 0
        self.problem: str | None = None
        self._task: asyncio.Task | None = None
        self._consumer = None
        from core.codecs import codec_for

        self.codecs = {topic: codec_for(schema) for topic, schema in TOPIC_SCHEMAS.items()}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-follower")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away or restarting: keep the hub, start again with a look-back
                self.problem = str(exc) or type(exc).__name__
                log.warning("live feed: %s; retrying in 2 s", self.problem)
                if self._consumer is not None:
                    try:
                        await self._consumer.stop()
                    except Exception:
                        pass
                    self._consumer = None
                await asyncio.sleep(2.0)

    async def _start_consumer(self):
        from aiokafka import TopicPartition

        from core.kafka import make_consumer

        consumer = (self.consumer_factory or make_consumer)(bootstrap_servers=self.bootstrap, group_id=None,
                                                            enable_auto_commit=False, auto_offset_reset="latest")
        self._consumer = consumer
        await consumer.start()
        parts = []
        for topic in TOPIC_SCHEMAS:
            found = consumer.partitions_for_topic(topic)
            if not found:
                await consumer._client.force_metadata_update()
                found = consumer.partitions_for_topic(topic) or set()
            parts += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(parts)
        now = _now_ms()
        since = {topics.PINGS: now - self.ping_lookback_ms, topics.ACTIVITY: now - self.duty_lookback_ms,
                 topics.ASSIGNMENTS: now - self.duty_lookback_ms, topics.PATROL_EVENTS: self.day_start_ms(now)}
        timed = {tp: max(0, since[tp.topic]) for tp in parts if tp.topic in since}
        found_offsets = await consumer.offsets_for_times(timed) if timed else {}
        for tp in parts:
            if tp.topic in since:
                hit = found_offsets.get(tp)
                if hit is None:
                    await consumer.seek_to_end(tp)  # nothing that recent: only what comes next
                else:
                    consumer.seek(tp, hit.offset)
            else:
                await consumer.seek_to_beginning(tp)
        end = await consumer.end_offsets(parts) if parts else {}
        return consumer, end

    async def _follow(self) -> None:
        consumer, end = await self._start_consumer()
        self.problem = None
        catching_up = dict(end)  # partitions not yet read up to where they ended at the start
        self.started_ms = _now_ms()
        last_tick = last_dosage = 0.0
        loop = asyncio.get_running_loop()
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            now = _now_ms()
            for tp, records in batches.items():
                for record in records:
                    # Before the end offsets of the start the record is history: state only, no event.
                    self._apply(tp.topic, record, now, record.offset >= end.get(tp, 0))
            self.hub.flush()  # before any await: a waiting client must not find a spent wake-up still set
            if catching_up:
                for tp in list(catching_up):
                    if await consumer.position(tp) >= catching_up[tp]:
                        del catching_up[tp]
                if not catching_up and not self.ready.is_set():
                    log.info("live feed ready: %d hot spots, %d officers on duty", len(self.hub.hotspots),
                             len(self.hub.officers))
            if not catching_up:
                self.ready.set()
            t = loop.time()
            if t - last_tick >= TICK_S:
                last_tick = t
                self.hub.tick(now)
            if t - last_dosage >= DOSAGE_REFRESH_S:
                last_dosage = t
                self.hub.refresh_open_dosage(now)
            self.hub.flush()

    def _apply(self, topic: str, record, now_ms: int, emit: bool) -> None:
        hub = self.hub
        try:
            if topic == topics.HOTSPOTS:
                key = record.key.decode() if record.key else ""
                hub.on_hotspot(key, None if record.value is None else self.codecs[topic].decode(record.value),
                               now_ms, emit)
                return
            if record.value is None:
                return
            value = self.codecs[topic].decode(record.value)
            if topic == topics.PINGS:
                hub.on_ping(value, now_ms, emit)
            elif topic == topics.PATROL_EVENTS:
                hub.on_patrol_event(value, now_ms, emit)
            elif topic == topics.ASSIGNMENTS:
                hub.on_assignment(value, now_ms, emit)
            elif topic == topics.ACTIVITY:
                hub.on_activity(value, now_ms, emit)
            elif topic == topics.ALLOCATIONS:
                hub.on_allocation(value)
        except Exception as exc:  # one bad record must not stop the feed
            log.warning("live feed: skipped a record of %s at offset %s: %s", topic, record.offset, exc)


def install(app: FastAPI, settings, state, *, follow: bool = True) -> None:
    """Make the instance's hub and follower (started by the app's lifespan) and add the routes.

    `follow` False (an app given its own producer, as unit tests do): the hub is fed by the caller.
    """
    from processors.allocation import trial_day, trial_day_bounds
    from processors.config import ProcessingConfig

    tz = settings.live_day_timezone

    def day_of(ts_ms: int):
        return trial_day(datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc), tz)

    def day_start_ms(now_ms: int) -> int:
        return int(trial_day_bounds(day_of(now_ms), tz)[0].timestamp() * 1000)

    processing = ProcessingConfig(**settings.processing) if settings.processing else ProcessingConfig()
    hub = LiveHub(ring_size=settings.live_ring_size, position_interval_s=settings.live_position_interval_s,
                  signal_lost_s=settings.live_signal_lost_s, foot_max_mps=processing.foot_max_mps,
                  vehicle_min_mps=processing.vehicle_min_mps, teams=settings.control_teams, day_of=day_of)
    app.state.live_hub = hub
    follower = LiveFollower(hub, state.settings.bootstrap_servers, ping_lookback_s=settings.live_ping_lookback_s,
                            duty_lookback_s=settings.live_duty_lookback_s, day_start_ms=day_start_ms)
    if not follow:
        follower.ready.set()
        follower.start = lambda: None  # nothing to follow: the hub is fed by the caller
    app.state.live_follower = follower
    app.state.control_settings = settings
    app.include_router(router)


# ---------------------------------------------------------------------------- routes

async def _audit(request: Request, user, action: str, subject: str, detail: dict) -> None:
    """Record the view before anything is shown: with the audit trail unreachable the view is refused (503)."""
    from gateway import audit
    from gateway.auth import address_of

    await audit.record(request.app.state.gateway, user, action, subject, detail, address=address_of(request),
                       required=True)


@router.get("/v1/live", summary="Server-sent events of the control room: snapshot, positions of officers on duty, "
            "patrol events, assignments, activity (supervisor, admin; audited)")
async def live(request: Request, user: SupervisorUser, last_event_id: str | None = Header(None)) -> Response:
    hub: LiveHub = request.app.state.live_hub
    follower: LiveFollower = request.app.state.live_follower
    try:
        await asyncio.wait_for(follower.ready.wait(), 10.0)
    except asyncio.TimeoutError:
        pass  # not caught up yet (Kafka slow or away): serve what there is, the events follow
    last_event_id = last_event_id or request.query_params.get("last_event_id")
    next_seq = hub.resume_seq(last_event_id)
    await _audit(request, user, "live_view", "live",
                 {"resumed": next_seq is not None, "last_event_id": last_event_id,
                  "officers_on_duty": len(hub.officers)})

    async def stream():
        nonlocal next_seq
        yield b"retry: 1000\n\n"
        if next_seq is None:
            next_seq = hub.seq + 1
            yield hub.snapshot_chunk(_now_ms())
        while True:
            got = hub.read_from(next_seq)
            if got is None:  # this client fell behind the ring: start it again from a snapshot
                next_seq = hub.seq + 1
                yield hub.snapshot_chunk(_now_ms())
                continue
            chunks, next_seq = got
            if chunks:
                yield b"".join(chunks)
                continue
            if not await hub.wait(KEEPALIVE_S):
                if await request.is_disconnected():
                    return
                yield b": keepalive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/v1/live/hotspots/{hotspot_id}", summary="A hot spot today: visits, minutes so far, briefing (supervisor)")
async def hotspot_today(hotspot_id: str, request: Request, user: SupervisorUser) -> Response:
    detail = request.app.state.live_hub.hotspot_detail(hotspot_id, _now_ms())
    if detail is None:
        raise ApiError(404, "not_found", "no such hot spot", field="hotspot_id")
    return Response(orjson.dumps(detail), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/v1/live/officers/{device_id}", summary="An officer on duty: current assignment and today's path "
            "(supervisor; audited)")
async def officer_today(device_id: str, request: Request, user: SupervisorUser) -> Response:
    hub: LiveHub = request.app.state.live_hub
    officer = hub.officers.get(device_id)
    now = _now_ms()
    since_ms = hub.path_since_ms(device_id, int(request.app.state.live_follower.day_start_ms(now)))
    if officer is None or since_ms is None:
        raise ApiError(404, "not_found", "no officer on duty with this device", field="device_id")
    path, problem = await asyncio.to_thread(_path_today, request.app.state.control_settings, device_id, since_ms)
    await _audit(request, user, "path_view", device_id, {"since_ms": since_ms, "points": len(path)})
    body = {"officer": officer.view(now, hub.team_of(device_id)), "assignment": officer.assignment,
            "path": path, "path_problem": problem}
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})


def _path_today(settings, device_id: str, since_ms: int) -> tuple[list[list[float]], str | None]:
    """Today's accepted fixes of one device from ClickHouse, read the way the officer API reads today's dosage
    (gateway.dosage.make_reader: the worker's query server for the embedded store), thinned to 2,000."""
    from gateway.dosage import make_reader

    safe = device_id.replace("\\", "\\\\").replace("'", "\\'")
    query = (f"SELECT toUnixTimestamp64Milli(ts) AS t, lat, lon FROM {settings.clickhouse_database}.pings "
             f"WHERE device_id = '{safe}' AND ts >= fromUnixTimestamp64Milli(toInt64({int(since_ms)})) ORDER BY ts")
    try:
        rows = make_reader(settings)(query)
    except Exception as exc:  # store away, owner busy, limits: the page shows the problem instead of a path
        return [], str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    step = max(1, len(rows) // 2000)
    return [[int(r[0]), float(r[1]), float(r[2])] for r in rows[::step]], None


@router.get("/control", include_in_schema=False)
async def control_page(request: Request) -> Response:
    from gateway.auth import current_user

    try:
        user = await current_user(request)
    except ApiError as exc:
        if exc.status == 401:
            return RedirectResponse("/control/signin", status_code=303)
        raise
    if user.role not in ("supervisor", "admin"):
        return HTMLResponse("<!doctype html><title>Forbidden</title><h1>403: the control room is for supervisors</h1>",
                            status_code=403)
    s = request.app.state.control_settings
    page = (WEB_DIR / "index.html").read_text()
    config = {"tileUrl": s.map_tile_url, "attribution": s.map_tile_attribution, "user": user.name, "role": user.role}
    page = page.replace("__CONFIG__", html.escape(orjson.dumps(config).decode(), quote=True))
    tiles = _tile_origin(s.map_tile_url)
    return HTMLResponse(page, headers={"Content-Security-Policy": _CONTROL_CSP.format(tiles=tiles),
                                       "Cache-Control": "no-store"})


@router.get("/control/signin", include_in_schema=False)
async def control_signin() -> Response:
    return FileResponse(WEB_DIR / "signin.html", headers={"Content-Security-Policy": _CONTROL_CSP.format(tiles="")})


@router.get("/control/assets/{name}", include_in_schema=False)
async def control_asset(name: str, request: Request) -> Response:
    """Our page's own files (web/control) and Leaflet's (web/node_modules/leaflet/dist, installed by npm ci)."""
    ours = {"control.js": "control.js", "control.css": "control.css", "signin.js": "signin.js"}
    leaflet = {"leaflet.js": "leaflet.js", "leaflet.css": "leaflet.css"}
    if name in ours:
        return FileResponse(WEB_DIR / ours[name], headers={"Cache-Control": "no-cache"})
    if name in leaflet:
        path = request.app.state.control_settings.web_assets_dir / LEAFLET_DIR / leaflet[name]
        if not path.is_file():
            raise ApiError(503, "not_installed", f"{path} missing: run `make setup` (npm ci in web/)")
        return FileResponse(path, headers={"Cache-Control": "max-age=3600"})
    raise ApiError(404, "not_found", "no such asset")


def _tile_origin(url: str) -> str:
    from urllib.parse import urlsplit

    if not url:
        return ""
    parts = urlsplit(url.replace("{s}", "a"))
    host = parts.netloc
    if "{s}" in url:
        host = "*." + host.split(".", 1)[-1]
    return f"{parts.scheme}://{host}" if parts.scheme in ("http", "https") else ""
