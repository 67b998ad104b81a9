#!/usr/bin/env bash
# The API requests an operator binary makes per job over a job's whole life, from the audit log,
# by verb and resource: N jobs (20) of 1 PS + 2 Workers with cleanPodPolicy Running are created,
# run (kwok), worker 0 of each exits 0, they succeed, one collection delete, until all are gone.
# Small and exact (counts, not timings): for an A/B of a change to what the operator writes.
#
#   benches/requests-per-job.sh BINARY NAMESPACE [CLUSTER_DIR]   (N=20; default cluster: a running
#   `tests/cluster/up.sh` directory, /tmp/tfjob-operator-cluster)
set -euo pipefail
bin=$1 ns=$2 dir=${3:-/tmp/tfjob-operator-cluster} n=${N:-20}
kc() { $dir/bin/kubectl --kubeconfig $dir/kubeconfig "$@"; }
kc create namespace $ns >/dev/null
from=$(stat -c %s $dir/logs/audit.log 2>/dev/null || echo 0) # no log before the first audited request
KUBECONFIG=$dir/operator.kubeconfig $bin run --namespace $ns --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 > "$dir/logs/requests-per-job-$ns.log" 2>&1 &
op=$!
until grep -q "caches synced" "$dir/logs/requests-per-job-$ns.log"; do sleep 0.2; done
for i in $(seq 1 $n); do cat <<Y; done | kc apply -n $ns -f - >/dev/null
apiVersion: kubeflow.org/v1
kind: TFJob
metadata: {name: j$i}
spec:
  runPolicy: {cleanPodPolicy: Running}
  tfReplicaSpecs:
    PS: {replicas: 1, template: {spec: {containers: [{name: tensorflow, image: x}]}}}
    Worker: {replicas: 2, template: {spec: {containers: [{name: tensorflow, image: x}]}}}
---
Y
until [[ $(kc get pods -n $ns --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l) -ge $((3*n)) ]]; do sleep 0.5; done
for i in $(seq 1 $n); do kc annotate pod -n $ns j$i-worker-0 test.tfjob-operator.io/exit-code=0 >/dev/null; done
until [[ $(kc get tfjobs -n $ns -o jsonpath='{range .items[*]}{.status.state}{"\n"}{end}' | grep -c Succeeded) -ge $n ]]; do sleep 0.5; done
kc delete tfjobs -n $ns --all --wait=false >/dev/null
until [[ $(kc get tfjobs,pods,services -n $ns --no-headers 2>/dev/null | wc -l) -eq 0 ]]; do sleep 0.5; done
sleep 2 # events and status writes still in flight
kill $op; wait $op 2>/dev/null || true
to=$(stat -c %s $dir/logs/audit.log)
python3 - "$dir/logs/audit.log" $from $to $n <<'P'
import json, sys, collections
path, a, b, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = open(path, 'rb').read()[a:b]
c = collections.Counter()
for line in data.splitlines():
    try: v = json.loads(line)
    except Exception: continue
    if v.get("stage") != "ResponseComplete": continue
    o = v.get("objectRef", {})
    r = o.get("resource", "?") + ("/" + o["subresource"] if o.get("subresource") else "")
    c[f'{v["verb"]} {r}'] += 1
writes = {k: v for k, v in c.items() if not k.startswith(("list", "watch", "get"))}
print(f"per job: {sum(writes.values())/n:.2f} writes", "; ".join(f"{k} {v/n:.2f}" for k, v in sorted(writes.items())))
print("reads:", dict(c - collections.Counter(writes)))
P
