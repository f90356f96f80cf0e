#!/usr/bin/env bash
set -euo pipefail
# Unit tests (doctest): route table builder, validation, lookup, publisher/reader, JSON description.
bin="$KROUTE_BUILD/tests/unit/unit-tests"
"$bin" --reporters=junit --out="$KROUTE_RESULTS/unit.xml" >/dev/null 2>&1 && exit 0
"$bin" --no-version || true   # readable output for the failures
exit 1
