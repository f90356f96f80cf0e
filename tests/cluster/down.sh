#!/usr/bin/env bash
set -euo pipefail
# Stops the control plane that up.sh started for $KROUTE_CLUSTER_DIR (default build/cluster); keeps its data and certificates.
# Safe to run when nothing is running.

here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
stop_cluster
