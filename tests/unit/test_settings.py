"""Settings come from defaults, then a TOML file, then HOTSPOT_* variables."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from sinks.clickhouse import Migration, mask_dsn
from core.settings import Settings, mask_url
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


@pytest.mark.parametrize("value, shown", [
    ("https://analyst:pa55word@ch.example:8443/", "https://analyst:****@ch.example:8443/"),
    ("http://ch:8123/?user=analyst&password=pa55word", "http://ch:8123/?user=analyst&password=****"),
    ("https://registry.example/?api_key=K3Y&Token=T0K&secret=S3C&x=1",
     "https://registry.example/?api_key=****&Token=****&secret=****&x=1"),
    ("https://key:sec@ret@registry.example:8081", "https://key:****@registry.example:8081"),
    ("http://a:pw1@h1:8081,http://b:pw2@h2:8081", "http://a:****@h1:8081,http://b:****@h2:8081"),
    ("chdb:///var/clickhouse", "chdb:///var/clickhouse"),
    ("http://ch:8123/path@x", "http://ch:8123/path@x"),
    ("127.0.0.1:19092", "127.0.0.1:19092"),
])
def test_mask_url_hides_every_credential_in_a_url(value, shown):
    assert mask_url(value) == shown


def test_config_masks_credentials_in_every_url_like_setting(cli_env):
    env = {**cli_env,
           "HOTSPOT_CLICKHOUSE_DSN": "http://ch:8123/?user=analyst&password=dsn-secret",
           "HOTSPOT_CLICKHOUSE_READONLY_DSN": "https://reader:reader-secret@ch.example:8443/",
           "HOTSPOT_SCHEMA_REGISTRY_URL": "https://sr-user:registry-secret@registry.example:8081"}
    out = subprocess.run([HOTSPOT, "config", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    values = json.loads(out)
    assert not any(secret in out for secret in ("dsn-secret", "reader-secret", "registry-secret"))
    assert values["clickhouse_dsn"] == "http://ch:8123/?user=analyst&password=****"
    assert values["clickhouse_readonly_dsn"] == "https://reader:****@ch.example:8443/"
    assert values["schema_registry_url"] == "https://sr-user:****@registry.example:8081"


@pytest.mark.parametrize("variable, value", [
    ("HOTSPOT_CLICKHOUSE_DSN", "postgres://u:secret-pw@db.example/hotspot"),
    ("HOTSPOT_CLICKHOUSE_DSN", "clickhouse://ch:9000"),
    ("HOTSPOT_CLICKHOUSE_READONLY_DSN", "chdb:///var/clickhouse"),
])
def test_an_unknown_clickhouse_scheme_is_refused_in_one_line_without_the_password(cli_env, variable, value):
    proc = subprocess.run([HOTSPOT, "sql", "SELECT 1"], capture_output=True, text=True, env={**cli_env, variable: value})
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    setting = variable.removeprefix("HOTSPOT_").lower()
    assert proc.stderr.startswith(f"hotspot sql: invalid settings: {setting}: {setting} has the unknown scheme")
    assert "secret-pw" not in proc.stderr
    assert not (Path(cli_env["HOTSPOT_DATA_DIR"])).exists()


def test_hotspot_sql_against_a_server_needs_a_read_only_user(cli_env):
    env = {**cli_env, "HOTSPOT_CLICKHOUSE_DSN": "http://writer:w@127.0.0.1:9/"}
    proc = subprocess.run([HOTSPOT, "sql", "SELECT 1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("hotspot sql: the ClickHouse store is a server: set HOTSPOT_CLICKHOUSE_READONLY_DSN "
                                   "to a ClickHouse user that can only read (README: read-only ClickHouse user)")


def test_limits_of_analysts_queries_have_sane_defaults(clean_env):
    s = Settings()
    assert (s.sql_max_execution_time_s, s.sql_max_memory_bytes, s.sql_max_result_rows) == (30.0, 1 << 30, 100_000)
