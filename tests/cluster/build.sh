#!/usr/bin/env bash
# Builds the local control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kwok, helm) from upstream Go modules and caches the binaries by version.
#
# Prints the bin directory as the last line of stdout. Safe to run repeatedly: a complete cache
# entry is reused as is. Needs Go >= 1.26 and the Go module proxy; nothing else is downloaded.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=kube-ldflags.sh
source "$here/kube-ldflags.sh"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator"
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
out="$cache_root/cluster/$key"
bin="$out/bin"

if [[ -f "$bin/.complete" ]]; then
  echo "$bin"
  exit 0
fi

log() { echo "[build $(date +%H:%M:%S)] $*" >&2; }
mkdir -p "$bin" "$out/src"
start=$(date +%s)

# --- Kubernetes: a wrapper module whose replace lines are derived from upstream's own go.mod -----
build_kube() {
  local dir="$out/src/kube" minor staging gomod
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  staging="v0.${K8S_VERSION#v1.}"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  cat > go.mod <<MOD
module tfjob-operator.test/kubebins

go 1.26.0

godebug default=go1.26
MOD
  go mod edit -require="k8s.io/kubernetes@${K8S_VERSION}"
  gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  # Every staging module is required at v0.0.0 upstream; point each at its published tag.
  local m n=0
  for m in $(awk '$2=="v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$gomod" | sort -u); do
    go mod edit -replace="$m=$m@$staging"; n=$((n+1))
  done
  log "kube: $n staging modules replaced at $staging"
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go mod edit -tool="k8s.io/kubernetes/cmd/$t"
  done
  go mod tidy >&2
  log "kube: compiling (the slow part)"
  GOBIN="$bin" go install -trimpath -ldflags "$(kube_ldflags "$minor")" tool >&2
}

# --- etcd: its server module has replace lines too, so it also needs a wrapper -------------------
build_etcd() {
  local dir="$out/src/etcd"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  printf 'module tfjob-operator.test/etcdbin\n\ngo 1.26.0\n' > go.mod
  go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}" -tool=go.etcd.io/etcd/server/v3
  go mod tidy >&2
  GOBIN="$bin" go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3 >&2
}

build_tools() {
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" >&2
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
}

[[ -x "$bin/etcd" ]] || { log "etcd ${ETCD_VERSION}"; build_etcd; }
[[ -x "$bin/kwok" && -x "$bin/helm" ]] || { log "kwok ${KWOK_VERSION}, helm ${HELM_VERSION}"; build_tools; }
[[ -x "$bin/kube-apiserver" && -x "$bin/kubectl" && -x "$bin/kube-scheduler" && -x "$bin/kube-controller-manager" ]] \
  || { log "kubernetes ${K8S_VERSION}"; build_kube; }

touch "$bin/.complete"
log "done in $(( $(date +%s) - start ))s: $(du -sh "$bin" | cut -f1) of binaries"
echo "$bin"
