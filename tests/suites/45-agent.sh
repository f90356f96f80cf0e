#!/usr/bin/env bash
set -euo pipefail
# Suite "agent": kroute-agent against a real etcd + kube-apiserver (pytest tests/e2e/test_agent.py).

root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
export KROUTE_BUILD=${KROUTE_BUILD:-$root/build}
mkdir -p "$results"

bash "$root/tests/cluster/tools.sh" build

scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-agent-suite.XXXXXX")
# The fixtures stop their agents and cluster; this is the net under them for a pytest killed outright.
stop_leftovers() {
  local dir pid
  for pid in $(pgrep -f "$scratch/" 2>/dev/null || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kroute-agent"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for dir in $(find "$scratch" -name kube-apiserver.log -printf '%h\n' 2>/dev/null | sort -u); do
    KROUTE_CLUSTER_DIR="$dir" bash "$root/tests/cluster/down.sh" || true
  done
  rm -rf "$scratch"
}
trap stop_leftovers EXIT

rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/e2e" && /usr/bin/python3 -m pytest test_agent.py -p no:cacheprovider \
  --basetemp "$scratch/pytest" --junitxml "$results/agent.xml" -q -rfE) || rc=$?

# Nothing may outlive the run: every agent and the control plane must have been stopped.
leftovers=()
for cmdline in /proc/[0-9]*/cmdline; do
  if [[ "$(tr '\0' ' ' 2>/dev/null <"$cmdline")" == *"$scratch/"* ]]; then
    leftovers+=("$(basename "$(dirname "$cmdline")")")
  fi
done
if [ ${#leftovers[@]} -gt 0 ]; then
  echo "agent suite: processes still running after pytest (pids ${leftovers[*]}); stopping them" >&2
  rc=1
fi
exit "$rc"
