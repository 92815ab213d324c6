/* test_svg.c — the SVG charts: XML well-formedness (a small checker: balanced tags, quoted
 * attributes, known entities, no raw < or & in text), element counts (bars, error bars,
 * series, reference lines, markers, heat-map cells, boxes), accessible title/desc/axis
 * labels, escaping of hostile and non-ASCII labels, non-finite values skipped, ticks. */
#include "testutil.h"
#include "report/svg.h"

#include <ctype.h>
#include <math.h>

/* Returns NULL when s is well-formed XML (one root element), else a message. */
static const char *xml_check(const char *s)
{
    static char msg[256];
    const char *stack[256];
    size_t stack_len[256];
    int depth = 0, roots = 0;
    const char *p = s;
    while (*p) {
        if (*p == '<') {
            if (strncmp(p, "<!--", 4) == 0) {
                const char *e = strstr(p, "-->");
                if (!e) return "unterminated comment";
                p = e + 3;
                continue;
            }
            bool close = p[1] == '/';
            const char *n = p + (close ? 2 : 1);
            if (!isalpha((unsigned char)*n)) { snprintf(msg, sizeof msg, "bad tag start at offset %ld", (long)(p - s)); return msg; }
            const char *ne = n;
            while (isalnum((unsigned char)*ne) || *ne == '-' || *ne == ':') ne++;
            const char *q = ne;
            /* attributes: name="value" with no raw < or & except entities */
            while (*q && *q != '>' && !(*q == '/' && q[1] == '>')) {
                if (isspace((unsigned char)*q)) { q++; continue; }
                if (close) return "attributes on a closing tag";
                const char *an = q;
                while (isalnum((unsigned char)*q) || *q == '-' || *q == ':' || *q == '_') q++;
                if (q == an || *q != '=' || q[1] != '"') { snprintf(msg, sizeof msg, "bad attribute at offset %ld", (long)(q - s)); return msg; }
                q += 2;
                while (*q && *q != '"') {
                    if (*q == '<') return "raw < in an attribute";
                    if (*q == '&' && strncmp(q, "&amp;", 5) && strncmp(q, "&lt;", 4) && strncmp(q, "&gt;", 4) && strncmp(q, "&quot;", 6) &&
                        strncmp(q, "&#39;", 5))
                        return "bad entity in an attribute";
                    q++;
                }
                if (!*q) return "unterminated attribute";
                q++;
            }
            if (!*q) return "unterminated tag";
            bool self = *q == '/';
            if (close) {
                if (depth == 0 || stack_len[depth - 1] != (size_t)(ne - n) || strncmp(stack[depth - 1], n, (size_t)(ne - n)) != 0) {
                    snprintf(msg, sizeof msg, "mismatched </%.*s> at offset %ld", (int)(ne - n), n, (long)(p - s));
                    return msg;
                }
                depth--;
            } else if (!self) {
                if (depth == 0) roots++;
                if (depth == 256) return "too deep";
                stack[depth] = n;
                stack_len[depth++] = (size_t)(ne - n);
            } else if (depth == 0) roots++;
            p = q + (self ? 2 : 1);
        } else if (*p == '&') {
            if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&quot;", 6) && strncmp(p, "&#39;", 5))
                return "bad entity in text";
            p++;
        } else if (*p == '>') {
            return "raw > in text";
        } else {
            p++;
        }
    }
    if (depth) return "unclosed element";
    if (roots != 1) return "not exactly one root element";
    return NULL;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static void assert_ok(const tw_buf *b)
{
    cr_assert_not_null(b->data);
    const char *e = xml_check(b->data);
    cr_assert_null(e, "not well-formed: %s\n%s", e, b->data);
    cr_assert_null(strstr(b->data, "nan"), "a NaN was printed");
    cr_assert_null(strstr(b->data, "inf"), "an infinity was printed");
}

Test(svg, checker_rejects_broken_xml)
{
    cr_assert_null(xml_check("<svg><g a=\"1\"><rect/></g></svg>"));
    cr_assert_not_null(xml_check("<svg><g></svg>"));
    cr_assert_not_null(xml_check("<svg><text>a < b</text></svg>"));
    cr_assert_not_null(xml_check("<svg><text>a & b</text></svg>"));
    cr_assert_not_null(xml_check("<svg a=\"<\"></svg>"));
    cr_assert_not_null(xml_check("<svg></svg><svg></svg>"));
}

Test(svg, bars_with_ci_and_target)
{
    tw_svg_bar bars[4] = {{"classic", 0.83, 0.81, 0.85}, {"prompt", 0.86, 0.84, 0.88}, {"lora", 0.91, NAN, NAN}, {"none", NAN, NAN, NAN}};
    tw_svg_frame f = {"m", "accuracy per arm", "desc text", "arm", "accuracy", 0, 0};
    tw_buf b = {0};
    tw_error err;
    cr_assert_eq(tw_svg_bars(&b, &f, bars, 4, 0.9, "target", &err), TW_OK);
    assert_ok(&b);
    cr_assert_eq(count(b.data, "class=\"bar\""), 3, "a NaN bar is skipped");
    cr_assert_eq(count(b.data, "class=\"errbar\""), 2);
    cr_assert_eq(count(b.data, "class=\"ref\""), 1);
    cr_assert_eq(count(b.data, "class=\"value\""), 3, "values printed above the bars");
    cr_assert_not_null(strstr(b.data, "role=\"img\" aria-labelledby=\"m-title m-desc\""));
    cr_assert_not_null(strstr(b.data, "<title id=\"m-title\">accuracy per arm</title>"));
    cr_assert_not_null(strstr(b.data, "<desc id=\"m-desc\">desc text</desc>"));
    cr_assert_not_null(strstr(b.data, "class=\"xlabel\""));
    cr_assert_not_null(strstr(b.data, ">accuracy</text>"), "y axis label");
    cr_assert_not_null(strstr(b.data, "<title>prompt: 0.86 [0.84, 0.88]</title>"));
    /* proportions are drawn on [0, 1]: the top tick is 1 */
    cr_assert_not_null(strstr(b.data, "text-anchor=\"end\">1</text>"));
    tw_buf_free(&b);

    /* 77 classes (Banking77): every bar drawn, no crowded value labels */
    tw_svg_bar many[77];
    char names[77][24];
    for (int i = 0; i < 77; i++) {
        snprintf(names[i], sizeof names[i], "class_%d", i);
        many[i] = (tw_svg_bar){names[i], 0.5 + 0.005 * i, NAN, NAN};
    }
    cr_assert_eq(tw_svg_bars(&b, &f, many, 77, NAN, NULL, &err), TW_OK);
    assert_ok(&b);
    cr_assert_eq(count(b.data, "class=\"bar\""), 77);
    cr_assert_eq(count(b.data, "class=\"value\""), 0);
    cr_assert_eq(count(b.data, "class=\"xtick\""), 77);
    tw_buf_free(&b);
}

Test(svg, hostile_and_unicode_labels_are_escaped)
{
    const char *evil = "<script>alert(\"x\" & 'y')</script>";
    tw_svg_bar bars[2] = {{evil, 0.5, 0.4, 0.6}, {"ünïcødé 日本語 — ok", 0.7, 0.6, 0.8}};
    tw_svg_frame f = {"e\"vil", evil, evil, evil, "ü", 0, 0};
    tw_buf b = {0};
    tw_error err;
    cr_assert_eq(tw_svg_bars(&b, &f, bars, 2, NAN, NULL, &err), TW_OK);
    assert_ok(&b);
    cr_assert_null(strstr(b.data, "<script"));
    cr_assert_not_null(strstr(b.data, "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"));
    cr_assert_not_null(strstr(b.data, "ünïcødé 日本語 — ok"));
    cr_assert_not_null(strstr(b.data, "id=\"e&quot;vil-title\""));
    tw_buf_free(&b);

    /* invalid UTF-8 becomes U+FFFD, control characters vanish, truncation adds an ellipsis
     * without cutting a character */
    tw_buf t = {0};
    cr_assert_eq(tw_html_escape(&t, "a\xff" "b\x01" "c"), TW_OK);
    cr_assert_str_eq(t.data, "a\xEF\xBF\xBD" "bc");
    tw_buf_clear(&t);
    cr_assert_eq(tw_html_escape_trunc(&t, "日本語です", 2), TW_OK);
    cr_assert_str_eq(t.data, "日本…");
    tw_buf_free(&t);
}

Test(svg, lines_with_reference_lines_and_markers)
{
    const double x[4] = {50, 100, 500, 1000}, y[4] = {0.6, 0.7, 0.8, 0.85}, lo[4] = {0.55, 0.65, 0.75, 0.8}, hi[4] = {0.65, 0.75, 0.85, 0.9};
    const double x2[3] = {1e3, 1e5, 1e7}, y2[3] = {1, 100, 10000};
    tw_svg_series s[2] = {{"lora", x, y, lo, hi, 4}, {"cost", x2, y2, NULL, NULL, 3}};
    tw_svg_hline h[2] = {{"zero-shot", 0.7}, {"k-shot", 0.78}};
    tw_svg_marker m[1] = {{"lora = prompt at 1e5", 1e5, 100}};
    tw_svg_frame f = {"l", "Learning curve", NULL, "training examples", "accuracy", 0, 0};
    tw_buf b = {0};
    tw_error err;
    cr_assert_eq(tw_svg_lines(&b, &f, s, 1, h, 2, NULL, 0, true, false, &err), TW_OK);
    assert_ok(&b);
    cr_assert_eq(count(b.data, "<g class=\"series\">"), 1);
    cr_assert_eq(count(b.data, "class=\"band\""), 1);
    cr_assert_eq(count(b.data, "class=\"point\""), 4);
    cr_assert_eq(count(b.data, "class=\"hline\""), 2);
    cr_assert_eq(count(b.data, "class=\"legend\""), 3);
    /* log x axis: decades 10, 100, 1000 */
    cr_assert_not_null(strstr(b.data, ">10</text>"));
    cr_assert_not_null(strstr(b.data, ">100</text>"));
    cr_assert_not_null(strstr(b.data, ">1000</text>"));
    cr_assert_not_null(strstr(b.data, ">training examples</text>"));
    tw_buf_free(&b);

    tw_svg_frame f2 = {"c", "Cost", NULL, "calls per month", "USD per month", 0, 0};
    cr_assert_eq(tw_svg_lines(&b, &f2, &s[1], 1, NULL, 0, m, 1, true, true, &err), TW_OK);
    assert_ok(&b);
    cr_assert_eq(count(b.data, "class=\"marker\""), 1);
    cr_assert_not_null(strstr(b.data, "lora = prompt at 1e5"));
    cr_assert_not_null(strstr(b.data, ">10M</text>"), "k/M tick labels on the volume axis");
    tw_buf_free(&b);

    /* no data at all still gives a valid, empty chart */
    cr_assert_eq(tw_svg_lines(&b, &f, NULL, 0, NULL, 0, NULL, 0, false, false, &err), TW_OK);
    assert_ok(&b);
    tw_buf_free(&b);
}

Test(svg, heatmap_and_boxes)
{
    const char *rows[2] = {"neg", "pos & <b>"}, *cols[3] = {"neg", "pos & <b>", "(invalid)"};
    const double v[6] = {731, 181, 0, 131, 778, 0};
    tw_svg_frame f = {"h", "Confusion", NULL, "predicted", "reference", 0, 0};
    tw_buf b = {0};
    tw_error err;
    cr_assert_eq(tw_svg_heatmap(&b, &f, rows, 2, cols, 3, v, &err), TW_OK);
    assert_ok(&b);
    cr_assert_eq(count(b.data, "class=\"cell\""), 6);
    cr_assert_eq(count(b.data, "class=\"rowlabel\""), 2);
    cr_assert_eq(count(b.data, "class=\"collabel\""), 3);
    cr_assert_not_null(strstr(b.data, ">731</text>"));
    cr_assert_not_null(strstr(b.data, "<title>pos &amp; &lt;b&gt; \xE2\x86\x92 neg: 131</title>"));
    tw_buf_free(&b);

    double a[100], c[50];
    for (int i = 0; i < 100; i++) a[i] = 0.01 + 0.0001 * i;
    for (int i = 0; i < 50; i++) c[i] = 200 + 4 * i;
    tw_svg_group g[3] = {{"classic", a, 100}, {"prompt", c, 50}, {"empty", NULL, 0}};
    tw_svg_frame f2 = {"lat", "Latency", NULL, "ms", NULL, 0, 0};
    cr_assert_eq(tw_svg_boxes(&b, &f2, g, 3, true, &err), TW_OK);
    assert_ok(&b);
    cr_assert_eq(count(b.data, "<g class=\"box\""), 2, "a group without samples has a label but no box");
    cr_assert_eq(count(b.data, "class=\"rowlabel\""), 3);
    cr_assert_not_null(strstr(b.data, "prompt: n=50, p5 209.8, p25 249, median 298, p75 347, p95 386.2"), "%s", b.data);
    tw_buf_free(&b);
}

Test(svg, ticks)
{
    double t[16];
    size_t n = tw_svg_ticks(0, 1, t, 16);
    cr_assert_eq(n, 6);
    for (size_t i = 0; i < n; i++) cr_assert_float_eq(t[i], 0.2 * (double)i, 1e-12);
    n = tw_svg_ticks(3, 97, t, 16);
    cr_assert_eq(n, 4);   /* step 20 */
    cr_assert_float_eq(t[0], 20, 1e-9);
    cr_assert_float_eq(t[3], 80, 1e-9);
    cr_assert_eq(tw_svg_ticks(NAN, 1, t, 16), 0);
}
