/* test_predictions.c — the shared predictions file: round trip and error paths. */
#include "testutil.h"
#include "task/predictions.h"

#include <math.h>

Test(predictions, write_then_read_round_trip)
{
    char *dir = tw_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/p.jsonl", dir);
    tw_error e;
    tw_pred_writer *w;
    cr_assert_eq(tw_pred_writer_open(&w, path, &e), TW_OK);
    tw_pred p;
    tw_pred_init(&p);
    p.id = "a"; p.input = "x \"quoted\"\n"; p.reference = "pos"; p.prediction = "pos"; p.latency_ms = 12.5; p.tokens_in = 30;
    cr_assert_eq(tw_pred_writer_write(w, &p, &e), TW_OK);
    tw_pred_init(&p);
    p.id = "b"; p.prediction = "neg?"; p.parsed = "neg"; p.valid = false;
    cr_assert_eq(tw_pred_writer_write(w, &p, &e), TW_OK);
    /* nothing visible until close (atomic) */
    cr_assert_not(tw_file_exists(path));
    cr_assert_eq(tw_pred_writer_close(w, &e), TW_OK);

    tw_pred_set s;
    cr_assert_eq(tw_pred_load(&s, path, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.rows[0].input, "x \"quoted\"\n");
    cr_assert_float_eq(s.rows[0].latency_ms, 12.5, 1e-9);
    cr_assert_float_eq(s.rows[0].tokens_in, 30, 1e-9);
    cr_assert(isnan(s.rows[0].tokens_out));
    cr_assert(s.rows[0].valid);
    cr_assert_str_eq(s.rows[1].parsed, "neg");
    cr_assert_not(s.rows[1].valid);
    cr_assert_null(s.rows[1].reference);
    cr_assert_eq(s.rows[1].line, 2);
    tw_pred_set_free(&s);
    free(dir);
}

static void expect_error(const char *content, const char *needle)
{
    char *dir = tw_test_tmpdir();
    char *p = tw_test_write(dir, "bad.jsonl", content);
    tw_pred_set s;
    tw_error e;
    cr_assert_neq(tw_pred_load(&s, p, &e), TW_OK, "accepted: %s", content);
    cr_assert(strstr(e.msg, needle) != NULL, "message '%s' lacks '%s'", e.msg, needle);
    cr_assert(strstr(e.msg, "bad.jsonl") != NULL, "message '%s' lacks the file name", e.msg);
    free(p);
    free(dir);
}

Test(predictions, errors_name_file_and_line)
{
    expect_error("{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"b\"}\n", ":2: missing field 'prediction'");
    expect_error("{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"a\",\"prediction\":\"y\"}\n", ":2: duplicate id 'a' (first seen on line 1)");
    expect_error("{\"id\":\"a\",\"prediction\":\"x\"\n", ":1:");
    expect_error("[1,2]\n", ":1: expected a JSON object");
    expect_error("{\"id\":\"a\",\"prediction\":\"x\",\"latency_ms\":\"fast\"}\n", "'latency_ms' must be a number");
    expect_error("{\"id\":\"a\",\"prediction\":\"\xff\"}\n", "invalid UTF-8");
    expect_error("\n\n", "no predictions");
}

Test(predictions, many_rows_and_numeric_ids)
{
    char *dir = tw_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/p.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 5000; i++) fprintf(f, "{\"id\": %d, \"prediction\": \"l%d\"}\n", i, i % 7);
    fclose(f);
    tw_pred_set s;
    tw_error e;
    cr_assert_eq(tw_pred_load(&s, path, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(s.n, 5000);
    cr_assert_str_eq(s.rows[4999].id, "4999");
    cr_assert_str_eq(s.rows[13].prediction, "l6");
    tw_pred_set_free(&s);
    free(dir);
}
