# One entry point for building, testing and running tfjob-operator.
SHELL := /bin/bash
CARGO ?= cargo
CRD := crds/kubeflow.org_tfjobs.yaml

.PHONY: build crd cluster cluster-up cluster-down test unit-test lint fmt demo

build: ## Build the operator (release)
	$(CARGO) build --release --locked

crd: ## Regenerate the checked-in CRD from the Rust types
	$(CARGO) run --quiet --locked -- crd > $(CRD)

cluster: ## Build (or reuse from cache) the local control plane binaries
	tests/cluster/build.sh

lint: ## Formatting and clippy, as CI runs them
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

unit-test: ## Tests that need no cluster
	$(CARGO) test --locked

test: ## Unit tests and cluster tests against a real local control plane
	@set -euo pipefail; \
	$(CARGO) build --locked --bins --tests; \
	dir=$$(tests/cluster/up.sh | tail -n1); \
	trap 'tests/cluster/down.sh "$$dir"' EXIT; \
	TFJOB_TEST_CLUSTER="$$dir" TFJOB_REQUIRE_CLUSTER=1 $(CARGO) test --locked -- --test-threads=4
