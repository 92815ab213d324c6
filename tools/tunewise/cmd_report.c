/* cmd_report.c — `tunewise report RUN... -o DIR`: read finished run directories, print the
 * comparison table, and write DIR/report.md and DIR/report.html (self-contained).
 * Deliberately not here: verdicts and cost curves (the decide command fills those). */
#include "cli.h"
#include "report/history.h"
#include "report/report.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

static const cli_opt REPORT_OPTS[] = {
    {"out", 'o', CLI_STR, "DIR", "output directory for report.md and report.html (created)", NULL},
    {"title", 0, CLI_STR, "TEXT", "report title", "tunewise report"},
    {"target", 0, CLI_NUM, "X", "target value of the primary metric (drawn as a line)", NULL},
    {"history", 0, CLI_STR, "FILE", "also record the runs in this history file (see 'tunewise history')", NULL},
    {0},
};

static int run_report(cli_args *a)
{
    const char *out = cli_str(a, "out");
    if (!out) return cli_usage_error(a->cmd, "missing --out DIR");
    tw_error err;
    tw_error_clear(&err);
    tw_report r;
    if (tw_report_init(&r, cli_str(a, "title"), &err)) return cli_fail(&err);
    if (cli_given(a, "target")) r.target = cli_num(a, "target");
    for (int i = 0; i < a->npos; i++)
        if (tw_report_add_run(&r, a->pos[i], &err)) {
            tw_report_free(&r);
            return cli_fail(&err);
        }
    tw_buf table = {0};
    tw_status st = tw_report_table(&table, &r, &err);
    st = st ? st : tw_report_write_dir(&r, out, &err);
    if (!st && cli_str(a, "history")) {
        tw_history *h;
        int64_t id = 0;
        st = tw_history_open(&h, cli_str(a, "history"), &err);
        st = st ? st : tw_history_add(h, &r, NULL, (double)time(NULL), &id, &err);
        tw_history_close(h);
        if (!st && !a->quiet) {
            if (id) fprintf(stderr, "recorded as run %lld in %s\n", (long long)id, cli_str(a, "history"));
            else fprintf(stderr, "already recorded in %s\n", cli_str(a, "history"));
        }
    }
    if (!st) {
        fputs(table.data, stdout);
        if (!a->quiet) fprintf(stderr, "wrote %s/report.md and %s/report.html\n", out, out);
    }
    tw_buf_free(&table);
    tw_report_free(&r);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_report = {
    "report",
    "write report.md and a self-contained report.html comparing finished runs",
    "RUN... -o DIR [options]",
    "Each RUN is a finished run directory (predictions.jsonl, metrics.json, run.json: see\n"
    "docs/eval.md). Prints the comparison table and writes DIR/report.md and DIR/report.html\n"
    "(inline SVG charts, no network). Details: docs/reports.md.",
    REPORT_OPTS, 1, CLI_MAX_POS, run_report,
};
