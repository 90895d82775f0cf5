#!/bin/bash
# Runs once, when the postgres container initialises an empty data directory: a read-only role
# for Grafana's PostgreSQL data source. gridwatch creates its tables later (as POSTGRES_USER, at
# migration time), so SELECT is granted through default privileges of that role.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v reader_password="$GRIDWATCH_GRAFANA_PG_PASSWORD" <<'SQL'
CREATE ROLE gridwatch_grafana LOGIN PASSWORD :'reader_password';
ALTER ROLE gridwatch_grafana SET default_transaction_read_only = on;
ALTER ROLE gridwatch_grafana SET statement_timeout = '30s';
GRANT CONNECT ON DATABASE :"DBNAME" TO gridwatch_grafana;
GRANT USAGE ON SCHEMA public TO gridwatch_grafana;
ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER IN SCHEMA public GRANT SELECT ON TABLES TO gridwatch_grafana;
SQL
