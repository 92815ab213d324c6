/* test_sample.c — the sampler chain and stop strings (src/model/sample.h) on hand-made
 * logits whose right answers follow from the definitions in sample.h: greedy, seeded
 * determinism, top-k / top-p / min-p / temperature / repetition penalty semantics and
 * their order, the draw's distribution, log-softmax, and stop strings that span pieces.
 * (Log-probabilities of model continuations are checked against the reference forward in
 * test_llama.c.) */
#include "testutil.h"

#include "model/sample.h"

#include <math.h>
#include <stdint.h>

static tw_sampler *mk(tw_sample_params p, int32_t V)
{
    tw_sampler *s = NULL;
    tw_error err;
    cr_assert_eq(tw_sampler_new(&s, &p, V, &err), TW_OK, "%s", err.msg);
    return s;
}

/* no filters: plain softmax(l / T) draws */
static tw_sample_params plain(float temp, uint64_t seed)
{
    tw_sample_params p = tw_sample_default_params();
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

/* logits = log(probs) */
static void logp(float *l, const double *p, int n)
{
    for (int i = 0; i < n; i++) l[i] = (float)log(p[i]);
}

static size_t cands(tw_sampler *s, const int32_t **ids, const float **pr) { return tw_sampler_candidates(s, ids, pr); }

Test(sample, defaults)
{
    tw_sample_params p = tw_sample_default_params();
    cr_expect_eq(p.temperature, 0.0f, "greedy by default");
    cr_expect_eq(p.top_k, 40);
    cr_expect_float_eq(p.top_p, 0.95f, 1e-7);
    cr_expect_float_eq(p.min_p, 0.05f, 1e-7);
    cr_expect_eq(p.repeat_penalty, 1.0f);
    cr_expect_eq(p.repeat_last_n, 64);
}

Test(sample, greedy_argmax_ties_and_nan)
{
    tw_sampler *s = mk(tw_sample_default_params(), 6);
    float l[6] = {0.5f, 3.0f, -1.0f, 3.0f, NAN, 2.9f};
    cr_expect_eq(tw_sampler_sample(s, l, NULL, 0), 1, "lowest id among equal maxima");
    const int32_t *ids;
    const float *pr;
    cr_expect_eq(cands(s, &ids, &pr), 1);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(pr[0], 1.0f);
    float n[3] = {NAN, -INFINITY, -5.0f};
    cr_expect_eq(tw_argmax(n, 3), 2, "NaN never wins");
    cr_expect_eq(l[4] != l[4], 1, "the input logits are not modified");
    tw_sampler_free(s);
}

Test(sample, seeded_determinism)
{
    const int V = 50;
    float l[50];
    for (int i = 0; i < V; i++) l[i] = (float)sin(i * 1.7) * 2.0f;
    tw_sampler *a = mk(plain(1.0f, 7), V), *b = mk(plain(1.0f, 7), V), *c = mk(plain(1.0f, 8), V);
    int32_t xa[200], xc[200];
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        xa[i] = tw_sampler_sample(a, l, NULL, 0);
        cr_assert_eq(tw_sampler_sample(b, l, NULL, 0), xa[i], "same seed, same draw %d", i);
        xc[i] = tw_sampler_sample(c, l, NULL, 0);
        differ += xa[i] != xc[i];
    }
    cr_expect_gt(differ, 50, "another seed gives other draws (%d of 200 differ)", differ);
    tw_sampler_reseed(c, 7);
    for (int i = 0; i < 200; i++) cr_assert_eq(tw_sampler_sample(c, l, NULL, 0), xa[i], "reseed restarts the stream");
    tw_sampler_free(a);
    tw_sampler_free(b);
    tw_sampler_free(c);
}

/* Empirical frequencies of 40,000 draws within 4.5 standard errors of softmax(l / T). */
Test(sample, draws_follow_the_distribution)
{
    const double p[4] = {0.5, 0.3, 0.15, 0.05};
    float l[4];
    logp(l, p, 4);
    for (int ti = 0; ti < 2; ti++) {
        float T = ti ? 0.5f : 1.0f;
        double want[4], z = 0;
        for (int i = 0; i < 4; i++) z += (want[i] = pow(p[i], 1.0 / T));
        tw_sampler *s = mk(plain(T, 123), 4);
        int cnt[4] = {0};
        const int N = 40000;
        for (int i = 0; i < N; i++) cnt[tw_sampler_sample(s, l, NULL, 0)]++;
        const int32_t *ids;
        const float *pr;
        size_t n = cands(s, &ids, &pr);
        cr_expect_eq(n, 4);
        for (int i = 0; i < 4; i++) {
            double w = want[i] / z, se = sqrt(w * (1 - w) / N);
            cr_expect(fabs(cnt[i] / (double)N - w) < 4.5 * se + 1e-9, "T %.1f token %d: %.4f vs %.4f", (double)T, i,
                      cnt[i] / (double)N, w);
            cr_expect(fabs(pr[i] - w) < 1e-6, "T %.1f candidate prob %d: %.6f vs %.6f", (double)T, i, (double)pr[i], w);
            cr_expect_eq(ids[i], i, "sorted by probability");
        }
        tw_sampler_free(s);
    }
}

Test(sample, top_k)
{
    float l[6] = {1.0f, 5.0f, 3.0f, 3.0f, -2.0f, 4.0f};
    tw_sample_params p = plain(1.0f, 1);
    p.top_k = 3;
    tw_sampler *s = mk(p, 6);
    for (int i = 0; i < 100; i++) {
        int32_t t = tw_sampler_sample(s, l, NULL, 0);
        cr_assert(t == 1 || t == 5 || t == 2, "top-3 token, got %d", t);
    }
    const int32_t *ids;
    const float *pr;
    cr_assert_eq(cands(s, &ids, &pr), 3);
    cr_expect_eq(ids[0], 1);
    cr_expect_eq(ids[1], 5);
    cr_expect_eq(ids[2], 2, "tie at the boundary (ids 2 and 3): the lower id stays");
    double z = exp(5) + exp(4) + exp(3);
    cr_expect(fabs(pr[2] - exp(3) / z) < 1e-6, "renormalized over the survivors");
    tw_sampler_free(s);
}

/* The heap selection agrees with a full sort on a larger vocabulary. */
Test(sample, top_k_large_vocab)
{
    const int V = 5000, K = 40;
    float *l = malloc(V * sizeof *l);
    tw_rng r;
    tw_rng_seed(&r, 5);
    for (int i = 0; i < V; i++) l[i] = (float)tw_rng_normal(&r) * 3.0f;
    l[77] = l[78] = 20.0f;   /* a tie at the top */
    tw_sample_params p = plain(1.0f, 1);
    p.top_k = K;
    tw_sampler *s = mk(p, V);
    tw_sampler_sample(s, l, NULL, 0);
    const int32_t *ids;
    const float *pr;
    cr_assert_eq(cands(s, &ids, &pr), (size_t)K);
    cr_expect_eq(ids[0], 77);
    cr_expect_eq(ids[1], 78);
    for (int i = 1; i < K; i++) cr_expect(l[ids[i - 1]] >= l[ids[i]], "descending at %d", i);
    /* nothing left out is larger than the smallest kept */
    int larger = 0;
    for (int v = 0; v < V; v++) {
        bool kept = false;
        for (int i = 0; i < K; i++) kept |= ids[i] == v;
        if (!kept && l[v] > l[ids[K - 1]]) larger++;
    }
    cr_expect_eq(larger, 0);
    tw_sampler_free(s);
    free(l);
}

Test(sample, top_p)
{
    const double q[5] = {0.5, 0.3, 0.15, 0.04, 0.01};
    float l[5];
    logp(l, q, 5);
    struct { float top_p; size_t keep; } cases[] = {{0.45f, 1}, {0.79f, 2}, {0.81f, 3}, {0.96f, 4}, {0.999f, 5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tw_sample_params p = plain(1.0f, 3);
        p.top_p = cases[c].top_p;
        tw_sampler *s = mk(p, 5);
        tw_sampler_sample(s, l, NULL, 0);
        const int32_t *ids;
        const float *pr;
        size_t n = cands(s, &ids, &pr);
        cr_expect_eq(n, cases[c].keep, "top_p %.3f keeps %zu, got %zu", (double)cases[c].top_p, cases[c].keep, n);
        double z = 0;
        for (size_t i = 0; i < cases[c].keep; i++) z += q[i];
        cr_expect(fabs(pr[0] - q[0] / z) < 1e-6, "renormalized");
        tw_sampler_free(s);
    }
}

Test(sample, min_p)
{
    const double q[4] = {0.5, 0.3, 0.15, 0.05};
    float l[4];
    logp(l, q, 4);
    struct { float min_p; size_t keep; } cases[] = {{0.09f, 4}, {0.11f, 3}, {0.29f, 3}, {0.31f, 2}, {0.61f, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tw_sample_params p = plain(1.0f, 3);
        p.min_p = cases[c].min_p;
        tw_sampler *s = mk(p, 4);
        tw_sampler_sample(s, l, NULL, 0);
        const int32_t *ids;
        const float *pr;
        cr_expect_eq(cands(s, &ids, &pr), cases[c].keep, "min_p %.2f keeps %zu", (double)cases[c].min_p, cases[c].keep);
        tw_sampler_free(s);
    }
}

/* The chain order: top-k first, then top-p over the renormalized survivors, then min-p,
 * then temperature (which does not change what survived). */
Test(sample, chain_order)
{
    const double q[5] = {0.4, 0.2, 0.2, 0.1, 0.1};
    float l[5];
    logp(l, q, 5);
    tw_sample_params p = plain(2.0f, 3);
    p.top_k = 2;      /* {0.4, 0.2} -> renormalized {2/3, 1/3} */
    p.top_p = 0.6f;   /* 2/3 >= 0.6: one survivor (over the original 5 it would be two) */
    tw_sampler *s = mk(p, 5);
    tw_sampler_sample(s, l, NULL, 0);
    const int32_t *ids;
    const float *pr;
    cr_expect_eq(cands(s, &ids, &pr), 1);
    tw_sampler_free(s);
    /* temperature applies after min-p: min-p 0.3 on {0.4, 0.2, 0.2, 0.1, 0.1} keeps 3 at any T */
    p = plain(5.0f, 3);
    p.min_p = 0.3f;
    s = mk(p, 5);
    tw_sampler_sample(s, l, NULL, 0);
    size_t n = cands(s, &ids, &pr);
    cr_expect_eq(n, 3);
    double z = pow(0.4, 0.2) + 2 * pow(0.2, 0.2);
    cr_expect(fabs(pr[0] - pow(0.4, 0.2) / z) < 1e-6, "softmax(l / T) over the survivors: %.6f", (double)pr[0]);
    tw_sampler_free(s);
}

Test(sample, repetition_penalty)
{
    float l[5] = {2.0f, -2.0f, 1.0f, 0.5f, 1.9f};
    int32_t hist[4] = {0, 1, 1, 9};   /* 9 is out of range: ignored */
    float x[5];
    memcpy(x, l, sizeof l);
    tw_apply_repeat_penalty(x, 5, hist, 4, -1, 2.0f);
    cr_expect_float_eq(x[0], 1.0f, 1e-7, "positive logit divided");
    cr_expect_float_eq(x[1], -4.0f, 1e-7, "negative logit multiplied, once despite two occurrences");
    cr_expect_float_eq(x[2], 1.0f, 1e-7, "not in the history");
    memcpy(x, l, sizeof l);
    tw_apply_repeat_penalty(x, 5, hist, 4, 2, 2.0f);   /* window: the last 2 = {1, 9} */
    cr_expect_float_eq(x[0], 2.0f, 1e-7, "outside the window");
    cr_expect_float_eq(x[1], -4.0f, 1e-7);
    memcpy(x, l, sizeof l);
    tw_apply_repeat_penalty(x, 5, hist, 4, 0, 2.0f);
    cr_expect_float_eq(x[1], -2.0f, 1e-7, "window 0: off");
    /* greedy with the penalty: token 0 (2.0 -> 1.0) loses to token 4 (1.9) */
    tw_sample_params p = tw_sample_default_params();
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = -1;
    tw_sampler *s = mk(p, 5);
    cr_expect_eq(tw_sampler_sample(s, l, hist, 4), 4);
    cr_expect_eq(tw_sampler_sample(s, l, NULL, 0), 0, "no history: no penalty");
    tw_sampler_free(s);
}

Test(sample, log_softmax)
{
    float l[4] = {1000.0f, 999.0f, 998.0f, -INFINITY};
    double z = 0;
    for (int i = 0; i < 4; i++) z += exp(tw_log_softmax_at(l, 4, i));
    cr_expect(fabs(z - 1.0) < 1e-12, "probabilities sum to 1 (%.15f), no overflow at 1000", z);
    double want = -log(1 + exp(-1.0) + exp(-2.0));
    cr_expect(fabs(tw_log_softmax_at(l, 4, 0) - want) < 1e-12);
    cr_expect(isinf(tw_log_softmax_at(l, 4, 3)));
    cr_expect(isinf(tw_log_softmax_at(l, 4, 4)), "id out of range");
}

Test(sample, invalid_params)
{
    tw_sampler *s = NULL;
    tw_error err;
    tw_sample_params p = tw_sample_default_params();
    cr_expect_eq(tw_sampler_new(&s, &p, 0, &err), TW_ERR_INVALID);
    p.repeat_penalty = -1.0f;
    cr_expect_eq(tw_sampler_new(&s, &p, 10, &err), TW_ERR_INVALID);
    p = tw_sample_default_params();
    p.temperature = NAN;
    cr_expect_eq(tw_sampler_new(&s, &p, 10, &err), TW_ERR_INVALID);
    p = tw_sample_default_params();
    p.repeat_last_n = -2;
    cr_expect_eq(tw_sampler_new(&s, &p, 10, &err), TW_ERR_INVALID);
    cr_expect_null(s);
    tw_sampler_free(NULL);
}

/* ---- stop strings ------------------------------------------------------------------------ */

Test(sample, stop_find_across_pieces)
{
    const char *stops[] = {"World", "\n\n", ""};
    char text[64] = "Hello Wor";
    size_t at = 99, before = strlen(text);
    cr_expect_eq(tw_stop_find(text, before, stops, 3, 0, &at), -1, "no stop yet");
    cr_expect_eq(at, 99, "at untouched when none");
    strcat(text, "ld!");   /* the new piece completes "World" */
    cr_expect_eq(tw_stop_find(text, strlen(text), stops, 3, before, &at), 0);
    cr_expect_eq(at, 6);
    /* the earliest occurrence wins; at equal starts the longest */
    const char *s2[] = {"b", "ab", "abc"};
    cr_expect_eq(tw_stop_find("xxabcb", 6, s2, 3, 0, &at), 2);
    cr_expect_eq(at, 2);
    /* `from` skips occurrences that ended before it */
    cr_expect_eq(tw_stop_find("World World", 11, stops, 3, 6, &at), 0);
    cr_expect_eq(at, 6);
    cr_expect_eq(tw_stop_find("a\n\nb", 4, stops, 3, 2, &at), 1, "occurrence ending inside the new piece");
    cr_expect_eq(at, 1);
}

Test(sample, stop_holdback)
{
    const char *stops[] = {"World", "<|im_end|>"};
    cr_expect_eq(tw_stop_holdback("Hello Wor", 9, stops, 2), 3);
    cr_expect_eq(tw_stop_holdback("Hello W", 7, stops, 2), 1);
    cr_expect_eq(tw_stop_holdback("Hello", 5, stops, 2), 0);
    cr_expect_eq(tw_stop_holdback("answer <|im_e", 13, stops, 2), 6);
    cr_expect_eq(tw_stop_holdback("Wo", 2, stops, 2), 2, "the whole text may be held");
    const char *one[] = {"x"};
    cr_expect_eq(tw_stop_holdback("abc", 3, one, 1), 0, "a 1-byte stop is found at once, never held");
}
