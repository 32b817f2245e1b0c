// prep.c — docs/CONVENTIONS.md, data preprocessing on raw uint8 pixels:
// x_ij = (p_ij/255 - mean_j) / std_j, mean and population std over the full training split.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "data_internal.h"

// Below this many rows n*sum(p^2) fits in uint64 (n^2 * 255^2 < 2^64), so the variance
// numerator n*S2 - S1^2 is computed exactly and a constant feature is recognised exactly.
#define PREP_EXACT_ROWS 16000000L

int ns_prep_standardize(const unsigned char *train_px, long n_full, int d, double *mean, double *std) {
    if (n_full <= 0 || d <= 0)
        return ns_fail(NS_EINVAL, "cannot standardize %ld training examples of %d features", n_full, d);
    uint64_t *s1 = ns_calloc((size_t)d, sizeof *s1);  // sum_i p_ij
    uint64_t *s2 = ns_calloc((size_t)d, sizeof *s2);  // sum_i p_ij^2
    if (!s1 || !s2) {
        free(s1);
        free(s2);
        return NS_ENOMEM;
    }
    // one pass, row by row (the order the bytes lie in memory)
    for (long i = 0; i < n_full; i++) {
        const unsigned char *p = train_px + (size_t)i * (size_t)d;
        for (int j = 0; j < d; j++) {
            uint64_t v = p[j];
            s1[j] += v;
            s2[j] += v * v;
        }
    }
    double n = (double)n_full;
    for (int j = 0; j < d; j++) {
        double var;  // population variance, in raw pixel units
        if (n_full <= PREP_EXACT_ROWS) {
            uint64_t num = (uint64_t)n_full * s2[j] - s1[j] * s1[j];  // n^2 var, exact
            var = (double)num / (n * n);
        } else {
            double m = (double)s1[j] / n;
            var = (double)s2[j] / n - m * m;
            if (var < 0) var = 0;
        }
        mean[j] = (double)s1[j] / n / 255.0;
        std[j] = var > 0 ? sqrt(var) / 255.0 : 1.0;  // zero spread: centred, not divided
    }
    free(s1);
    free(s2);
    return NS_OK;
}
