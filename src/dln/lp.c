// dln/lp.c — weighted l1 minimization over the interpolators by GLPK's simplex:
//   min sum_i w_i (p_i + q_i)  s.t.  X (p - q) = y,  p, q >= 0   (q dropped when beta >= 0).
// The optimal basic solution is then polished: its support S (at most n coordinates) is
// re-solved exactly, X_S beta_S = y, by LAPACK, so the vertex carries no simplex rounding.
#include <glpk.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

// Re-solve on the support by least squares; keep the result only if it is as feasible.
static int polish_support(const ns_dln_data *t, int nonneg, double *beta) {
    int n = t->n, d = t->d, ns = 0;
    int *S = ns_malloc(sizeof(int) * (size_t)d);
    if (!S) return NS_ENOMEM;
    double bmax = 0;
    for (int i = 0; i < d; i++) bmax = fmax(bmax, fabs(beta[i]));
    for (int i = 0; i < d; i++)
        if (fabs(beta[i]) > 1e-12 * bmax) S[ns++] = i;
    if (ns == 0 || ns > n) {
        free(S);
        return NS_OK;
    }
    int ldb = n > ns ? n : ns;
    double *A = ns_malloc(sizeof(double) * (size_t)n * (size_t)ns);
    double *b = ns_calloc((size_t)ldb, sizeof(double));
    double *sv = ns_malloc(sizeof(double) * (size_t)ns);
    double *cand = ns_malloc(sizeof(double) * (size_t)d);
    int rc = NS_ENOMEM;
    if (A && b && sv && cand) {
        rc = NS_OK;
        for (int k = 0; k < n; k++) {
            for (int c = 0; c < ns; c++) A[(size_t)k * ns + c] = t->X[(size_t)k * d + S[c]];
            b[k] = t->y[k];
        }
        lapack_int rank;
        int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, n, ns, 1, A, ns, b, 1, sv, -1, &rank);
        if (info == 0) {
            memset(cand, 0, sizeof(double) * (size_t)d);
            int ok = 1;
            for (int c = 0; c < ns; c++) {
                cand[S[c]] = b[c];
                if (nonneg && b[c] < 0) ok = 0;
                if ((beta[S[c]] > 0) != (b[c] > 0)) ok = 0;  // same signs: same LP objective form
            }
            if (ok && dln_residual_inf(t, cand) <= dln_residual_inf(t, beta))
                memcpy(beta, cand, sizeof(double) * (size_t)d);
        }
    }
    free(S);
    free(A);
    free(b);
    free(sv);
    free(cand);
    return rc;
}

int ns_dln_min_weighted_l1(const ns_dln_data *t, const double *w, int nonneg, double *beta) {
    int n = t->n, d = t->d, nc = nonneg ? d : 2 * d;
    size_t ne = (size_t)n * (size_t)nc;
    int *ia = ns_malloc(sizeof(int) * (ne + 1)), *ja = ns_malloc(sizeof(int) * (ne + 1));
    double *ar = ns_malloc(sizeof(double) * (ne + 1));
    if (!ia || !ja || !ar) {
        free(ia);
        free(ja);
        free(ar);
        return NS_ENOMEM;
    }
    int old = glp_term_out(GLP_OFF);
    glp_prob *lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_rows(lp, n);
    for (int k = 0; k < n; k++) glp_set_row_bnds(lp, k + 1, GLP_FX, t->y[k], t->y[k]);
    glp_add_cols(lp, nc);
    for (int c = 0; c < nc; c++) {
        glp_set_col_bnds(lp, c + 1, GLP_LO, 0.0, 0.0);
        glp_set_obj_coef(lp, c + 1, w ? w[c % d] : 1.0);
    }
    size_t e = 0;
    for (int k = 0; k < n; k++)
        for (int c = 0; c < nc; c++) {
            double x = t->X[(size_t)k * d + c % d];
            e++;
            ia[e] = k + 1;
            ja[e] = c + 1;
            ar[e] = c < d ? x : -x;
        }
    glp_load_matrix(lp, (int)e, ia, ja, ar);
    glp_scale_prob(lp, GLP_SF_AUTO);
    glp_smcp parm;
    glp_init_smcp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.presolve = GLP_ON;
    int ret = glp_simplex(lp, &parm);
    int status = ret == 0 ? glp_get_status(lp) : -1;
    int rc = NS_OK;
    if (ret != 0 || status != GLP_OPT) {
        rc = ns_fail(NS_ESOLVER, "GLPK found no %sinterpolator of minimum l1 norm (simplex code %d, status %d): "
                     "X beta = y has no%s solution",
                     nonneg ? "nonnegative " : "", ret, status, nonneg ? " nonnegative" : "");
    } else {
        for (int i = 0; i < d; i++)
            beta[i] = glp_get_col_prim(lp, i + 1) - (nonneg ? 0.0 : glp_get_col_prim(lp, d + i + 1));
    }
    glp_delete_prob(lp);
    glp_term_out(old);
    free(ia);
    free(ja);
    free(ar);
    if (!rc) rc = polish_support(t, nonneg, beta);
    if (!rc && dln_residual_inf(t, beta) > 1e-6 * dln_y_scale(t))
        rc = ns_fail(NS_ESOLVER, "the GLPK solution misses X beta = y by %g", dln_residual_inf(t, beta));
    return rc;
}
