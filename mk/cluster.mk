# The single-node test cluster (etcd + kube-apiserver on loopback; with workloads, kube-controller-manager,
# kube-scheduler and the node agent running pods on docker) for tests and `make run`; see docs/cluster.md.
# Included by the Makefile. The binaries are built once into ~/.cache/kroute/tools; state lives in $(BUILD)/cluster.

CLUSTER_DIR ?= $(abspath $(or $(BUILD),build))/cluster

.PHONY: cluster-tools cluster-up cluster-down echo-image

cluster-tools: ## build kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kubectl, helm and echo-basic once (~25 min on 2 cores; cached in ~/.cache/kroute/tools)
	@bash tests/cluster/tools.sh build

# WORKLOADS=0 starts the control plane alone (no controllers, scheduler or node): the fast path of most tests.
WORKLOADS ?= 1

cluster-up: cluster-tools echo-image ## start the cluster on 127.0.0.1:6443 with a node running pods on docker (WORKLOADS=0: API server only); KUBECONFIG=build/cluster/kubeconfig
	@KROUTE_CLUSTER_DIR=$(CLUSTER_DIR) KROUTE_CLUSTER_WORKLOADS=$(WORKLOADS) bash tests/cluster/up.sh

cluster-down: ## stop the control plane that cluster-up started (its data stays in build/cluster)
	@KROUTE_CLUSTER_DIR=$(CLUSTER_DIR) bash tests/cluster/down.sh

echo-image: cluster-tools ## the test echo image kroute/echo-basic (the Gateway API echo server on an empty base; seconds)
	@bash scripts/echo-image.sh >/dev/null
