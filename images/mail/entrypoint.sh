#!/bin/bash
# Mail image entrypoint: Exim (SMTP 2525, submission 2587, smtps 4465), Dovecot (POP3 1110/1995,
# IMAP 1143/1993) on the maildirs in /srv/mail, and oem-mailctl (hourly limit, metrics on 9154),
# all as uid 10001 with no capabilities.
# env: MAIL_DOMAINS (comma-separated), MAIL_HOSTNAME, MAX_SENDS_PER_HOUR (0 = no limit),
#      MAIL_ACCOUNTS (lines address:password), MAIL_LOCKED (true: outbound mail locked for mass
#      mailing; relaying refused and queued outbound mail held; default false),
#      MAIL_DKIM_SELECTOR (default oem; the key is /run/secrets/oem-dkim/private-key, signing
#      starts when it is there), MAIL_RELAY (IP:port or [IPv6]:port of the provider's relay that
#      takes all outbound mail; empty: straight to each recipient's MX).
OEM_IMAGE=mail
. /usr/local/lib/oem/lib.sh
oem_own_stdio
oem_check_user
: "${MAIL_DOMAINS:?MAIL_DOMAINS is required}"
MAIL_ACCOUNTS=${MAIL_ACCOUNTS:-}
MAX_SENDS_PER_HOUR=${MAX_SENDS_PER_HOUR:-0}
[[ $MAX_SENDS_PER_HOUR =~ ^[0-9]+$ ]] || die "MAX_SENDS_PER_HOUR must be a number, not '$MAX_SENDS_PER_HOUR'"
export MAX_SENDS_PER_HOUR
MAIL_LOCKED=${MAIL_LOCKED:-false}
[[ $MAIL_LOCKED =~ ^(true|false)$ ]] || die "MAIL_LOCKED must be true or false, not '$MAIL_LOCKED'"
export MAIL_LOCKED
MAIL_DKIM_SELECTOR=${MAIL_DKIM_SELECTOR:-oem}
[[ $MAIL_DKIM_SELECTOR =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "invalid MAIL_DKIM_SELECTOR '$MAIL_DKIM_SELECTOR'"
DKIM_KEY=/run/secrets/oem-dkim/private-key
relay_host= relay_port=
if [ -n "${MAIL_RELAY:-}" ]; then
  if [[ $MAIL_RELAY =~ ^([0-9.]+):([0-9]+)$ ]]; then
    relay_host=${BASH_REMATCH[1]} relay_port=${BASH_REMATCH[2]}
  elif [[ $MAIL_RELAY =~ ^\[([0-9A-Fa-f:.]+)\]:([0-9]+)$ ]]; then
    relay_host="<; ${BASH_REMATCH[1]}" relay_port=${BASH_REMATCH[2]}
  else
    die "MAIL_RELAY must be IP:port or [IPv6]:port, not '$MAIL_RELAY'"
  fi
  [ "$relay_port" -ge 1 ] && [ "$relay_port" -le 65535 ] || die "MAIL_RELAY's port must be 1-65535, not $relay_port"
fi

# domains: lower case, no spaces, each a plain domain name
domains=()
IFS=',' read -r -a raw <<<"${MAIL_DOMAINS,,}"
for d in "${raw[@]}"; do
  d=${d//[[:space:]]/}
  [ -n "$d" ] || continue
  [[ $d =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "invalid domain '$d' in MAIL_DOMAINS"
  domains+=("$d")
done
[ ${#domains[@]} -gt 0 ] || die "MAIL_DOMAINS has no domain"
hostname=${MAIL_HOSTNAME:-mail.${domains[0]}}
[[ $hostname =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "invalid MAIL_HOSTNAME '$hostname'"

oem_tls "$hostname"
mkdir -p /tmp/oem-mail /tmp/exim /tmp/dovecot /srv/mail /srv/spool/exim
chmod 700 /tmp/oem-mail /srv/mail /srv/spool

# accounts: Dovecot's passwd-file (SHA512-CRYPT) and Exim's list of addresses
(
  umask 077
  : >/tmp/oem-mail/dovecot-passwd.new; : >/tmp/oem-mail/accounts.new
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    [ -n "${line//[[:space:]]/}" ] || continue
    addr=${line%%:*}; pw=${line#*:}
    addr=${addr,,}; addr=${addr//[[:space:]]/}
    if [ "$addr" = "$line" ] || [ -z "$pw" ]; then log "warning: ignoring a MAIL_ACCOUNTS line without address:password"; continue; fi
    dom=${addr#*@}; local=${addr%@*}
    if [[ ! $addr =~ ^[a-z0-9._+-]+@[a-z0-9.-]+$ ]] || [[ $local == .* ]]; then log "warning: ignoring the invalid address '$addr'"; continue; fi
    found=; for d in "${domains[@]}"; do [ "$d" = "$dom" ] && found=1; done
    [ -n "$found" ] || { log "warning: ignoring $addr: $dom is not in MAIL_DOMAINS"; continue; }
    hash=$(printf '%s' "$pw" | openssl passwd -6 -stdin) || die "cannot hash a password"
    printf '%s:{SHA512-CRYPT}%s:10001:10001::/srv/mail/%s/%s::\n' "$addr" "$hash" "$dom" "$local" >>/tmp/oem-mail/dovecot-passwd.new
    printf '%s: %s/%s\n' "$addr" "$dom" "$local" >>/tmp/oem-mail/accounts.new
    n=$((n + 1))
  done <<<"$MAIL_ACCOUNTS"
  mv /tmp/oem-mail/dovecot-passwd.new /tmp/oem-mail/dovecot-passwd
  mv /tmp/oem-mail/accounts.new /tmp/oem-mail/accounts
  echo $n >/tmp/oem-mail/count
)
log "$(cat /tmp/oem-mail/count) account(s) for ${domains[*]}; hostname $hostname; limit ${MAX_SENDS_PER_HOUR} sends/hour$([ "$MAIL_LOCKED" = true ] && echo '; outbound mail LOCKED')"
log "outbound: ${MAIL_RELAY:-straight to each MX}; DKIM selector $MAIL_DKIM_SELECTOR, $([ -r "$DKIM_KEY" ] && echo "signing" || echo "no key yet (signing starts when the dkim Secret is mounted)")"
{
  echo "OEM_HOSTNAME = $hostname"
  echo "OEM_QUALIFY = ${domains[0]}"
  echo "OEM_LOCKED = $([ "$MAIL_LOCKED" = true ] && echo yes || echo no)"
  printf 'OEM_DOMAINS = %s\n' "$(IFS=:; echo "${domains[*]}" | sed 's/:/ : /g')"
  echo "OEM_DKIM_SELECTOR = $MAIL_DKIM_SELECTOR"
  echo "OEM_DKIM_KEY = $DKIM_KEY"
  if [ -n "$relay_host" ]; then
    echo "OEM_RELAY_HOST = $relay_host"
    echo "OEM_RELAY_PORT = $relay_port"
  fi
} >/tmp/oem-mail/macros.conf

exim4 -bV >/tmp/oem-mail/exim-bV.txt 2>&1 || { cat /tmp/oem-mail/exim-bV.txt >&2; die "Exim's configuration is invalid"; }
doveconf -c /etc/oem/dovecot.conf >/dev/null 2>/tmp/oem-mail/doveconf.txt || { cat /tmp/oem-mail/doveconf.txt >&2; die "Dovecot's configuration is invalid"; }

oem_traps
oem_start mailctl python3 -u /usr/local/bin/oem-mailctl
oem_start dovecot dovecot -F -c /etc/oem/dovecot.conf
oem_wait_until 30 "dovecot auth socket" test -S /tmp/dovecot/auth-client
oem_start exim exim4 -bdf -q5m
oem_wait_until 30 "mailctl socket" test -S /tmp/oem-mail/ctl.sock
oem_supervise
