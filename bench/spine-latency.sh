#!/usr/bin/env bash
# Query latency of a local cluster (2 shards x 2 replicas as separate processes, plus a root)
# next to one in-process tantivy index holding the same corpus, over the same queries, measured
# in one run on one machine. Closed loop, one query at a time, 10 hits per query. A second
# cluster scenario, interleaved with the first, asks for debug=true: its answers say where the
# time goes, hop by hop.
#
#   bench/spine-latency.sh                    # demo corpus, sbg query log, 20 s each
#   CORPUS=x.ndjson.gz QUERIES=q.jsonl DURATION=60s bench/spine-latency.sh
#
# The query log lives beside the checkout (../shared/data); point QUERIES elsewhere if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-demo/wordnet.ndjson.gz}
QUERIES=${QUERIES:-../shared/data/queries/sbg-queries.jsonl}
DURATION=${DURATION:-20s}

cargo build --release -q -p fanout-loadtest
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); corpus $CORPUS; queries $QUERIES; $DURATION each"
target/release/fanout-loadtest run --spawn-cluster --corpus "$CORPUS" --queries "$QUERIES" \
    --concurrency 1 --warmup 2s --duration "$DURATION" --scenario cluster --scenario cluster-debug:debug=true \
    --direct --quiet
