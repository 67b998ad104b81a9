#!/usr/bin/env bash
# Builds Kueue (sigs.k8s.io/kueue) from the Go module proxy and caches, by version, its binary
# with the manifests the local control plane needs from the module: the CRDs and the webhook
# configurations. Prints the cache directory as the last line of stdout; a complete entry is reused.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator"
out="$cache_root/kueue/kueue-${KUEUE_VERSION}"

if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi

log() { echo "[build-kueue $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s)
rm -rf "$out"; mkdir -p "$out/bin" "$out/crd"
log "kueue ${KUEUE_VERSION}: downloading and compiling"
GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kueue/cmd/kueue@${KUEUE_VERSION}" >&2
src="$(go env GOMODCACHE)/sigs.k8s.io/kueue@${KUEUE_VERSION}"
cp "$src"/config/components/crd/bases/*.yaml "$out/crd/"
cp "$src/config/components/webhook/manifests.yaml" "$out/webhooks.yaml"
chmod -R u+w "$out"
touch "$out/.complete"
log "done in $(( $(date +%s) - start ))s"
echo "$out"
