#!/usr/bin/env bash
# Builds the operator binary the image ships: a static release build (glibc, crt-static), with
# the functions listed in hot-functions.txt laid out first and together in .text.
#
# Why the layout: the kernel maps a binary's code into a process 64 KiB around every page it
# touches, and rustc scatters the functions a running operator uses over all 14 MB of .text;
# almost all of it was resident (11-13 MiB, half the operator's peak RSS at 300 jobs). With the
# functions a whole job's life runs (hot-functions.txt, made by benches/hot-functions.sh from a
# run under callgrind) packed together, the rest (render, CEL, YAML, help text) stays on disk.
# v0 symbol names carry no per-function hash, so the list stays valid across code changes; a
# name it no longer matches is skipped (the function is then laid out as rustc put it).
#
# Prints the binary's path as the last line of stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export RUSTFLAGS="-C target-feature=+crt-static -C symbol-mangling-version=v0"
# The list under a name of its content: cargo relinks when the list changes (it does not read
# the files a link argument names).
list="$root/target/hot-functions-$(sha256sum "$here/hot-functions.txt" | cut -c1-16).txt"
mkdir -p "$root/target"
cp "$here/hot-functions.txt" "$list"
# The link arguments go to the binary's own crate only (cargo rustc): the dependencies keep
# one build whatever the list says.
cargo rustc --release --locked --target x86_64-unknown-linux-gnu --bin tfjob-operator -- \
  -C "link-arg=-Wl,--symbol-ordering-file=$list" \
  -C link-arg=-Wl,--no-warn-symbol-ordering >&2
echo "$root/target/x86_64-unknown-linux-gnu/release/tfjob-operator"
