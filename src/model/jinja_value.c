/* jinja_value.c — the runtime base of the Jinja interpreter (jinja.h): arena allocation
 * and error unwinding, the value model (lists, dicts), the tables of built-in names, and
 * the Python semantics the values follow — str() and repr() (floats as the shortest repr),
 * tojson (json.dumps), truthiness, ==, ordering, `in`, iteration and len().
 *
 * Deliberately not here: parsing (jinja_parse.c), and evaluating expressions, statements,
 * filters, tests and methods (jinja_eval.c) — this file only says what Python would do
 * with values that already exist. */
#include "model/jinja_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* =====================================================================================
 * arena
 * ===================================================================================== */

static void *arena_try(arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (a->total + cap > ARENA_LIMIT) return NULL;
        ablk *b = malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
        a->total += cap;
    }
    void *p = (unsigned char *)a->head->mem + a->head->used;
    a->head->used += n;
    return p;
}

void jj_arena_free(arena *a)
{
    ablk *b = a->head;
    while (b) {
        ablk *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* =====================================================================================
 * built-in names (jinja_internal.h has the ids)
 * ===================================================================================== */

const fn_name JJ_GLOBAL_FNS[] = {
    {"range", G_RANGE}, {"namespace", G_NAMESPACE}, {"raise_exception", G_RAISE},
    {"strftime_now", G_STRFTIME}, {"dict", G_DICT}, {NULL, 0},
};
const fn_name JJ_STR_METHODS[] = {
    {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"split", M_SPLIT},
    {"rsplit", M_RSPLIT}, {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP},
    {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE}, {"capitalize", M_CAPITALIZE},
    {"replace", M_REPLACE}, {"find", M_FIND}, {"rfind", M_RFIND}, {"count", M_COUNT},
    {"join", M_JOIN}, {"splitlines", M_SPLITLINES}, {NULL, 0},
};
const fn_name JJ_DICT_METHODS[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET}, {NULL, 0},
};
const fn_name JJ_LIST_METHODS[] = {
    {"count", M_LCOUNT}, {"index", M_INDEX}, {NULL, 0},
};

int jj_fn_lookup(const fn_name *t, const char *s, size_t n)
{
    for (; t->name; t++)
        if (strlen(t->name) == n && memcmp(t->name, s, n) == 0) return t->id;
    return 0;
}

const char *jj_fn_label(int id)
{
    const fn_name *tabs[] = {JJ_GLOBAL_FNS, JJ_STR_METHODS, JJ_DICT_METHODS, JJ_LIST_METHODS};
    for (size_t k = 0; k < 4; k++)
        for (const fn_name *t = tabs[k]; t->name; t++)
            if (t->id == id) return t->name;
    return "?";
}

const fn_name JJ_FILTERS[] = {
    {"abs", F_ABS}, {"capitalize", F_CAPITALIZE}, {"count", F_COUNT}, {"default", F_DEFAULT},
    {"d", F_DEFAULT}, {"escape", F_ESCAPE}, {"e", F_ESCAPE}, {"first", F_FIRST},
    {"float", F_FLOAT}, {"indent", F_INDENT}, {"int", F_INT}, {"items", F_ITEMS},
    {"join", F_JOIN}, {"last", F_LAST}, {"length", F_LENGTH}, {"list", F_LIST},
    {"lower", F_LOWER}, {"map", F_MAP}, {"reject", F_REJECT}, {"rejectattr", F_REJECTATTR},
    {"replace", F_REPLACE}, {"reverse", F_REVERSE}, {"safe", F_SAFE}, {"select", F_SELECT},
    {"selectattr", F_SELECTATTR}, {"string", F_STRING}, {"title", F_TITLE},
    {"tojson", F_TOJSON}, {"trim", F_TRIM}, {"unique", F_UNIQUE}, {"upper", F_UPPER},
    {"sum", F_SUM}, {"min", F_MIN}, {"max", F_MAX}, {"dictsort", F_DICTSORT},
    {"wordcount", F_WORDCOUNT}, {NULL, 0},
};
const fn_name JJ_TESTS[] = {
    {"defined", T_DEFINED}, {"undefined", T_UNDEFINED}, {"none", T_NONE}, {"true", T_TRUE},
    {"false", T_FALSE}, {"boolean", T_BOOLEAN}, {"string", T_STRING}, {"number", T_NUMBER},
    {"integer", T_INTEGER}, {"float", T_FLOAT}, {"mapping", T_MAPPING},
    {"iterable", T_ITERABLE}, {"sequence", T_SEQUENCE}, {"callable", T_CALLABLE},
    {"equalto", T_EQ}, {"eq", T_EQ}, {"==", T_EQ}, {"ne", T_NE}, {"!=", T_NE}, {"lt", T_LT},
    {"<", T_LT}, {"lessthan", T_LT}, {"le", T_LE}, {"<=", T_LE}, {"gt", T_GT}, {">", T_GT},
    {"greaterthan", T_GT}, {"ge", T_GE}, {">=", T_GE}, {"in", T_IN}, {"sameas", T_SAMEAS},
    {"odd", T_ODD}, {"even", T_EVEN}, {"divisibleby", T_DIVISIBLEBY}, {"lower", T_LOWER},
    {"upper", T_UPPER}, {"escaped", T_ESCAPED}, {NULL, 0},
};

const char *jj_fn_label_test(int id)
{
    for (const fn_name *t = JJ_TESTS; t->name; t++)
        if (t->id == id) return t->name;
    return "?";
}

/* =====================================================================================
 * errors and allocation
 * ===================================================================================== */

_Noreturn void jj_fail(jctx *c, tw_status st, int line, const char *fmt, ...)
{
    char msg[TW_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        tw_error_set(c->err, st, "%s: line %d: %s", c->label, line, msg);
    else
        tw_error_set(c->err, st, "%s: %s", c->label, msg);
    longjmp(c->jb, 1);
}

void *jj_amalloc(jctx *c, size_t n)
{
    void *p = arena_try(c->A, n);
    if (!p) jj_fail(c, TW_ERR_NOMEM, 0, "out of memory (or over the %zu MiB limit of one template)", ARENA_LIMIT >> 20);
    return p;
}

char *jj_astrdup(jctx *c, const char *s, size_t n)
{
    char *p = jj_amalloc(c, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- string builder in the arena (nothing to free when an error unwinds) ----------- */

void jj_sb_put(jctx *c, sb *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = jj_amalloc(c, cap);
        if (b->n) memcpy(q, b->p, b->n);
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}
void jj_sb_puts(jctx *c, sb *b, const char *s) { jj_sb_put(c, b, s, strlen(s)); }
void jj_sb_putc(jctx *c, sb *b, char ch) { jj_sb_put(c, b, &ch, 1); }

/* ---- lists and dicts (in the arena) ---------------------------------------------------- */

jlist *jj_list_new(jctx *c, size_t cap)
{
    jlist *l = jj_amalloc(c, sizeof *l);
    l->n = 0;
    l->flags = 0;
    l->cap = cap ? cap : 4;
    l->v = jj_amalloc(c, l->cap * sizeof(jv));
    return l;
}
void jj_list_push(jctx *c, jlist *l, jv v)
{
    if (l->n == l->cap) {
        jv *nv = jj_amalloc(c, 2 * l->cap * sizeof(jv));
        memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
}

jdict *jj_dict_new(jctx *c, size_t cap)
{
    jdict *d = jj_amalloc(c, sizeof *d);
    d->n = 0;
    d->flags = 0;
    d->cap = cap ? cap : 4;
    d->key = jj_amalloc(c, d->cap * sizeof(jv));
    d->val = jj_amalloc(c, d->cap * sizeof(jv));
    return d;
}

jv *jj_dict_find(const jdict *d, jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (jj_v_eq(d->key[i], key)) return &d->val[i];
    return NULL;
}
jv *jj_dict_find_s(const jdict *d, const char *s, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->key[i].k == V_STR && d->key[i].u.s.n == n && memcmp(d->key[i].u.s.p, s, n) == 0)
            return &d->val[i];
    return NULL;
}
void jj_dict_set(jctx *c, jdict *d, jv key, jv val)
{
    jv *slot = jj_dict_find(d, key);
    if (slot) { *slot = val; return; }
    if (d->n == d->cap) {
        jv *nk = jj_amalloc(c, 2 * d->cap * sizeof(jv)), *nv = jj_amalloc(c, 2 * d->cap * sizeof(jv));
        memcpy(nk, d->key, d->n * sizeof(jv));
        memcpy(nv, d->val, d->n * sizeof(jv));
        d->key = nk;
        d->val = nv;
        d->cap *= 2;
    }
    d->key[d->n] = key;
    d->val[d->n++] = val;
}
void jj_dict_set_s(jctx *c, jdict *d, const char *key, jv val) { jj_dict_set(c, d, v_cstr(key), val); }

/* =====================================================================================
 * UTF-8 and Python string helpers
 * ===================================================================================== */

/* \s* from i (Python's Unicode whitespace). */
size_t jj_skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n) {
        int len;
        if (!py_space(u8_at(s, n, i, &len))) break;
        i += (size_t)len;
    }
    return i;
}

/* Does code point cp occur in the set `chars` (UTF-8)? */
static bool cp_in(uint32_t cp, const char *chars, size_t n)
{
    for (size_t i = 0; i < n;) {
        int len;
        if (u8_at(chars, n, i, &len) == cp) return true;
        i += (size_t)len;
    }
    return false;
}

/* Python str.strip/lstrip/rstrip: chars NULL strips whitespace. */
jv jj_py_strip(jv s, const char *chars, size_t nchars, bool left, bool right)
{
    const char *p = s.u.s.p;
    size_t b = 0, e = s.u.s.n;
    if (left)
        while (b < e) {
            int len;
            uint32_t cp = u8_at(p, e, b, &len);
            if (chars ? !cp_in(cp, chars, nchars) : !py_space(cp)) break;
            b += (size_t)len;
        }
    if (right)
        while (e > b) {
            size_t q = u8_prev(p, e);
            int len;
            uint32_t cp = u8_at(p, e, q, &len);
            if (chars ? !cp_in(cp, chars, nchars) : !py_space(cp)) break;
            e = q;
        }
    return v_str(p + b, e - b);
}

size_t jj_cp_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) k++;
    return k;
}
/* Byte offset of code point index `idx` (0 <= idx <= count). */
size_t jj_cp_offset(const char *s, size_t n, size_t idx)
{
    size_t i = 0;
    while (idx > 0 && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80) i++;
        idx--;
    }
    return i;
}

const char *jj_memfind(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}
const char *jj_memrfind(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

/* Python float.__repr__: the shortest string that reads back to d. */
static void py_float_repr(double d, char out[48])
{
    if (isnan(d)) { strcpy(out, "nan"); return; }
    if (isinf(d)) { strcpy(out, d < 0 ? "-inf" : "inf"); return; }
    char tmp[48];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') { neg = true; p++; }
    char dig[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < 20) dig[nd++] = *p;
    int ex = atoi(p + 1);
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    char *o = out;
    if (neg) *o++ = '-';
    if (ex >= -4 && ex < 16) {
        if (ex < 0) {
            *o++ = '0';
            *o++ = '.';
            for (int k = 0; k < -ex - 1; k++) *o++ = '0';
            for (int k = 0; k < nd; k++) *o++ = dig[k];
        } else {
            for (int k = 0; k <= ex; k++) *o++ = k < nd ? dig[k] : '0';
            *o++ = '.';
            if (nd > ex + 1)
                for (int k = ex + 1; k < nd; k++) *o++ = dig[k];
            else
                *o++ = '0';
        }
        *o = '\0';
    } else {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            for (int k = 1; k < nd; k++) *o++ = dig[k];
        }
        snprintf(o, 16, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    }
}

/* =====================================================================================
 * str(), repr(), tojson
 * ===================================================================================== */

const char *jj_type_name(jv v)
{
    switch (v.k) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST: return (v.u.l->flags & LF_TUPLE) ? "tuple" : "list";
    case V_DICT: return (v.u.d->flags & DF_NAMESPACE) ? "Namespace" : (v.u.d->flags & DF_LOOP) ? "LoopContext" : "dict";
    default: return "builtin_function_or_method";
    }
}

static void put_repr(jctx *c, sb *b, jv v, int depth);

void jj_put_str(jctx *c, sb *b, jv v)
{
    char num[48];
    switch (v.k) {
    case V_UNDEF: return;
    case V_NONE: jj_sb_puts(c, b, "None"); return;
    case V_BOOL: jj_sb_puts(c, b, v.u.i ? "True" : "False"); return;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); jj_sb_puts(c, b, num); return;
    case V_FLOAT: py_float_repr(v.u.f, num); jj_sb_puts(c, b, num); return;
    case V_STR: jj_sb_put(c, b, v.u.s.p, v.u.s.n); return;
    default: put_repr(c, b, v, 0); return;
    }
}

static void put_str_repr(jctx *c, sb *b, const char *s, size_t n)
{
    char q = (memchr(s, '\'', n) && !memchr(s, '"', n)) ? '"' : '\'';
    jj_sb_putc(c, b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '\\' || ch == (unsigned char)q) { jj_sb_putc(c, b, '\\'); jj_sb_putc(c, b, (char)ch); }
        else if (ch == '\n') jj_sb_puts(c, b, "\\n");
        else if (ch == '\r') jj_sb_puts(c, b, "\\r");
        else if (ch == '\t') jj_sb_puts(c, b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) { snprintf(esc, sizeof esc, "\\x%02x", ch); jj_sb_puts(c, b, esc); }
        else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0) {
            /* C1 controls U+0080..U+009F are not printable: \x80..\x9f */
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i + 1]);
            jj_sb_puts(c, b, esc);
            i++;
        } else jj_sb_putc(c, b, (char)ch);
    }
    jj_sb_putc(c, b, q);
}

static void put_repr(jctx *c, sb *b, jv v, int depth)
{
    if (depth > MAX_DEPTH) jj_fail(c, TW_ERR_RUNTIME, c->line, "repr: nesting deeper than %d (a namespace holding itself?)", MAX_DEPTH);
    switch (v.k) {
    case V_UNDEF: jj_sb_puts(c, b, "Undefined"); return;
    case V_STR: put_str_repr(c, b, v.u.s.p, v.u.s.n); return;
    case V_LIST: {
        bool tup = v.u.l->flags & LF_TUPLE;
        jj_sb_putc(c, b, tup ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jj_sb_puts(c, b, ", ");
            put_repr(c, b, v.u.l->v[i], depth + 1);
        }
        if (tup && v.u.l->n == 1) jj_sb_putc(c, b, ',');
        jj_sb_putc(c, b, tup ? ')' : ']');
        return;
    }
    case V_DICT: {
        bool ns = v.u.d->flags & DF_NAMESPACE;
        if (v.u.d->flags & DF_LOOP) {
            char t[64];
            snprintf(t, sizeof t, "<LoopContext %lld/%lld>", (long long)v.u.d->val[0].u.i, (long long)v.u.d->val[6].u.i);
            jj_sb_puts(c, b, t);
            return;
        }
        if (ns) jj_sb_puts(c, b, "<Namespace ");
        jj_sb_putc(c, b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) jj_sb_puts(c, b, ", ");
            put_repr(c, b, v.u.d->key[i], depth + 1);
            jj_sb_puts(c, b, ": ");
            put_repr(c, b, v.u.d->val[i], depth + 1);
        }
        jj_sb_putc(c, b, '}');
        if (ns) jj_sb_putc(c, b, '>');
        return;
    }
    case V_FUNC:
        jj_sb_puts(c, b, "<built-in method ");
        jj_sb_puts(c, b, jj_fn_label(v.fn));
        jj_sb_putc(c, b, '>');
        return;
    default: jj_put_str(c, b, v); return;
    }
}

jv jj_to_str(jctx *c, jv v)
{
    if (v.k == V_STR) return v;
    sb b = {0};
    jj_put_str(c, &b, v);
    return v_sb(&b);
}

static void json_str(jctx *c, sb *b, const char *s, size_t n, bool ascii)
{
    jj_sb_putc(c, b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        char esc[16];
        if (ch == '"') jj_sb_puts(c, b, "\\\"");
        else if (ch == '\\') jj_sb_puts(c, b, "\\\\");
        else if (ch == '\n') jj_sb_puts(c, b, "\\n");
        else if (ch == '\r') jj_sb_puts(c, b, "\\r");
        else if (ch == '\t') jj_sb_puts(c, b, "\\t");
        else if (ch == '\b') jj_sb_puts(c, b, "\\b");
        else if (ch == '\f') jj_sb_puts(c, b, "\\f");
        else if (ch < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", ch); jj_sb_puts(c, b, esc); }
        else if (ch >= 0x80 && ascii) {
            int len;
            uint32_t cp = u8_at(s, n, i, &len);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else snprintf(esc, sizeof esc, "\\u%04x", cp);
            jj_sb_puts(c, b, esc);
            i += (size_t)len;
            continue;
        } else jj_sb_putc(c, b, (char)ch);
        i++;
    }
    jj_sb_putc(c, b, '"');
}

static void json_nl(jctx *c, sb *b, const json_opts *o, int level)
{
    jj_sb_putc(c, b, '\n');
    for (int k = 0; k < level; k++) jj_sb_puts(c, b, o->indent);
}

void jj_json_dump(jctx *c, sb *b, jv v, const json_opts *o, int level)
{
    char num[48];
    if (level > MAX_DEPTH) jj_fail(c, TW_ERR_RUNTIME, c->line, "tojson: nesting deeper than %d", MAX_DEPTH);
    switch (v.k) {
    case V_NONE: jj_sb_puts(c, b, "null"); return;
    case V_BOOL: jj_sb_puts(c, b, v.u.i ? "true" : "false"); return;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); jj_sb_puts(c, b, num); return;
    case V_FLOAT:
        if (isnan(v.u.f)) jj_sb_puts(c, b, "NaN");
        else if (isinf(v.u.f)) jj_sb_puts(c, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else { py_float_repr(v.u.f, num); jj_sb_puts(c, b, num); }
        return;
    case V_STR: json_str(c, b, v.u.s.p, v.u.s.n, o->ensure_ascii); return;
    case V_LIST:
        if (v.u.l->n == 0) { jj_sb_puts(c, b, "[]"); return; }
        jj_sb_putc(c, b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) jj_sb_puts(c, b, o->item_sep);
            if (o->indent) json_nl(c, b, o, level + 1);
            jj_json_dump(c, b, v.u.l->v[i], o, level + 1);
        }
        if (o->indent) json_nl(c, b, o, level);
        jj_sb_putc(c, b, ']');
        return;
    case V_DICT: {
        const jdict *d = v.u.d;
        if (d->flags & (DF_NAMESPACE | DF_LOOP)) break;
        if (d->n == 0) { jj_sb_puts(c, b, "{}"); return; }
        size_t *ord = jj_amalloc(c, d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (o->sort_keys) {
            /* insertion sort on the string keys (dicts here are small) */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0 && jj_cmp_keys(&d->key[ord[j - 1]], &d->key[ord[j]]) > 0; j--) {
                    size_t t = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = t;
                }
        }
        jj_sb_putc(c, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            jv k = d->key[ord[i]];
            if (i) jj_sb_puts(c, b, o->item_sep);
            if (o->indent) json_nl(c, b, o, level + 1);
            if (k.k == V_STR) json_str(c, b, k.u.s.p, k.u.s.n, o->ensure_ascii);
            else if (k.k == V_INT || k.k == V_FLOAT || k.k == V_BOOL || k.k == V_NONE) {
                sb tmp = {0};
                jj_json_dump(c, &tmp, k, o, level + 1);
                jj_sb_putc(c, b, '"');
                jj_sb_put(c, b, tmp.p, tmp.n);
                jj_sb_putc(c, b, '"');
            } else jj_fail(c, TW_ERR_RUNTIME, c->line, "tojson: keys must be str, int, float, bool or None, not %s", jj_type_name(k));
            jj_sb_puts(c, b, o->key_sep);
            jj_json_dump(c, b, d->val[ord[i]], o, level + 1);
        }
        if (o->indent) json_nl(c, b, o, level);
        jj_sb_putc(c, b, '}');
        return;
    }
    default: break;
    }
    jj_fail(c, TW_ERR_RUNTIME, c->line, "tojson: Object of type %s is not JSON serializable", jj_type_name(v));
}

/* =====================================================================================
 * comparisons and truth
 * ===================================================================================== */

bool jj_truthy(jv v)
{
    switch (v.k) {
    case V_UNDEF: case V_NONE: return false;
    case V_BOOL: case V_INT: return v.u.i != 0;
    case V_FLOAT: return v.u.f != 0.0;
    case V_STR: return v.u.s.n > 0;
    case V_LIST: return v.u.l->n > 0;
    case V_DICT: return (v.u.d->flags & (DF_NAMESPACE | DF_LOOP)) ? true : v.u.d->n > 0;
    default: return true;
    }
}

bool jj_v_eq(jv a, jv b)
{
    if (is_num(a) && is_num(b)) {
        if (a.k != V_FLOAT && b.k != V_FLOAT) return a.u.i == b.u.i;
        return num_f(a) == num_f(b);
    }
    if (a.k != b.k) return false;
    switch (a.k) {
    case V_UNDEF: case V_NONE: return true;
    case V_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case V_LIST:
        if ((a.u.l->flags & LF_TUPLE) != (b.u.l->flags & LF_TUPLE) || a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jj_v_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case V_DICT:
        if (a.u.d == b.u.d) return true;
        if ((a.u.d->flags | b.u.d->flags) & (DF_NAMESPACE | DF_LOOP)) return false;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jj_dict_find(b.u.d, a.u.d->key[i]);
            if (!o || !jj_v_eq(a.u.d->val[i], *o)) return false;
        }
        return true;
    case V_FUNC: return a.fn == b.fn && a.u.recv == b.u.recv;
    default: return false;
    }
}

/* <0, 0, >0; fails (TypeError) for unordered types. */
int jj_v_cmp(jctx *c, jv a, jv b, const char *op)
{
    if (is_num(a) && is_num(b)) {
        if (a.k != V_FLOAT && b.k != V_FLOAT) return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        double x = num_f(a), y = num_f(b);
        return (x > y) - (x < y);
    }
    if (a.k == V_STR && b.k == V_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, n);   /* UTF-8 byte order = code point order */
        if (r) return r;
        return (a.u.s.n > b.u.s.n) - (a.u.s.n < b.u.s.n);
    }
    if (a.k == V_LIST && b.k == V_LIST) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (jj_v_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return jj_v_cmp(c, a.u.l->v[i], b.u.l->v[i], op);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    if (a.k == V_UNDEF || b.k == V_UNDEF)
        jj_fail(c, TW_ERR_RUNTIME, c->line, "'%.*s' is undefined", (int)(a.k == V_UNDEF ? a : b).u.s.n,
             (a.k == V_UNDEF ? a : b).u.s.p);
    jj_fail(c, TW_ERR_RUNTIME, c->line, "'%s' not supported between instances of '%s' and '%s'", op, jj_type_name(a),
         jj_type_name(b));
}

int jj_cmp_keys(const void *x, const void *y)
{
    const jv *a = x, *b = y;
    if (a->k == V_STR && b->k == V_STR) {
        size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
        int r = memcmp(a->u.s.p, b->u.s.p, n);
        return r ? r : (a->u.s.n > b->u.s.n) - (a->u.s.n < b->u.s.n);
    }
    if (is_num(*a) && is_num(*b)) return (num_f(*a) > num_f(*b)) - (num_f(*a) < num_f(*b));
    return a->k - b->k;
}

_Noreturn void jj_fail_undef(jctx *c, jv v)
{
    jj_fail(c, TW_ERR_RUNTIME, c->line, "'%.*s' is undefined", (int)v.u.s.n, v.u.s.p);
}

bool jj_v_in(jctx *c, jv item, jv seq)
{
    switch (seq.k) {
    case V_UNDEF: return false;
    case V_STR:
        if (item.k != V_STR)
            jj_fail(c, TW_ERR_RUNTIME, c->line, "'in <string>' requires string as left operand, not %s", jj_type_name(item));
        return jj_memfind(seq.u.s.p, seq.u.s.n, item.u.s.p, item.u.s.n) != NULL;
    case V_LIST:
        for (size_t i = 0; i < seq.u.l->n; i++)
            if (jj_v_eq(item, seq.u.l->v[i])) return true;
        return false;
    case V_DICT: return jj_dict_find(seq.u.d, item) != NULL;
    default:
        jj_fail(c, TW_ERR_RUNTIME, c->line, "argument of type '%s' is not iterable", jj_type_name(seq));
    }
}

/* The items a for loop / list() / join visit: list items, dict keys, string characters. */
jlist *jj_iter_items(jctx *c, jv v)
{
    switch (v.k) {
    case V_UNDEF: return jj_list_new(c, 1);
    case V_LIST: return v.u.l;
    case V_DICT: {
        if (v.u.d->flags & (DF_NAMESPACE | DF_LOOP)) break;
        jlist *l = jj_list_new(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) jj_list_push(c, l, v.u.d->key[i]);
        return l;
    }
    case V_STR: {
        jlist *l = jj_list_new(c, v.u.s.n);
        for (size_t i = 0; i < v.u.s.n;) {
            int len;
            u8_at(v.u.s.p, v.u.s.n, i, &len);
            jj_list_push(c, l, v_str(v.u.s.p + i, (size_t)len));
            i += (size_t)len;
        }
        return l;
    }
    default: break;
    }
    jj_fail(c, TW_ERR_RUNTIME, c->line, "'%s' object is not iterable", jj_type_name(v));
}

jv jj_v_len(jctx *c, jv v)
{
    switch (v.k) {
    case V_UNDEF: return v_int(0);
    case V_STR: return v_int((int64_t)jj_cp_count(v.u.s.p, v.u.s.n));
    case V_LIST: return v_int((int64_t)v.u.l->n);
    case V_DICT: if (!(v.u.d->flags & (DF_NAMESPACE | DF_LOOP))) return v_int((int64_t)v.u.d->n); break;
    default: break;
    }
    jj_fail(c, TW_ERR_RUNTIME, c->line, "object of type '%s' has no len()", jj_type_name(v));
}
