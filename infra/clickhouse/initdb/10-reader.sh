#!/bin/bash
# Run once by the clickhouse-server image when its data volume is new
# (/docker-entrypoint-initdb.d): the read-only user Grafana and `hotspot sql`
# read as (README: read-only ClickHouse user). It may SELECT in the hotspot
# database and nothing else; the MAX constraints hold it to the query limits
# from any client.
set -euo pipefail
clickhouse client --user "$CLICKHOUSE_USER" --password "$CLICKHOUSE_PASSWORD" --multiquery <<SQL
CREATE SETTINGS PROFILE IF NOT EXISTS hotspot_reader_limits SETTINGS
    max_execution_time = 30 MAX 30,
    max_memory_usage = 1073741824 MAX 1073741824,
    max_result_rows = 100000 MAX 100000;
CREATE USER IF NOT EXISTS hotspot_reader IDENTIFIED WITH sha256_password BY '${CLICKHOUSE_READER_PASSWORD}'
    SETTINGS PROFILE 'hotspot_reader_limits';
GRANT SELECT ON ${CLICKHOUSE_DB}.* TO hotspot_reader;
SQL
