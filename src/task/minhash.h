/* minhash.h — near-duplicate search between two sets of short texts: shingle sets of the
 * normalized text (tw_normalize_text), MinHash signatures, LSH banding to find candidate
 * pairs, and an exact Jaccard check of every candidate (so a reported match is never a
 * MinHash false positive; only a miss is probabilistic, see docs/audit.md).
 * Deliberately not here: what the matches mean (audit.c) or within-set clustering. */
#ifndef TW_TASK_MINHASH_H
#define TW_TASK_MINHASH_H

#include "tunewise.h"
#include "base/base.h"

typedef enum tw_shingle_kind {
    TW_SHINGLE_WORD = 0,   /* k consecutive words of the normalized text */
    TW_SHINGLE_CHAR = 1    /* k consecutive code points of the normalized text (spaces included) */
} tw_shingle_kind;
const char *tw_shingle_kind_str(tw_shingle_kind k);   /* "word" / "char" */

typedef struct tw_minhash_params {
    tw_shingle_kind shingle;   /* default TW_SHINGLE_WORD */
    unsigned k;                /* shingle length in words / code points; default 1 */
    unsigned bands;            /* LSH bands; default 32 */
    unsigned rows;             /* signature rows per band; default 4 (128 hash functions) */
    double threshold;          /* exact Jaccard a match must reach, in (0, 1]; default 0.8 */
    uint64_t seed;             /* seeds the hash functions; default 1 */
} tw_minhash_params;
tw_minhash_params tw_minhash_default_params(void);
/* TW_ERR_INVALID with a message naming the bad field (k 1..32, bands*rows 1..1024,
 * threshold in (0, 1]). */
tw_status tw_minhash_params_check(const tw_minhash_params *p, tw_error *err);

/* Shingle set of a text: normalize, cut into shingles, hash each (tw_hash64), sort, drop
 * repeats. A text shorter than k units gives one shingle (itself); an empty normalized
 * text gives the empty set (*n = 0, *out = NULL). *out is heap (caller frees). */
tw_status tw_shingle_set(const char *text, size_t len, tw_shingle_kind kind, unsigned k,
                         uint64_t **out, size_t *n, tw_error *err);
/* |a ∩ b| / |a ∪ b| of two sorted, repeat-free arrays; 0 when both are empty. */
double tw_jaccard_sorted(const uint64_t *a, size_t na, const uint64_t *b, size_t nb);

/* An index over n texts (the "reference" side, e.g. train). Texts are borrowed during the
 * build only. Texts whose shingle set is empty are not indexed (they never match). */
typedef struct tw_nd_index tw_nd_index;
tw_status tw_nd_index_build(tw_nd_index **out, const char *const *texts, size_t n,
                            const tw_minhash_params *p, tw_error *err);

typedef struct tw_nd_match {
    size_t index;        /* best indexed text, SIZE_MAX when none reaches the threshold */
    double jaccard;      /* its exact Jaccard similarity (0 when none) */
    double estimate;     /* MinHash estimate: share of equal signature slots */
    size_t candidates;   /* LSH candidates this query verified */
} tw_nd_match;

/* The indexed text most similar to `text` among the LSH candidates whose exact Jaccard is
 * >= threshold (ties: lowest index). Uses scratch space inside the index: one query at a
 * time per index (not thread-safe). */
tw_status tw_nd_index_query(tw_nd_index *ix, const char *text, size_t len, tw_nd_match *m,
                            tw_error *err);
/* Candidate pairs verified by all queries so far (for benchmarks and the report). */
size_t tw_nd_index_candidates(const tw_nd_index *ix);
void tw_nd_index_free(tw_nd_index *ix);   /* NULL ok */

/* Probability that LSH proposes a pair of Jaccard similarity s as a candidate:
 * 1 - (1 - s^rows)^bands. Documented in the report so users see the recall. */
double tw_lsh_candidate_prob(double s, unsigned bands, unsigned rows);

#endif /* TW_TASK_MINHASH_H */
