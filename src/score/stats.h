/* stats.h — statistics for evaluation results: seeded percentile bootstrap (generic,
 * over per-item sufficient statistics), paired tests (exact McNemar, paired
 * bootstrap), Wilson intervals, quantiles, and power calculations (minimum
 * detectable difference and required sample size). Formulas: docs/metrics.md.
 * Pure functions; the bootstrap is deterministic for a given seed whatever the
 * number of threads. */
#ifndef TW_SCORE_STATS_H
#define TW_SCORE_STATS_H

#include "base/base.h"

#include <stdint.h>

/* ---- distributions and intervals ---------------------------------------------- */

double tw_norm_cdf(double z);   /* standard normal CDF */
double tw_norm_ppf(double p);   /* its inverse, p in (0,1); +-INFINITY at 0/1, NAN outside */

/* Wilson score interval for k successes out of n at the given level (e.g. 0.95).
 * n == 0 gives [0, 1]. */
void tw_wilson(double *lo, double *hi, double k, double n, double level);

/* Linear-interpolation quantile of sorted x (n >= 1), q in [0,1]: numpy's default
 * ("linear", type 7): h = (n-1) q, x[floor h] + (h - floor h)(x[floor h + 1] - x[floor h]). */
double tw_quantile_sorted(const double *sorted, size_t n, double q);

/* ---- paired tests ------------------------------------------------------------- */

/* Exact McNemar test: two-sided binomial test of the discordant pairs,
 * b = #(A right, B wrong), c = #(A wrong, B right):
 *   p = min(1, 2 * P[X <= min(b, c)]),  X ~ Binomial(b + c, 1/2);  b + c == 0 -> 1. */
double tw_mcnemar_exact(uint64_t b, uint64_t c);

/* ---- bootstrap ------------------------------------------------------------------ */

/* One bootstrap replicate: given the multiplicity w[i] of each of the n items in the
 * resample (sum w = spec->n), write spec->n_out statistics to out. With spec->group set,
 * w and n are over the groups instead (w[g] = draws that fell on items of group g).
 * Must be thread-safe:
 * ctx is shared read-only; scratch is private to the calling thread
 * (spec->scratch_bytes, uninitialised). A NAN output marks "undefined in this
 * replicate" and is skipped by the interval functions. */
typedef void (*tw_boot_fn)(double *out, const uint32_t *w, size_t n, const void *ctx, void *scratch);

typedef struct tw_boot_spec {
    size_t n;              /* items */
    size_t n_out;          /* statistics per replicate */
    tw_boot_fn fn;
    const void *ctx;
    size_t scratch_bytes;
    size_t replicates;     /* B */
    uint64_t seed;
    /* Optional compression: group[i] in [0, n_groups) for each item. Items with equal
     * sufficient statistics are interchangeable in a resample, so fn may work on
     * n_groups distinct groups (e.g. (gold, pred) cells) instead of n items. The
     * replicates are identical to the ungrouped ones (same draws). */
    const uint32_t *group;
    size_t n_groups;
} tw_boot_spec;

/* reps (B, n_out) row-major, caller-allocated. Replicate b resamples n items with
 * replacement using an RNG seeded from (seed, b), so the result does not depend on
 * the thread count (OpenMP when built with it). n == 0 fills NAN. */
tw_status tw_bootstrap(double *reps, const tw_boot_spec *spec, tw_error *err);

/* Percentile interval of column col of reps (B rows, stride doubles per row) at the
 * given level: the (1-level)/2 and (1+level)/2 quantiles (tw_quantile_sorted).
 * NAN entries are skipped; all-NAN gives NAN bounds. */
tw_status tw_boot_ci(double *lo, double *hi, const double *reps, size_t B, size_t stride, size_t col,
                     double level, tw_error *err);

/* Two-sided bootstrap p-value that column col (a difference) is 0:
 *   p = min(1, 2 * min(1 + #{d <= 0}, 1 + #{d >= 0}) / (B + 1))   over non-NAN d.
 * (The +1 keeps p > 0 with finitely many replicates.) */
double tw_boot_pvalue(const double *reps, size_t B, size_t stride, size_t col);

/* Convenience: percentile CI of the mean of x[0..n). */
tw_status tw_bootstrap_mean_ci(double *lo, double *hi, const double *x, size_t n, size_t B,
                               uint64_t seed, double level, tw_error *err);

/* ---- power: sample size and minimum detectable difference ------------------------ */
/* Two-sided alpha (e.g. 0.05), power (e.g. 0.8); z_a = ppf(1 - alpha/2), z_b = ppf(power). */

/* Independent samples, two proportions p1 vs p2 (normal approximation, pooled variance
 * under H0, no continuity correction; Fleiss, Levin & Paik, Statistical Methods for
 * Rates and Proportions):
 *   n = (z_a sqrt(2 pbar qbar) + z_b sqrt(p1 q1 + p2 q2))^2 / (p2 - p1)^2,  pbar = (p1+p2)/2
 * items per group, not rounded. p1 == p2 -> INFINITY. */
double tw_n_two_prop(double p1, double p2, double alpha, double power);
/* Smallest d > 0 such that tw_n_two_prop(p1, p1 + d) <= n (an improvement over the
 * baseline p1), found by bisection; NAN if even p2 = 1 needs more than n items. */
double tw_mde_two_prop(double p1, double n, double alpha, double power);

/* Paired (McNemar) design, Connor (1987): discordance rate psi = p10 + p01, difference
 * in accuracy delta = p10 - p01 (|delta| <= psi):
 *   n = (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2   pairs, not rounded. */
double tw_n_mcnemar(double delta, double psi, double alpha, double power);
/* Smallest delta in (0, psi] with tw_n_mcnemar(delta, psi) <= n; NAN if none. */
double tw_mde_mcnemar(double n, double psi, double alpha, double power);

#endif /* TW_SCORE_STATS_H */
