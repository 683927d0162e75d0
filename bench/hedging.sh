#!/usr/bin/env bash
# Hedged requests against a straggler: a local cluster (2 shards x 2 replicas, separate
# processes) on the demo corpus under Poisson load from the sbg query log. One run without
# faults; then one run in which leaf-0-0 is paused (SIGSTOP) for 200 ms every 2 s, with hedged
# and unhedged requests (hedge=false) interleaved request by request, so both meet the same
# pauses. Reports p50/p99/p99.9 and the extra leaf requests hedging cost.
#
#   bench/hedging.sh                         # 200 requests/s, 100 s measured per run
#   RATE=300 DURATION=60s bench/hedging.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-200}
DURATION=${DURATION:-100s}
QUERIES=${QUERIES:-../shared/data/queries/sbg-queries.jsonl}
OUT=${OUT:-bench/results}

cargo build --release -q -p fanout-loadtest
run() {
    target/release/fanout-loadtest run --spawn-cluster --queries "$QUERIES" --shuffle-seed 1 \
        --rate "$RATE" --warmup 5s --duration "$DURATION" --quiet "$@"
}
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); $RATE requests/s, $DURATION measured per run"
echo "## no fault"
run --scenario no-fault --json "$OUT/hedging-nofault.json"
echo "## leaf-0-0 paused 200 ms every 2 s"
run --scenario hedged --scenario unhedged:hedge=false --pause leaf-0-0:2s:200ms --json "$OUT/hedging-pause.json"
