/* split.h — train / dev / test splits of a task's data: seeded, stratified by label for
 * classify tasks, stable (same seed + same rows → same split, whatever the row order), and
 * leak-free inside one file (rows whose inputs are equal after tw_normalize_text always land
 * in the same split). Plus the label checks every loaded task goes through.
 * Deliberately not here: reading files (dataset.h), auditing leaks across files the user
 * split themselves (audit). */
#ifndef TW_TASK_SPLIT_H
#define TW_TASK_SPLIT_H

#include "task/task.h"

/* Split `all` into train / dev / test (deep copies, each in the file order of `all`; their
 * path is all->path so "file:line" messages still point at the source).
 * Algorithm: group rows by normalized input; each group gets the hash of its normalized
 * input under `seed`; with `stratify`, groups are bucketed by their majority output (ties:
 * the smallest), else there is one bucket. In each bucket, in hash order, groups go to test
 * until the bucket's share of round(test_frac * n) rows is reached, then to dev, the rest
 * to train; the shares carry over between buckets so the totals are within a group of the
 * targets. A bucket's last group always stays in train (so every label with two distinct
 * inputs is seen in training); a one-group bucket goes to train whole.
 * dev / test may be NULL when their fraction is 0. Fractions: >= 0, dev + test < 1. */
tw_status tw_split_dataset(const tw_dataset *all, double dev_frac, double test_frac, uint64_t seed, bool stratify,
                           tw_dataset *train, tw_dataset *dev, tw_dataset *test, tw_error *err);

/* Load the task's data and return its three splits (caller frees each with
 * tw_dataset_free). Which files:
 *   data: file                    → split it (split.dev / split.test fractions of the file)
 *   data: {train}                 → the same, on the train file
 *   data: {train, test}           → dev carved from train (split.dev fraction of train)
 *   data: {train, dev}            → test carved from train (split.test fraction of train)
 *   data: {train, dev, test}      → used as they are
 * Stratified for classify tasks. Then tw_task_check_labels. *info (if non-NULL) gets a new
 * JSON object describing what was done:
 *   {"mode": "given"|"carve_dev"|"carve_test"|"split_all", "seed", "dev_fraction",
 *    "test_fraction", "stratified", "files": {"train","dev","test"} (null when carved),
 *    "counts": {"train","dev","test"}, "labels": [...] (classify: declared or inferred),
 *    "labels_inferred": bool, "unseen_label_warnings": n}
 * On error out[] is left empty (zeroed) and *info NULL. */
tw_status tw_split_task(const tw_task *t, tw_dataset out[TW_SPLIT_COUNT], json_t **info, tw_error *err);

/* The same without tw_task_check_labels: for the audit, which reports label problems
 * (undeclared labels, non-JSON extract outputs) instead of stopping at the first one. */
tw_status tw_split_task_unchecked(const tw_task *t, tw_dataset out[TW_SPLIT_COUNT], json_t **info, tw_error *err);

/* Per-type checks of the rows of the three splits (any may be empty):
 *   classify: an empty label is an error ("file:line: empty output: classify rows need a
 *             label"); with a declared label set, a label outside it is an error ("file:line:
 *             label 'x' is not in the task's label set"); without one, a dev/test label that
 *             train never has is a warning (tw_log TW_LOG_WARN, once per label and split:
 *             "file:line: label 'x' in test never occurs in train (N rows)").
 *   extract:  the output must be a JSON object ("file:line: output is not a JSON object ...").
 * *n_warnings (if non-NULL) gets the number of warnings logged. */
tw_status tw_task_check_labels(const tw_task *t, const tw_dataset splits[TW_SPLIT_COUNT], size_t *n_warnings,
                               tw_error *err);

#endif /* TW_TASK_SPLIT_H */
