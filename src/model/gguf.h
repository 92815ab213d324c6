/* gguf.h — reader and writer of GGUF files (the llama.cpp model format), versions 2 and 3,
 * little-endian only. Spec: ggml/docs/gguf.md ("GGUF" file structure: header, metadata
 * key/values, tensor infos, padding, tensor data).
 *
 * Reader: the file is mmap'ed read-only and validated completely at open — magic, version,
 * every count and length against the bytes that remain (no integer overflow on huge
 * counts), value types, tensor dims (1..4, each >= 1, product without overflow), tensor
 * types (types.h), data size = row bytes x rows, offsets aligned to general.alignment,
 * inside the file and not overlapping. A malformed file fails with
 * "PATH: offset N: <what was expected>". After a successful open every accessor is a
 * plain lookup that cannot fail on bad data.
 *
 * Writer: collects key/values and tensor descriptions, then streams the file out
 * atomically (temp file + rename) with the alignment padding the spec requires. Tensor
 * data comes either from a borrowed buffer or from a callback that fills a few rows at a
 * time, so a 1B-parameter model is never held twice in memory.
 *
 * Deliberately not here: the meaning of the metadata (config.h, the tokenizer), and
 * (de)quantization (quant.h). Tensor data is exposed raw, as stored.
 * Note for llama-architecture files: llama.cpp's converter permutes the rows of
 * attn_q/attn_k relative to Hugging Face checkpoints (see docs/model-files.md). */
#ifndef TW_MODEL_GGUF_H
#define TW_MODEL_GGUF_H

#include "tunewise.h"
#include "model/types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TW_GGUF_MAGIC 0x46554747u          /* "GGUF" read as a little-endian uint32 */
#define TW_GGUF_DEFAULT_ALIGNMENT 32u
#define TW_GGUF_MAX_DIMS 4

/* Metadata value types (numbering from the GGUF spec: gguf_metadata_value_type). */
typedef enum tw_gguf_vtype {
    TW_GGUF_UINT8 = 0,
    TW_GGUF_INT8 = 1,
    TW_GGUF_UINT16 = 2,
    TW_GGUF_INT16 = 3,
    TW_GGUF_UINT32 = 4,
    TW_GGUF_INT32 = 5,
    TW_GGUF_FLOAT32 = 6,
    TW_GGUF_BOOL = 7,
    TW_GGUF_STRING = 8,
    TW_GGUF_ARRAY = 9,
    TW_GGUF_UINT64 = 10,
    TW_GGUF_INT64 = 11,
    TW_GGUF_FLOAT64 = 12,
    TW_GGUF_VTYPE_COUNT = 13
} tw_gguf_vtype;

/* "uint32", "string", "array", ...; "?" for unknown numbers. */
const char *tw_gguf_vtype_name(uint32_t t);
/* Size in bytes of one element of a fixed-size type; 0 for STRING, ARRAY and unknown. */
size_t tw_gguf_vtype_size(uint32_t t);

/* A GGUF string: bytes + length. NOT NUL-terminated (GGUF strings never are); may
 * contain any byte. Borrowed from the mapping: valid until tw_gguf_free. */
typedef struct tw_gguf_str {
    const char *ptr;
    uint64_t len;
} tw_gguf_str;

/* An array value. Nested arrays (arrays of arrays) are rejected at open. */
typedef struct tw_gguf_array {
    tw_gguf_vtype type;     /* element type: any type but ARRAY */
    uint64_t n;             /* element count */
    const void *data;       /* numeric/bool types: n packed little-endian elements, aligned
                             * for the element type (copied off the mapping when the file
                             * places them unaligned); NULL for STRING arrays — use
                             * tw_gguf_arr_str. Borrowed: valid until tw_gguf_free. */
    int64_t kv;             /* index of the key/value it belongs to */
} tw_gguf_array;

/* One tensor of the index. ne[] is in GGML order: ne[0] is the innermost, contiguous
 * dimension (the reverse of a PyTorch/safetensors shape); ne[i] = 1 for i >= n_dims. */
typedef struct tw_gguf_tensor {
    const char *name;       /* NUL-terminated copy (names with a NUL byte are rejected) */
    uint32_t name_len;
    uint32_t n_dims;        /* 1..4 */
    int64_t ne[TW_GGUF_MAX_DIMS];
    tw_type type;
    uint64_t offset;        /* relative to the start of the data section (aligned) */
    uint64_t nbytes;        /* tw_type_row_bytes(type, ne[0]) * ne[1] * ne[2] * ne[3] */
    uint64_t n_elements;
    const void *data;       /* into the read-only mapping; valid until tw_gguf_free */
} tw_gguf_tensor;

typedef struct tw_gguf tw_gguf;

/* ---- reader ------------------------------------------------------------ */
/* mmap PATH read-only and validate it. On success *out owns the mapping (free with
 * tw_gguf_free). Errors: TW_ERR_IO (cannot open/map), TW_ERR_PARSE (malformed or
 * truncated: "PATH: offset N: expected ..."), TW_ERR_UNSUPPORTED (big-endian file,
 * version 1 or > 3, nested arrays), TW_ERR_NOMEM. */
tw_status tw_gguf_open(tw_gguf **out, const char *path, tw_error *err);
/* The same over a caller's buffer (borrowed: must outlive the handle). `name` is used
 * in error messages. Useful for tests and for files already in memory. */
tw_status tw_gguf_open_memory(tw_gguf **out, const void *data, size_t size, const char *name, tw_error *err);
void tw_gguf_free(tw_gguf *g);

const char *tw_gguf_path(const tw_gguf *g);       /* the path (or name) given at open */
uint32_t tw_gguf_version(const tw_gguf *g);       /* 2 or 3 */
uint64_t tw_gguf_file_size(const tw_gguf *g);
uint32_t tw_gguf_alignment(const tw_gguf *g);     /* general.alignment or 32 */
uint64_t tw_gguf_data_offset(const tw_gguf *g);   /* file offset of the tensor data section */
const void *tw_gguf_base(const tw_gguf *g);       /* the whole file (mapping) */

/* ---- metadata ------------------------------------------------------------ */
int64_t tw_gguf_kv_count(const tw_gguf *g);
/* Index of KEY, or -1 when absent. Keys are unique (duplicates are rejected at open). */
int64_t tw_gguf_find_key(const tw_gguf *g, const char *key);
/* Key of entry i (NUL-terminated copy; keys with a NUL byte are rejected at open). */
const char *tw_gguf_kv_key(const tw_gguf *g, int64_t i);
tw_gguf_vtype tw_gguf_kv_type(const tw_gguf *g, int64_t i);
/* File offset of entry i's key (for error messages of higher layers). */
uint64_t tw_gguf_kv_offset(const tw_gguf *g, int64_t i);

/* Typed access by index. Each returns false (and leaves *out untouched) when entry i
 * does not have a matching type:
 *  - tw_gguf_kv_int: any integer type (and BOOL as 0/1), if the value fits in int64_t
 *    (a UINT64 above INT64_MAX does not);
 *  - tw_gguf_kv_uint: any integer type with a non-negative value;
 *  - tw_gguf_kv_float: FLOAT32/FLOAT64, and integers (converted);
 *  - tw_gguf_kv_bool: BOOL only;
 *  - tw_gguf_kv_str: STRING only;
 *  - tw_gguf_kv_arr: ARRAY only. */
bool tw_gguf_kv_int(const tw_gguf *g, int64_t i, int64_t *out);
bool tw_gguf_kv_uint(const tw_gguf *g, int64_t i, uint64_t *out);
bool tw_gguf_kv_float(const tw_gguf *g, int64_t i, double *out);
bool tw_gguf_kv_bool(const tw_gguf *g, int64_t i, bool *out);
bool tw_gguf_kv_str(const tw_gguf *g, int64_t i, tw_gguf_str *out);
bool tw_gguf_kv_arr(const tw_gguf *g, int64_t i, tw_gguf_array *out);

/* Typed access by key, for required values. TW_OK, or TW_ERR_INVALID with
 * "PATH: key 'K': missing" / "PATH: offset N: key 'K': expected an integer, found string"
 * (or a value out of range for the narrower getters). */
tw_status tw_gguf_get_int(const tw_gguf *g, const char *key, int64_t *out, tw_error *err);
tw_status tw_gguf_get_u32(const tw_gguf *g, const char *key, uint32_t *out, tw_error *err);
tw_status tw_gguf_get_float(const tw_gguf *g, const char *key, double *out, tw_error *err);
tw_status tw_gguf_get_bool(const tw_gguf *g, const char *key, bool *out, tw_error *err);
tw_status tw_gguf_get_str(const tw_gguf *g, const char *key, tw_gguf_str *out, tw_error *err);
/* elem_type: the required element type, or TW_GGUF_VTYPE_COUNT for any. */
tw_status tw_gguf_get_arr(const tw_gguf *g, const char *key, tw_gguf_vtype elem_type, tw_gguf_array *out,
                          tw_error *err);

/* Optional values: return `def` when KEY is absent or has another type. */
int64_t tw_gguf_int_or(const tw_gguf *g, const char *key, int64_t def);
double tw_gguf_float_or(const tw_gguf *g, const char *key, double def);
bool tw_gguf_bool_or(const tw_gguf *g, const char *key, bool def);
/* Copy a STRING value into buf (truncated, always NUL-terminated when cap > 0);
 * returns false when absent or not a string (buf then holds ""). */
bool tw_gguf_str_copy(const tw_gguf *g, const char *key, char *buf, size_t cap);
/* true when s equals the C string z exactly. */
bool tw_gguf_str_eq(tw_gguf_str s, const char *z);

/* Element idx of an array. An index >= a->n (or the wrong array kind) gives an empty
 * string / 0 rather than reading outside the file; integers of any width, bools as 0/1. */
tw_gguf_str tw_gguf_arr_str(const tw_gguf *g, const tw_gguf_array *a, uint64_t idx);
int64_t tw_gguf_arr_int(const tw_gguf_array *a, uint64_t idx);    /* integer and bool arrays */
double tw_gguf_arr_float(const tw_gguf_array *a, uint64_t idx);   /* float and integer arrays */

/* ---- tensors ------------------------------------------------------------- */
int64_t tw_gguf_tensor_count(const tw_gguf *g);
const tw_gguf_tensor *tw_gguf_tensor_at(const tw_gguf *g, int64_t i);   /* NULL if out of range */
const tw_gguf_tensor *tw_gguf_tensor_find(const tw_gguf *g, const char *name);   /* NULL if absent */

/* ---- writer ------------------------------------------------------------ */
typedef struct tw_gguf_writer tw_gguf_writer;

/* Fill rows [row0, row0 + nrows) of a tensor into dst (nrows * row bytes, where a row is
 * ne[0] elements of the tensor's type). Called in increasing row order, a few MiB at a
 * time, while the file is written. Return TW_OK or an error (set err). */
typedef tw_status (*tw_gguf_fill_fn)(void *user, void *dst, uint64_t row0, uint64_t nrows, tw_error *err);

/* New writer (version 3, alignment 32). */
tw_status tw_gguf_writer_new(tw_gguf_writer **out, tw_error *err);
void tw_gguf_writer_free(tw_gguf_writer *w);

/* Add a key/value. Adding a key that is already there replaces its value in place
 * (the key keeps its position). All data is copied. Setting general.alignment (UINT32,
 * a power of two) changes the alignment of the file written. */
tw_status tw_gguf_writer_set_u8(tw_gguf_writer *w, const char *key, uint8_t v, tw_error *err);
tw_status tw_gguf_writer_set_i8(tw_gguf_writer *w, const char *key, int8_t v, tw_error *err);
tw_status tw_gguf_writer_set_u16(tw_gguf_writer *w, const char *key, uint16_t v, tw_error *err);
tw_status tw_gguf_writer_set_i16(tw_gguf_writer *w, const char *key, int16_t v, tw_error *err);
tw_status tw_gguf_writer_set_u32(tw_gguf_writer *w, const char *key, uint32_t v, tw_error *err);
tw_status tw_gguf_writer_set_i32(tw_gguf_writer *w, const char *key, int32_t v, tw_error *err);
tw_status tw_gguf_writer_set_u64(tw_gguf_writer *w, const char *key, uint64_t v, tw_error *err);
tw_status tw_gguf_writer_set_i64(tw_gguf_writer *w, const char *key, int64_t v, tw_error *err);
tw_status tw_gguf_writer_set_f32(tw_gguf_writer *w, const char *key, float v, tw_error *err);
tw_status tw_gguf_writer_set_f64(tw_gguf_writer *w, const char *key, double v, tw_error *err);
tw_status tw_gguf_writer_set_bool(tw_gguf_writer *w, const char *key, bool v, tw_error *err);
/* len = (size_t)-1 means strlen(s). */
tw_status tw_gguf_writer_set_str(tw_gguf_writer *w, const char *key, const char *s, size_t len, tw_error *err);
/* Array of a fixed-size element type (not STRING/ARRAY): n packed elements. */
tw_status tw_gguf_writer_set_arr(tw_gguf_writer *w, const char *key, tw_gguf_vtype elem_type, const void *data,
                                 uint64_t n, tw_error *err);
/* Array of strings; lens may be NULL (each strs[i] NUL-terminated). */
tw_status tw_gguf_writer_set_arr_str(tw_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, uint64_t n, tw_error *err);
/* Copy entry i of an open file (any type, arrays included) under the same key. */
tw_status tw_gguf_writer_copy_kv(tw_gguf_writer *w, const tw_gguf *g, int64_t i, tw_error *err);
/* Remove KEY if present. */
void tw_gguf_writer_remove(tw_gguf_writer *w, const char *key);

/* Add a tensor (names must be unique, at most 64 bytes as llama.cpp requires;
 * n_dims 1..4; ne[0] a multiple of the type's block size). Data either from `data`
 * (borrowed: must stay valid until tw_gguf_writer_write returns) or, when data is
 * NULL, from fill(user, ...). */
tw_status tw_gguf_writer_add_tensor(tw_gguf_writer *w, const char *name, tw_type type, uint32_t n_dims,
                                    const int64_t *ne, const void *data, tw_gguf_fill_fn fill, void *user,
                                    tw_error *err);
int64_t tw_gguf_writer_tensor_count(const tw_gguf_writer *w);

/* Write everything to PATH atomically. The writer can be written again or freed. */
tw_status tw_gguf_writer_write(tw_gguf_writer *w, const char *path, tw_error *err);

#endif /* TW_MODEL_GGUF_H */
