#!/usr/bin/env python3
"""Check that GGUF files written by `tunewise model init` are what gguf-py (llama.cpp's
own Python GGUF package) reads and expects, and record what it reads as a fixture.

For each case below it runs `BIN model init ARGS -o TMP.gguf`, then with gguf-py:
  - GGUFReader opens the file (it checks magic, version, offsets, sizes and alignment);
  - every tensor name is one llama.cpp knows for the architecture
    (gguf.MODEL_TENSORS[arch] with gguf.TENSOR_NAMES), and the architecture's required
    tensors are all there;
  - the metadata keys llama.cpp reads for these architectures are present with the
    right types (gguf.Keys);
  - the tensors dequantize (gguf.quants.dequantize) to values with mean ~0 and standard
    deviation ~stddev (norms exactly 1).
It writes tests/data/model/init_readback.json: per case the arguments and what gguf-py
read (metadata values, tensor types/shapes/offsets/sha256 of bytes, dequantized mean and
std). tests/test_model_cli.c re-runs the same commands and compares our reader's view,
byte for byte, with it.

Usage (from the repository root):  python3 tests/ref/check_gguf_compat.py [BIN] [--large]
  BIN defaults to build/tunewise. --large also checks the real shapes with the real
  tokenizers of ../shared (minutes, a few GB of temporary disk; nothing is recorded).
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType as VT, GGMLQuantizationType as QT

CASES = [
    ["--arch", "llama", "--like", "tiny", "--type", "f32", "--seed", "1"],
    ["--arch", "qwen2", "--like", "tiny", "--type", "q8_0", "--seed", "2"],
    ["--arch", "qwen3", "--like", "tiny", "--type", "q4_k", "--seed", "3"],
    ["--arch", "llama", "--like", "tiny", "--type", "f16", "--seed", "4", "--tokenizer",
     "tests/data/model/hf_tiny/tokenizer.json"],
    ["--arch", "qwen2", "--like", "tiny", "--type", "bf16", "--seed", "5", "--stddev", "0.5"],
    ["--arch", "llama", "--like", "tiny", "--type", "q4_0", "--seed", "6", "--vocab", "320"],
]

ARCH = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2, "qwen3": gguf.MODEL_ARCH.QWEN3}
T = gguf.MODEL_TENSOR
REQUIRED = [T.TOKEN_EMBD, T.OUTPUT_NORM, T.ATTN_NORM, T.ATTN_Q, T.ATTN_K, T.ATTN_V, T.ATTN_OUT, T.FFN_NORM,
            T.FFN_GATE, T.FFN_UP, T.FFN_DOWN]
EXTRA = {"qwen3": [T.ATTN_Q_NORM, T.ATTN_K_NORM]}
K = gguf.Keys.LLM
KEYS_U32 = [K.CONTEXT_LENGTH, K.EMBEDDING_LENGTH, K.BLOCK_COUNT, K.FEED_FORWARD_LENGTH, gguf.Keys.Attention.HEAD_COUNT,
            gguf.Keys.Attention.HEAD_COUNT_KV, gguf.Keys.Rope.DIMENSION_COUNT]
KEYS_F32 = [gguf.Keys.Rope.FREQ_BASE, gguf.Keys.Attention.LAYERNORM_RMS_EPS]


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def field_json(f):
    t = f.types[0]
    if t == VT.ARRAY:
        sub = f.types[-1]
        vals = f.contents()[:5]
        if sub == VT.STRING:
            out = vals
        elif sub in (VT.FLOAT32, VT.FLOAT64):
            out = [float(v) for v in vals]
        elif sub == VT.BOOL:
            out = [bool(v) for v in vals]
        else:
            out = [str(int(v)) for v in vals]
        return {"type": "array", "elem": sub.name.lower(), "n": len(f.data), "values": out, "first5_only": True}
    v = f.contents()
    if t == VT.STRING:
        return {"type": "string", "value": v, "hex": bytes(f.parts[f.data[0]]).hex()}
    if t == VT.BOOL:
        return {"type": "bool", "value": bool(v)}
    if t in (VT.FLOAT32, VT.FLOAT64):
        return {"type": t.name.lower(), "value": float(v)}
    return {"type": t.name.lower(), "value": str(int(v))}


def check_case(binary, args, tmp):
    out = os.path.join(tmp, "m.gguf")
    subprocess.run([binary, "-q", "model", "init", *args, "-o", out], check=True, stdout=subprocess.DEVNULL)
    r = GGUFReader(out)
    problems = []
    arch = r.fields["general.architecture"].contents()
    ma = ARCH[arch]
    n_layer = int(r.fields[f"{arch}.block_count"].contents())
    known = set()
    for t in gguf.MODEL_TENSORS[ma]:
        tmpl = gguf.TENSOR_NAMES[t]
        for i in range(n_layer):
            known.update({tmpl.format(bid=i) + ".weight", tmpl.format(bid=i) + ".bias"})
    names = {t.name for t in r.tensors}
    for n in sorted(names - known):
        problems.append(f"tensor name {n} unknown to gguf-py for {arch}")
    for t in REQUIRED + EXTRA.get(arch, []):
        tmpl = gguf.TENSOR_NAMES[t]
        for i in range(n_layer if "{bid}" in tmpl else 1):
            if tmpl.format(bid=i) + ".weight" not in names:
                problems.append(f"required tensor {tmpl.format(bid=i)}.weight missing")
    if arch == "qwen2":
        for i in range(n_layer):
            for p in ("q", "k", "v"):
                if f"blk.{i}.attn_{p}.bias" not in names:
                    problems.append(f"qwen2 bias blk.{i}.attn_{p}.bias missing")
    for k in KEYS_U32:
        key = k.format(arch=arch)
        f = r.fields.get(key)
        if f is None or f.types[0] != VT.UINT32:
            problems.append(f"key {key} missing or not uint32")
    for k in KEYS_F32:
        key = k.format(arch=arch)
        f = r.fields.get(key)
        if f is None or f.types[0] != VT.FLOAT32:
            problems.append(f"key {key} missing or not float32")
    if r.fields[gguf.Keys.General.FILE_TYPE].types[0] != VT.UINT32:
        problems.append("general.file_type not uint32")
    std_want = float(args[args.index("--stddev") + 1]) if "--stddev" in args else 0.02
    tensors = []
    for t in r.tensors:
        vals = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        mean, std = float(vals.mean()), float(vals.std())
        is_norm = t.name.endswith("norm.weight")
        if is_norm and not np.all(vals == 1.0):
            problems.append(f"{t.name}: norm weights are not all 1")
        if not is_norm and vals.size >= 1000 and abs(std - std_want) > 0.15 * std_want:
            problems.append(f"{t.name}: std {std:.4g}, expected ~{std_want}")
        tensors.append({"name": t.name, "type": QT(t.tensor_type).name.lower(), "ne": [int(x) for x in t.shape],
                        "offset": int(t.data_offset), "nbytes": int(t.n_bytes),
                        "sha256": sha(np.ascontiguousarray(t.data).tobytes()), "mean": mean, "std": std})
    kv = {k: field_json(f) for k, f in r.fields.items() if not k.startswith("GGUF.")}
    return {"args": args, "kv": kv, "tensors": tensors, "file_size": os.path.getsize(out), "problems": problems}


SH = os.environ.get("TW_SHARED", "../shared") + "/models"
LARGE = [
    ["--like", "smollm2-135m", "--type", "q8_0", "--tokenizer", f"{SH}/smollm2-135m/tokenizer.json"],
    ["--like", "qwen2.5-0.5b", "--type", "q4_k", "--tokenizer", f"{SH}/tokenizers/qwen3/tokenizer.json"],
    ["--like", "qwen3-0.6b", "--type", "q6_k", "--tokenizer", f"{SH}/tokenizers/qwen3/tokenizer.json"],
    ["--like", "llama-3.2-1b", "--type", "q4_0", "--tokenizer", f"{SH}/tokenizers/llama3/tokenizer.json"],
]


def main():
    argv = [a for a in sys.argv[1:] if a != "--large"]
    binary = argv[0] if argv else "build/tunewise"
    if "--large" in sys.argv:
        bad = 0
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
            for args in LARGE:
                res = check_case(binary, args, tmp)
                kv = res["kv"]
                arch = kv["general.architecture"]["value"]
                print(f"model init {' '.join(args)}: {arch}, {len(res['tensors'])} tensors, "
                      f"vocab {kv['tokenizer.ggml.tokens']['n']}, pre {kv['tokenizer.ggml.pre']['value']}, "
                      f"{res['file_size'] / 2**20:.1f} MiB: gguf-py "
                      + ("ok" if not res["problems"] else "PROBLEMS: " + "; ".join(res["problems"][:5])))
                bad += bool(res["problems"])
        sys.exit(1 if bad else 0)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for args in CASES:
            res = check_case(binary, args, tmp)
            status = "ok" if not res["problems"] else "PROBLEMS: " + "; ".join(res["problems"])
            print(f"model init {' '.join(args)}: {len(res['tensors'])} tensors, {len(res['kv'])} keys, "
                  f"{res['file_size']} bytes: gguf-py {status}")
            results.append(res)
    from importlib.metadata import version
    with open("tests/data/model/init_readback.json", "w") as fp:
        json.dump({"generator": {"gguf": version("gguf"), "numpy": np.__version__}, "cases": results}, fp, indent=1,
                  ensure_ascii=False)
    bad = [r for r in results if r["problems"]]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
