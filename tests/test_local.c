/* test_local.c — the in-process backend (src/backend/local.c): prefix reuse gives the same
 * answers as computing the whole prompt, misses are detected, choice scoring equals the
 * engine's own scoring, the model id is the file's SHA-256; on stories260K (fast) and on
 * the real SmolLM2-135M-Instruct with its chat template. */
#include "testutil.h"

#include "backend/local.h"

#include <math.h>

static const char *stories_path(void)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(tw_file_exists(p), "%s is missing (../shared/models)", p);
    return p;
}

static const char *smollm2_path(void)
{
    static char p[1024];
    const char *e = getenv("TW_SMOLLM2");
    if (e) snprintf(p, sizeof p, "%s", e);
    else snprintf(p, sizeof p, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    cr_assert(tw_file_exists(p), "SmolLM2 model not found at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", p);
    return p;
}

static tw_local *open_local(const char *path)
{
    tw_local_params p = tw_local_default_params();
    p.model = path;
    p.n_threads = 2;
    p.n_ctx = 1024;
    tw_local *l = NULL;
    tw_error err;
    cr_assert_eq(tw_local_open(&l, &p, &err), TW_OK, "%s", err.msg);
    return l;
}

static char *gen(tw_local *l, const char *suffix, int n)
{
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = n;
    gp.ignore_eos = true;
    tw_local_result r;
    tw_error err;
    cr_assert_eq(tw_local_generate(l, suffix, &gp, &r, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(r.tokens_out, n);
    char *s = strdup(r.text.data ? r.text.data : "");
    tw_local_result_free(&r);
    return s;
}

Test(local, prefix_reuse_generates_the_same_text)
{
    tw_local *a = open_local(stories_path()), *b = open_local(stories_path());
    tw_error err;
    const char *prefix = "Once upon a time, there was a little girl named Lily.";
    const char *suffixes[] = {" She loved to play", " One day, she saw a big", " Her mom said"};
    cr_assert_eq(tw_local_set_prefix(a, prefix, &err), TW_OK, "%s", err.msg);
    for (size_t i = 0; i < 3; i++) {
        char full[512];
        snprintf(full, sizeof full, "%s%s", prefix, suffixes[i]);
        char *x = gen(a, suffixes[i], 24), *y = gen(b, full, 24);
        cr_assert_str_eq(x, y, "prefix reuse changed the continuation of '%s'", full);
        cr_assert_gt(strlen(x), 10);
        free(x);
        free(y);
    }
    tw_local_stats s = tw_local_get_stats(a);
    cr_assert_eq(s.requests, 3);
    cr_assert_eq(s.prefix_hits, 3, "hits %lld", (long long)s.prefix_hits);
    cr_assert_eq(s.prefix_misses, 0);
    cr_assert_gt(s.tokens_reused, 3 * 10, "reused %lld tokens", (long long)s.tokens_reused);
    cr_assert_eq(tw_local_get_stats(b).prefix_hits, 0);
    /* the empty suffix: the last prefix token is recomputed for its logits */
    char *x = gen(a, "", 12), *y = gen(b, prefix, 12);
    cr_assert_str_eq(x, y);
    free(x);
    free(y);
    tw_local_free(a);
    tw_local_free(b);
}

/* A suffix that merges with the end of the prefix under BPE cannot reuse it: the backend
 * notices and computes the whole prompt. "Lil" + "y" tokenizes differently from "Lily". */
Test(local, prefix_that_does_not_tokenize_as_a_prefix_is_a_miss)
{
    tw_local *a = open_local(stories_path()), *b = open_local(stories_path());
    tw_error err;
    cr_assert_eq(tw_local_set_prefix(a, "Once upon a time, there was a little girl named Lil", &err), TW_OK);
    char *x = gen(a, "y. She", 16);
    char *y = gen(b, "Once upon a time, there was a little girl named Lily. She", 16);
    cr_assert_str_eq(x, y);
    tw_local_stats s = tw_local_get_stats(a);
    cr_assert_eq(s.prefix_misses, 1, "misses %lld (hits %lld)", (long long)s.prefix_misses, (long long)s.prefix_hits);
    cr_assert_eq(s.prefix_hits, 0);
    free(x);
    free(y);
    /* changing the prefix recomputes it; setting the same one again is free */
    cr_assert_eq(tw_local_set_prefix(a, "Once upon a time", &err), TW_OK);
    cr_assert_eq(tw_local_set_prefix(a, "Once upon a time", &err), TW_OK);
    x = gen(a, " there", 8);
    y = gen(b, "Once upon a time there", 8);
    cr_assert_str_eq(x, y);
    cr_assert_eq(tw_local_get_stats(a).prefix_hits, 1);
    free(x);
    /* no prefix any more: the whole prompt is computed, with the same result */
    cr_assert_eq(tw_local_set_prefix(a, NULL, &err), TW_OK);
    x = gen(a, "Once upon a time there", 8);
    cr_assert_str_eq(x, y);
    cr_assert_eq(tw_local_get_stats(a).prefix_hits, 1);
    free(x);
    free(y);
    tw_local_free(a);
    tw_local_free(b);
}

Test(local, score_matches_the_engine_and_prefers_the_likely_choice)
{
    tw_local *a = open_local(stories_path()), *b = open_local(stories_path());
    tw_error err;
    const char *prefix = "Once upon a time, there was a little";
    const char *choices[] = {" girl", " dog named Max", " xqzv"};
    double with_prefix[3], without[3];
    cr_assert_eq(tw_local_set_prefix(a, prefix, &err), TW_OK);
    tw_local_result r;
    cr_assert_eq(tw_local_score(a, " boy and a little", choices, 3, with_prefix, &r, &err), TW_OK, "%s", err.msg);
    cr_assert_gt(r.tokens_in, r.tokens_prefilled, "the prefix was reused");
    cr_assert_eq(tw_local_score(b, "Once upon a time, there was a little boy and a little", choices, 3, without, NULL, &err),
                 TW_OK, "%s", err.msg);
    for (int c = 0; c < 3; c++) {
        cr_assert(isfinite(with_prefix[c]) && with_prefix[c] < 0, "choice %d: %g", c, with_prefix[c]);
        cr_assert_float_eq(with_prefix[c], without[c], 1e-3 * fabs(without[c]) + 1e-4, "choice %d: %g vs %g", c,
                           with_prefix[c], without[c]);
    }
    cr_assert_gt(with_prefix[0], with_prefix[2], "' girl' (%g) should beat ' xqzv' (%g)", with_prefix[0], with_prefix[2]);
    /* the same as tw_llama_score_choices on the token ids directly */
    /* (the choice's tokens are those of prompt + choice after the prompt's: SentencePiece
     * would give " girl" alone a second leading space) */
    tw_tok_ids p = {0}, c0 = {0};
    const char *full = "Once upon a time, there was a little boy and a little";
    cr_assert_eq(tw_local_tokenize(b, full, strlen(full), &p, &err), TW_OK);
    cr_assert_eq(tw_local_tokenize(b, "Once upon a time, there was a little boy and a little girl", 58, &c0, &err), TW_OK);
    cr_assert_gt(c0.n, p.n);
    cr_assert_eq(memcmp(c0.v, p.v, p.n * sizeof *p.v), 0);
    memmove(c0.v, c0.v + p.n, (c0.n - p.n) * sizeof *c0.v);
    c0.n -= p.n;
    tw_kv *kv;
    tw_kv_params kp = tw_kv_default_params();
    kp.n_cells = 256;
    cr_assert_eq(tw_kv_new(&kv, tw_llama_config(tw_local_model(b)), &kp, &err), TW_OK);
    const int32_t *cv[1] = {c0.v};
    int32_t cl[1] = {(int32_t)c0.n};
    double direct;
    cr_assert_eq(tw_llama_score_choices(tw_local_model(b), kv, 0, 1, p.v, (int32_t)p.n, cv, cl, 1, &direct, NULL, &err),
                 TW_OK);
    /* alone, the choice's tokens form a forward of their own; in tw_local_score they share
     * one multi-sequence forward with the other choices, and a batch of >= 2 rows takes
     * ggml's batched attention order: equal to float rounding */
    cr_assert_float_eq(direct, without[0], 1e-5 * fabs(without[0]), "%.9g vs %.9g", direct, without[0]);
    tw_kv_free(kv);
    tw_tok_ids_free(&p);
    tw_tok_ids_free(&c0);
    tw_local_free(a);
    tw_local_free(b);
}

Test(local, model_id_is_the_file_sha256)
{
    tw_local *a = open_local(stories_path());
    tw_error err;
    const char *id = tw_local_model_id(a, &err);
    cr_assert_not_null(id, "%s", err.msg);
    char hex[65];
    cr_assert_eq(tw_sha256_file(stories_path(), hex, &err), TW_OK);
    cr_assert_eq(strncmp(id, "sha256:", 7), 0);
    cr_assert_str_eq(id + 7, hex);
    cr_assert_eq(tw_local_model_id(a, &err), id, "computed once");
    cr_assert_null(tw_local_chat_template(a), "stories260K has no chat template");
    tw_chat_msg m = {"user", "hi"};
    tw_buf out = {0};
    cr_assert_eq(tw_local_render(a, &m, 1, true, &out, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "chat template"), "%s", err.msg);
    tw_local_free(a);
}

Test(local, missing_model_is_a_clear_error)
{
    tw_local_params p = tw_local_default_params();
    p.model = "/nonexistent/model.gguf";
    tw_local *l = NULL;
    tw_error err;
    cr_assert_neq(tw_local_open(&l, &p, &err), TW_OK);
    cr_assert_null(l);
    cr_assert(strstr(err.msg, "/nonexistent/model.gguf"), "%s", err.msg);
}

/* The real instruct model: a system + few-shot prefix rendered by its own chat template,
 * cut at a turn boundary; reuse gives the same greedy answer as the whole prompt. */
Test(local, smollm2_chat_prefix_reuse, .timeout = 300)
{
    tw_local *a = open_local(smollm2_path()), *b = open_local(smollm2_path());
    tw_error err;
    cr_assert_not_null(tw_local_chat_template(a));
    tw_chat_msg msgs[] = {
        {"system", "Classify the sentiment of the review as positive or negative. Answer with one word."},
        {"user", "A gorgeous, witty film."},
        {"assistant", "positive"},
        {"user", "Dull and far too long."},
        {"assistant", "negative"},
        {"user", "An unexpected delight from start to finish."},
    };
    tw_buf prefix = {0}, full = {0};
    cr_assert_eq(tw_local_render(a, msgs, 5, false, &prefix, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_local_render(a, msgs, 6, true, &full, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(strncmp(full.data, prefix.data, prefix.len), 0, "the 5-message rendering starts the 6-message one");
    cr_assert_eq(tw_local_set_prefix(a, prefix.data, &err), TW_OK, "%s", err.msg);
    char *x = gen(a, full.data + prefix.len, 6), *y = gen(b, full.data, 6);
    cr_assert_str_eq(x, y);
    cr_log_info("smollm2 answer with reused prefix: '%s'", x);
    cr_assert(strstr(x, "positive"), "the model should answer positive: '%s'", x);
    cr_assert_eq(tw_local_get_stats(a).prefix_hits, 1);
    const char *labels[] = {"positive<|im_end|>", "negative<|im_end|>"};
    double lp[2];
    cr_assert_eq(tw_local_score(a, full.data + prefix.len, labels, 2, lp, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_gt(lp[0], lp[1], "positive %g vs negative %g", lp[0], lp[1]);
    free(x);
    free(y);
    tw_buf_free(&prefix);
    tw_buf_free(&full);
    tw_local_free(a);
    tw_local_free(b);
}
