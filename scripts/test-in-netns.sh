#!/usr/bin/env bash
# Runs inside `unshare --net --mount`: brings loopback up, runs the test suite offline, and
# stops the local control planes the tests started (the shared kwok cluster, the real-node
# cluster of e2e/tests/real_node.rs and the `make up` of e2e/tests/make_up.rs), whatever the outcome.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"
ip link set lo up
# Names resolve through the real node's cluster DNS (when one runs here) and ping may use an
# unprivileged ICMP socket, as in the operator's pod on a real cluster.
bash scripts/netns-cluster-dns.sh
cleanup() {
  bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
  OEM_CLUSTER_DIR=${OEM_REAL_CLUSTER_DIR:-$repo/.cluster/real} bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
  # e2e/tests/make_up.rs: `make up` in a network namespace of its own, made from this one.
  OEM_CLUSTER_DIR=$repo/.cluster/up-test OEM_UP_NETNS=oem-up-test bash scripts/down.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT
# Fresh state: a previous run's folder would name processes of another network namespace.
cleanup
cargo test --workspace --offline "$@" -- --nocapture 2>&1
