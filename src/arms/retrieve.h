/* retrieve.h — lexical retrieval for the prompt arm: an Okapi BM25 inverted index over a
 * set of short texts (training inputs for `knn` demonstrations, document chunks for
 * `rag`), and the chunker that turns a folder of plain-text / Markdown files into
 * passages that remember where they came from.
 *
 * Scoring (docs/prompt.md, "BM25"), for a query q = (t_1 .. t_m) (tokens with
 * multiplicity, as rank_bm25 and bm25s sum them) and a document d:
 *
 *   score(q, d) = sum_i idf(t_i) * tf(t_i, d) * (k1 + 1)
 *                                / (tf(t_i, d) + k1 * (1 - b + b * |d| / avgdl))
 *   idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))       (Lucene's, never < 0)
 *
 * N documents, df(t) documents containing t, |d| tokens of d, avgdl the mean |d| (1 when
 * every document is empty). Terms absent from the index add nothing.
 *
 * Tokenization: lowercase (tw_feat_lower: ASCII, Latin-1, Latin Extended-A, Greek,
 * Cyrillic), then maximal runs of word characters (Python's re `\w`: letters, digits and
 * '_'; above ASCII everything but spaces, punctuation and symbols of the common blocks).
 * Invalid UTF-8 decodes as U+FFFD (not a word character). No stemming; stopwords: none
 * unless the caller gives a list.
 *
 * Deliberately not here: dense embeddings, stemming, phrase queries, any I/O in the index
 * (the chunker reads files; the index only sees strings).
 *
 * Ownership: a tw_bm25 copies nothing it does not need (it keeps token ids, not texts) and
 * is immutable after tw_bm25_build: concurrent queries are safe. */
#ifndef TW_ARMS_RETRIEVE_H
#define TW_ARMS_RETRIEVE_H

#include "tunewise.h"
#include "base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tw_bm25_params {
    double k1;                    /* default 1.2 */
    double b;                     /* default 0.75 */
    const char *const *stopwords; /* NULL-terminated list of lowercase words to drop
                                     (borrowed during build only); NULL: none (default) */
} tw_bm25_params;

tw_bm25_params tw_bm25_default_params(void);

typedef struct tw_bm25 tw_bm25;

/* Index texts[0..n) (NUL-terminated UTF-8; NULL counts as empty). Doc ids are the
 * indices 0..n-1. Errors: TW_ERR_INVALID for k1 < 0 or b outside [0, 1]; TW_ERR_NOMEM. */
tw_status tw_bm25_build(tw_bm25 **out, const char *const *texts, size_t n, const tw_bm25_params *p,
                        tw_error *err);
void tw_bm25_free(tw_bm25 *ix);

size_t tw_bm25_n_docs(const tw_bm25 *ix);
size_t tw_bm25_n_terms(const tw_bm25 *ix);
double tw_bm25_avgdl(const tw_bm25 *ix);

/* Optional filter: return true to leave doc out of the results. */
typedef bool (*tw_bm25_skip_fn)(size_t doc, void *user);

#define TW_BM25_NO_DOC ((size_t)-1)

/* The k best documents for query text: ids[0..*n_out) and scores[0..*n_out) (caller's
 * arrays of at least k), best first; equal scores in increasing doc id. Only documents
 * sharing at least one term with the query (score > 0) are returned, so *n_out <= k.
 * exclude_doc (TW_BM25_NO_DOC: none) and documents for which skip(doc, user) is true
 * are left out. scores may be NULL. Errors: TW_ERR_NOMEM. */
tw_status tw_bm25_query(const tw_bm25 *ix, const char *query, size_t k, size_t exclude_doc,
                        tw_bm25_skip_fn skip, void *user, size_t *ids, double *scores, size_t *n_out,
                        tw_error *err);

/* Tokenize text as the index does; calls fn(token, len, user) for each token (the bytes
 * are the lowercased UTF-8 form, valid during the call only). Stops and returns the
 * first non-OK status fn returns. For tests and for callers that need the same words. */
typedef tw_status (*tw_bm25_token_fn)(const char *tok, size_t len, void *user);
tw_status tw_bm25_tokenize(const char *text, tw_bm25_token_fn fn, void *user);

/* ---- chunking a document folder for `rag` --------------------------------------- */

typedef struct tw_chunk {
    char *file;        /* path relative to the folder ("notes/a.md") */
    size_t line;       /* 1-based line of the chunk's first word */
    size_t end_line;   /* 1-based line of its last word */
    char *text;        /* the source bytes of the chunk (paragraphs joined by "\n\n") */
    size_t n_words;    /* whitespace-separated words */
} tw_chunk;

typedef struct tw_chunk_params {
    size_t max_words;  /* target chunk size in words (default 200) */
    size_t overlap;    /* words shared by consecutive pieces of a long paragraph, and the
                          largest trailing paragraph carried into the next chunk
                          (default 40; must be < max_words) */
} tw_chunk_params;

tw_chunk_params tw_chunk_default_params(void);

typedef struct tw_chunks {
    tw_chunk *v;
    size_t n, cap;
    size_t n_files;    /* files read */
} tw_chunks;

/* Chunk one text (file names the source in chunks and messages). Appends to out.
 * Algorithm (docs/prompt.md, "Chunking"): paragraphs are runs of non-blank lines;
 * a paragraph longer than max_words is cut into pieces of max_words words, consecutive
 * pieces sharing `overlap` words; pieces/paragraphs are then merged greedily into chunks
 * of at most max_words words; a chunk's last paragraph (when it has at most `overlap`
 * words and fits with the next one) also opens the next chunk. Errors: TW_ERR_PARSE
 * "file: offset N: invalid UTF-8"; TW_ERR_INVALID for bad params. */
tw_status tw_chunk_text(tw_chunks *out, const char *file, const char *text, size_t len,
                        const tw_chunk_params *p, tw_error *err);

/* Chunk every *.txt / *.md / *.markdown file under dir (recursively, in byte order of
 * their relative paths; hidden entries skipped). Empty files give no chunks.
 * Errors: TW_ERR_IO naming the path; TW_ERR_PARSE "path: offset N: invalid UTF-8";
 * TW_ERR_INVALID "dir: no .txt or .md files". On error out is left as it was. */
tw_status tw_chunk_dir(tw_chunks *out, const char *dir, const tw_chunk_params *p, tw_error *err);
void tw_chunks_free(tw_chunks *c);

#endif /* TW_ARMS_RETRIEVE_H */
