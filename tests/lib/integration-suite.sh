# The body of the integration suites (sourced): `run_integration_suite NAME [PYTEST ARGS...]` runs
# tests/integration with pytest under a scratch directory of its own, writes $results/NAME.xml, and
# fails when an nginx it started outlives pytest. Needs $root and $results.
run_integration_suite() {
  local name=$1
  shift
  # Every temporary file of the run lives here; nginx workers run as another user and must read it.
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-$name.XXXXXX")
  chmod 755 "$scratch"
  suite_name=$name
  # The fixtures stop what they start; this is the net under them for a pytest that is killed outright.
  stop_leftovers() {
    local pid
    for pid in $(pgrep -f "nginx: master process .*$scratch/" || true); do
      echo "$suite_name suite: nginx master $pid outlived pytest; stopping it" >&2
      kill -TERM "$pid" 2>/dev/null || true
    done
    rm -rf "$scratch"
  }
  trap stop_leftovers EXIT
  local rc=0
  # Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
  (cd "$root/tests/integration" && TMPDIR="$scratch" /usr/bin/python3 -m pytest . "$@" -p no:cacheprovider \
    --basetemp "$scratch/pytest" --junitxml "$results/$name.xml" -q -rfE) || rc=$?
  if pgrep -f "nginx: master process .*$scratch/" >/dev/null; then
    echo "$name suite: nginx still running after pytest" >&2
    rc=1
  fi
  return "$rc"
}
