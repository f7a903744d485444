"""Where the analysts' commands read and write: the one way to reach the configured ClickHouse from them.

Reads (reports, export, hot spots for crime matching):
- an embedded store owned by a running process (`hotspot run`, a worker): through that process's
  read-only query server, as `hotspot sql` does (sinks/query_server.py; its `sql_max_*` limits apply);
- an embedded store nobody owns: opened directly in this process (a missing store is an error, never
  created);
- a ClickHouse server: as the read-only user (`clickhouse_readonly_dsn`) when one is set, else the
  main DSN.
Writes (crime records, teams) go to the owner's insert endpoint (sinks/shared_store.py), to the store
opened directly (migrations applied first), or to the server.

Every query here is one statement (chDB runs every statement of a multi-statement query).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


class StoreError(Exception):
    """The store cannot be reached or refused a query; the message is one line."""


@dataclass
class Table:
    columns: list[str]
    rows: list[list]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r)) for r in self.rows]


class Store:
    """A connection for the analysts' commands; `query` answers Table, `insert` writes columns."""

    def __init__(self, settings=None):
        from sinks.clickhouse import is_embedded
        from core.settings import get_settings

        self.settings = settings or get_settings()
        self.dsn = self.settings.effective_clickhouse_dsn
        self.database = self.settings.clickhouse_database
        self.embedded = is_embedded(self.dsn)
        self._client = None
        self._reader = None  # a server's read-only user, when one is configured
        self._owner = self._owner_running() if self.embedded else False

    # ------------------------------------------------------------------ routes
    @property
    def route(self) -> str:
        if not self.embedded:
            return "server"
        return "owner" if self._owner else "direct"

    def describe(self) -> str:
        from sinks.clickhouse import embedded_path, mask_dsn

        if self.route == "server":
            return f"ClickHouse server {mask_dsn(self.dsn)}"
        if self.route == "owner":
            return f"embedded store {embedded_path(self.dsn)} (through the running worker)"
        return f"embedded store {embedded_path(self.dsn)}"

    def _owner_running(self) -> bool:
        from sinks.query_server import OwnerUnavailable, read_owner

        try:
            read_owner(self.settings.data_dir, dsn=self.dsn)
        except OwnerUnavailable:
            return False
        return True

    def _direct(self, for_write: bool = False):
        from sinks.clickhouse import StoreBusy, embedded_path, make_client, migrate

        if self._client is None:
            if self.embedded and not for_write:
                path = embedded_path(self.dsn)
                if not (path / "metadata").is_dir():
                    raise StoreError(f"no ClickHouse store at {path}: start `hotspot run` (or a worker) first, or "
                                     "point HOTSPOT_DATA_DIR or HOTSPOT_CLICKHOUSE_DSN at an existing store")
            try:
                self._client = make_client(self.dsn)
            except StoreBusy as exc:
                raise StoreError(f"{exc}, and it serves no queries (is it an old worker?)") from None
            if self.embedded:
                # This process owns the store now: bring it to the current schema, as a worker would.
                migrate(self._client, self.database, self.settings.pings_ttl_days)
        return self._client

    def _read_dsn_client(self):
        if not self.embedded and self.settings.clickhouse_readonly_dsn:
            if self._reader is None:
                from sinks.clickhouse import make_client

                self._reader = make_client(self.settings.clickhouse_readonly_dsn)
            return self._reader
        return self._direct()

    # ------------------------------------------------------------------ reads
    def query(self, sql: str) -> Table:
        if self.route == "owner":
            from sinks.query_server import OwnerUnavailable, QueryRefused, query_owner

            try:
                cols, rows = query_owner(self.settings.data_dir, sql, dsn=self.dsn,
                                         timeout_s=self.settings.sql_max_execution_time_s + 30)
            except (QueryRefused, OwnerUnavailable) as exc:
                raise StoreError(str(exc)) from None
            return Table(list(cols), [list(r) for r in rows])
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            result = self._read_dsn_client().query(sql)
        except ClickHouseError as exc:
            text = str(exc).strip()
            raise StoreError(text.splitlines()[0] if text else type(exc).__name__) from None
        return Table(list(result.column_names), [list(r) for r in result.result_rows])

    # ------------------------------------------------------------------ writes
    def insert(self, table: str, columns: list[str], data: list[list]) -> None:
        """Insert column-oriented `data` (one list per column) into `<database>.table`."""
        full = f"{self.database}.{table}"
        if self.route == "owner":
            from sinks.shared_store import RemoteStore

            try:
                RemoteStore(self.settings.data_dir).insert(full, data, column_names=columns, column_oriented=True)
            except (ConnectionError, OSError) as exc:
                raise StoreError(str(exc)) from None
            except Exception as exc:  # the owner's ClickHouse refused it
                raise StoreError(str(exc).strip().splitlines()[0]) from None
            return
        client = self._direct(for_write=True)
        client.insert(full, data, column_names=columns, column_oriented=True)

    def close(self) -> None:
        for name in ("_client", "_reader"):
            client = getattr(self, name)
            if client is not None:
                setattr(self, name, None)
                client.close()


def to_date(value) -> dt.date:
    """A date from what either route answers (a date, or its ISO text through the query server)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
