#!/usr/bin/env bash
# Builds the two gang schedulers the cluster tests run against, from the Go module proxy, and
# caches them by version with the CRDs and configuration the local control plane needs:
#   - Volcano (volcano.sh/volcano): vc-scheduler and vc-controller-manager;
#   - scheduler-plugins (sigs.k8s.io/scheduler-plugins): kube-scheduler with the Coscheduling
#     plugin, and its PodGroup controller.
# Both modules carry replace lines, so `go install mod@version` refuses them: each is built in a
# writable copy of its module directory. scheduler-plugins' proxy zip keeps only
# vendor/modules.txt, so its vendor/ is removed and it builds with -mod=mod.
# Prints the cache directory as the last line of stdout; a complete entry is reused.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator"
out="$cache_root/gang/volcano-${VOLCANO_VERSION}_scheduler-plugins-${SCHEDULER_PLUGINS_VERSION}"

if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi

log() { echo "[build-gang $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s)
rm -rf "$out"; mkdir -p "$out/bin" "$out/crd/volcano" "$out/crd/scheduler-plugins" "$out/src"

# writable_copy MODULE VERSION: a writable copy of the module's source, printed as a path.
writable_copy() {
  local dir
  dir="$(cd "$out/src" && go mod download -json "$1@$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  cp -r "$dir" "$out/src/${1##*/}"
  chmod -R u+w "$out/src/${1##*/}"
  echo "$out/src/${1##*/}"
}

log "volcano ${VOLCANO_VERSION}: downloading and compiling (the slow part)"
src="$(writable_copy volcano.sh/volcano "$VOLCANO_VERSION")"
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$out/bin/vc-scheduler" ./cmd/scheduler \
  && go build -trimpath -ldflags "-s -w" -o "$out/bin/vc-controller-manager" ./cmd/controller-manager) >&2
cp "$src"/config/crd/volcano/bases/*.yaml "$out/crd/volcano/"

log "scheduler-plugins ${SCHEDULER_PLUGINS_VERSION}: downloading and compiling"
src="$(writable_copy sigs.k8s.io/scheduler-plugins "$SCHEDULER_PLUGINS_VERSION")"
rm -rf "$src/vendor"
(cd "$src" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$out/bin/sp-scheduler" ./cmd/scheduler \
  && go build -mod=mod -trimpath -ldflags "-s -w" -o "$out/bin/sp-controller" ./cmd/controller) >&2
cp "$src/manifests/coscheduling/crd.yaml" "$out/crd/scheduler-plugins/podgroups.yaml"
cp "$src/manifests/capacityscheduling/crd.yaml" "$out/crd/scheduler-plugins/elasticquotas.yaml"

rm -rf "$out/src"
touch "$out/.complete"
log "done in $(( $(date +%s) - start ))s"
echo "$out"
