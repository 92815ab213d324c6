/* lmodel.c — forward + backward of a llama-family model over its LoRA parameters, from the
 * ops of ops.h (the composition verified against tw_llama_forward, torch + PEFT and whole-
 * model finite differences in tests/test_train_ops.c and tests/test_lmodel.c).
 * The layer order follows src/model/llama.c: x -> RMSNorm -> q,k,v (+bias) (-> Q/K norm)
 * -> RoPE -> causal GQA attention -> o -> residual -> RMSNorm -> gate, up -> SwiGLU ->
 * down -> residual; final RMSNorm; output projection fused with the masked loss.
 * Deliberately not here: see lmodel.h. */
#include "train/lmodel.h"

#include "base/base.h"
#include "model/quant.h"
#include "train/ops.h"

#include <stdlib.h>
#include <string.h>

#define NTGT 7
static const char *const TGT_GGUF[NTGT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                           "ffn_down"};
#define OUT_CHUNK 32

typedef struct mweight {
    const void *data;
    tw_type type;
    int64_t rows, cols;   /* (n_out, n_in) */
} mweight;

typedef struct layer {
    float *an, *fn, *bq, *bk, *bv, *qn, *kn;
    mweight w[NTGT];
    bool lora[NTGT];
    int64_t off_a[NTGT], off_b[NTGT];   /* into params / grads */
    /* activations */
    float *x, *xn1, *r1, *q, *qn_o, *rq, *k, *kn_o, *rk, *qr, *kr, *v, *att, *lse, *h, *xn2, *r2, *gate, *up, *sw;
    float *t[NTGT];
    float *xd[NTGT];      /* dropout input of each adapted target (dropout > 0) */
} layer;

struct tw_lmodel {
    const tw_model_files *mf;
    tw_model_config c;
    tw_lmodel_params p;
    int64_t E, H, HKV, D, Q, KV, F, V, NR, T;   /* T: tokens of the last forward */
    float scale;
    mweight embd, output;
    float *out_norm, *rope_freqs;
    layer *L;
    int64_t n_params;
    float *params, *grads;
    uint64_t dropout_seed;
    bool train;
    /* final activations */
    float *xf, *xnf, *rf, *cs;
    /* backward scratch */
    float *scratch, *dxnf, *dx, *dh, *dxn, *dsw, *dgate, *dup, *datt, *dqr, *dq, *dq2, *dkr, *dk, *dk2, *dv, *delta, *dt,
        *dxd;
    /* every allocation, for free and the byte count */
    void **allocs;
    size_t n_allocs, cap_allocs;
    uint64_t bytes;
};

tw_lmodel_params tw_lmodel_default_params(void)
{
    tw_lmodel_params p = {0};
    p.targets = TW_LORA_Q | TW_LORA_V;
    p.rank = 8;
    p.alpha = 16;
    p.dropout = 0;
    p.max_T = 256;
    p.n_threads = 0;
    return p;
}

static float *lalloc(tw_lmodel *m, int64_t n, tw_status *st, tw_error *err)
{
    if (*st) return NULL;
    const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(float);
    if (m->n_allocs == m->cap_allocs &&
        (*st = tw_grow((void **)&m->allocs, &m->cap_allocs, m->n_allocs + 1, sizeof *m->allocs, err)))
        return NULL;
    float *p = calloc(1, bytes);
    if (!p) {
        *st = tw_error_set(err, TW_ERR_NOMEM, "training model: out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    m->allocs[m->n_allocs++] = p;
    m->bytes += bytes;
    return p;
}

static tw_status vec_of(tw_lmodel *m, const char *name, int64_t n, float **out, tw_error *err)
{
    const tw_model_tensor *t = tw_model_files_tensor_find(m->mf, name);
    if (!t) return tw_error_set(err, TW_ERR_INVALID, "%s: missing tensor '%s'", tw_model_files_path(m->mf), name);
    if (t->ne[0] != n || !tw_quant_supported(t->type))
        return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected %lld elements of a supported type",
                            tw_model_files_path(m->mf), name, (long long)n);
    tw_status st = TW_OK;
    *out = lalloc(m, n, &st, err);
    if (st) return st;
    tw_dequantize_row(t->type, *out, t->data, n);
    return TW_OK;
}

static tw_status mat_of(tw_lmodel *m, const char *name, int64_t rows, int64_t cols, mweight *out, tw_error *err)
{
    const tw_model_tensor *t = tw_model_files_tensor_find(m->mf, name);
    if (!t) return tw_error_set(err, TW_ERR_INVALID, "%s: missing tensor '%s'", tw_model_files_path(m->mf), name);
    if (t->ne[0] != cols || t->ne[1] != rows)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected dims [%lld, %lld], found [%lld, %lld]",
                            tw_model_files_path(m->mf), name, (long long)cols, (long long)rows, (long long)t->ne[0],
                            (long long)t->ne[1]);
    if (!tw_quant_supported(t->type))
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': type %s is not supported by the kernels",
                            tw_model_files_path(m->mf), name, tw_type_get(t->type)->name);
    *out = (mweight){t->data, t->type, rows, cols};
    return TW_OK;
}

tw_status tw_lmodel_new(tw_lmodel **out, const tw_model_files *mf, const tw_lmodel_params *p, tw_error *err)
{
    *out = NULL;
    tw_lmodel_params d = tw_lmodel_default_params();
    if (!p) p = &d;
    if (p->rank <= 0 || p->max_T <= 0 || !(p->dropout >= 0 && p->dropout < 1) || (p->targets & ~(unsigned)TW_LORA_ALL))
        return tw_error_set(err, TW_ERR_INVALID, "training model: rank %d, max_T %lld, dropout %g: out of range",
                            (int)p->rank, (long long)p->max_T, (double)p->dropout);
    tw_lmodel *m = calloc(1, sizeof *m);
    if (!m) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    m->mf = mf;
    m->c = *tw_model_files_config(mf);
    m->p = *p;
    const tw_model_config *c = &m->c;
    m->E = c->n_embd; m->H = c->n_head; m->HKV = c->n_head_kv; m->D = c->head_dim; m->F = c->n_ff;
    m->Q = m->H * m->D; m->KV = m->HKV * m->D; m->V = c->n_vocab; m->NR = c->n_rot;
    m->scale = p->alpha / (float)p->rank;
    const int64_t T = p->max_T, E = m->E, R = p->rank;
    tw_status st = TW_OK;
    char nm[96];
    if (m->D > 512) st = tw_error_set(err, TW_ERR_UNSUPPORTED, "training model: head_dim %lld > 512", (long long)m->D);
    if (!st) st = mat_of(m, "token_embd.weight", m->V, E, &m->embd, err);
    if (!st) st = mat_of(m, c->tied_embeddings ? "token_embd.weight" : "output.weight", m->V, E, &m->output, err);
    if (!st) st = vec_of(m, "output_norm.weight", E, &m->out_norm, err);
    if (!st && c->rope_scaling == TW_ROPE_SCALING_LLAMA3 && tw_model_files_tensor_find(mf, "rope_freqs.weight"))
        st = vec_of(m, "rope_freqs.weight", m->NR / 2, &m->rope_freqs, err);
    if (!st) {
        m->L = calloc((size_t)c->n_layer, sizeof *m->L);
        if (!m->L) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    /* weights and the parameter layout */
    int64_t off = 0, max_in = 0;
    for (int l = 0; !st && l < c->n_layer; l++) {
        layer *L = &m->L[l];
#define V1(field, suffix, n)                                                     \
    do {                                                                         \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);                         \
        if (!st) st = vec_of(m, nm, n, &L->field, err);                          \
    } while (0)
        V1(an, "attn_norm.weight", E);
        V1(fn, "ffn_norm.weight", E);
        if (c->attn_bias) { V1(bq, "attn_q.bias", m->Q); V1(bk, "attn_k.bias", m->KV); V1(bv, "attn_v.bias", m->KV); }
        if (c->qk_norm) { V1(qn, "attn_q_norm.weight", m->D); V1(kn, "attn_k_norm.weight", m->D); }
#undef V1
        const int64_t rows[NTGT] = {m->Q, m->KV, m->KV, E, m->F, m->F, E};
        const int64_t cols[NTGT] = {E, E, E, m->Q, E, E, m->F};
        for (int t = 0; !st && t < NTGT; t++) {
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, TGT_GGUF[t]);
            st = mat_of(m, nm, rows[t], cols[t], &L->w[t], err);
            L->lora[t] = (p->targets >> t) & 1u;
            if (L->lora[t]) {
                L->off_a[t] = off;
                off += R * cols[t];
                L->off_b[t] = off;
                off += rows[t] * R;
                if (cols[t] > max_in) max_in = cols[t];
            }
        }
    }
    m->n_params = off;
    if (!st && off == 0) st = tw_error_set(err, TW_ERR_INVALID, "training model: no LoRA targets");
    m->params = lalloc(m, off, &st, err);
    m->grads = lalloc(m, off, &st, err);
    /* activations */
    const int64_t Q = m->Q, KV = m->KV, F = m->F, H = m->H, HKV = m->HKV;
    for (int l = 0; !st && l < c->n_layer; l++) {
        layer *L = &m->L[l];
        L->x = lalloc(m, T * E, &st, err); L->xn1 = lalloc(m, T * E, &st, err); L->r1 = lalloc(m, T, &st, err);
        L->q = lalloc(m, T * Q, &st, err); L->k = lalloc(m, T * KV, &st, err); L->v = lalloc(m, T * KV, &st, err);
        if (c->qk_norm) {
            L->qn_o = lalloc(m, T * Q, &st, err); L->rq = lalloc(m, T * H, &st, err);
            L->kn_o = lalloc(m, T * KV, &st, err); L->rk = lalloc(m, T * HKV, &st, err);
        }
        L->qr = lalloc(m, T * Q, &st, err); L->kr = lalloc(m, T * KV, &st, err);
        L->att = lalloc(m, T * Q, &st, err); L->lse = lalloc(m, T * H, &st, err); L->h = lalloc(m, T * E, &st, err);
        L->xn2 = lalloc(m, T * E, &st, err); L->r2 = lalloc(m, T, &st, err);
        L->gate = lalloc(m, T * F, &st, err); L->up = lalloc(m, T * F, &st, err); L->sw = lalloc(m, T * F, &st, err);
        for (int t = 0; t < NTGT; t++)
            if (L->lora[t]) {
                L->t[t] = lalloc(m, T * R, &st, err);
                if (p->dropout > 0) L->xd[t] = lalloc(m, T * L->w[t].cols, &st, err);
            }
    }
    m->xf = lalloc(m, T * E, &st, err); m->xnf = lalloc(m, T * E, &st, err); m->rf = lalloc(m, T, &st, err);
    m->cs = lalloc(m, T * (m->NR > 0 ? m->NR : 1), &st, err);
    m->scratch = lalloc(m, OUT_CHUNK * (m->V + 2 * E), &st, err);
    m->dxnf = lalloc(m, T * E, &st, err); m->dx = lalloc(m, T * E, &st, err); m->dh = lalloc(m, T * E, &st, err);
    m->dxn = lalloc(m, T * E, &st, err);
    m->dsw = lalloc(m, T * F, &st, err); m->dgate = lalloc(m, T * F, &st, err); m->dup = lalloc(m, T * F, &st, err);
    m->datt = lalloc(m, T * Q, &st, err); m->dqr = lalloc(m, T * Q, &st, err); m->dq = lalloc(m, T * Q, &st, err);
    m->dq2 = lalloc(m, T * Q, &st, err);
    m->dkr = lalloc(m, T * KV, &st, err); m->dk = lalloc(m, T * KV, &st, err); m->dk2 = lalloc(m, T * KV, &st, err);
    m->dv = lalloc(m, T * KV, &st, err); m->delta = lalloc(m, T * H, &st, err); m->dt = lalloc(m, T * R, &st, err);
    if (p->dropout > 0) m->dxd = lalloc(m, T * max_in, &st, err);
    if (st) {
        tw_lmodel_free(m);
        return st;
    }
    *out = m;
    return TW_OK;
}

void tw_lmodel_free(tw_lmodel *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_allocs; i++) free(m->allocs[i]);
    free(m->allocs);
    free(m->L);
    free(m);
}

const tw_model_config *tw_lmodel_config(const tw_lmodel *m) { return &m->c; }
int64_t tw_lmodel_max_T(const tw_lmodel *m) { return m->p.max_T; }
uint64_t tw_lmodel_bytes(const tw_lmodel *m) { return m->bytes; }
int64_t tw_lmodel_n_params(const tw_lmodel *m) { return m->n_params; }
float *tw_lmodel_lora_params(tw_lmodel *m) { return m->params; }
float *tw_lmodel_lora_grads(tw_lmodel *m) { return m->grads; }
void tw_lmodel_zero_grads(tw_lmodel *m) { memset(m->grads, 0, (size_t)m->n_params * sizeof(float)); }

static tw_status new_lora(const tw_lmodel *m, tw_lora **out, tw_error *err)
{
    return tw_lora_new(out, &m->c, m->p.targets, m->p.rank, m->p.alpha, tw_lora_rows_for(m->mf), err);
}

/* copy between a tw_lora of this shape and a flat array (to_flat: lora -> flat) */
static tw_status copy_lora(const tw_lmodel *m, tw_lora *l, float *flat, bool to_flat, tw_error *err)
{
    int32_t i = 0;
    for (int layer_i = 0; layer_i < m->c.n_layer; layer_i++)
        for (int t = 0; t < NTGT; t++) {
            const layer *L = &m->L[layer_i];
            if (!L->lora[t]) continue;
            char nm[96];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", layer_i, TGT_GGUF[t]);
            tw_lora_weight *w = tw_lora_find_mut(l, nm);
            if (!w || w->rank != m->p.rank || w->n_in != L->w[t].cols || w->n_out != L->w[t].rows)
                return tw_error_set(err, TW_ERR_INVALID,
                                    "adapter %s: '%s' missing or of another shape than the training model's "
                                    "(rank %d, %lld -> %lld)",
                                    l->path[0] ? l->path : "(new)", nm, (int)m->p.rank, (long long)L->w[t].cols,
                                    (long long)L->w[t].rows);
            const size_t na = (size_t)(w->rank * w->n_in), nb = (size_t)(w->n_out * w->rank);
            if (to_flat) {
                memcpy(flat + L->off_a[t], w->a, na * sizeof(float));
                memcpy(flat + L->off_b[t], w->b, nb * sizeof(float));
            } else {
                memcpy(w->a, flat + L->off_a[t], na * sizeof(float));
                memcpy(w->b, flat + L->off_b[t], nb * sizeof(float));
            }
            i++;
        }
    if (i != l->n)
        return tw_error_set(err, TW_ERR_INVALID, "adapter %s: %d weights, the training model adapts %d",
                            l->path[0] ? l->path : "(new)", (int)l->n, (int)i);
    return TW_OK;
}

tw_status tw_lmodel_init_peft(tw_lmodel *m, uint64_t seed, tw_error *err)
{
    tw_lora *l = NULL;
    tw_status st = new_lora(m, &l, err);
    if (!st) {
        tw_lora_init_peft(l, seed);
        st = copy_lora(m, l, m->params, true, err);
    }
    tw_lora_free(l);
    return st;
}

tw_status tw_lmodel_to_lora(const tw_lmodel *m, const float *params, tw_lora **out, tw_error *err)
{
    *out = NULL;
    tw_lora *l = NULL;
    tw_status st = new_lora(m, &l, err);
    if (!st) st = tw_lora_set_config(l, &m->c, err);
    if (!st) st = copy_lora(m, l, (float *)(params ? params : m->params), false, err);
    if (st) {
        tw_lora_free(l);
        return st;
    }
    *out = l;
    return TW_OK;
}

tw_status tw_lmodel_from_lora(tw_lmodel *m, tw_lora *l, tw_error *err)
{
    tw_status st = tw_lora_prepare(l, m->mf, err);
    if (!st && tw_lora_targets(l) != m->p.targets)
        st = tw_error_set(err, TW_ERR_INVALID, "adapter %s: its targets differ from the training model's", l->path);
    if (!st) st = copy_lora(m, l, m->params, true, err);
    return st;
}

/* ---- forward ------------------------------------------------------------------------- */

static uint64_t drop_seed(const tw_lmodel *m, int l, int t) { return tw_hash_mix(m->dropout_seed + (uint64_t)(8 * l + t)); }

/* y (T, out) = (LoRA) linear t of layer l on x */
static void lin(tw_lmodel *m, int l, int t, float *y, const float *x, int64_t T)
{
    layer *L = &m->L[l];
    const mweight *w = &L->w[t];
    if (!L->lora[t]) {
        tw_linear_forward(y, x, w->data, w->type, T, w->rows, w->cols, m->p.n_threads);
        return;
    }
    const float *xd = x;
    if (m->train && m->p.dropout > 0) {
        tw_dropout_forward(L->xd[t], x, m->p.dropout, drop_seed(m, l, t), T * w->cols);
        xd = L->xd[t];
    }
    tw_lora_linear_forward(y, L->t[t], x, xd, w->data, w->type, m->params + L->off_a[t], m->params + L->off_b[t],
                           m->scale, T, w->rows, w->cols, m->p.rank, m->p.n_threads);
}

double tw_lmodel_forward(tw_lmodel *m, const int32_t *tok, const int32_t *tg, const float *w, int64_t T,
                         uint64_t dropout_seed, bool train)
{
    if (T <= 0 || T > m->p.max_T) return 0;
    m->T = T;
    m->train = train;
    m->dropout_seed = dropout_seed;
    const int64_t E = m->E, H = m->H, HKV = m->HKV, D = m->D;
    const tw_model_config *c = &m->c;
    const int nt = m->p.n_threads;
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    if (pos) {
        for (int64_t i = 0; i < T; i++) pos[i] = (int32_t)i;
        const float fscale = c->rope_scaling == TW_ROPE_SCALING_LINEAR ? 1.0f / c->rope_scale : 1.0f;
        tw_rope_cache(m->cs, pos, T, m->NR, c->rope_freq_base, fscale, m->rope_freqs);
        free(pos);
    } else {   /* no allocation needed for positions: one row at a time */
        for (int64_t i = 0; i < T; i++) {
            const int32_t pi = (int32_t)i;
            const float fscale = c->rope_scaling == TW_ROPE_SCALING_LINEAR ? 1.0f / c->rope_scale : 1.0f;
            tw_rope_cache(m->cs + i * m->NR, &pi, 1, m->NR, c->rope_freq_base, fscale, m->rope_freqs);
        }
    }
    tw_embedding_forward(m->L[0].x, tok, m->embd.data, m->embd.type, T, E);
    for (int l = 0; l < c->n_layer; l++) {
        layer *a = &m->L[l];
        tw_rmsnorm_forward(a->xn1, a->r1, a->x, a->an, T, E, c->rms_eps);
        lin(m, l, 0, a->q, a->xn1, T);
        lin(m, l, 1, a->k, a->xn1, T);
        lin(m, l, 2, a->v, a->xn1, T);
        if (a->bq) {
            tw_bias_forward(a->q, a->q, a->bq, T, m->Q);
            tw_bias_forward(a->k, a->k, a->bk, T, m->KV);
            tw_bias_forward(a->v, a->v, a->bv, T, m->KV);
        }
        const float *qin = a->q, *kin = a->k;
        if (a->qn) {
            tw_rmsnorm_forward(a->qn_o, a->rq, a->q, a->qn, T * H, D, c->rms_eps);
            tw_rmsnorm_forward(a->kn_o, a->rk, a->k, a->kn, T * HKV, D, c->rms_eps);
            qin = a->qn_o;
            kin = a->kn_o;
        }
        tw_rope_forward(a->qr, qin, m->cs, T, H, D, m->NR, (int)c->rope_type);
        tw_rope_forward(a->kr, kin, m->cs, T, HKV, D, m->NR, (int)c->rope_type);
        tw_attention_forward(a->att, a->lse, a->qr, a->kr, a->v, T, H, HKV, D, nt);
        lin(m, l, 3, a->h, a->att, T);
        tw_residual_forward(a->h, a->x, a->h, T * E);
        tw_rmsnorm_forward(a->xn2, a->r2, a->h, a->fn, T, E, c->rms_eps);
        lin(m, l, 4, a->gate, a->xn2, T);
        lin(m, l, 5, a->up, a->xn2, T);
        tw_swiglu_forward(a->sw, a->gate, a->up, T * m->F);
        float *xo = l + 1 < c->n_layer ? m->L[l + 1].x : m->xf;
        lin(m, l, 6, xo, a->sw, T);
        tw_residual_forward(xo, a->h, xo, T * E);
    }
    tw_rmsnorm_forward(m->xnf, m->rf, m->xf, m->out_norm, T, E, c->rms_eps);
    if (!tg || !w) return 0;
    return tw_output_loss(NULL, m->scratch, m->xnf, m->output.data, m->output.type, tg, w, T, m->V, E, OUT_CHUNK, nt);
}

/* ---- backward ------------------------------------------------------------------------ */

#define ZERO(p, n) memset((p), 0, (size_t)(n) * sizeof(float))

/* din (T, n_in) += d(lin t of layer l)/d x applied to dout (T, n_out); LoRA grads += */
static void lin_back(tw_lmodel *m, int l, int t, float *din, const float *dout, const float *xin, int64_t T)
{
    layer *L = &m->L[l];
    const mweight *w = &L->w[t];
    const int nt = m->p.n_threads;
    if (!L->lora[t]) {
        tw_linear_backward(din, dout, w->data, w->type, T, w->rows, w->cols, nt);
        return;
    }
    const float *A = m->params + L->off_a[t], *B = m->params + L->off_b[t];
    float *dA = m->grads + L->off_a[t], *dB = m->grads + L->off_b[t];
    if (m->train && m->p.dropout > 0) {
        const int64_t N = T * w->cols;
        ZERO(m->dxd, N);
        tw_lora_linear_backward(din, m->dxd, dA, dB, m->dt, dout, L->xd[t], L->t[t], w->data, w->type, A, B, m->scale,
                                T, w->rows, w->cols, m->p.rank, nt);
        tw_dropout_backward(din, m->dxd, m->p.dropout, drop_seed(m, l, t), N);
        return;
    }
    tw_lora_linear_backward(din, din, dA, dB, m->dt, dout, xin, L->t[t], w->data, w->type, A, B, m->scale, T, w->rows,
                            w->cols, m->p.rank, nt);
}

double tw_lmodel_backward(tw_lmodel *m, const int32_t *tg, const float *w)
{
    const int64_t T = m->T, E = m->E, H = m->H, HKV = m->HKV, D = m->D, F = m->F, Q = m->Q, KV = m->KV;
    if (T <= 0) return 0;
    const tw_model_config *c = &m->c;
    const int nt = m->p.n_threads;
    ZERO(m->dxnf, T * E);
    const double loss =
        tw_output_loss(m->dxnf, m->scratch, m->xnf, m->output.data, m->output.type, tg, w, T, m->V, E, OUT_CHUNK, nt);
    float *dx = m->dx, *dh = m->dh, *dxn = m->dxn;
    ZERO(dx, T * E);
    tw_rmsnorm_backward(dx, NULL, m->dxnf, m->xf, m->out_norm, m->rf, T, E);   /* gradient of the last layer's output */
    for (int l = c->n_layer - 1; l >= 0; l--) {
        const layer *a = &m->L[l];
        /* x_out = h + down(swiglu(gate(n2(h)), up(n2(h)))) */
        memcpy(dh, dx, (size_t)(T * E) * sizeof *dh);
        ZERO(m->dsw, T * F);
        lin_back(m, l, 6, m->dsw, dx, a->sw, T);
        ZERO(m->dgate, T * F);
        ZERO(m->dup, T * F);
        tw_swiglu_backward(m->dgate, m->dup, m->dsw, a->gate, a->up, T * F);
        ZERO(dxn, T * E);
        lin_back(m, l, 4, dxn, m->dgate, a->xn2, T);
        lin_back(m, l, 5, dxn, m->dup, a->xn2, T);
        tw_rmsnorm_backward(dh, NULL, dxn, a->h, a->fn, a->r2, T, E);
        /* h = x + o(attn(rope(q), rope(k), v)) */
        memcpy(dx, dh, (size_t)(T * E) * sizeof *dx);
        ZERO(m->datt, T * Q);
        lin_back(m, l, 3, m->datt, dh, a->att, T);
        ZERO(m->dqr, T * Q); ZERO(m->dkr, T * KV); ZERO(m->dv, T * KV);
        tw_attention_backward(m->dqr, m->dkr, m->dv, m->delta, m->datt, a->qr, a->kr, a->v, a->att, a->lse, T, H, HKV, D,
                              nt);
        ZERO(m->dq, T * Q); ZERO(m->dk, T * KV);
        tw_rope_backward(m->dq, m->dqr, m->cs, T, H, D, m->NR, (int)c->rope_type);
        tw_rope_backward(m->dk, m->dkr, m->cs, T, HKV, D, m->NR, (int)c->rope_type);
        float *dqp = m->dq, *dkp = m->dk;
        if (a->qn) {
            ZERO(m->dq2, T * Q); ZERO(m->dk2, T * KV);
            tw_rmsnorm_backward(m->dq2, NULL, m->dq, a->q, a->qn, a->rq, T * H, D);
            tw_rmsnorm_backward(m->dk2, NULL, m->dk, a->k, a->kn, a->rk, T * HKV, D);
            dqp = m->dq2;
            dkp = m->dk2;
        }
        /* the (frozen) bias passes the gradient through unchanged */
        ZERO(dxn, T * E);
        lin_back(m, l, 0, dxn, dqp, a->xn1, T);
        lin_back(m, l, 1, dxn, dkp, a->xn1, T);
        lin_back(m, l, 2, dxn, m->dv, a->xn1, T);
        tw_rmsnorm_backward(dx, NULL, dxn, a->x, a->an, a->r1, T, E);
    }
    return loss;
}
