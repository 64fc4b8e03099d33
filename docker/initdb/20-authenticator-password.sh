#!/usr/bin/env bash
# Run by the official postgres image from /docker-entrypoint-initdb.d, once, on an empty data volume, after
# 10-001_eva_scheduler_heartbeat.sql (db/migrations/, mounted by docker-compose.yml) has created the login role
# `authenticator`. Gives that role the password the API connects with (docker-compose.yml's DATABASE_URL).
# Changing AUTHENTICATOR_PASSWORD later has no effect on an existing volume: `docker compose down -v` first, or
#   docker compose exec db psql -U postgres -c "ALTER ROLE authenticator WITH PASSWORD '...'"
set -euo pipefail

if [[ -z "${AUTHENTICATOR_PASSWORD:-}" ]]; then
  echo "20-authenticator-password.sh: AUTHENTICATOR_PASSWORD is empty; refusing to leave the login role authenticator without a password" >&2
  exit 1
fi

# psql's :'pw' quotes the value as a literal, whatever characters it holds; the variable is only interpolated in
# SQL read from standard input or a file (not with -c), hence the here-string.
psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$AUTHENTICATOR_PASSWORD" <<< "ALTER ROLE authenticator WITH PASSWORD :'pw';"
