/* trainer.h — LoRA / QLoRA fine-tuning of a llama-family model on a task: data ->
 * tokenized examples -> length-bucketed batches -> AdamW steps -> dev evaluation ->
 * checkpoints -> the best adapter. docs/training.md ("The trainer") has the details.
 *
 * Examples are rendered exactly as the prompt arm's zero-shot prompt (arms/prompt.h:
 * system = instructions (+ the label list for classify), user = input; the model's chat
 * template, or the prompt arm's plain layout for a model without one), with the reference
 * output as the assistant answer; the loss is on the completion tokens only (the answer
 * and its end-of-turn marker: tw_chat_render_span; plain layout: " output\n").
 *
 * A run directory holds
 *   adapter.gguf       the best adapter, llama.cpp format (written at the end)
 *   adapter/           the same adapter as a PEFT folder
 *   train_log.jsonl    one line per optimizer step (+ dev metrics on evaluation steps)
 *   train.json         config, seed, git commit, hashes, best step, results
 *   checkpoint.bin     written atomically every save_every steps: LoRA parameters, AdamW
 *                      moments, best parameters, data position, counters, log length
 * Resuming (resume = true) after a kill at any moment continues from the last checkpoint
 * and ends with byte-identical outputs (adapter files) to an uninterrupted run: all
 * randomness is a function of (seed, epoch, step, example), not of a running stream.
 *
 * Deterministic on a given machine and thread count (the ops are also thread-count
 * independent, ops.h).
 *
 * Deliberately not here: the model math (lmodel.h, ops.h), the optimizer (optim.h), the
 * CLI and printing (tools/tunewise/cmd_tune.c: events come through a callback), packing,
 * predictions on the test split (the evaluation runner's LoRA arm), the task metric for
 * extract / generate tasks during training (only dev loss there: they would need
 * generation; classify uses label scoring). */
#ifndef TW_TRAIN_TRAINER_H
#define TW_TRAIN_TRAINER_H

#include "tunewise.h"
#include "task/task.h"
#include "train/lmodel.h"
#include "train/optim.h"

#include <stdbool.h>
#include <stdint.h>

/* What the callback gets after each optimizer step (and once after the step-0 evaluation,
 * with step = 0). Borrowed for the call. */
typedef struct tw_train_event {
    int64_t step, total_steps;
    double epoch;              /* fractional: steps done / steps per epoch */
    double loss;               /* mean completion-token loss of the step (NAN at step 0) */
    double lr, grad_norm;
    double tokens_per_s;       /* tokens (prompt + completion) of the step / its wall time */
    double eta_s;              /* remaining steps x mean step time of this process */
    bool evaluated;            /* dev metrics below are fresh */
    double dev_loss;           /* mean completion-token loss on the dev subset */
    const char *metric;        /* task metric name, NULL when not computed (non-classify) */
    double dev_metric;
    bool is_best;
    bool checkpointed;
} tw_train_event;

typedef struct tw_train_params {
    const char *model;         /* GGUF file or HF folder */
    const char *chat_template; /* NULL: the model's own (none: plain layout); a file or built-in name */
    tw_lmodel_params lm;       /* targets, rank, alpha, dropout, n_threads; max_T is set from max_len */
    int32_t max_len;           /* tokens per example (prompt + completion); default 256 */
    int32_t epochs;            /* default 3 */
    int64_t max_steps;         /* > 0: stop after this many steps (caps epochs); default 0 */
    int32_t batch;             /* examples per micro-batch; default 8 */
    int32_t grad_accum;        /* micro-batches per optimizer step; default 1 */
    float lr;                  /* default 2e-4 */
    float lr_min;              /* floor of the decay; default 0 */
    tw_lr_schedule schedule;   /* default cosine */
    float warmup;              /* fraction of the total steps; default 0.05 */
    tw_adamw_params adamw;     /* default tw_adamw_default_params (wd 0.01) */
    float clip;                /* global grad-norm clip; <= 0 none; default 1.0 */
    uint64_t seed;             /* default 1 */
    int64_t eval_every;        /* dev evaluation every N steps (and at each epoch end); 0: epoch ends only */
    int64_t save_every;        /* checkpoint every N steps (and at epoch ends); default 10 */
    size_t dev_max;            /* dev examples evaluated (a seeded subset); 0: all; default 200 */
    bool prompt_short;         /* render examples with the short system prompt (arms/prompt.h
                                  short_system: instructions only, no label list / schema);
                                  recorded as config.prompt = "short" in train.json, which
                                  `tunewise prompt --adapter` follows; default false */
    size_t train_max;          /* 0: the whole train split; else a seeded subset of that many rows,
                                  stratified by label for classify (each label's share
                                  proportional, at least 1 row per label while rows allow;
                                  a larger train_max with the same seed mostly extends a
                                  smaller one: learning curves); default 0 */
    int32_t patience;          /* stop after this many evaluations without improvement; 0: never */
    bool resume;               /* continue out_dir's checkpoint (none: start) */
    void (*on_event)(void *ud, const tw_train_event *ev);   /* optional */
    void *ud;
} tw_train_params;

tw_train_params tw_train_default_params(void);

typedef struct tw_train_result {
    int64_t steps;             /* optimizer steps done */
    int64_t best_step;         /* step of the adapter written (0: the untuned init) */
    double untuned_dev_loss, untuned_metric;   /* the step-0 evaluation (metric NAN when none) */
    double best_dev_loss, best_metric;
    double first_loss, last_loss;               /* train loss of the first / last step */
    size_t n_train, n_dev_used, truncated, dropped;
    double tokens_per_s;       /* over the steps this process ran */
    bool resumed, early_stopped;
} tw_train_result;

/* Train on task's train split, evaluate on its dev split, write out_dir (created).
 * Without resume an existing checkpoint in out_dir is an error (TW_ERR_INVALID: "use
 * --resume or another output directory"); with resume a checkpoint of another
 * configuration is one too. res may be NULL. */
tw_status tw_train(const tw_task *task, const tw_train_params *p, const char *out_dir, tw_train_result *res,
                   tw_error *err);

/* Keep `keep` rows of ds in place (tw_train_params.train_max; ds->n <= keep: unchanged):
 * the rows in a seeded random order; with stratify (by output), each label takes
 * floor(keep * n_label / n) rows but at least 1, the rows left over going to the labels
 * with the largest remainders; the kept rows stay in file order. */
tw_status tw_train_subset(tw_dataset *ds, size_t keep, bool stratify, uint64_t seed, tw_error *err);

#endif /* TW_TRAIN_TRAINER_H */
