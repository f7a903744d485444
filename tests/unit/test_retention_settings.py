"""Retention settings and the table-driven list that applies them (sinks/retention.py, migration 0008)."""
from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from sinks.clickhouse import load_migrations
from sinks.retention import RETENTION, days_by_table, default_days, ttl_expression
from core.settings import Settings


def test_every_retention_line_names_a_setting_and_raw_pings_are_kept_shortest():
    fields = Settings.model_fields
    for r in RETENTION:
        assert r.setting in fields and r.setting.endswith("_ttl_days"), r
    days = default_days()
    assert days["pings_ttl_days"] == min(days.values()) == 90
    assert {r.table for r in RETENTION} >= {"pings", "pings_rejected", "visits", "stops", "mode_segments",
                                            "assignments", "activity", "audit", "crimes"}
    assert {r.table for r in RETENTION if r.optional} == {"audit", "crimes"}
    s = Settings.model_construct(visits_ttl_days=400)
    assert days_by_table(s)["visits"] == 400 and days_by_table(s)["pings_rejected"] == s.pings_ttl_days


def test_migration_0008_sets_the_ttl_of_every_required_table_as_the_list_says():
    mig = next(m for m in load_migrations() if m.version == 8)
    set_by_migration = {}
    for stmt in mig.statements(db="hotspot", pings_ttl_days=90):
        m = re.fullmatch(r"ALTER TABLE hotspot\.(\w+) MODIFY TTL (.+)", stmt)
        assert m, stmt
        set_by_migration[m.group(1)] = m.group(2)
    wanted = {r.table: ttl_expression(r.time_column, default_days()[r.setting]) for r in RETENTION if not r.optional}
    assert set_by_migration == wanted


def test_a_retention_past_the_end_of_clickhouse_datetime_is_refused(monkeypatch):
    # toDateTime(t) + N days beyond 2106 wraps round to 1970: every row would expire at once
    monkeypatch.setenv("HOTSPOT_VISITS_TTL_DAYS", "36500")
    with pytest.raises(ValidationError, match="visits_ttl_days"):
        Settings()
    monkeypatch.setenv("HOTSPOT_VISITS_TTL_DAYS", "18250")
    assert Settings().visits_ttl_days == 18_250
