"""Request dependencies: the gateway's shared state, authentication and roles, the size-limited body.

Routes declare what they need as `Annotated` aliases (`device: DeviceAuth`,
`user: SupervisorUser`, `body: RawBody`) instead of checking inside the handler.
Failures raise `ApiError`, which `gateway.main` renders as a JSON body naming
the problem: 401 for a missing, wrong or revoked credential, 403 for a valid
credential of the wrong kind or role.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.config import GatewayConfig
from gateway.credentials import CredentialStore, Principal
from gateway.held import HeldPings
from gateway.publisher import Publisher
from gateway.ratelimit import RateLimiter
from gateway.sessions import SessionUser


class ApiError(Exception):
    """An error answer: status, a short code, the offending field if any, and what is wrong."""

    def __init__(self, status: int, error: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        self.headers = headers
        self.extra = extra or {}

    def body(self) -> dict:
        out: dict[str, Any] = {"error": self.error, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


@dataclass
class GatewayState:
    config: GatewayConfig
    credentials: CredentialStore
    publisher: Publisher
    limiter: RateLimiter
    held: HeldPings | None = None  # OwnTracks pings over their rate; None: they get 429 like the others
    # Unknown OsmAnd identifiers per source address (gateway.ingest.osmand); build_state sizes it from the config.
    osmand_misses: RateLimiter = field(default_factory=lambda: RateLimiter(0.02, 10))
    # Users and the officer app (issue 14; gateway.auth, gateway.officer): None until installed.
    sessions: Any = None
    signin_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(0.1, 10))
    officer: Any = None


async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


State = Annotated[GatewayState, Depends(get_state)]


# The dependencies below read the state from the request rather than depending
# on `State`: every nested dependency costs FastAPI ~30 us per request to solve.

async def get_publisher(request: Request) -> Publisher:
    """The publisher of this app; tests may override this dependency to inject their own."""
    return request.app.state.gateway.publisher


PublisherDep = Annotated[Publisher, Depends(get_publisher)]


# --------------------------------------------------------------------------- body

async def raw_body(request: Request) -> bytes:
    """The request body, refused with 413 past `max_body_bytes` (checked while reading, not only the header)."""
    limit = request.app.state.gateway.config.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, "body_too_large", f"body is {declared} bytes; the limit is {limit}", field="body")
        except ValueError:
            raise ApiError(400, "bad_header", "Content-Length is not a number", field="content-length") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"body exceeds the limit of {limit} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


RawBody = Annotated[bytes, Depends(raw_body)]


# --------------------------------------------------------------------------- auth

def _unauthorized(detail: str, scheme: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, field="authorization",
                    headers={"WWW-Authenticate": f'{scheme} realm="hotspot-patrol"'})


async def _check(store: CredentialStore, secret: str, name: str | None = None) -> Principal | None:
    hit = store.cached(secret, name)
    if hit is not None:
        return hit
    return await asyncio.to_thread(store.verify, secret, name)  # scrypt: keep it off the event loop


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


async def _principal(request: Request, store: CredentialStore, scheme: str) -> Principal:
    """Bearer `<secret>` or Basic `<name>:<secret>`; 401 unless it is a valid, active credential."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("credentials required", scheme)
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
        principal = await _check(store, token) if token else None
    else:
        pair = _basic(header)
        if pair is None:
            raise _unauthorized("Authorization must be 'Bearer <secret>' or HTTP Basic", scheme)
        principal = await _check(store, pair[1], pair[0])
    if principal is None:
        raise _unauthorized("unknown, wrong or revoked credential", scheme)
    return principal


async def bearer_device(request: Request) -> Principal:
    principal = await _principal(request, request.app.state.gateway.credentials, "Bearer")
    if principal.kind != "device":
        raise ApiError(403, "forbidden", "a device credential is required (see `hotspot devices add`)", field="authorization")
    return principal


async def basic_device(request: Request) -> Principal:
    principal = await _principal(request, request.app.state.gateway.credentials, "Basic")
    if principal.kind != "device":
        raise ApiError(403, "forbidden", "a device credential is required (see `hotspot devices add`)", field="authorization")
    return principal


def require_roles(*roles: str, admin: bool = True):
    """Dependency admitting a signed-in user (gateway.auth: session cookie, CSRF header on unsafe methods)
    whose role is one of `roles` (any role when none is given; admin too unless `admin=False`).
    401 without a live session, 403 for another role."""

    async def dependency(request: Request):
        from gateway.auth import current_user

        user = await current_user(request)
        if roles and user.role not in roles and not (admin and user.role == "admin"):
            raise ApiError(403, "forbidden", f"role {user.role} may not do this; needs {' or '.join(roles)}")
        return user

    return dependency


DeviceAuth = Annotated[Principal, Depends(bearer_device)]
OwnTracksDevice = Annotated[Principal, Depends(basic_device)]
# Users, by session (issue 14): each resolves to a gateway.sessions.SessionUser.
OfficerUser = Annotated[SessionUser, Depends(require_roles("officer", admin=False))]  # officers have a device; admins do not
SupervisorUser = Annotated[SessionUser, Depends(require_roles("supervisor"))]
AnalystUser = Annotated[SessionUser, Depends(require_roles("analyst", "supervisor"))]
AdminUser = Annotated[SessionUser, Depends(require_roles("admin"))]
AnyUser = Annotated[SessionUser, Depends(require_roles())]


def rate_limit(state: GatewayState, device_id: str, pings: int, source: str) -> None:
    from gateway import metrics

    wait_s = state.limiter.take(device_id, pings)
    if wait_s > 0:
        metrics.RATE_LIMITED.labels(source).inc()
        retry = max(1, int(wait_s + 0.999)) if wait_s != float("inf") else 3600
        raise ApiError(429, "rate_limited", f"device {device_id} sends faster than "
                       f"{state.limiter.rate:g} pings/s (burst {state.limiter.burst:g}); retry in {retry}s",
                       headers={"Retry-After": str(retry)})
