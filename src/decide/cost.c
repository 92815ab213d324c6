/* cost.c — the cost model: per-arm year-one cost curves C(V) = a + b V + e max(0, K - V)
 * from measured tokens / service time and prices, and closed-form break-even volumes.
 * Formulas and their reasons: docs/decision.md, "Cost model".
 * Deliberately not here: reading runs or task files (evidence.c), choosing (verdict.c). */
#include "decide/cost.h"

#include <math.h>
#include <string.h>

const char *tw_bill_kind_str(tw_bill_kind k)
{
    switch (k) {
    case TW_BILL_FREE: return "free";
    case TW_BILL_API: return "api";
    case TW_BILL_HOURLY: return "hourly";
    }
    return "?";
}

tw_cost_params tw_cost_default_params(void)
{
    tw_cost_params p;
    memset(&p, 0, sizeof p);
    p.kind = TW_BILL_FREE;
    p.concurrency = 1;
    p.train_speed = 1;
    return p;
}

static tw_status need(double v, const char *field, const char *kind, tw_error *err)
{
    if (isnan(v)) return tw_error_set(err, TW_ERR_INVALID, "cost: %s is unknown for %s arm", field, kind);
    if (v < 0 || isinf(v))
        return tw_error_set(err, TW_ERR_INVALID, "cost: %s must be a finite number >= 0 (got %g)", field, v);
    return TW_OK;
}

tw_status tw_cost_curve_make(tw_cost_curve *out, const tw_cost_params *p, tw_error *err)
{
    memset(out, 0, sizeof *out);
    tw_status st;
    if (p->kind == TW_BILL_API) {
        if ((st = need(p->tokens_in, "tokens_in", "an api", err)) ||
            (st = need(p->tokens_out, "tokens_out", "an api", err)) ||
            (st = need(p->input_per_mtok, "input_per_mtok", "an api", err)) ||
            (st = need(p->output_per_mtok, "output_per_mtok", "an api", err)) ||
            (st = need(p->prompt_tokens_saved, "prompt_tokens_saved", "an api", err)))
            return st;
        double tin = fmax(0.0, p->tokens_in - p->prompt_tokens_saved);
        out->per_call = (tin * p->input_per_mtok + p->tokens_out * p->output_per_mtok) / 1e6;
    } else if (p->kind == TW_BILL_HOURLY) {
        if ((st = need(p->seconds_per_call, "seconds_per_call", "an hourly", err)) ||
            (st = need(p->per_hour, "per_hour", "an hourly", err)) ||
            (st = need(p->min_hours_month, "min_hours_month", "an hourly", err)))
            return st;
        if (!(p->concurrency >= 1) || isinf(p->concurrency))
            return tw_error_set(err, TW_ERR_INVALID, "cost: concurrency must be >= 1 (got %g)", p->concurrency);
        out->hours_per_call = p->seconds_per_call / p->concurrency / 3600.0;
        out->per_call = out->hours_per_call * p->per_hour;
        out->floor_month = p->min_hours_month * p->per_hour;
    } else if (p->kind != TW_BILL_FREE) {
        return tw_error_set(err, TW_ERR_INVALID, "cost: unknown billing kind %d", (int)p->kind);
    }
    if ((st = need(p->label_hours, "label_hours", "a", err)) || (st = need(p->label_rate, "label_rate", "a", err)) ||
        (st = need(p->train_seconds, "train_seconds", "a", err)) ||
        (st = need(p->train_per_hour, "train_per_hour", "a", err)) ||
        (st = need(p->retrains_per_year, "retrains_per_year", "a", err)) ||
        (st = need(p->retrain_label_hours, "retrain_label_hours", "a", err)))
        return st;
    if (!(p->train_speed > 0) || isinf(p->train_speed))
        return tw_error_set(err, TW_ERR_INVALID, "cost: train_speed must be > 0 (got %g)", p->train_speed);
    double train = p->train_seconds / 3600.0 / p->train_speed * p->train_per_hour;
    out->setup = p->label_hours * p->label_rate + train;
    out->retrain_year = p->retrains_per_year * (train + p->retrain_label_hours * p->label_rate);
    out->a = out->setup + out->retrain_year;
    out->b = 12.0 * out->per_call;
    if (out->floor_month > 0) {
        if (out->per_call > 0) {
            /* max(floor, V c) = V c + c max(0, floor/c - V) */
            out->e = 12.0 * out->per_call;
            out->K = out->floor_month / out->per_call;
        } else {
            out->a += 12.0 * out->floor_month;   /* calls cost nothing: the floor is all */
        }
    }
    return TW_OK;
}

double tw_cost_year_one(const tw_cost_curve *c, double v)
{
    return c->a + c->b * v + c->e * fmax(0.0, c->K - v);
}

double tw_cost_monthly(const tw_cost_curve *c, double v)
{
    return (tw_cost_year_one(c, v) - c->setup) / 12.0;
}

double tw_cost_per_call_year_one(const tw_cost_curve *c, double v)
{
    double y = tw_cost_year_one(c, v);
    if (!(v > 0)) return y > 0 ? INFINITY : 0.0;
    return y / (12.0 * v);
}

double tw_cost_per_correct(const tw_cost_curve *c, double v, double metric)
{
    if (isnan(metric)) return NAN;
    if (metric <= 0) return INFINITY;
    return tw_cost_per_call_year_one(c, v) / metric;
}

/* ---- break-even ----------------------------------------------------------------- */

/* f(V) = C_A(V) - C_B(V), with values within a relative 1e-9 of each other taken as 0. */
static int diff_sign(const tw_cost_curve *A, const tw_cost_curve *B, double v)
{
    double ca = tw_cost_year_one(A, v), cb = tw_cost_year_one(B, v);
    double f = ca - cb, tol = 1e-9 * (fabs(ca) + fabs(cb)) + 1e-12;
    return f > tol ? 1 : f < -tol ? -1 : 0;
}

/* Intercept and slope of one curve on the piece containing v. */
static void piece(const tw_cost_curve *c, double v, double *alpha, double *beta)
{
    *alpha = c->a;
    *beta = c->b;
    if (c->e != 0 && v < c->K) {
        *alpha += c->e * c->K;
        *beta -= c->e;
    }
}

static void sort3(double *x, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
}

void tw_breakeven_solve(tw_breakeven *out, const tw_cost_curve *A, const tw_cost_curve *B)
{
    memset(out, 0, sizeof *out);
    /* pieces: [0, k1), [k1, k2), [k2, inf) with the kinks of both curves */
    double bounds[4];
    size_t nb = 0;
    bounds[nb++] = 0;
    if (A->e != 0 && A->K > 0) bounds[nb++] = A->K;
    if (B->e != 0 && B->K > 0) bounds[nb++] = B->K;
    sort3(bounds, nb);
    /* candidate points where the sign may change: roots of each piece and the kinks */
    double cand[8];
    size_t nc = 0;
    for (size_t i = 0; i < nb; i++) {
        double lo = bounds[i], hi = i + 1 < nb ? bounds[i + 1] : INFINITY;
        double mid = isinf(hi) ? lo + 1 : 0.5 * (lo + hi);
        double aa, ba, ab, bb;
        piece(A, mid, &aa, &ba);
        piece(B, mid, &ab, &bb);
        double alpha = aa - ab, beta = ba - bb;
        if (beta != 0) {
            double r = -alpha / beta;
            if (r > lo && r < hi) cand[nc++] = r;
        }
        if (i > 0) cand[nc++] = lo;
    }
    for (size_t i = 1; i < nc; i++)   /* insertion sort, few items */
        for (size_t j = i; j > 0 && cand[j] < cand[j - 1]; j--) {
            double t = cand[j];
            cand[j] = cand[j - 1];
            cand[j - 1] = t;
        }
    /* the sign on each open interval between candidates, tested at an interior point */
    int sgn[9];
    double prev = 0;
    for (size_t i = 0; i <= nc; i++) {
        double next = i < nc ? cand[i] : INFINITY;
        double t = isinf(next) ? (prev > 0 ? 2 * prev : 1) + 1 : 0.5 * (prev + next);
        sgn[i] = diff_sign(A, B, t);
        prev = next;
    }
    int first = 0, any_nonzero = 0;
    for (size_t i = 0; i <= nc; i++)
        if (sgn[i]) {
            if (!any_nonzero) first = sgn[i];
            any_nonzero = 1;
        }
    if (!any_nonzero) {
        out->kind = TW_BE_SAME;
        return;
    }
    /* walk the intervals: a crossing is where the last non-zero sign flips */
    int last = 0;
    for (size_t i = 0; i <= nc; i++) {
        if (!sgn[i]) continue;
        if (last && sgn[i] != last && out->n < 3) {
            /* the crossing is the candidate that closes the last interval with sign `last`
             * (for a zero stretch between them, its start) */
            size_t j = i;
            while (j > 0 && sgn[j - 1] == 0) j--;
            out->v[out->n] = cand[j - 1];
            out->cheaper_above[out->n] = sgn[i] > 0 ? 1 : 0;
            out->n++;
        }
        last = sgn[i];
    }
    if (out->n == 0) {
        out->kind = TW_BE_NEVER;
        out->cheaper = first > 0 ? 1 : 0;
    } else {
        out->kind = TW_BE_CROSS;
    }
}
