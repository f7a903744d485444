"""Sign-in, sign-out and who a request is from: the users' side of the gateway (issue 14).

Owns the `/v1/session` routes and the `SessionUser` dependencies routes declare
(`OfficerUser`, `SupervisorUser`, `AnalystUser`, `AnyUser`; also importable
from `gateway.deps`):

- `POST /v1/session` `{"name","secret"}` checks the user's credential
  (`hotspot users add`), sets the `hp_session` cookie (HttpOnly,
  SameSite=Strict, Path=/, Secure over https) and answers the user, role,
  device id, CSRF token and expiry. An unknown name and a wrong secret get the
  same 401 after the same work (one scrypt). Failed sign-ins are counted per
  source address; past `signin_burst` the address gets 429 until it earns
  attempts back at `signin_per_s`. Both outcomes are audited.
- `GET /v1/session` the same body for a live session, else 401.
- `DELETE /v1/session` revokes the session server-side and clears the cookie.

A session is accepted only while its signature and expiry hold, its row is not
revoked (gateway.sessions) and the user's credential is still the one signed in
with: `hotspot users revoke NAME` (or revoking and re-adding with another role)
ends every session of that user within `gateway_credentials_refresh_s`.
Tokens travel only in the cookie, never in a URL. Every unsafe method
(POST, PUT, PATCH, DELETE) must also carry `X-CSRF-Token`, else 403 `csrf`.

Officers get a device identity of their own, `app-<name>`, registered as a
device on their first sign-in; their session is its credential.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway import audit
from gateway.deps import AnalystUser, AnyUser, ApiError, OfficerUser, SupervisorUser  # noqa: F401 (re-exported)
from gateway.sessions import SessionStore, SessionUser, load_secret_key  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
router = APIRouter(tags=["session"])

COOKIE = "hp_session"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEVICE_PREFIX = "app-"


def device_of(name: str, role: str) -> str | None:
    return DEVICE_PREFIX + name if role == "officer" else None


def build_sessions(settings, data_dir) -> SessionStore:
    """The session store for a gateway; raises sessions.SecretKeyError when the key is not acceptable."""
    from gateway.sessions import FILE_NAME

    key = load_secret_key(settings.secret_key.get_secret_value(), settings.environment, data_dir)
    return SessionStore(data_dir / FILE_NAME, key, ttl_s=settings.session_ttl_s, refresh_s=settings.session_refresh_s)


def address_of(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail)


async def current_user(request: Request) -> SessionUser:
    """The signed-in user of this request; 401 without a live session, 403 `csrf` for an unsafe method
    without the session's CSRF token."""
    state = request.app.state.gateway
    sessions: SessionStore | None = state.sessions
    if sessions is None:
        raise _unauthorized("sign-in is not enabled on this gateway")
    token = request.cookies.get(COOKIE)
    if not token:
        raise _unauthorized("sign in first (POST /v1/session)")
    session = sessions.check(token)
    if session is None:
        raise _unauthorized("the session has expired or was ended; sign in again")
    principal = state.credentials.user(session.user)
    if principal is None or principal.revoked or principal.key_id != session.key_id or principal.role != session.role:
        sessions.revoke(session.session_id)
        raise _unauthorized("the user's credential was revoked or changed; sign in again")
    if request.method in UNSAFE_METHODS and not sessions.csrf_ok(session.session_id, request.headers.get(CSRF_HEADER)):
        raise ApiError(403, "csrf", "this request needs the session's X-CSRF-Token header", field=CSRF_HEADER)
    return SessionUser(session.user, session.role, device_of(session.user, session.role), session.session_id)


# --------------------------------------------------------------------------- routes

class SignIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=64)
    secret: str = Field(..., min_length=1, max_length=256)


class SessionBody(BaseModel):
    user: str
    role: str
    device_id: str | None
    csrf_token: str
    expires_at: str


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _body(sessions: SessionStore, user: str, role: str, session_id: str, expires_ms: int) -> dict:
    return {"user": user, "role": role, "device_id": device_of(user, role),
            "csrf_token": sessions.csrf_token(session_id), "expires_at": _iso(expires_ms)}


def _json(status: int, body) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _ensure_device(state, name: str) -> None:
    """The officer's own device identity, registered on first sign-in (its secret is never used: the session is)."""
    from gateway.credentials import CredentialError

    if state.credentials.device(name) is not None:
        return
    try:
        await asyncio.to_thread(state.credentials.add, name, "device")
    except CredentialError:
        pass  # registered meanwhile by another request or instance


@router.post("/v1/session", response_model=SessionBody, summary="Sign in: sets the hp_session cookie",
             responses={401: {"description": "wrong name or secret (one answer for both)"}, 429: {"description": "too many failed sign-ins from this address"}})
async def sign_in(body: SignIn, request: Request) -> Response:
    state = request.app.state.gateway
    sessions: SessionStore | None = state.sessions
    if sessions is None:
        raise ApiError(503, "sessions_unavailable", "sign-in is not enabled on this gateway")
    address = address_of(request)
    wait_s = state.signin_limiter.wait_s(address)
    if wait_s > 0:
        retry = max(1, int(wait_s + 0.999))
        await audit.record(state, body.name, "signin_refused", body.name, {"reason": "rate_limited"}, address=address,
                           background=True)
        raise ApiError(429, "rate_limited", f"too many failed sign-ins from this address; retry in {retry}s",
                       headers={"Retry-After": str(retry)})
    principal = await asyncio.to_thread(state.credentials.verify_user, body.name, body.secret)
    if principal is None:
        state.signin_limiter.take(address, 1)
        await audit.record(state, body.name, "signin_failed", body.name, {}, address=address, background=True)
        raise _unauthorized("wrong name or secret")
    if principal.role == "officer":
        await _ensure_device(state, DEVICE_PREFIX + principal.name)
    token, session = sessions.issue(principal.name, principal.role, principal.key_id)
    await audit.record(state, SessionUser(principal.name, principal.role, None, session.session_id), "signin_ok",
                       principal.name, {"session": session.session_id[:8]}, address=address, background=True)
    response = _json(200, _body(sessions, principal.name, principal.role, session.session_id, session.expires_ms))
    response.set_cookie(COOKIE, token, max_age=int(sessions.ttl_s), path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/v1/session", response_model=SessionBody, summary="The current session, or 401")
async def get_session(user: AnyUser, request: Request) -> Response:
    sessions: SessionStore = request.app.state.gateway.sessions
    session = sessions.check(request.cookies.get(COOKIE))
    return _json(200, _body(sessions, user.name, user.role, user.session_id, session.expires_ms))


@router.delete("/v1/session", status_code=204, summary="Sign out: the session is revoked server-side, the cookie cleared")
async def sign_out(user: AnyUser, request: Request) -> Response:
    state = request.app.state.gateway
    state.sessions.revoke(user.session_id)
    await audit.record(state, user, "signout", user.name, {}, address=address_of(request), background=True)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


CurrentUser = Annotated[SessionUser, Depends(current_user)]
