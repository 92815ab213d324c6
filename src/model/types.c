/* types.c — block geometry of the GGUF tensor types (GGUF spec, "GGML types"). */
#include "model/types.h"

#include <strings.h>

#define QK 32     /* block of the legacy quant types */
#define QK_K 256  /* super-block of the k-quants */

static const tw_type_info TYPES[TW_TYPE_COUNT] = {
    [TW_TYPE_F32] = {"f32", 1, 4, true},
    [TW_TYPE_F16] = {"f16", 1, 2, true},
    [TW_TYPE_Q4_0] = {"q4_0", QK, 2 + QK / 2, true},
    [TW_TYPE_Q4_1] = {"q4_1", QK, 4 + QK / 2, true},
    [TW_TYPE_Q5_0] = {"q5_0", QK, 2 + 4 + QK / 2, true},
    [TW_TYPE_Q5_1] = {"q5_1", QK, 4 + 4 + QK / 2, true},
    [TW_TYPE_Q8_0] = {"q8_0", QK, 2 + QK, true},
    [TW_TYPE_Q8_1] = {"q8_1", QK, 2 + 2 + QK, false},
    [TW_TYPE_Q2_K] = {"q2_k", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2, false},
    [TW_TYPE_Q3_K] = {"q3_k", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2, false},
    [TW_TYPE_Q4_K] = {"q4_k", QK_K, 2 + 2 + 12 + QK_K / 2, true},
    [TW_TYPE_Q5_K] = {"q5_k", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, true},
    [TW_TYPE_Q6_K] = {"q6_k", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true},
    [TW_TYPE_Q8_K] = {"q8_k", QK_K, 4 + QK_K + QK_K / 16 * 2, false},
    [TW_TYPE_I8] = {"i8", 1, 1, false},
    [TW_TYPE_I16] = {"i16", 1, 2, false},
    [TW_TYPE_I32] = {"i32", 1, 4, false},
    [TW_TYPE_I64] = {"i64", 1, 8, false},
    [TW_TYPE_F64] = {"f64", 1, 8, false},
    [TW_TYPE_BF16] = {"bf16", 1, 2, true},
};

const tw_type_info *tw_type_get(uint32_t type)
{
    if (type >= TW_TYPE_COUNT || !TYPES[type].name) return NULL;
    return &TYPES[type];
}

size_t tw_type_row_bytes(uint32_t type, uint64_t n)
{
    const tw_type_info *t = tw_type_get(type);
    if (!t || n % t->block) return 0;
    return (size_t)(n / t->block) * t->bytes;
}

bool tw_type_parse(const char *name, tw_type *out)
{
    for (uint32_t i = 0; i < TW_TYPE_COUNT; i++)
        if (TYPES[i].name && strcasecmp(TYPES[i].name, name) == 0) {
            *out = (tw_type)i;
            return true;
        }
    return false;
}
