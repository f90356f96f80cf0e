# Sourced by suites that start workloads clusters: what such a cluster made in docker, to compare before and after.

# Containers and networks that a workloads cluster's node agent or up.sh made (sorted "container ID" lines): of every
# cluster, or with arguments only of the clusters whose state directories are named (tests/cluster/lib.sh: the
# label kroute.dev/cluster holds the first 8 hex digits of the directory's sha256).
cluster_docker_objects() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || return 0
  local labels=() dir label
  for dir in "$@"; do
    labels+=("kroute.dev/cluster=$(printf '%s' "$(cd "$dir" && pwd)" | sha256sum | cut -c1-8)")
  done
  [ $# -gt 0 ] || labels=(kroute.dev/cluster)
  for label in "${labels[@]}"; do
    docker ps -aq --no-trunc --filter "label=$label" | sed 's/^/container /'
    docker network ls -q --no-trunc --filter "label=$label" | sed 's/^/network /'
  done | sort -u
}
