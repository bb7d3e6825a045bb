#!/usr/bin/env bash
# Installs the real daemons the probe tests run against (operator/tests/probes*.rs):
# nginx, postfix, dovecot (imap, pop3), vsftpd, postgresql, mariadb and openssl; and what the
# alerting and usage tests run: prometheus (with promtool), alertmanager and an SMTP server
# (python3-aiosmtpd); and the DKIM verifier the mail tests check signatures with (python3-dkim).
# Idempotent: does nothing when every binary is present. Leaves no system service running:
# the tests start their own instances on 127.0.0.1 high ports with state in a temp dir.
set -euo pipefail

have_all() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || return 1
    [ -x /usr/sbin/postfix ] || return 1
    [ -x /usr/sbin/dovecot ] || return 1
    [ -e /usr/lib/dovecot/imap ] || return 1
    [ -e /usr/lib/dovecot/pop3 ] || return 1
    [ -x /usr/sbin/vsftpd ] || return 1
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || return 1
    [ -x /usr/sbin/mariadbd ] || return 1
    command -v mariadb-install-db >/dev/null 2>&1 || return 1
    command -v openssl >/dev/null 2>&1 || return 1
    [ -x /usr/bin/prometheus ] || return 1
    [ -x /usr/bin/promtool ] || return 1
    [ -x /usr/bin/prometheus-alertmanager ] || return 1
    /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || return 1
    /usr/bin/python3 -c 'import dkim' >/dev/null 2>&1 || return 1
}

if have_all; then
    echo "e2e/daemons: all probe test daemons already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "e2e/daemons/install.sh must run as root (apt-get install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# Forbid service starts during installation; restore whatever was there before.
policy=/usr/sbin/policy-rc.d
saved_policy=""
if [ -e "$policy" ]; then
    saved_policy=$(mktemp)
    cp -p "$policy" "$saved_policy"
fi
restore_policy() {
    if [ -n "$saved_policy" ]; then
        cp -p "$saved_policy" "$policy"
        rm -f "$saved_policy"
    else
        rm -f "$policy"
    fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' >"$policy"
chmod 755 "$policy"

# Postfix asks how it is used; the tests write their own configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections

apt-get update -q
apt-get install -y -q --no-install-recommends \
    nginx postfix dovecot-core dovecot-imapd dovecot-pop3d vsftpd \
    postgresql mariadb-server openssl ca-certificates \
    prometheus prometheus-alertmanager python3-aiosmtpd python3-dkim

# Belt and braces: make sure nothing the packages ship is left running or enabled.
for svc in nginx postfix dovecot vsftpd postgresql mariadb mysql prometheus prometheus-alertmanager; do
    if command -v service >/dev/null 2>&1; then
        service "$svc" stop >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
done

if ! have_all; then
    echo "e2e/daemons: installation finished but a daemon binary is still missing" >&2
    exit 1
fi
echo "e2e/daemons: installed nginx postfix dovecot vsftpd postgresql mariadb openssl prometheus alertmanager aiosmtpd"
