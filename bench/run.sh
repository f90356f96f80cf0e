#!/usr/bin/env bash
set -euo pipefail
# Runs the route table benchmarks and writes bench/results/table.{json,md}; `make bench` calls it.
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out="$root/bench/results"
mkdir -p "$out"
if [ ! -x "$build/bench/table-bench" ]; then
  echo "bench: $build/bench/table-bench is missing (libbenchmark-dev not installed? run make deps)" >&2
  exit 1
fi
echo "bench: route table microbenchmarks (about a minute)"
"$build/bench/table-bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_format=json --benchmark_out="$out/table.json" --benchmark_out_format=json >/dev/null
# Proof that an unchanged poll makes no system call: count the syscalls of a run that polls ~10^8 times.
strace_summary=""
if command -v strace >/dev/null; then
  strace -f -c -o "$out/poll-syscalls.txt" "$build/bench/table-bench" --benchmark_filter='ReaderPollUnchanged' \
    --benchmark_format=json --benchmark_out="$out/poll.json" --benchmark_out_format=json >/dev/null
  strace_summary="$out/poll-syscalls.txt"
fi
/usr/bin/python3 "$root/bench/report_table.py" "$out/table.json" "$out/poll.json" "$strace_summary" | tee "$out/table.md"
