#!/usr/bin/env bash
# `make status`: what `make up` runs (namespace, cluster, real node, operator, webhooks, panel,
# forwards) and whether it answers; exit status 1 when something is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OEM_CLUSTER_DIR=${OEM_CLUSTER_DIR:-$repo/.cluster/dev}
dir=$OEM_CLUSTER_DIR
if ! holder_alive; then
  echo "make up is not running (no network namespace $up_netns held for $dir)"
  [ -d "$dir" ] && echo "state left in $dir: make down removes it"
  exit 1
fi
echo "network namespace $up_netns, held by pid $(cat "$(holder_pidfile)")"
rc=0
in_netns bash "$repo/e2e/cluster/cluster.sh" status || rc=1
for name in operator webhooks panel forward-api-netns forward-api-host forward-site-netns \
            forward-site-host forward-metrics-netns forward-metrics-host forward-panel-netns \
            forward-panel-host forward-https-netns forward-https-host; do
  if process_alive "$name" "$dir"; then
    printf '%-24s running (pid %s)\n' "$name" "$(cat "$dir/pids/$name.pid")"
  else
    printf '%-24s stopped\n' "$name"; rc=1
  fi
done
if [ -f "$dir/site" ]; then
  port=${OEM_SITE_PORT:-18081}
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/" || true)
  echo "example site: http://127.0.0.1:$port/ answers $code ($(cat "$dir/site"))"
  [ "$code" = 200 ] || rc=1
fi
panel_port=${OEM_PANEL_PORT:-18082}
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$panel_port/healthz" || true)
echo "end users' panel: http://127.0.0.1:$panel_port/login/<reseller> (/healthz answers $code)"
[ "$code" = 200 ] || rc=1
exit $rc
