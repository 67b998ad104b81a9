#!/usr/bin/env bash
# `make demo`: a new user's first run on this machine, with nothing running.
# Builds the operator, starts the local control plane (real kube-apiserver, etcd, controller-
# manager, scheduler; kwok plays the nodes), installs the Helm chart, runs the operator as the
# chart's ServiceAccount, applies the seed TFJob and shows it reach Running and then Succeeded.
# `tests/e2e/demo.sh down` (or `make demo-down`) stops everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${TFJOB_DEMO_DIR:-/tmp/tfjob-operator-demo}"
# shellcheck source=lib.sh
source "$root/tests/e2e/lib.sh"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [[ "${1:-}" == down ]]; then
  [[ -f "$dir/operator.pid" ]] && kill "$(cat "$dir/operator.pid")" 2>/dev/null || true
  "$root/tests/cluster/down.sh" "$dir"
  echo "demo stopped"
  exit 0
fi

say "Building tfjob-operator"
(cd "$root" && cargo build --locked --release --bins 2>&1 | tail -n 1)
bin="$root/target/release/tfjob-operator"

say "Starting a local Kubernetes control plane (first run builds it from Go modules: ~20 min)"
"$root/tests/cluster/up.sh" "$dir" | tail -n1 >/dev/null
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
kubectl get nodes

say "Installing the Helm chart (CRD, RBAC, Deployment; kwok plays its pod here)"
helm upgrade --install tfjob-operator "$root/charts/tfjob-operator" -n tfjob-system --create-namespace \
  --set image.repository=tfjob-operator.local/none --wait --timeout 120s | sed -n '1,6p'

say "Running the operator on this machine as the chart's ServiceAccount"
sa_kubeconfig tfjob-operator tfjob-system "$dir/operator.kubeconfig" 12h
[[ -f "$dir/operator.pid" ]] && kill "$(cat "$dir/operator.pid")" 2>/dev/null || true
KUBECONFIG="$dir/operator.kubeconfig" nohup "$bin" run --metrics-bind-address 127.0.0.1:18080 --health-probe-bind-address 127.0.0.1:18081 >"$dir/operator.log" 2>&1 &
echo $! > "$dir/operator.pid"
until curl -sf http://127.0.0.1:18080/readyz >/dev/null; do sleep 0.2; done
echo "operator ready (metrics: curl http://127.0.0.1:18080/metrics)"

say "Applying the seed TFJob (examples/tfjob-seed.yaml, tf-operator v1.0 layout)"
kubectl create namespace kube-test --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl delete tfjob tfjob-test -n kube-test --ignore-not-found --wait=true >/dev/null
kubectl apply -f "$root/examples/tfjob-seed.yaml"
wait_cond tfjob/tfjob-test kube-test Running 120 || { echo "the TFJob did not reach Running; see $dir/operator.log" >&2; exit 1; }
kubectl get tfjobs,pods,services -n kube-test
echo
echo "TF_CONFIG of worker 0:"
kubectl get pod tfjob-test-worker-0 -n kube-test -o jsonpath='{.spec.containers[0].env[?(@.name=="TF_CONFIG")].value}'; echo

say "Simulating worker 0 exiting with code 0 (kwok: annotation test.tfjob-operator.io/exit-code)"
kubectl annotate pod tfjob-test-worker-0 -n kube-test test.tfjob-operator.io/exit-code=0 >/dev/null
wait_cond tfjob/tfjob-test kube-test Succeeded 120 || { echo "the TFJob did not succeed; see $dir/operator.log" >&2; exit 1; }
kubectl wait --for=delete pod/tfjob-test-ps-0 -n kube-test --timeout=30s >/dev/null
kubectl get tfjobs -n kube-test
kubectl get pods -n kube-test
echo
kubectl get events -n kube-test --field-selector involvedObject.kind=TFJob --sort-by=.lastTimestamp | tail -n 8

cat <<EOF2

The demo cluster is still running. Try it:
  export KUBECONFIG=$dir/kubeconfig PATH=$dir/bin:\$PATH
  kubectl apply -n kube-test -f $root/examples/tfjob-all-workers.yaml
  kubectl get tfjobs -A
Operator log: $dir/operator.log
Clean up:     make demo-down
EOF2
