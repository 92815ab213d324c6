/* verdict.c — the rule set of docs/decision.md applied to a tw_evidence, the
 * learning-curve fit behind its projections, and the verdict's text and JSON forms.
 * Rules are evaluated in a fixed order (R1..R9); each writes one evidence line whether it
 * fires or not, so a reader can follow every step.
 * Deliberately not here: file reading (evidence.c), cost formulas (cost.c). */
#include "decide/verdict.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const RULE_CODES[TW_RULE_COUNT] = {
    "R1-eval-ready",   "R2-start-with-prompting", "R3-latency-limit", "R4-data-for-finetune",
    "R5-target",       "R6-gap-real",             "R7-classic-enough", "R8-knowledge-or-format",
    "R9-cost-at-volume",
};

const char *tw_rule_code(tw_rule_id r) { return (unsigned)r < TW_RULE_COUNT ? RULE_CODES[r] : "?"; }

const char *tw_confidence_str(tw_confidence c)
{
    return c == TW_CONF_HIGH ? "high" : c == TW_CONF_MEDIUM ? "medium" : "low";
}

/* ---- learning curve ------------------------------------------------------------- */

/* t_{0.975, df}, df = 1..30 (standard tables); beyond 30 the normal 1.96 is within 2%. */
static double t975(size_t df)
{
    static const double T[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    return df == 0 ? NAN : df <= 30 ? T[df - 1] : 1.96;
}

tw_status tw_lc_fit_points(tw_lc_fit *out, const tw_lc_point *p, size_t n, tw_error *err)
{
    memset(out, 0, sizeof *out);
    double sx = 0, sy = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(p[i].n > 0) || isnan(p[i].metric))
            return tw_error_set(err, TW_ERR_INVALID, "learning curve: point %zu needs n > 0 and a metric", i);
        sx += log(p[i].n);
        sy += p[i].metric;
    }
    if (n < 2) return tw_error_set(err, TW_ERR_INVALID, "learning curve: needs at least two points (got %zu)", n);
    double xbar = sx / (double)n, ybar = sy / (double)n, sxx = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = log(p[i].n) - xbar;
        sxx += dx * dx;
        sxy += dx * (p[i].metric - ybar);
    }
    if (!(sxx > 1e-12)) return tw_error_set(err, TW_ERR_INVALID, "learning curve: needs two different training sizes");
    out->b = sxy / sxx;
    out->a = ybar - out->b * xbar;
    out->xbar = xbar;
    out->sxx = sxx;
    out->m = n;
    out->s = NAN;
    if (n >= 3) {
        double sse = 0;
        for (size_t i = 0; i < n; i++) {
            double r = p[i].metric - (out->a + out->b * log(p[i].n));
            sse += r * r;
        }
        out->s = sqrt(sse / (double)(n - 2));
    }
    out->ok = true;
    return TW_OK;
}

double tw_lc_predict(const tw_lc_fit *f, double n, double cap, double *half)
{
    if (half) *half = NAN;
    if (!f->ok || !(n > 0)) return NAN;
    double x = log(n), y = f->a + f->b * x;
    if (half && f->m >= 3) *half = t975(f->m - 2) * f->s * sqrt(1.0 / (double)f->m + (x - f->xbar) * (x - f->xbar) / f->sxx);
    return fmin(fmax(y, 0.0), cap);
}

double tw_lc_n_for(const tw_lc_fit *f, double metric)
{
    if (!f->ok || !(f->b > 0)) return NAN;
    return exp((metric - f->a) / f->b);
}

/* ---- small formatting helpers ----------------------------------------------------- */

static char *vfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return NULL;
    char *s = malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

typedef struct ctx {
    const tw_evidence *ev;
    tw_verdict *v;
    tw_status st;
} ctx;

static void rule(ctx *c, tw_rule_id r, bool fired, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void rule(ctx *c, tw_rule_id r, bool fired, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    if (!s) c->st = TW_ERR_NOMEM;
    free(c->v->rules[r].text);
    c->v->rules[r].text = s;
    c->v->rules[r].fired = fired;
}

static void change(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void change(ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(fmt, ap);
    va_end(ap);
    char **a = s ? realloc(c->v->changes, (c->v->n_changes + 1) * sizeof *a) : NULL;
    if (!a) {
        free(s);
        c->st = TW_ERR_NOMEM;
        return;
    }
    c->v->changes = a;
    a[c->v->n_changes++] = s;
}

/* Metric value as shown: 3 decimals for fractions, 1 for 0..100 scales. */
static const char *mv(const tw_evidence *ev, double x, char *buf)
{
    if (isnan(x)) return "?";
    snprintf(buf, 32, ev->metric_max > 1 ? "%.1f" : "%.3f", x);
    return buf;
}

/* A difference in points (percentage points for fractions). */
static double pts(const tw_evidence *ev, double d) { return ev->metric_max > 1 ? d : 100.0 * d; }

static const char *money(double x, char *buf)
{
    if (isnan(x)) return "?";
    if (isinf(x)) return "inf";
    if (fabs(x) >= 100) snprintf(buf, 32, "$%.0f", x);
    else if (fabs(x) >= 1) snprintf(buf, 32, "$%.2f", x);
    else snprintf(buf, 32, "$%.3g", x);
    return buf;
}

static const char *vol(double v, char *buf)
{
    if (isnan(v)) return "?";
    if (v >= 1e6) snprintf(buf, 32, "%.3gM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, 32, "%.3gk", v / 1e3);
    else snprintf(buf, 32, "%.3g", v);
    return buf;
}

/* Round to two significant digits ("~600 more labels"). */
static double round2(double x)
{
    if (!(x > 0)) return x;
    double p = pow(10, floor(log10(x)) - 1);
    return round(x / p) * p;
}

static const char *metric_name(const tw_evidence *ev) { return *ev->metric ? ev->metric : "metric"; }

/* ---- the rules -------------------------------------------------------------------- */

typedef struct judge {
    bool *eligible;      /* metric known and not excluded */
    int best;            /* best eligible by metric */
    int baseline;        /* best prompt arm with a metric (R2), -1 none */
} judge;

/* Arm i compared with arm j: p-value of the paired test when they share items, and
 * whether i is statistically tied with j or better (not significantly worse). */
static bool not_worse(const tw_evidence *ev, int i, int j, double *p_out)
{
    const tw_ev_arm *A = &ev->arms[i], *B = &ev->arms[j];
    double p = NAN;
    if (i != j && A->n_items && B->n_items) p = tw_evidence_mcnemar(ev, (size_t)i, (size_t)j, NULL, NULL, NULL);
    if (p_out) *p_out = p;
    if (i == j || A->metric >= B->metric) return true;
    if (!isnan(p)) return p >= ev->alpha;
    if (!isnan(A->hi) && !isnan(B->lo)) return A->hi >= B->lo;   /* CI overlap */
    return false;
}

static const char *test_desc(const tw_evidence *ev, int i, int j, double p, char *buf, size_t cap)
{
    if (!isnan(p)) {
        size_t sh = 0;
        tw_evidence_mcnemar(ev, (size_t)i, (size_t)j, NULL, NULL, &sh);
        snprintf(buf, cap, "McNemar p = %.3g on %zu paired items", p, sh);
    } else if (!isnan(ev->arms[i].hi) && !isnan(ev->arms[j].lo)) {
        snprintf(buf, cap, "no paired items: CIs [%.3g, %.3g] vs [%.3g, %.3g]", ev->arms[i].lo, ev->arms[i].hi,
                 ev->arms[j].lo, ev->arms[j].hi);
    } else {
        snprintf(buf, cap, "no paired items or CIs: point estimates only");
    }
    return buf;
}

static int kind_rank(tw_arm_kind k)
{
    /* start with prompting: among equals prefer prompt, then classic, then fine-tune */
    return k == TW_ARM_PROMPT ? 0 : k == TW_ARM_CLASSIC ? 1 : k == TW_ARM_LORA ? 2 : 3;
}

/* Quality-first preference: kind rank, then metric (higher first), then index. */
static bool pref_before(const tw_evidence *ev, int i, int j)
{
    int ri = kind_rank(ev->arms[i].kind), rj = kind_rank(ev->arms[j].kind);
    if (ri != rj) return ri < rj;
    if (ev->arms[i].metric != ev->arms[j].metric) return ev->arms[i].metric > ev->arms[j].metric;
    return i < j;
}

static void compute_costs(ctx *c)
{
    const tw_evidence *ev = c->ev;
    double V = ev->monthly_volume;
    for (size_t i = 0; i < ev->n_arms; i++) {
        tw_arm_cost *k = &c->v->costs[i];
        k->monthly = k->year_one = k->per_call = k->per_correct = NAN;
        if (!ev->arms[i].cost_known) continue;
        tw_error e;
        if (tw_cost_curve_make(&k->curve, &ev->arms[i].cost, &e) != TW_OK) continue;
        k->known = true;
        if (isnan(V)) continue;
        k->monthly = tw_cost_monthly(&k->curve, V);
        k->year_one = tw_cost_year_one(&k->curve, V);
        k->per_call = tw_cost_per_call_year_one(&k->curve, V);
        k->per_correct = tw_cost_per_correct(&k->curve, V, ev->arms[i].metric / ev->metric_max);
    }
}

static void none_verdict(ctx *c, const char *reason)
{
    snprintf(c->v->decision, sizeof c->v->decision, "none");
    c->v->recommended = c->v->runner_up = -1;
    c->v->confidence = TW_CONF_LOW;
    c->v->confidence_reason = strdup(reason);
    size_t n = strlen(reason) + 64;
    c->v->summary = malloc(n);
    if (c->v->summary) snprintf(c->v->summary, n, "no recommendation yet: %s", reason);
    if (!c->v->confidence_reason || !c->v->summary) c->st = TW_ERR_NOMEM;
    for (int r = 0; r < TW_RULE_COUNT; r++)
        if (!c->v->rules[r].text) rule(c, (tw_rule_id)r, false, "not evaluated (the decision stopped earlier)");
}

static void learning_changes(ctx *c, int rec)
{
    const tw_evidence *ev = c->ev;
    if (ev->n_curve < 2) return;
    tw_error e;
    if (tw_lc_fit_points(&c->v->curve, ev->curve, ev->n_curve, &e) != TW_OK) return;
    const tw_lc_fit *f = &c->v->curve;
    double nmax = 0, cur = NAN;
    for (size_t i = 0; i < ev->n_curve; i++)
        if (ev->curve[i].n >= nmax) {
            nmax = ev->curve[i].n;
            cur = ev->curve[i].metric;
        }
    char b1[32], b2[32];
    double ref = rec >= 0 ? ev->arms[rec].metric : NAN;
    double goal = !isnan(ev->target) ? ev->target : ref;
    double need = (!isnan(goal) && goal > cur) ? tw_lc_n_for(f, goal) : NAN;
    if (!isnan(need) && need > nmax && need < 1e9) {
        double half;
        tw_lc_predict(f, need, ev->metric_max, &half);
        change(c, "with ~%.0f more labels (%.0f in all) the learning curve projects the fine-tune reaching %s %s "
                  "(fit %s = %.3g + %.3g ln n over %zu points%s%.1f points at that size)",
               round2(need - nmax), round2(need), isnan(ev->target) ? "the recommended arm's" : "the target",
               mv(ev, goal, b1), metric_name(ev), f->a, f->b, f->m, isnan(half) ? "; uncertainty unknown with 2 points" : "; 95% CI of the fitted mean +-",
               isnan(half) ? 0.0 : pts(ev, half));
    } else {
        double half, y = tw_lc_predict(f, 2 * nmax, ev->metric_max, &half);
        if (isnan(half))
            change(c, "with ~%.0f more labels (%.0f in all) the learning curve projects %+.1f points (%s; fit on 2 points, "
                      "uncertainty unknown)", round2(nmax), round2(2 * nmax), pts(ev, y - cur), mv(ev, y, b2));
        else
            change(c, "with ~%.0f more labels (%.0f in all) the learning curve projects %+.1f points (%s +- %.1f points, "
                      "95%% CI of the fitted mean over %zu points)", round2(nmax), round2(2 * nmax), pts(ev, y - cur),
                   mv(ev, y, b2), pts(ev, half), f->m);
    }
}

tw_status tw_verdict_decide(tw_verdict *out, const tw_evidence *ev, tw_error *err)
{
    memset(out, 0, sizeof *out);
    out->recommended = out->runner_up = -1;
    if (!ev || ev->n_arms == 0) return tw_error_set(err, TW_ERR_INVALID, "verdict: the evidence has no arms");
    size_t n = ev->n_arms;
    out->costs = calloc(n, sizeof *out->costs);
    bool *elig = calloc(n, 1), *cont = calloc(n, 1);
    if (!out->costs || !elig || !cont) {
        free(elig);
        free(cont);
        tw_verdict_free(out);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    out->n_arms = n;
    ctx c = {ev, out, TW_OK};
    char b1[32], b2[32], b3[32], t1[160];
    compute_costs(&c);
    const char *M = metric_name(ev);

    /* R1: is the evaluation set big enough to compare anything? */
    size_t eval_rows = ev->eval_rows;
    bool any_metric = false;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(ev->arms[i].metric)) any_metric = true;
        if (!ev->have_audit && ev->arms[i].n > eval_rows) eval_rows = ev->arms[i].n;
    }
    bool r1 = !any_metric || eval_rows < ev->min_eval || (ev->have_audit && ev->eval_level == TW_AUDIT_NOT_READY);
    char mde[96] = "";
    if (!isnan(ev->mde)) snprintf(mde, sizeof mde, "; differences below %.1f points cannot be told from noise", pts(ev, ev->mde));
    if (r1) {
        if (!any_metric) rule(&c, TW_RULE_EVAL_READY, true, "no arm has a measured %s", M);
        else
            rule(&c, TW_RULE_EVAL_READY, true, "the evaluation set has %zu rows (%s; at least %zu are needed to compare arms)%s",
                 eval_rows, ev->have_audit ? tw_audit_level_str(ev->eval_level) : "no audit", ev->min_eval, mde);
        if (any_metric && eval_rows < ev->min_eval)
            change(&c, "with ~%zu more labeled evaluation rows (%zu in all) the comparison becomes trustworthy",
                   ev->min_eval - eval_rows, ev->min_eval);
        none_verdict(&c, "the evaluation data cannot support a comparison (R1)");
        goto done;
    }
    rule(&c, TW_RULE_EVAL_READY, false, "the evaluation set has %zu rows (>= %zu)%s", eval_rows, ev->min_eval, mde);

    /* R2: the baseline is the best prompt arm */
    int base = -1;
    for (size_t i = 0; i < n; i++)
        if (ev->arms[i].kind == TW_ARM_PROMPT && !isnan(ev->arms[i].metric) &&
            (base < 0 || ev->arms[i].metric > ev->arms[base].metric))
            base = (int)i;
    if (base >= 0)
        rule(&c, TW_RULE_START_PROMPT, true, "start with prompting: the best prompt arm '%s'%s%s%s scores %s %s [%s, %s]",
             ev->arms[base].name, *ev->arms[base].strategy ? " (" : "", ev->arms[base].strategy,
             *ev->arms[base].strategy ? ")" : "", M, mv(ev, ev->arms[base].metric, b1), mv(ev, ev->arms[base].lo, b2),
             mv(ev, ev->arms[base].hi, b3));
    else
        rule(&c, TW_RULE_START_PROMPT, false, "no prompt arm was evaluated, so prompting cannot be the baseline");

    /* R3: latency limit */
    for (size_t i = 0; i < n; i++) elig[i] = !isnan(ev->arms[i].metric);
    if (!isnan(ev->max_latency_ms)) {
        tw_buf bl = {0};
        for (size_t i = 0; i < n; i++) {
            const tw_ev_arm *a = &ev->arms[i];
            double l = !isnan(a->latency_p90_ms) ? a->latency_p90_ms : a->latency_mean_ms;
            if (elig[i] && !isnan(l) && l > ev->max_latency_ms) {
                elig[i] = false;
                if (tw_buf_printf(&bl, "%s'%s' (p90 %.0f ms)", bl.len ? ", " : "", a->name, l)) c.st = TW_ERR_NOMEM;
            }
        }
        if (bl.len)
            rule(&c, TW_RULE_LATENCY, true, "over the %.0f ms latency limit, set aside: %s", ev->max_latency_ms, bl.data);
        else
            rule(&c, TW_RULE_LATENCY, false, "every arm with a measured latency is within the %.0f ms limit",
                 ev->max_latency_ms);
        tw_buf_free(&bl);
    } else {
        rule(&c, TW_RULE_LATENCY, false, "no latency limit was given");
    }

    /* R4: enough labeled data for a fine-tune? */
    bool any_lora = false;
    for (size_t i = 0; i < n; i++) any_lora |= ev->arms[i].kind == TW_ARM_LORA;
    if (ev->have_audit && ev->train_rows < ev->min_train) {
        for (size_t i = 0; i < n; i++)
            if (ev->arms[i].kind == TW_ARM_LORA) elig[i] = false;
        rule(&c, TW_RULE_DATA_FINETUNE, true,
             "only %zu labeled training rows (< %zu): too few for a fine-tune to be trusted%s", ev->train_rows,
             ev->min_train, any_lora ? "; fine-tuned arms are set aside" : "");
        change(&c, "with ~%zu more labeled training rows (%zu in all) a fine-tune becomes worth evaluating",
               ev->min_train - ev->train_rows, ev->min_train);
    } else if (ev->have_audit) {
        rule(&c, TW_RULE_DATA_FINETUNE, false, "%zu labeled training rows: enough to try a fine-tune%s", ev->train_rows,
             ev->train_rows < ev->good_train ? " (below the ~1,000 where one usually pays for itself)" : "");
    } else {
        rule(&c, TW_RULE_DATA_FINETUNE, false, "training data size unknown (no audit report)");
    }

    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (elig[i] && (best < 0 || ev->arms[i].metric > ev->arms[best].metric)) best = (int)i;
    if (best < 0) {
        none_verdict(&c, "every measured arm was set aside (R3/R4)");
        goto done;
    }

    /* R5: who meets the target? */
    bool any_adequate = false;
    if (!isnan(ev->target)) {
        tw_buf bl = {0};
        for (size_t i = 0; i < n; i++)
            if (elig[i] && ev->arms[i].metric >= ev->target) {
                any_adequate = true;
                if (tw_buf_printf(&bl, "%s'%s' %s [%s, %s]", bl.len ? ", " : "", ev->arms[i].name,
                                  mv(ev, ev->arms[i].metric, b1), mv(ev, ev->arms[i].lo, b2), mv(ev, ev->arms[i].hi, b3)))
                    c.st = TW_ERR_NOMEM;
            }
        if (any_adequate)
            rule(&c, TW_RULE_TARGET, true, "target %s >= %s met by %s", M, mv(ev, ev->target, b1), bl.data);
        else
            rule(&c, TW_RULE_TARGET, false, "no arm reaches the target %s >= %s (best: '%s' %s, %.1f points short)", M,
                 mv(ev, ev->target, b1), ev->arms[best].name, mv(ev, ev->arms[best].metric, b2),
                 pts(ev, ev->target - ev->arms[best].metric));
        tw_buf_free(&bl);
    } else {
        rule(&c, TW_RULE_TARGET, false, "no target set: the contenders are the best arm and those tied with it");
    }
    for (size_t i = 0; i < n; i++) {
        if (!elig[i]) continue;
        cont[i] = any_adequate ? ev->arms[i].metric >= ev->target : not_worse(ev, (int)i, best, NULL);
    }

    /* R6: is the gap between the best arm and prompting real? */
    if (base >= 0 && elig[base] && base != best) {
        double p;
        bool tied = not_worse(ev, base, best, &p);
        test_desc(ev, best, base, p, t1, sizeof t1);
        double d = pts(ev, ev->arms[best].metric - ev->arms[base].metric);
        if (!tied)
            rule(&c, TW_RULE_GAP_REAL, true, "'%s' beats the best prompt arm by %+.1f points (%s): the gap is real%s",
                 ev->arms[best].name, d, t1,
                 any_adequate && ev->arms[base].metric >= ev->target ? ", but prompting already meets the target" : "");
        else
            rule(&c, TW_RULE_GAP_REAL, false,
                 "'%s' is %+.1f points over the best prompt arm (%s): within noise, so the simpler arm is not beaten",
                 ev->arms[best].name, d, t1);
    } else if (base >= 0 && base == best) {
        rule(&c, TW_RULE_GAP_REAL, false, "the best prompt arm '%s' is also the best arm overall", ev->arms[base].name);
    } else {
        rule(&c, TW_RULE_GAP_REAL, false, "no eligible prompt arm to compare with");
    }

    /* R7: is the smallest model (classic) already enough? */
    int classic = -1, any_classic = -1;
    for (size_t i = 0; i < n; i++) {
        if (ev->arms[i].kind != TW_ARM_CLASSIC || !elig[i]) continue;
        if (any_classic < 0 || ev->arms[i].metric > ev->arms[any_classic].metric) any_classic = (int)i;
        if (cont[i] && (classic < 0 || ev->arms[i].metric > ev->arms[classic].metric)) classic = (int)i;
    }
    if (classic >= 0) {
        double p = NAN;
        not_worse(ev, classic, best, &p);
        if (any_adequate)
            rule(&c, TW_RULE_CLASSIC_ENOUGH, true, "the classic arm '%s' (%s) meets the target: the smallest model is enough",
                 ev->arms[classic].name, mv(ev, ev->arms[classic].metric, b1));
        else
            rule(&c, TW_RULE_CLASSIC_ENOUGH, true,
                 "the classic arm '%s' (%s) is within noise of the best '%s' (%s, %s): the smallest model is enough",
                 ev->arms[classic].name, mv(ev, ev->arms[classic].metric, b1), ev->arms[best].name,
                 mv(ev, ev->arms[best].metric, b2), test_desc(ev, classic, best, p, t1, sizeof t1));
    } else if (any_classic >= 0) {
        double p = NAN;
        not_worse(ev, any_classic, best, &p);
        rule(&c, TW_RULE_CLASSIC_ENOUGH, false, "the classic arm '%s' (%s) %s (%s)", ev->arms[any_classic].name,
             mv(ev, ev->arms[any_classic].metric, b1),
             any_adequate ? "misses the target" : "is significantly below the best arm",
             test_desc(ev, any_classic, best, p, t1, sizeof t1));
    } else {
        rule(&c, TW_RULE_CLASSIC_ENOUGH, false, "no classic arm was evaluated");
    }

    /* R8: knowledge (retrieval helps) or format/behaviour (malformed outputs)? */
    {
        int r = -1, q = -1;
        for (size_t i = 0; i < n; i++) {
            const tw_ev_arm *a = &ev->arms[i];
            if (a->kind != TW_ARM_PROMPT || isnan(a->metric)) continue;
            int *slot = a->retrieval ? &r : &q;
            if (*slot < 0 || a->metric > ev->arms[*slot].metric) *slot = (int)i;
        }
        bool knowledge = false, format = false;
        char kn[320] = "", fm[320] = "";
        if (r >= 0 && q >= 0) {
            double p = NAN;
            bool q_not_worse = not_worse(ev, q, r, &p);
            knowledge = ev->arms[r].metric > ev->arms[q].metric && !q_not_worse;
            test_desc(ev, r, q, p, t1, sizeof t1);
            snprintf(kn, sizeof kn, "retrieval ('%s') vs none ('%s'): %+.1f points (%s)%s", ev->arms[r].name,
                     ev->arms[q].name, pts(ev, ev->arms[r].metric - ev->arms[q].metric), t1,
                     knowledge ? ": the gap is knowledge, so retrieval comes before fine-tuning" : "");
        } else {
            snprintf(kn, sizeof kn, "no retrieval/no-retrieval pair of prompt arms to tell knowledge gaps");
        }
        if (base >= 0 && !isnan(ev->arms[base].invalid_rate)) {
            double ir = ev->arms[base].invalid_rate;
            format = ir > ev->invalid_threshold;
            snprintf(fm, sizeof fm, "%.1f%% of the best prompt arm's outputs are malformed (threshold %.1f%%)%s", 100 * ir,
                     100 * ev->invalid_threshold,
                     !format ? "" : ev->arms[base].constrained ? ": a behaviour problem even with constrained output, which a fine-tune addresses"
                                                              : ": a format problem: constrain the output or fine-tune");
        } else {
            snprintf(fm, sizeof fm, "format validity unknown");
        }
        rule(&c, TW_RULE_KNOWLEDGE_FORMAT, knowledge || format, "%s; %s", kn, fm);
        if (knowledge) change(&c, "the problem looks like knowledge: add retrieval (rag/knn) to the candidate arms before a fine-tune");
        if (format && !ev->arms[base].constrained)
            change(&c, "the prompt arm's output format fails: try constrained output (choice/json grammar), which may close the gap without training");
    }

    /* R9 + selection */
    int pref = -1;
    for (size_t i = 0; i < n; i++)
        if (cont[i] && (pref < 0 || pref_before(ev, (int)i, pref))) pref = (int)i;
    int rec = pref;
    bool all_cost = !isnan(ev->monthly_volume);
    size_t n_cont = 0;
    for (size_t i = 0; i < n; i++)
        if (cont[i]) {
            n_cont++;
            all_cost &= out->costs[i].known;
        }
    int cheapest = -1;
    if (all_cost)
        for (size_t i = 0; i < n; i++) {
            if (!cont[i]) continue;
            if (cheapest < 0) { cheapest = (int)i; continue; }
            double yi = out->costs[i].year_one, yc = out->costs[cheapest].year_one;
            double tol = 1e-9 * (fabs(yi) + fabs(yc));
            if (yi < yc - tol || (fabs(yi - yc) <= tol && pref_before(ev, (int)i, cheapest))) cheapest = (int)i;
        }
    if (cheapest >= 0) {
        tw_buf bl = {0};
        for (size_t i = 0; i < n; i++)
            if (cont[i] && tw_buf_printf(&bl, "%s'%s' %s (%s per correct answer)", bl.len ? ", " : "", ev->arms[i].name,
                                         money(out->costs[i].year_one, b1), money(out->costs[i].per_correct, b2)))
                c.st = TW_ERR_NOMEM;
        bool differs = classic < 0 && cheapest != pref;
        rule(&c, TW_RULE_COST_VOLUME, differs, "at %s calls/month, year-one cost of the contenders: %s%s",
             vol(ev->monthly_volume, b3), bl.data ? bl.data : "",
             differs       ? "; the cheapest wins among arms of equal standing"
             : classic >= 0 ? "; the smallest model already won (R7)"
                            : "; the preferred arm is also the cheapest");
        tw_buf_free(&bl);
        if (classic < 0) rec = cheapest;
    } else {
        rule(&c, TW_RULE_COST_VOLUME, false, "%s",
             isnan(ev->monthly_volume) ? "no monthly volume given: cost cannot rank the contenders"
                                       : "prices or token/latency measurements are missing for a contender");
    }
    if (classic >= 0) rec = classic;
    out->recommended = rec;

    /* runner-up: another contender (cheapest / preferred), else the best remaining arm */
    int ru = -1;
    for (size_t i = 0; i < n; i++) {
        if ((int)i == rec || !cont[i]) continue;
        if (ru < 0) { ru = (int)i; continue; }
        if (cheapest >= 0 ? out->costs[i].year_one < out->costs[ru].year_one : pref_before(ev, (int)i, ru)) ru = (int)i;
    }
    if (ru < 0)
        for (size_t i = 0; i < n; i++)
            if ((int)i != rec && elig[i] && (ru < 0 || ev->arms[i].metric > ev->arms[ru].metric)) ru = (int)i;
    out->runner_up = ru;

    const tw_ev_arm *R = &ev->arms[rec];
    snprintf(out->decision, sizeof out->decision, "%s",
             R->kind == TW_ARM_PROMPT ? "prompt" : R->kind == TW_ARM_LORA ? "finetune" : R->kind == TW_ARM_CLASSIC ? "classic" : "other");

    /* confidence: the first reason that lowers it */
    char why[256];
    tw_confidence conf = TW_CONF_HIGH;
    snprintf(why, sizeof why, "evaluation set of %zu rows, the choice is backed by %s", eval_rows,
             any_adequate ? "the target" : "a paired test against the alternatives");
    if (!isnan(ev->target) && !any_adequate) {
        conf = TW_CONF_LOW;
        snprintf(why, sizeof why, "no arm reaches the target: this is the best available, not a solution");
    } else if (eval_rows < ev->good_eval || (ev->have_audit && ev->eval_level != TW_AUDIT_READY)) {
        conf = TW_CONF_MEDIUM;
        snprintf(why, sizeof why, "evaluation set of %zu rows (< %zu): only large differences are detectable", eval_rows,
                 ev->good_eval);
    } else if (R->kind == TW_ARM_LORA && ev->have_audit && ev->train_rows < ev->good_train) {
        conf = TW_CONF_MEDIUM;
        snprintf(why, sizeof why, "the fine-tune was trained on %zu rows (< %zu)", ev->train_rows, ev->good_train);
    } else if (!isnan(ev->target) && !(R->lo >= ev->target)) {
        conf = TW_CONF_MEDIUM;
        snprintf(why, sizeof why, "the recommended arm meets the target by its estimate but its CI lower bound %s does not",
                 mv(ev, R->lo, b1));
    } else if (n_cont > 1 && cheapest < 0) {
        conf = TW_CONF_MEDIUM;
        snprintf(why, sizeof why, "%zu arms are of equal standing and their cost at volume is unknown", n_cont);
    }
    out->confidence = conf;
    out->confidence_reason = strdup(why);

    {
        char s[512];
        snprintf(s, sizeof s, "%s: use '%s' (%s %s [%s, %s])%s%s%s", out->decision, R->name, M, mv(ev, R->metric, b1),
                 mv(ev, R->lo, b2), mv(ev, R->hi, b3), ru >= 0 ? "; runner-up '" : "", ru >= 0 ? ev->arms[ru].name : "",
                 ru >= 0 ? "'" : "");
        out->summary = strdup(s);
    }
    if (!out->summary || !out->confidence_reason) c.st = TW_ERR_NOMEM;

    /* what would change the decision: break-even volumes against the other arms */
    if (out->costs[rec].known) {
        for (size_t i = 0; i < n; i++) {
            if ((int)i == rec || !elig[i] || !out->costs[i].known) continue;
            if (!cont[i] && (int)i != ru) continue;
            tw_breakeven be;
            tw_breakeven_solve(&be, &out->costs[rec].curve, &out->costs[i].curve);
            for (size_t k = 0; k < be.n; k++) {
                int cheap = be.cheaper_above[k] ? (int)i : rec, other = cheap == rec ? (int)i : rec;
                change(&c, "above %s calls/month '%s' is cheaper than '%s' over year one (%s at that volume)",
                       vol(be.v[k], b1), ev->arms[cheap].name, ev->arms[other].name,
                       money(tw_cost_year_one(&out->costs[rec].curve, be.v[k]), b2));
            }
            if (be.kind == TW_BE_NEVER && (int)i == ru)
                change(&c, "no volume changes the order: '%s' is cheaper than '%s' at every volume",
                       ev->arms[be.cheaper ? i : (size_t)rec].name, ev->arms[be.cheaper ? (size_t)rec : i].name);
        }
    }
    learning_changes(&c, rec);
    if (eval_rows < ev->good_eval)
        change(&c, "with ~%zu more evaluation rows (%zu in all) smaller differences between arms become detectable",
               ev->good_eval - eval_rows, ev->good_eval);

done:
    free(elig);
    free(cont);
    if (c.st) {
        tw_verdict_free(out);
        return tw_error_set(err, c.st, "verdict: out of memory");
    }
    return TW_OK;
}

void tw_verdict_free(tw_verdict *v)
{
    if (!v) return;
    for (int r = 0; r < TW_RULE_COUNT; r++) free(v->rules[r].text);
    for (size_t i = 0; i < v->n_changes; i++) free(v->changes[i]);
    free(v->changes);
    free(v->costs);
    free(v->confidence_reason);
    free(v->summary);
    memset(v, 0, sizeof *v);
    v->recommended = v->runner_up = -1;
}

tw_status tw_verdict_text(tw_buf *out, const tw_verdict *v, const tw_evidence *ev, tw_error *err)
{
    int bad = tw_buf_printf(out, "Verdict: %s\nConfidence: %s (%s)\n", v->summary ? v->summary : "",
                            tw_confidence_str(v->confidence), v->confidence_reason ? v->confidence_reason : "") != TW_OK;
    for (int r = 0; r < TW_RULE_COUNT; r++)
        bad |= tw_buf_printf(out, "  [%c] %s: %s\n", v->rules[r].fired ? 'x' : ' ', tw_rule_code((tw_rule_id)r),
                             v->rules[r].text ? v->rules[r].text : "") != TW_OK;
    if (v->n_changes) bad |= tw_buf_puts(out, "What would change the decision:\n") != TW_OK;
    for (size_t i = 0; i < v->n_changes; i++) bad |= tw_buf_printf(out, "  - %s\n", v->changes[i]) != TW_OK;
    (void)ev;
    return bad ? tw_error_set(err, TW_ERR_NOMEM, "out of memory") : TW_OK;
}

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

tw_status tw_verdict_json(json_t **out, const tw_verdict *v, const tw_evidence *ev, tw_error *err)
{
    *out = NULL;
    json_t *o = json_object(), *rules = json_array(), *changes = json_array(), *costs = json_array(), *bes = json_array();
    int bad = !o || !rules || !changes || !costs || !bes;
    const char *rn = v->recommended >= 0 ? ev->arms[v->recommended].name : NULL;
    const char *un = v->runner_up >= 0 ? ev->arms[v->runner_up].name : NULL;
    if (!bad) {
        bad |= json_object_set_new(o, "decision", json_string(v->decision));
        bad |= json_object_set_new(o, "recommended", rn ? json_string(rn) : json_null());
        bad |= json_object_set_new(o, "runner_up", un ? json_string(un) : json_null());
        bad |= json_object_set_new(o, "confidence", json_pack("{s:s, s:s}", "level", tw_confidence_str(v->confidence), "reason",
                                                              v->confidence_reason ? v->confidence_reason : ""));
        bad |= json_object_set_new(o, "summary", json_string(v->summary ? v->summary : ""));
        for (int r = 0; r < TW_RULE_COUNT; r++)
            bad |= json_array_append_new(rules, json_pack("{s:s, s:b, s:s}", "id", tw_rule_code((tw_rule_id)r), "fired",
                                                          v->rules[r].fired, "text", v->rules[r].text ? v->rules[r].text : ""));
        for (size_t i = 0; i < v->n_changes; i++) bad |= json_array_append_new(changes, json_string(v->changes[i]));
        for (size_t i = 0; i < v->n_arms && i < ev->n_arms; i++) {
            const tw_arm_cost *k = &v->costs[i];
            json_t *e = json_pack("{s:s, s:b}", "arm", ev->arms[i].name, "known", k->known);
            bad |= !e;
            if (e) {
                bad |= json_object_set_new(e, "per_call", jnum(k->per_call));
                bad |= json_object_set_new(e, "monthly", jnum(k->monthly));
                bad |= json_object_set_new(e, "year_one", jnum(k->year_one));
                bad |= json_object_set_new(e, "per_correct", jnum(k->per_correct));
            }
            bad |= json_array_append_new(costs, e);
        }
        int r = v->recommended;
        for (size_t i = 0; r >= 0 && i < v->n_arms; i++) {
            if ((int)i == r || !v->costs[r].known || !v->costs[i].known) continue;
            tw_breakeven be;
            tw_breakeven_solve(&be, &v->costs[r].curve, &v->costs[i].curve);
            json_t *vs = json_array(), *ca = json_array();
            for (size_t k = 0; vs && ca && k < be.n; k++) {
                bad |= json_array_append_new(vs, json_real(be.v[k]));
                bad |= json_array_append_new(ca, json_string(be.cheaper_above[k] ? ev->arms[i].name : ev->arms[r].name));
            }
            const char *kind = be.kind == TW_BE_CROSS ? "cross" : be.kind == TW_BE_NEVER ? "never" : "same";
            json_t *e = vs && ca ? json_pack("{s:s, s:s, s:s, s:o, s:o}", "a", ev->arms[r].name, "b", ev->arms[i].name,
                                             "kind", kind, "volumes", vs, "cheaper_above", ca)
                                 : NULL;
            if (!e) {
                json_decref(vs);
                json_decref(ca);
                bad = 1;
            }
            if (e && be.kind == TW_BE_NEVER)
                bad |= json_object_set_new(e, "cheaper", json_string(be.cheaper ? ev->arms[i].name : ev->arms[r].name));
            bad |= json_array_append_new(bes, e);
        }
        bad |= json_object_set_new(o, "rules", rules);
        bad |= json_object_set_new(o, "changes", changes);
        bad |= json_object_set_new(o, "costs", costs);
        bad |= json_object_set_new(o, "breakeven", bes);
        rules = changes = costs = bes = NULL;
        json_t *lc = json_null();
        if (v->curve.ok) {
            lc = json_pack("{s:f, s:f, s:I}", "a", v->curve.a, "b", v->curve.b, "m", (json_int_t)v->curve.m);
            if (lc) json_object_set_new(lc, "s", jnum(v->curve.s));
        }
        bad |= json_object_set_new(o, "learning_curve", lc);
    }
    json_decref(rules);
    json_decref(changes);
    json_decref(costs);
    json_decref(bes);
    if (bad) {
        json_decref(o);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    *out = o;
    return TW_OK;
}
