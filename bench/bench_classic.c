/* bench_classic.c — figures of the classic arm on Banking77 and SST-2: featurize and
 * train time for one C, the full C search, test accuracy, prediction throughput,
 * model size and peak RSS. Run from the repository root:
 *
 *   build/bench/bench_classic [--data ../shared/data] [--datasets banking77,sst2]
 *                             [--C 1] [--threads 2] [--tol 0.1] [--bits 20]
 *                             [--loss svm|svm-l1|logreg] [--min-len 2] [--no-search]
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

int main(int argc, char **argv)
{
    const char *data = "../shared/data";
    char datasets[256] = "banking77,sst2";
    tw_classic_params base = tw_classic_default_params();
    base.threads = 2;
    double fixed_C = 1.0;
    int search = 1;
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
            printf("  C search on %s (%zu examples):", in->selection == 1 ? "dev" : "holdout", in->n_sel);
            for (size_t g = 0; g < in->n_C; g++) printf(" C=%g %.4f (%.2fs)", in->C_grid[g], in->sel_accuracy[g], in->sel_seconds[g]);
            printf("\n  C search: chosen C=%g, whole train call %.3f s (search %.3f s), test accuracy %.4f\n", in->C,
                   in->t_total, in->t_search, acc);
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
