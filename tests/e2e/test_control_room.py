"""The control room in a real browser against a real system: Kafka, a worker, a gateway process.

A supervisor signs in to /control in Debian's chromium (Playwright, never `playwright install`). The
officer is a second browser context of the same browser running the real officer app (/app) at phone
size, with location allowed and emulated (`context.set_geolocation`, the steps shared with
test_officer_app.py in tests/e2e/officer_app.py): the officer signs in on the app's screen, taps the duty
switch and walks into a hot spot and out again, and the app sends its recorded fixes in batches to
POST /v1/pings. A fix the phone sends off duty (put in the app's outbox) must never be shown. The
supervisor's map must show the officer inside, and the ticker the visit with its dwell. The
supervisor's browser reaches the gateway through a TCP proxy that the test can cut (the officer's
phone does not): the feed must resume afterwards with every event id in sequence (no snapshot, no
gap). Going off duty on the app's switch takes the officer off the map; the officer's session gets
403 on the page and the feed, and the audit table holds the supervisor's views.

Timings are measured and written to tests/e2e/artifacts/control_room_timings.json, never asserted:
bench/control_room.py measures them under load. A ping's acceptance is read off the officer's network
(the 202 to its batch, Chromium's resource timing) and compared with the moment the supervisor's page
drew it; the fix's own time and the batch's send are recorded too, since the app waits up to its
batch interval (5 s) before sending. The walk is paced a fix a second on the phone's clock (the
worker's confirm periods run on the fixes' times); every wait for the system is a condition with a
generous deadline. Screenshots at 1280x800 and 360x740, one with the tile server gone, go to the same
folder.
"""
from __future__ import annotations

import io
import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import HOTSPOT, free_port, wait_until
from tests.e2e.officer_app import TIMEOUT_MS, Fixes, Taps, pending, phone, recorded, sign_in
from tests.integration.live import LiveSystem

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CENTRE = (51.5000, -0.1000)
HALF_LAT, HALF_LON = 0.00045, 0.0007  # about 100 m x 97 m
PROCESSING = {"enter_confirm_s": 5.0, "exit_confirm_s": 5.0}


class CuttableProxy:
    """A loopback TCP forwarder whose connections the test can cut (and refuse) and then allow again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.cut_off = False
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.cut_off = True
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self._server.close()


class TileServer:
    """A stand-in for a force's tile server: every tile a plain light-grey PNG."""

    def __init__(self):
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (256, 256), (226, 230, 222)).save(buf, "PNG")
        png = buf.getvalue()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args):
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def hotspot_file(path: Path) -> Path:
    lat, lon = CENTRE
    ring = [[lon - HALF_LON, lat - HALF_LAT], [lon + HALF_LON, lat - HALF_LAT], [lon + HALF_LON, lat + HALF_LAT],
            [lon - HALF_LON, lat + HALF_LAT], [lon - HALF_LON, lat - HALF_LAT]]
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
         "properties": {"id": "HS-MARKET", "name": "Market Square", "briefing": "Evening violence near the bars.",
                        "target_minutes": 15}}]}
    path.write_text(json.dumps(doc))
    return path


def add_user(live: LiveSystem, name: str, role: str) -> str:
    return json.loads(live.hotspot("users", "add", name, "--role", role, "--json"))["secret"]


@pytest.fixture
def system(make_broker, tmp_path):
    broker = make_broker()
    broker.start()
    live = LiveSystem(tmp_path / "var", broker, processing=PROCESSING)
    live.hotspot("hotspots", "publish", str(hotspot_file(tmp_path / "hotspots.geojson")))
    live.start_worker()
    tiles = TileServer()
    port = free_port()
    env = {**live.env, "HOTSPOT_LIVE_POSITION_INTERVAL_S": "0",
           "HOTSPOT_MAP_TILE_URL": f"http://127.0.0.1:{tiles.port}/{{z}}/{{x}}/{{y}}.png",
           "HOTSPOT_MAP_TILE_ATTRIBUTION": "test tiles"}
    log = (tmp_path / "gateway.log").open("w")
    gateway = subprocess.Popen([HOTSPOT, "gateway", "--port", str(port), "--log-level", "warning"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def connected() -> bool:
        assert gateway.poll() is None, f"gateway exited: {(tmp_path / 'gateway.log').read_text()[-3000:]}"
        try:
            return httpx.get(url + "/healthz", timeout=1).json()["kafka"] == "connected"
        except httpx.HTTPError:
            return False

    proxy = None
    try:
        wait_until(connected, 60, "the gateway to connect to Kafka", interval_s=0.1)
        proxy = CuttableProxy(port)
        yield {"live": live, "url": url, "proxied": f"http://127.0.0.1:{proxy.port}", "proxy": proxy, "tiles": tiles}
    finally:
        if proxy is not None:
            proxy.close()
        tiles.stop()
        gateway.terminate()
        gateway.wait(timeout=30)
        live.stop_worker()


class PhonePings:
    """What the officer app sent to POST /v1/pings and the gateway accepted, in order, read off the network.

    Every fix of a batch gets the batch's times from Chromium's resource timing (epoch ms, the clock the
    supervisor's page reads too): `sent_wall_ms` when the request started, `accepted_wall_ms` when the
    202's headers came back, i.e. when the gateway had Kafka's acknowledgement.
    """

    def __init__(self, page):
        self.accepted: list[dict] = []  # {ts_ms, lat, lon, sent_wall_ms, accepted_wall_ms}
        self._seen: list[tuple] = []     # answers not checked yet (checking calls the browser: not in the handler)
        page.on("response", self._answer)

    def _answer(self, response) -> None:
        request = response.request
        if request.method == "POST" and request.url.split("?")[0].endswith("/v1/pings"):
            self._seen.append((response, request.post_data_json, dict(request.timing)))

    def settled(self) -> list[dict]:
        """The accepted fixes so far, after checking each answer: a 202 that took the whole batch."""
        while self._seen:
            response, batch, timing = self._seen.pop(0)
            assert response.status == 202 and response.json()["accepted"] == len(batch), response.text()
            sent_ms = timing["startTime"]
            for p in batch:
                self.accepted.append({"ts_ms": p["ts_ms"], "lat": p["lat"], "lon": p["lon"], "sent_wall_ms": round(sent_ms),
                                      "accepted_wall_ms": round(sent_ms + timing["responseStart"])})
        return self.accepted


def all_accepted(page, pings: PhonePings, off_duty: int) -> list[dict] | None:
    """The accepted fixes once every fix the app recorded has been accepted (its outbox empty), else None.
    `off_duty`: fixes accepted that the app did not record on duty (they are not in its counter)."""
    waiting = pending(page)  # a call into the browser: Playwright hands `pings` the responses it has seen
    accepted = pings.settled()
    return accepted if waiting == 0 and len(accepted) == off_duty + recorded(page) else None


def room(page, expression: str):
    return page.evaluate(f"() => {{ const r = window.controlRoom; return {expression}; }}")


def test_supervisor_sees_the_officer_enter_and_leave_and_the_feed_resumes_after_a_cut(system):
    live, url, proxied, proxy = system["live"], system["url"], system["proxied"], system["proxy"]
    supervisor_secret = add_user(live, "sgt-control", "supervisor")
    officer = {"user": "pc-walker", "secret": add_user(live, "pc-walker", "officer")}
    assert CHROMIUM.is_file(), "Debian's chromium is needed: `make setup` installs it (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    timings: dict = {}
    lat0, lon0 = CENTRE
    approach = [(lat0 - 0.0012 + i * 0.00012, lon0) for i in range(8)]  # 13 m a fix: a car's pace
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()

        # No session: the page sends the browser to sign in.
        page.goto(f"{proxied}/control")
        assert page.url.endswith("/control/signin")
        page.fill("#name", "sgt-control")
        page.fill("#secret", supervisor_secret)
        page.click("button[type=submit]")
        page.wait_for_url(f"{proxied}/control")
        wait_until(lambda: room(page, "r.snapshots") >= 1, 60, "the first snapshot on the page")
        expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=30_000)
        wait_until(lambda: room(page, "Object.keys(r.hotspots).length") == 1, 30, "the hot spot on the map")

        # The officer's phone: a second browser context (cookies and storage of its own) running the officer
        # app, location allowed and emulated, talking to the gateway directly (the proxy is the supervisor's).
        phone_context, phone_page = phone(browser, url, approach[0])
        pings = PhonePings(phone_page)
        sign_in(phone_page, Taps(), officer)
        duty = phone_page.get_by_role("switch", name="On duty")
        expect(duty).to_be_visible(timeout=TIMEOUT_MS)  # signed in
        expect(duty).not_to_be_checked()
        device = phone_page.evaluate("fetch('/v1/session').then((r) => r.json())")["device_id"]
        assert device == "app-pc-walker"

        # Off duty the app records no fix, but a phone may still send one (the app's outbox sends whatever it
        # holds, on duty or not): one put in its outbox goes out with the app's next batch. The map must not
        # show it.
        phone_page.evaluate("""async ([user, at]) => {
            const outbox = await import('/app/outbox.js');
            await outbox.add(user, 'ping', {ts_ms: Date.now(), lat: at[0], lon: at[1], accuracy_m: 5});
        }""", [officer["user"], list(approach[0])])
        wait_until(lambda: all_accepted(phone_page, pings, off_duty=1), 90, "the app to send the off-duty fix")
        assert recorded(phone_page) == 0, "the app recorded a position off duty"

        # On duty: one tap on the switch, then along the approach, a fix a second.
        phone_context.set_geolocation({"latitude": approach[0][0], "longitude": approach[0][1], "accuracy": 5})
        # ^ Chromium dates an emulated fix when it is set: the first fix on duty is dated now, not at the start
        duty.click()
        expect(duty).to_be_checked(timeout=TIMEOUT_MS)
        expect(duty).to_have_attribute("data-watching", "true", timeout=TIMEOUT_MS)
        phone_page.wait_for_function("() => Number(document.getElementById('outbox').dataset.recorded || 0) > 0")
        fixes = Fixes(phone_context, phone_page, approach[0])
        fixes.follow(approach[1:])
        accepted = wait_until(lambda: all_accepted(phone_page, pings, off_duty=1), 90, "the approach's fixes accepted")
        assert [(p["lat"], p["lon"]) for p in accepted[1:]] == approach  # one fix a point, the first when duty went on
        wait_until(lambda: room(page, f"(r.officers[{device!r}] || {{}}).ts_ms") == accepted[-1]["ts_ms"], 30,
                   "the officer's latest position on the page")
        shown = room(page, f"r.shownAt[{device!r}]")
        # The app records a fix, then sends the fixes waiting in its outbox as one batch every few seconds;
        # the page may draw a position before the phone has read its 202 (the gateway answers after Kafka's
        # acknowledgement, and the feed reads the same append). All three ends are recorded.
        timings["position_recorded_to_shown_ms"] = shown["shown_ms"] - accepted[-1]["ts_ms"]
        timings["position_sent_to_shown_ms"] = shown["shown_ms"] - accepted[-1]["sent_wall_ms"]
        timings["position_accepted_to_shown_ms"] = shown["shown_ms"] - accepted[-1]["accepted_wall_ms"]
        # the fix sent before going on duty never reached the page: its first position is the first on duty
        assert room(page, f"r.firstTs[{device!r}]") == accepted[1]["ts_ms"]

        # Inside the hot spot, standing about: the worker confirms the visit after enter_confirm_s.
        inside = [(lat0 + 0.00005 * (i % 2), lon0) for i in range(10)]
        fixes.follow(inside)
        accepted = wait_until(lambda: all_accepted(phone_page, pings, off_duty=1), 90, "the fixes inside accepted")
        wait_until(lambda: room(page, f"(r.officers[{device!r}] || {{}}).hotspot_id") == "HS-MARKET", 60,
                   "the map to show the officer inside the hot spot")
        inside_shown_ms = room(page, f"r.insideAt[{device!r}]")
        started = wait_until(lambda: room(page, f"r.ticker.find(t => t.type === 'visit_started' && t.device_id === {device!r})"),
                             10, "the visit's start in the ticker's state")
        # The visit is dated from its first inside fix, one the app sent (the approach's last fix may be it:
        # it is 10 m inside the edge); the first fix at least enter_confirm_s later confirms the visit.
        assert started["ts_ms"] in {p["ts_ms"] for p in accepted[1:]}, started
        confirming = next(p for p in accepted if p["ts_ms"] >= started["ts_ms"] + PROCESSING["enter_confirm_s"] * 1000)
        timings["visit_confirming_ping_accepted_to_inside_shown_ms"] = inside_shown_ms - confirming["accepted_wall_ms"]
        expect(page.locator(f'#officers tr[data-device="{device}"]')).to_have_attribute("data-inside", "HS-MARKET")

        # Click the officer: current assignment and today's path (an audited view).
        page.locator(f'#officers tr[data-device="{device}"]').click()
        expect(page.locator("#detail .path")).to_contain_text("Path today", timeout=30_000)
        path = page.evaluate(f"async () => (await (await fetch('/v1/live/officers/{device}')).json()).path")
        assert path, "today's path is empty"
        assert accepted[0]["ts_ms"] not in {p[0] for p in path}, "the path shows a fix from off duty"

        # Out again, and far enough for long enough to end the visit.
        leave = [(lat0 + 0.0006 + i * 0.00012, lon0) for i in range(10)]
        fixes.follow(leave)
        ended = page.locator(f'#ticker li[data-kind="visit_ended"][data-device="{device}"]')
        expect(ended).to_contain_text("left Market Square after", timeout=90_000)
        visit_row = wait_until(lambda: room(page, f"r.ticker.find(t => t.type === 'visit_ended' && t.device_id === {device!r})"),
                               10, "the visit in the ticker's state")
        assert 5 <= visit_row["dwell_s"] <= 30, visit_row  # first to last inside fix ~10 s, plus edge credit
        wait_until(lambda: room(page, "r.hotspots['HS-MARKET'].minutes_today") > 0, 30, "the hot spot's minutes to grow")

        page.screenshot(path=str(ARTIFACTS / "control_1280x800.png"))

        # Cut the network between the browser and the gateway; events keep happening meanwhile: the phone's
        # fixes are accepted while the supervisor's page is cut off.
        seq_before = room(page, "r.seqs[r.seqs.length - 1]")
        snapshots_before = room(page, "r.snapshots")
        proxy.cut()
        wait_until(lambda: room(page, "document.getElementById('status').dataset.state") == "reconnecting", 30,
                   "the page to notice the cut")
        fixes.follow([(lat0 + 0.002, lon0 + 0.0001 * i) for i in range(4)])
        accepted = wait_until(lambda: all_accepted(phone_page, pings, off_duty=1), 90, "the fixes during the cut accepted")
        proxy.restore()
        last = accepted[-1]
        wait_until(lambda: room(page, f"(r.officers[{device!r}] || {{}}).ts_ms") == last["ts_ms"], 60,
                   "the page to catch up after the network came back")
        seqs = room(page, "r.seqs")
        assert room(page, "r.snapshots") == snapshots_before, "the feed resumed with a snapshot, not from its id"
        tail = seqs[seqs.index(seq_before):]
        assert tail == list(range(seq_before, seq_before + len(tail))), "an event id is missing after the cut"
        assert len(tail) > 4  # the positions sent during the cut are among them

        # Screenshots: phone size, then with the tile server gone.
        page.set_viewport_size({"width": 360, "height": 740})
        page.screenshot(path=str(ARTIFACTS / "control_360x740.png"))
        system["tiles"].stop()
        page.set_viewport_size({"width": 1280, "height": 800})
        page.reload()
        wait_until(lambda: room(page, "r.snapshots") >= 1, 60, "the page after reload")
        expect(page.locator(".tiles-note")).to_be_visible(timeout=30_000)
        expect(page.locator(".leaflet-overlay-pane canvas")).to_be_visible()  # polygons and markers: one canvas
        wait_until(lambda: room(page, "!!r.hotspots['HS-MARKET'].layer && "
                                      "r.map.getBounds().intersects(r.hotspots['HS-MARKET'].layer.getBounds())"),
                   30, "the hot spot drawn in view without tiles")
        page.screenshot(path=str(ARTIFACTS / "control_tiles_unreachable_1280x800.png"))

        # Going off duty (the app's switch) takes the officer off the map at once.
        duty.click()
        expect(duty).not_to_be_checked(timeout=TIMEOUT_MS)
        wait_until(lambda: room(page, f"r.officers[{device!r}] === undefined"), 30, "the officer to leave the map")

        # An officer's session is refused the control room and the feed (asked from the officer's phone).
        status_of = "(path) => fetch(path).then((r) => r.status)"
        assert phone_page.evaluate(status_of, "/control") == 403
        assert phone_page.evaluate(status_of, "/v1/live") == 403
        browser.close()

    # The audit trail holds the supervisor's views and sign-in.
    def audited():
        rows = live.sql("SELECT user, action, subject FROM hotspot.audit WHERE user = 'sgt-control'")
        actions = {(r["action"], r["subject"]) for r in rows}
        return actions if ("path_view", device) in actions and any(a == "live_view" for a, _ in actions) and \
            any(a.startswith("signin") for a, _ in actions) else None

    wait_until(audited, 60, "the supervisor's views in the audit table", interval_s=1.0)
    out = live.hotspot("audit", "--user", "sgt-control", "--format", "json")
    assert {json.loads(line)["action"] for line in out.splitlines()} >= {"live_view", "path_view"}

    (ARTIFACTS / "control_room_timings.json").write_text(json.dumps(timings, indent=2))
    print("control room timings:", timings)
