/* metrics.h — the scoring kernels: classification (classify.c), JSON extraction
 * (extract.c), text tokenizers/normalizers (text.c) and generation metrics
 * (textgen.c). Pure functions: no I/O, no printing, no globals. Kernels take the
 * output pointer first. Every definition is written out in docs/metrics.md.
 *
 * Ownership: strings and json_t arguments are borrowed for the duration of the
 * call; anything returned through an out-pointer that is heap memory says so. */
#ifndef TW_SCORE_METRICS_H
#define TW_SCORE_METRICS_H

#include "base/base.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* ======================================================================== */
/* classification (classify.c)                                               */
/* ======================================================================== */

/* Exact-string lookup of labels -> index. Strings are borrowed (they must outlive
 * the index). Duplicate labels are an error (TW_ERR_INVALID). */
typedef struct tw_label_index {
    const char **sorted;   /* (k) labels in strcmp order */
    int32_t *idx;          /* (k) original index of sorted[j] */
    size_t k;
} tw_label_index;
tw_status tw_label_index_init(tw_label_index *ix, const char *const *labels, size_t k, tw_error *err);
/* Index of s in the label set, or -1 (also for s == NULL). Byte-exact match. */
int32_t tw_label_index_find(const tw_label_index *ix, const char *s);
void tw_label_index_free(tw_label_index *ix);

/* Confusion matrix, accumulated (+=):
 *   conf (k, k+1) row-major; row = gold class, column = predicted class, column k
 *   counts predictions outside the label set ("invalid").
 *   gold (n) in [0,k); pred (n) in [0,k] (k = invalid);
 *   w (n) optional multiplicities (bootstrap), NULL = every item once. */
void tw_cls_confusion(uint64_t *conf, const int32_t *gold, const int32_t *pred, const uint32_t *w,
                      size_t n, size_t k);

typedef struct tw_cls_summary {
    double accuracy;         /* trace / n (invalid predictions are wrong) */
    double micro_f1;         /* from summed tp/fp/fn; != accuracy when invalid predictions exist */
    double macro_f1;         /* unweighted mean F1 over the averaged classes (see below) */
    double weighted_f1;      /* support-weighted mean F1 */
    double macro_precision;
    double macro_recall;
    uint64_t n;              /* items */
    uint64_t n_invalid;      /* predictions outside the label set */
    size_t n_averaged;       /* classes in the macro average: support > 0 or predicted > 0 */
} tw_cls_summary;

/* Metrics from a confusion matrix conf (k, k+1) as above. per_class (k, 4), optional:
 * rows of precision, recall, f1, support. Zero denominators give 0 (scikit-learn's
 * zero_division=0). Values are NAN when n == 0. */
void tw_cls_metrics(tw_cls_summary *out, double *per_class, const uint64_t *conf, size_t k);

/* ======================================================================== */
/* extraction (extract.c)                                                    */
/* ======================================================================== */

/* One flattened leaf: path like "slots.artist" or "items[].name" (array elements
 * share the path "[]": lists compare as multisets), value = canonical compact JSON
 * of the scalar (numbers with integral values print as integers, so 1 == 1.0). */
typedef struct tw_json_pair {
    char *path;
    char *value;
} tw_json_pair;

/* Flatten v into (path, value) pairs sorted by (path, value). Null values and empty
 * objects/arrays yield no pair. *pairs is heap (free with tw_json_pairs_free); *n may
 * be 0 with *pairs NULL. */
tw_status tw_json_flatten(tw_json_pair **pairs, size_t *n, const json_t *v, tw_error *err);
void tw_json_pairs_free(tw_json_pair *pairs, size_t n);

/* Multiset intersection size of two sorted pair lists. pred_hit (np) / gold_hit (ng),
 * optional, are set to whether each pair was matched. */
size_t tw_json_pairs_match(bool *pred_hit, bool *gold_hit, const tw_json_pair *pred, size_t np,
                           const tw_json_pair *gold, size_t ng);

/* Semantic JSON equality: object key order irrelevant, array order relevant, numbers
 * compared by value (1 == 1.0). normalize: compare strings after tw_normalize_text()
 * (ASCII case-fold, punctuation dropped, whitespace collapsed). */
bool tw_json_equal(const json_t *a, const json_t *b, bool normalize);

/* Validate v against a JSON Schema subset: type (string or list), enum, const,
 * properties, required, additionalProperties (bool or schema), items (schema),
 * minItems, maxItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers),
 * minLength, maxLength (code points). Annotation keywords are ignored; other
 * keywords are unsupported (see tw_json_schema_unsupported) and ignored here.
 * why (optional, why_cap bytes) receives the first failure, e.g. "$.slots: missing
 * required property 'artist'". */
bool tw_json_schema_valid(const json_t *v, const json_t *schema, char *why, size_t why_cap);

/* List of "keyword at path" strings for schema keywords this validator ignores
 * (e.g. "pattern at #/properties/zip"). *out is a new JSON array (caller decrefs). */
tw_status tw_json_schema_unsupported(json_t **out, const json_t *schema, tw_error *err);

/* Per-item extraction statistics. Invalid JSON predictions count as no pairs. */
typedef struct tw_ext_item {
    bool json_valid;     /* prediction parses as JSON (any value, surrounding whitespace ok) */
    bool schema_valid;   /* json_valid && valid under the schema (== json_valid without one) */
    bool exact;          /* tw_json_equal(pred, gold, false) */
    bool normalized;     /* tw_json_equal(pred, gold, true) */
    double tp;           /* matched (path, value) pairs */
    double n_pred;       /* predicted pairs */
    double n_gold;       /* gold pairs */
} tw_ext_item;

/* Score one prediction (text, may be NULL = empty) against a parsed gold value.
 * schema may be NULL. */
tw_status tw_ext_item_score(tw_ext_item *out, const char *prediction, const json_t *gold,
                            const json_t *schema, tw_error *err);

/* Parse model output as JSON: any JSON value, surrounding whitespace allowed.
 * Returns a new reference or NULL when it is not JSON. */
json_t *tw_ext_parse(const char *text);

/* ======================================================================== */
/* tokenizers and normalizers (text.c)                                       */
/* ======================================================================== */
/* Each writes a string into out (out is cleared first); tokens are separated by
 * single spaces. Input is UTF-8; on return out->data is NUL-terminated when
 * out->len > 0 (it may be NULL when empty). */

/* sacreBLEU 2.x "13a" tokenizer (tokenizer_13a.py + tokenizer_re.py), applied to
 * s.rstrip() as BLEU._preprocess_segment does. */
tw_status tw_tok_13a(tw_buf *out, const char *s);
/* rouge-score's default tokenizer without stemming (tokenize.py): lowercase, runs of
 * [^a-z0-9] become separators. */
tw_status tw_tok_rouge(tw_buf *out, const char *s);
/* SQuAD v2.0 evaluate script normalize_answer: lowercase (ASCII), drop
 * string.punctuation, remove the articles a/an/the, collapse whitespace. */
tw_status tw_norm_squad(tw_buf *out, const char *s);
/* Python str.isspace() for one code point (what str.split() splits on). */
bool tw_py_isspace(uint32_t cp);

/* ======================================================================== */
/* generation metrics (textgen.c)                                            */
/* ======================================================================== */

/* BLEU sufficient statistics of one segment, sacreBLEU order:
 *   [0] hyp length, [1] closest reference length (ties -> shorter),
 *   [2..5] clipped n-gram matches n=1..4, [6..9] hypothesis n-gram totals n=1..4. */
#define TW_BLEU_NSTATS 10
/* chrF statistics: for n = 1..6 the triple (hyp n-grams, ref n-grams, matches) of the
 * best-scoring reference (sacreBLEU CHRF._compute_segment_statistics). */
#define TW_CHRF_NSTATS 18

tw_status tw_bleu_stats(double *stats, const char *hyp, const char *const *refs, size_t n_refs,
                        tw_error *err);
/* Corpus BLEU (0..100) from summed statistics: sacreBLEU BLEU.compute_bleu with its
 * defaults (smooth_method='exp', effective_order=False, max order 4). */
double tw_bleu_from_stats(const double *stats);
tw_status tw_chrf_stats(double *stats, const char *hyp, const char *const *refs, size_t n_refs,
                        tw_error *err);
/* chrF (0..100) from summed statistics: sacreBLEU CHRF defaults (char order 6, word
 * order 0, beta 2, whitespace excluded, eps_smoothing=False). */
double tw_chrf_from_stats(const double *stats);

/* Corpus scores over n segments; refs is (n, n_refs) row-major (n_refs references
 * per segment, as sacreBLEU's reference streams transposed). */
tw_status tw_bleu_corpus(double *bleu, const char *const *hyps, const char *const *refs, size_t n,
                         size_t n_refs, tw_error *err);
tw_status tw_chrf_corpus(double *chrf, const char *const *hyps, const char *const *refs, size_t n,
                         size_t n_refs, tw_error *err);

/* ROUGE-1, ROUGE-2, ROUGE-L F-measures (rouge-score, no stemming), each the maximum
 * over the references (rouge-score score_multi). out[3]. */
tw_status tw_rouge(double *out, const char *hyp, const char *const *refs, size_t n_refs,
                   tw_error *err);
/* SQuAD token F1 (max over references); both empty after normalization -> 1. */
tw_status tw_token_f1(double *f1, const char *hyp, const char *const *refs, size_t n_refs,
                      tw_error *err);

/* All per-item generation statistics at once (NULL hyp = ""). n_refs >= 1. */
typedef struct tw_gen_item {
    double exact;        /* 1 if hyp is byte-identical to some reference */
    double normalized;   /* 1 if equal to some reference after tw_norm_squad (SQuAD EM) */
    double token_f1;
    double rouge[3];     /* rouge1, rouge2, rougeL F-measure */
    double bleu[TW_BLEU_NSTATS];
    double chrf[TW_CHRF_NSTATS];
} tw_gen_item;
tw_status tw_gen_item_score(tw_gen_item *out, const char *hyp, const char *const *refs,
                            size_t n_refs, tw_error *err);

#endif /* TW_SCORE_METRICS_H */
