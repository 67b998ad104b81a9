#!/usr/bin/env bash
# End-to-end suite against whatever KUBECONFIG points to.
#
#   E2E_MODE=local (default): the chart is installed (its Deployment's pod is faked by kwok on the
#     local control plane) and the real operator binary runs on this host with a kubeconfig that
#     carries the chart's ServiceAccount token, so the chart's RBAC is what is exercised.
#   E2E_MODE=in-cluster: the chart's Deployment runs the operator image (kind, see kind.sh).
#
# Steps: helm lint, template validated by the API server (dry-run), install, run examples to
# Running / Succeeded, `kubectl delete tfjobs --all`, upgrade, uninstall (pre-delete hook), and
# a check that nothing is left behind. Prints its wall time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${KUBECONFIG:?set KUBECONFIG}"
mode="${E2E_MODE:-local}"
bin="${TFJOB_OPERATOR_BIN:-$root/target/debug/tfjob-operator}"
release=tfjob-operator
sys_ns=tfjob-system
ns=e2e
start=$(date +%s)
work="$(mktemp -d)"
op_pid=""
log() { echo "[e2e $(date +%H:%M:%S)] $*"; }
fail() { echo "[e2e] FAIL: $*" >&2; [[ -f "$work/operator.log" ]] && tail -n 40 "$work/operator.log" >&2; exit 1; }
cleanup() {
  [[ -n "$op_pid" ]] && kill "$op_pid" 2>/dev/null && wait "$op_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
k() { kubectl "$@"; }
# shellcheck source=lib.sh
source "$root/tests/e2e/lib.sh"

log "helm lint"
helm lint "$root/charts/tfjob-operator" >/dev/null || fail "helm lint"
cmp -s "$root/crds/kubeflow.org_tfjobs.yaml" "$root/charts/tfjob-operator/crds/kubeflow.org_tfjobs.yaml" \
  || fail "charts/tfjob-operator/crds differs from crds/ (run make crd)"

log "CRD and rendered chart validated by the API server (dry-run)"
k apply --server-side -f "$root/crds/" >/dev/null
wait_cond crd/tfjobs.kubeflow.org "" Established 60 || fail "CRD not established"
for n in "$sys_ns" "$ns" kube-test; do
  k create namespace "$n" --dry-run=client -o yaml | k apply -f - >/dev/null
done
for values in "" "--set watchNamespace=$ns --set podDisruptionBudget.enabled=true --set metrics.grafanaDashboard.enabled=true --set operator.gangSchedulerName=volcano" "--set watchNamespaces={$ns,kube-test} --set leaderElection.enabled=false --set replicaCount=1"; do
  # shellcheck disable=SC2086
  helm template "$release" "$root/charts/tfjob-operator" -n "$sys_ns" --validate $values \
    | k apply --dry-run=server -f - >/dev/null || fail "rendered chart rejected ($values)"
done

log "helm install"
# shellcheck disable=SC2206
extra=(${HELM_EXTRA_ARGS:-})
[[ "$mode" == local ]] && extra+=(--set image.repository=tfjob-operator.local/none)
helm install "$release" "$root/charts/tfjob-operator" -n "$sys_ns" --wait --timeout 120s "${extra[@]}" >/dev/null \
  || fail "helm install"

if [[ "$mode" == local ]]; then
  log "running the operator on this host as the chart's ServiceAccount, with leader election as the chart runs it"
  sa_kubeconfig "$release" "$sys_ns" "$work/sa.kubeconfig" 2h
  KUBECONFIG="$work/sa.kubeconfig" RUST_LOG=info "$bin" run --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --leader-elect --leader-election-namespace "$sys_ns" --leader-election-id e2e-local >"$work/operator.log" 2>&1 &
  op_pid=$!
fi

finish_worker0() { # local mode: kwok ends the pod; in-cluster the container exits by itself
  [[ "$mode" == local ]] || return 0
  k wait --for=jsonpath='{.status.phase}'=Running "pod/$2-worker-0" -n "$1" --timeout=60s >/dev/null
  k annotate pod "$2-worker-0" -n "$1" test.tfjob-operator.io/exit-code=0 >/dev/null
}

log "TFJobs: the seed manifest unchanged, and the e2e job"
# The chart's MutatingAdmissionPolicy (Kubernetes 1.36+) stores the job with our finalizer.
serves_policies=false
k api-resources -o name | grep -x mutatingadmissionpolicies.admissionregistration.k8s.io >/dev/null && serves_policies=true
if [[ "$serves_policies" == true ]]; then
  # The API server applies a new policy a moment after it is created: wait for it (a dry run).
  deadline=$(( $(date +%s) + 30 ))
  until [[ "$(k create --dry-run=server -f "$root/examples/tfjob-seed.yaml" -o jsonpath='{.metadata.finalizers}')" == *kubeflow.org/tfjob-cleanup* ]]; do
    (( $(date +%s) < deadline )) || fail "the chart's finalizer policy was never applied"
    sleep 0.2
  done
fi
stored="$(k apply -f "$root/examples/tfjob-seed.yaml" -o jsonpath='{.metadata.finalizers}')"
if [[ "$serves_policies" == true ]]; then
  [[ "$stored" == *kubeflow.org/tfjob-cleanup* ]] || fail "the seed job was not stored with the finalizer: $stored"
fi
k apply -n "$ns" -f "$root/tests/e2e/tfjob-e2e.yaml" >/dev/null
if [[ "$mode" == local ]]; then
  wait_cond tfjob/tfjob-test kube-test Running 120 || fail "seed job not Running"
fi
wait_cond tfjob/e2e "$ns" Running 180 || fail "e2e job not Running"
# (On kind the seed's image cannot be pulled; its two pods must exist all the same.)
deadline=$(( $(date +%s) + 60 ))
until [[ "$(k get pods -n kube-test -l training.kubeflow.org/job-name=tfjob-test -o name | wc -l)" == 2 ]]; do
  (( $(date +%s) < deadline )) || fail "seed pods"; sleep 0.5
done
finish_worker0 "$ns" e2e
wait_cond tfjob/e2e "$ns" Succeeded 180 || fail "e2e job not Succeeded"
k wait --for=delete pod/e2e-ps-0 -n "$ns" --timeout=60s >/dev/null || fail "PS pod not cleaned (cleanPodPolicy Running)"
# The API server names the operator (its User-Agent) as the manager of the status it wrote.
status_manager="$(k get tfjob/e2e -n "$ns" --show-managed-fields \
  -o jsonpath='{range .metadata.managedFields[?(@.subresource=="status")]}{.manager}{end}')"
[[ "$status_manager" == tfjob-operator ]] || fail "the status is managed by '$status_manager', not tfjob-operator"
k get tfjobs -A

log "kubectl delete tfjobs --all"
k delete tfjobs --all -n kube-test --wait=true --timeout=120s >/dev/null
k delete tfjobs --all -n "$ns" --wait=true --timeout=120s >/dev/null
for n in kube-test "$ns"; do
  left="$(k get pods,services -n "$n" -l training.kubeflow.org/operator-name=tfjob-controller -o name)"
  [[ -z "$left" ]] || fail "left behind in $n: $left"
done

log "helm upgrade"
helm upgrade "$release" "$root/charts/tfjob-operator" -n "$sys_ns" --reuse-values --set operator.concurrency=8 --wait --timeout 120s >/dev/null \
  || fail "helm upgrade"

if [[ "$mode" == local ]]; then
  # The hook runs the same command in-cluster; here it proves the ServiceAccount may run it.
  KUBECONFIG="$work/sa.kubeconfig" "$bin" release-finalizers --all-namespaces >/dev/null || fail "release-finalizers as the ServiceAccount"
  # RBAC denials read 'User "system:serviceaccount:..." cannot <verb> resource ...'.
  ! grep -Eq 'cannot (get|list|watch|create|update|patch|delete)' "$work/operator.log" \
    || fail "the operator needs a permission the chart does not grant"
  kill "$op_pid"; wait "$op_pid" 2>/dev/null || true; op_pid=""
fi

log "helm uninstall (pre-delete hook releases finalizers)"
helm uninstall "$release" -n "$sys_ns" --wait --timeout 120s >/dev/null || fail "helm uninstall"
left="$(k get all,serviceaccounts,roles,rolebindings -n "$sys_ns" -l app.kubernetes.io/instance="$release" -o name 2>/dev/null)"
[[ -z "$left" ]] || fail "left behind by uninstall: $left"
left="$(k get clusterroles,clusterrolebindings -l app.kubernetes.io/instance="$release" -o name)"
[[ -z "$left" ]] || fail "cluster RBAC left behind: $left"
[[ -z "$(k get tfjobs -A -o name)" ]] || fail "TFJobs left"
if [[ "$serves_policies" == true ]]; then
  left="$(k get mutatingadmissionpolicies,mutatingadmissionpolicybindings -l app.kubernetes.io/instance="$release" -o name)"
  [[ -z "$left" ]] || fail "the finalizer policy was left behind: $left"
fi
k delete namespace "$ns" kube-test --wait=true --timeout=120s >/dev/null
log "e2e passed in $(( $(date +%s) - start ))s"
echo "e2e: 1 passed, 0 failed"
