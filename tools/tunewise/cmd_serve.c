/* cmd_serve.c — `tunewise serve -m MODEL`: the OpenAI-compatible HTTP server
 * (src/serve/server.h) in the foreground until SIGTERM / SIGINT, which stop it cleanly:
 * no new connections, accepted requests finish, exit 0.
 * Deliberately not here: the server itself (src/serve/), daemonizing (use a service
 * manager), TLS (use a reverse proxy). */
#include "cli.h"
#include "serve/server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt OPTS[] = {
    {"model", 'm', CLI_STR, "MODEL", "GGUF file or Hugging Face folder", NULL},
    {"model-name", 0, CLI_STR, "NAME", "the model's id in the API (default: file name without .gguf)", NULL},
    {"chat-template", 0, CLI_STR, "FILE|NAME", "chat template override: Jinja file, tokenizer_config.json or a built-in", NULL},
    {"lora", 0, CLI_LIST, "NAME=PATH", "LoRA adapter (GGUF file or PEFT folder), listed as MODEL+NAME", NULL},
    {"host", 0, CLI_STR, "ADDR", "numeric address to bind (0.0.0.0 exposes the server to the network)", "127.0.0.1"},
    {"port", 0, CLI_INT, "N", "TCP port (0: any free port; see --port-file)", "8080"},
    {"port-file", 0, CLI_STR, "FILE", "write the bound port to FILE once listening", NULL},
    {"token-env", 0, CLI_STR, "NAME", "require 'Authorization: Bearer <value of env var NAME>' on /v1/", NULL},
    {"max-body", 0, CLI_INT, "BYTES", "request body limit", "1048576"},
    {"max-tokens", 0, CLI_INT, "N", "largest max_tokens a request may ask for (also the chat default)", "2048"},
    {"queue", 0, CLI_INT, "N", "requests waiting beyond the running one; more get 503 + Retry-After", "64"},
    {"max-connections", 0, CLI_INT, "N", "simultaneous connections", "256"},
    {"ctx", 0, CLI_INT, "N", "KV cache size in tokens (prompt + answer)", "4096"},
    {"threads", 't', CLI_INT, "N", "engine threads (0: all cores)", "0"},
    {"drain-timeout", 0, CLI_NUM, "S", "on SIGTERM, wait at most S seconds for accepted requests", "600"},
    {"fault-inject", 0, CLI_STR, "SPEC", "TESTS ONLY: scripted faults, e.g. '429:1x2,500,stall:3' (docs/serve.md)", NULL},
    {0},
};

static int run(cli_args *a)
{
    if (!cli_given(a, "model")) return cli_usage_error(a->cmd, "-m MODEL is required");
    tw_server_params p = tw_server_default_params();
    p.model = cli_str(a, "model");
    p.model_name = cli_str(a, "model-name");
    p.chat_template = cli_str(a, "chat-template");
    const char *loras[CLI_MAX_LIST];
    p.n_loras = cli_list(a, "lora", loras, CLI_MAX_LIST);
    p.loras = loras;
    p.host = cli_str(a, "host");
    long port = cli_int(a, "port");
    if (port < 0 || port > 65535) return cli_usage_error(a->cmd, "--port %ld is out of range 0..65535", port);
    p.port = (int)port;
    if (cli_given(a, "token-env")) {
        const char *name = cli_str(a, "token-env");
        const char *v = getenv(name);
        if (!v || !*v) return cli_usage_error(a->cmd, "--token-env: the environment variable %s is not set or empty", name);
        p.token = v;
    }
    long mb = cli_int(a, "max-body"), mt = cli_int(a, "max-tokens"), q = cli_int(a, "queue"),
         mc = cli_int(a, "max-connections"), ctx = cli_int(a, "ctx");
    if (mb < 64) return cli_usage_error(a->cmd, "--max-body must be at least 64");
    if (mt < 1) return cli_usage_error(a->cmd, "--max-tokens must be at least 1");
    if (q < 1) return cli_usage_error(a->cmd, "--queue must be at least 1");
    if (mc < 1) return cli_usage_error(a->cmd, "--max-connections must be at least 1");
    if (ctx < 16) return cli_usage_error(a->cmd, "--ctx must be at least 16");
    p.max_body = (size_t)mb;
    p.max_tokens = (int32_t)mt;
    p.queue = (size_t)q;
    p.max_connections = (unsigned)mc;
    p.n_ctx = (int32_t)ctx;
    p.n_threads = (int)cli_int(a, "threads");
    p.drain_timeout_s = cli_num(a, "drain-timeout");
    p.faults = cli_str(a, "fault-inject");

    /* SIGTERM / SIGINT are taken by sigwait below: block them before any thread starts so
     * every server thread inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    tw_error err;
    tw_error_clear(&err);
    tw_server *s = NULL;
    if (tw_server_start(&s, &p, &err)) return cli_fail(&err);
    if (cli_given(a, "port-file")) {
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%d\n", tw_server_port(s));
        if (tw_file_write_atomic(cli_str(a, "port-file"), buf, (size_t)n, &err)) {
            tw_server_stop(s);
            return cli_fail(&err);
        }
    }
    const bool loopback = strcmp(p.host, "127.0.0.1") == 0 || strcmp(p.host, "::1") == 0;
    if (!a->quiet) {
        fprintf(stderr, "tunewise serve: model %s on http://%s%s%s:%d/v1 (queue %zu, max_tokens %d%s)\n",
                tw_server_model_name(s), strchr(p.host, ':') ? "[" : "", p.host, strchr(p.host, ':') ? "]" : "",
                tw_server_port(s), p.queue, (int)p.max_tokens, p.token ? ", bearer token required" : "");
        if (p.faults) fprintf(stderr, "tunewise serve: FAULT INJECTION ON (test mode): %s\n", p.faults);
    }
    if (!loopback && !p.token)
        fprintf(stderr, "tunewise serve: warning: listening on %s without --token-env: anyone who can reach it can use it\n",
                p.host);
    int sig = 0;
    sigwait(&set, &sig);
    if (!a->quiet) fprintf(stderr, "tunewise serve: %s: finishing accepted requests, then exiting\n",
                           sig == SIGTERM ? "SIGTERM" : "SIGINT");
    tw_server_drain(s);
    tw_server_stats st = tw_server_get_stats(s);
    tw_server_stop(s);
    if (!a->quiet)
        fprintf(stderr, "tunewise serve: stopped after %lld requests (%lld completions, %lld rejected: queue full)\n",
                (long long)st.requests, (long long)st.completions, (long long)st.rejected_full);
    return EXIT_OK;
}

const cli_cmd cmd_serve = {
    .name = "serve",
    .summary = "serve a model over an OpenAI-compatible HTTP API",
    .usage = "-m MODEL [--lora NAME=PATH ...] [--port 8080] [--token-env NAME] [options]",
    .details = "Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions (stream: true as SSE),\n"
               "POST /v1/completions (echo + logprobs: the prompt's token log-probabilities).\n"
               "Binds 127.0.0.1 unless --host says otherwise. SIGTERM / SIGINT: accepted requests\n"
               "finish, then exit 0. Adapters are listed as MODEL+NAME but cannot be applied per\n"
               "request yet (501). Details: docs/serve.md.",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run,
};
