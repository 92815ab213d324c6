/* history.c — the SQLite run history (history.h): schema creation and version check,
 * recording a report, listing, reloading, trend queries and the HTML dashboard.
 * SQL uses bound parameters only (no string formatting of values). NULL stores unknown
 * (non-finite) numbers.
 * Deliberately not here: concurrency beyond SQLite's own locking (a 30 s busy timeout). */
#include "report/history.h"
#include "report/svg.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct tw_history {
    sqlite3 *db;
    char *path;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS tw_meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY, recorded_unix REAL NOT NULL, task TEXT NOT NULL, label TEXT NOT NULL,"
    " verdict TEXT NOT NULL, git_commit TEXT NOT NULL, metric TEXT NOT NULL, target REAL);"
    "CREATE TABLE IF NOT EXISTS arms(id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,"
    " kind TEXT NOT NULL, run_dir TEXT, task TEXT NOT NULL, config_hash TEXT NOT NULL, model_hash TEXT NOT NULL,"
    " adapter_hash TEXT NOT NULL, data_hash TEXT NOT NULL, predictions_sha256 TEXT NOT NULL, git_commit TEXT NOT NULL,"
    " finished_unix REAL, n INTEGER NOT NULL, primary_metric TEXT NOT NULL, value REAL, lo REAL, hi REAL, ci_level REAL,"
    " invalid_rate REAL, cost_per_call REAL, p50_ms REAL, p95_ms REAL, tokens_in REAL, tokens_out REAL,"
    " n_rated INTEGER NOT NULL DEFAULT 0, review_mean REAL);"
    "CREATE TABLE IF NOT EXISTS metrics(arm_id INTEGER NOT NULL REFERENCES arms(id), name TEXT NOT NULL, value REAL,"
    " lo REAL, hi REAL, PRIMARY KEY(arm_id, name));"
    "CREATE INDEX IF NOT EXISTS arms_by_name ON arms(task, name);";

static tw_status db_error(tw_error *err, tw_history *h, const char *what)
{
    return tw_error_set(err, TW_ERR_IO, "%s: %s: %s", h->path, what, h->db ? sqlite3_errmsg(h->db) : "out of memory");
}

static tw_status exec(tw_history *h, const char *sql, const char *what, tw_error *err)
{
    if (sqlite3_exec(h->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_error(err, h, what);
    return TW_OK;
}

static void bind_num(sqlite3_stmt *q, int i, double v)
{
    if (isfinite(v)) sqlite3_bind_double(q, i, v);
    else sqlite3_bind_null(q, i);
}

static double col_num(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? NAN : sqlite3_column_double(q, i);
}

static const char *col_str(sqlite3_stmt *q, int i)
{
    const char *s = (const char *)sqlite3_column_text(q, i);
    return s ? s : "";
}

static tw_status check_schema(tw_history *h, tw_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot read the file");
    int rc, tables = 0;
    bool meta = false;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        tables++;
        if (strcmp(col_str(q, 0), "tw_meta") == 0) meta = true;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return db_error(err, h, "cannot read the file");
    if (tables && !meta) return tw_error_set(err, TW_ERR_INVALID, "%s: not a tunewise history (no tw_meta table)", h->path);
    if (meta) {
        if (sqlite3_prepare_v2(h->db, "SELECT value FROM tw_meta WHERE key = 'kind'", -1, &q, NULL) != SQLITE_OK)
            return db_error(err, h, "cannot read tw_meta");
        bool ok = sqlite3_step(q) == SQLITE_ROW && strcmp(col_str(q, 0), "history") == 0;
        sqlite3_finalize(q);
        if (!ok) return tw_error_set(err, TW_ERR_INVALID, "%s: not a tunewise history (a tunewise file of another kind?)", h->path);
        if (sqlite3_prepare_v2(h->db, "SELECT value FROM tw_meta WHERE key = 'schema_version'", -1, &q, NULL) != SQLITE_OK)
            return db_error(err, h, "cannot read tw_meta");
        long v = sqlite3_step(q) == SQLITE_ROW ? strtol(col_str(q, 0), NULL, 10) : 0;
        sqlite3_finalize(q);
        if (v > TW_HISTORY_SCHEMA)
            return tw_error_set(err, TW_ERR_UNSUPPORTED, "%s: history schema version %ld is newer than this build supports (%d)", h->path, v,
                                TW_HISTORY_SCHEMA);
        if (v < 1) return tw_error_set(err, TW_ERR_INVALID, "%s: history has no valid schema_version", h->path);
        return TW_OK;
    }
    tw_status st = exec(h, "BEGIN IMMEDIATE", "cannot start a transaction", err);
    st = st ? st : exec(h, SCHEMA, "cannot create the schema", err);
    st = st ? st : exec(h, "INSERT OR IGNORE INTO tw_meta VALUES('kind','history');"
                           "INSERT OR IGNORE INTO tw_meta VALUES('schema_version','1');"
                           "INSERT OR IGNORE INTO tw_meta VALUES('created_by','tunewise " TW_VERSION_STRING "')",
                        "cannot write tw_meta", err);
    st = st ? st : exec(h, "COMMIT", "cannot commit", err);
    if (st) sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

tw_status tw_history_open(tw_history **out, const char *path, tw_error *err)
{
    *out = NULL;
    tw_history *h = calloc(1, sizeof *h);
    if (!h || !(h->path = strdup(path))) {
        free(h);
        return tw_error_set(err, TW_ERR_NOMEM, "history: out of memory");
    }
    tw_status st = TW_OK;
    if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        st = db_error(err, h, "cannot open");
    if (!st) sqlite3_busy_timeout(h->db, 30000);
    st = st ? st : check_schema(h, err);
    if (st) { tw_history_close(h); return st; }
    *out = h;
    return TW_OK;
}

void tw_history_close(tw_history *h)
{
    if (!h) return;
    sqlite3_close(h->db);
    free(h->path);
    free(h);
}

static tw_status arm_known(tw_history *h, const tw_rep_arm *a, bool *known, tw_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db, "SELECT 1 FROM arms WHERE predictions_sha256 = ?1 AND config_hash = ?2 AND finished_unix IS ?3 AND name = ?4",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot query arms");
    sqlite3_bind_text(q, 1, a->predictions_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, a->config_hash, -1, SQLITE_STATIC);
    bind_num(q, 3, a->finished_unix);
    sqlite3_bind_text(q, 4, a->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(err, h, "cannot query arms");
    /* an arm without provenance (built in memory) is never a duplicate */
    *known = rc == SQLITE_ROW && *a->predictions_sha256;
    return TW_OK;
}

static tw_status insert_arm(tw_history *h, int64_t run_id, const tw_rep_arm *a, const char *report_task, tw_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db,
                           "INSERT INTO arms(run_id,name,kind,run_dir,task,config_hash,model_hash,adapter_hash,data_hash,predictions_sha256,"
                           "git_commit,finished_unix,n,primary_metric,value,lo,hi,ci_level,invalid_rate,cost_per_call,p50_ms,p95_ms,tokens_in,"
                           "tokens_out,n_rated,review_mean) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26)",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot record an arm");
    sqlite3_bind_int64(q, 1, run_id);
    /* an arm built in memory may leave its task to the report */
    const char *task = a->task && *a->task ? a->task : (report_task ? report_task : "");
    const char *s[] = {a->name, a->kind, a->run_dir, task, a->config_hash, a->model_hash, a->adapter_hash, a->data_hash,
                       a->predictions_sha256, a->git_commit};
    for (int i = 0; i < 10; i++) {
        if (s[i]) sqlite3_bind_text(q, 2 + i, s[i], -1, SQLITE_STATIC);
        else sqlite3_bind_null(q, 2 + i);
    }
    bind_num(q, 12, a->finished_unix);
    sqlite3_bind_int64(q, 13, (sqlite3_int64)a->n);
    sqlite3_bind_text(q, 14, a->metric_name, -1, SQLITE_STATIC);
    const double v[] = {a->metric, a->lo, a->hi, a->ci_level, a->invalid_rate, a->cost_per_call, tw_rep_arm_latency_q(a, 0.5),
                        tw_rep_arm_latency_q(a, 0.95), a->tokens_in, a->tokens_out};
    for (int i = 0; i < 10; i++) bind_num(q, 15 + i, v[i]);
    sqlite3_bind_int64(q, 25, (sqlite3_int64)a->n_rated);
    bind_num(q, 26, a->n_rated ? a->review_mean : NAN);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return db_error(err, h, "cannot record an arm");
    int64_t arm_id = sqlite3_last_insert_rowid(h->db);
    if (sqlite3_prepare_v2(h->db, "INSERT OR REPLACE INTO metrics(arm_id,name,value,lo,hi) VALUES(?1,?2,?3,?4,?5)", -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot record metrics");
    bool has_primary = false;
    for (size_t i = 0; i <= a->n_extra; i++) {
        const char *name;
        double val, lo, hi;
        if (i < a->n_extra) { name = a->extra_names[i]; val = a->extra_value[i]; lo = a->extra_lo[i]; hi = a->extra_hi[i]; }
        else if (!has_primary && *a->metric_name) { name = a->metric_name; val = a->metric; lo = a->lo; hi = a->hi; }
        else break;
        if (strcmp(name, a->metric_name) == 0) has_primary = true;
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, arm_id);
        sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
        bind_num(q, 3, val); bind_num(q, 4, lo); bind_num(q, 5, hi);
        if (sqlite3_step(q) != SQLITE_DONE) { sqlite3_finalize(q); return db_error(err, h, "cannot record metrics"); }
    }
    sqlite3_finalize(q);
    return TW_OK;
}

tw_status tw_history_add(tw_history *h, const tw_report *r, const char *label, double now_unix, int64_t *run_id, tw_error *err)
{
    *run_id = 0;
    tw_status st = exec(h, "BEGIN IMMEDIATE", "cannot start a transaction", err);
    if (st) return st;
    size_t fresh = 0;
    bool *known = calloc(r->n_arms ? r->n_arms : 1, sizeof *known);
    if (!known) st = tw_error_set(err, TW_ERR_NOMEM, "history: out of memory");
    for (size_t i = 0; i < r->n_arms && !st; i++) {
        st = arm_known(h, &r->arms[i], &known[i], err);
        if (!known[i]) fresh++;
    }
    if (!st && fresh) {
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(h->db, "INSERT INTO runs(recorded_unix,task,label,verdict,git_commit,metric,target) VALUES(?1,?2,?3,?4,?5,?6,?7)", -1,
                               &q, NULL) != SQLITE_OK)
            st = db_error(err, h, "cannot record a run");
        if (!st) {
            const char *git = r->n_arms ? r->arms[0].git_commit : "";
            sqlite3_bind_double(q, 1, now_unix);
            sqlite3_bind_text(q, 2, r->task ? r->task : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 3, label ? label : (r->title ? r->title : ""), -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 4, r->verdict ? r->verdict : "", -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 5, git, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 6, r->metric_name ? r->metric_name : "", -1, SQLITE_STATIC);
            bind_num(q, 7, r->target);
            if (sqlite3_step(q) != SQLITE_DONE) st = db_error(err, h, "cannot record a run");
            sqlite3_finalize(q);
        }
        if (!st) *run_id = sqlite3_last_insert_rowid(h->db);
        for (size_t i = 0; i < r->n_arms && !st; i++)
            if (!known[i]) st = insert_arm(h, *run_id, &r->arms[i], r->task, err);
    }
    free(known);
    st = st ? st : exec(h, "COMMIT", "cannot commit", err);
    if (st) {
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
        *run_id = 0;
    }
    return st;
}

static void copy(char *dst, size_t cap, const char *s) { snprintf(dst, cap, "%s", s ? s : ""); }

tw_status tw_history_list(tw_history *h, tw_hist_run **out, size_t *n, tw_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db,
                           "SELECT r.id, r.recorded_unix, r.task, r.label, r.verdict, r.git_commit, (SELECT COUNT(*) FROM arms a WHERE a.run_id = r.id)"
                           " FROM runs r ORDER BY r.recorded_unix, r.id",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot list runs");
    size_t cap = 0;
    int rc;
    tw_status st = TW_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if ((st = tw_grow((void **)out, &cap, *n + 1, sizeof **out, err))) break;
        tw_hist_run *x = &(*out)[(*n)++];
        x->id = sqlite3_column_int64(q, 0);
        x->recorded_unix = sqlite3_column_double(q, 1);
        copy(x->task, sizeof x->task, col_str(q, 2));
        copy(x->label, sizeof x->label, col_str(q, 3));
        copy(x->verdict, sizeof x->verdict, col_str(q, 4));
        copy(x->git_commit, sizeof x->git_commit, col_str(q, 5));
        x->n_arms = (size_t)sqlite3_column_int64(q, 6);
    }
    sqlite3_finalize(q);
    if (!st && rc != SQLITE_DONE) st = db_error(err, h, "cannot list runs");
    if (st) { free(*out); *out = NULL; *n = 0; }
    return st;
}

static tw_status set(char **f, const char *v, tw_error *err) { return tw_report_set_str(f, v, err); }

tw_status tw_history_load(tw_history *h, int64_t run_id, tw_report *r, tw_error *err)
{
    sqlite3_stmt *q = NULL;
    if (tw_report_init(r, "", err)) return err->status;
    if (sqlite3_prepare_v2(h->db, "SELECT label, task, verdict, metric, target FROM runs WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot read runs");
    sqlite3_bind_int64(q, 1, run_id);
    tw_status st = TW_OK;
    if (sqlite3_step(q) != SQLITE_ROW) st = tw_error_set(err, TW_ERR_INVALID, "%s: no run with id %lld", h->path, (long long)run_id);
    st = st ? st : set(&r->title, col_str(q, 0), err);
    st = st ? st : set(&r->task, col_str(q, 1), err);
    st = st ? st : set(&r->verdict, col_str(q, 2), err);
    st = st ? st : set(&r->metric_name, col_str(q, 3), err);
    if (!st) r->target = col_num(q, 4);
    sqlite3_finalize(q);
    if (st) return st;
    if (sqlite3_prepare_v2(h->db,
                           "SELECT id,name,kind,run_dir,task,config_hash,model_hash,adapter_hash,data_hash,predictions_sha256,git_commit,"
                           "finished_unix,n,primary_metric,value,lo,hi,ci_level,invalid_rate,cost_per_call,tokens_in,tokens_out,n_rated,review_mean"
                           " FROM arms WHERE run_id = ?1 ORDER BY id",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot read arms");
    sqlite3_bind_int64(q, 1, run_id);
    int rc;
    while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        tw_rep_arm *a;
        int64_t arm_id = sqlite3_column_int64(q, 0);
        st = tw_report_add_arm(r, col_str(q, 1), &a, err);
        st = st ? st : set(&a->kind, col_str(q, 2), err);
        if (!st && sqlite3_column_type(q, 3) != SQLITE_NULL) st = set(&a->run_dir, col_str(q, 3), err);
        st = st ? st : set(&a->task, col_str(q, 4), err);
        st = st ? st : set(&a->config_hash, col_str(q, 5), err);
        st = st ? st : set(&a->model_hash, col_str(q, 6), err);
        st = st ? st : set(&a->adapter_hash, col_str(q, 7), err);
        st = st ? st : set(&a->data_hash, col_str(q, 8), err);
        st = st ? st : set(&a->predictions_sha256, col_str(q, 9), err);
        st = st ? st : set(&a->git_commit, col_str(q, 10), err);
        st = st ? st : set(&a->metric_name, col_str(q, 13), err);
        if (st) break;
        a->finished_unix = col_num(q, 11);
        a->n = (size_t)sqlite3_column_int64(q, 12);
        a->metric = col_num(q, 14); a->lo = col_num(q, 15); a->hi = col_num(q, 16); a->ci_level = col_num(q, 17);
        a->invalid_rate = col_num(q, 18); a->cost_per_call = col_num(q, 19);
        a->tokens_in = col_num(q, 20); a->tokens_out = col_num(q, 21);
        a->n_rated = (size_t)sqlite3_column_int64(q, 22); a->review_mean = col_num(q, 23);
        /* other metrics */
        sqlite3_stmt *m = NULL;
        if (sqlite3_prepare_v2(h->db, "SELECT name, value, lo, hi FROM metrics WHERE arm_id = ?1 ORDER BY rowid", -1, &m, NULL) != SQLITE_OK) {
            st = db_error(err, h, "cannot read metrics");
            break;
        }
        sqlite3_bind_int64(m, 1, arm_id);
        size_t cap = 0;
        while (!st && sqlite3_step(m) == SQLITE_ROW) {
            size_t k = a->n_extra, c1 = cap, c2 = cap, c3 = cap;
            st = tw_grow((void **)&a->extra_names, &cap, k + 1, sizeof(char *), err);
            st = st ? st : tw_grow((void **)&a->extra_value, &c1, k + 1, sizeof(double), err);
            st = st ? st : tw_grow((void **)&a->extra_lo, &c2, k + 1, sizeof(double), err);
            st = st ? st : tw_grow((void **)&a->extra_hi, &c3, k + 1, sizeof(double), err);
            if (st) break;
            if (!(a->extra_names[k] = strdup(col_str(m, 0)))) { st = tw_error_set(err, TW_ERR_NOMEM, "history: out of memory"); break; }
            a->extra_value[k] = col_num(m, 1); a->extra_lo[k] = col_num(m, 2); a->extra_hi[k] = col_num(m, 3);
            a->n_extra++;
        }
        sqlite3_finalize(m);
    }
    sqlite3_finalize(q);
    return st;
}

tw_status tw_history_find_arm(tw_history *h, const char *task, const char *arm, int64_t before_id, int64_t *run_id, tw_error *err)
{
    *run_id = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db, "SELECT run_id FROM arms WHERE task = ?1 AND name = ?2 AND (?3 = 0 OR run_id < ?3) ORDER BY run_id DESC LIMIT 1",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot query arms");
    sqlite3_bind_text(q, 1, task ? task : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, arm, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, before_id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *run_id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_error(err, h, "cannot query arms");
    return TW_OK;
}

tw_status tw_history_trend(tw_history *h, const char *task, const char *arm, const char *metric, tw_hist_point **out, size_t *n,
                           tw_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db,
                           "SELECT a.run_id, COALESCE(a.finished_unix, r.recorded_unix) AS t, m.value, m.lo, m.hi FROM arms a"
                           " JOIN runs r ON r.id = a.run_id JOIN metrics m ON m.arm_id = a.id"
                           " WHERE a.name = ?1 AND m.name = ?2 AND (?3 = '' OR a.task = ?3) ORDER BY t, a.run_id",
                           -1, &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot query the trend");
    sqlite3_bind_text(q, 1, arm, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, task ? task : "", -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc;
    tw_status st = TW_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if ((st = tw_grow((void **)out, &cap, *n + 1, sizeof **out, err))) break;
        (*out)[(*n)++] = (tw_hist_point){sqlite3_column_int64(q, 0), sqlite3_column_double(q, 1), col_num(q, 2), col_num(q, 3), col_num(q, 4)};
    }
    sqlite3_finalize(q);
    if (!st && rc != SQLITE_DONE) st = db_error(err, h, "cannot query the trend");
    if (st) { free(*out); *out = NULL; *n = 0; }
    return st;
}

/* ---- dashboard ------------------------------------------------------------------ */

static void fmt_time(char *b, size_t cap, double t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!isfinite(t) || !gmtime_r(&tt, &tm)) { snprintf(b, cap, "–"); return; }
    strftime(b, cap, "%Y-%m-%d %H:%M UTC", &tm);
}

/* One task's chart: x = index of the run in that task's history (1..), one series per arm. */
static tw_status task_chart(tw_history *h, tw_buf *o, const char *task, size_t task_idx, tw_error *err)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(h->db,
                           "SELECT a.name, a.run_id, a.value, a.lo, a.hi, a.primary_metric FROM arms a WHERE a.task = ?1 ORDER BY a.name, a.run_id", -1,
                           &q, NULL) != SQLITE_OK)
        return db_error(err, h, "cannot query arms");
    sqlite3_bind_text(q, 1, task, -1, SQLITE_STATIC);
    /* run ids of this task, to map to 1.. */
    sqlite3_stmt *rq = NULL;
    if (sqlite3_prepare_v2(h->db, "SELECT id FROM runs WHERE task = ?1 ORDER BY recorded_unix, id", -1, &rq, NULL) != SQLITE_OK) {
        sqlite3_finalize(q);
        return db_error(err, h, "cannot query runs");
    }
    sqlite3_bind_text(rq, 1, task, -1, SQLITE_STATIC);
    int64_t *ids = NULL;
    size_t nids = 0, capi = 0;
    tw_status st = TW_OK;
    while (!st && sqlite3_step(rq) == SQLITE_ROW)
        if (!(st = tw_grow((void **)&ids, &capi, nids + 1, sizeof *ids, err))) ids[nids++] = sqlite3_column_int64(rq, 0);
    sqlite3_finalize(rq);
    /* collect series */
    typedef struct { char *name; double *x, *y, *lo, *hi; size_t n, cap; } ser;
    ser *s = NULL;
    size_t ns = 0, caps = 0;
    char metric[128] = "";
    while (!st && sqlite3_step(q) == SQLITE_ROW) {
        const char *name = col_str(q, 0);
        if (!ns || strcmp(s[ns - 1].name, name) != 0) {
            if ((st = tw_grow((void **)&s, &caps, ns + 1, sizeof *s, err))) break;
            memset(&s[ns], 0, sizeof s[ns]);
            if (!(s[ns++].name = strdup(name))) { st = tw_error_set(err, TW_ERR_NOMEM, "history: out of memory"); break; }
        }
        if (!*metric) copy(metric, sizeof metric, col_str(q, 5));
        ser *c = &s[ns - 1];
        size_t c1 = c->cap, c2 = c->cap, c3 = c->cap, c4 = c->cap;
        st = tw_grow((void **)&c->x, &c1, c->n + 1, sizeof(double), err);
        st = st ? st : tw_grow((void **)&c->y, &c2, c->n + 1, sizeof(double), err);
        st = st ? st : tw_grow((void **)&c->lo, &c3, c->n + 1, sizeof(double), err);
        st = st ? st : tw_grow((void **)&c->hi, &c4, c->n + 1, sizeof(double), err);
        if (st) break;
        c->cap = c1;
        int64_t rid = sqlite3_column_int64(q, 1);
        double x = NAN;
        for (size_t k = 0; k < nids; k++)
            if (ids[k] == rid) x = (double)(k + 1);
        c->x[c->n] = x; c->y[c->n] = col_num(q, 2); c->lo[c->n] = col_num(q, 3); c->hi[c->n] = col_num(q, 4);
        c->n++;
    }
    sqlite3_finalize(q);
    free(ids);
    if (!st) {
        tw_svg_series *sv = calloc(ns ? ns : 1, sizeof *sv);
        tw_buf title = {0}, desc = {0};
        if (!sv) st = tw_error_set(err, TW_ERR_NOMEM, "history: out of memory");
        for (size_t i = 0; i < ns && !st; i++) sv[i] = (tw_svg_series){s[i].name, s[i].x, s[i].y, s[i].lo, s[i].hi, s[i].n};
        char id[32];
        snprintf(id, sizeof id, "trend-%zu", task_idx);
        if (!st && (tw_buf_printf(&title, "%s: %s over recorded runs", task, *metric ? metric : "metric") ||
                    tw_buf_printf(&desc, "Line chart of %s per arm for task %s across %zu recorded runs (x: run number, oldest first; band: CI).",
                                  *metric ? metric : "metric", task, nids)))
            st = tw_error_set(err, TW_ERR_NOMEM, "history: out of memory");
        tw_svg_frame f = {id, title.data, desc.data, "recorded run (oldest first)", *metric ? metric : "metric", 0, 0};
        st = st ? st : tw_svg_lines(o, &f, sv, ns, NULL, 0, NULL, 0, false, false, err);
        free(sv);
        tw_buf_free(&title);
        tw_buf_free(&desc);
    }
    for (size_t i = 0; i < ns; i++) { free(s[i].name); free(s[i].x); free(s[i].y); free(s[i].lo); free(s[i].hi); }
    free(s);
    return st;
}

tw_status tw_history_dashboard(tw_history *h, tw_buf *o, tw_error *err)
{
    tw_hist_run *runs = NULL;
    size_t nr = 0;
    if (tw_history_list(h, &runs, &nr, err)) return err->status;
    tw_status st = tw_buf_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                                  "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
                                  "<title>tunewise history</title>\n<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px 24px;color:#222}"
                                  "table{border-collapse:collapse;font-size:.92em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
                                  "th{background:#f3f3f3}.changed{background:#fff3cd}svg.chart{max-width:100%;height:auto;border:1px solid #eee}</style>\n"
                                  "</head>\n<body>\n<main>\n<h1>tunewise history</h1>\n");
    st = st ? st : tw_buf_printf(o, "<p>%zu recorded run%s.</p>\n", nr, nr == 1 ? "" : "s");
    /* distinct tasks in first-seen order */
    for (size_t i = 0, t = 0; i < nr && !st; i++) {
        bool seen = false;
        for (size_t k = 0; k < i; k++)
            if (strcmp(runs[k].task, runs[i].task) == 0) seen = true;
        if (seen) continue;
        st = tw_buf_puts(o, "<h2>Task ");
        st = st ? st : tw_html_escape(o, *runs[i].task ? runs[i].task : "(unnamed)");
        st = st ? st : tw_buf_puts(o, "</h2>\n<figure>\n");
        if (st) break;
        if ((st = task_chart(h, o, runs[i].task, t++, err))) goto out;
        st = tw_buf_puts(o, "<figcaption>Primary metric of each arm per recorded run, with its CI band.</figcaption></figure>\n"
                            "<table><tr><th scope=\"col\">run</th><th scope=\"col\">recorded</th><th scope=\"col\">label</th><th scope=\"col\">arms</th>"
                            "<th scope=\"col\">verdict</th><th scope=\"col\">commit</th></tr>\n");
        const char *prev = NULL;
        for (size_t k = i, num = 1; k < nr && !st; k++) {
            if (strcmp(runs[k].task, runs[i].task) != 0) continue;
            char when[64];
            fmt_time(when, sizeof when, runs[k].recorded_unix);
            bool changed = prev && strcmp(prev, runs[k].verdict) != 0;
            st = tw_buf_printf(o, "<tr%s><td>#%zu (id %lld)</td><td>%s</td><td>", changed ? " class=\"changed\"" : "", num++, (long long)runs[k].id, when);
            st = st ? st : tw_html_escape(o, runs[k].label);
            st = st ? st : tw_buf_printf(o, "</td><td>%zu</td><td>", runs[k].n_arms);
            st = st ? st : tw_html_escape(o, runs[k].verdict);
            st = st ? st : tw_buf_puts(o, changed ? " <strong>(verdict changed)</strong>" : "");
            st = st ? st : tw_buf_puts(o, "</td><td><code>");
            st = st ? st : tw_html_escape(o, runs[k].git_commit);
            st = st ? st : tw_buf_puts(o, "</code></td></tr>\n");
            prev = runs[k].verdict;
        }
        st = st ? st : tw_buf_puts(o, "</table>\n");
    }
    st = st ? st : tw_buf_puts(o, "</main>\n</body>\n</html>\n");
    if (st) st = tw_error_set(err, st, "history: out of memory");
out:
    free(runs);
    return st;
}
