/* remote.h — the remote backend: a client (libcurl) of OpenAI-compatible HTTP servers
 * (OpenAI, vLLM, llama-server, Ollama, `tunewise serve`): chat completions, text
 * completions, and `score` through /v1/completions with echo + logprobs.
 *
 *  - The API key is read from an environment variable the caller names; it goes only
 *    into the Authorization header. It is never put in errors, logs or results (any
 *    occurrence of it in a server's answer quoted by an error is replaced by "***").
 *  - Thread-safe: several threads may call one tw_remote; at most max_in_flight
 *    requests are on the wire at once (others wait), and request starts are spaced to
 *    respect requests_per_minute. tw_remote_chat_batch runs n requests on
 *    min(n, max_in_flight) threads.
 *  - Retries (docs/remote.md): on 408, 429, 500, 502, 503, 504 and transport failures
 *    (timeouts, refused / reset connections), up to max_retries more attempts. The delay
 *    is the server's Retry-After (delay-seconds or HTTP-date, RFC 9110 10.2.3) when given
 *    (capped at retry_after_max_s), else exponential backoff with "equal jitter":
 *    d = min(backoff_max_s, backoff_base_s * 2^k) * (0.5 + 0.5 * U[0,1)). A streamed
 *    request is not retried once text has been handed to on_text.
 *  - Usage: prompt / completion tokens from the response's `usage`, latency per call,
 *    attempts; totals in tw_remote_get_stats.
 *
 * Deliberately not here: building prompts (arms/prompt.c), result caching (eval/cache.c:
 * use tw_remote_model_id in keys — it holds no secret), HTTP proxies beyond libcurl's own
 * environment handling, tool calls, images. */
#ifndef TW_BACKEND_REMOTE_H
#define TW_BACKEND_REMOTE_H

#include "tunewise.h"
#include "base/base.h"
#include "model/chat.h"
#include "task/task.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tw_remote_params {
    const char *base_url;        /* "http://127.0.0.1:8080/v1" (the part before /chat/completions);
                                    a URL without "/v1" at its end gets it appended */
    const char *model;           /* the `model` field sent */
    const char *api_key_env;     /* name of the env var holding the key; NULL: no key */
    double timeout_s;            /* per attempt, whole request; default 120 */
    double connect_timeout_s;    /* default 10 */
    int max_in_flight;           /* default 4 */
    int max_retries;             /* extra attempts after the first; default 5 */
    double backoff_base_s;       /* default 0.5 */
    double backoff_max_s;        /* default 30 */
    double retry_after_max_s;    /* longest Retry-After honored; default 120 */
    double requests_per_minute;  /* 0: no limit */
    uint64_t seed;               /* jitter RNG */
} tw_remote_params;

tw_remote_params tw_remote_default_params(void);

typedef struct tw_remote tw_remote;

/* TW_ERR_INVALID: no base URL / model, or api_key_env names a variable that is unset
 * or empty (the message names the variable, never a value). */
tw_status tw_remote_open(tw_remote **out, const tw_remote_params *p, tw_error *err);
void tw_remote_free(tw_remote *r);

/* "remote:<base_url>#<model>": the identity for cache keys (no key in it). Borrowed. */
const char *tw_remote_model_id(const tw_remote *r);

typedef struct tw_remote_request {
    const tw_chat_msg *msgs;     /* chat: the messages */
    size_t n_msgs;
    const char *prompt;          /* completions: the prompt text */
    int32_t max_tokens;          /* < 0: not sent (server default) */
    double temperature;          /* < 0: not sent */
    double top_p;                /* <= 0: not sent */
    const char *const *stops;
    size_t n_stops;
    int64_t seed;                /* < 0: not sent */
    double timeout_s;            /* > 0: this request's per-attempt timeout instead of params.timeout_s */
    const char *response_format; /* chat: JSON text of the response_format object, e.g.
                                    {"type":"json_schema","json_schema":{"name":"x","schema":{...}}}; NULL: none */
    /* Streaming (chat and completions): sent with stream: true and
     * stream_options.include_usage; each content delta is passed here as it arrives.
     * Return false to abort (the call then fails with TW_ERR_RUNTIME). */
    bool (*on_text)(void *user, const char *text, size_t len);
    void *user;
} tw_remote_request;

/* A request with nothing set (max_tokens / temperature / top_p / seed: not sent). */
tw_remote_request tw_remote_request_init(void);

typedef struct tw_remote_result {
    tw_buf text;                 /* the answer (owned) */
    int64_t prompt_tokens;       /* from usage; -1 when the server sent none */
    int64_t completion_tokens;
    double latency_ms;           /* the whole call, retries and waits included */
    double waited_s;             /* of that, seconds slept before retries */
    int attempts;                /* HTTP attempts made (1 = no retry) */
    int http_status;             /* of the last attempt; 0 when no HTTP answer */
    char finish_reason[32];
} tw_remote_result;
void tw_remote_result_free(tw_remote_result *res);

/* POST {base}/chat/completions. Errors: TW_ERR_INVALID for a 4xx other than 408/429
 * (the server's message quoted), TW_ERR_UNSUPPORTED for 404/501, TW_ERR_RUNTIME when
 * retries are exhausted or the answer is malformed. res is filled even on error
 * (attempts, http_status, latency); free it in every case. */
tw_status tw_remote_chat(tw_remote *r, const tw_remote_request *req, tw_remote_result *res, tw_error *err);
/* POST {base}/completions with req->prompt. */
tw_status tw_remote_complete(tw_remote *r, const tw_remote_request *req, tw_remote_result *res, tw_error *err);

/* n chat requests (or completions when completions is true) concurrently, at most
 * max_in_flight at a time. res[i] / st[i] / errs[i] per request (errs may be NULL).
 * Returns the first failure's status (TW_OK when all succeeded). */
tw_status tw_remote_batch(tw_remote *r, bool completions, const tw_remote_request *reqs, size_t n,
                          tw_remote_result *res, tw_status *st, tw_error *errs);

/* logprobs[c] = log p(choices[c] | prompt): POST /completions with prompt + choice,
 * echo: true, logprobs: 0, max_tokens: 0, summing token_logprobs of the tokens starting
 * at or after the end of prompt (text_offset). A token straddling the boundary (the
 * server merged prompt and choice text) counts with the choice. Choices run
 * concurrently. TW_ERR_UNSUPPORTED naming the server when it does not return prompt
 * logprobs (e.g. a chat-only API). res (may be NULL): summed usage, total latency. */
tw_status tw_remote_score(tw_remote *r, const char *prompt, const char *const *choices, size_t n_choices,
                          double *logprobs, tw_remote_result *res, tw_error *err);

typedef struct tw_remote_stats {
    int64_t calls;               /* tw_remote_chat / complete calls (score: one per choice) */
    int64_t attempts;            /* HTTP attempts */
    int64_t retries;             /* attempts after a retryable failure */
    int64_t failures;            /* calls that returned an error */
    int64_t prompt_tokens, completion_tokens;
    double latency_ms;           /* summed over calls */
} tw_remote_stats;
tw_remote_stats tw_remote_get_stats(tw_remote *r);

/* USD for the tokens at price p (per million input / output tokens). */
double tw_remote_cost(const tw_price *p, int64_t prompt_tokens, int64_t completion_tokens);

/* Parse a Retry-After value: delay-seconds ("120") or an HTTP-date (IMF-fixdate,
 * "Sun, 06 Nov 1994 08:49:37 GMT") relative to now (Unix seconds). false when it is
 * neither; a date in the past gives 0. */
bool tw_remote_parse_retry_after(const char *value, double now, double *seconds);

#endif /* TW_BACKEND_REMOTE_H */
