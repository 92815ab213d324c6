/* dataset.c — examples, the streaming reader (format detection, JSONL rows, CSV column
 * mapping; chat rows are converted in chat.c, CSV records parsed in csv.c), in-memory
 * datasets and the atomic writers.
 *
 * Every error names the place: "path:line: what is wrong" ("path:line:col: ..." where a
 * column is known). The reader holds one line / record and one example at a time, so
 * memory stays flat on any file size (tw_reader_mem).
 * Deliberately not here: task semantics (label sets, empty labels, metric choice: task.c
 * and split.c), splitting, auditing. Formats and messages: docs/data-formats.md. */
#include "task/rows.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- examples ----------------------------------------------------------- */

void tw_example_free(tw_example *ex)
{
    if (!ex) return;
    free(ex->id);
    free(ex->input);
    free(ex->output);
    for (size_t i = 0; i < ex->n_refs; i++) free(ex->refs[i]);
    free(ex->refs);
    free(ex->slice);
    free(ex->system);
    json_decref(ex->extra);
    memset(ex, 0, sizeof *ex);
}

static bool dup_or_null(char **dst, const char *src, tw_error *err)
{
    *dst = NULL;
    if (!src) return true;
    *dst = tw_strdup(src, err);
    return *dst != NULL;
}

tw_status tw_example_copy(tw_example *dst, const tw_example *src, tw_error *err)
{
    memset(dst, 0, sizeof *dst);
    dst->line = src->line;
    if (!dup_or_null(&dst->id, src->id, err) || !dup_or_null(&dst->input, src->input, err) ||
        !dup_or_null(&dst->output, src->output, err) || !dup_or_null(&dst->slice, src->slice, err) ||
        !dup_or_null(&dst->system, src->system, err))
        goto oom;
    if (src->n_refs) {
        dst->refs = tw_calloc(src->n_refs, sizeof *dst->refs, err);
        if (!dst->refs) goto oom;
        dst->n_refs = src->n_refs;
        for (size_t i = 0; i < src->n_refs; i++)
            if (!dup_or_null(&dst->refs[i], src->refs[i], err)) goto oom;
    }
    dst->extra = json_incref(src->extra);
    return TW_OK;
oom:
    tw_example_free(dst);
    return tw_error_set(err, TW_ERR_NOMEM, "out of memory copying an example");
}

/* ---- names and defaults --------------------------------------------------- */

const char *tw_format_str(tw_format f)
{
    switch (f) {
    case TW_FORMAT_AUTO: return "auto";
    case TW_FORMAT_JSONL: return "jsonl";
    case TW_FORMAT_CSV: return "csv";
    case TW_FORMAT_CHAT: return "chat";
    }
    return "unknown";
}

bool tw_format_parse(const char *s, tw_format *out)
{
    static const tw_format all[] = {TW_FORMAT_AUTO, TW_FORMAT_JSONL, TW_FORMAT_CSV, TW_FORMAT_CHAT};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (s && strcmp(s, tw_format_str(all[i])) == 0) {
            *out = all[i];
            return true;
        }
    return false;
}

tw_fields tw_fields_default(void)
{
    return (tw_fields){.id = "id", .input = "input", .output = "output", .references = "references", .slice = "slice"};
}

tw_reader_params tw_reader_default_params(void)
{
    return (tw_reader_params){.format = TW_FORMAT_AUTO, .fields = tw_fields_default(),
                              .max_line = TW_MAX_LINE_DEFAULT, .require_output = false};
}

/* ---- JSON helpers shared with chat.c -------------------------------------- */

const char *tw_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

tw_status tw_json_to_text(const json_t *v, char **out, tw_error *err)
{
    char num[64];
    const char *s = NULL;
    *out = NULL;
    switch (json_typeof(v)) {
    case JSON_NULL: return TW_OK;
    case JSON_STRING: s = json_string_value(v); break;
    case JSON_TRUE: s = "true"; break;
    case JSON_FALSE: s = "false"; break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
        break;
    case JSON_REAL: {
        /* shortest of %.15g / %.17g that reads back exactly: 0.1 → "0.1", not 0.10000000000000001 */
        double d = json_real_value(v);
        snprintf(num, sizeof num, "%.15g", d);
        if (strtod(num, NULL) != d) snprintf(num, sizeof num, "%.17g", d);
        s = num;
        break;
    }
    case JSON_OBJECT:
    case JSON_ARRAY: {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!t) return tw_error_set(err, TW_ERR_NOMEM, "out of memory serializing JSON");
        *out = t;
        return TW_OK;
    }
    }
    *out = tw_strdup(s, err);
    return *out ? TW_OK : TW_ERR_NOMEM;
}

json_t *tw_json_take(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (!v) return NULL;
    json_incref(v);
    json_object_del(root, key);
    return v;
}

void tw_row_keep_extra(tw_example *ex, json_t *root)
{
    if (json_object_size(root) > 0) {
        ex->extra = root;
    } else {
        json_decref(root);
        ex->extra = NULL;
    }
}

static tw_status default_id(tw_example *ex, const tw_row_ctx *c, tw_error *err)
{
    char buf[64];
    snprintf(buf, sizeof buf, ":%zu", c->line);
    size_t nb = strlen(c->base), nn = strlen(buf);
    ex->id = tw_malloc(nb + nn + 1, err);
    if (!ex->id) return TW_ERR_NOMEM;
    memcpy(ex->id, c->base, nb);
    memcpy(ex->id + nb, buf, nn + 1);
    return TW_OK;
}

tw_status tw_row_take_id(tw_example *ex, json_t *root, const tw_row_ctx *c, tw_error *err)
{
    json_t *v = tw_json_take(root, c->fields->id);
    tw_status st = TW_OK;
    if (!v || json_is_null(v)) {
        st = default_id(ex, c, err);
    } else if (json_is_string(v) || json_is_integer(v)) {
        st = tw_json_to_text(v, &ex->id, err);
    } else {
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: field '%s' (the id) must be a string or an integer, got %s",
                          c->path, c->line, c->fields->id, tw_json_kind(v));
    }
    json_decref(v);
    return st;
}

/* ---- JSONL rows --------------------------------------------------------- */

static tw_status set_refs_from_json(tw_example *ex, const json_t *v, const tw_row_ctx *c, tw_error *err)
{
    const char *name = c->fields->references;
    if (json_is_string(v)) {
        ex->refs = tw_calloc(1, sizeof *ex->refs, err);
        if (!ex->refs || !(ex->refs[0] = tw_strdup(json_string_value(v), err))) return TW_ERR_NOMEM;
        ex->n_refs = 1;
        return TW_OK;
    }
    if (!json_is_array(v))
        return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: field '%s' must be a list of strings, got %s",
                            c->path, c->line, name, tw_json_kind(v));
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(v, i)))
            return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: %s[%zu] must be a string, got %s", c->path, c->line,
                                name, i, tw_json_kind(json_array_get(v, i)));
    if (n == 0) return TW_OK;
    ex->refs = tw_calloc(n, sizeof *ex->refs, err);
    if (!ex->refs) return TW_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(ex->refs[i] = tw_strdup(json_string_value(json_array_get(v, i)), err))) return TW_ERR_NOMEM;
        ex->n_refs = i + 1;
    }
    return TW_OK;
}

static tw_status fill_output(tw_example *ex, json_t *out, bool present, const tw_row_ctx *c, tw_error *err)
{
    if (out && !json_is_null(out)) {
        tw_status st = tw_json_to_text(out, &ex->output, err);
        if (st) return st;
    }
    if (!ex->output && ex->n_refs && !(ex->output = tw_strdup(ex->refs[0], err))) return TW_ERR_NOMEM;
    if (!ex->output && c->require_output) {
        if (present)
            return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: output field '%s' is null", c->path, c->line,
                                c->fields->output);
        return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: missing output field '%s'", c->path, c->line,
                            c->fields->output);
    }
    return TW_OK;
}

/* Steals root. */
static tw_status json_row(tw_example *ex, json_t *root, const tw_row_ctx *c, tw_error *err)
{
    const tw_fields *f = c->fields;
    json_t *in = NULL, *out = NULL, *refs = NULL, *slice = NULL, *sys = NULL;
    tw_status st = tw_row_take_id(ex, root, c, err);
    if (st) goto done;
    in = tw_json_take(root, f->input);
    if (!in) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: missing input field '%s'", c->path, c->line, f->input);
        goto done;
    }
    if (!json_is_string(in)) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: field '%s' (the input) must be a string, got %s", c->path,
                          c->line, f->input, tw_json_kind(in));
        goto done;
    }
    if (!(ex->input = tw_strdup(json_string_value(in), err))) { st = TW_ERR_NOMEM; goto done; }
    refs = tw_json_take(root, f->references);
    if (refs && !json_is_null(refs) && (st = set_refs_from_json(ex, refs, c, err))) goto done;
    out = tw_json_take(root, f->output);
    if ((st = fill_output(ex, out, out != NULL, c, err))) goto done;
    slice = tw_json_take(root, f->slice);
    if (slice && !json_is_null(slice)) {
        if (!json_is_string(slice)) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: field '%s' (the slice) must be a string, got %s",
                              c->path, c->line, f->slice, tw_json_kind(slice));
            goto done;
        }
        if (!(ex->slice = tw_strdup(json_string_value(slice), err))) { st = TW_ERR_NOMEM; goto done; }
    } else if (!slice) {
        /* `tags` (kept in extra) stands in for a missing slice: its first string */
        json_t *tags = json_object_get(root, "tags");
        json_t *t0 = json_is_array(tags) ? json_array_get(tags, 0) : NULL;
        if (json_is_string(t0) && !(ex->slice = tw_strdup(json_string_value(t0), err))) { st = TW_ERR_NOMEM; goto done; }
    }
    /* a "system" string (what the JSONL writer emits for chat-sourced rows) */
    sys = json_object_get(root, "system");
    if (json_is_string(sys)) {
        if (!(ex->system = tw_strdup(json_string_value(sys), err))) { st = TW_ERR_NOMEM; goto done; }
        json_object_del(root, "system");
    }
    tw_row_keep_extra(ex, root);
    root = NULL;
done:
    json_decref(in);
    json_decref(out);
    json_decref(refs);
    json_decref(slice);
    json_decref(root);
    return st;
}

/* ---- the reader ------------------------------------------------------------ */

enum { F_ID, F_INPUT, F_OUTPUT, F_REFS, F_SLICE, F_COUNT };

struct tw_reader {
    char *path;
    const char *base;
    tw_format fmt;
    char *fname[F_COUNT];   /* owned copies of the field names */
    tw_fields fields;       /* points into fname */
    bool require_output;
    tw_line_reader lr;
    /* CSV */
    tw_csv csv;
    bool header_done;
    char **cols;            /* header names */
    size_t n_cols;
    long col[F_COUNT];      /* column of each field, -1 when absent */
    tw_example cur;
};

static const char *path_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static bool has_ext(const char *path, const char *ext)
{
    const char *dot = strrchr(path_base(path), '.');
    return dot && strcasecmp(dot + 1, ext) == 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Pick the format of an AUTO file: .csv → CSV; otherwise look at the first non-blank line:
 * a JSON object with "messages" and no input field → chat, '{' → JSONL; a JSON extension
 * → JSONL anyway (so its rows get JSON error messages); anything else → CSV. */
static tw_format sniff_format(const char *path, const tw_fields *f, size_t max_line)
{
    bool json_ext = has_ext(path, "jsonl") || has_ext(path, "json") || has_ext(path, "ndjson");
    if (has_ext(path, "csv")) return TW_FORMAT_CSV;
    if (strcmp(path, "-") == 0) return TW_FORMAT_JSONL;
    tw_line_reader lr;
    tw_error e;
    tw_format fmt = json_ext ? TW_FORMAT_JSONL : TW_FORMAT_CSV;
    if (tw_line_reader_open(&lr, path, max_line, &e)) return fmt;   /* the real open reports it */
    const char *line;
    size_t len;
    while (tw_line_reader_next(&lr, &line, &len, &e) == TW_OK) {
        if (lr.line_no == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { line += 3; len -= 3; }
        if (blank(line, len)) continue;
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (line[i] == '{') {
            fmt = TW_FORMAT_JSONL;
            json_t *root = json_loadb(line, len, 0, NULL);
            if (json_is_object(root) && json_object_get(root, "messages") && !json_object_get(root, f->input))
                fmt = TW_FORMAT_CHAT;
            json_decref(root);
        }
        break;
    }
    tw_line_reader_close(&lr);
    return fmt;
}

tw_status tw_reader_open(tw_reader **out, const char *path, const tw_reader_params *p, tw_error *err)
{
    *out = NULL;
    tw_reader_params defaults = tw_reader_default_params();
    if (!p) p = &defaults;
    tw_reader *r = tw_calloc(1, sizeof *r, err);
    if (!r) return TW_ERR_NOMEM;
    tw_fields d = tw_fields_default();
    const char *src[F_COUNT] = {
        p->fields.id ? p->fields.id : d.id,
        p->fields.input ? p->fields.input : d.input,
        p->fields.output ? p->fields.output : d.output,
        p->fields.references ? p->fields.references : d.references,
        p->fields.slice ? p->fields.slice : d.slice,
    };
    for (int i = 0; i < F_COUNT; i++)
        if (!(r->fname[i] = tw_strdup(src[i], err))) goto oom;
    r->fields = (tw_fields){r->fname[F_ID], r->fname[F_INPUT], r->fname[F_OUTPUT], r->fname[F_REFS], r->fname[F_SLICE]};
    if (!(r->path = tw_strdup(path, err))) goto oom;
    r->base = path_base(r->path);
    r->require_output = p->require_output;
    size_t max_line = p->max_line ? p->max_line : TW_MAX_LINE_DEFAULT;
    r->csv.max_record = max_line;
    r->fmt = p->format;
    if (r->fmt == TW_FORMAT_AUTO) r->fmt = sniff_format(path, &r->fields, max_line);
    tw_status st = tw_line_reader_open(&r->lr, path, max_line, err);
    if (st) {
        tw_reader_free(r);
        return st;
    }
    *out = r;
    return TW_OK;
oom:
    tw_reader_free(r);
    return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", path);
}

tw_format tw_reader_format(const tw_reader *r) { return r->fmt; }

size_t tw_reader_mem(const tw_reader *r)
{
    return sizeof *r + r->lr.cap + r->csv.data.cap + r->csv.cap * sizeof *r->csv.off;
}

void tw_reader_free(tw_reader *r)
{
    if (!r) return;
    tw_example_free(&r->cur);
    if (r->lr.path || r->lr.fp) tw_line_reader_close(&r->lr);
    tw_csv_free(&r->csv);
    for (size_t i = 0; i < r->n_cols; i++) free(r->cols[i]);
    free(r->cols);
    for (int i = 0; i < F_COUNT; i++) free(r->fname[i]);
    free(r->path);
    free(r);
}

/* A too-long line gets a hint on how to raise the limit. */
static tw_status line_error(tw_status st, tw_error *err)
{
    if (st == TW_ERR_PARSE && err && strstr(err->msg, "longer than the limit")) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n, " (raise it with tw_reader_params.max_line)");
    }
    return st;
}

static tw_status next_json(tw_reader *r, tw_error *err)
{
    for (;;) {
        const char *line;
        size_t len;
        tw_status st = tw_line_reader_next(&r->lr, &line, &len, err);
        if (st) return line_error(st, err);
        size_t ln = r->lr.line_no;
        if (ln == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { line += 3; len -= 3; }
        if (blank(line, len)) continue;
        size_t bad;
        if (!tw_utf8_valid(line, len, &bad))
            return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: invalid UTF-8 at byte offset %zu of the line", r->path,
                                ln, bad);
        json_error_t je;
        json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!root)
            return tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%d: invalid JSON: %s", r->path, ln,
                                je.position > 0 ? je.position : 1, je.text);
        if (!json_is_object(root)) {
            tw_status s = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: expected a JSON object, got %s", r->path, ln,
                                       tw_json_kind(root));
            json_decref(root);
            return s;
        }
        tw_row_ctx c = {r->path, r->base, ln, &r->fields, r->require_output};
        r->cur.line = ln;
        return r->fmt == TW_FORMAT_CHAT ? tw_chat_row(&r->cur, root, &c, err) : json_row(&r->cur, root, &c, err);
    }
}

static tw_status csv_header(tw_reader *r, tw_error *err)
{
    tw_csv *c = &r->csv;
    size_t ln = c->rec_line;
    r->n_cols = c->n;
    if (!(r->cols = tw_calloc(c->n, sizeof *r->cols, err))) return TW_ERR_NOMEM;
    for (size_t i = 0; i < c->n; i++)
        if (!(r->cols[i] = tw_strdup(tw_csv_field(c, i), err))) return TW_ERR_NOMEM;
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->cols[i], r->cols[j]) == 0)
                return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: duplicate column '%s' in the header", r->path, ln,
                                    r->cols[i]);
    const char *names[F_COUNT] = {r->fields.id, r->fields.input, r->fields.output, r->fields.references,
                                  r->fields.slice};
    for (int k = 0; k < F_COUNT; k++) {
        r->col[k] = -1;
        for (size_t i = 0; i < c->n; i++)
            if (strcmp(r->cols[i], names[k]) == 0) r->col[k] = (long)i;
    }
    if (r->col[F_INPUT] < 0 || (r->require_output && r->col[F_OUTPUT] < 0 && r->col[F_REFS] < 0)) {
        tw_buf b = {0};
        for (size_t i = 0; i < c->n; i++) tw_buf_printf(&b, "%s'%s'", i ? ", " : "", r->cols[i]);
        tw_status st = tw_error_set(err, TW_ERR_INVALID,
                                    "%s:%zu: the header has no '%s' column (the first record names the "
                                    "columns; found: %s)",
                                    r->path, ln, r->col[F_INPUT] < 0 ? names[F_INPUT] : names[F_OUTPUT],
                                    b.data ? b.data : "");
        tw_buf_free(&b);
        return st;
    }
    r->header_done = true;
    return TW_OK;
}

static const char *csv_cell(const tw_reader *r, int k)
{
    return r->col[k] >= 0 ? tw_csv_field(&r->csv, (size_t)r->col[k]) : NULL;
}

static tw_status csv_row(tw_reader *r, tw_error *err)
{
    tw_csv *c = &r->csv;
    size_t ln = c->rec_line;
    tw_example *ex = &r->cur;
    tw_row_ctx ctx = {r->path, r->base, ln, &r->fields, r->require_output};
    ex->line = ln;
    if (c->n != r->n_cols)
        return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: CSV record has %zu field%s, the header has %zu", r->path, ln,
                            c->n, c->n == 1 ? "" : "s", r->n_cols);
    const char *id = csv_cell(r, F_ID), *out = csv_cell(r, F_OUTPUT), *refs = csv_cell(r, F_REFS),
               *slice = csv_cell(r, F_SLICE);
    if (id && *id) {
        if (!(ex->id = tw_strdup(id, err))) return TW_ERR_NOMEM;
    } else if (default_id(ex, &ctx, err)) {
        return TW_ERR_NOMEM;
    }
    if (!(ex->input = tw_strdup(csv_cell(r, F_INPUT), err))) return TW_ERR_NOMEM;
    if (refs && *refs) {
        /* a JSON list of strings, or one reference as plain text */
        if (refs[0] == '[') {
            json_error_t je;
            json_t *v = json_loads(refs, 0, &je);
            if (!v)
                return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: column '%s' is not a JSON list: %s", r->path, ln,
                                    r->fields.references, je.text);
            tw_status st = set_refs_from_json(ex, v, &ctx, err);
            json_decref(v);
            if (st) return st;
        } else {
            json_t *v = json_string(refs);
            tw_status st = v ? set_refs_from_json(ex, v, &ctx, err) : TW_ERR_NOMEM;
            json_decref(v);
            if (st) return st;
        }
    }
    if (out && *out && !(ex->output = tw_strdup(out, err))) return TW_ERR_NOMEM;
    if (!ex->output && ex->n_refs && !(ex->output = tw_strdup(ex->refs[0], err))) return TW_ERR_NOMEM;
    if (!ex->output && r->require_output)
        return tw_error_set(err, TW_ERR_INVALID, "%s:%zu: missing output (column '%s' is empty)", r->path, ln,
                            r->fields.output);
    if (slice && *slice && !(ex->slice = tw_strdup(slice, err))) return TW_ERR_NOMEM;
    json_t *extra = NULL;
    for (size_t i = 0; i < c->n; i++) {
        bool mapped = false;
        for (int k = 0; k < F_COUNT; k++) mapped |= r->col[k] == (long)i;
        if (mapped) continue;
        if (!extra && !(extra = json_object())) return TW_ERR_NOMEM;
        json_t *s = json_stringn(tw_csv_field(c, i), tw_csv_field_len(c, i));
        if (!s || json_object_set_new(extra, r->cols[i], s)) {
            json_decref(extra);
            return tw_error_set(err, TW_ERR_NOMEM, "%s:%zu: out of memory", r->path, ln);
        }
    }
    ex->extra = extra;
    return TW_OK;
}

static tw_status next_csv(tw_reader *r, tw_error *err)
{
    for (;;) {
        tw_status st = tw_csv_next(&r->csv, &r->lr, err);
        if (st) return line_error(st, err);
        if (r->header_done) return csv_row(r, err);
        if ((st = csv_header(r, err))) return st;
    }
}

tw_status tw_reader_next(tw_reader *r, const tw_example **ex, tw_error *err)
{
    tw_example_free(&r->cur);
    tw_status st = r->fmt == TW_FORMAT_CSV ? next_csv(r, err) : next_json(r, err);
    if (st) {
        tw_example_free(&r->cur);
        return st;
    }
    *ex = &r->cur;
    return TW_OK;
}

/* ---- datasets ------------------------------------------------------------- */

static tw_status push_move(tw_dataset *ds, tw_example *ex, tw_error *err)
{
    if (tw_grow((void **)&ds->rows, &ds->cap, ds->n + 1, sizeof *ds->rows, err)) return TW_ERR_NOMEM;
    ds->rows[ds->n++] = *ex;
    memset(ex, 0, sizeof *ex);
    return TW_OK;
}

tw_status tw_dataset_push(tw_dataset *ds, const tw_example *ex, tw_error *err)
{
    tw_example copy;
    tw_status st = tw_example_copy(&copy, ex, err);
    if (st) return st;
    if ((st = push_move(ds, &copy, err))) tw_example_free(&copy);
    return st;
}

void tw_dataset_free(tw_dataset *ds)
{
    if (!ds) return;
    for (size_t i = 0; i < ds->n; i++) tw_example_free(&ds->rows[i]);
    free(ds->rows);
    free(ds->path);
    memset(ds, 0, sizeof *ds);
}

/* Warn when row's id repeats an earlier one (ids index: id → row). */
static tw_status id_check(tw_str_index *ids, const tw_dataset *ds, size_t row, const char *path, tw_error *err)
{
    bool found;
    size_t first;
    tw_status st = tw_str_index_put(ids, ds->rows[row].id, row, &found, &first, err);
    if (!st && found)
        tw_log(TW_LOG_WARN, "%s:%zu: duplicate id '%s' (first seen at line %zu)", path, ds->rows[row].line,
               ds->rows[row].id, ds->rows[first].line);
    return st;
}

tw_status tw_dataset_load(tw_dataset *ds, const char *path, const tw_reader_params *p, tw_error *err)
{
    memset(ds, 0, sizeof *ds);
    tw_reader *r;
    tw_status st = tw_reader_open(&r, path, p, err);
    if (st) return st;
    tw_str_index ids = {0};
    if (!(ds->path = tw_strdup(path, err))) { st = TW_ERR_NOMEM; goto done; }
    const tw_example *ex;
    while ((st = tw_reader_next(r, &ex, err)) == TW_OK) {
        if ((st = push_move(ds, &r->cur, err))) goto done;
        if ((st = id_check(&ids, ds, ds->n - 1, path, err))) goto done;
    }
    if (st == TW_DONE) {
        st = ds->n ? TW_OK : tw_error_set(err, TW_ERR_INVALID, "%s: no examples", path);
    }
done:
    tw_str_index_free(&ids);
    tw_reader_free(r);
    if (st) tw_dataset_free(ds);
    return st;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

tw_status tw_dataset_labels(const tw_dataset *ds, char ***labels, size_t *n, tw_error *err)
{
    *labels = NULL;
    *n = 0;
    const char **all = tw_calloc(ds->n ? ds->n : 1, sizeof *all, err);
    if (!all) return TW_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->rows[i].output) all[k++] = ds->rows[i].output;
    qsort(all, k, sizeof *all, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || strcmp(all[u - 1], all[i]) != 0) all[u++] = all[i];
    char **out = tw_calloc(u ? u : 1, sizeof *out, err);
    if (!out) { free(all); return TW_ERR_NOMEM; }
    for (size_t i = 0; i < u; i++)
        if (!(out[i] = tw_strdup(all[i], err))) {
            tw_labels_free(out, i);
            free(all);
            return TW_ERR_NOMEM;
        }
    free(all);
    *labels = out;
    *n = u;
    return TW_OK;
}

void tw_labels_free(char **labels, size_t n)
{
    if (!labels) return;
    for (size_t i = 0; i < n; i++) free(labels[i]);
    free(labels);
}

/* ---- writers -------------------------------------------------------------- */

struct tw_writer {
    tw_atomic_file af;
    char *path;
    tw_format fmt;
    char *fname[F_COUNT];
    char *system;
    bool header_done;
    tw_buf line;
};

tw_status tw_writer_open(tw_writer **out, const char *path, tw_format format, const tw_fields *fields, tw_error *err)
{
    *out = NULL;
    if (format == TW_FORMAT_AUTO) format = has_ext(path, "csv") ? TW_FORMAT_CSV : TW_FORMAT_JSONL;
    tw_writer *w = tw_calloc(1, sizeof *w, err);
    if (!w) return TW_ERR_NOMEM;
    w->fmt = format;
    tw_fields d = tw_fields_default(), f = fields ? *fields : d;
    const char *src[F_COUNT] = {f.id ? f.id : d.id, f.input ? f.input : d.input, f.output ? f.output : d.output,
                                f.references ? f.references : d.references, f.slice ? f.slice : d.slice};
    for (int i = 0; i < F_COUNT; i++)
        if (!(w->fname[i] = tw_strdup(src[i], err))) goto oom;
    if (!(w->path = tw_strdup(path, err))) goto oom;
    tw_status st = tw_atomic_open(&w->af, path, err);
    if (st) {
        tw_writer_abort(w);
        return st;
    }
    *out = w;
    return TW_OK;
oom:
    tw_writer_abort(w);
    return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", path);
}

tw_status tw_writer_set_system(tw_writer *w, const char *system, tw_error *err)
{
    free(w->system);
    w->system = NULL;
    if (system && !(w->system = tw_strdup(system, err))) return TW_ERR_NOMEM;
    return TW_OK;
}

static int set_str(json_t *o, const char *key, const char *s)
{
    return s ? json_object_set_new(o, key, json_string(s)) : 0;
}

static tw_status write_jsonl(tw_writer *w, const tw_example *ex, tw_error *err)
{
    json_t *o = json_object();
    int bad = !o;
    if (!bad) {
        bad |= set_str(o, w->fname[F_ID], ex->id);
        bad |= set_str(o, w->fname[F_INPUT], ex->input);
        bad |= set_str(o, w->fname[F_OUTPUT], ex->output);
        if (ex->n_refs) {
            json_t *a = json_array();
            bad |= !a;
            for (size_t i = 0; a && i < ex->n_refs; i++) bad |= json_array_append_new(a, json_string(ex->refs[i]));
            bad |= json_object_set_new(o, w->fname[F_REFS], a);
        }
        bad |= set_str(o, w->fname[F_SLICE], ex->slice);
        bad |= set_str(o, "system", ex->system);
        if (json_is_object(ex->extra)) bad |= json_object_update_missing(o, ex->extra);
    }
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory serializing a row", w->path);
    tw_status st = tw_buf_puts(&w->line, s);
    free(s);
    return st ? tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", w->path) : TW_OK;
}

static tw_status write_csv(tw_writer *w, const tw_example *ex, tw_error *err)
{
    tw_buf *b = &w->line;
    int bad = 0;
    if (!w->header_done) {
        for (int k = 0; k < F_COUNT; k++) {
            if (k) bad |= tw_buf_putc(b, ',');
            bad |= tw_csv_put_field(b, w->fname[k]);
        }
        bad |= tw_buf_puts(b, "\r\n");
        w->header_done = true;
    }
    char *refs = NULL;
    if (ex->n_refs) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < ex->n_refs; i++) json_array_append_new(a, json_string(ex->refs[i]));
        refs = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!refs) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", w->path);
    }
    const char *cells[F_COUNT] = {ex->id, ex->input, ex->output, refs, ex->slice};
    for (int k = 0; k < F_COUNT; k++) {
        if (k) bad |= tw_buf_putc(b, ',');
        bad |= tw_csv_put_field(b, cells[k]);
    }
    free(refs);
    /* RFC 4180 ends records with CRLF; the caller's "\n" below completes it */
    bad |= tw_buf_putc(b, '\r');
    return bad ? tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", w->path) : TW_OK;
}

tw_status tw_writer_write(tw_writer *w, const tw_example *ex, tw_error *err)
{
    tw_buf_clear(&w->line);
    tw_status st;
    if (w->fmt == TW_FORMAT_CHAT) {
        st = tw_chat_row_text(&w->line, ex, w->system, w->path, err);
    } else if (w->fmt == TW_FORMAT_CSV) {
        st = write_csv(w, ex, err);
    } else {
        st = write_jsonl(w, ex, err);
    }
    if (st) return st;
    if (tw_buf_putc(&w->line, '\n')) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (fwrite(w->line.data, 1, w->line.len, w->af.fp) != w->line.len)
        return tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    return TW_OK;
}

static void writer_release(tw_writer *w)
{
    for (int i = 0; i < F_COUNT; i++) free(w->fname[i]);
    free(w->system);
    free(w->path);
    tw_buf_free(&w->line);
    free(w);
}

tw_status tw_writer_close(tw_writer *w, tw_error *err)
{
    tw_status st = tw_atomic_commit(&w->af, err);
    writer_release(w);
    return st;
}

void tw_writer_abort(tw_writer *w)
{
    if (!w) return;
    if (w->af.fp || w->af.tmp_path) tw_atomic_abort(&w->af);
    writer_release(w);
}

tw_status tw_dataset_write(const tw_dataset *ds, const char *path, tw_format format, const tw_fields *fields,
                           tw_error *err)
{
    tw_writer *w;
    tw_status st = tw_writer_open(&w, path, format, fields, err);
    if (st) return st;
    for (size_t i = 0; i < ds->n; i++)
        if ((st = tw_writer_write(w, &ds->rows[i], err))) {
            tw_writer_abort(w);
            return st;
        }
    return tw_writer_close(w, err);
}
