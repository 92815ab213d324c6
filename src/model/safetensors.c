/* safetensors.c — mmap reader of .safetensors files with strict header validation, and
 * sharded sets (model.safetensors.index.json). Spec: huggingface/safetensors README.
 * Deliberately not here: HF -> GGUF tensor naming and config.json (config.c). */
#include "model/safetensors.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} DTYPES[TW_ST_DTYPE_COUNT] = {
    [TW_ST_BOOL] = {"BOOL", 1}, [TW_ST_U8] = {"U8", 1},   [TW_ST_I8] = {"I8", 1},
    [TW_ST_F8_E5M2] = {"F8_E5M2", 1}, [TW_ST_F8_E4M3] = {"F8_E4M3", 1},
    [TW_ST_I16] = {"I16", 2}, [TW_ST_U16] = {"U16", 2},   [TW_ST_F16] = {"F16", 2},
    [TW_ST_BF16] = {"BF16", 2}, [TW_ST_I32] = {"I32", 4}, [TW_ST_U32] = {"U32", 4},
    [TW_ST_F32] = {"F32", 4}, [TW_ST_I64] = {"I64", 8},   [TW_ST_U64] = {"U64", 8},
    [TW_ST_F64] = {"F64", 8},
};

const char *tw_st_dtype_name(tw_st_dtype d) { return (unsigned)d < TW_ST_DTYPE_COUNT ? DTYPES[d].name : "?"; }
size_t tw_st_dtype_size(tw_st_dtype d) { return (unsigned)d < TW_ST_DTYPE_COUNT ? DTYPES[d].size : 0; }

bool tw_st_dtype_to_type(tw_st_dtype d, tw_type *out)
{
    switch (d) {
    case TW_ST_F32: *out = TW_TYPE_F32; return true;
    case TW_ST_F16: *out = TW_TYPE_F16; return true;
    case TW_ST_BF16: *out = TW_TYPE_BF16; return true;
    case TW_ST_F64: *out = TW_TYPE_F64; return true;
    case TW_ST_I8: *out = TW_TYPE_I8; return true;
    case TW_ST_I16: *out = TW_TYPE_I16; return true;
    case TW_ST_I32: *out = TW_TYPE_I32; return true;
    case TW_ST_I64: *out = TW_TYPE_I64; return true;
    default: return false;
    }
}

struct tw_safetensors {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    uint64_t header_len;
    int64_t n;
    tw_st_tensor *t;
    char **names;
    char **meta_keys, **meta_vals;
    int64_t n_meta;
    int64_t *hash;
    uint64_t hash_cap;
};

static tw_status serr(const tw_safetensors *st, tw_error *err, uint64_t off, tw_status s, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static tw_status serr(const tw_safetensors *st, tw_error *err, uint64_t off, tw_status s, const char *fmt, ...)
{
    char msg[TW_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tw_error_set(err, s, "%s: offset %llu: %s", st->path, (unsigned long long)off, msg);
}

/* File offset of a header key (first occurrence of "key"), for error messages. */
static uint64_t key_offset(const tw_safetensors *st, const char *key)
{
    size_t kl = strlen(key);
    const char *h = (const char *)st->base + 8;
    for (uint64_t i = 0; i + kl + 2 <= st->header_len; i++)
        if (h[i] == '"' && memcmp(h + i + 1, key, kl) == 0 && h[i + 1 + kl] == '"') return 8 + i;
    return 8;
}

static uint64_t h64(const char *s) { return tw_hash64(s, strlen(s), 0x5afe7e45ULL); }

static int64_t hash_find(const tw_safetensors *st, const char *name)
{
    if (!st->hash_cap) return -1;
    uint64_t mask = st->hash_cap - 1;
    for (uint64_t h = h64(name) & mask;; h = (h + 1) & mask) {
        int64_t i = st->hash[h];
        if (i < 0) return -1;
        if (strcmp(st->t[i].name, name) == 0) return i;
    }
}

static int cmp_begin(const void *a, const void *b, void *ctx)
{
    const tw_st_tensor *t = ctx;
    const tw_st_tensor *x = &t[*(const int64_t *)a], *y = &t[*(const int64_t *)b];
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static tw_status parse_entry(tw_safetensors *st, const char *name, json_t *v, tw_st_tensor *t, tw_error *err)
{
    uint64_t at = key_offset(st, name);
    if (!json_is_object(v)) return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': expected an object", name);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': unexpected field '%s' (expected dtype, shape, data_offsets)",
                        name, k);
    }
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"), *of = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': expected a string \"dtype\"", name);
    int d = -1;
    for (int i = 0; i < TW_ST_DTYPE_COUNT; i++)
        if (strcmp(json_string_value(dt), DTYPES[i].name) == 0) d = i;
    if (d < 0) return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': unknown dtype '%s'", name, json_string_value(dt));
    t->dtype = (tw_st_dtype)d;
    if (!json_is_array(sh)) return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': expected an array \"shape\"", name);
    size_t nd = json_array_size(sh);
    if (nd > TW_ST_MAX_DIMS)
        return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': %zu dimensions (at most %d supported)", name, nd, TW_ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    uint64_t nel = 1;
    for (size_t i = 0; i < TW_ST_MAX_DIMS; i++) t->shape[i] = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *e = json_array_get(sh, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0)
            return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': shape[%zu]: expected a non-negative integer", name, i);
        t->shape[i] = (int64_t)json_integer_value(e);
        if (__builtin_mul_overflow(nel, (uint64_t)t->shape[i], &nel))
            return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': element count overflows 64 bits", name);
    }
    t->n_elements = nel;
    if (!json_is_array(of) || json_array_size(of) != 2 || !json_is_integer(json_array_get(of, 0)) ||
        !json_is_integer(json_array_get(of, 1)))
        return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': expected \"data_offsets\": [begin, end]", name);
    json_int_t b = json_integer_value(json_array_get(of, 0)), e = json_integer_value(json_array_get(of, 1));
    if (b < 0 || e < b)
        return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': data_offsets [%lld, %lld]: expected 0 <= begin <= end", name,
                    (long long)b, (long long)e);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    uint64_t want;
    if (__builtin_mul_overflow(nel, (uint64_t)DTYPES[d].size, &want))
        return serr(st, err, at, TW_ERR_PARSE, "tensor '%s': byte size overflows 64 bits", name);
    if (t->end - t->begin != want)
        return serr(st, err, at, TW_ERR_PARSE,
                    "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, expected %llu (%llu elements of %s)", name,
                    (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)(t->end - t->begin),
                    (unsigned long long)want, (unsigned long long)nel, DTYPES[d].name);
    return TW_OK;
}

static tw_status parse(tw_safetensors *st, tw_error *err)
{
    if (st->size < 8)
        return serr(st, err, 0, TW_ERR_PARSE, "truncated: expected the 8-byte header length, the file has %llu bytes",
                    (unsigned long long)st->size);
    uint64_t n;
    memcpy(&n, st->base, 8);
    if (n > st->size - 8)
        return serr(st, err, 0, TW_ERR_PARSE, "header length %llu exceeds the %llu bytes after it", (unsigned long long)n,
                    (unsigned long long)(st->size - 8));
    if (n > TW_ST_MAX_HEADER)
        return serr(st, err, 0, TW_ERR_PARSE, "header length %llu exceeds the limit of %u bytes", (unsigned long long)n,
                    TW_ST_MAX_HEADER);
    if (n < 2) return serr(st, err, 0, TW_ERR_PARSE, "header length %llu: expected at least \"{}\"", (unsigned long long)n);
    st->header_len = n;
    const char *h = (const char *)st->base + 8;
    if (h[0] != '{') return serr(st, err, 8, TW_ERR_PARSE, "expected the JSON header to start with '{'");
    size_t bad;
    if (!tw_utf8_valid(h, (size_t)n, &bad)) return serr(st, err, 8 + bad, TW_ERR_PARSE, "header is not valid UTF-8");
    json_error_t je;
    json_t *root = json_loadb(h, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root) return serr(st, err, 8 + (uint64_t)(je.position > 0 ? je.position : 0), TW_ERR_PARSE, "header JSON: %s", je.text);
    tw_status s = TW_OK;
    if (!json_is_object(root)) {
        json_decref(root);
        return serr(st, err, 8, TW_ERR_PARSE, "expected the header to be a JSON object");
    }
    size_t cap = json_object_size(root);
    st->t = calloc(cap ? cap : 1, sizeof *st->t);
    st->names = calloc(cap ? cap : 1, sizeof *st->names);
    if (!st->t || !st->names) {
        json_decref(root);
        return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", st->path);
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                s = serr(st, err, key_offset(st, k), TW_ERR_PARSE, "__metadata__: expected an object of strings");
                break;
            }
            size_t m = json_object_size(v);
            st->meta_keys = calloc(m ? m : 1, sizeof *st->meta_keys);
            st->meta_vals = calloc(m ? m : 1, sizeof *st->meta_vals);
            if (!st->meta_keys || !st->meta_vals) {
                s = tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", st->path);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    s = serr(st, err, key_offset(st, mk), TW_ERR_PARSE, "__metadata__['%s']: expected a string value", mk);
                    break;
                }
                st->meta_keys[st->n_meta] = strdup(mk);
                st->meta_vals[st->n_meta] = strdup(json_string_value(mv));
                st->n_meta++;
                if (!st->meta_keys[st->n_meta - 1] || !st->meta_vals[st->n_meta - 1]) {
                    s = tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", st->path);
                    break;
                }
            }
            if (s) break;
            continue;
        }
        if (k[0] == '\0') {
            s = serr(st, err, 8, TW_ERR_PARSE, "expected a non-empty tensor name");
            break;
        }
        tw_st_tensor *t = &st->t[st->n];
        st->names[st->n] = strdup(k);
        if (!st->names[st->n]) {
            s = tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", st->path);
            break;
        }
        t->name = st->names[st->n];
        st->n++;
        if ((s = parse_entry(st, k, v, t, err))) break;
    }
    json_decref(root);
    if (s) return s;

    /* byte ranges: contiguous from 0 to the end of the file */
    uint64_t data_size = st->size - 8 - n;
    int64_t *ord = malloc((size_t)(st->n ? st->n : 1) * sizeof *ord);
    if (!ord) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", st->path);
    for (int64_t i = 0; i < st->n; i++) ord[i] = i;
    qsort_r(ord, (size_t)st->n, sizeof *ord, cmp_begin, st->t);
    uint64_t expect = 0;
    for (int64_t i = 0; i < st->n && !s; i++) {
        const tw_st_tensor *t = &st->t[ord[i]];
        if (t->begin != expect) {
            if (t->begin < expect)
                s = serr(st, err, key_offset(st, t->name), TW_ERR_PARSE,
                         "tensor '%s': data [%llu, %llu) overlaps the previous tensor, which ends at %llu", t->name,
                         (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)expect);
            else
                s = serr(st, err, key_offset(st, t->name), TW_ERR_PARSE,
                         "tensor '%s': data starts at %llu, expected %llu (tensor data must be contiguous, without holes)",
                         t->name, (unsigned long long)t->begin, (unsigned long long)expect);
        }
        expect = t->end;
    }
    free(ord);
    if (s) return s;
    if (expect != data_size)
        return serr(st, err, 8 + n + (expect < data_size ? expect : data_size), TW_ERR_PARSE,
                    "tensor data ends at %llu but the data section holds %llu bytes (%s)", (unsigned long long)expect,
                    (unsigned long long)data_size, expect > data_size ? "file truncated" : "trailing bytes");
    for (int64_t i = 0; i < st->n; i++) st->t[i].data = st->base + 8 + n + st->t[i].begin;

    uint64_t hc = 16;
    while (hc < (uint64_t)st->n * 2) hc <<= 1;
    st->hash = malloc(hc * sizeof *st->hash);
    if (!st->hash) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", st->path);
    for (uint64_t i = 0; i < hc; i++) st->hash[i] = -1;
    st->hash_cap = hc;
    for (int64_t i = 0; i < st->n; i++) {
        uint64_t hh = h64(st->t[i].name) & (hc - 1);
        while (st->hash[hh] >= 0) hh = (hh + 1) & (hc - 1);
        st->hash[hh] = i;
    }
    return TW_OK;
}

static tw_status finish_open(tw_safetensors **out, tw_safetensors *st, tw_error *err)
{
    tw_status s = parse(st, err);
    if (s) {
        tw_st_free(st);
        return s;
    }
    *out = st;
    return TW_OK;
}

tw_status tw_st_open_memory(tw_safetensors **out, const void *data, size_t size, const char *name, tw_error *err)
{
    *out = NULL;
    tw_safetensors *st = calloc(1, sizeof *st);
    if (!st) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    st->path = tw_strdup(name ? name : "(memory)", err);
    if (!st->path) {
        free(st);
        return TW_ERR_NOMEM;
    }
    st->base = size ? data : (const uint8_t *)"";
    st->size = size;
    return finish_open(out, st, err);
}

tw_status tw_st_open(tw_safetensors **out, const char *path, tw_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tw_error_set(err, TW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tw_error_set(err, TW_ERR_IO, "%s: not a regular file", path);
    }
    tw_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        close(fd);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    st->size = (uint64_t)sb.st_size;
    st->base = (const uint8_t *)"";
    if (st->size) {
        void *m = mmap(NULL, (size_t)st->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            tw_status s = tw_error_set(err, TW_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
            close(fd);
            free(st->path);
            free(st);
            return s;
        }
        st->base = m;
        st->mapped = true;
    }
    close(fd);
    return finish_open(out, st, err);
}

void tw_st_free(tw_safetensors *st)
{
    if (!st) return;
    for (int64_t i = 0; i < st->n; i++) free(st->names[i]);
    for (int64_t i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_vals[i]);
    }
    free(st->names);
    free(st->meta_keys);
    free(st->meta_vals);
    free(st->t);
    free(st->hash);
    if (st->mapped) munmap((void *)st->base, (size_t)st->size);
    free(st->path);
    free(st);
}

const char *tw_st_path(const tw_safetensors *st) { return st->path; }
uint64_t tw_st_file_size(const tw_safetensors *st) { return st->size; }
uint64_t tw_st_data_offset(const tw_safetensors *st) { return 8 + st->header_len; }
int64_t tw_st_tensor_count(const tw_safetensors *st) { return st->n; }
const tw_st_tensor *tw_st_tensor_at(const tw_safetensors *st, int64_t i) { return i >= 0 && i < st->n ? &st->t[i] : NULL; }

const tw_st_tensor *tw_st_tensor_find(const tw_safetensors *st, const char *name)
{
    int64_t i = hash_find(st, name);
    return i >= 0 ? &st->t[i] : NULL;
}

const char *tw_st_metadata(const tw_safetensors *st, const char *key)
{
    for (int64_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_vals[i];
    return NULL;
}

/* ---- sets ------------------------------------------------------------------ */
struct tw_st_set {
    tw_safetensors **files;
    int n_files;
    int64_t n_tensors;
    uint64_t bytes;
};

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static tw_status set_add(tw_st_set *s, const char *path, tw_error *err)
{
    tw_safetensors **f = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *f);
    if (!f) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    s->files = f;
    tw_status st = tw_st_open(&s->files[s->n_files], path, err);
    if (st) return st;
    s->bytes += s->files[s->n_files]->size;
    s->n_tensors += s->files[s->n_files]->n;
    s->n_files++;
    return TW_OK;
}

static tw_status open_index(tw_st_set *s, const char *index_path, tw_error *err)
{
    char *text = NULL;
    size_t len;
    tw_status st = tw_file_read(index_path, &text, &len, err);
    if (st) return st;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) return tw_error_set(err, TW_ERR_PARSE, "%s:%d:%d: %s", index_path, je.line, je.column, je.text);
    json_t *map = json_object_get(root, "weight_map");
    if (!json_is_object(map)) {
        json_decref(root);
        return tw_error_set(err, TW_ERR_PARSE, "%s: expected an object \"weight_map\"", index_path);
    }
    char *dir = strdup(index_path);
    if (!dir) {
        json_decref(root);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else strcpy(dir, ".");
    /* shard names in first-seen order */
    const char *k;
    json_t *v;
    char **shards = NULL;
    int n_shards = 0;
    json_object_foreach(map, k, v) {
        if (!json_is_string(v)) {
            st = tw_error_set(err, TW_ERR_PARSE, "%s: weight_map['%s']: expected a file name string", index_path, k);
            break;
        }
        const char *f = json_string_value(v);
        if (!f[0] || strchr(f, '/') || strcmp(f, "..") == 0 || strcmp(f, ".") == 0) {
            st = tw_error_set(err, TW_ERR_INVALID, "%s: weight_map['%s']: '%s' is not a plain file name in the index's folder",
                              index_path, k, f);
            break;
        }
        bool seen = false;
        for (int i = 0; i < n_shards; i++)
            if (strcmp(shards[i], f) == 0) seen = true;
        if (!seen) {
            char **ns = realloc(shards, (size_t)(n_shards + 1) * sizeof *ns);
            if (!ns) {
                st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
                break;
            }
            shards = ns;
            shards[n_shards++] = (char *)f;
        }
    }
    for (int i = 0; i < n_shards && !st; i++) {
        char *p = path_join(dir, shards[i]);
        if (!p) {
            st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
            break;
        }
        st = set_add(s, p, err);
        if (st) tw_error_prefix(err, "%s: shard %d of %d: ", index_path, i + 1, n_shards);
        free(p);
    }
    /* every tensor of a shard must be mapped to that shard */
    for (int i = 0; i < s->n_files && !st; i++) {
        const tw_safetensors *f = s->files[i];
        for (int64_t t = 0; t < f->n && !st; t++) {
            json_t *want = json_object_get(map, f->t[t].name);
            if (!want)
                st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s' of shard '%s' is not in the weight_map", index_path,
                                  f->t[t].name, shards[i]);
            else if (strcmp(json_string_value(want), shards[i]) != 0)
                st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s' is in shard '%s' but the weight_map says '%s'",
                                  index_path, f->t[t].name, shards[i], json_string_value(want));
        }
    }
    /* every mapped tensor must exist (in its shard: checked above for those found) */
    if (!st) {
        json_object_foreach(map, k, v) {
            if (!tw_st_set_tensor_find(s, k)) {
                st = tw_error_set(err, TW_ERR_INVALID, "%s: tensor '%s' is listed in the weight_map (shard '%s') but missing from it",
                                  index_path, k, json_string_value(v));
                break;
            }
        }
    }
    free(shards);
    free(dir);
    json_decref(root);
    return st;
}

tw_status tw_st_set_open(tw_st_set **out, const char *path, tw_error *err)
{
    *out = NULL;
    tw_st_set *s = calloc(1, sizeof *s);
    if (!s) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    tw_status st;
    if (is_dir(path)) {
        char *single = path_join(path, "model.safetensors");
        char *index = path_join(path, "model.safetensors.index.json");
        if (!single || !index) st = tw_error_set(err, TW_ERR_NOMEM, "out of memory");
        else if (tw_file_exists(single)) st = set_add(s, single, err);
        else if (tw_file_exists(index)) st = open_index(s, index, err);
        else
            st = tw_error_set(err, TW_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json in this folder", path);
        free(single);
        free(index);
    } else if (ends_with(path, ".json")) {
        st = open_index(s, path, err);
    } else {
        st = set_add(s, path, err);
    }
    /* a tensor name in one file only */
    for (int i = 1; i < s->n_files && !st; i++)
        for (int64_t t = 0; t < s->files[i]->n && !st; t++)
            for (int j = 0; j < i && !st; j++)
                if (tw_st_tensor_find(s->files[j], s->files[i]->t[t].name))
                    st = tw_error_set(err, TW_ERR_INVALID, "tensor '%s' is in both %s and %s", s->files[i]->t[t].name,
                                      s->files[j]->path, s->files[i]->path);
    if (st) {
        tw_st_set_free(s);
        return st;
    }
    *out = s;
    return TW_OK;
}

void tw_st_set_free(tw_st_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) tw_st_free(s->files[i]);
    free(s->files);
    free(s);
}

int tw_st_set_file_count(const tw_st_set *s) { return s->n_files; }
const tw_safetensors *tw_st_set_file(const tw_st_set *s, int i) { return i >= 0 && i < s->n_files ? s->files[i] : NULL; }
uint64_t tw_st_set_bytes(const tw_st_set *s) { return s->bytes; }
int64_t tw_st_set_tensor_count(const tw_st_set *s) { return s->n_tensors; }

const tw_st_tensor *tw_st_set_tensor_at(const tw_st_set *s, int64_t i)
{
    for (int f = 0; f < s->n_files; f++) {
        if (i < s->files[f]->n) return i >= 0 ? &s->files[f]->t[i] : NULL;
        i -= s->files[f]->n;
    }
    return NULL;
}

const tw_st_tensor *tw_st_set_tensor_find(const tw_st_set *s, const char *name)
{
    for (int f = 0; f < s->n_files; f++) {
        const tw_st_tensor *t = tw_st_tensor_find(s->files[f], name);
        if (t) return t;
    }
    return NULL;
}
