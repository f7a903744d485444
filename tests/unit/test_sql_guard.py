"""The checker of analysts' SQL refuses every attack in the catalogue with one line, and lets reads through."""
from __future__ import annotations

from pathlib import Path

import pytest

from sinks.sql_guard import QueryNotAllowed, ReadonlyLimits, check_statement, readonly_settings, tokenize
from tests.sql_attacks import LEGITIMATE, attacks

ATTACKS = attacks(Path("/tmp/hotspot-attack"))


def test_the_catalogue_has_at_least_40_attacks():
    assert len(set(ATTACKS)) >= 40


@pytest.mark.parametrize("sql", ATTACKS)
def test_each_attack_is_refused_with_one_line(sql):
    with pytest.raises(QueryNotAllowed) as refused:
        check_statement(sql)
    message = str(refused.value)
    assert message and "\n" not in message


@pytest.mark.parametrize("sql", [q for q, _ in LEGITIMATE] + [
    "DESCRIBE hotspot.pings", "DESC TABLE hotspot.pings", "SHOW TABLES FROM hotspot", "SHOW CREATE TABLE hotspot.pings",
    "EXISTS TABLE hotspot.pings", "EXPLAIN SELECT 1", "EXPLAIN PLAN header = 1 SELECT 1", "(SELECT 1) UNION ALL (SELECT 2)",
    "SELECT format('{} {}', 'a', 'b')", "SELECT * FROM numbers(3)", "SELECT * FROM system.settings LIMIT 1",
    "SELECT $$a;b$$", "/* lead */ SELECT 1", "SELECT 1 AS `into`, 2 AS outfile",
])
def test_read_only_statements_pass(sql):
    assert check_statement(sql)


def test_one_statement_comes_back_without_its_trailing_semicolons_and_comments():
    assert check_statement("  SELECT 'x;y' ;; -- done") == "SELECT 'x;y'"


def test_the_tokenizer_reads_strings_quoted_names_heredocs_and_nested_comments_as_clickhouse_does():
    tokens = tokenize("SELECT 'a\\'b', 'c''d', `e``f`, \"g\", $t$h;$t$ /* x /* y */ z */ # w\n -- v\n 1")
    assert [(t.kind, t.text) for t in tokens] == [
        ("word", "SELECT"), ("string", "'a\\'b'"), ("punct", ","), ("string", "'c''d'"), ("punct", ","),
        ("qident", "e`f"), ("punct", ","), ("qident", "g"), ("punct", ","), ("string", "$t$h;$t$"), ("number", "1")]


def test_the_engine_s_own_table_functions_are_refused_too():
    check_statement("SELECT * FROM brandNewLake('x')")
    with pytest.raises(QueryNotAllowed, match="brandNewLake"):
        check_statement("SELECT * FROM brandNewLake('x')", table_functions=frozenset({"brandnewlake"}))


def test_readonly_comes_after_the_limits_so_setting_them_is_still_allowed():
    settings = readonly_settings(ReadonlyLimits(30.0, 1 << 30, 100_000), "hotspot-sql-t")
    assert list(settings)[-1] == "readonly" and settings["readonly"] == 1
    assert (settings["max_execution_time"], settings["max_memory_usage"], settings["max_result_rows"]) == (30.0, 1 << 30, 100_000)
    assert settings["result_overflow_mode"] == "throw" and settings["log_comment"] == "hotspot-sql-t"
