#!/usr/bin/env bash
set -euo pipefail
# Suite "faults": nginx keeps serving through an agent SIGKILLed while publishing, an API server stopped,
# refusing or blackholed, killed nginx workers, and a full, unwritable or deleted table directory
# (pytest tests/e2e/test_faults.py). KROUTE_FAULTS_FULL=1 (make faults-full) runs the long variant.
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$root/tests/lib/cluster-suite.sh"
source "$root/tests/lib/e2e-leftovers.sh"

# The table directory tests also mount (a small tmpfs, a read-only bind mount); none may stay.
fault_mounts() { awk '$2 ~ /\/kroute-(full|stack)-/ { print $2 }' /proc/mounts | sort; }
mounts_before=$(fault_mounts)
e2e_leftovers_before
rc=0
run_cluster_suite faults test_faults.py || rc=$?
e2e_leftovers_check faults || rc=1
for dir in $(comm -13 <(echo "$mounts_before") <(fault_mounts) | sort -r); do
  echo "faults suite: mount left behind: $dir" >&2
  umount -l "$dir" || true
  rc=1
done
exit "$rc"
