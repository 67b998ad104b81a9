#!/usr/bin/env bash
# The e2e suite on kind, with the real image, for machines with Docker:
#   tests/e2e/kind.sh            # create cluster, build + load image, run the suite, delete cluster
# Needs: docker, kind, kubectl, helm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster="${KIND_CLUSTER:-tfjob-e2e}"
image="tfjob-operator:e2e"
kind create cluster --name "$cluster" --wait 120s
trap 'kind delete cluster --name "$cluster"' EXIT
docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"
kind get kubeconfig --name "$cluster" > "$root/target/kind.kubeconfig"
# Point the chart at the loaded image (the suite installs with --reuse of these values).
export HELM_EXTRA_ARGS="--set image.repository=tfjob-operator --set image.tag=e2e --set image.pullPolicy=Never"
KUBECONFIG="$root/target/kind.kubeconfig" E2E_MODE=in-cluster "$root/tests/e2e/run.sh"
