// internal.h — helpers shared by the estimators in src/curvature (not a public API).
#ifndef NORMSHARP_CURVATURE_INTERNAL_H
#define NORMSHARP_CURVATURE_INTERNAL_H
#include "normsharp/curvature.h"

// Validate dimension and options; `who` names the estimator in the message.
int ns_curv_check(size_t n, const ns_lanczos_opts *o, const char *who);
// v := warm/||warm|| and return 1, or, without a usable warm vector, a seeded Gaussian
// unit vector (NS_STREAM_LANCZOS) and return 0.
int ns_curv_start(double *v, size_t n, const ns_lanczos_opts *o);
int ns_curv_all_finite(const double *v, size_t n);
// w = f(v), counted in *iters; NS_EINVAL (naming `who`) if the product is not finite.
int ns_curv_apply(ns_matvec_fn f, void *ctx, const double *v, double *w, size_t n, const char *who, int *iters);
// One classical Gram-Schmidt pass of w (length n) against the m rows of q (m x n,
// row-major, orthonormal): h = Q w, then w -= Q^T h. h (length m) receives the
// coefficients. Full reorthogonalization in Lanczos (lanczos.c) and in SLQ's
// tridiagonalization (slq.c) is this pass, repeated.
void ns_curv_cgs_pass(const double *q, int m, int n, double *w, double *h);
#endif
