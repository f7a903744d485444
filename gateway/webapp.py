"""The officer web app at `/app`: our own static files from web/app/, served by the gateway itself.

Only serving lives here (the app's API routes are in their own routers). The files
are the repo's source, not installed assets, so they need no setting and no build
step: plain ES modules. Every answer carries a strict Content-Security-Policy (the
app loads nothing from any other host: a police network often has no internet) and
is gzip-compressed when the browser accepts it, which is what `bench/app_size.py`
measures. `Cache-Control: no-cache` makes the browser revalidate (ETag) rather
than keep a stale shell: the service worker (web/app/sw.js) is what keeps the
shell for offline use.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

APP_DIR = Path(__file__).resolve().parent.parent / "web" / "app"
APP_URL = "/app"

# 'self' only; geolocation is a browser permission, not a CSP directive. No inline script or style anywhere.
APP_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "manifest-src 'self'; worker-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HEADERS = [(b"content-security-policy", APP_CSP.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-cache")]
_TYPES = {".webmanifest": b"application/manifest+json", ".js": b"text/javascript; charset=utf-8"}


class _AppHeaders:
    """Adds the app's security and caching headers, and exact types for .webmanifest and .js files."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        suffix = Path(scope.get("path", "")).suffix

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-type"
                           or suffix not in _TYPES]
                if suffix in _TYPES:
                    headers.append((b"content-type", _TYPES[suffix]))
                # The service worker controls /app/ only (its default scope from /app/sw.js); said explicitly.
                if scope.get("path", "").endswith("/sw.js"):
                    headers.append((b"service-worker-allowed", APP_URL.encode() + b"/"))
                message = {**message, "headers": headers + _HEADERS}
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app: FastAPI, app_dir: Path = APP_DIR) -> None:
    """Mount the officer app at /app/ (and /app redirects there, so relative URLs in the page resolve)."""
    files = GZipMiddleware(_AppHeaders(StaticFiles(directory=app_dir, html=True, check_dir=False)), minimum_size=500)

    @app.get(APP_URL, include_in_schema=False)
    async def app_root() -> RedirectResponse:
        return RedirectResponse(f"{APP_URL}/", status_code=308)

    app.mount(f"{APP_URL}/", files, name="officer-app")
