#!/usr/bin/env bash
# Starts a real local Kubernetes control plane built from upstream Go modules:
# etcd, kube-apiserver (RBAC, client-cert + token auth, service-account keys),
# kube-controller-manager (GC, namespaces, service accounts, ...), kube-scheduler and kwok
# (fake nodes, deterministic pod lifecycles; see kwok-stages.yaml). Everything binds to 127.0.0.1.
#
# Usage: up.sh [DIR]   (DIR defaults to $TFJOB_CLUSTER_DIR or /tmp/tfjob-operator-cluster)
# Environment: TFJOB_CLUSTER_NODES (fake nodes, 3), TFJOB_CLUSTER_ETCD_QUOTA (bytes, 4 GiB),
# TFJOB_CLUSTER_KUEUE=1 (add Kueue with its TFJob integration: kueue.sh; off by default),
# TFJOB_CLUSTER_GANG=1 (add Volcano and scheduler-plugins' Coscheduling: gang.sh; off by default),
# TFJOB_CLUSTER_REAL_NODE=1 (add a real kubelet node with containerd and CoreDNS: realnode.sh;
# with TFJOB_REAL_NODE_TENSORFLOW=1 it also has the TensorFlow examples' image),
# TFJOB_CLUSTER_PROFILING=1 (the API server serves /debug/pprof, for benches; off by default;
# it applies when the API server starts, not to a cluster that is reused).
# Idempotent: if DIR already holds a healthy cluster it is reused. The last line of stdout is DIR,
# which holds kubeconfig (cluster-admin), operator.kubeconfig (user tfjob-operator, whose requests
# are recorded in logs/audit.log), bin/ (kubectl, helm, components), logs/ and pids/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${1:-${TFJOB_CLUSTER_DIR:-/tmp/tfjob-operator-cluster}}"
nodes="${TFJOB_CLUSTER_NODES:-3}"
# etcd's space quota in bytes; a 10,000-worker TFJob (each pod's TF_CONFIG lists every replica)
# needs more than the 4 GiB default here.
etcd_quota="${TFJOB_CLUSTER_ETCD_QUOTA:-4294967296}"
log() { echo "[up $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s.%N)

healthy() {
  [[ -f "$dir/kubeconfig" ]] || return 1
  local p
  for p in "$dir"/pids/*.pid; do
    [[ -f "$p" ]] && kill -0 "$(cat "$p")" 2>/dev/null || return 1
  done
  "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1
}

with_kueue="${TFJOB_CLUSTER_KUEUE:-0}"
with_gang="${TFJOB_CLUSTER_GANG:-0}"
with_real_node="${TFJOB_CLUSTER_REAL_NODE:-0}"
profiling=false; [[ "${TFJOB_CLUSTER_PROFILING:-0}" == 1 ]] && profiling=true
if healthy; then
  log "reusing the running cluster in $dir"
  if [[ "$with_kueue" == 1 && ! -f "$dir/pids/kueue.pid" ]]; then "$here/kueue.sh" "$dir"; fi
  if [[ "$with_gang" == 1 && ! -f "$dir/pids/vc-scheduler.pid" ]]; then "$here/gang.sh" "$dir"; fi
  if [[ "$with_real_node" == 1 && ! -f "$dir/realnode/pids/kubelet.pid" ]]; then "$here/realnode.sh" "$dir"; fi
  echo "$dir"
  exit 0
fi
[[ -d "$dir/pids" ]] && "$here/down.sh" "$dir" >&2 || true

bin="$("$here/build.sh" | tail -n1)"
mkdir -p "$dir"/{pki,logs,pids,etcd}
dir="$(cd "$dir" && pwd)"
ln -sfn "$bin" "$dir/bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EP=$(free_port); PP=$(free_port); AP=$(free_port); KCMP=$(free_port); SCHP=$(free_port)
echo "$AP" > "$dir/apiserver-port"

# --- PKI -----------------------------------------------------------------------------------------
pki="$dir/pki"
if [[ ! -f "$pki/admin.crt" ]]; then
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=tfjob-test-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out apiserver.crt -extfile apiserver.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out admin.crt -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    echo "$(openssl rand -hex 16),admin-token,admin-token,system:masters" > tokens.csv
    # A separate identity for an operator run by benchmarks, so its requests can be told apart
    # in the audit log (audit-policy.yaml records this user only).
    echo "$(openssl rand -hex 16),tfjob-operator,tfjob-operator,system:masters" >> tokens.csv
  )
fi

# The API server's client certificate for kubelets (logs, exec on a real node; realnode.sh).
if [[ ! -f "$pki/kubelet-client.crt" ]]; then
  (
    cd "$pki"
    openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr \
      -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out kubelet-client.crt -extfile client.ext 2>/dev/null
  )
fi

# kubeconfig FILE USER CREDENTIAL...: a kubeconfig for this cluster; each CREDENTIAL is one
# `key: value` line of the user entry.
kubeconfig() {
  local file="$1" user="$2"; shift 2
  {
    printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n'
    printf '    server: https://127.0.0.1:%s\n    certificate-authority: %s\n' "$AP" "$pki/ca.crt"
    printf 'users:\n- name: %s\n  user:\n' "$user"
    printf '    %s\n' "$@"
    printf 'contexts:\n- name: local\n  context: {cluster: local, user: %s}\ncurrent-context: local\n' "$user"
  } > "$file"
}
kubeconfig "$dir/kubeconfig" admin "client-certificate: $pki/admin.crt" "client-key: $pki/admin.key"
kubeconfig "$dir/operator.kubeconfig" tfjob-operator \
  "token: $(awk -F, '$2=="tfjob-operator" {print $1}' "$pki/tokens.csv")"
cat > "$dir/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: [tfjob-operator]
- level: None
POLICY

spawn() { # name, then the command
  local name="$1"; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
}
wait_for() { # description, timeout seconds, command...
  local what="$1" t="$2"; shift 2
  local deadline=$(( $(date +%s) + t ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then
      log "timed out waiting for $what; last log lines:"; tail -n 30 "$dir"/logs/*.log >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

# --- etcd ----------------------------------------------------------------------------------------
spawn etcd "$bin/etcd" --name=node0 --data-dir="$dir/etcd" \
  --listen-client-urls="http://127.0.0.1:$EP" --advertise-client-urls="http://127.0.0.1:$EP" \
  --listen-peer-urls="http://127.0.0.1:$PP" --initial-advertise-peer-urls="http://127.0.0.1:$PP" \
  --initial-cluster="node0=http://127.0.0.1:$PP" --unsafe-no-fsync=true \
  --auto-compaction-retention=1 --quota-backend-bytes="$etcd_quota" --log-level=warn
wait_for etcd 30 curl -sf "http://127.0.0.1:$EP/health"

# --- kube-apiserver ------------------------------------------------------------------------------
spawn kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$EP" \
  --bind-address=127.0.0.1 --secure-port="$AP" \
  --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-signing-key-file="$pki/sa.key" --service-account-key-file="$pki/sa.pub" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=RBAC --allow-privileged=true \
  --max-requests-inflight=1000 --max-mutating-requests-inflight=500 \
  --audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/logs/audit.log" \
  --audit-log-format=json --audit-log-maxsize=1024 \
  --kubelet-preferred-address-types=InternalIP \
  --kubelet-client-certificate="$pki/kubelet-client.crt" --kubelet-client-key="$pki/kubelet-client.key" \
  --profiling="$profiling" --v=1
wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" "https://127.0.0.1:$AP/readyz"

# --- kube-controller-manager, kube-scheduler -----------------------------------------------------
controllers="garbage-collector-controller,namespace-controller,serviceaccount-controller"
controllers+=",serviceaccount-token-controller,root-ca-certificate-publisher-controller"
controllers+=",clusterrole-aggregation-controller,deployment-controller,replicaset-controller"
controllers+=",statefulset-controller,job-controller,ttl-after-finished-controller"
controllers+=",pod-garbage-collector-controller,disruption-controller,resourcequota-controller"
controllers+=",node-lifecycle-controller,taint-eviction-controller"
# A real node's pods resolve Services by DNS, which reads EndpointSlices (kwok's pods have
# loopback IPs, which no EndpointSlice may hold: without a real node they would be work for
# nothing).
[[ "$with_real_node" == 1 ]] && controllers+=",endpointslice-controller"
spawn kube-controller-manager "$bin/kube-controller-manager" \
  --kubeconfig="$dir/kubeconfig" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$KCMP" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
  --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
  --use-service-account-credentials=false --controllers="$controllers" \
  --concurrent-gc-syncs=20 --kube-api-qps=200 --kube-api-burst=400 --v=1
spawn kube-scheduler "$bin/kube-scheduler" \
  --kubeconfig="$dir/kubeconfig" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port="$SCHP" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics --v=1

# --- kwok ----------------------------------------------------------------------------------------
spawn kwok "$bin/kwok" --kubeconfig="$dir/kubeconfig" --config="$here/kwok-stages.yaml" \
  --manage-nodes-with-label-selector=type=kwok --node-lease-duration-seconds=40 \
  --cidr=127.128.0.0/16 --node-ip=127.0.0.1

kc() { "$bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
{
  for i in $(seq 0 $((nodes - 1))) lost; do
    name="kwok-node-$i"; [[ "$i" == lost ]] && name="kwok-lost-node"
    cat <<NODE
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations: {node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: $name, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
spec:
  taints: $( [[ "$i" == lost ]] && echo '[{key: tfjob-operator.io/lost, effect: NoSchedule}]' || echo '[]' )
NODE
  done
} | kc apply -f - >/dev/null
wait_for "nodes Ready" 60 kc wait --for=condition=Ready node --all --timeout=1s
wait_for "default service account" 60 kc get serviceaccount default -n default

[[ "$with_kueue" == 1 ]] && "$here/kueue.sh" "$dir"
[[ "$with_gang" == 1 ]] && "$here/gang.sh" "$dir"
[[ "$with_real_node" == 1 ]] && "$here/realnode.sh" "$dir"

elapsed=$(python3 -c "import time; print(round(time.time()-$start,1))")
log "control plane $(kc version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') up in ${elapsed}s at https://127.0.0.1:$AP"
echo "$dir"
