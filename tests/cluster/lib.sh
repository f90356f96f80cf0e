# Settings and process bookkeeping shared by up.sh and down.sh (sourced, not run).
#
#   KROUTE_CLUSTER_DIR       state: certificates, etcd data, logs, pid files, kubeconfig (default build/cluster)
#   KROUTE_APISERVER_PORT    kube-apiserver's HTTPS port on 127.0.0.1 (default 6443)
#   KROUTE_ETCD_PORT         etcd's client port on 127.0.0.1 (default 2379)
#   KROUTE_ETCD_PEER_PORT    etcd's peer port on 127.0.0.1 (default 2380)

cluster_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster_dir="${KROUTE_CLUSTER_DIR:-$cluster_root/build/cluster}"
mkdir -p "$cluster_dir"
cluster_dir=$(cd "$cluster_dir" && pwd)
apiserver_port="${KROUTE_APISERVER_PORT:-6443}"
etcd_port="${KROUTE_ETCD_PORT:-2379}"
etcd_peer_port="${KROUTE_ETCD_PEER_PORT:-2380}"

# Stopped in this order: the API server first, so it never runs without its storage.
components=(kube-apiserver etcd)

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

pid_file() { echo "$cluster_dir/$1.pid"; }

# The pid of component $1 when it runs for this cluster directory. A pid file alone is not proof:
# after a reboot or a crash the number may belong to another process, so its command line must name the directory.
running_pid() {
  local file pid
  file=$(pid_file "$1")
  [ -s "$file" ] || return 1
  pid=$(<"$file")
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$cluster_dir/" || return 1
  echo "$pid"
}

# Stops component $1: SIGTERM, then SIGKILL after 10 s.
stop_component() {
  local pid waited=0
  if pid=$(running_pid "$1"); then
    kill -TERM "$pid" 2>/dev/null || true
    while [ -d "/proc/$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
      if [ "$waited" -ge 100 ]; then
        say "$1 (pid $pid) ignored SIGTERM for 10 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
      waited=$(( waited + 1 ))
    done
    say "stopped $1 (pid $pid)"
  fi
  rm -f "$(pid_file "$1")"
}

stop_cluster() {
  local c
  for c in "${components[@]}"; do stop_component "$c"; done
}
