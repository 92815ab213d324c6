/* test_model_cli.c — `tunewise model init` / `model info` and the tokenizer.json -> GGUF
 * conversion (src/model/init.c, tools/tunewise/cmd_model.c):
 *  - model init for each architecture writes files whose bytes, tensors and metadata are
 *    exactly what gguf-py read from the same commands (tests/data/model/init_readback.json,
 *    written by tests/ref/check_gguf_compat.py, which also checked tensor names and keys
 *    against gguf-py's llama.cpp tables); the weights dequantize to N(0, stddev), norms 1;
 *  - determinism (seed, thread count), type fallbacks, per-architecture layout;
 *  - the tokenizer conversion reproduces llama.cpp's converter on SmolLM2 (tokens, types and
 *    merges of the real SmolLM2 GGUF), and the SentencePiece-style (Llama 2), Qwen3 and
 *    Llama 3 tokenizers of ../shared;
 *  - model info (text and JSON) on real GGUF files and HF folders, and the error paths. */
#include "testutil.h"

#include "base/base.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/quant.h"

#include <jansson.h>
#include <math.h>

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s", path, je.text);
    return j;
}

static int run(const char *args, char **out, char **err)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", tw_test_bin(), args);
    return tw_test_run(cmd, out, err);
}

static json_t *run_json(const char *args)
{
    char *out, *err;
    int rc = run(args, &out, &err);
    cr_assert_eq(rc, 0, "'%s' exited %d: %s", args, rc, err);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    cr_assert_not_null(j, "'%s' printed invalid JSON (%s): %.300s", args, je.text, out);
    free(out);
    free(err);
    return j;
}

static const char *smollm2_path(void)
{
    const char *p = getenv("TW_SMOLLM2");
    static char buf[1024];
    if (p) return p;
    snprintf(buf, sizeof buf, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    return buf;
}

static void require_smollm2(void)
{
    if (!tw_file_exists(smollm2_path()))
        cr_assert_fail("the SmolLM2-135M-Instruct Q4_1 model is not at %s: run scripts/get-models.sh (or set TW_SMOLLM2)",
                       smollm2_path());
}

static void sha_file(const char *path, char hex[65])
{
    tw_error e;
    cr_assert_eq(tw_sha256_file(path, hex, &e), TW_OK, "%s", e.msg);
}

/* Mean and standard deviation of a tensor's values, dequantized. */
static void tensor_stats(const tw_gguf_tensor *t, double *mean, double *std)
{
    int64_t n0 = t->ne[0];
    uint64_t rows = t->n_elements / (uint64_t)n0;
    size_t rb = tw_type_row_bytes(t->type, (uint64_t)n0);
    float *row = malloc((size_t)n0 * sizeof *row);
    double s = 0, s2 = 0;
    for (uint64_t r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)t->data + r * rb;
        if (t->type == TW_TYPE_F32) memcpy(row, src, (size_t)n0 * 4);
        else tw_dequantize_row(t->type, row, src, n0);
        for (int64_t i = 0; i < n0; i++) {
            s += row[i];
            s2 += (double)row[i] * row[i];
        }
    }
    free(row);
    double n = (double)t->n_elements;
    *mean = s / n;
    *std = sqrt(fmax(0.0, s2 / n - *mean * *mean));
}

/* ---- model init vs gguf-py ------------------------------------------------------------ */
Test(model_cli, init_files_match_what_gguf_py_read)
{
    json_t *rb = load_json("tests/data/model/init_readback.json");
    json_t *cases = json_object_get(rb, "cases");
    cr_assert(json_array_size(cases) >= 6);
    char *dir = tw_test_tmpdir();
    size_t ci;
    json_t *c;
    json_array_foreach(cases, ci, c) {
        cr_assert_eq(json_array_size(json_object_get(c, "problems")), 0, "gguf-py found problems in case %zu", ci);
        char args[1024] = "", path[512];
        json_t *a;
        size_t k;
        json_array_foreach(json_object_get(c, "args"), k, a) {
            strcat(args, " ");
            strcat(args, json_string_value(a));
        }
        snprintf(path, sizeof path, "%s/case%zu.gguf", dir, ci);
        char cmd[2048], *out, *err;
        snprintf(cmd, sizeof cmd, "-q model init%s -o %s", args, path);
        int rc = run(cmd, &out, &err);
        cr_assert_eq(rc, 0, "%s: %s", cmd, err);
        free(out);
        free(err);
        tw_gguf *g;
        tw_error e;
        cr_assert_eq(tw_gguf_open(&g, path, &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_gguf_file_size(g), (uint64_t)json_integer_value(json_object_get(c, "file_size")), "%s", args);
        /* metadata: every key gguf-py saw, same type and value */
        json_t *kv = json_object_get(c, "kv");
        cr_assert_eq(tw_gguf_kv_count(g), (int64_t)json_object_size(kv), "%s", args);
        const char *key;
        json_t *d;
        json_object_foreach(kv, key, d) {
            int64_t i = tw_gguf_find_key(g, key);
            cr_assert(i >= 0, "%s: key %s", args, key);
            const char *type = json_string_value(json_object_get(d, "type"));
            if (strcmp(type, "array") == 0) {
                tw_gguf_array arr;
                cr_assert(tw_gguf_kv_arr(g, i, &arr));
                cr_assert_str_eq(tw_gguf_vtype_name(arr.type), json_string_value(json_object_get(d, "elem")), "%s", key);
                cr_assert_eq(arr.n, (uint64_t)json_integer_value(json_object_get(d, "n")), "%s", key);
                json_t *vals = json_object_get(d, "values");
                for (size_t j = 0; j < json_array_size(vals); j++) {
                    json_t *v = json_array_get(vals, j);
                    if (arr.type == TW_GGUF_STRING) cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &arr, j), json_string_value(v)), "%s[%zu]", key, j);
                    else if (arr.type == TW_GGUF_FLOAT32) cr_assert_eq(tw_gguf_arr_float(&arr, j), json_real_value(v), "%s[%zu]", key, j);
                    else cr_assert_eq(tw_gguf_arr_int(&arr, j), strtoll(json_string_value(v), NULL, 10), "%s[%zu]", key, j);
                }
            } else {
                cr_assert_str_eq(tw_gguf_vtype_name(tw_gguf_kv_type(g, i)), type, "%s", key);
                json_t *v = json_object_get(d, "value");
                if (strcmp(type, "string") == 0) {
                    tw_gguf_str s;
                    cr_assert(tw_gguf_kv_str(g, i, &s) && tw_gguf_str_eq(s, json_string_value(v)), "%s", key);
                } else if (strcmp(type, "bool") == 0) {
                    bool b;
                    cr_assert(tw_gguf_kv_bool(g, i, &b) && b == json_is_true(v), "%s", key);
                } else if (strcmp(type, "float32") == 0 || strcmp(type, "float64") == 0) {
                    double x;
                    cr_assert(tw_gguf_kv_float(g, i, &x) && x == json_real_value(v), "%s", key);
                } else {
                    uint64_t x;
                    cr_assert(tw_gguf_kv_uint(g, i, &x) && x == strtoull(json_string_value(v), NULL, 10), "%s", key);
                }
            }
        }
        /* tensors: same names, types, dims, absolute offsets and bytes */
        json_t *ts = json_object_get(c, "tensors");
        cr_assert_eq(tw_gguf_tensor_count(g), (int64_t)json_array_size(ts), "%s", args);
        json_array_foreach(ts, k, d) {
            const char *name = json_string_value(json_object_get(d, "name"));
            const tw_gguf_tensor *t = tw_gguf_tensor_find(g, name);
            cr_assert_not_null(t, "%s: %s", args, name);
            cr_assert_str_eq(tw_type_get(t->type)->name, json_string_value(json_object_get(d, "type")), "%s", name);
            json_t *ne = json_object_get(d, "ne");
            for (size_t j = 0; j < json_array_size(ne); j++) cr_assert_eq(t->ne[j], json_integer_value(json_array_get(ne, j)));
            cr_assert_eq((uint64_t)((const char *)t->data - (const char *)tw_gguf_base(g)),
                         (uint64_t)json_integer_value(json_object_get(d, "offset")), "%s", name);
            char hex[65];
            tw_sha256(t->data, t->nbytes, hex);
            cr_assert_str_eq(hex, json_string_value(json_object_get(d, "sha256")), "%s: %s bytes differ from the fixture", args, name);
            double mean, std;
            tensor_stats(t, &mean, &std);
            cr_assert(fabs(mean - json_real_value(json_object_get(d, "mean"))) < 1e-9, "%s mean", name);
            cr_assert(fabs(std - json_real_value(json_object_get(d, "std"))) < 1e-9, "%s std", name);
        }
        tw_gguf_free(g);
        tw_model_files *m;
        cr_assert_eq(tw_model_files_open(&m, path, &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_model_files_check(m, &e), TW_OK, "%s: %s", args, e.msg);
        tw_model_files_free(m);
    }
    json_decref(rb);
    free(dir);
}

/* ---- layout, determinism, types ------------------------------------------------------- */
static void init_lib(const char *arch, tw_type type, uint64_t seed, const char *path, tw_model_init_info *info)
{
    tw_model_init_params p = tw_model_init_default_params();
    p.like = "tiny";
    p.arch = arch;
    p.type = type;
    p.seed = seed;
    tw_error e;
    cr_assert_eq(tw_model_init(&p, path, info, &e), TW_OK, "%s", e.msg);
}

Test(model_cli, init_layout_per_architecture)
{
    char *dir = tw_test_tmpdir();
    const char *archs[] = {"llama", "qwen2", "qwen3"};
    int want_tensors[] = {2 + 1 + 2 * 9, 2 + 1 + 2 * 12, 2 + 1 + 2 * 11};
    for (int k = 0; k < 3; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, archs[k]);
        tw_model_init_info info;
        init_lib(archs[k], TW_TYPE_F32, 9, path, &info);
        cr_assert_eq(info.n_tensors, want_tensors[k], "%s", archs[k]);
        tw_gguf *g;
        tw_error e;
        cr_assert_eq(tw_gguf_open(&g, path, &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_gguf_tensor_count(g), want_tensors[k]);
        char key[128];
        snprintf(key, sizeof key, "%s.attention.head_count_kv", archs[k]);
        cr_assert_eq(tw_gguf_int_or(g, key, -1), 2);
        snprintf(key, sizeof key, "%s.attention.key_length", archs[k]);
        cr_assert_eq(tw_gguf_int_or(g, key, -1), k == 2 ? 16 : -1, "key_length only for qwen3 (or odd head sizes)");
        cr_assert_eq(tw_gguf_int_or(g, "general.file_type", -1), 0);
        cr_assert_eq(tw_gguf_find_key(g, "general.quantization_version"), -1, "f32 files carry no quantization version");
        cr_assert_eq(tw_gguf_tensor_find(g, "blk.1.attn_q.bias") != NULL, k == 1);
        cr_assert_eq(tw_gguf_tensor_find(g, "blk.1.attn_k_norm.weight") != NULL, k == 2);
        cr_assert_not_null(tw_gguf_tensor_find(g, "output.weight"), "the tiny shape is untied");
        const tw_gguf_tensor *t = tw_gguf_tensor_find(g, "blk.0.ffn_down.weight");
        cr_assert(t->ne[0] == 128 && t->ne[1] == 64);
        double mean, std;
        tensor_stats(tw_gguf_tensor_find(g, "token_embd.weight"), &mean, &std);
        cr_assert(fabs(mean) < 0.002 && fabs(std - 0.02) < 0.001, "N(0, 0.02): mean %g std %g", mean, std);
        tensor_stats(tw_gguf_tensor_find(g, "blk.1.ffn_norm.weight"), &mean, &std);
        cr_assert(mean == 1.0 && std == 0.0, "norms are 1");
        tw_model_config c;
        cr_assert_eq(tw_model_config_from_gguf(&c, g, &e), TW_OK, "%s", e.msg);
        const tw_model_config *s = &tw_model_shape_find("tiny")->cfg;
        cr_assert(c.n_layer == s->n_layer && c.n_embd == s->n_embd && c.n_head == s->n_head && c.n_ff == s->n_ff);
        cr_assert(c.n_vocab == s->n_vocab && c.n_ctx_train == s->n_ctx_train && c.rms_eps == s->rms_eps);
        cr_assert_eq(c.rope_type, k == 0 ? TW_ROPE_NORMAL : TW_ROPE_NEOX);
        cr_assert_eq(info.n_params, tw_model_config_n_params(&c));
        cr_assert_eq(info.file_bytes, tw_gguf_file_size(g));
        tw_gguf_free(g);
    }
    free(dir);
}

Test(model_cli, init_is_deterministic)
{
    char *dir = tw_test_tmpdir();
    char a[512], b[512], c[512], cmd[2048];
    snprintf(a, sizeof a, "%s/a.gguf", dir);
    snprintf(b, sizeof b, "%s/b.gguf", dir);
    snprintf(c, sizeof c, "%s/c.gguf", dir);
    snprintf(cmd, sizeof cmd, "-q model init --like tiny --arch qwen3 --type q4_0 --seed 11 -o %s", a);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s -q model init --like tiny --arch qwen3 --type q4_0 --seed 11 -o %s",
             tw_test_bin(), b);
    cr_assert_eq(tw_test_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "-q model init --like tiny --arch qwen3 --type q4_0 --seed 12 -o %s", c);
    cr_assert_eq(run(cmd, NULL, NULL), 0);
    char ha[65], hb[65], hc[65];
    sha_file(a, ha);
    sha_file(b, hb);
    sha_file(c, hc);
    cr_assert_str_eq(ha, hb, "same seed, one thread or many: same bytes");
    cr_assert_str_neq(ha, hc, "another seed, other weights");
    free(dir);
}

Test(model_cli, init_type_fallbacks)
{
    char *dir = tw_test_tmpdir();
    char path[512];
    struct {
        tw_type type;
        tw_type want;
    } cases[] = {
        {TW_TYPE_Q4_K, TW_TYPE_Q5_0}, {TW_TYPE_Q5_K, TW_TYPE_Q5_1}, {TW_TYPE_Q6_K, TW_TYPE_Q8_0},
        {TW_TYPE_Q4_1, TW_TYPE_Q4_1}, {TW_TYPE_BF16, TW_TYPE_BF16}, {TW_TYPE_Q5_1, TW_TYPE_Q5_1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(path, sizeof path, "%s/t%zu.gguf", dir, k);
        tw_model_init_info info;
        init_lib("llama", cases[k].type, 3, path, &info);
        /* tiny: every 2-D row (64 or 128 elements) is shorter than a 256-element k-quant block */
        bool kq = tw_type_get(cases[k].type)->block == 256;
        cr_assert_eq(info.n_fallback, kq ? 2 + 2 * 7 : 0, "%s", tw_type_get(cases[k].type)->name);
        tw_gguf *g;
        tw_error e;
        cr_assert_eq(tw_gguf_open(&g, path, &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_gguf_tensor_find(g, "blk.0.attn_q.weight")->type, cases[k].want);
        cr_assert_eq(tw_gguf_tensor_find(g, "blk.0.attn_norm.weight")->type, TW_TYPE_F32, "1-D tensors stay f32");
        double mean, std;
        tensor_stats(tw_gguf_tensor_find(g, "blk.1.ffn_up.weight"), &mean, &std);
        cr_assert(fabs(std - 0.02) < 0.003, "%s: std %g after quantization", tw_type_get(cases[k].type)->name, std);
        tw_gguf_free(g);
    }
    /* a real shape where the k-quant fits: smollm2's ffn_down rows are 1536 = 6 x 256 */
    tw_model_init_params p = tw_model_init_default_params();
    p.like = "nope";
    tw_error e;
    cr_assert_eq(tw_model_init(&p, path, NULL, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "unknown model shape 'nope' (known: smollm2-135m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b, tiny)"), "%s", e.msg);
    p.like = "tiny";
    p.type = TW_TYPE_Q2_K;
    cr_assert_eq(tw_model_init(&p, path, NULL, &e), TW_ERR_UNSUPPORTED);
    cr_assert(strstr(e.msg, "cannot write weights of type q2_k"), "%s", e.msg);
    free(dir);
}

Test(model_cli, shape_table_is_consistent)
{
    for (int i = 0; i < tw_model_shape_count(); i++) {
        const tw_model_shape *s = tw_model_shape_at(i);
        tw_error e;
        cr_assert_eq(tw_model_config_validate(&s->cfg, s->name, &e), TW_OK, "%s", e.msg);
    }
    cr_assert_null(tw_model_shape_at(tw_model_shape_count()));
    const tw_model_config *c = &tw_model_shape_find("smollm2-135m")->cfg;
    /* the numbers of ../shared/models/smollm2-135m/config.json */
    char p[512];
    snprintf(p, sizeof p, "%s/models/smollm2-135m/config.json", tw_test_shared());
    tw_model_config h;
    tw_error e;
    cr_assert_eq(tw_model_config_from_hf(&h, p, &e), TW_OK, "%s", e.msg);
    cr_assert(h.n_layer == c->n_layer && h.n_embd == c->n_embd && h.n_head == c->n_head && h.n_head_kv == c->n_head_kv);
    cr_assert(h.n_ff == c->n_ff && h.n_vocab == c->n_vocab && h.n_ctx_train == c->n_ctx_train && h.head_dim == c->head_dim);
    cr_assert(h.rope_freq_base == c->rope_freq_base && h.rms_eps == c->rms_eps && h.tied_embeddings == c->tied_embeddings);
    cr_assert_eq(tw_model_config_n_params(c), 134515008ull, "the parameter count of the real SmolLM2-135M file");
    const tw_model_config *l = &tw_model_shape_find("llama-3.2-1b")->cfg;
    cr_assert_eq(tw_model_config_n_params(l), 1235814400ull, "Llama 3.2 1B: 1.24 B parameters");
    /* llama3 rope factors of Llama 3.2: 1 for high frequencies, 32 for low ones */
    tw_model_config r = *l;
    r.rope_scale = 32.0f;
    r.rope_low_freq_factor = 1.0f;
    r.rope_high_freq_factor = 4.0f;
    r.rope_orig_ctx = 8192;
    float f[32];
    tw_rope_llama3_factors(&r, f);
    cr_assert(f[0] == 1.0f && f[31] == 32.0f);
    for (int i = 1; i < 32; i++) cr_assert(f[i] >= f[i - 1], "factors grow with the wavelength");
}

/* ---- tokenizer.json -> GGUF ---------------------------------------------------------- */
static tw_gguf *convert(const char *tokenizer_json, int64_t pad, tw_tokenizer_gguf_info *info, char **path_out)
{
    char *dir = tw_test_tmpdir();
    char *path = malloc(600);
    snprintf(path, 600, "%s/tok.gguf", dir);
    free(dir);
    tw_gguf_writer *w;
    tw_error e;
    cr_assert_eq(tw_gguf_writer_new(&w, &e), TW_OK);
    cr_assert_eq(tw_tokenizer_json_to_gguf(w, tokenizer_json, NULL, pad, info, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_gguf_writer_write(w, path, &e), TW_OK, "%s", e.msg);
    tw_gguf_writer_free(w);
    tw_gguf *g;
    cr_assert_eq(tw_gguf_open(&g, path, &e), TW_OK, "%s", e.msg);
    *path_out = path;
    return g;
}

static void same_array(const tw_gguf *a, const tw_gguf *b, const char *key)
{
    tw_gguf_array x, y;
    tw_error e;
    cr_assert_eq(tw_gguf_get_arr(a, key, TW_GGUF_VTYPE_COUNT, &x, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_gguf_get_arr(b, key, TW_GGUF_VTYPE_COUNT, &y, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(x.type, y.type, "%s", key);
    cr_assert_eq(x.n, y.n, "%s: %llu vs %llu", key, (unsigned long long)x.n, (unsigned long long)y.n);
    for (uint64_t i = 0; i < x.n; i++) {
        if (x.type == TW_GGUF_STRING) {
            tw_gguf_str s = tw_gguf_arr_str(a, &x, i), t = tw_gguf_arr_str(b, &y, i);
            cr_assert(s.len == t.len && memcmp(s.ptr, t.ptr, s.len) == 0, "%s[%llu]: '%.*s' vs '%.*s'", key,
                      (unsigned long long)i, (int)s.len, s.ptr, (int)t.len, t.ptr);
        } else {
            cr_assert_eq(tw_gguf_arr_int(&x, i), tw_gguf_arr_int(&y, i), "%s[%llu]", key, (unsigned long long)i);
        }
    }
}

Test(model_cli, tokenizer_conversion_matches_llama_cpp_on_smollm2)
{
    require_smollm2();
    char p[512], *path;
    snprintf(p, sizeof p, "%s/models/smollm2-135m/tokenizer.json", tw_test_shared());
    tw_tokenizer_gguf_info info;
    tw_gguf *ours = convert(p, 0, &info, &path);
    tw_gguf *real;
    tw_error e;
    cr_assert_eq(tw_gguf_open(&real, smollm2_path(), &e), TW_OK, "%s", e.msg);
    /* llama.cpp's convert_hf_to_gguf.py wrote the real file from the same tokenizer.json */
    same_array(ours, real, "tokenizer.ggml.tokens");
    same_array(ours, real, "tokenizer.ggml.token_type");
    same_array(ours, real, "tokenizer.ggml.merges");
    const char *keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre"};
    for (int i = 0; i < 2; i++) {
        tw_gguf_str a, b;
        cr_assert_eq(tw_gguf_get_str(ours, keys[i], &a, &e), TW_OK);
        cr_assert_eq(tw_gguf_get_str(real, keys[i], &b, &e), TW_OK);
        cr_assert(a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0, "%s", keys[i]);
    }
    const char *ids[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id"};
    for (int i = 0; i < 3; i++) cr_assert_eq(tw_gguf_int_or(ours, ids[i], -1), tw_gguf_int_or(real, ids[i], -2), "%s", ids[i]);
    cr_assert_eq(tw_gguf_bool_or(ours, "tokenizer.ggml.add_space_prefix", true),
                 tw_gguf_bool_or(real, "tokenizer.ggml.add_space_prefix", true));
    cr_assert(strcmp(info.model, "gpt2") == 0 && strcmp(info.pre, "smollm") == 0 && info.n_tokens == 49152 && info.n_merges == 48900);
    tw_gguf_free(ours);
    tw_gguf_free(real);
    unlink(path);
    free(path);
    /* and through the CLI, embedded into a model */
    char *dir = tw_test_tmpdir(), cmd[2048], *out, *err;
    snprintf(cmd, sizeof cmd, "model init --like tiny --type q8_0 --tokenizer %s -o %s/m.gguf", p, dir);
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "vocab 49152") && strstr(out, "tokenizer gpt2 (pre smollm): 49152 tokens, 48900 merges, bos 1, eos 2"),
              "%s", out);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model info %s/m.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "tokenizer   gpt2 (pre smollm), 49152 tokens, 48900 merges, bos 1 '<|im_start|>', eos 2 '<|im_end|>'"),
              "%s", out);
    free(out);
    free(err);
    free(dir);
}

Test(model_cli, tokenizer_conversion_sentencepiece_llama2)
{
    char p[512], *path;
    snprintf(p, sizeof p, "%s/models/tokenizers/llama2/tokenizer.json", tw_test_shared());
    tw_tokenizer_gguf_info info;
    tw_gguf *g = convert(p, 0, &info, &path);
    tw_error e;
    cr_assert(strcmp(info.model, "llama") == 0 && strcmp(info.pre, "default") == 0 && info.n_tokens == 32000);
    tw_gguf_array tok, ty, sc;
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.tokens", TW_GGUF_STRING, &tok, &e), TW_OK);
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.token_type", TW_GGUF_INT32, &ty, &e), TW_OK);
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.scores", TW_GGUF_FLOAT32, &sc, &e), TW_OK);
    cr_assert(tok.n == 32000 && ty.n == 32000 && sc.n == 32000);
    /* the token types of a SentencePiece llama vocabulary, as in stories260K / llama.cpp */
    const int32_t *t = ty.data;
    cr_assert(t[0] == 2 && t[1] == 3 && t[2] == 3, "<unk> UNKNOWN, <s> </s> CONTROL");
    cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, 3), "<0x00>") && t[3] == 6 && t[258] == 6, "byte tokens");
    cr_assert_eq(t[259], 1);
    /* scores order the merges: '▁t' is merge 0, 'in' merge 1 */
    const float *s = sc.data;
    int64_t id_t = -1, id_in = -1;
    for (uint64_t i = 0; i < tok.n; i++) {
        if (tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, i), "\xe2\x96\x81t")) id_t = (int64_t)i;
        if (tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, i), "in")) id_in = (int64_t)i;
    }
    cr_assert(id_t > 0 && id_in > 0);
    cr_assert(s[id_t] == 0.0f && s[id_in] == -1.0f, "%g %g", (double)s[id_t], (double)s[id_in]);
    cr_assert(s[0] == 0.0f && s[3] == 0.0f, "special and byte tokens score 0");
    for (int i = 259; i < 32000; i++) cr_assert(s[i] <= 0.0f);
    cr_assert_eq(tw_gguf_int_or(g, "tokenizer.ggml.bos_token_id", -1), 1);
    cr_assert_eq(tw_gguf_int_or(g, "tokenizer.ggml.eos_token_id", -1), 2);
    cr_assert_eq(tw_gguf_int_or(g, "tokenizer.ggml.unknown_token_id", -1), 0);
    cr_assert(tw_gguf_bool_or(g, "tokenizer.ggml.add_bos_token", false));
    cr_assert(!tw_gguf_bool_or(g, "tokenizer.ggml.add_eos_token", true));
    cr_assert(tw_gguf_bool_or(g, "tokenizer.ggml.add_space_prefix", false), "Prepend '▁' normalizer");
    cr_assert_eq(tw_gguf_find_key(g, "tokenizer.chat_template"), -1);
    tw_gguf_free(g);
    unlink(path);
    free(path);
}

Test(model_cli, tokenizer_conversion_qwen3_and_llama3)
{
    char p[512], *path;
    snprintf(p, sizeof p, "%s/models/tokenizers/qwen3/tokenizer.json", tw_test_shared());
    tw_tokenizer_gguf_info info;
    tw_gguf *g = convert(p, 151936, &info, &path);
    tw_error e;
    cr_assert(strcmp(info.model, "gpt2") == 0 && strcmp(info.pre, "qwen2") == 0 && info.n_tokens == 151936);
    tw_gguf_array tok, ty, mg;
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.tokens", TW_GGUF_STRING, &tok, &e), TW_OK);
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.token_type", TW_GGUF_INT32, &ty, &e), TW_OK);
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.merges", TW_GGUF_STRING, &mg, &e), TW_OK);
    cr_assert_eq(tok.n, 151936);
    cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, 151645), "<|im_end|>") && ((const int32_t *)ty.data)[151645] == 3);
    cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, 151668), "</think>") && ((const int32_t *)ty.data)[151668] == 4,
              "a non-special added token is USER_DEFINED");
    cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, 151669), "[PAD151669]") && ((const int32_t *)ty.data)[151669] == 5);
    cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &tok, 151935), "[PAD151935]"));
    cr_assert(tw_gguf_str_eq(tw_gguf_arr_str(g, &mg, 0), "\xc4\xa0 \xc4\xa0"), "[a, b] merges joined by a space");
    cr_assert_eq(mg.n, 151387);
    cr_assert_eq(tw_gguf_int_or(g, "tokenizer.ggml.eos_token_id", -1), 151645, "tokenizer_config eos_token <|im_end|>");
    cr_assert_eq(tw_gguf_int_or(g, "tokenizer.ggml.padding_token_id", -1), 151643);
    cr_assert_eq(tw_gguf_find_key(g, "tokenizer.ggml.bos_token_id"), -1, "Qwen3 has no bos_token");
    cr_assert(!tw_gguf_bool_or(g, "tokenizer.ggml.add_bos_token", true));
    tw_gguf_str s;
    cr_assert_eq(tw_gguf_get_str(g, "tokenizer.chat_template", &s, &e), TW_OK);
    cr_assert(s.len > 1000 && memcmp(s.ptr, "{%- if tools %}", 15) == 0);
    tw_gguf_free(g);
    unlink(path);
    free(path);

    snprintf(p, sizeof p, "%s/models/tokenizers/llama3/tokenizer.json", tw_test_shared());
    g = convert(p, 0, &info, &path);
    cr_assert(strcmp(info.model, "gpt2") == 0 && strcmp(info.pre, "llama-bpe") == 0 && info.n_tokens == 128256);
    cr_assert(info.bos_id == 128000 && info.eos_id == 128001 && info.chat_template);
    cr_assert_eq(tw_gguf_get_arr(g, "tokenizer.ggml.token_type", TW_GGUF_INT32, &ty, &e), TW_OK);
    cr_assert(((const int32_t *)ty.data)[127999] == 1 && ((const int32_t *)ty.data)[128000] == 3);
    tw_gguf_free(g);
    unlink(path);
    free(path);

    /* errors */
    tw_gguf_writer *w;
    cr_assert_eq(tw_gguf_writer_new(&w, &e), TW_OK);
    cr_assert_eq(tw_tokenizer_json_to_gguf(w, "/nonexistent/tokenizer.json", NULL, 0, NULL, &e), TW_ERR_IO);
    char *dir = tw_test_tmpdir();
    char *bad = tw_test_write(dir, "tokenizer.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    cr_assert_eq(tw_tokenizer_json_to_gguf(w, bad, NULL, 0, NULL, &e), TW_ERR_UNSUPPORTED);
    cr_assert(strstr(e.msg, "tokenizer model type 'Unigram' is not supported"), "%s", e.msg);
    free(bad);
    bad = tw_test_write(dir, "tokenizer.json",
                        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []},"
                        " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    cr_assert_eq(tw_tokenizer_json_to_gguf(w, bad, NULL, 0, NULL, &e), TW_ERR_PARSE);
    cr_assert(strstr(e.msg, "model.vocab: id 0 is used by both"), "%s", e.msg);
    free(bad);
    tw_gguf_writer_free(w);
    free(dir);
}

/* ---- model info ---------------------------------------------------------------------- */
Test(model_cli, info_on_real_files_and_folders)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "model info --json %s/models/stories260K/stories260K.gguf", tw_test_shared());
    json_t *j = run_json(cmd);
    cr_assert_str_eq(json_string_value(json_object_get(j, "architecture")), "llama");
    json_t *c = json_object_get(j, "config");
    cr_assert_eq(json_integer_value(json_object_get(c, "n_layer")), 5);
    cr_assert_eq(json_integer_value(json_object_get(c, "n_embd")), 64);
    cr_assert_eq(json_integer_value(json_object_get(c, "n_head_kv")), 4);
    cr_assert_eq(json_integer_value(json_object_get(j, "n_params")), 292800);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(json_object_get(j, "tensors"), "types"), "f32"), "count")), 48);
    json_t *tk = json_object_get(j, "tokenizer");
    cr_assert_str_eq(json_string_value(json_object_get(tk, "model")), "llama");
    cr_assert_eq(json_integer_value(json_object_get(tk, "n_tokens")), 512);
    json_t *mem = json_object_get(j, "memory");
    cr_assert_eq(json_integer_value(json_object_get(mem, "kv_cache_bytes_per_1k_f16")), 2 * 5 * 4 * 8 * 1024 * 2);
    cr_assert_eq(json_integer_value(json_object_get(mem, "file_bytes")), 1185376);
    cr_assert_str_eq(json_string_value(json_object_get(j, "check")), "ok");
    cr_assert(json_is_false(json_object_get(json_object_get(j, "chat_template"), "present")));
    json_decref(j);

    char *out, *err;
    snprintf(cmd, sizeof cmd, "model info %s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert_eq(run(cmd, &out, &err), 0);
    cr_assert(strstr(out, "arch        llama: 5 layers, embd 64, 8 heads (4 KV, head size 8), ffn 172, vocab 512"), "%s", out);
    cr_assert(strstr(out, "tensors     48: f32 x48 (1.1 MiB)"), "%s", out);
    cr_assert(strstr(out, "tokenizer   llama, 512 tokens, 0 merges, bos 1 '<s>', eos 2 '</s>'"), "%s", out);
    cr_assert(strstr(out, "KV cache per 1k tokens 640.0 KiB (f16) / 1.2 MiB (f32)"), "%s", out);
    free(out);
    free(err);

    j = run_json("model info --json tests/data/model/hf_tiny");
    cr_assert_str_eq(json_string_value(json_object_get(j, "format")), "safetensors");
    cr_assert_eq(json_integer_value(json_object_get(j, "n_params")), 2 * 300 * 32 + 32 + 2 * (32 + 32 * 32 + 2 * 32 * 16 + 32 * 32 + 32 + 3 * 32 * 64));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "config"), "rope_type")), "neox");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "config"), "rope_scaling")), "llama3");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "tokenizer"), "n_tokens")), 300);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "chat_template"), "first_line")),
                     "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(json_object_get(j, "tensors"), "types"), "bf16"), "count")), 21);
    cr_assert_str_eq(json_string_value(json_object_get(j, "check")), "ok");
    json_decref(j);
    j = run_json("model info --json tests/data/model/hf_tiny_sharded");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "tensors"), "count")), 22);
    json_decref(j);

    require_smollm2();
    snprintf(cmd, sizeof cmd, "model info --json %s", smollm2_path());
    j = run_json(cmd);
    cr_assert_eq(json_integer_value(json_object_get(j, "n_params")), 134515008);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "config"), "n_vocab")), 49152);
    cr_assert(json_is_true(json_object_get(json_object_get(j, "config"), "tied_embeddings")));
    json_t *ty = json_object_get(json_object_get(j, "tensors"), "types");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ty, "q4_1"), "count")), 210);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ty, "q8_0"), "count")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(ty, "f32"), "count")), 61);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "tokenizer"), "pre")), "smollm");
    const char *fl = json_string_value(json_object_get(json_object_get(j, "chat_template"), "first_line"));
    cr_assert(fl && strncmp(fl, "{% for message in messages %}", 29) == 0, "%s", fl);
    json_decref(j);
}

Test(model_cli, info_and_init_errors)
{
    char *out, *err;
    cr_assert_eq(run("model info /nonexistent/m.gguf", &out, &err), 2);
    cr_assert(strstr(err, "/nonexistent/m.gguf: cannot open"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(run("model info tests/data/model/st_small.safetensors", &out, &err), 2);
    cr_assert(strstr(err, "offset 0: expected the magic \"GGUF\""), "%s", err);
    free(out);
    free(err);
    /* a truncated GGUF */
    char *dir = tw_test_tmpdir(), cmd[2048];
    snprintf(cmd, sizeof cmd, "head -c 1000 tests/data/model/gguf_py_small.gguf > %s/trunc.gguf", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "model info %s/trunc.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "trunc.gguf: offset ") && strstr(err, "truncated"), "%s", err);
    free(out);
    free(err);
    /* a valid GGUF of an architecture we do not run: described, with the reason */
    snprintf(cmd, sizeof cmd, "model info %s", "tests/data/model/gguf_py_small.gguf");
    cr_assert_eq(run(cmd, &out, &err), 0, "gguf_py_small says llama but has no llama keys: described anyway");
    cr_assert(strstr(out, "arch        llama (") && strstr(out, "key 'llama.block_count': missing"), "%s", out);
    cr_assert(strstr(out, "tensors     6:"), "%s", out);
    free(out);
    free(err);
    tw_gguf_writer *w;
    tw_error e;
    cr_assert_eq(tw_gguf_writer_new(&w, &e), TW_OK);
    cr_assert_eq(tw_gguf_writer_set_str(w, "general.architecture", "mamba", (size_t)-1, &e), TW_OK);
    snprintf(cmd, sizeof cmd, "%s/mamba.gguf", dir);
    cr_assert_eq(tw_gguf_writer_write(w, cmd, &e), TW_OK);
    tw_gguf_writer_free(w);
    snprintf(cmd, sizeof cmd, "model info %s/mamba.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "arch        mamba (") && strstr(out, "architecture 'mamba' is not supported"), "%s", out);
    free(out);
    free(err);

    cr_assert_eq(run("model init --like tiny", &out, &err), 2);
    cr_assert(strstr(err, "missing --out FILE"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model init --like bogus -o %s/x.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "unknown --like 'bogus'"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model init --arch gpt2 -o %s/x.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "unknown --arch 'gpt2'"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model init --type q9_9 -o %s/x.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "unknown --type 'q9_9'"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model init --type q3_k -o %s/x.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "cannot write weights of type q3_k"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model init --vocab 100 --tokenizer tests/data/model/hf_tiny/tokenizer.json -o %s/x.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "--vocab 100 is smaller than the tokenizer's 300 tokens"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "model init --tokenizer /nonexistent/tokenizer.json -o %s/x.gguf", dir);
    cr_assert_eq(run(cmd, &out, &err), 2);
    cr_assert(strstr(err, "/nonexistent/tokenizer.json"), "%s", err);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "%s/x.gguf", dir);
    cr_assert(!tw_file_exists(cmd), "failed runs leave no output file");
    /* --json output of a successful run */
    snprintf(cmd, sizeof cmd, "model init --json --like tiny --arch qwen2 --type q8_0 --seed 3 -o %s/y.gguf", dir);
    json_t *j = run_json(cmd);
    cr_assert_eq(json_integer_value(json_object_get(j, "n_tensors")), 27);
    cr_assert_str_eq(json_string_value(json_object_get(j, "architecture")), "qwen2");
    cr_assert_eq(json_integer_value(json_object_get(j, "n_fallback")), 0);
    json_decref(j);
    free(dir);
}
