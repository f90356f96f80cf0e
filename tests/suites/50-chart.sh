#!/usr/bin/env bash
set -euo pipefail
# Suite "chart": the Helm chart against a real etcd + kube-apiserver (lint, template, server dry-run, install,
# upgrade, uninstall, kubectl auth can-i as its service account): pytest tests/e2e/test_chart.py.

root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
mkdir -p "$results"

bash "$root/tests/cluster/tools.sh" build

scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-chart-suite.XXXXXX")
# The pytest fixture stops its cluster; this is the net under it for a pytest that is killed outright.
stop_leftovers() {
  local dir
  for dir in $(find "$scratch" -name kube-apiserver.log -printf '%h\n' 2>/dev/null | sort -u); do
    KROUTE_CLUSTER_DIR="$dir" bash "$root/tests/cluster/down.sh" || true
  done
  rm -rf "$scratch"
}
trap stop_leftovers EXIT

rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/e2e" && /usr/bin/python3 -m pytest test_chart.py -p no:cacheprovider \
  --basetemp "$scratch/pytest" --junitxml "$results/chart.xml" -q -rfE) || rc=$?

leftovers=()
for cmdline in /proc/[0-9]*/cmdline; do
  if [[ "$(tr '\0' ' ' 2>/dev/null <"$cmdline")" == *"$scratch/"* ]]; then
    leftovers+=("$(basename "$(dirname "$cmdline")")")
  fi
done
if [ ${#leftovers[@]} -gt 0 ]; then
  echo "chart suite: processes still running after pytest (pids ${leftovers[*]}); stopping them" >&2
  rc=1
fi
exit "$rc"
