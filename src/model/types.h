/* types.h — the tensor element types of GGUF files (numbering as in the GGUF spec /
 * ggml's ggml_type) with their block geometry. Shared by the GGUF reader/writer (sizes
 * for validation) and the quantization kernels (quant.h).
 * Deliberately not here: (de)quantization itself (quant.c). */
#ifndef TW_MODEL_TYPES_H
#define TW_MODEL_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tw_type {
    TW_TYPE_F32 = 0,
    TW_TYPE_F16 = 1,
    TW_TYPE_Q4_0 = 2,
    TW_TYPE_Q4_1 = 3,
    TW_TYPE_Q5_0 = 6,
    TW_TYPE_Q5_1 = 7,
    TW_TYPE_Q8_0 = 8,
    TW_TYPE_Q8_1 = 9,
    TW_TYPE_Q2_K = 10,
    TW_TYPE_Q3_K = 11,
    TW_TYPE_Q4_K = 12,
    TW_TYPE_Q5_K = 13,
    TW_TYPE_Q6_K = 14,
    TW_TYPE_Q8_K = 15,
    TW_TYPE_I8 = 24,
    TW_TYPE_I16 = 25,
    TW_TYPE_I32 = 26,
    TW_TYPE_I64 = 27,
    TW_TYPE_F64 = 28,
    TW_TYPE_BF16 = 30,
    TW_TYPE_COUNT = 40   /* upper bound of the numbering, not a type */
} tw_type;

typedef struct tw_type_info {
    const char *name;      /* "q4_k", "f32", ... (lowercase, like gguf-py) */
    uint32_t block;        /* elements per block (1 for plain types) */
    uint32_t bytes;        /* bytes per block */
    bool supported;        /* tunewise can dequantize it */
} tw_type_info;

/* NULL for numbers that are not a known type. */
const tw_type_info *tw_type_get(uint32_t type);
/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or the
 * type is unknown. */
size_t tw_type_row_bytes(uint32_t type, uint64_t n);
/* Parse "q4_k" / "Q4_K" / "f16" ...; false when unknown. */
bool tw_type_parse(const char *name, tw_type *out);

#endif
