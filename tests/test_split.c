/* test_split.c — splits (src/task/split.c): sizes, stratification, determinism, independence
 * from row order, no normalized input on two sides, the task-level modes (given / carve dev /
 * carve test / split one file) on fixtures and the real datasets, and the label checks. */
#include "testutil.h"
#include "task/split.h"

#include <math.h>

static char g_log[1 << 16];
static int g_warns;
static void capture_log(tw_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == TW_LOG_WARN) g_warns++;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}

static char *g_dir;
static void setup(void)
{
    g_dir = tw_test_tmpdir();
    g_log[0] = '\0';
    g_warns = 0;
    tw_log_set_hook(capture_log, NULL);
}
static void teardown(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) cr_log_warn("cleanup failed");
    free(g_dir);
}

/* A synthetic classify set: 5 labels with 400/250/150/60/2 rows over `n_inputs` distinct
 * texts, where every 10th row repeats an earlier row's input with other case/punctuation. */
static void make_set(tw_dataset *ds)
{
    static const char *labels[] = {"alpha", "beta", "gamma", "delta", "rare"};
    static const size_t counts[] = {400, 250, 150, 60, 2};
    memset(ds, 0, sizeof *ds);
    tw_error err;
    size_t row = 0;
    char id[32], input[128];
    for (int l = 0; l < 5; l++)
        for (size_t k = 0; k < counts[l]; k++, row++) {
            snprintf(id, sizeof id, "r%04zu", row);
            if (row % 10 == 9 && k >= 3)   /* a near-duplicate of the row 3 back, same label */
                snprintf(input, sizeof input, "  MESSAGE number %zu of %s!! ", row - 3, labels[l]);
            else
                snprintf(input, sizeof input, "message number %zu of %s", row, labels[l]);
            tw_example ex = {.id = id, .input = input, .output = (char *)labels[l], .line = row + 1};
            cr_assert_eq(tw_dataset_push(ds, &ex, &err), TW_OK);
        }
    ds->path = strdup("synthetic.jsonl");
}

static size_t count_label(const tw_dataset *ds, const char *lab)
{
    size_t n = 0;
    for (size_t i = 0; i < ds->n; i++) n += strcmp(ds->rows[i].output, lab) == 0;
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted ids of a dataset (heap array of borrowed strings). */
static const char **sorted_ids(const tw_dataset *ds)
{
    const char **ids = calloc(ds->n + 1, sizeof *ids);
    for (size_t i = 0; i < ds->n; i++) ids[i] = ds->rows[i].id;
    qsort(ids, ds->n, sizeof *ids, cmp_str);
    return ids;
}

static bool same_ids(const tw_dataset *a, const tw_dataset *b)
{
    if (a->n != b->n) return false;
    const char **x = sorted_ids(a), **y = sorted_ids(b);
    bool ok = true;
    for (size_t i = 0; i < a->n && ok; i++) ok = strcmp(x[i], y[i]) == 0;
    free(x);
    free(y);
    return ok;
}

/* No normalized input occurs in two of the datasets. */
static void assert_no_shared_inputs(const tw_dataset *sets, int n_sets)
{
    size_t total = 0;
    for (int s = 0; s < n_sets; s++) total += sets[s].n;
    struct item { char *norm; int set; } *items = calloc(total + 1, sizeof *items);
    size_t k = 0;
    for (int s = 0; s < n_sets; s++)
        for (size_t i = 0; i < sets[s].n; i++) {
            const char *in = sets[s].rows[i].input;
            char *buf = malloc(strlen(in) + 1);
            tw_normalize_text(in, strlen(in), buf);
            items[k++] = (struct item){buf, s};
        }
    qsort(items, k, sizeof *items, cmp_str);   /* norm is the first member */
    for (size_t i = 1; i < k; i++)
        if (strcmp(items[i].norm, items[i - 1].norm) == 0)
            cr_assert_eq(items[i].set, items[i - 1].set, "input \"%s\" is in sets %d and %d", items[i].norm,
                         items[i - 1].set, items[i].set);
    for (size_t i = 0; i < k; i++) free(items[i].norm);
    free(items);
}

TestSuite(split, .init = setup, .fini = teardown, .timeout = 120);

Test(split, sizes_stratification_and_no_leaks)
{
    tw_dataset all, sp[3];
    make_set(&all);
    tw_error err;
    cr_assert_eq(tw_split_dataset(&all, 0.1, 0.2, 1, true, &sp[0], &sp[1], &sp[2], &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n + sp[1].n + sp[2].n, all.n);
    /* totals within a group (2 rows) of round(frac * n) */
    cr_assert_leq(labs((long)sp[2].n - (long)llround(0.2 * (double)all.n)), 2, "test %zu", sp[2].n);
    cr_assert_leq(labs((long)sp[1].n - (long)llround(0.1 * (double)all.n)), 2, "dev %zu", sp[1].n);
    /* each label's share in test and dev is close to the fractions */
    const char *labs_[] = {"alpha", "beta", "gamma", "delta"};
    for (int l = 0; l < 4; l++) {
        double n = (double)count_label(&all, labs_[l]);
        cr_assert_leq(fabs((double)count_label(&sp[2], labs_[l]) - 0.2 * n), 3.0, "%s test", labs_[l]);
        cr_assert_leq(fabs((double)count_label(&sp[1], labs_[l]) - 0.1 * n), 3.0, "%s dev", labs_[l]);
    }
    /* a label with two inputs keeps one in train */
    cr_assert_geq(count_label(&sp[0], "rare"), 1);
    assert_no_shared_inputs(sp, 3);
    /* rows keep file order and their source path/line */
    for (int s = 0; s < 3; s++) {
        cr_assert_str_eq(sp[s].path, "synthetic.jsonl");
        for (size_t i = 1; i < sp[s].n; i++) cr_assert_lt(sp[s].rows[i - 1].line, sp[s].rows[i].line);
    }
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    tw_dataset_free(&all);
}

Test(split, deterministic_and_seed_dependent)
{
    tw_dataset all, a[3], b[3], c[3];
    make_set(&all);
    tw_error err;
    cr_assert_eq(tw_split_dataset(&all, 0.1, 0.2, 5, true, &a[0], &a[1], &a[2], &err), TW_OK);
    cr_assert_eq(tw_split_dataset(&all, 0.1, 0.2, 5, true, &b[0], &b[1], &b[2], &err), TW_OK);
    cr_assert_eq(tw_split_dataset(&all, 0.1, 0.2, 6, true, &c[0], &c[1], &c[2], &err), TW_OK);
    for (int s = 0; s < 3; s++) cr_assert(same_ids(&a[s], &b[s]), "split %d differs for the same seed", s);
    cr_assert(!same_ids(&a[2], &c[2]), "another seed gave the same test set");
    for (int s = 0; s < 3; s++) {
        tw_dataset_free(&a[s]);
        tw_dataset_free(&b[s]);
        tw_dataset_free(&c[s]);
    }
    tw_dataset_free(&all);
}

Test(split, independent_of_row_order)
{
    tw_dataset all, shuffled = {0}, a[3], b[3];
    make_set(&all);
    tw_error err;
    for (size_t i = 0; i < all.n; i++) cr_assert_eq(tw_dataset_push(&shuffled, &all.rows[i], &err), TW_OK);
    tw_rng rng;
    tw_rng_seed(&rng, 99);
    tw_rng_shuffle(&rng, shuffled.rows, shuffled.n, sizeof *shuffled.rows);
    cr_assert_eq(tw_split_dataset(&all, 0.15, 0.15, 3, true, &a[0], &a[1], &a[2], &err), TW_OK);
    cr_assert_eq(tw_split_dataset(&shuffled, 0.15, 0.15, 3, true, &b[0], &b[1], &b[2], &err), TW_OK);
    for (int s = 0; s < 3; s++) cr_assert(same_ids(&a[s], &b[s]), "split %d depends on row order", s);
    /* unstratified too */
    for (int s = 0; s < 3; s++) {
        tw_dataset_free(&a[s]);
        tw_dataset_free(&b[s]);
    }
    cr_assert_eq(tw_split_dataset(&all, 0.15, 0.15, 3, false, &a[0], &a[1], &a[2], &err), TW_OK);
    cr_assert_eq(tw_split_dataset(&shuffled, 0.15, 0.15, 3, false, &b[0], &b[1], &b[2], &err), TW_OK);
    for (int s = 0; s < 3; s++) cr_assert(same_ids(&a[s], &b[s]), "unstratified split %d depends on row order", s);
    assert_no_shared_inputs(a, 3);
    for (int s = 0; s < 3; s++) {
        tw_dataset_free(&a[s]);
        tw_dataset_free(&b[s]);
    }
    tw_dataset_free(&shuffled);
    tw_dataset_free(&all);
}

Test(split, zero_fractions_null_outputs_and_bad_fractions)
{
    tw_dataset all, tr, te;
    make_set(&all);
    tw_error err;
    cr_assert_eq(tw_split_dataset(&all, 0, 0.3, 1, false, &tr, NULL, &te, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tr.n + te.n, all.n);
    tw_dataset_free(&tr);
    tw_dataset_free(&te);
    cr_assert_eq(tw_split_dataset(&all, 0.5, 0.5, 1, false, &tr, NULL, &te, &err), TW_ERR_INVALID);
    cr_assert_str_eq(err.msg, "split fractions must be >= 0 and dev + test < 1 (got 0.5 + 0.5)");
    cr_assert_eq(tw_split_dataset(&all, -0.1, 0.2, 1, false, &tr, NULL, &te, &err), TW_ERR_INVALID);
    cr_assert_eq(tw_split_dataset(&all, 0.1, 0.2, 1, false, &tr, NULL, &te, &err), TW_ERR_INVALID);
    tw_dataset_free(&all);
}

Test(split, tiny_sets_keep_everything_in_train)
{
    tw_dataset all = {0}, sp[3];
    tw_error err;
    tw_example ex = {.id = "only", .input = "one row", .output = "a"};
    cr_assert_eq(tw_dataset_push(&all, &ex, &err), TW_OK);
    cr_assert_eq(tw_split_dataset(&all, 0.1, 0.2, 1, true, &sp[0], &sp[1], &sp[2], &err), TW_OK);
    cr_assert_eq(sp[0].n, 1);
    cr_assert_eq(sp[1].n + sp[2].n, 0);
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    tw_dataset_free(&all);
}

/* ---- task level ------------------------------------------------------------------------ */

static void load_task(const char *path, tw_task *t)
{
    tw_error err;
    cr_assert_eq(tw_task_load(t, path, &err), TW_OK, "%s", err.msg);
}

static char *write_task(const char *yaml)
{
    return tw_test_write(g_dir, "task.yaml", yaml);
}

Test(split, fixture_carves_dev_from_train_and_reads_csv_test)
{
    tw_task t;
    load_task("tests/data/task/full.yaml", &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[TW_SPLIT_TRAIN].n + sp[TW_SPLIT_DEV].n, 22);
    cr_assert_geq(sp[TW_SPLIT_DEV].n, 4);
    cr_assert_eq(sp[TW_SPLIT_TEST].n, 4);
    cr_assert_str_eq(sp[TW_SPLIT_TEST].rows[1].input, "Parcel says delivered\nbut nothing here");
    cr_assert_str_eq(sp[TW_SPLIT_TEST].rows[1].slice, "chat");
    cr_assert_str_eq(json_string_value(json_object_get(info, "mode")), "carve_dev");
    cr_assert(json_is_true(json_object_get(info, "stratified")));
    cr_assert_eq(json_integer_value(json_object_get(info, "seed")), 42);
    cr_assert_eq(json_array_size(json_object_get(info, "labels")), 3);
    cr_assert(json_is_false(json_object_get(info, "labels_inferred")));
    cr_assert(json_is_null(json_object_get(json_object_get(info, "files"), "dev")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(info, "counts"), "test")), 4);
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    json_decref(info);
    tw_task_free(&t);
}

Test(split, single_file_is_split_three_ways)
{
    tw_buf b = {0};
    for (int i = 0; i < 300; i++)
        tw_buf_printf(&b, "{\"input\": \"text %d\", \"output\": \"%s\"}\n", i, i % 3 ? "yes" : "no");
    free(tw_test_write(g_dir, "all.jsonl", b.data));
    tw_buf_free(&b);
    char *path = write_task("name: t\ntype: classify\ndata: all.jsonl\nsplit: {seed: 9, dev: 0.2, test: 0.3}\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n, 150);
    cr_assert_eq(sp[1].n, 60);
    cr_assert_eq(sp[2].n, 90);
    cr_assert_eq(count_label(&sp[2], "no"), 30);
    cr_assert_str_eq(json_string_value(json_object_get(info, "mode")), "split_all");
    cr_assert(json_is_true(json_object_get(info, "labels_inferred")));
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    json_decref(info);
    tw_task_free(&t);
    free(path);
}

Test(split, train_and_dev_given_carves_test)
{
    tw_buf b = {0};
    for (int i = 0; i < 100; i++) tw_buf_printf(&b, "{\"input\": \"t %d\", \"output\": \"o %d\"}\n", i, i);
    free(tw_test_write(g_dir, "tr.jsonl", b.data));
    free(tw_test_write(g_dir, "dv.jsonl", "{\"input\": \"d\", \"output\": \"x\"}\n"));
    tw_buf_free(&b);
    char *path = write_task("name: t\ntype: generate\ndata: {train: tr.jsonl, dev: dv.jsonl}\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n, 80);
    cr_assert_eq(sp[1].n, 1);
    cr_assert_eq(sp[2].n, 20);
    cr_assert_str_eq(json_string_value(json_object_get(info, "mode")), "carve_test");
    cr_assert(json_is_false(json_object_get(info, "stratified")));
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    json_decref(info);
    tw_task_free(&t);
    free(path);
}

/* ---- label checks ------------------------------------------------------------------------- */

Test(split, label_outside_declared_set_is_an_error)
{
    free(tw_test_write(g_dir, "tr.jsonl", "{\"input\": \"a\", \"output\": \"pos\"}\n{\"input\": \"b\", \"output\": \"neg\"}\n"));
    free(tw_test_write(g_dir, "te.jsonl", "{\"input\": \"c\", \"output\": \"pos\"}\n\n{\"input\": \"d\", \"output\": \"meh\"}\n"));
    char *path = write_task("name: t\ntype: classify\ndata: {train: tr.jsonl, dev: tr.jsonl, test: te.jsonl}\nlabels: [pos, neg]\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    json_t *info = (json_t *)1;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_ERR_INVALID);
    char want[700];
    snprintf(want, sizeof want, "%s/te.jsonl:3: label 'meh' is not in the task's label set", g_dir);
    cr_assert_str_eq(err.msg, want);
    cr_assert_null(info);
    for (int s = 0; s < 3; s++) cr_assert_eq(sp[s].n, 0);
    tw_task_free(&t);
    free(path);
}

Test(split, unseen_test_label_is_a_warning)
{
    free(tw_test_write(g_dir, "tr.jsonl", "{\"input\": \"a\", \"output\": \"pos\"}\n{\"input\": \"b\", \"output\": \"neg\"}\n"));
    free(tw_test_write(g_dir, "te.jsonl", "{\"input\": \"c\", \"output\": \"pos\"}\n{\"input\": \"d\", \"output\": \"meh\"}\n"
                                          "{\"input\": \"e\", \"output\": \"meh\"}\n"));
    char *path = write_task("name: t\ntype: classify\ndata: {train: tr.jsonl, dev: tr.jsonl, test: te.jsonl}\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    char want[700];
    snprintf(want, sizeof want, "%s/te.jsonl:2: label 'meh' in test never occurs in train (2 rows)", g_dir);
    cr_assert(strstr(g_log, want) != NULL, "log: %s", g_log);
    cr_assert_eq(g_warns, 1);
    cr_assert_eq(json_integer_value(json_object_get(info, "unseen_label_warnings")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(info, "mode")), "given");
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    json_decref(info);
    tw_task_free(&t);
    free(path);
}

Test(split, empty_classify_label_is_an_error)
{
    free(tw_test_write(g_dir, "tr.jsonl", "{\"input\": \"a\", \"output\": \"pos\"}\n{\"input\": \"b\", \"output\": \" \"}\n"));
    char *path = write_task("name: t\ntype: classify\ndata: tr.jsonl\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, NULL, &err), TW_ERR_INVALID);
    char want[700];
    snprintf(want, sizeof want, "%s/tr.jsonl:2: empty output: classify rows need a label", g_dir);
    cr_assert_str_eq(err.msg, want);
    tw_task_free(&t);
    free(path);
}

Test(split, missing_output_in_task_data_is_an_error)
{
    free(tw_test_write(g_dir, "tr.jsonl", "{\"input\": \"a\", \"output\": \"pos\"}\n{\"input\": \"b\"}\n"));
    char *path = write_task("name: t\ntype: classify\ndata: tr.jsonl\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "tr.jsonl:2: missing output field 'output'") != NULL, "%s", err.msg);
    tw_task_free(&t);
    free(path);
}

Test(split, extract_outputs_must_be_json_objects)
{
    /* the fixture: object outputs and a JSON-string output are both fine */
    char abs[1024];
    cr_assert_not_null(realpath("tests/data/task/extract.jsonl", abs));
    char yaml[3300];
    snprintf(yaml, sizeof yaml, "name: t\ntype: extract\ndata: {train: %s, dev: %s, test: %s}\n", abs, abs, abs);
    char *path = write_task(yaml);
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(sp[0].rows[0].output, "{\"city\":\"Rome\",\"party\":2}");
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    free(path);
    free(tw_test_write(g_dir, "bad.jsonl", "{\"input\": \"a\", \"output\": {\"k\": 1}}\n{\"input\": \"b\", \"output\": \"plain words\"}\n"));
    path = write_task("name: t\ntype: extract\ndata: {train: bad.jsonl, dev: bad.jsonl, test: bad.jsonl}\n");
    load_task(path, &t);
    cr_assert_eq(tw_split_task(&t, sp, NULL, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "bad.jsonl:2: output is not a JSON object (extract tasks store the fields to extract as a JSON object): ") != NULL, "%s", err.msg);
    tw_task_free(&t);
    free(path);
}

/* ---- the examples on the real datasets ------------------------------------------------------ */

Test(split, example_sst2_given)
{
    tw_task t;
    load_task("examples/sst2.yaml", &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n, 6920);
    cr_assert_eq(sp[1].n, 872);
    cr_assert_eq(sp[2].n, 1821);
    cr_assert_eq(g_warns, 0, "%s", g_log);
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    json_decref(info);
    tw_task_free(&t);
}

Test(split, example_banking77_carves_dev)
{
    tw_task t;
    load_task("examples/banking77.yaml", &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n + sp[1].n, 10003);
    cr_assert_leq(labs((long)sp[1].n - 1000), 3, "dev has %zu rows", sp[1].n);
    cr_assert_eq(sp[2].n, 3080);
    assert_no_shared_inputs(sp, 2);   /* train vs carved dev */
    cr_assert_eq(json_array_size(json_object_get(info, "labels")), 77);
    /* every label is in the carved dev set and in train */
    char **l;
    size_t nl;
    cr_assert_eq(tw_dataset_labels(&sp[1], &l, &nl, &err), TW_OK);
    cr_assert_eq(nl, 77);
    tw_labels_free(l, nl);
    cr_assert_eq(g_warns, 0, "%s", g_log);
    /* and again: the same split */
    tw_dataset again[3];
    cr_assert_eq(tw_split_task(&t, again, NULL, &err), TW_OK);
    for (int s = 0; s < 3; s++) cr_assert(same_ids(&sp[s], &again[s]));
    for (int s = 0; s < 3; s++) {
        tw_dataset_free(&sp[s]);
        tw_dataset_free(&again[s]);
    }
    json_decref(info);
    tw_task_free(&t);
}

Test(split, example_snips_given)
{
    tw_task t;
    load_task("examples/snips.yaml", &t);
    tw_dataset sp[3];
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n, 13084);
    cr_assert_eq(sp[1].n, 700);
    cr_assert_eq(sp[2].n, 700);
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
}

Test(split, example_e2e_keeps_meaning_representations_together)
{
    tw_task t;
    load_task("examples/e2e.yaml", &t);
    tw_dataset sp[3];
    json_t *info;
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, &info, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n + sp[1].n, 4672);
    cr_assert_leq(labs((long)sp[1].n - 467), 20, "dev has %zu rows", sp[1].n);   /* whole MR groups of ~8 */
    cr_assert_eq(sp[2].n, 630);
    assert_no_shared_inputs(sp, 2);
    cr_assert_geq(sp[2].rows[0].n_refs, 2);
    cr_assert_str_eq(json_string_value(json_object_get(info, "mode")), "carve_dev");
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    json_decref(info);
    tw_task_free(&t);
}

Test(split, too_small_to_carve_warns)
{
    free(tw_test_write(g_dir, "one.jsonl", "{\"input\": \"only\", \"output\": \"a\"}\n"));
    char *path = write_task("name: t\ntype: classify\ndata: one.jsonl\n");
    tw_task t;
    load_task(path, &t);
    tw_dataset sp[3];
    tw_error err;
    cr_assert_eq(tw_split_task(&t, sp, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(sp[0].n, 1);
    cr_assert(strstr(g_log, "one.jsonl: too few rows to carve a dev split (it is empty)") != NULL, "%s", g_log);
    cr_assert(strstr(g_log, "one.jsonl: too few rows to carve a test split (it is empty)") != NULL, "%s", g_log);
    for (int s = 0; s < 3; s++) tw_dataset_free(&sp[s]);
    tw_task_free(&t);
    free(path);
}
