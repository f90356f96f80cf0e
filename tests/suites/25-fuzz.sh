#!/usr/bin/env bash
set -euo pipefail
# libFuzzer on snapshot validation and lookup, under ASan and UBSan, for a bounded time.
source "$KROUTE_ROOT/tests/lib/junit.sh"
asan="${KROUTE_BUILD_ASAN:-$KROUTE_ROOT/build-asan}"
seconds="${KROUTE_FUZZ_SECONDS:-45}"
corpus="$asan/fuzz-corpus"
log="$KROUTE_RESULTS/fuzz.log"
mkdir -p "$corpus"
"$asan/tests/fuzz/fuzz-corpus" "$corpus"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
rc=0
(cd "$asan" && "$asan/tests/fuzz/fuzz-snapshot" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$corpus") >"$log" 2>&1 || rc=$?
grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units)' "$log" || true
[ "$rc" -eq 0 ] || tail -n 40 "$log"
junit_case fuzz "fuzz-snapshot for ${seconds}s" "$rc" "$log"
exit "$rc"
