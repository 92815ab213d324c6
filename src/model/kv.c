/* kv.c — the KV cache: a pool of immutable cells shared by reference between sequences
 * (kv.h has the design). All memory is allocated in tw_kv_new; nothing here allocates
 * afterwards, so appending tokens cannot fail for lack of memory.
 * Deliberately not here: any arithmetic on keys and values (llama.c). */
#include "model/kv.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

struct tw_kv {
    int32_t n_layer, row;        /* row = n_head_kv * head_dim elements */
    int32_t n_cells, n_seq;
    tw_kv_type type;
    size_t esize;                /* 4 or 2 */
    unsigned char *k, *v;        /* [n_layer][n_cells][row] each */
    int32_t *pos;                /* [n_cells]; -1 when free */
    int32_t *refs;               /* [n_cells] */
    int32_t *free_list;          /* stack of free cell ids */
    int32_t n_free;
    int32_t *seq_cells;          /* [n_seq][n_cells] */
    int32_t *seq_len;            /* [n_seq] */
    int32_t *seq_pos_max;        /* [n_seq] */
};

tw_kv_params tw_kv_default_params(void)
{
    return (tw_kv_params){.n_cells = 2048, .n_seq = 4, .type = TW_KV_F16};
}

void tw_kv_free(tw_kv *kv)
{
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->pos);
    free(kv->refs);
    free(kv->free_list);
    free(kv->seq_cells);
    free(kv->seq_len);
    free(kv->seq_pos_max);
    free(kv);
}

tw_status tw_kv_new(tw_kv **out, const tw_model_config *cfg, const tw_kv_params *p, tw_error *err)
{
    *out = NULL;
    tw_kv_params d = p ? *p : tw_kv_default_params();
    if (d.n_cells < 1 || d.n_seq < 1 || d.n_seq > 4096)
        return tw_error_set(err, TW_ERR_INVALID, "KV cache: %d cells and %d sequences (need >= 1 cell and 1..4096 sequences)",
                            d.n_cells, d.n_seq);
    if (d.type != TW_KV_F32 && d.type != TW_KV_F16)
        return tw_error_set(err, TW_ERR_INVALID, "KV cache: unknown element type %d", (int)d.type);
    if (cfg->n_layer < 1 || cfg->n_head_kv < 1 || cfg->head_dim < 1)
        return tw_error_set(err, TW_ERR_INVALID, "KV cache: invalid model config");
    tw_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    kv->n_layer = cfg->n_layer;
    kv->row = cfg->n_head_kv * cfg->head_dim;
    kv->n_cells = d.n_cells;
    kv->n_seq = d.n_seq;
    kv->type = d.type;
    kv->esize = d.type == TW_KV_F32 ? 4 : 2;
    uint64_t bytes = (uint64_t)kv->n_layer * (uint64_t)kv->n_cells * (uint64_t)kv->row * kv->esize;
    if (bytes > (uint64_t)SIZE_MAX / 2) {
        free(kv);
        return tw_error_set(err, TW_ERR_NOMEM, "KV cache of %llu bytes is too large", (unsigned long long)(2 * bytes));
    }
    /* calloc: unwritten cells read as zeros, never as garbage */
    kv->k = calloc(1, (size_t)bytes);
    kv->v = calloc(1, (size_t)bytes);
    kv->pos = malloc((size_t)kv->n_cells * sizeof *kv->pos);
    kv->refs = calloc((size_t)kv->n_cells, sizeof *kv->refs);
    kv->free_list = malloc((size_t)kv->n_cells * sizeof *kv->free_list);
    kv->seq_cells = malloc((size_t)kv->n_seq * (size_t)kv->n_cells * sizeof *kv->seq_cells);
    kv->seq_len = calloc((size_t)kv->n_seq, sizeof *kv->seq_len);
    kv->seq_pos_max = malloc((size_t)kv->n_seq * sizeof *kv->seq_pos_max);
    if (!kv->k || !kv->v || !kv->pos || !kv->refs || !kv->free_list || !kv->seq_cells || !kv->seq_len || !kv->seq_pos_max) {
        tw_kv_free(kv);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory allocating a KV cache of %llu bytes (%d cells)",
                            (unsigned long long)(2 * bytes), d.n_cells);
    }
    /* free stack: lowest ids on top, so a fresh cache fills cells 0, 1, 2, ... */
    for (int32_t i = 0; i < kv->n_cells; i++) {
        kv->pos[i] = -1;
        kv->free_list[i] = kv->n_cells - 1 - i;
    }
    kv->n_free = kv->n_cells;
    for (int32_t s = 0; s < kv->n_seq; s++) kv->seq_pos_max[s] = -1;
    *out = kv;
    return TW_OK;
}

int32_t tw_kv_n_cells(const tw_kv *kv) { return kv->n_cells; }
int32_t tw_kv_n_seq(const tw_kv *kv) { return kv->n_seq; }
tw_kv_type tw_kv_type_of(const tw_kv *kv) { return kv->type; }
int32_t tw_kv_cells_free(const tw_kv *kv) { return kv->n_free; }
uint64_t tw_kv_bytes(const tw_kv *kv)
{
    return 2ull * (uint64_t)kv->n_layer * (uint64_t)kv->n_cells * (uint64_t)kv->row * kv->esize;
}

static bool seq_ok(const tw_kv *kv, int32_t seq) { return seq >= 0 && seq < kv->n_seq; }

int32_t tw_kv_seq_len(const tw_kv *kv, int32_t seq) { return seq_ok(kv, seq) ? kv->seq_len[seq] : 0; }
int32_t tw_kv_seq_pos_max(const tw_kv *kv, int32_t seq) { return seq_ok(kv, seq) ? kv->seq_pos_max[seq] : -1; }

static void cell_release(tw_kv *kv, int32_t c)
{
    if (--kv->refs[c] == 0) {
        kv->pos[c] = -1;
        kv->free_list[kv->n_free++] = c;
    }
}

void tw_kv_seq_clear(tw_kv *kv, int32_t seq)
{
    if (!seq_ok(kv, seq)) return;
    int32_t *cells = kv->seq_cells + (size_t)seq * (size_t)kv->n_cells;
    /* release in reverse so the free stack hands cells back in their original order */
    for (int32_t i = kv->seq_len[seq] - 1; i >= 0; i--) cell_release(kv, cells[i]);
    kv->seq_len[seq] = 0;
    kv->seq_pos_max[seq] = -1;
}

void tw_kv_seq_truncate(tw_kv *kv, int32_t seq, int32_t pos)
{
    if (!seq_ok(kv, seq)) return;
    if (pos <= 0) {
        tw_kv_seq_clear(kv, seq);
        return;
    }
    int32_t *cells = kv->seq_cells + (size_t)seq * (size_t)kv->n_cells;
    int32_t n = kv->seq_len[seq], keep = 0, pmax = -1;
    for (int32_t i = 0; i < n; i++) {
        int32_t c = cells[i];
        if (kv->pos[c] >= pos) {
            cell_release(kv, c);
        } else {
            cells[keep++] = c;
            if (kv->pos[c] > pmax) pmax = kv->pos[c];
        }
    }
    kv->seq_len[seq] = keep;
    kv->seq_pos_max[seq] = pmax;
}

void tw_kv_seq_drop_last(tw_kv *kv, int32_t seq, int32_t n)
{
    if (!seq_ok(kv, seq) || n <= 0) return;
    int32_t *cells = kv->seq_cells + (size_t)seq * (size_t)kv->n_cells;
    int32_t len = kv->seq_len[seq], keep = n < len ? len - n : 0, pmax = -1;
    for (int32_t i = len - 1; i >= keep; i--) cell_release(kv, cells[i]);
    for (int32_t i = 0; i < keep; i++)
        if (kv->pos[cells[i]] > pmax) pmax = kv->pos[cells[i]];
    kv->seq_len[seq] = keep;
    kv->seq_pos_max[seq] = pmax;
}

tw_status tw_kv_seq_fork(tw_kv *kv, int32_t dst, int32_t src, tw_error *err)
{
    if (!seq_ok(kv, dst) || !seq_ok(kv, src) || dst == src)
        return tw_error_set(err, TW_ERR_INVALID, "KV cache: cannot fork sequence %d into %d (ids 0..%d, distinct)", src, dst,
                            kv->n_seq - 1);
    tw_kv_seq_clear(kv, dst);
    int32_t n = kv->seq_len[src];
    const int32_t *s = kv->seq_cells + (size_t)src * (size_t)kv->n_cells;
    int32_t *d = kv->seq_cells + (size_t)dst * (size_t)kv->n_cells;
    memcpy(d, s, (size_t)n * sizeof *d);
    for (int32_t i = 0; i < n; i++) kv->refs[s[i]]++;
    kv->seq_len[dst] = n;
    kv->seq_pos_max[dst] = kv->seq_pos_max[src];
    return TW_OK;
}

tw_status tw_kv_seq_append(tw_kv *kv, int32_t seq, const int32_t *pos, int32_t n, int32_t *cells, tw_error *err)
{
    if (!seq_ok(kv, seq))
        return tw_error_set(err, TW_ERR_INVALID, "KV cache: sequence id %d not in 0..%d", seq, kv->n_seq - 1);
    if (n < 0) return tw_error_set(err, TW_ERR_INVALID, "KV cache: negative token count %d", n);
    for (int32_t i = 0; i < n; i++)
        if (pos[i] < 0) return tw_error_set(err, TW_ERR_INVALID, "KV cache: token %d has negative position %d", i, pos[i]);
    if (n > kv->n_free)
        return tw_error_set(err, TW_ERR_RUNTIME, "KV cache full: %d of %d cells free, %d needed (use a larger context)",
                            kv->n_free, kv->n_cells, n);
    int32_t *sc = kv->seq_cells + (size_t)seq * (size_t)kv->n_cells;
    for (int32_t i = 0; i < n; i++) {
        int32_t c = kv->free_list[--kv->n_free];
        kv->refs[c] = 1;
        kv->pos[c] = pos[i];
        sc[kv->seq_len[seq]++] = c;
        if (pos[i] > kv->seq_pos_max[seq]) kv->seq_pos_max[seq] = pos[i];
        cells[i] = c;
    }
    return TW_OK;
}

const int32_t *tw_kv_seq_cells(const tw_kv *kv, int32_t seq, int32_t *n)
{
    if (!seq_ok(kv, seq)) {
        *n = 0;
        return NULL;
    }
    *n = kv->seq_len[seq];
    return kv->seq_cells + (size_t)seq * (size_t)kv->n_cells;
}

int32_t tw_kv_cell_pos(const tw_kv *kv, int32_t cell) { return cell >= 0 && cell < kv->n_cells ? kv->pos[cell] : -1; }
const int32_t *tw_kv_cell_positions(const tw_kv *kv) { return kv->pos; }
int32_t tw_kv_cell_refs(const tw_kv *kv, int32_t cell) { return cell >= 0 && cell < kv->n_cells ? kv->refs[cell] : 0; }

static size_t row_off(const tw_kv *kv, int32_t layer, int32_t cell)
{
    return ((size_t)layer * (size_t)kv->n_cells + (size_t)cell) * (size_t)kv->row * kv->esize;
}

void *tw_kv_k(tw_kv *kv, int32_t layer, int32_t cell) { return kv->k + row_off(kv, layer, cell); }
void *tw_kv_v(tw_kv *kv, int32_t layer, int32_t cell) { return kv->v + row_off(kv, layer, cell); }
const void *tw_kv_k_const(const tw_kv *kv, int32_t layer, int32_t cell) { return kv->k + row_off(kv, layer, cell); }
const void *tw_kv_v_const(const tw_kv *kv, int32_t layer, int32_t cell) { return kv->v + row_off(kv, layer, cell); }

bool tw_kv_matches(const tw_kv *kv, const tw_model_config *cfg)
{
    return kv->n_layer == cfg->n_layer && kv->row == cfg->n_head_kv * cfg->head_dim;
}
