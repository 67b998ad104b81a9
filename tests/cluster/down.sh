#!/usr/bin/env bash
# Stops the control plane started by up.sh (by pid) and removes its state.
# Usage: down.sh [DIR]   (DIR defaults to $TFJOB_CLUSTER_DIR or /tmp/tfjob-operator-cluster)
set -uo pipefail
dir="${1:-${TFJOB_CLUSTER_DIR:-/tmp/tfjob-operator-cluster}}"
[[ -d "$dir" ]] || exit 0
# A real node first, while the API server can still delete its pods.
"$(dirname "${BASH_SOURCE[0]}")/realnode-down.sh" "$dir"
# Reverse start order: clients first, etcd last.
for name in sp-controller sp-scheduler vc-controller-manager vc-scheduler kueue kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  pidfile="$dir/pids/$name.pid"
  [[ -f "$pidfile" ]] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
# Only remove directories that look like ours.
if [[ -f "$dir/kubeconfig" && -d "$dir/pki" ]]; then
  rm -rf "$dir"
fi
