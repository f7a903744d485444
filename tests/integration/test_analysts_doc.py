"""Every query in docs/analysts.md runs, as `hotspot sql` runs it, on the hand-worked fixture store.

The doc's queries use yesterday() and today(); here yesterday is the fixture's first trial day
(2026-01-12) and today the day after its last, so each query has rows to find.
"""
from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

from sinks.clickhouse import make_client, migrate
from sinks.sql_guard import ReadonlyLimits, run_readonly_query
from tests import analysts_fixture as fx

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
LIMITS = ReadonlyLimits(30.0, 1 << 30, 100_000)


def doc_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)


def on_fixture_days(sql: str) -> str:
    return sql.replace("yesterday()", "toDate('2026-01-12')").replace("today()", "toDate('2026-01-14')")


@pytest.fixture(scope="module")
def dsn(tmp_path_factory):
    dsn = f"chdb://{tmp_path_factory.mktemp('doc') / 'ch'}"
    client = make_client(dsn)
    migrate(client, "hotspot", pings_ttl_days=fx.PINGS_TTL_DAYS)
    fx.write_fixture(client)
    client.insert("hotspot.crimes", [["k1", "generic", fx.t(12, 20), "exact", 51.75, -1.26, "Robbery", 20.0, "",
                                      ["H1"], fx.t(14, 0)]],
                  column_names=["crime_key", "source", "occurred_at", "precision", "lat", "lon", "category",
                                "harm_days", "location", "hotspot_ids", "loaded_at"])
    yield dsn
    client.close()
    gc.collect()


def test_the_doc_has_at_least_ten_queries():
    assert len(doc_queries()) >= 10


@pytest.mark.parametrize("number", range(len(doc_queries())), ids=lambda n: f"query{n + 1}")
def test_every_doc_query_runs_read_only_and_finds_rows(dsn, number):
    result = run_readonly_query(dsn, "hotspot", on_fixture_days(doc_queries()[number]), LIMITS)
    assert result.rows, f"query {number + 1} found nothing on the fixture"


def test_the_first_two_queries_answer_the_trial_question(dsn):
    q1, q2 = (on_fixture_days(q) for q in doc_queries()[:2])
    # Treated yesterday (the 12th): H1 42 min, H2 10 min: only H2 fell short.
    assert [r[:2] for r in run_readonly_query(dsn, "hotspot", q1, LIMITS).rows] == [["H2", 10.0]]
    # Control hot spots: day 12 H3 6 + H4 0 untasked; day 13 H1 10 + H2 5.
    rows = run_readonly_query(dsn, "hotspot", q2, LIMITS).rows
    assert [[str(r[0])] + r[1:] for r in rows] == [["2026-01-12", 2, 6.0, 3.0, 0.0], ["2026-01-13", 2, 15.0, 7.5, 0.0]]
