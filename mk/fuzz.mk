# Long fuzzing runs; included by the Makefile. The short runs are the suite "fuzz" (make test-fuzz).
# See docs/fuzzing.md.

.PHONY: fuzz-long

FUZZ_SECONDS ?= 1800

fuzz-long: asan ## run both libFuzzer targets side by side for FUZZ_SECONDS each (default 1800); logs in build-asan/fuzz-long
	@bash tests/fuzz/long.sh $(BUILD_ASAN) $(FUZZ_SECONDS)
