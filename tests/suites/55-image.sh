#!/usr/bin/env bash
set -euo pipefail
# Suite "image": builds the image (make image: cached layers make an unchanged tree take seconds), then runs it
# with docker as the chart's pod spec does, against a real kube-apiserver: pytest tests/e2e/test_image.py.

root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
mkdir -p "$results"

bash "$root/tests/cluster/tools.sh" build
started=$(date +%s)
make -C "$root" --no-print-directory image
echo "image suite: image ready in $(( $(date +%s) - started ))s"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-image-suite.XXXXXX")
export KROUTE_DOCKER_SESSION="suite-${scratch##*.}"
# The fixtures remove their containers, networks and volumes and stop the cluster; this is the net under
# them for a pytest that is killed outright.
stop_leftovers() {
  local dir filter="label=kroute.test.session=$KROUTE_DOCKER_SESSION"
  docker ps -aq --filter "$filter" | xargs -r docker rm -f -v >/dev/null 2>&1 || true
  docker volume ls -q --filter "$filter" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter "$filter" | xargs -r docker network rm >/dev/null 2>&1 || true
  for dir in $(find "$scratch" -name kube-apiserver.log -printf '%h\n' 2>/dev/null | sort -u); do
    KROUTE_CLUSTER_DIR="$dir" bash "$root/tests/cluster/down.sh" || true
  done
  rm -rf "$scratch"
}
trap stop_leftovers EXIT

rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/e2e" && /usr/bin/python3 -m pytest test_image.py -p no:cacheprovider \
  --basetemp "$scratch/pytest" --junitxml "$results/image.xml" -q -rfE) || rc=$?

# Nothing may outlive the run: no container, network or volume of this session, no cluster process.
left=$(docker ps -aq --filter "label=kroute.test.session=$KROUTE_DOCKER_SESSION"; \
       docker network ls -q --filter "label=kroute.test.session=$KROUTE_DOCKER_SESSION"; \
       docker volume ls -q --filter "label=kroute.test.session=$KROUTE_DOCKER_SESSION")
if [ -n "$left" ]; then
  echo "image suite: docker objects left after pytest: $(echo $left)" >&2
  rc=1
fi
for cmdline in /proc/[0-9]*/cmdline; do
  if [[ "$(tr '\0' ' ' 2>/dev/null <"$cmdline")" == *"$scratch/"* ]]; then
    echo "image suite: process $(basename "$(dirname "$cmdline")") still running after pytest" >&2
    rc=1
  fi
done
exit "$rc"
