#!/bin/bash
# PostgreSQL entrypoint: initdb on first start; on EVERY start ensures DB_USER (password
# DB_PASSWORD), DB_NAME owned by it, and the superuser postgres's DB_ROOT_PASSWORD.
OEM_IMAGE=postgresql
. /usr/local/lib/oem/lib.sh
oem_own_stdio
oem_check_user
: "${DB_ROOT_PASSWORD:?DB_ROOT_PASSWORD is required}"
export DB_NAME=${DB_NAME:-} DB_USER=${DB_USER:-} DB_PASSWORD=${DB_PASSWORD:-} DB_ROOT_PASSWORD
if [ -n "$DB_USER" ] && [ -z "$DB_PASSWORD" ]; then die "DB_USER is set but DB_PASSWORD is empty"; fi
export PGDATA=/srv/pgdata PATH=/usr/lib/postgresql/15/bin:$PATH
oem_tls "${SERVER_NAME:-localhost}"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ ! -e "$PGDATA" ] || [ -z "$(ls -A "$PGDATA")" ] || die "$PGDATA exists, is not empty and holds no cluster"
  log "initialising $PGDATA"
  (umask 077 && printf '%s\n' "$DB_ROOT_PASSWORD" >/tmp/oem-pw)
  initdb -D "$PGDATA" -U postgres --pwfile=/tmp/oem-pw -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/tmp/initdb.log 2>&1 ||
    { rm -f /tmp/oem-pw; cat /tmp/initdb.log >&2; die "initdb failed"; }
  rm -f /tmp/oem-pw
fi

# Phase 1: a socket-only server (no TCP yet, so no client sees the old passwords) to ensure
# the database, the user and the passwords; then the real server.
# The kubelet's fsGroup handling makes the volume's directories g+rwx (setgid) at every mount;
# PostgreSQL refuses a data directory accessible to the group: take that back.
chmod u=rwx,g=,o= "$PGDATA"

oem_traps
oem_start postgres-setup --stop-signal INT postgres -D "$PGDATA" -c config_file=/etc/oem/postgresql.conf -c listen_addresses=
oem_wait_until 120 "postgres (setup)" pg_isready -q -h /tmp -p 5432 -U postgres
psql -X -q -h /tmp -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'SQL' || { oem_stop_all; die "cannot set up the database and its user"; }
\getenv root_pw DB_ROOT_PASSWORD
\getenv db DB_NAME
\getenv usr DB_USER
\getenv pw DB_PASSWORD
SELECT format('ALTER ROLE postgres WITH PASSWORD %L', :'root_pw') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'usr') WHERE :'usr' <> '' AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'usr') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'usr', :'pw') WHERE :'usr' <> '' \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', CASE WHEN :'usr' <> '' THEN :'usr' ELSE 'postgres' END) WHERE :'db' <> '' AND NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'usr') WHERE :'db' <> '' AND :'usr' <> '' \gexec
SQL
log "database ${DB_NAME:-(none)} and user ${DB_USER:-(none)} ensured"
oem_stop_all
oem_finish_if_stopping
OEM_PIDS=()
# SIGINT = PostgreSQL's fast shutdown (SIGTERM would wait for every client to leave)
oem_start postgres --stop-signal INT postgres -D "$PGDATA" -c config_file=/etc/oem/postgresql.conf
oem_supervise
