#!/usr/bin/env bash
# Where the operator's CPU goes over a whole job's life: the scale bench (benches/scale.rs) with
# the operator under `perf record`, then
#   - OUT/stacks.folded: every sampled stack, folded (one line per stack, as flame graph tools
#     take them: `inferno-flamegraph OUT/stacks.folded > flame.svg`; written as flame.svg too when
#     inferno-flamegraph is installed);
#   - the share of samples by crate of the innermost function of ours or a dependency, printed.
#
# Usage: benches/profile.sh CLUSTER_DIR [JOBS] [OUT]   (JOBS 300, OUT target/profile)
# Needs perf. SCALE_BENCH: a scale bench binary already built.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="$1" jobs="${2:-300}" out="${3:-$root/target/profile}"
cd "$root"
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
mkdir -p "$out"
binary="$(tests/images/operator-binary.sh | tail -n1)"
bench="$(benches/scale-bench.sh)"
# perf attaches to the operator once the bench has started it (a perf the bench started would
# be ended with SIGKILL, before it writes its file), and ends with it.
"$bench" --bench --jobs "$jobs" --cluster "$cluster" --operator "$binary" >&2 &
bench_pid=$!
pid=""
while [[ -z "$pid" ]] && kill -0 "$bench_pid" 2>/dev/null; do
  pid="$(pgrep -f "^$binary run --namespace bench-" | head -n1 || true)"
  sleep 0.05
done
[[ -n "$pid" ]] || { echo "the bench never started the operator" >&2; exit 1; }
perf record -F 997 -g --call-graph dwarf,16384 -o "$out/perf.data" -p "$pid" 2>"$out/perf.log" &
wait "$bench_pid"
wait
# c++filt (binutils) reads the v0 symbol names the image's build uses.
perf script -i "$out/perf.data" -F comm,tid,ip,sym 2>/dev/null | c++filt \
  | python3 "$root/benches/fold-stacks.py" "$out/stacks.folded"
if command -v inferno-flamegraph >/dev/null; then
  inferno-flamegraph --title "tfjob-operator, $jobs jobs through their life" "$out/stacks.folded" > "$out/flame.svg"
  echo "wrote $out/flame.svg" >&2
fi
