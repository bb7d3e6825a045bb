#!/usr/bin/env bash
# `make up`: the local control plane with the CRDs, the operator (under its least-privilege
# ServiceAccount) and the examples running, on the embedded defaults (no Prometheus needed).
# Safe to run twice: what runs is kept, the operator is restarted on a fresh build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OEM_CLUSTER_DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}
http_addr=${OEM_HTTP_ADDR:-127.0.0.1:18080}

say "control plane"
bash "$repo/e2e/cluster/cluster.sh" up
eval "$(bash "$repo/e2e/cluster/cluster.sh" env)"

say "building the operator"
cargo build -p oem-operator --bin oem-operator

say "CRDs and RBAC"
kubectl apply --server-side --force-conflicts --field-manager oem-hosting-setup -f "$repo/crds/yaml/"
kubectl wait --for condition=Established --timeout 60s -f "$repo/crds/yaml/"
kubectl apply --server-side --force-conflicts --field-manager oem-hosting-setup \
  -f "$repo/charts/oem-hosting/files/operator-clusterrole.yaml" \
  -f "$repo/charts/oem-hosting/files/reseller-clusterroles.yaml"
kubectl apply --server-side --field-manager oem-hosting-setup -f - <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: oem-hosting-system}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: oem-operator, namespace: oem-hosting-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: oem-hosting-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: oem-hosting-operator}
subjects: [{kind: ServiceAccount, name: oem-operator, namespace: oem-hosting-system}]
YAML
token=$(kubectl create token oem-operator -n oem-hosting-system --duration 24h)
operator_kubeconfig=$OEM_CLUSTER_DIR/operator.kubeconfig
kubectl config view --raw --minify --flatten -o json | python3 -c '
import json, sys
cfg = json.load(sys.stdin)
cfg["users"] = [{"name": "oem-operator", "user": {"token": sys.argv[1]}}]
cfg["contexts"][0]["context"]["user"] = "oem-operator"
json.dump(cfg, sys.stdout)' "$token" > "$operator_kubeconfig"
chmod 600 "$operator_kubeconfig"

say "operator"
pidfile=$OEM_CLUSTER_DIR/pids/operator.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -TERM "$(cat "$pidfile")"
  for _ in $(seq 1 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
fi
KUBECONFIG=$operator_kubeconfig OEM_HTTP_ADDR=$http_addr OEM_MONITOR_NAMESPACE=oem-hosting-system \
  start_process operator "$OEM_CLUSTER_DIR" "$target_dir/debug/oem-operator"
for _ in $(seq 1 60); do
  curl -fsS --max-time 2 "http://$http_addr/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 2 "http://$http_addr/readyz" >/dev/null || {
  tail -20 "$OEM_CLUSTER_DIR/logs/operator.log" >&2; echo "the operator did not become ready" >&2; exit 1; }

say "examples"
# Resellers first: the operator creates the namespaces the courses and end users live in.
resellers=$(grep -l '^kind: Reseller' "$repo"/examples/*.yaml)
others=$(grep -L '^kind: Reseller' "$repo"/examples/*.yaml)
for f in $resellers; do kubectl apply --server-side --field-manager oem-hosting-examples -f "$f"; done
for ns in $(kubectl get resellers -o jsonpath='{range .items[*]}reseller-{.metadata.name}{"\n"}{end}'); do
  for _ in $(seq 1 60); do kubectl get namespace "$ns" >/dev/null 2>&1 && break; sleep 0.5; done
done
for f in $others; do kubectl apply --server-side --field-manager oem-hosting-examples -f "$f"; done

say "ready"
cat <<TXT
  export KUBECONFIG=$OEM_CLUSTER_DIR/kubeconfig PATH=$(dirname "$(command -v kubectl)"):\$PATH
  kubectl get hosting -A          # resellers, courses, end users, incidents
  operator: http://$http_addr/metrics, log $OEM_CLUSTER_DIR/logs/operator.log
  stop everything: make down
TXT
