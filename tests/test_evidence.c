/* test_evidence.c — filling a tw_evidence from run directories written here (run.json,
 * metrics.json, predictions.jsonl), from audit reports and from a task's prices; paired
 * McNemar between loaded arms; and errors that name the file and line or field. */
#include "testutil.h"

#include "decide/evidence.h"
#include "decide/verdict.h"

#include <math.h>

static const char *RUN_PROMPT =
    "{\"format\": \"tunewise-run\", \"version\": 1,\n"
    " \"arm\": {\"name\": \"prompt\", \"config\": {\"strategy\": \"knn\", \"output\": \"choice\"}},\n"
    " \"timings\": {\"rows_per_second\": 4.0},\n"
    " \"context\": {\"task\": \"t.yaml\", \"model\": \"gpt-4o-mini\"}}\n";
static const char *METRICS_PROMPT =
    "{\"task\": \"classify\", \"n\": 4, \"primary\": \"accuracy\",\n"
    " \"metrics\": {\"accuracy\": {\"value\": 0.5, \"ci\": [0.1, 0.9]}},\n"
    " \"latency_ms\": {\"n\": 4, \"mean\": 250, \"p50\": 240, \"p90\": 400, \"p99\": 410},\n"
    " \"tokens\": {\"n_in\": 4, \"in_total\": 2000, \"in_mean\": 500, \"n_out\": 4, \"out_total\": 12, \"out_mean\": 3}}\n";
static const char *PRED_PROMPT =
    "{\"id\": \"a\", \"reference\": \"pos\", \"prediction\": \" pos \", \"cost\": 0.001}\n"
    "{\"id\": \"b\", \"reference\": \"neg\", \"prediction\": \"POS\", \"parsed\": \"neg\", \"cost\": 0.003}\n"
    "{\"id\": \"c\", \"reference\": \"neg\", \"prediction\": \"pos\"}\n"
    "{\"id\": \"d\", \"reference\": \"pos\", \"prediction\": \"??\", \"valid\": false}\n";

static const char *RUN_LORA = "{\"arm\": {\"name\": \"lora\", \"config\": {}}, \"context\": {\"model\": \"smollm2\"}}";
static const char *METRICS_LORA =
    "{\"n\": 4, \"primary\": \"accuracy\", \"metrics\": {\"accuracy\": {\"value\": 1.0, \"ci\": null}},"
    " \"latency_ms\": {\"mean\": 50, \"p90\": 80}}";
static const char *PRED_LORA =
    "{\"id\": \"d\", \"reference\": \"pos\", \"prediction\": \"pos\"}\n"
    "{\"id\": \"c\", \"reference\": \"neg\", \"prediction\": \"neg\"}\n"
    "{\"id\": \"b\", \"reference\": \"neg\", \"prediction\": \"neg\"}\n"
    "{\"id\": \"a\", \"reference\": \"pos\", \"prediction\": \"pos\"}\n";

static char *make_run(const char *root, const char *name, const char *run, const char *metrics, const char *pred)
{
    size_t n = strlen(root) + strlen(name) + 2;
    char *dir = malloc(n);
    snprintf(dir, n, "%s/%s", root, name);
    mkdir(dir, 0755);
    if (run) free(tw_test_write(dir, "run.json", run));
    if (metrics) free(tw_test_write(dir, "metrics.json", metrics));
    if (pred) free(tw_test_write(dir, "predictions.jsonl", pred));
    return dir;
}

static tw_evidence ev;
static void setup(void) { cr_assert_eq(tw_evidence_init(&ev, NULL), TW_OK); }
static void teardown(void) { tw_evidence_free(&ev); }
TestSuite(evidence, .init = setup, .fini = teardown);

Test(evidence, loads_run_dirs)
{
    char *root = tw_test_tmpdir();
    char *d1 = make_run(root, "knn-gpt", RUN_PROMPT, METRICS_PROMPT, PRED_PROMPT);
    char *d2 = make_run(root, "lora-small", RUN_LORA, METRICS_LORA, PRED_LORA);
    tw_error e = {0};
    tw_ev_arm *a;
    cr_assert_eq(tw_evidence_add_run(&ev, d1, &a, &e), TW_OK, "%s", e.msg);
    cr_assert_str_eq(a->name, "knn-gpt");
    cr_assert_eq(a->kind, TW_ARM_PROMPT);
    cr_assert_str_eq(a->model, "gpt-4o-mini");
    cr_assert_str_eq(a->strategy, "knn");
    cr_assert(a->retrieval);
    cr_assert(a->constrained);
    cr_assert_float_eq(a->metric, 0.5, 1e-12);
    cr_assert_float_eq(a->lo, 0.1, 1e-12);
    cr_assert_float_eq(a->hi, 0.9, 1e-12);
    cr_assert_eq(a->n, 4);
    cr_assert_float_eq(a->latency_mean_ms, 250, 1e-12);
    cr_assert_float_eq(a->latency_p90_ms, 400, 1e-12);
    cr_assert_float_eq(a->tokens_in, 500, 1e-12);
    cr_assert_float_eq(a->tokens_out, 3, 1e-12);
    cr_assert_float_eq(a->rows_per_second, 4, 1e-12);
    cr_assert_float_eq(a->invalid_rate, 0.25, 1e-12);
    cr_assert_float_eq(a->cost_per_call, 0.002, 1e-12);   /* mean over rows that have a cost */
    cr_assert_eq(a->n_items, 4);
    /* trimmed match; parsed wins over prediction */
    cr_assert_eq(a->correct[0], 1);
    cr_assert_eq(a->correct[1], 1);
    cr_assert_eq(a->correct[2], 0);
    cr_assert_eq(a->correct[3], 0);
    cr_assert_str_eq(ev.metric, "accuracy");
    cr_assert_eq(tw_evidence_add_run(&ev, d2, &a, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(a->kind, TW_ARM_LORA);
    cr_assert(isnan(a->lo));
    /* paired by id although the files are in different orders */
    uint64_t b, c;
    size_t shared;
    double p = tw_evidence_mcnemar(&ev, 0, 1, &b, &c, &shared);
    cr_assert_eq(shared, 4);
    cr_assert_eq(b, 0);
    cr_assert_eq(c, 2);
    cr_assert_float_eq(p, 0.5, 1e-12);   /* 2 * P[X <= 0], X ~ Bin(2, 1/2) */
    /* the same directory again gets a unique name */
    cr_assert_eq(tw_evidence_add_run(&ev, d1, &a, &e), TW_OK, "%s", e.msg);
    cr_assert_str_eq(a->name, "knn-gpt#2");
    free(d1);
    free(d2);
    free(root);
}

static void expect_error(const char *run, const char *metrics, const char *pred, tw_status want, const char *needle)
{
    char *root = tw_test_tmpdir();
    char *d = make_run(root, "bad", run, metrics, pred);
    tw_error e = {0};
    size_t before = ev.n_arms;
    cr_assert_eq(tw_evidence_add_run(&ev, d, NULL, &e), want, "%s", e.msg);
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
    cr_assert(strstr(e.msg, d), "message '%s' lacks the directory", e.msg);
    cr_assert_eq(ev.n_arms, before);   /* nothing half-added */
    free(d);
    free(root);
}

Test(evidence, malformed_runs_name_file_and_field)
{
    expect_error(NULL, METRICS_PROMPT, PRED_PROMPT, TW_ERR_IO, "run.json: cannot open");
    expect_error("{\"arm\": {\"name\": \"prompt\"},\n \"timings\": oops}", METRICS_PROMPT, PRED_PROMPT, TW_ERR_PARSE,
                 "run.json:2:");
    expect_error("{\"arm\": {}}", METRICS_PROMPT, PRED_PROMPT, TW_ERR_PARSE, "run.json: missing field 'arm.name'");
    expect_error("{\"arm\": {\"name\": \"prompt\"}, \"timings\": {\"rows_per_second\": \"fast\"}}", METRICS_PROMPT, PRED_PROMPT,
                 TW_ERR_PARSE, "run.json: field 'timings.rows_per_second' must be a number");
    expect_error(RUN_LORA, "{\"n\": 3, \"primary\": \"accuracy\", \"metrics\": {\"accuracy\": {\"value\": \"0.5\"}}}", PRED_LORA,
                 TW_ERR_PARSE, "metrics.json: field 'metrics.accuracy.value' must be a number");
    expect_error(RUN_LORA, "{\"n\": 3, \"primary\": \"accuracy\", \"metrics\": {\"accuracy\": {\"value\": 0.5, \"ci\": [1]}}}",
                 PRED_LORA, TW_ERR_PARSE, "field 'metrics.accuracy.ci' must be [lo, hi] or null");
    expect_error(RUN_LORA, "{\"n\": -3, \"primary\": \"accuracy\", \"metrics\": {\"accuracy\": {\"value\": 0.5}}}", PRED_LORA,
                 TW_ERR_PARSE, "field 'n' must be a non-negative integer");
    expect_error(RUN_LORA, METRICS_LORA, "{\"id\": \"a\", \"prediction\": \"x\"}\n{\"id\": \"b\"\n", TW_ERR_PARSE,
                 "predictions.jsonl:2:");
    /* a second run on another primary metric cannot be compared */
    char *root = tw_test_tmpdir();
    char *d = make_run(root, "ok", RUN_LORA, METRICS_LORA, PRED_LORA);
    cr_assert_eq(tw_evidence_add_run(&ev, d, NULL, NULL), TW_OK);
    expect_error(RUN_LORA, "{\"n\": 3, \"primary\": \"macro_f1\", \"metrics\": {\"macro_f1\": {\"value\": 0.5}}}", PRED_LORA,
                 TW_ERR_INVALID, "primary metric 'macro_f1' differs from the comparison's 'accuracy'");
    free(d);
    free(root);
}

Test(evidence, audit_report)
{
    const char *rep =
        "{\"audit_version\": 1, \"params\": {\"thresholds\": {\"min_train\": 50, \"good_train\": 800, \"min_eval\": 150,"
        " \"good_eval\": 400}},"
        " \"readiness\": {\"verdict\": \"warnings\", \"eval\": {\"level\": \"warnings\", \"split\": \"test\", \"rows\": 310,"
        " \"mde\": {\"difference\": 0.071}}, \"prompting\": {\"level\": \"ready\"},"
        " \"finetune\": {\"level\": \"ready\", \"train_rows\": 1200}, \"reasons\": []}}";
    char *root = tw_test_tmpdir();
    char *path = tw_test_write(root, "audit.json", rep);
    tw_error e = {0};
    cr_assert_eq(tw_evidence_load_audit(&ev, path, &e), TW_OK, "%s", e.msg);
    cr_assert(ev.have_audit);
    cr_assert_eq(ev.eval_rows, 310);
    cr_assert_eq(ev.train_rows, 1200);
    cr_assert_eq(ev.eval_level, TW_AUDIT_WARNINGS);
    cr_assert_eq(ev.finetune_level, TW_AUDIT_READY);
    cr_assert_float_eq(ev.mde, 0.071, 1e-12);
    cr_assert_eq(ev.min_train, 50);
    cr_assert_eq(ev.good_eval, 400);
    free(path);
    /* malformed: bad level, missing rows, not an audit */
    tw_evidence_free(&ev);
    tw_evidence_init(&ev, NULL);
    json_t *j = json_loads("{\"audit_version\": 1, \"readiness\": {\"eval\": {\"level\": \"maybe\", \"rows\": 3},"
                           " \"finetune\": {\"level\": \"ready\", \"train_rows\": 1}}}", 0, NULL);
    cr_assert_eq(tw_evidence_set_audit(&ev, j, "a.json", &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "a.json: field 'readiness.eval.level' must be"), "%s", e.msg);
    cr_assert_not(ev.have_audit);
    json_decref(j);
    j = json_loads("{\"audit_version\": 1, \"readiness\": {\"eval\": {\"level\": \"ready\"},"
                   " \"finetune\": {\"level\": \"ready\", \"train_rows\": 1}}}", 0, NULL);
    cr_assert_eq(tw_evidence_set_audit(&ev, j, "a.json", &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "a.json: missing field 'readiness.eval.rows'"), "%s", e.msg);
    json_decref(j);
    j = json_loads("{\"n\": 1}", 0, NULL);
    cr_assert_eq(tw_evidence_set_audit(&ev, j, "m.json", &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "not an audit report"));
    json_decref(j);
    path = tw_test_write(root, "broken.json", "{\"audit_version\": 1,\n\n  ]");
    cr_assert_eq(tw_evidence_load_audit(&ev, path, &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "broken.json:3:"), "%s", e.msg);
    free(path);
    free(root);
}

Test(evidence, task_prices_and_preset)
{
    char *root = tw_test_tmpdir();
    char *d1 = make_run(root, "knn-gpt", RUN_PROMPT, METRICS_PROMPT, PRED_PROMPT);
    char *d2 = make_run(root, "lora-small", RUN_LORA, METRICS_LORA, PRED_LORA);
    tw_error e = {0};
    tw_ev_arm *lo;
    cr_assert_eq(tw_evidence_add_run(&ev, d1, NULL, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_evidence_add_run(&ev, d2, &lo, &e), TW_OK, "%s", e.msg);
    lo->train_examples = 600;
    tw_ev_arm *cl;
    cr_assert_eq(tw_evidence_add_arm(&ev, "classic", &cl, &e), TW_OK);
    cl->kind = TW_ARM_CLASSIC;
    tw_ev_arm *un;
    cr_assert_eq(tw_evidence_add_arm(&ev, "mystery", &un, &e), TW_OK);
    cr_assert_eq(tw_evidence_add_arm(&ev, "mystery", NULL, &e), TW_ERR_INVALID);
    ev.label_rate = 20;
    ev.labels_per_hour = 120;
    ev.retrains_per_year = 2;
    tw_price prices[1] = {{(char *)"smollm2", 0, 0, 1.5}};
    tw_task t;
    memset(&t, 0, sizeof t);
    t.name = (char *)"sst2";
    t.metric = (char *)"accuracy";
    t.target = 0.9;
    t.monthly_volume = 1e5;
    t.prices = prices;
    t.n_prices = 1;
    cr_assert_eq(tw_evidence_apply_task(&ev, &t, &e), TW_OK, "%s", e.msg);
    cr_assert_str_eq(ev.task, "sst2");
    cr_assert_float_eq(ev.target, 0.9, 1e-12);
    const tw_ev_arm *a = &ev.arms[0];
    cr_assert(a->cost_known);
    cr_assert_eq(a->cost.kind, TW_BILL_API);   /* from the preset table */
    cr_assert_float_eq(a->cost.input_per_mtok, tw_preset_price_find("gpt-4o-mini")->input_per_mtok, 1e-12);
    cr_assert_float_eq(a->cost.tokens_in, 500, 1e-12);
    a = &ev.arms[1];
    cr_assert(a->cost_known);
    cr_assert_eq(a->cost.kind, TW_BILL_HOURLY);
    cr_assert_float_eq(a->cost.per_hour, 1.5, 1e-12);
    cr_assert_float_eq(a->cost.seconds_per_call, 0.05, 1e-12);
    cr_assert_float_eq(a->cost.label_hours, 5, 1e-12);   /* 600 labels at 120 per hour */
    cr_assert_float_eq(a->cost.label_rate, 20, 1e-12);
    cr_assert_float_eq(a->cost.retrains_per_year, 2, 1e-12);
    cr_assert(ev.arms[2].cost_known);
    cr_assert_eq(ev.arms[2].cost.kind, TW_BILL_FREE);
    cr_assert_not(ev.arms[3].cost_known);
    /* the evidence feeds the verdict end to end */
    ev.have_audit = true;
    ev.eval_rows = 600;
    ev.train_rows = 600;
    ev.eval_level = ev.finetune_level = TW_AUDIT_READY;
    tw_verdict v;
    cr_assert_eq(tw_verdict_decide(&v, &ev, &e), TW_OK, "%s", e.msg);
    cr_assert_geq(v.recommended, 0);
    cr_assert_str_eq(ev.arms[v.recommended].name, "lora-small");   /* only arm meeting 0.9 */
    cr_assert(v.costs[1].known);
    cr_assert_float_eq(v.costs[1].monthly, 1e5 * 0.05 / 3600 * 1.5, 1e-9);
    tw_verdict_free(&v);
    free(d1);
    free(d2);
    free(root);
}

/* The loader reads what tw_audit really writes (guards against the report shape drifting). */
Test(evidence, real_audit_report)
{
    tw_dataset train = {0}, test = {0};
    tw_error e = {0};
    for (int i = 0; i < 400; i++) {
        char id[16], in[64];
        snprintf(id, sizeof id, "r%d", i);
        snprintf(in, sizeof in, "sentence number %d about item %d", i, i * 7);
        tw_example ex;
        memset(&ex, 0, sizeof ex);
        ex.id = id;
        ex.input = in;
        ex.output = (char *)(i % 2 ? "pos" : "neg");
        cr_assert_eq(tw_dataset_push(i < 150 ? &train : &test, &ex, &e), TW_OK, "%s", e.msg);
    }
    const tw_dataset *splits[TW_SPLIT_COUNT] = {&train, NULL, &test};
    tw_audit_params p = tw_audit_default_params();
    json_t *rep = NULL;
    cr_assert_eq(tw_audit(splits, &p, &rep, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_evidence_set_audit(&ev, rep, "audit", &e), TW_OK, "%s", e.msg);
    cr_assert_eq(ev.train_rows, 150);
    cr_assert_eq(ev.eval_rows, 250);
    cr_assert_eq(ev.eval_level, TW_AUDIT_WARNINGS);      /* 200 <= 250 < 500 */
    cr_assert_eq(ev.finetune_level, TW_AUDIT_WARNINGS);  /* 100 <= 150 < 1000 */
    cr_assert(ev.mde > 0 && ev.mde < 0.5, "mde %g", ev.mde);
    json_decref(rep);
    tw_dataset_free(&train);
    tw_dataset_free(&test);
}
