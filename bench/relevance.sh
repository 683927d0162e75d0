#!/usr/bin/env bash
# Relevance on real judgments: BEIR SciFact (5,183 abstracts, 300 judged test queries) indexed
# into a local 2x2 cluster; every judged query over the HTTP API; nDCG@10 and Recall@100 with
# global and with per-shard statistics. References: BEIR's BM25 (Elasticsearch) 0.665,
# Anserini's Lucene BM25 0.679 nDCG@10, Recall@100 0.925.
#
#   bench/relevance.sh                      # English analyzer, title and text as one field
#   bench/relevance.sh --tokenizer en_stem --fields separate
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${OUT:-bench/results}
cargo build --release -q -p fanout-loadtest
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); BEIR SciFact test split"
target/release/fanout-loadtest relevance --beir "$DATA/scifact" --json "$OUT/relevance.json" "$@"
