#!/usr/bin/env bash
set -euo pipefail
# `make run` for now: publishes the demo route table with kroute-table, then shows dump and lookups.
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
table="$build/kroute-table"
[ -x "$table" ] || table="$build/routetable/tool/kroute-table"
dir="$build/demo-table"
rm -rf "$dir"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@" || true; }

say "$table" --dir "$dir" build "$root/examples/demo-table.json"
say "$table" --dir "$dir" dump
say "$table" --dir "$dir" lookup blue.example.com /anything
say "$table" --dir "$dir" lookup SHOP.example.com:443 /api/v2/orders
say "$table" --dir "$dir" lookup shop.example.com /healthz/
say "$table" --dir "$dir" lookup web.apps.example.com /
say "$table" --dir "$dir" lookup a.b.apps.example.com /
cat <<MSG

The table lives in $dir. Edit examples/demo-table.json and run
  $table --dir $dir build examples/demo-table.json
to publish a new generation; lookups see it at once.
MSG
