/* report.h — the input of every report (terminal table, report.md, report.html): a small
 * self-contained description of a comparison — arms with their primary metric and CI,
 * per-class F1, confusion matrix, latency samples, tokens and cost per call — plus the
 * series the decision step computes (learning curves, cost vs monthly volume, break-even
 * points) and the verdict as plain text.
 * The decide step fills it in memory; tw_report_add_run() fills one arm from a run
 * directory (docs/eval.md), so reports also work on bare run directories.
 * Deliberately not here: computing costs or verdicts (src/decide/), scoring (src/score/).
 * Ownership: everything reachable from a tw_report is owned by it (heap), freed by
 * tw_report_free(); the add/set helpers copy their string arguments. */
#ifndef TW_REPORT_REPORT_H
#define TW_REPORT_REPORT_H

#include "base/base.h"
#include "report/svg.h"   /* tw_html_escape */

#include <stdint.h>

typedef struct tw_rep_arm {
    char *name;             /* display label, unique within a report (e.g. the run dir's name) */
    char *kind;             /* arm type: "classic", "prompt", "lora", ... ("" unknown) */
    char *run_dir;          /* NULL when not loaded from a directory */
    char *task;             /* task name ("" unknown) */
    char *metric_name;      /* primary metric, e.g. "accuracy" */
    double metric, lo, hi;  /* primary metric and its CI (NAN when unknown) */
    double ci_level;        /* e.g. 0.95 (NAN unknown) */
    size_t n;               /* scored items */
    double invalid_rate;    /* NAN unknown */
    /* other scalar metrics from metrics.json (name, value, lo, hi) */
    char **extra_names;
    double *extra_value, *extra_lo, *extra_hi;
    size_t n_extra;
    /* per-class: labels[i], f1[i]; confusion is n_labels x n_cols (row = reference) */
    char **labels;
    double *f1;
    size_t n_labels;
    char **cols;
    double *confusion;
    size_t n_cols;
    /* per-call measurements (predictions.jsonl) */
    double *latency_ms;     /* samples, in row order */
    size_t n_latency;
    double tokens_in, tokens_out;   /* mean per call (NAN unknown) */
    double cost_per_call;           /* mean USD per call (NAN unknown) */
    /* provenance (run.json); "" when unknown */
    char *config_hash, *model_hash, *adapter_hash, *data_hash, *predictions_sha256, *git_commit;
    double finished_unix;           /* NAN unknown */
    /* human review (review import); n_rated == 0 when none */
    size_t n_rated;
    double review_mean, review_lo, review_hi;
} tw_rep_arm;

/* A line in a chart: learning curve (x = training examples) or cost curve (x = calls/month). */
typedef struct tw_rep_series {
    char *name;
    double *x, *y;
    double *lo, *hi;        /* optional band (NULL when none) */
    size_t n;
} tw_rep_series;

/* A horizontal reference line, e.g. a prompting arm's metric on the learning-curve chart. */
typedef struct tw_rep_hline {
    char *name;
    double value;
} tw_rep_hline;

/* Break-even point between two arms' cost curves. */
typedef struct tw_rep_breakeven {
    char *a, *b;            /* arm names */
    double volume;          /* calls per month */
    double cost;            /* USD per month at that volume */
} tw_rep_breakeven;

typedef struct tw_report {
    char *title;
    char *task;             /* task name ("" unknown) */
    char *metric_name;      /* primary metric of the comparison */
    double target;          /* task target for the metric (NAN none) */
    tw_rep_arm *arms;
    size_t n_arms, cap_arms;
    tw_rep_series *learning;    /* learning curves */
    size_t n_learning;
    tw_rep_hline *hlines;       /* prompting arms drawn across the learning-curve chart */
    size_t n_hlines;
    tw_rep_series *cost;        /* monthly cost vs monthly volume, one per arm */
    size_t n_cost;
    tw_rep_breakeven *breakeven;
    size_t n_breakeven;
    char *verdict;              /* one-line verdict ("" none) */
    char **reasons;             /* the reasoning, one step per entry */
    size_t n_reasons;
    double generated_unix;      /* NAN: not shown (keeps snapshot output stable) */
} tw_report;

/* Initialise an empty report (all counts 0, strings ""). */
tw_status tw_report_init(tw_report *r, const char *title, tw_error *err);
void tw_report_free(tw_report *r);   /* NULL-safe; leaves *r zeroed */

/* Append an empty arm (metric/CI NAN, strings ""), returning it in *out (valid until the
 * next add). */
tw_status tw_report_add_arm(tw_report *r, const char *name, tw_rep_arm **out, tw_error *err);

/* Append one arm read from a run directory: run.json (arm, hashes, task, time),
 * metrics.json (primary metric + CI, per-class F1, confusion, other metrics,
 * human_review when present), predictions.jsonl (latency, tokens, cost per call).
 * The arm's name is the directory's base name (made unique with "#2", "#3"...).
 * Sets r->task / r->metric_name from the first run when they are empty.
 * Errors name the file: "DIR/metrics.json: ..." */
tw_status tw_report_add_run(tw_report *r, const char *dir, tw_error *err);

/* Series, lines, points and text; all copy their inputs. lo/hi may be NULL. */
tw_status tw_report_add_learning(tw_report *r, const char *name, const double *x, const double *y,
                                 const double *lo, const double *hi, size_t n, tw_error *err);
tw_status tw_report_add_hline(tw_report *r, const char *name, double value, tw_error *err);
tw_status tw_report_add_cost(tw_report *r, const char *name, const double *volume, const double *usd_month,
                             size_t n, tw_error *err);
tw_status tw_report_add_breakeven(tw_report *r, const char *a, const char *b, double volume, double cost,
                                  tw_error *err);
tw_status tw_report_set_verdict(tw_report *r, const char *verdict, tw_error *err);
tw_status tw_report_add_reason(tw_report *r, const char *reason, tw_error *err);
/* Replace a string field owned by the report (e.g. &arm->kind). */
tw_status tw_report_set_str(char **field, const char *value, tw_error *err);

/* Latency percentile (0..1) of an arm's samples; NAN when it has none. */
double tw_rep_arm_latency_q(const tw_rep_arm *a, double q);

/* ---- outputs (each appends to out) ------------------------------------------------ */

/* Terminal: compact comparison table and the verdict (plain text, UTF-8). */
tw_status tw_report_table(tw_buf *out, const tw_report *r, tw_error *err);
/* report.md (GitHub-flavoured Markdown; user text escaped). */
tw_status tw_report_markdown(tw_buf *out, const tw_report *r, tw_error *err);
/* report.html: one self-contained file (inline CSS and SVG, no script, no network). */
tw_status tw_report_html(tw_buf *out, const tw_report *r, tw_error *err);

/* Write report.md and report.html into dir (created; files written atomically). */
tw_status tw_report_write_dir(const tw_report *r, const char *dir, tw_error *err);

#endif /* TW_REPORT_REPORT_H */
