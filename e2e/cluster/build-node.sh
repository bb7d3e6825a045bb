#!/usr/bin/env bash
# Builds the real node's binaries from the Go module proxy, once per version (build.sh runs it
# only when OEM_CLUSTER_REAL_NODES=1; the kwok-only cluster never needs them):
#   kubelet, kube-proxy       k8s.io/kubernetes           (K8S_VERSION, static)
#   containerd, shim, ctr     github.com/containerd/containerd/v2 (no_btrfs no_devmapper no_zfs)
#   runc                      github.com/opencontainers/runc (cgo + libseccomp, -tags seccomp)
#   bridge, host-local, loopback, portmap, bandwidth   github.com/containernetworking/plugins
#   crictl                    sigs.k8s.io/cri-tools
#   coredns                   github.com/coredns/coredns (cluster DNS, run as a pod on the node)
#   traefik                   github.com/traefik/traefik/v3 (the ingress controller, a pod on the node)
#   cert-manager, acmesolver github.com/cert-manager/cert-manager (mains in cert-manager/, static)
#   pebble                    github.com/letsencrypt/pebble/v2 (the local ACME server)
#   controller, speaker       go.universe.tf/metallb (MetalLB, layer 2: per-end-user addresses)
#   pause                     k8s.io/kubernetes build/pause/linux/pause.c (gcc -static)
# Binaries land in $OEM_CACHE/bin/<component>-<version>/; a warm run returns at once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=build-lib.sh
source "$here/build-lib.sh"
OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0
command -v go >/dev/null || { echo "build-node.sh: go is not installed" >&2; exit 1; }
bin=$OEM_CACHE/bin
mkdir -p "$bin"
t0=$SECONDS

# runc needs libseccomp's headers (cgo) and pkg-config; the pause binary needs a C compiler.
need=()
for pair in pkg-config:pkg-config gcc:gcc; do command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}"); done
[ -f /usr/include/seccomp.h ] || need+=(libseccomp-dev)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || need+=(libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

node_out=$bin/kubernetes-node-$K8S_VERSION
if [ ! -x "$node_out/kubelet" ] || [ ! -x "$node_out/kube-proxy" ]; then
  k8s_build_settings
  MAIN_GO="" REPLACES=$K8S_REPLACES build_module kubernetes-node "$node_out" k8s.io/kubernetes \
    "$K8S_VERSION" "$K8S_LDFLAGS" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
else
  log "kubernetes-node $K8S_VERSION: cached in $node_out"
fi

MAIN_GO="" REPLACES="" TAGS="no_btrfs no_devmapper no_zfs" build_module containerd \
  "$bin/containerd-$CONTAINERD_VERSION" github.com/containerd/containerd/v2 "$CONTAINERD_VERSION" \
  "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  github.com/containerd/containerd/v2/cmd/ctr

CGO_ENABLED=1 MAIN_GO="" REPLACES="" TAGS="seccomp" build_module runc "$bin/runc-$RUNC_VERSION" \
  github.com/opencontainers/runc "$RUNC_VERSION" "-s -w -X main.gitCommit=$RUNC_VERSION" \
  github.com/opencontainers/runc

cni=github.com/containernetworking/plugins
MAIN_GO="" REPLACES="" build_module cni-plugins "$bin/cni-plugins-$CNI_PLUGINS_VERSION" $cni \
  "$CNI_PLUGINS_VERSION" "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
  $cni/plugins/main/bridge $cni/plugins/main/loopback $cni/plugins/ipam/host-local \
  $cni/plugins/meta/portmap $cni/plugins/meta/bandwidth

MAIN_GO="" REPLACES="" build_module cri-tools "$bin/cri-tools-$CRI_TOOLS_VERSION" sigs.k8s.io/cri-tools \
  "$CRI_TOOLS_VERSION" "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
  sigs.k8s.io/cri-tools/cmd/crictl

MAIN_GO="" REPLACES="" build_module coredns "$bin/coredns-$COREDNS_VERSION" github.com/coredns/coredns \
  "$COREDNS_VERSION" "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
  github.com/coredns/coredns

# Traefik's go.mod replaces three modules with its own forks; a consumer must say so too (the
# replace lines are read from the served go.mod).
if [ ! -x "$bin/traefik-$TRAEFIK_VERSION/traefik" ]; then
  traefik_mod=$(go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$traefik_mod" ] || { echo "build-node.sh: cannot download traefik $TRAEFIK_VERSION" >&2; exit 1; }
  TRAEFIK_REPLACES=$(sed -n '/^replace (/,/^)/p' "$traefik_mod")
fi
# Static (no cgo): the image holds the one binary, no C library.
CGO_ENABLED=0 MAIN_GO="" REPLACES="${TRAEFIK_REPLACES:-}" build_module traefik "$bin/traefik-$TRAEFIK_VERSION" \
  github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" \
  "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
  github.com/traefik/traefik/v3/cmd/traefik

# cert-manager's commands live in nested modules the proxy does not serve: our mains use its
# packages (e2e/cluster/cert-manager/). Static, like Traefik: the solver's image is one binary.
cm=github.com/cert-manager/cert-manager
cm_out=$(own_main_dir "cert-manager-$CERT_MANAGER_VERSION" "$here/cert-manager/controller.go")
CGO_ENABLED=0 MAIN_GO=$(cat "$here/cert-manager/controller.go") REPLACES="" build_module cert-manager \
  "$cm_out" $cm "$CERT_MANAGER_VERSION" "-s -w" .
CGO_ENABLED=0 MAIN_GO=$(cat "$here/cert-manager/acmesolver.go") REPLACES="" build_module acmesolver \
  "$(own_main_dir "acmesolver-$CERT_MANAGER_VERSION" "$here/cert-manager/acmesolver.go")" $cm \
  "$CERT_MANAGER_VERSION" "-s -w" .
# Its CRDs are plain YAML in the module: kept beside the binary.
cm_crds=$cm_out/crds
if [ ! -f "$cm_crds/cert-manager.io_certificates.yaml" ]; then
  cm_src=$(go mod download -json "$cm@$CERT_MANAGER_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$cm_crds"
  cp "$cm_src"/deploy/crds/*.yaml "$cm_crds/"
  log "cert-manager $CERT_MANAGER_VERSION: CRDs $(ls "$cm_crds" | tr '\n' ' ')"
fi
MAIN_GO="" REPLACES="" build_module pebble "$bin/pebble-$PEBBLE_VERSION" github.com/letsencrypt/pebble/v2 \
  "$PEBBLE_VERSION" "-s -w" github.com/letsencrypt/pebble/v2/cmd/pebble

# MetalLB's controller (addresses) and speaker (ARP for them), static like Traefik. The proxy
# does not serve the frr-k8s release MetalLB's go.mod names (only for its BGP mode, unused
# here): the nearest served one stands in (versions.env).
CGO_ENABLED=0 MAIN_GO="" REPLACES="replace github.com/metallb/frr-k8s => github.com/metallb/frr-k8s $METALLB_FRR_K8S" build_module metallb "$bin/metallb-$METALLB_VERSION" go.universe.tf/metallb \
  "$METALLB_VERSION" "-s -w" go.universe.tf/metallb/controller go.universe.tf/metallb/speaker

# Its release manifest (namespace, CRDs, RBAC, the controller and speaker), kept beside them.
if [ ! -f "$bin/metallb-$METALLB_VERSION/metallb-native.yaml" ]; then
  mlb_src=$(go mod download -json "go.universe.tf/metallb@$METALLB_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  cp "$mlb_src/config/manifests/metallb-native.yaml" "$bin/metallb-$METALLB_VERSION/"
fi

# The sandbox ("pause") image's one binary: there is no registry to pull it from.
pause_out=$bin/pause-$K8S_VERSION
if [ ! -x "$pause_out/pause" ]; then
  src=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -f "$src/build/pause/linux/pause.c" ] || { echo "build-node.sh: no pause.c in $src" >&2; exit 1; }
  mkdir -p "$pause_out.tmp"
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION-oem" -o "$pause_out.tmp/pause" "$src/build/pause/linux/pause.c"
  strip "$pause_out.tmp/pause"
  rm -rf "$pause_out" && mv "$pause_out.tmp" "$pause_out"
  log "pause: built from k8s.io/kubernetes@$K8S_VERSION build/pause/linux/pause.c"
fi
log "real node binaries ready in $((SECONDS - t0)) s"
