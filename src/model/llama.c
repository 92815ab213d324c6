/* llama.c — the llama-family forward pass (llama.h): weights referenced in place from a
 * tw_model_files, one activation arena sized at load, and per layer
 *
 *   h  = x + Wo · attn(rope(Wq·n1(x) + bq), rope(Wk·n1(x) + bk), Wv·n1(x) + bv)
 *   x' = h + Wdown · (silu(Wgate·n2(h)) * Wup·n2(h))
 *
 * with n1 / n2 RMSNorms, GQA (query head h reads KV head h / (n_head / n_head_kv)),
 * softmax(q·k / sqrt(head_dim)) over the cells of the sequence at positions <= the
 * query's, qwen3's per-head RMSNorm of q and k before RoPE, and logits = Wout · n(x).
 * (Touvron et al. 2023 "LLaMA"; transformers' modeling_llama / qwen2 / qwen3; llama.cpp
 * src/models/llama.cpp, qwen2.cpp, qwen3.cpp.)
 *
 * RoPE and the Q/K permutation: llama.cpp's converter permutes the rows of a llama
 * model's attn_q / attn_k so that its "normal" RoPE (pairs 2i, 2i+1) equals HF's
 * rotate_half (pairs i, i + d/2) on the original rows. tw_model_config.rope_type says
 * which one the raw tensors need (NORMAL for GGUF llama, NEOX otherwise), and q·k is
 * invariant to a permutation applied to both q and k within a head, so using that RoPE
 * on the raw rows is exact: no tensor is permuted at load.
 *
 * Deliberately not here: kernels (kernels.c), the cache's bookkeeping (kv.c), sampling
 * (sample.c), the generation / scoring loops (generate.c). */
#include "model/llama.h"
#include "model/kernels.h"
#include "model/quant.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TW_LLAMA_MAX_HEAD_DIM 512    /* attention's stack rows; real models use <= 256 */

typedef struct wref {
    const void *data;
    tw_type type;
    int64_t rows, cols;
} wref;

typedef struct layer {
    const float *attn_norm, *ffn_norm;
    const float *bq, *bk, *bv;           /* qwen2 (NULL otherwise) */
    const float *q_norm, *k_norm;        /* qwen3 (NULL otherwise) */
    wref wq, wk, wv, wo, w_gate, w_up, w_down;
} layer;

struct tw_llama {
    tw_model_config cfg;
    const tw_model_files *mf;
    tw_model_files *own_mf;
    tw_llama_params p;
    wref tok_embd, output;
    const float *output_norm;
    const float *rope_freqs;             /* n_rot / 2 llama3 factors, or NULL */
    float freq_scale;                    /* 1 / rope_scale for linear scaling, else 1 */
    layer *layers;
    float *vecs;                         /* owned f32 copies of the 1-D tensors */
    void **copies;                       /* owned copies of misaligned 2-D weights */
    int n_copies;
    /* the arena: one allocation, views below; B = p.max_batch */
    float *arena;
    size_t arena_floats;
    float *x;        /* (B, E) residual stream */
    float *xn;       /* (B, max(E, Q)) normed input / projection output */
    float *q;        /* (B, Q) */
    float *k, *v;    /* (B, KV) */
    float *att;      /* (B, Q) attention output */
    float *gate, *up;/* (B, F) */
    float *cs;       /* (B, n_rot) RoPE cos/sin tables */
    int32_t *cells;  /* (B) cache cells of the chunk */
    int32_t *pos;    /* (B) positions of the chunk */
    /* attention scratch (ensure_attn), for caches of up to attn_cap cells */
    float *attn_buf, *att_k, *att_v, *att_s, *att_q, *att_o;
    int32_t attn_cap;
};

tw_llama_params tw_llama_default_params(void)
{
    return (tw_llama_params){.max_batch = 512, .n_threads = 0, .matmul = TW_MATMUL_FAST};
}

const tw_model_config *tw_llama_config(const tw_llama *m) { return &m->cfg; }
const tw_model_files *tw_llama_files(const tw_llama *m) { return m->mf; }
int32_t tw_llama_n_vocab(const tw_llama *m) { return m->cfg.n_vocab; }
uint64_t tw_llama_arena_bytes(const tw_llama *m) { return (uint64_t)m->arena_floats * sizeof(float); }
void tw_llama_set_threads(tw_llama *m, int n_threads) { m->p.n_threads = n_threads; }

void tw_llama_free(tw_llama *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_copies; i++) free(m->copies[i]);
    free(m->copies);
    free(m->layers);
    free(m->vecs);
    free(m->arena);
    free(m->attn_buf);
    tw_model_files_free(m->own_mf);
    free(m);
}

/* ---- loading ------------------------------------------------------------------------ */

/* A 2-D weight (rows, cols) = GGML ne {cols, rows}. Shapes were checked by
 * tw_model_files_check; here the type must be one the kernels multiply, and the data
 * 4-byte aligned as kernels.h requires (GGUF data always is; a safetensors file with an
 * odd header length may not be: such a tensor is copied once). */
static tw_status get_weight(tw_llama *m, const char *name, wref *w, tw_error *err)
{
    const tw_model_tensor *t = tw_model_files_tensor_find(m->mf, name);
    if (!t) return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': missing", tw_model_files_path(m->mf), name);
    if (!tw_quant_supported(t->type)) {
        const tw_type_info *ti = tw_type_get(t->type);
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': type %s is not supported by the matmul kernels",
                            tw_model_files_path(m->mf), name, ti ? ti->name : "?");
    }
    w->data = t->data;
    w->type = t->type;
    w->cols = t->ne[0];
    w->rows = t->ne[1];
    if ((uintptr_t)t->data % 4 != 0) {
        void **nc = realloc(m->copies, (size_t)(m->n_copies + 1) * sizeof *nc);
        if (!nc) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        m->copies = nc;
        void *c = malloc(t->nbytes);
        if (!c) return tw_error_set(err, TW_ERR_NOMEM, "out of memory copying tensor '%s' (%llu bytes)", name,
                                    (unsigned long long)t->nbytes);
        memcpy(c, t->data, t->nbytes);
        m->copies[m->n_copies++] = c;
        w->data = c;
    }
    return TW_OK;
}

/* 1-D tensors (norms, biases, RoPE factors) become f32 in m->vecs: first count, then fill. */
typedef struct vec_plan {
    size_t used;
    bool fill;
} vec_plan;

static tw_status get_vec(tw_llama *m, vec_plan *vp, const char *name, int64_t n, const float **out, tw_error *err)
{
    const tw_model_tensor *t = tw_model_files_tensor_find(m->mf, name);
    if (!t) return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': missing", tw_model_files_path(m->mf), name);
    if (t->ne[0] != n || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected %lld elements, found dims [%lld, %lld]",
                            tw_model_files_path(m->mf), name, (long long)n, (long long)t->ne[0], (long long)t->ne[1]);
    if (t->type != TW_TYPE_F32 && t->type != TW_TYPE_F16 && t->type != TW_TYPE_BF16)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': a 1-D tensor must be F32, F16 or BF16",
                            tw_model_files_path(m->mf), name);
    if (vp->fill) {
        float *dst = m->vecs + vp->used;
        tw_dequantize_row(t->type, dst, t->data, n);   /* byte-wise: no alignment needed */
        *out = dst;
    }
    vp->used += (size_t)n;
    return TW_OK;
}

static tw_status bind(tw_llama *m, vec_plan *vp, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    tw_status st;
    char nm[96];
    if ((st = get_vec(m, vp, "output_norm.weight", c->n_embd, &m->output_norm, err))) return st;
    if (c->rope_scaling == TW_ROPE_SCALING_LLAMA3 &&
        (st = get_vec(m, vp, "rope_freqs.weight", c->n_rot / 2, &m->rope_freqs, err)))
        return st;
    for (int l = 0; l < c->n_layer; l++) {
        layer *L = &m->layers[l];
#define VEC(suffix, n, dst)                                                    \
    do {                                                                       \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);                       \
        if ((st = get_vec(m, vp, nm, (n), (dst), err))) return st;             \
    } while (0)
        VEC("attn_norm.weight", c->n_embd, &L->attn_norm);
        VEC("ffn_norm.weight", c->n_embd, &L->ffn_norm);
        if (c->attn_bias) {
            VEC("attn_q.bias", (int64_t)c->n_head * c->head_dim, &L->bq);
            VEC("attn_k.bias", (int64_t)c->n_head_kv * c->head_dim, &L->bk);
            VEC("attn_v.bias", (int64_t)c->n_head_kv * c->head_dim, &L->bv);
        }
        if (c->qk_norm) {
            VEC("attn_q_norm.weight", c->head_dim, &L->q_norm);
            VEC("attn_k_norm.weight", c->head_dim, &L->k_norm);
        }
#undef VEC
        if (!vp->fill) continue;
#define W(suffix, dst)                                                         \
    do {                                                                       \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);                       \
        if ((st = get_weight(m, nm, (dst), err))) return st;                   \
    } while (0)
        W("attn_q.weight", &L->wq);
        W("attn_k.weight", &L->wk);
        W("attn_v.weight", &L->wv);
        W("attn_output.weight", &L->wo);
        W("ffn_gate.weight", &L->w_gate);
        W("ffn_up.weight", &L->w_up);
        W("ffn_down.weight", &L->w_down);
#undef W
    }
    if (vp->fill) {
        if ((st = get_weight(m, "token_embd.weight", &m->tok_embd, err))) return st;
        if (c->tied_embeddings) m->output = m->tok_embd;
        else if ((st = get_weight(m, "output.weight", &m->output, err))) return st;
    }
    return TW_OK;
}

static tw_status alloc_arena(tw_llama *m, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    size_t B = (size_t)m->p.max_batch, E = (size_t)c->n_embd, Q = (size_t)c->n_head * (size_t)c->head_dim;
    size_t KV = (size_t)c->n_head_kv * (size_t)c->head_dim, F = (size_t)c->n_ff, R = (size_t)c->n_rot;
    size_t EQ = E > Q ? E : Q;
    size_t sizes[] = {B * E, B * EQ, B * Q, B * KV, B * KV, B * Q, B * F, B * F, B * R, B, B};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) & ~(size_t)15;   /* 64-byte steps */
    m->arena = aligned_alloc(64, total * sizeof(float));
    if (!m->arena)
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory allocating %zu bytes of activations (batch %d)",
                            total * sizeof(float), m->p.max_batch);
    memset(m->arena, 0, total * sizeof(float));
    m->arena_floats = total;
    float *p = m->arena;
    float **views[] = {&m->x, &m->xn, &m->q, &m->k, &m->v, &m->att, &m->gate, &m->up, &m->cs};
    size_t i = 0;
    for (; i < sizeof views / sizeof views[0]; i++) {
        *views[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    m->cells = (int32_t *)p;   /* int32 and float are both 4 bytes */
    p += (sizes[i++] + 15) & ~(size_t)15;
    m->pos = (int32_t *)p;
    return TW_OK;
}

tw_status tw_llama_new(tw_llama **out, const tw_model_files *mf, const tw_llama_params *p, tw_error *err)
{
    *out = NULL;
    tw_status st = tw_model_files_check(mf, err);
    if (st) return st;
    tw_llama *m = calloc(1, sizeof *m);
    if (!m) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    m->mf = mf;
    m->cfg = *tw_model_files_config(mf);
    m->p = p ? *p : tw_llama_default_params();
    if (m->p.max_batch < 1 || m->p.max_batch > (1 << 20)) {
        tw_llama_free(m);
        return tw_error_set(err, TW_ERR_INVALID, "max batch %d not in 1..%d", m->p.max_batch, 1 << 20);
    }
    if ((unsigned)m->p.matmul > TW_MATMUL_REF) {
        tw_llama_free(m);
        return tw_error_set(err, TW_ERR_INVALID, "unknown matmul mode %d", (int)m->p.matmul);
    }
    const tw_model_config *c = &m->cfg;
    if (c->rope_scaling == TW_ROPE_SCALING_YARN) {
        tw_llama_free(m);
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: YaRN RoPE scaling is not supported", tw_model_files_path(mf));
    }
    if (c->head_dim > TW_LLAMA_MAX_HEAD_DIM) {
        tw_llama_free(m);
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: head size %d exceeds %d", tw_model_files_path(mf), c->head_dim,
                            TW_LLAMA_MAX_HEAD_DIM);
    }
    m->freq_scale = c->rope_scaling == TW_ROPE_SCALING_LINEAR ? 1.0f / c->rope_scale : 1.0f;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->layers) {
        tw_llama_free(m);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    vec_plan vp = {0};
    if ((st = bind(m, &vp, err)) == TW_OK) {
        m->vecs = malloc((vp.used ? vp.used : 1) * sizeof(float));
        if (!m->vecs) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    if (st == TW_OK) {
        vp = (vec_plan){.used = 0, .fill = true};
        st = bind(m, &vp, err);
    }
    if (st == TW_OK) st = alloc_arena(m, err);
    if (st) {
        tw_llama_free(m);
        return st;
    }
    *out = m;
    return TW_OK;
}

tw_status tw_llama_open(tw_llama **out, const char *path, const tw_llama_params *p, tw_error *err)
{
    *out = NULL;
    tw_model_files *mf = NULL;
    tw_status st = tw_model_files_open(&mf, path, err);
    if (st) return st;
    tw_llama *m = NULL;
    if ((st = tw_llama_new(&m, mf, p, err))) {
        tw_model_files_free(mf);
        return st;
    }
    m->own_mf = mf;
    *out = m;
    return TW_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

static int n_threads(const tw_llama *m) { return m->p.n_threads > 0 ? m->p.n_threads : omp_get_max_threads(); }

/* out (B, w.rows) = x (B, w.cols) · W^T */
static void mm(const tw_llama *m, float *out, const float *x, const wref *w, int64_t B)
{
    switch (m->p.matmul) {
    case TW_MATMUL_REF: tw_matmul_ref(out, x, w->data, w->type, B, w->rows, w->cols); break;
    case TW_MATMUL_FLOAT: tw_matmul_float(out, x, w->data, w->type, B, w->rows, w->cols, n_threads(m)); break;
    default: tw_matmul(out, x, w->data, w->type, B, w->rows, w->cols, n_threads(m)); break;
    }
}

static void add_bias(float *x, const float *b, int64_t B, int64_t n)
{
    if (!b) return;
    for (int64_t i = 0; i < B; i++) tw_add(x + i * n, x + i * n, b, n);
}

/* Store the chunk's k / v rows (B, KV) into their cells of layer l. */
static void store_kv(tw_kv *kv, int32_t l, const int32_t *cells, const float *k, const float *v, int64_t B, int64_t KV)
{
    for (int64_t i = 0; i < B; i++) {
        if (tw_kv_type_of(kv) == TW_KV_F32) {
            memcpy(tw_kv_k(kv, l, cells[i]), k + i * KV, (size_t)KV * sizeof(float));
            memcpy(tw_kv_v(kv, l, cells[i]), v + i * KV, (size_t)KV * sizeof(float));
        } else {
            tw_fp32_to_fp16_row(tw_kv_k(kv, l, cells[i]), k + i * KV, KV);
            tw_fp32_to_fp16_row(tw_kv_v(kv, l, cells[i]), v + i * KV, KV);
        }
    }
}

/* Query rows per attention block: bounds the score matrix at ATT_ROWS x n_cells floats
 * whatever the batch. */
#define ATT_ROWS 64

/* att (B, n_head*D): for token i and head h, softmax over the cells c of the sequence
 * with pos[c] <= pos_i of q_ih · K[c, h/group] / sqrt(D), applied to V[c, h/group].
 *
 * As matrix products, so prefill runs at sgemm speed: the sequence's keys and values of
 * this layer are gathered once (f16 widened to f32) into Kc (HKV, n, D) and Vt (HKV, D, n);
 * then per KV head, the query rows of its `group` heads, a block of tokens at a time, give
 *   S (rows, n) = Qg · Kc[hk]^T,  masked by position, scaled, softmax per row,
 *   Og (rows, D) = S · Vt[hk]^T
 * with tw_matmul on f32 operands (exact float, no activation rounding). */
static void attention(tw_llama *m, const tw_kv *kv, int32_t l, int32_t seq, const int32_t *qpos, int64_t B)
{
    const tw_model_config *c = &m->cfg;
    const int64_t D = c->head_dim, H = c->n_head, HKV = c->n_head_kv, group = H / HKV;
    const int64_t Q = H * D, KV = HKV * D;
    int32_t n32;
    const int32_t *cells = tw_kv_seq_cells(kv, seq, &n32);
    const int64_t n = n32;
    const int32_t *cpos = tw_kv_cell_positions(kv);
    const bool f16 = tw_kv_type_of(kv) == TW_KV_F16;
    const tw_kernel_ops *ops = tw_kernels_ops();
    const int nt = n_threads(m);
    float *Kc = m->att_k, *Vt = m->att_v, *S = m->att_s, *Qg = m->att_q, *Og = m->att_o;
    /* gather: row j of the sequence -> Kc[hk][j][:], Vt[hk][:][j] */
    const bool par = nt > 1 && (double)n * (double)KV >= 65536.0;
    #pragma omp parallel for schedule(static) num_threads(nt) if (par)
    for (int64_t j = 0; j < n; j++) {
        const unsigned char *kr = tw_kv_k_const(kv, l, cells[j]), *vr = tw_kv_v_const(kv, l, cells[j]);
        const size_t es = f16 ? 2 : 4;
        for (int64_t hk = 0; hk < HKV; hk++) {
            float vb[TW_LLAMA_MAX_HEAD_DIM];
            float *kd = Kc + (hk * n + j) * D;
            if (f16) {
                ops->dequant(TW_TYPE_F16, kd, kr + (size_t)(hk * D) * es, D);
                ops->dequant(TW_TYPE_F16, vb, vr + (size_t)(hk * D) * es, D);
            } else {
                memcpy(kd, kr + (size_t)(hk * D) * es, (size_t)D * sizeof(float));
                memcpy(vb, vr + (size_t)(hk * D) * es, (size_t)D * sizeof(float));
            }
            float *vt = Vt + hk * D * n + j;
            for (int64_t d = 0; d < D; d++) vt[d * n] = vb[d];
        }
    }
    const float scale = 1.0f / sqrtf((float)D);
    for (int64_t hk = 0; hk < HKV; hk++) {
        for (int64_t i0 = 0; i0 < B; i0 += ATT_ROWS) {
            const int64_t bi = B - i0 < ATT_ROWS ? B - i0 : ATT_ROWS, rows = bi * group;
            for (int64_t i = 0; i < bi; i++)
                for (int64_t g = 0; g < group; g++)
                    memcpy(Qg + (i * group + g) * D, m->q + (i0 + i) * Q + (hk * group + g) * D, (size_t)D * sizeof(float));
            tw_matmul(S, Qg, Kc + hk * n * D, TW_TYPE_F32, rows, n, D, nt);
            for (int64_t r = 0; r < rows; r++) {
                float *sr = S + r * n;
                const int32_t qp = qpos[i0 + r / group];
                for (int64_t j = 0; j < n; j++) sr[j] = cpos[cells[j]] > qp ? -INFINITY : sr[j] * scale;
                tw_softmax(sr, n);   /* the query's own cell is always visible: never all -inf */
            }
            tw_matmul(Og, S, Vt + hk * D * n, TW_TYPE_F32, rows, D, n, nt);
            for (int64_t i = 0; i < bi; i++)
                for (int64_t g = 0; g < group; g++)
                    memcpy(m->att + (i0 + i) * Q + (hk * group + g) * D, Og + (i * group + g) * D, (size_t)D * sizeof(float));
        }
    }
}

/* Attention scratch (Kc, Vt for the cache's n_cells; S for ATT_ROWS x group rows): grown
 * when a larger cache is first used, never per token. */
static tw_status ensure_attn(tw_llama *m, const tw_kv *kv, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    int32_t cap = tw_kv_n_cells(kv);
    if (cap <= m->attn_cap) return TW_OK;
    const size_t D = (size_t)c->head_dim, KV = (size_t)c->n_head_kv * D, group = (size_t)(c->n_head / c->n_head_kv);
    const size_t rows = (size_t)ATT_ROWS * group;
    size_t total = 2 * (size_t)cap * KV + rows * (size_t)cap + 2 * rows * D;
    float *p = malloc(total * sizeof *p);
    if (!p) return tw_error_set(err, TW_ERR_NOMEM, "out of memory for attention scratch (%zu bytes)", total * sizeof *p);
    free(m->attn_buf);
    m->attn_buf = p;
    m->attn_cap = cap;
    m->att_k = p;
    m->att_v = m->att_k + (size_t)cap * KV;
    m->att_s = m->att_v + (size_t)cap * KV;
    m->att_q = m->att_s + rows * (size_t)cap;
    m->att_o = m->att_q + rows * D;
    return TW_OK;
}

/* One chunk of n <= max_batch tokens at positions m->pos[0..n). */
static tw_status forward_chunk(tw_llama *m, tw_kv *kv, int32_t seq, const int32_t *tokens, int64_t n,
                               tw_logits_mode mode, float *logits, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    const int64_t E = c->n_embd, D = c->head_dim, H = c->n_head, HKV = c->n_head_kv;
    const int64_t Q = H * D, KV = HKV * D, F = c->n_ff, NR = c->n_rot;
    tw_status st = tw_kv_seq_append(kv, seq, m->pos, (int32_t)n, m->cells, err);
    if (st) return st;
    for (int64_t i = 0; i < n; i++) {
        tw_get_row(m->x + i * E, m->tok_embd.data, m->tok_embd.type, tokens[i], E);
        tw_rope_table(m->cs + i * NR, NR, m->pos[i], c->rope_freq_base, m->freq_scale, m->rope_freqs);
    }
    for (int32_t l = 0; l < c->n_layer; l++) {
        const layer *L = &m->layers[l];
        for (int64_t i = 0; i < n; i++) tw_rmsnorm(m->xn + i * E, m->x + i * E, L->attn_norm, E, c->rms_eps);
        mm(m, m->q, m->xn, &L->wq, n);
        mm(m, m->k, m->xn, &L->wk, n);
        mm(m, m->v, m->xn, &L->wv, n);
        add_bias(m->q, L->bq, n, Q);
        add_bias(m->k, L->bk, n, KV);
        add_bias(m->v, L->bv, n, KV);
        for (int64_t i = 0; i < n; i++) {
            float *q = m->q + i * Q, *k = m->k + i * KV;
            if (L->q_norm) {
                for (int64_t h = 0; h < H; h++) tw_rmsnorm(q + h * D, q + h * D, L->q_norm, D, c->rms_eps);
                for (int64_t h = 0; h < HKV; h++) tw_rmsnorm(k + h * D, k + h * D, L->k_norm, D, c->rms_eps);
            }
            tw_rope_apply(q, H, D, NR, m->cs + i * NR, (int)c->rope_type);
            tw_rope_apply(k, HKV, D, NR, m->cs + i * NR, (int)c->rope_type);
        }
        store_kv(kv, l, m->cells, m->k, m->v, n, KV);
        attention(m, kv, l, seq, m->pos, n);
        mm(m, m->xn, m->att, &L->wo, n);
        tw_add(m->x, m->x, m->xn, n * E);
        for (int64_t i = 0; i < n; i++) tw_rmsnorm(m->xn + i * E, m->x + i * E, L->ffn_norm, E, c->rms_eps);
        mm(m, m->gate, m->xn, &L->w_gate, n);
        mm(m, m->up, m->xn, &L->w_up, n);
        tw_swiglu(m->gate, m->gate, m->up, n * F);
        mm(m, m->xn, m->gate, &L->w_down, n);
        tw_add(m->x, m->x, m->xn, n * E);
    }
    if (mode == TW_LOGITS_NONE) return TW_OK;
    int64_t first = mode == TW_LOGITS_ALL ? 0 : n - 1;
    for (int64_t i = first; i < n; i++) tw_rmsnorm(m->xn + i * E, m->x + i * E, m->output_norm, E, c->rms_eps);
    mm(m, logits, m->xn + first * E, &m->output, n - first);
    return TW_OK;
}

tw_status tw_llama_forward(tw_llama *m, tw_kv *kv, int32_t seq, const int32_t *tokens, const int32_t *pos, int32_t n,
                           tw_logits_mode mode, float *logits, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    if (!tw_kv_matches(kv, c))
        return tw_error_set(err, TW_ERR_INVALID, "forward: the KV cache was made for another model shape");
    if (seq < 0 || seq >= tw_kv_n_seq(kv))
        return tw_error_set(err, TW_ERR_INVALID, "forward: sequence id %d not in 0..%d", seq, tw_kv_n_seq(kv) - 1);
    if (n < 0) return tw_error_set(err, TW_ERR_INVALID, "forward: negative token count %d", n);
    if (n == 0) {
        if (mode != TW_LOGITS_NONE) return tw_error_set(err, TW_ERR_INVALID, "forward: no tokens, so no logits");
        return TW_OK;
    }
    if (mode != TW_LOGITS_NONE && !logits) return tw_error_set(err, TW_ERR_INVALID, "forward: logits buffer is NULL");
    for (int32_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->n_vocab)
            return tw_error_set(err, TW_ERR_INVALID, "forward: token %d: id %d outside the vocabulary of %d", i, tokens[i],
                                c->n_vocab);
        if (pos && pos[i] < 0) return tw_error_set(err, TW_ERR_INVALID, "forward: token %d: negative position %d", i, pos[i]);
    }
    if (n > tw_kv_cells_free(kv))
        return tw_error_set(err, TW_ERR_RUNTIME, "KV cache full: %d of %d cells free, %d needed (use a larger context)",
                            tw_kv_cells_free(kv), tw_kv_n_cells(kv), n);
    tw_status st = ensure_attn(m, kv, err);
    if (st) return st;
    const int32_t B = m->p.max_batch;
    for (int32_t done = 0; done < n; done += B) {
        int32_t nb = n - done < B ? n - done : B;
        int32_t next = tw_kv_seq_pos_max(kv, seq) + 1;
        for (int32_t i = 0; i < nb; i++) m->pos[i] = pos ? pos[done + i] : next + i;
        bool last = done + nb == n;
        tw_logits_mode cm = mode == TW_LOGITS_ALL ? TW_LOGITS_ALL : (last ? mode : TW_LOGITS_NONE);
        float *lo = mode == TW_LOGITS_ALL ? logits + (size_t)done * (size_t)c->n_vocab : logits;
        if ((st = forward_chunk(m, kv, seq, tokens + done, nb, cm, lo, err))) return st;
    }
    return TW_OK;
}
