# kroute: the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := all

BUILD       ?= build
BUILD_ASAN  ?= build-asan
# The nginx source tree the module is built against (Debian's nginx-dev by default). Another tree
# needs its own BUILD directory: make BUILD=build-nginx-1.27 NGINX_SRC=$PWD/nginx-1.27.4
NGINX_SRC   ?= /usr/share/nginx/src
MESON_FLAGS ?= --buildtype=release
MESON_FLAGS += -Dnginx_src=$(NGINX_SRC)

DEPS_STAMP  := $(BUILD)/.deps-ok

.PHONY: help all deps test test-% bench run clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_%-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the Debian packages the build and tests need (needs root)
	@bash scripts/deps.sh
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP)

$(DEPS_STAMP): scripts/deps.sh
	@bash scripts/deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/build.ninja: $(DEPS_STAMP) meson.build meson_options.txt
	@meson setup $(BUILD) $(MESON_FLAGS) --reconfigure >/dev/null 2>&1 || meson setup $(BUILD) $(MESON_FLAGS)

all: $(BUILD)/build.ninja ## build the route table library, kroute-table and everything else
	@ninja -C $(BUILD)

ASAN_FLAGS := --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false -Dnginx_src=$(NGINX_SRC)

$(BUILD_ASAN)/build.ninja: $(DEPS_STAMP) meson.build meson_options.txt
	@CC=clang CXX=clang++ meson setup $(BUILD_ASAN) $(ASAN_FLAGS) --reconfigure >/dev/null 2>&1 || \
	  CC=clang CXX=clang++ meson setup $(BUILD_ASAN) $(ASAN_FLAGS)

asan: $(BUILD_ASAN)/build.ninja ## build everything with AddressSanitizer and UndefinedBehaviorSanitizer (clang)
	@ninja -C $(BUILD_ASAN)

test: all asan ## run every test suite; ends with one line 'N passed, N failed'
	@KROUTE_BUILD=$(abspath $(BUILD)) KROUTE_BUILD_ASAN=$(abspath $(BUILD_ASAN)) bash tests/run-suites.sh

test-%: all asan ## run one suite, e.g. make test-unit
	@KROUTE_BUILD=$(abspath $(BUILD)) KROUTE_BUILD_ASAN=$(abspath $(BUILD_ASAN)) bash tests/run-suites.sh $*

bench: all cluster-tools ## every benchmark, alternating with its baseline; writes bench/REPORT.md and plots (15-25 min)
	@/usr/bin/python3 bench/report/run.py --build $(abspath $(BUILD))

run: all ## run the demo (see README)
	@bash scripts/run-demo.sh $(abspath $(BUILD))

clean: ## remove build directories (the tool cache in ~/.cache/kroute stays)
	rm -rf $(BUILD) $(BUILD_ASAN)

-include mk/*.mk
