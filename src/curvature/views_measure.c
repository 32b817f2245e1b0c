// The opt-in curvature views of a network at its current theta (measure.h, views.h):
// adaptive sharpness, per-layer curvature and the SLQ spectral density, all of the Hessian
// of the measured objective L + (lambda/2)||theta||^2 (H + lambda I).
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/measure.h"

void ns_view_result_free(ns_view_result *v) {
    if (!v) return;
    ns_eig_result_free(&v->adaptive);
    free(v->layer_lambda_max);
    free(v->layer_sharpness);
    free(v->layer_resid);
    free(v->layer_iters);
    free(v->layer_converged);
    free(v->layer_trace);
    free(v->layer_trace_exact);
    ns_slq_result_free(&v->slq);
    memset(v, 0, sizeof *v);
}

int ns_view_opts_check(const ns_view_opts *v) {
    if (!(v->adaptive_eps >= 0) || !isfinite(v->adaptive_eps))
        return ns_fail(NS_EINVAL, "--adaptive-eps must be a finite number >= 0, got %g.", v->adaptive_eps);
    if (v->density_probes < 0) return ns_fail(NS_EINVAL, "--density-probes must not be negative, got %d.", v->density_probes);
    if (v->density_steps < 1) return ns_fail(NS_EINVAL, "--density-steps must be at least 1, got %d.", v->density_steps);
    if (!(v->density_sigma >= 0) || !isfinite(v->density_sigma))
        return ns_fail(NS_EINVAL, "--density-sigma must be a finite number >= 0 (0: automatic), got %g.", v->density_sigma);
    return NS_OK;
}

static ns_lanczos_opts top_only(const ns_measure_opts *o) {
    ns_lanczos_opts l = o->eig;
    l.k = 1;
    l.warm = NULL;
    return l;
}

static int adaptive(ns_hessian_op *h, const real *theta, const ns_measure_opts *o, ns_view_result *v) {
    size_t n = h->n;
    double *d = ns_malloc(n * sizeof(double));
    if (!d) return NS_ENOMEM;
    for (size_t j = 0; j < n; j++) d[j] = fabs((double)theta[j]) + o->views.adaptive_eps;
    ns_scaled_op s;
    int rc = ns_scaled_op_init(&s, ns_hessian_matvec, h, d, n);
    ns_lanczos_opts l = top_only(o);
    if (!rc) rc = ns_lanczos(ns_scaled_matvec, &s, n, &l, &v->adaptive);
    ns_scaled_op_free(&s);
    free(d);
    v->adaptive_eps = o->views.adaptive_eps;
    v->have_adaptive = rc == 0;
    return rc;
}

// The block's trace: exact from `size` unit vectors when that costs no more than the
// Hutchinson probes would, else Hutchinson.
static int block_trace(ns_block_op *b, int probes, uint64_t seed, double *trace, int *exact) {
    *exact = b->size <= (size_t)probes;
    if (*exact) return ns_exact_trace(ns_block_matvec, b, b->size, trace);
    double se;
    return ns_hutchinson_trace(ns_block_matvec, b, b->size, probes, seed, trace, &se);
}

static int per_layer(ns_model *m, ns_hessian_op *h, const ns_measure_opts *o, ns_view_result *v) {
    int nt = ns_model_ntensors(m);
    v->nlayers = nt;
    v->layer_lambda_max = ns_calloc((size_t)nt, sizeof(double));
    v->layer_sharpness = ns_calloc((size_t)nt, sizeof(double));
    v->layer_resid = ns_calloc((size_t)nt, sizeof(double));
    v->layer_trace = ns_calloc((size_t)nt, sizeof(double));
    v->layer_iters = ns_calloc((size_t)nt, sizeof(int));
    v->layer_converged = ns_calloc((size_t)nt, sizeof(int));
    v->layer_trace_exact = ns_calloc((size_t)nt, sizeof(int));
    if (!v->layer_lambda_max || !v->layer_sharpness || !v->layer_resid || !v->layer_trace || !v->layer_iters ||
        !v->layer_converged || !v->layer_trace_exact)
        return NS_ENOMEM;
    ns_lanczos_opts l = top_only(o);
    int rc = 0;
    for (int t = 0; t < nt && !rc; t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        ns_block_op b;
        if ((rc = ns_block_op_init(&b, ns_hessian_matvec, h, h->n, ti->offset, ti->size))) break;
        ns_eig_result e;
        rc = ns_lanczos(ns_block_matvec, &b, ti->size, &l, &e);
        if (!rc) {
            v->layer_lambda_max[t] = e.lambda_max;
            v->layer_sharpness[t] = e.sharpness;
            v->layer_resid[t] = e.resid_max;
            v->layer_iters[t] = e.iters;
            v->layer_converged[t] = e.converged;
            ns_eig_result_free(&e);
        }
        v->layer_trace[t] = NAN;
        if (!rc && o->trace_probes > 0)
            rc = block_trace(&b, o->trace_probes, o->trace_seed, &v->layer_trace[t], &v->layer_trace_exact[t]);
        ns_block_op_free(&b);
    }
    v->have_layers = rc == 0;
    return rc;
}

static int density(ns_hessian_op *h, const ns_measure_opts *o, ns_view_result *v) {
    ns_slq_opts s = {.probes = o->views.density_probes, .steps = o->views.density_steps, .seed = o->eig.seed};
    int rc = ns_slq(ns_hessian_matvec, h, h->n, &s, &v->slq);
    if (rc) return rc;
    v->density_sigma = o->views.density_sigma > 0 ? o->views.density_sigma : ns_slq_default_sigma(&v->slq);
    v->have_density = 1;
    return NS_OK;
}

int ns_measure_views(ns_model *m, const ns_batch *train, const ns_measure_opts *o, ns_view_result *v) {
    memset(v, 0, sizeof *v);
    const ns_view_opts *w = &o->views;
    if (!w->adaptive && !w->per_layer && w->density_probes <= 0) return NS_OK;
    int rc = ns_view_opts_check(w);
    if (rc) return rc;
    ns_hessian_op h;
    if ((rc = ns_hessian_op_init(&h, m, train))) return rc;
    h.weight_decay = o->weight_decay;
    double t0 = ns_now();
    if (w->adaptive) rc = adaptive(&h, ns_model_theta(m), o, v);
    v->seconds_adaptive = ns_now() - t0;
    t0 = ns_now();
    if (!rc && w->per_layer) rc = per_layer(m, &h, o, v);
    v->seconds_layers = ns_now() - t0;
    t0 = ns_now();
    if (!rc && w->density_probes > 0) rc = density(&h, o, v);
    v->seconds_density = ns_now() - t0;
    ns_hessian_op_free(&h);
    if (rc) ns_view_result_free(v);
    return rc;
}
