#!/usr/bin/env bash
# `make bench-compare`: the scale bench (benches/scale.rs) against this operator and Kubeflow's Go
# training-operator v1.8.1 — with its client rate limit lifted and, unless BENCH_STOCK=0, as
# released — on one local control plane, interleaved run by run, then one side-by-side table
# (median and range of the runs) and target/bench-compare/summary.json.
#
# Environment: BENCH_JOBS (500), BENCH_RUNS (2), BENCH_STOCK (1), BENCH_CONCURRENCY (32, both
# operators: our default),
# BENCH_BASELINE (a path: another build of ours, e.g. of the commit before a change, run as
# "baseline" in every round beside the others), BENCH_BASELINE_FLAGS (more scale-bench flags for
# the baseline, e.g. `--finalizer-policy false` to run the same build without the finalizer policy),
# BENCH_GO_FOREGROUND=1 (also the lifted Go operator with its jobs deleted in the foreground,
# `--foreground-delete`: the garbage collector then keeps each TFJob until its pods and services
# are gone, the guarantee our finalizer gives).
# The Go operator runs outside a pod: its webhook certificate rotator needs namespace kubeflow
# with a Secret training-operator-webhook-cert (it fills an existing one), and it waits for the
# certificates in /tmp/k8s-webhook-server/serving-certs (a path it hard-codes; in a pod the Secret
# is mounted there). No webhook configuration is installed: the API server never calls it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
jobs="${BENCH_JOBS:-500}" runs="${BENCH_RUNS:-2}" stock="${BENCH_STOCK:-1}"
concurrency="${BENCH_CONCURRENCY:-32}"
log() { echo "[bench-compare $(date +%H:%M:%S)] $*" >&2; }

# Ours as the Helm chart's image ships it (tests/images/build.sh).
operator="$(tests/images/operator-binary.sh | tail -n1)"
# The bench and our binary as built now: later edits or rebuilds do not change a run under way.
bench="$(benches/scale-bench.sh)"
gobin="$(benches/go-operator/build.sh | tail -n1)"
dir="$(tests/cluster/up.sh "${TFJOB_BENCH_CLUSTER:-/tmp/tfjob-operator-bench-compare}" | tail -n1)"
kc() { "$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }

# --- the Go operator's webhook certificates ------------------------------------------------------
certs=/tmp/tfjob-bench-go
serving=/tmp/k8s-webhook-server/serving-certs
mkdir -p "$certs" "$serving"
kc create namespace kubeflow --dry-run=client -o yaml | kc apply -f - >/dev/null
kc -n kubeflow create secret generic training-operator-webhook-cert --dry-run=client -o yaml | kc apply -f - >/dev/null
secret_key() { kc -n kubeflow get secret training-operator-webhook-cert -o "jsonpath={.data.${1//./\\.}}"; }
if [[ -z "$(secret_key tls.crt)" ]]; then
  log "letting the Go operator's certificate rotator fill its Secret"
  KUBECONFIG="$dir/kubeconfig" "$gobin/training-operator-stock" --enable-scheme=tfjob \
    --namespace kubeflow --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0 \
    --webhook-server-port "$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')" \
    > "$certs/rotator.log" 2>&1 &
  rotator=$!
  for _ in $(seq 1 300); do [[ -n "$(secret_key tls.crt)" ]] && break; sleep 0.2; done
  kill "$rotator" 2>/dev/null; wait "$rotator" 2>/dev/null || true
  [[ -n "$(secret_key tls.crt)" ]] || { log "the rotator did not fill the Secret; see $certs/rotator.log"; exit 1; }
fi
for key in ca.crt tls.crt tls.key; do secret_key "$key" | base64 -d > "$serving/$key"; done

# --- interleaved runs ----------------------------------------------------------------------------
out="$root/target/bench-compare"; rm -rf "$out"; mkdir -p "$out"
cp "$operator" "$out/tfjob-operator"
operators=(ours)
[[ -n "${BENCH_BASELINE:-}" ]] && operators+=(baseline)
operators+=(go-lifted)
[[ "${BENCH_GO_FOREGROUND:-0}" == 1 ]] && operators+=(go-foreground)
[[ "$stock" == 1 ]] && operators+=(go-stock)
for run in $(seq 1 "$runs"); do
  for op in "${operators[@]}"; do
    log "run $run/$runs: $op, $jobs jobs"
    case "$op" in
      ours) flags=(--operator "$out/tfjob-operator") ;;
      # shellcheck disable=SC2206
      baseline) flags=(--operator "$BENCH_BASELINE" ${BENCH_BASELINE_FLAGS:-}) ;;
      go-lifted) flags=(--go --operator "$gobin/training-operator-lifted") ;;
      go-foreground) flags=(--go --operator "$gobin/training-operator-lifted" --foreground-delete) ;;
      go-stock) flags=(--go --operator "$gobin/training-operator-stock") ;;
    esac
    "$bench" --bench --jobs "$jobs" --cluster "$dir" --concurrency "$concurrency" \
      "${flags[@]}" --json "$out/$op-$run.json" > "$out/$op-$run.txt"
  done
done
python3 "$root/benches/go-operator/summarize.py" "$out" "${operators[@]}"
