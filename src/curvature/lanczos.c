// Lanczos with full reorthogonalization for the extreme eigenvalues of a symmetric
// operator H given only by products v -> H v (the training-loss Hessian via exact HVPs).
//
// After m steps, with orthonormal Q_m = [q_0 .. q_{m-1}] (rows of `q` here) and the
// tridiagonal T_m = tridiag(beta, alpha, beta):
//     H Q_m = Q_m T_m + beta_{m-1} q_m e_m^T.
// A Ritz pair (theta, Q_m s) of T_m s = theta s therefore has the exact residual
//     ||H x - theta x|| = |beta_{m-1}| |s_{m-1}|,
// which is what every estimate reports (no extra HVPs). With rounded HVPs the true
// residual cannot fall below the HVP's own rounding error (about 1e-7 S in float32
// builds), so a reported value under that floor reads "converged to working precision".
// Each new vector is orthogonalized against the
// whole stored basis by classical Gram-Schmidt applied twice ("twice is enough",
// Giraud et al.), so the basis stays orthonormal to working precision and no spurious
// copies of converged eigenvalues appear.
//
// Stopping rule: the k largest Ritz values and the smallest one must all satisfy
//     ||H x - theta x|| <= tol * |theta|      (top k)
//     ||H x - theta x|| <= tol * S            (smallest; S = max |theta|)
// The smallest Ritz value is there to certify S = max |lambda| at the negative end; its
// residual is measured against S because near-zero negative eigenvalues (common for
// network Hessians) can only be pinned to an absolute accuracy, which is all S needs.
//
// Breakdown (beta ~ 0) means span(Q_m) is an invariant subspace and its Ritz values are
// exact eigenvalues. From a random start (which has a component along every eigenspace)
// they include both extremes, so the run may stop. From a warm start they need not (the
// warm vector may already be an eigenvector), and when fewer than k values were found a
// repeated eigenvalue may hide more copies: then the iteration continues from a seeded
// random vector orthogonal to Q_m, with a zero coupling in T.
// Everything is deterministic: the same seed (or warm vector) gives the same numbers.
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "normsharp/rng.h"

void ns_lanczos_opts_default(ns_lanczos_opts *o) {
    o->k = 1;
    o->max_iter = 100;
    o->tol = 1e-4;
    o->seed = 0;
    o->warm = NULL;
}

void ns_eig_result_free(ns_eig_result *r) {
    if (!r) return;
    free(r->top);
    free(r->top_resid);
    free(r->vec_max);
    r->top = r->top_resid = r->vec_max = NULL;
    r->k = 0;
}

int ns_curv_check(size_t n, const ns_lanczos_opts *o, const char *who) {
    if (n == 0) return ns_fail(NS_EINVAL, "%s: the operator has dimension 0.", who);
    if (n > (size_t)INT32_MAX) return ns_fail(NS_EINVAL, "%s: dimension %zu is too large for BLAS.", who, n);
    if (o->k < 1) return ns_fail(NS_EINVAL, "%s: k must be at least 1, got %d.", who, o->k);
    if (o->max_iter < 1) return ns_fail(NS_EINVAL, "%s: max_iter must be at least 1, got %d.", who, o->max_iter);
    if (!(o->tol > 0) || !isfinite(o->tol))
        return ns_fail(NS_EINVAL, "%s: tol must be a positive finite number, got %g.", who, o->tol);
    return NS_OK;
}

int ns_curv_all_finite(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

int ns_curv_apply(ns_matvec_fn f, void *ctx, const double *v, double *w, size_t n, const char *who, int *iters) {
    int rc = f(ctx, v, w, n);
    ++*iters;
    if (rc) return rc;
    if (!ns_curv_all_finite(w, n))
        return ns_fail(NS_EINVAL, "%s: the Hessian-vector product has non-finite entries (at iteration %d); the loss "
                                  "surface is not finite here.", who, *iters);
    return NS_OK;
}

// v := warm/||warm||, or a seeded Gaussian direction when there is no usable warm vector.
int ns_curv_start(double *v, size_t n, const ns_lanczos_opts *o) {
    double nrm = 0;
    if (o->warm && ns_curv_all_finite(o->warm, n)) {
        nrm = cblas_dnrm2((int)n, o->warm, 1);
        if (nrm > 0 && isfinite(nrm)) {
            for (size_t i = 0; i < n; i++) v[i] = o->warm[i] / nrm;
            return 1;
        }
    }
    ns_rng rng;
    ns_rng_seed(&rng, o->seed, NS_STREAM_LANCZOS);
    for (size_t i = 0; i < n; i++) v[i] = ns_rng_normal(&rng);
    nrm = cblas_dnrm2((int)n, v, 1);
    cblas_dscal((int)n, 1.0 / nrm, v, 1);
    return 0;
}

typedef struct {
    size_t n;
    int m;            // basis vectors stored
    int cap;          // rows allocated in q
    double *q;        // basis, row j = q_j (cap x n)
    double *h;        // Gram-Schmidt coefficients (max_iter)
    double *alpha, *beta;  // T's diagonal and off-diagonal (beta[j] couples q_j, q_{j+1})
    double *theta, *z;     // Ritz values (ascending) and T's eigenvectors (column-major m x m)
    double *e;             // scratch for dstev
} krylov;

static void krylov_free(krylov *K) {
    free(K->q);
    free(K->h);
    free(K->alpha);
    free(K->beta);
    free(K->theta);
    free(K->z);
    free(K->e);
}

// Make room for row m of the basis (doubling, capped at `limit` rows).
static int krylov_reserve(krylov *K, int limit) {
    if (K->m < K->cap) return NS_OK;
    int cap = K->cap ? 2 * K->cap : 16;
    if (cap > limit) cap = limit;
    double *q = ns_realloc(K->q, (size_t)cap * K->n * sizeof(double));
    if (!q) return NS_ENOMEM;
    K->q = q;
    K->cap = cap;
    return NS_OK;
}

// w := (I - Q Q^T) w twice over the m stored rows; returns the total coefficient on
// row m-1 (the new alpha when w = H q_{m-1}).
static double orthogonalize(krylov *K, double *w) {
    double last = 0;
    int n = (int)K->n;
    for (int pass = 0; pass < 2; pass++) {
        // h = Q w, Q is (m x n) row-major
        cblas_dgemv(CblasRowMajor, CblasNoTrans, K->m, n, 1.0, K->q, n, w, 1, 0.0, K->h, 1);
        // w -= Q^T h
        cblas_dgemv(CblasRowMajor, CblasTrans, K->m, n, -1.0, K->q, n, K->h, 1, 1.0, w, 1);
        last += K->h[K->m - 1];
    }
    return last;
}

// Ritz values and vectors of T_m (m = K->m), ascending, via LAPACK's dstev.
static int ritz(krylov *K) {
    int m = K->m;
    memcpy(K->theta, K->alpha, (size_t)m * sizeof(double));
    if (m > 1) memcpy(K->e, K->beta, (size_t)(m - 1) * sizeof(double));
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', m, K->theta, K->e, K->z, m);
    if (info != 0)
        return ns_fail(NS_ESOLVER, "Lanczos: LAPACK dstev failed on the %dx%d tridiagonal matrix (info %d).",
                       m, m, (int)info);
    return NS_OK;
}

// Residual norm of Ritz pair i: |beta_{m-1} s_{m-1,i}|.
static double ritz_resid(const krylov *K, double beta_last, int i) {
    return fabs(beta_last * K->z[(size_t)i * K->m + (K->m - 1)]);
}

static int rel_ok(double resid, double scale, double tol) {
    return resid == 0 || resid <= tol * scale;
}

// The stopping rule described at the top of this file.
static int converged(const krylov *K, double beta_last, int k, double tol) {
    int m = K->m;
    double S = fmax(fabs(K->theta[0]), fabs(K->theta[m - 1]));
    for (int i = m - 1; i >= m - k; i--)
        if (!rel_ok(ritz_resid(K, beta_last, i), fabs(K->theta[i]), tol)) return 0;
    return rel_ok(ritz_resid(K, beta_last, 0), S, tol);
}

static int fill_result(const krylov *K, double beta_last, int k, double tol, ns_eig_result *r) {
    int m = K->m, n = (int)K->n;
    r->k = k;
    r->top = ns_malloc((size_t)k * sizeof(double));
    r->top_resid = ns_malloc((size_t)k * sizeof(double));
    r->vec_max = ns_malloc(K->n * sizeof(double));
    if (!r->top || !r->top_resid || !r->vec_max) return NS_ENOMEM;
    for (int i = 0; i < k; i++) {
        r->top[i] = K->theta[m - 1 - i];
        r->top_resid[i] = ritz_resid(K, beta_last, m - 1 - i);
    }
    r->lambda_max = K->theta[m - 1];
    r->lambda_min = K->theta[0];
    r->sharpness = fmax(fabs(r->lambda_max), fabs(r->lambda_min));
    r->resid_max = r->top_resid[0];
    r->resid_min = ritz_resid(K, beta_last, 0);
    // vec_max = Q^T s_max, renormalized against rounding
    const double *s = K->z + (size_t)(m - 1) * m;
    cblas_dgemv(CblasRowMajor, CblasTrans, m, n, 1.0, K->q, n, s, 1, 0.0, r->vec_max, 1);
    double nrm = cblas_dnrm2(n, r->vec_max, 1);
    if (nrm > 0) cblas_dscal(n, 1.0 / nrm, r->vec_max, 1);
    r->converged = converged(K, beta_last, k, tol);
    return NS_OK;
}

// After a breakdown: w := a seeded random vector orthogonal to the basis, unit norm.
// Returns 0 if the basis already spans everything reachable (w vanishes).
static int restart_vector(krylov *K, ns_rng *rng, double *w) {
    int n = (int)K->n;
    for (int attempt = 0; attempt < 3; attempt++) {
        for (int i = 0; i < n; i++) w[i] = ns_rng_normal(rng);
        double before = cblas_dnrm2(n, w, 1);
        orthogonalize(K, w);
        double after = cblas_dnrm2(n, w, 1);
        if (after > 1e-8 * before) {
            cblas_dscal(n, 1.0 / after, w, 1);
            return 1;
        }
    }
    return 0;
}

// Whether the Ritz values are due for a check at m steps: every step while T is small,
// then every few steps so the O(m^3) eigensolve stays negligible next to the HVPs.
static int check_due(int m) { return m <= 40 || m % (1 + m / 40) == 0; }

int ns_lanczos(ns_matvec_fn f, void *ctx, size_t n, const ns_lanczos_opts *o, ns_eig_result *r) {
    memset(r, 0, sizeof *r);
    r->lambda_max = r->lambda_min = r->sharpness = NAN;
    int rc = ns_curv_check(n, o, "Lanczos");
    if (rc) return rc;
    int limit = o->max_iter < (long)n ? o->max_iter : (int)n;
    int k = o->k < limit ? o->k : limit;

    krylov K = {.n = n};
    double *w = ns_malloc(n * sizeof(double));
    K.h = ns_malloc((size_t)limit * sizeof(double));
    K.alpha = ns_malloc((size_t)limit * sizeof(double));
    K.beta = ns_malloc((size_t)limit * sizeof(double));
    K.theta = ns_malloc((size_t)limit * sizeof(double));
    K.e = ns_malloc((size_t)limit * sizeof(double));
    K.z = ns_malloc((size_t)limit * limit * sizeof(double));
    rc = (w && K.h && K.alpha && K.beta && K.theta && K.e && K.z) ? krylov_reserve(&K, limit) : NS_ENOMEM;
    if (rc) goto done;
    int block_random = !ns_curv_start(K.q, n, o);  // the current block began at random
    K.m = 1;

    ns_rng rng;  // for restarts after a breakdown
    ns_rng_seed(&rng, o->seed ^ 0x5bd1e995u, NS_STREAM_LANCZOS);
    double anorm = 0;  // Gershgorin bound on ||T||, the scale for "beta ~ 0"
    for (;;) {
        int j = K.m - 1;
        double *qj = K.q + (size_t)j * n;
        if ((rc = ns_curv_apply(f, ctx, qj, w, n, "Lanczos", &r->iters))) goto done;
        K.alpha[j] = orthogonalize(&K, w);
        K.beta[j] = cblas_dnrm2((int)n, w, 1);
        anorm = fmax(anorm, fabs(K.alpha[j]) + K.beta[j] + (j ? K.beta[j - 1] : 0));
        int breakdown = K.beta[j] <= 1e-12 * anorm;
        if (breakdown) K.beta[j] = 0;  // T decouples: span(Q) is invariant
        if (K.m == limit || (breakdown && block_random && K.m >= k)) break;
        if (!breakdown && K.m >= k && check_due(K.m)) {
            if ((rc = ritz(&K))) goto done;
            if (converged(&K, K.beta[j], k, o->tol)) break;
        }
        if ((rc = krylov_reserve(&K, limit))) goto done;
        double *next = K.q + (size_t)K.m * n;
        if (breakdown) {
            if (!restart_vector(&K, &rng, w)) break;
            memcpy(next, w, n * sizeof(double));
            block_random = 1;
        } else {
            for (size_t i = 0; i < n; i++) next[i] = w[i] / K.beta[j];
        }
        K.m++;
    }
    if ((rc = ritz(&K))) goto done;
    if (K.m < k) k = K.m;
    rc = fill_result(&K, K.beta[K.m - 1], k, o->tol, r);
done:
    if (rc) ns_eig_result_free(r);
    krylov_free(&K);
    free(w);
    return rc;
}
