// Lanczos with full reorthogonalization for the extreme eigenvalues of a symmetric
// operator H given only by products v -> H v (the training-loss Hessian via exact HVPs),
// restarted so that repeated and clustered eigenvalues are counted.
//
// The basis Q = [q_0 .. q_{m-1}] (rows of `q` here) is built in one or more *sequences*.
// A sequence starts from a unit vector orthogonal to all earlier ones (the warm vector or
// a seeded random one) and grows it by Lanczos: q_{j+1} = (I - Q Q^T) H q_j / beta_j.
// The Ritz values come from the projected matrix G = Q^T H Q over the whole basis (the
// Rayleigh-Ritz method), whose entries are the Gram-Schmidt coefficients; within one
// sequence G is tridiagonal. For a Ritz pair (theta, Q s),
//     H Q s - theta Q s = beta_{m-1} s_{m-1} q_m + sum_e s_e r_e,
// where e runs over the last index of every closed sequence and r_e is the part of its
// discarded residual that the later basis does not contain, ||r_e||^2 = beta_e^2 -
// sum_{l>e} G_el^2. Every reported residual is the triangle bound of that sum, so it is
// never below the true ||H x - theta x|| (and equal to it in a single sequence). With
// rounded HVPs the true residual cannot fall below the HVP's own rounding error (about
// 1e-7 S in float32 builds).
//
// Why restarts: a single Krylov sequence sees each distinct eigenvalue once (in exact
// arithmetic it holds one vector of each eigenspace), so a double eigenvalue would be
// listed once and the top k would read on into smaller values with small residuals. A
// fresh random vector orthogonal to Q starts a Lanczos sequence on the deflated operator
// (I - Q Q^T) H (I - Q Q^T), whose top is the next copy (or the next cluster member) the
// first sequence could not hold. Restarts go on until one changes none of the reported
// values (beyond tol): "until the k-th value stops moving". They are needed only when
// multiplicity can change an answer: for the top k with k >= 2, and for lambda_min when it
// is asked for in full. For k = 1, lambda_max and S = max |lambda| are the same numbers
// whatever their multiplicity, and one sequence is used (as in ARPACK's eigsh).
//
// Stopping rule of a sequence (over the whole basis; S = max |theta|):
//     ||H x - theta x|| <= tol * |theta|        for each of the top k Ritz values
//                                               (tol^1.5 * S for |theta| < sqrt(tol) S);
//     lambda_min, asked in full:   resid <= tol * S;
//     otherwise: resid <= tol * S, or |theta_min| + resid <= S.
// The last clause certifies S = max |lambda| without converging the far end: an
// eigenvalue lies within resid of theta_min, and it cannot compete with S. (At theta_0 of
// fc-tanh-200-200 this saves the ~30 HVPs that lambda_min = -5.46 takes after lambda_max =
// 24.06 has converged.) A later sequence also waits until its own extreme Ritz value (the
// top of the deflated operator) has residual <= tol * max(|theta_k|, |tau|) (and its bottom
// <= tol * S when lambda_min is asked in full), so that a hidden copy shows before the
// comparison with the previous values.
//
// Breakdown (beta ~ 0) means span(Q) is invariant and its Ritz values are exact. From a
// random start it ends the sequence as settled; from a warm start (which may be an
// eigenvector) it does not, and a random sequence follows.
//
// Orthogonalization: H q_j is first cleared of q_{j-1} and q_j (the three-term recurrence,
// which holds nearly all of it), then once against the whole basis by classical
// Gram-Schmidt as two GEMVs, repeated only when that pass cancelled more than 1 - 1/sqrt(2)
// of the norm (the Daniel-Gragg-Kaufman-Stewart criterion; "twice is enough", Giraud et
// al.). That is two passes over Q per step where unconditional CGS2 needs four.
// Everything is deterministic: the same seed (or warm vector) gives the same numbers.
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "normsharp/rng.h"

void ns_lanczos_opts_default(ns_lanczos_opts *o) {
    o->k = 1;
    o->max_iter = 100;
    o->tol = 1e-4;
    o->seed = 0;
    o->warm = NULL;
    o->lambda_min_full = 0;
}

void ns_eig_result_free(ns_eig_result *r) {
    if (!r) return;
    free(r->top);
    free(r->top_resid);
    free(r->vec_max);
    r->top = r->top_resid = r->vec_max = NULL;
    r->k = 0;
}

int ns_curv_check(size_t n, const ns_lanczos_opts *o, const char *who) {
    if (n == 0) return ns_fail(NS_EINVAL, "%s: the operator has dimension 0.", who);
    if (n > (size_t)INT32_MAX) return ns_fail(NS_EINVAL, "%s: dimension %zu is too large for BLAS.", who, n);
    if (o->k < 1) return ns_fail(NS_EINVAL, "%s: k must be at least 1, got %d.", who, o->k);
    if (o->max_iter < 1) return ns_fail(NS_EINVAL, "%s: max_iter must be at least 1, got %d.", who, o->max_iter);
    if (!(o->tol > 0) || !isfinite(o->tol))
        return ns_fail(NS_EINVAL, "%s: tol must be a positive finite number, got %g.", who, o->tol);
    return NS_OK;
}

int ns_curv_all_finite(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

int ns_curv_apply(ns_matvec_fn f, void *ctx, const double *v, double *w, size_t n, const char *who, int *iters) {
    int rc = f(ctx, v, w, n);
    ++*iters;
    if (rc) return rc;
    if (!ns_curv_all_finite(w, n))
        return ns_fail(NS_EINVAL, "%s: the Hessian-vector product has non-finite entries (at iteration %d); the loss "
                                  "surface is not finite here.", who, *iters);
    return NS_OK;
}

// v := warm/||warm||, or a seeded Gaussian direction when there is no usable warm vector.
int ns_curv_start(double *v, size_t n, const ns_lanczos_opts *o) {
    double nrm = 0;
    if (o->warm && ns_curv_all_finite(o->warm, n)) {
        nrm = cblas_dnrm2((int)n, o->warm, 1);
        if (nrm > 0 && isfinite(nrm)) {
            for (size_t i = 0; i < n; i++) v[i] = o->warm[i] / nrm;
            return 1;
        }
    }
    ns_rng rng;
    ns_rng_seed(&rng, o->seed, NS_STREAM_LANCZOS);
    for (size_t i = 0; i < n; i++) v[i] = ns_rng_normal(&rng);
    nrm = cblas_dnrm2((int)n, v, 1);
    cblas_dscal((int)n, 1.0 / nrm, v, 1);
    return 0;
}

typedef struct {
    size_t n;
    int m;            // basis vectors stored
    int cap;          // rows allocated in q
    int limit;        // most basis vectors (the HVP budget, at most n)
    double *q;        // basis, row j = q_j (cap x n)
    double *g;        // G = Q^T H Q: column j holds rows 0..j (limit x limit, column-major)
    double *beta;     // beta[j] = ||H q_j - sum_{i<=j} G_ij q_i||
    double *h;        // Gram-Schmidt coefficients (limit)
    double *theta, *z, *resid;   // Ritz values (ascending), vectors (m x m), residual bounds
    double *own_theta, *own_z;   // the same for the current sequence's own block
    double *rho;      // ||r_e|| per closed sequence
    int *ends;        // last index of every closed sequence
    int nends;
    int start;        // first index of the current sequence
} krylov;

static void krylov_free(krylov *K) {
    free(K->q);
    free(K->g);
    free(K->beta);
    free(K->h);
    free(K->theta);
    free(K->z);
    free(K->resid);
    free(K->own_theta);
    free(K->own_z);
    free(K->rho);
    free(K->ends);
}

static int krylov_alloc(krylov *K, size_t n, int limit) {
    *K = (krylov){.n = n, .limit = limit};
    size_t l = (size_t)limit;
    K->g = ns_calloc(l * l, sizeof(double));
    K->beta = ns_calloc(l, sizeof(double));
    K->h = ns_calloc(l, sizeof(double));
    K->theta = ns_calloc(l, sizeof(double));
    K->z = ns_calloc(l * l, sizeof(double));
    K->resid = ns_calloc(l, sizeof(double));
    K->own_theta = ns_calloc(l, sizeof(double));
    K->own_z = ns_calloc(l * l, sizeof(double));
    K->rho = ns_calloc(l, sizeof(double));
    K->ends = ns_calloc(l, sizeof(int));
    if (!K->g || !K->beta || !K->h || !K->theta || !K->z || !K->resid || !K->own_theta || !K->own_z || !K->rho ||
        !K->ends)
        return NS_ENOMEM;
    return NS_OK;
}

// Make room for row m of the basis (doubling, capped at the limit).
static int krylov_reserve(krylov *K) {
    if (K->m < K->cap) return NS_OK;
    int cap = K->cap ? 2 * K->cap : 16;
    if (cap > K->limit) cap = K->limit;
    double *q = ns_realloc(K->q, (size_t)cap * K->n * sizeof(double));
    if (!q) return NS_ENOMEM;
    K->q = q;
    K->cap = cap;
    return NS_OK;
}

static double *gij(const krylov *K, int i, int j) { return K->g + i + (size_t)j * K->limit; }

void ns_curv_cgs_pass(const double *q, int m, int n, double *w, double *h) {
    cblas_dgemv(CblasRowMajor, CblasNoTrans, m, n, 1.0, q, n, w, 1, 0.0, h, 1);
    cblas_dgemv(CblasRowMajor, CblasTrans, m, n, -1.0, q, n, h, 1, 1.0, w, 1);
}

// One classical Gram-Schmidt pass over the m stored rows (ns_curv_cgs_pass); adds the
// coefficients to acc (may be NULL) and returns ||w||.
static double cgs_pass(krylov *K, double *w, double *acc) {
    int n = (int)K->n;
    ns_curv_cgs_pass(K->q, K->m, n, w, K->h);
    if (acc) cblas_daxpy(K->m, 1.0, K->h, 1, acc, 1);
    return cblas_dnrm2(n, w, 1);
}

// w = H q_j (j = m-1) on entry; on return w is orthogonal to the basis, column j of G is
// filled, and ||w|| = beta_j is returned (see the top of this file for the passes).
static double orthogonalize_step(krylov *K, double *w) {
    int j = K->m - 1, n = (int)K->n;
    double *col = gij(K, 0, j);
    memset(col, 0, (size_t)K->m * sizeof(double));
    for (int i = j > 0 ? j - 1 : 0; i <= j; i++) {
        const double *qi = K->q + (size_t)i * n;
        double c = cblas_ddot(n, qi, 1, w, 1);
        cblas_daxpy(n, -c, qi, 1, w, 1);
        col[i] += c;
    }
    double nrm = cblas_dnrm2(n, w, 1);
    for (int pass = 0; pass < 2; pass++) {
        double after = cgs_pass(K, w, col);
        int again = after < M_SQRT1_2 * nrm;
        nrm = after;
        if (!again) break;
    }
    return nrm;
}

// Eigenpairs (ascending) of the symmetric block G[lo..hi) into val and the d x d vec.
static int eig_block(const krylov *K, int lo, int hi, double *val, double *vec) {
    int d = hi - lo;
    for (int c = 0; c < d; c++)
        for (int r = 0; r <= c; r++) vec[r + (size_t)c * d] = *gij(K, lo + r, lo + c);
    lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'V', 'U', d, vec, d, val);
    if (info != 0)
        return ns_fail(NS_ESOLVER, "Lanczos: LAPACK dsyev failed on the %dx%d projected matrix (info %d).", d, d,
                       (int)info);
    return NS_OK;
}

// Ritz values, vectors and residual bounds over the whole basis; beta_last = beta_{m-1}.
static int ritz(krylov *K, double beta_last) {
    int m = K->m, rc = eig_block(K, 0, m, K->theta, K->z);
    if (rc) return rc;
    for (int a = 0; a < K->nends; a++) {
        int e = K->ends[a];
        double s = K->beta[e] * K->beta[e];
        for (int l = e + 1; l < m; l++) s -= *gij(K, e, l) * *gij(K, e, l);
        K->rho[a] = sqrt(fmax(s, 0));
    }
    for (int i = 0; i < m; i++) {
        const double *s = K->z + (size_t)i * m;
        double r = fabs(beta_last * s[m - 1]);
        for (int a = 0; a < K->nends; a++) r += K->rho[a] * fabs(s[K->ends[a]]);
        K->resid[i] = r;
    }
    return NS_OK;
}

static int within(double resid, double bound) { return resid == 0 || resid <= bound; }

static double scale_S(const krylov *K) { return fmax(fabs(K->theta[0]), fabs(K->theta[K->m - 1])); }

// The accuracy asked of a top-k value theta: tol |theta|, but no finer than tol^1.5 S, so
// that zero eigenvalues (rank-deficient Hessians), which rounded HVPs resolve only to an
// absolute error, can converge too.
static double top_bound(const krylov *K, double theta, double tol) {
    return tol * fmax(fabs(theta), sqrt(tol) * scale_S(K));
}

// The stopping rule over the whole basis (see the top of this file).
static int basis_converged(const krylov *K, int k, double tol, int min_full) {
    int m = K->m;
    if (m < k) return 0;
    for (int i = m - 1; i >= m - k; i--)
        if (!within(K->resid[i], top_bound(K, K->theta[i], tol))) return 0;
    double S = scale_S(K), r = K->resid[0];
    return within(r, tol * S) || (!min_full && fabs(K->theta[0]) + r <= S);
}

// The current (later) sequence's own extreme Ritz values have settled: the top of the
// deflated operator when the top k are verified (k >= 2), its bottom when lambda_min is.
static int sequence_converged(krylov *K, double beta_last, int k, double tol, int min_full) {
    int d = K->m - K->start;
    if (eig_block(K, K->start, K->m, K->own_theta, K->own_z)) return 0;
    const double *last = K->own_z + (d - 1);  // row d-1 of the eigenvector matrix, stride d
    double top = fabs(beta_last * last[(size_t)(d - 1) * d]), bottom = fabs(beta_last * last[0]);
    double tau = fmax(fabs(K->theta[K->m - k]), fabs(K->own_theta[d - 1]));
    if (k >= 2 && !within(top, top_bound(K, tau, tol))) return 0;
    return !min_full || within(bottom, tol * scale_S(K));
}

// The reported values: the top k, and lambda_min when it is asked in full.
static void values(const krylov *K, int k, int min_full, double *out) {
    for (int i = 0; i < k; i++) out[i] = K->theta[K->m - 1 - i];
    if (min_full) out[k] = K->theta[0];
}

// Whether any reported value moved beyond what is known of it since `ref`.
static int values_moved(const krylov *K, int k, int min_full, double tol, const double *ref) {
    for (int i = 0; i < k; i++) {
        int t = K->m - 1 - i;
        if (fabs(K->theta[t] - ref[i]) > fmax(top_bound(K, K->theta[t], tol), K->resid[t])) return 1;
    }
    return min_full && fabs(K->theta[0] - ref[k]) > fmax(tol * scale_S(K), K->resid[0]);
}

static int fill_result(const krylov *K, int k, double tol, int converged, ns_eig_result *r) {
    int m = K->m, n = (int)K->n;
    r->k = k;
    r->top = ns_malloc((size_t)k * sizeof(double));
    r->top_resid = ns_malloc((size_t)k * sizeof(double));
    r->vec_max = ns_malloc(K->n * sizeof(double));
    if (!r->top || !r->top_resid || !r->vec_max) return NS_ENOMEM;
    for (int i = 0; i < k; i++) {
        r->top[i] = K->theta[m - 1 - i];
        r->top_resid[i] = K->resid[m - 1 - i];
    }
    r->lambda_max = K->theta[m - 1];
    r->lambda_min = K->theta[0];
    r->sharpness = fmax(fabs(r->lambda_max), fabs(r->lambda_min));
    r->resid_max = r->top_resid[0];
    r->resid_min = K->resid[0];
    // vec_max = Q^T s_max, renormalized against rounding
    const double *s = K->z + (size_t)(m - 1) * m;
    cblas_dgemv(CblasRowMajor, CblasTrans, m, n, 1.0, K->q, n, s, 1, 0.0, r->vec_max, 1);
    double nrm = cblas_dnrm2(n, r->vec_max, 1);
    if (nrm > 0) cblas_dscal(n, 1.0 / nrm, r->vec_max, 1);
    r->converged = converged;
    r->min_converged = within(r->resid_min, tol * r->sharpness);
    return NS_OK;
}

// A seeded random unit vector orthogonal to the basis, written as row m. Returns 0 if the
// basis already spans everything reachable (the vector vanishes).
static int restart_vector(krylov *K, ns_rng *rng) {
    int n = (int)K->n;
    double *w = K->q + (size_t)K->m * n;
    for (int attempt = 0; attempt < 3; attempt++) {
        for (int i = 0; i < n; i++) w[i] = ns_rng_normal(rng);
        double before = cblas_dnrm2(n, w, 1);
        cgs_pass(K, w, NULL);
        double after = cgs_pass(K, w, NULL);
        if (after > 1e-8 * before) {
            cblas_dscal(n, 1.0 / after, w, 1);
            return 1;
        }
    }
    return 0;
}

// Whether the Ritz values are due for a check with m basis vectors, d of them in the
// current sequence: every step while the basis is small, then every few steps so the
// O(m^3) eigensolve stays negligible next to the HVPs.
static int check_due(int m, int d) { return m <= 40 || d % (1 + m / 40) == 0; }

typedef enum { GO_ON, RESTART, STOP } lanczos_next;

int ns_lanczos(ns_matvec_fn f, void *ctx, size_t n, const ns_lanczos_opts *o, ns_eig_result *r) {
    memset(r, 0, sizeof *r);
    r->lambda_max = r->lambda_min = r->sharpness = NAN;
    int rc = ns_curv_check(n, o, "Lanczos");
    if (rc) return rc;
    int limit = o->max_iter < (long)n ? o->max_iter : (int)n;
    int k = o->k < limit ? o->k : limit;
    int min_full = o->lambda_min_full != 0;
    int verify = k >= 2 || min_full;  // multiplicity can change a reported value

    krylov K;
    double *w = ns_malloc(n * sizeof(double)), *ref = ns_malloc((size_t)(k + 1) * sizeof(double));
    rc = krylov_alloc(&K, n, limit);
    if (!rc && (!w || !ref)) rc = NS_ENOMEM;
    if (!rc) rc = krylov_reserve(&K);
    if (rc) goto done;
    int random = !ns_curv_start(K.q, n, o);  // the current sequence began at a random vector
    K.m = 1;
    ns_rng rng;  // for the restarts
    ns_rng_seed(&rng, o->seed ^ 0x5bd1e995u, NS_STREAM_LANCZOS);
    double anorm = 0;  // Gershgorin bound on ||G||, the scale for "beta ~ 0"
    int have_ref = 0, converged = 0;
    for (;;) {
        int j = K.m - 1;
        if ((rc = ns_curv_apply(f, ctx, K.q + (size_t)j * n, w, n, "Lanczos", &r->iters))) goto done;
        double beta = orthogonalize_step(&K, w);
        anorm = fmax(anorm, fabs(*gij(&K, j, j)) + beta + (j ? fabs(*gij(&K, j - 1, j)) : 0));
        int breakdown = beta <= 1e-12 * anorm;
        if (breakdown) beta = 0;  // span(Q) is invariant
        K.beta[j] = beta;
        lanczos_next next = GO_ON;
        if (breakdown || K.m == limit || check_due(K.m, K.m - K.start)) {
            if ((rc = ritz(&K, beta))) goto done;
            int ok = basis_converged(&K, k, o->tol, min_full);
            int settled = breakdown ? random
                                    : ok && (K.start == 0 || sequence_converged(&K, beta, k, o->tol, min_full));
            if (settled && ok && (!verify || (have_ref && !values_moved(&K, k, min_full, o->tol, ref)))) {
                converged = 1;
                next = STOP;
            } else if (K.m == (int)n || K.m == limit) {
                converged = K.m == (int)n && ok;  // a basis of the whole space is exact
                next = STOP;
            } else if (settled || breakdown) {
                if (settled && ok) {
                    values(&K, k, min_full, ref);
                    have_ref = 1;
                }
                next = RESTART;
            }
        }
        if (next == STOP) break;
        if ((rc = krylov_reserve(&K))) goto done;
        if (next == RESTART) {
            K.ends[K.nends++] = j;
            if (!restart_vector(&K, &rng)) {  // nothing left outside the basis
                K.nends--;
                converged = basis_converged(&K, k, o->tol, min_full);
                break;
            }
            K.start = K.m;
            random = 1;
        } else {
            double *qn = K.q + (size_t)K.m * n;
            for (size_t i = 0; i < n; i++) qn[i] = w[i] / beta;
        }
        K.m++;
    }
    if (K.m < k) k = K.m;
    rc = fill_result(&K, k, o->tol, converged, r);
done:
    if (rc) ns_eig_result_free(r);
    krylov_free(&K);
    free(w);
    free(ref);
    return rc;
}
