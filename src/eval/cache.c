/* cache.c — the SQLite model-call cache (cache.h). One table of results keyed by the
 * sha256 of the call's identity, one table of metadata holding the schema version.
 * SQLite's WAL mode (https://www.sqlite.org/wal.html) lets readers and one writer at a
 * time work concurrently across processes; the busy timeout makes a second writer wait
 * instead of failing. Deliberately not here: what a call is (the arms build keys). */
#include "eval/cache.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A writer holding the lock longer than this is a bug or a hung process. */
#define BUSY_TIMEOUT_MS 30000

struct tw_cache {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *get, *put;
    pthread_mutex_t mu;
    size_t hits, misses;
};

static tw_status db_error(tw_error *err, sqlite3 *db, const char *path, const char *what)
{
    int code = db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
    const char *msg = db ? sqlite3_errmsg(db) : "out of memory";
    tw_status st = (code & 0xff) == SQLITE_NOMEM ? TW_ERR_NOMEM
                 : (code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT ? TW_ERR_PARSE
                 : TW_ERR_IO;
    if ((code & 0xff) == SQLITE_NOTADB || (code & 0xff) == SQLITE_CORRUPT)
        return tw_error_set(err, st, "%s: %s: SQLite says '%s' (the cache file is not a SQLite database or is "
                            "corrupted; delete it to start an empty cache)", path, what, msg);
    return tw_error_set(err, st, "%s: %s: SQLite says '%s'", path, what, msg);
}

/* Run one statement that returns no rows we need. */
static tw_status exec(tw_cache *c, const char *sql, const char *what, tw_error *err)
{
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_error(err, c->db, c->path, what);
    return TW_OK;
}

/* Inside BEGIN IMMEDIATE: create the schema in an empty database, or check the version
 * of an existing one. */
static tw_status check_schema(tw_cache *c, tw_error *err)
{
    sqlite3_stmt *q = NULL;
    tw_status st = TW_OK;
    if (sqlite3_prepare_v2(c->db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &q, NULL) != SQLITE_OK)
        return db_error(err, c->db, c->path, "reading the schema");
    bool have_meta = false, have_calls = false;
    char other[128] = "";
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(q, 0);
        if (!name) continue;
        if (strcmp(name, "tw_meta") == 0) have_meta = true;
        else if (strcmp(name, "calls") == 0) have_calls = true;
        else if (!other[0]) snprintf(other, sizeof other, "%s", name);
    }
    if (rc != SQLITE_DONE) st = db_error(err, c->db, c->path, "reading the schema");
    sqlite3_finalize(q);
    if (st) return st;
    if (!have_meta) {
        if (have_calls || other[0])
            return tw_error_set(err, TW_ERR_INVALID, "%s: a SQLite database but not a tunewise cache (it has table '%s' "
                                "and no tw_meta table); give another cache path", c->path, other[0] ? other : "calls");
        char sql[512];
        snprintf(sql, sizeof sql,
                 "CREATE TABLE tw_meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
                 "INSERT INTO tw_meta VALUES('schema_version', '%d');"
                 "INSERT INTO tw_meta VALUES('created_by', 'tunewise %s');"
                 "CREATE TABLE calls(key TEXT PRIMARY KEY NOT NULL, output TEXT NOT NULL, parsed TEXT,"
                 " valid INTEGER NOT NULL, tokens_in REAL, tokens_out REAL, latency_ms REAL, logprobs TEXT,"
                 " created REAL NOT NULL) WITHOUT ROWID;",
                 TW_CACHE_SCHEMA_VERSION, TW_VERSION_STRING);
        return exec(c, sql, "creating the cache schema", err);
    }
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM tw_meta WHERE key = 'schema_version'", -1, &q, NULL) != SQLITE_OK)
        return db_error(err, c->db, c->path, "reading the schema version");
    rc = sqlite3_step(q);
    long version = -1;
    if (rc == SQLITE_ROW && sqlite3_column_text(q, 0)) {
        char *end;
        const char *v = (const char *)sqlite3_column_text(q, 0);
        version = strtol(v, &end, 10);
        if (*v == '\0' || *end) version = -1;
    } else if (rc != SQLITE_DONE) {
        st = db_error(err, c->db, c->path, "reading the schema version");
    }
    sqlite3_finalize(q);
    if (st) return st;
    if (version < 1)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tunewise cache without a valid schema_version in tw_meta", c->path);
    if (version > TW_CACHE_SCHEMA_VERSION)
        return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: cache schema version %ld is newer than this build supports "
                            "(%d): upgrade tunewise or give another cache path", c->path, version, TW_CACHE_SCHEMA_VERSION);
    if (!have_calls)
        return tw_error_set(err, TW_ERR_INVALID, "%s: tunewise cache without its 'calls' table (damaged?)", c->path);
    return TW_OK;
}

/* sqlite3_exec callback: copy the first column of the first row into user (16 bytes). */
static int first_column(void *user, int ncol, char **vals, char **names)
{
    (void)names;
    char *out = user;
    if (ncol > 0 && vals[0] && !out[0]) snprintf(out, 16, "%s", vals[0]);
    return 0;
}

tw_status tw_cache_open(tw_cache **out, const char *path, tw_error *err)
{
    *out = NULL;
    tw_cache *c = tw_calloc(1, sizeof *c, err);
    if (!c) return TW_ERR_NOMEM;
    c->path = tw_strdup(path, err);
    if (!c->path) { free(c); return TW_ERR_NOMEM; }
    pthread_mutex_init(&c->mu, NULL);
    tw_status st = TW_OK;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        st = db_error(err, c->db, path, "cannot open the cache");
        goto fail;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    /* journal_mode returns a row; sqlite3_exec ignores it. The first statement to read
     * the file is where a corrupted file is detected. Switching a new file to WAL needs an
     * exclusive lock and SQLite may answer SQLITE_BUSY at once, without waiting in the busy
     * handler, while another process is doing the same: retry with a short sleep. */
    for (int waited_ms = 0;;) {
        char mode[16] = "";
        int rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", first_column, mode, NULL);
        if (rc == SQLITE_OK && strcmp(mode, "wal") == 0) break;
        bool busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED || rc == SQLITE_OK;
        /* a mode other than wal without an error: another process holds the file; a
         * file system without WAL support answers the same forever, so give up sooner */
        if (!busy || waited_ms >= (rc == SQLITE_OK ? 1000 : BUSY_TIMEOUT_MS)) {
            if (rc == SQLITE_OK)
                st = tw_error_set(err, TW_ERR_IO, "%s: setting WAL mode: SQLite kept journal mode '%s'", path, mode);
            else
                st = db_error(err, c->db, path, "setting WAL mode");
            goto fail;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        waited_ms += 5;
    }
    if ((st = exec(c, "PRAGMA synchronous=NORMAL", "setting synchronous mode", err))) goto fail;
    if ((st = exec(c, "BEGIN IMMEDIATE", "locking the cache", err))) goto fail;
    if ((st = check_schema(c, err))) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    if ((st = exec(c, "COMMIT", "creating the cache schema", err))) goto fail;
    if (sqlite3_prepare_v2(c->db, "SELECT output, parsed, valid, tokens_in, tokens_out, latency_ms, logprobs, created "
                           "FROM calls WHERE key = ?1", -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "INSERT OR IGNORE INTO calls(key, output, parsed, valid, tokens_in, tokens_out, "
                           "latency_ms, logprobs, created) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &c->put, NULL) != SQLITE_OK) {
        st = db_error(err, c->db, path, "preparing statements");
        goto fail;
    }
    *out = c;
    return TW_OK;
fail:
    tw_cache_close(c);
    return st;
}

void tw_cache_close(tw_cache *c)
{
    if (!c) return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->put);
    sqlite3_close(c->db);   /* NULL ok; the last connection checkpoints and removes the WAL */
    pthread_mutex_destroy(&c->mu);
    free(c->path);
    free(c);
}

const char *tw_cache_path(const tw_cache *c) { return c->path; }

static tw_status put_field(tw_buf *b, const char *s, size_t n)
{
    tw_status st = tw_buf_printf(b, "%zu:", n);
    if (!st) st = tw_buf_append(b, s, n);
    if (!st) st = tw_buf_putc(b, ',');
    return st;
}

tw_status tw_cache_key_hash(const tw_cache_key *k, char hex[65], tw_error *err)
{
    hex[0] = '\0';
    if (!k->model_hash || !k->model_hash[0] || !k->prompt || !k->mode || !k->mode[0])
        return tw_error_set(err, TW_ERR_INVALID, "cache key: model_hash, prompt and mode are required");
    if (k->params && !json_is_object(k->params))
        return tw_error_set(err, TW_ERR_INVALID, "cache key: decoding params must be a JSON object");
    char *params = k->params ? json_dumps(k->params, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17))
                             : tw_strdup("{}", NULL);
    if (!params) return tw_error_set(err, TW_ERR_NOMEM, "cache key: out of memory");
    const char *adapter = k->adapter_hash ? k->adapter_hash : "";
    tw_buf b = {0};
    tw_status st = tw_buf_puts(&b, "tunewise-cache-key-v1");
    if (!st) st = put_field(&b, k->model_hash, strlen(k->model_hash));
    if (!st) st = put_field(&b, adapter, strlen(adapter));
    if (!st) st = put_field(&b, k->prompt, strlen(k->prompt));
    if (!st) st = put_field(&b, params, strlen(params));
    if (!st) st = put_field(&b, k->mode, strlen(k->mode));
    free(params);
    if (st) {
        tw_buf_free(&b);
        return tw_error_set(err, TW_ERR_NOMEM, "cache key: out of memory");
    }
    tw_sha256(b.data, b.len, hex);
    tw_buf_free(&b);
    return TW_OK;
}

void tw_cache_entry_init(tw_cache_entry *e)
{
    memset(e, 0, sizeof *e);
    e->valid = true;
    e->tokens_in = e->tokens_out = e->latency_ms = NAN;
}

void tw_cache_entry_free(tw_cache_entry *e)
{
    free(e->output);
    free(e->parsed);
    free(e->logprobs);
    tw_cache_entry_init(e);
}

static char *col_text(sqlite3_stmt *q, int i, bool *oom)
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL) return NULL;
    const char *s = (const char *)sqlite3_column_text(q, i);
    char *r = s ? tw_strndup(s, (size_t)sqlite3_column_bytes(q, i), NULL) : NULL;
    if (!r) *oom = true;
    return r;
}

static double col_num(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static bool key_ok(const char *key)
{
    if (!key) return false;
    for (int i = 0; i < 64; i++)
        if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'))) return false;
    return key[64] == '\0';
}

tw_status tw_cache_get(tw_cache *c, const char *key, tw_cache_entry *out, bool *hit, tw_error *err)
{
    tw_cache_entry_init(out);
    *hit = false;
    if (!key_ok(key)) return tw_error_set(err, TW_ERR_INVALID, "%s: cache key is not 64 lowercase hex digits", c->path);
    pthread_mutex_lock(&c->mu);
    tw_status st = TW_OK;
    sqlite3_stmt *q = c->get;
    sqlite3_bind_text(q, 1, key, 64, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        bool oom = false;
        out->output = col_text(q, 0, &oom);
        out->parsed = col_text(q, 1, &oom);
        out->valid = sqlite3_column_int(q, 2) != 0;
        out->tokens_in = col_num(q, 3);
        out->tokens_out = col_num(q, 4);
        out->latency_ms = col_num(q, 5);
        out->logprobs = col_text(q, 6, &oom);
        out->created = col_num(q, 7);
        if (oom || !out->output) {
            st = oom ? tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory reading a cache entry", c->path)
                     : tw_error_set(err, TW_ERR_PARSE, "%s: cache entry %.16s... has no output", c->path, key);
            tw_cache_entry_free(out);
        } else {
            *hit = true;
        }
    } else if (rc != SQLITE_DONE) {
        st = db_error(err, c->db, c->path, "cache lookup");
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (!st) {
        if (*hit) c->hits++;
        else c->misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

static void bind_num(sqlite3_stmt *q, int i, double v)
{
    if (isnan(v)) sqlite3_bind_null(q, i);
    else sqlite3_bind_double(q, i, v);
}

static void bind_str(sqlite3_stmt *q, int i, const char *s)
{
    if (s) sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(q, i);
}

tw_status tw_cache_put(tw_cache *c, const char *key, const tw_cache_entry *e, tw_error *err)
{
    if (!key_ok(key)) return tw_error_set(err, TW_ERR_INVALID, "%s: cache key is not 64 lowercase hex digits", c->path);
    if (!e->output) return tw_error_set(err, TW_ERR_INVALID, "%s: cache entry without output", c->path);
    if (e->logprobs) {
        json_error_t je;
        json_t *j = json_loads(e->logprobs, JSON_DECODE_ANY, &je);
        if (!j) return tw_error_set(err, TW_ERR_INVALID, "%s: cache entry logprobs are not JSON: %s", c->path, je.text);
        json_decref(j);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *q = c->put;
    sqlite3_bind_text(q, 1, key, 64, SQLITE_STATIC);
    bind_str(q, 2, e->output);
    bind_str(q, 3, e->parsed);
    sqlite3_bind_int(q, 4, e->valid ? 1 : 0);
    bind_num(q, 5, e->tokens_in);
    bind_num(q, 6, e->tokens_out);
    bind_num(q, 7, e->latency_ms);
    bind_str(q, 8, e->logprobs);
    sqlite3_bind_double(q, 9, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    tw_status st = TW_OK;
    if (sqlite3_step(q) != SQLITE_DONE) st = db_error(err, c->db, c->path, "cache insert");
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    pthread_mutex_unlock(&c->mu);
    return st;
}

tw_status tw_cache_count(tw_cache *c, size_t *n, tw_error *err)
{
    *n = 0;
    pthread_mutex_lock(&c->mu);
    sqlite3_stmt *q = NULL;
    tw_status st = TW_OK;
    if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM calls", -1, &q, NULL) != SQLITE_OK)
        st = db_error(err, c->db, c->path, "counting entries");
    else if (sqlite3_step(q) != SQLITE_ROW)
        st = db_error(err, c->db, c->path, "counting entries");
    else
        *n = (size_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    pthread_mutex_unlock(&c->mu);
    return st;
}

void tw_cache_stats(tw_cache *c, size_t *hits, size_t *misses)
{
    pthread_mutex_lock(&c->mu);
    if (hits) *hits = c->hits;
    if (misses) *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
