# Sourced by suites that start test stacks (tests/e2e/stack.py): nginx, kroute-agent and test pods (network
# namespaces kr-*) must not outlive the run. Other test runs may share the machine, so only what this run
# started is looked at: the run gets a temporary directory of its own (TMPDIR, where the stacks keep their
# work directories) and anything whose command line names it, or whose environment carries it, is ours.
#
#   e2e_run_begin NAME    exports TMPDIR=<a new directory>; call before pytest
#   e2e_run_end NAME      stops what the run left behind (returns 1 if anything), removes the directory

e2e_run_begin() {
  e2e_run_dir=$(mktemp -d "${TMPDIR:-/tmp}/kroute-$1-run.XXXXXX")
  chmod 755 "$e2e_run_dir"  # nginx's workers (www-data) read the tables kept below it
  export TMPDIR="$e2e_run_dir"
}

# Pids whose command line names the run's directory (nginx, kroute-agent, the control plane).
e2e_run_processes() {
  local cmdline
  for cmdline in /proc/[0-9]*/cmdline; do
    if [[ "$(tr '\0' ' ' 2>/dev/null <"$cmdline")" == *"$e2e_run_dir/"* ]]; then
      basename "$(dirname "$cmdline")"
    fi
  done
}

# Whether a process inherited the run's TMPDIR (the echo servers in test pods do).
e2e_run_owns() {
  tr '\0' '\n' 2>/dev/null <"/proc/$1/environ" | grep -qxF "TMPDIR=$e2e_run_dir"
}

e2e_run_end() {
  local name=$1 rc=0 pids ns pid ours
  pids=$(e2e_run_processes | tr '\n' ' ')
  if [ -n "${pids// /}" ]; then
    echo "$name suite: processes left running: $pids" >&2
    for pid in $pids; do kill -9 "$pid" 2>/dev/null || true; done
    rc=1
  fi
  for ns in $(ip netns list | awk '$1 ~ /^kr-/ { print $1 }'); do
    ours=0
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      if e2e_run_owns "$pid"; then ours=1; fi
    done
    if [ "$ours" = 1 ]; then
      echo "$name suite: test pod left behind: $ns" >&2
      ip netns pids "$ns" | xargs -r kill -9
      ip netns delete "$ns" || true
      rm -rf "/etc/netns/$ns"
      rc=1
    fi
  done
  rm -rf "$e2e_run_dir"
  return "$rc"
}
