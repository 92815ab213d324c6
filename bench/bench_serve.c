/* bench_serve.c — load test of `tunewise serve`: N clients (default 32), each a thread
 * with its own keep-alive libcurl handle, POSTing chat or text completions back to back
 * for T seconds (default 60), then requests/s, completion tokens/s, latency percentiles,
 * errors by kind, and the server's resident memory (VmRSS of /proc/PID/status) sampled
 * every second, to show it stays flat.
 *
 *   bench_serve [--url http://127.0.0.1:8080/v1 --pid PID]   an external server
 *   bench_serve [--model FILE]                                an in-process server on an
 *       ephemeral port (default ../shared stories260K); RSS is then this process's
 *       (server + clients; the clients' share is constant)
 * Other options: --clients N, --seconds T, --max-tokens N (16), --chat (default: /v1/completions),
 * --stream, --token-env NAME, --queue N (in-process server; default 64), --json.
 * Deliberately not here: correctness (tests/test_serve.c, tests/test_remote.c). */
#include "serve/server.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct client {
    int idx;
    const char *url;
    const char *auth;
    double until;
    int max_tokens;
    bool chat, stream;
    double *lat;
    size_t n, cap;
    long ok, http_err, curl_err, bad_body;
    long tokens;
    long status_hist[6];   /* 1xx..5xx by first digit */
    pthread_t th;
} client;

static size_t wr(char *p, size_t a, size_t b, void *u)
{
    tw_buf_append(u, p, a * b);
    return a * b;
}

static const char *PROMPTS[] = {"Once upon a time", "The little dog", "Lily wanted to", "One day, a boy named Tim",
                                "The sun was"};

static long completion_tokens(const tw_buf *b, bool stream)
{
    const char *s = b->data ? b->data : "";
    if (stream) {   /* usage chunk: "completion_tokens":N */
        const char *u = strstr(s, "\"completion_tokens\":");
        return u ? strtol(u + 20, NULL, 10) : -1;
    }
    json_t *j = json_loadb(s, b->len, 0, NULL);
    long n = j ? (long)json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens")) : -1;
    if (!json_is_object(json_object_get(j, "usage"))) n = -1;
    json_decref(j);
    return n;
}

static void *client_main(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->auth) hd = curl_slist_append(hd, c->auth);
    char url[512];
    snprintf(url, sizeof url, "%s%s", c->url, c->chat ? "/chat/completions" : "/completions");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    tw_buf body = {0}, resp = {0};
    for (long seq = 0; tw_now() < c->until; seq++) {
        const char *p = PROMPTS[(c->idx + seq) % 5];
        tw_buf_clear(&body);
        const char *stream = c->stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "";
        if (c->chat)
            tw_buf_printf(&body, "{\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"max_tokens\":%d,"
                                 "\"temperature\":0.8,\"seed\":%ld%s}", p, c->max_tokens, seq * 131 + c->idx, stream);
        else
            tw_buf_printf(&body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0.8,\"seed\":%ld%s}", p,
                          c->max_tokens, seq * 131 + c->idx, stream);
        tw_buf_clear(&resp);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
        const double t0 = tw_now();
        CURLcode cc = curl_easy_perform(h);
        const double dt = tw_now() - t0;
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (cc != CURLE_OK) {
            c->curl_err++;
            usleep(10000);   /* do not spin against a server that is gone */
            continue;
        }
        if (code >= 100 && code < 600) c->status_hist[code / 100]++;
        if (code != 200) {
            c->http_err++;
            continue;
        }
        long nt = completion_tokens(&resp, c->stream);
        if (nt < 0) {
            c->bad_body++;
            continue;
        }
        c->ok++;
        c->tokens += nt;
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 256;
            c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
        }
        c->lat[c->n++] = dt;
    }
    tw_buf_free(&body);
    tw_buf_free(&resp);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return NULL;
}

static long rss_kb(long pid)
{
    char path[64];
    if (pid > 0) snprintf(path, sizeof path, "/proc/%ld/status", pid);
    else snprintf(path, sizeof path, "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static double pct(const double *v, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}
static bool flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return true;
    return false;
}

int main(int argc, char **argv)
{
    const int n_clients = atoi(arg(argc, argv, "--clients", "32"));
    const double seconds = atof(arg(argc, argv, "--seconds", "60"));
    const int max_tokens = atoi(arg(argc, argv, "--max-tokens", "16"));
    const bool chat = flag(argc, argv, "--chat"), stream = flag(argc, argv, "--stream"), js = flag(argc, argv, "--json");
    const char *url = arg(argc, argv, "--url", NULL);
    long pid = atol(arg(argc, argv, "--pid", "0"));
    if (n_clients < 1 || n_clients > 1024 || seconds <= 0) {
        fprintf(stderr, "bench_serve: --clients 1..1024, --seconds > 0\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    tw_server *srv = NULL;
    char urlbuf[128], modelbuf[512];
    if (!url) {
        const char *sh = getenv("TW_SHARED") ? getenv("TW_SHARED") : "../shared";
        snprintf(modelbuf, sizeof modelbuf, "%s/models/stories260K/stories260K.gguf", sh);
        tw_server_params p = tw_server_default_params();
        p.model = arg(argc, argv, "--model", modelbuf);
        p.port = 0;
        p.chat_template = chat ? "chatml" : NULL;
        p.queue = (size_t)atoi(arg(argc, argv, "--queue", "64"));
        p.n_ctx = 1024;
        tw_error err;
        if (tw_server_start(&srv, &p, &err)) {
            fprintf(stderr, "bench_serve: %s\n", err.msg);
            return 3;
        }
        snprintf(urlbuf, sizeof urlbuf, "http://127.0.0.1:%d/v1", tw_server_port(srv));
        url = urlbuf;
        pid = 0;
        if (!js) fprintf(stderr, "bench_serve: in-process server %s on %s\n", p.model, url);
    }
    char auth[1024];
    const char *auth_p = NULL;
    const char *tenv = arg(argc, argv, "--token-env", NULL);
    if (tenv && getenv(tenv)) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", getenv(tenv));
        auth_p = auth;
    }
    client *cl = calloc((size_t)n_clients, sizeof *cl);
    const double t0 = tw_now(), until = t0 + seconds;
    for (int i = 0; i < n_clients; i++) {
        cl[i] = (client){.idx = i, .url = url, .auth = auth_p, .until = until, .max_tokens = max_tokens, .chat = chat,
                         .stream = stream};
        pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
    }
    /* RSS every second */
    size_t nr = 0, rcap = 64;
    long *rss = malloc(rcap * sizeof *rss);
    double *rt = malloc(rcap * sizeof *rt);
    while (tw_now() < until) {
        if (nr == rcap) {
            rcap *= 2;
            rss = realloc(rss, rcap * sizeof *rss);
            rt = realloc(rt, rcap * sizeof *rt);
        }
        rt[nr] = tw_now() - t0;
        rss[nr++] = rss_kb(pid);
        double left = until - tw_now();
        usleep((useconds_t)((left < 1 ? (left > 0 ? left : 0) : 1) * 1e6));
    }
    for (int i = 0; i < n_clients; i++) pthread_join(cl[i].th, NULL);
    const double wall = tw_now() - t0;
    long ok = 0, http_err = 0, curl_err = 0, bad = 0, tokens = 0, hist[6] = {0};
    size_t nl = 0;
    for (int i = 0; i < n_clients; i++) {
        ok += cl[i].ok;
        http_err += cl[i].http_err;
        curl_err += cl[i].curl_err;
        bad += cl[i].bad_body;
        tokens += cl[i].tokens;
        nl += cl[i].n;
        for (int k = 0; k < 6; k++) hist[k] += cl[i].status_hist[k];
    }
    double *lat = malloc((nl ? nl : 1) * sizeof *lat);
    size_t k = 0;
    for (int i = 0; i < n_clients; i++) {
        memcpy(lat + k, cl[i].lat, cl[i].n * sizeof *lat);
        k += cl[i].n;
        free(cl[i].lat);
    }
    qsort(lat, nl, sizeof *lat, tw_cmp_double);
    long rmin = -1, rmax = -1;
    for (size_t i = 0; i < nr; i++) {
        if (rss[i] < 0) continue;
        if (rmin < 0 || rss[i] < rmin) rmin = rss[i];
        if (rss[i] > rmax) rmax = rss[i];
    }
    /* flatness: the last sample against the one at 10% of the run (after warm-up) */
    long rwarm = nr ? rss[nr / 10] : -1, rlast = nr ? rss[nr - 1] : -1;
    json_t *samples = json_array();
    for (size_t i = 0; i < nr; i++) json_array_append_new(samples, json_pack("[f,I]", rt[i], (json_int_t)rss[i]));
    json_t *rep = json_pack(
        "{s:s,s:i,s:f,s:s,s:b,s:i,s:I,s:I,s:I,s:I,s:f,s:f,s:{s:f,s:f,s:f,s:f,s:f},s:{s:I,s:I,s:I,s:I,s:I},s:o}", "url",
        url, "clients", n_clients, "seconds", wall, "endpoint", chat ? "chat" : "completions", "stream", stream,
        "max_tokens", max_tokens, "ok", (json_int_t)ok, "http_errors", (json_int_t)http_err, "transport_errors",
        (json_int_t)curl_err, "bad_bodies", (json_int_t)bad, "requests_per_s", (double)ok / wall, "tokens_per_s",
        (double)tokens / wall, "latency_s", "p50", pct(lat, nl, 0.5), "p90", pct(lat, nl, 0.9), "p99", pct(lat, nl, 0.99),
        "max", nl ? lat[nl - 1] : 0.0, "mean", nl ? 0 : 0.0, "rss_kb", "min", (json_int_t)rmin, "max",
        (json_int_t)rmax, "after_warmup", (json_int_t)rwarm, "last", (json_int_t)rlast, "n_503",
        (json_int_t)hist[5], "rss_samples", samples);
    double mean = 0;
    for (size_t i = 0; i < nl; i++) mean += lat[i];
    if (nl) mean /= (double)nl;
    json_object_set_new(json_object_get(rep, "latency_s"), "mean", json_real(mean));
    if (js) {
        char *s = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        puts(s);
        free(s);
    } else {
        printf("bench_serve: %d clients x %.1f s against %s (%s%s, max_tokens %d)\n", n_clients, wall, url,
               chat ? "chat" : "completions", stream ? ", stream" : "", max_tokens);
        printf("  ok %ld  http errors %ld (5xx %ld)  transport errors %ld  bad bodies %ld\n", ok, http_err, hist[5],
               curl_err, bad);
        printf("  %.1f requests/s, %.1f completion tokens/s\n", (double)ok / wall, (double)tokens / wall);
        printf("  latency s: p50 %.4f  p90 %.4f  p99 %.4f  max %.4f  mean %.4f\n", pct(lat, nl, 0.5), pct(lat, nl, 0.9),
               pct(lat, nl, 0.99), nl ? lat[nl - 1] : 0.0, mean);
        printf("  %s RSS KiB: min %ld  max %ld  after warm-up %ld  last %ld  (%zu samples)\n",
               pid ? "server" : "process", rmin, rmax, rwarm, rlast, nr);
        printf("  RSS samples (s: KiB):");
        for (size_t i = 0; i < nr; i++) printf(" %.0f:%ld", rt[i], rss[i]);
        printf("\n");
    }
    json_decref(rep);
    free(lat);
    free(rss);
    free(rt);
    free(cl);
    tw_server_stop(srv);
    curl_global_cleanup();
    return http_err || curl_err || bad ? 1 : 0;
}
