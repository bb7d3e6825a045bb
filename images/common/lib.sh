# Shared by every image's entrypoint (bash): logging, TLS material, first-start checks and
# the supervisor that exits as soon as one daemon exits and stops everything fast on SIGTERM.
# Installed as /usr/local/lib/oem/lib.sh.
set -euo pipefail
umask 022
export HOME=/tmp

OEM_IMAGE=${OEM_IMAGE:-oem}
log() { printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$OEM_IMAGE" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Daemons that reopen /dev/stdout or /proc/self/fd/2 (nginx, php-fpm, ...) cannot when the
# container's stdout is a pipe or file owned by root: then route our output through pipes we own.
oem_own_stdio() {
  if ! { : >>/proc/self/fd/2; } 2>/dev/null || ! { : >>/proc/self/fd/1; } 2>/dev/null; then
    exec 1> >(exec cat) 2> >(exec cat >&2)
  fi
}

# Runs as uid 10001 with no privileges; refuses root (the image must not need it).
oem_check_user() {
  [ "$(id -u)" != 0 ] || die "refusing to run as root: the image runs as uid 10001"
  [ -d /srv ] && [ -w /srv ] || die "/srv (the data volume) is missing or not writable by uid $(id -u)"
  [ -w /tmp ] || die "/tmp is not writable"
}

# TLS: /run/secrets/oem-tls/tls.{crt,key} when mounted, otherwise a self-signed certificate.
# Both end up in /tmp/tls (key mode 0600, owned by us: PostgreSQL and Dovecot insist on it).
oem_tls() {
  local cn=${1:-localhost} src=/run/secrets/oem-tls dst=/tmp/tls
  mkdir -p "$dst" && chmod 700 "$dst"
  if [ -r "$src/tls.crt" ] && [ -r "$src/tls.key" ]; then
    cat "$src/tls.crt" >"$dst/tls.crt"
    (umask 077 && cat "$src/tls.key" >"$dst/tls.key")
    log "TLS: using the certificate mounted at $src"
  else
    if [ -e "$src/tls.crt" ] || [ -e "$src/tls.key" ]; then
      log "warning: $src/tls.crt and tls.key are not both readable by uid $(id -u): ignoring them"
    fi
    (umask 077 && openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -days 825 -subj "/CN=$cn" -addext "subjectAltName=DNS:$cn" \
      -keyout "$dst/tls.key" -out "$dst/tls.crt" 2>/dev/null) || die "cannot generate a TLS certificate"
    log "TLS: no certificate mounted at $src, generated a self-signed one for $cn"
  fi
  chmod 600 "$dst/tls.key" && chmod 644 "$dst/tls.crt"
}

# --- supervisor -----------------------------------------------------------------------------
# The signal traps only set a flag: the stopping is done by the main flow (a trap handler that
# forks or waits can deadlock bash), which `wait -n` hands back as soon as a signal arrives.
declare -a OEM_PIDS=()
declare -A OEM_NAME=() OEM_STOPSIG=()
OEM_STOPPING=

# oem_start NAME [--stop-signal SIG] CMD... : starts a daemon that stays in the foreground.
oem_start() {
  local name=$1 sig=TERM; shift
  if [ "${1:-}" = --stop-signal ]; then sig=$2; shift 2; fi
  "$@" &
  OEM_PIDS+=($!); OEM_NAME[$!]=$name; OEM_STOPSIG[$!]=$sig
  log "started $name (pid $!)"
}

oem_alive() { kill -0 "$1" 2>/dev/null; }

# Stops every daemon (its own stop signal), KILLs what is left after OEM_STOP_TIMEOUT seconds.
oem_stop_all() {
  local pid i left
  for pid in "${OEM_PIDS[@]}"; do oem_alive "$pid" && kill "-${OEM_STOPSIG[$pid]}" "$pid" 2>/dev/null || true; done
  for ((i = 0; i < ${OEM_STOP_TIMEOUT:-20} * 20; i++)); do
    left=0
    for pid in "${OEM_PIDS[@]}"; do oem_alive "$pid" && left=1; done
    [ $left = 0 ] && break
    wait -n "${OEM_PIDS[@]}" 2>/dev/null || true   # returns when one exits
  done
  for pid in "${OEM_PIDS[@]}"; do
    if oem_alive "$pid"; then log "killing ${OEM_NAME[$pid]}"; kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for pid in "${OEM_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

oem_finish_if_stopping() {
  [ -n "$OEM_STOPPING" ] || return 0
  log "received $OEM_STOPPING, stopping"
  oem_stop_all
  log "stopped"
  exit 0
}

# Installs the signal traps; call it before the first oem_start.
oem_traps() {
  trap 'OEM_STOPPING=SIGTERM' TERM
  trap 'OEM_STOPPING=SIGINT' INT
  trap 'OEM_STOPPING=SIGQUIT' QUIT
}

# Fails (stopping the others) when a daemon that oem_start started has exited already.
oem_check_alive() {
  oem_finish_if_stopping
  local pid rc
  for pid in "${OEM_PIDS[@]}"; do
    if ! oem_alive "$pid"; then
      rc=0; wait "$pid" 2>/dev/null || rc=$?
      log "${OEM_NAME[$pid]} (pid $pid) exited with status $rc during start-up"
      oem_stop_all; exit $((rc == 0 ? 1 : rc))
    fi
  done
}

# Waits until a daemon exits (then stops the others and exits non-zero) or a signal comes
# (then stops them all and exits 0).
oem_supervise() {
  oem_check_alive
  log "ready: ${#OEM_PIDS[@]} daemon(s) running"
  local rc pid
  while :; do
    rc=0; wait -n "${OEM_PIDS[@]}" || rc=$?
    oem_finish_if_stopping
    for pid in "${OEM_PIDS[@]}"; do
      if ! oem_alive "$pid"; then
        log "${OEM_NAME[$pid]} (pid $pid) exited with status $rc; stopping the others"
        oem_stop_all
        exit $((rc == 0 ? 1 : rc))
      fi
    done
  done
}

# oem_wait_until SECONDS DESCRIPTION CMD... : polls CMD every 0.2 s; fails when a daemon died
# or the time is up.
oem_wait_until() {
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    oem_check_alive
    sleep 0.2
  done
  log "$what: not ready after ${secs}s"; oem_stop_all; exit 1
}
