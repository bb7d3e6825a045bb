# shellcheck shell=bash
# The real node's certificates, issued the way a provider's are: pebble (the local ACME
# server) and cert-manager's ACME controllers run as processes beside the control plane (both
# built by build-node.sh from the Go module proxy); cert-manager's HTTP-01 solver pods run on
# the node in the hosting namespaces, reached through Traefik. Pebble validates each name over
# the cluster's DNS, which answers every name under $SITE_ZONES with the ingress controller's
# address (node.sh's Corefile), exactly as a domain's A record points at a provider's front
# door. Two ClusterIssuers:
#   local-acme         pebble's default profile (90-day certificates)
#   local-acme-short   pebble's `shortlived` profile (6 days: a certificate that is already
#                      expiring by the monitor's 14-day rule, for tests)
# Pebble's root, which clients trust for these certificates, is written to $DIR/acme-root.pem.
# Sourced by cluster.sh after node.sh and ingress.sh; node_up calls node_certificates.
# shellcheck disable=SC2154

# Keyed by the mains' content, as build-lib.sh's own_main_dir builds them.
CERT_MANAGER_BIN=$OEM_CACHE/bin/cert-manager-$CERT_MANAGER_VERSION-$(sha256sum "$here/cert-manager/controller.go" | cut -c1-12)
ACMESOLVER_BIN=$OEM_CACHE/bin/acmesolver-$CERT_MANAGER_VERSION-$(sha256sum "$here/cert-manager/acmesolver.go" | cut -c1-12)
PEBBLE_BIN=$OEM_CACHE/bin/pebble-$PEBBLE_VERSION
ACMESOLVER_IMAGE=oem.local/acmesolver:$CERT_MANAGER_VERSION-${ACMESOLVER_BIN##*-}
ACME_PORT=$((BASE + 140)) ACME_MGMT_PORT=$((BASE + 150))
# The zones whose every name the cluster's DNS points at the front door: `test` (RFC 2606) for
# tests, example.jp for the examples.
SITE_ZONES=${OEM_CLUSTER_SITE_ZONES:-test example.jp}

acme_curl() { curl -fsS --max-time 5 --cacert "$DIR/pki/ca.crt" "$@"; }

issuer_ready() {
  local s
  s=$(kubectl get clusterissuer "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) || return 1
  [ "$s" = True ]
}

node_certificates() {
  local b
  for b in "$CERT_MANAGER_BIN/cert-manager" "$ACMESOLVER_BIN/acmesolver" "$PEBBLE_BIN/pebble"; do
    [ -x "$b" ] || die "no $b: run e2e/cluster/build-node.sh"
  done
  mkdir -p "$DIR/acme"
  # Pebble's own HTTPS, from the cluster's CA (the ClusterIssuers trust it by caBundle).
  [ -f "$DIR/pki/acme.crt" ] || issue acme "/CN=local-acme" "subjectAltName=IP:127.0.0.1"
  cat > "$DIR/acme/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$ACME_PORT",
  "managementListenAddress": "127.0.0.1:$ACME_MGMT_PORT",
  "certificate": "$DIR/pki/acme.crt", "privateKey": "$DIR/pki/acme.key",
  "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
  "externalAccountBindingRequired": false,
  "retryAfter": {"authz": 1, "order": 1},
  "profiles": {
    "default": {"description": "90 days", "validityPeriod": 7776000},
    "shortlived": {"description": "6 days", "validityPeriod": 518400}
  }
}}
JSON
  # No artificial delays or refused nonces: what is tested is issuance, not pebble's chaos.
  start pebble env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
    "$PEBBLE_BIN/pebble" -config "$DIR/acme/pebble.json" -dnsserver "$(dns_ip):53"
  wait_for pebble 30 quiet acme_curl "https://127.0.0.1:$ACME_PORT/dir"
  acme_curl "https://127.0.0.1:$ACME_MGMT_PORT/roots/0" > "$DIR/acme-root.pem.tmp"
  mv "$DIR/acme-root.pem.tmp" "$DIR/acme-root.pem"

  local archive=$OEM_CACHE/images/${ACMESOLVER_BIN##*/}.oci.tar
  if [ ! -f "$archive" ]; then
    mkdir -p "$OEM_CACHE/images"
    python3 "$here/oci-image.py" --name "$ACMESOLVER_IMAGE" --out "$archive.$$.tmp" \
      --file "$ACMESOLVER_BIN/acmesolver:/acmesolver:0755" --entrypoint '["/acmesolver"]' \
      --user 65532:65532 >/dev/null
    mv "$archive.$$.tmp" "$archive"
  fi
  ctr_ images import "$archive" >/dev/null
  kubectl apply --server-side -f "$CERT_MANAGER_BIN/crds/" >/dev/null
  kubectl wait --for condition=Established --timeout 60s -f "$CERT_MANAGER_BIN/crds/" >/dev/null
  kubectl create namespace cert-manager --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  # A failed issuance is retried after 10 s, not cert-manager's hour: nothing here is rate
  # limited.
  start cert-manager "$CERT_MANAGER_BIN/cert-manager" --kubeconfig "$DIR/kubeconfig" \
    --acme-http01-solver-image "$ACMESOLVER_IMAGE" \
    --acme-http01-solver-nameservers "$(dns_ip):53" --certificate-request-minimum-backoff 10s
  local ca_bundle issuer profile
  ca_bundle=$(base64 -w0 < "$DIR/pki/ca.crt")
  for issuer in local-acme local-acme-short; do
    # Pebble picks a profile at random for an order that names none.
    profile=default
    if [ "$issuer" = local-acme-short ]; then profile=shortlived; fi
    kubectl apply -f - >/dev/null <<YAML
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: $issuer}
spec:
  acme:
    server: https://127.0.0.1:$ACME_PORT/dir
    caBundle: $ca_bundle
    profile: $profile
    privateKeySecretRef: {name: $issuer-account}
    solvers:
    - http01:
        ingress:
          ingressClassName: $INGRESS_CLASS
          # Tenants' quotas allow no NodePort; the ingress controller needs none.
          serviceType: ClusterIP
          podTemplate:
            spec: {nodeSelector: {type: real}}
YAML
  done
  wait_for "ClusterIssuer local-acme" 60 issuer_ready local-acme
  wait_for "ClusterIssuer local-acme-short" 60 issuer_ready local-acme-short
}
