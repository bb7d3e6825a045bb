#!/usr/bin/env bash
# Runs inside `unshare --net --mount`: brings loopback up, runs the test suite offline (the
# real-node tests and the rest side by side, or the tests its arguments select), and stops the
# local control planes the tests started (the shared kwok cluster, the real-node cluster of the
# *_real.rs and real_node.rs tests, node_outage.rs's and the `make up` of e2e/tests/make_up.rs), whatever the
# outcome. A failure's own messages are repeated at the end, where a CI page shows them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"
ip link set lo up
# The local clusters listen on fixed ports (their bases, 16000 to 48999); outgoing connections
# here take their local ports above those, so a client never holds a cluster's port first (a
# kube-proxy once found 127.0.0.1:46256 taken and never became ready).
echo "50000 65000" > /proc/sys/net/ipv4/ip_local_port_range
# Names resolve through the real node's cluster DNS (when one runs here) and ping may use an
# unprivileged ICMP socket, as in the operator's pod on a real cluster.
bash scripts/netns-cluster-dns.sh
cleanup() {
  bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
  OEM_CLUSTER_DIR=${OEM_REAL_CLUSTER_DIR:-$repo/.cluster/real} bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
  # e2e/tests/node_outage.rs: a control plane of its own, one node to take away.
  OEM_CLUSTER_DIR=$repo/.cluster/node-outage bash e2e/cluster/cluster.sh down >/dev/null 2>&1 || true
  # e2e/tests/make_up.rs: `make up` in a network namespace of its own, made from this one.
  OEM_CLUSTER_DIR=$repo/.cluster/up-test OEM_UP_NETNS=oem-up-test bash scripts/down.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT
# Fresh state: a previous run's folder would name processes of another network namespace.
cleanup
# Backtraces bury the failure: an e2e test's error (anyhow) says what it waited for and saw.
export RUST_BACKTRACE=${OEM_TEST_BACKTRACE:-0} RUST_LIB_BACKTRACE=${OEM_TEST_BACKTRACE:-0}
logs=$(mktemp -d /tmp/oem-test.XXXXXX)
# Arguments (e.g. `-p oem-e2e --test quota`) run just those tests, in one group.
selected() { cargo test --workspace --offline --no-fail-fast "$@" -- --nocapture; }
# Without arguments, two groups side by side: the real-node tests (a real kubelet and
# containerd run the project's images; mostly waiting for pods and daemons) and everything else
# (unit tests and the kwok cluster's end-to-end tests). They share no cluster, folder, port or
# address.
# Every group names --workspace: cargo unifies features over the packages it selects, so a
# narrower selection would compile the dependencies again, differently.
real_tests=() other_tests=()
for file in */tests/*.rs; do
  name=$(basename "$file" .rs)
  case $name in
    *_real|real_node|make_up) real_tests+=(--test "$name") ;;
    *) other_tests+=(--test "$name") ;;
  esac
done
real() { cargo test --workspace --offline --no-fail-fast "${real_tests[@]}" -- --nocapture; }
other() {
  local status=0
  cargo test --workspace --offline --no-fail-fast --lib --bins "${other_tests[@]}" -- --nocapture ||
    status=$?
  cargo test --workspace --offline --doc || status=$?
  return "$status"
}
if [ $# -gt 0 ]; then groups=(selected); else groups=(real other); fi
declare -A pid_of=()
for group in "${groups[@]}"; do
  # Each streams here as it runs, every line marked with its group.
  { "$group" "$@" 2>&1 && status=0 || status=$?; echo "exit $status" >"$logs/$group.status"; } |
    sed -u "s/^/[$group] /" | tee "$logs/$group.log" &
  pid_of[$group]=$!
done
failed=()
for group in "${groups[@]}"; do
  wait "${pid_of[$group]}" || true
  [ "$(cat "$logs/$group.status" 2>/dev/null)" = "exit 0" ] || failed+=("$group")
done
if [ ${#failed[@]} -gt 0 ]; then
  # The last lines are what a CI page shows: repeat each failure's own words there.
  say "failed: ${failed[*]}; the failures' messages (whole output: $logs)"
  for group in "${failed[@]}"; do
    grep -E -A8 "^\[$group\] (Error: |thread .* panicked at )" "$logs/$group.log" | cut -c1-400 |
      tail -80 >&2 || true
    grep -E "^\[$group\] (test .* \.\.\. FAILED|error: test failed)" "$logs/$group.log" >&2 || true
  done
  exit 1
fi
rm -rf "$logs"
