#!/usr/bin/env bash
set -euo pipefail
# `make run`: control plane, demo pods, kroute-agent and nginx with the module; applies examples/*.yaml.
# scripts/run_demo.py does the work and cleans up on Ctrl-C; pass --check to exit once the routes work.
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
exec /usr/bin/python3 "$root/scripts/run_demo.py" --build "$build" "$@"
