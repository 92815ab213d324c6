/* test_train_ops.c — the training ops (src/train/ops.h) against three oracles:
 *
 *  1. Finite differences in DOUBLE: each op has a straightforward double-precision
 *     reference forward written here; the gradient of L = sum r . y (r random) by central
 *     differences (h = 1e-5 on inputs of size ~1: truncation ~1e-10, rounding ~1e-11) is
 *     compared with the float op's backward given dout = r. Tolerance per op: max |g - fd|
 *     <= 2e-5 x max |fd| (float32 backward, sums of <= a few hundred terms: ~1e-6
 *     measured, see docs/training.md). Random small shapes, GQA (n_head 4, n_kv 2), odd T,
 *     partial RoPE (n_rot < head_dim), weights of every GGUF type for the frozen linear.
 *  2. The composed model: a 2-layer forward built from these ops equals
 *     src/model/llama.c's logits (tw_llama_forward, TW_MATMUL_FLOAT, f32 KV cache) on the
 *     tiny HF models of tests/data/llama (llama, llama3 rope, qwen2 bias, qwen3 q/k norm).
 *  3. torch + transformers + PEFT (tests/ref/gen_train_fixtures.py): the loss and every
 *     LoRA A / B gradient of the same models with a fixed LoRA and a completion mask; and
 *     finite differences of the whole model's float loss for a sample of LoRA entries
 *     (also with the base weights quantized to Q8_0: QLoRA).
 */
#include "testutil.h"

#include "model/config.h"
#include "model/kernels.h"
#include "model/kv.h"
#include "model/llama.h"
#include "model/quant.h"
#include "train/ops.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>

/* ---- helpers ------------------------------------------------------------------------- */

static uint64_t g_rng = 88172645463325252ULL;
static double urand(void)   /* xorshift64*, [0, 1) */
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (double)((g_rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
static void fill(float *x, int64_t n, double amp)
{
    for (int64_t i = 0; i < n; i++) x[i] = (float)((2 * urand() - 1) * amp);
}
static float *falloc(int64_t n) { float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p); cr_assert(p); return p; }
static double *dalloc(int64_t n) { double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p); cr_assert(p); return p; }

/* A double-precision reference: L(in) = sum r . f(in) for the op under test. */
typedef double (*loss_fn)(const double *in, void *ctx);

/* Central differences of L at x (n) against the float gradient g (n); returns
 * max |g - fd| / max |fd| and asserts it is <= tol. */
static double fd_check(const char *what, loss_fn L, void *ctx, double *x, const float *g, int64_t n, double tol)
{
    const double h = 1e-5;
    double max_fd = 0, max_err = 0;
    int64_t worst = 0;
    double *fd = dalloc(n);
    for (int64_t i = 0; i < n; i++) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = L(x, ctx);
        x[i] = x0 - h;
        const double lm = L(x, ctx);
        x[i] = x0;
        fd[i] = (lp - lm) / (2 * h);
        if (fabs(fd[i]) > max_fd) max_fd = fabs(fd[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(fd[i] - g[i]);
        if (e > max_err) { max_err = e; worst = i; }
    }
    const double rel = max_err / (max_fd > 0 ? max_fd : 1);
    cr_log_info("%s: %lld inputs, max |fd| %.3g, max |g - fd| / max |fd| = %.2e", what, (long long)n, max_fd, rel);
    cr_assert(max_fd > 0, "%s: the gradient is identically zero: the check would prove nothing", what);
    cr_assert(rel <= tol, "%s: gradient mismatch at %lld: op %.8g vs finite differences %.8g (rel %.2e > %.1e)", what,
              (long long)worst, g[worst], fd[worst], rel, tol);
    free(fd);
    return rel;
}

static void to_double(double *d, const float *f, int64_t n) { for (int64_t i = 0; i < n; i++) d[i] = f[i]; }

#define OP_TOL 2e-5

/* ---- RMSNorm --------------------------------------------------------------------------- */

typedef struct { int64_t N, C; float eps; const float *r; } rms_ctx;
static double rms_ref(const double *in, void *c)
{
    const rms_ctx *k = c;
    const double *x = in, *w = in + k->N * k->C;
    double L = 0;
    for (int64_t n = 0; n < k->N; n++) {
        double ss = 0;
        for (int64_t i = 0; i < k->C; i++) ss += x[n * k->C + i] * x[n * k->C + i];
        const double r = 1 / sqrt(ss / k->C + k->eps);
        for (int64_t i = 0; i < k->C; i++) L += k->r[n * k->C + i] * x[n * k->C + i] * r * w[i];
    }
    return L;
}

Test(train_ops, rmsnorm_fd)
{
    rms_ctx k = {.N = 5, .C = 12, .eps = 1e-5f};
    const int64_t NC = k.N * k.C;
    float *x = falloc(NC), *w = falloc(k.C), *r = falloc(NC), *y = falloc(NC), *rstd = falloc(k.N);
    float *g = falloc(NC + k.C);
    fill(x, NC, 1.5);
    fill(w, k.C, 1.0);
    fill(r, NC, 1.0);
    k.r = r;
    tw_rmsnorm_forward(y, rstd, x, w, k.N, k.C, k.eps);
    float *yk = falloc(NC);   /* the inference kernel agrees */
    for (int64_t n = 0; n < k.N; n++) tw_rmsnorm(yk + n * k.C, x + n * k.C, w, k.C, k.eps);
    for (int64_t i = 0; i < NC; i++) cr_assert_float_eq(y[i], yk[i], 1e-5f);
    tw_rmsnorm_backward(g, g + NC, r, x, w, rstd, k.N, k.C);
    double *in = dalloc(NC + k.C);
    to_double(in, x, NC);
    to_double(in + NC, w, k.C);
    fd_check("rmsnorm dx,dw", rms_ref, &k, in, g, NC + k.C, OP_TOL);
    /* accumulation: a second backward doubles the gradient */
    float *g2 = falloc(NC + k.C);
    memcpy(g2, g, (size_t)(NC + k.C) * sizeof *g2);
    tw_rmsnorm_backward(g2, g2 + NC, r, x, w, rstd, k.N, k.C);
    for (int64_t i = 0; i < NC + k.C; i++) cr_assert_float_eq(g2[i], 2 * g[i], 1e-5f * (1 + fabsf(g[i])));
    free(x); free(w); free(r); free(y); free(rstd); free(g); free(g2); free(yk); free(in);
}

/* ---- RoPE ------------------------------------------------------------------------------- */

typedef struct { int64_t T, H, D, R; int mode; const float *cs, *r; } rope_ctx;
static double rope_ref(const double *x, void *c)
{
    const rope_ctx *k = c;
    double L = 0;
    const int64_t half = k->R / 2;
    for (int64_t t = 0; t < k->T; t++)
        for (int64_t h = 0; h < k->H; h++) {
            const double *v = x + (t * k->H + h) * k->D;
            const float *r = k->r + (t * k->H + h) * k->D;
            for (int64_t i = 0; i < k->D; i++) {
                double y;
                if (i >= k->R) y = v[i];
                else {
                    const int64_t p = k->mode == TW_ROPE_NEOX ? i % half : i / 2;
                    const double cs = k->cs[t * k->R + 2 * p], sn = k->cs[t * k->R + 2 * p + 1];
                    int64_t i0, i1;
                    if (k->mode == TW_ROPE_NEOX) { i0 = p; i1 = p + half; }
                    else { i0 = 2 * p; i1 = 2 * p + 1; }
                    y = i == i0 ? v[i0] * cs - v[i1] * sn : v[i0] * sn + v[i1] * cs;
                }
                L += r[i] * y;
            }
        }
    return L;
}

static void rope_case(int mode, const char *name)
{
    rope_ctx k = {.T = 5, .H = 3, .D = 8, .R = 6, .mode = mode};
    const int64_t n = k.T * k.H * k.D;
    const int32_t pos[5] = {3, 4, 5, 6, 40};
    float ff[3] = {1.0f, 2.5f, 8.0f};
    float *cs = falloc(k.T * k.R), *x = falloc(n), *y = falloc(n), *r = falloc(n), *g = falloc(n);
    tw_rope_cache(cs, pos, k.T, k.R, 10000.0f, 0.5f, ff);
    fill(x, n, 1.0);
    fill(r, n, 1.0);
    k.cs = cs;
    k.r = r;
    tw_rope_forward(y, x, cs, k.T, k.H, k.D, k.R, mode);
    /* forward = tw_rope per token */
    for (int64_t t = 0; t < k.T; t++) {
        float row[24];
        memcpy(row, x + t * 24, sizeof row);
        tw_rope(row, k.H, k.D, k.R, pos[t], 10000.0f, 0.5f, ff, mode);
        for (int i = 0; i < 24; i++) cr_assert_float_eq(row[i], y[t * 24 + i], 1e-6f);
    }
    tw_rope_backward(g, r, cs, k.T, k.H, k.D, k.R, mode);
    double *in = dalloc(n);
    to_double(in, x, n);
    fd_check(name, rope_ref, &k, in, g, n, OP_TOL);
    free(cs); free(x); free(y); free(r); free(g); free(in);
}

Test(train_ops, rope_normal_fd) { rope_case(TW_ROPE_NORMAL, "rope normal"); }
Test(train_ops, rope_neox_fd) { rope_case(TW_ROPE_NEOX, "rope neox"); }

/* ---- attention --------------------------------------------------------------------------- */

typedef struct { int64_t T, H, HKV, D; const float *r; } att_ctx;
static double att_ref(const double *in, void *c)
{
    const att_ctx *k = c;
    const int64_t T = k->T, H = k->H, HKV = k->HKV, D = k->D, grp = H / HKV;
    const double *q = in, *kk = in + T * H * D, *v = kk + T * HKV * D;
    double L = 0, s[64];
    for (int64_t i = 0; i < T; i++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t hk = h / grp;
            double m = -INFINITY, z = 0;
            for (int64_t j = 0; j <= i; j++) {
                double d = 0;
                for (int64_t e = 0; e < D; e++) d += q[(i * H + h) * D + e] * kk[(j * HKV + hk) * D + e];
                s[j] = d / sqrt((double)D);
                if (s[j] > m) m = s[j];
            }
            for (int64_t j = 0; j <= i; j++) z += (s[j] = exp(s[j] - m));
            for (int64_t e = 0; e < D; e++) {
                double o = 0;
                for (int64_t j = 0; j <= i; j++) o += s[j] / z * v[(j * HKV + hk) * D + e];
                L += k->r[(i * H + h) * D + e] * o;
            }
        }
    return L;
}

static void att_case(int64_t T, int64_t H, int64_t HKV, int64_t D, int nt)
{
    att_ctx k = {.T = T, .H = H, .HKV = HKV, .D = D};
    const int64_t nq = T * H * D, nk = T * HKV * D;
    float *q = falloc(nq), *kk = falloc(nk), *v = falloc(nk), *o = falloc(nq), *lse = falloc(T * H), *r = falloc(nq);
    float *g = falloc(nq + 2 * nk), *delta = falloc(T * H);
    fill(q, nq, 1.5);
    fill(kk, nk, 1.5);
    fill(v, nk, 1.0);
    fill(r, nq, 1.0);
    k.r = r;
    tw_attention_forward(o, lse, q, kk, v, T, H, HKV, D, nt);
    tw_attention_backward(g, g + nq, g + nq + nk, delta, r, q, kk, v, o, lse, T, H, HKV, D, nt);
    double *in = dalloc(nq + 2 * nk);
    to_double(in, q, nq);
    to_double(in + nq, kk, nk);
    to_double(in + nq + nk, v, nk);
    /* forward value too: L(in) vs sum r . o */
    double L = 0;
    for (int64_t i = 0; i < nq; i++) L += (double)r[i] * o[i];
    cr_assert(fabs(L - att_ref(in, &k)) <= 1e-5 * (1 + fabs(L)), "attention forward %.8g vs %.8g", L, att_ref(in, &k));
    char name[96];
    snprintf(name, sizeof name, "attention T=%lld H=%lld HKV=%lld D=%lld dq,dk,dv", (long long)T, (long long)H,
             (long long)HKV, (long long)D);
    fd_check(name, att_ref, &k, in, g, nq + 2 * nk, OP_TOL);
    free(q); free(kk); free(v); free(o); free(lse); free(r); free(g); free(delta); free(in);
}

Test(train_ops, attention_gqa_fd) { att_case(7, 4, 2, 8, 2); }
Test(train_ops, attention_mha_fd) { att_case(5, 2, 2, 6, 1); }
Test(train_ops, attention_mqa_long_fd) { att_case(19, 3, 1, 4, 2); }

/* the row-by-row path (no BLAS: taken when the kernels are forced scalar or the sgemm
 * path's scratch cannot be allocated) against finite differences too */
Test(train_ops, attention_rows_path_fd)
{
    tw_kernels_force_scalar(true);
    att_case(7, 4, 2, 8, 2);
    att_case(19, 3, 1, 4, 1);
    tw_kernels_force_scalar(false);
}

/* both paths on a longer sequence (several 64-row blocks, a partial last one) */
Test(train_ops, attention_paths_agree)
{
    const int64_t T = 150, H = 4, HKV = 2, D = 16, nq = T * H * D, nk = T * HKV * D;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *r = falloc(nq);
    fill(q, nq, 1.5);
    fill(k, nk, 1.5);
    fill(v, nk, 1);
    fill(r, nq, 1);
    float *out[2], *grad[2];
    for (int a = 0; a < 2; a++) {
        tw_kernels_force_scalar(a == 1);
        float *lse = falloc(T * H), *delta = falloc(T * H);
        out[a] = falloc(nq);
        grad[a] = falloc(nq + 2 * nk);
        tw_attention_forward(out[a], lse, q, k, v, T, H, HKV, D, 2);
        tw_attention_backward(grad[a], grad[a] + nq, grad[a] + nq + nk, delta, r, q, k, v, out[a], lse, T, H, HKV, D, 2);
        free(lse);
        free(delta);
    }
    tw_kernels_force_scalar(false);
    double mo = 0, eo = 0, mg = 0, eg = 0;
    for (int64_t i = 0; i < nq; i++) { mo = fmax(mo, fabs(out[1][i])); eo = fmax(eo, fabs(out[0][i] - out[1][i])); }
    for (int64_t i = 0; i < nq + 2 * nk; i++) { mg = fmax(mg, fabs(grad[1][i])); eg = fmax(eg, fabs(grad[0][i] - grad[1][i])); }
    cr_log_info("attention sgemm vs row paths, T=%lld: out %.2e, grads %.2e (relative to the max)", (long long)T, eo / mo,
                eg / mg);
    cr_assert(eo <= 1e-5 * mo && eg <= 1e-5 * mg, "paths differ: out %.3g of %.3g, grads %.3g of %.3g", eo, mo, eg, mg);
    free(q); free(k); free(v); free(r);
    for (int a = 0; a < 2; a++) { free(out[a]); free(grad[a]); }
}

Test(train_ops, attention_threads_deterministic)
{
    const int64_t T = 137, H = 4, HKV = 2, D = 16, nq = T * H * D, nk = T * HKV * D;
    float *q = falloc(nq), *k = falloc(nk), *v = falloc(nk), *r = falloc(nq);
    fill(q, nq, 2);
    fill(k, nk, 2);
    fill(v, nk, 1);
    fill(r, nq, 1);
    float *out[2], *grad[2];
    for (int a = 0; a < 2; a++) {
        float *lse = falloc(T * H), *delta = falloc(T * H);
        out[a] = falloc(nq);
        grad[a] = falloc(nq + 2 * nk);
        tw_attention_forward(out[a], lse, q, k, v, T, H, HKV, D, a + 1);
        tw_attention_backward(grad[a], grad[a] + nq, grad[a] + nq + nk, delta, r, q, k, v, out[a], lse, T, H, HKV, D,
                              a + 1);
        free(lse);
        free(delta);
    }
    cr_assert(memcmp(out[0], out[1], (size_t)nq * sizeof(float)) == 0, "attention forward depends on the threads");
    cr_assert(memcmp(grad[0], grad[1], (size_t)(nq + 2 * nk) * sizeof(float)) == 0,
              "attention backward depends on the threads");
    free(q); free(k); free(v); free(r);
    for (int a = 0; a < 2; a++) { free(out[a]); free(grad[a]); }
}

/* ---- SwiGLU, residual, bias ------------------------------------------------------------------ */

typedef struct { int64_t N; const float *r; } sw_ctx;
static double sw_ref(const double *in, void *c)
{
    const sw_ctx *k = c;
    double L = 0;
    for (int64_t i = 0; i < k->N; i++) L += k->r[i] * in[i] / (1 + exp(-in[i])) * in[k->N + i];
    return L;
}

Test(train_ops, swiglu_fd)
{
    sw_ctx k = {.N = 23};
    float *gu = falloc(2 * k.N), *r = falloc(k.N), *y = falloc(k.N), *g = falloc(2 * k.N);
    fill(gu, 2 * k.N, 4.0);
    fill(r, k.N, 1.0);
    k.r = r;
    tw_swiglu_forward(y, gu, gu + k.N, k.N);
    tw_swiglu_backward(g, g + k.N, r, gu, gu + k.N, k.N);
    double *in = dalloc(2 * k.N);
    to_double(in, gu, 2 * k.N);
    fd_check("swiglu dgate,dup", sw_ref, &k, in, g, 2 * k.N, OP_TOL);
    free(gu); free(r); free(y); free(g); free(in);
}

Test(train_ops, residual_and_bias)
{
    float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {-1, 0.5f, 2, 0, 1, 1}, out[6], dout[6] = {1, -2, 3, -4, 5, -6};
    float da[6] = {0}, db[6] = {1, 1, 1, 1, 1, 1};
    tw_residual_forward(out, a, b, 6);
    for (int i = 0; i < 6; i++) cr_assert_eq(out[i], a[i] + b[i]);
    tw_residual_backward(da, db, dout, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(da[i], dout[i]);
        cr_assert_eq(db[i], 1 + dout[i]);
    }
    /* bias (T=2, N=3): db = column sums of dout, dx = dout */
    float bias[3] = {0.5f, -1, 2}, y[6], dx[6] = {0}, dbias[3] = {0};
    tw_bias_forward(y, a, bias, 2, 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(y[i], a[i] + bias[i % 3]);
    tw_bias_backward(dx, dbias, dout, 2, 3);
    for (int i = 0; i < 6; i++) cr_assert_eq(dx[i], dout[i]);
    cr_assert_eq(dbias[0], 1 - 4);
    cr_assert_eq(dbias[1], -2 + 5);
    cr_assert_eq(dbias[2], 3 - 6);
}

/* ---- embedding, dropout ------------------------------------------------------------------------ */

Test(train_ops, embedding)
{
    const int64_t V = 10, C = 64, T = 5;
    float *W = falloc(V * C), *out = falloc(T * C), *d = falloc(T * C), *dW = falloc(V * C);
    fill(W, V * C, 1);
    fill(d, T * C, 1);
    uint16_t *W16 = malloc((size_t)(V * C) * 2);
    tw_fp32_to_fp16_row(W16, W, V * C);
    const int32_t tok[5] = {3, 7, 3, 0, 9};
    tw_embedding_forward(out, tok, W16, TW_TYPE_F16, T, C);
    float row[64];
    for (int64_t t = 0; t < T; t++) {
        tw_dequantize_row(TW_TYPE_F16, row, W16 + tok[t] * C, C);
        cr_assert(memcmp(row, out + t * C, sizeof row) == 0);
    }
    tw_embedding_backward(dW, d, tok, T, C);
    for (int64_t c = 0; c < C; c++) {
        cr_assert_float_eq(dW[3 * C + c], d[0 * C + c] + d[2 * C + c], 1e-6f);   /* token 3 twice: summed */
        cr_assert_eq(dW[7 * C + c], d[1 * C + c]);
        cr_assert_eq(dW[5 * C + c], 0.0f);
    }
    free(W); free(out); free(d); free(dW); free(W16);
}

Test(train_ops, dropout_mask)
{
    const int64_t N = 20000;
    float *x = falloc(N), *y = falloc(N), *dx = falloc(N), *ones = falloc(N);
    for (int64_t i = 0; i < N; i++) { x[i] = 1.0f + (float)(i % 7); ones[i] = 1; }
    tw_dropout_forward(y, x, 0.25f, 42, N);
    int64_t kept = 0;
    for (int64_t i = 0; i < N; i++) {
        const bool keep = tw_dropout_keep(0.25f, 42, i);
        kept += keep;
        cr_assert_float_eq(y[i], keep ? x[i] / 0.75f : 0.0f, 1e-6f);
    }
    /* binomial(20000, 0.75): sd ~61; 5 sd */
    cr_assert(llabs(kept - 15000) < 310, "kept %lld of %lld at p = 0.25", (long long)kept, (long long)N);
    tw_dropout_backward(dx, ones, 0.25f, 42, N);
    for (int64_t i = 0; i < N; i++) cr_assert_float_eq(dx[i], tw_dropout_keep(0.25f, 42, i) ? 1 / 0.75f : 0, 1e-6f);
    /* another seed gives another mask; p = 0 is the identity */
    int64_t same = 0;
    for (int64_t i = 0; i < 1000; i++) same += tw_dropout_keep(0.25f, 42, i) == tw_dropout_keep(0.25f, 43, i);
    cr_assert(same < 800, "seeds 42 and 43 give nearly the same mask (%lld / 1000)", (long long)same);
    tw_dropout_forward(y, x, 0, 42, N);
    cr_assert(memcmp(x, y, (size_t)N * sizeof *x) == 0);
    free(x); free(y); free(dx); free(ones);
}

/* ---- frozen linear over every weight type ----------------------------------------------------- */

static void *quantize_matrix(const float *W, tw_type type, int64_t R, int64_t C)
{
    const size_t rb = tw_type_row_bytes(type, (uint64_t)C);
    unsigned char *q = aligned_alloc(64, ((size_t)R * rb + 63) / 64 * 64);
    cr_assert(q);
    for (int64_t r = 0; r < R; r++) {
        if (type == TW_TYPE_F32) memcpy(q + r * rb, W + r * C, (size_t)C * 4);
        else if (type == TW_TYPE_F16) tw_fp32_to_fp16_row((uint16_t *)(q + r * rb), W + r * C, C);
        else if (type == TW_TYPE_BF16) tw_fp32_to_bf16_row((uint16_t *)(q + r * rb), W + r * C, C);
        else tw_quantize_row(type, q + r * rb, W + r * C, C);
    }
    return q;
}

Test(train_ops, linear_backward_every_type)
{
    const tw_type types[] = {TW_TYPE_F32, TW_TYPE_F16, TW_TYPE_BF16, TW_TYPE_Q8_0, TW_TYPE_Q4_0, TW_TYPE_Q4_1,
                             TW_TYPE_Q5_0, TW_TYPE_Q5_1, TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    const int64_t T = 9, R = 150, C = 768;   /* R > one 128-row tile; C: 3 k-quant blocks */
    float *W = falloc(R * C), *x = falloc(T * C), *dy = falloc(T * R), *y = falloc(T * R);
    float *dx1 = falloc(T * C), *dx2 = falloc(T * C), *wrow = falloc(C);
    fill(W, R * C, 0.5);
    fill(x, T * C, 1);
    fill(dy, T * R, 1);
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tw_type ty = types[ti];
        void *Wq = quantize_matrix(W, ty, R, C);
        const size_t rb = tw_type_row_bytes(ty, (uint64_t)C);
        /* reference: dx = dy . dequant(W) in double */
        double *ref = dalloc(T * C), max_ref = 0, max_err = 0;
        for (int64_t r = 0; r < R; r++) {
            tw_dequantize_row(ty, wrow, (const unsigned char *)Wq + r * rb, C);
            for (int64_t t = 0; t < T; t++)
                for (int64_t c = 0; c < C; c++) ref[t * C + c] += (double)dy[t * R + r] * wrow[c];
        }
        memset(dx1, 0, (size_t)(T * C) * sizeof *dx1);
        memset(dx2, 0, (size_t)(T * C) * sizeof *dx2);
        tw_linear_backward(dx1, dy, Wq, ty, T, R, C, 1);
        tw_linear_backward(dx2, dy, Wq, ty, T, R, C, 2);
        cr_assert(memcmp(dx1, dx2, (size_t)(T * C) * sizeof *dx1) == 0, "%s: dx depends on the thread count",
                  tw_type_get(ty)->name);
        tw_linear_backward(dx2, dy, Wq, ty, T, R, C, 2);   /* accumulates: 2 dx */
        for (int64_t i = 0; i < T * C; i++) {
            if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
            if (fabs(dx1[i] - ref[i]) > max_err) max_err = fabs(dx1[i] - ref[i]);
            cr_assert_float_eq(dx2[i], 2 * dx1[i], 1e-5f * (1 + fabsf(dx1[i])), "%s: dx does not accumulate",
                               tw_type_get(ty)->name);
        }
        cr_log_info("linear backward %s: max |dx - ref| / max |ref| = %.2e", tw_type_get(ty)->name, max_err / max_ref);
        cr_assert(max_err <= 1e-5 * max_ref, "linear backward %s: error %.3g of %.3g", tw_type_get(ty)->name, max_err,
                  max_ref);
        /* forward is x . W^T on the same dequantized weights */
        tw_linear_forward(y, x, Wq, ty, T, R, C, 2);
        for (int64_t r = 0; r < R; r += 37) {
            tw_dequantize_row(ty, wrow, (const unsigned char *)Wq + r * rb, C);
            double s = 0, n = 0;
            for (int64_t c = 0; c < C; c++) { s += (double)x[2 * C + c] * wrow[c]; n += fabs(x[2 * C + c] * wrow[c]); }
            cr_assert(fabs(y[2 * R + r] - s) <= 1e-5 * n, "linear forward %s", tw_type_get(ty)->name);
        }
        free(ref);
        free(Wq);
    }
    free(W); free(x); free(dy); free(y); free(dx1); free(dx2); free(wrow);
}

/* ---- LoRA linear with dropout --------------------------------------------------------------------- */

typedef struct { int64_t T, I, O, K; float scale, p; uint64_t seed; const float *W, *r; } lora_ctx;
static double lora_ref(const double *in, void *c)
{
    const lora_ctx *k = c;
    const double *x = in, *A = in + k->T * k->I, *B = A + k->K * k->I;
    double L = 0, t[16];
    for (int64_t b = 0; b < k->T; b++) {
        for (int64_t j = 0; j < k->K; j++) {
            t[j] = 0;
            for (int64_t i = 0; i < k->I; i++) {
                const double xd = tw_dropout_keep(k->p, k->seed, b * k->I + i) ? x[b * k->I + i] / (1.0 - k->p) : 0;
                t[j] += xd * A[j * k->I + i];
            }
        }
        for (int64_t o = 0; o < k->O; o++) {
            double y = 0;
            for (int64_t i = 0; i < k->I; i++) y += x[b * k->I + i] * k->W[o * k->I + i];
            for (int64_t j = 0; j < k->K; j++) y += k->scale * t[j] * B[o * k->K + j];
            L += k->r[b * k->O + o] * y;
        }
    }
    return L;
}

static void lora_case(float p, const char *name)
{
    lora_ctx k = {.T = 5, .I = 32, .O = 24, .K = 4, .scale = 2.0f, .p = p, .seed = 77};
    const int64_t nx = k.T * k.I, nA = k.K * k.I, nB = k.O * k.K;
    float *in = falloc(nx + nA + nB), *W = falloc(k.O * k.I), *r = falloc(k.T * k.O);
    float *xd = falloc(nx), *y = falloc(k.T * k.O), *t = falloc(k.T * k.K), *dt = falloc(k.T * k.K);
    float *g = falloc(nx + nA + nB), *dxd = falloc(nx);
    fill(in, nx + nA + nB, 1);
    fill(W, k.O * k.I, 0.3);
    fill(r, k.T * k.O, 1);
    k.W = W;
    k.r = r;
    float *x = in, *A = in + nx, *B = A + nA;
    tw_dropout_forward(xd, x, p, k.seed, nx);
    tw_lora_linear_forward(y, t, x, xd, W, TW_TYPE_F32, A, B, k.scale, k.T, k.O, k.I, k.K, 2);
    tw_lora_linear_backward(g, dxd, g + nx, g + nx + nA, dt, r, xd, t, W, TW_TYPE_F32, A, B, k.scale, k.T, k.O, k.I,
                            k.K, 2);
    tw_dropout_backward(g, dxd, p, k.seed, nx);
    double *din = dalloc(nx + nA + nB);
    to_double(din, in, nx + nA + nB);
    double L = 0;
    for (int64_t i = 0; i < k.T * k.O; i++) L += (double)r[i] * y[i];
    cr_assert(fabs(L - lora_ref(din, &k)) <= 1e-5 * (1 + fabs(L)), "lora forward");
    fd_check(name, lora_ref, &k, din, g, nx + nA + nB, OP_TOL);
    free(in); free(W); free(r); free(xd); free(y); free(t); free(dt); free(g); free(dxd); free(din);
}

Test(train_ops, lora_linear_fd) { lora_case(0.0f, "lora linear dx,dA,dB"); }
Test(train_ops, lora_linear_dropout_fd) { lora_case(0.3f, "lora linear + dropout 0.3 dx,dA,dB"); }

/* ---- cross-entropy and the fused output loss ------------------------------------------------------ */

typedef struct { int64_t T, V, E; const int32_t *tg; const float *w; const float *W; } ce_ctx;
static double ce_ref(const double *z, void *c)   /* in: logits (T, V) */
{
    const ce_ctx *k = c;
    double L = 0;
    for (int64_t t = 0; t < k->T; t++) {
        if (k->w[t] == 0) continue;
        double m = -INFINITY, s = 0;
        for (int64_t v = 0; v < k->V; v++) m = fmax(m, z[t * k->V + v]);
        for (int64_t v = 0; v < k->V; v++) s += exp(z[t * k->V + v] - m);
        L += k->w[t] * (m + log(s) - z[t * k->V + k->tg[t]]);
    }
    return L;
}
static double out_ref(const double *h, void *c)   /* in: h (T, E); W (V, E) f32 */
{
    const ce_ctx *k = c;
    double *z = dalloc(k->T * k->V);
    for (int64_t t = 0; t < k->T; t++)
        for (int64_t v = 0; v < k->V; v++) {
            double s = 0;
            for (int64_t e = 0; e < k->E; e++) s += h[t * k->E + e] * k->W[v * k->E + e];
            z[t * k->V + v] = s;
        }
    const double L = ce_ref(z, c);
    free(z);
    return L;
}

Test(train_ops, cross_entropy_fd)
{
    const int64_t T = 7, V = 11;
    const int32_t tg[7] = {3, 0, 10, 5, 5, 1, 7};
    const float w[7] = {0, 0, 0.25f, 0.25f, 0, 0.25f, 0.25f};   /* mean over 4 unmasked */
    ce_ctx k = {.T = T, .V = V, .tg = tg, .w = w};
    float *z = falloc(T * V), *lse = falloc(T), *g = falloc(T * V);
    fill(z, T * V, 3);
    const double loss = tw_cross_entropy_forward(lse, z, tg, w, T, V, 2);
    double *dz = dalloc(T * V);
    to_double(dz, z, T * V);
    cr_assert(fabs(loss - ce_ref(dz, &k)) < 1e-6 * fabs(loss), "loss %.9g vs %.9g", loss, ce_ref(dz, &k));
    tw_cross_entropy_backward(g, z, lse, tg, w, T, V, 2);
    for (int64_t i = 0; i < V; i++) cr_assert_eq(g[i], 0.0f, "masked rows get no gradient");
    fd_check("cross-entropy dlogits", ce_ref, &k, dz, g, T * V, OP_TOL);
    free(z); free(lse); free(g); free(dz);
}

Test(train_ops, output_loss_fd)
{
    const int64_t T = 9, V = 40, E = 32;
    const int32_t tg[9] = {3, 0, 39, 5, 5, 1, 7, 20, 11};
    const float w[9] = {0, 0.2f, 0, 0.2f, 0.2f, 0, 0.2f, 0.2f, 0};
    float *W = falloc(V * E), *h = falloc(T * E), *dh = falloc(T * E), *scratch = falloc(4 * (V + 2 * E));
    fill(W, V * E, 0.5);
    fill(h, T * E, 1);
    ce_ctx k = {.T = T, .V = V, .E = E, .tg = tg, .w = w, .W = W};
    const double loss = tw_output_loss(dh, scratch, h, W, TW_TYPE_F32, tg, w, T, V, E, 4, 2);
    double *dhd = dalloc(T * E);
    to_double(dhd, h, T * E);
    cr_assert(fabs(loss - out_ref(dhd, &k)) < 1e-6 * fabs(loss), "loss %.9g vs %.9g", loss, out_ref(dhd, &k));
    fd_check("output projection + cross-entropy dh", out_ref, &k, dhd, dh, T * E, OP_TOL);
    /* without dh: the same loss; a Q8_0 weight gives the loss of its dequantization */
    cr_assert_eq(tw_output_loss(NULL, scratch, h, W, TW_TYPE_F32, tg, w, T, V, E, 3, 1), loss);
    void *Wq = quantize_matrix(W, TW_TYPE_Q8_0, V, E);
    float *Wd = falloc(V * E);
    for (int64_t v = 0; v < V; v++) tw_dequantize_row(TW_TYPE_Q8_0, Wd + v * E, (char *)Wq + v * tw_type_row_bytes(TW_TYPE_Q8_0, E), E);
    k.W = Wd;
    const double lq = tw_output_loss(NULL, scratch, h, Wq, TW_TYPE_Q8_0, tg, w, T, V, E, 4, 2);
    cr_assert(fabs(lq - out_ref(dhd, &k)) < 1e-6 * fabs(lq), "Q8_0 loss %.9g vs %.9g", lq, out_ref(dhd, &k));
    free(W); free(h); free(dh); free(scratch); free(dhd); free(Wq); free(Wd);
}

/* ---- the composed model ----------------------------------------------------------------------------
 * A llama / qwen2 / qwen3 forward + backward built from the ops, the way the trainer will
 * build it, with LoRA on q,k,v,o,gate,up,down of every layer and every activation kept. */

#define NTGT 7
static const char *const TGT_GGUF[NTGT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                           "ffn_down"};

typedef struct mweight { void *data; tw_type type; int64_t rows, cols; } mweight;

typedef struct tiny {
    tw_model_config c;
    int64_t E, H, HKV, D, Q, KV, F, V, R, NR;
    float *tok_embd, *out_norm, *rope_freqs;
    mweight output;
    struct {
        float *an, *fn, *bq, *bk, *bv, *qn, *kn;
        mweight w[NTGT];
        float *A[NTGT], *B[NTGT], *dA[NTGT], *dB[NTGT];
    } L[2];
    float scale;
} tiny;

static float *vec_of(const tw_model_files *mf, const char *name, int64_t n)
{
    const tw_model_tensor *t = tw_model_files_tensor_find(mf, name);
    cr_assert(t, "missing %s", name);
    cr_assert_eq(t->ne[0], n);
    float *v = falloc(n);
    tw_dequantize_row(t->type, v, t->data, n);
    return v;
}

/* fixture LoRA values (gen_train_fixtures.py init_value) */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static void init_matrix(float *m, int layer, int target, int which, int64_t n, double amp)
{
    const uint64_t seed = (uint64_t)((layer * 8 + target) * 2 + which + 1000);
    for (int64_t i = 0; i < n; i++) {
        const uint64_t h = mix64(seed * 0x9E3779B97F4A7C15ULL + (uint64_t)(i + 1) * 0xD1B54A32D192ED03ULL);
        const double u = (double)(h >> 40) / (double)(1 << 24);
        m[i] = (float)((2.0 * u - 1.0) * amp);
    }
}

/* base weights as F32, or quantized to qtype (QLoRA) */
static tiny *tiny_load(const tw_model_files *mf, int32_t rank, float alpha, tw_type qtype)
{
    tiny *m = calloc(1, sizeof *m);
    cr_assert(m);
    m->c = *tw_model_files_config(mf);
    const tw_model_config *c = &m->c;
    cr_assert_eq(c->n_layer, 2);
    m->E = c->n_embd; m->H = c->n_head; m->HKV = c->n_head_kv; m->D = c->head_dim; m->F = c->n_ff;
    m->Q = m->H * m->D; m->KV = m->HKV * m->D; m->V = c->n_vocab; m->R = rank; m->NR = c->n_rot;
    m->scale = alpha / (float)rank;
    char nm[96];
    const tw_model_tensor *et = tw_model_files_tensor_find(mf, "token_embd.weight");
    cr_assert(et && et->ne[0] == m->E && et->ne[1] == m->V);
    m->tok_embd = falloc(m->V * m->E);   /* (V, E) */
    tw_dequantize_row(et->type, m->tok_embd, et->data, m->V * m->E);
    m->out_norm = vec_of(mf, "output_norm.weight", m->E);
    if (c->rope_scaling == TW_ROPE_SCALING_LLAMA3) m->rope_freqs = vec_of(mf, "rope_freqs.weight", m->NR / 2);
    const tw_model_tensor *ot = tw_model_files_tensor_find(mf, c->tied_embeddings ? "token_embd.weight" : "output.weight");
    cr_assert(ot);
    float *of = falloc(m->V * m->E);
    tw_dequantize_row(ot->type, of, ot->data, m->V * m->E);
    m->output = (mweight){of, TW_TYPE_F32, m->V, m->E};
    for (int l = 0; l < 2; l++) {
#define V1(field, suffix, n) do { snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix); m->L[l].field = vec_of(mf, nm, n); } while (0)
        V1(an, "attn_norm.weight", m->E);
        V1(fn, "ffn_norm.weight", m->E);
        if (c->attn_bias) { V1(bq, "attn_q.bias", m->Q); V1(bk, "attn_k.bias", m->KV); V1(bv, "attn_v.bias", m->KV); }
        if (c->qk_norm) { V1(qn, "attn_q_norm.weight", m->D); V1(kn, "attn_k_norm.weight", m->D); }
#undef V1
        for (int t = 0; t < NTGT; t++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, TGT_GGUF[t]);
            const tw_model_tensor *wt = tw_model_files_tensor_find(mf, nm);
            cr_assert(wt, "missing %s", nm);
            const int64_t rows = wt->ne[1], cols = wt->ne[0];
            float *f = falloc(rows * cols);
            tw_dequantize_row(wt->type, f, wt->data, rows * cols);
            if (qtype == TW_TYPE_F32) m->L[l].w[t] = (mweight){f, TW_TYPE_F32, rows, cols};
            else {
                m->L[l].w[t] = (mweight){quantize_matrix(f, qtype, rows, cols), qtype, rows, cols};
                free(f);
            }
            m->L[l].A[t] = falloc(rank * cols);
            m->L[l].B[t] = falloc(rows * rank);
            m->L[l].dA[t] = falloc(rank * cols);
            m->L[l].dB[t] = falloc(rows * rank);
            init_matrix(m->L[l].A[t], l, t, 0, rank * cols, 0.25);
            init_matrix(m->L[l].B[t], l, t, 1, rows * rank, 0.1);
        }
    }
    return m;
}

static void tiny_free(tiny *m)
{
    free(m->tok_embd); free(m->out_norm); free(m->rope_freqs); free(m->output.data);
    for (int l = 0; l < 2; l++) {
        free(m->L[l].an); free(m->L[l].fn); free(m->L[l].bq); free(m->L[l].bk); free(m->L[l].bv);
        free(m->L[l].qn); free(m->L[l].kn);
        for (int t = 0; t < NTGT; t++) {
            free(m->L[l].w[t].data); free(m->L[l].A[t]); free(m->L[l].B[t]); free(m->L[l].dA[t]); free(m->L[l].dB[t]);
        }
    }
    free(m);
}

/* activations of one layer */
typedef struct acts {
    float *x, *xn1, *r1, *q, *qn, *rq, *k, *kn, *rk, *qr, *kr, *v, *att, *lse, *ao, *h, *xn2, *r2, *gate, *up, *sw;
    float *t[NTGT];
} acts;

typedef struct run {
    int64_t T;
    acts a[2];
    float *xf, *xnf, *rf, *cs, *logits;
} run;

static run *run_new(const tiny *m, int64_t T)
{
    run *r = calloc(1, sizeof *r);
    r->T = T;
    for (int l = 0; l < 2; l++) {
        acts *a = &r->a[l];
        a->x = falloc(T * m->E); a->xn1 = falloc(T * m->E); a->r1 = falloc(T);
        a->q = falloc(T * m->Q); a->qn = falloc(T * m->Q); a->rq = falloc(T * m->H);
        a->k = falloc(T * m->KV); a->kn = falloc(T * m->KV); a->rk = falloc(T * m->HKV);
        a->qr = falloc(T * m->Q); a->kr = falloc(T * m->KV); a->v = falloc(T * m->KV);
        a->att = falloc(T * m->Q); a->lse = falloc(T * m->H); a->ao = falloc(T * m->E); a->h = falloc(T * m->E);
        a->xn2 = falloc(T * m->E); a->r2 = falloc(T); a->gate = falloc(T * m->F); a->up = falloc(T * m->F);
        a->sw = falloc(T * m->F);
        for (int t = 0; t < NTGT; t++) a->t[t] = falloc(T * m->R);
    }
    r->xf = falloc(T * m->E); r->xnf = falloc(T * m->E); r->rf = falloc(T); r->cs = falloc(T * m->NR);
    r->logits = falloc(T * m->V);
    return r;
}

static void run_free(run *r)
{
    for (int l = 0; l < 2; l++) {
        acts *a = &r->a[l];
        float *p[] = {a->x, a->xn1, a->r1, a->q, a->qn, a->rq, a->k, a->kn, a->rk, a->qr, a->kr, a->v, a->att,
                      a->lse, a->ao, a->h, a->xn2, a->r2, a->gate, a->up, a->sw};
        for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) free(p[i]);
        for (int t = 0; t < NTGT; t++) free(a->t[t]);
    }
    free(r->xf); free(r->xnf); free(r->rf); free(r->cs); free(r->logits);
    free(r);
}

/* y (T, out) = lora linear of target t of layer l on x (no dropout) */
static void lin(const tiny *m, int l, int t, float *y, float *tt, const float *x, int64_t T, bool lora)
{
    const mweight *w = &m->L[l].w[t];
    if (lora) tw_lora_linear_forward(y, tt, x, x, w->data, w->type, m->L[l].A[t], m->L[l].B[t], m->scale, T, w->rows,
                                     w->cols, m->R, 2);
    else tw_linear_forward(y, x, w->data, w->type, T, w->rows, w->cols, 2);
}

/* forward of tokens (T); logits of every position when want_logits; returns the loss for
 * targets / weights (when given) through tw_output_loss */
static double tiny_forward(const tiny *m, run *r, const int32_t *tok, bool lora, bool want_logits, const int32_t *tg,
                           const float *w)
{
    const int64_t T = r->T, E = m->E, H = m->H, HKV = m->HKV, D = m->D;
    const tw_model_config *c = &m->c;
    int32_t pos[256];
    for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
    const float fscale = c->rope_scaling == TW_ROPE_SCALING_LINEAR ? 1.0f / c->rope_scale : 1.0f;
    tw_rope_cache(r->cs, pos, T, m->NR, c->rope_freq_base, fscale, m->rope_freqs);
    tw_embedding_forward(r->a[0].x, tok, m->tok_embd, TW_TYPE_F32, T, E);
    for (int l = 0; l < 2; l++) {
        acts *a = &r->a[l];
        tw_rmsnorm_forward(a->xn1, a->r1, a->x, m->L[l].an, T, E, c->rms_eps);
        lin(m, l, 0, a->q, a->t[0], a->xn1, T, lora);
        lin(m, l, 1, a->k, a->t[1], a->xn1, T, lora);
        lin(m, l, 2, a->v, a->t[2], a->xn1, T, lora);
        if (m->L[l].bq) {
            tw_bias_forward(a->q, a->q, m->L[l].bq, T, m->Q);
            tw_bias_forward(a->k, a->k, m->L[l].bk, T, m->KV);
            tw_bias_forward(a->v, a->v, m->L[l].bv, T, m->KV);
        }
        const float *qin = a->q, *kin = a->k;
        if (m->L[l].qn) {
            tw_rmsnorm_forward(a->qn, a->rq, a->q, m->L[l].qn, T * H, D, c->rms_eps);
            tw_rmsnorm_forward(a->kn, a->rk, a->k, m->L[l].kn, T * HKV, D, c->rms_eps);
            qin = a->qn;
            kin = a->kn;
        }
        tw_rope_forward(a->qr, qin, r->cs, T, H, D, m->NR, (int)c->rope_type);
        tw_rope_forward(a->kr, kin, r->cs, T, HKV, D, m->NR, (int)c->rope_type);
        tw_attention_forward(a->att, a->lse, a->qr, a->kr, a->v, T, H, HKV, D, 2);
        lin(m, l, 3, a->ao, a->t[3], a->att, T, lora);
        tw_residual_forward(a->h, a->x, a->ao, T * E);
        tw_rmsnorm_forward(a->xn2, a->r2, a->h, m->L[l].fn, T, E, c->rms_eps);
        lin(m, l, 4, a->gate, a->t[4], a->xn2, T, lora);
        lin(m, l, 5, a->up, a->t[5], a->xn2, T, lora);
        tw_swiglu_forward(a->sw, a->gate, a->up, T * m->F);
        float *xo = l == 0 ? r->a[1].x : r->xf;
        lin(m, l, 6, xo, a->t[6], a->sw, T, lora);
        tw_residual_forward(xo, a->h, xo, T * E);
    }
    tw_rmsnorm_forward(r->xnf, r->rf, r->xf, m->out_norm, T, E, c->rms_eps);
    if (want_logits) tw_linear_forward(r->logits, r->xnf, m->output.data, m->output.type, T, m->V, E, 2);
    if (!tg) return 0;
    float *scratch = falloc(8 * (m->V + 2 * E));
    const double loss = tw_output_loss(NULL, scratch, r->xnf, m->output.data, m->output.type, tg, w, T, m->V, E, 8, 2);
    free(scratch);
    return loss;
}

/* backward of the loss into every LoRA dA / dB (accumulated) */
static double tiny_backward(const tiny *m, run *r, const int32_t *tg, const float *w)
{
    const int64_t T = r->T, E = m->E, H = m->H, HKV = m->HKV, D = m->D, F = m->F, Q = m->Q, KV = m->KV;
    const tw_model_config *c = &m->c;
    float *scratch = falloc(8 * (m->V + 2 * E));
    float *dxnf = falloc(T * E), *dx = falloc(T * E), *dh = falloc(T * E), *dxn = falloc(T * E);
    float *dsw = falloc(T * F), *dgate = falloc(T * F), *dup = falloc(T * F);
    float *datt = falloc(T * Q), *dqr = falloc(T * Q), *dq = falloc(T * Q), *dq2 = falloc(T * Q);
    float *dkr = falloc(T * KV), *dk = falloc(T * KV), *dk2 = falloc(T * KV), *dv = falloc(T * KV);
    float *delta = falloc(T * H), *dt = falloc(T * m->R);
    const double loss = tw_output_loss(dxnf, scratch, r->xnf, m->output.data, m->output.type, tg, w, T, m->V, E, 8, 2);
    tw_rmsnorm_backward(dx, NULL, dxnf, r->xf, m->out_norm, r->rf, T, E);   /* dx: gradient of the layer output */
#define ZERO(p, n) memset((p), 0, (size_t)(n) * sizeof(float))
#define LB(ti, din, dout, xin, n_out, n_in)                                                                     \
    tw_lora_linear_backward((din), (din), m->L[l].dA[ti], m->L[l].dB[ti], dt, (dout), (xin), a->t[ti],          \
                            m->L[l].w[ti].data, m->L[l].w[ti].type, m->L[l].A[ti], m->L[l].B[ti], m->scale, T,      \
                            (n_out), \
                            (n_in), m->R, 2)
    for (int l = 1; l >= 0; l--) {
        const acts *a = &r->a[l];
        /* x_out = h + down(swiglu(gate(n2(h)), up(n2(h)))) */
        memcpy(dh, dx, (size_t)(T * E) * sizeof *dh);
        ZERO(dsw, T * F);
        LB(6, dsw, dx, a->sw, E, F);
        ZERO(dgate, T * F);
        ZERO(dup, T * F);
        tw_swiglu_backward(dgate, dup, dsw, a->gate, a->up, T * F);
        ZERO(dxn, T * E);
        LB(4, dxn, dgate, a->xn2, F, E);
        LB(5, dxn, dup, a->xn2, F, E);
        tw_rmsnorm_backward(dh, NULL, dxn, a->h, m->L[l].fn, a->r2, T, E);
        /* h = x + o(attn(rope(q), rope(k), v)) */
        memcpy(dx, dh, (size_t)(T * E) * sizeof *dx);
        ZERO(datt, T * Q);
        LB(3, datt, dh, a->att, E, Q);
        ZERO(dqr, T * Q); ZERO(dkr, T * KV); ZERO(dv, T * KV);
        tw_attention_backward(dqr, dkr, dv, delta, datt, a->qr, a->kr, a->v, a->att, a->lse, T, H, HKV, D, 2);
        ZERO(dq, T * Q); ZERO(dk, T * KV);
        tw_rope_backward(dq, dqr, r->cs, T, H, D, m->NR, (int)c->rope_type);
        tw_rope_backward(dk, dkr, r->cs, T, HKV, D, m->NR, (int)c->rope_type);
        float *dqp = dq, *dkp = dk;
        if (m->L[l].qn) {
            ZERO(dq2, T * Q); ZERO(dk2, T * KV);
            tw_rmsnorm_backward(dq2, NULL, dq, a->q, m->L[l].qn, a->rq, T * H, D);
            tw_rmsnorm_backward(dk2, NULL, dk, a->k, m->L[l].kn, a->rk, T * HKV, D);
            dqp = dq2;
            dkp = dk2;
        }
        /* the bias passes the gradient through unchanged (tw_bias_backward dx = dout): the
         * same buffer goes on; its dbias is not trained */
        ZERO(dxn, T * E);
        LB(0, dxn, dqp, a->xn1, Q, E);
        LB(1, dxn, dkp, a->xn1, KV, E);
        LB(2, dxn, dv, a->xn1, KV, E);
        tw_rmsnorm_backward(dx, NULL, dxn, a->x, m->L[l].an, a->r1, T, E);
    }
#undef LB
#undef ZERO
    float *bufs[] = {scratch, dxnf, dx, dh, dxn, dsw, dgate, dup, datt, dqr, dq, dq2, dkr, dk, dk2, dv, delta, dt};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    return loss;
}

static const char *const MODELS[] = {"llama_tiny", "qwen2_tiny", "qwen3_tiny", "llama3_tiny"};

Test(train_model, forward_equals_llama_c)
{
    for (size_t mi = 0; mi < sizeof MODELS / sizeof MODELS[0]; mi++) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/llama/%s", MODELS[mi]);
        tw_error err = {0};
        tw_llama_params lp = tw_llama_default_params();
        lp.matmul = TW_MATMUL_FLOAT;
        lp.n_threads = 2;
        tw_llama *lm = NULL;
        cr_assert_eq(tw_llama_open(&lm, path, &lp, &err), TW_OK, "%s", err.msg);
        tw_kv_params kp = tw_kv_default_params();
        kp.n_cells = 64;
        kp.n_seq = 1;
        kp.type = TW_KV_F32;
        tw_kv *kv = NULL;
        cr_assert_eq(tw_kv_new(&kv, tw_llama_config(lm), &kp, &err), TW_OK, "%s", err.msg);
        const int32_t tok[13] = {1, 37, 200, 5, 91, 14, 255, 3, 77, 120, 64, 9, 180};
        const int64_t T = 13, Vv = tw_llama_n_vocab(lm);
        float *ref = falloc(T * Vv);
        cr_assert_eq(tw_llama_forward(lm, kv, 0, tok, NULL, (int32_t)T, TW_LOGITS_ALL, ref, &err), TW_OK, "%s", err.msg);
        tiny *m = tiny_load(tw_llama_files(lm), 4, 8.0f, TW_TYPE_F32);
        run *r = run_new(m, T);
        tiny_forward(m, r, tok, false, true, NULL, NULL);
        double max_ref = 0, max_err = 0;
        for (int64_t i = 0; i < T * Vv; i++) {
            max_ref = fmax(max_ref, fabs(ref[i]));
            max_err = fmax(max_err, fabs(ref[i] - r->logits[i]));
        }
        cr_log_info("%s: ops forward vs tw_llama_forward logits: max |diff| %.3g (max |logit| %.3g)", MODELS[mi], max_err,
                    max_ref);
        cr_assert(max_err <= 1e-5 * max_ref, "%s: logits differ by %.3g (max %.3g)", MODELS[mi], max_err, max_ref);
        run_free(r);
        tiny_free(m);
        free(ref);
        tw_kv_free(kv);
        tw_llama_free(lm);
    }
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert(j, "%s: %s (run tests/ref/gen_train_fixtures.py)", path, je.text);
    return j;
}

/* targets / weights from the fixture's token sequence: position t predicts token t+1;
 * mean over the unmasked targets (prompt tokens masked) */
static int64_t fixture_seq(const json_t *fx, int32_t *tok, int32_t *tg, float *w)
{
    const json_t *ta = json_object_get(fx, "tokens");
    const int64_t T = (int64_t)json_array_size(ta), P = json_integer_value(json_object_get(fx, "prompt_tokens"));
    for (int64_t i = 0; i < T; i++) tok[i] = (int32_t)json_integer_value(json_array_get(ta, (size_t)i));
    const int64_t n = T - P;   /* targets are tokens P .. T-1, predicted at positions P-1 .. T-2 */
    for (int64_t t = 0; t < T; t++) {
        tg[t] = t + 1 < T ? tok[t + 1] : 0;
        w[t] = t + 1 < T && t + 1 >= P ? 1.0f / (float)n : 0.0f;
    }
    return T;
}

Test(train_model, lora_grads_match_peft)
{
    json_t *fx = load_json("tests/data/train/lora_grads.json");
    const int32_t rank = (int32_t)json_integer_value(json_object_get(fx, "rank"));
    const float alpha = (float)json_number_value(json_object_get(fx, "alpha"));
    int32_t tok[64], tg[64];
    float w[64];
    const int64_t T = fixture_seq(fx, tok, tg, w);
    for (size_t mi = 0; mi < sizeof MODELS / sizeof MODELS[0]; mi++) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/llama/%s", MODELS[mi]);
        tw_error err = {0};
        tw_model_files *mf = NULL;
        cr_assert_eq(tw_model_files_open(&mf, path, &err), TW_OK, "%s", err.msg);
        tiny *m = tiny_load(mf, rank, alpha, TW_TYPE_F32);
        run *r = run_new(m, T);
        const json_t *mj = json_object_get(json_object_get(fx, "models"), MODELS[mi]);
        cr_assert(mj, "fixture lacks %s", MODELS[mi]);
        const double ref_loss = json_number_value(json_object_get(mj, "loss"));
        const double loss = tiny_forward(m, r, tok, true, false, tg, w);
        const double loss2 = tiny_backward(m, r, tg, w);
        cr_assert_eq(loss, loss2);
        cr_log_info("%s: loss %.7f vs PEFT %.7f (rel %.2e)", MODELS[mi], loss, ref_loss, fabs(loss - ref_loss) / ref_loss);
        cr_assert(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "%s: loss %.8g vs PEFT %.8g", MODELS[mi], loss,
                  ref_loss);
        /* gradients in the fixture's order: layer, target, A then B */
        snprintf(path, sizeof path, "tests/data/train/%s.grads.bin", MODELS[mi]);
        size_t nb = 0;
        FILE *f = fopen(path, "rb");
        cr_assert(f, "%s missing (run tests/ref/gen_train_fixtures.py)", path);
        const int64_t nf = json_integer_value(json_object_get(mj, "n_floats"));
        float *ref = falloc(nf);
        nb = fread(ref, sizeof(float), (size_t)nf, f);
        fclose(f);
        cr_assert_eq((int64_t)nb, nf);
        int64_t off = 0;
        double max_ref = 0, max_err = 0, worst_rel = 0;
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < NTGT; t++)
                for (int ab = 0; ab < 2; ab++) {
                    const mweight *wt = &m->L[l].w[t];
                    const int64_t n = ab == 0 ? rank * wt->cols : wt->rows * rank;
                    const float *g = ab == 0 ? m->L[l].dA[t] : m->L[l].dB[t];
                    double tmax = 0, terr = 0;
                    for (int64_t i = 0; i < n; i++) {
                        tmax = fmax(tmax, fabs(ref[off + i]));
                        terr = fmax(terr, fabs(ref[off + i] - g[i]));
                    }
                    max_ref = fmax(max_ref, tmax);
                    max_err = fmax(max_err, terr);
                    if (tmax > 0) worst_rel = fmax(worst_rel, terr / tmax);
                    cr_assert(terr <= 1e-4 * tmax + 1e-6 * max_ref + 1e-7, "%s: layer %d %s lora_%c: max |diff| %.3g of max %.3g",
                              MODELS[mi], l, TGT_GGUF[t], ab ? 'B' : 'A', terr, tmax);
                    off += n;
                }
        cr_assert_eq(off, nf);
        cr_log_info("%s: LoRA grads vs PEFT: max |diff| %.3g, max |g| %.3g, worst per-tensor max|diff|/max|g| %.2e",
                    MODELS[mi], max_err, max_ref, worst_rel);
        free(ref);
        run_free(r);
        tiny_free(m);
        tw_model_files_free(mf);
    }
    json_decref(fx);
}

/* whole-model finite differences of the float loss for a sample of LoRA entries; base
 * weights F32 or Q8_0 (QLoRA: the frozen base is quantized, the LoRA float) */
static void whole_model_fd(const char *name, tw_type qtype)
{
    json_t *fx = load_json("tests/data/train/lora_grads.json");
    int32_t tok[64], tg[64];
    float w[64];
    const int64_t T = fixture_seq(fx, tok, tg, w);
    char path[256];
    snprintf(path, sizeof path, "tests/data/llama/%s", name);
    tw_error err = {0};
    tw_model_files *mf = NULL;
    cr_assert_eq(tw_model_files_open(&mf, path, &err), TW_OK, "%s", err.msg);
    tiny *m = tiny_load(mf, 4, 8.0f, qtype);
    run *r = run_new(m, T);
    tiny_forward(m, r, tok, true, false, tg, w);
    tiny_backward(m, r, tg, w);
    /* (a) the directional derivative along the gradient itself and along 2 random
     * directions u (unit norm over all LoRA parameters): (L(p + h u) - L(p - h u)) / 2h
     * vs g . u. h = 1e-2 (a step of norm 0.01 over ~8k entries of size ~0.1): truncation
     * O(h^2) (measured ~1e-4 of |g| along g itself, where the curvature is largest); float
     * rounding of a loss of 5..50 (~1e-5 absolute) / 2h ~ 5e-4 absolute. Tolerance 2e-3
     * of |g|. (b) single entries (h = 1e-2): 1e-2 of the largest gradient sampled (with
     * h = 1e-3 the float loss's rounding alone made a 7% error on a 0.03 entry of qwen3). */
    const double h = 1e-2;
    int64_t ntot = 0;
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < NTGT; t++) ntot += m->R * m->L[l].w[t].cols + m->L[l].w[t].rows * m->R;
    double *u = dalloc(ntot);
    double gnorm = 0;
    for (int dir = 0; dir < 3; dir++) {
        double un = 0, gu = 0;
        int64_t o = 0;
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < NTGT; t++)
                for (int ab = 0; ab < 2; ab++) {
                    const float *g = ab ? m->L[l].dB[t] : m->L[l].dA[t];
                    const int64_t cnt = ab ? m->L[l].w[t].rows * m->R : m->R * m->L[l].w[t].cols;
                    for (int64_t i = 0; i < cnt; i++, o++) {
                        u[o] = dir == 0 ? g[i] : 2 * urand() - 1;
                        un += u[o] * u[o];
                        if (dir == 0) gnorm += (double)g[i] * g[i];
                    }
                }
        un = sqrt(un);
        double L2[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            o = 0;
            for (int l = 0; l < 2; l++)
                for (int t = 0; t < NTGT; t++)
                    for (int ab = 0; ab < 2; ab++) {
                        float *p = ab ? m->L[l].B[t] : m->L[l].A[t];
                        const int64_t cnt = ab ? m->L[l].w[t].rows * m->R : m->R * m->L[l].w[t].cols;
                        for (int64_t i = 0; i < cnt; i++, o++) p[i] += (float)((sgn ? -2 : 1) * h * u[o] / un);
                    }
            L2[sgn] = tiny_forward(m, r, tok, true, false, tg, w);
        }
        o = 0;
        for (int l = 0; l < 2; l++)   /* restore (p + h u - 2 h u + h u) */
            for (int t = 0; t < NTGT; t++)
                for (int ab = 0; ab < 2; ab++) {
                    float *p = ab ? m->L[l].B[t] : m->L[l].A[t];
                    const float *g = ab ? m->L[l].dB[t] : m->L[l].dA[t];
                    const int64_t cnt = ab ? m->L[l].w[t].rows * m->R : m->R * m->L[l].w[t].cols;
                    for (int64_t i = 0; i < cnt; i++, o++) {
                        p[i] += (float)(h * u[o] / un);
                        gu += (double)g[i] * u[o] / un;
                    }
                }
        const double fd = (L2[0] - L2[1]) / (2 * h);
        const double gn = sqrt(gnorm);
        cr_log_info("%s base %s: direction %s: g.u %.7g, finite differences %.7g, |diff| / |g| = %.2e", name,
                    tw_type_get(qtype)->name, dir == 0 ? "g/|g|" : "random", gu, fd, fabs(gu - fd) / gn);
        cr_assert(fabs(gu - fd) <= 2e-3 * gn, "%s %s: directional derivative %.7g vs finite differences %.7g", name,
                  tw_type_get(qtype)->name, gu, fd);
    }
    free(u);
    double gmax = 0, max_err = 0;
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < NTGT; t++)
            for (int ab = 0; ab < 2; ab++) {
                float *p = ab ? m->L[l].B[t] : m->L[l].A[t];
                const float *g = ab ? m->L[l].dB[t] : m->L[l].dA[t];
                const int64_t cnt = ab ? m->L[l].w[t].rows * m->R : m->R * m->L[l].w[t].cols;
                const int64_t i = (int64_t)(urand() * (double)cnt);
                const float p0 = p[i];
                p[i] = (float)(p0 + h);
                const double lp = tiny_forward(m, r, tok, true, false, tg, w);
                p[i] = (float)(p0 - h);
                const double lm = tiny_forward(m, r, tok, true, false, tg, w);
                p[i] = p0;
                const double fd = (lp - lm) / (2 * h);
                gmax = fmax(gmax, fabs(g[i]));
                max_err = fmax(max_err, fabs(fd - g[i]));
            }
    cr_log_info("%s base %s: 28 single LoRA entries: max |g - fd| %.3g, max |g| %.3g", name, tw_type_get(qtype)->name,
                max_err, gmax);
    cr_assert(max_err <= 1e-2 * gmax, "%s %s: single-entry finite differences off by %.3g (max |g| %.3g)", name,
              tw_type_get(qtype)->name, max_err, gmax);
    run_free(r);
    tiny_free(m);
    tw_model_files_free(mf);
    json_decref(fx);
}

Test(train_model, whole_model_fd_llama) { whole_model_fd("llama_tiny", TW_TYPE_F32); }
Test(train_model, whole_model_fd_qwen3) { whole_model_fd("qwen3_tiny", TW_TYPE_F32); }
Test(train_model, whole_model_fd_qwen2_qlora_q8_0) { whole_model_fd("qwen2_tiny", TW_TYPE_Q8_0); }
