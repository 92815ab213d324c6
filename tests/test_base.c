/* test_base.c — base utilities: errors, buffers, atomic files, line reader,
 * UTF-8, hashing (SHA-256 test vectors from FIPS 180-4), RNG, normalization. */
#include "testutil.h"
#include "base/base.h"

#include <math.h>

Test(base, error_set_and_prefix)
{
    tw_error e;
    tw_error_clear(&e);
    cr_assert_eq(tw_error_set(&e, TW_ERR_PARSE, "line %d: bad", 7), TW_ERR_PARSE);
    tw_error_prefix(&e, "%s: ", "data.jsonl");
    cr_assert_str_eq(e.msg, "data.jsonl: line 7: bad");
    cr_assert_eq(e.status, TW_ERR_PARSE);
    cr_assert_str_eq(tw_status_str(TW_ERR_NOMEM), "out of memory");
}

Test(base, buf_printf_grows)
{
    tw_buf b = {0};
    for (int i = 0; i < 1000; i++) tw_buf_printf(&b, "%d,", i);
    cr_assert_eq(strncmp(b.data, "0,1,2,", 6), 0);
    cr_assert_eq(b.len, strlen(b.data));
    cr_assert(strstr(b.data, "999,") != NULL);
    char *s = tw_buf_steal(&b);
    cr_assert_null(b.data);
    free(s);
}

Test(base, sha256_vectors)
{
    char hex[65];
    tw_sha256("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tw_sha256("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    tw_sha256(m, strlen(m), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(base, hash64_stable_and_sensitive)
{
    uint64_t a = tw_hash64("hello world", 11, 1);
    cr_assert_eq(a, tw_hash64("hello world", 11, 1));
    cr_assert_neq(a, tw_hash64("hello world", 11, 2));
    cr_assert_neq(a, tw_hash64("hello worle", 11, 1));
    cr_assert_neq(tw_hash64("", 0, 1), tw_hash64("\0", 1, 1));
}

Test(base, utf8_validation)
{
    size_t off = 99;
    cr_assert(tw_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, &off));
    cr_assert_not(tw_utf8_valid("ab\xff" "cd", 5, &off));
    cr_assert_eq(off, 2);
    cr_assert_not(tw_utf8_valid("\xc0\xaf", 2, &off));          /* overlong '/' */
    cr_assert_not(tw_utf8_valid("\xed\xa0\x80", 3, &off));      /* surrogate */
    cr_assert_not(tw_utf8_valid("ok\xe2\x82", 4, &off));        /* truncated */
    cr_assert_eq(off, 2);
    cr_assert(tw_utf8_valid("\xef\xbf\xbd", 3, NULL));          /* real U+FFFD */
    cr_assert_eq(tw_utf8_len("h\xc3\xa9", 3), 2);
    char out[4];
    cr_assert_eq(tw_utf8_encode(0x1F600, out), 4);
    cr_assert_eq(memcmp(out, "\xf0\x9f\x98\x80", 4), 0);
}

Test(base, atomic_write_replaces_whole_file)
{
    char *dir = tw_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    tw_error e;
    cr_assert_eq(tw_file_write_atomic(path, "first", 5, &e), TW_OK);
    cr_assert_eq(tw_file_write_atomic(path, "second!", 7, &e), TW_OK);
    char *got;
    size_t n;
    cr_assert_eq(tw_file_read(path, &got, &n, &e), TW_OK);
    cr_assert_eq(n, 7);
    cr_assert_str_eq(got, "second!");
    free(got);
    /* an aborted writer leaves the old content and no temp file behind */
    tw_atomic_file af;
    cr_assert_eq(tw_atomic_open(&af, path, &e), TW_OK);
    fputs("partial", af.fp);
    tw_atomic_abort(&af);
    cr_assert_eq(tw_file_read(path, &got, &n, &e), TW_OK);
    cr_assert_str_eq(got, "second!");
    free(got);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | wc -l", dir);
    char *out;
    tw_test_run(cmd, &out, NULL);
    cr_assert_eq(atoi(out), 1, "temp files left behind: %s", out);
    free(out);
    cr_assert_neq(tw_file_read("/nonexistent/x", &got, &n, &e), TW_OK);
    cr_assert(strstr(e.msg, "/nonexistent/x") != NULL);
    free(dir);
}

Test(base, line_reader_lines_crlf_and_limit)
{
    char *dir = tw_test_tmpdir();
    char *p = tw_test_write(dir, "a.txt", "one\r\ntwo\n\nfour");
    tw_line_reader r;
    tw_error e;
    cr_assert_eq(tw_line_reader_open(&r, p, 0, &e), TW_OK);
    const char *l;
    size_t n;
    const char *want[] = {"one", "two", "", "four"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(tw_line_reader_next(&r, &l, &n, &e), TW_OK);
        cr_assert_str_eq(l, want[i]);
        cr_assert_eq(r.line_no, (size_t)i + 1);
    }
    cr_assert_eq(tw_line_reader_next(&r, &l, &n, &e), TW_DONE);
    tw_line_reader_close(&r);

    /* A line over the limit is an error naming file:line, and reading can go on. */
    char *big = malloc(5000);
    memset(big, 'x', 4000);
    strcpy(big + 4000, "\nshort\n");
    char *q = tw_test_write(dir, "b.txt", big);
    cr_assert_eq(tw_line_reader_open(&r, q, 1000, &e), TW_OK);
    cr_assert_eq(tw_line_reader_next(&r, &l, &n, &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "b.txt:1: line is longer than the limit of 1000 bytes") != NULL, "%s", e.msg);
    cr_assert_leq(r.cap, 1002, "buffer grew past the limit: %zu", r.cap);
    cr_assert_eq(tw_line_reader_next(&r, &l, &n, &e), TW_OK);
    cr_assert_str_eq(l, "short");
    cr_assert_eq(r.line_no, 2);
    tw_line_reader_close(&r);
    free(big); free(p); free(q); free(dir);
}

Test(base, rng_deterministic_and_uniform)
{
    tw_rng a, b;
    tw_rng_seed(&a, 42);
    tw_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) cr_assert_eq(tw_rng_next(&a), tw_rng_next(&b));
    tw_rng_seed(&a, 7);
    int counts[10] = {0};
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        counts[tw_rng_below(&a, 10)]++;
        double z = tw_rng_normal(&a);
        sum += z; sq += z * z;
    }
    for (int i = 0; i < 10; i++) cr_assert(counts[i] > 9500 && counts[i] < 10500, "bucket %d: %d", i, counts[i]);
    cr_assert(fabs(sum / 100000) < 0.02);
    cr_assert(fabs(sq / 100000 - 1) < 0.03);
    int arr[50];
    for (int i = 0; i < 50; i++) arr[i] = i;
    tw_rng_shuffle(&a, arr, 50, sizeof arr[0]);
    int s = 0, moved = 0;
    for (int i = 0; i < 50; i++) { s += arr[i]; moved += arr[i] != i; }
    cr_assert_eq(s, 49 * 50 / 2);
    cr_assert(moved > 30);
}

Test(base, normalize_text)
{
    char out[64];
    const char *s = "  Hello,   WORLD!\tIt's  fine. ";
    size_t n = tw_normalize_text(s, strlen(s), out);
    cr_assert_str_eq(out, "hello world its fine");
    cr_assert_eq(n, strlen(out));
}

Test(base, mkdir_p)
{
    char *dir = tw_test_tmpdir();
    char p[512];
    snprintf(p, sizeof p, "%s/a/b/c", dir);
    tw_error e;
    cr_assert_eq(tw_mkdir_p(p, &e), TW_OK);
    cr_assert(tw_file_exists(p));
    cr_assert_eq(tw_mkdir_p(p, &e), TW_OK);
    free(dir);
}

Test(base, str_index_put_get_and_duplicates)
{
    enum { N = 5000 };
    static char keys[N][16];
    tw_str_index ix = {0};
    tw_error e;
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "id-%d", i);
        bool found = true;
        cr_assert_eq(tw_str_index_put(&ix, keys[i], (size_t)i * 3, &found, NULL, &e), TW_OK);
        cr_assert_not(found);
    }
    cr_assert_eq(ix.n, N);
    for (int i = 0; i < N; i++) {
        size_t v;
        char probe[16];
        snprintf(probe, sizeof probe, "id-%d", i);   /* a different pointer, same text */
        cr_assert(tw_str_index_get(&ix, probe, &v));
        cr_assert_eq(v, (size_t)i * 3);
    }
    cr_assert_not(tw_str_index_get(&ix, "id-5000", NULL));
    bool found = false;
    size_t first = 0;
    cr_assert_eq(tw_str_index_put(&ix, "id-42", 7, &found, &first, &e), TW_OK);
    cr_assert(found);
    cr_assert_eq(first, 126, "existing value kept");
    cr_assert_eq(ix.n, N);
    tw_str_index_free(&ix);
    tw_str_index empty = {0};
    cr_assert_not(tw_str_index_get(&empty, "x", NULL));
}
