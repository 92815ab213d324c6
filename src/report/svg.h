/* svg.h — small, dependency-free SVG charts for the reports: bar chart with CI error
 * bars, line chart (with horizontal reference lines and labelled markers), heat map,
 * and box plot of samples. Each chart is one <svg> element with role="img", a <title>
 * and <desc> (aria-labelledby), axis labels, and every user string escaped; it embeds
 * in HTML or stands alone (xmlns set). Non-finite values are skipped, never printed.
 * Deliberately not here: layout of the page, colours beyond a fixed palette, any script. */
#ifndef TW_REPORT_SVG_H
#define TW_REPORT_SVG_H

#include "base/base.h"

#include <stdbool.h>

typedef struct tw_svg_frame {
    const char *id;         /* id prefix, unique within the page (e.g. "metric") */
    const char *title;      /* chart title (also the accessible name) */
    const char *desc;       /* longer text alternative */
    const char *xlabel, *ylabel;
    int width, height;      /* 0: defaults (640 x 360) */
} tw_svg_frame;

typedef struct tw_svg_bar {
    const char *label;
    double value, lo, hi;   /* lo/hi NAN: no error bar */
} tw_svg_bar;

/* Vertical bars with CI error bars; `ref` (NAN none) draws a dashed target line. */
tw_status tw_svg_bars(tw_buf *out, const tw_svg_frame *f, const tw_svg_bar *bars, size_t n, double ref,
                      const char *ref_label, tw_error *err);

typedef struct tw_svg_series {
    const char *name;
    const double *x, *y;
    const double *lo, *hi;  /* optional band, may be NULL */
    size_t n;
} tw_svg_series;

typedef struct tw_svg_hline {
    const char *name;
    double y;
} tw_svg_hline;

typedef struct tw_svg_marker {
    const char *label;
    double x, y;
} tw_svg_marker;

/* Line chart: series, horizontal reference lines, labelled markers; logx uses a log10
 * x axis (x <= 0 points are skipped). A legend names every series and line. */
tw_status tw_svg_lines(tw_buf *out, const tw_svg_frame *f, const tw_svg_series *s, size_t ns,
                       const tw_svg_hline *h, size_t nh, const tw_svg_marker *m, size_t nm, bool logx, bool logy,
                       tw_error *err);

/* Heat map of values[r * ncols + c]; each cell is shaded by value / row total and shows
 * the value. Rows are drawn top to bottom. */
tw_status tw_svg_heatmap(tw_buf *out, const tw_svg_frame *f, const char *const *rows, size_t nrows,
                         const char *const *cols, size_t ncols, const double *values, tw_error *err);

/* Horizontal box plots (whiskers p5..p95, box p25..p75, median line) of each group's
 * samples on a shared axis (log10 when logx). */
typedef struct tw_svg_group {
    const char *name;
    const double *v;
    size_t n;
} tw_svg_group;
tw_status tw_svg_boxes(tw_buf *out, const tw_svg_frame *f, const tw_svg_group *g, size_t ng, bool logx,
                       tw_error *err);

/* Escape text for HTML/XML text and attribute values (& < > " ' ; invalid UTF-8 becomes
 * U+FFFD; control characters other than tab/newline are dropped). */
tw_status tw_html_escape(tw_buf *out, const char *s);
/* The same for at most max_chars characters, adding "…" when cut. */
tw_status tw_html_escape_trunc(tw_buf *out, const char *s, size_t max_chars);

/* "Nice" axis ticks covering [lo, hi]: writes up to cap ticks, returns how many. */
size_t tw_svg_ticks(double lo, double hi, double *ticks, size_t cap);

#endif /* TW_REPORT_SVG_H */
