"""The one settings model of Hotspot Patrol.

Values come, highest priority first, from `HOTSPOT_*` environment variables,
then a TOML file (`--config FILE`, `$HOTSPOT_CONFIG`, or `./hotspot.toml` when it
exists), then the defaults below, which run everything embedded on one machine.
Every process (CLI, worker, gateway) reads its configuration through
`get_settings()`; nothing else reads the environment.
"""
from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

_config_file: Path | None = None


def use_config_file(path: str | os.PathLike[str]) -> None:
    """Select a TOML file for the rest of this process (the `--config` option)."""
    global _config_file
    p = Path(path)
    if not p.is_file():
        from streams.cli import CommandError

        raise CommandError(f"config file {p} does not exist")
    _config_file = p
    get_settings.cache_clear()


def _toml_path() -> Path | None:
    if _config_file is not None:
        return _config_file
    env = os.environ.get("HOTSPOT_CONFIG")
    if env:
        return Path(env)
    local = Path("hotspot.toml")
    return local if local.is_file() else None


# Credentials inside URL-like values: user:password@ in an authority, and query parameters whose name
# says secret (password, secret, token, key, credential, auth, signature).
_USERINFO = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s,?#]*):(?P<pw>[^/\s,?#]+)@")
_SECRET_PARAM = re.compile(
    r"(?P<pre>[?&;][^=&;#\s,]*(?:pass|pwd|secret|token|key|credential|auth|signature|sig)[^=&;#\s,]*=)"
    r"(?P<value>[^&;#\s,]+)", re.IGNORECASE)


def mask_url(value: str) -> str:
    """`value` with every credential of every URL in it replaced by ****: the one masking function."""
    masked = _USERINFO.sub(lambda m: f"{m.group('pre')}:****@", value)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('pre')}****", masked)


def _check_dsn_scheme(value: str, setting: str, schemes: tuple[str, ...]) -> str:
    scheme = value.split("://", 1)[0].lower() if "://" in value else value.split(":", 1)[0].lower()
    if value and scheme not in schemes:
        choices = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{setting} has the unknown scheme {scheme!r}: use {choices} "
                         "(chdb:///PATH: the embedded engine; http(s)://user:password@host:8123: a ClickHouse server)")
    return value


def describe_validation_error(exc) -> str:
    """One line for a pydantic ValidationError of the settings, never echoing the values (they may be secret)."""
    return "invalid settings: " + "; ".join(
        f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        path = _toml_path()
        self._data: dict[str, Any] = {}
        if path is not None:
            with open(path, "rb") as fh:
                self._data = tomllib.load(fh)

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by __call__
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOTSPOT_", extra="ignore")

    # --- where things live -------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Root for embedded state: broker data, ClickHouse store, spool.")
    clickhouse_dsn: str = Field("", description="chdb:///PATH (embedded) or http(s)://user:pass@host:8123. Empty: chdb under data_dir/clickhouse.")
    clickhouse_database: str = "hotspot"
    clickhouse_readonly_dsn: str = Field("", description=(
        "http(s)://user:pass@host:8123 of a ClickHouse user that can only read (README: read-only ClickHouse user): "
        "what `hotspot sql` uses when the store is a server. Empty with a server DSN: `hotspot sql` refuses."))
    sql_max_execution_time_s: float = Field(30.0, gt=0, description="Longest an analyst's query (`hotspot sql`) may run.")
    sql_max_memory_bytes: int = Field(1 << 30, ge=1 << 20, description="Most memory one analyst's query may use.")
    sql_max_result_rows: int = Field(100_000, ge=1, description="Most rows an analyst's query may return (more: an error).")
    pings_ttl_days: int = Field(90, ge=1, description="Retention of raw pings in ClickHouse.")

    # --- Kafka ---------------------------------------------------------------
    kafka_bootstrap: str = Field("", description="host:port list of an existing cluster. Empty: the local broker is used (and started by `hotspot run`).")
    kafka_port: int = Field(19092, ge=1, le=65535, description="Client port of the local broker.")
    kafka_controller_port: int = Field(19093, ge=1, le=65535, description="KRaft controller port of the local broker.")
    kafka_heap: str = Field("512m", description="JVM heap of the local broker (-Xmx/-Xms).")
    kafka_jars_dir: Path = Field(REPO_ROOT / ".cache" / "kafka-jars", description="Where Maven copies the Kafka jars.")
    partitions: int = Field(4, ge=1, le=256, description="Partition count of every data topic.")
    # Security of every Kafka client the system makes (streams.kafka.KafkaSecurity). A force's
    # cluster will want TLS and SASL; the local broker speaks SASL_PLAINTEXT with SCRAM when asked.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How Kafka clients connect: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism when the protocol is SASL_*.")
    kafka_sasl_username: str = Field("", description="SASL user name.")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (never printed).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL); empty: the system's CAs.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for brokers that require one.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Private key (PEM) of the client certificate.")
    kafka_ssl_key_password: SecretStr = Field(SecretStr(""), description="Password of the client key, if it has one (never printed).")

    # --- analytics -------------------------------------------------------------
    processing: dict[str, float] = Field(default_factory=dict, description=(
        "Overrides of processors.config.ProcessingConfig, e.g. HOTSPOT_PROCESSING='{\"signal_loss_s\": 600}' "
        "or a [processing] table in the TOML file."))

    # --- worker --------------------------------------------------------------
    worker_batch_max: int = Field(5000, ge=1, description="Most pings handled in one micro-batch.")
    worker_batch_window_s: float = Field(0.1, gt=0, description="Longest wait to fill a micro-batch, seconds (also how often held pings are released).")
    worker_arrival_margin_s: float = Field(0.1, ge=0, description=(
        "How far behind its own clock the worker assumes the log end may be: a held ping is released on the "
        "wall clock only once every ping appended before (now - margin) has been read. Covers the skew between "
        "the worker's and the brokers' clocks and a replica's lag behind its leader."))
    worker_expire_interval_s: float = Field(5.0, gt=0, description="How often silent devices are checked for signal loss.")
    worker_commit_interval_s: float = Field(1.0, gt=0, description=(
        "How often the worker checkpoints: rows durable, changed device states to the changelog, offsets committed."))
    worker_instance_id: str = Field("", description=(
        "Static group membership id (Kafka group.instance.id): a restarted worker with the same id takes its "
        "partitions back at once instead of after the session timeout. Unique per running worker; empty: off."))
    worker_join_store: bool = Field(False, description=(
        "Join a store another worker owns (embedded chDB only): this worker's rows are written through the owner, "
        "and it takes the store over if the owner dies. Off: a second worker on an owned store is refused."))
    worker_metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics of the worker (0: off).")

    # --- HTTP ----------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    secret_key: SecretStr = Field(SecretStr(""), description="Signs session tokens. Empty only in development.")
    schema_registry_url: str = Field("", description="Confluent-compatible schema registry; empty: Avro single-object encoding.")
    gateway_max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body the gateway reads.")
    gateway_max_batch_pings: int = Field(1000, ge=1, description="Most pings in one POST /v1/pings.")
    gateway_device_rate_pings_per_s: float = Field(20.0, gt=0, description="Sustained pings per second per device.")
    gateway_device_burst_pings: int = Field(1000, ge=1, description="Burst allowance per device (a phone catching up).")
    gateway_ack_timeout_s: float = Field(10.0, gt=0, description="How long a request waits for Kafka's acknowledgement.")
    gateway_osmand_speed_unit: str = Field("kn", pattern="^(kn|kmh|mps|mph)$", description="Unit of OsmAnd `speed` (Traccar: knots).")
    gateway_osmand_port: int = Field(0, ge=0, le=65535, description="Extra listener answering OsmAnd at / (0: off).")
    gateway_osmand_enabled: bool = Field(True, description="Answer the OsmAnd / Traccar Client routes (false: 404).")
    gateway_osmand_unknown_burst: int = Field(10, ge=1, description="Unknown OsmAnd identifiers one source address may send before it is refused.")
    gateway_osmand_unknown_per_s: float = Field(0.02, gt=0, description="Unknown OsmAnd identifiers per second one address earns back (0.02: one a minute).")
    gateway_credentials_refresh_s: float = Field(1.0, gt=0, description="How soon a revoked credential stops working.")
    gateway_owntracks_held_max_per_device: int = Field(20_000, ge=1, description="OwnTracks pings over the rate held on disk per device.")
    gateway_owntracks_held_max_total: int = Field(1_000_000, ge=1, description="OwnTracks pings held on disk over all devices.")
    gateway_owntracks_park_s: float = Field(60.0, ge=0, description="How long an OwnTracks request past the held limits waits unanswered for room.")
    # --- officer app: sessions, directions, activity (issue 14) ---------------------------------
    environment: Literal["development", "production"] = Field("development", description=(
        "development: an empty or placeholder secret_key is replaced by a random key kept 0600 in the data "
        "directory; production: the gateway refuses to start without a real secret_key (32+ characters)."))
    session_ttl_s: float = Field(12 * 3600, gt=0, description="How long a sign-in lasts (a shift and some).")
    session_refresh_s: float = Field(1.0, ge=0, description="How soon a sign-out or revocation elsewhere takes effect.")
    signin_burst: int = Field(10, ge=1, description="Failed sign-ins one address may make before it gets 429.")
    signin_per_s: float = Field(0.1, gt=0, description="Failed sign-ins per second an address earns back.")
    directions_max_distance_m: float = Field(3000.0, gt=0, description="Hot spots farther than this are not offered.")
    directions_daily_cap: int = Field(6, ge=1, description="Assignments per hot spot and trial day before it drops out.")
    directions_default_target_minutes: float = Field(15.0, gt=0, description="Target of a hot spot without its own.")
    directions_distance_scale_m: float = Field(1000.0, gt=0, description=(
        "Distance weighting: a hot spot this far away weighs half as much as one at the officer's feet."))
    dosage_cache_s: float = Field(10.0, ge=0, description="How long the gateway reuses today's dosage read from ClickHouse.")
    activity_categories: dict[str, str] = Field(default_factory=lambda: {
        "stop_account": "Stop and account", "community": "Community engagement", "search": "Search",
        "arrest": "Arrest", "intelligence": "Intelligence submitted", "other": "Other"}, description=(
        "Activity log categories, id -> label (HOTSPOT_ACTIVITY_CATEGORIES as JSON, or an [activity_categories] table)."))
    idempotency_ttl_s: float = Field(24 * 3600, gt=0, description="How long a repeated Idempotency-Key gets the first answer.")

    map_tile_url: str = Field("", description=(
        "XYZ tile source for the basemap of `hotspot hotspots build --preview`, e.g. a force's own tile server "
        "https://tiles.example/{z}/{x}/{y}.png (respect the source's usage policy); empty: no basemap."))
    web_assets_dir: Path = Field(REPO_ROOT / "web" / "node_modules", description=(
        "Browser assets installed by `make setup` (`npm ci` in web/): Swagger UI and ReDoc for /docs and /redoc, "
        "served by the gateway itself so the API docs work without internet."))

    @field_validator("clickhouse_dsn", mode="after")
    @classmethod
    def _known_engine(cls, v: str) -> str:
        return _check_dsn_scheme(v, "clickhouse_dsn", ("chdb", "http", "https"))

    @field_validator("clickhouse_readonly_dsn", mode="after")
    @classmethod
    def _server_engine(cls, v: str) -> str:
        return _check_dsn_scheme(v, "clickhouse_readonly_dsn", ("http", "https"))

    @field_validator("data_dir", "kafka_jars_dir", "web_assets_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return None if v in ("", None) else v

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> "Settings":
        """Refuse half a security configuration at start rather than at the first connection."""
        if self.kafka_security_protocol.startswith("SASL_"):
            if not self.kafka_sasl_username or not self.kafka_sasl_password.get_secret_value():
                raise ValueError(f"kafka_security_protocol {self.kafka_security_protocol} needs "
                                 "kafka_sasl_username and kafka_sasl_password")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("kafka_ssl_certfile and kafka_ssl_keyfile go together")
        return self

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, _TomlSource(settings_cls))

    # --- derived -------------------------------------------------------------
    def processing_config(self):
        """The ProcessingConfig in force; unknown names or bad values raise ValueError naming them."""
        import dataclasses

        from processors.config import ProcessingConfig

        known = {f.name for f in dataclasses.fields(ProcessingConfig)}
        unknown = sorted(set(self.processing) - known)
        if unknown:
            raise ValueError(f"unknown processing setting(s): {', '.join(unknown)}")
        return ProcessingConfig(**self.processing)

    @property
    def kafka_data_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def local_kafka(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def effective_clickhouse_dsn(self) -> str:
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{self.data_dir / 'clickhouse'}"

    def masked(self) -> dict[str, Any]:
        """Effective settings for display: secrets masked, and every credential in every URL-like value."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, str):
                value = mask_url(value)
            out[name] = value
        out["clickhouse_dsn"] = mask_url(self.effective_clickhouse_dsn)
        if "?" in self.map_tile_url:  # tile services put their API key in the query string
            out["map_tile_url"] = self.map_tile_url.split("?", 1)[0] + "?********"
        out["bootstrap_servers"] = mask_url(self.bootstrap_servers)
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
