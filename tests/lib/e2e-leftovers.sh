# Sourced by suites that start test stacks (tests/e2e/stack.py): test pods (network namespaces named kr-*)
# and nginx or kroute-agent started for a stack must not outlive the run. Call e2e_leftovers_before before
# pytest and e2e_leftovers_check NAME after; the latter stops what it finds and returns 1.

e2e_pods() { ip netns list | awk '{print $1}' | grep '^kr-' | sort || true; }
e2e_processes() {
  { pgrep -f 'nginx: master process .*/kroute-(nginx|stack)-' || true
    pgrep -f 'kroute-agent --table-dir .*/kroute-stack-' || true; } | sort
}

e2e_leftovers_before() {
  e2e_pods_before=$(e2e_pods)
  e2e_processes_before=$(e2e_processes)
}

e2e_leftovers_check() {
  local name=$1 rc=0 new stray ns pid
  new=$(comm -13 <(echo "$e2e_pods_before") <(e2e_pods) | grep . || true)
  if [ -n "$new" ]; then
    echo "$name suite: test pods left behind: $new" >&2
    for ns in $new; do ip netns pids "$ns" | xargs -r kill -9; ip netns delete "$ns"; rm -rf "/etc/netns/$ns"; done
    rc=1
  fi
  stray=$(comm -13 <(echo "$e2e_processes_before") <(e2e_processes) | grep . || true)
  if [ -n "$stray" ]; then
    echo "$name suite: nginx or kroute-agent left running: $stray" >&2
    for pid in $stray; do kill -9 "$pid" || true; done
    rc=1
  fi
  return "$rc"
}
