#!/usr/bin/env bash
# Bulk indexing throughput on the benchmark corpus: all three corpora of ../shared/data
# (WordNet, GCIDE, git commit messages; about 305k documents) through the indexer's code into a
# local cluster of 2 shards x 2 replicas (four leaf processes, default settings: write-ahead
# log fsynced per batch, refresh every second), against tantivy alone indexing the same
# documents into one on-disk index in this process with one thread per CPU. Runs alternate,
# RUNS of each, in fresh directories; the figure is the ratio of the medians.
#
#   bench/indexing.sh
#   RUNS=7 bench/indexing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
RUNS=${RUNS:-5}
OUT=${OUT:-bench/results}

cargo build --release -q -p fanout-loadtest
# The benchmark corpus: the three files read one after another.
corpus=(--corpus "$DATA/corpora/wordnet.ndjson.gz" --corpus "$DATA/corpora/gcide.ndjson.gz"
    --corpus "$DATA/corpora/git-commits.ndjson.gz")
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); WordNet + GCIDE + git commits; $RUNS runs each"
target/release/fanout-loadtest index-bench "${corpus[@]}" --runs "$RUNS" --json "$OUT/indexing.json" "$@"
