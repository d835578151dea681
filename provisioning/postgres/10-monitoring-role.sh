#!/bin/sh
# Runs once, when the postgres image initialises an empty data volume (docker-entrypoint-initdb.d):
# loads pg_stat_statements into the demo database and creates the exporter's login role.
# pg_monitor grants read access to every statistics view and nothing else; the connection
# limit keeps a misconfigured exporter from eating the application's connection slots. On
# PostgreSQL 16+ the role may also use the slots `reserved_connections` keeps back
# (docker-compose.yml reserves as many as its limit), so the exporter still connects, and reports
# the saturation, when the application has taken every ordinary slot.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$STACKWATCH_MONITOR_PASSWORD" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE ROLE stackwatch LOGIN PASSWORD :'password' CONNECTION LIMIT 3 IN ROLE pg_monitor;
SELECT current_setting('server_version_num')::int >= 160000 AS has_reserved_connections \gset
\if :has_reserved_connections
GRANT pg_use_reserved_connections TO stackwatch;
\endif
SQL
