// Stochastic Lanczos quadrature (Golub & Meurant; Ubaru, Chen & Saad 2017; Ghorbani,
// Krishnan & Xiao 2019): the spectral density (1/n) sum_j delta(t - lambda_j) of a symmetric
// operator from a few probes. For a unit probe v, m Lanczos steps give T_m = V^T H V with
// V e_1 = v, and v^T g(H) v ~ e_1^T g(T_m) e_1 = sum_i (s_i1)^2 g(theta_i), exact for
// polynomials g of degree < 2m. With Gaussian v, E[v^T g(H) v / ||v||^2] = (1/n) tr g(H), so
// the mean over probes of the Gaussian-smoothed quadrature estimates the smoothed density.
//
// The tridiagonalization lives here (not in lanczos.c, which chooses its own stopping rule
// and restarts): SLQ needs the plain T_m from a given start vector.
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "normsharp/rng.h"
#include "normsharp/views.h"

void ns_slq_opts_default(ns_slq_opts *o) { *o = (ns_slq_opts){.probes = 5, .steps = 80, .seed = 0}; }

int ns_lanczos_tridiag(ns_matvec_fn f, void *ctx, size_t n, const double *v0, int m, double *alpha,
                       double *beta, int *steps, int *hvps) {
    *steps = 0;
    if (n == 0 || n > (size_t)INT32_MAX) return ns_fail(NS_EINVAL, "Lanczos tridiagonalization: bad dimension %zu.", n);
    if (m < 1) return ns_fail(NS_EINVAL, "Lanczos tridiagonalization: needs at least 1 step, got %d.", m);
    if ((size_t)m > n) m = (int)n;
    int ni = (int)n;
    double *q = ns_malloc((size_t)m * n * sizeof(double)), *w = ns_malloc(n * sizeof(double)),
           *h = ns_malloc((size_t)m * sizeof(double));
    int rc = q && w && h ? NS_OK : NS_ENOMEM;
    double scale = 0;
    if (!rc) {
        memcpy(q, v0, n * sizeof(double));
        double nrm = cblas_dnrm2(ni, q, 1);
        if (!(nrm > 0) || !isfinite(nrm)) rc = ns_fail(NS_EINVAL, "Lanczos tridiagonalization: the start vector is zero or not finite.");
        else cblas_dscal(ni, 1.0 / nrm, q, 1);
    }
    for (int j = 0; j < m && !rc; j++) {
        double *qj = q + (size_t)j * n;
        if ((rc = ns_curv_apply(f, ctx, qj, w, n, "Lanczos tridiagonalization", hvps))) break;
        alpha[j] = cblas_ddot(ni, qj, 1, w, 1);
        for (int pass = 0; pass < 2; pass++)  // full reorthogonalization: Gram-Schmidt twice
            ns_curv_cgs_pass(q, j + 1, ni, w, h);
        *steps = j + 1;
        if (j == m - 1) break;
        double b = cblas_dnrm2(ni, w, 1);
        scale = fmax(scale, fabs(alpha[j]) + b);
        if (b <= 1e-12 * scale) break;  // invariant subspace: T_j is exact for v0
        beta[j] = b;
        double *next = q + (size_t)(j + 1) * n;
        for (size_t i = 0; i < n; i++) next[i] = w[i] / b;
    }
    free(q);
    free(w);
    free(h);
    return rc;
}

void ns_slq_result_free(ns_slq_result *r) {
    if (!r) return;
    free(r->steps);
    free(r->node);
    free(r->weight);
    memset(r, 0, sizeof *r);
}

// Nodes and weights of one probe from T (alpha, beta, k steps), via LAPACK's dstev.
static int quadrature(const double *alpha, const double *beta, int k, double *node, double *weight, double *z,
                      double *e) {
    memcpy(node, alpha, (size_t)k * sizeof(double));
    if (k > 1) memcpy(e, beta, (size_t)(k - 1) * sizeof(double));
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', k, node, e, z, k);
    if (info != 0) return ns_fail(NS_ESOLVER, "SLQ: LAPACK dstev failed on the %dx%d tridiagonal matrix (info %d).", k, k, (int)info);
    for (int i = 0; i < k; i++) weight[i] = z[(size_t)i * k] * z[(size_t)i * k];  // first row of column i
    return NS_OK;
}

int ns_slq(ns_matvec_fn f, void *ctx, size_t n, const ns_slq_opts *o, ns_slq_result *r) {
    memset(r, 0, sizeof *r);
    if (o->probes < 1 || o->steps < 1)
        return ns_fail(NS_EINVAL, "SLQ needs at least 1 probe and 1 Lanczos step, got %d and %d.", o->probes, o->steps);
    if (n == 0 || n > (size_t)INT32_MAX) return ns_fail(NS_EINVAL, "SLQ: bad operator dimension %zu.", n);
    int m = (size_t)o->steps > n ? (int)n : o->steps, P = o->probes;
    r->probes = P;
    r->m = m;
    r->steps = ns_calloc((size_t)P, sizeof(int));
    r->node = ns_calloc((size_t)P * m, sizeof(double));
    r->weight = ns_calloc((size_t)P * m, sizeof(double));
    double *v = ns_malloc(n * sizeof(double)), *alpha = ns_malloc((size_t)m * sizeof(double)),
           *beta = ns_calloc((size_t)m, sizeof(double)), *z = ns_malloc((size_t)m * m * sizeof(double)),
           *e = ns_malloc((size_t)m * sizeof(double));
    int rc = r->steps && r->node && r->weight && v && alpha && beta && z && e ? NS_OK : NS_ENOMEM;
    ns_rng rng;
    ns_rng_seed(&rng, o->seed, NS_STREAM_SLQ);
    for (int p = 0; p < P && !rc; p++) {
        for (size_t i = 0; i < n; i++) v[i] = ns_rng_normal(&rng);
        int k = 0;
        rc = ns_lanczos_tridiag(f, ctx, n, v, m, alpha, beta, &k, &r->hvps);
        if (!rc) rc = quadrature(alpha, beta, k, r->node + (size_t)p * m, r->weight + (size_t)p * m, z, e);
        r->steps[p] = k;
    }
    free(v);
    free(alpha);
    free(beta);
    free(z);
    free(e);
    if (rc) ns_slq_result_free(r);
    return rc;
}

void ns_slq_range(const ns_slq_result *r, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int p = 0; p < r->probes; p++)
        for (int i = 0; i < r->steps[p]; i++) {
            double x = r->node[(size_t)p * r->m + i];
            *lo = fmin(*lo, x);
            *hi = fmax(*hi, x);
        }
}

double ns_slq_density(const ns_slq_result *r, double t, double sigma) {
    double s = 0, c = 1 / (sigma * sqrt(2 * M_PI));
    for (int p = 0; p < r->probes; p++)
        for (int i = 0; i < r->steps[p]; i++) {
            double z = (t - r->node[(size_t)p * r->m + i]) / sigma;
            s += r->weight[(size_t)p * r->m + i] * c * exp(-0.5 * z * z);
        }
    return s / r->probes;
}

double ns_slq_default_sigma(const ns_slq_result *r) {
    double lo, hi;
    ns_slq_range(r, &lo, &hi);
    double s = 0.01 * fmax(fabs(lo), fabs(hi));
    return s > 0 && isfinite(s) ? s : 1e-300;
}

void ns_slq_density_grid(const ns_slq_result *r, double sigma, int points, double *t, double *phi) {
    double lo, hi;
    ns_slq_range(r, &lo, &hi);
    lo -= 4 * sigma;
    hi += 4 * sigma;
    for (int g = 0; g < points; g++) {
        t[g] = lo + (hi - lo) * g / (points > 1 ? points - 1 : 1);
        phi[g] = ns_slq_density(r, t[g], sigma);
    }
}

void ns_slq_density_csv(ns_buf *b, const ns_slq_result *r, double sigma, int points, long step) {
    if (points < 2) points = 2;
    double *t = ns_malloc(2 * (size_t)points * sizeof(double));
    if (!t) {
        b->oom = 1;
        return;
    }
    double *phi = t + points;
    ns_slq_density_grid(r, sigma, points, t, phi);
    if (step < 0) ns_buf_printf(b, "lambda,density\n");
    for (int g = 0; g < points; g++) {
        char a[32], d[32];
        ns_fmt_double(a, t[g]);
        ns_fmt_double(d, phi[g]);
        if (step >= 0) ns_buf_printf(b, "%ld,", step);
        ns_buf_printf(b, "%s,%s\n", a, d);
    }
    free(t);
}

int ns_slq_density_write(const char *path, const ns_slq_result *r, double sigma, int points) {
    ns_buf b = {0};
    ns_slq_density_csv(&b, r, sigma, points, -1);
    int rc = b.oom ? ns_fail(NS_ENOMEM, "out of memory writing the density '%s'", path)
                   : ns_write_file_atomic(path, b.data, b.len);
    ns_buf_free(&b);
    return rc;
}
