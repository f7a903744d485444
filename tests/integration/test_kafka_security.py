"""Kafka with authentication: the local broker with a SASL_PLAINTEXT listener and SCRAM users
(created by Kafka's own storage tool when the broker's directory is formatted), and every client the
system makes (CLI, worker, gateway) connecting through the one client factory with the configured
credentials. A wrong password is refused, and said so in one line."""
from __future__ import annotations

import asyncio
import os
import subprocess

import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi.testclient import TestClient

from core.kafka import KafkaSecurity, credentials_refused, make_producer
from core.settings import get_settings
from tests.conftest import HOTSPOT
from tests.integration.conftest import Broker
from tests.integration.live import LiveSystem, simulate, wait_until
from tests.integration.test_gateway_kafka import _gateway
from tests.integration.test_pipeline import NO_SILENCE, _accounted, _line_count

pytestmark = pytest.mark.integration

PASSWORD = "correct-horse-battery-staple"
SASL = {"HOTSPOT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "HOTSPOT_KAFKA_SASL_USERNAME": "patrol",
        "HOTSPOT_KAFKA_SASL_PASSWORD": PASSWORD}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTSPOT_")}
    return {**env, **SASL, **extra}


def test_cli_worker_and_gateway_work_on_a_scram_broker_and_a_wrong_password_is_refused(tmp_path, monkeypatch):
    broker = Broker(tmp_path / "kafka", env=_env(HOTSPOT_KAFKA_SASL_MECHANISM="SCRAM-SHA-256"))
    broker.start()
    properties = (tmp_path / "kafka" / "server.properties").read_text()
    assert f"listeners=SASL_PLAINTEXT://127.0.0.1:{broker.port}," in properties
    assert PASSWORD not in properties  # the user's password lives hashed in the broker's metadata only
    live = LiveSystem(tmp_path / "var", broker, NO_SILENCE, extra_env={**SASL, "HOTSPOT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"})
    try:
        sim = simulate(tmp_path / "sim", officers=2, hours=0.3, seed=5, ago_h=1)
        live.hotspot("hotspots", "publish", str(sim / "hotspots.geojson"))   # CLI: producer and admin client
        listed = live.hotspot("hotspots", "list")                              # CLI: a consumer
        assert all(hid in listed for hid in _hotspot_ids(sim)), listed
        live.start_worker()                                                    # worker: consumers, producer, feeds
        live.hotspot("pings", "send", str(sim / "pings.csv"))
        total = _line_count(sim / "pings.csv")
        wait_until(lambda: _accounted(live) == total, 180, f"all {total} pings stored or rejected")

        # The gateway, configured from the same settings as `hotspot gateway` would be.
        for key, value in {**SASL, "HOTSPOT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        app, device, secret = _gateway(broker.bootstrap, tmp_path / "gw")
        with TestClient(app) as client:
            r = client.post("/v1/pings", headers={"Authorization": f"Bearer {secret}"},
                            json=[{"ts": sim_ts(sim), "lat": 51.5, "lon": -0.1}])
            assert r.status_code == 202 and r.json() == {"accepted": 1, "rejected": []}, r.text
        wait_until(lambda: live.scalar(f"SELECT count() FROM hotspot.pings FINAL WHERE device_id = '{device}'") == 1,
                   60, "the gateway's ping to reach ClickHouse through the worker")

        # A wrong password: the CLI refuses in one line naming the user, never the password.
        wrong = subprocess.run([HOTSPOT, "hotspots", "list"], capture_output=True, text=True, timeout=120,
                               env={**live.env, "HOTSPOT_KAFKA_SASL_PASSWORD": "guessed-password"})
        assert wrong.returncode == 1, (wrong.stdout, wrong.stderr)
        assert "refused the credentials of user 'patrol'" in wrong.stderr
        assert "guessed-password" not in wrong.stderr + wrong.stdout and "Traceback" not in wrong.stderr
        # ... and so is any client the factory makes with it.
        bad = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "patrol", "guessed-password")
        with pytest.raises(KafkaConnectionError):
            asyncio.run(_start_and_stop(broker.bootstrap, bad))
        assert asyncio.run(credentials_refused(broker.bootstrap, bad))
        good = KafkaSecurity("SASL_PLAINTEXT", "SCRAM-SHA-512", "patrol", PASSWORD)
        assert not asyncio.run(credentials_refused(broker.bootstrap, good))
    finally:
        get_settings.cache_clear()
        live.stop_worker()
        broker.stop()


def _hotspot_ids(sim) -> list[str]:
    import json

    return [f["properties"]["id"] for f in json.loads((sim / "hotspots.geojson").read_text())["features"]]


def sim_ts(sim) -> str:
    """The newest timestamp of the simulated shift (fresh enough to be accepted)."""
    import csv

    with open(sim / "pings.csv", newline="") as fh:
        return max(row["ts"] for row in csv.DictReader(fh))


async def _start_and_stop(bootstrap: str, security: KafkaSecurity) -> None:
    client = make_producer(bootstrap, security=security)
    try:
        await client.start()
    finally:
        await client.stop()
