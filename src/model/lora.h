/* lora.h — LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language
 * Models"): the in-memory adapter, its two file formats, and the math of applying it.
 *
 * For each adapted base weight W (n_out, n_in) — one of attn_q / attn_k / attn_v /
 * attn_output / ffn_gate / ffn_up / ffn_down of a layer, named by its GGUF name
 * ("blk.3.attn_q.weight") — the adapter holds A (rank, n_in) and B (n_out, rank) in F32
 * and the adapted layer computes
 *
 *     y = W·x + scale · B·(A·x),     scale = user_scale · alpha / rank   (alpha != 0)
 *                                          = user_scale                  (alpha == 0)
 *
 * which is llama.cpp's rule (llama_adapter_lora_weight::get_scale: adapter.lora.alpha,
 * rank = lora_b ne[0], the per-adapter scale given at load) and PEFT's (scaling =
 * lora_alpha / r per module; r from rank_pattern when present) with user_scale = 1.
 *
 * Formats (docs/adapters.md):
 *  - llama.cpp GGUF adapter: general.type = "adapter", adapter.type = "lora",
 *    adapter.lora.alpha (f32), general.architecture; tensors "<base>.lora_a" with
 *    ne = {n_in, rank} (= A, row-major (rank, n_in)) and "<base>.lora_b" with
 *    ne = {rank, n_out} (= B, (n_out, rank)), F32 / F16 / BF16 (Q8_0 read too).
 *  - Hugging Face PEFT folder: adapter_config.json + adapter_model.safetensors with
 *    "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight" shape [rank, n_in]
 *    and "...lora_B.weight" shape [n_out, rank].
 *
 * Row order of B for llama: llama.cpp's converters permute the rows of a llama model's
 * attn_q / attn_k weights (and so of a LoRA's lora_b for them, since delta = B·A) within
 * each head: HF row h·d + k·d/2 + j becomes GGUF row h·d + 2j + k. A tw_lora records
 * which order its B rows are in (rows); GGUF adapters of llama are read and written in
 * llama.cpp's order, PEFT ones in HF order, and the writers convert when needed (they
 * need the head counts: from tw_lora_set_config / tw_lora_check). Applying an adapter to
 * a model needs the order of that model's raw tensors: tw_lora_rows_for().
 *
 * Deliberately not here: gradients and training (train/), wiring into the forward pass
 * (llama.c), embeddings / output / norm tensors in adapters (rejected: unsupported),
 * DoRA, per-module alphas (alpha_pattern), quantized adapter output. */
#ifndef TW_MODEL_LORA_H
#define TW_MODEL_LORA_H

#include "tunewise.h"
#include "model/config.h"
#include "model/types.h"

#include <stdbool.h>
#include <stdint.h>

/* The projections an adapter may target (bit flags). */
typedef enum tw_lora_target {
    TW_LORA_Q = 1 << 0,      /* attn_q.weight       self_attn.q_proj */
    TW_LORA_K = 1 << 1,      /* attn_k.weight       self_attn.k_proj */
    TW_LORA_V = 1 << 2,      /* attn_v.weight       self_attn.v_proj */
    TW_LORA_O = 1 << 3,      /* attn_output.weight  self_attn.o_proj */
    TW_LORA_GATE = 1 << 4,   /* ffn_gate.weight     mlp.gate_proj */
    TW_LORA_UP = 1 << 5,     /* ffn_up.weight       mlp.up_proj */
    TW_LORA_DOWN = 1 << 6,   /* ffn_down.weight     mlp.down_proj */
    TW_LORA_ALL = 0x7f
} tw_lora_target;

/* "q", "k", "v", "o", "gate", "up", "down" ("?" for anything else). */
const char *tw_lora_target_name(tw_lora_target t);
/* Parse a comma-separated list of target names ("q,v" / "all"); false on an unknown name. */
bool tw_lora_targets_parse(const char *s, unsigned *out);

/* Row order of B for llama attn_q / attn_k (see the top of this file). For qwen2 / qwen3
 * the two orders are the same thing: nothing is ever permuted. */
typedef enum tw_lora_rows { TW_LORA_ROWS_HF = 0, TW_LORA_ROWS_GGUF = 1 } tw_lora_rows;

typedef struct tw_lora_weight {
    char name[64];           /* base tensor, GGUF name: "blk.3.attn_q.weight" */
    int32_t layer;
    tw_lora_target target;
    int32_t rank;
    int64_t n_in, n_out;
    float *a;                /* (rank, n_in) row-major; owned */
    float *b;                /* (n_out, rank) row-major; owned */
    tw_type src_type;        /* type A and B had in the file read (F32 for new adapters) */
} tw_lora_weight;

typedef struct tw_lora {
    tw_arch arch;            /* TW_ARCH_COUNT while unknown (PEFT read without a config) */
    float alpha;             /* 0: none (scale = user scale, llama.cpp's rule) */
    tw_lora_rows rows;       /* order of B rows of llama attn_q / attn_k */
    int32_t n_head, n_head_kv;   /* from a config (0 while unknown): the permutation */
    int32_t n_layer;         /* from a config (0 while unknown): PEFT target_modules */
    char base_model[256];    /* PEFT base_model_name_or_path / GGUF general.base_model... ("" unknown) */
    char path[512];          /* file or folder read ("" for new adapters), for messages */
    bool peft;               /* read from a PEFT folder: messages use its tensor names */
    int32_t n;               /* weights, sorted by (layer, target) */
    tw_lora_weight *w;
} tw_lora;

void tw_lora_free(tw_lora *l);   /* NULL: no-op */

/* A new adapter for every layer of cfg and every target in `targets`, rank r: A and B
 * zero (use tw_lora_init_peft). rows: the order the trainer's base tensors use
 * (tw_lora_rows_for the model). */
tw_status tw_lora_new(tw_lora **out, const tw_model_config *cfg, unsigned targets, int32_t rank, float alpha,
                      tw_lora_rows rows, tw_error *err);
/* PEFT's default initialization (init_lora_weights=True): A ~ U(-1/sqrt(n_in), 1/sqrt(n_in))
 * (kaiming_uniform with a = sqrt(5)), B = 0, from a per-weight stream of (seed, name). */
void tw_lora_init_peft(tw_lora *l, uint64_t seed);

/* Lookup by the base tensor's GGUF name; NULL when that tensor is not adapted. */
const tw_lora_weight *tw_lora_find(const tw_lora *l, const char *base_name);
tw_lora_weight *tw_lora_find_mut(tw_lora *l, const char *base_name);
/* Bitmask of the targets present. */
unsigned tw_lora_targets(const tw_lora *l);
/* llama.cpp's / PEFT's scale for weight w: user_scale * alpha / w->rank, or user_scale
 * when alpha == 0. */
float tw_lora_scale(const tw_lora *l, const tw_lora_weight *w, float user_scale);

/* ---- files ------------------------------------------------------------------------- */

/* Read a llama.cpp GGUF adapter. Checks general.type == "adapter", adapter.type == "lora",
 * a known general.architecture, pairs of <base>.lora_a / .lora_b for known base names
 * with consistent shapes (lora_a ne {n_in, r}, lora_b ne {r, n_out}) of F32 / F16 /
 * BF16 / Q8_0. adapter.lora.alpha absent: alpha = 0 (llama.cpp's rule). rows = GGUF.
 * Errors name the file and the tensor or key: TW_ERR_INVALID / TW_ERR_UNSUPPORTED. */
tw_status tw_lora_read_gguf(tw_lora **out, const char *path, tw_error *err);
/* Read a PEFT adapter folder (or its adapter_config.json path). cfg (may be NULL) gives
 * the architecture and head counts (tw_lora_set_config). r / lora_alpha missing from the
 * config take PEFT's LoraConfig defaults (8 / 8); ranks come from the tensors and must
 * equal r or the module's rank_pattern entry (keys matched as literal module-name
 * suffixes); use_rslora with one rank is folded into alpha (alpha' = lora_alpha·sqrt(r),
 * so alpha'/r = lora_alpha/sqrt(r)); use_dora, alpha_pattern entries, bias tensors,
 * modules_to_save and non-LoRA tensors are TW_ERR_UNSUPPORTED. rows = HF. */
tw_status tw_lora_read_peft(tw_lora **out, const char *path, const tw_model_config *cfg, tw_error *err);

typedef struct tw_lora_write_params {
    tw_type type;            /* F32 / F16 / BF16, or TW_TYPE_COUNT: each weight's src_type
                              * when that is one of these three, else F32 */
    const char *base_model;  /* PEFT base_model_name_or_path / GGUF general.base_model.0.name;
                              * NULL: l->base_model */
} tw_lora_write_params;
tw_lora_write_params tw_lora_default_write_params(void);

/* Write a llama.cpp GGUF adapter atomically. Needs l->arch; llama B rows are converted to
 * llama.cpp's order when l->rows is HF (needs the head counts). p may be NULL. */
tw_status tw_lora_write_gguf(const tw_lora *l, const char *path, const tw_lora_write_params *p, tw_error *err);
/* Write a PEFT folder (created when missing): adapter_model.safetensors and
 * adapter_config.json, both atomically. llama B rows converted to HF order when needed. */
tw_status tw_lora_write_peft(const tw_lora *l, const char *dir, const tw_lora_write_params *p, tw_error *err);

/* ---- validation against a model ------------------------------------------------------ */

/* Record cfg's architecture and head counts and check every weight against the shapes cfg
 * implies (layer < n_layer, n_in / n_out of its projection), and the architecture when the
 * adapter has one: "ADAPTER: tensor 'blk.1.attn_k.weight.lora_b': expected dims [4, 32]
 * (base 'blk.1.attn_k.weight' is [64, 32]), found [4, 64]". */
tw_status tw_lora_set_config(tw_lora *l, const tw_model_config *cfg, tw_error *err);
/* tw_lora_set_config(l, config of mf) plus: every base tensor exists in mf as a 2-D tensor
 * of the expected dims. */
tw_status tw_lora_check(tw_lora *l, const tw_model_files *mf, tw_error *err);
/* The order of B rows that mf's raw tensors need: GGUF for a GGUF file, HF for a folder. */
tw_lora_rows tw_lora_rows_for(const tw_model_files *mf);
/* What a forward pass over mf needs before applying l: tw_lora_check(l, mf), then
 * tw_lora_set_rows(l, tw_lora_rows_for(mf)). */
tw_status tw_lora_prepare(tw_lora *l, const tw_model_files *mf, tw_error *err);
/* Permute B rows of llama attn_q / attn_k to `rows` (needs the head counts); for other
 * architectures only the flag changes. */
tw_status tw_lora_set_rows(tw_lora *l, tw_lora_rows rows, tw_error *err);

/* The permutation itself, on the rows of a (n_rows, n_cols) matrix with n_heads heads of
 * n_rows / n_heads rows each (even): to_gguf: HF -> llama.cpp order, else back. */
void tw_lora_permute_rows(float *dst, const float *src, int64_t n_rows, int64_t n_cols, int32_t n_heads,
                          bool to_gguf);

/* ---- math -------------------------------------------------------------------------- */

/* Unmerged application:
 *   t (Bt, rank) = scale · x (Bt, n_in) · A^T        A (rank, n_in)
 *   out (Bt, n_out) += t · B^T                       B (n_out, rank)
 * t is caller scratch and holds scale·x·A^T on return (what a backward pass needs).
 * float32 single-threaded products (gemm.h); out must not alias x or t. */
void tw_lora_apply(float *out, float *t, const float *x, const float *A, const float *B, int64_t Bt, int64_t n_out,
                   int64_t n_in, int32_t rank, float scale);
/* Merge into rows [row0, row0 + nrows) of the dequantized weight (a block of nrows rows of
 * n_in floats, w[i] = row row0 + i): w (nrows, n_in) += scale · B[row0 .. row0+nrows) · A.
 * B's rows must be in the order of the weight being merged into. */
void tw_lora_merge(float *w, const float *A, const float *B, int64_t row0, int64_t nrows, int64_t n_in,
                   int32_t rank, float scale);

#endif /* TW_MODEL_LORA_H */
