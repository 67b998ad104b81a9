#!/usr/bin/env bash
# Waits until the control plane in DIR (started by up.sh) serves new namespaces again after an
# API server restart: kube-controller-manager gives a new namespace its default
# ServiceAccount, without which no pod can be created there. The controller manager reconnects
# at its own (client-go) pace, up to half a minute after the API server is back.
#   tests/cluster/settled.sh DIR
set -euo pipefail
dir="${1:?usage: settled.sh DIR}"
k() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
probe="settled-probe-$$"
k create namespace "$probe" >/dev/null
deadline=$(( $(date +%s) + 120 ))
until k get serviceaccount default -n "$probe" >/dev/null 2>&1; do
  (( $(date +%s) < deadline )) || { echo "controller manager not serving after 120 s" >&2; exit 1; }
  sleep 0.5
done
k delete namespace "$probe" --wait=false >/dev/null
