"""The API docs in a real browser with the outside network cut, as on a police network without internet.

The gateway runs under uvicorn on a free loopback port, with a producer that keeps what it is given (no
broker needed: the docs never publish). Debian's chromium is driven by Playwright (never `playwright install`:
the browser comes from apt, see the Makefile); every request to a host other than 127.0.0.1 is aborted and
recorded, so a page that still reached for a CDN or web fonts fails here. Screenshots go to
tests/e2e/artifacts/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright

from core.settings import Settings
from gateway.main import create_app
from tests.conftest import free_port, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


class KeepingProducer:
    async def send(self, topic, value=None, key=None):
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@pytest.fixture
def gateway_url(tmp_path):
    port = free_port()
    app = create_app(Settings(data_dir=tmp_path), producer=KeepingProducer())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 60, "the gateway to listen")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
def offline_page():
    """A chromium page whose requests to any non-loopback host are aborted; `page.blocked` lists them."""
    assert CHROMIUM.is_file(), "Debian's chromium is needed: `make setup` installs it (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        blocked: list[str] = []

        def only_loopback(route):
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort("internetdisconnected")

        page.route("**/*", only_loopback)
        page.blocked = blocked
        yield page
        browser.close()


def test_swagger_ui_lists_the_operations_with_the_network_cut(gateway_url, offline_page):
    page = offline_page
    page.goto(f"{gateway_url}/docs")
    operation = page.locator(".opblock-post", has_text="/v1/pings").first
    expect(operation).to_be_visible(timeout=30_000)
    expect(page.locator(".opblock-summary-path", has_text="/v1/owntracks").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=True)
    assert page.blocked == []


def test_redoc_renders_the_api_with_the_network_cut(gateway_url, offline_page):
    page = offline_page
    page.goto(f"{gateway_url}/redoc")
    expect(page.get_by_role("heading", name="Hotspot Patrol gateway").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("/v1/pings").first).to_be_attached()
    page.screenshot(path=str(ARTIFACTS / "redoc.png"), full_page=False)
    assert page.blocked == []
