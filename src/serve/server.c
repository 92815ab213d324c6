/* server.c — the OpenAI-compatible HTTP server of `tunewise serve` (server.h): request
 * parsing and validation on libmicrohttpd's connection threads, a bounded job queue, one
 * worker thread that owns the model, Server-Sent Events streaming, a fault-injection test
 * mode, graceful shutdown.
 *
 * Protocol implemented: the OpenAI REST API's /v1/chat/completions, /v1/completions
 * (legacy: echo + logprobs with tokens / token_logprobs / text_offset) and /v1/models
 * shapes, and its SSE streaming ("data: <chunk>\n\n" ... "data: [DONE]\n\n"); Retry-After
 * as RFC 9110 section 10.2.3 (delay-seconds or HTTP-date, IMF-fixdate).
 *
 * Deliberately not here: the engine (backend/local.c, model/), TLS, top_logprobs
 * alternatives (logprobs returns the chosen tokens' log-probabilities only), n > 1. */
#include "serve/server.h"

#include "backend/local.h"
#include "model/chat.h"
#include "model/grammar.h"
#include "model/kv.h"
#include "model/llama.h"
#include "model/lora.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

tw_server_params tw_server_default_params(void)
{
    return (tw_server_params){.host = "127.0.0.1", .port = 8080, .max_body = (size_t)1 << 20, .max_tokens = 2048,
                              .queue = 64, .max_connections = 256, .n_ctx = 4096, .drain_timeout_s = 600};
}

/* ---- faults (test mode) ------------------------------------------------------------ */

enum { FAULT_429 = 1, FAULT_429_DATE, FAULT_500, FAULT_503, FAULT_STALL, FAULT_BUSY };
typedef struct fault {
    int kind;
    double arg;   /* Retry-After seconds / stall seconds */
} fault;

static tw_status parse_faults(const char *spec, fault **out, size_t *n_out, tw_error *err)
{
    *out = NULL;
    *n_out = 0;
    if (!spec || !*spec) return TW_OK;
    size_t n = 0, cap = 0;
    fault *v = NULL;
    const char *p = spec;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len == 0 || len >= sizeof item) {
            free(v);
            return tw_error_set(err, TW_ERR_INVALID, "fault spec '%s': bad item at offset %zu", spec, (size_t)(p - spec));
        }
        memcpy(item, p, len);
        item[len] = '\0';
        long reps = 1;
        char *x = strrchr(item, 'x');
        if (x) {
            char *end;
            reps = strtol(x + 1, &end, 10);
            if (*end || reps < 1 || reps > 100000) {
                free(v);
                return tw_error_set(err, TW_ERR_INVALID, "fault spec '%s': bad repeat count in '%s'", spec, item);
            }
            *x = '\0';
        }
        fault f = {0};
        char *colon = strchr(item, ':');
        const char *arg = colon ? colon + 1 : NULL;
        if (colon) *colon = '\0';
        char *end = NULL;
        if (strcmp(item, "429") == 0) {
            f.kind = FAULT_429;
            f.arg = 1;
            if (arg && arg[0] == 'd') {
                f.kind = FAULT_429_DATE;
                arg++;
            }
            if (arg) f.arg = strtod(arg, &end);
        } else if (strcmp(item, "500") == 0 && !arg) {
            f.kind = FAULT_500;
        } else if (strcmp(item, "503") == 0 && !arg) {
            f.kind = FAULT_503;
        } else if ((strcmp(item, "stall") == 0 || strcmp(item, "busy") == 0) && arg) {
            f.kind = item[0] == 's' ? FAULT_STALL : FAULT_BUSY;
            f.arg = strtod(arg, &end);
        }
        if (!f.kind || (end && (*end || f.arg < 0 || f.arg > 3600))) {
            free(v);
            return tw_error_set(err, TW_ERR_INVALID,
                                "fault spec '%s': unknown item '%s' (expected 429[:S], 429:dS, 500, 503, stall:S, busy:S, "
                                "each optionally xN)", spec, item);
        }
        for (long r = 0; r < reps; r++) {
            if (tw_grow((void **)&v, &cap, n + 1, sizeof *v, err)) {
                free(v);
                return TW_ERR_NOMEM;
            }
            v[n++] = f;
        }
        p += len;
        if (*p == ',') p++;
    }
    *out = v;
    *n_out = n;
    return TW_OK;
}

/* ---- jobs ---------------------------------------------------------------------------- */

enum { JOB_CHAT = 1, JOB_COMPLETION = 2 };

typedef struct job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    /* request */
    int kind;
    char *prompt;
    char **stops;
    size_t n_stops;
    tw_gen_params gp;
    tw_grammar *grammar;
    bool stream, include_usage, echo;
    int logprobs;             /* -1: not requested */
    double busy_s;            /* test mode: the worker sleeps this long first */
    char id[48];
    char *model;
    int adapter;              /* index into the server's adapters, -1: the base model */
    long long created;
    /* results */
    tw_buf sse;               /* pending SSE bytes (stream) */
    size_t sse_off;
    tw_buf text;
    json_t *lp;               /* logprobs object (completions) */
    int32_t tokens_in, tokens_out;
    tw_stop_reason stop;
    int http;                 /* 0: ok, else the error status */
    char err_type[32], err_code[48];
    tw_error err;
    bool done, cancelled;
} job;

static void job_unref(job *j)
{
    pthread_mutex_lock(&j->mu);
    int r = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (r > 0) return;
    free(j->prompt);
    for (size_t i = 0; i < j->n_stops; i++) free(j->stops[i]);
    free(j->stops);
    tw_grammar_free(j->grammar);
    free(j->model);
    tw_buf_free(&j->sse);
    tw_buf_free(&j->text);
    json_decref(j->lp);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* ---- the server ------------------------------------------------------------------------ */

typedef struct adapter {
    char *name;       /* "base+name" */
    tw_lora *lora;
} adapter;

struct tw_server {
    tw_server_params p;
    char *model_name;
    char *token;
    tw_local *local;
    tw_kv *score_kv;             /* echo/logprobs scoring (worker only), made on first use */
    tw_token_trie *trie;         /* response_format (worker only), made on first use */
    adapter *adapters;
    size_t n_adapters;
    int cur_adapter;             /* adapter applied to the model now (worker only), -1: none */
    struct MHD_Daemon *d;
    int port;
    long long started;
    /* queue */
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* queue not empty / stopping / active changed */
    job **q;
    size_t q_head, q_n;
    bool stopping, draining, drained;
    pthread_t worker;
    bool worker_started;
    /* faults */
    fault *faults;
    size_t n_faults, fault_pos;
    /* stats (under mu) */
    tw_server_stats st;
    uint64_t next_id;
};

static bool worker_gen_text(void *user, const char *text, size_t len);

/* JSON string from bytes that may hold invalid UTF-8 (each bad byte becomes U+FFFD). */
static json_t *jstr(const char *s, size_t n)
{
    if (!s) return json_string("");
    if (tw_utf8_valid(s, n, NULL)) return json_stringn(s, n);
    tw_buf b = {0};
    size_t i = 0;
    while (i < n) {
        size_t bad;
        if (tw_utf8_valid(s + i, n - i, &bad)) bad = n - i;
        tw_buf_append(&b, s + i, bad);
        i += bad;
        if (i < n) {
            tw_buf_append(&b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    tw_buf_free(&b);
    return j;
}

static json_t *error_json(const char *message, const char *type, const char *code)
{
    return json_pack("{s:{s:s,s:s,s:s?}}", "error", "message", message, "type", type, "code", code);
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j, double retry_after)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after >= 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%.0f", ceil(retry_after));
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *type, const char *code,
                                  const char *message)
{
    return send_json(c, status, error_json(message, type, code), -1);
}

/* ---- per-connection request state -------------------------------------------------- */

typedef struct req {
    tw_buf body;
    bool too_large;
    tw_server *s;
} req;

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    tw_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    tw_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
    pthread_mutex_lock(&s->mu);
    s->st.active--;
    s->st.requests++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Constant-time comparison of the bearer token. */
static bool token_ok(const tw_server *s, struct MHD_Connection *c)
{
    if (!s->token) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t a = strlen(h), b = strlen(s->token);
    unsigned char diff = a != b;
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(h[i < a ? i : 0] ^ s->token[i]);
    return diff == 0;
}

/* ---- request parsing ---------------------------------------------------------------- */

typedef struct perr {
    unsigned status;
    const char *type, *code;
    char msg[512];
} perr;

static bool fail(perr *e, unsigned status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static bool fail(perr *e, unsigned status, const char *type, const char *code, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return false;
}
#define BAD(e, ...) fail(e, 400, "invalid_request_error", NULL, __VA_ARGS__)

static bool add_stop(job *j, const char *s, perr *e)
{
    char **nv = realloc(j->stops, (j->n_stops + 1) * sizeof *nv);
    if (!nv) return fail(e, 500, "server_error", NULL, "out of memory");
    j->stops = nv;
    if (!(j->stops[j->n_stops] = strdup(s))) return fail(e, 500, "server_error", NULL, "out of memory");
    j->n_stops++;
    return true;
}

/* Common fields: model, max_tokens, temperature, top_p, stop, seed, stream, n. */
static bool parse_common(tw_server *s, json_t *b, job *j, int32_t default_max, perr *e)
{
    json_t *m = json_object_get(b, "model");
    if (m && !json_is_string(m) && !json_is_null(m)) return BAD(e, "'model' must be a string");
    const char *name = json_is_string(m) ? json_string_value(m) : s->model_name;
    j->adapter = -1;
    if (strcmp(name, s->model_name) != 0) {
        for (size_t i = 0; i < s->n_adapters; i++)
            if (strcmp(name, s->adapters[i].name) == 0) j->adapter = (int)i;
        if (j->adapter < 0)
            return fail(e, 404, "invalid_request_error", "model_not_found",
                        "model '%s' does not exist here (GET /v1/models lists what this server has)", name);
    }
    if (!(j->model = strdup(name))) return fail(e, 500, "server_error", NULL, "out of memory");
    j->gp = tw_gen_default_params();
    j->gp.sample = tw_sample_default_params();
    j->gp.sample.top_k = 0;   /* OpenAI semantics: only temperature / top_p unless given */
    j->gp.sample.min_p = 0;
    j->gp.sample.top_p = 1;
    j->gp.sample.temperature = 1;
    json_t *v;
    json_int_t mt = default_max;
    if ((v = json_object_get(b, "max_completion_tokens")) || (v = json_object_get(b, "max_tokens"))) {
        if (!json_is_null(v)) {
            if (!json_is_integer(v)) return BAD(e, "'max_tokens' must be an integer");
            mt = json_integer_value(v);
        }
    }
    if (mt < 0 || mt > s->p.max_tokens)
        return BAD(e, "'max_tokens' is %lld; this server allows 0..%d", (long long)mt, (int)s->p.max_tokens);
    j->gp.max_tokens = (int32_t)mt;
    if ((v = json_object_get(b, "temperature")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2)
            return BAD(e, "'temperature' must be a number in [0, 2]");
        j->gp.sample.temperature = (float)json_number_value(v);
    }
    if ((v = json_object_get(b, "top_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) > 1)
            return BAD(e, "'top_p' must be a number in (0, 1]");
        j->gp.sample.top_p = (float)json_number_value(v);
    }
    if ((v = json_object_get(b, "top_k")) && !json_is_null(v)) {   /* llama-server extension */
        if (!json_is_integer(v)) return BAD(e, "'top_k' must be an integer");
        j->gp.sample.top_k = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(b, "min_p")) && !json_is_null(v)) {
        if (!json_is_number(v)) return BAD(e, "'min_p' must be a number");
        j->gp.sample.min_p = (float)json_number_value(v);
    }
    if ((v = json_object_get(b, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v)) return BAD(e, "'seed' must be an integer");
        j->gp.sample.seed = (uint64_t)json_integer_value(v);
    } else {
        j->gp.sample.seed = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)j << 16);
    }
    if ((v = json_object_get(b, "n")) && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
        return BAD(e, "only n = 1 is supported");
    if ((v = json_object_get(b, "stop")) && !json_is_null(v)) {
        if (json_is_string(v)) {
            if (json_string_length(v) && !add_stop(j, json_string_value(v), e)) return false;
        } else if (json_is_array(v)) {
            if (json_array_size(v) > 16) return BAD(e, "'stop' holds at most 16 strings");
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x) {
                if (!json_is_string(x)) return BAD(e, "'stop' must be a string or an array of strings");
                if (json_string_length(x) && !add_stop(j, json_string_value(x), e)) return false;
            }
        } else {
            return BAD(e, "'stop' must be a string or an array of strings");
        }
    }
    if ((v = json_object_get(b, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) return BAD(e, "'stream' must be a boolean");
        j->stream = json_is_true(v);
    }
    json_t *so = json_object_get(b, "stream_options");
    if (json_is_object(so) && json_is_true(json_object_get(so, "include_usage"))) j->include_usage = true;
    return true;
}

/* Message content: a string, or an array of {"type": "text", "text": ...} parts. */
static bool content_text(json_t *c, tw_buf *out, perr *e)
{
    if (json_is_string(c)) return tw_buf_append(out, json_string_value(c), json_string_length(c)) == TW_OK;
    if (json_is_null(c)) return true;
    if (!json_is_array(c)) return BAD(e, "message 'content' must be a string or an array of text parts");
    size_t i;
    json_t *p;
    json_array_foreach(c, i, p) {
        json_t *t = json_object_get(p, "text");
        if (!json_is_string(t) || !json_is_string(json_object_get(p, "type")) ||
            strcmp(json_string_value(json_object_get(p, "type")), "text") != 0)
            return fail(e, 400, "invalid_request_error", "unsupported_content",
                        "message content part %zu: only {\"type\": \"text\"} parts are supported", i);
        tw_buf_append(out, json_string_value(t), json_string_length(t));
    }
    return true;
}

static bool parse_chat(tw_server *s, json_t *b, job *j, perr *e)
{
    j->kind = JOB_CHAT;
    if (!parse_common(s, b, j, s->p.max_tokens, e)) return false;
    json_t *msgs = json_object_get(b, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) return BAD(e, "'messages' must be a non-empty array");
    const tw_chat_template *ct = tw_local_chat_template(s->local);
    if (!ct)
        return fail(e, 400, "invalid_request_error", "no_chat_template",
                    "model '%s' has no chat template: use /v1/completions, or start serve with --chat-template",
                    s->model_name);
    size_t n = json_array_size(msgs);
    tw_chat_msg *cm = calloc(n, sizeof *cm);
    tw_buf *texts = calloc(n, sizeof *texts);
    bool ok = cm && texts;
    if (!ok) fail(e, 500, "server_error", NULL, "out of memory");
    for (size_t i = 0; ok && i < n; i++) {
        json_t *m = json_array_get(msgs, i);
        json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role)) {
            ok = BAD(e, "messages[%zu] needs a string 'role'", i);
            break;
        }
        if (!(ok = content_text(json_object_get(m, "content"), &texts[i], e))) break;
        cm[i].role = json_string_value(role);
        cm[i].content = texts[i].data ? texts[i].data : "";
    }
    tw_buf out = {0};
    if (ok) {
        tw_error err;
        if (tw_local_render(s->local, cm, n, true, &out, &err))
            ok = fail(e, 400, "invalid_request_error", "template_error", "chat template: %s", err.msg);
    }
    for (size_t i = 0; texts && i < n; i++) tw_buf_free(&texts[i]);
    free(texts);
    free(cm);
    if (!ok) {
        tw_buf_free(&out);
        return false;
    }
    j->prompt = out.data ? tw_buf_steal(&out) : strdup("");
    /* the template's end-of-turn strings end the answer, as for the local backend */
    const char *const *ts = tw_chat_template_stops(ct);
    for (size_t i = 0; ts && ts[i]; i++)
        if (!add_stop(j, ts[i], e)) return false;
    json_t *rf = json_object_get(b, "response_format");
    if (rf && !json_is_null(rf)) {
        json_t *type = json_object_get(rf, "type");
        if (!json_is_string(type)) return BAD(e, "'response_format' needs a string 'type'");
        const char *t = json_string_value(type);
        json_t *schema = NULL, *owned = NULL;
        if (strcmp(t, "json_schema") == 0) {
            schema = json_object_get(json_object_get(rf, "json_schema"), "schema");
            if (!json_is_object(schema)) return BAD(e, "response_format json_schema needs 'json_schema': {'schema': {...}}");
        } else if (strcmp(t, "json_object") == 0) {
            schema = owned = json_pack("{s:s}", "type", "object");
        } else if (strcmp(t, "text") != 0) {
            return BAD(e, "'response_format' type '%s' is not one of text, json_object, json_schema", t);
        }
        if (schema) {
            tw_error err;
            tw_grammar_params gp = tw_grammar_default_params();
            tw_status st = tw_grammar_from_schema(&j->grammar, schema, &gp, &err);
            json_decref(owned);
            if (st) return fail(e, 400, "invalid_request_error", "unsupported_schema", "response_format: %s", err.msg);
        }
    }
    return true;
}

static bool parse_completion(tw_server *s, json_t *b, job *j, perr *e)
{
    j->kind = JOB_COMPLETION;
    if (!parse_common(s, b, j, s->p.max_tokens < 16 ? s->p.max_tokens : 16, e)) return false;
    json_t *p = json_object_get(b, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
    if (!json_is_string(p)) return BAD(e, "'prompt' must be a string (or an array of one string)");
    if (!(j->prompt = strdup(json_string_value(p)))) return fail(e, 500, "server_error", NULL, "out of memory");
    j->logprobs = -1;
    json_t *v;
    if ((v = json_object_get(b, "logprobs")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 5)
            return BAD(e, "'logprobs' must be an integer in 0..5");
        j->logprobs = (int)json_integer_value(v);
    }
    if ((v = json_object_get(b, "echo")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) return BAD(e, "'echo' must be a boolean");
        j->echo = json_is_true(v);
    }
    if (j->stream && (j->echo || j->logprobs >= 0)) return BAD(e, "echo / logprobs are not available with stream");
    return true;
}

/* ---- the worker ----------------------------------------------------------------------- */

static const char *finish_reason(tw_stop_reason r)
{
    return r == TW_STOP_MAX_TOKENS || r == TW_STOP_CONTEXT ? "length" : "stop";
}

static void sse_append(job *j, json_t *chunk)
{
    char *s = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    if (!s) return;
    tw_buf_puts(&j->sse, "data: ");
    tw_buf_puts(&j->sse, s);
    tw_buf_puts(&j->sse, "\n\n");
    free(s);
}

static json_t *chunk_new(const job *j, json_t *choice)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:[o]}", "id", j->id, "object",
                     j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)j->created, "model", j->model, "choices", choice);
}

static bool worker_gen_text(void *user, const char *text, size_t len)
{
    job *j = user;
    json_t *choice;
    if (j->kind == JOB_CHAT)
        choice = json_pack("{s:i,s:{s:o},s:n}", "index", 0, "delta", "content", jstr(text, len), "finish_reason");
    else
        choice = json_pack("{s:i,s:o,s:n,s:n}", "index", 0, "text", jstr(text, len), "logprobs", "finish_reason");
    json_t *c = chunk_new(j, choice);
    pthread_mutex_lock(&j->mu);
    bool go = !j->cancelled;
    if (go) {
        sse_append(j, c);
        pthread_cond_broadcast(&j->cv);
    } else {
        json_decref(c);
    }
    pthread_mutex_unlock(&j->mu);
    return go;
}

/* Token log-probabilities of text (prompt [+ generated text]) as the legacy completions
 * logprobs object; tokens whose offset is < from are left out (echo false). */
static tw_status score_text(tw_server *s, const char *text, size_t from, json_t **out, tw_error *err)
{
    tw_llama *m = tw_local_model(s->local);
    const tw_tokenizer *tok = tw_local_tokenizer(s->local);
    if (!s->score_kv) {
        tw_kv_params kp = tw_kv_default_params();
        kp.n_cells = s->p.n_ctx;
        kp.n_seq = 2;
        tw_status st = tw_kv_new(&s->score_kv, tw_llama_config(m), &kp, err);
        if (st) return st;
    }
    tw_tok_ids ids = {0};
    tw_status st = tw_local_tokenize(s->local, text, strlen(text), &ids, err);
    if (st) return st;
    if (ids.n == 0) {
        tw_tok_ids_free(&ids);
        *out = json_pack("{s:[],s:[],s:n,s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
        return TW_OK;
    }
    if (ids.n > (size_t)s->p.n_ctx) {
        tw_tok_ids_free(&ids);
        return tw_error_set(err, TW_ERR_INVALID, "the text is %zu tokens; the context holds %d", ids.n, (int)s->p.n_ctx);
    }
    const bool bos = tw_tokenizer_bos(tok) >= 0 && ids.v[0] == tw_tokenizer_bos(tok);
    double *lp = calloc(ids.n, sizeof *lp);
    double total;
    if (!lp) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st && ids.n > 1) {
        const int32_t *cv[1] = {ids.v + 1};
        int32_t cl[1] = {(int32_t)ids.n - 1};
        double *pt[1] = {lp + 1};
        tw_kv_seq_clear(s->score_kv, 0);
        tw_kv_seq_clear(s->score_kv, 1);
        st = tw_llama_score_choices(m, s->score_kv, 0, 1, ids.v, 1, cv, cl, 1, &total, pt, err);
        tw_kv_seq_clear(s->score_kv, 0);
        tw_kv_seq_clear(s->score_kv, 1);
    }
    json_t *toks = json_array(), *tlp = json_array(), *off = json_array();
    if (!st) {
        tw_detok d;
        tw_detok_init(&d, tok, 0);
        tw_buf dec = {0};
        for (size_t i = bos ? 1 : 0; i < ids.n && !st; i++) {
            size_t before = dec.len;
            st = tw_detok_push(&d, ids.v[i], &dec, err);
            if (st) break;
            if (before < from) continue;
            json_array_append_new(toks, jstr(dec.data ? dec.data + before : "", dec.len - before));
            json_array_append_new(tlp, i == 0 ? json_null() : json_real(lp[i]));
            json_array_append_new(off, json_integer((json_int_t)before));
        }
        tw_buf_free(&dec);
    }
    free(lp);
    tw_tok_ids_free(&ids);
    if (st) {
        json_decref(toks);
        json_decref(tlp);
        json_decref(off);
        return st;
    }
    *out = json_pack("{s:o,s:o,s:n,s:o}", "tokens", toks, "token_logprobs", tlp, "top_logprobs", "text_offset", off);
    return TW_OK;
}

static void run_job(tw_server *s, job *j)
{
    tw_error err;
    tw_error_clear(&err);
    tw_constraint *con = NULL;
    tw_status st = TW_OK;
    if (j->grammar) {
        if (!s->trie) st = tw_token_trie_new(&s->trie, tw_local_tokenizer(s->local), &err);
        if (!st) st = tw_constraint_new(&con, j->grammar, s->trie, NULL, 0, &err);
        j->gp.constraint = con;
    }
    j->gp.stops = (const char *const *)j->stops;
    j->gp.n_stops = j->n_stops;
    if (j->stream) {
        j->gp.on_text = worker_gen_text;
        j->gp.user = j;
    }
    tw_local_result res = {0};
    if (j->busy_s > 0) {
        const double until = tw_now() + j->busy_s;
        while (tw_now() < until) usleep(10000);
    }
    if (!st) {
        /* a prompt longer than the context is the client's error */
        tw_tok_ids ids = {0};
        st = tw_local_tokenize(s->local, j->prompt, strlen(j->prompt), &ids, &err);
        if (!st && ids.n >= (size_t)s->p.n_ctx) {
            st = tw_error_set(&err, TW_ERR_INVALID, "the prompt is %zu tokens; this server's context holds %d", ids.n,
                              (int)s->p.n_ctx);
            snprintf(j->err_code, sizeof j->err_code, "context_length_exceeded");
        }
        tw_tok_ids_free(&ids);
    }
    if (!st && j->adapter != s->cur_adapter) {   /* the model field picks base or base+adapter */
        tw_lora *ad = j->adapter >= 0 ? s->adapters[j->adapter].lora : NULL;
        st = tw_local_set_adapters(s->local, ad ? &ad : NULL, NULL, ad ? 1 : 0, &err);
        if (!st) s->cur_adapter = j->adapter;
    }
    if (!st) st = tw_local_set_prefix(s->local, NULL, &err);
    if (!st) {
        if (j->gp.max_tokens > 0 || !j->echo) st = tw_local_generate(s->local, j->prompt, &j->gp, &res, &err);
        else {
            tw_tok_ids ids = {0};
            st = tw_local_tokenize(s->local, j->prompt, strlen(j->prompt), &ids, &err);
            res.tokens_in = (int32_t)ids.n;
            res.stop = TW_STOP_MAX_TOKENS;
            tw_tok_ids_free(&ids);
        }
    }
    if (!st && j->logprobs >= 0) {
        tw_buf full = {0};
        tw_buf_puts(&full, j->prompt);
        tw_buf_append(&full, res.text.data ? res.text.data : "", res.text.len);
        st = score_text(s, full.data ? full.data : "", j->echo ? 0 : strlen(j->prompt), &j->lp, &err);
        tw_buf_free(&full);
    }
    tw_constraint_free(con);
    j->gp.constraint = NULL;
    pthread_mutex_lock(&j->mu);
    if (st) {
        j->http = st == TW_ERR_INVALID || st == TW_ERR_UNSUPPORTED ? 400 : 500;
        snprintf(j->err_type, sizeof j->err_type, "%s", j->http == 400 ? "invalid_request_error" : "server_error");
        j->err = err;
        if (j->stream) sse_append(j, error_json(err.msg, j->err_type, j->err_code[0] ? j->err_code : NULL));
    } else {
        j->text = res.text;
        res.text = (tw_buf){0};
        j->tokens_in = res.tokens_in;
        j->tokens_out = res.tokens_out;
        j->stop = res.stop;
        if (j->stream) {
            json_t *choice = j->kind == JOB_CHAT
                                 ? json_pack("{s:i,s:{},s:s}", "index", 0, "delta", "finish_reason", finish_reason(j->stop))
                                 : json_pack("{s:i,s:s,s:n,s:s}", "index", 0, "text", "", "logprobs", "finish_reason",
                                             finish_reason(j->stop));
            sse_append(j, chunk_new(j, choice));
            if (j->include_usage)
                sse_append(j, json_pack("{s:s,s:s,s:I,s:s,s:[],s:{s:i,s:i,s:i}}", "id", j->id, "object",
                                        j->kind == JOB_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                                        (json_int_t)j->created, "model", j->model, "choices", "usage", "prompt_tokens",
                                        j->tokens_in, "completion_tokens", j->tokens_out, "total_tokens",
                                        j->tokens_in + j->tokens_out));
        }
    }
    if (j->stream) tw_buf_puts(&j->sse, "data: [DONE]\n\n");
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    tw_local_result_free(&res);
    pthread_mutex_lock(&s->mu);
    s->st.completions++;
    if (!st) {
        s->st.prompt_tokens += j->tokens_in;
        s->st.completion_tokens += j->tokens_out;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *worker_main(void *arg)
{
    tw_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->q_n == 0 && !s->stopping) pthread_cond_wait(&s->cv, &s->mu);
        if (s->q_n == 0) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        job *j = s->q[s->q_head];
        s->q_head = (s->q_head + 1) % s->p.queue;
        s->q_n--;
        s->st.queued = (int32_t)s->q_n;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&j->mu);
        bool skip = j->cancelled;
        pthread_mutex_unlock(&j->mu);
        if (!skip) run_job(s, j);
        job_unref(j);
    }
    return NULL;
}

/* Put j in the queue (taking a reference for the worker). false: full. */
static bool enqueue(tw_server *s, job *j)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->q_n < s->p.queue && !s->stopping;
    if (ok) {
        j->refs++;
        s->q[(s->q_head + s->q_n) % s->p.queue] = j;
        s->q_n++;
        s->st.queued = (int32_t)s->q_n;
        pthread_cond_broadcast(&s->cv);
    } else {
        s->st.rejected_full++;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* ---- responses ------------------------------------------------------------------------ */

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    while (j->sse_off == j->sse.len && !j->done) pthread_cond_wait(&j->cv, &j->mu);
    ssize_t n;
    if (j->sse_off < j->sse.len) {
        size_t k = j->sse.len - j->sse_off;
        if (k > max) k = max;
        memcpy(buf, j->sse.data + j->sse_off, k);
        j->sse_off += k;
        if (j->sse_off == j->sse.len) {
            j->sse_off = 0;
            tw_buf_clear(&j->sse);
        }
        n = (ssize_t)k;
    } else {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    }
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void sse_free(void *cls)
{
    job *j = cls;
    pthread_mutex_lock(&j->mu);
    j->cancelled = true;   /* a client that went away stops the generation */
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

static json_t *usage_json(const job *j)
{
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", j->tokens_in, "completion_tokens", j->tokens_out,
                     "total_tokens", j->tokens_in + j->tokens_out);
}

static enum MHD_Result answer_job(struct MHD_Connection *c, job *j)
{
    if (j->http) {
        return send_error(c, (unsigned)j->http, j->err_type, j->err_code[0] ? j->err_code : NULL, j->err.msg);
    }
    json_t *choice, *body;
    if (j->kind == JOB_CHAT) {
        choice = json_pack("{s:i,s:{s:s,s:o},s:s}", "index", 0, "message", "role", "assistant", "content",
                           jstr(j->text.data, j->text.len), "finish_reason", finish_reason(j->stop));
    } else {
        tw_buf t = {0};
        if (j->echo) tw_buf_puts(&t, j->prompt);
        tw_buf_append(&t, j->text.data ? j->text.data : "", j->text.len);
        choice = json_pack("{s:i,s:o,s:O?,s:s}", "index", 0, "text", jstr(t.data, t.len), "logprobs", j->lp,
                           "finish_reason", finish_reason(j->stop));
        tw_buf_free(&t);
        if (!j->lp) json_object_set_new(choice, "logprobs", json_null());
    }
    body = json_pack("{s:s,s:s,s:I,s:s,s:[o],s:o}", "id", j->id, "object",
                     j->kind == JOB_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)j->created,
                     "model", j->model, "choices", choice, "usage", usage_json(j));
    return send_json(c, 200, body, -1);
}

static void http_date(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Test mode: the next scripted fault, if any. true when the response has been queued. */
static bool take_fault(tw_server *s, fault *f)
{
    pthread_mutex_lock(&s->mu);
    bool any = s->fault_pos < s->n_faults;
    if (any) {
        *f = s->faults[s->fault_pos++];
        s->st.faults++;
    }
    pthread_mutex_unlock(&s->mu);
    return any;
}

static enum MHD_Result handle_completion(tw_server *s, struct MHD_Connection *c, req *r, bool chat)
{
    fault f = {0};
    if (take_fault(s, &f)) {
        if (f.kind == FAULT_429)
            return send_json(c, 429, error_json("rate limited (fault injection)", "rate_limit_error", "rate_limit_exceeded"),
                             f.arg);
        if (f.kind == FAULT_429_DATE) {
            char d[64];
            http_date(time(NULL) + (time_t)ceil(f.arg), d, sizeof d);
            json_t *j = error_json("rate limited (fault injection)", "rate_limit_error", "rate_limit_exceeded");
            char *txt = json_dumps(j, JSON_COMPACT);
            json_decref(j);
            struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
            MHD_add_response_header(resp, "Content-Type", "application/json");
            MHD_add_response_header(resp, "Retry-After", d);
            enum MHD_Result ret = MHD_queue_response(c, 429, resp);
            MHD_destroy_response(resp);
            return ret;
        }
        if (f.kind == FAULT_500) return send_error(c, 500, "server_error", NULL, "internal error (fault injection)");
        if (f.kind == FAULT_503) return send_error(c, 503, "server_error", NULL, "unavailable (fault injection)");
        if (f.kind == FAULT_STALL) {
            const double until = tw_now() + f.arg;
            while (tw_now() < until) usleep(10000);
        }
    }
    pthread_mutex_lock(&s->mu);
    const bool draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining) {   /* a new request on a kept-alive connection during shutdown */
        struct MHD_Response *resp = NULL;
        json_t *j = error_json("the server is shutting down", "server_error", "shutting_down");
        char *txt = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        resp = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Connection", "close");
        enum MHD_Result ret = MHD_queue_response(c, 503, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r->too_large) {
        char m[128];
        snprintf(m, sizeof m, "request body larger than %zu bytes", s->p.max_body);
        return send_error(c, 413, "invalid_request_error", "request_too_large", m);
    }
    json_error_t je;
    json_t *b = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    if (!json_is_object(b)) {
        json_decref(b);
        char m[300];
        snprintf(m, sizeof m, "request body is not a JSON object: %s", je.text);
        return send_error(c, 400, "invalid_request_error", "invalid_json", m);
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(b);
        return send_error(c, 500, "server_error", NULL, "out of memory");
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->refs = 1;
    j->logprobs = -1;
    j->created = (long long)time(NULL);
    pthread_mutex_lock(&s->mu);
    uint64_t id = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    snprintf(j->id, sizeof j->id, "%s-tw%llx%06llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)s->started,
             (unsigned long long)id);
    if (f.kind == FAULT_BUSY) j->busy_s = f.arg;
    perr e = {0};
    bool ok = chat ? parse_chat(s, b, j, &e) : parse_completion(s, b, j, &e);
    json_decref(b);
    if (!ok) {
        job_unref(j);
        return send_error(c, e.status, e.type, e.code, e.msg);
    }
    if (!enqueue(s, j)) {
        job_unref(j);
        return send_json(c, 503,
                         error_json("the request queue is full; retry later", "server_error", "queue_full"), 1);
    }
    if (j->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_reader, j, sse_free);
        if (!resp) {
            sse_free(j);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
    pthread_mutex_unlock(&j->mu);
    enum MHD_Result ret = answer_job(c, j);
    job_unref(j);
    return ret;
}

static enum MHD_Result handle_models(tw_server *s, struct MHD_Connection *c)
{
    json_t *data = json_array();
    json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", s->model_name, "object", "model", "created",
                                          (json_int_t)s->started, "owned_by", "tunewise"));
    for (size_t i = 0; i < s->n_adapters; i++)
        json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s,s:s,s:b}", "id", s->adapters[i].name, "object", "model",
                                              "created", (json_int_t)s->started, "owned_by", "tunewise", "parent",
                                              s->model_name, "available", 1));
    return send_json(c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data), -1);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    tw_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->s = s;
        *con_cls = r;
        pthread_mutex_lock(&s->mu);
        s->st.active++;
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (r->body.len + *upload_data_size > s->p.max_body) r->too_large = true;
        else if (tw_buf_append(&r->body, upload_data, *upload_data_size)) return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    const bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(url, "/health") == 0) {
        if (!get) return send_error(c, 405, "invalid_request_error", "method_not_allowed", "use GET /health");
        return send_json(c, 200, json_pack("{s:s,s:s}", "status", "ok", "model", s->model_name), -1);
    }
    if (strncmp(url, "/v1/", 4) != 0) {
        char m[300];
        snprintf(m, sizeof m, "no such endpoint: %.200s", url);
        return send_error(c, 404, "invalid_request_error", "not_found", m);
    }
    if (!token_ok(s, c))
        return send_error(c, 401, "invalid_request_error", "invalid_api_key",
                          "missing or wrong bearer token (Authorization: Bearer ...)");
    if (strcmp(url, "/v1/models") == 0) {
        if (!get) return send_error(c, 405, "invalid_request_error", "method_not_allowed", "use GET /v1/models");
        return handle_models(s, c);
    }
    const bool chat = strcmp(url, "/v1/chat/completions") == 0;
    if (chat || strcmp(url, "/v1/completions") == 0) {
        if (!post) return send_error(c, 405, "invalid_request_error", "method_not_allowed", "use POST");
        return handle_completion(s, c, r, chat);
    }
    char m[300];
    snprintf(m, sizeof m, "no such endpoint: %.200s", url);
    return send_error(c, 404, "invalid_request_error", "not_found", m);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char m[512];
    vsnprintf(m, sizeof m, fmt, ap);
    size_t n = strlen(m);
    while (n && m[n - 1] == '\n') m[--n] = '\0';
    tw_log(TW_LOG_WARN, "serve: %s", m);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static tw_status load_adapters(tw_server *s, tw_error *err)
{
    if (!s->p.n_loras) return TW_OK;
    s->adapters = calloc(s->p.n_loras, sizeof *s->adapters);
    if (!s->adapters) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    const tw_model_files *mf = tw_llama_files(tw_local_model(s->local));
    for (size_t i = 0; i < s->p.n_loras; i++) {
        const char *spec = s->p.loras[i], *eq = strchr(spec, '=');
        if (!eq || eq == spec || !eq[1])
            return tw_error_set(err, TW_ERR_INVALID, "--lora '%s': expected NAME=PATH", spec);
        size_t nl = (size_t)(eq - spec);
        for (size_t k = 0; k < nl; k++)
            if (spec[k] == '+' || spec[k] == '/' || spec[k] == ' ')
                return tw_error_set(err, TW_ERR_INVALID, "--lora '%s': the name may not contain '+', '/' or spaces", spec);
        adapter *a = &s->adapters[s->n_adapters];
        size_t need = strlen(s->model_name) + 1 + nl + 1;
        if (!(a->name = malloc(need))) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        snprintf(a->name, need, "%s+%.*s", s->model_name, (int)nl, spec);
        for (size_t k = 0; k < s->n_adapters; k++)
            if (strcmp(s->adapters[k].name, a->name) == 0) {
                free(a->name);
                a->name = NULL;
                return tw_error_set(err, TW_ERR_INVALID, "--lora '%s': the name is given twice", spec);
            }
        s->n_adapters++;
        const char *path = eq + 1;
        struct stat sb;
        tw_status st = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)
                           ? tw_lora_read_peft(&a->lora, path, tw_llama_config(tw_local_model(s->local)), err)
                           : tw_lora_read_gguf(&a->lora, path, err);
        if (!st) st = tw_lora_check(a->lora, mf, err);
        if (st) return tw_error_prefix(err, "--lora %.*s: ", (int)nl, spec);
    }
    return TW_OK;
}

static void server_free(tw_server *s)
{
    if (!s) return;
    tw_local_free(s->local);
    tw_kv_free(s->score_kv);
    tw_token_trie_free(s->trie);
    for (size_t i = 0; i < s->n_adapters; i++) {
        free(s->adapters[i].name);
        tw_lora_free(s->adapters[i].lora);
    }
    free(s->adapters);
    free(s->q);
    free(s->faults);
    free(s->model_name);
    free(s->token);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

tw_status tw_server_start(tw_server **out, const tw_server_params *p, tw_error *err)
{
    *out = NULL;
    if (!p || !p->model) return tw_error_set(err, TW_ERR_INVALID, "serve: no model given");
    tw_server *s = calloc(1, sizeof *s);
    if (s) s->cur_adapter = -1;
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->p = *p;
    tw_server_params d = tw_server_default_params();
    if (!s->p.host) s->p.host = d.host;
    if (!s->p.max_body) s->p.max_body = d.max_body;
    if (s->p.max_tokens <= 0) s->p.max_tokens = d.max_tokens;
    if (!s->p.queue) s->p.queue = d.queue;
    if (!s->p.max_connections) s->p.max_connections = d.max_connections;
    if (s->p.n_ctx <= 0) s->p.n_ctx = d.n_ctx;
    if (s->p.drain_timeout_s <= 0) s->p.drain_timeout_s = d.drain_timeout_s;
    s->p.loras = NULL;   /* borrowed only during start */
    s->p.faults = NULL;
    s->started = (long long)time(NULL);
    tw_status st = TW_OK;
    if (p->port < 0 || p->port > 65535) st = tw_error_set(err, TW_ERR_INVALID, "serve: port %d out of range", p->port);
    if (!st && p->token && !*p->token) st = tw_error_set(err, TW_ERR_INVALID, "serve: the bearer token is empty");
    if (!st && p->token && !(s->token = strdup(p->token))) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st && !(s->q = calloc(s->p.queue, sizeof *s->q))) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    if (!st) st = parse_faults(p->faults, &s->faults, &s->n_faults, err);
    /* model name: basename without extension */
    if (!st) {
        const char *n = p->model_name;
        char buf[256];
        if (!n) {
            const char *b = strrchr(p->model, '/');
            b = b && b[1] ? b + 1 : p->model;
            snprintf(buf, sizeof buf, "%s", b);
            size_t l = strlen(buf);
            while (l > 1 && buf[l - 1] == '/') buf[--l] = '\0';
            char *dot = strrchr(buf, '.');
            if (dot && dot != buf && strcmp(dot, ".gguf") == 0) *dot = '\0';
            n = buf;
        }
        if (!*n || strchr(n, '+')) st = tw_error_set(err, TW_ERR_INVALID, "serve: model name '%s' is empty or has '+'", n);
        else if (!(s->model_name = strdup(n))) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        tw_local_params lp = tw_local_default_params();
        lp.model = p->model;
        lp.chat_template = p->chat_template;
        lp.n_threads = p->n_threads;
        lp.n_ctx = s->p.n_ctx;
        st = tw_local_open(&s->local, &lp, err);
    }
    if (!st) {
        s->p.loras = p->loras;
        st = load_adapters(s, err);
        s->p.loras = NULL;
    }
    if (st) {
        server_free(s);
        return st;
    }
    if (pthread_create(&s->worker, NULL, worker_main, s) != 0) {
        server_free(s);
        return tw_error_set(err, TW_ERR_RUNTIME, "serve: cannot start the worker thread");
    }
    s->worker_started = true;
    /* bind address */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s->p.host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p->port);
    } else if (inet_pton(AF_INET6, s->p.host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p->port);
        flags |= MHD_USE_IPv6;
    } else {
        tw_server_stop(s);
        return tw_error_set(err, TW_ERR_INVALID, "serve: --host '%s' is not a numeric IPv4 or IPv6 address", p->host);
    }
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, s->p.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)120, MHD_OPTION_END);
    if (!s->d) {
        int port = p->port;
        tw_server_stop(s);
        return tw_error_set(err, TW_ERR_IO, "serve: cannot listen on %s port %d (in use, or not an address of this host)",
                            p->host ? p->host : "127.0.0.1", port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? (int)di->port : p->port;
    *out = s;
    return TW_OK;
}

int tw_server_port(const tw_server *s) { return s ? s->port : 0; }
const char *tw_server_model_name(const tw_server *s) { return s ? s->model_name : NULL; }

tw_status tw_server_set_faults(tw_server *s, const char *spec, tw_error *err)
{
    fault *f;
    size_t n;
    tw_status st = parse_faults(spec, &f, &n, err);
    if (st) return st;
    pthread_mutex_lock(&s->mu);
    free(s->faults);
    s->faults = f;
    s->n_faults = n;
    s->fault_pos = 0;
    pthread_mutex_unlock(&s->mu);
    return TW_OK;
}

tw_server_stats tw_server_get_stats(tw_server *s)
{
    pthread_mutex_lock(&s->mu);
    tw_server_stats st = s->st;
    pthread_mutex_unlock(&s->mu);
    return st;
}

void tw_server_drain(tw_server *s)
{
    if (!s || s->drained) return;
    s->drained = true;
    if (s->d) {
        MHD_socket ls = MHD_quiesce_daemon(s->d);   /* no new connections */
        if (ls != MHD_INVALID_SOCKET) {
            usleep(20000);   /* let the polling thread drop it, then refuse new connections at once */
            close(ls);
        }
    }
    /* accepted requests (running, queued, streaming) finish */
    const double until = tw_now() + s->p.drain_timeout_s;
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    while ((s->st.active > 0 || s->q_n > 0) && tw_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
}

void tw_server_stop(tw_server *s)
{
    if (!s) return;
    tw_server_drain(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->worker_started) pthread_join(s->worker, NULL);
    if (s->d) MHD_stop_daemon(s->d);
    server_free(s);
}
