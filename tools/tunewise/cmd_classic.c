/* cmd_classic.c — `tunewise classic train|eval`: the classic baseline arm (hashed word +
 * char n-gram TF-IDF and a linear model, C chosen on dev). train writes a model file;
 * eval predicts a split in the shared predictions format and scores it with CIs. */
#include "cli.h"
#include "arms/classic.h"
#include "score/score.h"
#include "task/predictions.h"
#include "task/split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt TRAIN_OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file (classify)", NULL},
    {"out", 'o', CLI_STR, "FILE", "model file to write", NULL},
    {"C", 'C', CLI_NUM, "C", "regularization strength (default: chosen by cross-validation from 0.1..10)", NULL},
    {"folds", 0, CLI_INT, "K", "K-fold cross-validation on train (pooled with dev) to choose C; 0: dev or a holdout only", "5"},
    {"nb", 0, CLI_STR, "MODE", "naive-Bayes feature scaling: auto (tried for two-label tasks) | on | off", "auto"},
    {"loss", 0, CLI_STR, "LOSS", "svm (squared hinge) | svm-l1 | logreg", "svm"},
    {"hash-bits", 0, CLI_INT, "K", "2^K feature buckets (8..24)", "20"},
    {"word-ngrams", 0, CLI_INT, "N", "word 1..N-grams (0: none)", "2"},
    {"char-ngrams", 0, CLI_STR, "MIN-MAX", "char_wb n-gram range (0: none)", "2-5"},
    {"no-idf", 0, CLI_FLAG, NULL, "log-count weighting instead of TF-IDF", NULL},
    {"threads", 'j', CLI_INT, "N", "threads (0: all cores)", "0"},
    {"seed", 0, CLI_INT, "N", "seed (solver order, holdout)", "1"},
    {"json", 0, CLI_FLAG, NULL, "print training info as JSON", NULL},
    {0},
};

static int need_classify(const cli_args *a, const tw_task *t)
{
    if (t->type != TW_TASK_CLASSIFY)
        return cli_usage_error(a->cmd, "the classic arm needs a classify task; %s is %s", t->path, tw_task_type_str(t->type));
    return -1;
}

static int load(const cli_args *a, tw_task *t, tw_dataset sp[TW_SPLIT_COUNT], tw_error *err)
{
    const char *task = cli_str(a, "task");
    if (!task) return cli_usage_error(a->cmd, "missing --task TASK");
    if (tw_task_load(t, task, err)) return cli_fail(err);
    int rc = need_classify(a, t);
    if (rc >= 0) { tw_task_free(t); return rc; }
    if (tw_split_task(t, sp, NULL, err)) { tw_task_free(t); return cli_fail(err); }
    return -1;
}

static void columns(const tw_dataset *ds, const char ***texts, const char ***labels)
{
    *texts = malloc((ds->n ? ds->n : 1) * sizeof **texts);
    *labels = malloc((ds->n ? ds->n : 1) * sizeof **labels);
    for (size_t i = 0; *texts && *labels && i < ds->n; i++) {
        (*texts)[i] = ds->rows[i].input;
        (*labels)[i] = ds->rows[i].output;
    }
}

static int run_train(cli_args *a)
{
    const char *out = cli_str(a, "out");
    if (!out) return cli_usage_error(a->cmd, "missing --out FILE");
    tw_classic_params p = tw_classic_default_params();
    const char *loss = cli_str(a, "loss");
    if (strcmp(loss, "svm") == 0) p.loss = TW_CLASSIC_SVM;
    else if (strcmp(loss, "svm-l1") == 0) p.loss = TW_CLASSIC_SVM_L1;
    else if (strcmp(loss, "logreg") == 0) p.loss = TW_CLASSIC_LOGREG;
    else return cli_usage_error(a->cmd, "unknown --loss '%s' (expected svm, svm-l1 or logreg)", loss);
    if (cli_given(a, "C")) {
        p.C = cli_num(a, "C");
        if (!(p.C > 0)) return cli_usage_error(a->cmd, "--C must be > 0");
    }
    p.hash_bits = (int)cli_int(a, "hash-bits");
    if (p.hash_bits < 8 || p.hash_bits > 24) return cli_usage_error(a->cmd, "--hash-bits must be in 8..24");
    p.word_ngram_max = (int)cli_int(a, "word-ngrams");
    const char *cr = cli_str(a, "char-ngrams");
    int lo = 0, hi = 0;
    if (strcmp(cr, "0") == 0) p.char_ngram_max = 0;
    else if (sscanf(cr, "%d-%d", &lo, &hi) == 2 && lo >= 1 && hi >= lo && hi <= 16) { p.char_ngram_min = lo; p.char_ngram_max = hi; }
    else return cli_usage_error(a->cmd, "--char-ngrams expects MIN-MAX like 2-5 (or 0), got '%s'", cr);
    if (cli_flag(a, "no-idf")) p.use_idf = 0;
    p.threads = (int)cli_int(a, "threads");
    p.seed = (uint64_t)cli_int(a, "seed");
    p.folds = (int)cli_int(a, "folds");
    if (p.folds < 0 || p.folds == 1 || p.folds > 20) return cli_usage_error(a->cmd, "--folds must be 0 or 2..20");
    const char *nb = cli_str(a, "nb");
    if (strcmp(nb, "auto") == 0) p.nb = -1;
    else if (strcmp(nb, "on") == 0) p.nb = 1;
    else if (strcmp(nb, "off") == 0) p.nb = 0;
    else return cli_usage_error(a->cmd, "unknown --nb '%s' (expected auto, on or off)", nb);

    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    tw_dataset sp[TW_SPLIT_COUNT];
    int rc = load(a, &t, sp, &err);
    if (rc >= 0) return rc;
    const char **tx, **lb, **dtx, **dlb;
    columns(&sp[TW_SPLIT_TRAIN], &tx, &lb);
    columns(&sp[TW_SPLIT_DEV], &dtx, &dlb);
    tw_classic *m = NULL;
    tw_status st = (tx && lb && dtx && dlb) ? TW_OK : tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
    if (!st) {
        if (!a->quiet)
            fprintf(stderr, "tunewise: training classic arm on %zu train rows (%s; %zu dev rows)\n",
                    sp[TW_SPLIT_TRAIN].n, p.C > 0 ? "C given" : p.folds > 0 ? "C chosen by cross-validation pooled with dev"
                                                               : "C chosen on dev or a holdout", sp[TW_SPLIT_DEV].n);
        st = tw_classic_train(&m, tx, lb, sp[TW_SPLIT_TRAIN].n, dtx, dlb, sp[TW_SPLIT_DEV].n, &p, &err);
    }
    if (!st) st = tw_classic_save(m, out, &err);
    if (!st) {
        json_t *info = tw_classic_info_json(m);
        if (cli_flag(a, "json")) {
            cli_print_json(info);
        } else {
            const tw_classic_info *in = tw_classic_get_info(m);
            tw_classic_params mp = tw_classic_get_params(m);
            printf("classic arm: %zu labels, %s, C = %g", tw_classic_n_labels(m),
                   mp.loss == TW_CLASSIC_LOGREG ? "logistic regression" : mp.loss == TW_CLASSIC_SVM_L1 ? "linear SVM (hinge)" : "linear SVM (squared hinge)", mp.C);
            if (!isnan(in->sel_accuracy)) printf(", selection accuracy %.4f", in->sel_accuracy);
            if (in->nb) printf(", NB scaling");
            if (!isnan(in->dev_accuracy)) printf(" (dev accuracy %.4f)", in->dev_accuracy);
            printf("\n  features 2^%d hashed buckets, word 1-%d + char_wb %d-%d grams, %s\n", mp.hash_bits, mp.word_ngram_max,
                   mp.char_ngram_min, mp.char_ngram_max, mp.use_idf ? "TF-IDF" : "log-count");
            printf("  time: featurize %.2fs, train %.2fs, C search %.2fs, total %.2fs (%d threads)\n", in->t_featurize,
                   in->t_train, in->t_search, in->t_total, in->threads);
            printf("wrote %s\n", out);
        }
        json_decref(info);
    }
    tw_classic_free(m);
    free(tx); free(lb); free(dtx); free(dlb);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_classic_train = {
    .name = "classic train",
    .summary = "train the classic arm (n-gram TF-IDF + linear model) on a task's train split",
    .usage = "--task TASK -o MODEL [options]",
    .details = "The smallest model that might already do the job. Unless --C is given, C (and NB\n"
               "scaling for two-label tasks) is chosen by 5-fold cross-validation on train, pooled\n"
               "with the dev split. Details: docs/classic.md.",
    .opts = TRAIN_OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_train,
};

static const cli_opt EVAL_OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file (classify)", NULL},
    {"model", 'm', CLI_STR, "MODEL", "model file from 'classic train'", NULL},
    {"split", 's', CLI_STR, "SPLIT", "train|dev|test", "test"},
    {"out", 'o', CLI_STR, "FILE", "write predictions (JSONL) here", NULL},
    {"bootstrap", 'b', CLI_INT, "N", "bootstrap replicates for CIs (0: none)", "1000"},
    {"seed", 0, CLI_INT, "N", "bootstrap seed", "1"},
    {"json", 0, CLI_FLAG, NULL, "print the score report as JSON", NULL},
    {0},
};

static int run_eval(cli_args *a)
{
    const char *mpath = cli_str(a, "model");
    if (!mpath) return cli_usage_error(a->cmd, "missing --model MODEL");
    int split = -1;
    for (int s = 0; s < TW_SPLIT_COUNT; s++)
        if (strcmp(cli_str(a, "split"), tw_split_name((tw_split_id)s)) == 0) split = s;
    if (split < 0) return cli_usage_error(a->cmd, "unknown --split '%s' (expected train, dev or test)", cli_str(a, "split"));
    if (cli_int(a, "bootstrap") < 0) return cli_usage_error(a->cmd, "--bootstrap must be >= 0");
    tw_error err;
    tw_error_clear(&err);
    tw_classic *m = NULL;
    if (tw_classic_load(&m, mpath, &err)) return cli_fail(&err);
    tw_task t;
    tw_dataset sp[TW_SPLIT_COUNT];
    int rc = load(a, &t, sp, &err);
    if (rc >= 0) { tw_classic_free(m); return rc; }
    const tw_dataset *ds = &sp[split];
    tw_score_item *items = tw_calloc(ds->n ? ds->n : 1, sizeof *items, &err);
    tw_pred_writer *w = NULL;
    json_t *report = NULL;
    tw_status st = items ? TW_OK : TW_ERR_NOMEM;
    if (!st && ds->n == 0) st = tw_error_set(&err, TW_ERR_INVALID, "%s: the %s split is empty", t.path, tw_split_name((tw_split_id)split));
    if (!st && cli_given(a, "out")) st = tw_pred_writer_open(&w, cli_str(a, "out"), &err);
    /* Predict one example at a time, as a served model would, so latency is per call. */
    for (size_t i = 0; !st && i < ds->n; i++) {
        const tw_example *ex = &ds->rows[i];
        const char *label;
        double t0 = tw_now();
        st = tw_classic_predict(m, ex->input, &label, NULL, &err);
        double ms = (tw_now() - t0) * 1e3;
        if (st) break;
        items[i] = (tw_score_item){.id = ex->id, .reference = ex->output, .prediction = label, .slice = ex->slice,
                                   .latency_ms = ms, .tokens_in = NAN, .tokens_out = NAN};
        if (w) {
            tw_pred p;
            tw_pred_init(&p);
            p.id = ex->id;
            p.input = ex->input;
            p.reference = ex->output;
            p.prediction = (char *)label;
            p.latency_ms = ms;
            p.cost = 0;
            st = tw_pred_writer_write(w, &p, &err);
        }
    }
    if (w) {
        if (st) tw_pred_writer_abort(w);
        else st = tw_pred_writer_close(w, &err);
    }
    if (!st) {
        tw_score_params sp_params = tw_score_default_params();
        sp_params.task_type = (int)t.type;
        const char **labels = malloc(tw_classic_n_labels(m) * sizeof *labels);
        if (!labels) st = tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
        for (size_t i = 0; labels && i < tw_classic_n_labels(m); i++) labels[i] = tw_classic_label(m, i);
        if (t.n_labels) {
            sp_params.labels = (const char *const *)t.labels;
            sp_params.n_labels = t.n_labels;
        } else {
            sp_params.labels = labels;
            sp_params.n_labels = tw_classic_n_labels(m);
        }
        sp_params.primary = t.metric;
        sp_params.bootstrap = (int)cli_int(a, "bootstrap");
        sp_params.seed = (uint64_t)cli_int(a, "seed");
        if (!st) st = tw_score(items, ds->n, &sp_params, &report, &err);
        free(labels);
    }
    if (!st) {
        if (cli_flag(a, "json")) {
            cli_print_json(report);
        } else {
            printf("classic arm on %s split of %s (%zu rows)\n", tw_split_name((tw_split_id)split), t.name, ds->n);
            tw_buf out = {0};
            if (tw_score_format_table(report, &out) == TW_OK && out.data) fputs(out.data, stdout);
            tw_buf_free(&out);
            if (cli_given(a, "out")) printf("wrote %s\n", cli_str(a, "out"));
        }
    }
    json_decref(report);
    free(items);
    tw_classic_free(m);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_classic_eval = {
    .name = "classic eval",
    .summary = "predict a split with a classic model, write predictions, score with CIs",
    .usage = "--task TASK -m MODEL [-o PRED.jsonl] [options]",
    .opts = EVAL_OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_eval,
};
