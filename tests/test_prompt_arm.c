/* test_prompt_arm.c — the prompt arm through the runner (src/eval/arm_prompt.c) on the real
 * stories260K (plain layout: it has no chat template) and a small two-label task written
 * into a temp dir: every output mode answers every row, score picks the arg max of the
 * backend's own log-likelihoods, choice only ever produces labels, predictions keep the
 * exact prompt, a second run through the SQLite cache is all hits with identical files,
 * and the `tunewise prompt` command runs end to end (with a demonstration-set search). */
#include "testutil.h"

#include "eval/arm_prompt.h"
#include "task/split.h"

#include <math.h>
#include <signal.h>

static const char *stories_path(void)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(tw_file_exists(p), "%s is missing (../shared/models)", p);
    return p;
}

/* A task: does the sentence mention a dog or a cat. 30 train, 8 dev, 12 test rows. */
static char *write_task(const char *dir)
{
    const char *subj[] = {"Lily", "Tom", "Ben", "Sue", "Max", "Anna"};
    const char *verb[] = {"saw", "fed", "liked", "found", "hugged"};
    const char *files[] = {"train.jsonl", "dev.jsonl", "test.jsonl"};
    const int counts[] = {30, 8, 12};
    int k = 0;
    for (int f = 0; f < 3; f++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *fp = fopen(path, "w");
        cr_assert_not_null(fp);
        for (int i = 0; i < counts[f]; i++, k++) {
            const char *animal = k % 2 ? "dog" : "cat";
            fprintf(fp, "{\"id\": \"%s-%d\", \"input\": \"%s %s a %s in the park.\", \"output\": \"%s\"}\n", files[f], i,
                    subj[k % 6], verb[k % 5], animal, animal);
        }
        fclose(fp);
    }
    char *t = tw_test_write(dir, "task.yaml",
                            "name: pets\ntype: classify\ndata:\n  train: train.jsonl\n  dev: dev.jsonl\n"
                            "  test: test.jsonl\nformat: jsonl\ninstructions: Which animal is in the story?\n"
                            "metric:\n  name: accuracy\n");
    return t;
}

typedef struct fixture {
    char *dir, *task_path;
    tw_task task;
    tw_dataset sp[TW_SPLIT_COUNT];
    tw_local *be;
} fixture;

static void fx_open(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->dir = tw_test_tmpdir();
    f->task_path = write_task(f->dir);
    tw_error err;
    cr_assert_eq(tw_task_load(&f->task, f->task_path, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_split_task(&f->task, f->sp, NULL, &err), TW_OK, "%s", err.msg);
    tw_local_params lp = tw_local_default_params();
    lp.model = stories_path();
    lp.n_threads = 2;
    lp.n_ctx = 2048;
    cr_assert_eq(tw_local_open(&f->be, &lp, &err), TW_OK, "%s", err.msg);
}

static void fx_close(fixture *f)
{
    tw_local_free(f->be);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&f->sp[s]);
    tw_task_free(&f->task);
    free(f->task_path);
    free(f->dir);
}

static tw_eval_params eval_params(fixture *f, tw_cache *cache)
{
    static const char *labels[] = {"cat", "dog"};
    tw_eval_params p = tw_eval_default_params();
    p.score.task_type = TW_TASK_CLASSIFY;
    p.score.labels = labels;
    p.score.n_labels = 2;
    p.score.bootstrap = 0;
    p.cache = cache;
    (void)f;
    return p;
}

static char *slurp(const char *path)
{
    char *s = NULL;
    size_t n;
    tw_error err;
    cr_assert_eq(tw_file_read(path, &s, &n, &err), TW_OK, "%s", err.msg);
    return s;
}

Test(prompt_arm, every_mode_answers_and_the_cache_replays, .timeout = 120)
{
    fixture f;
    fx_open(&f);
    const tw_output_mode modes[] = {TW_OUTPUT_SCORE, TW_OUTPUT_CHOICE, TW_OUTPUT_FREE};
    for (size_t mi = 0; mi < 3; mi++) {
        tw_error err;
        tw_prompt_arm_params pp = tw_prompt_arm_default_params();
        pp.prompt.demos = TW_DEMOS_KSHOT;
        pp.prompt.k = 4;
        pp.prompt.output = modes[mi];
        pp.max_tokens = 6;
        tw_eval_arm *arm;
        cr_assert_eq(tw_eval_arm_prompt_new(&arm, f.be, &f.task, &f.sp[TW_SPLIT_TRAIN], &pp, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(strlen(arm->model_hash), 64, "model hash '%s'", arm->model_hash);
        char dir[512], dir2[512], db[512];
        snprintf(dir, sizeof dir, "%s/run-%zu", f.dir, mi);
        snprintf(dir2, sizeof dir2, "%s/rerun-%zu", f.dir, mi);
        snprintf(db, sizeof db, "%s/cache-%zu.db", f.dir, mi);
        tw_cache *cache;
        cr_assert_eq(tw_cache_open(&cache, db, &err), TW_OK, "%s", err.msg);
        tw_eval_params ep = eval_params(&f, cache);
        tw_eval_result r1, r2;
        const tw_dataset *test = &f.sp[TW_SPLIT_TEST];
        cr_assert_eq(tw_eval_run(arm, test->rows, test->n, dir, &ep, &r1, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(r1.n_predicted, test->n);
        cr_assert_eq(r1.cache_misses, test->n);
        cr_assert_eq(tw_eval_run(arm, test->rows, test->n, dir2, &ep, &r2, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(r2.cache_hits, test->n, "%s: second run %zu hits", tw_output_mode_str(modes[mi]), r2.cache_hits);
        /* the same predictions either way (latency included: the cache replays it) */
        char p1[600], p2[600];
        snprintf(p1, sizeof p1, "%s/predictions.jsonl", dir);
        snprintf(p2, sizeof p2, "%s/predictions.jsonl", dir2);
        char *a = slurp(p1), *b = slurp(p2);
        cr_assert_str_eq(a, b);
        free(a);
        free(b);
        tw_pred_set ps = {0};
        cr_assert_eq(tw_pred_load(&ps, p1, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(ps.n, test->n);
        size_t plen;
        const char *prefix = tw_prompt_prefix(tw_eval_arm_prompt_get(arm), &plen);
        cr_assert_gt(plen, 0);
        for (size_t i = 0; i < ps.n; i++) {
            const tw_pred *p = &ps.rows[i];
            /* the exact prompt: the shared prefix, then this row's input */
            cr_assert_eq(strncmp(p->input, prefix, plen), 0, "row %zu input does not start with the prefix", i);
            cr_assert(strstr(p->input + plen, test->rows[i].input), "row %zu: the prompt lacks the row's input", i);
            cr_assert(p->tokens_in > 10, "row %zu tokens_in %g", i, p->tokens_in);
            cr_assert(p->latency_ms > 0, "row %zu latency %g", i, p->latency_ms);
            if (modes[mi] != TW_OUTPUT_FREE) {
                cr_assert(p->valid, "%s row %zu invalid: '%s'", tw_output_mode_str(modes[mi]), i, p->prediction);
                const char *ans = p->parsed ? p->parsed : p->prediction;
                cr_assert(!strcmp(ans, "cat") || !strcmp(ans, "dog"), "row %zu answer '%s'", i, ans);
            }
        }
        /* score: the arg max of the backend's log-likelihoods of the continuations */
        if (modes[mi] == TW_OUTPUT_SCORE) {
            size_t nc;
            const char *const *conts = tw_prompt_continuations(tw_eval_arm_prompt_get(arm), &nc);
            cr_assert_eq(nc, 2);
            for (size_t i = 0; i < ps.n; i++) {
                cr_assert_eq(tw_local_set_prefix(f.be, NULL, &err), TW_OK);
                double lp[2];
                cr_assert_eq(tw_local_score(f.be, ps.rows[i].input, conts, 2, lp, NULL, &err), TW_OK, "%s", err.msg);
                const char *want = lp[0] >= lp[1] ? "cat" : "dog";
                cr_assert_str_eq(ps.rows[i].parsed ? ps.rows[i].parsed : ps.rows[i].prediction, want,
                                 "row %zu: log p %g / %g", i, lp[0], lp[1]);
            }
        }
        tw_pred_set_free(&ps);
        json_decref(r1.metrics);
        json_decref(r2.metrics);
        tw_cache_close(cache);
        tw_eval_arm_free(arm);
    }
    fx_close(&f);
}

Test(prompt_arm, bad_combinations_are_clear_errors)
{
    fixture f;
    fx_open(&f);
    tw_error err;
    tw_prompt_arm_params pp = tw_prompt_arm_default_params();
    pp.prompt.output = TW_OUTPUT_JSON;   /* json needs an extract task */
    tw_eval_arm *arm = NULL;
    cr_assert_neq(tw_eval_arm_prompt_new(&arm, f.be, &f.task, &f.sp[TW_SPLIT_TRAIN], &pp, &err), TW_OK);
    cr_assert_null(arm);
    cr_assert(strstr(err.msg, "json"), "%s", err.msg);
    fx_close(&f);
}

Test(prompt_arm, cli_runs_with_a_demo_set_search, .timeout = 120)
{
    fixture f;
    fx_open(&f);
    const char *bin = getenv("TW_BIN") ? getenv("TW_BIN") : "build/tunewise";
    char cmd[2048], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "%s prompt --task %s -m %s --strategy kshot --k 2 --demo-sets 3 --output score -o %s/cli -j 2 --json",
             bin, f.task_path, stories_path(), f.dir);
    int rc = tw_test_run(cmd, &out, &errs);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, errs);
    json_error_t je;
    json_t *m = json_loads(out, 0, &je);
    cr_assert_not_null(m, "stdout is not JSON: %s", out);
    cr_assert_eq(json_integer_value(json_object_get(m, "n")), 12);
    char path[600];
    snprintf(path, sizeof path, "%s/cli/search.json", f.dir);
    json_t *s = json_load_file(path, 0, &je);
    cr_assert_not_null(s, "%s: %s", path, je.text);
    cr_assert_eq(json_array_size(json_object_get(s, "sets")), 3);
    double best = -1;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(s, "sets"), i, v) best = fmax(best, json_number_value(json_object_get(v, "value")));
    cr_assert_float_eq(json_number_value(json_object_get(s, "max")), best, 1e-12);
    snprintf(path, sizeof path, "%s/cli/search/set-2/predictions.jsonl", f.dir);
    cr_assert(tw_file_exists(path), "%s missing", path);
    json_decref(s);
    json_decref(m);
    free(out);
    free(errs);
    /* usage errors: exit 2 with a message */
    snprintf(cmd, sizeof cmd, "%s prompt --task %s -m %s --strategy zero --demo-sets 2 -o %s/x", bin, f.task_path,
             stories_path(), f.dir);
    rc = tw_test_run(cmd, &out, &errs);
    cr_assert_eq(rc, 2, "rc %d", rc);
    cr_assert(strstr(errs, "--demo-sets needs a kshot strategy"), "%s", errs);
    free(out);
    free(errs);
    fx_close(&f);
}

/* The prompt arm against `tunewise serve` over loopback (real HTTP) gives the same answers
 * as the local backend on the same model: score mode ranks the same continuations (the
 * server echoes the prompt's log-probs), so parsed answers are equal and the recorded
 * log-probabilities agree. */
Test(prompt_arm, remote_through_serve_agrees_with_local, .timeout = 120)
{
    fixture f;
    fx_open(&f);
    const char *bin = getenv("TW_BIN") ? getenv("TW_BIN") : "build/tunewise";
    char portfile[600], cmd[2048];
    snprintf(portfile, sizeof portfile, "%s/port", f.dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "serve", "-m", stories_path(), "--port", "0", "--port-file", portfile, "-t", "1", "-q",
              (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 400 && port <= 0; i++) {   /* up to 20 s (ASan start-up) */
        FILE *fp = fopen(portfile, "r");
        if (fp) {
            if (fscanf(fp, "%d", &port) != 1) port = 0;
            fclose(fp);
        }
        if (port <= 0) usleep(50000);
    }
    cr_assert_gt(port, 0, "serve did not write its port");
    char *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd,
             "%s prompt -q --task %s -m stories260K --remote http://127.0.0.1:%d/v1 --strategy kshot --k 4 --output score "
             "-o %s/remote --bootstrap 0 --json",
             bin, f.task_path, port, f.dir);
    int rc = tw_test_run(cmd, &out, &errs);
    free(out);
    cr_assert_eq(rc, 0, "remote prompt run: rc %d: %s", rc, errs);
    free(errs);
    snprintf(cmd, sizeof cmd,
             "%s prompt -q --task %s -m %s --strategy kshot --k 4 --output score -o %s/local --bootstrap 0 --json -j 2",
             bin, f.task_path, stories_path(), f.dir);
    rc = tw_test_run(cmd, &out, &errs);
    free(out);
    cr_assert_eq(rc, 0, "local prompt run: rc %d: %s", rc, errs);
    free(errs);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve exit status %d", status);
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/remote/predictions.jsonl", f.dir);
    snprintf(p2, sizeof p2, "%s/local/predictions.jsonl", f.dir);
    tw_pred_set a = {0}, b = {0};
    tw_error err;
    cr_assert_eq(tw_pred_load(&a, p1, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_pred_load(&b, p2, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(a.n, b.n);
    cr_assert_eq(a.n, 12);
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_str_eq(a.rows[i].id, b.rows[i].id);
        cr_assert_str_eq(a.rows[i].input, b.rows[i].input, "row %zu: the same prompt text", i);
        cr_assert_str_eq(a.rows[i].parsed ? a.rows[i].parsed : a.rows[i].prediction,
                         b.rows[i].parsed ? b.rows[i].parsed : b.rows[i].prediction, "row %zu", i);
    }
    tw_pred_set_free(&a);
    tw_pred_set_free(&b);
    fx_close(&f);
}

/* The tuned arm: `tunewise tune` trains an adapter on the task, and `tunewise prompt
 * --adapter` evaluates the model with it (the zero-shot prompt the adapter was trained on);
 * the run records the adapter's hash, so cache entries and resumes never mix it up with
 * the base model. */
Test(prompt_arm, tuned_adapter_through_the_prompt_arm, .timeout = 300)
{
    fixture f;
    fx_open(&f);
    const char *bin = getenv("TW_BIN") ? getenv("TW_BIN") : "build/tunewise";
    char cmd[2048], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "%s tune -q --task %s -m %s --rank 4 --alpha 8 --targets all --lr 5e-3 --max-steps 30 "
             "--seed 3 -o %s/tune --threads 2", bin, f.task_path, stories_path(), f.dir);
    int rc = tw_test_run(cmd, &out, &errs);
    cr_assert_eq(rc, 0, "tune: rc %d: %s", rc, errs);
    free(out);
    free(errs);
    char adapter[600], hex[65];
    snprintf(adapter, sizeof adapter, "%s/tune/adapter.gguf", f.dir);
    tw_error err;
    cr_assert_eq(tw_sha256_file(adapter, hex, &err), TW_OK, "%s", err.msg);
    const char *runs[] = {"base", "tuned"};
    json_t *lp[2];
    for (int r = 0; r < 2; r++) {
        snprintf(cmd, sizeof cmd, "%s prompt -q --task %s -m %s --strategy zero --output score %s%s -o %s/%s --bootstrap 0 -j 2",
                 bin, f.task_path, stories_path(), r ? "--adapter " : "", r ? adapter : "", f.dir, runs[r]);
        rc = tw_test_run(cmd, &out, &errs);
        cr_assert_eq(rc, 0, "%s: rc %d: %s", runs[r], rc, errs);
        free(out);
        free(errs);
        char path[700];
        snprintf(path, sizeof path, "%s/%s/run.json", f.dir, runs[r]);
        json_error_t je;
        json_t *run = json_load_file(path, 0, &je);
        cr_assert_not_null(run, "%s: %s", path, je.text);
        char *dump = json_dumps(run, JSON_COMPACT);
        cr_assert(r == 0 ? !strstr(dump, hex) : strstr(dump, hex) != NULL, "%s: adapter hash %s in run.json: %s", runs[r],
                  hex, dump);
        free(dump);
        json_decref(run);
        snprintf(path, sizeof path, "%s/%s/metrics.json", f.dir, runs[r]);
        lp[r] = json_load_file(path, 0, &je);
        cr_assert_not_null(lp[r]);
    }
    double acc[2];
    for (int r = 0; r < 2; r++) acc[r] = json_number_value(json_object_get(json_object_get(json_object_get(lp[r], "metrics"), "accuracy"), "value"));
    cr_log_info("pets task, stories260K zero-shot score: base accuracy %.3f, tuned %.3f", acc[0], acc[1]);
    cr_assert_gt(acc[1], acc[0], "the adapter trained on this task should help (%.3f vs %.3f)", acc[1], acc[0]);
    json_decref(lp[0]);
    json_decref(lp[1]);
    /* the verdict over both runs: 12 test rows cannot support a comparison (rule R1), so no
     * recommendation, whatever the accuracies */
    snprintf(cmd, sizeof cmd, "%s verdict --task %s %s/base %s/tuned -o %s/verdict --json", bin, f.task_path, f.dir, f.dir,
             f.dir);
    rc = tw_test_run(cmd, &out, &errs);
    cr_assert_eq(rc, 0, "verdict: rc %d: %s", rc, errs);
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);
    cr_assert_not_null(v, "verdict --json: %s", out);
    cr_assert_not_null(json_string_value(json_object_get(v, "decision")));
    cr_assert_eq(json_array_size(json_object_get(v, "rules")), 9, "every rule reports a line");
    cr_assert_str_eq(json_string_value(json_object_get(v, "decision")), "none", "%s", out);
    cr_assert(strstr(json_string_value(json_object_get(v, "summary")), "R1"), "%s", out);
    char path[700];
    snprintf(path, sizeof path, "%s/verdict/report.html", f.dir);
    cr_assert(tw_file_exists(path), "%s missing", path);
    json_decref(v);
    free(out);
    free(errs);
    fx_close(&f);
}
