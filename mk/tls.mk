# The TLS benchmark; included by the Makefile. See bench/tls/bench.py and docs/tls.md.

.PHONY: bench-tls

bench-tls: all ## TLS handshakes/s, module with 10,000 certificates vs. one static certificate, new and resumed (~3 min); writes bench/results/tls.md
	@/usr/bin/python3 bench/tls/bench.py --build $(abspath $(BUILD))
