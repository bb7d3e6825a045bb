#!/bin/bash
# MariaDB entrypoint: initialises /srv/mysql on first start; on EVERY start ensures DB_NAME and
# DB_USER (with DB_PASSWORD, from any host) and root@localhost's DB_ROOT_PASSWORD, through an
# --init-file that mariadbd runs before it accepts connections (so a rotated password is in
# force from the first connection).
OEM_IMAGE=mariadb
. /usr/local/lib/oem/lib.sh
oem_own_stdio
oem_check_user
: "${DB_ROOT_PASSWORD:?DB_ROOT_PASSWORD is required}"
DB_NAME=${DB_NAME:-} DB_USER=${DB_USER:-} DB_PASSWORD=${DB_PASSWORD:-}
if [ -n "$DB_USER" ] && [ -z "$DB_PASSWORD" ]; then die "DB_USER is set but DB_PASSWORD is empty"; fi
cnf=/etc/oem/my.cnf
oem_tls "${SERVER_NAME:-localhost}"

if [ ! -d /srv/mysql/mysql ]; then
  [ ! -e /srv/mysql ] || [ -z "$(ls -A /srv/mysql)" ] || die "/srv/mysql exists, is not empty and holds no database"
  log "initialising the data directory /srv/mysql"
  mariadb-install-db --defaults-file="$cnf" --datadir=/srv/mysql --skip-test-db --skip-name-resolve \
    --auth-root-authentication-method=normal --force >/tmp/mariadb-install-db.log 2>&1 ||
    { cat /tmp/mariadb-install-db.log >&2; die "mariadb-install-db failed"; }
fi

sqlstr() {  # a quoted SQL string literal
  local s=${1//\\/\\\\}; s=${s//\'/\\\'}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}
  printf "'%s'" "$s"
}
sqlid() { printf '`%s`' "${1//\`/\`\`}"; }

init=/tmp/oem-init.sql
(
  umask 077
  {
    echo "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sqlstr "$DB_ROOT_PASSWORD");"
    if [ -n "$DB_NAME" ]; then
      echo "CREATE DATABASE IF NOT EXISTS $(sqlid "$DB_NAME") CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;"
    fi
    if [ -n "$DB_USER" ]; then
      echo "CREATE USER IF NOT EXISTS $(sqlstr "$DB_USER")@'%' IDENTIFIED BY $(sqlstr "$DB_PASSWORD");"
      echo "ALTER USER $(sqlstr "$DB_USER")@'%' IDENTIFIED BY $(sqlstr "$DB_PASSWORD");"
      [ -z "$DB_NAME" ] || echo "GRANT ALL PRIVILEGES ON $(sqlid "$DB_NAME").* TO $(sqlstr "$DB_USER")@'%';"
    fi
    echo "FLUSH PRIVILEGES;"
  } >"$init"
  # a client option file for maintenance from inside the container (mariadb --defaults-extra-file=...)
  pw=${DB_ROOT_PASSWORD//\\/\\\\}; pw=${pw//\"/\\\"}
  printf '[client]\nuser=root\npassword="%s"\nsocket=/tmp/mysqld.sock\n' "$pw" >/tmp/oem-root.cnf
)

oem_traps
# Two malloc arenas, not one per thread: a few MiB less at idle, nothing measurable in speed.
export MALLOC_ARENA_MAX=2
oem_start mariadbd mariadbd --defaults-file="$cnf" --init-file="$init"
oem_wait_until 120 "mariadbd" mariadb --defaults-extra-file=/tmp/oem-root.cnf -e 'SELECT 1'
rm -f "$init"
oem_supervise
