#!/usr/bin/env bash
# `make down`: stops what `make up` started, by PID, and removes its state.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OEM_CLUSTER_DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}
bash "$repo/e2e/cluster/cluster.sh" down
