/* kv.h — the key/value cache of the llama-family forward pass (llama.c).
 *
 * Design (docs/inference.md, "KV cache"):
 *  - a fixed pool of n_cells cells, allocated once. Cell c holds, for every layer l, the
 *    post-RoPE key row K[l][c] and the value row V[l][c] (n_head_kv * head_dim elements
 *    each, f32 or f16) and the position the token had;
 *  - a sequence is an ordered list of cell ids (the order tokens were added). Up to n_seq
 *    sequences share the pool;
 *  - cells are immutable once written: new tokens always get fresh cells. So forking a
 *    sequence shares its cells (a reference count per cell, no data copied), and a
 *    cell returns to the free list when the last sequence holding it drops it;
 *  - attention masking is by position, not by order: a token at position p attends to
 *    every cell of its sequence whose position is <= p (llama.cpp's causal rule), so
 *    explicit positions work, duplicates included.
 *
 * Deliberately not here: the arithmetic (llama.c; a forward call may carry tokens of
 * several sequences, tw_llama_forward_multi), sliding windows, quantized (q8_0) caches, defragmentation
 * (cells are addressed by id, so fragmentation costs nothing but locality). */
#ifndef TW_MODEL_KV_H
#define TW_MODEL_KV_H

#include "tunewise.h"
#include "model/config.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum tw_kv_type { TW_KV_F32 = 0, TW_KV_F16 = 1 } tw_kv_type;

typedef struct tw_kv_params {
    int32_t n_cells;     /* tokens the pool holds, all sequences together; default 2048 */
    int32_t n_seq;       /* sequences (ids 0 .. n_seq-1); default 4 */
    tw_kv_type type;     /* default TW_KV_F16 (as llama.cpp) */
} tw_kv_params;

tw_kv_params tw_kv_default_params(void);

typedef struct tw_kv tw_kv;

/* A cache for models of this config (n_layer, n_head_kv, head_dim are what matter).
 * One allocation of 2 * n_layer * n_cells * n_head_kv * head_dim elements plus the
 * bookkeeping. Errors: TW_ERR_INVALID (sizes < 1), TW_ERR_NOMEM. */
tw_status tw_kv_new(tw_kv **out, const tw_model_config *cfg, const tw_kv_params *p, tw_error *err);
void tw_kv_free(tw_kv *kv);

int32_t tw_kv_n_cells(const tw_kv *kv);
int32_t tw_kv_n_seq(const tw_kv *kv);
tw_kv_type tw_kv_type_of(const tw_kv *kv);
int32_t tw_kv_cells_free(const tw_kv *kv);   /* cells no sequence holds */
uint64_t tw_kv_bytes(const tw_kv *kv);       /* size of the K/V storage */

/* Tokens held by a sequence (0 for an empty or invalid one). */
int32_t tw_kv_seq_len(const tw_kv *kv, int32_t seq);
/* Largest position in a sequence, -1 when empty: the next token naturally goes at
 * tw_kv_seq_pos_max + 1. */
int32_t tw_kv_seq_pos_max(const tw_kv *kv, int32_t seq);

/* Drop every cell of seq (shared cells stay with the other sequences). */
void tw_kv_seq_clear(tw_kv *kv, int32_t seq);
/* Drop the cells of seq whose position is >= pos (pos <= 0: everything). */
void tw_kv_seq_truncate(tw_kv *kv, int32_t seq, int32_t pos);
/* Drop the last n cells appended to seq (all of them when n >= its length). */
void tw_kv_seq_drop_last(tw_kv *kv, int32_t seq, int32_t n);
/* dst becomes a copy of src that shares src's cells (dst's old cells are dropped first).
 * No K/V data is copied; later tokens of either sequence go to fresh cells.
 * Errors: TW_ERR_INVALID (bad ids, dst == src), TW_ERR_NOMEM. */
tw_status tw_kv_seq_fork(tw_kv *kv, int32_t dst, int32_t src, tw_error *err);

/* ---- for the engine (llama.c) and tests ------------------------------------------ */

/* Take n fresh cells at positions pos[0..n) (each >= 0) and append them to seq; their
 * ids go to cells[0..n). All or nothing: TW_ERR_INVALID (bad seq, negative position) or
 * TW_ERR_RUNTIME ("KV cache full: N cells free, M needed") leave the cache unchanged. */
tw_status tw_kv_seq_append(tw_kv *kv, int32_t seq, const int32_t *pos, int32_t n, int32_t *cells, tw_error *err);
/* The cell ids of seq in the order they were appended (borrowed until the next change
 * of this sequence); *n gets their count. */
const int32_t *tw_kv_seq_cells(const tw_kv *kv, int32_t seq, int32_t *n);
/* Position of a cell (-1 for a free cell). */
int32_t tw_kv_cell_pos(const tw_kv *kv, int32_t cell);
/* Positions of all cells, indexed by cell id (-1 for free cells); borrowed, updated in
 * place as the cache changes. For the attention loop, which reads it per cell. */
const int32_t *tw_kv_cell_positions(const tw_kv *kv);
/* Number of sequences holding a cell (0: free). */
int32_t tw_kv_cell_refs(const tw_kv *kv, int32_t cell);
/* Key / value row of a cell in a layer: n_head_kv * head_dim elements of the cache's
 * type (float or uint16_t fp16 bits). */
void *tw_kv_k(tw_kv *kv, int32_t layer, int32_t cell);
void *tw_kv_v(tw_kv *kv, int32_t layer, int32_t cell);
const void *tw_kv_k_const(const tw_kv *kv, int32_t layer, int32_t cell);
const void *tw_kv_v_const(const tw_kv *kv, int32_t layer, int32_t cell);
/* Does this cache fit models of this config? */
bool tw_kv_matches(const tw_kv *kv, const tw_model_config *cfg);

#endif /* TW_MODEL_KV_H */
