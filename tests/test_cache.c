/* test_cache.c — the SQLite model-call cache: key definition (pinned against an
 * independent Python hashlib computation) and its sensitivity to every field, hits and
 * misses with every stored field round-tripping, first-writer-wins, corrupted / foreign /
 * newer-version files refused with the path and SQLite's message, and several processes
 * writing one cache at once. */
#include "testutil.h"
#include "eval/cache.h"

#include <math.h>
#include <signal.h>
#include <sqlite3.h>

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static tw_cache *open_ok(const char *path)
{
    tw_cache *c = NULL;
    tw_error err;
    tw_error_clear(&err);
    tw_status st = tw_cache_open(&c, path, &err);
    cr_assert_eq(st, TW_OK, "open %s: %s", path, err.msg);
    cr_assert_not_null(c);
    return c;
}

static void key_of(const tw_cache_key *k, char hex[65])
{
    tw_error err;
    tw_status st = tw_cache_key_hash(k, hex, &err);
    cr_assert_eq(st, TW_OK, "%s", err.msg);
    cr_assert_eq(strlen(hex), 64);
}

static const char *MODEL = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

Test(cache_key, pinned_definition)
{
    /* Expected value from tests: python3 hashlib.sha256(b"tunewise-cache-key-v1" +
     * netstrings of (model, "", prompt, json.dumps(params, separators=(',',':'),
     * sort_keys=True), mode)). Changing the key definition orphans every user's cache:
     * bump the "v1" tag when you must. */
    json_t *params = json_pack("{s:f, s:i, s:[s]}", "temperature", 0.5, "max_tokens", 16, "stop", "\n");
    tw_cache_key k = {.model_hash = MODEL, .adapter_hash = NULL, .prompt = "Review: great film\nSentiment:",
                      .params = params, .mode = "kshot/choice"};
    char hex[65];
    key_of(&k, hex);
    cr_assert_str_eq(hex, "679cd12224444feb47a2d0d18d67d7a49c086916046bedcb9e61c04d4bceed0e");
    json_decref(params);
}

Test(cache_key, every_field_matters)
{
    json_t *p1 = json_pack("{s:f, s:i}", "temperature", 0.0, "max_tokens", 8);
    json_t *p1_reordered = json_pack("{s:i, s:f}", "max_tokens", 8, "temperature", 0.0);
    json_t *p2 = json_pack("{s:f, s:i}", "temperature", 0.7, "max_tokens", 8);
    json_t *p_int = json_pack("{s:i, s:i}", "temperature", 0, "max_tokens", 8);
    json_t *nested1 = json_pack("{s:{s:i, s:i}}", "g", "a", 1, "b", 2);
    json_t *nested2 = json_pack("{s:{s:i, s:i}}", "g", "b", 2, "a", 1);
    json_t *empty = json_object();
    tw_cache_key base = {.model_hash = MODEL, .adapter_hash = "", .prompt = "p", .params = p1, .mode = "zero/free"};
    char h0[65], h[65];
    key_of(&base, h0);

    tw_cache_key k = base;
    k.adapter_hash = NULL;   /* NULL and "" are both "no adapter" */
    key_of(&k, h);
    cr_assert_str_eq(h, h0);
    k = base;
    k.params = p1_reordered;  /* canonical JSON: key order does not matter */
    key_of(&k, h);
    cr_assert_str_eq(h, h0);

    const char *variants[8];
    char hs[8][65];
    int nv = 0;
    k = base; k.model_hash = "bbbb"; key_of(&k, hs[nv]); variants[nv++] = "model";
    k = base; k.adapter_hash = "cccc"; key_of(&k, hs[nv]); variants[nv++] = "adapter";
    k = base; k.prompt = "p "; key_of(&k, hs[nv]); variants[nv++] = "prompt";
    k = base; k.params = p2; key_of(&k, hs[nv]); variants[nv++] = "params value";
    k = base; k.params = p_int; key_of(&k, hs[nv]); variants[nv++] = "params 0 vs 0.0";
    k = base; k.params = NULL; key_of(&k, hs[nv]); variants[nv++] = "params absent";
    k = base; k.mode = "zero/choice"; key_of(&k, hs[nv]); variants[nv++] = "mode";
    for (int i = 0; i < nv; i++) {
        cr_assert_str_neq(hs[i], h0, "changing the %s must change the key", variants[i]);
        for (int j = 0; j < i; j++) cr_assert_str_neq(hs[i], hs[j], "%s vs %s", variants[i], variants[j]);
    }
    /* params NULL is the same as {} */
    k = base; k.params = empty; key_of(&k, h);
    cr_assert_str_eq(h, hs[5]);
    /* nested objects are canonical too */
    char n1[65], n2[65];
    k = base; k.params = nested1; key_of(&k, n1);
    k = base; k.params = nested2; key_of(&k, n2);
    cr_assert_str_eq(n1, n2);
    /* fields are length-delimited: moving a byte from one field to the next changes the key */
    tw_cache_key a = {.model_hash = "ab", .adapter_hash = "", .prompt = "x", .mode = "m"};
    tw_cache_key b = {.model_hash = "a", .adapter_hash = "b", .prompt = "x", .mode = "m"};
    char ha[65], hb[65];
    key_of(&a, ha);
    key_of(&b, hb);
    cr_assert_str_neq(ha, hb);
    json_decref(p1); json_decref(p1_reordered); json_decref(p2); json_decref(p_int);
    json_decref(nested1); json_decref(nested2); json_decref(empty);
}

Test(cache_key, required_fields)
{
    char hex[65];
    tw_error err;
    tw_cache_key k = {.model_hash = "", .prompt = "p", .mode = "m"};
    cr_assert_eq(tw_cache_key_hash(&k, hex, &err), TW_ERR_INVALID);
    k = (tw_cache_key){.model_hash = MODEL, .prompt = NULL, .mode = "m"};
    cr_assert_eq(tw_cache_key_hash(&k, hex, &err), TW_ERR_INVALID);
    json_t *arr = json_array();
    k = (tw_cache_key){.model_hash = MODEL, .prompt = "p", .mode = "m", .params = arr};
    cr_assert_eq(tw_cache_key_hash(&k, hex, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "JSON object"), "%s", err.msg);
    json_decref(arr);
}

static void put_entry(tw_cache *c, const char *key, const char *output, const char *parsed, bool valid,
                      double tin, double tout, double ms, const char *logprobs)
{
    tw_cache_entry e;
    tw_cache_entry_init(&e);
    e.output = (char *)output;
    e.parsed = (char *)parsed;
    e.valid = valid;
    e.tokens_in = tin;
    e.tokens_out = tout;
    e.latency_ms = ms;
    e.logprobs = (char *)logprobs;
    tw_error err;
    tw_status st = tw_cache_put(c, key, &e, &err);
    cr_assert_eq(st, TW_OK, "%s", err.msg);
}

static char *hkey(const char *prompt)
{
    tw_cache_key k = {.model_hash = MODEL, .prompt = prompt, .mode = "t"};
    char *hex = malloc(65);
    key_of(&k, hex);
    return hex;
}

Test(cache, miss_put_hit_roundtrip_and_reopen)
{
    char *dir = tw_test_tmpdir();
    char *path = path_in(dir, "calls.sqlite");
    tw_cache *c = open_ok(path);
    cr_assert_str_eq(tw_cache_path(c), path);
    char *k1 = hkey("one"), *k2 = hkey("two");
    tw_cache_entry e;
    bool hit = true;
    tw_error err;
    cr_assert_eq(tw_cache_get(c, k1, &e, &hit, &err), TW_OK, "%s", err.msg);
    cr_assert_not(hit);
    cr_assert_null(e.output);
    put_entry(c, k1, "positive\n", "positive", true, 42, 3, 12.5, "[{\"t\":\"pos\",\"lp\":-0.25}]");
    put_entry(c, k2, "???", NULL, false, NAN, NAN, NAN, NULL);
    cr_assert_eq(tw_cache_get(c, k1, &e, &hit, &err), TW_OK, "%s", err.msg);
    cr_assert(hit);
    cr_assert_str_eq(e.output, "positive\n");
    cr_assert_str_eq(e.parsed, "positive");
    cr_assert(e.valid);
    cr_assert_eq(e.tokens_in, 42);
    cr_assert_eq(e.tokens_out, 3);
    cr_assert_eq(e.latency_ms, 12.5);
    cr_assert_str_eq(e.logprobs, "[{\"t\":\"pos\",\"lp\":-0.25}]");
    cr_assert(e.created > 1.6e9 && e.created < 4e9, "created = %f", e.created);
    tw_cache_entry_free(&e);
    cr_assert_null(e.output);
    cr_assert_eq(tw_cache_get(c, k2, &e, &hit, &err), TW_OK);
    cr_assert(hit);
    cr_assert_str_eq(e.output, "???");
    cr_assert_null(e.parsed);
    cr_assert_not(e.valid);
    cr_assert(isnan(e.tokens_in) && isnan(e.tokens_out) && isnan(e.latency_ms));
    cr_assert_null(e.logprobs);
    tw_cache_entry_free(&e);
    /* first writer wins */
    put_entry(c, k1, "negative", "negative", true, 1, 1, 1, NULL);
    cr_assert_eq(tw_cache_get(c, k1, &e, &hit, &err), TW_OK);
    cr_assert_str_eq(e.output, "positive\n");
    tw_cache_entry_free(&e);
    size_t hits, misses, n;
    tw_cache_stats(c, &hits, &misses);
    cr_assert_eq(hits, 3);
    cr_assert_eq(misses, 1);
    cr_assert_eq(tw_cache_count(c, &n, &err), TW_OK);
    cr_assert_eq(n, 2);
    tw_cache_close(c);
    tw_cache_close(NULL);
    /* persisted */
    c = open_ok(path);
    cr_assert_eq(tw_cache_get(c, k2, &e, &hit, &err), TW_OK);
    cr_assert(hit);
    cr_assert_str_eq(e.output, "???");
    tw_cache_entry_free(&e);
    tw_cache_stats(c, &hits, &misses);
    cr_assert_eq(hits, 1);
    cr_assert_eq(misses, 0);
    tw_cache_close(c);
    free(k1); free(k2); free(path); free(dir);
}

Test(cache, bad_entries_and_keys_refused)
{
    char *dir = tw_test_tmpdir();
    char *path = path_in(dir, "c.sqlite");
    tw_cache *c = open_ok(path);
    char *k = hkey("x");
    tw_cache_entry e;
    tw_cache_entry_init(&e);
    tw_error err;
    cr_assert_eq(tw_cache_put(c, k, &e, &err), TW_ERR_INVALID);   /* no output */
    e.output = "o";
    e.logprobs = "[1, 2";
    cr_assert_eq(tw_cache_put(c, k, &e, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "logprobs"), "%s", err.msg);
    e.logprobs = NULL;
    cr_assert_eq(tw_cache_put(c, "ABC", &e, &err), TW_ERR_INVALID);
    char upper[65];
    memcpy(upper, k, 65);
    upper[0] = 'G';
    bool hit;
    tw_cache_entry got;
    cr_assert_eq(tw_cache_get(c, upper, &got, &hit, &err), TW_ERR_INVALID);
    size_t n;
    cr_assert_eq(tw_cache_count(c, &n, &err), TW_OK);
    cr_assert_eq(n, 0);
    tw_cache_close(c);
    free(k); free(path); free(dir);
}

Test(cache, garbage_file_is_a_clear_error)
{
    char *dir = tw_test_tmpdir();
    char *garbage = malloc(8192);
    for (int i = 0; i < 8191; i++) garbage[i] = (char)('A' + (i * 7919) % 26);
    garbage[8191] = '\0';
    char *path = tw_test_write(dir, "calls.sqlite", garbage);
    tw_cache *c = (tw_cache *)1;
    tw_error err;
    tw_error_clear(&err);
    tw_status st = tw_cache_open(&c, path, &err);
    cr_assert_neq(st, TW_OK);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, path), "message names the path: %s", err.msg);
    cr_assert(strstr(err.msg, "file is not a database"), "message carries SQLite's: %s", err.msg);
    cr_log_info("garbage: %s", err.msg);
    free(garbage); free(path); free(dir);
}

Test(cache, damaged_database_is_a_clear_error)
{
    char *dir = tw_test_tmpdir();
    char *path = path_in(dir, "calls.sqlite");
    tw_cache *c = open_ok(path);
    char big[2048];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        char p[32];
        snprintf(p, sizeof p, "prompt %d", i);
        char *k = hkey(p);
        put_entry(c, k, big, NULL, true, 1, 1, 1, NULL);
        free(k);
    }
    tw_cache_close(c);   /* checkpoints the WAL into the main file */
    /* overwrite page 2 onwards (the schema's b-trees) with garbage, keep the header */
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 4096, SEEK_SET), 0);
    for (int i = 0; i < 3 * 4096; i++) fputc((i * 131) & 0xff, f);
    fclose(f);
    tw_error err;
    tw_error_clear(&err);
    c = NULL;
    tw_status st = tw_cache_open(&c, path, &err);
    size_t n = 0;
    if (st == TW_OK) st = tw_cache_count(c, &n, &err);   /* damage may surface at first read */
    cr_assert_neq(st, TW_OK, "a damaged database must not read as valid");
    cr_log_info("damaged: %s", err.msg);
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    cr_assert(strstr(err.msg, "SQLite says"), "%s", err.msg);
    tw_cache_close(c);
    free(path); free(dir);
}

static void sql(const char *path, const char *stmt)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, stmt, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s", msg ? msg : "");
    sqlite3_close(db);
}

Test(cache, newer_schema_version_refused)
{
    char *dir = tw_test_tmpdir();
    char *path = path_in(dir, "calls.sqlite");
    tw_cache_close(open_ok(path));
    sql(path, "UPDATE tw_meta SET value = '99' WHERE key = 'schema_version'");
    tw_cache *c = NULL;
    tw_error err;
    cr_assert_eq(tw_cache_open(&c, path, &err), TW_ERR_UNSUPPORTED);
    cr_assert_null(c);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "99") && strstr(err.msg, "newer"), "%s", err.msg);
    free(path); free(dir);
}

Test(cache, foreign_sqlite_database_refused)
{
    char *dir = tw_test_tmpdir();
    char *path = path_in(dir, "history.sqlite");
    sql(path, "CREATE TABLE runs(id INTEGER PRIMARY KEY, name TEXT)");
    tw_cache *c = NULL;
    tw_error err;
    cr_assert_eq(tw_cache_open(&c, path, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "not a tunewise cache") && strstr(err.msg, "runs"), "%s", err.msg);
    free(path); free(dir);
}

Test(cache, unwritable_location_names_path)
{
    tw_cache *c = NULL;
    tw_error err;
    tw_status st = tw_cache_open(&c, "/nonexistent-dir-tw/calls.sqlite", &err);
    cr_assert_neq(st, TW_OK);
    cr_assert(strstr(err.msg, "/nonexistent-dir-tw/calls.sqlite"), "%s", err.msg);
}

/* Several processes create, fill and read one cache at the same time. Each writes its
 * own keys and a set of shared keys (racing on them); nothing may fail or get lost. */
#define N_PROCS 4
#define N_OWN 150
#define N_SHARED 40

static int child(const char *path, int who, int start_fd)
{
    char go;
    if (read(start_fd, &go, 1) != 1) return 10;
    tw_cache *c = NULL;
    tw_error err;
    if (tw_cache_open(&c, path, &err)) { fprintf(stderr, "child %d: %s\n", who, err.msg); return 11; }
    char p[64], out[160];
    for (int i = 0; i < N_OWN + N_SHARED; i++) {
        bool shared = i >= N_OWN;
        if (shared) snprintf(p, sizeof p, "shared %d", i - N_OWN);
        else snprintf(p, sizeof p, "proc %d row %d", who, i);
        snprintf(out, sizeof out, "%s by %d", p, who);
        tw_cache_key k = {.model_hash = MODEL, .prompt = p, .mode = "t"};
        char key[65];
        if (tw_cache_key_hash(&k, key, &err)) return 12;
        tw_cache_entry e;
        tw_cache_entry_init(&e);
        e.output = out;
        e.latency_ms = who;
        if (tw_cache_put(c, key, &e, &err)) { fprintf(stderr, "child %d: %s\n", who, err.msg); return 13; }
        bool hit;
        tw_cache_entry g;
        if (tw_cache_get(c, key, &g, &hit, &err)) { fprintf(stderr, "child %d: %s\n", who, err.msg); return 14; }
        if (!hit) return 15;
        /* own keys: our value; shared keys: some process's, consistently */
        if (!shared && strcmp(g.output, out) != 0) return 16;
        if (shared && strncmp(g.output, p, strlen(p)) != 0) return 17;
        tw_cache_entry_free(&g);
    }
    tw_cache_close(c);
    return 0;
}

Test(cache, concurrent_processes, .timeout = 60)
{
    char *dir = tw_test_tmpdir();
    char *path = path_in(dir, "shared.sqlite");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pids[N_PROCS];
    for (int i = 0; i < N_PROCS; i++) {
        pids[i] = fork();
        cr_assert(pids[i] >= 0);
        if (pids[i] == 0) {
            close(fds[1]);
            _exit(child(path, i, fds[0]));
        }
    }
    close(fds[0]);
    char go[N_PROCS];
    memset(go, 'g', sizeof go);
    cr_assert_eq(write(fds[1], go, sizeof go), (ssize_t)sizeof go);   /* start together */
    close(fds[1]);
    for (int i = 0; i < N_PROCS; i++) {
        int status;
        cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %d", i, status);
    }
    tw_cache *c = open_ok(path);
    size_t n;
    tw_error err;
    cr_assert_eq(tw_cache_count(c, &n, &err), TW_OK);
    cr_assert_eq(n, N_PROCS * N_OWN + N_SHARED);
    for (int w = 0; w < N_PROCS; w++) {
        char p[64], want[80];
        snprintf(p, sizeof p, "proc %d row %d", w, N_OWN - 1);
        snprintf(want, sizeof want, "%s by %d", p, w);
        char *k = hkey(p);
        tw_cache_entry e;
        bool hit;
        cr_assert_eq(tw_cache_get(c, k, &e, &hit, &err), TW_OK);
        cr_assert(hit);
        cr_assert_str_eq(e.output, want);
        cr_assert_eq(e.latency_ms, w);
        tw_cache_entry_free(&e);
        free(k);
    }
    tw_cache_close(c);
    free(path); free(dir);
}
