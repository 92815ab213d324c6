/* test_score.c — the score reports (score.c, table.c): hand-computed classification,
 * extraction and generation reports, slices, latency/tokens, paired comparison,
 * error paths, determinism, the text table, and the 100k-item speed requirement. */
#include "testutil.h"
#include "score/score.h"

#include <jansson.h>
#include <math.h>

static double num(const json_t *o, const char *path)
{
    /* "a.b.c" lookup; arrays by index ("ci.0") */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (json_is_array(cur)) cur = json_array_get(cur, (size_t)atoi(tok));
        else cur = json_object_get(cur, tok);
    }
    cr_assert(json_is_number(cur), "no number at %s", path);
    return json_number_value(cur);
}

static const json_t *at(const json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) cur = json_object_get(cur, tok);
    return cur;
}

/* 10 items, labels pos/neg/neu (values derived in cls_report_hand_computed). */
#define N_CLS 10
static const char *g_gold[N_CLS] = {"pos", "pos", "pos", "neg", "neg", "neg", "neu", "neu", "pos", "neg"};
static const char *g_pred[N_CLS] = {"pos", "pos", "neg", "neg", "neg", "pos", "neu", "Neutral", "pos", "neg"};
static const char *g_slice[N_CLS] = {"a", "a", "a", "b", "b", "b", NULL, NULL, "a", "b"};
static const char *g_labels[3] = {"pos", "neg", "neu"};

static void cls_items(tw_score_item *it, const char *const *pred)
{
    static char ids[N_CLS][16];
    for (int i = 0; i < N_CLS; i++) {
        snprintf(ids[i], sizeof ids[i], "id%d", i);
        memset(&it[i], 0, sizeof it[i]);
        it[i].id = ids[i];
        it[i].reference = g_gold[i];
        it[i].prediction = pred[i];
        it[i].slice = g_slice[i];
        it[i].latency_ms = i + 1;
        it[i].tokens_in = i < 8 ? 10 : NAN;
        it[i].tokens_out = i < 8 ? 1 : NAN;
    }
}

static tw_score_params cls_params(void)
{
    tw_score_params p = tw_score_default_params();
    p.task_type = 0;
    p.labels = g_labels;
    p.n_labels = 3;
    return p;
}

Test(score, cls_report_hand_computed)
{
    /* correct: items 0,1,3,4,6,8,9 -> accuracy 7/10.
     * pos: support 4 (0,1,2,8), predicted 4 (0,1,5,8), tp 3 -> P .75 R .75 F1 .75
     * neg: support 4 (3,4,5,9), predicted 4 (2,3,4,9), tp 3 -> .75 .75 .75
     * neu: support 2 (6,7), predicted 1 (6), tp 1 -> P 1, R .5, F1 2/3
     * macro F1 = (.75 + .75 + 2/3)/3 = 0.722222; weighted = (3 + 3 + 4/3)/10 = 0.733333
     * micro: tp 7, fp 2, fn 3 -> 14/19; invalid ("Neutral") 1/10. */
    tw_score_item it[N_CLS];
    cls_items(it, g_pred);
    tw_score_params p = cls_params();
    json_t *r;
    tw_error err = {0};
    cr_assert_eq(tw_score(it, N_CLS, &p, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_str_eq(json_string_value(at(r, "task")), "classify");
    cr_expect_str_eq(json_string_value(at(r, "primary")), "accuracy");
    cr_expect_eq(num(r, "n"), 10);
    cr_expect_float_eq(num(r, "metrics.accuracy.value"), 0.7, 1e-12);
    cr_expect_float_eq(num(r, "metrics.macro_f1.value"), (0.75 + 0.75 + 2.0 / 3) / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.weighted_f1.value"), (3 + 3 + 4.0 / 3) / 10, 1e-12);
    cr_expect_float_eq(num(r, "metrics.micro_f1.value"), 14.0 / 19, 1e-12);
    cr_expect_float_eq(num(r, "metrics.invalid_rate.value"), 0.1, 1e-12);
    /* every CI brackets its point estimate */
    const char *key;
    json_t *m;
    json_object_foreach(json_object_get(r, "metrics"), key, m) {
        double v = num(m, "value"), lo = num(m, "ci.0"), hi = num(m, "ci.1");
        cr_expect(lo <= v + 1e-12 && v <= hi + 1e-12, "%s: %g not in [%g, %g]", key, v, lo, hi);
    }
    cr_expect_float_eq(num(r, "per_class.neu.precision"), 1.0, 1e-12);
    cr_expect_float_eq(num(r, "per_class.neu.recall"), 0.5, 1e-12);
    cr_expect_float_eq(num(r, "per_class.neu.f1"), 2.0 / 3, 1e-12);
    cr_expect_eq(num(r, "per_class.pos.support"), 4);
    /* confusion rows gold pos/neg/neu, columns + (invalid) */
    const json_t *mat = at(r, "confusion.matrix");
    long long want[3][4] = {{3, 1, 0, 0}, {1, 3, 0, 0}, {0, 0, 1, 1}};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++)
            cr_expect_eq(json_integer_value(json_array_get(json_array_get(mat, i), j)), want[i][j], "[%zu][%zu]", i, j);
    cr_expect_str_eq(json_string_value(json_array_get(at(r, "confusion.columns"), 3)), "(invalid)");
    cr_expect_eq(num(r, "invalid.count"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(at(r, "invalid.top"), 0), "prediction")), "Neutral");
    /* slices: a = items 0,1,2,8 (3/4 right), b = 3,4,5,9 (3/4); 6,7 have none */
    cr_expect_eq(json_object_size(at(r, "slices")), 2);
    cr_expect_eq(num(r, "slices.a.n"), 4);
    cr_expect_float_eq(num(r, "slices.a.metrics.accuracy.value"), 0.75, 1e-12);
    cr_expect_float_eq(num(r, "slices.b.metrics.accuracy.value"), 0.75, 1e-12);
    cr_expect_float_eq(num(r, "slices.a.per_class.pos.recall"), 0.75, 1e-12);
    cr_expect_float_eq(num(r, "slices.b.latency_ms.p50"), 5.5, 1e-12);   /* latencies 4,5,6,10 */
    /* latency 1..10 (linear interpolation): p50 5.5, p90 9.1, p99 9.91 */
    cr_expect_float_eq(num(r, "latency_ms.p50"), 5.5, 1e-12);
    cr_expect_float_eq(num(r, "latency_ms.p90"), 9.1, 1e-12);
    cr_expect_float_eq(num(r, "latency_ms.p99"), 9.91, 1e-12);
    cr_expect_float_eq(num(r, "latency_ms.mean"), 5.5, 1e-12);
    /* tokens known for 8 items */
    cr_expect_eq(num(r, "tokens.n_in"), 8);
    cr_expect_float_eq(num(r, "tokens.in_total"), 80, 1e-12);
    cr_expect_float_eq(num(r, "tokens.out_mean"), 1, 1e-12);
    /* 10 items cannot detect any gain over 0.7 at 80% power: null */
    cr_expect(json_is_null(at(r, "power.mde_independent")));
    json_decref(r);
}

Test(score, deterministic_under_seed)
{
    tw_score_item it[N_CLS];
    cls_items(it, g_pred);
    tw_score_params p = cls_params();
    json_t *r1, *r2, *r3;
    cr_assert_eq(tw_score(it, N_CLS, &p, &r1, NULL), TW_OK);
    cr_assert_eq(tw_score(it, N_CLS, &p, &r2, NULL), TW_OK);
    p.seed = 2;
    cr_assert_eq(tw_score(it, N_CLS, &p, &r3, NULL), TW_OK);
    cr_expect(json_equal(r1, r2));
    cr_expect(!json_equal(at(r1, "metrics"), at(r3, "metrics")), "another seed should move some CI bound");
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
}

Test(score, inferred_labels_and_no_bootstrap)
{
    tw_score_item it[N_CLS];
    cls_items(it, g_pred);
    tw_score_params p = tw_score_default_params();
    p.bootstrap = 0;
    p.primary = "macro_f1";
    json_t *r;
    cr_assert_eq(tw_score(it, N_CLS, &p, &r, NULL), TW_OK);
    const json_t *lab = at(r, "labels");
    cr_assert_eq(json_array_size(lab), 3);
    cr_expect_str_eq(json_string_value(json_array_get(lab, 0)), "neg");   /* sorted distinct references */
    cr_expect_str_eq(json_string_value(json_array_get(lab, 2)), "pos");
    cr_expect(json_is_null(at(r, "metrics.accuracy.ci")));
    cr_expect_str_eq(json_string_value(at(r, "primary")), "macro_f1");
    json_decref(r);
}

Test(score, errors)
{
    tw_score_item it[N_CLS];
    cls_items(it, g_pred);
    tw_score_params p = cls_params();
    json_t *r = (json_t *)1;
    tw_error err = {0};
    const char *two[2] = {"pos", "neg"};
    p.labels = two;
    p.n_labels = 2;
    cr_expect_eq(tw_score(it, N_CLS, &p, &r, &err), TW_ERR_INVALID);
    cr_expect_null(r);
    cr_expect(strstr(err.msg, "item 6 (id 'id6'): reference label 'neu' is not in the label set") != NULL, "%s", err.msg);
    p = cls_params();
    p.primary = "bleu";
    cr_expect_eq(tw_score(it, N_CLS, &p, &r, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "unknown metric 'bleu' for a classify task") != NULL, "%s", err.msg);
    p = cls_params();
    p.ci_level = 1.5;
    cr_expect_eq(tw_score(it, N_CLS, &p, &r, &err), TW_ERR_INVALID);
    p = cls_params();
    p.task_type = 7;
    cr_expect_eq(tw_score(it, N_CLS, &p, &r, &err), TW_ERR_INVALID);
    p = cls_params();
    it[3].reference = NULL;
    cr_expect_eq(tw_score(it, N_CLS, &p, &r, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "item 3 (id 'id3'): missing reference") != NULL, "%s", err.msg);
    /* extraction: the gold must be JSON */
    tw_score_item e = {.reference = "{\"a\": ", .prediction = "{}", .latency_ms = NAN, .tokens_in = NAN, .tokens_out = NAN};
    p = tw_score_default_params();
    p.task_type = 1;
    cr_expect_eq(tw_score(&e, 1, &p, &r, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "reference is not valid JSON") != NULL, "%s", err.msg);
}

Test(score, metric_names)
{
    size_t n;
    const char *const *m = tw_score_metric_names(2, &n);
    cr_assert_eq(n, 8);
    cr_expect_str_eq(m[0], "rougeL");
    cr_expect_str_eq(m[6], "bleu");
    cr_expect_str_eq(tw_score_default_primary(0), "accuracy");
    cr_expect_str_eq(tw_score_default_primary(1), "field_f1");
    cr_expect_null(tw_score_metric_names(3, &n));
    cr_expect_eq(n, 0);
}

Test(score, empty_input)
{
    tw_score_params p = tw_score_default_params();
    json_t *r;
    cr_assert_eq(tw_score(NULL, 0, &p, &r, NULL), TW_OK);
    cr_expect_eq(num(r, "n"), 0);
    cr_expect(json_is_null(at(r, "metrics.accuracy.value")));
    json_decref(r);
}

Test(score, extract_report)
{
    /* 0: exact; 1: "Stop" vs "stop" (normalized only, fails the enum); 2: not JSON.
     * json_valid 2/3, exact 1/3, normalized 2/3, schema_valid 1/3;
     * pairs: tp 2 (item 0), pred 2+1 = 3, gold 2+1+2 = 5 -> P 2/3, R 2/5, F1 4/8 = .5
     * per field: intent tp 1 pred 2 gold 3 -> P .5 R 1/3 F1 .4; slots.artist tp 1 pred 1 gold 2 */
    tw_score_item it[3] = {
        {.reference = "{\"intent\":\"play\",\"slots\":{\"artist\":\"a\"}}", .prediction = "{\"slots\":{\"artist\":\"a\"},\"intent\":\"play\"}"},
        {.reference = "{\"intent\":\"stop\"}", .prediction = "{\"intent\":\"Stop\"}"},
        {.reference = "{\"intent\":\"play\",\"slots\":{\"artist\":\"b\"}}", .prediction = "Sure! Here is the JSON"},
    };
    for (int i = 0; i < 3; i++) it[i].latency_ms = it[i].tokens_in = it[i].tokens_out = NAN;
    json_error_t je;
    json_t *schema = json_loads("{\"type\":\"object\",\"required\":[\"intent\"],\"properties\":{\"intent\":"
                                "{\"enum\":[\"play\",\"stop\"]},\"slots\":{\"type\":\"object\",\"pattern\":\"x\"}}}", 0, &je);
    tw_score_params p = tw_score_default_params();
    p.task_type = 1;
    p.schema = schema;
    json_t *r;
    tw_error err = {0};
    cr_assert_eq(tw_score(it, 3, &p, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_str_eq(json_string_value(at(r, "primary")), "field_f1");
    cr_expect_float_eq(num(r, "metrics.json_valid.value"), 2.0 / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.schema_valid.value"), 1.0 / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.exact_match.value"), 1.0 / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.normalized_match.value"), 2.0 / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.field_precision.value"), 2.0 / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.field_recall.value"), 0.4, 1e-12);
    cr_expect_float_eq(num(r, "metrics.field_f1.value"), 0.5, 1e-12);
    cr_expect_float_eq(num(r, "per_field.intent.f1"), 0.4, 1e-12);
    const json_t *artist = json_object_get(at(r, "per_field"), "slots.artist");
    cr_expect_float_eq(num(artist, "precision"), 1.0, 1e-12);
    cr_expect_float_eq(num(artist, "recall"), 0.5, 1e-12);
    cr_expect_eq(num(artist, "support"), 2);
    /* the schema's "pattern" is reported, not silently applied */
    cr_expect_str_eq(json_string_value(json_array_get(at(r, "schema_unsupported"), 0)), "pattern at #/properties/slots");
    /* McNemar/power use exact_match for extraction */
    cr_expect_str_eq(json_string_value(at(r, "power.metric")), "exact_match");
    json_decref(r);
    /* without a schema, schema_valid is not reported */
    p.schema = NULL;
    cr_assert_eq(tw_score(it, 3, &p, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_null(at(r, "metrics.schema_valid"));
    json_decref(r);
    json_decref(schema);
}

Test(score, generate_report)
{
    /* item 0 identical to its reference, item 1 matches the second of two references
     * after SQuAD normalization, item 2 unrelated. Corpus BLEU/chrF must equal the
     * kernels over the same segments; EM 1/3, normalized EM 2/3. */
    const char *refs1[2] = {"Something else entirely", "The Eiffel Tower"};
    tw_score_item it[3] = {
        {.reference = "the cat sat on the mat", .prediction = "the cat sat on the mat"},
        {.refs = refs1, .n_refs = 2, .prediction = "eiffel tower."},
        {.reference = "a quick brown fox", .prediction = "nothing alike here"},
    };
    for (int i = 0; i < 3; i++) it[i].latency_ms = it[i].tokens_in = it[i].tokens_out = NAN;
    tw_score_params p = tw_score_default_params();
    p.task_type = 2;
    json_t *r;
    tw_error err = {0};
    cr_assert_eq(tw_score(it, 3, &p, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_str_eq(json_string_value(at(r, "primary")), "rougeL");
    cr_expect_float_eq(num(r, "metrics.exact_match.value"), 1.0 / 3, 1e-12);
    cr_expect_float_eq(num(r, "metrics.normalized_match.value"), 2.0 / 3, 1e-12);
    double bleu_sum[TW_BLEU_NSTATS] = {0}, chrf_sum[TW_CHRF_NSTATS] = {0}, rl = 0;
    for (int i = 0; i < 3; i++) {
        const char *const *refs = it[i].n_refs ? it[i].refs : &it[i].reference;
        size_t nr = it[i].n_refs ? it[i].n_refs : 1;
        tw_gen_item g;
        cr_assert_eq(tw_gen_item_score(&g, it[i].prediction, refs, nr, NULL), TW_OK);
        for (int j = 0; j < TW_BLEU_NSTATS; j++) bleu_sum[j] += g.bleu[j];
        for (int j = 0; j < TW_CHRF_NSTATS; j++) chrf_sum[j] += g.chrf[j];
        rl += g.rouge[2] / 3;
    }
    cr_expect_float_eq(num(r, "metrics.bleu.value"), tw_bleu_from_stats(bleu_sum), 1e-9);
    cr_expect_float_eq(num(r, "metrics.chrf.value"), tw_chrf_from_stats(chrf_sum), 1e-9);
    cr_expect_float_eq(num(r, "metrics.rougeL.value"), rl, 1e-12);
    /* item 1: rougeL vs "The Eiffel Tower" = P 2/2, R 2/3 -> 0.8; item 0: 1; item 2: 0 */
    cr_expect_float_eq(rl, (1 + 0.8 + 0) / 3, 1e-12);
    json_decref(r);
}

Test(score, compare_report)
{
    /* A = g_pred (right on 0,1,3,4,6,8,9); B right everywhere except item 0.
     * A only right: {0} -> 1; B only right: {2,5,7} -> 3;
     * McNemar p = 2 * P[Bin(4, .5) <= 1] = 2 * 5/16 = 0.625; delta accuracy = .9 - .7 = .2 */
    const char *pred_b[N_CLS];
    for (int i = 0; i < N_CLS; i++) pred_b[i] = g_gold[i];
    pred_b[0] = "neg";
    tw_score_item a[N_CLS], b[N_CLS];
    cls_items(a, g_pred);
    cls_items(b, pred_b);
    for (int i = 0; i < N_CLS; i++) b[i].latency_ms = 100;
    tw_score_params p = cls_params();
    json_t *r;
    tw_error err = {0};
    cr_assert_eq(tw_score_compare(a, b, N_CLS, &p, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_float_eq(num(r, "a.accuracy.value"), 0.7, 1e-12);
    cr_expect_float_eq(num(r, "b.accuracy.value"), 0.9, 1e-12);
    cr_expect_float_eq(num(r, "diff.accuracy.delta"), 0.2, 1e-12);
    double lo = num(r, "diff.accuracy.ci.0"), hi = num(r, "diff.accuracy.ci.1"), pv = num(r, "diff.accuracy.p");
    cr_expect(lo <= 0.2 && 0.2 <= hi, "[%g, %g]", lo, hi);
    cr_expect(pv > 0 && pv <= 1);
    cr_expect_eq(num(r, "mcnemar.a_only"), 1);
    cr_expect_eq(num(r, "mcnemar.b_only"), 3);
    cr_expect_eq(num(r, "mcnemar.both"), 6);
    cr_expect_eq(num(r, "mcnemar.neither"), 0);
    cr_expect_float_eq(num(r, "mcnemar.p"), 0.625, 1e-12);
    cr_expect_float_eq(num(r, "power.discordance"), 0.4, 1e-12);
    /* slices carry the primary metric: slice a: A 3/4, B 3/4 (item 0 lost, item 2 won) */
    cr_expect_float_eq(num(r, "slices.a.delta"), 0.0, 1e-12);
    cr_expect_float_eq(num(r, "slices.b.b"), 1.0, 1e-12);
    cr_expect_float_eq(num(r, "latency_ms.b.p50"), 100, 1e-12);
    cr_expect_float_eq(num(r, "latency_ms.a.p50"), 5.5, 1e-12);
    json_decref(r);

    /* identical systems: zero difference, p = 1 */
    cr_assert_eq(tw_score_compare(a, a, N_CLS, &p, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_float_eq(num(r, "diff.macro_f1.delta"), 0.0, 1e-15);
    cr_expect_float_eq(num(r, "diff.macro_f1.p"), 1.0, 1e-15);
    cr_expect_float_eq(num(r, "mcnemar.p"), 1.0, 1e-15);
    json_decref(r);

    /* items must pair up */
    b[4].id = "other";
    cr_expect_eq(tw_score_compare(a, b, N_CLS, &p, &r, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "item 4: ids differ") != NULL, "%s", err.msg);
}

Test(score, table)
{
    tw_score_item it[N_CLS];
    cls_items(it, g_pred);
    tw_score_params p = cls_params();
    json_t *r;
    cr_assert_eq(tw_score(it, N_CLS, &p, &r, NULL), TW_OK);
    tw_buf out = {0};
    cr_assert_eq(tw_score_format_table(r, &out), TW_OK);
    cr_expect(strstr(out.data, "classify, 10 items, primary metric: accuracy") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "accuracy *            0.7000  [0.") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "confusion (rows gold, columns predicted)") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "\"Neutral\" (1)") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "latency ms: p50 5.5, p90 9.1, p99 9.9") != NULL, "%s", out.data);
    json_decref(r);

    tw_score_item b[N_CLS];
    cls_items(b, g_gold);
    cr_assert_eq(tw_score_compare(it, b, N_CLS, &p, &r, NULL), TW_OK);
    tw_buf_clear(&out);
    cr_assert_eq(tw_score_format_table(r, &out), TW_OK);
    cr_expect(strstr(out.data, "exact McNemar (accuracy): only A right 0, only B right 3") != NULL, "%s", out.data);
    cr_expect(strstr(out.data, "+0.3000") != NULL, "%s", out.data);
    json_decref(r);

    json_t *bad = json_object();
    cr_expect_eq(tw_score_format_table(bad, &out), TW_ERR_INVALID);
    json_decref(bad);
    tw_buf_free(&out);
}

Test(score, ci_width_100k_items_1000_resamples, .timeout = 60)
{
    /* 100k classification items with 1000 bootstrap resamples: the interval width follows
     * normal theory. Speed is measured, not asserted (DESIGN.md): the time is logged. */
    enum { N = 100000, K = 10 };
    static const char *labels[K] = {"l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"};
    tw_score_item *it = calloc(N, sizeof *it);
    tw_rng rng;
    tw_rng_seed(&rng, 5);
    for (size_t i = 0; i < N; i++) {
        size_t g = tw_rng_below(&rng, K);
        it[i].reference = labels[g];
        it[i].prediction = tw_rng_uniform(&rng) < 0.8 ? labels[g] : labels[tw_rng_below(&rng, K)];
        it[i].latency_ms = it[i].tokens_in = it[i].tokens_out = NAN;
    }
    tw_score_params p = tw_score_default_params();
    p.labels = labels;
    p.n_labels = K;
    json_t *r;
    double t0 = tw_now();
    cr_assert_eq(tw_score(it, N, &p, &r, NULL), TW_OK);
    double dt = tw_now() - t0;   /* logged only */
    double w = num(r, "metrics.accuracy.ci.1") - num(r, "metrics.accuracy.ci.0");
    /* accuracy ~0.82: normal-theory width 2 * 1.96 * sqrt(.82 * .18 / 1e5) = 0.0048 */
    cr_expect(w > 0.0035 && w < 0.0060, "width %g", w);
    cr_log_info("tw_score: 100k items, B=1000: %.3f s", dt);
    json_decref(r);
    free(it);
}
