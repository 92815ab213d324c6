/* table.c — renders a tw_score() or tw_score_compare() JSON report as a compact plain
 * text table (ASCII, fixed-width columns) for the terminal.
 * Deliberately not here: computing anything (it only reads the report), colours,
 * Markdown/HTML (report/). */
#include "score/score.h"

#include <math.h>
#include <string.h>

#define OK_OR(x) do { if ((x) != TW_OK) return TW_ERR_NOMEM; } while (0)

/* bleu and chrf are on a 0..100 scale; everything else in [0,1]. */
static bool scale100(const char *name) { return strcmp(name, "bleu") == 0 || strcmp(name, "chrf") == 0; }

static void fmt_num(char *out, size_t cap, const char *metric, const json_t *v, bool sign)
{
    if (!json_is_number(v)) {
        snprintf(out, cap, "n/a");
        return;
    }
    double x = json_number_value(v);
    if (scale100(metric)) snprintf(out, cap, sign ? "%+.2f" : "%.2f", x);
    else snprintf(out, cap, sign ? "%+.4f" : "%.4f", x);
}

static void fmt_ci(char *out, size_t cap, const char *metric, const json_t *ci, bool sign)
{
    if (!json_is_array(ci) || json_array_size(ci) != 2) {
        snprintf(out, cap, "-");
        return;
    }
    char lo[32], hi[32];
    fmt_num(lo, sizeof lo, metric, json_array_get(ci, 0), sign);
    fmt_num(hi, sizeof hi, metric, json_array_get(ci, 1), sign);
    snprintf(out, cap, "[%s, %s]", lo, hi);
}

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static double jdbl(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int name_width(const json_t *obj, int minw, int maxw)
{
    int w = minw;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int l = (int)strlen(key);
        if (l > w) w = l;
    }
    return w > maxw ? maxw : w;
}

static tw_status header(tw_buf *out, const json_t *r, bool paired)
{
    const json_t *ci = json_object_get(r, "ci");
    long long reps = (long long)json_integer_value(json_object_get(ci, "replicates"));
    OK_OR(tw_buf_printf(out, "%s, %lld %sitems, primary metric: %s", jstr(r, "task", "?"),
                        (long long)json_integer_value(json_object_get(r, "n")), paired ? "paired " : "",
                        jstr(r, "primary", "?")));
    if (reps > 0)
        OK_OR(tw_buf_printf(out, ", %g%% CI: percentile bootstrap (B=%lld, seed %lld)\n\n",
                            100 * jdbl(ci, "level"), reps, (long long)json_integer_value(json_object_get(ci, "seed"))));
    else OK_OR(tw_buf_puts(out, ", no confidence intervals (bootstrap off)\n\n"));
    return TW_OK;
}

static tw_status latency_tokens(tw_buf *out, const json_t *lat, const json_t *tok, const char *who)
{
    /* %.3g keeps sub-millisecond latencies (classic arm: ~0.05 ms) readable */
    if (json_is_object(lat))
        OK_OR(tw_buf_printf(out, "latency ms%s: p50 %.3g, p90 %.3g, p99 %.3g, mean %.3g (n=%lld)\n", who,
                            jdbl(lat, "p50"), jdbl(lat, "p90"), jdbl(lat, "p99"), jdbl(lat, "mean"),
                            (long long)json_integer_value(json_object_get(lat, "n"))));
    if (json_is_object(tok))
        OK_OR(tw_buf_printf(out, "tokens%s: in %.0f total, %.1f mean; out %.0f total, %.1f mean\n", who,
                            jdbl(tok, "in_total"), jdbl(tok, "in_mean"), jdbl(tok, "out_total"), jdbl(tok, "out_mean")));
    return TW_OK;
}

static tw_status prf_table(tw_buf *out, const json_t *obj, const char *title)
{
    int w = name_width(obj, (int)strlen(title), 40);
    OK_OR(tw_buf_printf(out, "%-*s  precision  recall      f1  support\n", w, title));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        OK_OR(tw_buf_printf(out, "%-*.*s  %9.4f  %6.4f  %6.4f  %7lld\n", w, w, key, jdbl(v, "precision"),
                            jdbl(v, "recall"), jdbl(v, "f1"), (long long)json_integer_value(json_object_get(v, "support"))));
    }
    return tw_buf_putc(out, '\n');
}

static tw_status single_report(tw_buf *out, const json_t *r)
{
    const json_t *metrics = json_object_get(r, "metrics");
    const char *primary = jstr(r, "primary", "");
    const json_t *ci = json_object_get(r, "ci");
    int w = name_width(metrics, 6, 40) + 2;
    OK_OR(header(out, r, false));
    OK_OR(tw_buf_printf(out, "%-*s  %9s  %g%% CI\n", w, "metric", "value", 100 * jdbl(ci, "level")));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)metrics, key, v) {
        char val[32], iv[80], name[64];
        fmt_num(val, sizeof val, key, json_object_get(v, "value"), false);
        fmt_ci(iv, sizeof iv, key, json_object_get(v, "ci"), false);
        snprintf(name, sizeof name, "%s%s", key, strcmp(key, primary) == 0 ? " *" : "");
        OK_OR(tw_buf_printf(out, "%-*s  %9s  %s\n", w, name, val, iv));
    }
    OK_OR(tw_buf_putc(out, '\n'));

    const json_t *pc = json_object_get(r, "per_class");
    if (json_is_object(pc) && json_object_size(pc) > 0) OK_OR(prf_table(out, pc, "class"));
    const json_t *conf = json_object_get(r, "confusion");
    const json_t *cols = json_object_get(conf, "columns"), *mat = json_object_get(conf, "matrix");
    size_t k = json_array_size(json_object_get(conf, "labels"));
    if (k > 0 && k <= 8 && json_is_array(mat)) {
        int cw = 9;
        for (size_t c = 0; c < json_array_size(cols); c++) {
            int l = (int)strlen(json_string_value(json_array_get(cols, c)));
            if (l > cw) cw = l > 16 ? 16 : l;
        }
        int rw = name_width(pc, 4, 24);
        OK_OR(tw_buf_printf(out, "confusion (rows gold, columns predicted)\n%-*s", rw, ""));
        for (size_t c = 0; c < json_array_size(cols); c++)
            OK_OR(tw_buf_printf(out, " %*.*s", cw, cw, json_string_value(json_array_get(cols, c))));
        OK_OR(tw_buf_putc(out, '\n'));
        for (size_t i = 0; i < json_array_size(mat); i++) {
            const json_t *row = json_array_get(mat, i);
            OK_OR(tw_buf_printf(out, "%-*.*s", rw, rw, json_string_value(json_array_get(cols, i))));
            for (size_t c = 0; c < json_array_size(row); c++)
                OK_OR(tw_buf_printf(out, " %*lld", cw, (long long)json_integer_value(json_array_get(row, c))));
            OK_OR(tw_buf_putc(out, '\n'));
        }
        OK_OR(tw_buf_putc(out, '\n'));
    }
    const json_t *inv = json_object_get(r, "invalid");
    long long n_inv = (long long)json_integer_value(json_object_get(inv, "count"));
    if (n_inv > 0) {
        long long n = (long long)json_integer_value(json_object_get(r, "n"));
        OK_OR(tw_buf_printf(out, "predictions outside the label set: %lld (%.1f%%); most frequent:", n_inv,
                            n ? 100.0 * (double)n_inv / (double)n : 0.0));
        const json_t *top = json_object_get(inv, "top");
        for (size_t i = 0; i < json_array_size(top) && i < 5; i++) {
            const json_t *t = json_array_get(top, i);
            OK_OR(tw_buf_printf(out, "%s \"%s\" (%lld)", i ? "," : "", jstr(t, "prediction", ""),
                                (long long)json_integer_value(json_object_get(t, "count"))));
        }
        OK_OR(tw_buf_puts(out, "\n\n"));
    }
    const json_t *pf = json_object_get(r, "per_field");
    if (json_is_object(pf) && json_object_size(pf) > 0) OK_OR(prf_table(out, pf, "field"));
    const json_t *un = json_object_get(r, "schema_unsupported");
    if (json_array_size(un) > 0) {
        OK_OR(tw_buf_puts(out, "schema keywords not checked:"));
        for (size_t i = 0; i < json_array_size(un); i++)
            OK_OR(tw_buf_printf(out, "%s %s", i ? "," : "", json_string_value(json_array_get(un, i))));
        OK_OR(tw_buf_puts(out, "\n\n"));
    }

    const json_t *sl = json_object_get(r, "slices");
    if (json_is_object(sl) && json_object_size(sl) > 0) {
        int sw = name_width(sl, 5, 32);
        OK_OR(tw_buf_printf(out, "%-*s  %6s  %9s  %g%% CI  (%s)\n", sw, "slice", "n", primary, 100 * jdbl(ci, "level"), primary));
        json_object_foreach((json_t *)sl, key, v) {
            const json_t *pm = json_object_get(json_object_get(v, "metrics"), primary);
            char val[32], iv[80];
            fmt_num(val, sizeof val, primary, json_object_get(pm, "value"), false);
            fmt_ci(iv, sizeof iv, primary, json_object_get(pm, "ci"), false);
            OK_OR(tw_buf_printf(out, "%-*.*s  %6lld  %9s  %s\n", sw, sw, key,
                                (long long)json_integer_value(json_object_get(v, "n")), val, iv));
        }
        OK_OR(tw_buf_putc(out, '\n'));
    }
    OK_OR(latency_tokens(out, json_object_get(r, "latency_ms"), json_object_get(r, "tokens"), ""));
    const json_t *pw = json_object_get(r, "power");
    if (json_is_object(pw)) {
        double mde = jdbl(pw, "mde_independent");
        if (isnan(mde))
            OK_OR(tw_buf_printf(out, "power: no improvement over %s = %.4f is detectable with %lld items\n",
                                jstr(pw, "metric", "?"), jdbl(pw, "baseline"),
                                (long long)json_integer_value(json_object_get(r, "n"))));
        else
            OK_OR(tw_buf_printf(out, "power: with %lld items an independent evaluation detects a gain in %s of %.4f "
                                     "over %.4f (alpha %g, power %g)\n",
                                (long long)json_integer_value(json_object_get(r, "n")), jstr(pw, "metric", "?"), mde,
                                jdbl(pw, "baseline"), jdbl(pw, "alpha"), jdbl(pw, "power")));
    }
    return TW_OK;
}

static tw_status compare_report(tw_buf *out, const json_t *r)
{
    const json_t *diff = json_object_get(r, "diff");
    const char *primary = jstr(r, "primary", "");
    const json_t *ci = json_object_get(r, "ci");
    int w = name_width(diff, 6, 40) + 2;
    OK_OR(header(out, r, true));
    OK_OR(tw_buf_printf(out, "%-*s  %9s  %9s  %9s  %-22s  %7s\n", w, "metric", "A", "B", "B-A", "CI of B-A", "p"));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)diff, key, v) {
        char a[32], b[32], d[32], iv[80], name[64], pv[32];
        fmt_num(a, sizeof a, key, json_object_get(v, "a"), false);
        fmt_num(b, sizeof b, key, json_object_get(v, "b"), false);
        fmt_num(d, sizeof d, key, json_object_get(v, "delta"), true);
        fmt_ci(iv, sizeof iv, key, json_object_get(v, "ci"), true);
        double p = jdbl(v, "p");
        if (isnan(p)) snprintf(pv, sizeof pv, "-");
        else snprintf(pv, sizeof pv, "%.4f", p);
        snprintf(name, sizeof name, "%s%s", key, strcmp(key, primary) == 0 ? " *" : "");
        OK_OR(tw_buf_printf(out, "%-*s  %9s  %9s  %9s  %-22s  %7s\n", w, name, a, b, d, iv, pv));
    }
    OK_OR(tw_buf_putc(out, '\n'));
    const json_t *mc = json_object_get(r, "mcnemar");
    if (json_is_object(mc))
        OK_OR(tw_buf_printf(out, "exact McNemar (%s): only A right %lld, only B right %lld, p = %.4g\n",
                            jstr(mc, "metric", "?"), (long long)json_integer_value(json_object_get(mc, "a_only")),
                            (long long)json_integer_value(json_object_get(mc, "b_only")), jdbl(mc, "p")));
    const json_t *pw = json_object_get(r, "power");
    if (json_is_object(pw))
        OK_OR(tw_buf_printf(out, "power (alpha %g, power %g): discordance %.4f; minimum detectable %s difference "
                                 "%.4f paired, %.4f for independent samples\n",
                            jdbl(pw, "alpha"), jdbl(pw, "power"), jdbl(pw, "discordance"), jstr(pw, "metric", "?"),
                            jdbl(pw, "mde_paired"), jdbl(pw, "mde_independent")));
    const json_t *sl = json_object_get(r, "slices");
    if (json_is_object(sl) && json_object_size(sl) > 0) {
        int sw = name_width(sl, 5, 32);
        OK_OR(tw_buf_printf(out, "\n%-*s  %6s  %9s  %9s  %9s  %-22s  %7s  (%s)\n", sw, "slice", "n", "A", "B", "B-A",
                            "CI of B-A", "p", primary));
        json_object_foreach((json_t *)sl, key, v) {
            char a[32], b[32], d[32], iv[80], pv[32];
            fmt_num(a, sizeof a, primary, json_object_get(v, "a"), false);
            fmt_num(b, sizeof b, primary, json_object_get(v, "b"), false);
            fmt_num(d, sizeof d, primary, json_object_get(v, "delta"), true);
            fmt_ci(iv, sizeof iv, primary, json_object_get(v, "ci"), true);
            double p = jdbl(v, "p");
            if (isnan(p)) snprintf(pv, sizeof pv, "-");
            else snprintf(pv, sizeof pv, "%.4f", p);
            OK_OR(tw_buf_printf(out, "%-*.*s  %6lld  %9s  %9s  %9s  %-22s  %7s\n", sw, sw, key,
                                (long long)json_integer_value(json_object_get(v, "n")), a, b, d, iv, pv));
        }
    }
    const json_t *lat = json_object_get(r, "latency_ms"), *tok = json_object_get(r, "tokens");
    if (lat || tok) OK_OR(tw_buf_putc(out, '\n'));
    OK_OR(latency_tokens(out, json_object_get(lat, "a"), json_object_get(tok, "a"), " A"));
    OK_OR(latency_tokens(out, json_object_get(lat, "b"), json_object_get(tok, "b"), " B"));
    (void)ci;
    return TW_OK;
}

tw_status tw_score_format_table(const json_t *report, tw_buf *out)
{
    if (!json_is_object(report)) return TW_ERR_INVALID;
    if (json_is_object(json_object_get(report, "diff"))) return compare_report(out, report);
    if (json_is_object(json_object_get(report, "metrics"))) return single_report(out, report);
    return TW_ERR_INVALID;
}
