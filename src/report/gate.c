/* gate.c — the CI gate (gate.h): threshold checks, the baseline drop test (exact McNemar
 * on paired items, else a z test from the CIs: se = (hi - lo) / (2 z_{(1+level)/2}),
 * z = drop / sqrt(se_b^2 + se_c^2), p = 2 (1 - Phi(|z|))), and text / JUnit output.
 * Deliberately not here: exit codes and argument parsing (tools/tunewise/cmd_gate.c). */
#include "report/gate.h"
#include "score/stats.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

void tw_gate_default_opts(tw_gate_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_drop = 0;
    o->max_p95_ms = NAN;
    o->max_cost_per_call = NAN;
    o->alpha = 0.05;
}

static tw_gate_check *add(tw_gate_result *res, bool pass, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tw_gate_check *add(tw_gate_result *res, bool pass, const char *name, const char *fmt, ...)
{
    tw_gate_check *c = &res->checks[res->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->pass = pass;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    if (!pass) res->pass = false;
    return c;
}

static bool find_metric(const tw_rep_arm *a, const char *name, double *v, double *lo, double *hi)
{
    if (strcmp(name, a->metric_name) == 0) { *v = a->metric; *lo = a->lo; *hi = a->hi; return isfinite(*v); }
    for (size_t i = 0; i < a->n_extra; i++)
        if (strcmp(a->extra_names[i], name) == 0) {
            *v = a->extra_value[i]; *lo = a->extra_lo[i]; *hi = a->extra_hi[i];
            return isfinite(*v);
        }
    return false;
}

/* ---- paired correctness ------------------------------------------------------------ */

typedef struct pred_file {
    tw_line_reader lr;
    char path[4200];
} pred_file;

/* Next row: id and whether it is right. TW_DONE at end. */
static tw_status next_row(pred_file *f, char *id, size_t idcap, bool *right, tw_error *err)
{
    const char *line;
    size_t len;
    tw_status st;
    while ((st = tw_line_reader_next(&f->lr, &line, &len, err)) == TW_OK && len == 0) {}
    if (st) return st;
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    if (!json_is_object(o)) {
        json_decref(o);
        return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: not a JSON object", f->path, f->lr.line_no);
    }
    const char *i = json_string_value(json_object_get(o, "id"));
    const char *ref = json_string_value(json_object_get(o, "reference"));
    const char *ans = json_string_value(json_object_get(o, "parsed"));
    if (!ans) ans = json_string_value(json_object_get(o, "prediction"));
    json_t *valid = json_object_get(o, "valid");
    snprintf(id, idcap, "%s", i ? i : "");
    *right = ref && ans && strcmp(ref, ans) == 0 && !json_is_false(valid);
    bool ok = i && ref;
    json_decref(o);
    if (!ok) return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: a row without id or reference cannot be paired", f->path, f->lr.line_no);
    return TW_OK;
}

tw_status tw_gate_paired_counts(const char *base_dir, const char *cand_dir, uint64_t *b, uint64_t *c, uint64_t *n, double *base_acc,
                                double *cand_acc, tw_error *err)
{
    pred_file f[2];
    const char *dirs[2] = {base_dir, cand_dir};
    *b = *c = *n = 0;
    uint64_t right[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        snprintf(f[k].path, sizeof f[k].path, "%s/predictions.jsonl", dirs[k]);
        if (tw_line_reader_open(&f[k].lr, f[k].path, TW_MAX_LINE_DEFAULT, err)) {
            if (k) tw_line_reader_close(&f[0].lr);
            return err->status;
        }
    }
    tw_status st = TW_OK;
    for (;;) {
        char id[2][512];
        bool r[2];
        tw_status s0 = next_row(&f[0], id[0], sizeof id[0], &r[0], err);
        if (s0 != TW_OK && s0 != TW_DONE) { st = s0; break; }
        tw_status s1 = next_row(&f[1], id[1], sizeof id[1], &r[1], err);
        if (s1 != TW_OK && s1 != TW_DONE) { st = s1; break; }
        if (s0 == TW_DONE && s1 == TW_DONE) break;
        if (s0 != s1) { st = tw_error_set(err, TW_ERR_INVALID, "%s and %s have different numbers of rows", f[0].path, f[1].path); break; }
        if (strcmp(id[0], id[1]) != 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: id '%s' where %s has '%s' (not the same items)", f[1].path, f[1].lr.line_no, id[1], f[0].path, id[0]);
            break;
        }
        (*n)++;
        right[0] += r[0];
        right[1] += r[1];
        if (r[0] && !r[1]) (*b)++;
        if (!r[0] && r[1]) (*c)++;
    }
    tw_line_reader_close(&f[0].lr);
    tw_line_reader_close(&f[1].lr);
    if (!st && *n == 0) st = tw_error_set(err, TW_ERR_INVALID, "%s: no rows to pair", f[0].path);
    if (!st) {
        *base_acc = (double)right[0] / (double)*n;
        *cand_acc = (double)right[1] / (double)*n;
    }
    return st;
}

/* ---- the gate ------------------------------------------------------------------------ */

static double ci_z(const tw_rep_arm *a)
{
    double level = isfinite(a->ci_level) && a->ci_level > 0 && a->ci_level < 1 ? a->ci_level : 0.95;
    return tw_norm_ppf(0.5 + level / 2);
}

static void drop_check(const tw_rep_arm *cand, const tw_rep_arm *base, const tw_gate_opts *o, tw_gate_result *res)
{
    const char *m = cand->metric_name;
    double drop = base->metric - cand->metric;
    char name[96];
    snprintf(name, sizeof name, "%s drop vs baseline", m);
    if (drop <= o->max_drop) {
        add(res, true, name, "%s %.4f vs baseline %.4f: change %+.4f, within the allowed drop of %.4f", m, cand->metric, base->metric, -drop,
            o->max_drop);
        return;
    }
    if (o->strict) {
        add(res, false, name, "%s %.4f vs baseline %.4f: drop %.4f exceeds the allowed %.4f (strict: no significance test)", m, cand->metric,
            base->metric, drop, o->max_drop);
        return;
    }
    /* paired exact test when both runs scored the same items and the metric is accuracy */
    if (strcmp(m, "accuracy") == 0 && cand->run_dir && base->run_dir) {
        uint64_t b, c, n;
        double ba, ca;
        tw_error e;
        tw_error_clear(&e);
        if (tw_gate_paired_counts(base->run_dir, cand->run_dir, &b, &c, &n, &ba, &ca, &e) == TW_OK &&
            fabs(ba - base->metric) <= 0.5 / (double)n && fabs(ca - cand->metric) <= 0.5 / (double)n) {
            double p = tw_mcnemar_exact(b, c);
            bool sig = p < o->alpha;
            add(res, !sig, name,
                "%s %.4f vs baseline %.4f: drop %.4f exceeds the allowed %.4f and is %s (paired exact McNemar over %llu items: "
                "%llu only baseline right, %llu only candidate right, p = %.3g, alpha %.3g)",
                m, cand->metric, base->metric, drop, o->max_drop, sig ? "significant: regression" : "not significant: treated as noise",
                (unsigned long long)n, (unsigned long long)b, (unsigned long long)c, p, o->alpha);
            return;
        }
    }
    if (!isfinite(cand->lo) || !isfinite(cand->hi) || !isfinite(base->lo) || !isfinite(base->hi)) {
        add(res, false, name, "%s %.4f vs baseline %.4f: drop %.4f exceeds the allowed %.4f and there are no CIs to test it against noise", m,
            cand->metric, base->metric, drop, o->max_drop);
        return;
    }
    double se_c = (cand->hi - cand->lo) / (2 * ci_z(cand)), se_b = (base->hi - base->lo) / (2 * ci_z(base));
    double se = sqrt(se_c * se_c + se_b * se_b);
    double p = se > 0 ? 2 * (1 - tw_norm_cdf(fabs(drop) / se)) : 0.0;
    bool sig = p < o->alpha;
    add(res, !sig, name,
        "%s %.4f [%.4f, %.4f] vs baseline %.4f [%.4f, %.4f]: drop %.4f exceeds the allowed %.4f and is %s (unpaired z test from the CIs, "
        "p = %.3g, alpha %.3g)",
        m, cand->metric, cand->lo, cand->hi, base->metric, base->lo, base->hi, drop, o->max_drop,
        sig ? "significant: regression" : "not significant: treated as noise", p, o->alpha);
}

tw_status tw_gate_run(const tw_rep_arm *cand, const tw_rep_arm *base, const tw_gate_opts *o, tw_gate_result *res, tw_error *err)
{
    memset(res, 0, sizeof *res);
    res->pass = true;
    if (o->n_min > TW_GATE_MAX_MIN) return tw_error_set(err, TW_ERR_INVALID, "gate: at most %d --min thresholds", TW_GATE_MAX_MIN);
    if (!(o->max_drop >= 0) || !(o->alpha > 0 && o->alpha < 1))
        return tw_error_set(err, TW_ERR_INVALID, "gate: max drop must be >= 0 and alpha in (0, 1)");
    for (size_t i = 0; i < o->n_min; i++) {
        double v, lo, hi;
        if (!isfinite(o->min_value[i])) return tw_error_set(err, TW_ERR_INVALID, "gate: --min %s: threshold is not a number", o->min_name[i]);
        if (!find_metric(cand, o->min_name[i], &v, &lo, &hi))
            return tw_error_set(err, TW_ERR_INVALID, "gate: the run has no metric '%s' (its primary metric is '%s')", o->min_name[i],
                                cand->metric_name);
        char name[96];
        snprintf(name, sizeof name, "min %s", o->min_name[i]);
        if (o->strict) {
            bool ok = isfinite(lo) && lo >= o->min_value[i];
            add(res, ok, name, "%s %.4f, CI lower bound %.4f %s %.4f (strict: the whole CI must clear it)", o->min_name[i], v, lo, ok ? ">=" : "<",
                o->min_value[i]);
        } else {
            bool ok = v >= o->min_value[i];
            add(res, ok, name, "%s %.4f %s %.4f (CI [%.4f, %.4f])", o->min_name[i], v, ok ? ">=" : "<", o->min_value[i], lo, hi);
        }
    }
    if (!isnan(o->max_p95_ms)) {
        double p95 = tw_rep_arm_latency_q(cand, 0.95);
        if (!isfinite(p95)) add(res, false, "p95 latency", "no latency measured in the run; ceiling %.4g ms", o->max_p95_ms);
        else add(res, p95 <= o->max_p95_ms, "p95 latency", "p95 %.4g ms %s ceiling %.4g ms (%zu calls)", p95, p95 <= o->max_p95_ms ? "<=" : ">",
                 o->max_p95_ms, cand->n_latency);
    }
    if (!isnan(o->max_cost_per_call)) {
        double c = cand->cost_per_call;
        if (!isfinite(c)) add(res, false, "cost per call", "no cost recorded in the run; ceiling USD %.4g", o->max_cost_per_call);
        else add(res, c <= o->max_cost_per_call, "cost per call", "USD %.4g per call %s ceiling USD %.4g", c, c <= o->max_cost_per_call ? "<=" : ">",
                 o->max_cost_per_call);
    }
    if (base) {
        if (strcmp(base->metric_name, cand->metric_name) != 0)
            return tw_error_set(err, TW_ERR_INVALID, "gate: baseline primary metric '%s' differs from the run's '%s'", base->metric_name,
                                cand->metric_name);
        if (*base->data_hash && *cand->data_hash && strcmp(base->data_hash, cand->data_hash) != 0)
            add(res, true, "same data", "note: the baseline was scored on different data (data hash %.12s vs %.12s): the comparison is unpaired",
                base->data_hash, cand->data_hash);
        drop_check(cand, base, o, res);
    }
    if (res->n == 0) add(res, true, "no checks", "nothing to check: give --min, --max-p95-ms, --max-cost-per-call or --baseline");
    return TW_OK;
}

tw_status tw_gate_text(tw_buf *out, const tw_gate_result *res)
{
    tw_status st = TW_OK;
    for (size_t i = 0; i < res->n && !st; i++)
        st = tw_buf_printf(out, "%s  %s: %s\n", res->checks[i].pass ? "PASS" : "FAIL", res->checks[i].name, res->checks[i].detail);
    size_t failed = 0;
    for (size_t i = 0; i < res->n; i++) failed += !res->checks[i].pass;
    return st ? st : tw_buf_printf(out, "gate %s: %zu check%s, %zu failed\n", res->pass ? "passed" : "FAILED", res->n, res->n == 1 ? "" : "s", failed);
}

tw_status tw_gate_junit(tw_buf *out, const tw_gate_result *res, const char *suite)
{
    size_t failed = 0;
    for (size_t i = 0; i < res->n; i++) failed += !res->checks[i].pass;
    tw_status st = tw_buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"");
    st = st ? st : tw_html_escape(out, suite ? suite : "tunewise gate");
    st = st ? st : tw_buf_printf(out, "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\">\n", res->n, failed);
    for (size_t i = 0; i < res->n && !st; i++) {
        st = tw_buf_puts(out, "  <testcase classname=\"tunewise.gate\" name=\"");
        st = st ? st : tw_html_escape(out, res->checks[i].name);
        st = st ? st : tw_buf_puts(out, "\">");
        if (!res->checks[i].pass) {
            st = st ? st : tw_buf_puts(out, "<failure message=\"");
            st = st ? st : tw_html_escape(out, res->checks[i].detail);
            st = st ? st : tw_buf_puts(out, "\">");
            st = st ? st : tw_html_escape(out, res->checks[i].detail);
            st = st ? st : tw_buf_puts(out, "</failure>");
        } else {
            st = st ? st : tw_buf_puts(out, "<system-out>");
            st = st ? st : tw_html_escape(out, res->checks[i].detail);
            st = st ? st : tw_buf_puts(out, "</system-out>");
        }
        st = st ? st : tw_buf_puts(out, "</testcase>\n");
    }
    return st ? st : tw_buf_puts(out, "</testsuite>\n</testsuites>\n");
}
