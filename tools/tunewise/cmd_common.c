/* cmd_common.c — helpers shared by commands: accept TASK (a task.yaml) or DATA (plain
 * data files) as the same argument, and load a task's splits. */
#include "cli.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

bool cli_is_task_file(const char *path)
{
    return ends_with(path, ".yaml") || ends_with(path, ".yml");
}

int cli_task_from_data(tw_task *t, const cli_args *a, const char *train, tw_error *err)
{
    memset(t, 0, sizeof *t);
    const char *type = cli_str(a, "type");
    if (!type || strcmp(type, "classify") == 0) t->type = TW_TASK_CLASSIFY;
    else if (strcmp(type, "extract") == 0) t->type = TW_TASK_EXTRACT;
    else if (strcmp(type, "generate") == 0) t->type = TW_TASK_GENERATE;
    else return cli_usage_error(a->cmd, "unknown --type '%s' (expected classify, extract or generate)", type);
    tw_fields def = tw_fields_default();
    const char *in = cli_str(a, "input-field"), *out = cli_str(a, "output-field");
    char *dup = tw_strdup(train, err);
    if (!dup) return cli_fail(err);
    t->name = tw_strdup(basename(dup), err);
    free(dup);
    t->path = tw_strdup(train, err);
    t->dir = tw_strdup(".", err);
    t->data[TW_SPLIT_TRAIN] = tw_strdup(train, err);
    if (cli_str(a, "dev")) t->data[TW_SPLIT_DEV] = tw_strdup(cli_str(a, "dev"), err);
    if (cli_str(a, "test")) t->data[TW_SPLIT_TEST] = tw_strdup(cli_str(a, "test"), err);
    t->fields.id = tw_strdup(def.id, err);
    t->fields.input = tw_strdup(in ? in : def.input, err);
    t->fields.output = tw_strdup(out ? out : def.output, err);
    t->fields.references = tw_strdup(def.references, err);
    t->fields.slice = tw_strdup(def.slice, err);
    t->metric = tw_strdup(t->type == TW_TASK_CLASSIFY ? "accuracy" : t->type == TW_TASK_EXTRACT ? "field_f1" : "bleu", err);
    t->target = NAN;
    t->monthly_volume = NAN;
    t->seed = 1;
    t->dev_fraction = 0.1;
    t->test_fraction = 0.2;
    if (!t->name || !t->path || !t->dir || !t->data[TW_SPLIT_TRAIN] || !t->fields.input || !t->fields.output || !t->metric) {
        tw_task_free(t);
        tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        return cli_fail(err);
    }
    return -1;
}

int cli_load_task_arg(tw_task *t, const cli_args *a, const char *arg, tw_error *err)
{
    if (cli_is_task_file(arg)) {
        if (tw_task_load(t, arg, err)) return cli_fail(err);
        return -1;
    }
    return cli_task_from_data(t, a, arg, err);
}
