#!/usr/bin/env bash
set -euo pipefail
# libFuzzer under ASan and UBSan, each target for a bounded time: snapshot validation and lookup
# (fuzz-snapshot), and Kubernetes objects through the agent's projections, compiler and builder
# (fuzz-objects). KROUTE_FUZZ_SECONDS sets the time per target; `make fuzz-long` runs them for 30 minutes.
asan="${KROUTE_BUILD_ASAN:-$KROUTE_ROOT/build-asan}"
seconds="${KROUTE_FUZZ_SECONDS:-40}"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

cases=""
failures=0
# fuzz TARGET CORPUS_TOOL: seeds the target's corpus (kept in the ASan build directory, so it grows from
# run to run), fuzzes, and adds a JUnit test case; a crash's input is kept next to the results.
fuzz() {
  local target=$1 corpus_tool=$2 rc=0
  local corpus="$asan/$target-corpus" log="$KROUTE_RESULTS/$target.log"
  mkdir -p "$corpus"
  "$asan/tests/fuzz/$corpus_tool" "$corpus"
  (cd "$asan" && "$asan/tests/fuzz/$target" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$KROUTE_RESULTS/$target-" "$corpus") >"$log" 2>&1 || rc=$?
  echo "$target: $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || echo 'did not finish')"
  local body=""
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log"
    failures=$((failures + 1))
    body="<failure message=\"exit $rc\"><![CDATA[$(tail -n 40 "$log" | sed 's/]]>/]] >/g')]]></failure>"
  fi
  cases+="<testcase classname=\"fuzz\" name=\"$target for ${seconds}s\">$body</testcase>"
}

fuzz fuzz-snapshot fuzz-corpus
fuzz fuzz-objects fuzz-object-corpus
printf '<testsuite name="fuzz" tests="2" failures="%d">%s</testsuite>\n' "$failures" "$cases" >"$KROUTE_RESULTS/fuzz.xml"
[ "$failures" -eq 0 ]
