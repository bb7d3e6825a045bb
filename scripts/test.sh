#!/usr/bin/env bash
# `make test`: everything CI checks. Installs what the tests need (Go-built control plane,
# Debian packages for the test daemons), checks format and lints, builds every test, then runs
# them inside a network namespace of their own with only loopback up, so no test can reach
# anything but 127.0.0.0/8 and ::1.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$repo"
t0=$SECONDS

say "installing what the tests need"
bash scripts/install-deps.sh
bash e2e/cluster/build.sh
if [ -x e2e/daemons/install.sh ]; then bash e2e/daemons/install.sh; fi

say "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

say "building every test and binary"
cargo test --workspace --no-run
# The end-to-end tests run the operator, webhooks and helper binaries as processes: build
# every binary, not only those of packages with integration tests.
cargo build --workspace --bins

say "running the tests in a network namespace with only loopback"
export OEM_CLUSTER_DIR=$repo/.cluster/test
export OEM_CLUSTER_PORT_BASE=${OEM_TEST_PORT_BASE:-26000}
unshare --net -- bash scripts/test-in-netns.sh "$@"
say "all tests passed in $((SECONDS - t0)) s"
