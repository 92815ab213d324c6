/* cmd_split.c — `tunewise split` writes the exact train/dev/test split a task uses, and
 * `tunewise validate` checks a task file and its data without writing anything. */
#include "cli.h"
#include "task/split.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt SPLIT_OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file (task.yaml)", NULL},
    {"out", 'o', CLI_STR, "DIR", "output directory (created)", NULL},
    {"format", 'f', CLI_STR, "FORMAT", "jsonl|csv|chat", "jsonl"},
    {"json", 0, CLI_FLAG, NULL, "print the split summary as JSON", NULL},
    {0},
};

static int load_splits(const cli_args *a, tw_task *t, tw_dataset sp[TW_SPLIT_COUNT], json_t **info, tw_error *err)
{
    const char *task = cli_str(a, "task");
    if (!task && a->npos > 0) task = a->pos[0];
    if (!task) return cli_usage_error(a->cmd, "missing --task TASK");
    if (tw_task_load(t, task, err)) return cli_fail(err);
    if (tw_split_task(t, sp, info, err)) {
        tw_task_free(t);
        return cli_fail(err);
    }
    return -1;
}

static void print_summary(const tw_task *t, const json_t *info)
{
    json_t *counts = json_object_get(info, "counts");
    printf("task %s (%s), split mode %s, seed %lld\n", t->name, tw_task_type_str(t->type),
           json_string_value(json_object_get(info, "mode")), (long long)json_integer_value(json_object_get(info, "seed")));
    for (int s = 0; s < TW_SPLIT_COUNT; s++)
        printf("  %-5s %7lld rows\n", tw_split_name((tw_split_id)s),
               (long long)json_integer_value(json_object_get(counts, tw_split_name((tw_split_id)s))));
    json_t *labels = json_object_get(info, "labels");
    if (json_is_array(labels))
        printf("  labels %zu%s\n", json_array_size(labels), json_is_true(json_object_get(info, "labels_inferred")) ? " (inferred from train)" : "");
    printf("  metric %s", t->metric);
    if (t->target == t->target) printf(", target %g", t->target);
    printf("\n");
}

static int run_split(cli_args *a)
{
    const char *dir = cli_str(a, "out");
    if (!dir) return cli_usage_error(a->cmd, "missing --out DIR");
    tw_format fmt;
    if (!tw_format_parse(cli_str(a, "format"), &fmt) || fmt == TW_FORMAT_AUTO)
        return cli_usage_error(a->cmd, "unknown --format '%s' (expected jsonl, csv or chat)", cli_str(a, "format"));
    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    tw_dataset sp[TW_SPLIT_COUNT];
    json_t *info = NULL;
    int rc = load_splits(a, &t, sp, &info, &err);
    if (rc >= 0) return rc;
    tw_status st = tw_mkdir_p(dir, &err);
    const char *ext = fmt == TW_FORMAT_CSV ? "csv" : "jsonl";
    for (int s = 0; s < TW_SPLIT_COUNT && !st; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.%s", dir, tw_split_name((tw_split_id)s), ext);
        tw_writer *w = NULL;
        st = tw_writer_open(&w, path, fmt, &t.fields, &err);
        if (!st && t.instructions) st = tw_writer_set_system(w, t.instructions, &err);
        for (size_t i = 0; !st && i < sp[s].n; i++) st = tw_writer_write(w, &sp[s].rows[i], &err);
        if (st) tw_writer_abort(w);
        else st = tw_writer_close(w, &err);
    }
    if (!st) {
        char path[4096];
        snprintf(path, sizeof path, "%s/split.json", dir);
        char *txt = json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        st = txt ? tw_file_write_atomic(path, txt, strlen(txt), &err) : tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
        free(txt);
    }
    if (!st) {
        if (cli_flag(a, "json")) cli_print_json(info);
        else {
            print_summary(&t, info);
            printf("wrote %s/{train,dev,test}.%s and split.json\n", dir, ext);
        }
    }
    json_decref(info);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_split = {
    .name = "split",
    .summary = "write the train/dev/test split a task uses",
    .usage = "--task TASK -o DIR [options]",
    .details = "Every arm runs on this split: seeded, stratified by label for classification,\n"
               "stable across row order, and identical inputs never straddle two splits.\n"
               "Writes DIR/train, DIR/dev, DIR/test (jsonl, csv or chat JSONL) and DIR/split.json.",
    .opts = SPLIT_OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_split,
};

static const cli_opt VALIDATE_OPTS[] = {
    {"json", 0, CLI_FLAG, NULL, "print the summary as JSON", NULL},
    {0},
};

static int run_validate(cli_args *a)
{
    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    tw_dataset sp[TW_SPLIT_COUNT];
    json_t *info = NULL;
    const char *task = a->pos[0];
    if (tw_task_load(&t, task, &err)) return cli_fail(&err);
    if (tw_split_task(&t, sp, &info, &err)) {
        tw_task_free(&t);
        return cli_fail(&err);
    }
    if (cli_flag(a, "json")) cli_print_json(info);
    else {
        print_summary(&t, info);
        printf("ok: %s is valid\n", task);
    }
    json_decref(info);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    return EXIT_OK;
}

const cli_cmd cmd_validate = {
    .name = "validate",
    .summary = "check a task file and its data (strict; errors give file:line:col)",
    .usage = "TASK [--json]",
    .opts = VALIDATE_OPTS,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_validate,
};
