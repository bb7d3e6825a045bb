#!/usr/bin/env bash
# The local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# kwok (fake nodes and kubelets), every one bound to 127.0.0.1, state and logs in one folder.
#
#   cluster.sh up       build (cached) and start; returns when the fake nodes are Ready
#   cluster.sh down     stop exactly the processes `up` started (by PID) and remove the state
#   cluster.sh status   what runs, and whether the API server answers
#   cluster.sh env      print `export KUBECONFIG=...` and the PATH of the built tools
#
# Environment: OEM_CLUSTER_DIR (state folder, default <repo>/.cluster/dev), OEM_CLUSTER_PORT_BASE
# (default 16000; the API server listens on base+443), OEM_CLUSTER_NODES (default 3),
# OEM_CLUSTER_REAL_NODES=1 (also a real node that runs containers, see node.sh; only inside
# a network and mount namespace of its own, e.g. `unshare --net --mount`; docs/real-node.md).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}
BASE=${OEM_CLUSTER_PORT_BASE:-16000}
NODES=${OEM_CLUSTER_NODES:-3}
ETCD_PORT=$((BASE + 379)) ETCD_PEER_PORT=$((BASE + 380)) API_PORT=$((BASE + 443))
KCM_PORT=$((BASE + 257)) SCHED_PORT=$((BASE + 259)) KWOK_PORT=$((BASE + 247))
REAL=${OEM_CLUSTER_REAL_NODES:-0}
# A cluster that already has a real node keeps it, whatever the environment says.
if [ -d "$DIR/node" ]; then REAL=1; fi
if [ "$REAL" = 1 ]; then
  # Only ever inside a test network namespace (node.sh refuses any other): kube-proxy cannot
  # DNAT loopback Service addresses, so Services and pods use the usual private ranges there.
  SERVICE_CIDR=${OEM_SERVICE_CIDR:-10.96.0.0/16}
  POD_CIDR=${OEM_POD_CIDR:-10.244.0.0/16}
else
  # Service and pod addresses stay in loopback ranges: nothing may ever be sent to a
  # private-range or public address, even by mistake.
  SERVICE_CIDR=${OEM_SERVICE_CIDR:-127.96.0.0/16}
  POD_CIDR=${OEM_POD_CIDR:-127.100.0.0/16}
fi
K8S_BIN=$OEM_CACHE/bin/kubernetes-$K8S_VERSION
ETCD_BIN=$OEM_CACHE/bin/etcd-$ETCD_VERSION
KWOK_BIN=$OEM_CACHE/bin/kwok-$KWOK_VERSION
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok local-provisioner)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$DIR/kubeconfig" --cache-dir "$DIR/kube-cache" "$@"; }

alive() { # is the process recorded for component $1 still ours and running?
  local pidfile=$DIR/pids/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # A recycled PID is not ours: our processes name the state folder in arguments or environment.
  names "$pid" cmdline "$DIR" || names "$pid" environ "$DIR"
}

# Does /proc/$1/$2 (a command line or environment) contain the text $3? Read whole first:
# under pipefail, `tr ... | grep -q` fails now and then when grep exits before tr has written
# everything (SIGPIPE), and a running apiserver once counted as stopped that way.
names() {
  local text
  text=$(tr '\0' '\n' 2>/dev/null < "/proc/$1/$2") || return 1
  [[ $text == *"$3"* ]]
}

running() { # is PID $1 a process that has not exited? (an exited one waits, a zombie, until
  # init reaps it, which this machine's init does only every few seconds)
  local state
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

stop_pid() { # $1 component; TERM, then KILL after 10 s
  local name=$1 pid
  alive "$name" || return 0
  pid=$(cat "$DIR/pids/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do running "$pid" || break; sleep 0.25; done
  if running "$pid"; then kill_now "$pid"; fi
  log "$name stopped (pid $pid)"
}

# KILLs PID $1 and waits (at most 10 s) until it has exited, so its ports are free for the
# process started next.
kill_now() {
  kill -KILL "$1" 2>/dev/null || true
  for _ in $(seq 1 40); do running "$1" || return 0; sleep 0.25; done
  log "warning: pid $1 still runs 10 s after SIGKILL"
}

api_ready() {
  curl -fsS --max-time 3 --cacert "$DIR/pki/ca.crt" --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
}

wait_for() { # $1 what, $2 seconds, rest: command that succeeds when ready
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${limit}s (logs in $DIR/logs)"
    sleep 0.5
  done
}

# Kills what of this state folder still runs without a PID file (a process that outlived an
# earlier `down`, or whose file was lost): it would hold its port, and clients would talk to it
# instead of the new one.
# `down` passes "all": what still runs after stop_pid is stray too, recorded or not.
stray() { # $1 component name (the binary's), $2 "all" or nothing
  local pid
  for pid in $(pgrep -f -- "$DIR/" 2>/dev/null); do
    [ "${2:-}" != all ] && [ "$(cat "$DIR/pids/$1.pid" 2>/dev/null)" = "$pid" ] && continue
    if [ "$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null)")" = "$1" ]; then
      kill_now "$pid"
      log "$1: a stray process of this folder (pid $pid) stopped"
    fi
  done
}

start() { # $1 component, rest: command line; runs detached, its PID recorded
  local name=$1; shift
  if alive "$name"; then return; fi
  stray "$name"
  setsid "$@" >"$DIR/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$DIR/pids/$name.pid"
  log "$name started (pid $!)"
}

issue() { # $1 name, $2 subject, $3 extensions: a certificate signed by the cluster CA
  local p=$DIR/pki
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$p/$1.key" -out "$p/$1.csr" 2>/dev/null
  openssl x509 -req -in "$p/$1.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 3650 \
    -extfile <(printf '%s\n' "$3") -out "$p/$1.crt" 2>/dev/null
  rm -f "$p/$1.csr"
}

pki() {
  local p=$DIR/pki
  [ -f "$p/admin.crt" ] && return
  mkdir -p "$p"
  log "generating the cluster CA, serving and client certificates"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=oem-hosting-local-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  local first_service_ip node_san=""
  first_service_ip=$(python3 -c "import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))" "$SERVICE_CIDR")
  if [ "$REAL" = 1 ]; then node_san=",IP:$NODE_IP"; fi
  issue apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,IP:$first_service_ip$node_san,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth"
  issue admin "/O=system:masters/CN=oem-admin" "extendedKeyUsage=clientAuth"
  issue kube-controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  issue kube-scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
  issue kwok "/O=system:masters/CN=kwok" "extendedKeyUsage=clientAuth"
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  chmod 600 "$p"/*.key
}

kubeconfig() { # $1 file, $2 client certificate name
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: oem-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 < "$DIR/pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 < "$DIR/pki/$2.crt")
    client-key-data: $(base64 -w0 < "$DIR/pki/$2.key")
contexts:
- name: oem-local
  context: {cluster: oem-local, user: $2}
current-context: oem-local
EOF
  chmod 600 "$1"
}

node_manifest() { # $1 node name
  cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $1
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $1
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    oem.dev/hosting-node: "true"
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "2000", ephemeral-storage: 2Ti}
  capacity: {cpu: "64", memory: 512Gi, pods: "2000", ephemeral-storage: 2Ti}
EOF
}

nodes_ready() {
  local ready
  ready=$(kubectl get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True) || true
  [ "${ready:-0}" -ge "$NODES" ]
}

# A default StorageClass whose claims the harness's provisioner binds to hostPath volumes,
# folders under $DIR/volumes: real storage on the real node, placeholders for kwok's nodes.
storage() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-fake
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: oem.dev/local-fake
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
EOF
  local target=${CARGO_TARGET_DIR:-$repo/target} provisioner
  provisioner=$target/debug/local-provisioner
  if [ ! -x "$provisioner" ]; then
    log "building the stand-in volume provisioner"
    (cd "$repo" && cargo build -q -p oem-e2e --bin local-provisioner)
  fi
  mkdir -p "$DIR/volumes"
  start local-provisioner env "KUBECONFIG=$DIR/kubeconfig" "OEM_VOLUME_DIR=$DIR/volumes" "$provisioner"
}

up() {
  if [ "$REAL" = 1 ]; then node_netns_check; fi
  OEM_CLUSTER_REAL_NODES=$REAL "$here/build.sh"
  mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/etcd"
  exec 9>"$DIR/.lock"
  flock 9 # two `up`s at once (parallel test binaries) start one cluster
  if api_ready && nodes_ready && { [ "$REAL" != 1 ] || node_ready; }; then
    log "already running (API server https://127.0.0.1:$API_PORT)"; return
  fi
  local t0=$SECONDS
  local bind=127.0.0.1 advertise=127.0.0.1 reconciler=none kubelet_client=()
  if [ "$REAL" = 1 ]; then
    # Pods and kube-proxy reach the API server through the kubernetes Service, whose
    # endpoint cannot be a loopback address: advertise the node address (this namespace's
    # own) and listen on it too.
    node_network
    bind=0.0.0.0 advertise=$NODE_IP reconciler=lease
  fi
  pki
  if [ "$REAL" = 1 ]; then
    node_pki
    # The kubelet is reached at its InternalIP (10.250.0.1): its name resolves nowhere.
    kubelet_client=(--kubelet-client-certificate "$DIR/pki/apiserver-kubelet-client.crt"
      --kubelet-client-key "$DIR/pki/apiserver-kubelet-client.key"
      --kubelet-preferred-address-types InternalIP)
  fi
  kubeconfig "$DIR/kubeconfig" admin
  kubeconfig "$DIR/kube-controller-manager.kubeconfig" kube-controller-manager
  kubeconfig "$DIR/kube-scheduler.kubeconfig" kube-scheduler
  kubeconfig "$DIR/kwok.kubeconfig" kwok

  start etcd "$ETCD_BIN/etcd" --name oem-local --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "oem-local=http://127.0.0.1:$ETCD_PEER_PORT" --listen-metrics-urls "" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_for etcd 30 curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

  local p=$DIR/pki
  # Audit only what the operator and webhooks do, so tests can count their writes by user.
  cat > "$DIR/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:oem-hosting-system"]
- level: None
EOF
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$bind" --advertise-address "$advertise" --secure-port "$API_PORT" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --endpoint-reconciler-type "$reconciler" \
    --allow-privileged=false --profiling=false \
    --max-requests-inflight 800 --max-mutating-requests-inflight 400 \
    --audit-policy-file "$DIR/audit-policy.yaml" --audit-log-path "$DIR/logs/audit.log" \
    --audit-log-format json --audit-log-maxsize 200 \
    --cert-dir "$DIR/apiserver-certs" ${kubelet_client[@]+"${kubelet_client[@]}"}
  wait_for kube-apiserver 90 api_ready

  start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --kube-api-qps 200 --kube-api-burst 400 --concurrent-statefulset-syncs 20 \
    --concurrent-deployment-syncs 20 --concurrent-replicaset-syncs 20 --concurrent-namespace-syncs 20 \
    --cert-dir "$DIR/kcm-certs"
  start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --kubeconfig "$DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false \
    --kube-api-qps 200 --kube-api-burst 400 --cert-dir "$DIR/scheduler-certs"
  # kwok's stock stages: nodes Ready with leases, pods Running and Ready, deletions finished.
  local stage
  : > "$DIR/kwok.yaml"
  for stage in "$KWOK_BIN"/stages/*.yaml; do { cat "$stage"; printf -- '---\n'; } >> "$DIR/kwok.yaml"; done
  start kwok "$KWOK_BIN/kwok" --kubeconfig "$DIR/kwok.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --cidr "$POD_CIDR" --server-address "127.0.0.1:$KWOK_PORT" \
    --node-lease-duration-seconds 40 --config "$DIR/kwok.yaml"

  local i
  for i in $(seq 1 "$NODES"); do
    node_manifest "kwok-node-$i" | kubectl apply -f - >/dev/null
  done
  wait_for "kwok nodes" 60 nodes_ready
  storage
  wait_for "default service account" 60 kubectl get serviceaccount default -n default -o name
  if [ "$REAL" = 1 ]; then node_up; fi
  log "up in $((SECONDS - t0)) s: API server https://127.0.0.1:$API_PORT, $NODES kwok nodes$([ "$REAL" = 1 ] && echo " and $NODE_NAME") Ready"
  log "export KUBECONFIG=$DIR/kubeconfig"
}

down() {
  [ -d "$DIR" ] || { log "nothing to stop ($DIR does not exist)"; return; }
  local name i f
  # Processes started beside the cluster (operator, webhooks, test servers) go first...
  for f in "$DIR"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    [[ " ${COMPONENTS[*]} ${NODE_COMPONENTS[*]} " == *" $name "* ]] || stop_pid "$name"
  done
  # ...then the real node (containers, shims, mounts, cgroups, links), if any...
  node_down
  # ...then the control plane in reverse start order: clients, API server, etcd.
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_pid "${COMPONENTS[$i]}"; done
  for name in "${COMPONENTS[@]}"; do stray "$name" all; done
  rm -rf "$DIR"
  log "removed $DIR"
}

status() {
  local name rc=0
  for name in "${COMPONENTS[@]}"; do
    if alive "$name"; then
      printf '%-24s running (pid %s, rss %s KiB)\n' "$name" "$(cat "$DIR/pids/$name.pid")" \
        "$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$DIR/pids/$name.pid")/status")"
    else
      printf '%-24s stopped\n' "$name"; rc=1
    fi
  done
  if [ -d "$DIR/node" ]; then node_status || rc=1; fi
  if api_ready; then
    echo "API server: https://127.0.0.1:$API_PORT ready ($(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null))"
    kubectl get nodes 2>/dev/null || true
  else
    echo "API server: not answering"; rc=1
  fi
  echo "KUBECONFIG=$DIR/kubeconfig"
  return $rc
}

# shellcheck source=node.sh
source "$here/node.sh"
# shellcheck source=ingress.sh
source "$here/ingress.sh"
# shellcheck source=certificates.sh
source "$here/certificates.sh"
# shellcheck source=loadbalancer.sh
source "$here/loadbalancer.sh"

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  ingress-ip) ingress_ip ;;  # the real node's ingress controller's Service address (ingress.sh)
  env)
    extra=""
    if [ "$REAL" = 1 ]; then extra=":$CONTAINERD_BIN:$CRICTL_BIN"; fi
    echo "export KUBECONFIG=$DIR/kubeconfig PATH=$K8S_BIN:$OEM_CACHE/bin/helm-$HELM_VERSION$extra:\$PATH" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
