/* jinja_eval.c — the renderer of the Jinja interpreter (jinja.h): walks a compiled syntax
 * tree with the template's variables and appends the text to the output. Here are variable
 * scopes (a frame per for-loop iteration, namespace() objects shared), attribute and item
 * access with jinja2's sandbox rule (no names starting with '_'), slices, the operators,
 * the global functions (range, namespace, dict, raise_exception, strftime_now), the str /
 * dict / list methods, the filters and the tests, each as jinja2 3.1 (filters.py, tests.py)
 * and Python define them, and the limits on steps and output size.
 *
 * Deliberately not here: the value semantics all of these share (str, repr, tojson,
 * comparisons: jinja_value.c), parsing and name resolution (jinja_parse.c), and what the
 * variables mean for a chat (chat.c fills them in). */
#include "model/jinja_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
        var *nv = jj_amalloc(c, cap * sizeof(var));
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
    case V_UNDEF: jj_fail_undef(c, obj);
    case V_STR:
        if ((id = jj_fn_lookup(JJ_STR_METHODS, name, n))) goto bound;
        break;
    case V_DICT:
        if (!(obj.u.d->flags & (DF_NAMESPACE | DF_LOOP)) && (id = jj_fn_lookup(JJ_DICT_METHODS, name, n))) goto bound;
        if ((slot = jj_dict_find_s(obj.u.d, name, n))) return *slot;
        break;
    case V_LIST:
        if ((id = jj_fn_lookup(JJ_LIST_METHODS, name, n))) goto bound;
        break;
    default: break;
    }
    return v_undef(name, n);
bound:;
    jv *recv = jj_amalloc(c, sizeof *recv);
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
    case V_UNDEF: jj_fail_undef(c, obj);
    case V_DICT: {
        jv *slot = jj_dict_find(obj.u.d, key);
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
            int64_t i = norm_index(key, jj_cp_count(obj.u.s.p, obj.u.s.n));
            if (i >= 0) {
                size_t b = jj_cp_offset(obj.u.s.p, obj.u.s.n, (size_t)i);
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
        jj_fail(c, TW_ERR_RUNTIME, x->line, "slice indices must be integers or None, not %s", jj_type_name(v));
    *given = true;
    return v.u.i;
}

static jv slice_v(jctx *c, jv obj, const node *sl)
{
    bool g0, g1, g2;
    if (obj.k == V_UNDEF) jj_fail_undef(c, obj);
    if (obj.k != V_LIST && obj.k != V_STR)
        jj_fail(c, TW_ERR_RUNTIME, sl->line, "'%s' object is not subscriptable", jj_type_name(obj));
    int64_t start = slice_arg(c, sl->a, &g0), stop = slice_arg(c, sl->b, &g1), step = slice_arg(c, sl->c, &g2);
    if (!g2) step = 1;
    if (step == 0) jj_fail(c, TW_ERR_RUNTIME, sl->line, "slice step cannot be zero");
    int64_t len = obj.k == V_LIST ? (int64_t)obj.u.l->n : (int64_t)jj_cp_count(obj.u.s.p, obj.u.s.n);
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
        jlist *l = jj_list_new(c, 4);
        l->flags = obj.u.l->flags;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) jj_list_push(c, l, obj.u.l->v[i]);
        return v_list(l);
    }
    const char *p = obj.u.s.p;
    size_t n = obj.u.s.n;
    if (step == 1) {
        if (stop <= start) return v_str("", 0);
        size_t b = jj_cp_offset(p, n, (size_t)start);
        size_t e = b + jj_cp_offset(p + b, n - b, (size_t)(stop - start));
        return v_str(p + b, e - b);
    }
    /* general step: code point offsets first */
    size_t *offs = jj_amalloc(c, ((size_t)len + 1) * sizeof(size_t));
    for (size_t i = 0, k = 0; k <= (size_t)len; k++) {
        offs[k] = i;
        if (i < n) {
            i++;
            while (i < n && ((unsigned char)p[i] & 0xc0) == 0x80) i++;
        }
    }
    sb b = {0};
    jj_sb_put(c, &b, "", 0);
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) jj_sb_put(c, &b, p + offs[i], offs[i + 1] - offs[i]);
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
    if (v.k == V_UNDEF) jj_fail_undef(c, v);
    if (v.k != V_STR) jj_fail(c, TW_ERR_RUNTIME, c->line, "%s must be a string, not %s", what, jj_type_name(v));
    return v;
}
static int64_t want_int(jctx *c, jv v, const char *what)
{
    if (v.k == V_UNDEF) jj_fail_undef(c, v);
    if (v.k != V_INT && v.k != V_BOOL) jj_fail(c, TW_ERR_RUNTIME, c->line, "%s must be an integer, not %s", what, jj_type_name(v));
    return v.u.i;
}

/* ---- string methods ------------------------------------------------------------------ */

/* mode 0 upper, 1 lower, 2 str.title() (a word starts after a non-letter), 3 capitalize,
 * 4 jinja2's title filter (a word starts after a run of - whitespace ( { [ <). */
static jv str_case(jctx *c, jv s, int mode)
{
    char *o = jj_amalloc(c, s.u.s.n + 1);
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
    jj_sb_put(c, &b, "", 0);
    const char *p = s.u.s.p, *end = p + s.u.s.n;
    if (old.u.s.n == 0) {
        /* Python inserts `new` before every character and at the end */
        int64_t k = 0;
        while (p <= end) {
            if (count < 0 || k < count) { jj_sb_put(c, &b, nw.u.s.p, nw.u.s.n); k++; }
            if (p == end) break;
            int len;
            u8_at(p, (size_t)(end - p), 0, &len);
            jj_sb_put(c, &b, p, (size_t)len);
            p += len;
        }
        return v_sb(&b);
    }
    int64_t k = 0;
    for (;;) {
        const char *q = (count < 0 || k < count) ? jj_memfind(p, (size_t)(end - p), old.u.s.p, old.u.s.n) : NULL;
        if (!q) { jj_sb_put(c, &b, p, (size_t)(end - p)); break; }
        jj_sb_put(c, &b, p, (size_t)(q - p));
        jj_sb_put(c, &b, nw.u.s.p, nw.u.s.n);
        p = q + old.u.s.n;
        k++;
    }
    return v_sb(&b);
}

/* str.split / str.rsplit */
static jv str_split(jctx *c, jv s, jv sep, int64_t maxsplit, bool from_right)
{
    jlist *l = jj_list_new(c, 4);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    if (sep.k == V_NONE || sep.k == V_UNDEF) {
        /* runs of whitespace; no empty strings */
        if (!from_right || maxsplit < 0) {
            size_t i = 0;
            int64_t k = 0;
            for (;;) {
                i = jj_skip_ws(p, n, i);
                if (i >= n) break;
                if (maxsplit >= 0 && k >= maxsplit) { jj_list_push(c, l, v_str(p + i, n - i)); break; }
                size_t j = i;
                while (j < n) {
                    int len;
                    if (py_space(u8_at(p, n, j, &len))) break;
                    j += (size_t)len;
                }
                jj_list_push(c, l, v_str(p + i, j - i));
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
            if (k >= maxsplit) { jj_list_push(c, l, v_str(p, e)); break; }
            size_t b = e;
            while (b > 0) {
                size_t q = u8_prev(p, b);
                int len;
                if (py_space(u8_at(p, b, q, &len))) break;
                b = q;
            }
            jj_list_push(c, l, v_str(p + b, e - b));
            k++;
            e = b;
        }
    } else {
        want_str(c, sep, "split separator");
        if (sep.u.s.n == 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "empty separator");
        if (!from_right) {
            size_t i = 0;
            int64_t k = 0;
            for (;;) {
                const char *q = (maxsplit < 0 || k < maxsplit) ? jj_memfind(p + i, n - i, sep.u.s.p, sep.u.s.n) : NULL;
                if (!q) { jj_list_push(c, l, v_str(p + i, n - i)); break; }
                jj_list_push(c, l, v_str(p + i, (size_t)(q - (p + i))));
                i = (size_t)(q - p) + sep.u.s.n;
                k++;
            }
            return v_list(l);
        }
        size_t e = n;
        int64_t k = 0;
        for (;;) {
            const char *q = (maxsplit < 0 || k < maxsplit) ? jj_memrfind(p, e, sep.u.s.p, sep.u.s.n) : NULL;
            if (!q) { jj_list_push(c, l, v_str(p, e)); break; }
            size_t b = (size_t)(q - p) + sep.u.s.n;
            jj_list_push(c, l, v_str(p + b, e - b));
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
    jj_sb_put(c, &b, "", 0);
    for (size_t i = 0; i < items->n; i++) {
        if (i) jj_sb_put(c, &b, sep.u.s.p, sep.u.s.n);
        jj_put_str(c, &b, items->v[i]);
    }
    return v_sb(&b);
}

static jv items_list(jctx *c, const jdict *d)
{
    jlist *l = jj_list_new(c, d->n);
    for (size_t i = 0; i < d->n; i++) {
        jlist *t = jj_list_new(c, 2);
        t->flags = LF_TUPLE;
        jj_list_push(c, t, d->key[i]);
        jj_list_push(c, t, d->val[i]);
        jj_list_push(c, l, v_list(t));
    }
    return v_list(l);
}

/* Python str.splitlines() (without keepends). */
static jlist *splitlines(jctx *c, jv s)
{
    jlist *l = jj_list_new(c, 4);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0, start = 0;
    while (i < n) {
        int len;
        uint32_t cp = u8_at(p, n, i, &len);
        bool br = cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' || (cp >= 0x1c && cp <= 0x1e) || cp == 0x85 ||
                  cp == 0x2028 || cp == 0x2029;
        if (br) {
            jj_list_push(c, l, v_str(p + start, i - start));
            i += (size_t)len;
            if (cp == '\r' && i < n && p[i] == '\n') i++;
            start = i;
        } else i += (size_t)len;
    }
    if (start < n) jj_list_push(c, l, v_str(p + start, n - start));
    return l;
}

static jv strftime_v(jctx *c, jv fmt)
{
    want_str(c, fmt, "strftime_now format");
    time_t t = (time_t)c->now;
    struct tm tmv;
    if (!localtime_r(&t, &tmv)) jj_fail(c, TW_ERR_RUNTIME, c->line, "strftime_now: cannot convert the time");
    char out[512];
    const char *f = jj_astrdup(c, fmt.u.s.p, fmt.u.s.n);
    size_t n = strftime(out, sizeof out, f, &tmv);
    if (n == 0 && fmt.u.s.n > 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "strftime_now: format gives more than %zu bytes", sizeof out);
    return v_str(jj_astrdup(c, out, n), n);
}

static jv make_dict(jctx *c, const args *a, int flags)
{
    jdict *d = jj_dict_new(c, 4);
    d->flags = flags;
    if (a->npos > 1) jj_fail(c, TW_ERR_RUNTIME, c->line, "expected at most 1 positional argument, got %zu", a->npos);
    if (a->npos == 1) {
        jv src = a->pos[0];
        if (src.k != V_DICT) jj_fail(c, TW_ERR_RUNTIME, c->line, "expected a mapping, got %s", jj_type_name(src));
        for (size_t i = 0; i < src.u.d->n; i++) jj_dict_set(c, d, src.u.d->key[i], src.u.d->val[i]);
    }
    for (size_t k = 0; k < a->nkw; k++) {
        if ((flags & DF_NAMESPACE) && a->kwl[k] > 0 && a->kwn[k][0] == '_')
            jj_fail(c, TW_ERR_RUNTIME, c->line, "namespace attributes cannot start with '_'");
        jj_dict_set(c, d, v_str(a->kwn[k], a->kwl[k]), a->kwv[k]);
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
        } else jj_fail(c, TW_ERR_RUNTIME, c->line, "range expected 1 to 3 arguments, got %zu", a->npos);
        if (step == 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "range() arg 3 must not be zero");
        jlist *l = jj_list_new(c, 4);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (l->n >= MAX_RANGE) jj_fail(c, TW_ERR_RUNTIME, c->line, "range() longer than %d items", MAX_RANGE);
            jj_list_push(c, l, v_int(i));
        }
        return v_list(l);
    }
    case G_NAMESPACE: return make_dict(c, a, DF_NAMESPACE);
    case G_DICT: return make_dict(c, a, 0);
    case G_RAISE: {
        jv msg = jj_to_str(c, arg(a, 0, "message", v_str("", 0)));
        jj_fail(c, TW_ERR_INVALID, 0, "the template rejects this conversation: %.*s", (int)msg.u.s.n, msg.u.s.p);
    }
    case G_STRFTIME: return strftime_v(c, arg(a, 0, "format", v_undef("format", 6)));
    case M_STARTSWITH: case M_ENDSWITH:
        if (a->npos != 1) jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "%s() takes exactly one argument here", jj_fn_label(f.fn));
        return v_bool(affix_match(c, self, a->pos[0], f.fn == M_ENDSWITH));
    case M_SPLIT: case M_RSPLIT:
        return str_split(c, self, arg(a, 0, "sep", none), want_int(c, arg(a, 1, "maxsplit", v_int(-1)), "maxsplit"),
                         f.fn == M_RSPLIT);
    case M_STRIP: case M_LSTRIP: case M_RSTRIP: {
        jv ch = arg(a, 0, "chars", none);
        if (ch.k == V_NONE) return jj_py_strip(self, NULL, 0, f.fn != M_RSTRIP, f.fn != M_LSTRIP);
        want_str(c, ch, "strip argument");
        return jj_py_strip(self, ch.u.s.p, ch.u.s.n, f.fn != M_RSTRIP, f.fn != M_LSTRIP);
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
        const char *q = f.fn == M_FIND ? jj_memfind(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n)
                                       : jj_memrfind(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n);
        return v_int(q ? (int64_t)jj_cp_count(self.u.s.p, (size_t)(q - self.u.s.p)) : -1);
    }
    case M_COUNT: {
        jv sub = want_str(c, arg(a, 0, "sub", v_undef("sub", 3)), "count argument");
        if (sub.u.s.n == 0) return v_int((int64_t)jj_cp_count(self.u.s.p, self.u.s.n) + 1);
        int64_t k = 0;
        const char *p = self.u.s.p, *end = p + self.u.s.n, *q;
        while ((q = jj_memfind(p, (size_t)(end - p), sub.u.s.p, sub.u.s.n))) { k++; p = q + sub.u.s.n; }
        return v_int(k);
    }
    case M_JOIN: {
        jlist *items = jj_iter_items(c, arg(a, 0, "iterable", v_undef("iterable", 8)));
        for (size_t i = 0; i < items->n; i++)
            if (items->v[i].k != V_STR)
                jj_fail(c, TW_ERR_RUNTIME, c->line, "sequence item %zu: expected str instance, %s found", i, jj_type_name(items->v[i]));
        return join_items(c, self, items);
    }
    case M_SPLITLINES: return v_list(splitlines(c, self));
    case M_ITEMS: return items_list(c, self.u.d);
    case M_KEYS: case M_VALUES: {
        jlist *l = jj_list_new(c, self.u.d->n);
        for (size_t i = 0; i < self.u.d->n; i++) jj_list_push(c, l, f.fn == M_KEYS ? self.u.d->key[i] : self.u.d->val[i]);
        return v_list(l);
    }
    case M_GET: {
        jv *slot = jj_dict_find(self.u.d, arg(a, 0, "key", v_undef("key", 3)));
        return slot ? *slot : arg(a, 1, "default", none);
    }
    case M_LCOUNT: {
        jv x = arg(a, 0, "value", v_undef("value", 5));
        int64_t k = 0;
        for (size_t i = 0; i < self.u.l->n; i++) k += jj_v_eq(self.u.l->v[i], x);
        return v_int(k);
    }
    case M_INDEX: {
        jv x = arg(a, 0, "value", v_undef("value", 5));
        for (size_t i = 0; i < self.u.l->n; i++)
            if (jj_v_eq(self.u.l->v[i], x)) return v_int((int64_t)i);
        jj_fail(c, TW_ERR_RUNTIME, c->line, "list.index(x): x not in list");
    }
    default:
        jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "'%s' is not callable here", jj_fn_label(f.fn));
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
    case T_EQ: return jj_v_eq(v, x);
    case T_NE: return !jj_v_eq(v, x);
    case T_LT: return jj_v_cmp(c, v, x, "<") < 0;
    case T_LE: return jj_v_cmp(c, v, x, "<=") <= 0;
    case T_GT: return jj_v_cmp(c, v, x, ">") > 0;
    case T_GE: return jj_v_cmp(c, v, x, ">=") >= 0;
    case T_IN: return jj_v_in(c, v, x);
    case T_SAMEAS:
        if (v.k != x.k) return false;
        if (v.k == V_LIST) return v.u.l == x.u.l;
        if (v.k == V_DICT) return v.u.d == x.u.d;
        return jj_v_eq(v, x);
    case T_ODD: return (want_int(c, v, "odd test value") & 1) != 0;
    case T_EVEN: return (want_int(c, v, "even test value") & 1) == 0;
    case T_DIVISIBLEBY: {
        int64_t d = want_int(c, x, "divisibleby argument");
        if (d == 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "integer division or modulo by zero");
        return want_int(c, v, "divisibleby value") % d == 0;
    }
    case T_LOWER: case T_UPPER: {
        jv s = jj_to_str(c, v);
        bool cased = false;
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            if (ch >= 'a' && ch <= 'z') { if (id == T_UPPER) return false; cased = true; }
            if (ch >= 'A' && ch <= 'Z') { if (id == T_LOWER) return false; cased = true; }
        }
        return cased;
    }
    case T_ESCAPED: return false;
    default: jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported test");
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
        jj_fail(c, TW_ERR_RUNTIME, c->line, "test '%s' takes %zu argument%s, got %zu", jj_fn_label_test(id), want, want == 1 ? "" : "s", got);
}

/* Test by name (select/reject/selectattr). */
static bool run_named_test(jctx *c, jv name, jv v, const args *a, size_t first_arg)
{
    want_str(c, name, "test name");
    int id = jj_fn_lookup(JJ_TESTS, name.u.s.p, name.u.s.n);
    if (!id) jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported test '%.*s'", (int)name.u.s.n, name.u.s.p);
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
        v = digits ? getitem_v(c, v, v_int(strtoll(jj_astrdup(c, p, n), NULL, 10))) : getitem_v(c, v, v_str(p, n));
        if (!dot) break;
        p = dot + 1;
    }
    return v;
}

static jv html_escape(jctx *c, jv s)
{
    sb b = {0};
    jj_sb_put(c, &b, "", 0);
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        switch (ch) {
        case '&': jj_sb_puts(c, &b, "&amp;"); break;
        case '<': jj_sb_puts(c, &b, "&lt;"); break;
        case '>': jj_sb_puts(c, &b, "&gt;"); break;
        case '"': jj_sb_puts(c, &b, "&#34;"); break;
        case '\'': jj_sb_puts(c, &b, "&#39;"); break;
        default: jj_sb_putc(c, &b, ch);
        }
    }
    return v_sb(&b);
}

static jv num_arith(jctx *c, int op, jv x, jv y);

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

static void check_filter_args(jctx *c, int id, const args *a)
{
    const filter_sig *sig = NULL;
    for (const filter_sig *f = FILTER_SIGS; f->id != F_NONE; f++)
        if (f->id == id) sig = f;
    if (!sig) return;  /* variable arguments */
    size_t np = 0;
    while (sig->params[np]) np++;
    const char *name = "?";
    for (const fn_name *t = JJ_FILTERS; t->name; t++)
        if (t->id == id) { name = t->name; break; }
    if (a->npos > np) jj_fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' takes at most %zu arguments, got %zu", name, np, a->npos);
    size_t have = a->npos;
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i = 0;
        while (i < np && !(strlen(sig->params[i]) == a->kwl[k] && memcmp(sig->params[i], a->kwn[k], a->kwl[k]) == 0)) i++;
        if (i == np) jj_fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' got an unexpected keyword argument '%.*s'", name, (int)a->kwl[k], a->kwn[k]);
        if (i < a->npos) jj_fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' got multiple values for '%s'", name, sig->params[i]);
        if (i < sig->required) have++;
    }
    if (have < sig->required) jj_fail(c, TW_ERR_RUNTIME, c->line, "filter '%s' needs %zu arguments", name, sig->required);
}

static jv apply_filter(jctx *c, int id, jv v, const args *a)
{
    jv none = v_none();
    switch (id) {
    case F_ABS:
        if (v.k == V_INT || v.k == V_BOOL) return v_int(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.k == V_FLOAT) return v_float(fabs(v.u.f));
        if (v.k == V_UNDEF) jj_fail_undef(c, v);
        jj_fail(c, TW_ERR_RUNTIME, c->line, "bad operand type for abs(): '%s'", jj_type_name(v));
    case F_CAPITALIZE: return str_case(c, jj_to_str(c, v), 3);
    case F_LOWER: return str_case(c, jj_to_str(c, v), 1);
    case F_UPPER: return str_case(c, jj_to_str(c, v), 0);
    case F_TITLE: return str_case(c, jj_to_str(c, v), 4);
    case F_COUNT: case F_LENGTH: return jj_v_len(c, v);
    case F_DEFAULT: {
        jv def = arg(a, 0, "default_value", v_str("", 0));
        bool boolean = jj_truthy(arg(a, 1, "boolean", v_bool(false)));
        if (v.k == V_UNDEF || (boolean && !jj_truthy(v))) return def;
        return v;
    }
    case F_ESCAPE: return html_escape(c, jj_to_str(c, v));
    case F_FIRST: case F_LAST: {
        if (id == F_LAST && v.k == V_DICT) jj_fail(c, TW_ERR_RUNTIME, c->line, "'dict' object is not reversible");
        jlist *l = jj_iter_items(c, v);
        if (l->n == 0) return v_undef("first", 5);
        return l->v[id == F_FIRST ? 0 : l->n - 1];
    }
    case F_FLOAT: case F_INT: {
        jv def = arg(a, 0, "default", id == F_INT ? v_int(0) : v_float(0.0));
        if (v.k == V_INT || v.k == V_BOOL) return id == F_INT ? v_int(v.u.i) : v_float((double)v.u.i);
        if (v.k == V_FLOAT) return id == F_INT ? v_int((int64_t)v.u.f) : v;
        if (v.k == V_STR) {
            char *s = jj_astrdup(c, v.u.s.p, v.u.s.n), *e;
            jv t = jj_py_strip(v_cstr(s), NULL, 0, true, true);
            char *st = jj_astrdup(c, t.u.s.p, t.u.s.n);
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
        bool first = jj_truthy(arg(a, 1, "first", v_bool(false))), blank = jj_truthy(arg(a, 2, "blank", v_bool(false)));
        sb ind = {0};
        jj_sb_put(c, &ind, "", 0);
        if (w.k == V_STR) jj_sb_put(c, &ind, w.u.s.p, w.u.s.n);
        else for (int64_t k = 0; k < want_int(c, w, "indent width"); k++) jj_sb_putc(c, &ind, ' ');
        jv s = jj_to_str(c, v);
        sb src = {0};
        jj_sb_put(c, &src, s.u.s.p, s.u.s.n);
        jj_sb_putc(c, &src, '\n');
        jlist *lines = splitlines(c, v_sb(&src));
        sb b = {0};
        jj_sb_put(c, &b, "", 0);
        if (first) jj_sb_put(c, &b, ind.p, ind.n);
        for (size_t k = 0; k < lines->n; k++) {
            jv ln = lines->v[k];
            if (k > 0) {
                jj_sb_putc(c, &b, '\n');
                if (blank || ln.u.s.n > 0) jj_sb_put(c, &b, ind.p, ind.n);
            }
            jj_sb_put(c, &b, ln.u.s.p, ln.u.s.n);
        }
        return v_sb(&b);
    }
    case F_ITEMS:
        if (v.k == V_UNDEF) return v_list(jj_list_new(c, 1));
        if (v.k != V_DICT) jj_fail(c, TW_ERR_RUNTIME, c->line, "can only get item pairs from a mapping");
        return items_list(c, v.u.d);
    case F_JOIN: {
        jv sep = jj_to_str(c, arg(a, 0, "d", v_str("", 0)));
        jv attr = arg(a, 1, "attribute", none);
        jlist *items = jj_iter_items(c, v);
        if (attr.k != V_NONE) {
            jlist *m = jj_list_new(c, items->n);
            for (size_t i = 0; i < items->n; i++) jj_list_push(c, m, attr_path(c, items->v[i], attr));
            items = m;
        }
        return join_items(c, sep, items);
    }
    case F_LIST: {
        jlist *src = jj_iter_items(c, v), *l = jj_list_new(c, src->n);
        for (size_t i = 0; i < src->n; i++) jj_list_push(c, l, src->v[i]);
        return v_list(l);
    }
    case F_MAP: {
        jlist *src = jj_iter_items(c, v), *l = jj_list_new(c, src->n);
        if (a->npos == 0) {
            jv attr = arg(a, 99, "attribute", v_undef("attribute", 9));
            if (attr.k == V_UNDEF) jj_fail(c, TW_ERR_RUNTIME, c->line, "map() needs a filter name or attribute=");
            jv def = arg(a, 99, "default", v_undef("default", 7));
            for (size_t i = 0; i < src->n; i++) {
                jv r = attr_path(c, src->v[i], attr);
                jj_list_push(c, l, r.k == V_UNDEF && def.k != V_UNDEF ? def : r);
            }
            return v_list(l);
        }
        jv name = want_str(c, a->pos[0], "map filter name");
        int fid = jj_fn_lookup(JJ_FILTERS, name.u.s.p, name.u.s.n);
        if (!fid) jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported filter '%.*s'", (int)name.u.s.n, name.u.s.p);
        args sub = *a;
        sub.npos = 0;
        for (size_t i = 1; i < a->npos; i++) sub.pos[sub.npos++] = a->pos[i];
        check_filter_args(c, fid, &sub);
        for (size_t i = 0; i < src->n; i++) jj_list_push(c, l, apply_filter(c, fid, src->v[i], &sub));
        return v_list(l);
    }
    case F_SELECT: case F_REJECT: case F_SELECTATTR: case F_REJECTATTR: {
        bool attr = id == F_SELECTATTR || id == F_REJECTATTR, want = id == F_SELECT || id == F_SELECTATTR;
        jlist *src = jj_iter_items(c, v), *l = jj_list_new(c, src->n);
        size_t ti = attr ? 1 : 0;
        if (attr && a->npos < 1) jj_fail(c, TW_ERR_RUNTIME, c->line, "missing attribute argument");
        for (size_t i = 0; i < src->n; i++) {
            jv x = attr ? attr_path(c, src->v[i], a->pos[0]) : src->v[i];
            bool ok = a->npos > ti ? run_named_test(c, a->pos[ti], x, a, ti + 1) : jj_truthy(x);
            if (ok == want) jj_list_push(c, l, src->v[i]);
        }
        return v_list(l);
    }
    case F_REPLACE: {
        jv s = jj_to_str(c, v);
        return str_replace(c, s, jj_to_str(c, arg(a, 0, "old", v_str("", 0))), jj_to_str(c, arg(a, 1, "new", v_str("", 0))),
                           arg(a, 2, "count", none).k == V_NONE ? -1 : want_int(c, arg(a, 2, "count", none), "count"));
    }
    case F_REVERSE: {
        if (v.k == V_STR) {
            char *o = jj_amalloc(c, v.u.s.n + 1);
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
        jlist *src = jj_iter_items(c, v), *l = jj_list_new(c, src->n);
        for (size_t i = src->n; i-- > 0;) jj_list_push(c, l, src->v[i]);
        return v_list(l);
    }
    case F_SAFE: return v;
    case F_STRING: return jj_to_str(c, v);
    case F_TOJSON: {
        /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
        json_opts o = {.ensure_ascii = jj_truthy(arg(a, 0, "ensure_ascii", v_bool(false))),
                       .sort_keys = jj_truthy(arg(a, 3, "sort_keys", v_bool(false)))};
        jv ind = arg(a, 1, "indent", none), seps = arg(a, 2, "separators", none);
        if (ind.k == V_STR) o.indent = jj_astrdup(c, ind.u.s.p, ind.u.s.n);
        else if (ind.k != V_NONE) {
            int64_t w = want_int(c, ind, "tojson indent");
            char *sp = jj_amalloc(c, (size_t)(w > 0 ? w : 0) + 1);
            memset(sp, ' ', (size_t)(w > 0 ? w : 0));
            sp[w > 0 ? w : 0] = '\0';
            o.indent = sp;
        }
        o.item_sep = o.indent ? "," : ", ";
        o.key_sep = ": ";
        if (seps.k == V_LIST && seps.u.l->n == 2 && seps.u.l->v[0].k == V_STR && seps.u.l->v[1].k == V_STR) {
            o.item_sep = jj_astrdup(c, seps.u.l->v[0].u.s.p, seps.u.l->v[0].u.s.n);
            o.key_sep = jj_astrdup(c, seps.u.l->v[1].u.s.p, seps.u.l->v[1].u.s.n);
        } else if (seps.k != V_NONE) jj_fail(c, TW_ERR_RUNTIME, c->line, "tojson separators must be a pair of strings");
        sb b = {0};
        jj_sb_put(c, &b, "", 0);
        jj_json_dump(c, &b, v, &o, 0);
        return v_sb(&b);
    }
    case F_TRIM: {
        jv s = jj_to_str(c, v), ch = arg(a, 0, "chars", none);
        if (ch.k == V_NONE) return jj_py_strip(s, NULL, 0, true, true);
        want_str(c, ch, "trim chars");
        return jj_py_strip(s, ch.u.s.p, ch.u.s.n, true, true);
    }
    case F_UNIQUE: {
        jlist *src = jj_iter_items(c, v), *l = jj_list_new(c, src->n);
        bool cs = jj_truthy(arg(a, 0, "case_sensitive", v_bool(false)));
        for (size_t i = 0; i < src->n; i++) {
            jv x = src->v[i];
            jv kx = (!cs && x.k == V_STR) ? str_case(c, x, 1) : x;
            bool seen = false;
            for (size_t j = 0; j < l->n && !seen; j++) {
                jv y = l->v[j];
                seen = jj_v_eq(kx, (!cs && y.k == V_STR) ? str_case(c, y, 1) : y);
            }
            if (!seen) jj_list_push(c, l, x);
        }
        return v_list(l);
    }
    case F_SUM: {
        jv acc = arg(a, 1, "start", v_int(0)), attr = arg(a, 0, "attribute", none);
        jlist *src = jj_iter_items(c, v);
        for (size_t i = 0; i < src->n; i++)
            acc = num_arith(c, OP_ADD, acc, attr.k == V_NONE ? src->v[i] : attr_path(c, src->v[i], attr));
        return acc;
    }
    case F_MIN: case F_MAX: {
        jlist *src = jj_iter_items(c, v);
        if (src->n == 0) return v_undef("min", 3);
        jv best = src->v[0];
        for (size_t i = 1; i < src->n; i++) {
            int r = jj_v_cmp(c, src->v[i], best, "<");
            if (id == F_MIN ? r < 0 : r > 0) best = src->v[i];
        }
        return best;
    }
    case F_DICTSORT: {
        if (v.k != V_DICT) jj_fail(c, TW_ERR_RUNTIME, c->line, "dictsort expects a mapping, got %s", jj_type_name(v));
        jv items = items_list(c, v.u.d);
        jlist *l = items.u.l;
        for (size_t i = 1; i < l->n; i++)
            for (size_t j = i; j > 0 && jj_cmp_keys(&l->v[j - 1].u.l->v[0], &l->v[j].u.l->v[0]) > 0; j--) {
                jv t = l->v[j]; l->v[j] = l->v[j - 1]; l->v[j - 1] = t;
            }
        return items;
    }
    case F_WORDCOUNT: {
        jv s = jj_to_str(c, v);
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
    default: jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "unsupported filter");
    }
}

/* ---- operators ------------------------------------------------------------------- */

static _Noreturn void bad_operands(jctx *c, const char *op, jv x, jv y)
{
    if (x.k == V_UNDEF) jj_fail_undef(c, x);
    if (y.k == V_UNDEF) jj_fail_undef(c, y);
    jj_fail(c, TW_ERR_RUNTIME, c->line, "unsupported operand type(s) for %s: '%s' and '%s'", op, jj_type_name(x), jj_type_name(y));
}

static jv repeat(jctx *c, jv seq, int64_t times)
{
    if (times < 0) times = 0;
    if (seq.k == V_STR) {
        if (seq.u.s.n && (uint64_t)times > OUTPUT_LIMIT / seq.u.s.n) jj_fail(c, TW_ERR_RUNTIME, c->line, "string repetition too large");
        sb b = {0};
        jj_sb_put(c, &b, "", 0);
        for (int64_t i = 0; i < times; i++) jj_sb_put(c, &b, seq.u.s.p, seq.u.s.n);
        return v_sb(&b);
    }
    if (seq.u.l->n && (uint64_t)times > MAX_RANGE / seq.u.l->n) jj_fail(c, TW_ERR_RUNTIME, c->line, "list repetition too large");
    jlist *l = jj_list_new(c, 4);
    l->flags = seq.u.l->flags;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->n; j++) jj_list_push(c, l, seq.u.l->v[j]);
    return v_list(l);
}

static jv num_arith(jctx *c, int op, jv x, jv y)
{
    static const char *const names[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    const char *nm = names[op];
    if (op == OP_ADD) {
        if (x.k == V_STR && y.k == V_STR) {
            char *o = jj_amalloc(c, x.u.s.n + y.u.s.n + 1);
            memcpy(o, x.u.s.p, x.u.s.n);
            memcpy(o + x.u.s.n, y.u.s.p, y.u.s.n);
            o[x.u.s.n + y.u.s.n] = '\0';
            return v_str(o, x.u.s.n + y.u.s.n);
        }
        if (x.k == V_LIST && y.k == V_LIST && (x.u.l->flags & LF_TUPLE) == (y.u.l->flags & LF_TUPLE)) {
            jlist *l = jj_list_new(c, x.u.l->n + y.u.l->n);
            l->flags = x.u.l->flags;
            for (size_t i = 0; i < x.u.l->n; i++) jj_list_push(c, l, x.u.l->v[i]);
            for (size_t i = 0; i < y.u.l->n; i++) jj_list_push(c, l, y.u.l->v[i]);
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
        if (g == 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "division by zero");
        return v_float(f / g);
    case OP_FLOORDIV: case OP_MOD:
        if (ints) {
            if (j == 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "integer division or modulo by zero");
            if (i == INT64_MIN && j == -1) goto ovf;
            int64_t q = i / j, m = i % j;
            if (m != 0 && ((m < 0) != (j < 0))) { q--; m += j; }
            return v_int(op == OP_FLOORDIV ? q : m);
        }
        if (g == 0) jj_fail(c, TW_ERR_RUNTIME, c->line, "float modulo or division by zero");
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
    jj_fail(c, TW_ERR_UNSUPPORTED, c->line, "integer overflow in '%s' (64-bit integers only)", nm);
}

static bool compare_op(jctx *c, int op, jv x, jv y)
{
    switch (op) {
    case OP_EQ: return jj_v_eq(x, y);
    case OP_NE: return !jj_v_eq(x, y);
    case OP_LT: return jj_v_cmp(c, x, y, "<") < 0;
    case OP_LE: return jj_v_cmp(c, x, y, "<=") <= 0;
    case OP_GT: return jj_v_cmp(c, x, y, ">") > 0;
    case OP_GE: return jj_v_cmp(c, x, y, ">=") >= 0;
    case OP_IN: return jj_v_in(c, x, y);
    default: return !jj_v_in(c, x, y);
    }
}

static jv eval(jctx *c, const node *x)
{
    if (++c->steps > MAX_STEPS) jj_fail(c, TW_ERR_RUNTIME, x->line, "the template runs too long (over %d steps)", MAX_STEPS);
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
        jlist *l = jj_list_new(c, x->nkids);
        if (x->kind == N_TUPLE) l->flags = LF_TUPLE;
        for (size_t i = 0; i < x->nkids; i++) jj_list_push(c, l, eval(c, x->kids[i]));
        r = v_list(l);
        break;
    }
    case N_DICT: {
        jdict *d = jj_dict_new(c, x->nkids / 2 + 1);
        for (size_t i = 0; i + 1 < x->nkids; i += 2) {
            jv k = eval(c, x->kids[i]);
            if (k.k == V_LIST && !(k.u.l->flags & LF_TUPLE)) jj_fail(c, TW_ERR_RUNTIME, x->line, "unhashable type: 'list'");
            if (k.k == V_DICT) jj_fail(c, TW_ERR_RUNTIME, x->line, "unhashable type: 'dict'");
            jj_dict_set(c, d, k, eval(c, x->kids[i + 1]));
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
        if (f.k == V_UNDEF) jj_fail_undef(c, f);
        if (f.k != V_FUNC) jj_fail(c, TW_ERR_RUNTIME, x->line, "'%s' object is not callable", jj_type_name(f));
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
    case N_NOT: r = v_bool(!jj_truthy(eval(c, x->a))); break;
    case N_AND: { jv l = eval(c, x->a); r = jj_truthy(l) ? eval(c, x->b) : l; break; }
    case N_OR: { jv l = eval(c, x->a); r = jj_truthy(l) ? l : eval(c, x->b); break; }
    case N_NEG: case N_POS: {
        jv v = eval(c, x->a);
        c->line = x->line;
        if (v.k == V_INT || v.k == V_BOOL) {
            if (x->kind == N_NEG && v.u.i == INT64_MIN) jj_fail(c, TW_ERR_UNSUPPORTED, x->line, "integer overflow");
            r = v_int(x->kind == N_NEG ? -v.u.i : v.u.i);
        } else if (v.k == V_FLOAT) r = v_float(x->kind == N_NEG ? -v.u.f : v.u.f);
        else if (v.k == V_UNDEF) jj_fail_undef(c, v);
        else jj_fail(c, TW_ERR_RUNTIME, x->line, "bad operand type for unary %c: '%s'", x->kind == N_NEG ? '-' : '+', jj_type_name(v));
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
        jj_sb_put(c, &b, "", 0);
        for (size_t i = 0; i < x->nkids; i++) jj_put_str(c, &b, eval(c, x->kids[i]));
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
        if (jj_truthy(eval(c, x->b))) r = eval(c, x->a);
        else r = x->c ? eval(c, x->c) : v_undef("conditional expression", 22);
        break;
    default: jj_fail(c, TW_ERR_RUNTIME, x->line, "internal error: bad expression node %d", x->kind);
    }
    c->line = saved;
    return r;
}

/* ---- statements -------------------------------------------------------------------- */

static void out_put(jctx *c, const char *p, size_t n)
{
    if (c->out->len - c->out_base + n > OUTPUT_LIMIT)
        jj_fail(c, TW_ERR_RUNTIME, c->line, "rendered text longer than %zu MiB", OUTPUT_LIMIT >> 20);
    if (n && tw_buf_append(c->out, p, n)) jj_fail(c, TW_ERR_NOMEM, 0, "out of memory");
}

static void emit(jctx *c, jv v)
{
    if (v.k == V_STR) { out_put(c, v.u.s.p, v.u.s.n); return; }
    if (v.k == V_UNDEF) return;
    jv s = jj_to_str(c, v);
    out_put(c, s.u.s.p, s.u.s.n);
}

static void bind_targets(jctx *c, const node *x, frame *f, jv item)
{
    size_t nt = (size_t)x->op;
    if (nt == 1) { frame_set(c, f, x->names[0], x->name_lens[0], item); return; }
    jlist *parts = item.k == V_LIST ? item.u.l : NULL;
    if (item.k == V_STR) parts = jj_iter_items(c, item);
    if (!parts || parts->n != nt)
        jj_fail(c, TW_ERR_RUNTIME, x->line, "cannot unpack %s into %zu loop variables", jj_type_name(item), nt);
    for (size_t k = 0; k < nt; k++) frame_set(c, f, x->names[k], x->name_lens[k], parts->v[k]);
}

static void exec(jctx *c, const node *x);

static void exec_for(jctx *c, const node *x)
{
    jlist *items = jj_iter_items(c, eval(c, x->a));
    if (x->b) {
        jlist *kept = jj_list_new(c, items->n);
        for (size_t i = 0; i < items->n; i++) {
            frame f = {.up = c->top};
            c->top = &f;
            bind_targets(c, x, &f, items->v[i]);
            bool keep = jj_truthy(eval(c, x->b));
            c->top = f.up;
            if (keep) jj_list_push(c, kept, items->v[i]);
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
    jdict *loop = jj_dict_new(c, 11);
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
    if (++c->steps > MAX_STEPS) jj_fail(c, TW_ERR_RUNTIME, x->line, "the template runs too long (over %d steps)", MAX_STEPS);
    c->line = x->line;
    switch (x->kind) {
    case N_BODY:
        for (size_t i = 0; i < x->nkids && !c->ctl; i++) exec(c, x->kids[i]);
        return;
    case N_TEXT: out_put(c, x->s, x->slen); return;
    case N_PRINT: emit(c, eval(c, x->a)); return;
    case N_IF:
        if (jj_truthy(eval(c, x->a))) exec(c, x->b);
        else if (x->c) exec(c, x->c);
        return;
    case N_FOR: exec_for(c, x); return;
    case N_SET: case N_SETBLOCK: {
        jv v;
        if (x->kind == N_SET) v = eval(c, x->a);
        else {
            size_t mark = c->out->len;
            exec(c, x->b);
            v = v_str(jj_astrdup(c, c->out->data ? c->out->data + mark : "", c->out->len - mark), c->out->len - mark);
            c->out->len = mark;
            if (c->out->data) c->out->data[mark] = '\0';
        }
        if (x->s2) {
            jv *ns = lookup(c, x->s, x->slen);
            if (!ns || ns->k != V_DICT || !(ns->u.d->flags & DF_NAMESPACE))
                jj_fail(c, TW_ERR_RUNTIME, x->line, "cannot assign attribute on non-namespace object '%.*s'", (int)x->slen, x->s);
            if (x->s2len > 0 && x->s2[0] == '_') jj_fail(c, TW_ERR_RUNTIME, x->line, "namespace attributes cannot start with '_'");
            jj_dict_set(c, ns->u.d, v_str(x->s2, x->s2len), v);
        } else frame_set(c, c->top, x->s, x->slen, v);
        return;
    }
    case N_BREAK: c->ctl = 1; return;
    case N_CONTINUE: c->ctl = 2; return;
    default: jj_fail(c, TW_ERR_RUNTIME, x->line, "internal error: bad statement node %d", x->kind);
    }
}

/* =====================================================================================
 * entry point
 * ===================================================================================== */

tw_status tw_jinja_render(const tw_jinja *p, const char *label, const tw_jinja_vars *v, tw_buf *out,
                          tw_error *err)
{
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
    c->label = label;
    c->out = out;
    c->out_base = base;
    c->now = v->now;
    if (setjmp(c->jb)) {
        tw_status st = c->err->status;
        out->len = base;
        if (out->data) out->data[base] = '\0';
        jj_arena_free(A);
        free(A);
        free(c);
        return st;
    }

    frame *globals = jj_amalloc(c, sizeof *globals), *top = jj_amalloc(c, sizeof *top);
    memset(globals, 0, sizeof *globals);
    memset(top, 0, sizeof *top);
    top->up = globals;
    c->top = top;
    jlist *ml = jj_list_new(c, v->n_messages);
    for (size_t i = 0; i < v->n_messages; i++) {
        jdict *d = jj_dict_new(c, 2);
        jj_dict_set_s(c, d, "role", v_cstr(v->messages[i].role));
        jj_dict_set_s(c, d, "content", v_cstr(v->messages[i].content));
        jj_list_push(c, ml, v_dict(d));
    }
    frame_set(c, globals, "messages", 8, v_list(ml));
    frame_set(c, globals, "tools", 5, v_none());
    frame_set(c, globals, "documents", 9, v_none());
    frame_set(c, globals, "add_generation_prompt", 21, v_bool(v->add_generation_prompt));
    frame_set(c, globals, "bos_token", 9, v->bos_token ? v_cstr(v->bos_token) : v_none());
    frame_set(c, globals, "eos_token", 9, v->eos_token ? v_cstr(v->eos_token) : v_none());
    if (v->date_string) frame_set(c, globals, "date_string", 11, v_cstr(v->date_string));
    if (v->enable_thinking >= 0) frame_set(c, globals, "enable_thinking", 15, v_bool(v->enable_thinking != 0));
    frame_set(c, globals, "range", 5, v_func(G_RANGE, NULL));
    frame_set(c, globals, "namespace", 9, v_func(G_NAMESPACE, NULL));
    frame_set(c, globals, "raise_exception", 15, v_func(G_RAISE, NULL));
    frame_set(c, globals, "dict", 4, v_func(G_DICT, NULL));
    if (v->now) frame_set(c, globals, "strftime_now", 12, v_func(G_STRFTIME, NULL));

    exec(c, p->root);
    if (!out->data && tw_buf_append(out, "", 0)) jj_fail(c, TW_ERR_NOMEM, 0, "out of memory");
    jj_arena_free(A);
    free(A);
    free(c);
    return TW_OK;
}
