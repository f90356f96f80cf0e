#!/usr/bin/env bash
set -euo pipefail
# Suite "cluster": builds the control-plane tools if needed, then tests a real etcd + kube-apiserver with pytest.
source "$(dirname "$0")/../lib/cluster-suite.sh"
run_cluster_suite cluster test_cluster.py
