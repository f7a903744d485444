"""The gateway against the real Kafka broker: protocol examples land with correct units, and nothing
acknowledged is lost when the broker stops mid-stream and comes back."""
from __future__ import annotations

import asyncio
import base64
import threading
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from fastapi.testclient import TestClient

from gateway.config import GatewayConfig
from gateway.credentials import CredentialStore
from gateway.main import create_app
from tests.conftest import wait_until
from schemas.codec import Codec
from streams.kafka import ensure_topics

pytestmark = pytest.mark.integration


async def _read_pings(bootstrap: str, device_ids: set[str], expected: int, timeout_s: float = 60) -> list[dict]:
    """Every ping of `device_ids` in topic `pings`, decoded; waits until `expected` are there or the deadline."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = [TopicPartition("pings", p) for p in sorted(consumer.partitions_for_topic("pings") or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        codec = Codec("Ping")
        found: list[dict] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for r in records:
                    if r.key is not None and r.key.decode() in device_ids:
                        ping = codec.decode(r.value)
                        assert ping["device_id"] == r.key.decode()
                        found.append(ping)
            ends = await consumer.end_offsets(parts)
            caught_up = all([await consumer.position(tp) >= ends[tp] for tp in parts])
            if caught_up and len(found) >= expected:
                break
        return found
    finally:
        await consumer.stop()


def _gateway(bootstrap: str, data_dir, **overrides):
    asyncio.run(ensure_topics(bootstrap, 4))
    config = GatewayConfig(bootstrap_servers=bootstrap, data_dir=data_dir, **overrides)
    store = CredentialStore(config.credentials_path, refresh_s=0)
    suffix = uuid.uuid4().hex[:8]
    device, secret = store.add(f"pc-{suffix}", "device")
    return create_app(config=config, credentials=store), device.name, secret


def _basic(user: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def test_each_protocol_example_lands_in_kafka_with_si_units(kafka_broker, tmp_path):
    app, device, secret = _gateway(kafka_broker.bootstrap, tmp_path)
    traccar, osmand_id = app.state.gateway.credentials.add(f"{device}-traccar", "device", osmand=True)
    with TestClient(app) as client:
        for query in ("id={d}&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=0.0",
                      "id={d}&lat=42.06288&lon=-88.23412&timestamp=1442068686579&hdop=6.0&altitude=224.0&speed=0.0",
                      "lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=12.0&id={d}",
                      "id={d}&timestamp=1377177267&location=60.0,30.0"):
            r = client.get("/v1/osmand?" + query.format(d=osmand_id))
            assert r.status_code == 200, r.text
        r = client.post("/v1/owntracks", headers=_basic(device, secret), content=(
            b'{"_type":"location","acc":15,"alt":440,"batt":46,"conn":"w","lat":46.0681247,"lon":11.1512805,'
            b'"t":"u","tid":"5t","tst":1551874878,"vac":2,"vel":36}'))
        assert r.status_code == 200 and r.json() == []
        r = client.post("/v1/pings", headers={"Authorization": f"Bearer {secret}"},
                        json=[{"ts": "2023-11-14T22:13:00Z", "lat": 51.5, "lon": -0.1, "speed_mps": 1.5, "battery": 0.5}])
        assert r.status_code == 202 and r.json() == {"accepted": 1, "rejected": []}
    pings = sorted(asyncio.run(_read_pings(kafka_broker.bootstrap, {device, traccar.name}, 6)), key=lambda p: p["ts_ms"])
    assert {p["source"]: p["device_id"] for p in pings} == {"osmand": traccar.name, "owntracks": device, "native": device}
    got = [(p["source"], p["ts_ms"], p["lat"], p["lon"], p["speed_mps"], p["altitude_m"], p["battery"]) for p in pings]
    assert got == [
        ("osmand", 1377177267000, 60.0, 30.0, None, None, None),
        ("osmand", 1401873011000, 49.60688, 6.15788, pytest.approx(12.0 * 1852 / 3600), 384.7, None),
        ("osmand", 1442068686579, 42.06288, -88.23412, 0.0, 224.0, None),
        ("osmand", 1453920947000, 42.06288, -88.23412, 0.0, 224.0, None),
        ("owntracks", 1551874878000, 46.0681247, 11.1512805, pytest.approx(10.0), 440.0, 0.46),
        ("native", 1699999980000, 51.5, -0.1, 1.5, None, 0.5),
    ]


def test_broker_stopped_mid_stream_loses_no_acknowledged_ping(make_broker, tmp_path):
    broker = make_broker()
    broker.start()
    app, device, secret = _gateway(broker.bootstrap, tmp_path / "gw", ack_timeout_s=3.0,
                                   device_rate_pings_per_s=1e6, device_burst_pings=1e6)
    acked: set[int] = set()      # ts_ms of every ping the gateway acknowledged
    refused: list[int] = []      # native pings answered 503 while the broker was away
    stop = threading.Event()

    def send_forever(client: TestClient) -> None:
        ts = 1_700_000_000_000
        while not stop.is_set():
            ts += 1000
            if ts // 1000 % 2:
                r = client.post("/v1/pings", json={"ts_ms": ts, "lat": 51.5, "lon": -0.1},
                                headers={"Authorization": f"Bearer {secret}"})
                (acked.add(ts) if r.status_code == 202 else refused.append(ts))
                assert r.status_code in (202, 503), r.text
            else:
                body = f'{{"_type":"location","lat":51.5,"lon":-0.1,"tst":{ts / 1000}}}'
                r = client.post("/v1/owntracks", content=body, headers=_basic(device, secret))
                assert r.status_code == 200, r.text
                acked.add(ts)

    with TestClient(app) as client:
        publisher = app.state.gateway.publisher
        sender = threading.Thread(target=send_forever, args=(client,), daemon=True)
        sender.start()
        wait_until(lambda: len(acked) >= 100, 90, "100 pings before the outage")
        broker.stop()
        wait_until(lambda: publisher.spool.depth >= 10 and len(refused) >= 1, 90,
                   "pings spooled and refused during the outage")
        before_restart = len(acked)
        broker.start()
        wait_until(lambda: len(acked) >= before_restart + 100 and publisher.spool.depth == 0, 90,
                   "100 more pings after the restart and the spool drained")
        stop.set()
        sender.join(timeout=30)
        assert not sender.is_alive()
        # The last OwnTracks pings may have been spooled after the drain above: a send that
        # outlasts the ack timeout on a busy machine is spooled, as it should be. Once nothing
        # more is sent, the spool must drain to Kafka by itself.
        wait_until(lambda: publisher.spool.depth == 0, 90, "the spool to drain once sending stopped")
    found = asyncio.run(_read_pings(broker.bootstrap, {device}, len(acked)))
    found_ts = {p["ts_ms"] for p in found}
    assert acked - found_ts == set(), f"{len(acked - found_ts)} acknowledged pings missing from Kafka"
    assert len(refused) >= 1


def _fresh_gateway(bootstrap: str, data_dir, **overrides):
    """A gateway on a broker where nothing has created any topic yet (no worker ran)."""
    config = GatewayConfig(bootstrap_servers=bootstrap, data_dir=data_dir, **overrides)
    store = CredentialStore(config.credentials_path, refresh_s=0)
    _, secret = store.add("pc-fresh", "device")
    return create_app(config=config, credentials=store), secret


def test_a_gateway_started_before_any_worker_creates_its_topic_and_takes_pings_at_once(make_broker, tmp_path):
    from streams.kafka import describe_topics

    broker = make_broker()
    broker.start()
    assert "pings" not in asyncio.run(describe_topics(broker.bootstrap))
    app, secret = _fresh_gateway(broker.bootstrap, tmp_path, partitions=3, ack_timeout_s=5.0)
    with TestClient(app) as client:
        assert asyncio.run(describe_topics(broker.bootstrap)).get("pings") == 3  # as the worker would create it
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        r = client.post("/v1/pings", json={"ts_ms": 1_700_000_000_000, "lat": 51.5, "lon": -0.1},
                        headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 202, r.text
    [ping] = asyncio.run(_read_pings(broker.bootstrap, {"pc-fresh"}, 1))
    assert ping["ts_ms"] == 1_700_000_000_000


def test_healthz_says_not_ready_while_the_broker_is_stopped_and_ok_once_it_is_back(make_broker, tmp_path):
    broker = make_broker()
    broker.start()
    app, _ = _fresh_gateway(broker.bootstrap, tmp_path, ack_timeout_s=5.0)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        broker.stop()

        def not_ready():
            r = client.get("/healthz")
            return r if r.status_code == 503 else None

        r = wait_until(not_ready, 60, "/healthz to report that Kafka cannot take writes")
        body = r.json()
        assert body["status"] == "not_ready" and body["kafka"] in ("unavailable", "connecting") and body["reason"]
        broker.start()
        wait_until(lambda: client.get("/healthz").status_code == 200, 90, "/healthz to be ok again")
        assert client.get("/healthz").json()["status"] == "ok"


def test_a_gateway_refuses_to_start_naming_the_topic_kafka_will_not_create(make_broker, tmp_path):
    from gateway.main import GatewayStartError

    broker = make_broker()
    broker.start()
    # Zero partitions stands for any creation the broker refuses (a policy, missing rights): it answers
    # INVALID_PARTITIONS for the topic, as it would answer TOPIC_AUTHORIZATION_FAILED.
    app, _ = _fresh_gateway(broker.bootstrap, tmp_path, partitions=0)
    with pytest.raises(GatewayStartError, match="pings.*missing and not creatable"):
        with TestClient(app):
            pass
    # issue 14: the gateway also writes the officer app's topics
    assert app.state.start_error.startswith("Kafka topic(s) pings, assignments, activity, audit missing and not creatable")
