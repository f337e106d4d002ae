#!/bin/sh
# docker-entrypoint-initdb.d hook of the postgres container: roles and database.
set -e
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" \
  -v owner=bpo_owner -v owner_password="$BPO_OWNER_PASSWORD" \
  -v app=bpo_app -v app_password="$BPO_APP_PASSWORD" \
  -v database=bpo -f /docker-entrypoint-initdb.d/roles.sql.in
