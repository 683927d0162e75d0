#!/usr/bin/env bash
# Overload and long stalls on the benchmark corpus (WordNet + GCIDE + git commit messages, about
# 305k documents) in a local cluster of 2 shards x 2 replicas plus a root, everything on this
# machine's cores, load generator included. The harness finds the capacity C (closed loop, 16
# clients), then offers 0.5C, 1.5C and 2C open loop (Poisson) for STEP each, every search with a
# 2 s deadline, and after each overload step 10 s at 0.5C to see how long the p99 takes to
# come back. Then, at 0.5C: one replica paused (SIGSTOP) for 30 s, and both replicas of a shard
# paused for 10 s.
#
#   bench/overload.sh
#   STEP=20s bench/overload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
QUERIES=${QUERIES:-$DATA/queries/sbg-queries.jsonl}
STEP=${STEP:-60s}
OUT=${OUT:-bench/results}

cargo build --release -q -p fanout-loadtest
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m); WordNet + GCIDE + git commits; $STEP per step"
target/release/fanout-loadtest overload \
    --corpus "$DATA/corpora/wordnet.ndjson.gz" --corpus "$DATA/corpora/gcide.ndjson.gz" \
    --corpus "$DATA/corpora/git-commits.ndjson.gz" --queries "$QUERIES" \
    --step "$STEP" "$@" --json "$OUT/overload.json"
