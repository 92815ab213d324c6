/* llama.h — the llama-family forward pass (llama / qwen2 / qwen3) and what is built on it:
 * greedy / sampled generation with stop strings, and log-probabilities of continuations.
 *
 *  - tw_llama: weights referenced in place from a tw_model_files (GGUF or Hugging Face
 *    folder; 2-D weights are never copied: the matmul kernels read any GGUF type straight
 *    from the mapping; 1-D norms / biases / RoPE factors are converted to f32 once), plus
 *    one activation arena sized up front from the config and the largest batch;
 *  - tw_llama_forward: a batch of tokens of one sequence at explicit positions through
 *    every layer, keys and values going into a tw_kv (kv.h), logits of the last token or
 *    of all of them;
 *  - tw_generate: prompt prefill + decode loop with a tw_sampler (sample.h), streaming
 *    text through a callback, stop strings that may span tokens, EOS, max tokens;
 *  - tw_llama_score_choices: log p(choice | prompt) for several choices sharing one
 *    prefilled prompt (KV cells shared by fork).
 *
 * Architectures (docs/inference.md): pre-norm decoder, RMSNorm, GQA attention with RoPE,
 * SwiGLU FFN. llama: RoPE as tw_model_config.rope_type says (NORMAL on llama.cpp-permuted
 * GGUF Q/K rows, NEOX on Hugging Face rows — the same result, no permutation at load),
 * llama3 frequency factors from rope_freqs.weight, linear position scaling; qwen2: Q/K/V
 * biases, NEOX; qwen3: per-head RMSNorm of Q and K before RoPE, NEOX, head_dim from the
 * config. Tied or untied output.
 *
 * Deliberately not here: the matmul kernels (kernels.h), tokenization (tokenizer.h), chat
 * templates (chat.h), YaRN scaling (rejected at load), LoRA. */
#ifndef TW_MODEL_LLAMA_H
#define TW_MODEL_LLAMA_H

#include "tunewise.h"
#include "base/base.h"
#include "model/config.h"
#include "model/kv.h"
#include "model/sample.h"
#include "model/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

/* A model is used by one thread at a time (its activation arena is reused by every call);
 * the matmuls and attention inside a call are spread over n_threads OpenMP threads. */
typedef struct tw_llama tw_llama;

/* The weight matmuls (kernels.h). */
typedef enum tw_matmul_mode {
    TW_MATMUL_FAST = 0,    /* tw_matmul: 8-bit activations for quantized weights at small
                              batches (as llama.cpp), dequantized sgemm for large ones */
    TW_MATMUL_FLOAT = 1,   /* tw_matmul_float: exact dequantization, f32 activations: the
                              computation of the same model stored in F32 */
    TW_MATMUL_REF = 2,     /* tw_matmul_ref: dequantize + double accumulation (slow) */
    TW_MATMUL_GGML_FLOAT = 3   /* diagnostics: TW_MATMUL_FLOAT's exact dequantization summed
                                  in the order of ggml's f32 kernels (llamafile tinyBLAS for
                                  >= 2 rows, ggml_vec_dot_f32 for one, AVX-512 build): what
                                  llama.cpp computes on the F32 dequantization of the file
                                  (tests/ref/llama_numerics_diag.py). Scalar, slow. */,
    TW_MATMUL_GGML_Q8 = 4      /* diagnostics: Q4_1 / Q8_0 weights times activations rounded
                                  as ggml's q8_1 / q8_0 blocks (fp16 scales) with its dot
                                  product lanes, scalar: what kernels.c's 8-bit path has to
                                  reproduce for llama.cpp's exact numbers; other types as
                                  TW_MATMUL_FAST. */
} tw_matmul_mode;

typedef struct tw_llama_params {
    int32_t max_batch;   /* tokens per internal step; the arena is sized for it. Longer
                            forward calls are split. Default 512. */
    int n_threads;       /* matmul / attention threads; <= 0: all OpenMP threads. Default 0 */
    tw_matmul_mode matmul;   /* how the weight matmuls run; default TW_MATMUL_FAST */
} tw_llama_params;

tw_llama_params tw_llama_default_params(void);

/* Build a model over mf (borrowed: must outlive the model). Checks the tensors
 * (tw_model_files_check) and every 2-D weight's type against the kernels.
 * Errors: TW_ERR_INVALID (missing / misshapen tensors), TW_ERR_UNSUPPORTED (YaRN RoPE,
 * weight types the kernels lack), TW_ERR_NOMEM. */
tw_status tw_llama_new(tw_llama **out, const tw_model_files *mf, const tw_llama_params *p, tw_error *err);
/* Open PATH (GGUF file or HF folder) and build a model that owns the files. */
tw_status tw_llama_open(tw_llama **out, const char *path, const tw_llama_params *p, tw_error *err);
void tw_llama_free(tw_llama *m);

const tw_model_config *tw_llama_config(const tw_llama *m);
const tw_model_files *tw_llama_files(const tw_llama *m);
int32_t tw_llama_n_vocab(const tw_llama *m);
/* Bytes of the activation arena. */
uint64_t tw_llama_arena_bytes(const tw_llama *m);
void tw_llama_set_threads(tw_llama *m, int n_threads);

/* With an F16 KV cache (llama.cpp's default) the forward pass reproduces the rounding of
 * llama.cpp's CPU backend op by op (docs/inference.md, "Matching llama.cpp"): RoPE angles
 * built by repeated float multiplication, RMSNorm's double sum of squares, ggml's
 * vectorized exp in SwiGLU and softmax, attention with q and the probabilities rounded to
 * fp16 and ggml's summation orders. With an F32 cache the plain float path runs. For
 * diagnostics (tests/ref/llama_numerics_diag.py) each emulation can be turned off: mask
 * of the flags below, TW_LLAMA_GGML_ALL by default; no effect on an F32 cache. */
enum {
    TW_LLAMA_GGML_ROPE = 1u,     /* RoPE cos/sin table */
    TW_LLAMA_GGML_NORM = 2u,     /* RMSNorm */
    TW_LLAMA_GGML_SWIGLU = 4u,   /* SiLU with ggml's exp */
    TW_LLAMA_GGML_ATTN = 8u,     /* fp16 q / probabilities, softmax, summation orders */
    TW_LLAMA_GGML_ALL = 15u
};
void tw_llama_set_ggml_numerics(tw_llama *m, unsigned mask);

/* Diagnostics: after each stage of a forward chunk, fn(user, name, layer, x, rows, cols)
 * with the chunk's activations x (rows tokens x cols floats, borrowed for the call).
 * Names as llama.cpp's graph callbacks: attn_norm, Qcur / Kcur (after RoPE), Vcur,
 * kqv_out, attn_out, ffn_inp, ffn_norm, ffn_swiglu, ffn_out (before the residual add),
 * l_out; layer -1: result_norm, result_output. NULL (default) turns it off. */
typedef void (*tw_llama_trace_fn)(void *user, const char *name, int32_t layer, const float *x, int64_t rows,
                                  int64_t cols);
void tw_llama_set_trace(tw_llama *m, tw_llama_trace_fn fn, void *user);

/* LoRA adapters (lora.h) applied unmerged to every following forward call: each adapted
 * projection adds scale_a · (x · A^T) · B^T with scale_a = scales[a] · alpha / rank
 * (tw_lora_scale; scales NULL: 1), as llama.cpp does for adapters loaded with a scale.
 * The adapters are borrowed (they must outlive their use) and are prepared for this
 * model's files (tw_lora_prepare: checked against its shapes, B rows put in its row
 * order — this may permute them in place). n = 0 removes all adapters. Errors: the
 * adapter does not fit the model (TW_ERR_INVALID, naming the tensor), TW_ERR_NOMEM. */
struct tw_lora;
tw_status tw_llama_set_adapters(tw_llama *m, struct tw_lora *const *adapters, const float *scales, int n,
                                tw_error *err);
int tw_llama_n_adapters(const tw_llama *m);

/* Which logits tw_llama_forward writes. */
typedef enum tw_logits_mode {
    TW_LOGITS_NONE = 0,   /* none (prefill of a prefix) */
    TW_LOGITS_LAST = 1,   /* the last token's: n_vocab floats */
    TW_LOGITS_ALL = 2     /* every token's: n * n_vocab floats, row i for tokens[i] */
} tw_logits_mode;

/* Run tokens[0..n) of sequence seq through the model. pos: their positions (NULL: the
 * sequence's next positions, tw_kv_seq_pos_max + 1, + 2, ...). Their keys and values are
 * appended to the sequence's cells; token i attends to every cell of the sequence whose
 * position is <= pos[i] (so positions may be given in any order). logits: see mode.
 * Errors: TW_ERR_INVALID (token id outside the vocabulary, cache of another model, bad
 * sequence, negative position), TW_ERR_RUNTIME (cache full). On error the cache is as
 * before the call unless a chunk of max_batch tokens had already been stored. */
tw_status tw_llama_forward(tw_llama *m, tw_kv *kv, int32_t seq, const int32_t *tokens, const int32_t *pos, int32_t n,
                           tw_logits_mode mode, float *logits, tw_error *err);

/* The same for a batch of tokens of several sequences (llama.cpp's multi-sequence
 * batch): token i goes to sequence seqs[i] and attends to that sequence's cells at
 * positions <= pos[i] (earlier tokens of its run included). The tokens of one sequence
 * must be contiguous in the batch (a run; TW_ERR_INVALID otherwise). pos NULL: each
 * sequence continues from its tw_kv_seq_pos_max + 1. The projections run batched over
 * all n tokens, attention per run; with an F16 cache, runs whose sequences share their
 * first cells (forks of one prompt) read the shared keys and values once per layer.
 * Logits and errors as tw_llama_forward (which is this with every seqs[i] = seq). */
tw_status tw_llama_forward_multi(tw_llama *m, tw_kv *kv, const int32_t *seqs, const int32_t *tokens, const int32_t *pos,
                                 int32_t n, tw_logits_mode mode, float *logits, tw_error *err);

/* ---- scoring ------------------------------------------------------------------------ */

/* logprobs[c] = sum over the tokens t_j of choice c of log p(t_j | prompt, t_<j), the
 * natural-log softmax of the model's logits (double precision). The prompt is appended
 * to sequence seq (which may already hold a prefix: positions continue) and stays there;
 * the choices are evaluated in scratch sequences: every id from tmp_seq to the cache's
 * n_seq - 1 except seq, each a fork of seq cleared afterwards, as many choices per
 * multi-sequence forward (tw_llama_forward_multi, up to 256 tokens) as there are
 * scratch sequences — so a cache with more sequences scores many labels at once.
 * n_prompt must be >= 1 (the first choice token is predicted from the prompt's last
 * logits). A choice of length 0 scores 0.
 * per_token (may be NULL): choice c's j-th log-prob goes to per_token[c][j]. */
tw_status tw_llama_score_choices(tw_llama *m, tw_kv *kv, int32_t seq, int32_t tmp_seq, const int32_t *prompt,
                                 int32_t n_prompt, const int32_t *const *choices, const int32_t *choice_lens,
                                 int32_t n_choices, double *logprobs, double *const *per_token, tw_error *err);

/* ---- generation --------------------------------------------------------------------- */

typedef enum tw_stop_reason {
    TW_STOP_NONE = 0,
    TW_STOP_MAX_TOKENS = 1,   /* generated max_tokens tokens */
    TW_STOP_EOS = 2,          /* the model's EOS token (or another end-of-generation token) */
    TW_STOP_STRING = 3,       /* a stop string appeared in the text */
    TW_STOP_CONTEXT = 4,      /* the KV cache is full */
    TW_STOP_ABORTED = 5       /* the on_text callback returned false */
} tw_stop_reason;

const char *tw_stop_reason_name(tw_stop_reason r);   /* "max_tokens", "eos", "stop", ... */

struct tw_constraint;   /* grammar.h: constrained decoding */

typedef struct tw_gen_params {
    int32_t max_tokens;                /* default 64; 0: prefill only */
    const char *const *stops;          /* stop strings (borrowed), may span tokens */
    size_t n_stops;
    bool ignore_eos;                   /* keep going past EOS (benchmarks) */
    tw_sample_params sample;
    /* Streaming: called with each piece of text as it becomes final: text that could
     * still turn out to begin a stop string is held back, so the pieces concatenate to
     * exactly tw_gen_result.text. Return false to stop (TW_STOP_ABORTED). May be NULL. */
    bool (*on_text)(void *user, const char *text, size_t len);
    void *user;
    /* Constrained decoding (grammar.h; borrowed, may be NULL): reset at the start, then
     * each step only the tokens it allows can be sampled, and generation ends
     * (TW_STOP_EOS) once the value is complete and nothing may follow, or when one of
     * its end tokens is sampled; tw_constraint_complete tells a finished value from
     * one cut by max_tokens. */
    struct tw_constraint *constraint;
} tw_gen_params;

tw_gen_params tw_gen_default_params(void);

typedef struct tw_gen_result {
    tw_buf text;            /* generated text, cut before any stop string (owned) */
    tw_tok_ids ids;         /* generated token ids, the EOS / stop-completing one included */
    int32_t n_prompt;       /* tokens prefilled by this call */
    int32_t n_gen;          /* tokens generated (= ids.n) */
    double t_prefill;       /* seconds in the prompt forward */
    double t_decode;        /* seconds from the first to the last generated token */
    tw_stop_reason stop;
} tw_gen_result;

void tw_gen_result_free(tw_gen_result *r);

/* Prefill prompt[0..n_prompt) into sequence seq after what it holds, then sample up to
 * max_tokens tokens, each fed back. Text is decoded with tok as a continuation of the
 * prompt (a SentencePiece token's leading space is kept) with special tokens included,
 * so chat stop strings such as "<|im_end|>" match. res is overwritten (free with
 * tw_gen_result_free even on error). */
tw_status tw_generate(tw_llama *m, tw_kv *kv, int32_t seq, const tw_tokenizer *tok, const int32_t *prompt,
                      int32_t n_prompt, const tw_gen_params *p, tw_gen_result *res, tw_error *err);

#endif /* TW_MODEL_LLAMA_H */
