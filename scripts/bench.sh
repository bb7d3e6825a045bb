#!/usr/bin/env bash
# `make bench`: builds everything first, prints the hosting images' sizes and idle memory, then
# runs the benchmarks inside a network namespace
# with only loopback up: the probe engine against blackbox_exporter (local daemons), then
# provisioning against a control plane of their own. Prints figures; never fails on time.
# Arguments go to bench-provisioning (sizes, default 500 2000: the ratio to the raw floor is
# taken at 500, memory and idle reads at both).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"
bash scripts/install-deps.sh
bash e2e/cluster/build.sh
bash e2e/daemons/install-bench.sh
cargo build --release -p oem-operator -p oem-e2e --bins
# The hosting images: each image's size and each service's idle memory, measured by running it
# (how many end users fit a node).
bash scripts/build-images.sh
bash images/test-images.sh
# 32 fake nodes of 64 CPUs: room for 2,000 end users of a 1-CPU course at once.
export OEM_CLUSTER_DIR=$repo/.cluster/bench OEM_CLUSTER_PORT_BASE=${OEM_BENCH_PORT_BASE:-36000}
export OEM_CLUSTER_NODES=${OEM_CLUSTER_NODES:-32}
[ $# -gt 0 ] || set -- 500 2000
unshare --net -- bash -c '
  set -euo pipefail
  ip link set lo up
  echo "50000 65000" > /proc/sys/net/ipv4/ip_local_port_range  # local ports above the cluster ports
  trap "bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true" EXIT
  bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
  "$CARGO_TARGET_DIR/release/bench-panel"
  "$CARGO_TARGET_DIR/release/bench-probes"
  "$CARGO_TARGET_DIR/release/bench-provisioning" "$@"
' bench "$@"
