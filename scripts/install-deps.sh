#!/usr/bin/env bash
# Debian packages the scripts and tests use; installs only what is missing.
set -euo pipefail
need=()
for pair in openssl:openssl curl:curl ip:iproute2 unshare:util-linux flock:util-linux \
            setsid:util-linux python3:python3 make:make \
             iptables-save:iptables conntrack:conntrack socat:socat nsenter:util-linux \
             chromium:chromium chromedriver:chromium-driver \
            mmdebstrap:mmdebstrap buildah:buildah objcopy:binutils; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# The real node's test image is busybox-static's one binary (e2e/tests/real_node.rs).
[[ $(dpkg-query -W -f '${Status}' busybox-static 2>/dev/null) == 'install ok installed' ]] || need+=(busybox-static)
# The panel's browser test renders Japanese pages (e2e/tests/panel_browser.rs screenshots).
[[ $(dpkg-query -W -f '${Status}' fonts-noto-cjk 2>/dev/null) == 'install ok installed' ]] || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
for tool in go cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool is not on PATH" >&2; exit 1; }
done
