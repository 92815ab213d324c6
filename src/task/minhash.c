/* minhash.c — near-duplicate search for short texts (Broder 1997 MinHash; LSH banding as
 * in Leskovec, Rajaraman & Ullman, "Mining of Massive Datasets", ch. 3).
 *
 * Pipeline: normalize → shingle set (sorted unique 64-bit hashes) → signature of
 * bands*rows 32-bit minima, one per seeded hash function h_j(x) = mix(x ^ salt_j) →
 * each band's rows hashed to one 64-bit key → per band a sorted (key, item) array.
 * A query walks its band keys, collects candidates (deduplicated with a stamp array, so no
 * pair set is ever built) and verifies each with the exact Jaccard of the shingle sets.
 *
 * Deliberately not done: within-set clustering (the audit only needs A↔B matches), weighted
 * or multiset Jaccard, and any O(n²) scan — outside LSH buckets nothing is compared. */
#include "task/minhash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *tw_shingle_kind_str(tw_shingle_kind k)
{
    return k == TW_SHINGLE_CHAR ? "char" : "word";
}

tw_minhash_params tw_minhash_default_params(void)
{
    tw_minhash_params p = {
        .shingle = TW_SHINGLE_WORD, .k = 1, .bands = 32, .rows = 4, .threshold = 0.8, .seed = 1,
    };
    return p;
}

tw_status tw_minhash_params_check(const tw_minhash_params *p, tw_error *err)
{
    if (p->shingle != TW_SHINGLE_WORD && p->shingle != TW_SHINGLE_CHAR)
        return tw_error_set(err, TW_ERR_INVALID, "near-dup: unknown shingle kind %d", (int)p->shingle);
    if (p->k < 1 || p->k > 32)
        return tw_error_set(err, TW_ERR_INVALID, "near-dup: shingle size k=%u must be in 1..32", p->k);
    if (p->bands < 1 || p->rows < 1 || (size_t)p->bands * p->rows > 1024)
        return tw_error_set(err, TW_ERR_INVALID,
                            "near-dup: bands=%u x rows=%u must be >= 1 each and at most 1024 hash functions",
                            p->bands, p->rows);
    if (!(p->threshold > 0.0 && p->threshold <= 1.0))
        return tw_error_set(err, TW_ERR_INVALID, "near-dup: threshold %g must be in (0, 1]", p->threshold);
    return TW_OK;
}

double tw_lsh_candidate_prob(double s, unsigned bands, unsigned rows)
{
    return 1.0 - pow(1.0 - pow(s, (double)rows), (double)bands);
}

/* ---- shingles ------------------------------------------------------------ */

#define SHINGLE_SEED 0x5348494e474c45ULL   /* "SHINGLE": fixed, independent of the user seed */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Shingles of an already-normalized text t[0..n) (single spaces between words, no leading
 * or trailing space). `pos` is scratch of n+1 entries. Returns the count written to out
 * (cap >= n + 1), sorted and unique. */
static size_t shingle_norm(const char *t, size_t n, tw_shingle_kind kind, unsigned k,
                           size_t *pos, uint64_t *out)
{
    if (n == 0) return 0;
    size_t units = 0, m = 0;
    if (kind == TW_SHINGLE_WORD) {
        /* pos[i] = start of word i; pos[units] = n + 1 (one past the virtual trailing space) */
        pos[units++] = 0;
        for (size_t i = 0; i < n; i++)
            if (t[i] == ' ') pos[units++] = i + 1;
        pos[units] = n + 1;
        if (units < k) {
            out[m++] = tw_hash64(t, n, SHINGLE_SEED);
        } else {
            for (size_t i = 0; i + k <= units; i++) {
                size_t a = pos[i], b = pos[i + k] - 1;   /* words i..i+k-1 without trailing space */
                out[m++] = tw_hash64(t + a, b - a, SHINGLE_SEED);
            }
        }
    } else {
        for (size_t i = 0; i < n;) {   /* code point starts */
            pos[units++] = i;
            uint32_t cp;
            i += (size_t)tw_utf8_decode((const unsigned char *)t + i, n - i, &cp);
        }
        pos[units] = n;
        if (units < k) {
            out[m++] = tw_hash64(t, n, SHINGLE_SEED);
        } else {
            for (size_t i = 0; i + k <= units; i++)
                out[m++] = tw_hash64(t + pos[i], pos[i + k] - pos[i], SHINGLE_SEED);
        }
    }
    qsort(out, m, sizeof *out, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (u == 0 || out[u - 1] != out[i]) out[u++] = out[i];
    return u;
}

/* Scratch for one text: normalized bytes, unit positions, shingle hashes. */
typedef struct scratch {
    char *norm;
    size_t *pos;
    uint64_t *sh;
    size_t cap;      /* texts up to cap-1 bytes fit */
} scratch;

static tw_status scratch_fit(scratch *s, size_t len, tw_error *err)
{
    if (len + 2 <= s->cap) return TW_OK;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < len + 2) cap *= 2;
    char *nn = realloc(s->norm, cap);
    if (!nn) return tw_error_set(err, TW_ERR_NOMEM, "near-dup: out of memory for a %zu-byte text", len);
    s->norm = nn;
    size_t *np = realloc(s->pos, cap * sizeof *np);
    if (!np) return tw_error_set(err, TW_ERR_NOMEM, "near-dup: out of memory for a %zu-byte text", len);
    s->pos = np;
    uint64_t *ns = realloc(s->sh, cap * sizeof *ns);
    if (!ns) return tw_error_set(err, TW_ERR_NOMEM, "near-dup: out of memory for a %zu-byte text", len);
    s->sh = ns;
    s->cap = cap;
    return TW_OK;
}

static void scratch_free(scratch *s)
{
    free(s->norm);
    free(s->pos);
    free(s->sh);
    memset(s, 0, sizeof *s);
}

/* Shingle a raw text into s->sh; returns the count. */
static tw_status scratch_shingle(scratch *s, const char *text, size_t len, tw_shingle_kind kind,
                                 unsigned k, size_t *count, tw_error *err)
{
    tw_status st = scratch_fit(s, len, err);
    if (st) return st;
    size_t n = tw_normalize_text(text ? text : "", text ? len : 0, s->norm);
    *count = shingle_norm(s->norm, n, kind, k, s->pos, s->sh);
    return TW_OK;
}

tw_status tw_shingle_set(const char *text, size_t len, tw_shingle_kind kind, unsigned k,
                         uint64_t **out, size_t *n, tw_error *err)
{
    *out = NULL;
    *n = 0;
    if (k < 1) return tw_error_set(err, TW_ERR_INVALID, "shingle size must be >= 1");
    scratch s = {0};
    size_t m = 0;
    tw_status st = scratch_shingle(&s, text, len, kind, k, &m, err);
    if (st == TW_OK && m > 0) {
        *out = malloc(m * sizeof **out);
        if (!*out) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory for %zu shingles", m);
        else {
            memcpy(*out, s.sh, m * sizeof **out);
            *n = m;
        }
    }
    scratch_free(&s);
    return st;
}

double tw_jaccard_sorted(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    if (na == 0 && nb == 0) return 0.0;
    size_t i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) i++;
        else if (a[i] > b[j]) j++;
        else { inter++; i++; j++; }
    }
    return (double)inter / (double)(na + nb - inter);
}

/* ---- signatures and the LSH index ------------------------------------------ */

typedef struct band_entry {
    uint64_t key;
    uint32_t item;
} band_entry;

struct tw_nd_index {
    tw_minhash_params p;
    size_t n;                 /* texts given to build */
    unsigned nperm;           /* bands * rows */
    uint64_t *salt;           /* (nperm) */
    /* shingle sets, flattened: text i owns sh[sh_off[i] .. sh_off[i+1]) */
    size_t *sh_off;           /* (n + 1) */
    uint64_t *sh;
    uint32_t *sig;            /* (n, nperm) */
    band_entry *band;         /* (bands, n_indexed), each band sorted by (key, item) */
    size_t n_indexed;
    uint32_t *stamp;          /* (n): query number that last saw item i as a candidate */
    uint32_t qno;
    size_t candidates;
    scratch s;
    uint32_t *qsig;           /* (nperm) */
};

/* sig (nperm) = per hash function, the minimum over the set of the top 32 bits of
 * mix(x ^ salt_j). Empty sets give all-ones (never indexed). */
static void signature(const uint64_t *sh, size_t m, const uint64_t *salt, unsigned nperm, uint32_t *sig)
{
    for (unsigned j = 0; j < nperm; j++) sig[j] = UINT32_MAX;
    for (size_t i = 0; i < m; i++) {
        uint64_t x = sh[i];
        for (unsigned j = 0; j < nperm; j++) {
            uint32_t h = (uint32_t)(tw_hash_mix(x ^ salt[j]) >> 32);
            if (h < sig[j]) sig[j] = h;
        }
    }
}

static uint64_t band_key(const uint32_t *sig, unsigned band, unsigned rows)
{
    return tw_hash64(sig + (size_t)band * rows, (size_t)rows * sizeof *sig, 0xB4D0 + band);
}

static int cmp_band(const void *a, const void *b)
{
    const band_entry *x = a, *y = b;
    if (x->key != y->key) return (x->key > y->key) - (x->key < y->key);
    return (x->item > y->item) - (x->item < y->item);
}

void tw_nd_index_free(tw_nd_index *ix)
{
    if (!ix) return;
    free(ix->salt);
    free(ix->sh_off);
    free(ix->sh);
    free(ix->sig);
    free(ix->band);
    free(ix->stamp);
    free(ix->qsig);
    scratch_free(&ix->s);
    free(ix);
}

tw_status tw_nd_index_build(tw_nd_index **out, const char *const *texts, size_t n,
                            const tw_minhash_params *p, tw_error *err)
{
    *out = NULL;
    tw_status st = tw_minhash_params_check(p, err);
    if (st) return st;
    if (n >= UINT32_MAX) return tw_error_set(err, TW_ERR_INVALID, "near-dup: too many texts (%zu)", n);
    tw_nd_index *ix = calloc(1, sizeof *ix);
    if (!ix) return tw_error_set(err, TW_ERR_NOMEM, "near-dup: out of memory");
    ix->p = *p;
    ix->n = n;
    ix->nperm = p->bands * p->rows;
    ix->salt = malloc(ix->nperm * sizeof *ix->salt);
    ix->qsig = malloc(ix->nperm * sizeof *ix->qsig);
    ix->sh_off = malloc((n + 1) * sizeof *ix->sh_off);
    ix->stamp = calloc(n ? n : 1, sizeof *ix->stamp);
    ix->sig = malloc((n ? n : 1) * ix->nperm * sizeof *ix->sig);
    if (!ix->salt || !ix->qsig || !ix->sh_off || !ix->stamp || !ix->sig) {
        tw_nd_index_free(ix);
        return tw_error_set(err, TW_ERR_NOMEM, "near-dup: out of memory indexing %zu texts", n);
    }
    tw_rng rng;
    tw_rng_seed(&rng, p->seed);
    for (unsigned j = 0; j < ix->nperm; j++) ix->salt[j] = tw_rng_next(&rng);

    /* shingle every text; the flat array grows as needed */
    size_t cap = 0, used = 0;
    ix->sh_off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = texts[i] ? texts[i] : "";
        size_t m = 0;
        st = scratch_shingle(&ix->s, t, strlen(t), p->shingle, p->k, &m, err);
        if (st == TW_OK) st = tw_grow((void **)&ix->sh, &cap, used + m, sizeof *ix->sh, err);
        if (st) {
            tw_nd_index_free(ix);
            return st;
        }
        if (m) memcpy(ix->sh + used, ix->s.sh, m * sizeof *ix->sh);
        used += m;
        ix->sh_off[i + 1] = used;
        signature(ix->sh + ix->sh_off[i], m, ix->salt, ix->nperm, ix->sig + i * ix->nperm);
        if (m) ix->n_indexed++;
    }

    ix->band = malloc((ix->n_indexed ? ix->n_indexed : 1) * p->bands * sizeof *ix->band);
    if (!ix->band) {
        tw_nd_index_free(ix);
        return tw_error_set(err, TW_ERR_NOMEM, "near-dup: out of memory for LSH bands");
    }
    for (unsigned b = 0; b < p->bands; b++) {
        band_entry *be = ix->band + (size_t)b * ix->n_indexed;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (ix->sh_off[i + 1] == ix->sh_off[i]) continue;
            be[k].key = band_key(ix->sig + i * ix->nperm, b, p->rows);
            be[k].item = (uint32_t)i;
            k++;
        }
        qsort(be, ix->n_indexed, sizeof *be, cmp_band);
    }
    *out = ix;
    return TW_OK;
}

tw_status tw_nd_index_query(tw_nd_index *ix, const char *text, size_t len, tw_nd_match *m,
                            tw_error *err)
{
    m->index = SIZE_MAX;
    m->jaccard = 0.0;
    m->estimate = 0.0;
    m->candidates = 0;
    size_t nq = 0;
    tw_status st = scratch_shingle(&ix->s, text, len, ix->p.shingle, ix->p.k, &nq, err);
    if (st || nq == 0 || ix->n_indexed == 0) return st;
    const uint64_t *q = ix->s.sh;
    signature(q, nq, ix->salt, ix->nperm, ix->qsig);

    if (++ix->qno == 0) {   /* stamp wrapped: clear so stale stamps cannot alias */
        memset(ix->stamp, 0, ix->n * sizeof *ix->stamp);
        ix->qno = 1;
    }
    const double eps = 1e-9;   /* so that e.g. 4/5 counts as >= 0.8 whatever the rounding */
    for (unsigned b = 0; b < ix->p.bands; b++) {
        uint64_t key = band_key(ix->qsig, b, ix->p.rows);
        const band_entry *be = ix->band + (size_t)b * ix->n_indexed;
        size_t lo = 0, hi = ix->n_indexed;   /* first entry with entry.key >= key */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (be[mid].key < key) lo = mid + 1;
            else hi = mid;
        }
        for (size_t e = lo; e < ix->n_indexed && be[e].key == key; e++) {
            uint32_t it = be[e].item;
            if (ix->stamp[it] == ix->qno) continue;
            ix->stamp[it] = ix->qno;
            m->candidates++;
            const uint64_t *a = ix->sh + ix->sh_off[it];
            size_t na = ix->sh_off[it + 1] - ix->sh_off[it];
            double j = tw_jaccard_sorted(a, na, q, nq);
            if (j + eps < ix->p.threshold) continue;
            if (m->index == SIZE_MAX || j > m->jaccard || (j == m->jaccard && it < m->index)) {
                m->index = it;
                m->jaccard = j;
            }
        }
    }
    ix->candidates += m->candidates;
    if (m->index != SIZE_MAX) {
        const uint32_t *s = ix->sig + m->index * ix->nperm;
        unsigned eq = 0;
        for (unsigned j = 0; j < ix->nperm; j++) eq += s[j] == ix->qsig[j];
        m->estimate = (double)eq / (double)ix->nperm;
    }
    return TW_OK;
}

size_t tw_nd_index_candidates(const tw_nd_index *ix)
{
    return ix ? ix->candidates : 0;
}
