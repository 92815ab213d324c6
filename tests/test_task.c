/* test_task.c — the task file (src/task/task.c): every key of tests/data/task/full.yaml,
 * defaults, the shipped examples (examples/NAME.yaml), and each validation error with its
 * "path:line:col: ..." message. */
#include "testutil.h"
#include "task/task.h"

#include <math.h>

static char g_log[1 << 14];
static void capture_log(tw_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

static char *g_dir;
static void setup_dir(void)
{
    g_dir = tw_test_tmpdir();
    g_log[0] = '\0';
    tw_log_set_hook(capture_log, NULL);
    /* data files the error tests point at */
    free(tw_test_write(g_dir, "d.jsonl", "{\"input\": \"a\", \"output\": \"x\"}\n"));
    free(tw_test_write(g_dir, "s.json", "{\"type\": \"object\"}\n"));
    free(tw_test_write(g_dir, "notobj.json", "[1, 2]\n"));
    free(tw_test_write(g_dir, "broken.json", "{\"type\": }\n"));
}
static void teardown_dir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) cr_log_warn("cleanup failed");
    free(g_dir);
}

/* Write yaml to g_dir/name (name may be "task.yaml"), load it, expect an error whose message
 * equals "<dir>/<name>:<want>" (want starts with the line:col part). */
static void expect_error(const char *yaml, const char *want)
{
    char *path = tw_test_write(g_dir, "task.yaml", yaml);
    tw_task t;
    tw_error err;
    tw_error_clear(&err);
    tw_status st = tw_task_load(&t, path, &err);
    cr_assert_neq(st, TW_OK, "expected an error \"%s\"", want);
    char full[TW_ERROR_MAX + 600];
    snprintf(full, sizeof full, "%s:%s", path, want);
    cr_assert_str_eq(err.msg, full);
    cr_assert_null(t.name);   /* left zeroed */
    free(path);
}

#define HEAD "name: t\ntype: classify\ndata: d.jsonl\n"

TestSuite(task, .init = setup_dir, .fini = teardown_dir);

Test(task, full_fixture_every_key)
{
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, "tests/data/task/full.yaml", &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(t.path, "tests/data/task/full.yaml");
    cr_assert_str_eq(t.dir, "tests/data/task");
    cr_assert_str_eq(t.name, "support-intents");
    cr_assert_eq(t.type, TW_TASK_CLASSIFY);
    cr_assert_str_eq(t.data[TW_SPLIT_TRAIN], "tests/data/task/tiny.jsonl");
    cr_assert_null(t.data[TW_SPLIT_DEV]);
    cr_assert_str_eq(t.data[TW_SPLIT_TEST], "tests/data/task/tiny_test.csv");
    cr_assert_null(t.data_all);
    cr_assert_eq(t.format, TW_FORMAT_AUTO);
    cr_assert_str_eq(t.fields.id, "id");
    cr_assert_str_eq(t.fields.input, "text");
    cr_assert_str_eq(t.fields.output, "label");
    cr_assert_str_eq(t.fields.references, "references");
    cr_assert_str_eq(t.fields.slice, "channel");
    cr_assert_eq(t.n_labels, 3);
    cr_assert_str_eq(t.labels[2], "other");
    cr_assert_str_eq(t.instructions, "Route the customer's message.\nAnswer with one label.");
    cr_assert_null(t.schema_path);
    cr_assert_str_eq(t.metric, "macro_f1");
    cr_assert_float_eq(t.target, 0.8, 1e-12);
    cr_assert_float_eq(t.monthly_volume, 1e6, 1e-6);
    cr_assert_eq(t.n_prices, 2);
    cr_assert_str_eq(t.prices[0].model, "small-api");
    cr_assert_float_eq(t.prices[0].input_per_mtok, 0.1, 1e-12);
    cr_assert_float_eq(t.prices[0].output_per_mtok, 0.4, 1e-12);
    cr_assert_float_eq(t.prices[0].per_hour, 0, 1e-12);
    cr_assert_str_eq(t.prices[1].model, "local-lora");
    cr_assert_float_eq(t.prices[1].per_hour, 1.5, 1e-12);
    cr_assert_eq(t.seed, 42);
    cr_assert_float_eq(t.dev_fraction, 0.25, 1e-12);
    cr_assert_float_eq(t.test_fraction, 0.2, 1e-12);
    tw_reader_params p = tw_task_reader_params(&t);
    cr_assert(p.require_output);
    cr_assert_str_eq(p.fields.input, "text");
    tw_task_free(&t);
    cr_assert_null(t.name);
    tw_task_free(&t);   /* twice is fine */
    tw_task_free(NULL);
}

Test(task, defaults_and_single_data_file)
{
    char *path = tw_test_write(g_dir, "task.yaml", HEAD);
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, path, &err), TW_OK, "%s", err.msg);
    char want[600];
    snprintf(want, sizeof want, "%s/d.jsonl", g_dir);
    cr_assert_str_eq(t.data_all, want);
    for (int i = 0; i < TW_SPLIT_COUNT; i++) cr_assert_null(t.data[i]);
    cr_assert_eq(t.format, TW_FORMAT_AUTO);
    cr_assert_str_eq(t.fields.input, "input");
    cr_assert_str_eq(t.fields.output, "output");
    cr_assert_eq(t.n_labels, 0);
    cr_assert_null(t.instructions);
    cr_assert_str_eq(t.metric, "accuracy");
    cr_assert(isnan(t.target));
    cr_assert(isnan(t.monthly_volume));
    cr_assert_eq(t.n_prices, 0);
    cr_assert_eq(t.seed, 1);
    cr_assert_float_eq(t.dev_fraction, 0.1, 1e-12);
    cr_assert_float_eq(t.test_fraction, 0.2, 1e-12);
    tw_task_free(&t);
    free(path);
}

Test(task, default_metric_per_type_and_extract_schema)
{
    char *path = tw_test_write(g_dir, "task.yaml", "name: x\ntype: extract\ndata: {train: d.jsonl}\nschema: s.json\n");
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, path, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(t.metric, "field_f1");
    cr_assert(strstr(t.schema_path, "/s.json") != NULL);
    tw_task_free(&t);
    free(path);
    path = tw_test_write(g_dir, "task.yaml", "name: x\ntype: generate\ndata: d.jsonl\nmetric: {name: chrf, target: 55}\n");
    cr_assert_eq(tw_task_load(&t, path, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(t.metric, "chrf");
    cr_assert_float_eq(t.target, 55, 1e-9);
    tw_task_free(&t);
    free(path);
}

Test(task, scalars_as_strings_and_quoted_values)
{
    /* a numeric-looking name is a string; labels may be numbers; quoted strings stay strings */
    char *path = tw_test_write(g_dir, "task.yaml",
                               "name: 2024\ntype: \"classify\"\ndata: 'd.jsonl'\nlabels: [0, 1, \"maybe\"]\n"
                               "instructions: >\n  one\n  line\n");
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, path, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(t.name, "2024");
    cr_assert_str_eq(t.labels[0], "0");
    cr_assert_str_eq(t.labels[2], "maybe");
    cr_assert_str_eq(t.instructions, "one line");
    tw_task_free(&t);
    free(path);
}

Test(task, split_on_three_given_files_warns)
{
    free(tw_test_write(g_dir, "d2.jsonl", "{\"input\": \"b\", \"output\": \"x\"}\n"));
    char *path = tw_test_write(g_dir, "task.yaml",
                               "name: t\ntype: classify\ndata: {train: d.jsonl, dev: d2.jsonl, test: d2.jsonl}\n"
                               "split: {seed: 3}\n");
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, path, &err), TW_OK, "%s", err.msg);
    cr_assert(strstr(g_log, "task.yaml:4:1: 'split' has no effect: data gives train, dev and test") != NULL, "%s", g_log);
    tw_task_free(&t);
    free(path);
}

/* ---- the shipped examples ---------------------------------------------------------- */

static void load_example(const char *path, tw_task *t)
{
    tw_error err;
    cr_assert_eq(tw_task_load(t, path, &err), TW_OK, "%s: %s", path, err.msg);
    for (int i = 0; i < TW_SPLIT_COUNT; i++)
        if (t->data[i]) cr_assert(tw_file_exists(t->data[i]), "%s", t->data[i]);
    cr_assert(t->instructions && strlen(t->instructions) > 40);
    cr_assert(!isnan(t->target));
    cr_assert(!isnan(t->monthly_volume) && t->monthly_volume > 0);
    cr_assert_geq(t->n_prices, 2);
    cr_assert(tw_task_metric_ok(t->type, t->metric));
}

Test(task, example_banking77)
{
    tw_task t;
    load_example("examples/banking77.yaml", &t);
    cr_assert_eq(t.type, TW_TASK_CLASSIFY);
    cr_assert_str_eq(t.data[TW_SPLIT_TRAIN], "examples/../../shared/data/banking77/train.jsonl");
    cr_assert_null(t.data[TW_SPLIT_DEV]);
    cr_assert_eq(t.format, TW_FORMAT_JSONL);
    cr_assert_str_eq(t.metric, "accuracy");
    cr_assert_float_eq(t.target, 0.9, 1e-12);
    tw_task_free(&t);
}

Test(task, example_sst2)
{
    tw_task t;
    load_example("examples/sst2.yaml", &t);
    cr_assert_eq(t.n_labels, 2);
    cr_assert_not_null(t.data[TW_SPLIT_DEV]);
    cr_assert_float_eq(t.monthly_volume, 1e6, 1e-6);
    tw_task_free(&t);
}

Test(task, example_snips)
{
    tw_task t;
    load_example("examples/snips.yaml", &t);
    cr_assert_eq(t.type, TW_TASK_EXTRACT);
    cr_assert_str_eq(t.schema_path, "examples/schemas/snips.schema.json");
    cr_assert_str_eq(t.metric, "field_f1");
    tw_task_free(&t);
}

Test(task, example_e2e)
{
    tw_task t;
    load_example("examples/e2e.yaml", &t);
    cr_assert_eq(t.type, TW_TASK_GENERATE);
    cr_assert_str_eq(t.metric, "bleu");
    cr_assert_float_eq(t.target, 60, 1e-9);
    cr_assert_eq(t.seed, 7);
    tw_task_free(&t);
}

/* ---- validation errors --------------------------------------------------------------- */

Test(task, error_unknown_key)
{
    expect_error(HEAD "foo: 1\n",
                 "4:1: unknown key 'foo' in task (expected one of: name, type, data, format, fields, labels, "
                 "instructions, schema, metric, target, volume, prices, split)");
    expect_error(HEAD "fields:\n  input: text\n  label: y\n",
                 "6:3: unknown key 'label' in fields (expected one of: id, input, output, references, slice)");
    expect_error("name: t\ntype: classify\ndata:\n  train: d.jsonl\n  validation: d.jsonl\n",
                 "5:3: unknown key 'validation' in data (expected one of: train, dev, test)");
    expect_error(HEAD "prices:\n  - model: a\n  - model: b\n    per_token: 1\n",
                 "7:5: unknown key 'per_token' in prices[1] (expected one of: model, input_per_mtok, output_per_mtok, per_hour)");
    expect_error(HEAD "split: {seed: 1, train: 0.7}\n", "4:18: unknown key 'train' in split (expected one of: seed, dev, test)");
    expect_error(HEAD "metric: {name: accuracy, goal: 1}\n", "4:26: unknown key 'goal' in metric (expected one of: name, target)");
}

Test(task, error_missing_required)
{
    expect_error("type: classify\ndata: d.jsonl\n", "1:1: missing required key 'name' in task");
    expect_error("name: t\ndata: d.jsonl\n", "1:1: missing required key 'type' in task");
    expect_error("name: t\ntype: classify\n", "1:1: missing required key 'data' in task");
    expect_error("name: t\ntype: classify\ndata: {dev: d.jsonl}\n", "3:7: missing required key 'train' in data");
    expect_error(HEAD "prices:\n  - input_per_mtok: 1\n", "5:5: missing required key 'model' in prices[0]");
    expect_error(HEAD "metric: {target: 0.5}\n", "4:9: missing required key 'name' in metric");
}

Test(task, error_wrong_types)
{
    expect_error("name: [a, b]\ntype: classify\ndata: d.jsonl\n", "1:7: 'name' must be a string, got a list");
    expect_error(HEAD "volume: lots\n", "4:9: 'volume' must be a number, got a string");
    expect_error(HEAD "volume: \"1000\"\n", "4:9: 'volume' must be a number, got a string");
    expect_error(HEAD "target: {x: 1}\n", "4:9: 'target' must be a number, got a map");
    expect_error(HEAD "labels: {a: 1}\n", "4:9: 'labels' must be a list, got a map");
    expect_error(HEAD "labels: [a, [b]]\n", "4:13: labels[1] must be a string, got a list");
    expect_error(HEAD "fields: [input]\n", "4:9: 'fields' must be a map, got a list");
    expect_error(HEAD "prices: {model: a}\n", "4:9: 'prices' must be a list, got a map");
    expect_error(HEAD "prices: [gpt]\n", "4:10: prices[0] must be a map {model, input_per_mtok, output_per_mtok, per_hour}, got a string");
    expect_error(HEAD "instructions:\n", "4:14: 'instructions' must be a string, got null");
    expect_error("name: t\ntype: classify\ndata: [a, b]\n", "3:7: 'data' must be a file path or a map with train, dev, test; got a list");
    expect_error(HEAD "metric: [accuracy]\n", "4:9: 'metric' must be a metric name or a map {name, target}, got a list");
    expect_error(HEAD "split: {seed: -1}\n", "4:15: 'seed' must be a non-negative integer, got -1");
    expect_error(HEAD "split: {seed: 1.5}\n", "4:15: 'seed' must be a non-negative integer, got 1.5");
    expect_error(HEAD "prices:\n  - model: a\n    per_hour: true\n", "6:15: 'per_hour' must be a number, got a boolean");
    expect_error("- name: t\n", "1:1: a task file is a map of keys (name, type, data, ...), got a list");
}

Test(task, error_bad_enum_values)
{
    expect_error("name: t\ntype: classification\ndata: d.jsonl\n",
                 "2:7: bad value 'classification' for 'type' (expected one of: classify, extract, generate)");
    expect_error(HEAD "format: xml\n", "4:9: bad value 'xml' for 'format' (expected one of: auto, jsonl, csv, chat)");
}

Test(task, error_metric_must_fit_type)
{
    expect_error(HEAD "metric: bleu\n",
                 "4:9: metric 'bleu' does not apply to classify tasks (expected one of: accuracy, macro_f1, micro_f1, weighted_f1)");
    expect_error("name: t\ntype: generate\ndata: d.jsonl\nmetric: {name: accuracy}\n",
                 "4:16: metric 'accuracy' does not apply to generate tasks (expected one of: bleu, chrf, rouge_l, rouge_1, rouge_2, token_f1, exact_match)");
    expect_error(HEAD "metric: {name: accuracy, target: 0.9}\ntarget: 0.8\n", "5:1: target given twice (here and in metric at line 4)");
    expect_error(HEAD "target: 1.5\n", "4:9: 'target' must be between 0 and 1, got 1.5");
    expect_error("name: t\ntype: generate\ndata: d.jsonl\ntarget: 101\n", "4:9: 'target' must be between 0 and 100, got 101");
}

Test(task, error_keys_that_need_a_type)
{
    expect_error("name: t\ntype: generate\ndata: d.jsonl\nlabels: [a]\n", "4:1: 'labels' only applies to classify tasks (this task is generate)");
    expect_error(HEAD "schema: s.json\n", "4:1: 'schema' only applies to extract tasks (this task is classify)");
    expect_error("name: t\ntype: extract\ndata: d.jsonl\nschema: notobj.json\n", "4:9: schema 'notobj.json' must be a JSON object (a JSON Schema)");
    char want[1200];
    snprintf(want, sizeof want, "4:9: schema 'broken.json' is not valid JSON: %s/broken.json:1:10: unexpected token near '}'", g_dir);
    expect_error("name: t\ntype: extract\ndata: d.jsonl\nschema: broken.json\n", want);
}

Test(task, error_files_not_found)
{
    char want[1200];
    snprintf(want, sizeof want, "3:7: data file 'nope.jsonl' not found (resolved to '%s/nope.jsonl')", g_dir);
    expect_error("name: t\ntype: classify\ndata: nope.jsonl\n", want);
    snprintf(want, sizeof want, "5:9: data file 'gone.csv' not found (resolved to '%s/gone.csv')", g_dir);
    expect_error("name: t\ntype: classify\ndata:\n  train: d.jsonl\n  test: gone.csv\n", want);
}

Test(task, error_values)
{
    expect_error(HEAD "labels: []\n", "4:9: 'labels' is empty (leave it out to infer labels from train)");
    expect_error(HEAD "labels: [a, b, a]\n", "4:16: duplicate label 'a'");
    expect_error(HEAD "volume: -5\n", "4:9: 'volume' must be >= 0, got -5");
    expect_error(HEAD "split: {dev: 0.5, test: 0.5}\n", "4:8: split fractions dev 0.5 + test 0.5 leave (almost) nothing to train on");
    expect_error(HEAD "split: {dev: 1.2}\n", "4:14: 'dev' must be between 0 and 0.9, got 1.2");
    expect_error(HEAD "prices:\n  - {model: a}\n  - {model: a}\n", "6:13: duplicate price for model 'a'");
    expect_error("name: ''\ntype: classify\ndata: d.jsonl\n", "1:7: 'name' must not be empty");
    expect_error(HEAD "fields: {input: text, output: text}\n", "4:31: fields 'input' and 'output' name the same field 'text'");
}

Test(task, error_yaml_syntax_duplicates_documents)
{
    expect_error(HEAD "name: again\n", "4:1: duplicate key 'name' in task (first given at line 1)");
    expect_error("name: t\ntype: [classify\ndata: d.jsonl\n",
                 "3:5: YAML syntax error: did not find expected ',' or ']' while parsing a flow sequence (which starts at 2:7)");
    expect_error("name: t\n  type: classify\n", "2:7: YAML syntax error: mapping values are not allowed in this context");
    expect_error(HEAD "---\nname: other\n", "5:1: a task file holds one YAML document; found a second one");
    expect_error("name: *missing\n", "1:7: YAML syntax error: found undefined alias");
}

Test(task, error_empty_and_missing_file)
{
    char *path = tw_test_write(g_dir, "task.yaml", "# only a comment\n");
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, path, &err), TW_ERR_INVALID);
    char want[600];
    snprintf(want, sizeof want, "%s: empty task file (expected keys name, type, data, ...)", path);
    cr_assert_str_eq(err.msg, want);
    free(path);
    cr_assert_eq(tw_task_load(&t, "/nonexistent/task.yaml", &err), TW_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/task.yaml: cannot open") != NULL, "%s", err.msg);
}

Test(task, error_invalid_utf8_in_yaml)
{
    char *path = tw_test_write(g_dir, "task.yaml", "name: caf\xE9\ntype: classify\ndata: d.jsonl\n");
    tw_task t;
    tw_error err;
    cr_assert_eq(tw_task_load(&t, path, &err), TW_ERR_PARSE);
    cr_assert(strstr(err.msg, "task.yaml:1:10: invalid UTF-8 (byte offset 9 of the file)") != NULL, "%s", err.msg);
    free(path);
}

Test(task, names_and_metrics_tables)
{
    tw_task_type ty;
    cr_assert(tw_task_type_parse("extract", &ty) && ty == TW_TASK_EXTRACT);
    cr_assert(!tw_task_type_parse("regress", &ty));
    cr_assert_str_eq(tw_split_name(TW_SPLIT_DEV), "dev");
    cr_assert_str_eq(tw_task_metrics(TW_TASK_GENERATE)[0], "bleu");
    cr_assert(tw_task_metric_ok(TW_TASK_CLASSIFY, "macro_f1"));
    cr_assert(!tw_task_metric_ok(TW_TASK_CLASSIFY, "bleu"));
    tw_format f;
    cr_assert(tw_format_parse("chat", &f) && f == TW_FORMAT_CHAT);
    cr_assert(!tw_format_parse("xml", &f));
}

/* ---- robustness: mutated task files never crash and always explain themselves ---------- */

Test(task, mutated_task_files)
{
    const char *seed_text = "name: t\ntype: extract\ndata:\n  train: d.jsonl\n  test: d.jsonl\nschema: s.json\n"
                            "fields: {input: input, output: output}\ninstructions: |\n  Do it.\n"
                            "metric: {name: field_f1, target: 0.5}\nvolume: 10\n"
                            "prices:\n  - {model: m, per_hour: 1}\nsplit: {seed: 3, dev: 0.2}\n";
    static const char specials[] = ":-[]{}'\"|>&*!#\n \t,\xC3";
    tw_rng rng;
    tw_rng_seed(&rng, 77);
    size_t n0 = strlen(seed_text);
    char *buf = malloc(n0 * 2 + 8);
    char path[600];
    snprintf(path, sizeof path, "%s/task.yaml", g_dir);
    int bad = 0;
    for (int i = 0; i < 1500; i++) {
        size_t n = n0;
        memcpy(buf, seed_text, n);
        int edits = 1 + (int)tw_rng_below(&rng, 3);
        for (int e = 0; e < edits; e++) {
            size_t at = tw_rng_below(&rng, n);
            if (tw_rng_below(&rng, 2)) {
                buf[at] = specials[tw_rng_below(&rng, sizeof specials - 1)];
            } else {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        tw_task t;
        tw_error err;
        tw_error_clear(&err);
        if (tw_task_load(&t, path, &err) == TW_OK) {
            cr_assert_not_null(t.name);
            cr_assert_not_null(t.metric);
            tw_task_free(&t);
        } else {
            bad++;
            cr_assert(strncmp(err.msg, path, strlen(path)) == 0, "round %d: \"%s\"", i, err.msg);
        }
    }
    cr_assert_gt(bad, 100);
    free(buf);
}
