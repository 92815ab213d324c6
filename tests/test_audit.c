/* test_audit.c — the data audit (src/task/audit.c) and its near-duplicate search
 * (src/task/minhash.c): constructed datasets with known duplicates, conflicts, leakage and
 * near-duplicates; hand-computed class balance, entropy and length percentiles; extract
 * JSON validity and field inventory; readiness branches; the known train/test duplicates
 * of the shared datasets; determinism; the human table. */
#include "testutil.h"

#include "task/audit.h"

#include <math.h>

/* ---- helpers ----------------------------------------------------------------------- */

static void push(tw_dataset *ds, const char *id, const char *input, const char *output)
{
    tw_example ex = {0};
    ex.id = (char *)id;
    ex.input = (char *)input;
    ex.output = (char *)output;
    ex.line = ds->n + 1;
    tw_error err = {0};
    cr_assert_eq(tw_dataset_push(ds, &ex, &err), TW_OK, "%s", err.msg);
}

static void pushf(tw_dataset *ds, const char *input, const char *output)
{
    char id[32];
    snprintf(id, sizeof id, "r%zu", ds->n);
    push(ds, id, input, output);
}

static json_t *run_audit(const tw_dataset *train, const tw_dataset *dev, const tw_dataset *test,
                         const tw_audit_params *p)
{
    const tw_dataset *sp[TW_SPLIT_COUNT] = {train, dev, test};
    json_t *r = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_audit(sp, p, &r, &err), TW_OK, "%s", err.msg);
    cr_assert_not_null(r);
    return r;
}

/* report["a"]["b"]... by a dotted path; array elements by number ("leakage.0.exact") */
static json_t *jget(const json_t *r, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = (json_t *)r;
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(v)) v = json_array_get(v, (size_t)atoi(tok));
        else v = json_object_get(v, tok);
        cr_assert_not_null(v, "no %s in the report (at %s)", path, tok);
    }
    return v;
}

static long long jint_at(const json_t *r, const char *path)
{
    json_t *v = jget(r, path);
    cr_assert(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

static double jreal_at(const json_t *r, const char *path)
{
    json_t *v = jget(r, path);
    cr_assert(json_is_number(v), "%s is not a number", path);
    return json_number_value(v);
}

static const char *jstr_at(const json_t *r, const char *path)
{
    json_t *v = jget(r, path);
    cr_assert(json_is_string(v), "%s is not a string", path);
    return json_string_value(v);
}

/* The leakage entry from→to. */
static json_t *leak_of(const json_t *r, const char *from, const char *to)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r, "leakage"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "from")), from) == 0 &&
            strcmp(json_string_value(json_object_get(e, "to")), to) == 0)
            return e;
    }
    cr_assert_fail("no leakage entry %s -> %s", from, to);
    return NULL;
}

/* The reason with this code, or NULL. */
static json_t *reason(const json_t *r, const char *code)
{
    size_t i;
    json_t *e;
    json_array_foreach(jget(r, "readiness.reasons"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "code")), code) == 0) return e;
    }
    return NULL;
}

static size_t count_level(const json_t *r, const char *level)
{
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(jget(r, "readiness.reasons"), i, e) n += strcmp(json_string_value(json_object_get(e, "level")), level) == 0;
    return n;
}

/* A random sentence of n distinct made-up words ("qakeli ..."): unrelated sentences share
 * almost no words, so they are neither duplicates nor near-duplicates of each other. */
static void random_sentence(tw_rng *rng, size_t n, char *out, size_t cap)
{
    static const char *const SYL[] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze",
                                      "ba", "di", "fo", "gu", "he", "ji"};
    uint64_t used[32];
    size_t o = 0;
    out[0] = '\0';
    for (size_t w = 0; w < n; w++) {
        uint64_t id;
        bool dup;
        do {
            id = tw_rng_below(rng, 16 * 16 * 16 * 16);
            dup = false;
            for (size_t k = 0; k < w; k++) dup |= used[k] == id;
        } while (dup);
        used[w] = id;
        char word[16];
        snprintf(word, sizeof word, "%s%s%s%s", SYL[id & 15], SYL[(id >> 4) & 15], SYL[(id >> 8) & 15],
                 SYL[(id >> 12) & 15]);
        o += (size_t)snprintf(out + o, cap - o, "%s%s", w ? " " : "", word);
    }
}

/* n rows with random 10-word inputs and labels cycling through n_classes. */
static void fill_random(tw_dataset *ds, tw_rng *rng, size_t n, size_t n_classes, const char *prefix)
{
    char text[256], id[64], label[32];
    for (size_t i = 0; i < n; i++) {
        random_sentence(rng, 10, text, sizeof text);
        snprintf(id, sizeof id, "%s-%zu", prefix, i);
        snprintf(label, sizeof label, "class_%zu", i % n_classes);
        push(ds, id, text, label);
    }
}

static tw_audit_params classify_params(void)
{
    return tw_audit_default_params();
}

/* ---- minhash -------------------------------------------------------------------------- */

Test(minhash, shingle_sets)
{
    tw_error err = {0};
    uint64_t *s = NULL;
    size_t n = 0;
    cr_assert_eq(tw_shingle_set("A b, a B!", 9, TW_SHINGLE_WORD, 1, &s, &n, &err), TW_OK);
    cr_assert_eq(n, 2, "words {a, b} after normalization, got %zu", n);
    free(s);
    cr_assert_eq(tw_shingle_set("one two three four", 18, TW_SHINGLE_WORD, 3, &s, &n, &err), TW_OK);
    cr_assert_eq(n, 2);   /* "one two three", "two three four" */
    free(s);
    cr_assert_eq(tw_shingle_set("one two", 7, TW_SHINGLE_WORD, 3, &s, &n, &err), TW_OK);
    cr_assert_eq(n, 1);   /* shorter than k: the text itself */
    free(s);
    cr_assert_eq(tw_shingle_set("abcd", 4, TW_SHINGLE_CHAR, 3, &s, &n, &err), TW_OK);
    cr_assert_eq(n, 2);   /* "abc", "bcd" */
    free(s);
    cr_assert_eq(tw_shingle_set("h\xc3\xa9llo", 6, TW_SHINGLE_CHAR, 5, &s, &n, &err), TW_OK);
    cr_assert_eq(n, 1);   /* 5 code points in 6 bytes: one 5-gram */
    free(s);
    cr_assert_eq(tw_shingle_set("?!  ...", 7, TW_SHINGLE_WORD, 1, &s, &n, &err), TW_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(s);

    uint64_t a[] = {1, 2, 3, 4}, b[] = {2, 3, 4, 5, 6};
    cr_assert_float_eq(tw_jaccard_sorted(a, 4, b, 5), 3.0 / 6.0, 1e-12);
    cr_assert_float_eq(tw_jaccard_sorted(a, 4, a, 4), 1.0, 1e-12);
    cr_assert_float_eq(tw_jaccard_sorted(a, 0, b, 0), 0.0, 1e-12);
}

Test(minhash, one_word_changed_in_twelve_is_near_duplicate)
{
    const char *texts[] = {
        "could you please send the monthly statement for our joint savings account",   /* 12 words */
        "my card was declined at the supermarket this morning",
        "what is the exchange rate for dollars",
    };
    tw_minhash_params p = tw_minhash_default_params();
    tw_nd_index *ix = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_nd_index_build(&ix, texts, 3, &p, &err), TW_OK, "%s", err.msg);
    tw_nd_match m;
    const char *q = "could you please send the yearly statement for our joint savings account";
    cr_assert_eq(tw_nd_index_query(ix, q, strlen(q), &m, &err), TW_OK);
    cr_assert_eq(m.index, 0);
    cr_assert_float_eq(m.jaccard, 11.0 / 13.0, 1e-12);   /* 11 shared words of 13 */
    cr_assert(m.estimate > 0.6 && m.estimate <= 1.0, "MinHash estimate %f", m.estimate);
    /* a word appended at the end (J = 12/13) */
    q = "could you please send the monthly statement for our joint savings account today";
    cr_assert_eq(tw_nd_index_query(ix, q, strlen(q), &m, &err), TW_OK);
    cr_assert_eq(m.index, 0);
    /* unrelated sentences, and one sharing a few words, are not */
    const char *unrelated[] = {
        "the weather in paris is lovely in spring",
        "please send me a new card",
        "my card was stolen yesterday at the station",   /* 4 shared words with text 1: J = 4/13 */
    };
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(tw_nd_index_query(ix, unrelated[i], strlen(unrelated[i]), &m, &err), TW_OK);
        cr_assert_eq(m.index, SIZE_MAX, "'%s' matched text %zu (J=%f)", unrelated[i], m.index, m.jaccard);
    }
    /* two words changed of 12: J = 10/14 < 0.8 → not a near-duplicate at the default */
    q = "could you please send the yearly statement for our joint checking account";
    cr_assert_eq(tw_nd_index_query(ix, q, strlen(q), &m, &err), TW_OK);
    cr_assert_eq(m.index, SIZE_MAX);
    tw_nd_index_free(ix);
}

Test(minhash, char_shingles_option_finds_typos)
{
    const char *texts[] = {"please transfer the remaining balance to my savings account"};
    tw_minhash_params p = tw_minhash_default_params();
    p.shingle = TW_SHINGLE_CHAR;
    p.k = 3;
    tw_nd_index *ix = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_nd_index_build(&ix, texts, 1, &p, &err), TW_OK, "%s", err.msg);
    tw_nd_match m;
    const char *q = "please transfer the remaining balanse to my savings acount";   /* two typos */
    cr_assert_eq(tw_nd_index_query(ix, q, strlen(q), &m, &err), TW_OK);
    cr_assert_eq(m.index, 0, "J=%f", m.jaccard);
    tw_nd_index_free(ix);
}

/* LSH recall: 400 random 12-word sentences; each query (one word replaced) must find its
 * source, and 400 fresh random sentences must find nothing. */
Test(minhash, lsh_recall_and_precision)
{
    enum { N = 400 };
    tw_rng rng;
    tw_rng_seed(&rng, 7);
    char **texts = calloc(N, sizeof *texts);
    for (size_t i = 0; i < N; i++) {
        texts[i] = malloc(256);
        random_sentence(&rng, 12, texts[i], 256);
    }
    tw_minhash_params p = tw_minhash_default_params();
    tw_nd_index *ix = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_nd_index_build(&ix, (const char *const *)texts, N, &p, &err), TW_OK, "%s", err.msg);
    for (size_t i = 0; i < N; i++) {
        /* replace word 5 with "zzzz" (never generated) */
        char q[300];
        const char *t = texts[i];
        const char *w5 = t;
        for (int k = 0; k < 5; k++) w5 = strchr(w5, ' ') + 1;
        const char *w6 = strchr(w5, ' ');
        snprintf(q, sizeof q, "%.*szzzz%s", (int)(w5 - t), t, w6);
        tw_nd_match m;
        cr_assert_eq(tw_nd_index_query(ix, q, strlen(q), &m, &err), TW_OK);
        cr_assert_eq(m.index, i, "query %zu found %zu", i, m.index);
        cr_assert_float_eq(m.jaccard, 11.0 / 13.0, 1e-12);
    }
    for (size_t i = 0; i < N; i++) {
        char q[256];
        random_sentence(&rng, 12, q, sizeof q);
        tw_nd_match m;
        cr_assert_eq(tw_nd_index_query(ix, q, strlen(q), &m, &err), TW_OK);
        cr_assert_eq(m.index, SIZE_MAX);
    }
    /* the S-curve of the default banding at the threshold */
    cr_assert(tw_lsh_candidate_prob(0.8, 32, 4) > 0.9999999);
    cr_assert(tw_lsh_candidate_prob(0.2, 32, 4) < 0.05);
    tw_nd_index_free(ix);
    for (size_t i = 0; i < N; i++) free(texts[i]);
    free(texts);
}

Test(minhash, bad_params)
{
    tw_minhash_params p = tw_minhash_default_params();
    tw_error err = {0};
    p.threshold = 1.5;
    cr_assert_eq(tw_minhash_params_check(&p, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "threshold"));
    p = tw_minhash_default_params();
    p.k = 0;
    cr_assert_eq(tw_minhash_params_check(&p, &err), TW_ERR_INVALID);
    p = tw_minhash_default_params();
    p.bands = 0;
    cr_assert_eq(tw_minhash_params_check(&p, &err), TW_ERR_INVALID);
}

/* ---- per split checks ------------------------------------------------------------------- */

Test(audit, duplicates_and_conflicts)
{
    tw_dataset tr = {0};
    push(&tr, "h1", "Hello world", "a");
    push(&tr, "o1", "Other text", "a");
    push(&tr, "h2", "Hello world", "a");
    push(&tr, "h3", "Hello world", "a");
    push(&tr, "h4", "hello,   WORLD!", "b");   /* normalized duplicate with another label */
    push(&tr, "o2", "Other text", "a");
    push(&tr, "u1", "unique", "b");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, NULL, NULL, &p);

    cr_assert_eq(jint_at(r, "splits.train.rows"), 7);
    cr_assert_eq(jint_at(r, "splits.train.duplicates.exact.rows"), 3);     /* h2, h3, o2 */
    cr_assert_eq(jint_at(r, "splits.train.duplicates.exact.groups"), 2);
    cr_assert_eq(jint_at(r, "splits.train.duplicates.normalized.rows"), 4);/* + h4 */
    cr_assert_eq(jint_at(r, "splits.train.duplicates.normalized.groups"), 2);
    cr_assert_str_eq(jstr_at(r, "splits.train.duplicates.exact.examples.0.input"), "Hello world");
    cr_assert_eq(jint_at(r, "splits.train.duplicates.exact.examples.0.count"), 3);
    cr_assert_str_eq(jstr_at(r, "splits.train.duplicates.exact.examples.0.ids.2"), "h3");

    cr_assert_eq(jint_at(r, "splits.train.conflicts.groups"), 1);
    cr_assert_eq(jint_at(r, "splits.train.conflicts.rows"), 4);
    cr_assert_eq(json_array_size(jget(r, "splits.train.conflicts.examples.0.outputs")), 2);
    cr_assert_str_eq(jstr_at(r, "splits.train.conflicts.examples.0.rows.3.id"), "h4");
    cr_assert_eq(jint_at(r, "splits.train.conflicts.examples.0.rows.3.line"), 5);
    cr_assert_str_eq(jstr_at(r, "splits.train.conflicts.examples.0.rows.3.output"), "b");
    json_t *c = reason(r, "conflicts_train");
    cr_assert_not_null(c);
    cr_assert_str_eq(json_string_value(json_object_get(c, "level")), "warning");
    cr_assert(strstr(json_string_value(json_object_get(c, "message")), "1 input in train appears"),
              "%s", json_string_value(json_object_get(c, "message")));
    json_decref(r);
    tw_dataset_free(&tr);
}

Test(audit, class_balance_and_entropy)
{
    tw_dataset tr = {0}, te = {0};
    const char *labels[] = {"a", "a", "a", "a", "a", "a", "b", "b", "b", "c"};
    for (size_t i = 0; i < 10; i++) {
        char in[32];
        snprintf(in, sizeof in, "input number %zu", i);
        pushf(&tr, in, labels[i]);
    }
    pushf(&te, "test one", "a");
    pushf(&te, "test two", "e");      /* not in train, not declared */
    pushf(&te, "test three", "e");
    const char *declared[] = {"a", "b", "c", "d"};
    tw_audit_params p = classify_params();
    p.labels = declared;
    p.n_labels = 4;
    json_t *r = run_audit(&tr, NULL, &te, &p);

    cr_assert_eq(jint_at(r, "splits.train.classes.count"), 3);
    cr_assert_eq(jint_at(r, "splits.train.classes.counts.a"), 6);
    cr_assert_eq(jint_at(r, "splits.train.classes.counts.c"), 1);
    cr_assert_str_eq(jstr_at(r, "splits.train.classes.min.label"), "c");
    cr_assert_str_eq(jstr_at(r, "splits.train.classes.max.label"), "a");
    cr_assert_float_eq(jreal_at(r, "splits.train.classes.imbalance_ratio"), 6.0, 1e-9);
    cr_assert_float_eq(jreal_at(r, "splits.train.classes.majority_share"), 0.6, 1e-9);
    /* H = -(.6 ln .6 + .3 ln .3 + .1 ln .1) = 0.897946; / ln 3 = 0.817345 */
    cr_assert_float_eq(jreal_at(r, "splits.train.classes.normalized_entropy"), 0.817345, 1e-6);
    /* counts ordered by count, then label */
    const char *k0 = json_object_iter_key(json_object_iter(jget(r, "splits.train.classes.counts")));
    cr_assert_str_eq(k0, "a");
    /* below 10 per class: every class, ascending; declared "d" with 0 rows included */
    cr_assert_eq(json_array_size(jget(r, "splits.train.classes.below_min_per_class")), 4);
    cr_assert_str_eq(jstr_at(r, "splits.train.classes.below_min_per_class.0.label"), "d");
    cr_assert_eq(jint_at(r, "splits.train.classes.below_min_per_class.0.count"), 0);
    cr_assert_str_eq(jstr_at(r, "splits.train.classes.below_min_per_class.3.label"), "a");
    /* test: unseen and undeclared label e (2 rows) */
    cr_assert_eq(jint_at(r, "splits.test.unseen_labels.rows"), 2);
    cr_assert_str_eq(jstr_at(r, "splits.test.unseen_labels.labels.0.label"), "e");
    cr_assert_str_eq(jstr_at(r, "splits.test.classes.undeclared.0.label"), "e");
    cr_assert_eq(jint_at(r, "splits.test.classes.undeclared.0.count"), 2);
    /* balanced test split of one class each: entropy over the present classes */
    cr_assert_float_eq(jreal_at(r, "splits.test.classes.imbalance_ratio"), 2.0, 1e-9);
    cr_assert_not_null(reason(r, "few_per_class"));
    cr_assert_not_null(reason(r, "unseen_labels"));
    cr_assert_not_null(reason(r, "undeclared_labels"));
    cr_assert(strstr(json_string_value(json_object_get(reason(r, "few_per_class"), "message")),
                     "4 classes have fewer than 10 training rows (d (0), c (1), b (3), a (6))"),
              "%s", json_string_value(json_object_get(reason(r, "few_per_class"), "message")));
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}

Test(audit, length_distributions)
{
    tw_dataset tr = {0};
    pushf(&tr, "a", "x");
    pushf(&tr, "bb cc", "x");
    pushf(&tr, "ddd eee fff", "x");
    pushf(&tr, "h\xc3\xa9llo w\xc3\xb6rld", "x");   /* 11 code points in 13 bytes */
    pushf(&tr, "one two three four five", "yy yy");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, NULL, NULL, &p);
    /* chars sorted 1 5 11 11 23; nearest rank: p50 = 3rd, p90 = p99 = 5th */
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.chars.min"), 1);
    cr_assert_float_eq(jreal_at(r, "splits.train.lengths.input.chars.mean"), 10.2, 1e-9);
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.chars.p50"), 11);
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.chars.p90"), 23);
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.chars.p99"), 23);
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.chars.max"), 23);
    /* words sorted 1 2 2 3 5 */
    cr_assert_float_eq(jreal_at(r, "splits.train.lengths.input.words.mean"), 2.6, 1e-9);
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.words.p50"), 2);
    cr_assert_eq(jint_at(r, "splits.train.lengths.input.words.p90"), 5);
    cr_assert_eq(jint_at(r, "splits.train.lengths.output.words.max"), 2);
    cr_assert_eq(jint_at(r, "splits.train.lengths.output.chars.p50"), 1);
    json_decref(r);
    tw_dataset_free(&tr);
}

Test(audit, extract_json_validity_and_fields)
{
    tw_dataset tr = {0}, te = {0};
    pushf(&tr, "book paris today", "{\"intent\":\"Book\",\"slots\":{\"city\":\"Paris\",\"date\":\"today\"}}");
    pushf(&tr, "book rome", "{\"slots\":{\"city\":\"Rome\"},\"intent\":\"Book\"}");
    pushf(&tr, "play x", "{\"intent\":\"Play\",\"slots\":{},\"entities\":[{\"type\":\"artist\",\"text\":\"x\"},"
                         "{\"type\":\"song\"}]}");
    pushf(&tr, "broken", "not json");
    pushf(&tr, "array", "[1, 2]");
    /* same input, same content in another key order: not a conflict */
    pushf(&tr, "order test", "{\"a\": 1, \"b\": 2}");
    pushf(&tr, "Order test!", "{\"b\":2,\"a\":1}");
    /* same input, different content: a conflict */
    pushf(&tr, "value test", "{\"a\": 1}");
    pushf(&tr, "value test", "{\"a\": 2}");
    pushf(&te, "price of x", "{\"intent\":\"Ask\",\"price\":3}");
    tw_audit_params p = tw_audit_default_params();
    p.type = TW_TASK_EXTRACT;
    json_t *r = run_audit(&tr, NULL, &te, &p);

    cr_assert_eq(jint_at(r, "splits.train.extract.outputs"), 9);
    cr_assert_eq(jint_at(r, "splits.train.extract.json_objects"), 7);
    cr_assert_float_eq(jreal_at(r, "splits.train.extract.share"), 7.0 / 9.0, 1e-6);
    cr_assert_eq(json_array_size(jget(r, "splits.train.extract.invalid_examples")), 2);
    cr_assert_str_eq(jstr_at(r, "splits.train.extract.invalid_examples.0.id"), "r3");
    cr_assert_eq(jint_at(r, "splits.train.extract.invalid_examples.1.line"), 5);

    /* fields: rows having the key, count desc then name */
    static const struct { const char *key; long long rows; } want[] = {
        {"a", 4}, {"intent", 3}, {"slots", 3}, {"b", 2}, {"slots.city", 2}, {"entities", 1},
        {"entities[].text", 1}, {"entities[].type", 1}, {"slots.date", 1},
    };
    json_t *fields = jget(r, "splits.train.extract.fields");
    cr_assert_eq(json_array_size(fields), sizeof want / sizeof *want);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        json_t *f = json_array_get(fields, i);
        cr_assert_str_eq(json_string_value(json_object_get(f, "key")), want[i].key, "field %zu", i);
        cr_assert_eq(json_integer_value(json_object_get(f, "rows")), want[i].rows, "field %s", want[i].key);
    }
    cr_assert_str_eq(jstr_at(r, "splits.test.extract.unseen_fields.0"), "price");
    cr_assert_eq(jint_at(r, "splits.train.conflicts.groups"), 1);
    cr_assert_str_eq(jstr_at(r, "splits.train.conflicts.examples.0.input"), "value test");
    cr_assert_not_null(reason(r, "invalid_json_train"));
    cr_assert(strstr(json_string_value(json_object_get(reason(r, "invalid_json_train"), "message")),
                     "2 of 9 train outputs"));
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}

Test(audit, generate_references)
{
    tw_dataset tr = {0}, te = {0};
    pushf(&tr, "mr one", "ref");
    char *refs[] = {"r1", "r2", "r3"};
    tw_example ex = {.id = "t0", .input = "mr two", .output = "r1", .refs = refs, .n_refs = 3, .line = 1};
    tw_error err = {0};
    cr_assert_eq(tw_dataset_push(&te, &ex, &err), TW_OK);
    pushf(&te, "mr three", "only one");
    pushf(&te, "mr four", NULL);
    tw_audit_params p = tw_audit_default_params();
    p.type = TW_TASK_GENERATE;
    json_t *r = run_audit(&tr, NULL, &te, &p);
    cr_assert_eq(jint_at(r, "splits.test.references.rows_without"), 1);
    cr_assert_eq(jint_at(r, "splits.test.references.per_item.min"), 0);
    cr_assert_eq(jint_at(r, "splits.test.references.per_item.max"), 3);
    cr_assert_float_eq(jreal_at(r, "splits.test.references.per_item.mean"), 4.0 / 3.0, 1e-6);
    cr_assert(json_is_null(jget(r, "splits.test.conflicts")));
    cr_assert_not_null(reason(r, "missing_references"));
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}

/* ---- leakage -------------------------------------------------------------------------------- */

Test(audit, leakage_tiers)
{
    tw_dataset tr = {0}, dv = {0}, te = {0};
    push(&tr, "t0", "could you please send the monthly statement for our joint savings account", "stmt");
    push(&tr, "t1", "How do I reset my password?", "pw");
    push(&tr, "t2", "completely different sentence about banking fees", "fees");
    push(&tr, "t3", "How do I reset my password?", "pw");
    push(&te, "s0", "How do I reset my password?", "pw");                 /* exact (2 train rows) */
    push(&te, "s1", "how do i RESET my password", "other");               /* normalized, label differs */
    push(&te, "s2", "could you please send the yearly statement for our joint savings account", "stmt");
    push(&te, "s3", "an unrelated remark on weather and football", "x");
    push(&te, "s4", "the fees of the bank are completely different", "fees");   /* J = 3/10 */
    push(&te, "s5", "How do I reset my password?", "pw");                 /* exact again, same input */
    push(&dv, "d0", "an unrelated remark on weather and football", "x");  /* dev→test exact */
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, &dv, &te, &p);

    json_t *l = leak_of(r, "train", "test");
    cr_assert_eq(jint_at(l, "rows"), 6);
    cr_assert_eq(jint_at(l, "exact.rows"), 2);
    cr_assert_eq(jint_at(l, "exact.distinct_inputs"), 1);
    cr_assert_eq(jint_at(l, "exact.matched_from_rows"), 2);
    cr_assert_eq(jint_at(l, "exact.label_differs"), 0);
    cr_assert_str_eq(jstr_at(l, "exact.examples.0.id"), "s0");
    cr_assert_str_eq(jstr_at(l, "exact.examples.0.match_id"), "t1");
    cr_assert_eq(jint_at(l, "exact.examples.0.matches"), 2);
    cr_assert_eq(jint_at(l, "normalized.rows"), 1);
    cr_assert_eq(jint_at(l, "normalized.label_differs"), 1);
    cr_assert_str_eq(jstr_at(l, "normalized.examples.0.id"), "s1");
    cr_assert_eq(jint_at(l, "near.rows"), 1);
    cr_assert_str_eq(jstr_at(l, "near.examples.0.id"), "s2");
    cr_assert_str_eq(jstr_at(l, "near.examples.0.match_id"), "t0");
    cr_assert_float_eq(jreal_at(l, "near.examples.0.jaccard"), 11.0 / 13.0, 1e-6);
    cr_assert_eq(jint_at(l, "total"), 4);
    cr_assert(strstr(jstr_at(l, "counted"), "rows of test whose input also occurs in train"));

    json_t *l2 = leak_of(r, "dev", "test");
    cr_assert_eq(jint_at(l2, "exact.rows"), 1);
    cr_assert_eq(jint_at(leak_of(r, "train", "dev"), "total"), 0);

    json_t *w = reason(r, "leakage_test");
    cr_assert_not_null(w);
    cr_assert_str_eq(json_string_value(json_object_get(w, "level")), "warning");
    const char *msg = json_string_value(json_object_get(w, "message"));
    cr_assert(strstr(msg, "4 test rows (66.7%) also occur in train (exact: 2, after normalization: 1, "
                          "near-duplicate: 1)"), "%s", msg);

    /* near-duplicate search off: the near tier is null and s2 is not counted */
    p.near_dup_enabled = false;
    json_t *r2 = run_audit(&tr, &dv, &te, &p);
    cr_assert(json_is_null(jget(leak_of(r2, "train", "test"), "near")));
    cr_assert_eq(jint_at(leak_of(r2, "train", "test"), "total"), 3);
    json_decref(r2);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&dv);
    tw_dataset_free(&te);
}

/* ---- readiness -------------------------------------------------------------------------------- */

Test(audit, mde_two_proportion)
{
    /* (z_.975 + z_.8) sqrt(2 * .8 * .2 / n), checked against Python's statistics.NormalDist */
    cr_assert_float_eq(tw_audit_mde_two_proportion(3080, 0.8, 0.05, 0.8), 0.0285564, 1e-6);
    cr_assert_float_eq(tw_audit_mde_two_proportion(200, 0.8, 0.05, 0.8), 0.1120634, 1e-6);
    cr_assert_float_eq(tw_audit_mde_two_proportion(700, 0.8, 0.05, 0.8), 0.0599004, 1e-6);
    cr_assert(isnan(tw_audit_mde_two_proportion(0, 0.8, 0.05, 0.8)));
}

Test(audit, readiness_tiny_data_is_not_ready)
{
    tw_rng rng;
    tw_rng_seed(&rng, 3);
    tw_dataset tr = {0}, te = {0};
    fill_random(&tr, &rng, 20, 2, "tr");   /* 10 per class */
    fill_random(&te, &rng, 10, 2, "te");
    push(&tr, "extra", "one more row", "class_1");   /* class_0: 10, class_1: 11 */
    tw_dataset tr2 = {0};
    fill_random(&tr2, &rng, 15, 3, "tr2");   /* 5 per class → below 10 */
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr2, NULL, &te, &p);
    cr_assert_str_eq(jstr_at(r, "readiness.verdict"), "not_ready");
    cr_assert_eq(tw_audit_verdict(r), TW_AUDIT_NOT_READY);
    cr_assert_str_eq(jstr_at(r, "readiness.eval.level"), "not_ready");
    cr_assert_str_eq(jstr_at(r, "readiness.finetune.level"), "not_ready");
    cr_assert_str_eq(jstr_at(r, "readiness.prompting.level"), "ready");
    json_t *a = reason(r, "train_too_small"), *b = reason(r, "eval_too_small");
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_str_eq(json_string_value(json_object_get(a, "level")), "blocker");
    const char *ma = json_string_value(json_object_get(a, "message"));
    const char *mb = json_string_value(json_object_get(b, "message"));
    cr_assert(strstr(ma, "Train has 15 labeled rows") && strstr(ma, "Label at least 85 more"), "%s", ma);
    cr_assert(strstr(mb, "The test set has 10 labeled rows") && strstr(mb, "Label at least 190 more"), "%s", mb);
    cr_assert_not_null(reason(r, "few_per_class"));
    cr_assert_null(reason(r, "leakage_test"));
    /* blockers come first */
    cr_assert_str_eq(jstr_at(r, "readiness.reasons.0.level"), "blocker");
    /* MDE on 10 rows near 80%: 2.8016 * sqrt(.32 / 10) = 50.1 points */
    cr_assert_float_eq(jreal_at(r, "readiness.eval.mde.difference"), 0.501162, 1e-5);
    json_decref(r);

    /* exactly 10 per class is not "below 10" */
    r = run_audit(&tr, NULL, &te, &p);
    cr_assert_null(reason(r, "few_per_class"));
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&tr2);
    tw_dataset_free(&te);
}

Test(audit, readiness_middle_is_usable_with_warnings)
{
    tw_rng rng;
    tw_rng_seed(&rng, 4);
    tw_dataset tr = {0}, te = {0};
    fill_random(&tr, &rng, 300, 3, "tr");
    fill_random(&te, &rng, 300, 3, "te");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, NULL, &te, &p);
    cr_assert_str_eq(jstr_at(r, "readiness.verdict"), "warnings");
    cr_assert_eq(tw_audit_verdict(r), TW_AUDIT_WARNINGS);
    cr_assert_not_null(reason(r, "train_small"));
    cr_assert_not_null(reason(r, "eval_small"));
    cr_assert_eq(count_level(r, "blocker"), 0);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}

Test(audit, readiness_enough_data_is_ready)
{
    tw_rng rng;
    tw_rng_seed(&rng, 5);
    tw_dataset tr = {0}, dv = {0}, te = {0};
    fill_random(&tr, &rng, 1200, 3, "tr");
    fill_random(&dv, &rng, 200, 3, "dv");
    fill_random(&te, &rng, 600, 3, "te");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, &dv, &te, &p);
    cr_assert_str_eq(jstr_at(r, "readiness.verdict"), "ready", "%s",
                     json_dumps(jget(r, "readiness.reasons"), JSON_INDENT(1)));
    cr_assert_eq(tw_audit_verdict(r), TW_AUDIT_READY);
    cr_assert_str_eq(jstr_at(r, "readiness.eval.split"), "test");
    cr_assert_eq(jint_at(r, "readiness.eval.rows"), 600);
    cr_assert_eq(count_level(r, "warning") + count_level(r, "blocker"), 0);
    cr_assert_not_null(reason(r, "eval_size_ok"));
    cr_assert_not_null(reason(r, "train_size_ok"));
    cr_assert_eq(jint_at(leak_of(r, "train", "test"), "total"), 0);
    cr_assert_eq(jint_at(r, "readiness.eval.mde.rows_for_5_points"), 1005);

    /* add one leaked row: the verdict drops to warnings and the reason names the count */
    push(&te, "leak", tr.rows[17].input, tr.rows[17].output);
    json_t *r2 = run_audit(&tr, &dv, &te, &p);
    cr_assert_str_eq(jstr_at(r2, "readiness.verdict"), "warnings");
    const char *m = json_string_value(json_object_get(reason(r2, "leakage_test"), "message"));
    cr_assert(strstr(m, "1 test row (0.2%) also occurs in train (exact: 1,"), "%s", m);
    json_decref(r2);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&dv);
    tw_dataset_free(&te);
}

Test(audit, readiness_without_eval_split)
{
    tw_rng rng;
    tw_rng_seed(&rng, 6);
    tw_dataset tr = {0};
    fill_random(&tr, &rng, 3, 3, "tr");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, NULL, NULL, &p);
    cr_assert_not_null(reason(r, "no_eval_set"));
    cr_assert_not_null(reason(r, "too_few_shots"));
    cr_assert_str_eq(jstr_at(r, "readiness.prompting.level"), "warnings");
    cr_assert(json_is_null(jget(r, "readiness.eval.mde")));
    cr_assert(json_is_null(jget(r, "splits.test")));
    cr_assert_eq(json_array_size(jget(r, "leakage")), 0);
    json_decref(r);
    tw_dataset_free(&tr);
}

Test(audit, errors)
{
    const tw_dataset *none[TW_SPLIT_COUNT] = {NULL, NULL, NULL};
    json_t *r = (json_t *)1;
    tw_error err = {0};
    cr_assert_eq(tw_audit(none, NULL, &r, &err), TW_ERR_INVALID);
    cr_assert_null(r);
    cr_assert(strstr(err.msg, "no split"));
    tw_dataset tr = {0};
    pushf(&tr, "x", "y");
    const tw_dataset *sp[TW_SPLIT_COUNT] = {&tr, NULL, NULL};
    tw_audit_params p = tw_audit_default_params();
    p.near_dup.threshold = 0;
    cr_assert_eq(tw_audit(sp, &p, &r, &err), TW_ERR_INVALID);
    p = tw_audit_default_params();
    p.alpha = 1.5;
    cr_assert_eq(tw_audit(sp, &p, &r, &err), TW_ERR_INVALID);
    /* rows that bypassed the readers: a label that is not UTF-8 cannot be a report key */
    tw_dataset bad = {0};
    pushf(&bad, "x", "\xff\xfe");
    const tw_dataset *spb[TW_SPLIT_COUNT] = {&bad, NULL, NULL};
    p = tw_audit_default_params();
    cr_assert_eq(tw_audit(spb, &p, &r, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "UTF-8"), "%s", err.msg);
    cr_assert_null(r);
    tw_dataset_free(&bad);
    json_t *notreport = json_object();
    tw_buf b = {0};
    cr_assert_eq(tw_audit_format(notreport, &b), TW_ERR_INVALID);
    cr_assert_eq(tw_audit_verdict(notreport), TW_AUDIT_NOT_READY);
    cr_assert_str_eq(tw_audit_level_str(TW_AUDIT_WARNINGS), "usable with warnings");
    json_decref(notreport);
    tw_buf_free(&b);
    tw_dataset_free(&tr);
}

Test(audit, empty_splits)
{
    tw_dataset tr = {0}, te = {0};
    tw_audit_params p = tw_audit_default_params();
    json_t *r = run_audit(&tr, NULL, &te, &p);
    cr_assert_eq(jint_at(r, "splits.train.rows"), 0);
    cr_assert(json_is_null(jget(r, "splits.train.lengths.input.chars")));
    cr_assert(json_is_null(jget(r, "splits.train.classes.min")));
    cr_assert_eq(json_array_size(jget(r, "leakage")), 0);
    cr_assert_not_null(reason(r, "no_eval_set"));
    cr_assert_not_null(reason(r, "no_train"));
    cr_assert_not_null(reason(r, "no_shots"));
    tw_buf b = {0};
    cr_assert_eq(tw_audit_format(r, &b), TW_OK);
    tw_buf_free(&b);
    json_decref(r);
    p.type = TW_TASK_EXTRACT;
    r = run_audit(&tr, NULL, &te, &p);
    cr_assert(json_is_null(jget(r, "splits.train.extract.share")));
    json_decref(r);
    p.type = TW_TASK_GENERATE;
    r = run_audit(&tr, NULL, &te, &p);
    cr_assert(json_is_null(jget(r, "splits.train.references.per_item")));
    json_decref(r);
}

Test(audit, params_for_task)
{
    char *labels[] = {"pos", "neg"};
    tw_task t = {0};
    t.type = TW_TASK_EXTRACT;
    t.labels = labels;
    t.n_labels = 2;
    t.seed = 99;
    tw_audit_params p = tw_audit_params_for_task(&t);
    cr_assert_eq(p.type, TW_TASK_EXTRACT);
    cr_assert_eq(p.n_labels, 2);
    cr_assert_str_eq(p.labels[1], "neg");
    cr_assert_eq(p.seed, 99);
    cr_assert_eq(p.min_train, 100);
    cr_assert_float_eq(p.near_dup.threshold, 0.8, 1e-12);
}

/* ---- the shared datasets ------------------------------------------------------------------------ */

static void load(tw_dataset *ds, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/data/%s", tw_test_shared(), rel);
    tw_reader_params rp = tw_reader_default_params();
    tw_error err = {0};
    cr_assert_eq(tw_dataset_load(ds, path, &rp, &err), TW_OK, "%s", err.msg);
}

/* Every line of the table fits 100 columns (code points). */
static void assert_fits(const char *text)
{
    size_t line = 1;
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        cr_assert(tw_utf8_len(p, n) <= 100, "line %zu has %zu columns: %.*s", line, tw_utf8_len(p, n), (int)n, p);
        p += n + (p[n] == '\n');
        line++;
    }
}

Test(audit_real, banking77_train_test_duplicates, .timeout = 60)
{
    tw_dataset tr = {0}, te = {0};
    load(&tr, "banking77/train.jsonl");
    load(&te, "banking77/test.jsonl");
    tw_audit_params p = classify_params();
    double t0 = tw_now();
    json_t *r = run_audit(&tr, NULL, &te, &p);
    double dt = tw_now() - t0;
    cr_log_info("banking77 audit (10,003 + 3,080 rows): %.3f s", dt);
    json_t *l = leak_of(r, "train", "test");
    cr_assert_eq(jint_at(l, "exact.rows"), 6);
    cr_assert_eq(jint_at(l, "exact.distinct_inputs"), 6);
    cr_assert_eq(jint_at(l, "exact.matched_from_rows"), 6);
    cr_assert_eq(jint_at(r, "splits.train.classes.count"), 77);
    cr_assert_eq(jint_at(r, "splits.train.classes.min.count"), 35);
    cr_assert_eq(jint_at(r, "splits.train.classes.max.count"), 187);
    cr_assert_float_eq(jreal_at(r, "splits.test.classes.normalized_entropy"), 1.0, 1e-9);
    cr_assert_eq(json_array_size(jget(r, "splits.test.unseen_labels.labels")), 0);
    cr_assert_not_null(reason(r, "leakage_test"));
    cr_assert_str_eq(jstr_at(r, "readiness.finetune.level"), "ready");
    tw_buf b = {0};
    cr_assert_eq(tw_audit_format(r, &b), TW_OK);
    assert_fits(b.data);
    cr_assert(strstr(b.data, "readiness: usable with warnings"));
    tw_buf_free(&b);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}

Test(audit_real, sst2_train_test_duplicates, .timeout = 60)
{
    tw_dataset tr = {0}, dv = {0}, te = {0};
    load(&tr, "sst2/train.jsonl");
    load(&dv, "sst2/dev.jsonl");
    load(&te, "sst2/test.jsonl");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, &dv, &te, &p);
    json_t *l = leak_of(r, "train", "test");
    cr_assert_eq(jint_at(l, "exact.rows"), 2);
    cr_assert_eq(jint_at(l, "exact.distinct_inputs"), 2);
    cr_assert_eq(jint_at(l, "exact.matched_from_rows"), 3);   /* one of them occurs twice in train */
    cr_assert_eq(jint_at(leak_of(r, "train", "dev"), "exact.rows"), 0);
    cr_assert_eq(jint_at(r, "splits.train.classes.counts.positive"), 3610);
    cr_assert_eq(jint_at(r, "splits.train.classes.counts.negative"), 3310);
    tw_buf b = {0};
    cr_assert_eq(tw_audit_format(r, &b), TW_OK);
    assert_fits(b.data);
    tw_buf_free(&b);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&dv);
    tw_dataset_free(&te);
}

/* SNIPS: "26" counts test rows whose input also occurs in train; they are 25 distinct
 * inputs (one occurs twice in test) matching 64 train rows. */
Test(audit_real, snips_train_test_duplicates, .timeout = 60)
{
    tw_dataset tr = {0}, dv = {0}, te = {0};
    load(&tr, "snips_slots/train.jsonl");
    load(&dv, "snips_slots/dev.jsonl");
    load(&te, "snips_slots/test.jsonl");
    tw_audit_params p = tw_audit_default_params();
    p.type = TW_TASK_EXTRACT;
    double t0 = tw_now();
    json_t *r = run_audit(&tr, &dv, &te, &p);
    cr_log_info("snips audit (13,084 + 700 + 700 rows): %.3f s", tw_now() - t0);
    json_t *l = leak_of(r, "train", "test");
    cr_assert_eq(jint_at(l, "exact.rows"), 26);
    cr_assert_eq(jint_at(l, "exact.distinct_inputs"), 25);
    cr_assert_eq(jint_at(l, "exact.matched_from_rows"), 64);
    cr_assert_eq(jint_at(leak_of(r, "train", "dev"), "exact.rows"), 15);
    cr_assert_eq(jint_at(r, "splits.train.extract.json_objects"), 13084);
    cr_assert_float_eq(jreal_at(r, "splits.train.extract.share"), 1.0, 1e-12);
    /* intent + slots + the 39 slot types of stats.json */
    cr_assert_eq(json_array_size(jget(r, "splits.train.extract.fields")), 41);
    cr_assert_str_eq(jstr_at(r, "splits.train.extract.fields.0.key"), "intent");
    tw_buf b = {0};
    cr_assert_eq(tw_audit_format(r, &b), TW_OK);
    assert_fits(b.data);
    tw_buf_free(&b);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&dv);
    tw_dataset_free(&te);
}

Test(audit_real, same_seed_same_report, .timeout = 60)
{
    tw_dataset tr = {0}, te = {0};
    load(&tr, "banking77/train.jsonl");
    load(&te, "banking77/test.jsonl");
    tw_audit_params p = classify_params();
    p.seed = 42;
    json_t *r1 = run_audit(&tr, NULL, &te, &p);
    json_t *r2 = run_audit(&tr, NULL, &te, &p);
    char *s1 = json_dumps(r1, JSON_COMPACT), *s2 = json_dumps(r2, JSON_COMPACT);
    cr_assert_str_eq(s1, s2);
    tw_buf b1 = {0}, b2 = {0};
    cr_assert_eq(tw_audit_format(r1, &b1), TW_OK);
    cr_assert_eq(tw_audit_format(r2, &b2), TW_OK);
    cr_assert_str_eq(b1.data, b2.data);
    /* the seed only drives MinHash; exact tiers never depend on it */
    p.seed = 43;
    json_t *r3 = run_audit(&tr, NULL, &te, &p);
    cr_assert_eq(jint_at(leak_of(r3, "train", "test"), "exact.rows"), 6);
    cr_assert_eq(jint_at(r3, "seed"), 43);
    free(s1);
    free(s2);
    tw_buf_free(&b1);
    tw_buf_free(&b2);
    json_decref(r1);
    json_decref(r2);
    json_decref(r3);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}

Test(audit, format_small_report)
{
    tw_dataset tr = {0}, te = {0};
    pushf(&tr, "Hello world", "greeting");
    pushf(&tr, "hello world!", "farewell");
    pushf(&te, "Hello world", "greeting");
    tw_audit_params p = classify_params();
    json_t *r = run_audit(&tr, NULL, &te, &p);
    tw_buf b = {0};
    cr_assert_eq(tw_audit_format(r, &b), TW_OK);
    assert_fits(b.data);
    cr_assert(strstr(b.data, "tunewise audit: classify task, 2 splits, seed 1"), "%s", b.data);
    cr_assert(strstr(b.data, "readiness: not ready"), "%s", b.data);
    cr_assert(strstr(b.data, "[blocker]"), "%s", b.data);
    cr_assert(strstr(b.data, "conflicting labels in train"), "%s", b.data);
    cr_assert(strstr(b.data, "train -> test"), "%s", b.data);
    tw_buf_free(&b);
    json_decref(r);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
}
