"""`hotspot audit` (cli/audit.py): its query and its arguments; the live table is read in tests/e2e."""
from __future__ import annotations

import argparse

import pytest

from sinks.sql_guard import check_statement
from cli.audit import _duration_s, audit_query


def test_durations():
    assert _duration_s("90s") == 90 and _duration_s("30m") == 1800 and _duration_s("24h") == 86400
    assert _duration_s("7d") == 7 * 86400
    for bad in ("", "24", "1w", "-1h", "1.5h"):
        with pytest.raises(argparse.ArgumentTypeError):
            _duration_s(bad)


def test_query_filters_and_quotes_what_the_user_typed():
    q = audit_query(3600, user="o'brien", action="path_view", limit=5)
    assert "FROM hotspot.audit" in q and "ORDER BY ts DESC LIMIT 5" in q
    assert "user = 'o\\'brien'" in q and "action = 'path_view'" in q
    check_statement(q)  # one read-only statement, as `hotspot sql` requires
    check_statement(audit_query(60, user="x' OR 1=1; DROP TABLE hotspot.audit --"))
