# Tests against the sanitizer build (`make asan`: clang, -fsanitize=address,undefined, build-asan/); included
# by the Makefile. Suites unit-asan, integration-asan and e2e-asan; see docs/module.md "Sanitizer builds".

.PHONY: test-sanitizers

test-sanitizers: all asan ## unit, integration and e2e suites against the ASan/UBSan build (agent, kroute-table, module in nginx)
	@KROUTE_BUILD=$(abspath $(BUILD)) KROUTE_BUILD_ASAN=$(abspath $(BUILD_ASAN)) \
	  bash tests/run-suites.sh unit-asan integration-asan e2e-asan
