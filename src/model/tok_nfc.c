/* tok_nfc.c — the Unicode pieces the tokenizer needs and PCRE2 does not give:
 *  - UTF-8 checking and repair with "maximal subpart" replacement (Unicode 14 §3.9,
 *    "U+FFFD Substitution of Maximal Subparts"), which is what Python's
 *    bytes.decode("utf-8", errors="replace") and Rust's String::from_utf8_lossy do;
 *  - NFC normalization (UAX #15: canonical decomposition, canonical ordering,
 *    canonical composition), for HF's NFC normalizer (Qwen2/3).
 * Tables: tok_nfc_data.h, generated from Python's unicodedata (version in
 * TW_NFC_UNICODE_VERSION). Deliberately not here: NFKC/NFD as normalizers, case
 * folding, any other Unicode property (PCRE2 provides \p{L}, \p{N}, \s). */
#include "model/tok_internal.h"
#include "model/tok_nfc_data.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ------------------------------------------------------------- */

/* Decode one character at s (n >= 1 bytes left). Returns the bytes consumed; for an
 * invalid sequence *cp = U+FFFD and the length is that of the maximal subpart (the
 * longest prefix of a well-formed sequence, at least 1). */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;   /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;   /* <= U+10FFFF */
    } else { *cp = 0xFFFD; return 1; }
    if (n < 2 || s[1] < lo || s[1] > hi) { *cp = 0xFFFD; return 1; }
    v = (v << 6) | (s[1] & 0x3F);
    for (int i = 2; i < need; i++) {
        if ((size_t)i >= n || (s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return i; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return need;
}

bool tok_utf8_check(const char *str, size_t n, size_t *bad_off)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) { i++; continue; }
        uint32_t cp;
        int k = utf8_next(s + i, n - i, &cp);
        if (cp == 0xFFFD && !(k == 3 && s[i] == 0xEF)) {
            if (bad_off) *bad_off = i;
            return false;
        }
        i += (size_t)k;
    }
    return true;
}

size_t tok_utf8_repair(const char *str, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        int k = utf8_next(s + i, n - i, &cp);
        if (cp == 0xFFFD) o += (size_t)tw_utf8_encode(0xFFFD, out + o);
        else { memcpy(out + o, s + i, (size_t)k); o += (size_t)k; }
        i += (size_t)k;
    }
    return o;
}

/* ---- NFC ------------------------------------------------------------------- */
#define SBASE 0xAC00u
#define LBASE 0x1100u
#define VBASE 0x1161u
#define TBASE 0x11A7u
#define LCOUNT 19u
#define VCOUNT 21u
#define TCOUNT 28u
#define NCOUNT (VCOUNT * TCOUNT)
#define SCOUNT (LCOUNT * NCOUNT)

static bool in_ranges(const uint32_t *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[2 * mid]) hi = mid - 1;
        else if (cp > r[2 * mid + 1]) lo = mid + 1;
        else return true;
    }
    return false;
}

static unsigned ccc_of(uint32_t cp)
{
    if (cp < 0x300) return 0;
    int lo = 0, hi = NFC_CCC_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < nfc_ccc[3 * mid]) hi = mid - 1;
        else if (cp > nfc_ccc[3 * mid + 1]) lo = mid + 1;
        else return nfc_ccc[3 * mid + 2];
    }
    return 0;
}

/* Full canonical decomposition of cp: returns the pool slice, or NULL. */
static const uint32_t *decomp_of(uint32_t cp, int *len)
{
    int lo = 0, hi = NFC_DEC_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint32_t c = nfc_dec[3 * mid];
        if (cp < c) hi = mid - 1;
        else if (cp > c) lo = mid + 1;
        else { *len = (int)nfc_dec[3 * mid + 2]; return nfc_pool + nfc_dec[3 * mid + 1]; }
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    /* Hangul: L + V → LV, LV + T → LVT (UAX #15 / Unicode §3.12) */
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE && b < TBASE + TCOUNT)
        return a + (b - TBASE);
    uint64_t key = ((uint64_t)a << 21) | b;
    int lo = 0, hi = NFC_COMP_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint64_t k = nfc_comp[2 * mid];
        if (key < k) hi = mid - 1;
        else if (key > k) lo = mid + 1;
        else return (uint32_t)nfc_comp[2 * mid + 1];
    }
    return 0;
}

bool tok_nfc_maybe(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0xCC) {   /* below U+0300: never changes */
            i += s[i] < 0x80 ? 1 : 2;
            continue;
        }
        uint32_t cp;
        i += (size_t)utf8_next(s + i, n - i, &cp);
        if (in_ranges(nfc_maybe, NFC_MAYBE_N, cp)) return true;
    }
    return false;
}

tw_status tok_nfc(const char *str, size_t n, tw_buf *out)
{
    const unsigned char *s = (const unsigned char *)str;
    /* decomposition: at most 18 code points per character (U+FDFA is compatibility only;
     * canonical ones stay far below), so 4 per byte is a safe bound */
    size_t cap = 4 * n + 4;
    uint32_t *cps = malloc(cap * sizeof *cps);
    if (!cps) return TW_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += (size_t)utf8_next(s + i, n - i, &cp);
        if (cp >= SBASE && cp < SBASE + SCOUNT) {
            uint32_t si = cp - SBASE;
            cps[m++] = LBASE + si / NCOUNT;
            cps[m++] = VBASE + (si % NCOUNT) / TCOUNT;
            if (si % TCOUNT) cps[m++] = TBASE + si % TCOUNT;
            continue;
        }
        int dl;
        const uint32_t *d = cp < 0xC0 ? NULL : decomp_of(cp, &dl);
        if (d) { memcpy(cps + m, d, (size_t)dl * sizeof *d); m += (size_t)dl; }
        else cps[m++] = cp;
    }
    /* canonical ordering: stable insertion sort of each run of non-starters by ccc */
    for (size_t i = 1; i < m; i++) {
        unsigned c = ccc_of(cps[i]);
        if (c == 0) continue;
        size_t j = i;
        uint32_t x = cps[i];
        while (j > 0) {
            unsigned p = ccc_of(cps[j - 1]);
            if (p == 0 || p <= c) break;
            cps[j] = cps[j - 1];
            j--;
        }
        cps[j] = x;
    }
    /* canonical composition: C combines with the last starter S unless blocked by an
     * intervening B with ccc(B) == 0 or ccc(B) >= ccc(C) */
    size_t w = 0;
    long starter = -1;
    int last_cc = -1;   /* ccc of the last character kept after the starter; -1: none */
    for (size_t i = 0; i < m; i++) {
        uint32_t c = cps[i];
        int cc = (int)ccc_of(c);
        if (starter >= 0 && (last_cc == -1 || (last_cc != 0 && last_cc < cc))) {
            uint32_t k = compose(cps[starter], c);
            if (k) { cps[starter] = k; continue; }
        }
        if (cc == 0) { starter = (long)w; last_cc = -1; }
        else last_cc = cc;
        cps[w++] = c;
    }
    tw_buf_clear(out);
    tw_status st = tw_buf_reserve(out, 4 * w + 1);
    if (st == TW_OK) {
        for (size_t i = 0; i < w; i++) out->len += (size_t)tw_utf8_encode(cps[i], out->data + out->len);
        out->data[out->len] = '\0';
    }
    free(cps);
    return st;
}
