/* llama_numerics_diag.c — the tunewise half of tests/ref/llama_numerics_diag.py (which
 * compiles it against build/libtunewise.a; not part of the Makefile build or the tests).
 *
 * Reads a job file (int32 little-endian): n_cases, then per case n_prompt, the prompt
 * ids, n_gen, the generated ids (llama.cpp's greedy tokens), and teacher-forces each case
 * through tw_llama_forward exactly as llama-cpp-python evaluates it (the prompt as one
 * batch, then one token per call), writing n_gen rows of n_vocab float32 logits per case:
 * row 0 after the prompt, row k after feeding gen[k-1].
 *
 * usage: llama_numerics_diag MODEL JOB OUT MATMUL(fast|float|ggml_float|ggml_q8) KV(f16|f32) GGML_MASK
 * With TW_DIAG_TRACE=DIR, the activations of the first case's prompt forward are written
 * to DIR/<name>-<layer>.f32 (tw_llama_set_trace), to compare with llama.cpp's graph
 * callback tensors.
 * Deliberately not here: comparisons (the python script does them). */
#include "model/llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trace(void *user, const char *name, int32_t layer, const float *x, int64_t rows, int64_t cols)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s-%d.f32", (const char *)user, name, layer);
    FILE *f = fopen(p, "wb");
    if (!f) return;
    fwrite(x, sizeof *x, (size_t)(rows * cols), f);
    fclose(f);
}

static int32_t rd(FILE *f)
{
    int32_t v = 0;
    if (fread(&v, sizeof v, 1, f) != 1) {
        fprintf(stderr, "truncated job file\n");
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s MODEL JOB OUT fast|float|ggml_float|ggml_q8 f16|f32 GGML_MASK\n", argv[0]);
        return 2;
    }
    tw_llama_params lp = tw_llama_default_params();
    lp.matmul = strcmp(argv[4], "float") == 0 ? TW_MATMUL_FLOAT
                : strcmp(argv[4], "ggml_float") == 0 ? TW_MATMUL_GGML_FLOAT
                : strcmp(argv[4], "ggml_q8") == 0 ? TW_MATMUL_GGML_Q8 : TW_MATMUL_FAST;
    tw_error err;
    tw_llama *m = NULL;
    if (tw_llama_open(&m, argv[1], &lp, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    tw_llama_set_ggml_numerics(m, (unsigned)strtoul(argv[6], NULL, 0));
    FILE *job = fopen(argv[2], "rb"), *out = fopen(argv[3], "wb");
    if (!job || !out) {
        fprintf(stderr, "cannot open %s or %s\n", argv[2], argv[3]);
        return 3;
    }
    const int32_t V = tw_llama_n_vocab(m);
    float *lg = malloc((size_t)V * sizeof *lg);
    tw_kv_params kp = {.n_cells = 1024, .n_seq = 1, .type = strcmp(argv[5], "f32") == 0 ? TW_KV_F32 : TW_KV_F16};
    tw_kv *kv = NULL;
    if (!lg || tw_kv_new(&kv, tw_llama_config(m), &kp, &err)) {
        fprintf(stderr, "kv: %s\n", err.msg);
        return 3;
    }
    int32_t nc = rd(job);
    for (int32_t c = 0; c < nc; c++) {
        int32_t np = rd(job);
        int32_t *p = malloc((size_t)np * sizeof *p);
        for (int32_t i = 0; i < np; i++) p[i] = rd(job);
        int32_t ng = rd(job);
        int32_t *g = malloc((size_t)(ng > 0 ? ng : 1) * sizeof *g);
        for (int32_t i = 0; i < ng; i++) g[i] = rd(job);
        tw_kv_seq_clear(kv, 0);
        const char *tdir = getenv("TW_DIAG_TRACE");
        tw_llama_set_trace(m, c == 0 && tdir ? trace : NULL, (void *)tdir);
        if (tw_llama_forward(m, kv, 0, p, NULL, np, TW_LOGITS_LAST, lg, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 3;
        }
        tw_llama_set_trace(m, NULL, NULL);
        for (int32_t k = 0; k < ng; k++) {
            fwrite(lg, sizeof *lg, (size_t)V, out);
            if (k + 1 < ng && tw_llama_forward(m, kv, 0, &g[k], NULL, 1, TW_LOGITS_LAST, lg, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 3;
            }
        }
        free(p);
        free(g);
    }
    fclose(out);
    fclose(job);
    free(lg);
    tw_kv_free(kv);
    tw_llama_free(m);
    return 0;
}
