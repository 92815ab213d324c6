/* classic.h — the classic baseline arm: "the smallest model that does the job".
 *
 * Hashed word 1..N-grams + char_wb M..N-grams (features.h), TF-IDF with sublinear tf
 * and smooth idf, each block L2-normalised, optionally scaled by naive-Bayes
 * log-count ratios (NBSVM, two-label tasks), and a one-vs-rest linear model trained by
 * dual coordinate descent (liblinear's algorithms: L2-loss SVM = LinearSVC, L1-loss
 * SVM, or L2-regularised logistic regression). C (and NB scaling on/off) are chosen by
 * seeded stratified k-fold cross-validation on train, pooled with the dev split when
 * there is one; never on test. Training is deterministic under the seed and
 * independent of the number of threads. The model file format is in docs/classic.md.
 *
 * Ownership: a tw_classic is owned by the caller and freed with tw_classic_free
 * (NULL is a no-op). Strings and arrays returned by accessors are borrowed and stay
 * valid until the model is freed. Input arrays are only read during the call.
 * A model is immutable after training/loading: concurrent predictions from several
 * threads on one model are safe.
 */
#ifndef TW_ARMS_CLASSIC_H
#define TW_ARMS_CLASSIC_H

#include "tunewise.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tw_classic_loss {
    TW_CLASSIC_SVM = 0,      /* squared hinge (L2-loss) SVM, like sklearn LinearSVC (default) */
    TW_CLASSIC_SVM_L1 = 1,   /* hinge (L1-loss) SVM */
    TW_CLASSIC_LOGREG = 2    /* logistic regression (one-vs-rest) */
} tw_classic_loss;

#define TW_CLASSIC_MAX_GRID 32

typedef struct tw_classic_params {
    /* features */
    int word_ngram_max;      /* word 1..word_ngram_max-grams, 0 = none (default 2) */
    int word_min_len;        /* shortest word token in code points (default 1: keeps "i",
                                "a", digits; sklearn's default pattern uses 2) */
    int char_ngram_min;      /* char_wb n-grams (default 2..5); char_ngram_max = 0: none */
    int char_ngram_max;
    int hash_bits;           /* 2^hash_bits buckets, 8..24 (default 20) */
    int sublinear_tf;        /* tf → 1 + ln(tf) (default 1) */
    int use_idf;             /* multiply by smooth idf ln((1+n)/(1+df)) + 1 (default 1);
                                0 gives log-count (or count) weighting */
    int nb;                  /* naive-Bayes log-count-ratio scaling of the features, per
                                class (Wang & Manning 2012, NBSVM without interpolation):
                                1 on, 0 off, -1 auto (default): when C is chosen, on/off is
                                chosen with it for two-label tasks; otherwise off */
    /* model */
    int loss;                /* tw_classic_loss */
    double C;                /* > 0: use it; <= 0: choose from C_grid (see folds) */
    const double *C_grid;    /* borrowed during train only; NULL → {0.1,0.3,1,3,10}
                                (logreg: {1,3,10,30,100}) */
    size_t n_C;              /* entries in C_grid (<= TW_CLASSIC_MAX_GRID) */
    int folds;               /* selection: k-fold cross-validation on train, k = folds in
                                [2, 20] (default 5), its counts pooled with the dev split's
                                when there is one; 0: no cross-validation — the dev split
                                alone, or a holdout of train when there is none */
    double holdout;          /* fraction of train held out when folds = 0 and there is no
                                dev split (default 0.1) */
    int max_iter;            /* solver passes over the data per class (default 1000) */
    double tol;              /* solver stopping tolerance (projected-gradient gap for the
                                SVMs, max |gradient| for logreg); 0 = default: 1e-3 for
                                the SVMs (liblinear uses 0.1, sklearn 1e-4), 1e-2 logreg.
                                Selection fits of the SVMs stop at max(tol, 0.1). */
    uint64_t seed;           /* shuffling of the solver and of the folds/holdout (default 0) */
    int threads;             /* OpenMP threads for training/batch prediction; 0 = all */
} tw_classic_params;

tw_classic_params tw_classic_default_params(void);

/* How a model was trained: filled by tw_classic_train, partly restored by load. */
typedef enum tw_classic_selection {
    TW_CLASSIC_SEL_FIXED = 0,    /* C given (or too little data to select) */
    TW_CLASSIC_SEL_DEV = 1,      /* chosen on the dev split (folds = 0) */
    TW_CLASSIC_SEL_HOLDOUT = 2,  /* chosen on a stratified holdout of train (folds = 0) */
    TW_CLASSIC_SEL_CV = 3,       /* chosen by k-fold cross-validation on train */
    TW_CLASSIC_SEL_CV_DEV = 4    /* chosen on cross-validation + dev counts pooled */
} tw_classic_selection;

#define TW_CLASSIC_MAX_CAND (2 * TW_CLASSIC_MAX_GRID)

typedef struct tw_classic_info {
    int selection;              /* tw_classic_selection; the final model is always refitted
                                   on all of train with the chosen candidate */
    double C;                   /* C of the final model */
    int nb;                     /* NB scaling in the final model (0/1) */
    int folds;                  /* k of the cross-validation (0 if none) */
    size_t n_cand;              /* candidates evaluated: NB off (then on) × C ascending;
                                   0 when C was fixed or the model was loaded */
    double cand_C[TW_CLASSIC_MAX_CAND];
    int cand_nb[TW_CLASSIC_MAX_CAND];
    double cand_accuracy[TW_CLASSIC_MAX_CAND];     /* pooled selection accuracy */
    double cand_cv_accuracy[TW_CLASSIC_MAX_CAND];  /* CV/holdout part; NaN if none */
    double cand_dev_accuracy[TW_CLASSIC_MAX_CAND]; /* dev part; NaN if none */
    double cand_seconds[TW_CLASSIC_MAX_CAND];      /* solver seconds (all folds; SVMs
                                                      warm-start from the previous C) */
    double sel_accuracy;        /* selection accuracy of the chosen candidate; NaN if none */
    double dev_accuracy;        /* accuracy of the final model on the dev split; NaN if none */
    size_t n_train, n_sel;      /* examples fitted; selection examples (CV/holdout + dev) */
    size_t n_labels, n_features;/* classes; distinct buckets seen in training */
    size_t nnz;                 /* nonzeros of the training matrix (final fit) */
    int iterations_max;         /* largest solver pass count over classes (final fit) */
    long iterations_total;      /* sum over classes (final fit) */
    int threads;                /* threads used */
    double t_featurize;         /* seconds: featurizing train for the final fit */
    double t_train;             /* seconds: solver time of the final fit */
    double t_search;            /* seconds: selection (fold matrices, candidate fits,
                                   scoring), not the final refit; 0 if C fixed */
    double t_total;             /* seconds: the whole tw_classic_train call */
} tw_classic_info;

typedef struct tw_classic tw_classic;   /* opaque */

/* Train. texts/labels: n non-NULL NUL-terminated UTF-8 strings (borrowed during the
 * call). dev_texts/dev_labels/n_dev: optional dev split (NULL/0 for none); used in
 * the selection when p->C <= 0 and always scored (info.dev_accuracy); the model is
 * fitted on train only. Dev labels never seen in train are counted as errors. Needs
 * >= 2 distinct train labels.
 * p NULL → defaults. On success *out owns a new model. */
tw_status tw_classic_train(tw_classic **out, const char *const *texts, const char *const *labels,
                           size_t n, const char *const *dev_texts, const char *const *dev_labels,
                           size_t n_dev, const tw_classic_params *p, tw_error *err);

/* Predict one text (empty is fine: the bias decides). *label is borrowed from the
 * model. scores, when non-NULL, receives tw_classic_n_labels() decision values
 * (w·x + b per class, in label-index order; logreg: log-odds). */
tw_status tw_classic_predict(const tw_classic *m, const char *text, const char **label,
                             float *scores, tw_error *err);

/* Predict n texts in parallel (p->threads of training, or all). labels_out[i] is
 * borrowed from the model; label_idx_out (optional) gets label indices; scores
 * (optional) is n × n_labels, row-major. */
tw_status tw_classic_predict_batch(const tw_classic *m, const char *const *texts, size_t n,
                                   const char **labels_out, int *label_idx_out, float *scores,
                                   tw_error *err);

/* Labels, sorted bytewise; index i matches scores[i]. Borrowed. */
size_t tw_classic_n_labels(const tw_classic *m);
const char *tw_classic_label(const tw_classic *m, size_t i);
/* Index of a label, or -1 when the model never saw it. */
int tw_classic_label_index(const tw_classic *m, const char *label);

/* Parameters the model was trained with (C and nb = the chosen ones, folds = the k
 * of the CV that chose them or 0, C_grid = NULL). */
tw_classic_params tw_classic_get_params(const tw_classic *m);
/* Training information (borrowed). */
const tw_classic_info *tw_classic_get_info(const tw_classic *m);
/* The same as a new JSON object (caller owns the reference; NULL on OOM). */
json_t *tw_classic_info_json(const tw_classic *m);

/* Save atomically (temp file + fsync + rename) in the versioned binary format. */
tw_status tw_classic_save(const tw_classic *m, const char *path, tw_error *err);
/* Load with strict validation (magic, version, header fields, section sizes vs the
 * file size, label strings, sorted buckets, finite values, checksum); errors name
 * the file and the byte offset. Weights are mmap'ed read-only. */
tw_status tw_classic_load(tw_classic **out, const char *path, tw_error *err);

void tw_classic_free(tw_classic *m);

#endif /* TW_ARMS_CLASSIC_H */
