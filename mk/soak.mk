# The soak test (tests/e2e/test_soak.py): the whole stack under steady load and 10 API changes a second;
# included by the Makefile. The suite `soak` (make test) runs a short variant; see docs/soak.md.

SOAK_SECONDS ?= 1800

.PHONY: soak

soak: all ## soak: 30 min of steady load + 10 changes/s; non-2xx, RSS and fds must stay flat (SOAK_SECONDS=1800); writes build/soak/soak.{md,json}
	@KROUTE_ROOT=$(CURDIR) KROUTE_BUILD=$(abspath $(BUILD)) KROUTE_RESULTS=$(abspath $(BUILD))/soak \
	  KROUTE_SOAK_SECONDS=$(SOAK_SECONDS) bash tests/suites/66-soak.sh; \
	  rc=$$?; cat $(abspath $(BUILD))/soak/soak.md 2>/dev/null | head -n 30; exit $$rc
