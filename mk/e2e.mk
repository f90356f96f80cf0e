# End-to-end: the whole stack from kubectl to curl, and the route propagation benchmark; see docs/e2e.md.
# Included by the Makefile. `make run` (the demo) is the Makefile's own target: scripts/run-demo.sh.

.PHONY: run-check bench-propagation bench-propagation-quick

run-check: all ## `make run` without waiting for Ctrl-C: start everything, apply examples/, check the routes, stop
	@bash scripts/run-demo.sh $(abspath $(BUILD)) --check

bench-propagation: all ## propagation latency, kroute vs. reload baseline, 5,000 routes + 1,000 creations per phase (20 for the baseline, whose reloads take seconds); ~5 min; writes bench/results/propagation.md
	@/usr/bin/python3 bench/propagation/bench.py --routes 5000 --creations 1000 --baseline-creations 20

bench-propagation-quick: all ## the same with 500 routes, 100 creations, 50 baseline reloads (~3 min), for iteration
	@/usr/bin/python3 bench/propagation/bench.py --quick --output $(abspath $(BUILD))/propagation-quick.md
