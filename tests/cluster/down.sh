#!/usr/bin/env bash
# Stops the control plane started by up.sh (by pid) and removes its state.
# Usage: down.sh [DIR]   (DIR defaults to $TFJOB_CLUSTER_DIR or /tmp/tfjob-operator-cluster)
set -uo pipefail
dir="${1:-${TFJOB_CLUSTER_DIR:-/tmp/tfjob-operator-cluster}}"
[[ -d "$dir" ]] || exit 0
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=pids.sh
source "$here/pids.sh"
# A real node first, while the API server can still delete its pods.
"$here/realnode-down.sh" "$dir"
# Reverse start order: clients first, etcd last.
for name in sp-controller sp-scheduler vc-controller-manager vc-scheduler kueue kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop_pidfile "$dir/pids/$name.pid"
done
# Only remove directories that look like ours.
if [[ -f "$dir/kubeconfig" && -d "$dir/pki" ]]; then
  rm -rf "$dir"
fi
