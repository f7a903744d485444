"""The one place that opens ClickHouse, and the versioned migrations.

A DSN selects the engine: `chdb:///path` runs the real ClickHouse engine in this
process (chDB; one process may own a path at a time), `http(s)://user:pass@host:port`
talks to a server. Everything above this module uses the same client API and the
same SQL either way.

Migrations are the files `sinks/migrations/NNNN_name.sql`, applied in order at
start and recorded in `<db>.schema_migrations`. A file is a list of statements
separated by lines ending in `;`; `{db}` and `{pings_ttl_days}` are filled in.
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
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class StoreBusy(Exception):
    """The embedded store is owned by another running process."""


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def mask_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        netloc = f"{parts.username}:****@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


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


def query_readonly(client: Client, sql: str) -> tuple[list[str], list[str], list[tuple]]:
    """Run one read-only query: (column names, column types, rows), names and types also when no row came back.

    clickhouse-connect over chDB answers an empty result with no columns at all, which would print a table
    without its header; the query is then described (`DESCRIBE (...)`) for its columns. Statements that cannot
    be described (SHOW ...) keep no columns.
    """
    result = client.query(sql, settings={"readonly": 1})
    names, types = list(result.column_names), [t.name for t in result.column_types]
    if not names and not result.result_rows:
        try:
            described = client.query(f"DESCRIBE ({sql.strip().rstrip(';')})", settings={"readonly": 1}).result_rows
        except ClickHouseError:
            described = []
        names, types = [str(r[0]) for r in described], [str(r[1]) for r in described]
    return names, types, result.result_rows


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self, **params) -> list[str]:
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        text = text.format(**params)
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
            migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply the migrations not yet recorded; return those applied now."""
    migrations = load_migrations() if migrations is None else migrations
    done = applied_versions(client, db)
    applied = []
    for mig in migrations:
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                # An applied migration was edited: its effect is already in the store,
                # so the edit would silently not take place. Refuse loudly.
                raise RuntimeError(f"migration {mig.version:04d}_{mig.name} changed after it was applied; add a new migration instead")
            continue
        for stmt in mig.statements(db=db, pings_ttl_days=pings_ttl_days):
            client.command(stmt)
        client.insert(f"{db}.schema_migrations", [[mig.version, mig.name, mig.checksum, int(time.time() * 1000)]],
                      column_names=["version", "name", "checksum", "applied_at"])
        applied.append(mig)
    return applied
