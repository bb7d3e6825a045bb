#!/bin/bash
# Web image entrypoint: nginx (8080, 8443) + PHP-FPM (unix socket /tmp/php-fpm.sock),
# document root /srv/www, as uid 10001 with no capabilities.
OEM_IMAGE=web
. /usr/local/lib/oem/lib.sh
oem_own_stdio
oem_check_user
oem_tls "${SERVER_NAME:-localhost}"

if [ ! -d /srv/www ]; then
  mkdir -p /srv/www
  cp /usr/local/share/oem/index.html /srv/www/index.html
  log "created the document root /srv/www with a default index.html"
fi
mkdir -p /tmp/nginx

php-fpm -t -y /etc/oem/php-fpm.conf >/dev/null 2>&1 || php-fpm -t -y /etc/oem/php-fpm.conf || die "PHP-FPM configuration test failed"
oem_traps
oem_start php-fpm php-fpm -F -O -y /etc/oem/php-fpm.conf
# nginx opens the ports only once PHP-FPM answers: no 502 for the first requests
oem_wait_until 20 "php-fpm socket" test -S /tmp/php-fpm.sock
oem_start nginx nginx -e stderr -g 'daemon off;'
oem_supervise
