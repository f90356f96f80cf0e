#!/usr/bin/env bash
set -euo pipefail
# Suite "image": builds the image (make image; an unchanged tree takes seconds), then runs it with docker as the chart's pod spec does, against a real kube-apiserver (tests/e2e/test_image.py).
source "$(dirname "$0")/../lib/cluster-suite.sh"
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}

if ! docker info >/dev/null 2>&1; then
  echo "image suite: needs a running Docker engine ('docker info' fails); Debian: apt-get install docker.io" >&2
  exit 1
fi
started=$(date +%s)
make -C "$root" --no-print-directory image
echo "image suite: image ready in $(( $(date +%s) - started ))s"

# Every container, network and volume the tests make carries this label; whatever a killed pytest left
# behind is removed here, and counts as a failure.
export KROUTE_DOCKER_SESSION="suite-$$-$(date +%s)"
filter="label=kroute.test.session=$KROUTE_DOCKER_SESSION"
docker_leftovers() {
  docker ps -aq --filter "$filter"; docker network ls -q --filter "$filter"; docker volume ls -q --filter "$filter"
}

rc=0
run_cluster_suite image test_image.py || rc=$?
left=$(docker_leftovers)
if [ -n "$left" ]; then
  echo "image suite: docker objects left after pytest: $(echo "$left" | tr '\n' ' '); removing them" >&2
  docker ps -aq --filter "$filter" | xargs -r docker rm -f -v >/dev/null || true
  docker volume ls -q --filter "$filter" | xargs -r docker volume rm -f >/dev/null || true
  docker network ls -q --filter "$filter" | xargs -r docker network rm >/dev/null || true
  rc=1
fi
exit "$rc"
