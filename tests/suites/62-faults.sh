#!/usr/bin/env bash
set -euo pipefail
# Suite "faults": nginx keeps serving through an agent SIGKILLed while publishing, an API server stopped,
# refusing or blackholed, killed nginx workers, and a full, unwritable or deleted table directory
# (pytest tests/e2e/test_faults.py). KROUTE_FAULTS_FULL=1 (make faults-full) runs the long variant.
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$root/tests/lib/cluster-suite.sh"
source "$root/tests/lib/e2e-leftovers.sh"

e2e_run_begin faults  # TMPDIR: the run's own directory, where the tests also mount their table directories
rc=0
run_cluster_suite faults test_faults.py || rc=$?
# A tmpfs or read-only bind mount the tests left: unmounted before the run's directory is removed.
for dir in $(awk -v run="$TMPDIR/" 'index($2, run) == 1 { print $2 }' /proc/mounts | sort -r); do
  echo "faults suite: mount left behind: $dir" >&2
  umount -l "$dir" || true
  rc=1
done
e2e_run_end faults || rc=1
exit "$rc"
