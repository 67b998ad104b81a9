#!/usr/bin/env bash
# `make demo`: a new user's first run on this machine, with nothing running.
# Builds the operator and its image, starts the local control plane (real kube-apiserver, etcd,
# controller-manager, scheduler) with a real kubelet node (containerd, CoreDNS), installs the
# Helm chart so the operator runs on that node from its image, and runs the seed TFJob's layout
# there to Succeeded — its pods are real containers (busybox standing in for the seed's
# TensorFlow image, which is not available here), resolving each other by their TF_CONFIG names.
# `tests/e2e/demo.sh down` (or `make demo-down`) stops everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${TFJOB_DEMO_DIR:-/tmp/tfjob-operator-demo}"
# shellcheck source=lib.sh
source "$root/tests/e2e/lib.sh"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
started=$(date +%s)

if [[ "${1:-}" == down ]]; then
  "$root/tests/cluster/down.sh" "$dir"
  echo "demo stopped"
  exit 0
fi

# Shows why the operator did not come up: its pods' events and the last lines of its log.
why_not_up() {
  echo "the operator did not become ready within a minute; what it says:" >&2
  kubectl -n tfjob-system get pods -o wide >&2 || true
  kubectl -n tfjob-system describe pods -l app.kubernetes.io/name=tfjob-operator 2>/dev/null | sed -n '/^Events:/,$p' | tail -n 8 >&2 || true
  kubectl -n tfjob-system logs deployment/tfjob-operator --tail=20 >&2 || true
  exit 1
}

say "Building the control plane, the real node and the images (first run: ~35 min on 2 cores; then seconds)"
"$root/tests/cluster/build.sh" >/dev/null
"$root/tests/cluster/build-node.sh" >/dev/null
"$root/tests/images/build.sh" | tail -n1 >/dev/null

say "Starting a local Kubernetes control plane with a real node"
TFJOB_CLUSTER_REAL_NODE=1 "$root/tests/cluster/up.sh" "$dir" | tail -n1 >/dev/null
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
kubectl get nodes -o wide

say "Installing the Helm chart: the operator runs on the real node from its image"
helm upgrade --install tfjob-operator "$root/charts/tfjob-operator" -n tfjob-system --create-namespace \
  --set image.repository=tfjob-operator.local/tfjob-operator --set image.tag=dev --set image.pullPolicy=Never \
  --set-string 'nodeSelector.tfjob-operator\.io/real-node=true' \
  --set 'tolerations[0].key=tfjob-operator.io/real-node' --set 'tolerations[0].operator=Exists' \
  --set 'tolerations[0].effect=NoSchedule' --wait --timeout 60s | sed -n '1,6p' || why_not_up
kubectl -n tfjob-system get pods -o wide

say "Applying the seed TFJob (examples/tfjob-seed.yaml: tf-operator v1.0 layout), its containers run on the real node"
kubectl create namespace kube-test --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl delete tfjob tfjob-test -n kube-test --ignore-not-found --wait=true >/dev/null
kubectl apply --dry-run=client -o json -f "$root/examples/tfjob-seed.yaml" | python3 -c '
import json, sys
job = json.load(sys.stdin)
script = open(sys.argv[1]).read()
for replica in job["spec"]["tfReplicaSpecs"].values():
    pod = replica["template"]["spec"]
    pod.pop("imagePullSecrets", None)
    pod["nodeSelector"] = {"tfjob-operator.io/real-node": "true"}
    pod["tolerations"] = [{"key": "tfjob-operator.io/real-node", "operator": "Exists", "effect": "NoSchedule"}]
    c = pod["containers"][0]
    c.pop("args", None); c.pop("resources", None)
    c["image"], c["imagePullPolicy"] = "tfjob-test.local/busybox:1", "IfNotPresent"
    c["command"] = ["sh", "-c", script]
json.dump(job, sys.stdout)
' "$root/tests/e2e/demo-replica.sh" | kubectl apply -f -
wait_cond tfjob/tfjob-test kube-test Succeeded 120 || {
  echo "the TFJob did not succeed:" >&2; kubectl get tfjob tfjob-test -n kube-test -o yaml | sed -n '/^status:/,$p' >&2
  kubectl -n tfjob-system logs deployment/tfjob-operator --tail=20 >&2; exit 1; }
kubectl get tfjobs -n kube-test -o wide
kubectl get pods -n kube-test -o wide
echo
kubectl logs tfjob-test-worker-0 -n kube-test
echo
kubectl get events -n kube-test --field-selector involvedObject.kind=TFJob --sort-by=.lastTimestamp | tail -n 8

cat <<EOF2

Done in $(( $(date +%s) - started ))s. The demo cluster is still running. Try it:
  export KUBECONFIG=$dir/kubeconfig PATH=$dir/bin:\$PATH
  kubectl get tfjobs -A -o wide
  kubectl logs -n tfjob-system deployment/tfjob-operator
Clean up:     make demo-down
EOF2
