/* test_lora.c — LoRA adapters (src/model/lora.h) against the real tools:
 *
 *  - PEFT (tests/ref/gen_lora_fixtures.py): adapters saved by peft's save_pretrained on the
 *    tiny llama / qwen2 HF models of tests/data/llama, and the logits transformers + peft
 *    give with the adapter active. Checked end to end: the adapter is merged
 *    (tw_lora_merge) into the base weights, the merged model written as a HF folder and
 *    as a GGUF (llama Q/K rows permuted as llama.cpp's converter does) and run by
 *    tw_llama (exact-float matmuls); logits within 1e-4 x max |logit| (the tolerance of
 *    test_llama.c's HF comparison).
 *  - llama.cpp's convert_lora_to_gguf.py on the same adapters: our PEFT -> GGUF conversion
 *    gives the same keys, tensor names, dims, types and bitwise equal values (F32; the
 *    Q/K lora_b permutation included), and reading llama.cpp's file back to PEFT gives
 *    PEFT's values bitwise.
 *  - llama.cpp itself (llama-cpp-python) running the base with that adapter at lora_scale 1
 *    and 0.5: the merged model at user scale 0.5 gives its logits (the scale rule).
 *  - Round trips of our own writers are bitwise (F32, F16, BF16), malformed adapters fail
 *    with errors naming the file and tensor, and apply / merge match double references.
 */
#include "testutil.h"

#include "base/base.h"
#include "model/config.h"
#include "model/gguf.h"
#include "model/llama.h"
#include "model/lora.h"
#include "model/quant.h"
#include "model/safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>

#define LDIR "tests/data/lora/"
#define MDIR "tests/data/llama/"

/* ---- helpers ------------------------------------------------------------------------- */

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s:%d: %s", path, je.line, je.text);
    return j;
}

static char *pjoin(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void rm_rf(char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
    free(dir);
}

static char *read_all(const char *path, size_t *len)
{
    char *d;
    tw_error err;
    cr_assert_eq(tw_file_read(path, &d, len, &err), TW_OK, "%s", err.msg);
    return d;
}

static bool same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *da = read_all(a, &la), *db = read_all(b, &lb);
    bool same = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return same;
}

static const tw_model_config *model_cfg(tw_model_files **mf, const char *name)
{
    tw_error err;
    char path[256];
    snprintf(path, sizeof path, MDIR "%s", name);
    cr_assert_eq(tw_model_files_open(mf, path, &err), TW_OK, "%s", err.msg);
    return tw_model_files_config(*mf);
}

static tw_lora *read_peft(const char *dir, const tw_model_config *cfg)
{
    tw_lora *l = NULL;
    tw_error err;
    cr_assert_eq(tw_lora_read_peft(&l, dir, cfg, &err), TW_OK, "%s", err.msg);
    return l;
}

static tw_lora *read_gguf(const char *path)
{
    tw_lora *l = NULL;
    tw_error err;
    cr_assert_eq(tw_lora_read_gguf(&l, path, &err), TW_OK, "%s", err.msg);
    return l;
}

/* Expect an error of status st whose message contains every one of the NULL-terminated
 * fragments. */
static void expect_err(tw_status got, const tw_error *err, tw_status st, const char *frag1, const char *frag2)
{
    cr_assert_eq(got, st, "expected status %d, got %d: %s", st, got, got ? err->msg : "(ok)");
    cr_expect_not_null(strstr(err->msg, frag1), "error '%s' lacks '%s'", err->msg, frag1);
    if (frag2) cr_expect_not_null(strstr(err->msg, frag2), "error '%s' lacks '%s'", err->msg, frag2);
}

/* A safetensors file from n tensors (F32 unless dtype given), written by hand. */
typedef struct st_item {
    const char *name;
    const char *dtype;     /* NULL: F32 */
    int64_t shape[2];
    int ndim;
    const void *data;
    size_t nbytes;
} st_item;

static void st_write(const char *path, const st_item *it, int n)
{
    tw_buf h = {0};
    tw_buf_puts(&h, "{");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        tw_buf_printf(&h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "", it[i].name,
                      it[i].dtype ? it[i].dtype : "F32");
        for (int d = 0; d < it[i].ndim; d++) tw_buf_printf(&h, "%s%lld", d ? "," : "", (long long)it[i].shape[d]);
        tw_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + it[i].nbytes));
        off += it[i].nbytes;
    }
    tw_buf_puts(&h, "}");
    while (h.len % 8) tw_buf_putc(&h, ' ');
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    uint64_t hl = h.len;
    uint8_t le[8];
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(hl >> (8 * k));
    fwrite(le, 1, 8, f);
    fwrite(h.data, 1, h.len, f);
    for (int i = 0; i < n; i++) fwrite(it[i].data, 1, it[i].nbytes, f);
    fclose(f);
    tw_buf_free(&h);
}

/* ---- names, targets, new adapters ------------------------------------------------------- */

Test(lora, targets_and_names)
{
    unsigned m = 0;
    cr_assert(tw_lora_targets_parse("q,v", &m));
    cr_assert_eq(m, (unsigned)(TW_LORA_Q | TW_LORA_V));
    cr_assert(tw_lora_targets_parse("all", &m));
    cr_assert_eq(m, (unsigned)TW_LORA_ALL);
    cr_assert(tw_lora_targets_parse("gate,up,down,o,k", &m));
    cr_assert_eq(m, (unsigned)(TW_LORA_GATE | TW_LORA_UP | TW_LORA_DOWN | TW_LORA_O | TW_LORA_K));
    cr_assert_not(tw_lora_targets_parse("q,x", &m));
    cr_assert_not(tw_lora_targets_parse("q,", &m));
    cr_assert_not(tw_lora_targets_parse("", &m));
    cr_assert_str_eq(tw_lora_target_name(TW_LORA_DOWN), "down");
}

Test(lora, new_adapter_shapes_init_and_lookup)
{
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, "qwen2_tiny");
    tw_lora *l = NULL;
    tw_error err;
    cr_assert_eq(tw_lora_new(&l, c, TW_LORA_Q | TW_LORA_K | TW_LORA_DOWN, 4, 8.0f, TW_LORA_ROWS_HF, &err), TW_OK, "%s",
                 err.msg);
    cr_assert_eq(l->n, 3 * c->n_layer);
    const tw_lora_weight *k = tw_lora_find(l, "blk.1.attn_k.weight");
    cr_assert_not_null(k);
    cr_assert_eq(k->n_in, c->n_embd);
    cr_assert_eq(k->n_out, (int64_t)c->n_head_kv * c->head_dim);
    const tw_lora_weight *d = tw_lora_find(l, "blk.0.ffn_down.weight");
    cr_assert_eq(d->n_in, c->n_ff);
    cr_assert_eq(d->n_out, c->n_embd);
    cr_assert_null(tw_lora_find(l, "blk.0.attn_v.weight"));
    cr_assert_null(tw_lora_find(l, "blk.9.attn_q.weight"));
    cr_assert_null(tw_lora_find(l, "blk.01.attn_q.weight"));
    cr_assert_float_eq(tw_lora_scale(l, k, 1.0f), 2.0f, 0);
    cr_assert_float_eq(tw_lora_scale(l, k, 0.5f), 1.0f, 0);
    tw_lora_init_peft(l, 7);
    double bound = 1.0 / sqrt((double)d->n_in), mx = 0, sum = 0;
    for (int64_t i = 0; i < d->rank * d->n_in; i++) {
        mx = fmax(mx, fabs(d->a[i]));
        sum += d->a[i];
    }
    cr_assert_leq(mx, bound);
    cr_assert_geq(mx, 0.9 * bound, "uniform init should come close to its bound");
    for (int64_t i = 0; i < d->rank * d->n_out; i++) cr_assert_eq(d->b[i], 0.0f);
    /* the same seed gives the same A; another seed another one */
    float a0 = d->a[5];
    tw_lora_init_peft(l, 7);
    cr_assert_eq(d->a[5], a0);
    tw_lora_init_peft(l, 8);
    cr_assert_neq(d->a[5], a0);
    /* zero alpha: llama.cpp's "no alpha" rule, the scale is the user's */
    l->alpha = 0;
    cr_assert_float_eq(tw_lora_scale(l, k, 0.75f), 0.75f, 0);
    tw_lora *bad = (tw_lora *)1;
    expect_err(tw_lora_new(&bad, c, 0, 4, 8, TW_LORA_ROWS_HF, &err), &err, TW_ERR_INVALID, "targets", NULL);
    expect_err(tw_lora_new(&bad, c, TW_LORA_Q, 0, 8, TW_LORA_ROWS_HF, &err), &err, TW_ERR_INVALID, "rank 0", NULL);
    cr_assert_null(bad);
    tw_lora_free(l);
    tw_lora_free(NULL);
    tw_model_files_free(mf);
}

/* ---- reading PEFT; agreement with llama.cpp's converter ---------------------------------- */

Test(lora, read_peft_matches_safetensors)
{
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, "llama_tiny");
    tw_lora *l = read_peft(LDIR "llama_tiny_peft", c);
    cr_assert_eq(l->n, 7 * c->n_layer);
    cr_assert_eq(l->arch, TW_ARCH_LLAMA);
    cr_assert_eq(l->rows, TW_LORA_ROWS_HF);
    cr_assert_float_eq(l->alpha, 8.0f, 0);
    cr_assert_str_eq(l->base_model, "tests/data/llama/llama_tiny");
    cr_assert_eq(tw_lora_targets(l), (unsigned)TW_LORA_ALL);
    /* values straight from the file */
    tw_safetensors *sf;
    tw_error err;
    cr_assert_eq(tw_st_open(&sf, LDIR "llama_tiny_peft/adapter_model.safetensors", &err), TW_OK, "%s", err.msg);
    const tw_st_tensor *tb = tw_st_tensor_find(sf, "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight");
    cr_assert_not_null(tb);
    const tw_lora_weight *w = tw_lora_find(l, "blk.1.ffn_up.weight");
    cr_assert_eq(w->rank, 4);
    cr_assert_eq(w->n_out, tb->shape[0]);
    cr_assert_eq(memcmp(w->b, tb->data, (size_t)(w->n_out * w->rank) * 4), 0);
    cr_assert_float_eq(tw_lora_scale(l, w, 1.0f), 2.0f, 0);
    bool nonzero = false;
    for (int64_t i = 0; i < w->n_out * w->rank; i++) nonzero |= w->b[i] != 0;
    cr_assert(nonzero, "the fixture's B must be non-zero");
    tw_st_free(sf);
    tw_lora_free(l);
    tw_model_files_free(mf);
}

/* Our PEFT -> GGUF against llama.cpp's convert_lora_to_gguf.py output. */
static void check_against_llamacpp(json_t *mod)
{
    const char *name = json_string_value(json_object_get(mod, "name"));
    json_t *lc = json_object_get(mod, "llamacpp");
    const char *ref_path = json_string_value(json_object_get(lc, "gguf"));
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, name);
    tw_lora *l = read_peft(json_string_value(json_object_get(mod, "peft_dir")), c);
    char *tmp = tw_test_tmpdir(), *out = pjoin(tmp, "ours.gguf");
    tw_error err;
    cr_assert_eq(tw_lora_write_gguf(l, out, NULL, &err), TW_OK, "%s", err.msg);
    tw_gguf *ours, *ref;
    cr_assert_eq(tw_gguf_open(&ours, out, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_gguf_open(&ref, ref_path, &err), TW_OK, "%s", err.msg);
    /* the keys llama.cpp's loader reads */
    const char *keys[] = {"general.architecture", "general.type", "adapter.type"};
    for (int i = 0; i < 3; i++) {
        char a[64], b[64];
        cr_assert(tw_gguf_str_copy(ref, keys[i], b, sizeof b), "%s", keys[i]);
        cr_assert(tw_gguf_str_copy(ours, keys[i], a, sizeof a), "%s", keys[i]);
        cr_assert_str_eq(a, b, "%s: key %s", name, keys[i]);
    }
    double aa, ab;
    cr_assert_eq(tw_gguf_get_float(ours, "adapter.lora.alpha", &aa, &err), TW_OK);
    cr_assert_eq(tw_gguf_get_float(ref, "adapter.lora.alpha", &ab, &err), TW_OK);
    cr_assert_eq(aa, ab);
    cr_assert_eq(aa, json_number_value(json_object_get(mod, "alpha")));
    /* same tensor set, dims, types, and bitwise values */
    cr_assert_eq(tw_gguf_tensor_count(ours), tw_gguf_tensor_count(ref));
    cr_assert_eq(tw_gguf_tensor_count(ref), (int64_t)json_array_size(json_object_get(lc, "tensors")));
    int n_perm = 0;
    for (int64_t i = 0; i < tw_gguf_tensor_count(ref); i++) {
        const tw_gguf_tensor *r = tw_gguf_tensor_at(ref, i);
        const tw_gguf_tensor *o = tw_gguf_tensor_find(ours, r->name);
        cr_assert_not_null(o, "%s: llama.cpp has '%s', we do not", name, r->name);
        cr_assert_eq(o->n_dims, r->n_dims, "%s", r->name);
        cr_assert_eq(o->ne[0], r->ne[0], "%s", r->name);
        cr_assert_eq(o->ne[1], r->ne[1], "%s", r->name);
        cr_assert_eq(o->type, r->type, "%s", r->name);
        cr_assert_eq(memcmp(o->data, r->data, r->nbytes), 0, "%s: %s differs from llama.cpp's", name, r->name);
        n_perm += strstr(r->name, "attn_q.weight.lora_b") || strstr(r->name, "attn_k.weight.lora_b");
    }
    cr_assert_geq(n_perm, 2);
    /* llama: the permuted lora_b really differ from the PEFT rows (the check has teeth) */
    if (c->arch == TW_ARCH_LLAMA) {
        const tw_gguf_tensor *r = tw_gguf_tensor_find(ref, "blk.0.attn_q.weight.lora_b");
        const tw_lora_weight *w = tw_lora_find(l, "blk.0.attn_q.weight");
        cr_assert_neq(memcmp(r->data, w->b, r->nbytes), 0);
    }
    cr_log_info("%s: %lld tensors equal to llama.cpp's converter output", name, (long long)tw_gguf_tensor_count(ref));
    tw_gguf_free(ours);
    tw_gguf_free(ref);
    /* and back: llama.cpp's GGUF -> PEFT gives PEFT's own tensors bitwise */
    tw_lora *g = read_gguf(ref_path);
    cr_assert_eq(g->rows, TW_LORA_ROWS_GGUF);
    cr_assert_eq(g->arch, c->arch);
    cr_assert_eq(tw_lora_set_config(g, c, &err), TW_OK, "%s", err.msg);
    char *pdir = pjoin(tmp, "peft");
    cr_assert_eq(tw_lora_write_peft(g, pdir, NULL, &err), TW_OK, "%s", err.msg);
    tw_safetensors *a, *b;
    char *sp = pjoin(pdir, "adapter_model.safetensors"), *rp = pjoin(json_string_value(json_object_get(mod, "peft_dir")),
                                                                         "adapter_model.safetensors");
    cr_assert_eq(tw_st_open(&a, sp, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_st_open(&b, rp, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_st_tensor_count(a), tw_st_tensor_count(b));
    for (int64_t i = 0; i < tw_st_tensor_count(b); i++) {
        const tw_st_tensor *tb = tw_st_tensor_at(b, i), *ta = tw_st_tensor_find(a, tb->name);
        cr_assert_not_null(ta, "%s", tb->name);
        cr_assert_eq(ta->shape[0], tb->shape[0]);
        cr_assert_eq(ta->shape[1], tb->shape[1]);
        cr_assert_eq(ta->dtype, tb->dtype);
        cr_assert_eq(memcmp(ta->data, tb->data, tb->end - tb->begin), 0, "%s: %s", name, tb->name);
    }
    /* and our adapter_config.json says what PEFT's says */
    char *cp = pjoin(pdir, "adapter_config.json");
    json_t *j = load_json(cp), *pj;
    char *pcp = pjoin(json_string_value(json_object_get(mod, "peft_dir")), "adapter_config.json");
    pj = load_json(pcp);
    cr_assert_eq(json_integer_value(json_object_get(j, "r")), json_integer_value(json_object_get(pj, "r")));
    cr_assert_eq(json_number_value(json_object_get(j, "lora_alpha")), json_number_value(json_object_get(pj, "lora_alpha")));
    cr_assert_eq(json_array_size(json_object_get(j, "target_modules")),
                 json_array_size(json_object_get(pj, "target_modules")));
    json_decref(j);
    json_decref(pj);
    free(cp);
    free(pcp);
    tw_st_free(a);
    tw_st_free(b);
    free(sp);
    free(rp);
    free(pdir);
    tw_lora_free(g);
    tw_lora_free(l);
    free(out);
    rm_rf(tmp);
    tw_model_files_free(mf);
}

Test(lora, peft_to_gguf_matches_llama_cpp_converter)
{
    json_t *man = load_json(LDIR "lora_fixtures.json");
    json_t *models = json_object_get(man, "models");
    cr_assert_eq(json_array_size(models), 2);
    size_t i;
    json_t *mod;
    json_array_foreach(models, i, mod) check_against_llamacpp(mod);
    json_decref(man);
}

/* ---- round trips ------------------------------------------------------------------------- */

Test(lora, round_trips_are_bitwise)
{
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, "llama_tiny");
    char *tmp = tw_test_tmpdir();
    tw_error err;
    const tw_type types[] = {TW_TYPE_F32, TW_TYPE_F16, TW_TYPE_BF16};
    for (int ti = 0; ti < 3; ti++) {
        tw_lora_write_params p = tw_lora_default_write_params();
        p.type = types[ti];
        /* GGUF (ours, in this type) -> PEFT -> GGUF: the same bytes */
        tw_lora *l = read_gguf(LDIR "llama_tiny_llamacpp.gguf");
        char *g1 = pjoin(tmp, "a1.gguf"), *g2 = pjoin(tmp, "a2.gguf"), *p1 = pjoin(tmp, "p1"), *p2 = pjoin(tmp, "p2");
        cr_assert_eq(tw_lora_set_config(l, c, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(tw_lora_write_gguf(l, g1, &p, &err), TW_OK, "%s", err.msg);
        tw_lora *l1 = read_gguf(g1);
        cr_assert_eq(l1->w[0].src_type, types[ti]);
        cr_assert_eq(tw_lora_set_config(l1, c, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(tw_lora_write_peft(l1, p1, NULL, &err), TW_OK, "%s", err.msg);   /* type: as read */
        tw_lora *l2 = read_peft(p1, c);
        cr_assert_eq(l2->w[0].src_type, types[ti]);
        cr_assert_eq(tw_lora_write_gguf(l2, g2, NULL, &err), TW_OK, "%s", err.msg);
        cr_assert(same_file(g1, g2), "type %d: GGUF -> PEFT -> GGUF is not bitwise", ti);
        /* PEFT -> GGUF -> PEFT: the same safetensors and config */
        tw_lora *l3 = read_gguf(g2);
        cr_assert_eq(tw_lora_set_config(l3, c, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(tw_lora_write_peft(l3, p2, NULL, &err), TW_OK, "%s", err.msg);
        char *s1 = pjoin(p1, "adapter_model.safetensors"), *s2 = pjoin(p2, "adapter_model.safetensors");
        char *c1 = pjoin(p1, "adapter_config.json"), *c2 = pjoin(p2, "adapter_config.json");
        cr_assert(same_file(s1, s2), "type %d: PEFT -> GGUF -> PEFT safetensors not bitwise", ti);
        cr_assert(same_file(c1, c2), "type %d: adapter_config.json differs", ti);
        /* values: F32 exact; F16 / BF16 within their rounding of the F32 original */
        const tw_lora_weight *w0 = tw_lora_find(l, "blk.1.attn_q.weight"), *w3 = tw_lora_find(l3, "blk.1.attn_q.weight");
        double tol = ti == 0 ? 0 : ti == 1 ? 1.0 / 1024 : 1.0 / 128;
        for (int64_t i = 0; i < w0->n_out * w0->rank; i++)
            cr_assert_leq(fabs(w0->b[i] - w3->b[i]), tol * fabs(w0->b[i]) + 1e-7, "type %d b[%lld]", ti, (long long)i);
        free(s1); free(s2); free(c1); free(c2);
        free(g1); free(g2); free(p1); free(p2);
        tw_lora_free(l);
        tw_lora_free(l1);
        tw_lora_free(l2);
        tw_lora_free(l3);
    }
    rm_rf(tmp);
    tw_model_files_free(mf);
}

Test(lora, row_order_conversion)
{
    /* the permutation and its inverse on a (8 rows = 2 heads of 4, 3 cols) matrix */
    float src[24], g[24], back[24];
    for (int i = 0; i < 24; i++) src[i] = (float)i;
    tw_lora_permute_rows(g, src, 8, 3, 2, true);
    /* GGUF row h*d + 2j + k = HF row h*d + k*d/2 + j: d = 4 -> GGUF rows 0..3 = HF 0, 2, 1, 3 */
    const int want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    for (int r = 0; r < 8; r++) cr_assert_eq(g[r * 3 + 1], src[want[r] * 3 + 1], "row %d", r);
    tw_lora_permute_rows(back, g, 8, 3, 2, false);
    cr_assert_eq(memcmp(back, src, sizeof src), 0);
    /* an adapter read from GGUF without a config cannot convert its llama Q/K rows */
    tw_lora *l = read_gguf(LDIR "llama_tiny_llamacpp.gguf");
    tw_error err;
    char *tmp = tw_test_tmpdir(), *p = pjoin(tmp, "peft");
    expect_err(tw_lora_write_peft(l, p, NULL, &err), &err, TW_ERR_INVALID, "blk.0.attn_q.weight", "head counts");
    expect_err(tw_lora_set_rows(l, TW_LORA_ROWS_HF, &err), &err, TW_ERR_INVALID, "head counts", NULL);
    /* qwen2 needs none: only the flag changes */
    tw_lora *q = read_gguf(LDIR "qwen2_tiny_llamacpp.gguf");
    float b0 = q->w[1].b[3];
    cr_assert_eq(tw_lora_set_rows(q, TW_LORA_ROWS_HF, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(q->w[1].b[3], b0);
    cr_assert_eq(tw_lora_write_peft(q, p, NULL, &err), TW_OK, "%s", err.msg);
    tw_lora_free(q);
    tw_lora_free(l);
    free(p);
    rm_rf(tmp);
}

/* ---- end to end: merged model logits vs transformers + peft -------------------------------- */

/* Write the base model of hf_dir with the adapter merged into it: as a HF folder
 * (config.json + model.safetensors, F32) or as a GGUF (llama Q/K rows permuted like
 * llama.cpp's converter) at user_scale. l's B rows must be in the order of the model
 * written. Returns the path to open (folder or .gguf). */
static char *write_merged(const char *hf_dir, const tw_lora *l, float user_scale, const char *out_dir, bool gguf)
{
    tw_model_files *mf = NULL;
    tw_error err;
    cr_assert_eq(tw_model_files_open(&mf, hf_dir, &err), TW_OK, "%s", err.msg);
    const tw_model_config *c = tw_model_files_config(mf);
    int64_t n = tw_model_files_tensor_count(mf);
    float **data = calloc((size_t)n, sizeof *data);
    st_item *items = calloc((size_t)n, sizeof *items);
    int merged = 0;
    for (int64_t i = 0; i < n; i++) {
        const tw_model_tensor *t = tw_model_files_tensor_at(mf, i);
        cr_assert_eq(t->type, TW_TYPE_F32);
        int64_t cols = t->ne[0], rows = (int64_t)(t->nbytes / 4) / cols;
        data[i] = malloc(t->nbytes);
        memcpy(data[i], t->data, t->nbytes);
        size_t L = strlen(t->name);
        bool is_q = L > 14 && strcmp(t->name + L - 14, ".attn_q.weight") == 0;
        bool is_k = L > 14 && strcmp(t->name + L - 14, ".attn_k.weight") == 0;
        if (gguf && c->arch == TW_ARCH_LLAMA && (is_q || is_k))
            tw_lora_permute_rows(data[i], t->data, rows, cols, is_q ? c->n_head : c->n_head_kv, true);
        const tw_lora_weight *w = tw_lora_find(l, t->name);
        if (w) {
            cr_assert_eq(w->n_in, cols);
            cr_assert_eq(w->n_out, rows);
            /* in two row blocks, as a streaming merge would do it */
            int64_t h = rows / 3;
            float s = tw_lora_scale(l, w, user_scale);
            tw_lora_merge(data[i], w->a, w->b, 0, h, cols, w->rank, s);
            tw_lora_merge(data[i] + h * cols, w->a, w->b, h, rows - h, cols, w->rank, s);
            merged++;
        }
        items[i] = (st_item){t->src_name, NULL, {t->n_dims == 2 ? rows : cols, cols}, (int)t->n_dims, data[i], t->nbytes};
    }
    cr_assert_eq(merged, l->n, "every adapter weight must find its base tensor");
    char *path;
    if (!gguf) {
        path = pjoin(out_dir, "merged_hf");
        cr_assert_eq(tw_mkdir_p(path, &err), TW_OK);
        char *sp = pjoin(path, "model.safetensors"), *cp = pjoin(path, "config.json"), *src = pjoin(hf_dir, "config.json");
        st_write(sp, items, (int)n);
        size_t len;
        char *cj = read_all(src, &len);
        cr_assert_eq(tw_file_write_atomic(cp, cj, len, &err), TW_OK);
        free(cj); free(sp); free(cp); free(src);
    } else {
        path = pjoin(out_dir, "merged.gguf");
        tw_gguf_writer *gw = NULL;
        cr_assert_eq(tw_gguf_writer_new(&gw, &err), TW_OK);
        const char *A = tw_arch_name(c->arch);
        char key[128];
#define KEY(s) (snprintf(key, sizeof key, "%s.%s", A, s), key)
        tw_gguf_writer_set_str(gw, "general.architecture", A, (size_t)-1, &err);
        tw_gguf_writer_set_u32(gw, KEY("block_count"), (uint32_t)c->n_layer, &err);
        tw_gguf_writer_set_u32(gw, KEY("context_length"), (uint32_t)c->n_ctx_train, &err);
        tw_gguf_writer_set_u32(gw, KEY("embedding_length"), (uint32_t)c->n_embd, &err);
        tw_gguf_writer_set_u32(gw, KEY("feed_forward_length"), (uint32_t)c->n_ff, &err);
        tw_gguf_writer_set_u32(gw, KEY("attention.head_count"), (uint32_t)c->n_head, &err);
        tw_gguf_writer_set_u32(gw, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv, &err);
        tw_gguf_writer_set_u32(gw, KEY("attention.key_length"), (uint32_t)c->head_dim, &err);
        tw_gguf_writer_set_u32(gw, KEY("attention.value_length"), (uint32_t)c->head_dim, &err);
        tw_gguf_writer_set_u32(gw, KEY("rope.dimension_count"), (uint32_t)c->n_rot, &err);
        tw_gguf_writer_set_f32(gw, KEY("rope.freq_base"), c->rope_freq_base, &err);
        cr_assert_eq(tw_gguf_writer_set_f32(gw, KEY("attention.layer_norm_rms_epsilon"), c->rms_eps, &err), TW_OK);
#undef KEY
        for (int64_t i = 0; i < n; i++) {
            const tw_model_tensor *t = tw_model_files_tensor_at(mf, i);
            cr_assert_eq(tw_gguf_writer_add_tensor(gw, t->name, TW_TYPE_F32, t->n_dims, t->ne, data[i], NULL, NULL, &err),
                         TW_OK, "%s", err.msg);
        }
        cr_assert_eq(tw_gguf_writer_write(gw, path, &err), TW_OK, "%s", err.msg);
        tw_gguf_writer_free(gw);
    }
    for (int64_t i = 0; i < n; i++) free(data[i]);
    free(data);
    free(items);
    tw_model_files_free(mf);
    return path;
}

static float *model_logits(const char *path, const int32_t *tok, int32_t T)
{
    tw_llama_params p = tw_llama_default_params();
    p.matmul = TW_MATMUL_FLOAT;
    p.n_threads = 1;
    tw_llama *m = NULL;
    tw_error err;
    cr_assert_eq(tw_llama_open(&m, path, &p, &err), TW_OK, "%s", err.msg);
    tw_kv_params kp = {.n_cells = T, .n_seq = 1, .type = TW_KV_F32};
    tw_kv *kv = NULL;
    cr_assert_eq(tw_kv_new(&kv, tw_llama_config(m), &kp, &err), TW_OK, "%s", err.msg);
    float *out = malloc((size_t)T * (size_t)tw_llama_n_vocab(m) * sizeof *out);
    cr_assert_eq(tw_llama_forward(m, kv, 0, tok, NULL, T, TW_LOGITS_ALL, out, &err), TW_OK, "%s", err.msg);
    tw_kv_free(kv);
    tw_llama_free(m);
    return out;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= md)) md = d;
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / (mb > 0 ? mb : 1);
}

static void check_merged_logits(json_t *man, json_t *mod)
{
    const char *name = json_string_value(json_object_get(mod, "name"));
    char hf[256];
    snprintf(hf, sizeof hf, MDIR "%s", name);
    json_t *seq = json_object_get(man, "sequence");
    int32_t T = (int32_t)json_array_size(seq), tok[64];
    for (int32_t i = 0; i < T; i++) tok[i] = (int32_t)json_integer_value(json_array_get(seq, i));
    size_t len;
    float *want = (float *)read_all(json_string_value(json_object_get(mod, "logits")), &len);
    size_t nv = (size_t)T * (size_t)json_integer_value(json_object_get(mod, "n_vocab"));
    cr_assert_eq(len, nv * 4);
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, name);
    char *tmp = tw_test_tmpdir();
    /* the base alone is far from the adapted logits (the fixture has a real effect) */
    float *base = model_logits(hf, tok, T);
    double e_base = rel_err(base, want, nv);
    cr_assert_geq(e_base, 0.01, "%s: the adapter has no visible effect (%.3g)", name, e_base);
    tw_error err;
    /* (1) PEFT adapter merged into the HF folder */
    tw_lora *p = read_peft(json_string_value(json_object_get(mod, "peft_dir")), c);
    char *m1 = write_merged(hf, p, 1.0f, tmp, false);
    float *got = model_logits(m1, tok, T);
    double e1 = rel_err(got, want, nv);
    free(got);
    /* (2) llama.cpp's GGUF adapter (its row order) merged into a GGUF of the base */
    tw_lora *g = read_gguf(json_string_value(json_object_get(json_object_get(mod, "llamacpp"), "gguf")));
    cr_assert_eq(tw_lora_set_config(g, c, &err), TW_OK, "%s", err.msg);
    char *m2 = write_merged(hf, g, 1.0f, tmp, true);
    got = model_logits(m2, tok, T);
    double e2 = rel_err(got, want, nv);
    free(got);
    /* tw_lora_prepare for that GGUF model puts PEFT's B rows in llama.cpp's order */
    {
        tw_model_files *gm = NULL;
        cr_assert_eq(tw_model_files_open(&gm, m2, &err), TW_OK, "%s", err.msg);
        tw_lora *pp = read_peft(json_string_value(json_object_get(mod, "peft_dir")), NULL);
        cr_assert_eq(tw_lora_prepare(pp, gm, &err), TW_OK, "%s", err.msg);
        cr_assert_eq(pp->rows, TW_LORA_ROWS_GGUF);
        for (int32_t i = 0; i < pp->n; i++)
            cr_assert_eq(memcmp(pp->w[i].b, g->w[i].b, (size_t)(g->w[i].n_out * g->w[i].rank) * sizeof(float)), 0, "%s: %s",
                         name, g->w[i].name);
        tw_lora_free(pp);
        tw_model_files_free(gm);
    }
    /* (3) the PEFT adapter converted to GGUF order and merged into the GGUF base, and
     *     llama.cpp's converted to HF order into the HF folder */
    cr_assert_eq(tw_lora_set_rows(p, TW_LORA_ROWS_GGUF, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_lora_set_rows(g, TW_LORA_ROWS_HF, &err), TW_OK, "%s", err.msg);
    char *tmp2 = tw_test_tmpdir();
    char *m3 = write_merged(hf, p, 1.0f, tmp2, true), *m4 = write_merged(hf, g, 1.0f, tmp2, false);
    float *got3 = model_logits(m3, tok, T), *got4 = model_logits(m4, tok, T);
    double e3 = rel_err(got3, want, nv), e4 = rel_err(got4, want, nv);
    cr_log_info("%s: merged vs transformers+peft rel err: PEFT->HF %.2e, llama.cpp GGUF->GGUF %.2e, PEFT->GGUF %.2e, "
                "llama.cpp GGUF->HF %.2e (base alone %.2e)",
                name, e1, e2, e3, e4, e_base);
    cr_expect_leq(e1, 1e-4, "%s: PEFT adapter merged into HF weights: %.3e", name, e1);
    cr_expect_leq(e2, 1e-4, "%s: llama.cpp adapter merged into GGUF weights: %.3e", name, e2);
    cr_expect_leq(e3, 1e-4, "%s: PEFT adapter (GGUF rows) merged into GGUF weights: %.3e", name, e3);
    cr_expect_leq(e4, 1e-4, "%s: llama.cpp adapter (HF rows) merged into HF weights: %.3e", name, e4);
    /* a wrong row order is caught by this comparison (llama only: qwen2 has none) */
    if (c->arch == TW_ARCH_LLAMA) {
        char *tmp3 = tw_test_tmpdir();
        char *m5 = write_merged(hf, p, 1.0f, tmp3, false);   /* GGUF rows into HF weights: wrong */
        float *bad = model_logits(m5, tok, T);
        double e5 = rel_err(bad, want, nv);
        cr_log_info("%s: GGUF-order B merged into HF weights (wrong on purpose): rel err %.2e", name, e5);
        cr_expect_geq(e5, 1e-3, "%s: wrong row order should show (%.3g)", name, e5);
        free(bad);
        free(m5);
        rm_rf(tmp3);
    }
    /* (4) llama.cpp running the base with the adapter loaded at lora_scale 1 and 0.5: the
     *     user-scale rule (scale = user * alpha / rank) */
    json_t *run = json_object_get(json_object_get(mod, "llamacpp"), "run");
    float *lc = (float *)read_all(json_string_value(json_object_get(run, "logits")), &len);
    cr_assert_eq(len, 2 * nv * 4);
    double e6 = rel_err(lc, want, nv);
    char *tmp4 = tw_test_tmpdir();
    char *m6 = write_merged(hf, g, 0.5f, tmp4, false);
    float *half = model_logits(m6, tok, T);
    double e7 = rel_err(half, lc + nv, nv), e8 = rel_err(half, want, nv);
    cr_log_info("%s: llama.cpp+adapter (scale 1) vs peft %.2e; merged at user scale 0.5 vs llama.cpp lora_scale 0.5 %.2e "
                "(vs scale 1: %.2e)", name, e6, e7, e8);
    cr_expect_leq(e6, 1e-4, "%s: fixture: llama.cpp with the adapter vs peft %.3e", name, e6);
    cr_expect_leq(e7, 1e-4, "%s: user scale 0.5 vs llama.cpp lora_scale 0.5: %.3e", name, e7);
    cr_expect_geq(e8, 1e-3, "%s: scale 0.5 must differ from scale 1", name);
    free(half);
    free(m6);
    free(lc);
    rm_rf(tmp4);
    free(got3); free(got4); free(m1); free(m2); free(m3); free(m4);
    free(base);
    free(want);
    tw_lora_free(p);
    tw_lora_free(g);
    rm_rf(tmp);
    rm_rf(tmp2);
    tw_model_files_free(mf);
}

Test(lora, merged_models_match_transformers_peft)
{
    json_t *man = load_json(LDIR "lora_fixtures.json");
    size_t i;
    json_t *mod;
    json_array_foreach(json_object_get(man, "models"), i, mod) check_merged_logits(man, mod);
    json_decref(man);
}

/* ---- the math against double references ----------------------------------------------- */

static void fill_rand(float *v, size_t n, tw_rng *r)
{
    for (size_t i = 0; i < n; i++) v[i] = (float)(2.0 * tw_rng_uniform(r) - 1.0);
}

Test(lora, apply_and_merge_match_double_reference)
{
    enum { BT = 7, IN = 40, OUT = 24, R = 5 };
    tw_rng rng;
    tw_rng_seed(&rng, 42);
    float x[BT * IN], A[R * IN], B[OUT * R], out[BT * OUT], out0[BT * OUT], t[BT * R], W[OUT * IN], W0[OUT * IN];
    fill_rand(x, BT * IN, &rng);
    fill_rand(A, R * IN, &rng);
    fill_rand(B, OUT * R, &rng);
    fill_rand(out0, BT * OUT, &rng);
    fill_rand(W0, OUT * IN, &rng);
    const float s = 0.625f;
    memcpy(out, out0, sizeof out);
    tw_lora_apply(out, t, x, A, B, BT, OUT, IN, R, s);
    double worst = 0;
    for (int b = 0; b < BT; b++)
        for (int o = 0; o < OUT; o++) {
            double acc = 0;
            for (int k = 0; k < R; k++) {
                double xa = 0;
                for (int j = 0; j < IN; j++) xa += (double)x[b * IN + j] * A[k * IN + j];
                acc += xa * B[o * R + k];
                if (o == 0) cr_assert_float_eq(t[b * R + k], s * xa, 1e-5, "t = scale x A^T");
            }
            double want = out0[b * OUT + o] + s * acc;
            worst = fmax(worst, fabs(out[b * OUT + o] - want));
        }
    cr_log_info("apply: max |diff| vs double reference %.2e", worst);
    cr_assert_leq(worst, 2e-5);
    /* merge rows [3, 3 + 11) of W */
    memcpy(W, W0, sizeof W);
    tw_lora_merge(W + 3 * IN, A, B, 3, 11, IN, R, s);
    worst = 0;
    for (int o = 0; o < OUT; o++)
        for (int j = 0; j < IN; j++) {
            double d = 0;
            for (int k = 0; k < R; k++) d += (double)B[o * R + k] * A[k * IN + j];
            double want = W0[o * IN + j] + (o >= 3 && o < 14 ? s * d : 0.0);
            worst = fmax(worst, fabs(W[o * IN + j] - want));
        }
    cr_log_info("merge: max |diff| vs double reference %.2e", worst);
    cr_assert_leq(worst, 1e-5);
    /* unmerged == merged: x (W + s B A)^T == x W^T + apply */
    tw_lora_merge(W, A, B, 0, OUT, IN, R, s);
    memcpy(W + 3 * IN, W0 + 3 * IN, 11 * IN * sizeof(float));
    tw_lora_merge(W + 3 * IN, A, B, 3, 11, IN, R, s);
    float base[BT * OUT];
    memset(base, 0, sizeof base);
    worst = 0;
    for (int b = 0; b < BT; b++)
        for (int o = 0; o < OUT; o++) {
            double m = 0, w0 = 0;
            for (int j = 0; j < IN; j++) {
                m += (double)x[b * IN + j] * W[o * IN + j];
                w0 += (double)x[b * IN + j] * W0[o * IN + j];
            }
            base[b * OUT + o] = (float)w0;
            (void)m;
        }
    tw_lora_apply(base, t, x, A, B, BT, OUT, IN, R, s);
    for (int b = 0; b < BT; b++)
        for (int o = 0; o < OUT; o++) {
            double m = 0;
            for (int j = 0; j < IN; j++) m += (double)x[b * IN + j] * W[o * IN + j];
            worst = fmax(worst, fabs(base[b * OUT + o] - m));
        }
    cr_assert_leq(worst, 5e-5, "unmerged vs merged %.3g", worst);
    /* Bt = 0 and rank 0 are no-ops */
    memcpy(out, out0, sizeof out);
    tw_lora_apply(out, t, x, A, B, 0, OUT, IN, R, s);
    tw_lora_apply(out, t, x, A, B, BT, OUT, IN, 0, s);
    cr_assert_eq(memcmp(out, out0, sizeof out), 0);
}

/* ---- malformed GGUF adapters --------------------------------------------------------------- */

typedef struct gtensor {
    const char *name;
    int64_t ne0, ne1;
} gtensor;

typedef struct gspec {
    const char *type, *atype, *arch;
    bool alpha;
    int n;
    gtensor t[4];
} gspec;

static char *write_gguf_spec(const char *dir, const char *fname, const gspec *s)
{
    tw_gguf_writer *w = NULL;
    tw_error err;
    cr_assert_eq(tw_gguf_writer_new(&w, &err), TW_OK);
    if (s->arch) tw_gguf_writer_set_str(w, "general.architecture", s->arch, (size_t)-1, &err);
    if (s->type) tw_gguf_writer_set_str(w, "general.type", s->type, (size_t)-1, &err);
    if (s->atype) tw_gguf_writer_set_str(w, "adapter.type", s->atype, (size_t)-1, &err);
    if (s->alpha) tw_gguf_writer_set_f32(w, "adapter.lora.alpha", 16.0f, &err);
    static float zeros[96 * 64];
    for (int i = 0; i < s->n; i++) {
        int64_t ne[2] = {s->t[i].ne0, s->t[i].ne1};
        cr_assert_eq(tw_gguf_writer_add_tensor(w, s->t[i].name, TW_TYPE_F32, 2, ne, zeros, NULL, NULL, &err), TW_OK, "%s",
                     err.msg);
    }
    char *p = pjoin(dir, fname);
    cr_assert_eq(tw_gguf_writer_write(w, p, &err), TW_OK, "%s", err.msg);
    tw_gguf_writer_free(w);
    return p;
}

static void expect_gguf_err(const char *dir, const gspec *s, tw_status st, const char *f1, const char *f2)
{
    char *p = write_gguf_spec(dir, "bad.gguf", s);
    tw_lora *l = (tw_lora *)1;
    tw_error err;
    tw_status got = tw_lora_read_gguf(&l, p, &err);
    expect_err(got, &err, st, f1, f2);
    cr_expect_not_null(strstr(err.msg, p), "error '%s' should name the file", err.msg);
    cr_assert_null(l);
    free(p);
}

Test(lora, malformed_gguf_adapters)
{
    char *tmp = tw_test_tmpdir();
    gspec ok = {"adapter", "lora", "llama", true, 2, {{"blk.0.attn_q.weight.lora_a", 64, 4}, {"blk.0.attn_q.weight.lora_b", 4, 64}}};
    gspec s = ok;
    s.type = "model";
    expect_gguf_err(tmp, &s, TW_ERR_INVALID, "general.type", "\"model\"");
    s = ok;
    s.type = NULL;
    expect_gguf_err(tmp, &s, TW_ERR_INVALID, "general.type", "found nothing");
    s = ok;
    s.atype = "control_vector";
    expect_gguf_err(tmp, &s, TW_ERR_UNSUPPORTED, "adapter.type", "control_vector");
    s = ok;
    s.arch = "gpt2";
    expect_gguf_err(tmp, &s, TW_ERR_UNSUPPORTED, "general.architecture", "gpt2");
    s = ok;
    s.n = 1;   /* lora_b missing */
    expect_gguf_err(tmp, &s, TW_ERR_INVALID, "'blk.0.attn_q.weight.lora_a' has no matching .lora_b", NULL);
    s = ok;
    s.t[1].ne0 = 8;   /* rank 4 vs 8 */
    expect_gguf_err(tmp, &s, TW_ERR_INVALID, "blk.0.attn_q.weight.lora_b", "rank 8, but 'blk.0.attn_q.weight.lora_a' has rank 4");
    s = ok;
    s.t[0].name = "token_embd.weight.lora_a";
    s.t[1].name = "token_embd.weight.lora_b";
    expect_gguf_err(tmp, &s, TW_ERR_UNSUPPORTED, "token_embd.weight.lora_a", "not supported");
    s = ok;
    s.t[1].name = "blk.0.attn_q.weight";
    expect_gguf_err(tmp, &s, TW_ERR_INVALID, "'blk.0.attn_q.weight'", ".lora_b");
    /* truncated file: the GGUF reader's error, naming the file */
    char *good = write_gguf_spec(tmp, "good.gguf", &ok);
    size_t len;
    char *bytes = read_all(good, &len);
    char *trunc = pjoin(tmp, "trunc.gguf");
    FILE *f = fopen(trunc, "wb");
    fwrite(bytes, 1, len - 100, f);
    fclose(f);
    tw_lora *l = NULL;
    tw_error err;
    cr_assert_neq(tw_lora_read_gguf(&l, trunc, &err), TW_OK);
    cr_assert_not_null(strstr(err.msg, trunc), "%s", err.msg);
    /* the good one reads; alpha 16, rank 4 -> scale 4 */
    l = read_gguf(good);
    cr_assert_eq(l->n, 1);
    cr_assert_float_eq(tw_lora_scale(l, &l->w[0], 1.0f), 4.0f, 0);
    tw_lora_free(l);
    /* no alpha: llama.cpp's rule, scale = user scale; writing PEFT then gives lora_alpha = r */
    s = ok;
    s.alpha = false;
    char *na = write_gguf_spec(tmp, "noalpha.gguf", &s);
    l = read_gguf(na);
    cr_assert_eq(l->alpha, 0.0f);
    cr_assert_float_eq(tw_lora_scale(l, &l->w[0], 0.3f), 0.3f, 0);
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, "llama_tiny");
    cr_assert_eq(tw_lora_set_config(l, c, &err), TW_OK, "%s", err.msg);
    char *pd = pjoin(tmp, "p");
    cr_assert_eq(tw_lora_write_peft(l, pd, NULL, &err), TW_OK, "%s", err.msg);
    tw_lora *l2 = read_peft(pd, c);
    cr_assert_float_eq(l2->alpha, 4.0f, 0);
    cr_assert_float_eq(tw_lora_scale(l2, &l2->w[0], 1.0f), 1.0f, 0);
    /* only one layer / target adapted: target_modules is a regex naming it; reads back */
    char *cj = pjoin(pd, "adapter_config.json");
    json_t *j = load_json(cj);
    cr_assert_str_eq(json_string_value(json_object_get(j, "target_modules")), "(model\\.layers\\.0\\.self_attn\\.q_proj)");
    json_decref(j);
    tw_lora_free(l2);
    tw_lora_free(l);
    /* validation against a model config / files */
    gspec k = {"adapter", "lora", "llama", true, 2, {{"blk.1.attn_k.weight.lora_a", 64, 4}, {"blk.1.attn_k.weight.lora_b", 4, 64}}};
    char *kp = write_gguf_spec(tmp, "k.gguf", &k);
    l = read_gguf(kp);
    expect_err(tw_lora_set_config(l, c, &err), &err, TW_ERR_INVALID, "tensor 'blk.1.attn_k.weight.lora_b': expected dims [4, 32]",
               "found [4, 64]");
    cr_assert_not_null(strstr(err.msg, kp));
    tw_lora_free(l);
    k.t[0] = (gtensor){"blk.2.ffn_down.weight.lora_a", 96, 4};
    k.t[1] = (gtensor){"blk.2.ffn_down.weight.lora_b", 4, 64};
    kp = (free(kp), write_gguf_spec(tmp, "k.gguf", &k));
    l = read_gguf(kp);
    expect_err(tw_lora_set_config(l, c, &err), &err, TW_ERR_INVALID, "blk.2.ffn_down.weight.lora_a", "layer 2, but the model has 2 layers");
    tw_lora_free(l);
    k.t[0] = (gtensor){"blk.1.ffn_down.weight.lora_a", 64, 4};   /* n_in should be n_ff = 96 */
    k.t[1] = (gtensor){"blk.1.ffn_down.weight.lora_b", 4, 64};
    kp = (free(kp), write_gguf_spec(tmp, "k.gguf", &k));
    l = read_gguf(kp);
    expect_err(tw_lora_check(l, mf, &err), &err, TW_ERR_INVALID, "'blk.1.ffn_down.weight.lora_a': expected dims [96, 4]",
               "found [64, 4]");
    tw_lora_free(l);
    /* the real adapters check against their models; the llama one is not for qwen2 */
    l = read_gguf(LDIR "llama_tiny_llamacpp.gguf");
    cr_assert_eq(tw_lora_check(l, mf, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(l->n_head, c->n_head);
    cr_assert_eq(tw_lora_rows_for(mf), TW_LORA_ROWS_HF);
    /* prepared for the HF folder: B rows back in HF order, equal to PEFT's own */
    cr_assert_eq(tw_lora_prepare(l, mf, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(l->rows, TW_LORA_ROWS_HF);
    tw_lora *pe = read_peft(LDIR "llama_tiny_peft", c);
    for (int32_t i = 0; i < l->n; i++)
        cr_assert_eq(memcmp(l->w[i].b, pe->w[i].b, (size_t)(l->w[i].n_out * l->w[i].rank) * sizeof(float)), 0, "%s",
                     l->w[i].name);
    tw_lora_free(pe);
    tw_model_files *mq;
    model_cfg(&mq, "qwen2_tiny");
    expect_err(tw_lora_check(l, mq, &err), &err, TW_ERR_INVALID, "architecture 'llama'", "'qwen2'");
    tw_lora_free(l);
    tw_model_files_free(mq);
    tw_model_files_free(mf);
    free(kp); free(cj); free(pd); free(na); free(good); free(bytes); free(trunc);
    rm_rf(tmp);
}

/* ---- PEFT configs and malformed PEFT folders ------------------------------------------------ */

/* A PEFT folder: the llama fixture's safetensors with the given adapter_config.json. */
static char *peft_with_config(const char *tmp, const char *sub, const char *config)
{
    char *d = pjoin(tmp, sub);
    tw_error err;
    cr_assert_eq(tw_mkdir_p(d, &err), TW_OK);
    size_t len;
    char *st = read_all(LDIR "llama_tiny_peft/adapter_model.safetensors", &len);
    char *sp = pjoin(d, "adapter_model.safetensors");
    cr_assert_eq(tw_file_write_atomic(sp, st, len, &err), TW_OK);
    free(tw_test_write(d, "adapter_config.json", config));
    free(st);
    free(sp);
    return d;
}

Test(lora, peft_config_rules)
{
    char *tmp = tw_test_tmpdir();
    tw_model_files *mf;
    const tw_model_config *c = model_cfg(&mf, "llama_tiny");
    tw_error err;
    tw_lora *l = NULL;
    /* lora_alpha missing: PEFT's default 8 (rank 4 -> scale 2) */
    char *d = peft_with_config(tmp, "a", "{\"r\": 4, \"peft_type\": \"LORA\"}");
    l = read_peft(d, c);
    cr_assert_float_eq(l->alpha, 8.0f, 0);
    cr_assert_float_eq(tw_lora_scale(l, &l->w[0], 1.0f), 2.0f, 0);
    tw_lora_free(l);
    free(d);
    /* r missing: PEFT's default 8 does not match the rank-4 tensors */
    d = peft_with_config(tmp, "b", "{\"lora_alpha\": 16}");
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_INVALID,
               "lora_A.weight': shape [4, ", "has rank 4, but adapter_config.json says r = 8");
    free(d);
    /* rank_pattern covering every module makes r = 8 fine */
    d = peft_with_config(tmp, "c",
                         "{\"r\": 8, \"lora_alpha\": 16, \"rank_pattern\": {\"q_proj\": 4, \"k_proj\": 4, \"v_proj\": 4, "
                         "\"o_proj\": 4, \"gate_proj\": 4, \"up_proj\": 4, \"down_proj\": 4}}");
    l = read_peft(d, c);
    cr_assert_float_eq(tw_lora_scale(l, &l->w[0], 1.0f), 4.0f, 0);
    tw_lora_free(l);
    free(d);
    /* rsLoRA: lora_alpha / sqrt(r) = 8 / 2 = 4, stored as alpha 16 (16 / 4) */
    d = peft_with_config(tmp, "d", "{\"r\": 4, \"lora_alpha\": 8, \"use_rslora\": true}");
    l = read_peft(d, c);
    cr_assert_float_eq(l->alpha, 16.0f, 0);
    cr_assert_float_eq(tw_lora_scale(l, &l->w[3], 1.0f), 4.0f, 0);
    tw_lora_free(l);
    free(d);
    d = peft_with_config(tmp, "e", "{\"r\": 4, \"lora_alpha\": 8, \"use_dora\": true}");
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_UNSUPPORTED, "use_dora", "adapter_config.json");
    free(d);
    d = peft_with_config(tmp, "f", "{\"r\": 4, \"lora_alpha\": 8, \"alpha_pattern\": {\"q_proj\": 2}}");
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_UNSUPPORTED, "alpha_pattern", NULL);
    free(d);
    d = peft_with_config(tmp, "g", "{\"r\": 4, \"peft_type\": \"IA3\"}");
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_UNSUPPORTED, "peft_type", "IA3");
    free(d);
    d = peft_with_config(tmp, "h", "{\"r\": 4, ");
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_PARSE, "adapter_config.json:", NULL);
    free(d);
    /* no config, no safetensors */
    d = pjoin(tmp, "empty");
    tw_mkdir_p(d, &err);
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_IO, "adapter_config.json", NULL);
    free(tw_test_write(d, "adapter_config.json", "{\"r\": 4}"));
    free(tw_test_write(d, "adapter_model.bin", "x"));
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_IO, "no adapter_model.safetensors", "adapter_model.bin");
    free(d);
    /* tensors: lora_B missing, a non-LoRA tensor, lm_head, F64, 3-D */
    static float z[96 * 8];
    struct {
        st_item items[2];
        int n;
        tw_status st;
        const char *f1, *f2;
    } cases[] = {
        {{{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", NULL, {4, 64}, 2, z, 4 * 64 * 4}}, 1,
         TW_ERR_INVALID, "'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' has no matching lora_B.weight", NULL},
        {{{"base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight", NULL, {4, 64}, 2, z, 4 * 64 * 4}}, 1,
         TW_ERR_UNSUPPORTED, "q_proj.base_layer.weight'", "not a LoRA tensor"},
        {{{"base_model.model.lm_head.lora_A.weight", NULL, {4, 64}, 2, z, 4 * 64 * 4}}, 1, TW_ERR_UNSUPPORTED,
         "'base_model.model.lm_head.lora_A.weight'", "expected base_model.model.model.layers.N"},
        {{{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F64", {4, 64}, 2, z, 4 * 64 * 8}}, 1,
         TW_ERR_UNSUPPORTED, "dtype F64", NULL},
        {{{"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", NULL, {4, 64}, 2, z, 4 * 64 * 4},
          {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", NULL, {64, 2}, 2, z, 2 * 64 * 4}},
         2, TW_ERR_INVALID, "lora_B.weight': shape [64, 2] has rank 2", "r = 4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char sub[16];
        snprintf(sub, sizeof sub, "t%zu", i);
        d = pjoin(tmp, sub);
        tw_mkdir_p(d, &err);
        free(tw_test_write(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8}"));
        char *sp = pjoin(d, "adapter_model.safetensors");
        st_write(sp, cases[i].items, cases[i].n);
        l = (tw_lora *)1;
        expect_err(tw_lora_read_peft(&l, d, c, &err), &err, cases[i].st, cases[i].f1, cases[i].f2);
        cr_expect_not_null(strstr(err.msg, d), "case %zu: '%s' should name the folder", i, err.msg);
        cr_assert_null(l);
        free(sp);
        free(d);
    }
    /* wrong shapes against the config: A of k_proj with n_in 32 */
    d = pjoin(tmp, "shape");
    tw_mkdir_p(d, &err);
    free(tw_test_write(d, "adapter_config.json", "{\"r\": 4, \"lora_alpha\": 8}"));
    st_item ks[2] = {{"base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight", NULL, {4, 32}, 2, z, 4 * 32 * 4},
                     {"base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight", NULL, {32, 4}, 2, z, 4 * 32 * 4}};
    char *sp = pjoin(d, "adapter_model.safetensors");
    st_write(sp, ks, 2);
    expect_err(tw_lora_read_peft(&l, d, c, &err), &err, TW_ERR_INVALID,
               "'base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight': expected shape [4, 64]", "found [4, 32]");
    /* without a config it reads (architecture unknown); GGUF output then needs one */
    l = read_peft(d, NULL);
    cr_assert_eq(l->arch, TW_ARCH_COUNT);
    char *gp = pjoin(tmp, "x.gguf");
    expect_err(tw_lora_write_gguf(l, gp, NULL, &err), &err, TW_ERR_INVALID, "architecture is unknown", NULL);
    tw_lora_write_params p = tw_lora_default_write_params();
    p.type = TW_TYPE_Q8_0;
    expect_err(tw_lora_write_peft(l, tmp, &p, &err), &err, TW_ERR_INVALID, "f32, f16 or bf16", NULL);
    tw_lora_free(l);
    free(gp);
    free(sp);
    free(d);
    tw_model_files_free(mf);
    rm_rf(tmp);
}

/* ---- other tensor types on read ---------------------------------------------------------- */

Test(lora, gguf_q8_0_and_bf16_tensors_read_and_truncated_peft)
{
    /* rank 32 so lora_b rows (32 elements) fit Q8_0 blocks; A is BF16 */
    enum { R = 32, IN = 64, OUT = 64 };
    static float a[R * IN], b[OUT * R], ga[R * IN], gb[OUT * R];
    tw_rng rng;
    tw_rng_seed(&rng, 3);
    fill_rand(a, R * IN, &rng);
    fill_rand(b, OUT * R, &rng);
    static uint16_t a16[R * IN];
    static uint8_t bq[OUT * 34];   /* Q8_0: 34 bytes per 32 elements */
    tw_quantize_row(TW_TYPE_BF16, a16, a, R * IN);
    tw_quantize_row(TW_TYPE_Q8_0, bq, b, OUT * R);
    tw_dequantize_row(TW_TYPE_BF16, ga, a16, R * IN);
    tw_dequantize_row(TW_TYPE_Q8_0, gb, bq, OUT * R);
    tw_gguf_writer *w = NULL;
    tw_error err;
    cr_assert_eq(tw_gguf_writer_new(&w, &err), TW_OK);
    tw_gguf_writer_set_str(w, "general.architecture", "qwen2", (size_t)-1, &err);
    tw_gguf_writer_set_str(w, "general.type", "adapter", (size_t)-1, &err);
    tw_gguf_writer_set_str(w, "adapter.type", "lora", (size_t)-1, &err);
    tw_gguf_writer_set_f32(w, "adapter.lora.alpha", 64.0f, &err);
    int64_t ne_a[2] = {IN, R}, ne_b[2] = {R, OUT};
    cr_assert_eq(tw_gguf_writer_add_tensor(w, "blk.0.attn_output.weight.lora_a", TW_TYPE_BF16, 2, ne_a, a16, NULL, NULL, &err),
                 TW_OK, "%s", err.msg);
    cr_assert_eq(tw_gguf_writer_add_tensor(w, "blk.0.attn_output.weight.lora_b", TW_TYPE_Q8_0, 2, ne_b, bq, NULL, NULL, &err),
                 TW_OK, "%s", err.msg);
    char *tmp = tw_test_tmpdir(), *p = pjoin(tmp, "q.gguf");
    cr_assert_eq(tw_gguf_writer_write(w, p, &err), TW_OK, "%s", err.msg);
    tw_gguf_writer_free(w);
    tw_lora *l = read_gguf(p);
    const tw_lora_weight *lw = tw_lora_find(l, "blk.0.attn_output.weight");
    cr_assert_not_null(lw);
    cr_assert_eq(lw->rank, R);
    cr_assert_eq(memcmp(lw->a, ga, sizeof ga), 0);
    cr_assert_eq(memcmp(lw->b, gb, sizeof gb), 0);
    cr_assert_eq(lw->src_type, TW_TYPE_F32, "mixed types: written back as F32 by default");
    cr_assert_float_eq(tw_lora_scale(l, lw, 1.0f), 2.0f, 0);
    /* written to PEFT (F32) and read back: the same values */
    char *d = pjoin(tmp, "p");
    cr_assert_eq(tw_lora_write_peft(l, d, NULL, &err), TW_OK, "%s", err.msg);
    tw_lora *l2 = read_peft(d, NULL);
    cr_assert_eq(memcmp(l2->w[0].b, gb, sizeof gb), 0);
    cr_assert_eq(l2->w[0].src_type, TW_TYPE_F32);
    tw_lora_free(l2);
    /* a truncated safetensors file: the reader's error, naming the file */
    char *sp = pjoin(d, "adapter_model.safetensors");
    size_t len;
    char *bytes = read_all(sp, &len);
    cr_assert_eq(tw_file_write_atomic(sp, bytes, len - 10, &err), TW_OK);
    l2 = (tw_lora *)1;
    cr_assert_neq(tw_lora_read_peft(&l2, d, NULL, &err), TW_OK);
    cr_assert_not_null(strstr(err.msg, sp), "%s", err.msg);
    cr_assert_null(l2);
    free(bytes);
    free(sp);
    free(d);
    tw_lora_free(l);
    free(p);
    rm_rf(tmp);
}

/* ---- adapters applied unmerged by the forward pass (tw_llama_set_adapters) ---------------- */

static float *logits_with(const char *model_path, tw_lora *const *ad, const float *scales, int n, const int32_t *tok,
                          int32_t T)
{
    tw_llama_params p = tw_llama_default_params();
    p.matmul = TW_MATMUL_FLOAT;
    p.n_threads = 1;
    tw_llama *m = NULL;
    tw_error err;
    cr_assert_eq(tw_llama_open(&m, model_path, &p, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_llama_set_adapters(m, ad, scales, n, &err), TW_OK, "%s", err.msg);
    cr_assert_eq(tw_llama_n_adapters(m), n);
    tw_kv_params kp = {.n_cells = T, .n_seq = 1, .type = TW_KV_F32};
    tw_kv *kv = NULL;
    cr_assert_eq(tw_kv_new(&kv, tw_llama_config(m), &kp, &err), TW_OK, "%s", err.msg);
    float *out = malloc((size_t)T * (size_t)tw_llama_n_vocab(m) * sizeof *out);
    cr_assert_eq(tw_llama_forward(m, kv, 0, tok, NULL, T, TW_LOGITS_ALL, out, &err), TW_OK, "%s", err.msg);
    tw_kv_free(kv);
    tw_llama_free(m);
    return out;
}

/* The unmerged adapter in our forward pass against transformers + peft (the PEFT folder on
 * the HF weights, and on a GGUF of the same weights: B rows of llama q/k are permuted to
 * the file's order at load) and against llama.cpp with its own converted GGUF adapter at
 * lora_scale 0.5 (f32 KV cache there). Measured: <= 6e-7 of the largest logit. */
Test(lora, unmerged_adapters_in_the_forward_pass_match_peft_and_llama_cpp, .timeout = 120)
{
    json_t *man = load_json(LDIR "lora_fixtures.json");
    json_t *seq = json_object_get(man, "sequence");
    int32_t T = (int32_t)json_array_size(seq), tok[64];
    for (int32_t i = 0; i < T; i++) tok[i] = (int32_t)json_integer_value(json_array_get(seq, i));
    size_t mi;
    json_t *mod;
    json_array_foreach(json_object_get(man, "models"), mi, mod) {
        const char *name = json_string_value(json_object_get(mod, "name"));
        char hf[256], peft[256], lcg[256], wantp[256], lcp[256];
        snprintf(hf, sizeof hf, MDIR "%s", name);
        snprintf(peft, sizeof peft, LDIR "%s_peft", name);
        snprintf(lcg, sizeof lcg, LDIR "%s_llamacpp.gguf", name);
        snprintf(wantp, sizeof wantp, LDIR "%s_logits.bin", name);
        snprintf(lcp, sizeof lcp, LDIR "%s_llamacpp_logits.bin", name);
        size_t wl, ll;
        float *want = (float *)read_all(wantp, &wl), *lc = (float *)read_all(lcp, &ll);
        const size_t n = wl / sizeof(float);
        cr_assert_eq(ll, 2 * wl);
        tw_model_files *mf = NULL;
        const tw_model_config *cfg = model_cfg(&mf, name);
        /* PEFT adapter on the HF folder */
        tw_lora *a = read_peft(peft, cfg);
        float *got = logits_with(hf, &a, NULL, 1, tok, T);
        double e1 = rel_err(got, want, n);
        cr_log_info("%s: unmerged PEFT adapter on the HF weights vs transformers+peft: %.2e", name, e1);
        cr_assert_leq(e1, 1e-5, "%s: %.3e", name, e1);
        free(got);
        /* llama.cpp's GGUF adapter, scale 0.5, vs llama.cpp itself */
        tw_lora *g = read_gguf(lcg);
        float half = 0.5f;
        got = logits_with(hf, &g, &half, 1, tok, T);
        double e2 = rel_err(got, lc + n, n);
        cr_log_info("%s: llama.cpp's adapter at scale 0.5 vs llama.cpp: %.2e", name, e2);
        cr_assert_leq(e2, 1e-5, "%s: %.3e", name, e2);
        free(got);
        /* the same PEFT adapter on a GGUF of the base weights (llama: permuted q/k rows) */
        char *tmp = tw_test_tmpdir();
        char *gbase = write_merged(hf, a, 0.0f, tmp, true);
        tw_lora *a2 = read_peft(peft, cfg);
        got = logits_with(gbase, &a2, NULL, 1, tok, T);
        double e3 = rel_err(got, want, n);
        cr_log_info("%s: PEFT adapter on a GGUF base vs transformers+peft: %.2e", name, e3);
        cr_assert_leq(e3, 1e-5, "%s: %.3e", name, e3);
        free(got);
        /* two adapters at 0.5 each equal one at 1 (the deltas add) */
        tw_lora *two[2] = {a, g};
        float halves[2] = {0.5f, 0.5f};
        got = logits_with(hf, two, halves, 2, tok, T);
        double e4 = rel_err(got, lc, n);
        cr_assert_leq(e4, 1e-5, "%s: two half adapters vs one: %.3e", name, e4);
        free(got);
        /* no adapter: the base model, visibly different */
        got = logits_with(hf, NULL, NULL, 0, tok, T);
        cr_assert_gt(rel_err(got, want, n), 1e-3, "%s: the adapter must matter", name);
        free(got);
        rm_rf(tmp);
        free(gbase);
        tw_lora_free(a);
        tw_lora_free(a2);
        tw_lora_free(g);
        tw_model_files_free(mf);
        free(want);
        free(lc);
    }
    json_decref(man);
}

/* `tunewise lora merge`: the merged model computes what the base with the adapter applied
 * unmerged computes (F32 base kept F32: within float rounding; --type f16: within fp16
 * rounding of the weights), at --scale 0.5 too. */
Test(lora, cli_merge_equals_unmerged, .timeout = 120)
{
    char stories[512];
    snprintf(stories, sizeof stories, "%s/models/stories260K/stories260K.gguf", tw_test_shared());
    cr_assert(tw_file_exists(stories), "%s missing", stories);
    tw_error err;
    tw_model_files *mf = NULL;
    cr_assert_eq(tw_model_files_open(&mf, stories, &err), TW_OK, "%s", err.msg);
    tw_lora *l = NULL;
    cr_assert_eq(tw_lora_new(&l, tw_model_files_config(mf), TW_LORA_Q | TW_LORA_V | TW_LORA_DOWN, 2, 4.0f,
                             TW_LORA_ROWS_GGUF, &err), TW_OK, "%s", err.msg);
    tw_lora_init_peft(l, 5);
    tw_rng rng;
    tw_rng_seed(&rng, 11);
    for (int32_t i = 0; i < l->n; i++)
        for (int64_t k = 0; k < l->w[i].n_out * l->w[i].rank; k++) l->w[i].b[k] = (float)(tw_rng_uniform(&rng) - 0.5);
    char *tmp = tw_test_tmpdir();
    char *ad = pjoin(tmp, "ad.gguf");
    cr_assert_eq(tw_lora_write_gguf(l, ad, NULL, &err), TW_OK, "%s", err.msg);
    const int32_t tok[] = {1, 403, 407, 261, 378, 429, 280, 261, 1191 % 512, 6};
    const int32_t T = 10;
    const char *bin = getenv("TW_BIN") ? getenv("TW_BIN") : "build/tunewise";
    const struct { const char *type, *scale; float s; double tol; } cases[] = {
        {"keep", "1", 1.0f, 1e-5}, {"f16", "1", 1.0f, 2e-2}, {"keep", "0.5", 0.5f, 1e-5}};
    for (int c = 0; c < 3; c++) {
        char *merged = pjoin(tmp, "merged.gguf"), cmd[2048], *out = NULL, *errs = NULL;
        snprintf(cmd, sizeof cmd, "%s lora merge -m %s --adapter %s --type %s --scale %s -o %s", bin, stories, ad,
                 cases[c].type, cases[c].scale, merged);
        int rc = tw_test_run(cmd, &out, &errs);
        cr_assert_eq(rc, 0, "rc %d: %s", rc, errs);
        free(out);
        free(errs);
        tw_lora *l2 = read_gguf(ad);
        float s = cases[c].s;
        float *want = logits_with(stories, &l2, &s, 1, tok, T);
        float *got = logits_with(merged, NULL, NULL, 0, tok, T);
        float *base = logits_with(stories, NULL, NULL, 0, tok, T);
        const size_t n = (size_t)T * 512;
        const double e = rel_err(got, want, n), eb = rel_err(base, want, n);
        cr_log_info("lora merge --type %s --scale %s: merged vs unmerged %.2e (base vs unmerged %.2e)", cases[c].type,
                    cases[c].scale, e, eb);
        cr_assert_leq(e, cases[c].tol, "%s/%s: %.3e", cases[c].type, cases[c].scale, e);
        cr_assert_gt(eb, 10 * cases[c].tol, "the adapter must matter (%.3e)", eb);
        free(want);
        free(got);
        free(base);
        tw_lora_free(l2);
        free(merged);
    }
    /* errors: a missing adapter names it */
    char cmd[1024], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "%s lora merge -m %s --adapter %s/none.gguf -o %s/x.gguf", bin, stories, tmp, tmp);
    cr_assert_neq(tw_test_run(cmd, &out, &errs), 0);
    cr_assert(strstr(errs, "none.gguf"), "%s", errs);
    free(out);
    free(errs);
    rm_rf(tmp);
    free(ad);
    tw_lora_free(l);
    tw_model_files_free(mf);
}
