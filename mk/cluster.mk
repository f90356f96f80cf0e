# The single-node control plane (etcd + kube-apiserver on loopback) for tests and `make run`; see docs/cluster.md.
# Included by the Makefile. The binaries are built once into ~/.cache/kroute/tools; state lives in $(BUILD)/cluster.

CLUSTER_DIR ?= $(abspath $(or $(BUILD),build))/cluster

.PHONY: cluster-tools cluster-up cluster-down

cluster-tools: ## build kube-apiserver, etcd, kubectl and helm once (~15 min on 2 cores; cached in ~/.cache/kroute/tools)
	@bash tests/cluster/tools.sh build

cluster-up: cluster-tools ## start etcd + kube-apiserver on 127.0.0.1:6443; KUBECONFIG=build/cluster/kubeconfig
	@KROUTE_CLUSTER_DIR=$(CLUSTER_DIR) bash tests/cluster/up.sh

cluster-down: ## stop the control plane that cluster-up started (its data stays in build/cluster)
	@KROUTE_CLUSTER_DIR=$(CLUSTER_DIR) bash tests/cluster/down.sh
