// A diagonal block H_BB of an operator, by masking: embed v into zeros, apply H, read B.
// Per-layer curvature applies it to each parameter tensor's coordinates.
#include <stdlib.h>
#include <string.h>
#include "normsharp/views.h"

int ns_block_op_init(ns_block_op *op, ns_matvec_fn f, void *ctx, size_t n, size_t offset, size_t size) {
    *op = (ns_block_op){.f = f, .ctx = ctx, .n = n, .offset = offset, .size = size};
    if (size == 0 || offset > n || size > n - offset)
        return ns_fail(NS_EINVAL, "block operator: coordinates [%zu, %zu) do not lie within the %zu of the operator.",
                       offset, offset + size, n);
    op->v = ns_calloc(n, sizeof(double));
    op->hv = ns_malloc(n * sizeof(double));
    if (!op->v || !op->hv) {
        ns_block_op_free(op);
        return NS_ENOMEM;
    }
    return NS_OK;
}

void ns_block_op_free(ns_block_op *op) {
    free(op->v);
    free(op->hv);
    op->v = op->hv = NULL;
}

int ns_block_matvec(void *ctx, const double *v, double *out, size_t size) {
    ns_block_op *op = ctx;
    if (size != op->size)
        return ns_fail(NS_EINVAL, "block operator: vector length %zu does not match the block's %zu.", size, op->size);
    memcpy(op->v + op->offset, v, size * sizeof(double));  // outside B, op->v stays zero
    int rc = op->f(op->ctx, op->v, op->hv, op->n);
    if (rc) return rc;
    memcpy(out, op->hv + op->offset, size * sizeof(double));
    return NS_OK;
}

int ns_exact_trace(ns_matvec_fn f, void *ctx, size_t n, double *trace) {
    double *e = ns_calloc(n, sizeof(double)), *he = ns_malloc(n * sizeof(double));
    int rc = e && he ? NS_OK : NS_ENOMEM;
    double s = 0;
    for (size_t j = 0; j < n && !rc; j++) {
        e[j] = 1;
        rc = f(ctx, e, he, n);
        s += he[j];
        e[j] = 0;
    }
    *trace = rc ? 0 : s;
    free(e);
    free(he);
    return rc;
}
