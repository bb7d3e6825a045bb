#!/bin/bash
# Makes the Debian base rootfs tarball every image builds on: minbase + our dpkg filters
# (no docs, man pages or translations), the user hosting (uid/gid 10001) and /srv owned by it.
# Usage: mmdebstrap.sh SUITE OUT.tar
set -euo pipefail
suite=$1 out=$2
mirror=${OEM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${OEM_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
case $suite in
  # bookworm's minbase pulls usrmerge (and with it perl, ~50 MB) although /usr is merged
  # already: drop it again
  bookworm) extra=(--include=usr-is-merged
                   --customize-hook='chroot "$1" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q usrmerge perl libperl5.36 perl-modules-5.36 libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl >/dev/null')
            sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main") ;;
  trixie)   extra=()
            sources=("deb $mirror trixie main" "deb $mirror trixie-updates main" "deb $security trixie-security main") ;;
  *) echo "unknown suite $suite" >&2; exit 2 ;;
esac
mmdebstrap --variant=minbase --mode=root --format=tar "${extra[@]}" \
  --aptopt='Acquire::Retries "3"' --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='chroot "$1" groupadd -g 10001 hosting' \
  --customize-hook='chroot "$1" useradd -u 10001 -g 10001 -d /tmp -M -s /usr/sbin/nologin hosting' \
  --customize-hook='install -d -o 10001 -g 10001 -m 0755 "$1/srv"' \
  --customize-hook='rm -f "$1/etc/resolv.conf" "$1/etc/hostname" && : >"$1/etc/hosts"' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*.log "$1"/var/cache/ldconfig/aux-cache' \
  "$suite" "$out" "${sources[@]}"
