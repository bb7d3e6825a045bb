#!/usr/bin/env bash
# `make up`: the local cluster with a real node, the CRDs, the operator and the admission
# webhooks and the end users' panel (host processes, under their least-privilege
# ServiceAccounts) and the examples, the running example end user serving a real site. Everything runs in the named network
# namespace `oem-up` (loopback only) and a private mount namespace, so no pod or Service
# address ever appears in the machine's own network namespace; the API server, the site, the
# operator's metrics and the panel are forwarded to the machine's loopback through Unix sockets.
# Run as root. Safe to run twice: what runs is kept, the operator and the webhooks are
# restarted on a fresh build. `make down` stops all of it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OEM_CLUSTER_DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}
export OEM_CLUSTER_REAL_NODES=1
base=${OEM_CLUSTER_PORT_BASE:-16000}
api_port=$((base + 443))
site_port=${OEM_SITE_PORT:-18081}
https_port=${OEM_HTTPS_PORT:-18444}
metrics_port=${OEM_METRICS_PORT:-18080}
panel_port=${OEM_PANEL_PORT:-18082}
[ "$(id -u)" = 0 ] || { echo "make up runs as root (it creates the network namespace $up_netns)" >&2; exit 1; }
t0=$SECONDS

say "tools, binaries and images (cached)"
bash "$repo/scripts/install-deps.sh"
bash "$repo/e2e/cluster/build.sh"
# The operator's, webhooks' and panel's images from the debug binaries below (make up runs
# them as processes; their images are only built, like in scripts/test.sh). Exported: the
# import inside the namespace (up-netns.sh) runs build-images.sh again and must find the same
# images, not start a release build.
export OEM_PROGRAM_PROFILE=${OEM_PROGRAM_PROFILE:-dev}
bash "$repo/scripts/build-images.sh" >/dev/null
# Every binary, as scripts/test.sh builds them: a subset would unify the crates' features
# differently and rebuild them, here and again in the next `make test`.
cargo build -q --workspace --bins

say "network namespace $up_netns"
if ! holder_alive; then
  # A previous run's state without its namespace (the machine restarted, a crash): clean it.
  if [ -d "$OEM_CLUSTER_DIR" ]; then
    holder_pid=$(cat "$(holder_pidfile)" 2>/dev/null || true)
    echo "network namespace $up_netns: its holder (pid ${holder_pid:-none recorded}) is gone" \
      "($(tr '\0' ' ' < "/proc/${holder_pid:-0}/cmdline" 2>/dev/null || echo "no such process")," \
      "/run/netns/$up_netns $([ -e "/run/netns/$up_netns" ] && echo present || echo absent));" \
      "starting afresh" >&2
    bash "$repo/scripts/down.sh"
  fi
  if [ -e "/run/netns/$up_netns" ]; then
    [ -z "$(ip netns pids "$up_netns" 2>/dev/null)" ] ||
      { echo "network namespace $up_netns has processes make up did not record; see ip netns pids $up_netns" >&2; exit 1; }
    ip netns del "$up_netns"
  fi
  mkdir -p "$OEM_CLUSTER_DIR"
  # Whether /run/netns is a mount point before `ip netns add` makes it one: down undoes it.
  findmnt -n /run/netns >/dev/null 2>&1 || touch "$OEM_CLUSTER_DIR/netns-mount-made"
  ip netns add "$up_netns"
  ip -n "$up_netns" link set lo up
  # Outgoing connections take local ports above the cluster's fixed ones (base 16000 to about
  # base+500): a new namespace's default range starts at 32768, and a client once held
  # 127.0.0.1:36444 just before the webhooks bound it (make_up.rs, port base 36000).
  ip netns exec "$up_netns" sh -c 'echo "50000 65000" > /proc/sys/net/ipv4/ip_local_port_range'
  # The holder: an idle process in the network namespace and a new private mount namespace.
  OEM_UP_HOLDER=$OEM_CLUSTER_DIR setsid nsenter --net="/run/netns/$up_netns" -- \
    unshare --mount --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
  echo $! > "$(holder_pidfile)"
  for _ in $(seq 1 40); do holder_alive && [ "$(readlink "/proc/$!/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ] && break; sleep 0.1; done
  holder_alive || { echo "the namespace holder did not start" >&2; exit 1; }
  # Host processes in the namespace (operator, webhooks, curl) resolve cluster names through
  # the cluster DNS: its resolv.conf is bind-mounted in the private mount namespace only.
  printf 'nameserver 10.96.0.10\nsearch cluster.local\noptions ndots:5 timeout:2\n' > "$OEM_CLUSTER_DIR/netns-resolv.conf"
  in_netns mount --bind "$OEM_CLUSTER_DIR/netns-resolv.conf" /etc/resolv.conf
  echo "network namespace $up_netns and its mount namespace held by pid $(cat "$(holder_pidfile)")" >&2
else
  echo "network namespace $up_netns already held by pid $(cat "$(holder_pidfile)")" >&2
fi

# Everything else happens inside; it leaves the site's address in $OEM_CLUSTER_DIR/site.
in_netns bash "$repo/scripts/up-netns.sh"

say "forwards to this machine's loopback"
# socat in the namespace listens on a Unix socket (up-netns.sh); socat here listens on
# 127.0.0.1 and connects to it. Same port numbers on both sides, so one kubeconfig serves both.
forward_host() { # $1 name, $2 port
  local name=forward-$1-host sock=$OEM_CLUSTER_DIR/sockets/$1.sock
  if process_alive "$name" "$OEM_CLUSTER_DIR"; then return; fi
  start_process "$name" "$OEM_CLUSTER_DIR" socat \
    "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$sock"
}
forward_host api "$api_port"
forward_host site "$site_port"
forward_host https "$https_port"
forward_host metrics "$metrics_port"
forward_host panel "$panel_port"
eval "$(bash "$repo/e2e/cluster/cluster.sh" env)"
for _ in $(seq 1 40); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 0.25; done
kubectl get --raw /readyz >/dev/null || { echo "the API server does not answer on 127.0.0.1:$api_port" >&2; exit 1; }
# Retried: the monitor restarts the web pod while its TLS services fail (README.md).
page=$(curl -fsS --max-time 10 --retry 10 --retry-delay 2 --retry-all-errors "http://127.0.0.1:$site_port/") ||
  { echo "the example site does not answer on http://127.0.0.1:$site_port/" >&2; exit 1; }
grep -q "served by PHP" <<<"$page" || { echo "unexpected page from the example site: $page" >&2; exit 1; }
# The same site over HTTPS through the front door (Traefik), by its domain, with the
# certificate the local ACME server issued for it through cert-manager.
site_domain=$(cat "$OEM_CLUSTER_DIR/site-domain")
https_url=https://$site_domain:$https_port/
page=$(curl -fsS --max-time 10 --retry 10 --retry-delay 2 --retry-all-errors \
  --resolve "$site_domain:$https_port:127.0.0.1" --cacert "$OEM_CLUSTER_DIR/acme-root.pem" "$https_url") ||
  { echo "the example site does not answer on $https_url through the front door" >&2; exit 1; }
grep -q "served by PHP" <<<"$page" || { echo "unexpected page from $https_url: $page" >&2; exit 1; }
# The panel's login page of the example reseller, through the forward.
reseller=$(kubectl get resellers -o jsonpath='{.items[0].metadata.name}')
panel_url=http://127.0.0.1:$panel_port/login/$reseller
login_page=$(curl -fsS --max-time 10 --retry 5 --retry-delay 1 --retry-all-errors "$panel_url") ||
  { echo "the panel does not answer on $panel_url" >&2; exit 1; }
grep -q 'name="password"' <<<"$login_page" || { echo "unexpected page from the panel at $panel_url" >&2; exit 1; }

say "ready in $((SECONDS - t0)) s"
site=$(cat "$OEM_CLUSTER_DIR/site")
cat <<TXT
  export KUBECONFIG=$OEM_CLUSTER_DIR/kubeconfig PATH=$(dirname "$(command -v kubectl)"):\$PATH
  kubectl get hosting -A                 # resellers, courses, end users, incidents
  kubectl get pods -A -o wide            # hosting pods on real-node-1, inside namespace $up_netns
  curl http://127.0.0.1:$site_port/          # the example site of $site
  curl --resolve $site_domain:$https_port:127.0.0.1 --cacert $OEM_CLUSTER_DIR/acme-root.pem $https_url
                                         # the same over HTTPS through the front door (Traefik)
  kubectl apply -f examples/refused/     # refused by the admission webhooks, with the reason
  operator: http://127.0.0.1:$metrics_port/metrics, logs in $OEM_CLUSTER_DIR/logs/
  end users' panel: $panel_url  (plain http on loopback: cookies without Secure)
TXT
# Each end user's login ID; its password is in the Secret <end user>-login (key password) that
# the operator generates in the reseller's namespace, unless the EndUser names its own.
kubectl get endusers -A -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name} {.spec.loginId} {.spec.passwordSecretRef.name}{"\n"}{end}' |
  while read -r ns name login secret; do
    printf '    login ID %-12s password: kubectl -n %s get secret %s -o jsonpath={.data.password} | base64 -d\n' \
      "$login" "$ns" "${secret:-$name-login}"
  done
# Each reseller's panel: the login admin, its password generated by the operator into
# oem-hosting-panel-<reseller> in the provider's namespace (docs/panels.md).
for r in $(kubectl get resellers -o jsonpath='{.items[*].metadata.name}'); do
  printf '  reseller %s panel: http://127.0.0.1:%s/r/%s/login  login admin, password: kubectl -n oem-hosting-system get secret oem-hosting-panel-%s -o jsonpath={.data.admin} | base64 -d\n' \
    "$r" "$panel_port" "$r" "$r"
done
cat <<TXT
  inside the namespace: ip netns exec $up_netns curl http://<pod or Service address>/
  stop everything: make down
TXT
