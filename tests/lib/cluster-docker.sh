# Sourced by suites that start workloads clusters: what such a cluster made in docker, to compare before and after.

# Containers and networks that a workloads cluster's node agent or up.sh made (sorted "container ID" lines).
cluster_docker_objects() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || return 0
  { docker ps -aq --no-trunc --filter label=kroute.dev/cluster | sed 's/^/container /'
    docker network ls -q --no-trunc --filter label=kroute.dev/cluster | sed 's/^/network /'; } | sort
}
