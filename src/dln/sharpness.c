// dln/sharpness.c — exact ends of the Hessian spectrum of a DLN: the dense route for small
// parameter counts and the secular-equation route (an n x n problem) for large ones.
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

int dln_sym_top(double *A, int n, double *lambda, double *vec) {
    double w[1], z1;
    int found = 0;
    lapack_int isuppz[2];
    int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, vec ? 'V' : 'N', 'I', 'U', n, A, n, 0, 0, n, n, 0, &found, w,
                              vec ? vec : &z1, 1, isuppz);
    if (info != 0 || found != 1)
        return ns_fail(NS_ESOLVER, "LAPACK dsyevr failed on a %d x %d eigenproblem (info %d)", n, n, info);
    *lambda = w[0];
    return NS_OK;
}

// M = X diag(w) X^T through Y = X diag(sqrt(w)) and one syrk.
void dln_xwx(const ns_dln_data *t, const double *w, double *M, double *work) {
    int n = t->n, d = t->d;
    for (int i = 0; i < d; i++) {
        double s = sqrt(w[i] > 0 ? w[i] : 0);
        for (int k = 0; k < n; k++) work[(size_t)k * d + i] = t->X[(size_t)k * d + i] * s;
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, d, 1.0, work, d, 0.0, M, n);
    for (int k = 0; k < n; k++)
        for (int l = 0; l < k; l++) M[(size_t)k * n + l] = M[(size_t)l * n + k];
}

int ns_dln_lambda_max_xwx(const ns_dln_data *t, const double *w, double *out) {
    int n = t->n, d = t->d;
    for (int i = 0; i < d; i++)
        if (!(w[i] >= 0) || !isfinite(w[i])) {
            *out = NAN;
            return NS_OK;
        }
    if (n == 1) {
        double s = 0;
        for (int i = 0; i < d; i++) s += w[i] * t->X[i] * t->X[i];
        *out = s;
        return NS_OK;
    }
    double *M = ns_malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *work = ns_malloc(sizeof(double) * (size_t)n * (size_t)d);
    int rc = NS_ENOMEM;
    if (M && work) {
        dln_xwx(t, w, M, work);
        rc = dln_sym_top(M, n, out, NULL);
    }
    free(M);
    free(work);
    return rc;
}

// (1/n) lambda_max(X diag(kappa) X^T); frees kappa.
static int sharpness_of_kappa(const ns_dln_data *t, double *kappa, double *out) {
    double lam;
    int rc = ns_dln_lambda_max_xwx(t, kappa, &lam);
    free(kappa);
    if (rc) return rc;
    *out = lam / t->n;
    return NS_OK;
}

int ns_dln_sharpness_of_beta(const ns_dln_model *m, const ns_dln_data *t, const double *beta, double *out) {
    int d = t->d;
    double *kappa = ns_malloc(sizeof(double) * (size_t)d);
    if (!kappa) return NS_ENOMEM;
    int D = m->depth;
    for (int i = 0; i < d; i++) {
        double b = fabs(beta[i]);
        switch (m->kind) {
        case NS_DLN_SHARED: kappa[i] = beta[i] >= 0 ? 4 * beta[i] : NAN; break;  // w = sqrt(beta)
        case NS_DLN_PM: kappa[i] = D == 2 ? 4 * b : (double)D * D * pow(b, 2.0 - 2.0 / D); break;
        case NS_DLN_UV: kappa[i] = 2 * b; break;  // |u| = |v| = sqrt|beta|
        }
    }
    return sharpness_of_kappa(t, kappa, out);
}

int ns_dln_sharpness_on_flow(const ns_dln_model *m, const ns_dln_data *t, const double *beta,
                             const double *log_alpha_sq, double *out) {
    if (m->kind == NS_DLN_SHARED || m->depth != 2) return ns_dln_sharpness_of_beta(m, t, beta, out);
    int d = t->d;
    double *kappa = ns_malloc(sizeof(double) * (size_t)d);
    if (!kappa) return NS_ENOMEM;
    for (int i = 0; i < d; i++) {
        double a = log_alpha_sq ? exp(log_alpha_sq[i]) : m->alpha * m->alpha, b = beta[i];
        // J J^T = X diag(c (u^2 + v^2)) X^T with c = 4 (PM: J = [2X diag u, -2X diag v]), 1 (UV)
        kappa[i] = m->kind == NS_DLN_PM ? 4 * sqrt(b * b + 4 * a * a) : 2 * sqrt(b * b + a * a);
    }
    return sharpness_of_kappa(t, kappa, out);
}

// ---- dense route -----------------------------------------------------------------------

static int sharpness_dense(const ns_dln_model *m, const ns_dln_data *t, const double *theta,
                           const ns_dln_point *pt, ns_dln_sharp *out) {
    int p = ns_dln_nparams(m, t->d);
    double *H = ns_malloc(sizeof(double) * (size_t)p * (size_t)p);
    double *ev = ns_malloc(sizeof(double) * (size_t)p);
    int rc = NS_ENOMEM;
    if (H && ev && !(rc = ns_dln_hessian(m, t, theta, pt, H))) {
        double tr = 0;
        for (int a = 0; a < p; a++) tr += H[(size_t)a * p + a];
        int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', p, H, p, ev);
        if (info != 0) {
            rc = ns_fail(NS_ESOLVER, "LAPACK dsyevd failed on the %d x %d DLN Hessian (info %d)", p, p, info);
        } else {
            out->lambda_min = ev[0];
            out->lambda_max = ev[p - 1];
            out->sharpness = fmax(fabs(ev[0]), fabs(ev[p - 1]));
            out->trace = tr;
            out->exact = 1;
            out->method = "dense";
        }
    }
    free(H);
    free(ev);
    return rc;
}

// ---- secular route -----------------------------------------------------------------------

typedef struct {
    const ns_dln_data *t;
    double *jj;    // 2d: j_i
    double *bb;    // 3d: B_i = g_i h_i as {b00, b01, b11}
    int na;
    double *w, *dw, *M, *vec, *work, *xv;
} secular;

// w_i = j^T (lam - B_i)^-1 j and dw_i = d w_i / d lam = -|(lam - B_i)^-1 j|^2.
static void secular_weights(const secular *s, double lam) {
    int d = s->t->d;
    for (int i = 0; i < d; i++) {
        const double *j = s->jj + 2 * i, *b = s->bb + 3 * i;
        if (s->na == 1) {
            double a = lam - b[0];
            s->w[i] = j[0] * j[0] / a;
            s->dw[i] = -j[0] * j[0] / (a * a);
        } else {
            double a = lam - b[0], c = lam - b[2], o = -b[1], det = a * c - o * o;
            double x0 = (c * j[0] - o * j[1]) / det, x1 = (a * j[1] - o * j[0]) / det;  // (lam-B)^-1 j
            s->w[i] = j[0] * x0 + j[1] * x1;
            s->dw[i] = -(x0 * x0 + x1 * x1);
        }
    }
}

// mu(lam) = lambda_max((1/n) X diag(w(lam)) X^T) and its derivative in lam.
static int secular_mu(secular *s, double lam, double *mu, double *dmu) {
    const ns_dln_data *t = s->t;
    int n = t->n, d = t->d;
    secular_weights(s, lam);
    double top;
    if (n == 1) {
        s->vec[0] = 1;
        top = 0;
        for (int i = 0; i < d; i++) top += s->w[i] * t->X[i] * t->X[i];
    } else {
        dln_xwx(t, s->w, s->M, s->work);
        int rc = dln_sym_top(s->M, n, &top, s->vec);
        if (rc) return rc;
    }
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, t->X, d, s->vec, 1, 0.0, s->xv, 1);
    double dm = 0;
    for (int i = 0; i < d; i++) dm += s->dw[i] * s->xv[i] * s->xv[i];
    *mu = top / n;
    *dmu = dm / n;
    return NS_OK;
}

static double block_eig(const double *b, int na, int want_max) {
    if (na == 1) return b[0];
    double m = 0.5 * (b[0] + b[2]), r = hypot(0.5 * (b[0] - b[2]), b[1]);
    return want_max ? m + r : m - r;
}

// lambda_max(H) is the root of psi(lam) = 1/mu(lam) - 1 on (b_max, b_max + mu0], where psi
// rises from -1; psi is exactly linear when B = 0, so Newton converges at once near
// interpolators. Newton steps that leave the bracket are replaced by bisection.
static int sharpness_secular(const ns_dln_model *m, const ns_dln_data *t, const double *theta,
                             const ns_dln_point *pt, ns_dln_sharp *out) {
    int n = t->n, d = t->d;
    secular s = {.t = t};
    s.jj = ns_malloc(sizeof(double) * 2 * (size_t)d);
    s.bb = ns_malloc(sizeof(double) * 3 * (size_t)d);
    s.w = ns_malloc(sizeof(double) * (size_t)d);
    s.dw = ns_malloc(sizeof(double) * (size_t)d);
    s.xv = ns_malloc(sizeof(double) * (size_t)d);
    s.M = ns_malloc(sizeof(double) * (size_t)n * (size_t)n);
    s.vec = ns_malloc(sizeof(double) * (size_t)n);
    s.work = ns_malloc(sizeof(double) * (size_t)n * (size_t)d);
    int rc = NS_ENOMEM;
    if (!s.jj || !s.bb || !s.w || !s.dw || !s.xv || !s.M || !s.vec || !s.work) goto done;
    double bmax = -INFINITY, bmin = INFINITY, trace = 0;
    double *col2 = s.w;  // squared column norms of X, reused below
    for (int i = 0; i < d; i++) col2[i] = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < d; i++) col2[i] += t->X[(size_t)k * d + i] * t->X[(size_t)k * d + i];
    for (int i = 0; i < d; i++) {
        double h[3];
        s.na = dln_coord(m, d, theta, i, s.jj + 2 * i, h);
        double *b = s.bb + 3 * i;
        for (int q = 0; q < 3; q++) b[q] = pt->g[i] * h[q];
        bmax = fmax(bmax, block_eig(b, s.na, 1));
        bmin = fmin(bmin, block_eig(b, s.na, 0));
        double j2 = s.jj[2 * i] * s.jj[2 * i] + s.jj[2 * i + 1] * s.jj[2 * i + 1];
        trace += j2 * col2[i] / n + b[0] + (s.na == 2 ? b[2] : 0);
    }
    // mu0 = lambda_max((1/n) J J^T) = (1/n) lambda_max(X diag(|j_i|^2) X^T) bounds the spread.
    for (int i = 0; i < d; i++) s.w[i] = s.jj[2 * i] * s.jj[2 * i] + s.jj[2 * i + 1] * s.jj[2 * i + 1];
    double mu0;
    if ((rc = ns_dln_lambda_max_xwx(t, s.w, &mu0))) goto done;
    mu0 /= n;
    double lo = bmax, hi = bmax + mu0, lam = hi;
    if (!(mu0 > 0)) {
        lam = bmax;  // J = 0: H = B
    } else {
        for (int it = 0; it < 200; it++) {
            double mu, dmu;
            if ((rc = secular_mu(&s, lam, &mu, &dmu))) goto done;
            double psi = 1 / mu - 1, dpsi = -dmu / (mu * mu);
            if (psi == 0) break;
            if (psi > 0) hi = lam;
            else lo = lam;
            double next = lam - psi / dpsi;
            if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
            if (fabs(next - lam) <= 1e-15 * fmax(fabs(lam), mu0) || hi - lo <= 1e-15 * fmax(fabs(hi), mu0)) {
                lam = next;
                break;
            }
            lam = next;
        }
    }
    out->lambda_max = lam;
    out->lambda_min = bmin;  // a lower bound only
    out->trace = trace;
    out->method = "secular";
    out->exact = lam >= 0 && lam >= -bmin;
    out->sharpness = out->exact ? lam : fmax(fabs(lam), -bmin);
    rc = NS_OK;
done:
    free(s.jj);
    free(s.bb);
    free(s.w);
    free(s.dw);
    free(s.xv);
    free(s.M);
    free(s.vec);
    free(s.work);
    return rc;
}

int ns_dln_sharpness(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                     int dense_max, ns_dln_sharp *out) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < t->d; i++)
        if (!isfinite(pt->g[i])) {
            out->lambda_max = out->lambda_min = out->sharpness = out->trace = NAN;
            out->method = "none";
            return NS_OK;  // a diverged point has no meaningful curvature
        }
    if (ns_dln_nparams(m, t->d) <= dense_max) return sharpness_dense(m, t, theta, pt, out);
    return sharpness_secular(m, t, theta, pt, out);
}

int ns_dln_sharpness_auto(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                          int dense_max, ns_dln_sharp *out) {
    int p = ns_dln_nparams(m, t->d);
    if (p <= NS_DLN_DENSE_ALWAYS && p <= dense_max) return ns_dln_sharpness(m, t, theta, pt, dense_max, out);
    int rc = ns_dln_sharpness(m, t, theta, pt, 0, out);
    if (rc || out->exact || p > dense_max || !strcmp(out->method, "none")) return rc;
    return ns_dln_sharpness(m, t, theta, pt, dense_max, out);
}
