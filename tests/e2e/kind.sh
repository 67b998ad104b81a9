#!/usr/bin/env bash
# The e2e suite on kind, with the operator image the real-node tests run (for machines with
# Docker): the same OCI archive tests/images/build.sh packs, loaded with `kind load
# image-archive`, so kind runs exactly what is tested on this project's real node.
#   tests/e2e/kind.sh            # create cluster, build + load image, run the suite, delete cluster
# Needs: docker, kind, kubectl, helm (and Rust, Python 3 and Debian's busybox-static, to build
# the archive).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cluster="${KIND_CLUSTER:-tfjob-e2e}"
images="$("$root/tests/images/build.sh" | tail -n1)"
kind create cluster --name "$cluster" --wait 120s
trap 'kind delete cluster --name "$cluster"' EXIT
kind load image-archive "$images/operator.tar" --name "$cluster"
kind get kubeconfig --name "$cluster" > "$root/target/kind.kubeconfig"
# Point the chart at the loaded image (the suite installs with --reuse of these values).
export HELM_EXTRA_ARGS="--set image.repository=tfjob-operator.local/tfjob-operator --set image.tag=dev --set image.pullPolicy=Never"
KUBECONFIG="$root/target/kind.kubeconfig" E2E_MODE=in-cluster "$root/tests/e2e/run.sh"
