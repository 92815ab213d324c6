/* score.h — the scoring entry points used by the CLI and the evaluation runner: score
 * one system's predictions into a JSON report (headline metrics with bootstrap CIs,
 * per-class / per-field breakdowns, slices, latency and token summaries, power),
 * compare two systems on the same items (paired bootstrap + exact McNemar), and
 * render either report as a compact text table.
 *
 * The kernels underneath are in metrics.h (metric definitions) and stats.h
 * (bootstrap, tests, power); docs/metrics.md defines every number in the report.
 * The library never prints: tw_score_format_table() fills a buffer the CLI writes. */
#ifndef TW_SCORE_SCORE_H
#define TW_SCORE_SCORE_H

#include "score/metrics.h"
#include "score/stats.h"

#include <jansson.h>

/* One evaluated item. All pointers are borrowed for the duration of the call.
 *   classify: reference = gold label, prediction = predicted label (exact string match
 *             against the label set; anything else counts as an invalid prediction);
 *   extract:  reference = gold JSON text, prediction = model output text;
 *   generate: references = refs[0..n_refs) when n_refs > 0, else {reference}.
 * prediction NULL means "no output" (scored as the empty string). slice NULL: the
 * item belongs to no slice (it still counts in the overall metrics). */
typedef struct tw_score_item {
    const char *id;                 /* optional; used in messages and to pair items */
    const char *reference;
    const char *const *refs;        /* generate: optional multiple references */
    size_t n_refs;
    const char *prediction;
    const char *slice;
    double latency_ms;              /* NAN if unknown */
    double tokens_in, tokens_out;   /* NAN if unknown */
} tw_score_item;

typedef struct tw_score_params {
    int task_type;                  /* 0 classify, 1 extract, 2 generate (== tw_task_type) */
    const char *const *labels;      /* classify: label set (borrowed); n_labels == 0: the
                                       sorted distinct references */
    size_t n_labels;
    const json_t *schema;           /* extract: optional JSON Schema (borrowed) */
    const char *primary;            /* primary metric; NULL = tw_score_default_primary() */
    int bootstrap;                  /* bootstrap replicates B; 0 = no CIs (default 1000) */
    uint64_t seed;                  /* bootstrap seed (default 1) */
    double ci_level;                /* default 0.95 */
    double alpha, power;            /* for the MDE figures (default 0.05, 0.8) */
} tw_score_params;

tw_score_params tw_score_default_params(void);

/* Metric names reported for a task type, in report order (static storage); *n is set.
 * Unknown task type: NULL and *n = 0. Values are in [0,1] except bleu and chrf, which
 * are on sacreBLEU's 0..100 scale. */
const char *const *tw_score_metric_names(int task_type, size_t *n);
/* "accuracy" (classify), "field_f1" (extract), "rougeL" (generate); NULL if unknown. */
const char *tw_score_default_primary(int task_type);

/* Score n items. On success *report is a new JSON object (caller json_decref()s):
 *   {"task","n","primary","ci":{"method","level","replicates","seed"},
 *    "metrics":{name:{"value":x,"ci":[lo,hi]|null}},
 *    classify: "labels", "per_class":{label:{precision,recall,f1,support}},
 *              "confusion":{"labels","columns"(labels + "(invalid)"),"matrix"},
 *              "invalid":{"count","top":[{"prediction","count"}]}
 *    extract:  "per_field":{path:{precision,recall,f1,support}}, "schema_unsupported"
 *    "slices":{name:{"n","metrics",("per_class")}}        when any item has a slice
 *    "latency_ms":{"n","mean","p50","p90","p99"}         when any latency is known
 *    "tokens":{"n_in","in_total","in_mean","n_out","out_total","out_mean"}  when known
 *    "power":{"metric","baseline","alpha","power","mde_independent"}  (accuracy or
 *              exact_match: smallest improvement an equally sized independent
 *              evaluation would detect)}
 * Undefined numbers (e.g. an empty set) are JSON null. Errors: TW_ERR_INVALID for bad
 * items/params (message names the item), TW_ERR_NOMEM. */
tw_status tw_score(const tw_score_item *items, size_t n, const tw_score_params *p, json_t **report,
                   tw_error *err);

/* Paired comparison of system A (a[i].prediction) and system B (b[i].prediction) on
 * the same n items (paired by position; ids, when both given, must agree; references
 * and slices are taken from a). *report (new object, caller decrefs):
 *   {"task","n","primary","ci":{...},
 *    "a":{metric:{"value","ci"}}, "b":{...},
 *    "diff":{metric:{"a","b","delta"(b - a),"ci":[lo,hi],"p"}}   paired bootstrap
 *    "mcnemar":{"metric","a_only","b_only","both","neither","p"} on accuracy (classify)
 *              or exact_match (extract, generate)
 *    "power":{"discordance","mde_paired","mde_independent","alpha","power"}
 *    "slices":{name:{"n","a","b","delta","ci","p"}}   primary metric per slice
 *    "latency_ms":{"a":{...},"b":{...}}, "tokens":{"a":{...},"b":{...}} when known} */
tw_status tw_score_compare(const tw_score_item *a, const tw_score_item *b, size_t n,
                           const tw_score_params *p, json_t **report, tw_error *err);

/* Append a compact human-readable table of a tw_score() or tw_score_compare() report
 * to out. Returns TW_ERR_INVALID for something that is not such a report,
 * TW_ERR_NOMEM on allocation failure. */
tw_status tw_score_format_table(const json_t *report, tw_buf *out);

#endif /* TW_SCORE_SCORE_H */
