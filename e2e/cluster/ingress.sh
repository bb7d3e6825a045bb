# shellcheck shell=bash
# The real node's ingress controller: Traefik (built by build-node.sh from the Go module proxy)
# as a restricted pod in the namespace `traefik`, serving the Ingresses of class `traefik` (the
# operator's end users' domains) on the Service `traefik/traefik` at a fixed cluster IP, ports 80
# and 443 (TLS from each Ingress's Secret). Sourced by cluster.sh after node.sh, whose node_up
# calls node_ingress.
# shellcheck disable=SC2154

TRAEFIK_BIN=$OEM_CACHE/bin/traefik-$TRAEFIK_VERSION
TRAEFIK_IMAGE=oem.local/traefik:$TRAEFIK_VERSION
INGRESS_NAMESPACE=traefik
INGRESS_CLASS=traefik

ingress_ip() { # the 80th address of the Service range: where tests and `make up` reach it
  python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[80])" "$SERVICE_CIDR"
}

ingress_ready() {
  local n
  n=$(kubectl -n "$INGRESS_NAMESPACE" get deployment traefik -o jsonpath='{.status.availableReplicas}' 2>/dev/null) || return 1
  [ "${n:-0}" -ge 1 ]
}

node_ingress() {
  [ -x "$TRAEFIK_BIN/traefik" ] || die "no Traefik binary in $TRAEFIK_BIN: run e2e/cluster/build-node.sh"
  # The archive (the binary is 170 MB) is made once per version, not per cluster.
  local archive=$OEM_CACHE/images/traefik-$TRAEFIK_VERSION.oci.tar
  if [ ! -f "$archive" ]; then
    mkdir -p "$OEM_CACHE/images"
    python3 "$here/oci-image.py" --name "$TRAEFIK_IMAGE" --out "$archive.$$.tmp" \
      --file "$TRAEFIK_BIN/traefik:/traefik:0755" --entrypoint '["/traefik"]' --user 10001:10001 >/dev/null
    mv "$archive.$$.tmp" "$archive"
  fi
  ctr_ images import "$archive" >/dev/null
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $INGRESS_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: $INGRESS_NAMESPACE}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: oem-local-traefik}
rules:
- apiGroups: [""]
  resources: [services, secrets, nodes]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: oem-local-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: oem-local-traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: $INGRESS_NAMESPACE}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: $INGRESS_CLASS}
spec: {controller: traefik.io/ingress-controller}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: $INGRESS_NAMESPACE, labels: {app: traefik}}
spec:
  replicas: 1
  selector: {matchLabels: {app: traefik}}
  template:
    metadata: {labels: {app: traefik}}
    spec:
      serviceAccountName: traefik
      nodeSelector: {type: real}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        seccompProfile: {type: RuntimeDefault}
      containers:
      - name: traefik
        image: $TRAEFIK_IMAGE
        imagePullPolicy: Never
        args:
        - --global.checkNewVersion=false
        - --global.sendAnonymousUsage=false
        - --entryPoints.web.address=:8000
        - --entryPoints.websecure.address=:8443
        - --entryPoints.websecure.http.tls=true
        - --entryPoints.traefik.address=:8080
        - --ping=true
        - --providers.kubernetesingress=true
        - --providers.kubernetesingress.ingressClass=$INGRESS_CLASS
        - --providers.kubernetesingress.ingressEndpoint.ip=$(ingress_ip)
        - --log.level=INFO
        ports:
        - {name: web, containerPort: 8000}
        - {name: websecure, containerPort: 8443}
        - {name: admin, containerPort: 8080}
        readinessProbe: {httpGet: {path: /ping, port: 8080}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /ping, port: 8080}, periodSeconds: 10}
        resources: {limits: {memory: 256Mi}, requests: {cpu: 50m, memory: 64Mi}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata: {name: traefik, namespace: $INGRESS_NAMESPACE, labels: {app: traefik}}
spec:
  selector: {app: traefik}
  clusterIP: $(ingress_ip)
  ports:
  - {name: web, port: 80, targetPort: web}
  - {name: websecure, port: 443, targetPort: websecure}
YAML
  wait_for "Traefik" 90 ingress_ready
}
