"""Driving the real officer app (/app) as an officer's phone in a browser test: one definition of each step.

The officer app's own scenario (test_officer_app.py) and the control room's (test_control_room.py) both
play the phone with these: a Playwright browser context with geolocation permission and an emulated
position (`phone`), the sign-in screen (`sign_in`), and an emulated walk that waits until the app has
recorded each fix (`Fixes`). Chromium gives each emulated fix the time it was set; the phone's clock
(its fixes' times and the page's `Date`) runs `window.__fixAheadMs` ahead of that (0 until a walk
needs a pace), so that a walk a fix every 5 s takes the test no 5 s of waiting: a fix's `ts_ms` is
when the test moved the phone, plus how far the walk has moved the phone's clock on (`Fixes.after`).
"""
from __future__ import annotations

from playwright.sync_api import expect

PHONE = {"width": 360, "height": 740}

# The phone's clock, `window.__fixAheadMs` ahead of the machine's: the page's `Date` (now, and a Date
# made without arguments) and the time of each position it is given (the app reads positions only
# through these two calls), so that fixes and what the app dates itself (an activity) agree.
PHONE_CLOCK = """(() => {
  window.__fixAheadMs = 0;
  const RealDate = Date;
  class PhoneDate extends RealDate {
    constructor(...a) { super(...(a.length ? a : [RealDate.now() + window.__fixAheadMs])); }
    static now() { return RealDate.now() + window.__fixAheadMs; }
  }
  window.Date = PhoneDate;
  const geo = navigator.geolocation;
  if (!geo) return;
  const dated = (ok) => (p) => ok({ coords: p.coords, timestamp: p.timestamp + window.__fixAheadMs });
  const watch = geo.watchPosition.bind(geo), current = geo.getCurrentPosition.bind(geo);
  geo.watchPosition = (ok, err, opts) => watch(dated(ok), err, opts);
  geo.getCurrentPosition = (ok, err, opts) => current(dated(ok), err, opts);
})();"""
TIMEOUT_MS = 90_000  # a busy machine: every condition on the phone gets a generous deadline


class Taps:
    """Every click a test makes on the phone, counted (the officer app's test asserts the count)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, locator) -> None:
        self.count += 1
        locator.click()


def phone(browser, url: str, at: tuple[float, float]):
    """A phone-sized browser context of its own (cookies, storage) at `at`, with location allowed."""
    context = browser.new_context(viewport=PHONE, geolocation={"latitude": at[0], "longitude": at[1], "accuracy": 5},
                                  permissions=["geolocation"], base_url=url)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(PHONE_CLOCK)
    return context, context.new_page()


def sign_in(page, taps: Taps, user: dict) -> None:
    """Open the app and sign in through its form (`user`: {"user", "secret"}); typing is not a tap."""
    page.goto("/app/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_label("User name").fill(user["user"])
    page.get_by_label("Password").fill(user["secret"])
    taps(page.get_by_role("button", name="Sign in"))


def recorded(page) -> int:
    """How many fixes the app recorded since the page opened (its outbox counter)."""
    return int(page.locator("#outbox").get_attribute("data-recorded") or 0)


def pending(page) -> int:
    """Positions and activities waiting in the app's outbox."""
    return int(page.locator("#outbox").get_attribute("data-pending") or 0)


class Fixes:
    """Moves the emulated phone and waits until the app has recorded each fix (its outbox counter)."""

    def __init__(self, context, page, at: tuple[float, float]):
        self.context, self.page, self.at = context, page, at
        self.recorded = recorded(page)
        self.fix_ms = page.evaluate("Date.now()")  # the phone's clock at the last fix set

    def after(self, ms: float) -> None:
        """Move the phone's clock on until it is `ms` past the last fix (not at all if it already is).

        A visit's minutes grow only as fixes' own times do: the walk needs fixes dated at its pace, not
        the test to wait for them. The clock only ever moves on, so fixes stay in order.
        """
        self.page.evaluate("(t) => { window.__fixAheadMs += Math.max(0, t - Date.now()); }", self.fix_ms + ms)

    def move(self, lat: float, lon: float) -> None:
        self.fix_ms = self.page.evaluate("Date.now()")
        self.context.set_geolocation({"latitude": lat, "longitude": lon, "accuracy": 5})
        self.page.wait_for_function("(n) => Number(document.getElementById('outbox').dataset.recorded || 0) > n",
                                    arg=self.recorded)
        self.recorded = recorded(self.page)
        self.at = (lat, lon)

    def follow(self, points: list[tuple[float, float]]) -> None:
        """One fix at each point in turn, a second apart on the phone's clock."""
        for lat, lon in points:
            self.after(1000)  # the walk's pace: fixes a second apart on the phone's clock
            self.move(lat, lon)

    def walk(self, to: tuple[float, float], steps: int) -> None:
        """In a straight line from where the phone is to `to`, in `steps` fixes."""
        start = self.at
        self.follow([(start[0] + (to[0] - start[0]) * i / steps, start[1] + (to[1] - start[1]) * i / steps)
                     for i in range(1, steps + 1)])
