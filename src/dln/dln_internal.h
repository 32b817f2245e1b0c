// dln_internal.h — helpers shared by the files of src/dln (not part of the public API).
#ifndef NORMSHARP_DLN_INTERNAL_H
#define NORMSHARP_DLN_INTERNAL_H
#include "normsharp/dln.h"

// x^k for an integer k >= 0 (exact for negative x, unlike pow with rounding).
double dln_ipow(double x, int k);
// Coordinate i: j = dbeta_i/dtheta_i, h = d^2 beta_i/dtheta_i^2 as {h00, h01, h11};
// returns how many parameters the coordinate has (1 or 2).
int dln_coord(const ns_dln_model *m, int d, const double *theta, int i, double j[2], double h[3]);
// Largest eigenvalue (and unit eigenvector if vec != NULL) of the symmetric n x n matrix A
// (row-major, destroyed). NS_ESOLVER if LAPACK fails.
int dln_sym_top(double *A, int n, double *lambda, double *vec);
// M = X diag(w) X^T (n x n, full, row-major) for w >= 0; work: n*d doubles.
void dln_xwx(const ns_dln_data *t, const double *w, double *M, double *work);
// ||X beta - y||_inf, and max(1, ||y||_inf) as the scale of residual tolerances.
double dln_residual_inf(const ns_dln_data *t, const double *beta);
double dln_y_scale(const ns_dln_data *t);
// Solve A x = b for SPD A (n x n, row-major, destroyed; b overwritten by x) by Cholesky,
// retrying with a ridge of 1e-12 * trace / n if A is numerically singular.
int dln_spd_solve(double *A, int n, double *b);
// The interpolators {X beta = y} as beta0 + N z (z in R^(d-r), r = numerical rank) with
// N = [-R11^-1 R12; I] from QR with column pivoting: unit rows for the d - r free
// coordinates, so N is sparse outside r rows. *N is NULL when r = d. NS_EINVAL (with a
// sentence) if y is not in the range of X: then no interpolator exists.
int dln_basis_interpolators(const ns_dln_data *t, double *beta0, double **N, int *r);
#endif
