/* strindex.c — a string → size_t index (open addressing, linear probing, load <= 1/2),
 * used to join rows by id and to find duplicate ids. Keys are borrowed, not copied. */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

static size_t slot_of(const tw_str_index *ix, const char *key)
{
    size_t h = (size_t)tw_hash64(key, strlen(key), 0) & (ix->cap - 1);
    while (ix->keys[h] && strcmp(ix->keys[h], key) != 0) h = (h + 1) & (ix->cap - 1);
    return h;
}

static tw_status grow(tw_str_index *ix, tw_error *err)
{
    size_t nc = ix->cap ? ix->cap * 2 : 64;
    tw_str_index bigger = {.cap = nc};
    bigger.keys = tw_calloc(nc, sizeof *bigger.keys, err);
    bigger.vals = tw_calloc(nc, sizeof *bigger.vals, err);
    if (!bigger.keys || !bigger.vals) {
        tw_str_index_free(&bigger);
        return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->keys[i]) continue;
        size_t h = slot_of(&bigger, ix->keys[i]);
        bigger.keys[h] = ix->keys[i];
        bigger.vals[h] = ix->vals[i];
    }
    bigger.n = ix->n;
    tw_str_index_free(ix);
    *ix = bigger;
    return TW_OK;
}

tw_status tw_str_index_put(tw_str_index *ix, const char *key, size_t val, bool *found, size_t *val_out,
                           tw_error *err)
{
    if ((ix->n + 1) * 2 > ix->cap) {
        tw_status st = grow(ix, err);
        if (st) return st;
    }
    size_t h = slot_of(ix, key);
    if (ix->keys[h]) {
        if (found) *found = true;
        if (val_out) *val_out = ix->vals[h];
        return TW_OK;
    }
    ix->keys[h] = key;
    ix->vals[h] = val;
    ix->n++;
    if (found) *found = false;
    return TW_OK;
}

bool tw_str_index_get(const tw_str_index *ix, const char *key, size_t *val)
{
    if (!ix->cap) return false;
    size_t h = slot_of(ix, key);
    if (!ix->keys[h]) return false;
    if (val) *val = ix->vals[h];
    return true;
}

void tw_str_index_free(tw_str_index *ix)
{
    free(ix->keys);
    free(ix->vals);
    memset(ix, 0, sizeof *ix);
}
