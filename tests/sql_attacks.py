"""The catalogue of queries `hotspot sql` must refuse, and of tricky ones it must still run.

Shared by the unit test of the checker (tests/unit/test_sql_guard.py) and the integration tests that
run every attack against a real store, directly and through the owner's query server
(tests/integration/test_sql_readonly.py). `out_dir` is where an attack would write a file if it got through.
"""
from __future__ import annotations

from pathlib import Path


def attacks(out_dir: Path) -> list[str]:
    out = out_dir / "written.csv"
    return [
        # statement stacking: readonly bound only the last statement before
        "SELECT 1; CREATE TABLE default.p (x UInt8) ENGINE=MergeTree ORDER BY x; INSERT INTO default.p VALUES (7); SELECT 2",
        "SELECT 1; DROP TABLE hotspot.schema_migrations",
        "SELECT 1; SELECT * FROM file('/etc/hostname', 'LineAsString')",
        f"SELECT 1; INSERT INTO FUNCTION file('{out}', 'CSV', 'x UInt8') VALUES (1)",
        "(SELECT 1); DROP TABLE hotspot.pings",
        # comments and string tricks hiding a second statement
        "SELECT 1 -- harmless\n; DROP TABLE hotspot.pings",
        "SELECT 1 /* ; */ ; DROP TABLE hotspot.pings",
        "SELECT 1 /* nested /* ; */ still a comment */; DROP TABLE hotspot.pings",
        "SELECT ';' ; DROP TABLE hotspot.pings",
        "SELECT 'it''s' ; TRUNCATE TABLE hotspot.pings",
        "SELECT `x;y` FROM (SELECT 1 AS `x;y`); DROP TABLE hotspot.pings",
        "SELECT $$;$$; DROP TABLE hotspot.pings",
        "# a comment\nDROP TABLE hotspot.pings",
        "/* SELECT */ DROP TABLE hotspot.pings",
        "SELECT 1 /* not closed",
        "SELECT 'not closed",
        " ; ; ",
        # settings overrides
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 0, max_result_rows = 0",
        "SET readonly = 0",
        "SET max_memory_usage = 0",
        # table functions that reach files, servers or the network
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "select * from FILE('/etc/hostname', 'LineAsString')",
        "SELECT * FROM `file`('/etc/hostname', 'LineAsString')",
        "SELECT file('/etc/hostname')",
        "SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'x String')",
        "SELECT * FROM \"url\"('http://127.0.0.1:9/x', 'CSV', 'x String')",
        "SELECT * FROM s3('http://127.0.0.1:9/bucket/key.csv', 'CSV', 'x String')",
        "SELECT * FROM hdfs('hdfs://127.0.0.1:9/x', 'CSV', 'x String')",
        "SELECT * FROM remote('127.0.0.1:9', system.one)",
        "SELECT * FROM remoteSecure('127.0.0.1:9', system.one)",
        "SELECT * FROM cluster('default', system.one)",
        "SELECT * FROM mysql('127.0.0.1:9', 'db', 't', 'u', 'p')",
        "SELECT * FROM postgresql('127.0.0.1:9', 'db', 't', 'u', 'p')",
        "SELECT * FROM jdbc('jdbc:x://127.0.0.1:9', 'db', 't')",
        "SELECT * FROM odbc('DSN=x', 'db', 't')",
        "SELECT * FROM input('x UInt8')",
        "SELECT * FROM executable('id', 'TSV', 'x String')",
        "SELECT * FROM sqlite('/etc/hostname', 't')",
        "SELECT * FROM filesystem('/etc')",
        "SELECT * FROM view(SELECT * FROM file('/etc/hostname', 'LineAsString'))",
        "SELECT number FROM numbers(3) WHERE number IN (SELECT * FROM url('http://127.0.0.1:9/x', 'CSV', 'x UInt64'))",
        f"INSERT INTO FUNCTION file('{out}', 'CSV', 'x UInt8') VALUES (1)",
        # writes, DDL, administration
        "INSERT INTO hotspot.pings (device_id) VALUES ('x')",
        "DROP TABLE hotspot.schema_migrations",
        "TRUNCATE TABLE hotspot.pings",
        "DELETE FROM hotspot.pings WHERE 1",
        "ALTER TABLE hotspot.pings DELETE WHERE 1",
        "RENAME TABLE hotspot.pings TO hotspot.pings_gone",
        "EXCHANGE TABLES hotspot.pings AND hotspot.visits",
        "CREATE TABLE default.p (x UInt8) ENGINE = Memory",
        "ATTACH TABLE default.a (x UInt8) ENGINE = Memory",
        "DETACH TABLE hotspot.pings",
        "OPTIMIZE TABLE hotspot.pings FINAL",
        "GRANT ALL ON *.* TO default",
        f"BACKUP DATABASE hotspot TO File('{out_dir / 'backup'}')",
        "SYSTEM FLUSH LOGS",
        "SYSTEM SHUTDOWN",
        "KILL QUERY WHERE 1",
        "KILL MUTATION WHERE 1",
        "USE system",
        # dictionaries (a file source reads any file the worker can)
        "CREATE DICTIONARY default.d (x String) PRIMARY KEY x SOURCE(FILE(path '/etc/hostname' format 'TSV')) "
        "LAYOUT(FLAT()) LIFETIME(0)",
        "SELECT dictGet('default.d', 'x', toUInt64(1))",
        "SELECT * FROM dictionary('default.d')",
        "SELECT catboostEvaluate('/etc/hostname', 1)",
        # format tricks
        f"SELECT 1 INTO OUTFILE '{out_dir / 'outfile.txt'}'",
        f"SELECT 1 INTO OUTFILE '{out_dir / 'outfile.txt'}' FORMAT CSV",
        "SELECT 1 FORMAT CSV",
        # EXPLAIN and SHOW of what is not a listing
        "EXPLAIN AST DROP TABLE hotspot.pings",
        "EXPLAIN PIPELINE INSERT INTO hotspot.pings SELECT * FROM hotspot.pings",
        "SHOW GRANTS",
        "SHOW CREATE USER default",
    ]


# Each runs and answers; the second and third look like attacks but are one string and one comment.
LEGITIMATE = [
    ("SELECT count() AS n FROM hotspot.pings", [[2]]),
    ("SELECT 'a\\'; DROP TABLE hotspot.pings; --' AS s", [["a'; DROP TABLE hotspot.pings; --"]]),
    ("SELECT 1 AS one -- ; DROP TABLE hotspot.pings", [[1]]),
    ("WITH 2 AS two SELECT two * count() AS n FROM hotspot.pings;", [[4]]),
    ("SELECT device_id FROM hotspot.pings WHERE device_id IN (SELECT device_id FROM hotspot.pings) ORDER BY 1",
     [["dev-1"], ["dev-2"]]),
]
