#!/usr/bin/env bash
# What stopping a search midway costs a leaf: its interruptible collection (checks for a
# cancelled caller or a passed deadline every 4,096 documents, driving each segment's scorer
# itself) against tantivy's own collection of the same top 10 and count, on one in-RAM index of
# the demo corpus, alternating round by round.
#
#   bench/collect-cost.sh [CORPUS] [QUERIES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p fanout-loadtest --example collect_cost
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m)"
target/release/examples/collect_cost "$@"
