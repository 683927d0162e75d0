#!/usr/bin/env bash
# What exact global BM25 costs a query. A local 2x2 cluster on the demo corpus, the sbg query
# log run one query at a time in three passes: per-shard statistics (the baseline), global
# statistics cold (each query's first time: a statistics round trip to every shard first), and
# global statistics warm (the same queries again: statistics from the root's cache). Then a
# tenth of the corpus is deleted (every replica commits) and two more passes run: the first
# queries after that commit (judged, and run again where their statistics were a commit old)
# and warm queries on a corpus with deletes. Last, in process, what counting live documents
# only costs a leaf.
#
#   bench/global-stats.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/results}
cargo build --release -q -p fanout-loadtest
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); demo corpus (WordNet), 2x2; sbg queries, one at a time"
target/release/fanout-loadtest stats-bench --queries "$DATA/queries/sbg-queries.jsonl" --json "$OUT/global-stats.json" "$@"
