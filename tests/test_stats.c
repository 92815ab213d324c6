/* test_stats.c — bootstrap, McNemar, Wilson, quantiles, normal quantiles and power
 * (stats.c): hand-computed binomials and textbook sample sizes, plus scipy/numpy
 * fixtures (tests/data/score/stats.json from tests/ref/gen_score_fixtures.py). */
#include "testutil.h"
#include "score/stats.h"

#include <jansson.h>
#include <math.h>
#include <omp.h>

static json_t *load_fixture(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/score/%s", name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "cannot load %s: %s", path, je.text);
    return j;
}

/* ---- McNemar ------------------------------------------------------------------------- */

Test(mcnemar, hand_computed_binomials)
{
    /* p = 2 * P[X <= min(b,c)], X ~ Bin(b+c, 1/2):
     * b=1, c=6: n=7, P[X<=1] = (C(7,0)+C(7,1))/2^7 = 8/128 -> p = 0.125
     * b=0, c=5: P[X<=0] = 1/32 -> p = 0.0625
     * b=2, c=8: (1+10+45)/1024 = 56/1024 -> p = 0.109375
     * b=3, c=3: tail >= 1/2 -> p = 1;  b=c=0 -> 1 (no discordant pairs) */
    cr_expect_float_eq(tw_mcnemar_exact(1, 6), 0.125, 1e-14);
    cr_expect_float_eq(tw_mcnemar_exact(6, 1), 0.125, 1e-14);
    cr_expect_float_eq(tw_mcnemar_exact(0, 5), 0.0625, 1e-14);
    cr_expect_float_eq(tw_mcnemar_exact(2, 8), 0.109375, 1e-14);
    cr_expect_float_eq(tw_mcnemar_exact(3, 3), 1.0, 1e-14);
    cr_expect_float_eq(tw_mcnemar_exact(0, 0), 1.0, 1e-14);
    /* b=0, c=1: 2 * 1/2 = 1 */
    cr_expect_float_eq(tw_mcnemar_exact(0, 1), 1.0, 1e-14);
}

Test(mcnemar, matches_scipy_binomtest)
{
    json_t *fx = load_fixture("stats.json");
    size_t i;
    json_t *c;
    cr_assert(json_array_size(json_object_get(fx, "mcnemar")) >= 8);
    json_array_foreach(json_object_get(fx, "mcnemar"), i, c) {
        uint64_t b = (uint64_t)json_integer_value(json_object_get(c, "b"));
        uint64_t cc = (uint64_t)json_integer_value(json_object_get(c, "c"));
        double want = json_number_value(json_object_get(c, "p"));
        double got = tw_mcnemar_exact(b, cc);
        cr_expect(fabs(got - want) <= 1e-10 * fmax(1e-300, want) + 1e-300, "b=%llu c=%llu: %.17g vs %.17g",
                  (unsigned long long)b, (unsigned long long)cc, got, want);
    }
    json_decref(fx);
}

/* ---- normal, Wilson, quantiles --------------------------------------------------------- */

Test(normal, ppf_cdf)
{
    cr_expect_float_eq(tw_norm_ppf(0.975), 1.959963984540054, 1e-14);
    cr_expect_float_eq(tw_norm_ppf(0.8), 0.8416212335729143, 1e-14);
    cr_expect_float_eq(tw_norm_ppf(0.5), 0.0, 1e-15);
    cr_expect(isinf(tw_norm_ppf(1.0)));
    cr_expect(isnan(tw_norm_ppf(1.5)));
    json_t *fx = load_fixture("stats.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(fx, "ppf"), i, c) {
        double p = json_number_value(json_object_get(c, "p")), z = json_number_value(json_object_get(c, "z"));
        cr_expect(fabs(tw_norm_ppf(p) - z) < 1e-9 * fmax(1, fabs(z)), "ppf(%g) = %.17g vs %.17g", p, tw_norm_ppf(p), z);
    }
    json_array_foreach(json_object_get(fx, "cdf"), i, c) {
        double z = json_number_value(json_object_get(c, "z")), p = json_number_value(json_object_get(c, "p"));
        cr_expect(fabs(tw_norm_cdf(z) - p) < 1e-14 + 1e-12 * p, "cdf(%g)", z);
    }
    json_decref(fx);
}

Test(wilson, hand_and_fixture)
{
    /* 8/10 at 95%: z = 1.959964, z^2 = 3.841459; center = (0.8 + 0.192073)/1.384146 = 0.716740;
     * half = 1.959964/1.384146 * sqrt(0.016 + 0.009604) = 1.416011 * 0.160012 = 0.226579
     * -> [0.490161, 0.943319] (the classic Wilson example, e.g. Newcombe 1998) */
    double lo, hi;
    tw_wilson(&lo, &hi, 8, 10, 0.95);
    cr_expect_float_eq(lo, 0.4901625, 1e-6);
    cr_expect_float_eq(hi, 0.9433178, 1e-6);
    tw_wilson(&lo, &hi, 0, 0, 0.95);
    cr_expect(lo == 0 && hi == 1);
    json_t *fx = load_fixture("stats.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(fx, "wilson"), i, c) {
        tw_wilson(&lo, &hi, json_number_value(json_object_get(c, "k")), json_number_value(json_object_get(c, "n")),
                  json_number_value(json_object_get(c, "level")));
        cr_expect(fabs(lo - json_number_value(json_object_get(c, "lo"))) < 1e-12, "case %zu lo", i);
        cr_expect(fabs(hi - json_number_value(json_object_get(c, "hi"))) < 1e-12, "case %zu hi", i);
    }
    json_decref(fx);
}

Test(quantile, linear_like_numpy)
{
    /* x = 1..10: h = 9q. q=.5 -> 5.5; q=.9 -> h=8.1 -> 9.1; q=.99 -> h=8.91 -> 9.91 */
    double x[10];
    for (int i = 0; i < 10; i++) x[i] = i + 1;
    cr_expect_float_eq(tw_quantile_sorted(x, 10, 0.5), 5.5, 1e-12);
    cr_expect_float_eq(tw_quantile_sorted(x, 10, 0.9), 9.1, 1e-12);
    cr_expect_float_eq(tw_quantile_sorted(x, 10, 0.99), 9.91, 1e-12);
    cr_expect_float_eq(tw_quantile_sorted(x, 1, 0.99), 1.0, 1e-12);
    json_t *fx = load_fixture("stats.json");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(fx, "quantile"), i, c) {
        json_t *jx = json_object_get(c, "x");
        size_t n = json_array_size(jx);
        double *v = calloc(n, sizeof *v);
        for (size_t j = 0; j < n; j++) v[j] = json_number_value(json_array_get(jx, j));
        for (size_t j = 0; j < json_array_size(json_object_get(c, "q")); j++) {
            double q = json_number_value(json_array_get(json_object_get(c, "q"), j));
            double want = json_number_value(json_array_get(json_object_get(c, "v"), j));
            cr_expect(fabs(tw_quantile_sorted(v, n, q) - want) < 1e-9, "n=%zu q=%g", n, q);
        }
        free(v);
    }
    json_decref(fx);
}

/* ---- power ------------------------------------------------------------------------------- */

Test(power, two_proportions_textbook)
{
    /* 0.50 vs 0.60, alpha .05 two-sided, power .8 (Fleiss, no continuity correction):
     * (1.959964 * sqrt(2 * .55 * .45) + 0.841621 * sqrt(.25 + .24))^2 / .1^2
     * = (1.378946 + 0.589135)^2 / .01 = 387.33 -> 388 per group. */
    double n = tw_n_two_prop(0.5, 0.6, 0.05, 0.8);
    cr_expect(fabs(n - 387.3385) < 0.001, "n = %.4f", n);   /* scipy: 387.33852 */
    cr_expect_eq(ceil(n), 388);
    /* 0.80 vs 0.90: (1.959964*sqrt(2*.85*.15) + 0.841621*sqrt(.16+.09))^2/.01
     * = (0.989891 + 0.420811)^2 / .01 = 198.96 -> 199 per group (scipy: 198.9634) */
    double n2 = tw_n_two_prop(0.8, 0.9, 0.05, 0.8);
    cr_expect(fabs(n2 - 198.9634) < 0.001, "n = %.4f", n2);
    cr_expect(isinf(tw_n_two_prop(0.5, 0.5, 0.05, 0.8)));
    /* MDE inverts n: at n = 387.33 the detectable gain over 0.5 is 0.1 */
    cr_expect(fabs(tw_mde_two_prop(0.5, n, 0.05, 0.8) - 0.1) < 1e-9);
    cr_expect(fabs(tw_n_two_prop(0.8, 0.8 + tw_mde_two_prop(0.8, 500, 0.05, 0.8), 0.05, 0.8) - 500) < 1e-6);
    /* more items -> smaller MDE; ~1/sqrt(n) */
    double m100 = tw_mde_two_prop(0.7, 100, 0.05, 0.8), m10k = tw_mde_two_prop(0.7, 10000, 0.05, 0.8);
    cr_expect(m100 > m10k);
    cr_expect(m100 / m10k > 7 && m100 / m10k < 12, "ratio %g", m100 / m10k);
    /* nothing is detectable with 3 items at a 0.9 baseline */
    cr_expect(isnan(tw_mde_two_prop(0.9, 3, 0.05, 0.8)));
}

Test(power, mcnemar_connor)
{
    /* Connor (1987): psi = 0.2 discordant, delta = 0.1:
     * (1.959964 * sqrt(.2) + 0.841621 * sqrt(.2 - .01))^2 / .01
     * = (0.876523 + 0.366855)^2 / .01 = 154.60 -> 155 pairs */
    double n = tw_n_mcnemar(0.1, 0.2, 0.05, 0.8);
    cr_expect(fabs(n - 154.5986) < 0.001, "n = %.4f", n);   /* scipy: 154.59857 */
    cr_expect_eq(ceil(n), 155);
    cr_expect(fabs(tw_mde_mcnemar(n, 0.2, 0.05, 0.8) - 0.1) < 1e-9);
    /* pairing helps: at the same n, fewer discordant pairs -> smaller detectable delta than
     * the independent-samples MDE around 0.5 */
    cr_expect(tw_mde_mcnemar(400, 0.1, 0.05, 0.8) < tw_mde_two_prop(0.5, 400, 0.05, 0.8));
    cr_expect(isnan(tw_mde_mcnemar(400, 0.0, 0.05, 0.8)));
}

/* ---- bootstrap ------------------------------------------------------------------------------- */

static double *bernoulli(size_t n, double p, uint64_t seed)
{
    tw_rng r;
    tw_rng_seed(&r, seed);
    double *x = calloc(n, sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = tw_rng_uniform(&r) < p;
    return x;
}

static double mean(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s / (double)n;
}

static void mean_fn(double *out, const uint32_t *w, size_t n, const void *ctx, void *scratch)
{
    (void)scratch;
    const double *x = ctx;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += w[i] * x[i];
    out[0] = s / (double)n;
}

Test(bootstrap, deterministic_and_seed_dependent)
{
    /* continuous data so that distinct resamples give distinct means */
    size_t n = 500, B = 200;
    double *x = calloc(n, sizeof *x);
    tw_rng r;
    tw_rng_seed(&r, 3);
    for (size_t i = 0; i < n; i++) x[i] = tw_rng_uniform(&r);
    double *r1 = calloc(B, sizeof *r1), *r2 = calloc(B, sizeof *r2), *r3 = calloc(B, sizeof *r3);
    tw_boot_spec spec = {.n = n, .n_out = 1, .fn = mean_fn, .ctx = x, .replicates = B, .seed = 42};
    cr_assert_eq(tw_bootstrap(r1, &spec, NULL), TW_OK);
    cr_assert_eq(tw_bootstrap(r2, &spec, NULL), TW_OK);
    spec.seed = 43;
    cr_assert_eq(tw_bootstrap(r3, &spec, NULL), TW_OK);
    size_t same12 = 0, same13 = 0;
    for (size_t b = 0; b < B; b++) {
        same12 += r1[b] == r2[b];
        same13 += r1[b] == r3[b];
    }
    cr_expect_eq(same12, B);
    cr_expect_eq(same13, 0);
    /* replicates differ from each other too (each has its own stream) */
    cr_expect(r1[0] != r1[1]);
    double lo1, hi1, lo2, hi2;
    cr_assert_eq(tw_bootstrap_mean_ci(&lo1, &hi1, x, n, 1000, 42, 0.95, NULL), TW_OK);
    cr_assert_eq(tw_bootstrap_mean_ci(&lo2, &hi2, x, n, 1000, 42, 0.95, NULL), TW_OK);
    cr_expect(lo1 == lo2 && hi1 == hi2);
    free(x);
    free(r1);
    free(r2);
    free(r3);
}

Test(bootstrap, same_result_for_any_thread_count)
{
    double *x = bernoulli(2000, 0.4, 5);
    double lo1, hi1, lo2, hi2;
    omp_set_num_threads(1);
    cr_assert_eq(tw_bootstrap_mean_ci(&lo1, &hi1, x, 2000, 400, 9, 0.95, NULL), TW_OK);
    omp_set_num_threads(2);
    cr_assert_eq(tw_bootstrap_mean_ci(&lo2, &hi2, x, 2000, 400, 9, 0.95, NULL), TW_OK);
    cr_expect(lo1 == lo2 && hi1 == hi2);
    free(x);
}

Test(bootstrap, ci_contains_estimate_and_shrinks)
{
    double width[3];
    size_t ns[3] = {100, 1000, 10000};
    for (int k = 0; k < 3; k++) {
        double *x = bernoulli(ns[k], 0.5, 11 + (uint64_t)k);
        double lo, hi, m = mean(x, ns[k]);
        cr_assert_eq(tw_bootstrap_mean_ci(&lo, &hi, x, ns[k], 1000, 1, 0.95, NULL), TW_OK);
        cr_expect(lo <= m && m <= hi, "n=%zu: %g not in [%g, %g]", ns[k], m, lo, hi);
        width[k] = hi - lo;
        /* normal theory: width ~ 2 * 1.96 * sqrt(.25 / n) */
        double expect = 2 * 1.96 * sqrt(0.25 / (double)ns[k]);
        cr_expect(width[k] > 0.8 * expect && width[k] < 1.2 * expect, "n=%zu width %g vs %g", ns[k], width[k], expect);
        free(x);
    }
    cr_expect(width[0] > 2.5 * width[1] && width[1] > 2.5 * width[2], "%g %g %g", width[0], width[1], width[2]);
}

typedef struct {
    const double *a, *b;
} pair_ctx;

static void diff_fn(double *out, const uint32_t *w, size_t n, const void *ctx, void *scratch)
{
    (void)scratch;
    const pair_ctx *c = ctx;
    double sa = 0, sb = 0;
    for (size_t i = 0; i < n; i++) {
        sa += w[i] * c->a[i];
        sb += w[i] * c->b[i];
    }
    out[0] = (sb - sa) / (double)n;
}

Test(bootstrap, paired_pvalue)
{
    size_t n = 400, B = 999;
    double *a = bernoulli(n, 0.6, 21), *b = calloc(n, sizeof *b), *reps = calloc(B, sizeof *reps);
    pair_ctx ctx = {a, a};
    tw_boot_spec spec = {.n = n, .n_out = 1, .fn = diff_fn, .ctx = &ctx, .replicates = B, .seed = 7};
    /* identical systems: every difference is 0 -> p = min(1, 2 * 1000/1000) = 1 */
    cr_assert_eq(tw_bootstrap(reps, &spec, NULL), TW_OK);
    cr_expect_float_eq(tw_boot_pvalue(reps, B, 1, 0), 1.0, 1e-12);
    /* B always right: every difference > 0 -> p = 2 * (1 + 0) / (B + 1) = 0.002 */
    for (size_t i = 0; i < n; i++) b[i] = 1;
    ctx.b = b;
    cr_assert_eq(tw_bootstrap(reps, &spec, NULL), TW_OK);
    cr_expect_float_eq(tw_boot_pvalue(reps, B, 1, 0), 2.0 / 1000.0, 1e-12);
    double lo, hi;
    cr_assert_eq(tw_boot_ci(&lo, &hi, reps, B, 1, 0, 0.95, NULL), TW_OK);
    double d = 1 - mean(a, n);
    cr_expect(lo > 0 && lo <= d && d <= hi, "%g in [%g, %g]", d, lo, hi);
    free(a);
    free(b);
    free(reps);
}

Test(bootstrap, ci_skips_nan_and_handles_empty)
{
    double reps[6] = {NAN, 1, 2, NAN, 3, 4};
    double lo, hi;
    cr_assert_eq(tw_boot_ci(&lo, &hi, reps, 6, 1, 0, 0.5, NULL), TW_OK);
    /* non-NaN {1,2,3,4}: q .25 -> h .75 -> 1.75; q .75 -> h 2.25 -> 3.25 */
    cr_expect_float_eq(lo, 1.75, 1e-12);
    cr_expect_float_eq(hi, 3.25, 1e-12);
    double all_nan[2] = {NAN, NAN};
    cr_assert_eq(tw_boot_ci(&lo, &hi, all_nan, 2, 1, 0, 0.95, NULL), TW_OK);
    cr_expect(isnan(lo) && isnan(hi));
    cr_assert_eq(tw_bootstrap_mean_ci(&lo, &hi, NULL, 0, 100, 1, 0.95, NULL), TW_OK);
    cr_expect(isnan(lo) && isnan(hi));
}
