"""The officer app end to end in a real browser against the real system (issue 14).

A real Kafka broker (the integration suite's session broker), a worker that owns the embedded
ClickHouse store, and a `hotspot gateway` process serving /app and the officer API. Six hot spots
around a start point are published and a crossover trial covering today is allocated, so half of them
are treated today. Debian's chromium (Playwright for Python, `executable_path`, no browser download)
plays the officer's phone at 360×740, with its position emulated (`context.set_geolocation`) and its
network cut and restored (`context.set_offline`).

How taps are counted: every click or tap this test makes goes through one wrapper, `Taps.__call__`
(tests/e2e/officer_app.py, the phone's steps this test shares with the control room's), which adds
one and then clicks; nothing else in the test clicks. Typing into a field is not a tap (sign-in's
name and password). The count starts when the app is opened already signed in and OFF
duty (a stricter start than "on duty") and stops when the direction (name, briefing, why) is on
screen: the duty switch, then "Take me to a hot spot", i.e. 2 taps, asserted ≤ 3.

Timing: the worker's visit confirmation is shortened through HOTSPOT_PROCESSING (enter 2 s, exit 4 s)
so the walk takes seconds; to see the minutes grow the officer then stands in the hot spot for 70 s
(a fix every 5 s). The fixes the test emulates are paced on the wall clock because the processors
count time from the fixes' own clock: that pace is the simulated walk, not a wait for readiness.
Every wait for the system is a condition (`expect`, `wait_for_function`, `wait_until`) with a
generous deadline, so a busy machine makes the test slower, never red.

Screenshots of each screen at 360×740 and 1280×800 go to tests/e2e/artifacts/officer-app/ (git-ignored,
like the API docs' screenshots beside it).
"""
from __future__ import annotations

import csv
import json
import math
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import HOTSPOT, free_port, wait_until
from tests.e2e.officer_app import PHONE, TIMEOUT_MS, Fixes, Taps, pending, phone, sign_in
from tests.e2e.test_api_docs import ARTIFACTS as DOCS_ARTIFACTS, CHROMIUM
from tests.integration.conftest import kafka_broker  # noqa: F401  (the session's real broker, reused)
from tests.integration.live import LiveSystem

pytestmark = pytest.mark.integration

ARTIFACTS = DOCS_ARTIFACTS / "officer-app"
DESKTOP = {"width": 1280, "height": 800}
START = (51.7520, -1.2577)          # the officer's start, outside every hot spot
HALF_SIDE_M = 60.0                  # hot spots are squares 120 m across
OFFSETS_M = {"HS-101": (250, 0), "HS-102": (0, 250), "HS-103": (-250, 0), "HS-104": (0, -250),
             "HS-105": (180, 180), "HS-106": (-180, -180)}   # (east, north) of START
# Visits confirmed in seconds, not the field's 30 s / 60 s; long signal loss so silence never ends one.
PROCESSING = {"enter_confirm_s": 2, "exit_confirm_s": 4, "signal_loss_s": 3600}


def offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    return (lat + north_m / 111_320.0, lon + east_m / (111_320.0 * math.cos(math.radians(lat))))


def centre(hotspot_id: str) -> tuple[float, float]:
    return offset(*START, *OFFSETS_M[hotspot_id])


def hotspots_geojson(path: Path) -> Path:
    features = []
    for hid, (east, north) in OFFSETS_M.items():
        ring = [offset(*START, east + dx, north + dy) for dx, dy in
                ((-HALF_SIDE_M, -HALF_SIDE_M), (HALF_SIDE_M, -HALF_SIDE_M), (HALF_SIDE_M, HALF_SIDE_M),
                 (-HALF_SIDE_M, HALF_SIDE_M), (-HALF_SIDE_M, -HALF_SIDE_M))]
        features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[lon, lat] for lat, lon in ring]]},
                         "properties": {"id": hid, "name": f"Street {hid[-1]}", "target_minutes": 15,
                                        "briefing": f"Violence at night near {hid}.\nBe seen on foot for 15 minutes.",
                                        "stats": {"crimes_12m": 20, "harm_days_12m": 3000}}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def shoot(page, name: str) -> None:
    """The screen as it is, at phone and desktop size (back to phone size after)."""
    for label, size in (("360", PHONE), ("1280", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(PHONE)


def trial_day_today(tz: str = "Europe/London") -> str:
    """The trial day now: a day runs 06:00 to 05:59 local time and is named by the date it starts."""
    return (datetime.now(ZoneInfo(tz)) - timedelta(hours=6)).date().isoformat()


@pytest.fixture
def patrol_system(kafka_broker, tmp_path):  # noqa: F811
    """Hot spots, today's trial arms, a worker, an officer and a supervisor, and a gateway serving /app."""
    live = LiveSystem(tmp_path / "var", kafka_broker, PROCESSING)
    hotspots = hotspots_geojson(tmp_path / "hotspots.geojson")
    live.hotspot("hotspots", "publish", str(hotspots))
    schedule = tmp_path / "schedule.csv"
    start = (datetime.now(ZoneInfo("Europe/London")) - timedelta(days=1)).date().isoformat()
    live.hotspot("allocate", "--hotspots", str(hotspots), "--design", "crossover", "--start", start, "--days", "3",
                 "--seed", "14", "--out", str(schedule), "--publish")
    with open(schedule) as fh:
        arms = {r["hotspot_id"]: r["arm"] for r in csv.DictReader(fh) if r["day"] == trial_day_today()}
    users = {role: json.loads(live.hotspot("users", "add", f"pc-{role}", "--role", role, "--json"))
             for role in ("officer", "supervisor")}
    live.start_worker()
    wait_until(lambda: int(live.scalar("SELECT count() FROM hotspot.allocations FINAL") or 0) == 18, 120,
               "the trial schedule to be recorded")
    port = free_port()
    log = tmp_path / "gateway.log"
    with open(log, "w") as fh:
        gateway = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "warning"], env=live.env,
                                   stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def connected() -> bool:
        assert gateway.poll() is None, f"gateway exited:\n{log.read_text()[-3000:]}"
        try:
            return httpx.get(url + "/healthz", timeout=2).json().get("kafka") == "connected"
        except (httpx.HTTPError, ValueError):
            return False

    try:
        wait_until(connected, 120, "the gateway to connect to Kafka", interval_s=0.2)
        yield {"url": url, "live": live, "arms": arms, "users": users}
    finally:
        gateway.terminate()
        gateway.wait(timeout=60)
        live.stop_worker()


@pytest.fixture
def browser():
    assert CHROMIUM.is_file(), "Debian's chromium is needed: `make setup` installs it (apt-get install chromium)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)  # a busy machine: conditions get a generous deadline
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            yield b
            b.close()
    finally:
        expect.set_options(timeout=5_000)  # Playwright's default, for the other tests


def test_officer_is_directed_in_two_taps_and_the_visit_counts_through_an_outage(patrol_system, browser):
    url, live, arms = patrol_system["url"], patrol_system["live"], patrol_system["arms"]
    officer = patrol_system["users"]["officer"]
    device_id = f"app-{officer['user']}"
    context, page = phone(browser, url, START)
    sent: list[tuple[str, dict | list, str | None]] = []  # (path, body, Idempotency-Key) the server accepted, in order
    page.on("response", lambda r: sent.append((r.url.split("?")[0].removeprefix(url), r.request.post_data_json,
                                               r.request.headers.get("idempotency-key")))
            if r.request.method == "POST" and r.status < 300 else None)

    taps = Taps()
    sign_in(page, taps, officer)
    expect(page.get_by_role("switch", name="On duty")).to_be_visible()
    assert taps.count == 1

    # The app opened, signed in and off duty: count from here to the direction on screen.
    page.goto("/app/")
    duty = page.get_by_role("switch", name="On duty")
    expect(duty).not_to_be_checked()
    expect(page.get_by_text("Off duty: your location is not shared.")).to_be_visible()
    shoot(page, "1-signed-in-off-duty")
    taps.count = 0
    taps(duty)
    expect(duty).to_be_checked()
    expect(page.get_by_text(re.compile("On duty: your location is shared"))).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/v1/directions")) as answer:
        taps(page.get_by_role("button", name="Take me to a hot spot"))
    heading = page.get_by_role("heading", name=re.compile(r"^Go to .*\(HS-\d+\)$"))
    expect(heading).to_be_visible()
    expect(page.locator("#dir-briefing")).to_contain_text("Be seen on foot")
    expect(page.locator("#dir-why")).not_to_be_empty()
    assert taps.count <= 3, f"{taps.count} taps from the opened app to the direction"
    assert taps.count == 2
    shoot(page, "3-direction")

    # The direction: a treated hot spot, offered from a set of treated ones only, recorded in ClickHouse.
    target = re.search(r"\((HS-\d+)\)$", heading.inner_text()).group(1)
    assert arms[target] == "treatment", f"{target} is {arms[target]} today"
    drawn = answer.value.json()  # the draw as recorded for audit: only treated hot spots were in it
    assert drawn["hotspot"]["id"] == target and target in drawn["eligible"]
    assert {arms[h] for h in drawn["eligible"]} == {"treatment"} and len(drawn["weights"]) == len(drawn["eligible"])
    assignment_id = page.locator("#screen-direction").get_attribute("data-assignment")
    assert page.locator("#dir-geo").get_attribute("href").startswith("geo:")
    assert page.locator("#dir-map").get_attribute("href").startswith("http")
    row = wait_until(lambda: live.sql("SELECT hotspot_id, user, device_id, arm, candidates FROM hotspot.assignments FINAL "
                                      f"WHERE assignment_id = '{assignment_id}'"), 90, "the assignment in ClickHouse",
                     interval_s=0.5)[0]
    assert (row["hotspot_id"], row["user"], row["device_id"]) == (target, officer["user"], device_id)
    assert row["arm"] in ("treatment", "treated")
    directions = [body for path, body, _ in sent if path == "/v1/directions"]
    assert len(directions) == 1

    # Home, with the nearby treated hot spots (control ones are not listed during a trial).
    taps(page.get_by_role("button", name="Back"))
    listed = page.locator("#nearby li")
    expect(listed.first).to_be_visible()
    assert {arms[h] for h in listed.evaluate_all("els => els.map(e => e.dataset.hotspot)")} == {"treatment"}
    expect(listed.first).to_contain_text(re.compile(r"15 minutes today"))
    shoot(page, "2-home-on-duty")

    # Walk into the hot spot and stay: the app shows the time in it from the live visit state.
    expect(page.locator("#outbox")).to_have_attribute("data-recorded", re.compile(r"^[1-9]"))  # on duty at START
    fixes = Fixes(context, page, START)
    inside = centre(target)
    fixes.walk(inside, 4)
    visit = page.locator("#visit")
    # Standing about (small jitter), a fix every 5 s on the phone's clock, well past the worker's enter
    # confirmation (enter_confirm_s of fix time): then the visit shows.
    for i in range(1, int(PROCESSING["enter_confirm_s"] // 5) + 3):
        fixes.after(5000)
        fixes.move(*offset(*inside, 3 * math.cos(i), 3 * math.sin(i)))
    expect(visit).to_be_visible(timeout=TIMEOUT_MS * 2)
    expect(visit).to_have_text(re.compile(rf"^In {target} \(Street {target[-1]}\) for \d+ of 15 minutes$"))
    # Stay a minute and more, a fix every 5 s as a phone standing still might send: the time shown grows.
    first_minutes = int(re.search(r" for (\d+) of", visit.inner_text()).group(1))
    for i in range(14):
        fixes.after(5000)  # the officer standing in the hot spot: the phone's clock 5 s past the last fix
        fixes.move(*offset(*inside, 2 * math.cos(i), 2 * math.sin(i)))
    page.wait_for_function("(m) => Number((/ for (\\d+) of 15 minutes$/.exec(document.getElementById('visit')"
                           ".textContent) || [])[1]) > m", arg=first_minutes)
    shoot(page, "4-in-hot-spot")

    # Offline: walk out, log an activity, walk on; all of it waits on the phone.
    expect(page.locator("#outbox")).to_have_attribute("data-pending", "0")
    before_outage = len(sent)
    context.set_offline(True)
    expect(page.get_by_text(re.compile("^Offline: positions and activity are kept"))).to_be_visible()
    outside = offset(*inside, 0, -3 * HALF_SIDE_M)
    fixes.walk(outside, 3)
    taps(page.get_by_role("button", name="Log activity"))
    expect(page.get_by_role("heading", name="Log activity")).to_be_visible()
    kind = page.get_by_label("What did you do?")
    expect(kind.locator("option").first).to_be_attached()
    category = kind.locator("option").first.get_attribute("value")
    page.get_by_label("Note").fill("Spoke to two shop owners about the late-night trouble.")
    taps(page.get_by_role("button", name="Save activity"))
    expect(page.get_by_text("Saved on this phone: it is sent when back online.")).to_be_visible()
    shoot(page, "5-activity-offline")
    taps(page.get_by_role("button", name="Back"))
    fixes.walk(offset(*outside, 0, -30), 6)  # well past the exit confirmation, on the phone's clock
    expect(visit).to_have_text(re.compile(r"\(last known: no connection\)$"))
    assert pending(page) > 0
    expect(page.locator("#outbox")).to_contain_text("Waiting to send")
    shoot(page, "6-offline-queue")
    assert len(sent) == before_outage  # nothing got through while offline

    # Back online, and the answer to the first batch is lost on the way back (the gateway got it and
    # published it): the app must send it again with the same Idempotency-Key, and nothing is stored twice.
    lost: list[str] = []

    def lose_the_first_answer(route):
        if lost:
            return route.fallback()
        response = route.fetch()
        assert response.status == 202
        lost.append(route.request.headers["idempotency-key"])
        route.abort("connectionreset")

    page.route("**/v1/pings", lose_the_first_answer)
    context.set_offline(False)
    expect(page.locator("#outbox")).to_have_attribute("data-pending", "0")
    page.unroute("**/v1/pings")
    assert len(lost) == 1 and sent[before_outage][2] == lost[0]  # the same batch, the same key

    # In order: the positions recorded before the activity, then the activity, then the later positions.
    after = sent[before_outage:]
    kinds = [path for path, _, _ in after]
    assert "/v1/activity" in kinds and set(kinds) == {"/v1/pings", "/v1/activity"}
    activity = after[kinds.index("/v1/activity")][1]
    assert activity["kind"] == category and activity["assignment_id"] == assignment_id
    activity_ms = datetime.fromisoformat(activity["ts"].replace("Z", "+00:00")).timestamp() * 1000
    ping_ts = [(i, p["ts_ms"]) for i, (path, body, _) in enumerate(after) if path == "/v1/pings" for p in body]
    assert [ts for _, ts in ping_ts] == sorted(ts for _, ts in ping_ts)
    assert all((ts < activity_ms) == (i < kinds.index("/v1/activity")) for i, ts in ping_ts)

    # Everything arrived once: every fix the phone recorded is a stored ping of the officer's device.
    all_ts = sorted(p["ts_ms"] for path, body, _ in sent if path == "/v1/pings" for p in body)
    assert len(all_ts) == len(set(all_ts)) == fixes.recorded
    wait_until(lambda: int(live.scalar(f"SELECT count() FROM hotspot.pings FINAL WHERE device_id = '{device_id}'")) ==
               len(all_ts), 120, "every ping in ClickHouse", interval_s=0.5)
    assert int(live.scalar(f"SELECT count() FROM hotspot.pings_rejected FINAL WHERE device_id = '{device_id}'")) == 0
    stored = wait_until(lambda: (lambda rows: len(rows) >= 2 and rows)(
        live.sql(f"SELECT kind, note, assignment_id FROM hotspot.activity FINAL WHERE user = '{officer['user']}'")),
        120, "the activity in ClickHouse", interval_s=0.5)
    # The log entry, and the duty switch the officer turned on (published on the same topic).
    assert sorted((r["kind"], r["assignment_id"]) for r in stored) == sorted([(category, assignment_id), ("duty_on", "")])

    # The visit is complete, with its dwell.
    visits = wait_until(lambda: live.sql("SELECT hotspot_id, dwell_s, end_reason FROM hotspot.visits FINAL "
                                         f"WHERE device_id = '{device_id}' AND exited_at IS NOT NULL"),
                        120, "the visit to close", interval_s=0.5)
    assert [v["hotspot_id"] for v in visits] == [target]
    assert float(visits[0]["dwell_s"]) > 60  # the minute and more it stood there

    # Off duty: the watch stops at once, and a move is not recorded (waited over two status polls, during
    # which an emulated fix would have been delivered had the watch still run).
    taps(duty)
    expect(duty).not_to_be_checked()
    expect(duty).to_have_attribute("data-watching", "false")
    expect(page.get_by_text("Off duty: your location is not shared.")).to_be_visible()
    context.set_geolocation({"latitude": START[0], "longitude": START[1], "accuracy": 5})
    for _ in range(2):
        with page.expect_response(lambda r: r.url.endswith("/v1/me/status")):
            pass
    assert int(page.locator("#outbox").get_attribute("data-recorded")) == fixes.recorded
    wait_until(lambda: live.sql(f"SELECT kind FROM hotspot.activity FINAL WHERE user = '{officer['user']}' "
                                "AND kind = 'duty_off'"), 120, "the duty switch off in ClickHouse", interval_s=0.5)
    # Signing out ends the session on the server: the app asks for a sign-in and the cookie no longer works.
    taps(page.get_by_role("button", name="Sign out"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("fetch('/v1/session').then((r) => r.status)") == 401
    context.close()


def test_a_supervisor_signed_in_to_the_officer_app_gets_403_for_duty_directions_and_pings(patrol_system, browser):
    url = patrol_system["url"]
    context, page = phone(browser, url, START)
    taps = Taps()
    sign_in(page, taps, patrol_system["users"]["supervisor"])
    expect(page.get_by_text("This app is for officers: your role cannot take directions.")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/v1/duty") and r.request.method == "POST") as answer:
        taps(page.get_by_role("switch", name="On duty"))
    assert answer.value.status == 403
    expect(page.get_by_text("Your role cannot go on duty in this app: it is for officers.")).to_be_visible()
    expect(page.get_by_role("switch", name="On duty")).not_to_be_checked()
    shoot(page, "7-wrong-role")
    # The officer routes straight from the page, with the session's cookie and CSRF token.
    statuses = page.evaluate("""async () => {
        const s = await (await fetch('/v1/session')).json();
        const post = (path, body) => fetch(path, {method: 'POST', headers: {'Content-Type': 'application/json',
            'X-CSRF-Token': s.csrf_token}, body: JSON.stringify(body)}).then((r) => r.status);
        return [await post('/v1/directions', {lat: 51.752, lon: -1.2577}),
                await post('/v1/pings', [{ts_ms: Date.now(), lat: 51.752, lon: -1.2577}]),
                await post('/v1/activity', {client_id: 'x1', ts: new Date().toISOString(), kind: 'search', note: ''})];
    }""")
    assert statuses == [403, 403, 403]

    # Signing out with no network: the app forgets the user at once and ends the session (an HttpOnly
    # cookie only the server can end) as soon as it is opened online again.
    context.set_offline(True)
    taps(page.get_by_role("button", name="Sign out"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    context.set_offline(False)
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.wait_for_function("() => localStorage.getItem('hp_sign_out_pending') === null")
    assert page.evaluate("fetch('/v1/session').then((r) => r.status)") == 401
    context.close()


def test_going_off_duty_without_a_network_stays_off_through_reloads_and_reaches_the_server(patrol_system, browser):
    context, page = phone(browser, patrol_system["url"], START)
    taps = Taps()
    sign_in(page, taps, patrol_system["users"]["officer"])
    duty = page.get_by_role("switch", name="On duty")
    taps(duty)
    expect(duty).to_have_attribute("data-watching", "true")
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")  # the shell can open offline now

    context.set_offline(True)
    taps(duty)
    expect(duty).to_have_attribute("data-watching", "false")  # stopped on the phone, with no network
    page.reload()  # from the service worker's cache, with the remembered user
    expect(page.get_by_text("pc-officer")).to_be_visible()
    expect(duty).not_to_be_checked()
    expect(duty).to_have_attribute("data-watching", "false")

    context.set_offline(False)
    page.reload()
    expect(duty).not_to_be_checked()
    page.wait_for_function("() => localStorage.getItem('hp_duty_off_unsent') === null")
    assert page.evaluate("fetch('/v1/duty').then((r) => r.json())")["on_duty"] is False
    context.close()
