// Power iteration: v <- H v / ||H v|| converges to the eigenvector of largest |lambda| at
// the rate |lambda_2 / lambda_1| per step. Reported: the Rayleigh quotient
// theta = v^T H v and its residual ||H v - theta v||; stop when that is <= tol |theta|.
// The plain alternative to Lanczos (slower, and it stalls when lambda_max ~ -lambda_min).
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

int ns_power_iteration(ns_matvec_fn f, void *ctx, size_t n, const ns_lanczos_opts *o, ns_eig_result *r) {
    memset(r, 0, sizeof *r);
    r->lambda_max = r->lambda_min = r->sharpness = NAN;
    r->resid_max = r->resid_min = NAN;
    int rc = ns_curv_check(n, o, "power iteration");
    if (rc) return rc;
    int N = (int)n;
    double *v = ns_malloc(n * sizeof(double)), *w = ns_malloc(n * sizeof(double));
    r->top = ns_malloc(sizeof(double));
    r->top_resid = ns_malloc(sizeof(double));
    if (!v || !w || !r->top || !r->top_resid) {
        rc = NS_ENOMEM;
        goto done;
    }
    ns_curv_start(v, n, o);
    double theta = 0, resid = 0;
    while (r->iters < o->max_iter) {
        if ((rc = ns_curv_apply(f, ctx, v, w, n, "power iteration", &r->iters))) goto done;
        theta = cblas_ddot(N, v, 1, w, 1);
        double wn = cblas_dnrm2(N, w, 1);
        // ||w - theta v||^2 = ||w||^2 - theta^2 for unit v; computed directly to avoid cancellation
        resid = 0;
        for (size_t i = 0; i < n; i++) resid += (w[i] - theta * v[i]) * (w[i] - theta * v[i]);
        resid = sqrt(resid);
        if (resid == 0 || resid <= o->tol * fabs(theta)) {
            r->converged = 1;
            break;
        }
        if (r->iters == o->max_iter) break;  // keep v, whose Rayleigh quotient is theta
        for (size_t i = 0; i < n; i++) v[i] = w[i] / wn;
    }
    r->sharpness = fabs(theta);
    if (theta >= 0) {  // the dominant eigenvalue is the largest algebraic one
        r->k = 1;
        r->lambda_max = r->top[0] = theta;
        r->resid_max = r->top_resid[0] = resid;
    } else {  // it is the smallest; the largest is unknown
        r->lambda_min = theta;
        r->resid_min = resid;
        r->min_converged = r->converged;
    }
    r->vec_max = v;
    v = NULL;
done:
    if (rc) ns_eig_result_free(r);
    free(v);
    free(w);
    return rc;
}
