/* cost.h — the cost model of the decision step: what an arm costs per month and over its
 * first year as a function of monthly call volume, where two arms' costs cross
 * (break-even volume), and cost per correct answer. Formulas: docs/decision.md.
 *
 * Every arm's year-one cost is a piecewise-linear function of the monthly volume V:
 *   C(V) = a + b V + e max(0, K - V)
 * a = one-time setup + 12 x fixed monthly (retraining amortised), b = 12 x cost per call,
 * and the e max(0, K - V) term is an always-on machine floor (a self-hosted machine billed
 * for at least min_hours_month hours a month whatever the traffic). Break-even volumes
 * are solved in closed form on each linear piece.
 * Also here: the shipped preset price table (prices.c), which a task file overrides.
 *
 * Deliberately not here: measuring anything (the runs do), choosing an arm (verdict.h),
 * reading run directories (evidence.h). Pure functions; nothing allocates. */
#ifndef TW_DECIDE_COST_H
#define TW_DECIDE_COST_H

#include "base/base.h"

#include <stdbool.h>

/* How an arm is billed. */
typedef enum tw_bill_kind {
    TW_BILL_FREE = 0,      /* no marginal cost worth counting (e.g. classic on a box you own) */
    TW_BILL_API = 1,       /* per token: tokens x price per 1M tokens */
    TW_BILL_HOURLY = 2     /* self-hosted: machine-hours x price per hour */
} tw_bill_kind;
const char *tw_bill_kind_str(tw_bill_kind k);   /* "free", "api", "hourly" */

/* Inputs for one arm. NAN marks unknown; a needed unknown makes the cost NAN. */
typedef struct tw_cost_params {
    tw_bill_kind kind;
    /* API arms: measured mean tokens per call and list prices (USD per 1M tokens) */
    double tokens_in, tokens_out;
    double input_per_mtok, output_per_mtok;
    double prompt_tokens_saved;   /* input tokens per call a fine-tune no longer needs
                                     (instructions/demos); subtracted from tokens_in
                                     (floored at 0). 0 when not applicable */
    /* self-hosted arms: measured service time and price */
    double seconds_per_call;      /* machine time per call (mean latency, or 1/throughput) */
    double concurrency;           /* calls served at once per machine (>= 1; default 1) */
    double per_hour;              /* USD per machine-hour */
    double min_hours_month;       /* billed floor per month (0: pay per use; 730: always on) */
    /* fine-tuning (all 0 for arms that are not trained) */
    double label_hours;           /* hours of labeling to prepare the data */
    double label_rate;            /* USD per labeling hour */
    double train_seconds;         /* measured training wall time */
    double train_speed;           /* target hardware speed relative to the measuring one
                                     (2 = twice as fast; default 1) */
    double train_per_hour;        /* USD per hour of the training hardware */
    double retrains_per_year;     /* retraining cadence (each retrain = one training run
                                     plus retrain_label_hours of labeling) */
    double retrain_label_hours;
} tw_cost_params;

/* Everything 0 except concurrency = train_speed = 1 (a free arm). */
tw_cost_params tw_cost_default_params(void);

/* Cost pieces of one arm (USD). */
typedef struct tw_cost_curve {
    double per_call;          /* marginal cost of one call */
    double setup;             /* one-time: labeling + first training run */
    double retrain_year;      /* retraining per year */
    double floor_month;       /* minimum monthly machine bill (min_hours_month x per_hour) */
    double hours_per_call;    /* machine-hours per call (hourly arms; 0 otherwise) */
    /* year-one cost C(V) = a + b V + e max(0, K - V), V in calls/month */
    double a, b, e, K;
} tw_cost_curve;

/* Build the curve. TW_ERR_INVALID names the field that is negative or missing for the
 * kind (e.g. "per_hour is unknown for an hourly arm"). */
tw_status tw_cost_curve_make(tw_cost_curve *out, const tw_cost_params *p, tw_error *err);

/* Monthly run-rate at volume V: machine/API bill + retraining / 12 (setup excluded). */
double tw_cost_monthly(const tw_cost_curve *c, double volume);
/* Year one: setup + retraining for the year + 12 monthly bills = a + b V + e max(0,K-V). */
double tw_cost_year_one(const tw_cost_curve *c, double volume);
/* Year-one cost per call (V > 0; INFINITY at V = 0 when anything is owed, 0 for free arms). */
double tw_cost_per_call_year_one(const tw_cost_curve *c, double volume);
/* Cost per correct answer = year-one cost per call / metric (metric in (0,1]); INFINITY
 * when metric <= 0; NAN when metric is NAN. */
double tw_cost_per_correct(const tw_cost_curve *c, double volume, double metric);

/* Break-even between arms A and B on year-one cost, over volumes V > 0. */
typedef enum tw_breakeven_kind {
    TW_BE_CROSS = 0,      /* the curves cross at volumes v[0..n) */
    TW_BE_NEVER = 1,      /* no crossing at V > 0: one arm is cheaper (or equal) everywhere */
    TW_BE_SAME = 2        /* identical cost at every volume */
} tw_breakeven_kind;

typedef struct tw_breakeven {
    tw_breakeven_kind kind;
    size_t n;                 /* crossings (CROSS: 1..3) */
    double v[3];              /* ascending volumes, calls/month */
    int cheaper_above[3];     /* 0 = A, 1 = B: the cheaper arm just above v[i] */
    int cheaper;              /* NEVER: the arm cheaper for all V > 0 (0 = A, 1 = B) */
} tw_breakeven;

/* Solves a_A + b_A V + e_A max(0,K_A-V) = same for B on each linear piece between the
 * kinks. Touching without changing order is not a crossing. */
void tw_breakeven_solve(tw_breakeven *out, const tw_cost_curve *A, const tw_cost_curve *B);

/* ---- preset prices (prices.c) -------------------------------------------------- */

typedef struct tw_preset_price {
    const char *model;         /* API model name as the provider spells it */
    const char *provider;
    double input_per_mtok;     /* USD per 1M input tokens */
    double output_per_mtok;    /* USD per 1M output tokens */
} tw_preset_price;

/* The date the preset prices were read from the providers' public price pages
 * ("YYYY-MM-DD"). Prices in a task file always win over the preset. */
const char *tw_preset_prices_date(void);
/* The whole table (static storage), *n set. */
const tw_preset_price *tw_preset_prices(size_t *n);
/* Exact (case-insensitive) match on model name, else NULL. */
const tw_preset_price *tw_preset_price_find(const char *model);

#endif /* TW_DECIDE_COST_H */
