// dln/refsol.c — reference interpolators that need only linear algebra (min-l2, the
// generalization-optimal one), the generalization error, and the linear algebra the other
// solvers build on (an SPD solve for the mirror maps, a basis of the interpolators for the
// SDP). The reference table that calls them all is in theory.c.
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

// NS_OK if X beta = y up to 1e-8 * max(1, ||y||_inf), else NS_EINVAL: then (beta being
// the best fit the caller could find) no interpolator exists.
static int check_interpolates(const ns_dln_data *t, const double *beta) {
    double miss = dln_residual_inf(t, beta);
    if (miss <= 1e-8 * dln_y_scale(t)) return NS_OK;
    return ns_fail(NS_EINVAL, "no interpolator exists: X beta = y has no solution (n = %d, d = %d; the "
                   "least-squares fit misses by %g)", t->n, t->d, miss);
}

// A += rel * (trace(A) / n) I (rel * I if the trace is not positive): a ridge relative to
// the scale of the n x n matrix A.
static void add_ridge(double *A, int n, double rel) {
    double tr = 0;
    for (int k = 0; k < n; k++) tr += A[(size_t)k * n + k];
    for (int k = 0; k < n; k++) A[(size_t)k * n + k] += rel * (tr > 0 ? tr / n : 1);
}

int ns_dln_min_l2(const ns_dln_data *t, double *beta) {
    int n = t->n, d = t->d, ldb = n > d ? n : d;
    double *A = ns_malloc(sizeof(double) * (size_t)n * (size_t)d);
    double *b = ns_calloc((size_t)ldb, sizeof(double));
    double *s = ns_malloc(sizeof(double) * (size_t)(n < d ? n : d));
    int rc = NS_ENOMEM;
    if (A && b && s) {
        memcpy(A, t->X, sizeof(double) * (size_t)n * (size_t)d);
        memcpy(b, t->y, sizeof(double) * (size_t)n);
        lapack_int rank;
        int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, n, d, 1, A, d, b, 1, s, -1, &rank);
        if (info != 0) {
            rc = ns_fail(NS_ESOLVER, "LAPACK dgelsd failed on the %d x %d data matrix (info %d)", n, d, info);
        } else {
            memcpy(beta, b, sizeof(double) * (size_t)d);
            rc = check_interpolates(t, beta);
        }
    }
    free(A);
    free(b);
    free(s);
    return rc;
}

double ns_dln_gen_err(int d, const double *beta, const double *beta_star, const double *sigma_diag,
                      double noise) {
    if (!beta_star) return NAN;
    double e = 0;
    for (int i = 0; i < d; i++) {
        double diff = beta[i] - beta_star[i];
        e += (sigma_diag ? sigma_diag[i] : 1.0) * diff * diff;
    }
    return e + noise * noise;
}

// Solve the SPD system A x = b (n x n, A destroyed) by Cholesky; on failure (singular
// directions) retry with a relative ridge of 1e-12 * trace / n.
int dln_spd_solve(double *A, int n, double *b) {
    double *A0 = ns_malloc(sizeof(double) * (size_t)n * (size_t)n), *b0 = ns_malloc(sizeof(double) * (size_t)n);
    if (!A0 || !b0) {
        free(A0);
        free(b0);
        return NS_ENOMEM;
    }
    memcpy(A0, A, sizeof(double) * (size_t)n * (size_t)n);
    memcpy(b0, b, sizeof(double) * (size_t)n);
    int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, 1, A, n, b, 1);
    if (info > 0) {
        add_ridge(A0, n, 1e-12);
        memcpy(A, A0, sizeof(double) * (size_t)n * (size_t)n);
        memcpy(b, b0, sizeof(double) * (size_t)n);
        info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, 1, A, n, b, 1);
    }
    free(A0);
    free(b0);
    return info == 0 ? NS_OK : ns_fail(NS_ESOLVER, "a %d x %d linear system is singular (LAPACK dposv info %d)", n, n, info);
}

// Without signs: beta = beta* + Sigma^-1 X^T lam, (X Sigma^-1 X^T) lam = y - X beta*.
// With beta >= 0 the dual of the QP is maximized by a semismooth Newton method:
//   beta(lam) = max(0, beta* + Sigma^-1 X^T lam),  dual gradient = y - X beta(lam),
//   generalized Hessian = -X_A Sigma_A^-1 X_A^T on the active set A = {beta_i > 0},
// with backtracking on the (concave, piecewise quadratic) dual function.
static double gen_dual(const ns_dln_data *t, const double *sig, const double *bs, const double *lam,
                       double *beta, double *z) {
    int n = t->n, d = t->d;
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, t->X, d, lam, 1, 0.0, z, 1);
    double f = 0;
    for (int i = 0; i < d; i++) {
        double b = bs[i] + z[i] / sig[i];
        beta[i] = b > 0 ? b : 0;
        double diff = beta[i] - bs[i];
        f += 0.5 * sig[i] * diff * diff - z[i] * beta[i];
    }
    for (int k = 0; k < n; k++) f += lam[k] * t->y[k];
    return f;
}

int ns_dln_gen_opt(const ns_dln_data *t, const double *sigma_diag, const double *beta_star, int nonneg,
                   double *beta) {
    int n = t->n, d = t->d;
    double *sig = ns_malloc(sizeof(double) * (size_t)d), *z = ns_malloc(sizeof(double) * (size_t)d);
    double *lam = ns_calloc((size_t)n, sizeof(double)), *step = ns_malloc(sizeof(double) * (size_t)n);
    double *A = ns_malloc(sizeof(double) * (size_t)n * (size_t)n), *trial = ns_malloc(sizeof(double) * (size_t)n);
    double *bt = ns_malloc(sizeof(double) * (size_t)d), *work = ns_malloc(sizeof(double) * (size_t)n * (size_t)d);
    int rc = NS_ENOMEM;
    if (!sig || !z || !lam || !step || !A || !trial || !bt || !work) goto done;
    for (int i = 0; i < d; i++) sig[i] = sigma_diag ? sigma_diag[i] : 1.0;
    double tol = 1e-11 * dln_y_scale(t);
    rc = NS_OK;
    if (!nonneg) {
        for (int i = 0; i < d; i++) bt[i] = 1 / sig[i];
        dln_xwx(t, bt, A, work);
        for (int k = 0; k < n; k++) step[k] = t->y[k];
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, -1.0, t->X, d, beta_star, 1, 1.0, step, 1);
        if ((rc = dln_spd_solve(A, n, step))) goto done;
        cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, t->X, d, step, 1, 0.0, z, 1);
        for (int i = 0; i < d; i++) beta[i] = beta_star[i] + z[i] / sig[i];
        rc = check_interpolates(t, beta);
        goto done;
    }
    double f = gen_dual(t, sig, beta_star, lam, beta, z);
    int it;
    for (it = 0; it < 500; it++) {
        // gradient of the dual: y - X beta
        for (int k = 0; k < n; k++) step[k] = t->y[k];
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, -1.0, t->X, d, beta, 1, 1.0, step, 1);
        double gmax = 0;
        for (int k = 0; k < n; k++) gmax = fmax(gmax, fabs(step[k]));
        if (gmax <= tol) break;
        memcpy(trial, step, sizeof(double) * (size_t)n);  // keep the gradient
        for (int i = 0; i < d; i++) bt[i] = beta[i] > 0 ? 1 / sig[i] : 0;
        dln_xwx(t, bt, A, work);
        add_ridge(A, n, 1e-10);
        if ((rc = dln_spd_solve(A, n, step))) goto done;
        double slope = 0;
        for (int k = 0; k < n; k++) slope += step[k] * trial[k];
        double a = 1;
        int accepted = 0;
        for (int ls = 0; ls < 60; ls++, a *= 0.5) {
            for (int k = 0; k < n; k++) trial[k] = lam[k] + a * step[k];
            double ft = gen_dual(t, sig, beta_star, trial, bt, z);
            if (ft >= f + 1e-4 * a * slope) {
                memcpy(lam, trial, sizeof(double) * (size_t)n);
                memcpy(beta, bt, sizeof(double) * (size_t)d);
                f = ft;
                accepted = 1;
                break;
            }
        }
        if (!accepted) break;
    }
    if (dln_residual_inf(t, beta) > 1e-8 * dln_y_scale(t))
        rc = ns_fail(NS_ESOLVER, "the generalization-optimal nonnegative interpolator was not found "
                     "(residual %g after %d Newton steps); is there a nonnegative interpolator?",
                     dln_residual_inf(t, beta), it);
done:
    free(sig);
    free(z);
    free(lam);
    free(step);
    free(A);
    free(trial);
    free(bt);
    free(work);
    return rc;
}

// A sparse parametrization of {X beta = y}: QR with column pivoting, X P = Q [R11 R12],
// picks r well-conditioned basic columns B; with the other coordinates z free,
// beta_B = R11^-1 Q1^T y - R11^-1 R12 z. So N = [-R11^-1 R12; I] (rows in coordinate order)
// has unit rows for the free coordinates, which keeps the SDP's LP rows sparse.
int dln_basis_interpolators(const ns_dln_data *t, double *beta0, double **N, int *r) {
    int n = t->n, d = t->d, k = n < d ? n : d;
    *N = NULL;
    double *A = ns_malloc(sizeof(double) * (size_t)n * (size_t)d);
    double *tau = ns_malloc(sizeof(double) * (size_t)k), *qty = ns_malloc(sizeof(double) * (size_t)n);
    lapack_int *jpvt = ns_calloc((size_t)d, sizeof(lapack_int));
    int rc = NS_ENOMEM;
    if (!A || !tau || !qty || !jpvt) goto done;
    memcpy(A, t->X, sizeof(double) * (size_t)n * (size_t)d);
    int info = LAPACKE_dgeqp3(LAPACK_ROW_MAJOR, n, d, A, d, jpvt, tau);
    if (info != 0) {
        rc = ns_fail(NS_ESOLVER, "LAPACK dgeqp3 failed on the %d x %d data matrix (info %d)", n, d, info);
        goto done;
    }
    double tol = (n > d ? n : d) * 2.2e-16 * (k > 0 ? fabs(A[0]) : 0);
    int rank = 0;
    while (rank < k && fabs(A[(size_t)rank * d + rank]) > tol) rank++;
    memcpy(qty, t->y, sizeof(double) * (size_t)n);
    info = LAPACKE_dormqr(LAPACK_ROW_MAJOR, 'L', 'T', n, 1, k, A, d, tau, qty, 1);
    if (info != 0) {
        rc = ns_fail(NS_ESOLVER, "LAPACK dormqr failed (info %d)", info);
        goto done;
    }
    int nz = d - rank;
    double *M = ns_malloc(sizeof(double) * (size_t)rank * (size_t)(nz + 1));  // [R11^-1 R12 | R11^-1 Q1^T y]
    if (!M) goto done;
    for (int q = 0; q < rank; q++) {
        for (int c = 0; c < nz; c++) M[(size_t)q * (nz + 1) + c] = A[(size_t)q * d + rank + c];
        M[(size_t)q * (nz + 1) + nz] = qty[q];
    }
    if (rank > 0)
        cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, rank, nz + 1, 1.0, A, d, M,
                    nz + 1);
    memset(beta0, 0, sizeof(double) * (size_t)d);
    for (int q = 0; q < rank; q++) beta0[jpvt[q] - 1] = M[(size_t)q * (nz + 1) + nz];
    if ((rc = check_interpolates(t, beta0))) {
        free(M);
        goto done;
    }
    if (nz > 0) {
        *N = ns_calloc((size_t)d * (size_t)nz, sizeof(double));
        if (!*N) {
            free(M);
            rc = NS_ENOMEM;  // rc was 0 after check_interpolates: the caller used a NULL basis
            goto done;
        }
        for (int q = 0; q < rank; q++)
            for (int c = 0; c < nz; c++) (*N)[(size_t)(jpvt[q] - 1) * nz + c] = -M[(size_t)q * (nz + 1) + c];
        for (int c = 0; c < nz; c++) (*N)[(size_t)(jpvt[rank + c] - 1) * nz + c] = 1.0;
    }
    free(M);
    *r = rank;
    rc = NS_OK;
done:
    free(A);
    free(tau);
    free(qty);
    free(jpvt);
    return rc;
}
