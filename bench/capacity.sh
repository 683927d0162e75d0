#!/usr/bin/env bash
# Capacity and low-load latency on the benchmark corpus: all three corpora of ../shared/data
# (WordNet, GCIDE, git commit messages; about 305k documents) in a local cluster of 2 shards x 2
# replicas, against one in-process tantivy index of the same documents, in the same run on the
# same cores. For each: the highest Poisson rate whose p99 stays within 50 ms (doubling, then
# bisecting to within 10%), and p50/p99 at half that rate.
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
corpus=$(mktemp --suffix=.ndjson.gz)
trap 'rm -f "$corpus"' EXIT
# Concatenated gzip members are one valid gzip stream.
cat "$DATA/corpora/wordnet.ndjson.gz" "$DATA/corpora/gcide.ndjson.gz" "$DATA/corpora/git-commits.ndjson.gz" >"$corpus"
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); WordNet + GCIDE + git commits; p99 target $P99; $STEP per step"
target/release/fanout-loadtest run --spawn-cluster --corpus "$corpus" --queries "$QUERIES" --shuffle-seed 1 \
    --rate 100 --sweep-p99 "$P99" --warmup 3s --duration "$STEP" --direct --quiet --json "$OUT/capacity.json"
