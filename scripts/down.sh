#!/usr/bin/env bash
# `make down`: stops what `make up` started, by PID, inside its namespaces (the operator, the
# webhooks, the panel, the forwards, the real node's containers, shims, mounts and cgroups, the control
# plane), removes its state, then ends the namespace holder and deletes the network namespace.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OEM_CLUSTER_DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}
dir=$OEM_CLUSTER_DIR
holder=$(cat "$(holder_pidfile)" 2>/dev/null || true)
made_mount=0
[ -f "$dir/netns-mount-made" ] && made_mount=1
if holder_alive; then
  in_netns bash "$repo/e2e/cluster/cluster.sh" down
else
  # No namespace to enter (never made, or its holder is gone): stop by PID what is recorded.
  bash "$repo/e2e/cluster/cluster.sh" down
fi
if [ -n "$holder" ] && environ_has "$holder" "OEM_UP_HOLDER=$dir"; then
  kill -TERM "$holder" 2>/dev/null || true
  for _ in $(seq 1 20); do running "$holder" || break; sleep 0.1; done
  echo "namespace holder stopped (pid $holder)" >&2
fi
if [ -e "/run/netns/$up_netns" ]; then
  left=$(ip netns pids "$up_netns" 2>/dev/null | tr '\n' ' ')
  if [ -n "${left// /}" ]; then
    echo "warning: processes left in network namespace $up_netns, killed: $left" >&2
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 0.5
  fi
  ip netns del "$up_netns"
  echo "network namespace $up_netns deleted" >&2
fi
# /run/netns became a mount point with `ip netns add`: undone when make up made it and no
# other named namespace is left in it.
if [ "$made_mount" = 1 ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
  umount /run/netns 2>/dev/null || true
fi
