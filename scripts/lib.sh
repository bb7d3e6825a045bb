# Shared by the scripts: where things are, and how to run a process we can stop by PID.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
# Cargo's build folder is kept outside the clone, with the other caches: a fresh clone (CI)
# reuses the compiled dependencies and rebuilds only the workspace's own crates.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$OEM_CACHE/target}
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
