#!/usr/bin/env python3
"""Generate the reference fixtures of tests/test_quant.c (tests/data/quant/).

Python is a fixture generator only: the C test reads the committed files and never runs
Python. The oracle is gguf-py (PyPI `gguf`, llama.cpp's Python package): its numpy
dequantizers for every type, and its numpy quantizers for F16, BF16, Q8_0, Q4_0, Q4_1,
Q5_0, Q5_1 (ports of ggml's *_ref quantizers). Re-run after changing anything below:

    pip install gguf==0.19.0 numpy
    python3 tests/ref/gen_quant_fixtures.py [MODEL.gguf]

MODEL defaults to $TW_SMOLLM2 or the path scripts/get-models.sh caches
(~/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf).

Files written (all little-endian; *.f32 are raw float32 arrays, *.bin raw block bytes):
  manifest.json       the cases below, with sizes and sha256 of every file
  input.f32           ROWS x 256 float32 inputs to the quantizers (named rows, see ROWS)
  T.quant.bin         gguf-py quantize(input, T) for T with a numpy quantizer
  T.quant.f32         gguf-py dequantize(T.quant.bin, T)
  T.blocks.bin        random blocks of T (random bytes, fp16 scale fields replaced by
                      random finite fp16 values incl. zeros and subnormals)
  T.blocks.f32        gguf-py dequantize(T.blocks.bin, T)
  half.json           sha256 of numpy's conversions over exhaustive / structured input
                      sets that the C test regenerates (see half_inputs), plus explicit cases
  smollm2.json        for tensors of the real SmolLM2-135M-Instruct Q4_1 file: absolute
                      file offset, type, element count, sha256 of the raw bytes and of
                      gguf-py's dequantized float32, and sampled values
"""
import hashlib
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "quant")
SEED = 20240611
QK_K = 256

TYPES = {  # name -> (qtype, block elements, block bytes, byte offsets of fp16 fields)
    "f32": (T.F32, 1, 4, []),
    "f16": (T.F16, 1, 2, []),
    "bf16": (T.BF16, 1, 2, []),
    "q8_0": (T.Q8_0, 32, 34, [0]),
    "q4_0": (T.Q4_0, 32, 18, [0]),
    "q4_1": (T.Q4_1, 32, 20, [0, 2]),
    "q5_0": (T.Q5_0, 32, 22, [0]),
    "q5_1": (T.Q5_1, 32, 24, [0, 2]),
    "q4_k": (T.Q4_K, 256, 144, [0, 2]),
    "q5_k": (T.Q5_K, 256, 176, [0, 2]),
    "q6_k": (T.Q6_K, 256, 210, [208]),
}
# gguf-py has numpy quantizers for these (the k-quants only dequantize)
QUANTIZABLE = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"]


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    return {"file": name, "bytes": len(data), "sha256": sha256(data)}


def f32_le(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


# ---------------------------------------------------------------------------------------
# quantizer inputs: named rows of 256 floats
# ---------------------------------------------------------------------------------------

def make_rows(rng):
    n = 256
    rows = []
    g = lambda s=1.0: (rng.standard_normal(n) * s).astype(np.float32)
    rows.append(("gaussian_0", g()))
    rows.append(("gaussian_1", g()))
    rows.append(("gaussian_2", g()))
    rows.append(("gaussian_weights", g(0.02)))
    rows.append(("uniform_0", rng.uniform(-1, 1, n).astype(np.float32)))
    rows.append(("uniform_1", rng.uniform(-1, 1, n).astype(np.float32)))
    rows.append(("zeros", np.zeros(n, np.float32)))
    rows.append(("negative_zeros", np.full(n, -0.0, np.float32)))
    rows.append(("constant_pos", np.full(n, 0.37, np.float32)))
    rows.append(("constant_neg", np.full(n, -1.5, np.float32)))
    x = g(1e-3)
    x[77] = 50.0
    rows.append(("one_outlier", x))
    rows.append(("tiny", g(1e-6)))
    rows.append(("huge", g(1e4)))
    rows.append(("negative_only", (-np.abs(g()) - 0.5).astype(np.float32)))
    rows.append(("positive_only", rng.uniform(2, 3, n).astype(np.float32)))
    # exact rounding ties for Q8_0: each block of 32 has amax 127, so d = 1 and x / d is
    # a half-integer for the others (roundf: half away from zero)
    x = (rng.integers(-126, 126, n) + 0.5).astype(np.float32)
    x[::32] = 127.0
    x[16::64] = -127.0
    rows.append(("q8_0_ties", x))
    # sub-blocks of very different magnitudes (stress the k-quant 6-bit scales)
    x = g()
    x *= np.repeat(2.0 ** np.arange(-4, 4), 32).astype(np.float32)
    rows.append(("mixed_scales", x))
    # magnitudes whose scales fall into fp16 subnormals for some types
    rows.append(("fp16_subnormal_scales", g(3e-5)))
    return rows


# ---------------------------------------------------------------------------------------
# random blocks with valid fp16 scales
# ---------------------------------------------------------------------------------------

def random_fp16(rng, k):
    """Random finite fp16 bit patterns: every exponent 0..30 (0 = zero/subnormal), random
    sign and mantissa; a few exact zeros and negative zeros."""
    sign = rng.integers(0, 2, k).astype(np.uint16) << 15
    exp = rng.integers(0, 31, k).astype(np.uint16) << 10
    man = rng.integers(0, 1024, k).astype(np.uint16)
    h = sign | exp | man
    h[rng.random(k) < 0.03] = 0x0000
    h[rng.random(k) < 0.03] = 0x8000
    return h


def random_blocks(rng, name):
    qtype, blk, nbytes, fp16_offs = TYPES[name]
    nblocks = {1: 2048, 32: 64, 256: 16}[blk]
    raw = rng.integers(0, 256, (nblocks, nbytes), dtype=np.uint8)
    for off in fp16_offs:
        h = random_fp16(rng, nblocks)
        raw[:, off] = (h & 0xFF).astype(np.uint8)
        raw[:, off + 1] = (h >> 8).astype(np.uint8)
    n = nblocks * blk
    if name == "f32":
        # random bit patterns (NaNs and infs included: F32 is copied bit for bit)
        data = raw.reshape(-1).view(np.float32)
    else:
        data = raw                                 # gguf-py takes (blocks, bytes) uint8
        if name == "f16":
            data = raw.reshape(-1).view(np.float16)
        elif name == "bf16":
            data = raw.reshape(-1)
    out = dequantize(data, qtype).astype(np.float32, copy=False).reshape(-1)
    assert out.size == n, (name, out.size, n)
    return raw.tobytes(), out, n


# ---------------------------------------------------------------------------------------
# fp16 / bf16 conversions (input sets the C test regenerates)
# ---------------------------------------------------------------------------------------

GOLD = 2654435761


def f32_to_f16_inputs():
    """All 2^19 combinations of sign, exponent and top 10 mantissa bits, each with 7 values
    of the 13 bits fp16 drops: 0, 1, just below / at / just above the halfway point, all
    ones, and a pseudo-random pattern ((hi * 2654435761) >> 7) & 0x1fff. NaNs excluded
    (numpy keeps sNaN payloads, tunewise quiets them: tested separately)."""
    hi = np.arange(1 << 19, dtype=np.uint64)
    mix = ((hi * GOLD) >> np.uint64(7)) & np.uint64(0x1FFF)
    lows = [np.full_like(hi, v) for v in (0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF)] + [mix]
    bits = np.stack([(hi << np.uint64(13)) | lo for lo in lows], axis=1).reshape(-1).astype(np.uint32)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    return bits[~nan]


def f32_to_bf16_inputs():
    """All 2^16 top halves, each with 7 low halves: 0, 1, 0x7fff, 0x8000, 0x8001, 0xffff
    and ((hi * 2654435761) >> 5) & 0xffff. NaNs included (both quiet them the same way)."""
    hi = np.arange(1 << 16, dtype=np.uint64)
    mix = ((hi * GOLD) >> np.uint64(5)) & np.uint64(0xFFFF)
    lows = [np.full_like(hi, v) for v in (0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF)] + [mix]
    return np.stack([(hi << np.uint64(16)) | lo for lo in lows], axis=1).reshape(-1).astype(np.uint32)


def half_fixture():
    h = np.arange(1 << 16, dtype=np.uint16)
    f16_to_f32 = h.view(np.float16).astype(np.float32)
    bf16_to_f32 = dequantize(h.view(np.uint8).reshape(-1, 2), T.BF16).reshape(-1)
    x16 = f32_to_f16_inputs()
    with np.errstate(over="ignore"):   # finite values >= 65520 become inf, as they should
        to_f16 = quantize(x16.view(np.float32), T.F16).view(np.uint16)
    xb = f32_to_bf16_inputs()
    to_bf16 = quantize(xb.view(np.float32), T.BF16).view(np.uint16).reshape(-1)

    # explicit cases (shown on failure): boundaries, ties, subnormals, overflow
    special = [0x00000000, 0x80000000, 0x3F800000, 0xBF800000, 0x477FE000, 0x477FEFFF,
               0x477FF000, 0x477FF001, 0x47800000, 0x7F800000, 0xFF800000, 0x7F7FFFFF,
               0x38800000, 0x387FFFFF, 0x387FC000, 0x387FE000, 0x387FF000, 0x33800000,
               0x33000000, 0x33000001, 0x32FFFFFF, 0x33C00000, 0x34000000, 0x34200000,
               0x34400000, 0x3F801000, 0x3F803000, 0x3F800FFF, 0x3F801001, 0x3F805000,
               0x00000001, 0x007FFFFF, 0x3DCCCCCD, 0x40490FDB, 0xC0490FDB, 0x3EAAAAAB]
    sp = np.array(special, dtype=np.uint32)
    with np.errstate(over="ignore"):
        sp16 = quantize(sp.view(np.float32), T.F16).view(np.uint16)
    spb = quantize(sp.view(np.float32), T.BF16).view(np.uint16).reshape(-1)
    return {
        "f16_to_f32_all": {"count": 65536, "sha256": sha256(f32_le(f16_to_f32))},
        "bf16_to_f32_all": {"count": 65536, "sha256": sha256(f32_le(bf16_to_f32))},
        "f32_to_f16": {"count": int(x16.size), "sha256": sha256(to_f16.astype("<u2").tobytes())},
        "f32_to_bf16": {"count": int(xb.size), "sha256": sha256(to_bf16.astype("<u2").tobytes())},
        "cases": [[int(a), int(b), int(c)] for a, b, c in zip(sp, sp16, spb)],
        "cases_doc": "[float32 bits, fp16 bits, bf16 bits] from numpy astype(float16) / gguf-py BF16",
    }


# ---------------------------------------------------------------------------------------
# the real model
# ---------------------------------------------------------------------------------------

def default_model():
    p = os.environ.get("TW_SMOLLM2")
    if p:
        return p
    cache = os.environ.get("TW_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "tunewise"))
    return os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


# tensors the C test checks by default (the rest only with TW_QUANT_FULL=1); token_embd is
# 28 M elements, so by default only row slices of it
DEFAULT_TENSORS = {
    "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight",
    "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight",
    "blk.0.attn_norm.weight", "blk.29.ffn_down.weight", "output_norm.weight",
}
EMBD_SLICES = [(0, 16), (1000, 1016), (49136, 49152)]   # row ranges of token_embd


def tensor_entry(name, qtype, raw, deq, offset, default, rng):
    """One checked range; sampled values (shown by the C test on a mismatch) only for the
    ranges checked by default, to keep the file small."""
    n = deq.size
    idx = sorted(set([0, n - 1] + [int(i) for i in rng.integers(0, n, 8)])) if default else []
    bits = deq.view(np.uint32)
    return {
        "name": name, "type": qtype.name.lower(), "offset": int(offset), "n_elements": int(n),
        "n_bytes": len(raw), "default": default, "raw_sha256": sha256(raw),
        "deq_sha256": sha256(f32_le(deq)),
        "samples": [[i, "%08x" % int(bits[i]), float(deq[i])] for i in idx],
    }


def model_fixture(path, rng):
    r = gguf.GGUFReader(path)
    size = os.path.getsize(path)
    entries = []
    types = {}
    with open(path, "rb") as f:
        for t in r.tensors:
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
            f.seek(int(t.data_offset))
            raw = f.read(int(t.n_bytes))
            assert raw == t.data.tobytes(), t.name   # data_offset is an absolute file offset
            deq = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False).reshape(-1)
            assert deq.size == t.n_elements
            entries.append(tensor_entry(t.name, t.tensor_type, raw, deq, t.data_offset,
                                        t.name in DEFAULT_TENSORS, rng))
            if t.name == "token_embd.weight":
                ne0 = int(t.shape[0])              # GGML order: shape[0] is the row length
                row_bytes = len(raw) // (t.n_elements // ne0)
                for r0, r1 in EMBD_SLICES:
                    sraw = raw[r0 * row_bytes:r1 * row_bytes]
                    sdeq = deq[r0 * ne0:r1 * ne0]
                    entries.append(tensor_entry("%s[rows %d:%d]" % (t.name, r0, r1), t.tensor_type, sraw,
                                                sdeq, t.data_offset + r0 * row_bytes, True, rng))
    return {
        "model": os.path.basename(path), "file_size": size, "tensor_types": types,
        "doc": "offset: absolute file offset of the first byte; deq_sha256: sha256 of gguf-py's "
               "dequantized float32 (little-endian); samples: [index, float32 bits, value]",
        "tensors": entries,
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(SEED)
    manifest = {
        "generator": "tests/ref/gen_quant_fixtures.py",
        "gguf_version": getattr(gguf, "__version__", None) or __import__("importlib.metadata").metadata.version("gguf"),
        "numpy_version": np.__version__,
        "seed": SEED,
    }
    rows = make_rows(rng)
    inp = np.stack([r for _, r in rows]).astype(np.float32)
    manifest["input"] = dict(write("input.f32", f32_le(inp)), rows=len(rows), cols=256,
                             row_names=[n for n, _ in rows])
    cases = []
    for name in TYPES:
        qtype = TYPES[name][0]
        raw, deq, n = random_blocks(rng, name)
        cases.append({"type": name, "kind": "blocks", "n": n, "src": write(name + ".blocks.bin", raw),
                      "expect": write(name + ".blocks.f32", f32_le(deq))})
        if name in QUANTIZABLE:
            q = quantize(inp, qtype)
            qb = np.ascontiguousarray(q).view(np.uint8).tobytes()
            deq = dequantize(np.ascontiguousarray(q), qtype).astype(np.float32, copy=False).reshape(-1)
            cases.append({"type": name, "kind": "quantize", "n": int(inp.size),
                          "expect_bytes": write(name + ".quant.bin", qb),
                          "expect": write(name + ".quant.f32", f32_le(deq))})
    manifest["cases"] = cases
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "half.json"), "w") as f:
        json.dump(half_fixture(), f, indent=1)
        f.write("\n")

    model = sys.argv[1] if len(sys.argv) > 1 else default_model()
    if not os.path.exists(model):
        sys.exit("gen_quant_fixtures: %s not found: run scripts/get-models.sh" % model)
    with open(os.path.join(OUT, "smollm2.json"), "w") as f:
        json.dump(model_fixture(model, np.random.default_rng(SEED + 1)), f, indent=0)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
