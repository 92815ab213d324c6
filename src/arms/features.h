/* features.h — hashed n-gram featurization for the classic arm: lowercase the text,
 * cut word 1..N-grams and char_wb M..N-grams (scikit-learn's "char_wb": n-grams of
 * code points inside whitespace-separated words padded with one space each side),
 * and hash each n-gram into one of 2^hash_bits buckets.
 *
 * What it gives back is raw term counts per bucket for one text; TF-IDF weighting,
 * the vocabulary (which buckets were seen in training) and normalisation live in
 * classic.c. Deliberately not here: any model, any I/O.
 *
 * Bucket layout: the word block takes buckets [0, 2^(bits-1)) and the char block
 * [2^(bits-1), 2^bits), so the two blocks never collide with each other and can be
 * L2-normalised separately (like a FeatureUnion of two TfidfVectorizers).
 *
 * The hash function is part of the saved-model format (TW_FEAT_HASH_VERSION):
 * changing anything that moves an n-gram to another bucket must bump it.
 */
#ifndef TW_ARMS_FEATURES_H
#define TW_ARMS_FEATURES_H

#include "tunewise.h"

#include <stddef.h>
#include <stdint.h>

#define TW_FEAT_HASH_VERSION 1u
#define TW_FEAT_MIN_BITS 8
#define TW_FEAT_MAX_BITS 24
#define TW_FEAT_MAX_NGRAM 8

typedef struct tw_feat_config {
    int word_ngram_max;   /* 0 = no word features; else word 1..word_ngram_max-grams */
    int word_min_len;     /* shortest token kept, in code points (scikit-learn: 2) */
    int char_ngram_min;   /* char_wb n-gram range; char_ngram_max = 0 disables them */
    int char_ngram_max;
    int hash_bits;        /* total buckets 2^hash_bits, TW_FEAT_MIN_BITS..TW_FEAT_MAX_BITS */
} tw_feat_config;

/* Validate a config; on error err says which field is wrong. */
tw_status tw_feat_config_check(const tw_feat_config *cfg, tw_error *err);

/* Reusable work memory for tw_feat_extract (one per thread). Zero-initialise it
 * ({0}), reuse it for any number of texts, then tw_feat_scratch_free. */
typedef struct tw_feat_scratch {
    uint32_t *cps;      size_t cps_cap;    /* lowercased code points of the text */
    uint64_t *toks;     size_t toks_cap;   /* per-token hashes */
    uint32_t *keys;     size_t keys_cap;   /* emitted buckets, in emission order */
    /* dedup table: open addressing, capacity power of two, slot valid when stamp matches */
    uint32_t *tab_key, *tab_idx, *tab_stamp;   /* key, its index in out_*, generation */
    size_t tab_cap;
    uint32_t stamp;
    /* result of the last tw_feat_extract: n unique buckets with their counts */
    uint32_t *out_bucket, *out_count;
    size_t out_cap, n;
} tw_feat_scratch;

/* Featurize one NUL-terminated UTF-8 text (len bytes; invalid bytes count as
 * U+FFFD). On TW_OK, s->out_bucket[0..s->n) / s->out_count[0..s->n) hold the
 * distinct buckets in first-occurrence order with their raw counts (the order is
 * deterministic). Only fails on allocation failure. */
tw_status tw_feat_extract(const tw_feat_config *cfg, const char *text, size_t len,
                          tw_feat_scratch *s, tw_error *err);
void tw_feat_scratch_free(tw_feat_scratch *s);

/* Block of a bucket: 0 = word n-gram, 1 = char n-gram. */
static inline int tw_feat_block(const tw_feat_config *cfg, uint32_t bucket)
{
    return (int)(bucket >> (cfg->hash_bits - 1));
}

/* Simple lowercase mapping of one code point: ASCII, Latin-1, Latin Extended-A,
 * Greek and Cyrillic capitals; everything else is returned unchanged. */
uint32_t tw_feat_lower(uint32_t cp);

/* 64-bit checksum of a buffer (word-wise multiply/xorshift; stable, little-endian
 * reads). Used by the model file format. */
uint64_t tw_feat_checksum(const void *data, size_t n);

#endif /* TW_ARMS_FEATURES_H */
