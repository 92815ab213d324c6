/* evidence.h — everything the verdict looks at, in one plain struct: the task's goal
 * (metric, target, volume, latency limit), data readiness (from an audit report), each
 * arm's measured quality (metric + CI, per-item correctness for paired tests), format
 * validity, speed, tokens, how it is billed, and the fine-tune's learning curve.
 *
 * The decide step fills it from run directories (docs/eval.md: run.json, metrics.json,
 * predictions.jsonl), an audit report (`tunewise audit --json`, task/audit.h) and the
 * task file; tests build it by hand. Every field can also be set directly.
 *
 * Deliberately not here: the cost arithmetic (cost.h) and the rules (verdict.h).
 * Ownership: every string and array reachable from a tw_evidence is owned by it (heap)
 * and freed by tw_evidence_free(). */
#ifndef TW_DECIDE_EVIDENCE_H
#define TW_DECIDE_EVIDENCE_H

#include "base/base.h"
#include "decide/cost.h"
#include "task/audit.h"
#include "task/task.h"

#include <jansson.h>
#include <stdbool.h>

typedef enum tw_arm_kind {
    TW_ARM_OTHER = 0,
    TW_ARM_CLASSIC = 1,    /* n-gram linear model: the smallest model */
    TW_ARM_PROMPT = 2,     /* a prompted LLM (local or API) */
    TW_ARM_LORA = 3        /* a fine-tuned (LoRA) model */
} tw_arm_kind;
const char *tw_arm_kind_str(tw_arm_kind k);     /* "other", "classic", "prompt", "lora" */
tw_arm_kind tw_arm_kind_parse(const char *s);   /* unknown -> TW_ARM_OTHER */

typedef struct tw_ev_arm {
    char *name;               /* unique within the evidence (run dir base name) */
    tw_arm_kind kind;
    char *model;              /* model name the prices are looked up by ("" unknown) */
    char *strategy;           /* prompt strategy ("zero", "kshot", "knn+cot", ...; "" none) */
    bool retrieval;           /* the prompt retrieves demos/context (knn, rag) */
    bool constrained;         /* output constrained to the expected format (choice/json) */
    /* quality on the evaluation split */
    double metric, lo, hi;    /* primary metric and CI (NAN unknown) */
    size_t n;                 /* scored items */
    double invalid_rate;      /* share of outputs without the expected format (NAN unknown) */
    /* speed and size of a call */
    double latency_mean_ms, latency_p90_ms;   /* NAN unknown */
    double rows_per_second;   /* measured throughput of the run (NAN unknown) */
    double tokens_in, tokens_out;             /* mean per call (NAN unknown) */
    double cost_per_call;     /* measured mean USD per call from predictions (NAN unknown) */
    size_t train_examples;    /* fine-tunes: examples trained on (0 otherwise) */
    /* billing (tw_evidence_apply_task fills it from prices; may be set by hand) */
    tw_cost_params cost;
    bool cost_known;          /* cost holds a usable billing */
    /* per-item correctness for paired tests (from predictions.jsonl; may be empty) */
    char **ids;
    unsigned char *correct;
    size_t n_items;
    char *run_dir;            /* NULL when not loaded from a directory */
} tw_ev_arm;

typedef struct tw_lc_point {
    double n;                 /* training examples */
    double metric;            /* metric on dev */
} tw_lc_point;

typedef struct tw_evidence {
    char *task;               /* task name ("" unknown) */
    char *metric;             /* primary metric name ("" unknown) */
    double metric_max;        /* 1 for fractions, 100 for bleu/chrf */
    double target;            /* NAN none */
    double monthly_volume;    /* calls per month, NAN unknown */
    double max_latency_ms;    /* p90 latency limit per call, NAN none */
    double alpha;             /* significance level for paired tests (0.05) */
    double invalid_threshold; /* share of invalid outputs that marks a format problem (0.05) */
    /* data readiness (audit report, or set by hand) */
    bool have_audit;
    size_t train_rows;        /* labeled train rows */
    size_t eval_rows;         /* rows of the evaluation split */
    tw_audit_level eval_level, finetune_level;
    double mde;               /* smallest detectable accuracy difference on eval, NAN unknown */
    size_t min_train, good_train, min_eval, good_eval;   /* 100, 1000, 200, 500 */
    /* fine-tune cost inputs shared by the fine-tuned arms (copied into each LoRA arm's
     * cost by tw_evidence_apply_task; 0 when unknown) */
    double label_rate;        /* USD per labeling hour */
    double labels_per_hour;   /* labels a person makes per hour (for "N more labels") */
    double retrains_per_year;
    /* learning curve of the fine-tune: (train examples, dev metric), any order */
    tw_lc_point *curve;
    size_t n_curve;
    tw_ev_arm *arms;
    size_t n_arms, cap_arms;
} tw_evidence;

/* Empty evidence with the defaults above (strings ""; numbers NAN where "unknown"). */
tw_status tw_evidence_init(tw_evidence *ev, tw_error *err);
void tw_evidence_free(tw_evidence *ev);   /* NULL-safe; leaves *ev zeroed */

/* Append an arm with everything unknown (NAN) and free billing; *out valid until the
 * next add. Duplicate names are TW_ERR_INVALID. */
tw_status tw_evidence_add_arm(tw_evidence *ev, const char *name, tw_ev_arm **out, tw_error *err);
tw_status tw_evidence_add_curve(tw_evidence *ev, double n, double metric, tw_error *err);
/* Set an owned string field (e.g. &arm->model). */
tw_status tw_evidence_set_str(char **field, const char *value, tw_error *err);

/* One arm from a finished run directory:
 *   run.json          arm.name (kind), arm.config.strategy / output, context.model,
 *                     timings.rows_per_second
 *   metrics.json      primary, n, metrics.<primary>.value / ci, latency_ms.mean / p90,
 *                     tokens.in_mean / out_mean
 *   predictions.jsonl per-item correctness (answer = parsed, else prediction, equal to the
 *                     reference after trimming whitespace), invalid share, mean cost
 * The arm is named after the directory's base name ("#2"... when taken). Errors name the
 * file and the field or line: "DIR/metrics.json: field 'metrics.accuracy.value' must be a
 * number", "DIR/run.json:3:7: invalid JSON: ...", "DIR/predictions.jsonl:4: ...".
 * The evidence's metric is set from the first run when empty; a run scored on another
 * primary metric is TW_ERR_INVALID. *out (may be NULL) gets the new arm. */
tw_status tw_evidence_add_run(tw_evidence *ev, const char *dir, tw_ev_arm **out, tw_error *err);

/* Readiness from an audit report (object as tw_audit returns, or read from a file with
 * tw_evidence_load_audit): readiness.eval.{level,rows,mde.difference},
 * readiness.finetune.{level,train_rows}, params.thresholds. `what` names the source in
 * errors ("audit.json: field 'readiness.eval.rows' must be a non-negative integer"). */
tw_status tw_evidence_set_audit(tw_evidence *ev, const json_t *report, const char *what, tw_error *err);
tw_status tw_evidence_load_audit(tw_evidence *ev, const char *path, tw_error *err);

/* Goal and billing from a task: metric (when empty), target, monthly_volume, and for each
 * arm a billing: the task's price for the arm's model (else its name) — per_hour > 0 makes
 * it hourly (seconds per call = mean latency, else 1 / rows_per_second), token prices make
 * it api — else the preset table (cost.h) for API models; a classic arm without a price is
 * free. Fine-tuned arms get label_rate / retrains_per_year from the evidence. Arms left
 * without a billing keep cost_known = false. */
tw_status tw_evidence_apply_task(tw_evidence *ev, const tw_task *task, tw_error *err);

/* Paired comparison of arms i and j on the items both have (matched by id): the exact
 * McNemar p-value, b = #(i right, j wrong), c = #(i wrong, j right), and the number of
 * shared items. p = NAN when they share no items. */
double tw_evidence_mcnemar(const tw_evidence *ev, size_t i, size_t j, uint64_t *b, uint64_t *c, size_t *shared);

#endif /* TW_DECIDE_EVIDENCE_H */
