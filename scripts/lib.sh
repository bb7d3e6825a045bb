# Shared by the scripts: where things are, and how to run a process we can stop by PID.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
# Cargo's build folder is the clone's own unless CARGO_TARGET_DIR names one (CI's, outside the
# clone: .ci/run): one folder shared by checkouts used at once lets a build of one overwrite
# the binaries another's tests run (target/debug/<binary> has one name).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
target_dir=$CARGO_TARGET_DIR
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

say() { printf '\n==> %s\n' "$*" >&2; }

# Starts "$@" detached as component $name of the cluster in $OEM_CLUSTER_DIR; cluster.sh down
# stops it by the recorded PID.
start_process() {
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir/pids" "$dir/logs"
  OEM_CLUSTER_DIR=$dir setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
  echo "$name started (pid $!, log $dir/logs/$name.log)" >&2
}

# Is PID $1 a process that has not exited? (A zombie waits until init reaps it, which this
# machine's init does only every few seconds.)
running() {
  local state
  state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Does PID $1's environment hold the line $2? Read whole first: under pipefail, `tr ... |
# grep -q` fails now and then when grep exits before tr has written everything (SIGPIPE).
environ_has() {
  grep -qxF -- "$2" <<<"$(tr '\0' '\n' 2>/dev/null < "/proc/$1/environ")"
}

# Stops component $name of the cluster in $dir (TERM, then KILL after 5 s) if it still runs
# and is ours (its environment names the folder, as start_process sets it).
stop_process() {
  local name=$1 dir=$2 pid
  [ -f "$dir/pids/$name.pid" ] || return 0
  pid=$(cat "$dir/pids/$name.pid")
  if [ -n "$pid" ] && environ_has "$pid" "OEM_CLUSTER_DIR=$dir"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do running "$pid" || break; sleep 0.25; done
    if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pids/$name.pid"
}

# Whether component $name of the cluster in $dir runs (and is ours).
process_alive() {
  local pid
  pid=$(cat "$2/pids/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && environ_has "$pid" "OEM_CLUSTER_DIR=$2"
}

# `make up` runs everything in a named network namespace (`ip netns add`, loopback only) and
# a private mount namespace (the real node's bind mounts), both held by one idle process whose
# PID is recorded; commands enter them with nsenter (not `ip netns exec`, which would remount
# /sys and so hide the cgroup hierarchies the kubelet needs).
up_netns=${OEM_UP_NETNS:-oem-up}

holder_pidfile() { echo "$OEM_CLUSTER_DIR/netns-holder.pid"; }

# Is the recorded holder alive, ours, and in the named network namespace?
holder_alive() {
  local pid
  pid=$(cat "$(holder_pidfile)" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -e "/run/netns/$up_netns" ] || return 1
  environ_has "$pid" "OEM_UP_HOLDER=$OEM_CLUSTER_DIR" || return 1
  [ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" = "$(stat -L -c %i "/run/netns/$up_netns")" ]
}

# Runs "$@" in make up's network and mount namespaces.
in_netns() {
  nsenter --target "$(cat "$(holder_pidfile)")" --net --mount -- "$@"
}
