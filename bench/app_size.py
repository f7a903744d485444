"""The officer app's first load: bytes transferred when /app is opened in a fresh browser (issue 14: ≤ 300 KB).

A gateway serves the app on a free loopback port (no broker: the page load publishes nothing; without
officer routes the app shows its sign-in screen, which is the first screen a new phone sees). Debian's
chromium opens /app/ in a fresh profile (empty HTTP cache, no service worker) and every response is
counted with Playwright's request sizes: headers plus body as transferred, i.e. gzip as served. Counted
until the service worker has installed and precached the shell, so its own requests count too.
The second figure sums the shell files gzip-compressed at level 6 (what the gateway's GZipMiddleware does)
as a cross-check that needs no browser.

    .venv/bin/python bench/app_size.py
"""
from __future__ import annotations

import asyncio
import gzip
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BUDGET_BYTES = 300 * 1000


class _NoProducer:
    async def send(self, topic, value=None, key=None):
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def serve(tmp: Path):
    import uvicorn

    from core.settings import Settings
    from gateway.main import create_app
    from tests.conftest import free_port, wait_until

    port = free_port()
    app = create_app(Settings(data_dir=tmp), producer=_NoProducer())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    wait_until(lambda: server.started, 60, "the gateway to listen")
    return server, f"http://127.0.0.1:{port}"


def browser_load(url: str) -> list[tuple[str, int, int]]:
    """(path, status, bytes transferred) for every response of the first load, in order."""
    from playwright.sync_api import sync_playwright

    rows: list[tuple[str, int, int]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 360, "height": 740})

        def finished(request):
            sizes = request.sizes()
            response = request.response()
            rows.append((request.url.removeprefix(url), response.status if response else 0,
                         sizes["responseHeadersSize"] + sizes["responseBodySize"]))

        context.on("requestfinished", finished)
        page = context.new_page()
        page.goto(f"{url}/app/")
        page.get_by_role("heading", name="Sign in").wait_for(timeout=60_000)
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # evaluate awaits the promise
        page.wait_for_load_state("networkidle")
        browser.close()
    return rows


def gzip_sum() -> list[tuple[str, int, int]]:
    app = REPO / "web" / "app"
    return [(p.name, p.stat().st_size, len(gzip.compress(p.read_bytes(), compresslevel=6)))
            for p in sorted(app.iterdir()) if p.is_file()]


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server, url = serve(Path(tmp))
        try:
            rows = browser_load(url)
        finally:
            server.should_exit = True
    print(f"{'request':40} {'status':>6} {'bytes':>8}")
    for path, status, size in rows:
        print(f"{path:40} {status:>6} {size:>8}")
    total = sum(r[2] for r in rows)
    print(f"first load, {len(rows)} responses: {total:,} bytes transferred ({total / 1000:.1f} KB; budget "
          f"{BUDGET_BYTES / 1000:.0f} KB)")
    files = gzip_sum()
    print(f"\n{'file':24} {'bytes':>8} {'gzip':>8}")
    for name, raw, gz in files:
        print(f"{name:24} {raw:>8} {gz:>8}")
    print(f"all app files: {sum(f[1] for f in files):,} bytes, {sum(f[2] for f in files):,} gzipped")


if __name__ == "__main__":
    main()
