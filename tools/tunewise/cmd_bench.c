/* cmd_bench.c — `tunewise bench -m MODEL`: engine throughput in the manner of llama.cpp's
 * llama-bench: prefill of -p tokens in one forward call (pp) and decode of -n tokens one
 * at a time from an empty cache (tg), each repeated -r times after one warm-up run,
 * reported as mean ± standard deviation of tokens/s, plus peak RSS. Tokens are a fixed
 * pseudo-random sequence (the content does not change the cost of a dense model).
 * Deliberately not here: the engine (src/model/), accuracy (tests/test_llama.c). */
#include "cli.h"
#include "model/kernels.h"
#include "model/llama.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const cli_opt OPTS[] = {
    {"model", 'm', CLI_STR, "MODEL", "GGUF file or Hugging Face folder", NULL},
    {"n-prompt", 'p', CLI_INT, "N", "prompt tokens prefilled in one call (0: skip)", "512"},
    {"n-gen", 'n', CLI_INT, "N", "tokens decoded one at a time (0: skip)", "64"},
    {"threads", 't', CLI_INT, "N", "threads (0: all cores)", "0"},
    {"reps", 'r', CLI_INT, "N", "measured repetitions (after one warm-up)", "3"},
    {"batch", 'b', CLI_INT, "N", "largest batch per forward step", "512"},
    {"kv-type", 0, CLI_STR, "TYPE", "KV cache element type: f16 or f32", "f16"},
    {"json", 0, CLI_FLAG, NULL, "print JSON", NULL},
    {0},
};

static double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss / 1024.0;   /* Linux: KiB */
}

static void mean_sd(const double *x, int n, double *mean, double *sd)
{
    double s = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

static int run(cli_args *a)
{
    const char *path = cli_str(a, "model");
    if (!path) return cli_usage_error(a->cmd, "--model MODEL is required");
    long np = cli_int(a, "n-prompt"), ng = cli_int(a, "n-gen"), reps = cli_int(a, "reps"), batch = cli_int(a, "batch");
    if (np < 0 || ng < 0 || np + ng > 1 << 20) return cli_usage_error(a->cmd, "-p and -n must be >= 0 and small enough");
    if (reps < 1 || reps > 1000) return cli_usage_error(a->cmd, "--reps must be in 1..1000");
    if (batch < 1 || batch > 1 << 16) return cli_usage_error(a->cmd, "--batch must be in 1..65536");
    const char *kvt = cli_str(a, "kv-type");
    if (strcmp(kvt, "f16") != 0 && strcmp(kvt, "f32") != 0) return cli_usage_error(a->cmd, "--kv-type must be f16 or f32");
    tw_error err;
    tw_error_clear(&err);
    tw_llama_params lp = tw_llama_default_params();
    lp.max_batch = (int32_t)batch;
    lp.n_threads = (int)cli_int(a, "threads");
    tw_llama *m = NULL;
    tw_kv *kv = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    double *pp = NULL, *tg = NULL;
    int rc = EXIT_OK;
    tw_status st = tw_llama_open(&m, path, &lp, &err);
    if (st) goto fail;
    const tw_model_config *c = tw_llama_config(m);
    tw_kv_params kp = tw_kv_default_params();
    kp.n_seq = 1;
    kp.type = strcmp(kvt, "f32") == 0 ? TW_KV_F32 : TW_KV_F16;
    kp.n_cells = (int32_t)(np > ng ? np : ng);
    if (kp.n_cells < 1) kp.n_cells = 1;
    if ((st = tw_kv_new(&kv, c, &kp, &err))) goto fail;
    int32_t nt = (int32_t)(np > ng ? np : ng);
    toks = malloc((size_t)(nt > 0 ? nt : 1) * sizeof *toks);
    logits = malloc((size_t)c->n_vocab * sizeof *logits);
    pp = calloc((size_t)reps, sizeof *pp);
    tg = calloc((size_t)reps, sizeof *tg);
    if (!toks || !logits || !pp || !tg) {
        st = tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
        goto fail;
    }
    tw_rng rng;
    tw_rng_seed(&rng, 42);
    for (int32_t i = 0; i < nt; i++) toks[i] = (int32_t)tw_rng_below(&rng, (uint64_t)c->n_vocab);
    if (!a->quiet)
        fprintf(stderr, "tunewise: bench %s: pp%ld tg%ld, %d threads, %ld reps (+1 warm-up), kernels %s\n", path, np, ng,
                lp.n_threads > 0 ? lp.n_threads : omp_get_max_threads(), reps, tw_kernels_ops()->name);
    for (long r = -1; r < reps; r++) {
        if (np > 0) {
            tw_kv_seq_clear(kv, 0);
            double t0 = tw_now();
            if ((st = tw_llama_forward(m, kv, 0, toks, NULL, (int32_t)np, TW_LOGITS_LAST, logits, &err))) goto fail;
            if (r >= 0) pp[r] = (double)np / (tw_now() - t0);
        }
        if (ng > 0) {
            tw_kv_seq_clear(kv, 0);
            double t0 = tw_now();
            for (long i = 0; i < ng; i++)
                if ((st = tw_llama_forward(m, kv, 0, &toks[i], NULL, 1, TW_LOGITS_LAST, logits, &err))) goto fail;
            if (r >= 0) tg[r] = (double)ng / (tw_now() - t0);
        }
    }
    double pm = 0, psd = 0, gm = 0, gsd = 0;
    if (np > 0) mean_sd(pp, (int)reps, &pm, &psd);
    if (ng > 0) mean_sd(tg, (int)reps, &gm, &gsd);
    double rss = peak_rss_mib();
    int threads = lp.n_threads > 0 ? lp.n_threads : omp_get_max_threads();
    if (cli_flag(a, "json")) {
        json_t *j = json_object();
        json_object_set_new(j, "model", json_string(path));
        json_object_set_new(j, "arch", json_string(tw_arch_name(c->arch)));
        json_object_set_new(j, "n_params", json_integer((json_int_t)tw_model_config_n_params(c)));
        json_object_set_new(j, "model_bytes", json_integer((json_int_t)tw_model_files_bytes(tw_llama_files(m))));
        json_object_set_new(j, "threads", json_integer(threads));
        json_object_set_new(j, "kernels", json_string(tw_kernels_ops()->name));
        json_object_set_new(j, "kv_type", json_string(kvt));
        json_object_set_new(j, "reps", json_integer(reps));
        json_object_set_new(j, "n_prompt", json_integer(np));
        json_object_set_new(j, "prefill_tok_s", json_real(pm));
        json_object_set_new(j, "prefill_tok_s_sd", json_real(psd));
        json_object_set_new(j, "n_gen", json_integer(ng));
        json_object_set_new(j, "decode_tok_s", json_real(gm));
        json_object_set_new(j, "decode_tok_s_sd", json_real(gsd));
        json_object_set_new(j, "peak_rss_mib", json_real(rss));
        cli_print_json(j);
        json_decref(j);
    } else {
        printf("| model | params | threads | test | t/s |\n|---|---|---|---|---|\n");
        if (np > 0)
            printf("| %s | %.1f M | %d | pp%ld | %.2f ± %.2f |\n", c->name[0] ? c->name : path,
                   (double)tw_model_config_n_params(c) / 1e6, threads, np, pm, psd);
        if (ng > 0)
            printf("| %s | %.1f M | %d | tg%ld | %.2f ± %.2f |\n", c->name[0] ? c->name : path,
                   (double)tw_model_config_n_params(c) / 1e6, threads, ng, gm, gsd);
        printf("peak RSS: %.1f MiB\n", rss);
    }
    goto done;
fail:
    rc = cli_fail(&err);
done:
    free(toks);
    free(logits);
    free(pp);
    free(tg);
    tw_kv_free(kv);
    tw_llama_free(m);
    return rc;
}

const cli_cmd cmd_bench = {
    .name = "bench",
    .summary = "measure prefill and decode speed of a local model (like llama-bench)",
    .usage = "-m MODEL [-p 512] [-n 64] [-t THREADS] [--json]",
    .details = "pp: -p tokens in one forward call from an empty cache; tg: -n tokens decoded one\n"
               "by one from an empty cache. One warm-up run, then --reps measured runs: mean ± sd\n"
               "of tokens/s. Peak RSS is the process's maximum resident set (weights are mapped,\n"
               "so it counts the pages touched).",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run,
};
