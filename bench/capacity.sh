#!/usr/bin/env bash
# Capacity and low-load latency on the benchmark corpus: all three corpora of ../shared/data
# (WordNet, GCIDE, git commit messages; about 305k documents) in a local cluster of 2 shards x 2
# replicas, against one in-process tantivy index of the same documents, in the same run on the
# same cores. For each: the highest Poisson rate whose p99 stays within 50 ms (doubling, then
# bisecting to within 10%), p50 at a low rate (10/s) and p50/p99 at half the highest rate, with
# the CPU each part spends per request. Then, on a fresh cluster, where the time of a low-load
# search goes, hop by hop, from the times the root and the leaves report (debug=true). Last, the
# machine's floor: a bare TCP round trip between two threads, back to back and at low load.
#
#   bench/capacity.sh
#   STEP=30s P99=50ms bench/capacity.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
QUERIES=${QUERIES:-$DATA/queries/sbg-queries.jsonl}
STEP=${STEP:-15s}
P99=${P99:-50ms}
OUT=${OUT:-bench/results}

cargo build --release -q -p fanout-loadtest
# The benchmark corpus: the three files read one after another.
corpus=(--corpus "$DATA/corpora/wordnet.ndjson.gz" --corpus "$DATA/corpora/gcide.ndjson.gz"
    --corpus "$DATA/corpora/git-commits.ndjson.gz")
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); WordNet + GCIDE + git commits; p99 target $P99; $STEP per step"
target/release/fanout-loadtest run --spawn-cluster "${corpus[@]}" --queries "$QUERIES" --shuffle-seed 1 \
    --rate 100 --sweep-p99 "$P99" --warmup 3s --duration "$STEP" --direct --quiet --json "$OUT/capacity.json"
echo "# where the time goes at low load (10/s, debug=true)"
target/release/fanout-loadtest run --spawn-cluster "${corpus[@]}" --queries "$QUERIES" --shuffle-seed 1 \
    --rate 10 --warmup 3s --duration 30s --scenario cluster:debug=true --quiet --json "$OUT/capacity-breakdown.json"
echo "# the machine's floor"
target/release/fanout-loadtest floor
