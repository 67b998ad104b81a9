#!/usr/bin/env bash
# Benchmark: the operator with one huge TFJob (1 PS + HUGE_WORKERS workers, 10,000 by default)
# while small jobs keep arriving beside it. Prints, every SAMPLE seconds, the operator's RSS,
# CPU time and how many of the huge job's pods exist; then how long each small job waited for
# its pod and for Running, and the operator's peak RSS next to the Helm chart's memory limit.
#
# Usage: benches/huge_job.sh CLUSTER_DIR [OPERATOR_BINARY]
# Environment: HUGE_WORKERS (10000), HUGE_PODS (stop once the huge job has this many pods,
# 3000), HUGE_SECONDS (at most, 900), SAMPLE (seconds between samples, 15), HUGE_DYNAMIC=1
# (enableDynamicWorker: each worker's TF_CONFIG lists only the PS and itself, so all 10,001 pods
# fit in the local control plane).
# Each pod's TF_CONFIG lists every replica (~330 KB at 10,000 workers): the local API server
# needs ~3 MB of memory per such pod and etcd ~1 MB, so a 24 GiB machine holds ~3,000 of them
# (start the cluster with TFJOB_CLUSTER_ETCD_QUOTA=17179869184).
set -euo pipefail
dir="${1:?usage: huge_job.sh CLUSTER_DIR [OPERATOR_BINARY]}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
op="${2:-$root/target/release/tfjob-operator}"
workers="${HUGE_WORKERS:-10000}" stop_at="${HUGE_PODS:-3000}" seconds="${HUGE_SECONDS:-900}" sample="${SAMPLE:-15}"
export KUBECONFIG="$dir/kubeconfig" PATH="$dir/bin:$PATH"
ns=huge-bench
limit=$(grep -m1 -o 'limits:.*memory: *[0-9A-Za-z]*' "$root/charts/tfjob-operator/values.yaml" | sed 's/.*memory: *//')

kubectl apply --server-side --force-conflicts -f "$root/crds/" >/dev/null
until kubectl get tfjobs -A >/dev/null 2>&1; do sleep 0.5; done # the CRD is served
kubectl create namespace "$ns" >/dev/null

job() { # name workers [ps [dynamic]]
  cat <<YAML
apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: $1, namespace: $ns}
spec:
  runPolicy: {cleanPodPolicy: None}
  enableDynamicWorker: ${4:-false}
  tfReplicaSpecs:
$( [[ -n "${3:-}" ]] && echo "    PS: {replicas: $3, template: {spec: {containers: [{name: tensorflow, image: tf}]}}}" )
    Worker:
      replicas: $2
      restartPolicy: Never
      template: {spec: {containers: [{name: tensorflow, image: tf}]}}
YAML
}

dynamic=false; [[ "${HUGE_DYNAMIC:-0}" == 1 ]] && dynamic=true
job huge "$workers" 1 "$dynamic" | kubectl apply -f - >/dev/null
RUST_LOG=warn "$op" run --namespace "$ns" --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 >"$dir/logs/huge-operator.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT

rss() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$pid/status"; }
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14+$15)/hz}' "/proc/$pid/stat"; }
apiserver_rss() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$(cat "$dir/pids/kube-apiserver.pid")/status"; }
huge_pods() { kubectl get pods -n "$ns" -l training.kubeflow.org/job-name=huge --no-headers 2>/dev/null | wc -l; }

echo "huge job: 1 PS + $workers workers (enableDynamicWorker: $dynamic); chart memory limit $limit"
printf '%6s %9s %8s %10s %16s\n' "t(s)" "RSS(MiB)" "CPU(s)" "huge pods" "apiserver(MiB)"
start=$(date +%s) small=0 next_small=$start
while (( $(date +%s) - start < seconds )); do
  now=$(date +%s)
  if (( now >= next_small )); then # a small job every 30 s
    small=$((small + 1)); next_small=$((now + 30))
    job "small-$small" 1 | kubectl apply -f - >/dev/null
  fi
  pods=$(huge_pods)
  printf '%6d %9s %8s %10d %16s\n' "$((now - start))" "$(rss)" "$(cpu)" "$pods" "$(apiserver_rss)"
  (( pods >= stop_at )) && break
  sleep "$sample"
done
kill -0 $pid || { echo "operator died"; tail -5 "$dir/logs/huge-operator.log"; exit 1; }
echo "$(huge_pods) of the huge job's $((workers + 1)) pods after $(( $(date +%s) - start )) s"

# How long each small job waited: job created -> its pod created (the operator's part), and
# -> Running condition (includes the scheduler and kwok, busy with the huge job).
echo "small jobs (created -> pod created, -> Running):"
read -r -d '' report <<'PY' || true
import json, subprocess, sys
from datetime import datetime
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
pods = json.loads(subprocess.check_output(["kubectl", "get", "pods", "-n", sys.argv[1], "-l",
    "training.kubeflow.org/replica-type=worker,training.kubeflow.org/replica-index=0", "-o", "json"]))
born = {p["metadata"]["labels"]["training.kubeflow.org/job-name"]: ts(p["metadata"]["creationTimestamp"]) for p in pods["items"]}
for j in json.load(sys.stdin)["items"]:
    name = j["metadata"]["name"]
    if name == "huge":
        continue
    created = ts(j["metadata"]["creationTimestamp"])
    running = [c for c in j.get("status", {}).get("conditions", []) if c["type"] == "Running" and c["status"] == "True"]
    pod = f"{born[name] - created:.0f} s" if name in born else "no pod"
    run = f"{ts(running[0]['lastTransitionTime']) - created:.0f} s" if running else "not Running"
    print(f"  {name}: {pod}, {run}")
PY
kubectl get tfjobs -n "$ns" -o json | python3 -c "$report" "$ns"
echo "operator peak RSS: $(awk '/VmHWM/{printf "%.0f MiB", $2/1024}' "/proc/$pid/status") (limit $limit), CPU $(cpu) s"
kill $pid; wait $pid 2>/dev/null || true
"$op" release-finalizers -n "$ns" >/dev/null 2>&1 || true
kubectl delete namespace "$ns" --wait=false >/dev/null
