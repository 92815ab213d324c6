/* cmd_history.c — `tunewise history [--db FILE] list|show ID|add RUN...|trend ARM|dashboard -o FILE`:
 * the SQLite run history (src/report/history.c).
 * Deliberately not here: the schema and queries. */
#include "cli.h"
#include "report/history.h"

#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const cli_opt HISTORY_OPTS[] = {
    {"db", 0, CLI_STR, "FILE", "history file (default: for add, history.db beside the first run directory; else ./history.db)", NULL},
    {"out", 'o', CLI_STR, "FILE", "dashboard: output HTML file", NULL},
    {"label", 0, CLI_STR, "TEXT", "add: label of the recorded run", NULL},
    {"verdict", 0, CLI_STR, "TEXT", "add: verdict text to record with the run", NULL},
    {"metric", 'm', CLI_STR, "NAME", "trend: metric (default: the arm's primary metric)", NULL},
    {"task", 't', CLI_STR, "NAME", "trend: only this task", NULL},
    {"json", 0, CLI_FLAG, NULL, "list/show/trend: print JSON", NULL},
    {0},
};

static void db_path(char *out, size_t cap, const cli_args *a, const char *first_run)
{
    if (cli_str(a, "db")) { snprintf(out, cap, "%s", cli_str(a, "db")); return; }
    if (!first_run) { snprintf(out, cap, "history.db"); return; }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", first_run);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = '\0';
    snprintf(out, cap, "%s/history.db", dirname(tmp));
}

static void fmt_time(char *b, size_t cap, double t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!isfinite(t) || !gmtime_r(&tt, &tm)) snprintf(b, cap, "-");
    else strftime(b, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static int do_list(tw_history *h, const cli_args *a, tw_error *err)
{
    tw_hist_run *runs;
    size_t n;
    if (tw_history_list(h, &runs, &n, err)) return cli_fail(err);
    if (cli_flag(a, "json")) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:I,s:f,s:s,s:s,s:s,s:s,s:I}", "id", (json_int_t)runs[i].id, "recorded_unix", runs[i].recorded_unix,
                                                 "task", runs[i].task, "label", runs[i].label, "verdict", runs[i].verdict, "git_commit",
                                                 runs[i].git_commit, "arms", (json_int_t)runs[i].n_arms));
        cli_print_json(arr);
        json_decref(arr);
    } else {
        printf("%5s  %-19s  %-16s  %4s  %-28s  %s\n", "id", "recorded (UTC)", "task", "arms", "label", "verdict");
        for (size_t i = 0; i < n; i++) {
            char when[64];
            fmt_time(when, sizeof when, runs[i].recorded_unix);
            printf("%5lld  %-19s  %-16.16s  %4zu  %-28.28s  %s\n", (long long)runs[i].id, when, runs[i].task, runs[i].n_arms, runs[i].label,
                   runs[i].verdict);
        }
    }
    free(runs);
    return EXIT_OK;
}

static int do_show(tw_history *h, const cli_args *a, const char *ids, tw_error *err)
{
    char *end;
    long long id = strtoll(ids, &end, 10);
    if (!*ids || *end) return cli_usage_error(a->cmd, "show expects a run id, got '%s'", ids);
    tw_report r;
    if (tw_history_load(h, id, &r, err)) { tw_report_free(&r); return cli_fail(err); }
    tw_buf t = {0};
    tw_status st = tw_report_table(&t, &r, err);
    if (!st) printf("run %lld: %s (task %s)\n%s", id, r.title, r.task, t.data ? t.data : "");
    tw_buf_free(&t);
    tw_report_free(&r);
    return st ? cli_fail(err) : EXIT_OK;
}

static int do_add(tw_history *h, const cli_args *a, tw_error *err)
{
    tw_report r;
    if (tw_report_init(&r, cli_str(a, "label") ? cli_str(a, "label") : "recorded runs", err)) return cli_fail(err);
    tw_status st = TW_OK;
    for (int i = 1; i < a->npos && !st; i++) st = tw_report_add_run(&r, a->pos[i], err);
    if (!st && cli_str(a, "verdict")) st = tw_report_set_verdict(&r, cli_str(a, "verdict"), err);
    int64_t id = 0;
    st = st ? st : tw_history_add(h, &r, cli_str(a, "label"), (double)time(NULL), &id, err);
    tw_report_free(&r);
    if (st) return cli_fail(err);
    if (id) printf("recorded run %lld (%d arm%s)\n", (long long)id, a->npos - 1, a->npos == 2 ? "" : "s");
    else printf("already recorded: nothing added\n");
    return EXIT_OK;
}

static int do_trend(tw_history *h, const cli_args *a, const char *arm, tw_error *err)
{
    const char *metric = cli_str(a, "metric");
    char prim[128] = "";
    if (!metric) {   /* the primary metric of the arm's latest record */
        int64_t id;
        if (tw_history_find_arm(h, cli_str(a, "task") ? cli_str(a, "task") : "", arm, 0, &id, err)) return cli_fail(err);
        tw_report r;
        if (id && tw_history_load(h, id, &r, err) == TW_OK) {
            snprintf(prim, sizeof prim, "%s", r.metric_name);
            tw_report_free(&r);
        }
        metric = *prim ? prim : "accuracy";
    }
    tw_hist_point *p;
    size_t n;
    if (tw_history_trend(h, cli_str(a, "task"), arm, metric, &p, &n, err)) return cli_fail(err);
    if (cli_flag(a, "json")) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_pack("{s:I,s:f}", "run_id", (json_int_t)p[i].run_id, "time", p[i].time);
            json_object_set_new(o, "value", isfinite(p[i].value) ? json_real(p[i].value) : json_null());
            json_object_set_new(o, "lo", isfinite(p[i].lo) ? json_real(p[i].lo) : json_null());
            json_object_set_new(o, "hi", isfinite(p[i].hi) ? json_real(p[i].hi) : json_null());
            json_array_append_new(arr, o);
        }
        cli_print_json(arr);
        json_decref(arr);
    } else {
        printf("%s of arm %s over %zu recorded run%s\n", metric, arm, n, n == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++) {
            char when[64];
            fmt_time(when, sizeof when, p[i].time);
            printf("  run %-5lld %s  %.4f  [%.4f, %.4f]\n", (long long)p[i].run_id, when, p[i].value, p[i].lo, p[i].hi);
        }
    }
    free(p);
    return EXIT_OK;
}

static int run_history(cli_args *a)
{
    const char *sub = a->npos > 0 ? a->pos[0] : "list";
    bool add = strcmp(sub, "add") == 0;
    if (strcmp(sub, "list") && strcmp(sub, "show") && !add && strcmp(sub, "trend") && strcmp(sub, "dashboard"))
        return cli_usage_error(a->cmd, "unknown action '%s' (expected list, show, add, trend or dashboard)", sub);
    if (add && a->npos < 2) return cli_usage_error(a->cmd, "add expects one or more run directories");
    if ((!strcmp(sub, "show") || !strcmp(sub, "trend")) && a->npos != 2)
        return cli_usage_error(a->cmd, "%s expects one argument (%s)", sub, strcmp(sub, "show") ? "an arm name" : "a run id");
    if (!strcmp(sub, "dashboard") && !cli_str(a, "out")) return cli_usage_error(a->cmd, "dashboard needs -o FILE");
    char db[4200];
    db_path(db, sizeof db, a, add ? a->pos[1] : NULL);
    tw_error err;
    tw_error_clear(&err);
    if (!add && !tw_file_exists(db)) {
        fprintf(stderr, "tunewise history: no history at %s (record runs with 'tunewise history add RUN...', or give --db)\n", db);
        return EXIT_USAGE;
    }
    tw_history *h;
    if (tw_history_open(&h, db, &err)) return cli_fail(&err);
    int rc = EXIT_OK;
    if (!strcmp(sub, "list")) rc = do_list(h, a, &err);
    else if (!strcmp(sub, "show")) rc = do_show(h, a, a->pos[1], &err);
    else if (add) rc = do_add(h, a, &err);
    else if (!strcmp(sub, "trend")) rc = do_trend(h, a, a->pos[1], &err);
    else {
        tw_buf o = {0};
        if (tw_history_dashboard(h, &o, &err) || tw_file_write_atomic(cli_str(a, "out"), o.data, o.len, &err)) rc = cli_fail(&err);
        else if (!a->quiet) fprintf(stderr, "wrote %s\n", cli_str(a, "out"));
        tw_buf_free(&o);
    }
    tw_history_close(h);
    return rc;
}

const cli_cmd cmd_history = {
    "history",
    "the run history (SQLite): record runs, list, show, trend of a metric, HTML dashboard",
    "[list | show ID | add RUN... | trend ARM | dashboard -o FILE] [--db FILE]",
    "add records finished run directories (arms, hashes, metrics with CIs, cost, latency) as\n"
    "one history run; list/show/trend read it back; dashboard writes a self-contained HTML\n"
    "page with the metric of every arm over time and the verdicts. Details: docs/reports.md.",
    HISTORY_OPTS, 0, CLI_MAX_POS, run_history,
};
