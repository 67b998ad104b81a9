#!/usr/bin/env bash
# Writes tests/images/hot-functions.txt: the functions of the operator that a whole job's life
# runs (start-up, create, Running, Succeeded, cleanPodPolicy, collection delete, finalizer
# release), in the order they first ran, as v0 symbol names. tests/images/operator-binary.sh
# links them first and together (see there for why).
#
# Usage: benches/hot-functions.sh CLUSTER_DIR [JOBS]   (CLUSTER_DIR from tests/cluster/up.sh)
# Runs the scale bench (benches/scale.rs) with JOBS (20) jobs against the operator under
# valgrind's callgrind, which records every function that ran. Needs valgrind.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cluster="$1" jobs="${2:-20}"
cd "$root"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The same build as operator-binary.sh's, so the names are the ones it links.
binary="$(tests/images/operator-binary.sh | tail -n1)"
cat > "$work/operator" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --demangle=no --compress-strings=no --compress-pos=no \
  --dump-every-bb=1000000 --callgrind-out-file="$work/callgrind.out" \
  --log-file="$work/valgrind.log" "$binary" "\$@"
EOF
chmod +x "$work/operator"
bench="$(benches/scale-bench.sh)"
"$bench" --bench --jobs "$jobs" --cluster "$cluster" --operator "$work/operator" >&2
# The bench ends the operator (valgrind) with SIGKILL, so callgrind writes no dump at exit: it
# dumped every million basic blocks instead (callgrind.out.1, .2, ...), and the union of the
# dumps is every function that ran, up to the last stretch.
python3 - "$work" "$root/tests/images/hot-functions.txt" <<'EOF'
import pathlib, re, sys
work, dst = pathlib.Path(sys.argv[1]), sys.argv[2]
dumps = sorted(work.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
seen, order = set(), []
for dump in dumps:
    # "fn=" and "cfn=" lines name the functions that ran, in the order callgrind met them.
    for line in dump.open(errors="replace"):
        m = re.match(r"^c?fn=(?:\(\d+\) )?(\S+)", line)
        if m and not m.group(1).startswith("0x") and m.group(1) not in seen:
            seen.add(m.group(1))
            order.append(m.group(1))
if not order:
    sys.exit(f"no callgrind dump in {work}")
open(dst, "w").write("".join(f"{name}\n" for name in order))
print(f"{len(order)} functions from {len(dumps)} dumps -> {dst}", file=sys.stderr)
EOF
