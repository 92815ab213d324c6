#!/usr/bin/env bash
# Streaming readers keep memory flat: convert a generated JSONL file of SIZE_MB
# (default 100 and 1000) to chat JSONL and CSV, recording peak RSS (GNU time) and speed.
# Usage: bench/bench_stream.sh [SIZE_MB ...]   (from the repo root, after `make`)
set -euo pipefail
cd "$(dirname "$0")/.."
TW=build/tunewise
sizes=("$@"); [ ${#sizes[@]} -eq 0 ] && sizes=(100 1000)
tmp=$(mktemp -d /tmp/tw-stream-XXXXXX); trap 'rm -rf "$tmp"' EXIT
for mb in "${sizes[@]}"; do
  f="$tmp/in-$mb.jsonl"
  python3 - "$f" "$mb" <<'PY'
import json, sys, random
path, mb = sys.argv[1], int(sys.argv[2])
random.seed(1)
words = "the a card transfer payment account refund top up limit app fee pending why how when my is not".split()
with open(path, "w") as f:
    i, size = 0, 0
    while size < mb * 1_000_000:
        line = json.dumps({"id": f"r{i}", "input": " ".join(random.choices(words, k=random.randint(5, 60))),
                           "output": random.choice(["pos", "neg", "neutral"]), "meta": {"n": i}}) + "\n"
        f.write(line); size += len(line); i += 1
PY
  rows=$(wc -l < "$f")
  for fmt in chat csv; do
    out="$tmp/out.$fmt"
    /usr/bin/time -f "%M %e" -o "$tmp/time" $TW convert "$f" "$out" --to "$fmt" -q
    read -r rss secs < "$tmp/time"
    printf "convert %5d MB (%d rows) -> %-4s peak RSS %6.1f MiB, %6.2f s, %6.1f MB/s\n" \
      "$mb" "$rows" "$fmt" "$(echo "$rss/1024" | bc -l)" "$secs" "$(echo "$mb/$secs" | bc -l)"
    rm -f "$out"
  done
  rm -f "$f"
done
