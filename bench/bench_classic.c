/* bench_classic.c — figures of the classic arm on Banking77 and SST-2: featurize and
 * train time for one C, the full C search, test accuracy, prediction throughput,
 * model size and peak RSS. Run from the repository root:
 *
 *   build/bench/bench_classic [--data ../shared/data] [--datasets banking77,sst2]
 *                             [--C 1] [--threads 2] [--tol 0.1] [--bits 20]
 *                             [--loss svm|svm-l1|logreg] [--min-len 2] [--no-search]
 *                             [--word-max N] [--char-min N] [--char-max N]
 *                             [--sublinear 0|1] [--idf 0|1] [--seed N]
 *                             [--nb -1|0|1] [--folds K]
 *   build/bench/bench_classic --cv K --Cs 0.3,1,3 [feature/model options] [--dump PREFIX]
 *
 * The first form times one fit at a fixed C and the default selection, and reports
 * test accuracy. The second (--cv) is the evidence for modelling choices: K-fold
 * cross-validation accuracy on train, and dev accuracy, of fixed settings at each C;
 * it never scores the test split. --dump writes per-example correctness
 * (PREFIX.<dataset>.C<C>, CV rows then dev rows, one 0/1 a line) for paired
 * comparisons of two settings.
 *
 * The scikit-learn side of the comparison is tests/ref/sklearn_baseline.py; both go
 * in bench/RESULTS.md ("Classic arm"). Not a test: it only prints.
 */
#include "arms/classic.h"
#include "base/base.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct split {
    size_t n;
    char **texts;
    char **labels;
} split;

static void split_free(split *s)
{
    for (size_t i = 0; i < s->n; i++) { free(s->texts[i]); free(s->labels[i]); }
    free(s->texts);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* JSONL rows {"input": str, "output": str|number}. Returns 0 when the file is absent. */
static int load_split(const char *path, split *s)
{
    memset(s, 0, sizeof *s);
    if (!tw_file_exists(path)) return 0;
    tw_line_reader r;
    tw_error err;
    if (tw_line_reader_open(&r, path, TW_MAX_LINE_DEFAULT, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    size_t cap = 0;
    const char *line;
    size_t len;
    tw_status st;
    while ((st = tw_line_reader_next(&r, &line, &len, &err)) == TW_OK) {
        if (len == 0) continue;
        json_error_t je;
        json_t *o = json_loadb(line, len, 0, &je);
        json_t *in = o ? json_object_get(o, "input") : NULL;
        json_t *out = o ? json_object_get(o, "output") : NULL;
        if (!json_is_string(in) || !out) {
            fprintf(stderr, "%s:%zu: expected {\"input\": string, \"output\": ...}\n", path, r.line_no);
            exit(2);
        }
        if (s->n == cap) {
            cap = cap ? cap * 2 : 1024;
            s->texts = realloc(s->texts, cap * sizeof *s->texts);
            s->labels = realloc(s->labels, cap * sizeof *s->labels);
        }
        s->texts[s->n] = strdup(json_string_value(in));
        if (json_is_string(out)) s->labels[s->n] = strdup(json_string_value(out));
        else s->labels[s->n] = json_dumps(out, JSON_ENCODE_ANY | JSON_COMPACT);
        s->n++;
        json_decref(o);
    }
    tw_line_reader_close(&r);
    if (st != TW_DONE) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return 1;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void die(const tw_error *e)
{
    fprintf(stderr, "error: %s\n", e->msg);
    exit(3);
}

static double test_accuracy(const tw_classic *m, const split *te, double *rate)
{
    const char **pred = malloc(te->n * sizeof *pred);
    tw_error err;
    /* warm-up, then time enough repetitions for ~0.5 s */
    if (tw_classic_predict_batch(m, (const char *const *)te->texts, te->n, pred, NULL, NULL, &err)) die(&err);
    int reps = 0;
    double t0 = tw_now(), el;
    do {
        if (tw_classic_predict_batch(m, (const char *const *)te->texts, te->n, pred, NULL, NULL, &err)) die(&err);
        reps++;
        el = tw_now() - t0;
    } while (el < 0.5);
    *rate = (double)reps * (double)te->n / el;
    size_t ok = 0;
    for (size_t i = 0; i < te->n; i++) ok += strcmp(pred[i], te->labels[i]) == 0;
    free(pred);
    return (double)ok / (double)te->n;
}

/* single-thread, one call per text (what an interactive caller sees) */
static double single_rate(const tw_classic *m, const split *te)
{
    tw_error err;
    const char *lab;
    int reps = 0;
    double t0 = tw_now(), el;
    do {
        for (size_t i = 0; i < te->n; i++)
            if (tw_classic_predict(m, te->texts[i], &lab, NULL, &err)) die(&err);
        reps++;
        el = tw_now() - t0;
    } while (el < 0.5);
    return (double)reps * (double)te->n / el;
}

typedef struct fold_key {
    const char *label;
    size_t pos, idx;       /* position in a seeded shuffle, example index */
} fold_key;

static int cmp_fold_key(const void *a, const void *b)
{
    const fold_key *x = a, *y = b;
    int c = strcmp(x->label, y->label);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* K-fold cross-validation on train (stratified: a seeded shuffle, then each label's
 * examples dealt round-robin to the folds) of the fixed settings in base at each C in
 * Cs, plus the dev accuracy of the model fitted on all of train. Test is not touched.
 * The folds are the bench's own (seed base->seed ^ 12345), not the library's. dump:
 * when non-NULL, the per-example correctness (CV on train, then dev) is written to
 * dump.<name>.C<C>, one 0/1 per line, for paired comparisons of two settings. */
static void cv_report(const split *tr, const split *dv, const tw_classic_params *base, int K, const double *Cs,
                      size_t nC, const char *dump, const char *name)
{
    size_t n = tr->n;
    size_t *order = malloc(n * sizeof *order);
    int *fold = malloc(n * sizeof *fold);
    fold_key *keys = malloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) order[i] = i;
    tw_rng rng;
    tw_rng_seed(&rng, base->seed ^ 12345);
    tw_rng_shuffle(&rng, order, n, sizeof *order);
    for (size_t i = 0; i < n; i++) keys[i] = (fold_key){tr->labels[order[i]], i, order[i]};
    qsort(keys, n, sizeof *keys, cmp_fold_key);
    for (size_t i = 0; i < n; i++) fold[keys[i].idx] = (int)(i % (size_t)K);
    free(keys);
    const char **ft = malloc(n * sizeof *ft), **fl = malloc(n * sizeof *fl), **ht = malloc(n * sizeof *ht);
    const char **pred = malloc((n > dv->n ? n : dv->n) * sizeof *pred);
    size_t *hidx = malloc(n * sizeof *hidx);
    unsigned char *ok = malloc(n + dv->n + 1);
    tw_error err;
    for (size_t g = 0; g < nC; g++) {
        tw_classic_params p = *base;
        p.C = Cs[g];
        double t0 = tw_now();
        size_t correct = 0;
        for (int k = 0; k < K; k++) {
            size_t nf = 0, nh = 0;
            for (size_t i = 0; i < n; i++) {
                if (fold[i] == k) { ht[nh] = tr->texts[i]; hidx[nh++] = i; }
                else { ft[nf] = tr->texts[i]; fl[nf++] = tr->labels[i]; }
            }
            tw_classic *m = NULL;
            if (tw_classic_train(&m, ft, fl, nf, NULL, NULL, 0, &p, &err)) die(&err);
            if (tw_classic_predict_batch(m, ht, nh, pred, NULL, NULL, &err)) die(&err);
            for (size_t i = 0; i < nh; i++) {
                ok[hidx[i]] = strcmp(pred[i], tr->labels[hidx[i]]) == 0;
                correct += ok[hidx[i]];
            }
            tw_classic_free(m);
        }
        double tcv = tw_now() - t0;
        double dacc = NAN;
        if (dv->n) {
            tw_classic *m = NULL;
            if (tw_classic_train(&m, (const char *const *)tr->texts, (const char *const *)tr->labels, n, NULL, NULL, 0,
                                 &p, &err))
                die(&err);
            if (tw_classic_predict_batch(m, (const char *const *)dv->texts, dv->n, pred, NULL, NULL, &err)) die(&err);
            size_t dc = 0;
            for (size_t i = 0; i < dv->n; i++) { ok[n + i] = strcmp(pred[i], dv->labels[i]) == 0; dc += ok[n + i]; }
            dacc = (double)dc / (double)dv->n;
            tw_classic_free(m);
        }
        printf("  cv%d C=%g: cv accuracy %.4f (%zu/%zu)  dev %.4f  (%.1f s)\n", K, Cs[g], (double)correct / (double)n,
               correct, n, dacc, tcv);
        fflush(stdout);
        if (dump) {
            char path[1024];
            snprintf(path, sizeof path, "%s.%s.C%g", dump, name, Cs[g]);
            FILE *f = fopen(path, "w");
            if (f) {
                for (size_t i = 0; i < n + dv->n; i++) fprintf(f, "%d\n", ok[i]);
                fclose(f);
            }
        }
    }
    free(order); free(fold); free(ft); free(fl); free(ht); free(pred); free(hidx); free(ok);
}

int main(int argc, char **argv)
{
    const char *data = "../shared/data";
    char datasets[256] = "banking77,sst2";
    tw_classic_params base = tw_classic_default_params();
    base.threads = 2;
    double fixed_C = 1.0;
    int search = 1, cv = 0;
    double Cs[TW_CLASSIC_MAX_GRID] = {1.0};
    size_t nCs = 1;
    const char *dump = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-search")) { search = 0; continue; }
        if (!v) { fprintf(stderr, "usage: see the comment at the top of bench/bench_classic.c\n"); return 2; }
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--datasets")) snprintf(datasets, sizeof datasets, "%s", v);
        else if (!strcmp(a, "--C")) fixed_C = atof(v);
        else if (!strcmp(a, "--threads")) base.threads = atoi(v);
        else if (!strcmp(a, "--tol")) base.tol = atof(v);
        else if (!strcmp(a, "--bits")) base.hash_bits = atoi(v);
        else if (!strcmp(a, "--min-len")) base.word_min_len = atoi(v);
        else if (!strcmp(a, "--word-max")) base.word_ngram_max = atoi(v);
        else if (!strcmp(a, "--char-min")) base.char_ngram_min = atoi(v);
        else if (!strcmp(a, "--char-max")) base.char_ngram_max = atoi(v);
        else if (!strcmp(a, "--sublinear")) base.sublinear_tf = atoi(v);
        else if (!strcmp(a, "--idf")) base.use_idf = atoi(v);
        else if (!strcmp(a, "--seed")) base.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--nb")) base.nb = atoi(v);
        else if (!strcmp(a, "--folds")) base.folds = atoi(v);
        else if (!strcmp(a, "--cv")) cv = atoi(v);
        else if (!strcmp(a, "--dump")) dump = v;
        else if (!strcmp(a, "--Cs")) {
            nCs = 0;
            for (const char *q = v; *q && nCs < TW_CLASSIC_MAX_GRID;) {
                char *e;
                double x = strtod(q, &e);
                if (e == q || !(x > 0)) { fprintf(stderr, "--Cs expects positive numbers like 0.3,1,3\n"); return 2; }
                Cs[nCs++] = x;
                q = *e == ',' ? e + 1 : e;
            }
        }
        else if (!strcmp(a, "--loss"))
            base.loss = !strcmp(v, "logreg") ? TW_CLASSIC_LOGREG : !strcmp(v, "svm-l1") ? TW_CLASSIC_SVM_L1 : TW_CLASSIC_SVM;
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }

    for (char *tok = strtok(datasets, ","); tok; tok = strtok(NULL, ",")) {
        char path[1024];
        split tr, dv, te;
        snprintf(path, sizeof path, "%s/%s/train.jsonl", data, tok);
        if (!load_split(path, &tr)) { fprintf(stderr, "missing %s\n", path); return 2; }
        snprintf(path, sizeof path, "%s/%s/dev.jsonl", data, tok);
        load_split(path, &dv);
        snprintf(path, sizeof path, "%s/%s/test.jsonl", data, tok);
        if (!load_split(path, &te)) { fprintf(stderr, "missing %s\n", path); return 2; }
        printf("== %s (train %zu, dev %zu, test %zu; threads %d, hash 2^%d, tol %g (0 = default), loss %d)\n", tok, tr.n, dv.n,
               te.n, base.threads, base.hash_bits, base.tol, base.loss);

        if (cv > 1) {
            cv_report(&tr, &dv, &base, cv, Cs, nCs, dump, tok);
            split_free(&tr);
            split_free(&dv);
            split_free(&te);
            continue;
        }
        tw_error err;
        tw_classic *m = NULL;
        tw_classic_params p = base;
        p.C = fixed_C;
        if (tw_classic_train(&m, (const char *const *)tr.texts, (const char *const *)tr.labels, tr.n, NULL, NULL, 0,
                             &p, &err))
            die(&err);
        const tw_classic_info *in = tw_classic_get_info(m);
        double rate, acc = test_accuracy(m, &te, &rate);
        double r1 = single_rate(m, &te);
        printf("  fixed C=%g: featurize %.3f s + train %.3f s = %.3f s (call %.3f s); %zu features, %zu nnz, "
               "passes max %d\n",
               fixed_C, in->t_featurize, in->t_train, in->t_featurize + in->t_train, in->t_total, in->n_features,
               in->nnz, in->iterations_max);
        printf("  fixed C=%g: test accuracy %.4f; predict %.0f ex/s (batch, %d threads), %.0f ex/s (single calls, 1 thread)\n",
               fixed_C, acc, rate, p.threads, r1);
        char mpath[] = "/tmp/bench-classic-XXXXXX";
        int fd = mkstemp(mpath);
        if (fd >= 0) {
            close(fd);
            double ts = tw_now();
            if (tw_classic_save(m, mpath, &err)) die(&err);
            double tsave = tw_now() - ts;
            tw_classic *m2 = NULL;
            ts = tw_now();
            if (tw_classic_load(&m2, mpath, &err)) die(&err);
            double tload = tw_now() - ts;
            struct stat sb;
            stat(mpath, &sb);
            printf("  model file %.1f MB, save %.3f s, load %.3f s\n", (double)sb.st_size / 1e6, tsave, tload);
            tw_classic_free(m2);
            unlink(mpath);
        }
        tw_classic_free(m);

        if (search) {
            p = base;
            p.C = 0;
            if (tw_classic_train(&m, (const char *const *)tr.texts, (const char *const *)tr.labels, tr.n,
                                 (const char *const *)dv.texts, (const char *const *)dv.labels, dv.n, &p, &err))
                die(&err);
            in = tw_classic_get_info(m);
            acc = test_accuracy(m, &te, &rate);
            static const char *sel[] = {"fixed", "dev", "holdout", "cv", "cv+dev"};
            size_t n_cv = in->n_sel - (in->selection == 1 || in->selection == 4 ? dv.n : 0);
            printf("  selection on %s (folds %d, %zu examples): accuracy [cv correct | dev correct] (solver s)\n",
                   sel[in->selection], in->folds, in->n_sel);
            for (size_t g = 0; g < in->n_cand; g++)
                printf("    C=%-5g %s %.4f [%.0f/%zu | %.0f/%zu] (%.2fs)\n", in->cand_C[g], in->cand_nb[g] ? "NB   " : "plain",
                       in->cand_accuracy[g], isnan(in->cand_cv_accuracy[g]) ? 0 : in->cand_cv_accuracy[g] * (double)n_cv,
                       n_cv, isnan(in->cand_dev_accuracy[g]) ? 0 : in->cand_dev_accuracy[g] * (double)dv.n, dv.n,
                       in->cand_seconds[g]);
            printf("  selection: chosen C=%g%s, whole train call %.3f s (search %.3f s, final fit %.3f s), dev %.4f, "
                   "test accuracy %.4f\n",
                   in->C, in->nb ? " NB" : "", in->t_total, in->t_search, in->t_train, in->dev_accuracy, acc);
            tw_classic_free(m);
        }
        printf("  peak RSS %.0f MB\n", peak_rss_mb());
        fflush(stdout);
        split_free(&tr);
        split_free(&dv);
        split_free(&te);
    }
    return 0;
}
