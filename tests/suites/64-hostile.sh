#!/usr/bin/env bash
set -euo pipefail
# Suite "hostile": hostile and malformed objects and the security properties, through the real API server,
# kroute-agent and nginx with test pods in network namespaces (tests/e2e/test_hostile.py, test_security.py).
source "$(dirname "$0")/../lib/cluster-suite.sh"
run_cluster_suite hostile test_hostile.py test_security.py
