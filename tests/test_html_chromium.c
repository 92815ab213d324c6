/* test_html_chromium.c — report.html rendered by a real browser (headless Chromium, the
 * Debian `chromium` package): the page renders, produces a PNG screenshot, logs no console
 * error, and hostile labels stay text. A negative control proves that a script error on a
 * page WOULD be caught by the same check. Without chromium the tests fail with a message
 * saying how to install it (scripts/install-deps.sh).
 * Set TW_REPORT_SCREENSHOT=path to also keep a copy of the screenshot (used for
 * docs/img/report.png). */
#include "testutil.h"
#include "report/history.h"
#include "report/report.h"

#include <math.h>

static const char *chromium_bin(void)
{
    const char *c = getenv("TW_CHROMIUM");
    if (c) return c;
    const char *cand[] = {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"};
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (access(cand[i], X_OK) == 0) return cand[i];
    return NULL;
}

static const char *need_chromium(void)
{
    const char *c = chromium_bin();
    if (!c)
        cr_assert_fail("headless Chromium is required for this test and was not found: install it with "
                "'sudo apt-get install chromium' (or scripts/install-deps.sh), or set TW_CHROMIUM to its path");
    return c;
}

/* Run chromium headless on a file; returns exit status, stderr in *log, stdout in *out. */
static int chromium(const char *bin, const char *tmp, const char *extra, const char *html, char **out, char **log)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "timeout 90 %s --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars "
             "--user-data-dir=%s/profile --enable-logging=stderr --v=0 %s file://%s",
             bin, tmp, extra, html);
    return tw_test_run(cmd, out, log);
}

/* Console messages Chromium logs with --enable-logging: "...:INFO:CONSOLE(N)] "msg", source: ..."
 * (older builds) or ":CONSOLE:N]". Returns how many such lines log has. */
static int console_lines(const char *log)
{
    int n = 0;
    for (const char *p = log; (p = strstr(p, ":CONSOLE")) != NULL; p++) n++;
    return n;
}

/* hostile: labels built to break escaping; else the clean, illustrative report used for
 * the docs screenshot (made-up numbers, said so in its title). */
static void build_report(tw_report *r, bool hostile)
{
    tw_error err;
    cr_assert_eq(tw_report_init(r, hostile ? "SST-2 <b>bold</b> & \"friends\" — résumé" : "Illustrative report (test fixture data)", &err), TW_OK);
    tw_report_set_str(&r->task, hostile ? "sst2 <script>throw new Error('tw-xss-task')</script>" : "sentiment-3", &err);
    tw_report_set_str(&r->metric_name, "accuracy", &err);
    r->target = 0.9;
    const char *hnames[3] = {"classic <script>throw new Error('tw-xss')</script>", "prompt \"kshot\" & 'co'", "lora — ünïcødé 日本"};
    const char *cnames[3] = {"classic", "gpt-4o-mini kshot", "smollm2-135m lora"};
    const char *const *names = hostile ? hnames : cnames;
    const char *kinds[3] = {"classic", "prompt", "lora"};
    const double m[3] = {0.83, 0.86, 0.91}, lat[3] = {0.02, 350, 40};
    const char *hlabels[3] = {"neg<ative>", "pos & 'itive'", "neutral \"q\""}, *clabels[3] = {"negative", "positive", "neutral"};
    const char *const *labels = hostile ? hlabels : clabels;
    for (int i = 0; i < 3; i++) {
        tw_rep_arm *a;
        cr_assert_eq(tw_report_add_arm(r, names[i], &a, &err), TW_OK);
        tw_report_set_str(&a->kind, kinds[i], &err);
        tw_report_set_str(&a->metric_name, "accuracy", &err);
        a->metric = m[i]; a->lo = m[i] - 0.02; a->hi = m[i] + 0.02; a->ci_level = 0.95; a->n = 900;
        a->invalid_rate = 0.01 * i;
        a->tokens_in = i ? 180 + 100 * i : NAN; a->tokens_out = i ? 2 : NAN; a->cost_per_call = i == 1 ? 0.00012 : 0;
        a->n_labels = 3;
        a->labels = calloc(3, sizeof *a->labels);
        a->f1 = calloc(3, sizeof *a->f1);
        a->n_cols = 4;
        a->cols = calloc(4, sizeof *a->cols);
        a->confusion = calloc(12, sizeof *a->confusion);
        for (int l = 0; l < 3; l++) {
            a->labels[l] = strdup(labels[l]);
            a->f1[l] = m[i] - 0.05 * l;
            for (int c = 0; c < 4; c++) a->confusion[l * 4 + c] = l == c ? 250 + 10 * i : (c == 3 ? i : 20 - 5 * i);
        }
        for (int c = 0; c < 3; c++) a->cols[c] = strdup(labels[c]);
        a->cols[3] = strdup("(invalid)");
        a->n_latency = 200;
        a->latency_ms = calloc(200, sizeof(double));
        for (int k = 0; k < 200; k++) a->latency_ms[k] = lat[i] * (0.7 + 0.6 * (k % 17) / 16.0 + (k % 50 == 0 ? 1.5 : 0));
    }
    const double x[6] = {50, 100, 250, 500, 1000, 6000}, y[6] = {0.62, 0.7, 0.78, 0.84, 0.88, 0.91};
    double lo[6], hi[6];
    for (int k = 0; k < 6; k++) { lo[k] = y[k] - 0.04; hi[k] = y[k] + 0.03; }
    cr_assert_eq(tw_report_add_learning(r, names[2], x, y, lo, hi, 6, &err), TW_OK);
    cr_assert_eq(tw_report_add_hline(r, names[1], 0.86, &err), TW_OK);
    const double vol[5] = {1e3, 1e4, 1e5, 1e6, 1e7};
    double c1[5], c2[5], c3[5];
    for (int k = 0; k < 5; k++) { c1[k] = 5 + vol[k] * 1e-6; c2[k] = vol[k] * 1.2e-4; c3[k] = 60 + vol[k] * 2e-5; }
    cr_assert_eq(tw_report_add_cost(r, names[0], vol, c1, 5, &err), TW_OK);
    cr_assert_eq(tw_report_add_cost(r, names[1], vol, c2, 5, &err), TW_OK);
    cr_assert_eq(tw_report_add_cost(r, names[2], vol, c3, 5, &err), TW_OK);
    cr_assert_eq(tw_report_add_breakeven(r, names[1], names[2], 6e5, 72, &err), TW_OK);
    cr_assert_eq(tw_report_set_verdict(r, hostile ? "Fine-tune <lora> & \"ship\" it" : "Fine-tune smollm2-135m lora (confidence: medium)", &err), TW_OK);
    cr_assert_eq(tw_report_add_reason(r, "prompting reaches 0.86 [0.84, 0.88], below the 0.90 target: the gap is real (paired test p < 0.001)", &err), TW_OK);
    cr_assert_eq(tw_report_add_reason(r, "the fine-tune reaches 0.91 with 6000 labelled examples; above 600k calls/month it is cheaper", &err), TW_OK);
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

Test(chromium, negative_control_catches_a_script_error)
{
    const char *bin = need_chromium();
    char *tmp = tw_test_tmpdir();
    char *page = tw_test_write(tmp, "broken.html",
                               "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>x</title></head><body><p>x</p>"
                               "<script>throw new Error('tw-negative-control')</script></body></html>");
    char *out, *log;
    int rc = chromium(bin, tmp, "--dump-dom", page, &out, &log);
    cr_assert_eq(rc, 0, "chromium failed (%d): %s", rc, log);
    cr_assert_gt(console_lines(log), 0, "the console check missed a thrown error; log:\n%s", log);
    cr_assert_not_null(strstr(log, "tw-negative-control"), "log:\n%s", log);
    free(out); free(log); free(page); free(tmp);
}

Test(chromium, report_renders_without_console_errors)
{
    const char *bin = need_chromium();
    char *tmp = tw_test_tmpdir();
    tw_report r;
    build_report(&r, true);
    tw_error err;
    cr_assert_eq(tw_report_write_dir(&r, tmp, &err), TW_OK, "%s", err.msg);
    tw_report_free(&r);
    char html[1024], png[512], extra[2048];
    snprintf(html, sizeof html, "%s/report.html", tmp);
    snprintf(png, sizeof png, "%s/report.png", tmp);

    /* 1. the DOM: every chart is there, no injected element, labels kept as text */
    char *dom, *log;
    int rc = chromium(bin, tmp, "--dump-dom", html, &dom, &log);
    cr_assert_eq(rc, 0, "chromium --dump-dom failed (%d): %s", rc, log);
    cr_assert_eq(console_lines(log), 0, "console messages while loading report.html:\n%s", log);
    cr_assert_eq(count(dom, "<script"), 0, "a <script> element appeared in the DOM: escaping failed");
    cr_assert_eq(count(dom, "<b>"), 0, "a <b> element appeared in the DOM: escaping failed");
    /* metric + learning + cost + 3 x (F1 + confusion) + latency = 10 */
    cr_assert_eq(count(dom, "<svg"), 10, "expected 10 charts in the DOM");
    cr_assert_eq(count(dom, "role=\"img\""), 10);
    cr_assert_not_null(strstr(dom, "lora — ünïcødé 日本"), "non-ASCII label lost");
    cr_assert_not_null(strstr(dom, "&lt;script&gt;throw"), "escaped label text missing from the DOM");
    free(dom); free(log);

    /* 2. the screenshot */
    snprintf(extra, sizeof extra, "--screenshot=%s --window-size=1100,2600", png);
    rc = chromium(bin, tmp, extra, html, NULL, &log);
    cr_assert_eq(rc, 0, "chromium --screenshot failed (%d): %s", rc, log);
    cr_assert_eq(console_lines(log), 0, "console messages while rendering:\n%s", log);
    FILE *f = fopen(png, "rb");
    cr_assert_not_null(f, "no screenshot written at %s; log:\n%s", png, log);
    unsigned char sig[8] = {0};
    cr_assert_eq(fread(sig, 1, 8, f), 8);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    cr_assert(memcmp(sig, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
    cr_assert_gt(size, 20000, "screenshot suspiciously small (%ld bytes): blank page?", size);
    free(log);

    const char *keep = getenv("TW_REPORT_SCREENSHOT");
    if (keep) {   /* the clean report, for docs/img/report.png */
        char dir[600];
        snprintf(dir, sizeof dir, "%s/clean", tmp);
        build_report(&r, false);
        cr_assert_eq(tw_report_write_dir(&r, dir, &err), TW_OK, "%s", err.msg);
        tw_report_free(&r);
        snprintf(html, sizeof html, "%s/report.html", dir);
        snprintf(extra, sizeof extra, "--screenshot=%s --window-size=1100,1500", keep);
        rc = chromium(bin, tmp, extra, html, NULL, &log);
        cr_assert_eq(rc, 0, "%s", log);
        cr_assert_eq(console_lines(log), 0, "%s", log);
        free(log);
    }
    free(tmp);
}

Test(chromium, history_dashboard_renders)
{
    const char *bin = need_chromium();
    char *tmp = tw_test_tmpdir();
    char db[512], page[512];
    snprintf(db, sizeof db, "%s/history.db", tmp);
    snprintf(page, sizeof page, "%s/dashboard.html", tmp);
    tw_history *h;
    tw_error err;
    cr_assert_eq(tw_history_open(&h, db, &err), TW_OK, "%s", err.msg);
    for (int run = 0; run < 3; run++) {   /* three recorded comparisons with hostile names */
        tw_report r;
        build_report(&r, true);
        for (size_t i = 0; i < r.n_arms; i++) r.arms[i].metric += 0.01 * run;
        if (run == 2) tw_report_set_verdict(&r, "keep <prompting>", &err);
        int64_t id;
        cr_assert_eq(tw_history_add(h, &r, NULL, 1000.0 + run, &id, &err), TW_OK, "%s", err.msg);
        cr_assert_gt(id, 0);
        tw_report_free(&r);
    }
    tw_buf d = {0};
    cr_assert_eq(tw_history_dashboard(h, &d, &err), TW_OK);
    tw_history_close(h);
    cr_assert_eq(tw_file_write_atomic(page, d.data, d.len, &err), TW_OK);
    tw_buf_free(&d);
    char *dom, *log;
    int rc = chromium(bin, tmp, "--dump-dom", page, &dom, &log);
    cr_assert_eq(rc, 0, "chromium failed (%d): %s", rc, log);
    cr_assert_eq(console_lines(log), 0, "console messages while loading the dashboard:\n%s", log);
    cr_assert_eq(count(dom, "<script"), 0);
    cr_assert_eq(count(dom, "<svg"), 1, "one task, one trend chart");
    cr_assert_eq(count(dom, "class=\"point\""), 9, "3 arms x 3 runs");
    cr_assert_not_null(strstr(dom, "(verdict changed)"));
    free(dom); free(log); free(tmp);
}
