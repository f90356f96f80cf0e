# End-to-end: the whole stack from kubectl to curl, and the route propagation benchmark; see docs/e2e.md.
# Included by the Makefile. `make run` (the demo) is the Makefile's own target: scripts/run-demo.sh.

.PHONY: run-check run-helm run-helm-check bench-propagation bench-propagation-quick

run-check: all ## `make run` without waiting for Ctrl-C: start everything, apply examples/, check the routes and the walk-through, stop
	@bash scripts/run-demo.sh $(abspath $(BUILD)) --check

run-helm: image ## `make run` through the real kroute pod: helm install charts/kroute (image kroute:0.1.0), served on the pod's IP, port 80
	@bash scripts/run-demo.sh $(abspath $(BUILD)) --helm

run-helm-check: image ## `make run-helm` without waiting for Ctrl-C: check the routes and the walk-through through the kroute pod, stop
	@bash scripts/run-demo.sh $(abspath $(BUILD)) --helm --check

bench-propagation: all ## propagation latency, kroute vs. reload baseline, 5,000 routes + 1,000 creations per phase (20 for the baseline, whose reloads take seconds); ~5 min; writes bench/results/propagation.md
	@/usr/bin/python3 bench/propagation/bench.py --routes 5000 --creations 1000 --baseline-creations 20

bench-propagation-quick: all ## the same with 500 routes, 100 creations, 50 baseline reloads (~3 min), for iteration
	@/usr/bin/python3 bench/propagation/bench.py --quick --output $(abspath $(BUILD))/propagation-quick.md
