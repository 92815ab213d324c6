/* classic.c — the classic baseline arm (see classic.h): TF-IDF over hashed n-grams
 * and a one-vs-rest linear model trained by dual coordinate descent, model selection
 * (C, NB scaling) by cross-validation and/or dev, prediction, and the model file
 * (format in docs/classic.md).
 *
 * Training pipeline (all matrices CSR, built in one pass each):
 *   texts ─tw_feat_extract→ raw (bucket, count) rows + document frequencies
 *         ─vocab_build→ the buckets seen in training (ascending) = columns, idf
 *         ─csr_build→ X: col ids + float tf-idf values, each block L2-normalised
 *         ─solve_svm / solve_lr per class (OpenMP over classes)→ W (n_cols × n_labels)
 * Buckets never seen in training are dropped at prediction time before the
 * normalisation, as a fitted TfidfVectorizer drops out-of-vocabulary terms.
 * Selection repeats vocab/csr/fit per fold on the fold's training rows only (idf and
 * NB ratios included), so no held-out row ever informs its own prediction.
 *
 * The solvers are liblinear's (Hsieh et al. 2008, "A dual coordinate descent method
 * for large-scale linear SVM", with shrinking; Yu et al. 2011 for the logistic
 * regression dual), with a bias feature of value 1 that is regularised like the
 * other weights (liblinear -B 1, sklearn intercept_scaling=1). NB scaling is Wang &
 * Manning 2012 ("Baselines and bigrams", NBSVM) on binarized counts, alpha = 1, with
 * no interpolation; it is folded into the stored weights.
 *
 * Deliberately not here: reading task files, the CLI, metrics beyond accuracy.
 */
#include "arms/classic.h"
#include "arms/features.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIAS_VALUE 1.0f
static const double DEFAULT_GRID[] = {0.1, 0.3, 1.0, 3.0, 10.0};
/* logistic regression needs ~10x weaker regularisation for the same fit on tf-idf rows */
static const double DEFAULT_GRID_LR[] = {1.0, 3.0, 10.0, 30.0, 100.0};
#define NB_ALPHA 1.0           /* add-one smoothing of the NB counts (NBSVM's choice) */
#define SEL_TOL_SVM 0.1        /* selection fits of the SVMs stop here (liblinear's default) */
#define MAX_FOLDS 20

/* ---- model ------------------------------------------------------------------ */
typedef struct vocab {
    tw_feat_config fc;
    int sublinear_tf, use_idf;
    size_t n_cols;
    const uint32_t *buckets;   /* n_cols, strictly increasing */
    const float *idf;          /* n_cols */
    uint32_t *remap;           /* 2^hash_bits: col + 1, 0 = never seen in training */
} vocab;

struct tw_classic {
    tw_classic_params p;       /* C = final C, C_grid = NULL */
    tw_classic_info info;
    vocab v;
    size_t n_labels;
    const char **labels;       /* heap array; strings in label_blob or in the map */
    char *label_blob;
    const float *bias;         /* n_labels */
    const float *W;            /* n_cols × n_labels, row-major by column */
    float bias_value;
    /* owned storage: heap (trained) or a read-only mapping (loaded) */
    uint32_t *buckets_h;
    float *idf_h, *bias_h, *W_h;
    void *map;
    size_t map_len;
};

tw_classic_params tw_classic_default_params(void)
{
    tw_classic_params p;
    memset(&p, 0, sizeof p);
    p.word_ngram_max = 2;
    p.word_min_len = 1;
    p.char_ngram_min = 2;
    p.char_ngram_max = 5;
    p.hash_bits = 20;
    p.sublinear_tf = 1;
    p.use_idf = 1;
    p.nb = -1;
    p.loss = TW_CLASSIC_SVM;
    p.C = 0.0;
    p.C_grid = NULL;
    p.n_C = 0;
    p.folds = 5;
    p.holdout = 0.1;
    p.max_iter = 1000;
    p.tol = 0.0;
    p.seed = 0;
    p.threads = 0;
    return p;
}

static tw_feat_config feat_config(const tw_classic_params *p)
{
    tw_feat_config c = {p->word_ngram_max, p->word_min_len, p->char_ngram_min, p->char_ngram_max,
                        p->hash_bits};
    return c;
}

static tw_status params_check(const tw_classic_params *p, tw_error *err)
{
    tw_feat_config fc = feat_config(p);
    if (tw_feat_config_check(&fc, err)) return tw_error_prefix(err, "classic params: ");
    if (p->loss < TW_CLASSIC_SVM || p->loss > TW_CLASSIC_LOGREG)
        return tw_error_set(err, TW_ERR_INVALID, "classic params: loss = %d: must be 0 (svm), 1 (svm-l1) or 2 (logreg)", p->loss);
    if (p->nb < -1 || p->nb > 1)
        return tw_error_set(err, TW_ERR_INVALID, "classic params: nb = %d: must be -1 (auto), 0 (off) or 1 (on)", p->nb);
    if (!(p->C == p->C) || isinf(p->C))
        return tw_error_set(err, TW_ERR_INVALID, "classic params: C is not finite");
    if (p->C <= 0) {
        if (p->n_C > TW_CLASSIC_MAX_GRID)
            return tw_error_set(err, TW_ERR_INVALID, "classic params: n_C = %zu: at most %d", p->n_C, TW_CLASSIC_MAX_GRID);
        if (p->n_C > 0 && !p->C_grid)
            return tw_error_set(err, TW_ERR_INVALID, "classic params: n_C = %zu but C_grid is NULL", p->n_C);
        for (size_t i = 0; p->C_grid && i < p->n_C; i++)
            if (!(p->C_grid[i] > 0) || isinf(p->C_grid[i]))
                return tw_error_set(err, TW_ERR_INVALID, "classic params: C_grid[%zu] = %g: must be finite and > 0", i, p->C_grid[i]);
        if (!(p->holdout > 0 && p->holdout < 1))
            return tw_error_set(err, TW_ERR_INVALID, "classic params: holdout = %g: must be in (0, 1)", p->holdout);
        if (p->folds != 0 && (p->folds < 2 || p->folds > MAX_FOLDS))
            return tw_error_set(err, TW_ERR_INVALID, "classic params: folds = %d: must be 0 (no cross-validation) or in [2, %d]",
                                p->folds, MAX_FOLDS);
    }
    if (p->max_iter < 1)
        return tw_error_set(err, TW_ERR_INVALID, "classic params: max_iter = %d: must be >= 1", p->max_iter);
    if (!(p->tol >= 0) || isinf(p->tol))
        return tw_error_set(err, TW_ERR_INVALID, "classic params: tol = %g: must be finite and >= 0 (0 = default)", p->tol);
    if (p->threads < 0)
        return tw_error_set(err, TW_ERR_INVALID, "classic params: threads = %d: must be >= 0", p->threads);
    return TW_OK;
}

/* tol 0 → the solver's default: 1e-3 for the SVM duals (sklearn uses 1e-4 with the same
 * accuracy here, liblinear 0.1), 1e-2 for the logistic dual (no shrinking: slow to 1e-3). */
static double effective_tol(const tw_classic_params *p)
{
    if (p->tol > 0) return p->tol;
    return p->loss == TW_CLASSIC_LOGREG ? 1e-2 : 1e-3;
}

/* Selection fits only need the ranking of the candidates: the SVMs stop at liblinear's
 * 0.1 there (Banking77/SST-2 5-fold accuracies within 5 examples of tol 1e-3, same
 * argmax, about half the passes). Logreg's criterion differs; it keeps its tol. */
static double selection_tol(const tw_classic_params *p)
{
    double t = effective_tol(p);
    return p->loss == TW_CLASSIC_LOGREG || t > SEL_TOL_SVM ? t : SEL_TOL_SVM;
}

static int resolve_threads(int t)
{
    if (t > 0) return t;
    int m = omp_get_max_threads();
    return m > 0 ? m : 1;
}

void tw_classic_free(tw_classic *m)
{
    if (!m) return;
    free(m->labels);
    free(m->label_blob);
    free(m->v.remap);
    free(m->buckets_h);
    free(m->idf_h);
    free(m->bias_h);
    free(m->W_h);
    if (m->map) munmap(m->map, m->map_len);
    free(m);
}

size_t tw_classic_n_labels(const tw_classic *m) { return m ? m->n_labels : 0; }

const char *tw_classic_label(const tw_classic *m, size_t i)
{
    return (m && i < m->n_labels) ? m->labels[i] : NULL;
}

int tw_classic_label_index(const tw_classic *m, const char *label)
{
    if (!m || !label) return -1;
    size_t lo = 0, hi = m->n_labels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->labels[mid], label);
        if (c == 0) return (int)mid;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

tw_classic_params tw_classic_get_params(const tw_classic *m) { return m->p; }
const tw_classic_info *tw_classic_get_info(const tw_classic *m) { return &m->info; }

static const char *loss_name(int loss)
{
    switch (loss) {
    case TW_CLASSIC_SVM: return "svm";
    case TW_CLASSIC_SVM_L1: return "svm-l1";
    case TW_CLASSIC_LOGREG: return "logreg";
    }
    return "?";
}

static json_t *num_or_null(double x) { return isnan(x) ? json_null() : json_real(x); }

json_t *tw_classic_info_json(const tw_classic *m)
{
    const tw_classic_info *in = &m->info;
    const tw_classic_params *p = &m->p;
    static const char *sel[] = {"fixed", "dev", "holdout", "cv", "cv+dev"};
    json_t *o = json_object();
    json_t *grid = json_array();
    if (!o || !grid) { json_decref(o); json_decref(grid); return NULL; }
    for (size_t i = 0; i < in->n_cand; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "C", json_real(in->cand_C[i]));
        json_object_set_new(e, "nb", json_boolean(in->cand_nb[i]));
        json_object_set_new(e, "accuracy", num_or_null(in->cand_accuracy[i]));
        json_object_set_new(e, "cv_accuracy", num_or_null(in->cand_cv_accuracy[i]));
        json_object_set_new(e, "dev_accuracy", num_or_null(in->cand_dev_accuracy[i]));
        json_object_set_new(e, "seconds", json_real(in->cand_seconds[i]));
        json_array_append_new(grid, e);
    }
    json_t *prm = json_object();
    json_object_set_new(prm, "word_ngram_max", json_integer(p->word_ngram_max));
    json_object_set_new(prm, "word_min_len", json_integer(p->word_min_len));
    json_object_set_new(prm, "char_ngram_min", json_integer(p->char_ngram_min));
    json_object_set_new(prm, "char_ngram_max", json_integer(p->char_ngram_max));
    json_object_set_new(prm, "hash_bits", json_integer(p->hash_bits));
    json_object_set_new(prm, "sublinear_tf", json_boolean(p->sublinear_tf));
    json_object_set_new(prm, "use_idf", json_boolean(p->use_idf));
    json_object_set_new(prm, "nb", json_boolean(p->nb == 1));
    json_object_set_new(prm, "loss", json_string(loss_name(p->loss)));
    json_object_set_new(prm, "max_iter", json_integer(p->max_iter));
    json_object_set_new(prm, "tol", json_real(p->tol));
    json_object_set_new(prm, "folds", json_integer(p->folds));
    json_object_set_new(prm, "holdout", json_real(p->holdout));
    json_object_set_new(prm, "seed", json_integer((json_int_t)p->seed));
    json_object_set_new(o, "params", prm);
    json_object_set_new(o, "selection", json_string(in->selection >= 0 && in->selection <= 4 ? sel[in->selection] : "?"));
    json_object_set_new(o, "C", json_real(in->C));
    json_object_set_new(o, "nb", json_boolean(in->nb));
    json_object_set_new(o, "folds", json_integer(in->folds));
    json_object_set_new(o, "grid", grid);
    json_object_set_new(o, "selection_accuracy", num_or_null(in->sel_accuracy));
    json_object_set_new(o, "dev_accuracy", num_or_null(in->dev_accuracy));
    json_object_set_new(o, "n_train", json_integer((json_int_t)in->n_train));
    json_object_set_new(o, "n_selection", json_integer((json_int_t)in->n_sel));
    json_object_set_new(o, "n_labels", json_integer((json_int_t)in->n_labels));
    json_object_set_new(o, "n_features", json_integer((json_int_t)in->n_features));
    json_object_set_new(o, "nnz", json_integer((json_int_t)in->nnz));
    json_object_set_new(o, "iterations_max", json_integer(in->iterations_max));
    json_object_set_new(o, "iterations_total", json_integer(in->iterations_total));
    json_object_set_new(o, "threads", json_integer(in->threads));
    json_object_set_new(o, "t_featurize_s", json_real(in->t_featurize));
    json_object_set_new(o, "t_train_s", json_real(in->t_train));
    json_object_set_new(o, "t_search_s", json_real(in->t_search));
    json_object_set_new(o, "t_total_s", json_real(in->t_total));
    return o;
}

/* ---- featurization into matrices ----------------------------------------------- */
typedef struct raw_mat {       /* raw hashed counts, one row per text */
    size_t n;
    size_t *ptr;               /* n + 1 */
    uint32_t *bucket, *count;
    size_t cap;
} raw_mat;

typedef struct csr {           /* weighted rows over vocabulary columns */
    size_t n;
    size_t *ptr;               /* n + 1 */
    uint32_t *col;
    float *val;
} csr;

static void raw_free(raw_mat *r)
{
    free(r->ptr); free(r->bucket); free(r->count);
    memset(r, 0, sizeof *r);
}

static void csr_free(csr *x)
{
    free(x->ptr); free(x->col); free(x->val);
    memset(x, 0, sizeof *x);
}

/* Extract texts[lo, hi) into r (appending). */
static tw_status raw_append(raw_mat *r, const tw_feat_config *fc, const char *const *texts,
                            size_t lo, size_t hi, tw_feat_scratch *s, tw_error *err)
{
    for (size_t i = lo; i < hi; i++) {
        const char *t = texts[i];
        if (tw_feat_extract(fc, t, strlen(t), s, err)) return err ? err->status : TW_ERR_NOMEM;
        size_t nnz = r->ptr[r->n];
        if (nnz + s->n > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < nnz + s->n) cap *= 2;
            uint32_t *b = realloc(r->bucket, cap * sizeof *b);
            if (b) r->bucket = b;
            uint32_t *c = b ? realloc(r->count, cap * sizeof *c) : NULL;
            if (c) r->count = c;
            if (!b || !c) return tw_error_set(err, TW_ERR_NOMEM, "out of memory (%zu features)", cap);
            r->cap = cap;
        }
        memcpy(r->bucket + nnz, s->out_bucket, s->n * sizeof *r->bucket);
        memcpy(r->count + nnz, s->out_count, s->n * sizeof *r->count);
        r->ptr[++r->n] = nnz + s->n;
    }
    return TW_OK;
}

/* Featurize n texts into raw rows, threads chunks in parallel then concatenated
 * (row order and content do not depend on the thread count). */
static tw_status raw_build(raw_mat *out, const tw_feat_config *fc, const char *const *texts, size_t n,
                           int threads, tw_error *err)
{
    memset(out, 0, sizeof *out);
    int nt = threads;
    if ((size_t)nt > n / 512 + 1) nt = (int)(n / 512 + 1);
    raw_mat *parts = calloc((size_t)nt, sizeof *parts);
    tw_status *st = calloc((size_t)nt, sizeof *st);
    tw_error *errs = calloc((size_t)nt, sizeof *errs);
    if (!parts || !st || !errs) {
        free(parts); free(st); free(errs);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    #pragma omp parallel for num_threads(nt) schedule(static, 1)
    for (int t = 0; t < nt; t++) {
        size_t lo = n * (size_t)t / (size_t)nt, hi = n * (size_t)(t + 1) / (size_t)nt;
        tw_feat_scratch s = {0};
        parts[t].ptr = calloc(hi - lo + 1, sizeof *parts[t].ptr);
        if (!parts[t].ptr) st[t] = tw_error_set(&errs[t], TW_ERR_NOMEM, "out of memory");
        else st[t] = raw_append(&parts[t], fc, texts, lo, hi, &s, &errs[t]);
        tw_feat_scratch_free(&s);
    }
    tw_status rc = TW_OK;
    for (int t = 0; t < nt && !rc; t++)
        if (st[t]) { rc = st[t]; if (err) *err = errs[t]; }
    if (!rc && nt == 1) {
        *out = parts[0];
        memset(&parts[0], 0, sizeof parts[0]);
    } else if (!rc) {
        size_t nnz = 0;
        for (int t = 0; t < nt; t++) nnz += parts[t].ptr[parts[t].n];
        out->ptr = malloc((n + 1) * sizeof *out->ptr);
        out->bucket = malloc((nnz ? nnz : 1) * sizeof *out->bucket);
        out->count = malloc((nnz ? nnz : 1) * sizeof *out->count);
        if (!out->ptr || !out->bucket || !out->count) {
            rc = tw_error_set(err, TW_ERR_NOMEM, "out of memory (%zu features)", nnz);
        } else {
            out->cap = nnz;
            size_t row = 0, at = 0;
            out->ptr[0] = 0;
            for (int t = 0; t < nt; t++) {
                size_t k = parts[t].ptr[parts[t].n];
                memcpy(out->bucket + at, parts[t].bucket, k * sizeof *out->bucket);
                memcpy(out->count + at, parts[t].count, k * sizeof *out->count);
                for (size_t i = 1; i <= parts[t].n; i++) out->ptr[++row] = at + parts[t].ptr[i];
                at += k;
            }
            out->n = n;
        }
    }
    for (int t = 0; t < nt; t++) raw_free(&parts[t]);
    free(parts); free(st); free(errs);
    if (rc) raw_free(out);
    return rc;
}

/* The vocabulary of rows (all when rows == NULL): every bucket that occurs, with
 * smooth idf = ln((1 + n) / (1 + df)) + 1. Owns buckets/idf/remap (freed by caller). */
static tw_status vocab_build(vocab *v, uint32_t **buckets_out, float **idf_out, const raw_mat *r,
                             const size_t *rows, size_t nrows, const tw_classic_params *p, tw_error *err)
{
    memset(v, 0, sizeof *v);
    v->fc = feat_config(p);
    v->sublinear_tf = p->sublinear_tf;
    v->use_idf = p->use_idf;
    size_t nb = (size_t)1 << p->hash_bits;
    uint32_t *df = calloc(nb, sizeof *df);
    if (!df) return tw_error_set(err, TW_ERR_NOMEM, "out of memory (%zu buckets)", nb);
    for (size_t k = 0; k < nrows; k++) {
        size_t i = rows ? rows[k] : k;
        for (size_t j = r->ptr[i]; j < r->ptr[i + 1]; j++) df[r->bucket[j]]++;
    }
    size_t nc = 0;
    for (size_t b = 0; b < nb; b++) nc += df[b] != 0;
    uint32_t *buckets = malloc((nc ? nc : 1) * sizeof *buckets);
    float *idf = malloc((nc ? nc : 1) * sizeof *idf);
    if (!buckets || !idf) {
        free(df); free(buckets); free(idf);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory (%zu features)", nc);
    }
    /* reuse df as remap: col + 1 */
    size_t c = 0;
    for (size_t b = 0; b < nb; b++) {
        if (!df[b]) continue;
        buckets[c] = (uint32_t)b;
        idf[c] = p->use_idf ? (float)(log((1.0 + (double)nrows) / (1.0 + (double)df[b])) + 1.0) : 1.0f;
        df[b] = (uint32_t)(++c);
    }
    v->n_cols = nc;
    v->buckets = buckets;
    v->idf = idf;
    v->remap = df;
    *buckets_out = buckets;
    *idf_out = idf;
    return TW_OK;
}

/* Weight one raw row: drop buckets outside the vocabulary, tf (sublinear) × idf,
 * L2-normalise each block. cols/vals need k slots; returns the nonzero count. */
static size_t row_weights(const vocab *v, const uint32_t *bucket, const uint32_t *count, size_t k,
                          uint32_t *cols, float *vals)
{
    size_t n = 0;
    double ss[2] = {0, 0};
    for (size_t j = 0; j < k; j++) {
        uint32_t c1 = v->remap[bucket[j]];
        if (!c1) continue;
        double tf = count[j];
        if (v->sublinear_tf) tf = 1.0 + log(tf);
        double x = tf * v->idf[c1 - 1];
        cols[n] = c1 - 1;
        vals[n] = (float)x;
        ss[tw_feat_block(&v->fc, bucket[j])] += x * x;
        n++;
    }
    float inv[2];
    for (int b = 0; b < 2; b++) inv[b] = ss[b] > 0 ? (float)(1.0 / sqrt(ss[b])) : 0.0f;
    for (size_t j = 0; j < n; j++)
        vals[j] *= inv[tw_feat_block(&v->fc, v->buckets[cols[j]])];
    return n;
}

static tw_status csr_build(csr *x, const raw_mat *r, const size_t *rows, size_t nrows, const vocab *v,
                           tw_error *err)
{
    memset(x, 0, sizeof *x);
    size_t nnz = 0;
    for (size_t k = 0; k < nrows; k++) {
        size_t i = rows ? rows[k] : k;
        nnz += r->ptr[i + 1] - r->ptr[i];
    }
    x->ptr = malloc((nrows + 1) * sizeof *x->ptr);
    x->col = malloc((nnz ? nnz : 1) * sizeof *x->col);
    x->val = malloc((nnz ? nnz : 1) * sizeof *x->val);
    if (!x->ptr || !x->col || !x->val) {
        csr_free(x);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory (%zu nonzeros)", nnz);
    }
    size_t at = 0;
    x->ptr[0] = 0;
    for (size_t k = 0; k < nrows; k++) {
        size_t i = rows ? rows[k] : k;
        at += row_weights(v, r->bucket + r->ptr[i], r->count + r->ptr[i], r->ptr[i + 1] - r->ptr[i],
                          x->col + at, x->val + at);
        x->ptr[k + 1] = at;
    }
    x->n = nrows;
    return TW_OK;
}

/* ---- solvers ------------------------------------------------------------------- */
/* One binary problem: y_i = +1 when lab[i] == cls else -1. w has n_cols + 1 entries
 * (the last is the bias weight), alpha has n entries (in: warm start, out: solution).
 * xx[i] = ||x~_i||^2 + bias^2 for the rows x~_i = s∘x_i the problem is posed on.
 * With a feature scaling s (NB), the solver keeps u = s∘w instead of w: then
 * w·x~_i = u·x_i (the dot product is unchanged) and an update w += d x~_i becomes
 * u += d s²∘x_i; u is also what prediction needs (scores of unscaled rows). Returns
 * the number of passes. */
typedef struct problem {
    const csr *X;
    const int *lab;
    int cls;
    size_t n_cols;
    const double *xx;
    const float *s2;     /* n_cols squared scales, or NULL (no scaling) */
} problem;

/* Index in [0, n) for the solver's shuffles, n < 2^32: multiply-shift (Lemire) on the
 * top 32 bits. Bias <= n / 2^32, irrelevant for a visiting order, and it avoids the two
 * 64-bit divisions of tw_rng_below on the hot path (~35 M draws for Banking77). */
static inline size_t rng_index(tw_rng *r, size_t n)
{
    return (size_t)(((tw_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Four partial sums: one running sum is a chain of dependent additions (4 cycles
 * each) and made the solver latency-bound; with four the gathers overlap (the
 * Banking77 fit ~1.3x faster). */
static inline double dot_row(const csr *X, size_t i, const double *w, size_t bias_col)
{
    const uint32_t *col = X->col;
    const float *val = X->val;
    size_t j = X->ptr[i];
    const size_t end = X->ptr[i + 1];
    double s0 = w[bias_col] * BIAS_VALUE, s1 = 0, s2 = 0, s3 = 0;
    for (; j + 4 <= end; j += 4) {
        s0 += w[col[j]] * val[j];
        s1 += w[col[j + 1]] * val[j + 1];
        s2 += w[col[j + 2]] * val[j + 2];
        s3 += w[col[j + 3]] * val[j + 3];
    }
    for (; j < end; j++) s0 += w[col[j]] * val[j];
    return (s0 + s1) + (s2 + s3);
}

static inline void axpy_row(const problem *pb, size_t i, double d, double *w)
{
    const csr *X = pb->X;
    w[pb->n_cols] += d * BIAS_VALUE;
    if (pb->s2) {
        for (size_t j = X->ptr[i]; j < X->ptr[i + 1]; j++) w[X->col[j]] += d * X->val[j] * pb->s2[X->col[j]];
    } else {
        for (size_t j = X->ptr[i]; j < X->ptr[i + 1]; j++) w[X->col[j]] += d * X->val[j];
    }
}

/* liblinear solve_l2r_l1l2_svc: dual CD with shrinking for the L2-loss (squared
 * hinge, D_ii = 1/(2C), no upper bound) or L1-loss (hinge, alpha <= C) SVM. */
static int solve_svm(const problem *pb, double C, int l1, double eps, int max_iter, tw_rng *rng,
                     double *w, double *alpha, uint32_t *index)
{
    const csr *X = pb->X;
    const size_t l = X->n, bc = pb->n_cols;
    const double diag = l1 ? 0.0 : 0.5 / C;
    const double upper = l1 ? C : INFINITY;
    memset(w, 0, (bc + 1) * sizeof *w);
    for (size_t i = 0; i < l; i++) {
        if (l1 && alpha[i] > C) alpha[i] = C;
        if (alpha[i] != 0) axpy_row(pb, i, pb->lab[i] == pb->cls ? alpha[i] : -alpha[i], w);
        index[i] = (uint32_t)i;
    }
    size_t active = l;
    double pgmax_old = INFINITY, pgmin_old = -INFINITY;
    int iter = 0;
    while (iter < max_iter) {
        double pgmax_new = -INFINITY, pgmin_new = INFINITY;
        for (size_t i = 0; i < active; i++) {
            size_t j = i + rng_index(rng, active - i);
            uint32_t t = index[i]; index[i] = index[j]; index[j] = t;
        }
        for (size_t s = 0; s < active; s++) {
            const size_t i = index[s];
            const double yi = pb->lab[i] == pb->cls ? 1.0 : -1.0;
            double G = yi * dot_row(X, i, w, bc) - 1.0 + alpha[i] * diag;
            double PG = 0;
            if (alpha[i] == 0) {
                if (G > pgmax_old) {
                    active--;
                    uint32_t t = index[s]; index[s] = index[active]; index[active] = t;
                    s--;
                    continue;
                }
                if (G < 0) PG = G;
            } else if (alpha[i] == upper) {
                if (G < pgmin_old) {
                    active--;
                    uint32_t t = index[s]; index[s] = index[active]; index[active] = t;
                    s--;
                    continue;
                }
                if (G > 0) PG = G;
            } else {
                PG = G;
            }
            if (PG > pgmax_new) pgmax_new = PG;
            if (PG < pgmin_new) pgmin_new = PG;
            if (fabs(PG) > 1e-12) {
                double old = alpha[i];
                double qd = pb->xx[i] + diag;
                double a = old - G / qd;
                alpha[i] = a < 0 ? 0 : (a > upper ? upper : a);
                double d = (alpha[i] - old) * yi;
                if (d != 0) axpy_row(pb, i, d, w);
            }
        }
        iter++;
        if (pgmax_new - pgmin_new <= eps) {
            if (active == l) break;
            active = l;
            pgmax_old = INFINITY;
            pgmin_old = -INFINITY;
            continue;
        }
        pgmax_old = pgmax_new;
        pgmin_old = pgmin_new;
        if (pgmax_old <= 0) pgmax_old = INFINITY;
        if (pgmin_old >= 0) pgmin_old = -INFINITY;
    }
    return iter;
}

/* liblinear solve_l2r_lr_dual: dual CD for L2-regularised logistic regression with
 * a Newton inner solver; alpha holds 2 entries per example (alpha_i, C - alpha_i). */
static int solve_lr(const problem *pb, double C, double eps, int max_iter, tw_rng *rng,
                    double *w, double *alpha, uint32_t *index)
{
    const csr *X = pb->X;
    const size_t l = X->n, bc = pb->n_cols;
    const int max_inner = 100;
    double innereps = 1e-2;
    const double innereps_min = eps < 1e-8 ? eps : 1e-8;
    memset(w, 0, (bc + 1) * sizeof *w);
    for (size_t i = 0; i < l; i++) {
        double a0 = 0.001 * C < 1e-8 ? 0.001 * C : 1e-8;
        alpha[2 * i] = a0;
        alpha[2 * i + 1] = C - a0;
        axpy_row(pb, i, pb->lab[i] == pb->cls ? a0 : -a0, w);
        index[i] = (uint32_t)i;
    }
    int iter = 0;
    while (iter < max_iter) {
        for (size_t i = 0; i < l; i++) {
            size_t j = i + rng_index(rng, l - i);
            uint32_t t = index[i]; index[i] = index[j]; index[j] = t;
        }
        size_t newton_iter = 0;
        double gmax = 0;
        for (size_t s = 0; s < l; s++) {
            const size_t i = index[s];
            const double yi = pb->lab[i] == pb->cls ? 1.0 : -1.0;
            const double a = pb->xx[i];
            const double b = yi * dot_row(X, i, w, bc);
            size_t ind1 = 2 * i, ind2 = 2 * i + 1;
            double sign = 1;
            if (0.5 * a * (alpha[ind2] - alpha[ind1]) + b < 0) {
                ind1 = 2 * i + 1; ind2 = 2 * i; sign = -1;
            }
            double alpha_old = alpha[ind1];
            double z = alpha_old;
            if (C - z < 0.5 * C) z = 0.1 * z;
            double gp = a * (z - alpha_old) + sign * b + log(z / (C - z));
            if (fabs(gp) > gmax) gmax = fabs(gp);
            const double eta = 0.1;
            int inner = 0;
            while (inner <= max_inner) {
                if (fabs(gp) < innereps) break;
                double gpp = a + C / (C - z) / z;
                double tmpz = z - gp / gpp;
                if (tmpz <= 0) z *= eta;
                else z = tmpz;
                gp = a * (z - alpha_old) + sign * b + log(z / (C - z));
                newton_iter++;
                inner++;
            }
            if (inner > 0) {
                alpha[ind1] = z;
                alpha[ind2] = C - z;
                axpy_row(pb, i, sign * (z - alpha_old) * yi, w);
            }
        }
        iter++;
        if (gmax < eps) break;
        if (newton_iter <= l / 10) innereps = innereps * 0.1 > innereps_min ? innereps * 0.1 : innereps_min;
    }
    return iter;
}

/* ---- one-vs-rest fit ------------------------------------------------------------- */
typedef struct fit_out {
    float *W;        /* n_cols × n_labels */
    float *bias;     /* n_labels */
    int iter_max;
    long iter_total;
} fit_out;

/* NB log-count ratios of class cls (Wang & Manning 2012, NBSVM, on binarized
 * counts): r_j = ln((a + p_j) / |a + p|_1) - ln((a + q_j) / |a + q|_1), where p_j/q_j
 * count the rows of this class / of the others that contain feature j, a = NB_ALPHA.
 * df: rows containing j (all classes); pc: n_cols scratch. Writes s2 = r² and the
 * scaled squared norms xx (+ bias²) of every row. */
static void nb_scale(const csr *X, const int *lab, int cls, size_t n_cols, const uint32_t *df, uint32_t *pc,
                     float *s2, double *xx)
{
    memset(pc, 0, n_cols * sizeof *pc);
    for (size_t i = 0; i < X->n; i++)
        if (lab[i] == cls)
            for (size_t j = X->ptr[i]; j < X->ptr[i + 1]; j++) pc[X->col[j]]++;
    double sp = NB_ALPHA * (double)n_cols, sq = sp;
    for (size_t j = 0; j < n_cols; j++) {
        sp += pc[j];
        sq += df[j] - pc[j];
    }
    for (size_t j = 0; j < n_cols; j++) {
        double r = log((NB_ALPHA + pc[j]) / sp) - log((NB_ALPHA + (double)(df[j] - pc[j])) / sq);
        s2[j] = (float)(r * r);
    }
    for (size_t i = 0; i < X->n; i++) {
        double s = (double)BIAS_VALUE * BIAS_VALUE;
        for (size_t j = X->ptr[i]; j < X->ptr[i + 1]; j++) s += (double)X->val[j] * X->val[j] * s2[X->col[j]];
        xx[i] = s;
    }
}

/* Fit all classes with one C (nb: NB scaling per class; tol: stopping tolerance).
 * alpha_warm: n_prob × X->n (× 2 for logreg) doubles, used as warm start and updated
 * (SVM only), or NULL. */
static tw_status fit_ovr(const csr *X, const int *lab, size_t n_labels, size_t n_cols, double C, int nb,
                         double tol, const tw_classic_params *p, int threads, double *alpha_warm, fit_out *o,
                         tw_error *err)
{
    const size_t l = X->n;
    const size_t n_prob = n_labels == 2 ? 1 : n_labels;
    const size_t astride = p->loss == TW_CLASSIC_LOGREG ? 2 * l : l;
    double *xx = malloc((l ? l : 1) * sizeof *xx);
    uint32_t *df = nb ? calloc(n_cols ? n_cols : 1, sizeof *df) : NULL;
    if (!xx || (nb && !df)) {
        free(xx);
        free(df);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < l; i++) {
        double s = (double)BIAS_VALUE * BIAS_VALUE;
        for (size_t j = X->ptr[i]; j < X->ptr[i + 1]; j++) s += (double)X->val[j] * X->val[j];
        xx[i] = s;
        if (nb)
            for (size_t j = X->ptr[i]; j < X->ptr[i + 1]; j++) df[X->col[j]]++;
    }
    int failed = 0, iter_max = 0;
    long iter_total = 0;
    #pragma omp parallel num_threads(threads)
    {
        double *w = malloc((n_cols + 1) * sizeof *w);
        uint32_t *index = malloc((l ? l : 1) * sizeof *index);
        double *alpha_own = alpha_warm ? NULL : malloc((astride ? astride : 1) * sizeof *alpha_own);
        /* NB work arrays, per thread: squared scales, class counts, scaled norms */
        float *s2 = nb ? malloc((n_cols ? n_cols : 1) * sizeof *s2) : NULL;
        uint32_t *pc = nb ? malloc((n_cols ? n_cols : 1) * sizeof *pc) : NULL;
        double *xxc = nb ? malloc((l ? l : 1) * sizeof *xxc) : NULL;
        int ok = w && index && (alpha_warm || alpha_own) && (!nb || (s2 && pc && xxc));
        if (!ok) {
            #pragma omp atomic write
            failed = 1;
        }
        #pragma omp for schedule(dynamic, 1) reduction(max : iter_max) reduction(+ : iter_total)
        for (size_t c = 0; c < n_prob; c++) {
            int bad;
            #pragma omp atomic read
            bad = failed;
            if (bad || !ok) continue;
            int cls = n_labels == 2 ? 1 : (int)c;
            problem pb = {X, lab, cls, n_cols, xx, NULL};
            if (nb) {
                nb_scale(X, lab, cls, n_cols, df, pc, s2, xxc);
                pb.xx = xxc;
                pb.s2 = s2;
            }
            tw_rng rng;
            tw_rng_seed(&rng, p->seed ^ (0x9E3779B97F4A7C15ULL * (c + 1)));
            double *alpha = alpha_warm ? alpha_warm + c * astride : alpha_own;
            if (!alpha_warm) memset(alpha, 0, astride * sizeof *alpha);
            int it;
            if (p->loss == TW_CLASSIC_LOGREG)
                it = solve_lr(&pb, C, tol, p->max_iter, &rng, w, alpha, index);
            else
                it = solve_svm(&pb, C, p->loss == TW_CLASSIC_SVM_L1, tol, p->max_iter, &rng, w, alpha, index);
            if (it > iter_max) iter_max = it;
            iter_total += it;
            if (n_labels == 2) {
                for (size_t j = 0; j < n_cols; j++) {
                    o->W[j * 2 + 1] = (float)w[j];
                    o->W[j * 2] = (float)-w[j];
                }
                o->bias[1] = (float)w[n_cols];
                o->bias[0] = (float)-w[n_cols];
            } else {
                for (size_t j = 0; j < n_cols; j++) o->W[j * n_labels + c] = (float)w[j];
                o->bias[c] = (float)w[n_cols];
            }
        }
        free(w);
        free(index);
        free(alpha_own);
        free(s2);
        free(pc);
        free(xxc);
    }
    free(xx);
    free(df);
    if (failed) return tw_error_set(err, TW_ERR_NOMEM, "out of memory (solver work arrays, %zu features)", n_cols);
    o->iter_max = iter_max;
    o->iter_total = iter_total;
    return TW_OK;
}

/* scores[c] = bias_c * bias_value + sum_j val_j * W[col_j, c] */
static void score_row(const float *W, const float *bias, float bias_value, size_t L, const uint32_t *cols,
                      const float *vals, size_t nnz, float *scores)
{
    for (size_t c = 0; c < L; c++) scores[c] = bias[c] * bias_value;
    for (size_t j = 0; j < nnz; j++) {
        const float *wr = W + (size_t)cols[j] * L;
        const float v = vals[j];
        for (size_t c = 0; c < L; c++) scores[c] += v * wr[c];
    }
}

static int argmax(const float *s, size_t L)
{
    size_t best = 0;
    for (size_t c = 1; c < L; c++)
        if (s[c] > s[best]) best = c;
    return (int)best;
}

/* Rows of X whose argmax is gold (gold -1 = a label never seen: always wrong). */
static size_t count_correct(const csr *X, const int *gold, const float *W, const float *bias, size_t L, tw_error *err,
                            tw_status *st)
{
    float *s = malloc(L * sizeof *s);
    if (!s) { *st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); return 0; }
    size_t ok = 0;
    for (size_t i = 0; i < X->n; i++) {
        score_row(W, bias, BIAS_VALUE, L, X->col + X->ptr[i], X->val + X->ptr[i], X->ptr[i + 1] - X->ptr[i], s);
        ok += argmax(s, L) == gold[i];
    }
    free(s);
    return ok;
}

/* ---- training --------------------------------------------------------------------- */
static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int label_lookup(const char **sorted, size_t n, const char *s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(sorted[mid], s);
        if (c == 0) return (int)mid;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Stratified fold of every example, from a seeded shuffle of each label's examples.
 * k >= 2: the shuffled examples are dealt round-robin to folds 0..k-1, each label
 * starting where the previous one stopped, so fold sizes differ by at most one.
 * k == 0: a holdout — the first round(frac * count) (at most count - 1) of each label
 * get fold 0, the others -1 (never held out).
 * by_label: n scratch slots; start: L + 1 scratch slots. */
static void assign_folds(const int *lab, size_t n, size_t L, int k, double frac, uint64_t seed, int *fold,
                         size_t *by_label, size_t *start)
{
    memset(start, 0, (L + 1) * sizeof *start);
    for (size_t i = 0; i < n; i++) start[lab[i] + 1]++;
    for (size_t c = 0; c < L; c++) start[c + 1] += start[c];
    for (size_t i = 0; i < n; i++) by_label[start[lab[i]]++] = i;      /* stable counting sort */
    for (size_t c = L; c > 0; c--) start[c] = start[c - 1];              /* undo the shift */
    start[0] = 0;
    tw_rng rng;
    tw_rng_seed(&rng, seed ^ 0x5851F42D4C957F2DULL);
    size_t deal = 0;
    for (size_t c = 0; c < L; c++) {
        size_t cnt = start[c + 1] - start[c];
        size_t *a = by_label + start[c];
        tw_rng_shuffle(&rng, a, cnt, sizeof *a);
        if (k >= 2) {
            for (size_t j = 0; j < cnt; j++, deal++) fold[a[j]] = (int)(deal % (size_t)k);
        } else {
            size_t h = (size_t)floor(frac * (double)cnt + 0.5);
            if (h >= cnt) h = cnt ? cnt - 1 : 0;
            for (size_t j = 0; j < cnt; j++) fold[a[j]] = j < h ? 0 : -1;
        }
    }
}

typedef struct train_ctx {
    const tw_classic_params *p;
    int threads;
    size_t L;
    raw_mat raw;          /* all train texts */
    int *lab;             /* train label indices */
} train_ctx;

/* The candidates of a selection: variants (NB off/on) × C ascending, in that order,
 * which is also the tie-break order (first wins: no NB, then the smaller C). */
typedef struct cands {
    size_t nv, ng;
    int nb[2];
    double grid[TW_CLASSIC_MAX_GRID];
} cands;

/* Fit every candidate on the rows tr_rows of train (NULL: all) and count, per
 * candidate, the correct predictions on rows sel_rows of sel_raw (gold labels
 * sel_gold, one per selected row): ok[v * ng + g] += count, sec[...] += solver
 * seconds. Vocabulary, idf and NB ratios come from the training rows only. */
static tw_status fit_and_count(const train_ctx *cx, const size_t *tr_rows, size_t n_tr, const raw_mat *sel_raw,
                               const size_t *sel_rows, size_t n_sel, const int *sel_gold, const cands *cs,
                               int threads, size_t *ok, double *sec, tw_error *err)
{
    const tw_classic_params *p = cx->p;
    vocab v;
    uint32_t *vbk = NULL;
    float *vidf = NULL;
    csr X = {0}, S = {0};
    int *lab = NULL;
    double *alpha = NULL;
    fit_out fo = {0};
    const size_t L = cx->L, n_prob = L == 2 ? 1 : L;
    const size_t astride = p->loss == TW_CLASSIC_LOGREG ? 2 * n_tr : n_tr;
    tw_status st = vocab_build(&v, &vbk, &vidf, &cx->raw, tr_rows, n_tr, p, err);
    if (!st) st = csr_build(&X, &cx->raw, tr_rows, n_tr, &v, err);
    if (!st) st = csr_build(&S, sel_raw, sel_rows, n_sel, &v, err);
    if (!st) {
        lab = malloc((n_tr ? n_tr : 1) * sizeof *lab);
        fo.W = malloc((v.n_cols ? v.n_cols : 1) * L * sizeof *fo.W);
        fo.bias = malloc(L * sizeof *fo.bias);
        /* warm starts keep every class's dual solution: skip them past 512 MiB */
        int warm = p->loss != TW_CLASSIC_LOGREG && (double)n_prob * (double)astride * sizeof(double) <= 512.0 * 1048576;
        if (warm) alpha = malloc((n_prob * astride + 1) * sizeof *alpha);
        if (!lab || !fo.W || !fo.bias || (warm && !alpha))
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory (model selection)");
    }
    if (!st)
        for (size_t k = 0; k < n_tr; k++) lab[k] = cx->lab[tr_rows ? tr_rows[k] : k];
    for (size_t var = 0; var < cs->nv && !st; var++) {
        if (alpha) memset(alpha, 0, (n_prob * astride + 1) * sizeof *alpha);
        for (size_t g = 0; g < cs->ng && !st; g++) {
            double tg = tw_now();
            st = fit_ovr(&X, lab, L, v.n_cols, cs->grid[g], cs->nb[var], selection_tol(p), p, threads, alpha, &fo, err);
            if (st) break;
            sec[var * cs->ng + g] += tw_now() - tg;
            ok[var * cs->ng + g] += count_correct(&S, sel_gold, fo.W, fo.bias, L, err, &st);
        }
    }
    free(fo.W);
    free(fo.bias);
    free(alpha);
    free(lab);
    csr_free(&X);
    csr_free(&S);
    free(v.remap);
    free(vbk);
    free(vidf);
    return st;
}

/* The held-out counts of every candidate. Tasks: the k folds of a cross-validation
 * over train (p->folds = k >= 2), or one holdout (folds = 0 and no dev split) — their
 * counts go to cv_ok, *n_held says how many examples they held out — and, when there
 * is a dev split, one fit on all of train scored on dev (dev_ok). Tasks run one after
 * another with all threads on the classes or — when there are fewer binary problems
 * than threads (two labels: one) — side by side with one thread each. The counts do
 * not depend on the thread count. */
static tw_status selection_counts(const train_ctx *cx, const cands *cs, const raw_mat *dev_raw, const int *dev_gold,
                                  size_t *cv_ok, size_t *dev_ok, double *sec, size_t *n_held, tw_error *err)
{
    const tw_classic_params *p = cx->p;
    const size_t n = cx->raw.n, n_dev = dev_raw->n, L = cx->L, nc = cs->nv * cs->ng;
    const int nfold = p->folds >= 2 ? p->folds : n_dev ? 0 : 1;
    const int ntask = nfold + (n_dev ? 1 : 0);
    int *fold = malloc((n ? n : 1) * sizeof *fold);
    size_t *by_label = malloc((n ? n : 1) * sizeof *by_label), *start = malloc((L + 1) * sizeof *start);
    size_t *rows = malloc(((size_t)nfold * n + 1) * sizeof *rows);    /* per fold: train | held */
    int *gold = malloc(((size_t)nfold * n + 1) * sizeof *gold);
    size_t *tok = calloc((size_t)ntask * nc, sizeof *tok);
    double *tsec = calloc((size_t)ntask * nc, sizeof *tsec);
    tw_status *tst = calloc((size_t)ntask, sizeof *tst);
    tw_error *terr = calloc((size_t)ntask, sizeof *terr);
    tw_status st = TW_OK;
    *n_held = 0;
    if (!fold || !by_label || !start || !rows || !gold || !tok || !tsec || !tst || !terr) {
        st = tw_error_set(err, TW_ERR_NOMEM, "out of memory (model selection over %zu examples)", n);
        goto done;
    }
    if (nfold) {
        assign_folds(cx->lab, n, L, p->folds, p->holdout, p->seed, fold, by_label, start);
        for (size_t i = 0; i < n; i++) *n_held += fold[i] >= 0;
    }
    const size_t n_prob = L == 2 ? 1 : L;
    const int outer = n_prob < (size_t)cx->threads ? (cx->threads < ntask ? cx->threads : ntask) : 1;
    const int inner = outer > 1 ? 1 : cx->threads;
    #pragma omp parallel for num_threads(outer) schedule(dynamic, 1)
    for (int f = 0; f < ntask; f++) {
        size_t *ok = tok + (size_t)f * nc;
        double *s = tsec + (size_t)f * nc;
        if (f == nfold) {          /* the dev split */
            tst[f] = fit_and_count(cx, NULL, n, dev_raw, NULL, n_dev, dev_gold, cs, inner, ok, s, &terr[f]);
            continue;
        }
        size_t *tr = rows + (size_t)f * n, ntr = 0, nho = 0;
        int *gd = gold + (size_t)f * n;
        for (size_t i = 0; i < n; i++)
            if (fold[i] != f) tr[ntr++] = i;
        size_t *ho = tr + ntr;
        for (size_t i = 0; i < n; i++)
            if (fold[i] == f) { gd[nho] = cx->lab[i]; ho[nho++] = i; }
        if (nho) tst[f] = fit_and_count(cx, tr, ntr, &cx->raw, ho, nho, gd, cs, inner, ok, s, &terr[f]);
    }
    for (int f = 0; f < ntask && !st; f++)
        if (tst[f]) { st = tst[f]; if (err) *err = terr[f]; }
    for (int f = 0; f < ntask && !st; f++)
        for (size_t c = 0; c < nc; c++) {
            (f < nfold ? cv_ok : dev_ok)[c] += tok[(size_t)f * nc + c];
            sec[c] += tsec[(size_t)f * nc + c];
        }
done:
    free(fold); free(by_label); free(start); free(rows); free(gold);
    free(tok); free(tsec); free(tst); free(terr);
    return st;
}

tw_status tw_classic_train(tw_classic **out, const char *const *texts, const char *const *labels,
                           size_t n, const char *const *dev_texts, const char *const *dev_labels,
                           size_t n_dev, const tw_classic_params *pin, tw_error *err)
{
    double t0 = tw_now();
    *out = NULL;
    tw_classic_params p = pin ? *pin : tw_classic_default_params();
    tw_status st = params_check(&p, err);
    if (st) return st;
    if (!texts || !labels || n == 0)
        return tw_error_set(err, TW_ERR_INVALID, "classic train: no training examples");
    if (n > UINT32_MAX - 1)
        return tw_error_set(err, TW_ERR_INVALID, "classic train: %zu examples: at most %u", n, UINT32_MAX - 1);
    if (n_dev && (!dev_texts || !dev_labels))
        return tw_error_set(err, TW_ERR_INVALID, "classic train: n_dev = %zu but dev arrays are NULL", n_dev);
    for (size_t i = 0; i < n; i++) {
        if (!texts[i]) return tw_error_set(err, TW_ERR_INVALID, "classic train: text of example %zu is NULL", i);
        if (!labels[i] || !labels[i][0])
            return tw_error_set(err, TW_ERR_INVALID, "classic train: label of example %zu is %s", i, labels[i] ? "empty" : "NULL");
    }
    for (size_t i = 0; i < n_dev; i++)
        if (!dev_texts[i] || !dev_labels[i])
            return tw_error_set(err, TW_ERR_INVALID, "classic train: dev example %zu has a NULL %s", i, dev_texts[i] ? "label" : "text");

    tw_classic *m = calloc(1, sizeof *m);
    if (!m) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    train_ctx cx = {0};
    cx.p = &p;
    cx.threads = resolve_threads(p.threads);
    raw_mat dev_raw = {0};
    int *dev_gold = NULL;
    fit_out final = {0};
    csr X = {0};
    uint32_t *vb = NULL;
    float *vi = NULL;

    /* labels: sorted unique copy in one blob */
    const char **tmp = malloc(n * sizeof *tmp);
    cx.lab = malloc(n * sizeof *cx.lab);
    if (!tmp || !cx.lab) { free(tmp); st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto fail; }
    memcpy(tmp, labels, n * sizeof *tmp);
    qsort(tmp, n, sizeof *tmp, cmp_str_ptr);
    size_t L = 0, blob = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(tmp[i], tmp[i - 1]) != 0) { tmp[L++] = tmp[i]; blob += strlen(tmp[i]) + 1; }
    if (L < 2) {
        free(tmp);
        st = tw_error_set(err, TW_ERR_INVALID, "classic train: need at least 2 distinct labels, got 1 (\"%s\")", labels[0]);
        goto fail;
    }
    m->labels = malloc(L * sizeof *m->labels);
    m->label_blob = malloc(blob);
    if (!m->labels || !m->label_blob) { free(tmp); st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto fail; }
    for (size_t c = 0, at = 0; c < L; c++) {
        size_t k = strlen(tmp[c]) + 1;
        memcpy(m->label_blob + at, tmp[c], k);
        m->labels[c] = m->label_blob + at;
        at += k;
    }
    free(tmp);
    m->n_labels = L;
    cx.L = L;
    for (size_t i = 0; i < n; i++) cx.lab[i] = label_lookup(m->labels, L, labels[i]);

    tw_classic_info *info = &m->info;
    info->sel_accuracy = NAN;
    info->dev_accuracy = NAN;
    info->threads = cx.threads;
    info->n_labels = L;
    info->n_train = n;

    double tf0 = tw_now();
    tw_feat_config fc = feat_config(&p);
    st = raw_build(&cx.raw, &fc, texts, n, cx.threads, err);
    if (st) goto fail;
    double t_raw = tw_now() - tf0;

    if (n_dev) {
        st = raw_build(&dev_raw, &fc, dev_texts, n_dev, cx.threads, err);
        if (st) goto fail;
        dev_gold = malloc(n_dev * sizeof *dev_gold);
        if (!dev_gold) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto fail; }
        size_t unseen = 0;
        for (size_t i = 0; i < n_dev; i++) {
            dev_gold[i] = label_lookup(m->labels, L, dev_labels[i]);
            unseen += dev_gold[i] < 0;
        }
        if (unseen)
            tw_log(TW_LOG_WARN, "classic: %zu of %zu dev examples have a label never seen in train (counted as errors)",
                   unseen, n_dev);
    }

    /* Selection: every candidate gets correct counts from the train side (k-fold CV,
     * or a holdout when folds = 0 and there is no dev split) and from the dev split
     * (fitted on all of train); the best pooled accuracy wins, ties to the earlier
     * candidate (no NB, smaller C). The winner is then refitted on all of train. */
    double C = p.C;
    int nb = p.nb == 1;
    info->selection = TW_CLASSIC_SEL_FIXED;
    if (C <= 0) {
        double ts = tw_now();
        cands cs = {0};
        cs.ng = p.n_C ? p.n_C : sizeof DEFAULT_GRID / sizeof DEFAULT_GRID[0];
        memcpy(cs.grid, p.n_C ? p.C_grid : p.loss == TW_CLASSIC_LOGREG ? DEFAULT_GRID_LR : DEFAULT_GRID,
               cs.ng * sizeof *cs.grid);
        qsort(cs.grid, cs.ng, sizeof *cs.grid, cmp_double);   /* ascending: warm starts */
        cs.nb[cs.nv++] = p.nb == 1;
        if (p.nb == -1 && L == 2) cs.nb[cs.nv++] = 1;
        const size_t nc = cs.nv * cs.ng;
        size_t cv_ok[TW_CLASSIC_MAX_CAND] = {0}, dev_ok[TW_CLASSIC_MAX_CAND] = {0}, n_cv = 0;
        double sec[TW_CLASSIC_MAX_CAND] = {0};
        st = selection_counts(&cx, &cs, &dev_raw, dev_gold, cv_ok, dev_ok, sec, &n_cv, err);
        if (st) goto fail;
        info->n_sel = n_cv + n_dev;
        if (info->n_sel == 0) {       /* only possible with a holdout of tiny data */
            tw_log(TW_LOG_WARN, "classic: too few examples to hold out any for selection; using C = 1");
            C = 1.0;
        } else {
            info->selection = p.folds >= 2 ? (n_dev ? TW_CLASSIC_SEL_CV_DEV : TW_CLASSIC_SEL_CV)
                                           : (n_dev ? TW_CLASSIC_SEL_DEV : TW_CLASSIC_SEL_HOLDOUT);
            info->folds = p.folds >= 2 ? p.folds : 0;
            size_t best = 0;
            for (size_t c = 0; c < nc; c++) {
                info->cand_C[c] = cs.grid[c % cs.ng];
                info->cand_nb[c] = cs.nb[c / cs.ng];
                info->cand_accuracy[c] = (double)(cv_ok[c] + dev_ok[c]) / (double)info->n_sel;
                info->cand_cv_accuracy[c] = n_cv ? (double)cv_ok[c] / (double)n_cv : NAN;
                info->cand_dev_accuracy[c] = n_dev ? (double)dev_ok[c] / (double)n_dev : NAN;
                info->cand_seconds[c] = sec[c];
                tw_log(TW_LOG_INFO, "classic: C=%g%s selection accuracy %.4f", info->cand_C[c],
                       info->cand_nb[c] ? " NB" : "", info->cand_accuracy[c]);
                if (cv_ok[c] + dev_ok[c] > cv_ok[best] + dev_ok[best]) best = c;
            }
            info->n_cand = nc;
            C = info->cand_C[best];
            nb = info->cand_nb[best];
            info->sel_accuracy = info->cand_accuracy[best];
        }
        info->t_search = tw_now() - ts;
    }
    info->C = C;
    info->nb = nb;
    p.C = C;
    p.nb = nb;
    p.folds = info->folds;     /* as recorded in the file: 0 unless CV chose the model */
    p.C_grid = NULL;
    p.n_C = 0;

    /* final vocabulary over all train, matrix, fit */
    double tv0 = tw_now();
    st = vocab_build(&m->v, &vb, &vi, &cx.raw, NULL, n, &p, err);
    if (st) goto fail;
    m->buckets_h = vb;
    m->idf_h = vi;
    vb = NULL;
    vi = NULL;
    st = csr_build(&X, &cx.raw, NULL, n, &m->v, err);
    if (st) goto fail;
    info->t_featurize = t_raw + (tw_now() - tv0);
    info->n_features = m->v.n_cols;
    info->nnz = X.ptr[n];
    raw_free(&cx.raw);

    double tt0 = tw_now();
    final.W = malloc((m->v.n_cols ? m->v.n_cols : 1) * L * sizeof *final.W);
    final.bias = malloc(L * sizeof *final.bias);
    if (!final.W || !final.bias) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory (weights)"); goto fail; }
    st = fit_ovr(&X, cx.lab, L, m->v.n_cols, C, nb, effective_tol(&p), &p, cx.threads, NULL, &final, err);
    if (st) goto fail;
    info->t_train = tw_now() - tt0;
    if (n_dev) {
        csr D = {0};
        st = csr_build(&D, &dev_raw, NULL, n_dev, &m->v, err);
        if (st) goto fail;
        size_t ok = count_correct(&D, dev_gold, final.W, final.bias, L, err, &st);
        csr_free(&D);
        if (st) goto fail;
        info->dev_accuracy = (double)ok / (double)n_dev;
    }
    info->iterations_max = final.iter_max;
    info->iterations_total = final.iter_total;
    m->W_h = final.W;
    m->bias_h = final.bias;
    final.W = final.bias = NULL;
    m->W = m->W_h;
    m->bias = m->bias_h;
    m->bias_value = BIAS_VALUE;
    m->p = p;

    csr_free(&X);
    raw_free(&dev_raw);
    free(dev_gold);
    free(cx.lab);
    info->t_total = tw_now() - t0;
    *out = m;
    return TW_OK;

fail:
    csr_free(&X);
    raw_free(&cx.raw);
    raw_free(&dev_raw);
    free(dev_gold);
    free(cx.lab);
    free(final.W); free(final.bias);
    free(vb); free(vi);
    tw_classic_free(m);
    return st;
}

/* ---- prediction ---------------------------------------------------------------------- */
typedef struct row_buf {
    tw_feat_scratch fs;
    uint32_t *cols;
    float *vals;
    size_t cap;
} row_buf;

static void row_buf_free(row_buf *r)
{
    tw_feat_scratch_free(&r->fs);
    free(r->cols);
    free(r->vals);
}

static tw_status predict_one(const tw_classic *m, const char *text, row_buf *rb, float *scores, int *idx,
                             tw_error *err)
{
    tw_status st = tw_feat_extract(&m->v.fc, text, strlen(text), &rb->fs, err);
    if (st) return st;
    if (rb->fs.n > rb->cap) {
        size_t cap = rb->fs.n * 2;
        uint32_t *c = realloc(rb->cols, cap * sizeof *c);
        if (c) rb->cols = c;
        float *v = c ? realloc(rb->vals, cap * sizeof *v) : NULL;
        if (v) rb->vals = v;
        if (!c || !v) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        rb->cap = cap;
    }
    size_t nnz = row_weights(&m->v, rb->fs.out_bucket, rb->fs.out_count, rb->fs.n, rb->cols, rb->vals);
    score_row(m->W, m->bias, m->bias_value, m->n_labels, rb->cols, rb->vals, nnz, scores);
    *idx = argmax(scores, m->n_labels);
    return TW_OK;
}

tw_status tw_classic_predict(const tw_classic *m, const char *text, const char **label, float *scores,
                             tw_error *err)
{
    if (!m || !text || !label) return tw_error_set(err, TW_ERR_INVALID, "classic predict: NULL %s", !m ? "model" : !text ? "text" : "label");
    float stack[64];
    float *s = scores ? scores : (m->n_labels <= 64 ? stack : malloc(m->n_labels * sizeof *s));
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    row_buf rb = {0};
    int idx = 0;
    tw_status st = predict_one(m, text, &rb, s, &idx, err);
    row_buf_free(&rb);
    if (s != scores && s != stack) free(s);
    if (!st) *label = m->labels[idx];
    return st;
}

tw_status tw_classic_predict_batch(const tw_classic *m, const char *const *texts, size_t n,
                                   const char **labels_out, int *label_idx_out, float *scores, tw_error *err)
{
    if (!m || (n && !texts)) return tw_error_set(err, TW_ERR_INVALID, "classic predict: NULL %s", !m ? "model" : "texts");
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) return tw_error_set(err, TW_ERR_INVALID, "classic predict: text %zu is NULL", i);
    int nt = resolve_threads(m->p.threads);
    if ((size_t)nt > n / 64 + 1) nt = (int)(n / 64 + 1);
    const size_t L = m->n_labels;
    int failed = 0;
    #pragma omp parallel num_threads(nt)
    {
        row_buf rb = {0};
        float *s = malloc(L * sizeof *s);
        #pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            int bad;
            #pragma omp atomic read
            bad = failed;
            if (bad) continue;
            float *si = scores ? scores + i * L : s;
            int idx = 0;
            if (!si || predict_one(m, texts[i], &rb, si, &idx, NULL)) {
                #pragma omp atomic write
                failed = 1;
                continue;
            }
            if (labels_out) labels_out[i] = m->labels[idx];
            if (label_idx_out) label_idx_out[i] = idx;
        }
        free(s);
        row_buf_free(&rb);
    }
    if (failed) return tw_error_set(err, TW_ERR_NOMEM, "out of memory (batch prediction)");
    return TW_OK;
}

/* ---- file format (docs/classic.md) --------------------------------------------------- */
#define FILE_MAGIC "TWCLASIC"
#define FILE_VERSION 2u        /* 2: NB flag, selections 3-4, folds and dev accuracy */
#define HEADER_SIZE 128u
#define MAX_LABELS (1u << 20)
#define FLAG_SUBLINEAR 1u
#define FLAG_IDF 2u
#define FLAG_NB 4u             /* weights include NB scaling (informational) */

static size_t pad8(size_t x) { return (x + 7) & ~(size_t)7; }

static void put_u32(unsigned char *b, size_t off, uint32_t v) { for (int i = 0; i < 4; i++) b[off + i] = (unsigned char)(v >> (8 * i)); }
static void put_u64(unsigned char *b, size_t off, uint64_t v) { for (int i = 0; i < 8; i++) b[off + i] = (unsigned char)(v >> (8 * i)); }
static void put_f64(unsigned char *b, size_t off, double d) { uint64_t v; memcpy(&v, &d, 8); put_u64(b, off, v); }
static void put_f32(unsigned char *b, size_t off, float f) { uint32_t v; memcpy(&v, &f, 4); put_u32(b, off, v); }
static uint32_t get_u32(const unsigned char *b, size_t off) { uint32_t v = 0; for (int i = 0; i < 4; i++) v |= (uint32_t)b[off + i] << (8 * i); return v; }
static uint64_t get_u64(const unsigned char *b, size_t off) { uint64_t v = 0; for (int i = 0; i < 8; i++) v |= (uint64_t)b[off + i] << (8 * i); return v; }
static double get_f64(const unsigned char *b, size_t off) { uint64_t v = get_u64(b, off); double d; memcpy(&d, &v, 8); return d; }
static float get_f32(const unsigned char *b, size_t off) { uint32_t v = get_u32(b, off); float f; memcpy(&f, &v, 4); return f; }

static int host_is_little_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* Section layout from the header counts; returns the total file size. */
typedef struct layout {
    uint64_t labels, buckets, idf, bias, weights, checksum, total;
} layout;

static layout file_layout(uint64_t labels_bytes, uint64_t n_cols, uint64_t n_labels)
{
    layout y;
    y.labels = HEADER_SIZE;
    y.buckets = y.labels + labels_bytes;
    y.idf = y.buckets + 4 * n_cols;
    y.bias = y.idf + 4 * n_cols;
    y.weights = y.bias + pad8(4 * n_labels);
    y.checksum = y.weights + 4 * n_cols * n_labels;
    y.total = y.checksum + 8;
    return y;
}

tw_status tw_classic_save(const tw_classic *m, const char *path, tw_error *err)
{
    if (!m || !path) return tw_error_set(err, TW_ERR_INVALID, "classic save: NULL %s", !m ? "model" : "path");
    if (!host_is_little_endian())
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: model files are little-endian; this host is not", path);
    size_t lb = 0;
    for (size_t c = 0; c < m->n_labels; c++) lb += strlen(m->labels[c]) + 1;
    lb = pad8(lb);
    const size_t nc = m->v.n_cols, L = m->n_labels;
    layout y = file_layout(lb, nc, L);
    unsigned char *b = calloc(1, (size_t)y.total);
    if (!b) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory (%llu bytes)", path, (unsigned long long)y.total);
    const tw_classic_params *p = &m->p;
    memcpy(b, FILE_MAGIC, 8);
    put_u32(b, 8, FILE_VERSION);
    put_u32(b, 12, HEADER_SIZE);
    put_u32(b, 16, TW_FEAT_HASH_VERSION);
    put_u32(b, 20, (uint32_t)p->loss);
    put_u32(b, 24, (uint32_t)p->word_ngram_max);
    put_u32(b, 28, (uint32_t)p->word_min_len);
    put_u32(b, 32, (uint32_t)p->char_ngram_min);
    put_u32(b, 36, (uint32_t)p->char_ngram_max);
    put_u32(b, 40, (uint32_t)p->hash_bits);
    put_u32(b, 44, (p->sublinear_tf ? FLAG_SUBLINEAR : 0) | (p->use_idf ? FLAG_IDF : 0) | (p->nb == 1 ? FLAG_NB : 0));
    put_u32(b, 48, (uint32_t)L);
    put_u32(b, 52, (uint32_t)nc);
    put_u64(b, 56, lb);
    put_f64(b, 64, m->info.C);
    put_f64(b, 72, m->info.sel_accuracy);
    put_u64(b, 80, p->seed);
    put_u64(b, 88, m->info.n_train);
    put_f32(b, 96, m->bias_value);
    put_u32(b, 100, (uint32_t)m->info.selection);
    put_f64(b, 104, p->tol);
    put_u32(b, 112, (uint32_t)p->max_iter);
    put_u32(b, 116, (uint32_t)m->info.folds);
    put_f64(b, 120, m->info.dev_accuracy);
    size_t at = y.labels;
    for (size_t c = 0; c < L; c++) {
        size_t k = strlen(m->labels[c]) + 1;
        memcpy(b + at, m->labels[c], k);
        at += k;
    }
    for (size_t j = 0; j < nc; j++) {
        put_u32(b, y.buckets + 4 * j, m->v.buckets[j]);
        put_f32(b, y.idf + 4 * j, m->v.idf[j]);
    }
    for (size_t c = 0; c < L; c++) put_f32(b, y.bias + 4 * c, m->bias[c]);
    memcpy(b + y.weights, m->W, 4 * nc * L);      /* little-endian host: raw copy */
    put_u64(b, y.checksum, tw_feat_checksum(b, (size_t)y.checksum));
    tw_status st = tw_file_write_atomic(path, b, (size_t)y.total, err);
    free(b);
    return st;
}

#define BAD(...) do { st = tw_error_set(err, TW_ERR_PARSE, __VA_ARGS__); goto fail; } while (0)

tw_status tw_classic_load(tw_classic **out, const char *path, tw_error *err)
{
    *out = NULL;
    if (!path) return tw_error_set(err, TW_ERR_INVALID, "classic load: NULL path");
    if (!host_is_little_endian())
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: model files are little-endian; this host is not", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tw_error_set(err, TW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return tw_error_set(err, TW_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tw_error_set(err, TW_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < HEADER_SIZE + 8) {
        close(fd);
        return tw_error_set(err, TW_ERR_PARSE, "%s: %zu bytes: too short for a classic model (header %u + checksum 8 bytes)",
                            path, size, HEADER_SIZE);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return tw_error_set(err, TW_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    const unsigned char *b = map;
    tw_status st = TW_OK;
    tw_classic *m = calloc(1, sizeof *m);
    if (!m) { munmap(map, size); return tw_error_set(err, TW_ERR_NOMEM, "out of memory"); }
    m->map = map;
    m->map_len = size;

    if (memcmp(b, FILE_MAGIC, 8) != 0) BAD("%s: offset 0: bad magic (not a tunewise classic model)", path);
    /* version 1 is version 2 without NB, selections 3-4, folds (116) and dev accuracy (120);
     * its bytes 116..127 are zero */
    uint32_t ver = get_u32(b, 8);
    if (ver != FILE_VERSION && ver != 1)
        BAD("%s: offset 8: format version %u, this build reads versions 1 and %u", path, ver, FILE_VERSION);
    if (get_u32(b, 12) != HEADER_SIZE) BAD("%s: offset 12: header size %u, expected %u", path, get_u32(b, 12), HEADER_SIZE);
    if (get_u32(b, 16) != TW_FEAT_HASH_VERSION)
        BAD("%s: offset 16: feature hash version %u, this build uses %u", path, get_u32(b, 16), TW_FEAT_HASH_VERSION);
    tw_classic_params p = tw_classic_default_params();
    uint32_t loss = get_u32(b, 20);
    if (loss > TW_CLASSIC_LOGREG) BAD("%s: offset 20: unknown loss %u", path, loss);
    p.loss = (int)loss;
    p.word_ngram_max = (int)get_u32(b, 24);
    p.word_min_len = (int)get_u32(b, 28);
    p.char_ngram_min = (int)get_u32(b, 32);
    p.char_ngram_max = (int)get_u32(b, 36);
    p.hash_bits = (int)get_u32(b, 40);
    {
        tw_feat_config fc = feat_config(&p);
        tw_error fe;
        if (tw_feat_config_check(&fc, &fe)) BAD("%s: offsets 24-43: bad feature config: %s", path, fe.msg);
    }
    uint32_t flags = get_u32(b, 44);
    if (flags & ~(FLAG_SUBLINEAR | FLAG_IDF | (ver >= 2 ? FLAG_NB : 0))) BAD("%s: offset 44: unknown flags 0x%x", path, flags);
    p.sublinear_tf = (flags & FLAG_SUBLINEAR) != 0;
    p.use_idf = (flags & FLAG_IDF) != 0;
    p.nb = (flags & FLAG_NB) != 0;
    uint32_t L = get_u32(b, 48), nc = get_u32(b, 52);
    if (L < 2 || L > MAX_LABELS) BAD("%s: offset 48: %u labels: must be in [2, %u]", path, L, MAX_LABELS);
    if ((uint64_t)nc > ((uint64_t)1 << p.hash_bits))
        BAD("%s: offset 52: %u features but only 2^%d buckets", path, nc, p.hash_bits);
    uint64_t lb = get_u64(b, 56);
    if (lb % 8 || lb < L || lb > (uint64_t)size)
        BAD("%s: offset 56: label block of %llu bytes is invalid (multiple of 8, >= %u, <= file size)", path,
            (unsigned long long)lb, L);
    double C = get_f64(b, 64);
    if (!(C > 0) || isinf(C)) BAD("%s: offset 64: C = %g: must be finite and > 0", path, C);
    float bias_value = get_f32(b, 96);
    if (!isfinite(bias_value)) BAD("%s: offset 96: bias value is not finite", path);
    uint32_t selection = get_u32(b, 100);
    if (selection > (ver >= 2 ? TW_CLASSIC_SEL_CV_DEV : TW_CLASSIC_SEL_HOLDOUT))
        BAD("%s: offset 100: unknown selection %u", path, selection);
    double dev_acc = get_f64(b, 72);
    if (!isnan(dev_acc) && !(dev_acc >= 0 && dev_acc <= 1))
        BAD("%s: offset 72: selection accuracy %g: must be NaN or in [0, 1]", path, dev_acc);
    double tol = get_f64(b, 104);
    if (!(tol >= 0) || isinf(tol)) BAD("%s: offset 104: tol = %g: must be finite and >= 0", path, tol);
    uint32_t max_iter = get_u32(b, 112);
    if (max_iter < 1 || max_iter > INT32_MAX) BAD("%s: offset 112: max_iter = %u: must be in [1, 2^31)", path, max_iter);
    uint32_t folds = get_u32(b, 116);
    double dev_final = ver >= 2 ? get_f64(b, 120) : NAN;
    if (ver < 2) {
        for (size_t off = 116; off < HEADER_SIZE; off++)
            if (b[off]) BAD("%s: offset %zu: reserved header byte is not zero (version 1)", path, off);
    }
    if (folds > MAX_FOLDS || folds == 1 || (folds != 0) != (selection >= TW_CLASSIC_SEL_CV))
        BAD("%s: offset 116: folds = %u: must be 0, or in [2, %d] exactly when the selection is cross-validation", path,
            folds, MAX_FOLDS);
    if (!isnan(dev_final) && !(dev_final >= 0 && dev_final <= 1))
        BAD("%s: offset 120: dev accuracy %g: must be NaN or in [0, 1]", path, dev_final);
    layout y = file_layout(lb, nc, L);
    if (y.total != (uint64_t)size)
        BAD("%s: file is %zu bytes but its header implies %llu (%s)", path, size, (unsigned long long)y.total,
            (uint64_t)size < y.total ? "truncated" : "trailing bytes");
    uint64_t sum = get_u64(b, (size_t)y.checksum), want = tw_feat_checksum(b, (size_t)y.checksum);
    if (sum != want)
        BAD("%s: offset %llu: checksum mismatch (stored %016llx, computed %016llx): the file is corrupted",
            path, (unsigned long long)y.checksum, (unsigned long long)sum, (unsigned long long)want);

    /* labels: L NUL-terminated, non-empty, valid UTF-8, strictly increasing; zero padding */
    m->labels = malloc(L * sizeof *m->labels);
    if (!m->labels) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); goto fail; }
    size_t at = (size_t)y.labels, end = (size_t)(y.labels + lb);
    for (uint32_t c = 0; c < L; c++) {
        const unsigned char *z = memchr(b + at, 0, end - at);
        if (!z) BAD("%s: offset %zu: label %u is not NUL-terminated inside the label block", path, at, c);
        size_t k = (size_t)(z - (b + at));
        size_t bad;
        if (k == 0) BAD("%s: offset %zu: label %u is empty", path, at, c);
        if (!tw_utf8_valid((const char *)b + at, k, &bad)) BAD("%s: offset %zu: label %u is not valid UTF-8", path, at + bad, c);
        m->labels[c] = (const char *)b + at;
        if (c > 0 && strcmp(m->labels[c - 1], m->labels[c]) >= 0)
            BAD("%s: offset %zu: labels are not sorted and unique (label %u)", path, at, c);
        at += k + 1;
    }
    for (; at < end; at++)
        if (b[at]) BAD("%s: offset %zu: nonzero byte after the last label", path, at);
    m->n_labels = L;

    /* buckets strictly increasing < 2^bits; idf finite > 0; weights finite */
    const uint32_t nb = (uint32_t)1 << p.hash_bits;
    for (uint32_t j = 0; j < nc; j++) {
        uint32_t bk = get_u32(b, (size_t)y.buckets + 4 * j);
        if (bk >= nb || (j > 0 && bk <= get_u32(b, (size_t)y.buckets + 4 * (j - 1))))
            BAD("%s: offset %llu: bucket %u of feature %u is out of range or out of order", path,
                (unsigned long long)(y.buckets + 4 * j), bk, j);
        float f = get_f32(b, (size_t)y.idf + 4 * j);
        if (!(f > 0) || isinf(f))
            BAD("%s: offset %llu: idf of feature %u is %g: must be finite and > 0", path,
                (unsigned long long)(y.idf + 4 * j), j, (double)f);
    }
    for (uint64_t k = 0; k < (uint64_t)nc * L + L; k++) {
        uint64_t off = k < L ? y.bias + 4 * k : y.weights + 4 * (k - L);
        if (!isfinite(get_f32(b, (size_t)off)))
            BAD("%s: offset %llu: weight is not finite", path, (unsigned long long)off);
    }
    m->v.fc = feat_config(&p);
    m->v.sublinear_tf = p.sublinear_tf;
    m->v.use_idf = p.use_idf;
    m->v.n_cols = nc;
    m->v.buckets = (const uint32_t *)(b + y.buckets);    /* 8-aligned offsets, little-endian host */
    m->v.idf = (const float *)(b + y.idf);
    m->bias = (const float *)(b + y.bias);
    m->W = (const float *)(b + y.weights);
    m->bias_value = bias_value;
    m->v.remap = calloc(nb, sizeof *m->v.remap);
    if (!m->v.remap) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory (%u buckets)", nb); goto fail; }
    for (uint32_t j = 0; j < nc; j++) m->v.remap[m->v.buckets[j]] = j + 1;

    p.C = C;
    p.seed = get_u64(b, 80);
    p.tol = tol;
    p.max_iter = (int)max_iter;
    p.folds = (int)folds;
    m->p = p;
    m->info.selection = (int)selection;
    m->info.C = C;
    m->info.nb = p.nb;
    m->info.folds = (int)folds;
    m->info.sel_accuracy = dev_acc;
    m->info.dev_accuracy = dev_final;
    m->info.n_train = (size_t)get_u64(b, 88);
    m->info.n_labels = L;
    m->info.n_features = nc;
    m->info.t_featurize = m->info.t_train = m->info.t_search = m->info.t_total = NAN;
    *out = m;
    return TW_OK;
fail:
    tw_classic_free(m);
    return st;
}
