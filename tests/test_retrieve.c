/* test_retrieve.c — BM25 index and document chunking (src/arms/retrieve.c):
 *  - scores and rankings on the 10,003 Banking77 training inputs against an independent
 *    Python implementation of the same formula (tests/data/prompt/bm25_banking77.json,
 *    tests/ref/gen_prompt_fixtures.py): vocabulary size, avgdl, top-10 ids and scores;
 *  - exclusion of a document / skip filter, deterministic tie-break, stopwords, the
 *    Unicode-aware tokenizer, parameter errors;
 *  - chunking: empty input, long paragraphs cut with overlap, merging and carry-over of
 *    short paragraphs, line numbers, invalid UTF-8 naming file and offset, folders
 *    (extensions, nesting, order, errors);
 *  - speed: index all train inputs and query with all 3,080 test inputs (time logged). */
#include "testutil.h"
#include "arms/retrieve.h"
#include "task/dataset.h"

#include <jansson.h>
#include <math.h>

static void load_split(tw_dataset *ds, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/banking77/%s.jsonl", tw_test_shared(), name);
    tw_error err = {0};
    tw_reader_params rp = tw_reader_default_params();
    cr_assert_eq(tw_dataset_load(ds, path, &rp, &err), TW_OK, "%s (set TW_SHARED to the shared folder)", err.msg);
}

static const char **inputs_of(const tw_dataset *ds)
{
    const char **v = malloc(ds->n * sizeof *v);
    for (size_t i = 0; i < ds->n; i++) v[i] = ds->rows[i].input;
    return v;
}

static tw_bm25 *build(const char *const *texts, size_t n)
{
    tw_bm25 *ix = NULL;
    tw_error err = {0};
    tw_bm25_params p = tw_bm25_default_params();
    cr_assert_eq(tw_bm25_build(&ix, texts, n, &p, &err), TW_OK, "%s", err.msg);
    return ix;
}

static size_t query(const tw_bm25 *ix, const char *q, size_t k, size_t excl, size_t *ids, double *sc)
{
    size_t n = 0;
    tw_error err = {0};
    cr_assert_eq(tw_bm25_query(ix, q, k, excl, NULL, NULL, ids, sc, &n, &err), TW_OK, "%s", err.msg);
    return n;
}

/* ---- oracle ----------------------------------------------------------------------------- */

Test(bm25, matches_python_oracle_on_banking77)
{
    json_error_t je;
    json_t *fx = json_load_file("tests/data/prompt/bm25_banking77.json", 0, &je);
    cr_assert_not_null(fx, "bm25 fixture: %s (run tests/ref/gen_prompt_fixtures.py)", je.text);
    tw_dataset train = {0}, test = {0};
    load_split(&train, "train");
    load_split(&test, "test");
    const char **texts = inputs_of(&train);
    tw_bm25 *ix = build(texts, train.n);
    cr_assert_eq(tw_bm25_n_docs(ix), (size_t)json_integer_value(json_object_get(fx, "n_docs")));
    cr_assert_eq(tw_bm25_n_terms(ix), (size_t)json_integer_value(json_object_get(fx, "n_terms")),
                 "vocabulary: %zu terms, oracle %lld", tw_bm25_n_terms(ix),
                 (long long)json_integer_value(json_object_get(fx, "n_terms")));
    double avg = json_real_value(json_object_get(fx, "avgdl"));
    cr_assert(fabs(tw_bm25_avgdl(ix) - avg) < 1e-12 * avg, "avgdl %.17g vs %.17g", tw_bm25_avgdl(ix), avg);

    /* test ids -> inputs */
    tw_str_index by_id = {0};
    for (size_t i = 0; i < test.n; i++) tw_str_index_put(&by_id, test.rows[i].id, i, NULL, NULL, NULL);

    json_t *qs = json_object_get(fx, "queries");
    size_t nq = json_array_size(qs), checked = 0, nonempty = 0;
    cr_assert(nq >= 30);
    for (size_t qi = 0; qi < nq; qi++) {
        json_t *q = json_array_get(qs, qi);
        const char *text = json_string_value(json_object_get(q, "text"));
        if (!text) {
            size_t row;
            const char *tid = json_string_value(json_object_get(q, "test_id"));
            cr_assert(tw_str_index_get(&by_id, tid, &row), "test id %s not in test.jsonl", tid);
            text = test.rows[row].input;
        }
        json_t *top = json_object_get(q, "top");
        size_t ids[10];
        double sc[10];
        size_t n = query(ix, text, 10, TW_BM25_NO_DOC, ids, sc);
        cr_assert_eq(n, json_array_size(top), "query '%s': %zu results, oracle %zu", text, n, json_array_size(top));
        for (size_t j = 0; j < n; j++) {
            json_t *pair = json_array_get(top, j);
            size_t want_id = (size_t)json_integer_value(json_array_get(pair, 0));
            double want = json_real_value(json_array_get(pair, 1));
            cr_assert_eq(ids[j], want_id, "query '%s' rank %zu: doc %zu, oracle %zu", text, j, ids[j], want_id);
            cr_assert(fabs(sc[j] - want) <= 1e-12 * fabs(want), "query '%s' rank %zu: %.17g vs %.17g", text, j,
                      sc[j], want);
            checked++;
        }
        if (n) nonempty++;
    }
    cr_assert(checked >= 300 && nonempty >= 32, "checked %zu scores over %zu queries", checked, nonempty);
    tw_str_index_free(&by_id);
    tw_bm25_free(ix);
    free(texts);
    tw_dataset_free(&train);
    tw_dataset_free(&test);
    json_decref(fx);
}

Test(bm25, speed_banking77_train_index_all_test_queries)
{
    tw_dataset train = {0}, test = {0};
    load_split(&train, "train");
    load_split(&test, "test");
    const char **texts = inputs_of(&train);
    double t0 = tw_now();
    tw_bm25 *ix = build(texts, train.n);
    double t1 = tw_now();
    size_t ids[8], total = 0;
    for (size_t i = 0; i < test.n; i++) total += query(ix, test.rows[i].input, 8, TW_BM25_NO_DOC, ids, NULL);
    double t2 = tw_now();
    cr_log_info("bm25: indexed %zu train texts in %.1f ms; %zu test queries (k=8) in %.1f ms (%.1f us/query)",
                train.n, (t1 - t0) * 1e3, test.n, (t2 - t1) * 1e3, (t2 - t1) * 1e6 / (double)test.n);
    fprintf(stderr, "bm25: indexed %zu train texts in %.1f ms; %zu test queries (k=8) in %.1f ms\n", train.n,
            (t1 - t0) * 1e3, test.n, (t2 - t1) * 1e3);
    cr_assert(total > 8 * (test.n - 10), "almost every test message shares words with train (%zu results)", total);
    tw_bm25_free(ix);
    free(texts);
    tw_dataset_free(&train);
    tw_dataset_free(&test);
}

/* ---- behaviour ---------------------------------------------------------------------------- */

static const char *const SMALL[] = {
    "the card has not arrived",        /* 0 */
    "my card arrived broken",          /* 1 */
    "exchange rate for euros",         /* 2 */
    "the card has not arrived",        /* 3: same text as 0 */
    "",                                /* 4: empty */
    "card card card card card card",   /* 5 */
};

Test(bm25, formula_by_hand)
{
    tw_bm25 *ix = build(SMALL, 6);
    /* N = 6, total tokens 5+4+4+5+0+6 = 24, avgdl 4; "exchange": df 1 */
    cr_assert_float_eq(tw_bm25_avgdl(ix), 4.0, 1e-15);
    size_t ids[6];
    double sc[6];
    size_t n = query(ix, "Exchange!", 6, TW_BM25_NO_DOC, ids, sc);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 2);
    double idf = log(1.0 + (6 - 1 + 0.5) / (1 + 0.5));
    double want = idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 4.0 / 4.0));
    cr_assert(fabs(sc[0] - want) < 1e-14, "%.17g vs %.17g", sc[0], want);
    /* query tokens count with multiplicity */
    double sc2[6];
    n = query(ix, "exchange exchange", 6, TW_BM25_NO_DOC, ids, sc2);
    cr_assert(fabs(sc2[0] - 2 * want) < 1e-14);
    /* "card": df 4 (docs 0,1,3,5); tf saturates: doc 5 (tf 6, dl 6) first but < 6x doc 1 */
    n = query(ix, "card", 6, TW_BM25_NO_DOC, ids, sc);
    cr_assert_eq(n, 4);
    cr_assert_eq(ids[0], 5);
    cr_assert(sc[0] < 3 * sc[1], "tf saturation: %g vs %g", sc[0], sc[1]);
    double idf_card = log(1.0 + (6 - 4 + 0.5) / (4 + 0.5));
    cr_assert(idf_card > 0, "Lucene idf stays positive for common terms");
    tw_bm25_free(ix);
}

Test(bm25, ties_break_by_doc_index_and_exclusion)
{
    tw_bm25 *ix = build(SMALL, 6);
    size_t ids[6];
    double sc[6];
    size_t n = query(ix, "the card has not arrived", 3, TW_BM25_NO_DOC, ids, sc);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[0], 0, "equal scores: lower index first");
    cr_assert_eq(ids[1], 3);
    cr_assert_eq(sc[0], sc[1]);
    cr_assert(sc[2] < sc[1]);
    /* the example itself never comes back */
    n = query(ix, "the card has not arrived", 6, 0, ids, sc);
    for (size_t i = 0; i < n; i++) cr_assert_neq(ids[i], 0);
    cr_assert_eq(ids[0], 3);
    cr_assert_eq(n, 3, "docs 1, 3, 5 share words");
    /* k smaller than the hits keeps the best */
    n = query(ix, "card", 1, TW_BM25_NO_DOC, ids, sc);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 5);
    /* no shared term, empty query */
    cr_assert_eq(query(ix, "zebra", 3, TW_BM25_NO_DOC, ids, sc), 0);
    cr_assert_eq(query(ix, "", 3, TW_BM25_NO_DOC, ids, sc), 0);
    cr_assert_eq(query(ix, "card", 0, TW_BM25_NO_DOC, ids, sc), 0);
    tw_bm25_free(ix);
}

static bool skip_odd(size_t doc, void *user)
{
    (*(int *)user)++;
    return doc % 2 == 1;
}

Test(bm25, skip_filter)
{
    tw_bm25 *ix = build(SMALL, 6);
    size_t ids[6], n = 0;
    int calls = 0;
    tw_error err = {0};
    cr_assert_eq(tw_bm25_query(ix, "card arrived", 6, TW_BM25_NO_DOC, skip_odd, &calls, ids, NULL, &n, &err), TW_OK);
    cr_assert_eq(n, 1, "only doc 0 survives (1, 3, 5 odd; 2, 4 share nothing)");
    cr_assert_eq(ids[0], 0);
    cr_assert(calls >= 4);
    /* with a full heap: the best document that passes the filter (5 and 1 score higher
     * than 0 but are odd) */
    cr_assert_eq(tw_bm25_query(ix, "card", 1, TW_BM25_NO_DOC, skip_odd, &calls, ids, NULL, &n, &err), TW_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(ids[0], 0);
    cr_assert_eq(tw_bm25_query(ix, "card", 2, 0, skip_odd, &calls, ids, NULL, &n, &err), TW_OK);
    cr_assert_eq(n, 0, "0 excluded, the rest odd or without the word");
    tw_bm25_free(ix);
}

static tw_status collect(const char *tok, size_t len, void *user)
{
    tw_buf *b = user;
    if (b->len) tw_buf_putc(b, '|');
    return tw_buf_append(b, tok, len);
}

Test(bm25, tokenizer_unicode_lowercase_words)
{
    tw_buf b = {0};
    cr_assert_eq(tw_bm25_tokenize("Où est ÉLODIE? Déjà-vu: x_y 42£, ΑΒΓ Привет don’t \xff bad", collect, &b), TW_OK);
    cr_assert_str_eq(b.data, "où|est|élodie|déjà|vu|x_y|42|αβγ|привет|don|t|bad");
    tw_buf_free(&b);
}

Test(bm25, stopwords_and_params)
{
    const char *const stop[] = {"the", "has", "not", NULL};
    tw_bm25_params p = tw_bm25_default_params();
    cr_assert_float_eq(p.k1, 1.2, 0);
    cr_assert_float_eq(p.b, 0.75, 0);
    p.stopwords = stop;
    tw_bm25 *ix = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_bm25_build(&ix, SMALL, 6, &p, &err), TW_OK);
    size_t ids[6], n = 0;
    cr_assert_eq(tw_bm25_query(ix, "the has not", 6, TW_BM25_NO_DOC, NULL, NULL, ids, NULL, &n, &err), TW_OK);
    cr_assert_eq(n, 0, "stopwords are not indexed");
    /* avgdl without stopwords: (2+4+4+2+0+6)/6 */
    cr_assert_float_eq(tw_bm25_avgdl(ix), 3.0, 1e-15);
    tw_bm25_free(ix);
    p = tw_bm25_default_params();
    p.b = 1.5;
    cr_assert_eq(tw_bm25_build(&ix, SMALL, 6, &p, &err), TW_ERR_INVALID);
    cr_assert_null(ix);
    cr_assert(strstr(err.msg, "b = 1.5"), "%s", err.msg);
    /* an empty collection */
    cr_assert_eq(tw_bm25_build(&ix, NULL, 0, NULL, &err), TW_OK);
    cr_assert_eq(query(ix, "card", 3, TW_BM25_NO_DOC, ids, NULL), 0);
    tw_bm25_free(ix);
    tw_bm25_free(NULL);
}

/* ---- chunking ----------------------------------------------------------------------------- */

static char *words(size_t from, size_t n, char sep)
{
    tw_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (i) tw_buf_putc(&b, sep);
        tw_buf_printf(&b, "w%zu", from + i);
    }
    return tw_buf_steal(&b);
}

Test(chunk, empty_and_blank_texts)
{
    tw_chunks c = {0};
    tw_error err = {0};
    cr_assert_eq(tw_chunk_text(&c, "a.txt", "", 0, NULL, &err), TW_OK);
    cr_assert_eq(tw_chunk_text(&c, "b.txt", "\n \n\t\n", 5, NULL, &err), TW_OK);
    cr_assert_eq(c.n, 0);
    tw_chunks_free(&c);
}

Test(chunk, short_paragraphs_merge_with_lines)
{
    const char *t = "# Title\n\nFirst para line one\nline two.\n\n\n\nSecond para.\n  \nThird\n";
    tw_chunks c = {0};
    tw_error err = {0};
    cr_assert_eq(tw_chunk_text(&c, "doc.md", t, strlen(t), NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(c.n, 1);
    cr_assert_str_eq(c.v[0].text, "# Title\n\nFirst para line one\nline two.\n\nSecond para.\n\nThird");
    cr_assert_str_eq(c.v[0].file, "doc.md");
    cr_assert_eq(c.v[0].line, 1);
    cr_assert_eq(c.v[0].end_line, 10);
    cr_assert_eq(c.v[0].n_words, 2 + 6 + 2 + 1);
    tw_chunks_free(&c);
}

Test(chunk, leading_blank_lines_and_crlf)
{
    const char *t = "\n\n  \nline one\nline two\n\nnext\r\n\r\nlast one\r\nstill last\r\n";
    tw_chunk_params p = {.max_words = 4, .overlap = 0};
    tw_chunks c = {0};
    tw_error err = {0};
    cr_assert_eq(tw_chunk_text(&c, "crlf.txt", t, strlen(t), &p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.v[0].text, "line one\nline two", "one paragraph despite the blank lines before it");
    cr_assert_eq(c.v[0].line, 4);
    cr_assert_eq(c.v[0].end_line, 5);
    cr_assert_str_eq(c.v[1].text, "next");
    cr_assert_eq(c.v[1].line, 7);
    cr_assert_str_eq(c.v[2].text, "last one\r\nstill last");
    cr_assert_eq(c.v[2].line, 9);
    cr_assert_eq(c.v[2].end_line, 10);
    tw_chunks_free(&c);
}

Test(chunk, long_paragraph_cut_with_overlap)
{
    char *para = words(0, 450, ' ');
    tw_chunks c = {0};
    tw_error err = {0};
    tw_chunk_params p = tw_chunk_default_params();
    cr_assert_eq(p.max_words, 200);
    cr_assert_eq(p.overlap, 40);
    cr_assert_eq(tw_chunk_text(&c, "long.txt", para, strlen(para), &p, &err), TW_OK, "%s", err.msg);
    /* pieces [0,200) [160,360) [320,450) */
    cr_assert_eq(c.n, 3);
    char *e0 = words(0, 200, ' '), *e1 = words(160, 200, ' '), *e2 = words(320, 130, ' ');
    cr_assert_str_eq(c.v[0].text, e0);
    cr_assert_str_eq(c.v[1].text, e1);
    cr_assert_str_eq(c.v[2].text, e2);
    cr_assert_eq(c.v[2].n_words, 130);
    free(e0); free(e1); free(e2);
    free(para);
    tw_chunks_free(&c);

    /* one word per line: the line of each piece is the line of its first word */
    para = words(0, 450, '\n');
    cr_assert_eq(tw_chunk_text(&c, "lines.txt", para, strlen(para), &p, &err), TW_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(c.v[0].line, 1);
    cr_assert_eq(c.v[1].line, 161);
    cr_assert_eq(c.v[2].line, 321);
    cr_assert_eq(c.v[2].end_line, 450);
    free(para);
    tw_chunks_free(&c);
}

Test(chunk, greedy_merge_and_carry_over)
{
    /* paragraphs of 5, 4, 3, 6 words; max 10, overlap 4:
     * chunk 1 = P1 + P2 (9); P2 (4 <= overlap, 4 + 3 fits) opens chunk 2 = P2 + P3 (7; + P4 = 13 > 10);
     * P3 (3, 3 + 6 fits) opens chunk 3 = P3 + P4 (9). */
    const char *t = "a b c d e\n\nf g h i\n\nj k l\n\nm n o p q r\n";
    tw_chunk_params p = {.max_words = 10, .overlap = 4};
    tw_chunks c = {0};
    tw_error err = {0};
    cr_assert_eq(tw_chunk_text(&c, "m.txt", t, strlen(t), &p, &err), TW_OK);
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.v[0].text, "a b c d e\n\nf g h i");
    cr_assert_str_eq(c.v[1].text, "f g h i\n\nj k l");
    cr_assert_str_eq(c.v[2].text, "j k l\n\nm n o p q r");
    cr_assert_eq(c.v[1].line, 3);
    cr_assert_eq(c.v[2].line, 5);
    cr_assert_eq(c.v[2].end_line, 7);
    tw_chunks_free(&c);
    /* overlap 0: no carry-over */
    p.overlap = 0;
    cr_assert_eq(tw_chunk_text(&c, "m.txt", t, strlen(t), &p, &err), TW_OK);
    cr_assert_eq(c.n, 2);
    cr_assert_str_eq(c.v[1].text, "j k l\n\nm n o p q r");
    tw_chunks_free(&c);
    /* bad params */
    p.overlap = 10;
    cr_assert_eq(tw_chunk_text(&c, "m.txt", t, strlen(t), &p, &err), TW_ERR_INVALID);
    cr_assert_eq(c.n, 0);
}

Test(chunk, invalid_utf8_names_file_and_offset)
{
    const char t[] = "good text\n\nbad \xc3\x28 here";
    tw_chunks c = {0};
    tw_error err = {0};
    cr_assert_eq(tw_chunk_text(&c, "notes/x.md", t, sizeof t - 1, NULL, &err), TW_ERR_PARSE);
    cr_assert_str_eq(err.msg, "notes/x.md: offset 15: invalid UTF-8");
    cr_assert_eq(c.n, 0);
}

Test(chunk, folder)
{
    char *dir = tw_test_tmpdir();
    char sub[512];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    free(tw_test_write(dir, "b.md", "Bravo paragraph.\n"));
    free(tw_test_write(dir, "a.txt", "Alpha one.\n\nAlpha two.\n"));
    free(tw_test_write(dir, "empty.txt", ""));
    free(tw_test_write(dir, "skip.json", "{\"not\": \"read\"}"));
    free(tw_test_write(dir, ".hidden.md", "hidden"));
    free(tw_test_write(sub, "c.markdown", "Charlie\n"));
    tw_chunks c = {0};
    tw_error err = {0};
    cr_assert_eq(tw_chunk_dir(&c, dir, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(c.n_files, 4);
    cr_assert_eq(c.n, 3);
    cr_assert_str_eq(c.v[0].file, "a.txt");
    cr_assert_str_eq(c.v[0].text, "Alpha one.\n\nAlpha two.");
    cr_assert_str_eq(c.v[1].file, "b.md");
    cr_assert_str_eq(c.v[2].file, "sub/c.markdown");
    cr_assert_str_eq(c.v[2].text, "Charlie");

    /* one bad file: error names it with the offset, nothing is kept */
    free(tw_test_write(sub, "d.txt", "ok\n\xfe"));
    tw_chunks c2 = {0};
    cr_assert_eq(tw_chunk_dir(&c2, dir, NULL, &err), TW_ERR_PARSE);
    char want[600];
    snprintf(want, sizeof want, "%s/sub/d.txt: offset 3: invalid UTF-8", dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_eq(c2.n, 0);
    cr_assert_eq(c2.n_files, 0);

    /* no documents, missing folder */
    char *empty = tw_test_tmpdir();
    cr_assert_eq(tw_chunk_dir(&c2, empty, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "no .txt or .md files"), "%s", err.msg);
    cr_assert_eq(tw_chunk_dir(&c2, "/nonexistent/tw-docs", NULL, &err), TW_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/tw-docs"), "%s", err.msg);
    tw_chunks_free(&c);
    tw_chunks_free(&c2);
    tw_chunks_free(NULL);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, empty);
    cr_assert_eq(system(cmd), 0);
    free(dir);
    free(empty);
}
