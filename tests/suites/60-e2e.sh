#!/usr/bin/env bash
set -euo pipefail
# Suite "e2e": the whole stack with test pods in network namespaces (tests/e2e, pytest).
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
mkdir -p "$results"
before=$(ip netns list | awk '{print $1}' | grep '^kr-' | sort || true)
rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/e2e" && /usr/bin/python3 -m pytest test_netns.py -p no:cacheprovider \
  --junitxml "$results/e2e.xml" -q -rfE) || rc=$?
after=$(ip netns list | awk '{print $1}' | grep '^kr-' | sort || true)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)
if [ -n "$new" ]; then
  echo "e2e suite: test pods left behind: $new" >&2
  for ns in $new; do ip netns pids "$ns" | xargs -r kill -9; ip netns delete "$ns"; rm -rf "/etc/netns/$ns"; done
  rc=1
fi
exit "$rc"
