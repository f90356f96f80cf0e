#!/usr/bin/env bash
set -euo pipefail
# Agent unit tests (doctest): kubeconfig/in-cluster config, JSON projections, the compiler, watch events, backoff.
bin="$KROUTE_BUILD/tests/agent/agent-unit-tests"
# The tests log skipped objects on purpose; only doctest's verdict matters here.
"$bin" --reporters=junit --out="$KROUTE_RESULTS/agent-unit.xml" >/dev/null 2>&1 && exit 0
"$bin" --no-version 2>/dev/null || true   # readable output for the failures
exit 1
