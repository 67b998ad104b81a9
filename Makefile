# One entry point for building, testing and running tfjob-operator.
SHELL := /bin/bash
CARGO ?= cargo
CRD := crds/kubeflow.org_tfjobs.yaml

.PHONY: build crd cluster test unit-test e2e lint fmt demo demo-down bench bench-compare

build: ## Build the operator (release)
	$(CARGO) build --release --locked

crd: ## Regenerate the checked-in CRD from the Rust types
	$(CARGO) run --quiet --locked -- crd > $(CRD)
	cp $(CRD) charts/tfjob-operator/$(CRD)

cluster: ## Build (or reuse from cache) the local control plane binaries
	tests/cluster/build.sh

lint: ## Formatting and clippy, as CI runs them
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

unit-test: ## Tests that need no cluster
	$(CARGO) test --locked

test: ## Unit tests, cluster tests (with Kueue and MultiKueue on two more control planes, gang scheduling with Volcano and Coscheduling and a real kubelet node on a fourth), the e2e suite and the client compatibility suites (Python SDK, Go types) against a real local control plane
	@set -euo pipefail; \
	$(CARGO) build --locked --bins --tests; \
	tests/cluster/build.sh >/dev/null; tests/cluster/build-kueue.sh >/dev/null; tests/cluster/build-gang.sh >/dev/null; \
	tests/cluster/build-node.sh >/dev/null; tests/images/build.sh >/dev/null; tests/images/build-tensorflow.sh >/dev/null; \
	export TFJOB_SDK_VENV=$$(tests/compat/sdk-venv.sh | tail -n1); \
	dir=$$(mktemp -d /tmp/tfjob-test-cluster.XXXXXX); \
	kueue=$$(mktemp -d /tmp/tfjob-test-kueue.XXXXXX); worker=$$(mktemp -d /tmp/tfjob-test-kueue-worker.XXXXXX); \
	extras=$$(mktemp -d /tmp/tfjob-test-extras.XXXXXX); \
	trap 'for d in "$$dir" "$$kueue" "$$worker" "$$extras"; do tests/cluster/down.sh "$$d"; done' EXIT; \
	dir=$$(tests/cluster/up.sh "$$dir" | tail -n1); \
	kueue=$$(TFJOB_CLUSTER_KUEUE=1 tests/cluster/up.sh "$$kueue" | tail -n1); \
	worker=$$(TFJOB_CLUSTER_KUEUE=1 TFJOB_CLUSTER_NODES=1 tests/cluster/up.sh "$$worker" | tail -n1); \
	extras=$$(TFJOB_CLUSTER_GANG=1 TFJOB_CLUSTER_REAL_NODE=1 TFJOB_REAL_NODE_TENSORFLOW=1 TFJOB_CLUSTER_NODES=1 \
	  tests/cluster/up.sh "$$extras" | tail -n1); \
	export TFJOB_KUEUE_CLUSTER="$$kueue" TFJOB_KUEUE_WORKER_CLUSTER="$$worker"; \
	export TFJOB_GANG_CLUSTER="$$extras" TFJOB_REAL_NODE_CLUSTER="$$extras"; \
	TFJOB_TEST_CLUSTER="$$dir" $(CARGO) test --locked -- --include-ignored --test-threads=4 \
	  --skip jobs_in_flight_finish_within_seconds --skip jobs_end_right_through_operator_kills; \
	TFJOB_TEST_CLUSTER="$$dir" $(CARGO) test --locked --test apiserver_restart --test chaos -- --include-ignored; \
	PATH="$$dir/bin:$$PATH" KUBECONFIG="$$dir/kubeconfig" tests/e2e/run.sh; \
	PATH="$$dir/bin:$$PATH" KUBECONFIG="$$dir/kubeconfig" tests/compat/run.sh

e2e: ## The e2e suite against $$KUBECONFIG (E2E_MODE=local|in-cluster)
	$(CARGO) build --locked --bins
	tests/e2e/run.sh

DEMO ?= seed
demo: ## Build, start a local control plane with a real node, install the chart (the operator runs there from its image), run a TFJob there to Succeeded: DEMO=seed (the seed's layout, busybox) or DEMO=tensorflow (real MultiWorkerMirrored training)
	tests/e2e/demo.sh $(DEMO)

demo-down: ## Stop what `make demo` started
	tests/e2e/demo.sh down

BENCH_JOBS ?= 100
bench: ## Scale benchmark (BENCH_JOBS TFJobs of 1 PS + 2 Workers) on a local control plane
	@set -euo pipefail; \
	$(CARGO) build --locked --release --bins; \
	dir=$${TFJOB_TEST_CLUSTER:-$$(tests/cluster/up.sh /tmp/tfjob-operator-bench | tail -n1)}; \
	$(CARGO) bench --locked --bench scale -- --jobs $(BENCH_JOBS) --cluster "$$dir" --json target/bench-$(BENCH_JOBS).json

bench-compare: ## This operator vs Kubeflow's Go training-operator v1.8.1 (lifted and stock), BENCH_JOBS=500, interleaved
	benches/go-operator/compare.sh
