/* score.c — builds the JSON score reports: turns items into per-item sufficient
 * statistics once (label indices, tw_ext_item, tw_gen_item), computes every headline
 * metric from weighted sums of those statistics (so one function serves the point
 * estimate, each bootstrap replicate and the paired differences), and adds the
 * breakdowns (per class, per field, slices), latency/token summaries and power.
 * Deliberately not here: metric definitions (classify.c, extract.c, textgen.c),
 * statistics (stats.c), text rendering (table.c), any I/O. */
#include "score/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TASK_CLASSIFY = 0, TASK_EXTRACT = 1, TASK_GENERATE = 2 };

static const char *const k_names_cls[] = {"accuracy",        "macro_f1",     "micro_f1",    "weighted_f1",
                                          "macro_precision", "macro_recall", "invalid_rate"};
static const char *const k_names_ext[] = {"field_f1",    "field_precision", "field_recall", "exact_match",
                                          "normalized_match", "json_valid",  "schema_valid"};
static const char *const k_names_gen[] = {"rougeL",      "rouge1", "rouge2", "token_f1", "exact_match",
                                          "normalized_match", "bleu", "chrf"};
#define N_CLS (sizeof k_names_cls / sizeof *k_names_cls)
#define N_EXT (sizeof k_names_ext / sizeof *k_names_ext)
#define N_GEN (sizeof k_names_gen / sizeof *k_names_gen)
#define MAX_METRICS 8

const char *const *tw_score_metric_names(int task_type, size_t *n)
{
    switch (task_type) {
    case TASK_CLASSIFY: *n = N_CLS; return k_names_cls;
    case TASK_EXTRACT: *n = N_EXT; return k_names_ext;
    case TASK_GENERATE: *n = N_GEN; return k_names_gen;
    default: *n = 0; return NULL;
    }
}

const char *tw_score_default_primary(int task_type)
{
    switch (task_type) {
    case TASK_CLASSIFY: return "accuracy";
    case TASK_EXTRACT: return "field_f1";
    case TASK_GENERATE: return "rougeL";
    default: return NULL;
    }
}

static const char *task_name(int t)
{
    return t == TASK_CLASSIFY ? "classify" : t == TASK_EXTRACT ? "extract" : "generate";
}

tw_score_params tw_score_default_params(void)
{
    tw_score_params p;
    memset(&p, 0, sizeof p);
    p.task_type = TASK_CLASSIFY;
    p.bootstrap = 1000;
    p.seed = 1;
    p.ci_level = 0.95;
    p.alpha = 0.05;
    p.power = 0.8;
    return p;
}

/* ---- per-item statistics ----------------------------------------------------------- */

/* A set of items (all of them, or one slice) with their precomputed statistics for one
 * or two systems. Arrays are owned. */
typedef struct dataset {
    int task;
    size_t n, k;            /* items; classes (classify) */
    int n_sys;              /* 1, or 2 for a paired comparison */
    bool has_schema;
    size_t *idx;            /* (n) index of each item in the caller's array */
    int32_t *gold;          /* classify (n) */
    int32_t *pred[2];       /* classify (n), k = invalid */
    tw_ext_item *ext[2];    /* extract (n) */
    tw_gen_item *gen[2];    /* generate (n) */
} dataset;

static void dataset_free(dataset *d)
{
    free(d->idx);
    free(d->gold);
    for (int s = 0; s < 2; s++) {
        free(d->pred[s]);
        free(d->ext[s]);
        free(d->gen[s]);
    }
    memset(d, 0, sizeof *d);
}

static size_t n_metrics(int task) { return task == TASK_CLASSIFY ? N_CLS : task == TASK_EXTRACT ? N_EXT : N_GEN; }

static double div0(double a, double b) { return b > 0 ? a / b : 0.0; }

/* Headline metrics of system sys over d, items weighted by w (NULL = 1 each).
 * out (n_metrics(d->task)); scratch: classify needs k*(k+1) uint64. */
static void eval_metrics(double *out, const dataset *d, int sys, const uint32_t *w, void *scratch)
{
    const size_t n = d->n;
    double W = 0;   /* items in the (re)sample; not needed for classification */
    if (d->task != TASK_CLASSIFY) {
        if (w) for (size_t i = 0; i < n; i++) W += w[i];
        else W = (double)n;
    }
    if (d->task == TASK_CLASSIFY) {
        uint64_t *conf = scratch;
        memset(conf, 0, d->k * (d->k + 1) * sizeof *conf);
        tw_cls_confusion(conf, d->gold, d->pred[sys], w, n, d->k);
        tw_cls_summary s;
        tw_cls_metrics(&s, NULL, conf, d->k);
        out[0] = s.accuracy;
        out[1] = s.macro_f1;
        out[2] = s.micro_f1;
        out[3] = s.weighted_f1;
        out[4] = s.macro_precision;
        out[5] = s.macro_recall;
        out[6] = s.n ? (double)s.n_invalid / (double)s.n : NAN;
    } else if (d->task == TASK_EXTRACT) {
        double tp = 0, np = 0, ng = 0, ex = 0, no = 0, jv = 0, sv = 0;
        const tw_ext_item *e = d->ext[sys];
        for (size_t i = 0; i < n; i++) {
            double wi = w ? w[i] : 1.0;
            if (wi == 0) continue;
            tp += wi * e[i].tp;
            np += wi * e[i].n_pred;
            ng += wi * e[i].n_gold;
            ex += wi * e[i].exact;
            no += wi * e[i].normalized;
            jv += wi * e[i].json_valid;
            sv += wi * e[i].schema_valid;
        }
        out[0] = div0(2 * tp, np + ng);
        out[1] = div0(tp, np);
        out[2] = div0(tp, ng);
        out[3] = W > 0 ? ex / W : NAN;
        out[4] = W > 0 ? no / W : NAN;
        out[5] = W > 0 ? jv / W : NAN;
        out[6] = W > 0 ? sv / W : NAN;
        if (W == 0) out[0] = out[1] = out[2] = NAN;
    } else {
        double m[6] = {0}, bl[TW_BLEU_NSTATS] = {0}, cf[TW_CHRF_NSTATS] = {0};
        const tw_gen_item *g = d->gen[sys];
        for (size_t i = 0; i < n; i++) {
            double wi = w ? w[i] : 1.0;
            if (wi == 0) continue;
            m[0] += wi * g[i].rouge[2];
            m[1] += wi * g[i].rouge[0];
            m[2] += wi * g[i].rouge[1];
            m[3] += wi * g[i].token_f1;
            m[4] += wi * g[i].exact;
            m[5] += wi * g[i].normalized;
            for (int j = 0; j < TW_BLEU_NSTATS; j++) bl[j] += wi * g[i].bleu[j];
            for (int j = 0; j < TW_CHRF_NSTATS; j++) cf[j] += wi * g[i].chrf[j];
        }
        for (int j = 0; j < 6; j++) out[j] = W > 0 ? m[j] / W : NAN;
        out[6] = W > 0 ? tw_bleu_from_stats(bl) : NAN;
        out[7] = W > 0 ? tw_chrf_from_stats(cf) : NAN;
    }
}

static void boot_single(double *out, const uint32_t *w, size_t n, const void *ctx, void *scratch)
{
    (void)n;
    eval_metrics(out, ctx, 0, w, scratch);
}

/* Paired replicate: [metrics A, metrics B, B - A], each n_metrics long. */
static void boot_paired(double *out, const uint32_t *w, size_t n, const void *ctx, void *scratch)
{
    (void)n;
    const dataset *d = ctx;
    size_t m = n_metrics(d->task);
    eval_metrics(out, d, 0, w, scratch);
    eval_metrics(out + m, d, 1, w, scratch);
    for (size_t j = 0; j < m; j++) out[2 * m + j] = out[m + j] - out[j];
}

static size_t scratch_bytes(const dataset *d)
{
    return d->task == TASK_CLASSIFY ? d->k * (d->k + 1) * sizeof(uint64_t) : 0;
}

/* ---- JSON helpers --------------------------------------------------------------------- */

/* A JSON number, or null for NaN/inf (JSON has no NaN). */
static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* json_object_set_new that records failure in *ok instead of returning it. */
static void jset(json_t *o, const char *key, json_t *v, bool *ok)
{
    if (!o || !v || json_object_set_new(o, key, v) != 0) *ok = false;
}

static void jpush(json_t *a, json_t *v, bool *ok)
{
    if (!a || !v || json_array_append_new(a, v) != 0) *ok = false;
}

static json_t *jpair(double lo, double hi, bool *ok)
{
    if (isnan(lo) || isnan(hi)) return json_null();
    json_t *a = json_array();
    jpush(a, jnum(lo), ok);
    jpush(a, jnum(hi), ok);
    return a;
}

/* ---- building datasets -------------------------------------------------------------------- */

static const char *item_name(const tw_score_item *it, size_t i, char *buf, size_t cap)
{
    if (it->id) snprintf(buf, cap, "item %zu (id '%s')", i, it->id);
    else snprintf(buf, cap, "item %zu", i);
    return buf;
}

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* classify: the label set (borrowed strings); *owned is the array to free (if any). */
static tw_status resolve_labels(const char ***labels, size_t *k, const char ***owned,
                                const tw_score_item *items, size_t n, const tw_score_params *p,
                                tw_error *err)
{
    *owned = NULL;
    if (p->n_labels > 0) {
        *labels = (const char **)p->labels;
        *k = p->n_labels;
        return TW_OK;
    }
    const char **all = tw_malloc((n ? n : 1) * sizeof *all, err);
    if (!all) return TW_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) all[i] = items[i].reference;
    qsort(all, n, sizeof *all, strp_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(all[m - 1], all[i]) != 0) all[m++] = all[i];
    *labels = *owned = all;
    *k = m;
    return TW_OK;
}

static tw_status check_items(const tw_score_item *items, size_t n, int task, tw_error *err)
{
    char nm[160];
    for (size_t i = 0; i < n; i++) {
        const tw_score_item *it = &items[i];
        if (task == TASK_GENERATE && it->n_refs > 0) {
            if (!it->refs) return tw_error_set(err, TW_ERR_INVALID, "%s: n_refs > 0 but refs is NULL", item_name(it, i, nm, sizeof nm));
            for (size_t r = 0; r < it->n_refs; r++)
                if (!it->refs[r]) return tw_error_set(err, TW_ERR_INVALID, "%s: reference %zu is NULL", item_name(it, i, nm, sizeof nm), r);
        } else if (!it->reference) {
            return tw_error_set(err, TW_ERR_INVALID, "%s: missing reference", item_name(it, i, nm, sizeof nm));
        }
    }
    return TW_OK;
}

/* Fill the per-item statistics of system sys from items[0..n). */
static tw_status fill_system(dataset *d, int sys, const tw_score_item *items, size_t n,
                             const tw_label_index *lix, const json_t *schema, json_t **golds,
                             tw_error *err)
{
    char nm[160];
    if (d->task == TASK_CLASSIFY) {
        d->pred[sys] = tw_malloc((n ? n : 1) * sizeof(int32_t), err);
        if (!d->pred[sys]) return TW_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            int32_t pi = tw_label_index_find(lix, items[i].prediction);
            d->pred[sys][i] = pi < 0 ? (int32_t)d->k : pi;
        }
    } else if (d->task == TASK_EXTRACT) {
        d->ext[sys] = tw_calloc(n ? n : 1, sizeof(tw_ext_item), err);
        if (!d->ext[sys]) return TW_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            tw_status st = tw_ext_item_score(&d->ext[sys][i], items[i].prediction, golds[i], schema, err);
            if (st) {
                tw_error_prefix(err, "%s: ", item_name(&items[i], i, nm, sizeof nm));
                return st;
            }
        }
    } else {
        d->gen[sys] = tw_calloc(n ? n : 1, sizeof(tw_gen_item), err);
        if (!d->gen[sys]) return TW_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            const tw_score_item *it = &items[i];
            const char *const *refs = it->n_refs > 0 ? it->refs : &it->reference;
            size_t nr = it->n_refs > 0 ? it->n_refs : 1;
            tw_status st = tw_gen_item_score(&d->gen[sys][i], it->prediction, refs, nr, err);
            if (st) {
                tw_error_prefix(err, "%s: ", item_name(it, i, nm, sizeof nm));
                return st;
            }
        }
    }
    return TW_OK;
}

/* The subset of src at positions sel[0..m) (positions within src). */
static tw_status dataset_subset(dataset *dst, const dataset *src, const size_t *sel, size_t m, tw_error *err)
{
    memset(dst, 0, sizeof *dst);
    dst->task = src->task;
    dst->n = m;
    dst->k = src->k;
    dst->n_sys = src->n_sys;
    dst->has_schema = src->has_schema;
    size_t mm = m ? m : 1;
    dst->idx = tw_malloc(mm * sizeof *dst->idx, err);
    if (!dst->idx) goto nomem;
    for (size_t i = 0; i < m; i++) dst->idx[i] = src->idx[sel[i]];
    if (src->task == TASK_CLASSIFY) {
        dst->gold = tw_malloc(mm * sizeof *dst->gold, err);
        if (!dst->gold) goto nomem;
        for (size_t i = 0; i < m; i++) dst->gold[i] = src->gold[sel[i]];
    }
    for (int s = 0; s < src->n_sys; s++) {
        if (src->task == TASK_CLASSIFY) {
            if (!(dst->pred[s] = tw_malloc(mm * sizeof *dst->pred[s], err))) goto nomem;
            for (size_t i = 0; i < m; i++) dst->pred[s][i] = src->pred[s][sel[i]];
        } else if (src->task == TASK_EXTRACT) {
            if (!(dst->ext[s] = tw_malloc(mm * sizeof *dst->ext[s], err))) goto nomem;
            for (size_t i = 0; i < m; i++) dst->ext[s][i] = src->ext[s][sel[i]];
        } else {
            if (!(dst->gen[s] = tw_malloc(mm * sizeof *dst->gen[s], err))) goto nomem;
            for (size_t i = 0; i < m; i++) dst->gen[s][i] = src->gen[s][sel[i]];
        }
    }
    return TW_OK;
nomem:
    dataset_free(dst);
    return TW_ERR_NOMEM;
}

/* ---- metrics with intervals ------------------------------------------------------------------ */

typedef struct {
    double value[3 * MAX_METRICS];   /* A, B, B-A (paired) or A only */
    double lo[3 * MAX_METRICS], hi[3 * MAX_METRICS], p[MAX_METRICS];
} estimates;

typedef struct {
    uint64_t key;
    uint32_t i;
} cellkey;

static int cellkey_cmp(const void *a, const void *b)
{
    const cellkey *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

/* classify: compress d into its distinct (gold, pred A[, pred B]) cells. *g gets one
 * "item" per cell (its multiplicity comes from the bootstrap weights) and group[i] is
 * the cell of item i. Metrics over g weighted by cell counts equal metrics over d. */
static tw_status cls_groups(dataset *g, uint32_t **group, const dataset *d, tw_error *err)
{
    const uint64_t K1 = d->k + 1;
    memset(g, 0, sizeof *g);
    *group = NULL;
    cellkey *ck = tw_malloc((d->n ? d->n : 1) * sizeof *ck, err);
    uint32_t *grp = tw_malloc((d->n ? d->n : 1) * sizeof *grp, err);
    if (!ck || !grp) goto nomem;
    for (size_t i = 0; i < d->n; i++) {
        uint64_t key = (uint64_t)d->gold[i] * K1 + (uint64_t)d->pred[0][i];
        if (d->n_sys == 2) key = key * K1 + (uint64_t)d->pred[1][i];
        ck[i] = (cellkey){key, (uint32_t)i};
    }
    qsort(ck, d->n, sizeof *ck, cellkey_cmp);
    size_t m = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (i == 0 || ck[i].key != ck[i - 1].key) m++;
        grp[ck[i].i] = (uint32_t)(m - 1);
    }
    g->task = d->task;
    g->k = d->k;
    g->n = m;
    g->n_sys = d->n_sys;
    g->gold = tw_malloc((m ? m : 1) * sizeof *g->gold, err);
    for (int s = 0; s < d->n_sys; s++) g->pred[s] = tw_malloc((m ? m : 1) * sizeof *g->pred[s], err);
    if (!g->gold || !g->pred[0] || (d->n_sys == 2 && !g->pred[1])) goto nomem;
    for (size_t i = 0; i < d->n; i++) {
        uint32_t c = grp[i];
        g->gold[c] = d->gold[i];
        for (int s = 0; s < d->n_sys; s++) g->pred[s][c] = d->pred[s][i];
    }
    free(ck);
    *group = grp;
    return TW_OK;
nomem:
    free(ck);
    free(grp);
    dataset_free(g);
    return TW_ERR_NOMEM;
}

/* Point estimates and (if B > 0) percentile intervals for every headline metric of d;
 * paired datasets also get the paired-bootstrap p-value of each difference. */
static tw_status estimate(estimates *e, const dataset *d, const tw_score_params *p, uint64_t seed, tw_error *err)
{
    size_t m = n_metrics(d->task), cols = d->n_sys == 2 ? 3 * m : m;
    void *scratch = tw_malloc(scratch_bytes(d) ? scratch_bytes(d) : 1, err);
    if (!scratch) return TW_ERR_NOMEM;
    for (int s = 0; s < d->n_sys; s++) eval_metrics(e->value + (size_t)s * m, d, s, NULL, scratch);
    free(scratch);
    if (d->n_sys == 2)
        for (size_t j = 0; j < m; j++) e->value[2 * m + j] = e->value[m + j] - e->value[j];
    for (size_t j = 0; j < cols; j++) e->lo[j] = e->hi[j] = NAN;
    for (size_t j = 0; j < m; j++) e->p[j] = NAN;
    if (p->bootstrap <= 0 || d->n == 0) return TW_OK;
    size_t B = (size_t)p->bootstrap;
    double *reps = tw_malloc(B * cols * sizeof *reps, err);
    if (!reps) return TW_ERR_NOMEM;
    tw_boot_spec spec = {.n = d->n, .n_out = cols, .fn = d->n_sys == 2 ? boot_paired : boot_single,
                         .ctx = d, .scratch_bytes = scratch_bytes(d), .replicates = B, .seed = seed};
    dataset cells = {0};
    uint32_t *group = NULL;
    tw_status st = TW_OK;
    if (d->task == TASK_CLASSIFY) {   /* resample over (gold, pred) cells: same draws, less work */
        st = cls_groups(&cells, &group, d, err);
        spec.ctx = &cells;
        spec.group = group;
        spec.n_groups = cells.n;
    }
    if (st == TW_OK) st = tw_bootstrap(reps, &spec, err);
    dataset_free(&cells);
    free(group);
    for (size_t j = 0; st == TW_OK && j < cols; j++)
        st = tw_boot_ci(&e->lo[j], &e->hi[j], reps, B, cols, j, p->ci_level, err);
    if (st == TW_OK && d->n_sys == 2)
        for (size_t j = 0; j < m; j++) e->p[j] = tw_boot_pvalue(reps, B, cols, 2 * m + j);
    free(reps);
    return st;
}

static bool metric_shown(const dataset *d, size_t j)
{
    /* schema_valid only means something when a schema was given */
    return !(d->task == TASK_EXTRACT && j == 6 && !d->has_schema);
}

/* {"name": {"value", "ci"}} for system s (offset s*m in e). */
static json_t *metrics_json(const estimates *e, const dataset *d, int s, bool *ok)
{
    size_t m;
    const char *const *names = tw_score_metric_names(d->task, &m);
    json_t *o = json_object();
    for (size_t j = 0; j < m; j++) {
        if (!metric_shown(d, j)) continue;
        size_t c = (size_t)s * m + j;
        json_t *v = json_object();
        jset(v, "value", jnum(e->value[c]), ok);
        jset(v, "ci", jpair(e->lo[c], e->hi[c], ok), ok);
        jset(o, names[j], v, ok);
    }
    if (!o) *ok = false;
    return o;
}

static size_t metric_index(int task, const char *name)
{
    size_t m;
    const char *const *names = tw_score_metric_names(task, &m);
    for (size_t j = 0; j < m; j++)
        if (strcmp(names[j], name) == 0) return j;
    return (size_t)-1;
}

/* ---- breakdowns ------------------------------------------------------------------------- */

static json_t *per_class_json(const dataset *d, int sys, const char *const *labels, bool *ok, tw_error *err)
{
    size_t k = d->k;
    uint64_t *conf = tw_calloc(k * (k + 1) + 1, sizeof *conf, err);
    double *pc = tw_calloc(k ? 4 * k : 1, sizeof *pc, err);
    json_t *o = json_object();
    if (!conf || !pc || !o) {
        *ok = false;
        free(conf);
        free(pc);
        return o;
    }
    tw_cls_confusion(conf, d->gold, d->pred[sys], NULL, d->n, k);
    tw_cls_summary s;
    tw_cls_metrics(&s, pc, conf, k);
    for (size_t c = 0; c < k; c++) {
        json_t *v = json_object();
        jset(v, "precision", jnum(pc[4 * c]), ok);
        jset(v, "recall", jnum(pc[4 * c + 1]), ok);
        jset(v, "f1", jnum(pc[4 * c + 2]), ok);
        jset(v, "support", json_integer((json_int_t)pc[4 * c + 3]), ok);
        jset(o, labels[c], v, ok);
    }
    free(conf);
    free(pc);
    return o;
}

static json_t *confusion_json(const dataset *d, const char *const *labels, bool *ok, tw_error *err)
{
    size_t k = d->k;
    uint64_t *conf = tw_calloc(k * (k + 1) + 1, sizeof *conf, err);
    json_t *o = json_object(), *lab = json_array(), *cols = json_array(), *mat = json_array();
    if (!conf) *ok = false;
    else tw_cls_confusion(conf, d->gold, d->pred[0], NULL, d->n, k);
    for (size_t c = 0; c < k; c++) {
        jpush(lab, json_string(labels[c]), ok);
        jpush(cols, json_string(labels[c]), ok);
    }
    jpush(cols, json_string("(invalid)"), ok);
    for (size_t r = 0; conf && r < k; r++) {
        json_t *row = json_array();
        for (size_t c = 0; c <= k; c++) jpush(row, json_integer((json_int_t)conf[r * (k + 1) + c]), ok);
        jpush(mat, row, ok);
    }
    jset(o, "labels", lab, ok);
    jset(o, "columns", cols, ok);
    jset(o, "matrix", mat, ok);
    free(conf);
    return o;
}

typedef struct {
    const char *s;
    size_t count;
} strcount;

static int strcount_cmp(const void *a, const void *b)
{
    const strcount *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->s, y->s);
}

/* The most frequent predictions outside the label set (up to 10, truncated to 80 bytes). */
static json_t *invalid_json(const dataset *d, const tw_score_item *items, bool *ok, tw_error *err)
{
    json_t *o = json_object(), *top = json_array();
    size_t m = 0;
    const char **v = tw_malloc((d->n ? d->n : 1) * sizeof *v, err);
    strcount *runs = tw_malloc((d->n ? d->n : 1) * sizeof *runs, err);
    if (!v || !runs) *ok = false;
    for (size_t i = 0; v && i < d->n; i++)
        if (d->pred[0][i] == (int32_t)d->k) {
            const char *s = items[d->idx[i]].prediction;
            v[m++] = s ? s : "";
        }
    jset(o, "count", json_integer((json_int_t)m), ok);
    if (v && runs) {
        qsort(v, m, sizeof *v, strp_cmp);
        size_t r = 0;
        for (size_t i = 0; i < m; i++) {
            if (r > 0 && strcmp(runs[r - 1].s, v[i]) == 0) runs[r - 1].count++;
            else runs[r++] = (strcount){v[i], 1};
        }
        qsort(runs, r, sizeof *runs, strcount_cmp);
        for (size_t i = 0; i < r && i < 10; i++) {
            char buf[84];
            size_t len = strlen(runs[i].s);
            if (len > 80) {   /* cut on a UTF-8 boundary */
                len = 80;
                while (len > 0 && ((unsigned char)runs[i].s[len] & 0xC0) == 0x80) len--;
            }
            memcpy(buf, runs[i].s, len);
            buf[len] = '\0';
            json_t *e = json_object();
            json_t *js = json_string(buf);
            if (!js) js = json_string("(not valid UTF-8)");
            jset(e, "prediction", js, ok);
            jset(e, "count", json_integer((json_int_t)runs[i].count), ok);
            jpush(top, e, ok);
        }
    }
    jset(o, "top", top, ok);
    free(v);
    free(runs);
    return o;
}

typedef struct {
    char *path;
    uint32_t tp, np, ng;
} fieldrec;

static int fieldrec_cmp(const void *a, const void *b)
{
    return strcmp(((const fieldrec *)a)->path, ((const fieldrec *)b)->path);
}

/* Field-level precision/recall/F1 per flattened path, micro-averaged over items. */
static tw_status per_field_json(json_t **out, const tw_score_item *items, size_t n, json_t **golds,
                                tw_error *err)
{
    fieldrec *recs = NULL;
    size_t nr = 0, cap = 0;
    tw_status st = TW_OK;
    bool ok = true;
    *out = NULL;
    for (size_t i = 0; i < n && st == TW_OK; i++) {
        tw_json_pair *gp = NULL, *pp = NULL;
        size_t ng = 0, np = 0;
        bool *ph = NULL, *gh = NULL;
        json_t *pred = tw_ext_parse(items[i].prediction);
        st = tw_json_flatten(&gp, &ng, golds[i], err);
        if (st == TW_OK && pred) st = tw_json_flatten(&pp, &np, pred, err);
        if (st == TW_OK) {
            ph = tw_calloc(np ? np : 1, sizeof *ph, err);
            gh = tw_calloc(ng ? ng : 1, sizeof *gh, err);
            if (!ph || !gh || tw_grow((void **)&recs, &cap, nr + np + ng, sizeof *recs, err) != TW_OK) st = TW_ERR_NOMEM;
        }
        if (st == TW_OK) {
            tw_json_pairs_match(ph, gh, pp, np, gp, ng);
            for (size_t j = 0; j < np; j++) {
                recs[nr++] = (fieldrec){pp[j].path, ph[j], 1, 0};
                pp[j].path = NULL;   /* moved */
            }
            for (size_t j = 0; j < ng; j++) {
                recs[nr++] = (fieldrec){gp[j].path, 0, 0, 1};
                gp[j].path = NULL;
            }
        }
        free(ph);
        free(gh);
        tw_json_pairs_free(pp, np);
        tw_json_pairs_free(gp, ng);
        json_decref(pred);
    }
    if (st == TW_OK) {
        if (nr) qsort(recs, nr, sizeof *recs, fieldrec_cmp);
        json_t *o = json_object();
        for (size_t i = 0; i < nr && o;) {
            size_t j = i;
            double tp = 0, np = 0, ng = 0;
            while (j < nr && strcmp(recs[j].path, recs[i].path) == 0) {
                tp += recs[j].tp;
                np += recs[j].np;
                ng += recs[j].ng;
                j++;
            }
            json_t *v = json_object();
            jset(v, "precision", jnum(div0(tp, np)), &ok);
            jset(v, "recall", jnum(div0(tp, ng)), &ok);
            jset(v, "f1", jnum(div0(2 * tp, np + ng)), &ok);
            jset(v, "support", json_integer((json_int_t)ng), &ok);
            jset(o, recs[i].path, v, &ok);
            i = j;
        }
        if (!o || !ok) {
            json_decref(o);
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory building per-field scores");
        } else *out = o;
    }
    for (size_t i = 0; i < nr; i++) free(recs[i].path);
    free(recs);
    return st;
}

/* Summary of latency or token fields of the items d->idx (NAN = unknown, skipped). */
static json_t *latency_json(const dataset *d, const tw_score_item *items, bool *ok, tw_error *err)
{
    double *v = tw_malloc((d->n ? d->n : 1) * sizeof *v, err);
    size_t m = 0;
    double sum = 0;
    if (!v) { *ok = false; return NULL; }
    for (size_t i = 0; i < d->n; i++) {
        double x = items[d->idx[i]].latency_ms;
        if (!isnan(x)) { v[m++] = x; sum += x; }
    }
    json_t *o = NULL;
    if (m > 0) {
        qsort(v, m, sizeof *v, tw_cmp_double);
        o = json_object();
        jset(o, "n", json_integer((json_int_t)m), ok);
        jset(o, "mean", jnum(sum / (double)m), ok);
        jset(o, "p50", jnum(tw_quantile_sorted(v, m, 0.50)), ok);
        jset(o, "p90", jnum(tw_quantile_sorted(v, m, 0.90)), ok);
        jset(o, "p99", jnum(tw_quantile_sorted(v, m, 0.99)), ok);
    }
    free(v);
    return o;
}

static json_t *tokens_json(const dataset *d, const tw_score_item *items, bool *ok)
{
    double si = 0, so = 0;
    size_t ni = 0, no = 0;
    for (size_t i = 0; i < d->n; i++) {
        const tw_score_item *it = &items[d->idx[i]];
        if (!isnan(it->tokens_in)) { si += it->tokens_in; ni++; }
        if (!isnan(it->tokens_out)) { so += it->tokens_out; no++; }
    }
    if (ni == 0 && no == 0) return NULL;
    json_t *o = json_object();
    jset(o, "n_in", json_integer((json_int_t)ni), ok);
    jset(o, "in_total", jnum(si), ok);
    jset(o, "in_mean", jnum(ni ? si / (double)ni : NAN), ok);
    jset(o, "n_out", json_integer((json_int_t)no), ok);
    jset(o, "out_total", jnum(so), ok);
    jset(o, "out_mean", jnum(no ? so / (double)no : NAN), ok);
    return o;
}

/* Groups of positions (within d) by slice name; items without a slice are skipped. */
typedef struct {
    const char *name;
    size_t *pos;
    size_t n;
} slice_group;

static void slices_free(slice_group *g, size_t ng)
{
    if (!g) return;
    for (size_t i = 0; i < ng; i++) free(g[i].pos);
    free(g);
}

typedef struct {
    const char *s;
    size_t pos;
} slice_ref;

static int slice_ref_cmp(const void *a, const void *b)
{
    const slice_ref *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static tw_status group_slices(slice_group **out, size_t *ng, const dataset *d, const tw_score_item *items,
                              tw_error *err)
{
    *out = NULL;
    *ng = 0;
    slice_ref *r = tw_malloc((d->n ? d->n : 1) * sizeof *r, err);
    if (!r) return TW_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < d->n; i++) {
        const char *s = items[d->idx[i]].slice;
        if (s) r[m++] = (slice_ref){s, i};
    }
    qsort(r, m, sizeof *r, slice_ref_cmp);
    slice_group *g = tw_calloc(m ? m : 1, sizeof *g, err);
    if (!g) { free(r); return TW_ERR_NOMEM; }
    size_t n_g = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && strcmp(r[j].s, r[i].s) == 0) j++;
        g[n_g].name = r[i].s;
        g[n_g].n = j - i;
        g[n_g].pos = tw_malloc((j - i) * sizeof *g[n_g].pos, err);
        if (!g[n_g].pos) { slices_free(g, n_g); free(r); return TW_ERR_NOMEM; }
        for (size_t t = i; t < j; t++) g[n_g].pos[t - i] = r[t].pos;
        n_g++;
        i = j;
    }
    free(r);
    *out = g;
    *ng = n_g;
    return TW_OK;
}

/* ---- entry points -------------------------------------------------------------------------- */

typedef struct {
    dataset d;
    tw_label_index lix;
    const char **labels;
    const char **labels_owned;
    json_t **golds;        /* extract: parsed references (n) */
    json_t *unsupported;   /* extract: schema keywords the validator ignores */
    size_t primary;
} prepared;

static void prepared_free(prepared *pr)
{
    if (pr->golds)
        for (size_t i = 0; i < pr->d.n; i++) json_decref(pr->golds[i]);
    free(pr->golds);
    json_decref(pr->unsupported);
    tw_label_index_free(&pr->lix);
    free(pr->labels_owned);
    dataset_free(&pr->d);
}

static tw_status prepare(prepared *pr, const tw_score_item *items, size_t n, const tw_score_params *p,
                         int n_sys, tw_error *err)
{
    memset(pr, 0, sizeof *pr);
    int task = p->task_type;
    if (task < TASK_CLASSIFY || task > TASK_GENERATE)
        return tw_error_set(err, TW_ERR_INVALID, "unknown task type %d", task);
    if (!(p->ci_level > 0 && p->ci_level < 1))
        return tw_error_set(err, TW_ERR_INVALID, "ci_level must be in (0, 1), got %g", p->ci_level);
    if (p->bootstrap < 0) return tw_error_set(err, TW_ERR_INVALID, "bootstrap must be >= 0");
    const char *primary = p->primary ? p->primary : tw_score_default_primary(task);
    pr->primary = metric_index(task, primary);
    if (pr->primary == (size_t)-1) {
        size_t m;
        const char *const *names = tw_score_metric_names(task, &m);
        char list[256] = "";
        for (size_t j = 0; j < m; j++) {
            strncat(list, names[j], sizeof list - strlen(list) - 1);
            if (j + 1 < m) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return tw_error_set(err, TW_ERR_INVALID, "unknown metric '%s' for a %s task (one of: %s)", primary,
                            task_name(task), list);
    }
    tw_status st = check_items(items, n, task, err);
    if (st) return st;
    dataset *d = &pr->d;
    d->task = task;
    d->n = n;
    d->n_sys = n_sys;
    d->has_schema = p->schema != NULL;
    d->idx = tw_malloc((n ? n : 1) * sizeof *d->idx, err);
    if (!d->idx) return TW_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) d->idx[i] = i;
    char nm[160];
    if (task == TASK_CLASSIFY) {
        if ((st = resolve_labels(&pr->labels, &d->k, &pr->labels_owned, items, n, p, err))) return st;
        if ((st = tw_label_index_init(&pr->lix, pr->labels, d->k, err))) return st;
        d->gold = tw_malloc((n ? n : 1) * sizeof *d->gold, err);
        if (!d->gold) return TW_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            int32_t g = tw_label_index_find(&pr->lix, items[i].reference);
            if (g < 0)
                return tw_error_set(err, TW_ERR_INVALID, "%s: reference label '%s' is not in the label set",
                                    item_name(&items[i], i, nm, sizeof nm), items[i].reference);
            d->gold[i] = g;
        }
    } else if (task == TASK_EXTRACT) {
        pr->golds = tw_calloc(n ? n : 1, sizeof *pr->golds, err);
        if (!pr->golds) return TW_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            json_error_t je;
            pr->golds[i] = json_loads(items[i].reference, JSON_DECODE_ANY, &je);
            if (!pr->golds[i])
                return tw_error_set(err, TW_ERR_INVALID, "%s: reference is not valid JSON: %s (column %d)",
                                    item_name(&items[i], i, nm, sizeof nm), je.text, je.column);
        }
        if (p->schema) {
            if ((st = tw_json_schema_unsupported(&pr->unsupported, p->schema, err))) return st;
            if (json_array_size(pr->unsupported) > 0)
                tw_log(TW_LOG_WARN, "score: %zu JSON Schema keyword(s) are not checked (first: %s)",
                       json_array_size(pr->unsupported),
                       json_string_value(json_array_get(pr->unsupported, 0)));
        }
    }
    return fill_system(d, 0, items, n, &pr->lix, p->schema, pr->golds, err);
}

static void add_header(json_t *r, const prepared *pr, const tw_score_params *p, bool *ok)
{
    size_t m;
    const char *const *names = tw_score_metric_names(pr->d.task, &m);
    jset(r, "task", json_string(task_name(pr->d.task)), ok);
    jset(r, "n", json_integer((json_int_t)pr->d.n), ok);
    jset(r, "primary", json_string(names[pr->primary]), ok);
    json_t *ci = json_object();
    jset(ci, "method", json_string("percentile bootstrap"), ok);
    jset(ci, "level", json_real(p->ci_level), ok);
    jset(ci, "replicates", json_integer(p->bootstrap), ok);
    jset(ci, "seed", json_integer((json_int_t)p->seed), ok);
    jset(r, "ci", ci, ok);
}

/* Seed of slice number s: independent of the overall stream, stable across runs. */
static uint64_t slice_seed(uint64_t seed, size_t s) { return seed ^ tw_hash_mix(0x5111CE5ULL + s); }

tw_status tw_score(const tw_score_item *items, size_t n, const tw_score_params *p, json_t **report,
                   tw_error *err)
{
    *report = NULL;
    if (!items && n) return tw_error_set(err, TW_ERR_INVALID, "items is NULL");
    prepared pr;
    tw_status st = prepare(&pr, items, n, p, 1, err);
    slice_group *groups = NULL;
    size_t n_groups = 0;
    json_t *r = NULL;
    bool ok = true;
    if (st) goto done;
    dataset *d = &pr.d;
    estimates e;
    if ((st = estimate(&e, d, p, p->seed, err))) goto done;

    r = json_object();
    add_header(r, &pr, p, &ok);
    jset(r, "metrics", metrics_json(&e, d, 0, &ok), &ok);
    if (d->task == TASK_CLASSIFY) {
        json_t *lab = json_array();
        for (size_t c = 0; c < d->k; c++) jpush(lab, json_string(pr.labels[c]), &ok);
        jset(r, "labels", lab, &ok);
        jset(r, "per_class", per_class_json(d, 0, pr.labels, &ok, err), &ok);
        jset(r, "confusion", confusion_json(d, pr.labels, &ok, err), &ok);
        jset(r, "invalid", invalid_json(d, items, &ok, err), &ok);
    } else if (d->task == TASK_EXTRACT) {
        json_t *pf = NULL;
        if ((st = per_field_json(&pf, items, n, pr.golds, err))) goto done;
        jset(r, "per_field", pf, &ok);
        if (pr.unsupported && json_array_size(pr.unsupported) > 0)
            jset(r, "schema_unsupported", json_incref(pr.unsupported), &ok);
    }

    if ((st = group_slices(&groups, &n_groups, d, items, err))) goto done;
    if (n_groups > 0) {
        json_t *sl = json_object();
        for (size_t s = 0; s < n_groups && st == TW_OK; s++) {
            dataset sd;
            if ((st = dataset_subset(&sd, d, groups[s].pos, groups[s].n, err))) break;
            estimates se;
            st = estimate(&se, &sd, p, slice_seed(p->seed, s), err);
            if (st == TW_OK) {
                json_t *o = json_object();
                jset(o, "n", json_integer((json_int_t)sd.n), &ok);
                jset(o, "metrics", metrics_json(&se, &sd, 0, &ok), &ok);
                if (sd.task == TASK_CLASSIFY) jset(o, "per_class", per_class_json(&sd, 0, pr.labels, &ok, err), &ok);
                json_t *lat = latency_json(&sd, items, &ok, err);
                if (lat) jset(o, "latency_ms", lat, &ok);
                json_t *tok = tokens_json(&sd, items, &ok);
                if (tok) jset(o, "tokens", tok, &ok);
                jset(sl, groups[s].name, o, &ok);
            }
            dataset_free(&sd);
        }
        if (st) goto done;
        jset(r, "slices", sl, &ok);
    }
    json_t *lat = latency_json(d, items, &ok, err);
    if (lat) jset(r, "latency_ms", lat, &ok);
    json_t *tok = tokens_json(d, items, &ok);
    if (tok) jset(r, "tokens", tok, &ok);

    /* power: the binary headline metric is the baseline proportion */
    {
        size_t bj = d->task == TASK_CLASSIFY ? 0 : metric_index(d->task, "exact_match");
        double base = e.value[bj];
        size_t m;
        const char *const *names = tw_score_metric_names(d->task, &m);
        json_t *pw = json_object();
        jset(pw, "metric", json_string(names[bj]), &ok);
        jset(pw, "baseline", jnum(base), &ok);
        jset(pw, "alpha", json_real(p->alpha), &ok);
        jset(pw, "power", json_real(p->power), &ok);
        jset(pw, "mde_independent", jnum(n ? tw_mde_two_prop(base, (double)n, p->alpha, p->power) : NAN), &ok);
        jset(r, "power", pw, &ok);
    }
    if (!ok || !r) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory building the score report");
done:
    slices_free(groups, n_groups);
    prepared_free(&pr);
    if (st) json_decref(r);
    else *report = r;
    return st;
}

static json_t *diff_entry(const estimates *e, size_t m, size_t j, bool *ok)
{
    json_t *v = json_object();
    jset(v, "a", jnum(e->value[j]), ok);
    jset(v, "b", jnum(e->value[m + j]), ok);
    jset(v, "delta", jnum(e->value[2 * m + j]), ok);
    jset(v, "ci", jpair(e->lo[2 * m + j], e->hi[2 * m + j], ok), ok);
    jset(v, "p", jnum(e->p[j]), ok);
    return v;
}

/* Is item i right under the binary metric used for McNemar? */
static bool item_right(const dataset *d, int s, size_t i)
{
    if (d->task == TASK_CLASSIFY) return d->pred[s][i] == d->gold[i];
    if (d->task == TASK_EXTRACT) return d->ext[s][i].exact;
    return d->gen[s][i].exact != 0;
}

tw_status tw_score_compare(const tw_score_item *a, const tw_score_item *b, size_t n,
                           const tw_score_params *p, json_t **report, tw_error *err)
{
    *report = NULL;
    if ((!a || !b) && n) return tw_error_set(err, TW_ERR_INVALID, "items are NULL");
    char nm[160];
    for (size_t i = 0; i < n; i++) {
        if (a[i].id && b[i].id && strcmp(a[i].id, b[i].id) != 0)
            return tw_error_set(err, TW_ERR_INVALID, "item %zu: ids differ between the systems ('%s' vs '%s')", i,
                                a[i].id, b[i].id);
        if (a[i].reference && b[i].reference && strcmp(a[i].reference, b[i].reference) != 0)
            return tw_error_set(err, TW_ERR_INVALID, "%s: references differ between the systems",
                                item_name(&a[i], i, nm, sizeof nm));
    }
    prepared pr;
    tw_status st = prepare(&pr, a, n, p, 2, err);
    slice_group *groups = NULL;
    size_t n_groups = 0;
    json_t *r = NULL;
    bool ok = true;
    if (st) goto done;
    dataset *d = &pr.d;
    /* system B: same references, its own predictions */
    tw_score_item *bi = tw_malloc((n ? n : 1) * sizeof *bi, err);
    if (!bi) { st = TW_ERR_NOMEM; goto done; }
    for (size_t i = 0; i < n; i++) {
        bi[i] = a[i];
        bi[i].prediction = b[i].prediction;
    }
    st = fill_system(d, 1, bi, n, &pr.lix, p->schema, pr.golds, err);
    free(bi);
    if (st) goto done;

    estimates e;
    if ((st = estimate(&e, d, p, p->seed, err))) goto done;
    size_t m;
    const char *const *names = tw_score_metric_names(d->task, &m);
    r = json_object();
    add_header(r, &pr, p, &ok);
    jset(r, "a", metrics_json(&e, d, 0, &ok), &ok);
    jset(r, "b", metrics_json(&e, d, 1, &ok), &ok);
    json_t *diff = json_object();
    for (size_t j = 0; j < m; j++)
        if (metric_shown(d, j)) jset(diff, names[j], diff_entry(&e, m, j, &ok), &ok);
    jset(r, "diff", diff, &ok);

    /* exact McNemar on the binary metric */
    uint64_t both = 0, neither = 0, a_only = 0, b_only = 0;
    for (size_t i = 0; i < n; i++) {
        bool ra = item_right(d, 0, i), rb = item_right(d, 1, i);
        both += ra && rb;
        neither += !ra && !rb;
        a_only += ra && !rb;
        b_only += !ra && rb;
    }
    size_t bj = d->task == TASK_CLASSIFY ? 0 : metric_index(d->task, "exact_match");
    json_t *mc = json_object();
    jset(mc, "metric", json_string(names[bj]), &ok);
    jset(mc, "a_only", json_integer((json_int_t)a_only), &ok);
    jset(mc, "b_only", json_integer((json_int_t)b_only), &ok);
    jset(mc, "both", json_integer((json_int_t)both), &ok);
    jset(mc, "neither", json_integer((json_int_t)neither), &ok);
    jset(mc, "p", jnum(tw_mcnemar_exact(a_only, b_only)), &ok);
    jset(r, "mcnemar", mc, &ok);

    json_t *pw = json_object();
    double psi = n ? (double)(a_only + b_only) / (double)n : NAN;
    jset(pw, "metric", json_string(names[bj]), &ok);
    jset(pw, "discordance", jnum(psi), &ok);
    jset(pw, "mde_paired", jnum(n ? tw_mde_mcnemar((double)n, psi, p->alpha, p->power) : NAN), &ok);
    jset(pw, "mde_independent", jnum(n ? tw_mde_two_prop(e.value[bj], (double)n, p->alpha, p->power) : NAN), &ok);
    jset(pw, "alpha", json_real(p->alpha), &ok);
    jset(pw, "power", json_real(p->power), &ok);
    jset(r, "power", pw, &ok);

    if ((st = group_slices(&groups, &n_groups, d, a, err))) goto done;
    if (n_groups > 0) {
        json_t *sl = json_object();
        size_t j = pr.primary;
        for (size_t s = 0; s < n_groups && st == TW_OK; s++) {
            dataset sd;
            if ((st = dataset_subset(&sd, d, groups[s].pos, groups[s].n, err))) break;
            estimates se;
            st = estimate(&se, &sd, p, slice_seed(p->seed, s), err);
            if (st == TW_OK) {
                json_t *o = diff_entry(&se, m, j, &ok);
                jset(o, "n", json_integer((json_int_t)sd.n), &ok);
                jset(sl, groups[s].name, o, &ok);
            }
            dataset_free(&sd);
        }
        if (st) goto done;
        jset(r, "slices", sl, &ok);
    }
    json_t *la = latency_json(d, a, &ok, err), *lb = latency_json(d, b, &ok, err);
    if (la || lb) {
        json_t *o = json_object();
        if (la) jset(o, "a", la, &ok);
        if (lb) jset(o, "b", lb, &ok);
        jset(r, "latency_ms", o, &ok);
    }
    json_t *ta = tokens_json(d, a, &ok), *tb = tokens_json(d, b, &ok);
    if (ta || tb) {
        json_t *o = json_object();
        if (ta) jset(o, "a", ta, &ok);
        if (tb) jset(o, "b", tb, &ok);
        jset(r, "tokens", o, &ok);
    }
    if (!ok || !r) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory building the comparison report");
done:
    slices_free(groups, n_groups);
    prepared_free(&pr);
    if (st) json_decref(r);
    else *report = r;
    return st;
}
