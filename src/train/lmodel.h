/* lmodel.h — the llama-family model (llama / qwen2 / qwen3) as a trainable function of its
 * LoRA parameters: forward and backward of one sequence, built from the ops of ops.h in
 * the order of src/model/llama.c, with LoRA on any subset of q,k,v,o,gate,up,down.
 *
 * The base weights stay frozen in whatever type the model file has (F32 / F16 / BF16 /
 * every quantized GGUF type: QLoRA when they are 4-bit) and are read in place from the
 * mapping of tw_model_files: the frozen linear layers dequantize them tile by tile
 * (tw_linear_backward), never whole. Only the norm weights and biases (vectors) are copied
 * to f32.
 *
 * The LoRA parameters live in ONE flat float array (the optimizer updates it in one call),
 * layer-major, then targets in the order q,k,v,o,gate,up,down (only those trained), each
 * A (rank, n_in) then B (n_out, rank) — the order of tw_lora's weights, so an adapter and
 * the flat array copy into each other directly. B rows of llama attn_q / attn_k are in the
 * order of the model's raw tensors (tw_lora_rows_for: llama.cpp's for a GGUF file); the
 * adapter writers convert.
 *
 * Every activation the backward needs is kept (no recomputation) in buffers sized for
 * max_T tokens at creation. One sequence at a time: batches are sums over sequences (the
 * caller weights the loss of each; see trainer.h).
 *
 * Deliberately not here: batching, the optimizer, data, files (trainer.c); training
 * anything but LoRA (embeddings, norms, biases are frozen); a KV cache (the evaluation
 * forward recomputes the whole sequence: it is used on short dev sequences only). */
#ifndef TW_TRAIN_LMODEL_H
#define TW_TRAIN_LMODEL_H

#include "tunewise.h"
#include "model/config.h"
#include "model/lora.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tw_lmodel_params {
    unsigned targets;      /* TW_LORA_* bit mask; default TW_LORA_Q | TW_LORA_V */
    int32_t rank;          /* default 8 */
    float alpha;           /* default 16: scale = alpha / rank (PEFT) */
    float dropout;         /* LoRA dropout on the adapter's input, [0, 1); default 0 */
    int64_t max_T;         /* longest sequence; default 256 */
    int n_threads;         /* <= 0: all */
} tw_lmodel_params;

tw_lmodel_params tw_lmodel_default_params(void);

typedef struct tw_lmodel tw_lmodel;

/* Reference mf's weights (mf must outlive the model) and allocate the LoRA parameters
 * (zero: call tw_lmodel_init_peft or tw_lmodel_from_lora), their gradients and the
 * activations for max_T tokens. Errors: unsupported architecture / tensor types, missing
 * tensors (named), TW_ERR_NOMEM with the byte count. */
tw_status tw_lmodel_new(tw_lmodel **out, const tw_model_files *mf, const tw_lmodel_params *p, tw_error *err);
void tw_lmodel_free(tw_lmodel *m);

const tw_model_config *tw_lmodel_config(const tw_lmodel *m);
int64_t tw_lmodel_max_T(const tw_lmodel *m);
/* Bytes allocated (parameters, gradients, activations, scratch). */
uint64_t tw_lmodel_bytes(const tw_lmodel *m);

/* The flat LoRA parameters and their gradients (n floats each). */
int64_t tw_lmodel_n_params(const tw_lmodel *m);
float *tw_lmodel_lora_params(tw_lmodel *m);
float *tw_lmodel_lora_grads(tw_lmodel *m);
void tw_lmodel_zero_grads(tw_lmodel *m);

/* PEFT's initialization (tw_lora_init_peft of an adapter of this shape with `seed`). */
tw_status tw_lmodel_init_peft(tw_lmodel *m, uint64_t seed, tw_error *err);
/* A new adapter (arch, head counts, alpha, rows of the model's raw tensors) holding the
 * current parameters (or `params`, a flat array of n_params floats, when non-NULL). */
tw_status tw_lmodel_to_lora(const tw_lmodel *m, const float *params, tw_lora **out, tw_error *err);
/* Load an adapter's A / B (its targets, rank and shapes must match; rows converted to
 * the model's order: l is modified by tw_lora_set_rows). */
tw_status tw_lmodel_from_lora(tw_lmodel *m, tw_lora *l, tw_error *err);

/* Forward of tokens (T <= max_T) at positions 0..T-1, keeping the activations.
 * dropout_seed: the LoRA dropout masks of this pass (layer l, target j use
 * tw_hash_mix(dropout_seed + 8 l + j)); ignored when dropout is 0 or !train (evaluation
 * has no dropout). When tg (T) and w (T) are given, returns
 * sum_t w_t (-log p(tg[t] | tokens[0..t])) (ops.h tw_output_loss), else 0. */
double tw_lmodel_forward(tw_lmodel *m, const int32_t *tokens, const int32_t *tg, const float *w, int64_t T,
                         uint64_t dropout_seed, bool train);
/* After tw_lmodel_forward(train = true) of the same sequence: the loss for tg / w (as the
 * forward would return it) and grads += its gradient with respect to every LoRA parameter. */
double tw_lmodel_backward(tw_lmodel *m, const int32_t *tg, const float *w);

#endif /* TW_TRAIN_LMODEL_H */
