/* config.h — what a model is, independent of where it is stored:
 *  - tw_model_config: the hyper-parameters of a llama / qwen2 / qwen3 model, read from
 *    GGUF metadata (llama.cpp's keys) or from a Hugging Face config.json;
 *  - tw_model_files: one view over a GGUF file or a Hugging Face folder (config.json +
 *    safetensors, single or sharded) that presents every tensor under its GGUF name
 *    (token_embd.weight, blk.N.attn_q.weight, ...) with GGML-order dims and raw data;
 *  - the random-weight model writer behind `tunewise model init` (init.c) and the
 *    tokenizer.json -> GGUF tokenizer metadata conversion it uses.
 *
 * Deliberately not here: the forward pass, tokenization, dequantization. Tensor data is
 * raw as stored. In particular, llama-architecture attn_q / attn_k weights from a GGUF
 * file are row-permuted by llama.cpp's converter relative to the Hugging Face checkpoint
 * (so that GGML's "normal" RoPE, rotating adjacent pairs, gives the same result as HF's
 * rotate_half); tensors from a HF folder are NOT permuted. cfg.rope_type says which RoPE
 * the raw tensors need: NORMAL for GGUF llama, NEOX for HF llama and for qwen2/qwen3 from
 * either source. See docs/model-files.md. */
#ifndef TW_MODEL_CONFIG_H
#define TW_MODEL_CONFIG_H

#include "tunewise.h"
#include "model/gguf.h"
#include "model/types.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- architectures and hyper-parameters ----------------------------------- */
typedef enum tw_arch { TW_ARCH_LLAMA = 0, TW_ARCH_QWEN2 = 1, TW_ARCH_QWEN3 = 2, TW_ARCH_COUNT = 3 } tw_arch;

const char *tw_arch_name(tw_arch a);                 /* "llama", "qwen2", "qwen3" */
bool tw_arch_parse(const char *name, tw_arch *out);  /* exact GGUF name */

/* llama.cpp's numbering (LLAMA_ROPE_TYPE_NORM = 0, LLAMA_ROPE_TYPE_NEOX = 2):
 * NORMAL rotates pairs (x[2i], x[2i+1]); NEOX rotates (x[i], x[i + n_rot/2]). */
typedef enum tw_rope_type { TW_ROPE_NORMAL = 0, TW_ROPE_NEOX = 2 } tw_rope_type;

typedef enum tw_rope_scaling {
    TW_ROPE_SCALING_NONE = 0,
    TW_ROPE_SCALING_LINEAR = 1,   /* positions divided by rope_scale */
    TW_ROPE_SCALING_YARN = 2,
    TW_ROPE_SCALING_LLAMA3 = 3    /* per-frequency factors: the rope_freqs.weight tensor */
} tw_rope_scaling;

typedef struct tw_model_config {
    tw_arch arch;
    char name[128];          /* general.name / HF _name_or_path; may be "" */
    int32_t n_layer;
    int32_t n_embd;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;        /* per-head size of q/k/v: n_embd / n_head unless given (qwen3) */
    int32_t n_ff;
    int32_t n_vocab;         /* rows of token_embd */
    int32_t n_ctx_train;     /* context length trained for */
    int32_t n_rot;           /* dims rotated by RoPE (rope.dimension_count), default head_dim */
    float rope_freq_base;    /* theta, default 10000 */
    tw_rope_type rope_type;  /* what the RAW tensors need (see the note at the top) */
    tw_rope_scaling rope_scaling;
    float rope_scale;        /* factor for LINEAR / YARN / LLAMA3; 1 when none */
    int32_t rope_orig_ctx;   /* original context of YARN / LLAMA3 scaling, 0 when none */
    float rope_low_freq_factor, rope_high_freq_factor;   /* LLAMA3 (HF only; GGUF files
                                                          * carry rope_freqs.weight instead) */
    float rms_eps;
    bool tied_embeddings;    /* no separate output.weight: the output uses token_embd */
    bool attn_bias;          /* q/k/v projections have biases (qwen2) */
    bool qk_norm;            /* per-head RMS norm of q and k (qwen3) */
    int32_t bos_id, eos_id;  /* -1 when unknown */
} tw_model_config;

/* Read from GGUF metadata (<arch>.block_count, .embedding_length, .attention.head_count,
 * ...; the full key list is in docs/model-files.md). Missing optional keys take
 * llama.cpp's defaults; missing required ones and inconsistent values (n_head not a
 * multiple of n_head_kv, ...) are errors naming the key. n_vocab comes from
 * token_embd.weight when present. */
tw_status tw_model_config_from_gguf(tw_model_config *cfg, const tw_gguf *g, tw_error *err);
/* Read a Hugging Face config.json (model_type llama / qwen2 / qwen3). tied_embeddings
 * follows tie_word_embeddings (transformers' per-model default when absent). */
tw_status tw_model_config_from_hf(tw_model_config *cfg, const char *config_json_path, tw_error *err);
/* Check sizes are positive, consistent and small enough for 32-bit index math. */
tw_status tw_model_config_validate(const tw_model_config *cfg, const char *where, tw_error *err);
/* Parameters implied by the config (all weights, biases and norms; tied output counted once). */
uint64_t tw_model_config_n_params(const tw_model_config *cfg);
/* Bytes of K + V cache for n_tokens at elem_bytes per element (2: f16, 4: f32). */
uint64_t tw_model_config_kv_bytes(const tw_model_config *cfg, uint64_t n_tokens, uint32_t elem_bytes);

/* llama3 RoPE frequency factors, n_rot / 2 floats (what llama.cpp's converter stores as
 * rope_freqs.weight), from rope_freq_base, n_rot, rope_scale, rope_low_freq_factor,
 * rope_high_freq_factor and rope_orig_ctx. */
void tw_rope_llama3_factors(const tw_model_config *cfg, float *out);

/* ---- one view over GGUF files and Hugging Face folders ------------------------ */
typedef enum tw_model_source { TW_MODEL_SRC_GGUF = 0, TW_MODEL_SRC_HF = 1 } tw_model_source;

typedef struct tw_model_tensor {
    const char *name;        /* GGUF name: "token_embd.weight", "blk.3.attn_q.weight", ... */
    const char *src_name;    /* name in the source file (HF: "model.layers.3.self_attn.q_proj.weight") */
    tw_type type;            /* F32 / F16 / BF16 from safetensors; any GGUF type */
    uint32_t n_dims;
    int64_t ne[4];           /* GGML order: ne[0] contiguous (reverse of the HF shape) */
    uint64_t nbytes;
    const void *data;        /* read-only mapping (or an owned buffer for synthesized
                              * tensors such as HF llama3 rope_freqs.weight); valid until
                              * tw_model_files_free */
} tw_model_tensor;

typedef struct tw_model_files tw_model_files;

/* PATH: a .gguf file, or a folder holding config.json and model.safetensors or
 * model.safetensors.index.json + shards (tokenizer.json / tokenizer_config.json are
 * recorded when present). Validates the files and the config; tensor names of HF
 * folders are mapped to GGUF names (unknown names are kept as they are). */
tw_status tw_model_files_open(tw_model_files **out, const char *path, tw_error *err);
void tw_model_files_free(tw_model_files *m);

tw_model_source tw_model_files_source(const tw_model_files *m);
const char *tw_model_files_path(const tw_model_files *m);
const tw_model_config *tw_model_files_config(const tw_model_files *m);
const tw_gguf *tw_model_files_gguf(const tw_model_files *m);          /* NULL for HF */
const char *tw_model_files_tokenizer_json(const tw_model_files *m);   /* HF; NULL if none */
const char *tw_model_files_tokenizer_config(const tw_model_files *m); /* HF; NULL if none */
uint64_t tw_model_files_bytes(const tw_model_files *m);               /* total size on disk */
int64_t tw_model_files_tensor_count(const tw_model_files *m);
const tw_model_tensor *tw_model_files_tensor_at(const tw_model_files *m, int64_t i);
const tw_model_tensor *tw_model_files_tensor_find(const tw_model_files *m, const char *name);

/* Check that every tensor the architecture needs is there with the shape the config
 * implies (and that there are no unexpected blk.N tensors beyond n_layer):
 * "PATH: tensor 'blk.3.attn_k.weight': expected dims [576, 192], found [576, 576]". */
tw_status tw_model_files_check(const tw_model_files *m, tw_error *err);

/* ---- model init: shapes, tokenizer conversion, random-weight writer ---------- */
typedef struct tw_model_shape {
    const char *name;        /* "smollm2-135m", "qwen2.5-0.5b", "qwen3-0.6b", "llama-3.2-1b", "tiny" */
    const char *origin;      /* where the numbers come from */
    tw_model_config cfg;     /* arch, sizes, rope, eps, tied, bias/norm flags */
} tw_model_shape;

int tw_model_shape_count(void);
const tw_model_shape *tw_model_shape_at(int i);
const tw_model_shape *tw_model_shape_find(const char *name);   /* NULL when unknown */

/* What tw_tokenizer_json_to_gguf found, for messages. */
typedef struct tw_tokenizer_gguf_info {
    char model[16];          /* "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE) */
    char pre[32];            /* tokenizer.ggml.pre */
    int64_t n_tokens;        /* tokens written (including padding) */
    int64_t n_merges;
    int32_t bos_id, eos_id;  /* -1 when none */
    bool chat_template;
} tw_tokenizer_gguf_info;

/* Convert a Hugging Face tokenizer.json (+ tokenizer_config.json and config.json from the
 * same folder, when present) into llama.cpp's tokenizer.ggml.* metadata on w:
 * model, pre, tokens, token_type, merges, scores (SentencePiece-style only), bos / eos /
 * unknown / padding ids, add_bos_token / add_eos_token / add_space_prefix, and
 * tokenizer.chat_template. pre_override (NULL: detect from the pre-tokenizer) sets
 * tokenizer.ggml.pre. When n_vocab_pad exceeds the token count, "[PAD<i>]" tokens
 * (type UNUSED) fill up to it, as llama.cpp's converter does. The conversion rules are
 * in docs/model-files.md. */
tw_status tw_tokenizer_json_to_gguf(tw_gguf_writer *w, const char *tokenizer_json, const char *pre_override,
                                    int64_t n_vocab_pad, tw_tokenizer_gguf_info *info, tw_error *err);

typedef struct tw_model_init_params {
    const char *like;        /* shape name (tw_model_shape_find); required */
    const char *arch;        /* NULL: the shape's own architecture */
    tw_type type;            /* type of 2-D weights; 1-D tensors stay F32 */
    const char *tokenizer;   /* tokenizer.json, or NULL for no tokenizer metadata */
    const char *tokenizer_pre;   /* NULL: detect */
    uint64_t seed;
    float stddev;            /* of the N(0, stddev) weights; default 0.02 */
    int32_t n_vocab;         /* 0: the shape's (or the tokenizer's when larger / tiny) */
    /* Called as tensor data is written (bytes done of total); may be NULL. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} tw_model_init_params;

tw_model_init_params tw_model_init_default_params(void);

/* What tw_model_init wrote. */
typedef struct tw_model_init_info {
    tw_model_config cfg;
    int64_t n_tensors;
    uint64_t n_params;
    uint64_t file_bytes;
    int n_fallback;          /* 2-D tensors whose first dim does not fit the type's block:
                              * written in llama.cpp's fallback type instead */
    tw_tokenizer_gguf_info tok;
} tw_model_init_info;

/* Write a random-weight model of a known shape to out_path (atomically): llama.cpp
 * tensor names and metadata keys, weights ~ N(0, stddev) from a per-tensor stream seeded
 * by (seed, tensor name), norms = 1; deterministic for a given seed and type. Tensors are
 * generated and quantized while they are written (memory stays at a few MiB beyond the
 * tokenizer). info may be NULL. */
tw_status tw_model_init(const tw_model_init_params *p, const char *out_path, tw_model_init_info *info,
                        tw_error *err);

#endif /* TW_MODEL_CONFIG_H */
