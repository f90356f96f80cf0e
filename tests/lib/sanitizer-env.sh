# Sourced by the suites that run tests against the sanitizer build (make asan, build-asan/): points
# KROUTE_BUILD there and sends every sanitized executable's reports (kroute-agent, kroute-table) into one
# directory, which tests/lib/sanitizers.py (pytest -p sanitizers) checks after each test and
# check_sanitizer_reports after the run. nginx gets its own settings from the runner (reports in its
# error log). See docs/module.md, "Sanitizer builds".

use_sanitizer_build() {
  local root=$1
  export KROUTE_BUILD="${KROUTE_BUILD_ASAN:-$root/build-asan}"
  local built
  for built in "$KROUTE_BUILD/module/ngx_http_kroute_module.so" "$KROUTE_BUILD/routetable/tool/kroute-table" \
               "$KROUTE_BUILD/agent/kroute-agent"; do
    [ -e "$built" ] || { echo "sanitizer suite: $built is missing; run make asan first" >&2; return 1; }
  done
  sanitizer_reports=$(mktemp -d "${TMPDIR:-/tmp}/kroute-sanitizer-reports.XXXXXX")
  export KROUTE_SANITIZER_REPORTS="$sanitizer_reports"
  # Leaks are checked in the executables (they free what they own at exit), not in nginx.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1:log_path=$sanitizer_reports/report"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$sanitizer_reports/report"
  local symbolizer
  symbolizer=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
  [ -z "$symbolizer" ] || export ASAN_SYMBOLIZER_PATH="$symbolizer"
  # `-p sanitizers` finds tests/lib/sanitizers.py here.
  export PYTHONPATH="$root/tests/lib${PYTHONPATH:+:$PYTHONPATH}"
}

# Fails (returns 1) when any sanitized process wrote a report during the run, and prints them.
check_sanitizer_reports() {
  local name=$1 report found=0
  for report in "$sanitizer_reports"/*; do
    [ -e "$report" ] || continue
    found=1
    echo "$name suite: sanitizer report $(basename "$report"):" >&2
    tail -n 60 "$report" >&2
  done
  rm -rf "$sanitizer_reports"
  return "$found"
}
