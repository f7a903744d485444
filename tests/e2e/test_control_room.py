"""The control room in a real browser against a real system: Kafka, a worker, a gateway process.

A supervisor signs in to /control in Debian's chromium (Playwright, never `playwright install`). An
officer, driven through the officer API (sign-in, duty on, pings under the session), walks into a hot
spot and out again. The supervisor's map must show the officer inside, and the ticker the visit with
its dwell. The browser reaches the gateway through a TCP proxy that the test can cut: the feed must
resume afterwards with every event id in sequence (no snapshot, no gap). An officer gets 403 on the
page and the feed, and the audit table holds the supervisor's views.

Timings (ping accepted -> shown on the page) are measured and written to
tests/e2e/artifacts/control_room_timings.json, never asserted: bench/control_room.py measures them
under load. Screenshots at 1280x800 and 360x740, one with the tile server gone, go to the same folder.
"""
from __future__ import annotations

import io
import json
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import HOTSPOT, free_port, wait_until
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


class Officer:
    """An officer's phone through the officer API: session cookie, CSRF header, pings under app-<name>."""

    def __init__(self, url: str, name: str, secret: str):
        self.client = httpx.Client(base_url=url, timeout=30)
        r = self.client.post("/v1/session", json={"name": name, "secret": secret})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        self.device_id = r.json()["device_id"]
        self.accepted: list[dict] = []  # {ts_ms, lat, lon, accepted_wall_ms}

    def post(self, path: str, body) -> httpx.Response:
        return self.client.post(path, json=body, headers={"X-CSRF-Token": self.csrf})

    def ping(self, lat: float, lon: float, speed_mps: float) -> dict:
        ts = int(time.time() * 1000)  # the fix is taken and sent at once
        r = self.post("/v1/pings", {"ts_ms": ts, "lat": lat, "lon": lon, "accuracy_m": 5.0, "speed_mps": speed_mps})
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
        sent = {"ts_ms": ts, "lat": lat, "lon": lon, "sent_wall_ms": ts, "accepted_wall_ms": int(time.time() * 1000)}
        self.accepted.append(sent)
        return sent


def walk(officer: Officer, points: list[tuple[float, float]], speed_mps: float) -> None:
    """One fix a second, as a phone sends them (the worker's confirm periods run on the fixes' times)."""
    for lat, lon in points:
        officer.ping(lat, lon, speed_mps)
        time.sleep(1.0)  # the phone's fix interval, not a readiness wait


def room(page, expression: str):
    return page.evaluate(f"() => {{ const r = window.controlRoom; return {expression}; }}")


def test_supervisor_sees_the_officer_enter_and_leave_and_the_feed_resumes_after_a_cut(system):
    live, url, proxied, proxy = system["live"], system["url"], system["proxied"], system["proxy"]
    supervisor_secret = add_user(live, "sgt-control", "supervisor")
    officer_secret = add_user(live, "pc-walker", "officer")
    assert CHROMIUM.is_file(), "Debian's chromium is needed: `make setup` installs it (apt-get install chromium)"
    ARTIFACTS.mkdir(exist_ok=True)
    timings: dict = {}
    lat0, lon0 = CENTRE
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

        officer = Officer(url, "pc-walker", officer_secret)
        device = officer.device_id
        assert device == "app-pc-walker"

        # Off duty, the officer's phone may still send: the map must not show it.
        officer.ping(lat0 - 0.0012, lon0, 1.4)
        assert officer.post("/v1/duty", {"on_duty": True}).status_code == 200
        approach = [(lat0 - 0.0012 + i * 0.00012, lon0) for i in range(8)]  # 13 m a fix: a car's pace
        walk(officer, approach, 13.0)
        wait_until(lambda: room(page, f"(r.officers[{device!r}] || {{}}).ts_ms") == officer.accepted[-1]["ts_ms"], 30,
                   "the officer's latest position on the page")
        shown = room(page, f"r.shownAt[{device!r}]")
        # The page may draw a position before the phone has read its 202: the gateway answers after Kafka's
        # acknowledgement, and the feed reads the same append. Both ends are recorded.
        timings["position_sent_to_shown_ms"] = shown["shown_ms"] - officer.accepted[-1]["sent_wall_ms"]
        timings["position_accepted_to_shown_ms"] = shown["shown_ms"] - officer.accepted[-1]["accepted_wall_ms"]
        # the fix sent before going on duty never reached the page: its first position is the first on duty
        assert room(page, f"r.firstTs[{device!r}]") == officer.accepted[1]["ts_ms"]

        # Inside the hot spot, standing about: the worker confirms the visit after enter_confirm_s.
        inside = [(lat0 + 0.00005 * (i % 2), lon0) for i in range(10)]
        first_inside = len(officer.accepted)
        walk(officer, inside, 0.4)
        confirm_ts = officer.accepted[first_inside]["ts_ms"] + PROCESSING["enter_confirm_s"] * 1000
        confirming = next(p for p in officer.accepted[first_inside:] if p["ts_ms"] >= confirm_ts)
        wait_until(lambda: room(page, f"(r.officers[{device!r}] || {{}}).hotspot_id") == "HS-MARKET", 60,
                   "the map to show the officer inside the hot spot")
        inside_shown_ms = room(page, f"r.insideAt[{device!r}]")
        # the first inside fix at least enter_confirm_s after the first one is the one that confirms the visit
        timings["visit_confirming_ping_accepted_to_inside_shown_ms"] = inside_shown_ms - confirming["accepted_wall_ms"]
        expect(page.locator(f'#officers tr[data-device="{device}"]')).to_have_attribute("data-inside", "HS-MARKET")

        # Click the officer: current assignment and today's path (an audited view).
        page.locator(f'#officers tr[data-device="{device}"]').click()
        expect(page.locator("#detail .path")).to_contain_text("Path today", timeout=30_000)
        path = page.evaluate(f"async () => (await (await fetch('/v1/live/officers/{device}')).json()).path")
        assert path, "today's path is empty"
        assert officer.accepted[0]["ts_ms"] not in {p[0] for p in path}, "the path shows a fix from off duty"

        # Out again, and far enough for long enough to end the visit.
        leave = [(lat0 + 0.0006 + i * 0.00012, lon0) for i in range(10)]
        walk(officer, leave, 13.0)
        ended = page.locator(f'#ticker li[data-kind="visit_ended"][data-device="{device}"]')
        expect(ended).to_contain_text("left Market Square after", timeout=60_000)
        visit_row = wait_until(lambda: room(page, f"r.ticker.find(t => t.type === 'visit_ended' && t.device_id === {device!r})"),
                               10, "the visit in the ticker's state")
        assert 5 <= visit_row["dwell_s"] <= 30, visit_row  # first to last inside fix ~9 s, plus edge credit
        wait_until(lambda: room(page, "r.hotspots['HS-MARKET'].minutes_today") > 0, 30, "the hot spot's minutes to grow")

        page.screenshot(path=str(ARTIFACTS / "control_1280x800.png"))

        # Cut the network between the browser and the gateway; events keep happening meanwhile.
        seq_before = room(page, "r.seqs[r.seqs.length - 1]")
        snapshots_before = room(page, "r.snapshots")
        proxy.cut()
        wait_until(lambda: room(page, "document.getElementById('status').dataset.state") == "reconnecting", 30,
                   "the page to notice the cut")
        walk(officer, [(lat0 + 0.002, lon0 + 0.0001 * i) for i in range(4)], 1.5)
        proxy.restore()
        last = officer.accepted[-1]
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

        # Going off duty takes the officer off the map at once.
        assert officer.post("/v1/duty", {"on_duty": False}).status_code == 200
        wait_until(lambda: room(page, f"r.officers[{device!r}] === undefined"), 30, "the officer to leave the map")
        browser.close()

    # An officer's session is refused the control room and the feed.
    assert officer.client.get("/control").status_code == 403
    assert officer.client.get("/v1/live").status_code == 403

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
