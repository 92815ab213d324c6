/* config.c — model hyper-parameters from GGUF metadata (llama.cpp's key names,
 * llama.cpp src/llama-arch.cpp / GGUF spec "LLM" section) or from a Hugging Face
 * config.json (transformers' LlamaConfig / Qwen2Config / Qwen3Config), the shape table of
 * `model init`, and tw_model_files: one tensor view over a GGUF file or a HF folder with
 * HF names mapped to GGUF names (the mapping of llama.cpp's converter, gguf-py
 * tensor_mapping.py, for the llama / qwen2 / qwen3 tensors).
 * Deliberately not here: any arithmetic on weights (the engine), tokenizers. */
#include "model/config.h"
#include "model/safetensors.h"
#include "base/base.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const ARCH_NAMES[TW_ARCH_COUNT] = {"llama", "qwen2", "qwen3"};

const char *tw_arch_name(tw_arch a) { return (unsigned)a < TW_ARCH_COUNT ? ARCH_NAMES[a] : "?"; }

bool tw_arch_parse(const char *name, tw_arch *out)
{
    for (int i = 0; i < TW_ARCH_COUNT; i++)
        if (strcmp(name, ARCH_NAMES[i]) == 0) {
            *out = (tw_arch)i;
            return true;
        }
    return false;
}

static void config_defaults(tw_model_config *c)
{
    memset(c, 0, sizeof *c);
    c->rope_freq_base = 10000.0f;
    c->rope_scale = 1.0f;
    c->rms_eps = 1e-5f;
    c->bos_id = c->eos_id = -1;
    c->n_ctx_train = 2048;
}

/* Limits that keep every size product in 64 bits and every index in 32 bits. */
#define MAX_DIM (1 << 20)
#define MAX_VOCAB (1 << 24)
#define MAX_LAYER 4096
#define MAX_CTX (1 << 26)

tw_status tw_model_config_validate(const tw_model_config *c, const char *where, tw_error *err)
{
#define BAD(...) return tw_error_set(err, TW_ERR_INVALID, __VA_ARGS__)
    if ((unsigned)c->arch >= TW_ARCH_COUNT) BAD("%s: unknown architecture %d", where, (int)c->arch);
    if (c->n_layer < 1 || c->n_layer > MAX_LAYER) BAD("%s: block count %d not in 1..%d", where, c->n_layer, MAX_LAYER);
    if (c->n_embd < 1 || c->n_embd > MAX_DIM) BAD("%s: embedding length %d not in 1..%d", where, c->n_embd, MAX_DIM);
    if (c->n_ff < 1 || c->n_ff > MAX_DIM * 4) BAD("%s: feed-forward length %d not in 1..%d", where, c->n_ff, MAX_DIM * 4);
    if (c->n_head < 1 || c->n_head > c->n_embd * 4) BAD("%s: head count %d not in 1..%d", where, c->n_head, c->n_embd * 4);
    if (c->n_head_kv < 1 || c->n_head % c->n_head_kv)
        BAD("%s: KV head count %d must be >= 1 and divide the head count %d", where, c->n_head_kv, c->n_head);
    if (c->head_dim < 2 || c->head_dim > 4096 || c->head_dim % 2)
        BAD("%s: head size %d must be even and in 2..4096", where, c->head_dim);
    if (c->n_rot < 2 || c->n_rot > c->head_dim || c->n_rot % 2)
        BAD("%s: RoPE dimension count %d must be even and in 2..%d (the head size)", where, c->n_rot, c->head_dim);
    if (c->n_vocab < 1 || c->n_vocab > MAX_VOCAB) BAD("%s: vocabulary size %d not in 1..%d", where, c->n_vocab, MAX_VOCAB);
    if (c->n_ctx_train < 1 || c->n_ctx_train > MAX_CTX) BAD("%s: context length %d not in 1..%d", where, c->n_ctx_train, MAX_CTX);
    if (!(c->rope_freq_base > 0.0f) || !isfinite(c->rope_freq_base))
        BAD("%s: RoPE frequency base %g must be positive", where, (double)c->rope_freq_base);
    if (!(c->rope_scale > 0.0f) || !isfinite(c->rope_scale)) BAD("%s: RoPE scaling factor %g must be positive", where, (double)c->rope_scale);
    if (!(c->rms_eps > 0.0f) || !(c->rms_eps < 1.0f)) BAD("%s: RMS norm epsilon %g not in (0, 1)", where, (double)c->rms_eps);
    if (c->bos_id >= c->n_vocab || c->eos_id >= c->n_vocab)
        BAD("%s: bos/eos token id %d/%d outside the vocabulary of %d", where, c->bos_id, c->eos_id, c->n_vocab);
    return TW_OK;
#undef BAD
}

uint64_t tw_model_config_n_params(const tw_model_config *c)
{
    uint64_t E = (uint64_t)c->n_embd, V = (uint64_t)c->n_vocab, F = (uint64_t)c->n_ff;
    uint64_t Q = (uint64_t)c->n_head * (uint64_t)c->head_dim, KV = (uint64_t)c->n_head_kv * (uint64_t)c->head_dim;
    uint64_t layer = E /* attn_norm */ + E * Q + 2 * E * KV + Q * E + E /* ffn_norm */ + 3 * E * F;
    if (c->attn_bias) layer += Q + 2 * KV;
    if (c->qk_norm) layer += 2 * (uint64_t)c->head_dim;
    uint64_t n = V * E + (uint64_t)c->n_layer * layer + E;
    if (!c->tied_embeddings) n += V * E;
    return n;
}

uint64_t tw_model_config_kv_bytes(const tw_model_config *c, uint64_t n_tokens, uint32_t elem_bytes)
{
    return 2ull * (uint64_t)c->n_layer * (uint64_t)c->n_head_kv * (uint64_t)c->head_dim * n_tokens * elem_bytes;
}

/* ---- from GGUF ------------------------------------------------------------ */
/* <arch>.<suffix> as an int32 in [1, INT32_MAX]; def < 0 means required. */
static tw_status gguf_pos_i32(const tw_gguf *g, const char *arch, const char *suffix, int64_t def, int32_t *out,
                              tw_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t i = tw_gguf_find_key(g, key);
    if (i < 0) {
        if (def < 0) return tw_error_set(err, TW_ERR_INVALID, "%s: key '%s': missing (required for %s models)", tw_gguf_path(g), key, arch);
        *out = (int32_t)def;
        return TW_OK;
    }
    int64_t v;
    if (!tw_gguf_kv_int(g, i, &v))
        return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': expected an integer, found %s", tw_gguf_path(g),
                            (unsigned long long)tw_gguf_kv_offset(g, i), key, tw_gguf_vtype_name(tw_gguf_kv_type(g, i)));
    if (v < 1 || v > INT32_MAX)
        return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': expected a value in 1..%d, found %lld",
                            tw_gguf_path(g), (unsigned long long)tw_gguf_kv_offset(g, i), key, INT32_MAX, (long long)v);
    *out = (int32_t)v;
    return TW_OK;
}

static tw_status gguf_f32(const tw_gguf *g, const char *arch, const char *suffix, bool required, float *out, tw_error *err)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t i = tw_gguf_find_key(g, key);
    if (i < 0) {
        if (required) return tw_error_set(err, TW_ERR_INVALID, "%s: key '%s': missing (required for %s models)", tw_gguf_path(g), key, arch);
        return TW_OK;
    }
    double d;
    if (!tw_gguf_kv_float(g, i, &d))
        return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': expected a number, found %s", tw_gguf_path(g),
                            (unsigned long long)tw_gguf_kv_offset(g, i), key, tw_gguf_vtype_name(tw_gguf_kv_type(g, i)));
    *out = (float)d;
    return TW_OK;
}

static int32_t gguf_token_id(const tw_gguf *g, const char *key)
{
    int64_t v = tw_gguf_int_or(g, key, -1);
    return v >= 0 && v < INT32_MAX ? (int32_t)v : -1;   /* 0xFFFFFFFF means "none" in llama.cpp files */
}

tw_status tw_model_config_from_gguf(tw_model_config *c, const tw_gguf *g, tw_error *err)
{
    config_defaults(c);
    tw_gguf_str s;
    tw_status st = tw_gguf_get_str(g, "general.architecture", &s, err);
    if (st) return st;
    char arch[64];
    snprintf(arch, sizeof arch, "%.*s", (int)(s.len < 63 ? s.len : 63), s.ptr);
    if (!tw_arch_parse(arch, &c->arch))
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: architecture '%s' is not supported (expected llama, qwen2 or qwen3)",
                            tw_gguf_path(g), arch);
    tw_gguf_str_copy(g, "general.name", c->name, sizeof c->name);
    if ((st = gguf_pos_i32(g, arch, "block_count", -1, &c->n_layer, err))) return st;
    if ((st = gguf_pos_i32(g, arch, "embedding_length", -1, &c->n_embd, err))) return st;
    if ((st = gguf_pos_i32(g, arch, "feed_forward_length", -1, &c->n_ff, err))) return st;
    if ((st = gguf_pos_i32(g, arch, "attention.head_count", -1, &c->n_head, err))) return st;
    if ((st = gguf_pos_i32(g, arch, "attention.head_count_kv", c->n_head, &c->n_head_kv, err))) return st;
    if ((st = gguf_pos_i32(g, arch, "context_length", -1, &c->n_ctx_train, err))) return st;
    if ((st = gguf_pos_i32(g, arch, "attention.key_length", c->n_embd / c->n_head, &c->head_dim, err))) return st;
    int32_t vlen;
    if ((st = gguf_pos_i32(g, arch, "attention.value_length", c->head_dim, &vlen, err))) return st;
    if (vlen != c->head_dim)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: %s.attention.value_length %d differs from key_length %d (not supported)",
                            tw_gguf_path(g), arch, vlen, c->head_dim);
    if ((st = gguf_pos_i32(g, arch, "rope.dimension_count", c->head_dim, &c->n_rot, err))) return st;
    if ((st = gguf_f32(g, arch, "rope.freq_base", false, &c->rope_freq_base, err))) return st;
    if ((st = gguf_f32(g, arch, "attention.layer_norm_rms_epsilon", true, &c->rms_eps, err))) return st;

    /* RoPE scaling: rope.scaling.type (none | linear | yarn), or the older rope.scale_linear */
    char key[128], stype[32] = "";
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    tw_gguf_str_copy(g, key, stype, sizeof stype);
    float factor = 0.0f;
    if ((st = gguf_f32(g, arch, "rope.scaling.factor", false, &factor, err))) return st;
    if (factor == 0.0f && (st = gguf_f32(g, arch, "rope.scale_linear", false, &factor, err))) return st;
    if (strcmp(stype, "linear") == 0 || (!stype[0] && factor > 0.0f && factor != 1.0f)) c->rope_scaling = TW_ROPE_SCALING_LINEAR;
    else if (strcmp(stype, "yarn") == 0) c->rope_scaling = TW_ROPE_SCALING_YARN;
    else if (stype[0] && strcmp(stype, "none") != 0)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: %s: RoPE scaling type '%s' is not supported", tw_gguf_path(g), key, stype);
    if (factor > 0.0f) c->rope_scale = factor;
    snprintf(key, sizeof key, "%s.rope.scaling.original_context_length", arch);
    c->rope_orig_ctx = (int32_t)tw_gguf_int_or(g, key, 0);
    if (tw_gguf_tensor_find(g, "rope_freqs.weight")) c->rope_scaling = TW_ROPE_SCALING_LLAMA3;

    const tw_gguf_tensor *emb = tw_gguf_tensor_find(g, "token_embd.weight");
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    if (emb && emb->n_dims == 2 && emb->ne[1] <= INT32_MAX) c->n_vocab = (int32_t)emb->ne[1];
    else if (tw_gguf_find_key(g, key) >= 0) c->n_vocab = (int32_t)tw_gguf_int_or(g, key, 0);
    else {
        tw_gguf_array a;
        int64_t ki = tw_gguf_find_key(g, "tokenizer.ggml.tokens");
        if (tw_gguf_kv_arr(g, ki, &a) && a.n <= INT32_MAX) c->n_vocab = (int32_t)a.n;
    }
    c->tied_embeddings = tw_gguf_tensor_find(g, "output.weight") == NULL;
    c->attn_bias = c->arch == TW_ARCH_QWEN2 || tw_gguf_tensor_find(g, "blk.0.attn_q.bias") != NULL;
    c->qk_norm = c->arch == TW_ARCH_QWEN3 || tw_gguf_tensor_find(g, "blk.0.attn_q_norm.weight") != NULL;
    c->rope_type = c->arch == TW_ARCH_LLAMA ? TW_ROPE_NORMAL : TW_ROPE_NEOX;
    c->bos_id = gguf_token_id(g, "tokenizer.ggml.bos_token_id");
    c->eos_id = gguf_token_id(g, "tokenizer.ggml.eos_token_id");
    if (c->bos_id >= c->n_vocab) c->bos_id = -1;
    if (c->eos_id >= c->n_vocab) c->eos_id = -1;
    return tw_model_config_validate(c, tw_gguf_path(g), err);
}

/* ---- from a Hugging Face config.json --------------------------------------- */
static tw_status hf_int(json_t *root, const char *path, const char *key, int64_t def, int32_t *out, tw_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (def < 0) return tw_error_set(err, TW_ERR_INVALID, "%s: \"%s\": missing", path, key);
        *out = (int32_t)def;
        return TW_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)
        return tw_error_set(err, TW_ERR_INVALID, "%s: \"%s\": expected a positive integer", path, key);
    *out = (int32_t)json_integer_value(v);
    return TW_OK;
}

static tw_status hf_num(json_t *root, const char *path, const char *key, float *out, tw_error *err)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return TW_OK;
    if (!json_is_number(v)) return tw_error_set(err, TW_ERR_INVALID, "%s: \"%s\": expected a number", path, key);
    *out = (float)json_number_value(v);
    return TW_OK;
}

/* bos_token_id / eos_token_id: an integer, a list (first element) or null. */
static int32_t hf_token_id(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < INT32_MAX)
        return (int32_t)json_integer_value(v);
    return -1;
}

tw_status tw_model_config_from_hf(tw_model_config *c, const char *path, tw_error *err)
{
    config_defaults(c);
    c->rms_eps = 1e-6f;   /* transformers' default for LlamaConfig / Qwen2Config / Qwen3Config */
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        bool missing = je.line < 0 || strstr(je.text, "unable to open");
        return tw_error_set(err, missing ? TW_ERR_IO : TW_ERR_PARSE, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    }
    tw_status st = TW_OK;
    if (!json_is_object(root)) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s: expected a JSON object", path);
        goto done;
    }
    const char *mt = json_string_value(json_object_get(root, "model_type"));
    if (!mt) {
        json_t *archs = json_object_get(root, "architectures");
        const char *a0 = json_string_value(json_array_get(archs, 0));
        if (a0 && strcmp(a0, "LlamaForCausalLM") == 0) mt = "llama";
        else if (a0 && strcmp(a0, "Qwen2ForCausalLM") == 0) mt = "qwen2";
        else if (a0 && strcmp(a0, "Qwen3ForCausalLM") == 0) mt = "qwen3";
    }
    if (!mt || !tw_arch_parse(mt, &c->arch)) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (expected llama, qwen2 or qwen3)", path,
                          mt ? mt : "(missing)");
        goto done;
    }
    const char *nm = json_string_value(json_object_get(root, "_name_or_path"));
    if (nm) snprintf(c->name, sizeof c->name, "%s", nm);
    if ((st = hf_int(root, path, "hidden_size", -1, &c->n_embd, err))) goto done;
    if ((st = hf_int(root, path, "num_hidden_layers", -1, &c->n_layer, err))) goto done;
    if ((st = hf_int(root, path, "num_attention_heads", -1, &c->n_head, err))) goto done;
    if ((st = hf_int(root, path, "num_key_value_heads", c->n_head, &c->n_head_kv, err))) goto done;
    if ((st = hf_int(root, path, "intermediate_size", -1, &c->n_ff, err))) goto done;
    if ((st = hf_int(root, path, "vocab_size", -1, &c->n_vocab, err))) goto done;
    if ((st = hf_int(root, path, "max_position_embeddings", 2048, &c->n_ctx_train, err))) goto done;
    if ((st = hf_int(root, path, "head_dim", c->n_embd / c->n_head, &c->head_dim, err))) goto done;
    c->n_rot = c->head_dim;
    if ((st = hf_num(root, path, "rope_theta", &c->rope_freq_base, err))) goto done;
    /* transformers >= 5 writes "rope_parameters": {"rope_theta", "rope_type", "factor", ...}
     * instead of rope_theta + rope_scaling; it takes the same keys as rope_scaling. */
    json_t *rp = json_object_get(root, "rope_parameters");
    if (json_is_object(rp) && (st = hf_num(rp, path, "rope_theta", &c->rope_freq_base, err))) goto done;
    if ((st = hf_num(root, path, "rms_norm_eps", &c->rms_eps, err))) goto done;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    c->tied_embeddings = json_is_boolean(tie) ? json_is_true(tie) : false;
    json_t *bias = json_object_get(root, "attention_bias");
    c->attn_bias = c->arch == TW_ARCH_QWEN2 || json_is_true(bias);
    c->qk_norm = c->arch == TW_ARCH_QWEN3;
    c->rope_type = TW_ROPE_NEOX;   /* HF tensors are not permuted: rotate_half == NEOX */
    c->bos_id = hf_token_id(root, "bos_token_id");
    c->eos_id = hf_token_id(root, "eos_token_id");
    json_t *rs = json_object_get(root, "rope_scaling");
    if (!json_is_object(rs)) rs = rp;
    if (json_is_object(rs)) {
        const char *t = json_string_value(json_object_get(rs, "rope_type"));
        if (!t) t = json_string_value(json_object_get(rs, "type"));
        if (!t || strcmp(t, "default") == 0) c->rope_scaling = TW_ROPE_SCALING_NONE;
        else if (strcmp(t, "linear") == 0) c->rope_scaling = TW_ROPE_SCALING_LINEAR;
        else if (strcmp(t, "yarn") == 0) c->rope_scaling = TW_ROPE_SCALING_YARN;
        else if (strcmp(t, "llama3") == 0) c->rope_scaling = TW_ROPE_SCALING_LLAMA3;
        else {
            st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported", path, t);
            goto done;
        }
        float f = 1.0f, lo = 1.0f, hi = 4.0f;
        if ((st = hf_num(rs, path, "factor", &f, err))) goto done;
        if ((st = hf_num(rs, path, "low_freq_factor", &lo, err))) goto done;
        if ((st = hf_num(rs, path, "high_freq_factor", &hi, err))) goto done;
        c->rope_scale = f;
        c->rope_low_freq_factor = lo;
        c->rope_high_freq_factor = hi;
        json_t *o = json_object_get(rs, "original_max_position_embeddings");
        if (json_is_integer(o) && json_integer_value(o) > 0 && json_integer_value(o) < INT32_MAX)
            c->rope_orig_ctx = (int32_t)json_integer_value(o);
        if (c->rope_scaling == TW_ROPE_SCALING_LLAMA3 && (!(hi > lo) || c->rope_orig_ctx <= 0)) {
            st = tw_error_set(err, TW_ERR_INVALID,
                              "%s: llama3 rope_scaling needs high_freq_factor > low_freq_factor and original_max_position_embeddings", path);
            goto done;
        }
    }
    if (c->bos_id >= c->n_vocab) c->bos_id = -1;
    if (c->eos_id >= c->n_vocab) c->eos_id = -1;
    st = tw_model_config_validate(c, path, err);
done:
    json_decref(root);
    return st;
}

/* ---- the model init shape table ------------------------------------------- */
#define SHAPE(nm, org, ar, L, E, H, KV, HD, FF, V, CTX, THETA, EPS, TIED, BOS, EOS)                                   \
    {nm, org,                                                                                                        \
     {.arch = ar, .n_layer = L, .n_embd = E, .n_head = H, .n_head_kv = KV, .head_dim = HD, .n_ff = FF, .n_vocab = V, \
      .n_ctx_train = CTX, .n_rot = HD, .rope_freq_base = THETA, .rms_eps = EPS, .tied_embeddings = TIED,           \
      .rope_type = (ar) == TW_ARCH_LLAMA ? TW_ROPE_NORMAL : TW_ROPE_NEOX, .rope_scale = 1.0f,                       \
      .attn_bias = (ar) == TW_ARCH_QWEN2, .qk_norm = (ar) == TW_ARCH_QWEN3, .bos_id = BOS, .eos_id = EOS}}

static const tw_model_shape SHAPES[] = {
    SHAPE("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct config.json", TW_ARCH_LLAMA, 30, 576, 9, 3, 64, 1536,
          49152, 8192, 100000.0f, 1e-5f, true, 1, 2),
    SHAPE("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct config.json", TW_ARCH_QWEN2, 24, 896, 14, 2, 64, 4864, 151936,
          32768, 1000000.0f, 1e-6f, true, 151643, 151645),
    SHAPE("qwen3-0.6b", "Qwen/Qwen3-0.6B config.json", TW_ARCH_QWEN3, 28, 1024, 16, 8, 128, 3072, 151936, 40960,
          1000000.0f, 1e-6f, true, 151643, 151645),
    SHAPE("llama-3.2-1b", "meta-llama/Llama-3.2-1B-Instruct config.json (rope_scaling llama3: factor 32, "
          "low 1, high 4, original context 8192)", TW_ARCH_LLAMA, 16, 2048, 32, 8, 64, 8192, 128256, 131072,
          500000.0f, 1e-5f, true, 128000, 128009),
    SHAPE("tiny", "tunewise test shape", TW_ARCH_LLAMA, 2, 64, 4, 2, 16, 128, 256, 512, 10000.0f, 1e-5f, false, -1,
          -1),
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

int tw_model_shape_count(void) { return N_SHAPES; }
const tw_model_shape *tw_model_shape_at(int i) { return i >= 0 && i < N_SHAPES ? &SHAPES[i] : NULL; }

const tw_model_shape *tw_model_shape_find(const char *name)
{
    for (int i = 0; i < N_SHAPES; i++)
        if (strcmp(SHAPES[i].name, name) == 0) return &SHAPES[i];
    return NULL;
}

/* ---- tw_model_files ------------------------------------------------------------ */
struct tw_model_files {
    tw_model_source source;
    char *path;
    tw_model_config cfg;
    tw_gguf *gguf;
    tw_st_set *st;
    tw_model_tensor *t;
    int64_t n;
    char **owned_names;      /* HF: mapped names */
    float *rope_freqs;       /* HF llama3: synthesized rope_freqs.weight */
    char *tokenizer_json, *tokenizer_config;
    uint64_t bytes;
};

tw_model_source tw_model_files_source(const tw_model_files *m) { return m->source; }
const char *tw_model_files_path(const tw_model_files *m) { return m->path; }
const tw_model_config *tw_model_files_config(const tw_model_files *m) { return &m->cfg; }
const tw_gguf *tw_model_files_gguf(const tw_model_files *m) { return m->gguf; }
const char *tw_model_files_tokenizer_json(const tw_model_files *m) { return m->tokenizer_json; }
const char *tw_model_files_tokenizer_config(const tw_model_files *m) { return m->tokenizer_config; }
uint64_t tw_model_files_bytes(const tw_model_files *m) { return m->bytes; }
int64_t tw_model_files_tensor_count(const tw_model_files *m) { return m->n; }
const tw_model_tensor *tw_model_files_tensor_at(const tw_model_files *m, int64_t i) { return i >= 0 && i < m->n ? &m->t[i] : NULL; }

const tw_model_tensor *tw_model_files_tensor_find(const tw_model_files *m, const char *name)
{
    for (int64_t i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

void tw_model_files_free(tw_model_files *m)
{
    if (!m) return;
    if (m->owned_names)
        for (int64_t i = 0; i < m->n; i++) free(m->owned_names[i]);
    free(m->owned_names);
    free(m->t);
    free(m->rope_freqs);
    tw_gguf_free(m->gguf);
    tw_st_set_free(m->st);
    free(m->tokenizer_json);
    free(m->tokenizer_config);
    free(m->path);
    free(m);
}

/* HF tensor name -> GGUF name (llama.cpp's converter naming); false when not one of ours. */
static bool map_hf_name(const char *src, char *dst, size_t cap)
{
    static const char *const top[][2] = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    static const char *const layer[][2] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},     {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.weight", "attn_k.weight"},     {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.weight", "attn_v.weight"},     {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"}, {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},      {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strcmp(src, top[i][0]) == 0) {
            snprintf(dst, cap, "%s", top[i][1]);
            return true;
        }
    const char *pfx = "model.layers.";
    if (strncmp(src, pfx, strlen(pfx)) != 0) return false;
    const char *p = src + strlen(pfx);
    char *end;
    long n = strtol(p, &end, 10);
    if (end == p || *end != '.' || n < 0 || n > MAX_LAYER) return false;
    for (size_t i = 0; i < sizeof layer / sizeof layer[0]; i++)
        if (strcmp(end + 1, layer[i][0]) == 0) {
            snprintf(dst, cap, "blk.%ld.%s", n, layer[i][1]);
            return true;
        }
    return false;
}

/* llama3 RoPE frequency factors (as llama.cpp's converter computes rope_freqs.weight from
 * config.json's rope_scaling; Llama 3.1 paper / transformers _compute_llama3_parameters):
 * for each rotated pair i with inverse frequency f = base^(-2i/n_rot) and wavelength
 * w = 2 pi / f: factor 1 when w < orig/high, `factor` when w > orig/low, else a smooth
 * interpolation 1 / ((1 - s) / factor + s) with s = (orig / w - low) / (high - low). */
void tw_rope_llama3_factors(const tw_model_config *c, float *out)
{
    int n = c->n_rot / 2;
    double orig = c->rope_orig_ctx, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor, f = c->rope_scale;
    double lo_w = orig / lo, hi_w = orig / hi;
    for (int i = 0; i < n; i++) {
        double freq = 1.0 / pow(c->rope_freq_base, (2.0 * i) / c->n_rot);
        double w = 2.0 * M_PI / freq;
        if (w < hi_w) out[i] = 1.0f;
        else if (w > lo_w) out[i] = (float)f;
        else {
            double s = (orig / w - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1.0 - s) / f + s));
        }
    }
}

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static tw_status open_hf(tw_model_files *m, const char *dir, tw_error *err)
{
    m->source = TW_MODEL_SRC_HF;
    char *cfg = join(dir, "config.json");
    if (!cfg) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    tw_status st = tw_file_exists(cfg) ? tw_model_config_from_hf(&m->cfg, cfg, err)
                                       : tw_error_set(err, TW_ERR_IO, "%s: no config.json in this folder", dir);
    free(cfg);
    if (st) return st;
    m->tokenizer_json = join(dir, "tokenizer.json");
    m->tokenizer_config = join(dir, "tokenizer_config.json");
    if (!m->tokenizer_json || !m->tokenizer_config) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!tw_file_exists(m->tokenizer_json)) {
        free(m->tokenizer_json);
        m->tokenizer_json = NULL;
    }
    if (!tw_file_exists(m->tokenizer_config)) {
        free(m->tokenizer_config);
        m->tokenizer_config = NULL;
    }
    if ((st = tw_st_set_open(&m->st, dir, err))) return st;
    m->bytes = tw_st_set_bytes(m->st);
    int64_t n = tw_st_set_tensor_count(m->st);
    bool synth = m->cfg.rope_scaling == TW_ROPE_SCALING_LLAMA3;
    m->t = calloc((size_t)(n + 1), sizeof *m->t);
    m->owned_names = calloc((size_t)(n + 1), sizeof *m->owned_names);
    if (!m->t || !m->owned_names) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        const tw_st_tensor *s = tw_st_set_tensor_at(m->st, i);
        tw_model_tensor *t = &m->t[i];
        char name[256];
        if (!map_hf_name(s->name, name, sizeof name)) snprintf(name, sizeof name, "%s", s->name);
        m->owned_names[i] = strdup(name);
        m->n = i + 1;
        if (!m->owned_names[i]) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        t->name = m->owned_names[i];
        t->src_name = s->name;
        if (!tw_st_dtype_to_type(s->dtype, &t->type))
            return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s has no GGUF equivalent", dir, s->name,
                                tw_st_dtype_name(s->dtype));
        if (s->n_dims > 4 || s->n_dims == 0)
            return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': %u dimensions (1..4 supported)", dir, s->name, s->n_dims);
        if (s->n_elements == 0)
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': has no elements", dir, s->name);
        t->n_dims = s->n_dims;
        for (int d = 0; d < 4; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < s->n_dims; d++) t->ne[d] = s->shape[s->n_dims - 1 - d];
        t->nbytes = s->end - s->begin;
        t->data = s->data;
        for (int64_t j = 0; j < i; j++)
            if (strcmp(m->t[j].name, t->name) == 0)
                return tw_error_set(err, TW_ERR_INVALID, "%s: tensors '%s' and '%s' both map to '%s'", dir, m->t[j].src_name,
                                    s->name, t->name);
    }
    if (synth && !tw_model_files_tensor_find(m, "rope_freqs.weight")) {
        m->rope_freqs = malloc((size_t)(m->cfg.n_rot / 2) * sizeof(float));
        m->owned_names[m->n] = strdup("rope_freqs.weight");
        if (!m->rope_freqs || !m->owned_names[m->n]) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        tw_rope_llama3_factors(&m->cfg, m->rope_freqs);
        tw_model_tensor *t = &m->t[m->n];
        t->name = t->src_name = m->owned_names[m->n];
        t->type = TW_TYPE_F32;
        t->n_dims = 1;
        t->ne[0] = m->cfg.n_rot / 2;
        t->ne[1] = t->ne[2] = t->ne[3] = 1;
        t->nbytes = (uint64_t)t->ne[0] * 4;
        t->data = m->rope_freqs;
        m->n++;
    }
    /* a checkpoint without lm_head is tied whatever config.json says */
    if (!tw_model_files_tensor_find(m, "output.weight")) m->cfg.tied_embeddings = true;
    return TW_OK;
}

static tw_status open_gguf(tw_model_files *m, const char *path, tw_error *err)
{
    m->source = TW_MODEL_SRC_GGUF;
    tw_status st = tw_gguf_open(&m->gguf, path, err);
    if (st) return st;
    m->bytes = tw_gguf_file_size(m->gguf);
    if ((st = tw_model_config_from_gguf(&m->cfg, m->gguf, err))) return st;
    m->n = tw_gguf_tensor_count(m->gguf);
    m->t = calloc((size_t)(m->n ? m->n : 1), sizeof *m->t);
    if (!m->t) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < m->n; i++) {
        const tw_gguf_tensor *g = tw_gguf_tensor_at(m->gguf, i);
        tw_model_tensor *t = &m->t[i];
        t->name = t->src_name = g->name;
        t->type = g->type;
        t->n_dims = g->n_dims;
        memcpy(t->ne, g->ne, sizeof t->ne);
        t->nbytes = g->nbytes;
        t->data = g->data;
    }
    return TW_OK;
}

tw_status tw_model_files_open(tw_model_files **out, const char *path, tw_error *err)
{
    *out = NULL;
    tw_model_files *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    tw_status st = is_dir(path) ? open_hf(m, path, err) : open_gguf(m, path, err);
    if (st) {
        tw_model_files_free(m);
        return st;
    }
    *out = m;
    return TW_OK;
}

/* ---- shape check ------------------------------------------------------------ */
static tw_status expect(const tw_model_files *m, const char *name, int64_t ne0, int64_t ne1, tw_error *err)
{
    const tw_model_tensor *t = tw_model_files_tensor_find(m, name);
    if (!t) return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': missing", m->path, name);
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1) {
        if (ne1 == 1)
            return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected dims [%lld], found [%lld, %lld, %lld, %lld]",
                                m->path, name, (long long)ne0, (long long)t->ne[0], (long long)t->ne[1],
                                (long long)t->ne[2], (long long)t->ne[3]);
        return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': expected dims [%lld, %lld], found [%lld, %lld, %lld, %lld]",
                            m->path, name, (long long)ne0, (long long)ne1, (long long)t->ne[0], (long long)t->ne[1],
                            (long long)t->ne[2], (long long)t->ne[3]);
    }
    const tw_type_info *ti = tw_type_get(t->type);
    if (!ti || !ti->supported)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: tensor '%s': type %s cannot be used by tunewise", m->path, name,
                            ti ? ti->name : "?");
    return TW_OK;
}

tw_status tw_model_files_check(const tw_model_files *m, tw_error *err)
{
    const tw_model_config *c = &m->cfg;
    int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim;
    tw_status st;
    if ((st = expect(m, "token_embd.weight", E, c->n_vocab, err))) return st;
    if ((st = expect(m, "output_norm.weight", E, 1, err))) return st;
    if (!c->tied_embeddings && (st = expect(m, "output.weight", E, c->n_vocab, err))) return st;
    if (c->rope_scaling == TW_ROPE_SCALING_LLAMA3 && (st = expect(m, "rope_freqs.weight", c->n_rot / 2, 1, err))) return st;
    for (int l = 0; l < c->n_layer; l++) {
        struct {
            const char *n;
            int64_t a, b;
            bool on;
        } want[] = {
            {"attn_norm.weight", E, 1, true},     {"attn_q.weight", E, Q, true},       {"attn_k.weight", E, KV, true},
            {"attn_v.weight", E, KV, true},       {"attn_output.weight", Q, E, true},  {"ffn_norm.weight", E, 1, true},
            {"ffn_gate.weight", E, c->n_ff, true}, {"ffn_up.weight", E, c->n_ff, true}, {"ffn_down.weight", c->n_ff, E, true},
            {"attn_q.bias", Q, 1, c->attn_bias},  {"attn_k.bias", KV, 1, c->attn_bias}, {"attn_v.bias", KV, 1, c->attn_bias},
            {"attn_q_norm.weight", c->head_dim, 1, c->qk_norm}, {"attn_k_norm.weight", c->head_dim, 1, c->qk_norm},
        };
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            if (!want[k].on) continue;
            char name[96];
            snprintf(name, sizeof name, "blk.%d.%s", l, want[k].n);
            if ((st = expect(m, name, want[k].a, want[k].b, err))) return st;
        }
    }
    for (int64_t i = 0; i < m->n; i++) {
        const char *nm = m->t[i].name;
        if (strncmp(nm, "blk.", 4) == 0) {
            long l = strtol(nm + 4, NULL, 10);
            if (l < 0 || l >= c->n_layer)
                return tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s': layer %ld is beyond the block count %d", m->path, nm,
                                    l, c->n_layer);
        }
    }
    return TW_OK;
}
