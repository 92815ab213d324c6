/* bench_quant.c — throughput of the scalar reference (de)quantizers, one thread.
 * For each type: quantize N random Gaussian floats, then time dequantizing them
 * (GB/s of float32 written) and quantizing them (M elements/s). Run from the repo root:
 *   build/bench/bench_quant [N]        (default N = 4,194,304)
 * Not a test: nothing is asserted; figures go to bench/RESULTS.md by hand. */
#include "base/base.h"
#include "model/quant.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : (int64_t)1 << 22;
    n -= n % 256;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    unsigned char *q = malloc((size_t)n * 4 + 1024);
    if (!x || !y || !q) return 1;
    tw_rng r;
    tw_rng_seed(&r, 1);
    for (int64_t i = 0; i < n; i++) x[i] = (float)tw_rng_normal(&r);
    static const tw_type types[] = {TW_TYPE_F32, TW_TYPE_F16, TW_TYPE_BF16, TW_TYPE_Q8_0, TW_TYPE_Q4_0, TW_TYPE_Q4_1,
                                    TW_TYPE_Q5_0, TW_TYPE_Q5_1, TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    printf("%lld elements, one thread, scalar reference\n", (long long)n);
    printf("%-6s %12s %14s\n", "type", "dequant GB/s", "quant Melem/s");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        double t0 = tw_now();
        int qreps = 0;
        do { tw_quantize_row(types[t], q, x, n); qreps++; } while (tw_now() - t0 < 0.5);
        double tq = (tw_now() - t0) / qreps;
        t0 = tw_now();
        int dreps = 0;
        do { tw_dequantize_row(types[t], y, q, n); dreps++; } while (tw_now() - t0 < 0.5);
        double td = (tw_now() - t0) / dreps;
        printf("%-6s %12.2f %14.1f\n", tw_type_get(types[t])->name, (double)n * 4 / td / 1e9, (double)n / tq / 1e6);
    }
    free(x); free(y); free(q);
    return 0;
}
