#!/usr/bin/env bash
# The long fuzz run before a release: a 2x2 cluster of real processes on the demo corpus gets
# generated hostile searches (deep nesting, NOT and boost chains, thousands of terms,
# wildcards, refused forms, random grammar, extreme parameters; a tenth straight to a leaf's
# gRPC port with forged statistics) from 4 workers for DURATION. It fails on any process
# exit, any answer a healthy cluster may not give (a 5xx other than a missed deadline, a
# non-JSON error, a shard lost to a broken replica), or a leaf over LEAF_RSS_MIB of memory.
#
#   bench/fuzz.sh [DURATION] [LEAF_RSS_MIB]        # default 10m, 512
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p fanout-loadtest
echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(uname -m)"
target/release/fanout-loadtest fuzz --duration "${1:-10m}" --leaf-rss-bound-mib "${2:-512}"
