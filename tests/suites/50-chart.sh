#!/usr/bin/env bash
set -euo pipefail
# Suite "chart": the Helm chart against a real etcd + kube-apiserver (lint, template, server dry-run, install, upgrade, uninstall, kubectl auth can-i as its service account).
source "$(dirname "$0")/../lib/cluster-suite.sh"
run_cluster_suite chart test_chart.py test_chart_access.py
