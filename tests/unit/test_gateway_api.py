"""The gateway's HTTP contract, with the producer passed in so no broker is needed.

The producer here is a real object with aiokafka's `send` interface that keeps
what it was given (and can be told to fail as a broker outage would); the app,
routes, auth, credentials database and spool are the production ones.
"""
from __future__ import annotations

import asyncio
import base64
import json
import time

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codecs import codec_for
from core.settings import Settings
from gateway.credentials import CredentialStore, path_in
from gateway.main import create_app, create_osmand_app
from tests.conftest import wait_until

OWNTRACKS_EXAMPLE = b'{"_type":"location","acc":15,"alt":440,"batt":46,"conn":"w","lat":46.0681247,' \
                    b'"lon":11.1512805,"t":"u","tid":"5t","tst":1551874878,"vac":2,"vel":0}'


class KeepingProducer:
    """aiokafka's producer interface; keeps (topic, key, value); `down=True` behaves like a lost broker."""

    def __init__(self):
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.down = False

    async def send(self, topic, value=None, key=None):
        future = asyncio.get_running_loop().create_future()
        if self.down:
            from aiokafka.errors import KafkaConnectionError

            future.set_exception(KafkaConnectionError("broker went away"))
        else:
            self.sent.append((topic, key, value))
            future.set_result(None)
        return future

    def pings(self) -> list[dict]:
        return [codec_for("Ping").decode(v) for _, _, v in self.sent]


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_dir=tmp_path, gateway_ack_timeout_s=2.0, gateway_device_burst_pings=50,
                        gateway_device_rate_pings_per_s=1, gateway_max_body_bytes=64 * 1024, gateway_max_batch_pings=20)
    store = CredentialStore(path_in(settings.data_dir), refresh_s=0)
    producer = KeepingProducer()
    app = create_app(settings, producer=producer, credentials=store)
    device, device_secret = store.add("pc-17", "device")
    _, other_secret = store.add("pc-18", "device")
    _, user_secret = store.add("sgt-1", "user", "supervisor")
    _, osmand_id = store.add("pc-19", "device", osmand=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield type("Env", (), dict(client=client, app=app, producer=producer, store=store, settings=settings,
                                   secret=device_secret, other_secret=other_secret, user_secret=user_secret,
                                   osmand_id=osmand_id))


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def basic(user: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


PING = {"ts": "2023-11-14T22:13:00Z", "lat": 51.5014, "lon": -0.1419, "accuracy_m": 8, "speed_mps": 1.2}


# --------------------------------------------------------------------------- native

def test_one_native_ping_is_acknowledged_only_with_its_kafka_message(env):
    r = env.client.post("/v1/pings", json=PING, headers=bearer(env.secret))
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 1, "rejected": []}
    [(topic, key, _)] = env.producer.sent
    assert (topic, key) == ("pings", b"pc-17")
    [ping] = env.producer.pings()
    assert ping["device_id"] == "pc-17" and ping["ts_ms"] == 1699999980000 and ping["source"] == "native"
    assert abs(ping["received_ms"] - time.time() * 1000) < 60_000


def test_a_batch_mixing_good_and_bad_items_keeps_the_good_ones_and_names_each_problem(env):
    batch = [PING, {**PING, "lat": 123}, {**PING, "ts": "2023-11-14T22:14:00Z"}, {"lat": 1}]
    r = env.client.post("/v1/pings", json=batch, headers=bearer(env.secret))
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2
    assert [(x["index"], x["field"]) for x in body["rejected"]] == [(1, "lat"), (3, "ts")]
    assert "between -90 and 90" in body["rejected"][0]["reason"]
    assert [p["ts_ms"] for p in env.producer.pings()] == [1699999980000, 1700000040000]


def test_the_device_comes_from_the_credential_not_the_body(env):
    r = env.client.post("/v1/pings", json={**PING, "device_id": "pc-18"}, headers=bearer(env.secret))
    assert r.status_code == 422 and r.json()["field"] == "device_id"
    r = env.client.post("/v1/pings", json=PING, headers=bearer(env.other_secret))
    assert r.status_code == 202 and env.producer.pings()[0]["device_id"] == "pc-18"


@pytest.mark.parametrize("body, status, field", [
    (b"{not json", 400, "body"),
    (b"", 400, "body"),
    (b"[]", 422, "body"),
    (orjson.dumps({**PING, "lat": "north"}), 422, "lat"),
    (orjson.dumps({**PING, "speed_kmh": 3}), 422, "speed_kmh"),
    (orjson.dumps([{**PING, "lat": 99}, {"lon": 1}]), 422, "body"),
    (orjson.dumps([PING] * 21), 413, "body"),
    (b"[" + b" " * 70_000 + b"]", 413, "body"),
])
def test_malformed_requests_get_4xx_naming_the_field(env, body, status, field):
    r = env.client.post("/v1/pings", content=body, headers={**bearer(env.secret), "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["detail"]
    assert env.producer.sent == []


def test_nothing_is_acknowledged_while_kafka_is_down(env):
    env.producer.down = True
    r = env.client.post("/v1/pings", json=[PING, PING], headers=bearer(env.secret))
    assert r.status_code == 503 and r.json()["error"] == "kafka_unavailable"
    assert r.headers["Retry-After"]


def test_per_device_rate_limit_answers_429_with_retry_after(env):
    ok = env.client.post("/v1/pings", json=[PING] * 20, headers=bearer(env.secret))
    ok2 = env.client.post("/v1/pings", json=[PING] * 20, headers=bearer(env.secret))
    limited = env.client.post("/v1/pings", json=[PING] * 20, headers=bearer(env.secret))
    other = env.client.post("/v1/pings", json=PING, headers=bearer(env.other_secret))
    assert (ok.status_code, ok2.status_code, limited.status_code, other.status_code) == (202, 202, 429, 202)
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["error"] == "rate_limited"


# --------------------------------------------------------------------------- auth

@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer d0000.nope"}, {"Authorization": "Token abc"},
    {"Authorization": "Basic !!!"},
], ids=["none", "empty-bearer", "wrong-secret", "other-scheme", "bad-basic"])
def test_missing_or_wrong_credentials_are_401(env, headers):
    r = env.client.post("/v1/pings", json=PING, headers=headers)
    assert r.status_code == 401 and r.json()["field"] == "authorization"
    assert "WWW-Authenticate" in r.headers


def test_a_wrong_secret_with_a_real_key_id_is_401(env):
    key_id = env.secret.split(".")[0]
    r = env.client.post("/v1/pings", json=PING, headers=bearer(key_id + ".guessed"))
    assert r.status_code == 401


def test_a_user_credential_on_a_device_endpoint_is_403(env):
    r = env.client.post("/v1/pings", json=PING, headers=bearer(env.user_secret))
    assert r.status_code == 403 and r.json()["field"] == "authorization"


def test_a_revoked_device_is_refused_on_every_protocol(env):
    assert env.client.post("/v1/pings", json=PING, headers=bearer(env.secret)).status_code == 202
    env.store.revoke("pc-17", "device")
    assert env.client.post("/v1/pings", json=PING, headers=bearer(env.secret)).status_code == 401
    assert env.client.post("/v1/owntracks", content=OWNTRACKS_EXAMPLE, headers=basic("pc-17", env.secret)).status_code == 401
    assert env.client.get(f"/v1/osmand?id={env.osmand_id}&lat=1&lon=2").status_code == 200
    env.store.revoke("pc-19", "device")
    r = env.client.get(f"/v1/osmand?id={env.osmand_id}&lat=1&lon=2")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_a_device_revoked_by_another_process_stops_working(env, tmp_path):
    assert env.client.post("/v1/pings", json=PING, headers=bearer(env.secret)).status_code == 202
    cli_side = CredentialStore(path_in(env.settings.data_dir))  # as `hotspot devices revoke` opens it
    cli_side.revoke("pc-17", "device")
    cli_side.close()
    assert env.client.post("/v1/pings", json=PING, headers=bearer(env.secret)).status_code == 401


def test_secrets_are_stored_hashed(env):
    raw = path_in(env.settings.data_dir).read_bytes()
    assert env.secret.split(".")[1].encode() not in raw


# --------------------------------------------------------------------------- OwnTracks

def test_owntracks_example_is_converted_and_answered_with_an_array(env):
    r = env.client.post("/v1/owntracks", content=OWNTRACKS_EXAMPLE,
                        headers={**basic("pc-17", env.secret), "X-Limit-U": "alice", "X-Limit-D": "phone"})
    assert r.status_code == 200 and r.json() == []
    [ping] = env.producer.pings()
    assert (ping["device_id"], ping["ts_ms"], ping["speed_mps"], ping["battery"], ping["accuracy_m"]) == (
        "pc-17", 1551874878000, 0.0, 0.46, 15.0)
    assert ping["extra"]["ot_user"] == "alice" and ping["extra"]["ot_device"] == "phone"


def test_owntracks_basic_auth_needs_the_matching_device_name(env):
    r = env.client.post("/v1/owntracks", content=OWNTRACKS_EXAMPLE, headers=basic("pc-18", env.secret))
    assert r.status_code == 401


def test_owntracks_other_message_types_are_acknowledged_without_a_ping(env):
    r = env.client.post("/v1/owntracks", json={"_type": "transition", "event": "enter"}, headers=basic("pc-17", env.secret))
    assert r.status_code == 200 and r.json() == [] and env.producer.sent == []


def test_owntracks_pings_kafka_cannot_take_are_spooled_then_replayed_in_order(env):
    env.producer.down = True
    for tst in (1551874878, 1551874879, 1551874880):
        body = OWNTRACKS_EXAMPLE.replace(b"1551874878", str(tst).encode())
        r = env.client.post("/v1/owntracks", content=body, headers=basic("pc-17", env.secret))
        assert r.status_code == 200  # OwnTracks counts any answer as delivered: it must be durable now
    spool = env.app.state.gateway.publisher.spool
    assert spool.depth == 3 and env.producer.sent == []
    env.producer.down = False
    # Each request lets the app's loop run the replay task.
    wait_until(lambda: env.client.get("/healthz") and spool.depth == 0, 10, "the spool to be replayed")
    assert [p["ts_ms"] for p in env.producer.pings()] == [1551874878000, 1551874879000, 1551874880000]


def test_owntracks_malformed_location_is_400_naming_the_field(env):
    r = env.client.post("/v1/owntracks", json={"_type": "location", "lat": 1, "lon": 2}, headers=basic("pc-17", env.secret))
    assert r.status_code == 400 and r.json()["field"] == "tst"


# --------------------------------------------------------------------------- OsmAnd

def test_osmand_query_string_form_and_json_all_land_under_the_registered_name_with_units_converted(env):
    oid = env.osmand_id
    q = f"/v1/osmand?id={oid}&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0&altitude=224.0&speed=10"
    assert env.client.get(q).status_code == 200
    assert env.client.post(q).status_code == 200  # Traccar Client POSTs with the parameters in the query string
    form = f"deviceid={oid}&lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&speed=0.0"
    r = env.client.post("/v1/osmand", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    body = {"device_id": oid, "location": {"timestamp": "2023-11-14T22:13:10Z", "coords": {
        "latitude": 51.5, "longitude": -0.1, "speed": 3.0}, "battery": {"level": 0.5}}}
    assert env.client.post("/v1/osmand", json=body).status_code == 200
    pings = env.producer.pings()
    assert [p["ts_ms"] for p in pings] == [1453920947000, 1453920947000, 1401873011000, 1699999990000]
    assert pings[0]["speed_mps"] == pytest.approx(5.14444, rel=1e-5)  # knots
    assert pings[3]["speed_mps"] == 3.0 and pings[3]["battery"] == 0.5
    assert {p["device_id"] for p in pings} == {"pc-19"}
    # The identifier is the device's secret: it is in no record sent to Kafka.
    assert all(oid.encode() not in value and oid.encode() not in key for _, key, value in env.producer.sent)


def test_osmand_identifier_is_long_random_url_safe_and_stored_only_hashed(env):
    import re

    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", env.osmand_id)  # 24 random bytes: 192 bits
    _, second = env.store.add("pc-20", "device", osmand=True)
    assert second != env.osmand_id
    raw = b"".join(p.read_bytes() for p in env.settings.data_dir.glob("credentials.sqlite3*"))
    assert env.osmand_id.encode() not in raw and second.encode() not in raw


def test_osmand_by_registered_name_is_refused_so_names_cannot_be_spoofed(env):
    # Before: knowing a device's name (pc-17, pc-19) was enough to post positions as it.
    for name in ("pc-17", "pc-19"):
        r = env.client.get(f"/v1/osmand?id={name}&lat=51.5&lon=-0.1")
        assert r.status_code == 403
    assert env.producer.sent == []


def test_osmand_unknown_revoked_and_bearer_secret_identifiers_get_one_indistinguishable_answer(env):
    _, revoked_id = env.store.add("pc-21", "device", osmand=True)
    env.store.revoke("pc-21", "device")
    answers = set()
    for identifier in ("902064", "pc-17", revoked_id, env.secret, env.osmand_id[:-1] + ("B" if env.osmand_id.endswith("A") else "A")):
        r = env.client.get("/v1/osmand", params={"id": identifier, "lat": "1", "lon": "2"})
        answers.add((r.status_code, r.content, tuple(sorted((k, v) for k, v in r.headers.items()
                                                            if k != "content-length"))))
    assert len(answers) == 1
    [(status, content, _)] = answers
    assert status == 403 and orjson.loads(content) == {
        "error": "forbidden", "field": "id",
        "detail": "not the identifier of an active OsmAnd device (see `hotspot devices add NAME --osmand`)"}
    assert env.producer.sent == []


def test_repeated_unknown_identifiers_from_one_address_are_rate_limited(env):
    burst = env.settings.gateway_osmand_unknown_burst
    for i in range(burst):
        assert env.client.get(f"/v1/osmand?id=guess-{i}&lat=1&lon=2").status_code == 403
    r = env.client.get("/v1/osmand?id=guess-x&lat=1&lon=2")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    # A blocked address is refused whatever it sends, so a lucky guess does not show.
    r = env.client.get(f"/v1/osmand?id={env.osmand_id}&lat=1&lon=2")
    assert r.status_code == 429 and env.producer.sent == []
    # Other addresses are not affected.
    with TestClient(env.app, client=("192.0.2.7", 5000)) as other:
        assert other.get(f"/v1/osmand?id={env.osmand_id}&lat=1&lon=2").status_code == 200


def test_osmand_routes_answer_404_when_turned_off(tmp_path):
    s = Settings(data_dir=tmp_path, gateway_osmand_enabled=False)
    store = CredentialStore(path_in(s.data_dir), refresh_s=0)
    _, oid = store.add("pc-19", "device", osmand=True)
    producer = KeepingProducer()
    app = create_app(s, producer=producer, credentials=store)
    with TestClient(app) as client:
        for method in ("GET", "POST"):
            r = client.request(method, f"/v1/osmand?id={oid}&lat=1&lon=2")
            assert r.status_code == 404 and r.json()["error"] == "not_found"
        with TestClient(create_osmand_app(app.state.gateway)) as listener:
            assert listener.get(f"/?id={oid}&lat=1&lon=2").status_code == 404
    assert producer.sent == []


def test_devices_registered_before_osmand_identifiers_keep_working(tmp_path):
    import sqlite3

    from gateway.credentials import _SCHEMA, _hash

    path = tmp_path / "credentials.sqlite3"
    old = sqlite3.connect(path)  # the file as the previous release left it: no osmand column, user_version 0
    old.executescript(_SCHEMA)
    salt = b"0123456789abcdef"
    old.execute("INSERT INTO principals VALUES ('pc-17', 'device', NULL, 'd0011223344aa', ?, ?, 1700000000000, NULL)",
                (salt, _hash("old-random-part", salt)))
    old.commit()
    old.close()
    secret = "d0011223344aa.old-random-part"
    store = CredentialStore(path, refresh_s=0)
    assert store.verify(secret).name == "pc-17"
    _, oid = store.add("pc-18", "device", osmand=True)
    assert store.osmand_device(oid).name == "pc-18" and store.osmand_device("pc-17") is None
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 1


def test_osmand_listener_answers_at_root_for_unmodified_traccar_clients(env):
    listener = create_osmand_app(env.app.state.gateway)
    with TestClient(listener) as client:
        assert client.get(f"/?id={env.osmand_id}&timestamp=1377177267&location=60.0,30.0").status_code == 200
        assert client.get("/?id=nobody&location=60.0,30.0").status_code == 403
    [ping] = env.producer.pings()
    assert ping["lat"] == 60.0 and ping["device_id"] == "pc-19"


# --------------------------------------------------------------------------- ops

def test_openapi_health_and_metrics(env):
    spec = env.client.get("/openapi.json").json()
    assert {"/v1/pings", "/v1/owntracks", "/v1/osmand", "/healthz", "/metrics"} <= set(spec["paths"])
    assert env.client.get("/healthz").json() == {"status": "ok", "kafka": "connected", "spool_depth": 0, "held_depth": 0}
    env.client.post("/v1/pings", json=[PING, {"lat": 1}], headers=bearer(env.secret))
    text = env.client.get("/metrics").text
    assert 'gateway_pings_accepted_total{source="native"}' in text
    assert 'gateway_pings_rejected_total{reason="invalid_field",source="native"}' in text
    assert "gateway_kafka_ack_seconds_bucket" in text and "gateway_spool_depth" in text


# --------------------------------------------------------------------------- fuzzing

def _dumps(value) -> bytes:
    return json.dumps(value).encode()  # stdlib: writes big integers and NaN, which orjson refuses


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12)
ping_like = st.fixed_dictionaries({}, optional={k: json_values | st.floats() | st.integers() for k in (
    "ts", "ts_ms", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "altitude_m", "battery", "extra", "device_id")})
owntracks_like = st.fixed_dictionaries({"_type": st.sampled_from(["location", "waypoint"]) | json_values}, optional={
    k: json_values for k in ("lat", "lon", "tst", "acc", "alt", "batt", "vel", "cog", "tid", "inregions")})
query_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
osmand_params = st.dictionaries(st.sampled_from(["id", "deviceid", "lat", "lon", "location", "timestamp", "speed",
                                                 "bearing", "heading", "batt", "accuracy", "altitude", "x"]),
                                query_text, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(ping_like, st.lists(ping_like, max_size=5), json_values).map(_dumps) | st.binary(max_size=200))
def test_fuzzed_native_bodies_never_get_a_5xx(env, body):
    r = env.client.post("/v1/pings", content=body, headers={**bearer(env.secret), "Content-Type": "application/json"})
    assert r.status_code in (202, 400, 413, 422, 429), r.text
    if r.status_code != 202:
        assert "field" in r.json() or r.status_code == 429


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(owntracks_like, st.lists(owntracks_like, max_size=3), json_values).map(_dumps)
       | st.binary(max_size=200))
def test_fuzzed_owntracks_bodies_never_get_a_5xx(env, body):
    r = env.client.post("/v1/owntracks", content=body, headers=basic("pc-17", env.secret))
    assert r.status_code in (200, 400, 413, 429), r.text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=osmand_params, method=st.sampled_from(["GET", "POST-form", "POST-json"]), registered=st.booleans())
def test_fuzzed_osmand_requests_never_get_a_5xx(env, params, method, registered):
    if registered:
        params = {**params, "id": env.osmand_id}
    if method == "GET":
        r = env.client.get("/v1/osmand", params=params)
    elif method == "POST-form":
        r = env.client.post("/v1/osmand", data=params)
    else:
        r = env.client.post("/v1/osmand", content=orjson.dumps({"device_id": params.get("id"), "location": params}))
    assert r.status_code in (200, 400, 403, 413, 429), r.text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/v1/pings", "/v1/owntracks", "/v1/osmand", "/healthz", "/metrics", "/", "/v1/x"]),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
       headers=st.dictionaries(st.sampled_from(["Authorization", "Content-Type", "Content-Length", "X-Limit-D"]),
                               st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
                               max_size=3),
       body=st.binary(max_size=100))
def test_fuzzed_methods_paths_and_headers_never_get_a_5xx(env, path, method, headers, body):
    headers.pop("Content-Length", None)  # a lying length makes the test client itself fail, not the app
    r = env.client.request(method, path, content=body, headers=headers)
    assert r.status_code < 500, r.text


# --------------------------------------------------------------------------- API docs, served locally

def test_docs_pages_load_their_assets_from_the_gateway_not_a_cdn(env):
    for path, asset in (("/docs", "/docs-assets/swagger-ui/swagger-ui-bundle.js"),
                        ("/redoc", "/docs-assets/redoc/redoc.standalone.js")):
        page = env.client.get(path)
        assert page.status_code == 200, path
        assert asset in page.text and "https://" not in page.text, path
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = env.client.get(asset)
        assert script.status_code == 200 and len(script.content) > 100_000, asset


def test_docs_without_installed_assets_say_how_to_install_them(tmp_path):
    app = create_app(Settings(web_assets_dir=tmp_path / "node_modules", data_dir=tmp_path), producer=KeepingProducer())
    with TestClient(app) as client:
        for path in ("/docs", "/redoc"):
            page = client.get(path)
            assert page.status_code == 503
            assert "make setup" in page.text and "swagger-ui-bundle.js" in page.text
        assert client.get("/openapi.json").status_code == 200

def test_healthz_is_503_naming_the_reason_while_kafka_cannot_be_reached(tmp_path):
    from tests.conftest import free_port

    s = Settings(data_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    with TestClient(create_app(s)) as client:  # Kafka away at start is not fatal: OwnTracks spools
        r = client.get("/healthz")
        assert r.status_code == 503
        assert r.json() == {"status": "not_ready", "kafka": "connecting", "reason": "not connected to Kafka",
                            "spool_depth": 0, "held_depth": 0}
