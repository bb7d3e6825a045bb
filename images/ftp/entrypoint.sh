#!/bin/bash
# FTP image entrypoint: FTP/FTPS on 2121 (passive 30000-30009) for FTP_USER, confined to
# /srv/www, as uid 10001 with no capabilities.
OEM_IMAGE=ftp
. /usr/local/lib/oem/lib.sh
oem_own_stdio
oem_check_user
: "${FTP_USER:?FTP_USER is required}" "${FTP_PASSWORD:?FTP_PASSWORD is required}"
[ "${FTP_TLS:-required}" = off ] || oem_tls "${SERVER_NAME:-localhost}"
if [ ! -d /srv/www ]; then
  mkdir -p /srv/www
  cp /usr/local/share/oem/index.html /srv/www/index.html
  log "created the document root /srv/www with a default index.html"
fi
oem_traps
oem_start ftpd python3 -u /usr/local/bin/oem-ftpd
oem_supervise
