/* grammar.c — constrained decoding (grammar.h): JSON Schema → byte-level pushdown
 * matcher, label sets, the token trie and the per-step allowed-token set.
 *
 * The matcher follows the JSON grammar of RFC 8259 (sections 4–7: objects, arrays,
 * numbers, strings) restricted to what jansson's json_loads accepts (no \u0000, no
 * lone surrogates, UTF-8 per RFC 3629 table 3-7, integers within long long, no
 * overflowing reals), and the validation rules of JSON Schema 2020-12 (Validation
 * vocabulary, section 6) for the subset in docs/constrained.md. Every state it can be
 * in has a completion, so masking tokens by it never strands the decoder.
 *
 * Deliberately not here: the decode loop (generate.c), schema validation of finished
 * values (score/extract.c, used by the tests to check this file), $ref, anyOf/oneOf,
 * pattern, numeric bounds, uniqueItems (rejected when compiling). */
#include "model/grammar.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- compiled grammar ------------------------------------------------------------- */

enum {
    T_OBJ = 1u << 0,
    T_ARR = 1u << 1,
    T_STR = 1u << 2,
    T_NUM = 1u << 3,
    T_INT = 1u << 4,
    T_BOOL = 1u << 5,
    T_NULL = 1u << 6,
    T_ALL = 0x7f
};

typedef struct {
    char *s;
    uint32_t len;
} lit;

typedef struct {
    char *key;          /* the key as it appears between the quotes (JSON-escaped) */
    uint32_t len;
    int32_t node;
    int32_t next_req;   /* first required property at or after this one (nprop: none) */
    bool required;
} prop;

typedef struct {
    unsigned types;
    int32_t lit0, nlit;     /* enum / const / labels: literals, sorted, deduplicated */
    int32_t prop0, nprop;   /* object: declared properties in schema order */
    int32_t addl;           /* object: schema of other keys, -1: none generated */
    int32_t items;          /* array: schema of the items */
    uint32_t min_items, max_items, min_len, max_len;
} gnode;

struct tw_grammar {
    gnode *nodes;
    size_t n_nodes, cap_nodes;
    prop *props;
    size_t n_props, cap_props;
    lit *lits;   /* 0..2: "false", "true", "null" */
    size_t n_lits, cap_lits;
    int32_t any;      /* the unconstrained node, -1 until needed */
    int32_t root;
    uint8_t max_ws;
    bool choice;
};

/* builtin literal ranges (sorted: "false" < "true") */
#define LIT_BOOL0 0
#define LIT_BOOLN 2
#define LIT_NULL0 2
#define LIT_NULLN 1

tw_grammar_params tw_grammar_default_params(void) { return (tw_grammar_params){.max_ws = 4}; }

void tw_grammar_free(tw_grammar *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n_props; i++) free(g->props[i].key);
    for (size_t i = 0; i < g->n_lits; i++) free(g->lits[i].s);
    free(g->nodes);
    free(g->props);
    free(g->lits);
    free(g);
}

static tw_status add_lit(tw_grammar *g, const char *s, size_t len, tw_error *err)
{
    void *p = g->lits;
    tw_status st = tw_grow(&p, &g->cap_lits, g->n_lits + 1, sizeof *g->lits, err);
    g->lits = p;
    if (st) return st;
    char *c = malloc(len + 1);
    if (!c) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    memcpy(c, s, len);
    c[len] = '\0';
    g->lits[g->n_lits++] = (lit){c, (uint32_t)len};
    return TW_OK;
}

static int lit_cmp(const void *a, const void *b)
{
    const lit *x = a, *y = b;
    uint32_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Sort lits[from..) and merge duplicates; returns the count left. */
static int32_t sort_lits(tw_grammar *g, size_t from)
{
    size_t n = g->n_lits - from;
    qsort(g->lits + from, n, sizeof *g->lits, lit_cmp);
    size_t w = from;
    for (size_t i = from; i < g->n_lits; i++) {
        if (w > from && lit_cmp(&g->lits[w - 1], &g->lits[i]) == 0) {
            free(g->lits[i].s);
            continue;
        }
        g->lits[w++] = g->lits[i];
    }
    g->n_lits = w;
    return (int32_t)(w - from);
}

static tw_status new_node(tw_grammar *g, int32_t *idx, tw_error *err)
{
    if (g->n_nodes >= 65535) return tw_error_set(err, TW_ERR_INVALID, "schema: more than 65535 sub-schemas");
    void *p = g->nodes;
    tw_status st = tw_grow(&p, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes, err);
    g->nodes = p;
    if (st) return st;
    g->nodes[g->n_nodes] = (gnode){.types = T_ALL, .lit0 = 0, .nlit = 0, .addl = -1, .items = -1,
                                   .max_items = UINT32_MAX, .max_len = UINT32_MAX};
    *idx = (int32_t)g->n_nodes++;
    return TW_OK;
}

/* The unconstrained value: any type, objects with any keys, arrays of anything. */
static tw_status any_node(tw_grammar *g, int32_t *idx, tw_error *err)
{
    if (g->any < 0) {
        tw_status st = new_node(g, &g->any, err);
        if (st) return st;
        g->nodes[g->any].addl = g->any;
        g->nodes[g->any].items = g->any;
    }
    *idx = g->any;
    return TW_OK;
}

/* JSON pointer (RFC 6901) of a child: ptr + "/" + escaped name. */
static void ptr_child(char *out, size_t cap, const char *ptr, const char *name)
{
    size_t n = (size_t)snprintf(out, cap, "%s/", ptr);
    for (const char *p = name; *p && n + 3 < cap; p++) {
        if (*p == '~') out[n++] = '~', out[n++] = '0';
        else if (*p == '/') out[n++] = '~', out[n++] = '1';
        else out[n++] = *p;
    }
    if (n >= cap) n = cap - 1;
    out[n] = '\0';
}

static const char *const k_annotations[] = {"$schema", "$id", "id", "title", "description", "default", "examples",
                                            "$comment", "format", "deprecated", "readOnly", "writeOnly", "definitions",
                                            "$defs", NULL};
static const char *const k_supported[] = {"type", "enum", "const", "properties", "required", "additionalProperties",
                                          "items", "minItems", "maxItems", "minLength", "maxLength", NULL};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0) return true;
    return false;
}

static unsigned type_bit(const char *t)
{
    if (strcmp(t, "object") == 0) return T_OBJ;
    if (strcmp(t, "array") == 0) return T_ARR;
    if (strcmp(t, "string") == 0) return T_STR;
    if (strcmp(t, "number") == 0) return T_NUM;
    if (strcmp(t, "integer") == 0) return T_INT;
    if (strcmp(t, "boolean") == 0) return T_BOOL;
    if (strcmp(t, "null") == 0) return T_NULL;
    return 0;
}

static bool value_has_type(const json_t *v, unsigned types)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return types & T_OBJ;
    case JSON_ARRAY: return types & T_ARR;
    case JSON_STRING: return types & T_STR;
    case JSON_INTEGER: return types & (T_NUM | T_INT);
    case JSON_REAL: {
        double x = json_real_value(v);
        return (types & T_NUM) || ((types & T_INT) && isfinite(x) && x == floor(x));
    }
    case JSON_TRUE:
    case JSON_FALSE: return types & T_BOOL;
    default: return types & T_NULL;
    }
}

static tw_status count_kw(const json_t *v, const char *ptr, const char *kw, uint32_t *out, tw_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > (json_int_t)UINT32_MAX - 1)
        return tw_error_set(err, TW_ERR_INVALID, "schema: %s/%s: expected a non-negative integer", ptr, kw);
    *out = (uint32_t)json_integer_value(v);
    return TW_OK;
}

static tw_status compile(tw_grammar *g, const json_t *s, const char *ptr, int depth, int32_t *out, tw_error *err);

static tw_status compile_object(tw_grammar *g, int32_t me, const json_t *s, const char *ptr, int depth, tw_error *err)
{
    const json_t *props = json_object_get(s, "properties"), *req = json_object_get(s, "required");
    const json_t *addl = json_object_get(s, "additionalProperties");
    char sub[1024];
    tw_status st = TW_OK;
    if (props && !json_is_object(props))
        return tw_error_set(err, TW_ERR_INVALID, "schema: %s/properties: expected an object", ptr);
    if (req && !json_is_array(req))
        return tw_error_set(err, TW_ERR_INVALID, "schema: %s/required: expected an array of names", ptr);
    size_t np = props ? json_object_size(props) : 0;
    prop *tmp = np ? calloc(np, sizeof *tmp) : NULL;
    if (np && !tmp) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    size_t k = 0;
    const char *key;
    json_t *ps;
    if (props) {
        json_object_foreach((json_t *)props, key, ps) {
            json_t *ks = json_string(key);
            char *enc = ks ? json_dumps(ks, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
            json_decref(ks);
            if (!enc) {
                st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                break;
            }
            size_t L = strlen(enc);
            memmove(enc, enc + 1, L - 2);   /* drop the quotes */
            enc[L - 2] = '\0';
            tmp[k] = (prop){.key = enc, .len = (uint32_t)(L - 2)};
            k++;
            char pp[1024];
            snprintf(pp, sizeof pp, "%s/properties", ptr);
            ptr_child(sub, sizeof sub, pp, key);
            if ((st = compile(g, ps, sub, depth + 1, &tmp[k - 1].node, err))) break;
        }
    }
    if (!st && req) {
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r) {
            if (!json_is_string(r)) {
                st = tw_error_set(err, TW_ERR_INVALID, "schema: %s/required/%zu: expected a string", ptr, i);
                break;
            }
            size_t j = 0;
            if (props) {
                json_object_foreach((json_t *)props, key, ps) {
                    if (strcmp(key, json_string_value(r)) == 0) break;
                    j++;
                }
            }
            if (j >= k) {
                st = tw_error_set(err, TW_ERR_UNSUPPORTED,
                                  "schema: %s/required/%zu: required key '%s' has no schema under properties", ptr, i,
                                  json_string_value(r));
                break;
            }
            tmp[j].required = true;
        }
    }
    int32_t addl_node = -1;
    if (!st && addl && !json_is_false(addl)) {
        snprintf(sub, sizeof sub, "%s/additionalProperties", ptr);
        st = compile(g, addl, sub, depth + 1, &addl_node, err);
    }
    if (!st) {
        int32_t next = (int32_t)k;
        for (size_t i = k; i-- > 0;) {
            if (tmp[i].required) next = (int32_t)i;
            tmp[i].next_req = next;
        }
        void *p = g->props;
        st = tw_grow(&p, &g->cap_props, g->n_props + k, sizeof *g->props, err);
        g->props = p;
    }
    if (st) {
        for (size_t i = 0; i < k; i++) free(tmp[i].key);
        free(tmp);
        return st;
    }
    g->nodes[me].prop0 = (int32_t)g->n_props;
    g->nodes[me].nprop = (int32_t)k;
    g->nodes[me].addl = addl_node;
    if (k) memcpy(g->props + g->n_props, tmp, k * sizeof *tmp);
    g->n_props += k;
    free(tmp);
    return TW_OK;
}

static tw_status compile(tw_grammar *g, const json_t *s, const char *ptr, int depth, int32_t *out, tw_error *err)
{
    /* a container at depth d sits in frame d + 1 (after the root) and needs a frame
     * for its child: d + 3 <= TW_GRAMMAR_MAX_DEPTH, checked here so that the matcher's
     * own depth test (value_start) never refuses what the schema requires */
    if (depth + 3 > TW_GRAMMAR_MAX_DEPTH)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "schema: %s: nested deeper than %d levels", ptr[0] ? ptr : "/",
                            TW_GRAMMAR_MAX_DEPTH - 3);
    if (json_is_true(s) || (json_is_object(s) && json_object_size(s) == 0)) return any_node(g, out, err);
    if (json_is_false(s))
        return tw_error_set(err, TW_ERR_INVALID, "schema: %s: the schema false accepts no value", ptr[0] ? ptr : "/");
    if (!json_is_object(s)) return tw_error_set(err, TW_ERR_INVALID, "schema: %s: expected an object", ptr[0] ? ptr : "/");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)s, key, v) {
        if (!in_list(k_supported, key) && !in_list(k_annotations, key)) {
            char sub[1024];
            ptr_child(sub, sizeof sub, ptr, key);
            return tw_error_set(err, TW_ERR_UNSUPPORTED, "schema: %s: unsupported keyword", sub);
        }
    }
    int32_t me;
    tw_status st = new_node(g, &me, err);
    if (st) return st;
    *out = me;
    unsigned types = T_ALL;
    json_t *t = json_object_get(s, "type");
    if (t) {
        types = 0;
        if (json_is_string(t)) types = type_bit(json_string_value(t));
        else if (json_is_array(t)) {
            size_t i;
            json_t *e;
            json_array_foreach(t, i, e) {
                unsigned b = json_is_string(e) ? type_bit(json_string_value(e)) : 0;
                if (!b) {
                    types = 0;
                    break;
                }
                types |= b;
            }
        }
        if (!types) return tw_error_set(err, TW_ERR_INVALID, "schema: %s/type: expected a type name or a list of them", ptr);
    }
    g->nodes[me].types = types;

    json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (en || cn) {
        if (en && cn) return tw_error_set(err, TW_ERR_UNSUPPORTED, "schema: %s: enum together with const", ptr);
        if (en && (!json_is_array(en) || json_array_size(en) == 0))
            return tw_error_set(err, TW_ERR_INVALID, "schema: %s/enum: expected a non-empty array", ptr);
        size_t from = g->n_lits, n = en ? json_array_size(en) : 1;
        for (size_t i = 0; i < n; i++) {
            json_t *e = en ? json_array_get(en, i) : cn;
            if (!value_has_type(e, types)) continue;   /* could never validate */
            char *txt = json_dumps(e, JSON_ENCODE_ANY | JSON_COMPACT);
            if (!txt) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            st = add_lit(g, txt, strlen(txt), err);
            free(txt);
            if (st) return st;
        }
        if (g->n_lits == from)
            return tw_error_set(err, TW_ERR_INVALID, "schema: %s/%s: no value has the schema's type", ptr,
                                en ? "enum" : "const");
        g->nodes[me].lit0 = (int32_t)from;
        g->nodes[me].nlit = sort_lits(g, from);
        return TW_OK;
    }
    if (types & T_OBJ)
        if ((st = compile_object(g, me, s, ptr, depth, err))) return st;
    if (types & T_ARR) {
        json_t *it = json_object_get(s, "items");
        int32_t items;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/items", ptr);
        if (json_is_array(it)) return tw_error_set(err, TW_ERR_UNSUPPORTED, "schema: %s: tuple form unsupported", sub);
        if ((st = it ? compile(g, it, sub, depth + 1, &items, err) : any_node(g, &items, err))) return st;
        g->nodes[me].items = items;
    }
    uint32_t a = 0, b = UINT32_MAX;
    if ((v = json_object_get(s, "minItems")) && (st = count_kw(v, ptr, "minItems", &a, err))) return st;
    if ((v = json_object_get(s, "maxItems")) && (st = count_kw(v, ptr, "maxItems", &b, err))) return st;
    if (a > b && (types & T_ARR)) return tw_error_set(err, TW_ERR_INVALID, "schema: %s: minItems > maxItems", ptr);
    g->nodes[me].min_items = a;
    g->nodes[me].max_items = b;
    a = 0, b = UINT32_MAX;
    if ((v = json_object_get(s, "minLength")) && (st = count_kw(v, ptr, "minLength", &a, err))) return st;
    if ((v = json_object_get(s, "maxLength")) && (st = count_kw(v, ptr, "maxLength", &b, err))) return st;
    if (a > b && (types & T_STR)) return tw_error_set(err, TW_ERR_INVALID, "schema: %s: minLength > maxLength", ptr);
    g->nodes[me].min_len = a;
    g->nodes[me].max_len = b;
    return TW_OK;
}

static tw_status grammar_alloc(tw_grammar **out, tw_error *err)
{
    tw_grammar *g = calloc(1, sizeof *g);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    g->any = -1;
    g->root = -1;
    tw_status st = add_lit(g, "false", 5, err);
    if (!st) st = add_lit(g, "true", 4, err);
    if (!st) st = add_lit(g, "null", 4, err);
    if (st) {
        tw_grammar_free(g);
        return st;
    }
    *out = g;
    return TW_OK;
}

tw_status tw_grammar_from_schema(tw_grammar **out, const json_t *schema, const tw_grammar_params *p, tw_error *err)
{
    *out = NULL;
    tw_grammar_params d = p ? *p : tw_grammar_default_params();
    if (d.max_ws < 0 || d.max_ws > 255) return tw_error_set(err, TW_ERR_INVALID, "grammar: max_ws %d outside 0..255", d.max_ws);
    tw_grammar *g;
    tw_status st = grammar_alloc(&g, err);
    if (st) return st;
    g->max_ws = (uint8_t)d.max_ws;
    if ((st = compile(g, schema, "", 0, &g->root, err))) {
        tw_grammar_free(g);
        return st;
    }
    *out = g;
    return TW_OK;
}

tw_status tw_grammar_from_schema_text(tw_grammar **out, const char *text, size_t len, const tw_grammar_params *p,
                                      tw_error *err)
{
    *out = NULL;
    json_error_t je;
    json_t *s = json_loadb(text, len, JSON_DECODE_ANY, &je);
    if (!s) return tw_error_set(err, TW_ERR_PARSE, "schema: line %d column %d: %s", je.line, je.column, je.text);
    tw_status st = tw_grammar_from_schema(out, s, p, err);
    json_decref(s);
    return st;
}

tw_status tw_grammar_from_choices(tw_grammar **out, const char *const *labels, size_t n, tw_error *err)
{
    *out = NULL;
    if (n == 0) return tw_error_set(err, TW_ERR_INVALID, "choice: no labels");
    for (size_t i = 0; i < n; i++)
        if (!labels[i] || !labels[i][0]) return tw_error_set(err, TW_ERR_INVALID, "choice: label %zu is empty", i);
    tw_grammar *g;
    tw_status st = grammar_alloc(&g, err);
    if (st) return st;
    g->choice = true;
    size_t from = g->n_lits;
    for (size_t i = 0; i < n && !st; i++) st = add_lit(g, labels[i], strlen(labels[i]), err);
    if (!st) st = new_node(g, &g->root, err);
    if (st) {
        tw_grammar_free(g);
        return st;
    }
    g->nodes[g->root].types = 0;
    g->nodes[g->root].lit0 = (int32_t)from;
    g->nodes[g->root].nlit = sort_lits(g, from);
    *out = g;
    return TW_OK;
}

/* ---- the matcher ------------------------------------------------------------------- */

enum { K_ROOT, K_OBJ, K_ARR, K_STR, K_NUM, K_LIT };
enum { R_START, R_VALUE, R_DONE };
enum { O_START, O_KEY, O_COLON, O_BEFORE_VALUE, O_VALUE, O_AFTER, O_NEED_KEY };
enum { A_START, A_VALUE, A_AFTER, A_NEED };
enum { N_SIGN, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };
/* Digits per part: integers stay within long long (jansson rejects larger ones) and
 * reals within double range (jansson rejects overflow to infinity). */
#define MAX_INT_DIGITS 18
#define MAX_FRAC_DIGITS 16
#define MAX_EXP_DIGITS 2

/* string flags (\u digits) */
enum { SF_ZERO = 1, SF_D = 2, SF_HIGH = 4 };
/* object key flags */
enum { KF_FREE = 1 };
/* number flags */
enum { NF_INT = 1 };

void tw_gstate_init(tw_gstate *s, const tw_grammar *g)
{
    s->depth = 1;
    s->n_keys = 0;
    s->f[0] = (tw_gframe){.node = (uint16_t)g->root, .kind = K_ROOT, .phase = R_START};
}

static bool is_ws(unsigned c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }
static bool is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static bool is_hex(unsigned c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static bool take_ws(const tw_grammar *g, tw_gframe *f, unsigned c)
{
    if (!is_ws(c) || f->ws >= g->max_ws) return false;
    f->ws++;
    return true;
}

/* Outcome of one byte inside a string body. */
enum { S_REJECT, S_QUOTE, S_CP, S_CONT };

/* RFC 8259 section 7 + RFC 3629 table: well-formed UTF-8, escapes, \uXXXX with
 * surrogate pairs; as jansson, no \u0000 and no lone surrogate. utf: low 2 bits =
 * continuation bytes still expected, bits 2..4 = range class of the next one. */
static int str_byte(tw_gframe *f, unsigned c)
{
    if (f->utf & 3) {
        unsigned cls = f->utf >> 2, lo = 0x80, hi = 0xBF;
        if (cls == 1) lo = 0xA0;
        else if (cls == 2) hi = 0x9F;
        else if (cls == 3) lo = 0x90;
        else if (cls == 4) hi = 0x8F;
        if (c < lo || c > hi) return S_REJECT;
        f->utf = (uint8_t)((f->utf & 3) - 1);
        return S_CONT;
    }
    switch (f->esc) {
    case 0:
        if (c == '"') return S_QUOTE;
        if (c == '\\') {
            f->esc = 1;
            return S_CP;
        }
        if (c < 0x20) return S_REJECT;
        if (c < 0x80) return S_CP;
        if (c >= 0xC2 && c <= 0xDF) f->utf = 1;
        else if (c == 0xE0) f->utf = 2 | 1 << 2;
        else if (c == 0xED) f->utf = 2 | 2 << 2;
        else if (c >= 0xE1 && c <= 0xEF) f->utf = 2;
        else if (c == 0xF0) f->utf = 3 | 3 << 2;
        else if (c >= 0xF1 && c <= 0xF3) f->utf = 3;
        else if (c == 0xF4) f->utf = 3 | 4 << 2;
        else return S_REJECT;
        return S_CP;
    case 1:
        if (c == 'u') {
            f->esc = 2;
            f->flags = 0;
            return S_CONT;
        }
        if (!strchr("\"\\/bfnrt", (int)c) || c == 0) return S_REJECT;
        f->esc = 0;
        return S_CONT;
    case 2: case 3: case 4: case 5: {
        if (!is_hex(c)) return S_REJECT;
        int k = f->esc - 2;
        bool zero = c == '0';
        if (k == 0) f->flags = (uint8_t)((zero ? SF_ZERO : 0) | (c == 'd' || c == 'D' ? SF_D : 0));
        else {
            if (!zero) f->flags &= (uint8_t)~SF_ZERO;
            if (k == 1 && (f->flags & SF_D)) {
                unsigned x = c | 0x20;
                if (x >= 'c' && x <= 'f') return S_REJECT;   /* lone low surrogate */
                if (c >= '8' || (x >= 'a' && x <= 'b')) f->flags |= SF_HIGH;
            }
        }
        if (k < 3) {
            f->esc++;
            return S_CONT;
        }
        if (f->flags & SF_ZERO) return S_REJECT;   /* \u0000 */
        f->esc = (f->flags & SF_HIGH) ? 6 : 0;
        return S_CONT;
    }
    case 6:
        if (c != '\\') return S_REJECT;
        f->esc = 7;
        return S_CONT;
    case 7:
        if (c != 'u') return S_REJECT;
        f->esc = 8;
        return S_CONT;
    case 8:
        if (c != 'd' && c != 'D') return S_REJECT;
        f->esc = 9;
        return S_CONT;
    case 9: {
        unsigned x = c | 0x20;
        if (x < 'c' || x > 'f') return S_REJECT;
        f->esc = 10;
        return S_CONT;
    }
    case 10:
        if (!is_hex(c)) return S_REJECT;
        f->esc = 11;
        return S_CONT;
    default:
        if (!is_hex(c)) return S_REJECT;
        f->esc = 0;
        return S_CONT;
    }
}

static bool push(tw_gstate *s, tw_gframe fr)
{
    if (s->depth >= TW_GRAMMAR_MAX_DEPTH) return false;
    s->f[s->depth++] = fr;
    return true;
}

/* Start a literal among lits[lo..lo+n) (sorted) with byte c. */
static bool lit_start(const tw_grammar *g, tw_gstate *s, uint32_t node, int32_t lo, int32_t n, unsigned c)
{
    int32_t a = lo, b = lo + n;
    while (a < b && (unsigned char)g->lits[a].s[0] != c) a++;
    int32_t e = a;
    while (e < b && (unsigned char)g->lits[e].s[0] == c) e++;
    if (a == e) return false;
    return push(s, (tw_gframe){.node = (uint16_t)node, .kind = K_LIT, .cand = a, .n = (uint32_t)e, .pos = 1});
}

/* Open a value of schema `node` whose first byte is c. */
static bool value_start(const tw_grammar *g, tw_gstate *s, uint32_t node, unsigned c)
{
    const gnode *n = &g->nodes[node];
    if (n->nlit) return lit_start(g, s, node, n->lit0, n->nlit, c);
    unsigned t = n->types;
    bool room = s->depth + 2 <= TW_GRAMMAR_MAX_DEPTH;   /* a container and one child */
    if (c == '{' && (t & T_OBJ) && room) return push(s, (tw_gframe){.node = (uint16_t)node, .kind = K_OBJ});
    if (c == '[' && (t & T_ARR) && room) return push(s, (tw_gframe){.node = (uint16_t)node, .kind = K_ARR});
    if (c == '"' && (t & T_STR)) return push(s, (tw_gframe){.node = (uint16_t)node, .kind = K_STR});
    if ((c == '-' || is_digit(c)) && (t & (T_NUM | T_INT))) {
        uint8_t ph = c == '-' ? N_SIGN : c == '0' ? N_ZERO : N_INT;
        return push(s, (tw_gframe){.node = (uint16_t)node, .kind = K_NUM, .phase = ph, .pos = ph == N_INT,
                                   .flags = (t & T_NUM) ? 0 : NF_INT});
    }
    if ((c == 't' || c == 'f') && (t & T_BOOL)) return lit_start(g, s, node, LIT_BOOL0, LIT_BOOLN, c);
    if (c == 'n' && (t & T_NULL)) return lit_start(g, s, node, LIT_NULL0, LIT_NULLN, c);
    return false;
}

/* first required property at or after index `next` (nprop: none) */
static int32_t first_req(const tw_grammar *g, const gnode *n, uint32_t next)
{
    return (int32_t)next < n->nprop ? g->props[n->prop0 + (int32_t)next].next_req : n->nprop;
}

/* Declared properties a key may name now: [next, hi], and whether free keys may. */
static void key_domain(const tw_grammar *g, const gnode *n, uint32_t next, int32_t *lo, int32_t *hi, bool *free_ok)
{
    int32_t r = first_req(g, n, next);
    *lo = (int32_t)next;
    *hi = r < n->nprop ? r : n->nprop - 1;
    *free_ok = n->addl >= 0 && r >= n->nprop;
}

/* room: a free key can still be remembered (tw_gstate.keys) */
static bool key_available(const tw_grammar *g, const gnode *n, uint32_t next, bool room)
{
    return (int32_t)next < n->nprop || (room && n->addl >= 0 && first_req(g, n, next) >= n->nprop);
}

static bool lit_complete(const tw_grammar *g, const tw_gframe *f) { return g->lits[f->cand].len == f->pos; }

static bool num_complete(const tw_gframe *f)
{
    return f->phase == N_ZERO || f->phase == N_INT || f->phase == N_FRAC || f->phase == N_EXP;
}

/* Complete and unable to take another byte: closed right away. */
static bool frame_final(const tw_grammar *g, const tw_gframe *f)
{
    if (f->kind == K_LIT) return lit_complete(g, f) && f->n == (uint32_t)f->cand + 1;
    if (f->kind == K_NUM) {
        bool io = f->flags & NF_INT;
        return (f->phase == N_EXP && f->pos >= MAX_EXP_DIGITS) || (io && f->phase == N_ZERO) ||
               (io && f->phase == N_INT && f->pos >= MAX_INT_DIGITS);
    }
    return false;
}

/* The top frame's value is finished: pop it and move its parent on. */
static void pop(tw_gstate *s)
{
    if (s->f[s->depth - 1].kind == K_OBJ)   /* its free keys are the tail of the list */
        while (s->n_keys > 0 && s->keys[s->n_keys - 1].depth >= s->depth) s->n_keys--;
    s->depth--;
    tw_gframe *p = &s->f[s->depth - 1];
    p->ws = 0;
    if (p->kind == K_ROOT) p->phase = R_DONE;
    else if (p->kind == K_OBJ) p->phase = O_AFTER;
    else if (p->kind == K_ARR) p->phase = A_AFTER;
}

/* One byte for the object frame f (top of s). */
static bool obj_byte(const tw_grammar *g, tw_gstate *s, tw_gframe *f, unsigned c)
{
    const gnode *n = &g->nodes[f->node];
    switch (f->phase) {
    case O_START:
    case O_AFTER:
    case O_NEED_KEY:
        if (take_ws(g, f, c)) return true;
        if (c == '"' && f->phase != O_AFTER) {
            if (!key_available(g, n, f->n, s->n_keys < TW_GRAMMAR_MAX_KEYS)) return false;
            int32_t lo, hi;
            bool fr;
            key_domain(g, n, f->n, &lo, &hi, &fr);
            if (s->n_keys >= TW_GRAMMAR_MAX_KEYS) fr = false;   /* no room to remember one more */
            f->phase = O_KEY;
            f->ws = f->esc = f->utf = 0;
            f->h = 14695981039346656037ull;
            f->flags = fr ? KF_FREE : 0;
            f->cand = fr ? (n->nprop ? 0 : -1) : lo;
            f->pos = 0;
            return true;
        }
        if (c == '}' && f->phase != O_NEED_KEY) {
            if (first_req(g, n, f->n) < n->nprop) return false;
            pop(s);
            return true;
        }
        if (c == ',' && f->phase == O_AFTER) {
            if (!key_available(g, n, f->n, s->n_keys < TW_GRAMMAR_MAX_KEYS)) return false;
            f->phase = O_NEED_KEY;
            f->ws = 0;
            return true;
        }
        return false;
    case O_KEY: {
        bool fr = f->flags & KF_FREE;
        int32_t lo, hi;
        bool dummy;
        key_domain(g, n, f->n, &lo, &hi, &dummy);
        int32_t dhi = fr ? n->nprop - 1 : hi;   /* cand is searched in [0 or lo, dhi] */
        if (fr && c == '\\' && f->esc == 0 && !(f->utf & 3))
            return false;   /* an escape could spell a declared or a used key another way */
        int r = str_byte(f, c);
        if (r == S_REJECT) return false;
        if (fr && r != S_QUOTE) f->h = (f->h ^ c) * 1099511628211ull;
        if (r == S_QUOTE) {
            int32_t exact = -1;
            if (f->cand >= 0) {
                const prop *pc = &g->props[n->prop0 + f->cand];
                for (int32_t j = f->cand; j <= dhi && exact < 0; j++) {
                    const prop *pj = &g->props[n->prop0 + j];
                    if (pj->len == f->pos && memcmp(pj->key, pc->key, f->pos) == 0) exact = j;
                }
            }
            if (exact >= 0) {
                if (exact < lo || exact > hi) return false;   /* a key already used or skipped */
                f->cand = exact;
                f->n = (uint32_t)exact + 1;
            } else {
                if (!fr) return false;
                for (int32_t k = s->n_keys - 1; k >= 0 && s->keys[k].depth == s->depth; k--)
                    if (s->keys[k].hash == f->h) return false;   /* this object has that key already */
                s->keys[s->n_keys].hash = f->h;
                s->keys[s->n_keys++].depth = s->depth;
                f->cand = -1;
                f->n = (uint32_t)n->nprop;   /* free keys come after the declared ones */
            }
            f->phase = O_COLON;
            f->ws = 0;
            return true;
        }
        if (f->cand >= 0) {
            const prop *pc = &g->props[n->prop0 + f->cand];
            int32_t found = -1;
            for (int32_t j = f->cand; j <= dhi && found < 0; j++) {
                const prop *pj = &g->props[n->prop0 + j];
                if (pj->len > f->pos && (unsigned char)pj->key[f->pos] == c && memcmp(pj->key, pc->key, f->pos) == 0)
                    found = j;
            }
            f->cand = found;
            if (found >= 0) f->pos++;
        }
        return f->cand >= 0 || fr;
    }
    case O_COLON:
        if (take_ws(g, f, c)) return true;
        if (c != ':') return false;
        f->phase = O_BEFORE_VALUE;
        f->ws = 0;
        return true;
    case O_BEFORE_VALUE: {
        if (take_ws(g, f, c)) return true;
        int32_t vn = f->cand >= 0 ? g->props[n->prop0 + f->cand].node : n->addl;
        f->phase = O_VALUE;
        return value_start(g, s, (uint32_t)vn, c);
    }
    default: return false;
    }
}

static bool arr_byte(const tw_grammar *g, tw_gstate *s, tw_gframe *f, unsigned c)
{
    const gnode *n = &g->nodes[f->node];
    switch (f->phase) {
    case A_START:
        if (take_ws(g, f, c)) return true;
        if (c == ']') {
            if (n->min_items > 0) return false;
            pop(s);
            return true;
        }
        if (n->max_items == 0) return false;
        f->n = 1;
        f->phase = A_VALUE;
        return value_start(g, s, (uint32_t)n->items, c);
    case A_AFTER:
        if (take_ws(g, f, c)) return true;
        if (c == ']') {
            if (f->n < n->min_items) return false;
            pop(s);
            return true;
        }
        if (c == ',' && f->n < n->max_items) {
            f->phase = A_NEED;
            f->ws = 0;
            return true;
        }
        return false;
    case A_NEED:
        if (take_ws(g, f, c)) return true;
        f->n++;
        f->phase = A_VALUE;
        return value_start(g, s, (uint32_t)n->items, c);
    default: return false;
    }
}

/* Number grammar (RFC 8259 section 6): -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * Returns 1 consumed, 0 rejected, 2 the number ended before c (c belongs to the parent). */
static int num_byte(tw_gframe *f, unsigned c)
{
    bool io = f->flags & NF_INT, d = is_digit(c);
    switch (f->phase) {
    case N_SIGN:
        if (!d) return 0;
        f->phase = c == '0' ? N_ZERO : N_INT;
        f->pos = 1;
        return 1;
    case N_ZERO:
    case N_INT:
        if (d && f->phase == N_INT && f->pos < MAX_INT_DIGITS) {
            f->pos++;
            return 1;
        }
        if (!io && c == '.') {
            f->phase = N_DOT;
            return 1;
        }
        if (!io && (c == 'e' || c == 'E')) {
            f->phase = N_E;
            return 1;
        }
        return d ? 0 : 2;
    case N_DOT:
        if (!d) return 0;
        f->phase = N_FRAC;
        f->pos = 1;
        return 1;
    case N_FRAC:
        if (d) {
            if (f->pos >= MAX_FRAC_DIGITS) return 0;
            f->pos++;
            return 1;
        }
        if (c == 'e' || c == 'E') {
            f->phase = N_E;
            return 1;
        }
        return 2;
    case N_E:
        if (c == '+' || c == '-') {
            f->phase = N_ESIGN;
            return 1;
        }
        if (!d) return 0;
        f->phase = N_EXP;
        f->pos = 1;
        return 1;
    case N_ESIGN:
        if (!d) return 0;
        f->phase = N_EXP;
        f->pos = 1;
        return 1;
    default:
        if (d) {
            if (f->pos >= MAX_EXP_DIGITS) return 0;
            f->pos++;
            return 1;
        }
        return 2;
    }
}

bool tw_gstate_feed(tw_gstate *s, const tw_grammar *g, unsigned char c)
{
    for (;;) {
        tw_gframe *f = &s->f[s->depth - 1];
        switch (f->kind) {
        case K_ROOT: {
            if (f->phase != R_START) return false;
            if (!g->choice && take_ws(g, f, c)) return true;
            f->phase = R_VALUE;
            if (!value_start(g, s, f->node, c)) return false;
            break;
        }
        case K_OBJ:
            if (!obj_byte(g, s, f, c)) return false;
            break;
        case K_ARR:
            if (!arr_byte(g, s, f, c)) return false;
            break;
        case K_STR: {
            const gnode *n = &g->nodes[f->node];
            int r = str_byte(f, c);
            if (r == S_REJECT) return false;
            if (r == S_QUOTE) {
                if (f->n < n->min_len) return false;
                pop(s);
                return true;
            }
            if (r == S_CP) {
                if (f->n >= n->max_len) return false;
                f->n++;
            }
            return true;
        }
        case K_NUM: {
            int r = num_byte(f, c);
            if (r == 0) return false;
            if (r == 2) {
                pop(s);
                continue;   /* c goes to the parent */
            }
            break;
        }
        default: {   /* K_LIT: candidates lits[cand..n) share the first pos bytes */
            int32_t a = f->cand, b = (int32_t)f->n;
            while (a < b && (g->lits[a].len <= f->pos || (unsigned char)g->lits[a].s[f->pos] != c)) a++;
            if (a == b) {
                if (!lit_complete(g, f)) return false;
                pop(s);
                continue;
            }
            int32_t e = a;
            while (e < b && g->lits[e].len > f->pos && (unsigned char)g->lits[e].s[f->pos] == c) e++;
            f->cand = a;
            f->n = (uint32_t)e;
            f->pos++;
            break;
        }
        }
        /* consumed: close a value that cannot grow (only the newest frame can be) */
        tw_gframe *t = &s->f[s->depth - 1];
        if (frame_final(g, t)) pop(s);
        return true;
    }
}

bool tw_gstate_feed_bytes(tw_gstate *s, const tw_grammar *g, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++)
        if (!tw_gstate_feed(s, g, b[i])) return false;
    return true;
}

bool tw_gstate_can_end(const tw_gstate *s, const tw_grammar *g)
{
    if (s->depth == 1) return s->f[0].phase == R_DONE;
    if (s->depth != 2) return false;
    const tw_gframe *t = &s->f[1];
    if (t->kind == K_NUM) return num_complete(t);
    if (t->kind == K_LIT) return lit_complete(g, t);
    return false;
}

bool tw_gstate_done(const tw_gstate *s) { return s->depth == 1 && s->f[0].phase == R_DONE; }

bool tw_grammar_accepts(const tw_grammar *g, const void *bytes, size_t n)
{
    tw_gstate s;
    tw_gstate_init(&s, g);
    return tw_gstate_feed_bytes(&s, g, bytes, n) && tw_gstate_can_end(&s, g);
}

/* ---- the token trie ------------------------------------------------------------------ */

typedef struct {
    int32_t child0, n_child;   /* children: nodes child0 .. child0 + n_child - 1 */
    int32_t tok0, n_tok;       /* tokens whose piece ends here: toks[tok0 .. tok0 + n_tok) */
    int32_t tok_end;           /* tokens of the whole subtree: toks[tok0 .. tok_end) (preorder) */
    bool plain;                /* every token of the subtree is plain string text */
} tnode;

struct tw_token_trie {
    int32_t n_vocab, eos;
    tnode *nodes;
    uint8_t *byte;   /* (n_nodes) the byte on the edge into the node */
    int32_t n_nodes, cap_nodes;
    int32_t *toks;   /* token ids, grouped by node */
    int32_t max_len;
    uint32_t *off;   /* (n_vocab + 1) token id's piece: blob[off[id] .. off[id + 1]), empty if
                        the token is not in the trie */
    char *blob;
};

typedef struct {
    const char *p;
    uint32_t len;
    int32_t id;
} tpiece;

static int piece_cmp(const void *a, const void *b)
{
    const tpiece *x = a, *y = b;
    uint32_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, m);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Fill node `me` from pieces[a..b) (sorted, all sharing their first `d` bytes). */
static void trie_build(tw_token_trie *t, int32_t me, const tpiece *pc, size_t a, size_t b, uint32_t d, int32_t *ntok)
{
    t->nodes[me].tok0 = *ntok;
    while (a < b && pc[a].len == d) t->toks[(*ntok)++] = pc[a++].id;
    t->nodes[me].n_tok = *ntok - t->nodes[me].tok0;
    int32_t nc = 0;
    for (size_t i = a; i < b; i++)
        if (i == a || pc[i].p[d] != pc[i - 1].p[d]) nc++;
    int32_t c0 = t->n_nodes;
    t->n_nodes += nc;
    t->nodes[me].child0 = c0;
    t->nodes[me].n_child = nc;
    int32_t k = 0;
    for (size_t i = a; i < b;) {
        size_t j = i + 1;
        while (j < b && pc[j].p[d] == pc[i].p[d]) j++;
        t->byte[c0 + k] = (uint8_t)pc[i].p[d];
        trie_build(t, c0 + k, pc, i, j, d + 1, ntok);
        k++;
        i = j;
    }
    t->nodes[me].tok_end = *ntok;
}

/* Plain string text: whole UTF-8 characters, none of them a control character, '"'
 * or '\\' — inside a string such a token leaves the matcher where it was (but for the
 * code point count), whatever came before. */
static bool piece_plain(const char *p, size_t n)
{
    tw_gframe f = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') return false;
        if (str_byte(&f, c) == S_REJECT) return false;
    }
    return (f.utf & 3) == 0;
}

tw_status tw_token_trie_new(tw_token_trie **out, const tw_tokenizer *tok, tw_error *err)
{
    *out = NULL;
    int32_t V = tw_tokenizer_n_vocab(tok);
    tpiece *pc = malloc((size_t)(V > 0 ? V : 1) * sizeof *pc);
    tw_token_trie *t = calloc(1, sizeof *t);
    if (!pc || !t) {
        free(pc);
        free(t);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    size_t n = 0, total = 0;
    for (int32_t id = 0; id < V; id++) {
        unsigned at = tw_token_attr(tok, id);
        if (at & (TW_TOKATTR_SPECIAL | TW_TOKATTR_UNKNOWN | TW_TOKATTR_UNUSED)) continue;
        size_t len = 0;
        const char *p = tw_token_piece(tok, id, &len);
        if (!p || len == 0) continue;
        pc[n++] = (tpiece){p, (uint32_t)len, id};
        total += len;
        if ((int32_t)len > t->max_len) t->max_len = (int32_t)len;
    }
    t->off = malloc(((size_t)V + 1) * sizeof *t->off);
    t->blob = malloc(total ? total : 1);
    if (!t->off || !t->blob) {
        free(pc);
        tw_token_trie_free(t);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    {   /* pieces by id (pc is still in id order here) */
        size_t at = 0, k = 0;
        for (int32_t id = 0; id < V; id++) {
            t->off[id] = (uint32_t)at;
            if (k < n && pc[k].id == id) {
                memcpy(t->blob + at, pc[k].p, pc[k].len);
                at += pc[k].len;
                k++;
            }
        }
        t->off[V] = (uint32_t)at;
    }
    qsort(pc, n, sizeof *pc, piece_cmp);
    t->n_vocab = V;
    t->eos = tw_tokenizer_eos(tok);
    /* nodes <= 1 + total bytes */
    t->nodes = calloc(total + 1, sizeof *t->nodes);
    t->byte = calloc(total + 1, 1);
    t->toks = malloc((n ? n : 1) * sizeof *t->toks);
    if (!t->nodes || !t->byte || !t->toks) {
        free(pc);
        tw_token_trie_free(t);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory for a token trie of %zu bytes", total);
    }
    t->n_nodes = 1;
    int32_t ntok = 0;
    trie_build(t, 0, pc, 0, n, 0, &ntok);
    free(pc);
    /* children have larger indices than their parent: one backward pass */
    for (int32_t i = t->n_nodes - 1; i >= 0; i--) {
        tnode *nd = &t->nodes[i];
        bool pl = true;
        for (int32_t k = 0; k < nd->n_tok && pl; k++) {
            int32_t id = t->toks[nd->tok0 + k];
            pl = piece_plain(t->blob + t->off[id], t->off[id + 1] - t->off[id]);
        }
        for (int32_t k = 0; k < nd->n_child && pl; k++) pl = t->nodes[nd->child0 + k].plain;
        nd->plain = pl;
    }
    *out = t;
    return TW_OK;
}

void tw_token_trie_free(tw_token_trie *t)
{
    if (!t) return;
    free(t->nodes);
    free(t->byte);
    free(t->toks);
    free(t->off);
    free(t->blob);
    free(t);
}

int32_t tw_token_trie_n_vocab(const tw_token_trie *t) { return t->n_vocab; }
int32_t tw_token_trie_n_nodes(const tw_token_trie *t) { return t->n_nodes; }

/* ---- the constraint ---------------------------------------------------------------- */

struct tw_constraint {
    const tw_grammar *g;
    const tw_token_trie *t;
    int32_t *end;
    size_t n_end;
    tw_gstate cur;
    bool ended;
    uint8_t *mask;        /* (n_vocab) */
    tw_gstate *scratch;   /* (max_len + 1): the state after each depth of the trie walk */
    int32_t n_allowed;
};

tw_status tw_constraint_new(tw_constraint **out, const tw_grammar *g, const tw_token_trie *trie,
                            const int32_t *end_ids, size_t n_end, tw_error *err)
{
    *out = NULL;
    int32_t eos = trie->eos;
    if (n_end == 0 && eos < 0) return tw_error_set(err, TW_ERR_INVALID, "constraint: no end token (the tokenizer has no EOS)");
    for (size_t i = 0; i < n_end; i++)
        if (end_ids[i] < 0 || end_ids[i] >= trie->n_vocab)
            return tw_error_set(err, TW_ERR_INVALID, "constraint: end token %d outside the vocabulary of %d", end_ids[i],
                                trie->n_vocab);
    tw_constraint *c = calloc(1, sizeof *c);
    if (!c) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    c->g = g;
    c->t = trie;
    c->n_end = n_end ? n_end : 1;
    c->end = malloc(c->n_end * sizeof *c->end);
    c->mask = malloc((size_t)trie->n_vocab);
    c->scratch = malloc((size_t)(trie->max_len + 1) * sizeof *c->scratch);
    if (!c->end || !c->mask || !c->scratch) {
        tw_constraint_free(c);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    if (n_end) memcpy(c->end, end_ids, n_end * sizeof *end_ids);
    else c->end[0] = eos;
    tw_constraint_reset(c);
    *out = c;
    return TW_OK;
}

void tw_constraint_free(tw_constraint *c)
{
    if (!c) return;
    free(c->end);
    free(c->mask);
    free(c->scratch);
    free(c);
}

void tw_constraint_reset(tw_constraint *c)
{
    tw_gstate_init(&c->cur, c->g);
    c->ended = false;
}

bool tw_constraint_is_end(const tw_constraint *c, int32_t id)
{
    for (size_t i = 0; i < c->n_end; i++)
        if (c->end[i] == id) return true;
    return false;
}

bool tw_constraint_complete(const tw_constraint *c) { return c->ended || tw_gstate_can_end(&c->cur, c->g); }
bool tw_constraint_done(const tw_constraint *c) { return c->ended || tw_gstate_done(&c->cur); }

/* Depth-first walk of the trie below `node`, whose bytes so far left the matcher in
 * scratch[d]: every child byte is tried on a copy (one feed per trie edge, so a prefix
 * shared by many tokens is matched once), and subtrees the matcher rejects are skipped. */
static void walk(tw_constraint *c, int32_t node, int32_t d)
{
    const tw_token_trie *t = c->t;
    const tnode *nd = &t->nodes[node];
    const tw_gstate *from = &c->scratch[d];
    tw_gstate *to = &c->scratch[d + 1];
    /* Inside a string without a length bound (or a free object key), between
     * characters, any plain text is allowed: subtrees of plain tokens are taken whole
     * without walking them (most of the vocabulary, for byte-level BPE). */
    const tw_gframe *top = &from->f[from->depth - 1];
    bool bulk = top->esc == 0 && (top->utf & 3) == 0 &&
                ((top->kind == K_STR && c->g->nodes[top->node].max_len == UINT32_MAX) ||
                 (top->kind == K_OBJ && top->phase == O_KEY && (top->flags & KF_FREE)));
    for (int32_t k = 0; k < nd->n_child; k++) {
        int32_t ch = nd->child0 + k;
        if (bulk && t->nodes[ch].plain) {
            const tnode *cn = &t->nodes[ch];
            for (int32_t i = cn->tok0; i < cn->tok_end; i++) c->mask[t->toks[i]] = 1;
            c->n_allowed += cn->tok_end - cn->tok0;
            continue;
        }
        tw_gstate_copy(to, from);
        if (!tw_gstate_feed(to, c->g, t->byte[ch])) continue;
        const tnode *cn = &t->nodes[ch];
        for (int32_t i = 0; i < cn->n_tok; i++) c->mask[t->toks[cn->tok0 + i]] = 1;
        c->n_allowed += cn->n_tok;
        if (cn->n_child && !tw_gstate_done(to)) walk(c, ch, d + 1);
    }
}

int32_t tw_constraint_allowed(tw_constraint *c, const uint8_t **mask)
{
    memset(c->mask, 0, (size_t)c->t->n_vocab);
    c->n_allowed = 0;
    if (!c->ended) {
        if (!tw_gstate_done(&c->cur)) {
            tw_gstate_copy(&c->scratch[0], &c->cur);
            walk(c, 0, 0);
        }
        if (tw_gstate_can_end(&c->cur, c->g))
            for (size_t i = 0; i < c->n_end; i++)
                if (!c->mask[c->end[i]]) {
                    c->mask[c->end[i]] = 1;
                    c->n_allowed++;
                }
    }
    if (mask) *mask = c->mask;
    return c->n_allowed;
}

int32_t tw_constraint_apply(tw_constraint *c, float *logits, int32_t n_vocab)
{
    tw_constraint_allowed(c, NULL);
    int32_t tv = c->t->n_vocab, n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (i >= tv || !c->mask[i]) logits[i] = -INFINITY;
        else n++;
    }
    return n;
}

tw_status tw_constraint_accept(tw_constraint *c, int32_t id, tw_error *err)
{
    if (c->ended) return tw_error_set(err, TW_ERR_INVALID, "constraint: token %d after the end", id);
    if (tw_constraint_is_end(c, id)) {
        if (!tw_gstate_can_end(&c->cur, c->g))
            return tw_error_set(err, TW_ERR_INVALID, "constraint: end token %d before the value is complete", id);
        c->ended = true;
        return TW_OK;
    }
    if (id < 0 || id >= c->t->n_vocab) return tw_error_set(err, TW_ERR_INVALID, "constraint: token %d outside the vocabulary", id);
    const tw_token_trie *t = c->t;
    uint32_t a = t->off[id], b = t->off[id + 1];
    tw_gstate s;
    tw_gstate_copy(&s, &c->cur);
    if (a == b || !tw_gstate_feed_bytes(&s, c->g, t->blob + a, b - a))
        return tw_error_set(err, TW_ERR_INVALID, "constraint: token %d ('%.*s') cannot follow the text so far", id,
                            (int)(b - a), t->blob + a);
    tw_gstate_copy(&c->cur, &s);
    return TW_OK;
}
