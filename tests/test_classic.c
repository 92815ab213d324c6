/* test_classic.c — the classic arm: featurization (char_wb rules, lowercase), learning
 * a separable problem (with and without NB scaling), selection paths (k-fold CV,
 * CV + dev, dev, holdout), determinism, save/load round trip (format versions 1 and
 * 2), rejection of corrupted/truncated model files, unseen labels, empty input, a
 * small real-data check on SST-2. Kept small: the suite also runs under ASan/UBSan. */
#include "testutil.h"
#include "arms/classic.h"
#include "arms/features.h"
#include "base/base.h"

#include <jansson.h>
#include <math.h>

/* ---- helpers ------------------------------------------------------------------ */
/* Sorted (bucket, count) pairs of a text, as a comparable signature. */
typedef struct sig { size_t n; uint32_t b[256]; uint32_t c[256]; } sig;

static int cmp_pair(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y;
    return (*a > *b) - (*a < *b);
}

static sig features_of(const tw_feat_config *cfg, const char *text)
{
    tw_feat_scratch s = {0};
    tw_error e;
    cr_assert_eq(tw_feat_extract(cfg, text, strlen(text), &s, &e), TW_OK);
    cr_assert_leq(s.n, 256);
    uint64_t pairs[256];
    for (size_t i = 0; i < s.n; i++) pairs[i] = (uint64_t)s.out_bucket[i] << 32 | s.out_count[i];
    qsort(pairs, s.n, sizeof *pairs, cmp_pair);
    sig g = {0};
    g.n = s.n;
    for (size_t i = 0; i < s.n; i++) { g.b[i] = (uint32_t)(pairs[i] >> 32); g.c[i] = (uint32_t)pairs[i]; }
    tw_feat_scratch_free(&s);
    return g;
}

static int sig_eq(const sig *a, const sig *b)
{
    return a->n == b->n && !memcmp(a->b, b->b, a->n * 4) && !memcmp(a->c, b->c, a->n * 4);
}

/* Synthetic 3-class problem: each class has its own keywords, all share filler. */
#define SYN_N 90
static char syn_buf[SYN_N][96];
static const char *syn_text[SYN_N], *syn_label[SYN_N];

static void make_synthetic(uint64_t seed)
{
    static const char *kw[3][4] = {{"refund", "money", "charge", "payment"},
                                   {"card", "lost", "stolen", "blocked"},
                                   {"transfer", "account", "iban", "wire"}};
    static const char *fill[] = {"the", "my", "please", "help", "why", "is", "it", "now"};
    static const char *names[] = {"billing", "cards", "transfers"};
    tw_rng r;
    tw_rng_seed(&r, seed);
    for (int i = 0; i < SYN_N; i++) {
        int c = i % 3;
        snprintf(syn_buf[i], sizeof syn_buf[i], "%s %s %s %s", fill[tw_rng_below(&r, 8)],
                 kw[c][tw_rng_below(&r, 4)], fill[tw_rng_below(&r, 8)], kw[c][tw_rng_below(&r, 4)]);
        syn_text[i] = syn_buf[i];
        syn_label[i] = names[c];
    }
}

static tw_classic_params small_params(void)
{
    tw_classic_params p = tw_classic_default_params();
    p.hash_bits = 12;
    p.C = 1.0;
    p.threads = 2;
    return p;
}

static tw_classic *train_synthetic(const tw_classic_params *p)
{
    make_synthetic(7);
    tw_classic *m = NULL;
    tw_error e;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, NULL, NULL, 0, p, &e), TW_OK, "%s", e.msg);
    return m;
}

/* ---- featurization ------------------------------------------------------------- */
Test(classic_features, char_wb_counts_like_sklearn)
{
    tw_feat_config c = {0, 2, 2, 3, 16};
    /* " ab " → 2-grams " a","ab","b " + 3-grams " ab","ab ": 5 distinct, once each */
    sig a = features_of(&c, "ab");
    cr_assert_eq(a.n, 5);
    for (size_t i = 0; i < a.n; i++) cr_assert_eq(a.c[i], 1);
    /* the same word twice (any whitespace between) doubles every count */
    sig b = features_of(&c, "ab \t\n ab");
    cr_assert_eq(b.n, 5);
    for (size_t i = 0; i < b.n; i++) cr_assert_eq(b.c[i], 2);
    cr_assert(!memcmp(a.b, b.b, 5 * 4));
    /* a padded word shorter than n counts once as a whole: " a " with n in [4,5] */
    tw_feat_config c45 = {0, 2, 4, 5, 16};
    sig s = features_of(&c45, "a");
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.c[0], 1);
    /* " a " as a 3-gram (range 3..5) is the same string: the same bucket */
    tw_feat_config c35 = {0, 2, 3, 5, 16};
    sig s3 = features_of(&c35, "a");
    cr_assert_eq(s3.n, 1);
    cr_assert_eq(s3.b[0], s.b[0]);
    /* punctuation stays inside char_wb words */
    sig p1 = features_of(&c, "ab!");
    cr_assert_neq(p1.n, a.n);
    /* char buckets live in the upper half */
    for (size_t i = 0; i < a.n; i++) cr_assert_eq(tw_feat_block(&c, a.b[i]), 1);
}

Test(classic_features, words_and_lowercase)
{
    tw_feat_config w = {2, 2, 0, 0, 16};
    /* tokens of >= 2 word chars: "my card" → my, card, "my card" */
    sig s = features_of(&w, "My CARD!");
    cr_assert_eq(s.n, 3);
    for (size_t i = 0; i < s.n; i++) cr_assert_eq(tw_feat_block(&w, s.b[i]), 0);
    /* single letters are dropped before n-gramming (sklearn's default pattern) */
    sig t = features_of(&w, "my a card");
    cr_assert(sig_eq(&s, &t));
    tw_feat_config w1 = {2, 1, 0, 0, 16};
    sig u = features_of(&w1, "my a card");
    cr_assert_eq(u.n, 5);
    /* Unicode lowercase for Latin/Greek/Cyrillic, invalid UTF-8 does not crash */
    tw_feat_config all = {2, 2, 2, 5, 18};
    sig x = features_of(&all, "ÉCOLE Über ŁÓDŹ ΣΟΦΙΑ МОСКВА");
    sig y = features_of(&all, "école über łódź σοφια москва");
    cr_assert(sig_eq(&x, &y));
    sig z = features_of(&all, "bad \xff\xfe utf8 \xc3");
    cr_assert_gt(z.n, 0);
    cr_assert_eq(tw_feat_lower('Q'), 'q');
    cr_assert_eq(tw_feat_lower(0x178), 0xFF);
    /* empty and whitespace-only texts give no features */
    cr_assert_eq(features_of(&all, "").n, 0);
    cr_assert_eq(features_of(&all, " \t\n").n, 0);
}

Test(classic_features, config_check)
{
    tw_error e;
    tw_feat_config bad_bits = {2, 2, 2, 5, 30};
    cr_assert_eq(tw_feat_config_check(&bad_bits, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "hash_bits"));
    tw_feat_config none = {0, 2, 0, 0, 16};
    cr_assert_eq(tw_feat_config_check(&none, &e), TW_ERR_INVALID);
    tw_feat_config inv = {1, 2, 5, 2, 16};
    cr_assert_eq(tw_feat_config_check(&inv, &e), TW_ERR_INVALID);
}

/* ---- training and prediction ------------------------------------------------------ */
Test(classic, learns_separable_problem)
{
    tw_classic_params p = small_params();
    for (int k = 0; k < 6; k++) {           /* each loss, without and with NB scaling */
        int loss = k % 3;
        p.loss = loss;
        p.nb = k / 3;
        p.C = loss == TW_CLASSIC_LOGREG ? 10.0 : 1.0;
        tw_classic *m = train_synthetic(&p);
        cr_assert_eq(tw_classic_n_labels(m), 3);
        cr_assert_str_eq(tw_classic_label(m, 0), "billing");   /* sorted */
        cr_assert_str_eq(tw_classic_label(m, 2), "transfers");
        const char *lab;
        tw_error e;
        for (int i = 0; i < SYN_N; i++) {
            cr_assert_eq(tw_classic_predict(m, syn_text[i], &lab, NULL, &e), TW_OK);
            cr_assert_str_eq(lab, syn_label[i], "loss %d, example %d: \"%s\"", loss, i, syn_text[i]);
        }
        /* unseen combinations of the keywords generalise */
        cr_assert_eq(tw_classic_predict(m, "WHY was my card STOLEN", &lab, NULL, &e), TW_OK);
        cr_assert_str_eq(lab, "cards");
        cr_assert_eq(tw_classic_predict(m, "wire it to my iban", &lab, NULL, &e), TW_OK);
        cr_assert_str_eq(lab, "transfers");
        const tw_classic_info *in = tw_classic_get_info(m);
        cr_assert_eq(in->selection, TW_CLASSIC_SEL_FIXED);
        cr_assert_eq(in->n_train, SYN_N);
        cr_assert_gt(in->n_features, 10);
        cr_assert_geq(in->iterations_max, 1);
        tw_classic_free(m);
    }
}

/* Reference for the whole pipeline on a tiny binary problem: the test builds the
 * features itself (tw_feat_extract, then tf 1 + ln(tf), smooth idf, L2 norm), the NB
 * ratios r_j = ln((1 + p_j) / (F + sum p)) - ln((1 + q_j) / (F + sum q)), and minimises
 * the primal 1/2 |w|^2 + C sum max(0, 1 - y w.z)^2 over z = [r∘x, 1] by gradient descent
 * (strongly convex: one optimum). The arm's dual solver at tol 1e-9 must give the same
 * decision values (float weights: within 1e-5; they agree to 1e-6 here). */
#define REF_N 12
#define REF_F 64

static void reference_scores(const char **t, const int *y, int nb, double C, double *out)
{
    tw_feat_config fc = {1, 1, 0, 0, 12};
    tw_feat_scratch s = {0};
    tw_error e;
    uint32_t vocab[REF_F];
    size_t F = 0;
    double x[REF_N][REF_F] = {{0}}, df[REF_F] = {0}, p[REF_F] = {0}, q[REF_F] = {0};
    for (int i = 0; i < REF_N; i++) {
        cr_assert_eq(tw_feat_extract(&fc, t[i], strlen(t[i]), &s, &e), TW_OK);
        for (size_t k = 0; k < s.n; k++) {
            size_t j = 0;
            while (j < F && vocab[j] != s.out_bucket[k]) j++;
            if (j == F) { cr_assert_lt(F, REF_F); vocab[F++] = s.out_bucket[k]; }
            x[i][j] = 1.0 + log((double)s.out_count[k]);
            df[j] += 1;
            if (y[i] > 0) p[j] += 1; else q[j] += 1;
        }
    }
    tw_feat_scratch_free(&s);
    double sp = (double)F, sq = (double)F, r[REF_F];
    for (size_t j = 0; j < F; j++) { sp += p[j]; sq += q[j]; }
    for (size_t j = 0; j < F; j++) r[j] = nb ? log((1 + p[j]) / sp) - log((1 + q[j]) / sq) : 1.0;
    double z[REF_N][REF_F + 1], L = 1;
    for (int i = 0; i < REF_N; i++) {
        double nn = 0;
        for (size_t j = 0; j < F; j++) {
            x[i][j] *= log((1.0 + REF_N) / (1.0 + df[j])) + 1.0;
            nn += x[i][j] * x[i][j];
        }
        double zz = 1;
        for (size_t j = 0; j < F; j++) { z[i][j] = x[i][j] / sqrt(nn) * r[j]; zz += z[i][j] * z[i][j]; }
        z[i][F] = 1.0;
        L += 2 * C * zz;
    }
    double w[REF_F + 1] = {0}, g[REF_F + 1];
    for (int it = 0; it < 200000; it++) {
        for (size_t j = 0; j <= F; j++) g[j] = w[j];
        for (int i = 0; i < REF_N; i++) {
            double m = 0;
            for (size_t j = 0; j <= F; j++) m += w[j] * z[i][j];
            double slack = 1 - y[i] * m;
            if (slack > 0)
                for (size_t j = 0; j <= F; j++) g[j] -= 2 * C * slack * y[i] * z[i][j];
        }
        for (size_t j = 0; j <= F; j++) w[j] -= g[j] / L;
    }
    for (int i = 0; i < REF_N; i++) {
        out[i] = 0;
        for (size_t j = 0; j <= F; j++) out[i] += w[j] * z[i][j];
    }
}

Test(classic, matches_reference_svm_with_and_without_nb)
{
    const char *t[REF_N] = {"good movie", "great fun", "good acting great story", "fun and good", "a great film",
                            "loved it good", "bad movie", "boring plot", "bad acting boring story", "awful and bad",
                            "a boring film", "hated it but good"};
    const char *l[REF_N];
    int y[REF_N];
    for (int i = 0; i < REF_N; i++) { y[i] = i < 6 ? 1 : -1; l[i] = i < 6 ? "pos" : "neg"; }
    for (int nb = 0; nb <= 1; nb++) {
        double ref[REF_N];
        reference_scores(t, y, nb, 0.7, ref);
        tw_classic_params p = tw_classic_default_params();
        p.word_ngram_max = 1;
        p.char_ngram_max = 0;
        p.hash_bits = 12;
        p.C = 0.7;
        p.nb = nb;
        p.tol = 1e-9;
        p.max_iter = 100000;
        p.threads = 1;
        tw_classic *m = NULL;
        tw_error e;
        cr_assert_eq(tw_classic_train(&m, t, l, REF_N, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
        cr_assert_str_eq(tw_classic_label(m, 1), "pos");
        float s[REF_N * 2];
        cr_assert_eq(tw_classic_predict_batch(m, t, REF_N, NULL, NULL, s, &e), TW_OK);
        for (int i = 0; i < REF_N; i++) {
            cr_assert_float_eq(s[2 * i + 1], ref[i], 1e-5, "nb %d, \"%s\": arm %.6f, reference %.6f", nb, t[i],
                               s[2 * i + 1], ref[i]);
            cr_assert_eq(s[2 * i], -s[2 * i + 1]);
        }
        tw_classic_free(m);
    }
}

Test(classic, batch_matches_single_and_scores)
{
    tw_classic_params p = small_params();
    tw_classic *m = train_synthetic(&p);
    const char *labs[SYN_N];
    int idx[SYN_N];
    float scores[SYN_N * 3];
    tw_error e;
    cr_assert_eq(tw_classic_predict_batch(m, syn_text, SYN_N, labs, idx, scores, &e), TW_OK);
    for (int i = 0; i < SYN_N; i++) {
        const char *lab;
        float s[3];
        cr_assert_eq(tw_classic_predict(m, syn_text[i], &lab, s, &e), TW_OK);
        cr_assert_eq(lab, labs[i]);          /* borrowed from the model: same pointer */
        cr_assert_str_eq(tw_classic_label(m, (size_t)idx[i]), lab);
        for (int c = 0; c < 3; c++) cr_assert_eq(s[c], scores[i * 3 + c]);
        cr_assert(s[idx[i]] >= s[0] && s[idx[i]] >= s[1] && s[idx[i]] >= s[2]);
    }
    tw_classic_free(m);
}

Test(classic, empty_and_odd_inputs)
{
    tw_classic_params p = small_params();
    tw_classic *m = train_synthetic(&p);
    const char *lab = NULL;
    float s[3], s2[3];
    tw_error e;
    /* empty text: only the bias decides; whitespace-only and unknown words alike */
    cr_assert_eq(tw_classic_predict(m, "", &lab, s, &e), TW_OK);
    cr_assert_not_null(lab);
    cr_assert_eq(tw_classic_predict(m, "   \n\t ", &lab, s2, &e), TW_OK);
    for (int c = 0; c < 3; c++) cr_assert_eq(s[c], s2[c]);
    cr_assert_eq(tw_classic_predict(m, "zzqx", &lab, s2, &e), TW_OK);   /* out-of-vocabulary word */
    cr_assert_eq(tw_classic_predict(m, "\xff\xfe\xc3 card", &lab, NULL, &e), TW_OK);
    char *big = malloc(100001);
    for (int i = 0; i < 100000; i++) big[i] = "card lost "[i % 10];
    big[100000] = '\0';
    cr_assert_eq(tw_classic_predict(m, big, &lab, NULL, &e), TW_OK);
    cr_assert_str_eq(lab, "cards");
    free(big);
    cr_assert_eq(tw_classic_predict(m, NULL, &lab, NULL, &e), TW_ERR_INVALID);
    const char *texts[2] = {"card", NULL};
    const char *labs[2];
    cr_assert_eq(tw_classic_predict_batch(m, texts, 2, labs, NULL, NULL, &e), TW_ERR_INVALID);
    cr_assert_eq(tw_classic_predict_batch(m, texts, 0, labs, NULL, NULL, &e), TW_OK);
    tw_classic_free(m);
    tw_classic_free(NULL);
}

Test(classic, rejects_bad_training_input)
{
    tw_classic *m = NULL;
    tw_error e;
    tw_classic_params p = small_params();
    const char *t[3] = {"a b", "c d", "e f"};
    const char *one[3] = {"x", "x", "x"};
    cr_assert_eq(tw_classic_train(&m, t, one, 3, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "2 distinct labels"), "%s", e.msg);
    const char *withnull[3] = {"x", NULL, "y"};
    cr_assert_eq(tw_classic_train(&m, t, withnull, 3, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "example 1"), "%s", e.msg);
    const char *ok[3] = {"x", "y", "x"};
    cr_assert_eq(tw_classic_train(&m, t, ok, 0, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    p.hash_bits = 40;
    cr_assert_eq(tw_classic_train(&m, t, ok, 3, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "hash_bits"), "%s", e.msg);
    p = small_params();
    p.loss = 9;
    cr_assert_eq(tw_classic_train(&m, t, ok, 3, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    p = small_params();
    p.C = 0;
    double grid[2] = {1.0, -1.0};
    p.C_grid = grid;
    p.n_C = 2;
    cr_assert_eq(tw_classic_train(&m, t, ok, 3, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "C_grid[1]"), "%s", e.msg);
    cr_assert_null(m);
    /* a tiny but valid problem trains: with a holdout nothing can be held out (C falls
     * back to 1); cross-validation holds out each example once (a fold may lack a label) */
    p = small_params();
    p.C = 0;
    p.folds = 0;
    cr_assert_eq(tw_classic_train(&m, t, ok, 3, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_classic_get_info(m)->C, 1.0);
    cr_assert_eq(tw_classic_get_info(m)->selection, TW_CLASSIC_SEL_FIXED);
    tw_classic_free(m);
    p.folds = 5;
    cr_assert_eq(tw_classic_train(&m, t, ok, 3, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_classic_get_info(m)->selection, TW_CLASSIC_SEL_CV);
    cr_assert_eq(tw_classic_get_info(m)->n_sel, 3);
    tw_classic_free(m);
}

Test(classic, selection_cv_holdout_dev_with_unseen_labels)
{
    make_synthetic(11);
    tw_classic_params p = small_params();
    p.C = 0;
    tw_classic *m = NULL;
    tw_error e;
    /* default: 5-fold cross-validation on train, every example held out once */
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
    const tw_classic_info *in = tw_classic_get_info(m);
    cr_assert_eq(in->selection, TW_CLASSIC_SEL_CV);
    cr_assert_eq(in->folds, 5);
    cr_assert_eq(in->n_cand, 5);                /* 3 labels: NB auto stays off */
    cr_assert_eq(in->n_sel, SYN_N);
    cr_assert_eq(in->n_train, SYN_N);           /* refit on all */
    cr_assert_float_eq(in->sel_accuracy, 1.0, 1e-12);
    cr_assert(isnan(in->dev_accuracy));
    for (size_t g = 0; g < in->n_cand; g++) {
        cr_assert_eq(in->cand_nb[g], 0);
        cr_assert_float_eq(in->cand_accuracy[g], in->cand_cv_accuracy[g], 1e-12);
        cr_assert(isnan(in->cand_dev_accuracy[g]));
        cr_assert_geq(in->cand_accuracy[g], 0.9, "C=%g: %f", in->cand_C[g], in->cand_accuracy[g]);
        if (g) cr_assert_lt(in->cand_C[g - 1], in->cand_C[g]);
    }
    cr_assert_float_eq(in->C, 0.1, 0);          /* all perfect: ties go to the smallest C */
    json_t *j = tw_classic_info_json(m);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "selection")), "cv");
    cr_assert_eq(json_array_size(json_object_get(j, "grid")), 5);
    cr_assert(json_is_null(json_object_get(j, "dev_accuracy")));
    json_decref(j);
    tw_classic_free(m);

    /* folds = 0 without dev: a stratified 10% holdout */
    p.folds = 0;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
    in = tw_classic_get_info(m);
    cr_assert_eq(in->selection, TW_CLASSIC_SEL_HOLDOUT);
    cr_assert_eq(in->folds, 0);
    cr_assert_eq(in->n_sel, 9);                 /* 10% of 30 per class */
    cr_assert_float_eq(in->sel_accuracy, 1.0, 1e-12);
    tw_classic_free(m);

    /* dev split with a label never seen in train: counted as an error, not a failure */
    const char *dt[4] = {"my card was stolen", "refund my money", "wire to iban", "totally new thing"};
    const char *dl[4] = {"cards", "billing", "transfers", "brand_new_label"};
    double grid[3] = {10.0, 0.5, 2.0};
    p.C_grid = grid;
    p.n_C = 3;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, dt, dl, 4, &p, &e), TW_OK, "%s", e.msg);
    in = tw_classic_get_info(m);
    cr_assert_eq(in->selection, TW_CLASSIC_SEL_DEV);
    cr_assert_eq(in->n_cand, 3);
    cr_assert_eq(in->n_sel, 4);
    cr_assert_float_eq(in->cand_C[0], 0.5, 0);
    cr_assert(isnan(in->cand_cv_accuracy[0]));
    cr_assert_float_eq(in->sel_accuracy, 0.75, 1e-12);
    cr_assert_float_eq(in->dev_accuracy, 0.75, 1e-12);   /* the refitted final model */
    cr_assert_float_eq(in->C, 0.5, 0);          /* ties go to the smallest C */
    cr_assert_eq(tw_classic_label_index(m, "brand_new_label"), -1);
    cr_assert_eq(tw_classic_label_index(m, "cards"), 1);
    tw_classic_free(m);

    /* cross-validation and dev pooled: counts add up */
    p.folds = 3;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, dt, dl, 4, &p, &e), TW_OK, "%s", e.msg);
    in = tw_classic_get_info(m);
    cr_assert_eq(in->selection, TW_CLASSIC_SEL_CV_DEV);
    cr_assert_eq(in->folds, 3);
    cr_assert_eq(in->n_sel, SYN_N + 4);
    for (size_t g = 0; g < in->n_cand; g++)
        cr_assert_float_eq(in->cand_accuracy[g],
                           (in->cand_cv_accuracy[g] * SYN_N + in->cand_dev_accuracy[g] * 4) / (SYN_N + 4), 1e-12);
    cr_assert_float_eq(in->dev_accuracy, 0.75, 1e-12);
    tw_classic_free(m);

    /* fixed C with a dev split still reports the dev accuracy; no selection */
    p.C = 1.0;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, dt, dl, 4, &p, &e), TW_OK, "%s", e.msg);
    cr_assert_float_eq(tw_classic_get_info(m)->dev_accuracy, 0.75, 1e-12);
    cr_assert(isnan(tw_classic_get_info(m)->sel_accuracy));
    cr_assert_eq(tw_classic_get_info(m)->n_cand, 0);
    tw_classic_free(m);

    /* bad folds */
    p.C = 0;
    p.folds = 1;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "folds = 1"), "%s", e.msg);
    p.folds = 21;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    p.folds = 5;
    p.nb = 2;
    cr_assert_eq(tw_classic_train(&m, syn_text, syn_label, SYN_N, NULL, NULL, 0, &p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "nb = 2"), "%s", e.msg);
    cr_assert_null(m);
}

/* Two of the synthetic classes, with some labels flipped so that C matters. */
static void make_binary(const char **t, const char **l, size_t *n)
{
    make_synthetic(5);
    *n = 0;
    for (int i = 0; i < SYN_N; i++) {
        if (i % 3 == 2) continue;
        t[*n] = syn_text[i];
        l[*n] = (i % 11 == 0) ? syn_label[i + 1 - 2 * (i % 3)] : syn_label[i];
        (*n)++;
    }
}

Test(classic, nb_scaling_candidates_and_threads)
{
    const char *t[SYN_N], *l[SYN_N];
    size_t n;
    make_binary(t, l, &n);
    tw_error e;
    /* auto + two labels: NB off and on are both candidates, off first */
    tw_classic_params p = small_params();
    p.C = 0;
    float s[2][3][SYN_N * 2];
    tw_classic_info inf[2];
    for (int k = 0; k < 2; k++) {
        p.threads = k + 1;          /* 2 threads: folds run side by side */
        tw_classic *m = NULL;
        cr_assert_eq(tw_classic_train(&m, t, l, n, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
        inf[k] = *tw_classic_get_info(m);
        cr_assert_eq(tw_classic_predict_batch(m, t, n, NULL, NULL, s[k][0], &e), TW_OK);
        tw_classic_free(m);
    }
    const tw_classic_info *in = &inf[0];
    cr_assert_eq(in->n_cand, 10);
    for (size_t g = 0; g < 10; g++) cr_assert_eq(in->cand_nb[g], g >= 5);
    cr_assert_float_eq(in->cand_C[0], in->cand_C[5], 0);
    /* the selection and the model do not depend on the thread count */
    for (size_t g = 0; g < 10; g++) cr_assert_eq(inf[0].cand_accuracy[g], inf[1].cand_accuracy[g]);
    cr_assert_eq(inf[0].C, inf[1].C);
    cr_assert_eq(inf[0].nb, inf[1].nb);
    cr_assert(!memcmp(s[0][0], s[1][0], n * 2 * sizeof(float)), "1 vs 2 threads differ");
    /* off: only plain candidates; on: only NB */
    p.threads = 2;
    for (int nb = 0; nb <= 1; nb++) {
        p.nb = nb;
        tw_classic *m = NULL;
        cr_assert_eq(tw_classic_train(&m, t, l, n, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_classic_get_info(m)->n_cand, 5);
        for (size_t g = 0; g < 5; g++) cr_assert_eq(tw_classic_get_info(m)->cand_nb[g], nb);
        cr_assert_eq(tw_classic_get_info(m)->nb, nb);
        cr_assert_eq(tw_classic_get_params(m).nb, nb);
        tw_classic_free(m);
    }
    /* a fixed C with NB on scales the features: different scores from plain, and the
     * clean (unflipped) keyword sentences are still learned */
    p.C = 1.0;
    for (int nb = 0; nb <= 1; nb++) {
        p.nb = nb;
        tw_classic *m = NULL;
        cr_assert_eq(tw_classic_train(&m, t, l, n, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_classic_predict_batch(m, t, n, NULL, NULL, s[0][1 + nb], &e), TW_OK);
        const char *lab;
        cr_assert_eq(tw_classic_predict(m, "my card was stolen", &lab, NULL, &e), TW_OK);
        cr_assert_str_eq(lab, "cards");
        cr_assert_eq(tw_classic_predict(m, "refund the charge", &lab, NULL, &e), TW_OK);
        cr_assert_str_eq(lab, "billing");
        tw_classic_free(m);
    }
    cr_assert(memcmp(s[0][1], s[0][2], n * 2 * sizeof(float)) != 0, "NB scaling had no effect");
    /* auto with a fixed C means off */
    p.nb = -1;
    tw_classic *m = NULL;
    cr_assert_eq(tw_classic_train(&m, t, l, n, NULL, NULL, 0, &p, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_classic_get_info(m)->nb, 0);
    float s3[SYN_N * 2];
    cr_assert_eq(tw_classic_predict_batch(m, t, n, NULL, NULL, s3, &e), TW_OK);
    cr_assert(!memcmp(s3, s[0][1], n * 2 * sizeof(float)));
    tw_classic_free(m);
}

Test(classic, deterministic_under_seed_and_threads)
{
    make_synthetic(3);
    /* noisy labels so the solver has real work and the shuffle matters */
    const char *lab[SYN_N];
    for (int i = 0; i < SYN_N; i++) lab[i] = (i % 7 == 0) ? syn_label[(i + 1) % SYN_N] : syn_label[i];
    float s[3][SYN_N * 3];
    int configs[3][2] = {{1, 42}, {2, 42}, {2, 43}};   /* threads, seed */
    for (int k = 0; k < 3; k++) {
        tw_classic_params p = small_params();
        p.threads = configs[k][0];
        p.seed = (uint64_t)configs[k][1];
        p.tol = 1e-3;
        tw_classic *m = NULL;
        tw_error e;
        cr_assert_eq(tw_classic_train(&m, syn_text, lab, SYN_N, NULL, NULL, 0, &p, &e), TW_OK);
        cr_assert_eq(tw_classic_predict_batch(m, syn_text, SYN_N, NULL, NULL, s[k], &e), TW_OK);
        tw_classic_free(m);
    }
    cr_assert(!memcmp(s[0], s[1], sizeof s[0]), "1 vs 2 threads differ");
    /* another seed: a different shuffle, (almost surely) different low-order bits */
    cr_assert(memcmp(s[1], s[2], sizeof s[1]) != 0, "seed has no effect");
}

/* ---- files --------------------------------------------------------------------------- */
static char *save_small(tw_classic **mo, const char *dir, const char *name)
{
    tw_classic_params p = small_params();
    p.hash_bits = 9;
    p.char_ngram_max = 3;
    tw_classic *m = train_synthetic(&p);
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    tw_error e;
    cr_assert_eq(tw_classic_save(m, path, &e), TW_OK, "%s", e.msg);
    *mo = m;
    return path;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    char *d;
    tw_error e;
    cr_assert_eq(tw_file_read(path, &d, n, &e), TW_OK);
    return (unsigned char *)d;
}

static void spit(const char *path, const unsigned char *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    if (n) cr_assert_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}

Test(classic_file, save_load_round_trip)
{
    char *dir = tw_test_tmpdir();
    tw_classic *m;
    char *path = save_small(&m, dir, "m.twc");
    tw_classic *m2 = NULL;
    tw_error e;
    cr_assert_eq(tw_classic_load(&m2, path, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_classic_n_labels(m2), 3);
    const char *extra[] = {"", "card", "refund the wire", "unrelated words entirely", "ÉCOLE"};
    for (int i = 0; i < SYN_N + 5; i++) {
        const char *t = i < SYN_N ? syn_text[i] : extra[i - SYN_N];
        const char *l1, *l2;
        float s1[3], s2[3];
        cr_assert_eq(tw_classic_predict(m, t, &l1, s1, &e), TW_OK);
        cr_assert_eq(tw_classic_predict(m2, t, &l2, s2, &e), TW_OK);
        cr_assert_str_eq(l1, l2);
        cr_assert(!memcmp(s1, s2, sizeof s1), "scores differ after load for \"%s\"", t);
    }
    tw_classic_params p1 = tw_classic_get_params(m), p2 = tw_classic_get_params(m2);
    cr_assert_eq(p1.hash_bits, p2.hash_bits);
    cr_assert_eq(p1.char_ngram_max, p2.char_ngram_max);
    cr_assert_eq(p1.C, p2.C);
    cr_assert_eq(tw_classic_get_info(m2)->n_train, SYN_N);
    /* a loaded model saves to the identical bytes */
    char p3[600];
    snprintf(p3, sizeof p3, "%s/m2.twc", dir);
    cr_assert_eq(tw_classic_save(m2, p3, &e), TW_OK, "%s", e.msg);
    size_t n1, n2;
    unsigned char *a = slurp(path, &n1), *b = slurp(p3, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(!memcmp(a, b, n1));
    free(a);
    free(b);
    unlink(p3);
    tw_classic_free(m);
    tw_classic_free(m2);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

Test(classic_file, rejects_corrupted_and_truncated)
{
    char *dir = tw_test_tmpdir();
    tw_classic *m;
    char *path = save_small(&m, dir, "m.twc");
    tw_classic_free(m);
    size_t n;
    unsigned char *good = slurp(path, &n);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/bad.twc", dir);
    tw_classic *x = NULL;
    tw_error e;

    /* missing file */
    cr_assert_eq(tw_classic_load(&x, "/nonexistent/dir/m.twc", &e), TW_ERR_IO);
    cr_assert(strstr(e.msg, "/nonexistent/dir/m.twc"));

    /* every truncation */
    for (size_t k = 0; k < n; k++) {
        spit(bad, good, k);
        cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE, "truncated to %zu accepted", k);
        cr_assert_null(x);
        cr_assert(strstr(e.msg, "bad.twc"), "%s", e.msg);
    }
    spit(bad, good, n / 2);
    tw_classic_load(&x, bad, &e);
    cr_assert(strstr(e.msg, "truncated"), "%s", e.msg);

    /* trailing garbage */
    unsigned char *big = malloc(n + 3);
    memcpy(big, good, n);
    memset(big + n, 0, 3);
    spit(bad, big, n + 3);
    cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "trailing"), "%s", e.msg);
    free(big);

    /* every single flipped byte is caught (header checks or the checksum) */
    unsigned char *c = malloc(n);
    for (size_t k = 0; k < n; k++) {
        memcpy(c, good, n);
        c[k] ^= 0x5A;
        spit(bad, c, n);
        cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE, "flip at %zu accepted", k);
        cr_assert_null(x);
    }
    /* precise messages for the header fields */
    struct { size_t off; unsigned char v; const char *want; } cases[] = {
        {0, 'X', "offset 0: bad magic"},
        {8, 9, "offset 8: format version 9"},
        {16, 7, "offset 16: feature hash version"},
        {48, 1, "offset 48: 1 labels"},
        {40, 30, "bad feature config"},
        {n - 1, 0x77, "checksum mismatch"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(c, good, n);
        if (cases[k].off < 128) {
            if (cases[k].off == 8 || cases[k].off == 16 || cases[k].off == 48 || cases[k].off == 40)
                memset(c + cases[k].off, 0, 4);
            c[cases[k].off] = cases[k].v;
        } else {
            c[cases[k].off] ^= cases[k].v;
        }
        spit(bad, c, n);
        cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE);
        cr_assert(strstr(e.msg, cases[k].want), "case %zu: got \"%s\"", k, e.msg);
    }
    /* a corrupted body that still has a valid checksum: content validation */
    memcpy(c, good, n);
    uint64_t lb;
    memcpy(&lb, c + 56, 8);
    size_t buckets_off = 128 + (size_t)lb;
    memcpy(c + buckets_off, c + buckets_off + 4, 4);    /* duplicate bucket: not increasing */
    uint64_t sum = tw_feat_checksum(c, n - 8);
    memcpy(c + n - 8, &sum, 8);
    spit(bad, c, n);
    cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "out of order"), "%s", e.msg);
    memcpy(c, good, n);
    c[128] = 0xff;                                        /* label not UTF-8 */
    sum = tw_feat_checksum(c, n - 8);
    memcpy(c + n - 8, &sum, 8);
    spit(bad, c, n);
    cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "offset 128: label 0 is not valid UTF-8"), "%s", e.msg);
    /* the original still loads */
    cr_assert_eq(tw_classic_load(&x, path, &e), TW_OK, "%s", e.msg);
    tw_classic_free(x);
    free(c);
    free(good);
    unlink(bad);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

static void fix_sum(unsigned char *c, size_t n)
{
    uint64_t sum = tw_feat_checksum(c, n - 8);
    memcpy(c + n - 8, &sum, 8);
}

static void put32(unsigned char *c, size_t off, uint32_t v) { memcpy(c + off, &v, 4); }
static uint32_t get32(const unsigned char *c, size_t off) { uint32_t v; memcpy(&v, c + off, 4); return v; }

Test(classic_file, version_1_and_version_2_fields)
{
    char *dir = tw_test_tmpdir();
    tw_classic *m;
    char *path = save_small(&m, dir, "m.twc");
    size_t n;
    unsigned char *good = slurp(path, &n), *c = malloc(n);
    char bad[600];
    snprintf(bad, sizeof bad, "%s/v.twc", dir);
    tw_classic *x = NULL;
    tw_error e;
    cr_assert_eq(good[8], 2);
    cr_assert_eq(good[116], 0);                 /* fixed C: no folds */

    /* a version 1 file (same layout, bytes 116..127 zero) still loads and predicts the same */
    memcpy(c, good, n);
    put32(c, 8, 1);
    memset(c + 116, 0, 12);
    fix_sum(c, n);
    spit(bad, c, n);
    cr_assert_eq(tw_classic_load(&x, bad, &e), TW_OK, "%s", e.msg);
    cr_assert(isnan(tw_classic_get_info(x)->dev_accuracy));
    for (int i = 0; i < SYN_N; i++) {
        float s1[3], s2[3];
        const char *l1, *l2;
        cr_assert_eq(tw_classic_predict(m, syn_text[i], &l1, s1, &e), TW_OK);
        cr_assert_eq(tw_classic_predict(x, syn_text[i], &l2, s2, &e), TW_OK);
        cr_assert(!memcmp(s1, s2, sizeof s1));
    }
    tw_classic_free(x);
    /* ... but not with version 2 contents */
    struct { size_t off; uint32_t v; const char *want; } v1bad[] = {
        {116, 5, "offset 116: reserved header byte is not zero (version 1)"},
        {44, 7, "offset 44: unknown flags 0x7"},
        {100, 3, "offset 100: unknown selection 3"},
    };
    for (size_t k = 0; k < sizeof v1bad / sizeof v1bad[0]; k++) {
        memcpy(c, good, n);
        put32(c, 8, 1);
        memset(c + 116, 0, 12);
        put32(c, v1bad[k].off, v1bad[k].v);
        fix_sum(c, n);
        spit(bad, c, n);
        cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE, "v1 case %zu accepted", k);
        cr_assert(strstr(e.msg, v1bad[k].want), "v1 case %zu: %s", k, e.msg);
    }
    /* version 2: folds must match the selection, dev accuracy NaN or in [0, 1] */
    struct { size_t off; uint32_t v; size_t off2; uint32_t v2; const char *want; } v2bad[] = {
        {100, 3, 116, 0, "offset 116: folds = 0"},          /* cv without folds */
        {100, 0, 116, 5, "offset 116: folds = 5"},          /* folds without cv */
        {100, 3, 116, 1, "offset 116: folds = 1"},
        {100, 4, 116, 21, "offset 116: folds = 21"},
        {100, 5, 116, 5, "offset 100: unknown selection 5"},
        {124, 0x40000000, 120, 0, "offset 120: dev accuracy 2"},  /* f64 2.0 */
        {44, 8, 116, 0, "offset 44: unknown flags 0xb"},
    };
    for (size_t k = 0; k < sizeof v2bad / sizeof v2bad[0]; k++) {
        memcpy(c, good, n);
        put32(c, v2bad[k].off, v2bad[k].v);
        put32(c, v2bad[k].off2, v2bad[k].v2);
        if (v2bad[k].off == 44) put32(c, 44, get32(good, 44) | v2bad[k].v);
        fix_sum(c, n);
        spit(bad, c, n);
        cr_assert_eq(tw_classic_load(&x, bad, &e), TW_ERR_PARSE, "v2 case %zu accepted", k);
        cr_assert(strstr(e.msg, v2bad[k].want), "v2 case %zu: %s", k, e.msg);
    }
    tw_classic_free(m);

    /* a selected NB model round-trips its selection fields and saves to the same bytes */
    const char *t[SYN_N], *l[SYN_N];
    size_t nb_n;
    make_binary(t, l, &nb_n);
    tw_classic_params p = small_params();
    p.hash_bits = 10;
    p.C = 0;
    p.nb = 1;
    p.folds = 3;
    const char *dt[2] = {"my card was lost", "refund please"}, *dl[2] = {"cards", "billing"};
    cr_assert_eq(tw_classic_train(&m, t, l, nb_n, dt, dl, 2, &p, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_classic_save(m, path, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_classic_load(&x, path, &e), TW_OK, "%s", e.msg);
    const tw_classic_info *a = tw_classic_get_info(m), *b = tw_classic_get_info(x);
    cr_assert_eq(b->selection, TW_CLASSIC_SEL_CV_DEV);
    cr_assert_eq(b->folds, 3);
    cr_assert_eq(b->nb, 1);
    cr_assert_eq(tw_classic_get_params(x).nb, 1);
    cr_assert_eq(tw_classic_get_params(x).folds, 3);
    cr_assert_eq(tw_classic_get_params(m).folds, 3);
    cr_assert_eq(a->C, b->C);
    cr_assert_eq(a->sel_accuracy, b->sel_accuracy);
    cr_assert_eq(a->dev_accuracy, b->dev_accuracy);
    cr_assert_float_eq(b->dev_accuracy, 1.0, 1e-12);
    char p2[600];
    snprintf(p2, sizeof p2, "%s/m2.twc", dir);
    cr_assert_eq(tw_classic_save(x, p2, &e), TW_OK, "%s", e.msg);
    size_t n1, n2;
    unsigned char *b1 = slurp(path, &n1), *b2 = slurp(p2, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(!memcmp(b1, b2, n1));
    free(b1);
    free(b2);
    tw_classic_free(m);
    tw_classic_free(x);
    unlink(p2);
    unlink(bad);
    unlink(path);
    free(c);
    free(good);
    free(path);
    rmdir(dir);
    free(dir);
}

Test(classic_file, save_is_atomic_and_reports_errors)
{
    tw_classic *m;
    char *dir = tw_test_tmpdir();
    char *path = save_small(&m, dir, "m.twc");
    tw_error e;
    cr_assert_eq(tw_classic_save(m, "/nonexistent/dir/m.twc", &e), TW_ERR_IO);
    /* overwriting leaves a complete file */
    cr_assert_eq(tw_classic_save(m, path, &e), TW_OK);
    tw_classic *x;
    cr_assert_eq(tw_classic_load(&x, path, &e), TW_OK);
    tw_classic_free(x);
    tw_classic_free(m);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* ---- real data ------------------------------------------------------------------------- */
typedef struct rows { size_t n; char **t, **l; } rows;

static int load_jsonl(const char *path, size_t max, rows *r)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    r->t = calloc(max, sizeof *r->t);
    r->l = calloc(max, sizeof *r->l);
    char line[65536];
    while (r->n < max && fgets(line, sizeof line, f)) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        cr_assert_not_null(o, "%s: %s", path, je.text);
        r->t[r->n] = strdup(json_string_value(json_object_get(o, "input")));
        r->l[r->n] = strdup(json_string_value(json_object_get(o, "output")));
        r->n++;
        json_decref(o);
    }
    fclose(f);
    return 1;
}

static void rows_free(rows *r)
{
    for (size_t i = 0; i < r->n; i++) { free(r->t[i]); free(r->l[i]); }
    free(r->t);
    free(r->l);
}

Test(classic_real, sst2_subset_dev_accuracy, .timeout = 120)
{
    char tp[512], dp[512];
    snprintf(tp, sizeof tp, "%s/data/sst2/train.jsonl", tw_test_shared());
    snprintf(dp, sizeof dp, "%s/data/sst2/dev.jsonl", tw_test_shared());
    rows tr, dv;
    if (!load_jsonl(tp, 2000, &tr) || !load_jsonl(dp, 872, &dv)) cr_skip_test("SST-2 not found under %s", tw_test_shared());
    tw_classic_params p = tw_classic_default_params();
    p.threads = 2;
    p.hash_bits = 18;
    p.C = 1.0;
    tw_classic *m = NULL;
    tw_error e;
    cr_assert_eq(tw_classic_train(&m, (const char *const *)tr.t, (const char *const *)tr.l, tr.n,
                                  (const char *const *)dv.t, (const char *const *)dv.l, dv.n, &p, &e), TW_OK, "%s", e.msg);
    const tw_classic_info *in = tw_classic_get_info(m);
    cr_log_info("SST-2, 2000 train sentences, C=1: dev accuracy %.4f", in->dev_accuracy);
    /* 2,000 training sentences: 0.764 measured (NB: see below); a broken pipeline sits near 0.5 */
    cr_assert_gt(in->dev_accuracy, 0.70, "dev accuracy %.4f", in->dev_accuracy);
    const char **pred = malloc(dv.n * sizeof *pred);
    cr_assert_eq(tw_classic_predict_batch(m, (const char *const *)dv.t, dv.n, pred, NULL, NULL, &e), TW_OK);
    size_t ok = 0;
    for (size_t i = 0; i < dv.n; i++) ok += !strcmp(pred[i], dv.l[i]);
    cr_assert_float_eq((double)ok / (double)dv.n, in->dev_accuracy, 1e-12);
    free(pred);
    tw_classic_free(m);
    /* NB scaling on the same data: a broken scaling (wrong update or norm) falls far */
    p.nb = 1;
    cr_assert_eq(tw_classic_train(&m, (const char *const *)tr.t, (const char *const *)tr.l, tr.n,
                                  (const char *const *)dv.t, (const char *const *)dv.l, dv.n, &p, &e), TW_OK, "%s", e.msg);
    double nb_acc = tw_classic_get_info(m)->dev_accuracy;
    cr_log_info("SST-2, 2000 train sentences, C=1, NB: dev accuracy %.4f", nb_acc);
    cr_assert_gt(nb_acc, 0.72, "NB dev accuracy %.4f", nb_acc);
    tw_classic_free(m);
    rows_free(&tr);
    rows_free(&dv);
}
