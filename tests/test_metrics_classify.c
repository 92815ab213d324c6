/* test_metrics_classify.c — label lookup, confusion matrix and classification metrics
 * (classify.c): a hand-computed case and scikit-learn 1.9 fixtures
 * (tests/ref/gen_score_fixtures.py -> tests/data/score/classify.json). */
#include "testutil.h"
#include "score/metrics.h"

#include <jansson.h>
#include <math.h>

static json_t *load_fixture(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/score/%s", name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "cannot load %s: %s", path, je.text);
    return j;
}

/* Encode string arrays and compute the confusion matrix + summary. */
static void score_strings(tw_cls_summary *s, double *per_class, uint64_t *conf, const char *const *labels,
                          size_t k, const char *const *gold, const char *const *pred, size_t n)
{
    tw_label_index ix;
    cr_assert_eq(tw_label_index_init(&ix, labels, k, NULL), TW_OK);
    int32_t *g = calloc(n, sizeof *g), *p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        g[i] = tw_label_index_find(&ix, gold[i]);
        cr_assert(g[i] >= 0);
        int32_t pi = tw_label_index_find(&ix, pred[i]);
        p[i] = pi < 0 ? (int32_t)k : pi;
    }
    memset(conf, 0, k * (k + 1) * sizeof *conf);
    tw_cls_confusion(conf, g, p, NULL, n, k);
    tw_cls_metrics(s, per_class, conf, k);
    free(g);
    free(p);
    tw_label_index_free(&ix);
}

Test(classify, hand_computed)
{
    /* gold: cat dog fish cat dog fish
     * pred: cat fish dog cat dog bird      (bird is outside the label set)
     * confusion (rows gold; columns cat dog fish invalid):
     *   cat  [2 0 0 0]   dog [0 1 1 0]   fish [0 1 0 1]
     * cat:  tp 2 fp 0 fn 0 -> P 1,  R 1,  F1 1
     * dog:  tp 1 fp 1 fn 1 -> P .5, R .5, F1 .5
     * fish: tp 0 fp 1 fn 2 -> 0, 0, 0
     * accuracy 3/6 = .5; macro F1 = 1.5/3 = .5; weighted = (2*1 + 2*.5 + 0)/6 = .5;
     * micro: tp 3, fp 2 (the invalid "bird" is no class's false positive), fn 3
     *   -> 2*3 / (2*3 + 2 + 3) = 6/11. */
    const char *labels[] = {"cat", "dog", "fish"};
    const char *gold[] = {"cat", "dog", "fish", "cat", "dog", "fish"};
    const char *pred[] = {"cat", "fish", "dog", "cat", "dog", "bird"};
    uint64_t conf[12];
    double pc[12];
    tw_cls_summary s;
    score_strings(&s, pc, conf, labels, 3, gold, pred, 6);
    uint64_t want_conf[12] = {2, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1};
    for (int i = 0; i < 12; i++) cr_expect_eq(conf[i], want_conf[i], "conf[%d]", i);
    cr_expect_float_eq(s.accuracy, 0.5, 1e-12);
    cr_expect_float_eq(s.macro_f1, 0.5, 1e-12);
    cr_expect_float_eq(s.weighted_f1, 0.5, 1e-12);
    cr_expect_float_eq(s.micro_f1, 6.0 / 11.0, 1e-12);
    cr_expect_eq(s.n, 6);
    cr_expect_eq(s.n_invalid, 1);
    double want_pc[12] = {1, 1, 1, 2, .5, .5, .5, 2, 0, 0, 0, 2};
    for (int i = 0; i < 12; i++) cr_expect_float_eq(pc[i], want_pc[i], 1e-12, "per_class[%d]", i);
}

Test(classify, weights_are_multiplicities)
{
    /* w = {2, 0, 1}: same as the item list {0, 0, 2} */
    int32_t g[3] = {0, 1, 1}, p[3] = {0, 0, 2};
    uint32_t w[3] = {2, 0, 1};
    uint64_t conf[6] = {0};
    tw_cls_confusion(conf, g, p, w, 3, 2);
    cr_expect_eq(conf[0], 2);
    cr_expect_eq(conf[3], 0);
    cr_expect_eq(conf[5], 1);   /* gold 1, invalid */
    tw_cls_summary s;
    tw_cls_metrics(&s, NULL, conf, 2);
    cr_expect_float_eq(s.accuracy, 2.0 / 3.0, 1e-12);
}

Test(classify, absent_class_not_averaged)
{
    /* class "c" never occurs nor is predicted: macro average over a and b only,
     * like scikit-learn's default label set (union of y_true and y_pred). */
    const char *labels[] = {"a", "b", "c"};
    const char *gold[] = {"a", "b"};
    const char *pred[] = {"a", "a"};
    uint64_t conf[12];
    tw_cls_summary s;
    score_strings(&s, NULL, conf, labels, 3, gold, pred, 2);
    /* a: P .5 R 1 F1 2/3; b: 0 -> macro = 1/3 */
    cr_expect_float_eq(s.macro_f1, 1.0 / 3.0, 1e-12);
    cr_expect_eq(s.n_averaged, 2);
}

Test(classify, empty_is_nan)
{
    uint64_t conf[2] = {0};
    tw_cls_summary s;
    tw_cls_metrics(&s, NULL, conf, 1);
    cr_expect(isnan(s.accuracy));
    cr_expect(isnan(s.macro_f1));
}

Test(classify, label_index)
{
    const char *labels[] = {"b", "a", "c"};
    tw_label_index ix;
    cr_assert_eq(tw_label_index_init(&ix, labels, 3, NULL), TW_OK);
    cr_expect_eq(tw_label_index_find(&ix, "a"), 1);
    cr_expect_eq(tw_label_index_find(&ix, "b"), 0);
    cr_expect_eq(tw_label_index_find(&ix, "c"), 2);
    cr_expect_eq(tw_label_index_find(&ix, "A"), -1);   /* exact, case-sensitive */
    cr_expect_eq(tw_label_index_find(&ix, "a "), -1);
    cr_expect_eq(tw_label_index_find(&ix, NULL), -1);
    tw_label_index_free(&ix);
    const char *dup[] = {"x", "y", "x"};
    tw_error err = {0};
    cr_expect_eq(tw_label_index_init(&ix, dup, 3, &err), TW_ERR_INVALID);
    cr_expect(strstr(err.msg, "duplicate label 'x'") != NULL, "%s", err.msg);
    tw_label_index_free(&ix);   /* safe after failure */
}

Test(classify, matches_sklearn_fixture)
{
    json_t *fx = load_fixture("classify.json");
    json_t *cases = json_object_get(fx, "cases");
    cr_assert(json_array_size(cases) >= 5);
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        json_t *jl = json_object_get(c, "labels"), *jg = json_object_get(c, "gold"), *jp = json_object_get(c, "pred");
        size_t k = json_array_size(jl), n = json_array_size(jg);
        const char **labels = calloc(k, sizeof *labels), **gold = calloc(n, sizeof *gold), **pred = calloc(n, sizeof *pred);
        for (size_t i = 0; i < k; i++) labels[i] = json_string_value(json_array_get(jl, i));
        for (size_t i = 0; i < n; i++) {
            gold[i] = json_string_value(json_array_get(jg, i));
            pred[i] = json_string_value(json_array_get(jp, i));
        }
        uint64_t *conf = calloc(k * (k + 1), sizeof *conf);
        double *pc = calloc(4 * k, sizeof *pc);
        tw_cls_summary s;
        score_strings(&s, pc, conf, labels, k, gold, pred, n);
        struct { const char *key; double got; } m[] = {
            {"accuracy", s.accuracy}, {"macro_f1", s.macro_f1}, {"micro_f1", s.micro_f1},
            {"weighted_f1", s.weighted_f1}, {"macro_precision", s.macro_precision}, {"macro_recall", s.macro_recall}};
        for (size_t j = 0; j < sizeof m / sizeof *m; j++) {
            double want = json_number_value(json_object_get(c, m[j].key));
            cr_expect(fabs(m[j].got - want) < 1e-12, "%s %s: %.15f vs sklearn %.15f", name, m[j].key, m[j].got, want);
        }
        json_t *per = json_object_get(c, "per_class");
        for (size_t i = 0; i < k; i++) {
            json_t *row = json_object_get(per, labels[i]);
            for (size_t j = 0; j < 4; j++)
                cr_expect(fabs(pc[4 * i + j] - json_number_value(json_array_get(row, j))) < 1e-12, "%s %s col %zu", name,
                          labels[i], j);
        }
        free(conf);
        free(pc);
        free(labels);
        free(gold);
        free(pred);
    }
    json_decref(fx);
}
