# shellcheck shell=bash
# The real node's load balancer: MetalLB in layer-2 mode (built by build-node.sh from the Go
# module proxy), from its own release manifest (config/manifests/metallb-native.yaml in the
# module) with our image of its two binaries, both pods on the real node, the admission webhook
# left out (the controller runs with --webhook-mode=disabled). It gives Services of type
# LoadBalancer addresses from the pool 10.251.0.100-199 on the "provider LAN": a bridge,
# oem-lan0, on which the node has 10.251.0.1/24 and the speaker answers ARP for those addresses
# as it would on a real segment. A client outside the cluster joins the LAN with a veth of its
# own namespace (tests do that) and reaches the addresses directly, with no route through the
# node. Sourced by cluster.sh after node.sh; node_up calls node_loadbalancer and node_down
# removes the bridge.
# shellcheck disable=SC2154

METALLB_BIN=$OEM_CACHE/bin/metallb-$METALLB_VERSION
METALLB_IMAGE=oem.local/metallb:$METALLB_VERSION
LAN=oem-lan0
LAN_ADDRESS=10.251.0.1/24
LB_POOL=10.251.0.100-10.251.0.199

lb_ready() {
  local c s
  c=$(kubectl -n metallb-system get deployment controller -o jsonpath='{.status.availableReplicas}' 2>/dev/null) || return 1
  s=$(kubectl -n metallb-system get daemonset speaker -o jsonpath='{.status.numberReady}' 2>/dev/null) || return 1
  [ "${c:-0}" -ge 1 ] && [ "${s:-0}" -ge 1 ]
}

# The release manifest, for this cluster: our image and commands, pods on the real node, no
# admission webhook.
metallb_manifest() {
  python3 - "$1" "$METALLB_IMAGE" <<'PY'
import sys, yaml
path, image = sys.argv[1], sys.argv[2]
out = []
for doc in yaml.safe_load_all(open(path)):
    if not doc or doc["kind"] == "ValidatingWebhookConfiguration":
        continue
    if doc["kind"] in ("Deployment", "DaemonSet"):
        spec = doc["spec"]["template"]["spec"]
        spec.setdefault("nodeSelector", {})["type"] = "real"
        for c in spec["containers"]:
            c["command"] = ["/" + c["name"]]
            c["image"] = image
            c["imagePullPolicy"] = "Never"
            if c["name"] == "controller":
                c["args"] += ["--webhook-mode=disabled", "--disable-cert-rotation"]
    out.append(doc)
yaml.safe_dump_all(out, sys.stdout, sort_keys=False)
PY
}

node_loadbalancer() {
  [ -x "$METALLB_BIN/controller" ] && [ -x "$METALLB_BIN/speaker" ] ||
    die "no MetalLB binaries in $METALLB_BIN: run e2e/cluster/build-node.sh"
  if ! ip link show "$LAN" >/dev/null 2>&1; then ip link add "$LAN" type bridge; fi
  ip link set "$LAN" alias "$DIR"
  ip link set "$LAN" up
  ip addr replace "$LAN_ADDRESS" dev "$LAN"
  local archive=$OEM_CACHE/images/metallb-$METALLB_VERSION.oci.tar
  if [ ! -f "$archive" ]; then
    mkdir -p "$OEM_CACHE/images"
    python3 "$here/oci-image.py" --name "$METALLB_IMAGE" --out "$archive.$$.tmp" \
      --file "$METALLB_BIN/controller:/controller:0755" --file "$METALLB_BIN/speaker:/speaker:0755" \
      --entrypoint '["/controller"]' --user 0:0 >/dev/null
    mv "$archive.$$.tmp" "$archive"
  fi
  ctr_ images import "$archive" >/dev/null
  metallb_manifest "$METALLB_BIN/metallb-native.yaml" | kubectl apply --server-side -f - >/dev/null
  wait_for MetalLB 120 lb_ready
  # The pool and its announcement on the LAN only (not on the pod bridge).
  kubectl apply -f - >/dev/null <<YAML
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: hosting, namespace: metallb-system}
spec: {addresses: [$LB_POOL]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: hosting, namespace: metallb-system}
spec: {ipAddressPools: [hosting], interfaces: [$LAN]}
YAML
}

loadbalancer_down() { # the LAN bridge, if it is this cluster's
  if [ "$(ip -d link show "$LAN" 2>/dev/null | sed -n 's/^ *alias //p' || true)" = "$DIR" ]; then
    ip link del "$LAN" 2>/dev/null || true
  fi
}
