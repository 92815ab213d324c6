#!/usr/bin/env bash
# Side-by-side speed of tunewise and llama.cpp on the same GGUF files: prefill of P
# tokens (pp) and decode of N tokens (tg), T threads, on the real SmolLM2-135M-Instruct
# Q4_1 and on random-weight SmolLM2-135M-shaped models (F32, F16, Q8_0, Q4_K) that
# `tunewise model init` writes. Prints a markdown table with the ratio tunewise/llama.cpp
# and flags every figure under the floor (0.8x).
#
# It does not build llama.cpp (see bench/llamacpp.md for how it was built: never commit
# it or a recipe that builds it); it only runs a llama-bench that is already built.
#
# Usage (from anywhere; runs in the repo root):
#   bench/bench_vs_llamacpp.sh [MODEL.gguf ...]     # default: the 5 models above
# Environment:
#   LLAMA_CPP_BUILD  directory holding llama-bench (default /work/llama.cpp/build/bin)
#   TW_BENCH_DIR     where the random models are written (default $TW_CACHE/bench,
#                    TW_CACHE defaulting to ~/.cache/tunewise); never inside the repo
#   TW_SHARED        the shared folder holding models/smollm2-135m/tokenizer.json (../shared)
#   THREADS P N REPS threads, prompt tokens, decode tokens, repetitions (2 512 64 3)
#   ROUNDS           run each pair (llama.cpp then tunewise) this many times and keep the
#                    fastest figure of each side (default 1); other processes on a shared
#                    machine only ever slow a run down, so the best round is the fairest
#   OUT              folder for the raw JSON of every run (default build/bench-vs-llamacpp)
#   TW_BIN           a tunewise binary to measure instead of build/tunewise (not rebuilt)
#   SKIP_LLAMA=1 / SKIP_TW=1   measure one side only
#   OPENBLAS_CORETYPE is passed through as it is (tunewise's prefill uses OpenBLAS); the
#   header line says what it was. This workplace's environment sets it to Haswell, which
#   keeps OpenBLAS off its AVX-512 kernels: `env -u OPENBLAS_CORETYPE bench/...` measures
#   what OpenBLAS picks by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_BUILD=${LLAMA_CPP_BUILD:-/work/llama.cpp/build/bin}
TW_CACHE=${TW_CACHE:-$HOME/.cache/tunewise}
TW_BENCH_DIR=${TW_BENCH_DIR:-$TW_CACHE/bench}
TW_SHARED=${TW_SHARED:-../shared}
THREADS=${THREADS:-2}; P=${P:-512}; N=${N:-64}; REPS=${REPS:-3}; ROUNDS=${ROUNDS:-1}
OUT=${OUT:-build/bench-vs-llamacpp}
SKIP_LLAMA=${SKIP_LLAMA:-0}; SKIP_TW=${SKIP_TW:-0}
TW=${TW_BIN:-build/tunewise}
LB="$LLAMA_CPP_BUILD/llama-bench"

command -v python3 >/dev/null || { echo "bench_vs_llamacpp: python3 is needed to read the JSON" >&2; exit 1; }
mkdir -p "$OUT"

[ -n "${TW_BIN:-}" ] || make -s "$TW" >&2
have_tw_bench=1
if [ "$SKIP_TW" = 1 ]; then
  have_tw_bench=0
elif ! "$TW" bench --help >/dev/null 2>&1; then
  echo "bench_vs_llamacpp: $TW has no 'bench' command: tunewise columns skipped" >&2
  have_tw_bench=0
fi
have_llama=1
if [ "$SKIP_LLAMA" = 1 ]; then
  have_llama=0
elif [ ! -x "$LB" ]; then
  echo "bench_vs_llamacpp: no llama-bench at $LB (set LLAMA_CPP_BUILD; bench/llamacpp.md says how it was built): llama.cpp columns skipped" >&2
  have_llama=0
fi

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=("$(scripts/get-models.sh)")
  tok="$TW_SHARED/models/smollm2-135m/tokenizer.json"
  [ -f "$tok" ] || { echo "bench_vs_llamacpp: no tokenizer at $tok (set TW_SHARED)" >&2; exit 1; }
  mkdir -p "$TW_BENCH_DIR"
  for t in f32 f16 q8_0 q4_k; do
    f="$TW_BENCH_DIR/smollm2-135m-random-$t.gguf"
    # Deterministic (seed 1), so re-creating it each run costs seconds and guarantees the
    # file matches the current writer.
    if ! "$TW" model init --like smollm2-135m --type "$t" --tokenizer "$tok" --seed 1 -o "$f" \
           > "$OUT/init-$t.log" 2>&1; then
      echo "bench_vs_llamacpp: tunewise model init --type $t failed:" >&2; tail -n 5 "$OUT/init-$t.log" >&2; exit 1
    fi
    models+=("$f")
  done
fi

{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
  echo "# threads $THREADS, pp$P, tg$N, $REPS reps, $ROUNDS round(s)"
  # tunewise's prefill runs on OpenBLAS sgemm, whose kernel choice this variable overrides
  # (llama.cpp links no BLAS): unset it (env -u OPENBLAS_CORETYPE) to let OpenBLAS detect.
  echo "# OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-(unset)}"
} >&2

results="$OUT/results.jsonl"
: > "$results"
for m in "${models[@]}"; do
  base=$(basename "$m" .gguf)
  for ((r = 1; r <= ROUNDS; r++)); do
    echo "== $base round $r/$ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    lj=""; tj=""
    if [ "$have_llama" = 1 ]; then
      lj="$OUT/$base.llama.$r.json"
      if ! /usr/bin/time -f "%M" -o "$lj.rss" "$LB" -m "$m" -t "$THREADS" -p "$P" -n "$N" \
             -r "$REPS" -o json > "$lj" 2> "$lj.log"; then
        echo "bench_vs_llamacpp: llama-bench failed on $m:" >&2; tail -n 5 "$lj.log" >&2; lj=""
      fi
    fi
    if [ "$have_tw_bench" = 1 ]; then
      tj="$OUT/$base.tunewise.$r.json"
      if ! "$TW" bench -m "$m" -p "$P" -n "$N" -t "$THREADS" -r "$REPS" --json > "$tj" 2> "$tj.log"; then
        echo "bench_vs_llamacpp: tunewise bench failed on $m:" >&2; tail -n 5 "$tj.log" >&2; tj=""
      fi
    fi
    python3 - "$m" "$lj" "$tj" "$P" "$N" >> "$results" <<'PY'
import json, sys, os
model, lj, tj, P, N = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
row = {"model": model}
if lj:
    for t in json.load(open(lj)):
        if t["n_prompt"] == P and t["n_gen"] == 0:
            row["llama_pp"], row["llama_pp_sd"] = t["avg_ts"], t["stddev_ts"]
        if t["n_gen"] == N and t["n_prompt"] == 0:
            row["llama_tg"], row["llama_tg_sd"] = t["avg_ts"], t["stddev_ts"]
        row["llama_type"] = t["model_type"]
    if os.path.exists(lj + ".rss"):
        row["llama_rss_mib"] = int(open(lj + ".rss").read().split()[-1]) / 1024
if tj:
    t = json.load(open(tj))
    row["tw_pp"], row["tw_pp_sd"] = t.get("prefill_tok_s"), t.get("prefill_tok_s_sd")
    row["tw_tg"], row["tw_tg_sd"] = t.get("decode_tok_s"), t.get("decode_tok_s_sd")
    row["tw_rss_mib"] = t.get("peak_rss_mib")
    row["tw_kernels"] = t.get("kernels")
print(json.dumps(row))
PY
  done
done

python3 - "$results" "$P" "$N" <<'PY'
import json, sys
path, P, N = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(path)]
best = {}
order = []
for r in rows:
    m = r["model"]
    if m not in best:
        best[m] = {}; order.append(m)
    b = best[m]
    for side in ("llama", "tw"):
        for test in ("pp", "tg"):
            k = f"{side}_{test}"
            if r.get(k) is not None and (b.get(k) is None or r[k] > b[k]):
                b[k], b[k + "_sd"] = r[k], r.get(k + "_sd")
        rk = f"{side}_rss_mib"
        if r.get(rk) is not None:
            b[rk] = max(b.get(rk, 0), r[rk])
    for k in ("llama_type", "tw_kernels"):
        if r.get(k): b[k] = r[k]

def fig(b, k):
    v = b.get(k)
    return "—" if v is None else f"{v:.1f} ± {b.get(k + '_sd') or 0:.1f}"

def ratio(b, t):
    l, w = b.get("llama_" + t), b.get("tw_" + t)
    if not l or w is None: return "—", None
    x = w / l
    return (f"**{x:.2f}**" if x < 0.8 else f"{x:.2f}"), x

def rss(b, k):
    v = b.get(k)
    return "—" if v is None else f"{v:.0f}"

print(f"| model | llama.cpp type | llama.cpp pp{P} | tunewise pp{P} | ratio | "
      f"llama.cpp tg{N} | tunewise tg{N} | ratio | peak RSS MiB (llama.cpp / tunewise) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
under = []
for m in order:
    b = best[m]
    name = m.rsplit("/", 1)[-1].removesuffix(".gguf")
    rp, xp = ratio(b, "pp"); rt, xt = ratio(b, "tg")
    for t, x in (("pp", xp), ("tg", xt)):
        if x is not None and x < 0.8: under.append(f"{name} {t} {x:.2f}")
    print(f"| {name} | {b.get('llama_type', '—')} | {fig(b, 'llama_pp')} | {fig(b, 'tw_pp')} | {rp} | "
          f"{fig(b, 'llama_tg')} | {fig(b, 'tw_tg')} | {rt} | "
          f"{rss(b, 'llama_rss_mib')} / {rss(b, 'tw_rss_mib')} |")
print()
print("tok/s, mean ± sd of the repetitions, best round; ratio = tunewise / llama.cpp "
      "(bold: under the 0.8 floor).")
if under:
    print("UNDER THE 0.8 FLOOR: " + ", ".join(under))
PY
