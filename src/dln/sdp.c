// dln/sdp.c — the minimum-sharpness interpolator (docs/CONVENTIONS.md, DLN):
//   min t  s.t.  t I - X diag(s) X^T >= 0 (LMI),  s >= |beta|,  X beta = y.
// X beta = y is eliminated first: beta = beta0 + N z with N = [-X_B^-1 X_F; I] for r basic
// coordinates B chosen by QR with column pivoting and the free ones F, so DSDP sees only
// conic constraints on its free variables y = (z, s, t):
//   SDP block (n x n):  t I - sum_i s_i x_i x_i^T >= 0      (x_i = column i of X, rank one)
//   LP cone (2d rows):  s_i - beta0_i - N_i z >= 0,  s_i + beta0_i + N_i z >= 0
// and maximizes -t. For beta >= 0 (shared weights) s = beta and the variables are (z, t):
//   t I - X diag(beta0) X^T - sum_k z_k X diag(N_k) X^T >= 0,  beta0_i + N_i z >= 0.
// When n = 1 the LMI is the scalar sum_i s_i x_i^2 and the problem is the LP
// min sum_i x_i^2 |beta_i| s.t. x^T beta = y, solved by GLPK.
// Cost (n = 100, d = 1000): m = 1901 DSDP variables; the LP rows of the basic coordinates
// are dense in z and dominate DSDP's Schur-matrix assembly; ~25 iterations, ~20 s on one
// core. A strictly feasible start (below) halves the iteration count.
#include <dsdp/dsdp5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "normsharp/dln.h"
#include "dln_internal.h"

// Data DSDP keeps pointers to until DSDPDestroy.
typedef struct {
    int *idx;         // 0..n-1 (rank-one vectors)
    double *cols;     // d x n: column i of X, contiguous
    double *packed;   // (nz + 1) dense packed matrices (nonneg form)
    int *lp_ptr, *lp_row;
    double *lp_val;
} sdp_data;

static void sdp_data_free(sdp_data *s) {
    free(s->idx);
    free(s->cols);
    free(s->packed);
    free(s->lp_ptr);
    free(s->lp_row);
    free(s->lp_val);
}

// Packed lower-triangular row-wise storage of X diag(w) X^T (DSDP's 'P' format):
// element (k, l), k >= l, at k (k + 1) / 2 + l.
static void packed_xwx(const ns_dln_data *t, const double *w, int wstride, double *out) {
    int n = t->n, d = t->d;
    for (int k = 0; k < n; k++)
        for (int l = 0; l <= k; l++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += t->X[(size_t)k * d + i] * w[(size_t)i * wstride] * t->X[(size_t)l * d + i];
            out[(size_t)k * (k + 1) / 2 + l] = s;
        }
}

static int dsdp_check(int info, const char *what) {
    return info ? ns_fail(NS_ESOLVER, "DSDP failed while %s (code %d)", what, info) : NS_OK;
}

// A strictly feasible dual start spares DSDP its infeasible phase (about half of the
// iterations): z = 0 (beta = beta0), s = |beta0| + mean|beta0|, t above lambda_max.
static int feasible_start(DSDP dsdp, const ns_dln_data *t, const double *beta0, int nz) {
    int d = t->d;
    double *sv = ns_malloc(sizeof(double) * (size_t)d);
    if (!sv) return NS_ENOMEM;
    double pad = ns_dln_l1(d, beta0) / d + 1e-12;
    for (int i = 0; i < d; i++) sv[i] = fabs(beta0[i]) + pad;
    double top;
    int rc = ns_dln_lambda_max_xwx(t, sv, &top);
    if (!rc) {
        for (int k = 0; k < nz; k++) DSDPSetY0(dsdp, k + 1, 0.0);
        for (int i = 0; i < d; i++) DSDPSetY0(dsdp, nz + i + 1, sv[i]);
        DSDPSetY0(dsdp, nz + d + 1, 1.1 * top + 1e-12);
        DSDPSetR0(dsdp, 0.0);
    }
    free(sv);
    return rc;
}

// The sizes of one minimum-sharpness SDP: variables y = (z, [s,] t), LP rows.
typedef struct {
    int n, d, nz, nonneg;
    int m;        // DSDP variables y_1..y_m; t is y_m
    int lp_rows;  // nonneg: beta >= 0 per coordinate; else s_i -+ beta_i >= 0
} sdp_shape;

static int sdp_data_alloc(sdp_data *s, const sdp_shape *q) {
    s->idx = ns_malloc(sizeof(int) * (size_t)q->n);
    s->lp_ptr = ns_malloc(sizeof(int) * (size_t)(q->m + 2));
    size_t lp_nnz = (size_t)q->lp_rows * (size_t)(q->nz + 1) + (q->nonneg ? 0 : (size_t)q->lp_rows);
    s->lp_row = ns_malloc(sizeof(int) * lp_nnz);
    s->lp_val = ns_malloc(sizeof(double) * lp_nnz);
    if (q->nonneg) s->packed = ns_malloc(sizeof(double) * (size_t)(q->nz + 1) * (size_t)q->n * (size_t)(q->n + 1) / 2);
    else s->cols = ns_malloc(sizeof(double) * (size_t)q->d * (size_t)q->n);
    if (!s->idx || !s->lp_ptr || !s->lp_row || !s->lp_val || (q->nonneg ? !s->packed : !s->cols)) return NS_ENOMEM;
    for (int k = 0; k < q->n; k++) s->idx[k] = k;
    return NS_OK;
}

// The SDP block: S = C - sum_k y_k A_k >= 0 with A_t = -I; nonneg: C = -X diag(beta0) X^T,
// A_{z_k} = X diag(N_k) X^T; else A_{s_i} = x_i x_i^T.
static int sdp_cone(DSDP dsdp, sdp_data *s, const sdp_shape *q, const ns_dln_data *t, const double *beta0,
                    const double *N) {
    int n = q->n, d = q->d, nz = q->nz;
    SDPCone sdp;
    int rc;
    if ((rc = dsdp_check(DSDPCreateSDPCone(dsdp, 1, &sdp), "creating the SDP cone")) ||
        (rc = dsdp_check(SDPConeSetBlockSize(sdp, 0, n), "sizing the SDP block")))
        return rc;
    SDPConeSetIdentity(sdp, 0, q->m, n, -1.0);
    if (q->nonneg) {
        size_t P = (size_t)n * (n + 1) / 2;
        packed_xwx(t, beta0, 1, s->packed);
        SDPConeSetADenseVecMat(sdp, 0, 0, n, -1.0, s->packed, (int)P);
        for (int k = 0; k < nz; k++) {
            packed_xwx(t, N + k, nz, s->packed + (size_t)(k + 1) * P);
            SDPConeSetADenseVecMat(sdp, 0, k + 1, n, 1.0, s->packed + (size_t)(k + 1) * P, (int)P);
        }
    } else {
        for (int i = 0; i < d; i++) {
            for (int k = 0; k < n; k++) s->cols[(size_t)i * n + k] = t->X[(size_t)k * d + i];
            SDPConeSetARankOneMat(sdp, 0, nz + i + 1, n, 1.0, 0, s->idx, s->cols + (size_t)i * n, n);
        }
    }
    return NS_OK;
}

// The LP cone in column-sparse form: column 0 is c, column k the coefficients of y_k, each
// row reads c - sum_k a_k y_k >= 0. Rows: nonneg: i -> beta0_i + N_i z >= 0; else
// 2i -> s_i - beta_i >= 0, 2i+1 -> s_i + beta_i >= 0.
static int lp_cone(DSDP dsdp, sdp_data *s, const sdp_shape *q, const double *beta0, const double *N) {
    int nz = q->nz, nonneg = q->nonneg;
    LPCone lp;
    int rc = dsdp_check(DSDPCreateLPCone(dsdp, &lp), "creating the LP cone");
    if (rc) return rc;
    size_t e = 0;
    int col = 0;
    s->lp_ptr[col++] = 0;
    for (int r = 0; r < q->lp_rows; r++) {
        int i = nonneg ? r : r / 2;
        double sign = nonneg || (r & 1) ? 1.0 : -1.0;  // sign of beta in the row
        s->lp_row[e] = r;
        s->lp_val[e++] = sign * beta0[i];
    }
    s->lp_ptr[col++] = (int)e;
    for (int k = 0; k < nz; k++) {
        for (int r = 0; r < q->lp_rows; r++) {
            int i = nonneg ? r : r / 2;
            double sign = nonneg || (r & 1) ? 1.0 : -1.0;
            if (N[(size_t)i * nz + k] == 0) continue;
            s->lp_row[e] = r;
            s->lp_val[e++] = -sign * N[(size_t)i * nz + k];
        }
        s->lp_ptr[col++] = (int)e;
    }
    for (int i = 0; !nonneg && i < q->d; i++) {
        s->lp_row[e] = 2 * i;
        s->lp_val[e++] = -1.0;
        s->lp_row[e] = 2 * i + 1;
        s->lp_val[e++] = -1.0;
        s->lp_ptr[col++] = (int)e;
    }
    s->lp_ptr[col++] = (int)e;  // t: no LP coefficients
    return dsdp_check(LPConeSetData(lp, q->lp_rows, s->lp_ptr, s->lp_row, s->lp_val), "loading the LP cone");
}

// beta = beta0 + N z from the solved y (clipped at 0 for nonneg). The answer is judged by
// its duality gap rather than the stop reason: DSDP may stop on "small steps" or
// "numerical error" with an optimal point in hand.
static int read_solution(DSDP dsdp, const sdp_shape *q, const double *beta0, const double *N, double *beta) {
    DSDPTerminationReason why;
    DSDPSolutionType type;
    double pobj, dobj;
    DSDPStopReason(dsdp, &why);
    DSDPGetSolutionType(dsdp, &type);
    DSDPGetPPObjective(dsdp, &pobj);
    DSDPGetDDObjective(dsdp, &dobj);
    double gap = fabs(pobj - dobj) / (1 + fabs(dobj));
    if (type != DSDP_PDFEASIBLE || !(gap <= 1e-5))
        return ns_fail(NS_ESOLVER, "DSDP did not solve the minimum-sharpness SDP (stop reason %d, solution type %d, "
                       "relative duality gap %.3g)", (int)why, (int)type, gap);
    double *yv = ns_malloc(sizeof(double) * (size_t)q->m);
    if (!yv) return NS_ENOMEM;
    DSDPGetY(dsdp, yv, q->m);
    for (int i = 0; i < q->d; i++) {
        double b = beta0[i];
        for (int k = 0; k < q->nz; k++) b += N[(size_t)i * q->nz + k] * yv[k];
        beta[i] = q->nonneg && b < 0 ? 0 : b;
    }
    free(yv);
    return NS_OK;
}

// min t over (z, [s,] t) with beta = beta0 + N z: build the cones, start, solve, read beta.
static int solve_sdp(const ns_dln_data *t, int nonneg, const double *beta0, const double *N, int nz, double *beta) {
    sdp_shape q = {.n = t->n, .d = t->d, .nz = nz, .nonneg = nonneg, .m = nonneg ? nz + 1 : nz + t->d + 1,
                   .lp_rows = nonneg ? t->d : 2 * t->d};
    sdp_data s = {0};
    DSDP dsdp = NULL;
    int rc = sdp_data_alloc(&s, &q);
    if (!rc && !(rc = dsdp_check(DSDPCreate(q.m, &dsdp), "creating the solver"))) {
        DSDPSetDualObjective(dsdp, q.m, -1.0);  // maximize -t
        rc = sdp_cone(dsdp, &s, &q, t, beta0, N);
    }
    if (!rc) rc = lp_cone(dsdp, &s, &q, beta0, N);
    if (!rc) {
        DSDPUseLAPACKForSchur(dsdp, 1);
        DSDPSetGapTolerance(dsdp, 1e-7);
        if (!nonneg) rc = feasible_start(dsdp, t, beta0, nz);
    }
    if (!rc) {
        DSDPSetMaxIts(dsdp, 500);
        if (!(rc = dsdp_check(DSDPSetup(dsdp), "setting up"))) rc = dsdp_check(DSDPSolve(dsdp), "solving");
    }
    if (!rc) rc = read_solution(dsdp, &q, beta0, N, beta);
    if (dsdp) DSDPDestroy(dsdp);
    sdp_data_free(&s);
    return rc;
}

int ns_dln_min_sharpness(const ns_dln_data *t, int nonneg, double *beta, double *value) {
    int n = t->n, d = t->d, rc;
    double *w = ns_malloc(sizeof(double) * (size_t)d);
    if (!w) return NS_ENOMEM;
    if (n == 1) {
        for (int i = 0; i < d; i++) w[i] = t->X[i] * t->X[i];
        rc = ns_dln_min_weighted_l1(t, w, nonneg, beta);
    } else {
        double *N = NULL;
        int r;
        // beta >= 0 may be infeasible; GLPK says so clearly (DSDP would only stall)
        if (nonneg && (rc = ns_dln_min_weighted_l1(t, NULL, 1, beta))) {
            free(w);
            return rc;
        }
        rc = dln_basis_interpolators(t, w, &N, &r);  // w holds beta0 here
        if (!rc && d == r) {  // a unique interpolator
            memcpy(beta, w, sizeof(double) * (size_t)d);
            for (int i = 0; i < d && nonneg && !rc; i++)
                if (beta[i] < 0) rc = ns_fail(NS_EINVAL, "no nonnegative interpolator exists (X beta = y has one solution, with negative entries)");
        } else if (!rc) {
            rc = solve_sdp(t, nonneg, w, N, d - r, beta);
        }
        free(N);
    }
    if (!rc) {
        for (int i = 0; i < d; i++) w[i] = fabs(beta[i]);
        rc = ns_dln_lambda_max_xwx(t, w, value);
    }
    free(w);
    return rc;
}
