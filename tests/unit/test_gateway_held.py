"""OwnTracks pings over their device's rate: held on disk and answered 200, released at the rate, in order;
bounded per device and in total, with requests past the bounds parked unanswered, then 429.

The rate limiter runs on a clock the test moves, so "at the rate" is exact, not timed.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from gateway.credentials import CredentialStore, path_in
from gateway.held import HeldPings
from gateway.main import create_app
from gateway.ratelimit import RateLimiter
from gateway.spool import Record
from tests.conftest import wait_until
from tests.unit.test_gateway_api import OWNTRACKS_EXAMPLE, KeepingProducer, basic


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def owntracks(tst: int) -> bytes:
    return OWNTRACKS_EXAMPLE.replace(b"1551874878", str(tst).encode())


def drain(gw) -> None:
    """Let time pass on the limiter's clock until nothing is held."""
    def advanced_and_empty() -> bool:
        gw.clock.now += 1.0
        return gw.held.depth == 0

    wait_until(advanced_and_empty, 10, "every held ping released", interval_s=0.01)


@pytest.fixture
def gw(tmp_path):
    """A gateway allowing 2 pings/s with a burst of 2, on a frozen clock; at most 5 held pings per device."""
    settings = Settings(data_dir=tmp_path, gateway_device_rate_pings_per_s=2, gateway_device_burst_pings=2,
                        gateway_owntracks_held_max_per_device=5, gateway_owntracks_park_s=10.0,
                        gateway_owntracks_park_per_device=1)
    store = CredentialStore(path_in(settings.data_dir), refresh_s=0)
    producer = KeepingProducer()
    app = create_app(settings, producer=producer, credentials=store)
    clock = Clock()
    app.state.gateway.limiter.clock = clock
    _, secret = store.add("pc-17", "device")
    with TestClient(app, raise_server_exceptions=False) as client:
        yield type("Gw", (), dict(client=client, app=app, producer=producer, clock=clock, secret=secret,
                                  held=app.state.gateway.held, tmp_path=tmp_path))


def post(gw, tst: int):
    return gw.client.post("/v1/owntracks", content=owntracks(tst), headers=basic("pc-17", gw.secret))


def test_owntracks_pings_over_the_rate_are_held_answered_200_and_released_at_the_rate_in_order(gw):
    answers = [post(gw, 1551874878 + i) for i in range(6)]
    assert [(r.status_code, r.json()) for r in answers] == [(200, [])] * 6  # a 429 would be taken as delivered
    assert len(gw.producer.sent) == 2 and gw.held.device_depth("pc-17") == 4
    assert list((gw.tmp_path / "gateway-held" / "pc-17").glob("seg-*.log"))  # on disk before the 200

    gw.clock.now += 1.0  # two more pings' worth of tokens
    # A ping reaches the producer a moment before the queue forgets it: wait for both.
    wait_until(lambda: len(gw.producer.sent) == 4 and gw.held.device_depth("pc-17") == 2,
               10, "two held pings released", interval_s=0.01)
    assert len(gw.producer.sent) == 4 and gw.held.device_depth("pc-17") == 2  # not one more than the bucket allowed

    assert post(gw, 1551874878 + 6).status_code == 200  # joins the end of the queue, behind the held ones
    assert gw.held.device_depth("pc-17") == 3
    drain(gw)
    assert [p["ts_ms"] for p in gw.producer.pings()] == [(1551874878 + i) * 1000 for i in range(7)]
    assert {p["source"] for p in gw.producer.pings()} == {"owntracks"}
    assert not (gw.tmp_path / "gateway-held" / "pc-17").exists()  # a drained queue leaves nothing on disk


def test_past_the_device_cap_a_request_waits_unanswered_for_room_then_is_held(gw):
    for i in range(7):  # 2 into Kafka, 5 held: the cap
        assert post(gw, 1551874878 + i).status_code == 200
    assert gw.held.device_depth("pc-17") == 5

    answer: list = []
    sender = threading.Thread(target=lambda: answer.append(post(gw, 1551874878 + 7)), daemon=True)
    sender.start()
    wait_until(lambda: gw.held._parked_total == 1, 10, "the request over the cap to be parked", interval_s=0.01)
    assert answer == [] and gw.held.device_depth("pc-17") == 5  # no answer yet, nothing past the cap on disk
    gw.clock.now += 0.5  # room for one
    sender.join(timeout=10)
    assert answer and answer[0].status_code == 200
    drain(gw)
    assert [p["ts_ms"] for p in gw.producer.pings()] == [(1551874878 + i) * 1000 for i in range(8)]


def test_a_request_that_finds_no_room_within_the_park_time_gets_429_and_the_disk_stays_bounded(gw):
    for i in range(7):
        assert post(gw, 1551874878 + i).status_code == 200
    gw.held.park_s = 0.5
    started = time.monotonic()
    r = post(gw, 1551874878 + 7)  # the clock is frozen: no room will come
    assert r.status_code == 429 and r.json()["error"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
    assert time.monotonic() - started >= 0.5  # it was parked for park_s first
    assert gw.held.device_depth("pc-17") == 5 and len(gw.producer.sent) == 2


def test_native_pings_over_the_rate_are_still_refused_with_429(gw):
    from tests.unit.test_gateway_api import PING, bearer

    assert [gw.client.post("/v1/pings", json=PING, headers=bearer(gw.secret)).status_code for _ in range(3)] == \
        [202, 202, 429]  # a native client retries on 429, so nothing is held for it
    assert gw.held.depth == 0


# --------------------------------------------------------------------------- HeldPings itself

class ListPublisher:
    ready = True
    spool = None

    def __init__(self):
        self.sent: list[bytes] = []

    async def send_records(self, records):
        self.sent.extend(r.value for r in records)


def _recs(device: str, start: int, n: int) -> list[Record]:
    return [Record("pings", device.encode(), f"{device}-{i}".encode()) for i in range(start, start + n)]


def _held(path, clock, **bounds) -> HeldPings:
    limits = dict(max_per_device=10, max_total=15, park_s=5.0, park_per_device=1, park_total=4) | bounds
    return HeldPings(path, RateLimiter(1.0, 1.0, clock=clock), **limits)


def test_held_pings_survive_a_restart_and_are_released_in_order_per_device(tmp_path):
    clock = Clock()

    async def first():
        held = _held(tmp_path, clock)
        assert await held.hold("a", _recs("a", 0, 3)) and await held.hold("b", _recs("b", 0, 2))
        await held.stop()

    async def second():
        held = _held(tmp_path, clock)
        assert (held.depth, held.device_depth("a"), held.device_depth("b")) == (5, 3, 2)
        publisher = ListPublisher()
        while held.depth:
            await held._release_round(publisher)
            clock.now += 1.0
        await held.stop()
        return publisher.sent

    asyncio.run(first())
    sent = asyncio.run(second())
    assert [v for v in sent if v.startswith(b"a")] == [b"a-0", b"a-1", b"a-2"]
    assert [v for v in sent if v.startswith(b"b")] == [b"b-0", b"b-1"]
    assert list(tmp_path.iterdir()) == []


def test_the_total_cap_bounds_all_devices_together_and_parking_slots_are_bounded(tmp_path):
    async def scenario():
        held = _held(tmp_path, Clock(), max_per_device=10, max_total=15, park_s=30.0)
        assert await held.hold("a", _recs("a", 0, 10))
        assert not await held.hold("a", _recs("a", 10, 1))       # device cap
        assert await held.hold("b", _recs("b", 0, 5))
        assert not await held.hold("c", _recs("c", 0, 1))        # total cap, though c holds nothing
        parked = asyncio.create_task(held.admit("c", _recs("c", 0, 1)))
        while held._parked_total == 0:
            await asyncio.sleep(0)
        assert not await held.admit("c", _recs("c", 1, 1))      # c's one parking slot is taken: refused at once
        publisher = ListPublisher()
        await held._release_round(publisher)                      # the bucket has one token per device
        assert await asyncio.wait_for(parked, 5) is True
        depth = held.depth
        await held.stop()
        return depth, publisher.sent

    depth, sent = asyncio.run(scenario())
    assert sent == [b"a-0", b"b-0"] and depth == 14


def test_take_up_to_grants_whole_pings_the_bucket_holds_and_says_when_the_next_may_pass():
    clock = Clock()
    limiter = RateLimiter(2.0, 3.0, clock=clock)
    assert limiter.take_up_to("d", 10) == (3, 0.5)
    assert limiter.take_up_to("d", 10) == (0, 0.5)
    clock.now += 0.75
    assert limiter.take_up_to("d", 10) == (1, 0.25)
