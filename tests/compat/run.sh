#!/usr/bin/env bash
# Compatibility with real clients, against whatever KUBECONFIG points to (make test: the local
# control plane). The operator binary runs on this host while
#   1. the kubeflow-training Python SDK (1.9.4, in a venv of its own) drives it as Kubeflow
#      users do (test_sdk.py, pytest), jobs created from YAML without runPolicy included;
#   2. a Go program built with the upstream API types (training-operator v1.8.1) and a
#      controller-runtime client reads every TFJob the suite left behind and compares what it
#      decodes with what is stored (gocheck/).
# Both are built once and cached under ~/.cache/tfjob-operator/ by version.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${KUBECONFIG:?set KUBECONFIG}"
bin="${TFJOB_OPERATOR_BIN:-$root/target/debug/tfjob-operator}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator"
ns=compat
seed_ns=kube-test # examples/tfjob-seed.yaml names its namespace
work="$(mktemp -d)"
op_pid=""
log() { echo "[compat $(date +%H:%M:%S)] $*"; }
cleanup() {
  [[ -n "$op_pid" ]] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null || true
  for n in "$ns" "$seed_ns"; do
    "$bin" release-finalizers --namespace "$n" >/dev/null 2>&1 || true
    kubectl delete namespace "$n" --wait=false >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=../e2e/lib.sh
source "$root/tests/e2e/lib.sh"

# --- the SDK's venv, cached by version ------------------------------------------------------
venv="$("$here/sdk-venv.sh" | tail -n1)"

# --- the Go checker, cached by the hash of its sources --------------------------------------
sum="$(cat "$here/gocheck/go.mod" "$here/gocheck/go.sum" "$here/gocheck/main.go" | sha256sum | cut -c1-16)"
gocheck="$cache/gocheck-$sum/gocheck"
if [[ ! -x "$gocheck" ]]; then
  log "building gocheck (upstream API types v1.8.1, controller-runtime) from the Go module proxy"
  mkdir -p "$(dirname "$gocheck")"
  (cd "$here/gocheck" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -o "$gocheck.tmp" .)
  mv "$gocheck.tmp" "$gocheck"
fi

log "CRD and namespaces"
kubectl apply --server-side --force-conflicts -f "$root/crds/" >/dev/null
wait_cond crd/tfjobs.kubeflow.org "" Established 60 || { echo "CRD not established" >&2; exit 1; }
for n in "$ns" "$seed_ns"; do
  # A fresh namespace: one left by an earlier run (or the e2e suite) is deleted first.
  "$bin" release-finalizers --namespace "$n" >/dev/null
  kubectl delete namespace "$n" --ignore-not-found --wait=true --timeout=120s >/dev/null
  kubectl create namespace "$n" >/dev/null
done

log "operator"
RUST_LOG=info "$bin" run --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 >"$work/operator.log" 2>&1 &
op_pid=$!

log "Python SDK suite"
if ! COMPAT_NAMESPACE="$ns" COMPAT_ROOT="$root" "$venv/bin/pytest" -q -p no:cacheprovider "$here/test_sdk.py"; then
  tail -n 40 "$work/operator.log" >&2
  exit 1
fi

log "Go API types read every TFJob the suite left behind"
"$gocheck" "$ns"
"$gocheck" "$seed_ns"
echo "compat: 1 passed, 0 failed"
