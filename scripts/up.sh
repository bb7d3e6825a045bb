#!/usr/bin/env bash
# `make up`: the local control plane with the operator running against it and the examples
# applied, on the embedded defaults (no Prometheus needed). Safe to run twice.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OEM_CLUSTER_DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}

say "control plane"
bash "$repo/e2e/cluster/cluster.sh" up
eval "$(bash "$repo/e2e/cluster/cluster.sh" env)"

say "building the operator"
cargo build -p oem-operator --bin oem-operator

if compgen -G "$repo/crds/yaml/*.yaml" >/dev/null; then
  say "installing the CRDs"
  kubectl apply --server-side --field-manager oem-hosting-setup -f "$repo/crds/yaml/"
  kubectl wait --for condition=Established --timeout 60s -f "$repo/crds/yaml/"
fi

say "operator"
pidfile=$OEM_CLUSTER_DIR/pids/operator.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -TERM "$(cat "$pidfile")" && sleep 1 # restart on the freshly built binary
fi
OEM_HTTP_ADDR=127.0.0.1:18080 start_process operator "$OEM_CLUSTER_DIR" "$target_dir/debug/oem-operator"
for _ in $(seq 1 60); do
  curl -fsS --max-time 2 http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 2 http://127.0.0.1:18080/readyz >/dev/null || {
  tail -20 "$OEM_CLUSTER_DIR/logs/operator.log" >&2; echo "the operator did not become ready" >&2; exit 1; }

if compgen -G "$repo/examples/*.yaml" >/dev/null && compgen -G "$repo/crds/yaml/*.yaml" >/dev/null; then
  say "examples"
  kubectl apply --server-side --field-manager oem-hosting-examples -f "$repo/examples/"
fi

say "ready"
cat <<TXT
  export KUBECONFIG=$OEM_CLUSTER_DIR/kubeconfig
  kubectl get nodes; kubectl get hosting -A
  operator: http://127.0.0.1:18080/metrics, log $OEM_CLUSTER_DIR/logs/operator.log
  stop everything: make down
TXT
