/* test_dataset.c — the dataset readers and writers (src/task/dataset.c, csv.c, chat.c):
 * JSONL / CSV / chat JSONL parsing, field mapping, value conversion, every error path with
 * its message, writers and round trips, flat memory while streaming, and the real datasets
 * in ../shared/data. */
#include "testutil.h"
#include "task/dataset.h"

#include <math.h>

/* ---- helpers ---------------------------------------------------------------- */

static char g_log[1 << 16];
static int g_warns;
static void capture_log(tw_log_level level, const char *msg, void *user)
{
    (void)user;
    if (level == TW_LOG_WARN) g_warns++;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", msg);
}
static void capture_init(void)
{
    g_log[0] = '\0';
    g_warns = 0;
    tw_log_set_hook(capture_log, NULL);
}

static char *g_dir;
static void setup_dir(void) { g_dir = tw_test_tmpdir(); capture_init(); }
static void teardown_dir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) cr_log_warn("cleanup failed");
    free(g_dir);
}

/* Write `text` to g_dir/name and load it; returns the status, err filled. */
static tw_status load(const char *name, const char *text, const tw_reader_params *p, tw_dataset *ds, tw_error *err)
{
    char *path = tw_test_write(g_dir, name, text);
    tw_error_clear(err);
    tw_status st = tw_dataset_load(ds, path, p, err);
    free(path);
    return st;
}

/* Load text expecting an error; assert the message contains `want` (after the dir). */
static void expect_error(const char *name, const char *text, const tw_reader_params *p, const char *want)
{
    tw_dataset ds;
    tw_error err;
    tw_status st = load(name, text, p, &ds, &err);
    cr_assert_neq(st, TW_OK, "expected an error containing \"%s\"", want);
    cr_assert(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"", err.msg, want);
    /* every message starts with the file's path */
    cr_assert(strncmp(err.msg, g_dir, strlen(g_dir)) == 0, "message \"%s\" does not start with the path", err.msg);
}

static tw_reader_params req_params(void)
{
    tw_reader_params p = tw_reader_default_params();
    p.require_output = true;
    return p;
}

static char *shared_path(const char *rel)
{
    size_t n = strlen(tw_test_shared()) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", tw_test_shared(), rel);
    return p;
}

/* ---- JSONL ------------------------------------------------------------------------ */

TestSuite(jsonl, .init = setup_dir, .fini = teardown_dir);

Test(jsonl, basic_fields_extra_blank_lines_bom)
{
    tw_dataset ds;
    tw_error err;
    const char *text = "\xEF\xBB\xBF{\"id\": \"a1\", \"input\": \"hello\", \"output\": \"greet\", \"lang\": \"en\", \"n\": 3}\n"
                       "\n   \n"
                       "{\"input\": \"bye\", \"output\": \"leave\", \"slice\": \"short\"}\r\n"
                       "{\"input\": \"caf\xC3\xA9\", \"output\": \"order\", \"tags\": [\"food\", \"x\"]}";   /* no final newline */
    cr_assert_eq(load("d.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 3);
    cr_assert_str_eq(ds.rows[0].id, "a1");
    cr_assert_str_eq(ds.rows[0].input, "hello");
    cr_assert_str_eq(ds.rows[0].output, "greet");
    cr_assert_eq(ds.rows[0].line, 1);
    cr_assert_not_null(ds.rows[0].extra);
    cr_assert_eq(json_object_size(ds.rows[0].extra), 2);
    cr_assert_str_eq(json_string_value(json_object_get(ds.rows[0].extra, "lang")), "en");
    cr_assert_eq(json_integer_value(json_object_get(ds.rows[0].extra, "n")), 3);
    /* default id: basename:line; blank lines counted in line numbers */
    cr_assert_str_eq(ds.rows[1].id, "d.jsonl:4");
    cr_assert_eq(ds.rows[1].line, 4);
    cr_assert_str_eq(ds.rows[1].slice, "short");
    cr_assert_null(ds.rows[1].extra);
    cr_assert_str_eq(ds.rows[2].input, "caf\xC3\xA9");
    cr_assert_str_eq(ds.rows[2].slice, "food");   /* first of tags */
    cr_assert_not_null(json_object_get(ds.rows[2].extra, "tags"));
    tw_dataset_free(&ds);
}

Test(jsonl, custom_field_names)
{
    tw_reader_params p = req_params();
    p.fields.input = "text";
    p.fields.output = "label";
    p.fields.id = "uid";
    tw_dataset ds;
    tw_error err;
    cr_assert_eq(load("c.jsonl", "{\"uid\": 7, \"text\": \"hi\", \"label\": \"pos\", \"input\": \"kept\"}\n", &p, &ds,
                      &err),
                 TW_OK, "%s", err.msg);
    cr_assert_str_eq(ds.rows[0].id, "7");   /* integer ids become text */
    cr_assert_str_eq(ds.rows[0].input, "hi");
    cr_assert_str_eq(ds.rows[0].output, "pos");
    cr_assert_str_eq(json_string_value(json_object_get(ds.rows[0].extra, "input")), "kept");
    tw_dataset_free(&ds);
}

Test(jsonl, output_values_are_converted)
{
    tw_dataset ds;
    tw_error err;
    const char *text = "{\"input\": \"a\", \"output\": 42}\n"
                       "{\"input\": \"b\", \"output\": 0.1}\n"
                       "{\"input\": \"c\", \"output\": true}\n"
                       "{\"input\": \"d\", \"output\": {\"name\": \"Ann\", \"ages\": [1, 2.5], \"ok\": false}}\n"
                       "{\"input\": \"e\", \"output\": [\"x\", null]}\n"
                       "{\"input\": \"f\", \"output\": null}\n"
                       "{\"input\": \"g\"}\n"
                       "{\"input\": \"h\", \"output\": -1e300}\n";
    cr_assert_eq(load("v.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(ds.rows[0].output, "42");
    cr_assert_str_eq(ds.rows[1].output, "0.1");
    cr_assert_str_eq(ds.rows[2].output, "true");
    cr_assert_str_eq(ds.rows[3].output, "{\"name\":\"Ann\",\"ages\":[1,2.5],\"ok\":false}");
    cr_assert_str_eq(ds.rows[4].output, "[\"x\",null]");
    cr_assert_null(ds.rows[5].output);
    cr_assert_null(ds.rows[6].output);
    cr_assert_str_eq(ds.rows[7].output, "-1e+300");
    tw_dataset_free(&ds);
}

Test(jsonl, references_list_and_first_reference_as_output)
{
    tw_dataset ds;
    tw_error err;
    const char *text = "{\"input\": \"mr\", \"references\": [\"one\", \"two\"]}\n"
                       "{\"input\": \"mr2\", \"output\": \"own\", \"references\": \"single\"}\n";
    cr_assert_eq(load("r.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.rows[0].n_refs, 2);
    cr_assert_str_eq(ds.rows[0].refs[1], "two");
    cr_assert_str_eq(ds.rows[0].output, "one");
    cr_assert_eq(ds.rows[1].n_refs, 1);
    cr_assert_str_eq(ds.rows[1].output, "own");
    tw_dataset_free(&ds);
}

Test(jsonl, error_invalid_utf8_with_byte_offset)
{
    expect_error("u.jsonl", "{\"input\": \"ok\", \"output\": \"x\"}\n{\"input\": \"ab\xFF\"}\n", NULL,
                 "u.jsonl:2: invalid UTF-8 at byte offset 13 of the line");
    /* a truncated multi-byte sequence and an overlong encoding */
    expect_error("u2.jsonl", "{\"input\": \"\xE2\x82\"}\n", NULL, "u2.jsonl:1: invalid UTF-8 at byte offset 11");
    expect_error("u3.jsonl", "{\"input\": \"\xC0\xAF\"}\n", NULL, "u3.jsonl:1: invalid UTF-8 at byte offset 11");
}

Test(jsonl, error_broken_json_with_position)
{
    expect_error("b.jsonl", "{\"input\": \"a\", \"output\": \"b\"}\n{\"input\": \"a\",, \"output\": \"b\"}\n", NULL,
                 "b.jsonl:2:15: invalid JSON: ");
    expect_error("b2.jsonl", "{\"input\": \"unterminated}\n", NULL, "b2.jsonl:1:");
    expect_error("b3.jsonl", "{\"input\": \"a\", \"input\": \"b\"}\n", NULL, "duplicate object key");
    expect_error("b4.jsonl", "{\"input\": \"a\"} trailing\n", NULL, "b4.jsonl:1:");
}

Test(jsonl, error_not_an_object)
{
    expect_error("n.jsonl", "[1, 2]\n", NULL, "n.jsonl:1: expected a JSON object, got a list");
    expect_error("n2.jsonl", "{\"input\": \"a\"}\n\"just text\"\n", NULL, "n2.jsonl:2: expected a JSON object, got a string");
}

Test(jsonl, error_missing_fields)
{
    tw_reader_params p = req_params();
    expect_error("m.jsonl", "{\"text\": \"a\", \"output\": \"x\"}\n", &p, "m.jsonl:1: missing input field 'input'");
    expect_error("m2.jsonl", "{\"input\": \"a\", \"output\": \"x\"}\n{\"input\": \"b\"}\n", &p,
                 "m2.jsonl:2: missing output field 'output'");
    expect_error("m3.jsonl", "{\"input\": \"a\", \"output\": null}\n", &p, "m3.jsonl:1: output field 'output' is null");
    p.fields.output = "label";
    expect_error("m4.jsonl", "{\"input\": \"a\", \"output\": \"x\"}\n", &p, "m4.jsonl:1: missing output field 'label'");
}

Test(jsonl, error_wrong_field_types)
{
    expect_error("t.jsonl", "{\"input\": 5}\n", NULL, "t.jsonl:1: field 'input' (the input) must be a string, got a number");
    expect_error("t2.jsonl", "{\"input\": {\"a\": 1}}\n", NULL, "field 'input' (the input) must be a string, got an object");
    expect_error("t3.jsonl", "{\"id\": [1], \"input\": \"a\"}\n", NULL,
                 "t3.jsonl:1: field 'id' (the id) must be a string or an integer, got a list");
    expect_error("t4.jsonl", "{\"input\": \"a\", \"references\": [\"a\", 3]}\n", NULL,
                 "t4.jsonl:1: references[1] must be a string, got a number");
    expect_error("t5.jsonl", "{\"input\": \"a\", \"references\": {}}\n", NULL,
                 "field 'references' must be a list of strings, got an object");
    expect_error("t6.jsonl", "{\"input\": \"a\", \"slice\": 3}\n", NULL, "field 'slice' (the slice) must be a string");
}

Test(jsonl, error_empty_file)
{
    expect_error("e.jsonl", "", NULL, "e.jsonl: no examples");
    expect_error("e2.jsonl", "\n\n  \n", NULL, "e2.jsonl: no examples");
}

Test(jsonl, error_missing_file)
{
    tw_dataset ds;
    tw_error err;
    cr_assert_eq(tw_dataset_load(&ds, "/nonexistent/x.jsonl", NULL, &err), TW_ERR_IO);
    cr_assert(strstr(err.msg, "/nonexistent/x.jsonl: cannot open") != NULL, "%s", err.msg);
}

Test(jsonl, error_line_longer_than_limit)
{
    /* a 10 MB line against the default 8 MiB limit */
    size_t big = 10u << 20;
    char *text = malloc(big + 64);
    strcpy(text, "{\"input\": \"");
    size_t n = strlen(text);
    memset(text + n, 'a', big);
    strcpy(text + n + big, "\"}\n");
    expect_error("big.jsonl", text, NULL, "big.jsonl:1: line is longer than the limit of 8388608 bytes");
    free(text);
    /* configurable: 100 bytes; the message says how to raise it */
    tw_reader_params p = tw_reader_default_params();
    p.max_line = 100;
    char line[400];
    snprintf(line, sizeof line, "{\"input\": \"short\"}\n{\"input\": \"%0200d\"}\n", 0);
    expect_error("lim.jsonl", line, &p, "lim.jsonl:2: line is longer than the limit of 100 bytes (raise it with");
}

Test(jsonl, duplicate_ids_warn)
{
    tw_dataset ds;
    tw_error err;
    const char *text = "{\"id\": \"a\", \"input\": \"1\"}\n{\"id\": \"b\", \"input\": \"2\"}\n{\"id\": \"a\", \"input\": \"3\"}\n";
    cr_assert_eq(load("dup.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 3);
    cr_assert_eq(g_warns, 1);
    cr_assert(strstr(g_log, "dup.jsonl:3: duplicate id 'a' (first seen at line 1)") != NULL, "%s", g_log);
    tw_dataset_free(&ds);
}

Test(jsonl, many_distinct_ids_no_warning)
{
    tw_buf b = {0};
    for (int i = 0; i < 5000; i++) tw_buf_printf(&b, "{\"id\": \"r%d\", \"input\": \"x\"}\n", i);
    tw_dataset ds;
    tw_error err;
    cr_assert_eq(load("ids.jsonl", b.data, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 5000);
    cr_assert_eq(g_warns, 0, "%s", g_log);
    tw_dataset_free(&ds);
    tw_buf_free(&b);
}

Test(jsonl, reader_reports_format_and_errors_leave_no_row)
{
    char *path = tw_test_write(g_dir, "f.jsonl", "{\"input\": \"a\"}\n{\"input\": 1}\n");
    tw_reader *r;
    tw_error err;
    cr_assert_eq(tw_reader_open(&r, path, NULL, &err), TW_OK);
    cr_assert_eq(tw_reader_format(r), TW_FORMAT_JSONL);
    const tw_example *ex;
    cr_assert_eq(tw_reader_next(r, &ex, &err), TW_OK);
    cr_assert_str_eq(ex->input, "a");
    cr_assert_eq(tw_reader_next(r, &ex, &err), TW_ERR_INVALID);
    tw_reader_free(r);
    tw_reader_free(NULL);
    free(path);
}

/* ---- CSV --------------------------------------------------------------------------- */

TestSuite(csv, .init = setup_dir, .fini = teardown_dir);

Test(csv, rfc4180_quotes_escapes_newlines_crlf_bom)
{
    tw_dataset ds;
    tw_error err;
    const char *text = "\xEF\xBB\xBFid,input,output,note\r\n"
                       "1,\"hello, world\",greet,\"say \"\"hi\"\"\"\r\n"
                       "2,\"line one\r\nline two\",multi,\r\n"
                       "\r\n"
                       "3,plain,\"\",x\r\n"
                       ",unquoted \"inner\" quote,q,\"\"\n";
    cr_assert_eq(load("d.csv", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 4);
    cr_assert_str_eq(ds.rows[0].id, "1");
    cr_assert_str_eq(ds.rows[0].input, "hello, world");
    cr_assert_str_eq(ds.rows[0].output, "greet");
    cr_assert_str_eq(json_string_value(json_object_get(ds.rows[0].extra, "note")), "say \"hi\"");
    cr_assert_eq(ds.rows[0].line, 2);
    cr_assert_str_eq(ds.rows[1].input, "line one\nline two");
    cr_assert_eq(ds.rows[1].line, 3);
    cr_assert_str_eq(json_string_value(json_object_get(ds.rows[1].extra, "note")), "");
    cr_assert_eq(ds.rows[2].line, 6);   /* after the two-line record and a blank line */
    cr_assert_null(ds.rows[2].output);  /* empty cell = no output */
    cr_assert_str_eq(ds.rows[3].id, "d.csv:7");
    cr_assert_str_eq(ds.rows[3].input, "unquoted \"inner\" quote");
    tw_dataset_free(&ds);
}

Test(csv, custom_columns_references_slice)
{
    tw_reader_params p = req_params();
    p.fields.input = "text";
    p.fields.output = "label";
    tw_dataset ds;
    tw_error err;
    const char *text = "text,label,references,slice\n"
                       "a,x,\"[\"\"r1\"\",\"\"r2\"\"]\",s1\n"
                       "b,,plain ref,\n";
    cr_assert_eq(load("c.csv", text, &p, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.rows[0].n_refs, 2);
    cr_assert_str_eq(ds.rows[0].refs[1], "r2");
    cr_assert_str_eq(ds.rows[0].slice, "s1");
    cr_assert_null(ds.rows[0].extra);
    cr_assert_str_eq(ds.rows[1].output, "plain ref");   /* first reference stands in */
    cr_assert_null(ds.rows[1].slice);
    tw_dataset_free(&ds);
}

Test(csv, error_unterminated_quote)
{
    expect_error("u.csv", "input,output\na,b\n\"never closed,x\nmore\n", NULL,
                 "u.csv:3:1: unterminated quoted field (the quote opened here never closes)");
    expect_error("u2.csv", "input,output\nab,\"x\n", NULL, "u2.csv:2:4: unterminated quoted field");
}

Test(csv, error_wrong_field_count)
{
    expect_error("w.csv", "input,output,extra\na,b,c\nd,e\n", NULL, "w.csv:3: CSV record has 2 fields, the header has 3");
    expect_error("w2.csv", "input,output\na,b,c\n", NULL, "w2.csv:2: CSV record has 3 fields, the header has 2");
}

Test(csv, error_text_after_closing_quote)
{
    expect_error("t.csv", "input,output\n\"ab\"c,d\n", NULL, "t.csv:2:5: unexpected character 'c' after a closing quote");
}

Test(csv, error_header_problems)
{
    tw_reader_params p = req_params();
    expect_error("h.csv", "text,output\na,b\n", &p, "h.csv:1: the header has no 'input' column (the first record names the columns; found: 'text', 'output')");
    expect_error("h2.csv", "input,label\na,b\n", &p, "h2.csv:1: the header has no 'output' column");
    expect_error("h3.csv", "input,output,input\na,b,c\n", &p, "h3.csv:1: duplicate column 'input' in the header");
    expect_error("h4.csv", "input,output\na,\n", &p, "h4.csv:2: missing output (column 'output' is empty)");
}

Test(csv, error_invalid_utf8_and_nul)
{
    expect_error("x.csv", "input,output\nok,fine\n\"caf\xE9\",x\n", NULL, "x.csv:3:5: invalid UTF-8 at byte offset 4 of the line");
    expect_error("x2.csv", "input,output\na\0b,c\n", NULL, "x2.csv:2");
}

Test(csv, error_empty_and_header_only)
{
    expect_error("e.csv", "", NULL, "e.csv: no examples");
    expect_error("e2.csv", "input,output\r\n", NULL, "e2.csv: no examples");
}

Test(csv, record_limit_is_enforced_across_lines)
{
    tw_reader_params p = tw_reader_default_params();
    p.max_line = 64;
    tw_buf b = {0};
    tw_buf_puts(&b, "input,output\n\"");
    for (int i = 0; i < 20; i++) tw_buf_puts(&b, "0123456789\n");   /* a quote that swallows the file */
    expect_error("l.csv", b.data, &p, "l.csv:2: CSV record longer than the limit of 64 bytes (is the quote opened at line 2, column 1 unterminated?)");
    tw_buf_free(&b);
}

/* ---- chat JSONL ---------------------------------------------------------------------- */

TestSuite(chat, .init = setup_dir, .fini = teardown_dir);

Test(chat, single_turn_autodetected)
{
    tw_dataset ds;
    tw_error err;
    const char *text =
        "{\"id\": \"c1\", \"messages\": [{\"role\": \"system\", \"content\": \"Classify.\"}, "
        "{\"role\": \"user\", \"content\": \"I lost my card\"}, {\"role\": \"assistant\", \"content\": \"lost_card\", \"weight\": 1}], \"src\": \"web\"}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"part one, \"}, {\"type\": \"text\", \"text\": \"part two\"}]}, "
        "{\"role\": \"assistant\", \"content\": \"ok\"}]}\n";
    char *path = tw_test_write(g_dir, "c.jsonl", text);
    tw_reader *r;
    cr_assert_eq(tw_reader_open(&r, path, NULL, &err), TW_OK);
    cr_assert_eq(tw_reader_format(r), TW_FORMAT_CHAT);
    tw_reader_free(r);
    free(path);
    cr_assert_eq(load("c.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds.n, 2);
    cr_assert_str_eq(ds.rows[0].id, "c1");
    cr_assert_str_eq(ds.rows[0].system, "Classify.");
    cr_assert_str_eq(ds.rows[0].input, "I lost my card");
    cr_assert_str_eq(ds.rows[0].output, "lost_card");
    cr_assert_str_eq(json_string_value(json_object_get(ds.rows[0].extra, "src")), "web");
    cr_assert_null(json_object_get(ds.rows[0].extra, "messages"));
    cr_assert_null(ds.rows[1].system);
    cr_assert_str_eq(ds.rows[1].input, "part one, part two");
    tw_dataset_free(&ds);
}

Test(chat, multi_turn_and_unanswered)
{
    tw_reader_params p = tw_reader_default_params();
    p.format = TW_FORMAT_CHAT;
    tw_dataset ds;
    tw_error err;
    const char *text =
        "{\"messages\": [{\"role\": \"system\", \"content\": \"A\"}, {\"role\": \"system\", \"content\": \"B\"}, "
        "{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}, "
        "{\"role\": \"user\", \"content\": \"book a table\"}, {\"role\": \"assistant\", \"content\": \"done\"}]}\n"
        "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer yet\"}]}\n";
    cr_assert_eq(load("m.data", text, &p, &ds, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(ds.rows[0].system, "A\n\nB");
    cr_assert_str_eq(ds.rows[0].input, "User: hi\n\nAssistant: hello\n\nUser: book a table");
    cr_assert_str_eq(ds.rows[0].output, "done");
    json_t *turns = json_object_get(ds.rows[0].extra, "messages");
    cr_assert_eq(json_array_size(turns), 3);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(turns, 1), "role")), "assistant");
    cr_assert_str_eq(ds.rows[1].input, "no answer yet");
    cr_assert_null(ds.rows[1].output);
    tw_dataset_free(&ds);
}

Test(chat, errors)
{
    tw_reader_params p = req_params();
    p.format = TW_FORMAT_CHAT;
    expect_error("e1.jsonl", "{\"conversation\": []}\n", &p, "e1.jsonl:1: missing 'messages' list");
    expect_error("e2.jsonl", "{\"messages\": {}}\n", &p, "e2.jsonl:1: 'messages' must be a list, got an object");
    expect_error("e3.jsonl", "{\"messages\": []}\n", &p, "e3.jsonl:1: 'messages' is empty");
    expect_error("e4.jsonl", "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}\n", &p,
                 "e4.jsonl:1: messages[0]: unsupported role 'tool' (expected system, user or assistant)");
    expect_error("e5.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}\n", &p,
                 "e5.jsonl:1: messages[0].content must be a string or a list of text parts, got a number");
    expect_error("e6.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n", &p,
                 "e6.jsonl:1: missing output: the conversation does not end with an assistant message");
    expect_error("e7.jsonl", "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n", &p,
                 "e7.jsonl:1: no user message before the assistant's answer");
    expect_error("e8.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n", &p,
                 "e8.jsonl:1: messages[0].content[0]: only {\"type\": \"text\", \"text\": ...} parts are supported (got type 'image_url')");
    expect_error("e9.jsonl", "{\"messages\": [\"hi\"]}\n", &p, "e9.jsonl:1: messages[0] must be an object, got a string");
    expect_error("e10.jsonl", "{\"messages\": [{\"content\": \"hi\"}]}\n", &p, "e10.jsonl:1: messages[0].role must be a string, got nothing");
    expect_error("e11.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": null}]}\n", &p,
                 "e11.jsonl:1: messages[1].content must be a string or a list of text parts, got null");
}

/* ---- writers -------------------------------------------------------------------------- */

TestSuite(writer, .init = setup_dir, .fini = teardown_dir);

static void path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

Test(writer, jsonl_round_trip)
{
    tw_dataset ds;
    tw_error err;
    const char *text =
        "{\"id\": \"a\", \"input\": \"x, \\\"y\\\"\\nz\", \"output\": {\"k\": [1, 2]}, \"intent\": \"I\", \"bio\": \"O B\"}\n"
        "{\"id\": \"b\", \"input\": \"mr\", \"references\": [\"r1\", \"r2\"], \"slice\": \"s\"}\n";
    cr_assert_eq(load("src.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    char out[512];
    path_in(out, sizeof out, "out.jsonl");
    cr_assert_eq(tw_dataset_write(&ds, out, TW_FORMAT_JSONL, NULL, &err), TW_OK, "%s", err.msg);
    tw_dataset back;
    cr_assert_eq(tw_dataset_load(&back, out, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(back.n, 2);
    for (size_t i = 0; i < 2; i++) {
        cr_assert_str_eq(back.rows[i].id, ds.rows[i].id);
        cr_assert_str_eq(back.rows[i].input, ds.rows[i].input);
        cr_assert_str_eq(back.rows[i].output, ds.rows[i].output);
        cr_assert_eq(back.rows[i].n_refs, ds.rows[i].n_refs);
        cr_assert(json_equal(back.rows[i].extra, ds.rows[i].extra) || (!back.rows[i].extra && !ds.rows[i].extra));
    }
    cr_assert_str_eq(back.rows[0].output, "{\"k\":[1,2]}");
    cr_assert_str_eq(back.rows[1].refs[1], "r2");
    cr_assert_str_eq(back.rows[1].slice, "s");
    tw_dataset_free(&back);
    tw_dataset_free(&ds);
}

Test(writer, csv_round_trip)
{
    tw_dataset ds = {0};
    tw_error err;
    tw_example ex = {.id = "1", .input = "comma, \"quote\"\nnewline", .output = "lab", .slice = "s"};
    cr_assert_eq(tw_dataset_push(&ds, &ex, &err), TW_OK);
    char *refs[] = {"r,1", "r\"2"};
    tw_example ex2 = {.id = "2", .input = "plain", .output = "r,1", .refs = refs, .n_refs = 2};
    cr_assert_eq(tw_dataset_push(&ds, &ex2, &err), TW_OK);
    char out[512];
    path_in(out, sizeof out, "out.csv");
    cr_assert_eq(tw_dataset_write(&ds, out, TW_FORMAT_AUTO, NULL, &err), TW_OK, "%s", err.msg);
    tw_dataset back;
    cr_assert_eq(tw_dataset_load(&back, out, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(back.n, 2);
    cr_assert_str_eq(back.rows[0].input, ex.input);
    cr_assert_str_eq(back.rows[0].slice, "s");
    cr_assert_eq(back.rows[1].n_refs, 2);
    cr_assert_str_eq(back.rows[1].refs[1], "r\"2");
    cr_assert_eq(back.rows[1].line, 4);   /* the first record spans lines 2-3 */
    tw_dataset_free(&back);
    tw_dataset_free(&ds);
}

Test(writer, chat_round_trip_with_default_system)
{
    tw_error err;
    char out[512];
    path_in(out, sizeof out, "chat.jsonl");
    tw_writer *w;
    cr_assert_eq(tw_writer_open(&w, out, TW_FORMAT_CHAT, NULL, &err), TW_OK);
    cr_assert_eq(tw_writer_set_system(w, "You label intents.", &err), TW_OK);
    tw_example a = {.id = "a", .input = "card lost", .output = "lost_card"};
    tw_example b = {.id = "b", .input = "hi", .output = "greet", .system = "Own system"};
    cr_assert_eq(tw_writer_write(w, &a, &err), TW_OK);
    cr_assert_eq(tw_writer_write(w, &b, &err), TW_OK);
    cr_assert_eq(tw_writer_close(w, &err), TW_OK, "%s", err.msg);
    char *text;
    size_t len;
    cr_assert_eq(tw_file_read(out, &text, &len, &err), TW_OK);
    cr_assert(strstr(text, "{\"messages\":[{\"role\":\"system\",\"content\":\"You label intents.\"},"
                           "{\"role\":\"user\",\"content\":\"card lost\"},{\"role\":\"assistant\",\"content\":\"lost_card\"}]}\n") == text,
              "%s", text);
    free(text);
    tw_dataset back;
    cr_assert_eq(tw_dataset_load(&back, out, NULL, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(back.rows[0].system, "You label intents.");
    cr_assert_str_eq(back.rows[1].system, "Own system");
    cr_assert_str_eq(back.rows[1].output, "greet");
    tw_dataset_free(&back);
}

Test(writer, chat_multi_turn_round_trip)
{
    tw_dataset ds;
    tw_error err;
    const char *text = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}, "
                       "{\"role\": \"user\", \"content\": \"c\"}, {\"role\": \"assistant\", \"content\": \"d\"}]}\n";
    cr_assert_eq(load("mt.jsonl", text, NULL, &ds, &err), TW_OK, "%s", err.msg);
    char out[512];
    path_in(out, sizeof out, "mt_out.jsonl");
    cr_assert_eq(tw_dataset_write(&ds, out, TW_FORMAT_CHAT, NULL, &err), TW_OK, "%s", err.msg);
    char *back;
    size_t len;
    cr_assert_eq(tw_file_read(out, &back, &len, &err), TW_OK);
    cr_assert_str_eq(back, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                           "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]}\n");
    free(back);
    tw_dataset_free(&ds);
}

Test(writer, atomic_nothing_visible_until_close_and_abort_leaves_nothing)
{
    tw_error err;
    char out[512];
    path_in(out, sizeof out, "atomic.jsonl");
    tw_writer *w;
    tw_example a = {.input = "x", .output = "y"};
    cr_assert_eq(tw_writer_open(&w, out, TW_FORMAT_JSONL, NULL, &err), TW_OK);
    cr_assert_eq(tw_writer_write(w, &a, &err), TW_OK);
    cr_assert(!tw_file_exists(out));
    tw_writer_abort(w);
    cr_assert(!tw_file_exists(out));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", g_dir);
    cr_assert_eq(system(cmd), 0, "abort left a temporary file");
    cr_assert_eq(tw_writer_open(&w, out, TW_FORMAT_JSONL, NULL, &err), TW_OK);
    cr_assert_eq(tw_writer_write(w, &a, &err), TW_OK);
    cr_assert_eq(tw_writer_close(w, &err), TW_OK);
    cr_assert(tw_file_exists(out));
    tw_writer_abort(NULL);
}

Test(writer, open_in_missing_directory_fails_cleanly)
{
    tw_error err;
    tw_writer *w = (tw_writer *)1;
    cr_assert_eq(tw_writer_open(&w, "/nonexistent-dir/x.jsonl", TW_FORMAT_JSONL, NULL, &err), TW_ERR_IO);
    cr_assert_null(w);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x.jsonl") != NULL, "%s", err.msg);
}

/* ---- streaming: memory stays flat ----------------------------------------------------- */

TestSuite(stream, .init = setup_dir, .fini = teardown_dir, .timeout = 120);

/* Write `rows` rows of 60..250-byte inputs; return the path. */
static char *write_big(const char *name, bool csv, size_t rows, uint64_t *bytes)
{
    char path[512];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    tw_rng rng;
    tw_rng_seed(&rng, 7);
    char text[300];
    if (csv) fputs("id,input,output\n", f);
    for (size_t i = 0; i < rows; i++) {
        size_t n = 60 + tw_rng_below(&rng, 190);
        for (size_t k = 0; k < n; k++) text[k] = (char)('a' + (k * 7 + i) % 26);
        text[n] = '\0';
        if (csv) fprintf(f, "r%zu,\"%s, \"\"quoted\"\"\",label_%zu\n", i, text, i % 13);
        else fprintf(f, "{\"id\": \"r%zu\", \"input\": \"%s\", \"output\": \"label_%zu\", \"meta\": {\"i\": %zu}}\n", i, text, i % 13, i);
    }
    *bytes = (uint64_t)ftell(f);
    fclose(f);
    return strdup(path);
}

static void check_flat(const char *name, bool csv, size_t rows)
{
    uint64_t bytes;
    char *path = write_big(name, csv, rows, &bytes);
    tw_reader *r;
    tw_error err;
    cr_assert_eq(tw_reader_open(&r, path, NULL, &err), TW_OK, "%s", err.msg);
    const tw_example *ex;
    size_t n = 0, mem_early = 0, mem_max = 0;
    tw_status st;
    while ((st = tw_reader_next(r, &ex, &err)) == TW_OK) {
        n++;
        size_t m = tw_reader_mem(r);
        if (m > mem_max) mem_max = m;
        if (n == 1000) mem_early = m;
    }
    cr_assert_eq(st, TW_DONE, "%s", err.msg);
    cr_assert_eq(n, rows);
    /* the buffers reached their size within the first 1000 rows and never grew after, and
     * they are tiny next to the file */
    cr_assert_eq(mem_max, mem_early, "reader memory grew from %zu to %zu bytes", mem_early, mem_max);
    cr_assert_lt(mem_max, (size_t)64 << 10, "reader holds %zu bytes", mem_max);
    cr_assert_gt(bytes, (uint64_t)mem_max * 500, "file %llu bytes vs reader %zu", (unsigned long long)bytes, mem_max);
    tw_reader_free(r);
    free(path);
}

Test(stream, jsonl_memory_is_flat) { check_flat("big.jsonl", false, 200000); }
Test(stream, csv_memory_is_flat) { check_flat("big.csv", true, 200000); }

/* ---- the real datasets ----------------------------------------------------------------- */

TestSuite(real, .init = capture_init, .timeout = 120);

static void load_real(const char *rel, size_t want, tw_dataset *ds)
{
    char *p = shared_path(rel);
    tw_reader_params rp = req_params();
    tw_error err;
    cr_assert_eq(tw_dataset_load(ds, p, &rp, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(ds->n, want, "%s: %zu rows, want %zu", rel, ds->n, want);
    free(p);
}

Test(real, banking77)
{
    tw_dataset ds;
    load_real("data/banking77/train.jsonl", 10003, &ds);
    cr_assert_str_eq(ds.rows[0].id, "banking77-train-00000");
    cr_assert_str_eq(ds.rows[0].input, "I am still waiting on my card?");
    cr_assert_str_eq(ds.rows[0].output, "card_arrival");
    char **labels;
    size_t nl;
    tw_error err;
    cr_assert_eq(tw_dataset_labels(&ds, &labels, &nl, &err), TW_OK);
    cr_assert_eq(nl, 77);
    tw_labels_free(labels, nl);
    cr_assert_eq(g_warns, 0, "%s", g_log);
    tw_dataset_free(&ds);
    load_real("data/banking77/test.jsonl", 3080, &ds);
    tw_dataset_free(&ds);
}

Test(real, sst2)
{
    const char *files[] = {"data/sst2/train.jsonl", "data/sst2/dev.jsonl", "data/sst2/test.jsonl"};
    size_t want[] = {6920, 872, 1821};
    for (int i = 0; i < 3; i++) {
        tw_dataset ds;
        load_real(files[i], want[i], &ds);
        char **labels;
        size_t nl;
        tw_error err;
        cr_assert_eq(tw_dataset_labels(&ds, &labels, &nl, &err), TW_OK);
        cr_assert_eq(nl, 2);
        cr_assert_str_eq(labels[0], "negative");
        cr_assert_str_eq(labels[1], "positive");
        tw_labels_free(labels, nl);
        tw_dataset_free(&ds);
    }
}

Test(real, snips_output_json_and_extras)
{
    const char *files[] = {"data/snips_slots/train.jsonl", "data/snips_slots/dev.jsonl", "data/snips_slots/test.jsonl"};
    size_t want[] = {13084, 700, 700};
    for (int i = 0; i < 3; i++) {
        tw_dataset ds;
        load_real(files[i], want[i], &ds);
        for (size_t k = 0; k < ds.n; k++) {
            json_t *o = json_loads(ds.rows[k].output, 0, NULL);
            cr_assert(json_is_object(o), "row %zu output is not a JSON object", k);
            cr_assert(json_is_string(json_object_get(o, "intent")));
            json_decref(o);
            cr_assert(json_is_string(json_object_get(ds.rows[k].extra, "intent")));
            cr_assert(json_is_string(json_object_get(ds.rows[k].extra, "bio")));
            cr_assert_eq(json_object_size(ds.rows[k].extra), 2);
        }
        tw_dataset_free(&ds);
    }
}

Test(real, e2e_references)
{
    tw_dataset ds;
    load_real("data/e2e/test.jsonl", 630, &ds);
    size_t total = 0;
    for (size_t i = 0; i < ds.n; i++) {
        cr_assert_geq(ds.rows[i].n_refs, 1);
        cr_assert_str_eq(ds.rows[i].output, ds.rows[i].refs[0]);
        total += ds.rows[i].n_refs;
    }
    cr_assert_gt(total, ds.n);   /* several references per meaning representation */
    cr_assert_str_eq(ds.rows[0].input, "name[Blue Spice], eatType[coffee shop], area[city centre]");
    cr_assert_eq(ds.rows[0].n_refs, 2);
    cr_assert_str_eq(ds.rows[0].refs[1], "Blue Spice is a coffee shop in city centre.");
    tw_dataset_free(&ds);
}

/* ---- robustness: mutated inputs never crash and always explain themselves --------------- */

TestSuite(robust, .init = setup_dir, .fini = teardown_dir, .timeout = 120);

/* Apply 1-4 random byte edits (flip, delete, insert a syntax character) to src. */
static size_t mutate(tw_rng *rng, const char *src, char *out)
{
    static const char specials[] = "\"{}[],:\\\n\r\xC3\xFF\x00 ";
    size_t n = strlen(src);
    memcpy(out, src, n);
    int edits = 1 + (int)tw_rng_below(rng, 4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = tw_rng_below(rng, n);
        switch (tw_rng_below(rng, 3)) {
        case 0: out[at] = specials[tw_rng_below(rng, sizeof specials - 1)]; break;
        case 1: memmove(out + at, out + at + 1, n - at - 1); n--; break;
        default:
            memmove(out + at + 1, out + at, n - at);
            out[at] = specials[tw_rng_below(rng, sizeof specials - 1)];
            n++;
        }
    }
    return n;
}

static void fuzz_format(const char *name, const char *seed_text, tw_format fmt, int rounds)
{
    tw_rng rng;
    tw_rng_seed(&rng, 1234);
    char *buf = malloc(strlen(seed_text) * 2 + 64);
    char path[512];
    path_in(path, sizeof path, name);
    int ok = 0, bad = 0;
    for (int i = 0; i < rounds; i++) {
        size_t n = mutate(&rng, seed_text, buf);
        FILE *f = fopen(path, "wb");
        fwrite(buf, 1, n, f);
        fclose(f);
        tw_reader_params p = req_params();
        p.format = fmt;
        tw_dataset ds;
        tw_error err;
        tw_error_clear(&err);
        if (tw_dataset_load(&ds, path, &p, &err) == TW_OK) {
            ok++;
            for (size_t k = 0; k < ds.n; k++) {
                cr_assert(tw_utf8_valid(ds.rows[k].input, strlen(ds.rows[k].input), NULL));
                cr_assert_not_null(ds.rows[k].output);
            }
            tw_dataset_free(&ds);
        } else {
            bad++;
            cr_assert(strncmp(err.msg, path, strlen(path)) == 0, "round %d: message \"%s\"", i, err.msg);
            cr_assert_neq(err.msg[strlen(path)], '\0', "round %d: bare path", i);
        }
    }
    cr_assert_gt(bad, 0);
    free(buf);
}

Test(robust, jsonl_mutations)
{
    fuzz_format("f.jsonl",
                "{\"id\": \"a\", \"input\": \"caf\xC3\xA9 one\", \"output\": \"x\", \"references\": [\"r\"], \"k\": {\"n\": [1, 2.5]}}\n"
                "{\"input\": \"two\", \"output\": {\"a\": true}}\n",
                TW_FORMAT_JSONL, 1500);
}

Test(robust, csv_mutations)
{
    fuzz_format("f.csv", "id,input,output\r\n1,\"a, \"\"b\"\"\nc\",x\r\n2,plain,y\r\n", TW_FORMAT_CSV, 1500);
}

Test(robust, chat_mutations)
{
    fuzz_format("f.chat",
                "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"q\"}]}, "
                "{\"role\": \"assistant\", \"content\": \"a\"}]}\n",
                TW_FORMAT_CHAT, 1500);
}
