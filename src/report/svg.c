/* svg.c — the report charts as inline SVG (SVG 1.1 elements only: svg, title, desc, g,
 * rect, line, polyline, circle, text), plus the HTML/XML text escape every report uses.
 * Accessibility follows the WAI-ARIA "img" role pattern: role="img" with
 * aria-labelledby pointing at the chart's <title> and <desc>.
 * Deliberately not here: statistics (callers pass values and intervals), page layout. */
#include "report/svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const PALETTE[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
#define N_PALETTE (sizeof PALETTE / sizeof PALETTE[0])

/* ---- escaping ------------------------------------------------------------------- */

tw_status tw_html_escape_trunc(tw_buf *out, const char *s, size_t max_chars)
{
    if (!s) return TW_OK;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, chars = 0;
    tw_status st = TW_OK;
    while (i < n && !st) {
        if (chars == max_chars) return tw_buf_puts(out, "\xE2\x80\xA6");   /* … */
        uint32_t cp;
        int len = tw_utf8_decode(p + i, n - i, &cp);
        chars++;
        switch (cp) {
        case '&': st = tw_buf_puts(out, "&amp;"); break;
        case '<': st = tw_buf_puts(out, "&lt;"); break;
        case '>': st = tw_buf_puts(out, "&gt;"); break;
        case '"': st = tw_buf_puts(out, "&quot;"); break;
        case '\'': st = tw_buf_puts(out, "&#39;"); break;
        default:
            if ((cp < 0x20 && cp != '\t' && cp != '\n') || cp == 0x7F) break;
            if (cp == 0xFFFD && len == 1) { st = tw_buf_puts(out, "\xEF\xBF\xBD"); break; }
            st = tw_buf_append(out, p + i, (size_t)len);
        }
        i += (size_t)len;
    }
    return st;
}

tw_status tw_html_escape(tw_buf *out, const char *s) { return tw_html_escape_trunc(out, s, SIZE_MAX); }

/* ---- numbers and axes ------------------------------------------------------------ */

/* Compact label: 3 significant digits, k/M/G suffixes for large magnitudes. */
static void fmt_num(char *buf, size_t cap, double v)
{
    double a = fabs(v);
    if (a >= 1e9) snprintf(buf, cap, "%.3gG", v / 1e9);
    else if (a >= 1e6) snprintf(buf, cap, "%.3gM", v / 1e6);
    else if (a >= 1e4) snprintf(buf, cap, "%.3gk", v / 1e3);
    else if (a >= 1000) snprintf(buf, cap, "%.0f", v);
    else snprintf(buf, cap, "%.3g", v);
}

size_t tw_svg_ticks(double lo, double hi, double *ticks, size_t cap)
{
    if (!isfinite(lo) || !isfinite(hi) || cap == 0) return 0;
    if (hi <= lo) { ticks[0] = lo; return 1; }
    double raw = (hi - lo) / 5.0, mag = pow(10.0, floor(log10(raw))), r = raw / mag;
    double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    size_t n = 0;
    for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && n < cap; t += step)
        ticks[n++] = fabs(t) < step * 1e-9 ? 0.0 : t;
    return n;
}

typedef struct axis {
    double lo, hi;      /* data range (log10 units when log) */
    bool log;
    double p0, p1;      /* pixel range */
} axis;

static double ax_map(const axis *a, double v)
{
    double t = a->log ? log10(v) : v;
    return a->p0 + (t - a->lo) / (a->hi - a->lo) * (a->p1 - a->p0);
}

/* Extend [lo,hi] so it is not empty; pad linear ranges to nice ticks. */
static void ax_fit(axis *a, double lo, double hi, bool log, bool zero)
{
    a->log = log;
    if (!isfinite(lo) || !isfinite(hi)) { lo = 0; hi = 1; }
    if (log) {
        lo = floor(log10(lo));
        hi = ceil(log10(hi));
        if (hi <= lo) hi = lo + 1;
    } else {
        if (zero && lo > 0) lo = 0;
        if (zero && hi < 0) hi = 0;
        if (hi <= lo) { hi = lo + (lo == 0 ? 1 : fabs(lo) * 0.1); }
        double t[64];
        size_t k = tw_svg_ticks(lo, hi, t, 64);
        if (k >= 2) {
            double step = t[1] - t[0];
            if (t[0] > lo) lo = t[0] - step;
            if (t[k - 1] < hi) hi = t[k - 1] + step;
        }
    }
    a->lo = lo;
    a->hi = hi;
}

static size_t ax_ticks(const axis *a, double *t, size_t cap)
{
    if (!a->log) return tw_svg_ticks(a->lo, a->hi, t, cap);
    size_t n = 0;
    for (double e = a->lo; e <= a->hi + 1e-9 && n < cap; e += 1) t[n++] = pow(10.0, e);
    return n;
}

/* ---- frame ---------------------------------------------------------------------- */

typedef struct plot {
    int w, h;
    double l, r, t, b;      /* plot rectangle in pixels */
} plot;

static tw_status open_svg(tw_buf *o, const tw_svg_frame *f, int w, int h)
{
    const char *id = f->id ? f->id : "chart";
    tw_status st = tw_buf_printf(o,
                                 "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" "
                                 "viewBox=\"0 0 %d %d\" role=\"img\" aria-labelledby=\"",
                                 w, h, w, h);
    st = st ? st : tw_html_escape(o, id);
    st = st ? st : tw_buf_puts(o, "-title ");
    st = st ? st : tw_html_escape(o, id);
    st = st ? st : tw_buf_puts(o, "-desc\" font-family=\"sans-serif\" font-size=\"12\">\n<title id=\"");
    st = st ? st : tw_html_escape(o, id);
    st = st ? st : tw_buf_puts(o, "-title\">");
    st = st ? st : tw_html_escape(o, f->title ? f->title : "chart");
    st = st ? st : tw_buf_puts(o, "</title>\n<desc id=\"");
    st = st ? st : tw_html_escape(o, id);
    st = st ? st : tw_buf_puts(o, "-desc\">");
    st = st ? st : tw_html_escape(o, f->desc ? f->desc : (f->title ? f->title : "chart"));
    st = st ? st : tw_buf_printf(o, "</desc>\n<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
    st = st ? st : tw_buf_printf(o, "<text class=\"chart-title\" x=\"%d\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">", w / 2);
    st = st ? st : tw_html_escape_trunc(o, f->title ? f->title : "", (size_t)(w > 100 ? (w - 20) / 8 : 10));
    return st ? st : tw_buf_puts(o, "</text>\n");
}

static tw_status axis_labels(tw_buf *o, const tw_svg_frame *f, const plot *p)
{
    tw_status st = TW_OK;
    if (f->xlabel) {
        st = tw_buf_printf(o, "<text class=\"xlabel\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (p->l + p->r) / 2, p->h - 8);
        st = st ? st : tw_html_escape(o, f->xlabel);
        st = st ? st : tw_buf_puts(o, "</text>\n");
    }
    if (!st && f->ylabel) {
        double cy = (p->t + p->b) / 2;
        st = tw_buf_printf(o, "<text class=\"ylabel\" x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">", cy, cy);
        st = st ? st : tw_html_escape(o, f->ylabel);
        st = st ? st : tw_buf_puts(o, "</text>\n");
    }
    return st;
}

/* y axis: gridlines + tick labels; x axis line. */
static tw_status y_axis(tw_buf *o, const plot *p, const axis *ay)
{
    double t[64];
    size_t k = ax_ticks(ay, t, 64);
    tw_status st = TW_OK;
    for (size_t i = 0; i < k && !st; i++) {
        double y = ax_map(ay, t[i]);
        char lab[32];
        fmt_num(lab, sizeof lab, t[i]);
        st = tw_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>"
                              "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                           p->l, y, p->r, y, p->l - 6, y + 4, lab);
    }
    st = st ? st : tw_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>"
                                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n",
                                 p->l, p->t, p->l, p->b, p->l, p->b, p->r, p->b);
    return st;
}

static tw_status x_axis(tw_buf *o, const plot *p, const axis *ax)
{
    double t[64];
    size_t k = ax_ticks(ax, t, 64);
    tw_status st = TW_OK;
    for (size_t i = 0; i < k && !st; i++) {
        double x = ax_map(ax, t[i]);
        char lab[32];
        fmt_num(lab, sizeof lab, t[i]);
        st = tw_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>"
                              "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                           x, p->t, x, p->b, x, p->b + 16, lab);
    }
    return st;
}

static tw_status legend_item(tw_buf *o, double x, double y, const char *color, bool dashed, const char *name)
{
    tw_status st = tw_buf_printf(o, "<g class=\"legend\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>"
                                    "<text x=\"%.1f\" y=\"%.1f\">",
                                 x, y, x + 18, y, color, dashed ? " stroke-dasharray=\"5 3\"" : "", x + 24, y + 4);
    st = st ? st : tw_html_escape_trunc(o, name, 22);
    return st ? st : tw_buf_puts(o, "</text></g>\n");
}

static tw_status finish(tw_buf *o, tw_status st, tw_error *err)
{
    if (!st) st = tw_buf_puts(o, "</svg>\n");
    if (st) return tw_error_set(err, st, "svg: out of memory");
    return TW_OK;
}

/* ---- bar chart ------------------------------------------------------------------ */

tw_status tw_svg_bars(tw_buf *o, const tw_svg_frame *f, const tw_svg_bar *bars, size_t n, double ref,
                      const char *ref_label, tw_error *err)
{
    int w = f->width ? f->width : 640, h = f->height ? f->height : 360;
    bool rotate = n > 4;
    for (size_t i = 0; i < n; i++)
        if (bars[i].label && strlen(bars[i].label) > 12) rotate = true;
    plot p = {w, h, 70, w - 20.0, 36, h - (rotate ? 110.0 : 56.0)};
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        const double v[3] = {bars[i].value, bars[i].lo, bars[i].hi};
        for (int k = 0; k < 3; k++)
            if (isfinite(v[k])) { lo = fmin(lo, v[k]); hi = fmax(hi, v[k]); }
    }
    if (isfinite(ref)) { lo = fmin(lo, ref); hi = fmax(hi, ref); }
    if (hi >= 0 && hi <= 1 && lo >= 0) { hi = 1; }   /* a proportion: show the whole [0, 1] */
    axis ay = {0, 0, false, p.b, p.t};
    ax_fit(&ay, lo, hi, false, true);
    tw_status st = open_svg(o, f, w, h);
    st = st ? st : y_axis(o, &p, &ay);
    double slot = n ? (p.r - p.l) / (double)n : 0, bw = slot * 0.6;
    double y0 = ax_map(&ay, 0.0);
    for (size_t i = 0; i < n && !st; i++) {
        const tw_svg_bar *b = &bars[i];
        double cx = p.l + slot * ((double)i + 0.5);
        if (isfinite(b->value)) {
            double y = ax_map(&ay, b->value);
            char v[32];
            snprintf(v, sizeof v, "%.4g", b->value);
            st = tw_buf_printf(o, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                               cx - bw / 2, fmin(y, y0), bw, fabs(y0 - y), PALETTE[i % N_PALETTE]);
            st = st ? st : tw_html_escape(o, b->label);
            st = st ? st : tw_buf_printf(o, ": %s", v);
            if (!st && isfinite(b->lo) && isfinite(b->hi)) st = tw_buf_printf(o, " [%.4g, %.4g]", b->lo, b->hi);
            st = st ? st : tw_buf_puts(o, "</title></rect>\n");
            if (slot >= 30)   /* the value above the bar, when there is room (the tooltip has it anyway) */
                st = st ? st : tw_buf_printf(o, "<text class=\"value\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                                             cx + (isfinite(b->hi) ? bw / 4 + 4 : 0), y - 4, v);
        }
        if (!st && isfinite(b->lo) && isfinite(b->hi)) {
            double yl = ax_map(&ay, b->lo), yh = ax_map(&ay, b->hi);
            st = tw_buf_printf(o, "<g class=\"errbar\" stroke=\"#000000\" stroke-width=\"1.5\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
                               cx, yl, cx, yh, cx - 6, yl, cx + 6, yl, cx - 6, yh, cx + 6, yh);
        }
        if (!st) {
            double ly = p.b + 16;
            if (rotate)
                st = tw_buf_printf(o, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" transform=\"rotate(-35 %.1f %.1f)\">", cx, ly, cx, ly);
            else
                st = tw_buf_printf(o, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", cx, ly);
            st = st ? st : tw_html_escape_trunc(o, b->label, rotate ? 20 : 16);
            st = st ? st : tw_buf_puts(o, "</text>\n");
        }
    }
    if (!st && isfinite(ref)) {
        double y = ax_map(&ay, ref);
        st = tw_buf_printf(o, "<line class=\"ref\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\" stroke-dasharray=\"6 4\"/>"
                              "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555555\">",
                           p.l, y, p.r, y, p.r - 2, y - 4);
        st = st ? st : tw_html_escape(o, ref_label ? ref_label : "target");
        st = st ? st : tw_buf_puts(o, "</text>\n");
    }
    st = st ? st : axis_labels(o, f, &p);
    return finish(o, st, err);
}

/* ---- line chart ----------------------------------------------------------------- */

tw_status tw_svg_lines(tw_buf *o, const tw_svg_frame *f, const tw_svg_series *s, size_t ns,
                       const tw_svg_hline *hl, size_t nh, const tw_svg_marker *m, size_t nm, bool logx, bool logy,
                       tw_error *err)
{
    int w = f->width ? f->width : 720, h = f->height ? f->height : 360;
    plot p = {w, h, 70, w - 190.0, 36, h - 50.0};
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
#define OKX(v) (isfinite(v) && (!logx || (v) > 0))
#define OKY(v) (isfinite(v) && (!logy || (v) > 0))
    for (size_t i = 0; i < ns; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            if (!OKX(s[i].x[j]) || !OKY(s[i].y[j])) continue;
            xlo = fmin(xlo, s[i].x[j]); xhi = fmax(xhi, s[i].x[j]);
            ylo = fmin(ylo, s[i].y[j]); yhi = fmax(yhi, s[i].y[j]);
            if (s[i].lo && OKY(s[i].lo[j])) ylo = fmin(ylo, s[i].lo[j]);
            if (s[i].hi && OKY(s[i].hi[j])) yhi = fmax(yhi, s[i].hi[j]);
        }
    for (size_t i = 0; i < nh; i++)
        if (OKY(hl[i].y)) { ylo = fmin(ylo, hl[i].y); yhi = fmax(yhi, hl[i].y); }
    for (size_t i = 0; i < nm; i++)
        if (OKX(m[i].x) && OKY(m[i].y)) {
            xlo = fmin(xlo, m[i].x); xhi = fmax(xhi, m[i].x);
            ylo = fmin(ylo, m[i].y); yhi = fmax(yhi, m[i].y);
        }
    if (!isfinite(xlo)) { xlo = logx ? 1 : 0; xhi = logx ? 10 : 1; }
    if (!isfinite(ylo)) { ylo = logy ? 1 : 0; yhi = logy ? 10 : 1; }
    axis ax = {0, 0, false, p.l, p.r}, ay = {0, 0, false, p.b, p.t};
    ax_fit(&ax, xlo, xhi, logx, false);
    ax_fit(&ay, ylo, yhi, logy, false);
    tw_status st = open_svg(o, f, w, h);
    st = st ? st : x_axis(o, &p, &ax);
    st = st ? st : y_axis(o, &p, &ay);
    double ly = p.t + 8;
    for (size_t i = 0; i < ns && !st; i++) {
        const char *c = PALETTE[i % N_PALETTE];
        st = tw_buf_puts(o, "<g class=\"series\"><title>");
        st = st ? st : tw_html_escape(o, s[i].name);
        st = st ? st : tw_buf_puts(o, "</title>\n");
        if (!st && s[i].lo && s[i].hi) {   /* band: upper edge forward, lower edge back */
            st = tw_buf_printf(o, "<polyline class=\"band\" fill=\"%s\" fill-opacity=\"0.15\" stroke=\"none\" points=\"", c);
            for (size_t j = 0; j < s[i].n && !st; j++)
                if (OKX(s[i].x[j]) && OKY(s[i].hi[j])) st = tw_buf_printf(o, "%.1f,%.1f ", ax_map(&ax, s[i].x[j]), ax_map(&ay, s[i].hi[j]));
            for (size_t j = s[i].n; j-- > 0 && !st;)
                if (OKX(s[i].x[j]) && OKY(s[i].lo[j])) st = tw_buf_printf(o, "%.1f,%.1f ", ax_map(&ax, s[i].x[j]), ax_map(&ay, s[i].lo[j]));
            st = st ? st : tw_buf_puts(o, "\"/>\n");
        }
        st = st ? st : tw_buf_printf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
        for (size_t j = 0; j < s[i].n && !st; j++)
            if (OKX(s[i].x[j]) && OKY(s[i].y[j])) st = tw_buf_printf(o, "%.1f,%.1f ", ax_map(&ax, s[i].x[j]), ax_map(&ay, s[i].y[j]));
        st = st ? st : tw_buf_puts(o, "\"/>\n");
        for (size_t j = 0; j < s[i].n && !st; j++)
            if (OKX(s[i].x[j]) && OKY(s[i].y[j]))
                st = tw_buf_printf(o, "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", ax_map(&ax, s[i].x[j]), ax_map(&ay, s[i].y[j]), c);
        st = st ? st : tw_buf_puts(o, "</g>\n");
        st = st ? st : legend_item(o, p.r + 14, ly, c, false, s[i].name);
        ly += 18;
    }
    for (size_t i = 0; i < nh && !st; i++) {
        if (!OKY(hl[i].y)) continue;
        const char *c = PALETTE[(ns + i) % N_PALETTE];
        double y = ax_map(&ay, hl[i].y);
        st = tw_buf_printf(o, "<line class=\"hline\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"5 3\"><title>",
                           p.l, y, p.r, y, c);
        st = st ? st : tw_html_escape(o, hl[i].name);
        st = st ? st : tw_buf_printf(o, ": %.4g</title></line>\n", hl[i].y);
        st = st ? st : legend_item(o, p.r + 14, ly, c, true, hl[i].name);
        ly += 18;
    }
    for (size_t i = 0; i < nm && !st; i++) {
        if (!OKX(m[i].x) || !OKY(m[i].y)) continue;
        double x = ax_map(&ax, m[i].x), y = ax_map(&ay, m[i].y);
        st = tw_buf_printf(o, "<g class=\"marker\"><circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"none\" stroke=\"#000000\" stroke-width=\"2\"/>"
                              "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
                           x, y, x + 8, y - 8);
        st = st ? st : tw_html_escape_trunc(o, m[i].label, 40);
        st = st ? st : tw_buf_puts(o, "</text></g>\n");
    }
#undef OKX
#undef OKY
    st = st ? st : axis_labels(o, f, &p);
    return finish(o, st, err);
}

/* ---- heat map ------------------------------------------------------------------- */

tw_status tw_svg_heatmap(tw_buf *o, const tw_svg_frame *f, const char *const *rows, size_t nrows,
                         const char *const *cols, size_t ncols, const double *values, tw_error *err)
{
    double cell = ncols ? fmax(6.0, fmin(48.0, 520.0 / (double)ncols)) : 48;
    double left = 150, top = 44;
    int w = (int)(left + cell * (double)ncols + 30), h = (int)(top + cell * (double)nrows + 110);
    if (w < 420) w = 420;
    plot p = {w, h, left, left + cell * (double)ncols, top, top + cell * (double)nrows};
    bool show_text = cell >= 22, show_labels = cell >= 10;
    tw_status st = open_svg(o, f, w, h);
    for (size_t r = 0; r < nrows && !st; r++) {
        double total = 0;
        for (size_t c = 0; c < ncols; c++)
            if (isfinite(values[r * ncols + c])) total += values[r * ncols + c];
        for (size_t c = 0; c < ncols && !st; c++) {
            double v = values[r * ncols + c], fr = total > 0 && isfinite(v) ? v / total : 0;
            int R = (int)lround(255 - fr * (255 - 31)), G = (int)lround(255 - fr * (255 - 95)), B = (int)lround(255 - fr * (255 - 168));
            double x = p.l + cell * (double)c, y = p.t + cell * (double)r;
            st = tw_buf_printf(o, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\" stroke=\"#ffffff\"><title>",
                               x, y, cell, cell, R, G, B);
            st = st ? st : tw_html_escape(o, rows[r]);
            st = st ? st : tw_buf_puts(o, " \xE2\x86\x92 ");   /* → */
            st = st ? st : tw_html_escape(o, cols[c]);
            st = st ? st : tw_buf_printf(o, ": %.6g</title></rect>", v);
            if (!st && show_text && isfinite(v))
                st = tw_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\" fill=\"%s\">%.6g</text>",
                                   x + cell / 2, y + cell / 2 + 4, fr > 0.5 ? "#ffffff" : "#000000", v);
            st = st ? st : tw_buf_puts(o, "\n");
        }
        if (!st && show_labels) {
            st = tw_buf_printf(o, "<text class=\"rowlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"%d\">", p.l - 6,
                               p.t + cell * ((double)r + 0.5) + 4, cell >= 14 ? 12 : 8);
            st = st ? st : tw_html_escape_trunc(o, rows[r], 20);
            st = st ? st : tw_buf_puts(o, "</text>\n");
        }
    }
    for (size_t c = 0; c < ncols && !st && show_labels; c++) {
        double x = p.l + cell * ((double)c + 0.5), y = p.b + 12;
        st = tw_buf_printf(o, "<text class=\"collabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"%d\" transform=\"rotate(-45 %.1f %.1f)\">",
                           x, y, cell >= 14 ? 12 : 8, x, y);
        st = st ? st : tw_html_escape_trunc(o, cols[c], 16);
        st = st ? st : tw_buf_puts(o, "</text>\n");
    }
    if (!st && f->xlabel) {
        st = tw_buf_printf(o, "<text class=\"xlabel\" x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", (p.l + p.r) / 2, h - 8);
        st = st ? st : tw_html_escape(o, f->xlabel);
        st = st ? st : tw_buf_puts(o, "</text>\n");
    }
    if (!st && f->ylabel) {
        double cy = (p.t + p.b) / 2;
        st = tw_buf_printf(o, "<text class=\"ylabel\" x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">", cy, cy);
        st = st ? st : tw_html_escape(o, f->ylabel);
        st = st ? st : tw_buf_puts(o, "</text>\n");
    }
    return finish(o, st, err);
}

/* ---- box plots ------------------------------------------------------------------ */

static double q_sorted(const double *v, size_t n, double q)
{
    double hpos = (double)(n - 1) * q;
    size_t i = (size_t)floor(hpos);
    if (i + 1 >= n) return v[n - 1];
    return v[i] + (hpos - (double)i) * (v[i + 1] - v[i]);
}

tw_status tw_svg_boxes(tw_buf *o, const tw_svg_frame *f, const tw_svg_group *g, size_t ng, bool logx, tw_error *err)
{
    int w = f->width ? f->width : 720;
    int h = f->height ? f->height : (int)(90 + 40 * (ng ? ng : 1));
    plot p = {w, h, 160, w - 30.0, 36, h - 50.0};
    /* five-number summaries of the finite (and, on a log axis, positive) samples */
    double (*q)[5] = calloc(ng ? ng : 1, sizeof *q);
    size_t *cnt = calloc(ng ? ng : 1, sizeof *cnt);
    if (!q || !cnt) { free(q); free(cnt); return tw_error_set(err, TW_ERR_NOMEM, "svg: out of memory"); }
    double lo = INFINITY, hi = -INFINITY;
    tw_status st = TW_OK;
    for (size_t i = 0; i < ng && !st; i++) {
        double *v = malloc((g[i].n ? g[i].n : 1) * sizeof *v);
        if (!v) { st = TW_ERR_NOMEM; break; }
        size_t k = 0;
        for (size_t j = 0; j < g[i].n; j++)
            if (isfinite(g[i].v[j]) && (!logx || g[i].v[j] > 0)) v[k++] = g[i].v[j];
        qsort(v, k, sizeof *v, tw_cmp_double);
        cnt[i] = k;
        if (k) {
            const double qs[5] = {0.05, 0.25, 0.5, 0.75, 0.95};
            for (int t = 0; t < 5; t++) q[i][t] = q_sorted(v, k, qs[t]);
            lo = fmin(lo, q[i][0]);
            hi = fmax(hi, q[i][4]);
        }
        free(v);
    }
    if (!isfinite(lo)) { lo = logx ? 1 : 0; hi = logx ? 10 : 1; }
    axis ax = {0, 0, false, p.l, p.r};
    ax_fit(&ax, lo, hi, logx, !logx);
    st = st ? st : open_svg(o, f, w, h);
    st = st ? st : x_axis(o, &p, &ax);
    st = st ? st : tw_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", p.l, p.b, p.r, p.b);
    double row = ng ? (p.b - p.t) / (double)ng : 0;
    for (size_t i = 0; i < ng && !st; i++) {
        double cy = p.t + row * ((double)i + 0.5), bh = fmin(22.0, row * 0.6);
        st = tw_buf_printf(o, "<text class=\"rowlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", p.l - 8, cy + 4);
        st = st ? st : tw_html_escape_trunc(o, g[i].name, 22);
        st = st ? st : tw_buf_puts(o, "</text>\n");
        if (st || !cnt[i]) continue;
        double x5 = ax_map(&ax, q[i][0]), x25 = ax_map(&ax, q[i][1]), x50 = ax_map(&ax, q[i][2]),
               x75 = ax_map(&ax, q[i][3]), x95 = ax_map(&ax, q[i][4]);
        const char *c = PALETTE[i % N_PALETTE];
        st = tw_buf_puts(o, "<g class=\"box\" stroke=\"#000000\"><title>");
        st = st ? st : tw_html_escape(o, g[i].name);
        st = st ? st : tw_buf_printf(o, ": n=%zu, p5 %.4g, p25 %.4g, median %.4g, p75 %.4g, p95 %.4g</title>", cnt[i], q[i][0], q[i][1],
                                     q[i][2], q[i][3], q[i][4]);
        st = st ? st : tw_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"0.5\"/>"
                                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2.5\"/></g>\n",
                                     x5, cy, x25, cy, x75, cy, x95, cy, x25, cy - bh / 2, fmax(1.0, x75 - x25), bh, c, x50, cy - bh / 2, x50,
                                     cy + bh / 2);
    }
    free(q);
    free(cnt);
    st = st ? st : axis_labels(o, f, &p);
    return finish(o, st, err);
}
