/* predictions.c — read and write the shared predictions JSONL format (predictions.h). */
#include "task/predictions.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void tw_pred_init(tw_pred *p)
{
    memset(p, 0, sizeof *p);
    p->valid = true;
    p->latency_ms = p->tokens_in = p->tokens_out = p->cost = NAN;
}

void tw_pred_free(tw_pred *p)
{
    free(p->id);
    free(p->input);
    free(p->reference);
    free(p->prediction);
    free(p->parsed);
    tw_pred_init(p);
}

void tw_pred_set_free(tw_pred_set *s)
{
    for (size_t i = 0; i < s->n; i++) tw_pred_free(&s->rows[i]);
    free(s->rows);
    memset(s, 0, sizeof *s);
}

/* String field: absent/null → NULL; strings copied; numbers/objects serialized. */
static tw_status get_text(json_t *o, const char *key, char **out, const char *path, size_t line, tw_error *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v)) return TW_OK;
    if (json_is_string(v)) *out = tw_strndup(json_string_value(v), json_string_length(v), err);
    else *out = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (!*out) return tw_error_set(err, TW_ERR_NOMEM, "%s:%zu: out of memory", path, line);
    return TW_OK;
}

static tw_status get_num(json_t *o, const char *key, double *out, const char *path, size_t line, tw_error *err)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return TW_OK;
    if (!json_is_number(v))
        return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: field '%s' must be a number", path, line, key);
    *out = json_number_value(v);
    return TW_OK;
}

tw_status tw_pred_load(tw_pred_set *out, const char *path, tw_error *err)
{
    memset(out, 0, sizeof *out);
    tw_line_reader r;
    tw_status st = tw_line_reader_open(&r, path, 0, err);
    if (st) return st;
    const char *line;
    size_t len;
    tw_str_index ids = {0};   /* id → row, for duplicate detection */
    while ((st = tw_line_reader_next(&r, &line, &len, err)) == TW_OK) {
        size_t ln = r.line_no;
        if (len == 0 || strspn(line, " \t") == len) continue;
        size_t bad;
        if (!tw_utf8_valid(line, len, &bad)) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: invalid UTF-8 at byte %zu of the line", path, ln, bad + 1);
            break;
        }
        json_error_t je;
        json_t *o = json_loadb(line, len, 0, &je);
        if (!o) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%d: invalid JSON: %s", path, ln, je.column, je.text);
            break;
        }
        if (!json_is_object(o)) {
            json_decref(o);
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: expected a JSON object", path, ln);
            break;
        }
        tw_pred p;
        tw_pred_init(&p);
        p.line = ln;
        if ((st = get_text(o, "id", &p.id, path, ln, err)) || (st = get_text(o, "input", &p.input, path, ln, err)) ||
            (st = get_text(o, "reference", &p.reference, path, ln, err)) ||
            (st = get_text(o, "prediction", &p.prediction, path, ln, err)) ||
            (st = get_text(o, "parsed", &p.parsed, path, ln, err)) ||
            (st = get_num(o, "latency_ms", &p.latency_ms, path, ln, err)) ||
            (st = get_num(o, "tokens_in", &p.tokens_in, path, ln, err)) ||
            (st = get_num(o, "tokens_out", &p.tokens_out, path, ln, err)) ||
            (st = get_num(o, "cost", &p.cost, path, ln, err))) {
            json_decref(o);
            tw_pred_free(&p);
            break;
        }
        json_t *valid = json_object_get(o, "valid");
        if (valid && !json_is_boolean(valid) && !json_is_null(valid)) {
            json_decref(o);
            tw_pred_free(&p);
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: field 'valid' must be true or false", path, ln);
            break;
        }
        if (valid && json_is_boolean(valid)) p.valid = json_is_true(valid);
        json_decref(o);
        if (!p.id || !p.prediction) {
            const char *miss = !p.id ? "id" : "prediction";
            tw_pred_free(&p);
            st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: missing field '%s' (a predictions file has one "
                              "{\"id\", \"prediction\", ...} object per line)", path, ln, miss);
            break;
        }
        bool dup;
        size_t first;
        if ((st = tw_str_index_put(&ids, p.id, out->n, &dup, &first, err))) {
            tw_pred_free(&p);
            break;
        }
        if (dup) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: duplicate id '%s' (first seen on line %zu)", path, ln, p.id,
                              out->rows[first].line);
            tw_pred_free(&p);
            break;
        }
        if ((st = tw_grow((void **)&out->rows, &out->cap, out->n + 1, sizeof *out->rows, err))) {
            tw_pred_free(&p);
            break;
        }
        out->rows[out->n++] = p;
    }
    tw_str_index_free(&ids);
    tw_line_reader_close(&r);
    if (st == TW_DONE) st = TW_OK;
    if (st == TW_OK && out->n == 0) st = tw_error_set(err, TW_ERR_INVALID, "%s: no predictions in file", path);
    if (st) tw_pred_set_free(out);
    return st;
}

struct tw_pred_writer {
    tw_atomic_file af;
};

tw_status tw_pred_writer_open(tw_pred_writer **out, const char *path, tw_error *err)
{
    tw_pred_writer *w = tw_calloc(1, sizeof *w, err);
    if (!w) return TW_ERR_NOMEM;
    tw_status st = tw_atomic_open(&w->af, path, err);
    if (st) { free(w); return st; }
    *out = w;
    return TW_OK;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return v ? json_object_set_new(o, k, json_string(v)) : 0;
}

static int set_num(json_t *o, const char *k, double v)
{
    if (isnan(v)) return 0;
    if (v == floor(v) && fabs(v) < 1e15) return json_object_set_new(o, k, json_integer((json_int_t)v));
    return json_object_set_new(o, k, json_real(v));
}

tw_status tw_pred_writer_write(tw_pred_writer *w, const tw_pred *p, tw_error *err)
{
    json_t *o = json_object();
    if (!o) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    int bad = set_str(o, "id", p->id) | set_str(o, "input", p->input) | set_str(o, "reference", p->reference) |
              set_str(o, "prediction", p->prediction ? p->prediction : "") | set_str(o, "parsed", p->parsed) |
              json_object_set_new(o, "valid", json_boolean(p->valid)) | set_num(o, "latency_ms", p->latency_ms) |
              set_num(o, "tokens_in", p->tokens_in) | set_num(o, "tokens_out", p->tokens_out) | set_num(o, "cost", p->cost);
    if (bad) { json_decref(o); return tw_error_set(err, TW_ERR_NOMEM, "out of memory (or invalid UTF-8 in a field)"); }
    int rc = json_dumpf(o, w->af.fp, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (rc != 0 || fputc('\n', w->af.fp) == EOF) return tw_error_set(err, TW_ERR_IO, "write failed");
    return TW_OK;
}

tw_status tw_pred_writer_close(tw_pred_writer *w, tw_error *err)
{
    tw_status st = tw_atomic_commit(&w->af, err);
    free(w);
    return st;
}

void tw_pred_writer_abort(tw_pred_writer *w)
{
    if (!w) return;
    tw_atomic_abort(&w->af);
    free(w);
}
