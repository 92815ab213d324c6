/* cmd_lora.c — `tunewise lora merge -m BASE.gguf --adapter PATH -o OUT.gguf`: a model with a
 * LoRA adapter merged into its weights (W' = W + scale · B·A), written as a GGUF that any
 * llama.cpp-compatible runtime loads. Adapted tensors are dequantized a few rows at a time,
 * merged (lora.h tw_lora_merge) and written as --type (keep: re-quantized to the base's own
 * type); every other tensor and all metadata are copied unchanged.
 * Deliberately not here: the merge math (model/lora.c), Hugging Face folders as bases
 * (convert them to GGUF first; the adapter itself may be a PEFT folder). */
#include "cli.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/lora.h"
#include "model/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const cli_opt OPTS[] = {
    {"model", 'm', CLI_STR, "BASE", "base model (GGUF file)", NULL},
    {"adapter", 'a', CLI_STR, "PATH", "LoRA adapter: llama.cpp GGUF or PEFT folder", NULL},
    {"scale", 0, CLI_STR, "S", "adapter scale (llama.cpp's --lora-scaled; 1: alpha / rank as trained)", "1"},
    {"type", 0, CLI_STR, "TYPE", "type of the merged tensors: keep (the base's, re-quantized) | f32 | f16 | q8_0 | ...",
     "keep"},
    {"out", 'o', CLI_STR, "FILE", "merged model (.gguf)", NULL},
    {0},
};

typedef struct merge_job {
    const tw_gguf_tensor *t;
    const tw_lora *l;
    const tw_lora_weight *w;
    tw_type out_type;
    float scale;
    float *rows;   /* scratch: a block of dequantized rows */
    int64_t cap;   /* rows the scratch holds */
} merge_job;

static tw_status fill_merged(void *user, void *dst, uint64_t row0, uint64_t nrows, tw_error *err)
{
    merge_job *j = user;
    const int64_t n_in = j->t->ne[0];
    const size_t in_rb = tw_type_row_bytes((uint32_t)j->t->type, (uint64_t)n_in);
    const size_t out_rb = tw_type_row_bytes((uint32_t)j->out_type, (uint64_t)n_in);
    for (uint64_t r = 0; r < nrows;) {
        const int64_t n = (int64_t)(nrows - r) < j->cap ? (int64_t)(nrows - r) : j->cap;
        for (int64_t i = 0; i < n; i++)
            tw_dequantize_row(j->t->type, j->rows + i * n_in, (const uint8_t *)j->t->data + (row0 + r + (uint64_t)i) * in_rb,
                              n_in);
        tw_lora_merge(j->rows, j->w->a, j->w->b, (int64_t)(row0 + r), n, n_in, j->w->rank,
                      tw_lora_scale(j->l, j->w, j->scale));
        for (int64_t i = 0; i < n; i++)
            tw_quantize_row(j->out_type, (uint8_t *)dst + (r + (uint64_t)i) * out_rb, j->rows + i * n_in, n_in);
        r += (uint64_t)n;
    }
    (void)err;
    return TW_OK;
}

static int run_merge(cli_args *a)
{
    const char *base = cli_str(a, "model"), *ad = cli_str(a, "adapter"), *out = cli_str(a, "out");
    if (!base) return cli_usage_error(a->cmd, "missing --model BASE.gguf");
    if (!ad) return cli_usage_error(a->cmd, "missing --adapter PATH");
    if (!out) return cli_usage_error(a->cmd, "missing --out FILE");
    char *end;
    const double scale = strtod(cli_str(a, "scale"), &end);
    if (*end) return cli_usage_error(a->cmd, "--scale must be a number");
    const char *tname = cli_str(a, "type");
    tw_type forced = TW_TYPE_COUNT;
    if (strcmp(tname, "keep") != 0) {
        const tw_type_info *ti = NULL;
        for (uint32_t t = 0; t < TW_TYPE_COUNT && !ti; t++) {
            const tw_type_info *x = tw_type_get(t);
            if (x && x->name && strcmp(x->name, tname) == 0 && tw_quant_supported((tw_type)t)) {
                ti = x;
                forced = (tw_type)t;
            }
        }
        if (!ti) return cli_usage_error(a->cmd, "unknown or unsupported --type '%s' (keep, f32, f16, bf16, q8_0, q4_0, ...)", tname);
    }
    tw_error err;
    tw_error_clear(&err);
    tw_model_files *mf = NULL;
    tw_lora *l = NULL;
    tw_gguf_writer *w = NULL;
    merge_job *jobs = NULL;
    int64_t nt = 0, merged = 0;
    tw_status st = tw_model_files_open(&mf, base, &err);
    const tw_gguf *g = st ? NULL : tw_model_files_gguf(mf);
    if (!st && !g) st = tw_error_set(&err, TW_ERR_INVALID, "%s: the base must be a GGUF file", base);
    if (!st) {
        struct stat sb;
        const bool dir = stat(ad, &sb) == 0 && S_ISDIR(sb.st_mode);
        st = dir ? tw_lora_read_peft(&l, ad, tw_model_files_config(mf), &err) : tw_lora_read_gguf(&l, ad, &err);
    }
    if (!st) st = tw_lora_prepare(l, mf, &err);   /* shapes checked, B rows in the file's order */
    if (!st) st = tw_gguf_writer_new(&w, &err);
    for (int64_t i = 0; !st && i < tw_gguf_kv_count(g); i++) st = tw_gguf_writer_copy_kv(w, g, i, &err);
    if (!st) {
        nt = tw_gguf_tensor_count(g);
        jobs = calloc((size_t)(nt ? nt : 1), sizeof *jobs);
        if (!jobs) st = tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; !st && i < nt; i++) {
        const tw_gguf_tensor *t = tw_gguf_tensor_at(g, i);
        const tw_lora_weight *lw = tw_lora_find(l, t->name);
        if (!lw) {
            st = tw_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL, &err);
            continue;
        }
        merge_job *j = &jobs[i];
        j->t = t;
        j->l = l;
        j->w = lw;
        j->scale = (float)scale;
        j->out_type = forced != TW_TYPE_COUNT ? forced : t->type;
        if (!tw_quant_supported(j->out_type))
            st = tw_error_set(&err, TW_ERR_UNSUPPORTED, "%s: tensor '%s' of type %u cannot be re-quantized: give --type f16",
                              base, t->name, (unsigned)t->type);
        j->cap = 64;
        if (!st && !(j->rows = malloc((size_t)j->cap * (size_t)t->ne[0] * sizeof(float))))
            st = tw_error_set(&err, TW_ERR_NOMEM, "out of memory");
        if (!st) st = tw_gguf_writer_add_tensor(w, t->name, j->out_type, t->n_dims, t->ne, NULL, fill_merged, j, &err);
        merged++;
    }
    if (!st) tw_gguf_writer_set_str(w, "general.name", "merged with a LoRA adapter", (size_t)-1, &err);
    if (!st) st = tw_gguf_writer_write(w, out, &err);
    if (!st)
        fprintf(stderr, "tunewise: merged %lld adapted tensors of %lld (scale %g, %s) into %s\n", (long long)merged,
                (long long)nt, scale, tname, out);
    for (int64_t i = 0; jobs && i < nt; i++) free(jobs[i].rows);
    free(jobs);
    tw_gguf_writer_free(w);
    tw_lora_free(l);
    tw_model_files_free(mf);
    return st ? cli_fail(&err) : EXIT_OK;
}

const cli_cmd cmd_lora_merge = {
    .name = "lora merge",
    .summary = "merge a LoRA adapter into a GGUF model (F32 / F16 / re-quantized)",
    .usage = "-m BASE.gguf --adapter PATH -o OUT.gguf [--scale S] [--type keep|f32|f16|q8_0|...]",
    .details = "W' = W + scale * alpha / rank * B A for every adapted tensor; the rest of the file is copied.\n"
               "--type keep re-quantizes merged tensors to the base's type (lossy for 4-bit bases: the\n"
               "merged delta is rounded with the weights); f32 / f16 keep it. See docs/adapters.md.",
    .opts = OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_merge,
};
