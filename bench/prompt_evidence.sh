#!/usr/bin/env bash
# prompt_evidence.sh — the prompt arm's evidence table on a real model (issue 6): every
# strategy x output mode that fits each task, k in {0, 4, 8, 16}, on (a seeded slice of)
# dev; then the best configuration per task on test. One command, resumable and cached:
#
#   bench/prompt_evidence.sh [MODEL]            # default: SmolLM2-135M-Instruct Q4_1
#   DEV_LIMIT=200 TEST_LIMIT=0 TASKS="sst2 snips banking77" bench/prompt_evidence.sh
#
# Runs go to $OUT (default bench/out/prompt-evidence, git-ignored); model calls are cached
# in $OUT/cache.db, so a re-run only computes what is new. Prints a Markdown table (one
# row per configuration: dev metric with 95% CI, invalid rate, mean latency, mean tokens
# in/out) and the test rows of the winners; bench/RESULTS.md records its output by hand.
# LIMIT rows are the first rows of the split file (the files are not sorted by label).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${TW_SMOLLM2:-$HOME/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf}}
OUT=${OUT:-bench/out/prompt-evidence}
DEV_LIMIT=${DEV_LIMIT:-200}
TEST_LIMIT=${TEST_LIMIT:-0}
TASKS=${TASKS:-"sst2 snips banking77"}
MODES=${MODES:-"score choice free json"}   # output modes to run (others are skipped)
THREADS=${THREADS:-2}
BIN=${TW_BIN:-build/tunewise}
[ -x "$BIN" ] || make -s "$BIN"
[ -f "$MODEL" ] || { echo "model $MODEL missing: run scripts/get-models.sh" >&2; exit 2; }
mkdir -p "$OUT"

configs() {   # task -> "strategy k output" lines
    case $1 in
    snips) for s in "zero 0" "kshot 4" "kshot 8" "kshot 16" "knn 4" "knn 8" "knn 16"; do
               echo "$s json"; echo "$s free"; done ;;
    *)     for s in "zero 0" "kshot 4" "kshot 8" "kshot 16" "knn 4" "knn 8" "knn 16"; do
               echo "$s score"; echo "$s choice"; echo "$s free"; done
           echo "zero 0 free cot" ;;
    esac
}

row() {   # dir label -> markdown row from metrics.json + predictions.jsonl
    python3 - "$1" "$2" <<'EOF'
import json, sys, statistics
d, label = sys.argv[1], sys.argv[2]
m = json.load(open(f"{d}/metrics.json"))
p = [json.loads(l) for l in open(f"{d}/predictions.jsonl")]
prim = m["primary"]; v = m["metrics"][prim]
ci = v.get("ci") or [float("nan")] * 2
inv = sum(1 for r in p if not r.get("valid", True)) / max(1, len(p))
lat = statistics.mean(r.get("latency_ms", 0) or 0 for r in p)
tin = statistics.mean(r.get("tokens_in", 0) or 0 for r in p)
tout = statistics.mean(r.get("tokens_out", 0) or 0 for r in p)
print(f"| {label} | {len(p)} | {prim} {v['value']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}] | {inv:.3f} | {lat:.0f} | {tin:.0f} / {tout:.1f} |")
EOF
}

echo "| configuration | n | metric [95% CI] | invalid | ms/call | tokens in / out |"
echo "|---|---:|---|---:|---:|---|"
for task in $TASKS; do
    best=""; bestv=-1
    while read -r strat k output extra; do
        case " $MODES " in *" $output "*) ;; *) continue ;; esac
        s=$strat; [ "${extra:-}" = cot ] && s="$strat+cot"
        name="$task-$s-k$k-$output"
        dir="$OUT/dev/$name"
        "$BIN" prompt -q --task "examples/$task.yaml" -m "$MODEL" --strategy "$s" --k "$k" --output "$output" \
            --split dev --limit "$DEV_LIMIT" -o "$dir" --cache "$OUT/cache.db" -j "$THREADS" --json >/dev/null
        row "$dir" "$task dev: $s k=$k $output"
        v=$(python3 -c "import json;m=json.load(open('$dir/metrics.json'));print(m['metrics'][m['primary']]['value'])")
        if python3 -c "import sys; sys.exit(0 if $v > $bestv else 1)"; then best="$s $k $output"; bestv=$v; fi
    done < <(configs "$task")
    read -r s k output <<<"$best"
    dir="$OUT/test/$task-$s-k$k-$output"
    "$BIN" prompt -q --task "examples/$task.yaml" -m "$MODEL" --strategy "$s" --k "$k" --output "$output" \
        --split test --limit "$TEST_LIMIT" -o "$dir" --cache "$OUT/cache.db" -j "$THREADS" --json >/dev/null
    row "$dir" "**$task test: $s k=$k $output** (best on dev)"
done
