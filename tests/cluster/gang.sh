#!/usr/bin/env bash
# Adds the two gang schedulers (built from the Go module proxy by build-gang.sh) to a control
# plane started by up.sh, beside its default kube-scheduler:
#   - Volcano: vc-scheduler (scheduler name `volcano`) and vc-controller-manager (its queue
#     controller only: the TFJob operator makes the PodGroups);
#   - scheduler-plugins: kube-scheduler with the Coscheduling plugin as the profile
#     `scheduler-plugins-scheduler`, and its PodGroup controller.
# Volcano sees only nodes labelled tfjob-test/gang=true (its --node-selector), so the capacity a
# test gives such nodes is all it can admit; scheduler-plugins' scheduler sees every node and
# the tests' pods select theirs. Everything binds to 127.0.0.1; up.sh calls this when
# TFJOB_CLUSTER_GANG=1, down.sh stops the processes.
#
# Usage: gang.sh DIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=pids.sh
source "$here/pids.sh"
dir="$(cd "$1" && pwd)"
log() { echo "[gang $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s.%N)
gang_home="$("$here/build-gang.sh" | tail -n1)"
kc() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
g="$dir/gang"; mkdir -p "$g"
for name in vc-scheduler vc-controller-manager sp-scheduler sp-controller; do
  stop_pidfile "$dir/pids/$name.pid" # started again: the previous processes go first
done

# --- CRDs: both PodGroup APIs (and Volcano's queues), and ours.
kc apply --server-side --force-conflicts -f "$gang_home/crd/volcano/" -f "$gang_home/crd/scheduler-plugins/" >/dev/null
kc apply --server-side --force-conflicts -f "$here/../../crds/" >/dev/null
kc wait --for=condition=Established crd --all --timeout=60s >/dev/null

spawn() { # name, then the command
  local name="$1"; shift
  KUBECONFIG="$dir/kubeconfig" setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name.pid"
}
wait_healthy() { # name, url
  local deadline=$(( $(date +%s) + 60 ))
  until curl -sfk "$2" >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )) || ! kill -0 "$(cat "$dir/pids/$1.pid")" 2>/dev/null; then
      log "$1 did not become healthy; last log lines:"; tail -n 30 "$dir/logs/$1.log" >&2; exit 1
    fi
    sleep 0.2
  done
}

# --- Volcano ------------------------------------------------------------------------------------
cat > "$g/volcano-scheduler.conf" <<'CONF'
actions: "enqueue, allocate, backfill"
tiers:
- plugins:
  - name: priority
  - name: gang
    enablePreemptable: false
  - name: conformance
- plugins:
  - name: overcommit
  - name: drf
    enablePreemptable: false
  - name: predicates
  - name: proportion
  - name: nodeorder
  - name: binpack
CONF
VM=$(free_port); VH=$(free_port); CH=$(free_port)
spawn vc-scheduler "$gang_home/bin/vc-scheduler" --kubeconfig="$dir/kubeconfig" \
  --leader-elect=false --scheduler-name=volcano --scheduler-conf="$g/volcano-scheduler.conf" \
  --schedule-period=500ms --node-selector=tfjob-test/gang:true \
  --listen-address="127.0.0.1:$VM" --healthz-address="127.0.0.1:$VH" --enable-healthz=true \
  --cache-dumper=false --plugins-dir="$g/no-plugins" -v=2
spawn vc-controller-manager "$gang_home/bin/vc-controller-manager" --kubeconfig="$dir/kubeconfig" \
  --leader-elect=false --controllers=+queue-controller \
  --healthz-address="127.0.0.1:$CH" --enable-healthz=true -v=2
wait_healthy vc-scheduler "http://127.0.0.1:$VH/healthz"
wait_healthy vc-controller-manager "http://127.0.0.1:$CH/healthz"
# Volcano makes its `default` queue itself; the tests' PodGroups use it.
deadline=$(( $(date +%s) + 60 ))
until kc get queue.scheduling.volcano.sh default >/dev/null 2>&1; do
  (( $(date +%s) < deadline )) || { log "Volcano made no default queue"; tail -n 30 "$dir/logs/vc-scheduler.log" >&2; exit 1; }
  sleep 0.2
done

# --- scheduler-plugins --------------------------------------------------------------------------
SP=$(free_port); PM=$(free_port); PP=$(free_port)
cat > "$g/sp-scheduler.yaml" <<CONF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: false
clientConnection:
  kubeconfig: "$dir/kubeconfig"
profiles:
- schedulerName: scheduler-plugins-scheduler
  plugins:
    multiPoint:
      enabled:
      - name: Coscheduling
    queueSort:
      enabled:
      - name: Coscheduling
      disabled:
      - name: "*"
  pluginConfig:
  - name: Coscheduling
    args:
      permitWaitingTimeSeconds: 10
CONF
spawn sp-scheduler "$gang_home/bin/sp-scheduler" --config="$g/sp-scheduler.yaml" \
  --bind-address=127.0.0.1 --secure-port="$SP" \
  --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics --v=1
spawn sp-controller "$gang_home/bin/sp-controller" --kubeconfig="$dir/kubeconfig" \
  --metricsAddr="127.0.0.1:$PM" --probeAddr="127.0.0.1:$PP"
wait_healthy sp-scheduler "https://127.0.0.1:$SP/healthz"
wait_healthy sp-controller "http://127.0.0.1:$PP/healthz"

log "${gang_home##*/} up in $(python3 -c "import time; print(round(time.time()-$start,1))")s"
