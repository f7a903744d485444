"""Sessions and sign-in (issue 14): the token, the shared table, the routes, roles and CSRF.

The API tests run the production app with a producer that keeps what it is given
(tests/unit/test_gateway_api.py's), so the audit records can be read back.
"""
from __future__ import annotations

import os
import stat

import pytest
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from gateway.config import GatewayConfig
from gateway.credentials import CredentialStore
from gateway.deps import OfficerUser, SupervisorUser
from gateway.main import create_app
from gateway.sessions import SecretKeyError, SessionStore, load_secret_key
from schemas.codec import Codec
from streams.settings import Settings
from tests.conftest import wait_until
from tests.unit.test_gateway_api import KeepingProducer

KEY = b"k" * 48


# --------------------------------------------------------------------------- keys

def test_production_refuses_empty_and_placeholder_keys(tmp_path):
    for configured in ("", "change-me-in-production", "short-key"):
        with pytest.raises(SecretKeyError):
            load_secret_key(configured, "production", tmp_path)
    real = "q8Yh3kVt0pZ1mN4bR7sW2xC5vF9gJ6dL-aE_uT"
    assert load_secret_key(real, "production", tmp_path) == real.encode()


def test_development_makes_one_private_key_and_keeps_it(tmp_path):
    first = load_secret_key("", "development", tmp_path)
    path = tmp_path / "session.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32
    assert load_secret_key("change-me", "development", tmp_path) == first  # a placeholder is not used


# --------------------------------------------------------------------------- store

class Clock:
    def __init__(self, t=1_700_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_token_round_trip_and_tampering(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite3", KEY, ttl_s=60)
    token, session = store.issue("pc1", "officer", "uabc")
    assert store.check(token) == session
    payload, mac = token.split(".")
    assert store.check(payload + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")) is None
    assert store.check(token + "x") is None and store.check("") is None and store.check(None) is None
    other = SessionStore(tmp_path / "s.sqlite3", b"o" * 48)
    assert other.check(token) is None  # signed with another key


def test_expiry(tmp_path):
    clock = Clock()
    store = SessionStore(tmp_path / "s.sqlite3", KEY, ttl_s=60, clock=clock)
    token, _ = store.issue("pc1", "officer", "uabc")
    clock.t += 59
    assert store.check(token) is not None
    clock.t += 2
    assert store.check(token) is None


def test_sign_out_in_one_process_reaches_another(tmp_path):
    a = SessionStore(tmp_path / "s.sqlite3", KEY, refresh_s=0)
    b = SessionStore(tmp_path / "s.sqlite3", KEY, refresh_s=0)
    token, session = a.issue("pc1", "officer", "uabc")
    assert b.check(token) == session  # issued elsewhere, found on a second look
    a.revoke(session.session_id)
    assert b.check(token) is None
    assert a.check(token) is None


def test_csrf_token_is_per_session(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite3", KEY)
    _, s1 = store.issue("pc1", "officer", "u1")
    _, s2 = store.issue("pc1", "officer", "u1")
    assert store.csrf_ok(s1.session_id, store.csrf_token(s1.session_id))
    assert not store.csrf_ok(s1.session_id, store.csrf_token(s2.session_id))
    assert not store.csrf_ok(s1.session_id, None)


def test_sessions_file_is_private(tmp_path):
    SessionStore(tmp_path / "s.sqlite3", KEY)
    assert stat.S_IMODE(os.stat(tmp_path / "s.sqlite3").st_mode) == 0o600


# --------------------------------------------------------------------------- API

def make_env(tmp_path, **settings_changes):
    values = dict(data_dir=tmp_path, environment="development", signin_burst=3, signin_per_s=0.001,
                  session_refresh_s=0.0)
    settings = Settings(**{**values, **settings_changes})
    config = GatewayConfig(data_dir=tmp_path, ack_timeout_s=2.0, credentials_refresh_s=0)
    store = CredentialStore(config.credentials_path, refresh_s=0)
    producer = KeepingProducer()
    app = create_app(settings, config=config, producer=producer, credentials=store)
    probe = APIRouter()

    @probe.post("/test/officer")
    async def officer_only(user: OfficerUser) -> JSONResponse:
        return JSONResponse({"user": user.name, "device_id": user.device_id})

    @probe.get("/test/supervisor")
    async def supervisor_only(user: SupervisorUser) -> JSONResponse:
        return JSONResponse({"user": user.name})

    app.include_router(probe)
    secrets_ = {name: store.add(name, "user", role)[1] for name, role in
                (("officer1", "officer"), ("sgt1", "supervisor"), ("boss", "admin"))}
    return app, store, producer, secrets_


@pytest.fixture
def env(tmp_path):
    app, store, producer, secrets_ = make_env(tmp_path)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield type("Env", (), dict(client=client, app=app, store=store, producer=producer, secrets=secrets_))


def sign_in(client, name, secret):
    return client.post("/v1/session", json={"name": name, "secret": secret})


def audits(producer) -> list[dict]:
    codec = Codec("Audit")
    return [codec.decode(v) for t, _, v in producer.sent if t == "audit"]


def test_sign_in_sets_a_strict_http_only_cookie_and_answers_the_contract(env):
    r = sign_in(env.client, "officer1", env.secrets["officer1"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"user", "role", "device_id", "csrf_token", "expires_at"}
    assert body["user"] == "officer1" and body["role"] == "officer" and body["device_id"] == "app-officer1"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("hp_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http in the test
    assert env.store.device("app-officer1") is not None  # the officer's device identity exists now
    assert env.client.get("/v1/session").json()["user"] == "officer1"
    # The sign-in's audit record is sent in the background (a slow Kafka must not hold sign-ins).
    assert wait_until(lambda: [a["action"] for a in audits(env.producer)], 10, "the audit record") == ["signin_ok"]


def test_unknown_name_and_wrong_secret_get_the_same_answer(env):
    wrong_secret = sign_in(env.client, "officer1", env.secrets["sgt1"])
    unknown = sign_in(env.client, "nobody", env.secrets["officer1"])
    assert wrong_secret.status_code == unknown.status_code == 401
    assert wrong_secret.json() == unknown.json()
    assert "set-cookie" not in wrong_secret.headers
    failed = wait_until(lambda: [a for a in audits(env.producer) if a["action"] == "signin_failed"][1:] and
                        [a for a in audits(env.producer) if a["action"] == "signin_failed"], 10, "two audit records")
    assert [a["user"] for a in failed] == ["officer1", "nobody"]
    assert all(env.secrets["officer1"] not in a["detail_json"] for a in failed)


def test_failed_sign_ins_are_rate_limited_per_address(env):
    for _ in range(3):
        assert sign_in(env.client, "officer1", "u0.wrong").status_code == 401
    r = sign_in(env.client, "officer1", env.secrets["officer1"])  # even the right secret, once over the limit
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_no_session_is_401_and_wrong_role_is_403(env):
    assert env.client.get("/test/supervisor").status_code == 401
    csrf = sign_in(env.client, "officer1", env.secrets["officer1"]).json()["csrf_token"]
    assert env.client.get("/test/supervisor").status_code == 403
    assert env.client.post("/test/officer", headers={"X-CSRF-Token": csrf}).json() == {
        "user": "officer1", "device_id": "app-officer1"}


def test_admin_passes_supervisor_routes_but_is_not_an_officer(env):
    csrf = sign_in(env.client, "boss", env.secrets["boss"]).json()["csrf_token"]
    assert env.client.get("/test/supervisor").status_code == 200
    assert env.client.post("/test/officer", headers={"X-CSRF-Token": csrf}).status_code == 403


def test_unsafe_methods_need_the_csrf_header(env):
    csrf = sign_in(env.client, "officer1", env.secrets["officer1"]).json()["csrf_token"]
    r = env.client.post("/test/officer")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    assert env.client.post("/test/officer", headers={"X-CSRF-Token": "x" + csrf[1:]}).status_code == 403
    assert env.client.post("/test/officer", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_sign_out_revokes_the_token_itself(env):
    csrf = sign_in(env.client, "officer1", env.secrets["officer1"]).json()["csrf_token"]
    token = env.client.cookies.get("hp_session")
    r = env.client.delete("/v1/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204 and 'hp_session=""' in r.headers["set-cookie"]
    env.client.cookies.set("hp_session", token)  # a copy of the token kept elsewhere
    assert env.client.get("/v1/session").status_code == 401


def test_revoking_the_user_ends_the_session(env):
    sign_in(env.client, "officer1", env.secrets["officer1"])
    assert env.client.get("/v1/session").status_code == 200
    env.store.revoke("officer1", "user")
    assert env.client.get("/v1/session").status_code == 401


def test_a_new_credential_with_another_role_ends_the_old_session(env):
    sign_in(env.client, "sgt1", env.secrets["sgt1"])
    assert env.client.get("/test/supervisor").status_code == 200
    env.store.revoke("sgt1", "user")
    env.store.add("sgt1", "user", "officer")
    assert env.client.get("/test/supervisor").status_code == 401


def test_no_token_in_any_url_or_body(env):
    r = sign_in(env.client, "officer1", env.secrets["officer1"])
    token = env.client.cookies.get("hp_session")
    assert token and token not in r.text and token not in r.headers.get("location", "")


def test_production_gateway_refuses_to_start_without_a_key(tmp_path):
    for key in ("", "change-me-in-production"):
        with pytest.raises(SecretKeyError):
            make_env(tmp_path, environment="production", secret_key=key)
    make_env(tmp_path, environment="production", secret_key="q8Yh3kVt0pZ1mN4bR7sW2xC5vF9gJ6dL-aE_uT")
