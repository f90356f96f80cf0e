# Settings and process bookkeeping shared by up.sh and down.sh (sourced, not run).
#
#   KROUTE_CLUSTER_DIR       state: certificates, etcd data, logs, pid files, kubeconfig (default build/cluster)
#   KROUTE_APISERVER_PORT    kube-apiserver's HTTPS port on 127.0.0.1 (default 6443)
#   KROUTE_ETCD_PORT         etcd's client port on 127.0.0.1 (default 2379)
#   KROUTE_ETCD_PEER_PORT    etcd's peer port on 127.0.0.1 (default 2380)
#   KROUTE_CLUSTER_WORKLOADS 1: also kube-controller-manager, kube-scheduler and the node agent (default 0;
#                            `make cluster-up` sets 1)
#   KROUTE_POD_CIDR          the pods' docker network in workloads mode (default 10.244.0.0/16, a /16 or longer)
#   KROUTE_CLUSTER_GATEWAY_API  standard or experimental: up.sh installs that channel of the Gateway API CRDs
#                            (default none)

cluster_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cluster_dir="${KROUTE_CLUSTER_DIR:-$cluster_root/build/cluster}"
mkdir -p "$cluster_dir"
cluster_dir=$(cd "$cluster_dir" && pwd)
apiserver_port="${KROUTE_APISERVER_PORT:-6443}"
etcd_port="${KROUTE_ETCD_PORT:-2379}"
etcd_peer_port="${KROUTE_ETCD_PEER_PORT:-2380}"

workloads="${KROUTE_CLUSTER_WORKLOADS:-0}"
pod_cidr="${KROUTE_POD_CIDR:-10.244.0.0/16}"
gateway_api="${KROUTE_CLUSTER_GATEWAY_API:-}"
# One cluster's docker objects (the pods' network and containers) carry this id in a label and in their names.
cluster_id=$(printf '%s' "$cluster_dir" | sha256sum | cut -c1-8)
pod_network="kroute-$cluster_id"
node_name=kroute-node

# Stopped in this order: the node agent first (it removes its pods' containers), the API server before its
# storage.
components=(kroute-node kube-scheduler kube-controller-manager kube-apiserver etcd)

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
  remove_pod_leftovers
}

# The net under the node agent, which removes its own containers when it stops: anything of this cluster still in
# docker (a node agent killed with SIGKILL leaves its pods), the pods' network and tmpfs volumes.
remove_pod_leftovers() {
  local containers mount
  command -v docker >/dev/null 2>&1 || return 0
  containers=$(docker ps -aq --filter "label=kroute.dev/cluster=$cluster_id" 2>/dev/null || true)
  if [ -n "$containers" ]; then
    say "removing $(echo "$containers" | wc -w) leftover pod container(s)"
    docker rm -f $containers >/dev/null 2>&1 || true
  fi
  if docker network inspect "$pod_network" >/dev/null 2>&1; then
    docker network rm "$pod_network" >/dev/null 2>&1 || say "could not remove the docker network $pod_network"
  fi
  for mount in $(awk -v d="$cluster_dir/node/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null || true
  done
}
