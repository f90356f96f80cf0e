# The Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance v1.6.3) against kroute, and the Gateway API
# CRDs for the chart; see docs/conformance/README.md. Included by the Makefile.
#   make conformance                  GATEWAY-HTTP and GATEWAY-GRPC; the report goes to docs/conformance/
#   make conformance CORE=1           the core tests of GATEWAY-HTTP only (the suite `conformance` of make test)
#   make conformance CONFORMANCE_ARGS='--run-test=HTTPRouteSimpleSameNamespace --debug'    more flags for the suite
#   make conformance AGENT=build-asan/agent/kroute-agent    another kroute-agent binary

CORE ?=
CONFORMANCE_ARGS ?=
AGENT ?=
CHANNEL ?= standard

.PHONY: conformance conformance-tools chart-gateway-crds

conformance-tools: ## build the Gateway API conformance suite's test binary (~3 min the first time; cached in ~/.cache/kroute/tools/conformance)
	@bash tests/cluster/tools.sh conformance >/dev/null

conformance: all cluster-tools echo-image conformance-tools ## run the Gateway API conformance suite against kroute (cluster, agent, nginx on ports 80/443); report in docs/conformance/; CORE=1: GATEWAY-HTTP core tests only
	@/usr/bin/python3 scripts/conformance.py --build $(abspath $(BUILD)) $(if $(CORE),--core) $(if $(AGENT),--agent $(abspath $(AGENT))) $(if $(CONFORMANCE_ARGS),-- $(CONFORMANCE_ARGS))

chart-gateway-crds: ## copy the Gateway API CRDs (CHANNEL=standard or experimental, from the Go module cache) into charts/kroute/files/gateway-api/ (not committed), for gatewayAPI.installCRDs
	@bash scripts/chart-gateway-crds.sh $(CHANNEL)
