/* audit.h — `tunewise audit`: what is in the user's labeled data and whether it is ready
 * for an evaluation, for k-shot prompting and for fine-tuning.
 *
 * tw_audit() reads up to three in-memory splits and returns a JSON report (shape below and
 * in docs/audit.md); tw_audit_format() renders a report as a compact table that fits a
 * 100-column terminal. The report holds no timings or paths, so the same data, params and
 * seed give a byte-identical report.
 *
 * Report shape (keys in this order; "—" marks keys that appear only when they apply):
 *   { "audit_version": 1,
 *     "task_type": "classify" | "extract" | "generate",
 *     "seed": N,
 *     "params": { "near_dup": {shingle, k, threshold, bands, rows, hash_functions,
 *                              candidate_prob_at_threshold} | null,
 *                 "thresholds": {min_train, good_train, min_eval, good_eval,
 *                                min_per_class, k_shot},
 *                 "mde": {accuracy, alpha, power}, "max_examples": N,
 *                 "declared_labels": [..] },
 *     "splits": { "train" | "dev" | "test": null when absent, else {
 *         "rows", "labeled" (rows with an output or references),
 *         "lengths": { "input": {"chars": S, "words": S}, "output": {"chars": S, "words": S} }
 *                    with S = {min, mean, p50, p90, p99, max} (nearest-rank percentiles;
 *                    chars are Unicode code points, words are whitespace-separated tokens),
 *         "duplicates": { "exact": D, "normalized": D }
 *                    D = {rows (rows beyond the first of their group), groups (inputs seen
 *                         more than once), examples: [{input, count, ids: [..]}]},
 *         "conflicts": null (generate) | {groups, rows, examples: [{input, outputs (distinct),
 *                         rows: [{id, line, output}]}]},
 *         — classify: "classes": {count, counts: {label: n} (count desc, then label),
 *                     min: {label, count}, max: {label, count}, imbalance_ratio (max/min),
 *                     normalized_entropy (H / ln K over the K classes present; null if K < 2),
 *                     majority_share, below_min_per_class: [{label, count}] (train only,
 *                     includes declared labels with 0 rows), undeclared: [{label, count}]},
 *         — classify, dev/test: "unseen_labels": {rows, labels: [{label, count}]},
 *         — extract: "extract": {outputs, json_objects, share, invalid_examples: [{id, line}],
 *                     fields: [{key, rows, share}] ("slots.artist" = key under an object,
 *                     "items[].name" = key of objects inside an array; rows = rows having it),
 *                     unseen_fields (dev/test): [key..]},
 *         — generate: "references": {rows_without, per_item: S} } },
 *     "leakage": [ { "from": "train", "to": "test", "counted": "<sentence>",
 *                    "rows": rows of `to`, "total": rows with any match,
 *                    "exact" | "normalized" | "near": {rows, distinct_inputs, matched_from_rows,
 *                        label_differs, examples: [{id, line, match_id, match_line, ...}]} } ],
 *                  pairs train→dev, train→test, dev→test when both splits have rows. The three
 *                  tiers are disjoint: a row counts in the first tier it matches.
 *     "readiness": { "verdict": "ready" | "warnings" | "not_ready",
 *                    "eval": {level, split, rows, mde: {test, accuracy, alpha, power,
 *                             difference, rows_for_5_points} | null},
 *                    "prompting": {level}, "finetune": {level, train_rows},
 *                    "reasons": [{level: "blocker"|"warning"|"info", code, affects: [..],
 *                                 message}] } }
 *
 * Deliberately not here: loading or splitting (dataset.h, split.h), the CLI (tools/). */
#ifndef TW_TASK_AUDIT_H
#define TW_TASK_AUDIT_H

#include "task/dataset.h"
#include "task/task.h"
#include "task/minhash.h"

#include <jansson.h>

typedef struct tw_audit_params {
    tw_task_type type;                /* default TW_TASK_CLASSIFY */
    const char *const *labels;        /* declared label set (borrowed for the call); NULL when
                                         none is declared (then no "undeclared" check) */
    size_t n_labels;
    uint64_t seed;                    /* seeds MinHash (overrides near_dup.seed); default 1 */
    bool near_dup_enabled;            /* default true */
    tw_minhash_params near_dup;       /* word 1-shingles, 32 bands x 4 rows, Jaccard >= 0.8 */
    size_t max_examples;              /* examples kept per finding; default 5 */
    /* readiness thresholds; defaults and their sources in docs/audit.md */
    size_t min_train;                 /* 100: fewer train rows → fine-tuning not ready */
    size_t good_train;                /* 1000: fewer → fine-tuning "usable with warnings" */
    size_t min_eval;                  /* 200: fewer eval rows → eval not ready */
    size_t good_eval;                 /* 500: fewer → eval "usable with warnings" */
    size_t min_per_class;             /* 10: a train class below this → warning */
    size_t k_shot;                    /* 5: demonstrations a k-shot prompt needs */
    double mde_accuracy;              /* 0.8: accuracy level for the MDE (raised to the eval
                                         set's majority share when that is higher) */
    double alpha;                     /* 0.05, two-sided */
    double power;                     /* 0.8 */
} tw_audit_params;

tw_audit_params tw_audit_default_params(void);
/* Defaults plus the task's type and declared labels (borrowed from task: keep it alive
 * while the params are used) and its seed. */
tw_audit_params tw_audit_params_for_task(const tw_task *task);

/* Audit the splits. splits[TW_SPLIT_TRAIN/DEV/TEST] are borrowed; NULL when absent (at
 * least one must be given). On TW_OK *report is a new JSON object (caller json_decref's).
 * Errors: TW_ERR_INVALID for bad params or no split, TW_ERR_NOMEM. */
tw_status tw_audit(const tw_dataset *const splits[TW_SPLIT_COUNT], const tw_audit_params *p,
                   json_t **report, tw_error *err);

/* Append the human-readable table for a report to out ('\n'-terminated lines of at most
 * 100 columns; quoted example inputs are cut to fit, only unusually long ids or labels can
 * push a line past that). Works on a report read back from a file too.
 * TW_ERR_INVALID when report is not an audit report, TW_ERR_NOMEM. */
tw_status tw_audit_format(const json_t *report, tw_buf *out);

typedef enum tw_audit_level {
    TW_AUDIT_READY = 0,
    TW_AUDIT_WARNINGS = 1,
    TW_AUDIT_NOT_READY = 2
} tw_audit_level;
/* The overall verdict of a report (TW_AUDIT_NOT_READY when the report has none). */
tw_audit_level tw_audit_verdict(const json_t *report);
const char *tw_audit_level_str(tw_audit_level l);   /* "ready", "usable with warnings", "not ready" */

/* Minimum detectable difference in accuracy between two systems scored on n items, both
 * near accuracy p: two-sided two-proportion z-test, normal approximation,
 *   d = (z_{1-alpha/2} + z_{power}) * sqrt(2 p (1-p) / n).
 * Conservative for two systems on the same items (a paired McNemar test needs fewer).
 * Local stand-in for the shared MDE in src/score/stats.c; the lead may swap it in. */
double tw_audit_mde_two_proportion(size_t n, double p, double alpha, double power);

#endif /* TW_TASK_AUDIT_H */
