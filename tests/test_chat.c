/* test_chat.c — chat templates (src/model/chat.c) against jinja2's own renderings:
 *  - tests/data/chat/<template>.json: 15 real / well-known chat templates x 12 conversations
 *    x add_generation_prompt (x date_string / enable_thinking variants), rendered by jinja2
 *    in transformers' configuration (tests/ref/gen_chat_fixtures.py); every case must be
 *    identical byte for byte, or fail with the same raise_exception message;
 *  - tests/data/chat/jinja_semantics.json: small templates over the Jinja features the
 *    interpreter implements (whitespace control, literals, operators, scoping, filters,
 *    tests, methods), same oracle;
 *  - family detection, built-in templates (each equal to the template it mirrors), the
 *    fallback for unsupported Jinja, stop strings, assistant spans for training masks, user
 *    template files, and the error paths. */
#include "testutil.h"
#include "model/chat.h"

#include <jansson.h>

/* ---- helpers ---------------------------------------------------------------------- */

static const char *const FIXTURES[] = {
    "smollm2", "chatml", "qwen2", "qwen25", "qwen3", "llama3", "llama3_official", "llama31",
    "llama32", "llama2", "mistral_v01", "mistral_v03", "gemma", "gemma3", "zephyr", NULL,
};

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    cr_assert_not_null(j, "%s: %s (line %d); regenerate with tests/ref/gen_chat_fixtures.py", path, je.text, je.line);
    return j;
}

static json_t *load_fixture(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "tests/data/chat/%s.json", name);
    return load_json(path);
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Messages of a fixture conversation (borrowed from the JSON). */
static size_t conv_msgs(const json_t *fx, const char *conv, tw_chat_msg *msgs, size_t cap)
{
    const json_t *arr = json_object_get(json_object_get(fx, "conversations"), conv);
    cr_assert(json_is_array(arr), "conversation %s missing", conv);
    size_t n = json_array_size(arr);
    cr_assert(n <= cap);
    for (size_t i = 0; i < n; i++) {
        msgs[i].role = jstr(json_array_get(arr, i), "role");
        msgs[i].content = jstr(json_array_get(arr, i), "content");
    }
    return n;
}

/* Options of a fixture case: the template's bos/eos, the fixed clock, the case's kwargs. */
static tw_chat_opts case_opts(const json_t *fx, const json_t *cs)
{
    tw_chat_opts o = tw_chat_default_opts();
    o.add_generation_prompt = json_is_true(json_object_get(cs, "add_generation_prompt"));
    o.bos_token = jstr(fx, "bos_token");
    o.eos_token = jstr(fx, "eos_token");
    o.now = (int64_t)json_number_value(json_object_get(fx, "now"));
    const json_t *kw = json_object_get(cs, "kwargs");
    if (jstr(kw, "date_string")) o.date_string = jstr(kw, "date_string");
    const json_t *et = json_object_get(kw, "enable_thinking");
    if (json_is_boolean(et)) o.enable_thinking = json_is_true(et);
    return o;
}

static size_t first_diff(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0;
    while (i < an && i < bn && a[i] == b[i]) i++;
    return i;
}

/* Render every case of fixture `fx` with template t; returns how many cases matched and
 * asserts (with the first difference) when one does not. */
static size_t check_cases(const char *what, const tw_chat_template *t, const json_t *fx)
{
    const json_t *cases = json_object_get(fx, "cases");
    size_t ok = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *cs = json_array_get(cases, i);
        tw_chat_msg msgs[16];
        const char *conv = jstr(cs, "conversation");
        size_t n = conv_msgs(fx, conv, msgs, 16);
        tw_chat_opts o = case_opts(fx, cs);
        tw_buf out = {0};
        tw_error err;
        tw_error_clear(&err);
        tw_status st = tw_chat_render_ex(t, msgs, n, &o, &out, &err);
        const char *want = jstr(cs, "expected"), *want_err = jstr(cs, "error");
        if (want) {
            cr_assert_eq(st, TW_OK, "%s / %s (gen=%d): unexpected error: %s", what, conv, o.add_generation_prompt, err.msg);
            size_t wl = strlen(want);
            size_t d = first_diff(out.data, out.len, want, wl);
            cr_assert(out.len == wl && d == wl,
                      "%s / %s (gen=%d, kwargs case %zu): differs at byte %zu (len %zu vs %zu)\n got: [%.60s]\nwant: [%.60s]",
                      what, conv, o.add_generation_prompt, i, d, out.len, wl, out.data ? out.data + d : "", want + d);
        } else {
            cr_assert_not_null(want_err);
            cr_assert_eq(st, TW_ERR_INVALID, "%s / %s: expected the template to reject the conversation (%s), got status %d",
                         what, conv, want_err, st);
            cr_assert(strstr(err.msg, want_err), "%s / %s: message \"%s\" lacks \"%s\"", what, conv, err.msg, want_err);
            cr_assert_eq(out.len, 0u, "output must be unchanged on error");
        }
        tw_buf_free(&out);
        ok++;
    }
    return ok;
}

/* ---- the fixtures: model templates ------------------------------------------------ */

Test(chat, fixtures_render_identically_to_jinja2)
{
    size_t total = 0, templates = 0;
    for (const char *const *name = FIXTURES; *name; name++) {
        json_t *fx = load_fixture(*name);
        const char *src = jstr(fx, "template");
        cr_assert_not_null(src);
        char hex[65];
        tw_sha256(src, strlen(src), hex);
        cr_assert_str_eq(hex, jstr(fx, "template_sha256"), "%s: template text changed", *name);

        tw_chat_family fam;
        tw_error err;
        cr_assert_eq(tw_chat_detect(src, &fam, &err), TW_OK, "%s: %s", *name, err.msg);
        cr_assert_str_eq(tw_chat_family_name(fam), jstr(fx, "family"), "%s: detected as %s", *name, tw_chat_family_name(fam));

        tw_chat_template *t = NULL;
        cr_assert_eq(tw_chat_template_new(&t, src, &err), TW_OK, "%s: %s", *name, err.msg);
        cr_assert(!tw_chat_template_fallback(t), "%s: the model's own template must be interpreted, not replaced", *name);
        cr_assert_eq(tw_chat_template_family(t), fam);
        cr_assert_str_eq(tw_chat_template_source(t), src);
        size_t n = check_cases(*name, t, fx);
        cr_assert_gt(n, 20u, "%s: too few cases", *name);
        total += n;
        templates++;
        tw_chat_template_free(t);
        json_decref(fx);
    }
    cr_assert_eq(templates, 15u);
    cr_assert_eq(total, 456u, "fixture set changed: %zu cases", total);
}

/* The fixtures' llama3 / qwen3 templates are the real ones in ../shared. */
Test(chat, fixture_templates_are_the_shared_tokenizer_configs)
{
    const char *names[][2] = {{"llama3", "llama3"}, {"qwen3", "qwen3"}};
    for (size_t i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/models/tokenizers/%s/tokenizer_config.json", tw_test_shared(), names[i][1]);
        json_t *cfg = load_json(path);
        json_t *fx = load_fixture(names[i][0]);
        cr_assert_str_eq(jstr(cfg, "chat_template"), jstr(fx, "template"), "%s differs from %s", names[i][0], path);
        /* and loading the tokenizer_config.json as a user file gives the same template */
        tw_chat_template *t = NULL;
        tw_error err;
        cr_assert_eq(tw_chat_template_load(&t, path, &err), TW_OK, "%s", err.msg);
        cr_assert_str_eq(tw_chat_template_source(t), jstr(fx, "template"));
        cr_assert_str_eq(tw_chat_family_name(tw_chat_template_family(t)), jstr(fx, "family"));
        check_cases(path, t, fx);
        tw_chat_template_free(t);
        json_decref(cfg);
        json_decref(fx);
    }
}

/* ---- the interpreter: Jinja semantics --------------------------------------------- */

/* Render a template string with no detection (a user file in a temp dir). */
static tw_status render_src(const char *src, const json_t *vars, int64_t now, tw_buf *out, tw_error *err);

Test(chat, jinja_semantics_match_jinja2)
{
    json_t *fx = load_json("tests/data/chat/jinja_semantics.json");
    const json_t *cases = json_object_get(fx, "cases");
    cr_assert_gt(json_array_size(cases), 60u);
    int64_t now = (int64_t)json_number_value(json_object_get(fx, "now"));
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *cs = json_array_get(cases, i);
        const char *name = jstr(cs, "name");
        tw_buf out = {0};
        tw_error err;
        tw_error_clear(&err);
        tw_status st = render_src(jstr(cs, "template"), json_object_get(cs, "vars"), now, &out, &err);
        const char *want = jstr(cs, "expected");
        if (want) {
            cr_assert_eq(st, TW_OK, "%s: %s", name, err.msg);
            size_t wl = strlen(want), d = first_diff(out.data, out.len, want, wl);
            cr_assert(out.len == wl && d == wl, "%s: differs at byte %zu\n got: [%s]\nwant: [%s]", name, d,
                      out.data ? out.data : "", want);
        } else if (jstr(cs, "error")) {
            cr_assert_eq(st, TW_ERR_INVALID, "%s: expected raise_exception, got %d (%s)", name, st, err.msg);
            cr_assert(strstr(err.msg, jstr(cs, "error")), "%s: \"%s\"", name, err.msg);
        } else {
            cr_assert_neq(st, TW_OK, "%s: jinja2 raises (%s) but tunewise rendered [%s]", name, jstr(cs, "exception"),
                          out.data ? out.data : "");
            cr_assert(strstr(err.msg, "line 1:"), "%s: runtime errors carry the line: %s", name, err.msg);
        }
        tw_buf_free(&out);
    }
    json_decref(fx);
}

/* ---- detection ------------------------------------------------------------------ */

Test(chat, detect_by_markers_not_by_equality)
{
    struct { const char *src; tw_chat_family f; } cases[] = {
        {"{{ '<|im_start|>' + m }}", TW_CHAT_CHATML},
        {"{%- for m in messages %}{{- \"<|im_start|>\" ~ m.role }}{% endfor %}", TW_CHAT_CHATML},
        {"<|im_start|> {% if enable_thinking %}", TW_CHAT_QWEN3},
        {"<|im_start|>assistant\n<think>", TW_CHAT_QWEN3},
        {"{{ '<|start_header_id|>' + r + '<|end_header_id|>' }}", TW_CHAT_LLAMA3},
        {"[INST] <<SYS>>\\n", TW_CHAT_LLAMA2},
        {"{{ '[INST] ' + c + ' [/INST]' }}", TW_CHAT_MISTRAL},
        {"<start_of_turn>model", TW_CHAT_GEMMA},
        {"<|system|>\n<|user|>\n<|assistant|>\n", TW_CHAT_ZEPHYR},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tw_chat_family f;
        tw_error err;
        cr_assert_eq(tw_chat_detect(cases[i].src, &f, &err), TW_OK, "%s", cases[i].src);
        cr_assert_eq(f, cases[i].f, "%s -> %s", cases[i].src, tw_chat_family_name(f));
    }
}

Test(chat, detect_unknown_and_empty_are_errors)
{
    tw_chat_family f = TW_CHAT_CHATML;
    tw_error err;
    /* Phi-3 (<|user|> ... <|end|>) and Alpaca are not supported families */
    const char *unknown[] = {"{{ '<|user|>\\n' + c + '<|end|>\\n<|assistant|>' }}", "### Instruction:\n{{ x }}\n### Response:"};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(tw_chat_detect(unknown[i], &f, &err), TW_ERR_UNSUPPORTED);
        cr_assert_eq(f, TW_CHAT_UNKNOWN);
        cr_assert(strstr(err.msg, "--chat-template FILE"), "%s", err.msg);
        tw_chat_template *t = (tw_chat_template *)1;
        cr_assert_eq(tw_chat_template_new(&t, unknown[i], &err), TW_ERR_UNSUPPORTED);
        cr_assert_null(t);
    }
    cr_assert_eq(tw_chat_detect("", &f, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "no chat template"), "%s", err.msg);
    cr_assert_eq(tw_chat_detect(NULL, &f, &err), TW_ERR_INVALID);
    tw_chat_template *t = (tw_chat_template *)1;
    cr_assert_eq(tw_chat_template_new(&t, "<|im_start|>{{ x }}\xff", &err), TW_ERR_PARSE);
    cr_assert(strstr(err.msg, "offset 19: invalid UTF-8"), "%s", err.msg);
    cr_assert_null(t);
    cr_assert_str_eq(tw_chat_family_name(TW_CHAT_GEMMA), "gemma");
    cr_assert_str_eq(tw_chat_family_name((tw_chat_family)99), "unknown");
}

/* ---- built-in templates and the fallback ----------------------------------------- */

Test(chat, builtins_equal_the_templates_they_mirror)
{
    const char *pairs[][2] = {
        {"chatml", "chatml"}, {"qwen3", "qwen3"}, {"llama3", "llama3_official"}, {"llama3.1", "llama31"},
        {"llama2", "llama2"}, {"mistral", "mistral_v03"}, {"gemma", "gemma3"}, {"zephyr", "zephyr"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        tw_chat_template *t = NULL;
        tw_error err;
        cr_assert_eq(tw_chat_template_builtin(&t, pairs[i][0], &err), TW_OK, "%s: %s", pairs[i][0], err.msg);
        json_t *fx = load_fixture(pairs[i][1]);
        cr_assert_str_eq(tw_chat_family_name(tw_chat_template_family(t)), jstr(fx, "family"));
        /* the built-in source is detected as its own family too */
        tw_chat_family f;
        cr_assert_eq(tw_chat_detect(tw_chat_template_source(t), &f, &err), TW_OK);
        cr_assert_eq(f, tw_chat_template_family(t));
        check_cases(pairs[i][0], t, fx);
        json_decref(fx);
        tw_chat_template_free(t);
    }
    tw_chat_template *t = (tw_chat_template *)1;
    tw_error err;
    cr_assert_eq(tw_chat_template_builtin(&t, "vicuna", &err), TW_ERR_INVALID);
    cr_assert_null(t);
    cr_assert(strstr(err.msg, "vicuna") && strstr(err.msg, "llama3.1"), "%s", err.msg);
}

static char g_log[4096];
static void capture(tw_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == TW_LOG_WARN) snprintf(g_log, sizeof g_log, "%s", msg);
}

Test(chat, unsupported_jinja_falls_back_to_the_family_builtin)
{
    /* a ChatML template written with a macro: not in the subset */
    const char *src = "{% macro turn(r, c) %}<|im_start|>{{ r }}\n{{ c }}<|im_end|>\n{% endmacro %}"
                      "{% for m in messages %}{{ turn(m.role, m.content) }}{% endfor %}";
    g_log[0] = '\0';
    tw_log_set_hook(capture, NULL);
    tw_chat_template *t = NULL;
    tw_error err;
    cr_assert_eq(tw_chat_template_new(&t, src, &err), TW_OK, "%s", err.msg);
    tw_log_set_hook(NULL, NULL);
    cr_assert(tw_chat_template_fallback(t));
    cr_assert_eq(tw_chat_template_family(t), TW_CHAT_CHATML);
    cr_assert(strstr(g_log, "unsupported Jinja tag 'macro'") && strstr(g_log, "built-in 'chatml'"), "log: %s", g_log);
    tw_chat_msg m[] = {{"user", "Hi"}};
    tw_buf out = {0};
    cr_assert_eq(tw_chat_render(t, m, 1, true, NULL, NULL, &out, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(out.data, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    tw_buf_free(&out);
    tw_chat_template_free(t);

    /* Llama 3.x with the date preamble falls back to llama3.1 */
    const char *l31 = "{% for m in messages %}{{ m.content | wordwrap }}{% endfor %}<|start_header_id|><|end_header_id|>"
                      "Cutting Knowledge Date";
    cr_assert_eq(tw_chat_template_new(&t, l31, &err), TW_OK, "%s", err.msg);
    cr_assert(tw_chat_template_fallback(t));
    cr_assert(strstr(tw_chat_template_source(t), "Today Date"));
    tw_chat_template_free(t);
    tw_chat_template_free(NULL);
}

/* ---- stop strings ------------------------------------------------------------------ */

Test(chat, stop_strings_per_family)
{
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_CHATML)[0], "<|im_end|>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_QWEN3)[0], "<|im_end|>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_LLAMA3)[0], "<|eot_id|>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_LLAMA3)[1], "<|eom_id|>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_GEMMA)[0], "<end_of_turn>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_LLAMA2)[0], "</s>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_MISTRAL)[0], "</s>");
    cr_assert_str_eq(tw_chat_family_stops(TW_CHAT_ZEPHYR)[0], "</s>");
    cr_assert_null(tw_chat_family_stops(TW_CHAT_UNKNOWN)[0]);
    cr_assert_null(tw_chat_family_stops(TW_CHAT_CHATML)[2]);

    /* every fixture's rendered assistant turn is closed by its family's first stop string
       (or, for the EOS families, the fixture's eos_token) */
    for (const char *const *name = FIXTURES; *name; name++) {
        json_t *fx = load_fixture(*name);
        tw_chat_template *t = NULL;
        tw_error err;
        cr_assert_eq(tw_chat_template_new(&t, jstr(fx, "template"), &err), TW_OK);
        const char *stop = tw_chat_template_stops(t)[0];
        cr_assert_not_null(stop);
        tw_chat_msg m[16];
        size_t n = conv_msgs(fx, "ends_with_assistant", m, 16);
        tw_chat_opts o = tw_chat_default_opts();
        o.bos_token = jstr(fx, "bos_token");
        o.eos_token = jstr(fx, "eos_token");
        tw_buf out = {0};
        tw_chat_span sp;
        tw_status st = tw_chat_render_span(t, m, n, &o, &out, &sp, &err);
        if (st == TW_OK) {
            size_t sl = strlen(stop);
            cr_assert(sp.turn_end - sl >= sp.content_end && memcmp(out.data + sp.turn_end - sl, stop, sl) == 0,
                      "%s: turn not closed by %s: [%.*s]", *name, stop, (int)(sp.turn_end - sp.content_end),
                      out.data + sp.content_end);
        } else cr_assert_eq(st, TW_ERR_INVALID, "%s: %s", *name, err.msg);  /* rejects the system message */
        tw_buf_free(&out);
        tw_chat_template_free(t);
        json_decref(fx);
    }
}

/* ---- spans of the last assistant message ------------------------------------------ */

static bool is_strip_of(const char *got, size_t n, const char *content)
{
    size_t b = 0, e = strlen(content);
    while (b < e && strchr(" \t\n\r\v\f", content[b])) b++;
    while (e > b && strchr(" \t\n\r\v\f", content[e - 1])) e--;
    return (n == strlen(content) && memcmp(got, content, n) == 0) || (n == e - b && memcmp(got, content + b, n) == 0);
}

Test(chat, span_locates_the_last_assistant_message)
{
    const char *convs[] = {"ends_with_assistant", "whitespace_padding_a", "template_lookalike", "think_history", NULL};
    size_t checked = 0;
    for (const char *const *name = FIXTURES; *name; name++) {
        json_t *fx = load_fixture(*name);
        tw_chat_template *t = NULL;
        tw_error err;
        cr_assert_eq(tw_chat_template_new(&t, jstr(fx, "template"), &err), TW_OK);
        for (const char *const *cv = convs; *cv; cv++) {
            tw_chat_msg m[16];
            size_t n;
            if (strcmp(*cv, "whitespace_padding_a") == 0) {
                n = conv_msgs(fx, "whitespace_padding", m, 16) - 1;  /* ends on "   padded answer   " */
            } else n = conv_msgs(fx, *cv, m, 16);
            tw_chat_opts o = tw_chat_default_opts();
            o.bos_token = jstr(fx, "bos_token");
            o.eos_token = jstr(fx, "eos_token");
            o.now = (int64_t)json_number_value(json_object_get(fx, "now"));
            tw_buf out = {0};
            cr_assert_eq(tw_buf_puts(&out, "PREFIX"), TW_OK);  /* offsets are absolute */
            tw_chat_span sp;
            tw_status st = tw_chat_render_span(t, m, n, &o, &out, &sp, &err);
            if (st == TW_ERR_INVALID) {  /* the template rejects the conversation */
                cr_assert_eq(out.len, 6u);
                tw_buf_free(&out);
                continue;
            }
            cr_assert_eq(st, TW_OK, "%s/%s: %s", *name, *cv, err.msg);
            cr_assert(6 <= sp.prompt_end && sp.prompt_end <= sp.content_begin && sp.content_begin <= sp.content_end &&
                      sp.content_end <= sp.turn_end && sp.turn_end <= out.len, "%s/%s: bad span %zu %zu %zu %zu / %zu",
                      *name, *cv, sp.prompt_end, sp.content_begin, sp.content_end, sp.turn_end, out.len);
            /* the same text as a plain render */
            tw_buf plain = {0};
            cr_assert_eq(tw_chat_render_ex(t, m, n, &o, &plain, &err), TW_OK);
            cr_assert_eq(plain.len, out.len - 6);
            cr_assert(memcmp(plain.data, out.data + 6, plain.len) == 0);
            /* the content is the message (or its strip, for templates that trim) ... */
            const char *content = m[n - 1].content;
            const char *got = out.data + sp.content_begin;
            size_t gl = sp.content_end - sp.content_begin;
            if (strcmp(*name, "qwen3") == 0 && strstr(content, "</think>")) {
                /* ... Qwen3 rewrites the last turn's <think> block: the span covers it all */
                cr_assert(gl >= strlen("42 again.") && strstr(got, "<think>\nSame product.\n</think>\n\n42 again.") == got,
                          "qwen3 think span: [%.*s]", (int)gl, got);
            } else cr_assert(is_strip_of(got, gl, content), "%s/%s: content span [%.*s]", *name, *cv, (int)gl, got);
            /* ... and the prompt is what rendering the earlier messages with the generation
               prompt gives; except for Mistral v0.3, whose system message moves to the last
               user turn, so that rendering is no prefix: then the prompt ends at the content */
            tw_buf prompt = {0};
            tw_chat_opts og = o;
            og.add_generation_prompt = true;
            cr_assert_eq(tw_chat_render_ex(t, m, n - 1, &og, &prompt, &err), TW_OK);
            bool prefix = prompt.len <= plain.len && memcmp(prompt.data, plain.data, prompt.len) == 0;
            if (prefix)
                cr_assert_eq(prompt.len, sp.prompt_end - 6, "%s/%s: prompt_end %zu, prompt length %zu", *name, *cv,
                             sp.prompt_end - 6, prompt.len);
            else {
                cr_assert(strcmp(*name, "mistral_v03") == 0 && strcmp(m[0].role, "system") == 0,
                          "%s/%s: the prompt rendering is no prefix", *name, *cv);
                cr_assert_eq(sp.prompt_end, sp.content_begin);
            }
            tw_buf_free(&prompt);
            tw_buf_free(&plain);
            tw_buf_free(&out);
            checked++;
        }
        tw_chat_template_free(t);
        json_decref(fx);
    }
    cr_assert_gt(checked, 40u);
}

Test(chat, span_exact_boundaries)
{
    tw_chat_msg m[] = {{"system", "S"}, {"user", "U"}, {"assistant", "  A  "}};
    struct { const char *builtin; const char *between, *content, *end; } cases[] = {
        /* text between prompt_end and content_begin, the content, the turn's end marker */
        {"chatml", "", "  A  ", "<|im_end|>"},
        {"qwen3", "<think>\n\n</think>\n\n", "  A  ", "<|im_end|>"},
        {"llama3.1", "", "A", "<|eot_id|>"},
        {"llama2", " ", "A", " </s>"},
        {"mistral", "", "  A  ", "</s>"},  /* prompt_end = content_begin: see below */
        {"gemma", "", "A", "<end_of_turn>"},
        {"zephyr", "", "  A  ", "</s>"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tw_chat_template *t = NULL;
        tw_error err;
        cr_assert_eq(tw_chat_template_builtin(&t, cases[i].builtin, &err), TW_OK);
        tw_chat_opts o = tw_chat_default_opts();
        o.bos_token = "<s>";
        o.eos_token = "</s>";
        tw_buf out = {0};
        tw_chat_span sp;
        cr_assert_eq(tw_chat_render_span(t, m, 3, &o, &out, &sp, &err), TW_OK, "%s: %s", cases[i].builtin, err.msg);
        const char *s = out.data;
        cr_assert(sp.content_begin - sp.prompt_end == strlen(cases[i].between) &&
                  memcmp(s + sp.prompt_end, cases[i].between, strlen(cases[i].between)) == 0,
                  "%s: between [%.*s]", cases[i].builtin, (int)(sp.content_begin - sp.prompt_end), s + sp.prompt_end);
        cr_assert(sp.content_end - sp.content_begin == strlen(cases[i].content) &&
                  memcmp(s + sp.content_begin, cases[i].content, strlen(cases[i].content)) == 0,
                  "%s: content [%.*s]", cases[i].builtin, (int)(sp.content_end - sp.content_begin), s + sp.content_begin);
        cr_assert(sp.turn_end - sp.content_end == strlen(cases[i].end) &&
                  memcmp(s + sp.content_end, cases[i].end, strlen(cases[i].end)) == 0,
                  "%s: end [%.*s]", cases[i].builtin, (int)(sp.turn_end - sp.content_end), s + sp.content_end);
        tw_buf_free(&out);
        tw_chat_template_free(t);
    }
}

Test(chat, span_errors)
{
    tw_chat_template *t = NULL;
    tw_error err;
    cr_assert_eq(tw_chat_template_builtin(&t, "chatml", &err), TW_OK);
    tw_chat_msg m[] = {{"user", "U"}};
    tw_buf out = {0};
    tw_chat_span sp;
    cr_assert_eq(tw_chat_render_span(t, m, 1, NULL, &out, &sp, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "assistant"), "%s", err.msg);
    cr_assert_eq(tw_chat_render_span(t, m, 0, NULL, &out, &sp, &err), TW_ERR_INVALID);
    tw_chat_template_free(t);

    /* a template that drops the assistant's content cannot be located */
    char *dir = tw_test_tmpdir();
    char *p = tw_test_write(dir, "drop.jinja", "{% for m in messages %}{% if m.role == 'user' %}U:{{ m.content }}\n"
                                               "{% else %}A: (hidden)\n{% endif %}{% endfor %}");
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    tw_chat_msg m2[] = {{"user", "U"}, {"assistant", "secret"}};
    cr_assert_eq(tw_chat_render_span(t, m2, 2, NULL, &out, &sp, &err), TW_ERR_UNSUPPORTED);
    cr_assert_eq(out.len, 0u);
    tw_chat_template_free(t);
    free(p);
    free(dir);
    tw_buf_free(&out);
}

/* ---- user template files ------------------------------------------------------------ */

static tw_status render_src(const char *src, const json_t *vars, int64_t now, tw_buf *out, tw_error *err)
{
    char *dir = tw_test_tmpdir();
    char *p = tw_test_write(dir, "t.jinja", src);
    tw_chat_template *t = NULL;
    tw_status st = tw_chat_template_load(&t, p, err);
    unlink(p);
    rmdir(dir);
    free(p);
    free(dir);
    if (st) return st;
    /* the semantics fixtures set only messages, and bos_token / tools to None, which are
       also what tunewise passes by default */
    tw_chat_msg msgs[8];
    size_t n = 0;
    const json_t *ms = json_object_get(vars, "messages");
    for (size_t i = 0; i < json_array_size(ms) && i < 8; i++, n++) {
        msgs[i].role = jstr(json_array_get(ms, i), "role");
        msgs[i].content = jstr(json_array_get(ms, i), "content");
    }
    tw_chat_opts o = tw_chat_default_opts();
    o.now = now;
    st = tw_chat_render_ex(t, msgs, n, &o, out, err);
    tw_chat_template_free(t);
    return st;
}

Test(chat, user_template_file_custom_family)
{
    char *dir = tw_test_tmpdir();
    /* an Alpaca-style template: no known family, so its stop string is derived */
    char *p = tw_test_write(dir, "alpaca.jinja",
                            "{% for m in messages %}\n"
                            "{% if m.role == 'system' %}{{ m.content }}\n\n"
                            "{% elif m.role == 'user' %}### Instruction:\n{{ m.content }}\n\n"
                            "{% else %}### Response:\n{{ m.content }}\n### End\n\n"
                            "{% endif %}\n"
                            "{% endfor %}\n"
                            "{% if add_generation_prompt %}### Response:\n{% endif %}\n");
    tw_chat_template *t = NULL;
    tw_error err;
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_chat_template_family(t), TW_CHAT_CUSTOM);
    cr_assert_str_eq(tw_chat_template_stops(t)[0], "###");
    cr_assert_null(tw_chat_template_stops(t)[1]);
    tw_chat_msg m[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    tw_buf out = {0};
    cr_assert_eq(tw_chat_render(t, m, 4, true, NULL, NULL, &out, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(out.data, "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello\n### End\n\n"
                               "### Instruction:\nBye\n\n### Response:\n");
    tw_buf_free(&out);
    tw_chat_template_free(t);
    free(p);

    /* a custom template whose turns end with the EOS token: no extra stop string */
    p = tw_test_write(dir, "eos.jinja", "{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}");
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    cr_assert_null(tw_chat_template_stops(t)[0]);
    tw_chat_template_free(t);
    free(p);

    /* a user file of a known family is detected (and keeps its family's stops) */
    p = tw_test_write(dir, "mine.jinja", "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_chat_template_family(t), TW_CHAT_CHATML);
    cr_assert_str_eq(tw_chat_template_stops(t)[0], "<|im_end|>");
    tw_chat_template_free(t);
    free(p);

    /* tokenizer_config.json with a list of named templates */
    p = tw_test_write(dir, "tokenizer_config.json",
                      "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"TOOLS\"},"
                      " {\"name\": \"default\", \"template\": \"{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}\"}]}");
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_chat_template_family(t), TW_CHAT_MISTRAL);
    tw_chat_msg u[] = {{"user", "x"}};
    cr_assert_eq(tw_chat_render(t, u, 1, false, NULL, NULL, &out, &err), TW_OK);
    cr_assert_str_eq(out.data, "[INST] x [/INST]");
    tw_buf_free(&out);
    tw_chat_template_free(t);
    free(p);
    free(dir);
}

static void expect_load_error(const char *dir, const char *file, const char *text, tw_status want, const char *msg)
{
    char *p = tw_test_write(dir, file, text);
    tw_chat_template *t = (tw_chat_template *)1;
    tw_error err;
    tw_status st = tw_chat_template_load(&t, p, &err);
    cr_assert_eq(st, want, "%s: status %d (%s)", file, st, err.msg);
    cr_assert_null(t);
    cr_assert(strstr(err.msg, msg), "%s: message \"%s\" lacks \"%s\"", file, err.msg, msg);
    cr_assert(strncmp(err.msg, p, strlen(p)) == 0, "message \"%s\" does not start with the path", err.msg);
    free(p);
}

Test(chat, user_template_file_errors)
{
    char *dir = tw_test_tmpdir();
    expect_load_error(dir, "a.jinja", "ok\n{% for m in messages %}\n{{ m.content }\n", TW_ERR_PARSE, "line 3:");
    expect_load_error(dir, "b.jinja", "{% for m in messages %}x", TW_ERR_PARSE, "missing '{% endfor %}'");
    expect_load_error(dir, "c.jinja", "\n\n{% macro f() %}{% endmacro %}", TW_ERR_UNSUPPORTED, "line 3: unsupported Jinja tag 'macro'");
    expect_load_error(dir, "d.jinja", "{{ x | wordwrap }}", TW_ERR_UNSUPPORTED, "unsupported filter 'wordwrap'");
    expect_load_error(dir, "e.jinja", "{{ x is divisible }}", TW_ERR_UNSUPPORTED, "unsupported test 'divisible'");
    expect_load_error(dir, "f.jinja", "{{ x.format(1) }}", TW_ERR_UNSUPPORTED, "unsupported method '.format()'");
    expect_load_error(dir, "g.jinja", "{{ lipsum() }}", TW_ERR_UNSUPPORTED, "unsupported function 'lipsum()'");
    expect_load_error(dir, "h.jinja", "{# open comment", TW_ERR_PARSE, "missing end of comment tag");
    expect_load_error(dir, "i.jinja", "{{ 'open }}", TW_ERR_PARSE, "unterminated string literal");
    expect_load_error(dir, "j.jinja", "{% endif %}", TW_ERR_PARSE, "unexpected 'endif'");
    expect_load_error(dir, "k.jinja", "{{ (1 }}", TW_ERR_PARSE, "expected");
    expect_load_error(dir, "o.jinja", "a\n{% break %}", TW_ERR_PARSE, "line 2: 'break' outside of a for loop");
    expect_load_error(dir, "p.jinja", "{% for x in y %}{% else %}{% continue %}{% endfor %}", TW_ERR_PARSE, "outside of a for loop");
    expect_load_error(dir, "l.json", "{\"bos_token\": \"<s>\"}", TW_ERR_INVALID, "chat_template");
    expect_load_error(dir, "m.json", "{\"chat_template\": ", TW_ERR_PARSE, "line 1");
    expect_load_error(dir, "n.jinja", "ok \xff\xfe", TW_ERR_PARSE, "invalid UTF-8");
    tw_chat_template *t = (tw_chat_template *)1;
    tw_error err;
    cr_assert_eq(tw_chat_template_load(&t, "/nonexistent/chat.jinja", &err), TW_ERR_IO);
    cr_assert_null(t);
    free(dir);
}

/* ---- rendering: options and error paths -------------------------------------------- */

Test(chat, render_options_and_errors)
{
    tw_chat_template *t = NULL;
    tw_error err;
    cr_assert_eq(tw_chat_template_builtin(&t, "llama3.1", &err), TW_OK);
    tw_chat_msg m[] = {{"user", "Hi"}};
    tw_buf out = {0};
    /* date_string given by the caller; appended after what the buffer held */
    cr_assert_eq(tw_buf_puts(&out, ">>"), TW_OK);
    tw_chat_opts o = tw_chat_default_opts();
    o.date_string = "01 Feb 2031";
    o.bos_token = "<|begin_of_text|>";
    cr_assert_eq(tw_chat_render_ex(t, m, 1, &o, &out, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(out.data, ">><|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                               "Cutting Knowledge Date: December 2023\nToday Date: 01 Feb 2031\n\n<|eot_id|>"
                               "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    /* invalid UTF-8 and NULL content are rejected; the buffer is unchanged */
    size_t before = out.len;
    tw_chat_msg bad[] = {{"user", "ok"}, {"assistant", "\xc3\x28"}};
    cr_assert_eq(tw_chat_render_ex(t, bad, 2, &o, &out, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "messages[1].content: invalid UTF-8 at byte 0"), "%s", err.msg);
    tw_chat_msg nul[] = {{"user", NULL}};
    cr_assert_eq(tw_chat_render_ex(t, nul, 1, &o, &out, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "messages[0]: content is NULL"), "%s", err.msg);
    cr_assert_eq(out.len, before);
    /* bos_token NULL is None in the template: printed it is "None" (as in jinja2) ... */
    o.bos_token = NULL;
    tw_buf nb = {0};
    cr_assert_eq(tw_chat_render_ex(t, m, 1, &o, &nb, &err), TW_OK);
    cr_assert(strncmp(nb.data, "None<|start_header_id|>", 23) == 0, "%s", nb.data);
    tw_buf_free(&nb);
    tw_chat_template_free(t);
    /* ... and None + str is a type error, reported with its line */
    cr_assert_eq(tw_chat_template_builtin(&t, "llama3", &err), TW_OK);
    cr_assert_eq(tw_chat_render_ex(t, m, 1, &o, &out, &err), TW_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "line 1: unsupported operand type(s) for +: 'NoneType' and 'str'"), "%s", err.msg);
    cr_assert_eq(out.len, before);
    tw_chat_template_free(t);

    /* a raise_exception in the middle of the output leaves the buffer as it was */
    cr_assert_eq(tw_chat_template_builtin(&t, "llama2", &err), TW_OK);
    tw_chat_msg alt[] = {{"user", "a"}, {"assistant", "b"}, {"assistant", "c"}};
    cr_assert_eq(tw_chat_render(t, alt, 3, false, "<s>", "</s>", &out, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "Conversation roles must alternate user/assistant/user/assistant/..."), "%s", err.msg);
    cr_assert_eq(out.len, before);
    cr_assert_str_eq(out.data + before - 4, "id|>");
    /* zero messages: Llama 2 reads messages[0]['role'], an error (as in jinja2) ... */
    tw_buf e = {0};
    cr_assert_eq(tw_chat_render(t, NULL, 0, true, "<s>", "</s>", &e, &err), TW_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "is undefined"), "%s", err.msg);
    tw_chat_template_free(t);
    /* ... ChatML renders an empty string (a valid, NUL-terminated buffer) */
    cr_assert_eq(tw_chat_template_builtin(&t, "chatml", &err), TW_OK);
    cr_assert_eq(tw_chat_render(t, NULL, 0, false, NULL, NULL, &e, &err), TW_OK);
    cr_assert_eq(e.len, 0u);
    cr_assert_not_null(e.data);
    cr_assert_str_eq(e.data, "");
    tw_buf_free(&e);
    tw_chat_template_free(t);

    /* Qwen3's enable_thinking=false adds an empty think block after the generation prompt */
    cr_assert_eq(tw_chat_template_builtin(&t, "qwen3", &err), TW_OK);
    tw_buf q = {0};
    o = tw_chat_default_opts();
    o.add_generation_prompt = true;
    o.enable_thinking = 0;
    cr_assert_eq(tw_chat_render_ex(t, m, 1, &o, &q, &err), TW_OK);
    cr_assert_str_eq(q.data, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    tw_buf_free(&q);
    tw_chat_template_free(t);
    tw_buf_free(&out);
}

/* Runaway templates hit a limit instead of exhausting memory. */
Test(chat, limits)
{
    char *dir = tw_test_tmpdir();
    char *p = tw_test_write(dir, "big.jinja", "{% for i in range(100000000) %}x{% endfor %}");
    tw_chat_template *t = NULL;
    tw_error err;
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    tw_buf out = {0};
    cr_assert_eq(tw_chat_render(t, NULL, 0, false, NULL, NULL, &out, &err), TW_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "range() longer than"), "%s", err.msg);
    tw_chat_template_free(t);
    free(p);
    /* nested loops that would run for hours stop at the step budget */
    p = tw_test_write(dir, "slow.jinja", "{% set r = range(1000000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}");
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_chat_render(t, NULL, 0, false, NULL, NULL, &out, &err), TW_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "runs too long"), "%s", err.msg);
    tw_chat_template_free(t);
    free(p);
    /* deep nesting is refused at compile time */
    char deep[2200];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{{ ");
    for (int i = 0; i < 500; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 500; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    p = tw_test_write(dir, "deep.jinja", deep);
    cr_assert_eq(tw_chat_template_load(&t, p, &err), TW_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "nesting deeper than"), "%s", err.msg);
    free(p);
    tw_buf_free(&out);
    free(dir);
}
