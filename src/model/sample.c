/* sample.c — the sampler chain of sample.h (penalty, greedy / top-k / top-p / min-p /
 * temperature / seeded draw), log-softmax, and stop-string matching for streaming.
 * Scratch memory (a copy of the logits and the candidate list) is allocated once per
 * sampler, never per token.
 * Deliberately not here: the generation loop (generate.c) and the forward pass. */
#include "model/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A candidate: id and logit side by side, so sorting needs no outside state. */
typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct tw_sampler {
    tw_sample_params p;
    int32_t n_vocab;
    tw_rng rng;
    float *logits;       /* [n_vocab] working copy */
    struct cand *cand;   /* [n_vocab] candidates */
    int32_t *ids;        /* [n_vocab] ids of the surviving candidates */
    float *probs;        /* [n_vocab] */
    size_t n_cand;
};

tw_sample_params tw_sample_default_params(void)
{
    return (tw_sample_params){
        .temperature = 0.0f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
        .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0,
    };
}

tw_status tw_sampler_new(tw_sampler **out, const tw_sample_params *p, int32_t n_vocab, tw_error *err)
{
    *out = NULL;
    tw_sample_params d = p ? *p : tw_sample_default_params();
    if (n_vocab < 1) return tw_error_set(err, TW_ERR_INVALID, "sampler: vocabulary size %d", n_vocab);
    if (isnan(d.temperature) || isnan(d.top_p) || isnan(d.min_p) || !(d.repeat_penalty > 0.0f) || !isfinite(d.repeat_penalty))
        return tw_error_set(err, TW_ERR_INVALID, "sampler: temperature, top-p and min-p must be numbers and the repeat "
                            "penalty positive (got %g, %g, %g, %g)", (double)d.temperature, (double)d.top_p,
                            (double)d.min_p, (double)d.repeat_penalty);
    if (d.repeat_last_n < -1) return tw_error_set(err, TW_ERR_INVALID, "sampler: repeat window %d (use -1 for all)", d.repeat_last_n);
    tw_sampler *s = calloc(1, sizeof *s);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    s->p = d;
    s->n_vocab = n_vocab;
    s->logits = malloc((size_t)n_vocab * sizeof *s->logits);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->ids = malloc((size_t)n_vocab * sizeof *s->ids);
    s->probs = malloc((size_t)n_vocab * sizeof *s->probs);
    if (!s->logits || !s->cand || !s->ids || !s->probs) {
        tw_sampler_free(s);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory for a sampler over %d tokens", n_vocab);
    }
    tw_rng_seed(&s->rng, d.seed);
    *out = s;
    return TW_OK;
}

void tw_sampler_free(tw_sampler *s)
{
    if (!s) return;
    free(s->logits);
    free(s->cand);
    free(s->ids);
    free(s->probs);
    free(s);
}

void tw_sampler_reseed(tw_sampler *s, uint64_t seed)
{
    s->p.seed = seed;
    tw_rng_seed(&s->rng, seed);
}

const tw_sample_params *tw_sampler_params(const tw_sampler *s) { return &s->p; }

int32_t tw_argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    float bv = -INFINITY;
    bool any = false;
    for (int32_t i = 0; i < n; i++)
        if (!isnan(x[i]) && (!any || x[i] > bv)) {
            bv = x[i];
            best = i;
            any = true;
        }
    return best;
}

void tw_apply_repeat_penalty(float *logits, int32_t n_vocab, const int32_t *history, size_t n_history, int32_t last_n,
                             float penalty)
{
    if (penalty == 1.0f || last_n == 0 || !history || n_history == 0) return;
    size_t start = (last_n < 0 || (size_t)last_n >= n_history) ? 0 : n_history - (size_t)last_n;
    /* each distinct token once: mark visited ones by scanning back for a repeat (the
     * window is small — 64 by default — so the quadratic scan beats a vocabulary-sized
     * bitmap) */
    for (size_t i = start; i < n_history; i++) {
        int32_t t = history[i];
        if (t < 0 || t >= n_vocab) continue;
        bool seen = false;
        for (size_t j = start; j < i && !seen; j++) seen = history[j] == t;
        if (seen) continue;
        logits[t] = logits[t] > 0.0f ? logits[t] / penalty : logits[t] * penalty;
    }
}

double tw_log_softmax_at(const float *logits, int32_t n_vocab, int32_t id)
{
    if (id < 0 || id >= n_vocab) return -INFINITY;
    double mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[id] - mx - log(sum);
}

/* "a is worse than b": smaller logit, or equal logit and larger id. */
static bool worse(const cand *a, const cand *b) { return a->logit < b->logit || (a->logit == b->logit && a->id > b->id); }

static int cmp_cand(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    return worse(a, b) ? 1 : worse(b, a) ? -1 : 0;
}

static void heap_sift(cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t c = 2 * i + 1, m = i;
        if (c < n && worse(&h[c], &h[m])) m = c;
        if (c + 1 < n && worse(&h[c + 1], &h[m])) m = c + 1;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Keep the k best of c[0..*n) at the front, sorted best first. A min-heap of size k
 * makes this O(n log k), which matters for 150k-token vocabularies at every step. */
static void sort_cands(cand *c, size_t *n, size_t k)
{
    if (k < *n) {
        for (size_t i = k / 2; i-- > 0;) heap_sift(c, k, i);
        for (size_t i = k; i < *n; i++)
            if (worse(&c[0], &c[i])) {
                c[0] = c[i];
                heap_sift(c, k, 0);
            }
        *n = k;
    }
    qsort(c, *n, sizeof *c, cmp_cand);
}

/* probs[i] = softmax over the candidates c[0..n) of logit / temp (sorted best first, so
 * c[0] holds the maximum). */
static void softmax_cands(float *probs, const cand *c, size_t n, double temp)
{
    double mx = c[0].logit, sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += exp(((double)c[i].logit - mx) / temp);
    for (size_t i = 0; i < n; i++) probs[i] = (float)(exp(((double)c[i].logit - mx) / temp) / sum);
}

int32_t tw_sampler_sample(tw_sampler *s, const float *logits, const int32_t *history, size_t n_history)
{
    const tw_sample_params *p = &s->p;
    int32_t V = s->n_vocab;
    memcpy(s->logits, logits, (size_t)V * sizeof *s->logits);
    float *l = s->logits;
    for (int32_t i = 0; i < V; i++)
        if (isnan(l[i])) l[i] = -INFINITY;   /* a NaN logit is never chosen */
    tw_apply_repeat_penalty(l, V, history, n_history, p->repeat_last_n, p->repeat_penalty);
    if (!(p->temperature > 0.0f)) {
        int32_t best = tw_argmax(l, V);
        s->ids[0] = best;
        s->probs[0] = 1.0f;
        s->n_cand = 1;
        return best;
    }
    size_t n = (size_t)V;
    cand *c = s->cand;
    for (int32_t i = 0; i < V; i++) c[i] = (cand){.logit = l[i], .id = i};
    size_t k = (p->top_k > 0 && p->top_k < V) ? (size_t)p->top_k : n;
    sort_cands(c, &n, k);
    if (p->top_p < 1.0f) {
        softmax_cands(s->probs, c, n, 1.0);
        double cum = 0.0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += s->probs[i];
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0.0f && n > 1) {
        softmax_cands(s->probs, c, n, 1.0);
        float thr = p->min_p * s->probs[0];
        size_t keep = 1;
        while (keep < n && s->probs[keep] >= thr) keep++;
        n = keep;
    }
    softmax_cands(s->probs, c, n, (double)p->temperature);
    for (size_t i = 0; i < n; i++) s->ids[i] = c[i].id;
    s->n_cand = n;
    double u = tw_rng_uniform(&s->rng), cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += s->probs[i];
        if (u < cum) return s->ids[i];
    }
    return s->ids[n - 1];   /* rounding left the sum a hair below u */
}

size_t tw_sampler_candidates(const tw_sampler *s, const int32_t **ids, const float **probs)
{
    *ids = s->ids;
    *probs = s->probs;
    return s->n_cand;
}

/* ---- stop strings ------------------------------------------------------------------- */

int tw_stop_find(const char *text, size_t len, const char *const *stops, size_t n, size_t from, size_t *at)
{
    int best = -1;
    size_t best_at = 0, best_len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sl = stops[i] ? strlen(stops[i]) : 0;
        if (sl == 0 || sl > len) continue;
        /* an occurrence ending after `from` starts at or after from - sl + 1 */
        size_t start = from >= sl ? from - sl + 1 : 0;
        for (size_t o = start; o + sl <= len; o++) {
            if (best >= 0 && o > best_at) break;
            if (memcmp(text + o, stops[i], sl) == 0) {
                if (best < 0 || o < best_at || (o == best_at && sl > best_len)) {
                    best = (int)i;
                    best_at = o;
                    best_len = sl;
                }
                break;
            }
        }
    }
    if (best >= 0 && at) *at = best_at;
    return best;
}

size_t tw_stop_holdback(const char *text, size_t len, const char *const *stops, size_t n)
{
    size_t hold = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sl = stops[i] ? strlen(stops[i]) : 0;
        if (sl < 2) continue;
        /* longest k < sl with text's last k bytes == the stop's first k bytes */
        size_t kmax = sl - 1 < len ? sl - 1 : len;
        for (size_t k = kmax; k > hold; k--)
            if (memcmp(text + len - k, stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    return hold;
}
