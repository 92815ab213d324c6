/* cmd_decide.c — `tunewise decide TASK -o DIR`: the whole comparison in one command.
 *
 * Steps (docs/decision.md, "tunewise decide"), each a run directory under DIR:
 *   audit     DIR/audit.json (in process); "not ready" data stops the model arms
 *   classic   DIR/classic/model.bin + DIR/classic/test        (classify tasks)
 *   prompt    per --model: DIR/prompt/<model>/dev/<config> for every strategy x k x output
 *             on --dev-limit dev rows, the best one on test: DIR/prompt/<model>/test-<config>
 *   lora      per --lora-model: DIR/lora/<model>/n<N> for every learning-curve size N
 *             (`tune --train-max N`), the best (dev metric) on test: DIR/lora/<model>/test-n<N>
 *   verdict   `tunewise verdict` over the test runs -> DIR/verdict.json, report.md/html,
 *             and a row per arm in DIR/history.db
 * Every model step runs this same binary as a child process (the commands `classic train`,
 * `eval`, `prompt`, `tune`, `verdict`, `history add`), so each keeps its own resume and
 * cache: a finished step is reused (its metrics.json or adapter.gguf is there), an
 * interrupted one resumes, model calls go through DIR/cache.db. DIR/decide.json records
 * every step: ran / reused / skipped (why) / failed, and its seconds.
 * --budget: before each step, the time spent so far plus an estimate of the step (the
 * last step of its kind, scaled by rows or training examples) must fit; otherwise the
 * step is skipped and said so — in decide.json, on stderr and in the printed summary.
 *
 * Deliberately not here: the arms, the rules, the report (the commands it runs). */
#include "cli.h"
#include "task/audit.h"
#include "task/split.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* snprintf through a wrapper: the paths are bounded (-o is at most 512 bytes, tags 96,
 * configurations 160) well inside the 1200-byte buffers, which gcc cannot see. */
static void fmt(char *dst, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *dst, size_t n, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(dst, n, f, ap);
    va_end(ap);
}

static const cli_opt OPTS[] = {
    {"out", 'o', CLI_STR, "DIR", "experiment directory (created; a re-run reuses finished steps)", NULL},
    {"model", 'm', CLI_LIST, "GGUF", "local model for the prompt arm (repeatable); also the LoRA base unless --lora-model", NULL},
    {"lora-model", 0, CLI_LIST, "GGUF", "base model for the LoRA arm (repeatable; default: the first --model)", NULL},
    {"steps", 0, CLI_STR, "LIST", "steps to run: audit,classic,prompt,lora", "audit,classic,prompt,lora"},
    {"budget", 0, CLI_STR, "TIME", "time budget, e.g. 90s, 30m, 2h (default: none)", NULL},
    {"strategies", 0, CLI_STR, "LIST", "prompt strategies tried on dev", "zero,kshot,knn"},
    {"k", 'k', CLI_STR, "LIST", "demonstrations for kshot / knn", "4,8"},
    {"outputs", 0, CLI_STR, "LIST", "output modes (default: score,choice for classify; json for extract; free for generate)", NULL},
    {"dev-limit", 0, CLI_INT, "N", "dev rows per prompt configuration (0: all)", "100"},
    {"test-limit", 0, CLI_INT, "N", "test rows for the best configurations (0: all)", "0"},
    {"curve", 0, CLI_STR, "LIST", "LoRA learning-curve sizes in training rows (0: all)", "50,100,250,500,1000,0"},
    {"tune-epochs", 0, CLI_INT, "N", "LoRA: passes over the training rows", "3"},
    {"tune-max-steps", 0, CLI_INT, "N", "LoRA: stop each fine-tune after N steps (0: epochs decide)", "0"},
    {"ignore-audit", 0, CLI_FLAG, NULL, "run the model arms even when the audit finds the data not ready", NULL},
    {"threads", 'j', CLI_INT, "N", "threads per step (0: all cores)", "0"},
    {"dry-run", 0, CLI_FLAG, NULL, "print the plan and exit", NULL},
    {0},
};

typedef struct dctx {
    const cli_args *a;
    const char *task, *out, *self;
    double t0, budget;   /* budget <= 0: none */
    bool quiet, dry;
    json_t *steps;       /* decide.json "steps" */
    int ran;             /* model steps that ran (not reused) in this invocation */
    char threads[16];
} dctx;

/* "90s", "30m", "2h", "1h30m", "45" (seconds) -> seconds; -1 on a bad value */
static double parse_duration(const char *s)
{
    double total = 0;
    bool any = false;
    while (*s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno || v < 0) return -1;
        double mul = 1;
        if (*end == 'h') mul = 3600, end++;
        else if (*end == 'm') mul = 60, end++;
        else if (*end == 's') end++;
        else if (*end) return -1;
        total += v * mul;
        any = true;
        s = end;
    }
    return any ? total : -1;
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void note_step(dctx *c, const char *name, const char *status, double secs, const char *dir, const char *why)
{
    json_t *j = json_pack("{s:s, s:s, s:f}", "step", name, "status", status, "seconds", secs);
    if (dir) json_object_set_new(j, "dir", json_string(dir));
    if (why && *why) json_object_set_new(j, "note", json_string(why));
    json_array_append_new(c->steps, j);
    if (!c->quiet)
        fprintf(stderr, "decide: %-40s %-8s %7.1f s%s%s\n", name, status, secs, why && *why ? "  " : "", why ? why : "");
}

static double elapsed(const dctx *c) { return tw_now() - c->t0; }

/* Does a step estimated at est seconds fit the budget? why gets the reason when not. */
static bool fits(const dctx *c, double est, char *why, size_t n)
{
    if (c->budget <= 0) return true;
    double left = c->budget - elapsed(c);
    if (left > 0 && (est <= 0 || est <= left)) return true;
    if (left <= 0) fmt(why, n, "budget: spent (%.0f s of %.0f s)", elapsed(c), c->budget);
    else fmt(why, n, "budget: %.0f s left, the step needs ~%.0f s (measured on the last step of its kind)", left, est);
    return false;
}

/* Run `self args...` and wait; returns its exit code (or 127 when it could not start).
 * quiet_out: its stdout goes to /dev/null (steps print their reports into their run
 * directories anyway); stderr stays (progress and errors). */
static int run_child(dctx *c, const char *const *args, bool quiet_out)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)c->self;
    for (; args[n - 1] && n < 63; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    if (c->a->verbose) {
        fprintf(stderr, "decide: running");
        for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
        fputc('\n', stderr);
    }
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (quiet_out && !c->a->verbose) posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int sr = posix_spawn(&pid, c->self, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (sr != 0) return 127;
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR) return 127;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

static json_t *load(const char *dir, const char *file)
{
    char p[1200];
    fmt(p, sizeof p, "%s/%s", dir, file);
    return json_load_file(p, 0, NULL);
}

/* Primary metric of a finished run dir (NAN when absent). */
static double run_metric(const char *dir)
{
    json_t *m = load(dir, "metrics.json");
    double v = NAN;
    if (m) {
        const char *prim = json_string_value(json_object_get(m, "primary"));
        json_t *x = prim ? json_object_get(json_object_get(json_object_get(m, "metrics"), prim), "value") : NULL;
        if (json_is_number(x)) v = json_number_value(x);
        json_decref(m);
    }
    return v;
}

/* Model file -> short directory tag: its base name without .gguf, [A-Za-z0-9._-] only. */
static void model_tag(const char *model, char *tag, size_t n)
{
    const char *b = strrchr(model, '/');
    b = b && b[1] ? b + 1 : model;
    size_t k = 0;
    for (; *b && k + 1 < n; b++) {
        char ch = *b;
        if (strcmp(b, ".gguf") == 0) break;
        tag[k++] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                           ch == '-' || ch == '_' ? ch : '_';
    }
    tag[k] = 0;
    if (!k) fmt(tag, n, "model");
}

static size_t split_list(const char *s, char items[][32], size_t cap)
{
    size_t n = 0;
    while (s && *s && n < cap) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len > 0 && len < 32) {
            memcpy(items[n], s, len);
            items[n++][len] = 0;
        }
        s = e ? e + 1 : NULL;
    }
    return n;
}

static bool has(char items[][32], size_t n, const char *x)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(items[i], x) == 0) return true;
    return false;
}

/* One evaluation / training child step with reuse and budget. marker: the file whose
 * presence in dir means finished. Returns 0 done / reused, 1 skipped, 2 failed. */
static int step(dctx *c, const char *name, const char *dir, const char *marker, double est, const char *const *args,
                double *secs)
{
    char why[200] = "", p[1200];
    fmt(p, sizeof p, "%s/%s", dir, marker);
    *secs = 0;
    if (exists(p)) {
        note_step(c, name, "reused", 0, dir, NULL);
        return 0;
    }
    if (!fits(c, est, why, sizeof why)) {
        note_step(c, name, "skipped", 0, dir, why);
        return 1;
    }
    if (c->dry) {
        note_step(c, name, "planned", 0, dir, NULL);
        return 1;
    }
    double t = tw_now();
    int rc = run_child(c, args, true);
    *secs = tw_now() - t;
    if (rc != 0) {
        fmt(why, sizeof why, "exit code %d", rc);
        note_step(c, name, "failed", *secs, dir, why);
        return 2;
    }
    note_step(c, name, "ran", *secs, dir, NULL);
    c->ran++;
    return 0;
}

static int run(cli_args *a)
{
    dctx c = {.a = a, .task = a->pos[0], .out = cli_str(a, "out"), .quiet = a->quiet, .dry = cli_flag(a, "dry-run")};
    if (!c.out) return cli_usage_error(a->cmd, "missing -o DIR");
    if (strlen(c.out) > 512) return cli_usage_error(a->cmd, "-o: the directory path is longer than 512 bytes");
    if (cli_given(a, "budget") && (c.budget = parse_duration(cli_str(a, "budget"))) <= 0)
        return cli_usage_error(a->cmd, "--budget: expected a duration such as 90s, 30m or 2h, got '%s'", cli_str(a, "budget"));
    char steps[8][32], strats[8][32], ks[8][32], curve[16][32];
    size_t n_steps = split_list(cli_str(a, "steps"), steps, 8), n_strat = split_list(cli_str(a, "strategies"), strats, 8);
    size_t n_k = split_list(cli_str(a, "k"), ks, 8), n_curve = split_list(cli_str(a, "curve"), curve, 16);
    for (size_t i = 0; i < n_steps; i++)
        if (strcmp(steps[i], "audit") && strcmp(steps[i], "classic") && strcmp(steps[i], "prompt") && strcmp(steps[i], "lora"))
            return cli_usage_error(a->cmd, "--steps: unknown step '%s' (audit, classic, prompt, lora)", steps[i]);
    const char *models[CLI_MAX_LIST], *lmodels[CLI_MAX_LIST];
    size_t n_models = cli_list(a, "model", models, CLI_MAX_LIST), n_lmodels = cli_list(a, "lora-model", lmodels, CLI_MAX_LIST);
    if (!n_lmodels && n_models) lmodels[n_lmodels++] = models[0];
    fmt(c.threads, sizeof c.threads, "%ld", cli_int(a, "threads"));
    static char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "tunewise decide: cannot find its own executable (/proc/self/exe)\n");
        return EXIT_RUNTIME;
    }
    self[sl] = 0;
    c.self = self;

    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    if (tw_task_load(&t, c.task, &err)) return cli_fail(&err);
    int rc = EXIT_OK;
    c.t0 = tw_now();
    c.steps = json_array();
    json_t *arms = json_array();
    tw_dataset sp[TW_SPLIT_COUNT];
    memset(sp, 0, sizeof sp);
    char p[1200], p2[1200], cfg[160], name[200];
    double secs;
    bool ready = true;
    c.ran = 0;
    if (tw_mkdir_p(c.out, &err)) {
        rc = cli_fail(&err);
        goto done;
    }
    if (tw_split_task_unchecked(&t, sp, NULL, &err)) {
        rc = cli_fail(&err);
        goto done;
    }
    /* 1. audit */
    if (has(steps, n_steps, "audit")) {
        double t1 = tw_now();
        json_t *report = NULL;
        tw_audit_params ap = tw_audit_params_for_task(&t);
        const tw_dataset *const splits[TW_SPLIT_COUNT] = {&sp[0], &sp[1], &sp[2]};
        if (tw_audit(splits, &ap, &report, &err)) {
            rc = cli_fail(&err);
            goto done;
        }
        char *js = json_dumps(report, JSON_INDENT(2));
        fmt(p, sizeof p, "%s/audit.json", c.out);
        tw_status st = js ? tw_file_write_atomic(p, js, strlen(js), &err) : tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
        free(js);
        tw_audit_level lvl = tw_audit_verdict(report);
        const char *why = NULL;
        json_t *reasons = json_object_get(json_object_get(report, "readiness"), "reasons");
        size_t i;
        json_t *r;
        json_array_foreach(reasons, i, r) {
            const char *lv = json_string_value(json_object_get(r, "level"));
            if (!why && lv && !strcmp(lv, "blocker")) why = json_string_value(json_object_get(r, "message"));
        }
        ready = lvl != TW_AUDIT_NOT_READY;
        /* the first sentence of the first blocker */
        int wl = 0;
        while (why && why[wl] && wl < 150 && !(why[wl] == '.' && (why[wl + 1] == ' ' || !why[wl + 1]))) wl++;
        fmt(name, sizeof name, "data: %s%s%.*s", tw_audit_level_str(lvl), why ? " — " : "", wl, why ? why : "");
        note_step(&c, "audit", st ? "failed" : "ran", tw_now() - t1, c.out, name);
        json_decref(report);
        if (st) {
            rc = cli_fail(&err);
            goto done;
        }
    }
    const bool arms_ok = ready || cli_flag(a, "ignore-audit");
    const char *test_limit = cli_str(a, "test-limit"), *dev_limit = cli_str(a, "dev-limit");
    fmt(p2, sizeof p2, "%s/cache.db", c.out);
    char cache[1200];
    fmt(cache, sizeof cache, "%s", p2);
    /* 2. classic */
    if (has(steps, n_steps, "classic")) {
        if (t.type != TW_TASK_CLASSIFY) {
            note_step(&c, "classic", "skipped", 0, NULL, "the classic arm classifies; this task is not a classification");
        } else {
            fmt(p, sizeof p, "%s/classic", c.out);
            tw_mkdir_p(p, &err);
            fmt(p, sizeof p, "%s/classic/model.bin", c.out);
            char dir[1200];
            fmt(dir, sizeof dir, "%s/classic", c.out);
            const char *tr[] = {"classic", "train", "-q", "--task", c.task, "-o", p, "-j", c.threads, NULL};
            int s = step(&c, "classic train", dir, "model.bin", 0, tr, &secs);
            if (s == 0) {
                fmt(dir, sizeof dir, "%s/classic/test", c.out);
                const char *ev[] = {"eval", "-q", "--task", c.task, "--arm", "classic", "-m", p, "--split", "test",
                                    "--limit", test_limit, "-o", dir, NULL};   /* the rows every arm is scored on */
                if (step(&c, "classic test", dir, "metrics.json", 0, ev, &secs) == 0) json_array_append_new(arms, json_string(dir));
            }
            if (s == 2) rc = EXIT_RUNTIME;
        }
    }
    /* 3. prompt arms */
    if (has(steps, n_steps, "prompt")) {
        if (!arms_ok) note_step(&c, "prompt", "skipped", 0, NULL, "the audit found the data not ready (--ignore-audit runs it anyway)");
        else if (!n_models) note_step(&c, "prompt", "skipped", 0, NULL, "no --model given");
        char od[8][32];
        size_t n_out = cli_given(a, "outputs") ? split_list(cli_str(a, "outputs"), od, 8)
                                               : split_list(t.type == TW_TASK_CLASSIFY ? "score,choice"
                                                            : t.type == TW_TASK_EXTRACT ? "json" : "free", od, 8);
        for (size_t mi = 0; arms_ok && mi < n_models; mi++) {
            char tag[96], best[160] = "", dir[1200];
            model_tag(models[mi], tag, sizeof tag);
            double best_v = -INFINITY, last = 0;
            for (size_t si = 0; si < n_strat; si++) {
                const bool demos = strcmp(strats[si], "zero") != 0;
                for (size_t ki = 0; ki < (demos ? n_k : 1); ki++)
                    for (size_t oi = 0; oi < n_out; oi++) {
                        const char *k = demos ? ks[ki] : "0";
                        fmt(cfg, sizeof cfg, "%s-k%s-%s", strats[si], k, od[oi]);
                        fmt(dir, sizeof dir, "%s/prompt/%s/dev/%s", c.out, tag, cfg);
                        fmt(name, sizeof name, "prompt %s dev %s", tag, cfg);
                        const char *ar[] = {"prompt", "-q", "--task", c.task, "-m", models[mi], "--strategy", strats[si], "--k", k,
                                            "--output", od[oi], "--split", "dev", "--limit", dev_limit, "-o", dir, "--cache",
                                            cache, "-j", c.threads, "--bootstrap", "200", NULL};
                        int s = step(&c, name, dir, "metrics.json", last, ar, &secs);
                        if (secs > 0) last = secs;
                        double v = s == 0 ? run_metric(dir) : NAN;
                        if (isfinite(v) && v > best_v) best_v = v, fmt(best, sizeof best, "%s", cfg);
                    }
            }
            if (!best[0]) continue;
            /* the best on test: parse the config back */
            char bs[32] = "", bk[32] = "", bo[32] = "";
            sscanf(best, "%31[^-]-k%31[^-]-%31s", bs, bk, bo);
            fmt(dir, sizeof dir, "%s/prompt/%s/test-%s", c.out, tag, best);
            fmt(name, sizeof name, "prompt %s test %s", tag, best);
            const char *ar[] = {"prompt", "-q", "--task", c.task, "-m", models[mi], "--strategy", bs, "--k", bk, "--output", bo,
                                "--split", "test", "--limit", test_limit, "-o", dir, "--cache", cache, "-j", c.threads, NULL};
            if (step(&c, name, dir, "metrics.json", 0, ar, &secs) == 0) json_array_append_new(arms, json_string(dir));
        }
    }
    /* 4. LoRA arms: the learning curve on dev, the best size on test */
    if (has(steps, n_steps, "lora")) {
        if (!arms_ok) note_step(&c, "lora", "skipped", 0, NULL, "the audit found the data not ready (--ignore-audit runs it anyway)");
        else if (!n_lmodels) note_step(&c, "lora", "skipped", 0, NULL, "no --model or --lora-model given");
        const size_t n_train = sp[TW_SPLIT_TRAIN].n;
        for (size_t mi = 0; arms_ok && mi < n_lmodels; mi++) {
            char tag[96], dir[1200], best_dir[1200] = "", best_n[32] = "";
            model_tag(lmodels[mi], tag, sizeof tag);
            double best_v = -INFINITY, last_secs = 0, last_n = 0;
            json_t *curve_j = json_array();
            bool did_all = false;
            for (size_t ci = 0; ci < n_curve && !did_all; ci++) {
                long want = strtol(curve[ci], NULL, 10);
                size_t nn = want <= 0 || (size_t)want >= n_train ? n_train : (size_t)want;
                if (nn == n_train) did_all = true;
                char ns[32];
                fmt(ns, sizeof ns, "%zu", nn);
                fmt(dir, sizeof dir, "%s/lora/%s/n%zu", c.out, tag, nn);
                fmt(name, sizeof name, "lora %s train n=%zu", tag, nn);
                fmt(p, sizeof p, "%s/checkpoint.bin", dir);
                const bool resume = exists(p);
                /* the short system prompt: the fine-tune learns the labels / format, and every
                 * call saves the label list's tokens (prompt --adapter follows train.json) */
                const char *ar[] = {"tune", "-q", "--task", c.task, "-m", lmodels[mi], "--train-max", ns, "--prompt", "short", "-o", dir,
                                    "--epochs", cli_str(a, "tune-epochs"), "--max-steps", cli_str(a, "tune-max-steps"),
                                    "--threads", c.threads, resume ? "--resume" : NULL, NULL};
                double est = last_n > 0 ? last_secs * (double)nn / last_n : 0;
                int s = step(&c, name, dir, "adapter.gguf", est, ar, &secs);
                if (secs > 0) last_secs = secs, last_n = (double)nn;
                if (s != 0) continue;
                json_t *tj = load(dir, "train.json");
                json_t *bv = json_object_get(json_object_get(tj, "best"), "dev_metric");
                json_t *bl = json_object_get(json_object_get(tj, "best"), "dev_loss");
                /* classify: the dev metric; otherwise the (negated) dev loss ranks the sizes */
                double v = json_is_number(bv) ? json_number_value(bv) : json_is_number(bl) ? -json_number_value(bl) : NAN;
                json_array_append_new(curve_j, json_pack("{s:I, s:o, s:o}", "train_rows", (json_int_t)nn, "dev_metric",
                                                         json_is_number(bv) ? json_real(json_number_value(bv)) : json_null(),
                                                         "dev_loss", json_is_number(bl) ? json_real(json_number_value(bl)) : json_null()));
                json_decref(tj);
                if (isfinite(v) && v > best_v) best_v = v, fmt(best_dir, sizeof best_dir, "%s", dir), fmt(best_n, sizeof best_n, "%zu", nn);
            }
            json_array_append_new(c.steps, json_pack("{s:s, s:s, s:o}", "step", "lora curve", "model", tag, "curve", curve_j));
            if (!best_dir[0]) continue;
            fmt(p, sizeof p, "%s/adapter.gguf", best_dir);
            fmt(dir, sizeof dir, "%s/lora/%s/test-n%s", c.out, tag, best_n);
            fmt(name, sizeof name, "lora %s test n=%s", tag, best_n);
            const char *mode = t.type == TW_TASK_CLASSIFY ? "score" : t.type == TW_TASK_EXTRACT ? "json" : "free";
            const char *ar[] = {"prompt", "-q", "--task", c.task, "-m", lmodels[mi], "--adapter", p, "--strategy", "zero",
                                "--output", mode, "--split", "test", "--limit", test_limit, "-o", dir, "--cache", cache,
                                "-j", c.threads, NULL};
            if (step(&c, name, dir, "metrics.json", 0, ar, &secs) == 0) json_array_append_new(arms, json_string(dir));
        }
    }
    /* 5. verdict, report, history */
    if (c.dry) {
        printf("plan written to stderr (dry run): nothing was run\n");
    } else if (json_array_size(arms) == 0) {
        note_step(&c, "verdict", "skipped", 0, NULL, "no arm finished on the test split: nothing to compare");
        printf("tunewise decide: no arm was evaluated, so there is no verdict (see %s/decide.json)\n", c.out);
        if (rc == EXIT_OK) rc = EXIT_RUNTIME;
    } else {
        const char *vargs[64], *hargs[64];
        int nv = 0, nh = 0;
        fmt(p, sizeof p, "%s/audit.json", c.out);
        vargs[nv++] = "verdict";
        vargs[nv++] = "--task";
        vargs[nv++] = c.task;
        if (exists(p)) vargs[nv++] = "--audit", vargs[nv++] = p;
        vargs[nv++] = "-o";
        vargs[nv++] = c.out;
        hargs[nh++] = "history";
        hargs[nh++] = "add";
        fmt(p2, sizeof p2, "%s/history.db", c.out);
        hargs[nh++] = "-q";
        hargs[nh++] = "--db";
        hargs[nh++] = p2;
        size_t i;
        json_t *d;
        json_array_foreach(arms, i, d) if (nv < 60) vargs[nv++] = hargs[nh++] = json_string_value(d);
        vargs[nv] = NULL;
        double t1 = tw_now();
        int vr = run_child(&c, vargs, false);
        note_step(&c, "verdict", vr ? "failed" : "ran", tw_now() - t1, c.out, NULL);
        json_t *vj = vr ? NULL : load(c.out, "verdict.json");
        const char *summary = json_string_value(json_object_get(vj, "summary"));
        if (summary) hargs[nh++] = "--verdict", hargs[nh++] = summary;
        hargs[nh] = NULL;
        if (!vr && c.ran == 0 && exists(p2)) {
            note_step(&c, "history", "reused", 0, p2, "every arm was reused: no new history row");
        } else if (!vr) {
            t1 = tw_now();
            int hr = run_child(&c, hargs, true);
            note_step(&c, "history", hr ? "failed" : "ran", tw_now() - t1, p2, NULL);
        }
        json_decref(vj);
        if (vr && rc == EXIT_OK) rc = EXIT_RUNTIME;
    }
    {   /* what ran, what was skipped and why */
        size_t i, n_skip = 0;
        json_t *s;
        json_array_foreach(c.steps, i, s) {
            const char *stt = json_string_value(json_object_get(s, "status"));
            n_skip += stt && !strcmp(stt, "skipped");
        }
        json_t *doc = json_pack("{s:s, s:o, s:f, s:O, s:O}", "task", c.task, "budget_s", c.budget > 0 ? json_real(c.budget) : json_null(),
                                "seconds", elapsed(&c), "arms", arms, "steps", c.steps);
        char *js = json_dumps(doc, JSON_INDENT(2));
        fmt(p, sizeof p, "%s/decide.json", c.out);
        if (!js || tw_file_write_atomic(p, js, strlen(js), &err)) rc = cli_fail(&err);
        free(js);
        json_decref(doc);
        if (n_skip && !c.quiet)
            fprintf(stderr, "decide: %zu step(s) skipped; the verdict compares only the arms that ran (%s/decide.json)\n", n_skip,
                    c.out);
    }
done:
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    json_decref(arms);
    json_decref(c.steps);
    tw_task_free(&t);
    return rc;
}

const cli_cmd cmd_decide = {
    .name = "decide",
    .summary = "run the whole comparison (audit, classic, prompt search, LoRA curve) and print the verdict",
    .usage = "TASK -o DIR [-m MODEL]... [--budget 30m] [options]",
    .details = "Each step is a run directory under DIR, written by the commands 'classic train', 'eval',\n"
               "'prompt', 'tune' and 'verdict' (run as child processes), so a re-run reuses every finished\n"
               "step and resumes an interrupted one. DIR/decide.json lists each step: ran, reused,\n"
               "skipped (with the reason, e.g. the budget) or failed. docs/decision.md has the details.",
    .opts = OPTS,
    .min_pos = 1,
    .max_pos = 1,
    .run = run,
};
