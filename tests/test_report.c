/* test_report.c — the report input and its text/HTML outputs: report.md against a committed
 * snapshot (tests/data/report/expected.md; regenerate with TW_UPDATE_SNAPSHOT=1 after an
 * intended change), escaping of hostile labels in Markdown and HTML, the HTML's
 * self-containment (no script, no external reference), the terminal table, and the loader
 * on a real run directory made by the classic arm (`tunewise classic train` + `eval` on a
 * slice of ../shared/data/sst2), with its error paths. */
#include "testutil.h"
#include "report/report.h"

#include <math.h>

#define SNAPSHOT "tests/data/report/expected.md"

static void build(tw_report *r)
{
    tw_error err;
    cr_assert_eq(tw_report_init(r, "SST-2 | <b>comparison</b>", &err), TW_OK);
    tw_report_set_str(&r->task, "sst2", &err);
    tw_report_set_str(&r->metric_name, "accuracy", &err);
    r->target = 0.9;
    const char *names[3] = {"classic", "prompt *kshot* <script>", "lora_r8 — ü"};
    const char *kinds[3] = {"classic", "prompt", "lora"};
    const double m[3] = {0.8287, 0.86, 0.9125};
    for (int i = 0; i < 3; i++) {
        tw_rep_arm *a;
        cr_assert_eq(tw_report_add_arm(r, names[i], &a, &err), TW_OK);
        tw_report_set_str(&a->kind, kinds[i], &err);
        tw_report_set_str(&a->metric_name, "accuracy", &err);
        tw_report_set_str(&a->config_hash, "0123456789abcdef0123", &err);
        a->metric = m[i]; a->lo = m[i] - 0.02; a->hi = m[i] + 0.015; a->ci_level = 0.95; a->n = 872;
        a->invalid_rate = 0.001 * i;
        if (i) { a->tokens_in = 150.0 * i; a->tokens_out = 1.5; a->cost_per_call = 0.0001 * i; }
        a->n_labels = 2;
        a->labels = calloc(2, sizeof *a->labels);
        a->f1 = calloc(2, sizeof *a->f1);
        a->labels[0] = strdup(i == 2 ? "positive" : "negative");   /* arm 3 lists labels in another order */
        a->labels[1] = strdup(i == 2 ? "negative" : "positive");
        a->f1[0] = m[i] - 0.01; a->f1[1] = m[i] + 0.01;
        a->n_latency = 5;
        a->latency_ms = calloc(5, sizeof(double));
        for (int k = 0; k < 5; k++) a->latency_ms[k] = (i == 0 ? 0.02 : 100.0 * i) * (1 + k);
        if (i == 1) { a->n_rated = 40; a->review_mean = 3.9; a->review_lo = 3.6; a->review_hi = 4.2; }
    }
    const double x[3] = {100, 1000, 6920}, y[3] = {0.7, 0.85, 0.9125};
    cr_assert_eq(tw_report_add_learning(r, names[2], x, y, NULL, NULL, 3, &err), TW_OK);
    cr_assert_eq(tw_report_add_hline(r, names[1], 0.86, &err), TW_OK);
    const double v[2] = {1e4, 1e6}, c1[2] = {1, 100}, c2[2] = {50, 80};
    cr_assert_eq(tw_report_add_cost(r, names[1], v, c1, 2, &err), TW_OK);
    cr_assert_eq(tw_report_add_cost(r, names[2], v, c2, 2, &err), TW_OK);
    cr_assert_eq(tw_report_add_breakeven(r, names[1], names[2], 505000, 50.5, &err), TW_OK);
    cr_assert_eq(tw_report_set_verdict(r, "Fine-tune: lora_r8 beats prompting by 5.3 points", &err), TW_OK);
    cr_assert_eq(tw_report_add_reason(r, "the gap to the target is real (paired test p < 0.001)", &err), TW_OK);
    cr_assert_eq(tw_report_add_reason(r, "above 505k calls/month | the fine-tune is cheaper", &err), TW_OK);
}

Test(report, markdown_matches_snapshot)
{
    tw_report r;
    build(&r);
    tw_buf md = {0};
    tw_error err;
    cr_assert_eq(tw_report_markdown(&md, &r, &err), TW_OK);
    tw_report_free(&r);
    if (getenv("TW_UPDATE_SNAPSHOT")) {
        FILE *f = fopen(SNAPSHOT, "wb");
        cr_assert_not_null(f);
        fwrite(md.data, 1, md.len, f);
        fclose(f);
    }
    char *want = NULL;
    size_t len;
    cr_assert_eq(tw_file_read(SNAPSHOT, &want, &len, &err), TW_OK, "%s (run from the repository root)", err.msg);
    if (strcmp(want, md.data) != 0) {
        char *tmp = tw_test_tmpdir();
        char *p = tw_test_write(tmp, "actual.md", md.data);
        cr_assert_fail("report.md differs from %s; actual output in %s (diff them; TW_UPDATE_SNAPSHOT=1 regenerates)", SNAPSHOT, p);
    }
    /* spot checks that would catch a wrong snapshot too */
    cr_assert_not_null(strstr(md.data, "| prompt \\*kshot\\* &lt;script&gt; | prompt | 0.8600 | [0.8400, 0.8750] | 872 |"));
    cr_assert_not_null(strstr(md.data, "# SST-2 \\| &lt;b&gt;comparison&lt;/b&gt;\n"));
    cr_assert_not_null(strstr(md.data, "| lora\\_r8 — ü | 6920 | 0.9125 |"));
    cr_assert_null(strstr(md.data, "<script"));
    free(want);
    tw_buf_free(&md);
}

Test(report, per_class_table_joins_labels_by_name)
{
    tw_report r;
    build(&r);
    tw_buf md = {0};
    tw_error err;
    cr_assert_eq(tw_report_markdown(&md, &r, &err), TW_OK);
    /* arm 3 lists positive first; its F1 must still land in the right rows */
    cr_assert_not_null(strstr(md.data, "| negative | 0.8187 | 0.8500 | 0.9225 |"), "%s", md.data);
    cr_assert_not_null(strstr(md.data, "| positive | 0.8387 | 0.8700 | 0.9025 |"));
    tw_report_free(&r);
    tw_buf_free(&md);
}

Test(report, html_is_self_contained_and_escaped)
{
    tw_report r;
    build(&r);
    tw_buf h = {0};
    tw_error err;
    cr_assert_eq(tw_report_html(&h, &r, &err), TW_OK);
    tw_report_free(&r);
    const char *s = h.data;
    cr_assert_eq(strncmp(s, "<!DOCTYPE html>", 15), 0);
    cr_assert_null(strstr(s, "<script"), "no script element (and the hostile label is escaped)");
    cr_assert_not_null(strstr(s, "prompt *kshot* &lt;script&gt;"));
    cr_assert_null(strstr(s, " src="));
    cr_assert_null(strstr(s, " href="));
    cr_assert_null(strstr(s, "@import"));
    cr_assert_null(strstr(s, "url("));
    /* the only URL is the SVG namespace */
    size_t urls = 0, ns = 0;
    for (const char *p = s; (p = strstr(p, "://")) != NULL; p++) urls++;
    for (const char *p = s; (p = strstr(p, "http://www.w3.org/2000/svg")) != NULL; p++) ns++;
    cr_assert_eq(urls, ns);
    /* six kinds of chart: metric, learning, cost, F1 x3, latency (no confusion without a matrix) */
    size_t svgs = 0;
    for (const char *p = s; (p = strstr(p, "<svg ")) != NULL; p++) svgs++;
    cr_assert_eq(svgs, 7);
    cr_assert_not_null(strstr(s, "<title id=\"metric-title\">accuracy per arm</title>"));
    cr_assert_not_null(strstr(s, "<title id=\"learning-title\">Learning curve vs prompting</title>"));
    cr_assert_not_null(strstr(s, "<title id=\"cost-title\">Cost vs monthly volume</title>"));
    cr_assert_not_null(strstr(s, "<title id=\"latency-title\">Latency per call</title>"));
    cr_assert_not_null(strstr(s, "Break-even between prompt *kshot* &lt;script&gt; and lora_r8 — ü at 505000 calls per month"));
    cr_assert_not_null(strstr(s, "<td>3.9 (n=40)</td>"), "human rating column");
    cr_assert_not_null(strstr(s, "<meta charset=\"utf-8\">"));
    tw_buf_free(&h);
}

Test(report, terminal_table)
{
    tw_report r;
    build(&r);
    tw_buf t = {0};
    tw_error err;
    cr_assert_eq(tw_report_table(&t, &r, &err), TW_OK);
    cr_assert_not_null(strstr(t.data, "accuracy"));
    cr_assert_not_null(strstr(t.data, "0.8287  [0.8087, 0.8437]"), "%s", t.data);
    cr_assert_not_null(strstr(t.data, "300/2"), "tokens in/out of the lora arm: %s", t.data);
    cr_assert_not_null(strstr(t.data, "verdict: Fine-tune: lora_r8 beats prompting by 5.3 points\n  1. the gap"));
    /* rows align although one name has multi-byte characters: every data line has the
     * same number of code points up to the kind column */
    const char *l1 = strstr(t.data, "\nclassic "), *l3 = strstr(t.data, "\nlora_r8");
    cr_assert(l1 && l3);
    cr_assert_eq(tw_utf8_len(l1 + 1, (size_t)(strstr(l1 + 1, " classic ") - (l1 + 1))),
                 tw_utf8_len(l3 + 1, (size_t)(strstr(l3 + 1, " lora ") - (l3 + 1))), "%s", t.data);
    tw_report_free(&r);
    tw_buf_free(&t);
}

/* A real run directory: the classic arm trained and evaluated on a slice of SST-2. */
static char *classic_run(char *tmp)
{
    char cmd[4096], path[1024];
    snprintf(cmd, sizeof cmd, "head -n 300 %s/data/sst2/train.jsonl > %s/train.jsonl && head -n 80 %s/data/sst2/dev.jsonl > %s/dev.jsonl && "
                              "head -n 120 %s/data/sst2/test.jsonl > %s/test.jsonl",
             tw_test_shared(), tmp, tw_test_shared(), tmp, tw_test_shared(), tmp);
    cr_assert_eq(system(cmd), 0, "cannot slice %s/data/sst2", tw_test_shared());
    free(tw_test_write(tmp, "task.yaml", "name: sst2-slice\ntype: classify\ndata:\n  train: train.jsonl\n  dev: dev.jsonl\n  test: test.jsonl\n"
                                         "labels: [negative, positive]\nmetric: accuracy\n"));
    snprintf(cmd, sizeof cmd, "%s classic train --task %s/task.yaml -o %s/m.model --C 1 --hash-bits 16 -j 1 -q && "
                              "%s eval --task %s/task.yaml -m %s/m.model -o %s/sst2-classic -b 200 -q",
             tw_test_bin(), tmp, tmp, tw_test_bin(), tmp, tmp, tmp);
    char *err;
    int rc = tw_test_run(cmd, NULL, &err);
    cr_assert_eq(rc, 0, "classic train/eval failed: %s", err);
    free(err);
    snprintf(path, sizeof path, "%s/sst2-classic", tmp);
    return strdup(path);
}

Test(report, loads_a_real_classic_run)
{
    char *tmp = tw_test_tmpdir();
    char *run = classic_run(tmp);
    tw_report r;
    tw_error err;
    cr_assert_eq(tw_report_init(&r, NULL, &err), TW_OK);
    cr_assert_eq(tw_report_add_run(&r, run, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_report_add_run(&r, run, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(r.n_arms, 2);
    const tw_rep_arm *a = &r.arms[0];
    cr_assert_str_eq(a->name, "sst2-classic");
    cr_assert_str_eq(r.arms[1].name, "sst2-classic#2", "duplicate names get a suffix");
    cr_assert_str_eq(a->kind, "classic");
    cr_assert_str_eq(a->task, "sst2-slice");
    cr_assert_str_eq(r.task, "sst2-slice");
    cr_assert_str_eq(a->metric_name, "accuracy");
    cr_assert_str_eq(r.metric_name, "accuracy");
    cr_assert_eq(a->n, 120);
    cr_assert(a->metric > 0.4 && a->metric <= 1);
    cr_assert(a->lo <= a->metric && a->metric <= a->hi);
    cr_assert_float_eq(a->ci_level, 0.95, 1e-12);
    cr_assert_eq(a->n_labels, 2);
    cr_assert_str_eq(a->labels[0], "negative");
    cr_assert_eq(a->n_cols, 3);
    cr_assert_str_eq(a->cols[2], "(invalid)");
    double total = 0, diag = 0;
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 3; j++) { total += a->confusion[i * 3 + j]; if (i == j) diag += a->confusion[i * 3 + j]; }
    cr_assert_float_eq(total, 120, 1e-9);
    cr_assert_float_eq(diag / total, a->metric, 1e-9, "the confusion diagonal matches accuracy");
    cr_assert_eq(a->n_latency, 120);
    cr_assert_float_eq(a->cost_per_call, 0, 1e-12, "classic records cost 0");
    cr_assert(isnan(a->tokens_in));
    cr_assert_eq(strlen(a->config_hash), 64);
    cr_assert_eq(strlen(a->predictions_sha256), 64);
    cr_assert(a->finished_unix > 1.6e9);
    /* and it renders */
    char out[1024];
    snprintf(out, sizeof out, "%s/report", tmp);
    cr_assert_eq(tw_report_write_dir(&r, out, &err), TW_OK, "%s", err.msg);
    char p[1100], *txt;
    size_t len;
    snprintf(p, sizeof p, "%s/report.html", out);
    cr_assert_eq(tw_file_read(p, &txt, &len, &err), TW_OK);
    cr_assert_not_null(strstr(txt, "<title id=\"confusion-0-title\">Confusion matrix: sst2-classic</title>"));
    free(txt);
    snprintf(p, sizeof p, "%s/report.md", out);
    cr_assert_eq(tw_file_read(p, &txt, &len, &err), TW_OK);
    cr_assert_not_null(strstr(txt, "| sst2-classic | classic | "));
    free(txt);
    tw_report_free(&r);
    free(run);
    free(tmp);
}

Test(report, loader_errors_name_the_file)
{
    char *tmp = tw_test_tmpdir();
    tw_report r;
    tw_error err;
    cr_assert_eq(tw_report_init(&r, NULL, &err), TW_OK);
    cr_assert_eq(tw_report_add_run(&r, tmp, &err), TW_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "run.json: no such file"), "%s", err.msg);
    free(tw_test_write(tmp, "run.json", "{\"arm\":{\"name\":\"x\"}}"));
    free(tw_test_write(tmp, "metrics.json", "{\"primary\": \"accuracy\", \"metrics\": {"));
    cr_assert_eq(tw_report_add_run(&r, tmp, &err), TW_ERR_PARSE);
    cr_assert_not_null(strstr(err.msg, "metrics.json: line"), "%s", err.msg);
    free(tw_test_write(tmp, "metrics.json", "{\"primary\": \"accuracy\", \"metrics\": {\"macro_f1\": {\"value\": 0.5}}}"));
    cr_assert_eq(tw_report_add_run(&r, tmp, &err), TW_ERR_PARSE);
    cr_assert_not_null(strstr(err.msg, "primary metric \"accuracy\" has no numeric value"), "%s", err.msg);
    free(tw_test_write(tmp, "metrics.json", "{\"primary\": \"accuracy\", \"metrics\": {\"accuracy\": {\"value\": 0.5}}}"));
    free(tw_test_write(tmp, "predictions.jsonl", "{\"id\":\"a\",\"latency_ms\":3}\nnot json\n"));
    cr_assert_eq(tw_report_add_run(&r, tmp, &err), TW_ERR_PARSE);
    cr_assert_not_null(strstr(err.msg, "predictions.jsonl:2:"), "%s", err.msg);
    tw_report_free(&r);
    tw_report_free(NULL);
    free(tmp);
}
