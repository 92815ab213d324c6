/* review.h — human review of predictions. Export: a seeded random sample of the items
 * that every given run predicted, as a CSV (item, id, input, reference, then for each
 * blinded slot A, B, ... the answer and an empty rating column, then notes) whose arm
 * order is shuffled per item, plus a separate key file (JSON) that maps slots back to
 * runs. Import: reads the rated CSV with its key, averages each run's ratings (with a
 * seeded bootstrap CI of the mean) and folds them into the run's metrics.json as
 * "human_review" — the report then shows them. Formats: docs/reports.md.
 * Deliberately not here: rating scales (any number is a rating; blank = not rated). */
#ifndef TW_REPORT_REVIEW_H
#define TW_REPORT_REVIEW_H

#include "base/base.h"

#include <stdint.h>

#define TW_REVIEW_MAX_ARMS 16

/* Write csv_path and key_path (atomically). n = items to sample (fewer when fewer are
 * common to all runs). Same runs + n + seed -> byte-identical files. *written = rows. */
tw_status tw_review_export(const char *const *run_dirs, size_t n_runs, size_t n, uint64_t seed, const char *csv_path,
                           const char *key_path, size_t *written, tw_error *err);

typedef struct tw_review_summary {
    size_t n_runs;
    char run_dir[TW_REVIEW_MAX_ARMS][1024];
    size_t n_rated[TW_REVIEW_MAX_ARMS];
    double mean[TW_REVIEW_MAX_ARMS], lo[TW_REVIEW_MAX_ARMS], hi[TW_REVIEW_MAX_ARMS];
} tw_review_summary;

/* Read ratings, check them against the key (same items and ids, numeric ratings), and
 * (unless dry_run) rewrite each run's metrics.json with "human_review":
 * {"n", "mean", "ci": [lo, hi], "ci_level": 0.95, "source": csv_path}. Errors name the
 * CSV line and column. */
tw_status tw_review_import(const char *csv_path, const char *key_path, bool dry_run, tw_review_summary *out, tw_error *err);

#endif /* TW_REPORT_REVIEW_H */
