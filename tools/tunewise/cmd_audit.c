/* cmd_audit.c — `tunewise audit TASK|DATA`: is this data ready to support a conclusion?
 * Loads the task's splits (the same ones every arm uses) and prints the audit table or
 * its JSON. Exit 0 whatever the verdict: the audit informs, the gate decides. */
#include "cli.h"
#include "task/audit.h"
#include "task/split.h"

#include <stdlib.h>

static const cli_opt OPTS[] = {
    {"json", 0, CLI_FLAG, NULL, "print the report as JSON", NULL},
    {"type", 0, CLI_STR, "TYPE", "DATA form: classify|extract|generate", "classify"},
    {"dev", 0, CLI_STR, "FILE", "DATA form: dev split file", NULL},
    {"test", 0, CLI_STR, "FILE", "DATA form: test split file", NULL},
    {"input-field", 0, CLI_STR, "NAME", "DATA form: field holding the input", "input"},
    {"output-field", 0, CLI_STR, "NAME", "DATA form: field holding the output", "output"},
    {"seed", 0, CLI_INT, "N", "seed for near-duplicate detection (MinHash)", "1"},
    {"no-near-dup", 0, CLI_FLAG, NULL, "skip near-duplicate (MinHash) leakage detection", NULL},
    {0},
};

static int run(cli_args *a)
{
    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    int rc = cli_load_task_arg(&t, a, a->pos[0], &err);
    if (rc >= 0) return rc;
    tw_dataset sp[TW_SPLIT_COUNT];
    json_t *info = NULL, *report = NULL;
    tw_status st = tw_split_task_unchecked(&t, sp, &info, &err);
    if (st) {
        tw_task_free(&t);
        return cli_fail(&err);
    }
    tw_audit_params p = tw_audit_params_for_task(&t);
    p.seed = (uint64_t)cli_int(a, "seed");
    if (cli_flag(a, "no-near-dup")) p.near_dup_enabled = false;
    const tw_dataset *ptrs[TW_SPLIT_COUNT];
    for (int s = 0; s < TW_SPLIT_COUNT; s++) ptrs[s] = sp[s].n ? &sp[s] : NULL;
    st = tw_audit(ptrs, &p, &report, &err);
    if (!st) {
        json_object_set(report, "split", info);
        if (cli_flag(a, "json")) {
            cli_print_json(report);
        } else {
            tw_buf out = {0};
            printf("audit of %s (%s, split: %s)\n", t.name, tw_task_type_str(t.type),
                   json_string_value(json_object_get(info, "mode")));
            if (tw_audit_format(report, &out) == TW_OK) fputs(out.data ? out.data : "", stdout);
            tw_buf_free(&out);
        }
    }
    json_decref(report);
    json_decref(info);
    for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_audit = {
    .name = "audit",
    .summary = "audit labeled data: size, balance, duplicates, conflicts, leakage, readiness",
    .usage = "TASK|DATA [options]",
    .details = "TASK is a task file (.yaml); DATA is a train file (add --dev/--test for the other\n"
               "splits; without --test a seeded test split is carved from it). The audit runs on\n"
               "exactly the split every arm uses. Readiness thresholds: docs/audit.md.",
    .opts = OPTS,
    .min_pos = 1,
    .max_pos = 1,
    .run = run,
};
