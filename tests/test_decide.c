/* test_decide.c — `tunewise decide` end to end on stories260K: the audit stop, every arm
 * (classic, prompt search on dev + best on test, LoRA learning curve + best on test), the
 * verdict and history row, a re-run that reuses every step, and a budget that skips steps
 * and says so. The tool runs as a child process (TW_BIN or build/tunewise). */
#include "testutil.h"
#include "base/base.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *stories_path(void)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(tw_file_exists(p), "%s is missing (../shared/models)", p);
    return p;
}

/* Does the sentence mention a dog or a cat: 60 train, 8 dev, 12 test rows. */
static char *write_task(const char *dir)
{
    const char *subj[] = {"Lily", "Tom", "Ben", "Sue", "Max", "Anna"};
    const char *verb[] = {"saw", "fed", "liked", "found", "hugged"};
    const char *files[] = {"train.jsonl", "dev.jsonl", "test.jsonl"};
    const int counts[] = {60, 8, 12};
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
    return tw_test_write(dir, "task.yaml",
                         "name: pets\ntype: classify\ndata:\n  train: train.jsonl\n  dev: dev.jsonl\n"
                         "  test: test.jsonl\nformat: jsonl\ninstructions: Which animal is in the story?\n"
                         "metric:\n  name: accuracy\n");
}

static int decide(const char *task, const char *out, const char *extra, char **so, char **se)
{
    const char *bin = getenv("TW_BIN") ? getenv("TW_BIN") : "build/tunewise";
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s decide %s -o %s -m %s --k 2 --outputs score --curve 20,0 --tune-max-steps 6 --dev-limit 8 -j 2 %s", bin,
             task, out, stories_path(), extra);
    return tw_test_run(cmd, so, se);
}

/* status of the step named `name` in DIR/decide.json (NULL when absent); note too */
static const char *status_of(json_t *doc, const char *name, const char **note)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(doc, "steps"), i, s) {
        const char *n = json_string_value(json_object_get(s, "step"));
        if (n && strcmp(n, name) == 0) {
            if (note) *note = json_string_value(json_object_get(s, "note"));
            return json_string_value(json_object_get(s, "status"));
        }
    }
    return NULL;
}

static json_t *load(const char *dir, const char *file)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    cr_assert_not_null(j, "%s: %s", p, je.text);
    return j;
}

Test(decide, audit_stop_all_arms_reuse_and_budget, .timeout = 300)
{
    char *dir = tw_test_tmpdir(), *task = write_task(dir), *so = NULL, *se = NULL;
    char out[700];
    const char *note = NULL;

    /* 1. the audit finds 12 test rows not ready: the model arms are not run, the verdict says why */
    snprintf(out, sizeof out, "%s/stop", dir);
    int rc = decide(task, out, "--test-limit 10", &so, &se);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, se);
    json_t *d = load(out, "decide.json");
    cr_expect_str_eq(status_of(d, "audit", &note), "ran");
    cr_expect(note && strstr(note, "not ready"), "%s", note ? note : "(no note)");
    cr_expect_str_eq(status_of(d, "prompt", &note), "skipped");
    cr_expect(note && strstr(note, "not ready"), "%s", note ? note : "(no note)");
    cr_expect_str_eq(status_of(d, "lora", NULL), "skipped");
    cr_expect_str_eq(status_of(d, "classic test", NULL), "ran", "the classic arm is cheap: it runs anyway");
    cr_expect_eq(json_array_size(json_object_get(d, "arms")), 1);
    json_decref(d);
    {   /* --test-limit reaches the classic arm too: every arm is scored on the same rows */
        char cdir[800];
        snprintf(cdir, sizeof cdir, "%s/classic/test", out);
        json_t *m = load(cdir, "metrics.json");
        cr_expect_eq(json_integer_value(json_object_get(m, "n")), 10);
        json_decref(m);
    }
    cr_expect(strstr(so, "(R1)") != NULL, "the verdict names the data rule: %s", so);
    free(so), free(se);

    /* 2. every arm (--ignore-audit) */
    snprintf(out, sizeof out, "%s/all", dir);
    rc = decide(task, out, "--ignore-audit", &so, &se);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, se);
    free(so), free(se);
    d = load(out, "decide.json");
    const char *ran[] = {"classic train", "classic test", "prompt stories260K dev zero-k0-score",
                         "prompt stories260K dev kshot-k2-score", "prompt stories260K dev knn-k2-score",
                         "lora stories260K train n=20", "lora stories260K train n=60", "verdict", "history"};
    for (size_t i = 0; i < sizeof ran / sizeof *ran; i++) {
        const char *s = status_of(d, ran[i], NULL);
        cr_expect(s && strcmp(s, "ran") == 0, "%s: %s", ran[i], s ? s : "(absent)");
    }
    json_t *arms = json_object_get(d, "arms");
    cr_expect_eq(json_array_size(arms), 3, "classic, the best prompt and the best LoRA size on test");
    size_t i;
    json_t *a;
    json_array_foreach(arms, i, a) {
        json_t *m = load(json_string_value(a), "metrics.json");
        json_t *acc = json_object_get(json_object_get(json_object_get(m, "metrics"), "accuracy"), "value");
        cr_expect(json_is_number(acc) && json_number_value(acc) >= 0 && json_number_value(acc) <= 1, "%s: accuracy",
                  json_string_value(a));
        json_decref(m);
        json_t *r = load(json_string_value(a), "run.json");   /* a finished run */
        json_decref(r);
        cr_expect(strstr(json_string_value(a), "/test") != NULL, "arms are test-split runs: %s", json_string_value(a));
    }
    /* the learning curve: both sizes with a dev metric */
    json_t *curve = NULL;
    json_t *s;
    json_array_foreach(json_object_get(d, "steps"), i, s)
        if (json_object_get(s, "curve")) curve = json_object_get(s, "curve");
    cr_assert_not_null(curve);
    cr_expect_eq(json_array_size(curve), 2);
    json_array_foreach(curve, i, s) cr_expect(json_is_number(json_object_get(s, "dev_metric")), "curve point %zu", i);
    json_decref(d);
    /* the fine-tune trained on the short system prompt, and its test run sent that prompt */
    {
        char tdir[800], line[8192];
        snprintf(tdir, sizeof tdir, "%s/lora/stories260K/n20", out);
        json_t *tj = load(tdir, "train.json");
        cr_expect_str_eq(json_string_value(json_object_get(json_object_get(tj, "config"), "prompt")), "short");
        json_decref(tj);
        json_t *dj = load(out, "decide.json");
        const char *arm = json_string_value(json_array_get(json_object_get(dj, "arms"), 2));
        cr_assert(arm && strstr(arm, "/lora/"), "the third arm is the fine-tune: %s", arm ? arm : "(none)");
        snprintf(tdir, sizeof tdir, "%s/predictions.jsonl", arm);
        json_decref(dj);
        FILE *pf = fopen(tdir, "r");
        cr_assert_not_null(pf, "%s", tdir);
        cr_assert_not_null(fgets(line, sizeof line, pf));
        fclose(pf);
        cr_expect(strstr(line, "Which animal") != NULL && strstr(line, "Labels:") == NULL, "LoRA prompt: %s", line);
    }
    json_t *v = load(out, "verdict.json");
    cr_expect(json_is_string(json_object_get(v, "summary")));
    json_decref(v);
    char p[800];
    snprintf(p, sizeof p, "%s/history.db", out);
    cr_expect(tw_file_exists(p));
    snprintf(p, sizeof p, "%s/report.html", out);
    cr_expect(tw_file_exists(p));

    /* 3. the same command again: every step reused, no new history row */
    rc = decide(task, out, "--ignore-audit", &so, &se);
    cr_assert_eq(rc, 0, "rc %d: %s", rc, se);
    free(so), free(se);
    d = load(out, "decide.json");
    for (size_t k = 0; k < sizeof ran / sizeof *ran - 2; k++) {
        const char *st = status_of(d, ran[k], NULL);
        cr_expect(st && strcmp(st, "reused") == 0, "re-run: %s: %s", ran[k], st ? st : "(absent)");
    }
    cr_expect_str_eq(status_of(d, "history", NULL), "reused");
    json_decref(d);

    /* 4. a budget that is spent at once: steps skipped with the reason, no verdict, exit 3 */
    snprintf(out, sizeof out, "%s/budget", dir);
    rc = decide(task, out, "--ignore-audit --budget 0.001s --steps audit,prompt,lora", &so, &se);
    cr_expect_eq(rc, 3, "no arm finished: %s", se);
    d = load(out, "decide.json");
    cr_expect_str_eq(status_of(d, "prompt stories260K dev zero-k0-score", &note), "skipped");
    cr_expect(note && strstr(note, "budget"), "%s", note ? note : "(no note)");
    cr_expect_str_eq(status_of(d, "lora stories260K train n=20", NULL), "skipped");
    cr_expect_null(status_of(d, "classic train", NULL), "--steps left the classic arm out");
    json_decref(d);
    cr_expect(strstr(se, "skipped") != NULL, "%s", se);
    free(so), free(se);

    /* 5. usage errors */
    rc = decide(task, out, "--budget soon", &so, &se);
    cr_expect_eq(rc, 2);
    cr_expect(strstr(se, "--budget") != NULL, "%s", se);
    free(so), free(se);
    rc = decide(task, out, "--steps audit,magic", &so, &se);
    cr_expect_eq(rc, 2);
    cr_expect(strstr(se, "unknown step 'magic'") != NULL, "%s", se);
    free(so), free(se);
    free(task);
    free(dir);
}
