#!/usr/bin/env bash
set -euo pipefail
# Suite "node-unit": the node agent's Go unit tests (tests/cluster/node: $(VAR) expansion, restart back-off, the
# atomic volume writer, ...) with `go test`; the Go toolchain is the one the cluster tools build with.
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
mkdir -p "$results"
go=$(bash "$root/tests/cluster/tools.sh" go 2>/dev/null)
cd "$root/tests/cluster/node"
GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 "$go" test -json -count=1 ./... 2>&1 |
  /usr/bin/python3 "$root/tests/lib/gotest_junit.py" "$results/node-unit.xml"
