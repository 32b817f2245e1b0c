// synth.c — Gaussian sparse regression for the DLN lab (docs/CONVENTIONS.md, DLN, Woodworth et al.):
// X_ij ~ N(0,1), beta*_i = 1/sqrt(s) on a random support of size s, y = X beta* + noise*N(0,1).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/data.h"
#include "normsharp/rng.h"

int ns_synth_sparse(int n, int d, int s, double noise, uint64_t seed, ns_synth *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return ns_fail(NS_EINVAL, "synthetic task: the number of examples n must be at least 1, got %d", n);
    if (d <= 0) return ns_fail(NS_EINVAL, "synthetic task: the dimension d must be at least 1, got %d", d);
    if (s < 0 || s > d)
        return ns_fail(NS_EINVAL, "synthetic task: the sparsity s must be between 0 and d = %d, got %d", d, s);
    if (!isfinite(noise) || noise < 0)
        return ns_fail(NS_EINVAL, "synthetic task: the noise level must be finite and >= 0, got %g", noise);
    double *X = ns_calloc((size_t)n * (size_t)d, sizeof *X);  // overflow-checked
    double *y = ns_calloc((size_t)n, sizeof *y);
    double *beta = ns_calloc((size_t)d, sizeof *beta);
    int *perm = ns_calloc((size_t)d, sizeof *perm);
    if (!X || !y || !beta || !perm) {
        free(X);
        free(y);
        free(beta);
        free(perm);
        return NS_ENOMEM;
    }
    // One stream, fixed order of draws: X row by row, then the support, then the noise.
    ns_rng rng;
    ns_rng_seed(&rng, seed, NS_STREAM_DATA);
    for (size_t i = 0; i < (size_t)n * (size_t)d; i++) X[i] = ns_rng_normal(&rng);
    // support = first s entries of a partial Fisher-Yates shuffle of 0..d-1
    for (int i = 0; i < d; i++) perm[i] = i;
    for (int i = 0; i < s; i++) {
        int j = i + (int)ns_rng_below(&rng, (uint64_t)(d - i));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < s; i++) beta[perm[i]] = 1.0 / sqrt((double)s);
    free(perm);
    for (int i = 0; i < n; i++) {
        double dot = 0;  // <x_i, beta*>
        for (int j = 0; j < d; j++) dot += X[(size_t)i * d + j] * beta[j];
        y[i] = dot + noise * ns_rng_normal(&rng);
    }
    out->n = n;
    out->d = d;
    out->s = s;
    out->noise = noise;
    out->X = X;
    out->y = y;
    out->beta_star = beta;
    return NS_OK;
}

void ns_synth_free(ns_synth *s) {
    if (!s) return;
    free(s->X);
    free(s->y);
    free(s->beta_star);
    memset(s, 0, sizeof *s);
}
