/* text.c — the tokenizers and normalizers that the text metrics are defined over:
 * sacreBLEU's 13a tokenizer, rouge-score's default tokenizer (no stemming) and
 * SQuAD's normalize_answer. Each reproduces the Python reference byte for byte on
 * UTF-8 input, with the exceptions written next to the code (case folding is ASCII
 * only where the reference uses Unicode str.lower()).
 * Deliberately not here: n-gram counting and scores (textgen.c). */
#include "score/metrics.h"

#include <string.h>

bool tw_py_isspace(uint32_t c)
{
    /* Python's str.isspace(): bidi class WS/B/S or category Zs. */
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static size_t cp_at(const char *s, size_t n, size_t i, uint32_t *cp)
{
    return (size_t)tw_utf8_decode((const unsigned char *)s + i, n - i, cp);
}

/* ' '.join(s.split()) — split on Python whitespace, join with one space. Appends. */
static tw_status py_split_join(tw_buf *out, const char *s, size_t n)
{
    size_t i = 0;
    bool first = true;
    while (i < n) {
        uint32_t cp;
        size_t k = cp_at(s, n, i, &cp);
        if (tw_py_isspace(cp)) { i += k; continue; }
        size_t start = i;
        while (i < n) {
            k = cp_at(s, n, i, &cp);
            if (tw_py_isspace(cp)) break;
            i += k;
        }
        if (!first && tw_buf_putc(out, ' ') != TW_OK) return TW_ERR_NOMEM;
        if (tw_buf_append(out, s + start, i - start) != TW_OK) return TW_ERR_NOMEM;
        first = false;
    }
    return TW_OK;
}

/* Length of s.rstrip() (Python whitespace). */
static size_t py_rstrip_len(const char *s, size_t n)
{
    size_t i = 0, end = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = cp_at(s, n, i, &cp);
        i += k;
        if (!tw_py_isspace(cp)) end = i;
    }
    return end;
}

/* out = s with every non-overlapping occurrence of pat replaced by rep (str.replace). */
static tw_status replace_all(tw_buf *out, const char *s, size_t n, const char *pat, const char *rep)
{
    size_t pl = strlen(pat), rl = strlen(rep);
    tw_buf_clear(out);
    size_t i = 0;
    while (i < n) {
        if (i + pl <= n && memcmp(s + i, pat, pl) == 0) {
            if (tw_buf_append(out, rep, rl) != TW_OK) return TW_ERR_NOMEM;
            i += pl;
        } else {
            if (tw_buf_putc(out, s[i]) != TW_OK) return TW_ERR_NOMEM;
            i++;
        }
    }
    return TW_OK;
}

static void buf_swap(tw_buf *a, tw_buf *b)
{
    tw_buf t = *a;
    *a = *b;
    *b = t;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* tokenizer_re.py rule 1: ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 " */
static bool re1_class(unsigned char c)
{
    return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
           (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

/* The four substitutions of sacreBLEU's TokenizerRegexp, applied in order. Python's
 * re.sub scans left to right over code points taking non-overlapping matches. Each
 * pattern is a two-character window whose ASCII member(s) can never be a UTF-8
 * continuation byte, so scanning bytes gives the same matches (see docs/metrics.md). */
static tw_status regexp_passes(tw_buf *a, tw_buf *b)
{
    const unsigned char *s;
    size_t n;
#define PUT(c) do { if (tw_buf_putc(b, (char)(c)) != TW_OK) return TW_ERR_NOMEM; } while (0)
    /* 1: punctuation/symbols get spaces around them */
    tw_buf_clear(b);
    s = (const unsigned char *)a->data; n = a->len;
    for (size_t i = 0; i < n; i++) {
        if (re1_class(s[i])) { PUT(' '); PUT(s[i]); PUT(' '); }
        else PUT(s[i]);
    }
    buf_swap(a, b);
    /* 2: ([^0-9])([\.,]) -> "\1 \2 "  (period/comma unless preceded by a digit) */
    tw_buf_clear(b);
    s = (const unsigned char *)a->data; n = a->len;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && !is_digit(s[i]) && (s[i + 1] == '.' || s[i + 1] == ',')) {
            PUT(s[i]); PUT(' '); PUT(s[i + 1]); PUT(' ');
            i += 2;
        } else PUT(s[i++]);
    }
    buf_swap(a, b);
    /* 3: ([\.,])([^0-9]) -> " \1 \2"  (period/comma unless followed by a digit) */
    tw_buf_clear(b);
    s = (const unsigned char *)a->data; n = a->len;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && (s[i] == '.' || s[i] == ',') && !is_digit(s[i + 1])) {
            PUT(' '); PUT(s[i]); PUT(' '); PUT(s[i + 1]);
            i += 2;
        } else PUT(s[i++]);
    }
    buf_swap(a, b);
    /* 4: ([0-9])(-) -> "\1 \2 "  (dash preceded by a digit) */
    tw_buf_clear(b);
    s = (const unsigned char *)a->data; n = a->len;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && is_digit(s[i]) && s[i + 1] == '-') {
            PUT(s[i]); PUT(' '); PUT('-'); PUT(' ');
            i += 2;
        } else PUT(s[i++]);
    }
    buf_swap(a, b);
#undef PUT
    return TW_OK;
}

tw_status tw_tok_13a(tw_buf *out, const char *s)
{
    if (!s) s = "";
    tw_buf a = {0}, b = {0};
    tw_status st = TW_ERR_NOMEM;
    size_t n = py_rstrip_len(s, strlen(s));   /* BLEU._preprocess_segment: sent.rstrip() */
    if (replace_all(&a, s, n, "<skipped>", "") != TW_OK) goto done;
    if (replace_all(&b, a.data ? a.data : "", a.len, "-\n", "") != TW_OK) goto done;
    if (replace_all(&a, b.data ? b.data : "", b.len, "\n", " ") != TW_OK) goto done;
    if (a.len && memchr(a.data, '&', a.len)) {
        static const char *const ent[4][2] = {
            {"&quot;", "\""}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}};
        for (int e = 0; e < 4; e++) {
            if (replace_all(&b, a.data ? a.data : "", a.len, ent[e][0], ent[e][1]) != TW_OK) goto done;
            buf_swap(&a, &b);
        }
    }
    /* f' {line} ' */
    tw_buf_clear(&b);
    if (tw_buf_putc(&b, ' ') != TW_OK || tw_buf_append(&b, a.data ? a.data : "", a.len) != TW_OK ||
        tw_buf_putc(&b, ' ') != TW_OK)
        goto done;
    buf_swap(&a, &b);
    if (regexp_passes(&a, &b) != TW_OK) goto done;
    tw_buf_clear(out);
    if (py_split_join(out, a.data ? a.data : "", a.len) != TW_OK) goto done;
    st = TW_OK;
done:
    tw_buf_free(&a);
    tw_buf_free(&b);
    return st;
}

tw_status tw_tok_rouge(tw_buf *out, const char *s)
{
    /* text.lower(); re.sub(r"[^a-z0-9]+", " ", text); split; keep ^[a-z0-9]+$ tokens.
     * Only ASCII survives the substitution, so Unicode lowercasing matters only for
     * the two code points whose lowercase form contains ASCII: U+0130 (-> "i" + a
     * combining dot, which then separates) and U+212A KELVIN SIGN (-> "k"). */
    tw_buf_clear(out);
    if (!s) return TW_OK;
    size_t n = strlen(s), i = 0;
    bool in_tok = false, any = false;
    while (i < n) {
        uint32_t cp;
        size_t k = cp_at(s, n, i, &cp);
        i += k;
        char c = 0;
        bool sep_after = false;
        if (cp >= 'A' && cp <= 'Z') c = (char)(cp - 'A' + 'a');
        else if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) c = (char)cp;
        else if (cp == 0x0130) { c = 'i'; sep_after = true; }
        else if (cp == 0x212A) c = 'k';
        if (c) {
            if (!in_tok && any && tw_buf_putc(out, ' ') != TW_OK) return TW_ERR_NOMEM;
            if (tw_buf_putc(out, c) != TW_OK) return TW_ERR_NOMEM;
            in_tok = !sep_after;
            any = true;
        } else {
            in_tok = false;
        }
    }
    return TW_OK;
}

static bool is_py_punct(unsigned char c)
{
    /* Python string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ */
    return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
           (c >= '{' && c <= '~');
}

/* Regex \w approximated on UTF-8: ASCII [A-Za-z0-9_] and every non-ASCII code point
 * that is not whitespace (Unicode punctuation outside ASCII is rare in answers). */
static bool word_cp(uint32_t cp)
{
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') || cp == '_';
    return !tw_py_isspace(cp);
}

tw_status tw_norm_squad(tw_buf *out, const char *s)
{
    /* normalize_answer(s) = white_space_fix(remove_articles(remove_punc(lower(s)))) */
    tw_buf_clear(out);
    if (!s) return TW_OK;
    tw_buf a = {0}, b = {0};
    tw_status st = TW_ERR_NOMEM;
    size_t n = strlen(s);
    /* lower + remove_punc (both byte-local for ASCII) */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80 && is_py_punct(c)) continue;
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (tw_buf_putc(&a, (char)c) != TW_OK) goto done;
    }
    /* remove_articles: re.sub(r'\b(a|an|the)\b', ' ', text) — a match is exactly a
     * maximal word run equal to a, an or the. */
    {
        const char *t = a.data ? a.data : "";
        size_t m = a.len, i = 0;
        while (i < m) {
            uint32_t cp;
            size_t k = cp_at(t, m, i, &cp);
            if (!word_cp(cp)) {
                if (tw_buf_append(&b, t + i, k) != TW_OK) goto done;
                i += k;
                continue;
            }
            size_t start = i;
            while (i < m) {
                k = cp_at(t, m, i, &cp);
                if (!word_cp(cp)) break;
                i += k;
            }
            size_t len = i - start;
            bool art = (len == 1 && t[start] == 'a') || (len == 2 && memcmp(t + start, "an", 2) == 0) ||
                       (len == 3 && memcmp(t + start, "the", 3) == 0);
            if (art) { if (tw_buf_putc(&b, ' ') != TW_OK) goto done; }
            else if (tw_buf_append(&b, t + start, len) != TW_OK) goto done;
        }
    }
    if (py_split_join(out, b.data ? b.data : "", b.len) != TW_OK) goto done;
    st = TW_OK;
done:
    tw_buf_free(&a);
    tw_buf_free(&b);
    return st;
}
