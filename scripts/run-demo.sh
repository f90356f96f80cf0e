#!/usr/bin/env bash
set -euo pipefail
# `make run`: a cluster that runs pods on docker, the examples as real Deployments, kroute in front of them (host
# processes, or with --helm the chart's pod). scripts/run_demo.py does the work and cleans up on Ctrl-C and SIGTERM;
# --check runs the walk-through itself and exits.
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
exec /usr/bin/python3 "$root/scripts/run_demo.py" --build "$build" "$@"
