/* audit_format.c — tw_audit_format (audit.h): the human-readable table of an audit report,
 * as `tunewise audit` prints it — the splits overview, classes, extract fields, length
 * percentiles, leakage with examples, conflicts, and the readiness verdict with its
 * reasons, in lines of at most 100 columns. It reads only the report JSON (keys as audit.h
 * documents them), so it works on a report loaded back from a file as well.
 *
 * Deliberately not here: computing anything (audit.c builds the report, including the
 * reasons' wording), printing (the CLI prints what this returns), colors or terminal
 * detection. */
#include "task/audit.h"
#include "task/audit_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define WIDTH 100

/* "train", "dev", "test": the keys of the report's "splits" object, in order */
static const char *split_name(int i) { return tw_split_name((tw_split_id)i); }

typedef struct fmt {
    tw_buf *b;
    bool fail;
} fmt;

static void put(fmt *f, const char *fmtstr, ...) __attribute__((format(printf, 2, 3)));
static void put(fmt *f, const char *fmtstr, ...)
{
    va_list ap;
    va_start(ap, fmtstr);
    int n = vsnprintf(NULL, 0, fmtstr, ap);
    va_end(ap);
    if (n < 0 || tw_buf_reserve(f->b, (size_t)n + 1)) {
        f->fail = true;
        return;
    }
    va_start(ap, fmtstr);
    vsnprintf(f->b->data + f->b->len, (size_t)n + 1, fmtstr, ap);
    va_end(ap);
    f->b->len += (size_t)n;
}

static size_t jz(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (size_t)json_integer_value(v) : 0;
}

static double jd(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *js(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* count with thousands separators, into one of a few rotating static-free buffers */
typedef struct nbuf { char s[8][32]; int i; } nbuf;
static const char *cnt(nbuf *nb, size_t v)
{
    char *o = nb->s[nb->i++ & 7];
    audit_fmt_count(v, o, 32);
    return o;
}

/* Quote text cut to at most `max` code points (with "..." when cut); control chars → ' '. */
static void put_quoted(fmt *f, const char *s, size_t max)
{
    put(f, "\"");
    size_t n = strlen(s), cps = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = tw_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (cps == max) {
            put(f, "...");
            break;
        }
        if (cp < 0x20) put(f, " ");
        else put(f, "%.*s", l, s + i);
        i += (size_t)l;
        cps++;
    }
    put(f, "\"");
}

/* Word-wrap text to WIDTH with `indent` spaces on continuation lines (first line starts at
 * column `col`). */
static void put_wrapped(fmt *f, const char *text, size_t col, size_t indent)
{
    const char *p = text;
    size_t c = col;
    bool first = true;
    while (*p) {
        while (*p == ' ') p++;
        size_t w = strcspn(p, " ");
        if (w == 0) break;
        size_t cols = tw_utf8_len(p, w);
        if (!first && c + 1 + cols > WIDTH) {
            put(f, "\n%*s", (int)indent, "");
            c = indent;
        } else if (!first) {
            put(f, " ");
            c++;
        }
        put(f, "%.*s", (int)w, p);
        c += cols;
        p += w;
        first = false;
    }
    put(f, "\n");
}

static void fmt_dist_row(fmt *f, const char *label, const json_t *d)
{
    if (!json_is_object(d)) {
        put(f, "  %-22s %8s\n", label, "-");
        return;
    }
    put(f, "  %-22s %8zu %9.1f %8zu %8zu %8zu %8zu\n", label, jz(d, "min"), jd(d, "mean"), jz(d, "p50"),
        jz(d, "p90"), jz(d, "p99"), jz(d, "max"));
}

static const char *level_text(const char *code)
{
    if (strcmp(code, "ready") == 0) return "ready";
    if (strcmp(code, "warnings") == 0) return "usable with warnings";
    return "not ready";
}

tw_status tw_audit_format(const json_t *report, tw_buf *out)
{
    const json_t *splits = json_object_get(report, "splits");
    const json_t *rd = json_object_get(report, "readiness");
    if (!json_is_object(report) || !json_is_object(splits) || !json_is_object(rd))
        return TW_ERR_INVALID;
    fmt F = {out, false}, *f = &F;
    nbuf nb = {0};
    const char *type = js(report, "task_type");
    bool classify = strcmp(type, "classify") == 0, extract = strcmp(type, "extract") == 0;
    const json_t *sp[TW_SPLIT_COUNT];
    int present = 0;
    for (int i = 0; i < TW_SPLIT_COUNT; i++) {
        sp[i] = json_object_get(splits, split_name(i));
        if (!json_is_object(sp[i])) sp[i] = NULL;
        else present++;
    }
    const json_t *nd = json_object_get(json_object_get(report, "params"), "near_dup");

    put(f, "tunewise audit: %s task, %d split%s, seed %lld", type, present, present == 1 ? "" : "s",
        (long long)json_integer_value(json_object_get(report, "seed")));
    if (json_is_object(nd))
        put(f, ", near-dup: %s %zu-shingles, Jaccard >= %.2f\n", js(nd, "shingle"), jz(nd, "k"),
            jd(nd, "threshold"));
    else
        put(f, ", near-dup search off\n");

    /* splits overview */
    put(f, "\n%-6s %8s %8s %10s %10s %10s", "split", "rows", "labeled", "dup exact", "dup norm.", "conflicts");
    if (classify) put(f, " %8s %14s %7s %8s", "classes", "min/max class", "imbal.", "entropy");
    else if (extract) put(f, " %13s %7s", "JSON objects", "fields");
    put(f, "\n");
    for (int i = 0; i < TW_SPLIT_COUNT; i++) {
        if (!sp[i]) continue;
        const json_t *s = sp[i], *dup = json_object_get(s, "duplicates"), *cf = json_object_get(s, "conflicts");
        put(f, "%-6s %8s %8s %10s %10s %10s", split_name(i), cnt(&nb, jz(s, "rows")), cnt(&nb, jz(s, "labeled")),
            cnt(&nb, jz(json_object_get(dup, "exact"), "rows")),
            cnt(&nb, jz(json_object_get(dup, "normalized"), "rows")),
            json_is_object(cf) ? cnt(&nb, jz(cf, "groups")) : "-");
        if (classify) {
            const json_t *c = json_object_get(s, "classes");
            const json_t *mn = json_object_get(c, "min"), *mx = json_object_get(c, "max");
            char mm[32] = "-";
            if (json_is_object(mn)) snprintf(mm, sizeof mm, "%zu / %zu", jz(mn, "count"), jz(mx, "count"));
            double ir = jd(c, "imbalance_ratio"), en = jd(c, "normalized_entropy");
            put(f, " %8zu %14s", jz(c, "count"), mm);
            if (isnan(ir)) put(f, " %7s", "-"); else put(f, " %7.2f", ir);
            if (isnan(en)) put(f, " %8s", "-"); else put(f, " %8.3f", en);
        } else if (extract) {
            const json_t *x = json_object_get(s, "extract");
            double sh = jd(x, "share");
            char pc[32] = "-";
            if (!isnan(sh)) snprintf(pc, sizeof pc, "%.1f%%", 100 * sh);
            put(f, " %13s %7zu", pc, json_array_size(json_object_get(x, "fields")));
        }
        put(f, "\n");
    }
    put(f, "(dup = rows repeating an earlier input of the split, norm. includes exact; conflicts = "
           "inputs\n with different %s)\n", extract ? "outputs" : "labels");

    /* classes detail */
    if (classify) {
        bool header = false;
        for (int i = 0; i < TW_SPLIT_COUNT; i++) {
            if (!sp[i]) continue;
            const json_t *c = json_object_get(sp[i], "classes");
            const json_t *mn = json_object_get(c, "min"), *mx = json_object_get(c, "max");
            if (!json_is_object(mn)) continue;
            if (!header) put(f, "\nclasses\n");
            header = true;
            if (jz(mn, "count") == jz(mx, "count"))
                put(f, "  %-5s every class has %s rows\n", split_name(i), cnt(&nb, jz(mn, "count")));
            else
                put(f, "  %-5s smallest %s (%s), largest %s (%s)\n", split_name(i), js(mn, "label"),
                    cnt(&nb, jz(mn, "count")), js(mx, "label"), cnt(&nb, jz(mx, "count")));
            const json_t *bl = json_object_get(c, "below_min_per_class");
            if (json_array_size(bl) > 0) {
                tw_buf t = {0};
                size_t k;
                json_t *e;
                json_array_foreach(bl, k, e) {
                    if (k == 8) {
                        tw_buf_printf(&t, ", ... (%zu more)", json_array_size(bl) - 8);
                        break;
                    }
                    tw_buf_printf(&t, "%s%s (%zu)", k ? ", " : "", js(e, "label"), jz(e, "count"));
                }
                char lab[48];
                snprintf(lab, sizeof lab, "        below %zu rows: ",
                         jz(json_object_get(json_object_get(report, "params"), "thresholds"), "min_per_class"));
                put(f, "%s", lab);
                put_wrapped(f, t.data ? t.data : "", strlen(lab), 10);
                tw_buf_free(&t);
            }
            const json_t *un = json_object_get(sp[i], "unseen_labels");
            if (jz(un, "rows") > 0) {
                tw_buf t = {0};
                size_t k;
                json_t *e;
                json_array_foreach(json_object_get(un, "labels"), k, e) {
                    if (k == 8) {
                        tw_buf_printf(&t, ", ...");
                        break;
                    }
                    tw_buf_printf(&t, "%s%s (%zu)", k ? ", " : "", js(e, "label"), jz(e, "count"));
                }
                put(f, "        not in train: ");
                put_wrapped(f, t.data ? t.data : "", 22, 10);
                tw_buf_free(&t);
            }
            const json_t *ud = json_object_get(c, "undeclared");
            if (json_array_size(ud) > 0) {
                tw_buf t = {0};
                size_t k;
                json_t *e;
                json_array_foreach(ud, k, e) {
                    if (k == 8) {
                        tw_buf_printf(&t, ", ...");
                        break;
                    }
                    tw_buf_printf(&t, "%s%s (%zu)", k ? ", " : "", js(e, "label"), jz(e, "count"));
                }
                put(f, "        undeclared: ");
                put_wrapped(f, t.data ? t.data : "", 20, 10);
                tw_buf_free(&t);
            }
        }
    }

    /* extract fields */
    if (extract) {
        for (int i = 0; i < TW_SPLIT_COUNT; i++) {
            if (!sp[i]) continue;
            const json_t *x = json_object_get(sp[i], "extract");
            const json_t *fl = json_object_get(x, "fields");
            if (i == TW_SPLIT_TRAIN || (!sp[TW_SPLIT_TRAIN] && json_array_size(fl) > 0)) {
                put(f, "\nfields in %s outputs (rows having the key, of %s JSON objects)\n", split_name(i),
                    cnt(&nb, jz(x, "json_objects")));
                size_t k, shown = 0, maxshow = 30;
                json_t *e;
                json_array_foreach(fl, k, e) {
                    if (shown == maxshow) break;
                    char key[40];
                    const char *ks = js(e, "key");
                    if (strlen(ks) > 31) snprintf(key, sizeof key, "%.28s...", ks);
                    else snprintf(key, sizeof key, "%s", ks);
                    put(f, "  %-31s %7s %5.1f%%", key, cnt(&nb, jz(e, "rows")), 100 * jd(e, "share"));
                    put(f, shown % 2 ? "\n" : "   ");
                    shown++;
                }
                if (shown % 2) put(f, "\n");
                if (json_array_size(fl) > maxshow) put(f, "  ... %zu more keys\n", json_array_size(fl) - maxshow);
            }
            const json_t *uf = json_object_get(x, "unseen_fields");
            if (json_array_size(uf) > 0) {
                tw_buf t = {0};
                size_t k;
                json_t *e;
                json_array_foreach(uf, k, e) tw_buf_printf(&t, "%s%s", k ? ", " : "", json_string_value(e));
                put(f, "  %s keys not in train: ", split_name(i));
                put_wrapped(f, t.data ? t.data : "", 23 + strlen(split_name(i)), 4);
                tw_buf_free(&t);
            }
            const json_t *inv = json_object_get(x, "invalid_examples");
            if (json_array_size(inv) > 0) {
                put(f, "  %s outputs that are not JSON objects, e.g.:", split_name(i));
                size_t k;
                json_t *e;
                json_array_foreach(inv, k, e) put(f, " %s (line %zu)", js(e, "id"), jz(e, "line"));
                put(f, "\n");
            }
        }
    }

    /* lengths */
    put(f, "\n%-24s %8s %9s %8s %8s %8s %8s\n", "lengths", "min", "mean", "p50", "p90", "p99", "max");
    for (int i = 0; i < TW_SPLIT_COUNT; i++) {
        if (!sp[i]) continue;
        const json_t *L = json_object_get(sp[i], "lengths");
        static const char *const WH[2] = {"input", "output"};
        for (int w = 0; w < 2; w++) {
            const json_t *x = json_object_get(L, WH[w]);
            char lab[40];
            snprintf(lab, sizeof lab, "%s %s chars", split_name(i), WH[w]);
            fmt_dist_row(f, lab, json_object_get(x, "chars"));
            snprintf(lab, sizeof lab, "%s %s words", split_name(i), WH[w]);
            fmt_dist_row(f, lab, json_object_get(x, "words"));
        }
        const json_t *rf = json_object_get(sp[i], "references");
        if (json_is_object(rf)) {
            char lab[40];
            snprintf(lab, sizeof lab, "%s references/item", split_name(i));
            fmt_dist_row(f, lab, json_object_get(rf, "per_item"));
        }
    }

    /* leakage */
    const json_t *lk = json_object_get(report, "leakage");
    if (json_array_size(lk) > 0) {
        put(f, "\nleakage: rows of the later split whose input also occurs in the earlier one\n");
        put(f, "  %-14s %8s %8s %11s %8s %8s %7s %11s\n", "pair", "rows", "exact", "normalized", "near",
            "total", "share", "label diff");
        size_t k;
        json_t *e;
        json_array_foreach(lk, k, e) {
            char pair[40];
            snprintf(pair, sizeof pair, "%s -> %s", js(e, "from"), js(e, "to"));
            const json_t *t0 = json_object_get(e, "exact"), *t1 = json_object_get(e, "normalized"),
                         *t2 = json_object_get(e, "near");
            size_t rows = jz(e, "rows"), tot = jz(e, "total");
            size_t dif = jz(t0, "label_differs") + jz(t1, "label_differs") + jz(t2, "label_differs");
            bool difn = json_is_null(json_object_get(t0, "label_differs"));
            put(f, "  %-14s %8s %8s %11s %8s %8s %6.1f%% %11s\n", pair, cnt(&nb, rows), cnt(&nb, jz(t0, "rows")),
                cnt(&nb, jz(t1, "rows")), json_is_object(t2) ? cnt(&nb, jz(t2, "rows")) : "-", cnt(&nb, tot),
                rows ? 100.0 * (double)tot / (double)rows : 0.0, difn ? "-" : cnt(&nb, dif));
            put(f, "  %-14s exact: %s distinct inputs, matching %s %s rows\n", "",
                cnt(&nb, jz(t0, "distinct_inputs")), cnt(&nb, jz(t0, "matched_from_rows")), js(e, "from"));
        }
        json_array_foreach(lk, k, e) {
            static const char *const TN[3] = {"exact", "normalized", "near"};
            for (int t = 0; t < 3; t++) {
                const json_t *ex = json_object_get(json_object_get(e, TN[t]), "examples");
                if (json_array_size(ex) == 0) continue;
                put(f, "  e.g. %s -> %s %s:\n", js(e, "from"), js(e, "to"), TN[t]);
                size_t q;
                json_t *x;
                json_array_foreach(ex, q, x) {
                    put(f, "    %s = %s", js(x, "id"), js(x, "match_id"));
                    if (t == 2) put(f, "  (Jaccard %.2f)", jd(x, "jaccard"));
                    if (json_is_true(json_object_get(x, "label_differs"))) put(f, "  [label differs]");
                    put(f, "\n");
                    if (t > 0) {
                        put(f, "      ");
                        put_quoted(f, js(x, "input"), 40);
                        put(f, " ~ ");
                        put_quoted(f, js(x, "match_input"), 40);
                        put(f, "\n");
                    }
                }
            }
        }
    }

    /* conflicts */
    for (int i = 0; i < TW_SPLIT_COUNT; i++) {
        if (!sp[i]) continue;
        const json_t *cf = json_object_get(sp[i], "conflicts");
        if (jz(cf, "groups") == 0) continue;
        put(f, "\nconflicting %s in %s (%s inputs, %s rows), e.g.:\n", extract ? "outputs" : "labels",
            split_name(i), cnt(&nb, jz(cf, "groups")), cnt(&nb, jz(cf, "rows")));
        size_t k;
        json_t *e;
        json_array_foreach(json_object_get(cf, "examples"), k, e) {
            put(f, "  ");
            put_quoted(f, js(e, "input"), 80);
            put(f, "\n");
            size_t q;
            json_t *x;
            json_array_foreach(json_object_get(e, "rows"), q, x) {
                put(f, "    %s (line %zu): ", js(x, "id"), jz(x, "line"));
                put_quoted(f, js(x, "output"), 60);
                put(f, "\n");
            }
        }
    }

    /* readiness */
    put(f, "\nreadiness: %s\n", level_text(js(rd, "verdict")));
    const json_t *je = json_object_get(rd, "eval"), *jm = json_object_get(je, "mde");
    put(f, "  %-12s %-21s", "eval set", level_text(js(je, "level")));
    if (json_is_string(json_object_get(je, "split")))
        put(f, " %s: %s rows", js(je, "split"), cnt(&nb, jz(je, "rows")));
    else
        put(f, " no dev/test split");
    if (json_is_object(jm))
        put(f, ", detects >= %.1f points near %.0f%%", 100 * jd(jm, "difference"), 100 * jd(jm, "accuracy"));
    put(f, "\n");
    put(f, "  %-12s %s\n", "prompting", level_text(js(json_object_get(rd, "prompting"), "level")));
    const json_t *jf = json_object_get(rd, "finetune");
    put(f, "  %-12s %-21s %s train rows\n", "fine-tuning", level_text(js(jf, "level")),
        cnt(&nb, jz(jf, "train_rows")));
    const json_t *rs = json_object_get(rd, "reasons");
    if (json_array_size(rs) > 0) {
        put(f, "reasons:\n");
        size_t k;
        json_t *e;
        json_array_foreach(rs, k, e) {
            const char *lv = js(e, "level");
            const char *tag = strcmp(lv, "blocker") == 0 ? "[blocker]" : strcmp(lv, "warning") == 0 ? "[warning]" : "[info]   ";
            put(f, "  %s ", tag);
            put_wrapped(f, js(e, "message"), 12, 12);
        }
    }
    return F.fail ? TW_ERR_NOMEM : TW_OK;
}
