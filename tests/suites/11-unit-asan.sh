#!/usr/bin/env bash
set -euo pipefail
# The unit tests again, built with clang's AddressSanitizer and UndefinedBehaviorSanitizer (make asan).
bin="${KROUTE_BUILD_ASAN:-$KROUTE_ROOT/build-asan}/tests/unit/unit-tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$bin" --reporters=junit --out="$KROUTE_RESULTS/unit-asan.xml" >/dev/null 2>&1 && exit 0
"$bin" --no-version || true
exit 1
