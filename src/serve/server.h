/* server.h — `tunewise serve`: an OpenAI-compatible HTTP server (libmicrohttpd) over one
 * in-process model (backend/local.h).
 *
 * Endpoints (docs/serve.md): GET /health, GET /v1/models, POST /v1/chat/completions
 * (stream: true answers Server-Sent Events chunks ending with "data: [DONE]"), POST
 * /v1/completions (echo + logprobs returns the prompt's token log-probabilities, which
 * the remote backend's `score` uses). Errors are OpenAI-style JSON
 * {"error": {"message", "type", "code"}}.
 *
 * Design: libmicrohttpd runs one thread per connection; a connection thread parses and
 * validates its request, then puts a job into a bounded queue (full: 503 with
 * Retry-After) and waits for it (or, when streaming, hands MHD a reader that blocks on
 * the job's pending SSE bytes). One worker thread owns the tw_local (one request at a
 * time per model: local.h) and runs the jobs in order. Shutdown (tw_server_stop): the
 * listening socket closes, every accepted request — running or queued — finishes, then
 * the threads are joined.
 *
 * Model names: the base model's name (params.model_name, default the file's basename
 * without extension) and "base+adapter" for each LoRA adapter given. Adapters are loaded
 * and checked against the model at start, listed by /v1/models, but the engine cannot
 * apply them per request yet: such requests get 501 (docs/serve.md).
 *
 * Test mode (params.faults / tw_server_set_faults, `--fault-inject`): a script of faults
 * consumed one per completion request, so clients' retry logic is tested over real HTTP.
 * Spec: comma-separated items, each optionally followed by "xN" (repeat N times):
 *   429[:S]     answer 429 with Retry-After: S seconds (default 1)
 *   429:dS      answer 429 with Retry-After as an HTTP-date S seconds from now
 *   500         answer 500;   503  answer 503 (no Retry-After)
 *   stall:S     the connection sleeps S seconds (fractional), then the request is
 *               handled normally (clients' timeouts)
 *   busy:S      the request is queued normally; the worker sleeps S seconds before
 *               running it, holding the model (queue full, shutdown drain)
 * e.g. "429:1x2,500,stall:0.5".
 *
 * Deliberately not here: the engine, HTTPS (put a reverse proxy in front), batching of
 * several requests into one forward pass, per-request LoRA (see above). */
#ifndef TW_SERVE_SERVER_H
#define TW_SERVE_SERVER_H

#include "tunewise.h"
#include "base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tw_server_params {
    const char *model;            /* GGUF file or HF folder (required) */
    const char *model_name;       /* NULL: basename of model without extension */
    const char *chat_template;    /* NULL: the model's own; else a file or built-in name */
    const char *const *loras;     /* "name=path" (GGUF adapter file or PEFT folder) */
    size_t n_loras;
    const char *host;             /* numeric IPv4 / IPv6 address; default "127.0.0.1" */
    int port;                     /* 0: an ephemeral port (tw_server_port tells which) */
    const char *token;            /* bearer token required on /v1/ (NULL: none). The value,
                                     not an env var name: the CLI reads the env var */
    size_t max_body;              /* request body limit in bytes; default 1 MiB */
    int32_t max_tokens;           /* limit on a request's max_tokens; default 2048 */
    size_t queue;                 /* jobs waiting beyond the running one; default 64 */
    unsigned max_connections;     /* default 256 */
    int n_threads;                /* engine threads; <= 0: all */
    int32_t n_ctx;                /* KV cells; default 4096 */
    double drain_timeout_s;       /* tw_server_stop waits this long for requests; default 600 */
    const char *faults;           /* test mode fault script (see above); NULL: none */
} tw_server_params;

tw_server_params tw_server_default_params(void);

typedef struct tw_server tw_server;

/* Load the model (and adapters), bind, start serving. */
tw_status tw_server_start(tw_server **out, const tw_server_params *p, tw_error *err);
/* The bound port (useful with port 0). */
int tw_server_port(const tw_server *s);
/* The base model's name as /v1/models lists it. Borrowed. */
const char *tw_server_model_name(const tw_server *s);
/* Replace the fault script (test mode). TW_ERR_INVALID for a bad spec. */
tw_status tw_server_set_faults(tw_server *s, const char *spec, tw_error *err);
/* Stop accepting connections (new ones are refused) and wait until the accepted
 * requests have finished (at most drain_timeout_s). The server stays allocated. */
void tw_server_drain(tw_server *s);
/* tw_server_drain, then stop the threads and free everything. NULL: no-op. */
void tw_server_stop(tw_server *s);

typedef struct tw_server_stats {
    int64_t requests;          /* HTTP requests answered */
    int64_t completions;       /* jobs the worker ran */
    int64_t rejected_full;     /* 503: queue full */
    int64_t faults;            /* faults injected */
    int64_t prompt_tokens, completion_tokens;
    int32_t queued;            /* jobs waiting now */
    int32_t active;            /* requests being handled now */
} tw_server_stats;
tw_server_stats tw_server_get_stats(tw_server *s);

#endif /* TW_SERVE_SERVER_H */
