/* test_prompt.c — prompt strategies and output parsing (src/arms/prompt.c):
 *  - every strategy's rendered prompt for one small fixed two-label task (and a small
 *    extract task) against committed expected texts (tests/data/prompt/expected/NAME.txt,
 *    reviewed by eye; TW_PROMPT_UPDATE=1 rewrites them), through the real SmolLM2 chat
 *    template (tests/data/chat/smollm2.json) and the plain layout;
 *  - the shared prefix: prefix + suffix == full text, the prefix ends at a chat-turn
 *    boundary, and its token ids (real SmolLM2 tokenizer, ../shared/models/smollm2-135m)
 *    are a prefix of the full prompt's — on Banking77 rows with kshot and knn, k = 8;
 *  - label continuations for score / choice; stops;
 *  - kshot: stratified counts per class, short classes, seed determinism, demo sets;
 *  - knn: the example (same id or same normalized text) is never its own demonstration;
 *  - strategy / output parsing and the combinations that are refused;
 *  - parsing of model output: free labels, cot answers, JSON objects (many cases). */
#include "testutil.h"
#include "arms/prompt.h"

#include <jansson.h>

/* ---- fixtures ---------------------------------------------------------------------------- */

static tw_chat_template *smollm2_template(char **bos, char **eos)
{
    json_error_t je;
    json_t *fx = json_load_file("tests/data/chat/smollm2.json", 0, &je);
    cr_assert_not_null(fx, "tests/data/chat/smollm2.json: %s", je.text);
    tw_chat_template *t = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_chat_template_new(&t, json_string_value(json_object_get(fx, "template")), &err), TW_OK, "%s",
                 err.msg);
    cr_assert_eq(tw_chat_template_family(t), TW_CHAT_CHATML);
    const char *b = json_string_value(json_object_get(fx, "bos_token"));
    const char *e = json_string_value(json_object_get(fx, "eos_token"));
    *bos = b ? strdup(b) : NULL;
    *eos = e ? strdup(e) : NULL;
    json_decref(fx);
    return t;
}

static tw_tokenizer *smollm2_tokenizer(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/smollm2-135m/tokenizer.json", tw_test_shared());
    tw_tokenizer *tok = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_tokenizer_load_json(&tok, path, &err), TW_OK, "%s (set TW_SHARED)", err.msg);
    return tok;
}

static void push(tw_dataset *ds, const char *id, const char *input, const char *output)
{
    tw_example ex = {0};
    ex.id = (char *)id;
    ex.input = (char *)input;
    ex.output = (char *)output;
    tw_error err = {0};
    cr_assert_eq(tw_dataset_push(ds, &ex, &err), TW_OK);
}

static void tiny_train(tw_dataset *ds)
{
    push(ds, "t1", "a gorgeous, witty, seductive movie.", "positive");
    push(ds, "t2", "the plot is dull and the jokes fall flat.", "negative");
    push(ds, "t3", "a moving and brilliant film", "positive");
    push(ds, "t4", "too long, too loud, too boring", "negative");
    push(ds, "t5", "one of the best films of the year", "positive");
    push(ds, "t6", "an utterly forgettable mess", "negative");
}

static char *LABELS2[] = {"negative", "positive"};

static tw_task tiny_task(void)
{
    tw_task t = {0};
    t.name = "tiny";
    t.type = TW_TASK_CLASSIFY;
    t.labels = LABELS2;
    t.n_labels = 2;
    t.instructions = "Decide whether the movie review is positive or negative.";
    return t;
}

static tw_task extract_task(void)
{
    tw_task t = {0};
    t.name = "films";
    t.type = TW_TASK_EXTRACT;
    t.instructions = "Extract the film title and its year from the sentence.";
    t.schema_path = "tests/data/prompt/tiny.schema.json";
    return t;
}

static void extract_train(tw_dataset *ds)
{
    push(ds, "e1", "Alien came out in 1979.", "{\"title\": \"Alien\", \"year\": 1979}");
    push(ds, "e2", "I rewatched Heat, the 1995 crime film.", "{\"title\": \"Heat\", \"year\": 1995}");
    push(ds, "e3", "Have you seen Amelie?", "{\"title\": \"Amelie\"}");
}

static tw_prompt *make(const tw_task *t, const tw_dataset *train, const char *strategy, tw_output_mode out,
                       size_t k, const tw_prompt_target *tg)
{
    tw_prompt_params pp = tw_prompt_default_params();
    tw_error err = {0};
    cr_assert_eq(tw_prompt_strategy_parse(strategy, &pp, &err), TW_OK, "%s", err.msg);
    pp.output = out;
    pp.k = k;
    pp.rag_dir = "tests/data/prompt/docs";
    pp.rag_k = 2;
    tw_prompt *p = NULL;
    cr_assert_eq(tw_prompt_new(&p, t, train, &pp, tg, &err), TW_OK, "%s: %s", strategy, err.msg);
    return p;
}

static char *read_text(const char *path)
{
    char *s = NULL;
    size_t n;
    tw_error err = {0};
    if (tw_file_read(path, &s, &n, &err) != TW_OK) return NULL;
    return s;
}

/* Compare (or with TW_PROMPT_UPDATE=1 write) the expected text of a case. */
static void expect_text(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/prompt/expected/%s.txt", name);
    if (getenv("TW_PROMPT_UPDATE")) {
        tw_error err = {0};
        cr_assert_eq(tw_file_write_atomic(path, text, strlen(text), &err), TW_OK, "%s", err.msg);
        return;
    }
    char *want = read_text(path);
    cr_assert_not_null(want, "%s missing (TW_PROMPT_UPDATE=1 writes it; review it by eye)", path);
    size_t i = 0;
    while (want[i] && want[i] == text[i]) i++;
    cr_assert(!strcmp(want, text), "%s differs at byte %zu:\n--- got ---\n%s\n--- want ---\n%s", path, i, text, want);
    free(want);
}

/* ---- every strategy, rendered ---------------------------------------------------------------- */

typedef struct scase {
    const char *name, *strategy;
    tw_output_mode out;
    size_t k;
    bool chat;
    bool extract;
    int prefix_turns;   /* chat: "<|im_end|>\n" markers inside the shared prefix */
} scase;

static const scase CASES[] = {
    {"chatml_zero_free", "zero", TW_OUTPUT_FREE, 0, true, false, 1},
    {"chatml_kshot_score", "kshot", TW_OUTPUT_SCORE, 4, true, false, 9},
    {"chatml_knn_choice", "knn", TW_OUTPUT_CHOICE, 2, true, false, 1},
    {"chatml_cot", "cot", TW_OUTPUT_FREE, 0, true, false, 1},
    {"chatml_rag", "rag", TW_OUTPUT_FREE, 0, true, false, 1},
    {"chatml_kshot_rag", "kshot+rag", TW_OUTPUT_FREE, 2, true, false, 5},
    {"chatml_knn_cot", "knn+cot", TW_OUTPUT_FREE, 2, true, false, 1},
    {"plain_zero", "zero", TW_OUTPUT_FREE, 0, false, false, 0},
    {"plain_kshot_score", "kshot", TW_OUTPUT_SCORE, 2, false, false, 0},
    {"plain_cot", "cot", TW_OUTPUT_FREE, 0, false, false, 0},
    {"plain_knn_rag", "knn+rag", TW_OUTPUT_FREE, 2, false, false, 0},
    {"plain_kshot_rag", "kshot+rag", TW_OUTPUT_FREE, 1, false, false, 0},
    {"chatml_extract_zero_json", "zero", TW_OUTPUT_JSON, 0, true, true, 1},
    {"chatml_extract_kshot_json", "kshot", TW_OUTPUT_JSON, 2, true, true, 5},
};

static size_t count_marker(const char *s, size_t n, const char *m)
{
    size_t c = 0, ml = strlen(m);
    for (size_t i = 0; i + ml <= n; i++)
        if (!memcmp(s + i, m, ml)) c++;
    return c;
}

Test(prompt, every_strategy_rendered_as_expected)
{
    char *bos, *eos;
    tw_chat_template *tmpl = smollm2_template(&bos, &eos);
    tw_tokenizer *tok = smollm2_tokenizer();
    tw_dataset cls = {0}, ext = {0};
    tiny_train(&cls);
    extract_train(&ext);
    tw_task tc = tiny_task(), te = extract_task();
    tw_example q = {0};
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const scase *sc = &CASES[c];
        tw_prompt_target tg = {sc->chat ? tmpl : NULL, bos, eos};
        tw_prompt *p = make(sc->extract ? &te : &tc, sc->extract ? &ext : &cls, sc->strategy, sc->out, sc->k, &tg);
        q.id = sc->extract ? "qe" : "q1";
        q.input = sc->extract ? "Did you like Jaws (1975)?" : "a witty and moving film, never dull";
        tw_prompt_example pe = {0};
        tw_error err = {0};
        cr_assert_eq(tw_prompt_build(p, &q, &pe, &err), TW_OK, "%s: %s", sc->name, err.msg);
        expect_text(sc->name, pe.text.data);
        /* prefix + suffix == full, and the prefix is the shared one */
        size_t plen;
        const char *pre = tw_prompt_prefix(p, &plen);
        cr_assert_eq(pe.prefix_len, plen, "%s", sc->name);
        cr_assert(plen > 0, "%s: a shared prefix exists", sc->name);
        cr_assert(!memcmp(pe.text.data, pre, plen));
        if (sc->chat) {
            cr_assert_eq(count_marker(pre, plen, "<|im_end|>\n"), (size_t)sc->prefix_turns, "%s", sc->name);
            cr_assert(plen >= 11 && !memcmp(pre + plen - 11, "<|im_end|>\n", 11), "%s: ends at a turn", sc->name);
            cr_assert_eq(pe.n_msgs, 2 + 2 * pe.n_demos, "%s", sc->name);
            cr_assert_str_eq(pe.msgs[0].role, "system");
            cr_assert_str_eq(pe.msgs[pe.n_msgs - 1].role, "user");
        } else {
            const char *tail = !strcmp(sc->strategy, "rag") || !strcmp(sc->strategy, "kshot+rag") ? "\n\nContext:"
                                                                                           : "\n\nInput:";
            size_t tl = strlen(tail);
            cr_assert(plen > tl && !memcmp(pre + plen - tl, tail, tl), "%s: plain prefix ends with the label", sc->name);
            cr_assert_eq(pe.text.data[plen], ' ', "%s: the suffix starts with a space", sc->name);
        }
        bool ok = false;
        cr_assert_eq(tw_prompt_check_tokens(tok, pe.text.data, pe.text.len, pe.prefix_len, &ok, &err), TW_OK);
        cr_assert(ok, "%s: prefix tokens are not a prefix of the prompt's tokens", sc->name);
        tw_prompt_example_free(&pe);
        tw_prompt_free(p);
    }
    tw_dataset_free(&cls);
    tw_dataset_free(&ext);
    tw_tokenizer_free(tok);
    tw_chat_template_free(tmpl);
    free(bos);
    free(eos);
}

Test(prompt, continuations_stops_and_demos)
{
    char *bos, *eos;
    tw_chat_template *tmpl = smollm2_template(&bos, &eos);
    tw_dataset cls = {0};
    tiny_train(&cls);
    tw_task tc = tiny_task();
    tw_prompt_target tg = {tmpl, bos, eos};
    tw_prompt *p = make(&tc, &cls, "kshot", TW_OUTPUT_SCORE, 4, &tg);
    size_t n;
    const char *const *cont = tw_prompt_continuations(p, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(cont[0], "negative<|im_end|>");
    cr_assert_str_eq(cont[1], "positive<|im_end|>");
    cr_assert_str_eq(tw_prompt_stops(p)[0], "<|im_end|>");
    const size_t *rows = tw_prompt_kshot_rows(p, &n);
    cr_assert_eq(n, 4);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) pos += !strcmp(cls.rows[rows[i]].output, "positive");
    cr_assert_eq(pos, 2, "stratified: 2 + 2");
    /* the prompt ends with the generation prompt; + continuation = how the model answers */
    tw_example q = {.id = "q", .input = "fine"};
    tw_prompt_example pe = {0};
    tw_error err = {0};
    cr_assert_eq(tw_prompt_build(p, &q, &pe, &err), TW_OK);
    cr_assert(pe.text.len > 22 && !strcmp(pe.text.data + pe.text.len - 22, "<|im_start|>assistant\n"));
    cr_assert_eq(pe.n_demos, 4);
    cr_assert(!memcmp(pe.demo_rows, rows, 4 * sizeof *rows), "kshot: the same demos for every example");
    tw_prompt_example_free(&pe);
    tw_prompt_free(p);

    tw_prompt_target plain = {0};
    p = make(&tc, &cls, "zero", TW_OUTPUT_CHOICE, 0, &plain);
    cont = tw_prompt_continuations(p, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(cont[1], " positive\n");
    cr_assert_str_eq(tw_prompt_stops(p)[0], "\n");
    cr_assert_null(tw_prompt_stops(p)[1]);
    tw_prompt_free(p);
    p = make(&tc, &cls, "cot", TW_OUTPUT_FREE, 0, &plain);
    cr_assert_null(tw_prompt_continuations(p, &n));
    cr_assert_eq(n, 0);
    cr_assert_str_eq(tw_prompt_stops(p)[0], "\n\nInput:");
    tw_prompt_free(p);
    tw_dataset_free(&cls);
    tw_chat_template_free(tmpl);
    free(bos);
    free(eos);
}

Test(prompt, config_record)
{
    tw_dataset cls = {0};
    tiny_train(&cls);
    tw_task tc = tiny_task();
    tw_prompt_target plain = {0};
    tw_prompt *p = make(&tc, &cls, "kshot+rag", TW_OUTPUT_FREE, 2, &plain);
    json_t *c = tw_prompt_config(p);
    cr_assert_not_null(c);
    cr_assert_str_eq(json_string_value(json_object_get(c, "strategy")), "kshot+rag");
    cr_assert_str_eq(json_string_value(json_object_get(c, "layout")), "plain");
    cr_assert_eq(json_integer_value(json_object_get(c, "k")), 2);
    json_t *ids = json_object_get(c, "kshot_ids");
    cr_assert_eq(json_array_size(ids), 2);
    size_t n;
    const size_t *rows = tw_prompt_kshot_rows(p, &n);
    cr_assert_str_eq(json_string_value(json_array_get(ids, 0)), cls.rows[rows[0]].id);
    json_t *rag = json_object_get(c, "rag");
    cr_assert_eq(json_integer_value(json_object_get(rag, "files")), 2);
    cr_assert_eq(json_integer_value(json_object_get(rag, "chunks")), 2);
    cr_assert_eq(strlen(json_string_value(json_object_get(rag, "sha256"))), 64);
    /* another seed: other demos, other prefix hash */
    tw_prompt_params pp = tw_prompt_default_params();
    tw_error err = {0};
    tw_prompt_strategy_parse("kshot+rag", &pp, &err);
    pp.k = 2;
    pp.rag_dir = "tests/data/prompt/docs";
    pp.rag_k = 2;
    pp.seed = tw_prompt_demo_seed(1, 3);
    tw_prompt *p2 = NULL;
    cr_assert_eq(tw_prompt_new(&p2, &tc, &cls, &pp, &plain, &err), TW_OK);
    json_t *c2 = tw_prompt_config(p2);
    cr_assert_eq(strlen(json_string_value(json_object_get(c, "system_sha256"))), 64);
    cr_assert_str_eq(json_string_value(json_object_get(c, "system_sha256")),
                     json_string_value(json_object_get(c2, "system_sha256")));
    cr_assert_str_neq(json_string_value(json_object_get(c, "prefix_sha256")),
                      json_string_value(json_object_get(c2, "prefix_sha256")));
    json_decref(c);
    json_decref(c2);
    tw_prompt_free(p);
    tw_prompt_free(p2);
    tw_dataset_free(&cls);
}

/* The short system prompt of fine-tuned models: the instructions only; the label list and
 * the answer-format line are gone, and the config's system hash tells the two apart. */
Test(prompt, short_system_for_fine_tunes)
{
    tw_dataset cls = {0};
    tiny_train(&cls);
    tw_task tc = tiny_task();
    tw_prompt_target plain = {0};
    tw_error err = {0};
    tw_prompt *full = make(&tc, &cls, "zero", TW_OUTPUT_SCORE, 0, &plain), *shrt = NULL;
    tw_prompt_params pp = tw_prompt_default_params();
    pp.output = TW_OUTPUT_SCORE;
    pp.short_system = true;
    cr_assert_eq(tw_prompt_new(&shrt, &tc, &cls, &pp, &plain, &err), TW_OK, "%s", err.msg);
    const char *fs = tw_prompt_system(full), *ss = tw_prompt_system(shrt);
    cr_expect(strstr(fs, "Labels:") != NULL, "%s", fs);
    cr_expect(strstr(ss, "Labels:") == NULL && strstr(ss, "Answer with exactly one label") == NULL, "%s", ss);
    cr_expect(strncmp(fs, ss, strlen(ss)) == 0, "the short prompt is the full one's opening: '%s' / '%s'", ss, fs);
    cr_expect_gt(strlen(ss), 0);
    size_t n1, n2;
    tw_prompt_continuations(full, &n1);
    tw_prompt_continuations(shrt, &n2);
    cr_expect_eq(n1, n2, "the same labels are scored");
    json_t *c1 = tw_prompt_config(full), *c2 = tw_prompt_config(shrt);
    cr_expect_str_neq(json_string_value(json_object_get(c1, "system_sha256")),
                      json_string_value(json_object_get(c2, "system_sha256")));
    json_decref(c1);
    json_decref(c2);
    tw_prompt_free(full);
    tw_prompt_free(shrt);
    tw_dataset_free(&cls);
}

/* Qwen3 renders an assistant turn after the last user turn with an empty <think> block,
 * and this Llama 3 template always ends with the assistant header: the shared turns
 * rendered alone are then not a prefix of a prompt, and the prefix is cut back to the last
 * end-of-turn marker they have in common. */
Test(prompt, prefix_cut_back_qwen3_llama3, .timeout = 60)
{
    static const struct { const char *name, *bos, *eos, *end; } T[] = {
        {"qwen3", NULL, "<|im_end|>", "<|im_end|>\n"},
        {"llama3", "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>"},
    };
    tw_dataset cls = {0};
    tiny_train(&cls);
    tw_task tc = tiny_task();
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/tokenizers/%s/tokenizer_config.json", tw_test_shared(), T[i].name);
        tw_chat_template *tmpl = NULL;
        tw_error err = {0};
        cr_assert_eq(tw_chat_template_load(&tmpl, path, &err), TW_OK, "%s", err.msg);
        snprintf(path, sizeof path, "%s/models/tokenizers/%s/tokenizer.json", tw_test_shared(), T[i].name);
        tw_tokenizer *tok = NULL;
        cr_assert_eq(tw_tokenizer_load_json(&tok, path, &err), TW_OK, "%s", err.msg);
        tw_prompt_target tg = {tmpl, T[i].bos, T[i].eos};
        const char *strategies[] = {"kshot", "knn"};
        for (int s = 0; s < 2; s++) {
            tw_prompt *p = make(&tc, &cls, strategies[s], TW_OUTPUT_FREE, 4, &tg);
            size_t plen;
            const char *pre = tw_prompt_prefix(p, &plen);
            size_t el = strlen(T[i].end);
            cr_assert(plen > el && !memcmp(pre + plen - el, T[i].end, el), "%s %s: prefix ends at a turn (%zu bytes)",
                      T[i].name, strategies[s], plen);
            cr_assert(strstr(pre, "Labels:"), "the system turn is in the prefix");
            if (s == 0) cr_assert(strstr(pre, cls.rows[tw_prompt_kshot_rows(p, &(size_t){0})[0]].input),
                                  "%s: the first demonstration is in the prefix", T[i].name);
            for (size_t r = 0; r < cls.n; r++) {
                tw_example q = {.id = "q", .input = cls.rows[r].input};
                tw_prompt_example pe = {0};
                cr_assert_eq(tw_prompt_build(p, &q, &pe, &err), TW_OK, "%s", err.msg);
                cr_assert_eq(pe.prefix_len, plen, "%s %s row %zu", T[i].name, strategies[s], r);
                bool ok = false;
                cr_assert_eq(tw_prompt_check_tokens(tok, pe.text.data, pe.text.len, pe.prefix_len, &ok, &err), TW_OK);
                cr_assert(ok, "%s %s row %zu: token boundary", T[i].name, strategies[s], r);
                tw_prompt_example_free(&pe);
            }
            tw_prompt_free(p);
        }
        /* how each template writes an answer: Qwen3 with its empty think block */
        tw_prompt *p = make(&tc, &cls, "zero", TW_OUTPUT_SCORE, 0, &tg);
        size_t nc;
        const char *const *cont = tw_prompt_continuations(p, &nc);
        cr_assert_eq(nc, 2);
        cr_assert_str_eq(cont[1], i == 0 ? "<think>\n\n</think>\n\npositive<|im_end|>" : "positive<|eot_id|>");
        tw_prompt_free(p);
        tw_tokenizer_free(tok);
        tw_chat_template_free(tmpl);
    }
    tw_dataset_free(&cls);
}

/* ---- the token boundary on Banking77 ------------------------------------------------------------ */

static void load_b77(tw_dataset *ds, const char *split)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/banking77/%s.jsonl", tw_test_shared(), split);
    tw_error err = {0};
    tw_reader_params rp = tw_reader_default_params();
    cr_assert_eq(tw_dataset_load(ds, path, &rp, &err), TW_OK, "%s", err.msg);
}

Test(prompt, prefix_token_boundary_smollm2_banking77, .timeout = 120)
{
    char *bos, *eos;
    tw_chat_template *tmpl = smollm2_template(&bos, &eos);
    tw_tokenizer *tok = smollm2_tokenizer();
    tw_dataset train = {0}, test = {0};
    load_b77(&train, "train");
    load_b77(&test, "test");
    tw_task t = {0};
    t.name = "banking77";
    t.type = TW_TASK_CLASSIFY;
    t.instructions = "Answer with the single intent label that fits the customer's message.";
    const char *strategies[] = {"kshot", "knn", "kshot"};
    bool chat[] = {true, true, false};
    size_t checked = 0, cont_checked = 0;
    for (int s = 0; s < 3; s++) {
        tw_prompt_target tg = {chat[s] ? tmpl : NULL, bos, eos};
        tw_prompt *p = make(&t, &train, strategies[s], TW_OUTPUT_SCORE, 8, &tg);
        size_t nl, nc;
        tw_prompt_labels(p, &nl);
        cr_assert_eq(nl, 77);
        const char *const *cont = tw_prompt_continuations(p, &nc);
        size_t plen;
        tw_prompt_prefix(p, &plen);
        for (size_t i = 0; i < test.n; i += 40) {
            tw_prompt_example pe = {0};
            tw_error err = {0};
            cr_assert_eq(tw_prompt_build(p, &test.rows[i], &pe, &err), TW_OK, "%s", err.msg);
            cr_assert_eq(pe.prefix_len, plen, "%s row %zu: the shared prefix starts the prompt", strategies[s], i);
            cr_assert_eq(pe.n_demos, 8);
            bool ok = false;
            cr_assert_eq(tw_prompt_check_tokens(tok, pe.text.data, pe.text.len, pe.prefix_len, &ok, &err), TW_OK);
            cr_assert(ok, "%s (%s) row %zu: BPE merged across the prefix boundary", strategies[s],
                      chat[s] ? "chat" : "plain", i);
            checked++;
            if (i % 400 == 0) {
                /* the prompt's tokens also start prompt + continuation's tokens */
                tw_buf b = {0};
                size_t lab = i % nc;
                tw_buf_append(&b, pe.text.data, pe.text.len);
                tw_buf_puts(&b, cont[lab]);
                cr_assert_eq(tw_prompt_check_tokens(tok, b.data, b.len, pe.text.len, &ok, &err), TW_OK);
                cr_assert(ok, "continuation '%s' merges with the prompt", cont[lab]);
                tw_buf_free(&b);
                cont_checked++;
            }
            tw_prompt_example_free(&pe);
        }
        tw_prompt_free(p);
    }
    cr_assert(checked >= 3 * 77 && cont_checked >= 6);
    tw_dataset_free(&train);
    tw_dataset_free(&test);
    tw_tokenizer_free(tok);
    tw_chat_template_free(tmpl);
    free(bos);
    free(eos);
}

/* ---- kshot / demo sets --------------------------------------------------------------------------- */

static size_t count_label(const tw_dataset *ds, const size_t *rows, size_t n, const char *lab)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += !strcmp(ds->rows[rows[i]].output, lab);
    return c;
}

Test(kshot, stratified_counts_banking77)
{
    tw_dataset train = {0};
    load_b77(&train, "train");
    char **labels;
    size_t nl;
    tw_error err = {0};
    cr_assert_eq(tw_dataset_labels(&train, &labels, &nl, &err), TW_OK);
    cr_assert_eq(nl, 77);
    size_t rows[200], n;
    /* k = 154: two per class */
    cr_assert_eq(tw_prompt_kshot_select(&train, true, 154, 5, rows, &n, &err), TW_OK);
    cr_assert_eq(n, 154);
    for (size_t c = 0; c < nl; c++) cr_assert_eq(count_label(&train, rows, n, labels[c]), 2, "%s", labels[c]);
    /* k = 80: one each, three classes two */
    cr_assert_eq(tw_prompt_kshot_select(&train, true, 80, 5, rows, &n, &err), TW_OK);
    size_t twos = 0;
    for (size_t c = 0; c < nl; c++) {
        size_t k = count_label(&train, rows, n, labels[c]);
        cr_assert(k == 1 || k == 2);
        twos += k == 2;
    }
    cr_assert_eq(twos, 3);
    /* k = 8 < 77: eight distinct classes, no duplicate rows */
    cr_assert_eq(tw_prompt_kshot_select(&train, true, 8, 5, rows, &n, &err), TW_OK);
    cr_assert_eq(n, 8);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            cr_assert_str_neq(train.rows[rows[i]].output, train.rows[rows[j]].output);
    /* determinism and demo sets */
    size_t a[8], b[8], c8[8], na, nb, nc;
    cr_assert_eq(tw_prompt_kshot_select(&train, true, 8, 5, a, &na, &err), TW_OK);
    cr_assert(!memcmp(a, rows, sizeof a), "same seed, same demos");
    cr_assert_eq(tw_prompt_demo_set(&train, true, 8, 5, 0, 4, b, &nb, &err), TW_OK);
    cr_assert(!memcmp(a, b, sizeof a), "set 0 is the base seed");
    cr_assert_eq(tw_prompt_demo_set(&train, true, 8, 5, 1, 4, c8, &nc, &err), TW_OK);
    cr_assert(memcmp(a, c8, sizeof a), "set 1 differs");
    cr_assert_neq(tw_prompt_demo_seed(5, 1), tw_prompt_demo_seed(5, 2));
    cr_assert_eq(tw_prompt_demo_seed(5, 0), 5);
    cr_assert_eq(tw_prompt_demo_set(&train, true, 8, 5, 4, 4, c8, &nc, &err), TW_ERR_INVALID);
    size_t d[8];
    cr_assert_eq(tw_prompt_kshot_select(&train, true, 8, 6, d, &na, &err), TW_OK);
    cr_assert(memcmp(a, d, sizeof a), "another seed, other demos");
    tw_labels_free(labels, nl);
    tw_dataset_free(&train);
}

Test(kshot, small_and_short_classes)
{
    tw_dataset ds = {0};
    tiny_train(&ds);   /* 3 positive, 3 negative */
    size_t rows[10], n;
    tw_error err = {0};
    cr_assert_eq(tw_prompt_kshot_select(&ds, true, 5, 1, rows, &n, &err), TW_OK);
    cr_assert_eq(n, 5);
    size_t pos = count_label(&ds, rows, n, "positive");
    cr_assert(pos == 2 || pos == 3, "5 = 3 + 2 (%zu positive)", pos);
    /* a class short of rows gives its share to the other */
    tw_dataset sk = {0};
    push(&sk, "n1", "bad", "negative");
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        push(&sk, id, "good", "positive");
    }
    cr_assert_eq(tw_prompt_kshot_select(&sk, true, 4, 1, rows, &n, &err), TW_OK);
    cr_assert_eq(n, 4);
    cr_assert_eq(count_label(&sk, rows, n, "negative"), 1);
    cr_assert_eq(count_label(&sk, rows, n, "positive"), 3);
    /* k beyond the rows: every row once */
    cr_assert_eq(tw_prompt_kshot_select(&sk, true, 10, 1, rows, &n, &err), TW_OK);
    cr_assert_eq(n, 7);
    bool seen[7] = {0};
    for (size_t i = 0; i < n; i++) { cr_assert(!seen[rows[i]]); seen[rows[i]] = true; }
    /* unstratified sample */
    cr_assert_eq(tw_prompt_kshot_select(&sk, false, 3, 1, rows, &n, &err), TW_OK);
    cr_assert_eq(n, 3);
    cr_assert(rows[0] != rows[1] && rows[1] != rows[2] && rows[0] != rows[2]);
    tw_dataset_free(&sk);
    tw_dataset_free(&ds);
}

/* ---- knn never uses the example itself --------------------------------------------------------------- */

Test(knn, excludes_self_by_id_and_normalized_text)
{
    tw_dataset ds = {0};
    tiny_train(&ds);
    push(&ds, "t7", "A Gorgeous witty seductive movie", "positive");   /* t1's text, normalized */
    tw_task tc = tiny_task();
    tw_prompt_target plain = {0};
    tw_prompt *p = make(&tc, &ds, "knn", TW_OUTPUT_FREE, 3, &plain);
    for (size_t i = 0; i < ds.n; i++) {
        tw_prompt_example pe = {0};
        tw_error err = {0};
        cr_assert_eq(tw_prompt_build(p, &ds.rows[i], &pe, &err), TW_OK);
        for (size_t j = 0; j < pe.n_demos; j++) {
            cr_assert_neq(pe.demo_rows[j], i, "row %zu is its own demo", i);
            if (i == 0) cr_assert_neq(pe.demo_rows[j], 6, "t7 has t1's normalized text");
            if (i == 6) cr_assert_neq(pe.demo_rows[j], 0);
        }
        tw_prompt_example_free(&pe);
    }
    /* same id, different text: still excluded; the nearest demo comes last */
    tw_example q = {.id = "t3", .input = "a moving and brilliant film, gorgeous"};
    tw_prompt_example pe = {0};
    tw_error err = {0};
    cr_assert_eq(tw_prompt_build(p, &q, &pe, &err), TW_OK);
    cr_assert(pe.n_demos >= 2);
    for (size_t j = 0; j < pe.n_demos; j++) cr_assert_neq(pe.demo_rows[j], 2);
    cr_assert(pe.demo_rows[pe.n_demos - 1] == 0 || pe.demo_rows[pe.n_demos - 1] == 6, "most similar last");
    tw_prompt_example_free(&pe);
    tw_prompt_free(p);
    tw_dataset_free(&ds);
}

/* ---- strategies and refusals ------------------------------------------------------------------------- */

Test(prompt, strategy_parse)
{
    tw_prompt_params p = tw_prompt_default_params();
    tw_error err = {0};
    char buf[64];
    cr_assert_eq(tw_prompt_strategy_parse("knn+cot+rag", &p, &err), TW_OK);
    cr_assert(p.demos == TW_DEMOS_KNN && p.cot && p.rag);
    tw_prompt_strategy_str(&p, buf, sizeof buf);
    cr_assert_str_eq(buf, "knn+cot+rag");
    cr_assert_eq(tw_prompt_strategy_parse("rag+kshot", &p, &err), TW_OK);
    cr_assert(p.demos == TW_DEMOS_KSHOT && !p.cot && p.rag);
    tw_prompt_strategy_str(&p, buf, sizeof buf);
    cr_assert_str_eq(buf, "kshot+rag");
    cr_assert_eq(tw_prompt_strategy_parse("cot", &p, &err), TW_OK);
    cr_assert(p.demos == TW_DEMOS_NONE && p.cot && !p.rag);
    cr_assert_eq(tw_prompt_strategy_parse("kshot+knn", &p, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "at most one"), "%s", err.msg);
    cr_assert_eq(tw_prompt_strategy_parse("kshot+fewshot", &p, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "'fewshot'"), "%s", err.msg);
    cr_assert_eq(tw_prompt_strategy_parse("kshot+", &p, &err), TW_ERR_INVALID);
    cr_assert_eq(tw_prompt_strategy_parse("", &p, &err), TW_ERR_INVALID);
    tw_output_mode m;
    cr_assert(tw_output_mode_parse("score", &m) && m == TW_OUTPUT_SCORE);
    cr_assert(!tw_output_mode_parse("logits", &m));
    cr_assert_str_eq(tw_output_mode_str(TW_OUTPUT_JSON), "json");
}

Test(prompt, refused_combinations)
{
    tw_dataset cls = {0}, ext = {0};
    tiny_train(&cls);
    extract_train(&ext);
    tw_task tc = tiny_task(), te = extract_task();
    tw_prompt *p = NULL;
    tw_error err = {0};
    tw_prompt_params pp = tw_prompt_default_params();
    pp.output = TW_OUTPUT_JSON;
    cr_assert_eq(tw_prompt_new(&p, &tc, &cls, &pp, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "extract"), "%s", err.msg);
    pp.output = TW_OUTPUT_SCORE;
    cr_assert_eq(tw_prompt_new(&p, &te, &ext, &pp, NULL, &err), TW_ERR_INVALID);
    pp.cot = true;
    cr_assert_eq(tw_prompt_new(&p, &tc, &cls, &pp, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "cot"), "%s", err.msg);
    pp = tw_prompt_default_params();
    pp.demos = TW_DEMOS_KSHOT;
    tw_dataset empty = {0};
    cr_assert_eq(tw_prompt_new(&p, &tc, &empty, &pp, NULL, &err), TW_ERR_INVALID);
    pp = tw_prompt_default_params();
    pp.rag = true;
    cr_assert_eq(tw_prompt_new(&p, &tc, &cls, &pp, NULL, &err), TW_ERR_INVALID);
    pp.rag_dir = "tests/data/prompt/no-such-folder";
    cr_assert_eq(tw_prompt_new(&p, &tc, &cls, &pp, NULL, &err), TW_ERR_IO);
    cr_assert(strstr(err.msg, "no-such-folder"), "%s", err.msg);
    /* labels inferred from train when the task declares none */
    tw_task t2 = tiny_task();
    t2.labels = NULL;
    t2.n_labels = 0;
    pp = tw_prompt_default_params();
    cr_assert_eq(tw_prompt_new(&p, &t2, &cls, &pp, NULL, &err), TW_OK, "%s", err.msg);
    size_t n;
    const char *const *labs = tw_prompt_labels(p, &n);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(labs[0], "negative");
    tw_prompt_free(p);
    cr_assert_eq(tw_prompt_new(&p, &t2, &empty, &pp, NULL, &err), TW_ERR_INVALID);
    tw_prompt_free(NULL);
    tw_dataset_free(&cls);
    tw_dataset_free(&ext);
}

/* ---- parsing ------------------------------------------------------------------------------------------ */

static const char *const B77[] = {"card_arrival", "card", "lost_or_stolen_card", "top_up_failed", "top_up",
                                  "exchange_rate", "Refund_not_showing_up"};

typedef struct pcase { const char *raw, *want; bool valid; } pcase;

Test(parse, labels)
{
    static const pcase cases[] = {
        {"card_arrival", "card_arrival", true},
        {"  card_arrival\n", "card_arrival", true},
        {"CARD_ARRIVAL", "card_arrival", true},
        {"\"card_arrival\"", "card_arrival", true},
        {"'top_up'.", "top_up", true},
        {"`exchange_rate`", "exchange_rate", true},
        {"**lost_or_stolen_card**", "lost_or_stolen_card", true},
        {"```\ncard\n```", "card", true},
        {"```text\ntop_up_failed\n```", "top_up_failed", true},
        {"\xe2\x80\x9c" "card" "\xe2\x80\x9d", "card", true},
        {"card arrival", "card_arrival", true},
        {"Card-Arrival!", "card_arrival", true},
        {"refund not showing up", "Refund_not_showing_up", true},
        {"Label: card_arrival", "card_arrival", true},
        {"The intent is lost_or_stolen_card.", "lost_or_stolen_card", true},
        {"The intent is top up failed", "top_up_failed", true},            /* top_up is inside top_up_failed */
        {"I think it is card.", "card", true},
        {"It is card_arrival or top_up", "It is card_arrival or top_up", false},   /* two labels */
        {"card, not card_arrival", "card, not card_arrival", false},               /* card stands alone too */
        {"cards", "cards", false},                                                 /* no word boundary */
        {"discard", "discard", false},
        {"", "", false},
        {"   ", "", false},
        {"I don't know", "I don't know", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tw_parsed r = {0};
        tw_error err = {0};
        cr_assert_eq(tw_parse_label(cases[i].raw, B77, 7, &r, &err), TW_OK);
        cr_assert_str_eq(r.value, cases[i].want, "case %zu '%s'", i, cases[i].raw);
        cr_assert_eq(r.valid, cases[i].valid, "case %zu '%s'", i, cases[i].raw);
        tw_parsed_free(&r);
    }
    /* case-only twins: exact bytes win, otherwise ambiguous */
    const char *const twins[] = {"Positive", "positive", "negative"};
    tw_parsed r = {0};
    cr_assert_eq(tw_parse_label("Positive", twins, 3, &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "Positive"));
    tw_parsed_free(&r);
    cr_assert_eq(tw_parse_label("POSITIVE", twins, 3, &r, NULL), TW_OK);
    cr_assert(!r.valid);
    tw_parsed_free(&r);
    cr_assert_eq(tw_parse_label("NEGATIVE", twins, 3, &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "negative"));
    tw_parsed_free(&r);
    /* sentiment phrasing */
    const char *const sst[] = {"negative", "positive"};
    cr_assert_eq(tw_parse_label("Sentiment: Positive", sst, 2, &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "positive"));
    tw_parsed_free(&r);
    cr_assert_eq(tw_parse_label("positive or negative", sst, 2, &r, NULL), TW_OK);
    cr_assert(!r.valid);
    tw_parsed_free(&r);
    cr_assert_eq(tw_parse_label("non-positive", sst, 2, &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "positive"), "'-' separates words: %s", r.value);
    tw_parsed_free(&r);
    /* non-ASCII labels fold too */
    const char *const fr[] = {"négatif", "positif"};
    cr_assert_eq(tw_parse_label("NÉGATIF", fr, 2, &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "négatif"));
    tw_parsed_free(&r);
    cr_assert_eq(tw_parse_label(NULL, fr, 2, &r, NULL), TW_OK);
    cr_assert(!r.valid && !strcmp(r.value, ""));
    tw_parsed_free(&r);
    tw_parsed_free(NULL);
}

Test(parse, cot_answer)
{
    char *a = tw_parse_cot_answer("The user waits for a card.\nIt has not arrived.\nAnswer: card_arrival\n");
    cr_assert_str_eq(a, "card_arrival");
    free(a);
    a = tw_parse_cot_answer("answer: first\nmore thinking\n**Final Answer:** top_up  ");
    cr_assert_str_eq(a, "top_up", "the last Answer line wins");
    free(a);
    a = tw_parse_cot_answer("Reasoning...\nANSWER:positive");
    cr_assert_str_eq(a, "positive");
    free(a);
    a = tw_parse_cot_answer("The answer: is not at a line start");
    cr_assert_null(a);
    cr_assert_null(tw_parse_cot_answer("no answer line"));
    cr_assert_null(tw_parse_cot_answer(NULL));
    a = tw_parse_cot_answer("think\nAnswer: {\"title\": \"Jaws\",\n \"year\": 1975}");
    cr_assert_str_eq(a, "{\"title\": \"Jaws\",\n \"year\": 1975}", "the answer runs to the end");
    free(a);
}

Test(parse, json_objects)
{
    static const pcase cases[] = {
        {"{\"a\": 1}", "{\"a\": 1}", true},
        {"Here it is: {\"a\": {\"b\": [1, 2]}} done", "{\"a\": {\"b\": [1, 2]}}", true},
        {"```json\n{\"t\": \"x}\"}\n```", "{\"t\": \"x}\"}", true},
        {"{\"t\": \"quote \\\" and brace {\"}", "{\"t\": \"quote \\\" and brace {\"}", true},
        {"{not json} then {\"ok\": true}", "{\"ok\": true}", true},
        {"[1, 2]", "[1, 2]", false},
        {"{\"a\": 1", "{\"a\": 1", false},
        {"  nothing  ", "nothing", false},
        {"", "", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tw_parsed r = {0};
        cr_assert_eq(tw_parse_json_object(cases[i].raw, &r, NULL), TW_OK);
        cr_assert_str_eq(r.value, cases[i].want, "case %zu", i);
        cr_assert_eq(r.valid, cases[i].valid, "case %zu", i);
        tw_parsed_free(&r);
    }
}

Test(parse, through_the_prompt)
{
    tw_dataset cls = {0}, ext = {0};
    tiny_train(&cls);
    extract_train(&ext);
    tw_task tc = tiny_task(), te = extract_task();
    tw_prompt_target plain = {0};
    tw_prompt *p = make(&tc, &cls, "cot", TW_OUTPUT_FREE, 0, &plain);
    tw_parsed r = {0};
    cr_assert_eq(tw_prompt_parse(p, "It praises the wit, but says dull.\nAnswer: Positive", &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "positive"));
    tw_parsed_free(&r);
    cr_assert_eq(tw_prompt_parse(p, "positive and negative parts.\nAnswer: negative", &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "negative"), "only the Answer line counts");
    tw_parsed_free(&r);
    cr_assert_eq(tw_prompt_parse(p, "negative", &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "negative"), "no Answer line: the whole text as free");
    tw_parsed_free(&r);
    tw_prompt_free(p);
    p = make(&tc, &cls, "zero", TW_OUTPUT_FREE, 0, &plain);
    cr_assert_eq(tw_prompt_parse(p, "blah\nAnswer: positive", &r, NULL), TW_OK);
    cr_assert(r.valid && !strcmp(r.value, "positive"), "free: contained label");
    tw_parsed_free(&r);
    tw_prompt_free(p);
    p = make(&te, &ext, "cot", TW_OUTPUT_JSON, 0, &plain);
    cr_assert_eq(tw_prompt_parse(p, "Jaws is the film {maybe}.\nAnswer: {\"title\": \"Jaws\", \"year\": 1975}", &r,
                                 NULL), TW_OK);
    cr_assert(r.valid);
    cr_assert_str_eq(r.value, "{\"title\": \"Jaws\", \"year\": 1975}");
    tw_parsed_free(&r);
    tw_prompt_free(p);
    tw_dataset_free(&cls);
    tw_dataset_free(&ext);
}
