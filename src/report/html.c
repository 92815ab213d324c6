/* html.c — report.html: one self-contained HTML5 file (inline CSS, inline SVG charts from
 * svg.c, no script, no external resource of any kind) with the verdict, the comparison
 * table and six charts: metric per arm with CI bars, learning curve vs prompting lines,
 * cost vs monthly volume with break-even points, per-class F1, confusion heat map and
 * latency distribution. Each chart is a <figure> with a <figcaption>; the SVG carries
 * role="img", <title> and <desc> text alternatives. All user text is escaped.
 * Deliberately not here: computing any of the numbers (report.c loads, decide/ computes). */
#include "report/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#222;background:#fff}"
    "h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}"
    ".meta{color:#555}.verdict{background:#eef5ff;border-left:5px solid #1f5fa8;padding:10px 14px;margin:12px 0}"
    ".verdict strong{font-size:1.15em}table{border-collapse:collapse;margin:8px 0;font-size:.92em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}td{white-space:nowrap}.scroll{overflow-x:auto}th:first-child,td:first-child{text-align:left}"
    "th{background:#f3f3f3}figure{margin:12px 16px 12px 0;display:inline-table;vertical-align:top}"
    "figcaption{display:table-caption;caption-side:bottom;color:#444;font-size:.9em;padding-top:4px}svg.chart{max-width:100%;height:auto;border:1px solid #eee}"
    "code{font-size:.9em}.muted{color:#777}";

static tw_status esc(tw_buf *o, const char *s) { return tw_html_escape(o, s ? s : ""); }

static void fnum(char *b, size_t cap, double v, const char *fmt)
{
    if (!isfinite(v)) snprintf(b, cap, "–");
    else snprintf(b, cap, fmt, v);
}

static const char *metric_of(const tw_report *r)
{
    if (r->metric_name && *r->metric_name) return r->metric_name;
    return r->n_arms && *r->arms[0].metric_name ? r->arms[0].metric_name : "metric";
}

/* <figure> ... <figcaption>caption</figcaption></figure> around an already-rendered chart */
static tw_status figure_open(tw_buf *o) { return tw_buf_puts(o, "<figure>\n"); }
static tw_status figure_close(tw_buf *o, const char *caption)
{
    tw_status st = tw_buf_puts(o, "<figcaption>");
    st = st ? st : esc(o, caption);
    return st ? st : tw_buf_puts(o, "</figcaption></figure>\n");
}

static tw_status chart_metric(tw_buf *o, const tw_report *r, tw_error *err)
{
    const char *metric = metric_of(r);
    tw_svg_bar *b = calloc(r->n_arms ? r->n_arms : 1, sizeof *b);
    tw_buf desc = {0}, title = {0};
    if (!b) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    tw_status st = tw_buf_printf(&title, "%s per arm", metric);
    st = st ? st : tw_buf_printf(&desc, "Bar chart of %s for each arm with confidence-interval error bars:", metric);
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        const tw_rep_arm *a = &r->arms[i];
        b[i] = (tw_svg_bar){a->name, a->metric, a->lo, a->hi};
        st = tw_buf_printf(&desc, " %s %.4g", a->name, a->metric);
        if (!st && isfinite(a->lo)) st = tw_buf_printf(&desc, " (CI %.4g to %.4g)", a->lo, a->hi);
        st = st ? st : tw_buf_puts(&desc, i + 1 < r->n_arms ? ";" : ".");
    }
    if (!st && isfinite(r->target)) st = tw_buf_printf(&desc, " Dashed line: target %.4g.", r->target);
    if (st) { free(b); tw_buf_free(&desc); tw_buf_free(&title); return tw_error_set(err, st, "report: out of memory"); }
    tw_svg_frame f = {"metric", title.data, desc.data, "arm", metric, 0, 0};
    st = figure_open(o);
    st = st ? st : tw_svg_bars(o, &f, b, r->n_arms, r->target, "target", err);
    st = st ? st : figure_close(o, "Error bars: confidence interval of each arm's metric (bootstrap). Overlapping bars do not prove equality; see the paired tests.");
    free(b);
    tw_buf_free(&desc);
    tw_buf_free(&title);
    return st;
}

static tw_status chart_learning(tw_buf *o, const tw_report *r, tw_error *err)
{
    tw_svg_series *s = calloc(r->n_learning ? r->n_learning : 1, sizeof *s);
    tw_svg_hline *h = calloc(r->n_hlines ? r->n_hlines : 1, sizeof *h);
    if (!s || !h) { free(s); free(h); return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory"); }
    double xmin = INFINITY, xmax = -INFINITY;
    tw_buf desc = {0};
    tw_status st = tw_buf_printf(&desc, "Line chart of %s against the number of training examples.", metric_of(r));
    for (size_t i = 0; i < r->n_learning && !st; i++) {
        const tw_rep_series *l = &r->learning[i];
        s[i] = (tw_svg_series){l->name, l->x, l->y, l->lo, l->hi, l->n};
        for (size_t j = 0; j < l->n; j++)
            if (l->x[j] > 0) { xmin = fmin(xmin, l->x[j]); xmax = fmax(xmax, l->x[j]); }
        if (l->n) st = tw_buf_printf(&desc, " %s: %.4g at %.0f examples to %.4g at %.0f.", l->name, l->y[0], l->x[0], l->y[l->n - 1], l->x[l->n - 1]);
    }
    for (size_t i = 0; i < r->n_hlines && !st; i++) {
        h[i] = (tw_svg_hline){r->hlines[i].name, r->hlines[i].value};
        st = tw_buf_printf(&desc, " Dashed line %s (prompting, no training): %.4g.", r->hlines[i].name, r->hlines[i].value);
    }
    tw_svg_frame f = {"learning", "Learning curve vs prompting", desc.data, "training examples", metric_of(r), 0, 0};
    st = st ? tw_error_set(err, st, "report: out of memory") : figure_open(o);
    st = st ? st : tw_svg_lines(o, &f, s, r->n_learning, h, r->n_hlines, NULL, 0, isfinite(xmin) && xmax / xmin >= 20, false, err);
    st = st ? st : figure_close(o, "Fine-tuned arms by training-set size (log scale when the sizes span a wide range); dashed lines are prompting arms, which need no training data.");
    free(s);
    free(h);
    tw_buf_free(&desc);
    return st;
}

static tw_status chart_cost(tw_buf *o, const tw_report *r, tw_error *err)
{
    tw_svg_series *s = calloc(r->n_cost ? r->n_cost : 1, sizeof *s);
    tw_svg_marker *m = calloc(r->n_breakeven ? r->n_breakeven : 1, sizeof *m);
    char (*lab)[160] = calloc(r->n_breakeven ? r->n_breakeven : 1, sizeof *lab);
    if (!s || !m || !lab) { free(s); free(m); free(lab); return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory"); }
    bool pos = true;
    tw_buf desc = {0};
    tw_status st = tw_buf_puts(&desc, "Line chart of monthly cost in USD against monthly call volume for each arm.");
    for (size_t i = 0; i < r->n_cost; i++) {
        s[i] = (tw_svg_series){r->cost[i].name, r->cost[i].x, r->cost[i].y, NULL, NULL, r->cost[i].n};
        for (size_t j = 0; j < r->cost[i].n; j++) pos &= r->cost[i].x[j] > 0 && r->cost[i].y[j] > 0;
    }
    for (size_t i = 0; i < r->n_breakeven && !st; i++) {
        const tw_rep_breakeven *b = &r->breakeven[i];
        snprintf(lab[i], sizeof lab[i], "%s = %s at %.3g/month", b->a, b->b, b->volume);
        m[i] = (tw_svg_marker){lab[i], b->volume, b->cost};
        st = tw_buf_printf(&desc, " Break-even between %s and %s at %.0f calls per month (USD %.2f per month).", b->a, b->b, b->volume, b->cost);
    }
    tw_svg_frame f = {"cost", "Cost vs monthly volume", desc.data, "calls per month", "USD per month", 0, 0};
    st = st ? tw_error_set(err, st, "report: out of memory") : figure_open(o);
    st = st ? st : tw_svg_lines(o, &f, s, r->n_cost, NULL, 0, m, r->n_breakeven, pos, pos, err);
    st = st ? st : figure_close(o, "Monthly cost of each arm as the call volume grows (log-log axes); circles mark break-even volumes where two arms cost the same.");
    free(s);
    free(m);
    free(lab);
    tw_buf_free(&desc);
    return st;
}

static tw_status chart_f1(tw_buf *o, const tw_rep_arm *a, size_t idx, tw_error *err)
{
    tw_svg_bar *b = calloc(a->n_labels, sizeof *b);
    if (!b) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    tw_buf desc = {0}, title = {0};
    char id[32];
    snprintf(id, sizeof id, "f1-%zu", idx);
    tw_status st = tw_buf_printf(&title, "Per-class F1: %s", a->name);
    st = st ? st : tw_buf_printf(&desc, "Bar chart of the F1 score of each class for arm %s:", a->name);
    for (size_t i = 0; i < a->n_labels && !st; i++) {
        b[i] = (tw_svg_bar){a->labels[i], a->f1[i], NAN, NAN};
        st = tw_buf_printf(&desc, " %s %.3g%s", a->labels[i], a->f1[i], i + 1 < a->n_labels ? ";" : ".");
    }
    int w = (int)(70 + 26 * a->n_labels);
    tw_svg_frame f = {id, title.data, desc.data, "class", "F1", w < 480 ? 480 : w, 0};
    st = st ? tw_error_set(err, st, "report: out of memory") : figure_open(o);
    st = st ? st : tw_svg_bars(o, &f, b, a->n_labels, NAN, NULL, err);
    st = st ? st : figure_close(o, "F1 per class (harmonic mean of precision and recall).");
    free(b);
    tw_buf_free(&desc);
    tw_buf_free(&title);
    return st;
}

static tw_status chart_confusion(tw_buf *o, const tw_rep_arm *a, size_t idx, tw_error *err)
{
    tw_buf desc = {0}, title = {0};
    char id[32];
    snprintf(id, sizeof id, "confusion-%zu", idx);
    tw_status st = tw_buf_printf(&title, "Confusion matrix: %s", a->name);
    st = st ? st : tw_buf_printf(&desc, "Heat map of the confusion matrix of arm %s: rows are reference classes, columns predicted classes; %zu by %zu cells, shade = share of the row.",
                                 a->name, a->n_labels, a->n_cols);
    tw_svg_frame f = {id, title.data, desc.data, "predicted", "reference", 0, 0};
    st = st ? tw_error_set(err, st, "report: out of memory") : figure_open(o);
    st = st ? st : tw_svg_heatmap(o, &f, (const char *const *)a->labels, a->n_labels, (const char *const *)a->cols, a->n_cols, a->confusion, err);
    st = st ? st : figure_close(o, "Counts of reference (row) vs predicted (column) classes; \"(invalid)\" collects outputs outside the label set.");
    tw_buf_free(&desc);
    tw_buf_free(&title);
    return st;
}

static tw_status chart_latency(tw_buf *o, const tw_report *r, tw_error *err)
{
    tw_svg_group *g = calloc(r->n_arms ? r->n_arms : 1, sizeof *g);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    double lo = INFINITY, hi = -INFINITY;
    tw_buf desc = {0};
    tw_status st = tw_buf_puts(&desc, "Box plots of per-call latency in milliseconds for each arm:");
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        const tw_rep_arm *a = &r->arms[i];
        g[i] = (tw_svg_group){a->name, a->latency_ms, a->n_latency};
        for (size_t j = 0; j < a->n_latency; j++)
            if (a->latency_ms[j] > 0) { lo = fmin(lo, a->latency_ms[j]); hi = fmax(hi, a->latency_ms[j]); }
        st = tw_buf_printf(&desc, " %s median %.3g ms, p95 %.3g ms%s", a->name, tw_rep_arm_latency_q(a, 0.5), tw_rep_arm_latency_q(a, 0.95),
                           i + 1 < r->n_arms ? ";" : ".");
    }
    tw_svg_frame f = {"latency", "Latency per call", desc.data, "milliseconds per call", NULL, 0, 0};
    st = st ? tw_error_set(err, st, "report: out of memory") : figure_open(o);
    st = st ? st : tw_svg_boxes(o, &f, g, r->n_arms, isfinite(lo) && hi / lo > 50, err);
    st = st ? st : figure_close(o, "Whiskers p5–p95, box p25–p75, thick line the median (log scale when arms differ by orders of magnitude).");
    free(g);
    tw_buf_free(&desc);
    return st;
}

static tw_status arms_table(tw_buf *o, const tw_report *r)
{
    char v[8][64];
    tw_status st = tw_buf_puts(o, "<div class=\"scroll\"><table><caption class=\"muted\">Arms compared</caption>\n<tr><th scope=\"col\">arm</th><th scope=\"col\">kind</th><th scope=\"col\">");
    st = st ? st : esc(o, metric_of(r));
    st = st ? st : tw_buf_puts(o, "</th><th scope=\"col\">CI</th><th scope=\"col\">n</th><th scope=\"col\">invalid</th><th scope=\"col\">p50 ms</th>"
                                  "<th scope=\"col\">p95 ms</th><th scope=\"col\">tokens in</th><th scope=\"col\">tokens out</th><th scope=\"col\">$/call</th>"
                                  "<th scope=\"col\">human rating</th></tr>\n");
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        const tw_rep_arm *a = &r->arms[i];
        fnum(v[0], 64, a->metric, "%.4f");
        if (isfinite(a->lo) && isfinite(a->hi)) snprintf(v[1], 64, "[%.4f, %.4f]", a->lo, a->hi);
        else snprintf(v[1], 64, "–");
        fnum(v[2], 64, a->invalid_rate, "%.3f");
        fnum(v[3], 64, tw_rep_arm_latency_q(a, 0.5), "%.3g");
        fnum(v[4], 64, tw_rep_arm_latency_q(a, 0.95), "%.3g");
        fnum(v[5], 64, a->tokens_in, "%.1f");
        fnum(v[6], 64, a->tokens_out, "%.1f");
        fnum(v[7], 64, a->cost_per_call, "%.3g");
        char rev[96] = "–";
        if (a->n_rated) snprintf(rev, sizeof rev, "%.3g (n=%zu)", a->review_mean, a->n_rated);
        st = tw_buf_puts(o, "<tr><th scope=\"row\">");
        st = st ? st : esc(o, a->name);
        st = st ? st : tw_buf_puts(o, "</th><td>");
        st = st ? st : esc(o, a->kind);
        st = st ? st : tw_buf_printf(o, "</td><td>%s</td><td>%s</td><td>%zu</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
                                     v[0], v[1], a->n, v[2], v[3], v[4], v[5], v[6], v[7], rev);
    }
    return st ? st : tw_buf_puts(o, "</table></div>\n");
}

static tw_status provenance(tw_buf *o, const tw_report *r)
{
    tw_status st = tw_buf_puts(o, "<h2 id=\"provenance\">Provenance</h2>\n<div class=\"scroll\"><table><tr><th scope=\"col\">arm</th><th scope=\"col\">run directory</th>"
                                  "<th scope=\"col\">config</th><th scope=\"col\">model</th><th scope=\"col\">data</th><th scope=\"col\">commit</th></tr>\n");
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        const tw_rep_arm *a = &r->arms[i];
        st = tw_buf_puts(o, "<tr><th scope=\"row\">");
        st = st ? st : esc(o, a->name);
        st = st ? st : tw_buf_puts(o, "</th><td><code>");
        st = st ? st : esc(o, a->run_dir ? a->run_dir : "–");
        const char *h[4] = {a->config_hash, a->model_hash, a->data_hash, a->git_commit};
        for (int k = 0; k < 4 && !st; k++) {
            st = tw_buf_puts(o, "</code></td><td><code>");
            st = st ? st : tw_html_escape_trunc(o, h[k], 12);
        }
        st = st ? st : tw_buf_puts(o, "</code></td></tr>\n");
    }
    return st ? st : tw_buf_puts(o, "</table></div>\n");
}

tw_status tw_report_html(tw_buf *o, const tw_report *r, tw_error *err)
{
    tw_status st = tw_buf_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n<title>");
    st = st ? st : esc(o, r->title);
    st = st ? st : tw_buf_printf(o, "</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<h1>", CSS);
    st = st ? st : esc(o, r->title);
    st = st ? st : tw_buf_puts(o, "</h1>\n<p class=\"meta\">");
    if (!st && r->task && *r->task) {
        st = tw_buf_puts(o, "Task <strong>");
        st = st ? st : esc(o, r->task);
        st = st ? st : tw_buf_puts(o, "</strong> · ");
    }
    st = st ? st : tw_buf_puts(o, "primary metric <strong>");
    st = st ? st : esc(o, metric_of(r));
    st = st ? st : tw_buf_puts(o, "</strong>");
    if (!st && isfinite(r->target)) st = tw_buf_printf(o, " · target %.4g", r->target);
    st = st ? st : tw_buf_printf(o, " · %zu arm%s</p>\n", r->n_arms, r->n_arms == 1 ? "" : "s");
    if (!st && r->verdict && *r->verdict) {
        st = tw_buf_puts(o, "<section class=\"verdict\" aria-labelledby=\"verdict-h\"><h2 id=\"verdict-h\">Verdict</h2><p><strong>");
        st = st ? st : esc(o, r->verdict);
        st = st ? st : tw_buf_puts(o, "</strong></p>\n");
        if (!st && r->n_reasons) {
            st = tw_buf_puts(o, "<ol>\n");
            for (size_t i = 0; i < r->n_reasons && !st; i++) {
                st = tw_buf_puts(o, "<li>");
                st = st ? st : esc(o, r->reasons[i]);
                st = st ? st : tw_buf_puts(o, "</li>\n");
            }
            st = st ? st : tw_buf_puts(o, "</ol>\n");
        }
        st = st ? st : tw_buf_puts(o, "</section>\n");
    }
    st = st ? st : tw_buf_puts(o, "<h2 id=\"arms\">Comparison</h2>\n");
    st = st ? st : arms_table(o, r);
    if (st) return tw_error_set(err, st, "report: out of memory");
    if (r->n_arms && chart_metric(o, r, err)) return err->status;
    if ((r->n_learning || r->n_hlines)) {
        if (tw_buf_puts(o, "<h2 id=\"learning\">Learning curve</h2>\n")) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        if (chart_learning(o, r, err)) return err->status;
    }
    if (r->n_cost) {
        if (tw_buf_puts(o, "<h2 id=\"cost\">Cost</h2>\n")) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        if (chart_cost(o, r, err)) return err->status;
    }
    bool any_labels = false;
    for (size_t i = 0; i < r->n_arms; i++) any_labels |= r->arms[i].n_labels > 0;
    if (any_labels) {
        if (tw_buf_puts(o, "<h2 id=\"classes\">Per-class results</h2>\n")) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        for (size_t i = 0; i < r->n_arms; i++) {
            if (!r->arms[i].n_labels) continue;
            if (chart_f1(o, &r->arms[i], i, err)) return err->status;
            if (r->arms[i].n_cols && chart_confusion(o, &r->arms[i], i, err)) return err->status;
        }
    }
    bool any_lat = false;
    for (size_t i = 0; i < r->n_arms; i++) any_lat |= r->arms[i].n_latency > 0;
    if (any_lat) {
        if (tw_buf_puts(o, "<h2 id=\"latency\">Latency</h2>\n")) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        if (chart_latency(o, r, err)) return err->status;
    }
    st = r->n_arms ? provenance(o, r) : TW_OK;
    st = st ? st : tw_buf_puts(o, "<p class=\"muted\">Generated by tunewise; this page loads nothing from the network.</p>\n</main>\n</body>\n</html>\n");
    if (st) return tw_error_set(err, st, "report: out of memory");
    return TW_OK;
}
