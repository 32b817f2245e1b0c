// The Hessian seen through a diagonal change of variables: out = D H D v. With
// D = diag(|theta| + eps) its top eigenvalue is the adaptive (scale-invariant) sharpness
// (Kwon et al., ASAM, 2021): theta = D u turns H into D H D in the coordinates u.
#include <stdlib.h>
#include "normsharp/views.h"

int ns_scaled_op_init(ns_scaled_op *op, ns_matvec_fn f, void *ctx, const double *d, size_t n) {
    *op = (ns_scaled_op){.f = f, .ctx = ctx, .d = d};
    op->tmp = ns_malloc(n * sizeof(double));
    return op->tmp ? NS_OK : NS_ENOMEM;
}

void ns_scaled_op_free(ns_scaled_op *op) {
    free(op->tmp);
    op->tmp = NULL;
}

int ns_scaled_matvec(void *ctx, const double *v, double *out, size_t n) {
    ns_scaled_op *op = ctx;
    for (size_t i = 0; i < n; i++) op->tmp[i] = op->d[i] * v[i];
    int rc = op->f(op->ctx, op->tmp, out, n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) out[i] *= op->d[i];
    return NS_OK;
}
