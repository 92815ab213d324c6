/* test_serve.c — `tunewise serve` (src/serve/server.c) over real HTTP on loopback, with
 * a plain libcurl client (the remote backend's own tests are in test_remote.c): the
 * endpoints' shapes, SSE streaming, errors, bearer auth, limits, the bounded queue,
 * fault injection, LoRA model routing, graceful shutdown. The server runs in-process
 * on an ephemeral port with stories260K (fast). */
#include "testutil.h"

#include "model/llama.h"
#include "model/lora.h"
#include "serve/server.h"
#include "backend/local.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>

static const char *stories(void)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    return p;
}

static tw_server *start(tw_server_params *p)
{
    p->model = stories();
    p->port = 0;
    p->n_threads = 1;
    if (!p->n_ctx) p->n_ctx = 512;
    if (!p->chat_template) p->chat_template = "chatml";   /* stories260K has none */
    tw_server *s = NULL;
    tw_error err;
    tw_error_clear(&err);
    tw_status st = tw_server_start(&s, p, &err);
    cr_assert_eq(st, TW_OK, "server start: %s", err.msg);
    cr_assert_gt(tw_server_port(s), 0);
    return s;
}

typedef struct http_res {
    long status;
    tw_buf body;
    tw_buf headers;
} http_res;

static size_t wr(char *p, size_t a, size_t b, void *u)
{
    tw_buf_append(u, p, a * b);
    return a * b;
}

/* One request; method GET when body is NULL. auth: bearer token or NULL. */
static void http(tw_server *s, const char *path, const char *body, const char *auth, http_res *r)
{
    memset(r, 0, sizeof *r);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", tw_server_port(s), path);
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    char a[256];
    if (auth) {
        snprintf(a, sizeof a, "Authorization: Bearer %s", auth);
        hd = curl_slist_append(hd, a);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, wr);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    CURLcode cc = curl_easy_perform(h);
    cr_assert_eq(cc, CURLE_OK, "%s: %s", url, curl_easy_strerror(cc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    tw_buf_putc(&r->body, '\0');
    r->body.len--;
    tw_buf_putc(&r->headers, '\0');
    r->headers.len--;
}

static void http_free(http_res *r)
{
    tw_buf_free(&r->body);
    tw_buf_free(&r->headers);
}

static json_t *body_json(const http_res *r)
{
    json_t *j = json_loads(r->body.data ? r->body.data : "", 0, NULL);
    cr_assert_not_null(j, "not JSON: %s", r->body.data);
    return j;
}

/* An OpenAI-style error body with the given status and code. */
static void assert_error(const http_res *r, long status, const char *code, const char *msg_part)
{
    cr_assert_eq(r->status, status, "status %ld, expected %ld: %s", r->status, status, r->body.data);
    json_t *j = body_json(r);
    json_t *e = json_object_get(j, "error");
    cr_assert(json_is_string(json_object_get(e, "message")), "%s", r->body.data);
    cr_assert(json_is_string(json_object_get(e, "type")), "%s", r->body.data);
    if (code) cr_assert_str_eq(json_string_value(json_object_get(e, "code")), code);
    if (msg_part) cr_assert(strstr(json_string_value(json_object_get(e, "message")), msg_part), "%s", r->body.data);
    json_decref(j);
}

Test(serve, health_models_and_404)
{
    tw_server_params p = tw_server_default_params();
    tw_server *s = start(&p);
    cr_assert_str_eq(tw_server_model_name(s), "stories260K");
    http_res r;
    http(s, "/health", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.body.data, "\"ok\""));
    http_free(&r);
    http(s, "/v1/models", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "object")), "list");
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), "stories260K");
    json_decref(j);
    http_free(&r);
    http(s, "/v1/nothing", "{}", NULL, &r);
    assert_error(&r, 404, "not_found", NULL);
    http_free(&r);
    http(s, "/v1/models", "{}", NULL, &r);
    assert_error(&r, 405, "method_not_allowed", NULL);
    http_free(&r);
    tw_server_stop(s);
}

Test(serve, completion_non_stream_with_usage)
{
    tw_server_params p = tw_server_default_params();
    tw_server *s = start(&p);
    http_res r;
    http(s, "/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 8, \"temperature\": 0}", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    cr_assert(strstr(r.headers.data, "application/json"));
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "object")), "text_completion");
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    const char *text = json_string_value(json_object_get(c, "text"));
    cr_assert(text && strlen(text) > 0);
    json_t *u = json_object_get(j, "usage");
    cr_assert_gt(json_integer_value(json_object_get(u, "prompt_tokens")), 3);
    const json_int_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
    cr_assert(ct >= 1 && ct <= 8, "completion_tokens %lld", (long long)ct);
    cr_assert_eq(json_integer_value(json_object_get(u, "total_tokens")),
                 json_integer_value(json_object_get(u, "prompt_tokens")) + ct);
    const char *fr = json_string_value(json_object_get(c, "finish_reason"));
    cr_assert(strcmp(fr, ct == 8 ? "length" : "stop") == 0, "finish_reason %s with %lld tokens", fr, (long long)ct);
    /* greedy is deterministic: the same request gives the same text */
    char *first = strdup(text);
    json_decref(j);
    http_free(&r);
    http(s, "/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 8, \"temperature\": 0}", NULL, &r);
    j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")), first);
    free(first);
    json_decref(j);
    http_free(&r);
    tw_server_stop(s);
}

/* Split an SSE body into its data payloads; checks the framing. Returns the count. */
static size_t sse_events(const char *body, char **ev, size_t cap)
{
    size_t n = 0;
    const char *p = body;
    while (*p) {
        cr_assert(strncmp(p, "data: ", 6) == 0, "event does not start with 'data: ': %.40s", p);
        const char *e = strstr(p, "\n\n");
        cr_assert_not_null(e, "event not terminated by a blank line");
        cr_assert_lt(n, cap);
        ev[n++] = strndup(p + 6, (size_t)(e - p - 6));
        p = e + 2;
    }
    return n;
}

Test(serve, chat_stream_sse_matches_non_stream)
{
    tw_server_params p = tw_server_default_params();
    tw_server *s = start(&p);
    const char *req = "{\"model\": \"stories260K\", \"messages\": [{\"role\": \"user\", \"content\": \"Tell a story\"}],"
                      " \"max_tokens\": 12, \"temperature\": 0%s}";
    char body[512];
    snprintf(body, sizeof body, req, "");
    http_res r;
    http(s, "/v1/chat/completions", body, NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    json_t *j = body_json(&r);
    cr_assert_str_eq(json_string_value(json_object_get(j, "object")), "chat.completion");
    json_t *m = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message");
    cr_assert_str_eq(json_string_value(json_object_get(m, "role")), "assistant");
    char *whole = strdup(json_string_value(json_object_get(m, "content")));
    json_int_t ct = json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    json_decref(j);
    http_free(&r);

    snprintf(body, sizeof body, req, ", \"stream\": true, \"stream_options\": {\"include_usage\": true}");
    http(s, "/v1/chat/completions", body, NULL, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.headers.data, "text/event-stream"), "%s", r.headers.data);
    char *ev[256];
    size_t n = sse_events(r.body.data, ev, 256);
    cr_assert_geq(n, 3);
    cr_assert_str_eq(ev[n - 1], "[DONE]");
    tw_buf text = {0};
    bool saw_finish = false, saw_usage = false;
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *c = json_loads(ev[i], 0, NULL);
        cr_assert_not_null(c, "chunk %zu is not JSON: %s", i, ev[i]);
        cr_assert_str_eq(json_string_value(json_object_get(c, "object")), "chat.completion.chunk");
        json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
        if (ch) {
            json_t *d = json_object_get(json_object_get(ch, "delta"), "content");
            if (d) tw_buf_puts(&text, json_string_value(d));
            if (json_is_string(json_object_get(ch, "finish_reason"))) saw_finish = true;
        }
        json_t *u = json_object_get(c, "usage");
        if (u) {
            saw_usage = true;
            cr_assert_eq(json_integer_value(json_object_get(u, "completion_tokens")), ct);
        }
        json_decref(c);
        free(ev[i]);
    }
    free(ev[n - 1]);
    cr_assert(saw_finish && saw_usage);
    cr_assert_str_eq(text.data ? text.data : "", whole, "streamed text differs from the non-streamed one");
    tw_buf_free(&text);
    free(whole);
    http_free(&r);
    tw_server_stop(s);
}

Test(serve, request_errors)
{
    tw_server_params p = tw_server_default_params();
    p.max_tokens = 32;
    p.max_body = 2000;
    tw_server *s = start(&p);
    http_res r;
    http(s, "/v1/chat/completions", "{not json", NULL, &r);
    assert_error(&r, 400, "invalid_json", NULL);
    http_free(&r);
    http(s, "/v1/chat/completions", "{\"messages\": []}", NULL, &r);
    assert_error(&r, 400, NULL, "messages");
    http_free(&r);
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 33}", NULL, &r);
    assert_error(&r, 400, NULL, "0..32");
    http_free(&r);
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"model\": \"gpt-4\"}", NULL, &r);
    assert_error(&r, 404, "model_not_found", "gpt-4");
    http_free(&r);
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"temperature\": 5}", NULL, &r);
    assert_error(&r, 400, NULL, "temperature");
    http_free(&r);
    http(s, "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"response_format\": {\"type\": \"xml\"}}", NULL, &r);
    assert_error(&r, 400, NULL, "response_format");
    http_free(&r);
    /* body limit */
    char *big = malloc(3000);
    memset(big, ' ', 2999);
    big[0] = '{';
    big[2997] = '}';
    big[2998] = '\0';
    http(s, "/v1/completions", big, NULL, &r);
    assert_error(&r, 413, "request_too_large", NULL);
    free(big);
    http_free(&r);
    /* the server still works */
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 2}", NULL, &r);
    cr_assert_eq(r.status, 200);
    http_free(&r);
    tw_server_stop(s);
}

Test(serve, bearer_token)
{
    tw_server_params p = tw_server_default_params();
    p.token = "s3cret-token";
    tw_server *s = start(&p);
    http_res r;
    http(s, "/v1/models", NULL, NULL, &r);
    assert_error(&r, 401, "invalid_api_key", NULL);
    cr_assert_null(strstr(r.body.data, "s3cret"));
    http_free(&r);
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1}", "s3cret-tokeN", &r);
    assert_error(&r, 401, "invalid_api_key", NULL);
    http_free(&r);
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 1}", "s3cret-token", &r);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    http_free(&r);
    http(s, "/health", NULL, NULL, &r);   /* health stays open for load balancers */
    cr_assert_eq(r.status, 200);
    http_free(&r);
    tw_server_stop(s);
}

typedef struct bg {
    tw_server *s;
    const char *path, *body;
    http_res r;
    pthread_t th;
} bg;

static void *bg_main(void *arg)
{
    bg *b = arg;
    http(b->s, b->path, b->body, NULL, &b->r);
    return NULL;
}

static void bg_start(bg *b, tw_server *s, const char *path, const char *body)
{
    b->s = s;
    b->path = path;
    b->body = body;
    cr_assert_eq(pthread_create(&b->th, NULL, bg_main, b), 0);
}

static void wait_for(tw_server *s, int32_t queued, int64_t completions_max)
{
    for (int i = 0; i < 300; i++) {
        tw_server_stats st = tw_server_get_stats(s);
        if (st.queued == queued && st.completions <= completions_max) return;
        usleep(10000);
    }
    cr_assert_fail("the server never reached queued = %d", queued);
}

Test(serve, queue_full_answers_503_with_retry_after)
{
    tw_server_params p = tw_server_default_params();
    p.queue = 1;
    p.faults = "busy:0.8";
    tw_server *s = start(&p);
    const char *req = "{\"prompt\": \"Once\", \"max_tokens\": 2, \"temperature\": 0}";
    bg a, b;
    bg_start(&a, s, "/v1/completions", req);
    wait_for(s, 0, 0);                 /* a is running (busy) */
    usleep(50000);
    bg_start(&b, s, "/v1/completions", req);
    wait_for(s, 1, 0);                 /* b waits in the queue */
    http_res r;
    http(s, "/v1/completions", req, NULL, &r);
    assert_error(&r, 503, "queue_full", NULL);
    cr_assert(strstr(r.headers.data, "Retry-After: 1"), "%s", r.headers.data);
    http_free(&r);
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    cr_assert_eq(a.r.status, 200, "%s", a.r.body.data);
    cr_assert_eq(b.r.status, 200, "%s", b.r.body.data);
    http_free(&a.r);
    http_free(&b.r);
    cr_assert_eq(tw_server_get_stats(s).rejected_full, 1);
    tw_server_stop(s);
}

Test(serve, stop_lets_in_flight_requests_finish)
{
    tw_server_params p = tw_server_default_params();
    p.faults = "busy:0.6";
    tw_server *s = start(&p);
    const int port = tw_server_port(s);
    bg a;
    bg_start(&a, s, "/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 3, \"temperature\": 0}");
    wait_for(s, 0, 0);
    usleep(100000);
    const double t0 = tw_now();
    tw_server_stop(s);
    const double dt = tw_now() - t0;
    pthread_join(a.th, NULL);
    cr_assert_eq(a.r.status, 200, "the in-flight request was cut: %ld %s", a.r.status, a.r.body.data);
    cr_assert(strstr(a.r.body.data, "text_completion"));
    cr_assert_gt(dt, 0.2, "stop returned before the request finished (%.3f s)", dt);
    http_free(&a.r);
    /* nothing listens any more */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 2L);
    cr_assert_neq(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
}

Test(serve, faults_scripted)
{
    tw_server_params p = tw_server_default_params();
    tw_server *s = start(&p);
    tw_error err;
    cr_assert_neq(tw_server_set_faults(s, "429:x", &err), TW_OK);
    cr_assert_neq(tw_server_set_faults(s, "teapot", &err), TW_OK);
    cr_assert_eq(tw_server_set_faults(s, "429:3x2,500,429:d2", &err), TW_OK, "%s", err.msg);
    const char *req = "{\"prompt\": \"x\", \"max_tokens\": 1}";
    http_res r;
    for (int i = 0; i < 2; i++) {
        http(s, "/v1/completions", req, NULL, &r);
        assert_error(&r, 429, "rate_limit_exceeded", NULL);
        cr_assert(strstr(r.headers.data, "Retry-After: 3\r\n"), "%s", r.headers.data);
        http_free(&r);
    }
    http(s, "/v1/completions", req, NULL, &r);
    assert_error(&r, 500, NULL, NULL);
    http_free(&r);
    http(s, "/v1/completions", req, NULL, &r);
    cr_assert_eq(r.status, 429);
    cr_assert(strstr(r.headers.data, "Retry-After: ") && strstr(r.headers.data, " GMT"), "%s", r.headers.data);
    http_free(&r);
    http(s, "/v1/completions", req, NULL, &r);   /* script used up */
    cr_assert_eq(r.status, 200);
    http_free(&r);
    cr_assert_eq(tw_server_get_stats(s).faults, 4);
    tw_server_stop(s);
}

Test(serve, echo_logprobs_of_the_prompt)
{
    tw_server_params p = tw_server_default_params();
    tw_server *s = start(&p);
    http_res r;
    http(s, "/v1/completions",
         "{\"prompt\": \"Once upon a time there was\", \"max_tokens\": 0, \"echo\": true, \"logprobs\": 0}", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    json_t *j = body_json(&r);
    json_t *c = json_array_get(json_object_get(j, "choices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(c, "text")), "Once upon a time there was");
    json_t *lp = json_object_get(c, "logprobs");
    json_t *toks = json_object_get(lp, "tokens"), *tlp = json_object_get(lp, "token_logprobs"),
           *off = json_object_get(lp, "text_offset");
    size_t n = json_array_size(toks);
    cr_assert_geq(n, 4);
    cr_assert_eq(json_array_size(tlp), n);
    cr_assert_eq(json_array_size(off), n);
    /* the tokens spell the prompt at their offsets; each logprob is a real log-probability */
    tw_buf cat = {0};
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq((size_t)json_integer_value(json_array_get(off, i)), cat.len);
        tw_buf_puts(&cat, json_string_value(json_array_get(toks, i)));
        json_t *v = json_array_get(tlp, i);
        cr_assert(json_is_real(v), "stories260K adds BOS: every text token has a logprob");
        cr_assert(json_real_value(v) < 0 && json_real_value(v) > -40);
    }
    cr_assert_str_eq(cat.data, "Once upon a time there was");
    tw_buf_free(&cat);
    json_decref(j);
    http_free(&r);
    tw_server_stop(s);
}

Test(serve, json_schema_response_format)
{
    tw_server_params p = tw_server_default_params();
    tw_server *s = start(&p);
    http_res r;
    http(s, "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"Give a label\"}], \"max_tokens\": 40, \"temperature\": 0,"
         " \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\", \"schema\":"
         " {\"type\": \"object\", \"properties\": {\"label\": {\"enum\": [\"yes\", \"no\"]}}, \"required\": [\"label\"],"
         " \"additionalProperties\": false}}}}", NULL, &r);
    cr_assert_eq(r.status, 200, "%s", r.body.data);
    json_t *j = body_json(&r);
    const char *content = json_string_value(
        json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    json_t *v = json_loads(content, 0, NULL);
    cr_assert_not_null(v, "constrained output is not JSON: %s", content);
    const char *label = json_string_value(json_object_get(v, "label"));
    cr_assert(label && (strcmp(label, "yes") == 0 || strcmp(label, "no") == 0), "%s", content);
    json_decref(v);
    json_decref(j);
    http_free(&r);
    tw_server_stop(s);
}

Test(serve, lora_adapters_routed_by_model_name)
{
    char *dir = tw_test_tmpdir();
    char bad[600];
    snprintf(bad, sizeof bad, "x=%s/missing.gguf", dir);
    const char *loras[] = {bad};
    tw_server_params p = tw_server_default_params();
    p.loras = loras;
    p.n_loras = 1;
    p.model = stories();
    p.port = 0;
    p.chat_template = "chatml";
    tw_server *s = NULL;
    tw_error err;
    cr_assert_neq(tw_server_start(&s, &p, &err), TW_OK, "a missing adapter file must fail at start");
    cr_assert(strstr(err.msg, "--lora x"), "%s", err.msg);
    const char *bad_name[] = {"a+b=/x"};
    p.loras = bad_name;
    cr_assert_neq(tw_server_start(&s, &p, &err), TW_OK);
    cr_assert(strstr(err.msg, "NAME") || strstr(err.msg, "'+'"), "%s", err.msg);

    /* a valid adapter for this model: listed, applied when the model field names it */
    tw_llama *m = NULL;
    cr_assert_eq(tw_llama_open(&m, stories(), NULL, &err), TW_OK, "%s", err.msg);
    tw_lora *l = NULL;
    cr_assert_eq(tw_lora_new(&l, tw_llama_config(m), TW_LORA_Q | TW_LORA_V, 2, 4.0f, TW_LORA_ROWS_GGUF, &err), TW_OK,
                 "%s", err.msg);
    tw_lora_init_peft(l, 1);
    tw_rng rng;
    tw_rng_seed(&rng, 7);
    for (int32_t i = 0; i < l->n; i++)   /* a B that changes the model's answers */
        for (int64_t k = 0; k < l->w[i].n_out * l->w[i].rank; k++) l->w[i].b[k] = (float)(tw_rng_uniform(&rng) - 0.5);
    char path[600], spec[700];
    snprintf(path, sizeof path, "%s/ad.gguf", dir);
    cr_assert_eq(tw_lora_write_gguf(l, path, NULL, &err), TW_OK, "%s", err.msg);
    tw_lora_free(l);
    tw_llama_free(m);
    snprintf(spec, sizeof spec, "tuned=%s", path);
    const char *good[] = {spec};
    p = tw_server_default_params();
    p.loras = good;
    p.n_loras = 1;
    s = start(&p);
    http_res r;
    http(s, "/v1/models", NULL, NULL, &r);
    json_t *j = body_json(&r);
    cr_assert_eq(json_array_size(json_object_get(j, "data")), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 1), "id")),
                     "stories260K+tuned");
    json_decref(j);
    http_free(&r);
    /* greedy completions: base, adapter, base again; each equals the local engine's */
    const char *models[] = {"stories260K", "stories260K+tuned", "stories260K"};
    char *texts[3];
    for (int i = 0; i < 3; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"prompt\": \"Once upon a time\", \"model\": \"%s\", \"max_tokens\": 12, \"temperature\": 0}",
                 models[i]);
        http(s, "/v1/completions", body, NULL, &r);
        cr_assert_eq(r.status, 200, "%s: %d %s", models[i], r.status, r.body);
        j = body_json(&r);
        texts[i] = strdup(json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text")));
        json_decref(j);
        http_free(&r);
    }
    cr_assert_str_eq(texts[0], texts[2], "the adapter must not stick to later base requests");
    cr_assert_str_neq(texts[0], texts[1], "the adapter changes the answer");
    tw_local_params lp = tw_local_default_params();
    lp.model = stories();
    tw_local *loc = NULL;
    cr_assert_eq(tw_local_open(&loc, &lp, &err), TW_OK, "%s", err.msg);
    tw_lora *la = NULL;
    cr_assert_eq(tw_lora_read_gguf(&la, path, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_local_set_adapters(loc, &la, NULL, 1, &err), TW_OK, "%s", err.msg);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = 12;
    tw_local_result lr;
    cr_assert_eq(tw_local_generate(loc, "Once upon a time", &gp, &lr, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(lr.text.data ? lr.text.data : "", texts[1], "served adapter vs local adapter");
    tw_local_result_free(&lr);
    tw_local_free(loc);
    tw_lora_free(la);
    for (int i = 0; i < 3; i++) free(texts[i]);
    http(s, "/v1/completions", "{\"prompt\": \"x\", \"model\": \"stories260K+other\"}", NULL, &r);
    assert_error(&r, 404, "model_not_found", NULL);
    http_free(&r);
    tw_server_stop(s);
    free(dir);
}

/* The command: `tunewise serve` as a child process; SIGTERM while a request runs: the
 * request gets its answer and the process exits 0. (Needs cmd_serve registered in
 * tools/tunewise/main.c.) */
Test(serve, cli_sigterm_finishes_in_flight_then_exits_0)
{
    char *dir = tw_test_tmpdir();
    char portfile[600];
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(tw_test_bin(), tw_test_bin(), "serve", "-m", stories(), "--port", "0", "--port-file", portfile,
              "--chat-template", "chatml", "-t", "1", "--ctx", "256", "--fault-inject", "busy:1", (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 500 && port == 0; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        int st;
        if (port == 0 && waitpid(pid, &st, WNOHANG) == pid)
            cr_assert_fail("%s serve exited (status %d) before listening: is cmd_serve registered?", tw_test_bin(),
                           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        if (port == 0) usleep(20000);
    }
    cr_assert_gt(port, 0, "no port file from %s serve", tw_test_bin());
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", port);
    tw_buf out = {0};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"prompt\": \"Once\", \"max_tokens\": 3, \"temperature\": 0}");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, h);
    int running = 1;
    const double t0 = tw_now();
    bool sent = false;
    while (running) {
        curl_multi_perform(m, &running);
        if (!sent && tw_now() - t0 > 0.4) {   /* the request is in the worker (busy 1 s) */
            kill(pid, SIGTERM);
            sent = true;
        }
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(m, h);
    curl_easy_cleanup(h);
    curl_multi_cleanup(m);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(sent);
    cr_assert_eq(code, 200, "the in-flight request got %ld: %s", code, out.data ? out.data : "");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "serve did not exit 0 on SIGTERM (status %d)", st);
    tw_buf_free(&out);
    unlink(portfile);
    rmdir(dir);
    free(dir);
}
