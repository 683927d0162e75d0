#!/usr/bin/env bash
# What a refusal costs on an idle machine: a root whose only place (--admission 1, no queue)
# is held by a search waiting on a shard that never answers, asked N times in a row with curl;
# reports the median and 99th percentile of curl's own timing of each request (connect to last
# byte), and checks that every answer was the 503 with Retry-After.
#
#   bench/refusal-cost.sh
#   N=2000 bench/refusal-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-500}
cargo build --release -q -p fanout-loadtest
# A shard that accepts and never answers.
python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' > /tmp/fanout-silent.port &
silent=$!
trap 'kill $silent $root 2>/dev/null || true' EXIT
sleep 0.5
port=$(head -1 /tmp/fanout-silent.port)
target/release/fanout-cluster root --listen 127.0.0.1:0 --shard "0=127.0.0.1:$port" \
    --admission 1 --admission-queue 0 > /tmp/fanout-root.out 2>/dev/null &
root=$!
sleep 0.5
addr=$(head -1 /tmp/fanout-root.out | awk '{print $3}')
curl -s -o /dev/null "http://$addr/v1/search?q=held&timeout_ms=30000" &
sleep 0.3
for _ in $(seq "$N"); do
    curl -s -o /dev/null -D - -w 'time %{time_total}\n' "http://$addr/v1/search?q=dog"
done > /tmp/fanout-refusals.txt
echo "503s: $(grep -c '^HTTP/1.1 503' /tmp/fanout-refusals.txt) of $N, with Retry-After: $(grep -ci '^retry-after: 1' /tmp/fanout-refusals.txt)"
grep '^time' /tmp/fanout-refusals.txt | awk '{print $2 * 1e6}' | sort -n | awk '
    { v[NR] = $1 }
    END { printf "refusal, curl time_total: p50 %d us, p99 %d us, max %d us (%d requests)\n",
          v[int(NR * 0.5)], v[int(NR * 0.99)], v[NR], NR }'
