/* features.c — hashed word and char_wb n-grams of one text (see features.h).
 *
 * Pipeline for one text, no allocation once the scratch has grown:
 *   UTF-8 → lowercased code points → (a) word tokens (runs of word characters of at
 *   least word_min_len code points, like scikit-learn's (?u)\b\w\w+\b) → token hashes
 *   → word n-gram hashes; (b) whitespace-separated words padded with ' ' → rolling
 *   hash over code points → char n-gram hashes (exactly the multiset of n-grams that
 *   scikit-learn's analyzer="char_wb" produces, including its rule that a padded word
 *   shorter than n is counted once as a whole) → bucket ids → dedup with counts.
 *
 * N-grams are hashed incrementally: the hash of an n-gram extends the hash of its
 * (n-1)-gram prefix by one unit, so a word of L code points costs L*(max-min+1)
 * multiplies, and no n-gram string is ever built.
 *
 * Deliberately not here: weighting (tf-idf), vocabulary, normalisation (classic.c).
 * Character classes are approximations of Python's str.isalnum()/str.isspace()
 * that are exact for ASCII and Latin; see is_word()/is_space().
 */
#include "arms/features.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* ---- hashing (part of the model format: TW_FEAT_HASH_VERSION) ------------ */
#define K1 0xff51afd7ed558ccdULL
#define K2 0xc4ceb9fe1a85ec53ULL
#define SEED_TOKEN 0x243f6a8885a308d3ULL
#define SEED_WORD 0x13198a2e03707344ULL
#define SEED_CHAR 0xa4093822299f31d0ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* murmur3 fmix64 */
static inline uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33; h *= K1;
    h ^= h >> 33; h *= K2;
    h ^= h >> 33;
    return h;
}

static inline uint64_t step32(uint64_t h, uint32_t cp)
{
    return rotl64(h ^ ((uint64_t)cp * K1), 29) * K2;
}

static inline uint64_t step64(uint64_t h, uint64_t t)
{
    return rotl64(h ^ fmix64(t), 31) * K1;
}

uint64_t tw_feat_checksum(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0x6a09e667f3bcc908ULL ^ (n * K2);
    while (n >= 8) {
        uint64_t w = 0;
        for (int i = 0; i < 8; i++) w |= (uint64_t)p[i] << (8 * i);
        h = (h ^ fmix64(w + 0x9E3779B97F4A7C15ULL)) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
    h = (h ^ fmix64(w + n)) * 0x94d049bb133111ebULL;
    return fmix64(h);
}

/* ---- character classes --------------------------------------------------- */
uint32_t tw_feat_lower(uint32_t c)
{
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 0x20;           /* Latin-1 */
    if (c >= 0x100 && c <= 0x17F) {                                     /* Latin Extended-A */
        if (c == 0x130) return 'i';                                      /* İ → i (simple fold) */
        if (c == 0x178) return 0xFF;                                     /* Ÿ → ÿ */
        if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
            return (c & 1) ? c : c + 1;
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
            return (c & 1) ? c + 1 : c;
        return c;
    }
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 0x20;         /* Greek */
    if (c >= 0x410 && c <= 0x42F) return c + 0x20;                       /* Cyrillic */
    if (c >= 0x400 && c <= 0x40F) return c + 0x50;
    return c;
}

/* Python's str.isspace() set (what str.split() splits on). */
static inline int is_space(uint32_t c)
{
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Word characters (\w): ASCII [0-9A-Za-z_]; above ASCII everything that is not
 * space, punctuation or a symbol in the common blocks (Latin-1 punctuation,
 * General Punctuation, currency, arrows/math/technical, box drawing/shapes/dingbats,
 * CJK punctuation, fullwidth ASCII punctuation, emoji), plus the Latin-1 letters
 * and digits ª ² ³ µ ¹ º ¼ ½ ¾ that Python counts as alphanumeric. */
static inline int is_word(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c <= 0xBF)
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
               (c >= 0xBC && c <= 0xBE);
    if (c == 0xD7 || c == 0xF7) return 0;
    if (c < 0x2000) return !is_space(c);
    if (c <= 0x206F) return 0;                       /* General Punctuation (incl. ZWJ) */
    if (c >= 0x20A0 && c <= 0x20CF) return 0;        /* currency */
    if (c >= 0x2190 && c <= 0x23FF) return 0;        /* arrows, math operators, technical */
    if (c >= 0x2500 && c <= 0x27BF) return 0;        /* box drawing, shapes, dingbats */
    if (c >= 0x3000 && c <= 0x303F) return 0;        /* CJK punctuation */
    if (c >= 0xFE00 && c <= 0xFE0F) return 0;        /* variation selectors */
    if (c >= 0xFE30 && c <= 0xFE4F) return 0;
    if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40 && c != 0xFF3F) || (c >= 0xFF5B && c <= 0xFF65))
        return 0;                                    /* fullwidth punctuation */
    if (c == 0xFFFD) return 0;
    if (c >= 0x1F000 && c <= 0x1FAFF) return 0;      /* emoji and pictographs */
    return 1;
}

/* ---- config ---------------------------------------------------------------- */
tw_status tw_feat_config_check(const tw_feat_config *c, tw_error *err)
{
    if (c->hash_bits < TW_FEAT_MIN_BITS || c->hash_bits > TW_FEAT_MAX_BITS)
        return tw_error_set(err, TW_ERR_INVALID, "hash_bits = %d: must be in [%d, %d]",
                            c->hash_bits, TW_FEAT_MIN_BITS, TW_FEAT_MAX_BITS);
    if (c->word_ngram_max < 0 || c->word_ngram_max > TW_FEAT_MAX_NGRAM)
        return tw_error_set(err, TW_ERR_INVALID, "word_ngram_max = %d: must be in [0, %d]",
                            c->word_ngram_max, TW_FEAT_MAX_NGRAM);
    if (c->word_min_len < 1 || c->word_min_len > 64)
        return tw_error_set(err, TW_ERR_INVALID, "word_min_len = %d: must be in [1, 64]", c->word_min_len);
    if (c->char_ngram_max != 0 &&
        (c->char_ngram_min < 1 || c->char_ngram_max < c->char_ngram_min || c->char_ngram_max > TW_FEAT_MAX_NGRAM))
        return tw_error_set(err, TW_ERR_INVALID,
                            "char n-gram range [%d, %d]: need 1 <= min <= max <= %d (max = 0 disables)",
                            c->char_ngram_min, c->char_ngram_max, TW_FEAT_MAX_NGRAM);
    if (c->word_ngram_max == 0 && c->char_ngram_max == 0)
        return tw_error_set(err, TW_ERR_INVALID, "no features: word_ngram_max and char_ngram_max are both 0");
    return TW_OK;
}

/* ---- scratch ---------------------------------------------------------------- */
void tw_feat_scratch_free(tw_feat_scratch *s)
{
    if (!s) return;
    free(s->cps);
    free(s->toks);
    free(s->keys);
    free(s->tab_key);
    free(s->tab_idx);
    free(s->tab_stamp);
    free(s->out_bucket);
    free(s->out_count);
    memset(s, 0, sizeof *s);
}

static tw_status grow(void *pp, size_t *cap, size_t need, size_t elem, tw_error *err)
{
    if (need <= *cap) return TW_OK;
    return tw_grow((void **)pp, cap, need, elem, err);
}

static inline void emit(tw_feat_scratch *s, size_t *nk, uint32_t key)
{
    s->keys[(*nk)++] = key;
}

static inline uint32_t to_bucket(uint64_t h, int bits, uint32_t block)
{
    return (uint32_t)(h >> (64 - (bits - 1))) | (block << (bits - 1));
}

tw_status tw_feat_extract(const tw_feat_config *cfg, const char *text, size_t len,
                          tw_feat_scratch *s, tw_error *err)
{
    const unsigned char *t = (const unsigned char *)text;
    const int bits = cfg->hash_bits;
    s->n = 0;

    /* 1. decode + lowercase; m <= len code points, plus 2 for char_wb padding. */
    if (grow(&s->cps, &s->cps_cap, len + 3, sizeof *s->cps, err)) return TW_ERR_NOMEM;
    uint32_t *cp = s->cps + 1;          /* cp[-1] is free for padding */
    size_t m = 0;
    for (size_t i = 0; i < len;) {
        uint32_t c = t[i];
        if (c < 0x80) {
            cp[m++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
            i++;
        } else {
            int k = tw_utf8_decode(t + i, len - i, &c);
            cp[m++] = tw_feat_lower(c);
            i += (size_t)k;
        }
    }

    /* 2. upper bound of emitted keys, so the loops below never check capacity. */
    size_t nw = (size_t)cfg->word_ngram_max;
    size_t nc = cfg->char_ngram_max ? (size_t)(cfg->char_ngram_max - cfg->char_ngram_min + 1) : 0;
    size_t bound = m * nw + (2 * m + 2) * nc + 1;   /* words: <= m tokens; char: sum(L) <= 2m */
    if (grow(&s->keys, &s->keys_cap, bound, sizeof *s->keys, err)) return TW_ERR_NOMEM;
    size_t nk = 0;

    /* 3. word n-grams */
    if (nw > 0) {
        if (grow(&s->toks, &s->toks_cap, m + 1, sizeof *s->toks, err)) return TW_ERR_NOMEM;
        size_t nt = 0;
        for (size_t i = 0; i < m;) {
            if (!is_word(cp[i])) { i++; continue; }
            uint64_t h = SEED_TOKEN;
            size_t tl = 0;
            while (i < m && is_word(cp[i])) { h = step32(h, cp[i]); i++; tl++; }
            if (tl >= (size_t)cfg->word_min_len) s->toks[nt++] = fmix64(h ^ tl);
        }
        for (size_t i = 0; i < nt; i++) {
            uint64_t g = SEED_WORD;
            for (size_t n = 1; n <= nw && i + n <= nt; n++) {
                g = step64(g, s->toks[i + n - 1]);
                emit(s, &nk, to_bucket(fmix64(g ^ (n * K2)), bits, 0));
            }
        }
    }

    /* 4. char_wb n-grams over each padded whitespace-separated word */
    if (nc > 0) {
        const size_t cmin = (size_t)cfg->char_ngram_min, cmax = (size_t)cfg->char_ngram_max;
        for (size_t i = 0; i < m;) {
            if (is_space(cp[i])) { i++; continue; }
            size_t a = i;
            while (i < m && !is_space(cp[i])) i++;
            /* padded word occupies cp[a-1 .. i] ; save and restore the neighbours */
            uint32_t save_l = cp[(ptrdiff_t)a - 1], save_r = cp[i];
            cp[(ptrdiff_t)a - 1] = ' ';
            cp[i] = ' ';
            const uint32_t *w = cp + a - 1;
            size_t L = i - a + 2;
            if (L < cmin) {
                uint64_t h = SEED_CHAR;
                for (size_t k = 0; k < L; k++) h = step32(h, w[k]);
                emit(s, &nk, to_bucket(fmix64(h ^ (L * K2)), bits, 1));
            } else {
                for (size_t st = 0; st < L; st++) {
                    uint64_t h = SEED_CHAR;
                    size_t lim = L - st < cmax ? L - st : cmax;
                    for (size_t n = 1; n <= lim; n++) {
                        h = step32(h, w[st + n - 1]);
                        if (n >= cmin) emit(s, &nk, to_bucket(fmix64(h ^ (n * K2)), bits, 1));
                    }
                }
            }
            cp[(ptrdiff_t)a - 1] = save_l;
            cp[i] = save_r;
        }
    }

    /* 5. dedup with counts, first-occurrence order */
    size_t need = 64;
    while (need < 2 * nk) need <<= 1;
    if (need > s->tab_cap) {
        free(s->tab_key); free(s->tab_idx); free(s->tab_stamp);
        s->tab_key = malloc(need * sizeof *s->tab_key);
        s->tab_idx = malloc(need * sizeof *s->tab_idx);
        s->tab_stamp = calloc(need, sizeof *s->tab_stamp);
        if (!s->tab_key || !s->tab_idx || !s->tab_stamp) {
            free(s->tab_key); free(s->tab_idx); free(s->tab_stamp);
            s->tab_key = s->tab_idx = s->tab_stamp = NULL;
            s->tab_cap = 0;
            return tw_error_set(err, TW_ERR_NOMEM, "out of memory (feature table of %zu slots)", need);
        }
        s->tab_cap = need;
        s->stamp = 0;
    }
    if (++s->stamp == 0) {           /* wrapped: forget every slot */
        memset(s->tab_stamp, 0, s->tab_cap * sizeof *s->tab_stamp);
        s->stamp = 1;
    }
    if (nk + 1 > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 256;
        while (cap < nk + 1) cap *= 2;
        uint32_t *ob = realloc(s->out_bucket, cap * sizeof *ob);
        if (ob) s->out_bucket = ob;
        uint32_t *oc = ob ? realloc(s->out_count, cap * sizeof *oc) : NULL;
        if (oc) s->out_count = oc;
        if (!ob || !oc) return tw_error_set(err, TW_ERR_NOMEM, "out of memory (%zu feature slots)", cap);
        s->out_cap = cap;
    }
    const size_t mask = s->tab_cap - 1;
    const uint32_t stamp = s->stamp;
    size_t n = 0;
    for (size_t k = 0; k < nk; k++) {
        uint32_t key = s->keys[k];
        size_t h = (size_t)((key * 0x9E3779B1u) ^ (key >> 15)) & mask;
        for (;;) {
            if (s->tab_stamp[h] != stamp) {
                s->tab_stamp[h] = stamp;
                s->tab_key[h] = key;
                s->tab_idx[h] = (uint32_t)n;
                s->out_bucket[n] = key;
                s->out_count[n] = 1;
                n++;
                break;
            }
            if (s->tab_key[h] == key) {
                s->out_count[s->tab_idx[h]]++;
                break;
            }
            h = (h + 1) & mask;
        }
    }
    s->n = n;
    return TW_OK;
}
