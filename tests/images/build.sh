#!/usr/bin/env bash
# Builds the images the real node runs, as OCI archives (tests/images/mkimage.py; no container
# engine, no registry), cached by content under ~/.cache/tfjob-operator/images/<hash>/:
#   - tfjob-test.local/pause:1       the pod sandbox (busybox, sleeping until stopped);
#   - tfjob-test.local/busybox:1     the tests' small image (Debian's busybox-static);
#   - tfjob-operator.local/tfjob-operator:dev   the operator, the Dockerfile's layout: a static
#     release binary at /usr/local/bin/tfjob-operator, user 65532, nothing else.
# The same archives are what `kind load image-archive` loads (tests/e2e/kind.sh).
# Prints the directory as the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
log() { echo "[images $(date +%H:%M:%S)] $*" >&2; }
command -v busybox >/dev/null && [[ -x /bin/busybox ]] || { log "missing /bin/busybox: apt-get install busybox-static"; exit 1; }

# The operator as a static binary (glibc, crt-static): it runs on an image with nothing else.
log "operator: static release build"
operator="$("$here/operator-binary.sh" | tail -n1)"

key="$(cat "$here/mkimage.py" "$here/build.sh" /bin/busybox "$operator" | sha256sum | cut -c1-16)"
out="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator/images/$key"
if [[ -f "$out/.complete" ]]; then
  echo "$out"
  exit 0
fi
rm -rf "$out"; mkdir -p "$out"
mk() { python3 "$here/mkimage.py" "$@" >/dev/null; }
mk "$out/pause.tar" tfjob-test.local/pause:1 --busybox \
  --entrypoint '["/bin/sh", "-c", "trap \"exit 0\" TERM INT; while :; do sleep 3600 & wait $!; done"]'
mk "$out/busybox.tar" tfjob-test.local/busybox:1 --busybox --cmd '["sh"]'
mk "$out/operator.tar" tfjob-operator.local/tfjob-operator:dev \
  --file "$operator=/usr/local/bin/tfjob-operator:0755" --user 65532:65532 \
  --entrypoint '["/usr/local/bin/tfjob-operator"]' --cmd '["run"]'
touch "$out/.complete"
log "built: $(du -sh "$out" | cut -f1) in $out"
echo "$out"
