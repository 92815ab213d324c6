/* lora.c — LoRA adapters (lora.h): the adapter object, llama.cpp's GGUF adapter format,
 * Hugging Face PEFT's folder format (adapter_config.json + adapter_model.safetensors), the
 * llama Q/K row permutation between them, validation against a model, and the unmerged /
 * merged application math.
 *
 * Formats as implemented by llama.cpp (src/llama-adapter.cpp: the loader's keys, suffixes
 * and shape checks; convert_lora_to_gguf.py: names, ne order, the permutation of lora_b
 * through LlamaModel.permute) and PEFT (LoraConfig fields, save_pretrained's key names);
 * docs/adapters.md has the details and what was checked against the real tools.
 *
 * Deliberately not here: training and gradients, wiring into llama.c, adapters of
 * embeddings / output / norms, DoRA, per-module alphas, quantized output. */
#include "model/lora.h"
#include "base/base.h"
#include "model/gemm.h"
#include "model/gguf.h"
#include "model/quant.h"
#include "model/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PEFT_PREFIX "base_model.model."
#define PEFT_DEFAULT_R 8          /* peft LoraConfig.r default */
#define PEFT_DEFAULT_ALPHA 8.0    /* peft LoraConfig.lora_alpha default */

/* ---- targets and names ------------------------------------------------------------- */

typedef struct target_info {
    tw_lora_target t;
    const char *name;      /* short name */
    const char *gguf;      /* blk.N.<gguf>.weight */
    const char *hf;        /* model.layers.N.<hf> (module name) */
    const char *peft;      /* PEFT target_modules entry */
} target_info;

static const target_info TARGETS[] = {
    {TW_LORA_Q, "q", "attn_q", "self_attn.q_proj", "q_proj"},
    {TW_LORA_K, "k", "attn_k", "self_attn.k_proj", "k_proj"},
    {TW_LORA_V, "v", "attn_v", "self_attn.v_proj", "v_proj"},
    {TW_LORA_O, "o", "attn_output", "self_attn.o_proj", "o_proj"},
    {TW_LORA_GATE, "gate", "ffn_gate", "mlp.gate_proj", "gate_proj"},
    {TW_LORA_UP, "up", "ffn_up", "mlp.up_proj", "up_proj"},
    {TW_LORA_DOWN, "down", "ffn_down", "mlp.down_proj", "down_proj"},
};
#define N_TARGETS ((int)(sizeof TARGETS / sizeof TARGETS[0]))

static int target_index(tw_lora_target t)
{
    for (int i = 0; i < N_TARGETS; i++)
        if (TARGETS[i].t == t) return i;
    return -1;
}

const char *tw_lora_target_name(tw_lora_target t)
{
    int i = target_index(t);
    return i < 0 ? "?" : TARGETS[i].name;
}

bool tw_lora_targets_parse(const char *s, unsigned *out)
{
    unsigned m = 0;
    const char *p = s;
    if (!s || !*s) return false;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool ok = false;
        if (n == 3 && strncmp(p, "all", 3) == 0) {
            m |= TW_LORA_ALL;
            ok = true;
        }
        for (int i = 0; i < N_TARGETS && !ok; i++)
            if (strlen(TARGETS[i].name) == n && strncmp(p, TARGETS[i].name, n) == 0) {
                m |= (unsigned)TARGETS[i].t;
                ok = true;
            }
        if (!ok) return false;
        if (!e) break;
        p = e + 1;
        if (!*p) return false;
    }
    *out = m;
    return true;
}

/* "blk.N.attn_q.weight" -> layer, target index; false when not an adaptable base name. */
static bool parse_gguf_base(const char *name, int32_t *layer, int *ti)
{
    if (strncmp(name, "blk.", 4) != 0) return false;
    const char *p = name + 4;
    char *end;
    errno = 0;
    long n = strtol(p, &end, 10);
    if (end == p || *end != '.' || n < 0 || n > 100000 || errno || (p[0] == '0' && end - p > 1)) return false;
    for (int i = 0; i < N_TARGETS; i++) {
        size_t k = strlen(TARGETS[i].gguf);
        if (strncmp(end + 1, TARGETS[i].gguf, k) == 0 && strcmp(end + 1 + k, ".weight") == 0) {
            *layer = (int32_t)n;
            *ti = i;
            return true;
        }
    }
    return false;
}

/* "model.layers.N.self_attn.q_proj" (module name) -> layer, target index. */
static bool parse_hf_module(const char *name, size_t len, int32_t *layer, int *ti)
{
    const char *pfx = "model.layers.";
    size_t pl = strlen(pfx);
    if (len <= pl || strncmp(name, pfx, pl) != 0) return false;
    const char *p = name + pl;
    long n = 0;
    const char *q = p;
    while (q < name + len && *q >= '0' && *q <= '9') {
        n = n * 10 + (*q - '0');
        if (n > 100000) return false;
        q++;
    }
    if (q == p || q >= name + len || *q != '.' || (p[0] == '0' && q - p > 1)) return false;
    q++;
    size_t rest = (size_t)(name + len - q);
    for (int i = 0; i < N_TARGETS; i++)
        if (strlen(TARGETS[i].hf) == rest && strncmp(q, TARGETS[i].hf, rest) == 0) {
            *layer = (int32_t)n;
            *ti = i;
            return true;
        }
    return false;
}

static void gguf_base_name(char *dst, size_t cap, int32_t layer, int ti)
{
    snprintf(dst, cap, "blk.%d.%s.weight", (int)layer, TARGETS[ti].gguf);
}

static void hf_module_name(char *dst, size_t cap, int32_t layer, int ti)
{
    snprintf(dst, cap, "model.layers.%d.%s", (int)layer, TARGETS[ti].hf);
}

/* The adapter's own name of w's A (is_b false) or B tensor, for messages. */
static void src_tensor_name(const tw_lora *l, const tw_lora_weight *w, bool is_b, char *dst, size_t cap)
{
    int ti = target_index(w->target);
    if (l->peft) {
        char mod[128];
        hf_module_name(mod, sizeof mod, w->layer, ti);
        snprintf(dst, cap, PEFT_PREFIX "%s.lora_%s.weight", mod, is_b ? "B" : "A");
    } else {
        snprintf(dst, cap, "%s.lora_%s", w->name, is_b ? "b" : "a");
    }
}

static const char *where(const tw_lora *l)
{
    return l->path[0] ? l->path : "adapter";
}

/* ---- the object ---------------------------------------------------------------------- */

void tw_lora_free(tw_lora *l)
{
    if (!l) return;
    for (int32_t i = 0; i < l->n; i++) {
        free(l->w[i].a);
        free(l->w[i].b);
    }
    free(l->w);
    free(l);
}

static tw_lora *lora_alloc(tw_error *err)
{
    tw_lora *l = calloc(1, sizeof *l);
    if (!l) {
        tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        return NULL;
    }
    l->arch = TW_ARCH_COUNT;
    return l;
}

/* Append a weight with owned, uninitialized A and B; returns NULL on OOM (err set). */
static tw_lora_weight *lora_add(tw_lora *l, int32_t layer, int ti, int32_t rank, int64_t n_in, int64_t n_out,
                                size_t *cap, tw_error *err)
{
    if ((size_t)l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        tw_lora_weight *nw = realloc(l->w, nc * sizeof *nw);
        if (!nw) {
            tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            return NULL;
        }
        l->w = nw;
        *cap = nc;
    }
    tw_lora_weight *w = &l->w[l->n];
    memset(w, 0, sizeof *w);
    gguf_base_name(w->name, sizeof w->name, layer, ti);
    w->layer = layer;
    w->target = TARGETS[ti].t;
    w->rank = rank;
    w->n_in = n_in;
    w->n_out = n_out;
    w->src_type = TW_TYPE_F32;
    l->n++;
    if (rank > 0 && n_in > 0 && n_out > 0) {
        w->a = malloc((size_t)rank * (size_t)n_in * sizeof(float));
        w->b = malloc((size_t)rank * (size_t)n_out * sizeof(float));
    }
    if (!w->a || !w->b) {
        tw_error_set(err, TW_ERR_NOMEM, "out of memory (LoRA %s: rank %d x %lld + %lld)", w->name, (int)rank,
                     (long long)n_in, (long long)n_out);
        return NULL;
    }
    return w;
}

static int cmp_weight(const void *pa, const void *pb)
{
    const tw_lora_weight *a = pa, *b = pb;
    if (a->layer != b->layer) return a->layer < b->layer ? -1 : 1;
    int ia = target_index(a->target), ib = target_index(b->target);
    return (ia > ib) - (ia < ib);
}

static void lora_sort(tw_lora *l)
{
    if (l->n > 1) qsort(l->w, (size_t)l->n, sizeof *l->w, cmp_weight);
}

/* Projection dims a config implies for target index ti. */
static void cfg_dims(const tw_model_config *c, int ti, int64_t *n_in, int64_t *n_out)
{
    int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim;
    switch (TARGETS[ti].t) {
    case TW_LORA_Q: *n_in = E; *n_out = Q; break;
    case TW_LORA_K:
    case TW_LORA_V: *n_in = E; *n_out = KV; break;
    case TW_LORA_O: *n_in = Q; *n_out = E; break;
    case TW_LORA_GATE:
    case TW_LORA_UP: *n_in = E; *n_out = c->n_ff; break;
    default: *n_in = c->n_ff; *n_out = E; break;
    }
}

tw_status tw_lora_new(tw_lora **out, const tw_model_config *cfg, unsigned targets, int32_t rank, float alpha,
                      tw_lora_rows rows, tw_error *err)
{
    *out = NULL;
    if (rank <= 0 || rank > 65536)
        return tw_error_set(err, TW_ERR_INVALID, "LoRA rank %d: expected 1..65536", (int)rank);
    if (!(targets & TW_LORA_ALL) || (targets & ~(unsigned)TW_LORA_ALL))
        return tw_error_set(err, TW_ERR_INVALID, "LoRA targets 0x%x: expected a non-empty subset of q,k,v,o,gate,up,down",
                            targets);
    if (!(alpha >= 0.0f) || !isfinite(alpha))
        return tw_error_set(err, TW_ERR_INVALID, "LoRA alpha %g: expected a finite value >= 0", (double)alpha);
    tw_lora *l = lora_alloc(err);
    if (!l) return TW_ERR_NOMEM;
    l->arch = cfg->arch;
    l->alpha = alpha;
    l->rows = rows;
    l->n_head = cfg->n_head;
    l->n_head_kv = cfg->n_head_kv;
    l->n_layer = cfg->n_layer;
    snprintf(l->base_model, sizeof l->base_model, "%s", cfg->name);
    size_t cap = 0;
    for (int32_t layer = 0; layer < cfg->n_layer; layer++)
        for (int ti = 0; ti < N_TARGETS; ti++) {
            if (!(targets & (unsigned)TARGETS[ti].t)) continue;
            int64_t ni, no;
            cfg_dims(cfg, ti, &ni, &no);
            tw_lora_weight *w = lora_add(l, layer, ti, rank, ni, no, &cap, err);
            if (!w) {
                tw_lora_free(l);
                return TW_ERR_NOMEM;
            }
            memset(w->a, 0, (size_t)rank * (size_t)ni * sizeof(float));
            memset(w->b, 0, (size_t)rank * (size_t)no * sizeof(float));
        }
    *out = l;
    return TW_OK;
}

void tw_lora_init_peft(tw_lora *l, uint64_t seed)
{
    for (int32_t i = 0; i < l->n; i++) {
        tw_lora_weight *w = &l->w[i];
        tw_rng r;
        tw_rng_seed(&r, tw_hash64(w->name, strlen(w->name), seed));
        /* kaiming_uniform_(a = sqrt(5)): bound = sqrt(6 / ((1 + a^2) fan_in)) = 1/sqrt(fan_in) */
        double bound = 1.0 / sqrt((double)w->n_in);
        size_t na = (size_t)w->rank * (size_t)w->n_in;
        for (size_t k = 0; k < na; k++) w->a[k] = (float)((2.0 * tw_rng_uniform(&r) - 1.0) * bound);
        memset(w->b, 0, (size_t)w->rank * (size_t)w->n_out * sizeof(float));
    }
}

const tw_lora_weight *tw_lora_find(const tw_lora *l, const char *base_name)
{
    return tw_lora_find_mut((tw_lora *)l, base_name);
}

tw_lora_weight *tw_lora_find_mut(tw_lora *l, const char *base_name)
{
    int32_t layer;
    int ti;
    if (!l || !parse_gguf_base(base_name, &layer, &ti)) return NULL;
    /* weights are sorted by (layer, target): binary search */
    int32_t lo = 0, hi = l->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        const tw_lora_weight *w = &l->w[mid];
        int c = w->layer != layer ? (w->layer < layer ? -1 : 1) : (target_index(w->target) > ti) - (target_index(w->target) < ti);
        if (c == 0) return &l->w[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

unsigned tw_lora_targets(const tw_lora *l)
{
    unsigned m = 0;
    for (int32_t i = 0; i < l->n; i++) m |= (unsigned)l->w[i].target;
    return m;
}

float tw_lora_scale(const tw_lora *l, const tw_lora_weight *w, float user_scale)
{
    return l->alpha != 0.0f ? user_scale * l->alpha / (float)w->rank : user_scale;
}

/* ---- the permutation ------------------------------------------------------------------- */

/* llama.cpp convert_hf_to_gguf LlamaModel.permute: rows reshaped (n_heads, 2, d/2) and
 * swapped to (n_heads, d/2, 2): GGUF row h·d + 2j + k holds HF row h·d + k·d/2 + j. */
void tw_lora_permute_rows(float *dst, const float *src, int64_t n_rows, int64_t n_cols, int32_t n_heads, bool to_gguf)
{
    int64_t d = n_rows / n_heads, half = d / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t j = 0; j < half; j++)
            for (int64_t k = 0; k < 2; k++) {
                int64_t g = h * d + 2 * j + k, f = h * d + k * half + j;
                int64_t to = to_gguf ? g : f, from = to_gguf ? f : g;
                memcpy(dst + to * n_cols, src + from * n_cols, (size_t)n_cols * sizeof(float));
            }
}

static bool needs_perm(const tw_lora *l, const tw_lora_weight *w)
{
    return l->arch == TW_ARCH_LLAMA && (w->target == TW_LORA_Q || w->target == TW_LORA_K);
}

/* Heads of w's projection, with a check that the permutation is defined. */
static tw_status perm_heads(const tw_lora *l, const tw_lora_weight *w, int32_t *nh, tw_error *err)
{
    int32_t h = w->target == TW_LORA_Q ? l->n_head : l->n_head_kv;
    if (h <= 0)
        return tw_error_set(err, TW_ERR_INVALID,
                            "%s: '%s': converting llama Q/K rows between Hugging Face and llama.cpp order needs the "
                            "model's head counts (give the base model's config)",
                            where(l), w->name);
    if (w->n_out % h != 0 || (w->n_out / h) % 2 != 0)
        return tw_error_set(err, TW_ERR_INVALID, "%s: '%s': %lld rows do not split into %d heads of an even size", where(l),
                            w->name, (long long)w->n_out, (int)h);
    *nh = h;
    return TW_OK;
}

tw_status tw_lora_set_rows(tw_lora *l, tw_lora_rows rows, tw_error *err)
{
    if (l->rows == rows) return TW_OK;
    if (l->arch == TW_ARCH_COUNT)
        return tw_error_set(err, TW_ERR_INVALID, "%s: the adapter's architecture is unknown (give the base model's config)",
                            where(l));
    for (int32_t i = 0; i < l->n; i++) {
        tw_lora_weight *w = &l->w[i];
        if (!needs_perm(l, w)) continue;
        int32_t nh;
        tw_status st = perm_heads(l, w, &nh, err);
        if (st) return st;
    }
    for (int32_t i = 0; i < l->n; i++) {
        tw_lora_weight *w = &l->w[i];
        if (!needs_perm(l, w)) continue;
        int32_t nh = w->target == TW_LORA_Q ? l->n_head : l->n_head_kv;
        size_t nb = (size_t)w->n_out * (size_t)w->rank;
        float *b = malloc(nb * sizeof(float));
        if (!b) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        tw_lora_permute_rows(b, w->b, w->n_out, w->rank, nh, rows == TW_LORA_ROWS_GGUF);
        free(w->b);
        w->b = b;
    }
    l->rows = rows;
    return TW_OK;
}

tw_lora_rows tw_lora_rows_for(const tw_model_files *mf)
{
    return tw_model_files_source(mf) == TW_MODEL_SRC_GGUF ? TW_LORA_ROWS_GGUF : TW_LORA_ROWS_HF;
}

/* ---- validation ------------------------------------------------------------------------ */

static tw_status dims_error(const tw_lora *l, const tw_lora_weight *w, int64_t ni, int64_t no, const char *base_what,
                            tw_error *err)
{
    /* which of A (n_in) and B (n_out) is wrong; name that tensor with its file dims */
    bool b_wrong = w->n_out != no;
    char tn[192];
    src_tensor_name(l, w, b_wrong, tn, sizeof tn);
    if (l->peft) {
        /* PyTorch order */
        if (b_wrong)
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected shape [%lld, %d] (%s), found [%lld, %d]",
                                where(l), tn, (long long)no, (int)w->rank, base_what, (long long)w->n_out, (int)w->rank);
        return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected shape [%d, %lld] (%s), found [%d, %lld]", where(l),
                            tn, (int)w->rank, (long long)ni, base_what, (int)w->rank, (long long)w->n_in);
    }
    if (b_wrong)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected dims [%d, %lld] (%s), found [%d, %lld]", where(l),
                            tn, (int)w->rank, (long long)no, base_what, (int)w->rank, (long long)w->n_out);
    return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected dims [%lld, %d] (%s), found [%lld, %d]", where(l), tn,
                        (long long)ni, (int)w->rank, base_what, (long long)w->n_in, (int)w->rank);
}

tw_status tw_lora_set_config(tw_lora *l, const tw_model_config *cfg, tw_error *err)
{
    if (l->arch != TW_ARCH_COUNT && l->arch != cfg->arch)
        return tw_error_set(err, TW_ERR_INVALID, "%s: adapter is for architecture '%s', the model is '%s'", where(l),
                            tw_arch_name(l->arch), tw_arch_name(cfg->arch));
    for (int32_t i = 0; i < l->n; i++) {
        const tw_lora_weight *w = &l->w[i];
        char tn[192];
        if (w->layer >= cfg->n_layer) {
            src_tensor_name(l, w, false, tn, sizeof tn);
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': layer %d, but the model has %d layers", where(l), tn,
                                (int)w->layer, (int)cfg->n_layer);
        }
        int64_t ni, no;
        cfg_dims(cfg, target_index(w->target), &ni, &no);
        if (ni != w->n_in || no != w->n_out) {
            char what[160];
            snprintf(what, sizeof what, "base '%s' is [%lld, %lld]", w->name, (long long)ni, (long long)no);
            return dims_error(l, w, ni, no, what, err);
        }
    }
    l->arch = cfg->arch;
    l->n_head = cfg->n_head;
    l->n_head_kv = cfg->n_head_kv;
    l->n_layer = cfg->n_layer;
    return TW_OK;
}

tw_status tw_lora_check(tw_lora *l, const tw_model_files *mf, tw_error *err)
{
    tw_status st = tw_lora_set_config(l, tw_model_files_config(mf), err);
    if (st) return st;
    for (int32_t i = 0; i < l->n; i++) {
        const tw_lora_weight *w = &l->w[i];
        const tw_model_tensor *t = tw_model_files_tensor_find(mf, w->name);
        char tn[192];
        if (!t) {
            src_tensor_name(l, w, false, tn, sizeof tn);
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': the model %s has no tensor '%s'", where(l), tn,
                                tw_model_files_path(mf), w->name);
        }
        if (t->n_dims != 2 || t->ne[0] != w->n_in || t->ne[1] != w->n_out) {
            char what[256];
            snprintf(what, sizeof what, "base '%s' in %s is [%lld, %lld]", w->name, tw_model_files_path(mf),
                     (long long)t->ne[0], (long long)t->ne[1]);
            return dims_error(l, w, t->ne[0], t->ne[1], what, err);
        }
    }
    return TW_OK;
}

tw_status tw_lora_prepare(tw_lora *l, const tw_model_files *mf, tw_error *err)
{
    tw_status st = tw_lora_check(l, mf, err);
    return st ? st : tw_lora_set_rows(l, tw_lora_rows_for(mf), err);
}

/* ---- reading ------------------------------------------------------------------------------- */

static bool readable_type(tw_type t)
{
    return t == TW_TYPE_F32 || t == TW_TYPE_F16 || t == TW_TYPE_BF16 || t == TW_TYPE_Q8_0;
}

/* rows x cols elements of `type` at src -> dst floats. */
static void to_f32(float *dst, const void *src, tw_type type, int64_t rows, int64_t cols)
{
    size_t rb = tw_type_row_bytes(type, (uint64_t)cols);
    for (int64_t r = 0; r < rows; r++) tw_dequantize_row(type, dst + r * cols, (const char *)src + (size_t)r * rb, cols);
}

typedef struct pending {      /* one half of a pair while reading */
    const void *data;
    tw_type type;
    int64_t rows, cols;       /* of the row-major matrix as stored */
    const char *name;         /* for messages */
} pending;

typedef struct pair_slot {
    int32_t layer;
    int ti;
    pending a, b;
    bool has_a, has_b;
} pair_slot;

static pair_slot *slot_get(pair_slot **slots, size_t *n, size_t *cap, int32_t layer, int ti)
{
    for (size_t i = 0; i < *n; i++)
        if ((*slots)[i].layer == layer && (*slots)[i].ti == ti) return &(*slots)[i];
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        pair_slot *ns = realloc(*slots, nc * sizeof *ns);
        if (!ns) return NULL;
        *slots = ns;
        *cap = nc;
    }
    pair_slot *s = &(*slots)[(*n)++];
    memset(s, 0, sizeof *s);
    s->layer = layer;
    s->ti = ti;
    return s;
}

/* Turn the collected pairs into weights (shared by both readers). tensor names in
 * messages are the file's own; dims_word: "dims" (GGUF ne order) or "shape" (PyTorch). */
static tw_status build_weights(tw_lora *l, pair_slot *slots, size_t n, bool peft, tw_error *err)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        pair_slot *s = &slots[i];
        char base[96];
        gguf_base_name(base, sizeof base, s->layer, s->ti);
        if (!s->has_a || !s->has_b) {
            const char *have = s->has_a ? s->a.name : s->b.name;
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s' has no matching %s tensor", where(l), have,
                                peft ? (s->has_a ? "lora_B.weight" : "lora_A.weight") : (s->has_a ? ".lora_b" : ".lora_a"));
        }
        /* A is (rank, n_in), B is (n_out, rank) row-major */
        if (s->a.rows != s->b.cols) {
            if (peft)
                return tw_error_set(err, TW_ERR_INVALID,
                                    "%s: tensor '%s': shape [%lld, %lld] has rank %lld, but '%s' has rank %lld (shape [%lld, %lld])",
                                    where(l), s->b.name, (long long)s->b.rows, (long long)s->b.cols, (long long)s->b.cols,
                                    s->a.name, (long long)s->a.rows, (long long)s->a.rows, (long long)s->a.cols);
            return tw_error_set(err, TW_ERR_INVALID,
                                "%s: tensor '%s': dims [%lld, %lld] have rank %lld, but '%s' has rank %lld (dims [%lld, %lld])",
                                where(l), s->b.name, (long long)s->b.cols, (long long)s->b.rows, (long long)s->b.cols,
                                s->a.name, (long long)s->a.rows, (long long)s->a.cols, (long long)s->a.rows);
        }
        if (s->a.rows > 65536)
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': rank %lld (at most 65536 supported)", where(l), s->a.name,
                                (long long)s->a.rows);
        tw_lora_weight *w = lora_add(l, s->layer, s->ti, (int32_t)s->a.rows, s->a.cols, s->b.rows, &cap, err);
        if (!w) return TW_ERR_NOMEM;
        to_f32(w->a, s->a.data, s->a.type, s->a.rows, s->a.cols);
        to_f32(w->b, s->b.data, s->b.type, s->b.rows, s->b.cols);
        w->src_type = s->a.type == s->b.type ? s->a.type : TW_TYPE_F32;
    }
    lora_sort(l);
    return TW_OK;
}

tw_status tw_lora_read_gguf(tw_lora **out, const char *path, tw_error *err)
{
    *out = NULL;
    tw_gguf *g = NULL;
    tw_status st = tw_gguf_open(&g, path, err);
    if (st) return st;
    tw_lora *l = lora_alloc(err);
    pair_slot *slots = NULL;
    size_t ns = 0, cap = 0;
    if (!l) {
        st = TW_ERR_NOMEM;
        goto done;
    }
    snprintf(l->path, sizeof l->path, "%s", path);
    l->rows = TW_LORA_ROWS_GGUF;
    char buf[256];
    int64_t k = tw_gguf_find_key(g, "general.type");
    tw_gguf_str s;
    if (k < 0 || !tw_gguf_kv_str(g, k, &s) || !tw_gguf_str_eq(s, "adapter")) {
        tw_gguf_str_copy(g, "general.type", buf, sizeof buf);
        st = tw_error_set(err, TW_ERR_INVALID, "%s: key 'general.type': expected \"adapter\", found %s%s%s", path,
                          k < 0 ? "nothing" : "\"", k < 0 ? "" : buf, k < 0 ? "" : "\"");
        goto done;
    }
    k = tw_gguf_find_key(g, "adapter.type");
    if (k < 0 || !tw_gguf_kv_str(g, k, &s) || !tw_gguf_str_eq(s, "lora")) {
        tw_gguf_str_copy(g, "adapter.type", buf, sizeof buf);
        st = tw_error_set(err, k < 0 ? TW_ERR_INVALID : TW_ERR_UNSUPPORTED,
                          "%s: key 'adapter.type': expected \"lora\", found %s%s%s", path, k < 0 ? "nothing" : "\"",
                          k < 0 ? "" : buf, k < 0 ? "" : "\"");
        goto done;
    }
    if (!tw_gguf_str_copy(g, "general.architecture", buf, sizeof buf) || !tw_arch_parse(buf, &l->arch)) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: key 'general.architecture': expected llama, qwen2 or qwen3, found \"%s\"",
                          path, buf);
        goto done;
    }
    k = tw_gguf_find_key(g, "adapter.lora.alpha");
    if (k >= 0) {
        double a;
        if (!tw_gguf_kv_float(g, k, &a) || !isfinite(a) || a < 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key 'adapter.lora.alpha': expected a finite number >= 0",
                              path, (unsigned long long)tw_gguf_kv_offset(g, k));
            goto done;
        }
        l->alpha = (float)a;
    }
    if (tw_gguf_find_key(g, "adapter.alora.invocation_tokens") >= 0) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: key 'adapter.alora.invocation_tokens': activated LoRA (aLoRA) is not supported",
                          path);
        goto done;
    }
    tw_gguf_str_copy(g, "general.base_model.0.name", l->base_model, sizeof l->base_model);
    int64_t nt = tw_gguf_tensor_count(g);
    for (int64_t i = 0; i < nt; i++) {
        const tw_gguf_tensor *t = tw_gguf_tensor_at(g, i);
        size_t len = strlen(t->name);
        bool is_a = len > 7 && strcmp(t->name + len - 7, ".lora_a") == 0;
        bool is_b = len > 7 && strcmp(t->name + len - 7, ".lora_b") == 0;
        if (!is_a && !is_b) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected a name ending in .lora_a or .lora_b", path, t->name);
            goto done;
        }
        char base[96];
        snprintf(base, sizeof base, "%.*s", (int)(len - 7), t->name);
        int32_t layer;
        int ti;
        if (!parse_gguf_base(base, &layer, &ti)) {
            st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                              "%s: tensor '%s': adapting '%s' is not supported (only blk.N.attn_q/attn_k/attn_v/attn_output/"
                              "ffn_gate/ffn_up/ffn_down.weight)",
                              path, t->name, base);
            goto done;
        }
        if (t->n_dims != 2) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected 2 dims, found %u", path, t->name, t->n_dims);
            goto done;
        }
        if (!readable_type(t->type)) {
            const tw_type_info *ti2 = tw_type_get(t->type);
            st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': type %s (expected f32, f16, bf16 or q8_0)", path,
                              t->name, ti2 ? ti2->name : "?");
            goto done;
        }
        pair_slot *sl = slot_get(&slots, &ns, &cap, layer, ti);
        if (!sl) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto done;
        }
        pending p = {t->data, t->type, t->ne[1], t->ne[0], t->name};
        if (is_a) {
            sl->a = p;
            sl->has_a = true;
        } else {
            sl->b = p;
            sl->has_b = true;
        }
    }
    st = build_weights(l, slots, ns, false, err);
done:
    free(slots);
    tw_gguf_free(g);
    if (st) {
        tw_lora_free(l);
        return st;
    }
    *out = l;
    return TW_OK;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* rank_pattern lookup: keys are module-name suffixes (PEFT matches them as regexes
 * "(.*\.)?KEY$"; we take them literally). */
static bool pattern_rank(json_t *rp, const char *module, int64_t *out)
{
    const char *key;
    json_t *v;
    size_t ml = strlen(module);
    json_object_foreach(rp, key, v)
    {
        size_t kl = strlen(key);
        if (kl > ml) continue;
        if (strcmp(module + ml - kl, key) == 0 && (kl == ml || module[ml - kl - 1] == '.') && json_is_integer(v)) {
            *out = json_integer_value(v);
            return true;
        }
    }
    return false;
}

tw_status tw_lora_read_peft(tw_lora **out, const char *path, const tw_model_config *cfg, tw_error *err)
{
    *out = NULL;
    char *dir = NULL, *cfg_path = NULL, *st_path = NULL;
    json_t *root = NULL;
    tw_safetensors *sf = NULL;
    pair_slot *slots = NULL;
    size_t ns = 0, cap = 0;
    tw_status st = TW_OK;
    tw_lora *l = lora_alloc(err);
    if (!l) return TW_ERR_NOMEM;
    if (is_dir(path)) {
        dir = strdup(path);
    } else {
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    }
    if (!dir) goto oom;
    snprintf(l->path, sizeof l->path, "%s", dir);
    l->peft = true;
    l->rows = TW_LORA_ROWS_HF;
    cfg_path = path_join(dir, "adapter_config.json");
    st_path = path_join(dir, "adapter_model.safetensors");
    if (!cfg_path || !st_path) goto oom;
    json_error_t je;
    root = json_load_file(cfg_path, 0, &je);
    if (!root) {
        st = tw_error_set(err, tw_file_exists(cfg_path) ? TW_ERR_PARSE : TW_ERR_IO, "%s:%d:%d: %s", cfg_path, je.line, je.column,
                          je.text);
        goto done;
    }
    if (!json_is_object(root)) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s: expected a JSON object", cfg_path);
        goto done;
    }
    json_t *v = json_object_get(root, "peft_type");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), "LORA") != 0)) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: \"peft_type\": expected \"LORA\", found %s", cfg_path,
                          json_is_string(v) ? json_string_value(v) : "a non-string");
        goto done;
    }
    int64_t r = PEFT_DEFAULT_R;
    double alpha = PEFT_DEFAULT_ALPHA;
    if ((v = json_object_get(root, "r")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: \"r\": expected a positive integer", cfg_path);
            goto done;
        }
        r = json_integer_value(v);
    }
    if ((v = json_object_get(root, "lora_alpha")) && !json_is_null(v)) {
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: \"lora_alpha\": expected a number >= 0", cfg_path);
            goto done;
        }
        alpha = json_number_value(v);
    }
    bool rslora = json_is_true(json_object_get(root, "use_rslora"));
    if (json_is_true(json_object_get(root, "use_dora"))) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: \"use_dora\": DoRA adapters are not supported", cfg_path);
        goto done;
    }
    v = json_object_get(root, "alpha_pattern");
    if (v && json_is_object(v) && json_object_size(v) > 0) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                          "%s: \"alpha_pattern\": per-module alphas are not supported (llama.cpp adapters have one alpha)",
                          cfg_path);
        goto done;
    }
    json_t *rank_pattern = json_object_get(root, "rank_pattern");
    if (rank_pattern && !json_is_object(rank_pattern)) rank_pattern = NULL;
    v = json_object_get(root, "base_model_name_or_path");
    if (json_is_string(v)) snprintf(l->base_model, sizeof l->base_model, "%s", json_string_value(v));

    if (!tw_file_exists(st_path)) {
        char *bin = path_join(dir, "adapter_model.bin");
        bool has_bin = bin && tw_file_exists(bin);
        free(bin);
        st = tw_error_set(err, TW_ERR_IO, "%s: no adapter_model.safetensors%s", dir,
                          has_bin ? " (adapter_model.bin, a pickle, is not supported: save with safe_serialization)" : "");
        goto done;
    }
    if ((st = tw_st_open(&sf, st_path, err))) goto done;
    int64_t nt = tw_st_tensor_count(sf);
    for (int64_t i = 0; i < nt; i++) {
        const tw_st_tensor *t = tw_st_tensor_at(sf, i);
        const char *nm = t->name;
        size_t len = strlen(nm), pl = strlen(PEFT_PREFIX);
        bool is_a = len > 14 && strcmp(nm + len - 14, ".lora_A.weight") == 0;
        bool is_b = len > 14 && strcmp(nm + len - 14, ".lora_B.weight") == 0;
        int32_t layer;
        int ti;
        if (!is_a && !is_b) {
            st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                              "%s: tensor '%s': not a LoRA tensor (expected names ending in .lora_A.weight / .lora_B.weight; "
                              "biases, modules_to_save and DoRA vectors are not supported)",
                              st_path, nm);
            goto done;
        }
        if (strncmp(nm, PEFT_PREFIX, pl) != 0 || !parse_hf_module(nm + pl, len - 14 - pl, &layer, &ti)) {
            st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                              "%s: tensor '%s': expected base_model.model.model.layers.N.{self_attn.q_proj|k_proj|v_proj|o_proj,"
                              "mlp.gate_proj|up_proj|down_proj}.lora_A/B.weight",
                              st_path, nm);
            goto done;
        }
        tw_type ty;
        if (!tw_st_dtype_to_type(t->dtype, &ty) || (ty != TW_TYPE_F32 && ty != TW_TYPE_F16 && ty != TW_TYPE_BF16)) {
            st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s (expected F32, F16 or BF16)", st_path, nm,
                              tw_st_dtype_name(t->dtype));
            goto done;
        }
        if (t->n_dims != 2 || t->shape[0] <= 0 || t->shape[1] <= 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected a 2-D shape with non-zero dims, found %u dims",
                              st_path, nm, t->n_dims);
            goto done;
        }
        /* expected rank of this module */
        char mod[128];
        hf_module_name(mod, sizeof mod, layer, ti);
        int64_t want = r;
        if (rank_pattern) pattern_rank(rank_pattern, mod, &want);
        int64_t got = is_a ? t->shape[0] : t->shape[1];
        if (got != want) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': shape [%lld, %lld] has rank %lld, but adapter_config.json says %s%lld",
                              st_path, nm, (long long)t->shape[0], (long long)t->shape[1], (long long)got,
                              want == r ? "r = " : "rank_pattern = ", (long long)want);
            goto done;
        }
        pair_slot *sl = slot_get(&slots, &ns, &cap, layer, ti);
        if (!sl) goto oom;
        pending p = {t->data, ty, t->shape[0], t->shape[1], t->name};
        if ((is_a && sl->has_a) || (is_b && sl->has_b)) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': duplicate", st_path, nm);
            goto done;
        }
        if (is_a) {
            sl->a = p;
            sl->has_a = true;
        } else {
            sl->b = p;
            sl->has_b = true;
        }
    }
    snprintf(l->path, sizeof l->path, "%s", st_path);
    if ((st = build_weights(l, slots, ns, true, err))) goto done;
    snprintf(l->path, sizeof l->path, "%s", dir);
    if (rslora) {
        for (int32_t i = 1; i < l->n; i++)
            if (l->w[i].rank != l->w[0].rank) {
                st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                                  "%s: \"use_rslora\" with ranks that differ between modules (%d and %d) has no llama.cpp "
                                  "equivalent",
                                  cfg_path, (int)l->w[0].rank, (int)l->w[i].rank);
                goto done;
            }
        /* PEFT rsLoRA: scaling = lora_alpha / sqrt(r) = alpha' / r with alpha' = lora_alpha sqrt(r) */
        if (l->n > 0) alpha *= sqrt((double)l->w[0].rank);
    }
    l->alpha = (float)alpha;
    if (cfg && (st = tw_lora_set_config(l, cfg, err))) goto done;
    goto done;
oom:
    st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
done:
    free(slots);
    tw_st_free(sf);
    json_decref(root);
    free(dir);
    free(cfg_path);
    free(st_path);
    if (st) {
        tw_lora_free(l);
        return st;
    }
    *out = l;
    return TW_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

tw_lora_write_params tw_lora_default_write_params(void)
{
    tw_lora_write_params p = {TW_TYPE_COUNT, NULL};
    return p;
}

static tw_type out_type(const tw_lora_write_params *p, const tw_lora_weight *w)
{
    tw_type t = p->type;
    if (t == TW_TYPE_COUNT) t = w->src_type;
    return (t == TW_TYPE_F16 || t == TW_TYPE_BF16) ? t : TW_TYPE_F32;
}

/* n floats -> bytes of type t (F32 / F16 / BF16) in a new buffer. */
static void *encode(const float *src, size_t n, tw_type t)
{
    size_t es = t == TW_TYPE_F32 ? 4 : 2;
    void *dst = malloc(n > 0 ? n * es : 1);
    if (!dst) return NULL;
    if (t == TW_TYPE_F32) memcpy(dst, src, n * 4);
    else tw_quantize_row(t, dst, src, (int64_t)n);
    return dst;
}

/* B of w in the order `rows` wants, as a new buffer (or NULL with err set). */
static float *b_in_order(const tw_lora *l, const tw_lora_weight *w, tw_lora_rows rows, tw_error *err)
{
    size_t nb = (size_t)w->n_out * (size_t)w->rank;
    float *b = malloc(nb * sizeof(float));
    if (!b) {
        tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (l->rows == rows || !needs_perm(l, w)) {
        memcpy(b, w->b, nb * sizeof(float));
        return b;
    }
    int32_t nh;
    if (perm_heads(l, w, &nh, err)) {
        free(b);
        return NULL;
    }
    tw_lora_permute_rows(b, w->b, w->n_out, w->rank, nh, rows == TW_LORA_ROWS_GGUF);
    return b;
}

static tw_status check_writable(const tw_lora *l, const tw_lora_write_params *p, tw_error *err)
{
    if (p->type != TW_TYPE_COUNT && p->type != TW_TYPE_F32 && p->type != TW_TYPE_F16 && p->type != TW_TYPE_BF16)
        return tw_error_set(err, TW_ERR_INVALID, "adapter output type: expected f32, f16 or bf16");
    if (l->n == 0) return tw_error_set(err, TW_ERR_INVALID, "%s: the adapter has no weights", where(l));
    return TW_OK;
}

tw_status tw_lora_write_gguf(const tw_lora *l, const char *path, const tw_lora_write_params *pp, tw_error *err)
{
    tw_lora_write_params p = pp ? *pp : tw_lora_default_write_params();
    tw_status st = check_writable(l, &p, err);
    if (st) return st;
    if (l->arch == TW_ARCH_COUNT)
        return tw_error_set(err, TW_ERR_INVALID,
                            "%s: the adapter's architecture is unknown: a GGUF adapter needs general.architecture (give the "
                            "base model's config)",
                            where(l));
    tw_gguf_writer *gw = NULL;
    void **bufs = calloc((size_t)l->n * 2, sizeof *bufs);
    if (!bufs) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if ((st = tw_gguf_writer_new(&gw, err))) goto done;
    const char *bm = p.base_model ? p.base_model : l->base_model;
    if ((st = tw_gguf_writer_set_str(gw, "general.architecture", tw_arch_name(l->arch), (size_t)-1, err)) ||
        (st = tw_gguf_writer_set_str(gw, "general.type", "adapter", (size_t)-1, err)) ||
        (st = tw_gguf_writer_set_str(gw, "adapter.type", "lora", (size_t)-1, err)) ||
        (st = tw_gguf_writer_set_f32(gw, "adapter.lora.alpha", l->alpha, err)))
        goto done;
    if (bm && bm[0] &&
        ((st = tw_gguf_writer_set_u32(gw, "general.base_model.count", 1, err)) ||
         (st = tw_gguf_writer_set_str(gw, "general.base_model.0.name", bm, (size_t)-1, err))))
        goto done;
    for (int32_t i = 0; i < l->n; i++) {
        const tw_lora_weight *w = &l->w[i];
        tw_type t = out_type(&p, w);
        float *b = b_in_order(l, w, TW_LORA_ROWS_GGUF, err);
        if (!b) {
            st = err->status ? err->status : TW_ERR_NOMEM;
            goto done;
        }
        bufs[2 * i] = encode(w->a, (size_t)w->rank * (size_t)w->n_in, t);
        bufs[2 * i + 1] = encode(b, (size_t)w->rank * (size_t)w->n_out, t);
        free(b);
        if (!bufs[2 * i] || !bufs[2 * i + 1]) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            goto done;
        }
        char name[96];
        int64_t ne_a[2] = {w->n_in, w->rank}, ne_b[2] = {w->rank, w->n_out};
        snprintf(name, sizeof name, "%s.lora_a", w->name);
        if ((st = tw_gguf_writer_add_tensor(gw, name, t, 2, ne_a, bufs[2 * i], NULL, NULL, err))) goto done;
        snprintf(name, sizeof name, "%s.lora_b", w->name);
        if ((st = tw_gguf_writer_add_tensor(gw, name, t, 2, ne_b, bufs[2 * i + 1], NULL, NULL, err))) goto done;
    }
    st = tw_gguf_writer_write(gw, path, err);
done:
    tw_gguf_writer_free(gw);
    for (int32_t i = 0; i < 2 * l->n; i++) free(bufs[i]);
    free(bufs);
    return st;
}

static const char *st_dtype_of(tw_type t)
{
    return t == TW_TYPE_F16 ? "F16" : t == TW_TYPE_BF16 ? "BF16" : "F32";
}

/* JSON number for alpha: an integer when it is one (PEFT configs write ints). */
static json_t *alpha_json(float a)
{
    double d = (double)a;
    if (d == floor(d) && fabs(d) < 1e15) return json_integer((json_int_t)d);
    return json_real(d);
}

static tw_status write_adapter_config(const tw_lora *l, const char *path, const char *bm, tw_error *err)
{
    /* r: the most common rank; others go to rank_pattern under their full module names. */
    int32_t r = l->w[0].rank;
    int best = 0;
    for (int32_t i = 0; i < l->n; i++) {
        int c = 0;
        for (int32_t j = 0; j < l->n; j++) c += l->w[j].rank == l->w[i].rank;
        if (c > best) {
            best = c;
            r = l->w[i].rank;
        }
    }
    float alpha = l->alpha;
    if (alpha == 0.0f) {
        /* llama.cpp: no alpha means scale 1; PEFT's equivalent is lora_alpha = r (one rank) */
        for (int32_t i = 0; i < l->n; i++)
            if (l->w[i].rank != r)
                return tw_error_set(err, TW_ERR_UNSUPPORTED,
                                    "%s: adapter without alpha and with several ranks has no PEFT equivalent", where(l));
        alpha = (float)r;
    }
    json_t *root = json_object();
    json_t *targets = json_array(), *rp = json_object(), *ap = json_object();
    if (!root || !targets || !rp || !ap) goto oom;
    /* target_modules: the list of short names when every layer has every target present,
     * else a regex (PEFT full-matches a string against module names) listing the modules.
     * The layer count is the config's when known, else the highest layer adapted + 1. */
    unsigned tm = tw_lora_targets(l);
    int32_t n_layers = l->n_layer > 0 ? l->n_layer : l->w[l->n - 1].layer + 1, n_t = 0;
    for (int ti = 0; ti < N_TARGETS; ti++) n_t += (tm & (unsigned)TARGETS[ti].t) != 0;
    bool full = l->n == n_layers * n_t;
    if (full) {
        for (int ti = 0; ti < N_TARGETS; ti++)
            if (tm & (unsigned)TARGETS[ti].t) json_array_append_new(targets, json_string(TARGETS[ti].peft));
    } else {
        tw_buf re = {0};
        tw_buf_puts(&re, "(");
        for (int32_t i = 0; i < l->n; i++) {
            char mod[128];
            hf_module_name(mod, sizeof mod, l->w[i].layer, target_index(l->w[i].target));
            if (i) tw_buf_puts(&re, "|");
            for (const char *c = mod; *c; c++) {
                if (*c == '.') tw_buf_puts(&re, "\\");
                tw_buf_putc(&re, *c);
            }
        }
        tw_buf_puts(&re, ")");
        json_decref(targets);
        targets = json_string(re.data ? re.data : "");
        tw_buf_free(&re);
        if (!targets) goto oom;
    }
    for (int32_t i = 0; i < l->n; i++)
        if (l->w[i].rank != r) {
            char mod[128];
            hf_module_name(mod, sizeof mod, l->w[i].layer, target_index(l->w[i].target));
            json_object_set_new(rp, mod, json_integer(l->w[i].rank));
        }
    json_object_set_new(root, "alpha_pattern", ap);
    ap = NULL;
    json_object_set_new(root, "base_model_name_or_path", bm && bm[0] ? json_string(bm) : json_null());
    json_object_set_new(root, "bias", json_string("none"));
    json_object_set_new(root, "fan_in_fan_out", json_false());
    json_object_set_new(root, "inference_mode", json_true());
    json_object_set_new(root, "init_lora_weights", json_true());
    json_object_set_new(root, "layers_pattern", json_null());
    json_object_set_new(root, "layers_to_transform", json_null());
    json_object_set_new(root, "lora_alpha", alpha_json(alpha));
    json_object_set_new(root, "lora_dropout", json_real(0.0));
    json_object_set_new(root, "modules_to_save", json_null());
    json_object_set_new(root, "peft_type", json_string("LORA"));
    json_object_set_new(root, "r", json_integer(r));
    json_object_set_new(root, "rank_pattern", rp);
    rp = NULL;
    json_object_set_new(root, "revision", json_null());
    json_object_set_new(root, "target_modules", targets);
    targets = NULL;
    json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(root, "use_dora", json_false());
    json_object_set_new(root, "use_rslora", json_false());
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!text) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    size_t n = strlen(text);
    char *t2 = realloc(text, n + 2);
    if (!t2) {
        free(text);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    t2[n] = '\n';
    tw_status st = tw_file_write_atomic(path, t2, n + 1, err);
    free(t2);
    return st;
oom:
    json_decref(root);
    json_decref(targets);
    json_decref(rp);
    json_decref(ap);
    return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
}

tw_status tw_lora_write_peft(const tw_lora *l, const char *dir, const tw_lora_write_params *pp, tw_error *err)
{
    tw_lora_write_params p = pp ? *pp : tw_lora_default_write_params();
    tw_status st = check_writable(l, &p, err);
    if (st) return st;
    if ((st = tw_mkdir_p(dir, err))) return st;
    char *st_path = path_join(dir, "adapter_model.safetensors"), *cfg_path = path_join(dir, "adapter_config.json");
    void **bufs = calloc((size_t)l->n * 2, sizeof *bufs);
    tw_buf hdr = {0};
    tw_atomic_file af = {0};
    bool opened = false;
    if (!st_path || !cfg_path || !bufs) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* header: metadata first, then A and B of each weight in (layer, target) order; data
     * in the same order, contiguous (safetensors README "Format") */
    uint64_t off = 0;
    if (tw_buf_puts(&hdr, "{\"__metadata__\":{\"format\":\"pt\"}")) goto oom;
    for (int32_t i = 0; i < l->n; i++) {
        const tw_lora_weight *w = &l->w[i];
        tw_type t = out_type(&p, w);
        size_t es = t == TW_TYPE_F32 ? 4 : 2;
        float *b = b_in_order(l, w, TW_LORA_ROWS_HF, err);
        if (!b) {
            st = err->status ? err->status : TW_ERR_NOMEM;
            goto done;
        }
        bufs[2 * i] = encode(w->a, (size_t)w->rank * (size_t)w->n_in, t);
        bufs[2 * i + 1] = encode(b, (size_t)w->rank * (size_t)w->n_out, t);
        free(b);
        if (!bufs[2 * i] || !bufs[2 * i + 1]) goto oom;
        char mod[128];
        hf_module_name(mod, sizeof mod, w->layer, target_index(w->target));
        uint64_t na = (uint64_t)w->rank * (uint64_t)w->n_in * es, nb = (uint64_t)w->rank * (uint64_t)w->n_out * es;
        if (tw_buf_printf(&hdr,
                          ",\"" PEFT_PREFIX "%s.lora_A.weight\":{\"dtype\":\"%s\",\"shape\":[%d,%lld],\"data_offsets\":[%llu,%llu]}",
                          mod, st_dtype_of(t), (int)w->rank, (long long)w->n_in, (unsigned long long)off,
                          (unsigned long long)(off + na)))
            goto oom;
        off += na;
        if (tw_buf_printf(&hdr,
                          ",\"" PEFT_PREFIX "%s.lora_B.weight\":{\"dtype\":\"%s\",\"shape\":[%lld,%d],\"data_offsets\":[%llu,%llu]}",
                          mod, st_dtype_of(t), (long long)w->n_out, (int)w->rank, (unsigned long long)off,
                          (unsigned long long)(off + nb)))
            goto oom;
        off += nb;
    }
    if (tw_buf_putc(&hdr, '}')) goto oom;
    while (hdr.len % 8) /* pad with spaces so the data starts 8-aligned, as the Python writer does */
        if (tw_buf_putc(&hdr, ' ')) goto oom;
    if ((st = tw_atomic_open(&af, st_path, err))) goto done;
    opened = true;
    uint8_t le[8];
    uint64_t hl = hdr.len;
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(hl >> (8 * k));
    bool ok = fwrite(le, 1, 8, af.fp) == 8 && fwrite(hdr.data, 1, hdr.len, af.fp) == hdr.len;
    for (int32_t i = 0; i < l->n && ok; i++) {
        const tw_lora_weight *w = &l->w[i];
        size_t es = out_type(&p, w) == TW_TYPE_F32 ? 4 : 2;
        size_t na = (size_t)w->rank * (size_t)w->n_in * es, nb = (size_t)w->rank * (size_t)w->n_out * es;
        ok = fwrite(bufs[2 * i], 1, na, af.fp) == na && fwrite(bufs[2 * i + 1], 1, nb, af.fp) == nb;
    }
    if (!ok) {
        st = tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", st_path, strerror(errno));
        goto done;
    }
    opened = false;
    if ((st = tw_atomic_commit(&af, err))) goto done;
    st = write_adapter_config(l, cfg_path, p.base_model ? p.base_model : l->base_model, err);
    goto done;
oom:
    st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
done:
    if (opened) tw_atomic_abort(&af);
    tw_buf_free(&hdr);
    if (bufs)
        for (int32_t i = 0; i < 2 * l->n; i++) free(bufs[i]);
    free(bufs);
    free(st_path);
    free(cfg_path);
    return st;
}

/* ---- math ------------------------------------------------------------------------------------ */

void tw_lora_apply(float *out, float *t, const float *x, const float *A, const float *B, int64_t Bt, int64_t n_out,
                   int64_t n_in, int32_t rank, float scale)
{
    if (Bt <= 0 || rank <= 0) return;
    /* t (Bt, r) = x (Bt, n_in) · A (r, n_in)^T */
    tw_sgemm_nt(t, rank, x, n_in, A, n_in, Bt, rank, n_in, false);
    size_t nt = (size_t)Bt * (size_t)rank;
    for (size_t i = 0; i < nt; i++) t[i] *= scale;
    /* out (Bt, n_out) += t (Bt, r) · B (n_out, r)^T */
    tw_sgemm_nt(out, n_out, t, rank, B, rank, Bt, n_out, rank, true);
}

void tw_lora_merge(float *w, const float *A, const float *B, int64_t row0, int64_t nrows, int64_t n_in, int32_t rank,
                   float scale)
{
    for (int64_t i = 0; i < nrows; i++) {
        float *wr = w + i * n_in;
        const float *br = B + (row0 + i) * rank;
        for (int32_t k = 0; k < rank; k++) {
            float c = scale * br[k];
            const float *ar = A + (int64_t)k * n_in;
            for (int64_t j = 0; j < n_in; j++) wr[j] += c * ar[j];
        }
    }
}
