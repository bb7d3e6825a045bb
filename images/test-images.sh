#!/bin/bash
# Runs the built images WITHOUT Kubernetes and checks what they do, the way a restricted pod
# runs them: each container's rootfs (unpacked from its OCI archive) is mounted read-only,
# with a tmpfs /tmp, a scratch data volume at /srv, its own PID and mount namespaces, and the
# entrypoint as uid/gid 10001 with no capabilities and no_new_privs. All containers share one
# network namespace with only loopback up: the checks talk to 127.0.0.1 and nothing else.
#
# Usage: images/test-images.sh [IMAGE...]   (default: every image whose archive was built)
# Needs root, the archives of scripts/build-images.sh in $OEM_CACHE/images, curl.
# Exits non-zero on any failed check; prints sizes and idle memory per image.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
[ "$(id -u)" = 0 ] || { echo "test-images: run as root (namespaces, chroot)" >&2; exit 1; }
for tool in curl openssl; do
  command -v $tool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $tool >/dev/null
done
# the DKIM verifier and the relay the mail checks use
/usr/bin/python3 -c 'import dkim, aiosmtpd' 2>/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-dkim python3-aiosmtpd >/dev/null

all=(mariadb postgresql web-php8.2 web-php8.4 ftp mail)
want=("$@")
if [ ${#want[@]} = 0 ]; then
  for i in "${all[@]}"; do [ -e "$OEM_CACHE/images/$i.oci.tar" ] && want+=("$i"); done
fi
has() { local i; for i in "${want[@]}"; do [ "$i" = "$1" ] && return 0; done; return 1; }

work=$(mktemp -d /tmp/oem-image-test.XXXXXX)
ns=oem-imgtest-$$
passed=0 failed=0
declare -A UPID=() RSS=() PSS=() SIZE=() ARCH=() STOPS=()
ok()   { passed=$((passed + 1)); printf '  ok   %s\n' "$*"; }
bad()  { failed=$((failed + 1)); printf '  FAIL %s\n' "$*"; }
check() { local what=$1; shift; if "$@" >>"$work/checks.log" 2>&1; then ok "$what"; else bad "$what"; fi; }
say()  { printf '\n== %s\n' "$*"; }

cleanup() {
  exec 2>/dev/null
  local n
  # the container's init first (killing it ends its PID namespace), then unshare
  for n in "${!UPID[@]}"; do
    local p; p=$(init_pid "$n"); [ -z "$p" ] || kill -KILL "$p" 2>/dev/null || true
  done
  for n in "${!UPID[@]}"; do kill -KILL "${UPID[$n]}" 2>/dev/null || true; done
  sleep 0.5
  ip netns del "$ns" 2>/dev/null || true
  if [ -z "${OEM_KEEP_TEST:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
in_ns() { ip netns exec "$ns" "$@"; }

# --- rootfs of an image -------------------------------------------------------------------
rootfs() {  # IMAGE -> prints the unpacked rootfs (cached per archive)
  local image=$1 a dir
  a=$(readlink -f "$OEM_CACHE/images/$image.oci.tar") || true
  [ -s "$a" ] || { echo "no archive for $image: run scripts/build-images.sh $image" >&2; return 1; }
  dir=$OEM_CACHE/test-rootfs/$(basename "$a" .oci.tar)
  if [ ! -d "$dir" ]; then
    rm -rf "$OEM_CACHE/test-rootfs/$image"-* "$dir.tmp"
    mkdir -p "$dir.tmp"
    /usr/bin/python3 "$repo/images/oci-unpack.py" "$a" "$dir.tmp"
    mv "$dir.tmp.env" "$dir.env"; mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# run NAME IMAGE SRV_DIR [--tls DIR] [--dkim KEY] [K=V...]: starts a container in the
# background (KEY: a DKIM private key, mounted as the dkim Secret is).
run() {
  local name=$1 image=$2 srv=$3 tls= dkim=; shift 3
  if [ "${1:-}" = --tls ]; then tls=$2; shift 2; fi
  if [ "${1:-}" = --dkim ]; then dkim=$2; shift 2; fi
  local r; r=$(rootfs "$image")
  mkdir -p "$srv"; chown 10001:10001 "$srv"
  local ienv=(); mapfile -t ienv <"$r.env"
  env -i "${ienv[@]}" HOSTNAME="$name" "$@" \
    ip netns exec "$ns" unshare --pid --fork --kill-child --uts --mount --propagation private \
    /bin/bash -c '
      set -e; r=$1 srv=$2 tls=$3 dkim=$4
      mount --bind "$r" "$r"
      mount -t proc proc "$r/proc"
      mount -t tmpfs -o mode=1777,size=256m tmpfs "$r/tmp"
      mount -t tmpfs -o mode=755,size=1m tmpfs "$r/dev"
      for d in null zero full random urandom tty; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done
      ln -s /proc/self/fd "$r/dev/fd"; ln -s /proc/self/fd/0 "$r/dev/stdin"
      ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
      mkdir "$r/dev/shm" "$r/dev/pts"; mount -t tmpfs -o mode=1777,size=64m tmpfs "$r/dev/shm"
      mount --bind "$srv" "$r/srv"
      # what the kubelet mounts into every container
      printf "127.0.0.1 localhost\n::1 localhost ip6-localhost\n127.0.0.1 %s\n" "$HOSTNAME" >"$r/tmp/.hosts"
      [ -e "$r/etc/hosts" ] && mount --bind "$r/tmp/.hosts" "$r/etc/hosts"
      : >"$r/tmp/.resolv"; [ -e "$r/etc/resolv.conf" ] && mount --bind "$r/tmp/.resolv" "$r/etc/resolv.conf"
      hostname "$HOSTNAME"
      if [ -n "$tls$dkim" ]; then
        mount -t tmpfs -o size=1m tmpfs "$r/run"
        if [ -n "$tls" ]; then
          mkdir -p "$r/run/secrets/oem-tls"
          cp "$tls/tls.crt" "$tls/tls.key" "$r/run/secrets/oem-tls/"
          chmod 644 "$r/run/secrets/oem-tls/"*   # the default mode of a Secret volume
        fi
        if [ -n "$dkim" ]; then
          mkdir -p "$r/run/secrets/oem-dkim"
          cp "$dkim" "$r/run/secrets/oem-dkim/private-key"; chmod 644 "$r/run/secrets/oem-dkim/private-key"
        fi
        mount -o remount,ro "$r/run"
      fi
      mount -o remount,bind,ro "$r"
      cd "$r"
      exec chroot "$r" /usr/bin/setpriv --reuid 10001 --regid 10001 --clear-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs /usr/local/bin/entrypoint.sh
    ' oem-run "$r" "$srv" "$tls" "$dkim" >>"$work/$name.log" 2>&1 &
  UPID[$name]=$!
}
init_pid() { pgrep -P "${UPID[$1]}" 2>/dev/null | head -1 || true; }
tree_pids() {  # PID and its descendants
  ps -e -o pid=,ppid= | awk -v root="$1" '{ kids[$2] = kids[$2] " " $1 }
    END { n = split(root, q); while (n > 0) { p = q[n--]; print p; m = split(kids[p], c, " ");
          for (i = 1; i <= m; i++) q[++n] = c[i] } }'
}
alive() { kill -0 "${UPID[$1]}" 2>/dev/null; }

wait_tcp() {  # NAME PORT SECONDS
  local name=$1 port=$2 secs=$3 i
  for ((i = 0; i < secs * 5; i++)); do
    if in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then return 0; fi
    alive "$name" || { echo "$name exited:"; tail -20 "$work/$name.log"; return 1; }
    sleep 0.2
  done
  echo "$name: port $port not open after ${secs}s"; tail -20 "$work/$name.log"; return 1
}

# Every process of the container: uid/gid 10001, no capabilities, no_new_privs.
unprivileged() {
  local p bad=0 st
  for p in $(tree_pids "$(init_pid "$1")"); do
    st=$(cat "/proc/$p/status" 2>/dev/null) || continue   # a short-lived process already gone
    [ -n "$st" ] || continue
    grep -Eq '^Uid:\s+10001\s+10001\s+10001\s+10001' <<<"$st" || { echo "pid $p: $(grep ^Uid <<<"$st")"; bad=1; }
    grep -Eq '^Gid:\s+10001\s+10001\s+10001\s+10001' <<<"$st" || { echo "pid $p: $(grep ^Gid <<<"$st")"; bad=1; }
    grep -Eq '^CapEff:\s+0+$' <<<"$st" && grep -Eq '^CapPrm:\s+0+$' <<<"$st" && grep -Eq '^CapBnd:\s+0+$' <<<"$st" ||
      { echo "pid $p has capabilities"; bad=1; }
    grep -Eq '^NoNewPrivs:\s+1' <<<"$st" || { echo "pid $p without no_new_privs"; bad=1; }
  done
  return $bad
}

measure() {  # NAME IMAGE: idle memory (sum of RSS and of PSS of the container's processes)
  local p rss=0 pss=0 v
  for p in $(tree_pids "$(init_pid "$1")"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true); rss=$((rss + ${v:-0}))
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || true); pss=$((pss + ${v:-0}))
  done
  RSS[$2]=$((rss / 1024)); PSS[$2]=$((pss / 1024))
  local names; names=$(for p in $(tree_pids "$(init_pid "$1")"); do cat "/proc/$p/comm" 2>/dev/null; done | sort | uniq -c | awk '{printf "%s%s", sep, ($1 > 1 ? $2 " x" $1 : $2); sep=", "}')
  echo "  idle memory of $2: RSS sum ${RSS[$2]} MiB, PSS sum ${PSS[$2]} MiB ($names)"
}

# stop NAME: SIGTERM to the entrypoint (PID 1 of the container); must exit 0 within 10 s.
stop() {
  local name=$1 p i rc=0 t0
  p=$(init_pid "$name")
  [ -n "$p" ] || { echo "$name is not running"; return 1; }
  t0=$(date +%s%N)
  kill -TERM "$p"
  for ((i = 0; i < 100; i++)); do alive "$name" || break; sleep 0.1; done
  if alive "$name"; then echo "$name still running 10 s after SIGTERM"; kill -KILL "$p"; return 1; fi
  wait "${UPID[$name]}" || rc=$?
  unset "UPID[$name]"
  STOPS[$name]=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$name stopped in ${STOPS[$name]} ms, status $rc"
  [ $rc = 0 ]
}

# A daemon dying makes the container exit non-zero.
dies_with() {  # NAME PROCESS-NAME
  local name=$1 comm=$2 p victim= rc=0 i
  for p in $(tree_pids "$(init_pid "$name")"); do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = "$comm" ] && { victim=$p; break; }
  done
  [ -n "$victim" ] || { echo "no $comm in $name"; return 1; }
  kill -KILL "$victim"
  for ((i = 0; i < 100; i++)); do alive "$name" || break; sleep 0.1; done
  alive "$name" && { echo "$name still running after $comm died"; return 1; }
  wait "${UPID[$name]}" || rc=$?
  unset "UPID[$name]"
  echo "$name exited with $rc after $comm was killed"
  [ $rc != 0 ]
}

grep_q() { local pat=$1; shift; local out; out=$("$@" 2>&1) || { echo "$out"; return 1; }; grep -q -- "$pat" <<<"$out" || { echo "expected $pat in: $out"; return 1; }; }
c() { in_ns curl -sS --max-time 10 "$@"; }

# --- databases ----------------------------------------------------------------------------
PW1='s3cret "quoted" \back'\''slash'
PW2='rotated-Pw_2'
if has mariadb; then
  say "mariadb"
  run mariadb mariadb "$work/srv-mariadb" DB_NAME=app DB_USER=app DB_PASSWORD="$PW1" DB_ROOT_PASSWORD=rootpw1
  check "mariadb: listens on 3306" wait_tcp mariadb 3306 90
  check "mariadb: every process uid 10001, no capabilities, no_new_privs" unprivileged mariadb
  check "mariadb: datadir in /srv/mysql" test -d "$work/srv-mariadb/mysql/app"
  check "mariadb: TLS on 3306 (STARTTLS-style SSL request)" grep_q "CN *= *localhost" bash -c \
    "echo | ip netns exec $ns timeout 10 openssl s_client -starttls mysql -connect 127.0.0.1:3306 2>&1"
fi
if has postgresql; then
  say "postgresql"
  run postgresql postgresql "$work/srv-postgresql" DB_NAME=app DB_USER=app DB_PASSWORD="$PW1" DB_ROOT_PASSWORD=rootpw1
  check "postgresql: listens on 5432" wait_tcp postgresql 5432 90
  check "postgresql: every process uid 10001, no capabilities, no_new_privs" unprivileged postgresql
  check "postgresql: PGDATA in /srv/pgdata" test -s "$work/srv-postgresql/pgdata/PG_VERSION"
  check "postgresql: TLS on 5432" grep_q "CN *= *localhost" bash -c \
    "echo | ip netns exec $ns timeout 10 openssl s_client -starttls postgres -connect 127.0.0.1:5432 2>&1"
fi

# --- web ------------------------------------------------------------------------------------
write_php() {
  local www=$1
  mkdir -p "$www"
  cat >"$www/db.php" <<'PHP'
<?php
// seed=1 creates the table and the row; otherwise reads it back with the env credentials.
$e = getenv('DB_ENGINE'); $h = getenv('DB_HOST'); $p = getenv('DB_PORT');
$dsn = ($e === 'postgresql' ? 'pgsql' : 'mysql') . ":host=$h;port=$p;dbname=" . getenv('DB_NAME');
try {
  $db = new PDO($dsn, getenv('DB_USER'), getenv('DB_PASSWORD'), [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
  if (isset($_GET['seed'])) {
    $db->exec("CREATE TABLE IF NOT EXISTS greeting (msg VARCHAR(40))");
    $db->exec("DELETE FROM greeting");
    $db->exec("INSERT INTO greeting VALUES ('hello from $e')");
  }
  echo "row: ", $db->query("SELECT msg FROM greeting")->fetchColumn(), "\n";
  if ($e === 'mariadb') { $m = new mysqli($h, getenv('DB_USER'), getenv('DB_PASSWORD'), getenv('DB_NAME'), (int)$p); echo "mysqli: ", $m->server_info, "\n"; }
  echo "php ", PHP_VERSION, " uid ", posix_getuid(), "\n";
} catch (Throwable $t) { http_response_code(500); echo "error: ", $t->getMessage(), "\n"; }
PHP
  chown -R 10001:10001 "$www"
}

web_db_env() {  # ENGINE PASSWORD
  local port=3306; [ "$1" = postgresql ] && port=5432
  printf '%s\n' DB_ENGINE="$1" DB_HOST=127.0.0.1 DB_PORT=$port DB_NAME=app DB_USER=app DB_PASSWORD="$2"
}

for web in web-php8.2 web-php8.4; do
  has $web || continue
  say "$web"
  ver=${web#web-php}
  srv=$work/srv-$web
  run $web $web "$srv"
  check "$web: listens on 8080 and 8443" wait_tcp $web 8443 30
  check "$web: every process uid 10001, no capabilities, no_new_privs" unprivileged $web
  check "$web: default index.html in a fresh /srv/www (http)" grep_q "Coming soon" c http://127.0.0.1:8080/
  check "$web: https with the generated self-signed certificate" grep_q "Coming soon" c -k https://127.0.0.1:8443/
  check "$web: missing page is 404" grep_q "^404$" c -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/nope.html
  sleep 3; measure $web $web
  check "$web: SIGTERM stops it fast with status 0" stop $web
  write_php "$srv/www"
  for engine in mariadb postgresql; do
    has $engine || continue
    mapfile -t envs < <(web_db_env $engine "$PW1")
    run $web-$engine $web "$srv" "${envs[@]}"
    check "$web: up with DB_ENGINE=$engine" wait_tcp $web-$engine 8080 30
    check "$web: PHP $ver writes and reads a row in $engine with the env credentials" \
      grep_q "row: hello from $engine" c "http://127.0.0.1:8080/db.php?seed=1"
    check "$web: PHP $ver reads the row over https" grep_q "php $ver" c -k "https://127.0.0.1:8443/db.php"
    [ $engine = mariadb ] && check "$web: mysqli works" grep_q "mysqli: " c "http://127.0.0.1:8080/db.php"
    check "$web: exits non-zero when php-fpm dies" dies_with $web-$engine php-fpm
  done
  # a mounted certificate is used
  mkdir -p "$work/tls"
  [ -s "$work/tls/tls.crt" ] || openssl req -x509 -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 30 \
    -subj /CN=mounted.example -keyout "$work/tls/tls.key" -out "$work/tls/tls.crt" 2>/dev/null
  run $web-tls $web "$srv" --tls "$work/tls"
  check "$web: up with a mounted certificate" wait_tcp $web-tls 8443 30
  check "$web: serves the mounted certificate" grep_q "CN *= *mounted.example" c -kv -o /dev/null https://127.0.0.1:8443/
  check "$web: exits non-zero when nginx dies" dies_with $web-tls nginx
done

# --- database restarts: data kept, passwords rotated ----------------------------------------
# What the kubelet does to a volume at every mount with fsGroup 10001 (fsGroupChangePolicy
# Always): group 10001, g+rw on files, g+rwx and setgid on directories.
fsgroup() { chgrp -R 10001 "$1" && find "$1" -type d -exec chmod g+rwxs {} + && find "$1" -type f -exec chmod g+rw {} +; }
if has mariadb; then
  say "mariadb restart with rotated passwords"
  measure mariadb mariadb
  check "mariadb: SIGTERM stops it fast with status 0" stop mariadb
  fsgroup "$work/srv-mariadb"
  run mariadb mariadb "$work/srv-mariadb" DB_NAME=app DB_USER=app DB_PASSWORD="$PW2" DB_ROOT_PASSWORD=rootpw2
  check "mariadb: back on 3306" wait_tcp mariadb 3306 90
  for web in web-php8.2 web-php8.4; do
    has $web || continue
    mapfile -t envs < <(web_db_env mariadb "$PW2"); run $web-rot $web "$work/srv-$web" "${envs[@]}"
    check "$web: up" wait_tcp $web-rot 8080 30
    check "mariadb: the row survived, the rotated DB_PASSWORD works" grep_q "row: hello from mariadb" c http://127.0.0.1:8080/db.php
    mapfile -t envs < <(web_db_env mariadb "$PW1"); stop $web-rot >/dev/null; run $web-old $web "$work/srv-$web" "${envs[@]}"
    check "$web: up" wait_tcp $web-old 8080 30
    check "mariadb: the old password is refused" grep_q "Access denied" c http://127.0.0.1:8080/db.php
    stop $web-old >/dev/null
    break
  done
  check "mariadb: exits non-zero when mariadbd dies" dies_with mariadb mariadbd
fi
if has postgresql; then
  say "postgresql restart with rotated passwords"
  measure postgresql postgresql
  check "postgresql: SIGTERM stops it fast with status 0" stop postgresql
  fsgroup "$work/srv-postgresql"
  run postgresql postgresql "$work/srv-postgresql" DB_NAME=app DB_USER=app DB_PASSWORD="$PW2" DB_ROOT_PASSWORD=rootpw2
  check "postgresql: back on 5432" wait_tcp postgresql 5432 90
  for web in web-php8.2 web-php8.4; do
    has $web || continue
    mapfile -t envs < <(web_db_env postgresql "$PW2"); run $web-rot $web "$work/srv-$web" "${envs[@]}"
    check "$web: up" wait_tcp $web-rot 8080 30
    check "postgresql: the row survived, the rotated DB_PASSWORD works" grep_q "row: hello from postgresql" c http://127.0.0.1:8080/db.php
    mapfile -t envs < <(web_db_env postgresql "$PW1"); stop $web-rot >/dev/null; run $web-old $web "$work/srv-$web" "${envs[@]}"
    check "$web: up" wait_tcp $web-old 8080 30
    check "postgresql: the old password is refused" grep_q "password authentication failed" c http://127.0.0.1:8080/db.php
    stop $web-old >/dev/null
    break
  done
  check "postgresql: exits non-zero when postgres dies" dies_with postgresql postgres
fi

# --- ftp ------------------------------------------------------------------------------------
if has ftp; then
  say "ftp"
  site=$work/srv-site
  mkdir -p "$site"; chown 10001:10001 "$site"
  run ftp ftp "$site" FTP_USER=webmaster FTP_PASSWORD='ftp:pw "1"' FTP_TLS=required FTP_PASSIVE_PORTS=30000-30009
  check "ftp: listens on 2121" wait_tcp ftp 2121 30
  check "ftp: every process uid 10001, no capabilities, no_new_privs" unprivileged ftp
  check "ftp: fresh /srv/www with the default index.html" test -s "$site/www/index.html"
  echo "uploaded over FTPS $$" >"$work/upload.html"
  ftpc() { c --ftp-pasv --user 'webmaster:ftp:pw "1"' "$@"; }
  check "ftp: FTPS (AUTH TLS) upload lands in /srv/www, data over a passive port 30000-30009" \
    grep_q "Connecting to 127.0.0.1 (127.0.0.1) port 3000[0-9]" ftpc -v --ssl-reqd -k -T "$work/upload.html" ftp://127.0.0.1:2121/hello.html
  check "ftp: the uploaded file is in /srv/www" grep -q "uploaded over FTPS $$" "$site/www/hello.html"
  check "ftp: FTPS listing of the document root" grep_q "hello.html" ftpc --ssl-reqd -k -l ftp://127.0.0.1:2121/
  check "ftp: login without TLS refused (FTP_TLS=required)" bash -c "! ip netns exec $ns curl -sS --max-time 10 --user 'webmaster:ftp:pw \"1\"' -l ftp://127.0.0.1:2121/"
  check "ftp: wrong password refused" bash -c "! ip netns exec $ns curl -sS --max-time 10 --ssl-reqd -k --user webmaster:wrong -l ftp://127.0.0.1:2121/"
  check "ftp: confined: ../../etc/passwd unreachable" bash -c "! ip netns exec $ns curl -sS --max-time 10 --ssl-reqd -k --path-as-is --user 'webmaster:ftp:pw \"1\"' ftp://127.0.0.1:2121/../../etc/passwd"
  ln -sfn /etc "$site/www/etc-link"
  check "ftp: confined: a symlink out of /srv/www is not followed" bash -c "! ip netns exec $ns curl -sS --max-time 10 --ssl-reqd -k --user 'webmaster:ftp:pw \"1\"' ftp://127.0.0.1:2121/etc-link/passwd"
  rm -f "$site/www/etc-link"
  sleep 2; measure ftp ftp
  check "ftp: SIGTERM stops it fast with status 0" stop ftp
  run ftp-opt ftp "$site" FTP_USER=webmaster FTP_PASSWORD=pw2 FTP_TLS=optional
  check "ftp: up with FTP_TLS=optional" wait_tcp ftp-opt 2121 30
  check "ftp: plain FTP login works with FTP_TLS=optional" grep_q "hello.html" c --user webmaster:pw2 -l ftp://127.0.0.1:2121/
  check "ftp: exits non-zero when the FTP daemon dies" dies_with ftp-opt python3
  run ftp-off ftp "$site" FTP_USER=webmaster FTP_PASSWORD=pw3 FTP_TLS=off
  check "ftp: up with FTP_TLS=off" wait_tcp ftp-off 2121 30
  check "ftp: plain FTP upload with FTP_TLS=off" c --user webmaster:pw3 -T "$work/upload.html" ftp://127.0.0.1:2121/plain.html
  check "ftp: no AUTH TLS with FTP_TLS=off" bash -c "! ip netns exec $ns curl -sS --max-time 10 --ssl-reqd --user webmaster:pw3 -l ftp://127.0.0.1:2121/"
  check "ftp: FTP_TLS=off stops on SIGTERM" stop ftp-off
  for web in web-php8.2 web-php8.4; do
    has $web || continue
    run $web-site $web "$site"
    check "$web: up on the FTP account's volume" wait_tcp $web-site 8080 30
    check "$web: serves the file uploaded over FTPS" grep_q "uploaded over FTPS $$" c http://127.0.0.1:8080/hello.html
    stop $web-site >/dev/null
    break
  done
fi

# --- mail -----------------------------------------------------------------------------------
if has mail; then
  say "mail"
  # The provider's relay takes the outbound mail (a real SMTP server in the namespace); the
  # MTA signs it with a DKIM key made as the operator makes one (RSA 2048, PKCS #1 PEM).
  mkdir -p "$work/relay"
  in_ns /usr/bin/python3 "$repo/e2e/daemons/smtp_sink.py" --port 2626 --dir "$work/relay" >"$work/relay.log" 2>&1 &
  UPID[relay]=$!
  openssl genrsa -traditional -out "$work/dkim.key" 2048 2>/dev/null
  dkim_txt="v=DKIM1; k=rsa; p=$(openssl rsa -in "$work/dkim.key" -pubout -outform DER 2>/dev/null | base64 -w0)"
  run mail mail "$work/srv-mail" --dkim "$work/dkim.key" MAIL_DOMAINS="example.test, Other.test" MAIL_HOSTNAME=mail.example.test \
    MAX_SENDS_PER_HOUR=2 MAIL_ACCOUNTS=$'alice@example.test:alice-pw\r\nBob@other.test:b:o b\n' \
    MAIL_RELAY=127.0.0.1:2626 MAIL_DKIM_SELECTOR=sel1
  mail_up() { wait_tcp mail 4465 60 && wait_tcp mail 1993 30 && wait_tcp mail 9154 30; }
  check "mail: up (smtps 4465, imaps 1993, metrics 9154)" mail_up
  check "mail: listens on 2525 2587 4465 1110 1995 1143 1993 9154" bash -c \
    "for p in 2525 2587 4465 1110 1995 1143 1993 9154; do ip netns exec $ns bash -c \"exec 3<>/dev/tcp/127.0.0.1/\$p\" || { echo port \$p closed; exit 1; }; done"
  check "mail: every process uid 10001, no capabilities, no_new_privs" unprivileged mail
  msg() { printf 'From: %s\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n' "$1" "$2" "$3" "$3" >"$work/msg.eml"; }
  msg alice@example.test bob@other.test "submission-2587"
  check "mail: submission 2587: STARTTLS + AUTH, to a local domain" \
    c --ssl-reqd -k smtp://127.0.0.1:2587 --user alice@example.test:alice-pw --mail-from alice@example.test --mail-rcpt bob@other.test -T "$work/msg.eml"
  msg bob@other.test alice@example.test "smtps-4465"
  check "mail: smtps 4465: implicit TLS + AUTH (password with ':' and a space)" \
    c -k smtps://127.0.0.1:4465 --user 'bob@other.test:b:o b' --mail-from bob@other.test --mail-rcpt alice@example.test -T "$work/msg.eml"
  msg someone@elsewhere.test alice@example.test "inbound-2525"
  check "mail: smtp 2525 accepts mail for a local account without AUTH" \
    c smtp://127.0.0.1:2525 --mail-from someone@elsewhere.test --mail-rcpt alice@example.test -T "$work/msg.eml"
  check "mail: smtp 2525 refuses an unknown local user" bash -c "! ip netns exec $ns curl -sS --max-time 10 smtp://127.0.0.1:2525 --mail-from x@elsewhere.test --mail-rcpt nobody@example.test -T $work/msg.eml"
  check "mail: no relaying without AUTH" bash -c "! ip netns exec $ns curl -sS --max-time 10 smtp://127.0.0.1:2525 --mail-from x@elsewhere.test --mail-rcpt y@remote.test -T $work/msg.eml"
  check "mail: no AUTH without TLS (so no relaying)" bash -c "! ip netns exec $ns curl -sS --max-time 10 smtp://127.0.0.1:2587 --user alice@example.test:alice-pw --mail-from alice@example.test --mail-rcpt y@remote.test -T $work/msg.eml"
  check "mail: wrong password refused" bash -c "! ip netns exec $ns curl -sS --max-time 10 --ssl-reqd -k smtp://127.0.0.1:2587 --user alice@example.test:nope --mail-from alice@example.test --mail-rcpt bob@other.test -T $work/msg.eml"
  sleep 2
  check "mail: delivered into /srv/mail/other.test/bob/Maildir" bash -c "grep -rlq submission-2587 $work/srv-mail/mail/other.test/bob/Maildir/new"
  check "mail: IMAPS 1993 reads bob's message" grep_q "Subject: submission-2587" c -k "imaps://127.0.0.1:1993/INBOX;UID=1" --user 'bob@other.test:b:o b'
  check "mail: POP3S 1995 reads alice's messages" grep_q "Subject: smtps-4465" c -k "pop3s://127.0.0.1:1995/1" --user alice@example.test:alice-pw
  check "mail: IMAP 1143 with STARTTLS" grep_q "INBOX" c --ssl-reqd -k "imap://127.0.0.1:1143/" --user alice@example.test:alice-pw
  check "mail: POP3 1110 with STARTTLS lists 2 messages" grep_q "^2 " c --ssl-reqd -k "pop3://127.0.0.1:1110/" --user alice@example.test:alice-pw
  # (Dovecot allows plaintext logins from its own address, so "no login without TLS" on
  # 1143/1110 cannot be shown over loopback; disable_plaintext_auth = yes covers the rest.)
  for n in 1 2; do
    # the second one's From: is the account's other domain, which signs it (d=other.test)
    from=alice@example.test; [ $n = 2 ] && from=Alice@Other.test
    msg "$from" "friend$n@remote.test" "relay-$n"
    check "mail: authenticated relay #$n to a remote domain accepted" \
      c --ssl-reqd -k smtp://127.0.0.1:2587 --user alice@example.test:alice-pw --mail-from alice@example.test --mail-rcpt "friend$n@remote.test" -T "$work/msg.eml"
  done
  relayed() { local i; for ((i = 0; i < 50; i++)); do [ -s "$work/relay/0000$1.eml" ] && return 0; sleep 0.2; done; ls -la "$work/relay"; tail -5 "$work/relay.log"; return 1; }
  check "mail: both relays reached the provider's relay (MAIL_RELAY)" bash -c "$(declare -f relayed); work=$work; relayed 1 && relayed 2"
  for n in 1 2; do
    d=example.test; [ $n = 2 ] && d=other.test
    check "mail: relay #$n carries a DKIM signature by $d that dkimpy verifies with the published key" \
      /usr/bin/python3 "$repo/e2e/daemons/dkim_verify.py" "$work/relay/0000$n.eml" "$d" sel1 "$dkim_txt"
  done
  check "mail: a record of another key does not verify it" bash -c "openssl genrsa 2048 2>/dev/null | openssl rsa -pubout -outform DER 2>/dev/null | base64 -w0 >$work/other.pub;
    ! /usr/bin/python3 $repo/e2e/daemons/dkim_verify.py $work/relay/00001.eml example.test sel1 \"v=DKIM1; k=rsa; p=\$(cat $work/other.pub)\""
  msg spoofed@bank.test friend3@remote.test "spoofed"
  check "mail: an authenticated client cannot send as another domain" bash -c "! ip netns exec $ns curl -sS --max-time 10 --ssl-reqd -k smtp://127.0.0.1:2587 --user alice@example.test:alice-pw --mail-from spoofed@bank.test --mail-rcpt friend3@remote.test -T $work/msg.eml"
  msg alice@example.test friend3@remote.test "relay-3"
  check "mail: relay #3 refused with 4xx (MAX_SENDS_PER_HOUR=2)" grep_q "< 45[0-9] 4.7.1 hourly sending limit" bash -c \
    "ip netns exec $ns curl -sS -v --max-time 10 --ssl-reqd -k smtp://127.0.0.1:2587 --user alice@example.test:alice-pw --mail-from alice@example.test --mail-rcpt friend3@remote.test -T $work/msg.eml; true"
  check "mail: metrics: oem_mail_sent_total 2" grep_q "^oem_mail_sent_total 2$" c http://127.0.0.1:9154/metrics
  check "mail: metrics: oem_mail_refused_total 1" grep_q "^oem_mail_refused_total 1$" c http://127.0.0.1:9154/metrics
  sleep 2; measure mail mail
  check "mail: SIGTERM stops it fast with status 0" stop mail
  fsgroup "$work/srv-mail"
  run mail mail "$work/srv-mail" MAIL_DOMAINS=example.test,other.test MAX_SENDS_PER_HOUR=2 MAIL_ACCOUNTS=$'alice@example.test:rotated\nbob@other.test:x'
  check "mail: restarted" mail_up
  check "mail: the rotated password works, mail kept" grep_q "Subject: smtps-4465" c -k "pop3s://127.0.0.1:1995/1" --user alice@example.test:rotated
  msg alice@example.test friend4@remote.test "relay-4"
  check "mail: the hourly window survives a restart (relay still refused)" grep_q " 45[0-9]" bash -c \
    "ip netns exec $ns curl -sS -v --max-time 10 --ssl-reqd -k smtp://127.0.0.1:2587 --user alice@example.test:rotated --mail-from alice@example.test --mail-rcpt friend4@remote.test -T $work/msg.eml; true"
  check "mail: exits non-zero when dovecot dies" dies_with mail dovecot
  run mail2 mail "$work/srv-mail" MAIL_DOMAINS=example.test MAIL_ACCOUNTS=alice@example.test:x
  check "mail: up again" wait_tcp mail2 2525 30
  check "mail: exits non-zero when exim dies" dies_with mail2 exim4
fi

say "summary"
printf '%-12s %12s %12s %14s %14s\n' IMAGE UNPACKED ARCHIVE "IDLE RSS SUM" "IDLE PSS SUM"
for i in "${want[@]}"; do
  a=$(readlink -f "$OEM_CACHE/images/$i.oci.tar"); ARCH[$i]=$(stat -c %s "$a")
  SIZE[$i]=$(du -sb "$OEM_CACHE/test-rootfs/$(basename "$a" .oci.tar)" | cut -f1)
  printf '%-12s %9s MiB %9s MiB %10s MiB %10s MiB\n' "$i" "$(( ${SIZE[$i]:-0} / 1048576 ))" \
    "$(( ${ARCH[$i]:-0} / 1048576 ))" "${RSS[$i]:-?}" "${PSS[$i]:-?}"
done
echo
echo "$passed passed, $failed failed"
[ $failed = 0 ]
