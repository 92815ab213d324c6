/* test_grammar.c — constrained decoding (src/model/grammar.c and its hook in
 * tw_generate):
 *  - the byte-level matcher on hand-written accept / reject strings (escapes, \u and
 *    surrogate pairs, UTF-8, numbers with exponents, nested arrays / objects, required
 *    vs optional keys, free keys, enums sharing prefixes, empty arrays, length bounds);
 *  - schema compile errors naming the JSON pointer of the keyword;
 *  - the token level on SmolLM2's real vocabulary: tokens spanning structural
 *    boundaries, EOS only when complete, random walks over allowed tokens that must
 *    always end in a schema-valid value (checked with the extract scorer's validator),
 *    and the cost of one masking step;
 *  - generation from real models (stories260K, SmolLM2-135M Q4_1) at temperature >= 1
 *    over many seeds: every output parses and validates / is one of the labels, and a
 *    token budget that runs out is reported as incomplete. */
#include "testutil.h"

#include "model/grammar.h"
#include "model/llama.h"
#include "score/metrics.h"

#include <jansson.h>

/* ---- helpers ------------------------------------------------------------------------ */

static tw_grammar *schema_grammar(const char *schema_text, int max_ws)
{
    tw_grammar *g = NULL;
    tw_error err = {0};
    tw_grammar_params p = tw_grammar_default_params();
    if (max_ws >= 0) p.max_ws = max_ws;
    tw_status st = tw_grammar_from_schema_text(&g, schema_text, strlen(schema_text), &p, &err);
    cr_assert_eq(st, TW_OK, "%s", err.msg);
    return g;
}

static bool accepts(const tw_grammar *g, const char *s) { return tw_grammar_accepts(g, s, strlen(s)); }

/* every prefix of s is accepted by the matcher (it is a viable prefix) */
static bool viable(const tw_grammar *g, const char *s)
{
    tw_gstate st;
    tw_gstate_init(&st, g);
    return tw_gstate_feed_bytes(&st, g, s, strlen(s));
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s — run from the repository root", path, je.text);
    return j;
}

static const char *smollm2_path(void)
{
    static char p[1024];
    const char *e = getenv("TW_SMOLLM2");
    if (e) snprintf(p, sizeof p, "%s", e);
    else snprintf(p, sizeof p, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    cr_assert(access(p, R_OK) == 0, "SmolLM2 model not found at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", p);
    return p;
}

static const char *stories_path(void)
{
    static char p[1024];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(access(p, R_OK) == 0, "%s is missing (../shared/models)", p);
    return p;
}

static tw_tokenizer *smollm2_tokenizer(void)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/models/smollm2-135m/tokenizer.json", tw_test_shared());
    tw_tokenizer *tok = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_tokenizer_load(&tok, p, &err), TW_OK, "%s", err.msg);
    return tok;
}

static const char *k_general =
    "{\"type\":\"object\",\"required\":[\"name\",\"age\"],\"additionalProperties\":false,"
    "\"properties\":{"
    "\"name\":{\"type\":\"string\"},"
    "\"age\":{\"type\":\"integer\"},"
    "\"score\":{\"type\":\"number\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"ok\":{\"type\":\"boolean\"},"
    "\"none\":{\"type\":\"null\"},"
    "\"color\":{\"enum\":[\"red\",\"green\",\"greenish\",3]},"
    "\"kind\":{\"const\":\"x\"},"
    "\"nested\":{\"type\":\"object\",\"properties\":{\"m\":{\"type\":\"array\",\"items\":"
    "{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}}}}";

/* ---- the matcher ---------------------------------------------------------------------- */

Test(grammar, objects_keys_and_values)
{
    tw_grammar *g = schema_grammar(k_general, -1);
    json_t *schema = json_loads(k_general, 0, NULL);
    const char *ok[] = {
        "{\"name\":\"a\",\"age\":1}",
        "{\"name\":\"\",\"age\":0,\"tags\":[]}",
        "{ \"name\" : \"x\" ,\n  \"age\" : 3 }",
        "{\"name\":\"x\",\"age\":-12,\"score\":-1.5e+10}",
        "{\"name\":\"x\",\"age\":1,\"score\":0.5E-3}",
        "{\"name\":\"x\",\"age\":1,\"score\":7}",
        "{\"name\":\"x\",\"age\":1,\"color\":\"green\"}",
        "{\"name\":\"x\",\"age\":1,\"color\":\"greenish\"}",
        "{\"name\":\"x\",\"age\":1,\"color\":3}",
        "{\"name\":\"x\",\"age\":1,\"ok\":true,\"none\":null,\"kind\":\"x\"}",
        "{\"name\":\"x\",\"age\":1,\"ok\":false}",
        "{\"name\":\"x\",\"age\":1,\"tags\":[\"a\", \"b\"],\"nested\":{\"m\":[[1,2],[],[3]]}}",
        "{\"name\":\"x\",\"age\":1,\"nested\":{}}",
        "  {\"name\":\"x\",\"age\":1}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_expect(accepts(g, ok[i]), "should accept: %s", ok[i]);
        json_t *v = json_loads(ok[i], 0, NULL);
        char why[256];
        cr_expect(v && tw_json_schema_valid(v, schema, why, sizeof why), "test case not valid itself: %s (%s)", ok[i],
                  v ? why : "parse");
        json_decref(v);
    }
    const char *bad[] = {
        "{\"name\":\"a\"}",                           /* missing required */
        "{\"age\":1,\"name\":\"a\"}",                 /* properties come in schema order */
        "{\"name\":\"a\",\"age\":1.5}",               /* integer */
        "{\"name\":\"a\",\"age\":01}",                /* leading zero */
        "{\"name\":\"a\",\"age\":1,\"extra\":1}",     /* additionalProperties false */
        "{\"name\":\"a\",\"age\":1,\"age\":2}",       /* duplicate */
        "{\"name\":\"a\",\"age\":1,}",                /* trailing comma */
        "{\"name\":\"a\",\"age\":1,\"color\":\"gree\"}",
        "{\"name\":\"a\",\"age\":1,\"color\":\"greenishh\"}",
        "{\"name\":\"a\",\"age\":1,\"color\":4}",
        "{\"name\":\"a\",\"age\":1,\"kind\":\"y\"}",
        "{\"name\":\"a\",\"age\":1,\"score\":1.}",
        "{\"name\":\"a\",\"age\":1,\"score\":1e}",
        "{\"name\":\"a\",\"age\":1,\"score\":.5}",
        "{\"name\":\"a\",\"age\":1,\"score\":-}",
        "{\"name\":\"a\",\"age\":1,\"score\":+1}",
        "{\"name\":\"a\",\"age\":1,\"score\":1e999}",   /* would overflow a double in jansson */
        "{\"name\":\"a\",\"age\":1,\"tags\":[1]}",
        "{\"name\":\"a\",\"age\":1,\"tags\":[,]}",
        "{\"name\":\"a\",\"age\":1,\"nested\":{\"m\":[[1,2.5]]}}",
        "{\"name\":\"a\",\"age\":1,\"ok\":tru}",
        "{\"name\":\"a\",\"age\":1,\"none\":nul}",
        "{\"name\":\"a\",     \"age\":1}",            /* 5 spaces > max_ws 4 */
        "{\"name\":\"a\",\"age\":1}x",               /* nothing after the value */
        "{\"name\":\"a\",\"age\":1} ",
        "[]",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) cr_expect(!accepts(g, bad[i]), "should reject: %s", bad[i]);
    /* viable prefixes are not complete values */
    cr_expect(viable(g, "{\"name\":\"a\",\"age\":1"));
    cr_expect(!accepts(g, "{\"name\":\"a\",\"age\":1"));
    cr_expect(viable(g, "{\"name\":\"a\",\"age\":1,\"color\":\"green"));
    cr_expect(!viable(g, "{\"na\""));
    /* 18 integer digits fit a long long, 19 may not */
    cr_expect(accepts(g, "{\"name\":\"a\",\"age\":-999999999999999999}"));
    cr_expect(!viable(g, "{\"name\":\"a\",\"age\":1234567890123456789"));
    json_decref(schema);
    tw_grammar_free(g);
}

Test(grammar, string_escapes_unicode_and_lengths)
{
    tw_grammar *g = schema_grammar("{\"type\":\"string\"}", -1);
    const char *ok[] = {
        "\"\"", "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"", "\"\\u00e9\\u00E9\\u1234\"", "\"\\ud83d\\ude00\"",
        "\"\\uD83D\\uDE00x\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "\"\x7f\"",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_expect(accepts(g, ok[i]), "should accept: %s", ok[i]);
        json_t *v = json_loads(ok[i], JSON_DECODE_ANY, NULL);
        cr_expect_not_null(v, "jansson must parse it too: %s", ok[i]);
        json_decref(v);
    }
    const char *bad[] = {
        "\"\\u0000\"",          /* jansson refuses NUL */
        "\"\\ud800\"",          /* lone high surrogate */
        "\"\\ud800x\"",
        "\"\\ud800\\u0041\"",   /* high + not a low surrogate */
        "\"\\udc00\"",          /* lone low surrogate */
        "\"\\x\"", "\"\\u12g4\"", "\"a\nb\"", "\"\t\"",
        "\"\xc0\xaf\"",         /* overlong */
        "\"\xed\xa0\x80\"",     /* UTF-8 encoded surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xe2\x82\"",         /* truncated */
        "\"\x80\"", "\"\xff\"", "\"abc", "abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect(!accepts(g, bad[i]), "should reject: %s", bad[i]);
        json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        cr_expect(v == NULL || !viable(g, bad[i]), "jansson parses %s but the matcher may not", bad[i]);
        json_decref(v);
    }
    tw_grammar_free(g);

    g = schema_grammar("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", -1);
    cr_expect(accepts(g, "\"ab\""));
    cr_expect(accepts(g, "\"abc\""));
    cr_expect(!accepts(g, "\"a\""));
    cr_expect(!viable(g, "\"abcd"));
    cr_expect(accepts(g, "\"\xc3\xa9\xf0\x9f\x98\x80x\""), "length counts code points");
    cr_expect(accepts(g, "\"\\u00e9\\ud83d\\ude00x\""), "an escaped surrogate pair is one code point");
    cr_expect(!viable(g, "\"\\u00e9\\ud83d\\ude00x\\n"));
    tw_grammar_free(g);
}

Test(grammar, numbers_arrays_and_any)
{
    tw_grammar *g = schema_grammar("{\"type\":\"number\"}", -1);
    const char *ok[] = {"0", "-0", "12", "-3.25", "1e5", "1E+05", "2.5e-07", "0.0", "123456789012345678"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) cr_expect(accepts(g, ok[i]), "should accept: %s", ok[i]);
    const char *bad[] = {"00", "-", "1.", "1e", "1e+", ".1", "+1", "1e100", "1.12345678901234567", "NaN", "1 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) cr_expect(!accepts(g, bad[i]), "should reject: %s", bad[i]);
    tw_grammar_free(g);

    g = schema_grammar("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}", -1);
    cr_expect(!accepts(g, "[]"));
    cr_expect(accepts(g, "[1]"));
    cr_expect(accepts(g, "[ 1 , 22 ]"));
    cr_expect(!viable(g, "[1,2,"));
    cr_expect(!accepts(g, "[1.0]"));
    tw_grammar_free(g);

    g = schema_grammar("{\"type\":\"array\",\"items\":{\"type\":\"array\"}}", -1);
    cr_expect(accepts(g, "[]"));
    cr_expect(accepts(g, "[[],[[]],[1,\"a\",{\"k\":null}]]"), "items without a schema: anything");
    cr_expect(!accepts(g, "[1]"));
    tw_grammar_free(g);

    g = schema_grammar("{}", -1);
    cr_expect(accepts(g, "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}"));
    cr_expect(accepts(g, "true"));
    cr_expect(accepts(g, "-1.5"));
    cr_expect(accepts(g, "\"s\""));
    cr_expect(!accepts(g, "{\"a\":}"));
    /* nesting of an unconstrained value stops at the frame limit (no dead end: scalars remain) */
    char deep[128];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    cr_expect(!viable(g, deep));
    tw_grammar_free(g);

    /* required nesting: the deepest schema that compiles can be completed in full */
    for (int levels = 29; levels <= 30; levels++) {
        tw_buf sch = {0}, val = {0};
        for (int i = 0; i < levels; i++) tw_buf_puts(&sch, "{\"type\":\"array\",\"minItems\":1,\"items\":");
        tw_buf_puts(&sch, "{\"type\":\"integer\"}");
        for (int i = 0; i < levels; i++) tw_buf_putc(&sch, '}');
        for (int i = 0; i < levels; i++) tw_buf_putc(&val, '[');
        tw_buf_putc(&val, '7');
        for (int i = 0; i < levels; i++) tw_buf_putc(&val, ']');
        tw_grammar *dg = NULL;
        tw_error err = {0};
        tw_status st = tw_grammar_from_schema_text(&dg, sch.data, sch.len, NULL, &err);
        if (levels == 29) {
            cr_assert_eq(st, TW_OK, "%s", err.msg);
            cr_expect(tw_grammar_accepts(dg, val.data, val.len), "29 nested arrays");
        } else {
            cr_expect_eq(st, TW_ERR_UNSUPPORTED);
            cr_expect(strstr(err.msg, "nested deeper than 29 levels") != NULL, "%s", err.msg);
        }
        tw_grammar_free(dg);
        tw_buf_free(&sch);
        tw_buf_free(&val);
    }
}

Test(grammar, optional_required_and_free_keys)
{
    tw_grammar *g = schema_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
                                   "\"ab\":{\"type\":\"boolean\"},\"b\":{\"type\":\"integer\"}},"
                                   "\"required\":[\"b\"],"
                                   "\"additionalProperties\":{\"type\":\"string\"}}",
                                   -1);
    cr_expect(accepts(g, "{\"b\":1}"), "optional keys may be skipped");
    cr_expect(accepts(g, "{\"a\":1,\"b\":2}"));
    cr_expect(accepts(g, "{\"ab\":true,\"b\":2}"), "key sharing a prefix with another");
    cr_expect(accepts(g, "{\"a\":1,\"ab\":false,\"b\":2,\"zz\":\"x\",\"abc\":\"y\"}"));
    cr_expect(!accepts(g, "{\"a\":1}"), "required b missing");
    cr_expect(!viable(g, "{\"zz\""), "no free key before the required one");
    cr_expect(!viable(g, "{\"b\":1,\"a\""), "a declared key after its turn");
    cr_expect(!viable(g, "{\"b\":1,\"q\":\"x\",\"ab\""), "declared keys before free ones");
    cr_expect(!viable(g, "{\"b\":1,\"\\u0061"), "escapes in free keys could spell a declared key");
    cr_expect(!viable(g, "{\"b\":1,\"zz\":\"x\",\"zz\""), "a free key used twice");
    cr_expect(viable(g, "{\"b\":1,\"zz\":\"x\",\"zzz\""), "a free key extending a used one");
    cr_expect(!viable(g, "{\"b\":1,\"zz\":\"x\",\"\\u007a"), "escapes in free keys could repeat a used key");
    cr_expect(!accepts(g, "{\"b\":1,\"zz\":2}"), "free values follow additionalProperties");
    tw_grammar_free(g);

    /* the SNIPS schema of the examples */
    json_t *s = load_json("examples/schemas/snips.schema.json");
    tw_grammar *sn = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_grammar_from_schema(&sn, s, NULL, &err), TW_OK, "%s", err.msg);
    const char *ok[] = {
        "{\"intent\":\"PlayMusic\",\"slots\":{}}",
        "{\"intent\":\"GetWeather\",\"slots\":{\"city\":\"Paris\",\"when\":[\"now\",\"later\"]}}",
        "{\"intent\": \"RateBook\", \"slots\": {\"intent\": \"x\"}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_expect(accepts(sn, ok[i]), "%s", ok[i]);
        json_t *v = json_loads(ok[i], 0, NULL);
        cr_expect(tw_json_schema_valid(v, s, NULL, 0));
        json_decref(v);
    }
    cr_expect(!accepts(sn, "{\"intent\":\"Play\",\"slots\":{}}"));
    cr_expect(!accepts(sn, "{\"intent\":\"PlayMusic\"}"));
    cr_expect(!accepts(sn, "{\"intent\":\"PlayMusic\",\"slots\":{\"a\":1}}"));
    cr_expect(!accepts(sn, "{\"intent\":\"PlayMusic\",\"slots\":{\"a\":[1]}}"));
    /* a slot name once per object (the 135M model repeated one until the token budget ran out) */
    cr_expect(!accepts(sn, "{\"intent\":\"PlayMusic\",\"slots\":{\"artist\":\"a\",\"artist\":\"b\"}}"));
    cr_expect(!viable(sn, "{\"intent\":\"PlayMusic\",\"slots\":{\"artist\":\"a\", \"artist\""));
    cr_expect(accepts(sn, "{\"intent\":\"PlayMusic\",\"slots\":{\"artist\":\"a\",\"artist_2\":\"b\"}}"));
    tw_grammar_free(sn);
    /* keys are per object: nested objects have their own, and an inner object's keys are
     * forgotten when it closes */
    sn = schema_grammar("{\"type\":\"object\",\"additionalProperties\":true}", -1);
    cr_expect(accepts(sn, "{\"a\":{\"a\":1,\"b\":{\"a\":2}},\"b\":[{\"a\":1},{\"a\":2}]}"));
    cr_expect(!accepts(sn, "{\"a\":{\"b\":1},\"a\":2}"));
    cr_expect(!accepts(sn, "{\"a\":{\"b\":1,\"b\":1}}"));
    cr_expect(accepts(sn, "{\"a\":{\"b\":1},\"b\":2}"));
    {   /* more free keys than the state remembers: the object can still be closed */
        char big[2048];
        size_t o = 0;
        big[o++] = '{';
        for (int i = 0; i < TW_GRAMMAR_MAX_KEYS; i++) o += (size_t)snprintf(big + o, sizeof big - o, "%s\"k%d\":1", i ? "," : "", i);
        snprintf(big + o, sizeof big - o, "}");
        cr_expect(accepts(sn, big), "%d distinct keys", TW_GRAMMAR_MAX_KEYS);
        big[o] = 0;
        cr_expect(!viable(sn, strcat(big, ",")), "no room for key %d: only '}' may follow", TW_GRAMMAR_MAX_KEYS + 1);
    }
    tw_grammar_free(sn);
    json_decref(s);
}

Test(grammar, choices)
{
    const char *labels[] = {"pos", "positive", "neg", " neutral", "neg"};
    tw_grammar *g = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_grammar_from_choices(&g, labels, 5, &err), TW_OK, "%s", err.msg);
    cr_expect(accepts(g, "pos"));
    cr_expect(accepts(g, "positive"));
    cr_expect(accepts(g, "neg"));
    cr_expect(accepts(g, " neutral"), "labels are taken as given, leading space included");
    cr_expect(!accepts(g, "neutral"));
    cr_expect(!accepts(g, "posi"));
    cr_expect(viable(g, "posi"));
    cr_expect(!viable(g, "negative"));
    cr_expect(!viable(g, " pos"), "no whitespace around a label");
    tw_gstate st;
    tw_gstate_init(&st, g);
    cr_expect(tw_gstate_feed_bytes(&st, g, "pos", 3));
    cr_expect(tw_gstate_can_end(&st, g) && !tw_gstate_done(&st), "'pos' may end or grow into 'positive'");
    tw_gstate_init(&st, g);
    cr_expect(tw_gstate_feed_bytes(&st, g, "neg", 3));
    cr_expect(tw_gstate_done(&st), "'neg' cannot grow: generation must end");
    tw_grammar_free(g);
    const char *empty[] = {"a", ""};
    cr_expect_eq(tw_grammar_from_choices(&g, empty, 2, &err), TW_ERR_INVALID);
    cr_expect_eq(tw_grammar_from_choices(&g, empty, 0, &err), TW_ERR_INVALID);
}

Test(grammar, schema_errors_name_the_keyword)
{
    struct {
        const char *schema, *msg;
        tw_status st;
    } cases[] = {
        {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\",\"pattern\":\"a+\"}}}",
         "schema: /properties/x/pattern: unsupported keyword", TW_ERR_UNSUPPORTED},
        {"{\"properties\":{\"a/b\":{\"minimum\":1}}}", "schema: /properties/a~1b/minimum: unsupported keyword",
         TW_ERR_UNSUPPORTED},
        {"{\"anyOf\":[{}]}", "schema: /anyOf: unsupported keyword", TW_ERR_UNSUPPORTED},
        {"{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}", "schema: /items/$ref: unsupported keyword", TW_ERR_UNSUPPORTED},
        {"{\"type\":\"array\",\"items\":[{}]}", "schema: /items: tuple form unsupported", TW_ERR_UNSUPPORTED},
        {"{\"type\":\"strin\"}", "schema: /type: expected a type name", TW_ERR_INVALID},
        {"{\"type\":\"string\",\"enum\":[1,2]}", "schema: /enum: no value has the schema's type", TW_ERR_INVALID},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minItems > maxItems", TW_ERR_INVALID},
        {"{\"type\":\"object\",\"required\":[\"q\"]}", "schema: /required/0: required key 'q' has no schema",
         TW_ERR_UNSUPPORTED},
        {"false", "accepts no value", TW_ERR_INVALID},
        {"{\"type\":", "schema: line", TW_ERR_PARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tw_grammar *g = NULL;
        tw_error err = {0};
        tw_status st = tw_grammar_from_schema_text(&g, cases[i].schema, strlen(cases[i].schema), NULL, &err);
        cr_expect_eq(st, cases[i].st, "%s: status %d (%s)", cases[i].schema, st, err.msg);
        cr_expect(strstr(err.msg, cases[i].msg) != NULL, "%s: message '%s' lacks '%s'", cases[i].schema, err.msg,
                  cases[i].msg);
        cr_expect_null(g);
    }
    /* annotations are ignored */
    tw_grammar *g = schema_grammar("{\"title\":\"t\",\"description\":\"d\",\"format\":\"date\",\"type\":\"string\"}", -1);
    cr_expect(accepts(g, "\"x\""));
    tw_grammar_free(g);
}

/* ---- the token level on SmolLM2's vocabulary --------------------------------------------- */

static bool allowed_text(tw_constraint *c, const tw_tokenizer *tok, const char *vocab_str)
{
    int32_t id = tw_token_lookup(tok, vocab_str, strlen(vocab_str));
    cr_assert_geq(id, 0, "token %s not in the vocabulary", vocab_str);
    const uint8_t *mask;
    tw_constraint_allowed(c, &mask);
    return mask[id] != 0;
}

static void accept_text(tw_constraint *c, const tw_tokenizer *tok, const char *vocab_str)
{
    int32_t id = tw_token_lookup(tok, vocab_str, strlen(vocab_str));
    cr_assert_geq(id, 0, "token %s not in the vocabulary", vocab_str);
    tw_error err = {0};
    cr_assert_eq(tw_constraint_accept(c, id, &err), TW_OK, "%s", err.msg);
}

Test(grammar, tokens_spanning_structure)
{
    tw_tokenizer *tok = smollm2_tokenizer();
    tw_token_trie *trie = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_token_trie_new(&trie, tok, &err), TW_OK, "%s", err.msg);
    cr_expect_eq(tw_token_trie_n_vocab(trie), 49152);
    json_t *s = load_json("examples/schemas/snips.schema.json");
    tw_grammar *g = NULL;
    cr_assert_eq(tw_grammar_from_schema(&g, s, NULL, &err), TW_OK, "%s", err.msg);
    int32_t end = 2;   /* <|im_end|>: the chat template's end of turn */
    tw_constraint *c = NULL;
    cr_assert_eq(tw_constraint_new(&c, g, trie, &end, 1, &err), TW_OK, "%s", err.msg);

    cr_expect(allowed_text(c, tok, "{\""));
    cr_expect(allowed_text(c, tok, "Ġ{"), "leading whitespace within bounds");
    cr_expect(!allowed_text(c, tok, "\",") && !allowed_text(c, tok, "<|im_end|>"));
    accept_text(c, tok, "{\"");
    cr_expect(allowed_text(c, tok, "int"));
    cr_expect(!allowed_text(c, tok, "slots"), "intent is required first");
    accept_text(c, tok, "int");
    cr_expect(!allowed_text(c, tok, "\":\""), "'int' is not a key yet");
    accept_text(c, tok, "ent");
    cr_expect(allowed_text(c, tok, "\":\""), "a token spanning quote, colon, quote");
    accept_text(c, tok, "\":\"");
    cr_expect(allowed_text(c, tok, "Play") && allowed_text(c, tok, "Get") && !allowed_text(c, tok, "Hello"));
    accept_text(c, tok, "Play");
    accept_text(c, tok, "Music");
    cr_expect(allowed_text(c, tok, "\","), "quote + comma in one token");
    cr_expect(!allowed_text(c, tok, "\"}"), "slots is required: the object cannot close");
    accept_text(c, tok, "\",");
    accept_text(c, tok, "\"");
    accept_text(c, tok, "sl");
    accept_text(c, tok, "ots");
    accept_text(c, tok, "\":");
    accept_text(c, tok, "{\"");
    accept_text(c, tok, "artist");
    accept_text(c, tok, "\":\"");
    accept_text(c, tok, "Music");
    cr_expect(allowed_text(c, tok, "\"}"), "quote + brace in one token");
    cr_expect(!allowed_text(c, tok, "\"],"), "no array open");
    accept_text(c, tok, "\"}");
    cr_expect(!tw_constraint_complete(c));
    cr_expect(!allowed_text(c, tok, "<|im_end|>"), "EOS only once the value is complete");
    accept_text(c, tok, "}");
    cr_expect(tw_constraint_complete(c) && tw_constraint_done(c));
    const uint8_t *mask;
    cr_expect_eq(tw_constraint_allowed(c, &mask), 1, "when done only the end token remains");
    cr_expect(mask[end]);
    int32_t bad = tw_token_lookup(tok, "x", 1);
    cr_expect_eq(tw_constraint_accept(c, bad, &err), TW_ERR_INVALID);
    tw_constraint_free(c);
    tw_grammar_free(g);
    json_decref(s);
    tw_token_trie_free(trie);
    tw_tokenizer_free(tok);
}

/* The allowed set by brute force: every token's piece fed to a copy of the state the
 * text leaves (the trie walk, its shared prefixes and its bulk path for plain string
 * text must agree with it exactly). */
static void check_mask_bruteforce(const tw_tokenizer *tok, const tw_grammar *g, const uint8_t *mask, int32_t n_allowed,
                                  const char *text, size_t len, const tw_constraint *c)
{
    tw_gstate at, s;
    tw_gstate_init(&at, g);
    cr_assert(tw_gstate_feed_bytes(&at, g, text, len));
    int32_t V = tw_tokenizer_n_vocab(tok), n = 0;
    for (int32_t id = 0; id < V; id++) {
        bool want;
        if (tw_constraint_is_end(c, id)) want = tw_gstate_can_end(&at, g);
        else if (tw_token_attr(tok, id) & (TW_TOKATTR_SPECIAL | TW_TOKATTR_UNKNOWN | TW_TOKATTR_UNUSED)) want = false;
        else {
            size_t pl;
            const char *p = tw_token_piece(tok, id, &pl);
            tw_gstate_copy(&s, &at);
            want = pl > 0 && tw_gstate_feed_bytes(&s, g, p, pl);
        }
        n += want;
        cr_assert_eq(mask[id] != 0, want, "token %d after '%.*s': mask %d, brute force %d", id, (int)len, text, mask[id],
                     want);
    }
    cr_assert_eq(n, n_allowed);
}

/* Walk the constraint with uniformly random allowed tokens (no model): every finished
 * text must parse and validate; measures the cost of a masking step. */
static void random_walks(const tw_tokenizer *tok, const tw_token_trie *trie, const tw_grammar *g, const json_t *schema,
                         const char *const *labels, size_t n_labels, int n_walks, int max_steps, int min_complete,
                         double *sec_per_step)
{
    tw_constraint *c = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_constraint_new(&c, g, trie, NULL, 0, &err), TW_OK, "%s", err.msg);
    tw_rng rng;
    tw_rng_seed(&rng, 1234);
    int32_t V = tw_token_trie_n_vocab(trie);
    int32_t *ids = malloc((size_t)V * sizeof *ids);
    double t = 0;
    long steps = 0;
    int complete = 0;
    for (int w = 0; w < n_walks; w++) {
        tw_constraint_reset(c);
        tw_buf text = {0};
        for (int k = 0; k < max_steps && !tw_constraint_done(c); k++) {
            const uint8_t *mask;
            double t0 = tw_now();
            int32_t n = tw_constraint_allowed(c, &mask);
            t += tw_now() - t0;
            steps++;
            cr_assert_gt(n, 0, "walk %d step %d: no token allowed after '%s'", w, k, text.data ? text.data : "");
            int32_t m = 0;
            for (int32_t i = 0; i < V; i++)
                if (mask[i]) ids[m++] = i;
            cr_assert_eq(m, n);
            if (w < 3) check_mask_bruteforce(tok, g, mask, n, text.data, text.len, c);
            /* half the time one of the 30 lowest ids (single ASCII bytes: quotes, commas,
             * brackets, digits) so that walks finish */
            uint64_t pick = tw_rng_uniform(&rng) < 0.5 ? tw_rng_below(&rng, (uint64_t)(m < 30 ? m : 30))
                                                       : tw_rng_below(&rng, (uint64_t)m);
            int32_t id = ids[pick];
            if (tw_constraint_is_end(c, id)) {
                cr_assert_eq(tw_constraint_accept(c, id, &err), TW_OK, "%s", err.msg);
                break;
            }
            cr_assert_eq(tw_constraint_accept(c, id, &err), TW_OK, "%s", err.msg);
            size_t len;
            const char *p = tw_token_piece(tok, id, &len);
            tw_buf_append(&text, p, len);
        }
        if (tw_constraint_complete(c)) {
            complete++;
            const char *s = text.data ? text.data : "";
            if (schema) {
                json_t *v = tw_ext_parse(s);
                char why[256] = "";
                cr_assert_not_null(v, "walk %d: not JSON: %s", w, s);
                cr_assert(tw_json_schema_valid(v, schema, why, sizeof why), "walk %d: %s: %s", w, why, s);
                json_decref(v);
            } else {
                bool found = false;
                for (size_t i = 0; i < n_labels; i++) found |= strcmp(labels[i], s) == 0;
                cr_assert(found, "walk %d: '%s' is no label", w, s);
            }
        } else {
            cr_assert(tw_grammar_accepts(g, text.data, text.len) == false);
        }
        tw_buf_free(&text);
    }
    cr_expect_geq(complete, min_complete, "walks that finish: %d", complete);
    *sec_per_step = t / (double)steps;
    free(ids);
    tw_constraint_free(c);
}

Test(grammar, random_token_walks_are_valid_and_fast)
{
    tw_tokenizer *tok = smollm2_tokenizer();
    tw_token_trie *trie = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_token_trie_new(&trie, tok, &err), TW_OK, "%s", err.msg);
    /* a schema whose random walks end quickly: short strings, few items */
    const char *small =
        "{\"type\":\"object\",\"required\":[\"intent\",\"n\",\"tags\"],\"additionalProperties\":false,"
        "\"properties\":{\"intent\":{\"enum\":[\"AddToPlaylist\",\"Add\",\"PlayMusic\"]},"
        "\"n\":{\"type\":\"integer\"},\"x\":{\"type\":[\"number\",\"null\",\"boolean\"]},"
        "\"tags\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"string\",\"maxLength\":3}},"
        "\"o\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"maxLength\":2}}}}";
    json_t *schema = json_loads(small, 0, NULL);
    tw_grammar *g = schema_grammar(small, 1);
    double sps;
    random_walks(tok, trie, g, schema, NULL, 0, 40, 400, 1, &sps);
    cr_log_info("small schema: %.3f ms per masking step (%d trie nodes)", sps * 1e3, tw_token_trie_n_nodes(trie));
    tw_grammar_free(g);
    json_decref(schema);

    const char *labels[] = {"positive", "negative", "pos", " neutral"};
    tw_grammar *cg = NULL;
    cr_assert_eq(tw_grammar_from_choices(&cg, labels, 4, &err), TW_OK);
    random_walks(tok, trie, cg, NULL, labels, 4, 40, 50, 40, &sps);
    tw_grammar_free(cg);

    /* the SNIPS schema: strings are unbounded, so time the mask inside a string (the
     * worst case: almost every token is allowed) and between keys */
    json_t *sn = load_json("examples/schemas/snips.schema.json");
    tw_grammar *sg = NULL;
    cr_assert_eq(tw_grammar_from_schema(&sg, sn, NULL, &err), TW_OK, "%s", err.msg);
    random_walks(tok, trie, sg, sn, NULL, 0, 4, 60, 0, &sps);
    cr_log_info("SNIPS random walks: %.3f ms per masking step", sps * 1e3);
    tw_constraint *c = NULL;
    cr_assert_eq(tw_constraint_new(&c, sg, trie, NULL, 0, &err), TW_OK);
    const char *at[] = {"", "{\"intent\":\"", "{\"intent\":\"GetWeather\",\"slots\":{\"city\":\"Par",
                        "{\"intent\":\"GetWeather\",\"slots\":{\"city\":\"Paris\"", "{\"intent\":\"GetWeather\",\"slots\":{\"city\":["};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        tw_constraint_reset(c);
        /* feed the text byte by byte through single-byte tokens */
        for (const char *p = at[i]; *p; p++) {
            char vs[2] = {*p, 0};
            int32_t id = tw_token_lookup(tok, vs, 1);
            cr_assert_eq(tw_constraint_accept(c, id, &err), TW_OK, "%s", err.msg);
        }
        double best = 1e9;
        int32_t n = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = tw_now();
            n = tw_constraint_allowed(c, NULL);
            double dt = tw_now() - t0;
            if (dt < best) best = dt;
        }
        cr_log_info("SNIPS after '%s': %d tokens allowed, %.3f ms per step (best of 5)", at[i], n, best * 1e3);
        const uint8_t *mask;
        tw_constraint_allowed(c, &mask);
        check_mask_bruteforce(tok, sg, mask, n, at[i], strlen(at[i]), c);
        cr_expect_gt(n, 0);
        /* generous bound (sanitizers, shared machine); docs/constrained.md has the numbers */
        cr_expect_lt(best, 0.25, "masking took %.1f ms", best * 1e3);
    }
    tw_constraint_free(c);
    tw_grammar_free(sg);
    json_decref(sn);
    tw_token_trie_free(trie);
    tw_tokenizer_free(tok);
}

/* ---- generation from real models ----------------------------------------------------------- */

typedef struct {
    tw_llama *m;
    tw_tokenizer *tok;
    tw_token_trie *trie;
    tw_kv *kv;
} model_ctx;

static model_ctx open_ctx(const char *path, int32_t cells)
{
    model_ctx x = {0};
    tw_error err = {0};
    cr_assert_eq(tw_llama_open(&x.m, path, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_tokenizer_load(&x.tok, path, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_token_trie_new(&x.trie, x.tok, &err), TW_OK, "%s", err.msg);
    tw_kv_params kp = {.n_cells = cells, .n_seq = 1, .type = TW_KV_F32};
    cr_assert_eq(tw_kv_new(&x.kv, tw_llama_config(x.m), &kp, &err), TW_OK, "%s", err.msg);
    return x;
}

static void close_ctx(model_ctx *x)
{
    tw_kv_free(x->kv);
    tw_token_trie_free(x->trie);
    tw_tokenizer_free(x->tok);
    tw_llama_free(x->m);
}

/* Generate with the constraint for seeds 1..n_seeds; returns how many completed. */
static int gen_seeds(model_ctx *x, const tw_grammar *g, tw_constraint *c, const char *prompt, int n_seeds, int32_t max_tokens, float temp,
                     const json_t *schema, const char *const *labels, size_t n_labels)
{
    tw_error err = {0};
    tw_tok_ids ids = {0};
    cr_assert_eq(tw_tokenize_append(x->tok, prompt, strlen(prompt), TW_TOK_DEFAULT, &ids, &err), TW_OK);
    int done = 0;
    for (int seed = 1; seed <= n_seeds; seed++) {
        tw_gen_params gp = tw_gen_default_params();
        gp.max_tokens = max_tokens;
        gp.sample.temperature = temp;
        gp.sample.top_k = 0;
        gp.sample.top_p = 1.0f;
        gp.sample.min_p = 0.0f;
        gp.sample.seed = (uint64_t)seed;
        gp.constraint = c;
        tw_kv_seq_clear(x->kv, 0);
        tw_gen_result r;
        cr_assert_eq(tw_generate(x->m, x->kv, 0, x->tok, ids.v, (int32_t)ids.n, &gp, &r, &err), TW_OK, "%s", err.msg);
        const char *s = r.text.data ? r.text.data : "";
        if (tw_constraint_complete(c)) {
            done++;
            cr_expect_eq(r.stop, TW_STOP_EOS, "seed %d: a complete value ends generation (%s)", seed,
                         tw_stop_reason_name(r.stop));
            cr_assert(tw_grammar_accepts(g, s, r.text.len), "seed %d: the text is exactly one value: %s", seed, s);
            if (schema) {
                json_t *v = tw_ext_parse(s);
                char why[256] = "";
                cr_assert_not_null(v, "seed %d: not JSON: %s", seed, s);
                cr_assert(tw_json_schema_valid(v, schema, why, sizeof why), "seed %d: %s: %s", seed, why, s);
                json_decref(v);
            } else {
                bool found = false;
                for (size_t i = 0; i < n_labels; i++) found |= strcmp(labels[i], s) == 0;
                cr_assert(found, "seed %d: '%s' is no label", seed, s);
            }
        } else {
            cr_expect_eq(r.stop, TW_STOP_MAX_TOKENS, "seed %d: incomplete only when the budget ran out", seed);
            tw_gstate st;
            tw_gstate_init(&st, g);
            cr_expect(tw_gstate_feed_bytes(&st, g, s, r.text.len), "seed %d: the partial text is a viable prefix: %s",
                      seed, s);
        }
        tw_gen_result_free(&r);
    }
    tw_tok_ids_free(&ids);
    return done;
}

Test(grammar, stories260k_json_and_choice_by_construction)
{
    model_ctx x = open_ctx(stories_path(), 512);
    json_t *sn = load_json("examples/schemas/snips.schema.json");
    tw_grammar *g = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_grammar_from_schema(&g, sn, NULL, &err), TW_OK, "%s", err.msg);
    tw_constraint *c = NULL;
    cr_assert_eq(tw_constraint_new(&c, g, x.trie, NULL, 0, &err), TW_OK, "%s", err.msg);
    int done = gen_seeds(&x, g, c, "Once upon a time", 40, 200, 1.2f, sn, NULL, 0);
    cr_expect_gt(done, 0, "some generations complete within 200 tokens");
    cr_log_info("stories260K SNIPS: %d of 40 complete", done);

    /* a schema whose values end soon (bounded strings and arrays): most seeds complete,
     * and every completed one validates */
    const char *bounded =
        "{\"type\":\"object\",\"required\":[\"name\",\"age\",\"tags\"],\"additionalProperties\":false,"
        "\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":8},\"age\":{\"type\":\"integer\"},"
        "\"happy\":{\"type\":\"boolean\"},\"tags\":{\"type\":\"array\",\"maxItems\":3,"
        "\"items\":{\"enum\":[\"a\",\"bb\",\"bbc\"]}},\"score\":{\"type\":[\"number\",\"null\"]}}}";
    json_t *bs = json_loads(bounded, 0, NULL);
    tw_grammar *bg = schema_grammar(bounded, -1);
    tw_constraint *bc = NULL;
    cr_assert_eq(tw_constraint_new(&bc, bg, x.trie, NULL, 0, &err), TW_OK, "%s", err.msg);
    int bdone = gen_seeds(&x, bg, bc, "Once upon a time", 40, 200, 1.2f, bs, NULL, 0);
    cr_log_info("stories260K bounded schema: %d of 40 complete", bdone);
    cr_expect_geq(bdone, 20, "most bounded values complete within 200 tokens (%d of 40)", bdone);
    tw_constraint_free(bc);
    tw_grammar_free(bg);
    json_decref(bs);

    /* a budget too small for any value: reported incomplete, no crash */
    tw_tok_ids ids = {0};
    cr_assert_eq(tw_tokenize_append(x.tok, "Once", 4, TW_TOK_DEFAULT, &ids, &err), TW_OK);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = 3;
    gp.sample.temperature = 1.0f;
    gp.constraint = c;
    tw_kv_seq_clear(x.kv, 0);
    tw_gen_result r;
    cr_assert_eq(tw_generate(x.m, x.kv, 0, x.tok, ids.v, (int32_t)ids.n, &gp, &r, &err), TW_OK, "%s", err.msg);
    cr_expect_eq(r.stop, TW_STOP_MAX_TOKENS);
    cr_expect(!tw_constraint_complete(c));
    tw_gstate st;
    tw_gstate_init(&st, g);
    cr_expect(tw_gstate_feed_bytes(&st, g, r.text.data, r.text.len), "the partial text is a viable prefix: %s", r.text.data);
    tw_gen_result_free(&r);
    tw_tok_ids_free(&ids);
    tw_constraint_free(c);
    tw_grammar_free(g);

    const char *labels[] = {" happy", " sad", " very happy", "Lily"};
    cr_assert_eq(tw_grammar_from_choices(&g, labels, 4, &err), TW_OK);
    cr_assert_eq(tw_constraint_new(&c, g, x.trie, NULL, 0, &err), TW_OK);
    done = gen_seeds(&x, g, c, "Once upon a time, there was a girl who was", 40, 20, 1.5f, NULL, labels, 4);
    cr_expect_eq(done, 40, "a label always completes within 20 tokens");
    tw_constraint_free(c);
    tw_grammar_free(g);
    json_decref(sn);
    close_ctx(&x);
}

Test(grammar, smollm2_json_and_choice_by_construction)
{
    model_ctx x = open_ctx(smollm2_path(), 512);
    json_t *sn = load_json("examples/schemas/snips.schema.json");
    tw_grammar *g = NULL;
    tw_error err = {0};
    cr_assert_eq(tw_grammar_from_schema(&g, sn, NULL, &err), TW_OK, "%s", err.msg);
    int32_t im_end = tw_token_lookup(x.tok, "<|im_end|>", 10);
    cr_assert_geq(im_end, 0);
    tw_constraint *c = NULL;
    cr_assert_eq(tw_constraint_new(&c, g, x.trie, &im_end, 1, &err), TW_OK, "%s", err.msg);
    const char *prompt = "<|im_start|>user\nExtract the intent and slots of: play some jazz by Miles Davis. "
                         "Answer with JSON.<|im_end|>\n<|im_start|>assistant\n";
    int done = gen_seeds(&x, g, c, prompt, 5, 64, 1.0f, sn, NULL, 0);
    cr_log_info("SmolLM2 SNIPS: %d of 5 complete", done);
    cr_expect_gt(done, 0);
    tw_constraint_free(c);
    tw_grammar_free(g);

    const char *labels[] = {"positive", "negative"};
    cr_assert_eq(tw_grammar_from_choices(&g, labels, 2, &err), TW_OK);
    cr_assert_eq(tw_constraint_new(&c, g, x.trie, &im_end, 1, &err), TW_OK);
    const char *p2 = "<|im_start|>user\nIs this review positive or negative? \"A wonderful film.\"<|im_end|>\n"
                     "<|im_start|>assistant\n";
    done = gen_seeds(&x, g, c, p2, 6, 8, 1.5f, NULL, labels, 2);
    cr_expect_eq(done, 6);
    tw_constraint_free(c);
    tw_grammar_free(g);
    json_decref(sn);
    close_ctx(&x);
}
