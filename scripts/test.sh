#!/usr/bin/env bash
# `make test`: everything CI checks. Installs what the tests need (Go-built control plane,
# Debian packages for the test daemons), checks format and lints, builds every test, then runs
# them inside a network namespace of their own with only loopback up, so no test can reach
# anything but 127.0.0.0/8 and ::1 (and the real node's pod and Service addresses, which
# exist in that namespace alone).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"
t0=$SECONDS

say "installing what the tests need"
bash scripts/install-deps.sh
# The hosting images (Debian packages: mostly downloads and dpkg) build in the background while
# the Go and Rust compilers keep both cores busy; on a warm cache this is a second's check.
hosting_images=(web-php8.2 web-php8.4 mariadb postgresql ftp mail)
images_log=$(mktemp /tmp/oem-images.XXXXXX.log)
bash scripts/build-images.sh "${hosting_images[@]}" >"$images_log" 2>&1 &
images_pid=$!
# The control plane and the real node's binaries (kubelet, containerd, runc, CNI plugins):
# e2e/tests/real_node.rs runs a real node.
OEM_CLUSTER_REAL_NODES=1 bash e2e/cluster/build.sh
if [ -x e2e/daemons/install.sh ]; then bash e2e/daemons/install.sh; fi
# The hosting images, from Debian packages (cached by content: the tests only import them, as
# the test namespace reaches no package mirror), then each run for real without Kubernetes: its
# daemons as uid 10001 with no capabilities, serving their protocols.
if ! wait "$images_pid"; then
  tail -40 "$images_log" >&2
  printf 'building the hosting images failed (log %s)\n' "$images_log" >&2
  exit 1
fi
cat "$images_log" >&2
rm -f "$images_log"
bash images/test-images.sh

say "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

say "building every test and binary"
cargo test --workspace --no-run
# The end-to-end tests run the operator, webhooks and helper binaries as processes: build
# every binary, not only those of packages with integration tests.
cargo build --workspace --bins
# The operator's, webhooks' and panel's images take these debug binaries (stripped; a
# provider's build-images.sh run takes release ones): one compilation of the tree, not two.
OEM_PROGRAM_PROFILE=${OEM_PROGRAM_PROFILE:-dev} bash scripts/build-images.sh operator webhooks panel

say "running the tests in a network and mount namespace with only loopback"
export OEM_CLUSTER_DIR=$repo/.cluster/test
export OEM_CLUSTER_PORT_BASE=${OEM_TEST_PORT_BASE:-26000}
# A mount namespace of its own too: the real node's kubelet and containerd mount pod volumes,
# root filesystems and network namespaces, which must never reach the machine's.
unshare --net --mount --propagation private -- bash scripts/test-in-netns.sh "$@"
say "all tests passed in $((SECONDS - t0)) s"
