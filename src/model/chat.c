/* chat.c — chat templates (see chat.h): family detection, built-in templates, and a small
 * interpreter for the Jinja2 subset that Hugging Face chat templates use, configured as
 * transformers' apply_chat_template configures jinja2 (transformers
 * utils/chat_template_utils.py): ImmutableSandboxedEnvironment(trim_blocks=True,
 * lstrip_blocks=True, extensions=[loopcontrols, generation tag]); filter tojson =
 * json.dumps(ensure_ascii=False, ...) without key sorting; globals raise_exception,
 * strftime_now, namespace, dict; render(messages, tools=None, documents=None,
 * add_generation_prompt, bos_token, eos_token, extra kwargs).
 *
 * Jinja semantics followed (jinja2 3.1 lexer.py / parser.py / runtime.py), and checked
 * byte for byte by tests/test_chat.c against jinja2's own output:
 *  - lexing: newlines normalized to \n, one trailing newline dropped; {%- -%} {{- -}} {#- -#}
 *    strip whitespace; trim_blocks drops the \n after %} and #}; lstrip_blocks drops the
 *    spaces/tabs before {% and {# on their line; {%+ keeps them; {% raw %};
 *  - string literals are unescaped like Python's unicode-escape codec;
 *  - values behave like Python's: str()/repr() of None, True, floats (shortest repr),
 *    lists, dicts; truthiness; == between numbers of any kind; `and`/`or` return operands;
 *  - an undefined variable prints as "", is falsy, iterates as empty, has length 0, and is
 *    an error in arithmetic or attribute access (jinja2's default Undefined);
 *  - `set` inside a for loop is local to the iteration; namespace() attributes are not.
 * Supported statements: for (with unpacking, `if` filter, else, loop.*), if/elif/else, set
 * (incl. namespace attributes and block set), break, continue, raw, generation. Not
 * supported (parse error, so a model template falls back to the built-in one): macro, call,
 * filter blocks, include/import/extends, recursive loops, and filters, tests, functions or
 * methods not listed in the tables below.
 *
 * Memory: a template's tokens and syntax tree live in its own arena; each render uses a
 * fresh arena freed when it returns. Errors unwind with longjmp to the entry point (only
 * arena memory is live in between, so nothing leaks).
 *
 * Deliberately not here: autoescaping (chat templates run with it off), Python's Unicode
 * case mapping (upper/lower/title/capitalize map ASCII letters only), tools / multimodal
 * content (messages are plain strings). */
#include "model/chat.h"

#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>

/* Limits that keep a hostile or broken template from exhausting the machine. */
#define ARENA_LIMIT ((size_t)512 << 20)   /* bytes per template / per render */
#define OUTPUT_LIMIT ((size_t)256 << 20)  /* bytes of rendered text */
#define MAX_DEPTH 200                     /* nesting of expressions / statements */
#define MAX_ARGS 16                       /* arguments of one call / filter / test */
#define MAX_RANGE 1000000                 /* items from range() */
#define MAX_STEPS 10000000                /* evaluated nodes per render (a real chat template
                                             takes ~50 per message) */

/* =====================================================================================
 * arena
 * ===================================================================================== */

typedef struct ablk {
    struct ablk *next;
    size_t used, cap;
    max_align_t mem[];
} ablk;

typedef struct arena {
    ablk *head;
    size_t total;
} arena;

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

static void arena_free(arena *a)
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
 * values
 * ===================================================================================== */

enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_FUNC };
enum { LF_TUPLE = 1 };                 /* list flag */
enum { DF_NAMESPACE = 1, DF_LOOP = 2 };  /* dict flags */

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jv {
    uint8_t k;       /* V_* */
    uint16_t fn;     /* V_FUNC: function id */
    union {
        int64_t i;                          /* V_BOOL, V_INT */
        double f;                           /* V_FLOAT */
        struct { const char *p; size_t n; } s;  /* V_STR; V_UNDEF: the missing name */
        jlist *l;
        jdict *d;
        const struct jv *recv;              /* V_FUNC: bound receiver, or NULL */
    } u;
} jv;

struct jlist {
    size_t n, cap;
    int flags;
    jv *v;
};
struct jdict {
    size_t n, cap;
    int flags;
    jv *key, *val;
};

/* Function ids: globals, then methods (bound to a receiver). */
enum {
    FN_NONE,
    G_RANGE, G_NAMESPACE, G_RAISE, G_STRFTIME, G_DICT,
    M_STARTSWITH, M_ENDSWITH, M_SPLIT, M_RSPLIT, M_STRIP, M_LSTRIP, M_RSTRIP, M_UPPER, M_LOWER,
    M_TITLE, M_CAPITALIZE, M_REPLACE, M_FIND, M_RFIND, M_COUNT, M_JOIN, M_SPLITLINES,
    M_ITEMS, M_KEYS, M_VALUES, M_GET,
    M_LCOUNT, M_INDEX,
    FN_COUNT
};

typedef struct fn_name { const char *name; int id; } fn_name;
static const fn_name GLOBAL_FNS[] = {
    {"range", G_RANGE}, {"namespace", G_NAMESPACE}, {"raise_exception", G_RAISE},
    {"strftime_now", G_STRFTIME}, {"dict", G_DICT}, {NULL, 0},
};
static const fn_name STR_METHODS[] = {
    {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"split", M_SPLIT},
    {"rsplit", M_RSPLIT}, {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP},
    {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE}, {"capitalize", M_CAPITALIZE},
    {"replace", M_REPLACE}, {"find", M_FIND}, {"rfind", M_RFIND}, {"count", M_COUNT},
    {"join", M_JOIN}, {"splitlines", M_SPLITLINES}, {NULL, 0},
};
static const fn_name DICT_METHODS[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET}, {NULL, 0},
};
static const fn_name LIST_METHODS[] = {
    {"count", M_LCOUNT}, {"index", M_INDEX}, {NULL, 0},
};

static int fn_lookup(const fn_name *t, const char *s, size_t n)
{
    for (; t->name; t++)
        if (strlen(t->name) == n && memcmp(t->name, s, n) == 0) return t->id;
    return 0;
}

static const char *fn_label(int id)
{
    const fn_name *tabs[] = {GLOBAL_FNS, STR_METHODS, DICT_METHODS, LIST_METHODS};
    for (size_t k = 0; k < 4; k++)
        for (const fn_name *t = tabs[k]; t->name; t++)
            if (t->id == id) return t->name;
    return "?";
}

static const char *fn_label_test(int id);

/* Filters and tests, resolved to ids at parse time (unknown names are parse errors). */
enum {
    F_NONE, F_ABS, F_CAPITALIZE, F_COUNT, F_DEFAULT, F_ESCAPE, F_FIRST, F_FLOAT, F_INDENT, F_INT,
    F_ITEMS, F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_REJECT, F_REJECTATTR,
    F_REPLACE, F_REVERSE, F_SAFE, F_SELECT, F_SELECTATTR, F_STRING, F_TITLE, F_TOJSON, F_TRIM,
    F_UNIQUE, F_UPPER, F_SUM, F_MIN, F_MAX, F_DICTSORT, F_WORDCOUNT
};
static const fn_name FILTERS[] = {
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
enum {
    T_NONE_, T_DEFINED, T_UNDEFINED, T_NONE, T_TRUE, T_FALSE, T_BOOLEAN, T_STRING, T_NUMBER,
    T_INTEGER, T_FLOAT, T_MAPPING, T_ITERABLE, T_SEQUENCE, T_CALLABLE, T_EQ, T_NE, T_LT, T_LE,
    T_GT, T_GE, T_IN, T_SAMEAS, T_ODD, T_EVEN, T_DIVISIBLEBY, T_LOWER, T_UPPER, T_ESCAPED
};
static const fn_name TESTS[] = {
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

static const char *fn_label_test(int id)
{
    for (const fn_name *t = TESTS; t->name; t++)
        if (t->id == id) return t->name;
    return "?";
}

/* Parameters of the filters after the value (jinja2 filters.py; tojson as transformers
 * defines it), with how many are required; map / select / reject / selectattr /
 * rejectattr take variable arguments and are not listed. */
typedef struct filter_sig {
    int id;
    size_t required;
    const char *params[5];
} filter_sig;
static const filter_sig FILTER_SIGS[] = {
    {F_ABS, 0, {NULL}}, {F_CAPITALIZE, 0, {NULL}}, {F_COUNT, 0, {NULL}}, {F_LENGTH, 0, {NULL}},
    {F_DEFAULT, 0, {"default_value", "boolean", NULL}}, {F_ESCAPE, 0, {NULL}}, {F_FIRST, 0, {NULL}},
    {F_LAST, 0, {NULL}}, {F_FLOAT, 0, {"default", NULL}}, {F_INT, 0, {"default", "base", NULL}},
    {F_INDENT, 0, {"width", "first", "blank", NULL}}, {F_ITEMS, 0, {NULL}}, {F_JOIN, 0, {"d", "attribute", NULL}},
    {F_LIST, 0, {NULL}}, {F_LOWER, 0, {NULL}}, {F_UPPER, 0, {NULL}}, {F_TITLE, 0, {NULL}},
    {F_REPLACE, 2, {"old", "new", "count", NULL}}, {F_REVERSE, 0, {NULL}}, {F_SAFE, 0, {NULL}},
    {F_STRING, 0, {NULL}}, {F_TOJSON, 0, {"ensure_ascii", "indent", "separators", "sort_keys", NULL}},
    {F_TRIM, 0, {"chars", NULL}}, {F_UNIQUE, 0, {"case_sensitive", "attribute", NULL}},
    {F_SUM, 0, {"attribute", "start", NULL}}, {F_MIN, 0, {"case_sensitive", "attribute", NULL}},
    {F_MAX, 0, {"case_sensitive", "attribute", NULL}}, {F_DICTSORT, 0, {"case_sensitive", "by", "reverse", NULL}},
    {F_WORDCOUNT, 0, {NULL}}, {F_NONE, 0, {NULL}},
};

/* =====================================================================================
 * tokens and syntax tree
 * ===================================================================================== */

enum { K_EOF, K_TEXT, K_VBEGIN, K_VEND, K_BBEGIN, K_BEND, K_NAME, K_STR, K_INT, K_FLOAT, K_OP };

typedef struct tok {
    int k, line;
    const char *s;  /* K_TEXT / K_NAME / K_OP text; K_STR: the unescaped value */
    size_t n;
    int64_t i;
    double f;
} tok;

enum {
    /* expressions */
    N_LIT, N_NAME, N_LIST, N_TUPLE, N_DICT, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER, N_TEST,
    N_NOT, N_AND, N_OR, N_NEG, N_POS, N_BIN, N_CONCAT, N_COMPARE, N_COND,
    /* statements */
    N_BODY, N_TEXT, N_PRINT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_BREAK, N_CONTINUE
};
/* N_BIN / N_COMPARE operators */
enum { OP_ADD = 1, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW,
       OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN };

typedef struct node node;
/* Children by kind:
 *   N_ATTR a.s          N_ITEM a[b] (b an N_SLICE for a[a:b:c])    N_CALL a(kids)
 *   N_FILTER a|op(kids) N_TEST a is [not] op(kids)                  N_COND a if b else c
 *   N_NOT/N_NEG/N_POS a N_AND/N_OR/N_BIN a, b                      N_COMPARE kids, ops
 *   N_IF a: b else c    N_FOR names (op of them) in a if b: c else d
 *   N_SET s[.s2] = a    N_SETBLOCK s = output of b                  N_PRINT a */
struct node {
    int kind, line;
    int op;             /* N_BIN operator; N_FILTER / N_TEST id; N_FOR number of targets */
    int neg;            /* N_TEST: `is not` */
    node *a, *b, *c, *d;
    node **kids;        /* list items, call args, body statements, compare operands */
    const char **names; /* call/filter/test keyword names (NULL: positional); N_FOR targets */
    size_t *name_lens;
    int *ops;           /* N_COMPARE: ops[i] between kids[i] and kids[i+1] */
    size_t nkids;
    const char *s;      /* name / text */
    size_t slen;
    const char *s2;     /* N_SET: attribute of a namespace target */
    size_t s2len;
    jv v;               /* N_LIT */
};

/* =====================================================================================
 * context shared by the lexer, parser and renderer
 * ===================================================================================== */

typedef struct var {
    const char *name;
    size_t len;
    jv v;
} var;

typedef struct frame {
    struct frame *up;
    size_t n, cap;
    var *vars;
} frame;

typedef struct jctx {
    arena *A;
    tw_error *err;
    const char *label;   /* prefix of every message, e.g. "chat template" or a path */
    jmp_buf jb;
    /* lexer / parser */
    tok *toks;
    size_t ntok, pos;
    int depth;
    int loops;           /* for-loop bodies open at this point (break / continue need one) */
    /* renderer */
    tw_buf *out;
    size_t out_base;
    frame *top;          /* innermost frame */
    int ctl;             /* 1 break, 2 continue */
    int64_t now;
    int line;            /* line of the node being evaluated, for messages */
    uint64_t steps;      /* evaluated nodes, against MAX_STEPS */
} jctx;

static _Noreturn __attribute__((format(printf, 4, 5)))
void fail(jctx *c, tw_status st, int line, const char *fmt, ...)
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

static void *amalloc(jctx *c, size_t n)
{
    void *p = arena_try(c->A, n);
    if (!p) fail(c, TW_ERR_NOMEM, 0, "out of memory (or over the %zu MiB limit of one template)", ARENA_LIMIT >> 20);
    return p;
}

static char *astrdup(jctx *c, const char *s, size_t n)
{
    char *p = amalloc(c, n + 1);
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- string builder in the arena (nothing to free when an error unwinds) ----------- */

typedef struct sb {
    char *p;
    size_t n, cap;
} sb;

static void sb_put(jctx *c, sb *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = amalloc(c, cap);
        if (b->n) memcpy(q, b->p, b->n);
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_puts(jctx *c, sb *b, const char *s) { sb_put(c, b, s, strlen(s)); }
static void sb_putc(jctx *c, sb *b, char ch) { sb_put(c, b, &ch, 1); }

/* ---- value constructors ------------------------------------------------------------ */

static jv v_undef(const char *name, size_t n) { jv v = {.k = V_UNDEF}; v.u.s.p = name; v.u.s.n = n; return v; }
static jv v_none(void) { jv v = {.k = V_NONE}; return v; }
static jv v_bool(bool b) { jv v = {.k = V_BOOL}; v.u.i = b; return v; }
static jv v_int(int64_t i) { jv v = {.k = V_INT}; v.u.i = i; return v; }
static jv v_float(double f) { jv v = {.k = V_FLOAT}; v.u.f = f; return v; }
static jv v_str(const char *p, size_t n) { jv v = {.k = V_STR}; v.u.s.p = p; v.u.s.n = n; return v; }
static jv v_cstr(const char *p) { return v_str(p, strlen(p)); }
static jv v_sb(sb *b) { return v_str(b->p ? b->p : "", b->n); }
static jv v_func(int id, const jv *recv) { jv v = {.k = V_FUNC}; v.fn = (uint16_t)id; v.u.recv = recv; return v; }

static jlist *list_new(jctx *c, size_t cap)
{
    jlist *l = amalloc(c, sizeof *l);
    l->n = 0;
    l->flags = 0;
    l->cap = cap ? cap : 4;
    l->v = amalloc(c, l->cap * sizeof(jv));
    return l;
}
static void list_push(jctx *c, jlist *l, jv v)
{
    if (l->n == l->cap) {
        jv *nv = amalloc(c, 2 * l->cap * sizeof(jv));
        memcpy(nv, l->v, l->n * sizeof(jv));
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
}
static jv v_list(jlist *l) { jv v = {.k = V_LIST}; v.u.l = l; return v; }

static jdict *dict_new(jctx *c, size_t cap)
{
    jdict *d = amalloc(c, sizeof *d);
    d->n = 0;
    d->flags = 0;
    d->cap = cap ? cap : 4;
    d->key = amalloc(c, d->cap * sizeof(jv));
    d->val = amalloc(c, d->cap * sizeof(jv));
    return d;
}
static jv v_dict(jdict *d) { jv v = {.k = V_DICT}; v.u.d = d; return v; }

static bool v_eq(jv a, jv b);

static jv *dict_find(const jdict *d, jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (v_eq(d->key[i], key)) return &d->val[i];
    return NULL;
}
static jv *dict_find_s(const jdict *d, const char *s, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->key[i].k == V_STR && d->key[i].u.s.n == n && memcmp(d->key[i].u.s.p, s, n) == 0)
            return &d->val[i];
    return NULL;
}
static void dict_set(jctx *c, jdict *d, jv key, jv val)
{
    jv *slot = dict_find(d, key);
    if (slot) { *slot = val; return; }
    if (d->n == d->cap) {
        jv *nk = amalloc(c, 2 * d->cap * sizeof(jv)), *nv = amalloc(c, 2 * d->cap * sizeof(jv));
        memcpy(nk, d->key, d->n * sizeof(jv));
        memcpy(nv, d->val, d->n * sizeof(jv));
        d->key = nk;
        d->val = nv;
        d->cap *= 2;
    }
    d->key[d->n] = key;
    d->val[d->n++] = val;
}
static void dict_set_s(jctx *c, jdict *d, const char *key, jv val) { dict_set(c, d, v_cstr(key), val); }

/* =====================================================================================
 * UTF-8 and Python string helpers
 * ===================================================================================== */

/* Python's str.isspace() (also what the regex \s matches on str). */
static bool py_space(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static uint32_t u8_at(const char *s, size_t n, size_t i, int *len)
{
    uint32_t cp;
    *len = tw_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    return cp;
}
/* Start of the code point that ends right before byte i (i > 0). */
static size_t u8_prev(const char *s, size_t i)
{
    do i--; while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80);
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
static jv py_strip(jv s, const char *chars, size_t nchars, bool left, bool right)
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

static size_t cp_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) k++;
    return k;
}
/* Byte offset of code point index `idx` (0 <= idx <= count). */
static size_t cp_offset(const char *s, size_t n, size_t idx)
{
    size_t i = 0;
    while (idx > 0 && i < n) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80) i++;
        idx--;
    }
    return i;
}

static const char *memfind(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}
static const char *memrfind(const char *h, size_t hn, const char *nd, size_t nn)
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

static const char *type_name(jv v)
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

static void put_str(jctx *c, sb *b, jv v)
{
    char num[48];
    switch (v.k) {
    case V_UNDEF: return;
    case V_NONE: sb_puts(c, b, "None"); return;
    case V_BOOL: sb_puts(c, b, v.u.i ? "True" : "False"); return;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); sb_puts(c, b, num); return;
    case V_FLOAT: py_float_repr(v.u.f, num); sb_puts(c, b, num); return;
    case V_STR: sb_put(c, b, v.u.s.p, v.u.s.n); return;
    default: put_repr(c, b, v, 0); return;
    }
}

static void put_str_repr(jctx *c, sb *b, const char *s, size_t n)
{
    char q = (memchr(s, '\'', n) && !memchr(s, '"', n)) ? '"' : '\'';
    sb_putc(c, b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '\\' || ch == (unsigned char)q) { sb_putc(c, b, '\\'); sb_putc(c, b, (char)ch); }
        else if (ch == '\n') sb_puts(c, b, "\\n");
        else if (ch == '\r') sb_puts(c, b, "\\r");
        else if (ch == '\t') sb_puts(c, b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) { snprintf(esc, sizeof esc, "\\x%02x", ch); sb_puts(c, b, esc); }
        else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0) {
            /* C1 controls U+0080..U+009F are not printable: \x80..\x9f */
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)s[i + 1]);
            sb_puts(c, b, esc);
            i++;
        } else sb_putc(c, b, (char)ch);
    }
    sb_putc(c, b, q);
}

static void put_repr(jctx *c, sb *b, jv v, int depth)
{
    if (depth > MAX_DEPTH) fail(c, TW_ERR_RUNTIME, c->line, "repr: nesting deeper than %d (a namespace holding itself?)", MAX_DEPTH);
    switch (v.k) {
    case V_UNDEF: sb_puts(c, b, "Undefined"); return;
    case V_STR: put_str_repr(c, b, v.u.s.p, v.u.s.n); return;
    case V_LIST: {
        bool tup = v.u.l->flags & LF_TUPLE;
        sb_putc(c, b, tup ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_puts(c, b, ", ");
            put_repr(c, b, v.u.l->v[i], depth + 1);
        }
        if (tup && v.u.l->n == 1) sb_putc(c, b, ',');
        sb_putc(c, b, tup ? ')' : ']');
        return;
    }
    case V_DICT: {
        bool ns = v.u.d->flags & DF_NAMESPACE;
        if (v.u.d->flags & DF_LOOP) {
            char t[64];
            snprintf(t, sizeof t, "<LoopContext %lld/%lld>", (long long)v.u.d->val[0].u.i, (long long)v.u.d->val[6].u.i);
            sb_puts(c, b, t);
            return;
        }
        if (ns) sb_puts(c, b, "<Namespace ");
        sb_putc(c, b, '{');
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i) sb_puts(c, b, ", ");
            put_repr(c, b, v.u.d->key[i], depth + 1);
            sb_puts(c, b, ": ");
            put_repr(c, b, v.u.d->val[i], depth + 1);
        }
        sb_putc(c, b, '}');
        if (ns) sb_putc(c, b, '>');
        return;
    }
    case V_FUNC:
        sb_puts(c, b, "<built-in method ");
        sb_puts(c, b, fn_label(v.fn));
        sb_putc(c, b, '>');
        return;
    default: put_str(c, b, v); return;
    }
}

static jv to_str(jctx *c, jv v)
{
    if (v.k == V_STR) return v;
    sb b = {0};
    put_str(c, &b, v);
    return v_sb(&b);
}

/* json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson. */
typedef struct json_opts {
    bool ensure_ascii, sort_keys;
    const char *indent;   /* NULL: single line */
    const char *item_sep, *key_sep;
} json_opts;

static void json_str(jctx *c, sb *b, const char *s, size_t n, bool ascii)
{
    sb_putc(c, b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        char esc[16];
        if (ch == '"') sb_puts(c, b, "\\\"");
        else if (ch == '\\') sb_puts(c, b, "\\\\");
        else if (ch == '\n') sb_puts(c, b, "\\n");
        else if (ch == '\r') sb_puts(c, b, "\\r");
        else if (ch == '\t') sb_puts(c, b, "\\t");
        else if (ch == '\b') sb_puts(c, b, "\\b");
        else if (ch == '\f') sb_puts(c, b, "\\f");
        else if (ch < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", ch); sb_puts(c, b, esc); }
        else if (ch >= 0x80 && ascii) {
            int len;
            uint32_t cp = u8_at(s, n, i, &len);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
            } else snprintf(esc, sizeof esc, "\\u%04x", cp);
            sb_puts(c, b, esc);
            i += (size_t)len;
            continue;
        } else sb_putc(c, b, (char)ch);
        i++;
    }
    sb_putc(c, b, '"');
}

static void json_nl(jctx *c, sb *b, const json_opts *o, int level)
{
    sb_putc(c, b, '\n');
    for (int k = 0; k < level; k++) sb_puts(c, b, o->indent);
}

static int cmp_keys(const void *x, const void *y);

static void json_dump(jctx *c, sb *b, jv v, const json_opts *o, int level)
{
    char num[48];
    if (level > MAX_DEPTH) fail(c, TW_ERR_RUNTIME, c->line, "tojson: nesting deeper than %d", MAX_DEPTH);
    switch (v.k) {
    case V_NONE: sb_puts(c, b, "null"); return;
    case V_BOOL: sb_puts(c, b, v.u.i ? "true" : "false"); return;
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.u.i); sb_puts(c, b, num); return;
    case V_FLOAT:
        if (isnan(v.u.f)) sb_puts(c, b, "NaN");
        else if (isinf(v.u.f)) sb_puts(c, b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else { py_float_repr(v.u.f, num); sb_puts(c, b, num); }
        return;
    case V_STR: json_str(c, b, v.u.s.p, v.u.s.n, o->ensure_ascii); return;
    case V_LIST:
        if (v.u.l->n == 0) { sb_puts(c, b, "[]"); return; }
        sb_putc(c, b, '[');
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i) sb_puts(c, b, o->item_sep);
            if (o->indent) json_nl(c, b, o, level + 1);
            json_dump(c, b, v.u.l->v[i], o, level + 1);
        }
        if (o->indent) json_nl(c, b, o, level);
        sb_putc(c, b, ']');
        return;
    case V_DICT: {
        const jdict *d = v.u.d;
        if (d->flags & (DF_NAMESPACE | DF_LOOP)) break;
        if (d->n == 0) { sb_puts(c, b, "{}"); return; }
        size_t *ord = amalloc(c, d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (o->sort_keys) {
            /* insertion sort on the string keys (dicts here are small) */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0 && cmp_keys(&d->key[ord[j - 1]], &d->key[ord[j]]) > 0; j--) {
                    size_t t = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = t;
                }
        }
        sb_putc(c, b, '{');
        for (size_t i = 0; i < d->n; i++) {
            jv k = d->key[ord[i]];
            if (i) sb_puts(c, b, o->item_sep);
            if (o->indent) json_nl(c, b, o, level + 1);
            if (k.k == V_STR) json_str(c, b, k.u.s.p, k.u.s.n, o->ensure_ascii);
            else if (k.k == V_INT || k.k == V_FLOAT || k.k == V_BOOL || k.k == V_NONE) {
                sb tmp = {0};
                json_dump(c, &tmp, k, o, level + 1);
                sb_putc(c, b, '"');
                sb_put(c, b, tmp.p, tmp.n);
                sb_putc(c, b, '"');
            } else fail(c, TW_ERR_RUNTIME, c->line, "tojson: keys must be str, int, float, bool or None, not %s", type_name(k));
            sb_puts(c, b, o->key_sep);
            json_dump(c, b, d->val[ord[i]], o, level + 1);
        }
        if (o->indent) json_nl(c, b, o, level);
        sb_putc(c, b, '}');
        return;
    }
    default: break;
    }
    fail(c, TW_ERR_RUNTIME, c->line, "tojson: Object of type %s is not JSON serializable", type_name(v));
}

/* =====================================================================================
 * comparisons and truth
 * ===================================================================================== */

static bool truthy(jv v)
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

static bool is_num(jv v) { return v.k == V_BOOL || v.k == V_INT || v.k == V_FLOAT; }
static double num_f(jv v) { return v.k == V_FLOAT ? v.u.f : (double)v.u.i; }

static bool v_eq(jv a, jv b)
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
            if (!v_eq(a.u.l->v[i], b.u.l->v[i])) return false;
        return true;
    case V_DICT:
        if (a.u.d == b.u.d) return true;
        if ((a.u.d->flags | b.u.d->flags) & (DF_NAMESPACE | DF_LOOP)) return false;
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = dict_find(b.u.d, a.u.d->key[i]);
            if (!o || !v_eq(a.u.d->val[i], *o)) return false;
        }
        return true;
    case V_FUNC: return a.fn == b.fn && a.u.recv == b.u.recv;
    default: return false;
    }
}

/* <0, 0, >0; fails (TypeError) for unordered types. */
static int v_cmp(jctx *c, jv a, jv b, const char *op)
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
            if (v_eq(a.u.l->v[i], b.u.l->v[i])) continue;
            return v_cmp(c, a.u.l->v[i], b.u.l->v[i], op);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    if (a.k == V_UNDEF || b.k == V_UNDEF)
        fail(c, TW_ERR_RUNTIME, c->line, "'%.*s' is undefined", (int)(a.k == V_UNDEF ? a : b).u.s.n,
             (a.k == V_UNDEF ? a : b).u.s.p);
    fail(c, TW_ERR_RUNTIME, c->line, "'%s' not supported between instances of '%s' and '%s'", op, type_name(a),
         type_name(b));
}

static int cmp_keys(const void *x, const void *y)
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

static _Noreturn void fail_undef(jctx *c, jv v)
{
    fail(c, TW_ERR_RUNTIME, c->line, "'%.*s' is undefined", (int)v.u.s.n, v.u.s.p);
}

static bool v_in(jctx *c, jv item, jv seq)
{
    switch (seq.k) {
    case V_UNDEF: return false;
    case V_STR:
        if (item.k != V_STR)
            fail(c, TW_ERR_RUNTIME, c->line, "'in <string>' requires string as left operand, not %s", type_name(item));
        return memfind(seq.u.s.p, seq.u.s.n, item.u.s.p, item.u.s.n) != NULL;
    case V_LIST:
        for (size_t i = 0; i < seq.u.l->n; i++)
            if (v_eq(item, seq.u.l->v[i])) return true;
        return false;
    case V_DICT: return dict_find(seq.u.d, item) != NULL;
    default:
        fail(c, TW_ERR_RUNTIME, c->line, "argument of type '%s' is not iterable", type_name(seq));
    }
}

/* The items a for loop / list() / join visit: list items, dict keys, string characters. */
static jlist *iter_items(jctx *c, jv v)
{
    switch (v.k) {
    case V_UNDEF: return list_new(c, 1);
    case V_LIST: return v.u.l;
    case V_DICT: {
        if (v.u.d->flags & (DF_NAMESPACE | DF_LOOP)) break;
        jlist *l = list_new(c, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) list_push(c, l, v.u.d->key[i]);
        return l;
    }
    case V_STR: {
        jlist *l = list_new(c, v.u.s.n);
        for (size_t i = 0; i < v.u.s.n;) {
            int len;
            u8_at(v.u.s.p, v.u.s.n, i, &len);
            list_push(c, l, v_str(v.u.s.p + i, (size_t)len));
            i += (size_t)len;
        }
        return l;
    }
    default: break;
    }
    fail(c, TW_ERR_RUNTIME, c->line, "'%s' object is not iterable", type_name(v));
}

static jv v_len(jctx *c, jv v)
{
    switch (v.k) {
    case V_UNDEF: return v_int(0);
    case V_STR: return v_int((int64_t)cp_count(v.u.s.p, v.u.s.n));
    case V_LIST: return v_int((int64_t)v.u.l->n);
    case V_DICT: if (!(v.u.d->flags & (DF_NAMESPACE | DF_LOOP))) return v_int((int64_t)v.u.d->n); break;
    default: break;
    }
    fail(c, TW_ERR_RUNTIME, c->line, "object of type '%s' has no len()", type_name(v));
}

/* =====================================================================================
 * lexer (jinja2 lexer.py, with trim_blocks=True and lstrip_blocks=True)
 * ===================================================================================== */

static void tok_push(jctx *c, size_t *cap, tok t)
{
    if (c->ntok == *cap) {
        tok *nt = amalloc(c, 2 * *cap * sizeof(tok));
        memcpy(nt, c->toks, c->ntok * sizeof(tok));
        c->toks = nt;
        *cap *= 2;
    }
    c->toks[c->ntok++] = t;
}

/* \s* from i (Python's Unicode whitespace). */
static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n) {
        int len;
        if (!py_space(u8_at(s, n, i, &len))) break;
        i += (size_t)len;
    }
    return i;
}

static bool all_space(const char *s, size_t n) { return skip_ws(s, n, 0) == n; }

static int count_nl(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_alpha_(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }

/* (\d+_)*\d+ from i; returns the end, or i when there is no digit. */
static size_t scan_digits(const char *s, size_t n, size_t i)
{
    if (i >= n || !is_digit(s[i])) return i;
    size_t j = i;
    for (;;) {
        while (j < n && is_digit(s[j])) j++;
        if (j + 1 < n && s[j] == '_' && is_digit(s[j + 1])) { j++; continue; }
        return j;
    }
}

static char *strip_underscores(jctx *c, const char *s, size_t n)
{
    char *o = amalloc(c, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != '_') o[k++] = s[i];
    o[k] = '\0';
    return o;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static void put_cp(jctx *c, sb *b, uint32_t cp, int line)
{
    if (cp >= 0xd800 && cp <= 0xdfff) fail(c, TW_ERR_PARSE, line, "string literal holds a lone surrogate \\u%04x", cp);
    if (cp > 0x10ffff) fail(c, TW_ERR_PARSE, line, "string literal escape \\U%08x is beyond U+10FFFF", cp);
    char u[4];
    sb_put(c, b, u, (size_t)tw_utf8_encode(cp, u));
}

/* The value of a string literal's body s[0..n): Python's unicode-escape codec applied after
 * non-ASCII characters were backslash-replaced (lexer.py wrap()). */
static jv unescape(jctx *c, const char *s, size_t n, int line)
{
    sb b = {0};
    sb_put(c, &b, "", 0);
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            size_t j = i;
            while (j < n && s[j] != '\\') j++;
            sb_put(c, &b, s + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= n) { sb_putc(c, &b, '\\'); i++; continue; }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case '\n': break;
        case '\\': sb_putc(c, &b, '\\'); break;
        case '\'': sb_putc(c, &b, '\''); break;
        case '"': sb_putc(c, &b, '"'); break;
        case 'a': sb_putc(c, &b, '\a'); break;
        case 'b': sb_putc(c, &b, '\b'); break;
        case 'f': sb_putc(c, &b, '\f'); break;
        case 'n': sb_putc(c, &b, '\n'); break;
        case 'r': sb_putc(c, &b, '\r'); break;
        case 't': sb_putc(c, &b, '\t'); break;
        case 'v': sb_putc(c, &b, '\v'); break;
        case 'x': case 'u': case 'U': {
            int want = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < want; k++) {
                int h = i + (size_t)k < n ? hexval(s[i + (size_t)k]) : -1;
                if (h < 0) fail(c, TW_ERR_PARSE, line, "truncated \\%c escape in a string literal", e);
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)want;
            put_cp(c, &b, cp, line);
            break;
        }
        case 'N': fail(c, TW_ERR_UNSUPPORTED, line, "\\N{...} escapes in string literals are not supported");
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(s[i++] - '0');
                put_cp(c, &b, cp, line);
            } else if ((unsigned char)e >= 0x80) {
                /* "\é": the é was backslash-replaced first, so the result is "\" + "\xe9" */
                int len;
                uint32_t cp = u8_at(s, n, i - 1, &len);
                char esc[16];
                snprintf(esc, sizeof esc, cp < 0x100 ? "\\x%02x" : cp < 0x10000 ? "\\u%04x" : "\\U%08x", cp);
                sb_puts(c, &b, esc);
                i = i - 1 + (size_t)len;
            } else {
                sb_putc(c, &b, '\\');
                sb_putc(c, &b, e);
            }
        }
    }
    return v_sb(&b);
}

static const char *const OPS2[] = {"//", "**", "==", "!=", ">=", "<=", NULL};
static const char OPS1[] = "+-/*%~[](){}><=.:|,;";

static void lex(jctx *c, const char *src, size_t srclen)
{
    /* newlines normalized to \n; one trailing newline dropped (keep_trailing_newline=False) */
    char *s = amalloc(c, srclen + 1);
    size_t n = 0;
    for (size_t i = 0; i < srclen; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < srclen && src[i + 1] == '\n') i++;
        } else s[n++] = src[i];
    }
    if (n > 0 && s[n - 1] == '\n') n--;
    s[n] = '\0';

    size_t cap = 256;
    c->toks = amalloc(c, cap * sizeof(tok));
    c->ntok = 0;
    size_t pos = 0;
    int line = 1;
    bool line_starting = true;
    while (pos < n) {
        size_t i = pos;
        bool found = false;
        for (; i + 1 < n; i++)
            if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) { found = true; break; }
        if (!found) {
            tok_push(c, &cap, (tok){.k = K_TEXT, .line = line, .s = s + pos, .n = n - pos});
            break;
        }
        char kind = s[i + 1];
        size_t p = i + 2;
        char sign = 0;
        if (p < n && (s[p] == '-' || s[p] == '+')) sign = s[p++];

        /* {% raw %} ... {% endraw %} */
        bool raw = false;
        size_t raw_end = 0;
        if (kind == '%') {
            size_t q = skip_ws(s, n, p);
            if (n - q >= 3 && memcmp(s + q, "raw", 3) == 0) {
                q = skip_ws(s, n, q + 3);
                if (q + 2 < n && s[q] == '-' && s[q + 1] == '%' && s[q + 2] == '}') { raw = true; raw_end = skip_ws(s, n, q + 3); }
                else if (q + 1 < n && s[q] == '%' && s[q + 1] == '}') { raw = true; raw_end = q + 2; }
            }
        }

        /* the text before the tag, with whitespace control (lexer.py OptionalLStrip) */
        size_t tb = pos, te = i;
        if (sign == '-') {
            while (te > tb) {
                size_t q = u8_prev(s, te);
                int len;
                if (!py_space(u8_at(s, te, q, &len))) break;
                te = q;
            }
        } else if (sign != '+' && kind != '{') {
            size_t lpos = te;
            while (lpos > tb && s[lpos - 1] != '\n') lpos--;
            bool has_nl = lpos > tb;
            if ((has_nl || line_starting) && lpos < te && all_space(s + lpos, te - lpos)) te = lpos;
        }
        if (te > tb) tok_push(c, &cap, (tok){.k = K_TEXT, .line = line, .s = s + tb, .n = te - tb});
        line += count_nl(s + pos, i - pos);

        if (kind == '#') {
            size_t j = p, end = 0;
            for (; j + 1 < n; j++) {
                if (j + 2 < n && (s[j] == '+' || s[j] == '-') && s[j + 1] == '#' && s[j + 2] == '}') {
                    end = s[j] == '-' ? skip_ws(s, n, j + 3) : j + 3;
                    break;
                }
                if (s[j] == '#' && s[j + 1] == '}') {
                    end = j + 2;
                    if (end < n && s[end] == '\n') end++;
                    break;
                }
            }
            if (!end) fail(c, TW_ERR_PARSE, line, "missing end of comment tag");
            line += count_nl(s + p, end - p);
            line_starting = s[end - 1] == '\n';
            pos = end;
            continue;
        }

        if (raw) {
            /* body up to {% endraw %}, itself subject to the strip rules */
            size_t j = raw_end, bend = 0, end = 0;
            char esign = 0;
            for (; j + 1 < n; j++) {
                if (s[j] != '{' || s[j + 1] != '%') continue;
                size_t q = j + 2;
                char sg = 0;
                if (q < n && (s[q] == '-' || s[q] == '+')) sg = s[q++];
                q = skip_ws(s, n, q);
                if (n - q < 6 || memcmp(s + q, "endraw", 6) != 0) continue;
                q = skip_ws(s, n, q + 6);
                if (q + 2 < n && s[q] == '+' && s[q + 1] == '%' && s[q + 2] == '}') end = q + 3;
                else if (q + 2 < n && s[q] == '-' && s[q + 1] == '%' && s[q + 2] == '}') end = skip_ws(s, n, q + 3);
                else if (q + 1 < n && s[q] == '%' && s[q + 1] == '}') {
                    end = q + 2;
                    if (end < n && s[end] == '\n') end++;
                } else continue;
                bend = j;
                esign = sg;
                break;
            }
            if (!end) fail(c, TW_ERR_PARSE, line, "missing end of raw directive");
            size_t rb = raw_end, re = bend;
            if (esign == '-') {
                while (re > rb) {
                    size_t q = u8_prev(s, re);
                    int len;
                    if (!py_space(u8_at(s, re, q, &len))) break;
                    re = q;
                }
            } else if (esign != '+') {
                size_t lpos = re;
                while (lpos > rb && s[lpos - 1] != '\n') lpos--;
                bool ls = raw_end > 0 && s[raw_end - 1] == '\n';
                if ((lpos > rb || ls) && lpos < re && all_space(s + lpos, re - lpos)) re = lpos;
            }
            if (re > rb) tok_push(c, &cap, (tok){.k = K_TEXT, .line = line, .s = s + rb, .n = re - rb});
            line += count_nl(s + p, end - p);
            line_starting = s[end - 1] == '\n';
            pos = end;
            continue;
        }

        tok_push(c, &cap, (tok){.k = kind == '%' ? K_BBEGIN : K_VBEGIN, .line = line});
        int bal = 0;
        for (;;) {
            if (p >= n)
                fail(c, TW_ERR_PARSE, line, "unexpected end of template, expected '%s'", kind == '%' ? "%}" : "}}");
            if (bal == 0) {
                size_t end = 0;
                if (kind == '%') {
                    if (p + 2 < n && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') end = p + 3;
                    else if (p + 2 < n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') end = skip_ws(s, n, p + 3);
                    else if (p + 1 < n && s[p] == '%' && s[p + 1] == '}') {
                        end = p + 2;
                        if (end < n && s[end] == '\n') end++;
                    }
                } else {
                    if (p + 2 < n && s[p] == '-' && s[p + 1] == '}' && s[p + 2] == '}') end = skip_ws(s, n, p + 3);
                    else if (p + 1 < n && s[p] == '}' && s[p + 1] == '}') end = p + 2;
                }
                if (end) {
                    tok_push(c, &cap, (tok){.k = kind == '%' ? K_BEND : K_VEND, .line = line});
                    line += count_nl(s + p, end - p);
                    line_starting = s[end - 1] == '\n';
                    pos = end;
                    break;
                }
            }
            int len;
            uint32_t cp = u8_at(s, n, p, &len);
            if (py_space(cp)) {
                line += cp == '\n';
                p += (size_t)len;
                continue;
            }
            tok t = {.line = line, .s = s + p};
            if (is_digit(s[p])) {
                size_t a = scan_digits(s, n, p), e = 0;
                if (!(p > 0 && s[p - 1] == '.')) {
                    size_t j = a;
                    if (j + 1 < n && s[j] == '.' && is_digit(s[j + 1])) j = scan_digits(s, n, j + 1);
                    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                        size_t k = j + 1;
                        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
                        size_t ee = scan_digits(s, n, k);
                        if (ee > k) e = ee;
                    }
                    if (!e && a + 1 < n && s[a] == '.' && is_digit(s[a + 1])) e = scan_digits(s, n, a + 1);
                }
                if (e) {
                    t.k = K_FLOAT;
                    t.n = e - p;
                    t.f = strtod(strip_underscores(c, s + p, e - p), NULL);
                    p = e;
                } else {
                    size_t e2;
                    int base = 10;
                    if (s[p] == '0' && p + 1 < n && strchr("xXoObB", s[p + 1]) && s[p + 1]) {
                        base = (s[p + 1] == 'x' || s[p + 1] == 'X') ? 16 : (s[p + 1] == 'o' || s[p + 1] == 'O') ? 8 : 2;
                        e2 = p + 2;
                        while (e2 < n && (s[e2] == '_' || (hexval(s[e2]) >= 0 && hexval(s[e2]) < base))) e2++;
                    } else if (s[p] == '0') {
                        e2 = p + 1;
                        while (e2 + 1 < n && s[e2] == '_' && s[e2 + 1] == '0') e2 += 2;
                        while (e2 < n && s[e2] == '0') e2++;
                    } else e2 = a;
                    const char *digits = strip_underscores(c, s + p + (base == 10 ? 0 : 2), e2 - p - (base == 10 ? 0 : 2));
                    errno = 0;
                    long long val = strtoll(digits, NULL, base);
                    if (errno) fail(c, TW_ERR_UNSUPPORTED, line, "integer literal %.*s is out of range", (int)(e2 - p), s + p);
                    t.k = K_INT;
                    t.n = e2 - p;
                    t.i = val;
                    p = e2;
                }
            } else if (is_alpha_(s[p])) {
                size_t e = p;
                while (e < n && (is_alpha_(s[e]) || is_digit(s[e]))) e++;
                t.k = K_NAME;
                t.n = e - p;
                p = e;
            } else if (s[p] == '\'' || s[p] == '"') {
                char q = s[p];
                size_t e = p + 1;
                while (e < n && s[e] != q) e += s[e] == '\\' && e + 1 < n ? 2 : 1;
                if (e >= n) fail(c, TW_ERR_PARSE, line, "unterminated string literal");
                jv v = unescape(c, s + p + 1, e - p - 1, line);
                t.k = K_STR;
                t.s = v.u.s.p;
                t.n = v.u.s.n;
                line += count_nl(s + p, e - p);
                p = e + 1;
            } else {
                size_t oplen = 0;
                for (const char *const *o = OPS2; *o; o++)
                    if (p + 1 < n && s[p] == (*o)[0] && s[p + 1] == (*o)[1]) { oplen = 2; break; }
                if (!oplen && strchr(OPS1, s[p]) && s[p]) oplen = 1;
                if (!oplen) fail(c, TW_ERR_PARSE, line, "unexpected character '%.*s'", len, s + p);
                if (oplen == 1 && (s[p] == '(' || s[p] == '[' || s[p] == '{')) bal++;
                if (oplen == 1 && (s[p] == ')' || s[p] == ']' || s[p] == '}')) {
                    if (bal == 0) fail(c, TW_ERR_PARSE, line, "unexpected '%c'", s[p]);
                    bal--;
                }
                t.k = K_OP;
                t.n = oplen;
                p += oplen;
            }
            tok_push(c, &cap, t);
        }
    }
    tok_push(c, &cap, (tok){.k = K_EOF, .line = line});
}

/* =====================================================================================
 * parser (jinja2 parser.py, the statements and expressions listed at the top)
 * ===================================================================================== */

static tok *cur(jctx *c) { return &c->toks[c->pos]; }
static tok *peek_tok(jctx *c, size_t k) { return &c->toks[c->pos + k < c->ntok ? c->pos + k : c->ntok - 1]; }
static void adv(jctx *c) { if (c->toks[c->pos].k != K_EOF) c->pos++; }

static bool tok_is(const tok *t, int k, const char *s)
{
    return t->k == k && t->n == strlen(s) && memcmp(t->s, s, t->n) == 0;
}
static bool is_op(jctx *c, const char *op) { return tok_is(cur(c), K_OP, op); }
static bool is_kw(jctx *c, const char *nm) { return tok_is(cur(c), K_NAME, nm); }

static const char *tok_desc(const tok *t, char *buf, size_t cap)
{
    switch (t->k) {
    case K_EOF: return "end of template";
    case K_TEXT: return "template text";
    case K_VBEGIN: return "'{{'";
    case K_VEND: return "end of print statement '}}'";
    case K_BBEGIN: return "'{%'";
    case K_BEND: return "end of statement block '%}'";
    case K_STR: snprintf(buf, cap, "string '%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s); return buf;
    default: snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s); return buf;
    }
}

static _Noreturn void unexpected(jctx *c, const char *wanted)
{
    char buf[80];
    fail(c, TW_ERR_PARSE, cur(c)->line, "expected %s, got %s", wanted, tok_desc(cur(c), buf, sizeof buf));
}

static void expect_op(jctx *c, const char *op)
{
    if (!is_op(c, op)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", op);
        unexpected(c, w);
    }
    adv(c);
}
static void expect_kind(jctx *c, int k, const char *what)
{
    if (cur(c)->k != k) unexpected(c, what);
    adv(c);
}

static node *mk(jctx *c, int kind, int line)
{
    node *x = amalloc(c, sizeof *x);
    memset(x, 0, sizeof *x);
    x->kind = kind;
    x->line = line;
    return x;
}

typedef struct nvec {
    node **v;
    const char **names;
    size_t *lens;
    size_t n, cap;
} nvec;

static void nv_push(jctx *c, nvec *a, node *x, const char *name, size_t len)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 4;
        node **v = amalloc(c, cap * sizeof *v);
        const char **nm = amalloc(c, cap * sizeof *nm);
        size_t *ln = amalloc(c, cap * sizeof *ln);
        if (a->n) {
            memcpy(v, a->v, a->n * sizeof *v);
            memcpy(nm, a->names, a->n * sizeof *nm);
            memcpy(ln, a->lens, a->n * sizeof *ln);
        }
        a->v = v;
        a->names = nm;
        a->lens = ln;
        a->cap = cap;
    }
    a->v[a->n] = x;
    a->names[a->n] = name;
    a->lens[a->n++] = len;
}
static void nv_attach(node *x, nvec *a)
{
    x->kids = a->v;
    x->names = a->names;
    x->name_lens = a->lens;
    x->nkids = a->n;
}

static node *parse_expression(jctx *c, bool with_condexpr);
static node *parse_tuple(jctx *c, bool with_condexpr, bool explicit_parens);
static node *parse_unary(jctx *c, bool with_filter);
static node *parse_primary(jctx *c);
static node *parse_postfix(jctx *c, node *x);

static void enter(jctx *c)
{
    if (++c->depth > MAX_DEPTH) fail(c, TW_ERR_UNSUPPORTED, cur(c)->line, "nesting deeper than %d", MAX_DEPTH);
}
static void leave(jctx *c) { c->depth--; }

/* ( args ): positional and keyword arguments. */
static void parse_call_args(jctx *c, node *x)
{
    nvec a = {0};
    expect_op(c, "(");
    while (!is_op(c, ")")) {
        if (a.n) {
            expect_op(c, ",");
            if (is_op(c, ")")) break;
        }
        if (is_op(c, "*") || is_op(c, "**"))
            fail(c, TW_ERR_UNSUPPORTED, cur(c)->line, "*args / **kwargs in calls are not supported");
        if (cur(c)->k == K_NAME && tok_is(peek_tok(c, 1), K_OP, "=")) {
            tok *nm = cur(c);
            adv(c);
            adv(c);
            nv_push(c, &a, parse_expression(c, true), nm->s, nm->n);
        } else {
            for (size_t k = 0; k < a.n; k++)
                if (a.names[k]) fail(c, TW_ERR_PARSE, cur(c)->line, "positional argument after keyword argument");
            nv_push(c, &a, parse_expression(c, true), NULL, 0);
        }
        if (a.n > MAX_ARGS) fail(c, TW_ERR_UNSUPPORTED, cur(c)->line, "more than %d arguments", MAX_ARGS);
    }
    adv(c);
    nv_attach(x, &a);
}

static node *parse_call(jctx *c, node *callee)
{
    node *x = mk(c, N_CALL, cur(c)->line);
    x->a = callee;
    /* validated here so that a template using anything else is rejected when compiled */
    if (callee->kind == N_NAME) {
        if (!fn_lookup(GLOBAL_FNS, callee->s, callee->slen))
            fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported function '%.*s()'", (int)callee->slen, callee->s);
    } else if (callee->kind == N_ATTR) {
        if (!fn_lookup(STR_METHODS, callee->s, callee->slen) && !fn_lookup(DICT_METHODS, callee->s, callee->slen) &&
            !fn_lookup(LIST_METHODS, callee->s, callee->slen))
            fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported method '.%.*s()'", (int)callee->slen, callee->s);
    } else fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported call");
    parse_call_args(c, x);
    return x;
}

static node *parse_filter(jctx *c, node *operand)
{
    node *x = mk(c, N_FILTER, cur(c)->line);
    adv(c); /* | */
    tok *nm = cur(c);
    expect_kind(c, K_NAME, "a filter name");
    if (is_op(c, ".")) fail(c, TW_ERR_UNSUPPORTED, x->line, "dotted filter names are not supported");
    x->op = fn_lookup(FILTERS, nm->s, nm->n);
    if (!x->op) fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported filter '%.*s'", (int)nm->n, nm->s);
    x->s = nm->s;
    x->slen = nm->n;
    x->a = operand;
    if (is_op(c, "(")) parse_call_args(c, x);
    return x;
}

static node *parse_test(jctx *c, node *operand)
{
    node *x = mk(c, N_TEST, cur(c)->line);
    adv(c); /* is */
    if (is_kw(c, "not")) { x->neg = 1; adv(c); }
    tok *nm = cur(c);
    expect_kind(c, K_NAME, "a test name");
    if (is_op(c, ".")) fail(c, TW_ERR_UNSUPPORTED, x->line, "dotted test names are not supported");
    x->op = fn_lookup(TESTS, nm->s, nm->n);
    if (!x->op) fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported test '%.*s'", (int)nm->n, nm->s);
    x->s = nm->s;
    x->slen = nm->n;
    x->a = operand;
    tok *t = cur(c);
    if (is_op(c, "(")) parse_call_args(c, x);
    else if ((t->k == K_NAME || t->k == K_STR || t->k == K_INT || t->k == K_FLOAT || tok_is(t, K_OP, "(") ||
              tok_is(t, K_OP, "[") || tok_is(t, K_OP, "{")) &&
             !is_kw(c, "else") && !is_kw(c, "or") && !is_kw(c, "and")) {
        if (is_kw(c, "is")) fail(c, TW_ERR_PARSE, t->line, "you cannot chain multiple tests with is");
        nvec a = {0};
        nv_push(c, &a, parse_postfix(c, parse_primary(c)), NULL, 0);
        nv_attach(x, &a);
    }
    return x;
}

/* subscript item: expression or slice a:b:c */
static node *parse_subscribed(jctx *c)
{
    int line = cur(c)->line;
    node *args[3] = {NULL, NULL, NULL};
    if (is_op(c, ":")) adv(c);
    else {
        node *e = parse_expression(c, true);
        if (!is_op(c, ":")) return e;
        adv(c);
        args[0] = e;
    }
    if (!is_op(c, ":") && !is_op(c, "]") && !is_op(c, ",")) args[1] = parse_expression(c, true);
    if (is_op(c, ":")) {
        adv(c);
        if (!is_op(c, "]") && !is_op(c, ",")) args[2] = parse_expression(c, true);
    }
    node *x = mk(c, N_SLICE, line);
    x->a = args[0];
    x->b = args[1];
    x->c = args[2];
    return x;
}

static node *parse_postfix(jctx *c, node *x)
{
    for (;;) {
        int line = cur(c)->line;
        if (is_op(c, ".")) {
            adv(c);
            tok *t = cur(c);
            if (t->k == K_NAME) {
                node *y = mk(c, N_ATTR, line);
                y->a = x;
                y->s = t->s;
                y->slen = t->n;
                adv(c);
                x = y;
            } else if (t->k == K_INT) {
                node *y = mk(c, N_ITEM, line);
                y->a = x;
                y->b = mk(c, N_LIT, line);
                y->b->v = v_int(t->i);
                adv(c);
                x = y;
            } else unexpected(c, "an attribute name");
        } else if (is_op(c, "[")) {
            adv(c);
            nvec a = {0};
            while (!is_op(c, "]")) {
                if (a.n) {
                    expect_op(c, ",");
                    if (is_op(c, "]")) break;
                }
                nv_push(c, &a, parse_subscribed(c), NULL, 0);
            }
            expect_op(c, "]");
            if (a.n == 0) fail(c, TW_ERR_PARSE, line, "expected a subscript");
            node *y = mk(c, N_ITEM, line);
            y->a = x;
            if (a.n == 1) y->b = a.v[0];
            else {
                y->b = mk(c, N_TUPLE, line);
                nv_attach(y->b, &a);
            }
            x = y;
        } else if (is_op(c, "(")) {
            x = parse_call(c, x);
        } else return x;
    }
}

static node *parse_filter_expr(jctx *c, node *x)
{
    for (;;) {
        if (is_op(c, "|")) x = parse_filter(c, x);
        else if (is_kw(c, "is")) x = parse_test(c, x);
        else if (is_op(c, "(")) x = parse_call(c, x);
        else return x;
    }
}

static node *parse_primary(jctx *c)
{
    tok *t = cur(c);
    int line = t->line;
    node *x;
    if (t->k == K_NAME) {
        x = mk(c, N_LIT, line);
        if (tok_is(t, K_NAME, "true") || tok_is(t, K_NAME, "True")) x->v = v_bool(true);
        else if (tok_is(t, K_NAME, "false") || tok_is(t, K_NAME, "False")) x->v = v_bool(false);
        else if (tok_is(t, K_NAME, "none") || tok_is(t, K_NAME, "None")) x->v = v_none();
        else {
            x->kind = N_NAME;
            x->s = t->s;
            x->slen = t->n;
        }
        adv(c);
        return x;
    }
    if (t->k == K_STR) {
        sb b = {0};
        sb_put(c, &b, "", 0);
        while (cur(c)->k == K_STR) {
            sb_put(c, &b, cur(c)->s, cur(c)->n);
            adv(c);
        }
        x = mk(c, N_LIT, line);
        x->v = v_sb(&b);
        return x;
    }
    if (t->k == K_INT || t->k == K_FLOAT) {
        x = mk(c, N_LIT, line);
        x->v = t->k == K_INT ? v_int(t->i) : v_float(t->f);
        adv(c);
        return x;
    }
    if (is_op(c, "(")) {
        adv(c);
        x = parse_tuple(c, true, true);
        expect_op(c, ")");
        return x;
    }
    if (is_op(c, "[")) {
        adv(c);
        nvec a = {0};
        while (!is_op(c, "]")) {
            if (a.n) {
                expect_op(c, ",");
                if (is_op(c, "]")) break;
            }
            nv_push(c, &a, parse_expression(c, true), NULL, 0);
        }
        expect_op(c, "]");
        x = mk(c, N_LIST, line);
        nv_attach(x, &a);
        return x;
    }
    if (is_op(c, "{")) {
        adv(c);
        nvec a = {0};
        while (!is_op(c, "}")) {
            if (a.n) {
                expect_op(c, ",");
                if (is_op(c, "}")) break;
            }
            nv_push(c, &a, parse_expression(c, true), NULL, 0);
            expect_op(c, ":");
            nv_push(c, &a, parse_expression(c, true), NULL, 0);
        }
        expect_op(c, "}");
        x = mk(c, N_DICT, line);
        nv_attach(x, &a);
        return x;
    }
    unexpected(c, "an expression");
}

static node *parse_unary(jctx *c, bool with_filter)
{
    enter(c);
    int line = cur(c)->line;
    node *x;
    if (is_op(c, "-") || is_op(c, "+")) {
        x = mk(c, is_op(c, "-") ? N_NEG : N_POS, line);
        adv(c);
        x->a = parse_unary(c, false);
    } else x = parse_primary(c);
    x = parse_postfix(c, x);
    if (with_filter) x = parse_filter_expr(c, x);
    leave(c);
    return x;
}

static node *binop(jctx *c, int op, node *a, node *b, int line)
{
    node *x = mk(c, N_BIN, line);
    x->op = op;
    x->a = a;
    x->b = b;
    return x;
}

static node *parse_pow(jctx *c)
{
    node *x = parse_unary(c, true);
    while (is_op(c, "**")) {
        int line = cur(c)->line;
        adv(c);
        x = binop(c, OP_POW, x, parse_unary(c, true), line);
    }
    return x;
}

static node *parse_math2(jctx *c)
{
    node *x = parse_pow(c);
    for (;;) {
        int op = is_op(c, "*") ? OP_MUL : is_op(c, "/") ? OP_DIV : is_op(c, "//") ? OP_FLOORDIV : is_op(c, "%") ? OP_MOD : 0;
        if (!op) return x;
        int line = cur(c)->line;
        adv(c);
        x = binop(c, op, x, parse_pow(c), line);
    }
}

static node *parse_concat(jctx *c)
{
    node *first = parse_math2(c);
    if (!is_op(c, "~")) return first;
    node *x = mk(c, N_CONCAT, cur(c)->line);
    nvec a = {0};
    nv_push(c, &a, first, NULL, 0);
    while (is_op(c, "~")) {
        adv(c);
        nv_push(c, &a, parse_math2(c), NULL, 0);
    }
    nv_attach(x, &a);
    return x;
}

static node *parse_math1(jctx *c)
{
    node *x = parse_concat(c);
    for (;;) {
        int op = is_op(c, "+") ? OP_ADD : is_op(c, "-") ? OP_SUB : 0;
        if (!op) return x;
        int line = cur(c)->line;
        adv(c);
        x = binop(c, op, x, parse_concat(c), line);
    }
}

static node *parse_compare(jctx *c)
{
    int line = cur(c)->line;
    node *first = parse_math1(c);
    nvec a = {0};
    int ops[64];
    size_t nops = 0;
    for (;;) {
        int op = is_op(c, "==") ? OP_EQ : is_op(c, "!=") ? OP_NE : is_op(c, "<") ? OP_LT : is_op(c, "<=") ? OP_LE
               : is_op(c, ">") ? OP_GT : is_op(c, ">=") ? OP_GE : 0;
        if (op) adv(c);
        else if (is_kw(c, "in")) { op = OP_IN; adv(c); }
        else if (is_kw(c, "not") && tok_is(peek_tok(c, 1), K_NAME, "in")) { op = OP_NOTIN; adv(c); adv(c); }
        else break;
        if (nops == 64) fail(c, TW_ERR_UNSUPPORTED, line, "comparison chain too long");
        if (a.n == 0) nv_push(c, &a, first, NULL, 0);
        ops[nops++] = op;
        nv_push(c, &a, parse_math1(c), NULL, 0);
    }
    if (!nops) return first;
    node *x = mk(c, N_COMPARE, line);
    nv_attach(x, &a);
    x->ops = amalloc(c, nops * sizeof(int));
    memcpy(x->ops, ops, nops * sizeof(int));
    return x;
}

static node *parse_not(jctx *c)
{
    if (is_kw(c, "not")) {
        enter(c);
        node *x = mk(c, N_NOT, cur(c)->line);
        adv(c);
        x->a = parse_not(c);
        leave(c);
        return x;
    }
    return parse_compare(c);
}

static node *parse_and(jctx *c)
{
    node *x = parse_not(c);
    while (is_kw(c, "and")) {
        node *y = mk(c, N_AND, cur(c)->line);
        adv(c);
        y->a = x;
        y->b = parse_not(c);
        x = y;
    }
    return x;
}

static node *parse_or(jctx *c)
{
    node *x = parse_and(c);
    while (is_kw(c, "or")) {
        node *y = mk(c, N_OR, cur(c)->line);
        adv(c);
        y->a = x;
        y->b = parse_and(c);
        x = y;
    }
    return x;
}

static node *parse_condexpr(jctx *c)
{
    enter(c);
    node *x = parse_or(c);
    while (is_kw(c, "if")) {
        node *y = mk(c, N_COND, cur(c)->line);
        adv(c);
        y->a = x;
        y->b = parse_or(c);
        if (is_kw(c, "else")) {
            adv(c);
            y->c = parse_condexpr(c);
        }
        x = y;
    }
    leave(c);
    return x;
}

static node *parse_expression(jctx *c, bool with_condexpr)
{
    return with_condexpr ? parse_condexpr(c) : parse_or(c);
}

/* a, b, c -> tuple; a single expression without a comma is itself. */
static node *parse_tuple(jctx *c, bool with_condexpr, bool explicit_parens)
{
    int line = cur(c)->line;
    nvec a = {0};
    bool comma = false;
    for (;;) {
        if (a.n) {
            if (!is_op(c, ",")) break;
            adv(c);
            comma = true;
        }
        tok *t = cur(c);
        if (t->k == K_VEND || t->k == K_BEND || t->k == K_EOF || tok_is(t, K_OP, ")") ||
            (a.n && (is_kw(c, "in") || is_kw(c, "if") || is_kw(c, "recursive"))))
            break;
        nv_push(c, &a, parse_expression(c, with_condexpr), NULL, 0);
    }
    if (a.n == 0 && !explicit_parens) unexpected(c, "an expression");
    if (a.n == 1 && !comma) return a.v[0];
    node *x = mk(c, N_TUPLE, line);
    nv_attach(x, &a);
    return x;
}

/* ---- statements -------------------------------------------------------------------- */

static node *parse_body(jctx *c, const char *const *ends);

/* At "{% name": is name one of ends? */
static bool at_end_tag(jctx *c, const char *const *ends)
{
    if (cur(c)->k != K_BBEGIN || !ends) return false;
    tok *t = peek_tok(c, 1);
    for (; *ends; ends++)
        if (tok_is(t, K_NAME, *ends)) return true;
    return false;
}

/* Consume "{% name %}". */
static void expect_tag(jctx *c, const char *name)
{
    expect_kind(c, K_BBEGIN, "'{%'");
    if (!is_kw(c, name)) {
        char w[40];
        snprintf(w, sizeof w, "'%s'", name);
        unexpected(c, w);
    }
    adv(c);
    expect_kind(c, K_BEND, "end of statement block '%}'");
}

static node *parse_for(jctx *c, int line)
{
    node *x = mk(c, N_FOR, line);
    nvec names = {0};
    bool paren = is_op(c, "(");
    if (paren) adv(c);
    for (;;) {
        tok *t = cur(c);
        expect_kind(c, K_NAME, "a loop variable name");
        nv_push(c, &names, NULL, t->s, t->n);
        if (!is_op(c, ",")) break;
        adv(c);
    }
    if (paren) expect_op(c, ")");
    x->names = names.names;
    x->name_lens = names.lens;
    x->op = (int)names.n;  /* number of loop targets */
    if (!is_kw(c, "in")) unexpected(c, "'in'");
    adv(c);
    x->a = parse_tuple(c, false, false);
    if (is_kw(c, "recursive")) fail(c, TW_ERR_UNSUPPORTED, line, "recursive for loops are not supported");
    if (is_kw(c, "if")) {
        adv(c);
        x->b = parse_expression(c, true);
    }
    expect_kind(c, K_BEND, "end of statement block '%}'");
    static const char *const body_ends[] = {"endfor", "else", NULL};
    static const char *const else_ends[] = {"endfor", NULL};
    c->loops++;
    x->c = parse_body(c, body_ends);
    c->loops--;
    if (tok_is(peek_tok(c, 1), K_NAME, "else")) {
        expect_tag(c, "else");
        x->d = parse_body(c, else_ends);
    }
    expect_tag(c, "endfor");
    return x;
}

static node *parse_if(jctx *c, int line)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const else_ends[] = {"endif", NULL};
    node *x = mk(c, N_IF, line);
    x->a = parse_tuple(c, false, false);
    expect_kind(c, K_BEND, "end of statement block '%}'");
    x->b = parse_body(c, ends);
    tok *t = peek_tok(c, 1);
    if (tok_is(t, K_NAME, "elif")) {
        int l2 = cur(c)->line;
        adv(c);
        adv(c);
        x->c = parse_if(c, l2);  /* consumes through endif */
        return x;
    }
    if (tok_is(t, K_NAME, "else")) {
        expect_tag(c, "else");
        x->c = parse_body(c, else_ends);
    }
    expect_tag(c, "endif");
    return x;
}

static node *parse_set(jctx *c, int line)
{
    node *x = mk(c, N_SET, line);
    tok *t = cur(c);
    expect_kind(c, K_NAME, "a variable name");
    x->s = t->s;
    x->slen = t->n;
    if (is_op(c, ".")) {
        adv(c);
        tok *a = cur(c);
        expect_kind(c, K_NAME, "an attribute name");
        x->s2 = a->s;
        x->s2len = a->n;
    }
    if (is_op(c, ",")) fail(c, TW_ERR_UNSUPPORTED, line, "tuple assignment in set is not supported");
    if (is_op(c, "=")) {
        adv(c);
        x->a = parse_tuple(c, true, false);
        expect_kind(c, K_BEND, "end of statement block '%}'");
        return x;
    }
    if (is_op(c, "|")) fail(c, TW_ERR_UNSUPPORTED, line, "filtered block set is not supported");
    expect_kind(c, K_BEND, "'=' or end of statement block '%}'");
    static const char *const ends[] = {"endset", NULL};
    x->kind = N_SETBLOCK;
    x->b = parse_body(c, ends);
    expect_tag(c, "endset");
    return x;
}

static node *parse_statement(jctx *c)
{
    int line = cur(c)->line;
    adv(c); /* {% */
    tok *t = cur(c);
    if (t->k != K_NAME) unexpected(c, "a statement name");
    adv(c);
    enter(c);
    node *x;
    if (tok_is(t, K_NAME, "for")) x = parse_for(c, line);
    else if (tok_is(t, K_NAME, "if")) x = parse_if(c, line);
    else if (tok_is(t, K_NAME, "set")) x = parse_set(c, line);
    else if (tok_is(t, K_NAME, "break") || tok_is(t, K_NAME, "continue")) {
        x = mk(c, tok_is(t, K_NAME, "break") ? N_BREAK : N_CONTINUE, line);
        if (c->loops == 0) fail(c, TW_ERR_PARSE, line, "'%.*s' outside of a for loop", (int)t->n, t->s);
        expect_kind(c, K_BEND, "end of statement block '%}'");
    } else if (tok_is(t, K_NAME, "generation")) {
        /* transformers' AssistantTracker: the body renders as is */
        static const char *const ends[] = {"endgeneration", NULL};
        expect_kind(c, K_BEND, "end of statement block '%}'");
        x = parse_body(c, ends);
        expect_tag(c, "endgeneration");
    } else {
        static const char *const known_end[] = {"endfor", "endif", "else", "elif", "endset", "endgeneration", "endraw", NULL};
        for (const char *const *e = known_end; *e; e++)
            if (tok_is(t, K_NAME, *e))
                fail(c, TW_ERR_PARSE, line, "unexpected '%.*s' (no block is open that it could close)", (int)t->n, t->s);
        fail(c, TW_ERR_UNSUPPORTED, line, "unsupported Jinja tag '%.*s'", (int)t->n, t->s);
    }
    leave(c);
    return x;
}

static node *parse_body(jctx *c, const char *const *ends)
{
    node *body = mk(c, N_BODY, cur(c)->line);
    nvec a = {0};
    for (;;) {
        tok *t = cur(c);
        if (t->k == K_EOF) {
            if (ends) fail(c, TW_ERR_PARSE, t->line, "unexpected end of template: missing '{%% %s %%}'", ends[0]);
            break;
        }
        if (at_end_tag(c, ends)) break;
        if (t->k == K_TEXT) {
            node *x = mk(c, N_TEXT, t->line);
            x->s = t->s;
            x->slen = t->n;
            nv_push(c, &a, x, NULL, 0);
            adv(c);
        } else if (t->k == K_VBEGIN) {
            node *x = mk(c, N_PRINT, t->line);
            adv(c);
            x->a = parse_tuple(c, true, false);
            expect_kind(c, K_VEND, "end of print statement '}}'");
            nv_push(c, &a, x, NULL, 0);
        } else if (t->k == K_BBEGIN) {
            nv_push(c, &a, parse_statement(c), NULL, 0);
        } else unexpected(c, "template text or a tag");
    }
    nv_attach(body, &a);
    return body;
}

/* =====================================================================================
 * evaluation
 * ===================================================================================== */

static jv *lookup(jctx *c, const char *s, size_t n)
{
    for (frame *f = c->top; f; f = f->up)
        for (size_t i = f->n; i-- > 0;)
            if (f->vars[i].len == n && memcmp(f->vars[i].name, s, n) == 0) return &f->vars[i].v;
    return NULL;
}

static void frame_set(jctx *c, frame *f, const char *s, size_t n, jv v)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->vars[i].len == n && memcmp(f->vars[i].name, s, n) == 0) { f->vars[i].v = v; return; }
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 8;
        var *nv = amalloc(c, cap * sizeof(var));
        if (f->n) memcpy(nv, f->vars, f->n * sizeof(var));
        f->vars = nv;
        f->cap = cap;
    }
    f->vars[f->n++] = (var){s, n, v};
}

static jv eval(jctx *c, const node *x);

static jv getattr_v(jctx *c, jv obj, const char *name, size_t n)
{
    int id;
    jv *slot;
    switch (obj.k) {
    case V_UNDEF: fail_undef(c, obj);
    case V_STR:
        if ((id = fn_lookup(STR_METHODS, name, n))) goto bound;
        break;
    case V_DICT:
        if (!(obj.u.d->flags & (DF_NAMESPACE | DF_LOOP)) && (id = fn_lookup(DICT_METHODS, name, n))) goto bound;
        if ((slot = dict_find_s(obj.u.d, name, n))) return *slot;
        break;
    case V_LIST:
        if ((id = fn_lookup(LIST_METHODS, name, n))) goto bound;
        break;
    default: break;
    }
    return v_undef(name, n);
bound:;
    jv *recv = amalloc(c, sizeof *recv);
    *recv = obj;
    return v_func(id, recv);
}

/* Python index semantics (negative from the end); -1 when out of range. */
static int64_t norm_index(jv key, size_t len)
{
    int64_t i = key.u.i;
    if (i < 0) i += (int64_t)len;
    return (i < 0 || i >= (int64_t)len) ? -1 : i;
}

static jv getitem_v(jctx *c, jv obj, jv key)
{
    switch (obj.k) {
    case V_UNDEF: fail_undef(c, obj);
    case V_DICT: {
        jv *slot = dict_find(obj.u.d, key);
        if (slot) return *slot;
        if (key.k == V_STR) return getattr_v(c, obj, key.u.s.p, key.u.s.n);
        break;
    }
    case V_LIST:
        if (key.k == V_INT || key.k == V_BOOL) {
            int64_t i = norm_index(key, obj.u.l->n);
            if (i >= 0) return obj.u.l->v[i];
        } else if (key.k == V_STR) return getattr_v(c, obj, key.u.s.p, key.u.s.n);
        break;
    case V_STR:
        if (key.k == V_INT || key.k == V_BOOL) {
            int64_t i = norm_index(key, cp_count(obj.u.s.p, obj.u.s.n));
            if (i >= 0) {
                size_t b = cp_offset(obj.u.s.p, obj.u.s.n, (size_t)i);
                int len;
                u8_at(obj.u.s.p, obj.u.s.n, b, &len);
                return v_str(obj.u.s.p + b, (size_t)len);
            }
        } else if (key.k == V_STR) return getattr_v(c, obj, key.u.s.p, key.u.s.n);
        break;
    default: break;
    }
    if (key.k == V_STR) return v_undef(key.u.s.p, key.u.s.n);
    return v_undef("[item]", 6);
}

/* A slice bound; NULL / None: not given. jinja2 compiles slices to a plain Python
 * subscript (they bypass environment.getitem), so a bad bound or a value that cannot be
 * sliced is a TypeError, not an undefined value. */
static int64_t slice_arg(jctx *c, const node *x, bool *given)
{
    *given = false;
    if (!x) return 0;
    jv v = eval(c, x);
    if (v.k == V_NONE) return 0;
    if (v.k != V_INT && v.k != V_BOOL)
        fail(c, TW_ERR_RUNTIME, x->line, "slice indices must be integers or None, not %s", type_name(v));
    *given = true;
    return v.u.i;
}

static jv slice_v(jctx *c, jv obj, const node *sl)
{
    bool g0, g1, g2;
    if (obj.k == V_UNDEF) fail_undef(c, obj);
    if (obj.k != V_LIST && obj.k != V_STR)
        fail(c, TW_ERR_RUNTIME, sl->line, "'%s' object is not subscriptable", type_name(obj));
    int64_t start = slice_arg(c, sl->a, &g0), stop = slice_arg(c, sl->b, &g1), step = slice_arg(c, sl->c, &g2);
    if (!g2) step = 1;
    if (step == 0) fail(c, TW_ERR_RUNTIME, sl->line, "slice step cannot be zero");
    int64_t len = obj.k == V_LIST ? (int64_t)obj.u.l->n : (int64_t)cp_count(obj.u.s.p, obj.u.s.n);
    /* slice.indices(len) */
    int64_t lower = step > 0 ? 0 : -1, upper = step > 0 ? len : len - 1;
    if (!g0) start = step > 0 ? lower : upper;
    else {
        if (start < 0) start += len;
        if (start < lower) start = lower;
        if (start > upper) start = upper;
    }
    if (!g1) stop = step > 0 ? upper : lower;
    else {
        if (stop < 0) stop += len;
        if (stop < lower) stop = lower;
        if (stop > upper) stop = upper;
    }
    if (obj.k == V_LIST) {
        jlist *l = list_new(c, 4);
        l->flags = obj.u.l->flags;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) list_push(c, l, obj.u.l->v[i]);
        return v_list(l);
    }
    const char *p = obj.u.s.p;
    size_t n = obj.u.s.n;
    if (step == 1) {
        if (stop <= start) return v_str("", 0);
        size_t b = cp_offset(p, n, (size_t)start);
        size_t e = b + cp_offset(p + b, n - b, (size_t)(stop - start));
        return v_str(p + b, e - b);
    }
    /* general step: code point offsets first */
    size_t *offs = amalloc(c, ((size_t)len + 1) * sizeof(size_t));
    for (size_t i = 0, k = 0; k <= (size_t)len; k++) {
        offs[k] = i;
        if (i < n) {
            i++;
            while (i < n && ((unsigned char)p[i] & 0xc0) == 0x80) i++;
        }
    }
    sb b = {0};
    sb_put(c, &b, "", 0);
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) sb_put(c, &b, p + offs[i], offs[i + 1] - offs[i]);
    return v_sb(&b);
}

/* ---- arguments --------------------------------------------------------------------- */

typedef struct args {
    size_t npos, nkw;
    jv pos[MAX_ARGS];
    const char *kwn[MAX_ARGS];
    size_t kwl[MAX_ARGS];
    jv kwv[MAX_ARGS];
} args;

static void eval_args(jctx *c, const node *x, args *a)
{
    a->npos = a->nkw = 0;
    for (size_t i = 0; i < x->nkids; i++) {
        jv v = eval(c, x->kids[i]);
        if (x->names[i]) {
            a->kwn[a->nkw] = x->names[i];
            a->kwl[a->nkw] = x->name_lens[i];
            a->kwv[a->nkw++] = v;
        } else a->pos[a->npos++] = v;
    }
}

/* Argument `idx` (positional) or `name` (keyword); `def` when absent. */
static jv arg(const args *a, size_t idx, const char *name, jv def)
{
    if (idx < a->npos) return a->pos[idx];
    size_t n = strlen(name);
    for (size_t k = 0; k < a->nkw; k++)
        if (a->kwl[k] == n && memcmp(a->kwn[k], name, n) == 0) return a->kwv[k];
    return def;
}

static jv want_str(jctx *c, jv v, const char *what)
{
    if (v.k == V_UNDEF) fail_undef(c, v);
    if (v.k != V_STR) fail(c, TW_ERR_RUNTIME, c->line, "%s must be a string, not %s", what, type_name(v));
    return v;
}
static int64_t want_int(jctx *c, jv v, const char *what)
{
    if (v.k == V_UNDEF) fail_undef(c, v);
    if (v.k != V_INT && v.k != V_BOOL) fail(c, TW_ERR_RUNTIME, c->line, "%s must be an integer, not %s", what, type_name(v));
    return v.u.i;
}

/* ---- string methods ------------------------------------------------------------------ */

/* mode 0 upper, 1 lower, 2 str.title() (a word starts after a non-letter), 3 capitalize,
 * 4 jinja2's title filter (a word starts after a run of - whitespace ( { [ <). */
static jv str_case(jctx *c, jv s, int mode)
{
    char *o = amalloc(c, s.u.s.n + 1);
    bool prev_cased = false, word_start = true;
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        bool lo = ch >= 'a' && ch <= 'z', up = ch >= 'A' && ch <= 'Z';
        bool sep = strchr("-({[< \t\n\r\v\f", ch) != NULL && ch != '\0';
        bool to_up = mode == 0 || (mode == 2 && !prev_cased) || (mode == 3 && i == 0) || (mode == 4 && word_start && !sep);
        word_start = sep;
        if (to_up && lo) ch = (char)(ch - 32);
        else if (!to_up && up) ch = (char)(ch + 32);
        prev_cased = lo || up;
        o[i] = ch;
    }
    o[s.u.s.n] = '\0';
    return v_str(o, s.u.s.n);
}

static jv str_replace(jctx *c, jv s, jv old, jv nw, int64_t count)
{
    sb b = {0};
    sb_put(c, &b, "", 0);
    const char *p = s.u.s.p, *end = p + s.u.s.n;
    if (old.u.s.n == 0) {
        /* Python inserts `new` before every character and at the end */
        int64_t k = 0;
        while (p <= end) {
            if (count < 0 || k < count) { sb_put(c, &b, nw.u.s.p, nw.u.s.n); k++; }
            if (p == end) break;
            int len;
            u8_at(p, (size_t)(end - p), 0, &len);
            sb_put(c, &b, p, (size_t)len);
            p += len;
        }
        return v_sb(&b);
    }
    int64_t k = 0;
    for (;;) {
        const char *q = (count < 0 || k < count) ? memfind(p, (size_t)(end - p), old.u.s.p, old.u.s.n) : NULL;
        if (!q) { sb_put(c, &b, p, (size_t)(end - p)); break; }
        sb_put(c, &b, p, (size_t)(q - p));
        sb_put(c, &b, nw.u.s.p, nw.u.s.n);
        p = q + old.u.s.n;
        k++;
    }
    return v_sb(&b);
}

/* str.split / str.rsplit */
static jv str_split(jctx *c, jv s, jv sep, int64_t maxsplit, bool from_right)
{
    jlist *l = list_new(c, 4);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    if (sep.k == V_NONE || sep.k == V_UNDEF) {
        /* runs of whitespace; no empty strings */
        if (!from_right || maxsplit < 0) {
            size_t i = 0;
            int64_t k = 0;
            for (;;) {
                i = skip_ws(p, n, i);
                if (i >= n) break;
                if (maxsplit >= 0 && k >= maxsplit) { list_push(c, l, v_str(p + i, n - i)); break; }
                size_t j = i;
                while (j < n) {
                    int len;
                    if (py_space(u8_at(p, n, j, &len))) break;
                    j += (size_t)len;
                }
                list_push(c, l, v_str(p + i, j - i));
                k++;
                i = j;
            }
            return v_list(l);
        }
        /* rsplit(None, k): from the right, then reverse */
        size_t e = n;
        int64_t k = 0;
        for (;;) {
            while (e > 0) {
                size_t q = u8_prev(p, e);
                int len;
                if (!py_space(u8_at(p, e, q, &len))) break;
                e = q;
            }
            if (e == 0) break;
            if (k >= maxsplit) { list_push(c, l, v_str(p, e)); break; }
            size_t b = e;
            while (b > 0) {
                size_t q = u8_prev(p, b);
                int len;
                if (py_space(u8_at(p, b, q, &len))) break;
                b = q;
            }
            list_push(c, l, v_str(p + b, e - b));
            k++;
            e = b;
        }
    } else {
        want_str(c, sep, "split separator");
        if (sep.u.s.n == 0) fail(c, TW_ERR_RUNTIME, c->line, "empty separator");
        if (!from_right) {
            size_t i = 0;
            int64_t k = 0;
            for (;;) {
                const char *q = (maxsplit < 0 || k < maxsplit) ? memfind(p + i, n - i, sep.u.s.p, sep.u.s.n) : NULL;
                if (!q) { list_push(c, l, v_str(p + i, n - i)); break; }
                list_push(c, l, v_str(p + i, (size_t)(q - (p + i))));
                i = (size_t)(q - p) + sep.u.s.n;
                k++;
            }
            return v_list(l);
        }
        size_t e = n;
        int64_t k = 0;
        for (;;) {
            const char *q = (maxsplit < 0 || k < maxsplit) ? memrfind(p, e, sep.u.s.p, sep.u.s.n) : NULL;
            if (!q) { list_push(c, l, v_str(p, e)); break; }
            size_t b = (size_t)(q - p) + sep.u.s.n;
            list_push(c, l, v_str(p + b, e - b));
            e = (size_t)(q - p);
            k++;
        }
    }
    for (size_t i = 0; i < l->n / 2; i++) {
        jv t = l->v[i];
        l->v[i] = l->v[l->n - 1 - i];
        l->v[l->n - 1 - i] = t;
    }
    return v_list(l);
}

static bool affix_match(jctx *c, jv s, jv affix, bool end)
{
    if (affix.k == V_LIST) {
        for (size_t i = 0; i < affix.u.l->n; i++)
            if (affix_match(c, s, affix.u.l->v[i], end)) return true;
        return false;
    }
    want_str(c, affix, end ? "endswith argument" : "startswith argument");
    if (affix.u.s.n > s.u.s.n) return false;
    return memcmp(s.u.s.p + (end ? s.u.s.n - affix.u.s.n : 0), affix.u.s.p, affix.u.s.n) == 0;
}

static jv join_items(jctx *c, jv sep, jlist *items)
{
    sb b = {0};
    sb_put(c, &b, "", 0);
    for (size_t i = 0; i < items->n; i++) {
        if (i) sb_put(c, &b, sep.u.s.p, sep.u.s.n);
        put_str(c, &b, items->v[i]);
    }
    return v_sb(&b);
}

static jv items_list(jctx *c, const jdict *d)
{
    jlist *l = list_new(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
        jlist *t = list_new(c, 2);
        t->flags = LF_TUPLE;
        list_push(c, t, d->key[i]);
        list_push(c, t, d->val[i]);
        list_push(c, l, v_list(t));
    }
    return v_list(l);
}

/* Python str.splitlines() (without keepends). */
static jlist *splitlines(jctx *c, jv s)
{
    jlist *l = list_new(c, 4);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0, start = 0;
    while (i < n) {
        int len;
        uint32_t cp = u8_at(p, n, i, &len);
        bool br = cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' || (cp >= 0x1c && cp <= 0x1e) || cp == 0x85 ||
                  cp == 0x2028 || cp == 0x2029;
        if (br) {
            list_push(c, l, v_str(p + start, i - start));
            i += (size_t)len;
            if (cp == '\r' && i < n && p[i] == '\n') i++;
            start = i;
        } else i += (size_t)len;
    }
    if (start < n) list_push(c, l, v_str(p + start, n - start));
    return l;
}

static jv strftime_v(jctx *c, jv fmt)
{
    want_str(c, fmt, "strftime_now format");
    time_t t = (time_t)c->now;
    struct tm tmv;
    if (!localtime_r(&t, &tmv)) fail(c, TW_ERR_RUNTIME, c->line, "strftime_now: cannot convert the time");
    char out[512];
    const char *f = astrdup(c, fmt.u.s.p, fmt.u.s.n);
    size_t n = strftime(out, sizeof out, f, &tmv);
    if (n == 0 && fmt.u.s.n > 0) fail(c, TW_ERR_RUNTIME, c->line, "strftime_now: format gives more than %zu bytes", sizeof out);
    return v_str(astrdup(c, out, n), n);
}

static jv make_dict(jctx *c, const args *a, int flags)
{
    jdict *d = dict_new(c, 4);
    d->flags = flags;
    if (a->npos > 1) fail(c, TW_ERR_RUNTIME, c->line, "expected at most 1 positional argument, got %zu", a->npos);
    if (a->npos == 1) {
        jv src = a->pos[0];
        if (src.k != V_DICT) fail(c, TW_ERR_RUNTIME, c->line, "expected a mapping, got %s", type_name(src));
        for (size_t i = 0; i < src.u.d->n; i++) dict_set(c, d, src.u.d->key[i], src.u.d->val[i]);
    }
    for (size_t k = 0; k < a->nkw; k++) {
        if ((flags & DF_NAMESPACE) && a->kwl[k] > 0 && a->kwn[k][0] == '_')
            fail(c, TW_ERR_RUNTIME, c->line, "namespace attributes cannot start with '_'");
        dict_set(c, d, v_str(a->kwn[k], a->kwl[k]), a->kwv[k]);
    }
    return v_dict(d);
}

static jv call_fn(jctx *c, jv f, const args *a)
{
    jv self = f.u.recv ? *f.u.recv : v_none();
    jv none = v_none();
    switch (f.fn) {
    case G_RANGE: {
        int64_t start = 0, stop, step = 1;
        if (a->npos == 1) stop = want_int(c, a->pos[0], "range() argument");
        else if (a->npos == 2 || a->npos == 3) {
            start = want_int(c, a->pos[0], "range() argument");
            stop = want_int(c, a->pos[1], "range() argument");
            if (a->npos == 3) step = want_int(c, a->pos[2], "range() argument");
        } else fail(c, TW_ERR_RUNTIME, c->line, "range expected 1 to 3 arguments, got %zu", a->npos);
        if (step == 0) fail(c, TW_ERR_RUNTIME, c->line, "range() arg 3 must not be zero");
        jlist *l = list_new(c, 4);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (l->n >= MAX_RANGE) fail(c, TW_ERR_RUNTIME, c->line, "range() longer than %d items", MAX_RANGE);
            list_push(c, l, v_int(i));
        }
        return v_list(l);
    }
    case G_NAMESPACE: return make_dict(c, a, DF_NAMESPACE);
    case G_DICT: return make_dict(c, a, 0);
    case G_RAISE: {
        jv msg = to_str(c, arg(a, 0, "message", v_str("", 0)));
        fail(c, TW_ERR_INVALID, 0, "the template rejects this conversation: %.*s", (int)msg.u.s.n, msg.u.s.p);
    }
    case G_STRFTIME: return strftime_v(c, arg(a, 0, "format", v_undef("format", 6)));
    case M_STARTSWITH: case M_ENDSWITH:
        if (a->npos != 1) fail(c, TW_ERR_UNSUPPORTED, c->line, "%s() takes exactly one argument here", fn_label(f.fn));
        return v_bool(affix_match(c, self, a->pos[0], f.fn == M_ENDSWITH));
    case M_SPLIT: case M_RSPLIT:
        return str_split(c, self, arg(a, 0, "sep", none), want_int(c, arg(a, 1, "maxsplit", v_int(-1)), "maxsplit"),
                         f.fn == M_RSPLIT);
    case M_STRIP: case M_LSTRIP: case M_RSTRIP: {
        jv ch = arg(a, 0, "chars", none);
        if (ch.k == V_NONE) return py_strip(self, NULL, 0, f.fn != M_RSTRIP, f.fn != M_LSTRIP);
        want_str(c, ch, "strip argument");
        return py_strip(self, ch.u.s.p, ch.u.s.n, f.fn != M_RSTRIP, f.fn != M_LSTRIP);
    }
    case M_UPPER: return str_case(c, self, 0);
    case M_LOWER: return str_case(c, self, 1);
    case M_TITLE: return str_case(c, self, 2);
    case M_CAPITALIZE: return str_case(c, self, 3);
    case M_REPLACE:
        return str_replace(c, self, want_str(c, arg(a, 0, "old", v_undef("old", 3)), "replace argument"),
                           want_str(c, arg(a, 1, "new", v_undef("new", 3)), "replace argument"),
                           want_int(c, arg(a, 2, "count", v_int(-1)), "count"));
    case M_FIND: case M_RFIND: {
        jv sub = want_str(c, arg(a, 0, "sub", v_undef("sub", 3)), "find argument");
        const char *q = f.fn == M_FIND ? memfind(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n)
                                       : memrfind(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n);
        return v_int(q ? (int64_t)cp_count(self.u.s.p, (size_t)(q - self.u.s.p)) : -1);
    }
    case M_COUNT: {
        jv sub = want_str(c, arg(a, 0, "sub", v_undef("sub", 3)), "count argument");
        if (sub.u.s.n == 0) return v_int((int64_t)cp_count(self.u.s.p, self.u.s.n) + 1);
        int64_t k = 0;
        const char *p = self.u.s.p, *end = p + self.u.s.n, *q;
        while ((q = memfind(p, (size_t)(end - p), sub.u.s.p, sub.u.s.n))) { k++; p = q + sub.u.s.n; }
        return v_int(k);
    }
    case M_JOIN: {
        jlist *items = iter_items(c, arg(a, 0, "iterable", v_undef("iterable", 8)));
        for (size_t i = 0; i < items->n; i++)
            if (items->v[i].k != V_STR)
                fail(c, TW_ERR_RUNTIME, c->line, "sequence item %zu: expected str instance, %s found", i, type_name(items->v[i]));
        return join_items(c, self, items);
    }
    case M_SPLITLINES: return v_list(splitlines(c, self));
    case M_ITEMS: return items_list(c, self.u.d);
    case M_KEYS: case M_VALUES: {
        jlist *l = list_new(c, self.u.d->n);
        for (size_t i = 0; i < self.u.d->n; i++) list_push(c, l, f.fn == M_KEYS ? self.u.d->key[i] : self.u.d->val[i]);
        return v_list(l);
    }
    case M_GET: {
        jv *slot = dict_find(self.u.d, arg(a, 0, "key", v_undef("key", 3)));
        return slot ? *slot : arg(a, 1, "default", none);
    }
    case M_LCOUNT: {
        jv x = arg(a, 0, "value", v_undef("value", 5));
        int64_t k = 0;
        for (size_t i = 0; i < self.u.l->n; i++) k += v_eq(self.u.l->v[i], x);
        return v_int(k);
    }
    case M_INDEX: {
        jv x = arg(a, 0, "value", v_undef("value", 5));
        for (size_t i = 0; i < self.u.l->n; i++)
            if (v_eq(self.u.l->v[i], x)) return v_int((int64_t)i);
        fail(c, TW_ERR_RUNTIME, c->line, "list.index(x): x not in list");
    }
    default:
        fail(c, TW_ERR_UNSUPPORTED, c->line, "'%s' is not callable here", fn_label(f.fn));
    }
}

/* ---- tests ----------------------------------------------------------------------- */

static bool run_test(jctx *c, int id, jv v, const args *a)
{
    jv x = a->npos ? a->pos[0] : v_undef("argument", 8);
    switch (id) {
    case T_DEFINED: return v.k != V_UNDEF;
    case T_UNDEFINED: return v.k == V_UNDEF;
    case T_NONE: return v.k == V_NONE;
    case T_TRUE: return v.k == V_BOOL && v.u.i;
    case T_FALSE: return v.k == V_BOOL && !v.u.i;
    case T_BOOLEAN: return v.k == V_BOOL;
    case T_STRING: return v.k == V_STR;
    case T_NUMBER: return is_num(v);
    case T_INTEGER: return v.k == V_INT;
    case T_FLOAT: return v.k == V_FLOAT;
    case T_MAPPING: return v.k == V_DICT && !(v.u.d->flags & (DF_NAMESPACE | DF_LOOP));
    case T_ITERABLE: return v.k == V_UNDEF || v.k == V_STR || v.k == V_LIST || (v.k == V_DICT && !(v.u.d->flags & DF_NAMESPACE));
    case T_SEQUENCE: return v.k == V_UNDEF || v.k == V_STR || v.k == V_LIST || (v.k == V_DICT && !(v.u.d->flags & (DF_NAMESPACE | DF_LOOP)));
    case T_CALLABLE: return v.k == V_FUNC || v.k == V_UNDEF;  /* jinja2's Undefined defines __call__ */
    case T_EQ: return v_eq(v, x);
    case T_NE: return !v_eq(v, x);
    case T_LT: return v_cmp(c, v, x, "<") < 0;
    case T_LE: return v_cmp(c, v, x, "<=") <= 0;
    case T_GT: return v_cmp(c, v, x, ">") > 0;
    case T_GE: return v_cmp(c, v, x, ">=") >= 0;
    case T_IN: return v_in(c, v, x);
    case T_SAMEAS:
        if (v.k != x.k) return false;
        if (v.k == V_LIST) return v.u.l == x.u.l;
        if (v.k == V_DICT) return v.u.d == x.u.d;
        return v_eq(v, x);
    case T_ODD: return (want_int(c, v, "odd test value") & 1) != 0;
    case T_EVEN: return (want_int(c, v, "even test value") & 1) == 0;
    case T_DIVISIBLEBY: {
        int64_t d = want_int(c, x, "divisibleby argument");
        if (d == 0) fail(c, TW_ERR_RUNTIME, c->line, "integer division or modulo by zero");
        return want_int(c, v, "divisibleby value") % d == 0;
    }
    case T_LOWER: case T_UPPER: {
        jv s = to_str(c, v);
        bool cased = false;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            if (ch >= 'a' && ch <= 'z') { if (id == T_UPPER) return false; cased = true; }
            if (ch >= 'A' && ch <= 'Z') { if (id == T_LOWER) return false; cased = true; }
        }
        return cased;
    }
    case T_ESCAPED: return false;
    default: fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported test");
    }
}

/* Extra arguments each test takes (jinja2 tests.py): the comparisons take one. */
static size_t test_arity(int id)
{
    switch (id) {
    case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE: case T_IN: case T_SAMEAS: case T_DIVISIBLEBY: return 1;
    default: return 0;
    }
}

static void check_test_args(jctx *c, int id, const args *a)
{
    size_t want = test_arity(id), got = a->npos + a->nkw;
    if (got != want)
        fail(c, TW_ERR_RUNTIME, c->line, "test '%s' takes %zu argument%s, got %zu", fn_label_test(id), want, want == 1 ? "" : "s", got);
}

/* Test by name (select/reject/selectattr). */
static bool run_named_test(jctx *c, jv name, jv v, const args *a, size_t first_arg)
{
    want_str(c, name, "test name");
    int id = fn_lookup(TESTS, name.u.s.p, name.u.s.n);
    if (!id) fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported test '%.*s'", (int)name.u.s.n, name.u.s.p);
    args sub = {0};
    for (size_t i = first_arg; i < a->npos; i++) sub.pos[sub.npos++] = a->pos[i];
    check_test_args(c, id, &sub);
    return run_test(c, id, v, &sub);
}

/* ---- filters --------------------------------------------------------------------- */

static jv apply_filter(jctx *c, int id, jv v, const args *a);

/* item.attr (dotted, integer parts index) as the map/selectattr filters resolve it */
static jv attr_path(jctx *c, jv v, jv path)
{
    if (path.k == V_INT) return getitem_v(c, v, path);
    want_str(c, path, "attribute");
    const char *p = path.u.s.p, *end = p + path.u.s.n;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        bool digits = n > 0;
        for (size_t i = 0; i < n; i++) digits = digits && is_digit(p[i]);
        v = digits ? getitem_v(c, v, v_int(strtoll(astrdup(c, p, n), NULL, 10))) : getitem_v(c, v, v_str(p, n));
        if (!dot) break;
        p = dot + 1;
    }
    return v;
}

static jv html_escape(jctx *c, jv s)
{
    sb b = {0};
    sb_put(c, &b, "", 0);
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        switch (ch) {
        case '&': sb_puts(c, &b, "&amp;"); break;
        case '<': sb_puts(c, &b, "&lt;"); break;
        case '>': sb_puts(c, &b, "&gt;"); break;
        case '"': sb_puts(c, &b, "&#34;"); break;
        case '\'': sb_puts(c, &b, "&#39;"); break;
        default: sb_putc(c, &b, ch);
        }
    }
    return v_sb(&b);
}

static jv num_arith(jctx *c, int op, jv x, jv y);

static void check_filter_args(jctx *c, int id, const args *a)
{
    const filter_sig *sig = NULL;
    for (const filter_sig *f = FILTER_SIGS; f->id != F_NONE; f++)
        if (f->id == id) sig = f;
    if (!sig) return;  /* variable arguments */
    size_t np = 0;
    while (sig->params[np]) np++;
    const char *name = "?";
    for (const fn_name *t = FILTERS; t->name; t++)
        if (t->id == id) { name = t->name; break; }
    if (a->npos > np) fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' takes at most %zu arguments, got %zu", name, np, a->npos);
    size_t have = a->npos;
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i = 0;
        while (i < np && !(strlen(sig->params[i]) == a->kwl[k] && memcmp(sig->params[i], a->kwn[k], a->kwl[k]) == 0)) i++;
        if (i == np) fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' got an unexpected keyword argument '%.*s'", name, (int)a->kwl[k], a->kwn[k]);
        if (i < a->npos) fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' got multiple values for '%s'", name, sig->params[i]);
        if (i < sig->required) have++;
    }
    if (have < sig->required) fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' needs %zu arguments", name, sig->required);
}

static jv apply_filter(jctx *c, int id, jv v, const args *a)
{
    jv none = v_none();
    switch (id) {
    case F_ABS:
        if (v.k == V_INT || v.k == V_BOOL) return v_int(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.k == V_FLOAT) return v_float(fabs(v.u.f));
        if (v.k == V_UNDEF) fail_undef(c, v);
        fail(c, TW_ERR_RUNTIME, c->line, "bad operand type for abs(): '%s'", type_name(v));
    case F_CAPITALIZE: return str_case(c, to_str(c, v), 3);
    case F_LOWER: return str_case(c, to_str(c, v), 1);
    case F_UPPER: return str_case(c, to_str(c, v), 0);
    case F_TITLE: return str_case(c, to_str(c, v), 4);
    case F_COUNT: case F_LENGTH: return v_len(c, v);
    case F_DEFAULT: {
        jv def = arg(a, 0, "default_value", v_str("", 0));
        bool boolean = truthy(arg(a, 1, "boolean", v_bool(false)));
        if (v.k == V_UNDEF || (boolean && !truthy(v))) return def;
        return v;
    }
    case F_ESCAPE: return html_escape(c, to_str(c, v));
    case F_FIRST: case F_LAST: {
        if (id == F_LAST && v.k == V_DICT) fail(c, TW_ERR_RUNTIME, c->line, "'dict' object is not reversible");
        jlist *l = iter_items(c, v);
        if (l->n == 0) return v_undef("first", 5);
        return l->v[id == F_FIRST ? 0 : l->n - 1];
    }
    case F_FLOAT: case F_INT: {
        jv def = arg(a, 0, "default", id == F_INT ? v_int(0) : v_float(0.0));
        if (v.k == V_INT || v.k == V_BOOL) return id == F_INT ? v_int(v.u.i) : v_float((double)v.u.i);
        if (v.k == V_FLOAT) return id == F_INT ? v_int((int64_t)v.u.f) : v;
        if (v.k == V_STR) {
            char *s = astrdup(c, v.u.s.p, v.u.s.n), *e;
            jv t = py_strip(v_cstr(s), NULL, 0, true, true);
            char *st = astrdup(c, t.u.s.p, t.u.s.n);
            if (id == F_INT) {
                errno = 0;
                long long i = strtoll(st, &e, 10);
                if (*st && !*e && !errno) return v_int(i);
            }
            double f = strtod(st, &e);
            if (*st && !*e) return id == F_INT ? v_int((int64_t)f) : v_float(f);
        }
        return def;
    }
    case F_INDENT: {
        /* jinja2 do_indent: s + "\n", splitlines, indent every line but the first (blank lines
           only with blank=true), the first one too with first=true */
        jv w = arg(a, 0, "width", v_int(4));
        bool first = truthy(arg(a, 1, "first", v_bool(false))), blank = truthy(arg(a, 2, "blank", v_bool(false)));
        sb ind = {0};
        sb_put(c, &ind, "", 0);
        if (w.k == V_STR) sb_put(c, &ind, w.u.s.p, w.u.s.n);
        else for (int64_t k = 0; k < want_int(c, w, "indent width"); k++) sb_putc(c, &ind, ' ');
        jv s = to_str(c, v);
        sb src = {0};
        sb_put(c, &src, s.u.s.p, s.u.s.n);
        sb_putc(c, &src, '\n');
        jlist *lines = splitlines(c, v_sb(&src));
        sb b = {0};
        sb_put(c, &b, "", 0);
        if (first) sb_put(c, &b, ind.p, ind.n);
        for (size_t k = 0; k < lines->n; k++) {
            jv ln = lines->v[k];
            if (k > 0) {
                sb_putc(c, &b, '\n');
                if (blank || ln.u.s.n > 0) sb_put(c, &b, ind.p, ind.n);
            }
            sb_put(c, &b, ln.u.s.p, ln.u.s.n);
        }
        return v_sb(&b);
    }
    case F_ITEMS:
        if (v.k == V_UNDEF) return v_list(list_new(c, 1));
        if (v.k != V_DICT) fail(c, TW_ERR_RUNTIME, c->line, "can only get item pairs from a mapping");
        return items_list(c, v.u.d);
    case F_JOIN: {
        jv sep = to_str(c, arg(a, 0, "d", v_str("", 0)));
        jv attr = arg(a, 1, "attribute", none);
        jlist *items = iter_items(c, v);
        if (attr.k != V_NONE) {
            jlist *m = list_new(c, items->n);
            for (size_t i = 0; i < items->n; i++) list_push(c, m, attr_path(c, items->v[i], attr));
            items = m;
        }
        return join_items(c, sep, items);
    }
    case F_LIST: {
        jlist *src = iter_items(c, v), *l = list_new(c, src->n);
        for (size_t i = 0; i < src->n; i++) list_push(c, l, src->v[i]);
        return v_list(l);
    }
    case F_MAP: {
        jlist *src = iter_items(c, v), *l = list_new(c, src->n);
        if (a->npos == 0) {
            jv attr = arg(a, 99, "attribute", v_undef("attribute", 9));
            if (attr.k == V_UNDEF) fail(c, TW_ERR_RUNTIME, c->line, "map() needs a filter name or attribute=");
            jv def = arg(a, 99, "default", v_undef("default", 7));
            for (size_t i = 0; i < src->n; i++) {
                jv r = attr_path(c, src->v[i], attr);
                list_push(c, l, r.k == V_UNDEF && def.k != V_UNDEF ? def : r);
            }
            return v_list(l);
        }
        jv name = want_str(c, a->pos[0], "map filter name");
        int fid = fn_lookup(FILTERS, name.u.s.p, name.u.s.n);
        if (!fid) fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported filter '%.*s'", (int)name.u.s.n, name.u.s.p);
        args sub = *a;
        sub.npos = 0;
        for (size_t i = 1; i < a->npos; i++) sub.pos[sub.npos++] = a->pos[i];
        check_filter_args(c, fid, &sub);
        for (size_t i = 0; i < src->n; i++) list_push(c, l, apply_filter(c, fid, src->v[i], &sub));
        return v_list(l);
    }
    case F_SELECT: case F_REJECT: case F_SELECTATTR: case F_REJECTATTR: {
        bool attr = id == F_SELECTATTR || id == F_REJECTATTR, want = id == F_SELECT || id == F_SELECTATTR;
        jlist *src = iter_items(c, v), *l = list_new(c, src->n);
        size_t ti = attr ? 1 : 0;
        if (attr && a->npos < 1) fail(c, TW_ERR_RUNTIME, c->line, "missing attribute argument");
        for (size_t i = 0; i < src->n; i++) {
            jv x = attr ? attr_path(c, src->v[i], a->pos[0]) : src->v[i];
            bool ok = a->npos > ti ? run_named_test(c, a->pos[ti], x, a, ti + 1) : truthy(x);
            if (ok == want) list_push(c, l, src->v[i]);
        }
        return v_list(l);
    }
    case F_REPLACE: {
        jv s = to_str(c, v);
        return str_replace(c, s, to_str(c, arg(a, 0, "old", v_str("", 0))), to_str(c, arg(a, 1, "new", v_str("", 0))),
                           arg(a, 2, "count", none).k == V_NONE ? -1 : want_int(c, arg(a, 2, "count", none), "count"));
    }
    case F_REVERSE: {
        if (v.k == V_STR) {
            char *o = amalloc(c, v.u.s.n + 1);
            size_t k = 0;
            for (size_t e = v.u.s.n; e > 0;) {
                size_t q = u8_prev(v.u.s.p, e);
                memcpy(o + k, v.u.s.p + q, e - q);
                k += e - q;
                e = q;
            }
            o[k] = '\0';
            return v_str(o, k);
        }
        jlist *src = iter_items(c, v), *l = list_new(c, src->n);
        for (size_t i = src->n; i-- > 0;) list_push(c, l, src->v[i]);
        return v_list(l);
    }
    case F_SAFE: return v;
    case F_STRING: return to_str(c, v);
    case F_TOJSON: {
        /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
        json_opts o = {.ensure_ascii = truthy(arg(a, 0, "ensure_ascii", v_bool(false))),
                       .sort_keys = truthy(arg(a, 3, "sort_keys", v_bool(false)))};
        jv ind = arg(a, 1, "indent", none), seps = arg(a, 2, "separators", none);
        if (ind.k == V_STR) o.indent = astrdup(c, ind.u.s.p, ind.u.s.n);
        else if (ind.k != V_NONE) {
            int64_t w = want_int(c, ind, "tojson indent");
            char *sp = amalloc(c, (size_t)(w > 0 ? w : 0) + 1);
            memset(sp, ' ', (size_t)(w > 0 ? w : 0));
            sp[w > 0 ? w : 0] = '\0';
            o.indent = sp;
        }
        o.item_sep = o.indent ? "," : ", ";
        o.key_sep = ": ";
        if (seps.k == V_LIST && seps.u.l->n == 2 && seps.u.l->v[0].k == V_STR && seps.u.l->v[1].k == V_STR) {
            o.item_sep = astrdup(c, seps.u.l->v[0].u.s.p, seps.u.l->v[0].u.s.n);
            o.key_sep = astrdup(c, seps.u.l->v[1].u.s.p, seps.u.l->v[1].u.s.n);
        } else if (seps.k != V_NONE) fail(c, TW_ERR_RUNTIME, c->line, "tojson separators must be a pair of strings");
        sb b = {0};
        sb_put(c, &b, "", 0);
        json_dump(c, &b, v, &o, 0);
        return v_sb(&b);
    }
    case F_TRIM: {
        jv s = to_str(c, v), ch = arg(a, 0, "chars", none);
        if (ch.k == V_NONE) return py_strip(s, NULL, 0, true, true);
        want_str(c, ch, "trim chars");
        return py_strip(s, ch.u.s.p, ch.u.s.n, true, true);
    }
    case F_UNIQUE: {
        jlist *src = iter_items(c, v), *l = list_new(c, src->n);
        bool cs = truthy(arg(a, 0, "case_sensitive", v_bool(false)));
        for (size_t i = 0; i < src->n; i++) {
            jv x = src->v[i];
            jv kx = (!cs && x.k == V_STR) ? str_case(c, x, 1) : x;
            bool seen = false;
            for (size_t j = 0; j < l->n && !seen; j++) {
                jv y = l->v[j];
                seen = v_eq(kx, (!cs && y.k == V_STR) ? str_case(c, y, 1) : y);
            }
            if (!seen) list_push(c, l, x);
        }
        return v_list(l);
    }
    case F_SUM: {
        jv acc = arg(a, 1, "start", v_int(0)), attr = arg(a, 0, "attribute", none);
        jlist *src = iter_items(c, v);
        for (size_t i = 0; i < src->n; i++)
            acc = num_arith(c, OP_ADD, acc, attr.k == V_NONE ? src->v[i] : attr_path(c, src->v[i], attr));
        return acc;
    }
    case F_MIN: case F_MAX: {
        jlist *src = iter_items(c, v);
        if (src->n == 0) return v_undef("min", 3);
        jv best = src->v[0];
        for (size_t i = 1; i < src->n; i++) {
            int r = v_cmp(c, src->v[i], best, "<");
            if (id == F_MIN ? r < 0 : r > 0) best = src->v[i];
        }
        return best;
    }
    case F_DICTSORT: {
        if (v.k != V_DICT) fail(c, TW_ERR_RUNTIME, c->line, "dictsort expects a mapping, got %s", type_name(v));
        jv items = items_list(c, v.u.d);
        jlist *l = items.u.l;
        for (size_t i = 1; i < l->n; i++)
            for (size_t j = i; j > 0 && cmp_keys(&l->v[j - 1].u.l->v[0], &l->v[j].u.l->v[0]) > 0; j--) {
                jv t = l->v[j]; l->v[j] = l->v[j - 1]; l->v[j - 1] = t;
            }
        return items;
    }
    case F_WORDCOUNT: {
        jv s = to_str(c, v);
        int64_t k = 0;
        bool in = false;
        for (size_t i = 0; i < s.u.s.n; i++) {
            unsigned char ch = (unsigned char)s.u.s.p[i];
            bool w = is_alpha_((char)ch) || is_digit((char)ch) || ch >= 0x80;
            if (w && !in) k++;
            in = w;
        }
        return v_int(k);
    }
    default: fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported filter");
    }
}

/* ---- operators ------------------------------------------------------------------- */

static _Noreturn void bad_operands(jctx *c, const char *op, jv x, jv y)
{
    if (x.k == V_UNDEF) fail_undef(c, x);
    if (y.k == V_UNDEF) fail_undef(c, y);
    fail(c, TW_ERR_RUNTIME, c->line, "unsupported operand type(s) for %s: '%s' and '%s'", op, type_name(x), type_name(y));
}

static jv repeat(jctx *c, jv seq, int64_t times)
{
    if (times < 0) times = 0;
    if (seq.k == V_STR) {
        if (seq.u.s.n && (uint64_t)times > OUTPUT_LIMIT / seq.u.s.n) fail(c, TW_ERR_RUNTIME, c->line, "string repetition too large");
        sb b = {0};
        sb_put(c, &b, "", 0);
        for (int64_t i = 0; i < times; i++) sb_put(c, &b, seq.u.s.p, seq.u.s.n);
        return v_sb(&b);
    }
    if (seq.u.l->n && (uint64_t)times > MAX_RANGE / seq.u.l->n) fail(c, TW_ERR_RUNTIME, c->line, "list repetition too large");
    jlist *l = list_new(c, 4);
    l->flags = seq.u.l->flags;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->n; j++) list_push(c, l, seq.u.l->v[j]);
    return v_list(l);
}

static jv num_arith(jctx *c, int op, jv x, jv y)
{
    static const char *const names[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    const char *nm = names[op];
    if (op == OP_ADD) {
        if (x.k == V_STR && y.k == V_STR) {
            char *o = amalloc(c, x.u.s.n + y.u.s.n + 1);
            memcpy(o, x.u.s.p, x.u.s.n);
            memcpy(o + x.u.s.n, y.u.s.p, y.u.s.n);
            o[x.u.s.n + y.u.s.n] = '\0';
            return v_str(o, x.u.s.n + y.u.s.n);
        }
        if (x.k == V_LIST && y.k == V_LIST && (x.u.l->flags & LF_TUPLE) == (y.u.l->flags & LF_TUPLE)) {
            jlist *l = list_new(c, x.u.l->n + y.u.l->n);
            l->flags = x.u.l->flags;
            for (size_t i = 0; i < x.u.l->n; i++) list_push(c, l, x.u.l->v[i]);
            for (size_t i = 0; i < y.u.l->n; i++) list_push(c, l, y.u.l->v[i]);
            return v_list(l);
        }
    }
    if (op == OP_MUL) {
        if ((x.k == V_STR || x.k == V_LIST) && (y.k == V_INT || y.k == V_BOOL)) return repeat(c, x, y.u.i);
        if ((y.k == V_STR || y.k == V_LIST) && (x.k == V_INT || x.k == V_BOOL)) return repeat(c, y, x.u.i);
    }
    if (!is_num(x) || !is_num(y)) bad_operands(c, nm, x, y);
    bool ints = x.k != V_FLOAT && y.k != V_FLOAT;
    int64_t i = x.u.i, j = y.u.i, r;
    double f = num_f(x), g = num_f(y);
    switch (op) {
    case OP_ADD:
        if (ints) { if (__builtin_add_overflow(i, j, &r)) goto ovf; return v_int(r); }
        return v_float(f + g);
    case OP_SUB:
        if (ints) { if (__builtin_sub_overflow(i, j, &r)) goto ovf; return v_int(r); }
        return v_float(f - g);
    case OP_MUL:
        if (ints) { if (__builtin_mul_overflow(i, j, &r)) goto ovf; return v_int(r); }
        return v_float(f * g);
    case OP_DIV:
        if (g == 0) fail(c, TW_ERR_RUNTIME, c->line, "division by zero");
        return v_float(f / g);
    case OP_FLOORDIV: case OP_MOD:
        if (ints) {
            if (j == 0) fail(c, TW_ERR_RUNTIME, c->line, "integer division or modulo by zero");
            if (i == INT64_MIN && j == -1) goto ovf;
            int64_t q = i / j, m = i % j;
            if (m != 0 && ((m < 0) != (j < 0))) { q--; m += j; }
            return v_int(op == OP_FLOORDIV ? q : m);
        }
        if (g == 0) fail(c, TW_ERR_RUNTIME, c->line, "float modulo or division by zero");
        if (op == OP_FLOORDIV) return v_float(floor(f / g));
        {
            double m = fmod(f, g);
            if (m != 0 && ((m < 0) != (g < 0))) m += g;
            return v_float(m);
        }
    case OP_POW:
        if (ints && j >= 0) {
            int64_t acc = 1, base = i;
            for (int64_t e = j; e > 0; e >>= 1) {
                if (e & 1) { if (__builtin_mul_overflow(acc, base, &acc)) goto ovf; }
                if (e > 1 && __builtin_mul_overflow(base, base, &base)) goto ovf;
            }
            return v_int(acc);
        }
        return v_float(pow(f, g));
    default: break;
    }
ovf:
    fail(c, TW_ERR_UNSUPPORTED, c->line, "integer overflow in '%s' (64-bit integers only)", nm);
}

static bool compare_op(jctx *c, int op, jv x, jv y)
{
    switch (op) {
    case OP_EQ: return v_eq(x, y);
    case OP_NE: return !v_eq(x, y);
    case OP_LT: return v_cmp(c, x, y, "<") < 0;
    case OP_LE: return v_cmp(c, x, y, "<=") <= 0;
    case OP_GT: return v_cmp(c, x, y, ">") > 0;
    case OP_GE: return v_cmp(c, x, y, ">=") >= 0;
    case OP_IN: return v_in(c, x, y);
    default: return !v_in(c, x, y);
    }
}

static jv eval(jctx *c, const node *x)
{
    if (++c->steps > MAX_STEPS) fail(c, TW_ERR_RUNTIME, x->line, "the template runs too long (over %d steps)", MAX_STEPS);
    int saved = c->line;
    c->line = x->line;
    jv r;
    switch (x->kind) {
    case N_LIT: r = x->v; break;
    case N_NAME: {
        jv *slot = lookup(c, x->s, x->slen);
        r = slot ? *slot : v_undef(x->s, x->slen);
        break;
    }
    case N_LIST: case N_TUPLE: {
        jlist *l = list_new(c, x->nkids);
        if (x->kind == N_TUPLE) l->flags = LF_TUPLE;
        for (size_t i = 0; i < x->nkids; i++) list_push(c, l, eval(c, x->kids[i]));
        r = v_list(l);
        break;
    }
    case N_DICT: {
        jdict *d = dict_new(c, x->nkids / 2 + 1);
        for (size_t i = 0; i + 1 < x->nkids; i += 2) {
            jv k = eval(c, x->kids[i]);
            if (k.k == V_LIST && !(k.u.l->flags & LF_TUPLE)) fail(c, TW_ERR_RUNTIME, x->line, "unhashable type: 'list'");
            if (k.k == V_DICT) fail(c, TW_ERR_RUNTIME, x->line, "unhashable type: 'dict'");
            dict_set(c, d, k, eval(c, x->kids[i + 1]));
        }
        r = v_dict(d);
        break;
    }
    case N_ATTR: {
        if (x->slen > 0 && x->s[0] == '_') { r = v_undef(x->s, x->slen); break; }  /* sandbox */
        r = getattr_v(c, eval(c, x->a), x->s, x->slen);
        break;
    }
    case N_ITEM: {
        jv obj = eval(c, x->a);
        if (x->b->kind == N_SLICE) r = slice_v(c, obj, x->b);
        else {
            jv key = eval(c, x->b);
            if (key.k == V_STR && key.u.s.n > 0 && key.u.s.p[0] == '_' && obj.k != V_DICT) r = v_undef(key.u.s.p, key.u.s.n);
            else r = getitem_v(c, obj, key);
        }
        break;
    }
    case N_CALL: {
        jv f = eval(c, x->a);
        if (f.k == V_UNDEF) fail_undef(c, f);
        if (f.k != V_FUNC) fail(c, TW_ERR_RUNTIME, x->line, "'%s' object is not callable", type_name(f));
        args a;
        eval_args(c, x, &a);
        c->line = x->line;
        r = call_fn(c, f, &a);
        break;
    }
    case N_FILTER: {
        jv v = eval(c, x->a);
        args a;
        eval_args(c, x, &a);
        c->line = x->line;
        check_filter_args(c, x->op, &a);
        r = apply_filter(c, x->op, v, &a);
        break;
    }
    case N_TEST: {
        jv v = eval(c, x->a);
        args a;
        eval_args(c, x, &a);
        c->line = x->line;
        check_test_args(c, x->op, &a);
        r = v_bool(run_test(c, x->op, v, &a) != (x->neg != 0));
        break;
    }
    case N_NOT: r = v_bool(!truthy(eval(c, x->a))); break;
    case N_AND: { jv l = eval(c, x->a); r = truthy(l) ? eval(c, x->b) : l; break; }
    case N_OR: { jv l = eval(c, x->a); r = truthy(l) ? l : eval(c, x->b); break; }
    case N_NEG: case N_POS: {
        jv v = eval(c, x->a);
        c->line = x->line;
        if (v.k == V_INT || v.k == V_BOOL) {
            if (x->kind == N_NEG && v.u.i == INT64_MIN) fail(c, TW_ERR_UNSUPPORTED, x->line, "integer overflow");
            r = v_int(x->kind == N_NEG ? -v.u.i : v.u.i);
        } else if (v.k == V_FLOAT) r = v_float(x->kind == N_NEG ? -v.u.f : v.u.f);
        else if (v.k == V_UNDEF) fail_undef(c, v);
        else fail(c, TW_ERR_RUNTIME, x->line, "bad operand type for unary %c: '%s'", x->kind == N_NEG ? '-' : '+', type_name(v));
        break;
    }
    case N_BIN: {
        jv l = eval(c, x->a), rr = eval(c, x->b);
        c->line = x->line;
        r = num_arith(c, x->op, l, rr);
        break;
    }
    case N_CONCAT: {
        sb b = {0};
        sb_put(c, &b, "", 0);
        for (size_t i = 0; i < x->nkids; i++) put_str(c, &b, eval(c, x->kids[i]));
        r = v_sb(&b);
        break;
    }
    case N_COMPARE: {
        jv l = eval(c, x->kids[0]);
        bool ok = true;
        for (size_t i = 1; i < x->nkids && ok; i++) {
            jv rr = eval(c, x->kids[i]);
            c->line = x->line;
            ok = compare_op(c, x->ops[i - 1], l, rr);
            l = rr;
        }
        r = v_bool(ok);
        break;
    }
    case N_COND:
        if (truthy(eval(c, x->b))) r = eval(c, x->a);
        else r = x->c ? eval(c, x->c) : v_undef("conditional expression", 22);
        break;
    default: fail(c, TW_ERR_RUNTIME, x->line, "internal error: bad expression node %d", x->kind);
    }
    c->line = saved;
    return r;
}

/* ---- statements -------------------------------------------------------------------- */

static void out_put(jctx *c, const char *p, size_t n)
{
    if (c->out->len - c->out_base + n > OUTPUT_LIMIT)
        fail(c, TW_ERR_RUNTIME, c->line, "rendered text longer than %zu MiB", OUTPUT_LIMIT >> 20);
    if (n && tw_buf_append(c->out, p, n)) fail(c, TW_ERR_NOMEM, 0, "out of memory");
}

static void emit(jctx *c, jv v)
{
    if (v.k == V_STR) { out_put(c, v.u.s.p, v.u.s.n); return; }
    if (v.k == V_UNDEF) return;
    jv s = to_str(c, v);
    out_put(c, s.u.s.p, s.u.s.n);
}

static void bind_targets(jctx *c, const node *x, frame *f, jv item)
{
    size_t nt = (size_t)x->op;
    if (nt == 1) { frame_set(c, f, x->names[0], x->name_lens[0], item); return; }
    jlist *parts = item.k == V_LIST ? item.u.l : NULL;
    if (item.k == V_STR) parts = iter_items(c, item);
    if (!parts || parts->n != nt)
        fail(c, TW_ERR_RUNTIME, x->line, "cannot unpack %s into %zu loop variables", type_name(item), nt);
    for (size_t k = 0; k < nt; k++) frame_set(c, f, x->names[k], x->name_lens[k], parts->v[k]);
}

static void exec(jctx *c, const node *x);

static void exec_for(jctx *c, const node *x)
{
    jlist *items = iter_items(c, eval(c, x->a));
    if (x->b) {
        jlist *kept = list_new(c, items->n);
        for (size_t i = 0; i < items->n; i++) {
            frame f = {.up = c->top};
            c->top = &f;
            bind_targets(c, x, &f, items->v[i]);
            bool keep = truthy(eval(c, x->b));
            c->top = f.up;
            if (keep) list_push(c, kept, items->v[i]);
        }
        items = kept;
    }
    size_t n = items->n;
    if (n == 0) {
        if (x->d) exec(c, x->d);
        return;
    }
    /* One frame and one loop object for the whole loop (jinja2's LoopContext is one object
       that advances too): the frame is emptied per iteration, so a long loop allocates
       nothing per iteration. */
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "first", "last",
                                       "length", "previtem", "nextitem", "depth", "depth0"};
    jdict *loop = dict_new(c, 11);
    loop->flags = DF_LOOP;
    for (size_t k = 0; k < 11; k++) loop->key[k] = v_cstr(keys[k]);
    loop->n = 11;
    frame f = {.up = c->top};
    for (size_t i = 0; i < n; i++) {
        f.n = 0;
        c->top = &f;
        bind_targets(c, x, &f, items->v[i]);
        jv *lv = loop->val;
        lv[0] = v_int((int64_t)i + 1);
        lv[1] = v_int((int64_t)i);
        lv[2] = v_int((int64_t)(n - i));
        lv[3] = v_int((int64_t)(n - i - 1));
        lv[4] = v_bool(i == 0);
        lv[5] = v_bool(i == n - 1);
        lv[6] = v_int((int64_t)n);
        lv[7] = i > 0 ? items->v[i - 1] : v_undef("previtem", 8);
        lv[8] = i + 1 < n ? items->v[i + 1] : v_undef("nextitem", 8);
        lv[9] = v_int(1);
        lv[10] = v_int(0);
        frame_set(c, &f, "loop", 4, v_dict(loop));
        exec(c, x->c);
        c->top = f.up;
        if (c->ctl == 1) { c->ctl = 0; break; }
        c->ctl = 0;
    }
}

static void exec(jctx *c, const node *x)
{
    if (++c->steps > MAX_STEPS) fail(c, TW_ERR_RUNTIME, x->line, "the template runs too long (over %d steps)", MAX_STEPS);
    c->line = x->line;
    switch (x->kind) {
    case N_BODY:
        for (size_t i = 0; i < x->nkids && !c->ctl; i++) exec(c, x->kids[i]);
        return;
    case N_TEXT: out_put(c, x->s, x->slen); return;
    case N_PRINT: emit(c, eval(c, x->a)); return;
    case N_IF:
        if (truthy(eval(c, x->a))) exec(c, x->b);
        else if (x->c) exec(c, x->c);
        return;
    case N_FOR: exec_for(c, x); return;
    case N_SET: case N_SETBLOCK: {
        jv v;
        if (x->kind == N_SET) v = eval(c, x->a);
        else {
            size_t mark = c->out->len;
            exec(c, x->b);
            v = v_str(astrdup(c, c->out->data ? c->out->data + mark : "", c->out->len - mark), c->out->len - mark);
            c->out->len = mark;
            if (c->out->data) c->out->data[mark] = '\0';
        }
        if (x->s2) {
            jv *ns = lookup(c, x->s, x->slen);
            if (!ns || ns->k != V_DICT || !(ns->u.d->flags & DF_NAMESPACE))
                fail(c, TW_ERR_RUNTIME, x->line, "cannot assign attribute on non-namespace object '%.*s'", (int)x->slen, x->s);
            if (x->s2len > 0 && x->s2[0] == '_') fail(c, TW_ERR_RUNTIME, x->line, "namespace attributes cannot start with '_'");
            dict_set(c, ns->u.d, v_str(x->s2, x->s2len), v);
        } else frame_set(c, c->top, x->s, x->slen, v);
        return;
    }
    case N_BREAK: c->ctl = 1; return;
    case N_CONTINUE: c->ctl = 2; return;
    default: fail(c, TW_ERR_RUNTIME, x->line, "internal error: bad statement node %d", x->kind);
    }
}

/* =====================================================================================
 * families, markers, built-in templates
 * ===================================================================================== */

const char *tw_chat_family_name(tw_chat_family f)
{
    switch (f) {
    case TW_CHAT_CHATML: return "chatml";
    case TW_CHAT_QWEN3: return "qwen3";
    case TW_CHAT_LLAMA3: return "llama3";
    case TW_CHAT_LLAMA2: return "llama2";
    case TW_CHAT_MISTRAL: return "mistral";
    case TW_CHAT_GEMMA: return "gemma";
    case TW_CHAT_ZEPHYR: return "zephyr";
    case TW_CHAT_CUSTOM: return "custom";
    default: return "unknown";
    }
}

const char *const *tw_chat_family_stops(tw_chat_family f)
{
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", NULL};
    static const char *const gemma[] = {"<end_of_turn>", "<eos>", NULL};
    static const char *const eos[] = {"</s>", NULL};
    static const char *const none[] = {NULL};
    switch (f) {
    case TW_CHAT_CHATML: case TW_CHAT_QWEN3: return chatml;
    case TW_CHAT_LLAMA3: return llama3;
    case TW_CHAT_GEMMA: return gemma;
    case TW_CHAT_LLAMA2: case TW_CHAT_MISTRAL: case TW_CHAT_ZEPHYR: return eos;
    default: return none;
    }
}

/* Detection: markers that every template of a family writes, checked most specific first.
 * (Substrings of the template text, so quoting style and whitespace do not matter.) */
static tw_chat_family detect(const char *s)
{
    if (strstr(s, "<|im_start|>"))
        return (strstr(s, "<think>") || strstr(s, "enable_thinking")) ? TW_CHAT_QWEN3 : TW_CHAT_CHATML;
    if (strstr(s, "<|start_header_id|>") && strstr(s, "<|end_header_id|>")) return TW_CHAT_LLAMA3;
    if (strstr(s, "<start_of_turn>")) return TW_CHAT_GEMMA;
    if (strstr(s, "[INST]")) return strstr(s, "<<SYS>>") ? TW_CHAT_LLAMA2 : TW_CHAT_MISTRAL;
    if (strstr(s, "<|user|>") && strstr(s, "<|assistant|>") && !strstr(s, "<|end|>")) return TW_CHAT_ZEPHYR;
    return TW_CHAT_UNKNOWN;
}

tw_status tw_chat_detect(const char *template_src, tw_chat_family *out, tw_error *err)
{
    *out = TW_CHAT_UNKNOWN;
    if (!template_src || !*template_src)
        return tw_error_set(err, TW_ERR_INVALID,
                            "the model has no chat template (no tokenizer.chat_template); "
                            "pass --chat-template FILE (a Jinja template) or a built-in name");
    *out = detect(template_src);
    if (*out == TW_CHAT_UNKNOWN)
        return tw_error_set(err, TW_ERR_UNSUPPORTED,
                            "unrecognised chat template: it has none of the markers of the supported "
                            "families (<|im_start|> ChatML/Qwen, <|start_header_id|> Llama 3, [INST] "
                            "Llama 2/Mistral, <start_of_turn> Gemma, <|user|> Zephyr); pass "
                            "--chat-template FILE with a Jinja template to use it anyway");
    return TW_OK;
}

/* Built-in templates: compact versions of the published templates without the tool-calling
 * branches (tests/test_chat.c checks each against the fixture of the template it mirrors). */
typedef struct builtin {
    const char *name;
    tw_chat_family family;
    const char *src;
} builtin;

static const builtin BUILTINS[] = {
    {"chatml", TW_CHAT_CHATML,
     "{% for message in messages %}"
     "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
     "{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"},
    {"qwen3", TW_CHAT_QWEN3,
     "{%- if messages[0].role == 'system' %}\n"
     "    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
     "{%- endif %}\n"
     "{%- set ns = namespace(found=false, last_query_index=messages|length - 1) %}\n"
     "{%- for message in messages[::-1] %}\n"
     "    {%- if not ns.found and message.role == 'user' and not (message.content.startswith('<tool_response>') "
     "and message.content.endswith('</tool_response>')) %}\n"
     "        {%- set ns.found = true %}\n"
     "        {%- set ns.last_query_index = (messages|length - 1) - loop.index0 %}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- for message in messages %}\n"
     "    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}\n"
     "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
     "    {%- elif message.role == 'assistant' %}\n"
     "        {%- set content = message.content %}\n"
     "        {%- set reasoning_content = '' %}\n"
     "        {%- if '</think>' in content %}\n"
     "            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n"
     "            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n"
     "        {%- endif %}\n"
     "        {%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) %}\n"
     "            {{- '<|im_start|>assistant\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
     "        {%- else %}\n"
     "            {{- '<|im_start|>assistant\\n' + content }}\n"
     "        {%- endif %}\n"
     "        {{- '<|im_end|>\\n' }}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|im_start|>assistant\\n' }}\n"
     "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
     "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
     "    {%- endif %}\n"
     "{%- endif %}\n"},
    {"llama3", TW_CHAT_LLAMA3,
     "{% for message in messages %}"
     "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}"
     "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
     "{{ content }}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"},
    {"llama3.1", TW_CHAT_LLAMA3,
     "{{- bos_token }}\n"
     "{%- if not date_string is defined %}\n"
     "    {%- set date_string = '26 Jul 2024' %}\n"
     "{%- endif %}\n"
     "{%- if messages[0]['role'] == 'system' %}\n"
     "    {%- set system_message = messages[0]['content'] | trim %}\n"
     "    {%- set messages = messages[1:] %}\n"
     "{%- else %}\n"
     "    {%- set system_message = '' %}\n"
     "{%- endif %}\n"
     "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' }}\n"
     "{{- system_message + '<|eot_id|>' }}\n"
     "{%- for message in messages %}\n"
     "    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n"
     "{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n"
     "    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n"
     "{%- endif %}\n"},
    {"llama2", TW_CHAT_LLAMA2,
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
     "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
     "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
     "{% if loop.index0 == 0 and system_message != false %}"
     "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
     "{% else %}{% set content = message['content'] %}{% endif %}"
     "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
     "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}"
     "{% endfor %}"},
    {"mistral", TW_CHAT_MISTRAL,
     "{%- if messages[0]['role'] == 'system' %}\n"
     "    {%- set system_message = messages[0]['content'] %}\n"
     "    {%- set loop_messages = messages[1:] %}\n"
     "{%- else %}\n"
     "    {%- set loop_messages = messages %}\n"
     "{%- endif %}\n"
     "{{- bos_token }}\n"
     "{%- for message in loop_messages %}\n"
     "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
     "        {{- raise_exception('After the optional system message, conversation roles must alternate "
     "user/assistant/user/assistant/...') }}\n"
     "    {%- endif %}\n"
     "    {%- if message['role'] == 'user' %}\n"
     "        {%- if loop.last and system_message is defined %}\n"
     "            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n"
     "        {%- else %}\n"
     "            {{- '[INST] ' + message['content'] + '[/INST]' }}\n"
     "        {%- endif %}\n"
     "    {%- elif message['role'] == 'assistant' %}\n"
     "        {{- ' ' + message['content'] + eos_token }}\n"
     "    {%- else %}\n"
     "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an "
     "initial optional system message!') }}\n"
     "    {%- endif %}\n"
     "{%- endfor %}\n"},
    {"gemma", TW_CHAT_GEMMA,
     "{{ bos_token }}\n"
     "{%- if messages[0]['role'] == 'system' -%}\n"
     "    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
     "    {%- set loop_messages = messages[1:] -%}\n"
     "{%- else -%}\n"
     "    {%- set first_user_prefix = '' -%}\n"
     "    {%- set loop_messages = messages -%}\n"
     "{%- endif -%}\n"
     "{%- for message in loop_messages -%}\n"
     "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
     "        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\n"
     "    {%- endif -%}\n"
     "    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}\n"
     "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}\n"
     "    {{- message['content'] | trim }}\n"
     "    {{- '<end_of_turn>\\n' }}\n"
     "{%- endfor -%}\n"
     "{%- if add_generation_prompt -%}\n"
     "    {{ '<start_of_turn>model\\n' }}\n"
     "{%- endif -%}\n"},
    {"zephyr", TW_CHAT_ZEPHYR,
     "{% for message in messages %}\n"
     "{% if message['role'] == 'user' %}\n"
     "{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'system' %}\n"
     "{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
     "{% elif message['role'] == 'assistant' %}\n"
     "{{ '<|assistant|>\\n' + message['content'] + eos_token }}\n"
     "{% endif %}\n"
     "{% if loop.last and add_generation_prompt %}\n"
     "{{ '<|assistant|>' }}\n"
     "{% endif %}\n"
     "{% endfor %}"},
    {NULL, TW_CHAT_UNKNOWN, NULL},
};

/* The built-in template a model template of family f falls back to. */
static const builtin *fallback_for(tw_chat_family f, const char *src)
{
    const char *name = tw_chat_family_name(f);
    if (f == TW_CHAT_LLAMA3 && strstr(src, "Cutting Knowledge Date")) name = "llama3.1";
    for (const builtin *b = BUILTINS; b->name; b++)
        if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

/* =====================================================================================
 * templates
 * ===================================================================================== */

#define STOPS_MAX 4

struct tw_chat_template {
    tw_chat_family family;
    bool fallback;
    char *source;                       /* the Jinja in use */
    arena A;                            /* tokens and syntax tree */
    node *root;
    char *stop_own[STOPS_MAX];          /* TW_CHAT_CUSTOM: derived stop strings */
    const char *stops[STOPS_MAX + 1];
};

/* Lex and parse t->source into t->root. Errors are "<label>: line N: ...". */
static tw_status compile(tw_chat_template *t, const char *label, tw_error *err)
{
    jctx *c = calloc(1, sizeof *c);
    if (!c) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    tw_error local;
    c->A = &t->A;
    c->err = err ? err : &local;
    c->label = label;
    if (setjmp(c->jb)) {
        tw_status st = c->err->status;
        free(c);
        return st;
    }
    lex(c, t->source, strlen(t->source));
    c->pos = 0;
    t->root = parse_body(c, NULL);
    free(c);
    return TW_OK;
}

void tw_chat_template_free(tw_chat_template *t)
{
    if (!t) return;
    arena_free(&t->A);
    for (size_t i = 0; i < STOPS_MAX; i++) free(t->stop_own[i]);
    free(t->source);
    free(t);
}

static tw_status template_alloc(tw_chat_template **out, const char *src, tw_chat_family f, tw_error *err)
{
    tw_chat_template *t = calloc(1, sizeof *t);
    if (!t) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    t->source = strdup(src);
    if (!t->source) {
        free(t);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    t->family = f;
    const char *const *st = tw_chat_family_stops(f);
    for (size_t i = 0; st[i] && i < STOPS_MAX; i++) t->stops[i] = st[i];
    *out = t;
    return TW_OK;
}

tw_status tw_chat_template_new(tw_chat_template **out, const char *src, tw_error *err)
{
    *out = NULL;
    tw_chat_family f;
    tw_status st = tw_chat_detect(src, &f, err);
    if (st) return st;
    size_t bad;
    if (!tw_utf8_valid(src, strlen(src), &bad))
        return tw_error_set(err, TW_ERR_PARSE, "chat template: offset %zu: invalid UTF-8", bad);
    tw_chat_template *t;
    if ((st = template_alloc(&t, src, f, err))) return st;
    tw_error perr;
    tw_error_clear(&perr);
    st = compile(t, "chat template", &perr);
    if (st == TW_ERR_NOMEM) {
        tw_chat_template_free(t);
        return tw_error_set(err, st, "%s", perr.msg);
    }
    if (st) {
        /* Jinja beyond the subset: the family's built-in template renders instead */
        const builtin *b = fallback_for(f, src);
        tw_chat_template_free(t);
        if (!b) return tw_error_set(err, st, "%s", perr.msg);
        tw_log(TW_LOG_WARN, "%s; using the built-in '%s' template instead (pass --chat-template FILE to override)",
               perr.msg, b->name);
        if ((st = template_alloc(&t, b->src, f, err))) return st;
        if ((st = compile(t, "built-in chat template", err))) {
            tw_chat_template_free(t);
            return st;
        }
        t->fallback = true;
    }
    *out = t;
    return TW_OK;
}

tw_status tw_chat_template_builtin(tw_chat_template **out, const char *name, tw_error *err)
{
    *out = NULL;
    for (const builtin *b = BUILTINS; b->name; b++) {
        if (!name || strcmp(b->name, name) != 0) continue;
        tw_chat_template *t;
        tw_status st = template_alloc(&t, b->src, b->family, err);
        if (st) return st;
        if ((st = compile(t, "built-in chat template", err))) {
            tw_chat_template_free(t);
            return st;
        }
        *out = t;
        return TW_OK;
    }
    return tw_error_set(err, TW_ERR_INVALID,
                        "unknown built-in chat template '%s' (expected chatml, qwen3, llama3, llama3.1, llama2, "
                        "mistral, gemma or zephyr)", name ? name : "(null)");
}

tw_chat_family tw_chat_template_family(const tw_chat_template *t) { return t->family; }
const char *tw_chat_template_source(const tw_chat_template *t) { return t->source; }
bool tw_chat_template_fallback(const tw_chat_template *t) { return t->fallback; }
const char *const *tw_chat_template_stops(const tw_chat_template *t) { return t->stops; }

tw_chat_opts tw_chat_default_opts(void)
{
    tw_chat_opts o = {.add_generation_prompt = false, .enable_thinking = -1, .now = 0};
    return o;
}

/* =====================================================================================
 * rendering
 * ===================================================================================== */

static tw_status render(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, const tw_chat_opts *opts,
                        tw_buf *out, tw_error *err)
{
    const tw_chat_opts o_val = opts ? *opts : tw_chat_default_opts();
    const tw_chat_opts *const o = &o_val;
    if (n > 0 && !msgs) return tw_error_set(err, TW_ERR_INVALID, "chat render: messages is NULL");
    for (size_t i = 0; i < n; i++) {
        size_t bad;
        if (!msgs[i].role || !msgs[i].content)
            return tw_error_set(err, TW_ERR_INVALID, "messages[%zu]: %s is NULL", i, msgs[i].role ? "content" : "role");
        if (!tw_utf8_valid(msgs[i].content, strlen(msgs[i].content), &bad))
            return tw_error_set(err, TW_ERR_INVALID, "messages[%zu].content: invalid UTF-8 at byte %zu", i, bad);
        if (!tw_utf8_valid(msgs[i].role, strlen(msgs[i].role), &bad))
            return tw_error_set(err, TW_ERR_INVALID, "messages[%zu].role: invalid UTF-8 at byte %zu", i, bad);
    }
    const char *toks[3] = {o->bos_token, o->eos_token, o->date_string};
    for (size_t i = 0; i < 3; i++) {
        size_t bad;
        if (toks[i] && !tw_utf8_valid(toks[i], strlen(toks[i]), &bad))
            return tw_error_set(err, TW_ERR_INVALID, "chat render: %s is not valid UTF-8",
                                i == 0 ? "bos_token" : i == 1 ? "eos_token" : "date_string");
    }

    jctx *c = calloc(1, sizeof *c);
    arena *A = calloc(1, sizeof *A);
    if (!c || !A) {
        free(c);
        free(A);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    tw_error local;
    size_t base = out->len;
    c->A = A;
    c->err = err ? err : &local;
    c->label = t->fallback ? "built-in chat template" : "chat template";
    c->out = out;
    c->out_base = base;
    c->now = o->now;
    if (setjmp(c->jb)) {
        tw_status st = c->err->status;
        out->len = base;
        if (out->data) out->data[base] = '\0';
        arena_free(A);
        free(A);
        free(c);
        return st;
    }

    frame *globals = amalloc(c, sizeof *globals), *top = amalloc(c, sizeof *top);
    memset(globals, 0, sizeof *globals);
    memset(top, 0, sizeof *top);
    top->up = globals;
    c->top = top;
    jlist *ml = list_new(c, n);
    for (size_t i = 0; i < n; i++) {
        jdict *d = dict_new(c, 2);
        dict_set_s(c, d, "role", v_cstr(msgs[i].role));
        dict_set_s(c, d, "content", v_cstr(msgs[i].content));
        list_push(c, ml, v_dict(d));
    }
    frame_set(c, globals, "messages", 8, v_list(ml));
    frame_set(c, globals, "tools", 5, v_none());
    frame_set(c, globals, "documents", 9, v_none());
    frame_set(c, globals, "add_generation_prompt", 21, v_bool(o->add_generation_prompt));
    frame_set(c, globals, "bos_token", 9, o->bos_token ? v_cstr(o->bos_token) : v_none());
    frame_set(c, globals, "eos_token", 9, o->eos_token ? v_cstr(o->eos_token) : v_none());
    if (o->date_string) frame_set(c, globals, "date_string", 11, v_cstr(o->date_string));
    if (o->enable_thinking >= 0) frame_set(c, globals, "enable_thinking", 15, v_bool(o->enable_thinking != 0));
    frame_set(c, globals, "range", 5, v_func(G_RANGE, NULL));
    frame_set(c, globals, "namespace", 9, v_func(G_NAMESPACE, NULL));
    frame_set(c, globals, "raise_exception", 15, v_func(G_RAISE, NULL));
    frame_set(c, globals, "dict", 4, v_func(G_DICT, NULL));
    if (o->now) frame_set(c, globals, "strftime_now", 12, v_func(G_STRFTIME, NULL));

    exec(c, t->root);
    if (!out->data && tw_buf_append(out, "", 0)) fail(c, TW_ERR_NOMEM, 0, "out of memory");
    arena_free(A);
    free(A);
    free(c);
    return TW_OK;
}

tw_status tw_chat_render_ex(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, const tw_chat_opts *o,
                            tw_buf *out, tw_error *err)
{
    return render(t, msgs, n, o, out, err);
}

tw_status tw_chat_render(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, bool add_generation_prompt,
                         const char *bos, const char *eos, tw_buf *out, tw_error *err)
{
    tw_chat_opts o = tw_chat_default_opts();
    o.add_generation_prompt = add_generation_prompt;
    o.bos_token = bos;
    o.eos_token = eos;
    return render(t, msgs, n, &o, out, err);
}

/* Stands in for the last assistant message to find where its content lands: plain ASCII
 * letters, so no trim / strip / split of the templates changes it. */
static const char SENTINEL[] = "TWzq8Sentinel4Kx";

static const char *find_unique(const char *h, size_t hn, const char *nd)
{
    size_t nn = strlen(nd);
    const char *p = memfind(h, hn, nd, nn);
    if (!p || memfind(p + 1, hn - (size_t)(p + 1 - h), nd, nn)) return NULL;
    return p;
}

tw_status tw_chat_render_span(const tw_chat_template *t, const tw_chat_msg *msgs, size_t n, const tw_chat_opts *o,
                              tw_buf *out, tw_chat_span *span, tw_error *err)
{
    if (n == 0 || !msgs || !msgs[n - 1].role || strcmp(msgs[n - 1].role, "assistant") != 0)
        return tw_error_set(err, TW_ERR_INVALID, "chat span: the last message must be an assistant message");
    tw_chat_opts oo = o ? *o : tw_chat_default_opts();
    oo.add_generation_prompt = false;
    size_t base = out->len;
    tw_status st = render(t, msgs, n, &oo, out, err);
    if (st) return st;
    const char *R = out->data + base;
    size_t rn = out->len - base;

    tw_buf pb = {0}, sbuf = {0};
    tw_chat_msg *sm = malloc(n * sizeof *sm);
    if (!sm) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto done; }
    memcpy(sm, msgs, n * sizeof *sm);
    sm[n - 1].content = SENTINEL;
    if ((st = render(t, sm, n, &oo, &sbuf, err))) goto done;
    const char *S = sbuf.data;
    const char *hit = find_unique(S, sbuf.len, SENTINEL);
    if (!hit) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "chat span: the template does not write the last assistant message verbatim");
        goto done;
    }
    size_t pre = (size_t)(hit - S), suf = sbuf.len - pre - strlen(SENTINEL);
    if (pre + suf > rn || memcmp(R + rn - suf, hit + strlen(SENTINEL), suf) != 0) {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "chat span: the text after the last assistant message depends on it");
        goto done;
    }
    size_t content_end = rn - suf;

    /* the prompt: msgs[0..n-1) with the generation prompt, when the rendering starts with it */
    oo.add_generation_prompt = true;
    size_t prompt_end = SIZE_MAX;
    if (n > 1) {
        tw_error perr;
        if (render(t, msgs, n - 1, &oo, &pb, &perr) == TW_OK && pb.len <= content_end && memcmp(pb.data, R, pb.len) == 0)
            prompt_end = pb.len;
    }
    size_t content_begin;
    if (memcmp(R, S, pre) == 0 && pre <= content_end) content_begin = pre;
    else if (prompt_end != SIZE_MAX) content_begin = prompt_end;  /* e.g. Qwen3 moved a <think> block in front */
    else {
        st = tw_error_set(err, TW_ERR_UNSUPPORTED, "chat span: the text before the last assistant message depends on it");
        goto done;
    }
    if (prompt_end == SIZE_MAX || prompt_end > content_begin) prompt_end = content_begin;

    /* the end-of-turn marker right after the content */
    size_t turn_end = content_end, k = content_end;
    while (k < rn && (R[k] == ' ' || R[k] == '\t' || R[k] == '\n')) k++;
    const char *const *stops = t->stops;
    for (size_t i = 0; i <= STOPS_MAX; i++) {
        const char *s = i < STOPS_MAX ? stops[i] : oo.eos_token;
        if (!s || !*s) continue;
        size_t sl = strlen(s);
        if (k + sl <= rn && memcmp(R + k, s, sl) == 0) { turn_end = k + sl; break; }
        if (i < STOPS_MAX && !stops[i]) i = STOPS_MAX - 1;  /* jump to the eos check */
    }
    span->prompt_end = base + prompt_end;
    span->content_begin = base + content_begin;
    span->content_end = base + content_end;
    span->turn_end = base + turn_end;
    st = TW_OK;
done:
    if (st) {
        out->len = base;
        if (out->data) out->data[base] = '\0';
    }
    free(sm);
    tw_buf_free(&pb);
    tw_buf_free(&sbuf);
    return st;
}

/* =====================================================================================
 * user template files
 * ===================================================================================== */

/* Stop strings of a template of no known family: how it closes an assistant turn, i.e. the
 * text right after the assistant's content (up to the first '>' when it starts with '<',
 * else up to whitespace), unless that is just the EOS token. */
static tw_status derive_stops(tw_chat_template *t, tw_error *err)
{
    static const char EOS[] = "\x01\x02EOS\x02\x01";
    tw_chat_msg m[2] = {{"user", "Hi"}, {"assistant", SENTINEL}};
    tw_chat_opts o = tw_chat_default_opts();
    o.bos_token = "";
    o.eos_token = EOS;
    tw_buf b = {0};
    tw_error perr;
    if (render(t, m, 2, &o, &b, &perr) != TW_OK) {
        tw_buf_free(&b);
        return TW_OK;  /* e.g. the template insists on a system message: no derived stop */
    }
    const char *hit = find_unique(b.data, b.len, SENTINEL);
    if (hit) {
        const char *p = hit + strlen(SENTINEL), *end = b.data + b.len;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        const char *q = p;
        if (q < end && *q == '<') {
            const char *gt = memchr(q, '>', (size_t)(end - q));
            q = gt ? gt + 1 : q;
        } else
            while (q < end && *q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') q++;
        if (q > p && !memfind(p, (size_t)(q - p), EOS, strlen(EOS)) && !memfind(p, (size_t)(q - p), "\x01", 1)) {
            t->stop_own[0] = strndup(p, (size_t)(q - p));
            if (!t->stop_own[0]) {
                tw_buf_free(&b);
                return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            }
            t->stops[0] = t->stop_own[0];
            t->stops[1] = NULL;
        }
    }
    tw_buf_free(&b);
    return TW_OK;
}

tw_status tw_chat_template_load(tw_chat_template **out, const char *path, tw_error *err)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    tw_status st = tw_file_read(path, &text, &len, err);
    if (st) return st;
    if (memchr(text, '\0', len)) {
        free(text);
        return tw_error_set(err, TW_ERR_PARSE, "%s: not a text file (holds a NUL byte)", path);
    }
    size_t bad;
    if (!tw_utf8_valid(text, len, &bad)) {
        free(text);
        return tw_error_set(err, TW_ERR_PARSE, "%s: offset %zu: invalid UTF-8", path, bad);
    }
    /* tokenizer_config.json: {"chat_template": "..." | [{"name": ..., "template": ...}]} */
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
    char *src = text;
    json_t *root = NULL;
    if (i + 1 < len && text[i] == '{' && text[i + 1 + strspn(text + i + 1, " \t\r\n")] == '"') {
        json_error_t je;
        root = json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &je);  /* model_max_length can be 1e30 */
        if (!root) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: line %d: %s", path, je.line, je.text);
            free(text);
            return st;
        }
        json_t *ct = json_object_get(root, "chat_template");
        const char *s = NULL;
        if (json_is_string(ct)) s = json_string_value(ct);
        else if (json_is_array(ct)) {
            for (size_t k = 0; k < json_array_size(ct); k++) {
                json_t *e = json_array_get(ct, k);
                if (json_is_string(json_object_get(e, "name")) &&
                    strcmp(json_string_value(json_object_get(e, "name")), "default") == 0 &&
                    json_is_string(json_object_get(e, "template")))
                    s = json_string_value(json_object_get(e, "template"));
            }
        }
        if (!s) {
            json_decref(root);
            free(text);
            return tw_error_set(err, TW_ERR_INVALID,
                                "%s: JSON without a \"chat_template\" string (or a list holding one named \"default\")", path);
        }
        src = (char *)s;
    }
    tw_chat_family f = detect(src);
    if (f == TW_CHAT_UNKNOWN) f = TW_CHAT_CUSTOM;
    tw_chat_template *t = NULL;
    st = template_alloc(&t, src, f, err);
    json_decref(root);
    free(text);
    if (st) return st;
    if ((st = compile(t, path, err)) || (f == TW_CHAT_CUSTOM && (st = derive_stops(t, err)))) {
        tw_chat_template_free(t);
        return st;
    }
    *out = t;
    return TW_OK;
}
