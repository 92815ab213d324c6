/* task.c — the task file (task.yaml): parse with libyaml's document API, validate
 * strictly, resolve relative paths against the file's directory.
 *
 * Every error carries the position of the offending node from libyaml's marks:
 * "path:line:col: unknown key 'foo' in task (expected one of: name, type, ...)".
 * Types: string keys take any non-null scalar (`name: 2024` is the string "2024"); number
 * keys need a plain numeric scalar (`volume: "1000"` is an error); lists and maps only
 * where the schema says so. The schema is the key tables below: adding a key is one table
 * entry and one case. Reference: docs/task-file.md.
 * Deliberately not here: reading the data (dataset.c) or splitting it (split.c). */
#include "task/task.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- names ---------------------------------------------------------------- */

const char *tw_task_type_str(tw_task_type t)
{
    switch (t) {
    case TW_TASK_CLASSIFY: return "classify";
    case TW_TASK_EXTRACT: return "extract";
    case TW_TASK_GENERATE: return "generate";
    }
    return "unknown";
}

bool tw_task_type_parse(const char *s, tw_task_type *out)
{
    for (int t = TW_TASK_CLASSIFY; t <= TW_TASK_GENERATE; t++)
        if (s && strcmp(s, tw_task_type_str((tw_task_type)t)) == 0) {
            *out = (tw_task_type)t;
            return true;
        }
    return false;
}

const char *tw_split_name(tw_split_id s)
{
    switch (s) {
    case TW_SPLIT_TRAIN: return "train";
    case TW_SPLIT_DEV: return "dev";
    case TW_SPLIT_TEST: return "test";
    case TW_SPLIT_COUNT: break;
    }
    return "unknown";
}

/* Names follow what src/score computes (docs/metrics.md). */
static const char *const METRICS_CLASSIFY[] = {"accuracy", "macro_f1", "micro_f1", "weighted_f1", NULL};
static const char *const METRICS_EXTRACT[] = {"field_f1", "exact_match", "json_valid", "schema_valid", NULL};
static const char *const METRICS_GENERATE[] = {"bleu", "chrf", "rouge_l", "rouge_1", "rouge_2", "token_f1",
                                               "exact_match", NULL};

const char *const *tw_task_metrics(tw_task_type t)
{
    return t == TW_TASK_CLASSIFY ? METRICS_CLASSIFY : t == TW_TASK_EXTRACT ? METRICS_EXTRACT : METRICS_GENERATE;
}

bool tw_task_metric_ok(tw_task_type t, const char *metric)
{
    for (const char *const *m = tw_task_metrics(t); *m; m++)
        if (metric && strcmp(*m, metric) == 0) return true;
    return false;
}

/* Upper end of a metric's scale: BLEU and chrF are 0..100 (sacreBLEU), the rest fractions. */
static double metric_max(const char *m) { return !strcmp(m, "bleu") || !strcmp(m, "chrf") ? 100 : 1; }

void tw_task_free(tw_task *t)
{
    if (!t) return;
    free(t->path);
    free(t->dir);
    free(t->name);
    for (int i = 0; i < TW_SPLIT_COUNT; i++) free(t->data[i]);
    free(t->data_all);
    free((char *)t->fields.id);
    free((char *)t->fields.input);
    free((char *)t->fields.output);
    free((char *)t->fields.references);
    free((char *)t->fields.slice);
    for (size_t i = 0; i < t->n_labels; i++) free(t->labels[i]);
    free(t->labels);
    free(t->instructions);
    free(t->schema_path);
    free(t->metric);
    for (size_t i = 0; i < t->n_prices; i++) free(t->prices[i].model);
    free(t->prices);
    memset(t, 0, sizeof *t);
}

tw_reader_params tw_task_reader_params(const tw_task *t)
{
    tw_reader_params p = tw_reader_default_params();
    p.format = t->format;
    p.fields = t->fields;   /* NULL members take the defaults in the reader */
    p.require_output = true;
    return p;
}

/* ---- YAML plumbing --------------------------------------------------------- */

typedef struct ctx {
    const char *path;
    yaml_document_t *doc;
    tw_task *t;
    tw_error *err;
} ctx;

static yaml_node_t *node_at(ctx *c, int id) { return yaml_document_get_node(c->doc, id); }

static tw_status fail(ctx *c, const yaml_node_t *n, tw_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tw_status fail(ctx *c, const yaml_node_t *n, tw_status st, const char *fmt, ...)
{
    char msg[TW_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tw_error_set(c->err, st, "%s:%zu:%zu: %s", c->path, n->start_mark.line + 1, n->start_mark.column + 1,
                        msg);
}

static tw_status nomem(ctx *c) { return tw_error_set(c->err, TW_ERR_NOMEM, "%s: out of memory", c->path); }

static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static bool plain(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static bool is_null(const yaml_node_t *n)
{
    if (!plain(n)) return false;
    const char *v = sval(n);
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static bool is_bool(const yaml_node_t *n)
{
    static const char *const words[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    if (!plain(n)) return false;
    for (const char *const *w = words; *w; w++)
        if (!strcmp(sval(n), *w)) return true;
    return false;
}

/* A plain scalar that reads as a finite decimal number ("1_000_000" allowed). */
static bool num_of(const yaml_node_t *n, double *out)
{
    if (!plain(n)) return false;
    const char *v = sval(n);
    char buf[64];
    size_t k = 0;
    for (size_t i = 0; v[i]; i++) {
        char ch = v[i];
        if (ch == '_' && i > 0 && isdigit((unsigned char)v[i - 1]) && isdigit((unsigned char)v[i + 1])) continue;
        if (!isdigit((unsigned char)ch) && !strchr("+-.eE", ch)) return false;
        if (k + 1 >= sizeof buf) return false;
        buf[k++] = ch;
    }
    if (!k) return false;
    buf[k] = '\0';
    char *end;
    errno = 0;
    double d = strtod(buf, &end);
    if (*end || errno || !isfinite(d)) return false;
    *out = d;
    return true;
}

static const char *kind(const yaml_node_t *n)
{
    double d;
    switch (n->type) {
    case YAML_MAPPING_NODE: return "a map";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_SCALAR_NODE:
        if (is_null(n)) return "null";
        if (is_bool(n)) return "a boolean";
        if (num_of(n, &d)) return "a number";
        return "a string";
    default: return "nothing";
    }
}

/* String value of a scalar key (any non-null scalar). */
static tw_status get_str(ctx *c, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, TW_ERR_INVALID, "'%s' must be a string, got %s", key, kind(n));
    free(*out);
    *out = tw_strndup(sval(n), n->data.scalar.length, c->err);
    return *out ? TW_OK : nomem(c);
}

static tw_status get_num(ctx *c, const yaml_node_t *n, const char *key, double lo, double hi, double *out)
{
    double d;
    if (!num_of(n, &d)) return fail(c, n, TW_ERR_INVALID, "'%s' must be a number, got %s", key, kind(n));
    if (d < lo || d > hi) {
        if (isinf(hi)) return fail(c, n, TW_ERR_INVALID, "'%s' must be >= %g, got %s", key, lo, sval(n));
        return fail(c, n, TW_ERR_INVALID, "'%s' must be between %g and %g, got %s", key, lo, hi, sval(n));
    }
    *out = d;
    return TW_OK;
}

static tw_status get_enum(ctx *c, const yaml_node_t *n, const char *key, const char *const *choices, int *out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, TW_ERR_INVALID, "'%s' must be a string, got %s", key, kind(n));
    tw_buf b = {0};
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(sval(n), choices[i])) {
            *out = i;
            tw_buf_free(&b);
            return TW_OK;
        }
        tw_buf_printf(&b, "%s%s", i ? ", " : "", choices[i]);
    }
    tw_status st = fail(c, n, TW_ERR_INVALID, "bad value '%s' for '%s' (expected one of: %s)", sval(n), key,
                        b.data ? b.data : "");
    tw_buf_free(&b);
    return st;
}

static tw_status need_map(ctx *c, const yaml_node_t *n, const char *key)
{
    if (n->type != YAML_MAPPING_NODE) return fail(c, n, TW_ERR_INVALID, "'%s' must be a map, got %s", key, kind(n));
    return TW_OK;
}

/* Match the keys of map n against keys[] (NULL-terminated): vals[i] / knodes[i] get the
 * value / key node of keys[i], or NULL. Unknown, duplicate and non-string keys are errors. */
static tw_status map_keys(ctx *c, const yaml_node_t *n, const char *where, const char *const *keys,
                          yaml_node_t **vals, yaml_node_t **knodes)
{
    size_t nk = 0;
    while (keys[nk]) nk++;
    for (size_t i = 0; i < nk; i++) vals[i] = knodes[i] = NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        if (k->type != YAML_SCALAR_NODE) return fail(c, k, TW_ERR_INVALID, "keys in %s must be strings, got %s", where, kind(k));
        size_t i = 0;
        while (i < nk && strcmp(keys[i], sval(k)) != 0) i++;
        if (i == nk) {
            tw_buf b = {0};
            for (size_t j = 0; j < nk; j++) tw_buf_printf(&b, "%s%s", j ? ", " : "", keys[j]);
            tw_status st = fail(c, k, TW_ERR_INVALID, "unknown key '%s' in %s (expected one of: %s)", sval(k), where,
                                b.data ? b.data : "");
            tw_buf_free(&b);
            return st;
        }
        if (vals[i])
            return fail(c, k, TW_ERR_INVALID, "duplicate key '%s' in %s (first given at line %zu)", sval(k), where,
                        knodes[i]->start_mark.line + 1);
        vals[i] = v;
        knodes[i] = k;
    }
    return TW_OK;
}

static tw_status missing(ctx *c, const yaml_node_t *map, const char *key, const char *where)
{
    return fail(c, map, TW_ERR_INVALID, "missing required key '%s' in %s", key, where);
}

/* ---- paths ------------------------------------------------------------------- */

static char *resolve(ctx *c, const char *p)
{
    if (p[0] == '/' || !strcmp(c->t->dir, ".")) return tw_strdup(p, c->err);
    size_t n = strlen(c->t->dir) + strlen(p) + 2;
    char *r = tw_malloc(n, c->err);
    if (r) snprintf(r, n, "%s/%s", c->t->dir, p);
    return r;
}

/* A path value: string, resolved, must exist. */
static tw_status get_path(ctx *c, const yaml_node_t *n, const char *key, const char *what, char **out)
{
    char *raw = NULL;
    tw_status st = get_str(c, n, key, &raw);
    if (st) return st;
    if (!*raw) {
        free(raw);
        return fail(c, n, TW_ERR_INVALID, "'%s' must not be empty", key);
    }
    char *r = resolve(c, raw);
    if (!r) {
        free(raw);
        return nomem(c);
    }
    if (!tw_file_exists(r)) {
        st = fail(c, n, TW_ERR_INVALID, "%s '%s' not found (resolved to '%s')", what, raw, r);
        free(raw);
        free(r);
        return st;
    }
    free(raw);
    free(*out);
    *out = r;
    return TW_OK;
}

/* ---- sections ---------------------------------------------------------------- */

static tw_status parse_data(ctx *c, yaml_node_t *n)
{
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) return get_path(c, n, "data", "data file", &c->t->data_all);
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, TW_ERR_INVALID, "'data' must be a file path or a map with train, dev, test; got %s", kind(n));
    static const char *const keys[] = {"train", "dev", "test", NULL};
    yaml_node_t *v[3], *k[3];
    tw_status st = map_keys(c, n, "data", keys, v, k);
    if (st) return st;
    if (!v[0]) return missing(c, n, "train", "data");
    for (int i = 0; i < 3; i++)
        if (v[i] && (st = get_path(c, v[i], keys[i], "data file", &c->t->data[i]))) return st;
    return TW_OK;
}

static tw_status parse_fields(ctx *c, yaml_node_t *n)
{
    if ((need_map(c, n, "fields"))) return TW_ERR_INVALID;
    static const char *const keys[] = {"id", "input", "output", "references", "slice", NULL};
    yaml_node_t *v[5], *k[5];
    tw_status st = map_keys(c, n, "fields", keys, v, k);
    if (st) return st;
    tw_fields *f = &c->t->fields;
    char **dst[5] = {(char **)&f->id, (char **)&f->input, (char **)&f->output, (char **)&f->references,
                     (char **)&f->slice};
    for (int i = 0; i < 5; i++) {
        if (!v[i]) continue;
        if ((st = get_str(c, v[i], keys[i], dst[i]))) return st;
        if (!**dst[i]) return fail(c, v[i], TW_ERR_INVALID, "field name '%s' must not be empty", keys[i]);
    }
    /* two roles in one field would silently lose one of them */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < i; j++) {
            tw_fields d = tw_fields_default();
            const char *defs[5] = {d.id, d.input, d.output, d.references, d.slice};
            const char *a = *dst[i] ? *dst[i] : defs[i], *b = *dst[j] ? *dst[j] : defs[j];
            if (!strcmp(a, b))
                return fail(c, v[i] ? v[i] : v[j], TW_ERR_INVALID, "fields '%s' and '%s' name the same field '%s'",
                            keys[j], keys[i], a);
        }
    return TW_OK;
}

static tw_status parse_labels(ctx *c, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE) return fail(c, n, TW_ERR_INVALID, "'labels' must be a list, got %s", kind(n));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt == 0) return fail(c, n, TW_ERR_INVALID, "'labels' is empty (leave it out to infer labels from train)");
    tw_task *t = c->t;
    if (!(t->labels = tw_calloc(cnt, sizeof *t->labels, c->err))) return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node_at(c, n->data.sequence.items.start[i]);
        if (it->type != YAML_SCALAR_NODE || is_null(it))
            return fail(c, it, TW_ERR_INVALID, "labels[%zu] must be a string, got %s", i, kind(it));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->labels[j], sval(it))) return fail(c, it, TW_ERR_INVALID, "duplicate label '%s'", sval(it));
        if (!(t->labels[i] = tw_strdup(sval(it), c->err))) return nomem(c);
        t->n_labels = i + 1;
    }
    return TW_OK;
}

static tw_status parse_metric(ctx *c, yaml_node_t *n, yaml_node_t **name_node, yaml_node_t **target_node)
{
    *target_node = NULL;
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        *name_node = n;
        return get_str(c, n, "metric", &c->t->metric);
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail(c, n, TW_ERR_INVALID, "'metric' must be a metric name or a map {name, target}, got %s", kind(n));
    static const char *const keys[] = {"name", "target", NULL};
    yaml_node_t *v[2], *k[2];
    tw_status st = map_keys(c, n, "metric", keys, v, k);
    if (st) return st;
    if (!v[0]) return missing(c, n, "name", "metric");
    *name_node = v[0];
    *target_node = v[1];
    return get_str(c, v[0], "name", &c->t->metric);
}

static tw_status parse_prices(ctx *c, yaml_node_t *n)
{
    if (n->type != YAML_SEQUENCE_NODE) return fail(c, n, TW_ERR_INVALID, "'prices' must be a list, got %s", kind(n));
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    tw_task *t = c->t;
    if (cnt && !(t->prices = tw_calloc(cnt, sizeof *t->prices, c->err))) return nomem(c);
    static const char *const keys[] = {"model", "input_per_mtok", "output_per_mtok", "per_hour", NULL};
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = node_at(c, n->data.sequence.items.start[i]);
        char where[32];
        snprintf(where, sizeof where, "prices[%zu]", i);
        if (it->type != YAML_MAPPING_NODE)
            return fail(c, it, TW_ERR_INVALID, "%s must be a map {model, input_per_mtok, output_per_mtok, per_hour}, got %s",
                        where, kind(it));
        yaml_node_t *v[4], *k[4];
        tw_status st = map_keys(c, it, where, keys, v, k);
        if (st) return st;
        if (!v[0]) return missing(c, it, "model", where);
        tw_price *p = &t->prices[i];
        t->n_prices = i + 1;
        if ((st = get_str(c, v[0], "model", &p->model))) return st;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t->prices[j].model, p->model))
                return fail(c, v[0], TW_ERR_INVALID, "duplicate price for model '%s'", p->model);
        double *num[3] = {&p->input_per_mtok, &p->output_per_mtok, &p->per_hour};
        for (int j = 0; j < 3; j++)
            if (v[j + 1] && (st = get_num(c, v[j + 1], keys[j + 1], 0, INFINITY, num[j]))) return st;
    }
    return TW_OK;
}

static tw_status parse_split(ctx *c, yaml_node_t *n)
{
    if (need_map(c, n, "split")) return TW_ERR_INVALID;
    static const char *const keys[] = {"seed", "dev", "test", NULL};
    yaml_node_t *v[3], *k[3];
    tw_status st = map_keys(c, n, "split", keys, v, k);
    if (st) return st;
    tw_task *t = c->t;
    if (v[0]) {
        const char *s = plain(v[0]) ? sval(v[0]) : "";
        char *end = NULL;
        errno = 0;
        unsigned long long seed = strtoull(s, &end, 10);
        if (!*s || !isdigit((unsigned char)s[0]) || *end || errno)
            return fail(c, v[0], TW_ERR_INVALID, "'seed' must be a non-negative integer, got %s",
                        v[0]->type == YAML_SCALAR_NODE && !is_null(v[0]) ? sval(v[0]) : kind(v[0]));
        t->seed = seed;
    }
    if (v[1] && (st = get_num(c, v[1], "dev", 0, 0.9, &t->dev_fraction))) return st;
    if (v[2] && (st = get_num(c, v[2], "test", 0, 0.9, &t->test_fraction))) return st;
    if (t->dev_fraction + t->test_fraction >= 0.95)
        return fail(c, n, TW_ERR_INVALID, "split fractions dev %g + test %g leave (almost) nothing to train on",
                    t->dev_fraction, t->test_fraction);
    return TW_OK;
}

enum {
    K_NAME, K_TYPE, K_DATA, K_FORMAT, K_FIELDS, K_LABELS, K_INSTRUCTIONS, K_SCHEMA, K_METRIC, K_TARGET,
    K_VOLUME, K_PRICES, K_SPLIT, K_COUNT
};
static const char *const TOP_KEYS[] = {"name", "type", "data", "format", "fields", "labels", "instructions",
                                       "schema", "metric", "target", "volume", "prices", "split", NULL};

static tw_status check_schema_file(ctx *c, const yaml_node_t *n)
{
    json_error_t je;
    json_t *s = json_load_file(c->t->schema_path, 0, &je);
    if (!s)
        return fail(c, n, TW_ERR_INVALID, "schema '%s' is not valid JSON: %s:%d:%d: %s", sval(n), c->t->schema_path,
                    je.line, je.column, je.text);
    bool ok = json_is_object(s);
    json_decref(s);
    if (!ok) return fail(c, n, TW_ERR_INVALID, "schema '%s' must be a JSON object (a JSON Schema)", sval(n));
    return TW_OK;
}

static tw_status parse_root(ctx *c, yaml_node_t *root)
{
    tw_task *t = c->t;
    if (root->type != YAML_MAPPING_NODE)
        return fail(c, root, TW_ERR_INVALID, "a task file is a map of keys (name, type, data, ...), got %s", kind(root));
    yaml_node_t *v[K_COUNT], *k[K_COUNT];
    tw_status st = map_keys(c, root, "task", TOP_KEYS, v, k);
    if (st) return st;
    for (int i = K_NAME; i <= K_DATA; i++)
        if (!v[i]) return missing(c, root, TOP_KEYS[i], "task");

    if ((st = get_str(c, v[K_NAME], "name", &t->name))) return st;
    if (!*t->name) return fail(c, v[K_NAME], TW_ERR_INVALID, "'name' must not be empty");
    static const char *const types[] = {"classify", "extract", "generate", NULL};
    int ty;
    if ((st = get_enum(c, v[K_TYPE], "type", types, &ty))) return st;
    t->type = (tw_task_type)ty;
    if ((st = parse_data(c, v[K_DATA]))) return st;
    if (v[K_FORMAT]) {
        static const char *const fmts[] = {"auto", "jsonl", "csv", "chat", NULL};
        int f;
        if ((st = get_enum(c, v[K_FORMAT], "format", fmts, &f))) return st;
        tw_format_parse(fmts[f], &t->format);
    }
    if (v[K_FIELDS] && (st = parse_fields(c, v[K_FIELDS]))) return st;
    {   /* unnamed roles take the default names, so consumers never see NULL */
        tw_fields d = tw_fields_default();
        const char **f[5] = {&t->fields.id, &t->fields.input, &t->fields.output, &t->fields.references, &t->fields.slice};
        const char *defs[5] = {d.id, d.input, d.output, d.references, d.slice};
        for (int i = 0; i < 5; i++)
            if (!*f[i] && !(*f[i] = tw_strdup(defs[i], c->err))) return nomem(c);
    }
    if (v[K_LABELS]) {
        if (t->type != TW_TASK_CLASSIFY)
            return fail(c, k[K_LABELS], TW_ERR_INVALID, "'labels' only applies to classify tasks (this task is %s)",
                        tw_task_type_str(t->type));
        if ((st = parse_labels(c, v[K_LABELS]))) return st;
    }
    if (v[K_INSTRUCTIONS]) {
        if ((st = get_str(c, v[K_INSTRUCTIONS], "instructions", &t->instructions))) return st;
        size_t n = strlen(t->instructions);
        while (n && (t->instructions[n - 1] == '\n' || t->instructions[n - 1] == ' ')) t->instructions[--n] = '\0';
    }
    if (v[K_SCHEMA]) {
        if (t->type != TW_TASK_EXTRACT)
            return fail(c, k[K_SCHEMA], TW_ERR_INVALID, "'schema' only applies to extract tasks (this task is %s)",
                        tw_task_type_str(t->type));
        if ((st = get_path(c, v[K_SCHEMA], "schema", "schema file", &t->schema_path))) return st;
        if ((st = check_schema_file(c, v[K_SCHEMA]))) return st;
    }
    yaml_node_t *metric_node = NULL, *target_node = NULL;
    if (v[K_METRIC] && (st = parse_metric(c, v[K_METRIC], &metric_node, &target_node))) return st;
    if (!t->metric && !(t->metric = tw_strdup(tw_task_metrics(t->type)[0], c->err))) return nomem(c);
    if (metric_node && !tw_task_metric_ok(t->type, t->metric)) {
        tw_buf b = {0};
        const char *const *m = tw_task_metrics(t->type);
        for (int i = 0; m[i]; i++) tw_buf_printf(&b, "%s%s", i ? ", " : "", m[i]);
        st = fail(c, metric_node, TW_ERR_INVALID, "metric '%s' does not apply to %s tasks (expected one of: %s)",
                  t->metric, tw_task_type_str(t->type), b.data ? b.data : "");
        tw_buf_free(&b);
        return st;
    }
    if (target_node && v[K_TARGET])
        return fail(c, k[K_TARGET], TW_ERR_INVALID, "target given twice (here and in metric at line %zu)",
                    target_node->start_mark.line + 1);
    if (!target_node) target_node = v[K_TARGET];
    if (target_node &&
        (st = get_num(c, target_node, "target", 0, metric_max(t->metric), &t->target)))
        return st;
    if (v[K_VOLUME] && (st = get_num(c, v[K_VOLUME], "volume", 0, INFINITY, &t->monthly_volume))) return st;
    if (v[K_PRICES] && (st = parse_prices(c, v[K_PRICES]))) return st;
    if (v[K_SPLIT]) {
        if ((st = parse_split(c, v[K_SPLIT]))) return st;
        if (t->data[TW_SPLIT_DEV] && t->data[TW_SPLIT_TEST])
            tw_log(TW_LOG_WARN, "%s:%zu:%zu: 'split' has no effect: data gives train, dev and test", c->path,
                   k[K_SPLIT]->start_mark.line + 1, k[K_SPLIT]->start_mark.column + 1);
    }
    return TW_OK;
}

static char *dir_of(const char *path, tw_error *err)
{
    const char *s = strrchr(path, '/');
    if (!s) return tw_strdup(".", err);
    if (s == path) return tw_strdup("/", err);
    return tw_strndup(path, (size_t)(s - path), err);
}

tw_status tw_task_load(tw_task *task, const char *path, tw_error *err)
{
    memset(task, 0, sizeof *task);
    task->target = NAN;
    task->monthly_volume = NAN;
    task->seed = 1;
    task->dev_fraction = 0.1;
    task->test_fraction = 0.2;
    char *text = NULL;
    size_t len = 0;
    tw_status st = tw_file_read(path, &text, &len, err);
    if (st) return st;
    if (!(task->path = tw_strdup(path, err)) || !(task->dir = dir_of(path, err))) {
        free(text);
        tw_task_free(task);
        return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t bad;
    if (!tw_utf8_valid(text, len, &bad)) {
        /* libyaml would say so too, but without a line and column */
        size_t line = 1, col = 1;
        for (size_t i = 0; i < bad; i++) {
            if (text[i] == '\n') { line++; col = 1; }
            else if (((unsigned char)text[i] & 0xC0) != 0x80) col++;
        }
        free(text);
        tw_task_free(task);
        return tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%zu: invalid UTF-8 (byte offset %zu of the file)", path, line,
                            col, bad);
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_doc = false;
    if (!yaml_parser_initialize(&parser)) {
        free(text);
        tw_task_free(task);
        return tw_error_set(err, TW_ERR_NOMEM, "%s: cannot initialise the YAML parser", path);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) goto yaml_error;
    have_doc = true;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        st = tw_error_set(err, TW_ERR_INVALID, "%s: empty task file (expected keys name, type, data, ...)", path);
        goto done;
    }
    ctx c = {path, &doc, task, err};
    if ((st = parse_root(&c, root))) goto done;
    /* one document only: a second one is almost certainly a mistake */
    yaml_document_t doc2;
    if (!yaml_parser_load(&parser, &doc2)) goto yaml_error;
    yaml_node_t *root2 = yaml_document_get_root_node(&doc2);
    if (root2)
        st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu:%zu: a task file holds one YAML document; found a second one",
                          path, root2->start_mark.line + 1, root2->start_mark.column + 1);
    yaml_document_delete(&doc2);
    goto done;
yaml_error:
    if (parser.error == YAML_READER_ERROR)
        st = tw_error_set(err, TW_ERR_PARSE, "%s: invalid YAML input at byte offset %zu: %s", path,
                          parser.problem_offset, parser.problem ? parser.problem : "unreadable");
    else if (parser.context)
        st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%zu: YAML syntax error: %s %s (which starts at %zu:%zu)", path,
                          parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "malformed", parser.context,
                          parser.context_mark.line + 1, parser.context_mark.column + 1);
    else
        st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu:%zu: YAML syntax error: %s", path, parser.problem_mark.line + 1,
                          parser.problem_mark.column + 1, parser.problem ? parser.problem : "malformed");
done:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(text);
    if (st) tw_task_free(task);
    return st;
}
