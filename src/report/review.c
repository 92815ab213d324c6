/* review.c — human review export/import (review.h). The CSV follows RFC 4180 (written
 * with tw_csv_put_field, read with tw_csv_next); text cells that a spreadsheet would run
 * as a formula (leading = + - @) get a leading apostrophe. Randomness: one tw_rng seeded
 * with the seed draws the item sample (Fisher-Yates shuffle of the common items) and then,
 * item by item, the slot order of the arms.
 * Deliberately not here: interpreting ratings (a mean and its bootstrap CI only). */
#include "report/review.h"
#include "score/stats.h"
#include "task/rows.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pred_rows {
    char **id, **input, **ref, **ans;
    size_t n, cap;
    tw_str_index ix;
} pred_rows;

static void rows_free(pred_rows *p)
{
    for (size_t i = 0; i < p->n; i++) { free(p->id[i]); free(p->input[i]); free(p->ref[i]); free(p->ans[i]); }
    free(p->id); free(p->input); free(p->ref); free(p->ans);
    tw_str_index_free(&p->ix);
    memset(p, 0, sizeof *p);
}

static tw_status rows_load(pred_rows *p, const char *dir, tw_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/predictions.jsonl", dir);
    tw_line_reader lr;
    if (tw_line_reader_open(&lr, path, TW_MAX_LINE_DEFAULT, err)) return err->status;
    const char *line;
    size_t len;
    tw_status st;
    while ((st = tw_line_reader_next(&lr, &line, &len, err)) == TW_OK) {
        if (!len) continue;
        json_error_t je;
        json_t *o = json_loadb(line, len, 0, &je);
        const char *id = json_string_value(json_object_get(o, "id"));
        if (!json_is_object(o) || !id) {
            json_decref(o);
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: expected a prediction object with an \"id\"", path, lr.line_no);
            break;
        }
        const char *ans = json_string_value(json_object_get(o, "parsed"));
        if (!ans) ans = json_string_value(json_object_get(o, "prediction"));
        size_t c1 = p->cap, c2 = p->cap, c3 = p->cap;
        st = tw_grow((void **)&p->id, &p->cap, p->n + 1, sizeof(char *), err);
        st = st ? st : tw_grow((void **)&p->input, &c1, p->n + 1, sizeof(char *), err);
        st = st ? st : tw_grow((void **)&p->ref, &c2, p->n + 1, sizeof(char *), err);
        st = st ? st : tw_grow((void **)&p->ans, &c3, p->n + 1, sizeof(char *), err);
        if (!st) {
            const char *in = json_string_value(json_object_get(o, "input")), *ref = json_string_value(json_object_get(o, "reference"));
            p->id[p->n] = strdup(id);
            p->input[p->n] = strdup(in ? in : "");
            p->ref[p->n] = strdup(ref ? ref : "");
            p->ans[p->n] = strdup(ans ? ans : "");
            p->n++;
            if (!p->id[p->n - 1] || !p->input[p->n - 1] || !p->ref[p->n - 1] || !p->ans[p->n - 1])
                st = tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
        }
        json_decref(o);
        if (st) break;
        bool found;
        if ((st = tw_str_index_put(&p->ix, p->id[p->n - 1], p->n - 1, &found, NULL, err))) break;
        if (found) { st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: duplicate id '%s'", path, lr.line_no, p->id[p->n - 1]); break; }
    }
    tw_line_reader_close(&lr);
    return st == TW_DONE ? TW_OK : st;
}

/* CSV text cell, defused for spreadsheets. */
static tw_status put_text(tw_buf *b, const char *s)
{
    if (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@') {
        tw_buf t = {0};
        tw_status st = tw_buf_putc(&t, '\'');
        st = st ? st : tw_buf_puts(&t, s);
        st = st ? st : tw_csv_put_field(b, t.data);
        tw_buf_free(&t);
        return st;
    }
    return tw_csv_put_field(b, s);
}

tw_status tw_review_export(const char *const *run_dirs, size_t n_runs, size_t n, uint64_t seed, const char *csv_path, const char *key_path,
                           size_t *written, tw_error *err)
{
    *written = 0;
    if (n_runs == 0 || n_runs > TW_REVIEW_MAX_ARMS)
        return tw_error_set(err, TW_ERR_INVALID, "review export: give 1 to %d runs (got %zu)", TW_REVIEW_MAX_ARMS, n_runs);
    pred_rows rows[TW_REVIEW_MAX_ARMS];
    memset(rows, 0, sizeof rows);
    tw_status st = TW_OK;
    for (size_t r = 0; r < n_runs && !st; r++) st = rows_load(&rows[r], run_dirs[r], err);
    /* items every run predicted, in the first run's order */
    size_t *common = NULL, nc = 0, (*where)[TW_REVIEW_MAX_ARMS] = NULL;
    if (!st) {
        common = malloc((rows[0].n ? rows[0].n : 1) * sizeof *common);
        where = malloc((rows[0].n ? rows[0].n : 1) * sizeof *where);
        if (!common || !where) st = tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
    }
    for (size_t i = 0; i < rows[0].n && !st; i++) {
        bool all = true;
        for (size_t r = 0; r < n_runs && all; r++) all = tw_str_index_get(&rows[r].ix, rows[0].id[i], &where[nc][r]);
        if (all) common[nc++] = i;
    }
    if (!st && nc == 0) st = tw_error_set(err, TW_ERR_INVALID, "review export: the runs have no item (id) in common");
    tw_buf csv = {0};
    json_t *key = NULL, *items = NULL;
    if (!st) {
        tw_rng rng;
        tw_rng_seed(&rng, seed);
        size_t *perm = malloc(nc * sizeof *perm);
        if (!perm) st = tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
        for (size_t i = 0; i < nc && !st; i++) perm[i] = i;
        if (!st) tw_rng_shuffle(&rng, perm, nc, sizeof *perm);
        size_t take = n < nc ? n : nc;
        key = json_object();
        items = json_array();
        json_t *runs = json_array();
        for (size_t r = 0; r < n_runs; r++) json_array_append_new(runs, json_string(run_dirs[r]));
        json_object_set_new(key, "format", json_string("tunewise-review-key"));
        json_object_set_new(key, "version", json_integer(1));
        json_object_set_new(key, "seed", json_integer((json_int_t)seed));
        json_object_set_new(key, "runs", runs);
        st = st ? st : tw_buf_puts(&csv, "item,id,input,reference");
        for (size_t s = 0; s < n_runs && !st; s++) st = tw_buf_printf(&csv, ",answer_%c,rating_%c", (char)('A' + s), (char)('A' + s));
        st = st ? st : tw_buf_puts(&csv, ",notes\r\n");
        for (size_t k = 0; k < take && !st; k++) {
            size_t i = common[perm[k]], slot[TW_REVIEW_MAX_ARMS];
            for (size_t s = 0; s < n_runs; s++) slot[s] = s;
            tw_rng_shuffle(&rng, slot, n_runs, sizeof slot[0]);   /* slot s shows run slot[s] */
            st = tw_buf_printf(&csv, "%zu,", k + 1);
            st = st ? st : tw_csv_put_field(&csv, rows[0].id[i]);
            st = st ? st : tw_buf_putc(&csv, ',');
            st = st ? st : put_text(&csv, rows[0].input[i]);
            st = st ? st : tw_buf_putc(&csv, ',');
            st = st ? st : put_text(&csv, rows[0].ref[i]);
            json_t *order = json_array();
            for (size_t s = 0; s < n_runs && !st; s++) {
                size_t r = slot[s];
                st = tw_buf_putc(&csv, ',');
                st = st ? st : put_text(&csv, rows[r].ans[where[perm[k]][r]]);
                st = st ? st : tw_buf_puts(&csv, ",");
                json_array_append_new(order, json_integer((json_int_t)r));
            }
            st = st ? st : tw_buf_puts(&csv, ",\r\n");
            json_t *it = json_object();
            json_object_set_new(it, "item", json_integer((json_int_t)(k + 1)));
            json_object_set_new(it, "id", json_string(rows[0].id[i]));
            json_object_set_new(it, "order", order);
            json_array_append_new(items, it);
        }
        json_object_set_new(key, "items", items);
        if (!st) *written = take;
        free(perm);
    }
    if (!st) st = tw_file_write_atomic(csv_path, csv.data, csv.len, err);
    if (!st) {
        char *text = json_dumps(key, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (!text) st = tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
        else {
            tw_buf b = {0};
            st = tw_buf_puts(&b, text);
            st = st ? st : tw_buf_putc(&b, '\n');
            st = st ? st : tw_file_write_atomic(key_path, b.data, b.len, err);
            tw_buf_free(&b);
            free(text);
        }
    }
    json_decref(key);
    tw_buf_free(&csv);
    free(common);
    free(where);
    for (size_t r = 0; r < n_runs; r++) rows_free(&rows[r]);
    return st;
}

/* ---- import ------------------------------------------------------------------------ */

static tw_status fold_into_metrics(const char *dir, size_t n, double mean, double lo, double hi, const char *csv_path, tw_error *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    json_error_t je;
    json_t *m = json_load_file(path, JSON_PRESERVE_ORDER, &je);
    if (!json_is_object(m)) {
        json_decref(m);
        return tw_error_set(err, TW_ERR_PARSE, "%s: %s", path, je.text);
    }
    json_t *hr = json_object();
    json_object_set_new(hr, "n", json_integer((json_int_t)n));
    json_object_set_new(hr, "mean", n ? json_real(mean) : json_null());
    json_t *ci = json_array();
    json_array_append_new(ci, n ? json_real(lo) : json_null());
    json_array_append_new(ci, n ? json_real(hi) : json_null());
    json_object_set_new(hr, "ci", ci);
    json_object_set_new(hr, "ci_level", json_real(0.95));
    json_object_set_new(hr, "source", json_string(csv_path));
    json_object_set_new(m, "human_review", hr);
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(m);
    if (!text) return tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
    tw_buf b = {0};
    tw_status st = tw_buf_puts(&b, text);
    st = st ? st : tw_buf_putc(&b, '\n');
    free(text);
    st = st ? tw_error_set(err, st, "review: out of memory") : tw_file_write_atomic(path, b.data, b.len, err);
    tw_buf_free(&b);
    return st;
}

tw_status tw_review_import(const char *csv_path, const char *key_path, bool dry_run, tw_review_summary *out, tw_error *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *key = json_load_file(key_path, 0, &je);
    if (!key) return tw_error_set(err, TW_ERR_PARSE, "%s: line %d: %s", key_path, je.line, je.text);
    json_t *runs = json_object_get(key, "runs"), *items = json_object_get(key, "items");
    if (strcmp(json_string_value(json_object_get(key, "format")) ? json_string_value(json_object_get(key, "format")) : "", "tunewise-review-key") != 0 ||
        !json_is_array(runs) || !json_is_array(items) || json_array_size(runs) == 0 || json_array_size(runs) > TW_REVIEW_MAX_ARMS) {
        json_decref(key);
        return tw_error_set(err, TW_ERR_PARSE, "%s: not a tunewise review key (format \"tunewise-review-key\" with runs and items)", key_path);
    }
    size_t nr = json_array_size(runs), ni = json_array_size(items);
    out->n_runs = nr;
    for (size_t r = 0; r < nr; r++) snprintf(out->run_dir[r], sizeof out->run_dir[r], "%s", json_string_value(json_array_get(runs, r)) ? json_string_value(json_array_get(runs, r)) : "");
    double *ratings[TW_REVIEW_MAX_ARMS] = {0};
    bool *seen = calloc(ni ? ni : 1, sizeof *seen);
    tw_status st = seen ? TW_OK : tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
    for (size_t r = 0; r < nr && !st; r++)
        if (!(ratings[r] = malloc((ni ? ni : 1) * sizeof(double)))) st = tw_error_set(err, TW_ERR_NOMEM, "review: out of memory");
    tw_line_reader lr;
    tw_csv csv = {0};
    csv.max_record = TW_MAX_LINE_DEFAULT;
    bool open = false;
    if (!st && !(st = tw_line_reader_open(&lr, csv_path, TW_MAX_LINE_DEFAULT, err))) open = true;
    long col_item = -1, col_id = -1, col_rating[TW_REVIEW_MAX_ARMS];
    for (size_t s = 0; s < TW_REVIEW_MAX_ARMS; s++) col_rating[s] = -1;
    if (!st) {
        st = tw_csv_next(&csv, &lr, err);
        if (st == TW_DONE) st = tw_error_set(err, TW_ERR_PARSE, "%s: empty file", csv_path);
        for (size_t c = 0; !st && c < csv.n; c++) {
            const char *h = tw_csv_field(&csv, c);
            if (strcmp(h, "item") == 0) col_item = (long)c;
            else if (strcmp(h, "id") == 0) col_id = (long)c;
            else if (strncmp(h, "rating_", 7) == 0 && h[7] >= 'A' && h[7] < 'A' + (int)nr && !h[8]) col_rating[h[7] - 'A'] = (long)c;
        }
        for (size_t s = 0; !st && s < nr; s++)
            if (col_rating[s] < 0) st = tw_error_set(err, TW_ERR_PARSE, "%s:1: missing column rating_%c (the key has %zu arms)", csv_path, (char)('A' + s), nr);
        if (!st && (col_item < 0 || col_id < 0)) st = tw_error_set(err, TW_ERR_PARSE, "%s:1: missing column item or id", csv_path);
    }
    while (!st) {
        st = tw_csv_next(&csv, &lr, err);
        if (st == TW_DONE) { st = TW_OK; break; }
        if (st) break;
        size_t line = csv.rec_line;
        char *end;
        const char *fi = (size_t)col_item < csv.n ? tw_csv_field(&csv, (size_t)col_item) : "";
        long item = strtol(fi, &end, 10);
        if (!*fi || *end || item < 1 || (size_t)item > ni) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: item '%s' is not in the key (1..%zu)", csv_path, line, fi, ni);
            break;
        }
        json_t *it = json_array_get(items, (size_t)item - 1);
        const char *kid = json_string_value(json_object_get(it, "id")), *cid = (size_t)col_id < csv.n ? tw_csv_field(&csv, (size_t)col_id) : "";
        json_t *order = json_object_get(it, "order");
        if (!kid || strcmp(kid, cid) != 0 || json_array_size(order) != nr) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: item %ld has id '%s' but the key says '%s' (wrong key file?)", csv_path, line, item, cid,
                              kid ? kid : "?");
            break;
        }
        if (seen[item - 1]) { st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: item %ld appears twice", csv_path, line, item); break; }
        /* the key's order must be a permutation of the runs (each run rated at most once per item) */
        bool used[TW_REVIEW_MAX_ARMS] = {false};
        for (size_t s = 0; s < nr && !st; s++) {
            json_t *e = json_array_get(order, s);
            json_int_t r = json_is_integer(e) ? json_integer_value(e) : -1;
            if (r < 0 || (size_t)r >= nr || used[r]) st = tw_error_set(err, TW_ERR_PARSE, "%s: item %ld: \"order\" is not a permutation of the %zu runs", key_path, item, nr);
            else used[r] = true;
        }
        if (st) break;
        seen[item - 1] = true;
        for (size_t s = 0; s < nr && !st; s++) {
            const char *v = (size_t)col_rating[s] < csv.n ? tw_csv_field(&csv, (size_t)col_rating[s]) : "";
            while (*v == ' ') v++;
            if (!*v) continue;   /* not rated */
            double x = strtod(v, &end);
            while (*end == ' ') end++;
            if (*end || !isfinite(x)) {
                st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: column rating_%c: '%s' is not a number", csv_path, line, (char)('A' + s), v);
                break;
            }
            json_int_t r = json_integer_value(json_array_get(order, s));   /* checked above */
            ratings[r][out->n_rated[r]++] = x;
        }
    }
    if (open) tw_line_reader_close(&lr);
    tw_csv_free(&csv);
    for (size_t r = 0; r < nr && !st; r++) {
        size_t n = out->n_rated[r];
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += ratings[r][i];
        out->mean[r] = n ? sum / (double)n : NAN;
        out->lo[r] = out->hi[r] = NAN;
        if (n) st = tw_bootstrap_mean_ci(&out->lo[r], &out->hi[r], ratings[r], n, 1000, 1, 0.95, err);
    }
    for (size_t r = 0; r < nr && !st && !dry_run; r++)
        st = fold_into_metrics(out->run_dir[r], out->n_rated[r], out->mean[r], out->lo[r], out->hi[r], csv_path, err);
    for (size_t r = 0; r < nr; r++) free(ratings[r]);
    free(seen);
    json_decref(key);
    return st;
}
