/* test_gate.c — the CI gate: thresholds pass/fail, strict mode, noise-level vs significant
 * drops (paired McNemar on the same items, unpaired z test from CIs otherwise), latency and
 * cost ceilings, bad input, and the text / JUnit outputs. Run directories are written
 * directly in the documented format (docs/eval.md). */
#include "testutil.h"
#include "report/gate.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

/* A run dir with n items; item i is right unless wrong(i). CI = acc -/+ half. Latency of
 * item i = lat_ms * (1 + i % 10); cost per call `cost` (NAN: omitted). id_prefix lets two
 * runs have different items. */
static char *make_run(const char *root, const char *name, size_t n, bool (*wrong)(size_t), double half, double lat_ms, double cost,
                      const char *id_prefix)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    cr_assert_eq(mkdir(dir, 0755), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/predictions.jsonl", dir);
    FILE *f = fopen(path, "w");
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        bool w = wrong(i);
        right += !w;
        fprintf(f, "{\"id\":\"%s%zu\",\"input\":\"text %zu\",\"reference\":\"%s\",\"prediction\":\"%s\",\"valid\":true,\"latency_ms\":%g",
                id_prefix, i, i, i % 2 ? "pos" : "neg", (i % 2) ^ w ? "pos" : "neg", lat_ms * (double)(1 + i % 10));
        if (!isnan(cost)) fprintf(f, ",\"cost\":%g", cost);
        fprintf(f, "}\n");
    }
    fclose(f);
    double acc = (double)right / (double)n;
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"task\":\"classify\",\"n\":%zu,\"primary\":\"accuracy\",\"ci\":{\"level\":0.95},\"metrics\":{"
               "\"accuracy\":{\"value\":%.17g,\"ci\":[%.17g,%.17g]},\"macro_f1\":{\"value\":%.17g,\"ci\":[%.17g,%.17g]}}}\n",
            n, acc, acc - half, acc + half, acc - 0.01, acc - 0.01 - half, acc - 0.01 + half);
    fclose(f);
    snprintf(path, sizeof path, "%s/run.json", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"format\":\"tunewise-run\",\"version\":1,\"git_commit\":\"abc\",\"arm\":{\"name\":\"classic\",\"config_hash\":\"c1\","
               "\"model_hash\":\"m1\",\"adapter_hash\":\"\"},\"data\":{\"rows\":%zu,\"hash\":\"%s\"},\"timings\":{\"finished_unix\":1700000000},"
               "\"files\":{\"predictions\":{\"path\":\"predictions.jsonl\",\"sha256\":\"%s\"}},\"context\":{\"task_name\":\"t\"}}\n",
            n, id_prefix, name);
    fclose(f);
    return strdup(dir);
}

static bool none_wrong(size_t i) { (void)i; return false; }
static bool every10_wrong(size_t i) { return i % 10 == 0; }                    /* 20 of 200 */
static bool every10_plus3(size_t i) { return i % 10 == 0 || i == 1 || i == 3 || i == 5; }  /* 23 of 200 */
static bool every10_plus30(size_t i) { return i % 10 == 0 || (i % 10 == 1 && i < 150) || (i % 10 == 3 && i < 150); } /* 50 */

static void load(tw_report *r, const char *dir)
{
    tw_error err;
    cr_assert_eq(tw_report_init(r, "t", &err), TW_OK);
    cr_assert_eq(tw_report_add_run(r, dir, &err), TW_OK, "%s", err.msg);
}

static const tw_gate_check *find(const tw_gate_result *res, const char *prefix)
{
    for (size_t i = 0; i < res->n; i++)
        if (strncmp(res->checks[i].name, prefix, strlen(prefix)) == 0) return &res->checks[i];
    cr_assert_fail("no check named %s", prefix);
    return NULL;
}

Test(gate, thresholds_pass_and_fail)
{
    char *root = tw_test_tmpdir();
    char *d = make_run(root, "cand", 200, every10_wrong, 0.04, 10, 0.0005, "x");   /* acc 0.90 */
    tw_report r;
    load(&r, d);
    tw_gate_opts o;
    tw_gate_default_opts(&o);
    o.min_name[0] = "accuracy"; o.min_value[0] = 0.89; o.n_min = 1;
    o.max_p95_ms = 100; o.max_cost_per_call = 0.001;
    tw_gate_result res;
    tw_error err;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_OK, "%s", err.msg);
    cr_assert(res.pass);
    cr_assert_eq(res.n, 3);
    /* the same run against tighter ceilings */
    o.min_value[0] = 0.91;
    o.max_p95_ms = 95;    /* latencies 10..100 ms: p95 = 100 */
    o.max_cost_per_call = 0.0004;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_OK);
    cr_assert_not(res.pass);
    cr_assert_not(find(&res, "min accuracy")->pass);
    cr_assert_not(find(&res, "p95 latency")->pass);
    cr_assert_not(find(&res, "cost per call")->pass);
    cr_assert_not_null(strstr(find(&res, "min accuracy")->detail, "0.9000 < 0.9100"), "%s", find(&res, "min accuracy")->detail);
    /* a non-primary metric by name */
    o.min_name[0] = "macro_f1"; o.min_value[0] = 0.885; o.max_p95_ms = NAN; o.max_cost_per_call = NAN;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_OK);
    cr_assert(res.pass, "macro_f1 0.89 >= 0.885");
    tw_report_free(&r);
    free(d); free(root);
}

Test(gate, strict_min_uses_the_ci_lower_bound)
{
    char *root = tw_test_tmpdir();
    char *d = make_run(root, "cand", 200, every10_wrong, 0.04, 1, 0, "x");   /* 0.90 [0.86, 0.94] */
    tw_report r;
    load(&r, d);
    tw_gate_opts o;
    tw_gate_default_opts(&o);
    o.min_name[0] = "accuracy"; o.min_value[0] = 0.88; o.n_min = 1;
    tw_gate_result res;
    tw_error err;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_OK);
    cr_assert(res.pass);
    o.strict = true;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_OK);
    cr_assert_not(res.pass, "0.86 lower bound < 0.88 must fail in strict mode");
    tw_report_free(&r);
    free(d); free(root);
}

Test(gate, noise_level_drop_passes_significant_drop_fails)
{
    char *root = tw_test_tmpdir();
    char *base = make_run(root, "base", 200, every10_wrong, 0.04, 1, 0, "x");     /* 0.900 */
    char *noise = make_run(root, "noise", 200, every10_plus3, 0.04, 1, 0, "x");   /* 0.885: b = 3, c = 0 */
    char *worse = make_run(root, "worse", 200, every10_plus30, 0.04, 1, 0, "x");  /* 0.750: b = 30 */
    tw_report rb, rn, rw;
    load(&rb, base); load(&rn, noise); load(&rw, worse);
    uint64_t b, c, n;
    double ba, ca;
    tw_error err;
    cr_assert_eq(tw_gate_paired_counts(base, noise, &b, &c, &n, &ba, &ca, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(b, 3); cr_assert_eq(c, 0); cr_assert_eq(n, 200);
    cr_assert_float_eq(ba, 0.9, 1e-12); cr_assert_float_eq(ca, 0.885, 1e-12);

    tw_gate_opts o;
    tw_gate_default_opts(&o);
    o.max_drop = 0.005;
    tw_gate_result res;
    cr_assert_eq(tw_gate_run(&rn.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    cr_assert(res.pass, "a 3-item drop (McNemar p = 0.25) is noise: %s", res.checks[0].detail);
    cr_assert_not_null(strstr(find(&res, "accuracy drop")->detail, "McNemar"));
    cr_assert_not_null(strstr(find(&res, "accuracy drop")->detail, "p = 0.25"), "%s", find(&res, "accuracy drop")->detail);

    cr_assert_eq(tw_gate_run(&rw.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    cr_assert_not(res.pass, "a 30-item drop must fail");
    cr_assert_not_null(strstr(find(&res, "accuracy drop")->detail, "significant: regression"));

    o.strict = true;   /* strict: the noise-level drop fails too */
    cr_assert_eq(tw_gate_run(&rn.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    cr_assert_not(res.pass);
    o.strict = false;
    o.max_drop = 0.02; /* within the allowed drop: no test needed */
    cr_assert_eq(tw_gate_run(&rn.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    cr_assert(res.pass);
    cr_assert_not_null(strstr(find(&res, "accuracy drop")->detail, "within the allowed drop"));
    /* an improvement always passes */
    o.max_drop = 0;
    cr_assert_eq(tw_gate_run(&rb.arms[0], &rw.arms[0], &o, &res, &err), TW_OK);
    cr_assert(res.pass);
    tw_report_free(&rb); tw_report_free(&rn); tw_report_free(&rw);
    free(base); free(noise); free(worse); free(root);
}

Test(gate, unpaired_runs_use_the_cis)
{
    char *root = tw_test_tmpdir();
    char *base = make_run(root, "base", 200, none_wrong, 0.01, 1, 0, "a");          /* 1.000 +- 0.01 */
    char *wide = make_run(root, "wide", 200, every10_wrong, 0.08, 1, 0, "b");        /* 0.90 +- 0.08, other ids */
    char *narrow = make_run(root, "narrow", 200, every10_wrong, 0.01, 1, 0, "b");    /* 0.90 +- 0.01 */
    tw_report rb, r1, r2;
    load(&rb, base); load(&r1, wide); load(&r2, narrow);
    uint64_t b, c, n;
    double ba, ca;
    tw_error err;
    cr_assert_eq(tw_gate_paired_counts(base, wide, &b, &c, &n, &ba, &ca, &err), TW_ERR_INVALID, "different ids must not pair");
    cr_assert_not_null(strstr(err.msg, "not the same items"), "%s", err.msg);
    tw_gate_opts o;
    tw_gate_default_opts(&o);
    tw_gate_result res;
    cr_assert_eq(tw_gate_run(&r1.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    /* drop 0.10, se = sqrt((0.08/1.96)^2 + (0.01/1.96)^2) = 0.0411 -> z = 2.43, p = 0.015: significant */
    cr_assert_not(res.pass);
    cr_assert_not_null(strstr(find(&res, "accuracy drop")->detail, "unpaired z test"));
    cr_assert_eq(tw_gate_run(&r2.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    cr_assert_not(res.pass);
    /* alpha small enough that a 0.015 p-value is noise for the wide one */
    o.alpha = 0.01;
    cr_assert_eq(tw_gate_run(&r1.arms[0], &rb.arms[0], &o, &res, &err), TW_OK);
    cr_assert(res.pass, "%s", find(&res, "accuracy drop")->detail);
    tw_report_free(&rb); tw_report_free(&r1); tw_report_free(&r2);
    free(base); free(wide); free(narrow); free(root);
}

Test(gate, bad_input_and_missing_measurements)
{
    char *root = tw_test_tmpdir();
    char *d = make_run(root, "cand", 50, none_wrong, 0.02, 1, NAN, "x");
    tw_report r;
    load(&r, d);
    tw_gate_opts o;
    tw_gate_default_opts(&o);
    o.min_name[0] = "bleu"; o.min_value[0] = 0.5; o.n_min = 1;
    tw_gate_result res;
    tw_error err;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_ERR_INVALID);
    cr_assert_not_null(strstr(err.msg, "no metric 'bleu'"), "%s", err.msg);
    o.n_min = 0;
    o.max_cost_per_call = 0.01;   /* the run records no cost: fail, not pass */
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_OK);
    cr_assert_not(res.pass);
    cr_assert_not_null(strstr(res.checks[0].detail, "no cost recorded"));
    o.max_drop = -1;
    cr_assert_eq(tw_gate_run(&r.arms[0], NULL, &o, &res, &err), TW_ERR_INVALID);
    tw_report_free(&r);
    free(d); free(root);
}

Test(gate, text_and_junit_outputs)
{
    tw_gate_result res = {.n = 2, .pass = false};
    snprintf(res.checks[0].name, sizeof res.checks[0].name, "min accuracy");
    res.checks[0].pass = true;
    snprintf(res.checks[0].detail, sizeof res.checks[0].detail, "accuracy 0.9 >= 0.8");
    snprintf(res.checks[1].name, sizeof res.checks[1].name, "p95 latency");
    snprintf(res.checks[1].detail, sizeof res.checks[1].detail, "p95 400 ms > ceiling <300> & \"x\"");
    tw_buf t = {0}, x = {0};
    cr_assert_eq(tw_gate_text(&t, &res), TW_OK);
    cr_assert_not_null(strstr(t.data, "PASS  min accuracy: accuracy 0.9 >= 0.8\n"));
    cr_assert_not_null(strstr(t.data, "FAIL  p95 latency"));
    cr_assert_not_null(strstr(t.data, "gate FAILED: 2 checks, 1 failed"));
    cr_assert_eq(tw_gate_junit(&x, &res, "run<1>"), TW_OK);
    cr_assert_not_null(strstr(x.data, "<testsuite name=\"run&lt;1&gt;\" tests=\"2\" failures=\"1\""), "%s", x.data);
    cr_assert_not_null(strstr(x.data, "<failure message=\"p95 400 ms &gt; ceiling &lt;300&gt; &amp; &quot;x&quot;\">"), "%s", x.data);
    cr_assert_eq(strstr(x.data, "<300>"), NULL);
    tw_buf_free(&t);
    tw_buf_free(&x);
}

/* The CLI: exit 0 / 1 / 2, the printed checks and the JUnit file. */
Test(gate, cli_exit_codes)
{
    char cmd[4096], *out, *err_text;
    snprintf(cmd, sizeof cmd, "%s help gate", tw_test_bin());
    if (tw_test_run(cmd, NULL, NULL) != 0)
        cr_assert_fail("'tunewise gate' is not registered in %s: add cmd_gate to tools/tunewise/main.c COMMANDS and cli.h", tw_test_bin());
    char *root = tw_test_tmpdir();
    char *base = make_run(root, "base", 200, every10_wrong, 0.04, 1, 0, "x");
    char *worse = make_run(root, "worse", 200, every10_plus30, 0.04, 1, 0, "x");
    snprintf(cmd, sizeof cmd, "%s gate %s --baseline %s --min accuracy=0.7 --junit %s/j.xml", tw_test_bin(), worse, base, root);
    cr_assert_eq(tw_test_run(cmd, &out, &err_text), 1, "a significant drop exits 1: %s %s", out, err_text);
    cr_assert_not_null(strstr(out, "FAIL  accuracy drop vs baseline"), "%s", out);
    cr_assert_not_null(strstr(out, "PASS  min accuracy"), "%s", out);
    free(out); free(err_text);
    char j[1100];
    snprintf(j, sizeof j, "%s/j.xml", root);
    cr_assert(tw_file_exists(j), "the JUnit file is written even when the gate fails");
    snprintf(cmd, sizeof cmd, "%s gate %s --baseline %s --max-drop 0.2", tw_test_bin(), worse, base);
    cr_assert_eq(tw_test_run(cmd, &out, NULL), 0, "%s", out);
    cr_assert_not_null(strstr(out, "gate passed"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s gate %s/nothing-here", tw_test_bin(), root);
    cr_assert_eq(tw_test_run(cmd, NULL, &err_text), 2, "a missing run is bad input");
    cr_assert_not_null(strstr(err_text, "run.json"), "%s", err_text);
    free(err_text);
    snprintf(cmd, sizeof cmd, "%s gate %s --min accuracy", tw_test_bin(), base);
    cr_assert_eq(tw_test_run(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof cmd, "%s gate %s --min bleu=0.3", tw_test_bin(), base);
    cr_assert_eq(tw_test_run(cmd, NULL, NULL), 2, "an unknown metric is bad input");
    free(base); free(worse); free(root);
}

/* examples/ci/tunewise-gate.yml: valid YAML, and every option its gate and prompt steps
 * pass exists in the commands' own option tables (their --help). */
Test(gate, ci_example_workflow_is_valid)
{
    FILE *f = fopen("examples/ci/tunewise-gate.yml", "rb");
    cr_assert_not_null(f, "examples/ci/tunewise-gate.yml is missing");
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    yaml_parser_t p;
    yaml_document_t doc;
    cr_assert(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, n);
    cr_assert(yaml_parser_load(&p, &doc), "YAML error at line %zu: %s", p.problem_mark.line + 1,
              p.problem ? p.problem : "?");
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    cr_assert(root && root->type == YAML_MAPPING_NODE);
    bool jobs = false;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        jobs |= k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, "jobs") == 0;
    }
    cr_expect(jobs, "no jobs: mapping");
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    const char *bin = getenv("TW_BIN") ? getenv("TW_BIN") : "build/tunewise";
    const char *cmds[] = {"gate", "prompt"};
    for (int c = 0; c < 2; c++) {
        char cmd[600], *out = NULL, *err = NULL, key[32];
        snprintf(cmd, sizeof cmd, "%s %s --help", bin, cmds[c]);
        cr_assert_eq(tw_test_run(cmd, &out, &err), 0);
        snprintf(key, sizeof key, "tunewise %s ", cmds[c]);
        const char *at = strstr(text, key);
        cr_assert_not_null(at, "the workflow runs no '%s'", key);
        /* the step's options, up to the end of its (backslash-continued) command */
        for (const char *q = at; *q && !(q[0] == '\n' && q[-1] != '\\'); q++) {
            if (q[0] == '-' && q[1] == '-' && q[-1] == ' ') {
                char opt[64];
                size_t k = 0;
                while (q[k] && q[k] != ' ' && q[k] != '\n' && q[k] != '=' && k + 1 < sizeof opt) opt[k] = q[k], k++;
                opt[k] = 0;
                char needle[80];
                snprintf(needle, sizeof needle, "%s ", opt);
                cr_expect(strstr(out, needle) != NULL, "%s has no option %s", cmds[c], opt);
            }
        }
        free(out);
        free(err);
    }
}
