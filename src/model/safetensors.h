/* safetensors.h — reader of Hugging Face .safetensors files and of the sharded
 * model.safetensors.index.json. Spec: huggingface/safetensors README ("Format"):
 *
 *   u64 N (little-endian) | N bytes of JSON header | tensor data
 *   header = { "NAME": {"dtype": "F16", "shape": [d0, d1, ...], "data_offsets": [begin, end]},
 *              ..., "__metadata__": {"key": "string value", ...} }   (optional metadata)
 *
 * The file is mmap'ed read-only and validated at open: N within the file and <= 100 MB,
 * the header valid UTF-8 JSON starting with '{' (trailing spaces allowed), no duplicate
 * keys, each entry exactly dtype/shape/data_offsets with a known dtype, non-negative
 * dims, end - begin == product(shape) * dtype size (no overflow), and the byte ranges
 * contiguous: sorted by begin they start at 0, each begins where the previous ends and
 * the last ends at the end of the file (no holes, no overlap). Errors read
 * "PATH: offset N: what was expected".
 *
 * Deliberately not here: mapping HF names to GGUF names and reading config.json
 * (config.h), dtype conversion (quant.h). Shapes here are in the file's (PyTorch) order:
 * shape[0] is the outermost dimension. */
#ifndef TW_MODEL_SAFETENSORS_H
#define TW_MODEL_SAFETENSORS_H

#include "tunewise.h"
#include "model/types.h"

#include <stdbool.h>
#include <stdint.h>

#define TW_ST_MAX_DIMS 8
#define TW_ST_MAX_HEADER (100u * 1000u * 1000u)   /* the spec's limit on N */

typedef enum tw_st_dtype {
    TW_ST_BOOL, TW_ST_U8, TW_ST_I8, TW_ST_F8_E5M2, TW_ST_F8_E4M3,
    TW_ST_I16, TW_ST_U16, TW_ST_F16, TW_ST_BF16,
    TW_ST_I32, TW_ST_U32, TW_ST_F32,
    TW_ST_I64, TW_ST_U64, TW_ST_F64,
    TW_ST_DTYPE_COUNT
} tw_st_dtype;

const char *tw_st_dtype_name(tw_st_dtype d);   /* "F16", ... as written in the header */
size_t tw_st_dtype_size(tw_st_dtype d);
/* The GGUF type of F32 / F16 / BF16 / F64 / I8 / I16 / I32 / I64; false for the others. */
bool tw_st_dtype_to_type(tw_st_dtype d, tw_type *out);

typedef struct tw_st_tensor {
    const char *name;        /* NUL-terminated (names with a NUL byte are rejected) */
    tw_st_dtype dtype;
    uint32_t n_dims;         /* 0 (a scalar) .. 8 */
    int64_t shape[TW_ST_MAX_DIMS];   /* PyTorch order; unused entries are 1 */
    uint64_t n_elements;
    uint64_t begin, end;     /* byte range relative to the data section */
    const void *data;        /* into the read-only mapping; valid until tw_st_free */
} tw_st_tensor;

typedef struct tw_safetensors tw_safetensors;

tw_status tw_st_open(tw_safetensors **out, const char *path, tw_error *err);
/* Over a caller's buffer (borrowed; must outlive the handle). */
tw_status tw_st_open_memory(tw_safetensors **out, const void *data, size_t size, const char *name, tw_error *err);
void tw_st_free(tw_safetensors *st);

const char *tw_st_path(const tw_safetensors *st);
uint64_t tw_st_file_size(const tw_safetensors *st);
uint64_t tw_st_data_offset(const tw_safetensors *st);     /* 8 + N */
int64_t tw_st_tensor_count(const tw_safetensors *st);
const tw_st_tensor *tw_st_tensor_at(const tw_safetensors *st, int64_t i);    /* header order */
const tw_st_tensor *tw_st_tensor_find(const tw_safetensors *st, const char *name);
/* A "__metadata__" value, or NULL when absent (borrowed). */
const char *tw_st_metadata(const tw_safetensors *st, const char *key);

/* ---- sharded checkpoints --------------------------------------------------- */
/* A set of safetensors files opened together: a single model.safetensors, or the shards
 * listed by model.safetensors.index.json ("weight_map": {tensor name: shard file name}).
 * Shard names must be plain file names in the index's folder; every tensor of the map
 * must be in the shard it names, and every tensor of a shard in the map; a tensor name
 * may appear in one shard only. */
typedef struct tw_st_set tw_st_set;

/* path: a .safetensors file, a model.safetensors.index.json, or a folder holding either
 * (model.safetensors preferred). */
tw_status tw_st_set_open(tw_st_set **out, const char *path, tw_error *err);
void tw_st_set_free(tw_st_set *s);
int tw_st_set_file_count(const tw_st_set *s);
const tw_safetensors *tw_st_set_file(const tw_st_set *s, int i);
uint64_t tw_st_set_bytes(const tw_st_set *s);             /* total size of the files */
int64_t tw_st_set_tensor_count(const tw_st_set *s);
const tw_st_tensor *tw_st_set_tensor_at(const tw_st_set *s, int64_t i);   /* file order, then header order */
const tw_st_tensor *tw_st_set_tensor_find(const tw_st_set *s, const char *name);

#endif /* TW_MODEL_SAFETENSORS_H */
