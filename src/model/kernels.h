/* kernels.h — the compute kernels of the inference engine: matrix products against
 * weights of any GGUF type, and the small ops of a llama-family layer (RMS norm, softmax,
 * SwiGLU, RoPE, vector add).
 *
 * Conventions (DESIGN.md): output pointer first, dimensions last, a shape comment per
 * kernel. Every kernel has a plain scalar reference (`*_ref`, double accumulation) that
 * the tests compare the fast paths against, with the tolerance written next to the test
 * (docs/kernels.md lists them). Fast paths chosen at run time: AVX-512 VNNI (a batched
 * integer GEMM for quantized W, and the legacy types' row dots), AVX2/FMA/F16C, scalar
 * fallback; threads across output rows (tw_parallel_for, a small pool that tolerates
 * preempted workers); gemm.c's float GEMM on dequantized tiles of W for batched float work
 * (and for quantized W on CPUs without AVX-512 VNNI).
 *
 * Weight layout: a GGUF tensor with ne = {C, R} is R rows of C elements, each row
 * tw_type_row_bytes(type, C) bytes, rows contiguous. W needs 2-byte alignment (the fp16
 * fields of the blocks; GGUF tensor data is 32-aligned).
 *
 * Deliberately not here: attention over a KV cache, sampling, anything that knows about
 * a model (llama.c); quantization of weights (quant.c). None of these functions can fail
 * or print: they need no caller-provided memory; a failed internal allocation falls back
 * to a slower path that needs none.
 */
#ifndef TW_MODEL_KERNELS_H
#define TW_MODEL_KERNELS_H

#include "model/types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- CPU features and path selection ---------------------------------------------- */

/* CPU features detected at run time (cached after the first call). avx512: F, BW, VL
 * and VNNI together (what the batched integer GEMM of kernels_avx512.c needs). */
typedef struct tw_cpu {
    bool avx2, fma, f16c, avx512f, avx512;
} tw_cpu;
const tw_cpu *tw_cpu_features(void);

/* Which kernels run. AUTO: the best the CPU has (AVX-512 VNNI GEMM for batches + AVX2 row
 * kernels, else AVX2, else scalar). The others force one (tests compare them; forcing a
 * path the CPU lacks gives the best available below it). SCALAR means no SIMD and no BLAS
 * anywhere in this file. Process-wide; not meant to be flipped while other threads run
 * kernels. */
typedef enum tw_kernel_path {
    TW_KPATH_AUTO = 0,
    TW_KPATH_SCALAR = 1,
    TW_KPATH_AVX2 = 2,      /* AVX2+FMA+F16C row kernels, no AVX-512 GEMM */
    TW_KPATH_AVX512 = 3,    /* AVX2 row kernels + the AVX-512 VNNI batched GEMM */
} tw_kernel_path;
void tw_kernels_force_path(tw_kernel_path p);
/* (AUTO also reads the environment once: TW_KERNEL_PATH=scalar|avx2|avx512 caps the path,
 * for A/B timings of whole programs.) */
/* The path in use (never AUTO). */
tw_kernel_path tw_kernels_path(void);
/* Shorthand: on = TW_KPATH_SCALAR, off = TW_KPATH_AUTO. */
void tw_kernels_force_scalar(bool on);
/* true when the AVX2+FMA+F16C paths are in use (CPU has them and scalar is not forced). */
bool tw_kernels_simd(void);

/* ---- matrix products ---------------------------------------------------------------- */

/* out (B, R) = x (B, C) · W^T, W (R, C) of `type` (every type tw_quant_supported():
 * F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; C a multiple of the
 * type's block). n_threads <= 0: omp_get_max_threads(). x and out must not alias.
 *
 * For the quantized types each row of x is first rounded to 8 bits per element exactly
 * as ggml's x86 CPU backend does for the weight type's vec_dot_type (q8_0 for Q4_0, Q5_0,
 * Q8_0; q8_1 for Q4_1, Q5_1; q8_K for the k-quants: same bytes, fp16 scales included)
 * and the products are integer dot products combined with those scales as ggml does
 * (integer sums exact; only the float accumulation order differs). This is an
 * approximation of the float product: |out - exact| <= 0.025 ||w_r|| ||x_b|| (legacy
 * types) or 0.063 ||w_r|| ||x_b|| (k-quants) as a hard bound, typically ~1e-3 of that
 * scale (docs/kernels.md). Small B: one integer dot per (row, activation row); from
 * tw_matmul_int_gemm_min_b(type) (AVX-512 VNNI CPUs) a batched integer GEMM that unpacks
 * each weight block once for many activation rows; CPUs without AVX-512 VNNI use
 * dequantize + sgemm from tw_matmul_sgemm_min_b(type) instead (exact float W, no rounding
 * of x). F32/F16/BF16 weights never round x. Use tw_matmul_float for exact
 * float activations.
 *
 * Deterministic: every output element is computed by one thread in a fixed order, so
 * the result does not depend on n_threads (nor on scheduling). It can depend on B (the
 * path changes with B; the paths agree to float rounding). */
void tw_matmul(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
               int n_threads);
/* Same product without rounding the activations: W is dequantized on the fly (exact, as
 * tw_dequantize_row) and accumulated in float32 with FMA (B >= 8: dequantized tiles and
 * sgemm). Slower than tw_matmul for quantized W and small B (~35 vs 40-80 GFLOP/s);
 * |out - ref| <= 1e-6 ||w_r|| ||x_b|| in the tests. */
void tw_matmul_float(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                     int n_threads);
/* The reference: dequantize each row (tw_dequantize_row), accumulate in double. */
void tw_matmul_ref(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C);

/* Weight types whose products tw_matmul computes in llama.cpp's exact float order at every
 * batch size: Q4_1, which llama.cpp's CPU backend never repacks on x86, so its order is
 * ggml's vec_dot (docs/kernels.md, "Matching llama.cpp"). Process-wide switch (default on)
 * for benchmarks of the other paths. */
bool tw_matmul_ggml_order(tw_type type);
void tw_kernels_set_ggml_order(bool on);
/* tw_matmul in llama.cpp's vec_dot order for Q4_1 or Q8_0 weights (other types: tw_matmul).
 * For Q8_0 weights that llama.cpp also leaves unrepacked: a tied output / token embedding
 * (SmolLM2's), which llama.c multiplies with this; Q8_0 layer weights, which llama.cpp
 * repacks into its own interleaved order, go through tw_matmul's faster paths. */
void tw_matmul_ggml(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                    int n_threads);

/* The batch size from which tw_matmul takes the dequantize + sgemm path for W of this
 * type (a per-type table measured on the dev machine with bench/bench_kernels.c, or the
 * override below); INT64_MAX where the integer path is faster at every B (quantized
 * types on AVX-512 VNNI CPUs). tw_matmul_float switches at B = 8. */
int64_t tw_matmul_sgemm_min_b(tw_type type);
/* Override the table process-wide (benchmarks measure both sides; b <= 0 restores the
 * table, INT64_MAX disables the sgemm path). */
void tw_kernels_set_sgemm_min_b(int64_t b);
/* The batch size from which tw_matmul uses the batched integer GEMM for this type on the
 * current path (INT64_MAX: not available for the type or path), and its override (b <= 0
 * restores the table). The sgemm threshold wins when both apply. */
int64_t tw_matmul_int_gemm_min_b(tw_type type);
void tw_kernels_set_int_gemm_min_b(int64_t b);

/* out (C) = row r of W (R, C) dequantized (embedding lookup); bitwise equal to
 * tw_dequantize_row of that row (except that signaling-NaN fp16 values, which no
 * quantizer writes, come out quiet on the F16C path). */
void tw_get_row(float *out, const void *W, tw_type type, int64_t r, int64_t C);

/* ---- threads --------------------------------------------------------------------------- */

/* fn(arg, c, slot) for every chunk c in [0, n_chunks), spread over up to n_threads threads
 * (<= 0: omp_get_max_threads()) of the kernels' thread pool, the caller included; returns
 * when all are done. slot (0 <= slot < n_threads) is unique among the threads running
 * at the same time: an index for per-thread scratch. Each chunk runs exactly once, on
 * whichever thread claims it first, so results that depend only on the chunk index are
 * deterministic. Unlike an OpenMP parallel-for, the caller never waits for a thread that
 * has not started (a preempted worker on a busy machine): it runs the remaining chunks
 * itself. Calls from several threads at once, and nested calls from inside fn, are safe
 * (they run their chunks inline). */
typedef void (*tw_chunk_fn)(void *arg, int64_t chunk, int slot);
void tw_parallel_for(int64_t n_chunks, int n_threads, tw_chunk_fn fn, void *arg);

/* ---- the small ops of a layer ---------------------------------------------------------- */
/* Single-threaded (n is a row: thousands of elements). In-place use (out == x) is allowed
 * where noted. */

/* out (n) = x / sqrt(mean(x^2) + eps) * weight (weight may be NULL: all ones).
 * out may alias x. */
void tw_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps);
/* x (n) <- exp(x - max x) / sum exp(x - max x), in place. n >= 1. -inf entries give 0
 * (masking); all -inf is a caller bug (gives NaN). */
void tw_softmax(float *x, int64_t n);
/* out (n) = silu(gate) * up, silu(g) = g / (1 + exp(-g)). out may alias gate or up. */
void tw_swiglu(float *out, const float *gate, const float *up, int64_t n);
/* out (n) = a + b. out may alias a or b. */
void tw_add(float *out, const float *a, const float *b, int64_t n);

/* RoPE (rotary position embedding) of n_heads heads of head_dim floats, x (n_heads,
 * head_dim), in place, at position pos. Only the first n_rot dims of each head rotate
 * (n_rot even, <= head_dim); the rest are unchanged. Pair i (0 <= i < n_rot/2) turns by
 *     theta_i = freq_scale * pos * theta_base^(-2i / n_rot) / ff_i
 * (ff_i = freq_factors[i] when freq_factors is non-NULL — llama3 scaling, the
 * rope_freqs.weight tensor of n_rot/2 floats — else 1; freq_scale = 1 / rope_scale for
 * linear scaling, else 1): (a, b) <- (a cos - b sin, a sin + b cos), where the pair is
 *   mode 0 (TW_ROPE_NORMAL, llama.cpp LLAMA_ROPE_TYPE_NORM): (x[2i], x[2i+1]);
 *   mode 2 (TW_ROPE_NEOX, LLAMA_ROPE_TYPE_NEOX, HF rotate_half): (x[i], x[i + n_rot/2]).
 * Angles and cos/sin are computed in double, then rounded to float. */
void tw_rope(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float theta_base,
             float freq_scale, const float *freq_factors, int mode);
/* The two halves of tw_rope, to share one table between q and k heads:
 * cs (n_rot) = cos theta_i, sin theta_i interleaved (cs[2i], cs[2i+1]) ... */
void tw_rope_table(float *cs, int64_t n_rot, int64_t pos, float theta_base, float freq_scale,
                   const float *freq_factors);
/* ... and x (n_heads, head_dim) rotated with that table. */
void tw_rope_apply(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float *cs, int mode);

/* Double-precision references of the small ops (tests). */
void tw_rmsnorm_ref(float *out, const float *x, const float *weight, int64_t n, float eps);
void tw_softmax_ref(float *x, int64_t n);
void tw_swiglu_ref(float *out, const float *gate, const float *up, int64_t n);

/* ---- internals shared by kernels.c, kernels_avx2.c and the tests ----------------------- */

/* 8-bit activation blocks, byte for byte ggml's (ggml-common.h): x[i] ~ d * qs[i]. */
typedef struct tw_block_q8a {      /* 32 elements: ggml's block_q8_1 (36 bytes) */
    uint16_t d;                    /* fp16(amax / 127) */
    uint16_t s;                    /* fp16((amax / 127) * sum(qs)), the unrounded d */
    int8_t qs[32];                 /* nearest-even(x * (127 / amax)) */
} tw_block_q8a;
typedef struct tw_block_q8k {      /* 256 elements: ggml's block_q8_K (292 bytes) */
    float d;                       /* 1 / iscale, iscale = -127 / max (max: the element of
                                      largest magnitude, signed, first one on ties) */
    int8_t qs[256];                /* min(127, nearest-even(iscale * x)) */
    int16_t bsums[16];             /* sums of qs over each 16 elements */
} tw_block_q8k;

/* The activation quantizers, bit-identical to ggml's x86 quantize_row_q8_1 (its d and qs
 * are also quantize_row_q8_0's) and quantize_row_q8_K (= quantize_row_q8_K_ref; an
 * all-zero block gets d = 0, qs = 0 and bsums = 0). Scalar and AVX2 versions give the same
 * bytes (tested against a ggml fixture). n a multiple of 32 / 256. */
void tw_quantize_q8a(tw_block_q8a *y, const float *x, int64_t n);
void tw_quantize_q8k(tw_block_q8k *y, const float *x, int64_t n);
/* The activation block type a weight type's integer dot product takes: TW_TYPE_Q8_0
 * (meaning tw_block_q8a, ggml's q8_0 / q8_1) for the legacy types, TW_TYPE_Q8_K
 * (tw_block_q8k) for the k-quants, TW_TYPE_F32 (no rounding) for F32/F16/BF16. */
tw_type tw_matmul_act_type(tw_type wtype);
/* One dot product of a weight row (n elements of wtype) with an activation row in the
 * type above (blocks from tw_quantize_q8a / q8k, or floats), current path (SIMD or
 * scalar). */
float tw_vec_dot(tw_type wtype, const void *w, const void *xa, int64_t n);

/* One implementation of the per-row kernels. kernels.c holds the scalar table and the
 * dispatch; kernels_avx2.c the AVX2+FMA+F16C table (compiled with per-function target
 * attributes, so the build needs no -march flag). */
typedef struct tw_kernel_ops {
    const char *name;                                                      /* "scalar", "avx2" */
    float (*vec_dot)(tw_type wtype, const void *w, const void *xa, int64_t n);
    void (*dequant)(tw_type type, float *dst, const void *src, int64_t n);    /* = tw_get_row's */
    void (*quantize_q8a)(tw_block_q8a *y, const float *x, int64_t n);
    void (*quantize_q8k)(tw_block_q8k *y, const float *x, int64_t n);
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    void (*rmsnorm)(float *out, const float *x, const float *weight, int64_t n, float eps);
    void (*softmax)(float *x, int64_t n);
    void (*swiglu)(float *out, const float *gate, const float *up, int64_t n);
    void (*add)(float *out, const float *a, const float *b, int64_t n);
    /* llama.cpp's float order for Q4_1 / Q8_0 weights (tw_matmul_ggml_order): out[i * nr + k]
     * = the dot of weight row i (i < nw <= 4, rows rb bytes apart from w, nb blocks each)
     * with activation row y[k] (ggml's q8 blocks), k < nr <= 4: per block eight int32
     * lanes of four products, acc_lane = fma(d_w d_x, lane, acc_lane); Q4_1 adds summs =
     * fma(m_w, s_x, summs); then ((a4+a0)+(a6+a2))+((a5+a1)+(a7+a3)) (+ summs). Every path
     * gives the same bits. */
    void (*dot_ggml)(tw_type wtype, float *out, const void *w, size_t rb, int nw, const tw_block_q8a *const *y,
                     int nr, int64_t nb);
} tw_kernel_ops;
const tw_kernel_ops *tw_kernels_scalar_ops(void);
const tw_kernel_ops *tw_kernels_avx2_ops(void);     /* NULL when the CPU (or build) lacks it */
/* The AVX2 table with the legacy types' row dots on AVX-512 VL/BW + VNNI (kernels_avx512.c);
 * NULL when the CPU (or build) lacks it. */
const tw_kernel_ops *tw_kernels_avx512_ops(void);
const tw_kernel_ops *tw_kernels_ops(void);          /* the one in use */

/* The batched integer GEMM of kernels_avx512.c, one tile: out[b * ldo + i] for the
 * activation rows b in [0, B) and the n_rows <= TW_QGEMM_ROWS weight rows i at W (rb bytes
 * apart), C elements each. act: the prepared activations (tw_qgemm_act_bytes(type, C)
 * bytes per row, rows act_row bytes apart, filled by tw_qgemm_prepare_act). scratch:
 * tw_qgemm_scratch_bytes(C) bytes, 64-aligned. Same integer sums as the row dots, scales
 * as ggml; float accumulation per output: sequential over the blocks of the row. */
#define TW_QGEMM_ROWS 16
typedef struct tw_qgemm_ops {
    bool (*supports)(tw_type wtype);
    size_t (*act_bytes)(tw_type wtype, int64_t C);
    void (*prepare_act)(tw_type wtype, void *act, const float *x, int64_t C);
    size_t (*scratch_bytes)(tw_type wtype, int64_t C);
    void (*tile)(float *out, int64_t ldo, const uint8_t *W, size_t rb, tw_type wtype, int64_t n_rows,
                 const uint8_t *act, size_t act_row, int64_t B, int64_t C, void *scratch);
} tw_qgemm_ops;
const tw_qgemm_ops *tw_kernels_avx512_qgemm(void);  /* NULL when the CPU (or build) lacks it */

#endif /* TW_MODEL_KERNELS_H */
