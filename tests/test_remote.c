/* test_remote.c — the remote backend (src/backend/remote.c) against `tunewise serve`
 * (src/serve/server.c) started in-process on an ephemeral loopback port: real HTTP both
 * ways. Chat / completions, streaming, usage, retries and backoff over the server's
 * fault injection (429 with Retry-After in seconds and as an HTTP-date, 500, stalls
 * past the client's timeout), the requests-per-minute limit, concurrency, the API key
 * never appearing in errors, `score` from echoed logprobs, and local vs remote
 * predictions agreeing (greedy, stories260K and SmolLM2). */
#include "testutil.h"

#include "backend/local.h"
#include "backend/remote.h"
#include "serve/server.h"

#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <pthread.h>

static const char *stories(void)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    return p;
}

static const char *smollm2(void)
{
    static char p[1024];
    const char *e = getenv("TW_SMOLLM2");
    if (e && *e) snprintf(p, sizeof p, "%s", e);
    else snprintf(p, sizeof p, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    cr_assert(tw_file_exists(p), "SmolLM2 model not found at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", p);
    return p;
}

static tw_server *serve(const char *model, const char *tmpl, const char *token)
{
    tw_server_params p = tw_server_default_params();
    p.model = model;
    p.chat_template = tmpl;
    p.port = 0;
    p.n_threads = 1;
    p.n_ctx = 1024;
    p.token = token;
    tw_server *s = NULL;
    tw_error err;
    tw_status st = tw_server_start(&s, &p, &err);
    cr_assert_eq(st, TW_OK, "server: %s", err.msg);
    return s;
}

static tw_remote *client(tw_server *s, const char *key_env, double timeout_s, int retries)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", tw_server_port(s));
    tw_remote_params p = tw_remote_default_params();
    p.base_url = url;
    p.model = tw_server_model_name(s);
    p.api_key_env = key_env;
    p.timeout_s = timeout_s;
    p.max_retries = retries;
    p.backoff_base_s = 0.05;
    p.backoff_max_s = 0.2;
    tw_remote *r = NULL;
    tw_error err;
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_OK, "%s", err.msg);
    return r;
}

static tw_remote_request story_req(void)
{
    tw_remote_request q = tw_remote_request_init();
    q.prompt = "Once upon a time";
    q.max_tokens = 10;
    q.temperature = 0;
    return q;
}

Test(remote, retry_after_parsing)
{
    double s;
    cr_assert(tw_remote_parse_retry_after("120", 0, &s));
    cr_assert_float_eq(s, 120, 1e-9);
    cr_assert(tw_remote_parse_retry_after(" 2 \r\n", 0, &s));
    cr_assert_float_eq(s, 2, 1e-9);
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 (RFC 9110's example) */
    cr_assert(tw_remote_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770.0, &s));
    cr_assert_float_eq(s, 7, 1e-9);
    cr_assert(tw_remote_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111800.0, &s));
    cr_assert_float_eq(s, 0, 1e-9, "a past date means now");
    cr_assert_not(tw_remote_parse_retry_after("soon", 0, &s));
    cr_assert_not(tw_remote_parse_retry_after("12abc", 0, &s));
    cr_assert_not(tw_remote_parse_retry_after("", 0, &s));
}

Test(remote, open_errors_and_model_id)
{
    tw_remote_params p = tw_remote_default_params();
    tw_remote *r = NULL;
    tw_error err;
    p.model = "m";
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_ERR_INVALID);
    p.base_url = "ftp://x";
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_ERR_INVALID);
    p.base_url = "http://127.0.0.1:9/";
    unsetenv("TW_TEST_NO_SUCH_KEY");
    p.api_key_env = "TW_TEST_NO_SUCH_KEY";
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "TW_TEST_NO_SUCH_KEY"), "%s", err.msg);
    setenv("TW_TEST_KEY_ID", "sk-do-not-cache-me", 1);
    p.api_key_env = "TW_TEST_KEY_ID";
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(tw_remote_model_id(r), "remote:http://127.0.0.1:9/v1#m");
    cr_assert_null(strstr(tw_remote_model_id(r), "sk-do"));
    tw_remote_free(r);
    tw_price pr = {.input_per_mtok = 2.0, .output_per_mtok = 8.0};
    cr_assert_float_eq(tw_remote_cost(&pr, 1000000, 500000), 6.0, 1e-12);
}

Test(remote, completion_and_chat_with_usage)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_remote *r = client(s, NULL, 30, 0);
    tw_remote_request q = story_req();
    tw_remote_result res;
    tw_error err;
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_OK, "%s", err.msg);
    cr_assert_gt(res.text.len, 0);
    cr_assert_gt(res.prompt_tokens, 3);
    cr_assert(res.completion_tokens >= 1 && res.completion_tokens <= 10);
    cr_assert_eq(res.attempts, 1);
    cr_assert_eq(res.http_status, 200);
    cr_assert_gt(res.latency_ms, 0);
    const int64_t pt = res.prompt_tokens, ct = res.completion_tokens;
    tw_remote_result_free(&res);

    tw_chat_msg msgs[] = {{"system", "You tell stories."}, {"user", "Tell one."}};
    tw_remote_request c = tw_remote_request_init();
    c.msgs = msgs;
    c.n_msgs = 2;
    c.max_tokens = 6;
    c.temperature = 0;
    const char *stops[] = {"zzzz"};
    c.stops = stops;
    c.n_stops = 1;
    c.seed = 3;
    cr_assert_eq(tw_remote_chat(r, &c, &res, &err), TW_OK, "%s", err.msg);
    cr_assert(res.completion_tokens >= 1 && res.completion_tokens <= 6);
    cr_assert(strcmp(res.finish_reason, "length") == 0 || strcmp(res.finish_reason, "stop") == 0);
    const int64_t ct2 = res.completion_tokens, pt2 = res.prompt_tokens;
    tw_remote_result_free(&res);
    tw_remote_stats st = tw_remote_get_stats(r);
    cr_assert_eq(st.calls, 2);
    cr_assert_eq(st.attempts, 2);
    cr_assert_eq(st.prompt_tokens, pt + pt2);
    cr_assert_eq(st.completion_tokens, ct + ct2);
    tw_remote_free(r);
    tw_server_stop(s);
}

typedef struct pieces {
    tw_buf text;
    int n;
} pieces;

static bool on_piece(void *u, const char *t, size_t n)
{
    pieces *p = u;
    tw_buf_append(&p->text, t, n);
    p->n++;
    return true;
}

Test(remote, streaming_equals_non_streaming)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_remote *r = client(s, NULL, 30, 0);
    tw_chat_msg msgs[] = {{"user", "Tell a story about a cat."}};
    tw_remote_request c = tw_remote_request_init();
    c.msgs = msgs;
    c.n_msgs = 1;
    c.max_tokens = 16;
    c.temperature = 0;
    tw_remote_result a, b;
    tw_error err;
    cr_assert_eq(tw_remote_chat(r, &c, &a, &err), TW_OK, "%s", err.msg);
    pieces pc = {0};
    c.on_text = on_piece;
    c.user = &pc;
    cr_assert_eq(tw_remote_chat(r, &c, &b, &err), TW_OK, "%s", err.msg);
    cr_assert_gt(pc.n, 1, "the answer came in one piece: not streamed");
    cr_assert_str_eq(b.text.data, a.text.data);
    cr_assert_str_eq(pc.text.data, a.text.data);
    cr_assert_eq(b.completion_tokens, a.completion_tokens, "usage from the stream's last chunk");
    cr_assert_eq(b.prompt_tokens, a.prompt_tokens);
    cr_assert_str_eq(b.finish_reason, a.finish_reason);
    tw_buf_free(&pc.text);
    tw_remote_result_free(&a);
    tw_remote_result_free(&b);
    /* a streamed request refused before streaming: the server's JSON error is quoted */
    c.max_tokens = 1 << 20;
    cr_assert_eq(tw_remote_chat(r, &c, &a, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "HTTP 400") && strstr(err.msg, "max_tokens"), "%s", err.msg);
    tw_remote_result_free(&a);
    /* completions stream too */
    tw_remote_request q = story_req();
    cr_assert_eq(tw_remote_complete(r, &q, &a, &err), TW_OK, "%s", err.msg);
    pieces pq = {0};
    q.on_text = on_piece;
    q.user = &pq;
    cr_assert_eq(tw_remote_complete(r, &q, &b, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(pq.text.data, a.text.data);
    tw_buf_free(&pq.text);
    tw_remote_result_free(&a);
    tw_remote_result_free(&b);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, retries_honor_retry_after_seconds)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_error err;
    cr_assert_eq(tw_server_set_faults(s, "429:1x2", &err), TW_OK);
    tw_remote *r = client(s, NULL, 30, 3);
    tw_remote_request q = story_req();
    tw_remote_result res;
    const double t0 = tw_now();
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_OK, "%s", err.msg);
    const double dt = tw_now() - t0;
    cr_assert_eq(res.attempts, 3, "two 429s then success: %d attempts", res.attempts);
    cr_assert_float_eq(res.waited_s, 2.0, 1e-9, "waits must be the Retry-After values, not backoff");
    cr_assert(dt >= 1.95 && dt < 3.5, "wall time %.3f s for two Retry-After: 1", dt);
    cr_assert_eq(tw_remote_get_stats(r).retries, 2);
    tw_remote_result_free(&res);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, retries_honor_retry_after_http_date)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_error err;
    cr_assert_eq(tw_server_set_faults(s, "429:d2", &err), TW_OK);
    tw_remote *r = client(s, NULL, 30, 2);
    tw_remote_request q = story_req();
    tw_remote_result res;
    const double t0 = tw_now();
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_OK, "%s", err.msg);
    const double dt = tw_now() - t0;
    cr_assert_eq(res.attempts, 2);
    /* an HTTP-date 2 s ahead, at one-second resolution: the wait is in (1, 2] */
    cr_assert(res.waited_s > 0.9 && res.waited_s <= 2.0, "waited %.3f s", res.waited_s);
    cr_assert(dt >= res.waited_s && dt < 3.5, "wall %.3f s", dt);
    tw_remote_result_free(&res);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, backoff_on_500_then_gives_up)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_error err;
    cr_assert_eq(tw_server_set_faults(s, "500x2", &err), TW_OK);
    tw_remote *r = client(s, NULL, 30, 4);   /* backoff base 0.05 s, max 0.2 s */
    tw_remote_request q = story_req();
    tw_remote_result res;
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(res.attempts, 3);
    /* equal jitter: wait k in [0.5, 1) x 0.05 x 2^k: total in [0.075, 0.15) */
    cr_assert(res.waited_s >= 0.075 && res.waited_s < 0.15, "waited %.4f s", res.waited_s);
    tw_remote_result_free(&res);

    cr_assert_eq(tw_server_set_faults(s, "500x9", &err), TW_OK);
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_ERR_RUNTIME);
    cr_assert_eq(res.attempts, 5, "1 + max_retries attempts");
    cr_assert(strstr(err.msg, "HTTP 500") && strstr(err.msg, "after 5 attempts"), "%s", err.msg);
    tw_remote_result_free(&res);
    /* a 400 is not retried */
    cr_assert_eq(tw_server_set_faults(s, "", &err), TW_OK);
    q.max_tokens = 1 << 20;
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_ERR_INVALID);
    cr_assert_eq(res.attempts, 1);
    cr_assert(strstr(err.msg, "HTTP 400") && strstr(err.msg, "max_tokens"), "%s", err.msg);
    tw_remote_result_free(&res);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, timeout_is_retried)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_error err;
    cr_assert_eq(tw_server_set_faults(s, "stall:1.5", &err), TW_OK);
    tw_remote *r = client(s, NULL, 0.4, 2);
    tw_remote_request q = story_req();
    tw_remote_result res;
    const double t0 = tw_now();
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_OK, "%s", err.msg);
    const double dt = tw_now() - t0;
    cr_assert_eq(res.attempts, 2, "a timed-out attempt, then success");
    cr_assert(dt >= 0.4 && dt < 1.4, "wall %.3f s: the timeout did not cut the stalled attempt", dt);
    tw_remote_result_free(&res);
    /* every attempt stalls: a timeout error (the request's own timeout beats the client's) */
    cr_assert_eq(tw_server_set_faults(s, "stall:1x3", &err), TW_OK);
    tw_remote_free(r);
    r = client(s, NULL, 30, 1);
    q.timeout_s = 0.3;
    const double t1 = tw_now();
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_ERR_RUNTIME);
    cr_assert_lt(tw_now() - t1, 1.5, "the per-request timeout was not applied");
    cr_assert_eq(res.attempts, 2);
    cr_assert(strstr(err.msg, "imeout") || strstr(err.msg, "timed out"), "%s", err.msg);
    tw_remote_result_free(&res);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, api_key_sent_and_never_leaked)
{
    const char *key = "sk-test-7f3a9c1e55d2b4";
    tw_server *s = serve(stories(), "chatml", key);
    setenv("TW_TEST_GOOD_KEY", key, 1);
    setenv("TW_TEST_BAD_KEY", "sk-wrong-0a1b2c3d4e5f", 1);
    tw_remote *good = client(s, "TW_TEST_GOOD_KEY", 30, 0);
    tw_remote *bad = client(s, "TW_TEST_BAD_KEY", 30, 2);
    tw_remote_request q = story_req();
    tw_remote_result res;
    tw_error err;
    cr_assert_eq(tw_remote_complete(good, &q, &res, &err), TW_OK, "%s", err.msg);
    tw_remote_result_free(&res);
    cr_assert_eq(tw_remote_complete(bad, &q, &res, &err), TW_ERR_INVALID);
    cr_assert_eq(res.http_status, 401);
    cr_assert_eq(res.attempts, 1, "401 is not retried");
    cr_assert(strstr(err.msg, "HTTP 401"), "%s", err.msg);
    cr_assert_null(strstr(err.msg, "sk-wrong"), "the key leaked into the error: %s", err.msg);
    cr_assert_null(strstr(err.msg, "0a1b2c3d4e5f"));
    cr_assert_null(strstr(err.msg, key));
    tw_remote_result_free(&res);
    tw_remote_free(good);
    tw_remote_free(bad);
    tw_server_stop(s);
}

/* A hostile server: answers 500 quoting the Authorization header it got. */
static enum MHD_Result echo_key(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                const char *version, const char *data, size_t *size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version, (void)data;
    if (!*con_cls) {
        *con_cls = c;
        return MHD_YES;
    }
    if (*size) {
        *size = 0;
        return MHD_YES;
    }
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    char *body = malloc(600);
    snprintf(body, 600, "{\"error\": {\"message\": \"rejected credentials '%s'\"}}", auth ? auth : "");
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret = MHD_queue_response(c, 500, r);
    MHD_destroy_response(r);
    return ret;
}

static tw_buf g_log;
static void capture_log(tw_log_level level, const char *msg, void *user)
{
    (void)level, (void)user;
    tw_buf_puts(&g_log, msg);
    tw_buf_putc(&g_log, '\n');
}

Test(remote, key_redacted_from_errors_and_logs_when_a_server_echoes_it)
{
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                                            NULL, echo_key, NULL, MHD_OPTION_END);
    cr_assert_not_null(d);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1", (unsigned)di->port);
    const char *key = "sk-live-9d8c7b6a5f4e3d2c1b0a";
    setenv("TW_TEST_ECHO_KEY", key, 1);
    tw_remote_params p = tw_remote_default_params();
    p.base_url = url;
    p.model = "m";
    p.api_key_env = "TW_TEST_ECHO_KEY";
    p.max_retries = 1;
    p.backoff_base_s = 0.01;
    tw_remote *r = NULL;
    tw_error err;
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_OK);
    tw_log_set_hook(capture_log, NULL);
    tw_remote_request q = story_req();
    tw_remote_result res;
    cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_ERR_RUNTIME);
    tw_log_set_hook(NULL, NULL);
    cr_assert_eq(res.attempts, 2);
    cr_assert(strstr(err.msg, "rejected credentials 'Bearer ***'"), "the server's message should be quoted: %s", err.msg);
    cr_assert_null(strstr(err.msg, key), "key leaked into the error: %s", err.msg);
    cr_assert(g_log.len > 0 && strstr(g_log.data, "retry"), "the retry is logged");
    cr_assert_null(strstr(g_log.data, key), "key leaked into the log: %s", g_log.data);
    cr_assert_null(strstr(g_log.data, "9d8c7b6a"));
    tw_buf_free(&g_log);
    tw_remote_result_free(&res);
    tw_remote_free(r);
    MHD_stop_daemon(d);
}

Test(remote, requests_per_minute_spacing)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", tw_server_port(s));   /* "/v1" appended */
    tw_remote_params p = tw_remote_default_params();
    p.base_url = url;
    p.model = "stories260K";
    p.requests_per_minute = 600;   /* one start every 0.1 s */
    tw_remote *r = NULL;
    tw_error err;
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_OK);
    tw_remote_request q = story_req();
    q.max_tokens = 1;
    const double t0 = tw_now();
    for (int i = 0; i < 5; i++) {
        tw_remote_result res;
        cr_assert_eq(tw_remote_complete(r, &q, &res, &err), TW_OK, "%s", err.msg);
        tw_remote_result_free(&res);
    }
    const double dt = tw_now() - t0;
    cr_assert(dt >= 0.39, "5 requests at 600/min took %.3f s (< 0.4)", dt);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, batch_runs_requests_concurrently)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_error err;
    /* each request stalls 0.4 s on its connection before queueing: 4 in flight overlap */
    cr_assert_eq(tw_server_set_faults(s, "stall:0.4x4", &err), TW_OK);
    tw_remote *r = client(s, NULL, 30, 0);
    tw_remote_request q[4];
    tw_remote_result res[4];
    tw_status st[4];
    tw_error errs[4];
    for (int i = 0; i < 4; i++) {
        q[i] = story_req();
        q[i].max_tokens = 2;
    }
    const double t0 = tw_now();
    cr_assert_eq(tw_remote_batch(r, true, q, 4, res, st, errs), TW_OK, "%s", errs[0].msg);
    const double dt = tw_now() - t0;
    cr_assert_lt(dt, 1.2, "4 stalled requests took %.3f s: not concurrent (sequential >= 1.6 s)", dt);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(st[i], TW_OK);
        cr_assert_str_eq(res[i].text.data, res[0].text.data);
    }
    for (int i = 0; i < 4; i++) tw_remote_result_free(&res[i]);
    tw_remote_free(r);
    tw_server_stop(s);
}

Test(remote, score_matches_local_and_unsupported_is_reported)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_remote *r = client(s, NULL, 30, 0);
    const char *prompt = "Once upon a time, there was a little";
    const char *choices[] = {" girl", " dog", " banana tree"};
    double rl[3], ll[3];
    tw_remote_result res;
    tw_error err;
    cr_assert_eq(tw_remote_score(r, prompt, choices, 3, rl, &res, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(res.attempts, 3);
    tw_local_params lp = tw_local_default_params();
    lp.model = stories();
    lp.n_threads = 1;
    lp.n_ctx = 1024;
    tw_local *l = NULL;
    cr_assert_eq(tw_local_open(&l, &lp, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_local_score(l, prompt, choices, 3, ll, NULL, &err), TW_OK, "%s", err.msg);
    for (int i = 0; i < 3; i++) {
        cr_assert(rl[i] < 0 && isfinite(rl[i]));
        cr_assert_float_eq(rl[i], ll[i], 1e-3 * fabs(ll[i]) + 1e-3, "choice %d: remote %.6f local %.6f", i, rl[i], ll[i]);
    }
    tw_local_free(l);
    tw_remote_free(r);
    /* a server without /v1/completions (here: a path that 404s) */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/chat-only/v1", tw_server_port(s));
    tw_remote_params p = tw_remote_default_params();
    p.base_url = url;
    p.model = "stories260K";
    p.max_retries = 0;
    cr_assert_eq(tw_remote_open(&r, &p, &err), TW_OK);
    cr_assert_eq(tw_remote_score(r, prompt, choices, 1, rl, NULL, &err), TW_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "score is unsupported"), "%s", err.msg);
    tw_remote_free(r);
    tw_server_stop(s);
}

/* ---- local vs remote agree ----------------------------------------------------------- */

Test(remote, local_and_remote_agree_stories260K)
{
    const char *prompts[] = {"Once upon a time", "The little dog", "Lily wanted to"};
    tw_local_params lp = tw_local_default_params();
    lp.model = stories();
    lp.n_threads = 1;
    lp.n_ctx = 1024;
    tw_local *l = NULL;
    tw_error err;
    cr_assert_eq(tw_local_open(&l, &lp, &err), TW_OK, "%s", err.msg);
    tw_server *s = serve(stories(), NULL, NULL);
    tw_remote *r = client(s, NULL, 60, 0);
    for (int i = 0; i < 3; i++) {
        tw_gen_params gp = tw_gen_default_params();
        gp.max_tokens = 24;
        gp.sample = tw_sample_default_params();
        gp.sample.temperature = 0;
        tw_local_result loc;
        cr_assert_eq(tw_local_generate(l, prompts[i], &gp, &loc, &err), TW_OK, "%s", err.msg);
        tw_remote_request q = tw_remote_request_init();
        q.prompt = prompts[i];
        q.max_tokens = 24;
        q.temperature = 0;
        tw_remote_result rem;
        cr_assert_eq(tw_remote_complete(r, &q, &rem, &err), TW_OK, "%s", err.msg);
        cr_assert_gt(loc.text.len, 0);
        cr_assert_str_eq(rem.text.data, loc.text.data, "prompt %d: remote '%s' local '%s'", i, rem.text.data,
                         loc.text.data);
        cr_assert_eq(rem.completion_tokens, loc.tokens_out);
        cr_assert_eq(rem.prompt_tokens, loc.tokens_in);
        tw_local_result_free(&loc);
        tw_remote_result_free(&rem);
    }
    tw_remote_free(r);
    tw_server_stop(s);
    tw_local_free(l);
}

Test(remote, local_and_remote_agree_smollm2_chat)
{
    const char *model = smollm2();
    tw_local_params lp = tw_local_default_params();
    lp.model = model;
    lp.n_threads = 2;
    lp.n_ctx = 1024;
    tw_local *l = NULL;
    tw_error err;
    cr_assert_eq(tw_local_open(&l, &lp, &err), TW_OK, "%s", err.msg);
    tw_server_params sp = tw_server_default_params();
    sp.model = model;
    sp.port = 0;
    sp.n_threads = 2;
    sp.n_ctx = 1024;
    tw_server *s = NULL;
    cr_assert_eq(tw_server_start(&s, &sp, &err), TW_OK, "%s", err.msg);
    tw_remote *r = client(s, NULL, 120, 0);
    /* the prompt arm's zero-shot layout: system instructions, the example as a user turn */
    tw_chat_msg msgs[] = {{"system", "Classify the sentiment of the review as positive or negative. Answer with one word."},
                          {"user", "The food was cold and the waiter was rude."}};
    tw_buf prompt = {0};
    cr_assert_eq(tw_local_render(l, msgs, 2, true, &prompt, &err), TW_OK, "%s", err.msg);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = 16;
    gp.sample = tw_sample_default_params();
    gp.sample.temperature = 0;
    gp.stops = tw_chat_template_stops(tw_local_chat_template(l));
    for (gp.n_stops = 0; gp.stops && gp.stops[gp.n_stops]; gp.n_stops++) {
    }
    tw_local_result loc;
    cr_assert_eq(tw_local_generate(l, prompt.data, &gp, &loc, &err), TW_OK, "%s", err.msg);
    tw_remote_request q = tw_remote_request_init();
    q.msgs = msgs;
    q.n_msgs = 2;
    q.max_tokens = 16;
    q.temperature = 0;
    tw_remote_result rem;
    cr_assert_eq(tw_remote_chat(r, &q, &rem, &err), TW_OK, "%s", err.msg);
    cr_assert_gt(loc.text.len, 0);
    cr_assert_str_eq(rem.text.data, loc.text.data, "remote '%s' local '%s'", rem.text.data, loc.text.data);
    cr_assert_eq(rem.prompt_tokens, loc.tokens_in);
    tw_remote_result_free(&rem);
    /* streamed through SSE: the same text */
    pieces pc = {0};
    q.on_text = on_piece;
    q.user = &pc;
    cr_assert_eq(tw_remote_chat(r, &q, &rem, &err), TW_OK, "%s", err.msg);
    cr_assert_str_eq(pc.text.data, loc.text.data);
    tw_buf_free(&pc.text);
    tw_remote_result_free(&rem);
    tw_local_result_free(&loc);
    tw_buf_free(&prompt);
    tw_remote_free(r);
    tw_server_stop(s);
    tw_local_free(l);
}

Test(remote, response_format_json_schema_passes_through)
{
    tw_server *s = serve(stories(), "chatml", NULL);
    tw_remote *r = client(s, NULL, 30, 0);
    tw_chat_msg msgs[] = {{"user", "Is it good?"}};
    tw_remote_request c = tw_remote_request_init();
    c.msgs = msgs;
    c.n_msgs = 1;
    c.max_tokens = 40;
    c.temperature = 0;
    c.response_format = "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"a\", \"schema\": {\"type\": \"object\","
                        " \"properties\": {\"ok\": {\"type\": \"boolean\"}}, \"required\": [\"ok\"],"
                        " \"additionalProperties\": false}}}";
    tw_remote_result res;
    tw_error err;
    cr_assert_eq(tw_remote_chat(r, &c, &res, &err), TW_OK, "%s", err.msg);
    json_t *v = json_loads(res.text.data ? res.text.data : "", 0, NULL);
    cr_assert(json_is_object(v) && json_is_boolean(json_object_get(v, "ok")), "not the schema's object: '%s'",
              res.text.data);
    json_decref(v);
    tw_remote_result_free(&res);
    c.response_format = "{not json";
    cr_assert_eq(tw_remote_chat(r, &c, &res, &err), TW_ERR_INVALID);
    cr_assert(strstr(err.msg, "response_format"), "%s", err.msg);
    tw_remote_result_free(&res);
    tw_remote_free(r);
    tw_server_stop(s);
}
