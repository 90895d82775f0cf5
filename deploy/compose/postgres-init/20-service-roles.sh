#!/bin/bash
# The services' database roles (docs/runbook.md, "Database roles"). Runs when the postgres
# container initialises an empty data directory, before gridwatch-migrate: it creates the group
# roles of migrations/0005_roles.sql (NOLOGIN; the migration finds them and grants each what its
# service needs) and one login role per service, a member of its group and nothing more. The
# services connect as these; only gridwatch-migrate connects as the schema's owner.
#
# Safe to run again on a running database, e.g. after changing a password in .env or on a volume
# created before this script existed: it creates what is missing and sets every password from the
# environment.
#   docker compose up -d postgres
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/20-service-roles.sh
set -euo pipefail
: "${GRIDWATCH_INGEST_PG_PASSWORD:?set GRIDWATCH_INGEST_PG_PASSWORD}"
: "${GRIDWATCH_DETECTOR_PG_PASSWORD:?set GRIDWATCH_DETECTOR_PG_PASSWORD}"
: "${GRIDWATCH_API_PG_PASSWORD:?set GRIDWATCH_API_PG_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v ingest_password="$GRIDWATCH_INGEST_PG_PASSWORD" \
     -v detector_password="$GRIDWATCH_DETECTOR_PG_PASSWORD" \
     -v api_password="$GRIDWATCH_API_PG_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I NOLOGIN', name)
FROM unnest(ARRAY['gridwatch_ingest', 'gridwatch_detector', 'gridwatch_api']) AS name
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
SELECT format('CREATE ROLE %I LOGIN IN ROLE %I', login, member_of)
FROM (VALUES ('gridwatch_ingest_login', 'gridwatch_ingest'),
             ('gridwatch_detector_login', 'gridwatch_detector'),
             ('gridwatch_api_login', 'gridwatch_api')) AS r(login, member_of)
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = login) \gexec
ALTER ROLE gridwatch_ingest_login PASSWORD :'ingest_password';
ALTER ROLE gridwatch_detector_login PASSWORD :'detector_password';
ALTER ROLE gridwatch_api_login PASSWORD :'api_password';
SQL
