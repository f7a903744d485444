"""Device ingest routes: native pings, OwnTracks HTTP mode, OsmAnd / Traccar Client.

Owns the HTTP side of getting positions in. Bodies are parsed with orjson and
the pure decoders in `gateway.protocols` (the pydantic models below only
describe the API in /openapi.json; validating ~100 pings per request through
them would cost more than the rest of the request). Every answer that is not a
success is a JSON body naming the field and the problem.
"""
from __future__ import annotations

import logging
import time
from typing import Literal
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from pydantic import BaseModel, ConfigDict, Field

from gateway import metrics
from gateway.deps import ApiError, OwnTracksDevice, PublisherDep, RawBody, State, rate_limit
from gateway.officer import PingDevice, idempotent
from gateway.protocols import (
    FieldError, osmand_device_id, parse_native, parse_osmand, parse_owntracks, parse_traccar_json,
    traccar_json_device_id,
)
from gateway.publisher import KafkaUnavailable

router = APIRouter(tags=["ingest"])
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- API description

class PingIn(BaseModel):
    """One position. The device comes from the Bearer credential, not from the body."""
    model_config = ConfigDict(extra="forbid")
    ts: str | float | None = Field(None, description="Fix time: ISO-8601 with offset, or epoch seconds or milliseconds.")
    ts_ms: int | None = Field(None, description="Fix time, UTC epoch milliseconds (instead of ts).")
    lat: float = Field(..., ge=-90, le=90)
    lon: float = Field(..., ge=-180, le=180)
    accuracy_m: float | None = Field(None, description="Metres; 0, negative, NaN or over 10 km is taken as unknown.")
    speed_mps: float | None = Field(None, ge=0, le=1000)
    heading_deg: float | None = Field(None, ge=0, le=360)
    altitude_m: float | None = None
    battery: float | None = Field(None, ge=0, le=1, description="Fraction 0-1.")
    extra: dict[str, str] | None = Field(None, description="Other attributes, strings.")


class Rejection(BaseModel):
    index: int
    field: str
    reason: str


class PingAccepted(BaseModel):
    accepted: int = Field(..., description="Pings acknowledged by Kafka.")
    rejected: list[Rejection]


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


class OwnTracksLocation(BaseModel):
    model_config = ConfigDict(extra="allow")
    type_: Literal["location", "transition", "waypoint", "waypoints", "card", "lwt", "beacon", "status", "cmd"] = Field(
        ..., alias="_type")
    lat: float | None = None
    lon: float | None = None
    tst: int | None = Field(None, description="Epoch seconds.")
    acc: float | None = Field(None, description="Metres.")
    alt: float | None = None
    batt: float | None = Field(None, description="Percent.")
    vel: float | None = Field(None, description="km/h.")
    cog: float | None = None


def _body_doc(model: type[BaseModel], *, array: bool = False) -> dict:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    content = {"oneOf": [schema, {"type": "array", "items": schema}]} if array else schema
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": content}}}}


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422, 429, 503)}


# --------------------------------------------------------------------------- helpers

def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json(body: bytes):
    if not body.strip():
        raise ApiError(400, "empty_body", "a JSON body is required", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"body is not valid JSON: {exc}", field="body") from None


def _field_error(exc: FieldError, status: int = 422, **extra) -> ApiError:
    return ApiError(status, "invalid_field", exc.problem, field=exc.field, extra=extra)


def _unavailable(exc: KafkaUnavailable) -> ApiError:
    log.warning("answering 503: %s", exc)
    return ApiError(503, "kafka_unavailable", f"not stored, send again: {exc}", headers={"Retry-After": "5"})


# --------------------------------------------------------------------------- native

@router.post("/v1/pings", status_code=202, response_model=PingAccepted, responses=ERRORS,
             openapi_extra=_body_doc(PingIn, array=True),
             summary="One ping or an array; 202 only once Kafka has acknowledged the accepted ones")
async def post_pings(device: PingDevice, body: RawBody, state: State, publisher: PublisherDep,
                     request: Request) -> Response:
    # A device's Bearer credential, or an officer's session (issue 14: the web app sends under app-<name>).
    # With an Idempotency-Key, a repeat gets the first answer and publishes nothing.
    return await idempotent(request, device.name, lambda: _post_pings(device, body, state, publisher))


async def _post_pings(device, body: bytes, state, publisher) -> Response:
    received_ms = _now_ms()
    data = _json(body)
    single = not isinstance(data, list)
    items = [data] if single else data
    if not items:
        raise ApiError(422, "empty_batch", "the array holds no pings", field="body")
    if len(items) > state.config.max_batch_pings:
        raise ApiError(413, "batch_too_large", f"{len(items)} pings; at most {state.config.max_batch_pings} per request",
                       field="body")
    rate_limit(state, device.name, len(items), "native")
    pings, rejected = [], []
    for index, item in enumerate(items):
        try:
            pings.append(parse_native(item, device_id=device.name, received_ms=received_ms))
        except FieldError as exc:
            rejected.append({"index": index, "field": exc.field, "reason": str(exc)})
            metrics.PINGS_REJECTED.labels("native", "invalid_field").inc()
    if single and rejected:
        raise ApiError(422, "invalid_field", rejected[0]["reason"].split(": ", 1)[1], field=rejected[0]["field"])
    if not pings:
        raise ApiError(422, "no_valid_pings", "no item of the batch is a valid ping", field="body",
                       extra={"rejected": rejected})
    try:
        await publisher.send(pings)
    except KafkaUnavailable as exc:
        raise _unavailable(exc) from None
    metrics.PINGS_ACCEPTED.labels("native").inc(len(pings))
    return Response(orjson.dumps({"accepted": len(pings), "rejected": rejected}), status_code=202,
                    media_type="application/json")


# --------------------------------------------------------------------------- OwnTracks

@router.post("/v1/owntracks", responses=ERRORS, openapi_extra=_body_doc(OwnTracksLocation),
             summary="OwnTracks HTTP mode (Basic auth: device id and secret); replies a JSON array")
async def post_owntracks(device: OwnTracksDevice, body: RawBody, state: State, publisher: PublisherDep,
                         request: Request) -> Response:
    # X-Limit-U / X-Limit-D (or ?u=&d=) name the OwnTracks user and device; the
    # credential is what identifies the device, so they are only kept as attributes.
    received_ms = _now_ms()
    data = _json(body)
    messages = data if isinstance(data, list) else [data]
    pings = []
    for message in messages:
        try:
            ping = parse_owntracks(message, device_id=device.name, received_ms=received_ms)
        except FieldError as exc:
            metrics.PINGS_REJECTED.labels("owntracks", "invalid_field").inc()
            raise _field_error(exc, 400) from None
        if ping is not None:
            for header, query, key in (("x-limit-u", "u", "ot_user"), ("x-limit-d", "d", "ot_device")):
                value = request.headers.get(header) or request.query_params.get(query)
                if value and len(ping["extra"]) < 32:
                    ping["extra"][key] = value[:64]
            pings.append(ping)
    if pings:
        held = state.held
        if held is None:
            rate_limit(state, device.name, len(pings), "owntracks")
        elif held.holding(device.name) or state.limiter.take(device.name, len(pings)) > 0:
            # Over the device's rate, or behind pings that were: a 429 would be taken as
            # delivery and lose them, so they are held on disk and released at the rate.
            if not await held.admit(device.name, publisher.spool_records(pings)):
                metrics.RATE_LIMITED.labels("owntracks").inc()
                raise ApiError(429, "rate_limited", f"device {device.name} is over its rate and its held pings are "
                               "at their limit; send again later", headers={"Retry-After": "30"})
            metrics.PINGS_ACCEPTED.labels("owntracks").inc(len(pings))
            return Response(b"[]", status_code=200, media_type="application/json")
        try:
            await publisher.send_or_spool(pings)
        except KafkaUnavailable as exc:  # no spool configured
            raise _unavailable(exc) from None
        metrics.PINGS_ACCEPTED.labels("owntracks").inc(len(pings))
    return Response(b"[]", status_code=200, media_type="application/json")


# --------------------------------------------------------------------------- OsmAnd / Traccar Client

async def osmand(request: Request, body: bytes, state, publisher) -> Response:
    """The OsmAnd protocol; shared by /v1/osmand and the optional Traccar-compatible port.

    The request's identifier is the device's secret (gateway.credentials); the
    ping is stored under the device's registered name. An address that sent
    `osmand_unknown_burst` unknown identifiers is refused (429) until its bucket
    refills, whatever it sends, so guessing cannot go fast and a hit among the
    guesses does not show.
    """
    if not state.config.osmand_enabled:
        raise StarletteHTTPException(404)  # as if the route did not exist
    received_ms = _now_ms()
    address = request.client.host if request.client is not None else ""
    misses = state.osmand_misses
    wait_s = misses.wait_s(address)
    if wait_s > 0:
        metrics.RATE_LIMITED.labels("osmand").inc()
        retry = max(1, int(wait_s + 0.999))
        raise ApiError(429, "rate_limited", f"too many unknown device identifiers from this address; retry in {retry}s",
                       headers={"Retry-After": str(retry)})
    params = dict(request.query_params)
    json_body = None
    if body.strip():
        ctype = request.headers.get("content-type", "")
        if "json" in ctype or body.lstrip()[:1] in (b"{", b"["):
            json_body = _json(body)
        else:
            try:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ApiError(400, "malformed_form", f"body is not a URL-encoded form: {exc}", field="body") from None
    try:
        identifier = traccar_json_device_id(json_body) if json_body is not None else osmand_device_id(params)
    except FieldError as exc:
        raise _field_error(exc, 400) from None
    device = state.credentials.osmand_device(identifier)
    if device is None:
        # Unknown, revoked and wrong identifiers get this one answer, which never echoes the identifier.
        misses.take(address, 1)
        metrics.PINGS_REJECTED.labels("osmand", "unknown_device").inc()
        field = "device_id" if json_body is not None else ("id" if "id" in params else "deviceid")
        raise ApiError(403, "forbidden", "not the identifier of an active OsmAnd device "
                       "(see `hotspot devices add NAME --osmand`)", field=field)
    rate_limit(state, device.name, 1, "osmand")
    try:
        if json_body is not None:
            ping = parse_traccar_json(json_body, device_id=device.name, received_ms=received_ms)
        else:
            ping = parse_osmand(params, device_id=device.name, received_ms=received_ms,
                                speed_unit=state.config.osmand_speed_unit)
    except FieldError as exc:
        metrics.PINGS_REJECTED.labels("osmand", "invalid_field").inc()
        raise _field_error(exc, 400) from None
    try:
        await publisher.send([ping])  # Traccar Client keeps the position and retries until it gets a 200
    except KafkaUnavailable as exc:
        raise _unavailable(exc) from None
    metrics.PINGS_ACCEPTED.labels("osmand").inc()
    return Response(b"", status_code=200)


OSMAND_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": doc}
    for name, doc in (("id", "the device's OsmAnd identifier from `hotspot devices add NAME --osmand` (or deviceid)"), ("deviceid", "older name of id"),
                      ("lat", "degrees"), ("lon", "degrees"), ("location", "lat,lon instead of lat and lon"),
                      ("timestamp", "epoch s or ms, ISO-8601, or yyyy-MM-dd HH:mm:ss (UTC)"),
                      ("speed", "knots (the gateway's osmand_speed_unit)"), ("bearing", "degrees"),
                      ("heading", "degrees"), ("altitude", "metres"), ("accuracy", "metres"), ("hdop", ""),
                      ("batt", "percent"), ("charge", "true/false"))
]


_OSMAND_DOC = dict(responses=ERRORS, openapi_extra={"parameters": OSMAND_QUERY},
                   summary="OsmAnd / Traccar Client: query string, form body or the newer JSON body")


@router.get("/v1/osmand", operation_id="osmand_get", **_OSMAND_DOC)
async def osmand_get(request: Request, body: RawBody, state: State, publisher: PublisherDep) -> Response:
    return await osmand(request, body, state, publisher)


@router.post("/v1/osmand", operation_id="osmand_post", **_OSMAND_DOC)
async def osmand_post(request: Request, body: RawBody, state: State, publisher: PublisherDep) -> Response:
    return await osmand(request, body, state, publisher)
