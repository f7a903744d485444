"""The officer app's shell in a real browser: served from the gateway alone, installable, offline once
loaded, usable at 360 px, labelled, contrast and tap-target sizes as the issue asks (issue 14).

These need no officer routes (the live scenario with sign-in, directions, pings and activity is
test_officer_app.py): the gateway runs with a producer that keeps nothing, as for the API docs. Every
request to a host other than 127.0.0.1 is aborted and recorded, so a CDN anywhere fails the test.
"""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.test_api_docs import ARTIFACTS, gateway_url, offline_page  # noqa: F401  (fixtures reused)

# Contrast and tap targets measured in the page itself, on every visible control of the screen shown.
MEASURE = """() => {
  const lum = (rgb) => {
    const [r, g, b] = rgb.match(/[\\d.]+/g).slice(0, 3).map(Number).map((c) => {
      c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const bg = getComputedStyle(e).backgroundColor;
      if (bg && !bg.startsWith("rgba(0, 0, 0, 0)") && bg !== "transparent") return bg;
    }
    return "rgb(255, 255, 255)";
  };
  const out = {small: [], lowContrast: [], unlabelled: [], overflow: document.documentElement.scrollWidth > innerWidth};
  for (const el of document.querySelectorAll("button, a, input, select, textarea")) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || el.closest("[hidden]")) continue;
    const name = el.id || el.textContent.trim();
    // The switch's whole label is its tap target (the label wraps the input).
    const target = el.closest("label") ? el.closest("label").getBoundingClientRect() : r;
    if (target.height < 44 || target.width < 44) out.small.push(`${name} ${Math.round(target.width)}x${Math.round(target.height)}`);
    if (["INPUT", "SELECT", "TEXTAREA"].includes(el.tagName) && !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
      out.unlabelled.push(name);
  }
  for (const el of document.querySelectorAll("h1, h2, h3, p, label, button, a, li, span, div")) {
    if (el.closest("[hidden]") || !el.getClientRects().length || !el.childNodes.length) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const a = lum(getComputedStyle(el).color), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) out.lowContrast.push(`${el.tagName}#${el.id} ${ratio.toFixed(2)}`);
  }
  return out;
}"""


def assert_accessible(page) -> None:
    found = page.evaluate(MEASURE)
    assert found == {"small": [], "lowContrast": [], "unlabelled": [], "overflow": False}


def test_app_shell_loads_from_the_gateway_alone_and_opens_offline_once_loaded(gateway_url, offline_page):
    page = offline_page
    page.set_viewport_size({"width": 360, "height": 740})
    response = page.goto(f"{gateway_url}/app")
    assert response.ok and page.url == f"{gateway_url}/app/"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    # No officer routes on this gateway: GET /v1/session is a 404, so the app asks the officer to sign in.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
    expect(page.get_by_label("User name")).to_be_visible()
    expect(page.get_by_label("Password")).to_be_visible()
    assert_accessible(page)
    page.screenshot(path=str(ARTIFACTS / "app-signin-360.png"), full_page=True)

    manifest = page.evaluate("fetch('manifest.webmanifest').then(r => r.json())")
    assert manifest["start_url"] == "/app/" and manifest["display"] == "standalone" and manifest["icons"]
    # The service worker takes control, then the shell opens with the network gone.
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # evaluate awaits the promise
    page.reload()
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)
    page.context.set_offline(True)
    try:
        reloaded = page.reload()
        assert reloaded.from_service_worker  # the shell came from the worker's cache, not the network
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
        expect(page.get_by_role("status").filter(has_text=re.compile("^Offline"))).to_be_visible()
    finally:
        page.context.set_offline(False)
    assert page.blocked == []


def test_every_screen_is_labelled_readable_and_tappable_at_360_px(gateway_url, offline_page):
    page = offline_page
    for width, height in ((360, 740), (1280, 800)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"{gateway_url}/app/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=30_000)
        # Every screen shown in turn without a backend (the live test shows them with data).
        for screen in ("signin", "home", "direction", "activity"):
            page.evaluate("""(name) => {
                for (const s of document.querySelectorAll('.screen')) s.hidden = s.id !== 'screen-' + name;
            }""", screen)
            assert_accessible(page)
    assert page.blocked == []


def test_chromium_finds_nothing_stopping_the_app_from_being_installed(gateway_url, tmp_path):
    """Chromium's own installability check (manifest, icons, service worker, secure origin), through CDP.

    A persistent profile: Playwright's usual contexts are incognito, where Chromium never offers to install.
    """
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_api_docs import CHROMIUM

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=str(CHROMIUM),
                                                        args=["--no-sandbox"])
        try:
            page = context.new_page()
            page.goto(f"{gateway_url}/app/")
            page.evaluate("navigator.serviceWorker.ready.then(() => true)")  # evaluate awaits the promise
            page.reload()
            page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=30_000)
            cdp = context.new_cdp_session(page)
            assert cdp.send("Page.getAppManifest").get("errors") == []
            assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        finally:
            context.close()
