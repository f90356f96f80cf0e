# The nginx module's benchmark; included by the Makefile. See bench/module/bench.py and docs/module.md.

.PHONY: bench-module bench-regex

bench-module: all ## nginx + kroute module vs. static nginx config under wrk: plain rules at 10 and 10,000 hosts, every annotation, proxy-setting overrides and a canary+affinity rule at 10 and 1,000 (~14 min); writes bench/results/module.md
	@/usr/bin/python3 bench/module/bench.py --build $(abspath $(BUILD))

bench-regex: all ## a catastrophic regex path next to ordinary routes: their p99 with and without the attack (~1 min); writes bench/results/regex.md
	@/usr/bin/python3 bench/regex/bench.py --build $(abspath $(BUILD))
