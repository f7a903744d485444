"""The gateway application: routers, health, metrics and error rendering. Nothing else lives here.

`create_app()` builds everything from `core.settings.get_settings()`; tests
and the benchmark pass their own `Settings`, `producer` (anything with
aiokafka's `send`) or `credentials`. Run with
`uvicorn --factory gateway.main:create_app` or `hotspot gateway`.

At start the gateway makes sure the topic it writes exists, with the
configured partition count, through `core.kafka.ensure_topics` (the one
place topics are created), so a gateway started before any worker takes pings
at once. A topic it cannot create stops the start with `GatewayStartError`
naming it (an existing topic with another partition count is used, with a
warning, as the worker does). Kafka unreachable at start
is not fatal (OwnTracks pings go to the spool): the topics are made sure of
when the producer connects. `/healthz` answers 503 with the reason while
Kafka cannot take writes (`Publisher.problem`).
"""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import ingest, metrics, officer
from core import topics
from core.settings import Settings
from gateway.credentials import CredentialStore, path_in
from gateway.deps import ApiError, GatewayState
from gateway.held import HeldPings
from gateway.publisher import Publisher
from gateway.ratelimit import RateLimiter
from gateway.spool import Spool

log = logging.getLogger(__name__)

# Under the data directory: pings waiting for Kafka (gateway.spool) and OwnTracks pings over their rate (gateway.held).
SPOOL_DIR = "gateway-spool"
HELD_DIR = "gateway-held"

GATEWAY_TOPICS = (topics.PINGS, topics.ASSIGNMENTS, topics.ACTIVITY, topics.AUDIT)  # what the gateway writes


class GatewayStartError(Exception):
    """The gateway must not serve: a topic it needs is missing and cannot be created, or has the wrong shape."""


async def prepare_topics(settings: Settings) -> list[str]:
    """Create the gateway's missing topics with `settings.partitions`; return the names created.

    Raises GatewayStartError when a topic is missing and cannot be created;
    KafkaConnectionError (or TimeoutError) when Kafka cannot be reached.
    """
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from core.kafka import TOPICS, describe_topics, ensure_topics

    specs = [t for t in TOPICS if t.name in GATEWAY_TOPICS]
    try:
        created = await ensure_topics(settings.bootstrap_servers, settings.partitions, specs)
        counts = await describe_topics(settings.bootstrap_servers)
    except KafkaConnectionError:
        raise
    except KafkaError as exc:
        raise GatewayStartError(f"Kafka topic(s) {', '.join(GATEWAY_TOPICS)} missing and not creatable ({exc}): create "
                                f"them with {settings.partitions} partitions, or let the gateway create topics") from None
    for name in GATEWAY_TOPICS:
        if name in created:
            continue  # just created with settings.partitions; metadata may not show it yet
        if name not in counts:
            raise GatewayStartError(f"Kafka topic {name!r} is missing after creating it")
        if counts[name] != settings.partitions:
            # Not fatal: the worker follows the topic's count (its changelog must match the topic, not the setting).
            log.warning("Kafka topic %r has %d partitions, HOTSPOT_PARTITIONS says %d: the topic's count is used",
                        name, counts[name], settings.partitions)
    if created:
        log.info("created Kafka topic(s) %s with %d partitions", ", ".join(created), settings.partitions)
    return created



KNOWN_ROUTES = frozenset({"/v1/pings", "/v1/owntracks", "/v1/osmand", "/healthz", "/metrics", "/openapi.json", "/",
                          "/docs", "/redoc",
                          # issue 14
                          "/v1/session", "/v1/duty", "/v1/directions", "/v1/hotspots/nearby", "/v1/me/status",
                          "/v1/activity", "/v1/activity/categories"})
KNOWN_ROUTES |= {"/v1/live", "/control", "/control/signin"}  # issue 15: the control room

# Swagger UI and ReDoc come from web/node_modules (`npm ci` in `make setup`), never a CDN: a police network
# often has no internet, and FastAPI's default pages would then be blank.
DOCS_ASSETS_URL = "/docs-assets"
# The docs pages may load only from the gateway itself: ReDoc's footer asks cdn.redoc.ly for a logo, which the
# browser then never requests (the page degrades to the text), so nothing leaks out of a closed network.
_DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")
_DOCS_PACKAGES = {"swagger-ui": ("swagger-ui-dist", "swagger-ui-bundle.js"),
                  "redoc": ("redoc/bundles", "redoc.standalone.js")}


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _json_response(exc.status, exc.body(), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "header")) or "body"
        return _json_response(422, {"error": "invalid_field", "field": field, "detail": first["msg"],
                                    "errors": [{"field": ".".join(map(str, e["loc"])), "detail": e["msg"]} for e in errors]})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json_response(exc.status_code, {"error": code, "detail": str(exc.detail)}, getattr(exc, "headers", None))


class _CountRequests:
    """Counts answers by route and status (unknown paths share one label so scanners cannot explode it)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = path if path in KNOWN_ROUTES else "other"

        async def counting_send(message):
            if message["type"] == "http.response.start":
                metrics.REQUESTS.labels(route, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def build_state(settings: Settings, *, producer: Any = None, credentials: CredentialStore | None = None,
                spool: Spool | None = None) -> GatewayState:
    from core.codecs import codec_for

    s = settings
    codec = codec_for("Ping", s)
    factory = on_connect = None
    if producer is None:
        from core.kafka import make_producer

        def factory():
            return make_producer(s.bootstrap_servers)

        async def on_connect():
            await prepare_topics(s)  # Kafka was away at start, or a topic was deleted since

    publisher = Publisher(codec=codec, producer=producer, producer_factory=factory,
                          spool=spool if spool is not None else Spool(s.data_dir / SPOOL_DIR),
                          ack_timeout_s=s.gateway_ack_timeout_s, on_connect=on_connect)
    limiter = RateLimiter(s.gateway_device_rate_pings_per_s, s.gateway_device_burst_pings)
    held = HeldPings(s.data_dir / HELD_DIR, limiter, max_per_device=s.gateway_owntracks_held_max_per_device,
                     max_total=s.gateway_owntracks_held_max_total, park_s=s.gateway_owntracks_park_s,
                     park_per_device=s.gateway_owntracks_park_per_device, park_total=s.gateway_owntracks_park_total)
    return GatewayState(
        settings=s,
        credentials=credentials or CredentialStore(path_in(s.data_dir), refresh_s=s.gateway_credentials_refresh_s),
        publisher=publisher,
        limiter=limiter,
        held=held,
        osmand_misses=RateLimiter(s.gateway_osmand_unknown_per_s, s.gateway_osmand_unknown_burst),
    )


def _app(state: GatewayState, *, title: str, lifespan) -> FastAPI:
    # FastAPI's own /docs and /redoc load from a CDN; `_install_docs` serves local copies instead.
    app = FastAPI(title=title, version="1", lifespan=lifespan, default_response_class=Response,
                  docs_url=None, redoc_url=None)
    app.state.gateway = state
    _install_error_handlers(app)
    app.add_middleware(_CountRequests)
    return app


def missing_docs_assets(assets_dir: Path) -> list[Path]:
    """The files /docs and /redoc need that are not installed under `assets_dir` (empty: all there)."""
    return [assets_dir / folder / name for folder, name in _DOCS_PACKAGES.values()
            if not (assets_dir / folder / name).is_file()]


def _install_docs(app: FastAPI, assets_dir: Path) -> None:
    """/docs (Swagger UI) and /redoc served from `assets_dir`, or a 503 page saying how to install them."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    missing = missing_docs_assets(assets_dir)
    if missing:
        log.warning("API docs unavailable: %s not found; run `make setup` (npm ci in web/)", ", ".join(map(str, missing)))
    for mount, (folder, _) in _DOCS_PACKAGES.items():
        app.mount(f"{DOCS_ASSETS_URL}/{mount}", StaticFiles(directory=assets_dir / folder, check_dir=False),
                  name=f"docs-assets-{mount}")

    def unavailable() -> HTMLResponse:
        listed = "".join(f"<li><code>{p}</code></li>" for p in missing)
        return HTMLResponse(
            "<!doctype html><title>API docs not installed</title><h1>API docs not installed</h1>"
            f"<p>The gateway serves Swagger UI and ReDoc from local files, and these are missing:</p><ul>{listed}</ul>"
            "<p>Run <code>make setup</code> (it runs <code>npm ci</code> in <code>web/</code>), or set "
            "<code>HOTSPOT_WEB_ASSETS_DIR</code> to a <code>node_modules</code> holding swagger-ui-dist and redoc. "
            "The API description itself is at <a href=\"/openapi.json\">/openapi.json</a>.</p>", status_code=503)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        if missing:
            return unavailable()
        base = f"{DOCS_ASSETS_URL}/swagger-ui"
        # validatorUrl None: Swagger UI would otherwise fetch a badge from validator.swagger.io
        page = get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API docs",
                                   swagger_js_url=f"{base}/swagger-ui-bundle.js", swagger_css_url=f"{base}/swagger-ui.css",
                                   swagger_favicon_url=f"{base}/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        if missing:
            return unavailable()
        page = get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{DOCS_ASSETS_URL}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS_URL}/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page


def create_app(settings: Settings | None = None, *, producer: Any = None,
               credentials: CredentialStore | None = None, spool: Spool | None = None) -> FastAPI:
    """The gateway under `settings` (default: the process's). `producer`: an already started producer to use
    instead of the app's own."""
    from core.settings import get_settings

    settings = settings or get_settings()
    state = build_state(settings, producer=producer, credentials=credentials, spool=spool)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if producer is None:
            from aiokafka.errors import KafkaConnectionError

            try:
                await asyncio.wait_for(prepare_topics(settings), settings.gateway_ack_timeout_s)
            except (KafkaConnectionError, OSError, asyncio.TimeoutError) as exc:
                log.warning("Kafka not reachable at start (%s): its topics are checked when it is", exc)
            except GatewayStartError as exc:
                app.state.start_error = str(exc)
                log.error("cannot start: %s", exc)
                raise
        await state.publisher.start()
        state.held.start(state.publisher)
        await officer.start(state)
        try:
            yield
        finally:
            await officer.stop(state)
            await state.held.stop()
            await state.publisher.stop()

    app = _app(state, title="Hotspot Patrol gateway", lifespan=lifespan)
    app.include_router(ingest.router)
    officer.install(app, state, settings)  # issue 14: sessions and the officer routes
    _install_docs(app, settings.web_assets_dir)
    from gateway import webapp  # the officer app's own static files at /app (issue 14)
    webapp.install(app)

    @app.get("/healthz", tags=["ops"], summary="Liveness and Kafka readiness: 503 with the reason while Kafka "
             "cannot take writes")
    async def healthz() -> Response:
        publisher = state.publisher
        depth = publisher.spool.depth if publisher.spool is not None else 0
        body = {"status": "ok" if depth == 0 else "degraded", "kafka": "connected",
                "spool_depth": depth, "held_depth": state.held.depth}
        problem = publisher.problem
        if problem is not None:
            body.update(status="not_ready", kafka="connecting" if not publisher.ready else "unavailable",
                        reason=problem)
            return _json_response(503, body)
        return _json_response(200, body)

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    from gateway import live  # issue 15: the control room (/control, /v1/live) and its own Kafka consumer
    live.install(app, settings, state, follow=producer is None)
    return app


def create_osmand_app(state: GatewayState) -> FastAPI:
    """A listener answering the OsmAnd protocol at `/`, so an unmodified Traccar Client can point at it.

    Shares the main app's state; the main app's lifespan starts and stops it.
    """
    app = _app(state, title="Hotspot Patrol OsmAnd listener", lifespan=None)

    @app.api_route("/", methods=["GET", "POST"], include_in_schema=False)
    async def root(request: Request) -> Response:
        from gateway.deps import raw_body

        body = await raw_body(request)
        return await ingest.osmand(request, body, state, state.publisher)

    return app
