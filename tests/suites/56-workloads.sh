#!/usr/bin/env bash
set -euo pipefail
# Suite "workloads": rollouts under load with zero errors, on a cluster with a node: kroute from the chart (2 replicas) behind a test load balancer, 200 requests a second through it while a backend Deployment restarts and scales and while kroute itself restarts (tests/e2e/test_rollout.py; builds the image first with make image).
source "$(dirname "$0")/../lib/cluster-suite.sh"
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}

if ! docker info >/dev/null 2>&1; then
  echo "workloads suite: needs a running Docker engine ('docker info' fails); Debian: apt-get install docker.io" >&2
  exit 1
fi
started=$(date +%s)
make -C "$root" --no-print-directory image
echo "workloads suite: image ready in $(( $(date +%s) - started ))s"

run_cluster_suite workloads test_rollout.py
