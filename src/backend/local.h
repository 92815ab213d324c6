/* local.h — the in-process backend: one model (GGUF file or Hugging Face folder) with its
 * tokenizer and chat template, answering prompts by generation or by scoring choices, with
 * a prefix cache.
 *
 * The prefix cache: prompt strategies render every example as prefix + suffix where the
 * prefix (instructions, demonstrations) is the same for all examples. tw_local_set_prefix
 * tokenizes and prefills it once into sequence 0 of the KV cache; each request forks that
 * sequence (cells shared, nothing copied, kv.h) and prefills only its suffix. Reuse is
 * only taken when it cannot change the result: the tokens of prefix + suffix, tokenized as
 * one text, must start with the prefix's tokens (BPE can merge across the boundary; then
 * the whole prompt is prefilled, and tw_local_stats counts the miss).
 *
 * Deliberately not here: building prompts (arms/prompt.c), parsing answers, caching results
 * across runs (eval/cache.c), HTTP (backend/remote.c). One request at a time per
 * tw_local (the model's arena and the cache are shared state). */
#ifndef TW_BACKEND_LOCAL_H
#define TW_BACKEND_LOCAL_H

#include "tunewise.h"
#include "base/base.h"
#include "model/chat.h"
#include "model/llama.h"
#include "model/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tw_local_params {
    const char *model;           /* GGUF file or HF folder (borrowed during open) */
    const char *chat_template;   /* NULL: the model's own; else a file or built-in name */
    int n_threads;               /* <= 0: all */
    int32_t n_ctx;               /* KV cells (prefix + longest request); default 4096 */
    tw_kv_type kv_type;          /* default TW_KV_F16 */
    tw_matmul_mode matmul;       /* default TW_MATMUL_FAST */
} tw_local_params;

tw_local_params tw_local_default_params(void);

/* What tw_local_open loads, for callers that hold their own model: the tokenizer of a
 * model's files (GGUF metadata, or a HF folder's tokenizer.json) ... */
tw_status tw_local_load_tokenizer(const tw_model_files *mf, tw_tokenizer **out, tw_error *err);
/* ... and its chat template: override (a Jinja / tokenizer_config.json file, or a built-in
 * name) when given, else the model's own (mf may then be NULL). *out = NULL and TW_OK when
 * the model has none. */
tw_status tw_local_load_template(const tw_model_files *mf, const char *override, tw_chat_template **out,
                                 tw_error *err);

typedef struct tw_local tw_local;

/* Open the model, its tokenizer and chat template (a model without a template opens;
 * tw_local_chat_template then returns NULL). */
tw_status tw_local_open(tw_local **out, const tw_local_params *p, tw_error *err);
void tw_local_free(tw_local *l);

tw_llama *tw_local_model(tw_local *l);
const tw_tokenizer *tw_local_tokenizer(const tw_local *l);
const tw_chat_template *tw_local_chat_template(const tw_local *l);   /* may be NULL */
/* Identity of the weights for cache keys: "sha256:<hex>" of the GGUF file (or of the
 * folder's weight files' names and sizes for HF folders, which are large): computed on
 * first use, then kept. Borrowed. NULL on I/O error (err filled). */
const char *tw_local_model_id(tw_local *l, tw_error *err);

/* Render messages through the chat template (add_generation_prompt, the tokenizer's
 * BOS/EOS texts) and append to out. TW_ERR_INVALID when the model has no template. */
tw_status tw_local_render(const tw_local *l, const tw_chat_msg *msgs, size_t n, bool add_generation_prompt,
                          tw_buf *out, tw_error *err);

/* Tokenize prompt text as the engine does: special tokens parsed (chat markers), BOS added
 * when the tokenizer adds one, unless the text already starts with the BOS text. */
tw_status tw_local_tokenize(const tw_local *l, const char *text, size_t len, tw_tok_ids *out, tw_error *err);

/* Apply LoRA adapters unmerged from now on (tw_llama_set_adapters: borrowed, prepared for
 * this model; n = 0: none). Drops the cached prefix (it was computed with other weights). */
tw_status tw_local_set_adapters(tw_local *l, struct tw_lora *const *adapters, const float *scales, int n,
                                tw_error *err);

/* Make text the cached prefix (NULL or "": none). A no-op when it already is. */
tw_status tw_local_set_prefix(tw_local *l, const char *text, tw_error *err);

typedef struct tw_local_result {
    tw_buf text;              /* generated text (owned) */
    int32_t tokens_in;        /* prompt tokens, the cached prefix included */
    int32_t tokens_prefilled; /* of those, computed by this call */
    int32_t tokens_out;
    double latency_ms;        /* wall time of the whole call */
    tw_stop_reason stop;
} tw_local_result;
void tw_local_result_free(tw_local_result *r);

/* Generate after prefix + suffix (the full prompt text is prefix + suffix). */
tw_status tw_local_generate(tw_local *l, const char *suffix, const tw_gen_params *gp, tw_local_result *res,
                            tw_error *err);

/* logprobs[c] = log p(choices[c] | prefix + suffix), the choice text tokenized as a
 * continuation of the prompt (the tokens of prompt + choice after the prompt's tokens
 * when those are a prefix of them, else the choice tokenized alone). res (may be NULL)
 * gets tokens/latency; its text stays empty. */
tw_status tw_local_score(tw_local *l, const char *suffix, const char *const *choices, size_t n_choices,
                         double *logprobs, tw_local_result *res, tw_error *err);

typedef struct tw_local_stats {
    int64_t requests;
    int64_t prefix_hits;      /* requests that reused the cached prefix */
    int64_t prefix_misses;    /* a prefix was set but could not be reused */
    int64_t tokens_reused;    /* prompt tokens not recomputed thanks to the prefix */
    int64_t tokens_prefilled;
} tw_local_stats;
tw_local_stats tw_local_get_stats(const tw_local *l);

#endif /* TW_BACKEND_LOCAL_H */
