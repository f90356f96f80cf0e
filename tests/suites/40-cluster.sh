#!/usr/bin/env bash
set -euo pipefail
# Suite "cluster": builds the control-plane tools if needed, then tests a real etcd + kube-apiserver with pytest, and
# the workloads cluster: controllers, scheduler and the node agent running pods on docker (test_node.py).
source "$(dirname "$0")/../lib/cluster-suite.sh"
run_cluster_suite cluster test_cluster.py test_node.py
