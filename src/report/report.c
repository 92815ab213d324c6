/* report.c — the report input structure (report.h): construction, freeing, and the loader
 * that fills one arm from a run directory (docs/eval.md: run.json, metrics.json,
 * predictions.jsonl). Also writes report.md + report.html into a directory.
 * Deliberately not here: rendering (markdown.c, html.c, svg.c), any statistics beyond
 * means and quantiles of per-call measurements. */
#include "report/report.h"

#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dupe(const char *s) { return strdup(s ? s : ""); }

tw_status tw_report_set_str(char **field, const char *value, tw_error *err)
{
    char *c = dupe(value);
    if (!c) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    free(*field);
    *field = c;
    return TW_OK;
}

tw_status tw_report_init(tw_report *r, const char *title, tw_error *err)
{
    memset(r, 0, sizeof *r);
    r->title = dupe(title ? title : "tunewise report");
    r->task = dupe("");
    r->metric_name = dupe("");
    r->verdict = dupe("");
    r->target = NAN;
    r->generated_unix = NAN;
    if (!r->title || !r->task || !r->metric_name || !r->verdict) {
        tw_report_free(r);
        return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    }
    return TW_OK;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

static void arm_free(tw_rep_arm *a)
{
    free(a->name); free(a->kind); free(a->run_dir); free(a->task); free(a->metric_name);
    free_strv(a->extra_names, a->n_extra);
    free(a->extra_value); free(a->extra_lo); free(a->extra_hi);
    free_strv(a->labels, a->n_labels);
    free(a->f1);
    free_strv(a->cols, a->n_cols);
    free(a->confusion);
    free(a->latency_ms);
    free(a->config_hash); free(a->model_hash); free(a->adapter_hash); free(a->data_hash);
    free(a->predictions_sha256); free(a->git_commit);
}

static void series_free(tw_rep_series *s)
{
    free(s->name); free(s->x); free(s->y); free(s->lo); free(s->hi);
}

void tw_report_free(tw_report *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->n_arms; i++) arm_free(&r->arms[i]);
    free(r->arms);
    for (size_t i = 0; i < r->n_learning; i++) series_free(&r->learning[i]);
    free(r->learning);
    for (size_t i = 0; i < r->n_cost; i++) series_free(&r->cost[i]);
    free(r->cost);
    for (size_t i = 0; i < r->n_hlines; i++) free(r->hlines[i].name);
    free(r->hlines);
    for (size_t i = 0; i < r->n_breakeven; i++) { free(r->breakeven[i].a); free(r->breakeven[i].b); }
    free(r->breakeven);
    free_strv(r->reasons, r->n_reasons);
    free(r->title); free(r->task); free(r->metric_name); free(r->verdict);
    memset(r, 0, sizeof *r);
}

tw_status tw_report_add_arm(tw_report *r, const char *name, tw_rep_arm **out, tw_error *err)
{
    if (tw_grow((void **)&r->arms, &r->cap_arms, r->n_arms + 1, sizeof *r->arms, err)) return err ? err->status : TW_ERR_NOMEM;
    tw_rep_arm *a = &r->arms[r->n_arms];
    memset(a, 0, sizeof *a);
    a->name = dupe(name); a->kind = dupe(""); a->task = dupe(""); a->metric_name = dupe("");
    a->config_hash = dupe(""); a->model_hash = dupe(""); a->adapter_hash = dupe(""); a->data_hash = dupe("");
    a->predictions_sha256 = dupe(""); a->git_commit = dupe("");
    a->metric = a->lo = a->hi = a->ci_level = a->invalid_rate = NAN;
    a->tokens_in = a->tokens_out = a->cost_per_call = a->finished_unix = NAN;
    a->review_mean = a->review_lo = a->review_hi = NAN;
    r->n_arms++;
    if (!a->name || !a->kind || !a->task || !a->metric_name || !a->config_hash || !a->model_hash || !a->adapter_hash ||
        !a->data_hash || !a->predictions_sha256 || !a->git_commit)
        return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    *out = a;
    return TW_OK;
}

static double *dup_d(const double *v, size_t n)
{
    if (!v) return NULL;
    double *c = malloc((n ? n : 1) * sizeof *c);
    if (c && n) memcpy(c, v, n * sizeof *c);
    return c;
}

static tw_status add_series(tw_rep_series **arr, size_t *n, const char *name, const double *x, const double *y,
                            const double *lo, const double *hi, size_t len, tw_error *err)
{
    tw_rep_series *g = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    *arr = g;
    tw_rep_series *s = &g[*n];
    memset(s, 0, sizeof *s);
    s->name = dupe(name); s->x = dup_d(x, len); s->y = dup_d(y, len);
    s->lo = dup_d(lo, len); s->hi = dup_d(hi, len); s->n = len;
    (*n)++;
    if (!s->name || !s->x || !s->y || (lo && !s->lo) || (hi && !s->hi)) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    return TW_OK;
}

tw_status tw_report_add_learning(tw_report *r, const char *name, const double *x, const double *y, const double *lo,
                                 const double *hi, size_t n, tw_error *err)
{
    return add_series(&r->learning, &r->n_learning, name, x, y, lo, hi, n, err);
}

tw_status tw_report_add_cost(tw_report *r, const char *name, const double *volume, const double *usd, size_t n, tw_error *err)
{
    return add_series(&r->cost, &r->n_cost, name, volume, usd, NULL, NULL, n, err);
}

tw_status tw_report_add_hline(tw_report *r, const char *name, double value, tw_error *err)
{
    tw_rep_hline *g = realloc(r->hlines, (r->n_hlines + 1) * sizeof *g);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    r->hlines = g;
    g[r->n_hlines].name = dupe(name);
    g[r->n_hlines].value = value;
    if (!g[r->n_hlines++].name) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    return TW_OK;
}

tw_status tw_report_add_breakeven(tw_report *r, const char *a, const char *b, double volume, double cost, tw_error *err)
{
    tw_rep_breakeven *g = realloc(r->breakeven, (r->n_breakeven + 1) * sizeof *g);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    r->breakeven = g;
    tw_rep_breakeven *e = &g[r->n_breakeven++];
    e->a = dupe(a); e->b = dupe(b); e->volume = volume; e->cost = cost;
    if (!e->a || !e->b) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    return TW_OK;
}

tw_status tw_report_set_verdict(tw_report *r, const char *verdict, tw_error *err)
{
    return tw_report_set_str(&r->verdict, verdict, err);
}

tw_status tw_report_add_reason(tw_report *r, const char *reason, tw_error *err)
{
    char **g = realloc(r->reasons, (r->n_reasons + 1) * sizeof *g);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    r->reasons = g;
    g[r->n_reasons] = dupe(reason);
    if (!g[r->n_reasons++]) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    return TW_OK;
}

double tw_rep_arm_latency_q(const tw_rep_arm *a, double q)
{
    if (!a->n_latency) return NAN;
    double *v = malloc(a->n_latency * sizeof *v);
    if (!v) return NAN;
    memcpy(v, a->latency_ms, a->n_latency * sizeof *v);
    qsort(v, a->n_latency, sizeof *v, tw_cmp_double);
    double hpos = (double)(a->n_latency - 1) * q, res;
    size_t i = (size_t)floor(hpos);
    res = i + 1 >= a->n_latency ? v[a->n_latency - 1] : v[i] + (hpos - (double)i) * (v[i + 1] - v[i]);
    free(v);
    return res;
}

/* ---- loading a run directory --------------------------------------------------- */

static json_t *load_json(const char *dir, const char *name, bool required, tw_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!required && !tw_file_exists(path)) return NULL;
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        if (!tw_file_exists(path))
            tw_error_set(err, TW_ERR_IO, "%s: no such file (not a finished run directory; see docs/eval.md)", path);
        else
            tw_error_set(err, TW_ERR_PARSE, "%s: line %d: %s", path, je.line, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        tw_error_set(err, TW_ERR_PARSE, "%s: expected a JSON object", path);
    }
    return json_is_object(j) ? j : NULL;
}

static double jnum(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static tw_status load_metrics(tw_rep_arm *a, const json_t *m, const char *path, tw_error *err)
{
    const char *primary = jstr(m, "primary");
    json_t *metrics = json_object_get(m, "metrics");
    if (!*primary || !json_is_object(metrics))
        return tw_error_set(err, TW_ERR_PARSE, "%s: expected \"primary\" and a \"metrics\" object (tw_score report)", path);
    if (tw_report_set_str(&a->metric_name, primary, err)) return err->status;
    json_t *n = json_object_get(m, "n");
    a->n = json_is_integer(n) && json_integer_value(n) > 0 ? (size_t)json_integer_value(n) : 0;
    a->ci_level = jnum(json_object_get(m, "ci"), "level");
    size_t nm = json_object_size(metrics);
    a->extra_names = calloc(nm ? nm : 1, sizeof *a->extra_names);
    a->extra_value = malloc((nm ? nm : 1) * sizeof(double));
    a->extra_lo = malloc((nm ? nm : 1) * sizeof(double));
    a->extra_hi = malloc((nm ? nm : 1) * sizeof(double));
    if (!a->extra_names || !a->extra_value || !a->extra_lo || !a->extra_hi) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(metrics, key, val) {
        double v = jnum(val, "value"), lo = NAN, hi = NAN;
        json_t *ci = json_object_get(val, "ci");
        if (json_is_array(ci) && json_array_size(ci) == 2) {
            lo = json_is_number(json_array_get(ci, 0)) ? json_number_value(json_array_get(ci, 0)) : NAN;
            hi = json_is_number(json_array_get(ci, 1)) ? json_number_value(json_array_get(ci, 1)) : NAN;
        }
        if (strcmp(key, primary) == 0) { a->metric = v; a->lo = lo; a->hi = hi; }
        if (strcmp(key, "invalid_rate") == 0) a->invalid_rate = v;
        if (!(a->extra_names[a->n_extra] = strdup(key))) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        a->extra_value[a->n_extra] = v;
        a->extra_lo[a->n_extra] = lo;
        a->extra_hi[a->n_extra] = hi;
        a->n_extra++;
    }
    if (!isfinite(a->metric))
        return tw_error_set(err, TW_ERR_PARSE, "%s: primary metric \"%s\" has no numeric value", path, primary);
    /* per-class F1 */
    json_t *pc = json_object_get(m, "per_class"), *labels = json_object_get(m, "labels");
    if (json_is_array(labels) && json_is_object(pc)) {
        size_t nl = json_array_size(labels);
        a->labels = calloc(nl ? nl : 1, sizeof *a->labels);
        a->f1 = malloc((nl ? nl : 1) * sizeof *a->f1);
        if (!a->labels || !a->f1) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        for (size_t i = 0; i < nl; i++) {
            const char *l = json_string_value(json_array_get(labels, i));
            if (!l) return tw_error_set(err, TW_ERR_PARSE, "%s: labels[%zu] is not a string", path, i);
            if (!(a->labels[a->n_labels] = strdup(l))) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
            a->f1[a->n_labels++] = jnum(json_object_get(pc, l), "f1");
        }
    }
    /* confusion matrix: rows follow confusion.labels, which we require to equal labels */
    json_t *conf = json_object_get(m, "confusion");
    json_t *cols = json_object_get(conf, "columns"), *mat = json_object_get(conf, "matrix");
    if (a->n_labels && json_is_array(cols) && json_is_array(mat) && json_array_size(mat) == a->n_labels) {
        size_t nc = json_array_size(cols);
        a->cols = calloc(nc ? nc : 1, sizeof *a->cols);
        a->confusion = calloc(a->n_labels * (nc ? nc : 1), sizeof *a->confusion);
        if (!a->cols || !a->confusion) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
        for (size_t c = 0; c < nc; c++) {
            const char *l = json_string_value(json_array_get(cols, c));
            if (!(a->cols[a->n_cols] = strdup(l ? l : "?"))) return tw_error_set(err, TW_ERR_NOMEM, "report: out of memory");
            a->n_cols++;
        }
        for (size_t r = 0; r < a->n_labels; r++) {
            json_t *row = json_array_get(mat, r);
            if (!json_is_array(row) || json_array_size(row) != nc)
                return tw_error_set(err, TW_ERR_PARSE, "%s: confusion.matrix[%zu] should have %zu entries", path, r, nc);
            for (size_t c = 0; c < nc; c++) a->confusion[r * nc + c] = json_number_value(json_array_get(row, c));
        }
    }
    json_t *hr = json_object_get(m, "human_review");
    if (json_is_object(hr)) {
        json_t *hn = json_object_get(hr, "n");
        a->n_rated = json_is_integer(hn) && json_integer_value(hn) > 0 ? (size_t)json_integer_value(hn) : 0;
        a->review_mean = jnum(hr, "mean");
        json_t *ci = json_object_get(hr, "ci");
        a->review_lo = json_is_number(json_array_get(ci, 0)) ? json_number_value(json_array_get(ci, 0)) : NAN;
        a->review_hi = json_is_number(json_array_get(ci, 1)) ? json_number_value(json_array_get(ci, 1)) : NAN;
    }
    return TW_OK;
}

static tw_status load_predictions(tw_rep_arm *a, const char *dir, tw_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/predictions.jsonl", dir);
    tw_line_reader lr;
    if (tw_line_reader_open(&lr, path, TW_MAX_LINE_DEFAULT, err)) return err->status;
    size_t cap = 0, n_tin = 0, n_tout = 0, n_cost = 0;
    double s_tin = 0, s_tout = 0, s_cost = 0;
    const char *line;
    size_t len;
    tw_status st;
    while ((st = tw_line_reader_next(&lr, &line, &len, err)) == TW_OK) {
        if (len == 0) continue;
        json_error_t je;
        json_t *o = json_loadb(line, len, 0, &je);
        if (!json_is_object(o)) {
            json_decref(o);
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: not a JSON object (%s)", path, lr.line_no, je.text);
            break;
        }
        double lat = jnum(o, "latency_ms"), tin = jnum(o, "tokens_in"), tout = jnum(o, "tokens_out"), cost = jnum(o, "cost");
        json_decref(o);
        if (isfinite(lat)) {
            if (tw_grow((void **)&a->latency_ms, &cap, a->n_latency + 1, sizeof(double), err)) { st = err->status; break; }
            a->latency_ms[a->n_latency++] = lat;
        }
        if (isfinite(tin)) { s_tin += tin; n_tin++; }
        if (isfinite(tout)) { s_tout += tout; n_tout++; }
        if (isfinite(cost)) { s_cost += cost; n_cost++; }
    }
    tw_line_reader_close(&lr);
    if (st != TW_DONE) return st;
    a->tokens_in = n_tin ? s_tin / (double)n_tin : NAN;
    a->tokens_out = n_tout ? s_tout / (double)n_tout : NAN;
    a->cost_per_call = n_cost ? s_cost / (double)n_cost : NAN;
    return TW_OK;
}

tw_status tw_report_add_run(tw_report *r, const char *dir, tw_error *err)
{
    json_t *run = load_json(dir, "run.json", true, err);
    if (!run) return err->status;
    json_t *m = load_json(dir, "metrics.json", true, err);
    if (!m) { json_decref(run); return err->status; }
    /* a unique display name from the directory's base name */
    char tmp[4096], name[4200];
    snprintf(tmp, sizeof tmp, "%s", dir);
    size_t tl = strlen(tmp);
    while (tl > 1 && tmp[tl - 1] == '/') tmp[--tl] = '\0';
    const char *base = basename(tmp);
    snprintf(name, sizeof name, "%s", base);
    for (int k = 2;; k++) {
        bool dup = false;
        for (size_t i = 0; i < r->n_arms; i++)
            if (strcmp(r->arms[i].name, name) == 0) dup = true;
        if (!dup) break;
        snprintf(name, sizeof name, "%s#%d", base, k);
    }
    tw_rep_arm *a;
    tw_status st = tw_report_add_arm(r, name, &a, err);
    json_t *arm = json_object_get(run, "arm"), *ctx = json_object_get(run, "context");
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/metrics.json", dir);
    st = st ? st : tw_report_set_str(&a->run_dir, dir, err);
    st = st ? st : tw_report_set_str(&a->kind, jstr(arm, "name"), err);
    st = st ? st : tw_report_set_str(&a->task, jstr(ctx, "task_name"), err);
    st = st ? st : tw_report_set_str(&a->config_hash, jstr(arm, "config_hash"), err);
    st = st ? st : tw_report_set_str(&a->model_hash, jstr(arm, "model_hash"), err);
    st = st ? st : tw_report_set_str(&a->adapter_hash, jstr(arm, "adapter_hash"), err);
    st = st ? st : tw_report_set_str(&a->data_hash, jstr(json_object_get(run, "data"), "hash"), err);
    st = st ? st : tw_report_set_str(&a->git_commit, jstr(run, "git_commit"), err);
    st = st ? st : tw_report_set_str(&a->predictions_sha256,
                                     jstr(json_object_get(json_object_get(run, "files"), "predictions"), "sha256"), err);
    if (!st) a->finished_unix = jnum(json_object_get(run, "timings"), "finished_unix");
    st = st ? st : load_metrics(a, m, mpath, err);
    st = st ? st : load_predictions(a, dir, err);
    if (!st && !*r->task) st = tw_report_set_str(&r->task, a->task, err);
    if (!st && !*r->metric_name) st = tw_report_set_str(&r->metric_name, a->metric_name, err);
    json_decref(run);
    json_decref(m);
    return st;
}

tw_status tw_report_write_dir(const tw_report *r, const char *dir, tw_error *err)
{
    if (tw_mkdir_p(dir, err)) return err->status;
    tw_buf md = {0}, html = {0};
    char path[4096];
    tw_status st = tw_report_markdown(&md, r, err);
    st = st ? st : tw_report_html(&html, r, err);
    if (!st) {
        snprintf(path, sizeof path, "%s/report.md", dir);
        st = tw_file_write_atomic(path, md.data, md.len, err);
    }
    if (!st) {
        snprintf(path, sizeof path, "%s/report.html", dir);
        st = tw_file_write_atomic(path, html.data, html.len, err);
    }
    tw_buf_free(&md);
    tw_buf_free(&html);
    return st;
}
