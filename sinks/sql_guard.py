"""What an analyst's query may be, and how it runs: one read-only statement under limits.

`hotspot sql` (directly, or through the owner's query server) takes SQL typed
by a person, so this module decides what may run and runs it, the same way on
both paths:

1. `check_statement(sql)`: a strict tokenizer (string literals, quoted
   identifiers, heredocs, `--`/`#` and nested `/* */` comments) accepts exactly
   one statement of a read-only kind (SELECT, WITH ... SELECT, DESCRIBE, SHOW
   of a listing, EXISTS, EXPLAIN of a select) that calls no table function
   outside a small allow-list (nothing reads files, URLs, object stores or
   other servers), no `file()`/dictionary/model function, and has no
   `INTO OUTFILE`, `FORMAT` or `SETTINGS` clause. A refusal is `QueryNotAllowed`
   with one line saying why.
2. ClickHouse's own parser (`formatQuerySingleLine`, the query passed as a
   bound parameter, never spliced into SQL text) turns the statement into its
   canonical single-statement text; that text is checked again, against the
   engine's own list of table functions, and it is what runs. So nothing
   hides in a comment or a lexer disagreement: the engine executes exactly the
   text that was checked.
3. The client it runs on is opened per query by `sinks.clickhouse.
   make_readonly_client` with the limits below and then `readonly=1` as
   session settings (SET on a chDB handle of its own; parameters of every
   HTTP request to a server), so the query itself cannot change them
   (readonly=1 refuses any setting change) and nothing is shared between two
   queries.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError


class QueryNotAllowed(ValueError):
    """The query is not one read-only statement we allow; the message says why, in one line."""


class QueryFailed(Exception):
    """ClickHouse ran the query and refused it or stopped it; the message is one line."""


@dataclass(frozen=True)
class ReadonlyLimits:
    """Per-query limits of analysts' SQL (settings `sql_max_*`)."""

    max_execution_time_s: float
    max_memory_bytes: int
    max_result_rows: int

    @classmethod
    def from_settings(cls, s: Any) -> ReadonlyLimits:
        return cls(s.sql_max_execution_time_s, s.sql_max_memory_bytes, s.sql_max_result_rows)


def new_tag() -> str:
    """A fresh marker for one query (its `log_comment`), so it can be found and killed."""
    return f"hotspot-sql-{secrets.token_hex(12)}"


def readonly_settings(limits: ReadonlyLimits, tag: str) -> dict[str, Any]:
    """The session settings every analyst query runs under; `readonly` last, after the limits."""
    return {
        "max_execution_time": limits.max_execution_time_s,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": limits.max_memory_bytes,
        "max_result_rows": limits.max_result_rows,
        "result_overflow_mode": "throw",
        # A ClickHouse server stops a read-only query whose HTTP client went away.
        "cancel_http_readonly_queries_on_client_close": 1,
        "log_comment": tag,
        "allow_introspection_functions": 0,  # chDB turns them on; they read the binary, no analyst needs them
        "readonly": 1,
    }


# --------------------------------------------------------------------- tokenizer
@dataclass(frozen=True)
class Token:
    kind: str   # word, qident (quoted identifier), string, number, param, punct, semicolon
    text: str   # for word/qident the name itself (unquoted), else the source text
    pos: int    # where it starts in the source
    end: int    # just after it


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"(?:0[xX][0-9A-Fa-f_]+|0[bB][01_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)")
_HEREDOC = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PUNCT = "()[]{},.+-*/%<>=!|:?^&@~"


def tokenize(sql: str) -> list[Token]:
    """The significant tokens of `sql` (comments and blanks dropped); QueryNotAllowed if it cannot be read."""
    out: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i) or ch == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while depth and j < n:  # ClickHouse nests /* */ comments
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise QueryNotAllowed("a /* comment is not closed")
            i = j
        elif ch in "'\"`":
            j = i + 1
            parts = []
            while True:
                if j >= n:
                    what = "string" if ch == "'" else "quoted identifier"
                    raise QueryNotAllowed(f"a {what} starting at character {i + 1} is not closed")
                c = sql[j]
                if c == "\\" and j + 1 < n:
                    parts.append(sql[j:j + 2])
                    j += 2
                elif c == ch and sql.startswith(ch * 2, j):
                    parts.append(ch)
                    j += 2
                elif c == ch:
                    j += 1
                    break
                else:
                    parts.append(c)
                    j += 1
            body = "".join(parts)
            if ch == "'":
                out.append(Token("string", sql[i:j], i, j))
            else:
                out.append(Token("qident", body, i, j))
            i = j
        elif ch == "$" and (m := _HEREDOC.match(sql, i)):
            end = sql.find(m.group(0), m.end())
            if end < 0:
                raise QueryNotAllowed(f"a {m.group(0)} string starting at character {i + 1} is not closed")
            j = end + len(m.group(0))
            out.append(Token("string", sql[i:j], i, j))
            i = j
        elif ch == ";":
            out.append(Token("semicolon", ";", i, i + 1))
            i += 1
        elif m := _WORD.match(sql, i):
            out.append(Token("word", m.group(0), i, m.end()))
            i = m.end()
        elif ch.isdigit() or (ch == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            j = m.end() if m and m.end() > i else i + 1
            out.append(Token("number", sql[i:j], i, j))
            i = j
        elif ch in _PUNCT:
            out.append(Token("punct", ch, i, i + 1))
            i += 1
        else:
            raise QueryNotAllowed(f"unexpected character {ch!r} at {i + 1}")
    return out


# --------------------------------------------------------------------- the check
READONLY_KINDS = ("SELECT", "WITH", "DESCRIBE", "DESC", "SHOW", "EXISTS", "EXPLAIN")

# Table functions that only compute rows or read tables through the normal grants.
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "view", "viewifpermitted", "generaterandom",
    "generate_series", "generateseries", "null", "primes", "format", "merge",
})

# Every table function ClickHouse 26.9 (chDB 4.4) has; at run time the engine's own
# system.table_functions is added, so a newer engine's functions are refused too.
KNOWN_TABLE_FUNCTIONS = frozenset(name.lower() for name in """
    SQLStandardValues arrowstream azureBlobStorage azureBlobStorageCluster bigquery cluster clusterAllReplicas cosn
    deltaLake deltaLakeAzure deltaLakeAzureCluster deltaLakeCluster deltaLakeLocal deltaLakeS3 deltaLakeS3Cluster
    dictionary eval executable file fileCluster filesystem format fuzzJSON fuzzQuery gcs generateRandom
    generateSeries generate_series hdfs hdfsCluster hudi hudiCluster iceberg icebergAzure icebergAzureCluster
    icebergCluster icebergHDFS icebergHDFSCluster icebergLocal icebergLocalCluster icebergS3 icebergS3Cluster input
    jdbc loop merge mergeTreeAnalyzeIndexes mergeTreeAnalyzeIndexesUUID mergeTreeCodecBlockCounts mergeTreeIndex
    mergeTreeProjection mergeTreeTextIndex mongodb mysql null numbers numbers_mt odbc oss paimon paimonAzure
    paimonAzureCluster paimonCluster paimonHDFS paimonHDFSCluster paimonLocal paimonS3 paimonS3Cluster postgresql
    primes prometheusQuery prometheusQueryRange python redis remote remoteSecure s3 s3Cluster sqlite timeSeriesData
    timeSeriesMetricFamilies timeSeriesMetrics timeSeriesSamples timeSeriesSelector timeSeriesTags url urlCluster
    values view viewExplain viewIfPermitted ytsaurus zeros zeros_mt
""".split())

# Ordinary functions that read files, models or dictionaries (which may have file or network sources).
_FORBIDDEN_FUNCTIONS = frozenset({"file", "catboostevaluate", "modelevaluate", "evalmlmethod"})

# SHOW forms that list objects; SHOW CREATE USER, GRANTS, ACCESS, QUOTAS... stay out.
_SHOW_ALLOWED = frozenset({
    "TABLES", "DATABASES", "COLUMNS", "FIELDS", "FULL", "EXTENDED", "TEMPORARY", "INDEX", "INDEXES", "INDICES",
    "KEYS", "ENGINES", "FUNCTIONS", "SETTINGS", "SETTING", "CHANGED", "PROCESSLIST", "CREATE",
})
_SHOW_CREATE_REFUSED = frozenset({"USER", "ROLE", "QUOTA", "POLICY", "ROW", "SETTINGS", "PROFILE", "DICTIONARY", "NAMED"})
_EXPLAIN_KINDS = frozenset({"AST", "SYNTAX", "PLAN", "PIPELINE", "ESTIMATE", "QUERY", "TREE", "CURRENT", "TRANSACTION"})


def _refuse_kind(first: Token) -> QueryNotAllowed:
    word = first.text.upper() if first.kind == "word" else first.text
    return QueryNotAllowed(f"only one read-only statement may run (SELECT, WITH ... SELECT, DESCRIBE, SHOW, "
                           f"EXISTS, EXPLAIN SELECT); {word} is not allowed")


def check_statement(sql: str, table_functions: frozenset[str] = frozenset()) -> str:
    """Return `sql` as one statement (trailing `;` dropped) if we allow it; else raise QueryNotAllowed.

    `table_functions`: the engine's table function names (lower case), refused
    unless allowed, on top of KNOWN_TABLE_FUNCTIONS.
    """
    if "\x00" in sql:
        raise QueryNotAllowed("the query contains a NUL character")
    tokens = tokenize(sql)
    while tokens and tokens[-1].kind == "semicolon":
        tokens.pop()
    if not tokens:
        raise QueryNotAllowed("the query is empty")
    if any(t.kind == "semicolon" for t in tokens):
        raise QueryNotAllowed("only one statement may run: remove the ';' and what follows it")
    words = [t.text.upper() if t.kind == "word" else None for t in tokens]
    first = next((i for i, t in enumerate(tokens) if not (t.kind == "punct" and t.text == "(")), None)
    if first is None or words[first] not in READONLY_KINDS or (first > 0 and words[first] not in ("SELECT", "WITH")):
        raise _refuse_kind(tokens[first if first is not None else 0])
    kind = words[first]
    if kind == "SHOW":
        nxt = words[first + 1] if first + 1 < len(tokens) else None
        if nxt not in _SHOW_ALLOWED:
            raise QueryNotAllowed(f"SHOW {nxt or '(nothing)'} is not allowed; SHOW TABLES, DATABASES, COLUMNS, "
                                  "CREATE TABLE and the like are")
        if nxt == "CREATE" and first + 2 < len(tokens) and words[first + 2] in _SHOW_CREATE_REFUSED:
            raise QueryNotAllowed(f"SHOW CREATE {words[first + 2]} is not allowed")
    if kind == "EXPLAIN":
        j = first + 1
        while j < len(tokens) and words[j] in _EXPLAIN_KINDS:
            j += 1
        # EXPLAIN's own options: name = value[, name = value]
        while j + 2 < len(tokens) and tokens[j].kind == "word" and tokens[j + 1].text == "=":
            j += 3
            if j < len(tokens) and tokens[j].text == ",":
                j += 1
        while j < len(tokens) and tokens[j].kind == "punct" and tokens[j].text == "(":
            j += 1
        if j >= len(tokens) or words[j] not in ("SELECT", "WITH"):
            raise QueryNotAllowed("EXPLAIN is allowed only of a SELECT")
    denied_tables = (KNOWN_TABLE_FUNCTIONS | table_functions) - ALLOWED_TABLE_FUNCTIONS
    for i, t in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        prev = tokens[i - 1] if i else None
        if t.kind in ("word", "qident") and nxt is not None and nxt.text == "(" and nxt.kind == "punct":
            name = t.text.lower()  # refused even after a `db.`: no name that might reach files gets the benefit
            if name in denied_tables:
                raise QueryNotAllowed(f"{t.text}() is not allowed: it reaches files, other servers or the network")
            if name in _FORBIDDEN_FUNCTIONS or name.startswith("dict"):
                raise QueryNotAllowed(f"function {t.text}() is not allowed: it reads files, models or dictionaries")
        if t.kind != "word" or (prev is not None and prev.kind == "punct" and prev.text == "."):
            continue
        word = words[i]
        if word == "INTO" and nxt is not None and nxt.kind == "word" and nxt.text.upper() == "OUTFILE":
            raise QueryNotAllowed("INTO OUTFILE is not allowed: print the result with --format and redirect it")
        if word == "FORMAT" and nxt is not None and nxt.kind in ("word", "qident") and i > first:
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            if after is None or after.text != "(":
                raise QueryNotAllowed("a FORMAT clause is not allowed: choose the output with --format")
        if word == "SETTINGS" and nxt is not None and nxt.kind == "word" and i > first + 1:
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            if after is not None and after.text == "=":
                raise QueryNotAllowed("a SETTINGS clause is not allowed: the limits are hotspot's sql_max_* settings")
    return sql[tokens[0].pos:tokens[-1].end]


# --------------------------------------------------------------------- running
_table_functions_cache: frozenset[str] | None = None


def _engine_table_functions(client) -> frozenset[str]:
    global _table_functions_cache
    if _table_functions_cache is None:
        # One row, so even sql_max_result_rows = 1 lets it through.
        names = client.query("SELECT groupArray(name) FROM system.table_functions").result_rows[0][0]
        _table_functions_cache = frozenset(str(n).lower() for n in names)
    return _table_functions_cache


def canonical_statement(client, sql: str) -> str:
    """Check `sql`, have ClickHouse's parser give its canonical text, check that too; return it."""
    check_statement(sql)
    try:
        formatted = client.query("SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}).result_rows[0][0]
    except ClickHouseError as exc:
        raise QueryNotAllowed("ClickHouse cannot parse the query: " + _clickhouse_message(exc)) from None
    return check_statement(formatted, _engine_table_functions(client))


_LIMIT_MESSAGES = {
    159: "the query ran longer than sql_max_execution_time_s ({limits.max_execution_time_s:g} s) and was stopped",
    241: "the query needed more memory than sql_max_memory_bytes ({limits.max_memory_bytes} bytes) and was stopped",
    396: "the result has more than sql_max_result_rows ({limits.max_result_rows}) rows: add a LIMIT or aggregate",
    394: "the query was cancelled",
}


def _clickhouse_message(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    # chDB repeats the "Code: N. DB::Exception:" prefix of a nested error.
    return re.sub(r"^(Code: \d+\. DB::Exception: )+", "", line)


def failure_message(exc: ClickHouseError, limits: ReadonlyLimits) -> str:
    """One line for a ClickHouse error of an analyst query: our words for the limits, else ClickHouse's."""
    code = getattr(exc, "code", None)
    if code in _LIMIT_MESSAGES:
        return _LIMIT_MESSAGES[code].format(limits=limits)
    return _clickhouse_message(exc)


@dataclass(frozen=True)
class ReadonlyResult:
    columns: list[str]
    types: list[str]
    rows: list[list]


def _open_checked(dsn: str, database: str | None, sql: str, limits: ReadonlyLimits, tag: str):
    from sinks.clickhouse import make_readonly_client

    try:
        client = make_readonly_client(dsn, database, readonly_settings(limits, tag))
    except ClickHouseError as exc:
        raise QueryFailed(_clickhouse_message(exc)) from None
    try:
        return client, canonical_statement(client, sql)
    except BaseException:
        client.close()
        raise


def run_readonly_query(dsn: str, database: str | None, sql: str, limits: ReadonlyLimits, tag: str | None = None,
                       cancelled=None) -> ReadonlyResult:
    """Check `sql` and run it on a client of its own (see the module doc); QueryNotAllowed or QueryFailed.

    `cancelled`: a threading.Event; set before the statement starts, the statement does not start.
    """
    client, statement = _open_checked(dsn, database, sql, limits, tag or new_tag())
    try:
        if cancelled is not None and cancelled.is_set():
            raise QueryFailed("the query was cancelled")
        result = client.query(statement)
        names, types = list(result.column_names), [t.name for t in result.column_types]
        if not names and not result.result_rows:
            names, types = _described(client, statement)
        return ReadonlyResult(names, types, [list(r) for r in result.result_rows])
    except ClickHouseError as exc:
        raise QueryFailed(failure_message(exc, limits)) from None
    finally:
        client.close()


def _described(client, statement: str) -> tuple[list[str], list[str]]:
    """The columns of a result that came back empty: clickhouse-connect over chDB then gives no names, and a
    table printed without its header says nothing. The checked statement, described on the same read-only
    client; statements that cannot be described (SHOW ...) keep no columns."""
    try:
        rows = client.query(f"DESCRIBE ({statement})").result_rows
    except ClickHouseError:
        return [], []
    return [str(r[0]) for r in rows], [str(r[1]) for r in rows]


def run_readonly_raw(dsn: str, database: str | None, sql: str, fmt: str, limits: ReadonlyLimits,
                     tag: str | None = None, cancelled=None) -> bytes:
    """As run_readonly_query, the answer in ClickHouse output format `fmt`."""
    client, statement = _open_checked(dsn, database, sql, limits, tag or new_tag())
    try:
        if cancelled is not None and cancelled.is_set():
            raise QueryFailed("the query was cancelled")
        return client.raw_query(statement, fmt=fmt)
    except ClickHouseError as exc:
        raise QueryFailed(failure_message(exc, limits)) from None
    finally:
        client.close()
