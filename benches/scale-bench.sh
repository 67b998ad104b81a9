#!/usr/bin/env bash
# Prints the path of the scale bench's binary (benches/scale.rs), built now, so that later edits
# or rebuilds do not change a run under way; or $SCALE_BENCH, a binary already built (it only
# drives the API server).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -n "${SCALE_BENCH:-}" ]]; then
  echo "$SCALE_BENCH"
  exit 0
fi
cargo bench --locked --bench scale --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "scale":
        print(m["executable"])'
