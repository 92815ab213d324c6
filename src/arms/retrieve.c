/* retrieve.c — Okapi BM25 over short texts (an inverted index built once, queried many
 * times) and the chunker of a document folder for `rag`. The formula, the tokenizer and
 * the chunking rules are written out in retrieve.h and docs/prompt.md.
 *
 * Layout of the index: a vocabulary (tw_str_index over heap copies of the terms), and
 * postings in CSR form — for term t, docs post_doc[post_off[t] .. post_off[t+1]) in
 * increasing doc id with their term frequencies post_tf[...]. Per document only its
 * length normaliser k1 * (1 - b + b * |d| / avgdl) is kept; per term its idf.
 *
 * A query accumulates scores in a dense array of N doubles (per call, so concurrent
 * queries never share memory) over the postings of its tokens, in query-token order,
 * then keeps the k best in a bounded heap ordered by (score, -doc).
 *
 * Deliberately not here: stemming, embeddings, persistence of the index (building it
 * from 10k short texts takes milliseconds). */
#include "arms/retrieve.h"
#include "arms/features.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- tokenizer --------------------------------------------------------------------- */

/* Word characters: Python's re `\w` on str — exact for ASCII [0-9A-Za-z_] and Latin-1;
 * above that everything that is not a space, punctuation or symbol of the common blocks
 * (the classic arm's classes in features.c, plus letterlike symbols, U+1680 and the BOM),
 * an approximation of str.isalnum() that needs no Unicode tables. */
static bool is_word_cp(uint32_t c)
{
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c <= 0xBF)
        return c == 0xAA || c == 0xB2 || c == 0xB3 || c == 0xB5 || c == 0xB9 || c == 0xBA ||
               (c >= 0xBC && c <= 0xBE);
    if (c == 0xD7 || c == 0xF7) return false;
    if (c == 0x1680) return false;
    if (c < 0x2000) return true;
    if (c <= 0x206F) return false;                       /* General Punctuation, spaces */
    if (c >= 0x20A0 && c <= 0x20CF) return false;        /* currency */
    if (c >= 0x2100 && c <= 0x214F) return false;        /* letterlike symbols (mostly So) */
    if (c >= 0x2190 && c <= 0x23FF) return false;        /* arrows, math, technical */
    if (c >= 0x2500 && c <= 0x27BF) return false;        /* box drawing, shapes, dingbats */
    if (c >= 0x3000 && c <= 0x303F) return false;        /* CJK punctuation, ideographic space */
    if (c >= 0xFE00 && c <= 0xFE0F) return false;        /* variation selectors */
    if (c >= 0xFE30 && c <= 0xFE4F) return false;
    if ((c >= 0xFF01 && c <= 0xFF0F) || (c >= 0xFF1A && c <= 0xFF20) ||
        (c >= 0xFF3B && c <= 0xFF40 && c != 0xFF3F) || (c >= 0xFF5B && c <= 0xFF65))
        return false;                                    /* fullwidth punctuation */
    if (c == 0xFFFD || c == 0xFEFF) return false;
    if (c >= 0x1F000 && c <= 0x1FAFF) return false;      /* emoji and pictographs */
    return true;
}

tw_status tw_bm25_tokenize(const char *text, tw_bm25_token_fn fn, void *user)
{
    if (!text) return TW_OK;
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), i = 0;
    char small[256];
    char *tok = small;
    size_t cap = sizeof small, len = 0;
    tw_status st = TW_OK;
    while (i <= n) {
        uint32_t cp = 0;
        int k = 1;
        bool word = false;
        if (i < n) {
            k = tw_utf8_decode(s + i, n - i, &cp);
            word = is_word_cp(cp);
        }
        if (word) {
            if (len + 4 > cap) {
                size_t ncap = cap * 2;
                char *nt = malloc(ncap);
                if (!nt) { st = TW_ERR_NOMEM; break; }
                memcpy(nt, tok, len);
                if (tok != small) free(tok);
                tok = nt;
                cap = ncap;
            }
            len += (size_t)tw_utf8_encode(tw_feat_lower(cp), tok + len);
        } else if (len > 0) {
            st = fn(tok, len, user);
            len = 0;
            if (st != TW_OK) break;
        }
        i += (size_t)k;
    }
    if (tok != small) free(tok);
    return st;
}

/* ---- index ------------------------------------------------------------------------- */

struct tw_bm25 {
    size_t n_docs, n_terms;
    double k1, b, avgdl;
    tw_str_index vocab;      /* term -> id; keys are terms[id] */
    char **terms;
    double *idf;             /* (n_terms) */
    size_t *post_off;        /* (n_terms + 1) */
    uint32_t *post_doc;      /* (nnz) */
    uint32_t *post_tf;       /* (nnz) */
    double *norm;            /* (n_docs) k1 * (1 - b + b * dl / avgdl) */
};

tw_bm25_params tw_bm25_default_params(void)
{
    tw_bm25_params p = {.k1 = 1.2, .b = 0.75, .stopwords = NULL};
    return p;
}

size_t tw_bm25_n_docs(const tw_bm25 *ix) { return ix ? ix->n_docs : 0; }
size_t tw_bm25_n_terms(const tw_bm25 *ix) { return ix ? ix->n_terms : 0; }
double tw_bm25_avgdl(const tw_bm25 *ix) { return ix ? ix->avgdl : 0; }

void tw_bm25_free(tw_bm25 *ix)
{
    if (!ix) return;
    for (size_t i = 0; i < ix->n_terms; i++) free(ix->terms[i]);
    free(ix->terms);
    tw_str_index_free(&ix->vocab);
    free(ix->idf);
    free(ix->post_off);
    free(ix->post_doc);
    free(ix->post_tf);
    free(ix->norm);
    free(ix);
}

/* Build-time state for the token callback. */
typedef struct build_ctx {
    tw_bm25 *ix;
    size_t terms_cap;
    tw_str_index stop;       /* stopwords (keys borrowed from the caller) */
    uint32_t *toks;          /* term ids of the current document */
    size_t n_toks, toks_cap;
    tw_error *err;
} build_ctx;

static tw_status build_token(const char *tok, size_t len, void *user)
{
    build_ctx *c = user;
    char small[128];
    char *key = len < sizeof small ? small : malloc(len + 1);
    if (!key) return TW_ERR_NOMEM;
    memcpy(key, tok, len);
    key[len] = '\0';
    tw_status st = TW_OK;
    size_t id;
    if (c->stop.n && tw_str_index_get(&c->stop, key, &id)) goto done;
    if (!tw_str_index_get(&c->ix->vocab, key, &id)) {
        tw_bm25 *ix = c->ix;
        if ((st = tw_grow((void **)&ix->terms, &c->terms_cap, ix->n_terms + 1, sizeof *ix->terms, c->err)))
            goto done;
        char *copy = tw_strndup(key, len, c->err);
        if (!copy) { st = TW_ERR_NOMEM; goto done; }
        id = ix->n_terms;
        if ((st = tw_str_index_put(&ix->vocab, copy, id, NULL, NULL, c->err))) { free(copy); goto done; }
        ix->terms[ix->n_terms++] = copy;
    }
    if ((st = tw_grow((void **)&c->toks, &c->toks_cap, c->n_toks + 1, sizeof *c->toks, c->err))) goto done;
    c->toks[c->n_toks++] = (uint32_t)id;
done:
    if (key != small) free(key);
    return st;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

tw_status tw_bm25_build(tw_bm25 **out, const char *const *texts, size_t n, const tw_bm25_params *p,
                        tw_error *err)
{
    *out = NULL;
    tw_bm25_params def = tw_bm25_default_params();
    if (!p) p = &def;
    if (!(p->k1 >= 0) || !(p->b >= 0 && p->b <= 1))
        return tw_error_set(err, TW_ERR_INVALID, "bm25: k1 = %g must be >= 0 and b = %g in [0, 1]", p->k1, p->b);
    if (n > UINT32_MAX) return tw_error_set(err, TW_ERR_INVALID, "bm25: too many documents (%zu)", n);
    tw_bm25 *ix = tw_calloc(1, sizeof *ix, err);
    if (!ix) return TW_ERR_NOMEM;
    ix->n_docs = n;
    ix->k1 = p->k1;
    ix->b = p->b;
    build_ctx c = {.ix = ix, .err = err};
    /* pairs (term, tf) per document, documents in order */
    uint32_t *pt = NULL, *ptf = NULL;
    size_t *doc_off = NULL, npairs = 0, pcap = 0, pcap2 = 0;
    size_t *df = NULL;
    tw_status st = TW_OK;
    if (p->stopwords)
        for (size_t i = 0; p->stopwords[i]; i++)
            if ((st = tw_str_index_put(&c.stop, p->stopwords[i], i, NULL, NULL, err))) goto fail;
    ix->norm = tw_calloc(n ? n : 1, sizeof *ix->norm, err);
    doc_off = tw_calloc(n + 1, sizeof *doc_off, err);
    if (!ix->norm || !doc_off) { st = TW_ERR_NOMEM; goto fail; }
    double total = 0;
    for (size_t d = 0; d < n; d++) {
        c.n_toks = 0;
        st = tw_bm25_tokenize(texts[d], build_token, &c);
        if (st) {
            if (st == TW_ERR_NOMEM) tw_error_set(err, st, "bm25: out of memory indexing document %zu", d);
            goto fail;
        }
        ix->norm[d] = (double)c.n_toks;   /* dl for now */
        total += (double)c.n_toks;
        qsort(c.toks, c.n_toks, sizeof *c.toks, cmp_u32);
        for (size_t i = 0; i < c.n_toks;) {
            size_t j = i;
            while (j < c.n_toks && c.toks[j] == c.toks[i]) j++;
            if ((st = tw_grow((void **)&pt, &pcap, npairs + 1, sizeof *pt, err))) goto fail;
            if ((st = tw_grow((void **)&ptf, &pcap2, npairs + 1, sizeof *ptf, err))) goto fail;
            pt[npairs] = c.toks[i];
            ptf[npairs] = (uint32_t)(j - i);
            npairs++;
            i = j;
        }
        doc_off[d + 1] = npairs;
    }
    ix->avgdl = (n && total > 0) ? total / (double)n : 1.0;
    for (size_t d = 0; d < n; d++) ix->norm[d] = ix->k1 * (1.0 - ix->b + ix->b * ix->norm[d] / ix->avgdl);

    size_t nt = ix->n_terms;
    df = tw_calloc(nt + 1, sizeof *df, err);
    ix->idf = tw_calloc(nt ? nt : 1, sizeof *ix->idf, err);
    ix->post_off = tw_calloc(nt + 1, sizeof *ix->post_off, err);
    ix->post_doc = tw_malloc((npairs ? npairs : 1) * sizeof *ix->post_doc, err);
    ix->post_tf = tw_malloc((npairs ? npairs : 1) * sizeof *ix->post_tf, err);
    if (!df || !ix->idf || !ix->post_off || !ix->post_doc || !ix->post_tf) { st = TW_ERR_NOMEM; goto fail; }
    for (size_t i = 0; i < npairs; i++) df[pt[i]]++;
    for (size_t t = 0; t < nt; t++) {
        ix->post_off[t + 1] = ix->post_off[t] + df[t];
        double dft = (double)df[t];
        ix->idf[t] = log(1.0 + ((double)n - dft + 0.5) / (dft + 0.5));
        df[t] = ix->post_off[t];   /* reuse as the fill cursor */
    }
    for (size_t d = 0; d < n; d++)
        for (size_t i = doc_off[d]; i < doc_off[d + 1]; i++) {
            size_t at = df[pt[i]]++;
            ix->post_doc[at] = (uint32_t)d;
            ix->post_tf[at] = ptf[i];
        }
    free(pt);
    free(ptf);
    free(doc_off);
    free(df);
    free(c.toks);
    tw_str_index_free(&c.stop);
    *out = ix;
    return TW_OK;
fail:
    free(pt);
    free(ptf);
    free(doc_off);
    free(df);
    free(c.toks);
    tw_str_index_free(&c.stop);
    tw_bm25_free(ix);
    return st;
}

/* ---- query ------------------------------------------------------------------------- */

typedef struct query_ctx {
    const tw_bm25 *ix;
    uint32_t *terms;
    size_t n, cap;
} query_ctx;

static tw_status query_token(const char *tok, size_t len, void *user)
{
    query_ctx *q = user;
    char small[128];
    char *key = len < sizeof small ? small : malloc(len + 1);
    if (!key) return TW_ERR_NOMEM;
    memcpy(key, tok, len);
    key[len] = '\0';
    size_t id;
    tw_status st = TW_OK;
    if (tw_str_index_get(&q->ix->vocab, key, &id)) {
        if (tw_grow((void **)&q->terms, &q->cap, q->n + 1, sizeof *q->terms, NULL)) st = TW_ERR_NOMEM;
        else q->terms[q->n++] = (uint32_t)id;
    }
    if (key != small) free(key);
    return st;
}

/* Heap order: a is "worse" than b when its score is lower, or equal with a larger id. */
static inline bool worse(double sa, size_t a, double sb, size_t b)
{
    return sa < sb || (sa == sb && a > b);
}

static void sift_down(size_t *hid, double *hs, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(hs[l], hid[l], hs[m], hid[m])) m = l;
        if (r < n && worse(hs[r], hid[r], hs[m], hid[m])) m = r;
        if (m == i) return;
        size_t ti = hid[i]; hid[i] = hid[m]; hid[m] = ti;
        double ts = hs[i]; hs[i] = hs[m]; hs[m] = ts;
        i = m;
    }
}

static void sift_up(size_t *hid, double *hs, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(hs[i], hid[i], hs[p], hid[p])) return;
        size_t ti = hid[i]; hid[i] = hid[p]; hid[p] = ti;
        double ts = hs[i]; hs[i] = hs[p]; hs[p] = ts;
        i = p;
    }
}

tw_status tw_bm25_query(const tw_bm25 *ix, const char *query, size_t k, size_t exclude_doc,
                        tw_bm25_skip_fn skip, void *user, size_t *ids, double *scores, size_t *n_out,
                        tw_error *err)
{
    *n_out = 0;
    if (k == 0 || ix->n_docs == 0) return TW_OK;
    query_ctx q = {.ix = ix};
    if (tw_bm25_tokenize(query, query_token, &q)) {
        free(q.terms);
        return tw_error_set(err, TW_ERR_NOMEM, "bm25: out of memory tokenizing a query");
    }
    if (q.n == 0) { free(q.terms); return TW_OK; }
    double *acc = calloc(ix->n_docs, sizeof *acc);
    uint32_t *touched = malloc(ix->n_docs * sizeof *touched);
    size_t *hid = malloc(k * sizeof *hid);
    double *hs = malloc(k * sizeof *hs);
    if (!acc || !touched || !hid || !hs) {
        free(acc); free(touched); free(hid); free(hs); free(q.terms);
        return tw_error_set(err, TW_ERR_NOMEM, "bm25: out of memory (%zu documents)", ix->n_docs);
    }
    size_t nt = 0;
    const double k1p1 = ix->k1 + 1.0;
    for (size_t i = 0; i < q.n; i++) {
        uint32_t t = q.terms[i];
        double idf = ix->idf[t];
        for (size_t p = ix->post_off[t]; p < ix->post_off[t + 1]; p++) {
            uint32_t d = ix->post_doc[p];
            double tf = (double)ix->post_tf[p];
            if (acc[d] == 0) touched[nt++] = d;
            acc[d] += idf * tf * k1p1 / (tf + ix->norm[d]);
        }
    }
    /* idf > 0 and tf >= 1, so every touched doc has acc > 0 and appears once in touched */
    size_t nh = 0;
    for (size_t i = 0; i < nt; i++) {
        size_t d = touched[i];
        double s = acc[d];
        if (d == exclude_doc) continue;
        bool admit = nh < k || worse(hs[0], hid[0], s, d);
        /* the filter only for documents that would enter the heap: same result, far
         * fewer calls (common words touch most documents) */
        if (!admit || (skip && skip(d, user))) continue;
        if (nh < k) {
            hid[nh] = d; hs[nh] = s;
            sift_up(hid, hs, nh);
            nh++;
        } else {
            hid[0] = d; hs[0] = s;
            sift_down(hid, hs, nh, 0);
        }
    }
    /* pop worst-first into the tail of the output */
    size_t m = nh;
    while (nh > 0) {
        ids[nh - 1] = hid[0];
        if (scores) scores[nh - 1] = hs[0];
        nh--;
        hid[0] = hid[nh]; hs[0] = hs[nh];
        sift_down(hid, hs, nh, 0);
    }
    *n_out = m;
    free(acc); free(touched); free(hid); free(hs); free(q.terms);
    return TW_OK;
}

/* ---- chunking ---------------------------------------------------------------------- */

tw_chunk_params tw_chunk_default_params(void)
{
    tw_chunk_params p = {.max_words = 200, .overlap = 40};
    return p;
}

void tw_chunks_free(tw_chunks *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].file);
        free(c->v[i].text);
    }
    free(c->v);
    memset(c, 0, sizeof *c);
}

static void chunks_truncate(tw_chunks *c, size_t n)
{
    for (size_t i = n; i < c->n; i++) {
        free(c->v[i].file);
        free(c->v[i].text);
    }
    c->n = n;
}

static inline bool is_ws(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

typedef struct word { size_t b, e, line; } word;
/* a unit: a whole paragraph or a piece of a long one: words [w0, w1) */
typedef struct unit { size_t w0, w1; } unit;

tw_status tw_chunk_text(tw_chunks *out, const char *file, const char *text, size_t len,
                        const tw_chunk_params *p, tw_error *err)
{
    tw_chunk_params def = tw_chunk_default_params();
    if (!p) p = &def;
    if (p->max_words == 0 || p->overlap >= p->max_words)
        return tw_error_set(err, TW_ERR_INVALID, "chunking: max_words = %zu must be > 0 and > overlap = %zu",
                            p->max_words, p->overlap);
    size_t bad;
    if (!tw_utf8_valid(text, len, &bad))
        return tw_error_set(err, TW_ERR_PARSE, "%s: offset %zu: invalid UTF-8", file, bad);
    word *w = NULL;
    unit *u = NULL;
    size_t nw = 0, wcap = 0, nu = 0, ucap = 0;
    size_t n0 = out->n;
    tw_status st = TW_OK;
    tw_buf tb = {0};
    /* words, with paragraph breaks: a blank line (only whitespace) between two words */
    size_t line = 1, i = 0, para_start = 0;
    bool blank_since = false;   /* a blank line seen since the last word */
    bool line_has_word = false;
    while (i <= len) {
        if (i == len || (blank_since && nw > para_start && i < len && !is_ws((unsigned char)text[i]))) {
            /* close the current paragraph at a blank line or at the end */
            if (nw > para_start) {
                size_t m = nw - para_start;
                if (m <= p->max_words) {
                    if ((st = tw_grow((void **)&u, &ucap, nu + 1, sizeof *u, err))) goto fail;
                    u[nu++] = (unit){para_start, nw};
                } else {
                    size_t s = 0;
                    for (;;) {
                        size_t e = s + p->max_words < m ? s + p->max_words : m;
                        if ((st = tw_grow((void **)&u, &ucap, nu + 1, sizeof *u, err))) goto fail;
                        u[nu++] = (unit){para_start + s, para_start + e};
                        if (e == m) break;
                        s = e - p->overlap;
                    }
                }
                para_start = nw;
            }
            blank_since = false;
            if (i == len) break;
        }
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            if (!line_has_word) blank_since = true;
            line++;
            line_has_word = false;
            i++;
        } else if (is_ws(ch)) {
            i++;
        } else {
            size_t b = i;
            while (i < len && !is_ws((unsigned char)text[i])) i++;
            if ((st = tw_grow((void **)&w, &wcap, nw + 1, sizeof *w, err))) goto fail;
            w[nw++] = (word){b, i, line};
            line_has_word = true;
            blank_since = false;   /* blank lines before a paragraph's first word break nothing */
        }
    }
    /* merge units greedily */
    for (size_t a = 0; a < nu;) {
        size_t j = a, words = 0;
        while (j < nu && words + (u[j].w1 - u[j].w0) <= p->max_words) {
            words += u[j].w1 - u[j].w0;
            j++;
        }
        if (j == a) { words = u[a].w1 - u[a].w0; j = a + 1; }   /* cannot happen: units fit */
        tw_buf_clear(&tb);
        for (size_t x = a; x < j; x++) {
            if (x > a && (st = tw_buf_append(&tb, "\n\n", 2))) goto nomem;
            size_t b = w[u[x].w0].b, e = w[u[x].w1 - 1].e;
            if ((st = tw_buf_append(&tb, text + b, e - b))) goto nomem;
        }
        if ((st = tw_grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v, err))) goto fail;
        tw_chunk *c = &out->v[out->n];
        c->file = tw_strdup(file, err);
        c->text = tw_buf_steal(&tb);
        if (!c->file || !c->text) {
            free(c->file);
            free(c->text);
            st = TW_ERR_NOMEM;
            goto nomem;
        }
        c->line = w[u[a].w0].line;
        c->end_line = w[u[j - 1].w1 - 1].line;
        c->n_words = words;
        out->n++;
        /* carry the last paragraph into the next chunk when it is short and fits */
        if (j < nu && j - 1 > a) {
            size_t last = u[j - 1].w1 - u[j - 1].w0, next = u[j].w1 - u[j].w0;
            if (last <= p->overlap && last + next <= p->max_words) { a = j - 1; continue; }
        }
        a = j;
    }
    free(w);
    free(u);
    tw_buf_free(&tb);
    return TW_OK;
nomem:
    tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory while chunking", file);
fail:
    free(w);
    free(u);
    tw_buf_free(&tb);
    chunks_truncate(out, n0);
    return st;
}

/* ---- folders ----------------------------------------------------------------------- */

typedef struct path_list { char **v; size_t n, cap; } path_list;

static void path_list_free(path_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
}

static bool wanted_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcmp(dot, ".txt") || !strcmp(dot, ".md") || !strcmp(dot, ".markdown"));
}

/* Collect relative paths (rel may be "") of wanted files under root/rel. */
static tw_status list_dir(path_list *l, const char *root, const char *rel, int depth, tw_error *err)
{
    if (depth > 32) return tw_error_set(err, TW_ERR_INVALID, "%s/%s: directories nested too deep", root, rel);
    tw_buf path = {0};
    tw_status st = *rel ? tw_buf_printf(&path, "%s/%s", root, rel) : tw_buf_puts(&path, root);
    if (st) return tw_error_set(err, st, "out of memory");
    DIR *d = opendir(path.data);
    if (!d) {
        st = tw_error_set(err, TW_ERR_IO, "%s: cannot open directory: %s", path.data, strerror(errno));
        tw_buf_free(&path);
        return st;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        tw_buf sub = {0}, full = {0};
        if ((*rel ? tw_buf_printf(&sub, "%s/%s", rel, e->d_name) : tw_buf_puts(&sub, e->d_name)) ||
            tw_buf_printf(&full, "%s/%s", root, sub.data)) {
            tw_buf_free(&sub); tw_buf_free(&full);
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            break;
        }
        struct stat sb;
        if (stat(full.data, &sb) != 0) {
            st = tw_error_set(err, TW_ERR_IO, "%s: %s", full.data, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = list_dir(l, root, sub.data, depth + 1, err);
        } else if (S_ISREG(sb.st_mode) && wanted_ext(e->d_name)) {
            if (!(st = tw_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v, err))) {
                l->v[l->n++] = tw_buf_steal(&sub);
            }
        }
        tw_buf_free(&sub);
        tw_buf_free(&full);
        if (st) break;
    }
    closedir(d);
    tw_buf_free(&path);
    return st;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

tw_status tw_chunk_dir(tw_chunks *out, const char *dir, const tw_chunk_params *p, tw_error *err)
{
    path_list l = {0};
    size_t n0 = out->n, f0 = out->n_files;
    tw_status st = list_dir(&l, dir, "", 0, err);
    if (st) goto done;
    if (l.n == 0) { st = tw_error_set(err, TW_ERR_INVALID, "%s: no .txt or .md files", dir); goto done; }
    qsort(l.v, l.n, sizeof *l.v, cmp_str);
    for (size_t i = 0; i < l.n && !st; i++) {
        tw_buf full = {0};
        if (tw_buf_printf(&full, "%s/%s", dir, l.v[i])) { st = tw_error_set(err, TW_ERR_NOMEM, "out of memory"); break; }
        char *text = NULL;
        size_t len = 0;
        st = tw_file_read(full.data, &text, &len, err);
        if (!st) {
            st = tw_chunk_text(out, l.v[i], text, len, p, err);
            /* name the file as the user gave the folder, not just the relative path */
            if (st == TW_ERR_PARSE && err) {
                char msg[TW_ERROR_MAX];
                snprintf(msg, sizeof msg, "%s", err->msg);
                tw_error_set(err, st, "%s/%s", dir, msg);
            }
            if (!st) out->n_files++;
        }
        free(text);
        tw_buf_free(&full);
    }
done:
    if (st) {
        chunks_truncate(out, n0);
        out->n_files = f0;
    }
    path_list_free(&l);
    return st;
}
