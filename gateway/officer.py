"""The officer app's API (issue 14): wiring of sessions, and the officer routes.

`install(app, state, settings)` is the one hook `gateway.main` calls: it makes
the session store (refusing to start without an acceptable secret key outside
development), the sign-in limiter, and includes the routers of `gateway.auth`
and the officer routes.
"""
from __future__ import annotations

import logging

from gateway import auth
from gateway.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def install(app, state, settings) -> None:
    data_dir = state.config.data_dir
    state.sessions = auth.build_sessions(settings, data_dir)
    state.signin_limiter = RateLimiter(settings.signin_per_s, settings.signin_burst)
    app.include_router(auth.router)


async def start(state) -> None:
    """Background work of the officer routes (feeds); called from the gateway's lifespan."""


async def stop(state) -> None:
    if state.sessions is not None:
        state.sessions.close()
