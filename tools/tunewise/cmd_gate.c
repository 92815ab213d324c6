/* cmd_gate.c — `tunewise gate RUN [--baseline RUN2|last] --min accuracy=0.9 ...`: the CI
 * gate. Prints every check with its numbers; exit 0 when all pass, 1 when one fails,
 * 2 for bad input. Optional JUnit XML for CI systems.
 * Deliberately not here: the checks themselves (src/report/gate.c). */
#include "cli.h"
#include "report/gate.h"
#include "report/history.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt GATE_OPTS[] = {
    {"run", 'r', CLI_STR, "DIR", "the run to check (or give it as the argument)", NULL},
    {"baseline", 'b', CLI_STR, "RUN|last", "compare with this run directory, or the last recorded run of the same arm in the history", NULL},
    {"db", 0, CLI_STR, "FILE", "history file for --baseline last (default: history.db beside the run directory)", NULL},
    {"min", 0, CLI_LIST, "METRIC=X", "fail when METRIC < X", NULL},
    {"max-drop", 0, CLI_NUM, "D", "allowed drop of the primary metric vs the baseline; a larger drop fails when significant", "0"},
    {"max-p95-ms", 0, CLI_NUM, "MS", "fail when the p95 latency per call exceeds MS", NULL},
    {"max-cost-per-call", 0, CLI_NUM, "USD", "fail when the mean cost per call exceeds USD", NULL},
    {"alpha", 0, CLI_NUM, "A", "significance level of the drop test", "0.05"},
    {"strict", 0, CLI_FLAG, NULL, "no noise allowance: any drop beyond --max-drop fails, --min applies to the CI lower bound", NULL},
    {"junit", 0, CLI_STR, "FILE", "also write the checks as JUnit XML", NULL},
    {0},
};

static void default_db(char *out, size_t cap, const char *run)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", run);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = '\0';
    snprintf(out, cap, "%s/history.db", dirname(tmp));
}

/* --baseline last: the newest recorded arm with the run's task and name whose predictions
 * differ from the run's own (so recording the run first does not compare it to itself). */
static int baseline_from_history(tw_report *base, const tw_rep_arm *cand, const char *db, tw_error *err)
{
    tw_history *h;
    if (!tw_file_exists(db)) {
        fprintf(stderr, "tunewise gate: --baseline last: no history at %s (record runs with 'tunewise history add')\n", db);
        return EXIT_USAGE;
    }
    if (tw_history_open(&h, db, err)) return cli_fail(err);
    int64_t before = 0, id = 0;
    int rc = -1;
    for (;;) {
        if (tw_history_find_arm(h, cand->task, cand->name, before, &id, err)) { rc = cli_fail(err); break; }
        if (!id) {
            fprintf(stderr, "tunewise gate: --baseline last: %s has no earlier run of arm '%s' (task '%s')\n", db, cand->name, cand->task);
            rc = EXIT_USAGE;
            break;
        }
        tw_report r;
        if (tw_history_load(h, id, &r, err)) { tw_report_free(&r); rc = cli_fail(err); break; }
        for (size_t i = 0; i < r.n_arms; i++)
            if (strcmp(r.arms[i].name, cand->name) == 0 && strcmp(r.arms[i].predictions_sha256, cand->predictions_sha256) != 0) {
                /* prefer the run directory itself (paired test) when it still exists */
                char p[4200];
                snprintf(p, sizeof p, "%s/predictions.jsonl", r.arms[i].run_dir ? r.arms[i].run_dir : "");
                if (r.arms[i].run_dir && tw_file_exists(p)) {
                    char dir[4096];
                    snprintf(dir, sizeof dir, "%s", r.arms[i].run_dir);
                    tw_report_free(&r);
                    if (tw_report_init(base, "baseline", err) || tw_report_add_run(base, dir, err)) { rc = cli_fail(err); goto done; }
                } else {
                    /* keep only this arm */
                    *base = r;
                    if (i != 0) { tw_rep_arm t = base->arms[0]; base->arms[0] = base->arms[i]; base->arms[i] = t; }
                }
                rc = -1;
                goto done;
            }
        tw_report_free(&r);
        before = id;
    }
done:
    tw_history_close(h);
    return rc;
}

static int run_gate(cli_args *a)
{
    const char *run = cli_str(a, "run");
    if (!run && a->npos > 0) run = a->pos[0];
    if (!run) return cli_usage_error(a->cmd, "missing RUN (a finished run directory)");
    tw_gate_opts o;
    tw_gate_default_opts(&o);
    const char *mins[TW_GATE_MAX_MIN];
    char names[TW_GATE_MAX_MIN][128];
    size_t nm = cli_list(a, "min", mins, TW_GATE_MAX_MIN);
    for (size_t i = 0; i < nm; i++) {
        const char *eq = strchr(mins[i], '=');
        char *end;
        if (!eq || eq == mins[i] || (size_t)(eq - mins[i]) >= sizeof names[i])
            return cli_usage_error(a->cmd, "--min expects METRIC=VALUE, got '%s'", mins[i]);
        snprintf(names[i], sizeof names[i], "%.*s", (int)(eq - mins[i]), mins[i]);
        double v = strtod(eq + 1, &end);
        if (!eq[1] || *end || !isfinite(v)) return cli_usage_error(a->cmd, "--min %s: '%s' is not a number", names[i], eq + 1);
        o.min_name[i] = names[i];
        o.min_value[i] = v;
    }
    o.n_min = nm;
    o.max_drop = cli_num(a, "max-drop");
    o.alpha = cli_num(a, "alpha");
    o.strict = cli_flag(a, "strict");
    if (cli_given(a, "max-p95-ms")) o.max_p95_ms = cli_num(a, "max-p95-ms");
    if (cli_given(a, "max-cost-per-call")) o.max_cost_per_call = cli_num(a, "max-cost-per-call");
    if (o.max_drop < 0) return cli_usage_error(a->cmd, "--max-drop must be >= 0");
    if (!(o.alpha > 0 && o.alpha < 1)) return cli_usage_error(a->cmd, "--alpha must be in (0, 1)");

    tw_error err;
    tw_error_clear(&err);
    tw_report cand, base;
    memset(&base, 0, sizeof base);
    if (tw_report_init(&cand, "gate", &err) || tw_report_add_run(&cand, run, &err)) {
        tw_report_free(&cand);
        return cli_fail(&err);
    }
    const char *bl = cli_str(a, "baseline");
    bool have_base = false;
    if (bl && strcmp(bl, "last") == 0) {
        char db[4200];
        if (cli_str(a, "db")) snprintf(db, sizeof db, "%s", cli_str(a, "db"));
        else default_db(db, sizeof db, run);
        int rc = baseline_from_history(&base, &cand.arms[0], db, &err);
        if (rc >= 0) { tw_report_free(&cand); return rc; }
        have_base = true;
    } else if (bl) {
        if (tw_report_init(&base, "baseline", &err) || tw_report_add_run(&base, bl, &err)) {
            tw_report_free(&cand);
            tw_report_free(&base);
            return cli_fail(&err);
        }
        have_base = true;
    }
    tw_gate_result res;
    tw_status st = tw_gate_run(&cand.arms[0], have_base ? &base.arms[0] : NULL, &o, &res, &err);
    int rc = EXIT_OK;
    if (st) rc = cli_fail(&err);
    else {
        tw_buf text = {0};
        tw_gate_text(&text, &res);
        printf("gate %s (arm %s, %s", run, cand.arms[0].name, cand.arms[0].metric_name);
        if (have_base) printf(", baseline %s", base.arms[0].run_dir ? base.arms[0].run_dir : "from history");
        printf(")\n%s", text.data ? text.data : "");
        tw_buf_free(&text);
        if (cli_str(a, "junit")) {
            tw_buf x = {0};
            if (tw_gate_junit(&x, &res, run) || tw_file_write_atomic(cli_str(a, "junit"), x.data, x.len, &err)) rc = cli_fail(&err);
            tw_buf_free(&x);
        }
        if (rc == EXIT_OK && !res.pass) rc = EXIT_GATE;
    }
    tw_report_free(&cand);
    tw_report_free(&base);
    return rc;
}

const cli_cmd cmd_gate = {
    "gate",
    "CI gate: fail (exit 1) when a run misses a threshold or regresses significantly vs a baseline",
    "RUN [--baseline RUN2|last] [--min METRIC=X]... [--max-drop D] [--max-p95-ms MS] [--max-cost-per-call USD]",
    "Checks one finished run. --min thresholds apply to the point estimate (--strict: to the\n"
    "CI's lower bound). A drop of the primary metric larger than --max-drop vs the baseline\n"
    "fails only when it is statistically significant (exact McNemar test on the paired items\n"
    "for accuracy, else a z test from the two CIs); --strict fails any such drop. Exit 0: all\n"
    "checks passed; 1: a check failed; 2: bad input. Details: docs/reports.md.",
    GATE_OPTS, 0, 1, run_gate,
};
