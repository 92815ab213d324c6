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
 * Numerics: with an F32 KV cache the plain float path; with an F16 cache (llama.cpp's
 * default) each op rounds as llama.cpp's CPU backend does (the "llama.cpp's CPU numerics"
 * section below, docs/inference.md "Matching llama.cpp"), so that greedy decoding agrees
 * with llama.cpp token for token. Two diagnostic matmul modes (TW_MATMUL_GGML_FLOAT /
 * _GGML_Q8) sum as ggml's kernels do; they are the reference for kernels.c, not fast.
 *
 * Deliberately not here: kernels (kernels.c), the cache's bookkeeping (kv.c), sampling
 * (sample.c), the generation / scoring loops (generate.c). */
#include "model/llama.h"
#include "model/kernels.h"
#include "model/lora.h"
#include "model/quant.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TW_LLAMA_MAX_HEAD_DIM 512
#define TRACE(nm, l, x, r, c) \
    do {                                                                       \
        if (m->trace) m->trace(m->trace_user, (nm), (l), (x), (r), (c));       \
    } while (0)    /* attention's stack rows; real models use <= 256 */

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
    int32_t *seqs;   /* (B) sequence of each token of the chunk */
    /* attention scratch (ensure_attn), for caches of up to attn_cap cells */
    float *attn_buf, *att_k, *att_v, *att_s, *att_q, *att_o;
    int32_t attn_cap;
    int32_t *att_cells;   /* (attn_cap) the cells gathered into att_k / att_v (emulated path) */
    int32_t att_n;        /* how many: a run of another sequence reuses the common prefix */
    unsigned ggml;   /* TW_LLAMA_GGML_* emulations used with an F16 cache */
    /* LoRA adapters applied unmerged (tw_llama_set_adapters): aw[(a * n_layer + l) * 7 + t]
     * is adapter a's weight for layer l, target bit t (NULL when not adapted) */
    int n_ad;
    float *ad_scale;
    const tw_lora_weight **aw;
    float *lora_t;   /* (max_batch, max rank) scratch */
    tw_lora **ad;         /* the adapters (an owned copy of the caller's list; the adapters
                             themselves are borrowed) */
    tw_llama_trace_fn trace;
    void *trace_user;
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
void tw_llama_set_ggml_numerics(tw_llama *m, unsigned mask) { m->ggml = mask & TW_LLAMA_GGML_ALL; }
void tw_llama_set_trace(tw_llama *m, tw_llama_trace_fn fn, void *user)
{
    m->trace = fn;
    m->trace_user = user;
}

tw_status tw_llama_set_adapters(tw_llama *m, tw_lora *const *adapters, const float *scales, int n, tw_error *err)
{
    const size_t NL = (size_t)(m->cfg.n_layer > 0 ? m->cfg.n_layer : 1);
    if (n < 0 || (n > 0 && !adapters)) return tw_error_set(err, TW_ERR_INVALID, "bad adapter list");
    int32_t max_rank = 0;
    for (int a = 0; a < n; a++) {
        tw_status st = tw_lora_prepare(adapters[a], m->mf, err);
        if (st) return st;
        for (int32_t i = 0; i < adapters[a]->n; i++)
            if (adapters[a]->w[i].rank > max_rank) max_rank = adapters[a]->w[i].rank;
    }
    const tw_lora_weight **aw = n ? calloc((size_t)n * NL * 7, sizeof *aw) : NULL;
    float *sc = n ? malloc((size_t)n * sizeof *sc) : NULL;
    const size_t tn = (size_t)m->p.max_batch * (size_t)(max_rank > 0 ? max_rank : 1);
    float *t = n ? malloc(tn * sizeof *t) : NULL;
    tw_lora **list = n ? malloc((size_t)n * sizeof *list) : NULL;
    if (n && (!aw || !sc || !t || !list)) {
        free(aw);
        free(sc);
        free(t);
        free(list);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    for (int a = 0; a < n; a++) list[a] = adapters[a];
    for (int a = 0; a < n; a++) {
        const tw_lora *l = adapters[a];
        for (int32_t i = 0; i < l->n; i++) {
            const tw_lora_weight *w = &l->w[i];
            int bit = 0;
            while (bit < 7 && (1 << bit) != (int)w->target) bit++;
            if (w->layer < 0 || (size_t)w->layer >= NL || bit == 7) continue;   /* tw_lora_check rejects these */
            aw[((size_t)a * NL + (size_t)w->layer) * 7 + (size_t)bit] = w;
        }
        /* the scale of each weight folds alpha / rank (tw_lora_scale) into the user's */
        sc[a] = scales ? scales[a] : 1.0f;
    }
    free(m->aw);
    free(m->ad_scale);
    free(m->lora_t);
    m->aw = aw;
    m->ad_scale = sc;
    m->lora_t = t;
    m->n_ad = n;
    free(m->ad);
    m->ad = list;
    return TW_OK;
}

int tw_llama_n_adapters(const tw_llama *m) { return m->n_ad; }

void tw_llama_free(tw_llama *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_copies; i++) free(m->copies[i]);
    free(m->copies);
    free(m->layers);
    free(m->vecs);
    free(m->arena);
    free(m->attn_buf);
    free(m->att_cells);
    free(m->ad_scale);
    free(m->aw);
    free(m->lora_t);
    free(m->ad);
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
    size_t sizes[] = {B * E, B * EQ, B * Q, B * KV, B * KV, B * Q, B * F, B * F, B * R, B, B, B};
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
    p += (sizes[i++] + 15) & ~(size_t)15;
    m->seqs = (int32_t *)p;
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
    if ((unsigned)m->p.matmul > TW_MATMUL_GGML_Q8) {
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
    m->ggml = TW_LLAMA_GGML_ALL;
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

/* ---- llama.cpp's CPU numerics (used with an F16 cache) --------------------------------
 * With an F16 KV cache the forward pass follows, operation by operation, what ggml's CPU
 * backend computes for the same graph (llama.cpp src/models/llama.cpp +
 * llm_graph_context::build_attn_mha without flash attention, ggml-cpu ops.cpp / vec.cpp /
 * llamafile sgemm.cpp, as built with AVX-512 and GCC: docs/inference.md, "Matching
 * llama.cpp"), so that greedy decoding picks the same tokens even where llama.cpp's own
 * top-2 margin is a few thousandths of a logit. Each piece can be switched off for
 * diagnostics (tw_llama_set_ggml_numerics). With an F32 cache the exact float path above
 * runs unchanged. The weight matmuls are tw_matmul's (kernels.c) either way. */

/* 2^k as a float, k in [-126, 127] */
static inline float pow2f(int k)
{
    union { uint32_t u; float f; } v = {.u = (uint32_t)(k + 127) << 23};
    return v.f;
}

/* ldexpf(j, n) for 0.7 < j < 1.5 and |n| <= 192, without the libm call: a product by an
 * exact power of two is correctly rounded, as ldexpf is; outside the normal exponents the
 * exact half of the scaling goes first, so only the last product rounds (subnormal
 * results) or overflows (to inf, as ldexpf). */
static inline float scale2(float j, int n)
{
    if (n > 127) return (j * 0x1p127f) * pow2f(n - 127);
    if (n < -126) return (j * pow2f(n + 126)) * 0x1p-126f;
    return j * pow2f(n);
}

/* ggml's vectorized exp (vec.h ggml_v_expf, AVX-512 flavour, after ARM's optimized-routines
 * expf) one lane at a time: n = round(x / ln 2) by the 1.5 * 2^23 shift trick, b = x - n ln 2
 * in two fused steps, a degree-5 polynomial in b, scaled by 2^n; |n| > 192 saturates to 0
 * or inf (exp(-inf) = 0, as the masked attention scores need). Max error ~1.5 ulp; what
 * matters here is that it rounds exactly as ggml's does. */
#define GGML_EXPF_BODY(FMA)                                                                     \
    {                                                                                           \
        const float r = 0x1.8p23f;                                                              \
        const float z = FMA(x, 0x1.715476p+0f, r);                                              \
        const float n = z - r;                                                                  \
        const float b = FMA(-n, 0x1.7f7d1cp-20f, FMA(-n, 0x1.62e4p-1f, x));                     \
        if (!(fabsf(n) <= 192.0f)) return isnan(n) ? n : n <= 0.0f ? 0.0f : INFINITY;          \
        const float u = b * b;                                                                  \
        const float j = FMA(FMA(FMA(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, FMA(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), \
                            u, FMA(0x1.ffffecp-1f, b, 1.0f));                                   \
        return scale2(j, (int)n); /* = _mm512_scalef_ps(j, n): n is integral here */            \
    }
/* Two copies: libm's fmaf, and the FMA instruction where the CPU has it (same results;
 * the instruction is ~20x faster than the call). */
static float ggml_expf_sw(float x) GGML_EXPF_BODY(fmaf)
#if defined(__x86_64__) && defined(__GNUC__)
#define TW_HAVE_FMA_CLONES 1
__attribute__((target("fma"))) static inline float ggml_expf_hw(float x) GGML_EXPF_BODY(__builtin_fmaf)
#endif

/* e[i] = ggml_expf(x[i] - sub) for n elements */
#if TW_HAVE_FMA_CLONES
__attribute__((target("fma"))) static void expf_sub_hw(float *e, const float *x, float sub, int64_t n)
{
    for (int64_t i = 0; i < n; i++) e[i] = ggml_expf_hw(x[i] - sub);
}
#endif
static void expf_sub(float *e, const float *x, float sub, int64_t n)
{
#if TW_HAVE_FMA_CLONES
    if (tw_cpu_features()->fma) {
        expf_sub_hw(e, x, sub, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) e[i] = ggml_expf_sw(x[i] - sub);
}

/* The horizontal sum of 16 float lanes in the order GCC's _mm512_reduce_add_ps adds them
 * (upper and lower halves, then quarters, then pairs). */
static float reduce16(const float *v)
{
    float t[8], u[4];
    for (int i = 0; i < 8; i++) t[i] = v[8 + i] + v[i];
    for (int i = 0; i < 4; i++) u[i] = t[4 + i] + t[i];
    return (u[0] + u[2]) + (u[1] + u[3]);
}

/* A dot product of fp16-valued floats (every product is exact in float, so only the order
 * of the additions matters) in one of ggml's two orders:
 *  - tinyblas: a batch of >= 2 query rows goes through llamafile's tinyBLAS when the inner
 *    size is a multiple of 16: 16 lanes, lane t summing elements t, t+16, t+32, ... in
 *    turn, then reduce16;
 *  - otherwise ggml_vec_dot_f16: 4 accumulators of 16 lanes stepping by 64, folded
 *    (0+2) + (1+3), reduce16, then the n % 64 leftovers added one by one in double.
 * ggml runs the score product over the cache's n_kv cells (a multiple of 256); the cells
 * past the sequence hold zeros there, so callers pad with zeros to a multiple of 64. */
static float dot_ggml_sw(const float *a, const float *b, int64_t n, bool tinyblas)
{
    if (tinyblas) {
        float acc[16] = {0};
        for (int64_t l = 0; l < n; l += 16)
            for (int t = 0; t < 16; t++) acc[t] += a[l + t] * b[l + t];
        return reduce16(acc);
    }
    float acc[4][16] = {{0}};
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 16) {
        float *s = acc[(i / 16) % 4];
        for (int t = 0; t < 16; t++) s[t] += a[i + t] * b[i + t];
    }
    for (int t = 0; t < 16; t++) acc[0][t] = (acc[0][t] + acc[2][t]) + (acc[1][t] + acc[3][t]);
    double sum = (double)reduce16(acc[0]);
    for (int64_t i = np; i < n; i++) sum += (double)(a[i] * b[i]);
    return (float)sum;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same two orders with AVX2 (16 lanes = two 8-lane registers; the products are exact,
 * so multiply-then-add is the scalar code's arithmetic), reduce16 as vector adds of the
 * same pairs. Bitwise equal to dot_ggml_sw. */
__attribute__((target("avx2,fma"))) static inline float reduce16_avx2(__m256 lo, __m256 hi)
{
    const __m256 t = _mm256_add_ps(hi, lo);                                           /* t[i] = v[8+i] + v[i] */
    const __m128 u = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));   /* u[i] = t[4+i] + t[i] */
    const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));                              /* u0+u2, u1+u3 */
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_shuffle_ps(v, v, 1)));
}

__attribute__((target("avx2,fma"))) static float dot_ggml_avx2(const float *a, const float *b, int64_t n, bool tinyblas)
{
    if (tinyblas) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        for (int64_t l = 0; l < n; l += 16) {
            lo = _mm256_add_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(a + l), _mm256_loadu_ps(b + l)));
            hi = _mm256_add_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(a + l + 8), _mm256_loadu_ps(b + l + 8)));
        }
        return reduce16_avx2(lo, hi);
    }
    __m256 acc[4][2];
    for (int j = 0; j < 4; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t)63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; j++) {
            acc[j][0] = _mm256_add_ps(acc[j][0], _mm256_mul_ps(_mm256_loadu_ps(a + i + 16 * j), _mm256_loadu_ps(b + i + 16 * j)));
            acc[j][1] = _mm256_add_ps(acc[j][1],
                                      _mm256_mul_ps(_mm256_loadu_ps(a + i + 16 * j + 8), _mm256_loadu_ps(b + i + 16 * j + 8)));
        }
    const __m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0][0], acc[2][0]), _mm256_add_ps(acc[1][0], acc[3][0]));
    const __m256 hi = _mm256_add_ps(_mm256_add_ps(acc[0][1], acc[2][1]), _mm256_add_ps(acc[1][1], acc[3][1]));
    double sum = (double)reduce16_avx2(lo, hi);
    for (int64_t i = np; i < n; i++) sum += (double)(a[i] * b[i]);
    return (float)sum;
}

/* Four tinyBLAS-order dots of a with b0 + k * stride (k < 4), interleaved for
 * instruction-level parallelism; each result bitwise equal to dot_ggml_sw's. */
__attribute__((target("avx2,fma"))) static void dot_ggml4_tb_avx2(float *out, const float *a, const float *b0,
                                                                  int64_t stride, int64_t n)
{
    __m256 lo[4], hi[4];
    for (int k = 0; k < 4; k++) lo[k] = hi[k] = _mm256_setzero_ps();
    for (int64_t l = 0; l < n; l += 16) {
        const __m256 al = _mm256_loadu_ps(a + l), ah = _mm256_loadu_ps(a + l + 8);
        for (int k = 0; k < 4; k++) {
            const float *b = b0 + k * stride + l;
            lo[k] = _mm256_add_ps(lo[k], _mm256_mul_ps(al, _mm256_loadu_ps(b)));
            hi[k] = _mm256_add_ps(hi[k], _mm256_mul_ps(ah, _mm256_loadu_ps(b + 8)));
        }
    }
    for (int k = 0; k < 4; k++) out[k] = reduce16_avx2(lo[k], hi[k]);
}
#endif

/* simd: tw_kernels_simd(), asked once per attention row by the caller (it is too slow to
 * ask per dot); both versions give the same bits. */
static float dot_ggml(const float *a, const float *b, int64_t n, bool tinyblas, bool simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd) return dot_ggml_avx2(a, b, n, tinyblas);
#endif
    (void)simd;
    return dot_ggml_sw(a, b, n, tinyblas);
}

/* out[k] = dot_ggml(a, b0 + k * stride, n, tinyblas, simd) for k < m. */
static void dot_ggml_many(float *out, const float *a, const float *b0, int64_t stride, int64_t n, int64_t m,
                          bool tinyblas, bool simd)
{
    int64_t k = 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (tinyblas && simd)
        for (; k + 4 <= m; k += 4) dot_ggml4_tb_avx2(out + k, a, b0 + k * stride, stride, n);
#endif
    for (; k < m; k++) out[k] = dot_ggml(a, b0 + k * stride, n, tinyblas, simd);
}

/* ggml_compute_forward_rms_norm_f32 (+ the weight multiply): the sum of squares in double
 * (each square rounded to float first), the mean rounded to float, scale = 1 / sqrtf. */
static void rmsnorm_ggml(float *out, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) out[i] = w ? x[i] * scale * w[i] : x[i] * scale;
}

/* ggml_rope_cache_init without YaRN: theta starts at the position and is multiplied in
 * float by powf(base, -2 / n_rot) once per pair, so the error grows along the head as
 * ggml's does; cosf / sinf in float. */
static void rope_table_ggml(float *cs, int64_t n_rot, int64_t pos, float base, float freq_scale, const float *ff)
{
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int64_t i = 0; i < n_rot / 2; i++) {
        const float th = freq_scale * (theta / (ff ? ff[i] : 1.0f));
        cs[2 * i] = cosf(th);
        cs[2 * i + 1] = sinf(th);
        theta *= theta_scale;
    }
}

/* ggml's rotate_pairs as GCC compiles it (C++, contraction on): the first product of
 * each output fused with the rounded second one, a c - b s -> fma(a, c, -(b s)) and
 * a s + b c -> fma(a, s, b c) (found bit-exact against llama.cpp's Qcur / Kcur tensors).
 * x (n_heads, head_dim) in place, table as tw_rope_table. */
static void rope_apply_ggml(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float *cs, int mode)
{
    const int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (int64_t i = 0; i < half; i++) {
            const int64_t i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + half : 2 * i + 1;
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = v[i0], b = v[i1];
            v[i0] = fmaf(a, c, -(b * s));
            v[i1] = fmaf(a, s, b * c);
        }
    }
}

/* ggml_vec_swiglu_f32: silu(g) = g / (1 + ggml_expf(-g)), times up. out may alias. */
#if TW_HAVE_FMA_CLONES
__attribute__((target("fma"))) static void swiglu_ggml_hw(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + ggml_expf_hw(0.0f - g)) * up[i];
    }
}
#endif
static void swiglu_ggml(float *out, const float *gate, const float *up, int64_t n)
{
#if TW_HAVE_FMA_CLONES
    if (tw_cpu_features()->fma) {
        swiglu_ggml_hw(out, gate, up, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + ggml_expf_sw(0.0f - g)) * up[i];
    }
}

/* One query row of attention as ggml computes it without flash attention over an F16
 * cache: q rounded to fp16; s_j = q·k_j; w_j = s_j * scale, -inf where masked; softmax as
 * ggml_compute_forward_soft_max_f32: e_j = ggml_expf(w_j - max), summed in double over
 * float partial sums of 16 cells, times (float)(1 / sum); the probabilities rounded to
 * fp16; out_d = p·v_d. batched: the row is one of >= 2 in the forward call (tinyBLAS).
 * q (D); Kc (n, D) and Vt (D, n64; row stride ldv >= n64) fp16 values as floats, Vt zero
 * past n (n64 = n rounded up to 64); cell j is visible when its position cpos[cells[j]] <= qp; s (n64), qh (D):
 * scratch. */
/* x[i] = fp16(x[i] * mul) as a float, for n elements (mul = 1: the rounding alone); the
 * F16C conversion rounds to nearest even, as tw_fp32_to_fp16 does. */
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx,f16c"))) static void fp16_round_f16c(float *x, float mul, int64_t n)
{
    const __m256 m = _mm256_set1_ps(mul);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_mul_ps(_mm256_loadu_ps(x + i), m), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) x[i] = tw_fp16_to_fp32(tw_fp32_to_fp16(x[i] * mul));
}
#endif
static void fp16_round(float *x, float mul, int64_t n, bool simd)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd && tw_cpu_features()->f16c) {
        fp16_round_f16c(x, mul, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) x[i] = tw_fp16_to_fp32(tw_fp32_to_fp16(x[i] * mul));
}

static void attn_row_ggml(float *out, const float *q, const float *Kc, const float *Vt, int64_t ldv,
                          const int32_t *cells, const int32_t *cpos, int32_t qp, int64_t n, int64_t n64, int64_t D,
                          float scale, bool batched, float *s, float *qh)
{
    const bool simd = tw_kernels_simd();
    memcpy(qh, q, (size_t)D * sizeof *qh);
    fp16_round(qh, 1.0f, D, simd);
    const bool tb_qk = batched && D % 16 == 0, tb_pv = batched && D % 4 == 0;
    float mx = -INFINITY;
    int64_t last = -1;   /* the products are needed up to the last visible cell */
    for (int64_t j = 0; j < n; j++)
        if (cpos[cells[j]] <= qp) last = j;
    dot_ggml_many(s, qh, Kc, D, D, last + 1, tb_qk, simd);
    for (int64_t j = 0; j < n; j++) {
        s[j] = j > last || cpos[cells[j]] > qp ? -INFINITY : s[j] * scale;
        if (s[j] > mx) mx = s[j];
    }
    double sum = 0.0;
    for (int64_t j0 = 0; j0 < n64; j0 += 16) {
        float e[16] = {0};
        if (j0 < n) expf_sub(e, s + j0, mx, n - j0 < 16 ? n - j0 : 16);
        for (int64_t t = 0; t < 16; t++) s[j0 + t] = e[t];
        sum += (double)reduce16(e);
    }
    const float inv = (float)(1.0 / sum);
    fp16_round(s, inv, n, simd);
    dot_ggml_many(out, s, Vt, ldv, n64, D, tb_pv, simd);
}

/* ggml's f32 dot products (TW_MATMUL_GGML_FLOAT): lanes as dot_ggml, but the products
 * are rounded, so each step is a fused multiply-add as in the vector code. Two copies of
 * one body: with the FMA instruction where the CPU has it, else libm's fmaf. */
#define DOT_GGML_F32_BODY(FMA)                                                                  \
    {                                                                                           \
        if (tinyblas) {                                                                         \
            float acc[16] = {0};                                                                \
            for (int64_t l = 0; l < n; l += 16)                                                 \
                for (int t = 0; t < 16; t++) acc[t] = FMA(a[l + t], b[l + t], acc[t]);          \
            return reduce16(acc);                                                               \
        }                                                                                       \
        float acc[4][16] = {{0}};                                                               \
        const int64_t np = n & ~(int64_t)63;                                                    \
        for (int64_t i = 0; i < np; i += 64)                                                    \
            for (int j = 0; j < 4; j++)                                                         \
                for (int t = 0; t < 16; t++)                                                    \
                    acc[j][t] = FMA(a[i + 16 * j + t], b[i + 16 * j + t], acc[j][t]);           \
        for (int t = 0; t < 16; t++) acc[0][t] = (acc[0][t] + acc[2][t]) + (acc[1][t] + acc[3][t]); \
        float sum = reduce16(acc[0]);                                                           \
        for (int64_t i = np; i < n; i++) sum = FMA(a[i], b[i], sum);                            \
        return sum;                                                                             \
    }
static float dot_ggml_f32_sw(const float *a, const float *b, int64_t n, bool tinyblas) DOT_GGML_F32_BODY(fmaf)
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static float dot_ggml_f32_hw(const float *a, const float *b, int64_t n,
                                                                  bool tinyblas) DOT_GGML_F32_BODY(__builtin_fmaf)
#endif

/* rows: how many rows llama.cpp's graph multiplies at once (>= 2: tinyBLAS), which for the
 * output layer is the whole chunk even when only its last row is wanted here (llama.cpp
 * computing every position's logits, as the fixtures' logits_all does). */
typedef struct ggml_mm_job {
    float *out;
    const float *x;
    const wref *w;
    int64_t B;
    bool tb;
    float (*dot)(const float *, const float *, int64_t, bool);
    float *rows;   /* one dequantized weight row per slot */
} ggml_mm_job;

#define GGML_MM_CHUNK 16   /* weight rows per chunk */

static void ggml_mm_chunk(void *arg, int64_t chunk, int slot)
{
    const ggml_mm_job *j = arg;
    const int64_t R = j->w->rows, C = j->w->cols;
    float *row = j->rows + (size_t)slot * (size_t)C;
    for (int64_t r = chunk * GGML_MM_CHUNK; r < R && r < (chunk + 1) * GGML_MM_CHUNK; r++) {
        tw_get_row(row, j->w->data, j->w->type, r, C);   /* = tw_dequantize_row, vectorized */
        for (int64_t b = 0; b < j->B; b++) j->out[b * R + r] = j->dot(row, j->x + b * C, C, j->tb);
    }
}

static void matmul_ggml_float(float *out, const float *x, const wref *w, int64_t B, int64_t rows, int nt)
{
    const int64_t R = w->rows, C = w->cols;
    ggml_mm_job j = {.out = out, .x = x, .w = w, .B = B, .tb = rows >= 2 && R % 4 == 0 && C % 16 == 0,
                     .dot = dot_ggml_f32_sw};
#if defined(__x86_64__) && defined(__GNUC__)
    if (tw_cpu_features()->fma && tw_cpu_features()->avx2) j.dot = dot_ggml_f32_hw;
#endif
    j.rows = malloc((size_t)nt * (size_t)C * sizeof *j.rows);
    if (!j.rows) {
        nt = 1;
        j.rows = malloc((size_t)C * sizeof *j.rows);
        if (!j.rows) {   /* the diagnostic mode has no allocation-free fallback */
            for (int64_t i = 0; i < B * R; i++) out[i] = NAN;
            return;
        }
    }
    tw_parallel_for((R + GGML_MM_CHUNK - 1) / GGML_MM_CHUNK, nt, ggml_mm_chunk, &j);
    free(j.rows);
}

/* ---- TW_MATMUL_GGML_Q8 (diagnostics): ggml's 8-bit activation path, one row at a time ----
 * quantize_row_q8_0 / q8_1 (arch/x86 quants.c, AVX2): per 32 elements amax, d = amax / 127
 * stored as fp16, q = nearest-even(x * (127 / amax)) (the float d, not the stored one), for
 * q8_1 also s = fp16(d * sum q); dot products as ggml_vec_dot_q4_1_q8_1 / q8_0_q8_0: eight
 * int32 lanes of 4-element sums per block, acc_k = fma(d_w d_x, lane_k, acc_k), summed as
 * hsum_float_8, plus (Q4_1) sum over blocks of fma(m_w, s_x, .). Only Q4_1 and Q8_0
 * weights (SmolLM2's); others fall back to tw_matmul. For checking kernels.c against
 * ggml (tests/ref/llama_numerics_diag.py); not a production path. */
typedef struct q8g {
    uint16_t d, s;
    int8_t qs[32];
} q8g;

static void quantize_q8_ggml(q8g *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.f, id = amax != 0.0f ? 127.f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t)(int)nearbyintf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = tw_fp32_to_fp16(d);
        y[i].s = tw_fp32_to_fp16(d * (float)sum);
    }
}

static float hsum8(const float *a)
{
    return ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]));
}

/* Two copies of each body (FMA: the instruction where the CPU has it, else libm's fmaf). */
#define DOT_Q4_1_GGML_BODY(FMA)                                                                 \
    {                                                                                           \
        float acc[8] = {0}, summs = 0.0f;                                                       \
        for (int64_t i = 0; i < nb; i++) {                                                      \
            const float d0 = tw_fp16_to_fp32(w[i].d), d1 = tw_fp16_to_fp32(y[i].d);            \
            summs = FMA(tw_fp16_to_fp32(w[i].m), tw_fp16_to_fp32(y[i].s), summs);               \
            const float dd = d0 * d1;                                                           \
            int8_t q[32];                                                                       \
            for (int b = 0; b < 16; b++) {                                                      \
                q[b] = (int8_t)(w[i].qs[b] & 15);                                               \
                q[b + 16] = (int8_t)(w[i].qs[b] >> 4);                                          \
            }                                                                                   \
            for (int k = 0; k < 8; k++) {                                                       \
                const int lane = q[4 * k] * y[i].qs[4 * k] + q[4 * k + 1] * y[i].qs[4 * k + 1] +    \
                                 q[4 * k + 2] * y[i].qs[4 * k + 2] + q[4 * k + 3] * y[i].qs[4 * k + 3]; \
                acc[k] = FMA(dd, (float)lane, acc[k]);                                          \
            }                                                                                   \
        }                                                                                       \
        return hsum8(acc) + summs;                                                              \
    }
#define DOT_Q8_0_GGML_BODY(FMA)                                                                 \
    {                                                                                           \
        float acc[8] = {0};                                                                     \
        for (int64_t i = 0; i < nb; i++) {                                                      \
            const float dd = tw_fp16_to_fp32(w[i].d) * tw_fp16_to_fp32(y[i].d);                 \
            for (int k = 0; k < 8; k++) {                                                       \
                const int lane = w[i].qs[4 * k] * y[i].qs[4 * k] + w[i].qs[4 * k + 1] * y[i].qs[4 * k + 1] + \
                                 w[i].qs[4 * k + 2] * y[i].qs[4 * k + 2] + w[i].qs[4 * k + 3] * y[i].qs[4 * k + 3]; \
                acc[k] = FMA(dd, (float)lane, acc[k]);                                          \
            }                                                                                   \
        }                                                                                       \
        return hsum8(acc);                                                                      \
    }
static float dot_q4_1_ggml_sw(const tw_block_q4_1 *w, const q8g *y, int64_t nb) DOT_Q4_1_GGML_BODY(fmaf)
static float dot_q8_0_ggml_sw(const tw_block_q8_0 *w, const q8g *y, int64_t nb) DOT_Q8_0_GGML_BODY(fmaf)
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static float dot_q4_1_ggml_hw(const tw_block_q4_1 *w, const q8g *y,
                                                                   int64_t nb) DOT_Q4_1_GGML_BODY(__builtin_fmaf)
__attribute__((target("avx2,fma"))) static float dot_q8_0_ggml_hw(const tw_block_q8_0 *w, const q8g *y,
                                                                   int64_t nb) DOT_Q8_0_GGML_BODY(__builtin_fmaf)
#endif

typedef struct q8_job {
    float *out;
    const q8g *xa;
    const wref *w;
    int64_t B;
    bool hw;
} q8_job;

static float q4_1_dot(bool hw, const tw_block_q4_1 *w, const q8g *y, int64_t nb)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (hw) return dot_q4_1_ggml_hw(w, y, nb);
#endif
    (void)hw;
    return dot_q4_1_ggml_sw(w, y, nb);
}

static float q8_0_dot(bool hw, const tw_block_q8_0 *w, const q8g *y, int64_t nb)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (hw) return dot_q8_0_ggml_hw(w, y, nb);
#endif
    (void)hw;
    return dot_q8_0_ggml_sw(w, y, nb);
}

static void q8_chunk(void *arg, int64_t chunk, int slot)
{
    (void)slot;
    const q8_job *j = arg;
    const int64_t R = j->w->rows, nb = j->w->cols / 32;
    const size_t rb = tw_type_row_bytes(j->w->type, j->w->cols);
    for (int64_t r = chunk * GGML_MM_CHUNK; r < R && r < (chunk + 1) * GGML_MM_CHUNK; r++) {
        const void *wr = (const uint8_t *)j->w->data + (size_t)r * rb;
        for (int64_t b = 0; b < j->B; b++)
            j->out[b * R + r] = j->w->type == TW_TYPE_Q4_1 ? q4_1_dot(j->hw, wr, j->xa + b * nb, nb)
                                                           : q8_0_dot(j->hw, wr, j->xa + b * nb, nb);
    }
}

static bool matmul_ggml_q8(float *out, const float *x, const wref *w, int64_t B, int nt)
{
    if ((w->type != TW_TYPE_Q4_1 && w->type != TW_TYPE_Q8_0) || w->cols % 32) return false;
    const int64_t nb = w->cols / 32;
    q8g *xa = malloc((size_t)(B * nb) * sizeof *xa);
    if (!xa) return false;
    for (int64_t b = 0; b < B; b++) quantize_q8_ggml(xa + b * nb, x + b * w->cols, w->cols);
    q8_job j = {.out = out, .xa = xa, .w = w, .B = B, .hw = tw_cpu_features()->fma && tw_cpu_features()->avx2};
    tw_parallel_for((w->rows + GGML_MM_CHUNK - 1) / GGML_MM_CHUNK, nt, q8_chunk, &j);
    free(xa);
    return true;
}

/* out (B, w.rows) = x (B, w.cols) · W^T; graph_rows: see matmul_ggml_float */
static void mm_rows(const tw_llama *m, float *out, const float *x, const wref *w, int64_t B, int64_t graph_rows)
{
    switch (m->p.matmul) {
    case TW_MATMUL_GGML_FLOAT: matmul_ggml_float(out, x, w, B, graph_rows, n_threads(m)); break;
    case TW_MATMUL_GGML_Q8:
        if (!matmul_ggml_q8(out, x, w, B, n_threads(m)))
            tw_matmul(out, x, w->data, w->type, B, w->rows, w->cols, n_threads(m));
        break;
    case TW_MATMUL_REF: tw_matmul_ref(out, x, w->data, w->type, B, w->rows, w->cols); break;
    case TW_MATMUL_FLOAT: tw_matmul_float(out, x, w->data, w->type, B, w->rows, w->cols, n_threads(m)); break;
    default:
        /* the output matrix in llama.cpp's vec_dot order: llama.cpp never repacks it */
        if (w == &m->output) tw_matmul_ggml(out, x, w->data, w->type, B, w->rows, w->cols, n_threads(m));
        else tw_matmul(out, x, w->data, w->type, B, w->rows, w->cols, n_threads(m));
        break;
    }
}

static void mm(const tw_llama *m, float *out, const float *x, const wref *w, int64_t B)
{
    mm_rows(m, out, x, w, B, B);
}

/* out (B, n_out) += every active adapter's scale · (x · A^T) · B^T for layer l, target bit t. */
static void lora(const tw_llama *m, int32_t l, int t, float *out, const float *x, int64_t B)
{
    for (int a = 0; a < m->n_ad; a++) {
        const tw_lora_weight *w = m->aw[((size_t)a * (size_t)m->cfg.n_layer + (size_t)l) * 7 + (size_t)t];
        if (!w) continue;
        const float scale = tw_lora_scale(m->ad[a], w, m->ad_scale[a]);
        for (int64_t b0 = 0; b0 < B; b0 += m->p.max_batch) {
            const int64_t nb = B - b0 < m->p.max_batch ? B - b0 : m->p.max_batch;
            tw_lora_apply(out + b0 * w->n_out, m->lora_t, x + b0 * w->n_in, w->a, w->b, nb, w->n_out, w->n_in, w->rank,
                          scale);
        }
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
typedef struct attn_job {
    tw_llama *m;
    const float *Kc, *Vt, *q;
    float *S, *att;
    const int32_t *cells, *cpos, *qpos;
    int64_t n, n64, ldk, ldv, D, H, group, Q;
    float scale;
    bool batched;
} attn_job;

static void attn_chunk(void *arg, int64_t r, int slot)
{
    const attn_job *a = arg;
    const int64_t i = r / a->H, h = r % a->H, hk = h / a->group, D = a->D;
    float qh[TW_LLAMA_MAX_HEAD_DIM];
    attn_row_ggml(a->att + i * a->Q + h * D, a->q + i * a->Q + h * D, a->Kc + hk * a->ldk * D, a->Vt + hk * D * a->ldv,
                  a->ldv, a->cells, a->cpos, a->qpos[i], a->n, a->n64, D, a->scale, a->batched,
                  a->S + (size_t)slot * (size_t)a->ldv, qh);
}

/* Gather cells[j0..n) of layer l into Kc / Vt (layout: Kc + (hk * ldk + j) * D, Vt + (hk * D
 * + d) * ldv + j), f16 widened to f32. On the kernels' thread pool (tw_parallel_for), not
 * OpenMP: two pools on two cores would spin against each other. */
typedef struct gather_job {
    float *Kc, *Vt;
    const tw_kv *kv;
    const int32_t *cells;
    int64_t j0, n, ldk, ldv, HKV, D, per;
    int32_t l;
} gather_job;

static void gather_chunk(void *arg, int64_t c, int slot)
{
    (void)slot;
    const gather_job *g = arg;
    const bool f16 = tw_kv_type_of(g->kv) == TW_KV_F16;
    const tw_kernel_ops *ops = tw_kernels_ops();
    const int64_t a = g->j0 + c * g->per, b = a + g->per < g->n ? a + g->per : g->n, D = g->D;
    for (int64_t j = a; j < b; j++) {
        const unsigned char *kr = tw_kv_k_const(g->kv, g->l, g->cells[j]), *vr = tw_kv_v_const(g->kv, g->l, g->cells[j]);
        const size_t es = f16 ? 2 : 4;
        for (int64_t hk = 0; hk < g->HKV; hk++) {
            float vb[TW_LLAMA_MAX_HEAD_DIM];
            float *kd = g->Kc + (hk * g->ldk + j) * D;
            if (f16) {
                ops->dequant(TW_TYPE_F16, kd, kr + (size_t)(hk * D) * es, D);
                ops->dequant(TW_TYPE_F16, vb, vr + (size_t)(hk * D) * es, D);
            } else {
                memcpy(kd, kr + (size_t)(hk * D) * es, (size_t)D * sizeof(float));
                memcpy(vb, vr + (size_t)(hk * D) * es, (size_t)D * sizeof(float));
            }
            float *vt = g->Vt + hk * D * g->ldv + j;
            for (int64_t d = 0; d < D; d++) vt[d * g->ldv] = vb[d];
        }
    }
}

static void gather_kv(float *Kc, float *Vt, const tw_kv *kv, int32_t l, const int32_t *cells, int64_t j0, int64_t n,
                      int64_t ldk, int64_t ldv, int64_t HKV, int64_t D, int nt)
{
    if (n <= j0) return;
    const bool par = nt > 1 && (double)(n - j0) * (double)(HKV * D) >= 65536.0;
    const int64_t chunks = par ? nt : 1;
    gather_job g = {.Kc = Kc, .Vt = Vt, .kv = kv, .cells = cells, .j0 = j0, .n = n, .ldk = ldk, .ldv = ldv, .HKV = HKV,
                    .D = D, .per = (n - j0 + chunks - 1) / chunks, .l = l};
    tw_parallel_for(chunks, par ? nt : 1, gather_chunk, &g);
}

/* Attention of the B query rows q (B, Q) of sequence seq (positions qpos) into att (B, Q).
 * batched: the forward call has >= 2 tokens (ggml's kernel choice depends on it).
 * The emulated path keeps what it gathered (m->att_cells, m->att_n) so that the next run
 * of the same layer whose sequence shares a prefix of cells (forks of one prompt) only
 * gathers its own tail; forward_chunk resets m->att_n per layer. */
static void attention(tw_llama *m, const tw_kv *kv, int32_t l, int32_t seq, const int32_t *qpos, int64_t B,
                      const float *qrows, float *att, bool batched)
{
    const tw_model_config *c = &m->cfg;
    const int64_t D = c->head_dim, H = c->n_head, HKV = c->n_head_kv, group = H / HKV;
    const int64_t Q = H * D;
    int32_t n32;
    const int32_t *cells = tw_kv_seq_cells(kv, seq, &n32);
    const int64_t n = n32;
    const int32_t *cpos = tw_kv_cell_positions(kv);
    const bool f16 = tw_kv_type_of(kv) == TW_KV_F16;
    const int nt = n_threads(m);
    float *Kc = m->att_k, *Vt = m->att_v, *S = m->att_s, *Qg = m->att_q, *Og = m->att_o;
    const float scale = 1.0f / sqrtf((float)D);
    if (f16 && (m->ggml & TW_LLAMA_GGML_ATTN)) {
        const int64_t ldk = m->attn_cap, ldv = ((int64_t)m->attn_cap + 63) & ~(int64_t)63;
        const int64_t n64 = (n + 63) & ~(int64_t)63;
        int64_t common = 0;
        while (common < n && common < m->att_n && m->att_cells[common] == cells[common]) common++;
        gather_kv(Kc, Vt, kv, l, cells, common, n, ldk, ldv, HKV, D, nt);
        memcpy(m->att_cells + common, cells + common, (size_t)(n - common) * sizeof *cells);
        m->att_n = (int32_t)n;
        for (int64_t r = 0; r < HKV * D; r++)
            for (int64_t j = n; j < n64; j++) Vt[r * ldv + j] = 0.0f;
        /* one query row (token i, head h) per chunk; a scratch row of S per slot */
        attn_job aj = {.m = m, .Kc = Kc, .Vt = Vt, .q = qrows, .S = S, .att = att, .cells = cells, .cpos = cpos,
                       .qpos = qpos, .n = n, .n64 = n64, .ldk = ldk, .ldv = ldv, .D = D, .H = H, .group = group,
                       .Q = Q, .scale = scale, .batched = batched};
        int nte = nt;
        if (nte > ATT_ROWS * group) nte = (int)(ATT_ROWS * group);
        if ((double)B * (double)H * (double)n * (double)D < 65536.0) nte = 1;
        tw_parallel_for(B * H, nte, attn_chunk, &aj);
        return;
    }
    /* plain float: Kc (HKV, n, D), Vt (HKV, D, n), gathered whole (its layout depends on n) */
    m->att_n = 0;
    gather_kv(Kc, Vt, kv, l, cells, 0, n, n, n, HKV, D, nt);
    for (int64_t hk = 0; hk < HKV; hk++) {
        for (int64_t i0 = 0; i0 < B; i0 += ATT_ROWS) {
            const int64_t bi = B - i0 < ATT_ROWS ? B - i0 : ATT_ROWS, rows = bi * group;
            for (int64_t i = 0; i < bi; i++)
                for (int64_t g = 0; g < group; g++)
                    memcpy(Qg + (i * group + g) * D, qrows + (i0 + i) * Q + (hk * group + g) * D, (size_t)D * sizeof(float));
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
                    memcpy(att + (i0 + i) * Q + (hk * group + g) * D, Og + (i * group + g) * D, (size_t)D * sizeof(float));
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
    const size_t rows = (size_t)ATT_ROWS * group, cap64 = ((size_t)cap + 63) & ~(size_t)63;
    /* Kc (cap, KV), Vt (KV, cap64) (rows padded with zeros to 64 for the ggml order), S */
    size_t total = (size_t)cap * KV + cap64 * KV + rows * cap64 + 2 * rows * D;
    float *p = malloc(total * sizeof *p);
    int32_t *ac = malloc((size_t)cap * sizeof *ac);
    if (!p || !ac) {
        free(p);
        free(ac);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory for attention scratch (%zu bytes)", total * sizeof *p);
    }
    free(m->attn_buf);
    free(m->att_cells);
    m->attn_buf = p;
    m->att_cells = ac;
    m->att_n = 0;
    m->attn_cap = cap;
    m->att_k = p;
    m->att_v = m->att_k + (size_t)cap * KV;
    m->att_s = m->att_v + cap64 * KV;
    m->att_q = m->att_s + rows * cap64;
    m->att_o = m->att_q + rows * D;
    return TW_OK;
}

/* One chunk of n <= max_batch tokens at positions m->pos[0..n), token i of sequence
 * m->seqs[i]; the tokens of one sequence are contiguous (a run). */
static tw_status forward_chunk(tw_llama *m, tw_kv *kv, const int32_t *tokens, int64_t n, tw_logits_mode mode,
                               float *logits, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    const int64_t E = c->n_embd, D = c->head_dim, H = c->n_head, HKV = c->n_head_kv;
    const int64_t Q = H * D, KV = HKV * D, F = c->n_ff, NR = c->n_rot;
    tw_status st = TW_OK;
    for (int64_t r0 = 0, r1; r0 < n; r0 = r1) {
        for (r1 = r0 + 1; r1 < n && m->seqs[r1] == m->seqs[r0];) r1++;
        if ((st = tw_kv_seq_append(kv, m->seqs[r0], m->pos + r0, (int32_t)(r1 - r0), m->cells + r0, err))) {
            /* all or nothing: drop the runs appended before this one */
            for (int64_t u0 = 0, u1; u0 < r0; u0 = u1) {
                for (u1 = u0 + 1; u1 < r0 && m->seqs[u1] == m->seqs[u0];) u1++;
                tw_kv_seq_drop_last(kv, m->seqs[u0], (int32_t)(u1 - u0));
            }
            return st;
        }
    }
    const unsigned gg = tw_kv_type_of(kv) == TW_KV_F16 ? m->ggml : 0;
    void (*norm)(float *, const float *, const float *, int64_t, float) =
        gg & TW_LLAMA_GGML_NORM ? rmsnorm_ggml : tw_rmsnorm;
    for (int64_t i = 0; i < n; i++) {
        tw_get_row(m->x + i * E, m->tok_embd.data, m->tok_embd.type, tokens[i], E);
        if (gg & TW_LLAMA_GGML_ROPE)
            rope_table_ggml(m->cs + i * NR, NR, m->pos[i], c->rope_freq_base, m->freq_scale, m->rope_freqs);
        else
            tw_rope_table(m->cs + i * NR, NR, m->pos[i], c->rope_freq_base, m->freq_scale, m->rope_freqs);
    }
    for (int32_t l = 0; l < c->n_layer; l++) {
        const layer *L = &m->layers[l];
        for (int64_t i = 0; i < n; i++) norm(m->xn + i * E, m->x + i * E, L->attn_norm, E, c->rms_eps);
        TRACE("attn_norm", l, m->xn, n, E);
        mm(m, m->q, m->xn, &L->wq, n);
        mm(m, m->k, m->xn, &L->wk, n);
        mm(m, m->v, m->xn, &L->wv, n);
        if (m->n_ad) {
            lora(m, l, 0, m->q, m->xn, n);
            lora(m, l, 1, m->k, m->xn, n);
            lora(m, l, 2, m->v, m->xn, n);
        }
        add_bias(m->q, L->bq, n, Q);
        add_bias(m->k, L->bk, n, KV);
        add_bias(m->v, L->bv, n, KV);
        for (int64_t i = 0; i < n; i++) {
            float *q = m->q + i * Q, *k = m->k + i * KV;
            if (L->q_norm) {
                for (int64_t h = 0; h < H; h++) norm(q + h * D, q + h * D, L->q_norm, D, c->rms_eps);
                for (int64_t h = 0; h < HKV; h++) norm(k + h * D, k + h * D, L->k_norm, D, c->rms_eps);
            }
            if (gg & TW_LLAMA_GGML_ROPE) {
                rope_apply_ggml(q, H, D, NR, m->cs + i * NR, (int)c->rope_type);
                rope_apply_ggml(k, HKV, D, NR, m->cs + i * NR, (int)c->rope_type);
            } else {
                tw_rope_apply(q, H, D, NR, m->cs + i * NR, (int)c->rope_type);
                tw_rope_apply(k, HKV, D, NR, m->cs + i * NR, (int)c->rope_type);
            }
        }
        store_kv(kv, l, m->cells, m->k, m->v, n, KV);
        TRACE("Qcur", l, m->q, n, Q);
        TRACE("Kcur", l, m->k, n, KV);
        TRACE("Vcur", l, m->v, n, KV);
        m->att_n = 0;
        for (int64_t r0 = 0, r1; r0 < n; r0 = r1) {
            for (r1 = r0 + 1; r1 < n && m->seqs[r1] == m->seqs[r0];) r1++;
            attention(m, kv, l, m->seqs[r0], m->pos + r0, r1 - r0, m->q + r0 * Q, m->att + r0 * Q, n >= 2);
        }
        mm(m, m->xn, m->att, &L->wo, n);
        if (m->n_ad) lora(m, l, 3, m->xn, m->att, n);
        TRACE("kqv_out", l, m->att, n, Q);
        TRACE("attn_out", l, m->xn, n, E);
        tw_add(m->x, m->x, m->xn, n * E);
        TRACE("ffn_inp", l, m->x, n, E);
        for (int64_t i = 0; i < n; i++) norm(m->xn + i * E, m->x + i * E, L->ffn_norm, E, c->rms_eps);
        TRACE("ffn_norm", l, m->xn, n, E);
        mm(m, m->gate, m->xn, &L->w_gate, n);
        mm(m, m->up, m->xn, &L->w_up, n);
        if (m->n_ad) {
            lora(m, l, 4, m->gate, m->xn, n);
            lora(m, l, 5, m->up, m->xn, n);
        }
        if (gg & TW_LLAMA_GGML_SWIGLU) swiglu_ggml(m->gate, m->gate, m->up, n * F);
        else tw_swiglu(m->gate, m->gate, m->up, n * F);
        TRACE("ffn_swiglu", l, m->gate, n, F);
        mm(m, m->xn, m->gate, &L->w_down, n);
        if (m->n_ad) lora(m, l, 6, m->xn, m->gate, n);
        TRACE("ffn_out", l, m->xn, n, E);
        tw_add(m->x, m->x, m->xn, n * E);
        TRACE("l_out", l, m->x, n, E);
    }
    if (mode == TW_LOGITS_NONE) return TW_OK;
    int64_t first = mode == TW_LOGITS_ALL ? 0 : n - 1;
    for (int64_t i = first; i < n; i++) norm(m->xn + i * E, m->x + i * E, m->output_norm, E, c->rms_eps);
    TRACE("result_norm", -1, m->xn + first * E, n - first, E);
    mm_rows(m, logits, m->xn + first * E, &m->output, n - first, n);
    TRACE("result_output", -1, logits, n - first, c->n_vocab);
    return TW_OK;
}

tw_status tw_llama_forward_multi(tw_llama *m, tw_kv *kv, const int32_t *seqs, const int32_t *tokens, const int32_t *pos,
                                 int32_t n, tw_logits_mode mode, float *logits, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    if (!tw_kv_matches(kv, c))
        return tw_error_set(err, TW_ERR_INVALID, "forward: the KV cache was made for another model shape");
    if (n < 0) return tw_error_set(err, TW_ERR_INVALID, "forward: negative token count %d", n);
    if (n == 0) {
        if (mode != TW_LOGITS_NONE) return tw_error_set(err, TW_ERR_INVALID, "forward: no tokens, so no logits");
        return TW_OK;
    }
    if (mode != TW_LOGITS_NONE && !logits) return tw_error_set(err, TW_ERR_INVALID, "forward: logits buffer is NULL");
    const int32_t NS = tw_kv_n_seq(kv);
    for (int32_t i = 0; i < n; i++) {
        if (seqs[i] < 0 || seqs[i] >= NS)
            return tw_error_set(err, TW_ERR_INVALID, "forward: token %d: sequence id %d not in 0..%d", i, seqs[i], NS - 1);
        if (i > 0 && seqs[i] != seqs[i - 1])
            for (int32_t j = 0; j < i - 1; j++)
                if (seqs[j] == seqs[i])
                    return tw_error_set(err, TW_ERR_INVALID,
                                        "forward: token %d: the tokens of sequence %d must be contiguous (also at %d)", i,
                                        seqs[i], j);
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
        for (int32_t i = 0; i < nb; i++) {
            m->seqs[i] = seqs[done + i];
            /* default positions continue each sequence; earlier chunks are already stored */
            if (pos) m->pos[i] = pos[done + i];
            else m->pos[i] = i > 0 && m->seqs[i] == m->seqs[i - 1] ? m->pos[i - 1] + 1 : tw_kv_seq_pos_max(kv, m->seqs[i]) + 1;
        }
        bool last = done + nb == n;
        tw_logits_mode cm = mode == TW_LOGITS_ALL ? TW_LOGITS_ALL : (last ? mode : TW_LOGITS_NONE);
        float *lo = mode == TW_LOGITS_ALL ? logits + (size_t)done * (size_t)c->n_vocab : logits;
        if ((st = forward_chunk(m, kv, tokens + done, nb, cm, lo, err))) return st;
    }
    return TW_OK;
}

tw_status tw_llama_forward(tw_llama *m, tw_kv *kv, int32_t seq, const int32_t *tokens, const int32_t *pos, int32_t n,
                           tw_logits_mode mode, float *logits, tw_error *err)
{
    if (seq < 0 || seq >= tw_kv_n_seq(kv))
        return tw_error_set(err, TW_ERR_INVALID, "forward: sequence id %d not in 0..%d", seq, tw_kv_n_seq(kv) - 1);
    if (n <= 1) return tw_llama_forward_multi(m, kv, &seq, tokens, pos, n, mode, logits, err);
    int32_t *seqs = malloc((size_t)n * sizeof *seqs);
    if (!seqs) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) seqs[i] = seq;
    tw_status st = tw_llama_forward_multi(m, kv, seqs, tokens, pos, n, mode, logits, err);
    free(seqs);
    return st;
}
