// dln/model.c — the calculus of the three diagonal linear networks (docs/CONVENTIONS.md, DLN), side by side.
// Each coordinate i of beta depends only on its own parameters theta_i (one or two numbers),
// so everything follows from j_i = dbeta_i/dtheta_i and h_i = d^2 beta_i/dtheta_i^2:
//   grad_i = j_i g_i,   H = (1/n) J^T J + blockdiag(g_i h_i),   J = X . blockdiag(j_i^T).
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

int ns_dln_model_parse(const char *s, ns_dln_kind *out) {
    if (!strcmp(s, "shared")) *out = NS_DLN_SHARED;
    else if (!strcmp(s, "pm") || !strcmp(s, "woodworth") || !strcmp(s, "uu-vv")) *out = NS_DLN_PM;
    else if (!strcmp(s, "uv") || !strcmp(s, "even")) *out = NS_DLN_UV;
    else return ns_fail(NS_EINVAL, "--model must be shared (beta = w*w), pm (beta = u^D - v^D) or uv (beta = u*v), got '%s'", s);
    return NS_OK;
}

const char *ns_dln_model_name(ns_dln_kind k) {
    switch (k) {
    case NS_DLN_SHARED: return "shared";
    case NS_DLN_PM: return "pm";
    case NS_DLN_UV: return "uv";
    }
    return "?";
}

int ns_dln_model_check(const ns_dln_model *m) {
    if (!(m->alpha > 0) || !isfinite(m->alpha))
        return ns_fail(NS_EINVAL, "--alpha must be a finite number > 0, got %g", m->alpha);
    if (m->kind == NS_DLN_PM && (m->depth < 2 || m->depth > 64))
        return ns_fail(NS_EINVAL, "--depth must be between 2 and 64, got %d", m->depth);
    if (m->kind != NS_DLN_PM && m->depth != 2)
        return ns_fail(NS_EINVAL, "--depth applies to the pm model only (got depth %d for model %s)", m->depth,
                       ns_dln_model_name(m->kind));
    return NS_OK;
}

int ns_dln_nparams(const ns_dln_model *m, int d) { return m->kind == NS_DLN_SHARED ? d : 2 * d; }

int ns_dln_point_alloc(ns_dln_point *p, int n, int d) {
    memset(p, 0, sizeof *p);
    p->beta = ns_calloc((size_t)d, sizeof(double));
    p->r = ns_calloc((size_t)n, sizeof(double));
    p->g = ns_calloc((size_t)d, sizeof(double));
    if (!p->beta || !p->r || !p->g) {
        ns_dln_point_free(p);
        return NS_ENOMEM;
    }
    return NS_OK;
}

void ns_dln_point_free(ns_dln_point *p) {
    free(p->beta);
    free(p->r);
    free(p->g);
    memset(p, 0, sizeof *p);
}

double dln_ipow(double x, int k) {
    double r = 1;
    for (; k > 0; k--) r *= x;
    return r;
}

void ns_dln_init(const ns_dln_model *m, int d, double *theta) {
    for (int i = 0; i < d; i++) {
        switch (m->kind) {
        case NS_DLN_SHARED: theta[i] = m->alpha; break;
        case NS_DLN_PM: theta[i] = theta[d + i] = m->alpha; break;
        case NS_DLN_UV:
            theta[i] = sqrt(2.0) * m->alpha;
            theta[d + i] = 0;
            break;
        }
    }
}

void ns_dln_beta(const ns_dln_model *m, int d, const double *theta, double *beta) {
    for (int i = 0; i < d; i++) {
        switch (m->kind) {
        case NS_DLN_SHARED: beta[i] = theta[i] * theta[i]; break;
        case NS_DLN_PM: beta[i] = dln_ipow(theta[i], m->depth) - dln_ipow(theta[d + i], m->depth); break;
        case NS_DLN_UV: beta[i] = theta[i] * theta[d + i]; break;
        }
    }
}

// Coordinate i: j = dbeta_i/dtheta_i, h = d^2 beta_i/dtheta_i^2 as {h00, h01, h11}.
// Returns the number of parameters of the coordinate (1 or 2).
int dln_coord(const ns_dln_model *m, int d, const double *theta, int i, double j[2], double h[3]) {
    int D = m->depth;
    switch (m->kind) {
    case NS_DLN_SHARED:  // beta = w^2
        j[0] = 2 * theta[i];
        j[1] = 0;
        h[0] = 2;
        h[1] = h[2] = 0;
        return 1;
    case NS_DLN_PM: {  // beta = u^D - v^D
        double u = theta[i], v = theta[d + i];
        j[0] = D * dln_ipow(u, D - 1);
        j[1] = -D * dln_ipow(v, D - 1);
        h[0] = D * (D - 1) * dln_ipow(u, D - 2);
        h[1] = 0;
        h[2] = -D * (D - 1) * dln_ipow(v, D - 2);
        return 2;
    }
    case NS_DLN_UV:  // beta = u v
        j[0] = theta[d + i];
        j[1] = theta[i];
        h[0] = h[2] = 0;
        h[1] = 1;
        return 2;
    }
    return 0;
}

void ns_dln_eval(const ns_dln_model *m, const ns_dln_data *t, const double *theta, ns_dln_point *pt) {
    int n = t->n, d = t->d;
    ns_dln_beta(m, d, theta, pt->beta);
    // r = X beta - y; g = X^T r / n
    memcpy(pt->r, t->y, sizeof(double) * (size_t)n);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0, t->X, d, pt->beta, 1, -1.0, pt->r, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0 / n, t->X, d, pt->r, 1, 0.0, pt->g, 1);
    double s = 0;
    for (int k = 0; k < n; k++) s += pt->r[k] * pt->r[k];
    pt->loss = 0.5 * s / n;
}

void ns_dln_grad(const ns_dln_model *m, int d, const double *theta, const ns_dln_point *pt, double *grad) {
    for (int i = 0; i < d; i++) {
        double j[2], h[3];
        int na = dln_coord(m, d, theta, i, j, h);
        for (int a = 0; a < na; a++) grad[a * d + i] = j[a] * pt->g[i];
    }
}

// H v = (1/n) J^T (J v) + B v, with J v = X (j_i . v_i)_i and J^T w = (j_i (X^T w)_i)_i.
void ns_dln_hvp(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                const double *v, double *hv, double *work) {
    int n = t->n, d = t->d;
    double *Jv = work, *c = work + n;  // c: d, first j_i . v_i then X^T Jv / n
    for (int i = 0; i < d; i++) {
        double j[2], h[3];
        int na = dln_coord(m, d, theta, i, j, h);
        c[i] = j[0] * v[i] + (na == 2 ? j[1] * v[d + i] : 0);
    }
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0, t->X, d, c, 1, 0.0, Jv, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0 / n, t->X, d, Jv, 1, 0.0, c, 1);
    for (int i = 0; i < d; i++) {
        double j[2], h[3];
        int na = dln_coord(m, d, theta, i, j, h);
        double gi = pt->g[i];
        if (na == 1) {
            hv[i] = j[0] * c[i] + gi * h[0] * v[i];
        } else {
            double v0 = v[i], v1 = v[d + i];
            hv[i] = j[0] * c[i] + gi * (h[0] * v0 + h[1] * v1);
            hv[d + i] = j[1] * c[i] + gi * (h[1] * v0 + h[2] * v1);
        }
    }
}

// H[(a,i),(b,k)] = G_ik j_i[a] j_k[b] + delta_ik g_i h_i[a,b], G = X^T X / n.
int ns_dln_hessian(const ns_dln_model *m, const ns_dln_data *t, const double *theta, const ns_dln_point *pt,
                   double *H) {
    int n = t->n, d = t->d, p = ns_dln_nparams(m, d);
    double *G = ns_malloc(sizeof(double) * (size_t)d * (size_t)d);
    double *J = ns_malloc(sizeof(double) * 2 * (size_t)d);
    double *Hd = ns_malloc(sizeof(double) * 3 * (size_t)d);
    if (!G || !J || !Hd) {
        free(G);
        free(J);
        free(Hd);
        return NS_ENOMEM;
    }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, n, 1.0 / n, t->X, d, 0.0, G, d);
    for (int i = 0; i < d; i++)
        for (int k = 0; k < i; k++) G[(size_t)i * d + k] = G[(size_t)k * d + i];
    int na = 1;
    for (int i = 0; i < d; i++) na = dln_coord(m, d, theta, i, J + 2 * i, Hd + 3 * i);
    for (int a = 0; a < na; a++)
        for (int i = 0; i < d; i++) {
            double *row = H + (size_t)(a * d + i) * (size_t)p;
            for (int b = 0; b < na; b++)
                for (int k = 0; k < d; k++) row[b * d + k] = G[(size_t)i * d + k] * J[2 * i + a] * J[2 * k + b];
            for (int b = 0; b < na; b++) row[b * d + i] += pt->g[i] * Hd[3 * i + a + b];
        }
    free(G);
    free(J);
    free(Hd);
    return NS_OK;
}

double ns_dln_l1(int d, const double *x) {
    double s = 0;
    for (int i = 0; i < d; i++) s += fabs(x[i]);
    return s;
}

double ns_dln_l2(int d, const double *x) {
    double s = 0;
    for (int i = 0; i < d; i++) s += x[i] * x[i];
    return sqrt(s);
}

double ns_dln_dist(int d, const double *a, const double *b) {
    double s = 0;
    for (int i = 0; i < d; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

double dln_residual_inf(const ns_dln_data *t, const double *beta) {
    double m = 0;
    for (int k = 0; k < t->n; k++) {
        double s = -t->y[k];
        for (int i = 0; i < t->d; i++) s += t->X[(size_t)k * t->d + i] * beta[i];
        m = fmax(m, fabs(s));
    }
    return m;
}

double dln_y_scale(const ns_dln_data *t) {
    double m = 1;
    for (int k = 0; k < t->n; k++) m = fmax(m, fabs(t->y[k]));
    return m;
}
