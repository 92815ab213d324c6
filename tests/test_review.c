/* test_review.c — human review: export determinism (same seed -> identical files, another
 * seed -> another sample), sampling only items common to every run, blinding (slot order
 * varies per item and the key maps each slot back to the right run's answer), spreadsheet
 * formula defusing, and import: ratings un-blinded into per-run means with CIs, folded into
 * metrics.json (and read back by the report loader), with precise errors. */
#include "testutil.h"
#include "report/report.h"
#include "report/review.h"
#include "task/rows.h"

#include <jansson.h>
#include <math.h>

/* Run k answers "ans-k-i" for item i; items 0..n-1 plus, for k == 1, an extra id. */
static char *make_run(const char *root, int k, size_t n)
{
    char dir[1024], p[1100];
    snprintf(dir, sizeof dir, "%s/run%d", root, k);
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(p, sizeof p, "%s/predictions.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "{\"id\":\"item-%zu\",\"input\":\"%s%zu\",\"reference\":\"ref,%zu\",\"prediction\":\"raw\",\"parsed\":\"ans-%d-%zu\"}\n",
                i, i == 3 ? "=HYPERLINK(\\\"x\\\") " : "text \\\"q\\\"\\nline2 ", i, i, k, i);
    if (k == 1) fprintf(f, "{\"id\":\"only-in-run1\",\"input\":\"x\",\"reference\":\"y\",\"prediction\":\"z\"}\n");
    fclose(f);
    snprintf(p, sizeof p, "%s/metrics.json", dir);
    f = fopen(p, "w");
    fprintf(f, "{\"task\": \"classify\", \"n\": %zu, \"primary\": \"accuracy\", \"metrics\": {\"accuracy\": {\"value\": 0.5, \"ci\": [0.4, 0.6]}}}\n", n);
    fclose(f);
    snprintf(p, sizeof p, "%s/run.json", dir);
    f = fopen(p, "w");
    fprintf(f, "{\"arm\": {\"name\": \"arm%d\"}}\n", k);
    fclose(f);
    return strdup(dir);
}

static char *slurp(const char *path)
{
    char *s;
    size_t n;
    tw_error err;
    cr_assert_eq(tw_file_read(path, &s, &n, &err), TW_OK, "%s", err.msg);
    return s;
}

typedef struct fixture {
    char *tmp, *runs[3];
} fixture;

static void setup_runs(fixture *f)
{
    f->tmp = tw_test_tmpdir();
    f->runs[0] = make_run(f->tmp, 0, 40);
    f->runs[1] = make_run(f->tmp, 1, 40);
    f->runs[2] = make_run(f->tmp, 2, 30);   /* items 30..39 are not common */
}

static void teardown_runs(fixture *f)
{
    for (int i = 0; i < 3; i++) free(f->runs[i]);
    free(f->tmp);
}

static void paths(const fixture *f, const char *name, char *csv, char *key)
{
    snprintf(csv, 1100, "%s/%s.csv", f->tmp, name);
    snprintf(key, 1100, "%s/%s.key.json", f->tmp, name);
}

Test(review, export_is_deterministic_and_blinded)
{
    fixture f;
    setup_runs(&f);
    char c1[1100], k1[1100], c2[1100], k2[1100], c3[1100], k3[1100];
    paths(&f, "a", c1, k1);
    paths(&f, "b", c2, k2);
    paths(&f, "c", c3, k3);
    tw_error err;
    size_t w;
    const char *const runs[3] = {f.runs[0], f.runs[1], f.runs[2]};
    cr_assert_eq(tw_review_export(runs, 3, 12, 7, c1, k1, &w, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(w, 12);
    cr_assert_eq(tw_review_export(runs, 3, 12, 7, c2, k2, &w, &err), TW_OK);
    cr_assert_eq(tw_review_export(runs, 3, 12, 8, c3, k3, &w, &err), TW_OK);
    char *a = slurp(c1), *b = slurp(c2), *c = slurp(c3), *ka = slurp(k1), *kb = slurp(k2);
    cr_assert_str_eq(a, b, "same seed, same CSV");
    cr_assert_str_eq(ka, kb, "same seed, same key");
    cr_assert_str_neq(a, c, "another seed, another sample");
    const char *hdr = "item,id,input,reference,answer_A,rating_A,answer_B,rating_B,answer_C,rating_C,notes\r\n";
    cr_assert_eq(strncmp(a, hdr, strlen(hdr)), 0, "%.100s", a);
    cr_assert_null(strstr(a, "run0"), "the CSV does not name the runs");
    cr_assert_null(strstr(a, "arm0"));

    /* parse the CSV back and check every blinded answer against the key */
    json_error_t je;
    json_t *key = json_loads(ka, 0, &je);
    cr_assert_not_null(key);
    json_t *items = json_object_get(key, "items");
    cr_assert_eq(json_array_size(items), 12);
    tw_line_reader lr;
    tw_csv csv = {0};
    csv.max_record = 1 << 20;
    cr_assert_eq(tw_line_reader_open(&lr, c1, 1 << 20, &err), TW_OK);
    cr_assert_eq(tw_csv_next(&csv, &lr, &err), TW_OK);   /* header */
    size_t rows = 0, identity = 0, slot_of_run0[3] = {0, 0, 0};
    bool seen_id[40] = {false};
    while (tw_csv_next(&csv, &lr, &err) == TW_OK) {
        cr_assert_eq(csv.n, 11);
        json_t *it = json_array_get(items, rows);
        cr_assert_eq(strtol(tw_csv_field(&csv, 0), NULL, 10), (long)rows + 1);
        const char *id = tw_csv_field(&csv, 1);
        cr_assert_str_eq(id, json_string_value(json_object_get(it, "id")));
        size_t i = (size_t)strtol(id + 5, NULL, 10);
        cr_assert_lt(i, 30, "only items common to all runs are sampled (got %s)", id);
        cr_assert_not(seen_id[i], "no item twice");
        seen_id[i] = true;
        json_t *order = json_object_get(it, "order");
        bool ident = true;
        for (size_t s = 0; s < 3; s++) {
            long r = (long)json_integer_value(json_array_get(order, s));
            char want[64];
            snprintf(want, sizeof want, "ans-%ld-%zu", r, i);
            cr_assert_str_eq(tw_csv_field(&csv, 4 + 2 * s), want, "slot %zu of item %s", s, id);
            cr_assert_str_eq(tw_csv_field(&csv, 5 + 2 * s), "", "rating columns start empty");
            if (r != (long)s) ident = false;
            if (r == 0) slot_of_run0[s]++;
        }
        identity += ident;
        if (i == 3) {
            cr_assert_eq(tw_csv_field(&csv, 2)[0], '\'', "a leading = is defused");
        } else {
            cr_assert_not_null(strstr(tw_csv_field(&csv, 2), "\"q\"\nline2"), "quotes and newlines survive");
        }
        rows++;
    }
    cr_assert_eq(rows, 12);
    cr_assert_lt(identity, 12, "arm order is shuffled per item");
    cr_assert(slot_of_run0[0] && slot_of_run0[1] && slot_of_run0[2], "run 0 appears in every slot");
    tw_line_reader_close(&lr);
    tw_csv_free(&csv);

    /* asking for more than there is gives all common items */
    cr_assert_eq(tw_review_export(runs, 3, 1000, 7, c3, k3, &w, &err), TW_OK);
    cr_assert_eq(w, 30);
    char *all = slurp(c3);
    cr_assert_not_null(strstr(all, "\"'=HYPERLINK(\"\"x\"\") 3\""), "a formula-looking input is defused: %s", all);
    cr_assert_null(strstr(all, ",=HYPERLINK"));
    cr_assert_null(strstr(all, ",\"=HYPERLINK"));
    free(all);
    json_decref(key);
    free(a); free(b); free(c); free(ka); free(kb);
    teardown_runs(&f);
}

/* Rated CSV: the rating of run r is r + 1 (un-blinded through the key); run 2 is left
 * unrated on the first item. */
static char *rated_csv(const char *key_text, const char *bad_cell)
{
    json_error_t je;
    json_t *key = json_loads(key_text, 0, &je);
    tw_buf b = {0};
    tw_buf_puts(&b, "item,id,rating_A,rating_B,rating_C,notes\n");
    json_t *items = json_object_get(key, "items");
    for (size_t k = 0; k < json_array_size(items); k++) {
        json_t *it = json_array_get(items, k);
        tw_buf_printf(&b, "%zu,%s", k + 1, json_string_value(json_object_get(it, "id")));
        for (size_t s = 0; s < 3; s++) {
            long r = (long)json_integer_value(json_array_get(json_object_get(it, "order"), s));
            if (bad_cell && k == 1 && s == 1) tw_buf_printf(&b, ",%s", bad_cell);
            else if (k == 0 && r == 2) tw_buf_puts(&b, ",");
            else tw_buf_printf(&b, ",%ld", r + 1);
        }
        tw_buf_puts(&b, ",\"a note, with comma\"\n");
    }
    json_decref(key);
    return tw_buf_steal(&b);
}

Test(review, import_folds_ratings_into_metrics)
{
    fixture f;
    setup_runs(&f);
    char c1[1100], k1[1100], rated[1100];
    paths(&f, "a", c1, k1);
    tw_error err;
    size_t w;
    const char *const runs[3] = {f.runs[0], f.runs[1], f.runs[2]};
    cr_assert_eq(tw_review_export(runs, 3, 10, 3, c1, k1, &w, &err), TW_OK);
    char *ktext = slurp(k1), *csv = rated_csv(ktext, NULL);
    snprintf(rated, sizeof rated, "%s/rated.csv", f.tmp);
    cr_assert_eq(tw_file_write_atomic(rated, csv, strlen(csv), &err), TW_OK);

    char mpath[1100];
    snprintf(mpath, sizeof mpath, "%s/metrics.json", f.runs[0]);
    char *before = slurp(mpath);
    tw_review_summary s;
    cr_assert_eq(tw_review_import(rated, k1, true, &s, &err), TW_OK, "%s", err.msg);
    char *after_dry = slurp(mpath);
    cr_assert_str_eq(before, after_dry, "dry run leaves metrics.json alone");
    cr_assert_eq(s.n_runs, 3);
    cr_assert_eq(s.n_rated[0], 10);
    cr_assert_eq(s.n_rated[2], 9, "one blank rating");
    cr_assert_float_eq(s.mean[0], 1, 1e-12);
    cr_assert_float_eq(s.mean[1], 2, 1e-12);
    cr_assert_float_eq(s.mean[2], 3, 1e-12);
    cr_assert_float_eq(s.lo[1], 2, 1e-12);

    cr_assert_eq(tw_review_import(rated, k1, false, &s, &err), TW_OK, "%s", err.msg);
    tw_report r;
    tw_report_init(&r, NULL, &err);
    for (int i = 0; i < 3; i++) cr_assert_eq(tw_report_add_run(&r, f.runs[i], &err), TW_OK, "%s", err.msg);
    cr_assert_eq(r.arms[1].n_rated, 10);
    cr_assert_float_eq(r.arms[1].review_mean, 2, 1e-12);
    cr_assert_eq(r.arms[2].n_rated, 9);
    cr_assert_float_eq(r.arms[0].metric, 0.5, 1e-12, "the rest of metrics.json is kept");
    tw_buf md = {0};
    cr_assert_eq(tw_report_markdown(&md, &r, &err), TW_OK);
    cr_assert_not_null(strstr(md.data, "## Human review"));
    cr_assert_not_null(strstr(md.data, "| run2 | 9 | 3.000 |"), "%s", md.data);
    tw_buf_free(&md);
    tw_report_free(&r);
    free(before); free(after_dry); free(csv);

    /* errors name the line and column */
    csv = rated_csv(ktext, "great");
    cr_assert_eq(tw_file_write_atomic(rated, csv, strlen(csv), &err), TW_OK);
    cr_assert_eq(tw_review_import(rated, k1, true, &s, &err), TW_ERR_INVALID);
    cr_assert_not_null(strstr(err.msg, "rated.csv:3: column rating_B: 'great' is not a number"), "%s", err.msg);
    free(csv);
    const char *wrong = "item,id,rating_A,rating_B,rating_C\n1,not-the-id,1,1,1\n";
    cr_assert_eq(tw_file_write_atomic(rated, wrong, strlen(wrong), &err), TW_OK);
    cr_assert_eq(tw_review_import(rated, k1, true, &s, &err), TW_ERR_INVALID);
    cr_assert_not_null(strstr(err.msg, "wrong key file?"), "%s", err.msg);
    const char *missing = "item,id,rating_A,rating_B\n";
    cr_assert_eq(tw_file_write_atomic(rated, missing, strlen(missing), &err), TW_OK);
    cr_assert_eq(tw_review_import(rated, k1, true, &s, &err), TW_ERR_PARSE);
    cr_assert_not_null(strstr(err.msg, "missing column rating_C"), "%s", err.msg);
    /* a tampered key cannot make one run count twice per item */
    char *bad = strdup(ktext), *o = strstr(bad, "\"order\"");
    cr_assert_not_null(o);
    char *lb = strchr(o, '[');
    int digits = 0;
    for (char *q = lb; *q && *q != ']'; q++)
        if (*q >= '0' && *q <= '9') { *q = '0'; digits++; }
    cr_assert_eq(digits, 3);
    cr_assert_eq(tw_file_write_atomic(k1, bad, strlen(bad), &err), TW_OK);
    csv = rated_csv(ktext, NULL);
    cr_assert_eq(tw_file_write_atomic(rated, csv, strlen(csv), &err), TW_OK);
    cr_assert_eq(tw_review_import(rated, k1, true, &s, &err), TW_ERR_PARSE);
    cr_assert_not_null(strstr(err.msg, "is not a permutation"), "%s", err.msg);
    free(csv);
    free(bad);
    free(ktext);
    teardown_runs(&f);
}

Test(review, export_errors)
{
    char *tmp = tw_test_tmpdir();
    char csv[1100], key[1100];
    snprintf(csv, sizeof csv, "%s/x.csv", tmp);
    snprintf(key, sizeof key, "%s/x.key.json", tmp);
    tw_error err;
    size_t w;
    const char *const none[1] = {tmp};
    cr_assert_eq(tw_review_export(none, 1, 5, 1, csv, key, &w, &err), TW_ERR_IO);
    cr_assert_not_null(strstr(err.msg, "predictions.jsonl"), "%s", err.msg);
    cr_assert_eq(tw_review_export(none, 0, 5, 1, csv, key, &w, &err), TW_ERR_INVALID);
    cr_assert_not(tw_file_exists(csv));
    free(tmp);
}

/* The CLI: export then import through `tunewise review`, key file beside the CSV. */
Test(review, cli_round_trip)
{
    char cmd[4096], *out, *err_text;
    snprintf(cmd, sizeof cmd, "%s help review export && %s help review import", tw_test_bin(), tw_test_bin());
    if (tw_test_run(cmd, NULL, NULL) != 0)
        cr_assert_fail("'tunewise review export/import' are not registered in %s: add cmd_review_export and cmd_review_import to "
                       "tools/tunewise/main.c COMMANDS and cli.h", tw_test_bin());
    fixture f;
    setup_runs(&f);
    snprintf(cmd, sizeof cmd, "%s review export %s %s --n 5 --seed 2 -o %s/r.csv", tw_test_bin(), f.runs[0], f.runs[1], f.tmp);
    cr_assert_eq(tw_test_run(cmd, &out, &err_text), 0, "%s %s", out, err_text);
    cr_assert_not_null(strstr(out, "wrote 5 items x 2 blinded answers"), "%s", out);
    free(out); free(err_text);
    char key[1100], csvp[1100];
    snprintf(key, sizeof key, "%s/r.key.json", f.tmp);
    snprintf(csvp, sizeof csvp, "%s/r.csv", f.tmp);
    cr_assert(tw_file_exists(key), "the key goes beside the CSV");
    /* rate every answer 1 on slot A and 0 on slot B */
    json_error_t je;
    json_t *k = json_load_file(key, 0, &je);
    tw_buf b = {0};
    tw_buf_puts(&b, "item,id,rating_A,rating_B\n");
    for (size_t i = 0; i < json_array_size(json_object_get(k, "items")); i++)
        tw_buf_printf(&b, "%zu,%s,1,0\n", i + 1, json_string_value(json_object_get(json_array_get(json_object_get(k, "items"), i), "id")));
    json_decref(k);
    tw_error err;
    cr_assert_eq(tw_file_write_atomic(csvp, b.data, b.len, &err), TW_OK);
    tw_buf_free(&b);
    snprintf(cmd, sizeof cmd, "%s review import %s --json", tw_test_bin(), csvp);
    cr_assert_eq(tw_test_run(cmd, &out, &err_text), 0, "%s %s", out, err_text);
    json_t *s = json_loads(out, 0, &je);
    cr_assert_not_null(s, "%s", out);
    double m0 = json_real_value(json_object_get(json_array_get(s, 0), "mean"));
    double m1 = json_real_value(json_object_get(json_array_get(s, 1), "mean"));
    cr_assert_float_eq(m0 + m1, 1.0, 1e-12, "slot ratings 1/0 split between the two runs by the key: %s", out);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(s, 0), "n")), 5);
    json_decref(s);
    free(out); free(err_text);
    snprintf(cmd, sizeof cmd, "%s review import %s/missing.csv", tw_test_bin(), f.tmp);
    cr_assert_eq(tw_test_run(cmd, NULL, NULL), 2);
    teardown_runs(&f);
}
