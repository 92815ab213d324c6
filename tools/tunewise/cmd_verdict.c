/* cmd_verdict.c — `tunewise verdict --task T RUN... [--audit AUDIT.json] -o DIR`: the
 * decision over finished runs (any arms: classic, prompt, tuned, remote). Loads the evidence
 * from the run directories (src/decide/evidence.h) and the audit, prices every arm from the
 * task (or the preset table), applies the written rules (src/decide/verdict.h, documented in
 * docs/decision.md), prints the verdict, and writes DIR/verdict.json, DIR/verdict.txt and the
 * report (DIR/report.md, DIR/report.html) with the verdict in it.
 * Deliberately not here: running the arms (`tunewise eval`, `prompt`, `tune`), the rules. */
#include "cli.h"
#include "decide/evidence.h"
#include "decide/verdict.h"
#include "report/report.h"
#include "task/audit.h"
#include "task/split.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"task", 't', CLI_STR, "TASK", "task file: metric, target, volume, prices", NULL},
    {"audit", 0, CLI_STR, "FILE", "audit report (tunewise audit --json); default: audit the task's data now", NULL},
    {"out", 'o', CLI_STR, "DIR", "where verdict.json, verdict.txt, report.md and report.html go", NULL},
    {"json", 0, CLI_FLAG, NULL, "print the verdict as JSON", NULL},
    {0},
};

static int run(cli_args *a)
{
    const char *task_path = cli_str(a, "task"), *out = cli_str(a, "out");
    if (!task_path) return cli_usage_error(a->cmd, "missing --task TASK");
    if (!out) return cli_usage_error(a->cmd, "missing --out DIR");
    if (a->npos < 1) return cli_usage_error(a->cmd, "give at least one run directory");
    tw_error err;
    tw_error_clear(&err);
    tw_task t;
    if (tw_task_load(&t, task_path, &err)) return cli_fail(&err);
    tw_evidence ev;
    tw_verdict v;
    tw_report rep;
    memset(&ev, 0, sizeof ev);
    memset(&v, 0, sizeof v);
    memset(&rep, 0, sizeof rep);
    tw_buf text = {0}, path = {0};
    json_t *vj = NULL;
    tw_status st = tw_evidence_init(&ev, &err);
    for (int i = 0; !st && i < a->npos; i++) st = tw_evidence_add_run(&ev, a->pos[i], NULL, &err);
    if (!st && cli_given(a, "audit")) {
        st = tw_evidence_load_audit(&ev, cli_str(a, "audit"), &err);
    } else if (!st) {   /* audit the task's data on the split every arm used */
        tw_dataset sp[TW_SPLIT_COUNT];
        memset(sp, 0, sizeof sp);
        json_t *report = NULL;
        st = tw_split_task_unchecked(&t, sp, NULL, &err);
        if (!st) {
            tw_audit_params ap = tw_audit_params_for_task(&t);
            const tw_dataset *const splits[TW_SPLIT_COUNT] = {&sp[0], &sp[1], &sp[2]};
            st = tw_audit(splits, &ap, &report, &err);
        }
        if (!st) st = tw_evidence_set_audit(&ev, report, "audit", &err);
        json_decref(report);
        for (int s = 0; s < TW_SPLIT_COUNT; s++) tw_dataset_free(&sp[s]);
    }
    if (!st) st = tw_evidence_apply_task(&ev, &t, &err);
    if (!st) st = tw_verdict_decide(&v, &ev, &err);
    if (!st) st = tw_verdict_text(&text, &v, &ev, &err);
    if (!st) st = tw_verdict_json(&vj, &v, &ev, &err);
    if (!st) st = tw_mkdir_p(out, &err);
    if (!st) {
        char *js = json_dumps(vj, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        tw_buf_printf(&path, "%s/verdict.json", out);
        st = js ? tw_file_write_atomic(path.data, js, strlen(js), &err) : tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
        free(js);
    }
    if (!st) {
        tw_buf_clear(&path);
        tw_buf_printf(&path, "%s/verdict.txt", out);
        st = tw_file_write_atomic(path.data, text.data ? text.data : "", text.len, &err);
    }
    /* the report: the same runs, with the verdict and its reasons */
    if (!st) st = tw_report_init(&rep, t.name ? t.name : task_path, &err);
    for (int i = 0; !st && i < a->npos; i++) st = tw_report_add_run(&rep, a->pos[i], &err);
    if (!st && v.summary) st = tw_report_set_verdict(&rep, v.summary, &err);
    for (int r = 0; !st && r < TW_RULE_COUNT; r++)
        if (v.rules[r].fired && v.rules[r].text) st = tw_report_add_reason(&rep, v.rules[r].text, &err);
    for (size_t i = 0; !st && i < v.n_changes; i++) st = tw_report_add_reason(&rep, v.changes[i], &err);
    if (!st) st = tw_report_write_dir(&rep, out, &err);
    if (!st) {
        if (cli_flag(a, "json")) cli_print_json(vj);
        else {
            fputs(text.data ? text.data : "", stdout);
            printf("wrote %s/{verdict.json,verdict.txt,report.md,report.html}\n", out);
        }
    }
    json_decref(vj);
    tw_buf_free(&text);
    tw_buf_free(&path);
    tw_report_free(&rep);
    tw_verdict_free(&v);
    tw_evidence_free(&ev);
    tw_task_free(&t);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_verdict = {
    .name = "verdict",
    .summary = "decide over finished runs: prompt, fine-tune, classic or neither — with reasons and costs",
    .usage = "--task TASK RUN... -o DIR [--audit AUDIT.json] [--json]",
    .details = "Each RUN is a run directory written by 'tunewise eval', 'prompt' (local, remote or with\n"
               "--adapter). The rules, in order, are in docs/decision.md; every rule prints its evidence\n"
               "line whether it fires or not.",
    .opts = OPTS,
    .min_pos = 1,
    .max_pos = 64,
    .run = run,
};
