"""How long each ClickHouse table keeps its rows: the retention settings applied as TTLs.

Every table that holds personal data has a retention setting (core/settings.py,
`*_ttl_days`), raw pings the shortest. `RETENTION` below says, one line per table,
which column a row's age is counted from and which setting gives the days; adding
a table is adding a line. Migration 0008_retention.sql establishes the TTLs with
the settings' defaults, and the worker calls `apply_retention_settings` at every
start, after the migrations: a table whose TTL differs from its setting gets
`ALTER TABLE … MODIFY TTL`, any other is left alone (a TTL change makes ClickHouse
rewrite the table's parts, so it is never issued for nothing). Tables another
migration creates later (`audit`, `crimes`) are marked optional: until they exist
they are skipped, and the first start after their migration gives them their TTL.

`hotspots` and `allocations` have no TTL: they are the force's hot spots and trial
designs, not data about officers, and a trial's report needs them for good.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

log = logging.getLogger("hotspot.retention")


@dataclass(frozen=True)
class TableRetention:
    table: str
    time_column: str    # a row expires this many days after the time in this column
    setting: str        # the Settings field holding the days
    optional: bool = False  # created by a later migration: skipped while it does not exist


RETENTION: tuple[TableRetention, ...] = (
    TableRetention("pings", "ts", "pings_ttl_days"),
    TableRetention("pings_rejected", "received_at", "pings_ttl_days"),  # raw input too: as pings
    TableRetention("visits", "entered_at", "visits_ttl_days"),
    TableRetention("stops", "started_at", "stops_ttl_days"),
    TableRetention("mode_segments", "started_at", "mode_segments_ttl_days"),
    TableRetention("assignments", "assigned_at", "assignments_ttl_days"),
    TableRetention("activity", "ts", "activity_ttl_days"),
    TableRetention("audit", "ts", "audit_ttl_days", optional=True),            # sign-in and audit (0009)
    TableRetention("crimes", "occurred_at", "crimes_ttl_days", optional=True),  # crime records (0007)
)


def default_days() -> dict[str, int]:
    """Each retention setting's default: what migration 0008 is filled in with."""
    from core.settings import Settings

    return {r.setting: Settings.model_fields[r.setting].default for r in RETENTION}


def days_by_table(settings) -> dict[str, int]:
    return {r.table: int(getattr(settings, r.setting)) for r in RETENTION}


def ttl_expression(column: str, days: int) -> str:
    """The TTL as ClickHouse prints it back in system.tables, so current and wanted compare as text."""
    return f"toDateTime({column}) + toIntervalDay({int(days)})"


_TTL = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")


def current_ttls(client: Client, db: str) -> dict[str, str | None]:
    """Table name -> its TTL expression (None without one), for the tables of `db`."""
    rows = client.query("SELECT name, engine_full FROM system.tables WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    out: dict[str, str | None] = {}
    for name, engine_full in rows:
        m = _TTL.search(engine_full or "")
        out[name] = m.group(1).strip() if m else None
    return out


def _engines(client: Client, db: str) -> dict[str, str]:
    rows = client.query("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    return dict(rows)


def _column_types(client: Client, db: str) -> dict[tuple[str, str], str]:
    rows = client.query("SELECT table, name, type FROM system.columns WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    return {(t, c): ty for t, c, ty in rows}


def apply_retention(client: Client, db: str, days: dict[str, int]) -> list[tuple[str, str | None, str]]:
    """Give every table in `days` (table -> days) the TTL of RETENTION; return (table, old, new) of those changed.

    A required table that does not exist is an error (its migration should have made it); an
    optional one is skipped. A table whose time column is missing or nullable is skipped with a
    warning: its RETENTION line names the wrong column, and ClickHouse would refuse the TTL.
    """
    current = current_ttls(client, db)
    engines = _engines(client, db)
    types = _column_types(client, db)
    changed = []
    for r in RETENTION:
        if r.table not in days:
            continue
        if r.table not in current:
            if r.optional:
                continue
            raise RuntimeError(f"table {db}.{r.table} does not exist: its retention cannot be set")
        if not engines[r.table].endswith("MergeTree"):
            # e.g. a Distributed table over a cluster's shards: the TTL belongs on the shards' tables
            log.warning("retention of %s.%s not applied: a %s table has no TTL of its own", db, r.table,
                        engines[r.table])
            continue
        col_type = types.get((r.table, r.time_column))
        if col_type is None or col_type.startswith("Nullable("):
            log.warning("retention of %s.%s not applied: column %s is %s, not a non-null date or time "
                        "(fix its line in sinks/retention.py)", db, r.table, r.time_column,
                        col_type or "missing")
            continue
        wanted = ttl_expression(r.time_column, days[r.table])
        if current[r.table] == wanted:
            continue
        client.command(f"ALTER TABLE {db}.{r.table} MODIFY TTL {wanted}")
        # A warning: rows may be deleted from now on, and it is said before the worker's logging is set up.
        log.warning("retention of %s.%s set to %d days (was: %s)", db, r.table, days[r.table],
                 current[r.table] or "no TTL")
        changed.append((r.table, current[r.table], wanted))
    return changed


def apply_retention_settings(settings) -> list[tuple[str, str | None, str]]:
    """The worker's start-up step: make the store's TTLs those of `settings` (after the migrations ran)."""
    from sinks.clickhouse import make_client

    return apply_retention(make_client(settings.effective_clickhouse_dsn), settings.clickhouse_database,
                           days_by_table(settings))
