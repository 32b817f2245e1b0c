// Curvature estimators against LAPACK on dense symmetric matrices, and (double build) on
// the exact Hessian of a small network.
#include "testutil.h"
#include <cblas.h>
#include <lapacke.h>
#include "normsharp/curvature.h"
#include "normsharp/measure.h"
#include "normsharp/model.h"
#include "normsharp/rng.h"

// ---- a dense symmetric operator --------------------------------------------------------
typedef struct {
    int n;
    double *a;       // n x n, symmetric
    double *eig;     // LAPACK eigenvalues, ascending
    int calls;
    int fail_at;     // matvec returns an error at this call (0 = never)
    int nan_at;      // matvec returns a NaN at this call (0 = never)
} dense;

static int dense_matvec(void *ctx, const double *v, double *out, size_t n) {
    dense *d = ctx;
    d->calls++;
    if (d->fail_at && d->calls == d->fail_at) return ns_fail(NS_EIO, "test matvec failed on purpose");
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)n, 1.0, d->a, (int)n, v, 1, 0.0, out, 1);
    if (d->nan_at && d->calls == d->nan_at) out[0] = NAN;
    return 0;
}

// Eigenvalues by LAPACK dsyev (the reference), ascending.
static void dense_reference(dense *d) {
    int n = d->n;
    double *copy = malloc((size_t)n * n * sizeof(double));
    d->eig = malloc((size_t)n * sizeof(double));
    memcpy(copy, d->a, (size_t)n * n * sizeof(double));
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, copy, n, d->eig), 0);
    free(copy);
}

// A = U diag(lambda) U^T with U a seeded random orthogonal matrix (QR of a Gaussian one).
static dense dense_with_spectrum(int n, const double *lambda, uint64_t seed) {
    dense d = {.n = n};
    ns_rng rng;
    ns_rng_seed(&rng, seed, 99);
    double *u = malloc((size_t)n * n * sizeof(double)), *tau = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n * n; i++) u[i] = ns_rng_normal(&rng);
    assert_int_equal(LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, n, n, u, n, tau), 0);
    assert_int_equal(LAPACKE_dorgqr(LAPACK_ROW_MAJOR, n, n, n, u, n, tau), 0);
    d.a = calloc((size_t)n * n, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double s = 0;
            for (int l = 0; l < n; l++) s += u[i * n + l] * lambda[l] * u[j * n + l];
            d.a[i * n + j] = d.a[j * n + i] = s;
        }
    free(u);
    free(tau);
    dense_reference(&d);
    return d;
}

// A GOE-like matrix: symmetric with iid N(0,1) entries; indefinite, semicircle spectrum.
static dense dense_gaussian(int n, uint64_t seed) {
    dense d = {.n = n};
    ns_rng rng;
    ns_rng_seed(&rng, seed, 98);
    d.a = malloc((size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) d.a[i * n + j] = d.a[j * n + i] = ns_rng_normal(&rng);
    dense_reference(&d);
    return d;
}

static void dense_free(dense *d) {
    free(d->a);
    free(d->eig);
}

// ||A x - theta x|| computed directly.
static double true_resid(const dense *d, const double *x, double theta) {
    int n = d->n;
    double *ax = malloc((size_t)n * sizeof(double)), s = 0;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, n, n, 1.0, d->a, n, x, 1, 0.0, ax, 1);
    for (int i = 0; i < n; i++) s += (ax[i] - theta * x[i]) * (ax[i] - theta * x[i]);
    free(ax);
    return sqrt(s);
}

// Lanczos agrees with LAPACK at both ends and on the top k, to relative `tol_eig`.
static void check_lanczos(dense *d, int k, double tol, int max_iter, double tol_eig, ns_eig_result *r) {
    int n = d->n;
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = k;
    o.tol = tol;
    o.max_iter = max_iter;
    o.seed = 7;
    assert_int_equal(ns_lanczos(dense_matvec, d, (size_t)n, &o, r), 0);
    assert_true(r->converged);
    assert_int_equal(r->k, k);
    double smax = fmax(fabs(d->eig[0]), fabs(d->eig[n - 1]));
    for (int i = 0; i < k; i++) {  // relative, and for zero eigenvalues to 1e-6 of the scale
        double e = d->eig[n - 1 - i];
        if (!(fabs(r->top[i] - e) <= tol_eig * fmax(fabs(e), 1e-6 * smax)))
            fail_msg("top %d: %.15g, LAPACK %.15g", i + 1, r->top[i], e);
    }
    TU_ASSERT_REL(r->lambda_max, d->eig[n - 1], tol_eig);
    // lambda_min can be near 0; its accuracy is relative to the spectral scale
    assert_true(fabs(r->lambda_min - d->eig[0]) <= tol_eig * smax);
    TU_ASSERT_REL(r->sharpness, smax, tol_eig);
    // the reported residual bounds the true residual of the returned Ritz vector (and is
    // it, up to rounding, when one Krylov sequence sufficed)
    double tr = true_resid(d, r->vec_max, r->lambda_max);
    if (!(tr <= r->resid_max + 1e-9 * smax)) fail_msg("true residual %g above the reported %g", tr, r->resid_max);
}

// A seeded spectrum: the given leading values, then n - nlead values evenly in [lo, hi].
static double *spectrum(int n, const double *lead, int nlead, double lo, double hi) {
    double *lam = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) lam[i] = i < nlead ? lead[i] : lo + (hi - lo) * (i - nlead) / (n - nlead - 1);
    return lam;
}

static void lanczos_matches_lapack_on_indefinite_gaussian_matrix(void **state) {
    (void)state;
    dense d = dense_gaussian(200, 1);
    ns_eig_result r;
    check_lanczos(&d, 3, 1e-10, 200, 1e-8, &r);
    assert_true(d.eig[0] < 0 && d.eig[d.n - 1] > 0);
    assert_int_equal(r.iters, d.calls);
    ns_eig_result_free(&r);
    dense_free(&d);
}

static void lanczos_resolves_clustered_top_eigenvalues(void **state) {
    (void)state;
    int n = 150;
    double *lam = malloc((size_t)n * sizeof(double));
    lam[0] = 10.0;
    lam[1] = 10.0 - 1e-3;
    lam[2] = 10.0 - 2e-3;
    for (int i = 3; i < n; i++) lam[i] = -3.0 + 12.0 * (i - 3) / (n - 4);  // [-3, 9]
    dense d = dense_with_spectrum(n, lam, 2);
    ns_eig_result r;
    check_lanczos(&d, 3, 1e-10, 150, 1e-8, &r);
    ns_eig_result_free(&r);
    free(lam);
    dense_free(&d);
}

static void lanczos_sharpness_is_max_abs_when_the_negative_end_dominates(void **state) {
    (void)state;
    int n = 120;
    double *lam = malloc((size_t)n * sizeof(double));
    lam[0] = -20.0;
    for (int i = 1; i < n; i++) lam[i] = -5.0 + 13.0 * (i - 1) / (n - 2);  // [-5, 8]
    dense d = dense_with_spectrum(n, lam, 3);
    ns_eig_result r;
    check_lanczos(&d, 2, 1e-10, 120, 1e-8, &r);
    TU_ASSERT_REL(r.sharpness, 20.0, 1e-8);
    TU_ASSERT_REL(r.lambda_max, 8.0, 1e-8);
    ns_eig_result_free(&r);
    free(lam);
    dense_free(&d);
}

static void lanczos_handles_low_rank_psd_matrix_with_invariant_subspace(void **state) {
    (void)state;
    int n = 100;
    double *lam = calloc((size_t)n, sizeof(double));
    for (int i = 0; i < 4; i++) lam[i] = 1.0 + i;  // rank 4: eigenvalues 4,3,2,1,0,...,0
    dense d = dense_with_spectrum(n, lam, 4);
    ns_eig_result r;
    check_lanczos(&d, 3, 1e-10, 100, 1e-8, &r);
    assert_true(r.iters < 20);  // the Krylov space has dimension 5
    ns_eig_result_free(&r);
    free(lam);
    dense_free(&d);
}

static void lanczos_warm_started_on_an_exact_eigenvector_still_finds_both_ends(void **state) {
    (void)state;
    int n = 50;
    dense d = {.n = n, .a = calloc((size_t)n * n, sizeof(double))};
    for (int i = 0; i < n; i++) d.a[i * n + i] = 5.0 - 0.2 * i;  // 5 .. -4.8
    dense_reference(&d);
    double *warm = calloc((size_t)n, sizeof(double));
    warm[0] = 3.0;  // exactly the top eigenvector: the first step breaks down
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = 2;
    o.tol = 1e-10;
    o.max_iter = n;
    o.warm = warm;
    o.lambda_min_full = 1;
    ns_eig_result r;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &r), 0);
    assert_true(r.converged);
    TU_ASSERT_REL(r.lambda_max, 5.0, 1e-12);
    TU_ASSERT_REL(r.top[1], 4.8, 1e-8);
    TU_ASSERT_REL(r.lambda_min, -4.8, 1e-8);
    ns_eig_result_free(&r);
    free(warm);
    dense_free(&d);
}

static void lanczos_warm_start_reduces_iterations(void **state) {
    (void)state;
    // A matrix whose top is hard (clustered), then a small perturbation of it: warm
    // starting from the old top eigenvector must take fewer HVPs than a cold start.
    int n = 200;
    double *lam = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) lam[i] = 10.0 * pow(0.97, i);  // a slowly decaying top
    lam[n - 1] = -3.0;                                           // an isolated bottom
    dense d = dense_with_spectrum(n, lam, 5);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = 1;
    o.tol = 1e-8;
    o.max_iter = n;
    ns_eig_result cold, warm;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &cold), 0);
    assert_true(cold.converged);
    // perturb: A += 1e-4 * (a seeded symmetric matrix)
    ns_rng rng;
    ns_rng_seed(&rng, 11, 97);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double e = 1e-4 * ns_rng_normal(&rng);
            d.a[i * n + j] += e;
            if (i != j) d.a[j * n + i] += e;
        }
    ns_eig_result cold2;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &cold2), 0);
    o.warm = cold.vec_max;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &warm), 0);
    assert_true(warm.converged && cold2.converged);
    TU_ASSERT_REL(warm.lambda_max, cold2.lambda_max, 1e-10);
    print_message("cold start %d HVPs, warm start %d\n", cold2.iters, warm.iters);
    if (!(warm.iters < cold2.iters)) fail_msg("warm start took %d HVPs, cold start %d", warm.iters, cold2.iters);
    ns_eig_result_free(&cold);
    ns_eig_result_free(&cold2);
    ns_eig_result_free(&warm);
    free(lam);
    dense_free(&d);
}

static void lanczos_is_deterministic_for_a_seed(void **state) {
    (void)state;
    dense d = dense_gaussian(60, 6);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = 2;
    o.seed = 42;
    ns_eig_result a, b;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 60, &o, &a), 0);
    assert_int_equal(ns_lanczos(dense_matvec, &d, 60, &o, &b), 0);
    assert_int_equal(a.iters, b.iters);
    assert_memory_equal(a.top, b.top, 2 * sizeof(double));
    assert_memory_equal(a.vec_max, b.vec_max, 60 * sizeof(double));
    ns_eig_result_free(&a);
    ns_eig_result_free(&b);
    dense_free(&d);
}

static void lanczos_on_tiny_operators_is_exact(void **state) {
    (void)state;
    double a1[1] = {-3.5};
    dense d1 = {.n = 1, .a = a1};
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = 4;  // more than the dimension: clamped
    ns_eig_result r;
    assert_int_equal(ns_lanczos(dense_matvec, &d1, 1, &o, &r), 0);
    assert_int_equal(r.k, 1);
    assert_true(r.lambda_max == -3.5 && r.lambda_min == -3.5 && r.sharpness == 3.5 && r.converged);
    ns_eig_result_free(&r);
    double z[9] = {0};
    dense d0 = {.n = 3, .a = z};
    assert_int_equal(ns_lanczos(dense_matvec, &d0, 3, &o, &r), 0);  // the zero operator
    assert_true(r.sharpness == 0 && r.converged && r.k == 3);
    ns_eig_result_free(&r);
}

static void lanczos_reports_bad_options_and_operator_failures(void **state) {
    (void)state;
    dense d = dense_gaussian(20, 8);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    ns_eig_result r;
    o.k = 0;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 20, &o, &r), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "k must be"));
    o.k = 1;
    o.tol = -1;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 20, &o, &r), NS_EINVAL);
    o.tol = 1e-6;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 0, &o, &r), NS_EINVAL);
    d.fail_at = 3;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 20, &o, &r), NS_EIO);
    assert_null(r.top);
    d.calls = 0;
    d.fail_at = 0;
    d.nan_at = 2;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 20, &o, &r), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "non-finite"));
    d.calls = 0;
    assert_int_equal(ns_power_iteration(dense_matvec, &d, 20, &o, &r), NS_EINVAL);
    ns_eig_result_free(&r);
    dense_free(&d);
}

static void lanczos_not_converged_within_max_iter_is_flagged(void **state) {
    (void)state;
    dense d = dense_gaussian(200, 9);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.max_iter = 5;
    o.tol = 1e-10;
    ns_eig_result r;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 200, &o, &r), 0);
    assert_int_equal(r.iters, 5);
    assert_false(r.converged);
    ns_eig_result_free(&r);
    dense_free(&d);
}

// ---- multiplicity and clusters (each distinct eigenvalue is seen once by one Krylov
// sequence; the top k are counted with multiplicity, and both ends must be the extremes)

// Lanczos (tol 1e-6, up to n HVPs) on U diag(spectrum(n, lead, lo, hi)) U^T matches LAPACK
// (check_lanczos) and did not need to span the whole space.
static void check_spectrum(int n, const double *lead, int nlead, double lo, double hi, uint64_t seed, int k) {
    double *lam = spectrum(n, lead, nlead, lo, hi);
    dense d = dense_with_spectrum(n, lam, seed);
    ns_eig_result r;
    check_lanczos(&d, k, 1e-6, n, 1e-6, &r);
    if (!(r.iters < n)) fail_msg("%d HVPs for dimension %d", r.iters, n);
    ns_eig_result_free(&r);
    free(lam);
    dense_free(&d);
}

// Each spectrum twice: with a bulk (where rounding errors can, slowly, seed the missing
// copies) and with the rest zero (few distinct values: one sequence breaks down at once).
static void lanczos_counts_a_repeated_top_eigenvalue_with_multiplicity(void **state) {
    (void)state;
    double lead[] = {10, 10, 10, 7, 7};
    check_spectrum(300, lead, 5, -3, 5, 21, 6);  // 10, 10, 10, 7, 7, 5
    check_spectrum(300, lead, 5, 0, 0, 21, 6);   // 10, 10, 10, 7, 7, 0
}

static void lanczos_lists_k_copies_when_k_exceeds_no_multiplicity_of_the_identity(void **state) {
    (void)state;
    int n = 40;
    dense d = {.n = n, .a = calloc((size_t)n * n, sizeof(double))};
    for (int i = 0; i < n; i++) d.a[i * n + i] = 1;
    dense_reference(&d);
    ns_eig_result r;
    check_lanczos(&d, 4, 1e-10, n, 1e-12, &r);
    assert_true(r.iters <= 6);  // one HVP per copy, and one that finds nothing new
    ns_eig_result_free(&r);
    dense_free(&d);
}

static void lanczos_finds_both_copies_of_plus_minus_pairs_at_a_saddle(void **state) {
    (void)state;
    double lead[] = {6, 6, -6, -6};
    check_spectrum(200, lead, 4, -1, 1, 22, 3);  // 6, 6, 1; lambda_min -6, S 6
    check_spectrum(200, lead, 4, 0, 0, 22, 3);   // 6, 6, 0
}

static void lanczos_with_k_above_the_multiplicity_continues_past_the_copies(void **state) {
    (void)state;
    double lead[] = {9, 9, 8.5, 8.5, 8.5};
    check_spectrum(250, lead, 5, -2, 8, 23, 7);  // 9, 9, 8.5, 8.5, 8.5, 8, ~7.96
}

// Clusters at both ends, and a smallest eigenvalue that the start vector hardly contains
// (a warm start from the top eigenvector, as along training): one Krylov sequence settles
// on the second-smallest with a small residual. Asked for lambda_min in full, Lanczos must
// find the true one.
static void lanczos_finds_the_extremes_of_clusters_at_both_ends(void **state) {
    (void)state;
    int n = 300;
    double lead[] = {10, 9.999, 9.998, -3, -2.9, -2.899};
    double *lam = spectrum(n, lead, 6, -1, 8);
    dense d = {.n = n, .a = calloc((size_t)n * n, sizeof(double))};
    for (int i = 0; i < n; i++) d.a[i * n + i] = lam[i];
    dense_reference(&d);
    double *warm = malloc((size_t)n * sizeof(double));
    ns_rng rng;
    ns_rng_seed(&rng, 24, 95);
    for (int i = 0; i < n; i++) warm[i] = 1e-3 * ns_rng_normal(&rng);
    warm[0] = 1;
    warm[3] = 1e-13;  // the eigenvector of -3
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = 3;
    o.tol = 1e-10;
    o.max_iter = 250;
    o.warm = warm;
    o.lambda_min_full = 1;
    ns_eig_result r;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &r), 0);
    assert_true(r.converged && r.min_converged);
    for (int i = 0; i < 3; i++) TU_ASSERT_REL(r.top[i], d.eig[n - 1 - i], 1e-8);
    if (!(fabs(r.lambda_min - d.eig[0]) <= 1e-8 * 10)) fail_msg("lambda_min %.10g, LAPACK %.10g", r.lambda_min, d.eig[0]);
    ns_eig_result_free(&r);
    free(warm);
    free(lam);
    dense_free(&d);
}

// For S alone the far end needs only to be shown not to compete: fewer HVPs than
// converging it, the same S, and the flags say which values are converged.
static void lanczos_certifies_sharpness_without_converging_the_far_end(void **state) {
    (void)state;
    int n = 400;
    double lead[] = {24, 21.9, 18.7, -5.46};
    double *lam = spectrum(n, lead, 4, -5.4, 6);  // a dense bulk right up to the far end
    dense d = dense_with_spectrum(n, lam, 25);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.tol = 1e-6;
    o.max_iter = n;
    ns_eig_result s, full;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &s), 0);
    o.lambda_min_full = 1;
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &full), 0);
    assert_true(s.converged && full.converged && full.min_converged);
    TU_ASSERT_REL(s.sharpness, d.eig[n - 1], 1e-9);
    TU_ASSERT_REL(s.lambda_max, d.eig[n - 1], 1e-9);
    assert_true(fabs(full.lambda_min - d.eig[0]) <= 1e-6 * 24);
    assert_true(s.resid_min <= 24 - fabs(s.lambda_min));  // the far end cannot be S
    print_message("S only: %d HVPs (lambda_min %s); lambda_min in full: %d\n", s.iters,
                  s.min_converged ? "converged" : "bounded", full.iters);
    if (!(s.iters < full.iters)) fail_msg("S alone took %d HVPs, with lambda_min %d", s.iters, full.iters);
    ns_eig_result_free(&s);
    ns_eig_result_free(&full);
    free(lam);
    dense_free(&d);
}

// Converged means verified: a budget that ends before the copies are checked is reported.
static void lanczos_without_budget_to_verify_multiplicity_is_not_converged(void **state) {
    (void)state;
    double lead[] = {10, 10, 10};
    double *lam = spectrum(200, lead, 3, -3, 5);
    dense d = dense_with_spectrum(200, lam, 26);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.k = 3;
    o.tol = 1e-8;
    o.max_iter = 200;
    ns_eig_result r;
    assert_int_equal(ns_lanczos(dense_matvec, &d, 200, &o, &r), 0);
    assert_true(r.converged);
    int need = r.iters;
    ns_eig_result_free(&r);
    for (o.max_iter = need / 3; o.max_iter < need; o.max_iter += need / 3) {
        assert_int_equal(ns_lanczos(dense_matvec, &d, 200, &o, &r), 0);
        if (r.converged) fail_msg("converged with %d HVPs where %d were needed", r.iters, need);
        ns_eig_result_free(&r);
    }
    free(lam);
    dense_free(&d);
}

// ---- power iteration ---------------------------------------------------------------
static void power_iteration_agrees_with_lanczos_on_dominant_eigenvalue(void **state) {
    (void)state;
    int n = 80;
    double *lam = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) lam[i] = (i == 0) ? 12.0 : -4.0 + 10.0 * i / n;  // [-4, 6) and 12
    dense d = dense_with_spectrum(n, lam, 10);
    ns_lanczos_opts o;
    ns_lanczos_opts_default(&o);
    o.tol = 1e-10;
    o.max_iter = 1000;
    ns_eig_result p, l;
    assert_int_equal(ns_power_iteration(dense_matvec, &d, (size_t)n, &o, &p), 0);
    assert_int_equal(ns_lanczos(dense_matvec, &d, (size_t)n, &o, &l), 0);
    assert_true(p.converged && l.converged);
    TU_ASSERT_REL(p.sharpness, l.sharpness, 1e-9);
    TU_ASSERT_REL(p.lambda_max, 12.0, 1e-9);
    assert_true(fabs(cblas_ddot(n, p.vec_max, 1, l.vec_max, 1)) > 1 - 1e-8);
    ns_eig_result_free(&p);
    ns_eig_result_free(&l);
    // a negative dominant eigenvalue: power reports it as lambda_min, lambda_max unknown
    for (int i = 0; i < n * n; i++) d.a[i] = -d.a[i];
    assert_int_equal(ns_power_iteration(dense_matvec, &d, (size_t)n, &o, &p), 0);
    TU_ASSERT_REL(p.lambda_min, -12.0, 1e-9);
    TU_ASSERT_REL(p.sharpness, 12.0, 1e-9);
    assert_true(isnan(p.lambda_max) && p.k == 0);
    ns_eig_result_free(&p);
    free(lam);
    dense_free(&d);
}

// ---- Hutchinson --------------------------------------------------------------------
static void hutchinson_is_exact_on_a_diagonal_matrix(void **state) {
    (void)state;
    int n = 30;
    dense d = {.n = n, .a = calloc((size_t)n * n, sizeof(double))};
    double tr = 0;
    for (int i = 0; i < n; i++) tr += d.a[i * n + i] = sin(i + 1.0) * 3;
    double t, se;
    assert_int_equal(ns_hutchinson_trace(dense_matvec, &d, (size_t)n, 5, 3, &t, &se), 0);
    TU_ASSERT_REL(t, tr, 1e-12);  // z^T D z = sum D_ii z_i^2 = tr D for z_i = +-1
    assert_true(se < 1e-12);
    free(d.a);
}

static void hutchinson_is_unbiased_and_its_stderr_is_right_on_a_dense_matrix(void **state) {
    (void)state;
    int n = 40;
    dense d = dense_gaussian(n, 12);
    double tr = 0, off = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) tr += d.a[i * n + i];
            else off += d.a[i * n + j] * d.a[i * n + j];
        }
    double sd = sqrt(2 * off);  // standard deviation of one probe
    double t, se;
    assert_int_equal(ns_hutchinson_trace(dense_matvec, &d, (size_t)n, 50, 1, &t, &se), 0);
    if (!(fabs(t - tr) <= 4 * se)) fail_msg("estimate %g, trace %g, stderr %g", t, tr, se);
    assert_true(se > 0.6 * sd / sqrt(50) && se < 1.4 * sd / sqrt(50));
    // many probes: the error shrinks like 1/sqrt(P)
    assert_int_equal(ns_hutchinson_trace(dense_matvec, &d, (size_t)n, 20000, 2, &t, &se), 0);
    assert_true(fabs(t - tr) <= 4 * sd / sqrt(20000.0));
    assert_true(fabs(t - tr) <= 4 * se);
    double t1, se1;
    assert_int_equal(ns_hutchinson_trace(dense_matvec, &d, (size_t)n, 1, 2, &t1, &se1), 0);
    assert_true(isnan(se1));  // one probe has no spread estimate
    assert_int_equal(ns_hutchinson_trace(dense_matvec, &d, (size_t)n, 0, 2, &t1, &se1), NS_EINVAL);
    dense_free(&d);
}

// ---- the exact Hessian of a small network ----------------------------------------------
typedef struct {
    ns_model *m;
    real *x, *t;
    int *y;
    ns_batch b;
} small_net;

// `arch` on `npts` random points with `features` inputs and 3 classes, theta moved from
// theta_0 by N(0, perturb^2) per parameter.
static small_net small_net_of(const char *arch, int features, long npts, double perturb, ns_loss_kind loss,
                              uint64_t seed) {
    small_net s = {0};
    ns_model_config cfg = {.init_scale = 1.0, .seed = seed, .c = 1, .h = 1, .w = features, .k = 3};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "standard");
    if (ns_model_create(&cfg, &s.m)) fail_msg("ns_model_create: %s", ns_errmsg());
    long n = npts;
    s.x = malloc((size_t)n * features * sizeof(real));
    s.t = calloc((size_t)n * 3, sizeof(real));
    s.y = malloc((size_t)n * sizeof(int));
    ns_rng rng;
    ns_rng_seed(&rng, seed, 96);
    for (long i = 0; i < n * features; i++) s.x[i] = (real)ns_rng_normal(&rng);
    for (long i = 0; i < n; i++) {
        s.y[i] = (int)ns_rng_below(&rng, 3);
        s.t[i * 3 + s.y[i]] = 1;
    }
    real *theta = ns_model_theta(s.m);
    for (size_t j = 0; j < ns_model_nparams(s.m); j++) theta[j] += (real)(perturb * ns_rng_normal(&rng));
    s.b = (ns_batch){.x = s.x, .y = s.y, .t = s.t, .n = n, .loss = loss};
    return s;
}

// fc-tanh-5 on 40 random 3-feature points with 3 classes: 38 parameters, moved away
// from theta_0 so the Hessian is indefinite.
static small_net small_net_make(ns_loss_kind loss, uint64_t seed) {
    return small_net_of("fc-tanh-5", 3, 40, 0.7, loss, seed);
}

static void small_net_free(small_net *s) {
    ns_model_free(s->m);
    free(s->x);
    free(s->t);
    free(s->y);
}

// The dense Hessian, column by column from HVPs with unit vectors, symmetrized.
static dense dense_hessian(small_net *s) {
    ns_hessian_op op;
    assert_int_equal(ns_hessian_op_init(&op, s->m, &s->b), 0);
    int n = (int)op.n;
    dense d = {.n = n, .a = malloc((size_t)n * n * sizeof(double))};
    double *e = calloc((size_t)n, sizeof(double)), *col = malloc((size_t)n * sizeof(double));
    for (int j = 0; j < n; j++) {
        e[j] = 1;
        assert_int_equal(ns_hessian_matvec(&op, e, col, (size_t)n), 0);
        for (int i = 0; i < n; i++) d.a[i * n + j] = col[i];
        e[j] = 0;
    }
    double asym = 0, norm = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            asym = fmax(asym, fabs(d.a[i * n + j] - d.a[j * n + i]));
            norm = fmax(norm, fabs(d.a[i * n + j]));
        }
    assert_true(asym <= 1e-12 * norm);  // an exact Hessian is symmetric
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) d.a[i * n + j] = d.a[j * n + i] = 0.5 * (d.a[i * n + j] + d.a[j * n + i]);
    free(e);
    free(col);
    ns_hessian_op_free(&op);
    dense_reference(&d);
    return d;
}

static void network_lanczos(small_net *s, ns_eig_result *r) {
    ns_measure_opts o;
    ns_measure_opts_default(&o);
    o.eig.k = 3;
    o.eig.tol = 1e-10;
    o.eig.max_iter = 200;
    assert_int_equal(ns_measure_eig(s->m, &s->b, &o, r), 0);
}

static void lanczos_matches_lapack_on_the_dense_hessian_of_a_tanh_mlp(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    for (int loss = 0; loss < 2; loss++) {
        small_net s = small_net_make((ns_loss_kind)loss, 5);
        assert_int_equal(ns_model_nparams(s.m), 38);
        dense d = dense_hessian(&s);
        int n = d.n;
        assert_true(d.eig[0] < 0);  // indefinite away from theta_0
        ns_eig_result r;
        network_lanczos(&s, &r);
        assert_true(r.converged);
        double smax = fmax(fabs(d.eig[0]), fabs(d.eig[n - 1]));
        for (int i = 0; i < 3; i++) TU_ASSERT_REL(r.top[i], d.eig[n - 1 - i], 1e-8);
        TU_ASSERT_REL(r.lambda_max, d.eig[n - 1], 1e-8);
        assert_true(fabs(r.lambda_min - d.eig[0]) <= 1e-8 * smax);
        TU_ASSERT_REL(r.sharpness, smax, 1e-8);
        ns_eig_result_free(&r);
        dense_free(&d);
        small_net_free(&s);
    }
}

// The linear model: with MSE the Hessian of fc-linear is I_3 (x) (1/n) X~^T X~
// (X~ = [X, 1]), so every eigenvalue appears once per class. With fewer points than
// features X~ has rank npts and one Krylov sequence breaks down after npts + 1 steps.
static void lanczos_counts_the_class_multiplicity_of_a_linear_model_hessian(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    long npts[] = {5, 60};
    for (int c = 0; c < 2; c++) {
        small_net s = small_net_of("fc-linear", 20, npts[c], 0, NS_LOSS_MSE, 8);
        assert_int_equal(ns_model_nparams(s.m), 63);
        dense d = dense_hessian(&s);
        int n = d.n;
        TU_ASSERT_REL(d.eig[n - 3], d.eig[n - 1], 1e-10);  // the top eigenvalue, three times
        ns_measure_opts o;
        ns_measure_opts_default(&o);
        o.eig.k = 4;
        o.eig.tol = 1e-10;
        ns_eig_result r;
        assert_int_equal(ns_measure_eig(s.m, &s.b, &o, &r), 0);
        assert_true(r.converged);
        for (int i = 0; i < 4; i++) TU_ASSERT_REL(r.top[i], d.eig[n - 1 - i], 1e-8);
        assert_true(fabs(r.lambda_min - d.eig[0]) <= 1e-8 * d.eig[n - 1]);
        ns_eig_result_free(&r);
        dense_free(&d);
        small_net_free(&s);
    }
}

static void measure_reports_the_final_block_with_consistent_values(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    small_net s = small_net_make(NS_LOSS_MSE, 6);
    dense d = dense_hessian(&s);
    double tr = 0;
    for (int i = 0; i < d.n; i++) tr += d.a[i * d.n + i];
    ns_measure_opts o;
    ns_measure_opts_default(&o);
    o.eig.k = 2;
    o.eig.tol = 1e-10;
    o.trace_probes = 4000;
    ns_measurement x;
    assert_int_equal(ns_measure(s.m, &s.b, &s.b, &o, &x), 0);
    assert_true(x.have_eig && x.eig.converged);
    TU_ASSERT_REL(x.eig.lambda_max, d.eig[d.n - 1], 1e-8);
    if (!(fabs(x.trace - tr) <= 4 * x.trace_stderr)) fail_msg("trace %g vs %g +- %g", x.trace, tr, x.trace_stderr);
    double loss;
    assert_int_equal(ns_model_loss(s.m, &s.b, &loss, NULL), 0);
    assert_true(x.train_loss == loss && x.test_loss == loss);
    assert_true(fabs(x.train_err + x.train_acc - 1) < 1e-15);
    double l1 = 0, l2 = 0, l1t = 0;
    const real *theta = ns_model_theta(s.m);
    for (size_t j = 0; j < ns_model_nparams(s.m); j++) l1 += fabs(theta[j]), l2 += theta[j] * theta[j];
    for (int t = 0; t < x.ntensors; t++) l1t += x.l1_tensor[t];
    TU_ASSERT_REL(x.l1, l1, 1e-14);
    TU_ASSERT_REL(x.l2, sqrt(l2), 1e-14);
    TU_ASSERT_REL(l1t, l1, 1e-14);
    // the JSON object carries the key names of docs/OUTPUTS.md's "final" block
    ns_buf b = {0};
    ns_json j;
    ns_json_begin(&j, &b);
    ns_measurement_json(&j, NULL, &x);
    ns_jval v;
    assert_int_equal(ns_json_parse(b.data, b.len, "measurement", &v), 0);
    const char *keys[] = {"train_loss", "train_acc", "train_err", "test_loss", "test_err", "l1", "l2",
                          "lambda_max", "sharpness", "lambda_min", "lambda_min_resid", "lambda_min_converged", "top_k", "top_k_resid", "trace", "trace_stderr",
                          "eig_iters", "eig_converged", "l1_per_tensor", "l2_per_tensor"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!ns_jget(&v, keys[i])) fail_msg("key %s missing", keys[i]);
    assert_true(ns_jnum(&v, "sharpness", 0) == x.eig.sharpness);
    assert_int_equal(ns_jget(&v, "top_k")->n, 2);
    assert_true(ns_jnum(ns_jget(&v, "l1_per_tensor"), "fc1.weight", -1) == x.l1_tensor[0]);
    ns_jval_free(&v);
    ns_buf_free(&b);
    ns_measurement_free(&x);
    dense_free(&d);
    small_net_free(&s);
}

static void measure_skips_the_spectrum_of_a_diverged_model(void **state) {
    (void)state;
    small_net s = small_net_make(NS_LOSS_MSE, 7);
    ns_model_theta(s.m)[0] = (real)NAN;
    ns_measure_opts o;
    ns_measure_opts_default(&o);
    o.trace_probes = 3;
    ns_measurement x;
    assert_int_equal(ns_measure(s.m, &s.b, NULL, &o, &x), 0);
    assert_false(x.have_eig);
    assert_true(isnan(x.trace) && isnan(x.test_loss));
    ns_buf b = {0};
    ns_json j;
    ns_json_begin(&j, &b);
    ns_measurement_json(&j, NULL, &x);
    assert_non_null(strstr(b.data, "\"sharpness\": null"));
    ns_buf_free(&b);
    ns_measurement_free(&x);
    small_net_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lanczos_matches_lapack_on_indefinite_gaussian_matrix),
        cmocka_unit_test(lanczos_resolves_clustered_top_eigenvalues),
        cmocka_unit_test(lanczos_sharpness_is_max_abs_when_the_negative_end_dominates),
        cmocka_unit_test(lanczos_handles_low_rank_psd_matrix_with_invariant_subspace),
        cmocka_unit_test(lanczos_warm_started_on_an_exact_eigenvector_still_finds_both_ends),
        cmocka_unit_test(lanczos_warm_start_reduces_iterations),
        cmocka_unit_test(lanczos_is_deterministic_for_a_seed),
        cmocka_unit_test(lanczos_on_tiny_operators_is_exact),
        cmocka_unit_test(lanczos_reports_bad_options_and_operator_failures),
        cmocka_unit_test(lanczos_not_converged_within_max_iter_is_flagged),
        cmocka_unit_test(lanczos_counts_a_repeated_top_eigenvalue_with_multiplicity),
        cmocka_unit_test(lanczos_lists_k_copies_when_k_exceeds_no_multiplicity_of_the_identity),
        cmocka_unit_test(lanczos_finds_both_copies_of_plus_minus_pairs_at_a_saddle),
        cmocka_unit_test(lanczos_with_k_above_the_multiplicity_continues_past_the_copies),
        cmocka_unit_test(lanczos_finds_the_extremes_of_clusters_at_both_ends),
        cmocka_unit_test(lanczos_certifies_sharpness_without_converging_the_far_end),
        cmocka_unit_test(lanczos_without_budget_to_verify_multiplicity_is_not_converged),
        cmocka_unit_test(power_iteration_agrees_with_lanczos_on_dominant_eigenvalue),
        cmocka_unit_test(hutchinson_is_exact_on_a_diagonal_matrix),
        cmocka_unit_test(hutchinson_is_unbiased_and_its_stderr_is_right_on_a_dense_matrix),
        cmocka_unit_test(lanczos_matches_lapack_on_the_dense_hessian_of_a_tanh_mlp),
        cmocka_unit_test(lanczos_counts_the_class_multiplicity_of_a_linear_model_hessian),
        cmocka_unit_test(measure_reports_the_final_block_with_consistent_values),
        cmocka_unit_test(measure_skips_the_spectrum_of_a_diverged_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
