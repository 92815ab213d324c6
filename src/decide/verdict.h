/* verdict.h — the decision: a fixed, written rule set (docs/decision.md lists each rule
 * with its id) applied to a tw_evidence, giving the recommended arm, the runner-up, one
 * evidence line per rule (fired or not, with its numbers), what would change the
 * decision (break-even volumes, learning-curve projection, data to collect), and a
 * confidence level with its reason — as a struct, as text, and as JSON.
 *
 * Also here: the learning-curve fit used for projections (metric = a + b ln n, least
 * squares, with the t-based interval of the fitted mean).
 *
 * Deliberately not here: running arms, reading files (evidence.c), cost arithmetic
 * (cost.c), rendering reports (report/). Pure: the same evidence gives the same verdict. */
#ifndef TW_DECIDE_VERDICT_H
#define TW_DECIDE_VERDICT_H

#include "decide/cost.h"
#include "decide/evidence.h"

#include <jansson.h>

/* ---- learning curve ------------------------------------------------------------- */

typedef struct tw_lc_fit {
    bool ok;              /* at least two distinct n */
    size_t m;             /* points used */
    double a, b;          /* metric = a + b ln(n) */
    double s;             /* residual standard deviation (NAN with m < 3) */
    double xbar, sxx;     /* mean and sum of squares of ln(n) */
} tw_lc_fit;

/* Least-squares fit of metric on ln(n). TW_ERR_INVALID with fewer than two distinct n or
 * a non-positive n. */
tw_status tw_lc_fit_points(tw_lc_fit *out, const tw_lc_point *pts, size_t n, tw_error *err);
/* Fitted metric at n, capped to [0, cap]; *half (may be NULL) = half-width of the 95%
 * interval of the fitted mean, t_{0.975, m-2} s sqrt(1/m + (ln n - xbar)^2 / sxx)
 * (NAN when m < 3). */
double tw_lc_predict(const tw_lc_fit *f, double n, double cap, double *half);
/* Training examples at which the fit reaches `metric`: exp((metric - a) / b); NAN when the
 * curve does not rise (b <= 0). */
double tw_lc_n_for(const tw_lc_fit *f, double metric);

/* ---- the verdict ---------------------------------------------------------------- */

typedef enum tw_rule_id {
    TW_RULE_EVAL_READY = 0,      /* R1 */
    TW_RULE_START_PROMPT,        /* R2 */
    TW_RULE_LATENCY,             /* R3 */
    TW_RULE_DATA_FINETUNE,       /* R4 */
    TW_RULE_TARGET,              /* R5 */
    TW_RULE_GAP_REAL,            /* R6 */
    TW_RULE_CLASSIC_ENOUGH,      /* R7 */
    TW_RULE_KNOWLEDGE_FORMAT,    /* R8 */
    TW_RULE_COST_VOLUME,         /* R9 */
    TW_RULE_COUNT
} tw_rule_id;
const char *tw_rule_code(tw_rule_id r);   /* "R1-eval-ready", ... */

typedef enum tw_confidence { TW_CONF_LOW = 0, TW_CONF_MEDIUM = 1, TW_CONF_HIGH = 2 } tw_confidence;
const char *tw_confidence_str(tw_confidence c);   /* "low", "medium", "high" */

typedef struct tw_rule_line {
    bool fired;
    char *text;               /* the evidence line, with numbers */
} tw_rule_line;

typedef struct tw_arm_cost {
    bool known;
    tw_cost_curve curve;
    double monthly, year_one, per_call, per_correct;   /* at the evidence's volume (NAN unknown) */
} tw_arm_cost;

typedef struct tw_verdict {
    char decision[16];        /* "prompt", "finetune", "classic", "other", "none" */
    int recommended;          /* arm index, -1 none */
    int runner_up;            /* arm index, -1 none */
    tw_confidence confidence;
    char *confidence_reason;
    char *summary;            /* one line */
    tw_rule_line rules[TW_RULE_COUNT];
    char **changes;           /* "what would change the decision", one per entry */
    size_t n_changes;
    tw_arm_cost *costs;       /* per arm, evidence order */
    size_t n_arms;
    tw_lc_fit curve;          /* .ok false when no curve */
} tw_verdict;

/* Apply the rules. The evidence is borrowed for the call only (the verdict copies what it
 * shows). TW_ERR_INVALID for evidence that cannot be judged (no arms), TW_ERR_NOMEM. */
tw_status tw_verdict_decide(tw_verdict *out, const tw_evidence *ev, tw_error *err);
void tw_verdict_free(tw_verdict *v);   /* NULL-safe; leaves *v zeroed */

/* Plain text: summary, confidence, each rule line ("[x] R6-gap-real: ..."), changes. */
tw_status tw_verdict_text(tw_buf *out, const tw_verdict *v, const tw_evidence *ev, tw_error *err);
/* JSON form (new object): {"decision", "recommended", "runner_up", "confidence":
 * {"level", "reason"}, "summary", "rules": [{"id", "fired", "text"}], "changes": [..],
 * "costs": [{"arm", "known", "per_call", "monthly", "year_one", "per_correct"}],
 * "breakeven": [{"a", "b", "kind", "volumes", "cheaper_above"}] (recommended vs each other
 * arm with a known cost), "learning_curve": {"a", "b", "s", "m"} | null}. */
tw_status tw_verdict_json(json_t **out, const tw_verdict *v, const tw_evidence *ev, tw_error *err);

#endif /* TW_DECIDE_VERDICT_H */
