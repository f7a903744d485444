"""The one place that opens ClickHouse, and the versioned migrations.

A DSN selects the engine: `chdb:///path` runs the real ClickHouse engine in this
process (chDB; one process may own a path at a time), `http(s)://user:pass@host:port`
talks to a server. Everything above this module uses the same client API and the
same SQL either way.

Migrations are the files `sinks/migrations/NNNN_name.sql`, applied in order at
start and recorded in `<db>.schema_migrations`. A file is a list of statements
separated by lines ending in `;`; `{db}`, `{pings_ttl_days}` and the other
retention settings' days (`{visits_ttl_days}`, …: sinks/retention.py) are filled in.
Every statement is written to be safe to run twice, so a crash between a
statement and its record heals on the next start.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from core.settings import mask_url as mask_dsn  # noqa: F401  (the one masking function, under its old name)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class StoreBusy(Exception):
    """The embedded store is owned by another running process."""


class StoreMissing(Exception):
    """No embedded store exists at the path a read-only query was asked to read."""


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def embedded_path(dsn: str) -> Path:
    return Path(urlsplit(dsn).path)


def _locked_by_another_process(store: Path) -> bool:
    """ClickHouse holds an exclusive flock on `<store>/status` while it owns the store.

    chDB's own error only says the engine failed to start, so ask the lock itself.
    """
    try:
        fd = os.open(store / "status", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def make_client(dsn: str, database: str | None = None, **settings) -> Client:
    """Open a client for `dsn`; for an embedded path, create the directory first."""
    if is_embedded(dsn):
        path = urlsplit(dsn).path
        if path and path not in ("memory", ":memory:"):
            Path(path).mkdir(parents=True, exist_ok=True)
        try:
            return clickhouse_connect.get_client(dsn=dsn, database=database, settings=settings or None)
        except ClickHouseError:
            if _locked_by_another_process(Path(path)):
                raise StoreBusy(f"the embedded ClickHouse store {path} is in use by another process") from None
            raise
    return clickhouse_connect.get_client(dsn=dsn, database=database, settings=settings or None)


def make_readonly_client(dsn: str, database: str | None, settings: dict) -> Client:
    """A client for one analyst query: `settings` (the limits, then readonly=1; sinks/sql_guard.py) hold for
    every statement run on it after it is built, and none of those statements can change them.

    They are applied in their order once clickhouse-connect has read the server's settings (its own query,
    which a row limit below ~2,000 would break). Embedded: `SET` on this client's own chDB handle, session
    state no other handle sees (the worker's writer keeps its own); a path without a store is StoreMissing,
    never created. Server: parameters of every request.
    """
    if is_embedded(dsn):
        path = embedded_path(dsn)
        # metadata/: ClickHouse has created something here; status: an engine has it open right now.
        if not ((path / "metadata").is_dir() or (path / "status").exists()):
            raise StoreMissing(f"no ClickHouse store at {path}")
        try:
            return clickhouse_connect.get_client(dsn=dsn, database=database, settings=dict(settings))
        except ClickHouseError:
            if _locked_by_another_process(path):
                raise StoreBusy(f"the embedded ClickHouse store {path} is in use by another process") from None
            raise
    return clickhouse_connect.get_client(dsn=dsn, database=database, settings=dict(settings))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, **params) -> list[str]:
        """The statements with `params` filled in; retention days not given are their settings' defaults."""
        from sinks.retention import default_days

        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        text = text.format(**{**default_days(), **params})
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for f in sorted(directory.glob("*.sql")):
        m = _NAME.match(f.name)
        if not m:
            raise ValueError(f"migration file {f.name} is not named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), f.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two migration files share a version number")
    return found


def applied_versions(client: Client, db: str) -> dict[int, str]:
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL").result_rows
    return {int(v): c for v, c in rows}


def migrate(client: Client, db: str = "hotspot", pings_ttl_days: int = 90,
            migrations: list[Migration] | None = None, retention_days: dict[str, int] | None = None) -> list[Migration]:
    """Apply the migrations not yet recorded; return those applied now.

    `retention_days`: setting name -> days for the retention placeholders; the settings' defaults
    otherwise (the worker then applies its configured retention: sinks.retention)."""
    migrations = load_migrations() if migrations is None else migrations
    params = {**(retention_days or {}), "pings_ttl_days": pings_ttl_days}
    done = applied_versions(client, db)
    applied = []
    for mig in migrations:
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                # An applied migration was edited: its effect is already in the store,
                # so the edit would silently not take place. Refuse loudly.
                raise RuntimeError(f"migration {mig.version:04d}_{mig.name} changed after it was applied; add a new migration instead")
            continue
        for stmt in mig.statements(db=db, **params):
            client.command(stmt)
        client.insert(f"{db}.schema_migrations", [[mig.version, mig.name, mig.checksum, int(time.time() * 1000)]],
                      column_names=["version", "name", "checksum", "applied_at"])
        applied.append(mig)
    return applied
