/* jinja_parse.c — source text to syntax tree for the Jinja interpreter (jinja.h): the lexer
 * (jinja2 lexer.py with trim_blocks and lstrip_blocks: whitespace control, comments, raw
 * blocks, Python literals) and a recursive-descent parser (jinja2 parser.py: expressions by
 * precedence, the statements jinja.h lists). Names of filters, tests, functions and methods
 * are resolved here, so a template using anything outside the subset fails to compile.
 *
 * Deliberately not here: evaluation (jinja_eval.c), and constant folding (jinja2 evaluates
 * literal-only expressions when it compiles; here everything is evaluated when rendering —
 * docs/chat-templates.md lists the visible difference). */
#include "model/jinja_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* =====================================================================================
 * lexer (jinja2 lexer.py, with trim_blocks=True and lstrip_blocks=True)
 * ===================================================================================== */

static void tok_push(jctx *c, size_t *cap, tok t)
{
    if (c->ntok == *cap) {
        tok *nt = jj_amalloc(c, 2 * *cap * sizeof(tok));
        memcpy(nt, c->toks, c->ntok * sizeof(tok));
        c->toks = nt;
        *cap *= 2;
    }
    c->toks[c->ntok++] = t;
}

static bool all_space(const char *s, size_t n) { return jj_skip_ws(s, n, 0) == n; }

static int count_nl(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) k += s[i] == '\n';
    return k;
}

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
    char *o = jj_amalloc(c, n + 1);
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
    if (cp >= 0xd800 && cp <= 0xdfff) jj_fail(c, TW_ERR_PARSE, line, "string literal holds a lone surrogate \\u%04x", cp);
    if (cp > 0x10ffff) jj_fail(c, TW_ERR_PARSE, line, "string literal escape \\U%08x is beyond U+10FFFF", cp);
    char u[4];
    jj_sb_put(c, b, u, (size_t)tw_utf8_encode(cp, u));
}

/* The value of a string literal's body s[0..n): Python's unicode-escape codec applied after
 * non-ASCII characters were backslash-replaced (lexer.py wrap()). */
static jv unescape(jctx *c, const char *s, size_t n, int line)
{
    sb b = {0};
    jj_sb_put(c, &b, "", 0);
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            size_t j = i;
            while (j < n && s[j] != '\\') j++;
            jj_sb_put(c, &b, s + i, j - i);
            i = j;
            continue;
        }
        if (i + 1 >= n) { jj_sb_putc(c, &b, '\\'); i++; continue; }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case '\n': break;
        case '\\': jj_sb_putc(c, &b, '\\'); break;
        case '\'': jj_sb_putc(c, &b, '\''); break;
        case '"': jj_sb_putc(c, &b, '"'); break;
        case 'a': jj_sb_putc(c, &b, '\a'); break;
        case 'b': jj_sb_putc(c, &b, '\b'); break;
        case 'f': jj_sb_putc(c, &b, '\f'); break;
        case 'n': jj_sb_putc(c, &b, '\n'); break;
        case 'r': jj_sb_putc(c, &b, '\r'); break;
        case 't': jj_sb_putc(c, &b, '\t'); break;
        case 'v': jj_sb_putc(c, &b, '\v'); break;
        case 'x': case 'u': case 'U': {
            int want = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < want; k++) {
                int h = i + (size_t)k < n ? hexval(s[i + (size_t)k]) : -1;
                if (h < 0) jj_fail(c, TW_ERR_PARSE, line, "truncated \\%c escape in a string literal", e);
                cp = cp * 16 + (uint32_t)h;
            }
            i += (size_t)want;
            put_cp(c, &b, cp, line);
            break;
        }
        case 'N': jj_fail(c, TW_ERR_UNSUPPORTED, line, "\\N{...} escapes in string literals are not supported");
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
                jj_sb_puts(c, &b, esc);
                i = i - 1 + (size_t)len;
            } else {
                jj_sb_putc(c, &b, '\\');
                jj_sb_putc(c, &b, e);
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
    char *s = jj_amalloc(c, srclen + 1);
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
    c->toks = jj_amalloc(c, cap * sizeof(tok));
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
            size_t q = jj_skip_ws(s, n, p);
            if (n - q >= 3 && memcmp(s + q, "raw", 3) == 0) {
                q = jj_skip_ws(s, n, q + 3);
                if (q + 2 < n && s[q] == '-' && s[q + 1] == '%' && s[q + 2] == '}') { raw = true; raw_end = jj_skip_ws(s, n, q + 3); }
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
                    end = s[j] == '-' ? jj_skip_ws(s, n, j + 3) : j + 3;
                    break;
                }
                if (s[j] == '#' && s[j + 1] == '}') {
                    end = j + 2;
                    if (end < n && s[end] == '\n') end++;
                    break;
                }
            }
            if (!end) jj_fail(c, TW_ERR_PARSE, line, "missing end of comment tag");
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
                q = jj_skip_ws(s, n, q);
                if (n - q < 6 || memcmp(s + q, "endraw", 6) != 0) continue;
                q = jj_skip_ws(s, n, q + 6);
                if (q + 2 < n && s[q] == '+' && s[q + 1] == '%' && s[q + 2] == '}') end = q + 3;
                else if (q + 2 < n && s[q] == '-' && s[q + 1] == '%' && s[q + 2] == '}') end = jj_skip_ws(s, n, q + 3);
                else if (q + 1 < n && s[q] == '%' && s[q + 1] == '}') {
                    end = q + 2;
                    if (end < n && s[end] == '\n') end++;
                } else continue;
                bend = j;
                esign = sg;
                break;
            }
            if (!end) jj_fail(c, TW_ERR_PARSE, line, "missing end of raw directive");
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
                jj_fail(c, TW_ERR_PARSE, line, "unexpected end of template, expected '%s'", kind == '%' ? "%}" : "}}");
            if (bal == 0) {
                size_t end = 0;
                if (kind == '%') {
                    if (p + 2 < n && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') end = p + 3;
                    else if (p + 2 < n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') end = jj_skip_ws(s, n, p + 3);
                    else if (p + 1 < n && s[p] == '%' && s[p + 1] == '}') {
                        end = p + 2;
                        if (end < n && s[end] == '\n') end++;
                    }
                } else {
                    if (p + 2 < n && s[p] == '-' && s[p + 1] == '}' && s[p + 2] == '}') end = jj_skip_ws(s, n, p + 3);
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
                    if (errno) jj_fail(c, TW_ERR_UNSUPPORTED, line, "integer literal %.*s is out of range", (int)(e2 - p), s + p);
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
                if (e >= n) jj_fail(c, TW_ERR_PARSE, line, "unterminated string literal");
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
                if (!oplen) jj_fail(c, TW_ERR_PARSE, line, "unexpected character '%.*s'", len, s + p);
                if (oplen == 1 && (s[p] == '(' || s[p] == '[' || s[p] == '{')) bal++;
                if (oplen == 1 && (s[p] == ')' || s[p] == ']' || s[p] == '}')) {
                    if (bal == 0) jj_fail(c, TW_ERR_PARSE, line, "unexpected '%c'", s[p]);
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
 * parser (jinja2 parser.py, the statements and expressions listed in jinja.h)
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
    jj_fail(c, TW_ERR_PARSE, cur(c)->line, "expected %s, got %s", wanted, tok_desc(cur(c), buf, sizeof buf));
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
    node *x = jj_amalloc(c, sizeof *x);
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
        node **v = jj_amalloc(c, cap * sizeof *v);
        const char **nm = jj_amalloc(c, cap * sizeof *nm);
        size_t *ln = jj_amalloc(c, cap * sizeof *ln);
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
    if (++c->depth > MAX_DEPTH) jj_fail(c, TW_ERR_UNSUPPORTED, cur(c)->line, "nesting deeper than %d", MAX_DEPTH);
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
            jj_fail(c, TW_ERR_UNSUPPORTED, cur(c)->line, "*args / **kwargs in calls are not supported");
        if (cur(c)->k == K_NAME && tok_is(peek_tok(c, 1), K_OP, "=")) {
            tok *nm = cur(c);
            adv(c);
            adv(c);
            nv_push(c, &a, parse_expression(c, true), nm->s, nm->n);
        } else {
            for (size_t k = 0; k < a.n; k++)
                if (a.names[k]) jj_fail(c, TW_ERR_PARSE, cur(c)->line, "positional argument after keyword argument");
            nv_push(c, &a, parse_expression(c, true), NULL, 0);
        }
        if (a.n > MAX_ARGS) jj_fail(c, TW_ERR_UNSUPPORTED, cur(c)->line, "more than %d arguments", MAX_ARGS);
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
        if (!jj_fn_lookup(JJ_GLOBAL_FNS, callee->s, callee->slen))
            jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported function '%.*s()'", (int)callee->slen, callee->s);
    } else if (callee->kind == N_ATTR) {
        if (!jj_fn_lookup(JJ_STR_METHODS, callee->s, callee->slen) && !jj_fn_lookup(JJ_DICT_METHODS, callee->s, callee->slen) &&
            !jj_fn_lookup(JJ_LIST_METHODS, callee->s, callee->slen))
            jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported method '.%.*s()'", (int)callee->slen, callee->s);
    } else jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported call");
    parse_call_args(c, x);
    return x;
}

static node *parse_filter(jctx *c, node *operand)
{
    node *x = mk(c, N_FILTER, cur(c)->line);
    adv(c); /* | */
    tok *nm = cur(c);
    expect_kind(c, K_NAME, "a filter name");
    if (is_op(c, ".")) jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "dotted filter names are not supported");
    x->op = jj_fn_lookup(JJ_FILTERS, nm->s, nm->n);
    if (!x->op) jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported filter '%.*s'", (int)nm->n, nm->s);
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
    if (is_op(c, ".")) jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "dotted test names are not supported");
    x->op = jj_fn_lookup(JJ_TESTS, nm->s, nm->n);
    if (!x->op) jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "unsupported test '%.*s'", (int)nm->n, nm->s);
    x->s = nm->s;
    x->slen = nm->n;
    x->a = operand;
    tok *t = cur(c);
    if (is_op(c, "(")) parse_call_args(c, x);
    else if ((t->k == K_NAME || t->k == K_STR || t->k == K_INT || t->k == K_FLOAT || tok_is(t, K_OP, "(") ||
              tok_is(t, K_OP, "[") || tok_is(t, K_OP, "{")) &&
             !is_kw(c, "else") && !is_kw(c, "or") && !is_kw(c, "and")) {
        if (is_kw(c, "is")) jj_fail(c, TW_ERR_PARSE, t->line, "you cannot chain multiple tests with is");
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
            if (a.n == 0) jj_fail(c, TW_ERR_PARSE, line, "expected a subscript");
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
        jj_sb_put(c, &b, "", 0);
        while (cur(c)->k == K_STR) {
            jj_sb_put(c, &b, cur(c)->s, cur(c)->n);
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
        if (nops == 64) jj_fail(c, TW_ERR_UNSUPPORTED, line, "comparison chain too long");
        if (a.n == 0) nv_push(c, &a, first, NULL, 0);
        ops[nops++] = op;
        nv_push(c, &a, parse_math1(c), NULL, 0);
    }
    if (!nops) return first;
    node *x = mk(c, N_COMPARE, line);
    nv_attach(x, &a);
    x->ops = jj_amalloc(c, nops * sizeof(int));
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
    if (is_kw(c, "recursive")) jj_fail(c, TW_ERR_UNSUPPORTED, line, "recursive for loops are not supported");
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
    if (is_op(c, ",")) jj_fail(c, TW_ERR_UNSUPPORTED, line, "tuple assignment in set is not supported");
    if (is_op(c, "=")) {
        adv(c);
        x->a = parse_tuple(c, true, false);
        expect_kind(c, K_BEND, "end of statement block '%}'");
        return x;
    }
    if (is_op(c, "|")) jj_fail(c, TW_ERR_UNSUPPORTED, line, "filtered block set is not supported");
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
        if (c->loops == 0) jj_fail(c, TW_ERR_PARSE, line, "'%.*s' outside of a for loop", (int)t->n, t->s);
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
                jj_fail(c, TW_ERR_PARSE, line, "unexpected '%.*s' (no block is open that it could close)", (int)t->n, t->s);
        jj_fail(c, TW_ERR_UNSUPPORTED, line, "unsupported Jinja tag '%.*s'", (int)t->n, t->s);
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
            if (ends) jj_fail(c, TW_ERR_PARSE, t->line, "unexpected end of template: missing '{%% %s %%}'", ends[0]);
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
 * entry points
 * ===================================================================================== */

tw_status tw_jinja_compile(tw_jinja **out, const char *src, const char *label, tw_error *err)
{
    *out = NULL;
    tw_jinja *p = calloc(1, sizeof *p);
    jctx *c = calloc(1, sizeof *c);
    if (!p || !c) {
        free(p);
        free(c);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    tw_error local;
    c->A = &p->A;
    c->err = err ? err : &local;
    c->label = label;
    if (setjmp(c->jb)) {
        tw_status st = c->err->status;
        free(c);
        tw_jinja_free(p);
        return st;
    }
    lex(c, src, strlen(src));
    c->pos = 0;
    p->root = parse_body(c, NULL);
    free(c);
    *out = p;
    return TW_OK;
}

void tw_jinja_free(tw_jinja *p)
{
    if (!p) return;
    jj_arena_free(&p->A);
    free(p);
}
