#!/usr/bin/env bash
set -euo pipefail
# Copies one channel (standard or experimental) of the Gateway API CRDs from the Go module cache into a kroute
# chart's files/gateway-api/<channel>/, where gatewayAPI.installCRDs takes them from, and removes any other channel
# there: Helm keeps the whole chart in the release's Secret, which may not exceed 1 MiB, and both channels with
# their rendering do. The release is the one tests/cluster/tools/conformance/go.mod requires (downloaded through
# the module proxy and checked against go.sum if missing). The copies are not committed (.gitignore); a chart
# packaged after this carries them.
#
#   chart-gateway-crds.sh [CHANNEL [CHART_DIR]]    default: standard, charts/kroute of this checkout

root=$(cd "$(dirname "$0")/.." && pwd)
channel=${1:-standard}
chart=${2:-$root/charts/kroute}
say() { echo "chart-gateway-crds: $*" >&2; }

[ -f "$chart/Chart.yaml" ] || { say "$chart is not a chart (no Chart.yaml)"; exit 1; }
source=$(bash "$root/tests/cluster/tools.sh" gateway-crds "$channel")
work=$(mktemp -d "$chart/files/.gateway-api-XXXXXX")
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir "$work/$channel"
for file in "$source"/*.yaml; do
  # kustomize's list of the files, not an object.
  [ "$(basename "$file")" = kustomization.yaml ] || install -m 0644 "$file" "$work/$channel/"
done
rm -rf "$chart/files/gateway-api"
mv "$work" "$chart/files/gateway-api"
trap - EXIT
say "$channel: $(find "$chart/files/gateway-api/$channel" -name '*.yaml' | wc -l) files from $source in $chart/files/gateway-api/$channel/"
