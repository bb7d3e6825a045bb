# shellcheck shell=bash
# Shared by build.sh and build-node.sh: how one Go module version is built into the cache.
# Sourced, not run. Expects $OEM_CACHE; honours TAGS (build tags) and CGO_ENABLED.

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Builds main packages of one module version into $2 unless every binary is already there.
# $1 component name, $2 output dir, $3 module, $4 version, $5 ldflags, rest: packages.
# Optional environment: REPLACES (go.mod lines), MAIN_GO (a main.go of the build module),
# TAGS (space-separated build tags).
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
    cd "$work" || exit 1
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
    go build -mod=mod ${TAGS:+-tags "$TAGS"} -ldflags "$ldflags" -o "$out.tmp/" "$@" >&2
    rm -rf "$out" && mv "$out.tmp" "$out"
  )
  rm -rf "$work"
  log "$name $version: built in $((SECONDS - start)) s"
}

# k8s.io/kubernetes replaces its staging modules with local paths; a consumer must replace
# each with its published v0.<minor>.<patch> release, read from the served go.mod. Sets
# K8S_REPLACES and K8S_LDFLAGS (version stamps) for $K8S_VERSION.
k8s_build_settings() {
  local k8s_semver=${K8S_VERSION#v} k8s_minor staging_version modfile p
  k8s_minor=$(cut -d. -f2 <<<"$k8s_semver")
  staging_version="v0.${k8s_semver#*.}"
  log "kubernetes: reading staging modules from k8s.io/kubernetes@$K8S_VERSION go.mod"
  modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  [ -f "$modfile" ] || { echo "build: cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; return 1; }
  K8S_REPLACES=$(grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$modfile" \
    | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}')
  [ -n "$K8S_REPLACES" ] || { echo "build: no staging replaces found in $modfile" >&2; return 1; }
  K8S_LDFLAGS="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
    K8S_LDFLAGS+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
}

# The cache folder of a binary built from a main of ours ($2, a file): keyed by version and
# by the main's content, so an edited main is built again. $1: component and version.
own_main_dir() { echo "$OEM_CACHE/bin/$1-$(sha256sum "$2" | cut -c1-12)"; }
