/* test_runner.c — the evaluation runner: run directory contents, metrics.json equal to
 * tw_score on the written predictions, resume after SIGKILL at several points (before
 * any row, mid-run with a row in flight, after the last row, with a torn last line) giving
 * byte-identical files to an uninterrupted run, configuration / data mismatch errors and
 * --force, re-running a finished run, batch prediction, the model-call cache through an
 * arm, and the classic arm on a slice of SST-2 (../shared/data/sst2). */
#include "testutil.h"
#include "eval/runner.h"
#include "task/split.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/file.h>

/* ---- a fake arm ------------------------------------------------------------ */
/* Deterministic: the label depends on the input only; latency and tokens are made up
 * from the input so that whole files compare byte for byte. */
typedef struct fake {
    int variant;            /* part of the config: changes the config hash */
    long calls;             /* predict calls in this process */
    long batch_calls;
    long kill_at;           /* raise SIGKILL when asked for this call (0-based); -1 never */
    long fail_at;           /* return an error at this call; -1 never */
    long computed;          /* cache arm: calls that were not served from the cache */
} fake;

static const char *fake_label(const char *input)
{
    size_t h = 0;
    for (const char *s = input; *s; s++) h = h * 31 + (unsigned char)*s;
    return (h % 3 == 0) ? "neg" : "pos";
}

static tw_status fake_predict(tw_eval_arm *arm, const tw_example *row, tw_pred *out, const tw_eval_ctx *ctx,
                              tw_error *err)
{
    fake *f = arm->state;
    long call = f->calls++;
    if (call == f->kill_at) raise(SIGKILL);   /* this row is in flight: must be lost */
    if (call == f->fail_at) return tw_error_set(err, TW_ERR_RUNTIME, "backend went away");
    const char *label = fake_label(row->input);
    size_t len = strlen(row->input);
    /* every 7th length gives a malformed answer that parses to nothing */
    if (len % 7 == 0) {
        /* a generation cut inside a multi-byte character: invalid UTF-8 */
        out->prediction = strdup("I think it is... hmm \xe2\x80");
        out->valid = false;
        out->parsed = strdup("");
    } else {
        out->prediction = strdup(label);
    }
    out->latency_ms = 1.0 + (double)len / 3.0;   /* not a round number: checks precision */
    out->tokens_in = (double)len;
    out->tokens_out = 1;
    out->cost = 0.000125 * (double)len;
    return TW_OK;
}

static tw_status fake_predict_batch(tw_eval_arm *arm, const tw_example *rows, size_t n, tw_pred *out,
                                    const tw_eval_ctx *ctx, tw_error *err)
{
    fake *f = arm->state;
    f->batch_calls++;
    for (size_t i = 0; i < n; i++) {
        tw_status st = fake_predict(arm, &rows[i], &out[i], ctx, err);
        if (st) return st;
    }
    return TW_OK;
}

static json_t *fake_config(const tw_eval_arm *arm)
{
    const fake *f = arm->state;
    return json_pack("{s:i, s:s}", "variant", f->variant, "strategy", "made-up");
}

static const tw_eval_arm_ops FAKE_OPS = {.name = "fake", .predict = fake_predict, .config = fake_config};
static const tw_eval_arm_ops FAKE_BATCH_OPS = {.name = "fake", .predict = fake_predict,
                                               .predict_batch = fake_predict_batch, .config = fake_config};

static tw_eval_arm make_fake(fake *f, const tw_eval_arm_ops *ops)
{
    tw_eval_arm a;
    memset(&a, 0, sizeof a);
    a.ops = ops;
    a.state = f;
    snprintf(a.model_hash, sizeof a.model_hash, "%s", "0123456789abcdef");
    return a;
}

static fake fresh_fake(int variant)
{
    fake f = {.variant = variant, .kill_at = -1, .fail_at = -1};
    return f;
}

/* ---- rows ------------------------------------------------------------------ */
#define N_ROWS 40

typedef struct rows { tw_example ex[N_ROWS]; char buf[N_ROWS][3][64]; } rows;

static void make_rows(rows *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < N_ROWS; i++) {
        snprintf(r->buf[i][0], 64, "row-%02d", i);
        snprintf(r->buf[i][1], 64, "example text %d%s", i * 37 % 101, i % 4 ? " with more words" : "");
        snprintf(r->buf[i][2], 64, "%s", i % 3 ? "pos" : "neg");
        r->ex[i].id = r->buf[i][0];
        r->ex[i].input = r->buf[i][1];
        r->ex[i].output = r->buf[i][2];
        r->ex[i].slice = i % 2 ? "odd" : NULL;
    }
}

static const char *const LABELS[] = {"neg", "pos"};

static tw_eval_params params(void)
{
    tw_eval_params p = tw_eval_default_params();
    p.score.task_type = 0;
    p.score.labels = LABELS;
    p.score.n_labels = 2;
    p.score.bootstrap = 200;
    p.score.seed = 7;
    p.sync_every = 4;
    return p;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *slurp(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    char *data = NULL;
    size_t len;
    tw_error err;
    tw_status st = tw_file_read(p, &data, &len, &err);
    cr_assert_eq(st, TW_OK, "%s", err.msg);
    free(p);
    return data;
}

static bool exists(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    bool e = tw_file_exists(p);
    free(p);
    return e;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void run_ok(tw_eval_arm *arm, const rows *r, const char *dir, const tw_eval_params *p, tw_eval_result *res)
{
    tw_error err;
    tw_error_clear(&err);
    tw_status st = tw_eval_run(arm, r->ex, N_ROWS, dir, p, res, &err);
    cr_assert_eq(st, TW_OK, "tw_eval_run: %s", err.msg);
}

/* An uninterrupted reference run into a new directory. */
static char *reference_run(const rows *r, int variant)
{
    char *dir = tw_test_tmpdir();
    fake f = fresh_fake(variant);
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    tw_eval_result res;
    run_ok(&arm, r, dir, &p, &res);
    json_decref(res.metrics);
    return dir;
}

static void assert_same_files(const char *a, const char *b)
{
    const char *names[] = {"predictions.jsonl", "metrics.json"};
    for (int i = 0; i < 2; i++) {
        char *x = slurp(a, names[i]), *y = slurp(b, names[i]);
        cr_assert_str_eq(x, y, "%s differs between %s and %s", names[i], a, b);
        free(x);
        free(y);
    }
}

/* ---- tests ----------------------------------------------------------------- */
Test(runner, run_directory_contents)
{
    rows r;
    make_rows(&r);
    char *dir = tw_test_tmpdir();
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    json_t *ctx = json_pack("{s:s, s:s}", "task", "t.yaml", "split", "test");
    p.context = ctx;
    tw_eval_result res;
    run_ok(&arm, &r, dir, &p, &res);
    cr_assert_eq(res.n_rows, N_ROWS);
    cr_assert_eq(res.n_resumed, 0);
    cr_assert_eq(res.n_predicted, N_ROWS);
    cr_assert_eq(f.calls, N_ROWS);
    size_t want_invalid = 0;
    for (int i = 0; i < N_ROWS; i++) want_invalid += strlen(r.ex[i].input) % 7 == 0;
    cr_assert_gt(want_invalid, 0, "the fixture should have some invalid outputs");
    cr_assert_eq(res.n_invalid, want_invalid);
    cr_assert_not(exists(dir, "predictions.partial.jsonl"), "the journal is removed after a finished run");

    /* predictions.jsonl: the shared format, in row order, every field */
    char *pp = path_in(dir, "predictions.jsonl");
    tw_pred_set ps;
    tw_error err;
    cr_assert_eq(tw_pred_load(&ps, pp, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ps.n, N_ROWS);
    for (int i = 0; i < N_ROWS; i++) {
        const tw_pred *q = &ps.rows[i];
        size_t len = strlen(r.ex[i].input);
        cr_assert_str_eq(q->id, r.ex[i].id);
        cr_assert_str_eq(q->input, r.ex[i].input);
        cr_assert_str_eq(q->reference, r.ex[i].output);
        cr_assert_eq(q->valid, len % 7 != 0);
        if (q->valid) cr_assert_str_eq(q->prediction, fake_label(r.ex[i].input));
        else {
            cr_assert_str_eq(q->parsed, "");
            cr_assert_str_eq(q->prediction, "I think it is... hmm \xef\xbf\xbd\xef\xbf\xbd",
                             "invalid UTF-8 becomes U+FFFD per byte");
        }
        cr_assert_float_eq(q->latency_ms, 1.0 + (double)len / 3.0, 1e-4);
        cr_assert_eq(q->tokens_in, (double)len);
        cr_assert_float_eq(q->cost, 0.000125 * (double)len, 1e-9);
    }

    /* metrics.json == tw_score over the predictions file, built here independently */
    tw_score_item items[N_ROWS];
    for (int i = 0; i < N_ROWS; i++) {
        const tw_pred *q = &ps.rows[i];
        items[i] = (tw_score_item){.id = q->id, .reference = r.ex[i].output, .prediction = q->parsed ? q->parsed : q->prediction,
                                   .slice = r.ex[i].slice, .latency_ms = q->latency_ms, .tokens_in = q->tokens_in,
                                   .tokens_out = q->tokens_out};
    }
    json_t *want = NULL;
    cr_assert_eq(tw_score(items, N_ROWS, &p.score, &want, &err), TW_OK, "%s", err.msg);
    char *mp = path_in(dir, "metrics.json");
    json_error_t je;
    json_t *got = json_load_file(mp, 0, &je);
    cr_assert_not_null(got, "%s", je.text);
    cr_assert(json_equal(got, want), "metrics.json differs from tw_score on predictions.jsonl");
    cr_assert(json_equal(res.metrics, want));
    cr_assert_not_null(json_object_get(json_object_get(got, "metrics"), "accuracy"));
    cr_assert(json_is_array(json_object_get(json_object_get(json_object_get(got, "metrics"), "accuracy"), "ci")),
              "metrics carry bootstrap CIs");

    /* run.json */
    char *rp = path_in(dir, "run.json");
    json_t *run = json_load_file(rp, 0, &je);
    cr_assert_not_null(run, "%s", je.text);
    char ch[65], dh[65];
    cr_assert_eq(tw_eval_arm_config_hash(&arm, ch, &err), TW_OK);
    cr_assert_eq(tw_eval_data_hash(r.ex, N_ROWS, dh, &err), TW_OK);
    json_t *ja = json_object_get(run, "arm");
    cr_assert_str_eq(json_string_value(json_object_get(ja, "name")), "fake");
    cr_assert_str_eq(json_string_value(json_object_get(ja, "config_hash")), ch);
    cr_assert_str_eq(json_string_value(json_object_get(ja, "model_hash")), "0123456789abcdef");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ja, "config"), "variant")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(run, "data"), "hash")), dh);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(run, "data"), "rows")), N_ROWS);
    cr_assert_eq(json_integer_value(json_object_get(run, "seed")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(run, "score"), "seed")), 7);
    const char *git = json_string_value(json_object_get(run, "git_commit"));
    cr_assert(git && git[0], "git commit recorded");
    json_t *counts = json_object_get(run, "counts");
    cr_assert_eq(json_integer_value(json_object_get(counts, "predicted")), N_ROWS);
    cr_assert_eq(json_integer_value(json_object_get(counts, "invalid")), (json_int_t)want_invalid);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(run, "context"), "split")), "test");
    char sha[65];
    cr_assert_eq(tw_sha256_file(pp, sha, &err), TW_OK);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(run, "files"), "predictions"),
                                                       "sha256")), sha);
    cr_assert(json_real_value(json_object_get(json_object_get(run, "timings"), "seconds")) >= 0);

    /* tw_eval_score_file gives the same report */
    json_t *again = NULL;
    cr_assert_eq(tw_eval_score_file(pp, r.ex, N_ROWS, &p.score, &again, &err), TW_OK, "%s", err.msg);
    cr_assert(json_equal(again, want));

    json_decref(again); json_decref(run); json_decref(got); json_decref(want); json_decref(res.metrics);
    json_decref(ctx);
    tw_pred_set_free(&ps);
    free(rp); free(mp); free(pp); free(dir);
}

/* Child: run with the arm killing the process at call `kill_at` (or, with after_row,
 * right after row `kill_at` is in the journal). Never returns. */
static bool kill_hook(void *user, size_t done)
{
    if ((long)done == *(long *)user) raise(SIGKILL);
    return true;
}

static void killed_run(const rows *r, const char *dir, int variant, long kill_at, bool after_row, size_t batch)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        fake f = fresh_fake(variant);
        tw_eval_arm arm = make_fake(&f, batch > 1 ? &FAKE_BATCH_OPS : &FAKE_OPS);
        tw_eval_params p = params();
        p.batch_size = batch;
        if (after_row) {
            p.on_row = kill_hook;
            p.on_row_user = &kill_at;
        } else {
            f.kill_at = kill_at;
        }
        tw_error err;
        tw_eval_run(&arm, r->ex, N_ROWS, dir, &p, NULL, &err);
        _exit(0);   /* not reached when the kill happens */
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child should die of SIGKILL (status %d)", status);
}

static void resume_and_compare(const rows *r, const char *dir, const char *ref, size_t want_resumed, size_t batch)
{
    cr_assert(exists(dir, "predictions.partial.jsonl"), "a killed run leaves its journal");
    cr_assert_not(exists(dir, "predictions.jsonl"));
    char *j = slurp(dir, "predictions.partial.jsonl");
    cr_assert_eq(count_lines(j), 1 + want_resumed, "journal: header + %zu rows, got %zu lines", want_resumed,
                 count_lines(j));
    free(j);
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, batch > 1 ? &FAKE_BATCH_OPS : &FAKE_OPS);
    tw_eval_params p = params();
    p.batch_size = batch;
    tw_eval_result res;
    run_ok(&arm, r, dir, &p, &res);
    cr_assert_eq(res.n_resumed, want_resumed);
    cr_assert_eq(res.n_predicted, N_ROWS - want_resumed);
    cr_assert_eq(f.calls, (long)(N_ROWS - want_resumed), "rows in the journal are not predicted again");
    assert_same_files(ref, dir);
    cr_assert_not(exists(dir, "predictions.partial.jsonl"));
    json_decref(res.metrics);
}

Test(runner, resume_after_sigkill_at_several_points, .timeout = 60)
{
    rows r;
    make_rows(&r);
    char *ref = reference_run(&r, 1);
    /* kill while row k is in flight: k rows survive */
    const long in_flight[] = {0, 1, 13, N_ROWS - 1};
    for (size_t i = 0; i < sizeof in_flight / sizeof in_flight[0]; i++) {
        char *dir = tw_test_tmpdir();
        killed_run(&r, dir, 1, in_flight[i], false, 1);
        resume_and_compare(&r, dir, ref, (size_t)in_flight[i], 1);
        free(dir);
    }
    /* kill right after row k reached the journal (incl. the last one, before the final files) */
    const long after[] = {5, N_ROWS};
    for (size_t i = 0; i < 2; i++) {
        char *dir = tw_test_tmpdir();
        killed_run(&r, dir, 1, after[i], true, 1);
        resume_and_compare(&r, dir, ref, (size_t)after[i], 1);
        free(dir);
    }
    free(ref);
}

Test(runner, resume_twice_then_batch, .timeout = 60)
{
    rows r;
    make_rows(&r);
    char *ref = reference_run(&r, 1);
    char *dir = tw_test_tmpdir();
    killed_run(&r, dir, 1, 9, false, 1);
    killed_run(&r, dir, 1, 11, false, 1);   /* the second run resumes from 9, dies with 9 + 11 rows */
    /* a batched run is killed mid-batch: the finished rows of earlier batches survive */
    killed_run(&r, dir, 1, 6, false, 4);     /* 20 + 4 rows done, dies in the 2nd batch's 3rd row */
    resume_and_compare(&r, dir, ref, 24, 4);
    free(dir);
    free(ref);
}

static bool stop_after_2(void *user, size_t done) { (void)user; return done < 2; }

Test(runner, torn_last_line_is_dropped)
{
    rows r;
    make_rows(&r);
    char *ref = reference_run(&r, 1);
    char *dir = tw_test_tmpdir();
    killed_run(&r, dir, 1, 5, false, 1);
    char *jp = path_in(dir, "predictions.partial.jsonl");
    FILE *f = fopen(jp, "ab");
    cr_assert_not_null(f);
    fputs("{\"id\":\"row-05\",\"input\":\"exam", f);   /* a write cut short by the kill */
    fclose(f);
    fake fk = fresh_fake(1);
    tw_eval_arm arm = make_fake(&fk, &FAKE_OPS);
    tw_eval_params p = params();
    /* resume, stop again after 2 rows: the rows appended after the torn line must read
     * back on the next resume */
    p.on_row = stop_after_2;
    tw_error err;
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_RUNTIME);
    char *j = slurp(dir, "predictions.partial.jsonl");
    cr_assert_eq(count_lines(j), 1 + 7);
    cr_assert_null(strstr(j, "\"exam{"), "the torn fragment is gone");
    free(j);
    p.on_row = NULL;
    tw_eval_result res;
    run_ok(&arm, &r, dir, &p, &res);
    cr_assert_eq(res.n_resumed, 7);
    assert_same_files(ref, dir);
    json_decref(res.metrics);
    /* a damaged complete line is an error, not silently skipped */
    char *dir2 = tw_test_tmpdir();
    killed_run(&r, dir2, 1, 5, false, 1);
    char *jp2 = path_in(dir2, "predictions.partial.jsonl");
    f = fopen(jp2, "ab");
    fputs("{\"id\":\"row-05\" garbage}\n", f);
    fclose(f);
    fk = fresh_fake(1);
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir2, &p, NULL, &err), TW_ERR_PARSE);
    cr_assert(strstr(err.msg, jp2) && strstr(err.msg, ":7:"), "names the file and line: %s", err.msg);
    free(jp2); free(dir2); free(jp); free(dir); free(ref);
}

Test(runner, config_and_data_mismatch_then_force)
{
    rows r;
    make_rows(&r);
    char *dir = tw_test_tmpdir();
    killed_run(&r, dir, 1, 5, false, 1);
    fake f = fresh_fake(2);   /* a different configuration */
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    tw_error err;
    tw_error_clear(&err);
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "predictions.partial.jsonl") && strstr(err.msg, "different arm configuration") &&
              strstr(err.msg, "--force") && strstr(err.msg, "fresh output directory"), "%s", err.msg);
    cr_assert_eq(f.calls, 0, "nothing predicted on a mismatch");
    /* the same arm with another model hash is another configuration too */
    fake f1 = fresh_fake(1);
    tw_eval_arm arm1 = make_fake(&f1, &FAKE_OPS);
    snprintf(arm1.model_hash, sizeof arm1.model_hash, "%s", "ffff");
    cr_assert_eq(tw_eval_run(&arm1, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_INVALID);
    /* changed data */
    rows r2;
    make_rows(&r2);
    snprintf(r2.buf[30][1], 64, "%s", "a changed input");
    arm1 = make_fake(&f1, &FAKE_OPS);
    cr_assert_eq(tw_eval_run(&arm1, r2.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "different data"), "%s", err.msg);
    /* another run seed (handed to the arm) */
    arm1 = make_fake(&f1, &FAKE_OPS);
    tw_eval_params p2 = params();
    p2.seed = 99;
    cr_assert_eq(tw_eval_run(&arm1, r.ex, N_ROWS, dir, &p2, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "seed 1 (this run 99)"), "%s", err.msg);
    cr_assert_eq(f1.calls, 0);
    /* --force starts over */
    p.force = true;
    tw_eval_result res;
    run_ok(&arm, &r, dir, &p, &res);
    cr_assert_eq(res.n_resumed, 0);
    cr_assert_eq(f.calls, N_ROWS);
    json_decref(res.metrics);
    free(dir);
}

Test(runner, finished_run_rerun_and_foreign_files)
{
    rows r;
    make_rows(&r);
    char *dir = reference_run(&r, 1);
    char *before = slurp(dir, "predictions.jsonl");
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    p.score.bootstrap = 0;   /* scoring params may change: only rescoring */
    tw_eval_result res;
    run_ok(&arm, &r, dir, &p, &res);
    cr_assert_eq(res.n_resumed, N_ROWS);
    cr_assert_eq(f.calls, 0);
    char *after = slurp(dir, "predictions.jsonl");
    cr_assert_str_eq(before, after);
    cr_assert(json_is_null(json_object_get(json_object_get(json_object_get(res.metrics, "metrics"), "accuracy"), "ci")),
              "rescored without CIs");
    json_decref(res.metrics);
    /* another configuration on a finished run */
    fake f2 = fresh_fake(3);
    tw_eval_arm arm2 = make_fake(&f2, &FAKE_OPS);
    tw_error err;
    cr_assert_eq(tw_eval_run(&arm2, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "run.json") && strstr(err.msg, "different arm configuration"), "%s", err.msg);
    tw_eval_params p3 = params();
    p3.seed = 5;
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir, &p3, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "run.json") && strstr(err.msg, "seed 1 (this run 5)"), "%s", err.msg);
    /* a predictions file from elsewhere is not overwritten */
    char *d2 = tw_test_tmpdir();
    free(tw_test_write(d2, "predictions.jsonl", "{\"id\":\"x\",\"prediction\":\"pos\"}\n"));
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, d2, &p, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "not written by the runner"), "%s", err.msg);
    free(before); free(after); free(d2); free(dir);
}

Test(runner, arm_error_and_stop_keep_the_journal)
{
    rows r;
    make_rows(&r);
    char *ref = reference_run(&r, 1);
    char *dir = tw_test_tmpdir();
    fake f = fresh_fake(1);
    f.fail_at = 12;
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    tw_error err;
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "backend went away") && strstr(err.msg, "row-12") && strstr(err.msg, "fake"), "%s",
              err.msg);
    cr_assert_not(exists(dir, "predictions.jsonl"));
    char *j = slurp(dir, "predictions.partial.jsonl");
    cr_assert_eq(count_lines(j), 13);
    free(j);
    resume_and_compare(&r, dir, ref, 12, 1);
    free(dir);
    free(ref);
}

static bool stop_after_3(void *user, size_t done) { (void)user; return done < 3; }

Test(runner, stop_hook_and_bad_rows)
{
    rows r;
    make_rows(&r);
    char *ref = reference_run(&r, 1);
    char *dir = tw_test_tmpdir();
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    p.on_row = stop_after_3;
    tw_error err;
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "resume"), "%s", err.msg);
    resume_and_compare(&r, dir, ref, 3, 1);
    /* duplicate ids, empty input set */
    rows d;
    make_rows(&d);
    d.ex[7].id = d.ex[3].id;
    char *dir2 = tw_test_tmpdir();
    cr_assert_eq(tw_eval_run(&arm, d.ex, N_ROWS, dir2, &p, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "duplicate id 'row-03'"), "%s", err.msg);
    cr_assert_eq(tw_eval_run(&arm, d.ex, 0, dir2, &p, NULL, &err), TW_ERR_INVALID);
    free(dir2); free(dir); free(ref);
}

Test(runner, one_runner_per_directory)
{
    rows r;
    make_rows(&r);
    char *dir = tw_test_tmpdir();
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    cr_assert(fd >= 0);
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);   /* as a running evaluation holds it */
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, &FAKE_OPS);
    tw_eval_params p = params();
    tw_error err;
    cr_assert_eq(tw_eval_run(&arm, r.ex, N_ROWS, dir, &p, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "another evaluation is running") && strstr(err.msg, dir), "%s", err.msg);
    cr_assert_eq(f.calls, 0);
    close(fd);   /* released: the run goes ahead */
    tw_eval_result res;
    run_ok(&arm, &r, dir, &p, &res);
    cr_assert_eq(res.n_predicted, N_ROWS);
    json_decref(res.metrics);
    free(dir);
}

Test(runner, batch_matches_single)
{
    rows r;
    make_rows(&r);
    char *ref = reference_run(&r, 1);
    char *dir = tw_test_tmpdir();
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, &FAKE_BATCH_OPS);
    tw_eval_params p = params();
    p.batch_size = 8;
    tw_eval_result res;
    run_ok(&arm, &r, dir, &p, &res);
    cr_assert_eq(f.batch_calls, N_ROWS / 8);
    assert_same_files(ref, dir);
    json_decref(res.metrics);
    free(dir); free(ref);
}

/* ---- an arm that goes through the model-call cache -------------------------- */
static tw_status cached_predict(tw_eval_arm *arm, const tw_example *row, tw_pred *out, const tw_eval_ctx *ctx,
                                tw_error *err)
{
    fake *f = arm->state;
    json_t *dec = json_pack("{s:f, s:i}", "temperature", 0.0, "max_tokens", 4);
    tw_cache_key k = {.model_hash = arm->model_hash, .adapter_hash = arm->adapter_hash, .prompt = row->input,
                      .params = dec, .mode = "zero/free"};
    char key[65];
    tw_status st = tw_cache_key_hash(&k, key, err);
    json_decref(dec);
    if (st) return st;
    tw_cache_entry e;
    bool hit = false;
    if (ctx->cache && (st = tw_cache_get(ctx->cache, key, &e, &hit, err))) return st;
    if (!hit) {
        f->computed++;
        tw_pred tmp;
        tw_pred_init(&tmp);
        if ((st = fake_predict(arm, row, &tmp, ctx, err))) return st;
        tmp.latency_ms += (double)f->computed * 0.001;   /* a real call's latency varies */
        tw_cache_entry_init(&e);
        e.output = tmp.prediction;
        e.parsed = tmp.parsed;
        e.valid = tmp.valid;
        e.tokens_in = tmp.tokens_in;
        e.tokens_out = tmp.tokens_out;
        e.latency_ms = tmp.latency_ms;
        if (ctx->cache && (st = tw_cache_put(ctx->cache, key, &e, err))) { tw_pred_free(&tmp); return st; }
        *out = tmp;
        out->cost = 0;
        return TW_OK;
    }
    out->prediction = e.output;
    out->parsed = e.parsed;
    out->valid = e.valid;
    out->tokens_in = e.tokens_in;
    out->tokens_out = e.tokens_out;
    out->latency_ms = e.latency_ms;   /* the original call's: the cached run reads the same */
    out->cost = 0;
    free(e.logprobs);
    return TW_OK;
}

static const tw_eval_arm_ops CACHED_OPS = {.name = "cached", .predict = cached_predict, .config = fake_config};

Test(runner, cache_makes_reruns_free)
{
    rows r;
    make_rows(&r);
    char *cdir = tw_test_tmpdir();
    char *cpath = path_in(cdir, "calls.sqlite");
    tw_cache *cache = NULL;
    tw_error err;
    cr_assert_eq(tw_cache_open(&cache, cpath, &err), TW_OK, "%s", err.msg);
    char *a = tw_test_tmpdir(), *b = tw_test_tmpdir();
    fake f = fresh_fake(1);
    tw_eval_arm arm = make_fake(&f, &CACHED_OPS);
    tw_eval_params p = params();
    p.cache = cache;
    tw_eval_result res;
    run_ok(&arm, &r, a, &p, &res);
    cr_assert_eq(f.computed, N_ROWS);
    cr_assert_eq(res.cache_misses, N_ROWS);
    cr_assert_eq(res.cache_hits, 0);
    json_decref(res.metrics);
    /* a fresh directory, same calls: all from the cache, identical files */
    run_ok(&arm, &r, b, &p, &res);
    cr_assert_eq(f.computed, N_ROWS, "no call computed twice");
    cr_assert_eq(res.cache_hits, N_ROWS);
    cr_assert_eq(res.cache_misses, 0);
    assert_same_files(a, b);
    json_decref(res.metrics);
    json_error_t je;
    char *rp = path_in(b, "run.json");
    json_t *run = json_load_file(rp, 0, &je);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(run, "counts"), "cache_hits")), N_ROWS);
    cr_assert_str_eq(json_string_value(json_object_get(run, "cache")), cpath);
    json_decref(run);
    tw_cache_close(cache);
    free(rp); free(a); free(b); free(cpath); free(cdir);
}

/* ---- the classic arm on SST-2 ------------------------------------------------ */
static void load_head(tw_dataset *ds, const char *name, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data/sst2/%s", tw_test_shared(), name);
    cr_assert(tw_file_exists(path), "missing %s (the shared datasets: set TW_SHARED)", path);
    tw_dataset all = {0};
    tw_reader_params rp = tw_reader_default_params();
    tw_error err;
    cr_assert_eq(tw_dataset_load(&all, path, &rp, &err), TW_OK, "%s", err.msg);
    cr_assert_geq(all.n, n);
    memset(ds, 0, sizeof *ds);
    for (size_t i = 0; i < n; i++) cr_assert_eq(tw_dataset_push(ds, &all.rows[i], &err), TW_OK);
    tw_dataset_free(&all);
}

Test(runner_real, classic_arm_on_sst2_slice, .timeout = 120)
{
    tw_dataset tr, te;
    load_head(&tr, "train.jsonl", 1500);
    load_head(&te, "test.jsonl", 200);
    const char **tx = malloc(tr.n * sizeof *tx), **lb = malloc(tr.n * sizeof *lb);
    for (size_t i = 0; i < tr.n; i++) { tx[i] = tr.rows[i].input; lb[i] = tr.rows[i].output; }
    tw_classic_params cp = tw_classic_default_params();
    cp.C = 1.0;
    cp.hash_bits = 16;
    cp.threads = 1;
    tw_classic *m = NULL;
    tw_error err;
    cr_assert_eq(tw_classic_train(&m, tx, lb, tr.n, NULL, NULL, 0, &cp, &err), TW_OK, "%s", err.msg);
    char *dir = tw_test_tmpdir();
    char *mpath = path_in(dir, "classic.model");
    cr_assert_eq(tw_classic_save(m, mpath, &err), TW_OK, "%s", err.msg);

    /* accuracy computed directly, to compare with the runner's */
    size_t correct = 0;
    for (size_t i = 0; i < te.n; i++) {
        const char *label;
        cr_assert_eq(tw_classic_predict(m, te.rows[i].input, &label, NULL, &err), TW_OK);
        correct += strcmp(label, te.rows[i].output) == 0;
    }
    double want_acc = (double)correct / (double)te.n;

    tw_eval_arm *arm = NULL;
    cr_assert_eq(tw_eval_arm_classic_open(&arm, mpath, &err), TW_OK, "%s", err.msg);
    char sha[65];
    cr_assert_eq(tw_sha256_file(mpath, sha, &err), TW_OK);
    cr_assert_str_eq(arm->model_hash, sha);
    char *run1 = path_in(dir, "run1"), *run2 = path_in(dir, "run2");
    tw_eval_params p = tw_eval_default_params();
    p.score.task_type = 0;
    p.score.bootstrap = 100;
    tw_eval_result res;
    cr_assert_eq(tw_eval_run(arm, te.rows, te.n, run1, &p, &res, &err), TW_OK, "%s", err.msg);
    double acc = json_real_value(json_object_get(json_object_get(json_object_get(res.metrics, "metrics"), "accuracy"),
                                                 "value"));
    cr_assert_float_eq(acc, want_acc, 1e-12);
    cr_assert_gt(acc, 0.6, "classic arm on SST-2 should beat chance clearly (got %.3f)", acc);
    cr_log_info("classic arm via runner on %zu SST-2 test rows: accuracy %.4f", te.n, acc);
    json_decref(res.metrics);

    /* batch prediction gives the same labels; a wrapped in-memory model has the same config hash */
    tw_eval_arm *wrapped = NULL;
    cr_assert_eq(tw_eval_arm_classic_wrap(&wrapped, m, sha, &err), TW_OK);
    char h1[65], h2[65];
    cr_assert_eq(tw_eval_arm_config_hash(arm, h1, &err), TW_OK);
    cr_assert_eq(tw_eval_arm_config_hash(wrapped, h2, &err), TW_OK);
    cr_assert_str_eq(h1, h2);
    p.batch_size = 64;
    cr_assert_eq(tw_eval_run(wrapped, te.rows, te.n, run2, &p, &res, &err), TW_OK, "%s", err.msg);
    json_decref(res.metrics);
    tw_pred_set a, b;
    char *pa = path_in(run1, "predictions.jsonl"), *pb = path_in(run2, "predictions.jsonl");
    cr_assert_eq(tw_pred_load(&a, pa, &err), TW_OK);
    cr_assert_eq(tw_pred_load(&b, pb, &err), TW_OK);
    cr_assert_eq(a.n, te.n);
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_str_eq(a.rows[i].prediction, b.rows[i].prediction);
        cr_assert(a.rows[i].latency_ms >= 0);
        cr_assert_eq(a.rows[i].cost, 0);
    }
    tw_pred_set_free(&a);
    tw_pred_set_free(&b);
    /* a missing model file names it */
    tw_eval_arm *none = NULL;
    cr_assert_neq(tw_eval_arm_classic_open(&none, "/nonexistent/x.model", &err), TW_OK);
    cr_assert(strstr(err.msg, "/nonexistent/x.model"), "%s", err.msg);
    cr_assert_null(none);
    tw_eval_arm_free(wrapped);
    tw_eval_arm_free(arm);
    tw_eval_arm_free(NULL);
    tw_classic_free(m);
    free(pa); free(pb); free(run1); free(run2); free(mpath); free(dir);
    free(tx); free(lb);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}
