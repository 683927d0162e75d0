#!/usr/bin/env bash
# Query latency of a local cluster (2 shards x 2 replicas as separate processes, plus a root)
# next to one in-process tantivy index holding the same corpus, over the same queries, measured
# in one run on one machine. Closed loop, one query at a time, 10 hits per query.
#
#   bench/spine-latency.sh                       # demo corpus, sbg query log, 500 queries
#   CORPUS=x.ndjson.gz QUERIES=q.jsonl COUNT=1000 bench/spine-latency.sh
#
# The query log lives beside the checkout (../shared/data); point QUERIES elsewhere if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${CORPUS:-demo/wordnet.ndjson.gz}
QUERIES=${QUERIES:-../shared/data/queries/sbg-queries.jsonl}
COUNT=${COUNT:-500}

cargo build --release -q -p fanout-loadtest
data=$(mktemp -d)
target/release/fanout-cluster --listen 127.0.0.1:0 --data-dir "$data/cluster" --corpus "$CORPUS" \
    >"$data/out" 2>"$data/err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1200); do
    grep -q "fanout is serving on" "$data/out" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$data/err"; exit 1; }
    sleep 0.5
done
url=$(grep -o 'http://[0-9.:]*' "$data/out" | head -1)
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); corpus $CORPUS; $COUNT queries from $QUERIES"
target/release/fanout-loadtest --url "$url" --queries "$QUERIES" --count "$COUNT" --direct-corpus "$CORPUS"
