#!/usr/bin/env python3
"""Diagnostic (not a test, writes no fixture): how far tunewise's SmolLM2-135M-Instruct logits
are from llama.cpp's, step by step over greedy chat completions, with each of the ggml
emulations of src/model/llama.c (tw_llama_set_ggml_numerics) on or off.

llama.cpp (llama-cpp-python, settings of gen_llama_fixtures.py: f16 KV cache, flash
attention off, n_batch/n_ubatch 512, 2 threads) runs greedy completions of the fixture chat
prompts and records the full logits of every step; tunewise teacher-forces the same tokens
(tests/ref/llama_numerics_diag.c, built here against build/libtunewise.a) and the script
prints, per configuration, max |diff| over the whole vocabulary and the steps, the rms diff,
the steps whose arg max differs, and the smallest llama.cpp top-2 margin among them.

Two pairs are compared:
  q4_1   llama.cpp on the Q4_1 file vs tunewise TW_MATMUL_FAST on it (8-bit activations on
         both sides: depends on kernels.c matching ggml's q8 blocks and summation order);
  q4_1ggml  the same with TW_MATMUL_GGML_Q8 (llama.c's scalar copy of ggml's q8 path;
         ~0.1 s per token);
  f32    llama.cpp on the F32 dequantization of that file (temporary GGUF, cached under
         $TMPDIR/tw_numerics_diag) vs tunewise TW_MATMUL_GGML_FLOAT on the Q4_1 file (exact
         dequantization summed in ggml's f32 orders): no activation rounding, the matmuls
         bit-identical, so what is left is the non-matmul numerics this file is about;
  f32sgemm  the same with TW_MATMUL_FLOAT (our own summation order): how much a last-bit
         difference in the matmuls alone moves the logits once fp16 rounding amplifies it.

Run from the repository root after `make build/libtunewise.a`:
    python3 tests/ref/llama_numerics_diag.py [--steps 32] [--pairs q4_1,q4_1ggml,f32,f32sgemm] [--masks 0,1]
(--masks: indices into MASKS below). With TW_DIAG_TRACE=DIR in the environment the driver
also dumps every stage of the first prompt's forward (tw_llama_set_trace) to DIR, to compare
with llama.cpp's graph-callback tensors (llama_cpp context param cb_eval).
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import gen_llama_fixtures as G  # noqa: E402

WORK = os.path.join(tempfile.gettempdir(), "tw_numerics_diag")
MASKS = [("none (plain float path)", 0), ("all emulations", 15), ("all but rope", 15 & ~1),
         ("all but rmsnorm", 15 & ~2), ("all but swiglu exp", 15 & ~4), ("all but attention", 15 & ~8)]


def f32_gguf():
    path = os.path.join(WORK, "smollm2_f32.gguf")
    if not os.path.exists(path):
        G.write_f32_gguf(path)
    return path


def reference(model, tag, prompts, steps):
    cache = os.path.join(WORK, f"ref_{tag}_{steps}.npz")
    if os.path.exists(cache):
        d = np.load(cache, allow_pickle=True)
        return list(d["toks"]), list(d["gens"]), list(d["logits"])
    llm = G.llama_open(model, n_ctx=1024)
    toks, gens, logits = [], [], []
    for text in prompts:
        t = llm.tokenize(text.encode(), add_bos=False, special=True)
        rows = []
        gen = G.greedy(llm, t, steps, rows=rows)
        toks.append(np.array(t, np.int32))
        gens.append(np.array(gen, np.int32))
        logits.append(np.array(rows, np.float32))
    del llm
    np.savez(cache, toks=np.array(toks, dtype=object), gens=np.array(gens, dtype=object),
             logits=np.array(logits, dtype=object))
    return toks, gens, logits


def build_driver():
    exe = os.path.join(WORK, "llama_numerics_diag")
    src = "tests/ref/llama_numerics_diag.c"
    # the libraries the Makefile links (its PKGS line)
    with open("Makefile") as f:
        pkgs = next(ln.split(":=", 1)[1].split() for ln in f if ln.startswith("PKGS"))
    pk = subprocess.run(["pkg-config", "--cflags", "--libs"] + pkgs, check=True, capture_output=True,
                        text=True).stdout.split()
    subprocess.run(["cc", "-std=c11", "-O2", "-D_GNU_SOURCE", "-fopenmp", "-Iinclude", "-Isrc", src,
                    "build/libtunewise.a", "-o", exe] + pk + ["-lm", "-lpthread"], check=True)
    return exe


def ours(exe, model, toks, gens, matmul, mask, V):
    job = os.path.join(WORK, "job.bin")
    out = os.path.join(WORK, "out.bin")
    with open(job, "wb") as f:
        f.write(struct.pack("<i", len(toks)))
        for t, g in zip(toks, gens):
            f.write(struct.pack("<i", len(t)) + np.asarray(t, "<i4").tobytes())
            f.write(struct.pack("<i", len(g)) + np.asarray(g, "<i4").tobytes())
    subprocess.run([exe, model, job, out, matmul, "f16", str(mask)], check=True)
    flat = np.fromfile(out, "<f4")
    res, off = [], 0
    for g in gens:
        res.append(flat[off:off + len(g) * V].reshape(len(g), V))
        off += len(g) * V
    return res


def compare(ref_logits, our_logits):
    md, ss, cnt, flips, worst_flip = 0.0, 0.0, 0, 0, None
    for r, o in zip(ref_logits, our_logits):
        d = np.abs(o.astype(np.float64) - r)
        md = max(md, float(d.max()))
        ss += float((d ** 2).sum())
        cnt += d.size
        for k in range(len(r)):
            if int(np.argmax(o[k])) != int(np.argmax(r[k])):
                flips += 1
                top2 = np.sort(r[k].astype(np.float64))[-2:]
                m = float(top2[1] - top2[0])
                worst_flip = m if worst_flip is None else max(worst_flip, m)
    return md, (ss / cnt) ** 0.5, flips, worst_flip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--pairs", default="q4_1,f32,f32sgemm")
    ap.add_argument("--masks", default="", help="comma-separated subset of the configurations, by index")
    a = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    prompts = [G.chat_prompt(u, s) for u, s in G.CHAT_PROMPTS]
    exe = build_driver()
    for pair in a.pairs.split(","):
        model, matmul = {"q4_1": (G.SMOLLM2, "fast"), "q4_1ggml": (G.SMOLLM2, "ggml_q8"),
                         "f32": (f32_gguf(), "ggml_float"),
                         "f32sgemm": (f32_gguf(), "float")}[pair]
        toks, gens, ref = reference(model, "q4_1" if pair.startswith("q4_1") else "f32", prompts, a.steps)
        V = ref[0].shape[1]
        nsteps = sum(len(g) for g in gens)
        margins = np.concatenate([np.diff(np.sort(r.astype(np.float64), axis=1)[:, -2:], axis=1)[:, 0] for r in ref])
        print(f"== {pair}: llama.cpp on {os.path.basename(model)}, tunewise matmul {matmul}, f16 KV; "
              f"{len(prompts)} prompts, {nsteps} steps, smallest llama.cpp top-2 margin {margins.min():.5f}")
        for mi, (name, mask) in enumerate(MASKS):
            if a.masks and str(mi) not in a.masks.split(","):
                continue
            md, rms, flips, wf = compare(ref, ours(exe, G.SMOLLM2, toks, gens, matmul, mask, V))
            print(f"  {name:26s} max |diff| {md:.6f}  rms {rms:.2e}  arg max differs at {flips}/{nsteps} steps"
                  + (f" (largest llama.cpp margin among them {wf:.5f})" if flips else ""))


if __name__ == "__main__":
    sys.exit(main())
