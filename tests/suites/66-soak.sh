#!/usr/bin/env bash
set -euo pipefail
# Suite "soak": steady load on stable routes and 10 API changes a second through the whole stack; requests,
# memory and descriptors must stay flat (tests/e2e/test_soak.py). The CI variant runs KROUTE_SOAK_SECONDS
# (default 100); `make soak` runs 30 minutes. The summary: $KROUTE_RESULTS/soak.{json,md}.
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$root/tests/lib/cluster-suite.sh"
source "$root/tests/lib/e2e-leftovers.sh"
export KROUTE_SOAK_SECONDS=${KROUTE_SOAK_SECONDS:-100}
export KROUTE_RESULTS=${KROUTE_RESULTS:-$root/build/test-results}

e2e_run_begin soak
rc=0
run_cluster_suite soak test_soak.py || rc=$?
e2e_run_end soak || rc=1
exit "$rc"
