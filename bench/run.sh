#!/usr/bin/env bash
set -euo pipefail
# Runs the route table benchmarks and writes table.json (Google Benchmark's JSON) and table.md into the
# output directory (default bench/results). `make bench-table` runs it; `make bench` (bench/report) runs
# it as one part of the report.
#   bench/run.sh [--quick] [--out DIR] [BUILD]
#   --quick: the lookup benchmarks and their baseline only, 3 repetitions, no strace run (~20 s).
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
out="$root/bench/results"
build="$root/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out=$2; shift ;;
    -*) echo "bench/run.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1 ;;
  esac
  shift
done
mkdir -p "$out"
if [ ! -x "$build/bench/table-bench" ]; then
  echo "bench: $build/bench/table-bench is missing (libbenchmark-dev not installed? run make deps)" >&2
  exit 1
fi
rm -f "$out/poll.json" "$out/poll-syscalls.txt"
if [ "$quick" = 1 ]; then
  echo "bench: route table lookups, quick (about 20 seconds)"
  "$build/bench/table-bench" --benchmark_filter='BM_Baseline_UnorderedMapFind|BM_Lookup_' \
    --benchmark_repetitions=3 --benchmark_min_time=0.2 --benchmark_report_aggregates_only=true \
    --benchmark_format=json --benchmark_out="$out/table.json" --benchmark_out_format=json >/dev/null
  /usr/bin/python3 "$root/bench/report_table.py" "$out/table.json" | tee "$out/table.md"
  exit 0
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
