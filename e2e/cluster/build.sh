#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy, once per version:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes),
# etcd (go.etcd.io/etcd/server/v3), kwok (sigs.k8s.io/kwok) and helm (helm.sh/helm/v3).
# Binaries land in $OEM_CACHE/bin/<component>-<version>/, outside the clone, so a warm
# run finds them and returns at once. Prints the directory of each component on success.
# With OEM_CLUSTER_REAL_NODES=1 it then runs build-node.sh (kubelet, kube-proxy, containerd,
# runc, CNI plugins, crictl, pause); the kwok-only cluster never builds those.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0
command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }

# shellcheck source=build-lib.sh
source "$here/build-lib.sh"

bin=$OEM_CACHE/bin
mkdir -p "$bin"

k8s_out=$bin/kubernetes-$K8S_VERSION
if [ ! -x "$k8s_out/kube-apiserver" ] || [ ! -x "$k8s_out/kubectl" ] \
   || [ ! -x "$k8s_out/kube-controller-manager" ] || [ ! -x "$k8s_out/kube-scheduler" ]; then
  k8s_build_settings
  MAIN_GO="" REPLACES=$K8S_REPLACES build_module kubernetes "$k8s_out" k8s.io/kubernetes "$K8S_VERSION" "$K8S_LDFLAGS" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
else
  log "kubernetes $K8S_VERSION: cached in $k8s_out"
fi

# etcd's own main package lives in a root module that replaces its siblings with local paths;
# the server module exports the same entry point, so a two-line main builds the real etcd.
MAIN_GO='package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }' REPLACES="" build_module etcd "$bin/etcd-$ETCD_VERSION" \
  go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "-s -w" .
MAIN_GO="" REPLACES="" build_module kwok "$bin/kwok-$KWOK_VERSION" sigs.k8s.io/kwok "$KWOK_VERSION" \
  "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok
# kwok ships its stock stages (how fake nodes and pods move through their lives) as YAML in
# its module, not in the binary: keep them beside it.
kwok_stages=$bin/kwok-$KWOK_VERSION/stages
if [ ! -f "$kwok_stages/pod-ready.yaml" ]; then
  kwok_src=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$kwok_stages"
  for stage in node/fast node/heartbeat-with-lease pod/fast; do
    cp "$kwok_src/kustomize/stage/$stage/"*.yaml "$kwok_stages/"
  done
  rm -f "$kwok_stages/kustomization.yaml"
  log "kwok $KWOK_VERSION: stages $(ls "$kwok_stages" | tr '\n' ' ')"
fi
MAIN_GO="" REPLACES="" build_module helm "$bin/helm-$HELM_VERSION" helm.sh/helm/v3 "$HELM_VERSION" \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" helm.sh/helm/v3/cmd/helm

if [ "${OEM_CLUSTER_REAL_NODES:-0}" = 1 ]; then "$here/build-node.sh"; fi
