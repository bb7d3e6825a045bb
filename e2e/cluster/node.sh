# shellcheck shell=bash
# The real node of the local cluster (OEM_CLUSTER_REAL_NODES=1): containerd with runc, a CNI
# bridge, kubelet and kube-proxy, all with their state under $DIR/node. Sourced by cluster.sh,
# which defines here, DIR, BASE, K8S_BIN, log, die, start, stop_pid, alive, wait_for, kubectl,
# issue and kubeconfig.
# shellcheck disable=SC2154
#
# Runs only inside a network namespace of its own (the tests' `unshare --net --mount`): the
# node address 10.250.0.1, the pod bridge (10.244.0.0/24) and the Service routes and rules
# exist in that namespace alone. Cgroups (v1, hybrid, shared with the machine) are never
# mounted or remounted: with cgroupsPerQOS off the kubelet gives pods no cgroup parent, so
# containerd puts each container in /k8s.io/<container id> of every hierarchy; `down` removes
# those of this node's containers once their processes are gone, and /k8s.io if it made it.

NODE_NAME=real-node-1
NODE_IP=10.250.0.1
BRIDGE=oem-cni0
ND=$DIR/node
CGROUP_PARENT=k8s.io
KUBELET_PORT=$((BASE + 250)) KUBELET_HEALTHZ_PORT=$((BASE + 248))
PROXY_METRICS_PORT=$((BASE + 249)) PROXY_HEALTHZ_PORT=$((BASE + 256))
NODE_BIN=$OEM_CACHE/bin/kubernetes-node-$K8S_VERSION
CONTAINERD_BIN=$OEM_CACHE/bin/containerd-$CONTAINERD_VERSION
RUNC_BIN=$OEM_CACHE/bin/runc-$RUNC_VERSION
CNI_BIN=$OEM_CACHE/bin/cni-plugins-$CNI_PLUGINS_VERSION
CRICTL_BIN=$OEM_CACHE/bin/cri-tools-$CRI_TOOLS_VERSION
PAUSE_BIN=$OEM_CACHE/bin/pause-$K8S_VERSION
PAUSE_IMAGE=oem.local/pause:$K8S_VERSION
COREDNS_BIN=$OEM_CACHE/bin/coredns-$COREDNS_VERSION
COREDNS_IMAGE=oem.local/coredns:$COREDNS_VERSION
NODE_COMPONENTS=(containerd kubelet kube-proxy)
# Fixed host paths the node's programs write to (shim sockets, the CNI result cache, the
# kubelet's container log links and device-plugin socket): in this private mount namespace
# each is a bind mount of a folder under $ND, so nothing lands on the machine's file systems.
# A mount point the node had to create holds a marker, hidden under the bind mount; `down`
# removes such a folder once no other mount namespace (another real-node cluster) uses it.
HOST_DIRS=(/run/containerd /var/lib/cni /var/log/containers /var/lib/kubelet)

quiet() { "$@" >/dev/null 2>&1; }
ctr_() { "$CONTAINERD_BIN/ctr" --address "$ND/containerd.sock" -n k8s.io "$@"; }
crictl_() { "$CRICTL_BIN/crictl" --runtime-endpoint "unix://$ND/containerd.sock" --timeout 10s "$@"; }

# Whether this process's namespace of kind $1 (mnt, net) differs from one of its ancestors':
# true under `unshare`, false in the machine's own (whose PID 1 may not be readable).
in_own_namespace() {
  local mine pid=$$ ns
  mine=$(readlink "/proc/$$/ns/$1") || return 1
  for _ in $(seq 1 64); do
    pid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    ns=$(readlink "/proc/$pid/ns/$1" 2>/dev/null) || continue
    [ "$ns" != "$mine" ] && return 0
  done
  return 1
}

# Refuses the host's network namespace: one with a default route is not a test namespace.
node_netns_check() {
  if [ -n "$(ip route show default 2>/dev/null || true)$(ip -6 route show default 2>/dev/null || true)" ] \
     || ! in_own_namespace net; then
    die "a real node runs only in a network namespace of its own (this one is the machine's or has a default route); use: unshare --net --mount -- bash -c 'ip link set lo up; OEM_CLUSTER_REAL_NODES=1 $0 up'"
  fi
  if ! in_own_namespace mnt; then
    die "a real node runs only in a mount namespace of its own (its mounts must not reach the host's); use unshare --net --mount"
  fi
  if awk '$5 == "/" && / shared:/ {found=1} END {exit !found}' /proc/self/mountinfo; then
    die "this mount namespace shares its mounts with the machine's; use unshare --mount --propagation private"
  fi
  # The pod bridge's alias names the cluster that owns it: one real node per namespace.
  local owner
  owner=$(ip -d link show "$BRIDGE" 2>/dev/null | sed -n 's/^ *alias //p' || true)
  if [ -n "$owner" ] && [ "$owner" != "$DIR" ]; then
    die "this network namespace already has a real node (cluster $owner): one per namespace"
  fi
}

node_network() {
  ip link set lo up
  # The node address sits on loopback (this namespace's own); the pod bridge is made here, not
  # by the CNI plugin, so that it carries the owner's name from the start.
  ip addr replace "$NODE_IP/32" dev lo
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip link set "$BRIDGE" alias "$DIR"
  ip link set "$BRIDGE" up
  # Locally sent packets to a ClusterIP need a route before kube-proxy's DNAT rewrites them
  # (then they are routed again, to the bridge); their source is the node address.
  ip route replace "$SERVICE_CIDR" dev lo src "$NODE_IP"
  sysctl -qw net.ipv4.ip_forward=1
  # Replies between pods on the bridge must pass conntrack to undo a Service's DNAT.
  if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    sysctl -qw net.bridge.bridge-nf-call-iptables=1
  fi
}

node_pki() {
  local p=$DIR/pki
  [ -f "$p/$NODE_NAME.crt" ] && return
  issue "$NODE_NAME" "/O=system:nodes/CN=system:node:$NODE_NAME" "subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME
extendedKeyUsage=clientAuth,serverAuth"
  issue kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
  # What the API server shows the kubelet (logs, exec, port-forward).
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  chmod 600 "$p"/*.key
}

node_config() {
  mkdir -p "$ND/cni/net.d" "$ND/cni/ipam" "$ND/cni/cache" "$ND/kubelet" "$ND/pod-logs" "$ND/volume-plugins" "$ND/images"
  local node_pod_cidr gateway
  node_pod_cidr=$(python3 -c "import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).subnets(new_prefix=24)))" "$POD_CIDR")
  gateway=$(python3 -c "import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))" "$node_pod_cidr")
  cat > "$ND/cni/net.d/10-oem.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "oem-pods",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$ND/cni/ipam",
        "ranges": [[{"subnet": "$node_pod_cidr", "gateway": "$gateway"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  ]
}
JSON
  cat > "$ND/containerd.toml" <<TOML
version = 3
root = "$ND/containerd"
state = "$ND/containerd-state"
temp = "$ND/containerd-tmp"
oom_score = 0
# NRI would open a socket under /var/run; tracing and the opt dir are not needed.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$ND/containerd.sock"
[ttrpc]
  address = "$ND/containerd.sock.ttrpc"
[debug]
  level = "info"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE_IMAGE"

[plugins.'io.containerd.cri.v1.runtime']
  # The machine withholds CAP_SYS_RESOURCE: a negative oom_score_adj would be refused.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      BinaryName = "$RUNC_BIN/runc"
      Root = "$ND/runc"
      SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["$CNI_BIN"]
    conf_dir = "$ND/cni/net.d"
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
  kubeconfig "$ND/kubelet.kubeconfig" "$NODE_NAME"
  kubeconfig "$ND/kube-proxy.kubeconfig" kube-proxy
  # Pods resolve cluster names through CoreDNS (clusterDNS); "Default" pods get no host
  # resolver (the host's name servers are outside this namespace).
  printf 'nameserver 127.0.0.1\noptions ndots:1\n' > "$ND/resolv.conf"
  local dns_ip
  dns_ip=$(dns_ip)
  cat > "$ND/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The machine's cgroups are v1 (hybrid) and belong to the machine: cgroupfs driver, no QoS
# hierarchy, no node allocatable enforcement (containers land in /k8s.io/<id>).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
containerRuntimeEndpoint: unix://$ND/containerd.sock
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $DIR/pki/$NODE_NAME.crt
tlsPrivateKeyFile: $DIR/pki/$NODE_NAME.key
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
resolvConf: $ND/resolv.conf
podLogsDir: $ND/pod-logs
volumePluginDir: $ND/volume-plugins
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
maxPods: 110
syncFrequency: 10s
nodeStatusUpdateFrequency: 10s
YAML
  cat > "$ND/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $ND/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false, syncPeriod: 10s, minSyncPeriod: 0s}
# This namespace's conntrack limits and timeouts are left as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

node_host_dirs() {
  local d src
  for d in "${HOST_DIRS[@]}"; do
    src=$ND/host${d//\//_}
    mkdir -p "$src"
    awk -v d="$d" '$5 == d {found=1} END {exit !found}' /proc/self/mountinfo && continue
    if [ ! -d "$d" ]; then mkdir -p "$d"; touch "$d/.oem-real-node-mount-point"; fi
    mount --bind "$src" "$d"
    echo "$d" >> "$ND/host-mounts"
  done
}

dns_ip() { # the tenth address of the Service range, as kubeadm gives kube-dns
  python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[10])" "$SERVICE_CIDR"
}

dns_ready() {
  local n
  n=$(kubectl -n kube-system get deployment coredns -o jsonpath='{.status.availableReplicas}' 2>/dev/null) || return 1
  [ "${n:-0}" -ge 1 ]
}

# Cluster DNS: CoreDNS (built by build-node.sh) as a restricted pod on the real node, behind
# the kube-dns Service; it answers for cluster.local only (no upstream: there is no network).
node_dns() {
  if [ ! -f "$ND/images/coredns.tar" ]; then
    python3 "$here/oci-image.py" --name "$COREDNS_IMAGE" --out "$ND/images/coredns.tar" \
      --file "$COREDNS_BIN/coredns:/coredns:0755" --entrypoint '["/coredns"]' --user 10001:10001 >/dev/null
  fi
  ctr_ images import "$ND/images/coredns.tar" >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        prometheus :9153
        cache 30
        reload
    }
    # Every name of the site zones points at the front door, as a domain's A record does
    # (certificates.sh): what the ACME server validates and clients in the cluster reach.
    $(for z in $SITE_ZONES; do printf '%s:53 ' "$z"; done){
        errors
        template IN A {
            answer "{{ .Name }} 60 IN A $(ingress_ip)"
        }
        template IN ANY {
            rcode NOERROR
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      nodeSelector: {type: real}
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        resources: {limits: {memory: 128Mi}, requests: {cpu: 50m, memory: 32Mi}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $(dns_ip)
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
YAML
  wait_for "CoreDNS" 90 dns_ready
}

mounted_elsewhere() { # is $1 a mount point in another mount namespace?
  local mine seen=" " d ns
  mine=$(readlink /proc/self/ns/mnt)
  for d in /proc/[0-9]*; do
    ns=$(readlink "$d/ns/mnt" 2>/dev/null) || continue
    [ "$ns" = "$mine" ] && continue
    [[ "$seen" == *" $ns "* ]] && continue
    seen+="$ns "
    awk -v m="$1" '$5 == m {found=1} END {exit !found}' "$d/mountinfo" 2>/dev/null && return 0
  done
  return 1
}

node_ready() {
  local s
  s=$(kubectl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) || return 1
  [ "$s" = True ]
}

node_up() {
  local t0=$SECONDS
  node_netns_check
  mkdir -p "$ND"
  node_network
  node_pki
  node_config
  node_host_dirs
  # Which /k8s.io cgroups existed before the node started: `down` removes only what it made.
  if [ ! -f "$ND/cgroups-before" ]; then
    find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "$CGROUP_PARENT" > "$ND/cgroups-before" 2>/dev/null || true
  fi
  # containerd finds its shim on PATH; the shim finds runc by the configured BinaryName.
  start containerd env "PATH=$CONTAINERD_BIN:$RUNC_BIN:/usr/sbin:/usr/bin:/sbin:/bin" \
    "OEM_CLUSTER_DIR=$DIR" "$CONTAINERD_BIN/containerd" --config "$ND/containerd.toml"
  wait_for containerd 30 quiet ctr_ version
  if [ ! -f "$ND/images/pause.tar" ]; then
    python3 "$here/oci-image.py" --name "$PAUSE_IMAGE" --out "$ND/images/pause.tar" \
      --file "$PAUSE_BIN/pause:/pause:0755" --entrypoint '["/pause"]' --user 65535:65535 >/dev/null
  fi
  ctr_ images import "$ND/images/pause.tar" >/dev/null
  ctr_ images label "$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
  log "containerd ready, sandbox image $PAUSE_IMAGE imported"

  start kubelet env "PATH=$CNI_BIN:/usr/sbin:/usr/bin:/sbin:/bin" "OEM_CLUSTER_DIR=$DIR" \
    "$NODE_BIN/kubelet" --config "$ND/kubelet.yaml" --kubeconfig "$ND/kubelet.kubeconfig" \
    --root-dir "$ND/kubelet" --cert-dir "$ND/kubelet-pki" --hostname-override "$NODE_NAME" \
    --node-ip "$NODE_IP" --node-labels "type=real,oem.dev/hosting-node=true" --v 1
  wait_for "real node $NODE_NAME" 90 node_ready
  start kube-proxy env "PATH=/usr/sbin:/usr/bin:/sbin:/bin" "OEM_CLUSTER_DIR=$DIR" \
    "$NODE_BIN/kube-proxy" --config "$ND/kube-proxy.yaml" --v 1
  wait_for kube-proxy 60 quiet curl -fsS --max-time 2 "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
  node_dns
  node_ingress
  node_certificates
  node_loadbalancer
  log "real node $NODE_NAME Ready in $((SECONDS - t0)) s (node IP $NODE_IP, pods $POD_CIDR, services $SERVICE_CIDR, DNS $(dns_ip), ingress $(ingress_ip))"
}

# Every PID whose command line names this node's folder (ours: containerd, shims, kubelet).
node_pids() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = $$ ] && continue
    names "$pid" cmdline "$ND/" && echo "$pid"
  done
  return 0
}

# The IDs of the sandboxes and containers this node's containerd logged making.
logged_ids() {
  grep -oE '(sandbox|container) id [\\"]*[0-9a-f]{64}' "$DIR/logs/containerd.log" 2>/dev/null |
    grep -oE '[0-9a-f]{64}$' || true
}

# The cgroups of this node's containers (IDs recorded in $ND/container-ids), in every hierarchy.
node_cgroups() {
  local id dir
  [ -f "$ND/container-ids" ] || return 0
  while IFS= read -r id; do
    [ -n "$id" ] || continue
    for dir in /sys/fs/cgroup/*/"$CGROUP_PARENT/$id"; do [ -d "$dir" ] && echo "$dir"; done
  done < "$ND/container-ids"
  return 0
}

# PIDs in the node's container cgroups (whatever their PID namespace).
cgroup_pids() {
  local dir
  node_cgroups | while IFS= read -r dir; do
    find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
  return 0
}

node_down() {
  [ -d "$ND" ] || return 0
  local pid i f here_ns=0
  # Network clean-up only in the node's own namespace (its bridge's alias names this cluster):
  # a `down` run elsewhere (a stale folder, the machine's namespace) must not touch that
  # namespace's tables, links or addresses; the node's namespace goes with its processes.
  if [ "$(ip -d link show "$BRIDGE" 2>/dev/null | sed -n 's/^ *alias //p' || true)" = "$DIR" ]; then here_ns=1; fi
  stop_pid kube-proxy
  # kube-proxy's rules live in this namespace's tables; --cleanup removes exactly its chains.
  if [ "$here_ns" = 1 ] && [ -x "$NODE_BIN/kube-proxy" ]; then
    "$NODE_BIN/kube-proxy" --cleanup --config "$ND/kube-proxy.yaml" >/dev/null 2>&1 || true
  fi
  stop_pid kubelet
  # This node's containers: those containerd lists now, and every sandbox and container its
  # log says it made (one whose task was deleted while its cgroup could not be removed yet is
  # in neither containerd's list nor runc's state, and its cgroup would stay).
  {
    cat "$ND/container-ids" 2>/dev/null
    if alive containerd; then ctr_ containers ls -q 2>/dev/null; fi
    logged_ids
  } | sort -u > "$ND/container-ids.new" || true
  mv "$ND/container-ids.new" "$ND/container-ids"
  # Every pod sandbox stopped and removed through the CRI: containers killed, CNI DEL run
  # (veth, address, portmap rules), the sandbox's network namespace unmounted.
  if alive containerd; then
    crictl_ rmp --all --force >/dev/null 2>&1 || true
    # Anything the CRI left: kill tasks (SIGKILL, containers in their own PID namespace ignore
    # SIGTERM) and delete them and their containers.
    for i in $(ctr_ tasks ls -q 2>/dev/null); do
      ctr_ tasks kill -s SIGKILL "$i" >/dev/null 2>&1 || true
    done
    for i in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$i" >/dev/null 2>&1 || true; done
    for i in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$i" >/dev/null 2>&1 || true; done
  fi
  stop_pid containerd
  # Containers containerd could not remove (it died, or a task was stuck): runc's own state
  # names them; `runc delete --force` kills each container's init (so its PID namespace) and
  # removes its cgroups.
  local runc_root=$ND/runc/k8s.io
  if [ -d "$runc_root" ]; then
    for i in "$runc_root"/*/; do
      [ -d "$i" ] || continue
      i=$(basename "$i")
      echo "$i" >> "$ND/container-ids"
      "$RUNC_BIN/runc" --root "$runc_root" delete --force "$i" >/dev/null 2>&1 || true
    done
  fi
  # Shims and container processes that outlived containerd: KILL by identity (our socket or
  # folder in their command line, or a process in our cgroups), never by name.
  for i in 1 2 3 4 5; do
    pid=$( { node_pids; cgroup_pids; } | sort -u | tr '\n' ' ')
    [ -n "${pid// /}" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pid 2>/dev/null || true
    sleep 0.5
  done
  # Mounts under the node's folder (overlay rootfs, shm, netns bind mounts, the kubelet's
  # rshared root and pod volumes), deepest first.
  for i in 1 2 3; do
    f=$(awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ -n "$f" ] || break
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <<<"$f"
  done
  # The host paths bind-mounted for the node, and the mount points it had to create.
  if [ -f "$ND/host-mounts" ]; then
    while IFS= read -r f; do umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true; done < "$ND/host-mounts"
  fi
  for f in "${HOST_DIRS[@]}"; do
    [ -f "$f/.oem-real-node-mount-point" ] || continue
    if mounted_elsewhere "$f"; then log "$f: another real node still uses it, kept"; continue; fi
    rm -f "$f/.oem-real-node-mount-point"
    rmdir "$f" 2>/dev/null || log "warning: $f is not empty, kept"
  done
  # The cgroups of this node's containers, bottom up, then /k8s.io where this node made it
  # and nothing else lives in it.
  local dir
  while IFS= read -r dir; do
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$dir" ] && log "warning: could not remove cgroup $dir"
  done < <(node_cgroups)
  for dir in /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
    [ -d "$dir" ] || continue
    grep -qxF "$dir" "$ND/cgroups-before" 2>/dev/null && continue
    rmdir "$dir" 2>/dev/null || log "note: $dir holds other containers, kept"
  done
  # The node's bridges, address and route.
  if [ "$here_ns" = 1 ]; then
    loadbalancer_down
    ip link del "$BRIDGE" 2>/dev/null || true
    ip route del "$SERVICE_CIDR" dev lo 2>/dev/null || true
    ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  fi
  log "real node $NODE_NAME stopped: no process, mount or cgroup left"
}

node_status() {
  local name
  for name in "${NODE_COMPONENTS[@]}"; do
    if alive "$name"; then
      printf '%-24s running (pid %s)\n' "$name" "$(cat "$DIR/pids/$name.pid")"
    else
      printf '%-24s stopped\n' "$name"; return 1
    fi
  done
  crictl_ pods 2>/dev/null || true
}
