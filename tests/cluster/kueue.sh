#!/usr/bin/env bash
# Adds Kueue (built from the Go module proxy by build-kueue.sh) to a control plane started by
# up.sh: its CRDs and ours, a Kueue process on loopback ports, and its TFJob, Job and Kueue-object
# webhooks pointed at that process by URL with a certificate signed by the cluster's CA.
# up.sh calls this when TFJOB_CLUSTER_KUEUE=1; down.sh stops the process.
#
# Usage: kueue.sh DIR. Writes DIR/kueue/ (config, certificates, the ports) and
# DIR/inline.kubeconfig (a cluster-admin kubeconfig with inline CA and token: MultiKueue accepts
# no file paths in the kubeconfigs it is given).
#
# Kueue reads its metrics certificate from a fixed path, /etc/kueue/metrics/certs (no flag or
# config field changes it; it exits without one), so this writes a self-signed one there if none
# is present. That needs root, as the CI here has; the file serves Kueue's metrics endpoint only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=pids.sh
source "$here/pids.sh"
dir="$(cd "$1" && pwd)"
log() { echo "[kueue $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s.%N)
kueue_home="$("$here/build-kueue.sh" | tail -n1)"
kc() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
k="$dir/kueue"; mkdir -p "$k/certs"
# Started again (e.g. after a test stopped it): the previous process goes first.
stop_pidfile "$dir/pids/kueue.pid"

# --- CRDs: Kueue's (server-side: the Workload CRD is too large for a client-side apply) and ours.
kc apply --server-side --force-conflicts -f "$kueue_home/crd/" >/dev/null
kc apply --server-side --force-conflicts -f "$here/../../crds/" >/dev/null
kc wait --for=condition=Established crd --all --timeout=60s >/dev/null
# Kueue's own namespace: MultiKueue reads worker kubeconfigs from Secrets there.
kc create namespace kueue-system --dry-run=client -o yaml | kc apply -f - >/dev/null

# --- certificates ----------------------------------------------------------------------------
if [[ ! -f "$k/certs/tls.crt" ]]; then
  (
    cd "$k/certs"
    openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj /CN=kueue-webhook 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > tls.ext
    openssl x509 -req -in tls.csr -CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -CAcreateserial \
      -days 365 -out tls.crt -extfile tls.ext 2>/dev/null
  )
fi
metrics_certs=/etc/kueue/metrics/certs
if [[ ! -f "$metrics_certs/tls.crt" ]]; then
  mkdir -p "$metrics_certs" || { log "cannot create $metrics_certs (Kueue's fixed metrics certificate path): run as root"; exit 1; }
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$metrics_certs/tls.key" -out "$metrics_certs/tls.crt" \
    -days 3650 -subj /CN=kueue-metrics -addext subjectAltName=IP:127.0.0.1 2>/dev/null
fi

# --- Kueue -----------------------------------------------------------------------------------
WP=$(free_port); MP=$(free_port); HP=$(free_port)
echo "$WP" > "$k/webhook-port"; echo "$HP" > "$k/health-port"
cat > "$k/config.yaml" <<CONFIG
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
health: {healthProbeBindAddress: "127.0.0.1:$HP"}
metrics: {bindAddress: "127.0.0.1:$MP"}
webhook: {host: 127.0.0.1, port: $WP, certDir: $k/certs}
leaderElection: {leaderElect: false}
internalCertManagement: {enable: false}
# The visibility API server would bind 0.0.0.0:8082; nothing here uses it.
featureGates: {VisibilityOnDemand: false}
integrations:
  frameworks: ["batch/job", "kubeflow.org/tfjob"]
CONFIG
setsid "$kueue_home/bin/kueue" --config "$k/config.yaml" --kubeconfig "$dir/kubeconfig" --zap-log-level=3 \
  > "$dir/logs/kueue.log" 2>&1 < /dev/null &
echo $! > "$dir/pids/kueue.pid"
deadline=$(( $(date +%s) + 60 ))
until curl -sf "http://127.0.0.1:$HP/readyz" >/dev/null; do
  if (( $(date +%s) > deadline )) || ! kill -0 "$(cat "$dir/pids/kueue.pid")" 2>/dev/null; then
    log "Kueue did not become ready; last log lines:"; tail -n 30 "$dir/logs/kueue.log" >&2; exit 1
  fi
  sleep 0.2
done

# --- webhooks: upstream's configurations, reaching the local process by URL --------------------
# Only the TFJob, Job and Kueue-object webhooks (Kueue serves every framework's paths, but the
# other frameworks' CRDs are not installed here).
kc create --dry-run=client -o json -f "$kueue_home/webhooks.yaml" | python3 -c '
import base64, json, sys
port, ca = sys.argv[1], base64.b64encode(open(sys.argv[2], "rb").read()).decode()
keep = ("tfjob", "-job", "workload", "clusterqueue", "resourceflavor", "cohort")
text, docs, at = sys.stdin.read(), [], 0
while text[at:].strip():  # kubectl prints one JSON document per object
    doc, end = json.JSONDecoder().raw_decode(text, at)
    docs.append(doc)
    at = end
    while at < len(text) and text[at].isspace():
        at += 1
for d in docs:
    d["metadata"]["name"] = "kueue-" + d["metadata"]["name"]
    hooks = [w for w in d["webhooks"] if w["clientConfig"]["service"]["path"].endswith(keep)]
    for w in hooks:
        path = w["clientConfig"]["service"]["path"]
        w["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca}
    d["webhooks"] = hooks
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
' "$WP" "$dir/pki/ca.crt" | kc apply -f - >/dev/null

# --- a kubeconfig MultiKueue accepts: inline CA, token ----------------------------------------
token="$(awk -F, '$2=="admin-token" {print $1}' "$dir/pki/tokens.csv")"
cat > "$dir/inline.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$(cat "$dir/apiserver-port")
    certificate-authority-data: $(base64 -w0 < "$dir/pki/ca.crt")
users:
- name: admin
  user: {token: $token}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
elapsed=$(python3 -c "import time; print(round(time.time()-$start,1))")
log "Kueue $(basename "$kueue_home") up in ${elapsed}s (webhooks on 127.0.0.1:$WP)"
