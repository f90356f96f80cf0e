# kroute-agent targets; included by the Makefile. See docs/agent.md and bench/agent/bench.py.

.PHONY: bench-agent agent-run

bench-agent: all cluster-tools ## agent vs. 5,000 Ingresses/Services/EndpointSlices in a real API server (~3 min); writes bench/results/agent.md
	@/usr/bin/python3 bench/agent/bench.py --build $(abspath $(BUILD))

agent-run: all ## run kroute-agent against the cluster of `make cluster-up`, publishing into build/agent-table
	@KUBECONFIG=$(CLUSTER_DIR)/kubeconfig $(BUILD)/agent/kroute-agent --table-dir $(abspath $(BUILD))/agent-table \
	  --listen 127.0.0.1:10254 --publish-address 127.0.0.1 $(AGENT_FLAGS)
