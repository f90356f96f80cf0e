#!/usr/bin/env bash
set -euo pipefail
# Runs every test suite in tests/suites (or the ones named), then prints one summary line for all of them.
# A suite is an executable tests/suites/NN-name.sh that writes JUnit XML to $KROUTE_RESULTS/name.xml;
# a suite that exits non-zero without writing any result counts as one failure.

root=$(cd "$(dirname "$0")/.." && pwd)
export KROUTE_ROOT="$root"
export KROUTE_BUILD="${KROUTE_BUILD:-$root/build}"
export KROUTE_RESULTS="${KROUTE_RESULTS:-$KROUTE_BUILD/test-results}"
rm -rf "$KROUTE_RESULTS"
mkdir -p "$KROUTE_RESULTS"

wanted=("$@")
for script in "$root"/tests/suites/*.sh; do
  base=$(basename "$script" .sh)
  name=${base#*-}
  if [ ${#wanted[@]} -gt 0 ] && ! printf '%s\n' "${wanted[@]}" | grep -qx "$name"; then
    continue
  fi
  echo "=== suite $name"
  start=$(date +%s)
  if bash "$script"; then rc=0; else rc=$?; fi
  echo "=== suite $name finished in $(( $(date +%s) - start ))s (exit $rc)"
  if [ ! -s "$KROUTE_RESULTS/$name.xml" ] && [ "$rc" -ne 0 ]; then
    printf '<testsuite name="%s" tests="1" failures="1"><testcase name="%s"><failure message="suite exited %s without results"/></testcase></testsuite>\n' \
      "$name" "$name" "$rc" > "$KROUTE_RESULTS/$name.xml"
  fi
  echo "$rc" > "$KROUTE_RESULTS/$name.exit"
done

exec /usr/bin/python3 "$root/tests/summarize.py" "$KROUTE_RESULTS"
