#!/usr/bin/env bash
# `make demo`: a new user's first run on this machine, with nothing running.
# Builds the operator and its image, starts the local control plane (real kube-apiserver, etcd,
# controller-manager, scheduler) with a real kubelet node (containerd, CoreDNS), installs the
# Helm chart so the operator runs on that node from its image, and runs the seed TFJob's layout
# there to Succeeded — its pods are real containers (busybox standing in for the seed's
# TensorFlow image, which is not available here), resolving each other by their TF_CONFIG names.
# `demo.sh tensorflow` (make demo DEMO=tensorflow) runs examples/tensorflow/multi-worker-mirrored.yaml
# instead: real TensorFlow training on 2 workers, with the image tests/images/build-tensorflow.sh
# builds, and shows its loss.
# `tests/e2e/demo.sh down` (or `make demo-down`) stops everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${TFJOB_DEMO_DIR:-/tmp/tfjob-operator-demo}"
# shellcheck source=lib.sh
source "$root/tests/e2e/lib.sh"
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
started=$(date +%s)

demo="${1:-seed}"
case "$demo" in
  down) "$root/tests/cluster/down.sh" "$dir"; echo "demo stopped"; exit 0 ;;
  seed|tensorflow) ;;
  *) echo "usage: demo.sh [seed|tensorflow|down]" >&2; exit 2 ;;
esac

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
if [[ "$demo" == tensorflow ]]; then
  say "Building the TensorFlow image (first run: ~2 min; Debian bookworm, Python 3.11, tensorflow-cpu 2.21.0)"
  tf_image="$("$root/tests/images/build-tensorflow.sh" | tail -n1)/tensorflow.tar"
fi

say "Starting a local Kubernetes control plane with a real node"
TFJOB_CLUSTER_REAL_NODE=1 TFJOB_REAL_NODE_TENSORFLOW=$([[ "$demo" == tensorflow ]] && echo 1 || echo 0) \
  "$root/tests/cluster/up.sh" "$dir" | tail -n1 >/dev/null
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
if [[ "$demo" == tensorflow ]]; then
  # A demo cluster started before without the image gets it now.
  ctr=(ctr -a "$dir/realnode/run/containerd.sock" -n k8s.io)
  "${ctr[@]}" images ls -q | grep -q tensorflow-examples || "${ctr[@]}" images import "$tf_image" >/dev/null
fi
kubectl get nodes -o wide

say "Installing the Helm chart: the operator runs on the real node from its image"
helm upgrade --install tfjob-operator "$root/charts/tfjob-operator" -n tfjob-system --create-namespace \
  --set image.repository=tfjob-operator.local/tfjob-operator --set image.tag=dev --set image.pullPolicy=Never \
  --set-string 'nodeSelector.tfjob-operator\.io/real-node=true' \
  --set 'tolerations[0].key=tfjob-operator.io/real-node' --set 'tolerations[0].operator=Exists' \
  --set 'tolerations[0].effect=NoSchedule' --wait --timeout 60s | sed -n '1,6p' || why_not_up
kubectl -n tfjob-system get pods -o wide

if [[ "$demo" == seed ]]; then
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
else
say "Applying examples/tensorflow/multi-worker-mirrored.yaml: 2 workers train with MultiWorkerMirroredStrategy on the real node"
kubectl create namespace tf-demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl delete tfjob multi-worker-mirrored -n tf-demo --ignore-not-found --wait=true >/dev/null
kubectl apply --dry-run=client -o json -n tf-demo -f "$root/examples/tensorflow/multi-worker-mirrored.yaml" | python3 -c '
import json, sys
job = json.load(sys.stdin)
for replica in job["spec"]["tfReplicaSpecs"].values():
    pod = replica["template"]["spec"]
    pod["nodeSelector"] = {"tfjob-operator.io/real-node": "true"}
    pod["tolerations"] = [{"key": "tfjob-operator.io/real-node", "operator": "Exists", "effect": "NoSchedule"}]
json.dump(job, sys.stdout)
' | kubectl apply -n tf-demo -f -
applied=$(date +%s)
wait_cond tfjob/multi-worker-mirrored tf-demo Succeeded 300 || {
  echo "the TFJob did not succeed:" >&2; kubectl get tfjob multi-worker-mirrored -n tf-demo -o yaml | sed -n '/^status:/,$p' >&2
  kubectl -n tfjob-system logs deployment/tfjob-operator --tail=20 >&2; exit 1; }
echo "Succeeded $(( $(date +%s) - applied ))s after kubectl apply"
kubectl get tfjobs -n tf-demo -o wide
kubectl get pods -n tf-demo -o wide
echo
echo "kubectl logs multi-worker-mirrored-worker-0 (TensorFlow's own lines left out):"
kubectl logs multi-worker-mirrored-worker-0 -n tf-demo | grep -E '^(cluster|task|variable|step|trained)'

fi

cat <<EOF2

Done in $(( $(date +%s) - started ))s. The demo cluster is still running. Try it:
  export KUBECONFIG=$dir/kubeconfig PATH=$dir/bin:\$PATH
  kubectl get tfjobs -A -o wide
  kubectl logs -n tfjob-system deployment/tfjob-operator
Clean up:     make demo-down
EOF2
