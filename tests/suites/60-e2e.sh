#!/usr/bin/env bash
set -euo pipefail
# Suite "e2e": the whole stack, kubectl to curl, with test pods in network namespaces (tests/e2e, pytest).
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
results=${KROUTE_RESULTS:-$root/build/test-results}
mkdir -p "$results"
# test_run_demo.py's `make run-helm` runs the kroute image (an unchanged tree takes seconds).
make -C "$root" --no-print-directory image
leftover_pods() { ip netns list | awk '{print $1}' | grep '^kr-' | sort || true; }
leftover_nginx() { pgrep -f 'nginx: master process .*/kroute-(nginx|stack)-' | sort || true; }
source "$root/tests/lib/cluster-docker.sh"
before=$(leftover_pods)
docker_before=$(cluster_docker_objects)
nginx_before=$(leftover_nginx)
rc=0
# Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
(cd "$root/tests/e2e" && /usr/bin/python3 -m pytest test_netns.py test_conformance.py test_live.py test_run_demo.py test_takeover.py test_annotations.py test_annotations_proxy.py test_annotations_errors.py test_annotations_balance.py test_annotations_protocol.py test_access_lists.py test_access_limits.py test_access_extauth.py test_access_basic.py test_access_cors.py test_access_clientcert.py test_gateway_api.py \
  -p no:cacheprovider --junitxml "$results/e2e.xml" -q -rfEs) || rc=$?
after=$(leftover_pods)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)
if [ -n "$new" ]; then
  echo "e2e suite: test pods left behind: $new" >&2
  for ns in $new; do ip netns pids "$ns" | xargs -r kill -9; ip netns delete "$ns"; rm -rf "/etc/netns/$ns"; done
  rc=1
fi
docker_left=$(comm -13 <(echo "$docker_before") <(cluster_docker_objects) | grep . || true)
if [ -n "$docker_left" ]; then
  echo "e2e suite: docker objects of a test cluster left behind (make run): $(echo "$docker_left" | tr '\n' ' ')" >&2
  rc=1
fi
stray=$(comm -13 <(echo "$nginx_before") <(leftover_nginx) | grep . || true)
if [ -n "$stray" ]; then
  echo "e2e suite: nginx left running: $stray" >&2
  for pid in $stray; do kill -9 "$pid" || true; done
  rc=1
fi
exit "$rc"
