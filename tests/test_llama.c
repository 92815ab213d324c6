/* test_llama.c — the forward pass, KV cache, generation and scoring (src/model/llama.h,
 * kv.h, generate.c) against three oracles:
 *
 *  1. Hugging Face transformers (float32 PyTorch) on tiny random-weight llama / llama3-rope
 *     / qwen2 / qwen3 models (tests/data/llama/<name>/, hf_models.json): logits of every
 *     position of 3 sequences, from the HF folder AND from a GGUF this file writes from the
 *     same weights (Q/K rows permuted as llama.cpp's converter does). Tolerance: max |diff|
 *     <= 1e-4 x max |reference logit| per sequence.
 *  2. llama.cpp (llama-cpp-python) on the real stories260K (greedy continuations token for
 *     token; prompt logits to 1e-4 with f32 caches, 5e-4 with f16 ones) and
 *     SmolLM2-135M-Instruct Q4_1 (exact-float path vs llama.cpp on the F32 dequantization
 *     to 1e-4; with an F16 cache, llama.c's emulation of llama.cpp's numerics: bit for bit
 *     with the ggml-order diagnostic matmuls — logits equal, greedy chat completions token
 *     for token, also on the F32 dequantization — and the production 8-bit path within a
 *     tolerance, see the tests). Fixtures from tests/ref/gen_llama_fixtures.py.
 *  3. An independent straightforward forward pass written here: double accumulation, no
 *     cache (the whole sequence is recomputed for every step), HF semantics (GGUF llama
 *     Q/K rows un-permuted, rotate_half RoPE). It checks KV reuse (prefill once, fork,
 *     two continuations), truncation, explicit positions, batch splitting and scoring.
 */
#include "testutil.h"

#include "base/base.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/kernels.h"
#include "model/llama.h"
#include "model/quant.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>

#define LDIR "tests/data/llama/"

/* ---- helpers ------------------------------------------------------------------------- */

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s (line %d) — run from the repository root", path, je.text, je.line);
    return j;
}

static const char *stories_path(void)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(tw_file_exists(p), "%s is missing (../shared/models)", p);
    return p;
}

static const char *smollm2_path(void)
{
    static char p[1024];
    const char *e = getenv("TW_SMOLLM2");
    if (e) snprintf(p, sizeof p, "%s", e);
    else snprintf(p, sizeof p, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    cr_assert(tw_file_exists(p), "SmolLM2 model not found at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", p);
    return p;
}

static int32_t *json_ids(json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int32_t *v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static tw_llama *open_model(const char *path, tw_llama_params *p)
{
    tw_llama *m = NULL;
    tw_error err;
    tw_status st = tw_llama_open(&m, path, p, &err);
    cr_assert_eq(st, TW_OK, "%s", err.msg);
    return m;
}

static tw_kv *new_kv(const tw_llama *m, int32_t cells, int32_t nseq, tw_kv_type type)
{
    tw_kv_params kp = {.n_cells = cells, .n_seq = nseq, .type = type};
    tw_kv *kv = NULL;
    tw_error err;
    cr_assert_eq(tw_kv_new(&kv, tw_llama_config(m), &kp, &err), TW_OK, "%s", err.msg);
    return kv;
}

static void forward(tw_llama *m, tw_kv *kv, int32_t seq, const int32_t *t, const int32_t *pos, int32_t n,
                    tw_logits_mode mode, float *logits)
{
    tw_error err;
    tw_status st = tw_llama_forward(m, kv, seq, t, pos, n, mode, logits, &err);
    cr_assert_eq(st, TW_OK, "%s", err.msg);
}

/* max |a - b| / max |b| over n values */
static double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d;   /* NaN propagates */
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return md / (mb > 0 ? mb : 1);
}

/* ---- the independent reference forward ----------------------------------------------- */
/* Straightforward and slow on purpose: every weight row dequantized when used, every sum
 * in double, no cache: logits (T, V) for tokens at positions 0..T-1. HF semantics: a
 * GGUF llama's Q/K rows are mapped back to HF order and RoPE is rotate_half. */

typedef struct refm {
    const tw_model_files *mf;
    tw_model_config c;
} refm;

static const tw_model_tensor *rt(const refm *r, const char *fmt, int l)
{
    char nm[96];
    snprintf(nm, sizeof nm, fmt, l);
    const tw_model_tensor *t = tw_model_files_tensor_find(r->mf, nm);
    cr_assert_not_null(t, "tensor %s", nm);
    return t;
}

/* out (R) = W (R, C) x (C) */
static void ref_mv(double *out, const tw_model_tensor *w, const double *x)
{
    int64_t C = w->ne[0], R = w->ne[1];
    size_t rb = tw_type_row_bytes(w->type, (uint64_t)C);
    float *row = malloc((size_t)C * sizeof *row);
    for (int64_t r = 0; r < R; r++) {
        tw_dequantize_row(w->type, row, (const uint8_t *)w->data + (size_t)r * rb, C);
        double s = 0;
        for (int64_t i = 0; i < C; i++) s += (double)row[i] * x[i];
        out[r] = s;
    }
    free(row);
}

static double *ref_vec(const tw_model_tensor *t)
{
    double *v = malloc((size_t)t->ne[0] * sizeof *v);
    float *f = malloc((size_t)t->ne[0] * sizeof *f);
    tw_dequantize_row(t->type, f, t->data, t->ne[0]);
    for (int64_t i = 0; i < t->ne[0]; i++) v[i] = f[i];
    free(f);
    return v;
}

static void ref_rmsnorm(double *out, const double *x, const double *w, int64_t n, double eps)
{
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / (double)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * s * w[i];
}

/* GGUF llama row h*d + 2i + j holds HF row h*d + j*d/2 + i: put rows back in HF order */
static void ref_unpermute(double *x, int64_t heads, int64_t d)
{
    double *tmp = malloc((size_t)d * sizeof *tmp);
    for (int64_t h = 0; h < heads; h++) {
        double *v = x + h * d;
        for (int64_t i = 0; i < d / 2; i++)
            for (int64_t j = 0; j < 2; j++) tmp[j * (d / 2) + i] = v[2 * i + j];
        memcpy(v, tmp, (size_t)d * sizeof *tmp);
    }
    free(tmp);
}

/* HF rotate_half RoPE of heads (heads, d) at position p */
static void ref_rope(double *x, int64_t heads, int64_t d, int64_t p, const refm *r, const double *ff)
{
    const tw_model_config *c = &r->c;
    double fs = c->rope_scaling == TW_ROPE_SCALING_LINEAR ? 1.0 / c->rope_scale : 1.0;
    for (int64_t h = 0; h < heads; h++) {
        double *v = x + h * d;
        for (int64_t i = 0; i < d / 2; i++) {
            double th = fs * (double)p * pow((double)c->rope_freq_base, -2.0 * (double)i / (double)d);
            if (ff) th /= ff[i];
            double a = v[i], b = v[i + d / 2];
            v[i] = a * cos(th) - b * sin(th);
            v[i + d / 2] = a * sin(th) + b * cos(th);
        }
    }
}

static void ref_forward(const tw_model_files *mf, const int32_t *tok, int64_t T, float *logits)
{
    refm r = {.mf = mf, .c = *tw_model_files_config(mf)};
    const tw_model_config *c = &r.c;
    cr_assert_eq(c->n_rot, c->head_dim, "the reference handles full-head RoPE only");
    const int64_t E = c->n_embd, D = c->head_dim, H = c->n_head, HK = c->n_head_kv, F = c->n_ff, V = c->n_vocab;
    const int64_t Q = H * D, KV = HK * D;
    const bool permuted = c->rope_type == TW_ROPE_NORMAL;
    double *x = calloc((size_t)(T * E), sizeof *x), *xn = malloc((size_t)E * sizeof *xn);
    double *q = malloc((size_t)(T * Q) * sizeof *q), *k = malloc((size_t)(T * KV) * sizeof *k);
    double *v = malloc((size_t)(T * KV) * sizeof *v), *att = malloc((size_t)Q * sizeof *att);
    double *o = malloc((size_t)E * sizeof *o), *g = malloc((size_t)F * sizeof *g), *u = malloc((size_t)F * sizeof *u);
    double *sc = malloc((size_t)T * sizeof *sc);
    double *ff = NULL;
    if (c->rope_scaling == TW_ROPE_SCALING_LLAMA3) ff = ref_vec(rt(&r, "rope_freqs.weight", 0));
    const tw_model_tensor *emb = rt(&r, "token_embd.weight", 0);
    float *row = malloc((size_t)E * sizeof *row);
    for (int64_t t = 0; t < T; t++) {
        tw_dequantize_row(emb->type, row, (const uint8_t *)emb->data + (size_t)tok[t] * tw_type_row_bytes(emb->type, (uint64_t)E), E);
        for (int64_t i = 0; i < E; i++) x[t * E + i] = row[i];
    }
    for (int l = 0; l < c->n_layer; l++) {
        double *an = ref_vec(rt(&r, "blk.%d.attn_norm.weight", l)), *fn = ref_vec(rt(&r, "blk.%d.ffn_norm.weight", l));
        double *bq = NULL, *bk = NULL, *bv = NULL, *qn = NULL, *kn = NULL;
        if (c->attn_bias) {
            bq = ref_vec(rt(&r, "blk.%d.attn_q.bias", l));
            bk = ref_vec(rt(&r, "blk.%d.attn_k.bias", l));
            bv = ref_vec(rt(&r, "blk.%d.attn_v.bias", l));
        }
        if (c->qk_norm) {
            qn = ref_vec(rt(&r, "blk.%d.attn_q_norm.weight", l));
            kn = ref_vec(rt(&r, "blk.%d.attn_k_norm.weight", l));
        }
        for (int64_t t = 0; t < T; t++) {
            ref_rmsnorm(xn, x + t * E, an, E, c->rms_eps);
            double *qt = q + t * Q, *kt = k + t * KV, *vt = v + t * KV;
            ref_mv(qt, rt(&r, "blk.%d.attn_q.weight", l), xn);
            ref_mv(kt, rt(&r, "blk.%d.attn_k.weight", l), xn);
            ref_mv(vt, rt(&r, "blk.%d.attn_v.weight", l), xn);
            for (int64_t i = 0; bq && i < Q; i++) qt[i] += bq[i];
            for (int64_t i = 0; bk && i < KV; i++) kt[i] += bk[i];
            for (int64_t i = 0; bv && i < KV; i++) vt[i] += bv[i];
            if (permuted) {
                ref_unpermute(qt, H, D);
                ref_unpermute(kt, HK, D);
            }
            for (int64_t h = 0; qn && h < H; h++) ref_rmsnorm(qt + h * D, qt + h * D, qn, D, c->rms_eps);
            for (int64_t h = 0; kn && h < HK; h++) ref_rmsnorm(kt + h * D, kt + h * D, kn, D, c->rms_eps);
            ref_rope(qt, H, D, t, &r, ff);
            ref_rope(kt, HK, D, t, &r, ff);
        }
        for (int64_t t = 0; t < T; t++) {
            for (int64_t h = 0; h < H; h++) {
                int64_t kh = h / (H / HK);
                double mx = -INFINITY, sum = 0;
                for (int64_t s = 0; s <= t; s++) {
                    double d = 0;
                    for (int64_t i = 0; i < D; i++) d += q[t * Q + h * D + i] * k[s * KV + kh * D + i];
                    sc[s] = d / sqrt((double)D);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int64_t s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int64_t i = 0; i < D; i++) {
                    double a = 0;
                    for (int64_t s = 0; s <= t; s++) a += sc[s] / sum * v[s * KV + kh * D + i];
                    att[h * D + i] = a;
                }
            }
            ref_mv(o, rt(&r, "blk.%d.attn_output.weight", l), att);
            for (int64_t i = 0; i < E; i++) x[t * E + i] += o[i];
            ref_rmsnorm(xn, x + t * E, fn, E, c->rms_eps);
            ref_mv(g, rt(&r, "blk.%d.ffn_gate.weight", l), xn);
            ref_mv(u, rt(&r, "blk.%d.ffn_up.weight", l), xn);
            for (int64_t i = 0; i < F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            ref_mv(o, rt(&r, "blk.%d.ffn_down.weight", l), g);
            for (int64_t i = 0; i < E; i++) x[t * E + i] += o[i];
        }
        free(an); free(fn); free(bq); free(bk); free(bv); free(qn); free(kn);
    }
    double *on = ref_vec(rt(&r, "output_norm.weight", 0)), *lg = malloc((size_t)V * sizeof *lg);
    const tw_model_tensor *out = c->tied_embeddings ? emb : rt(&r, "output.weight", 0);
    for (int64_t t = 0; t < T; t++) {
        ref_rmsnorm(xn, x + t * E, on, E, c->rms_eps);
        ref_mv(lg, out, xn);
        for (int64_t i = 0; i < V; i++) logits[t * V + i] = (float)lg[i];
    }
    free(on); free(lg); free(ff); free(row);
    free(x); free(xn); free(q); free(k); free(v); free(att); free(o); free(g); free(u); free(sc);
}

/* ---- a GGUF from a HF folder, as llama.cpp's converter writes it ---------------------- */

typedef struct perm_src {
    const tw_model_tensor *t;
    int64_t heads;
} perm_src;

/* Rows of attn_q / attn_k, permuted per head (convert_hf_to_gguf.py LlamaModel.permute):
 * GGUF row h*d + 2i + j = HF row h*d + j*(d/2) + i. */
static tw_status fill_permuted(void *user, void *dst, uint64_t row0, uint64_t nrows, tw_error *err)
{
    const perm_src *ps = user;
    int64_t R = ps->t->ne[1], d = R / ps->heads;
    size_t rb = tw_type_row_bytes(ps->t->type, (uint64_t)ps->t->ne[0]);
    for (uint64_t r = row0; r < row0 + nrows; r++) {
        int64_t h = (int64_t)r / d, w = (int64_t)r % d, i = w / 2, j = w % 2;
        int64_t src = h * d + j * (d / 2) + i;
        memcpy((uint8_t *)dst + (r - row0) * rb, (const uint8_t *)ps->t->data + (size_t)src * rb, rb);
    }
    return TW_OK;
}

static char *hf_to_gguf(const char *hf_dir, const char *out_dir)
{
    tw_model_files *mf = NULL;
    tw_error err;
    cr_assert_eq(tw_model_files_open(&mf, hf_dir, &err), TW_OK, "%s", err.msg);
    const tw_model_config *c = tw_model_files_config(mf);
    tw_gguf_writer *w = NULL;
    cr_assert_eq(tw_gguf_writer_new(&w, &err), TW_OK);
    const char *A = tw_arch_name(c->arch);
    char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", A, s), key)
    cr_assert_eq(tw_gguf_writer_set_str(w, "general.architecture", A, (size_t)-1, &err), TW_OK);
    tw_gguf_writer_set_u32(w, KEY("block_count"), (uint32_t)c->n_layer, &err);
    tw_gguf_writer_set_u32(w, KEY("context_length"), (uint32_t)c->n_ctx_train, &err);
    tw_gguf_writer_set_u32(w, KEY("embedding_length"), (uint32_t)c->n_embd, &err);
    tw_gguf_writer_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->n_ff, &err);
    tw_gguf_writer_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head, &err);
    tw_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv, &err);
    tw_gguf_writer_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim, &err);
    tw_gguf_writer_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim, &err);
    tw_gguf_writer_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->n_rot, &err);
    tw_gguf_writer_set_f32(w, KEY("rope.freq_base"), c->rope_freq_base, &err);
    cr_assert_eq(tw_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->rms_eps, &err), TW_OK);
#undef KEY
    int64_t n = tw_model_files_tensor_count(mf);
    perm_src *ps = calloc((size_t)n, sizeof *ps);
    for (int64_t i = 0; i < n; i++) {
        const tw_model_tensor *t = tw_model_files_tensor_at(mf, i);
        size_t L = strlen(t->name);
        bool is_q = L > 14 && strcmp(t->name + L - 14, ".attn_q.weight") == 0;
        bool is_k = L > 14 && strcmp(t->name + L - 14, ".attn_k.weight") == 0;
        tw_status st;
        if (c->arch == TW_ARCH_LLAMA && (is_q || is_k)) {
            ps[i] = (perm_src){.t = t, .heads = is_q ? c->n_head : c->n_head_kv};
            st = tw_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL, fill_permuted, &ps[i], &err);
        } else {
            st = tw_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL, &err);
        }
        cr_assert_eq(st, TW_OK, "%s", err.msg);
    }
    size_t pl = strlen(out_dir) + 32;
    char *path = malloc(pl);
    snprintf(path, pl, "%s/model.gguf", out_dir);
    cr_assert_eq(tw_gguf_writer_write(w, path, &err), TW_OK, "%s", err.msg);
    tw_gguf_writer_free(w);
    free(ps);
    tw_model_files_free(mf);
    return path;
}

/* ---- 1. tiny HF models vs transformers -------------------------------------------------- */

static float *read_f32(const char *path, size_t *n)
{
    char *data;
    size_t len;
    tw_error err;
    cr_assert_eq(tw_file_read(path, &data, &len, &err), TW_OK, "%s", err.msg);
    *n = len / 4;
    return (float *)data;   /* malloc'ed: aligned for float */
}

/* Compare tunewise (HF folder, then a converted GGUF) and the reference path with
 * transformers' logits for each sequence. */
static void check_hf_model(json_t *man, json_t *mod, const char *tmp)
{
    const char *name = json_string_value(json_object_get(mod, "name"));
    const char *dir = json_string_value(json_object_get(mod, "dir"));
    size_t nl;
    float *want = read_f32(json_string_value(json_object_get(mod, "logits")), &nl);
    json_t *seqs = json_object_get(man, "sequences"), *offs = json_object_get(mod, "offsets");
    char *gguf = hf_to_gguf(dir, tmp);
    const char *paths[2] = {dir, gguf};
    for (int src = 0; src < 2; src++) {
        tw_llama *m = open_model(paths[src], NULL);
        const tw_model_config *c = tw_llama_config(m);
        /* the permutation note: GGUF llama needs NORMAL RoPE, everything else NEOX */
        cr_assert_eq(c->rope_type, src == 1 && c->arch == TW_ARCH_LLAMA ? TW_ROPE_NORMAL : TW_ROPE_NEOX, "%s", name);
        int32_t V = c->n_vocab;
        for (size_t s = 0; s < json_array_size(seqs); s++) {
            size_t T;
            int32_t *tok = json_ids(json_array_get(seqs, s), &T);
            const float *ref = want + json_integer_value(json_array_get(offs, s));
            cr_assert_leq((size_t)json_integer_value(json_array_get(offs, s)) + T * (size_t)V, nl);
            float *got = malloc(T * (size_t)V * sizeof *got);
            tw_kv *kv = new_kv(m, (int32_t)T, 1, TW_KV_F32);
            forward(m, kv, 0, tok, NULL, (int32_t)T, TW_LOGITS_ALL, got);
            double e = rel_err(got, ref, T * (size_t)V);
            cr_log_info("%s (%s) seq %zu (%zu tokens): tunewise vs transformers rel err %.2e", name,
                        src ? "GGUF" : "HF", s, T, e);
            cr_expect_leq(e, 1e-4, "%s from %s, sequence %zu: max |diff| / max |logit| = %.3e > 1e-4", name,
                          src ? "converted GGUF" : "HF folder", s, e);
            /* token by token through the cache (decode path, B = 1) */
            tw_kv_seq_clear(kv, 0);
            for (size_t t = 0; t < T; t++) forward(m, kv, 0, &tok[t], NULL, 1, TW_LOGITS_LAST, got + t * (size_t)V);
            e = rel_err(got, ref, T * (size_t)V);
            cr_expect_leq(e, 1e-4, "%s from %s, sequence %zu decoded one token at a time: %.3e > 1e-4", name,
                          src ? "GGUF" : "HF", s, e);
            /* the straightforward reference agrees with transformers too (validates it) */
            ref_forward(tw_llama_files(m), tok, (int64_t)T, got);
            e = rel_err(got, ref, T * (size_t)V);
            cr_log_info("%s (%s) seq %zu: reference path vs transformers rel err %.2e", name, src ? "GGUF" : "HF", s, e);
            cr_expect_leq(e, 1e-5, "%s (%s) sequence %zu: reference path vs transformers %.3e > 1e-5", name,
                          src ? "GGUF" : "HF", s, e);
            tw_kv_free(kv);
            free(got);
            free(tok);
        }
        tw_llama_free(m);
    }
    free(gguf);
    free(want);
}

Test(llama, hf_tiny_models_match_transformers)
{
    json_t *man = load_json(LDIR "hf_models.json");
    json_t *models = json_object_get(man, "models");
    cr_assert_eq(json_array_size(models), 4);
    char *tmp = tw_test_tmpdir();
    size_t i;
    json_t *mod;
    json_array_foreach(models, i, mod) check_hf_model(man, mod, tmp);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    cr_assert_eq(system(cmd), 0);
    free(tmp);
    json_decref(man);
}

/* The arch-specific pieces really matter: dropping them breaks the match (guards against
 * a test that passes because, say, q/k norms are all ones). */
Test(llama, hf_tiny_config_flags)
{
    const char *names[] = {"llama_tiny", "llama3_tiny", "qwen2_tiny", "qwen3_tiny"};
    for (int i = 0; i < 4; i++) {
        char d[256];
        snprintf(d, sizeof d, LDIR "%s", names[i]);
        tw_llama *m = open_model(d, NULL);
        const tw_model_config *c = tw_llama_config(m);
        cr_expect_eq(c->attn_bias, i == 2, "%s attn_bias", names[i]);
        cr_expect_eq(c->qk_norm, i == 3, "%s qk_norm", names[i]);
        cr_expect_eq(c->rope_scaling, i == 1 ? TW_ROPE_SCALING_LLAMA3 : TW_ROPE_SCALING_NONE, "%s scaling", names[i]);
        cr_expect_eq(c->tied_embeddings, i != 0, "%s tied", names[i]);
        if (i == 3) cr_expect_eq(c->head_dim * c->n_head, 128, "qwen3 q width differs from hidden");
        tw_llama_free(m);
    }
}

/* ---- 2. llama.cpp on stories260K and SmolLM2 -------------------------------------------- */

Test(llama, stories260k_matches_llama_cpp)
{
    json_t *fx = load_json(LDIR "stories260k.json");
    tw_llama *m = open_model(stories_path(), NULL);
    tw_tokenizer *tok = NULL;
    tw_error err;
    cr_assert_eq(tw_tokenizer_load(&tok, stories_path(), &err), TW_OK, "%s", err.msg);
    const int32_t V = tw_llama_n_vocab(m);
    size_t i;
    json_t *cs;
    double worst = 0, worst16 = 0;
    json_array_foreach(json_object_get(fx, "cases"), i, cs) {
        const char *prompt = json_string_value(json_object_get(cs, "prompt"));
        size_t n, ng;
        int32_t *want_tok = json_ids(json_object_get(cs, "tokens"), &n);
        int32_t *want_gen = json_ids(json_object_get(cs, "greedy"), &ng);
        /* our tokenizer gives llama.cpp's ids */
        tw_tok_ids ids = {0};
        cr_assert_eq(tw_tokenize_append(tok, prompt, strlen(prompt), TW_TOK_DEFAULT, &ids, &err), TW_OK);
        cr_assert_eq(ids.n, n, "'%s': %zu tokens, llama.cpp %zu", prompt, ids.n, n);
        for (size_t k = 0; k < n; k++) cr_assert_eq(ids.v[k], want_tok[k], "'%s' token %zu", prompt, k);
        /* logits of every prompt position with f32 caches on both sides: the same float
         * computation, so 1e-4 */
        tw_kv *kv = new_kv(m, 128, 1, TW_KV_F32);
        float *lg = malloc(n * (size_t)V * sizeof *lg);
        forward(m, kv, 0, want_tok, NULL, (int32_t)n, TW_LOGITS_ALL, lg);
        json_t *rows = json_object_get(cs, "logits_f32kv");
        for (size_t t = 0; t < n; t++) {
            double md = 0, mx = 0;
            json_t *row = json_array_get(rows, t);
            for (int32_t v = 0; v < V; v++) {
                double r = json_real_value(json_array_get(row, (size_t)v));
                md = fmax(md, fabs(lg[t * (size_t)V + (size_t)v] - r));
                mx = fmax(mx, fabs(r));
            }
            worst = fmax(worst, md / mx);
            cr_expect_leq(md / mx, 1e-4, "'%s' position %zu (f32 KV): max |diff| / max |logit| = %.2e", prompt, t, md / mx);
        }
        tw_kv_free(kv);
        /* f16 caches: both sides round q, K, V and the attention probabilities to f16 (the
         * ggml emulations of llama.c); what is left is the f32 matmuls' summation order,
         * amplified by those roundings (measured 3.7e-5; 1.3e-3 without the emulations) */
        kv = new_kv(m, 128, 1, TW_KV_F16);
        forward(m, kv, 0, want_tok, NULL, (int32_t)n, TW_LOGITS_LAST, lg);
        json_t *last = json_object_get(cs, "last_logits");
        double md = 0, mx = 0;
        for (int32_t v = 0; v < V; v++) {
            double r = json_real_value(json_array_get(last, (size_t)v));
            md = fmax(md, fabs(lg[v] - r));
            mx = fmax(mx, fabs(r));
        }
        worst16 = fmax(worst16, md / mx);
        cr_expect_leq(md / mx, 5e-4, "'%s' last position (f16 KV): max |diff| / max |logit| = %.2e", prompt, md / mx);
        /* greedy continuation, token for token */
        tw_kv_seq_clear(kv, 0);
        tw_gen_params gp = tw_gen_default_params();
        gp.max_tokens = (int32_t)json_integer_value(json_object_get(fx, "n_greedy"));
        tw_gen_result res;
        cr_assert_eq(tw_generate(m, kv, 0, tok, want_tok, (int32_t)n, &gp, &res, &err), TW_OK, "%s", err.msg);
        cr_expect_eq(res.ids.n, ng, "'%s': %zu tokens generated, llama.cpp %zu", prompt, res.ids.n, ng);
        size_t same = 0;
        while (same < ng && same < res.ids.n && res.ids.v[same] == want_gen[same]) same++;
        cr_expect_eq(same, ng, "'%s': greedy diverges from llama.cpp at token %zu ('%s' vs '%s')", prompt, same,
                     res.text.data ? res.text.data : "", json_string_value(json_object_get(cs, "text")));
        cr_expect_str_eq(res.text.data ? res.text.data : "", json_string_value(json_object_get(cs, "text")));
        tw_gen_result_free(&res);
        tw_kv_free(kv);
        free(lg);
        tw_tok_ids_free(&ids);
        free(want_tok);
        free(want_gen);
    }
    cr_log_info("stories260K: worst prompt-logit rel err vs llama.cpp %.2e (f32 KV), %.2e (f16 KV)", worst, worst16);
    tw_tokenizer_free(tok);
    tw_llama_free(m);
    json_decref(fx);
}

/* SmolLM2-135M-Instruct's weights without activation rounding on either side: llama.cpp on
 * the weights dequantized to an F32 GGUF (f32 KV), tunewise on the Q4_1 file with
 * TW_MATMUL_FLOAT (exact dequantization, f32 activations) and an f32 cache: the same
 * float computation of a real 30-layer model, so max |diff| <= 1e-4 x max |logit|. */
Test(llama, smollm2_float_path_matches_llama_cpp_f32, .timeout = 600)
{
    json_t *fx = load_json(LDIR "smollm2.json");
    tw_llama_params lp = tw_llama_default_params();
    lp.matmul = TW_MATMUL_FLOAT;
    tw_llama *m = open_model(smollm2_path(), &lp);
    const int32_t V = tw_llama_n_vocab(m);
    size_t np;
    int32_t *probe = json_ids(json_object_get(fx, "probe_ids"), &np);
    float *lg = malloc((size_t)V * sizeof *lg);
    size_t i;
    json_t *cs;
    json_array_foreach(json_object_get(fx, "logits"), i, cs) {
        size_t n, nt;
        int32_t *tok = json_ids(json_object_get(cs, "tokens"), &n);
        json_t *f = json_object_get(cs, "f32_dequant");
        cr_assert_not_null(f, "fixture without f32_dequant: rerun tests/ref/gen_llama_fixtures.py --llamacpp");
        int32_t *top = json_ids(json_object_get(f, "top_ids"), &nt);
        json_t *tl = json_object_get(f, "top_logits"), *pl = json_object_get(f, "probe_logits");
        tw_kv *kv = new_kv(m, 64, 1, TW_KV_F32);
        forward(m, kv, 0, tok, NULL, (int32_t)n, TW_LOGITS_LAST, lg);
        double md = 0, mx = 0;
        for (size_t k = 0; k < nt + np; k++) {
            double r = k < nt ? json_real_value(json_array_get(tl, k)) : json_real_value(json_array_get(pl, k - nt));
            double g = k < nt ? lg[top[k]] : lg[probe[k - nt]];
            md = fmax(md, fabs(g - r));
            mx = fmax(mx, fabs(r));
        }
        cr_log_info("smollm2 float path, prompt %zu (%zu tokens): max |diff| / max |logit| = %.2e", i, n, md / mx);
        cr_expect_leq(md / mx, 1e-4, "prompt %zu: %.3e", i, md / mx);
        cr_expect_eq(tw_argmax(lg, V), top[0]);
        tw_kv_free(kv);
        free(tok);
        free(top);
    }
    free(lg);
    free(probe);
    tw_llama_free(m);
    json_decref(fx);
}

/* Free-running greedy completion (tw_generate, default sampler = arg max) of a fixture
 * chat case with model m and a fresh F16 cache; the number of leading tokens equal to
 * want[0..nw) goes to *same, the generated text to text (owned). */
static size_t greedy_same(tw_llama *m, const tw_tokenizer *tok, const int32_t *prompt, size_t n, const int32_t *want,
                          size_t nw, int32_t max_tokens, size_t *n_ours, char **text)
{
    tw_kv *kv = new_kv(m, 256, 1, TW_KV_F16);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = max_tokens;
    tw_gen_result res;
    tw_error err;
    cr_assert_eq(tw_generate(m, kv, 0, tok, prompt, (int32_t)n, &gp, &res, &err), TW_OK, "%s", err.msg);
    size_t same = 0;
    while (same < nw && same < res.ids.n && res.ids.v[same] == want[same]) same++;
    *n_ours = res.ids.n;
    *text = strdup(res.text.data ? res.text.data : "");
    tw_gen_result_free(&res);
    tw_kv_free(kv);
    return same;
}

/* SmolLM2-135M-Instruct Q4_1 against llama.cpp on the same file, both with an F16 cache,
 * with the given matmul mode: next-token logits of the fixture prompts listed in prompts
 * (of 3 raw + 2 chat; 64 top + 256 probe ids each; max |diff| <= logit_tol, returned in
 * *md_prompts; arg max must agree) and free-running greedy chat completions (tw_generate,
 * default sampler = arg max) of the fixture cases listed in cases (lists end with -1;
 * NULL: all). strict: each completion must equal llama.cpp's token for token (EOS
 * included); else up to llama.cpp's first close call (its top-2 margin < 0.75).
 * *n_identical counts the completions equal in full, *n_cases those run. */
static bool listed(const int *list, size_t i)
{
    if (!list) return true;
    for (; *list >= 0; list++)
        if ((size_t)*list == i) return true;
    return false;
}

static void smollm2_run(tw_matmul_mode mode, const int *prompts, const int *cases, double logit_tol, bool strict,
                        double *md_prompts, int *n_identical, int *n_cases)
{
    json_t *fx = load_json(LDIR "smollm2.json");
    tw_llama_params lp = tw_llama_default_params();
    lp.matmul = mode;
    tw_llama *m = open_model(smollm2_path(), &lp);
    tw_tokenizer *tok = NULL;
    tw_error err;
    cr_assert_eq(tw_tokenizer_from_gguf(&tok, tw_model_files_gguf(tw_llama_files(m)), &err), TW_OK, "%s", err.msg);
    const int32_t V = tw_llama_n_vocab(m);
    size_t np;
    int32_t *probe = json_ids(json_object_get(fx, "probe_ids"), &np);
    float *lg = malloc((size_t)V * sizeof *lg);
    size_t i;
    json_t *cs;
    *md_prompts = 0;
    json_array_foreach(json_object_get(fx, "logits"), i, cs) {
        if (!listed(prompts, i)) continue;
        const char *text = json_string_value(json_object_get(cs, "text"));
        bool chat = strcmp(json_string_value(json_object_get(cs, "kind")), "chat") == 0;
        size_t n, nt;
        int32_t *want_tok = json_ids(json_object_get(cs, "tokens"), &n);
        tw_tok_ids ids = {0};
        cr_assert_eq(tw_tokenize_append(tok, text, strlen(text), chat ? TW_TOK_PARSE_SPECIAL : 0, &ids, &err), TW_OK);
        cr_assert_eq(ids.n, n, "'%s': token count", text);
        for (size_t k = 0; k < n; k++) cr_assert_eq(ids.v[k], want_tok[k], "'%s' token %zu", text, k);
        tw_kv *kv = new_kv(m, 256, 1, TW_KV_F16);
        forward(m, kv, 0, want_tok, NULL, (int32_t)n, TW_LOGITS_LAST, lg);
        int32_t *top = json_ids(json_object_get(cs, "top_ids"), &nt);
        json_t *tl = json_object_get(cs, "top_logits"), *pl = json_object_get(cs, "probe_logits");
        double md = 0;
        for (size_t k = 0; k < nt + np; k++) {
            double d = k < nt ? lg[top[k]] - json_real_value(json_array_get(tl, k))
                              : lg[probe[k - nt]] - json_real_value(json_array_get(pl, k - nt));
            md = fmax(md, fabs(d));
        }
        *md_prompts = fmax(*md_prompts, md);
        cr_log_info("smollm2 (matmul mode %d) %s '%.24s': max |logit diff| %.3g over %zu ids", (int)mode,
                    chat ? "chat" : "raw", text, md, nt + np);
        cr_expect_leq(md, logit_tol, "'%s': max |logit diff| %.4g > %.4g", text, md, logit_tol);
        cr_expect_eq(tw_argmax(lg, V), top[0], "'%s': arg max", text);
        tw_kv_free(kv);
        tw_tok_ids_free(&ids);
        free(want_tok);
        free(top);
    }
    *n_identical = *n_cases = 0;
    json_array_foreach(json_object_get(fx, "greedy"), i, cs) {
        if (!listed(cases, i)) continue;
        const char *user = json_string_value(json_object_get(cs, "user"));
        size_t n, ng, n_ours;
        int32_t *want_tok = json_ids(json_object_get(cs, "tokens"), &n);
        int32_t *want_gen = json_ids(json_object_get(cs, "greedy"), &ng);
        json_t *margins = json_object_get(cs, "margins");
        double minm = INFINITY;
        for (size_t j = 0; j < ng; j++) minm = fmin(minm, json_real_value(json_array_get(margins, j)));
        char *text = NULL;
        size_t same = greedy_same(m, tok, want_tok, n, want_gen, ng,
                                  (int32_t)json_integer_value(json_object_get(fx, "n_greedy")), &n_ours, &text);
        bool ok = same == ng && n_ours == ng;
        size_t first_close = ng;   /* first step where llama.cpp's own top-2 margin < 0.75 */
        for (size_t j = 0; j < ng && first_close == ng; j++)
            if (json_real_value(json_array_get(margins, j)) < 0.75) first_close = j;
        cr_log_info("smollm2 (matmul mode %d) chat '%s': greedy identical for %zu/%zu tokens (llama.cpp's smallest "
                    "top-2 margin %.4f, first below 0.75 at step %zu)", (int)mode, user, same, ng, minm, first_close);
        if (strict)
            cr_expect(ok, "'%s': greedy diverges from llama.cpp at token %zu (%zu generated, llama.cpp %zu): '%s' vs '%s'",
                      user, same, n_ours, ng, text, json_string_value(json_object_get(cs, "text")));
        else
            cr_expect_geq(same, first_close, "'%s': greedy diverges from llama.cpp at token %zu, before its first close "
                          "call (step %zu): '%s' vs '%s'", user, same, first_close, text,
                          json_string_value(json_object_get(cs, "text")));
        *n_identical += ok;
        (*n_cases)++;
        free(text);
        free(want_tok);
        free(want_gen);
    }
    free(lg);
    free(probe);
    tw_tokenizer_free(tok);
    tw_llama_free(m);
    json_decref(fx);
}

/* The numerics spec, bit for bit: the ggml emulations of an F16 cache (llama.c) with
 * TW_MATMUL_GGML_Q8, activations rounded as ggml's q8_1 / q8_0 blocks and summed in ggml's
 * lanes. Every tensor of the prompt forward is then bit-identical to llama.cpp's (checked
 * layer by layer with tests/ref/llama_numerics_diag.c's traces), the logits too: measured
 * max |diff| 0 on the 5 prompts and on all 224 steps of the 6 completions (teacher-forced),
 * all 6 completions identical. Because this scalar mode takes ~0.1 s per token (minutes
 * under ASan), the test runs the 3 raw prompts and the completion with llama.cpp's closest
 * calls ("How do I boil an egg?": top-2 margins 0.0007, 0.007, 0.009); tolerance 1e-4
 * leaves room only for a libm whose cosf / sinf / powf round differently in the last place. */
Test(llama, smollm2_ggml_q8_matches_llama_cpp_bit_for_bit, .timeout = 600)
{
    const int prompts[] = {0, 1, 2, -1}, cases[] = {2, -1};
    double md;
    int ident, n;
    smollm2_run(TW_MATMUL_GGML_Q8, prompts, cases, 1e-4, true, &md, &ident, &n);
    cr_expect_eq(n, 1, "fixture case missing: rerun tests/ref/gen_llama_fixtures.py --llamacpp");
    cr_log_info("smollm2 ggml q8 path: max |logit diff| %.3g on the prompts, %d/%d completions identical", md, ident, n);
}

/* The production path (TW_MATMUL_FAST): kernels.c computes Q4_1 and Q8_0 products in
 * llama.cpp's float order at every batch size (tw_matmul_ggml_order: ggml's q8 activation
 * blocks, eight int32 lanes per block, the same FMA and reduction order), and llama.c
 * emulates the rest of ggml's graph with an F16 cache. So the logits are llama.cpp's to
 * the last bit (tolerance 1e-4: a libm whose cosf / sinf / powf round differently in the
 * last place) and every one of the 6 greedy chat completions (40 tokens, llama.cpp's own
 * top-2 margins down to 0.0007) is identical token for token. */
Test(llama, smollm2_matches_llama_cpp, .timeout = 600)
{
    double md;
    int ident, n;
    smollm2_run(TW_MATMUL_FAST, NULL, NULL, 1e-4, true, &md, &ident, &n);
    cr_expect_eq(n, 6, "fixture: 6 greedy chat cases expected");
    cr_expect_eq(ident, n, "%d of %d completions identical", ident, n);
    cr_log_info("smollm2 production path: max |logit diff| %.3g on the prompts, %d/%d completions identical", md, ident,
                n);
}

/* The ggml emulations on their own, independent of the 8-bit matmuls: llama.cpp on the F32
 * dequantization of the file (f16 cache) against TW_MATMUL_GGML_FLOAT (the same float
 * products summed in ggml's f32 orders) on the Q4_1 file: the whole computation is then
 * the same to the last bit (checked tensor by tensor with tests/ref/llama_numerics_diag.py;
 * logits equal on all 168 teacher-forced steps of 6 completions), so greedy completions are
 * identical token for token; the fixture's second case (39 tokens) is identical too but
 * left out for time. */
Test(llama, smollm2_ggml_float_greedy_matches_llama_cpp_f32, .timeout = 600)
{
    json_t *fx = load_json(LDIR "smollm2.json");
    tw_llama_params lp = tw_llama_default_params();
    lp.matmul = TW_MATMUL_GGML_FLOAT;
    tw_llama *m = open_model(smollm2_path(), &lp);
    tw_tokenizer *tok = NULL;
    tw_error err;
    cr_assert_eq(tw_tokenizer_from_gguf(&tok, tw_model_files_gguf(tw_llama_files(m)), &err), TW_OK, "%s", err.msg);
    size_t i, checked = 0;
    json_t *cs;
    json_array_foreach(json_object_get(fx, "greedy"), i, cs) {
        json_t *f = json_object_get(cs, "f32_dequant");
        if (!f || i > 0) continue;   /* the first (8 tokens to EOS): ~0.1 s a token, minutes under ASan */
        const char *user = json_string_value(json_object_get(cs, "user"));
        size_t n, ng, n_ours;
        int32_t *want_tok = json_ids(json_object_get(cs, "tokens"), &n);
        int32_t *want_gen = json_ids(json_object_get(f, "greedy"), &ng);
        char *text = NULL;
        size_t same = greedy_same(m, tok, want_tok, n, want_gen, ng,
                                  (int32_t)json_integer_value(json_object_get(fx, "n_greedy")), &n_ours, &text);
        cr_log_info("smollm2 F32 dequant, ggml float order, '%s': greedy identical for %zu/%zu tokens", user, same, ng);
        cr_expect(same == ng && n_ours == ng, "'%s': greedy diverges from llama.cpp (F32 dequantization) at token %zu "
                  "(%zu generated, llama.cpp %zu): '%s'", user, same, n_ours, ng, text);
        free(text);
        free(want_tok);
        free(want_gen);
        checked++;
    }
    cr_expect_eq(checked, 1, "fixture without f32_dequant greedy cases: rerun tests/ref/gen_llama_fixtures.py --llamacpp");
    tw_tokenizer_free(tok);
    tw_llama_free(m);
    json_decref(fx);
}

/* ---- 3. the optimized path vs the straightforward one ------------------------------------ */

/* last-row logits of the reference for tok[0..T) */
static void ref_last(const tw_model_files *mf, const int32_t *tok, int64_t T, float *out, int32_t V)
{
    float *all = malloc((size_t)T * (size_t)V * sizeof *all);
    ref_forward(mf, tok, T, all);
    memcpy(out, all + (size_t)(T - 1) * (size_t)V, (size_t)V * sizeof *out);
    free(all);
}

/* Prefill a prefix once, fork it, decode two different continuations (one per sequence,
 * interleaved), compare every step with recomputing the whole sequence from scratch. */
static void check_fork(const char *path, tw_kv_type kt, double tol)
{
    tw_llama *m = open_model(path, NULL);
    const tw_model_files *mf = tw_llama_files(m);
    const int32_t V = tw_llama_n_vocab(m);
    int32_t prefix[9], a[6], b[6];
    for (int i = 0; i < 9; i++) prefix[i] = (int32_t)((i * 37 + 11) % V);
    for (int i = 0; i < 6; i++) {
        a[i] = (int32_t)((i * 53 + 5) % V);
        b[i] = (int32_t)((i * 29 + 101) % V);
    }
    tw_kv *kv = new_kv(m, 64, 2, kt);
    float *got = malloc((size_t)V * sizeof *got), *want = malloc((size_t)V * sizeof *want);
    forward(m, kv, 0, prefix, NULL, 9, TW_LOGITS_LAST, got);
    ref_last(mf, prefix, 9, want, V);
    cr_expect_leq(rel_err(got, want, (size_t)V), tol, "%s: prefill", path);
    tw_error err;
    cr_assert_eq(tw_kv_seq_fork(kv, 1, 0, &err), TW_OK);
    int32_t used = tw_kv_n_cells(kv) - tw_kv_cells_free(kv);
    cr_expect_eq(used, 9, "fork shares cells: %d in use", used);
    int32_t seqa[15], seqb[15];
    memcpy(seqa, prefix, sizeof prefix);
    memcpy(seqb, prefix, sizeof prefix);
    for (int i = 0; i < 6; i++) {
        for (int s = 0; s < 2; s++) {
            int32_t *full = s ? seqb : seqa;
            full[9 + i] = s ? b[i] : a[i];
            forward(m, kv, s, &full[9 + i], NULL, 1, TW_LOGITS_LAST, got);
            ref_last(mf, full, 10 + i, want, V);
            double e = rel_err(got, want, (size_t)V);
            cr_expect_leq(e, tol, "%s: sequence %d step %d: rel err %.2e > %.0e", path, s, i, e, tol);
        }
    }
    cr_expect_eq(tw_kv_n_cells(kv) - tw_kv_cells_free(kv), 9 + 12);
    /* truncate sequence 1 back to the prefix and decode a's tokens there: same logits as
     * sequence 0 had */
    tw_kv_seq_truncate(kv, 1, 9);
    cr_expect_eq(tw_kv_seq_len(kv, 1), 9);
    cr_expect_eq(tw_kv_seq_pos_max(kv, 1), 8);
    forward(m, kv, 1, a, NULL, 3, TW_LOGITS_LAST, got);
    ref_last(mf, seqa, 12, want, V);
    cr_expect_leq(rel_err(got, want, (size_t)V), tol, "%s: after truncate", path);
    tw_kv_seq_clear(kv, 0);
    tw_kv_seq_clear(kv, 1);
    cr_expect_eq(tw_kv_cells_free(kv), tw_kv_n_cells(kv), "all cells back after clearing");
    free(got);
    free(want);
    tw_kv_free(kv);
    tw_llama_free(m);
}

Test(llama, fork_decode_equals_recompute)
{
    /* f32 KV: 1e-4; f16 KV rounds keys and values to 11 bits: 2e-3 */
    check_fork(stories_path(), TW_KV_F32, 1e-4);
    check_fork(stories_path(), TW_KV_F16, 2e-3);
    check_fork(LDIR "qwen3_tiny", TW_KV_F32, 1e-4);
    check_fork(LDIR "qwen2_tiny", TW_KV_F32, 1e-4);
    check_fork(LDIR "llama3_tiny", TW_KV_F32, 1e-4);
}

/* Batches larger than max_batch are split; explicit positions in two calls equal one
 * call; the reference-kernel switch gives the same logits. */
Test(llama, batching_positions_and_ref_kernels)
{
    tw_llama_params small = tw_llama_default_params();
    small.max_batch = 3;
    tw_llama *m = open_model(stories_path(), NULL), *ms = open_model(stories_path(), &small);
    tw_llama_params rp = tw_llama_default_params();
    rp.matmul = TW_MATMUL_REF;
    tw_llama *mr = open_model(stories_path(), &rp);
    const int32_t V = tw_llama_n_vocab(m);
    int32_t tok[20], pos[20];
    for (int i = 0; i < 20; i++) {
        tok[i] = (int32_t)((i * 71 + 3) % V);
        pos[i] = i;
    }
    float *a = malloc(20 * (size_t)V * sizeof *a), *b = malloc(20 * (size_t)V * sizeof *b);
    float *r = malloc(20 * (size_t)V * sizeof *r);
    tw_kv *kv = new_kv(m, 64, 2, TW_KV_F32);
    forward(m, kv, 0, tok, NULL, 20, TW_LOGITS_ALL, a);
    forward(ms, kv, 1, tok, NULL, 20, TW_LOGITS_ALL, b);
    cr_expect_leq(rel_err(b, a, 20 * (size_t)V), 1e-5, "max_batch 3 vs 512");
    ref_forward(tw_llama_files(m), tok, 20, r);
    cr_expect_leq(rel_err(a, r, 20 * (size_t)V), 1e-4, "batch of 20 vs reference");
    /* two calls with explicit positions (the second given out of order) */
    tw_kv_seq_clear(kv, 1);
    forward(m, kv, 1, tok, pos, 12, TW_LOGITS_NONE, NULL);
    int32_t t2[8], p2[8];
    for (int i = 0; i < 8; i++) {
        t2[i] = tok[19 - i];
        p2[i] = pos[19 - i];
    }
    forward(m, kv, 1, t2, p2, 8, TW_LOGITS_ALL, b);
    for (int i = 0; i < 8; i++) {
        double e = rel_err(b + (size_t)i * (size_t)V, a + (size_t)(19 - i) * (size_t)V, (size_t)V);
        cr_expect_leq(e, 1e-4, "position %d given out of order: %.2e", 19 - i, e);
    }
    tw_kv_seq_clear(kv, 0);
    forward(mr, kv, 0, tok, NULL, 20, TW_LOGITS_ALL, b);
    cr_expect_leq(rel_err(b, r, 20 * (size_t)V), 1e-5, "ref kernels vs reference");
    tw_kv_free(kv);
    free(a);
    free(b);
    free(r);
    tw_llama_free(m);
    tw_llama_free(ms);
    tw_llama_free(mr);
}

/* log p(choice | prompt) = sum of per-token log-softmax, against the reference path. */
Test(llama, score_choices_equal_reference_logprobs)
{
    tw_llama *m = open_model(LDIR "qwen2_tiny", NULL);
    const int32_t V = tw_llama_n_vocab(m);
    int32_t prompt[7] = {3, 17, 200, 45, 9, 120, 77};
    int32_t c0[1] = {12}, c1[3] = {100, 4, 250}, c2[2] = {8, 8};
    const int32_t *choices[3] = {c0, c1, c2};
    int32_t lens[3] = {1, 3, 2};
    double lp[3], pt0[1], pt1[3], pt2[2];
    double *per[3] = {pt0, pt1, pt2};
    tw_kv *kv = new_kv(m, 32, 2, TW_KV_F32);
    tw_error err;
    cr_assert_eq(tw_llama_score_choices(m, kv, 0, 1, prompt, 7, choices, lens, 3, lp, per, &err), TW_OK, "%s", err.msg);
    cr_expect_eq(tw_kv_seq_len(kv, 0), 7, "the prompt stays in its sequence");
    cr_expect_eq(tw_kv_seq_len(kv, 1), 0, "the scratch sequence is cleared");
    cr_expect_eq(tw_kv_cells_free(kv), 32 - 7);
    for (int c = 0; c < 3; c++) {
        int32_t full[10];
        memcpy(full, prompt, sizeof prompt);
        memcpy(full + 7, choices[c], (size_t)lens[c] * sizeof(int32_t));
        float *all = malloc((size_t)(7 + lens[c]) * (size_t)V * sizeof *all);
        ref_forward(tw_llama_files(m), full, 7 + lens[c], all);
        double sum = 0;
        for (int j = 0; j < lens[c]; j++) {
            double want = tw_log_softmax_at(all + (size_t)(6 + j) * (size_t)V, V, choices[c][j]);
            cr_expect(fabs(per[c][j] - want) <= 1e-4 * fmax(1.0, fabs(want)), "choice %d token %d: %.6f vs %.6f", c, j,
                      per[c][j], want);
            sum += want;
        }
        cr_expect(fabs(lp[c] - sum) <= 1e-4 * fmax(1.0, fabs(sum)), "choice %d: %.6f vs %.6f", c, lp[c], sum);
        free(all);
    }
    tw_kv_free(kv);
    tw_llama_free(m);
}

/* A multi-sequence batch (runs of forks of one prompt, and an unrelated sequence between
 * them, split across chunks by a small max_batch) gives every token the logits of the same
 * tokens run sequence by sequence. */
static void check_multi(tw_kv_type kt)
{
    tw_llama_params lp = tw_llama_default_params();
    lp.max_batch = 4;   /* runs cross chunk boundaries */
    tw_llama *m = open_model(stories_path(), &lp);
    const int32_t V = tw_llama_n_vocab(m);
    tw_error err;
    int32_t prompt[10] = {1, 403, 407, 261, 378, 300, 333, 285, 271, 302};
    int32_t other[5] = {1, 350, 290, 261, 410};
    /* runs: seq 1 (3 tokens), seq 4 (fresh, 2), seq 2 (1), seq 3 (4) */
    int32_t seqs[10] = {1, 1, 1, 4, 4, 2, 3, 3, 3, 3};
    int32_t toks[10] = {300, 301, 302, 303, 304, 305, 306, 307, 308, 309};
    tw_kv *kv = new_kv(m, 64, 5, kt);
    forward(m, kv, 0, prompt, NULL, 10, TW_LOGITS_NONE, NULL);
    for (int s = 1; s <= 3; s++) cr_assert_eq(tw_kv_seq_fork(kv, s, 0, &err), TW_OK);
    forward(m, kv, 4, other, NULL, 5, TW_LOGITS_NONE, NULL);
    float *got = malloc((size_t)10 * (size_t)V * sizeof *got), *want = malloc((size_t)4 * (size_t)V * sizeof *want);
    cr_assert_eq(tw_llama_forward_multi(m, kv, seqs, toks, NULL, 10, TW_LOGITS_ALL, got, &err), TW_OK, "%s", err.msg);
    cr_expect_eq(tw_kv_seq_len(kv, 1), 13);
    cr_expect_eq(tw_kv_seq_pos_max(kv, 3), 13, "default positions continue each sequence");
    cr_expect_eq(tw_kv_seq_len(kv, 4), 7);
    cr_expect_eq(tw_kv_seq_len(kv, 0), 10, "the forked prompt is untouched");
    for (int r0 = 0, r1; r0 < 10; r0 = r1) {
        for (r1 = r0 + 1; r1 < 10 && seqs[r1] == seqs[r0];) r1++;
        tw_kv *k1 = new_kv(m, 64, 1, kt);
        if (seqs[r0] == 4) forward(m, k1, 0, other, NULL, 5, TW_LOGITS_NONE, NULL);
        else forward(m, k1, 0, prompt, NULL, 10, TW_LOGITS_NONE, NULL);
        forward(m, k1, 0, toks + r0, NULL, r1 - r0, TW_LOGITS_ALL, want);
        double e = rel_err(got + (size_t)r0 * (size_t)V, want, (size_t)(r1 - r0) * (size_t)V);
        /* alone, a 1-token run is not "batched" (ggml's attention order differs): rounding only */
        cr_expect(e <= 1e-5, "run of seq %d: rel err %g", seqs[r0], e);
        tw_kv_free(k1);
    }
    /* errors: a sequence split in two runs, a bad sequence id; nothing stored */
    int32_t split[3] = {1, 2, 1}, bad[1] = {9};
    int32_t before = tw_kv_cells_free(kv);
    cr_expect_eq(tw_llama_forward_multi(m, kv, split, toks, NULL, 3, TW_LOGITS_NONE, NULL, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "must be contiguous") != NULL, "%s", err.msg);
    cr_expect_eq(tw_llama_forward_multi(m, kv, bad, toks, NULL, 1, TW_LOGITS_NONE, NULL, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "sequence id 9 not in 0..4") != NULL, "%s", err.msg);
    cr_expect_eq(tw_kv_cells_free(kv), before);
    free(got);
    free(want);
    tw_kv_free(kv);
    tw_llama_free(m);
}

Test(llama, multi_sequence_batch_equals_separate_forwards_f16) { check_multi(TW_KV_F16); }
Test(llama, multi_sequence_batch_equals_separate_forwards_f32) { check_multi(TW_KV_F32); }

/* Scoring many choices: with 40 scratch sequences they go through a few multi-sequence
 * forwards, with 1 scratch sequence one by one; both equal each choice scored alone, to
 * float rounding (1e-4 relative: the batch size picks ggml's matmul and attention orders,
 * so a 2-token choice alone and the same tokens among 50 round differently; a wrong mask
 * or position would be off by whole units). */
Test(llama, score_choices_batched_equals_one_at_a_time)
{
    tw_llama *m = open_model(stories_path(), NULL);
    tw_error err;
    enum { NC = 30 };
    int32_t prompt[6] = {1, 403, 407, 261, 378, 300};
    int32_t store[NC][4], lens[NC];
    const int32_t *ch[NC];
    for (int c = 0; c < NC; c++) {
        lens[c] = 1 + c % 4;   /* 1..4 tokens */
        for (int j = 0; j < lens[c]; j++) store[c][j] = 260 + (c * 7 + j * 13) % 240;
        ch[c] = store[c];
    }
    double many[NC], one[NC], alone;
    tw_kv *kv = new_kv(m, 256, 41, TW_KV_F16), *k2 = new_kv(m, 256, 2, TW_KV_F16);
    cr_assert_eq(tw_llama_score_choices(m, kv, 0, 1, prompt, 6, ch, lens, NC, many, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_llama_score_choices(m, k2, 0, 1, prompt, 6, ch, lens, NC, one, NULL, &err), TW_OK, "%s", err.msg);
    cr_expect_eq(tw_kv_cells_free(kv), 256 - 6, "scratch sequences cleared");
    for (int s = 1; s < 41; s++) cr_expect_eq(tw_kv_seq_len(kv, s), 0);
    for (int c = 0; c < NC; c++) {
        tw_kv *k1 = new_kv(m, 64, 2, TW_KV_F16);
        cr_assert_eq(tw_llama_score_choices(m, k1, 0, 1, prompt, 6, &ch[c], &lens[c], 1, &alone, NULL, &err), TW_OK);
        cr_expect(fabs(many[c] - alone) <= 1e-4 * fmax(1.0, fabs(alone)), "choice %d: batched %.9g vs alone %.9g", c, many[c],
                  alone);
        cr_expect(fabs(one[c] - alone) <= 1e-4 * fmax(1.0, fabs(alone)), "choice %d: one scratch %.9g vs alone %.9g", c, one[c],
                  alone);
        tw_kv_free(k1);
    }
    cr_expect_eq(tw_llama_score_choices(m, k2, 0, 2, prompt, 6, ch, lens, 1, &alone, NULL, &err), TW_ERR_INVALID,
                 "no scratch sequence");
    tw_kv_free(kv);
    tw_kv_free(k2);
    tw_llama_free(m);
}

/* ---- the cache on its own, and errors ------------------------------------------------------ */

Test(llama, kv_cache_bookkeeping)
{
    tw_model_config c = {.n_layer = 2, .n_head_kv = 2, .head_dim = 4};
    tw_kv_params kp = {.n_cells = 8, .n_seq = 3, .type = TW_KV_F16};
    tw_kv *kv = NULL;
    tw_error err;
    cr_assert_eq(tw_kv_new(&kv, &c, &kp, &err), TW_OK);
    cr_expect_eq(tw_kv_bytes(kv), 2ull * 2 * 8 * 8 * 2);
    int32_t pos[5] = {0, 1, 2, 3, 4}, cells[5];
    cr_assert_eq(tw_kv_seq_append(kv, 0, pos, 5, cells, &err), TW_OK);
    for (int i = 0; i < 5; i++) cr_expect_eq(cells[i], i, "fresh cache fills cells in order");
    cr_assert_eq(tw_kv_seq_fork(kv, 1, 0, &err), TW_OK);
    cr_assert_eq(tw_kv_seq_fork(kv, 2, 1, &err), TW_OK);
    cr_expect_eq(tw_kv_cell_refs(kv, 3), 3);
    cr_expect_eq(tw_kv_cells_free(kv), 3);
    tw_kv_seq_truncate(kv, 0, 2);   /* seq 0 keeps positions 0, 1 */
    cr_expect_eq(tw_kv_seq_len(kv, 0), 2);
    cr_expect_eq(tw_kv_cell_refs(kv, 3), 2, "still held by the forks");
    cr_expect_eq(tw_kv_cells_free(kv), 3);
    tw_kv_seq_clear(kv, 1);
    tw_kv_seq_clear(kv, 2);
    cr_expect_eq(tw_kv_cells_free(kv), 6, "positions 2..4 freed once nobody holds them");
    cr_expect_eq(tw_kv_cell_pos(kv, 4), -1);
    /* all or nothing when full */
    int32_t p7[7] = {2, 3, 4, 5, 6, 7, 8}, c7[7];
    tw_status st = tw_kv_seq_append(kv, 0, p7, 7, c7, &err);
    cr_expect_eq(st, TW_ERR_RUNTIME);
    cr_expect(strstr(err.msg, "KV cache full: 6 of 8 cells free, 7 needed") != NULL, "%s", err.msg);
    cr_expect_eq(tw_kv_seq_len(kv, 0), 2);
    cr_expect_eq(tw_kv_seq_fork(kv, 0, 0, &err), TW_ERR_INVALID);
    cr_expect_eq(tw_kv_seq_fork(kv, 5, 0, &err), TW_ERR_INVALID);
    int32_t neg = -1;
    cr_expect_eq(tw_kv_seq_append(kv, 0, &neg, 1, c7, &err), TW_ERR_INVALID);
    tw_kv_free(kv);
    tw_kv_free(NULL);
}

Test(llama, forward_errors)
{
    tw_llama *m = open_model(stories_path(), NULL);
    tw_llama *q = open_model(LDIR "qwen3_tiny", NULL);
    tw_kv *kv = new_kv(m, 4, 1, TW_KV_F32), *kq = new_kv(q, 4, 1, TW_KV_F32);
    float *lg = malloc((size_t)tw_llama_n_vocab(m) * sizeof *lg);
    tw_error err;
    int32_t bad = 512, ok[5] = {1, 2, 3, 4, 5};
    cr_expect_eq(tw_llama_forward(m, kv, 0, &bad, NULL, 1, TW_LOGITS_LAST, lg, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "id 512 outside the vocabulary of 512") != NULL, "%s", err.msg);
    cr_expect_eq(tw_llama_forward(m, kq, 0, ok, NULL, 1, TW_LOGITS_LAST, lg, &err), TW_ERR_INVALID, "cache of another model");
    cr_expect_eq(tw_llama_forward(m, kv, 1, ok, NULL, 1, TW_LOGITS_LAST, lg, &err), TW_ERR_INVALID, "bad sequence");
    cr_expect_eq(tw_llama_forward(m, kv, 0, ok, NULL, 5, TW_LOGITS_LAST, lg, &err), TW_ERR_RUNTIME, "cache full");
    cr_expect_eq(tw_kv_seq_len(kv, 0), 0, "nothing stored on error");
    tw_llama *none = NULL;
    cr_expect_neq(tw_llama_open(&none, LDIR "no_such_model", NULL, &err), TW_OK);
    cr_expect_null(none);
    tw_llama_free(NULL);
    free(lg);
    tw_kv_free(kv);
    tw_kv_free(kq);
    tw_llama_free(m);
    tw_llama_free(q);
}

/* Streaming with a stop string that spans tokens: the pieces given to the callback
 * concatenate to the final text, which ends before the stop string. */
typedef struct stream_acc {
    tw_buf b;
    int calls;
} stream_acc;

static bool acc_text(void *user, const char *t, size_t n)
{
    stream_acc *a = user;
    tw_buf_append(&a->b, t, n);
    a->calls++;
    return true;
}

Test(llama, generate_stop_string_across_tokens)
{
    tw_llama *m = open_model(stories_path(), NULL);
    tw_tokenizer *tok = NULL;
    tw_error err;
    cr_assert_eq(tw_tokenizer_load(&tok, stories_path(), &err), TW_OK);
    tw_tok_ids ids = {0};
    cr_assert_eq(tw_tokenize_append(tok, "Once upon a time", 16, TW_TOK_DEFAULT, &ids, &err), TW_OK);
    tw_kv *kv = new_kv(m, 128, 1, TW_KV_F32);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = 40;
    tw_gen_result full;
    cr_assert_eq(tw_generate(m, kv, 0, tok, ids.v, (int32_t)ids.n, &gp, &full, &err), TW_OK);
    /* a stop string made of the end of one generated token and the start of a later one */
    const char *txt = full.text.data;
    cr_assert_gt(full.text.len, 30);
    size_t cut = 0, acc = 0;
    tw_detok dt;
    tw_detok_init(&dt, tok, 0);
    tw_buf piece = {0};
    for (size_t k = 0; k < full.ids.n && !cut; k++) {
        tw_buf_clear(&piece);
        tw_detok_push(&dt, full.ids.v[k], &piece, &err);
        if (acc >= 12 && piece.len >= 2) cut = acc + piece.len - 1;   /* last byte of this token */
        acc += piece.len;
    }
    tw_buf_free(&piece);
    cr_assert_gt(cut, 0);
    char stop[8];
    memcpy(stop, txt + cut, 4);   /* spans the token boundary after byte `cut` */
    stop[4] = '\0';
    size_t first = (size_t)(strstr(txt, stop) - txt);
    const char *stops[2] = {"never appears", stop};
    gp.stops = stops;
    gp.n_stops = 2;
    stream_acc sa = {0};
    gp.on_text = acc_text;
    gp.user = &sa;
    tw_kv_seq_clear(kv, 0);
    tw_gen_result res;
    cr_assert_eq(tw_generate(m, kv, 0, tok, ids.v, (int32_t)ids.n, &gp, &res, &err), TW_OK);
    cr_expect_eq(res.stop, TW_STOP_STRING);
    cr_expect_eq(res.text.len, first, "text cut at the stop string ('%s' in '%s')", stop, txt);
    cr_expect(memcmp(res.text.data, txt, first) == 0);
    cr_expect_eq(sa.b.len, res.text.len, "streamed pieces concatenate to the text");
    cr_expect(sa.b.len == 0 || memcmp(sa.b.data, res.text.data, sa.b.len) == 0);
    cr_expect_gt(sa.calls, 1, "streamed in several pieces");
    cr_expect_lt(res.n_gen, full.n_gen, "stopped early");
    tw_buf_free(&sa.b);
    tw_gen_result_free(&res);
    tw_gen_result_free(&full);
    tw_tok_ids_free(&ids);
    tw_kv_free(kv);
    tw_tokenizer_free(tok);
    tw_llama_free(m);
}

/* ---- the CLI: tunewise run / bench ---------------------------------------------------------- */

static int cli(const char *args, char **out, char **err)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", tw_test_bin(), args);
    return tw_test_run(cmd, out, err);
}

Test(llama, cli_run_and_bench)
{
    cr_assert(tw_file_exists(tw_test_bin()), "%s not built (make)", tw_test_bin());
    char args[1024], *out, *err;
    /* streamed greedy text equals the library's greedy generation */
    tw_llama *m = open_model(stories_path(), NULL);
    tw_tokenizer *tok = NULL;
    tw_error e;
    cr_assert_eq(tw_tokenizer_load(&tok, stories_path(), &e), TW_OK);
    tw_tok_ids ids = {0};
    cr_assert_eq(tw_tokenize_append(tok, "Lily and Tom", 12, TW_TOK_DEFAULT, &ids, &e), TW_OK);
    tw_kv *kv = new_kv(m, 64, 1, TW_KV_F16);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = 24;
    tw_gen_result res;
    cr_assert_eq(tw_generate(m, kv, 0, tok, ids.v, (int32_t)ids.n, &gp, &res, &e), TW_OK);
    snprintf(args, sizeof args, "run -m %s -p 'Lily and Tom' -n 24", stories_path());
    cr_assert_eq(cli(args, &out, &err), 0, "%s", err);
    cr_expect_eq(strlen(out), res.text.len + 1, "text + newline: '%s' vs '%s'", out, res.text.data);
    cr_expect(strncmp(out, res.text.data, res.text.len) == 0);
    cr_expect(strstr(err, "prompt 5 tokens") != NULL && strstr(err, "tok/s") != NULL, "stats on stderr: %s", err);
    free(out);
    free(err);
    /* --json, a JSON-array --stop, sampling options */
    snprintf(args, sizeof args, "run -m %s -p 'Lily and Tom' -n 24 --json --stop '[\"zzz\", \"%.3s\"]'", stories_path(),
             res.text.data + 10);
    cr_assert_eq(cli(args, &out, &err), 0, "%s", err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "%s", out);
    cr_expect_str_eq(json_string_value(json_object_get(j, "stop")), "stop");
    const char *jt = json_string_value(json_object_get(j, "text"));
    cr_expect_leq(strlen(jt), 10, "cut at the stop string: '%s'", jt);
    cr_expect_eq(json_integer_value(json_object_get(j, "prompt_tokens")), 5, "BOS + 4 tokens");
    json_decref(j);
    free(out);
    free(err);
    snprintf(args, sizeof args, "run -m %s -p 'Lily' -n 16 --temp 0.8 --seed 3 --top-k 20 --json", stories_path());
    char *out2, *err2;
    cr_assert_eq(cli(args, &out, &err), 0, "%s", err);
    cr_assert_eq(cli(args, &out2, &err2), 0, "%s", err2);
    json_t *j1 = json_loads(out, 0, &je), *j2 = json_loads(out2, 0, &je);
    cr_assert(j1 && j2);
    cr_expect(json_equal(json_object_get(j1, "tokens"), json_object_get(j2, "tokens")), "same seed, same tokens");
    cr_expect_eq(json_array_size(json_object_get(j1, "tokens")), 16);
    json_decref(j1);
    json_decref(j2);
    free(out); free(err); free(out2); free(err2);
    /* usage errors exit 2 */
    cr_expect_eq(cli("run -p hi", &out, &err), 2);
    cr_expect(strstr(err, "--model") != NULL, "%s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "run -m %s -p hi --kv-type q8", stories_path());
    cr_expect_eq(cli(args, &out, &err), 2);
    free(out); free(err);
    /* bench --json */
    snprintf(args, sizeof args, "bench -m %s -p 32 -n 8 -r 1 -t 1 --json", stories_path());
    cr_assert_eq(cli(args, &out, &err), 0, "%s", err);
    j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "%s", out);
    cr_expect_gt(json_real_value(json_object_get(j, "prefill_tok_s")), 0.0);
    cr_expect_gt(json_real_value(json_object_get(j, "decode_tok_s")), 0.0);
    cr_expect_gt(json_real_value(json_object_get(j, "peak_rss_mib")), 1.0);
    cr_expect_eq(json_integer_value(json_object_get(j, "n_prompt")), 32);
    json_decref(j);
    free(out); free(err);
    tw_gen_result_free(&res);
    tw_tok_ids_free(&ids);
    tw_kv_free(kv);
    tw_tokenizer_free(tok);
    tw_llama_free(m);
}
