#!/usr/bin/env bash
# Makes the tests' private network and mount namespace look to the programs in it (the tests and
# the operator they start as a host process) like a pod of the operator's namespace on a real
# cluster: names resolve through the cluster DNS, and ping may use an unprivileged ICMP socket.
#
#  - /etc/resolv.conf (a bind mount, in this mount namespace only) names kube-dns's ClusterIP
#    (10.96.0.10, the tenth address of the real node's Service range, e2e/cluster/node.sh) with
#    the search list and ndots a pod of `oem-hosting-system` gets from the kubelet
#    (clusterDomain cluster.local), so the monitor's `web.<hosting namespace>.svc` resolves to
#    the Service while a real node runs here. kube-proxy's rules DNAT the ClusterIP for traffic
#    of the namespace itself (cluster.sh routes the Service range to the node's link). Without a
#    real node nothing routes there: a lookup fails at once ("network unreachable"). localhost
#    is answered by /etc/hosts, and addresses are never looked up.
#  - net.ipv4.ping_group_range covers every group, as containerd 2.x sets it in pod network
#    namespaces (enable_unprivileged_icmp), so the monitor's ping uses an unprivileged ICMP
#    socket as it does in the operator's pod.
#
# Runs only in a mount and network namespace of its own (never the machine's): scripts/
# test-in-netns.sh sources it; by hand, run it first inside `unshare --net --mount
# --propagation private`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ] ||
  [ "$(readlink /proc/self/ns/net)" = "$(readlink /proc/1/ns/net)" ]; then
  echo "netns-cluster-dns.sh: not in a network and mount namespace of its own; refusing" >&2
  exit 1
fi

dir=${OEM_NETNS_DIR:-$repo/.cluster/netns}
mkdir -p "$dir"
cat > "$dir/resolv.conf" <<'EOF'
# The tests' network namespace: cluster DNS of the real node (kube-dns), as in a pod of
# oem-hosting-system (scripts/netns-cluster-dns.sh).
search oem-hosting-system.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
EOF
# Once per namespace: a second run only rewrites the file under the existing bind mount.
if ! grep -q '^nameserver 10.96.0.10$' /etc/resolv.conf; then
  mount --bind "$dir/resolv.conf" /etc/resolv.conf
fi
sysctl -qw net.ipv4.ping_group_range="0 2147483647"
