/* rng.c — xoshiro256** seeded through splitmix64: every random choice in tunewise
 * takes an explicit seed and draws from one of these. */
#include "base/base.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void tw_rng_seed(tw_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tw_rng_next(tw_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tw_rng_uniform(tw_rng *r) { return (double)(tw_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t tw_rng_below(tw_rng *r, uint64_t n)
{
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;   /* reject the biased tail */
    uint64_t x;
    do x = tw_rng_next(r); while (x >= limit);
    return x % n;
}

double tw_rng_normal(tw_rng *r)
{
    double u1 = tw_rng_uniform(r), u2 = tw_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void tw_rng_shuffle(tw_rng *r, void *base, size_t n, size_t elem)
{
    unsigned char *a = base, tmp[256];
    if (n < 2 || elem > sizeof tmp) return;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)tw_rng_below(r, i + 1);
        if (j == i) continue;
        memcpy(tmp, a + i * elem, elem);
        memcpy(a + i * elem, a + j * elem, elem);
        memcpy(a + j * elem, tmp, elem);
    }
}
