#!/usr/bin/env bash
# The part of `make up` that runs inside its network and mount namespaces (scripts/up.sh
# enters them): the cluster with its real node, the project's images imported into the node,
# the operator, the admission webhooks and the end users' panel as processes under their
# ServiceAccounts, the examples, the example site uploaded over FTPS, and the namespace's side
# of the forwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
: "${OEM_CLUSTER_DIR:?}"
dir=$OEM_CLUSTER_DIR
base=${OEM_CLUSTER_PORT_BASE:-16000}
api_port=$((base + 443))
metrics_port=${OEM_METRICS_PORT:-18080}
webhooks_port=${OEM_WEBHOOKS_PORT:-18443}
panel_port=${OEM_PANEL_PORT:-18082}
system_ns=oem-hosting-system
example_ns=reseller-sakura-web example_user=tanaka-shoten

say "control plane and real node"
OEM_CLUSTER_REAL_NODES=1 bash "$repo/e2e/cluster/cluster.sh" up
eval "$(bash "$repo/e2e/cluster/cluster.sh" env)"
apply() { kubectl apply --server-side --force-conflicts --field-manager oem-hosting-setup "$@"; }

say "the project's images into the node"
t=$SECONDS
bash "$repo/scripts/build-images.sh" --import "$dir/node/containerd.sock" >"$dir/logs/images.log" 2>&1 ||
  { tail -20 "$dir/logs/images.log" >&2; exit 1; }
echo "imported in $((SECONDS - t)) s (log $dir/logs/images.log)" >&2

say "CRDs and RBAC"
apply -f "$repo/crds/yaml/" >/dev/null
kubectl wait --for condition=Established --timeout 60s -f "$repo/crds/yaml/" >/dev/null
apply -f "$repo/charts/oem-hosting/files/operator-clusterrole.yaml" \
  -f "$repo/charts/oem-hosting/files/reseller-clusterroles.yaml" \
  -f "$repo/charts/oem-hosting/files/webhooks-clusterrole.yaml" \
  -f "$repo/charts/oem-hosting/files/panel-clusterrole.yaml"
# A ServiceAccount bound to ClusterRole $2, and a kubeconfig with its token in $dir/$1.kubeconfig.
account() {
  apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $system_ns}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: $1, namespace: $system_ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $2}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $2}
subjects: [{kind: ServiceAccount, name: $1, namespace: $system_ns}]
YAML
  local token
  token=$(kubectl create token "$1" -n "$system_ns" --duration 24h)
  kubectl config view --raw --minify --flatten -o json | python3 -c '
import json, sys
cfg = json.load(sys.stdin)
cfg["users"] = [{"name": sys.argv[2], "user": {"token": sys.argv[1]}}]
cfg["contexts"][0]["context"]["user"] = sys.argv[2]
json.dump(cfg, sys.stdout)' "$token" "$1" > "$dir/$1.kubeconfig"
  chmod 600 "$dir/$1.kubeconfig"
}
account oem-operator oem-hosting-operator
# The operator's Lease (leader election), in its namespace, as templates/rbac.yaml binds it.
apply -n "$system_ns" -f "$repo/charts/oem-hosting/files/operator-lease-role.yaml" >/dev/null
kubectl create rolebinding oem-hosting-operator-lease -n "$system_ns" --role oem-hosting-operator-lease \
  --serviceaccount "$system_ns:oem-operator" --dry-run=client -o yaml | apply -f - >/dev/null
account oem-webhooks oem-hosting-webhooks
account oem-panel oem-hosting-panel
# What the operator may write of cluster-wide RBAC (each reseller's read of its own Reseller),
# as the chart installs it.
sed "s/OPERATOR_USERNAME/system:serviceaccount:$system_ns:oem-operator/" \
  "$repo/charts/oem-hosting/files/operator-rbac-guard.yaml" | apply -f - >/dev/null

say "admission webhooks"
# A serving certificate for https://127.0.0.1:$webhooks_port from the cluster's CA, which the
# configurations trust (the chart does the same with its own CA or cert-manager).
if [ ! -f "$dir/pki/webhooks.crt" ]; then
  openssl req -newkey rsa:2048 -nodes -subj "/CN=oem-webhooks" -keyout "$dir/pki/webhooks.key" \
    -out "$dir/pki/webhooks.csr" 2>/dev/null
  openssl x509 -req -in "$dir/pki/webhooks.csr" -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" \
    -CAcreateserial -days 3650 -out "$dir/pki/webhooks.crt" 2>/dev/null \
    -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
  rm -f "$dir/pki/webhooks.csr"
  chmod 600 "$dir/pki/webhooks.key"
fi
stop_process webhooks "$dir"
KUBECONFIG=$dir/oem-webhooks.kubeconfig RUST_LOG=info \
  start_process webhooks "$dir" "$target_dir/debug/oem-webhooks" --listen "127.0.0.1:$webhooks_port" \
  --tls-cert "$dir/pki/webhooks.crt" --tls-key "$dir/pki/webhooks.key"
for _ in $(seq 1 60); do
  curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" "https://127.0.0.1:$webhooks_port/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" "https://127.0.0.1:$webhooks_port/healthz" >/dev/null || {
  tail -20 "$dir/logs/webhooks.log" >&2; echo "the webhooks did not become ready" >&2; exit 1; }
# What the chart registers (charts/oem-hosting/templates/webhooks-admission.yaml), pointing at
# the process instead of a Service.
ca=$(base64 -w0 < "$dir/pki/ca.crt")
common="failurePolicy: Fail
  matchPolicy: Equivalent
  sideEffects: None
  timeoutSeconds: 5
  admissionReviewVersions: [v1]"
apply -f - <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: oem-hosting-webhooks}
webhooks:
- name: namespaced.validate.hosting.oem.dev
  $common
  clientConfig: {url: "https://127.0.0.1:$webhooks_port/validate", caBundle: $ca}
  rules:
  - {apiGroups: [hosting.oem.dev], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], resources: [courses, endusers, maintenances], scope: Namespaced}
- name: resellers.validate.hosting.oem.dev
  $common
  clientConfig: {url: "https://127.0.0.1:$webhooks_port/validate", caBundle: $ca}
  rules:
  - {apiGroups: [hosting.oem.dev], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], resources: [resellers, clustermaintenances], scope: Cluster}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: oem-hosting-webhooks}
webhooks:
- name: endusers.mutate.hosting.oem.dev
  $common
  reinvocationPolicy: Never
  clientConfig: {url: "https://127.0.0.1:$webhooks_port/mutate", caBundle: $ca}
  rules:
  - {apiGroups: [hosting.oem.dev], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], resources: [endusers], scope: Namespaced}
YAML

say "operator"
# Hosting pods go to the real node; kwok's nodes stay for scale tests.
# The end users' Ingresses are Traefik's, the real node's ingress controller (e2e/cluster/ingress.sh);
# their certificates come from the local ACME server through cert-manager
# (e2e/cluster/certificates.sh), and the monitor trusts its root, so TLS services can be Up.
printf 'placement:\n  nodeSelector: {type: real}\nnetwork: {ingressNamespace: traefik, ingressClass: traefik}\ncertificates: {issuer: {name: local-acme}}\n' \
  > "$dir/operator.yaml"
stop_process operator "$dir"
KUBECONFIG=$dir/oem-operator.kubeconfig OEM_CONFIG=$dir/operator.yaml \
  OEM_PROBE_CA_FILE=$dir/acme-root.pem \
  OEM_HTTP_ADDR=127.0.0.1:$metrics_port OEM_MONITOR_NAMESPACE=$system_ns \
  OEM_WEBHOOKS_SERVICE_ACCOUNT=$system_ns/oem-webhooks OEM_PANEL_SERVICE_ACCOUNT=$system_ns/oem-panel \
  POD_NAME=oem-operator-up start_process operator "$dir" "$target_dir/debug/oem-operator"
for _ in $(seq 1 60); do
  curl -fsS --max-time 2 "http://127.0.0.1:$metrics_port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 2 "http://127.0.0.1:$metrics_port/readyz" >/dev/null || {
  tail -20 "$dir/logs/operator.log" >&2; echo "the operator did not become ready" >&2; exit 1; }

say "end users' panel"
# Plain http on loopback (forwarded to the machine's loopback only): the cookies lose Secure,
# which browsers refuse over http (docs/panels.md). The chart keeps them Secure behind TLS.
printf 'httpAddr: 127.0.0.1:%s\n' "$panel_port" > "$dir/panel.yaml"
stop_process panel "$dir"
KUBECONFIG=$dir/oem-panel.kubeconfig OEM_PANEL_SECURE_COOKIES=false RUST_LOG=info \
  start_process panel "$dir" "$target_dir/debug/oem-panel" --config "$dir/panel.yaml"
for _ in $(seq 1 60); do
  curl -fsS --max-time 2 "http://127.0.0.1:$panel_port/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --max-time 2 "http://127.0.0.1:$panel_port/readyz" >/dev/null || {
  tail -20 "$dir/logs/panel.log" >&2; echo "the panel did not become ready" >&2; exit 1; }

say "examples"
# Resellers first: the operator creates the namespaces the courses and end users live in.
resellers=$(grep -l '^kind: Reseller' "$repo"/examples/*.yaml)
others=$(grep -L '^kind: Reseller' "$repo"/examples/*.yaml)
for f in $resellers; do kubectl apply --server-side --field-manager oem-hosting-examples -f "$f"; done
for ns in $(kubectl get resellers -o jsonpath='{range .items[*]}reseller-{.metadata.name}{"\n"}{end}'); do
  for _ in $(seq 1 60); do kubectl get namespace "$ns" >/dev/null 2>&1 && break; sleep 0.5; done
done
for f in $others; do kubectl apply --server-side --field-manager oem-hosting-examples -f "$f"; done

say "the webhooks refuse what the schema lets through"
for f in "$repo"/examples/refused/*.yaml; do
  if out=$(kubectl apply --dry-run=server -f "$f" 2>&1); then
    echo "$f was accepted: $out" >&2; exit 1
  fi
  grep -q 'admission webhook' <<<"$out" || { echo "$f was refused, but not by the webhooks: $out" >&2; exit 1; }
  echo "${f#"$repo"/}: ${out##*denied the request: }" >&2
done

say "the example site"
t=$SECONDS
# Its certificate for its domains, from the local ACME server (HTTP-01 through Traefik) into the
# hosting namespace's `tls` Secret: the operator rolls its pods to present it (docs/dns.md).
for _ in $(seq 1 120); do
  hosting_ns=$(kubectl -n "$example_ns" get enduser "$example_user" -o jsonpath='{.status.hostingNamespace}' 2>/dev/null || true)
  [ -n "$hosting_ns" ] && kubectl -n "$hosting_ns" get certificate tls >/dev/null 2>&1 && break
  sleep 0.5
done
[ -n "$hosting_ns" ] || { echo "$example_user got no hosting namespace" >&2; exit 1; }
kubectl -n "$hosting_ns" wait --for=condition=Ready certificate/tls --timeout 180s >/dev/null || {
  kubectl -n "$hosting_ns" describe certificate tls >&2; kubectl get challenges -A >&2; exit 1; }
echo "certificate for $(kubectl -n "$hosting_ns" get certificate tls -o jsonpath='{.spec.dnsNames}') issued in $((SECONDS - t)) s" >&2
kubectl -n "$example_ns" wait --for=jsonpath='{.status.phase}'=Active "enduser/$example_user" --timeout 300s >/dev/null || {
  kubectl get hosting -A >&2; kubectl get pods -A -o wide >&2; exit 1; }
hosting_ns=$(kubectl -n "$example_ns" get enduser "$example_user" -o jsonpath='{.status.hostingNamespace}')
login=$(kubectl -n "$example_ns" get enduser "$example_user" -o jsonpath='{.spec.loginId}')
web_ip=$(kubectl -n "$hosting_ns" get service web -o jsonpath='{.spec.clusterIP}')
echo "$example_user Active after $((SECONDS - t)) s: namespace $hosting_ns, web Service $web_ip" >&2
# The end user's way in: FTPS with the account of its credentials Secret (docs/credentials.md).
password=$(kubectl -n "$hosting_ns" get secret credentials -o jsonpath='{.data.ftp-password}' | base64 -d)
for i in $(seq 1 30); do
  if curl -sS --ssl-reqd --insecure --max-time 20 --user "$login:$password" \
       -T "$repo/examples/site/index.php" "ftp://$web_ip:21/index.php" 2>"$dir/logs/upload.log"; then
    break
  fi
  [ "$i" -lt 30 ] || { cat "$dir/logs/upload.log" >&2; echo "FTPS upload to $web_ip failed" >&2; exit 1; }
  sleep 2
done
echo "examples/site/index.php uploaded over FTPS as $login" >&2
for i in $(seq 1 30); do
  page=$(curl -fsS --max-time 10 "http://$web_ip/" 2>/dev/null) && grep -q "served by PHP" <<<"$page" && break
  [ "$i" -lt 30 ] || { echo "the site at $web_ip does not answer: ${page:-}" >&2; exit 1; }
  sleep 2
done
echo "$example_user ($hosting_ns, web Service $web_ip)" > "$dir/site"
kubectl -n "$example_ns" get enduser "$example_user" -o jsonpath='{.spec.domains[0]}' > "$dir/site-domain"

say "forwards to Unix sockets"
mkdir -p "$dir/sockets"
chmod 700 "$dir/sockets"
forward_netns() { # $1 name, $2 target host:port; restarted when the target changed
  local name=forward-$1-netns sock=$dir/sockets/$1.sock
  if process_alive "$name" "$dir" && [ "$(cat "$dir/sockets/$1.target" 2>/dev/null)" = "$2" ]; then return; fi
  stop_process "$name" "$dir"
  echo "$2" > "$dir/sockets/$1.target"
  start_process "$name" "$dir" socat "UNIX-LISTEN:$sock,fork,unlink-early,mode=600" "TCP:$2"
}
forward_netns api "127.0.0.1:$api_port"
forward_netns site "$web_ip:80"
# HTTPS through the front door: Traefik's Service (ingress.sh), which picks the certificate by name.
forward_netns https "$(OEM_CLUSTER_REAL_NODES=1 bash "$repo/e2e/cluster/cluster.sh" ingress-ip):443"
forward_netns metrics "127.0.0.1:$metrics_port"
forward_netns panel "127.0.0.1:$panel_port"
for _ in $(seq 1 20); do
  [ -S "$dir/sockets/api.sock" ] && [ -S "$dir/sockets/site.sock" ] && [ -S "$dir/sockets/metrics.sock" ] &&
    [ -S "$dir/sockets/https.sock" ] &&
    [ -S "$dir/sockets/panel.sock" ] && break
  sleep 0.1
done
