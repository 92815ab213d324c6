/* bench_tokenizer.c — single-core encode/decode throughput of the tokenizers on real
 * dataset text (Banking77 train inputs + E2E dev_pairs inputs and references), one
 * tw_tokenize_append call per line as the engine does. Run from the repository root:
 *
 *   build/bench/bench_tokenizer [--shared ../shared] [--min-time 1.0] [--gguf PATH]
 *
 * Prints, per tokenizer: load time, encode MB/s (input bytes), tokens/s, bytes per
 * token, decode MB/s (streaming decoder, output bytes). The floor the project asks for is
 * 5 MB/s encode on one core; the figures go to bench/RESULTS.md by hand. Not a test.
 */
#include "model/tokenizer.h"
#include "base/base.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lines {
    char **s;
    size_t *len;
    size_t n, cap, bytes;
} lines;

static void add_line(lines *L, const char *s, size_t n)
{
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 1024;
        L->s = realloc(L->s, L->cap * sizeof *L->s);
        L->len = realloc(L->len, L->cap * sizeof *L->len);
    }
    L->s[L->n] = malloc(n + 1);
    memcpy(L->s[L->n], s, n);
    L->s[L->n][n] = '\0';
    L->len[L->n++] = n;
    L->bytes += n;
}

static size_t load_field(lines *L, const char *path, const char *field)
{
    tw_line_reader r;
    tw_error err;
    if (tw_line_reader_open(&r, path, TW_MAX_LINE_DEFAULT, &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        exit(2);
    }
    const char *line;
    size_t len, n0 = L->n;
    while (tw_line_reader_next(&r, &line, &len, &err) == TW_OK) {
        json_t *o = json_loadb(line, len, 0, NULL);
        json_t *v = json_object_get(o, field);
        if (json_is_string(v)) add_line(L, json_string_value(v), json_string_length(v));
        json_decref(o);
    }
    tw_line_reader_close(&r);
    return L->n - n0;
}

static void bench(const char *label, const char *path, const lines *L, double min_time)
{
    tw_tokenizer *t = NULL;
    tw_error err;
    double t0 = tw_now();
    if (tw_tokenizer_load(&t, path, &err)) {
        printf("%-22s  skipped: %s\n", label, err.msg);
        return;
    }
    double load = tw_now() - t0;
    tw_tok_ids ids = {0};
    size_t reps = 0, ntok = 0;
    double el;
    t0 = tw_now();
    do {
        for (size_t i = 0; i < L->n; i++) {
            ids.n = 0;
            if (tw_tokenize_append(t, L->s[i], L->len[i], TW_TOK_PARSE_SPECIAL, &ids, &err)) {
                fprintf(stderr, "%s: %s\n", label, err.msg);
                exit(3);
            }
            ntok += ids.n;
        }
        reps++;
        el = tw_now() - t0;
    } while (el < min_time);
    double mbs = (double)L->bytes * (double)reps / el / 1e6;
    double tps = (double)ntok / el;
    /* decode: tokenize once, then stream every line's ids back */
    int32_t **all = malloc(L->n * sizeof *all);
    size_t *alln = malloc(L->n * sizeof *alln);
    for (size_t i = 0; i < L->n; i++) {
        ids.n = 0;
        tw_tokenize_append(t, L->s[i], L->len[i], 0, &ids, &err);
        all[i] = malloc((ids.n + 1) * sizeof **all);
        memcpy(all[i], ids.v, ids.n * sizeof **all);
        alln[i] = ids.n;
    }
    tw_buf out = {0};
    size_t dreps = 0, dbytes = 0;
    double t1 = tw_now(), del;
    do {
        for (size_t i = 0; i < L->n; i++) {
            tw_detok d;
            tw_detok_init(&d, t, 0);
            tw_buf_clear(&out);
            for (size_t k = 0; k < alln[i]; k++) tw_detok_push(&d, all[i][k], &out, &err);
            tw_detok_flush(&d, &out, &err);
            dbytes += out.len;
        }
        dreps++;
        del = tw_now() - t1;
    } while (del < min_time / 2);
    printf("%-22s  load %6.2f s  encode %6.2f MB/s  %8.0f tokens/s  %5.2f bytes/token  decode %7.1f MB/s\n", label,
           load, mbs, tps, (double)L->bytes * (double)reps / (double)ntok, (double)dbytes / del / 1e6);
    for (size_t i = 0; i < L->n; i++) free(all[i]);
    free(all);
    free(alln);
    tw_buf_free(&out);
    tw_tok_ids_free(&ids);
    tw_tokenizer_free(t);
}

int main(int argc, char **argv)
{
    const char *shared = "../shared";
    const char *gguf = NULL;
    double min_time = 1.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--shared") == 0 && i + 1 < argc) shared = argv[++i];
        else if (strcmp(argv[i], "--min-time") == 0 && i + 1 < argc) min_time = atof(argv[++i]);
        else if (strcmp(argv[i], "--gguf") == 0 && i + 1 < argc) gguf = argv[++i];
        else {
            fprintf(stderr, "usage: bench_tokenizer [--shared DIR] [--min-time S] [--gguf PATH]\n");
            return 2;
        }
    }
    lines L = {0};
    char p[1024];
    snprintf(p, sizeof p, "%s/data/banking77/train.jsonl", shared);
    size_t nb = load_field(&L, p, "input");
    snprintf(p, sizeof p, "%s/data/e2e/dev_pairs.jsonl", shared);
    size_t ne = load_field(&L, p, "input");
    ne += load_field(&L, p, "output");
    printf("corpus: %zu lines (banking77 train %zu, e2e dev_pairs %zu), %.2f MB; one core, one call per line\n", L.n, nb,
           ne, (double)L.bytes / 1e6);
    static const struct { const char *label, *rel; } TOKS[] = {
        {"smollm2 (json)", "models/smollm2-135m/tokenizer.json"},
        {"llama3 (json)", "models/tokenizers/llama3/tokenizer.json"},
        {"qwen3 (json)", "models/tokenizers/qwen3/tokenizer.json"},
        {"llama2 (json)", "models/tokenizers/llama2/tokenizer.json"},
    };
    for (size_t i = 0; i < sizeof TOKS / sizeof TOKS[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", shared, TOKS[i].rel);
        bench(TOKS[i].label, p, &L, min_time);
    }
    char def[1024];
    if (!gguf) {
        const char *home = getenv("HOME");
        snprintf(def, sizeof def, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
        gguf = def;
    }
    bench("smollm2 (gguf)", gguf, &L, min_time);
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.gguf", shared);
    bench("stories260K (gguf spm)", p, &L, min_time);
    for (size_t i = 0; i < L.n; i++) free(L.s[i]);
    free(L.s);
    free(L.len);
    return 0;
}
