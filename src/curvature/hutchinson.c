// Hutchinson's trace estimator: for Rademacher z (entries +-1 with probability 1/2),
// E[z^T H z] = tr H, with variance 2 sum_{i != j} H_ij^2 per probe. The estimate is the
// mean over `probes` draws and its standard error the sample standard deviation / sqrt(P).
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include "internal.h"
#include "normsharp/rng.h"

int ns_hutchinson_trace(ns_matvec_fn f, void *ctx, size_t n, int probes, uint64_t seed,
                        double *trace, double *stderr_out) {
    *trace = *stderr_out = NAN;
    if (n == 0) return ns_fail(NS_EINVAL, "Hutchinson trace: the operator has dimension 0.");
    if (n > (size_t)INT32_MAX) return ns_fail(NS_EINVAL, "Hutchinson trace: dimension %zu is too large for BLAS.", n);
    if (probes < 1) return ns_fail(NS_EINVAL, "Hutchinson trace: needs at least 1 probe, got %d.", probes);
    double *z = ns_malloc(n * sizeof(double)), *hz = ns_malloc(n * sizeof(double));
    int rc = (z && hz) ? NS_OK : NS_ENOMEM;
    ns_rng rng;
    ns_rng_seed(&rng, seed, NS_STREAM_TRACE);
    double mean = 0, m2 = 0;  // Welford's running mean and sum of squared deviations
    for (int p = 0; p < probes && !rc; p++) {
        uint64_t bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (i % 64 == 0) bits = ns_rng_u64(&rng);
            z[i] = (bits >> (i % 64)) & 1 ? 1.0 : -1.0;
        }
        if ((rc = f(ctx, z, hz, n))) break;
        double s = cblas_ddot((int)n, z, 1, hz, 1);
        if (!isfinite(s)) {
            rc = ns_fail(NS_EINVAL, "Hutchinson trace: the Hessian-vector product is not finite (probe %d).", p + 1);
            break;
        }
        double d = s - mean;
        mean += d / (p + 1);
        m2 += d * (s - mean);
    }
    if (!rc) {
        *trace = mean;
        *stderr_out = probes > 1 ? sqrt(m2 / (probes - 1) / probes) : NAN;
    }
    free(z);
    free(hz);
    return rc;
}
