# Shared body of the suites that test against a real control plane with pytest (cluster, agent, chart).
# run_cluster_suite NAME PYTEST_FILE... : builds the control-plane tools if needed, runs pytest in
# tests/e2e with JUnit output to $KROUTE_RESULTS/NAME.xml, and makes sure nothing it started outlives it:
# no process, and no docker container or network of a workloads cluster (label kroute.dev/cluster).

source "$(dirname "${BASH_SOURCE[0]}")/cluster-docker.sh"

run_cluster_suite() {
  local name=$1
  shift
  local root=${KROUTE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  local results=${KROUTE_RESULTS:-$root/build/test-results}
  export KROUTE_BUILD=${KROUTE_BUILD:-$root/build}
  mkdir -p "$results"
  bash "$root/tests/cluster/tools.sh" build

  scratch=$(mktemp -d "${TMPDIR:-/tmp}/kroute-$name-suite.XXXXXX")
  suite_root=$root
  # The fixtures stop what they start; this is the net under them for a pytest killed outright.
  trap 'stop_suite_leftovers' EXIT

  local rc=0
  # Debian's pytest belongs to /usr/bin/python3, which need not be the python3 first on PATH.
  (cd "$root/tests/e2e" && /usr/bin/python3 -m pytest "$@" -p no:cacheprovider \
    --basetemp "$scratch/pytest" --junitxml "$results/$name.xml" -q -rfE) || rc=$?

  # Nothing may outlive the run: every process started under the scratch directory must be gone.
  local leftovers
  leftovers=$(suite_processes)
  if [ -n "$leftovers" ]; then
    echo "$name suite: processes still running after pytest (pids $leftovers); stopping them" >&2
    rc=1
  fi
  # Only this run's clusters: other runs on the machine may have theirs up.
  local dirs
  mapfile -t dirs < <(find "$scratch" -name kube-apiserver.log -printf '%h\n' 2>/dev/null | sort -u)
  leftovers=""
  [ ${#dirs[@]} -eq 0 ] || leftovers=$(cluster_docker_objects "${dirs[@]}")
  if [ -n "$leftovers" ]; then
    echo "$name suite: docker objects of a test cluster left after pytest: $(echo "$leftovers" | tr '\n' ' ')" >&2
    rc=1
  fi
  return "$rc"
}

# Pids of processes whose command line mentions the scratch directory.
suite_processes() {
  local cmdline pids=()
  for cmdline in /proc/[0-9]*/cmdline; do
    if [[ "$(tr '\0' ' ' 2>/dev/null <"$cmdline")" == *"$scratch/"* ]]; then
      pids+=("$(basename "$(dirname "$cmdline")")")
    fi
  done
  echo "${pids[*]}"
}

stop_suite_leftovers() {
  local dir pid
  for dir in $(find "$scratch" -name kube-apiserver.log -printf '%h\n' 2>/dev/null | sort -u); do
    KROUTE_CLUSTER_DIR="$dir" bash "$suite_root/tests/cluster/down.sh" || true
  done
  for pid in $(suite_processes); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
