#!/usr/bin/env bash
set -euo pipefail
# Suite "integration": real nginx with the kroute module, tables published by kroute-table, echo backends on loopback.

root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export KROUTE_BUILD=${KROUTE_BUILD:-$root/build}
results=${KROUTE_RESULTS:-$KROUTE_BUILD/test-results}
mkdir -p "$results"

for built in "$KROUTE_BUILD/module/ngx_http_kroute_module.so" "$KROUTE_BUILD/routetable/tool/kroute-table"; do
  [ -e "$built" ] || { echo "integration suite: $built is missing; run make first" >&2; exit 1; }
done

source "$root/tests/lib/integration-suite.sh"
rc=0
run_integration_suite integration || rc=$?
exit "$rc"
