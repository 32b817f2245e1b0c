// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
#include "normsharp/rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ns_rng_seed(ns_rng *r, uint64_t seed, uint64_t stream) {
    // Mix the stream into the seed so (seed, stream) pairs give unrelated sequences.
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0;
}

uint64_t ns_rng_u64(ns_rng *r) {
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

double ns_rng_uniform(ns_rng *r) { return (double)(ns_rng_u64(r) >> 11) * 0x1.0p-53; }

double ns_rng_uniform_in(ns_rng *r, double a, double b) { return a + (b - a) * ns_rng_uniform(r); }

double ns_rng_normal(ns_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * ns_rng_uniform(r) - 1.0;
        v = 2.0 * ns_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->has_spare = 1;
    return u * m;
}

uint64_t ns_rng_below(ns_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;  // reject the tail to stay unbiased
    uint64_t x;
    do x = ns_rng_u64(r);
    while (x >= limit);
    return x % n;
}
