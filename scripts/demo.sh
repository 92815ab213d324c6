#!/usr/bin/env bash
# The demo: the main job on a bundled example task (Banking77, 77-class intent
# classification, from ../shared/data): audit the data, train the classic arm
# (the smallest model that might already do the job), and evaluate it on test
# with confidence intervals. Outputs go to runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
TW=build/tunewise
TASK=${1:-examples/banking77.yaml}
OUT=runs/demo
mkdir -p "$OUT"
echo "== tunewise audit $TASK"
$TW audit "$TASK"
echo
echo "== tunewise classic train --task $TASK -o $OUT/classic.twc"
$TW classic train --task "$TASK" -o "$OUT/classic.twc"
echo
echo "== tunewise classic eval --task $TASK -m $OUT/classic.twc -o $OUT/predictions.jsonl"
$TW classic eval --task "$TASK" -m "$OUT/classic.twc" -o "$OUT/predictions.jsonl"
echo
echo "== tunewise score $OUT/predictions.jsonl --task $TASK"
$TW score "$OUT/predictions.jsonl" --task "$TASK"
