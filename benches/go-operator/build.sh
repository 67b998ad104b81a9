#!/usr/bin/env bash
# Builds Kubeflow's Go training-operator (the version the Go module proxy serves, v1.8.1) for
# the side-by-side benchmark, twice: as released ("stock": controller-runtime's client limited to
# 20 requests/s, burst 30, with no flag to change it) and with that client-side limit lifted
# ("lifted": QPS -1 on its rest config, a one-line change made here to a copy of the module).
# Cached by version under ~/.cache/tfjob-operator/go-operator/; prints the bin directory last.
set -euo pipefail
version="${GO_OPERATOR_VERSION:-v1.8.1}"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator"
out="$cache_root/go-operator/training-operator-$version"
if [[ -f "$out/bin/.complete" ]]; then
  echo "$out/bin"
  exit 0
fi
log() { echo "[go-operator $(date +%H:%M:%S)] $*" >&2; }
start=$(date +%s)
src="$(go mod download -json "github.com/kubeflow/training-operator@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
rm -rf "$out"; mkdir -p "$out/bin"
for variant in stock lifted; do
  work="$out/src-$variant"
  cp -r "$src" "$work"; chmod -R u+w "$work"
  if [[ "$variant" == lifted ]]; then
    main="$work/cmd/training-operator.v1/main.go"
    grep -q 'ctrl.NewManager(ctrl.GetConfigOrDie(),' "$main" || { log "main.go changed: cannot lift the rate limit"; exit 1; }
    sed -i 's/ctrl.NewManager(ctrl.GetConfigOrDie(),/ctrl.NewManager(withoutClientRateLimit(ctrl.GetConfigOrDie()),/' "$main"
    cat >> "$main" <<'GO'

// withoutClientRateLimit disables client-go's client-side rate limit (added for tfjob-operator's
// side-by-side benchmark; not part of the release).
func withoutClientRateLimit(cfg *rest.Config) *rest.Config {
	cfg.QPS = -1
	return cfg
}
GO
    sed -i '0,/^import (/s//import (\n\t"k8s.io\/client-go\/rest"/' "$main"
  fi
  log "building $variant"
  (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$out/bin/training-operator-$variant" ./cmd/training-operator.v1) >&2
  rm -rf "$work"
done
touch "$out/bin/.complete"
log "done in $(( $(date +%s) - start ))s"
echo "$out/bin"
