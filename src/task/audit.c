/* audit.c — the data audit behind `tunewise audit`: per split row counts, lengths, class
 * balance, exact / normalized duplicates, conflicting labels, extract-output JSON validity
 * and field inventory, references per item; leakage between splits (exact, normalized and
 * MinHash near-duplicates, see minhash.c); and a readiness verdict with actionable reasons.
 *
 * Every grouping uses open-addressing tables keyed by tw_hash64 with the strings compared
 * on a hash match, so counts are exact (no hash-collision error) and the work is linear in
 * the rows; pairwise comparisons happen only inside LSH buckets.
 *
 * Deliberately not done here: reading files or splitting (dataset.c, split.c), the
 * human-readable table (audit_format.c: tw_audit_format) and printing (the CLI prints what
 * that returns), near-duplicates *within* a split (only across splits, where they mean
 * leakage), and label-noise detection beyond identical inputs with different outputs. The
 * MDE helper is a local stand-in for src/score/stats.c. */
#include "task/audit.h"
#include "task/audit_internal.h"
#include "score/stats.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define TEXT_SEED 0x617564697454ULL   /* "auditT": fixed hash seed for grouping */

static const char *const SPLIT_NAMES[TW_SPLIT_COUNT] = {"train", "dev", "test"};
static const char *const TYPE_NAMES[] = {"classify", "extract", "generate"};

/* ---- params -------------------------------------------------------------- */

tw_audit_params tw_audit_default_params(void)
{
    tw_audit_params p = {
        .type = TW_TASK_CLASSIFY,
        .labels = NULL,
        .n_labels = 0,
        .seed = 1,
        .near_dup_enabled = true,
        .near_dup = tw_minhash_default_params(),
        .max_examples = 5,
        .min_train = 100,
        .good_train = 1000,
        .min_eval = 200,
        .good_eval = 500,
        .min_per_class = 10,
        .k_shot = 5,
        .mde_accuracy = 0.8,
        .alpha = 0.05,
        .power = 0.8,
    };
    return p;
}

tw_audit_params tw_audit_params_for_task(const tw_task *task)
{
    tw_audit_params p = tw_audit_default_params();
    p.type = task->type;
    p.labels = (const char *const *)task->labels;
    p.n_labels = task->n_labels;
    p.seed = task->seed;
    return p;
}

const char *tw_audit_level_str(tw_audit_level l)
{
    switch (l) {
    case TW_AUDIT_READY: return "ready";
    case TW_AUDIT_WARNINGS: return "usable with warnings";
    default: return "not ready";
    }
}

static const char *level_code(tw_audit_level l)
{
    return l == TW_AUDIT_READY ? "ready" : l == TW_AUDIT_WARNINGS ? "warnings" : "not_ready";
}

/* ---- statistics helpers ---------------------------------------------------- */

/* Normal quantiles come from the shared statistics leaf (score/stats.h): score/ depends
 * only on base/, so task/ may use it without a cycle. */
double tw_audit_mde_two_proportion(size_t n, double p, double alpha, double power)
{
    if (n == 0) return NAN;
    double z = tw_norm_ppf(1 - alpha / 2) + tw_norm_ppf(power);
    return z * sqrt(2 * p * (1 - p) / (double)n);
}

/* Rows needed so that the MDE above is at most d. */
static size_t mde_rows_for(double d, double p, double alpha, double power)
{
    double z = tw_norm_ppf(1 - alpha / 2) + tw_norm_ppf(power);
    return (size_t)ceil(2 * p * (1 - p) * z * z / (d * d));
}

typedef struct dist {
    size_t min, max, p50, p90, p99;
    double mean;
    size_t n;
} dist;

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v (n >= 1): the smallest value with at least q of
 * the values at or below it. */
static size_t pct(const size_t *v, size_t n, double q)
{
    size_t r = (size_t)ceil(q * (double)n);
    if (r < 1) r = 1;
    if (r > n) r = n;
    return v[r - 1];
}

static dist dist_of(size_t *v, size_t n)
{
    dist d = {0};
    d.n = n;
    if (n == 0) return d;
    qsort(v, n, sizeof *v, cmp_size);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i];
    d.min = v[0];
    d.max = v[n - 1];
    d.mean = s / (double)n;
    d.p50 = pct(v, n, 0.50);
    d.p90 = pct(v, n, 0.90);
    d.p99 = pct(v, n, 0.99);
    return d;
}

static size_t count_words(const char *s, size_t n)
{
    size_t w = 0;
    bool in = false;
    for (size_t i = 0; i < n; i++) {
        bool sp = isspace((unsigned char)s[i]) != 0;
        if (!sp && !in) w++;
        in = !sp;
    }
    return w;
}

static const char *pl(size_t n, const char *one, const char *many) { return n == 1 ? one : many; }

void audit_fmt_count(size_t v, char *out, size_t cap)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%zu", v);
    size_t o = 0;
    for (int i = 0; i < n && o + 1 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 2 < cap) out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = '\0';
}

/* ---- grouping rows by identical text ---------------------------------------- */

typedef struct gslot {
    uint64_t h;
    uint32_t g;      /* NONE = empty */
} gslot;

/* Rows of one split grouped by identical text (raw input, or normalized input). Members
 * of group g: first[g], next[first[g]], ... in row order. */
typedef struct grouping {
    const char *const *text;   /* borrowed, per row */
    const size_t *len;
    uint32_t *of_row, *next;   /* (n) */
    uint32_t *first, *count, *last;   /* (ng) */
    size_t ng;
    gslot *slot;
    size_t mask;
} grouping;

static void grouping_free(grouping *g)
{
    free(g->of_row);
    free(g->next);
    free(g->first);
    free(g->count);
    free(g->last);
    free(g->slot);
    memset(g, 0, sizeof *g);
}

/* Group of text t (hash h) in g, or NONE. */
static uint32_t grouping_find(const grouping *g, uint64_t h, const char *t, size_t len)
{
    if (!g->slot) return NONE;
    for (size_t i = h & g->mask;; i = (i + 1) & g->mask) {
        const gslot *s = &g->slot[i];
        if (s->g == NONE) return NONE;
        if (s->h != h) continue;
        uint32_t r = g->first[s->g];
        if (g->len[r] == len && memcmp(g->text[r], t, len) == 0) return s->g;
    }
}

static tw_status grouping_build(grouping *g, size_t n, const char *const *text, const size_t *len,
                                tw_error *err)
{
    memset(g, 0, sizeof *g);
    g->text = text;
    g->len = len;
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    g->mask = cap - 1;
    size_t nn = n ? n : 1;
    g->slot = malloc(cap * sizeof *g->slot);
    g->of_row = malloc(nn * sizeof *g->of_row);
    g->next = malloc(nn * sizeof *g->next);
    g->first = malloc(nn * sizeof *g->first);
    g->count = malloc(nn * sizeof *g->count);
    g->last = malloc(nn * sizeof *g->last);
    if (!g->slot || !g->of_row || !g->next || !g->first || !g->count || !g->last) {
        grouping_free(g);
        return tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory grouping %zu rows", n);
    }
    for (size_t i = 0; i < cap; i++) g->slot[i].g = NONE;
    for (size_t r = 0; r < n; r++) {
        uint64_t h = tw_hash64(text[r], len[r], TEXT_SEED);
        size_t i = h & g->mask;
        uint32_t found = NONE;
        for (;; i = (i + 1) & g->mask) {
            gslot *s = &g->slot[i];
            if (s->g == NONE) break;
            if (s->h != h) continue;
            uint32_t f = g->first[s->g];
            if (len[f] == len[r] && memcmp(text[f], text[r], len[r]) == 0) {
                found = s->g;
                break;
            }
        }
        g->next[r] = NONE;
        if (found == NONE) {
            found = (uint32_t)g->ng++;
            g->slot[i].h = h;
            g->slot[i].g = found;
            g->first[found] = g->last[found] = (uint32_t)r;
            g->count[found] = 1;
        } else {
            g->next[g->last[found]] = (uint32_t)r;
            g->last[found] = (uint32_t)r;
            g->count[found]++;
        }
        g->of_row[r] = found;
    }
    return TW_OK;
}

/* ---- string interner (labels, extract field keys) ------------------------------- */

typedef struct ientry {
    char *s;
    uint64_t h;
    size_t count[TW_SPLIT_COUNT];
    size_t stamp;       /* last row (1-based serial) counted, for per-row counting */
    bool declared;
} ientry;

typedef struct intern {
    ientry *e;
    size_t n, cap;
    uint32_t *slot;     /* index into e, NONE = empty */
    size_t mask;
} intern;

static void intern_free(intern *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->e[i].s);
    free(t->e);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

static tw_status intern_rehash(intern *t, size_t cap, tw_error *err)
{
    uint32_t *s = malloc(cap * sizeof *s);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory");
    for (size_t i = 0; i < cap; i++) s[i] = NONE;
    size_t mask = cap - 1;
    for (size_t k = 0; k < t->n; k++) {
        size_t i = t->e[k].h & mask;
        while (s[i] != NONE) i = (i + 1) & mask;
        s[i] = (uint32_t)k;
    }
    free(t->slot);
    t->slot = s;
    t->mask = mask;
    return TW_OK;
}

static tw_status intern_get(intern *t, const char *str, size_t len, uint32_t *idx, tw_error *err)
{
    tw_status st;
    if (!t->slot && (st = intern_rehash(t, 64, err))) return st;
    uint64_t h = tw_hash64(str, len, TEXT_SEED);
    size_t i = h & t->mask;
    for (; t->slot[i] != NONE; i = (i + 1) & t->mask) {
        ientry *e = &t->e[t->slot[i]];
        if (e->h == h && strlen(e->s) == len && memcmp(e->s, str, len) == 0) {
            *idx = t->slot[i];
            return TW_OK;
        }
    }
    if ((st = tw_grow((void **)&t->e, &t->cap, t->n + 1, sizeof *t->e, err))) return st;
    ientry *e = &t->e[t->n];
    memset(e, 0, sizeof *e);
    e->s = tw_strndup(str, len, err);
    if (!e->s) return TW_ERR_NOMEM;
    e->h = h;
    t->slot[i] = (uint32_t)t->n;
    *idx = (uint32_t)t->n++;
    if (2 * t->n > t->mask + 1) return intern_rehash(t, 2 * (t->mask + 1), err);
    return TW_OK;
}

/* Indices of entries with count[sp] > 0 (or all when sp < 0), sorted by count[sort_sp]
 * descending then string. Heap array (caller frees), NULL with *n = 0 when empty. */
typedef struct isort_ctx { const intern *t; int sp; } isort_ctx;

static int cmp_ientry(const void *a, const void *b, void *ctx)
{
    const isort_ctx *c = ctx;
    const ientry *x = &c->t->e[*(const uint32_t *)a], *y = &c->t->e[*(const uint32_t *)b];
    if (x->count[c->sp] != y->count[c->sp]) return x->count[c->sp] < y->count[c->sp] ? 1 : -1;
    return strcmp(x->s, y->s);
}

static uint32_t *intern_sorted(const intern *t, int sp, size_t *n)
{
    *n = 0;
    uint32_t *ix = malloc((t->n ? t->n : 1) * sizeof *ix);
    if (!ix) return NULL;
    for (size_t i = 0; i < t->n; i++)
        if (t->e[i].count[sp] > 0) ix[(*n)++] = (uint32_t)i;
    isort_ctx c = {t, sp};
    qsort_r(ix, *n, sizeof *ix, cmp_ientry, &c);
    return ix;
}

/* ---- the audit state ---------------------------------------------------------- */

typedef struct split {
    bool present;
    tw_split_id id;
    const char *name;
    const tw_dataset *ds;
    size_t n, labeled;
    const char **in;          /* (n) raw input, "" when NULL */
    size_t *in_len;
    char *normbuf;
    const char **norm;        /* (n) normalized input, NUL-terminated */
    size_t *norm_len;
    const char **out;         /* (n) comparable output: extract → canonical JSON when it
                                 parses; else the output as is; NULL when none */
    char **owned;             /* (n) heap strings behind out[] that we own */
    grouping gx, gn;          /* exact and normalized input groups */
    uint32_t *label;          /* (n) classify: interned label, NONE when no output */
    bool *is_obj;             /* (n) extract: the output parses as a JSON object */
    size_t n_classes, majority_count;
    /* filled by the checks, read by readiness */
    size_t dup_rows[2], conflict_groups, conflict_rows, unseen_rows, undeclared_rows;
    size_t json_objects, outputs, below_min, no_refs;
    tw_nd_index *nd;
} split;

typedef struct leak {
    int from, to;
    size_t rows, total, tier[3];
} leak;

typedef struct reason {
    int level;            /* 0 info, 1 warning, 2 blocker */
    const char *code;
    unsigned affects;     /* bit 0 eval, 1 prompting, 2 finetune */
    char msg[640];
} reason;

enum { AFF_EVAL = 1, AFF_PROMPT = 2, AFF_FT = 4 };

typedef struct audit {
    const tw_audit_params *p;
    tw_minhash_params mh;
    split sp[TW_SPLIT_COUNT];
    intern labels, fields;
    leak leaks[3];
    int n_leaks;
    reason *reasons;
    size_t n_reasons, cap_reasons;
    bool oom, bad_key;
    size_t row_serial;
} audit;

static void split_free(split *s)
{
    free(s->in);
    free(s->in_len);
    free(s->normbuf);
    free(s->norm);
    free(s->norm_len);
    free(s->out);
    if (s->owned)
        for (size_t i = 0; i < s->n; i++) free(s->owned[i]);
    free(s->owned);
    free(s->label);
    free(s->is_obj);
    grouping_free(&s->gx);
    grouping_free(&s->gn);
    tw_nd_index_free(s->nd);
}

/* ---- JSON helpers: any failed allocation sets a->oom; checked once at the end ---- */

/* jset/jpush steal v. A NULL parent means its own creation already failed (and was
 * flagged): the child is dropped silently. */
static json_t *jset(audit *a, json_t *obj, const char *key, json_t *v)
{
    if (!v) {
        a->oom = true;
        return NULL;
    }
    if (!obj) {
        json_decref(v);
        return NULL;
    }
    /* json_object_set_new drops v on failure; with a valid value the only failure is a key
     * that is not UTF-8 (a label, when the rows did not come through the readers) */
    if (json_object_set_new(obj, key, v)) {
        a->bad_key = true;
        return NULL;
    }
    return v;
}

static json_t *jpush(audit *a, json_t *arr, json_t *v)
{
    if (!v) {
        a->oom = true;
        return NULL;
    }
    if (!arr) {
        json_decref(v);
        return NULL;
    }
    if (json_array_append_new(arr, v)) {   /* drops v */
        a->oom = true;
        return NULL;
    }
    return v;
}

static json_t *jstr(const char *s)
{
    if (!s) return json_null();
    json_t *v = json_string(s);
    return v ? v : json_string("<invalid UTF-8>");
}

static json_t *jint(size_t v) { return json_integer((json_int_t)v); }

/* Reals rounded to 6 decimals so the report reads well and stays stable. */
static json_t *jreal(double x)
{
    if (!isfinite(x)) return json_null();
    return json_real(round(x * 1e6) / 1e6);
}

static json_t *jdist(audit *a, const dist *d)
{
    json_t *o = json_object();
    if (d->n == 0) {
        json_decref(o);
        return json_null();
    }
    jset(a, o, "min", jint(d->min));
    jset(a, o, "mean", jreal(d->mean));
    jset(a, o, "p50", jint(d->p50));
    jset(a, o, "p90", jint(d->p90));
    jset(a, o, "p99", jint(d->p99));
    jset(a, o, "max", jint(d->max));
    return o;
}

static void add_reason(audit *a, int level, const char *code, unsigned affects, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add_reason(audit *a, int level, const char *code, unsigned affects, const char *fmt, ...)
{
    if (tw_grow((void **)&a->reasons, &a->cap_reasons, a->n_reasons + 1, sizeof *a->reasons, NULL)) {
        a->oom = true;
        return;
    }
    reason *r = &a->reasons[a->n_reasons++];
    r->level = level;
    r->code = code;
    r->affects = affects;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

/* "a (3), b (7), c (0)" for up to `max` interned entries, plus ", ... (N more)". */
static void list_labels(const intern *t, const uint32_t *ix, size_t n, int sp, size_t max,
                        char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && i < max && o < cap; i++) {
        int w = snprintf(out + o, cap - o, "%s%s (%zu)", i ? ", " : "", t->e[ix[i]].s,
                         t->e[ix[i]].count[sp]);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (n > max && o < cap) snprintf(out + o, cap - o, ", ... (%zu more)", n - max);
}

/* ---- per split preparation ------------------------------------------------------- */

static bool has_label(const audit *a, const tw_example *ex)
{
    return ex->output != NULL || (a->p->type == TW_TASK_GENERATE && ex->n_refs > 0);
}

static tw_status split_prepare(audit *a, split *s, tw_error *err)
{
    size_t n = s->n, nn = n ? n : 1;
    s->in = malloc(nn * sizeof *s->in);
    s->in_len = malloc(nn * sizeof *s->in_len);
    s->norm = malloc(nn * sizeof *s->norm);
    s->norm_len = malloc(nn * sizeof *s->norm_len);
    s->out = calloc(nn, sizeof *s->out);
    s->owned = calloc(nn, sizeof *s->owned);
    s->label = malloc(nn * sizeof *s->label);
    if (!s->in || !s->in_len || !s->norm || !s->norm_len || !s->out || !s->owned || !s->label)
        return tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory for %s (%zu rows)", s->name, n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const tw_example *ex = &s->ds->rows[i];
        s->in[i] = ex->input ? ex->input : "";
        s->in_len[i] = strlen(s->in[i]);
        total += s->in_len[i] + 1;
    }
    s->normbuf = malloc(total ? total : 1);
    if (!s->normbuf) return tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory for %s", s->name);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t m = tw_normalize_text(s->in[i], s->in_len[i], s->normbuf + off);
        s->norm[i] = s->normbuf + off;
        s->norm_len[i] = m;
        off += m + 1;
    }
    for (size_t i = 0; i < n; i++) {
        const tw_example *ex = &s->ds->rows[i];
        if (has_label(a, ex)) s->labeled++;
        s->label[i] = NONE;
        if (!ex->output) continue;
        s->out[i] = ex->output;
        if (a->p->type == TW_TASK_EXTRACT) {
            /* compare extract outputs by content: key order and spacing do not matter */
            json_t *v = json_loads(ex->output, JSON_DECODE_ANY, NULL);
            if (v) {
                s->owned[i] = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
                json_decref(v);
                if (!s->owned[i]) return tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory");
                s->out[i] = s->owned[i];
            }
        } else if (a->p->type == TW_TASK_CLASSIFY) {
            uint32_t li;
            tw_status st = intern_get(&a->labels, ex->output, strlen(ex->output), &li, err);
            if (st) return st;
            s->label[i] = li;
            a->labels.e[li].count[s->id]++;
        }
    }
    tw_status st = grouping_build(&s->gx, n, s->in, s->in_len, err);
    if (st == TW_OK) st = grouping_build(&s->gn, n, s->norm, s->norm_len, err);
    return st;
}

/* ---- per split checks ------------------------------------------------------------ */

static json_t *lengths_json(audit *a, split *s)
{
    size_t nn = s->n ? s->n : 1;
    size_t *ch = malloc(nn * sizeof *ch), *wd = malloc(nn * sizeof *wd);
    json_t *o = json_object();
    if (!ch || !wd || !o) {
        a->oom = true;
        free(ch);
        free(wd);
        json_decref(o);
        return NULL;
    }
    for (int which = 0; which < 2; which++) {
        size_t m = 0;
        for (size_t i = 0; i < s->n; i++) {
            const tw_example *ex = &s->ds->rows[i];
            const char *t = which == 0 ? s->in[i] : ex->output ? ex->output
                                                  : ex->n_refs ? ex->refs[0] : NULL;
            if (!t) continue;
            size_t len = strlen(t);
            ch[m] = tw_utf8_len(t, len);
            wd[m] = count_words(t, len);
            m++;
        }
        dist dc = dist_of(ch, m), dw = dist_of(wd, m);
        json_t *x = jset(a, o, which == 0 ? "input" : "output", json_object());
        jset(a, x, "chars", jdist(a, &dc));
        jset(a, x, "words", jdist(a, &dw));
    }
    free(ch);
    free(wd);
    return o;
}

static json_t *dups_json(audit *a, split *s, const grouping *g, int which)
{
    json_t *o = json_object();
    size_t rows = 0, groups = 0;
    json_t *ex = json_array();
    for (size_t k = 0; k < g->ng; k++) {
        if (g->count[k] < 2) continue;
        groups++;
        rows += g->count[k] - 1;
        if (json_array_size(ex) >= a->p->max_examples) continue;
        json_t *e = jpush(a, ex, json_object());
        jset(a, e, "input", jstr(s->in[g->first[k]]));
        jset(a, e, "count", jint(g->count[k]));
        json_t *ids = jset(a, e, "ids", json_array());
        size_t c = 0;
        for (uint32_t r = g->first[k]; r != NONE && c < a->p->max_examples; r = g->next[r], c++)
            jpush(a, ids, jstr(s->ds->rows[r].id));
    }
    s->dup_rows[which] = rows;
    jset(a, o, "rows", jint(rows));
    jset(a, o, "groups", jint(groups));
    jset(a, o, "examples", ex);
    return o;
}

static bool str_eq(const char *x, const char *y) { return x && y && strcmp(x, y) == 0; }

/* Same normalized input, different outputs (rows without an output are ignored). */
static json_t *conflicts_json(audit *a, split *s)
{
    const grouping *g = &s->gn;
    json_t *o = json_object(), *ex = json_array();
    size_t groups = 0, rows = 0;
    for (size_t k = 0; k < g->ng; k++) {
        if (g->count[k] < 2) continue;
        const char *ref = NULL;
        bool differ = false;
        size_t with_out = 0;
        for (uint32_t r = g->first[k]; r != NONE; r = g->next[r]) {
            if (!s->out[r]) continue;
            with_out++;
            if (!ref) ref = s->out[r];
            else if (!str_eq(ref, s->out[r])) differ = true;
        }
        if (!differ) continue;
        groups++;
        rows += with_out;
        if (json_array_size(ex) >= a->p->max_examples) continue;
        json_t *e = jpush(a, ex, json_object());
        jset(a, e, "input", jstr(s->in[g->first[k]]));
        json_t *outs = jset(a, e, "outputs", json_array());
        json_t *rs = jset(a, e, "rows", json_array());
        size_t c = 0;
        for (uint32_t r = g->first[k]; r != NONE; r = g->next[r]) {
            if (!s->out[r]) continue;
            bool seen = false;
            for (uint32_t q = g->first[k]; q != r; q = g->next[q])
                if (str_eq(s->out[q], s->out[r])) seen = true;
            if (!seen) jpush(a, outs, jstr(s->ds->rows[r].output));
            if (c++ >= 2 * a->p->max_examples) continue;
            json_t *x = jpush(a, rs, json_object());
            jset(a, x, "id", jstr(s->ds->rows[r].id));
            jset(a, x, "line", jint(s->ds->rows[r].line));
            jset(a, x, "output", jstr(s->ds->rows[r].output));
        }
    }
    s->conflict_groups = groups;
    s->conflict_rows = rows;
    jset(a, o, "groups", jint(groups));
    jset(a, o, "rows", jint(rows));
    jset(a, o, "examples", ex);
    return o;
}

static json_t *label_list(audit *a, const intern *t, const uint32_t *ix, size_t n, int sp)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = jpush(a, arr, json_object());
        jset(a, e, "label", jstr(t->e[ix[i]].s));
        jset(a, e, "count", jint(t->e[ix[i]].count[sp]));
    }
    return arr;
}

/* Train classes below the per-class minimum (declared labels with no rows included; labels
 * seen only in dev/test are left to "unseen_labels"), ascending count then name. Heap array
 * (caller frees); NULL on OOM. */
static uint32_t *below_min_list(const audit *a, size_t *n)
{
    const intern *t = &a->labels;
    uint32_t *ix = malloc((t->n ? t->n : 1) * sizeof *ix);
    *n = 0;
    if (!ix) return NULL;
    size_t m = 0;
    for (size_t i = 0; i < t->n; i++)
        if ((t->e[i].count[TW_SPLIT_TRAIN] > 0 || t->e[i].declared) &&
            t->e[i].count[TW_SPLIT_TRAIN] < a->p->min_per_class)
            ix[m++] = (uint32_t)i;
    for (size_t i = 1; i < m; i++)   /* insertion sort: usually a handful of classes */
        for (size_t j = i; j > 0; j--) {
            const ientry *x = &t->e[ix[j - 1]], *y = &t->e[ix[j]];
            if (x->count[TW_SPLIT_TRAIN] < y->count[TW_SPLIT_TRAIN] ||
                (x->count[TW_SPLIT_TRAIN] == y->count[TW_SPLIT_TRAIN] && strcmp(x->s, y->s) <= 0))
                break;
            uint32_t tmp = ix[j - 1];
            ix[j - 1] = ix[j];
            ix[j] = tmp;
        }
    *n = m;
    return ix;
}

static json_t *classes_json(audit *a, split *s)
{
    const intern *t = &a->labels;
    int sp = (int)s->id;
    size_t n = 0;
    uint32_t *ix = intern_sorted(t, sp, &n);
    if (!ix) {
        a->oom = true;
        return NULL;
    }
    json_t *o = json_object();
    jset(a, o, "count", jint(n));
    json_t *counts = jset(a, o, "counts", json_object());
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        jset(a, counts, t->e[ix[i]].s, jint(t->e[ix[i]].count[sp]));
        total += t->e[ix[i]].count[sp];
    }
    s->n_classes = n;
    if (n > 0) {
        const ientry *mx = &t->e[ix[0]], *mn = &t->e[ix[n - 1]];
        /* the smallest class: lowest count, ties broken by name like the list order */
        for (size_t i = n; i-- > 0;)
            if (t->e[ix[i]].count[sp] == mn->count[sp]) mn = &t->e[ix[i]];
        s->majority_count = mx->count[sp];
        json_t *jmn = jset(a, o, "min", json_object());
        jset(a, jmn, "label", jstr(mn->s));
        jset(a, jmn, "count", jint(mn->count[sp]));
        json_t *jmx = jset(a, o, "max", json_object());
        jset(a, jmx, "label", jstr(mx->s));
        jset(a, jmx, "count", jint(mx->count[sp]));
        jset(a, o, "imbalance_ratio", jreal((double)mx->count[sp] / (double)mn->count[sp]));
        double h = 0;
        for (size_t i = 0; i < n; i++) {
            double q = (double)t->e[ix[i]].count[sp] / (double)total;
            h -= q * log(q);
        }
        jset(a, o, "normalized_entropy", n >= 2 ? jreal(h / log((double)n)) : json_null());
        jset(a, o, "majority_share", jreal((double)mx->count[sp] / (double)total));
    } else {
        jset(a, o, "min", json_null());
        jset(a, o, "max", json_null());
        jset(a, o, "imbalance_ratio", json_null());
        jset(a, o, "normalized_entropy", json_null());
        jset(a, o, "majority_share", json_null());
    }
    free(ix);

    /* train: classes below the per-class minimum, declared labels with no rows included;
     * labels seen only in dev/test are reported as unseen there instead */
    if (s->id == TW_SPLIT_TRAIN) {
        size_t m = 0;
        uint32_t *all = below_min_list(a, &m);
        if (!all) {
            a->oom = true;
            return o;
        }
        s->below_min = m;
        jset(a, o, "below_min_per_class", label_list(a, t, all, m, sp));
        free(all);
    }
    if (a->p->n_labels > 0) {
        size_t m = 0;
        uint32_t *ix2 = intern_sorted(t, sp, &m);
        if (!ix2) {
            a->oom = true;
            return o;
        }
        size_t k = 0;
        s->undeclared_rows = 0;
        for (size_t i = 0; i < m; i++)
            if (!t->e[ix2[i]].declared) {
                s->undeclared_rows += t->e[ix2[i]].count[sp];
                ix2[k++] = ix2[i];
            }
        jset(a, o, "undeclared", label_list(a, t, ix2, k, sp));
        free(ix2);
    }
    return o;
}

/* dev/test labels that train never saw */
static json_t *unseen_json(audit *a, split *s)
{
    const intern *t = &a->labels;
    size_t m = 0;
    uint32_t *ix = intern_sorted(t, (int)s->id, &m);
    if (!ix) {
        a->oom = true;
        return NULL;
    }
    size_t k = 0, rows = 0;
    for (size_t i = 0; i < m; i++)
        if (t->e[ix[i]].count[TW_SPLIT_TRAIN] == 0) {
            rows += t->e[ix[i]].count[s->id];
            ix[k++] = ix[i];
        }
    s->unseen_rows = rows;
    json_t *o = json_object();
    jset(a, o, "rows", jint(rows));
    jset(a, o, "labels", label_list(a, t, ix, k, (int)s->id));
    free(ix);
    return o;
}

static void field_count(audit *a, const char *key, size_t keylen, int sp)
{
    uint32_t fi;
    if (intern_get(&a->fields, key, keylen, &fi, NULL)) {
        a->oom = true;
        return;
    }
    ientry *e = &a->fields.e[fi];
    if (e->stamp != a->row_serial) {   /* count rows, not occurrences */
        e->stamp = a->row_serial;
        e->count[sp]++;
    }
}

static void fields_of(audit *a, json_t *obj, int sp)
{
    const char *k;
    json_t *v;
    tw_buf b = {0};
    json_object_foreach(obj, k, v) {
        field_count(a, k, strlen(k), sp);
        if (json_is_object(v)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                tw_buf_clear(&b);
                if (tw_buf_printf(&b, "%s.%s", k, k2)) a->oom = true;
                else field_count(a, b.data, b.len, sp);
            }
        } else if (json_is_array(v)) {
            size_t i;
            json_t *el;
            json_array_foreach(v, i, el) {
                if (!json_is_object(el)) continue;
                const char *k2;
                json_t *v2;
                json_object_foreach(el, k2, v2) {
                    tw_buf_clear(&b);
                    if (tw_buf_printf(&b, "%s[].%s", k, k2)) a->oom = true;
                    else field_count(a, b.data, b.len, sp);
                }
            }
        }
    }
    tw_buf_free(&b);
}

/* Pass 1 (all splits, before any JSON is written): parse outputs, count fields. */
static void extract_scan(audit *a, split *s)
{
    s->outputs = s->json_objects = 0;
    s->is_obj = calloc(s->n ? s->n : 1, sizeof *s->is_obj);
    if (!s->is_obj) {
        a->oom = true;
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        const tw_example *ex = &s->ds->rows[i];
        if (!ex->output) continue;
        s->outputs++;
        json_t *v = json_loads(ex->output, JSON_DECODE_ANY, NULL);
        if (json_is_object(v)) {
            s->is_obj[i] = true;
            s->json_objects++;
            a->row_serial++;
            fields_of(a, v, (int)s->id);
        }
        json_decref(v);
    }
}

static json_t *extract_json(audit *a, split *s)
{
    json_t *o = json_object();
    jset(a, o, "outputs", jint(s->outputs));
    jset(a, o, "json_objects", jint(s->json_objects));
    jset(a, o, "share", s->outputs ? jreal((double)s->json_objects / (double)s->outputs) : json_null());
    json_t *inv = jset(a, o, "invalid_examples", json_array());
    for (size_t i = 0, k = 0; s->is_obj && i < s->n && k < a->p->max_examples; i++) {
        const tw_example *ex = &s->ds->rows[i];
        if (!ex->output || s->is_obj[i]) continue;
        k++;
        json_t *e = jpush(a, inv, json_object());
        jset(a, e, "id", jstr(ex->id));
        jset(a, e, "line", jint(ex->line));
    }
    size_t m = 0;
    uint32_t *ix = intern_sorted(&a->fields, (int)s->id, &m);
    if (!ix) {
        a->oom = true;
        return o;
    }
    json_t *fl = jset(a, o, "fields", json_array());
    for (size_t i = 0; i < m; i++) {
        const ientry *e = &a->fields.e[ix[i]];
        json_t *f = jpush(a, fl, json_object());
        jset(a, f, "key", jstr(e->s));
        jset(a, f, "rows", jint(e->count[s->id]));
        jset(a, f, "share", jreal((double)e->count[s->id] / (double)(s->json_objects ? s->json_objects : 1)));
    }
    if (s->id != TW_SPLIT_TRAIN && a->sp[TW_SPLIT_TRAIN].present) {
        json_t *un = jset(a, o, "unseen_fields", json_array());
        for (size_t i = 0; i < m; i++)
            if (a->fields.e[ix[i]].count[TW_SPLIT_TRAIN] == 0) jpush(a, un, jstr(a->fields.e[ix[i]].s));
    }
    free(ix);
    return o;
}

static json_t *refs_json(audit *a, split *s)
{
    size_t *v = malloc((s->n ? s->n : 1) * sizeof *v);
    if (!v) {
        a->oom = true;
        return NULL;
    }
    size_t without = 0;
    for (size_t i = 0; i < s->n; i++) {
        const tw_example *ex = &s->ds->rows[i];
        v[i] = ex->n_refs ? ex->n_refs : ex->output ? 1 : 0;
        if (v[i] == 0) without++;
    }
    s->no_refs = without;
    dist d = dist_of(v, s->n);
    free(v);
    json_t *o = json_object();
    jset(a, o, "rows_without", jint(without));
    jset(a, o, "per_item", jdist(a, &d));
    return o;
}

static json_t *split_json(audit *a, split *s)
{
    json_t *o = json_object();
    jset(a, o, "rows", jint(s->n));
    jset(a, o, "labeled", jint(s->labeled));
    jset(a, o, "lengths", lengths_json(a, s));
    json_t *d = jset(a, o, "duplicates", json_object());
    jset(a, d, "exact", dups_json(a, s, &s->gx, 0));
    jset(a, d, "normalized", dups_json(a, s, &s->gn, 1));
    jset(a, o, "conflicts", a->p->type == TW_TASK_GENERATE ? json_null() : conflicts_json(a, s));
    if (a->p->type == TW_TASK_CLASSIFY) {
        jset(a, o, "classes", classes_json(a, s));
        if (s->id != TW_SPLIT_TRAIN && a->sp[TW_SPLIT_TRAIN].present) jset(a, o, "unseen_labels", unseen_json(a, s));
    } else if (a->p->type == TW_TASK_EXTRACT) {
        jset(a, o, "extract", extract_json(a, s));
    } else {
        jset(a, o, "references", refs_json(a, s));
    }
    return o;
}

/* ---- leakage between splits -------------------------------------------------------- */

static const char *const TIER_NAMES[3] = {"exact", "normalized", "near"};

/* Does B row j's output differ from the output of any matched A row? */
static bool label_differs(const split *A, const uint32_t *members_first, const uint32_t *next,
                          uint32_t single, const char *bout)
{
    if (!bout) return false;
    if (members_first) {
        for (uint32_t r = *members_first; r != NONE; r = next[r])
            if (A->out[r] && strcmp(A->out[r], bout) != 0) return true;
        return false;
    }
    return A->out[single] && strcmp(A->out[single], bout) != 0;
}

static tw_status leakage_pair(audit *a, split *A, split *B, json_t *arr, leak *res, tw_error *err)
{
    size_t nb = B->n, na = A->n;
    bool gen = a->p->type == TW_TASK_GENERATE;
    /* marks: distinct B inputs per tier, A rows matched per tier */
    unsigned char *bmark = calloc(3 * (B->gn.ng + B->gx.ng + 1), 1);
    unsigned char *amark = calloc(3 * (na + 1), 1);
    if (!bmark || !amark) {
        free(bmark);
        free(amark);
        return tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory for leakage %s->%s", A->name, B->name);
    }
    if (a->p->near_dup_enabled && !A->nd) {
        tw_status st = tw_nd_index_build(&A->nd, A->norm, na, &a->mh, err);
        if (st) {
            free(bmark);
            free(amark);
            return st;
        }
    }
    size_t rows[3] = {0}, distinct[3] = {0}, arows[3] = {0}, differs[3] = {0};
    json_t *ex[3];
    for (int t = 0; t < 3; t++) ex[t] = json_array();
    size_t bstride = B->gn.ng + B->gx.ng + 1;
    for (size_t j = 0; j < nb; j++) {
        int tier = -1;
        uint32_t g = grouping_find(&A->gx, tw_hash64(B->in[j], B->in_len[j], TEXT_SEED), B->in[j], B->in_len[j]);
        const grouping *ag = NULL;
        tw_nd_match m = {.index = SIZE_MAX};
        if (g != NONE) {
            tier = 0;
            ag = &A->gx;
        } else {
            g = grouping_find(&A->gn, tw_hash64(B->norm[j], B->norm_len[j], TEXT_SEED), B->norm[j], B->norm_len[j]);
            if (g != NONE) {
                tier = 1;
                ag = &A->gn;
            } else if (A->nd && B->norm_len[j] > 0) {
                tw_status st = tw_nd_index_query(A->nd, B->norm[j], B->norm_len[j], &m, err);
                if (st) {
                    free(bmark);
                    free(amark);
                    for (int t = 0; t < 3; t++) json_decref(ex[t]);
                    return st;
                }
                if (m.index != SIZE_MAX) tier = 2;
            }
        }
        if (tier < 0) continue;
        rows[tier]++;
        uint32_t bg = tier == 0 ? B->gx.of_row[j] : B->gx.ng + B->gn.of_row[j];
        unsigned char *bm = bmark + (size_t)tier * bstride;
        if (!bm[bg]) {
            bm[bg] = 1;
            distinct[tier]++;
        }
        unsigned char *am = amark + (size_t)tier * (na + 1);
        uint32_t first = NONE, match = NONE;
        if (ag) {
            first = ag->first[g];
            match = first;
            for (uint32_t r = first; r != NONE; r = ag->next[r])
                if (!am[r]) {
                    am[r] = 1;
                    arows[tier]++;
                }
        } else {
            match = (uint32_t)m.index;
            if (!am[match]) {
                am[match] = 1;
                arows[tier]++;
            }
        }
        bool dif = !gen && label_differs(A, ag ? &first : NULL, ag ? ag->next : NULL, match, B->out[j]);
        if (dif) differs[tier]++;
        if (json_array_size(ex[tier]) >= a->p->max_examples) continue;
        json_t *e = jpush(a, ex[tier], json_object());
        jset(a, e, "id", jstr(B->ds->rows[j].id));
        jset(a, e, "line", jint(B->ds->rows[j].line));
        jset(a, e, "match_id", jstr(A->ds->rows[match].id));
        jset(a, e, "match_line", jint(A->ds->rows[match].line));
        if (ag) jset(a, e, "matches", jint(ag->count[g]));
        if (tier > 0) {
            jset(a, e, "input", jstr(B->in[j]));
            jset(a, e, "match_input", jstr(A->in[match]));
        }
        if (tier == 2) {
            jset(a, e, "jaccard", jreal(m.jaccard));
            jset(a, e, "estimate", jreal(m.estimate));
        }
        if (!gen) jset(a, e, "label_differs", json_boolean(dif));
    }
    free(bmark);
    free(amark);

    char sentence[512];
    if (a->p->near_dup_enabled)
        snprintf(sentence, sizeof sentence,
                 "rows of %s whose input also occurs in %s; tiers are disjoint (a row counts in the "
                 "first it matches): exact = byte-identical input, normalized = identical after "
                 "case/whitespace/punctuation folding, near = %s %u-shingle Jaccard >= %.2f",
                 B->name, A->name, tw_shingle_kind_str(a->mh.shingle), a->mh.k, a->mh.threshold);
    else
        snprintf(sentence, sizeof sentence,
                 "rows of %s whose input also occurs in %s; tiers are disjoint: exact = byte-identical "
                 "input, normalized = identical after case/whitespace/punctuation folding (near-duplicate "
                 "search disabled)", B->name, A->name);
    json_t *o = jpush(a, arr, json_object());
    jset(a, o, "from", jstr(A->name));
    jset(a, o, "to", jstr(B->name));
    jset(a, o, "counted", jstr(sentence));
    jset(a, o, "rows", jint(nb));
    jset(a, o, "total", jint(rows[0] + rows[1] + rows[2]));
    for (int t = 0; t < 3; t++) {
        if (t == 2 && !a->p->near_dup_enabled) {
            jset(a, o, TIER_NAMES[t], json_null());
            json_decref(ex[t]);
            continue;
        }
        json_t *x = jset(a, o, TIER_NAMES[t], json_object());
        jset(a, x, "rows", jint(rows[t]));
        jset(a, x, "distinct_inputs", jint(distinct[t]));
        jset(a, x, "matched_from_rows", jint(arows[t]));
        jset(a, x, "label_differs", gen ? json_null() : jint(differs[t]));
        jset(a, x, "examples", ex[t]);
    }
    res->from = (int)A->id;
    res->to = (int)B->id;
    res->rows = nb;
    res->total = rows[0] + rows[1] + rows[2];
    for (int t = 0; t < 3; t++) res->tier[t] = rows[t];
    return TW_OK;
}

/* ---- readiness ------------------------------------------------------------------------- */

static json_t *readiness_json(audit *a)
{
    const tw_audit_params *p = a->p;
    split *tr = &a->sp[TW_SPLIT_TRAIN];
    bool classify = p->type == TW_TASK_CLASSIFY;
    char c1[32], c2[32], c3[32];
    size_t ntr = tr->present ? tr->labeled : 0;

    /* --- eval set --- */
    split *ev = a->sp[TW_SPLIT_TEST].present && a->sp[TW_SPLIT_TEST].n > 0 ? &a->sp[TW_SPLIT_TEST]
              : a->sp[TW_SPLIT_DEV].present && a->sp[TW_SPLIT_DEV].n > 0 ? &a->sp[TW_SPLIT_DEV]
              : NULL;
    size_t nev = ev ? ev->labeled : 0;
    double pacc = p->mde_accuracy;
    if (ev && classify && ev->labeled > 0) {
        double maj = (double)ev->majority_count / (double)ev->labeled;
        if (maj > pacc) pacc = maj;
    }
    if (pacc > 0.99) pacc = 0.99;
    if (pacc < 0.01) pacc = 0.01;
    double mde = nev ? tw_audit_mde_two_proportion(nev, pacc, p->alpha, p->power) : NAN;
    size_t n5 = mde_rows_for(0.05, pacc, p->alpha, p->power);
    const char *metric = classify ? "accuracy" : "a proportion metric (e.g. exact match)";
    char how[160];
    snprintf(how, sizeof how, "two-proportion z-test, both systems near %.0f%%, alpha %.2f, power %.1f",
             100 * pacc, p->alpha, p->power);
    if (!ev) {
        add_reason(a, 2, "no_eval_set", AFF_EVAL,
                   "No dev or test split: keep at least %zu labeled rows (%zu is better) out of "
                   "training as a test set, or let tunewise split one off.", p->min_eval, p->good_eval);
    } else {
        audit_fmt_count(nev, c1, sizeof c1);
        audit_fmt_count(n5, c3, sizeof c3);
        if (nev < p->min_eval) {
            audit_fmt_count(p->min_eval - nev, c2, sizeof c2);
            add_reason(a, 2, "eval_too_small", AFF_EVAL,
                       "The %s set has %s labeled rows: it can only detect differences in %s of %.1f "
                       "points or more (%s). Label at least %s more rows for it (%zu minimum, %zu+ is "
                       "better).", ev->name, c1, metric, 100 * mde, how, c2, p->min_eval, p->good_eval);
        } else if (nev < p->good_eval) {
            double mde_good = tw_audit_mde_two_proportion(p->good_eval, pacc, p->alpha, p->power);
            add_reason(a, 1, "eval_small", AFF_EVAL,
                       "The %s set has %s labeled rows: enough for a rough comparison, but it detects "
                       "only differences in %s of %.1f points or more (%s); %zu rows would bring that "
                       "to %.1f points.", ev->name, c1, metric, 100 * mde, how, p->good_eval, 100 * mde_good);
        } else {
            add_reason(a, 0, "eval_size_ok", AFF_EVAL,
                       "The %s set has %s labeled rows: it detects differences in %s of %.1f points or "
                       "more (%s); detecting 5 points needs about %s rows.",
                       ev->name, c1, metric, 100 * mde, how, c3);
        }
    }
    /* leakage */
    for (int i = 0; i < a->n_leaks; i++) {
        const leak *l = &a->leaks[i];
        if (l->total == 0) continue;
        audit_fmt_count(l->total, c1, sizeof c1);
        char near[64] = "";
        if (p->near_dup_enabled) snprintf(near, sizeof near, ", near-duplicate: %zu", l->tier[2]);
        add_reason(a, 1, l->to == TW_SPLIT_TEST ? "leakage_test" : "leakage_dev", AFF_EVAL,
                   "%s %s %s (%.1f%%) also %s in %s (exact: %zu, after normalization: %zu%s): scores "
                   "on them reward memorization, not skill. Remove them from %s (ids in the leakage "
                   "section).", c1, SPLIT_NAMES[l->to], pl(l->total, "row", "rows"),
                   100.0 * (double)l->total / (double)l->rows, pl(l->total, "occurs", "occur"),
                   SPLIT_NAMES[l->from], l->tier[0], l->tier[1], near, SPLIT_NAMES[l->to]);
    }
    /* per-split data problems */
    for (int si = 0; si < TW_SPLIT_COUNT; si++) {
        split *s = &a->sp[si];
        if (!s->present || s->n == 0) continue;
        bool is_train = si == TW_SPLIT_TRAIN;
        unsigned aff = is_train ? (AFF_FT | AFF_PROMPT) : AFF_EVAL;
        if (s->conflict_groups > 0)
            add_reason(a, 1, is_train ? "conflicts_train" : "conflicts_eval", aff,
                       "%zu %s in %s %s with different %s (%zu rows): %s. Fix or drop them "
                       "(examples in the conflicts section).", s->conflict_groups,
                       pl(s->conflict_groups, "input", "inputs"), s->name,
                       pl(s->conflict_groups, "appears", "appear"),
                       p->type == TW_TASK_EXTRACT ? "outputs" : "labels", s->conflict_rows,
                       is_train ? "a model trained on them learns a contradiction"
                                : "the reference answer is ambiguous for them");
        if (s->dup_rows[0] > 0) {
            audit_fmt_count(s->dup_rows[0], c1, sizeof c1);
            add_reason(a, 0, is_train ? "duplicates_train" : "duplicates_eval", aff,
                       "%s %s %s an earlier %s input exactly (%zu more after normalization): %s",
                       c1, s->name, pl(s->dup_rows[0], "row repeats", "rows repeat"), s->name,
                       s->dup_rows[1] - s->dup_rows[0],
                       p->type == TW_TASK_GENERATE
                           ? "fine when they carry different references; drop rows that repeat a "
                             "reference too."
                           : "they over-weight those examples; drop them if that matters.");
        }
        if (classify && s->undeclared_rows > 0) {
            add_reason(a, 1, "undeclared_labels", AFF_EVAL | AFF_PROMPT | AFF_FT,
                       "%zu %s %s labels the task does not declare (see \"undeclared\" in the "
                       "classes section): add them to labels: in the task file or fix the rows.",
                       s->undeclared_rows, s->name, pl(s->undeclared_rows, "row has", "rows have"));
        }
        if (classify && !is_train && s->unseen_rows > 0) {
            size_t m = 0;
            uint32_t *ix = intern_sorted(&a->labels, si, &m);
            size_t k = 0;
            for (size_t i = 0; ix && i < m; i++)
                if (a->labels.e[ix[i]].count[TW_SPLIT_TRAIN] == 0) ix[k++] = ix[i];
            char lst[320];
            if (ix) list_labels(&a->labels, ix, k, si, 5, lst, sizeof lst);
            else snprintf(lst, sizeof lst, "?");
            free(ix);
            add_reason(a, 1, "unseen_labels", AFF_FT | AFF_PROMPT,
                       "%zu %s %s labels train never shows (%s): neither a fine-tuned model nor "
                       "a k-shot prompt drawn from train can learn them; add training rows for them.",
                       s->unseen_rows, s->name, pl(s->unseen_rows, "row has", "rows have"), lst);
        }
        if (p->type == TW_TASK_EXTRACT && s->outputs > s->json_objects) {
            size_t bad = s->outputs - s->json_objects;
            add_reason(a, 1, is_train ? "invalid_json_train" : "invalid_json_eval", is_train ? AFF_FT : AFF_EVAL,
                       "%zu of %zu %s outputs (%.1f%%) are not JSON objects: %s (ids under "
                       "invalid_examples).", bad, s->outputs, s->name,
                       100.0 * (double)bad / (double)s->outputs,
                       is_train ? "a fine-tuned extractor learns to produce them; fix them"
                                : "they cannot be scored field by field; fix them");
        }
        if (p->type == TW_TASK_GENERATE && !is_train && s->no_refs > 0)
            add_reason(a, 1, "missing_references", AFF_EVAL,
                       "%zu %s %s no reference output: they cannot be scored; add references "
                       "or drop them.", s->no_refs, s->name, pl(s->no_refs, "row has", "rows have"));
    }

    /* --- fine-tuning --- */
    if (!tr->present || ntr == 0) {
        add_reason(a, 2, "no_train", AFF_FT,
                   "No labeled training rows: fine-tuning needs at least %zu (about %zu to be worth its "
                   "cost); only zero-shot prompting can be compared.", p->min_train, p->good_train);
    } else {
        audit_fmt_count(ntr, c1, sizeof c1);
        audit_fmt_count(p->good_train, c3, sizeof c3);
        if (ntr < p->min_train) {
            add_reason(a, 2, "train_too_small", AFF_FT,
                       "Train has %s labeled rows: below about %zu, fine-tuning rarely beats a good "
                       "prompt. Label at least %zu more, or compare prompting strategies only.",
                       c1, p->min_train, p->min_train - ntr);
        } else if (ntr < p->good_train) {
            add_reason(a, 1, "train_small", AFF_FT,
                       "Train has %s labeled rows: fine-tuning can help, but below about %s examples "
                       "it is rarely worth its cost over k-shot prompting; expect a small margin.", c1, c3);
        } else {
            add_reason(a, 0, "train_size_ok", AFF_FT,
                       "Train has %s labeled rows: enough for a fine-tune to be worth trying (%s+).", c1, c3);
        }
        if (classify && tr->below_min > 0) {
            size_t m = 0;
            uint32_t *ix = below_min_list(a, &m);
            char lst[320] = "?";
            if (ix) list_labels(&a->labels, ix, m, TW_SPLIT_TRAIN, 5, lst, sizeof lst);
            free(ix);
            add_reason(a, 1, "few_per_class", AFF_FT,
                       "%zu class%s fewer than %zu training rows (%s): the fine-tuned model will be "
                       "unreliable on them; label more rows for these classes.", tr->below_min,
                       tr->below_min == 1 ? " has" : "es have", p->min_per_class, lst);
        }
    }

    /* --- prompting --- */
    if (ntr == 0)
        add_reason(a, 1, "no_shots", AFF_PROMPT,
                   "No labeled training rows to draw demonstrations from: only zero-shot prompting can "
                   "be evaluated.");
    else if (ntr < p->k_shot)
        add_reason(a, 1, "too_few_shots", AFF_PROMPT,
                   "Train has %zu labeled rows: a %zu-shot prompt needs at least %zu to draw from.",
                   ntr, p->k_shot, p->k_shot);

    /* --- levels --- */
    int lev[3] = {0, 0, 0};   /* eval, prompting, finetune */
    for (size_t i = 0; i < a->n_reasons; i++) {
        const reason *r = &a->reasons[i];
        for (int b = 0; b < 3; b++)
            if ((r->affects & (1u << b)) && r->level > lev[b]) lev[b] = r->level;
    }
    int overall = lev[0];
    if (lev[1] > overall) overall = lev[1];
    if (lev[2] > overall) overall = lev[2];

    json_t *o = json_object();
    jset(a, o, "verdict", jstr(level_code((tw_audit_level)overall)));
    json_t *je = jset(a, o, "eval", json_object());
    jset(a, je, "level", jstr(level_code((tw_audit_level)lev[0])));
    jset(a, je, "split", ev ? jstr(ev->name) : json_null());
    jset(a, je, "rows", jint(nev));
    if (ev && nev > 0) {
        json_t *jm = jset(a, je, "mde", json_object());
        jset(a, jm, "test", jstr("two-proportion z-test (normal approximation, unpaired; conservative "
                                 "for two systems scored on the same rows)"));
        jset(a, jm, "accuracy", jreal(pacc));
        jset(a, jm, "alpha", jreal(p->alpha));
        jset(a, jm, "power", jreal(p->power));
        jset(a, jm, "difference", jreal(mde));
        jset(a, jm, "rows_for_5_points", jint(n5));
    } else {
        jset(a, je, "mde", json_null());
    }
    json_t *jp = jset(a, o, "prompting", json_object());
    jset(a, jp, "level", jstr(level_code((tw_audit_level)lev[1])));
    json_t *jf = jset(a, o, "finetune", json_object());
    jset(a, jf, "level", jstr(level_code((tw_audit_level)lev[2])));
    jset(a, jf, "train_rows", jint(ntr));
    json_t *rs = jset(a, o, "reasons", json_array());
    /* blockers first, then warnings, then info; stable within a level */
    static const char *const LEVELS[3] = {"info", "warning", "blocker"};
    for (int L = 2; L >= 0; L--)
        for (size_t i = 0; i < a->n_reasons; i++) {
            const reason *r = &a->reasons[i];
            if (r->level != L) continue;
            json_t *x = jpush(a, rs, json_object());
            jset(a, x, "level", jstr(LEVELS[L]));
            jset(a, x, "code", jstr(r->code));
            json_t *af = jset(a, x, "affects", json_array());
            if (r->affects & AFF_EVAL) jpush(a, af, jstr("eval"));
            if (r->affects & AFF_PROMPT) jpush(a, af, jstr("prompting"));
            if (r->affects & AFF_FT) jpush(a, af, jstr("finetune"));
            jset(a, x, "message", jstr(r->msg));
        }
    return o;
}

/* ---- entry point ---------------------------------------------------------------------- */

static json_t *params_json(audit *a)
{
    const tw_audit_params *p = a->p;
    json_t *o = json_object();
    if (p->near_dup_enabled) {
        json_t *nd = jset(a, o, "near_dup", json_object());
        jset(a, nd, "shingle", jstr(tw_shingle_kind_str(a->mh.shingle)));
        jset(a, nd, "k", jint(a->mh.k));
        jset(a, nd, "threshold", jreal(a->mh.threshold));
        jset(a, nd, "bands", jint(a->mh.bands));
        jset(a, nd, "rows", jint(a->mh.rows));
        jset(a, nd, "hash_functions", jint((size_t)a->mh.bands * a->mh.rows));
        jset(a, nd, "candidate_prob_at_threshold",
             jreal(tw_lsh_candidate_prob(a->mh.threshold, a->mh.bands, a->mh.rows)));
    } else {
        jset(a, o, "near_dup", json_null());
    }
    json_t *th = jset(a, o, "thresholds", json_object());
    jset(a, th, "min_train", jint(p->min_train));
    jset(a, th, "good_train", jint(p->good_train));
    jset(a, th, "min_eval", jint(p->min_eval));
    jset(a, th, "good_eval", jint(p->good_eval));
    jset(a, th, "min_per_class", jint(p->min_per_class));
    jset(a, th, "k_shot", jint(p->k_shot));
    json_t *m = jset(a, o, "mde", json_object());
    jset(a, m, "accuracy", jreal(p->mde_accuracy));
    jset(a, m, "alpha", jreal(p->alpha));
    jset(a, m, "power", jreal(p->power));
    jset(a, o, "max_examples", jint(p->max_examples));
    json_t *dl = jset(a, o, "declared_labels", json_array());
    for (size_t i = 0; i < p->n_labels; i++) jpush(a, dl, jstr(p->labels[i]));
    return o;
}

static tw_status check_params(const tw_audit_params *p, tw_error *err)
{
    if ((int)p->type < TW_TASK_CLASSIFY || (int)p->type > TW_TASK_GENERATE)
        return tw_error_set(err, TW_ERR_INVALID, "audit: unknown task type %d", (int)p->type);
    if (!(p->alpha > 0 && p->alpha < 1) || !(p->power > 0 && p->power < 1))
        return tw_error_set(err, TW_ERR_INVALID, "audit: alpha (%g) and power (%g) must be in (0, 1)",
                            p->alpha, p->power);
    if (!(p->mde_accuracy > 0 && p->mde_accuracy < 1))
        return tw_error_set(err, TW_ERR_INVALID, "audit: mde_accuracy %g must be in (0, 1)", p->mde_accuracy);
    if (p->n_labels > 0 && !p->labels)
        return tw_error_set(err, TW_ERR_INVALID, "audit: n_labels is %zu but labels is NULL", p->n_labels);
    for (size_t i = 0; i < p->n_labels; i++)
        if (!p->labels[i]) return tw_error_set(err, TW_ERR_INVALID, "audit: declared label %zu is NULL", i);
    if (p->near_dup_enabled) {
        tw_status st = tw_minhash_params_check(&p->near_dup, err);
        if (st) return st;
    }
    return TW_OK;
}

tw_status tw_audit(const tw_dataset *const splits[TW_SPLIT_COUNT], const tw_audit_params *p,
                   json_t **report, tw_error *err)
{
    *report = NULL;
    tw_audit_params defaults;
    if (!p) {
        defaults = tw_audit_default_params();
        p = &defaults;
    }
    tw_status st = check_params(p, err);
    if (st) return st;
    if (!splits || (!splits[0] && !splits[1] && !splits[2]))
        return tw_error_set(err, TW_ERR_INVALID, "audit: no split given (need train, dev or test)");

    audit a = {0};
    a.p = p;
    a.mh = p->near_dup;
    a.mh.seed = p->seed;
    for (size_t i = 0; i < p->n_labels; i++) {
        uint32_t li;
        if ((st = intern_get(&a.labels, p->labels[i], strlen(p->labels[i]), &li, err))) goto done;
        a.labels.e[li].declared = true;
    }
    for (int i = 0; i < TW_SPLIT_COUNT; i++) {
        split *s = &a.sp[i];
        s->id = (tw_split_id)i;
        s->name = SPLIT_NAMES[i];
        if (!splits[i]) continue;
        if (splits[i]->n >= UINT32_MAX) {
            st = tw_error_set(err, TW_ERR_INVALID, "audit: %s has too many rows (%zu)", s->name, splits[i]->n);
            goto done;
        }
        s->present = true;
        s->ds = splits[i];
        s->n = splits[i]->n;
        if ((st = split_prepare(&a, s, err))) goto done;
        if (p->type == TW_TASK_EXTRACT) extract_scan(&a, s);
    }

    json_t *r = json_object();
    *report = r;
    jset(&a, r, "audit_version", jint(1));
    jset(&a, r, "task_type", jstr(TYPE_NAMES[p->type]));
    jset(&a, r, "seed", json_integer((json_int_t)p->seed));
    jset(&a, r, "params", params_json(&a));
    json_t *js = jset(&a, r, "splits", json_object());
    for (int i = 0; i < TW_SPLIT_COUNT; i++)
        jset(&a, js, SPLIT_NAMES[i], a.sp[i].present ? split_json(&a, &a.sp[i]) : json_null());

    json_t *jl = jset(&a, r, "leakage", json_array());
    static const int PAIRS[3][2] = {{TW_SPLIT_TRAIN, TW_SPLIT_DEV}, {TW_SPLIT_TRAIN, TW_SPLIT_TEST},
                                    {TW_SPLIT_DEV, TW_SPLIT_TEST}};
    for (int k = 0; k < 3; k++) {
        split *A = &a.sp[PAIRS[k][0]], *B = &a.sp[PAIRS[k][1]];
        if (!A->present || !B->present || A->n == 0 || B->n == 0) continue;
        if ((st = leakage_pair(&a, A, B, jl, &a.leaks[a.n_leaks], err))) goto done;
        a.n_leaks++;
    }
    jset(&a, r, "readiness", readiness_json(&a));
    if (a.oom) st = tw_error_set(err, TW_ERR_NOMEM, "audit: out of memory building the report");
    else if (a.bad_key)
        st = tw_error_set(err, TW_ERR_INVALID, "audit: a label or output key is not valid UTF-8");

done:
    for (int i = 0; i < TW_SPLIT_COUNT; i++) split_free(&a.sp[i]);
    intern_free(&a.labels);
    intern_free(&a.fields);
    free(a.reasons);
    if (st != TW_OK) {
        json_decref(*report);
        *report = NULL;
    }
    return st;
}

tw_audit_level tw_audit_verdict(const json_t *report)
{
    const char *v = json_string_value(json_object_get(json_object_get(report, "readiness"), "verdict"));
    if (v && strcmp(v, "ready") == 0) return TW_AUDIT_READY;
    if (v && strcmp(v, "warnings") == 0) return TW_AUDIT_WARNINGS;
    return TW_AUDIT_NOT_READY;
}
