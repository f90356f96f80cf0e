# Whether a plain Debian machine gets all it needs from `make deps`: scripts/check-clean-debian.sh in a fresh
# debian:bookworm container; included by the Makefile. Not part of `make test` (it installs everything anew).

.PHONY: check-clean-debian

check-clean-debian: base-images ## in a fresh debian:bookworm container: make deps, imports, Go, build, unit + integration suites (~12 min)
	@bash scripts/check-clean-debian.sh
