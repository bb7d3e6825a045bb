#!/usr/bin/env bash
# Installs what the probe benchmark (e2e/src/bin/bench-probes.rs) compares against:
# Prometheus blackbox_exporter (Debian package prometheus-blackbox-exporter), plus the daemons
# of install.sh. Idempotent. Leaves no system service running: the benchmark starts its own
# instance on 127.0.0.1 with a generated configuration.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$here/install.sh"
if command -v prometheus-blackbox-exporter >/dev/null 2>&1 || [ -x /usr/bin/prometheus-blackbox-exporter ]; then
    echo "e2e/daemons: blackbox_exporter already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "e2e/daemons/install-bench.sh must run as root (apt-get install)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps the package's service from starting on install (ours only if none exists).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y --no-install-recommends prometheus-blackbox-exporter
