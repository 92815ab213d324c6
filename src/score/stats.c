/* stats.c — percentile bootstrap over item multiplicities, exact McNemar test, Wilson
 * interval, linear quantiles, normal CDF/quantile, and two-proportion / McNemar power
 * calculations. Formulas are in stats.h and docs/metrics.md.
 * Deliberately not here: which statistics to resample (the callers build per-item
 * sufficient statistics and a tw_boot_fn) and any I/O. */
#include "score/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- normal distribution ------------------------------------------------------ */

double tw_norm_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

double tw_norm_ppf(double p)
{
    if (!(p >= 0 && p <= 1)) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    /* Acklam's rational approximation (relative error < 1.2e-9) ... */
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double plow = 0.02425;
    double x;
    if (p < plow) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - plow) {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        double q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    /* ... refined by Newton steps on the exact CDF to full double precision. */
    for (int it = 0; it < 3; it++) {
        double e = tw_norm_cdf(x) - p;
        double pdf = exp(-0.5 * x * x) / sqrt(2 * M_PI);
        if (pdf <= 0) break;
        x -= e / pdf;
    }
    return x;
}

void tw_wilson(double *lo, double *hi, double k, double n, double level)
{
    if (!(n > 0)) {
        *lo = 0;
        *hi = 1;
        return;
    }
    double z = tw_norm_ppf(1 - (1 - level) / 2), z2 = z * z;
    double p = k / n, den = 1 + z2 / n;
    double center = (p + z2 / (2 * n)) / den;
    double half = z / den * sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    *lo = fmax(0.0, center - half);
    *hi = fmin(1.0, center + half);
}

double tw_quantile_sorted(const double *x, size_t n, double q)
{
    if (n == 0) return NAN;
    if (q <= 0) return x[0];
    if (q >= 1) return x[n - 1];
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i + 1 >= n) return x[n - 1];
    return x[i] + (h - (double)i) * (x[i + 1] - x[i]);
}

/* ---- McNemar ----------------------------------------------------------------------- */

double tw_mcnemar_exact(uint64_t b, uint64_t c)
{
    uint64_t N = b + c, m = b < c ? b : c;
    if (N == 0) return 1.0;
    if (2 * m >= N) return 1.0;   /* b == c: the tail holds at least half the mass */
    /* P[X <= m], X ~ Bin(N, 1/2): start at the largest term (k = m <= N/2) and walk
     * down with pmf(k-1) = pmf(k) * k / (N - k + 1) until the terms stop mattering. */
    double Nd = (double)N, md = (double)m;
    double logt = lgamma(Nd + 1) - lgamma(md + 1) - lgamma(Nd - md + 1) - Nd * log(2.0);
    double t = exp(logt), sum = 0;
    for (uint64_t k = m;; k--) {
        sum += t;
        if (k == 0 || t < sum * 1e-17) break;
        t *= (double)k / (double)(N - k + 1);
    }
    double p = 2 * sum;
    return p > 1 ? 1.0 : p;
}

/* ---- bootstrap ----------------------------------------------------------------------- */

/* Uniform integer in [0, n) from 32 random bits, Lemire's multiply-shift with
 * rejection (unbiased). bits holds a 64-bit draw split into two 32-bit halves. */
typedef struct {
    tw_rng rng;
    uint64_t bits;
    int left;
} draw32;

static inline uint32_t next32(draw32 *d)
{
    if (d->left == 0) {
        d->bits = tw_rng_next(&d->rng);
        d->left = 2;
    }
    uint32_t v = (uint32_t)d->bits;
    d->bits >>= 32;
    d->left--;
    return v;
}

static inline uint32_t below32(draw32 *d, uint32_t n)
{
    uint64_t m = (uint64_t)next32(d) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)next32(d) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

tw_status tw_bootstrap(double *reps, const tw_boot_spec *spec, tw_error *err)
{
    const size_t n = spec->n, B = spec->replicates, k = spec->n_out;
    if (n > UINT32_MAX) return tw_error_set(err, TW_ERR_INVALID, "bootstrap: too many items (%zu)", n);
    if (n == 0) {
        for (size_t i = 0; i < B * k; i++) reps[i] = NAN;
        return TW_OK;
    }
    const uint32_t *group = spec->group;
    const size_t nw = group ? spec->n_groups : n;
    int failed = 0;
#pragma omp parallel if (B * n >= 200000)
    {
        uint32_t *w = malloc((nw ? nw : 1) * sizeof *w);
        void *scratch = malloc(spec->scratch_bytes ? spec->scratch_bytes : 1);
        if (!w || !scratch) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (size_t b = 0; b < B; b++) {
            if (!w || !scratch) continue;
            draw32 d = {.left = 0};
            tw_rng_seed(&d.rng, spec->seed ^ tw_hash_mix(b + 0x9E3779B97F4A7C15ULL));
            memset(w, 0, nw * sizeof *w);
            if (group)
                for (size_t i = 0; i < n; i++) w[group[below32(&d, (uint32_t)n)]]++;
            else
                for (size_t i = 0; i < n; i++) w[below32(&d, (uint32_t)n)]++;
            spec->fn(reps + b * k, w, nw, spec->ctx, scratch);
        }
        free(w);
        free(scratch);
    }
    if (failed) return tw_error_set(err, TW_ERR_NOMEM, "bootstrap: out of memory (%zu items)", n);
    return TW_OK;
}

tw_status tw_boot_ci(double *lo, double *hi, const double *reps, size_t B, size_t stride, size_t col,
                     double level, tw_error *err)
{
    *lo = *hi = NAN;
    double *v = tw_malloc((B ? B : 1) * sizeof *v, err);
    if (!v) return TW_ERR_NOMEM;
    size_t m = 0;
    for (size_t b = 0; b < B; b++) {
        double x = reps[b * stride + col];
        if (!isnan(x)) v[m++] = x;
    }
    if (m > 0) {
        qsort(v, m, sizeof *v, tw_cmp_double);
        *lo = tw_quantile_sorted(v, m, (1 - level) / 2);
        *hi = tw_quantile_sorted(v, m, (1 + level) / 2);
    }
    free(v);
    return TW_OK;
}

double tw_boot_pvalue(const double *reps, size_t B, size_t stride, size_t col)
{
    size_t le = 0, ge = 0, m = 0;
    for (size_t b = 0; b < B; b++) {
        double x = reps[b * stride + col];
        if (isnan(x)) continue;
        m++;
        le += x <= 0;
        ge += x >= 0;
    }
    if (m == 0) return NAN;
    double p = 2.0 * (double)(1 + (le < ge ? le : ge)) / (double)(m + 1);
    return p > 1 ? 1.0 : p;
}

typedef struct {
    const double *x;
} mean_ctx;

static void mean_fn(double *out, const uint32_t *w, size_t n, const void *ctx, void *scratch)
{
    (void)scratch;
    const double *x = ((const mean_ctx *)ctx)->x;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += w[i] * x[i];
    out[0] = s / (double)n;
}

tw_status tw_bootstrap_mean_ci(double *lo, double *hi, const double *x, size_t n, size_t B,
                               uint64_t seed, double level, tw_error *err)
{
    *lo = *hi = NAN;
    if (n == 0 || B == 0) return TW_OK;
    double *reps = tw_malloc(B * sizeof *reps, err);
    if (!reps) return TW_ERR_NOMEM;
    mean_ctx ctx = {x};
    tw_boot_spec spec = {.n = n, .n_out = 1, .fn = mean_fn, .ctx = &ctx, .replicates = B, .seed = seed};
    tw_status st = tw_bootstrap(reps, &spec, err);
    if (st == TW_OK) st = tw_boot_ci(lo, hi, reps, B, 1, 0, level, err);
    free(reps);
    return st;
}

/* ---- power ------------------------------------------------------------------------------ */

double tw_n_two_prop(double p1, double p2, double alpha, double power)
{
    double d = p2 - p1;
    if (d == 0) return INFINITY;
    double za = tw_norm_ppf(1 - alpha / 2), zb = tw_norm_ppf(power);
    double pbar = (p1 + p2) / 2;
    double t = za * sqrt(2 * pbar * (1 - pbar)) + zb * sqrt(p1 * (1 - p1) + p2 * (1 - p2));
    return t * t / (d * d);
}

double tw_mde_two_prop(double p1, double n, double alpha, double power)
{
    if (!(p1 >= 0 && p1 < 1) || !(n > 0)) return NAN;
    double lo = 0, hi = 1 - p1;
    if (tw_n_two_prop(p1, p1 + hi, alpha, power) > n) return NAN;
    for (int it = 0; it < 200 && hi - lo > 1e-13; it++) {   /* n(d) decreases in d */
        double mid = (lo + hi) / 2;
        if (tw_n_two_prop(p1, p1 + mid, alpha, power) > n) lo = mid;
        else hi = mid;
    }
    return hi;
}

double tw_n_mcnemar(double delta, double psi, double alpha, double power)
{
    delta = fabs(delta);
    if (delta == 0) return INFINITY;
    if (!(psi > 0 && psi <= 1) || delta > psi) return NAN;
    double za = tw_norm_ppf(1 - alpha / 2), zb = tw_norm_ppf(power);
    double t = za * sqrt(psi) + zb * sqrt(fmax(0.0, psi - delta * delta));
    return t * t / (delta * delta);
}

double tw_mde_mcnemar(double n, double psi, double alpha, double power)
{
    if (!(psi > 0 && psi <= 1) || !(n > 0)) return NAN;
    double lo = 0, hi = psi;
    if (tw_n_mcnemar(hi, psi, alpha, power) > n) return NAN;
    for (int it = 0; it < 200 && hi - lo > 1e-13; it++) {
        double mid = (lo + hi) / 2;
        if (tw_n_mcnemar(mid, psi, alpha, power) > n) lo = mid;
        else hi = mid;
    }
    return hi;
}
