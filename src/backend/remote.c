/* remote.c — the remote backend (remote.h): OpenAI-compatible chat / text completions
 * over libcurl easy handles (one per attempt, on the caller's thread), an in-flight
 * limit, a requests-per-minute spacer, retries with backoff + jitter honoring
 * Retry-After, SSE stream parsing, and `score` from echoed prompt logprobs.
 *
 * Protocol: the OpenAI REST API (chat.completion / chat.completion.chunk /
 * text_completion objects, `usage`, legacy completions `logprobs` with tokens,
 * token_logprobs, text_offset), Server-Sent Events ("data: " lines, events separated by a
 * blank line, "data: [DONE]" ends), Retry-After per RFC 9110 section 10.2.3.
 *
 * Deliberately not here: prompts, caching, pricing tables (task.h holds them; only
 * the arithmetic is here). The key never leaves this file except in the Authorization
 * header. */
#include "backend/remote.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_RESPONSE ((size_t)64 << 20)

tw_remote_params tw_remote_default_params(void)
{
    return (tw_remote_params){.timeout_s = 120, .connect_timeout_s = 10, .max_in_flight = 4, .max_retries = 5,
                              .backoff_base_s = 0.5, .backoff_max_s = 30, .retry_after_max_s = 120,
                              .requests_per_minute = 0, .seed = 1};
}

tw_remote_request tw_remote_request_init(void)
{
    return (tw_remote_request){.max_tokens = -1, .temperature = -1, .top_p = -1, .seed = -1};
}

struct tw_remote {
    tw_remote_params p;
    char *base;          /* without trailing '/', ending in /v1 */
    char *model;
    char *key;           /* NULL: none */
    char *id;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    double next_start;   /* rate limit: earliest start of the next attempt */
    tw_rng rng;
    tw_remote_stats stats;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

tw_status tw_remote_open(tw_remote **out, const tw_remote_params *p, tw_error *err)
{
    *out = NULL;
    if (!p || !p->base_url || !*p->base_url) return tw_error_set(err, TW_ERR_INVALID, "remote: no base URL given");
    if (!p->model || !*p->model) return tw_error_set(err, TW_ERR_INVALID, "remote: no model name given");
    if (strncmp(p->base_url, "http://", 7) != 0 && strncmp(p->base_url, "https://", 8) != 0)
        return tw_error_set(err, TW_ERR_INVALID, "remote: base URL '%s' must start with http:// or https://", p->base_url);
    const char *key = NULL;
    if (p->api_key_env && *p->api_key_env) {
        key = getenv(p->api_key_env);
        if (!key || !*key)
            return tw_error_set(err, TW_ERR_INVALID, "remote: the API key variable %s is not set (or empty)", p->api_key_env);
    }
    pthread_once(&curl_once, curl_init_once);
    tw_remote *r = calloc(1, sizeof *r);
    if (!r) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    r->p = *p;
    tw_remote_params d = tw_remote_default_params();
    if (r->p.timeout_s <= 0) r->p.timeout_s = d.timeout_s;
    if (r->p.connect_timeout_s <= 0) r->p.connect_timeout_s = d.connect_timeout_s;
    if (r->p.max_in_flight <= 0) r->p.max_in_flight = d.max_in_flight;
    if (r->p.max_retries < 0) r->p.max_retries = 0;
    if (r->p.backoff_base_s <= 0) r->p.backoff_base_s = d.backoff_base_s;
    if (r->p.backoff_max_s <= 0) r->p.backoff_max_s = d.backoff_max_s;
    if (r->p.retry_after_max_s <= 0) r->p.retry_after_max_s = d.retry_after_max_s;
    r->p.base_url = NULL;
    r->p.model = NULL;
    r->p.api_key_env = NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    tw_rng_seed(&r->rng, p->seed);
    size_t bl = strlen(p->base_url);
    while (bl > 0 && p->base_url[bl - 1] == '/') bl--;
    tw_buf b = {0};
    tw_buf_append(&b, p->base_url, bl);
    if (bl < 3 || strncmp(p->base_url + bl - 3, "/v1", 3) != 0) tw_buf_puts(&b, "/v1");
    r->base = tw_buf_steal(&b);
    r->model = strdup(p->model);
    r->key = key ? strdup(key) : NULL;
    tw_buf id = {0};
    tw_buf_printf(&id, "remote:%s#%s", r->base ? r->base : "", p->model);
    r->id = tw_buf_steal(&id);
    if (!r->base || !r->model || !r->id || (key && !r->key)) {
        tw_remote_free(r);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return TW_OK;
}

void tw_remote_free(tw_remote *r)
{
    if (!r) return;
    if (r->key) {
        volatile char *k = r->key;
        for (size_t i = 0; k[i]; i++) k[i] = 0;
        free(r->key);
    }
    free(r->base);
    free(r->model);
    free(r->id);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

const char *tw_remote_model_id(const tw_remote *r) { return r ? r->id : NULL; }

void tw_remote_result_free(tw_remote_result *res)
{
    if (!res) return;
    tw_buf_free(&res->text);
    memset(res, 0, sizeof *res);
}

double tw_remote_cost(const tw_price *p, int64_t prompt_tokens, int64_t completion_tokens)
{
    if (!p) return NAN;
    double c = 0;
    if (prompt_tokens > 0) c += (double)prompt_tokens * p->input_per_mtok / 1e6;
    if (completion_tokens > 0) c += (double)completion_tokens * p->output_per_mtok / 1e6;
    return c;
}

tw_remote_stats tw_remote_get_stats(tw_remote *r)
{
    pthread_mutex_lock(&r->mu);
    tw_remote_stats s = r->stats;
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* ---- Retry-After ---------------------------------------------------------------------- */

bool tw_remote_parse_retry_after(const char *v, double now, double *seconds)
{
    if (!v) return false;
    while (*v == ' ' || *v == '\t') v++;
    if (*v >= '0' && *v <= '9') {
        char *end;
        errno = 0;
        double s = strtod(v, &end);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
        if (*end || errno) return false;
        *seconds = s;
        return true;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end) return false;
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n') end++;
    if (*end) return false;
    double t = (double)timegm(&tm);
    *seconds = t > now ? t - now : 0;
    return true;
}

/* ---- helpers --------------------------------------------------------------------------- */

static void sleep_s(double s)
{
    if (s <= 0) return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Replace every occurrence of the key in msg by "***". */
static void redact(const tw_remote *r, char *msg)
{
    if (!r->key || !*r->key) return;
    size_t kl = strlen(r->key);
    char *p;
    while ((p = strstr(msg, r->key)) != NULL) {
        memmove(p + 3, p + kl, strlen(p + kl) + 1);
        memcpy(p, "***", 3);
    }
}

static tw_status rerr(const tw_remote *r, tw_error *err, tw_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tw_status rerr(const tw_remote *r, tw_error *err, tw_status st, const char *fmt, ...)
{
    if (!err) return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = st;
    redact(r, err->msg);
    return st;
}

/* ---- one HTTP attempt ----------------------------------------------------------------- */

typedef struct attempt {
    CURL *h;
    int sse_state;          /* 0: status not checked yet, 1: SSE (2xx), 2: an error body */
    tw_buf body;            /* non-stream body, or the unparsed SSE tail */
    bool too_big;
    double retry_after;     /* < 0: none */
    /* streaming */
    bool stream, chat;
    bool (*on_text)(void *, const char *, size_t);
    void *user;
    bool delivered, aborted, done;
    tw_buf *text;           /* accumulated streamed text */
    int64_t pt, ct;
    char finish[32];
    char stream_err[512];
} attempt;

static void sse_event(attempt *a, const char *data, size_t n)
{
    if (n == 6 && memcmp(data, "[DONE]", 6) == 0) {
        a->done = true;
        return;
    }
    json_t *j = json_loadb(data, n, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    json_t *e = json_object_get(j, "error");
    if (e) {
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(a->stream_err, sizeof a->stream_err, "%s", m ? m : "error event in the stream");
    }
    json_t *u = json_object_get(j, "usage");
    if (json_is_object(u)) {
        a->pt = json_integer_value(json_object_get(u, "prompt_tokens"));
        a->ct = json_integer_value(json_object_get(u, "completion_tokens"));
    }
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    if (c) {
        json_t *t = a->chat ? json_object_get(json_object_get(c, "delta"), "content") : json_object_get(c, "text");
        if (json_is_string(t) && json_string_length(t) > 0) {
            tw_buf_append(a->text, json_string_value(t), json_string_length(t));
            a->delivered = true;
            if (a->on_text && !a->aborted && !a->on_text(a->user, json_string_value(t), json_string_length(t)))
                a->aborted = true;
        }
        const char *fr = json_string_value(json_object_get(c, "finish_reason"));
        if (fr) snprintf(a->finish, sizeof a->finish, "%s", fr);
    }
    json_decref(j);
}

/* Parse complete SSE events ("data: ..." lines, blank line ends an event) from a->body. */
static void sse_parse(attempt *a)
{
    size_t start = 0;
    for (;;) {
        char *nl = memchr(a->body.data + start, '\n', a->body.len - start);
        if (!nl) break;
        size_t end = (size_t)(nl - a->body.data);
        size_t le = end;
        if (le > start && a->body.data[le - 1] == '\r') le--;
        const char *line = a->body.data + start;
        size_t ln = le - start;
        if (ln >= 5 && memcmp(line, "data:", 5) == 0) {
            line += 5;
            ln -= 5;
            if (ln && *line == ' ') {
                line++;
                ln--;
            }
            sse_event(a, line, ln);
        }
        start = end + 1;
    }
    if (start) {
        memmove(a->body.data, a->body.data + start, a->body.len - start);
        a->body.len -= start;
        if (a->body.cap) a->body.data[a->body.len] = '\0';
    }
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    attempt *a = ud;
    size_t n = size * nmemb;
    if (a->body.len + n > MAX_RESPONSE) {
        a->too_big = true;
        return 0;
    }
    if (tw_buf_append(&a->body, ptr, n)) return 0;
    if (a->stream && a->sse_state == 0) {
        long code = 0;
        curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &code);
        a->sse_state = code >= 200 && code < 300 ? 1 : 2;   /* an error answer is kept whole */
    }
    if (a->sse_state == 1) {
        sse_parse(a);
        if (a->aborted) return 0;
    }
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    attempt *a = ud;
    size_t n = size * nitems;
    if (n > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
        char v[128];
        size_t k = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
        memcpy(v, buf + 12, k);
        v[k] = '\0';
        double s;
        if (tw_remote_parse_retry_after(v, (double)time(NULL), &s)) a->retry_after = s;
    }
    return n;
}

static void slot_acquire(tw_remote *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->in_flight >= r->p.max_in_flight) pthread_cond_wait(&r->cv, &r->mu);
    r->in_flight++;
    double wait = 0;
    if (r->p.requests_per_minute > 0) {
        const double now = tw_now(), gap = 60.0 / r->p.requests_per_minute;
        double start = r->next_start > now ? r->next_start : now;
        r->next_start = start + gap;
        wait = start - now;
    }
    pthread_mutex_unlock(&r->mu);
    sleep_s(wait);
}

static void slot_release(tw_remote *r)
{
    pthread_mutex_lock(&r->mu);
    r->in_flight--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static bool retryable_http(long code) { return code == 408 || code == 429 || code == 500 || code == 502 || code == 503 || code == 504; }
static bool retryable_curl(CURLcode c)
{
    return c == CURLE_OPERATION_TIMEDOUT || c == CURLE_COULDNT_CONNECT || c == CURLE_RECV_ERROR ||
           c == CURLE_SEND_ERROR || c == CURLE_GOT_NOTHING || c == CURLE_PARTIAL_FILE;
}

/* The server's error message from a JSON error body, else the start of the body. */
static void server_message(const tw_buf *body, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *j = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!m) m = json_string_value(json_object_get(j, "error"));
    if (m) snprintf(out, cap, "%s", m);
    else if (body->len) snprintf(out, cap, "%.*s", (int)(body->len < 200 ? body->len : 200), body->data);
    json_decref(j);
}

/* POST body to base + path with retries. Non-stream: *resp = the parsed JSON answer
 * (new reference). Stream: the text goes to res->text / req->on_text. */
static tw_status call(tw_remote *r, const char *path, json_t *jbody, bool chat, const tw_remote_request *req,
                      tw_remote_result *res, json_t **resp, tw_error *err)
{
    const double t0 = tw_now();
    if (resp) *resp = NULL;
    res->prompt_tokens = res->completion_tokens = -1;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", r->base, path);
    char *payload = json_dumps(jbody, JSON_COMPACT);
    if (!payload) return rerr(r, err, TW_ERR_NOMEM, "out of memory");
    const bool stream = req && req->on_text;
    tw_status st = TW_OK;
    int retries = 0;
    for (int k = 0;; k++) {
        CURL *h = curl_easy_init();
        attempt a = {.retry_after = -1, .stream = stream, .chat = chat, .text = &res->text, .h = h};
        if (stream) {
            a.on_text = req->on_text;
            a.user = req->user;
        }
        if (!h) {
            st = rerr(r, err, TW_ERR_RUNTIME, "POST %s: cannot create a curl handle", url);
            break;
        }
        struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
        hd = curl_slist_append(hd, stream ? "Accept: text/event-stream" : "Accept: application/json");
        hd = curl_slist_append(hd, "Expect:");
        if (r->key) {
            tw_buf auth = {0};
            tw_buf_puts(&auth, "Authorization: Bearer ");
            tw_buf_puts(&auth, r->key);
            hd = curl_slist_append(hd, auth.data);
            memset(auth.data, 0, auth.len);
            tw_buf_free(&auth);
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
        const double tmo = req && req->timeout_s > 0 ? req->timeout_s : r->p.timeout_s;
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(tmo * 1000));
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->p.connect_timeout_s * 1000));
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "tunewise/" TW_VERSION_STRING);
        slot_acquire(r);
        CURLcode cc = curl_easy_perform(h);
        slot_release(r);
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        char cerr[CURL_ERROR_SIZE];
        snprintf(cerr, sizeof cerr, "%s", curl_easy_strerror(cc));
        curl_easy_cleanup(h);
        for (struct curl_slist *e = hd; e; e = e->next)   /* the key's copy in the header list */
            if (strncmp(e->data, "Authorization:", 14) == 0) memset(e->data, 0, strlen(e->data));
        curl_slist_free_all(hd);
        res->attempts = k + 1;
        res->http_status = (int)code;
        bool retry = false;
        char what[700];
        what[0] = '\0';
        if (a.aborted) {
            st = rerr(r, err, TW_ERR_RUNTIME, "POST %s: aborted by the stream callback", url);
        } else if (a.too_big) {
            st = rerr(r, err, TW_ERR_RUNTIME, "POST %s: answer larger than %zu bytes", url, MAX_RESPONSE);
        } else if (cc != CURLE_OK) {
            retry = retryable_curl(cc) && !a.delivered;
            snprintf(what, sizeof what, "%s", cerr);
            st = TW_ERR_RUNTIME;
        } else if (code < 200 || code >= 300) {
            char sm[512];
            server_message(&a.body, sm, sizeof sm);
            snprintf(what, sizeof what, "HTTP %ld%s%s", code, sm[0] ? ": " : "", sm);
            retry = retryable_http(code);
            st = code == 404 || code == 501 ? TW_ERR_UNSUPPORTED : retry ? TW_ERR_RUNTIME : TW_ERR_INVALID;
        } else if (stream) {
            if (a.stream_err[0]) {
                snprintf(what, sizeof what, "error in the stream: %s", a.stream_err);
                st = TW_ERR_RUNTIME;
            } else {
                if (!a.done) tw_log(TW_LOG_WARN, "remote: the stream from %s ended without [DONE]", url);
                res->prompt_tokens = a.pt ? a.pt : -1;
                res->completion_tokens = a.ct ? a.ct : -1;
                if (a.pt == 0 && a.ct > 0) res->prompt_tokens = 0;
                snprintf(res->finish_reason, sizeof res->finish_reason, "%s", a.finish);
                st = TW_OK;
            }
        } else {
            json_error_t je;
            json_t *j = json_loadb(a.body.data ? a.body.data : "", a.body.len, 0, &je);
            if (!json_is_object(j)) {
                json_decref(j);
                snprintf(what, sizeof what, "the answer is not JSON: %s", je.text);
                st = TW_ERR_RUNTIME;
            } else {
                json_t *u = json_object_get(j, "usage");
                if (json_is_object(u)) {
                    json_t *pt = json_object_get(u, "prompt_tokens"), *ct = json_object_get(u, "completion_tokens");
                    if (json_is_integer(pt)) res->prompt_tokens = json_integer_value(pt);
                    if (json_is_integer(ct)) res->completion_tokens = json_integer_value(ct);
                }
                if (resp) *resp = j;
                else json_decref(j);
                st = TW_OK;
            }
        }
        tw_buf_free(&a.body);
        if (st == TW_OK || what[0] == '\0') break;   /* success, or already reported */
        if (retry && k < r->p.max_retries) {
            double d;
            if (a.retry_after >= 0) {
                d = a.retry_after < r->p.retry_after_max_s ? a.retry_after : r->p.retry_after_max_s;
            } else {
                double b = r->p.backoff_base_s * pow(2.0, k);
                if (b > r->p.backoff_max_s) b = r->p.backoff_max_s;
                pthread_mutex_lock(&r->mu);
                double u = tw_rng_uniform(&r->rng);
                pthread_mutex_unlock(&r->mu);
                d = b * (0.5 + 0.5 * u);
            }
            redact(r, what);
            tw_log(TW_LOG_INFO, "remote: POST %s: %s; retry %d of %d in %.2f s", url, what, k + 1, r->p.max_retries, d);
            res->waited_s += d;
            retries++;
            sleep_s(d);
            tw_buf_clear(&res->text);
            continue;
        }
        st = rerr(r, err, st, "POST %s: %s (after %d attempt%s)", url, what, k + 1, k ? "s" : "");
        break;
    }
    free(payload);
    res->latency_ms = (tw_now() - t0) * 1e3;
    pthread_mutex_lock(&r->mu);
    r->stats.calls++;
    r->stats.attempts += res->attempts;
    r->stats.retries += retries;
    if (st) r->stats.failures++;
    if (res->prompt_tokens > 0) r->stats.prompt_tokens += res->prompt_tokens;
    if (res->completion_tokens > 0) r->stats.completion_tokens += res->completion_tokens;
    r->stats.latency_ms += res->latency_ms;
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* ---- request bodies ------------------------------------------------------------------- */

static tw_status common_fields(tw_remote *r, json_t *b, const tw_remote_request *q, tw_error *err)
{
    json_object_set_new(b, "model", json_string(r->model));
    if (q->max_tokens >= 0) json_object_set_new(b, "max_tokens", json_integer(q->max_tokens));
    if (q->temperature >= 0) json_object_set_new(b, "temperature", json_real(q->temperature));
    if (q->top_p > 0) json_object_set_new(b, "top_p", json_real(q->top_p));
    if (q->seed >= 0) json_object_set_new(b, "seed", json_integer(q->seed));
    if (q->n_stops) {
        json_t *a = json_array();
        for (size_t i = 0; i < q->n_stops; i++) {
            json_t *s = json_string(q->stops[i]);
            if (!s) {
                json_decref(a);
                return rerr(r, err, TW_ERR_INVALID, "remote: stop string %zu is not valid UTF-8", i);
            }
            json_array_append_new(a, s);
        }
        json_object_set_new(b, "stop", a);
    }
    if (q->on_text) {
        json_object_set_new(b, "stream", json_true());
        json_object_set_new(b, "stream_options", json_pack("{s:b}", "include_usage", 1));
    }
    return TW_OK;
}

tw_status tw_remote_chat(tw_remote *r, const tw_remote_request *q, tw_remote_result *res, tw_error *err)
{
    memset(res, 0, sizeof *res);
    if (!q->msgs || q->n_msgs == 0) return rerr(r, err, TW_ERR_INVALID, "remote chat: no messages");
    json_t *b = json_object(), *msgs = json_array();
    json_object_set_new(b, "messages", msgs);
    for (size_t i = 0; i < q->n_msgs; i++) {
        json_t *c = json_string(q->msgs[i].content ? q->msgs[i].content : "");
        if (!c || !q->msgs[i].role) {
            json_decref(b);
            return rerr(r, err, TW_ERR_INVALID, "remote chat: message %zu has no role or is not valid UTF-8", i);
        }
        json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", q->msgs[i].role, "content", c));
    }
    tw_status st = common_fields(r, b, q, err);
    if (!st && q->response_format) {
        json_error_t je;
        json_t *rf = json_loads(q->response_format, 0, &je);
        if (!json_is_object(rf)) {
            json_decref(rf);
            st = rerr(r, err, TW_ERR_INVALID, "remote chat: response_format is not a JSON object: %s", je.text);
        } else {
            json_object_set_new(b, "response_format", rf);
        }
    }
    json_t *resp = NULL;
    if (!st) st = call(r, "/chat/completions", b, true, q, res, q->on_text ? NULL : &resp, err);
    json_decref(b);
    if (!st && resp) {
        json_t *c = json_array_get(json_object_get(resp, "choices"), 0);
        json_t *content = json_object_get(json_object_get(c, "message"), "content");
        if (!json_is_string(content) && !json_is_null(content)) {
            st = rerr(r, err, TW_ERR_RUNTIME, "%s/chat/completions: the answer has no choices[0].message.content",
                      r->base);
        } else {
            if (json_is_string(content)) tw_buf_append(&res->text, json_string_value(content), json_string_length(content));
            const char *fr = json_string_value(json_object_get(c, "finish_reason"));
            snprintf(res->finish_reason, sizeof res->finish_reason, "%s", fr ? fr : "");
        }
    }
    json_decref(resp);
    return st;
}

tw_status tw_remote_complete(tw_remote *r, const tw_remote_request *q, tw_remote_result *res, tw_error *err)
{
    memset(res, 0, sizeof *res);
    if (!q->prompt) return rerr(r, err, TW_ERR_INVALID, "remote completions: no prompt");
    json_t *b = json_object();
    json_t *ps = json_string(q->prompt);
    if (!ps) {
        json_decref(b);
        return rerr(r, err, TW_ERR_INVALID, "remote completions: the prompt is not valid UTF-8");
    }
    json_object_set_new(b, "prompt", ps);
    tw_status st = common_fields(r, b, q, err);
    json_t *resp = NULL;
    if (!st) st = call(r, "/completions", b, false, q, res, q->on_text ? NULL : &resp, err);
    json_decref(b);
    if (!st && resp) {
        json_t *c = json_array_get(json_object_get(resp, "choices"), 0);
        json_t *t = json_object_get(c, "text");
        if (!json_is_string(t)) {
            st = rerr(r, err, TW_ERR_RUNTIME, "%s/completions: the answer has no choices[0].text", r->base);
        } else {
            tw_buf_append(&res->text, json_string_value(t), json_string_length(t));
            const char *fr = json_string_value(json_object_get(c, "finish_reason"));
            snprintf(res->finish_reason, sizeof res->finish_reason, "%s", fr ? fr : "");
        }
    }
    json_decref(resp);
    return st;
}

/* ---- batches -------------------------------------------------------------------------- */

typedef struct batch {
    tw_remote *r;
    bool completions;
    const tw_remote_request *reqs;
    tw_remote_result *res;
    tw_status *st;
    tw_error *errs;
    size_t n, next;
    pthread_mutex_t mu;
} batch;

static void *batch_main(void *arg)
{
    batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        size_t i = b->next++;
        pthread_mutex_unlock(&b->mu);
        if (i >= b->n) break;
        tw_error e;
        tw_error_clear(&e);
        b->st[i] = b->completions ? tw_remote_complete(b->r, &b->reqs[i], &b->res[i], &e)
                                  : tw_remote_chat(b->r, &b->reqs[i], &b->res[i], &e);
        if (b->errs) b->errs[i] = e;
    }
    return NULL;
}

tw_status tw_remote_batch(tw_remote *r, bool completions, const tw_remote_request *reqs, size_t n,
                          tw_remote_result *res, tw_status *st, tw_error *errs)
{
    batch b = {.r = r, .completions = completions, .reqs = reqs, .res = res, .st = st, .errs = errs, .n = n};
    pthread_mutex_init(&b.mu, NULL);
    size_t nt = n < (size_t)r->p.max_in_flight ? n : (size_t)r->p.max_in_flight;
    pthread_t th[64];
    if (nt > 64) nt = 64;
    size_t started = 0;
    for (size_t t = 1; t < nt; t++)
        if (pthread_create(&th[started], NULL, batch_main, &b) == 0) started++;
    batch_main(&b);
    for (size_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&b.mu);
    for (size_t i = 0; i < n; i++)
        if (st[i]) return st[i];
    return TW_OK;
}

/* ---- score ---------------------------------------------------------------------------- */

typedef struct score_job {
    tw_remote *r;
    const char *prompt;
    const char *const *choices;
    size_t n, next;
    double *lp;
    tw_status *st;
    tw_error *errs;
    tw_remote_result *res;
    pthread_mutex_t mu;
} score_job;

static tw_status score_one(tw_remote *r, const char *prompt, const char *choice, double *lp, tw_remote_result *res,
                           tw_error *err)
{
    memset(res, 0, sizeof *res);
    tw_buf full = {0};
    tw_buf_puts(&full, prompt);
    tw_buf_puts(&full, choice);
    json_t *ps = json_stringn(full.data ? full.data : "", full.len);
    tw_buf_free(&full);
    if (!ps) return rerr(r, err, TW_ERR_INVALID, "remote score: prompt or choice is not valid UTF-8");
    json_t *b = json_pack("{s:s,s:o,s:i,s:i,s:b,s:i}", "model", r->model, "prompt", ps, "max_tokens", 0, "logprobs", 0,
                          "echo", 1, "temperature", 0);
    json_t *resp = NULL;
    tw_status st = call(r, "/completions", b, false, NULL, res, &resp, err);
    json_decref(b);
    if (st == TW_ERR_UNSUPPORTED)
        return rerr(r, err, TW_ERR_UNSUPPORTED,
                    "score is unsupported by the server at %s: it has no /v1/completions with echo + logprobs (%s)",
                    r->base, err ? err->msg : "");
    if (st) return st;
    json_t *c = json_array_get(json_object_get(resp, "choices"), 0);
    json_t *l = json_object_get(c, "logprobs");
    json_t *toks = json_object_get(l, "tokens"), *tlp = json_object_get(l, "token_logprobs"),
           *off = json_object_get(l, "text_offset");
    const size_t plen = strlen(prompt);
    if (!json_is_array(tlp) || !json_is_array(off) || json_array_size(tlp) != json_array_size(off) ||
        json_array_size(tlp) == 0) {
        json_decref(resp);
        return rerr(r, err, TW_ERR_UNSUPPORTED,
                    "score is unsupported by the server at %s: /completions with echo returned no prompt logprobs "
                    "(token_logprobs / text_offset)", r->base);
    }
    double sum = 0;
    size_t n = json_array_size(off);
    for (size_t i = 0; i < n; i++) {
        json_int_t o = json_integer_value(json_array_get(off, i));
        size_t tl = json_string_length(json_array_get(toks, i));
        /* a token ending after the prompt belongs to the choice */
        bool in_choice = (size_t)o >= plen || (toks && (size_t)o + tl > plen);
        if (!in_choice) continue;
        json_t *v = json_array_get(tlp, i);
        if (!json_is_number(v)) {
            json_decref(resp);
            return rerr(r, err, TW_ERR_UNSUPPORTED,
                        "score is unsupported by the server at %s: no logprob for the choice's token %zu", r->base, i);
        }
        sum += json_number_value(v);
    }
    json_decref(resp);
    *lp = sum;
    return TW_OK;
}

static void *score_main(void *arg)
{
    score_job *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        size_t i = s->next++;
        pthread_mutex_unlock(&s->mu);
        if (i >= s->n) break;
        tw_error_clear(&s->errs[i]);
        s->st[i] = score_one(s->r, s->prompt, s->choices[i], &s->lp[i], &s->res[i], &s->errs[i]);
    }
    return NULL;
}

tw_status tw_remote_score(tw_remote *r, const char *prompt, const char *const *choices, size_t n_choices,
                          double *logprobs, tw_remote_result *res, tw_error *err)
{
    const double t0 = tw_now();
    if (res) memset(res, 0, sizeof *res);
    if (!prompt) prompt = "";
    if (n_choices == 0) return TW_OK;
    score_job s = {.r = r, .prompt = prompt, .choices = choices, .n = n_choices, .lp = logprobs};
    s.st = calloc(n_choices, sizeof *s.st);
    s.errs = calloc(n_choices, sizeof *s.errs);
    s.res = calloc(n_choices, sizeof *s.res);
    if (!s.st || !s.errs || !s.res) {
        free(s.st);
        free(s.errs);
        free(s.res);
        return rerr(r, err, TW_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&s.mu, NULL);
    size_t nt = n_choices < (size_t)r->p.max_in_flight ? n_choices : (size_t)r->p.max_in_flight;
    if (nt > 64) nt = 64;
    pthread_t th[64];
    size_t started = 0;
    for (size_t t = 1; t < nt; t++)
        if (pthread_create(&th[started], NULL, score_main, &s) == 0) started++;
    score_main(&s);
    for (size_t t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&s.mu);
    tw_status st = TW_OK;
    for (size_t i = 0; i < n_choices; i++) {
        if (res) {
            if (s.res[i].prompt_tokens > 0) res->prompt_tokens += s.res[i].prompt_tokens;
            res->attempts += s.res[i].attempts;
            res->waited_s += s.res[i].waited_s;
            res->http_status = s.res[i].http_status;
        }
        if (s.st[i] && !st) {
            st = s.st[i];
            if (err) *err = s.errs[i];
        }
        tw_remote_result_free(&s.res[i]);
    }
    if (res) res->latency_ms = (tw_now() - t0) * 1e3;
    free(s.st);
    free(s.errs);
    free(s.res);
    return st;
}
