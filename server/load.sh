#!/usr/bin/env bash
# The load test of server/docs/server.md: backdex-server with 1,000,000
# synthetic records on loopback, wrk against a count and a 100-row page of
# the big tenant, without and then with a writer posting a batch of 100
# upserts every 100 ms. Needs wrk (Debian: apt-get install wrk) and curl.
#
#   bash server/load.sh [RECORDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."

records="${1:-1000000}"
seconds="${2:-20}"
addr=127.0.0.1:8080
big=fec6e4670b734b39afd85e31bf00c501   # the largest project of `backdex gen` (seed 42)
scratch="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT

cargo build --release -p backdex-server -p backdex --bin backdex-server --bin backdex
./target/release/backdex-server --records "$records" --listen "$addr" \
  --tokens server/tokens.json 2>"$scratch/server.log" &
until curl -sf "http://$addr/healthz" >/dev/null; do sleep 1; done
echo "server: $(curl -s "http://$addr/healthz")"

# Two versions of the first 100 records (the server's own, same seed),
# differing in status, posted in turn.
./target/release/backdex gen --records 100 --seed 42 --slim >"$scratch/first.jsonl"
python3 - "$scratch" <<'EOF'
import json, sys
scratch = sys.argv[1]
records = [json.loads(line) for line in open(f"{scratch}/first.jsonl")]
for name, status in (("a", "error"), ("b", "available")):
    for r in records:
        r["status"] = status
    json.dump(records, open(f"{scratch}/batch-{name}.json", "w"))
EOF

count="http://$addr/v1/$big/checkpoint_items/count?status=available"
page="http://$addr/v1/$big/checkpoint_items?limit=100"
run() {
  for url in "$count" "$page"; do
    echo "== $1: $url"
    wrk -t1 -c8 -d"${seconds}s" --latency -H 'X-Auth-Token: reader-big' "$url" |
      grep -E 'Requests/sec|Latency|50%|90%|99%|requests in|Non-2xx'
  done
}

run "no writer"

(
  while true; do
    for name in a b; do
      curl -sf -X POST -H 'X-Auth-Token: worker' -H 'Content-Type: application/json' \
        --data-binary "@$scratch/batch-$name.json" "http://$addr/internal/records:upsert" \
        >>"$scratch/writes" || echo "a write failed" >&2
      echo >>"$scratch/writes"
      sleep 0.1
    done
  done
) &
writer=$!
run "a writer posting 100 upserts every 100 ms"
kill "$writer"
echo "writer: $(grep -c '"count":100' "$scratch/writes") batches of 100 upserts applied"
echo "server log:"; cat "$scratch/server.log"
