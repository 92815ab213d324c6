/* classify.c — classification metrics from a confusion matrix: accuracy, per-class
 * precision/recall/F1/support, micro/macro/weighted F1, and the exact label lookup
 * that turns strings into class indices.
 * Definitions follow scikit-learn's precision_recall_fscore_support with
 * zero_division=0; predictions outside the label set are wrong for accuracy and
 * recall but are not a predicted class (no false positive for any label).
 * Deliberately not here: resampling (stats.c) and the JSON report (score.c). */
#include "score/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    int32_t i;
} lab;

static int lab_cmp(const void *a, const void *b)
{
    return strcmp(((const lab *)a)->s, ((const lab *)b)->s);
}

tw_status tw_label_index_init(tw_label_index *ix, const char *const *labels, size_t k, tw_error *err)
{
    memset(ix, 0, sizeof *ix);
    if (k > INT32_MAX - 1) return tw_error_set(err, TW_ERR_INVALID, "too many labels (%zu)", k);
    lab *tmp = tw_calloc(k ? k : 1, sizeof *tmp, err);
    ix->sorted = tw_calloc(k ? k : 1, sizeof *ix->sorted, err);
    ix->idx = tw_calloc(k ? k : 1, sizeof *ix->idx, err);
    if (!tmp || !ix->sorted || !ix->idx) {
        free(tmp);
        tw_label_index_free(ix);
        return TW_ERR_NOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        if (!labels[i]) {
            free(tmp);
            tw_label_index_free(ix);
            return tw_error_set(err, TW_ERR_INVALID, "label %zu is NULL", i);
        }
        tmp[i].s = labels[i];
        tmp[i].i = (int32_t)i;
    }
    qsort(tmp, k, sizeof *tmp, lab_cmp);
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && strcmp(tmp[i - 1].s, tmp[i].s) == 0) {
            tw_error_set(err, TW_ERR_INVALID, "duplicate label '%s'", tmp[i].s);
            free(tmp);
            tw_label_index_free(ix);
            return TW_ERR_INVALID;
        }
        ix->sorted[i] = tmp[i].s;
        ix->idx[i] = tmp[i].i;
    }
    ix->k = k;
    free(tmp);
    return TW_OK;
}

int32_t tw_label_index_find(const tw_label_index *ix, const char *s)
{
    if (!s) return -1;
    size_t lo = 0, hi = ix->k;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ix->sorted[mid], s);
        if (c == 0) return ix->idx[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

void tw_label_index_free(tw_label_index *ix)
{
    if (!ix) return;
    free(ix->sorted);
    free(ix->idx);
    memset(ix, 0, sizeof *ix);
}

void tw_cls_confusion(uint64_t *conf, const int32_t *gold, const int32_t *pred, const uint32_t *w,
                      size_t n, size_t k)
{
    const size_t cols = k + 1;
    if (w) {
        for (size_t i = 0; i < n; i++)
            if (w[i]) conf[(size_t)gold[i] * cols + (size_t)pred[i]] += w[i];
    } else {
        for (size_t i = 0; i < n; i++) conf[(size_t)gold[i] * cols + (size_t)pred[i]]++;
    }
}

static double ratio0(double num, double den) { return den > 0 ? num / den : 0.0; }

void tw_cls_metrics(tw_cls_summary *out, double *per_class, const uint64_t *conf, size_t k)
{
    const size_t cols = k + 1;
    memset(out, 0, sizeof *out);
    uint64_t n = 0, correct = 0, invalid = 0, sum_tp = 0, sum_fp = 0, sum_fn = 0;
    double sum_f1 = 0, sum_p = 0, sum_r = 0, wsum_f1 = 0;
    size_t n_avg = 0;
    for (size_t c = 0; c < k; c++) {
        uint64_t tp = conf[c * cols + c], support = 0, predicted = 0;
        for (size_t j = 0; j < cols; j++) support += conf[c * cols + j];
        for (size_t r = 0; r < k; r++) predicted += conf[r * cols + c];
        invalid += conf[c * cols + k];
        uint64_t fp = predicted - tp, fn = support - tp;
        double p = ratio0((double)tp, (double)predicted);
        double r = ratio0((double)tp, (double)support);
        double f1 = ratio0(2.0 * (double)tp, (double)(2 * tp + fp + fn));
        if (per_class) {
            per_class[c * 4 + 0] = p;
            per_class[c * 4 + 1] = r;
            per_class[c * 4 + 2] = f1;
            per_class[c * 4 + 3] = (double)support;
        }
        n += support;
        correct += tp;
        sum_tp += tp;
        sum_fp += fp;
        sum_fn += fn;
        wsum_f1 += (double)support * f1;
        /* scikit-learn's default label set is the union of gold and predicted labels:
         * average over classes that occur on either side. */
        if (support > 0 || predicted > 0) {
            sum_f1 += f1;
            sum_p += p;
            sum_r += r;
            n_avg++;
        }
    }
    out->n = n;
    out->n_invalid = invalid;
    out->n_averaged = n_avg;
    if (n == 0) {
        out->accuracy = out->micro_f1 = out->macro_f1 = out->weighted_f1 = NAN;
        out->macro_precision = out->macro_recall = NAN;
        return;
    }
    out->accuracy = (double)correct / (double)n;
    out->micro_f1 = ratio0(2.0 * (double)sum_tp, (double)(2 * sum_tp + sum_fp + sum_fn));
    out->macro_f1 = n_avg ? sum_f1 / (double)n_avg : 0.0;
    out->macro_precision = n_avg ? sum_p / (double)n_avg : 0.0;
    out->macro_recall = n_avg ? sum_r / (double)n_avg : 0.0;
    out->weighted_f1 = wsum_f1 / (double)n;
}
