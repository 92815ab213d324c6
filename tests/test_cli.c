/* test_cli.c — the tunewise command line end to end, as a user runs it: help, usage
 * errors and exit codes, and each command on real data (slices of ../shared/data/sst2)
 * and on small hand-made files. */
#include "testutil.h"

#include <jansson.h>

static char *g_dir;

/* A small SST-2 task: first 400 train rows, 100 dev, 200 test, in a temp dir. */
static void make_task(void)
{
    g_dir = tw_test_tmpdir();
    char cmd[2048];
    const char *sh = tw_test_shared();
    snprintf(cmd, sizeof cmd,
             "head -n 400 %s/data/sst2/train.jsonl > %s/train.jsonl && head -n 100 %s/data/sst2/dev.jsonl > %s/dev.jsonl && "
             "head -n 200 %s/data/sst2/test.jsonl > %s/test.jsonl",
             sh, g_dir, sh, g_dir, sh, g_dir);
    cr_assert_eq(system(cmd), 0);
    free(tw_test_write(g_dir, "task.yaml",
                       "name: sst2-small\ntype: classify\n"
                       "data: {train: train.jsonl, dev: dev.jsonl, test: test.jsonl}\n"
                       "metric: {name: accuracy, target: 0.6}\n"));
}

static int run(const char *args, char **out, char **err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", tw_test_bin(), args);
    return tw_test_run(cmd, out, err);
}

static json_t *run_json(const char *args)
{
    char *out, *err;
    int rc = run(args, &out, &err);
    cr_assert_eq(rc, 0, "'%s' exited %d: %s", args, rc, err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "'%s' printed invalid JSON (%s): %.300s", args, je.text, out);
    free(out);
    free(err);
    return j;
}

Test(cli, help_version_and_usage_errors)
{
    char *out, *err;
    cr_assert_eq(run("--version", &out, NULL), 0);
    cr_assert(strstr(out, "tunewise 0.") == out, "%s", out);
    free(out);
    cr_assert_eq(run("help", &out, NULL), 0);
    cr_assert(strstr(out, "audit") && strstr(out, "classic train") && strstr(out, "score"));
    free(out);
    cr_assert_eq(run("-q help score", &out, NULL), 0);
    cr_assert(strstr(out, "usage: tunewise score") && strstr(out, "--compare"), "%s", out);
    free(out);
    /* unknown command / option / missing argument: exit 2, one-line error + usage on stderr */
    cr_assert_eq(run("frobnicate", &out, &err), 2);
    cr_assert(strstr(err, "unknown command 'frobnicate'"), "%s", err);
    free(out); free(err);
    cr_assert_eq(run("audit --bogus x.jsonl", &out, &err), 2);
    cr_assert(strstr(err, "tunewise audit: unknown option '--bogus'") && strstr(err, "usage: tunewise audit"), "%s", err);
    cr_assert_str_eq(out, "");
    free(out); free(err);
    cr_assert_eq(run("audit", &out, &err), 2);
    cr_assert(strstr(err, "missing argument"), "%s", err);
    free(out); free(err);
    cr_assert_eq(run("score p.jsonl --bootstrap many", &out, &err), 2);
    cr_assert(strstr(err, "--bootstrap expects an integer, got 'many'"), "%s", err);
    free(out); free(err);
    cr_assert_eq(run("classic", &out, &err), 2);
    cr_assert(strstr(err, "needs a subcommand: train, eval"), "%s", err);
    free(out); free(err);
    cr_assert_eq(run("score --task", &out, &err), 2);
    cr_assert(strstr(err, "--task needs a value"), "%s", err);
    free(out); free(err);
}

Test(cli, bad_input_file_exit_2_with_location)
{
    char *dir = tw_test_tmpdir();
    free(tw_test_write(dir, "bad.jsonl", "{\"input\": \"ok\", \"output\": \"a\"}\n{\"input\": \"broken\", \n"));
    char args[600], *out, *err;
    snprintf(args, sizeof args, "audit %s/bad.jsonl", dir);
    cr_assert_eq(run(args, &out, &err), 2);
    cr_assert(strstr(err, "bad.jsonl:2") != NULL, "error lacks file:line: %s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "audit %s/missing.jsonl", dir);
    cr_assert_eq(run(args, &out, &err), 2);
    cr_assert(strstr(err, "missing.jsonl") && strstr(err, "cannot open"), "%s", err);
    free(out); free(err);
    free(dir);
}

Test(cli, audit_json_finds_leak, .init = make_task)
{
    /* plant a train input in test: the audit must count it */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "head -n 1 %s/train.jsonl | sed 's/sst2-train/leak/' >> %s/test.jsonl", g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
    char args[600];
    snprintf(args, sizeof args, "audit %s/task.yaml --json", g_dir);
    json_t *j = run_json(args);
    json_t *leak = json_object_get(j, "leakage"), *tt = NULL;
    for (size_t i = 0; i < json_array_size(leak); i++) {
        json_t *e = json_array_get(leak, i);
        if (!strcmp(json_string_value(json_object_get(e, "from")), "train") && !strcmp(json_string_value(json_object_get(e, "to")), "test"))
            tt = e;
    }
    cr_assert_not_null(tt, "no train->test leakage entry");
    cr_assert_geq(json_integer_value(json_object_get(json_object_get(tt, "exact"), "rows")), 1);
    json_t *split = json_object_get(j, "split");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(split, "counts"), "test")), 201);
    json_decref(j);
    /* the table form names the readiness verdict */
    char *out;
    snprintf(args, sizeof args, "audit %s/task.yaml", g_dir);
    cr_assert_eq(run(args, &out, NULL), 0);
    cr_assert(strstr(out, "readiness:") != NULL, "%s", out);
    free(out);
}

Test(cli, classic_train_eval_score_round_trip, .init = make_task)
{
    char args[1200], *out, *err;
    snprintf(args, sizeof args, "classic train --task %s/task.yaml -o %s/m.twc --json -q", g_dir, g_dir);
    json_t *info = run_json(args);
    json_decref(info);
    snprintf(args, sizeof args, "classic eval --task %s/task.yaml -m %s/m.twc -o %s/p.jsonl --json --bootstrap 200", g_dir, g_dir, g_dir);
    json_t *rep = run_json(args);
    json_t *acc = json_object_get(json_object_get(rep, "metrics"), "accuracy");
    double a = json_number_value(json_object_get(acc, "value"));
    cr_assert(a > 0.6 && a <= 1.0, "accuracy %f on 200 SST-2 test rows from 400 train rows", a);
    json_t *ci = json_object_get(acc, "ci");
    cr_assert(json_number_value(json_array_get(ci, 0)) <= a && a <= json_number_value(json_array_get(ci, 1)));

    /* scoring the written predictions file reproduces eval's numbers */
    snprintf(args, sizeof args, "score %s/p.jsonl --task %s/task.yaml --json --bootstrap 200", g_dir, g_dir);
    json_t *rep2 = run_json(args);
    double a2 = json_number_value(json_object_get(json_object_get(json_object_get(rep2, "metrics"), "accuracy"), "value"));
    cr_assert_float_eq(a, a2, 1e-12);
    json_decref(rep2);
    json_decref(rep);

    /* a flipped copy compared against the original: paired test report */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sed 's/\"prediction\":\"positive\"/\"prediction\":\"XX\"/; s/\"prediction\":\"negative\"/\"prediction\":\"positive\"/; "
             "s/\"prediction\":\"XX\"/\"prediction\":\"negative\"/' %s/p.jsonl > %s/flip.jsonl", g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(args, sizeof args, "score %s/p.jsonl --task %s/task.yaml --compare %s/flip.jsonl --json --bootstrap 200", g_dir, g_dir, g_dir);
    json_t *cmp = run_json(args);
    char *txt = json_dumps(cmp, JSON_COMPACT);
    cr_assert(strstr(txt, "mcnemar") != NULL, "%.400s", txt);
    free(txt);
    json_decref(cmp);

    /* a prediction for an id that is not in the split is an error naming file:line */
    snprintf(cmd, sizeof cmd, "echo '{\"id\":\"nope\",\"prediction\":\"positive\"}' >> %s/p.jsonl", g_dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(args, sizeof args, "score %s/p.jsonl --task %s/task.yaml", g_dir, g_dir);
    cr_assert_eq(run(args, &out, &err), 2);
    cr_assert(strstr(err, "p.jsonl:201: id 'nope' is not in the test split"), "%s", err);
    free(out); free(err);

    /* eval on a model file that is not one */
    snprintf(args, sizeof args, "classic eval --task %s/task.yaml -m %s/task.yaml", g_dir, g_dir);
    cr_assert_eq(run(args, &out, &err), 2);
    cr_assert(strstr(err, "task.yaml") != NULL, "%s", err);
    free(out); free(err);
}

Test(cli, score_without_task_uses_reference_field)
{
    char *dir = tw_test_tmpdir();
    free(tw_test_write(dir, "p.jsonl",
                       "{\"id\":\"1\",\"reference\":\"a\",\"prediction\":\"a\",\"latency_ms\":10}\n"
                       "{\"id\":\"2\",\"reference\":\"a\",\"prediction\":\"b\",\"latency_ms\":20}\n"
                       "{\"id\":\"3\",\"reference\":\"b\",\"prediction\":\"b\",\"latency_ms\":30}\n"
                       "{\"id\":\"4\",\"reference\":\"b\",\"prediction\":\"b\",\"latency_ms\":40}\n"));
    char args[600];
    snprintf(args, sizeof args, "score %s/p.jsonl --json --bootstrap 0", dir);
    json_t *j = run_json(args);
    json_t *m = json_object_get(j, "metrics");
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "accuracy"), "value")), 0.75, 1e-12);
    /* macro F1: a: P=1 R=.5 F=2/3; b: P=2/3 R=1 F=.8 → 0.7333 */
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "macro_f1"), "value")), (2.0 / 3 + 0.8) / 2, 1e-9);
    json_decref(j);
    free(dir);
}

Test(cli, split_and_convert_write_files, .init = make_task)
{
    char args[1200], *out;
    snprintf(args, sizeof args, "split --task %s/task.yaml -o %s/sp --format chat", g_dir, g_dir);
    cr_assert_eq(run(args, &out, NULL), 0);
    free(out);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "wc -l < %s/sp/test.jsonl", g_dir);
    tw_test_run(cmd, &out, NULL);
    cr_assert_eq(atoi(out), 200);
    free(out);
    snprintf(cmd, sizeof cmd, "head -n 1 %s/sp/train.jsonl", g_dir);
    tw_test_run(cmd, &out, NULL);
    cr_assert(strstr(out, "\"messages\"") && strstr(out, "\"role\":") && strstr(out, "assistant"), "%s", out);
    free(out);
    /* chat → csv → jsonl keeps inputs and labels */
    snprintf(args, sizeof args, "convert %s/sp/dev.jsonl %s/dev.csv -q", g_dir, g_dir);
    cr_assert_eq(run(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "convert %s/dev.csv %s/dev2.jsonl -q", g_dir, g_dir);
    cr_assert_eq(run(args, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "grep -c '\"output\": *\"\\(positive\\|negative\\)\"' %s/dev2.jsonl", g_dir);
    tw_test_run(cmd, &out, NULL);
    cr_assert_eq(atoi(out), 100, "%s", out);
    free(out);
    snprintf(args, sizeof args, "validate %s/task.yaml", g_dir);
    cr_assert_eq(run(args, &out, NULL), 0);
    cr_assert(strstr(out, "is valid"), "%s", out);
    free(out);
}

Test(cli, validate_reports_yaml_position)
{
    char *dir = tw_test_tmpdir();
    free(tw_test_write(dir, "t.yaml", "name: x\ntype: classify\ndata: a.jsonl\ncolour: blue\n"));
    char args[600], *out, *err;
    snprintf(args, sizeof args, "validate %s/t.yaml", dir);
    cr_assert_eq(run(args, &out, &err), 2);
    cr_assert(strstr(err, "t.yaml:4:1: unknown key 'colour'"), "%s", err);
    free(out); free(err);
    free(dir);
}

/* Perfect predictions (the references themselves) on the real SNIPS (extract, with the
 * example's JSON schema) and E2E (generate, multi-reference) tasks score perfectly. */
Test(cli, score_extract_and_generate_examples)
{
    char *dir = tw_test_tmpdir();
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sed 's/\"output\":/\"prediction\":/' %s/data/snips_slots/test.jsonl > %s/snips.jsonl && "
             "sed 's/\"output\":/\"prediction\":/' %s/data/e2e/test.jsonl > %s/e2e.jsonl",
             tw_test_shared(), dir, tw_test_shared(), dir);
    cr_assert_eq(system(cmd), 0);
    char args[1024];
    snprintf(args, sizeof args, "score %s/snips.jsonl --task examples/snips.yaml --json --bootstrap 50", dir);
    json_t *j = run_json(args);
    json_t *m = json_object_get(j, "metrics");
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "field_f1"), "value")), 1.0, 1e-12);
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "exact_match"), "value")), 1.0, 1e-12);
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "schema_valid"), "value")), 1.0, 1e-12);
    json_decref(j);
    snprintf(args, sizeof args, "score %s/e2e.jsonl --task examples/e2e.yaml --json --bootstrap 50", dir);
    j = run_json(args);
    m = json_object_get(j, "metrics");
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "bleu"), "value")), 100.0, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(json_object_get(m, "exact_match"), "value")), 1.0, 1e-12);
    json_decref(j);
    free(dir);
}

/* tokenize --chat renders the model's own template (ChatML for SmolLM2, from the GGUF)
 * and parses its special tokens; a built-in template overrides a model without one. */
Test(cli, tokenize_chat_template)
{
    const char *model = getenv("TW_SMOLLM2");
    char path[1024];
    if (!model) {
        snprintf(path, sizeof path, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME"));
        model = path;
    }
    cr_assert(access(model, R_OK) == 0, "%s missing: run scripts/get-models.sh", model);
    char args[2048], *out, *err;
    snprintf(args, sizeof args, "tokenize -t %s --chat --ids Hi", model);
    cr_assert_eq(run(args, &out, &err), 0, "%s", err);
    /* SmolLM2's template adds its default system turn when none is given. Expected ids:
     * jinja2 rendering of the GGUF's template, encoded by HF tokenizers (add_special_tokens
     * False), computed once with gguf-py + jinja2 + tokenizers. */
    cr_assert_str_eq(out, "1 9690 198 2683 359 253 5356 5646 11173 3365 3511 308 34519 28 7018 411 407 19712 8182 2 198 "
                          "1 4093 198 26843 2 198 1 520 9531 198\n");
    free(out); free(err);
    snprintf(args, sizeof args, "tokenize -t %s/models/tokenizers/llama2/tokenizer.json --chat Hi", tw_test_shared());
    cr_assert_eq(run(args, &out, &err), 2);
    cr_assert(strstr(err, "chat_template"), "%s", err);
    free(out); free(err);
    snprintf(args, sizeof args, "tokenize -t %s/models/tokenizers/llama2/tokenizer.json --chat --chat-template llama2 --ids Hi",
             tw_test_shared());
    cr_assert_eq(run(args, &out, &err), 0, "%s", err);
    cr_assert(strncmp(out, "1 ", 2) == 0, "llama2 template starts with <s>: %s", out);
    free(out); free(err);
}

/* `run --stop` is repeatable: generation ends before the first stop string that appears,
 * whichever option gave it (stories260K, greedy, real weights). */
Test(cli, run_repeated_stop)
{
    char args[1024], *full, *cut, *err;
    const char *m = "models/stories260K/stories260K.gguf";
    snprintf(args, sizeof args, "run -m %s/%s -p 'Once upon a time' -n 30", tw_test_shared(), m);
    cr_assert_eq(run(args, &full, &err), 0, "%s", err);
    free(err);
    char *girl = strstr(full, "girl");
    cr_assert_not_null(girl, "greedy stories260K text changed: %s", full);
    snprintf(args, sizeof args, "run -m %s/%s -p 'Once upon a time' -n 30 --stop zzz --stop girl --stop '[\"qqq\"]'",
             tw_test_shared(), m);
    cr_assert_eq(run(args, &cut, &err), 0, "%s", err);
    size_t cl = strlen(cut);
    if (cl && cut[cl - 1] == '\n') cut[cl - 1] = '\0';   /* run ends its output with a newline */
    cr_assert_eq(strlen(cut), (size_t)(girl - full), "got '%s' from '%s'", cut, full);
    cr_assert_eq(strncmp(cut, full, strlen(cut)), 0);
    free(full); free(cut); free(err);
}
