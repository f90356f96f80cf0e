# Faults (tests/e2e/test_faults.py, docs/agent.md "Faults"). `make test` and `make test-faults` run the
# short variant (20 agent SIGKILLs, 15 s API server outages); the long one is a target of its own.

.PHONY: faults-full

faults-full: all ## the long fault suite: 100 agent SIGKILLs while publishing, 60 s API server outages (~6 min)
	@KROUTE_FAULTS_FULL=1 KROUTE_BUILD=$(abspath $(BUILD)) bash tests/run-suites.sh faults
