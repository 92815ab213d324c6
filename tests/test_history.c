/* test_history.c — the SQLite run history: record/reload round trip (numbers, NaN as
 * unknown, hashes, verdict), de-duplication of re-recorded arms, trend queries ordered in
 * time and filtered by task, the last-arm lookup the gate uses, the dashboard, and the
 * refusals (newer schema, a foreign SQLite file, a non-SQLite file). */
#include "testutil.h"
#include "report/history.h"

#include <math.h>
#include <sqlite3.h>

static void arm(tw_report *r, const char *name, const char *task, double metric, double finished, const char *sha)
{
    tw_rep_arm *a;
    tw_error err;
    cr_assert_eq(tw_report_add_arm(r, name, &a, &err), TW_OK);
    tw_report_set_str(&a->kind, "classic", &err);
    tw_report_set_str(&a->task, task, &err);
    tw_report_set_str(&a->metric_name, "accuracy", &err);
    tw_report_set_str(&a->predictions_sha256, sha, &err);
    tw_report_set_str(&a->config_hash, "cfg", &err);
    tw_report_set_str(&a->git_commit, "c0ffee", &err);
    a->metric = metric; a->lo = metric - 0.02; a->hi = metric + 0.02; a->ci_level = 0.95; a->n = 500;
    a->finished_unix = finished;
    a->cost_per_call = 0.0002;
    a->n_extra = 2;
    a->extra_names = calloc(2, sizeof(char *));
    a->extra_value = calloc(2, sizeof(double));
    a->extra_lo = calloc(2, sizeof(double));
    a->extra_hi = calloc(2, sizeof(double));
    a->extra_names[0] = strdup("accuracy"); a->extra_value[0] = metric; a->extra_lo[0] = metric - 0.02; a->extra_hi[0] = metric + 0.02;
    a->extra_names[1] = strdup("macro_f1"); a->extra_value[1] = metric - 0.01; a->extra_lo[1] = NAN; a->extra_hi[1] = NAN;
    a->n_latency = 3;
    a->latency_ms = calloc(3, sizeof(double));
    a->latency_ms[0] = 1; a->latency_ms[1] = 2; a->latency_ms[2] = 3;
}

static char *db_in(const char *tmp)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/history.db", tmp);
    return strdup(p);
}

Test(history, round_trip_dedup_and_trend)
{
    char *tmp = tw_test_tmpdir(), *db = db_in(tmp);
    tw_history *h;
    tw_error err;
    cr_assert_eq(tw_history_open(&h, db, &err), TW_OK, "%s", err.msg);
    tw_report r1;
    tw_report_init(&r1, "first <run>", &err);
    tw_report_set_str(&r1.task, "sst2", &err);
    tw_report_set_str(&r1.metric_name, "accuracy", &err);
    tw_report_set_verdict(&r1, "prompt", &err);
    arm(&r1, "classic", "sst2", 0.82, 1000, "sha-a");
    arm(&r1, "prompt", "sst2", 0.86, 1001, "sha-b");
    r1.arms[1].cost_per_call = NAN;
    int64_t id1, id2, id3, again;
    cr_assert_eq(tw_history_add(h, &r1, NULL, 5000, &id1, &err), TW_OK, "%s", err.msg);
    cr_assert_gt(id1, 0);
    cr_assert_eq(tw_history_add(h, &r1, NULL, 5001, &again, &err), TW_OK);
    cr_assert_eq(again, 0, "the same arms are not recorded twice");

    tw_report r2;
    tw_report_init(&r2, "second", &err);
    tw_report_set_str(&r2.task, "sst2", &err);
    tw_report_set_verdict(&r2, "fine-tune", &err);
    arm(&r2, "classic", "sst2", 0.84, 2000, "sha-c");
    cr_assert_eq(tw_history_add(h, &r2, "label 2", 6000, &id2, &err), TW_OK);
    tw_report r3;
    tw_report_init(&r3, "other task", &err);
    tw_report_set_str(&r3.task, "snips", &err);
    arm(&r3, "classic", "snips", 0.95, 1500, "sha-d");
    cr_assert_eq(tw_history_add(h, &r3, NULL, 5500, &id3, &err), TW_OK);

    tw_hist_run *runs;
    size_t n;
    cr_assert_eq(tw_history_list(h, &runs, &n, &err), TW_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(runs[0].id, id1); cr_assert_eq(runs[1].id, id3); cr_assert_eq(runs[2].id, id2);   /* by record time */
    cr_assert_str_eq(runs[0].label, "first <run>");
    cr_assert_str_eq(runs[2].label, "label 2");
    cr_assert_str_eq(runs[0].verdict, "prompt");
    cr_assert_eq(runs[0].n_arms, 2);
    cr_assert_str_eq(runs[0].git_commit, "c0ffee");
    free(runs);

    tw_report back;
    cr_assert_eq(tw_history_load(h, id1, &back, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(back.n_arms, 2);
    cr_assert_str_eq(back.task, "sst2");
    cr_assert_str_eq(back.verdict, "prompt");
    cr_assert_str_eq(back.arms[1].name, "prompt");
    cr_assert_float_eq(back.arms[1].metric, 0.86, 1e-15);
    cr_assert_float_eq(back.arms[1].lo, 0.84, 1e-15);
    cr_assert(isnan(back.arms[1].cost_per_call), "unknown stays unknown");
    cr_assert_float_eq(back.arms[0].cost_per_call, 0.0002, 1e-15);
    cr_assert_str_eq(back.arms[0].predictions_sha256, "sha-a");
    cr_assert_eq(back.arms[0].n, 500);
    cr_assert_eq(back.arms[0].n_extra, 2);
    cr_assert_str_eq(back.arms[0].extra_names[1], "macro_f1");
    cr_assert(isnan(back.arms[0].extra_lo[1]));
    tw_report_free(&back);
    cr_assert_eq(tw_history_load(h, 999, &back, &err), TW_ERR_INVALID);
    tw_report_free(&back);

    tw_hist_point *p;
    cr_assert_eq(tw_history_trend(h, "sst2", "classic", "accuracy", &p, &n, &err), TW_OK);
    cr_assert_eq(n, 2, "the snips run is filtered out");
    cr_assert_float_eq(p[0].value, 0.82, 1e-15);
    cr_assert_float_eq(p[1].value, 0.84, 1e-15);
    cr_assert_float_eq(p[0].time, 1000, 1e-9);
    cr_assert_eq(p[1].run_id, id2);
    free(p);
    cr_assert_eq(tw_history_trend(h, NULL, "classic", "accuracy", &p, &n, &err), TW_OK);
    cr_assert_eq(n, 3);
    cr_assert_float_eq(p[1].value, 0.95, 1e-15, "ordered by time across tasks");
    free(p);
    cr_assert_eq(tw_history_trend(h, "sst2", "classic", "macro_f1", &p, &n, &err), TW_OK);
    cr_assert_eq(n, 2);
    cr_assert(isnan(p[0].lo));
    free(p);

    int64_t found;
    cr_assert_eq(tw_history_find_arm(h, "sst2", "classic", 0, &found, &err), TW_OK);
    cr_assert_eq(found, id2);
    cr_assert_eq(tw_history_find_arm(h, "sst2", "classic", id2, &found, &err), TW_OK);
    cr_assert_eq(found, id1);
    cr_assert_eq(tw_history_find_arm(h, "sst2", "lora", 0, &found, &err), TW_OK);
    cr_assert_eq(found, 0);

    tw_buf d = {0};
    cr_assert_eq(tw_history_dashboard(h, &d, &err), TW_OK);
    cr_assert_not_null(strstr(d.data, "<h2>Task sst2</h2>"));
    cr_assert_not_null(strstr(d.data, "<h2>Task snips</h2>"));
    size_t svgs = 0;
    for (const char *q = d.data; (q = strstr(q, "<svg ")) != NULL; q++) svgs++;
    cr_assert_eq(svgs, 2, "one trend chart per task");
    cr_assert_not_null(strstr(d.data, "first &lt;run&gt;"));
    cr_assert_null(strstr(d.data, "<run>"));
    cr_assert_not_null(strstr(d.data, "(verdict changed)"), "prompt -> fine-tune is marked");
    cr_assert_not_null(strstr(d.data, "<title id=\"trend-0-title\">sst2: accuracy over recorded runs</title>"));
    tw_buf_free(&d);

    tw_history_close(h);
    /* reopening sees the same data */
    cr_assert_eq(tw_history_open(&h, db, &err), TW_OK);
    cr_assert_eq(tw_history_list(h, &runs, &n, &err), TW_OK);
    cr_assert_eq(n, 3);
    free(runs);
    tw_history_close(h);
    tw_history_close(NULL);
    tw_report_free(&r1); tw_report_free(&r2); tw_report_free(&r3);
    free(db); free(tmp);
}

Test(history, refuses_foreign_and_newer_files)
{
    char *tmp = tw_test_tmpdir(), *db = db_in(tmp);
    tw_history *h;
    tw_error err;
    cr_assert_eq(tw_history_open(&h, db, &err), TW_OK);
    tw_history_close(h);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(s, "UPDATE tw_meta SET value = '99' WHERE key = 'schema_version'", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    cr_assert_eq(tw_history_open(&h, db, &err), TW_ERR_UNSUPPORTED);
    cr_assert_not_null(strstr(err.msg, "schema version 99 is newer"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, db));
    cr_assert_null(h);

    char other[1100];
    snprintf(other, sizeof other, "%s/other.db", tmp);
    cr_assert_eq(sqlite3_open(other, &s), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(s, "CREATE TABLE foo(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    cr_assert_eq(tw_history_open(&h, other, &err), TW_ERR_INVALID);
    cr_assert_not_null(strstr(err.msg, "not a tunewise history"), "%s", err.msg);

    char *junk = tw_test_write(tmp, "junk.db", "this is not a database, just text that is long enough to have a header......\n");
    cr_assert_neq(tw_history_open(&h, junk, &err), TW_OK);
    cr_assert_not_null(strstr(err.msg, "junk.db"), "%s", err.msg);
    free(junk); free(db); free(tmp);
}

/* The CLI: `report --history`, `history add/list/trend/dashboard`, default db location. */
Test(history, cli)
{
    char cmd[4096], *out, *err_text;
    snprintf(cmd, sizeof cmd, "%s help history && %s help report", tw_test_bin(), tw_test_bin());
    if (tw_test_run(cmd, NULL, NULL) != 0)
        cr_assert_fail("'tunewise history' / 'tunewise report' are not registered in %s: add cmd_history and cmd_report to "
                       "tools/tunewise/main.c COMMANDS and cli.h", tw_test_bin());
    char *tmp = tw_test_tmpdir();
    char runs[1100];
    snprintf(runs, sizeof runs, "%s/runs", tmp);
    cr_assert_eq(mkdir(runs, 0755), 0);
    char dir[1200], p[1300];
    snprintf(dir, sizeof dir, "%s/sst2-x", runs);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/predictions.jsonl", dir);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"id\":\"a\",\"reference\":\"x\",\"prediction\":\"x\",\"latency_ms\":2}\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/metrics.json", dir);
    f = fopen(p, "w");
    fprintf(f, "{\"n\":1,\"primary\":\"accuracy\",\"metrics\":{\"accuracy\":{\"value\":1,\"ci\":[1,1]}}}\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/run.json", dir);
    f = fopen(p, "w");
    fprintf(f, "{\"arm\":{\"name\":\"classic\",\"config_hash\":\"h\"},\"files\":{\"predictions\":{\"sha256\":\"s\"}},\"context\":{\"task_name\":\"sst2\"}}\n");
    fclose(f);

    snprintf(cmd, sizeof cmd, "%s history add %s --label nightly", tw_test_bin(), dir);
    cr_assert_eq(tw_test_run(cmd, &out, &err_text), 0, "%s %s", out, err_text);
    cr_assert_not_null(strstr(out, "recorded run 1"), "%s", out);
    free(out); free(err_text);
    snprintf(p, sizeof p, "%s/history.db", runs);
    cr_assert(tw_file_exists(p), "default history beside the run directory");
    snprintf(cmd, sizeof cmd, "%s history add %s", tw_test_bin(), dir);
    cr_assert_eq(tw_test_run(cmd, &out, NULL), 0);
    cr_assert_not_null(strstr(out, "already recorded"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s history --db %s list --json", tw_test_bin(), p);
    cr_assert_eq(tw_test_run(cmd, &out, NULL), 0);
    cr_assert_not_null(strstr(out, "\"label\": \"nightly\""), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s history --db %s trend sst2-x", tw_test_bin(), p);
    cr_assert_eq(tw_test_run(cmd, &out, NULL), 0);
    cr_assert_not_null(strstr(out, "accuracy of arm sst2-x over 1 recorded run"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s history --db %s dashboard -o %s/d.html -q && test -s %s/d.html", tw_test_bin(), p, tmp, tmp);
    cr_assert_eq(tw_test_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s report %s -o %s/rep --history %s/h2.db -q && test -s %s/rep/report.html && test -s %s/rep/report.md && test -s %s/h2.db",
             tw_test_bin(), dir, tmp, tmp, tmp, tmp, tmp);
    cr_assert_eq(tw_test_run(cmd, &out, &err_text), 0, "%s", err_text);
    cr_assert_not_null(strstr(out, "sst2-x"), "the table is printed: %s", out);
    free(out); free(err_text);
    snprintf(cmd, sizeof cmd, "%s history --db %s/none.db list", tw_test_bin(), tmp);
    cr_assert_eq(tw_test_run(cmd, NULL, NULL), 2, "a missing history is not created by list");
    free(tmp);
}
