/* test_metrics_extract.c — JSON extraction metrics (extract.c): flattening, multiset
 * field matching, semantic equality, the JSON Schema subset. All values hand-derived
 * in the comments. */
#include "testutil.h"
#include "score/metrics.h"

#include <jansson.h>
#include <math.h>

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "bad test JSON %s: %s", text, je.text);
    return v;
}

static const char *GOLD = "{\"intent\": \"play\", \"slots\": {\"artist\": \"a\", \"playlist\": [\"b\", \"c\"]}}";

Test(extract, flatten_sorted_pairs)
{
    json_t *g = J(GOLD);
    tw_json_pair *p;
    size_t n;
    cr_assert_eq(tw_json_flatten(&p, &n, g, NULL), TW_OK);
    cr_assert_eq(n, 4);
    const char *want[4][2] = {{"intent", "\"play\""}, {"slots.artist", "\"a\""}, {"slots.playlist[]", "\"b\""},
                              {"slots.playlist[]", "\"c\""}};
    for (size_t i = 0; i < 4; i++) {
        cr_expect_str_eq(p[i].path, want[i][0]);
        cr_expect_str_eq(p[i].value, want[i][1]);
    }
    tw_json_pairs_free(p, n);
    json_decref(g);

    /* numbers canonical (1.0 -> 1), null and empty containers give no pairs, root scalar -> "$" */
    json_t *v = J("{\"x\": 1.0, \"y\": null, \"z\": [], \"w\": {}, \"r\": 2.5, \"o\": [{\"k\": true}]}");
    cr_assert_eq(tw_json_flatten(&p, &n, v, NULL), TW_OK);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(p[0].path, "o[].k");
    cr_expect_str_eq(p[0].value, "true");
    cr_expect_str_eq(p[1].path, "r");
    cr_expect_str_eq(p[1].value, "2.5");
    cr_expect_str_eq(p[2].path, "x");
    cr_expect_str_eq(p[2].value, "1");
    tw_json_pairs_free(p, n);
    json_decref(v);
    v = J("\"just a string\"");
    cr_assert_eq(tw_json_flatten(&p, &n, v, NULL), TW_OK);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(p[0].path, "$");
    tw_json_pairs_free(p, n);
    json_decref(v);
}

Test(extract, item_field_scores)
{
    /* pred pairs: intent=play (hit), artist="A" (miss: field F1 is case-sensitive),
     * playlist c (hit), b (hit), d (miss) -> tp 3, pred 5, gold 4:
     * P = 3/5, R = 3/4, F1 = 2*3/(5+4) = 2/3. Order of the list does not matter. */
    json_t *g = J(GOLD);
    tw_ext_item it;
    cr_assert_eq(tw_ext_item_score(&it, "{\"slots\": {\"playlist\": [\"c\", \"b\", \"d\"], \"artist\": \"A\"}, \"intent\": \"play\"}",
                                   g, NULL, NULL), TW_OK);
    cr_expect(it.json_valid);
    cr_expect(it.schema_valid);   /* no schema: == json_valid */
    cr_expect_eq(it.tp, 3);
    cr_expect_eq(it.n_pred, 5);
    cr_expect_eq(it.n_gold, 4);
    cr_expect(!it.exact);
    cr_expect(!it.normalized);

    /* same content, keys reordered, whitespace: exact */
    cr_assert_eq(tw_ext_item_score(&it, "  {\"slots\":{\"playlist\":[\"b\",\"c\"],\"artist\":\"a\"},\"intent\":\"play\"}\n", g,
                                   NULL, NULL), TW_OK);
    cr_expect(it.exact);
    cr_expect(it.normalized);
    cr_expect_eq(it.tp, 4);

    /* list order differs: not exact (JSON arrays are ordered) but every field matches */
    cr_assert_eq(tw_ext_item_score(&it, "{\"intent\":\"play\",\"slots\":{\"artist\":\"a\",\"playlist\":[\"c\",\"b\"]}}", g,
                                   NULL, NULL), TW_OK);
    cr_expect(!it.exact);
    cr_expect_eq(it.tp, 4);

    /* case/punctuation/whitespace differ in strings: normalized match only */
    cr_assert_eq(tw_ext_item_score(&it, "{\"intent\":\"Play!\",\"slots\":{\"artist\":\" A \",\"playlist\":[\"B.\",\"c\"]}}",
                                   g, NULL, NULL), TW_OK);
    cr_expect(!it.exact);
    cr_expect(it.normalized);
    cr_expect_eq(it.tp, 1);

    /* not JSON: invalid, no predicted pairs, all gold pairs missed */
    cr_assert_eq(tw_ext_item_score(&it, "{\"intent\": \"play\",", g, NULL, NULL), TW_OK);
    cr_expect(!it.json_valid);
    cr_expect(!it.schema_valid);
    cr_expect_eq(it.tp, 0);
    cr_expect_eq(it.n_pred, 0);
    cr_expect_eq(it.n_gold, 4);
    cr_assert_eq(tw_ext_item_score(&it, NULL, g, NULL, NULL), TW_OK);
    cr_expect(!it.json_valid);
    json_decref(g);
}

Test(extract, multiset_counts)
{
    /* gold ["b","b","c"], pred ["b","c","c"]: Counter intersection = b:1 + c:1 = 2 */
    json_t *g = J("{\"l\": [\"b\", \"b\", \"c\"]}");
    tw_ext_item it;
    cr_assert_eq(tw_ext_item_score(&it, "{\"l\": [\"b\", \"c\", \"c\"]}", g, NULL, NULL), TW_OK);
    cr_expect_eq(it.tp, 2);
    json_decref(g);
}

Test(extract, equality)
{
    json_t *a = J("{\"n\": 1, \"x\": [1, 2.0, {\"k\": null}]}"), *b = J("{\"x\": [1.0, 2, {\"k\": null}], \"n\": 1.0}");
    cr_expect(tw_json_equal(a, b, false));   /* 1 == 1.0, key order irrelevant */
    json_t *c = J("{\"x\": [2, 1, {\"k\": null}], \"n\": 1}");
    cr_expect(!tw_json_equal(a, c, false));  /* array order matters */
    json_t *d = J("{\"n\": 1}");
    cr_expect(!tw_json_equal(a, d, false));  /* missing key */
    json_t *s1 = J("\"New  York!\""), *s2 = J("\"new york\"");
    cr_expect(!tw_json_equal(s1, s2, false));
    cr_expect(tw_json_equal(s1, s2, true));
    json_t *t = J("true"), *n = J("null");
    cr_expect(!tw_json_equal(t, n, true));
    json_decref(a); json_decref(b); json_decref(c); json_decref(d);
    json_decref(s1); json_decref(s2); json_decref(t); json_decref(n);
}

static bool valid(const char *schema, const char *value, char *why, size_t cap)
{
    json_t *s = J(schema), *v = J(value);
    bool ok = tw_json_schema_valid(v, s, why, cap);
    json_decref(s);
    json_decref(v);
    return ok;
}

Test(extract, schema_subset)
{
    const char *S = "{\"type\": \"object\", \"required\": [\"intent\"], \"additionalProperties\": false,"
                    " \"properties\": {\"intent\": {\"enum\": [\"play\", \"stop\"]},"
                    "  \"slots\": {\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\", \"minimum\": 1},"
                    "   \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"maxLength\": 3}, \"maxItems\": 2}}}}}";
    char why[256];
    cr_expect(valid(S, "{\"intent\": \"play\"}", why, sizeof why), "%s", why);
    cr_expect(valid(S, "{\"intent\": \"stop\", \"slots\": {\"n\": 2.0, \"tags\": [\"a\", \"bcd\"]}}", why, sizeof why),
              "integer-valued real is an integer: %s", why);
    cr_expect(!valid(S, "{\"slots\": {}}", why, sizeof why));
    cr_expect_str_eq(why, "$: missing required property 'intent'");
    cr_expect(!valid(S, "{\"intent\": \"pause\"}", why, sizeof why));
    cr_expect_str_eq(why, "$.intent: value not in enum");
    cr_expect(!valid(S, "{\"intent\": \"play\", \"extra\": 1}", why, sizeof why));
    cr_expect_str_eq(why, "$: unexpected property 'extra'");
    cr_expect(!valid(S, "{\"intent\": \"play\", \"slots\": {\"n\": 1.5}}", why, sizeof why));
    cr_expect_str_eq(why, "$.slots.n: expected type \"integer\"");
    cr_expect(!valid(S, "{\"intent\": \"play\", \"slots\": {\"n\": 0}}", why, sizeof why));
    cr_expect_str_eq(why, "$.slots.n: below minimum");
    cr_expect(!valid(S, "{\"intent\": \"play\", \"slots\": {\"tags\": [\"a\", \"toolong\"]}}", why, sizeof why));
    cr_expect_str_eq(why, "$.slots.tags[1]: string too long");
    cr_expect(!valid(S, "{\"intent\": \"play\", \"slots\": {\"tags\": [\"a\", \"b\", \"c\"]}}", why, sizeof why));
    cr_expect(!valid(S, "[1]", why, sizeof why));
    cr_expect_str_eq(why, "$: expected type \"object\"");
    /* type lists, number vs integer, booleans, null, maxLength in code points */
    cr_expect(valid("{\"type\": [\"string\", \"null\"]}", "null", NULL, 0));
    cr_expect(!valid("{\"type\": [\"string\", \"null\"]}", "3", NULL, 0));
    cr_expect(valid("{\"type\": \"number\"}", "3", NULL, 0));
    cr_expect(!valid("{\"type\": \"boolean\"}", "0", NULL, 0));
    cr_expect(valid("{\"maxLength\": 2}", "\"\u00e9\u00e9\"", NULL, 0));
    /* additionalProperties as a schema; anyOf / oneOf / not / const */
    cr_expect(valid("{\"additionalProperties\": {\"type\": \"string\"}}", "{\"a\": \"x\"}", NULL, 0));
    cr_expect(!valid("{\"additionalProperties\": {\"type\": \"string\"}}", "{\"a\": 1}", NULL, 0));
    cr_expect(valid("{\"anyOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", "1", NULL, 0));
    cr_expect(!valid("{\"oneOf\": [{\"type\": \"number\"}, {\"type\": \"integer\"}]}", "1", NULL, 0));
    cr_expect(!valid("{\"not\": {\"type\": \"null\"}}", "null", NULL, 0));
    cr_expect(valid("{\"const\": {\"a\": 1}}", "{\"a\": 1.0}", NULL, 0));
    cr_expect(valid("true", "{\"a\": 1}", NULL, 0));
    cr_expect(!valid("false", "{\"a\": 1}", NULL, 0));

    json_t *g = J("{\"intent\": \"play\"}"), *s = J(S);
    tw_ext_item it;
    cr_assert_eq(tw_ext_item_score(&it, "{\"intent\": \"pause\"}", g, s, NULL), TW_OK);
    cr_expect(it.json_valid);
    cr_expect(!it.schema_valid);
    json_decref(g);
    json_decref(s);
}

Test(extract, schema_unsupported_keywords)
{
    json_t *s = J("{\"type\": \"object\", \"title\": \"t\", \"$schema\": \"x\", \"properties\": {"
                  "\"zip\": {\"type\": \"string\", \"pattern\": \"^[0-9]+$\", \"description\": \"d\"},"
                  "\"ref\": {\"$ref\": \"#/definitions/x\"}}, \"definitions\": {\"x\": {\"pattern\": \"a\"}}}");
    json_t *u;
    cr_assert_eq(tw_json_schema_unsupported(&u, s, NULL), TW_OK);
    cr_assert_eq(json_array_size(u), 2, "%zu", json_array_size(u));
    cr_expect_str_eq(json_string_value(json_array_get(u, 0)), "pattern at #/properties/zip");
    cr_expect_str_eq(json_string_value(json_array_get(u, 1)), "$ref at #/properties/ref");
    json_decref(u);
    json_decref(s);
}
