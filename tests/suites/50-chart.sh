#!/usr/bin/env bash
set -euo pipefail
# Suite "chart": the Helm chart against a real etcd + kube-apiserver (lint, template, server dry-run, install, upgrade, uninstall, kubectl auth can-i as its service account), and its pod run for real on a cluster with a node (test_chart_pod.py: builds the image first with make image).
source "$(dirname "$0")/../lib/cluster-suite.sh"
root=${KROUTE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}

if ! docker info >/dev/null 2>&1; then
  echo "chart suite: needs a running Docker engine ('docker info' fails); Debian: apt-get install docker.io" >&2
  exit 1
fi
started=$(date +%s)
make -C "$root" --no-print-directory image
echo "chart suite: image ready in $(( $(date +%s) - started ))s"

run_cluster_suite chart test_chart.py test_chart_access.py test_chart_pod.py
