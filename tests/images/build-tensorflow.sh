#!/usr/bin/env bash
# Builds the TensorFlow image the real node runs the examples with, as an OCI archive
# (mkimage.py; no container engine, no registry):
#   tfjob-operator.local/tensorflow-examples:2.21.0
# a minimal Debian bookworm root filesystem (debootstrap, minbase, with Debian's python3), the
# pinned tensorflow-cpu wheels of tensorflow/requirements.txt installed from PyPI, and the
# training scripts of examples/tensorflow/ at /opt/tfjob-examples (the working directory).
#
# Cached by content under ~/.cache/tfjob-operator/tensorflow/ (this script, the requirements,
# mkimage.py and the scripts): only the image archive is kept (1.4 GB); the root filesystem it was
# packed from is deleted, so a change to any of those builds again (about 1.5 minutes).
# Prints the image's directory as the last line of stdout. TFJOB_DEBIAN_MIRROR overrides the
# Debian mirror (default: the one apt uses here, deb.debian.org).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
log() { echo "[tensorflow-image $(date +%H:%M:%S)] $*" >&2; }
command -v debootstrap >/dev/null || { log "missing debootstrap: apt-get install debootstrap"; exit 1; }

name=tfjob-operator.local/tensorflow-examples:2.21.0
mirror="${TFJOB_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tfjob-operator/tensorflow"
mkdir -p "$cache"
start=$SECONDS

scripts=("$root"/examples/tensorflow/*.py)
key="$(cat "$here/build-tensorflow.sh" "$here/tensorflow/requirements.txt" "$here/mkimage.py" "${scripts[@]}" \
  | sha256sum | cut -c1-16)"
out="$cache/image-$key"
if [[ ! -f "$out/.complete" ]]; then
  rm -rf "$cache"/image-* "$cache"/rootfs-*   # superseded images, and a root left by a crash
  rootfs="$cache/rootfs-$key"
  mkdir -p "$out"
  log "debootstrap bookworm (minbase, python3) from $mirror"
  # Its mounts (/proc, /sys inside the new root) stay in a private mount namespace.
  unshare -m --propagation private \
    debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$mirror" >"$cache.debootstrap.log" 2>&1 \
    || { tail -n 20 "$cache.debootstrap.log" >&2; exit 1; }
  log "pip install tensorflow-cpu (pinned, hashes checked) into /usr/local/lib/python3.11/dist-packages"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes \
    -r "$here/tensorflow/requirements.txt" \
    --target "$rootfs/usr/local/lib/python3.11/dist-packages" \
    --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: \
    --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform any >&2
  # What a training container never reads: apt's lists and downloads, documentation, locales,
  # TensorFlow's C++ headers, and the device nodes debootstrap made (the runtime makes /dev).
  rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/{doc,man,info,locale} \
    "$rootfs"/usr/local/lib/python3.11/dist-packages/tensorflow/include "$rootfs"/usr/local/lib/python3.11/dist-packages/bin \
    "$rootfs"/var/log/* "$rootfs"/dev/*
  log "root filesystem: $(du -sh "$rootfs" | cut -f1) in $((SECONDS - start)) s; packing $name"
  files=()
  for s in "${scripts[@]}"; do files+=(--file "$s=/opt/tfjob-examples/$(basename "$s"):0644"); done
  python3 "$here/mkimage.py" "$out/tensorflow.tar" "$name" --dir "$rootfs=/" "${files[@]}" \
    --env PYTHONUNBUFFERED=1 --env TF_CPP_MIN_LOG_LEVEL=1 --workdir /opt/tfjob-examples \
    --cmd '["python3"]' >/dev/null
  rm -rf "$rootfs"
  touch "$out/.complete"
  log "built $name: $(du -h "$out/tensorflow.tar" | cut -f1) in $((SECONDS - start)) s"
fi
echo "$out"
