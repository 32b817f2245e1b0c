// dln/mirror.c — the gradient-flow limits of DLNs as mirror-descent limits.
// Gradient flow on beta = u^2 - v^2 from u = v = alpha gives u = alpha e^{-2G}, v = alpha e^{2G}
// with G = int g dt in the row space of X, so beta = 2 alpha^2 sinh(X^T nu): the stationarity
// condition of argmin Q_alpha(beta) s.t. X beta = y, since Q_alpha'(beta) = asinh(beta / (2 alpha^2))
// (q'(z) = asinh(z/2)). Likewise beta = u v from (sqrt(2) alpha, 0) gives beta = alpha^2 sinh(X^T nu)
// (a = u+v, b = u-v obey a' = -g a, b' = g b), and beta = w^2 from w = alpha gives
// beta = alpha^2 exp(X^T nu) (the entropy potential on beta >= 0).
// We find nu by damped Newton on the convex dual
//   D(nu) = sum_i c_i Phi((X^T nu)_i) - y^T nu,   Phi = cosh (phi = sinh) or exp,
// whose gradient is X beta(nu) - y and Hessian X diag(c phi'(X^T nu)) X^T. Everything is
// evaluated in log space (c_i e^{+-z_i} = e^{log c_i +- z_i}) so that tiny c never underflows.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

typedef struct {
    const ns_dln_data *t;
    ns_mirror_kind kind;
    const double *log_c;
    double *z, *beta, *curv;  // d each: X^T nu, beta(nu), c phi'(z)
} mirror;

// beta(nu), curvature weights and the dual value D(nu) (inf on overflow).
static double mirror_eval(mirror *m, const double *nu) {
    const ns_dln_data *t = m->t;
    int n = t->n, d = t->d;
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, t->X, d, nu, 1, 0.0, m->z, 1);
    double D = 0;
    for (int i = 0; i < d; i++) {
        double ep = exp(m->log_c[i] + m->z[i]);
        if (m->kind == NS_MIRROR_EXP) {
            m->beta[i] = m->curv[i] = ep;
            D += ep;
        } else {
            double em = exp(m->log_c[i] - m->z[i]);
            m->beta[i] = 0.5 * (ep - em);
            m->curv[i] = 0.5 * (ep + em);
            D += m->curv[i];
        }
    }
    for (int k = 0; k < n; k++) D -= t->y[k] * nu[k];
    return isfinite(D) ? D : INFINITY;
}

// grad = X beta(nu) - y, the dual gradient; returns ||grad||_inf.
static double mirror_residual(const mirror *m, double *grad) {
    const ns_dln_data *t = m->t;
    int n = t->n, d = t->d;
    memcpy(grad, t->y, sizeof(double) * (size_t)n);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0, t->X, d, m->beta, 1, -1.0, grad, 1);
    double res = 0;
    for (int k = 0; k < n; k++) res = fmax(res, fabs(grad[k]));
    return res;
}

int ns_dln_mirror_solve(const ns_dln_data *t, ns_mirror_kind kind, const double *log_c, double *beta) {
    int n = t->n, d = t->d;
    mirror m = {.t = t, .kind = kind, .log_c = log_c};
    m.z = ns_malloc(sizeof(double) * (size_t)d);
    m.beta = ns_malloc(sizeof(double) * (size_t)d);
    m.curv = ns_malloc(sizeof(double) * (size_t)d);
    double *nu = ns_calloc((size_t)n, sizeof(double)), *grad = ns_malloc(sizeof(double) * (size_t)n);
    double *step = ns_malloc(sizeof(double) * (size_t)n), *trial = ns_malloc(sizeof(double) * (size_t)n);
    double *tgrad = ns_malloc(sizeof(double) * (size_t)n);
    double *H = ns_malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *work = ns_malloc(sizeof(double) * (size_t)n * (size_t)d);
    int rc = NS_ENOMEM;
    if (!m.z || !m.beta || !m.curv || !nu || !grad || !step || !trial || !tgrad || !H || !work) goto done;
    for (int i = 0; i < d; i++)
        if (!(log_c[i] < INFINITY) || isnan(log_c[i])) {
            rc = ns_fail(NS_EINVAL, "mirror solution: the scale c_%d is not finite and positive", i);
            goto done;
        }
    double tol = 1e-10 * dln_y_scale(t), res;
    double D = mirror_eval(&m, nu);
    int it;
    rc = NS_OK;
    for (it = 0; it < 1000; it++) {
        if ((res = mirror_residual(&m, grad)) <= tol) break;
        dln_xwx(t, m.curv, H, work);
        memcpy(step, grad, sizeof(double) * (size_t)n);
        if ((rc = dln_spd_solve(H, n, step))) goto done;
        double slope = 0;  // grad . step > 0: the decrease along -step
        for (int k = 0; k < n; k++) slope += grad[k] * step[k];
        // Armijo on D, or a halved residual: near the solution D's decrease falls below its
        // rounding (D sums d terms of size up to max c cosh z), and Armijo alone then crawls
        // in tiny steps; the residual still shows Newton's progress (n = 100, d = 1000 at
        // alpha = 0.01 stalled at 3e-8 with two OpenBLAS threads, converged with one).
        double a = 1, Dt = INFINITY;
        int ls;
        for (ls = 0; ls < 200; ls++, a *= 0.5) {
            for (int k = 0; k < n; k++) trial[k] = nu[k] - a * step[k];
            Dt = mirror_eval(&m, trial);
            if (Dt <= D - 1e-4 * a * slope || (Dt < INFINITY && mirror_residual(&m, tgrad) <= 0.5 * res)) break;
        }
        if (ls == 200 || !(Dt < INFINITY)) {
            // no decrease is representable any more: accept only if close enough
            mirror_eval(&m, nu);
            break;
        }
        memcpy(nu, trial, sizeof(double) * (size_t)n);
        D = Dt;
    }
    if ((res = mirror_residual(&m, grad)) > tol) {
        rc = ns_fail(NS_ESOLVER, "the mirror (hypentropy) solution did not reach X beta = y: residual %g after %d "
                     "Newton steps (tolerance %g)%s", res, it, tol,
                     kind == NS_MIRROR_EXP ? "; a nonnegative interpolator may not exist" : "");
        goto done;
    }
    memcpy(beta, m.beta, sizeof(double) * (size_t)d);
done:
    free(m.z);
    free(m.beta);
    free(m.curv);
    free(nu);
    free(grad);
    free(step);
    free(trial);
    free(tgrad);
    free(H);
    free(work);
    return rc;
}

int ns_dln_flow_prediction(const ns_dln_model *m, const ns_dln_data *t, const double *log_alpha_sq, double *beta) {
    int d = t->d;
    if (m->kind == NS_DLN_PM && m->depth != 2)
        return ns_fail(NS_EINVAL, "the flow prediction is implemented for depth 2 only (got depth %d)", m->depth);
    double *lc = ns_malloc(sizeof(double) * (size_t)d);
    if (!lc) return NS_ENOMEM;
    // c = alpha^2 (SHARED: exp; UV: sinh) or 2 alpha^2 (PM: sinh)
    double shift = m->kind == NS_DLN_PM ? log(2.0) : 0.0;
    for (int i = 0; i < d; i++) lc[i] = (log_alpha_sq ? log_alpha_sq[i] : 2 * log(m->alpha)) + shift;
    int rc = ns_dln_mirror_solve(t, m->kind == NS_DLN_SHARED ? NS_MIRROR_EXP : NS_MIRROR_SINH, lc, beta);
    free(lc);
    return rc;
}
