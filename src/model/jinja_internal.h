/* jinja_internal.h — what the three parts of the Jinja interpreter share: the limits, the
 * value model (jv), the names and ids of the built-ins, tokens and the syntax tree, the
 * context that the lexer, parser and renderer thread through, and the runtime helpers of
 * jinja_value.c (arena allocation, error unwinding, Python value semantics).
 *
 * Not part of any API: chat.c includes model/jinja.h, never this. Names with external
 * linkage carry a jj_ / JJ_ prefix; the one-line helpers are static inline here.
 *
 * Deliberately not here: how anything is parsed (jinja_parse.c) or evaluated
 * (jinja_eval.c). */
#ifndef TW_MODEL_JINJA_INTERNAL_H
#define TW_MODEL_JINJA_INTERNAL_H

#include "model/jinja.h"

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Limits that keep a hostile or broken template from exhausting the machine. */
#define ARENA_LIMIT ((size_t)512 << 20)   /* bytes per template / per render */
#define OUTPUT_LIMIT ((size_t)256 << 20)  /* bytes of rendered text */
#define MAX_DEPTH 200                     /* nesting of expressions / statements */
#define MAX_ARGS 16                       /* arguments of one call / filter / test */
#define MAX_RANGE 1000000                 /* items from range() */
#define MAX_STEPS 10000000                /* evaluated nodes per render (a real chat template
                                             takes ~50 per message) */

/* =====================================================================================
 * arena: blocks freed all at once (a program's tree; everything one render makes)
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

void jj_arena_free(arena *a);

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

/* =====================================================================================
 * built-in names: resolved to ids by the parser (unknown names are parse errors),
 * dispatched by jinja_eval.c; the tables are in jinja_value.c
 * ===================================================================================== */

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

/* Filters and tests. */
enum {
    F_NONE, F_ABS, F_CAPITALIZE, F_COUNT, F_DEFAULT, F_ESCAPE, F_FIRST, F_FLOAT, F_INDENT, F_INT,
    F_ITEMS, F_JOIN, F_LAST, F_LENGTH, F_LIST, F_LOWER, F_MAP, F_REJECT, F_REJECTATTR,
    F_REPLACE, F_REVERSE, F_SAFE, F_SELECT, F_SELECTATTR, F_STRING, F_TITLE, F_TOJSON, F_TRIM,
    F_UNIQUE, F_UPPER, F_SUM, F_MIN, F_MAX, F_DICTSORT, F_WORDCOUNT
};
enum {
    T_NONE_, T_DEFINED, T_UNDEFINED, T_NONE, T_TRUE, T_FALSE, T_BOOLEAN, T_STRING, T_NUMBER,
    T_INTEGER, T_FLOAT, T_MAPPING, T_ITERABLE, T_SEQUENCE, T_CALLABLE, T_EQ, T_NE, T_LT, T_LE,
    T_GT, T_GE, T_IN, T_SAMEAS, T_ODD, T_EVEN, T_DIVISIBLEBY, T_LOWER, T_UPPER, T_ESCAPED
};

/* A name → id table, ended by {NULL, 0}. */
typedef struct fn_name { const char *name; int id; } fn_name;
extern const fn_name JJ_GLOBAL_FNS[], JJ_STR_METHODS[], JJ_DICT_METHODS[], JJ_LIST_METHODS[];
extern const fn_name JJ_FILTERS[], JJ_TESTS[];

/* The id of name s[0..n) in table t; 0 when absent. */
int jj_fn_lookup(const fn_name *t, const char *s, size_t n);
/* The name of a function / method id, of a test id ("?" when unknown). */
const char *jj_fn_label(int id);
const char *jj_fn_label_test(int id);

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

/* A compiled template (model/jinja.h): its arena holds the tokens and the tree. */
struct tw_jinja {
    arena A;
    node *root;
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

/* Set the error ("<label>: line N: ..." or, for line 0, "<label>: ...") and longjmp to the
 * entry point's setjmp(c->jb). */
_Noreturn void jj_fail(jctx *c, tw_status st, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "'name' is undefined" for a V_UNDEF value, at c->line. */
_Noreturn void jj_fail_undef(jctx *c, jv v);
/* Arena memory (fails with TW_ERR_NOMEM past ARENA_LIMIT); a NUL-terminated copy. */
void *jj_amalloc(jctx *c, size_t n);
char *jj_astrdup(jctx *c, const char *s, size_t n);

/* ---- string builder in the arena (nothing to free when an error unwinds) ----------- */

typedef struct sb {
    char *p;
    size_t n, cap;
} sb;

void jj_sb_put(jctx *c, sb *b, const void *p, size_t n);
void jj_sb_puts(jctx *c, sb *b, const char *s);
void jj_sb_putc(jctx *c, sb *b, char ch);

/* ---- value constructors ------------------------------------------------------------ */

static inline jv v_undef(const char *name, size_t n) { jv v = {.k = V_UNDEF}; v.u.s.p = name; v.u.s.n = n; return v; }
static inline jv v_none(void) { jv v = {.k = V_NONE}; return v; }
static inline jv v_bool(bool b) { jv v = {.k = V_BOOL}; v.u.i = b; return v; }
static inline jv v_int(int64_t i) { jv v = {.k = V_INT}; v.u.i = i; return v; }
static inline jv v_float(double f) { jv v = {.k = V_FLOAT}; v.u.f = f; return v; }
static inline jv v_str(const char *p, size_t n) { jv v = {.k = V_STR}; v.u.s.p = p; v.u.s.n = n; return v; }
static inline jv v_cstr(const char *p) { return v_str(p, strlen(p)); }
static inline jv v_sb(sb *b) { return v_str(b->p ? b->p : "", b->n); }
static inline jv v_func(int id, const jv *recv) { jv v = {.k = V_FUNC}; v.fn = (uint16_t)id; v.u.recv = recv; return v; }
static inline jv v_list(jlist *l) { jv v = {.k = V_LIST}; v.u.l = l; return v; }
static inline jv v_dict(jdict *d) { jv v = {.k = V_DICT}; v.u.d = d; return v; }

jlist *jj_list_new(jctx *c, size_t cap);
void jj_list_push(jctx *c, jlist *l, jv v);
jdict *jj_dict_new(jctx *c, size_t cap);
/* The value under key (compared with ==) / under the string key s[0..n); NULL: absent. */
jv *jj_dict_find(const jdict *d, jv key);
jv *jj_dict_find_s(const jdict *d, const char *s, size_t n);
void jj_dict_set(jctx *c, jdict *d, jv key, jv val);
void jj_dict_set_s(jctx *c, jdict *d, const char *key, jv val);

/* ---- UTF-8 and Python string helpers ------------------------------------------------- */

/* Python's str.isspace() (also what the regex \s matches on str). */
static inline bool py_space(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static inline uint32_t u8_at(const char *s, size_t n, size_t i, int *len)
{
    uint32_t cp;
    *len = tw_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    return cp;
}
/* Start of the code point that ends right before byte i (i > 0). */
static inline size_t u8_prev(const char *s, size_t i)
{
    do i--; while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80);
    return i;
}

static inline bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static inline bool is_alpha_(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }

/* \s* from i (Python's Unicode whitespace). */
size_t jj_skip_ws(const char *s, size_t n, size_t i);
/* Python str.strip/lstrip/rstrip: chars NULL strips whitespace. */
jv jj_py_strip(jv s, const char *chars, size_t nchars, bool left, bool right);
/* Code points in s[0..n); byte offset of code point index `idx` (0 <= idx <= count). */
size_t jj_cp_count(const char *s, size_t n);
size_t jj_cp_offset(const char *s, size_t n, size_t idx);
/* First / last occurrence of nd[0..nn) in h[0..hn); NULL: none. */
const char *jj_memfind(const char *h, size_t hn, const char *nd, size_t nn);
const char *jj_memrfind(const char *h, size_t hn, const char *nd, size_t nn);

/* ---- str(), repr(), tojson ----------------------------------------------------------- */

/* Python's type name of a value, for messages. */
const char *jj_type_name(jv v);
/* Append str(v) to b; str(v) as a value. */
void jj_put_str(jctx *c, sb *b, jv v);
jv jj_to_str(jctx *c, jv v);

/* json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson. */
typedef struct json_opts {
    bool ensure_ascii, sort_keys;
    const char *indent;   /* NULL: single line */
    const char *item_sep, *key_sep;
} json_opts;
void jj_json_dump(jctx *c, sb *b, jv v, const json_opts *o, int level);

/* ---- comparisons and truth -------------------------------------------------------------- */

static inline bool is_num(jv v) { return v.k == V_BOOL || v.k == V_INT || v.k == V_FLOAT; }
static inline double num_f(jv v) { return v.k == V_FLOAT ? v.u.f : (double)v.u.i; }

bool jj_truthy(jv v);
bool jj_v_eq(jv a, jv b);
/* <0, 0, >0; fails (TypeError) for unordered types; op names the operator in messages. */
int jj_v_cmp(jctx *c, jv a, jv b, const char *op);
/* qsort-style order of dict keys (tojson sort_keys, dictsort). */
int jj_cmp_keys(const void *x, const void *y);
/* Python `item in seq`. */
bool jj_v_in(jctx *c, jv item, jv seq);
/* The items a for loop / list() / join visit: list items, dict keys, string characters. */
jlist *jj_iter_items(jctx *c, jv v);
/* len(v) as a value. */
jv jj_v_len(jctx *c, jv v);

#endif /* TW_MODEL_JINJA_INTERNAL_H */
