#!/usr/bin/env bash
set -euo pipefail
# Suite "agent": kroute-agent against a real etcd + kube-apiserver (pytest tests/e2e/test_agent.py, test_audit.py).
source "$(dirname "$0")/../lib/cluster-suite.sh"
run_cluster_suite agent test_agent.py test_audit.py
