/* gguf.c — GGUF v2/v3 reader (mmap, validated in full before any use) and writer
 * (streamed, atomic). Spec: ggml/docs/gguf.md. Layout of a file:
 *
 *   u32 magic "GGUF" | u32 version | u64 tensor_count | u64 kv_count
 *   kv_count x { gguf_string key | u32 value_type | value }
 *   tensor_count x { gguf_string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
 *   zero padding to general.alignment (default 32)
 *   tensor data; each tensor at data_start + offset, offset a multiple of the alignment
 *
 * where gguf_string = u64 length + bytes (no NUL) and an array value =
 * u32 element_type | u64 count | elements. All integers little-endian.
 *
 * Deliberately not here: what the keys mean (config.c) and dequantization (quant.c).
 * Every read of the file goes through the bounds-checked cursor below; after open the
 * accessors only look up what open already checked. */
#include "model/gguf.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEY_LEN 65535u      /* spec: keys are at most 2^16 - 1 bytes */
#define MAX_TENSOR_NAME 64u     /* spec: tensor names are at most 64 bytes */
#define MAX_ALIGNMENT (1u << 30)

static const size_t VTYPE_SIZE[TW_GGUF_VTYPE_COUNT] = {
    [TW_GGUF_UINT8] = 1, [TW_GGUF_INT8] = 1,    [TW_GGUF_UINT16] = 2,  [TW_GGUF_INT16] = 2,
    [TW_GGUF_UINT32] = 4, [TW_GGUF_INT32] = 4,  [TW_GGUF_FLOAT32] = 4, [TW_GGUF_BOOL] = 1,
    [TW_GGUF_STRING] = 0, [TW_GGUF_ARRAY] = 0,  [TW_GGUF_UINT64] = 8,  [TW_GGUF_INT64] = 8,
    [TW_GGUF_FLOAT64] = 8,
};

static const char *const VTYPE_NAME[TW_GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *tw_gguf_vtype_name(uint32_t t) { return t < TW_GGUF_VTYPE_COUNT ? VTYPE_NAME[t] : "?"; }
size_t tw_gguf_vtype_size(uint32_t t) { return t < TW_GGUF_VTYPE_COUNT ? VTYPE_SIZE[t] : 0; }

static bool vtype_is_int(uint32_t t)
{
    return t == TW_GGUF_UINT8 || t == TW_GGUF_INT8 || t == TW_GGUF_UINT16 || t == TW_GGUF_INT16 ||
           t == TW_GGUF_UINT32 || t == TW_GGUF_INT32 || t == TW_GGUF_UINT64 || t == TW_GGUF_INT64;
}

/* ---- the handle ---------------------------------------------------------- */
typedef struct kv_entry {
    char *key;
    uint64_t key_off;       /* file offset of the key's length field */
    uint32_t type;
    uint64_t val_off;       /* file offset of the value (after the type field) */
    uint64_t val_len;       /* encoded length of the value in bytes */
    /* arrays */
    uint32_t arr_type;
    uint64_t arr_n;
    const void *arr_data;   /* aligned numeric elements (mapping or arr_copy) */
    void *arr_copy;         /* owned copy when the mapping is unaligned */
    uint64_t *str_offs;     /* string arrays: file offset of each element's length field */
} kv_entry;

struct tw_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_off;
    int64_t n_kv;
    kv_entry *kv;
    int64_t n_tensors;
    tw_gguf_tensor *tensors;
    char *tensor_names;     /* one block holding every tensor name, NUL-separated */
    uint64_t *name_off_tmp; /* during open: file offset of each tensor name */
    int64_t *thash;         /* open addressing over tensor names: index or -1 */
    uint64_t thash_cap;
};

/* ---- bounds-checked cursor ---------------------------------------------- */
typedef struct cursor {
    const uint8_t *base;
    uint64_t size, off;
    const char *path;
    tw_error *err;
} cursor;

static tw_status perr(const cursor *c, uint64_t off, tw_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static tw_status perr(const cursor *c, uint64_t off, tw_status st, const char *fmt, ...)
{
    char msg[TW_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tw_error_set(c->err, st, "%s: offset %llu: %s", c->path, (unsigned long long)off, msg);
}

static uint64_t remaining(const cursor *c) { return c->size - c->off; }

/* Require n more bytes for `what`. */
static tw_status need(const cursor *c, uint64_t n, const char *what)
{
    if (remaining(c) < n)
        return perr(c, c->off, TW_ERR_PARSE, "truncated: expected %s (%llu bytes) but the file ends at %llu", what,
                    (unsigned long long)n, (unsigned long long)c->size);
    return TW_OK;
}

static uint32_t ld_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static tw_status rd_u32(cursor *c, uint32_t *v, const char *what)
{
    tw_status st = need(c, 4, what);
    if (st) return st;
    *v = ld_u32(c->base + c->off);
    c->off += 4;
    return TW_OK;
}

static tw_status rd_u64(cursor *c, uint64_t *v, const char *what)
{
    tw_status st = need(c, 8, what);
    if (st) return st;
    *v = ld_u64(c->base + c->off);
    c->off += 8;
    return TW_OK;
}

/* A gguf_string: u64 length, then bytes; sets *off_bytes to the bytes' offset. */
static tw_status rd_str(cursor *c, uint64_t *len, uint64_t *off_bytes, const char *what)
{
    uint64_t at = c->off;
    tw_status st = rd_u64(c, len, what);
    if (st) return st;
    if (*len > remaining(c))
        return perr(c, at, TW_ERR_PARSE,
                    "%s: string length %llu exceeds the %llu bytes left in the file", what,
                    (unsigned long long)*len, (unsigned long long)remaining(c));
    *off_bytes = c->off;
    c->off += *len;
    return TW_OK;
}

/* ---- validation of values ----------------------------------------------- */
/* Check one scalar of fixed type t at the cursor and advance. */
static tw_status check_scalar(cursor *c, uint32_t t, const char *key)
{
    char what[96];
    snprintf(what, sizeof what, "%s value of key '%.40s'", VTYPE_NAME[t], key);
    tw_status st = need(c, VTYPE_SIZE[t], what);
    if (st) return st;
    if (t == TW_GGUF_BOOL && c->base[c->off] > 1)
        return perr(c, c->off, TW_ERR_PARSE, "key '%s': expected a bool (0 or 1), found %u", key, c->base[c->off]);
    c->off += VTYPE_SIZE[t];
    return TW_OK;
}

static tw_status parse_value(cursor *c, kv_entry *kv)
{
    tw_status st;
    kv->val_off = c->off;
    if (kv->type == TW_GGUF_STRING) {
        uint64_t len, at;
        char what[96];
        snprintf(what, sizeof what, "string value of key '%.40s'", kv->key);
        if ((st = rd_str(c, &len, &at, what))) return st;
    } else if (kv->type == TW_GGUF_ARRAY) {
        uint64_t at = c->off;
        if ((st = rd_u32(c, &kv->arr_type, "array element type"))) return st;
        if (kv->arr_type == TW_GGUF_ARRAY)
            return perr(c, at, TW_ERR_UNSUPPORTED, "key '%s': nested arrays (arrays of arrays) are not supported",
                        kv->key);
        if (kv->arr_type >= TW_GGUF_VTYPE_COUNT)
            return perr(c, at, TW_ERR_PARSE, "key '%s': expected an array element type 0..12, found %u", kv->key,
                        kv->arr_type);
        uint64_t n_at = c->off;
        if ((st = rd_u64(c, &kv->arr_n, "array length"))) return st;
        if (kv->arr_type == TW_GGUF_STRING) {
            /* every element needs at least its 8-byte length: bound n before allocating */
            if (kv->arr_n > remaining(c) / 8)
                return perr(c, n_at, TW_ERR_PARSE,
                            "key '%s': array of %llu strings cannot fit in the %llu bytes left in the file", kv->key,
                            (unsigned long long)kv->arr_n, (unsigned long long)remaining(c));
            kv->str_offs = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof *kv->str_offs);
            if (!kv->str_offs) return perr(c, n_at, TW_ERR_NOMEM, "out of memory for %llu strings", (unsigned long long)kv->arr_n);
            for (uint64_t i = 0; i < kv->arr_n; i++) {
                uint64_t len, sat;
                char what[96];
                snprintf(what, sizeof what, "element %llu of string array '%.40s'", (unsigned long long)i, kv->key);
                kv->str_offs[i] = c->off;
                if ((st = rd_str(c, &len, &sat, what))) return st;
            }
        } else {
            size_t es = VTYPE_SIZE[kv->arr_type];
            if (kv->arr_n > remaining(c) / es)
                return perr(c, n_at, TW_ERR_PARSE,
                            "key '%s': array of %llu %s elements (%llu bytes each) exceeds the %llu bytes left in the file",
                            kv->key, (unsigned long long)kv->arr_n, VTYPE_NAME[kv->arr_type], (unsigned long long)es,
                            (unsigned long long)remaining(c));
            const uint8_t *p = c->base + c->off;
            if (kv->arr_type == TW_GGUF_BOOL)
                for (uint64_t i = 0; i < kv->arr_n; i++)
                    if (p[i] > 1)
                        return perr(c, c->off + i, TW_ERR_PARSE, "key '%s': element %llu: expected a bool (0 or 1), found %u",
                                    kv->key, (unsigned long long)i, p[i]);
            if ((uintptr_t)p % es) {
                kv->arr_copy = malloc(kv->arr_n * es + 1);
                if (!kv->arr_copy) return perr(c, c->off, TW_ERR_NOMEM, "out of memory copying array '%s'", kv->key);
                memcpy(kv->arr_copy, p, kv->arr_n * es);
                kv->arr_data = kv->arr_copy;
            } else {
                kv->arr_data = p;
            }
            c->off += kv->arr_n * es;
        }
    } else {
        if ((st = check_scalar(c, kv->type, kv->key))) return st;
    }
    kv->val_len = c->off - kv->val_off;
    return TW_OK;
}

/* ---- lookups --------------------------------------------------------------- */
static uint64_t name_hash(const char *s, size_t n) { return tw_hash64(s, n, 0x6767756675ULL); }

static int64_t thash_find(const tw_gguf *g, const char *name, size_t len)
{
    if (!g->thash_cap) return -1;
    uint64_t mask = g->thash_cap - 1;
    for (uint64_t h = name_hash(name, len) & mask;; h = (h + 1) & mask) {
        int64_t i = g->thash[h];
        if (i < 0) return -1;
        if (g->tensors[i].name_len == len && memcmp(g->tensors[i].name, name, len) == 0) return i;
    }
}

static int cmp_by_offset(const void *a, const void *b, void *ctx)
{
    const tw_gguf_tensor *t = ctx;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    uint64_t x = t[i].offset, y = t[j].offset;
    if (x != y) return x < y ? -1 : 1;
    return i < j ? -1 : i > j;   /* ties by index: deterministic messages */
}

/* ---- open ---------------------------------------------------------------- */
static tw_status parse(tw_gguf *g, tw_error *err)
{
    cursor c = {g->base, g->size, 0, g->path, err};
    cursor *cp = &c;
    tw_status st;
    if ((st = need(cp, 4, "the magic \"GGUF\""))) return st;
    if (memcmp(g->base, "GGUF", 4) != 0) {
        if (memcmp(g->base, "FUGG", 4) == 0)
            return perr(cp, 0, TW_ERR_UNSUPPORTED, "byte-swapped magic \"FUGG\": not a little-endian GGUF file");
        return perr(cp, 0, TW_ERR_PARSE, "expected the magic \"GGUF\", found bytes %02x %02x %02x %02x: not a GGUF file",
                    g->base[0], g->base[1], g->base[2], g->base[3]);
    }
    c.off = 4;
    if ((st = rd_u32(cp, &g->version, "the version (u32)"))) return st;
    if ((g->version & 0xffffu) == 0 && __builtin_bswap32(g->version) <= 3)
        return perr(cp, 4, TW_ERR_UNSUPPORTED,
                    "version field reads 0x%08x: this is a big-endian GGUF file, only little-endian is supported",
                    g->version);
    if (g->version == 1)
        return perr(cp, 4, TW_ERR_UNSUPPORTED, "GGUF version 1 is not supported (expected version 2 or 3)");
    if (g->version != 2 && g->version != 3)
        return perr(cp, 4, TW_ERR_UNSUPPORTED, "unsupported GGUF version %u (expected 2 or 3)", g->version);
    uint64_t n_tensors, n_kv;
    if ((st = rd_u64(cp, &n_tensors, "the tensor count (u64)"))) return st;
    if ((st = rd_u64(cp, &n_kv, "the metadata key/value count (u64)"))) return st;
    /* Minimal encodings: a kv is >= 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes,
     * a tensor info >= 8 + 1 + 4 + 8 + 4 + 8 bytes. Bound both counts by the bytes left
     * before allocating anything, so a count of 2^63 cannot overflow or exhaust memory. */
    if (n_kv > remaining(cp) / 14)
        return perr(cp, 16, TW_ERR_PARSE, "metadata count %llu cannot fit in the %llu bytes left in the file",
                    (unsigned long long)n_kv, (unsigned long long)remaining(cp));
    if (n_tensors > remaining(cp) / 33)
        return perr(cp, 8, TW_ERR_PARSE, "tensor count %llu cannot fit in the %llu bytes left in the file",
                    (unsigned long long)n_tensors, (unsigned long long)remaining(cp));
    if (n_kv * 14 + n_tensors * 33 > remaining(cp))
        return perr(cp, 8, TW_ERR_PARSE, "%llu tensors and %llu key/values cannot fit in the %llu bytes left in the file",
                    (unsigned long long)n_tensors, (unsigned long long)n_kv, (unsigned long long)remaining(cp));

    g->kv = calloc(n_kv ? n_kv : 1, sizeof *g->kv);
    g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *g->tensors);
    if (!g->kv || !g->tensors) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", g->path);

    /* key/values */
    g->alignment = TW_GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        kv_entry *kv = &g->kv[i];
        uint64_t klen, kat;
        char what[64];
        snprintf(what, sizeof what, "the key of metadata entry %llu", (unsigned long long)i);
        kv->key_off = c.off;
        if ((st = rd_str(cp, &klen, &kat, what))) return st;
        if (klen == 0) return perr(cp, kv->key_off, TW_ERR_PARSE, "metadata entry %llu: expected a non-empty key", (unsigned long long)i);
        if (klen > MAX_KEY_LEN)
            return perr(cp, kv->key_off, TW_ERR_PARSE, "metadata entry %llu: key length %llu exceeds the limit of %u bytes",
                        (unsigned long long)i, (unsigned long long)klen, MAX_KEY_LEN);
        if (memchr(g->base + kat, 0, klen))
            return perr(cp, kat, TW_ERR_PARSE, "metadata entry %llu: key contains a NUL byte", (unsigned long long)i);
        kv->key = malloc(klen + 1);
        if (!kv->key) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", g->path);
        memcpy(kv->key, g->base + kat, klen);
        kv->key[klen] = '\0';
        g->n_kv = (int64_t)i + 1;   /* so that free() releases what is built so far */
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(g->kv[j].key, kv->key) == 0)
                return perr(cp, kv->key_off, TW_ERR_PARSE, "duplicate metadata key '%s' (first at offset %llu)", kv->key,
                            (unsigned long long)g->kv[j].key_off);
        uint64_t tat = c.off;
        snprintf(what, sizeof what, "the value type of key '%.30s'", kv->key);
        if ((st = rd_u32(cp, &kv->type, what))) return st;
        if (kv->type >= TW_GGUF_VTYPE_COUNT)
            return perr(cp, tat, TW_ERR_PARSE, "key '%s': expected a value type 0..12, found %u", kv->key, kv->type);
        if ((st = parse_value(cp, kv))) return st;
        if (strcmp(kv->key, "general.alignment") == 0) {
            if (kv->type != TW_GGUF_UINT32)
                return perr(cp, tat, TW_ERR_PARSE, "general.alignment: expected type uint32, found %s", VTYPE_NAME[kv->type]);
            uint32_t a = ld_u32(g->base + kv->val_off);
            if (a == 0 || (a & (a - 1)) || a > MAX_ALIGNMENT)
                return perr(cp, kv->val_off, TW_ERR_PARSE, "general.alignment: expected a power of two, found %u", a);
            g->alignment = a;
        }
    }

    /* tensor infos */
    size_t names_len = 0;
    /* file offsets of the names, until the names block is built below */
    uint64_t *name_off = malloc((size_t)(n_tensors ? n_tensors : 1) * sizeof *name_off);
    if (!name_off) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", g->path);
    g->name_off_tmp = name_off;
    for (uint64_t i = 0; i < n_tensors; i++) {
        tw_gguf_tensor *t = &g->tensors[i];
        uint64_t at = c.off, nlen, nat;
        char what[64];
        snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)i);
        if ((st = rd_str(cp, &nlen, &nat, what))) return st;
        if (nlen == 0 || nlen > MAX_TENSOR_NAME)
            return perr(cp, at, TW_ERR_PARSE, "tensor %llu: expected a name of 1..%u bytes, found length %llu",
                        (unsigned long long)i, MAX_TENSOR_NAME, (unsigned long long)nlen);
        if (memchr(g->base + nat, 0, nlen))
            return perr(cp, nat, TW_ERR_PARSE, "tensor %llu: name contains a NUL byte", (unsigned long long)i);
        t->name_len = (uint32_t)nlen;
        names_len += nlen + 1;
        name_off[i] = nat;
        uint64_t dat = c.off;
        if ((st = rd_u32(cp, &t->n_dims, "the dimension count (u32)"))) return st;
        if (t->n_dims < 1 || t->n_dims > TW_GGUF_MAX_DIMS)
            return perr(cp, dat, TW_ERR_PARSE, "tensor '%.*s': expected 1..4 dimensions, found %u", (int)nlen,
                        (const char *)g->base + nat, t->n_dims);
        uint64_t nel = 1;
        for (uint32_t d = 0; d < TW_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t eat = c.off, ne;
            if ((st = rd_u64(cp, &ne, "a dimension (u64)"))) return st;
            if (ne == 0 || ne > (uint64_t)INT64_MAX)
                return perr(cp, eat, TW_ERR_PARSE, "tensor '%.*s': dimension %u: expected 1..2^63-1, found %llu", (int)nlen,
                            (const char *)g->base + nat, d, (unsigned long long)ne);
            if (__builtin_mul_overflow(nel, ne, &nel) || nel > (uint64_t)INT64_MAX)
                return perr(cp, eat, TW_ERR_PARSE, "tensor '%.*s': element count overflows 64 bits", (int)nlen,
                            (const char *)g->base + nat);
            t->ne[d] = (int64_t)ne;
        }
        t->n_elements = nel;
        uint64_t tyat = c.off;
        uint32_t type;
        if ((st = rd_u32(cp, &type, "the tensor type (u32)"))) return st;
        const tw_type_info *ti = tw_type_get(type);
        if (!ti)
            return perr(cp, tyat, TW_ERR_PARSE, "tensor '%.*s': unknown tensor type %u", (int)nlen,
                        (const char *)g->base + nat, type);
        t->type = (tw_type)type;
        if ((uint64_t)t->ne[0] % ti->block)
            return perr(cp, dat, TW_ERR_PARSE, "tensor '%.*s': first dimension %lld is not a multiple of the %s block size %u",
                        (int)nlen, (const char *)g->base + nat, (long long)t->ne[0], ti->name, ti->block);
        uint64_t row = ((uint64_t)t->ne[0] / ti->block) * ti->bytes;
        if (__builtin_mul_overflow(row, nel / (uint64_t)t->ne[0], &t->nbytes))
            return perr(cp, dat, TW_ERR_PARSE, "tensor '%.*s': data size overflows 64 bits", (int)nlen,
                        (const char *)g->base + nat);
        uint64_t oat = c.off, toff;
        if ((st = rd_u64(cp, &toff, "the tensor data offset (u64)"))) return st;
        if (toff % g->alignment)
            return perr(cp, oat, TW_ERR_PARSE, "tensor '%.*s': data offset %llu is not a multiple of the alignment %u",
                        (int)nlen, (const char *)g->base + nat, (unsigned long long)toff, g->alignment);
        t->offset = toff;
        g->n_tensors = (int64_t)i + 1;
    }

    /* data section: starts at the next multiple of the alignment */
    uint64_t end_infos = c.off;
    uint64_t pad = (g->alignment - end_infos % g->alignment) % g->alignment;
    g->data_off = end_infos + pad;
    uint64_t data_size = 0;
    if (n_tensors > 0) {
        if (g->data_off > g->size)
            return perr(cp, end_infos, TW_ERR_PARSE,
                        "truncated: expected %llu bytes of padding then tensor data, but the file ends at %llu",
                        (unsigned long long)pad, (unsigned long long)g->size);
        data_size = g->size - g->data_off;
    }

    /* names block, tensor offsets and bounds */
    g->tensor_names = malloc(names_len ? names_len : 1);
    if (!g->tensor_names) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", g->path);
    char *np = g->tensor_names;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        tw_gguf_tensor *t = &g->tensors[i];
        memcpy(np, g->base + name_off[i], t->name_len);
        np[t->name_len] = '\0';
        t->name = np;
        np += t->name_len + 1;
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return perr(cp, g->data_off + (t->offset > data_size ? data_size : t->offset), TW_ERR_PARSE,
                        "tensor '%s': data [%llu, +%llu) of the data section (starting at offset %llu) extends past the "
                        "end of the file (%llu bytes)",
                        t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                        (unsigned long long)g->data_off, (unsigned long long)g->size);
        t->data = g->base + g->data_off + t->offset;
    }

    /* unique names (hash) */
    uint64_t cap = 16;
    while (cap < (uint64_t)g->n_tensors * 2) cap <<= 1;
    g->thash = malloc(cap * sizeof *g->thash);
    if (!g->thash) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", g->path);
    for (uint64_t h = 0; h < cap; h++) g->thash[h] = -1;
    g->thash_cap = cap;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        tw_gguf_tensor *t = &g->tensors[i];
        int64_t j = thash_find(g, t->name, t->name_len);
        if (j >= 0)
            return perr(cp, end_infos, TW_ERR_PARSE, "duplicate tensor name '%s' (tensors %lld and %lld)", t->name,
                        (long long)j, (long long)i);
        uint64_t h = name_hash(t->name, t->name_len) & (cap - 1);
        while (g->thash[h] >= 0) h = (h + 1) & (cap - 1);
        g->thash[h] = i;
    }

    /* no two tensors share bytes */
    if (g->n_tensors > 1) {
        int64_t *ord = malloc((size_t)g->n_tensors * sizeof *ord);
        if (!ord) return tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory", g->path);
        for (int64_t i = 0; i < g->n_tensors; i++) ord[i] = i;
        qsort_r(ord, (size_t)g->n_tensors, sizeof *ord, cmp_by_offset, g->tensors);
        for (int64_t k = 1; k < g->n_tensors; k++) {
            const tw_gguf_tensor *a = &g->tensors[ord[k - 1]], *b = &g->tensors[ord[k]];
            if (a->offset + a->nbytes > b->offset) {
                st = perr(cp, g->data_off + b->offset, TW_ERR_PARSE,
                          "tensor '%s' (data [%llu, %llu)) overlaps tensor '%s' (data [%llu, %llu))", b->name,
                          (unsigned long long)b->offset, (unsigned long long)(b->offset + b->nbytes), a->name,
                          (unsigned long long)a->offset, (unsigned long long)(a->offset + a->nbytes));
                free(ord);
                return st;
            }
        }
        free(ord);
    }
    free(g->name_off_tmp);
    g->name_off_tmp = NULL;
    return TW_OK;
}

static tw_status open_common(tw_gguf **out, tw_gguf *g, tw_error *err)
{
    tw_status st = parse(g, err);
    if (st) {
        tw_gguf_free(g);
        *out = NULL;
        return st;
    }
    *out = g;
    return TW_OK;
}

tw_status tw_gguf_open_memory(tw_gguf **out, const void *data, size_t size, const char *name, tw_error *err)
{
    *out = NULL;
    tw_gguf *g = calloc(1, sizeof *g);
    if (!g) return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    g->path = tw_strdup(name ? name : "(memory)", err);
    if (!g->path) {
        free(g);
        return TW_ERR_NOMEM;
    }
    g->base = size ? data : (const uint8_t *)"";
    g->size = size;
    return open_common(out, g, err);
}

tw_status tw_gguf_open(tw_gguf **out, const char *path, tw_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tw_error_set(err, TW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        tw_status st = tw_error_set(err, TW_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return st;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tw_error_set(err, TW_ERR_IO, "%s: not a regular file", path);
    }
    tw_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        close(fd);
        return tw_error_set(err, TW_ERR_NOMEM, "out of memory");
    }
    g->path = tw_strdup(path, err);
    if (!g->path) {
        free(g);
        close(fd);
        return TW_ERR_NOMEM;
    }
    g->size = (uint64_t)sb.st_size;
    if (g->size > 0) {
        void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            tw_status st = tw_error_set(err, TW_ERR_IO, "%s: cannot mmap %llu bytes: %s", path,
                                        (unsigned long long)g->size, strerror(errno));
            close(fd);
            free(g->path);
            free(g);
            return st;
        }
        g->base = m;
        g->mapped = true;
    } else {
        g->base = (const uint8_t *)"";
    }
    close(fd);
    return open_common(out, g, err);
}

void tw_gguf_free(tw_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].arr_copy);
        free(g->kv[i].str_offs);
    }
    free(g->kv);
    free(g->tensors);
    free(g->tensor_names);
    free(g->name_off_tmp);
    free(g->thash);
    if (g->mapped) munmap((void *)g->base, (size_t)g->size);
    free(g->path);
    free(g);
}

const char *tw_gguf_path(const tw_gguf *g) { return g->path; }
uint32_t tw_gguf_version(const tw_gguf *g) { return g->version; }
uint64_t tw_gguf_file_size(const tw_gguf *g) { return g->size; }
uint32_t tw_gguf_alignment(const tw_gguf *g) { return g->alignment; }
uint64_t tw_gguf_data_offset(const tw_gguf *g) { return g->data_off; }
const void *tw_gguf_base(const tw_gguf *g) { return g->base; }

/* ---- metadata access ----------------------------------------------------- */
int64_t tw_gguf_kv_count(const tw_gguf *g) { return g->n_kv; }

int64_t tw_gguf_find_key(const tw_gguf *g, const char *key)
{
    for (int64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return i;
    return -1;
}

static bool kv_ok(const tw_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv; }

const char *tw_gguf_kv_key(const tw_gguf *g, int64_t i) { return kv_ok(g, i) ? g->kv[i].key : ""; }
tw_gguf_vtype tw_gguf_kv_type(const tw_gguf *g, int64_t i)
{
    return kv_ok(g, i) ? (tw_gguf_vtype)g->kv[i].type : TW_GGUF_VTYPE_COUNT;
}
uint64_t tw_gguf_kv_offset(const tw_gguf *g, int64_t i) { return kv_ok(g, i) ? g->kv[i].key_off : 0; }

/* Integer value of a scalar of integer type t stored at p; *neg set for negatives. */
static void load_int(uint32_t t, const uint8_t *p, int64_t *s, uint64_t *u, bool *neg)
{
    *neg = false;
    switch (t) {
    case TW_GGUF_UINT8: case TW_GGUF_BOOL: *u = p[0]; break;
    case TW_GGUF_INT8: { int8_t v; memcpy(&v, p, 1); *s = v; *neg = v < 0; *u = (uint64_t)v; break; }
    case TW_GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *u = v; break; }
    case TW_GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *s = v; *neg = v < 0; *u = (uint64_t)v; break; }
    case TW_GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *u = v; break; }
    case TW_GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *s = v; *neg = v < 0; *u = (uint64_t)v; break; }
    case TW_GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); *u = v; break; }
    case TW_GGUF_INT64: { int64_t v; memcpy(&v, p, 8); *s = v; *neg = v < 0; *u = (uint64_t)v; break; }
    default: *u = 0; break;
    }
    if (!*neg) *s = (int64_t)*u;   /* only meaningful when *u <= INT64_MAX */
}

bool tw_gguf_kv_int(const tw_gguf *g, int64_t i, int64_t *out)
{
    if (!kv_ok(g, i)) return false;
    uint32_t t = g->kv[i].type;
    if (!vtype_is_int(t) && t != TW_GGUF_BOOL) return false;
    int64_t s;
    uint64_t u;
    bool neg;
    load_int(t, g->base + g->kv[i].val_off, &s, &u, &neg);
    if (!neg && u > (uint64_t)INT64_MAX) return false;
    *out = s;
    return true;
}

bool tw_gguf_kv_uint(const tw_gguf *g, int64_t i, uint64_t *out)
{
    if (!kv_ok(g, i)) return false;
    uint32_t t = g->kv[i].type;
    if (!vtype_is_int(t) && t != TW_GGUF_BOOL) return false;
    int64_t s;
    uint64_t u;
    bool neg;
    load_int(t, g->base + g->kv[i].val_off, &s, &u, &neg);
    if (neg) return false;
    *out = u;
    return true;
}

bool tw_gguf_kv_float(const tw_gguf *g, int64_t i, double *out)
{
    if (!kv_ok(g, i)) return false;
    const uint8_t *p = g->base + g->kv[i].val_off;
    uint32_t t = g->kv[i].type;
    if (t == TW_GGUF_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        *out = f;
        return true;
    }
    if (t == TW_GGUF_FLOAT64) {
        memcpy(out, p, 8);
        return true;
    }
    if (vtype_is_int(t)) {
        int64_t s;
        uint64_t u;
        bool neg;
        load_int(t, p, &s, &u, &neg);
        *out = neg ? (double)s : (double)u;
        return true;
    }
    return false;
}

bool tw_gguf_kv_bool(const tw_gguf *g, int64_t i, bool *out)
{
    if (!kv_ok(g, i) || g->kv[i].type != TW_GGUF_BOOL) return false;
    *out = g->base[g->kv[i].val_off] != 0;
    return true;
}

bool tw_gguf_kv_str(const tw_gguf *g, int64_t i, tw_gguf_str *out)
{
    if (!kv_ok(g, i) || g->kv[i].type != TW_GGUF_STRING) return false;
    out->len = ld_u64(g->base + g->kv[i].val_off);
    out->ptr = (const char *)g->base + g->kv[i].val_off + 8;
    return true;
}

bool tw_gguf_kv_arr(const tw_gguf *g, int64_t i, tw_gguf_array *out)
{
    if (!kv_ok(g, i) || g->kv[i].type != TW_GGUF_ARRAY) return false;
    out->type = (tw_gguf_vtype)g->kv[i].arr_type;
    out->n = g->kv[i].arr_n;
    out->data = g->kv[i].arr_type == TW_GGUF_STRING ? NULL : g->kv[i].arr_data;
    out->kv = i;
    return true;
}

static tw_status key_lookup(const tw_gguf *g, const char *key, int64_t *i, tw_error *err)
{
    *i = tw_gguf_find_key(g, key);
    if (*i < 0) return tw_error_set(err, TW_ERR_INVALID, "%s: key '%s': missing", g->path, key);
    return TW_OK;
}

static tw_status wrong_type(const tw_gguf *g, int64_t i, const char *expected, tw_error *err)
{
    return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': expected %s, found %s", g->path,
                        (unsigned long long)g->kv[i].key_off, g->kv[i].key, expected, VTYPE_NAME[g->kv[i].type]);
}

tw_status tw_gguf_get_int(const tw_gguf *g, const char *key, int64_t *out, tw_error *err)
{
    int64_t i;
    tw_status st = key_lookup(g, key, &i, err);
    if (st) return st;
    if (!tw_gguf_kv_int(g, i, out)) {
        if (vtype_is_int(g->kv[i].type))
            return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': value does not fit in int64", g->path,
                                (unsigned long long)g->kv[i].key_off, key);
        return wrong_type(g, i, "an integer", err);
    }
    return TW_OK;
}

tw_status tw_gguf_get_u32(const tw_gguf *g, const char *key, uint32_t *out, tw_error *err)
{
    int64_t i;
    tw_status st = key_lookup(g, key, &i, err);
    if (st) return st;
    uint64_t u;
    if (!vtype_is_int(g->kv[i].type)) return wrong_type(g, i, "an integer", err);
    if (!tw_gguf_kv_uint(g, i, &u) || u > UINT32_MAX)
        return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': expected a value in 0..4294967295",
                            g->path, (unsigned long long)g->kv[i].key_off, key);
    *out = (uint32_t)u;
    return TW_OK;
}

tw_status tw_gguf_get_float(const tw_gguf *g, const char *key, double *out, tw_error *err)
{
    int64_t i;
    tw_status st = key_lookup(g, key, &i, err);
    if (st) return st;
    if (!tw_gguf_kv_float(g, i, out)) return wrong_type(g, i, "a number", err);
    return TW_OK;
}

tw_status tw_gguf_get_bool(const tw_gguf *g, const char *key, bool *out, tw_error *err)
{
    int64_t i;
    tw_status st = key_lookup(g, key, &i, err);
    if (st) return st;
    if (!tw_gguf_kv_bool(g, i, out)) return wrong_type(g, i, "a bool", err);
    return TW_OK;
}

tw_status tw_gguf_get_str(const tw_gguf *g, const char *key, tw_gguf_str *out, tw_error *err)
{
    int64_t i;
    tw_status st = key_lookup(g, key, &i, err);
    if (st) return st;
    if (!tw_gguf_kv_str(g, i, out)) return wrong_type(g, i, "a string", err);
    return TW_OK;
}

tw_status tw_gguf_get_arr(const tw_gguf *g, const char *key, tw_gguf_vtype elem_type, tw_gguf_array *out,
                          tw_error *err)
{
    int64_t i;
    tw_status st = key_lookup(g, key, &i, err);
    if (st) return st;
    if (!tw_gguf_kv_arr(g, i, out)) return wrong_type(g, i, "an array", err);
    if (elem_type != TW_GGUF_VTYPE_COUNT && out->type != elem_type)
        return tw_error_set(err, TW_ERR_INVALID, "%s: offset %llu: key '%s': expected an array of %s, found an array of %s",
                            g->path, (unsigned long long)g->kv[i].key_off, key, tw_gguf_vtype_name(elem_type),
                            VTYPE_NAME[out->type]);
    return TW_OK;
}

int64_t tw_gguf_int_or(const tw_gguf *g, const char *key, int64_t def)
{
    int64_t v;
    return tw_gguf_kv_int(g, tw_gguf_find_key(g, key), &v) ? v : def;
}

double tw_gguf_float_or(const tw_gguf *g, const char *key, double def)
{
    double v;
    return tw_gguf_kv_float(g, tw_gguf_find_key(g, key), &v) ? v : def;
}

bool tw_gguf_bool_or(const tw_gguf *g, const char *key, bool def)
{
    bool v;
    return tw_gguf_kv_bool(g, tw_gguf_find_key(g, key), &v) ? v : def;
}

bool tw_gguf_str_copy(const tw_gguf *g, const char *key, char *buf, size_t cap)
{
    tw_gguf_str s;
    if (cap) buf[0] = '\0';
    if (!tw_gguf_kv_str(g, tw_gguf_find_key(g, key), &s)) return false;
    if (cap) {
        size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
        memcpy(buf, s.ptr, n);
        buf[n] = '\0';
    }
    return true;
}

bool tw_gguf_str_eq(tw_gguf_str s, const char *z)
{
    size_t n = strlen(z);
    return s.len == n && memcmp(s.ptr, z, n) == 0;
}

tw_gguf_str tw_gguf_arr_str(const tw_gguf *g, const tw_gguf_array *a, uint64_t idx)
{
    tw_gguf_str s = {"", 0};
    if (!kv_ok(g, a->kv) || g->kv[a->kv].type != TW_GGUF_ARRAY || g->kv[a->kv].arr_type != TW_GGUF_STRING ||
        idx >= g->kv[a->kv].arr_n)
        return s;
    uint64_t off = g->kv[a->kv].str_offs[idx];
    s.len = ld_u64(g->base + off);
    s.ptr = (const char *)g->base + off + 8;
    return s;
}

int64_t tw_gguf_arr_int(const tw_gguf_array *a, uint64_t idx)
{
    if (idx >= a->n || !a->data || (!vtype_is_int(a->type) && a->type != TW_GGUF_BOOL)) return 0;
    int64_t s;
    uint64_t u;
    bool neg;
    load_int(a->type, (const uint8_t *)a->data + idx * VTYPE_SIZE[a->type], &s, &u, &neg);
    return s;
}

double tw_gguf_arr_float(const tw_gguf_array *a, uint64_t idx)
{
    if (idx >= a->n || !a->data) return 0.0;
    const uint8_t *p = (const uint8_t *)a->data + idx * VTYPE_SIZE[a->type];
    if (a->type == TW_GGUF_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    if (a->type == TW_GGUF_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    if (!vtype_is_int(a->type)) return 0.0;
    int64_t s;
    uint64_t u;
    bool neg;
    load_int(a->type, p, &s, &u, &neg);
    return neg ? (double)s : (double)u;
}

/* ---- tensors ------------------------------------------------------------- */
int64_t tw_gguf_tensor_count(const tw_gguf *g) { return g->n_tensors; }

const tw_gguf_tensor *tw_gguf_tensor_at(const tw_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const tw_gguf_tensor *tw_gguf_tensor_find(const tw_gguf *g, const char *name)
{
    int64_t i = thash_find(g, name, strlen(name));
    return i >= 0 ? &g->tensors[i] : NULL;
}

/* ---- writer ---------------------------------------------------------------- */
typedef struct wkv {
    char *key;
    uint32_t type;
    uint8_t *val;     /* the value exactly as encoded in the file (after the type field) */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;
    tw_type type;
    uint32_t n_dims;
    int64_t ne[TW_GGUF_MAX_DIMS];
    uint64_t nbytes, row_bytes, rows;
    const void *data;
    tw_gguf_fill_fn fill;
    void *user;
} wtensor;

struct tw_gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    uint32_t alignment;
};

tw_status tw_gguf_writer_new(tw_gguf_writer **out, tw_error *err)
{
    *out = tw_calloc(1, sizeof **out, err);
    if (!*out) return TW_ERR_NOMEM;
    (*out)->alignment = TW_GGUF_DEFAULT_ALIGNMENT;
    return TW_OK;
}

void tw_gguf_writer_free(tw_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Store key -> (type, encoded value); takes ownership of val. */
static tw_status put_kv(tw_gguf_writer *w, const char *key, uint32_t type, uint8_t *val, size_t len, tw_error *err)
{
    if (!key || !key[0]) {
        free(val);
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: empty metadata key");
    }
    if (strlen(key) > MAX_KEY_LEN) {
        free(val);
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: key '%.40s...' is longer than %u bytes", key, MAX_KEY_LEN);
    }
    if (strcmp(key, "general.alignment") == 0) {
        uint32_t a = 0;
        if (type == TW_GGUF_UINT32) memcpy(&a, val, 4);
        if (type != TW_GGUF_UINT32 || a == 0 || (a & (a - 1)) || a > MAX_ALIGNMENT) {
            free(val);
            return tw_error_set(err, TW_ERR_INVALID, "gguf writer: general.alignment must be a uint32 power of two");
        }
        w->alignment = a;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            free(w->kv[i].val);
            w->kv[i].type = type;
            w->kv[i].val = val;
            w->kv[i].val_len = len;
            return TW_OK;
        }
    if (tw_grow((void **)&w->kv, &w->cap_kv, w->n_kv + 1, sizeof *w->kv, err)) {
        free(val);
        return TW_ERR_NOMEM;
    }
    char *k = tw_strdup(key, err);
    if (!k) {
        free(val);
        return TW_ERR_NOMEM;
    }
    w->kv[w->n_kv++] = (wkv){k, type, val, len};
    return TW_OK;
}

static tw_status put_scalar(tw_gguf_writer *w, const char *key, uint32_t type, const void *v, tw_error *err)
{
    uint8_t *val = tw_malloc(8, err);
    if (!val) return TW_ERR_NOMEM;
    memcpy(val, v, VTYPE_SIZE[type]);
    return put_kv(w, key, type, val, VTYPE_SIZE[type], err);
}

tw_status tw_gguf_writer_set_u8(tw_gguf_writer *w, const char *key, uint8_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_UINT8, &v, err); }
tw_status tw_gguf_writer_set_i8(tw_gguf_writer *w, const char *key, int8_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_INT8, &v, err); }
tw_status tw_gguf_writer_set_u16(tw_gguf_writer *w, const char *key, uint16_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_UINT16, &v, err); }
tw_status tw_gguf_writer_set_i16(tw_gguf_writer *w, const char *key, int16_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_INT16, &v, err); }
tw_status tw_gguf_writer_set_u32(tw_gguf_writer *w, const char *key, uint32_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_UINT32, &v, err); }
tw_status tw_gguf_writer_set_i32(tw_gguf_writer *w, const char *key, int32_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_INT32, &v, err); }
tw_status tw_gguf_writer_set_u64(tw_gguf_writer *w, const char *key, uint64_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_UINT64, &v, err); }
tw_status tw_gguf_writer_set_i64(tw_gguf_writer *w, const char *key, int64_t v, tw_error *err) { return put_scalar(w, key, TW_GGUF_INT64, &v, err); }
tw_status tw_gguf_writer_set_f32(tw_gguf_writer *w, const char *key, float v, tw_error *err) { return put_scalar(w, key, TW_GGUF_FLOAT32, &v, err); }
tw_status tw_gguf_writer_set_f64(tw_gguf_writer *w, const char *key, double v, tw_error *err) { return put_scalar(w, key, TW_GGUF_FLOAT64, &v, err); }

tw_status tw_gguf_writer_set_bool(tw_gguf_writer *w, const char *key, bool v, tw_error *err)
{
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, TW_GGUF_BOOL, &b, err);
}

tw_status tw_gguf_writer_set_str(tw_gguf_writer *w, const char *key, const char *s, size_t len, tw_error *err)
{
    if (len == (size_t)-1) len = strlen(s);
    uint8_t *val = tw_malloc(8 + len + 1, err);
    if (!val) return TW_ERR_NOMEM;
    uint64_t l = len;
    memcpy(val, &l, 8);
    if (len) memcpy(val + 8, s, len);
    return put_kv(w, key, TW_GGUF_STRING, val, 8 + len, err);
}

tw_status tw_gguf_writer_set_arr(tw_gguf_writer *w, const char *key, tw_gguf_vtype elem_type, const void *data,
                                 uint64_t n, tw_error *err)
{
    if ((uint32_t)elem_type >= TW_GGUF_VTYPE_COUNT || elem_type == TW_GGUF_STRING || elem_type == TW_GGUF_ARRAY)
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: key '%s': array element type %s needs another function",
                            key, tw_gguf_vtype_name(elem_type));
    size_t es = VTYPE_SIZE[elem_type];
    if (n > (SIZE_MAX - 16) / es) return tw_error_set(err, TW_ERR_NOMEM, "gguf writer: key '%s': array too large", key);
    if (elem_type == TW_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((const uint8_t *)data)[i] > 1)
                return tw_error_set(err, TW_ERR_INVALID, "gguf writer: key '%s': bool element %llu is not 0 or 1", key,
                                    (unsigned long long)i);
    uint8_t *val = tw_malloc(12 + n * es + 1, err);
    if (!val) return TW_ERR_NOMEM;
    uint32_t t = elem_type;
    memcpy(val, &t, 4);
    memcpy(val + 4, &n, 8);
    if (n) memcpy(val + 12, data, n * es);
    return put_kv(w, key, TW_GGUF_ARRAY, val, 12 + n * es, err);
}

tw_status tw_gguf_writer_set_arr_str(tw_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, uint64_t n, tw_error *err)
{
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) total += 8 + (lens ? lens[i] : strlen(strs[i]));
    uint8_t *val = tw_malloc(total + 1, err);
    if (!val) return TW_ERR_NOMEM;
    uint32_t t = TW_GGUF_STRING;
    memcpy(val, &t, 4);
    memcpy(val + 4, &n, 8);
    size_t o = 12;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = lens ? lens[i] : strlen(strs[i]);
        memcpy(val + o, &l, 8);
        if (l) memcpy(val + o + 8, strs[i], l);
        o += 8 + l;
    }
    return put_kv(w, key, TW_GGUF_ARRAY, val, total, err);
}

tw_status tw_gguf_writer_copy_kv(tw_gguf_writer *w, const tw_gguf *g, int64_t i, tw_error *err)
{
    if (!kv_ok(g, i)) return tw_error_set(err, TW_ERR_INVALID, "gguf writer: no metadata entry %lld", (long long)i);
    const kv_entry *kv = &g->kv[i];
    uint8_t *val = tw_malloc(kv->val_len + 1, err);
    if (!val) return TW_ERR_NOMEM;
    memcpy(val, g->base + kv->val_off, kv->val_len);
    return put_kv(w, kv->key, kv->type, val, kv->val_len, err);
}

void tw_gguf_writer_remove(tw_gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            if (strcmp(key, "general.alignment") == 0) w->alignment = TW_GGUF_DEFAULT_ALIGNMENT;
            free(w->kv[i].key);
            free(w->kv[i].val);
            memmove(&w->kv[i], &w->kv[i + 1], (w->n_kv - i - 1) * sizeof *w->kv);
            w->n_kv--;
            return;
        }
}

tw_status tw_gguf_writer_add_tensor(tw_gguf_writer *w, const char *name, tw_type type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, tw_gguf_fill_fn fill, void *user,
                                    tw_error *err)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > MAX_TENSOR_NAME)
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor name '%s' must be 1..%u bytes", name, MAX_TENSOR_NAME);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return tw_error_set(err, TW_ERR_INVALID, "gguf writer: duplicate tensor name '%s'", name);
    const tw_type_info *ti = tw_type_get(type);
    if (!ti) return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor '%s': unknown type %d", name, (int)type);
    if (n_dims < 1 || n_dims > TW_GGUF_MAX_DIMS)
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor '%s': n_dims %u not in 1..4", name, n_dims);
    if (!data && !fill)
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor '%s': neither data nor a fill callback", name);
    wtensor t = {0};
    t.type = type;
    t.n_dims = n_dims;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < TW_GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1)
            return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor '%s': dimension %u is %lld (must be >= 1)", name,
                                d, (long long)t.ne[d]);
        if (d > 0 && __builtin_mul_overflow(rows, (uint64_t)t.ne[d], &rows))
            return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor '%s': too many elements", name);
    }
    if ((uint64_t)t.ne[0] % ti->block)
        return tw_error_set(err, TW_ERR_INVALID,
                            "gguf writer: tensor '%s': first dimension %lld is not a multiple of the %s block size %u", name,
                            (long long)t.ne[0], ti->name, ti->block);
    t.row_bytes = (uint64_t)t.ne[0] / ti->block * ti->bytes;
    t.rows = rows;
    if (__builtin_mul_overflow(t.row_bytes, rows, &t.nbytes) || t.nbytes > (uint64_t)INT64_MAX)
        return tw_error_set(err, TW_ERR_INVALID, "gguf writer: tensor '%s': data size overflows", name);
    t.data = data;
    t.fill = fill;
    t.user = user;
    if (tw_grow((void **)&w->t, &w->cap_t, w->n_t + 1, sizeof *w->t, err)) return TW_ERR_NOMEM;
    t.name = tw_strdup(name, err);
    if (!t.name) return TW_ERR_NOMEM;
    w->t[w->n_t++] = t;
    return TW_OK;
}

int64_t tw_gguf_writer_tensor_count(const tw_gguf_writer *w) { return (int64_t)w->n_t; }

typedef struct wout {
    FILE *fp;
    uint64_t pos;
    bool bad;
} wout;

static void put(wout *o, const void *p, size_t n)
{
    if (o->bad || n == 0) return;
    if (fwrite(p, 1, n, o->fp) != n) o->bad = true;
    o->pos += n;
}
static void put_u32(wout *o, uint32_t v) { put(o, &v, 4); }
static void put_u64(wout *o, uint64_t v) { put(o, &v, 8); }
static void put_gstr(wout *o, const char *s)
{
    uint64_t n = strlen(s);
    put_u64(o, n);
    put(o, s, n);
}
static void put_pad(wout *o, uint32_t align)
{
    static const uint8_t zeros[256];
    uint64_t pad = (align - o->pos % align) % align;
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        put(o, zeros, k);
        pad -= k;
    }
}

static uint64_t align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

tw_status tw_gguf_writer_write(tw_gguf_writer *w, const char *path, tw_error *err)
{
    tw_atomic_file af;
    tw_status st = tw_atomic_open(&af, path, err);
    if (st) return st;
    wout o = {af.fp, 0, false};
    put(&o, "GGUF", 4);
    put_u32(&o, 3);
    put_u64(&o, w->n_t);
    put_u64(&o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        put_gstr(&o, w->kv[i].key);
        put_u32(&o, w->kv[i].type);
        put(&o, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_gstr(&o, t->name);
        put_u32(&o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(&o, (uint64_t)t->ne[d]);
        put_u32(&o, (uint32_t)t->type);
        put_u64(&o, off);
        off = align_up(off + t->nbytes, w->alignment);
    }
    put_pad(&o, w->alignment);
    uint8_t *buf = NULL;
    for (size_t i = 0; i < w->n_t && !o.bad && !st; i++) {
        const wtensor *t = &w->t[i];
        if (t->data) {
            put(&o, t->data, t->nbytes);
        } else {
            /* a few MiB of rows at a time */
            uint64_t chunk = (4u << 20) / t->row_bytes;
            if (chunk < 1) chunk = 1;
            if (chunk > t->rows) chunk = t->rows;
            free(buf);
            buf = malloc(chunk * t->row_bytes);
            if (!buf) {
                st = tw_error_set(err, TW_ERR_NOMEM, "%s: out of memory for tensor '%s'", path, t->name);
                break;
            }
            for (uint64_t r = 0; r < t->rows && !o.bad; r += chunk) {
                uint64_t nr = t->rows - r < chunk ? t->rows - r : chunk;
                if ((st = t->fill(t->user, buf, r, nr, err))) {
                    tw_error_prefix(err, "%s: tensor '%s': ", path, t->name);
                    break;
                }
                put(&o, buf, nr * t->row_bytes);
            }
        }
        put_pad(&o, w->alignment);
    }
    free(buf);
    if (!st && o.bad) st = tw_error_set(err, TW_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (st) {
        tw_atomic_abort(&af);
        return st;
    }
    return tw_atomic_commit(&af, err);
}
