// normsharp/rng.h — seeded random numbers: xoshiro256** seeded by splitmix64.
// Same (seed, stream) -> same numbers on every machine and compiler. Normal draws use
// the Marsaglia polar method (only sqrt and log, both from libm).
#ifndef NORMSHARP_RNG_H
#define NORMSHARP_RNG_H
#include <stdint.h>

typedef struct {
    uint64_t s[4];
    int has_spare;
    double spare;
} ns_rng;

// Streams keep independent uses of one seed apart (weights, Lanczos start, data, ...).
enum {
    NS_STREAM_INIT = 1,      // model initialization theta_0
    NS_STREAM_LANCZOS = 2,   // Lanczos / power start vector
    NS_STREAM_TRACE = 3,     // Hutchinson probes
    NS_STREAM_DATA = 4,      // synthetic data (DLN tasks)
    NS_STREAM_BATCH = 5,     // minibatch order for SGD
    NS_STREAM_TEST = 6,      // DLN test draws
    NS_STREAM_SLQ = 7,       // stochastic Lanczos quadrature probes
};

void ns_rng_seed(ns_rng *r, uint64_t seed, uint64_t stream);
uint64_t ns_rng_u64(ns_rng *r);
double ns_rng_uniform(ns_rng *r);               // [0, 1), 53 random bits
double ns_rng_uniform_in(ns_rng *r, double a, double b);  // [a, b)
double ns_rng_normal(ns_rng *r);                // N(0, 1)
uint64_t ns_rng_below(ns_rng *r, uint64_t n);   // uniform integer in [0, n), unbiased
#endif
