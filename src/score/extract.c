/* extract.c — metrics for structured (JSON) outputs: parse validity, validation
 * against a practical JSON Schema subset, field-level matching over flattened
 * (path, value) pairs, and semantic equality of whole objects (raw and normalized).
 * Deliberately not here: averaging over items and resampling (score.c, stats.c),
 * JSON Schema features beyond the subset documented in metrics.h / docs/metrics.md
 * ($ref, pattern, ... are reported as unsupported, never silently half-done). */
#include "score/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- canonical scalars and flattening ----------------------------------- */

static bool real_is_int(double x, long long *out)
{
    if (!isfinite(x) || x != floor(x) || fabs(x) >= 9.2e18) return false;
    *out = (long long)x;
    return true;
}

/* Canonical compact text of a scalar (heap). Numbers with an integral value print
 * as integers so 1 and 1.0 compare equal; strings print as JSON string literals. */
static char *scalar_text(const json_t *v, tw_error *err)
{
    char tmp[64];
    long long ll;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        snprintf(tmp, sizeof tmp, "%lld", (long long)json_integer_value(v));
        return tw_strdup(tmp, err);
    case JSON_REAL:
        if (real_is_int(json_real_value(v), &ll)) snprintf(tmp, sizeof tmp, "%lld", ll);
        else snprintf(tmp, sizeof tmp, "%.17g", json_real_value(v));
        return tw_strdup(tmp, err);
    case JSON_TRUE: return tw_strdup("true", err);
    case JSON_FALSE: return tw_strdup("false", err);
    case JSON_NULL: return tw_strdup("null", err);
    case JSON_STRING: {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (!s) tw_error_set(err, TW_ERR_NOMEM, "out of memory encoding a JSON string");
        return s;
    }
    default: return tw_strdup("?", err);
    }
}

typedef struct {
    tw_json_pair *v;
    size_t n, cap;
} pairvec;

static tw_status flatten_rec(pairvec *pv, const json_t *v, tw_buf *path, tw_error *err)
{
    size_t keep = path->len;
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child) {
            path->len = keep;
            if (keep && tw_buf_putc(path, '.') != TW_OK) goto nomem;
            if (tw_buf_puts(path, key) != TW_OK) goto nomem;
            tw_status st = flatten_rec(pv, child, path, err);
            if (st != TW_OK) return st;
        }
        path->len = keep;
        if (path->data) path->data[keep] = '\0';
        return TW_OK;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) {
            path->len = keep;
            if (tw_buf_puts(path, "[]") != TW_OK) goto nomem;
            tw_status st = flatten_rec(pv, child, path, err);
            if (st != TW_OK) return st;
        }
        path->len = keep;
        if (path->data) path->data[keep] = '\0';
        return TW_OK;
    }
    if (json_is_null(v)) return TW_OK;   /* null = nothing extracted */
    if (tw_grow((void **)&pv->v, &pv->cap, pv->n + 1, sizeof *pv->v, err) != TW_OK) return TW_ERR_NOMEM;
    tw_json_pair *p = &pv->v[pv->n];
    p->path = tw_strdup(path->len ? path->data : "$", err);
    p->value = scalar_text(v, err);
    if (!p->path || !p->value) {
        free(p->path);
        free(p->value);
        return TW_ERR_NOMEM;
    }
    pv->n++;
    return TW_OK;
nomem:
    return tw_error_set(err, TW_ERR_NOMEM, "out of memory flattening JSON");
}

static int pair_cmp(const void *a, const void *b)
{
    const tw_json_pair *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : strcmp(x->value, y->value);
}

tw_status tw_json_flatten(tw_json_pair **pairs, size_t *n, const json_t *v, tw_error *err)
{
    pairvec pv = {0};
    tw_buf path = {0};
    *pairs = NULL;
    *n = 0;
    tw_status st = v ? flatten_rec(&pv, v, &path, err) : TW_OK;
    tw_buf_free(&path);
    if (st != TW_OK) {
        tw_json_pairs_free(pv.v, pv.n);
        return st;
    }
    if (pv.n) qsort(pv.v, pv.n, sizeof *pv.v, pair_cmp);
    *pairs = pv.v;
    *n = pv.n;
    return TW_OK;
}

void tw_json_pairs_free(tw_json_pair *pairs, size_t n)
{
    if (!pairs) return;
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].path);
        free(pairs[i].value);
    }
    free(pairs);
}

size_t tw_json_pairs_match(bool *pred_hit, bool *gold_hit, const tw_json_pair *pred, size_t np,
                           const tw_json_pair *gold, size_t ng)
{
    /* Both lists are sorted: a merge walk pairs equal elements one to one, which is
     * the multiset intersection (Counter(pred) & Counter(gold)). */
    size_t i = 0, j = 0, hits = 0;
    if (pred_hit) memset(pred_hit, 0, np * sizeof *pred_hit);
    if (gold_hit) memset(gold_hit, 0, ng * sizeof *gold_hit);
    while (i < np && j < ng) {
        int c = pair_cmp(&pred[i], &gold[j]);
        if (c == 0) {
            if (pred_hit) pred_hit[i] = true;
            if (gold_hit) gold_hit[j] = true;
            hits++;
            i++;
            j++;
        } else if (c < 0) i++;
        else j++;
    }
    return hits;
}

/* ---- equality ------------------------------------------------------------ */

static bool str_norm_equal(const char *a, size_t na, const char *b, size_t nb)
{
    char sa[256], sb[256];
    char *pa = na < sizeof sa ? sa : malloc(na + 1);
    char *pb = nb < sizeof sb ? sb : malloc(nb + 1);
    bool eq = false;
    if (pa && pb) {
        size_t la = tw_normalize_text(a, na, pa), lb = tw_normalize_text(b, nb, pb);
        eq = la == lb && memcmp(pa, pb, la) == 0;
    }
    if (pa != sa) free(pa);
    if (pb != sb) free(pb);
    return eq;
}

bool tw_json_equal(const json_t *a, const json_t *b, bool normalize)
{
    if (!a || !b) return a == b;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_STRING: {
        size_t na = json_string_length(a), nb = json_string_length(b);
        if (normalize) return str_norm_equal(json_string_value(a), na, json_string_value(b), nb);
        return na == nb && memcmp(json_string_value(a), json_string_value(b), na) == 0;
    }
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char *key;
        json_t *va;
        json_object_foreach((json_t *)a, key, va) {
            json_t *vb = json_object_get(b, key);
            if (!vb || !tw_json_equal(va, vb, normalize)) return false;
        }
        return true;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b)) return false;
        for (size_t i = 0; i < n; i++)
            if (!tw_json_equal(json_array_get(a, i), json_array_get(b, i), normalize)) return false;
        return true;
    }
    default: return true;   /* true, false, null: the type is the value */
    }
}

/* ---- JSON Schema subset --------------------------------------------------- */

static const char *const k_supported[] = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "allOf", "anyOf", "oneOf", "not", NULL};
/* Annotations: carry no assertion (format is an annotation by default since 2019-09). */
static const char *const k_annotations[] = {
    "$schema", "$id", "id", "title", "description", "default", "examples", "$comment",
    "format", "deprecated", "readOnly", "writeOnly", "definitions", "$defs", NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0) return true;
    return false;
}

static bool type_matches(const json_t *v, const char *t)
{
    if (strcmp(t, "object") == 0) return json_is_object(v);
    if (strcmp(t, "array") == 0) return json_is_array(v);
    if (strcmp(t, "string") == 0) return json_is_string(v);
    if (strcmp(t, "number") == 0) return json_is_number(v);
    if (strcmp(t, "boolean") == 0) return json_is_boolean(v);
    if (strcmp(t, "null") == 0) return json_is_null(v);
    if (strcmp(t, "integer") == 0) {
        long long ll;
        return json_is_integer(v) || (json_is_real(v) && real_is_int(json_real_value(v), &ll));
    }
    return false;
}

typedef struct {
    char *why;
    size_t cap;
} why_t;

static bool fail(why_t *w, const char *path, const char *fmt, const char *arg)
{
    if (w->why && w->cap) {
        char msg[256];
        snprintf(msg, sizeof msg, fmt, arg);
        snprintf(w->why, w->cap, "%s: %s", path[0] ? path : "$", msg);
    }
    return false;
}

static bool validate(const json_t *v, const json_t *s, const char *path, why_t *w);

static bool validate_child(const json_t *v, const json_t *s, const char *path, const char *key,
                           long idx, why_t *w)
{
    char sub[512];
    if (key) snprintf(sub, sizeof sub, "%s.%s", path[0] ? path : "$", key);
    else snprintf(sub, sizeof sub, "%s[%ld]", path[0] ? path : "$", idx);
    return validate(v, s, sub, w);
}

static bool validate(const json_t *v, const json_t *s, const char *path, why_t *w)
{
    if (json_is_true(s)) return true;
    if (json_is_false(s)) return fail(w, path, "%sschema is false", "");
    if (!json_is_object(s)) return true;   /* not a schema: nothing to assert */
    json_t *kw;

    if ((kw = json_object_get(s, "type"))) {
        bool ok = false;
        if (json_is_string(kw)) ok = type_matches(v, json_string_value(kw));
        else if (json_is_array(kw)) {
            size_t i;
            json_t *t;
            json_array_foreach(kw, i, t) if (json_is_string(t) && type_matches(v, json_string_value(t))) ok = true;
        } else ok = true;
        if (!ok) {
            char *want = json_dumps(kw, JSON_ENCODE_ANY | JSON_COMPACT);
            bool r = fail(w, path, "expected type %s", want ? want : "?");
            free(want);
            return r;
        }
    }
    if ((kw = json_object_get(s, "enum")) && json_is_array(kw)) {
        bool ok = false;
        size_t i;
        json_t *e;
        json_array_foreach(kw, i, e) if (tw_json_equal(v, e, false)) ok = true;
        if (!ok) return fail(w, path, "value not in enum%s", "");
    }
    if ((kw = json_object_get(s, "const")) && !tw_json_equal(v, kw, false))
        return fail(w, path, "value differs from const%s", "");

    if (json_is_object(v)) {
        json_t *props = json_object_get(s, "properties");
        json_t *req = json_object_get(s, "required");
        json_t *addl = json_object_get(s, "additionalProperties");
        if (json_is_array(req)) {
            size_t i;
            json_t *r;
            json_array_foreach(req, i, r) {
                if (json_is_string(r) && !json_object_get(v, json_string_value(r)))
                    return fail(w, path, "missing required property '%s'", json_string_value(r));
            }
        }
        const char *key;
        json_t *child;
        json_object_foreach((json_t *)v, key, child) {
            json_t *ps = json_is_object(props) ? json_object_get(props, key) : NULL;
            if (ps) {
                if (!validate_child(child, ps, path, key, 0, w)) return false;
            } else if (addl) {
                if (json_is_false(addl)) return fail(w, path, "unexpected property '%s'", key);
                if (!validate_child(child, addl, path, key, 0, w)) return false;
            }
        }
    }
    if (json_is_array(v)) {
        json_t *items = json_object_get(s, "items");
        size_t n = json_array_size(v);
        json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
        if (json_is_number(mn) && (double)n < json_number_value(mn)) return fail(w, path, "too few items%s", "");
        if (json_is_number(mx) && (double)n > json_number_value(mx)) return fail(w, path, "too many items%s", "");
        if (items && (json_is_object(items) || json_is_boolean(items))) {
            for (size_t i = 0; i < n; i++)
                if (!validate_child(json_array_get(v, i), items, path, NULL, (long)i, w)) return false;
        }
    }
    if (json_is_string(v)) {
        double len = (double)tw_utf8_len(json_string_value(v), json_string_length(v));
        json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
        if (json_is_number(mn) && len < json_number_value(mn)) return fail(w, path, "string too short%s", "");
        if (json_is_number(mx) && len > json_number_value(mx)) return fail(w, path, "string too long%s", "");
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        json_t *k;
        if ((k = json_object_get(s, "minimum")) && json_is_number(k) && x < json_number_value(k))
            return fail(w, path, "below minimum%s", "");
        if ((k = json_object_get(s, "maximum")) && json_is_number(k) && x > json_number_value(k))
            return fail(w, path, "above maximum%s", "");
        if ((k = json_object_get(s, "exclusiveMinimum")) && json_is_number(k) && x <= json_number_value(k))
            return fail(w, path, "not above exclusiveMinimum%s", "");
        if ((k = json_object_get(s, "exclusiveMaximum")) && json_is_number(k) && x >= json_number_value(k))
            return fail(w, path, "not below exclusiveMaximum%s", "");
    }
    if ((kw = json_object_get(s, "allOf")) && json_is_array(kw)) {
        size_t i;
        json_t *sub;
        json_array_foreach(kw, i, sub) if (!validate(v, sub, path, w)) return false;
    }
    if ((kw = json_object_get(s, "anyOf")) && json_is_array(kw)) {
        bool ok = false;
        size_t i;
        json_t *sub;
        json_array_foreach(kw, i, sub) if (!ok && validate(v, sub, path, &(why_t){0})) ok = true;
        if (!ok) return fail(w, path, "matches no anyOf branch%s", "");
    }
    if ((kw = json_object_get(s, "oneOf")) && json_is_array(kw)) {
        int hits = 0;
        size_t i;
        json_t *sub;
        json_array_foreach(kw, i, sub) if (validate(v, sub, path, &(why_t){0})) hits++;
        if (hits != 1) return fail(w, path, "must match exactly one oneOf branch%s", "");
    }
    if ((kw = json_object_get(s, "not")) && validate(v, kw, path, &(why_t){0}))
        return fail(w, path, "matches a 'not' schema%s", "");
    return true;
}

bool tw_json_schema_valid(const json_t *v, const json_t *schema, char *why, size_t why_cap)
{
    why_t w = {why, why_cap};
    if (why && why_cap) why[0] = '\0';
    if (!v) return fail(&w, "", "no value%s", "");
    return validate(v, schema, "", &w);
}

static tw_status unsupported_rec(json_t *out, const json_t *s, const char *path, tw_error *err)
{
    if (!json_is_object(s)) return TW_OK;
    const char *key;
    json_t *val;
    char sub[512];
    json_object_foreach((json_t *)s, key, val) {
        if (!in_list(k_supported, key) && !in_list(k_annotations, key)) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s at %s", key, path);
            if (json_array_append_new(out, json_string(msg)))
                return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            continue;
        }
        if (strcmp(key, "properties") == 0 && json_is_object(val)) {
            const char *pk;
            json_t *ps;
            json_object_foreach(val, pk, ps) {
                snprintf(sub, sizeof sub, "%s/properties/%s", path, pk);
                tw_status st = unsupported_rec(out, ps, sub, err);
                if (st) return st;
            }
        } else if (strcmp(key, "items") == 0 || strcmp(key, "additionalProperties") == 0 ||
                   strcmp(key, "not") == 0) {
            if (json_is_array(val) && strcmp(key, "items") == 0) {
                snprintf(sub, sizeof sub, "items (tuple form) at %s", path);
                if (json_array_append_new(out, json_string(sub)))
                    return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                continue;
            }
            snprintf(sub, sizeof sub, "%s/%s", path, key);
            tw_status st = unsupported_rec(out, val, sub, err);
            if (st) return st;
        } else if ((strcmp(key, "allOf") == 0 || strcmp(key, "anyOf") == 0 || strcmp(key, "oneOf") == 0) &&
                   json_is_array(val)) {
            size_t i;
            json_t *b;
            json_array_foreach(val, i, b) {
                snprintf(sub, sizeof sub, "%s/%s/%zu", path, key, i);
                tw_status st = unsupported_rec(out, b, sub, err);
                if (st) return st;
            }
        }
    }
    return TW_OK;
}

tw_status tw_json_schema_unsupported(json_t **out, const json_t *schema, tw_error *err)
{
    *out = json_array();
    if (!*out) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    tw_status st = unsupported_rec(*out, schema, "#", err);
    if (st != TW_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return st;
}

/* ---- per item --------------------------------------------------------------- */

json_t *tw_ext_parse(const char *text)
{
    if (!text) return NULL;
    json_error_t jerr;
    return json_loads(text, JSON_DECODE_ANY, &jerr);
}

tw_status tw_ext_item_score(tw_ext_item *out, const char *prediction, const json_t *gold,
                            const json_t *schema, tw_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *pred = tw_ext_parse(prediction);
    tw_json_pair *pp = NULL, *gp = NULL;
    size_t np = 0, ng = 0;
    tw_status st = tw_json_flatten(&gp, &ng, gold, err);
    if (st == TW_OK && pred) st = tw_json_flatten(&pp, &np, pred, err);
    if (st == TW_OK) {
        out->json_valid = pred != NULL;
        out->schema_valid = pred && (!schema || tw_json_schema_valid(pred, schema, NULL, 0));
        out->exact = pred && tw_json_equal(pred, gold, false);
        out->normalized = pred && tw_json_equal(pred, gold, true);
        out->tp = (double)tw_json_pairs_match(NULL, NULL, pp, np, gp, ng);
        out->n_pred = (double)np;
        out->n_gold = (double)ng;
    }
    tw_json_pairs_free(pp, np);
    tw_json_pairs_free(gp, ng);
    json_decref(pred);
    return st;
}
