#!/usr/bin/env bash
# Builds what a real node needs beside Debian's containerd and runc, from the Go module proxy,
# and caches it by version: kubelet (from the same Kubernetes module as the control plane, with
# its version stamped the same way) and CoreDNS (cluster DNS for Services and pods).
# Prints the bin directory as the last line of stdout; a complete entry is reused.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=kube-ldflags.sh
source "$here/kube-ldflags.sh"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator"
out="$cache_root/node/k8s-${K8S_VERSION}_coredns-${COREDNS_VERSION}"
bin="$out/bin"
if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi
log() { echo "[build-node $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s)
rm -rf "$out"; mkdir -p "$bin" "$out/src"

# kubelet: the control plane's wrapper module (build.sh) with the kubelet as one more tool.
cluster_bin="$("$here/build.sh" | tail -n1)"
cp -r "$(dirname "$cluster_bin")/src/kube" "$out/src/kube"
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
log "kubelet ${K8S_VERSION}"
(cd "$out/src/kube" && go mod edit -tool=k8s.io/kubernetes/cmd/kubelet && go mod tidy \
  && go build -trimpath -ldflags "$(kube_ldflags "$minor")" -o "$bin/kubelet" k8s.io/kubernetes/cmd/kubelet) >&2

# CoreDNS: its module has replace lines, so it is built in a writable copy.
log "coredns ${COREDNS_VERSION}"
dir="$(cd "$out/src" && go mod download -json "github.com/coredns/coredns@${COREDNS_VERSION}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
cp -r "$dir" "$out/src/coredns"; chmod -R u+w "$out/src/coredns"
(cd "$out/src/coredns" && go build -trimpath -ldflags "-s -w" -o "$bin/coredns" .) >&2

rm -rf "$out/src"
touch "$bin/.complete"
log "done in $(( $(date +%s) - start ))s"
echo "$bin"
