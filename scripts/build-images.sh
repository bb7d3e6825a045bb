#!/bin/bash
# Builds the project's images from Debian packages only: a base rootfs per Debian suite made
# with mmdebstrap, then images/<image>/Containerfile with buildah (chroot isolation: no OCI
# runtime, no Docker engine, no registry). Each image is cached as an OCI archive in
# $OEM_CACHE/images/<image>-<key>.oci.tar, key = hash of images/<image>/, images/common/, the
# base's key and images/TAG, so a warm run builds nothing.
#
# The project's own programs (images whose Containerfile has a line `# program: <binary>`: the
# operator, the webhooks and the panel) are built first with `cargo build --release` (a no-op when the
# tree is unchanged; OEM_PROGRAM_PROFILE=dev takes the debug build every test builds anyway,
# without its debug info, which saves CI a second compilation of everything); the binary goes into the build context as bin/<binary> and its content
# into the key instead of images/common/, so a code change rebuilds the image.
#
# Usage: scripts/build-images.sh [--import CONTAINERD_SOCKET] [IMAGE...]
#   IMAGE: web-php8.2 web-php8.4 ftp mail mariadb postgresql operator webhooks panel (default: all)
#   --import SOCK: also import the archives into that containerd (namespace k8s.io) with the
#                  ctr found under $OEM_CACHE/bin/containerd-*/ (or CTR=/path/to/ctr).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export OEM_CACHE=${OEM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oem-hosting}
images_dir=$repo/images
out=$OEM_CACHE/images
all=(web-php8.2 web-php8.4 mariadb postgresql ftp mail operator webhooks panel)
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }

import_sock=
targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --import) import_sock=${2:?--import needs a containerd socket}; shift 2 ;;
    --import=*) import_sock=${1#--import=}; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -f "$images_dir/$1/Containerfile" ] || die "no image $1 (images/$1/Containerfile)"; targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
tag=$(tr -d ' \n' <"$images_dir/TAG")
[ -n "$tag" ] || die "images/TAG is empty"
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap and buildah's chroot isolation need it)"

# --- tools, from Debian, only when missing ----------------------------------------------------
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v buildah >/dev/null || need+=(buildah)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# buildah's own storage, separate from any other container storage on the machine. (Two runs on
# the same $OEM_CACHE at once are not supported.)
store=$OEM_CACHE/buildah
mkdir -p "$out" "$store/root" "$store/run"
bh() { buildah --root "$store/root" --runroot "$store/run" --storage-driver "${OEM_STORAGE_DRIVER:-overlay}" "$@"; }

hash_tree() {  # content hash of files (path + mode + bytes), independent of mtimes
  (cd "$images_dir" && find "$@" -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sh -c 'for f; do printf "%s %s\n" "$f" "$(stat -c %a "$f")"; cat "$f"; done' sh) |
    sha256sum | cut -c1-16
}

# --- base rootfs per suite ---------------------------------------------------------------------
declare -A base_key=()
ensure_base() {  # SUITE -> builds/imports oem.local/oem-hosting/base-SUITE:TAG
  local suite=$1 key tarball ref
  [ -z "${base_key[$suite]:-}" ] || return 0
  key=$(printf '%s %s %s\n' "$suite" "$tag" "$(hash_tree base)" | sha256sum | cut -c1-16)
  tarball=$out/base-$suite-$key.tar
  ref=oem.local/oem-hosting/base-$suite:$tag
  if [ ! -s "$tarball" ]; then
    say "base-$suite: mmdebstrap (key $key)"
    bash "$images_dir/base/mmdebstrap.sh" "$suite" "$tarball.tmp" >"$out/base-$suite.log" 2>&1 ||
      { tail -20 "$out/base-$suite.log" >&2; die "mmdebstrap $suite failed (log $out/base-$suite.log)"; }
    mv "$tarball.tmp" "$tarball"
    find "$out" -maxdepth 1 -name "base-$suite-*.tar" ! -name "base-$suite-$key.tar" -delete
  fi
  if [ "$(bh inspect --type image --format '{{index .ImageAnnotations "oem.key"}}' "$ref" 2>/dev/null || true)" != "$key" ]; then
    say "base-$suite: importing the rootfs into buildah as $ref"
    local c; c=$(bh from --quiet scratch)
    bh add --quiet "$c" "$tarball" / >/dev/null
    bh config --annotation "oem.key=$key" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --cmd /bin/bash "$c"
    bh commit --quiet --rm --format oci "$c" "$ref" >/dev/null
  fi
  base_key[$suite]=$key
}

# --- the project's programs -------------------------------------------------------------------
program_of() { sed -n 's/^# program: *\([A-Za-z0-9_-]*\).*/\1/p' "$images_dir/$1/Containerfile" | head -1; }
declare -A binary_of=()
build_programs() {  # one cargo run for every program image (same features whichever is asked)
  local programs=() args=() image p target_dir
  for image in "$images_dir"/*/; do
    image=$(basename "$image")
    [ -f "$images_dir/$image/Containerfile" ] || continue
    p=$(program_of "$image")
    [ -z "$p" ] || programs+=("$p")
  done
  for p in "${programs[@]}"; do args+=(-p "$p" --bin "$p"); done
  command -v cargo >/dev/null || die "cargo is needed to build ${programs[*]} (https://rustup.rs)"
  # Run from a test (cargo test sets CARGO_PKG_NAME, CARGO_MANIFEST_DIR... for it), cargo would
  # see the variables that build scripts track (ring's rerun-if-env-changed) as changed and
  # rebuild half the tree: drop what cargo sets for crates, keep the user's own settings.
  local clean=() name
  for name in $(compgen -e); do
    case $name in
      CARGO_MANIFEST_*|CARGO_PKG_*|CARGO_CRATE_*|CARGO_BIN_*|CARGO_PRIMARY_PACKAGE|CARGO_TARGET_TMPDIR|\
      CARGO_CFG_*|CARGO_RUSTC_CURRENT_DIR|CARGO_MAKEFLAGS|OUT_DIR) clean+=(-u "$name") ;;
    esac
  done
  local t0=$SECONDS build=() folder
  case ${OEM_PROGRAM_PROFILE:-release} in
    release) build=(build --release --locked "${args[@]}"); folder=release ;;
    # The test binaries' own build (scripts/test.sh builds every binary of the workspace this
    # way): no second compilation of the dependency tree; debug info is stripped below.
    dev) build=(build --locked --workspace --bins); folder=debug ;;
    *) die "OEM_PROGRAM_PROFILE must be release or dev, not ${OEM_PROGRAM_PROFILE}" ;;
  esac
  say "programs: cargo ${build[*]}"
  (cd "$repo" && env "${clean[@]}" cargo "${build[@]}") >"$out/programs.log" 2>&1 ||
    { tail -30 "$out/programs.log" >&2; die "cargo ${build[*]} failed (log $out/programs.log)"; }
  [ $((SECONDS - t0)) -lt 5 ] || say "programs: built in $((SECONDS - t0))s"
  target_dir=$(cd "$repo" && cargo metadata --format-version 1 --no-deps --offline |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  for p in "${programs[@]}"; do
    [ -x "$target_dir/$folder/$p" ] || die "cargo built no $target_dir/$folder/$p"
    binary_of[$p]=$target_dir/$folder/$p
    if [ "$folder" = debug ]; then
      mkdir -p "$out/programs-dev"
      objcopy --strip-debug "$target_dir/$folder/$p" "$out/programs-dev/$p"
      binary_of[$p]=$out/programs-dev/$p
    fi
  done
}
for image in "${targets[@]}"; do
  if [ -n "$(program_of "$image")" ]; then build_programs; break; fi
done

# --- images ---------------------------------------------------------------------------------------
human() { numfmt --to=iec-i --suffix=B "$1"; }
declare -A archive_of=()
build_image() {
  local image=$1 suite key archive ref
  suite=$(sed -n 's#^FROM oem.local/oem-hosting/base-\([a-z]*\):.*#\1#p' "$images_dir/$image/Containerfile" | head -1)
  [ -n "$suite" ] || die "images/$image/Containerfile: FROM must be oem.local/oem-hosting/base-<suite>:\${TAG}"
  ensure_base "$suite"
  local program content context
  program=$(program_of "$image")
  if [ -n "$program" ]; then
    content="$(hash_tree "$image") $(sha256sum <"${binary_of[$program]}" | cut -c1-16)"
  else
    content=$(hash_tree "$image" common)
  fi
  key=$(printf '%s %s %s\n' "${base_key[$suite]}" "$tag" "$content" | sha256sum | cut -c1-16)
  archive=$out/$image-$key.oci.tar
  ref=oem.local/oem-hosting/$image:$tag
  if [ -s "$archive" ]; then
    say "$image: cached ($archive)"
    touch "$archive"  # in use: kept by the other keys' pruning
  else
    say "$image: building $ref (key $key)"
    local t0=$SECONDS
    context=$images_dir
    if [ -n "$program" ]; then  # the image's folder and the binary, nothing else
      context=$(mktemp -d "$out/context-$image.XXXXXX")
      cp -a "$images_dir/$image" "$context/$image"
      install -D -m 0755 "${binary_of[$program]}" "$context/bin/$program"
    fi
    bh bud --isolation chroot --layers=false --format oci --pull=false --build-arg "TAG=$tag" \
      --annotation "oem.key=$key" -f "$context/$image/Containerfile" -t "$ref" "$context" \
      >"$out/$image.log" 2>&1 ||
      { [ "$context" = "$images_dir" ] || rm -rf "$context"
        tail -30 "$out/$image.log" >&2; die "$image: build failed (log $out/$image.log)"; }
    [ "$context" = "$images_dir" ] || rm -rf "$context"
    rm -f "$archive.tmp"
    bh push --quiet "$ref" "oci-archive:$archive.tmp:$ref" >/dev/null
    mv "$archive.tmp" "$archive"
    # Archives of other keys go once unused for two days, not at once: another checkout (a
    # branch, a CI clone) may be using one right now.
    find "$out" -maxdepth 1 -name "$image-*.oci.tar*" ! -name "$image-$key.oci.tar*" -mtime +1 -delete
    say "$image: built in $((SECONDS - t0))s"
    built=1
  fi
  ln -sfn "$(basename "$archive")" "$out/$image.oci.tar"
  archive_of[$image]=$archive
}

built=0
for image in "${targets[@]}"; do build_image "$image"; done
# drop the untagged images earlier builds left in buildah's storage
[ "$built" = 0 ] || bh rmi --prune >/dev/null 2>&1 || true

# --- import into a containerd ------------------------------------------------------------------
if [ -n "$import_sock" ]; then
  ctr=${CTR:-}
  if [ -z "$ctr" ]; then
    ctr=$(ls -1d "$OEM_CACHE"/bin/containerd-*/ctr "$OEM_CACHE"/bin/containerd-*/bin/ctr 2>/dev/null | sort -V | tail -1 || true)
  fi
  [ -n "$ctr" ] && [ -x "$ctr" ] ||
    die "--import: no ctr found under $OEM_CACHE/bin/containerd-*/ (build containerd first, or set CTR=/path/to/ctr)"
  [ -S "$import_sock" ] || die "--import: $import_sock is not a socket"
  for image in "${targets[@]}"; do
    say "$image: importing into containerd at $import_sock"
    "$ctr" --address "$import_sock" -n k8s.io images import --no-unpack=false \
      --base-name "oem.local/oem-hosting/$image" "${archive_of[$image]}" >&2
  done
fi

# --- sizes -----------------------------------------------------------------------------------------
# archive: the OCI archive (compressed layers, base included); unpacked: the files in its layers
unpacked_size() {
  /usr/bin/python3 - "$1" <<'PY2'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
blob = lambda d: t.extractfile("blobs/sha256/" + d.split(":")[1])
manifest = json.load(blob(json.load(t.extractfile("index.json"))["manifests"][0]["digest"]))
total = 0
for layer in manifest["layers"]:
    with tarfile.open(fileobj=blob(layer["digest"]), mode="r:*") as lt:
        total += sum(m.size for m in lt if m.isfile())
print(total)
PY2
}
printf '%-12s %-44s %10s %10s\n' IMAGE NAME ARCHIVE UNPACKED
for image in "${targets[@]}"; do
  a=${archive_of[$image]}
  [ -s "$a.unpacked" ] || unpacked_size "$a" >"$a.unpacked" || echo 0 >"$a.unpacked"
  printf '%-12s %-44s %10s %10s\n' "$image" "oem.local/oem-hosting/$image:$tag" \
    "$(human "$(stat -L -c %s "$a")")" "$(human "$(cat "$a.unpacked")")"
done
