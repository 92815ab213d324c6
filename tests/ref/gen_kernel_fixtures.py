#!/usr/bin/env python3
"""gen_kernel_fixtures.py — the oracle for tw_quantize_q8a / tw_quantize_q8k (kernels.h):
ggml's own x86 activation quantizers, called through ctypes from the shared libraries of
the pip-installed llama_cpp package (llama-cpp-python; its libggml-cpu.so exports
quantize_row_q8_0, quantize_row_q8_1 and quantize_row_q8_K, the functions the CPU backend
runs on the activations of a matrix product).

Writes tests/data/kernels/q8_act.bin (little-endian):
    "TWQ8" magic, u32 version = 1, u32 rows, u32 n (a multiple of 256)
    rows * n float32 inputs
    rows * (n/32 * 34) bytes: ggml block_q8_0 (fp16 d, 32 x int8)
    rows * (n/32 * 36) bytes: ggml block_q8_1 (fp16 d, fp16 s, 32 x int8)
    rows * (n/256 * 292) bytes: ggml block_q8_K (float d, 256 x int8, 16 x int16 bsums)
The output buffers are zeroed before each call (ggml leaves the bsums of an all-zero
q8_K block unwritten).

Also writes tests/data/kernels/vec_dot.bin: for each quantized weight type tunewise
multiplies with (Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K), R weight rows quantized by
ggml_quantize_chunk, B activation rows, and ggml's own CPU product of each pair: the
activation row quantized by the type's vec_dot_type from_float, then the type's vec_dot
(both from ggml_get_type_traits_cpu) — what llama.cpp computes for one output:
    "TWVD", u32 version = 1, u32 n_types, then per type:
    u32 ggml type, u32 R, u32 C, u32 B, R * row_bytes weight bytes, B * C float32 x,
    B * R float32 out (out[b * R + r] = vec_dot(row r, x_b)) Inputs: Gaussian rows and awkward ones (rounding ties, zero
blocks, outliers, fp16-overflowing scales, largest magnitude negative, +a/-a magnitude
ties, tiny values). No subnormal block maxima: 127/amax overflows there and ggml's
result is an artefact of its instruction choice.

Usage: python3 tests/ref/gen_kernel_fixtures.py   (from the repository root)
"""
import ctypes
import os
import struct
import sys

import numpy as np

import llama_cpp

N = 512
LIBDIR = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")


def load():
    ctypes.CDLL(os.path.join(LIBDIR, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(os.path.join(LIBDIR, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    for name in ("quantize_row_q8_0", "quantize_row_q8_1", "quantize_row_q8_K"):
        f = getattr(cpu, name)
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        f.restype = None
    return cpu


def inputs():
    rng = np.random.default_rng(20261123)
    rows = []
    rows.append(rng.standard_normal(N).astype(np.float32))                 # plain
    rows.append((rng.standard_normal(N) * 1e-3).astype(np.float32))        # small scale
    # rounding ties: amax = 127 gives id = 1 (q8_0/q8_1) and iscale = -1 (q8_K)
    t = np.zeros(N, np.float32)
    t[:] = (np.arange(N) % 64 - 32).astype(np.float32) + 0.5
    t[::32] = 127.0
    t[256] = -127.0                                                        # q8_K block 1: negative max
    rows.append(t)
    # zeros: whole blocks, a whole q8_K block, single values
    z = rng.standard_normal(N).astype(np.float32)
    z[0:32] = 0.0
    z[256:512] = 0.0
    z[300] = 1e-30
    z[64:96] = 0.0
    z[70] = -3.0
    rows.append(z)
    # outliers: one huge value per block, an fp16-overflowing scale (1e7 / 127 > 65504)
    o = rng.standard_normal(N).astype(np.float32)
    o[5] = 1e4
    o[40] = -5e6
    o[100] = 1e7
    o[300] = -250.0
    rows.append(o)
    # largest magnitude negative; +a/-a ties (the first one wins in q8_K)
    g = rng.standard_normal(N).astype(np.float32)
    g[10] = -9.0
    g[260] = 7.25
    g[261] = -7.25
    g[400] = 7.25
    g[33] = -4.0
    g[34] = 4.0
    rows.append(g)
    # values that land exactly on .5 after scaling by a non-trivial id
    h = np.zeros(N, np.float32)
    for b in range(N // 32):
        amax = np.float32(0.75 * (b + 1))
        h[32 * b] = amax
        idv = np.float32(127.0) / amax
        for j in range(1, 32):
            h[32 * b + j] = np.float32((j - 16 + 0.5)) / idv
    rows.append(h)
    # uniform, all positive, and all negative halves
    u = rng.uniform(0, 1, N).astype(np.float32)
    u[256:] = -u[256:]
    rows.append(u)
    return np.stack(rows)


class TraitsCpu(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p), ("vec_dot_type", ctypes.c_int),
                ("nrows", ctypes.c_int64)]


FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VEC_DOT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
# ggml type: (block elements, block bytes)
BLOCKS = {8: (32, 34), 9: (32, 36), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 12: (256, 144), 13: (256, 176),
          14: (256, 210), 15: (256, 292)}


def vec_dot_fixture(cpu):
    base = ctypes.CDLL(os.path.join(LIBDIR, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TraitsCpu)
    cpu.ggml_cpu_init.argtypes = []
    cpu.ggml_cpu_init()
    rng = np.random.default_rng(7)
    out = [b"TWVD", struct.pack("<II", 1, 8)]
    for t in (8, 2, 3, 6, 7, 12, 13, 14):
        R, C, B = 5, 512, 3
        w = (rng.standard_normal((R, C)) * 0.05).astype(np.float32)
        w[:, 7] *= 8.0                                        # an outlier per row
        w[1] += 0.02                                          # a shifted row (mins matter)
        x = rng.standard_normal((B, C)).astype(np.float32)
        x[1, :32] = 0.0                                       # a zero block
        x[2] *= 30.0
        be, bb = BLOCKS[t]
        rb = C // be * bb
        wq = ctypes.create_string_buffer(R * rb)
        wc = np.ascontiguousarray(w)
        n = base.ggml_quantize_chunk(t, wc.ctypes.data, wq, 0, R, C, None)
        assert n == R * rb, (t, n, R * rb)
        tr = cpu.ggml_get_type_traits_cpu(t).contents
        vt = tr.vec_dot_type
        ve, vb = BLOCKS[vt]
        ff = FROM_FLOAT(cpu.ggml_get_type_traits_cpu(vt).contents.from_float)
        vd = VEC_DOT(tr.vec_dot)
        res = np.zeros((B, R), np.float32)
        for b in range(B):
            xq = ctypes.create_string_buffer(C // ve * vb)
            xc = np.ascontiguousarray(x[b])
            ff(xc.ctypes.data, ctypes.cast(xq, ctypes.c_void_p), C)
            for r in range(R):
                s = ctypes.c_float(0)
                vd(C, ctypes.byref(s), 0, ctypes.addressof(wq) + r * rb, 0, ctypes.cast(xq, ctypes.c_void_p), 0, 1)
                res[b, r] = s.value
        out += [struct.pack("<IIII", t, R, C, B), wq.raw, x.astype("<f4").tobytes(), res.astype("<f4").tobytes()]
    dst = os.path.join("tests", "data", "kernels", "vec_dot.bin")
    with open(dst, "wb") as fh:
        fh.write(b"".join(out))
    print(f"wrote {dst} ({sum(len(b) for b in out)} bytes)", file=sys.stderr)


def main():
    cpu = load()
    vec_dot_fixture(cpu)
    X = inputs()
    rows = X.shape[0]
    out = [b"TWQ8", struct.pack("<III", 1, rows, N), X.astype("<f4").tobytes()]
    for name, size in (("quantize_row_q8_0", 34 * N // 32), ("quantize_row_q8_1", 36 * N // 32),
                       ("quantize_row_q8_K", 292 * N // 256)):
        f = getattr(cpu, name)
        for r in range(rows):
            xr = np.ascontiguousarray(X[r], dtype=np.float32)
            buf = ctypes.create_string_buffer(size)
            f(xr.ctypes.data, buf, N)
            out.append(buf.raw)
    dst = os.path.join("tests", "data", "kernels", "q8_act.bin")
    with open(dst, "wb") as fh:
        fh.write(b"".join(out))
    print(f"wrote {dst} ({sum(len(b) for b in out)} bytes, {rows} rows of {N})", file=sys.stderr)


if __name__ == "__main__":
    main()
