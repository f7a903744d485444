"""Gateway tunables, read once from the project settings.

Fields not (yet) in `streams.settings.Settings` fall back to the defaults here,
so `HOTSPOT_GATEWAY_*` only take effect once the settings model declares them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class GatewayConfig:
    bootstrap_servers: str = "127.0.0.1:19092"
    partitions: int = 4                        # of topic `pings` when the gateway creates it (as the worker would)
    data_dir: Path = Path("var")
    schema_registry_url: str = ""
    max_body_bytes: int = 1024 * 1024          # larger bodies get 413
    max_batch_pings: int = 1000                # more items in one POST /v1/pings get 413
    device_rate_pings_per_s: float = 20.0      # sustained, per device
    device_burst_pings: float = 1000.0         # ~80 min of backlog at one ping per 5 s
    ack_timeout_s: float = 10.0                # wait this long for Kafka, then 503 (native, OsmAnd) or spool (OwnTracks)
    osmand_speed_unit: str = "kn"              # kn | kmh | mps | mph
    osmand_port: int = 0                       # >0: also answer the OsmAnd protocol at / on this port
    osmand_enabled: bool = True                # False: the OsmAnd routes answer 404
    osmand_unknown_burst: int = 10             # unknown identifiers per source address before 429 ...
    osmand_unknown_per_s: float = 0.02         # ... earned back at one a minute: guessing 2^192 values is hopeless anyway
    credentials_refresh_s: float = 1.0         # a revoked credential stops working within this delay
    # OwnTracks over its rate: held on disk, released at the rate (gateway.held)
    owntracks_held_max_per_device: int = 20_000   # ~3 MB; 28 h of pings at one per 5 s
    owntracks_held_max_total: int = 1_000_000     # ~150 MB over all devices
    owntracks_park_s: float = 60.0             # an over-bound request waits this long unanswered for room
    owntracks_park_per_device: int = 2         # OwnTracks has one request in flight; more is not a phone
    owntracks_park_total: int = 256

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.sqlite3"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "gateway-spool"

    @property
    def held_dir(self) -> Path:
        return self.data_dir / "gateway-held"

    @classmethod
    def from_settings(cls, settings) -> "GatewayConfig":
        values = {"bootstrap_servers": settings.bootstrap_servers, "data_dir": settings.data_dir,
                  "partitions": settings.partitions}
        for f in fields(cls):
            for name in (f.name, f"gateway_{f.name}"):
                if name in type(settings).model_fields:
                    values[f.name] = getattr(settings, name)
        return cls(**values)

    def with_(self, **changes) -> "GatewayConfig":
        return replace(self, **changes)
