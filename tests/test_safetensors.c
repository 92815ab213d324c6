/* test_safetensors.c — the safetensors reader (src/model/safetensors.c), sharded sets, and
 * tw_model_files over Hugging Face folders (src/model/config.c):
 *  - a file written by the reference `safetensors` package reads as it wrote it
 *    (tests/ref/gen_model_fixtures.py: dtypes, shapes, offsets, bytes, metadata);
 *  - strict header validation: each malformed header (lengths, JSON, UTF-8, duplicates,
 *    dtypes, shapes, offsets with holes / overlaps / trailing or missing bytes) is rejected
 *    with a precise message, and truncation at every offset is rejected;
 *  - sharded checkpoints (index.json) and their consistency errors;
 *  - a tiny HF llama folder: HF names mapped to GGUF names, dims reversed, config.json read,
 *    llama3 rope_freqs synthesized as transformers computes the factors. */
#include "testutil.h"

#include "base/base.h"
#include "model/config.h"
#include "model/safetensors.h"

#include <jansson.h>
#include <math.h>

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s (run tests/ref/gen_model_fixtures.py)", path, je.text);
    return j;
}

/* A safetensors image: u64 length, header, `data_len` bytes of data (i * 3). */
static unsigned char *mk(const char *header, size_t data_len, size_t *n)
{
    size_t hl = strlen(header);
    *n = 8 + hl + data_len;
    unsigned char *b = malloc(*n + 1);
    uint64_t h = hl;
    memcpy(b, &h, 8);
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (unsigned char)(i * 3);
    return b;
}

static tw_status open_hdr(const char *header, size_t data_len, tw_error *e)
{
    size_t n;
    unsigned char *b = mk(header, data_len, &n);
    tw_safetensors *st = NULL;
    tw_status s = tw_st_open_memory(&st, b, n, "t.safetensors", e);
    if (s) {
        cr_assert_null(st);
        cr_assert(strncmp(e->msg, "t.safetensors: offset ", 22) == 0, "no file/offset in: %s", e->msg);
    }
    tw_st_free(st);
    free(b);
    return s;
}

#define REJECT(header, data_len, substr)                                                     \
    do {                                                                                     \
        tw_error e_;                                                                         \
        cr_assert_eq(open_hdr(header, data_len, &e_), TW_ERR_PARSE, "accepted: %s", header); \
        cr_assert(strstr(e_.msg, substr), "'%s' lacks '%s'", e_.msg, substr);               \
    } while (0)

Test(safetensors, reads_the_reference_writer_output)
{
    json_t *d = load_json("tests/data/model/st_small.json");
    tw_safetensors *st;
    tw_error e;
    cr_assert_eq(tw_st_open(&st, "tests/data/model/st_small.safetensors", &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_st_file_size(st), (uint64_t)json_integer_value(json_object_get(d, "file_size")));
    cr_assert_eq(tw_st_data_offset(st), 8 + (uint64_t)json_integer_value(json_object_get(d, "header_len")));
    json_t *ts = json_object_get(d, "tensors");
    cr_assert_eq(tw_st_tensor_count(st), (int64_t)json_object_size(ts));
    const char *name;
    json_t *t;
    json_object_foreach(ts, name, t) {
        const tw_st_tensor *x = tw_st_tensor_find(st, name);
        cr_assert_not_null(x, "%s", name);
        cr_assert_str_eq(tw_st_dtype_name(x->dtype), json_string_value(json_object_get(t, "dtype")), "%s", name);
        json_t *shape = json_object_get(t, "shape");
        cr_assert_eq(x->n_dims, json_array_size(shape), "%s", name);
        uint64_t nel = 1;
        for (size_t i = 0; i < json_array_size(shape); i++) {
            cr_assert_eq(x->shape[i], json_integer_value(json_array_get(shape, i)));
            nel *= (uint64_t)x->shape[i];
        }
        cr_assert_eq(x->n_elements, nel);
        json_t *off = json_object_get(t, "data_offsets");
        cr_assert_eq(x->begin, (uint64_t)json_integer_value(json_array_get(off, 0)), "%s", name);
        cr_assert_eq(x->end, (uint64_t)json_integer_value(json_array_get(off, 1)), "%s", name);
        char hex[65];
        tw_sha256(x->data, x->end - x->begin, hex);
        cr_assert_str_eq(hex, json_string_value(json_object_get(t, "sha256")), "%s bytes", name);
    }
    const tw_st_tensor *sc = tw_st_tensor_find(st, "d.scalar");
    cr_assert(sc->n_dims == 0 && sc->n_elements == 1);
    float v;
    memcpy(&v, sc->data, 4);
    cr_assert_eq(v, 2.5f);
    const tw_st_tensor *c = tw_st_tensor_find(st, "c.i64");
    int64_t i64[3];
    memcpy(i64, c->data, 24);
    cr_assert(i64[0] == 0 && i64[2] == 2);
    tw_type ty;
    cr_assert(tw_st_dtype_to_type(c->dtype, &ty) && ty == TW_TYPE_I64);
    cr_assert(!tw_st_dtype_to_type(tw_st_tensor_find(st, "e.u8")->dtype, &ty), "U8 has no GGUF type");
    cr_assert_str_eq(tw_st_metadata(st, "format"), "np");
    cr_assert_str_eq(tw_st_metadata(st, "note"), "tunewise fixture");
    cr_assert_null(tw_st_metadata(st, "absent"));
    cr_assert_null(tw_st_tensor_find(st, "zzz"));
    cr_assert_null(tw_st_tensor_at(st, 5));
    tw_st_free(st);
    tw_st_free(NULL);
    json_decref(d);
}

Test(safetensors, accepts_valid_edge_cases)
{
    tw_error e;
    cr_assert_eq(open_hdr("{}", 0, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(open_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}      ", 8, &e), TW_OK,
                 "trailing spaces after the header: %s", e.msg);
    /* zero-size tensors share an offset with their neighbours */
    cr_assert_eq(open_hdr("{\"z\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
                          "\"a\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[0,4]},"
                          "\"y\":{\"dtype\":\"I8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 4, &e),
                 TW_OK, "%s", e.msg);
    cr_assert_eq(open_hdr("{\"__metadata__\":{},\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1,1,1,1,1,1,1,3],\"data_offsets\":[0,3]}}",
                          3, &e), TW_OK, "%s", e.msg);
}

Test(safetensors, malformed_headers_rejected_precisely)
{
    tw_error e;
    {
        unsigned char b[5] = {1, 0, 0, 0, 0};
        tw_safetensors *st;
        cr_assert_eq(tw_st_open_memory(&st, b, 5, "t.safetensors", &e), TW_ERR_PARSE);
        cr_assert(strstr(e.msg, "t.safetensors: offset 0: truncated: expected the 8-byte header length, the file has 5 bytes"),
                  "%s", e.msg);
    }
    {
        size_t n;
        unsigned char *b = mk("{}", 0, &n);
        uint64_t big = 1000;
        memcpy(b, &big, 8);
        tw_safetensors *st;
        cr_assert_eq(tw_st_open_memory(&st, b, n, "t.safetensors", &e), TW_ERR_PARSE);
        cr_assert(strstr(e.msg, "offset 0: header length 1000 exceeds the 2 bytes after it"), "%s", e.msg);
        big = UINT64_MAX;
        memcpy(b, &big, 8);
        cr_assert_eq(tw_st_open_memory(&st, b, n, "t.safetensors", &e), TW_ERR_PARSE);
        cr_assert(strstr(e.msg, "header length 18446744073709551615 exceeds"), "%s", e.msg);
        free(b);
    }
    REJECT("{", 0, "offset 0: header length 1: expected at least");
    REJECT("[1]", 0, "offset 8: expected the JSON header to start with '{'");
    REJECT(" {}", 0, "expected the JSON header to start with '{'");
    REJECT("{\"a\": }", 0, "offset 15: header JSON: unexpected token");
    REJECT("{\"\xff\":1}", 0, "offset 10: header is not valid UTF-8");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
           "\"data_offsets\":[4,8]}}",
           8, "duplicate object key");
    REJECT("{\"a\":1}", 0, "offset 9: tensor 'a': expected an object");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}", 4,
           "tensor 'a': unexpected field 'foo'");
    REJECT("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': expected a string \"dtype\"");
    REJECT("{\"a\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a': unknown dtype 'F17'");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,4]}}", 4, "expected an array \"shape\"");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0]: expected a non-negative integer");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0]: expected a non-negative integer");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "9 dimensions");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "expected \"data_offsets\": [begin, end]");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "expected 0 <= begin <= end");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
           "tensor 'a': data_offsets [0, 4] hold 4 bytes, expected 8 (2 elements of F32)");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1073741824],\"data_offsets\":[0,4]}}", 4,
           "tensor 'a': element count overflows 64 bits");
    REJECT("{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4,
           "tensor 'a': byte size overflows 64 bits");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,100000000000000000000000]}}", 4, "header JSON");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
           "tensor 'a': data starts at 4, expected 0 (tensor data must be contiguous, without holes)");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],"
           "\"data_offsets\":[8,12]}}",
           12, "offset 62: tensor 'b': data starts at 8, expected 4");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
           "\"data_offsets\":[4,12]}}",
           12, "tensor 'b': data [4, 12) overlaps the previous tensor, which ends at 8");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6,
           "tensor data ends at 4 but the data section holds 6 bytes (trailing bytes)");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 5,
           "tensor data ends at 8 but the data section holds 5 bytes (file truncated)");
    REJECT("{\"__metadata__\":[1]}", 0, "__metadata__: expected an object of strings");
    REJECT("{\"__metadata__\":{\"x\":1}}", 0, "__metadata__['x']: expected a string value");
    REJECT("{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "expected a non-empty tensor name");
    REJECT("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "header JSON");
}

Test(safetensors, truncated_at_every_offset)
{
    size_t n;
    unsigned char *b;
    tw_error e;
    char *all;
    cr_assert_eq(tw_file_read("tests/data/model/st_small.safetensors", &all, &n, &e), TW_OK);
    b = (unsigned char *)all;
    for (size_t cut = 0; cut < n; cut++) {
        unsigned char *c = malloc(cut ? cut : 1);
        memcpy(c, b, cut);
        tw_safetensors *st;
        cr_assert_eq(tw_st_open_memory(&st, c, cut, "cut.safetensors", &e), TW_ERR_PARSE, "cut at %zu accepted", cut);
        cr_assert(strncmp(e.msg, "cut.safetensors: offset ", 24) == 0, "%s", e.msg);
        free(c);
    }
    /* and every header byte flipped: never a crash (ASan), errors carry an offset */
    for (size_t i = 0; i < 8 + 360; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            tw_safetensors *st;
            tw_status s = tw_st_open_memory(&st, b, n, "flip.safetensors", &e);
            if (s == TW_OK) {
                for (int64_t k = 0; k < tw_st_tensor_count(st); k++) {
                    const tw_st_tensor *t = tw_st_tensor_at(st, k);
                    if (t->end > t->begin) (void)*((volatile const char *)t->data + (t->end - t->begin - 1));
                }
                tw_st_free(st);
            } else {
                cr_assert(strncmp(e.msg, "flip.safetensors: offset ", 25) == 0, "%s", e.msg);
            }
            b[i] ^= (unsigned char)(1u << bit);
        }
    free(b);
}

/* ---- sharded sets --------------------------------------------------------- */
static void cp(const char *from, const char *to)
{
    char *d;
    size_t n;
    tw_error e;
    cr_assert_eq(tw_file_read(from, &d, &n, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_file_write_atomic(to, d, n, &e), TW_OK, "%s", e.msg);
    free(d);
}

Test(safetensors, sharded_set_matches_single_file)
{
    json_t *ref = load_json("tests/data/model/hf_tiny.json");
    json_t *sha = json_object_get(ref, "sha256");
    tw_st_set *one, *two;
    tw_error e;
    cr_assert_eq(tw_st_set_open(&one, "tests/data/model/hf_tiny", &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_st_set_open(&two, "tests/data/model/hf_tiny_sharded", &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_st_set_file_count(one), 1);
    cr_assert_eq(tw_st_set_file_count(two), 2);
    cr_assert_eq(tw_st_set_tensor_count(one), (int64_t)json_object_size(sha));
    cr_assert_eq(tw_st_set_tensor_count(two), (int64_t)json_object_size(sha));
    const char *name;
    json_t *h;
    json_object_foreach(sha, name, h) {
        const tw_st_tensor *a = tw_st_set_tensor_find(one, name), *b = tw_st_set_tensor_find(two, name);
        cr_assert(a && b, "%s", name);
        cr_assert_eq(a->dtype, TW_ST_BF16);
        char hex[65];
        tw_sha256(b->data, b->end - b->begin, hex);
        cr_assert_str_eq(hex, json_string_value(h), "%s bytes", name);
        cr_assert(a->end - a->begin == b->end - b->begin && memcmp(a->data, b->data, a->end - a->begin) == 0);
    }
    cr_assert_eq(tw_st_set_bytes(two), tw_st_file_size(tw_st_set_file(two, 0)) + tw_st_file_size(tw_st_set_file(two, 1)));
    cr_assert_not_null(tw_st_set_tensor_at(two, tw_st_set_tensor_count(two) - 1));
    cr_assert_null(tw_st_set_tensor_at(two, tw_st_set_tensor_count(two)));
    tw_st_set_free(one);
    tw_st_set_free(two);
    /* direct paths: the index file, a single shard */
    cr_assert_eq(tw_st_set_open(&two, "tests/data/model/hf_tiny_sharded/model.safetensors.index.json", &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_st_set_file_count(two), 2);
    tw_st_set_free(two);
    cr_assert_eq(tw_st_set_open(&two, "tests/data/model/hf_tiny_sharded/model-00002-of-00002.safetensors", &e), TW_OK);
    cr_assert_eq(tw_st_set_file_count(two), 1);
    tw_st_set_free(two);
    json_decref(ref);
}

/* A sharded folder with index.json text `idx` in a fresh temp dir (shards copied). */
static char *shard_dir(const char *idx)
{
    char *d = tw_test_tmpdir();
    char to[512];
    const char *shards[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int i = 0; i < 2; i++) {
        char from[512];
        snprintf(from, sizeof from, "tests/data/model/hf_tiny_sharded/%s", shards[i]);
        snprintf(to, sizeof to, "%s/%s", d, shards[i]);
        cp(from, to);
    }
    free(tw_test_write(d, "model.safetensors.index.json", idx));
    return d;
}

static char *index_text(const char *edit_from, const char *edit_to)
{
    char *t;
    size_t n;
    tw_error e;
    cr_assert_eq(tw_file_read("tests/data/model/hf_tiny_sharded/model.safetensors.index.json", &t, &n, &e), TW_OK);
    if (!edit_from) return t;
    char *at = strstr(t, edit_from);
    cr_assert_not_null(at, "%s", edit_from);
    size_t fl = strlen(edit_from), tl = strlen(edit_to);
    char *o = malloc(n + tl + 1);
    memcpy(o, t, (size_t)(at - t));
    memcpy(o + (at - t), edit_to, tl);
    strcpy(o + (at - t) + tl, at + fl);
    free(t);
    return o;
}

static void expect_set_error(const char *from, const char *to, tw_status want, const char *substr)
{
    char *idx = index_text(from, to);
    char *d = shard_dir(idx);
    tw_st_set *s;
    tw_error e;
    cr_assert_eq(tw_st_set_open(&s, d, &e), want, "'%s' -> '%s' gave: %s", from, to, e.msg);
    cr_assert(strstr(e.msg, substr), "'%s' lacks '%s'", e.msg, substr);
    free(idx);
    free(d);
}

Test(safetensors, sharded_index_errors)
{
    /* the map names a tensor the shards lack */
    expect_set_error("\"weight_map\": {", "\"weight_map\": {\"ghost.weight\": \"model-00001-of-00002.safetensors\", ",
                     TW_ERR_INVALID, "tensor 'ghost.weight' is listed in the weight_map (shard 'model-00001-of-00002.safetensors') but missing");
    expect_set_error("\"weight_map\": {", "\"weight_map\": {\"ghost.weight\": \"model-00002-of-00002.safetensors\", ",
                     TW_ERR_INVALID, "tensor 'ghost.weight' is listed in the weight_map (shard 'model-00002-of-00002.safetensors') but missing");
    /* a tensor mapped to the other shard */
    expect_set_error("\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\"",
                     "\"model.embed_tokens.weight\": \"model-00002-of-00002.safetensors\"", TW_ERR_INVALID,
                     "tensor 'model.embed_tokens.weight' is in shard 'model-00001-of-00002.safetensors' but the weight_map says 'model-00002-of-00002.safetensors'");
    /* a tensor left out of the map */
    expect_set_error("\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\",", "", TW_ERR_INVALID,
                     "tensor 'model.embed_tokens.weight' of shard 'model-00001-of-00002.safetensors' is not in the weight_map");
    expect_set_error("\"model.norm.weight\": \"model-00001-of-00002.safetensors\"", "\"model.norm.weight\": \"../x.safetensors\"",
                     TW_ERR_INVALID, "'../x.safetensors' is not a plain file name");
    expect_set_error("\"model.norm.weight\": \"model-00001-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"",
                     TW_ERR_IO, "shard 2 of 3: ");
    expect_set_error("\"model.norm.weight\": \"model-00001-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"",
                     TW_ERR_IO, "model-00003-of-00003.safetensors: cannot open: No such file");
    expect_set_error("\"weight_map\"", "\"weights\"", TW_ERR_PARSE, "expected an object \"weight_map\"");
    expect_set_error("{", "[", TW_ERR_PARSE, "model.safetensors.index.json:");
    char *d = tw_test_tmpdir();
    tw_st_set *s;
    tw_error e;
    cr_assert_eq(tw_st_set_open(&s, d, &e), TW_ERR_IO);
    cr_assert(strstr(e.msg, "no model.safetensors or model.safetensors.index.json in this folder"), "%s", e.msg);
    free(d);
}

/* ---- Hugging Face folders through tw_model_files ----------------------------------- */
Test(safetensors, hf_folder_as_model_files)
{
    json_t *ref = load_json("tests/data/model/hf_tiny.json");
    const char *dirs[] = {"tests/data/model/hf_tiny", "tests/data/model/hf_tiny_sharded"};
    for (int k = 0; k < 2; k++) {
        tw_model_files *m;
        tw_error e;
        cr_assert_eq(tw_model_files_open(&m, dirs[k], &e), TW_OK, "%s", e.msg);
        cr_assert_eq(tw_model_files_source(m), TW_MODEL_SRC_HF);
        cr_assert_null(tw_model_files_gguf(m));
        const tw_model_config *c = tw_model_files_config(m);
        cr_assert_eq(c->arch, TW_ARCH_LLAMA);
        cr_assert(c->n_layer == 2 && c->n_embd == 32 && c->n_head == 4 && c->n_head_kv == 2 && c->head_dim == 8);
        cr_assert(c->n_ff == 64 && c->n_vocab == 300 && c->n_ctx_train == 256);
        cr_assert_eq(c->rms_eps, 1e-5f);
        cr_assert_eq(c->rope_type, TW_ROPE_NEOX, "HF llama tensors are not permuted: NEOX rope");
        cr_assert_eq(c->rope_scaling, TW_ROPE_SCALING_LLAMA3);
        cr_assert_eq(c->rope_scale, 8.0f);
        cr_assert(!c->tied_embeddings);
        cr_assert(c->bos_id == 1 && c->eos_id == 2);
        /* 2 + 2 * 9 + 1 tensors from the file, + rope_freqs */
        cr_assert_eq(tw_model_files_tensor_count(m), 22);
        const tw_model_tensor *t = tw_model_files_tensor_find(m, "token_embd.weight");
        cr_assert_not_null(t);
        cr_assert_str_eq(t->src_name, "model.embed_tokens.weight");
        cr_assert(t->type == TW_TYPE_BF16 && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 300 && t->nbytes == 300 * 32 * 2);
        t = tw_model_files_tensor_find(m, "blk.1.attn_k.weight");
        cr_assert(t && t->ne[0] == 32 && t->ne[1] == 16, "k_proj (16, 32) -> ne [32, 16]");
        cr_assert_str_eq(t->src_name, "model.layers.1.self_attn.k_proj.weight");
        t = tw_model_files_tensor_find(m, "blk.0.ffn_down.weight");
        cr_assert(t && t->ne[0] == 64 && t->ne[1] == 32);
        cr_assert_not_null(tw_model_files_tensor_find(m, "output.weight"));
        cr_assert_not_null(tw_model_files_tensor_find(m, "output_norm.weight"));
        cr_assert_not_null(tw_model_files_tensor_find(m, "blk.1.ffn_norm.weight"));
        t = tw_model_files_tensor_find(m, "rope_freqs.weight");
        cr_assert(t && t->type == TW_TYPE_F32 && t->ne[0] == 4);
        json_t *fac = json_object_get(ref, "rope_factors");
        for (size_t i = 0; i < 4; i++) {
            double want = json_real_value(json_array_get(fac, i));
            double got = ((const float *)t->data)[i];
            cr_assert(fabs(got - want) <= 1e-6 * want, "rope factor %zu: %.9g vs transformers %.9g", i, got, want);
        }
        cr_assert_eq(tw_model_files_check(m, &e), TW_OK, "%s", e.msg);
        if (k == 0) {
            cr_assert(strstr(tw_model_files_tokenizer_json(m), "hf_tiny/tokenizer.json"));
            cr_assert(strstr(tw_model_files_tokenizer_config(m), "hf_tiny/tokenizer_config.json"));
        } else {
            cr_assert_null(tw_model_files_tokenizer_json(m));
        }
        cr_assert_eq(tw_model_config_n_params(c), 2 * 300 * 32 + 32 + 2 * (32 + 32 * 32 + 2 * 32 * 16 + 32 * 32 + 32 + 3 * 32 * 64));
        tw_model_files_free(m);
    }
    tw_model_files_free(NULL);
    json_decref(ref);
}

static char *hf_dir_with_config(const char *config)
{
    char *d = tw_test_tmpdir();
    char to[512];
    snprintf(to, sizeof to, "%s/model.safetensors", d);
    cp("tests/data/model/hf_tiny/model.safetensors", to);
    free(tw_test_write(d, "config.json", config));
    return d;
}

Test(safetensors, hf_config_variants_and_errors)
{
    tw_model_config c;
    tw_error e;
    char *d = tw_test_tmpdir();
    char *p = tw_test_write(d, "q2.json",
                            "{\"model_type\":\"qwen2\",\"hidden_size\":896,\"num_hidden_layers\":24,\"num_attention_heads\":14,"
                            "\"num_key_value_heads\":2,\"intermediate_size\":4864,\"vocab_size\":151936,\"rope_theta\":1000000.0,"
                            "\"rms_norm_eps\":1e-06,\"tie_word_embeddings\":true,\"bos_token_id\":151643,\"eos_token_id\":[151645,151643],"
                            "\"max_position_embeddings\":32768,\"rope_scaling\":null}");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_OK, "%s", e.msg);
    cr_assert(c.arch == TW_ARCH_QWEN2 && c.attn_bias && !c.qk_norm && c.tied_embeddings && c.head_dim == 64);
    cr_assert(c.eos_id == 151645 && c.bos_id == 151643 && c.rope_freq_base == 1e6f && c.rms_eps == 1e-6f);
    cr_assert_eq(c.rope_scaling, TW_ROPE_SCALING_NONE);
    free(p);
    /* compare with the built-in shape of the same model */
    const tw_model_shape *s = tw_model_shape_find("qwen2.5-0.5b");
    cr_assert(s && s->cfg.n_embd == c.n_embd && s->cfg.n_layer == c.n_layer && s->cfg.n_ff == c.n_ff && s->cfg.n_vocab == c.n_vocab);
    p = tw_test_write(d, "q3.json",
                      "{\"architectures\":[\"Qwen3ForCausalLM\"],\"hidden_size\":1024,\"num_hidden_layers\":28,\"num_attention_heads\":16,"
                      "\"num_key_value_heads\":8,\"head_dim\":128,\"intermediate_size\":3072,\"vocab_size\":151936,\"rope_theta\":1000000,"
                      "\"model_max_length\":1e30}");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_OK, "%s", e.msg);
    cr_assert(c.arch == TW_ARCH_QWEN3 && c.qk_norm && !c.attn_bias && c.head_dim == 128 && c.n_rot == 128);
    cr_assert(!c.tied_embeddings, "transformers' default when the key is absent");
    cr_assert_eq(c.n_ctx_train, 2048);
    cr_assert_eq(tw_model_config_kv_bytes(&c, 1024, 2), 2ull * 28 * 8 * 128 * 1024 * 2);
    free(p);
    p = tw_test_write(d, "bad1.json", "{\"model_type\":\"gpt2\",\"hidden_size\":8}");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_ERR_UNSUPPORTED);
    cr_assert(strstr(e.msg, "model_type 'gpt2' is not supported"), "%s", e.msg);
    free(p);
    p = tw_test_write(d, "bad2.json", "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                                      "\"intermediate_size\":128}");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "bad2.json: \"vocab_size\": missing"), "%s", e.msg);
    free(p);
    p = tw_test_write(d, "bad3.json", "{\"model_type\":\"llama\",\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                                      "\"num_key_value_heads\":3,\"intermediate_size\":128,\"vocab_size\":10}");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "KV head count 3 must be >= 1 and divide the head count 4"), "%s", e.msg);
    free(p);
    p = tw_test_write(d, "bad4.json", "{\"model_type\":\"llama\",\"hidden_size\":-64}");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "\"hidden_size\": expected a positive integer"), "%s", e.msg);
    free(p);
    p = tw_test_write(d, "bad5.json", "{\"model_type\": ");
    cr_assert_eq(tw_model_config_from_hf(&c, p, &e), TW_ERR_PARSE);
    free(p);
    cr_assert_eq(tw_model_config_from_hf(&c, "/nonexistent/config.json", &e), TW_ERR_IO, "%s", e.msg);
    free(d);

    /* folder-level: wrong shapes for the config are caught by the check, not at open */
    tw_model_files *m;
    d = hf_dir_with_config("{\"model_type\":\"llama\",\"hidden_size\":32,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                           "\"num_key_value_heads\":4,\"intermediate_size\":64,\"vocab_size\":300}");
    cr_assert_eq(tw_model_files_open(&m, d, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_model_files_check(m, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "tensor 'blk.0.attn_k.weight': expected dims [32, 32], found [32, 16, 1, 1]"), "%s", e.msg);
    tw_model_files_free(m);
    free(d);
    d = hf_dir_with_config("{\"model_type\":\"llama\",\"hidden_size\":32,\"num_hidden_layers\":1,\"num_attention_heads\":4,"
                           "\"num_key_value_heads\":2,\"intermediate_size\":64,\"vocab_size\":300}");
    cr_assert_eq(tw_model_files_open(&m, d, &e), TW_OK, "%s", e.msg);
    cr_assert_eq(tw_model_files_check(m, &e), TW_ERR_INVALID);
    cr_assert(strstr(e.msg, "layer 1 is beyond the block count 1"), "%s", e.msg);
    tw_model_files_free(m);
    free(d);
    d = tw_test_tmpdir();
    cr_assert_eq(tw_model_files_open(&m, d, &e), TW_ERR_IO);
    cr_assert(strstr(e.msg, "no config.json in this folder"), "%s", e.msg);
    cr_assert_null(m);
    free(d);
}
