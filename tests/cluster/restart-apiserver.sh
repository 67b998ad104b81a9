#!/usr/bin/env bash
# Restarts the kube-apiserver of the control plane in DIR (started by up.sh) with the same
# command line, after DOWN seconds (default 0) without it, and waits until it is ready again.
# Prints the time it became ready (epoch milliseconds) as the last line.
#   tests/cluster/restart-apiserver.sh DIR [DOWN]
set -euo pipefail
dir="${1:?usage: restart-apiserver.sh DIR [DOWN]}"
down="${2:-0}"
pidfile="$dir/pids/kube-apiserver.pid"
pid="$(cat "$pidfile")"
mapfile -d '' cmd < "/proc/$pid/cmdline"
kill -KILL "$pid" # an outage, not a drain: a graceful stop waits up to a minute for watches
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
sleep "$down"
setsid "${cmd[@]}" >>"$dir/logs/kube-apiserver.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
server="$(awk '/server:/ {print $2; exit}' "$dir/kubeconfig")"
deadline=$(( $(date +%s) + 90 ))
until curl -sf --cacert "$dir/pki/ca.crt" "$server/readyz" >/dev/null 2>&1; do
  (( $(date +%s) < deadline )) || { echo "kube-apiserver not ready after restart" >&2; exit 1; }
  sleep 0.1
done
date +%s%3N
