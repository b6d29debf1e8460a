#!/bin/bash
# Run once by the postgres image's entrypoint, on an empty data volume
# (files in /docker-entrypoint-initdb.d). Creates Dagster's own storage:
# role `dagster` (password DAGSTER_PG_PASSWORD from .env) owning database
# `dagster`. DAGSTER_PG_URL in .env must name the same user, password and
# database: postgresql+psycopg2://dagster:<DAGSTER_PG_PASSWORD>@postgres:5432/dagster
#
# Safe to run again by hand (`docker compose exec postgres
# /docker-entrypoint-initdb.d/10-dagster-database.sh`): it only creates what
# is missing and resets the role's password to DAGSTER_PG_PASSWORD.
set -euo pipefail

: "${POSTGRES_USER:?POSTGRES_USER is not set}"
if [ -z "${DAGSTER_PG_PASSWORD:-}" ]; then
    echo "10-dagster-database.sh: DAGSTER_PG_PASSWORD is not set: set it in .env (see .env.example)" >&2
    exit 1
fi

# The password travels as a psql variable (:'dagster_password' quotes it),
# never on a command line or in the script text.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
     --set=dagster_password="$DAGSTER_PG_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE dagster LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dagster') \gexec
ALTER ROLE dagster WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'dagster_password';
SELECT 'CREATE DATABASE dagster OWNER dagster ENCODING ''UTF8'' TEMPLATE template0'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'dagster') \gexec
REVOKE ALL ON DATABASE dagster FROM PUBLIC;
GRANT ALL ON DATABASE dagster TO dagster;
SQL
echo "10-dagster-database.sh: database 'dagster' owned by role 'dagster' is ready"
