// normsharp/curvature.h — spectral estimates of a symmetric operator given only by its
// products (the training-loss Hessian through exact HVPs). Vectors are double.
#ifndef NORMSHARP_CURVATURE_H
#define NORMSHARP_CURVATURE_H
#include "normsharp/common.h"

// out := H v for vectors of length n. Return 0 or an NS_E* code.
typedef int (*ns_matvec_fn)(void *ctx, const double *v, double *out, size_t n);

typedef struct {
    int k;                  // how many top (largest algebraic) eigenvalues to report, counted
                            // with multiplicity, >= 1
    int max_iter;           // Hessian-vector products at most (default 100)
    double tol;             // relative residual ||H x - lambda x|| / |lambda| (default 1e-4)
    uint64_t seed;          // start vector stream seed
    const double *warm;     // optional start vector (e.g. last top eigenvector), length n
    int lambda_min_full;    // 1: converge lambda_min too (residual <= tol * S, checked against
                            // a cluster at that end); 0 (default): only as far as it decides S
} ns_lanczos_opts;
void ns_lanczos_opts_default(ns_lanczos_opts *o);

typedef struct {
    double lambda_max;      // largest algebraic eigenvalue
    double lambda_min;      // smallest algebraic eigenvalue
    double sharpness;       // max |lambda| (the paper's S)
    int k;
    double *top;            // k largest eigenvalues, descending
    double *top_resid;      // their residual norms ||H x - lambda x||
    double resid_max, resid_min;  // residuals of lambda_max and lambda_min
    double *vec_max;        // unit eigenvector of lambda_max (length n), for warm starts
    int iters;              // HVPs used
    int converged;          // top k, lambda_max and S right to tol (and lambda_min, if asked)
    int min_converged;      // lambda_min itself right to tol * S (resid_min <= tol * S)
} ns_eig_result;
void ns_eig_result_free(ns_eig_result *r);

// Lanczos with full reorthogonalization, restarted from fresh random vectors orthogonal to
// the basis so that repeated and clustered eigenvalues are counted (see lanczos.c).
int ns_lanczos(ns_matvec_fn f, void *ctx, size_t n, const ns_lanczos_opts *o, ns_eig_result *r);
// Power iteration for the largest-magnitude eigenvalue (fills sharpness, lambda_max or
// lambda_min accordingly, vec_max, iters, converged; k = 1).
int ns_power_iteration(ns_matvec_fn f, void *ctx, size_t n, const ns_lanczos_opts *o, ns_eig_result *r);
// Hutchinson: trace ~ mean of z^T H z over Rademacher z; stderr of that mean.
int ns_hutchinson_trace(ns_matvec_fn f, void *ctx, size_t n, int probes, uint64_t seed,
                        double *trace, double *stderr_out);
#endif
