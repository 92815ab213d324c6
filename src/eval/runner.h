/* runner.h — the evaluation runner: runs any arm (classic now; prompt and LoRA arms plug
 * in through the same interface) over the rows of a split, and leaves a run directory
 *   predictions.jsonl          the shared predictions format (task/predictions.h), row order
 *   metrics.json               tw_score() of predictions.jsonl: metrics with bootstrap CIs
 *   run.json                   what was run: arm config + hashes, data hash, seed, git
 *                              commit, counts, timings
 *   predictions.partial.jsonl  only while running / after an interruption: the journal
 * Every finished prediction is appended to the journal (flushed after each row, fsync'd
 * every sync_every rows), so killing the process at any moment loses at most the rows in
 * flight, and running again with the same arm configuration resumes where it stopped.
 * Layout, fields and resume rules: docs/eval.md.
 *
 * Deliberately not here: how an arm predicts (arms/, backend/), metric definitions
 * (score/), task loading and splitting (task/), the CLI (tools/tunewise/cmd_eval.c). */
#ifndef TW_EVAL_RUNNER_H
#define TW_EVAL_RUNNER_H

#include "arms/classic.h"
#include "eval/cache.h"
#include "score/score.h"
#include "task/dataset.h"
#include "task/predictions.h"

#include <jansson.h>

/* What the runner hands an arm with every call. */
typedef struct tw_eval_ctx {
    tw_cache *cache;        /* model-call cache, or NULL (borrowed from the params) */
    uint64_t seed;          /* the run's seed (tw_eval_params.seed) */
} tw_eval_ctx;

typedef struct tw_eval_arm tw_eval_arm;

/* The arm interface. An arm fills `out` (already tw_pred_init'ed) for one row:
 *   prediction  raw output (heap, owned by out; required)
 *   parsed      normalized answer (heap) or NULL when the prediction is the answer
 *   valid       whether the output had the expected format (invalid is not an error)
 *   latency_ms, tokens_in, tokens_out, cost: as measured (NAN when unknown; a latency
 *               left NAN is filled with the wall time of the call, for a batch call its
 *               share of the batch's time)
 *   input       may be set to what the model saw (e.g. the exact prompt); default row input
 * id and reference are filled by the runner from the row; invalid UTF-8 in prediction,
 * parsed or input is replaced by U+FFFD per bad byte (JSON cannot carry it). A returned error stops the run
 * (what is in the journal stays). Predictions must depend only on the row, the arm's
 * configuration and ctx->seed — not on which rows ran before — or resume is not exact. */
typedef struct tw_eval_arm_ops {
    const char *name;   /* "classic", "prompt", "lora" */
    tw_status (*predict)(tw_eval_arm *arm, const tw_example *row, tw_pred *out, const tw_eval_ctx *ctx,
                         tw_error *err);
    /* Optional: n rows at once (out[0..n) each tw_pred_init'ed). NULL: predict per row. */
    tw_status (*predict_batch)(tw_eval_arm *arm, const tw_example *rows, size_t n, tw_pred *out,
                               const tw_eval_ctx *ctx, tw_error *err);
    /* Everything that determines the predictions besides the hashes below (parameters,
     * strategy, k, prompt template, ...), as a new JSON object. */
    json_t *(*config)(const tw_eval_arm *arm);
    void (*destroy)(void *state);   /* optional: frees state */
} tw_eval_arm_ops;

struct tw_eval_arm {
    const tw_eval_arm_ops *ops;
    void *state;
    char model_hash[65];     /* sha256 hex of the model file(s); "" when none */
    char adapter_hash[65];   /* sha256 hex of the adapter; "" when none */
};

/* Frees the state (ops->destroy) and the arm itself; NULL is a no-op. Only for arms made
 * by a constructor that allocates them (tw_eval_arm_classic_*). */
void tw_eval_arm_free(tw_eval_arm *arm);

/* sha256 hex over the canonical JSON (compact, sorted keys) of
 * {"arm": name, "config": ops->config(), "model_hash", "adapter_hash"}: what the journal
 * header and run.json record, and what resuming must match. */
tw_status tw_eval_arm_config_hash(const tw_eval_arm *arm, char hex[65], tw_error *err);

/* sha256 hex of the rows: for each, id, input, output and references as netstrings, then
 * a record separator (docs/eval.md). */
tw_status tw_eval_data_hash(const tw_example *rows, size_t n, char hex[65], tw_error *err);

typedef struct tw_eval_params {
    tw_score_params score;  /* task type, labels, primary metric, bootstrap, seed: only
                               scoring — changing them does not invalidate a resume */
    tw_cache *cache;        /* optional, borrowed: handed to the arm */
    uint64_t seed;          /* handed to the arm; recorded (default 1) */
    size_t batch_size;      /* rows per predict_batch call when the arm has one; 0 or 1:
                               predict one row at a time (default 1) */
    size_t sync_every;      /* fsync the journal every N rows (default 16; 0 = 16). The
                               journal is flushed to the OS after every row regardless */
    bool force;             /* discard a journal / finished run from another configuration
                               (or this one) and start over */
    bool progress;          /* progress bar / lines on stderr */
    const char *label;      /* progress label (default "eval <arm>") */
    const json_t *context;  /* optional, borrowed: copied into run.json "context" (task
                               path, split name, ...) */
    /* Test hook: called after each row is in the journal with the number of rows done in
     * this call. Returning false stops the run as if interrupted (TW_ERR_RUNTIME). */
    bool (*on_row)(void *user, size_t done);
    void *on_row_user;
} tw_eval_params;

tw_eval_params tw_eval_default_params(void);

/* Summary of a finished run. */
typedef struct tw_eval_result {
    size_t n_rows;          /* rows evaluated */
    size_t n_resumed;       /* taken from the journal / a finished run in out_dir */
    size_t n_predicted;     /* predicted in this call */
    size_t n_invalid;       /* predictions with valid = false */
    size_t cache_hits, cache_misses;   /* lookups on params.cache during this call */
    double seconds;         /* wall time of this call */
    json_t *metrics;        /* the metrics.json report (new reference, caller decrefs) */
} tw_eval_result;

/* Run arm over rows[0..n) (ids must be unique and non-empty) into out_dir (created when
 * absent). Resume: when out_dir holds a journal (or a finished run) whose header records
 * the same arm config hash and data hash, rows already there are not predicted again; a
 * different configuration is an error naming both hashes, unless params->force. On
 * success predictions.jsonl, metrics.json, run.json are committed (each atomically) and
 * the journal is removed. One run per directory at a time (an advisory lock on the
 * directory; a second run there is TW_ERR_INVALID). result may be NULL. */
tw_status tw_eval_run(tw_eval_arm *arm, const tw_example *rows, size_t n, const char *out_dir,
                      const tw_eval_params *params, tw_eval_result *result, tw_error *err);

/* Score a predictions file the way the runner writes metrics.json: joined to rows by id
 * (a row without a prediction scores as an empty answer), prediction text = parsed when
 * present else prediction. *report: new reference. */
tw_status tw_eval_score_file(const char *pred_path, const tw_example *rows, size_t n, const tw_score_params *p,
                             json_t **report, tw_error *err);

/* ---- the classic arm through the runner ------------------------------- */

/* Load a classic model file; model_hash = sha256 of the file. */
tw_status tw_eval_arm_classic_open(tw_eval_arm **out, const char *model_path, tw_error *err);
/* Wrap a model the caller keeps ownership of (must outlive the arm); model_hash is the
 * caller's identity for it (e.g. the sha256 of its saved file), copied. */
tw_status tw_eval_arm_classic_wrap(tw_eval_arm **out, const tw_classic *m, const char *model_hash,
                                   tw_error *err);

#endif /* TW_EVAL_RUNNER_H */
