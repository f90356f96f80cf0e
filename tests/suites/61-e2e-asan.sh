#!/usr/bin/env bash
set -euo pipefail
# Suite "e2e-asan": the end-to-end tests that exercise the agent and the module most (conformance, live
# changes under load, the agent against the API server, the annotations' policy modules, the Gateway API) against the
# sanitizer build (make asan):
# kroute-agent and kroute-table built with -fsanitize=address,undefined, the module the same way in
# Debian's nginx (clang's runtime preloaded). Any sanitizer report fails the test in which it appeared.
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$root/tests/lib/cluster-suite.sh"
source "$root/tests/lib/sanitizer-env.sh"
source "$root/tests/lib/e2e-leftovers.sh"
use_sanitizer_build "$root"

e2e_run_begin e2e-asan
# test_agent.py first: some of its tests count every TLS Secret in the cluster, as in the suite `agent`,
# where they have a control plane to themselves; the conformance tests leave Secrets behind.
rc=0
run_cluster_suite e2e-asan -p sanitizers \
  test_agent.py test_conformance.py test_live.py test_annotations.py test_annotations_proxy.py test_annotations_errors.py test_annotations_balance.py test_annotations_protocol.py test_access_lists.py test_access_limits.py test_access_extauth.py test_access_basic.py test_access_cors.py test_access_clientcert.py test_gateway_api.py || rc=$?
e2e_run_end e2e-asan || rc=1
check_sanitizer_reports e2e-asan || rc=1
exit "$rc"
