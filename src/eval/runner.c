/* runner.c — run an arm over a split into a run directory (runner.h): the journal that
 * makes runs resumable, the final predictions / metrics / run files, and the adapter that
 * puts the classic arm behind the arm interface.
 *
 * Crash safety. Each finished row is appended to predictions.partial.jsonl as one line and
 * flushed to the OS (a killed process loses nothing the OS has), fsync'd every sync_every
 * rows (a power cut loses at most that many). A kill in the middle of a line leaves a
 * last line without its "\n": resuming drops it (truncates the file to its last complete
 * line). Final files are written with temp file + rename, then the journal is removed —
 * at every instant the directory holds either the journal or the finished run.
 *
 * Deliberately not here: the arms' own logic, scoring (score/), what a "split" is (task/). */
#include "eval/runner.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef TW_GIT_COMMIT
#define TW_GIT_COMMIT "unknown"
#endif

#define JOURNAL_NAME "predictions.partial.jsonl"
#define PRED_NAME "predictions.jsonl"
#define METRICS_NAME "metrics.json"
#define RUN_NAME "run.json"
#define JOURNAL_FORMAT "tunewise-eval-journal"
#define JOURNAL_VERSION 1
#define RUN_FORMAT "tunewise-run"
#define RUN_VERSION 1

tw_eval_params tw_eval_default_params(void)
{
    tw_eval_params p;
    memset(&p, 0, sizeof p);
    p.score = tw_score_default_params();
    p.seed = 1;
    p.batch_size = 1;
    p.sync_every = 16;
    return p;
}

void tw_eval_arm_free(tw_eval_arm *arm)
{
    if (!arm) return;
    if (arm->ops && arm->ops->destroy) arm->ops->destroy(arm->state);
    free(arm);
}

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- hashes ------------------------------------------------------------- */
static json_t *arm_identity(const tw_eval_arm *arm)
{
    json_t *cfg = arm->ops->config ? arm->ops->config(arm) : json_object();
    if (!cfg) return NULL;
    json_t *o = json_pack("{s:s, s:o, s:s, s:s}", "arm", arm->ops->name, "config", cfg, "model_hash", arm->model_hash,
                          "adapter_hash", arm->adapter_hash);
    return o;
}

tw_status tw_eval_arm_config_hash(const tw_eval_arm *arm, char hex[65], tw_error *err)
{
    json_t *id = arm_identity(arm);
    char *s = id ? json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(id);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "arm '%s': cannot serialise its configuration", arm->ops->name);
    tw_sha256(s, strlen(s), hex);
    free(s);
    return TW_OK;
}

static tw_status net(tw_buf *b, const char *s)
{
    if (!s) return tw_buf_puts(b, "-,");   /* absent differs from "" ("0:,") */
    size_t n = strlen(s);
    tw_status st = tw_buf_printf(b, "%zu:", n);
    if (!st) st = tw_buf_append(b, s, n);
    if (!st) st = tw_buf_putc(b, ',');
    return st;
}

tw_status tw_eval_data_hash(const tw_example *rows, size_t n, char hex[65], tw_error *err)
{
    tw_buf b = {0};
    tw_status st = tw_buf_puts(&b, "tunewise-data-v1");
    for (size_t i = 0; !st && i < n; i++) {
        const tw_example *ex = &rows[i];
        st = net(&b, ex->id);
        if (!st) st = net(&b, ex->input);
        if (!st) st = net(&b, ex->output);
        if (!st) st = tw_buf_printf(&b, "%zu:", ex->n_refs);
        for (size_t r = 0; !st && r < ex->n_refs; r++) st = net(&b, ex->refs[r]);
        if (!st) st = tw_buf_putc(&b, '\x1e');
    }
    if (st) {
        tw_buf_free(&b);
        return tw_error_set(err, TW_ERR_NOMEM, "data hash: out of memory");
    }
    tw_sha256(b.data ? b.data : "", b.len, hex);
    tw_buf_free(&b);
    return TW_OK;
}

/* ---- journal records ---------------------------------------------------- */
static int put_s(json_t *o, const char *k, const char *v) { return v ? json_object_set_new(o, k, json_string(v)) : 0; }
static int put_n(json_t *o, const char *k, double v) { return isnan(v) ? 0 : json_object_set_new(o, k, json_real(v)); }

/* One journal line (no newline): the predictions fields, numbers with 17 significant
 * digits so they read back to the same doubles. Heap string or NULL on OOM / bad UTF-8. */
static char *record_line(const tw_pred *p)
{
    json_t *o = json_object();
    if (!o) return NULL;
    int bad = put_s(o, "id", p->id) | put_s(o, "input", p->input) | put_s(o, "reference", p->reference) |
              put_s(o, "prediction", p->prediction ? p->prediction : "") | put_s(o, "parsed", p->parsed) |
              json_object_set_new(o, "valid", json_boolean(p->valid)) | put_n(o, "latency_ms", p->latency_ms) |
              put_n(o, "tokens_in", p->tokens_in) | put_n(o, "tokens_out", p->tokens_out) | put_n(o, "cost", p->cost);
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

static tw_status get_s(json_t *o, const char *k, char **out, const char *path, size_t line, tw_error *err)
{
    json_t *v = json_object_get(o, k);
    *out = NULL;
    if (!v || json_is_null(v)) return TW_OK;
    if (!json_is_string(v)) return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: field '%s' must be a string", path, line, k);
    *out = tw_strndup(json_string_value(v), json_string_length(v), err);
    return *out ? TW_OK : TW_ERR_NOMEM;
}

static tw_status get_n(json_t *o, const char *k, double *out, const char *path, size_t line, tw_error *err)
{
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return TW_OK;
    if (!json_is_number(v)) return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: field '%s' must be a number", path, line, k);
    *out = json_number_value(v);
    return TW_OK;
}

static tw_status parse_record(const char *s, size_t len, tw_pred *p, const char *path, size_t line, tw_error *err)
{
    tw_pred_init(p);
    json_error_t je;
    json_t *o = json_loadb(s, len, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return tw_error_set(err, TW_ERR_PARSE, "%s:%zu: not a JSON object (%s): the journal is damaged; use a fresh "
                            "output directory or --force to start over", path, line, o ? "wrong type" : je.text);
    }
    tw_status st;
    json_t *valid = json_object_get(o, "valid");
    if ((st = get_s(o, "id", &p->id, path, line, err)) || (st = get_s(o, "input", &p->input, path, line, err)) ||
        (st = get_s(o, "reference", &p->reference, path, line, err)) ||
        (st = get_s(o, "prediction", &p->prediction, path, line, err)) ||
        (st = get_s(o, "parsed", &p->parsed, path, line, err)) ||
        (st = get_n(o, "latency_ms", &p->latency_ms, path, line, err)) ||
        (st = get_n(o, "tokens_in", &p->tokens_in, path, line, err)) ||
        (st = get_n(o, "tokens_out", &p->tokens_out, path, line, err)) ||
        (st = get_n(o, "cost", &p->cost, path, line, err))) {
    } else if (!json_is_boolean(valid)) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: field 'valid' must be true or false", path, line);
    } else if (!p->id || !p->prediction) {
        st = tw_error_set(err, TW_ERR_PARSE, "%s:%zu: record without '%s'", path, line, !p->id ? "id" : "prediction");
    } else {
        p->valid = json_is_true(valid);
        p->line = line;
    }
    json_decref(o);
    if (st) tw_pred_free(p);
    return st;
}

/* ---- run state ---------------------------------------------------------- */
typedef struct run {
    const tw_example *rows;
    size_t n;
    tw_str_index ix;        /* id → row */
    tw_pred *preds;         /* per row; preds[i].id != NULL once done */
    size_t n_done;
    char config_hash[65], data_hash[65];
    uint64_t seed;          /* tw_eval_params.seed: handed to the arm, so it must match too */
    json_t *identity;       /* arm_identity() */
    char *dir, *journal, *pred_path, *metrics_path, *run_path;
    FILE *jf;               /* journal, append mode */
    size_t since_sync;
} run;

static char *join(const char *dir, const char *name, tw_error *err)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = tw_malloc(n, err);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static tw_status remove_file(const char *path, tw_error *err)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return tw_error_set(err, TW_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return TW_OK;
}

/* fsync the directory so renames / creations / unlinks in it are durable. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static tw_status mismatch(const char *path, const char *what, const char *theirs, const char *ours, tw_error *err)
{
    return tw_error_set(err, TW_ERR_INVALID, "%s: written by a run with a different %s (%.12s..., this run %.12s...): "
                        "use a fresh output directory, or --force to discard it and start over", path, what,
                        theirs, ours);
}

static tw_status seed_check(const char *path, const json_t *v, uint64_t ours, tw_error *err)
{
    if (!json_is_integer(v))
        return tw_error_set(err, TW_ERR_PARSE, "%s: no seed recorded; use a fresh output directory or --force", path);
    uint64_t theirs = (uint64_t)json_integer_value(v);
    if (theirs != ours)
        return tw_error_set(err, TW_ERR_INVALID, "%s: written by a run with seed %llu (this run %llu): use the same "
                            "seed, a fresh output directory, or --force to discard it and start over", path,
                            (unsigned long long)theirs, (unsigned long long)ours);
    return TW_OK;
}

/* Record a resumed prediction for its row (steals p's strings). */
static tw_status adopt(run *r, tw_pred *p, const char *path, tw_error *err)
{
    size_t i;
    if (!tw_str_index_get(&r->ix, p->id, &i)) {
        tw_status st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: id '%s' is not among the rows of this run (the data "
                                    "changed?); use a fresh output directory or --force", path, p->line, p->id);
        tw_pred_free(p);
        return st;
    }
    if (r->preds[i].id) {
        tw_status st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: duplicate id '%s'", path, p->line, p->id);
        tw_pred_free(p);
        return st;
    }
    r->preds[i] = *p;
    r->n_done++;
    return TW_OK;
}

/* Read an existing journal. *valid_len = bytes up to and including its last "\n"
 * (0: nothing usable, not even the header — start the journal over). */
static tw_status read_journal(run *r, size_t *valid_len, tw_error *err)
{
    char *data = NULL;
    size_t len = 0;
    tw_status st = tw_file_read(r->journal, &data, &len, err);
    if (st) return st;
    size_t end = len;
    while (end > 0 && data[end - 1] != '\n') end--;
    *valid_len = end;
    size_t pos = 0, line = 0;
    while (!st && pos < end) {
        char *nl = memchr(data + pos, '\n', end - pos);
        size_t ll = (size_t)(nl - (data + pos));
        line++;
        if (line == 1) {
            json_error_t je;
            json_t *h = json_loadb(data + pos, ll, 0, &je);
            const char *fmt = json_string_value(json_object_get(h, "format"));
            const char *ch = json_string_value(json_object_get(h, "config_hash"));
            const char *dh = json_string_value(json_object_get(h, "data_hash"));
            json_int_t ver = json_integer_value(json_object_get(h, "version"));
            if (!h || !fmt || strcmp(fmt, JOURNAL_FORMAT) != 0 || !ch || !dh)
                st = tw_error_set(err, TW_ERR_PARSE, "%s:1: not a tunewise eval journal header; use a fresh output "
                                  "directory or --force to start over", r->journal);
            else if (ver != JOURNAL_VERSION)
                st = tw_error_set(err, TW_ERR_UNSUPPORTED, "%s:1: journal version %lld, this build reads %d; use "
                                  "--force to start over", r->journal, (long long)ver, JOURNAL_VERSION);
            else if (strcmp(ch, r->config_hash) != 0)
                st = mismatch(r->journal, "arm configuration", ch, r->config_hash, err);
            else if (strcmp(dh, r->data_hash) != 0)
                st = mismatch(r->journal, "data (rows)", dh, r->data_hash, err);
            else
                st = seed_check(r->journal, json_object_get(h, "seed"), r->seed, err);
            json_decref(h);
        } else if (ll > 0) {
            tw_pred p;
            st = parse_record(data + pos, ll, &p, r->journal, line, err);
            if (!st) st = adopt(r, &p, r->journal, err);
        }
        pos += ll + 1;
    }
    free(data);
    return st;
}

/* A finished run in the directory (no journal): check run.json, take predictions.jsonl. */
static tw_status read_finished(run *r, tw_error *err)
{
    json_error_t je;
    json_t *rj = json_load_file(r->run_path, 0, &je);
    if (!rj) return tw_error_set(err, TW_ERR_PARSE, "%s:%d:%d: %s", r->run_path, je.line, je.column, je.text);
    const char *ch = json_string_value(json_object_get(json_object_get(rj, "arm"), "config_hash"));
    const char *dh = json_string_value(json_object_get(json_object_get(rj, "data"), "hash"));
    tw_status st = TW_OK;
    if (!ch || !dh)
        st = tw_error_set(err, TW_ERR_PARSE, "%s: not a tunewise run file (no arm.config_hash / data.hash); use a "
                          "fresh output directory or --force", r->run_path);
    else if (strcmp(ch, r->config_hash) != 0)
        st = mismatch(r->run_path, "arm configuration", ch, r->config_hash, err);
    else if (strcmp(dh, r->data_hash) != 0)
        st = mismatch(r->run_path, "data (rows)", dh, r->data_hash, err);
    else
        st = seed_check(r->run_path, json_object_get(rj, "seed"), r->seed, err);
    json_decref(rj);
    if (st) return st;
    tw_pred_set ps;
    if ((st = tw_pred_load(&ps, r->pred_path, err))) return st;
    for (size_t i = 0; !st && i < ps.n; i++) {
        st = adopt(r, &ps.rows[i], r->pred_path, err);
        tw_pred_init(&ps.rows[i]);   /* adopted or freed by adopt */
    }
    tw_pred_set_free(&ps);
    return st;
}

static tw_status journal_append(run *r, const tw_pred *p, bool sync_now, tw_error *err)
{
    char *line = record_line(p);
    if (!line) return tw_error_set(err, TW_ERR_NOMEM, "%s: cannot serialise the prediction for id '%s' (out of "
                                   "memory or invalid UTF-8)", r->journal, p->id);
    bool ok = fputs(line, r->jf) >= 0 && fputc('\n', r->jf) != EOF && fflush(r->jf) == 0;
    free(line);
    if (ok && sync_now) ok = fsync(fileno(r->jf)) == 0;
    if (!ok) return tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", r->journal, strerror(errno));
    return TW_OK;
}

/* Open the journal for appending: keep valid_len bytes of an existing one (dropping a torn
 * last line), or start a new one with its header (and the rows already known, when
 * resuming from a finished run). */
static tw_status journal_open(run *r, size_t valid_len, bool had_journal, const tw_eval_arm *arm, tw_error *err)
{
    if (had_journal && valid_len > 0) {
        if (truncate(r->journal, (off_t)valid_len) != 0)
            return tw_error_set(err, TW_ERR_IO, "%s: cannot drop the torn last line: %s", r->journal, strerror(errno));
        r->jf = fopen(r->journal, "ab");
        if (!r->jf) return tw_error_set(err, TW_ERR_IO, "%s: cannot open for appending: %s", r->journal, strerror(errno));
        return TW_OK;
    }
    r->jf = fopen(r->journal, "wb");
    if (!r->jf) return tw_error_set(err, TW_ERR_IO, "%s: cannot create: %s", r->journal, strerror(errno));
    json_t *h = json_pack("{s:s, s:i, s:s, s:s, s:s, s:I, s:I}", "format", JOURNAL_FORMAT, "version", JOURNAL_VERSION,
                          "arm", arm->ops->name, "config_hash", r->config_hash, "data_hash", r->data_hash, "seed",
                          (json_int_t)r->seed, "rows", (json_int_t)r->n);
    char *s = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(h);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", r->journal);
    bool ok = fputs(s, r->jf) >= 0 && fputc('\n', r->jf) != EOF && fflush(r->jf) == 0;
    free(s);
    if (!ok) return tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", r->journal, strerror(errno));
    tw_status st = TW_OK;
    for (size_t i = 0; !st && i < r->n; i++)
        if (r->preds[i].id) st = journal_append(r, &r->preds[i], false, err);
    if (!st && fsync(fileno(r->jf)) != 0)
        st = tw_error_set(err, TW_ERR_IO, "%s: fsync failed: %s", r->journal, strerror(errno));
    sync_dir(r->dir);
    return st;
}

/* Model output may hold invalid UTF-8 (a generation cut inside a multi-byte character);
 * JSON cannot carry it, so each invalid byte becomes U+FFFD. */
static tw_status fix_utf8(char **s, tw_error *err)
{
    if (!*s) return TW_OK;
    size_t n = strlen(*s);
    if (tw_utf8_valid(*s, n, NULL)) return TW_OK;
    tw_buf b = {0};
    tw_status st = tw_buf_reserve(&b, n + 16);
    for (size_t i = 0; !st && i < n;) {
        uint32_t cp;
        int len = tw_utf8_decode((const unsigned char *)*s + i, n - i, &cp);
        char enc[4];
        st = tw_buf_append(&b, enc, (size_t)tw_utf8_encode(cp, enc));
        i += (size_t)len;
    }
    if (st) {
        tw_buf_free(&b);
        return tw_error_set(err, TW_ERR_NOMEM, "eval: out of memory");
    }
    free(*s);
    *s = tw_buf_steal(&b);
    return TW_OK;
}

/* Finish one predicted row: fill what the runner owns, journal it. */
static tw_status finish_row(run *r, size_t i, tw_pred *p, double fallback_ms, const tw_eval_params *pp, tw_error *err)
{
    const tw_example *ex = &r->rows[i];
    free(p->id);
    free(p->reference);
    p->id = tw_strdup(ex->id, err);
    p->reference = ex->output ? tw_strdup(ex->output, err) : NULL;
    if (!p->input && ex->input) p->input = tw_strdup(ex->input, err);
    if (!p->prediction) p->prediction = tw_strdup("", err);
    if (!p->id || (ex->output && !p->reference) || (ex->input && !p->input) || !p->prediction)
        return tw_error_set(err, TW_ERR_NOMEM, "eval: out of memory");
    tw_status fs;
    if ((fs = fix_utf8(&p->prediction, err)) || (fs = fix_utf8(&p->parsed, err)) || (fs = fix_utf8(&p->input, err)))
        return fs;
    if (isnan(p->latency_ms)) p->latency_ms = fallback_ms;
    p->line = 0;
    size_t every = pp->sync_every ? pp->sync_every : 16;
    bool sync_now = ++r->since_sync >= every;
    if (sync_now) r->since_sync = 0;
    tw_status st = journal_append(r, p, sync_now, err);
    if (st) return st;
    r->preds[i] = *p;
    tw_pred_init(p);
    r->n_done++;
    return TW_OK;
}

static void run_free(run *r)
{
    if (r->jf) fclose(r->jf);
    tw_str_index_free(&r->ix);
    for (size_t i = 0; r->preds && i < r->n; i++) tw_pred_free(&r->preds[i]);
    free(r->preds);
    json_decref(r->identity);
    free(r->dir);
    free(r->journal);
    free(r->pred_path);
    free(r->metrics_path);
    free(r->run_path);
}

/* ---- scoring ------------------------------------------------------------ */
tw_status tw_eval_score_file(const char *pred_path, const tw_example *rows, size_t n, const tw_score_params *p,
                             json_t **report, tw_error *err)
{
    *report = NULL;
    tw_pred_set ps;
    tw_status st = tw_pred_load(&ps, pred_path, err);
    if (st) return st;
    tw_str_index by_id = {0};
    tw_score_item *items = tw_calloc(n ? n : 1, sizeof *items, err);
    bool *used = tw_calloc(ps.n, sizeof *used, err);
    if (!items || !used) st = TW_ERR_NOMEM;
    for (size_t i = 0; !st && i < ps.n; i++) st = tw_str_index_put(&by_id, ps.rows[i].id, i, NULL, NULL, err);
    for (size_t r = 0; !st && r < n; r++) {
        const tw_example *ex = &rows[r];
        tw_score_item *it = &items[r];
        size_t k;
        it->id = ex->id;
        it->reference = ex->output ? ex->output : "";
        it->refs = (const char *const *)ex->refs;
        it->n_refs = ex->n_refs;
        it->slice = ex->slice;
        it->prediction = "";
        it->latency_ms = it->tokens_in = it->tokens_out = NAN;
        if (tw_str_index_get(&by_id, ex->id, &k)) {
            const tw_pred *pr = &ps.rows[k];
            used[k] = true;
            it->prediction = pr->parsed ? pr->parsed : pr->prediction;
            it->latency_ms = pr->latency_ms;
            it->tokens_in = pr->tokens_in;
            it->tokens_out = pr->tokens_out;
        }
    }
    for (size_t i = 0; !st && i < ps.n; i++)
        if (!used[i])
            st = tw_error_set(err, TW_ERR_INVALID, "%s:%zu: id '%s' is not among the rows being scored", pred_path,
                              ps.rows[i].line, ps.rows[i].id);
    if (!st) st = tw_score(items, n, p, report, err);
    tw_str_index_free(&by_id);
    free(items);
    free(used);
    tw_pred_set_free(&ps);
    return st;
}

/* precision: 17 significant digits read back to the same doubles (metrics.json: equal to
 * tw_score's report exactly); 15 prints 0.95 as 0.95 (run.json, for people). */
static tw_status write_json(const char *path, const json_t *j, int precision, tw_error *err)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(precision));
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) { free(s); return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", path); }
    t[n] = '\n';
    t[n + 1] = '\0';
    tw_status st = tw_file_write_atomic(path, t, n + 1, err);
    free(t);
    return st;
}

static json_t *num_or_null(double v) { return isnan(v) || isinf(v) ? json_null() : json_real(v); }

static json_t *run_json(const run *r, const tw_eval_params *pp, const tw_eval_result *res, double started,
                        double predict_s, const char *pred_sha, tw_cache *cache)
{
    const tw_score_params *sp = &pp->score;
    json_t *arm = json_pack("{s:O, s:O, s:s, s:O, s:O}", "name", json_object_get(r->identity, "arm"), "config",
                            json_object_get(r->identity, "config"), "config_hash", r->config_hash, "model_hash",
                            json_object_get(r->identity, "model_hash"), "adapter_hash",
                            json_object_get(r->identity, "adapter_hash"));
    if (!arm) return NULL;
    const char *primary = sp->primary ? sp->primary : tw_score_default_primary(sp->task_type);
    double finished = unix_now();
    json_t *o = json_pack(
        "{s:s, s:i, s:s, s:s, s:o, s:{s:I, s:s}, s:I,"
        " s:{s:i, s:s?, s:i, s:f, s:I},"
        " s:{s:I, s:I, s:I, s:I, s:I, s:I},"
        " s:{s:f, s:f, s:f, s:f, s:o},"
        " s:{s:{s:s, s:s}, s:s, s:s}}",
        "format", RUN_FORMAT, "version", RUN_VERSION, "tunewise_version", TW_VERSION_STRING, "git_commit", TW_GIT_COMMIT,
        "arm", arm, "data", "rows", (json_int_t)r->n, "hash", r->data_hash, "seed", (json_int_t)pp->seed,
        "score", "task_type", sp->task_type, "primary", primary, "bootstrap", sp->bootstrap, "ci_level", sp->ci_level,
        "seed", (json_int_t)sp->seed,
        "counts", "rows", (json_int_t)res->n_rows, "resumed", (json_int_t)res->n_resumed, "predicted",
        (json_int_t)res->n_predicted, "invalid", (json_int_t)res->n_invalid, "cache_hits", (json_int_t)res->cache_hits,
        "cache_misses", (json_int_t)res->cache_misses,
        "timings", "started_unix", started, "finished_unix", finished, "seconds", res->seconds, "predict_seconds",
        predict_s, "rows_per_second", num_or_null(predict_s > 0 ? (double)res->n_predicted / predict_s : NAN),
        "files", "predictions", "path", PRED_NAME, "sha256", pred_sha, "metrics", METRICS_NAME, "journal", JOURNAL_NAME);
    if (!o) return NULL;
    if (cache) json_object_set_new(o, "cache", json_string(tw_cache_path(cache)));
    if (pp->context) json_object_set_new(o, "context", json_deep_copy(pp->context));
    return o;
}

/* ---- the run ------------------------------------------------------------ */
static tw_status check_rows(run *r, tw_error *err)
{
    if (r->n == 0) return tw_error_set(err, TW_ERR_INVALID, "eval: no rows to evaluate");
    for (size_t i = 0; i < r->n; i++) {
        const tw_example *ex = &r->rows[i];
        if (!ex->id || !ex->id[0])
            return tw_error_set(err, TW_ERR_INVALID, "eval: row %zu has no id (the journal needs unique ids)", i + 1);
        bool dup;
        size_t first;
        tw_status st = tw_str_index_put(&r->ix, ex->id, i, &dup, &first, err);
        if (st) return st;
        if (dup)
            return tw_error_set(err, TW_ERR_INVALID, "eval: duplicate id '%s' (rows %zu and %zu): the runner joins "
                                "predictions by id, so ids must be unique", ex->id, first + 1, i + 1);
    }
    return TW_OK;
}

static tw_status predict_rows(run *r, tw_eval_arm *arm, const tw_eval_params *pp, size_t *n_predicted, tw_error *err)
{
    tw_eval_ctx ctx = {.cache = pp->cache, .seed = pp->seed};
    size_t bs = (arm->ops->predict_batch && pp->batch_size > 1) ? pp->batch_size : 1;
    tw_pred *buf = tw_calloc(bs, sizeof *buf, err);
    size_t *idx = tw_calloc(bs, sizeof *idx, err);
    tw_example *batch_rows = bs > 1 ? tw_calloc(bs, sizeof *batch_rows, err) : NULL;
    tw_status st = (buf && idx && (bs == 1 || batch_rows)) ? TW_OK : TW_ERR_NOMEM;
    size_t remaining = r->n - r->n_done;
    tw_progress pg;
    char label[128];
    if (pp->label) snprintf(label, sizeof label, "%s", pp->label);
    else snprintf(label, sizeof label, "eval %s", arm->ops->name);
    tw_progress_begin(&pg, label, remaining, pp->progress && remaining > 0);
    size_t next = 0, done_here = 0;
    while (!st && done_here < remaining) {
        size_t k = 0;
        while (k < bs && next < r->n) {
            if (!r->preds[next].id) idx[k++] = next;
            next++;
        }
        if (k == 0) break;
        for (size_t j = 0; j < k; j++) tw_pred_init(&buf[j]);
        double t0 = tw_now();
        if (bs == 1) {
            st = arm->ops->predict(arm, &r->rows[idx[0]], &buf[0], &ctx, err);
        } else {
            /* shallow copies: predict_batch wants a contiguous array of rows */
            for (size_t j = 0; j < k; j++) batch_rows[j] = r->rows[idx[j]];
            st = arm->ops->predict_batch(arm, batch_rows, k, buf, &ctx, err);
        }
        double ms = (tw_now() - t0) * 1e3 / (double)k;
        if (st) tw_error_prefix(err, "arm '%s', row '%s'%s: ", arm->ops->name, r->rows[idx[0]].id,
                                k > 1 ? " (batch)" : "");
        for (size_t j = 0; !st && j < k; j++) {
            st = finish_row(r, idx[j], &buf[j], ms, pp, err);
            if (st) break;
            done_here++;
            tw_progress_update(&pg, done_here);
            if (pp->on_row && !pp->on_row(pp->on_row_user, done_here))
                st = tw_error_set(err, TW_ERR_RUNTIME, "eval: stopped after %zu rows (the journal %s keeps them; run "
                                  "again to resume)", done_here, r->journal);
        }
        for (size_t j = 0; j < k; j++) tw_pred_free(&buf[j]);
    }
    if (!st) tw_progress_end(&pg);
    *n_predicted = done_here;
    free(buf);
    free(idx);
    free(batch_rows);
    return st;
}

tw_status tw_eval_run(tw_eval_arm *arm, const tw_example *rows, size_t n, const char *out_dir,
                      const tw_eval_params *params, tw_eval_result *result, tw_error *err)
{
    tw_eval_params defaults = tw_eval_default_params();
    const tw_eval_params *pp = params ? params : &defaults;
    double t_start = tw_now(), started = unix_now();
    if (result) memset(result, 0, sizeof *result);
    if (!arm || !arm->ops || !arm->ops->predict || !arm->ops->name)
        return tw_error_set(err, TW_ERR_INVALID, "eval: arm without name or predict function");
    run r;
    memset(&r, 0, sizeof r);
    r.rows = rows;
    r.n = n;
    r.seed = pp->seed;
    size_t hits0 = 0, misses0 = 0;
    if (pp->cache) tw_cache_stats(pp->cache, &hits0, &misses0);
    tw_status st = check_rows(&r, err);
    if (!st) st = tw_eval_arm_config_hash(arm, r.config_hash, err);
    if (!st) st = tw_eval_data_hash(rows, n, r.data_hash, err);
    if (!st && !(r.identity = arm_identity(arm))) st = tw_error_set(err, TW_ERR_NOMEM, "eval: out of memory");
    if (!st) {
        r.preds = tw_calloc(n, sizeof *r.preds, err);
        r.dir = tw_strdup(out_dir, err);
        r.journal = join(out_dir, JOURNAL_NAME, err);
        r.pred_path = join(out_dir, PRED_NAME, err);
        r.metrics_path = join(out_dir, METRICS_NAME, err);
        r.run_path = join(out_dir, RUN_NAME, err);
        if (!r.preds || !r.dir || !r.journal || !r.pred_path || !r.metrics_path || !r.run_path) st = TW_ERR_NOMEM;
        for (size_t i = 0; r.preds && i < n; i++) tw_pred_init(&r.preds[i]);
    }
    if (!st) st = tw_mkdir_p(out_dir, err);
    /* One runner per directory: an advisory lock on the directory itself, released when
     * the process ends however it ends (so a killed run never leaves a stale lock). */
    int dir_fd = -1;
    if (!st) {
        dir_fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
            st = tw_error_set(err, TW_ERR_IO, "%s: cannot open the run directory: %s", out_dir, strerror(errno));
        else if (flock(dir_fd, LOCK_EX | LOCK_NB) != 0)
            st = tw_error_set(err, errno == EWOULDBLOCK ? TW_ERR_INVALID : TW_ERR_IO, "%s: %s", out_dir,
                              errno == EWOULDBLOCK ? "another evaluation is running in this directory"
                                                   : strerror(errno));
    }
    if (!st && pp->force) {
        if (!(st = remove_file(r.journal, err)) && !(st = remove_file(r.pred_path, err)) &&
            !(st = remove_file(r.metrics_path, err)))
            st = remove_file(r.run_path, err);
    }
    /* what the directory already holds */
    bool had_journal = false;
    size_t valid_len = 0;
    if (!st) {
        had_journal = tw_file_exists(r.journal);
        if (had_journal) {
            st = read_journal(&r, &valid_len, err);
        } else if (tw_file_exists(r.run_path)) {
            if (!tw_file_exists(r.pred_path))
                st = tw_error_set(err, TW_ERR_INVALID, "%s: a run file without %s; use a fresh output directory or "
                                  "--force", r.run_path, PRED_NAME);
            else
                st = read_finished(&r, err);
        } else if (tw_file_exists(r.pred_path)) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: a predictions file not written by the runner (no %s beside "
                              "it); use a fresh output directory or --force to replace it", r.pred_path, RUN_NAME);
        }
    }
    size_t n_resumed = r.n_done, n_predicted = 0;
    double t_predict = tw_now();
    if (!st && r.n_done < n) {
        st = journal_open(&r, valid_len, had_journal, arm, err);
        if (!st) st = predict_rows(&r, arm, pp, &n_predicted, err);
        if (r.jf) {
            if (fsync(fileno(r.jf)) != 0 && !st)
                st = tw_error_set(err, TW_ERR_IO, "%s: fsync failed: %s", r.journal, strerror(errno));
            if (fclose(r.jf) != 0 && !st)
                st = tw_error_set(err, TW_ERR_IO, "%s: close failed: %s", r.journal, strerror(errno));
            r.jf = NULL;
        }
    }
    double predict_s = tw_now() - t_predict;
    /* final files */
    tw_pred_writer *w = NULL;
    if (!st) st = tw_pred_writer_open(&w, r.pred_path, err);
    size_t n_invalid = 0;
    for (size_t i = 0; !st && i < n; i++) {
        if (!r.preds[i].valid) n_invalid++;
        st = tw_pred_writer_write(w, &r.preds[i], err);
    }
    if (w) {
        if (st) tw_pred_writer_abort(w);
        else st = tw_pred_writer_close(w, err);
    }
    json_t *metrics = NULL, *rj = NULL;
    if (!st) st = tw_eval_score_file(r.pred_path, rows, n, &pp->score, &metrics, err);
    if (!st) st = write_json(r.metrics_path, metrics, 17, err);
    tw_eval_result res;
    memset(&res, 0, sizeof res);
    if (!st) {
        res.n_rows = n;
        res.n_resumed = n_resumed;
        res.n_predicted = n_predicted;
        res.n_invalid = n_invalid;
        if (pp->cache) {
            tw_cache_stats(pp->cache, &res.cache_hits, &res.cache_misses);
            res.cache_hits -= hits0;
            res.cache_misses -= misses0;
        }
        char sha[65];
        st = tw_sha256_file(r.pred_path, sha, err);
        res.seconds = tw_now() - t_start;
        if (!st && !(rj = run_json(&r, pp, &res, started, predict_s, sha, pp->cache)))
            st = tw_error_set(err, TW_ERR_NOMEM, "eval: cannot build %s", r.run_path);
        if (!st) st = write_json(r.run_path, rj, 15, err);
        if (!st) st = remove_file(r.journal, err);
        if (!st) sync_dir(out_dir);
    }
    json_decref(rj);
    if (!st && result) {
        *result = res;
        result->metrics = metrics;
    } else {
        json_decref(metrics);
    }
    run_free(&r);
    if (dir_fd >= 0) close(dir_fd);   /* releases the lock */
    return st;
}

/* ---- the classic arm ----------------------------------------------------- */
typedef struct classic_state {
    const tw_classic *m;
    tw_classic *owned;
} classic_state;

static tw_status classic_predict(tw_eval_arm *arm, const tw_example *row, tw_pred *out, const tw_eval_ctx *ctx,
                                 tw_error *err)
{
    const classic_state *s = arm->state;
    const char *label;
    tw_status st = tw_classic_predict(s->m, row->input ? row->input : "", &label, NULL, err);
    if (st) return st;
    out->prediction = tw_strdup(label, err);
    out->tokens_in = out->tokens_out = NAN;
    out->cost = 0;   /* runs on the user's CPU: the cost model (decide/) prices machine time */
    return out->prediction ? TW_OK : TW_ERR_NOMEM;
}

static tw_status classic_predict_batch(tw_eval_arm *arm, const tw_example *rows, size_t n, tw_pred *out,
                                       const tw_eval_ctx *ctx, tw_error *err)
{
    const classic_state *s = arm->state;
    const char **texts = tw_calloc(n, sizeof *texts, err);
    const char **labels = tw_calloc(n, sizeof *labels, err);
    tw_status st = texts && labels ? TW_OK : TW_ERR_NOMEM;
    for (size_t i = 0; !st && i < n; i++) texts[i] = rows[i].input ? rows[i].input : "";
    if (!st) st = tw_classic_predict_batch(s->m, texts, n, labels, NULL, NULL, err);
    for (size_t i = 0; !st && i < n; i++) {
        out[i].prediction = tw_strdup(labels[i], err);
        out[i].cost = 0;
        if (!out[i].prediction) st = TW_ERR_NOMEM;
    }
    free(texts);
    free(labels);
    return st;
}

static json_t *classic_config(const tw_eval_arm *arm)
{
    const classic_state *s = arm->state;
    tw_classic_params p = tw_classic_get_params(s->m);
    /* The model hash already pins every weight; these make run.json readable. */
    return json_pack("{s:i, s:f, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "loss", p.loss, "C", p.C, "nb", p.nb,
                     "hash_bits", p.hash_bits, "word_ngram_max", p.word_ngram_max, "char_ngram_min", p.char_ngram_min,
                     "char_ngram_max", p.char_ngram_max, "sublinear_tf", p.sublinear_tf, "use_idf", p.use_idf,
                     "labels", (json_int_t)tw_classic_n_labels(s->m));
}

static void classic_destroy(void *state)
{
    classic_state *s = state;
    if (!s) return;
    tw_classic_free(s->owned);
    free(s);
}

static const tw_eval_arm_ops CLASSIC_OPS = {
    .name = "classic",
    .predict = classic_predict,
    .predict_batch = classic_predict_batch,
    .config = classic_config,
    .destroy = classic_destroy,
};

static tw_status classic_make(tw_eval_arm **out, const tw_classic *m, tw_classic *owned, const char *hash,
                              tw_error *err)
{
    *out = NULL;
    if (!hash || strlen(hash) > 64)
        return tw_error_set(err, TW_ERR_INVALID, "classic arm: model hash must be given (at most 64 characters)");
    tw_eval_arm *a = tw_calloc(1, sizeof *a, err);
    classic_state *s = tw_calloc(1, sizeof *s, err);
    if (!a || !s) {
        free(a);
        free(s);
        return TW_ERR_NOMEM;
    }
    s->m = m;
    s->owned = owned;
    a->ops = &CLASSIC_OPS;
    a->state = s;
    snprintf(a->model_hash, sizeof a->model_hash, "%s", hash);
    *out = a;
    return TW_OK;
}

tw_status tw_eval_arm_classic_open(tw_eval_arm **out, const char *model_path, tw_error *err)
{
    *out = NULL;
    char hash[65];
    tw_status st = tw_sha256_file(model_path, hash, err);
    if (st) return st;
    tw_classic *m = NULL;
    if ((st = tw_classic_load(&m, model_path, err))) return st;
    if ((st = classic_make(out, m, m, hash, err))) tw_classic_free(m);
    return st;
}

tw_status tw_eval_arm_classic_wrap(tw_eval_arm **out, const tw_classic *m, const char *model_hash, tw_error *err)
{
    return classic_make(out, m, NULL, model_hash, err);
}
