#!/usr/bin/env bash
set -euo pipefail
# Runs fuzz-snapshot and fuzz-objects side by side at nice 19 for a long time (make fuzz-long).
#
#   long.sh ASAN_BUILD_DIR SECONDS
#
# Each target starts from its seeds plus the corpus earlier runs left in ASAN_BUILD_DIR/<target>-corpus;
# libFuzzer's -timeout is wall-clock time, and at nice 19 on a busy machine one input can wait tens of
# seconds for a CPU, so the timeout is 10 minutes: only a real hang ends a run.
# logs and any crash inputs go to ASAN_BUILD_DIR/fuzz-long/. Prints each target's final line and stats;
# exits non-zero when either target found a crash, a leak, undefined behaviour or a broken invariant.
asan=$(cd "$1" && pwd)
seconds=$2
out="$asan/fuzz-long"
mkdir -p "$out"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop EXIT

declare -A corpus_tool=([fuzz-snapshot]=fuzz-corpus [fuzz-objects]=fuzz-object-corpus)
for target in fuzz-snapshot fuzz-objects; do
  corpus="$asan/$target-corpus"
  mkdir -p "$corpus"
  "$asan/tests/fuzz/${corpus_tool[$target]}" "$corpus"
  (cd "$out" && exec nice -n 19 "$asan/tests/fuzz/$target" -max_total_time="$seconds" -timeout=600 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/$target-" "$corpus" >"$out/$target.log" 2>&1) &
  pids+=("$!")
  echo "$target: running for ${seconds}s (pid $!), log $out/$target.log"
done

failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || failed=1
done
pids=()
for target in fuzz-snapshot fuzz-objects; do
  echo "== $target"
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::|^SUMMARY|^==[0-9]+==ERROR|fuzz-objects: ' "$out/$target.log" || tail -n 20 "$out/$target.log"
  # Edge coverage of the final corpus per source file (exception and sanitizer edges count too, so no
  # file reaches 100 %); the per-function detail stays in $target.coverage.txt.
  (cd "$out" && "$asan/tests/fuzz/$target" -runs=0 -print_coverage=1 "$asan/$target-corpus" >/dev/null 2>"$target.coverage.txt") || true
  awk '/^(UN)?COVERED_FUNC/ { split($5, e, "/"); file = $NF; sub(/:[0-9]+$/, "", file); sub(/.*\.\.\//, "", file);
         covered[file] += e[1]; total[file] += e[2] }
       END { for (f in covered) if (f ~ /^(agent|routetable)\/.*\.cc$/)
               printf "  %-26s %5d of %5d edges (%.0f%%)\n", f, covered[f], total[f], 100 * covered[f] / total[f] }' \
    "$out/$target.coverage.txt" | sort | tee "$out/$target.coverage"
done
exit "$failed"
