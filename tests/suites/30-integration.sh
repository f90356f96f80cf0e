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

# Every temporary file of the run lives here; nginx workers run as another user and must read it.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-integration.XXXXXX")
chmod 755 "$scratch"
# The fixtures stop what they start; this is the net under them for a pytest that is killed outright.
stop_leftovers() {
  local pid
  for pid in $(pgrep -f "nginx: master process .*$scratch/" || true); do
    echo "integration suite: nginx master $pid outlived pytest; stopping it" >&2
    kill -TERM "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap stop_leftovers EXIT

rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/integration" && TMPDIR="$scratch" /usr/bin/python3 -m pytest . -p no:cacheprovider \
  --basetemp "$scratch/pytest" --junitxml "$results/integration.xml" -q -rfE) || rc=$?

if pgrep -f "nginx: master process .*$scratch/" >/dev/null; then
  echo "integration suite: nginx still running after pytest" >&2
  rc=1
fi
exit "$rc"
