# The container image (Dockerfile) and the Helm chart (charts/kroute); included by the Makefile. See docs/install.md.

KROUTE_VERSION := $(shell sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -n 1)
IMAGE_REPO ?= kroute
IMAGE ?= $(IMAGE_REPO):$(KROUTE_VERSION)
KROUTE_SOURCE ?= https://github.com/kroute/kroute
DOCKER_BUILD_FLAGS ?=

.PHONY: base-images image image-save chart-lint

base-images: ## make debian:bookworm and debian:bookworm-slim with debootstrap when docker has none (no registry needed)
	@bash scripts/base-images.sh

image: base-images ## build the image kroute:<version> (nginx + module + agent); ~8 min the first time, seconds for an unchanged tree
	@echo "image: docker build -t $(IMAGE)"
	@DOCKER_BUILDKIT=0 docker build -t $(IMAGE) $(DOCKER_BUILD_FLAGS) \
	  --build-arg VERSION=$(KROUTE_VERSION) \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg SOURCE=$(KROUTE_SOURCE) . >$(BUILD)/image-build.log 2>&1 \
	  || { tail -n 40 $(BUILD)/image-build.log; echo "image: docker build failed; full log in $(BUILD)/image-build.log"; exit 1; }
	@docker image ls --format 'image: {{.Repository}}:{{.Tag}} {{.Size}}' $(IMAGE)

image-save: image ## write the image to $(BUILD)/kroute-image.tar (for kind load image-archive, ctr images import)
	@docker save -o $(BUILD)/kroute-image.tar $(IMAGE) && echo "image: $(BUILD)/kroute-image.tar"

chart-lint: cluster-tools ## helm lint the chart
	@"$$(bash tests/cluster/tools.sh path)/helm" lint charts/kroute
