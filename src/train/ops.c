/* ops.c — forward and backward of the training ops (ops.h): each backward next to its
 * forward, accumulating into gradients.
 *
 * The math follows the forward of src/model/llama.c (transformers' modeling_llama /
 * qwen2 / qwen3) op for op; the derivations are the usual ones (llm.c's layernorm and
 * attention backward, FlashAttention-2's recomputation of the probabilities from the
 * row log-sum-exp, Dao 2023). docs/training.md lists what each op stores.
 *
 * Deliberately not here: model structure, optimizer, memory planning (ops.h). */
#include "train/ops.h"

#include "model/gemm.h"
#include "model/kernels.h"
#include "model/quant.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int resolve_threads(int n) { return n > 0 ? n : omp_get_max_threads(); }


/* ---- embedding ------------------------------------------------------------------------ */

void tw_embedding_forward(float *out, const int32_t *tokens, const void *W, tw_type type, int64_t T, int64_t C)
{
    for (int64_t t = 0; t < T; t++) tw_get_row(out + t * C, W, type, tokens[t], C);
}

void tw_embedding_backward(float *dW, const float *dout, const int32_t *tokens, int64_t T, int64_t C)
{
    for (int64_t t = 0; t < T; t++) {
        float *d = dW + (int64_t)tokens[t] * C;
        const float *g = dout + t * C;
        for (int64_t c = 0; c < C; c++) d[c] += g[c];
    }
}

/* ---- RMSNorm ----------------------------------------------------------------------------- */

void tw_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int64_t N, int64_t C, float eps)
{
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C;
        float *o = out + n * C;
        double ss = 0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        rstd[n] = r;
        for (int64_t c = 0; c < C; c++) o[c] = xr[c] * r * (w ? w[c] : 1.0f);
    }
}

void tw_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                         int64_t N, int64_t C)
{
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *g = dout + n * C;
        float *d = dx + n * C;
        const double r = rstd[n];
        double dot = 0;   /* sum_i dout_i w_i x_i */
        for (int64_t c = 0; c < C; c++) dot += (double)g[c] * (w ? w[c] : 1.0f) * xr[c];
        const float k = (float)(r * r * r * dot / (double)C), rf = (float)r;
        for (int64_t c = 0; c < C; c++) d[c] += rf * (g[c] * (w ? w[c] : 1.0f)) - xr[c] * k;
        if (dw)
            for (int64_t c = 0; c < C; c++) dw[c] += g[c] * xr[c] * rf;
    }
}

/* ---- RoPE --------------------------------------------------------------------------------- */

void tw_rope_cache(float *cs, const int32_t *pos, int64_t T, int64_t n_rot, float theta_base, float freq_scale,
                   const float *freq_factors)
{
    for (int64_t t = 0; t < T; t++) tw_rope_table(cs + t * n_rot, n_rot, pos[t], theta_base, freq_scale, freq_factors);
}

void tw_rope_forward(float *out, const float *x, const float *cs, int64_t T, int64_t n_heads, int64_t head_dim,
                     int64_t n_rot, int mode)
{
    const int64_t row = n_heads * head_dim;
    if (out != x) memcpy(out, x, (size_t)(T * row) * sizeof *out);
    for (int64_t t = 0; t < T; t++) tw_rope_apply(out + t * row, n_heads, head_dim, n_rot, cs + t * n_rot, mode);
}

void tw_rope_backward(float *dx, const float *dout, const float *cs, int64_t T, int64_t n_heads, int64_t head_dim,
                      int64_t n_rot, int mode)
{
    const int64_t half = n_rot / 2, row = n_heads * head_dim;
    for (int64_t t = 0; t < T; t++) {
        const float *c_s = cs + t * n_rot;
        for (int64_t h = 0; h < n_heads; h++) {
            const float *g = dout + t * row + h * head_dim;
            float *d = dx + t * row + h * head_dim;
            for (int64_t i = 0; i < half; i++) {
                const int64_t i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + half : 2 * i + 1;
                const float c = c_s[2 * i], s = c_s[2 * i + 1];
                const float a = g[i0], b = g[i1];
                d[i0] += a * c + b * s;
                d[i1] += b * c - a * s;
            }
            for (int64_t i = n_rot; i < head_dim; i++) d[i] += g[i];
        }
    }
}

/* ---- attention ---------------------------------------------------------------------------- */

#define ATT_MAX_D 512   /* per-row accumulators on the stack; llama.c's limit too */
#define ATT_ROWS 8      /* query (or key) rows per parallel chunk */

typedef struct att_job {
    float *out, *lse, *dq, *dk, *dv, *delta;
    const float *q, *k, *v, *o, *dout, *lse_in;
    int64_t T, H, HKV, D;
    float scale;
    float (*dot)(const float *a, const float *b, int64_t n);
} att_job;

/* chunk = (head h, block of query rows) */
static void att_fwd_chunk(void *arg, int64_t chunk, int slot)
{
    const att_job *j = arg;
    const int64_t nb = (j->T + ATT_ROWS - 1) / ATT_ROWS, h = chunk / nb, i0 = (chunk % nb) * ATT_ROWS;
    const int64_t i1 = i0 + ATT_ROWS < j->T ? i0 + ATT_ROWS : j->T;
    const int64_t D = j->D, hk = h / (j->H / j->HKV), qs = j->H * D, ks = j->HKV * D;
    float acc[ATT_MAX_D];
    for (int64_t i = i0; i < i1; i++) {
        const float *q = j->q + i * qs + h * D;
        float m = -INFINITY;
        double l = 0;
        for (int64_t d = 0; d < D; d++) acc[d] = 0;
        for (int64_t t = 0; t <= i; t++) {   /* online softmax (Milakov & Gimelshein 2018) */
            const float *k = j->k + t * ks + hk * D, *v = j->v + t * ks + hk * D;
            const float s = j->dot(q, k, D) * j->scale;
            if (s > m) {
                const float r = expf(m - s);   /* m = -inf at first: r = 0 */
                l *= r;
                for (int64_t d = 0; d < D; d++) acc[d] *= r;
                m = s;
            }
            const float p = expf(s - m);
            l += p;
            for (int64_t d = 0; d < D; d++) acc[d] += p * v[d];
        }
        float *o = j->out + i * qs + h * D;
        const float inv = (float)(1.0 / l);
        for (int64_t d = 0; d < D; d++) o[d] = acc[d] * inv;
        j->lse[i * j->H + h] = m + (float)log(l);
    }
}

static void att_forward_rows(float *out, float *lse, const float *q, const float *k, const float *v, int64_t T,
                             int64_t n_head, int64_t n_head_kv, int64_t D, int n_threads)
{
    att_job j = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .T = T, .H = n_head, .HKV = n_head_kv, .D = D,
                 .scale = 1.0f / sqrtf((float)D), .dot = tw_kernels_ops()->dot_f32};
    const int64_t nb = (T + ATT_ROWS - 1) / ATT_ROWS;
    tw_parallel_for(n_head * nb, resolve_threads(n_threads), att_fwd_chunk, &j);
}

/* pass 1: chunk = (head h, block of query rows): delta_i and dq_i */
static void att_bwd_q_chunk(void *arg, int64_t chunk, int slot)
{
    const att_job *j = arg;
    const int64_t nb = (j->T + ATT_ROWS - 1) / ATT_ROWS, h = chunk / nb, i0 = (chunk % nb) * ATT_ROWS;
    const int64_t i1 = i0 + ATT_ROWS < j->T ? i0 + ATT_ROWS : j->T;
    const int64_t D = j->D, hk = h / (j->H / j->HKV), qs = j->H * D, ks = j->HKV * D;
    for (int64_t i = i0; i < i1; i++) {
        const float *q = j->q + i * qs + h * D, *g = j->dout + i * qs + h * D;
        float *dq = j->dq + i * qs + h * D;
        const float delta = j->dot(g, j->o + i * qs + h * D, D), lse = j->lse_in[i * j->H + h];
        j->delta[i * j->H + h] = delta;
        for (int64_t t = 0; t <= i; t++) {
            const float *k = j->k + t * ks + hk * D, *v = j->v + t * ks + hk * D;
            const float p = expf(j->dot(q, k, D) * j->scale - lse);
            const float ds = p * (j->dot(g, v, D) - delta) * j->scale;
            for (int64_t d = 0; d < D; d++) dq[d] += ds * k[d];
        }
    }
}

/* pass 2: chunk = (KV head hk, block of key rows): dk_t and dv_t over the group's heads */
static void att_bwd_kv_chunk(void *arg, int64_t chunk, int slot)
{
    const att_job *j = arg;
    const int64_t nb = (j->T + ATT_ROWS - 1) / ATT_ROWS, hk = chunk / nb, t0 = (chunk % nb) * ATT_ROWS;
    const int64_t t1 = t0 + ATT_ROWS < j->T ? t0 + ATT_ROWS : j->T;
    const int64_t D = j->D, group = j->H / j->HKV, qs = j->H * D, ks = j->HKV * D;
    for (int64_t t = t0; t < t1; t++) {
        const float *k = j->k + t * ks + hk * D, *v = j->v + t * ks + hk * D;
        float *dk = j->dk + t * ks + hk * D, *dv = j->dv + t * ks + hk * D;
        for (int64_t g = 0; g < group; g++) {
            const int64_t h = hk * group + g;
            for (int64_t i = t; i < j->T; i++) {
                const float *q = j->q + i * qs + h * D, *go = j->dout + i * qs + h * D;
                const float p = expf(j->dot(q, k, D) * j->scale - j->lse_in[i * j->H + h]);
                const float ds = p * (j->dot(go, v, D) - j->delta[i * j->H + h]) * j->scale;
                for (int64_t d = 0; d < D; d++) {
                    dv[d] += p * go[d];
                    dk[d] += ds * q[d];
                }
            }
        }
    }
}

static void att_backward_rows(float *dq, float *dk, float *dv, float *delta, const float *dout, const float *q,
                              const float *k, const float *v, const float *out, const float *lse, int64_t T,
                              int64_t n_head, int64_t n_head_kv, int64_t D, int n_threads)
{
    att_job j = {.dq = dq, .dk = dk, .dv = dv, .delta = delta, .q = q, .k = k, .v = v, .o = out, .dout = dout,
                 .lse_in = lse, .T = T, .H = n_head, .HKV = n_head_kv, .D = D, .scale = 1.0f / sqrtf((float)D),
                 .dot = tw_kernels_ops()->dot_f32};
    const int64_t nb = (T + ATT_ROWS - 1) / ATT_ROWS;
    const int nt = resolve_threads(n_threads);
    tw_parallel_for(n_head * nb, nt, att_bwd_q_chunk, &j);
    tw_parallel_for(n_head_kv * nb, nt, att_bwd_kv_chunk, &j);
}

/* The same attention as matrix products (tw_sgemm_nt on blocks of ATT_BQ query or key
 * rows), used whenever its scratch can be allocated and the kernels are not forced
 * scalar (tw_kernels_force_scalar): per chunk a score block S (rows, keys) is one sgemm,
 * the mask / softmax / recomputed probabilities are row loops, and the products with V,
 * K, Q, dout are sgemms against transposed copies (X^T (heads, D, T), made once per call).
 * Chunks write disjoint outputs (query blocks: out, dq; key blocks: dk, dv), so the result
 * does not depend on the thread count. */
#define ATT_BQ 64

typedef struct att_mm_job {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *o, *dout, *lse_in, *delta;
    const float *Vt, *Kt, *Qt, *dOt;   /* (heads, D, T) */
    float *scratch;                    /* per slot: 2 * ATT_BQ * T */
    int64_t T, H, HKV, D;
    float scale;
} att_mm_job;

static void att_mm_fwd_chunk(void *arg, int64_t chunk, int slot)
{
    const att_mm_job *j = arg;
    const int64_t T = j->T, D = j->D, nb = (T + ATT_BQ - 1) / ATT_BQ, h = chunk / nb, i0 = (chunk % nb) * ATT_BQ;
    const int64_t i1 = i0 + ATT_BQ < T ? i0 + ATT_BQ : T, ni = i1 - i0, nj = i1;
    const int64_t hk = h / (j->H / j->HKV), qs = j->H * D, ks = j->HKV * D;
    float *S = j->scratch + (size_t)slot * 2 * ATT_BQ * (size_t)T;
    /* S (ni, nj) = Q[i0:i1, h] · K[0:nj, hk]^T */
    tw_sgemm_nt(S, nj, j->q + i0 * qs + h * D, qs, j->k + hk * D, ks, ni, nj, D, false);
    for (int64_t r = 0; r < ni; r++) {
        float *sr = S + r * nj;
        const int64_t last = i0 + r;   /* keys 0..last visible */
        float m = -INFINITY;
        for (int64_t t = 0; t <= last; t++) {
            sr[t] *= j->scale;
            m = sr[t] > m ? sr[t] : m;
        }
        double l = 0;
        for (int64_t t = 0; t <= last; t++) l += (sr[t] = expf(sr[t] - m));
        const float inv = (float)(1.0 / l);
        for (int64_t t = 0; t <= last; t++) sr[t] *= inv;
        for (int64_t t = last + 1; t < nj; t++) sr[t] = 0;
        j->lse[(i0 + r) * j->H + h] = m + (float)log(l);
    }
    /* out[i0:i1, h] (ni, D) = P (ni, nj) · V[0:nj, hk] = P · (Vt[hk][:, 0:nj])^T */
    tw_sgemm_nt(j->out + i0 * qs + h * D, qs, S, nj, j->Vt + hk * D * T, T, ni, D, nj, false);
}

/* (T, heads, D) rows of stride `stride` -> (heads, D, T) */
static void transpose_heads(float *dst, const float *src, int64_t T, int64_t heads, int64_t D, int64_t stride)
{
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < heads; h++) {
            const float *s = src + t * stride + h * D;
            float *d = dst + h * D * T + t;
            for (int64_t e = 0; e < D; e++) d[e * T] = s[e];
        }
}

static bool att_mm_enabled(void) { return tw_kernels_simd(); }

void tw_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v, int64_t T,
                          int64_t n_head, int64_t n_head_kv, int64_t D, int n_threads)
{
    if (T <= 0) return;
    const int nt = resolve_threads(n_threads);
    float *buf = att_mm_enabled() ? malloc(((size_t)T * (size_t)(n_head_kv * D) + (size_t)nt * 2 * ATT_BQ * (size_t)T) *
                                           sizeof(float))
                                  : NULL;
    if (!buf) {
        att_forward_rows(out, lse, q, k, v, T, n_head, n_head_kv, D, n_threads);
        return;
    }
    float *Vt = buf;
    transpose_heads(Vt, v, T, n_head_kv, D, n_head_kv * D);
    att_mm_job j = {.out = out, .lse = lse, .q = q, .k = k, .v = v, .Vt = Vt, .scratch = Vt + T * n_head_kv * D,
                    .T = T, .H = n_head, .HKV = n_head_kv, .D = D, .scale = 1.0f / sqrtf((float)D)};
    tw_parallel_for(n_head * ((T + ATT_BQ - 1) / ATT_BQ), nt, att_mm_fwd_chunk, &j);
    free(buf);
}

/* pass 1: chunk = (head h, query block): dq */
static void att_mm_bwd_q_chunk(void *arg, int64_t chunk, int slot)
{
    const att_mm_job *j = arg;
    const int64_t T = j->T, D = j->D, nb = (T + ATT_BQ - 1) / ATT_BQ, h = chunk / nb, i0 = (chunk % nb) * ATT_BQ;
    const int64_t i1 = i0 + ATT_BQ < T ? i0 + ATT_BQ : T, ni = i1 - i0, nj = i1;
    const int64_t hk = h / (j->H / j->HKV), qs = j->H * D, ks = j->HKV * D;
    float *S = j->scratch + (size_t)slot * 2 * ATT_BQ * (size_t)T, *dP = S + ATT_BQ * T;
    tw_sgemm_nt(S, nj, j->q + i0 * qs + h * D, qs, j->k + hk * D, ks, ni, nj, D, false);
    tw_sgemm_nt(dP, nj, j->dout + i0 * qs + h * D, qs, j->v + hk * D, ks, ni, nj, D, false);
    for (int64_t r = 0; r < ni; r++) {
        const int64_t i = i0 + r;
        float *sr = S + r * nj;
        const float *dpr = dP + r * nj;
        const float lse = j->lse_in[i * j->H + h], delta = j->delta[i * j->H + h];
        for (int64_t t = 0; t <= i; t++) sr[t] = expf(sr[t] * j->scale - lse) * (dpr[t] - delta) * j->scale;
        for (int64_t t = i + 1; t < nj; t++) sr[t] = 0;
    }
    /* dq[i0:i1, h] += dS (ni, nj) · K[0:nj, hk] = dS · (Kt[hk][:, 0:nj])^T */
    tw_sgemm_nt(j->dq + i0 * qs + h * D, qs, S, nj, j->Kt + hk * D * T, T, ni, D, nj, true);
}

/* pass 2: chunk = (KV head hk, key block): dk, dv over the group's query heads */
static void att_mm_bwd_kv_chunk(void *arg, int64_t chunk, int slot)
{
    const att_mm_job *j = arg;
    const int64_t T = j->T, D = j->D, nb = (T + ATT_BQ - 1) / ATT_BQ, hk = chunk / nb, t0 = (chunk % nb) * ATT_BQ;
    const int64_t t1 = t0 + ATT_BQ < T ? t0 + ATT_BQ : T, nt_ = t1 - t0, nq = T - t0;
    const int64_t group = j->H / j->HKV, qs = j->H * D, ks = j->HKV * D;
    float *PT = j->scratch + (size_t)slot * 2 * ATT_BQ * (size_t)T, *dPT = PT + ATT_BQ * T;
    for (int64_t g = 0; g < group; g++) {
        const int64_t h = hk * group + g;
        /* S^T (nt_, nq) = K[t0:t1, hk] · Q[t0:T, h]^T ; dP^T = V[t0:t1, hk] · dout[t0:T, h]^T */
        tw_sgemm_nt(PT, nq, j->k + t0 * ks + hk * D, ks, j->q + t0 * qs + h * D, qs, nt_, nq, D, false);
        tw_sgemm_nt(dPT, nq, j->v + t0 * ks + hk * D, ks, j->dout + t0 * qs + h * D, qs, nt_, nq, D, false);
        for (int64_t a = 0; a < nt_; a++) {   /* key t0 + a is seen by queries i = t0 + b, b >= a */
            float *pr = PT + a * nq, *dpr = dPT + a * nq;
            for (int64_t b = 0; b < a; b++) pr[b] = dpr[b] = 0;
            for (int64_t b = a; b < nq; b++) {
                const int64_t i = t0 + b;
                const float p = expf(pr[b] * j->scale - j->lse_in[i * j->H + h]);
                pr[b] = p;
                dpr[b] = p * (dpr[b] - j->delta[i * j->H + h]) * j->scale;
            }
        }
        /* dv[t0:t1, hk] += P^T (nt_, nq) · dout[t0:T, h];  dk[t0:t1, hk] += dS^T · Q[t0:T, h] */
        tw_sgemm_nt(j->dv + t0 * ks + hk * D, ks, PT, nq, j->dOt + h * D * T + t0, T, nt_, D, nq, true);
        tw_sgemm_nt(j->dk + t0 * ks + hk * D, ks, dPT, nq, j->Qt + h * D * T + t0, T, nt_, D, nq, true);
    }
}

void tw_attention_backward(float *dq, float *dk, float *dv, float *delta, const float *dout, const float *q,
                           const float *k, const float *v, const float *out, const float *lse, int64_t T,
                           int64_t n_head, int64_t n_head_kv, int64_t D, int n_threads)
{
    if (T <= 0) return;
    const int nt = resolve_threads(n_threads);
    const size_t nq = (size_t)T * (size_t)(n_head * D), nkv = (size_t)T * (size_t)(n_head_kv * D);
    float *buf = att_mm_enabled() ? malloc((2 * nq + nkv + (size_t)nt * 2 * ATT_BQ * (size_t)T) * sizeof(float)) : NULL;
    if (!buf) {
        att_backward_rows(dq, dk, dv, delta, dout, q, k, v, out, lse, T, n_head, n_head_kv, D, n_threads);
        return;
    }
    const tw_kernel_ops *ops = tw_kernels_ops();
    const int64_t qs = n_head * D;
    for (int64_t i = 0; i < T; i++)   /* delta_ih = dout_ih . out_ih */
        for (int64_t h = 0; h < n_head; h++)
            delta[i * n_head + h] = ops->dot_f32(dout + i * qs + h * D, out + i * qs + h * D, D);
    float *Qt = buf, *dOt = Qt + nq, *Kt = dOt + nq;
    transpose_heads(Qt, q, T, n_head, D, qs);
    transpose_heads(dOt, dout, T, n_head, D, qs);
    transpose_heads(Kt, k, T, n_head_kv, D, n_head_kv * D);
    att_mm_job j = {.dq = dq, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .dout = dout, .lse_in = lse, .delta = delta,
                    .Kt = Kt, .Qt = Qt, .dOt = dOt, .scratch = Kt + nkv, .T = T, .H = n_head, .HKV = n_head_kv, .D = D,
                    .scale = 1.0f / sqrtf((float)D)};
    const int64_t nb = (T + ATT_BQ - 1) / ATT_BQ;
    tw_parallel_for(n_head * nb, nt, att_mm_bwd_q_chunk, &j);
    tw_parallel_for(n_head_kv * nb, nt, att_mm_bwd_kv_chunk, &j);
    free(buf);
}

/* ---- SwiGLU, residual, bias ------------------------------------------------------------------ */

void tw_swiglu_forward(float *out, const float *gate, const float *up, int64_t N) { tw_swiglu(out, gate, up, N); }

void tw_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int64_t N)
{
    for (int64_t i = 0; i < N; i++) {
        const float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
        dgate[i] += dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
        dup[i] += dout[i] * silu;
    }
}

void tw_residual_forward(float *out, const float *a, const float *b, int64_t N) { tw_add(out, a, b, N); }

void tw_residual_backward(float *da, float *db, const float *dout, int64_t N)
{
    if (da)
        for (int64_t i = 0; i < N; i++) da[i] += dout[i];
    if (db)
        for (int64_t i = 0; i < N; i++) db[i] += dout[i];
}

void tw_bias_forward(float *out, const float *x, const float *bias, int64_t T, int64_t N)
{
    for (int64_t t = 0; t < T; t++) tw_add(out + t * N, x + t * N, bias, N);
}

void tw_bias_backward(float *dx, float *dbias, const float *dout, int64_t T, int64_t N)
{
    if (dx)
        for (int64_t i = 0; i < T * N; i++) dx[i] += dout[i];
    if (dbias)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++) s += dout[t * N + n];
            dbias[n] += (float)s;
        }
}

/* ---- frozen linear layer --------------------------------------------------------------------- */

void tw_linear_forward(float *out, const float *x, const void *W, tw_type type, int64_t T, int64_t R, int64_t C,
                       int n_threads)
{
    tw_matmul_float(out, x, W, type, T, R, C, n_threads);
}

#define LIN_TILE_ROWS 256   /* rows of W per tile: the K of each sgemm */

typedef struct lin_bwd_job {
    float *dx;
    const float *dout;
    const unsigned char *W;
    tw_type type;
    int64_t T, R, C, cb;   /* cb: columns per chunk, a multiple of the type's block */
    size_t rb;             /* bytes per row of W */
    float *scratch;        /* per slot: LIN_TILE_ROWS * cb (transposed tile) + cb (row); may be NULL */
} lin_bwd_job;

/* chunk = a block of columns [c0, c1) of dx (and of W): dx[:, c0:c1] += dout · W[:, c0:c1] */
static void lin_bwd_chunk(void *arg, int64_t chunk, int slot)
{
    const lin_bwd_job *j = arg;
    const int64_t c0 = chunk * j->cb, c1 = c0 + j->cb < j->C ? c0 + j->cb : j->C, nc = c1 - c0;
    const size_t off = tw_type_row_bytes(j->type, (uint64_t)c0);
    if (j->scratch) {
        float *wt = j->scratch + (size_t)slot * (size_t)(LIN_TILE_ROWS + 1) * (size_t)j->cb, *row = wt + LIN_TILE_ROWS * j->cb;
        for (int64_t r0 = 0; r0 < j->R; r0 += LIN_TILE_ROWS) {
            const int64_t nr = j->R - r0 < LIN_TILE_ROWS ? j->R - r0 : LIN_TILE_ROWS;
            for (int64_t r = 0; r < nr; r++) {   /* wt (nc, nr) = W[r0:r0+nr, c0:c1]^T */
                tw_dequantize_row(j->type, row, j->W + (size_t)(r0 + r) * j->rb + off, nc);
                for (int64_t c = 0; c < nc; c++) wt[c * nr + r] = row[c];
            }
            /* dx[:, c0:c1] (T, nc) += dout[:, r0:r0+nr] (T, nr) · wt (nc, nr)^T */
            tw_sgemm_nt(j->dx + c0, j->C, j->dout + r0, j->R, wt, nr, j->T, nc, nr, true);
        }
        return;
    }
    /* no scratch (allocation failed): one block-aligned slice of a row at a time */
    float row[256];
    const int64_t blk = (int64_t)tw_type_get(j->type)->block;
    const int64_t step = blk > 256 ? blk : 256 / blk * blk;
    for (int64_t r = 0; r < j->R; r++)
        for (int64_t s0 = c0; s0 < c1; s0 += step) {
            const int64_t ns = c1 - s0 < step ? c1 - s0 : step;
            tw_dequantize_row(j->type, row, j->W + (size_t)r * j->rb + tw_type_row_bytes(j->type, (uint64_t)s0), ns);
            for (int64_t t = 0; t < j->T; t++) {
                const float g = j->dout[t * j->R + r];
                float *d = j->dx + t * j->C + s0;
                for (int64_t c = 0; c < ns; c++) d[c] += g * row[c];
            }
        }
}

void tw_linear_backward(float *dx, const float *dout, const void *W, tw_type type, int64_t T, int64_t R, int64_t C,
                        int n_threads)
{
    if (T <= 0 || R <= 0 || C <= 0) return;
    const int nt = resolve_threads(n_threads);
    const int64_t blk = (int64_t)tw_type_get(type)->block;
    /* column blocks of 64 columns rounded up to the type's block (256 for k-quants): a
     * function of the type alone, so the sgemm calls, and the rounding, do not depend on
     * the thread count (C = 576: 9 blocks for 2 threads) */
    int64_t cb = (128 + blk - 1) / blk * blk;
    if (cb > C) cb = C;
    lin_bwd_job j = {.dx = dx, .dout = dout, .W = W, .type = type, .T = T, .R = R, .C = C, .cb = cb,
                     .rb = tw_type_row_bytes(type, (uint64_t)C)};
    /* the fallback row buffer holds 256 floats: only block sizes <= 256 (all GGUF types) */
    j.scratch = malloc((size_t)nt * (size_t)(LIN_TILE_ROWS + 1) * (size_t)cb * sizeof(float));
    tw_parallel_for((C + cb - 1) / cb, nt, lin_bwd_chunk, &j);
    free(j.scratch);
}

/* ---- LoRA linear layer ----------------------------------------------------------------------- */

#define LORA_ROWS 16   /* token rows per parallel chunk */

typedef struct lora_job {
    float *out, *t, *dx, *dA, *dB, *dt;
    const float *x, *xd, *A, *B, *dout, *t_in;
    float scale;
    int64_t T, n_out, n_in, rank, cb;
} lora_job;

/* forward, chunk = block of token rows: t = scale · xd · A^T; out += t · B^T */
static void lora_fwd_chunk(void *arg, int64_t chunk, int slot)
{
    const lora_job *j = arg;
    const int64_t r0 = chunk * LORA_ROWS, nr = j->T - r0 < LORA_ROWS ? j->T - r0 : LORA_ROWS;
    float *t = j->t + r0 * j->rank;
    tw_sgemm_nt(t, j->rank, j->xd + r0 * j->n_in, j->n_in, j->A, j->n_in, nr, j->rank, j->n_in, false);
    for (int64_t i = 0; i < nr * j->rank; i++) t[i] *= j->scale;
    tw_sgemm_nt(j->out + r0 * j->n_out, j->n_out, t, j->rank, j->B, j->rank, nr, j->n_out, j->rank, true);
}

void tw_lora_linear_forward(float *out, float *t, const float *x, const float *xd, const void *W, tw_type type,
                            const float *A, const float *B, float scale, int64_t T, int64_t n_out, int64_t n_in,
                            int64_t rank, int n_threads)
{
    if (T <= 0) return;
    tw_linear_forward(out, x, W, type, T, n_out, n_in, n_threads);
    lora_job j = {.out = out, .t = t, .xd = xd, .A = A, .B = B, .scale = scale, .T = T, .n_out = n_out,
                  .n_in = n_in, .rank = rank};
    tw_parallel_for((T + LORA_ROWS - 1) / LORA_ROWS, resolve_threads(n_threads), lora_fwd_chunk, &j);
}

/* backward 1, chunk = block of token rows: dt = scale · dout · B (rank accumulators in double) */
static void lora_bwd_dt_chunk(void *arg, int64_t chunk, int slot)
{
    const lora_job *j = arg;
    const int64_t r0 = chunk * LORA_ROWS, r1 = r0 + LORA_ROWS < j->T ? r0 + LORA_ROWS : j->T;
    for (int64_t b = r0; b < r1; b++) {
        float *dt = j->dt + b * j->rank;
        for (int64_t k = 0; k < j->rank; k++) dt[k] = 0;
        const float *g = j->dout + b * j->n_out;
        for (int64_t o = 0; o < j->n_out; o++) {
            const float go = g[o] * j->scale, *Bo = j->B + o * j->rank;
            for (int64_t k = 0; k < j->rank; k++) dt[k] += go * Bo[k];
        }
    }
}

/* backward 2, chunk = block of token rows: dxd += dt · A */
static void lora_bwd_dxd_chunk(void *arg, int64_t chunk, int slot)
{
    const lora_job *j = arg;
    const int64_t r0 = chunk * LORA_ROWS, r1 = r0 + LORA_ROWS < j->T ? r0 + LORA_ROWS : j->T;
    for (int64_t b = r0; b < r1; b++) {
        float *d = j->dx + b * j->n_in;
        for (int64_t k = 0; k < j->rank; k++) {
            const float g = j->dt[b * j->rank + k], *Ak = j->A + k * j->n_in;
            for (int64_t c = 0; c < j->n_in; c++) d[c] += g * Ak[c];
        }
    }
}

/* backward 3, chunk = block of columns of A: dA[:, c0:c1] += dt^T · xd[:, c0:c1] */
static void lora_bwd_dA_chunk(void *arg, int64_t chunk, int slot)
{
    const lora_job *j = arg;
    const int64_t c0 = chunk * j->cb, c1 = c0 + j->cb < j->n_in ? c0 + j->cb : j->n_in;
    for (int64_t k = 0; k < j->rank; k++) {
        float *d = j->dA + k * j->n_in;
        for (int64_t b = 0; b < j->T; b++) {
            const float g = j->dt[b * j->rank + k], *xr = j->xd + b * j->n_in;
            for (int64_t c = c0; c < c1; c++) d[c] += g * xr[c];
        }
    }
}

/* backward 4, chunk = block of rows of B: dB[o, :] += sum_b dout[b, o] t[b, :] (double) */
static void lora_bwd_dB_chunk(void *arg, int64_t chunk, int slot)
{
    const lora_job *j = arg;
    const int64_t o0 = chunk * j->cb, o1 = o0 + j->cb < j->n_out ? o0 + j->cb : j->n_out;
    double acc[256];
    for (int64_t o = o0; o < o1; o++)
        for (int64_t k0 = 0; k0 < j->rank; k0 += 256) {
            const int64_t nk = j->rank - k0 < 256 ? j->rank - k0 : 256;
            for (int64_t k = 0; k < nk; k++) acc[k] = 0;
            for (int64_t b = 0; b < j->T; b++) {
                const double g = j->dout[b * j->n_out + o];
                const float *tr = j->t_in + b * j->rank + k0;
                for (int64_t k = 0; k < nk; k++) acc[k] += g * tr[k];
            }
            for (int64_t k = 0; k < nk; k++) j->dB[o * j->rank + k0 + k] += (float)acc[k];
        }
}

void tw_lora_linear_backward(float *dx, float *dxd, float *dA, float *dB, float *dt, const float *dout,
                             const float *xd, const float *t, const void *W, tw_type type, const float *A,
                             const float *B, float scale, int64_t T, int64_t n_out, int64_t n_in, int64_t rank,
                             int n_threads)
{
    if (T <= 0) return;
    const int nt = resolve_threads(n_threads);
    const int64_t nrb = (T + LORA_ROWS - 1) / LORA_ROWS;
    lora_job j = {.dx = dxd, .dA = dA, .dB = dB, .dt = dt, .xd = xd, .A = A, .B = B, .dout = dout, .t_in = t,
                  .scale = scale, .T = T, .n_out = n_out, .n_in = n_in, .rank = rank};
    tw_parallel_for(nrb, nt, lora_bwd_dt_chunk, &j);
    j.cb = 64;
    tw_parallel_for((n_out + j.cb - 1) / j.cb, nt, lora_bwd_dB_chunk, &j);
    tw_parallel_for((n_in + j.cb - 1) / j.cb, nt, lora_bwd_dA_chunk, &j);
    if (dxd) tw_parallel_for(nrb, nt, lora_bwd_dxd_chunk, &j);
    if (dx) tw_linear_backward(dx, dout, W, type, T, n_out, n_in, n_threads);
}

/* ---- dropout ---------------------------------------------------------------------------------- */

/* splitmix64 finalizer (Steele, Lea, Flood 2014) of seed and index: a counter-based stream */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

bool tw_dropout_keep(float p, uint64_t seed, int64_t i)
{
    if (p <= 0) return true;
    const uint64_t h = mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) + (uint64_t)i * 0x9e3779b97f4a7c15ULL);
    const double u = (double)(h >> 11) * (1.0 / 9007199254740992.0);   /* 53 bits -> [0, 1) */
    return u >= (double)p;
}

void tw_dropout_forward(float *out, const float *x, float p, uint64_t seed, int64_t N)
{
    if (p <= 0) {
        if (out != x) memcpy(out, x, (size_t)N * sizeof *out);
        return;
    }
    const float k = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < N; i++) out[i] = tw_dropout_keep(p, seed, i) ? x[i] * k : 0.0f;
}

void tw_dropout_backward(float *dx, const float *dout, float p, uint64_t seed, int64_t N)
{
    const float k = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    for (int64_t i = 0; i < N; i++)
        if (tw_dropout_keep(p, seed, i)) dx[i] += dout[i] * k;
}

/* ---- cross-entropy ------------------------------------------------------------------------------ */

typedef struct ce_job {
    float *lse, *dlogits;
    const float *logits, *w, *lse_in;
    const int32_t *targets;
    int64_t T, V;
} ce_job;

static void ce_fwd_chunk(void *arg, int64_t t, int slot)
{
    const ce_job *j = arg;
    if (j->w[t] == 0) {
        j->lse[t] = 0;
        return;
    }
    const float *z = j->logits + t * j->V;
    float m = z[0];
    for (int64_t v = 1; v < j->V; v++) m = z[v] > m ? z[v] : m;
    double s = 0;
    for (int64_t v = 0; v < j->V; v++) s += exp((double)z[v] - m);
    j->lse[t] = (float)(m + log(s));
}

double tw_cross_entropy_forward(float *lse, const float *logits, const int32_t *targets, const float *w, int64_t T,
                                int64_t V, int n_threads)
{
    ce_job j = {.lse = lse, .logits = logits, .w = w, .targets = targets, .T = T, .V = V};
    tw_parallel_for(T, resolve_threads(n_threads), ce_fwd_chunk, &j);
    double loss = 0;   /* summed in order: independent of the threads */
    for (int64_t t = 0; t < T; t++)
        if (w[t] != 0) loss += (double)w[t] * ((double)lse[t] - logits[t * V + targets[t]]);
    return loss;
}

static void ce_bwd_chunk(void *arg, int64_t t, int slot)
{
    const ce_job *j = arg;
    const float wt = j->w[t];
    if (wt == 0) return;
    const float *z = j->logits + t * j->V;
    float *d = j->dlogits + t * j->V;
    const float l = j->lse_in[t];
    for (int64_t v = 0; v < j->V; v++) d[v] += wt * expf(z[v] - l);
    d[j->targets[t]] -= wt;
}

void tw_cross_entropy_backward(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                               const float *w, int64_t T, int64_t V, int n_threads)
{
    ce_job j = {.dlogits = dlogits, .logits = logits, .w = w, .lse_in = lse, .targets = targets, .T = T, .V = V};
    tw_parallel_for(T, resolve_threads(n_threads), ce_bwd_chunk, &j);
}

double tw_output_loss(float *dh, float *scratch, const float *h, const void *W, tw_type type, const int32_t *targets,
                      const float *w, int64_t T, int64_t V, int64_t E, int64_t chunk, int n_threads)
{
    if (chunk < 1) chunk = 1;
    float *logits = scratch, *hc = scratch + chunk * V, *dhc = hc + chunk * E;
    float lse[64], wc[64];
    int32_t tg[64];
    int64_t rows[64];
    const int64_t cmax = chunk < 64 ? chunk : 64;   /* per-row bookkeeping on the stack: <= 64 rows */
    double loss = 0;
    int64_t t = 0;
    while (t < T) {
        int64_t n = 0;
        for (; t < T && n < cmax; t++) {
            if (w[t] == 0) continue;
            rows[n] = t;
            tg[n] = targets[t];
            wc[n] = w[t];
            memcpy(hc + n * E, h + t * E, (size_t)E * sizeof *hc);
            n++;
        }
        if (n == 0) break;
        tw_linear_forward(logits, hc, W, type, n, V, E, n_threads);
        loss += tw_cross_entropy_forward(lse, logits, tg, wc, n, V, n_threads);
        if (!dh) continue;
        /* dlogits in place of the logits: softmax - onehot, weighted */
        for (int64_t i = 0; i < n; i++) {
            float *z = logits + i * V;
            for (int64_t v = 0; v < V; v++) z[v] = wc[i] * expf(z[v] - lse[i]);
            z[tg[i]] -= wc[i];
        }
        memset(dhc, 0, (size_t)(n * E) * sizeof *dhc);
        tw_linear_backward(dhc, logits, W, type, n, V, E, n_threads);
        for (int64_t i = 0; i < n; i++) {
            float *d = dh + rows[i] * E;
            const float *s = dhc + i * E;
            for (int64_t e = 0; e < E; e++) d[e] += s[e];
        }
    }
    return loss;
}
