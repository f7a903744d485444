"""Kafka security settings: complete or refused, never printed, carried by every client the factory makes;
and the local broker's properties, which listen on the loopback interface only."""
from __future__ import annotations

import asyncio
import os
import re
import ssl
import subprocess

import pytest
from pydantic import ValidationError

from core.broker import BrokerError, LocalBroker
from core.kafka import KafkaSecurity, make_admin, make_consumer, make_producer
from core.settings import Settings
from tests.conftest import HOTSPOT

SASL_ENV = {"HOTSPOT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "HOTSPOT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "HOTSPOT_KAFKA_SASL_USERNAME": "patrol", "HOTSPOT_KAFKA_SASL_PASSWORD": "pa55-kafka-word"}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("HOTSPOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.fixture
def client_cert(tmp_path):
    """A self-signed certificate and its key, as a force's PKI would issue to the system."""
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hotspot",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_defaults_are_plaintext_and_sasl_needs_a_user_and_password(clean_env):
    assert Settings().kafka_security_protocol == "PLAINTEXT"
    clean_env.setenv("HOTSPOT_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="kafka_sasl_username and kafka_sasl_password"):
        Settings()
    clean_env.setenv("HOTSPOT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    clean_env.setenv("HOTSPOT_KAFKA_SASL_MECHANISM", "GSSAPI")
    with pytest.raises(ValidationError, match="kafka_sasl_mechanism"):
        Settings()


def test_a_client_certificate_needs_its_key(clean_env, client_cert):
    clean_env.setenv("HOTSPOT_KAFKA_SSL_CERTFILE", str(client_cert[0]))
    with pytest.raises(ValidationError, match="kafka_ssl_certfile and kafka_ssl_keyfile go together"):
        Settings()


def test_every_client_of_the_factory_carries_sasl_and_a_verifying_tls_context(clean_env, client_cert):
    import certifi

    for key, value in SASL_ENV.items():
        clean_env.setenv(key, value)
    clean_env.setenv("HOTSPOT_KAFKA_SSL_CAFILE", certifi.where())
    clean_env.setenv("HOTSPOT_KAFKA_SSL_CERTFILE", str(client_cert[0]))
    clean_env.setenv("HOTSPOT_KAFKA_SSL_KEYFILE", str(client_cert[1]))
    security = KafkaSecurity.from_settings(Settings())

    async def made():
        producer = make_producer("k1:9093", security=security)
        consumer = make_consumer("pings", bootstrap_servers="k1:9093", security=security, group_id="g")
        admin = make_admin("k1:9093", security=security)
        connections = [producer.client, consumer._client, admin._client]  # what each one connects with
        await producer.stop(), await consumer.stop(), await admin.close()
        return connections

    for client in asyncio.run(made()):
        assert client._security_protocol == "SASL_SSL"
        assert (client._sasl_mechanism, client._sasl_plain_username, client._sasl_plain_password) == \
            ("SCRAM-SHA-256", "patrol", "pa55-kafka-word")
        ctx = client._ssl_context
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert "pa55-kafka-word" not in repr(security)


def test_config_masks_the_kafka_password_and_key_password(cli_env):
    env = {**cli_env, **SASL_ENV, "HOTSPOT_KAFKA_SSL_KEY_PASSWORD": "key-pa55"}
    out = subprocess.run([HOTSPOT, "config", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    assert "pa55-kafka-word" not in out and "key-pa55" not in out
    assert '"kafka_sasl_password": "********"' in out and '"kafka_ssl_key_password": "********"' in out
    assert '"kafka_sasl_username": "patrol"' in out


def _hosts(properties: str) -> list[str]:
    """Every host the broker binds or advertises, or names as a controller voter."""
    hosts = []
    for key in ("listeners", "advertised.listeners", "controller.quorum.voters"):
        value = re.search(rf"^{re.escape(key)}=(.*)$", properties, re.M).group(1)
        hosts += re.findall(r"(?://|@)([^:/,]+):\d+", value)
    return hosts


@pytest.mark.parametrize("security", [KafkaSecurity(),
                                      KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-256", "patrol", "pw-1")])
def test_the_local_broker_binds_the_loopback_interface_only(tmp_path, security):
    broker = LocalBroker(tmp_path, 29092, 29093, security=security)
    properties = broker.render_properties()
    assert _hosts(properties) == ["127.0.0.1"] * 4
    assert f"listeners={security.protocol}://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093" in properties
    if security.sasl:
        # Both listeners authenticate: the controller one too (it takes admin requests, KIP-919).
        assert "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT" in properties
        assert "pw-1" not in properties
        assert oct((tmp_path / "controller.secret").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("security, refusal", [
    (KafkaSecurity("SSL"), "for TLS point HOTSPOT_KAFKA_BOOTSTRAP at your cluster"),
    (KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "patrol", "pw"), "SCRAM-SHA-256 or SCRAM-SHA-512"),
    (KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "patrol", "p,w"), "may not contain"),
])
def test_the_local_broker_refuses_what_it_cannot_serve(tmp_path, security, refusal):
    with pytest.raises(BrokerError, match=re.escape(refusal)):
        LocalBroker(tmp_path, 29092, 29093, security=security)
