/* ops.h — forward and backward of every op of LoRA / QLoRA training of a llama-family
 * model (llama / qwen2 / qwen3, the forward of src/model/llama.c): embedding lookup,
 * RMSNorm, RoPE (normal and neox), causal GQA attention, SwiGLU, residual add, QKV bias,
 * a frozen linear layer over a weight of any GGUF type, the LoRA linear layer with its
 * dropout, and the output projection + masked cross-entropy.
 *
 * Conventions (llm.c, DESIGN.md): pure functions, output pointer(s) first, dimensions
 * last, a shape comment on each. Each `*_backward` sits next to its `*_forward` and
 * ACCUMULATES into the gradients it writes (dx += ...), so a tensor used twice (the
 * residual stream, the normed input feeding q, k and v) gets the sum of its uses, and
 * gradient accumulation over micro-batches needs no extra buffer. Zero the gradients
 * before the first backward. Activations are float32 row-major; sums that matter (norms,
 * softmax denominators, losses, weight-gradient reductions over tokens) are double.
 * What each forward stores for its backward is written beside it (docs/training.md).
 *
 * A sequence is T tokens of ONE sequence at consecutive positions: attention is causal
 * by index (token i sees tokens 0..i). Positions only enter through the RoPE table
 * (tw_rope_cache), so a sequence may start at any position.
 *
 * Threads: the ops that pay for it (linear backward, LoRA, attention, cross-entropy)
 * spread over tw_parallel_for (kernels.h) with n_threads (<= 0: all OpenMP threads);
 * every output element is computed by one thread in a fixed order, so results do not
 * depend on the thread count. Small element-wise ops are single-threaded.
 *
 * Deliberately not here: the model (which tensors, in what order: the trainer), optimizer
 * (optim.h), memory planning (callers hand in every buffer; the few internal tile buffers
 * fall back to a slower path when malloc fails, so no op can fail), gradients of frozen
 * base weights (never computed: no dW for tw_linear_*), packing several documents into
 * one sequence (needs a segment mask; not supported by the attention here). */
#ifndef TW_TRAIN_OPS_H
#define TW_TRAIN_OPS_H

#include "model/types.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- embedding ------------------------------------------------------------------------ */

/* out (T, C) = rows tokens[t] of W (V, C) of any GGUF type, dequantized (tw_get_row).
 * Stores nothing. */
void tw_embedding_forward(float *out, const int32_t *tokens, const void *W, tw_type type, int64_t T, int64_t C);
/* dW (V, C) += scatter of dout (T, C) into rows tokens[t] (f32 gradient; for completeness:
 * training with frozen embeddings never calls it). */
void tw_embedding_backward(float *dW, const float *dout, const int32_t *tokens, int64_t T, int64_t C);

/* ---- RMSNorm ----------------------------------------------------------------------------- */

/* out (N, C) = x / sqrt(mean(x^2) + eps) * w, w (C) (NULL: ones); rstd (N) gets
 * 1 / sqrt(mean(x^2) + eps) (double sum) for the backward. out must not alias x (the
 * backward needs x). qwen3's per-head Q/K norm is this with N = T * n_head, C = head_dim. */
void tw_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int64_t N, int64_t C, float eps);
/* dx (N, C) += d out / d x applied to dout (N, C):
 *     dx_j += r (w_j dout_j) - x_j r^3 / C * sum_i dout_i w_i x_i       (r = rstd)
 * dw (C) += sum over rows of dout_j x_j r (dw may be NULL: frozen norm weights).
 * x, w, rstd: as given to / written by the forward. */
void tw_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                         int64_t N, int64_t C);

/* ---- RoPE --------------------------------------------------------------------------------- */

/* cs (T, n_rot) = tw_rope_table at positions pos[t] (kernels.h: cos/sin interleaved;
 * llama3 freq_factors, linear freq_scale). One table serves q and k, forward and backward. */
void tw_rope_cache(float *cs, const int32_t *pos, int64_t T, int64_t n_rot, float theta_base, float freq_scale,
                   const float *freq_factors);
/* out (T, n_heads, head_dim) = x rotated by the angles of cs (T, n_rot) in `mode`
 * (TW_ROPE_NORMAL pairs (2i, 2i+1), TW_ROPE_NEOX pairs (i, i + n_rot/2); tw_rope_apply).
 * out may alias x. Stores nothing (the rotation is linear: the backward needs only cs). */
void tw_rope_forward(float *out, const float *x, const float *cs, int64_t T, int64_t n_heads, int64_t head_dim,
                     int64_t n_rot, int mode);
/* dx (T, n_heads, head_dim) += R(-theta) dout: each pair (a, b) of dout rotated back,
 *     da = a cos + b sin,  db = -a sin + b cos;  dims >= n_rot pass through. */
void tw_rope_backward(float *dx, const float *dout, const float *cs, int64_t T, int64_t n_heads, int64_t head_dim,
                      int64_t n_rot, int mode);

/* ---- attention ---------------------------------------------------------------------------- */

/* Causal grouped-query attention (query head h reads KV head h / (n_head / n_head_kv)):
 *   out (T, n_head, D)[i, h] = sum_{j <= i} softmax_j(q_ih . k_j,h' / sqrt(D)) v_j,h'
 * q (T, n_head, D), k and v (T, n_head_kv, D), D <= 512 (llama.c's limit; the row path
 * keeps a row accumulator on the stack). lse (T, n_head) gets the log-sum-exp of
 * each softmax row (the backward recomputes the probabilities from it: no T x T matrix is
 * stored). Blocks of 64 query rows as sgemms (S = Q K^T, causal mask, max-shifted softmax
 * with a double denominator, O = P V); without BLAS (tw_kernels_force_scalar) or when its
 * scratch (T * (n_head_kv * D + 128 * n_threads) floats) cannot be allocated, a row path
 * with an online softmax. The two agree to ~1e-7 relative (docs/training.md). */
void tw_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int64_t T,
                          int64_t n_head, int64_t n_head_kv, int64_t D, int n_threads);
/* dq (T, n_head, D), dk and dv (T, n_head_kv, D) += gradients of out given dout
 * (T, n_head, D). With p_ij = exp(s_ij - lse_i), s_ij = q_i . k_j / sqrt(D):
 *   delta_i = dout_i . out_i,  ds_ij = p_ij (dout_i . v_j - delta_i),
 *   dq_i += sum_j ds_ij k_j / sqrt(D),  dk_j += sum_i ds_ij q_i / sqrt(D),
 *   dv_j += sum_i p_ij dout_i.
 * Two passes (query blocks write dq, key blocks write dk / dv over the group's query
 * heads), each parallel without shared writes. delta (T, n_head) is caller scratch.
 * q, k, v, out, lse: as given to / written by the forward. */
void tw_attention_backward(float *dq, float *dk, float *dv, float *delta, const float *dout, const float *q,
                           const float *k, const float *v, const float *out, const float *lse, int64_t T,
                           int64_t n_head, int64_t n_head_kv, int64_t D, int n_threads);

/* ---- SwiGLU, residual, bias ------------------------------------------------------------------ */

/* out (N) = silu(gate) * up (tw_swiglu). out must not alias gate or up (the backward
 * needs both). Stores nothing. */
void tw_swiglu_forward(float *out, const float *gate, const float *up, int64_t N);
/* dgate (N) += dout * up * silu'(gate), silu'(g) = sig(g) (1 + g (1 - sig(g)));
 * dup (N) += dout * silu(gate). */
void tw_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t N);

/* out (N) = a + b (may alias either). */
void tw_residual_forward(float *out, const float *a, const float *b, int64_t N);
/* da (N) += dout, db (N) += dout (either may be NULL; da == db is allowed: += 2 dout). */
void tw_residual_backward(float *da, float *db, const float *dout, int64_t N);

/* out (T, N) = x (T, N) + bias (N) per row (qwen2 Q/K/V bias); out may alias x. */
void tw_bias_forward(float *out, const float *x, const float *bias, int64_t T, int64_t N);
/* dx (T, N) += dout (NULL: skip); dbias (N) += sum over rows of dout (NULL: frozen bias). */
void tw_bias_backward(float *dx, float *dbias, const float *dout, int64_t T, int64_t N);

/* ---- frozen linear layer --------------------------------------------------------------------- */

/* out (T, R) = x (T, C) · W^T, W (R, C) of any type tw_quant_supported() (kernels.h
 * layout), exact float activations (tw_matmul_float). Stores nothing (the backward needs
 * only W). out must not alias x. */
void tw_linear_forward(float *out, const float *x, const void *W, tw_type type, int64_t T, int64_t R, int64_t C,
                       int n_threads);
/* dx (T, C) += dout (T, R) · W. W is dequantized tile by tile (256 rows times a column
 * block of 128 columns rounded up to the type's block, tw_dequantize_row of the
 * block-aligned slice of each row), never as a whole; each thread owns a column block of
 * dx and multiplies its tiles with tw_sgemm_nt. No dW: the base weights are frozen. */
void tw_linear_backward(float *dx, const float *dout, const void *W, tw_type type, int64_t T, int64_t R, int64_t C,
                        int n_threads);

/* ---- LoRA linear layer ----------------------------------------------------------------------- */

/* Hu et al. 2021; PEFT's Linear.forward: result = base(x) + lora_B(lora_A(dropout(x))) * scaling.
 *   out (T, n_out) = x (T, n_in) · W^T + t · B^T,    t (T, rank) = scale · xd (T, n_in) · A^T
 * with A (rank, n_in), B (n_out, rank) f32, scale = alpha / rank (PEFT), xd the LoRA
 * input after dropout (tw_dropout_forward; pass xd = x when there is none). t is written
 * for the backward (the same quantity as lora.h's tw_lora_apply). out must not alias x,
 * xd or t. */
void tw_lora_linear_forward(float *out, float *t, const float *x, const float *xd, const void *W, tw_type type,
                            const float *A, const float *B, float scale, int64_t T, int64_t n_out, int64_t n_in,
                            int64_t rank, int n_threads);
/* Given dout (T, n_out), with dt = scale · dout · B (T, rank) written to the caller's
 * scratch dt:
 *   dx  (T, n_in)    += dout · W              (the frozen path; dx NULL: skipped)
 *   dxd (T, n_in)    += dt · A                (into the dropout's backward; dxd may equal
 *                                              dx when xd = x)
 *   dA  (rank, n_in) += dt^T · xd
 *   dB  (n_out, rank)+= dout^T · t
 * dA, dB and dt are required; xd, t: as given to / written by the forward. */
void tw_lora_linear_backward(float *dx, float *dxd, float *dA, float *dB, float *dt, const float *dout,
                             const float *xd, const float *t, const void *W, tw_type type, const float *A,
                             const float *B, float scale, int64_t T, int64_t n_out, int64_t n_in, int64_t rank,
                             int n_threads);

/* Inverted dropout with a counter-based mask: element i is kept iff
 * u(seed, i) >= p (u uniform in [0, 1) from a splitmix64 hash of seed and i) and then
 * scaled by 1 / (1 - p). The mask is a function of (seed, i) alone, so the backward
 * regenerates it (nothing stored) and any chunking gives the same mask.
 * out (N) = x masked; out may alias x; p in [0, 1) (p == 0: copy). */
void tw_dropout_forward(float *out, const float *x, float p, uint64_t seed, int64_t N);
/* dx (N) += dout masked and scaled as in the forward with the same (p, seed). */
void tw_dropout_backward(float *dx, const float *dout, float p, uint64_t seed, int64_t N);
/* Whether element i is kept (the mask above; tests and documentation). */
bool tw_dropout_keep(float p, uint64_t seed, int64_t i);

/* ---- output projection + cross-entropy ------------------------------------------------------ */

/* Masked next-token cross-entropy over a vocabulary of V:
 *   loss = sum_t w_t (lse_t - logits[t, targets[t]]),  lse_t = log sum_v exp logits[t, v]
 * returned in double. w (T) are per-token weights: the completion mask divided by the
 * number of unmasked tokens gives the mean over unmasked tokens (HF's ignore_index -100
 * convention); w_t == 0 rows are skipped (lse_t left 0). targets[t] is the token that
 * FOLLOWS position t (the caller shifts). lse (T) stored for the backward. */
double tw_cross_entropy_forward(float *lse, const float *logits, const int32_t *targets, const float *w, int64_t T,
                                int64_t V, int n_threads);
/* dlogits (T, V) += w_t (softmax(logits_t) - onehot(targets[t])). */
void tw_cross_entropy_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                               const float *w, int64_t T, int64_t V, int n_threads);

/* The output projection and the loss fused, so the (T, V) logits never exist at once:
 * the rows with w_t != 0 are gathered `chunk` at a time, projected by W (V, E) of any type
 * (tw_linear_forward; a tied output passes token_embd), their loss added and, when dh is
 * non-NULL, dh (T, E) += dlogits · W (tw_linear_backward) for those rows. Rows with
 * w_t == 0 cost nothing. chunk: 1..64 rows (larger is taken as 64); scratch:
 * chunk * (V + 2 E) floats. Returns the loss as
 * tw_cross_entropy_forward would. */
double tw_output_loss(float *dh, float *scratch, const float *h, const void *W, tw_type type, const int32_t *targets,
                      const float *w, int64_t T, int64_t V, int64_t E, int64_t chunk, int n_threads);

#endif /* TW_TRAIN_OPS_H */
