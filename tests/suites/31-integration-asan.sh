#!/usr/bin/env bash
set -euo pipefail
# Suite "integration-asan": the integration tests (tests/integration) against the sanitizer build (make asan):
# the module built with -fsanitize=address,undefined in Debian's nginx (clang's runtime preloaded). Any
# sanitizer report fails the test in which it appeared.

root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
mkdir -p "$results"
source "$root/tests/lib/sanitizer-env.sh"
# The module under test is the sanitized one; the tables are published with the release kroute-table
# when there is one. A sanitized process start costs ~50 ms, and test_publish makes 100 publishes under
# a load that lasts 12 s. kroute-table's code runs sanitized in unit-asan, fuzz and e2e-asan.
release_tool="${KROUTE_BUILD:-$root/build}/routetable/tool/kroute-table"
use_sanitizer_build "$root"
if [ -x "$release_tool" ]; then export KROUTE_TABLE_TOOL="$release_tool"; fi

# Every temporary file of the run lives here; nginx workers run as another user and must read it.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-integration-asan.XXXXXX")
chmod 755 "$scratch"
# The fixtures stop what they start; this is the net under them for a pytest that is killed outright.
stop_leftovers() {
  local pid
  for pid in $(pgrep -f "nginx: master process .*$scratch/" || true); do
    echo "integration-asan suite: nginx master $pid outlived pytest; stopping it" >&2
    kill -TERM "$pid" 2>/dev/null || true
  done
  rm -rf "$scratch"
}
trap stop_leftovers EXIT

rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/integration" && TMPDIR="$scratch" /usr/bin/python3 -m pytest . -p sanitizers -p no:cacheprovider \
  --basetemp "$scratch/pytest" --junitxml "$results/integration-asan.xml" \
  -q -rfE) || rc=$?

if pgrep -f "nginx: master process .*$scratch/" >/dev/null; then
  echo "integration-asan suite: nginx still running after pytest" >&2
  rc=1
fi
check_sanitizer_reports integration-asan || rc=1
exit "$rc"
