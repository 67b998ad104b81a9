#!/usr/bin/env bash
# Takes away the real node realnode.sh added to the control plane in DIR, and every trace of it
# on this machine: its pods (through the kubelet while the API server is up), the kubelet,
# containerd and their shims, CoreDNS, the socat bridges, its cgroups, its network namespace
# (bridge, veths) — and the kernel settings the kubelet changed, restored. Safe to run again,
# and after a crash (what is already gone is skipped).
# Usage: realnode-down.sh DIR
set -uo pipefail
dir="$1"; d="$dir/realnode"
[[ -d "$d" ]] || exit 0
sock="$d/run/containerd.sock"
kc() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" --request-timeout=5s "$@"; }
# shellcheck source=pids.sh
source "$(dirname "${BASH_SOURCE[0]}")/pids.sh"
stop() { stop_pidfile "$d/pids/$1.pid"; }
# 1. The pods, through the kubelet (stopping a sandbox tears down its network), if it still runs.
if [[ -f "$d/pids/kubelet.pid" ]] && kill -0 "$(cat "$d/pids/kubelet.pid")" 2>/dev/null \
  && kc get node real-node-0 >/dev/null 2>&1; then
  kc delete pods -A --field-selector spec.nodeName=real-node-0 --grace-period=0 --force --wait=false >/dev/null 2>&1
  for _ in $(seq 50); do
    [[ -z "$(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null)" ]] && break
    sleep 0.2
  done
fi
kc delete node real-node-0 --wait=false >/dev/null 2>&1
# 2. Whatever still runs: through containerd, then the processes.
for t in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
  ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1
done
for n in kubelet coredns containerd socat-service socat-kubelet-in socat-api-in; do stop "$n"; done
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock"); do kill -KILL "$p" 2>/dev/null; done
# The node's session (node.sh and all it started, socat's forked children with open
# connections included), then anything else still serving the node's sockets.
[[ -f "$d/pids/node.pid" ]] && kill -KILL -- "-$(cat "$d/pids/node.pid")" 2>/dev/null
stop node; stop socat-kubelet; stop socat-api
for p in $(pgrep -f "socat .*$d/run/"); do kill -KILL "$p" 2>/dev/null; done
# Processes of the node's pods left in its cgroups (a shim killed first leaves them): killed.
cgroot="$(cat "$d/cgroup" 2>/dev/null)"
if [[ -n "$cgroot" ]]; then
  for _ in 1 2 3; do
    pids="$(find /sys/fs/cgroup/pids/"$cgroot" -name cgroup.procs -exec cat {} + 2>/dev/null)"
    [[ -z "$pids" ]] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null; sleep 0.2
  done
  # 3. Its cgroups in every hierarchy, deepest first.
  for c in /sys/fs/cgroup/*/"$cgroot"; do
    [[ -d "$c" ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
fi
# 4. The network namespace (the bridge and the pods' veths go with it).
netns="$(cat "$d/netns" 2>/dev/null)"
[[ -n "$netns" ]] && ip netns del "$netns" 2>/dev/null
# 5. The kernel settings, as they were.
if [[ -f "$d/sysctl.orig" ]]; then
  while IFS='=' read -r k v; do sysctl -qw "$k=$v" 2>/dev/null; done < "$d/sysctl.orig"
fi
# Empty mount points the private mount namespace needed on the host.
for p in /var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni /usr/libexec/kubernetes; do
  rmdir "$p" 2>/dev/null
done
rm -rf "$d"
true
