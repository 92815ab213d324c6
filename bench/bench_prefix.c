/* bench_prefix.c — what the prefix cache of the local backend (src/backend/local.c) saves
 * on a k-shot prompt: Banking77, the task's instructions + the 77 labels + k demonstrations
 * (one per label, the first train row of each of the first k labels) as chat turns in the
 * model's own template; each test message is a final user turn. Per example it times
 *   reuse:     the shared prefix prefilled once, forked per example (tw_local_set_prefix);
 *   recompute: the whole prompt prefilled for every example;
 * for free generation (up to --gen tokens, greedy, stop at the end of turn) and for label
 * scoring (log-likelihood of each of the 77 labels + end-of-turn). Checks that both modes
 * give the same answers. Run from the repository root:
 *
 *   build/bench/bench_prefix [--model PATH] [--shared ../shared] [--k 8] [--n 10] [--gen 8] [--threads 2]
 *
 * Prints mean ms per example for each mode, the speed-up, prompt sizes. Not a test. */
#include "backend/local.h"
#include "task/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, const tw_error *err)
{
    fprintf(stderr, "bench_prefix: %s: %s\n", what, err ? err->msg : "");
    exit(3);
}

int main(int argc, char **argv)
{
    const char *shared = "../shared", *model = NULL;
    int k = 8, n = 10, gen = 8, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--shared")) shared = argv[i + 1];
        else if (!strcmp(argv[i], "--k")) k = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--n")) n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gen")) gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [--model PATH] [--shared DIR] [--k K] [--n N] [--gen T] [--threads T]\n", argv[0]);
            return 2;
        }
    }
    static char defmodel[1024];
    if (!model) {
        snprintf(defmodel, sizeof defmodel, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 getenv("HOME") ? getenv("HOME") : ".");
        model = defmodel;
    }
    tw_error err;
    char path[1024];
    tw_dataset train = {0}, test = {0};
    tw_reader_params rp = tw_reader_default_params();
    snprintf(path, sizeof path, "%s/data/banking77/train.jsonl", shared);
    if (tw_dataset_load(&train, path, &rp, &err)) die("train", &err);
    snprintf(path, sizeof path, "%s/data/banking77/test.jsonl", shared);
    if (tw_dataset_load(&test, path, &rp, &err)) die("test", &err);
    char **labels;
    size_t nl;
    if (tw_dataset_labels(&train, &labels, &nl, &err)) die("labels", &err);
    if (k > (int)nl) k = (int)nl;

    tw_buf sys = {0};
    tw_buf_puts(&sys, "You triage messages sent to the support team of a retail bank. Answer with the single intent "
                      "label that fits the message best, exactly as written in this list:\n");
    for (size_t i = 0; i < nl; i++) tw_buf_printf(&sys, "%s\n", labels[i]);
    tw_buf_puts(&sys, "Answer with the label only.");
    tw_chat_msg *msgs = calloc((size_t)(2 * k + 2), sizeof *msgs);
    int nm = 0;
    msgs[nm++] = (tw_chat_msg){"system", sys.data};
    for (int d = 0; d < k; d++)
        for (size_t r = 0; r < train.n; r++)
            if (!strcmp(train.rows[r].output, labels[d])) {
                msgs[nm++] = (tw_chat_msg){"user", train.rows[r].input};
                msgs[nm++] = (tw_chat_msg){"assistant", train.rows[r].output};
                break;
            }

    tw_local_params lp = tw_local_default_params();
    lp.model = model;
    lp.n_threads = threads;
    lp.n_ctx = 4096;
    tw_local *reuse, *fresh;
    if (tw_local_open(&reuse, &lp, &err) || tw_local_open(&fresh, &lp, &err)) die(model, &err);
    tw_buf prefix = {0};
    if (tw_local_render(reuse, msgs, (size_t)nm, false, &prefix, &err)) die("render", &err);
    const char *eot = tw_chat_template_stops(tw_local_chat_template(reuse))[0];
    char **choices = calloc(nl, sizeof *choices);
    for (size_t i = 0; i < nl; i++) {
        choices[i] = malloc(strlen(labels[i]) + strlen(eot) + 1);
        sprintf(choices[i], "%s%s", labels[i], eot);
    }
    double t0 = tw_now();
    if (tw_local_set_prefix(reuse, prefix.data, &err)) die("prefix", &err);
    const double t_prefix = tw_now() - t0;

    double gen_ms[2] = {0}, score_ms[2] = {0};
    int same_gen = 0, same_score = 0, tokens_in = 0;
    double *lp0 = malloc(nl * sizeof *lp0), *lp1 = malloc(nl * sizeof *lp1);
    tw_gen_params gp = tw_gen_default_params();
    gp.max_tokens = gen;
    const char *stops[] = {eot};
    gp.stops = stops;
    gp.n_stops = 1;
    for (int e = 0; e < n && (size_t)e < test.n; e++) {
        const tw_example *ex = &test.rows[(size_t)e * (test.n / (size_t)n)];
        msgs[nm] = (tw_chat_msg){"user", ex->input};
        tw_buf full = {0};
        if (tw_local_render(reuse, msgs, (size_t)nm + 1, true, &full, &err)) die("render", &err);
        const char *suffix = full.data + prefix.len;
        tw_local_result a, b;
        if (tw_local_generate(reuse, suffix, &gp, &a, &err)) die("generate", &err);
        if (tw_local_generate(fresh, full.data, &gp, &b, &err)) die("generate", &err);
        gen_ms[0] += a.latency_ms;
        gen_ms[1] += b.latency_ms;
        same_gen += !strcmp(a.text.data ? a.text.data : "", b.text.data ? b.text.data : "");
        tokens_in += a.tokens_in;
        tw_local_result_free(&a);
        tw_local_result_free(&b);
        if (tw_local_score(reuse, suffix, (const char *const *)choices, nl, lp0, &a, &err)) die("score", &err);
        if (tw_local_score(fresh, full.data, (const char *const *)choices, nl, lp1, &b, &err)) die("score", &err);
        score_ms[0] += a.latency_ms;
        score_ms[1] += b.latency_ms;
        size_t i0 = 0, i1 = 0;
        for (size_t i = 1; i < nl; i++) {
            if (lp0[i] > lp0[i0]) i0 = i;
            if (lp1[i] > lp1[i1]) i1 = i;
        }
        same_score += i0 == i1;
        tw_buf_free(&full);
    }
    tw_local_stats st = tw_local_get_stats(reuse);
    printf("model %s, k = %d, threads %d, %d examples\n", model, k, threads, n);
    printf("prompt: %d tokens on average, prefix %zu tokens (prefilled once in %.0f ms); prefix hits %lld / %lld\n",
           tokens_in / n, (size_t)(st.tokens_reused / (st.prefix_hits ? st.prefix_hits : 1)), t_prefix * 1e3,
           (long long)st.prefix_hits, (long long)st.requests);
    printf("generate (<= %d tokens): reuse %.1f ms/example, recompute %.1f ms/example: %.1fx; same text %d/%d\n", gen,
           gen_ms[0] / n, gen_ms[1] / n, gen_ms[1] / gen_ms[0], same_gen, n);
    printf("score (%zu labels):      reuse %.1f ms/example, recompute %.1f ms/example: %.1fx; same arg max %d/%d\n", nl,
           score_ms[0] / n, score_ms[1] / n, score_ms[1] / score_ms[0], same_score, n);
    return 0;
}
