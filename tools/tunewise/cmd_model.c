/* cmd_model.c — `tunewise model info FILE|DIR` (what a model file holds: architecture,
 * shapes, tensor types, tokenizer, chat template, parameters and memory needs) and
 * `tunewise model init` (a random-weight GGUF model of a real shape, for benchmarks and
 * tests). Deliberately not here: reading or writing the formats (src/model/). */
#include "cli.h"
#include "model/config.h"
#include "model/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------------ */
static void human_bytes(uint64_t b, char *out, size_t n)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int i = 0;
    while (v >= 1024.0 && i < 4) {
        v /= 1024.0;
        i++;
    }
    if (i == 0) snprintf(out, n, "%llu B", (unsigned long long)b);
    else snprintf(out, n, "%.1f %s", v, u[i]);
}

static void human_count(uint64_t c, char *out, size_t n)
{
    if (c >= 1000000000ull) snprintf(out, n, "%.2f B", (double)c / 1e9);
    else if (c >= 1000000ull) snprintf(out, n, "%.1f M", (double)c / 1e6);
    else if (c >= 1000ull) snprintf(out, n, "%.1f K", (double)c / 1e3);
    else snprintf(out, n, "%llu", (unsigned long long)c);
}

static const char *rope_scaling_name(tw_rope_scaling s)
{
    switch (s) {
    case TW_ROPE_SCALING_LINEAR: return "linear";
    case TW_ROPE_SCALING_YARN: return "yarn";
    case TW_ROPE_SCALING_LLAMA3: return "llama3";
    default: return "none";
    }
}

/* First line of a template (at most 100 bytes), for display. */
static void first_line(const char *s, size_t len, char *out, size_t n)
{
    size_t k = 0;
    while (k < len && s[k] != '\n' && k + 1 < n && k < 100) {
        out[k] = s[k];
        k++;
    }
    out[k] = '\0';
}

typedef struct tok_summary {
    bool present;
    char model[32], pre[32];
    int64_t n_tokens, n_merges;
    int32_t bos, eos;
    char bos_text[64], eos_text[64];
    bool chat;
    char chat_line[128];
} tok_summary;

static void gguf_tok_text(const tw_gguf *g, int32_t id, char *out, size_t n)
{
    out[0] = '\0';
    tw_gguf_array a;
    if (id < 0 || !tw_gguf_kv_arr(g, tw_gguf_find_key(g, "tokenizer.ggml.tokens"), &a) || a.type != TW_GGUF_STRING) return;
    tw_gguf_str s = tw_gguf_arr_str(g, &a, (uint64_t)id);
    snprintf(out, n, "%.*s", (int)(s.len < 60 ? s.len : 60), s.ptr);
}

static void tok_from_gguf(const tw_gguf *g, tok_summary *t)
{
    memset(t, 0, sizeof *t);
    t->bos = t->eos = -1;
    t->present = tw_gguf_str_copy(g, "tokenizer.ggml.model", t->model, sizeof t->model);
    tw_gguf_str_copy(g, "tokenizer.ggml.pre", t->pre, sizeof t->pre);
    tw_gguf_array a;
    if (tw_gguf_kv_arr(g, tw_gguf_find_key(g, "tokenizer.ggml.tokens"), &a)) t->n_tokens = (int64_t)a.n;
    if (tw_gguf_kv_arr(g, tw_gguf_find_key(g, "tokenizer.ggml.merges"), &a)) t->n_merges = (int64_t)a.n;
    int64_t v = tw_gguf_int_or(g, "tokenizer.ggml.bos_token_id", -1);
    t->bos = v >= 0 && v < t->n_tokens ? (int32_t)v : -1;
    v = tw_gguf_int_or(g, "tokenizer.ggml.eos_token_id", -1);
    t->eos = v >= 0 && v < t->n_tokens ? (int32_t)v : -1;
    gguf_tok_text(g, t->bos, t->bos_text, sizeof t->bos_text);
    gguf_tok_text(g, t->eos, t->eos_text, sizeof t->eos_text);
    tw_gguf_str s;
    if (tw_gguf_kv_str(g, tw_gguf_find_key(g, "tokenizer.chat_template"), &s)) {
        t->chat = true;
        first_line(s.ptr, (size_t)s.len, t->chat_line, sizeof t->chat_line);
    }
}

static void tok_from_hf(const tw_model_files *m, tok_summary *t)
{
    memset(t, 0, sizeof *t);
    t->bos = t->eos = -1;
    const char *tj = tw_model_files_tokenizer_json(m);
    if (tj) {
        json_t *root = json_load_file(tj, 0, NULL);
        json_t *model = json_object_get(root, "model");
        const char *mt = json_string_value(json_object_get(model, "type"));
        if (mt) {
            t->present = true;
            snprintf(t->model, sizeof t->model, "%s", mt);
            int64_t max_id = -1;
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(model, "vocab"), k, v)
                if (json_integer_value(v) > max_id) max_id = json_integer_value(v);
            size_t i;
            json_array_foreach(json_object_get(root, "added_tokens"), i, v)
                if (json_integer_value(json_object_get(v, "id")) > max_id) max_id = json_integer_value(json_object_get(v, "id"));
            t->n_tokens = max_id + 1;
            t->n_merges = (int64_t)json_array_size(json_object_get(model, "merges"));
        }
        json_decref(root);
    }
    t->bos = tw_model_files_config(m)->bos_id;
    t->eos = tw_model_files_config(m)->eos_id;
    const char *tc = tw_model_files_tokenizer_config(m);
    if (tc) {
        json_t *root = json_load_file(tc, JSON_DECODE_INT_AS_REAL, NULL);
        json_t *tmpl = json_object_get(root, "chat_template");
        if (json_is_array(tmpl)) tmpl = json_object_get(json_array_get(tmpl, 0), "template");
        if (json_is_string(tmpl)) {
            t->chat = true;
            first_line(json_string_value(tmpl), json_string_length(tmpl), t->chat_line, sizeof t->chat_line);
        }
        json_decref(root);
    }
}

/* ---- model info ------------------------------------------------------------------ */
static const cli_opt INFO_OPTS[] = {
    {"json", 0, CLI_FLAG, NULL, "print the report as JSON", NULL},
    {0},
};

typedef struct type_hist {
    uint64_t count[TW_TYPE_COUNT];
    uint64_t bytes[TW_TYPE_COUNT];
} type_hist;

static int run_info(cli_args *a)
{
    const char *path = a->pos[0];
    tw_error err, cerr;
    tw_error_clear(&err);
    tw_error_clear(&cerr);
    tw_model_files *m = NULL;
    tw_gguf *g = NULL;          /* only when the config could not be read */
    tw_status st = tw_model_files_open(&m, path, &err);
    struct stat sb;
    if (st && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* a valid GGUF file of an architecture we cannot run: still describe it */
        cerr = err;
        tw_error e2;
        if (tw_gguf_open(&g, path, &e2)) return cli_fail(&e2);
        st = TW_OK;
    }
    if (st) return cli_fail(&err);
    const tw_gguf *gg = m ? tw_model_files_gguf(m) : g;
    const tw_model_config *c = m ? tw_model_files_config(m) : NULL;

    /* tensors */
    type_hist h;
    memset(&h, 0, sizeof h);
    uint64_t n_params = 0, weight_bytes = 0;
    int64_t nt = m ? tw_model_files_tensor_count(m) : tw_gguf_tensor_count(g);
    for (int64_t i = 0; i < nt; i++) {
        tw_type ty;
        uint64_t nel, nb;
        const char *nm;
        if (m) {
            const tw_model_tensor *t = tw_model_files_tensor_at(m, i);
            ty = t->type;
            nel = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
            nb = t->nbytes;
            nm = t->name;
        } else {
            const tw_gguf_tensor *t = tw_gguf_tensor_at(g, i);
            ty = t->type;
            nel = t->n_elements;
            nb = t->nbytes;
            nm = t->name;
        }
        h.count[ty]++;
        h.bytes[ty] += nb;
        weight_bytes += nb;
        if (strcmp(nm, "rope_freqs.weight") != 0) n_params += nel;   /* constants, not parameters */
    }
    tok_summary tok;
    if (gg) tok_from_gguf(gg, &tok);
    else tok_from_hf(m, &tok);
    uint64_t file_bytes = m ? tw_model_files_bytes(m) : tw_gguf_file_size(g);
    tw_error chk;
    tw_error_clear(&chk);
    tw_status chk_st = m ? tw_model_files_check(m, &chk) : TW_OK;
    char arch_name[64] = "";
    if (gg) tw_gguf_str_copy(gg, "general.architecture", arch_name, sizeof arch_name);
    if (c) snprintf(arch_name, sizeof arch_name, "%s", tw_arch_name(c->arch));

    if (cli_flag(a, "json")) {
        json_t *j = json_object();
        json_object_set_new(j, "path", json_string(path));
        json_object_set_new(j, "format", json_string(gg ? "gguf" : "safetensors"));
        if (gg) {
            json_object_set_new(j, "gguf_version", json_integer(tw_gguf_version(gg)));
            json_object_set_new(j, "alignment", json_integer(tw_gguf_alignment(gg)));
            json_object_set_new(j, "metadata_count", json_integer(tw_gguf_kv_count(gg)));
        }
        json_object_set_new(j, "architecture", json_string(arch_name));
        if (c) {
            json_t *jc = json_object();
            json_object_set_new(jc, "name", json_string(c->name));
            json_object_set_new(jc, "n_layer", json_integer(c->n_layer));
            json_object_set_new(jc, "n_embd", json_integer(c->n_embd));
            json_object_set_new(jc, "n_head", json_integer(c->n_head));
            json_object_set_new(jc, "n_head_kv", json_integer(c->n_head_kv));
            json_object_set_new(jc, "head_dim", json_integer(c->head_dim));
            json_object_set_new(jc, "n_ff", json_integer(c->n_ff));
            json_object_set_new(jc, "n_vocab", json_integer(c->n_vocab));
            json_object_set_new(jc, "n_ctx_train", json_integer(c->n_ctx_train));
            json_object_set_new(jc, "n_rot", json_integer(c->n_rot));
            json_object_set_new(jc, "rope_freq_base", json_real(c->rope_freq_base));
            json_object_set_new(jc, "rope_type", json_string(c->rope_type == TW_ROPE_NEOX ? "neox" : "normal"));
            json_object_set_new(jc, "rope_scaling", json_string(rope_scaling_name(c->rope_scaling)));
            json_object_set_new(jc, "rope_scale", json_real(c->rope_scale));
            json_object_set_new(jc, "rms_eps", json_real(c->rms_eps));
            json_object_set_new(jc, "tied_embeddings", json_boolean(c->tied_embeddings));
            json_object_set_new(jc, "attn_bias", json_boolean(c->attn_bias));
            json_object_set_new(jc, "qk_norm", json_boolean(c->qk_norm));
            json_object_set_new(jc, "bos_id", json_integer(c->bos_id));
            json_object_set_new(jc, "eos_id", json_integer(c->eos_id));
            json_object_set_new(j, "config", jc);
        } else {
            json_object_set_new(j, "config_error", json_string(cerr.msg));
        }
        json_t *jt = json_object();
        json_object_set_new(jt, "count", json_integer(nt));
        json_t *types = json_object();
        for (int ty = 0; ty < TW_TYPE_COUNT; ty++)
            if (h.count[ty]) {
                json_t *e = json_object();
                json_object_set_new(e, "count", json_integer((json_int_t)h.count[ty]));
                json_object_set_new(e, "bytes", json_integer((json_int_t)h.bytes[ty]));
                json_object_set_new(types, tw_type_get((uint32_t)ty)->name, e);
            }
        json_object_set_new(jt, "types", types);
        json_object_set_new(j, "tensors", jt);
        json_object_set_new(j, "n_params", json_integer((json_int_t)n_params));
        json_t *jk = json_object();
        json_object_set_new(jk, "present", json_boolean(tok.present));
        if (tok.present) {
            json_object_set_new(jk, "model", json_string(tok.model));
            if (tok.pre[0]) json_object_set_new(jk, "pre", json_string(tok.pre));
            json_object_set_new(jk, "n_tokens", json_integer(tok.n_tokens));
            json_object_set_new(jk, "n_merges", json_integer(tok.n_merges));
            json_object_set_new(jk, "bos_id", json_integer(tok.bos));
            json_object_set_new(jk, "eos_id", json_integer(tok.eos));
        }
        json_object_set_new(j, "tokenizer", jk);
        json_t *jch = json_object();
        json_object_set_new(jch, "present", json_boolean(tok.chat));
        if (tok.chat) json_object_set_new(jch, "first_line", json_string(tok.chat_line));
        json_object_set_new(j, "chat_template", jch);
        json_t *jm = json_object();
        json_object_set_new(jm, "file_bytes", json_integer((json_int_t)file_bytes));
        json_object_set_new(jm, "weight_bytes", json_integer((json_int_t)weight_bytes));
        if (c) {
            json_object_set_new(jm, "kv_cache_bytes_per_1k_f16", json_integer((json_int_t)tw_model_config_kv_bytes(c, 1024, 2)));
            json_object_set_new(jm, "kv_cache_bytes_per_1k_f32", json_integer((json_int_t)tw_model_config_kv_bytes(c, 1024, 4)));
        }
        json_object_set_new(j, "memory", jm);
        json_object_set_new(j, "check", json_string(c ? (chk_st ? chk.msg : "ok") : "not run"));
        cli_print_json(j);
        json_decref(j);
    } else {
        char fb[32], wb[32], k16[32], k32[32], np[32];
        human_bytes(file_bytes, fb, sizeof fb);
        human_bytes(weight_bytes, wb, sizeof wb);
        human_count(n_params, np, sizeof np);
        if (gg)
            printf("file        %s (GGUF v%u, %s, %lld metadata keys, alignment %u)\n", path, tw_gguf_version(gg), fb,
                   (long long)tw_gguf_kv_count(gg), tw_gguf_alignment(gg));
        else
            printf("folder      %s (Hugging Face safetensors, %s)\n", path, fb);
        if (c) {
            if (c->name[0]) printf("name        %s\n", c->name);
            printf("arch        %s: %d layers, embd %d, %d heads (%d KV, head size %d), ffn %d, vocab %d\n",
                   tw_arch_name(c->arch), c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->head_dim, c->n_ff, c->n_vocab);
            printf("context     %d; rope base %g, %s, %d dims, scaling %s", c->n_ctx_train, (double)c->rope_freq_base,
                   c->rope_type == TW_ROPE_NEOX ? "neox" : "normal", c->n_rot, rope_scaling_name(c->rope_scaling));
            if (c->rope_scaling != TW_ROPE_SCALING_NONE) printf(" x%g", (double)c->rope_scale);
            printf("; rms eps %g\n", (double)c->rms_eps);
            printf("layout      %s embeddings%s%s\n", c->tied_embeddings ? "tied" : "separate output",
                   c->attn_bias ? ", q/k/v biases" : "", c->qk_norm ? ", q/k norms" : "");
        } else {
            printf("arch        %s (%s)\n", arch_name[0] ? arch_name : "?", cerr.msg);
        }
        printf("tensors     %lld:", (long long)nt);
        bool first = true;
        for (int ty = 0; ty < TW_TYPE_COUNT; ty++)
            if (h.count[ty]) {
                char tb[32];
                human_bytes(h.bytes[ty], tb, sizeof tb);
                printf("%s %s x%llu (%s)", first ? "" : ",", tw_type_get((uint32_t)ty)->name, (unsigned long long)h.count[ty], tb);
                first = false;
            }
        printf("\nparams      %s (%llu)\n", np, (unsigned long long)n_params);
        if (tok.present) {
            printf("tokenizer   %s", tok.model);
            if (tok.pre[0]) printf(" (pre %s)", tok.pre);
            printf(", %lld tokens, %lld merges", (long long)tok.n_tokens, (long long)tok.n_merges);
            if (tok.bos >= 0) printf(", bos %d%s%s%s", tok.bos, tok.bos_text[0] ? " '" : "", tok.bos_text, tok.bos_text[0] ? "'" : "");
            if (tok.eos >= 0) printf(", eos %d%s%s%s", tok.eos, tok.eos_text[0] ? " '" : "", tok.eos_text, tok.eos_text[0] ? "'" : "");
            printf("\n");
        } else {
            printf("tokenizer   none\n");
        }
        if (tok.chat) printf("chat        template present: %s\n", tok.chat_line);
        else printf("chat        no template\n");
        printf("memory      file %s; weights in memory %s", fb, wb);
        if (c) {
            human_bytes(tw_model_config_kv_bytes(c, 1024, 2), k16, sizeof k16);
            human_bytes(tw_model_config_kv_bytes(c, 1024, 4), k32, sizeof k32);
            printf("; KV cache per 1k tokens %s (f16) / %s (f32)", k16, k32);
        }
        printf("\n");
        if (c) printf("check       %s\n", chk_st ? chk.msg : "ok: every tensor the architecture needs, with the expected shape");
    }
    tw_model_files_free(m);
    tw_gguf_free(g);
    return EXIT_OK;
}

const cli_cmd cmd_model_info = {
    .name = "model info",
    .summary = "describe a model file: architecture, tensors, tokenizer, memory needs",
    .usage = "FILE.gguf|HF_FOLDER [--json]",
    .details = "Reads a GGUF file (validated in full) or a Hugging Face folder (config.json +\n"
               "model.safetensors or sharded model-*.safetensors with model.safetensors.index.json).\n"
               "Details: docs/model-files.md.",
    .opts = INFO_OPTS,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_info,
};

/* ---- model init ------------------------------------------------------------------ */
static const cli_opt INIT_OPTS[] = {
    {"like", 0, CLI_STR, "SHAPE", "shape: smollm2-135m|qwen2.5-0.5b|qwen3-0.6b|llama-3.2-1b|tiny", "tiny"},
    {"arch", 0, CLI_STR, "ARCH", "architecture llama|qwen2|qwen3 (default: the shape's)", NULL},
    {"type", 0, CLI_STR, "TYPE", "type of 2-D weights: f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q5_k|q6_k", "f32"},
    {"tokenizer", 0, CLI_STR, "FILE", "tokenizer.json to embed (tokenizer_config.json beside it is read too)", NULL},
    {"tokenizer-pre", 0, CLI_STR, "NAME", "tokenizer.ggml.pre (default: detected)", NULL},
    {"seed", 0, CLI_INT, "N", "random seed", "42"},
    {"stddev", 0, CLI_NUM, "X", "standard deviation of the weights", "0.02"},
    {"vocab", 0, CLI_INT, "N", "vocabulary size (default: the shape's, or the tokenizer's)", NULL},
    {"out", 'o', CLI_STR, "FILE", "output .gguf file (required)", NULL},
    {"json", 0, CLI_FLAG, NULL, "print what was written as JSON", NULL},
    {0},
};

static void init_progress(void *user, uint64_t done, uint64_t total)
{
    tw_progress *p = user;
    p->total = total;
    tw_progress_update(p, done);
}

static int run_init(cli_args *a)
{
    const char *out = cli_str(a, "out");
    if (!out) return cli_usage_error(a->cmd, "missing --out FILE");
    tw_model_init_params p = tw_model_init_default_params();
    p.like = cli_str(a, "like");
    if (!tw_model_shape_find(p.like)) return cli_usage_error(a->cmd, "unknown --like '%s' (expected smollm2-135m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b or tiny)", p.like);
    p.arch = cli_str(a, "arch");
    tw_arch arch;
    if (p.arch && !tw_arch_parse(p.arch, &arch)) return cli_usage_error(a->cmd, "unknown --arch '%s' (expected llama, qwen2 or qwen3)", p.arch);
    if (!tw_type_parse(cli_str(a, "type"), &p.type)) return cli_usage_error(a->cmd, "unknown --type '%s'", cli_str(a, "type"));
    p.tokenizer = cli_str(a, "tokenizer");
    p.tokenizer_pre = cli_str(a, "tokenizer-pre");
    long seed = cli_int(a, "seed");
    if (seed < 0) return cli_usage_error(a->cmd, "--seed must be >= 0");
    p.seed = (uint64_t)seed;
    p.stddev = (float)cli_num(a, "stddev");
    if (!(p.stddev > 0.0f) || !isfinite(p.stddev)) return cli_usage_error(a->cmd, "--stddev must be > 0");
    if (cli_given(a, "vocab")) {
        long v = cli_int(a, "vocab");
        if (v < 1 || v > (1 << 24)) return cli_usage_error(a->cmd, "--vocab must be in 1..16777216");
        p.n_vocab = (int32_t)v;
    }
    tw_progress prog;
    tw_progress_begin(&prog, "writing tensor bytes", 0, !a->quiet);
    p.progress = init_progress;
    p.progress_user = &prog;
    tw_error err;
    tw_error_clear(&err);
    tw_model_init_info info;
    tw_status st = tw_model_init(&p, out, &info, &err);
    if (prog.t_last > prog.t_start) tw_progress_end(&prog);   /* only when a line was shown */
    if (st) return cli_fail(&err);
    const tw_model_config *c = &info.cfg;
    if (cli_flag(a, "json")) {
        json_t *j = json_object();
        json_object_set_new(j, "path", json_string(out));
        json_object_set_new(j, "like", json_string(p.like));
        json_object_set_new(j, "architecture", json_string(tw_arch_name(c->arch)));
        json_object_set_new(j, "type", json_string(tw_type_get(p.type)->name));
        json_object_set_new(j, "seed", json_integer((json_int_t)p.seed));
        json_object_set_new(j, "n_layer", json_integer(c->n_layer));
        json_object_set_new(j, "n_embd", json_integer(c->n_embd));
        json_object_set_new(j, "n_vocab", json_integer(c->n_vocab));
        json_object_set_new(j, "n_tensors", json_integer(info.n_tensors));
        json_object_set_new(j, "n_params", json_integer((json_int_t)info.n_params));
        json_object_set_new(j, "n_fallback", json_integer(info.n_fallback));
        json_object_set_new(j, "file_bytes", json_integer((json_int_t)info.file_bytes));
        if (p.tokenizer) {
            json_t *t = json_object();
            json_object_set_new(t, "model", json_string(info.tok.model));
            json_object_set_new(t, "pre", json_string(info.tok.pre));
            json_object_set_new(t, "n_tokens", json_integer(info.tok.n_tokens));
            json_object_set_new(t, "n_merges", json_integer(info.tok.n_merges));
            json_object_set_new(t, "bos_id", json_integer(info.tok.bos_id));
            json_object_set_new(t, "eos_id", json_integer(info.tok.eos_id));
            json_object_set_new(t, "chat_template", json_boolean(info.tok.chat_template));
            json_object_set_new(j, "tokenizer", t);
        }
        cli_print_json(j);
        json_decref(j);
    } else {
        char fb[32], np[32];
        human_bytes(info.file_bytes, fb, sizeof fb);
        human_count(info.n_params, np, sizeof np);
        printf("wrote %s: random %s (%s), %s weights, seed %llu\n", out, p.like, tw_arch_name(c->arch),
               tw_type_get(p.type)->name, (unsigned long long)p.seed);
        printf("  %d layers, embd %d, %d heads (%d KV), ffn %d, vocab %d; %lld tensors, %s params, %s\n", c->n_layer,
               c->n_embd, c->n_head, c->n_head_kv, c->n_ff, c->n_vocab, (long long)info.n_tensors, np, fb);
        if (info.n_fallback)
            printf("  %d tensors use a fallback type: their first dimension is not a multiple of the %s block\n",
                   info.n_fallback, tw_type_get(p.type)->name);
        if (p.tokenizer)
            printf("  tokenizer %s (pre %s): %lld tokens, %lld merges, bos %d, eos %d%s\n", info.tok.model, info.tok.pre,
                   (long long)info.tok.n_tokens, (long long)info.tok.n_merges, info.tok.bos_id, info.tok.eos_id,
                   info.tok.chat_template ? ", chat template" : "");
        else
            printf("  no tokenizer embedded (pass --tokenizer tokenizer.json)\n");
    }
    return EXIT_OK;
}

const cli_cmd cmd_model_init = {
    .name = "model init",
    .summary = "write a random-weight GGUF model of a real shape (benchmarks, tests)",
    .usage = "--like SHAPE -o OUT.gguf [options]",
    .details = "Weights ~ N(0, stddev) from a stream per tensor seeded by (seed, name); norms are 1.\n"
               "Tensor names and metadata keys are llama.cpp's (checked with gguf-py, llama.cpp's package).\n"
               "Quantized types fall back (q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, else f16) for rows\n"
               "that are not a multiple of the block. Details: docs/model-files.md.",
    .opts = INIT_OPTS,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_init,
};
