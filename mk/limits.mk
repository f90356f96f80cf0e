# The rate limits' benchmark; included by the Makefile. See bench/limits/bench.py and docs/access.md.

.PHONY: bench-limits

bench-limits: all ## a 1,000 req/s client against limit-rps 100: the passed rate after the burst (target within 5 %) and an open Ingress's req/s next to it (~1 min); writes bench/results/limits.md
	@/usr/bin/python3 bench/limits/bench.py --build $(abspath $(BUILD))
