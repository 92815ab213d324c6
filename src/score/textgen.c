/* textgen.c — metrics for free-text generation: exact match, SQuAD normalized exact
 * match and token F1, ROUGE-1/2/L F-measure (rouge-score), and the sufficient
 * statistics of corpus BLEU and chrF (sacreBLEU 2.x defaults), from which the
 * corpus scores (and their bootstrap replicates) are computed.
 *
 * N-grams are counted exactly: tokens are interned to integer ids per segment, the
 * windows of each order are sorted and run-length counted, and counts are looked up
 * by binary search — no hashing, so no collisions.
 * Deliberately not here: tokenization rules (text.c), averaging/resampling (score.c,
 * stats.c), sentence-level BLEU (use the corpus formula on one segment's stats). */
#include "score/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- symbol sequences ------------------------------------------------------- */

typedef struct {
    uint32_t *ids;
    size_t len;
} symseq;

static void symseqs_free(symseq *s, size_t m)
{
    if (!s) return;
    for (size_t i = 0; i < m; i++) free(s[i].ids);
    free(s);
}

typedef struct {
    const char *p;
    uint32_t len;
    uint32_t seq, pos;
} itok;

static int itok_cmp(const void *a, const void *b)
{
    const itok *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    return (x->len > y->len) - (x->len < y->len);
}

typedef enum { TOK_13A, TOK_ROUGE, TOK_SQUAD } tok_kind;

/* Tokenize texts[0..m) with the given tokenizer and intern the tokens of all of them
 * into shared integer ids (equal strings <=> equal ids). *out: m sequences (heap). */
static tw_status tokenize_intern(symseq **out, const char *const *texts, size_t m, tok_kind kind,
                                 tw_error *err)
{
    tw_buf *bufs = tw_calloc(m, sizeof *bufs, err);
    symseq *seqs = tw_calloc(m, sizeof *seqs, err);
    itok *all = NULL;
    size_t n_all = 0, cap = 0;
    tw_status st = TW_ERR_NOMEM;
    *out = NULL;
    if (!bufs || !seqs) goto done;
    for (size_t i = 0; i < m; i++) {
        tw_status ts = kind == TOK_13A ? tw_tok_13a(&bufs[i], texts[i])
                       : kind == TOK_ROUGE ? tw_tok_rouge(&bufs[i], texts[i])
                                           : tw_norm_squad(&bufs[i], texts[i]);
        if (ts != TW_OK) { tw_error_set(err, TW_ERR_NOMEM, "out of memory tokenizing"); goto done; }
        const char *s = bufs[i].data ? bufs[i].data : "";
        size_t n = bufs[i].len, j = 0, pos = 0;
        while (j < n) {   /* tokens are separated by exactly one space */
            size_t e = j;
            while (e < n && s[e] != ' ') e++;
            if (tw_grow((void **)&all, &cap, n_all + 1, sizeof *all, err) != TW_OK) goto done;
            all[n_all++] = (itok){s + j, (uint32_t)(e - j), (uint32_t)i, (uint32_t)pos++};
            j = e + 1;
        }
        seqs[i].len = pos;
        seqs[i].ids = tw_malloc((pos ? pos : 1) * sizeof *seqs[i].ids, err);
        if (!seqs[i].ids) goto done;
    }
    if (n_all) qsort(all, n_all, sizeof *all, itok_cmp);
    uint32_t id = 0;
    for (size_t t = 0; t < n_all; t++) {
        if (t > 0 && itok_cmp(&all[t - 1], &all[t]) != 0) id++;
        seqs[all[t].seq].ids[all[t].pos] = id;
    }
    *out = seqs;
    seqs = NULL;
    st = TW_OK;
done:
    if (bufs)
        for (size_t i = 0; i < m; i++) tw_buf_free(&bufs[i]);
    free(bufs);
    free(all);
    symseqs_free(seqs, m);
    return st;
}

/* Code points of s with Python whitespace removed (chrF: ''.join(s.split())). */
static tw_status chars_nospace(symseq *out, const char *s, tw_error *err)
{
    size_t n = s ? strlen(s) : 0, i = 0, k = 0;
    out->ids = tw_malloc((n ? n : 1) * sizeof *out->ids, err);
    out->len = 0;
    if (!out->ids) return TW_ERR_NOMEM;
    while (i < n) {
        uint32_t cp;
        i += (size_t)tw_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (!tw_py_isspace(cp)) out->ids[k++] = cp;
    }
    out->len = k;
    return TW_OK;
}

/* ---- n-gram tables ------------------------------------------------------------ */
/* Windows of one order are sorted and run-length counted. When every symbol of the
 * segment fits in `bits` bits and order * bits <= 64, an n-gram is packed into one
 * uint64 key (symbols big-endian), so sorting and matching compare integers; otherwise
 * windows are compared symbol by symbol. Tables compared with each other are built
 * with the same `bits` (one symbol space per segment). */

typedef struct {
    const uint32_t *seq;
    size_t order;
    int bits;          /* > 0: packed keys in use */
    uint64_t *key;     /* (m) packed n-gram of each distinct window (packed only) */
    uint32_t *start;   /* (m) first window of each distinct n-gram */
    uint32_t *count;   /* (m) its multiplicity */
    size_t m;          /* distinct n-grams */
    size_t total;      /* all windows: max(0, len - order + 1) */
} ngtab;

typedef struct {
    const uint32_t *seq;
    size_t order;
} win_ctx;

static int seq_cmp(const uint32_t *a, const uint32_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

static int win_cmp(const void *a, const void *b, void *ctx)
{
    const win_ctx *c = ctx;
    return seq_cmp(c->seq + *(const uint32_t *)a, c->seq + *(const uint32_t *)b, c->order);
}

typedef struct {
    uint64_t key;
    uint32_t start;
} kw;

/* Sort by key: quicksort (median of three) with an insertion-sort cutoff, inline so
 * that comparisons are integer compares rather than calls through qsort's pointer. */
static void kw_sort(kw *v, size_t n)
{
    while (n > 24) {
        size_t mid = n / 2;
        kw t;
#define KW_SWAP(i, j) do { t = v[i]; v[i] = v[j]; v[j] = t; } while (0)
        if (v[mid].key < v[0].key) KW_SWAP(mid, 0);
        if (v[n - 1].key < v[0].key) KW_SWAP(n - 1, 0);
        if (v[n - 1].key < v[mid].key) KW_SWAP(n - 1, mid);
        uint64_t pivot = v[mid].key;
        size_t i = 0, j = n - 1;
        for (;;) {   /* Hoare partition */
            while (v[i].key < pivot) i++;
            while (v[j].key > pivot) j--;
            if (i >= j) break;
            KW_SWAP(i, j);
            i++;
            j--;
        }
#undef KW_SWAP
        /* recurse into the smaller part, loop on the larger (O(log n) stack) */
        size_t left = j + 1;
        if (left < n - left) {
            kw_sort(v, left);
            v += left;
            n -= left;
        } else {
            kw_sort(v + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        kw t = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1].key > t.key) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = t;
    }
}

/* Bits needed for symbols in [0, max_id]. */
static int sym_bits(uint32_t max_id)
{
    int b = 1;
    while (b < 32 && (max_id >> b)) b++;
    return b;
}

static tw_status ngtab_build(ngtab *t, const symseq *s, size_t order, int bits, tw_error *err)
{
    memset(t, 0, sizeof *t);
    t->seq = s->ids;
    t->order = order;
    size_t w = s->len >= order ? s->len - order + 1 : 0;
    t->total = w;
    t->start = tw_malloc((w ? w : 1) * sizeof *t->start, err);
    t->count = tw_malloc((w ? w : 1) * sizeof *t->count, err);
    if (!t->start || !t->count) goto nomem;
    if (bits > 0 && (size_t)bits * order <= 64) {
        t->bits = bits;
        t->key = tw_malloc((w ? w : 1) * sizeof *t->key, err);
        kw *v = tw_malloc((w ? w : 1) * sizeof *v, err);
        if (!t->key || !v) {
            free(v);
            goto nomem;
        }
        for (size_t i = 0; i < w; i++) {
            uint64_t k = 0;
            for (size_t j = 0; j < order; j++) k = (k << bits) | s->ids[i + j];
            v[i] = (kw){k, (uint32_t)i};
        }
        kw_sort(v, w);
        size_t m = 0;
        for (size_t i = 0; i < w; i++) {
            if (m > 0 && t->key[m - 1] == v[i].key) {
                t->count[m - 1]++;
            } else {
                t->key[m] = v[i].key;
                t->start[m] = v[i].start;
                t->count[m] = 1;
                m++;
            }
        }
        free(v);
        t->m = m;
        return TW_OK;
    }
    for (size_t i = 0; i < w; i++) t->start[i] = (uint32_t)i;
    win_ctx ctx = {s->ids, order};
    if (w > 1) qsort_r(t->start, w, sizeof *t->start, win_cmp, &ctx);
    size_t m = 0;
    for (size_t i = 0; i < w; i++) {
        if (m > 0 && seq_cmp(s->ids + t->start[m - 1], s->ids + t->start[i], order) == 0) {
            t->count[m - 1]++;
        } else {
            t->start[m] = t->start[i];
            t->count[m] = 1;
            m++;
        }
    }
    t->m = m;
    return TW_OK;
nomem:
    free(t->start);
    free(t->count);
    free(t->key);
    memset(t, 0, sizeof *t);
    return TW_ERR_NOMEM;
}

static void ngtab_free(ngtab *t)
{
    free(t->start);
    free(t->count);
    free(t->key);
    memset(t, 0, sizeof *t);
}

/* Multiplicity in t of the j-th distinct n-gram of src (same order and symbol space). */
static uint32_t ngtab_count(const ngtab *t, const ngtab *src, size_t j)
{
    size_t lo = 0, hi = t->m;
    if (t->bits && src->bits) {
        uint64_t k = src->key[j];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->key[mid] == k) return t->count[mid];
            if (t->key[mid] < k) lo = mid + 1;
            else hi = mid;
        }
        return 0;
    }
    const uint32_t *g = src->seq + src->start[j];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = seq_cmp(t->seq + t->start[mid], g, t->order);
        if (c == 0) return t->count[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* sum over distinct n-grams g of a: min(count_a(g), count_b(g)) */
static size_t ngtab_overlap(const ngtab *a, const ngtab *b)
{
    size_t s = 0;
    if (a->bits && b->bits) {   /* both sorted by key: merge walk */
        size_t i = 0, j = 0;
        while (i < a->m && j < b->m) {
            if (a->key[i] == b->key[j]) {
                s += a->count[i] < b->count[j] ? a->count[i] : b->count[j];
                i++;
                j++;
            } else if (a->key[i] < b->key[j]) i++;
            else j++;
        }
        return s;
    }
    for (size_t j = 0; j < a->m; j++) {
        uint32_t cb = ngtab_count(b, a, j);
        s += a->count[j] < cb ? a->count[j] : cb;
    }
    return s;
}

/* Bits of the symbol space of seqs[0..m) (max id + 1 values). */
static int seqs_bits(const symseq *seqs, size_t m)
{
    uint32_t mx = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < seqs[i].len; j++)
            if (seqs[i].ids[j] > mx) mx = seqs[i].ids[j];
    return sym_bits(mx);
}

/* chrF: replace code points by dense ids shared by seqs[0..m) (sort + unique). */
static tw_status densify(symseq *seqs, size_t m, tw_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < m; i++) total += seqs[i].len;
    uint32_t *all = tw_malloc((total ? total : 1) * sizeof *all, err);
    kw *v = tw_malloc((total ? total : 1) * sizeof *v, err);
    if (!all || !v) {
        free(all);
        free(v);
        return TW_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < seqs[i].len; j++) v[k++] = (kw){seqs[i].ids[j], 0};
    kw_sort(v, total);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
        if (u == 0 || all[u - 1] != (uint32_t)v[i].key) all[u++] = (uint32_t)v[i].key;
    free(v);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < seqs[i].len; j++) {
            size_t lo = 0, hi = u;
            uint32_t c = seqs[i].ids[j];
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (all[mid] < c) lo = mid + 1;
                else hi = mid;
            }
            seqs[i].ids[j] = (uint32_t)lo;
        }
    free(all);
    return TW_OK;
}

static tw_status check_refs(const char *const *refs, size_t n_refs, tw_error *err)
{
    if (n_refs == 0) return tw_error_set(err, TW_ERR_INVALID, "no reference given");
    for (size_t r = 0; r < n_refs; r++)
        if (!refs[r]) return tw_error_set(err, TW_ERR_INVALID, "reference %zu is NULL", r);
    return TW_OK;
}

/* texts[0] = hyp, texts[1..] = refs (temporary array, heap). */
static const char **hyp_refs(const char *hyp, const char *const *refs, size_t n_refs, tw_error *err)
{
    const char **t = tw_malloc((n_refs + 1) * sizeof *t, err);
    if (!t) return NULL;
    t[0] = hyp ? hyp : "";
    for (size_t r = 0; r < n_refs; r++) t[r + 1] = refs[r];
    return t;
}

/* ---- BLEU (sacreBLEU metrics/bleu.py) ------------------------------------------ */

tw_status tw_bleu_stats(double *stats, const char *hyp, const char *const *refs, size_t n_refs,
                        tw_error *err)
{
    memset(stats, 0, TW_BLEU_NSTATS * sizeof *stats);
    tw_status st = check_refs(refs, n_refs, err);
    if (st) return st;
    const char **texts = hyp_refs(hyp, refs, n_refs, err);
    if (!texts) return TW_ERR_NOMEM;
    symseq *seqs = NULL;
    ngtab *tabs = tw_calloc(n_refs + 1, sizeof *tabs, err);
    st = tabs ? tokenize_intern(&seqs, texts, n_refs + 1, TOK_13A, err) : TW_ERR_NOMEM;
    if (st) goto done;

    /* _get_closest_ref_len: smallest |hyp - ref|, ties to the shorter reference */
    size_t hyp_len = seqs[0].len, best_diff = 0, ref_len = 0;
    for (size_t r = 0; r < n_refs; r++) {
        size_t rl = seqs[r + 1].len, diff = rl > hyp_len ? rl - hyp_len : hyp_len - rl;
        if (r == 0 || diff < best_diff || (diff == best_diff && rl < ref_len)) {
            best_diff = diff;
            ref_len = rl;
        }
    }
    stats[0] = (double)hyp_len;
    stats[1] = (double)ref_len;
    int bits = seqs_bits(seqs, n_refs + 1);
    for (size_t order = 1; order <= 4; order++) {
        for (size_t i = 0; i <= n_refs; i++)
            if ((st = ngtab_build(&tabs[i], &seqs[i], order, bits, err))) goto done;
        /* clip each hypothesis n-gram count by its maximum count in any one reference */
        const ngtab *h = &tabs[0];
        double correct = 0;
        for (size_t j = 0; j < h->m; j++) {
            uint32_t maxr = 0;
            for (size_t r = 1; r <= n_refs; r++) {
                uint32_t c = ngtab_count(&tabs[r], h, j);
                if (c > maxr) maxr = c;
            }
            correct += h->count[j] < maxr ? h->count[j] : maxr;
        }
        stats[2 + order - 1] = correct;
        stats[6 + order - 1] = (double)h->total;
        for (size_t i = 0; i <= n_refs; i++) ngtab_free(&tabs[i]);
    }
done:
    if (tabs)
        for (size_t i = 0; i <= n_refs; i++) ngtab_free(&tabs[i]);
    free(tabs);
    symseqs_free(seqs, n_refs + 1);
    free(texts);
    return st;
}

static double my_log(double x) { return x == 0.0 ? -9999999999.0 : log(x); }

double tw_bleu_from_stats(const double *stats)
{
    /* BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method='exp') */
    const double sys_len = stats[0], ref_len = stats[1];
    const double *correct = stats + 2, *total = stats + 6;
    double bp = 1.0;
    if (sys_len < ref_len) bp = sys_len > 0 ? exp(1.0 - ref_len / sys_len) : 0.0;
    double prec[4] = {0, 0, 0, 0};
    bool any = false;
    for (int n = 0; n < 4; n++) any = any || correct[n] != 0;
    if (!any) return 0.0;
    double smooth_mteval = 1.0;
    for (int n = 0; n < 4; n++) {
        if (total[n] == 0) break;
        if (correct[n] == 0) {
            smooth_mteval *= 2;
            prec[n] = 100.0 / (smooth_mteval * total[n]);
        } else {
            prec[n] = 100.0 * correct[n] / total[n];
        }
    }
    double s = 0;
    for (int n = 0; n < 4; n++) s += my_log(prec[n]);
    return bp * exp(s / 4);
}

tw_status tw_bleu_corpus(double *bleu, const char *const *hyps, const char *const *refs, size_t n,
                         size_t n_refs, tw_error *err)
{
    double sum[TW_BLEU_NSTATS] = {0}, one[TW_BLEU_NSTATS];
    for (size_t i = 0; i < n; i++) {
        tw_status st = tw_bleu_stats(one, hyps[i], refs + i * n_refs, n_refs, err);
        if (st) return st;
        for (int j = 0; j < TW_BLEU_NSTATS; j++) sum[j] += one[j];
    }
    *bleu = tw_bleu_from_stats(sum);
    return TW_OK;
}

/* ---- chrF (sacreBLEU metrics/chrf.py) ------------------------------------------ */

double tw_chrf_from_stats(const double *st)
{
    /* CHRF._compute_f_score with eps_smoothing=False: average precision and recall
     * over the orders where both hypothesis and reference have n-grams, then F-beta. */
    const double factor = 4.0;   /* beta ** 2 */
    double avg_prec = 0, avg_rec = 0;
    int eff = 0;
    for (int i = 0; i < 6; i++) {
        double n_hyp = st[3 * i], n_ref = st[3 * i + 1], n_match = st[3 * i + 2];
        if (n_hyp > 0 && n_ref > 0) {
            avg_prec += n_match / n_hyp;
            avg_rec += n_match / n_ref;
            eff++;
        }
    }
    if (eff == 0) avg_prec = avg_rec = 0.0;
    else {
        avg_prec /= eff;
        avg_rec /= eff;
    }
    if (avg_prec + avg_rec != 0) {
        double score = (1 + factor) * avg_prec * avg_rec;
        score /= (factor * avg_prec) + avg_rec;
        return 100 * score;
    }
    return 0.0;
}

tw_status tw_chrf_stats(double *stats, const char *hyp, const char *const *refs, size_t n_refs,
                        tw_error *err)
{
    memset(stats, 0, TW_CHRF_NSTATS * sizeof *stats);
    tw_status st = check_refs(refs, n_refs, err);
    if (st) return st;
    symseq hr[2] = {{0}, {0}};   /* hyp, current reference: one dense symbol space */
    ngtab ht[6], rt[6];
    memset(ht, 0, sizeof ht);
    memset(rt, 0, sizeof rt);
    double best_f = -1.0, cur[TW_CHRF_NSTATS];
    for (size_t ri = 0; ri < n_refs; ri++) {
        for (int q = 0; q < 2; q++) {
            free(hr[q].ids);
            hr[q].ids = NULL;
        }
        if ((st = chars_nospace(&hr[0], hyp, err))) goto done;
        if ((st = chars_nospace(&hr[1], refs[ri], err))) goto done;
        if ((st = densify(hr, 2, err))) goto done;
        int bits = seqs_bits(hr, 2);
        for (size_t n = 1; n <= 6; n++) {
            ngtab_free(&ht[n - 1]);
            ngtab_free(&rt[n - 1]);
            if ((st = ngtab_build(&ht[n - 1], &hr[0], n, bits, err))) goto done;
            if ((st = ngtab_build(&rt[n - 1], &hr[1], n, bits, err))) goto done;
            /* _get_match_statistics: [hyp_count if ref_ngrams else 0, ref total, matches] */
            cur[3 * (n - 1) + 0] = rt[n - 1].total ? (double)ht[n - 1].total : 0.0;
            cur[3 * (n - 1) + 1] = (double)rt[n - 1].total;
            cur[3 * (n - 1) + 2] = (double)ngtab_overlap(&ht[n - 1], &rt[n - 1]);
        }
        double f = tw_chrf_from_stats(cur);
        if (f > best_f) {   /* the first reference wins ties, as in sacreBLEU */
            best_f = f;
            memcpy(stats, cur, sizeof cur);
        }
    }
done:
    for (int n = 0; n < 6; n++) {
        ngtab_free(&ht[n]);
        ngtab_free(&rt[n]);
    }
    free(hr[0].ids);
    free(hr[1].ids);
    return st;
}

tw_status tw_chrf_corpus(double *chrf, const char *const *hyps, const char *const *refs, size_t n,
                         size_t n_refs, tw_error *err)
{
    double sum[TW_CHRF_NSTATS] = {0}, one[TW_CHRF_NSTATS];
    for (size_t i = 0; i < n; i++) {
        tw_status st = tw_chrf_stats(one, hyps[i], refs + i * n_refs, n_refs, err);
        if (st) return st;
        for (int j = 0; j < TW_CHRF_NSTATS; j++) sum[j] += one[j];
    }
    *chrf = tw_chrf_from_stats(sum);
    return TW_OK;
}

/* ---- ROUGE (rouge-score rouge_scorer.py) -------------------------------------- */

static double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

static size_t lcs_len(const symseq *a, const symseq *b, uint32_t *row)
{
    /* row (b->len + 1): the previous DP row, updated in place (O(|a||b|) time). */
    memset(row, 0, (b->len + 1) * sizeof *row);
    for (size_t i = 1; i <= a->len; i++) {
        uint32_t diag = 0;   /* table[i-1][j-1] */
        for (size_t j = 1; j <= b->len; j++) {
            uint32_t up = row[j];
            if (a->ids[i - 1] == b->ids[j - 1]) row[j] = diag + 1;
            else if (row[j - 1] > row[j]) row[j] = row[j - 1];
            diag = up;
        }
    }
    return row[b->len];
}

tw_status tw_rouge(double *out, const char *hyp, const char *const *refs, size_t n_refs, tw_error *err)
{
    out[0] = out[1] = out[2] = 0;
    tw_status st = check_refs(refs, n_refs, err);
    if (st) return st;
    const char **texts = hyp_refs(hyp, refs, n_refs, err);
    if (!texts) return TW_ERR_NOMEM;
    symseq *seqs = NULL;
    ngtab h[2], r[2];
    memset(h, 0, sizeof h);
    memset(r, 0, sizeof r);
    uint32_t *row = NULL;
    if ((st = tokenize_intern(&seqs, texts, n_refs + 1, TOK_ROUGE, err))) goto done;
    int bits = seqs_bits(seqs, n_refs + 1);
    for (size_t n = 1; n <= 2; n++)
        if ((st = ngtab_build(&h[n - 1], &seqs[0], n, bits, err))) goto done;
    for (size_t ri = 1; ri <= n_refs; ri++) {
        const symseq *t = &seqs[ri];
        for (size_t n = 1; n <= 2; n++) {
            ngtab_free(&r[n - 1]);
            if ((st = ngtab_build(&r[n - 1], t, n, bits, err))) goto done;
            /* _score_ngrams: intersection / max(count, 1) */
            double inter = (double)ngtab_overlap(&r[n - 1], &h[n - 1]);
            double p = inter / (double)(h[n - 1].total > 1 ? h[n - 1].total : 1);
            double rc = inter / (double)(r[n - 1].total > 1 ? r[n - 1].total : 1);
            double f = fmeasure(p, rc);
            if (f > out[n - 1]) out[n - 1] = f;   /* score_multi: max f-measure */
        }
        /* _score_lcs: zero when either side has no tokens */
        if (t->len && seqs[0].len) {
            free(row);
            row = tw_malloc((seqs[0].len + 1) * sizeof *row, err);
            if (!row) { st = TW_ERR_NOMEM; goto done; }
            double lcs = (double)lcs_len(t, &seqs[0], row);
            double f = fmeasure(lcs / (double)seqs[0].len, lcs / (double)t->len);
            if (f > out[2]) out[2] = f;
        }
    }
done:
    for (int n = 0; n < 2; n++) {
        ngtab_free(&h[n]);
        ngtab_free(&r[n]);
    }
    free(row);
    symseqs_free(seqs, n_refs + 1);
    free(texts);
    return st;
}

/* ---- SQuAD exact match and token F1 (SQuAD v2.0 evaluate script) --------------- */

tw_status tw_token_f1(double *f1, const char *hyp, const char *const *refs, size_t n_refs, tw_error *err)
{
    *f1 = 0;
    tw_status st = check_refs(refs, n_refs, err);
    if (st) return st;
    const char **texts = hyp_refs(hyp, refs, n_refs, err);
    if (!texts) return TW_ERR_NOMEM;
    symseq *seqs = NULL;
    ngtab h = {0}, g = {0};
    if ((st = tokenize_intern(&seqs, texts, n_refs + 1, TOK_SQUAD, err))) goto done;
    int bits = seqs_bits(seqs, n_refs + 1);
    if ((st = ngtab_build(&h, &seqs[0], 1, bits, err))) goto done;
    for (size_t ri = 1; ri <= n_refs; ri++) {
        double f;
        if (seqs[0].len == 0 || seqs[ri].len == 0) {
            f = seqs[0].len == seqs[ri].len;   /* int(gold_toks == pred_toks) */
        } else {
            ngtab_free(&g);
            if ((st = ngtab_build(&g, &seqs[ri], 1, bits, err))) goto done;
            double same = (double)ngtab_overlap(&h, &g);
            f = same == 0 ? 0.0 : fmeasure(same / (double)seqs[0].len, same / (double)seqs[ri].len);
        }
        if (f > *f1) *f1 = f;   /* metric_max_over_ground_truths */
    }
done:
    ngtab_free(&h);
    ngtab_free(&g);
    symseqs_free(seqs, n_refs + 1);
    free(texts);
    return st;
}

tw_status tw_gen_item_score(tw_gen_item *out, const char *hyp, const char *const *refs,
                            size_t n_refs, tw_error *err)
{
    memset(out, 0, sizeof *out);
    tw_status st = check_refs(refs, n_refs, err);
    if (st) return st;
    if (!hyp) hyp = "";
    tw_buf nh = {0}, nr = {0};
    if (tw_norm_squad(&nh, hyp) != TW_OK) { st = TW_ERR_NOMEM; goto done; }
    for (size_t r = 0; r < n_refs; r++) {
        if (strcmp(hyp, refs[r]) == 0) out->exact = 1;
        if (tw_norm_squad(&nr, refs[r]) != TW_OK) { st = TW_ERR_NOMEM; goto done; }
        if (nh.len == nr.len && (nh.len == 0 || memcmp(nh.data, nr.data, nh.len) == 0)) out->normalized = 1;
    }
    if ((st = tw_token_f1(&out->token_f1, hyp, refs, n_refs, err))) goto done;
    if ((st = tw_rouge(out->rouge, hyp, refs, n_refs, err))) goto done;
    if ((st = tw_bleu_stats(out->bleu, hyp, refs, n_refs, err))) goto done;
    st = tw_chrf_stats(out->chrf, hyp, refs, n_refs, err);
done:
    if (st == TW_ERR_NOMEM && err && err->status != TW_ERR_NOMEM)
        tw_error_set(err, TW_ERR_NOMEM, "out of memory scoring a generation item");
    tw_buf_free(&nh);
    tw_buf_free(&nr);
    return st;
}
