/* cmd_eval.c — `tunewise eval --task T --arm classic --model M -o RUN/`: run an arm over a
 * split of the task through the evaluation runner (src/eval/runner.h): predictions.jsonl,
 * metrics.json (metrics with bootstrap CIs) and run.json in RUN/, resumable after an
 * interruption, model calls cached in SQLite with --cache. Prints the score table.
 * Deliberately not here: the runner's logic; arms other than classic arrive with their
 * own issues (prompt, LoRA) and plug in at make_arm(). */
#include "cli.h"
#include "eval/runner.h"
#include "task/split.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file", NULL},
    {"arm", 'a', CLI_STR, "ARM", "which arm: classic", "classic"},
    {"model", 'm', CLI_STR, "MODEL", "the arm's model (classic: a file from 'classic train')", NULL},
    {"split", 's', CLI_STR, "SPLIT", "train|dev|test", "test"},
    {"out", 'o', CLI_STR, "DIR", "run directory (created; an interrupted run there is resumed)", NULL},
    {"force", 0, CLI_FLAG, NULL, "discard what DIR holds (journal or finished run) and start over", NULL},
    {"cache", 0, CLI_STR, "FILE", "SQLite cache of model calls (arms that call models use it)", NULL},
    {"batch", 0, CLI_INT, "N", "rows per batched prediction call when the arm supports it (1: one at a time)", "1"},
    {"sync-every", 0, CLI_INT, "N", "fsync the journal every N rows", "16"},
    {"bootstrap", 'b', CLI_INT, "N", "bootstrap replicates for CIs (0: none)", "1000"},
    {"seed", 0, CLI_INT, "N", "seed (bootstrap; handed to the arm)", "1"},
    {"limit", 0, CLI_INT, "N", "evaluate only the first N rows of the split (0: all; as 'prompt --limit', so arms share rows)", "0"},
    {"json", 0, CLI_FLAG, NULL, "print the metrics report as JSON", NULL},
    {0},
};

/* Option lookups that also work when the running command's table lacks the option
 * (`classic eval` runs this command's code with a smaller table): its default then. */
static const char *str_opt(const cli_args *a, const char *name, const char *def)
{
    const char *s = cli_str(a, name);
    return s ? s : def;
}

static long int_opt(const cli_args *a, const char *name, long def)
{
    const char *s = cli_str(a, name);
    return s ? strtol(s, NULL, 10) : def;
}

static int make_arm(const cli_args *a, const tw_task *t, tw_eval_arm **arm, tw_error *err)
{
    const char *name = str_opt(a, "arm", "classic");
    if (strcmp(name, "classic") == 0) {
        if (t->type != TW_TASK_CLASSIFY)
            return cli_usage_error(a->cmd, "the classic arm needs a classify task; %s is %s", t->path,
                                   tw_task_type_str(t->type));
        if (!cli_given(a, "model")) return cli_usage_error(a->cmd, "--arm classic needs --model MODEL (from 'classic train')");
        if (tw_eval_arm_classic_open(arm, cli_str(a, "model"), err)) return cli_fail(err);
        return -1;
    }
    return cli_usage_error(a->cmd, "unknown --arm '%s' (expected classic)", name);
}

static int run(cli_args *a)
{
    const char *task = cli_str(a, "task"), *out = cli_str(a, "out");
    if (!task) return cli_usage_error(a->cmd, "missing --task TASK");
    if (!out) return cli_usage_error(a->cmd, "missing --out DIR");
    int split = -1;
    for (int s = 0; s < TW_SPLIT_COUNT; s++)
        if (strcmp(str_opt(a, "split", "test"), tw_split_name((tw_split_id)s)) == 0) split = s;
    if (split < 0)
        return cli_usage_error(a->cmd, "unknown --split '%s' (expected train, dev or test)", str_opt(a, "split", "test"));
    if (int_opt(a, "bootstrap", 1000) < 0) return cli_usage_error(a->cmd, "--bootstrap must be >= 0");
    if (int_opt(a, "limit", 0) < 0) return cli_usage_error(a->cmd, "--limit must be >= 0");
    if (int_opt(a, "batch", 1) < 1) return cli_usage_error(a->cmd, "--batch must be >= 1");
    if (int_opt(a, "sync-every", 16) < 1) return cli_usage_error(a->cmd, "--sync-every must be >= 1");

    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    if (tw_task_load(&t, task, &err)) return cli_fail(&err);
    tw_eval_arm *arm = NULL;
    int rc = make_arm(a, &t, &arm, &err);
    if (rc >= 0) { tw_task_free(&t); return rc; }

    tw_dataset sp[TW_SPLIT_COUNT];
    memset(sp, 0, sizeof sp);
    char **labels = NULL;
    size_t n_labels = 0;
    json_t *schema = NULL, *ctx = NULL;
    tw_cache *cache = NULL;
    tw_eval_result res;
    memset(&res, 0, sizeof res);
    tw_eval_params p = tw_eval_default_params();
    tw_status st = tw_split_task(&t, sp, NULL, &err);
    const tw_dataset *ds = &sp[split];
    if (!st && ds->n == 0)
        st = tw_error_set(&err, TW_ERR_INVALID, "%s: the %s split is empty", t.path, tw_split_name((tw_split_id)split));
    /* scoring exactly as `tunewise score --task` does: the task's labels, else train's */
    p.score.task_type = (int)t.type;
    p.score.primary = t.metric;
    p.score.bootstrap = (int)int_opt(a, "bootstrap", 1000);
    p.score.seed = (uint64_t)int_opt(a, "seed", 1);
    if (!st && t.type == TW_TASK_CLASSIFY) {
        if (t.n_labels) {
            p.score.labels = (const char *const *)t.labels;
            p.score.n_labels = t.n_labels;
        } else if (!(st = tw_dataset_labels(&sp[TW_SPLIT_TRAIN], &labels, &n_labels, &err))) {
            p.score.labels = (const char *const *)labels;
            p.score.n_labels = n_labels;
        }
    }
    if (!st && t.schema_path) {
        json_error_t je;
        if (!(schema = json_load_file(t.schema_path, 0, &je)))
            st = tw_error_set(&err, TW_ERR_PARSE, "%s:%d:%d: invalid JSON schema: %s", t.schema_path, je.line, je.column,
                              je.text);
        p.score.schema = schema;
    }
    if (!st && cli_given(a, "cache")) st = tw_cache_open(&cache, cli_str(a, "cache"), &err);
    if (!st) {
        ctx = json_pack("{s:s, s:s, s:s, s:s?}", "task", t.path, "task_name", t.name ? t.name : "", "split",
                        tw_split_name((tw_split_id)split), "model", cli_str(a, "model"));
        p.context = ctx;
        p.cache = cache;
        p.seed = (uint64_t)int_opt(a, "seed", 1);
        p.batch_size = (size_t)int_opt(a, "batch", 1);
        p.sync_every = (size_t)int_opt(a, "sync-every", 16);
        p.force = cli_flag(a, "force");
        p.progress = !a->quiet;
        const size_t n_rows = cli_int(a, "limit") > 0 && (size_t)cli_int(a, "limit") < ds->n ? (size_t)cli_int(a, "limit") : ds->n;
        st = tw_eval_run(arm, ds->rows, n_rows, out, &p, &res, &err);
    }
    if (!st) {
        if (cli_flag(a, "json")) {
            cli_print_json(res.metrics);
        } else {
            printf("%s arm on the %s split of %s (%zu rows", arm->ops->name, tw_split_name((tw_split_id)split),
                   t.name ? t.name : t.path, res.n_rows);
            if (res.n_resumed) printf("; %zu resumed, %zu predicted now", res.n_resumed, res.n_predicted);
            if (cache) printf("; cache %zu hits, %zu misses", res.cache_hits, res.cache_misses);
            printf(")\n");
            tw_buf tb = {0};
            if (tw_score_format_table(res.metrics, &tb) == TW_OK && tb.data) fputs(tb.data, stdout);
            tw_buf_free(&tb);
            printf("wrote %s/{predictions.jsonl,metrics.json,run.json}\n", out);
        }
    }
    json_decref(res.metrics);
    json_decref(ctx);
    json_decref(schema);
    tw_cache_close(cache);
    tw_labels_free(labels, n_labels);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_eval_arm_free(arm);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_eval = {
    .name = "eval",
    .summary = "run an arm over a split: predictions, metrics with CIs, run record (resumable)",
    .usage = "--task TASK --arm classic -m MODEL -o DIR [options]",
    .details = "Writes DIR/predictions.jsonl, DIR/metrics.json and DIR/run.json. While running, finished\n"
               "rows go to DIR/predictions.partial.jsonl; run the same command again after an\n"
               "interruption and it resumes there (a different arm configuration or data is an error:\n"
               "use a fresh DIR or --force). Details: docs/eval.md.",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run,
};
