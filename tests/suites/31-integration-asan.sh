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

source "$root/tests/lib/integration-suite.sh"
rc=0
run_integration_suite integration-asan -p sanitizers || rc=$?
check_sanitizer_reports integration-asan || rc=1
exit "$rc"
