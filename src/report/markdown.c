/* markdown.c — the text outputs of a report: the compact terminal table (+ verdict) and
 * report.md (GitHub-flavoured Markdown tables). Every user string is escaped: table
 * cells escape | and Markdown emphasis characters, and < > & become entities, so a label
 * can neither break a table nor inject HTML into a rendered page.
 * Deliberately not here: charts (html.c / svg.c), any computation beyond formatting. */
#include "report/report.h"

#include <math.h>
#include <string.h>

/* ---- formatting helpers --------------------------------------------------------- */

static void fnum(char *b, size_t cap, double v, const char *fmt)
{
    if (!isfinite(v)) snprintf(b, cap, "–");
    else snprintf(b, cap, fmt, v);
}

static void fci(char *b, size_t cap, double lo, double hi)
{
    if (!isfinite(lo) || !isfinite(hi)) snprintf(b, cap, "–");
    else snprintf(b, cap, "[%.4f, %.4f]", lo, hi);
}

/* Markdown table cell / inline text: entities for HTML, backslash for Markdown syntax,
 * newlines folded to spaces. */
static tw_status md_text(tw_buf *o, const char *s)
{
    tw_status st = TW_OK;
    for (const char *p = s ? s : ""; *p && !st; p++) {
        switch (*p) {
        case '<': st = tw_buf_puts(o, "&lt;"); break;
        case '>': st = tw_buf_puts(o, "&gt;"); break;
        case '&': st = tw_buf_puts(o, "&amp;"); break;
        case '|': case '\\': case '`': case '*': case '_': case '[': case ']': case '#':
            st = tw_buf_putc(o, '\\');
            st = st ? st : tw_buf_putc(o, *p);
            break;
        case '\n': case '\r': case '\t': st = tw_buf_putc(o, ' '); break;
        default:
            if ((unsigned char)*p >= 0x20) st = tw_buf_putc(o, *p);
        }
    }
    return st;
}

static const char *metric_of(const tw_report *r)
{
    if (r->metric_name && *r->metric_name) return r->metric_name;
    return r->n_arms && *r->arms[0].metric_name ? r->arms[0].metric_name : "metric";
}

static double ci_level(const tw_report *r)
{
    for (size_t i = 0; i < r->n_arms; i++)
        if (isfinite(r->arms[i].ci_level)) return r->arms[i].ci_level;
    return 0.95;
}

/* ---- terminal table -------------------------------------------------------------- */

tw_status tw_report_table(tw_buf *o, const tw_report *r, tw_error *err)
{
    size_t w = 8;
    for (size_t i = 0; i < r->n_arms; i++) {
        size_t l = tw_utf8_len(r->arms[i].name, strlen(r->arms[i].name));
        if (l > w) w = l;
    }
    if (w > 32) w = 32;
    char ci[64], p50[32], p95[32], tin[32], tout[32], cost[32], inv[32], val[32];
    tw_status st = tw_buf_printf(o, "%-*s  %-8s  %9s  %-18s  %6s  %7s  %9s  %9s  %13s  %10s\n", (int)w, "arm", "kind", metric_of(r), "CI",
                                 "n", "invalid", "p50 ms", "p95 ms", "tokens in/out", "$/call");
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        const tw_rep_arm *a = &r->arms[i];
        fnum(val, sizeof val, a->metric, "%.4f");
        fci(ci, sizeof ci, a->lo, a->hi);
        fnum(inv, sizeof inv, a->invalid_rate, "%.3f");
        fnum(p50, sizeof p50, tw_rep_arm_latency_q(a, 0.5), "%.3g");
        fnum(p95, sizeof p95, tw_rep_arm_latency_q(a, 0.95), "%.3g");
        fnum(tin, sizeof tin, a->tokens_in, "%.0f");
        fnum(tout, sizeof tout, a->tokens_out, "%.0f");
        fnum(cost, sizeof cost, a->cost_per_call, "%.3g");
        char tok[72];
        snprintf(tok, sizeof tok, "%s/%s", tin, tout);
        /* the name, cut to w code points and padded (printf pads bytes, not characters) */
        size_t nb = 0, chars = 0, len = strlen(a->name);
        while (nb < len && chars < w) {
            uint32_t cp;
            nb += (size_t)tw_utf8_decode((const unsigned char *)a->name + nb, len - nb, &cp);
            chars++;
        }
        st = tw_buf_append(o, a->name, nb);
        for (size_t k = chars; k < w && !st; k++) st = tw_buf_putc(o, ' ');
        st = st ? st : tw_buf_printf(o, "  %-8.8s  %9s  %-18s  %6zu  %7s  %9s  %9s  %13s  %10s\n", a->kind, val, ci, a->n, inv, p50, p95, tok, cost);
    }
    if (!st && r->verdict && *r->verdict) {
        st = tw_buf_printf(o, "\nverdict: %s\n", r->verdict);
        for (size_t i = 0; i < r->n_reasons && !st; i++) st = tw_buf_printf(o, "  %zu. %s\n", i + 1, r->reasons[i]);
    }
    if (st) return tw_error_set(err, st, "report: out of memory");
    return TW_OK;
}

/* ---- report.md ------------------------------------------------------------------ */

tw_status tw_report_markdown(tw_buf *o, const tw_report *r, tw_error *err)
{
    char a1[64], a2[64], a3[64], a4[64], a5[64], a6[64], a7[64];
    const char *metric = metric_of(r);
    tw_status st = tw_buf_puts(o, "# ");
    st = st ? st : md_text(o, r->title);
    st = st ? st : tw_buf_puts(o, "\n\n");
    if (!st && r->task && *r->task) {
        st = tw_buf_puts(o, "Task: **");
        st = st ? st : md_text(o, r->task);
        st = st ? st : tw_buf_puts(o, "** · ");
    }
    st = st ? st : tw_buf_puts(o, "primary metric: **");
    st = st ? st : md_text(o, metric);
    st = st ? st : tw_buf_puts(o, "**");
    if (!st && isfinite(r->target)) st = tw_buf_printf(o, " · target: %.4g", r->target);
    st = st ? st : tw_buf_printf(o, " · %zu arm%s\n\n", r->n_arms, r->n_arms == 1 ? "" : "s");

    if (!st && r->verdict && *r->verdict) {
        st = tw_buf_puts(o, "## Verdict\n\n**");
        st = st ? st : md_text(o, r->verdict);
        st = st ? st : tw_buf_puts(o, "**\n\n");
        for (size_t i = 0; i < r->n_reasons && !st; i++) {
            st = tw_buf_printf(o, "%zu. ", i + 1);
            st = st ? st : md_text(o, r->reasons[i]);
            st = st ? st : tw_buf_puts(o, "\n");
        }
        if (!st && r->n_reasons) st = tw_buf_puts(o, "\n");
    }

    /* arms */
    st = st ? st : tw_buf_puts(o, "## Arms\n\n| arm | kind | ");
    st = st ? st : md_text(o, metric);
    st = st ? st : tw_buf_printf(o, " | %.0f%% CI | n | invalid | p50 ms | p95 ms | tokens in | tokens out | $/call |\n"
                                    "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
                                 100 * ci_level(r));
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        const tw_rep_arm *a = &r->arms[i];
        fnum(a1, sizeof a1, a->metric, "%.4f");
        fci(a2, sizeof a2, a->lo, a->hi);
        fnum(a3, sizeof a3, a->invalid_rate, "%.3f");
        fnum(a4, sizeof a4, tw_rep_arm_latency_q(a, 0.5), "%.3g");
        fnum(a5, sizeof a5, tw_rep_arm_latency_q(a, 0.95), "%.3g");
        fnum(a6, sizeof a6, a->tokens_in, "%.1f");
        fnum(a7, sizeof a7, a->tokens_out, "%.1f");
        char cost[64];
        fnum(cost, sizeof cost, a->cost_per_call, "%.3g");
        st = tw_buf_puts(o, "| ");
        st = st ? st : md_text(o, a->name);
        st = st ? st : tw_buf_puts(o, " | ");
        st = st ? st : md_text(o, a->kind);
        st = st ? st : tw_buf_printf(o, " | %s | %s | %zu | %s | %s | %s | %s | %s | %s |\n", a1, a2, a->n, a3, a4, a5, a6, a7, cost);
    }
    st = st ? st : tw_buf_puts(o, "\n");

    /* per-class F1: union of labels in first-seen order */
    bool any_labels = false;
    for (size_t i = 0; i < r->n_arms; i++) any_labels |= r->arms[i].n_labels > 0;
    if (!st && any_labels) {
        st = tw_buf_puts(o, "## Per-class F1\n\n| class |");
        for (size_t i = 0; i < r->n_arms && !st; i++) {
            st = tw_buf_puts(o, " ");
            st = st ? st : md_text(o, r->arms[i].name);
            st = st ? st : tw_buf_puts(o, " |");
        }
        st = st ? st : tw_buf_puts(o, "\n|---|");
        for (size_t i = 0; i < r->n_arms && !st; i++) st = tw_buf_puts(o, "---:|");
        st = st ? st : tw_buf_puts(o, "\n");
        for (size_t i = 0; i < r->n_arms && !st; i++)
            for (size_t l = 0; l < r->arms[i].n_labels && !st; l++) {
                const char *lab = r->arms[i].labels[l];
                bool seen = false;
                for (size_t k = 0; k < i && !seen; k++)
                    for (size_t m = 0; m < r->arms[k].n_labels; m++)
                        if (strcmp(r->arms[k].labels[m], lab) == 0) { seen = true; break; }
                for (size_t m = 0; m < l && !seen; m++)
                    if (strcmp(r->arms[i].labels[m], lab) == 0) seen = true;
                if (seen) continue;
                st = tw_buf_puts(o, "| ");
                st = st ? st : md_text(o, lab);
                st = st ? st : tw_buf_puts(o, " |");
                for (size_t k = 0; k < r->n_arms && !st; k++) {
                    double f = NAN;
                    for (size_t m = 0; m < r->arms[k].n_labels; m++)
                        if (strcmp(r->arms[k].labels[m], lab) == 0) f = r->arms[k].f1[m];
                    fnum(a1, sizeof a1, f, "%.4f");
                    st = tw_buf_printf(o, " %s |", a1);
                }
                st = st ? st : tw_buf_puts(o, "\n");
            }
        st = st ? st : tw_buf_puts(o, "\n");
    }

    /* learning curves and prompting lines */
    if (!st && (r->n_learning || r->n_hlines)) {
        st = tw_buf_puts(o, "## Learning curve\n\n| series | training examples | ");
        st = st ? st : md_text(o, metric);
        st = st ? st : tw_buf_puts(o, " |\n|---|---:|---:|\n");
        for (size_t i = 0; i < r->n_learning && !st; i++)
            for (size_t j = 0; j < r->learning[i].n && !st; j++) {
                st = tw_buf_puts(o, "| ");
                st = st ? st : md_text(o, r->learning[i].name);
                fnum(a1, sizeof a1, r->learning[i].x[j], "%.0f");
                fnum(a2, sizeof a2, r->learning[i].y[j], "%.4f");
                st = st ? st : tw_buf_printf(o, " | %s | %s |\n", a1, a2);
            }
        for (size_t i = 0; i < r->n_hlines && !st; i++) {
            st = tw_buf_puts(o, "| ");
            st = st ? st : md_text(o, r->hlines[i].name);
            fnum(a2, sizeof a2, r->hlines[i].value, "%.4f");
            st = st ? st : tw_buf_printf(o, " (prompting, no training) | – | %s |\n", a2);
        }
        st = st ? st : tw_buf_puts(o, "\n");
    }

    /* cost */
    if (!st && (r->n_cost || r->n_breakeven)) {
        st = tw_buf_puts(o, "## Cost vs monthly volume\n\n| arm | calls / month | USD / month |\n|---|---:|---:|\n");
        for (size_t i = 0; i < r->n_cost && !st; i++)
            for (size_t j = 0; j < r->cost[i].n && !st; j++) {
                st = tw_buf_puts(o, "| ");
                st = st ? st : md_text(o, r->cost[i].name);
                fnum(a1, sizeof a1, r->cost[i].x[j], "%.0f");
                fnum(a2, sizeof a2, r->cost[i].y[j], "%.2f");
                st = st ? st : tw_buf_printf(o, " | %s | %s |\n", a1, a2);
            }
        st = st ? st : tw_buf_puts(o, "\n");
        for (size_t i = 0; i < r->n_breakeven && !st; i++) {
            fnum(a1, sizeof a1, r->breakeven[i].volume, "%.0f");
            fnum(a2, sizeof a2, r->breakeven[i].cost, "%.2f");
            st = tw_buf_puts(o, "- break-even: ");
            st = st ? st : md_text(o, r->breakeven[i].a);
            st = st ? st : tw_buf_puts(o, " and ");
            st = st ? st : md_text(o, r->breakeven[i].b);
            st = st ? st : tw_buf_printf(o, " cost the same at %s calls/month (USD %s/month)\n", a1, a2);
        }
        if (!st && r->n_breakeven) st = tw_buf_puts(o, "\n");
    }

    /* human review */
    bool any_review = false;
    for (size_t i = 0; i < r->n_arms; i++) any_review |= r->arms[i].n_rated > 0;
    if (!st && any_review) {
        st = tw_buf_puts(o, "## Human review\n\n| arm | rated | mean rating | 95% CI |\n|---|---:|---:|---|\n");
        for (size_t i = 0; i < r->n_arms && !st; i++) {
            const tw_rep_arm *a = &r->arms[i];
            if (!a->n_rated) continue;
            fnum(a1, sizeof a1, a->review_mean, "%.3f");
            fci(a2, sizeof a2, a->review_lo, a->review_hi);
            st = tw_buf_puts(o, "| ");
            st = st ? st : md_text(o, a->name);
            st = st ? st : tw_buf_printf(o, " | %zu | %s | %s |\n", a->n_rated, a1, a2);
        }
        st = st ? st : tw_buf_puts(o, "\n");
    }

    /* provenance */
    bool any_prov = false;
    for (size_t i = 0; i < r->n_arms; i++) any_prov |= r->arms[i].run_dir != NULL || *r->arms[i].config_hash;
    if (!st && any_prov) {
        st = tw_buf_puts(o, "## Provenance\n\n| arm | run | config | model | data | commit |\n|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < r->n_arms && !st; i++) {
            const tw_rep_arm *a = &r->arms[i];
            st = tw_buf_puts(o, "| ");
            st = st ? st : md_text(o, a->name);
            st = st ? st : tw_buf_puts(o, " | ");
            st = st ? st : md_text(o, a->run_dir ? a->run_dir : "–");
            const char *h[4] = {a->config_hash, a->model_hash, a->data_hash, a->git_commit};
            for (int k = 0; k < 4 && !st; k++) {
                char cut[13];
                snprintf(cut, sizeof cut, "%s", h[k]);
                st = tw_buf_puts(o, " | ");
                st = st ? st : md_text(o, cut);
            }
            st = st ? st : tw_buf_puts(o, " |\n");
        }
        st = st ? st : tw_buf_puts(o, "\n");
    }
    st = st ? st : tw_buf_puts(o, "Generated by tunewise (report.html has the charts).\n");
    if (st) return tw_error_set(err, st, "report: out of memory");
    return TW_OK;
}
