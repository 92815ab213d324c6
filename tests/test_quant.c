/* test_quant.c — weight types (src/model/quant.h, half.h): block geometry, fp16/bf16
 * conversions, dequantization and reference quantization.
 *
 * Oracles (fixtures made by tests/ref/gen_quant_fixtures.py with gguf-py 0.19.0 + numpy):
 *  - tests/data/quant/manifest.json: random blocks of every type and gguf-py's dequantized
 *    floats (compared bit for bit); gguf-py's quantization of named input rows for the
 *    types it quantizes (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1; bit for bit);
 *  - half.json: sha256 of numpy's fp16/bf16 conversions over all 65,536 16-bit values and
 *    ~4.1 M structured float32 patterns (every exponent, every tie), plus explicit cases;
 *  - smollm2.json: sha256 of gguf-py's dequantization of tensors of the real SmolLM2-135M
 *    Q4_1 GGUF (Q4_1, Q8_0, F32), read at recorded absolute file offsets (by default 13
 *    ranges; all 275 with TW_QUANT_FULL=1).
 * Round-trip error bounds are derived from the formats (legacy types: per element) or
 * measured with margin (k-quants: RMSE relative to the row RMS); see docs/quant.md. */
#include "testutil.h"

#include "base/base.h"
#include "model/quant.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>

#define QDIR "tests/data/quant/"

/* ---- helpers ----------------------------------------------------------------------- */

static json_t *load_json(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, QDIR "%s", name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert_not_null(j, "%s: %s (line %d) — run from the repository root", path, je.text, je.line);
    return j;
}

/* Read a fixture file and check its recorded size and sha256 (desc: {"file","bytes","sha256"}). */
static void *load_fixture(json_t *desc, size_t *len)
{
    const char *file = json_string_value(json_object_get(desc, "file"));
    cr_assert_not_null(file);
    char path[256];
    snprintf(path, sizeof path, QDIR "%s", file);
    char *data;
    tw_error err;
    cr_assert_eq(tw_file_read(path, &data, len, &err), TW_OK, "%s", err.msg);
    cr_assert_eq((json_int_t)*len, json_integer_value(json_object_get(desc, "bytes")), "%s: size", path);
    char hex[65];
    tw_sha256(data, *len, hex);
    cr_assert_str_eq(hex, json_string_value(json_object_get(desc, "sha256")), "%s: sha256", path);
    return data;
}

static tw_type type_of(json_t *o)
{
    tw_type t;
    cr_assert(tw_type_parse(json_string_value(json_object_get(o, "type")), &t));
    return t;
}

static uint32_t fbits(float f) { return tw_f32_bits(f); }

/* Bitwise comparison of n floats; reports the first mismatch. */
static void expect_same_floats(const float *got, const float *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (fbits(got[i]) != fbits(want[i]))
            cr_assert_fail("%s: element %lld: got %.9g (0x%08x), gguf-py %.9g (0x%08x)", what, (long long)i,
                           (double)got[i], fbits(got[i]), (double)want[i], fbits(want[i]));
}

static size_t row_bytes(tw_type t, int64_t n)
{
    size_t b = tw_type_row_bytes(t, (uint64_t)n);
    cr_assert(b > 0 || n == 0);
    return b;
}

/* ---- geometry and API contract ----------------------------------------------------- */

Test(quant, block_structs_match_type_table)
{
    struct { tw_type t; size_t size, block; } k[] = {
        {TW_TYPE_Q8_0, sizeof(tw_block_q8_0), TW_QK}, {TW_TYPE_Q4_0, sizeof(tw_block_q4_0), TW_QK},
        {TW_TYPE_Q4_1, sizeof(tw_block_q4_1), TW_QK}, {TW_TYPE_Q5_0, sizeof(tw_block_q5_0), TW_QK},
        {TW_TYPE_Q5_1, sizeof(tw_block_q5_1), TW_QK}, {TW_TYPE_Q4_K, sizeof(tw_block_q4_k), TW_QK_K},
        {TW_TYPE_Q5_K, sizeof(tw_block_q5_k), TW_QK_K}, {TW_TYPE_Q6_K, sizeof(tw_block_q6_k), TW_QK_K},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const tw_type_info *ti = tw_type_get(k[i].t);
        cr_assert_not_null(ti);
        cr_expect_eq(ti->bytes, k[i].size, "%s: struct %zu bytes, table %u", ti->name, k[i].size, ti->bytes);
        cr_expect_eq(ti->block, k[i].block, "%s block", ti->name);
    }
}

Test(quant, supported_types)
{
    const tw_type yes[] = {TW_TYPE_F32, TW_TYPE_F16, TW_TYPE_BF16, TW_TYPE_Q8_0, TW_TYPE_Q4_0, TW_TYPE_Q4_1,
                           TW_TYPE_Q5_0, TW_TYPE_Q5_1, TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    const tw_type no[] = {TW_TYPE_Q8_1, TW_TYPE_Q2_K, TW_TYPE_Q3_K, TW_TYPE_Q8_K, TW_TYPE_I8,
                          TW_TYPE_I32, TW_TYPE_F64, (tw_type)4, (tw_type)39};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        cr_expect(tw_quant_supported(yes[i]), "type %d", yes[i]);
        /* the types table agrees (types.c marks what can be dequantized) */
        cr_expect(tw_type_get(yes[i])->supported, "type %d", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) cr_expect(!tw_quant_supported(no[i]), "type %d", no[i]);
}

Test(quant, precondition_violations_are_visible)
{
    float out[64];
    uint8_t blob[64];
    memset(blob, 0x11, sizeof blob);
    for (int i = 0; i < 64; i++) out[i] = 1.0f;
    tw_dequantize_row(TW_TYPE_Q2_K, out, blob, 64);     /* unsupported type */
    for (int i = 0; i < 64; i++) cr_assert(isnan(out[i]));
    for (int i = 0; i < 64; i++) out[i] = 1.0f;
    tw_dequantize_row(TW_TYPE_Q4_0, out, blob, 48);     /* not a multiple of 32 */
    for (int i = 0; i < 48; i++) cr_assert(isnan(out[i]));
    cr_assert_eq(out[48], 1.0f, "wrote past n");
    tw_quantize_row(TW_TYPE_Q8_0, blob, out, 16);       /* not a multiple of 32 */
    tw_quantize_row(TW_TYPE_Q8_1, blob, out, 32);       /* unsupported */
    for (int i = 0; i < 64; i++) cr_assert_eq(blob[i], 0x11, "quantize wrote on a bad call");
    out[0] = 1.0f;
    tw_dequantize_row(TW_TYPE_Q6_K, out, blob, 0);      /* n = 0 is valid and a no-op */
    cr_assert_eq(out[0], 1.0f);
}

/* ---- fp16 / bf16 -------------------------------------------------------------------- */

/* The float32 inputs of half.json, regenerated (same formulas as the generator). */
static uint32_t *f32_to_f16_inputs(size_t *count)
{
    const uint32_t lows[6] = {0, 1, 0xfff, 0x1000, 0x1001, 0x1fff};
    uint32_t *v = malloc(sizeof(uint32_t) * ((size_t)7 << 19));
    size_t k = 0;
    for (uint64_t hi = 0; hi < (1u << 19); hi++)
        for (int j = 0; j < 7; j++) {
            uint32_t lo = j < 6 ? lows[j] : (uint32_t)(((hi * 2654435761u) >> 7) & 0x1fff);
            uint32_t b = (uint32_t)(hi << 13) | lo;
            if ((b & 0x7fffffffu) > 0x7f800000u) continue;   /* NaNs: tested below */
            v[k++] = b;
        }
    *count = k;
    return v;
}

static uint32_t *f32_to_bf16_inputs(size_t *count)
{
    const uint32_t lows[6] = {0, 1, 0x7fff, 0x8000, 0x8001, 0xffff};
    uint32_t *v = malloc(sizeof(uint32_t) * ((size_t)7 << 16));
    size_t k = 0;
    for (uint64_t hi = 0; hi < (1u << 16); hi++)
        for (int j = 0; j < 7; j++)
            v[k++] = (uint32_t)(hi << 16) | (j < 6 ? lows[j] : (uint32_t)(((hi * 2654435761u) >> 5) & 0xffff));
    *count = k;
    return v;
}

static void expect_sha(const void *data, size_t n, json_t *o, const char *what)
{
    char hex[65];
    tw_sha256(data, n, hex);
    cr_assert_str_eq(hex, json_string_value(json_object_get(o, "sha256")), "%s differs from numpy", what);
}

Test(half, widening_matches_numpy_for_all_values)
{
    json_t *h = load_json("half.json");
    float *f = malloc(sizeof(float) * 65536);
    uint16_t *all = malloc(sizeof(uint16_t) * 65536);
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    tw_fp16_to_fp32_row(f, all, 65536);
    expect_sha(f, sizeof(float) * 65536, json_object_get(h, "f16_to_f32_all"), "fp16 -> fp32");
    tw_bf16_to_fp32_row(f, all, 65536);
    expect_sha(f, sizeof(float) * 65536, json_object_get(h, "bf16_to_f32_all"), "bf16 -> fp32");
    /* spot values an error message can show */
    cr_assert_eq(tw_fp16_to_fp32(0x3c00), 1.0f);
    cr_assert_eq(tw_fp16_to_fp32(0xc000), -2.0f);
    cr_assert_eq(tw_fp16_to_fp32(0x7bff), 65504.0f);
    cr_assert_eq(tw_fp16_to_fp32(0x0001), 0x1p-24f);             /* smallest subnormal */
    cr_assert_eq(tw_fp16_to_fp32(0x03ff), 1023 * 0x1p-24f);      /* largest subnormal */
    cr_assert_eq(fbits(tw_fp16_to_fp32(0x8000)), 0x80000000u);   /* -0 */
    cr_assert(isinf(tw_fp16_to_fp32(0xfc00)) && tw_fp16_to_fp32(0xfc00) < 0);
    cr_assert_eq(fbits(tw_fp16_to_fp32(0x7c01)), 0x7f802000u);   /* sNaN payload kept */
    cr_assert_eq(tw_bf16_to_fp32(0x3f80), 1.0f);
    free(f);
    free(all);
    json_decref(h);
}

Test(half, narrowing_matches_numpy_with_every_tie)
{
    json_t *h = load_json("half.json");
    size_t n;
    uint32_t *in = f32_to_f16_inputs(&n);
    json_t *o = json_object_get(h, "f32_to_f16");
    cr_assert_eq((json_int_t)n, json_integer_value(json_object_get(o, "count")));
    uint16_t *out = malloc(sizeof(uint16_t) * n);
    tw_fp32_to_fp16_row(out, (const float *)in, (int64_t)n);
    expect_sha(out, sizeof(uint16_t) * n, o, "fp32 -> fp16 (RNE)");
    free(in);
    free(out);

    in = f32_to_bf16_inputs(&n);
    o = json_object_get(h, "f32_to_bf16");
    cr_assert_eq((json_int_t)n, json_integer_value(json_object_get(o, "count")));
    out = malloc(sizeof(uint16_t) * n);
    tw_fp32_to_bf16_row(out, (const float *)in, (int64_t)n);
    expect_sha(out, sizeof(uint16_t) * n, o, "fp32 -> bf16 (RNE)");
    free(in);
    free(out);

    json_t *cases = json_object_get(h, "cases");
    cr_assert(json_array_size(cases) > 20);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        uint32_t x = (uint32_t)json_integer_value(json_array_get(c, 0));
        uint16_t w16 = (uint16_t)json_integer_value(json_array_get(c, 1));
        uint16_t wb = (uint16_t)json_integer_value(json_array_get(c, 2));
        float f = tw_bits_f32(x);
        cr_expect_eq(tw_fp32_to_fp16(f), w16, "fp16(0x%08x = %.9g): got 0x%04x, numpy 0x%04x", x, (double)f,
                     tw_fp32_to_fp16(f), w16);
        cr_expect_eq(tw_fp32_to_bf16(f), wb, "bf16(0x%08x): got 0x%04x, gguf-py 0x%04x", x, tw_fp32_to_bf16(f), wb);
    }
    json_decref(h);
}

Test(half, round_trips_and_specials)
{
    for (uint32_t i = 0; i < 65536; i++) {
        const uint16_t hv = (uint16_t)i;
        const bool nan16 = (hv & 0x7c00) == 0x7c00 && (hv & 0x3ff);
        if (!nan16) cr_assert_eq(tw_fp32_to_fp16(tw_fp16_to_fp32(hv)), hv, "fp16 0x%04x does not round-trip", hv);
        const bool nanb = (hv & 0x7f80) == 0x7f80 && (hv & 0x7f);
        if (!nanb) cr_assert_eq(tw_fp32_to_bf16(tw_bf16_to_fp32(hv)), hv, "bf16 0x%04x does not round-trip", hv);
        if (nan16) {   /* NaN stays NaN, sign kept, quiet bit set, top payload bits kept */
            uint16_t r = tw_fp32_to_fp16(tw_fp16_to_fp32(hv));
            cr_assert_eq(r, hv | 0x0200, "fp16 NaN 0x%04x -> 0x%04x", hv, r);
        }
        if (nanb) {
            uint16_t r = tw_fp32_to_bf16(tw_bf16_to_fp32(hv));
            cr_assert_eq(r, hv | 0x0040, "bf16 NaN 0x%04x -> 0x%04x", hv, r);
        }
    }
    /* float32 NaNs whose payload lies only in the dropped bits must not become inf */
    cr_assert_eq(tw_fp32_to_fp16(tw_bits_f32(0x7f800001u)), 0x7e00);
    cr_assert_eq(tw_fp32_to_fp16(tw_bits_f32(0xff800001u)), 0xfe00);
    cr_assert_eq(tw_fp32_to_bf16(tw_bits_f32(0x7f800001u)), 0x7fc0);
    cr_assert_eq(tw_fp32_to_bf16(tw_bits_f32(0xff800001u)), 0xffc0);
    /* ties to even at 1.0: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    cr_assert_eq(tw_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
    cr_assert_eq(tw_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
    cr_assert_eq(tw_fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    cr_assert_eq(tw_fp32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    /* overflow: 65519.996 stays finite, 65520 (the tie) goes to inf; bf16 of FLT_MAX -> inf */
    cr_assert_eq(tw_fp32_to_fp16(65519.99f), 0x7bff);
    cr_assert_eq(tw_fp32_to_fp16(65520.0f), 0x7c00);
    cr_assert_eq(tw_fp32_to_fp16(-1e30f), 0xfc00);
    cr_assert_eq(tw_fp32_to_bf16(tw_bits_f32(0x7f7fffffu)), 0x7f80);
    /* fp16 subnormals are produced, not flushed; below half the smallest one -> 0 */
    cr_assert_eq(tw_fp32_to_fp16(0x1p-24f), 0x0001);
    cr_assert_eq(tw_fp32_to_fp16(0x1p-25f), 0x0000);                /* tie -> even (0) */
    cr_assert_eq(tw_fp32_to_fp16(0x1.8p-24f), 0x0002);              /* tie 1.5 -> 2 */
    cr_assert_eq(tw_fp32_to_fp16(-0x1p-26f), 0x8000);
    cr_assert_eq(tw_fp32_to_fp16(0x1.ff8p-15f), 0x03ff);             /* the largest subnormal */
    cr_assert_eq(tw_fp32_to_fp16(0x1.ffcp-15f), 0x0400);             /* tie -> even: the smallest normal */
}

/* ---- dequantization and quantization against gguf-py -------------------------------- */

Test(quant, dequantize_matches_gguf_py_on_random_blocks)
{
    json_t *m = load_json("manifest.json");
    json_t *cases = json_object_get(m, "cases");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(c, "kind")), "blocks") != 0) continue;
        const tw_type t = type_of(c);
        const int64_t n = json_integer_value(json_object_get(c, "n"));
        size_t slen, elen;
        uint8_t *src = load_fixture(json_object_get(c, "src"), &slen);
        float *want = load_fixture(json_object_get(c, "expect"), &elen);
        cr_assert_eq(slen, row_bytes(t, n));
        cr_assert_eq(elen, sizeof(float) * (size_t)n);
        float *got = malloc(sizeof(float) * (size_t)n);
        char what[64];
        snprintf(what, sizeof what, "%s random blocks", tw_type_get(t)->name);
        tw_dequantize_row(t, got, src, n);
        expect_same_floats(got, want, n, what);
        /* the same from an odd address (byte-wise reads, no alignment assumed), block by
         * block in separate calls (rows of one block) */
        uint8_t *odd = malloc(slen + 1);
        memcpy(odd + 1, src, slen);
        memset(got, 0, sizeof(float) * (size_t)n);
        const int64_t blk = tw_type_get(t)->block;
        const size_t bb = tw_type_get(t)->bytes;
        for (int64_t b = 0; b < n / blk; b++) tw_dequantize_row(t, got + b * blk, odd + 1 + (size_t)b * bb, blk);
        snprintf(what, sizeof what, "%s unaligned, per block", tw_type_get(t)->name);
        expect_same_floats(got, want, n, what);
        free(odd);
        free(got);
        free(src);
        free(want);
        seen++;
    }
    cr_assert_eq(seen, 11, "expected a random-block case for each of the 11 types");
    json_decref(m);
}

Test(quant, quantize_matches_gguf_py_bit_for_bit)
{
    json_t *m = load_json("manifest.json");
    size_t ilen;
    json_t *input = json_object_get(m, "input");
    float *x = load_fixture(input, &ilen);
    const int64_t nin = (int64_t)(ilen / sizeof(float));
    const int64_t cols = json_integer_value(json_object_get(input, "cols"));
    json_t *names = json_object_get(input, "row_names");
    json_t *cases = json_object_get(m, "cases");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        if (strcmp(json_string_value(json_object_get(c, "kind")), "quantize") != 0) continue;
        const tw_type t = type_of(c);
        const char *tn = tw_type_get(t)->name;
        cr_assert_eq(json_integer_value(json_object_get(c, "n")), nin);
        size_t qlen, elen;
        uint8_t *wantq = load_fixture(json_object_get(c, "expect_bytes"), &qlen);
        float *want = load_fixture(json_object_get(c, "expect"), &elen);
        cr_assert_eq(qlen, row_bytes(t, nin));
        uint8_t *q = malloc(qlen);
        memset(q, 0xAB, qlen);
        tw_quantize_row(t, q, x, nin);
        const size_t rb = row_bytes(t, cols);
        for (size_t k = 0; k < qlen; k++)
            if (q[k] != wantq[k]) {
                const size_t row = k / rb;
                cr_assert_fail("%s: quantized byte %zu (row '%s', byte %zu of the row) is 0x%02x, gguf-py 0x%02x", tn,
                               k, json_string_value(json_array_get(names, row)), k % rb, q[k], wantq[k]);
            }
        float *got = malloc(elen);
        tw_dequantize_row(t, got, wantq, nin);
        char what[64];
        snprintf(what, sizeof what, "%s dequantize(gguf-py quantize)", tn);
        expect_same_floats(got, want, nin, what);
        free(got);
        free(q);
        free(wantq);
        free(want);
        seen++;
    }
    cr_assert_eq(seen, 8, "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1");
    free(x);
    json_decref(m);
}

/* ---- round-trip error bounds -------------------------------------------------------- */

/* Rounding error of storing v in fp16 (round to nearest): half an ulp, i.e. at most
 * |v| * 2^-11 for normals and 2^-25 in the subnormal range. */
static double fp16_err(double v)
{
    return fmax(fabs(v) * 0x1p-11, 0x1p-25);
}

/* Per-element bound of the legacy types, derived from the format (docs/quant.md):
 *  symmetric (Q8_0, Q4_0, Q5_0): d = signed max / -K (Q8_0: amax/127), q = round(x/d),
 *    |x - q d| <= |d|/2 where q is not clamped; Q4_0/Q5_0 clamp the far end at K-1, where
 *    the error is |d| (t - (K-1)) for t = x/d in (K-1/2, K]; plus qmax * fp16_err(d) for
 *    the stored scale;
 *  affine (Q4_1, Q5_1): d = (max - min)/N, |err| <= d/2 + N fp16_err(d) + fp16_err(min).
 * Plus float32 arithmetic slop: 8 ulps of the block's magnitude. */
static double legacy_bound(tw_type t, const float *blk, int j)
{
    float amax = 0, smax = blk[0], lo = blk[0], hi = blk[0];
    for (int i = 0; i < TW_QK; i++) {
        if (fabsf(blk[i]) > amax) {
            amax = fabsf(blk[i]);
            smax = blk[i];
        }
        lo = fminf(lo, blk[i]);
        hi = fmaxf(hi, blk[i]);
    }
    const double slop = 8 * 0x1p-24 * (double)amax;
    double d;
    switch (t) {
    case TW_TYPE_Q8_0:
        d = amax / 127.0;
        return d / 2 + 127 * fp16_err(d) + slop;
    case TW_TYPE_Q4_0:
    case TW_TYPE_Q5_0: {
        const double K = t == TW_TYPE_Q4_0 ? 8 : 16;
        d = smax / -K;
        const double tq = d != 0 ? blk[j] / d : 0;
        return fabs(d) * fmax(0.5, tq - (K - 1)) + K * fp16_err(d) + slop;
    }
    case TW_TYPE_Q4_1:
    case TW_TYPE_Q5_1: {
        const double N = t == TW_TYPE_Q4_1 ? 15 : 31;
        d = ((double)hi - lo) / N;
        return d / 2 + N * fp16_err(d) + fp16_err(lo) + slop;
    }
    default:
        return 0;
    }
}

/* Named test rows (256 each), from a seeded RNG plus the adversarial shapes. */
enum { NCOL = 256 };
typedef struct { const char *name; float x[NCOL]; } test_row;

static float *new_row(test_row *r, int *n, int cap, const char *name)
{
    cr_assert(*n < cap);
    r[*n].name = name;
    return r[(*n)++].x;
}

static int make_rows(test_row *r, int cap)
{
    tw_rng rng;
    tw_rng_seed(&rng, 7);
    int n = 0;
#define ROW(nm) new_row(r, &n, cap, (nm))
    for (int k = 0; k < 24; k++) {   /* the bulk: Gaussian rows at weight-like scales */
        float *x = ROW("gaussian");
        const double s = k < 12 ? 1.0 : 0.02;
        for (int i = 0; i < NCOL; i++) x[i] = (float)(tw_rng_normal(&rng) * s);
    }
    for (int k = 0; k < 8; k++) {
        float *x = ROW("uniform");
        for (int i = 0; i < NCOL; i++) x[i] = (float)(tw_rng_uniform(&rng) * 2 - 1);
    }
    float *x = ROW("zeros");
    memset(x, 0, sizeof(float) * NCOL);
    x = ROW("constant +0.37");
    for (int i = 0; i < NCOL; i++) x[i] = 0.37f;
    x = ROW("constant -1.5");
    for (int i = 0; i < NCOL; i++) x[i] = -1.5f;
    x = ROW("one outlier");
    for (int i = 0; i < NCOL; i++) x[i] = (float)(tw_rng_normal(&rng) * 1e-3);
    x[77] = 50.0f;
    x = ROW("tiny (1e-6)");
    for (int i = 0; i < NCOL; i++) x[i] = (float)(tw_rng_normal(&rng) * 1e-6);
    x = ROW("huge (1e4)");
    for (int i = 0; i < NCOL; i++) x[i] = (float)(tw_rng_normal(&rng) * 1e4);
    x = ROW("negative only");
    for (int i = 0; i < NCOL; i++) x[i] = (float)(-fabs(tw_rng_normal(&rng)) - 0.5);
    x = ROW("positive only");
    for (int i = 0; i < NCOL; i++) x[i] = (float)(2 + tw_rng_uniform(&rng));
    x = ROW("mixed sub-block scales");
    for (int i = 0; i < NCOL; i++) x[i] = (float)(tw_rng_normal(&rng) * ldexp(1.0, i / 32 - 4));
#undef ROW
    return n;
}

/* Quantize + dequantize one row with the public API. */
static void round_trip(tw_type t, const float *x, float *y, int64_t n)
{
    size_t nb = row_bytes(t, n);
    uint8_t *q = malloc(nb);
    tw_quantize_row(t, q, x, n);
    tw_dequantize_row(t, y, q, n);
    free(q);
}

Test(quant, legacy_round_trip_within_format_bounds)
{
    static test_row rows[64];
    const int nr = make_rows(rows, 64);
    const tw_type types[] = {TW_TYPE_Q8_0, TW_TYPE_Q4_0, TW_TYPE_Q4_1, TW_TYPE_Q5_0, TW_TYPE_Q5_1};
    float y[NCOL];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tw_type t = types[ti];
        double worst = 0;   /* largest err / bound seen: shows the bound is not slack */
        for (int r = 0; r < nr; r++) {
            round_trip(t, rows[r].x, y, NCOL);
            for (int i = 0; i < NCOL; i++) {
                const float *blk = rows[r].x + (i / TW_QK) * TW_QK;
                const double b = legacy_bound(t, blk, i % TW_QK);
                const double e = fabs((double)y[i] - rows[r].x[i]);
                cr_assert(e <= b, "%s row '%s' [%d]: x=%.9g y=%.9g err %.3g > bound %.3g", tw_type_get(t)->name,
                          rows[r].name, i, (double)rows[r].x[i], (double)y[i], e, b);
                if (b > 0) worst = fmax(worst, e / b);
            }
        }
        /* a bound 10x too loose would hide a broken scale; random data reaches > 0.9 of it */
        cr_expect(worst > 0.9, "%s: max err/bound only %.3f", tw_type_get(t)->name, worst);
    }
    /* exact cases: zeros stay zeros; values on the grid come back exactly */
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        float z[TW_QK] = {0}, out[TW_QK];
        round_trip(types[ti], z, out, TW_QK);
        for (int i = 0; i < TW_QK; i++) cr_assert_eq(out[i], 0.0f, "%s zeros", tw_type_get(types[ti])->name);
    }
    /* signed max -2: Q4_0 d = 0.25, Q5_0 d = 0.125; multiples of 0.25 in [-2, 1.75] are
     * on both grids (Q4_0's +2 would be clamped to 1.75: the asymmetric end) */
    const tw_type sym[] = {TW_TYPE_Q4_0, TW_TYPE_Q5_0};
    for (size_t ti = 0; ti < 2; ti++) {
        float g[TW_QK], out[TW_QK];
        for (int i = 0; i < TW_QK; i++) g[i] = (float)((i % 15) - 7) * 0.25f;
        g[0] = -2.0f;
        round_trip(sym[ti], g, out, TW_QK);
        for (int i = 0; i < TW_QK; i++)
            cr_assert_eq(out[i], g[i], "%s grid value %d: %g -> %g", tw_type_get(sym[ti])->name, i, (double)g[i],
                         (double)out[i]);
    }
}

/* k-quants: RMSE of the round trip relative to the row RMS, per row class. Bounds are the
 * errors measured over these rows with margin (measured max in docs/quant.md):
 *  Q4_K 4 bits + 6-bit scale/min per 32: ~0.07 of rms on Gaussian rows  -> bound 0.095
 *  Q5_K 5 bits:                           ~0.035                         -> bound 0.05
 *  Q6_K 6 bits, 8-bit scale per 16:       ~0.018                         -> bound 0.025
 * Uniform rows are easier (no tails): same bounds. The "mixed sub-block scales" row is
 * the hard case for the 6-bit scales (a 2^7 spread inside a super-block): bound 2x.
 * Also per element: |err| <= 0.5 * max|x| of the super-block for every row (catches a
 * single wrong element that RMSE would average away; measured max ~0.1). */
static double k_rmse_bound(tw_type t)
{
    return t == TW_TYPE_Q4_K ? 0.095 : t == TW_TYPE_Q5_K ? 0.05 : 0.025;
}

Test(quant, k_quants_round_trip_within_measured_bounds)
{
    static test_row rows[64];
    const int nr = make_rows(rows, 64);
    const tw_type types[] = {TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    float y[NCOL];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const tw_type t = types[ti];
        const char *tn = tw_type_get(t)->name;
        double worst_rel = 0;
        for (int r = 0; r < nr; r++) {
            const float *x = rows[r].x;
            round_trip(t, x, y, NCOL);
            double se = 0, ss = 0, amax = 0, emax = 0;
            for (int i = 0; i < NCOL; i++) {
                const double e = (double)y[i] - x[i];
                se += e * e;
                ss += (double)x[i] * x[i];
                amax = fmax(amax, fabs(x[i]));
                emax = fmax(emax, fabs(e));
                cr_assert(isfinite(y[i]), "%s '%s'[%d] not finite", tn, rows[r].name, i);
            }
            const double rms = sqrt(ss / NCOL), rmse = sqrt(se / NCOL);
            const char *nm = rows[r].name;
            if (amax == 0) {
                cr_assert_eq(emax, 0.0, "%s zeros must stay zeros", tn);
                continue;
            }
            if (strncmp(nm, "constant", 8) == 0) {
                /* constant rows: only the fp16/6-bit scale rounding, a few ulps of fp16 */
                cr_assert(rmse <= 2e-3 * rms, "%s '%s': rmse %.3g rms %.3g", tn, nm, rmse, rms);
                continue;
            }
            double bound = k_rmse_bound(t);
            if (strcmp(nm, "mixed sub-block scales") == 0 || strcmp(nm, "one outlier") == 0) bound *= 2;
            if (strcmp(nm, "tiny (1e-6)") == 0) {
                /* the fp16 super-block scales of 1e-6 data are fp16 subnormals (Q4_K:
                 * d ~ 1e-6/15/63 = 1e-9 < 6e-8): precision is lost by the format itself;
                 * only require no blow-up */
                cr_assert(rmse <= 1.0 * rms, "%s '%s': rmse %.3g rms %.3g", tn, nm, rmse, rms);
                continue;
            }
            cr_assert(rmse <= bound * rms, "%s row '%s': rmse/rms %.4f > %.4f", tn, nm, rmse / rms, bound);
            cr_assert(emax <= 0.5 * amax, "%s row '%s': max err %.3g vs max|x| %.3g", tn, nm, emax, amax);
            if (strcmp(nm, "gaussian") == 0) worst_rel = fmax(worst_rel, rmse / rms);
        }
        /* and not absurdly good either (that would mean the test data bypasses the code) */
        cr_expect(worst_rel > 0.3 * k_rmse_bound(t), "%s: gaussian rmse/rms %.4f", tn, worst_rel);
    }
}

/* The scale searches are what k-quants add over a plain min/max grid; a search that
 * silently stopped working would still pass the loose per-row bounds above. Over 256
 * Gaussian rows the mean rmse/rms is 0.0715 (Q4_K), 0.0363 (Q5_K), 0.0178 (Q6_K); without
 * the search (nstep = 0 / no +-k/10 candidates) it was measured at 0.078, 0.038, 0.0184.
 * The bounds sit between. */
Test(quant, k_quant_scale_search_pays_off)
{
    const tw_type types[] = {TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    const double hi[] = {0.0740, 0.0372, 0.0181};
    enum { NR = 256 };
    float *x = malloc(sizeof(float) * NR * NCOL), *y = malloc(sizeof(float) * NR * NCOL);
    tw_rng rng;
    tw_rng_seed(&rng, 2024);
    for (int i = 0; i < NR * NCOL; i++) x[i] = (float)tw_rng_normal(&rng);
    for (int ti = 0; ti < 3; ti++) {
        round_trip(types[ti], x, y, NR * NCOL);
        double mean = 0;
        for (int r = 0; r < NR; r++) {
            double se = 0, ss = 0;
            for (int i = r * NCOL; i < (r + 1) * NCOL; i++) {
                se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                ss += (double)x[i] * x[i];
            }
            mean += sqrt(se / ss) / NR;
        }
        cr_assert(mean <= hi[ti], "%s: mean rmse/rms %.5f > %.4f", tw_type_get(types[ti])->name, mean, hi[ti]);
    }
    free(x);
    free(y);
}

/* Requantizing dequantized k-quant data must find (nearly) the same representation: the
 * values are on a grid the search can reach, so the error of the second round trip
 * is far below the first one's. Catches a search that ignores its input. */
Test(quant, k_quants_requantize_is_stable)
{
    const tw_type types[] = {TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    tw_rng rng;
    tw_rng_seed(&rng, 11);
    float x[4 * NCOL], y[4 * NCOL], z[4 * NCOL];
    for (int i = 0; i < 4 * NCOL; i++) x[i] = (float)tw_rng_normal(&rng);
    for (size_t ti = 0; ti < 3; ti++) {
        round_trip(types[ti], x, y, 4 * NCOL);
        round_trip(types[ti], y, z, 4 * NCOL);
        double e1 = 0, e2 = 0;
        for (int i = 0; i < 4 * NCOL; i++) {
            e1 += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            e2 += ((double)z[i] - y[i]) * ((double)z[i] - y[i]);
        }
        cr_assert(e2 <= 0.25 * e1, "%s: second round trip error %.3g vs first %.3g", tw_type_get(types[ti])->name,
                  sqrt(e2), sqrt(e1));
    }
}

/* Hand-built blocks with known values: one per k-quant, decoded by the documented rules
 * (catches a wrong nibble/bit order that random blocks alone would only show as "differs"). */
Test(quant, k_quant_layout_by_hand)
{
    /* Q4_K: d = 1, dmin = 0.5; sub-block j has sc = j + 1, mn = 2j (packed by the rules of
     * tw_q4k_scale_min); element 64c + l has q = l % 16 (low) and 15 - l % 16 (high). */
    uint8_t b[176];
    memset(b, 0, sizeof b);
    b[0] = 0x00; b[1] = 0x3c;          /* fp16 1.0 */
    b[2] = 0x00; b[3] = 0x38;          /* fp16 0.5 */
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(j * 8 + 1);  /* 1..57: all 6 bits used */
        mn[j] = (uint8_t)(63 - j * 7);
    }
    uint8_t *s = b + 4;
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        s[j + 4] = (uint8_t)(mn[j] | ((mn[j + 4] >> 4) << 6));
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
    for (int j = 0; j < 8; j++) {
        uint8_t a, m;
        tw_q4k_scale_min(j, s, &a, &m);
        cr_assert(a == sc[j] && m == mn[j], "scale_min %d: %d/%d vs %d/%d", j, a, m, sc[j], mn[j]);
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) b[16 + 32 * c + l] = (uint8_t)((l % 16) | ((15 - l % 16) << 4));
    float y[256];
    tw_dequantize_row(TW_TYPE_Q4_K, y, b, 256);
    for (int i = 0; i < 256; i++) {
        const int j = i / 32, l = i % 32;
        const int q = (j % 2 == 0) ? l % 16 : 15 - l % 16;
        const float want = (float)sc[j] * (float)q - 0.5f * (float)mn[j];
        cr_assert_eq(y[i], want, "q4_K element %d: %g vs %g", i, (double)y[i], (double)want);
    }
    /* Q5_K: the same plus qh: element 32j + l gets bit 4 when (l + j) is odd */
    uint8_t b5[176];
    memcpy(b5, b, 16);
    for (int l = 0; l < 32; l++) {
        uint8_t h = 0;
        for (int j = 0; j < 8; j++) h |= (uint8_t)(((l + j) & 1) << j);
        b5[16 + l] = h;
    }
    memcpy(b5 + 48, b + 16, 128);
    tw_dequantize_row(TW_TYPE_Q5_K, y, b5, 256);
    for (int i = 0; i < 256; i++) {
        const int j = i / 32, l = i % 32;
        const int q = ((j % 2 == 0) ? l % 16 : 15 - l % 16) + 16 * ((l + j) & 1);
        const float want = (float)sc[j] * (float)q - 0.5f * (float)mn[j];
        cr_assert_eq(y[i], want, "q5_K element %d: %g vs %g", i, (double)y[i], (double)want);
    }
    /* Q6_K: d = 1, scales[k] = k - 8; element i has q = i % 64 (stored as 6 bits). */
    uint8_t b6[210];
    memset(b6, 0, sizeof b6);
    for (int i = 0; i < 256; i++) {
        const int h = i / 128, k = (i % 128) / 32, l = i % 32, q = i % 64;
        uint8_t *ql = b6 + 64 * h + l + 32 * (k & 1);
        *ql |= (uint8_t)((q & 15) << (k >= 2 ? 4 : 0));
        b6[128 + 32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
    }
    for (int k = 0; k < 16; k++) b6[192 + k] = (uint8_t)(int8_t)(k - 8);
    b6[208] = 0x00; b6[209] = 0x3c;
    tw_dequantize_row(TW_TYPE_Q6_K, y, b6, 256);
    for (int i = 0; i < 256; i++) {
        const float want = (float)(i / 16 - 8) * (float)(i % 64 - 32);
        cr_assert_eq(y[i], want, "q6_K element %d: %g vs %g", i, (double)y[i], (double)want);
    }
}

/* ---- the real model ------------------------------------------------------------------ */

static char *model_path(void)
{
    const char *e = getenv("TW_SMOLLM2");
    char buf[1024];
    if (e && *e) return strdup(e);
    const char *cache = getenv("TW_CACHE");
    if (cache && *cache) snprintf(buf, sizeof buf, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(buf, sizeof buf, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                  getenv("HOME") ? getenv("HOME") : ".");
    return strdup(buf);
}

Test(quant, smollm2_tensors_dequantize_like_gguf_py, .timeout = 120)
{
    json_t *m = load_json("smollm2.json");
    char *path = model_path();
    FILE *f = fopen(path, "rb");
    if (!f)
        cr_assert_fail("SmolLM2 model not found at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", path);
    cr_assert_eq(fseeko(f, 0, SEEK_END), 0);
    cr_assert_eq((json_int_t)ftello(f), json_integer_value(json_object_get(m, "file_size")),
                 "%s: not the file the fixture was made from (size)", path);
    const bool full = getenv("TW_QUANT_FULL") && strcmp(getenv("TW_QUANT_FULL"), "1") == 0;
    json_t *ts = json_object_get(m, "tensors");
    int checked = 0, types_seen = 0;
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *t = json_array_get(ts, i);
        if (!full && !json_is_true(json_object_get(t, "default"))) continue;
        const char *name = json_string_value(json_object_get(t, "name"));
        const tw_type ty = type_of(t);
        const int64_t n = json_integer_value(json_object_get(t, "n_elements"));
        const size_t nb = (size_t)json_integer_value(json_object_get(t, "n_bytes"));
        cr_assert_eq(nb, row_bytes(ty, n), "%s: size", name);
        uint8_t *raw = malloc(nb);
        float *y = malloc(sizeof(float) * (size_t)n);
        cr_assert(raw && y);
        cr_assert_eq(fseeko(f, (off_t)json_integer_value(json_object_get(t, "offset")), SEEK_SET), 0);
        cr_assert_eq(fread(raw, 1, nb, f), nb, "%s: short read", name);
        char hex[65];
        tw_sha256(raw, nb, hex);
        cr_assert_str_eq(hex, json_string_value(json_object_get(t, "raw_sha256")),
                         "%s: raw bytes differ: %s is not the file the fixture was made from", name, path);
        tw_dequantize_row(ty, y, raw, n);
        json_t *samples = json_object_get(t, "samples");
        for (size_t k = 0; k < json_array_size(samples); k++) {
            json_t *s = json_array_get(samples, k);
            const int64_t idx = json_integer_value(json_array_get(s, 0));
            const uint32_t want = (uint32_t)strtoul(json_string_value(json_array_get(s, 1)), NULL, 16);
            cr_assert_eq(fbits(y[idx]), want, "%s[%lld]: got %.9g (0x%08x), gguf-py %.9g (0x%08x)", name,
                         (long long)idx, (double)y[idx], fbits(y[idx]), (double)tw_bits_f32(want), want);
        }
        tw_sha256(y, sizeof(float) * (size_t)n, hex);
        cr_assert_str_eq(hex, json_string_value(json_object_get(t, "deq_sha256")),
                         "%s (%s, %lld elements): dequantized floats differ from gguf-py", name,
                         tw_type_get(ty)->name, (long long)n);
        types_seen |= 1 << ty;
        free(raw);
        free(y);
        checked++;
    }
    cr_assert(checked >= 13, "only %d tensors checked", checked);
    cr_assert_eq(types_seen, (1 << TW_TYPE_F32) | (1 << TW_TYPE_Q4_1) | (1 << TW_TYPE_Q8_0),
                 "the file's three types (F32, Q4_1, Q8_0) must all be checked");
    fclose(f);
    free(path);
    json_decref(m);
}
