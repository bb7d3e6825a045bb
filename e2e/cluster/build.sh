#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy, once per version:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes),
# etcd (go.etcd.io/etcd/server/v3), kwok (sigs.k8s.io/kwok) and helm (helm.sh/helm/v3).
# Binaries land in $OEM_CACHE/bin/<component>-<version>/, outside the clone, so a warm
# run finds them and returns at once. Prints the directory of each component on success.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0
command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 1; }

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Builds main packages of one module version into $2 unless every binary is already there.
# $1 component name, $2 output dir, $3 module, $4 version, $5 ldflags, rest: packages.
build_module() {
  local name=$1 out=$2 module=$3 version=$4 ldflags=$5; shift 5
  local missing=0 pkg
  for pkg in "$@"; do
    if [ "$pkg" = . ]; then [ -x "$out/$name" ] || missing=1; else [ -x "$out/$(basename "$pkg")" ] || missing=1; fi
  done
  if [ $missing -eq 0 ]; then log "$name $version: cached in $out"; return; fi
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/oem-build-$name.XXXXXX")
  log "$name $version: building $* (cold build, this takes a while)"
  local start=$SECONDS
  (
    cd "$work"
    go mod init "oemhosting.local/build/$name" >/dev/null 2>&1
    if [ -n "${REPLACES:-}" ]; then printf '%s\n' "$REPLACES" >> go.mod; fi
    if [ -n "${MAIN_GO:-}" ]; then printf '%s\n' "$MAIN_GO" > main.go; fi
    log "$name: resolving $module@$version"
    go get "$module@$version" >&2
    for pkg in "$@"; do [ "$pkg" = . ] || go get "$pkg@$version" >/dev/null 2>&1 || true; done
    # With no Go file of its own, tidy would drop the requirement just added.
    if [ -n "${MAIN_GO:-}" ]; then go mod tidy >&2; fi
    mkdir -p "$out.tmp"
    log "$name: compiling"
    go build -mod=mod -ldflags "$ldflags" -o "$out.tmp/" "$@" >&2
    rm -rf "$out" && mv "$out.tmp" "$out"
  )
  rm -rf "$work"
  log "$name $version: built in $((SECONDS - start)) s"
}

bin=$OEM_CACHE/bin
mkdir -p "$bin"

# k8s.io/kubernetes replaces its staging modules with local paths; a consumer must replace
# each with its published v0.<minor>.<patch> release, read from the served go.mod.
k8s_semver=${K8S_VERSION#v}
k8s_minor=$(cut -d. -f2 <<<"$k8s_semver")
staging_version="v0.${k8s_semver#*.}"
k8s_out=$bin/kubernetes-$K8S_VERSION
if [ ! -x "$k8s_out/kube-apiserver" ] || [ ! -x "$k8s_out/kubectl" ] \
   || [ ! -x "$k8s_out/kube-controller-manager" ] || [ ! -x "$k8s_out/kube-scheduler" ]; then
  log "kubernetes: reading staging modules from k8s.io/kubernetes@$K8S_VERSION go.mod"
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$modfile" ] || { echo "build.sh: cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
  REPLACES=$(grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" \
    | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}')
  [ -n "$REPLACES" ] || { echo "build.sh: no staging replaces found in $modfile" >&2; exit 1; }
  ver_flags=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ver_flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
    ver_flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  MAIN_GO="" REPLACES=$REPLACES build_module kubernetes "$k8s_out" k8s.io/kubernetes "$K8S_VERSION" "-s -w$ver_flags" \
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
