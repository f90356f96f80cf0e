#!/usr/bin/env bash
set -euo pipefail
# Stress: 4 reader processes look up while a writer publishes 10,000 generations (no torn reads).
bin="$KROUTE_BUILD/tests/stress/stress-tests"
"$bin" --reporters=junit --out="$KROUTE_RESULTS/stress.xml" >/dev/null 2>&1 && exit 0
"$bin" --no-version || true
exit 1
