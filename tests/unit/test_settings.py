"""Settings come from defaults, then a TOML file, then HOTSPOT_* variables."""
from __future__ import annotations

import subprocess

import pytest
from pydantic import ValidationError

from sinks.clickhouse import Migration, mask_dsn
from streams.settings import Settings
from tests.conftest import HOTSPOT


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("HOTSPOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_defaults_are_embedded_and_local(clean_env, tmp_path):
    s = Settings()
    assert s.local_kafka and s.bootstrap_servers == "127.0.0.1:19092"
    assert s.data_dir == tmp_path / "var"
    assert s.effective_clickhouse_dsn == f"chdb://{tmp_path / 'var' / 'clickhouse'}"


def test_environment_beats_toml_file_which_beats_defaults(clean_env, tmp_path):
    (tmp_path / "hotspot.toml").write_text('partitions = 8\nkafka_port = 29092\nhttp_port = 9000\n')
    clean_env.setenv("HOTSPOT_KAFKA_PORT", "39092")
    s = Settings()
    assert s.partitions == 8  # from the file
    assert s.kafka_port == 39092  # the variable wins over the file
    assert s.http_port == 9000


def test_bad_values_are_refused_with_the_field_named(clean_env):
    clean_env.setenv("HOTSPOT_PARTITIONS", "0")
    with pytest.raises(ValidationError, match="partitions"):
        Settings()


def test_config_command_masks_secrets_and_dsn_passwords(cli_env):
    env = {**cli_env, "HOTSPOT_SECRET_KEY": "s3cret-value", "HOTSPOT_CLICKHOUSE_DSN": "https://analyst:pa55word@ch.example:8443/"}
    out = subprocess.run([HOTSPOT, "config", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    assert "s3cret-value" not in out and "pa55word" not in out
    assert '"secret_key": "********"' in out and "analyst:****@ch.example:8443" in out


def test_config_command_masks_the_tile_services_key():
    url = "https://tiles.example/{z}/{x}/{y}.png?key=t1lek3y"
    assert Settings(map_tile_url=url).masked()["map_tile_url"] == "https://tiles.example/{z}/{x}/{y}.png?********"
    assert Settings(map_tile_url="https://t.example/{z}/{x}/{y}.png").masked()["map_tile_url"] == \
        "https://t.example/{z}/{x}/{y}.png"


def test_mask_dsn_leaves_passwordless_dsns_alone():
    assert mask_dsn("chdb:///var/clickhouse") == "chdb:///var/clickhouse"
    assert mask_dsn("http://ch:8123") == "http://ch:8123"


def test_migration_statements_split_on_line_final_semicolons_and_skip_comments():
    m = Migration(7, "two", "-- a comment; not a statement\nCREATE TABLE {db}.a (s String DEFAULT ';') ENGINE = Memory;\n\nCREATE TABLE {db}.b (x UInt8) ENGINE = Memory;\n")
    assert m.statements(db="hs") == [
        "CREATE TABLE hs.a (s String DEFAULT ';') ENGINE = Memory",
        "CREATE TABLE hs.b (x UInt8) ENGINE = Memory",
    ]
