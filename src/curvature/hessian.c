// The training-loss Hessian of a network as an operator on double vectors: the
// estimators work in double (dot products, Krylov bases), the network in `real`.
#include <stdlib.h>
#include "normsharp/measure.h"

int ns_hessian_op_init(ns_hessian_op *op, ns_model *m, const ns_batch *b) {
    op->m = m;
    op->b = b;
    op->n = ns_model_nparams(m);
    op->weight_decay = 0;
    op->v = ns_malloc(op->n * sizeof(real));
    op->hv = ns_malloc(op->n * sizeof(real));
    if (!op->v || !op->hv) {
        ns_hessian_op_free(op);
        return NS_ENOMEM;
    }
    return NS_OK;
}

void ns_hessian_op_free(ns_hessian_op *op) {
    free(op->v);
    free(op->hv);
    op->v = op->hv = NULL;
}

// out := (H + lambda I) v, with H the Hessian of the loss over op->b at the model's theta
// and lambda the weight decay (0 by default).
int ns_hessian_matvec(void *ctx, const double *v, double *out, size_t n) {
    ns_hessian_op *op = ctx;
    if (n != op->n)
        return ns_fail(NS_EINVAL, "Hessian operator: vector length %zu does not match the model's %zu parameters.",
                       n, op->n);
    for (size_t i = 0; i < n; i++) op->v[i] = (real)v[i];
    int rc = ns_model_hvp(op->m, op->b, op->v, op->hv);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) out[i] = op->hv[i];
    if (op->weight_decay != 0)
        for (size_t i = 0; i < n; i++) out[i] += op->weight_decay * v[i];
    return NS_OK;
}
