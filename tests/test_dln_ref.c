// test_dln_ref.c — the reference interpolators: GLPK's min-l1 against brute force over
// supports, DSDP's min-sharpness against random interpolators and the n = 1 closed form,
// the generalization-optimal and hypentropy solutions against their optimality conditions.
#include <cblas.h>
#include "dln_fixtures.h"
#include <lapacke.h>

static double resid(const dln_problem *p, const double *beta) {
    double m = 0;
    for (int k = 0; k < p->n; k++) {
        double s = -p->y[k];
        for (int i = 0; i < p->d; i++) s += p->X[k * p->d + i] * beta[i];
        m = fmax(m, fabs(s));
    }
    return m;
}

// Every basic solution: supports of size n with X_S invertible, beta_S = X_S^-1 y. The LP
// optimum of min l1 (with or without beta >= 0) is attained at one of them. Calls back
// with each (feasible) vertex.
typedef void (*vertex_fn)(void *ctx, const double *beta);
static void for_each_vertex(const dln_problem *p, int nonneg, vertex_fn f, void *ctx) {
    int n = p->n, d = p->d;
    int idx[8];
    double A[64], b[8], beta[16];
    for (int i = 0; i < n; i++) idx[i] = i;
    for (;;) {
        for (int k = 0; k < n; k++) {
            for (int c = 0; c < n; c++) A[k * n + c] = p->X[k * d + idx[c]];
            b[k] = p->y[k];
        }
        lapack_int piv[8];
        if (LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, 1, A, n, piv, b, 1) == 0) {
            int ok = 1;
            memset(beta, 0, sizeof beta);
            for (int c = 0; c < n; c++) {
                beta[idx[c]] = b[c];
                if (nonneg && b[c] < -1e-14) ok = 0;
            }
            if (ok) f(ctx, beta);
        }
        int i = n - 1;  // next combination
        while (i >= 0 && idx[i] == d - n + i) i--;
        if (i < 0) break;
        idx[i]++;
        for (int j = i + 1; j < n; j++) idx[j] = idx[j - 1] + 1;
    }
}

typedef struct {
    int d;
    double best;
} l1_best;
static void keep_min_l1(void *ctx, const double *beta) {
    l1_best *b = ctx;
    double l1 = ns_dln_l1(b->d, beta);
    if (l1 < b->best) b->best = l1;
}

static void min_l1_from_glpk_equals_brute_force_over_supports(void **state) {
    (void)state;
    for (int rep = 0; rep < 6; rep++) {
        int n = 1 + rep % 3, d = 5 + rep % 4;  // d <= 8
        for (int nonneg = 0; nonneg <= 1; nonneg++) {
            dln_problem P;
            dln_problem_make(&P, n, d, 40 + rep, nonneg ? DLN_Y_NONNEG_TEACHER : DLN_Y_TEACHER);
            double beta[8];
            DLN_OK(ns_dln_min_weighted_l1(&P.t, NULL, nonneg, beta));
            assert_true(resid(&P, beta) < 1e-10);
            if (nonneg)
                for (int i = 0; i < d; i++) assert_true(beta[i] >= 0);
            l1_best b = {d, INFINITY};
            for_each_vertex(&P, nonneg, keep_min_l1, &b);
            TU_ASSERT_REL(ns_dln_l1(d, beta), b.best, 1e-10);
            dln_problem_free(&P);
        }
    }
}

static double lmax_abs(const dln_problem *p, const double *beta) {
    double w[64], v;
    for (int i = 0; i < p->d; i++) w[i] = fabs(beta[i]);
    DLN_OK(ns_dln_lambda_max_xwx(&p->t, w, &v));
    return v;
}

// The right singular vectors of X as the rows of VT (d x d): rows n..d-1 span its null space.
static void right_singular_vectors(const dln_problem *p, double *VT) {
    int n = p->n, d = p->d;
    double A[512], s[8], U[64];
    assert_true(n <= 8 && n * d <= 512);
    memcpy(A, p->X, sizeof(double) * n * d);
    assert_int_equal(LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'A', n, d, A, d, s, U, n, VT, d), 0);
}

// Random interpolators beta_ref + N z, N a null-space basis of X (from an SVD).
static void random_interpolators(const dln_problem *p, const double *base, int count, uint64_t seed,
                                 void (*f)(void *, const double *), void *ctx) {
    int n = p->n, d = p->d;
    double VT[4096], beta[64];
    right_singular_vectors(p, VT);
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_TEST);
    for (int c = 0; c < count; c++) {
        double scale = pow(10.0, ns_rng_uniform_in(&r, -2, 1));  // from local to far away
        memcpy(beta, base, sizeof(double) * d);
        for (int q = n; q < d; q++) {
            double z = scale * ns_rng_normal(&r);
            for (int i = 0; i < d; i++) beta[i] += z * VT[q * d + i];
        }
        f(ctx, beta);
    }
}

typedef struct {
    const dln_problem *p;
    double floor_value;  // the claimed minimum
    int checked;
} sharp_check;
static void not_sharper_than_min(void *ctx, const double *beta) {
    sharp_check *c = ctx;
    double v = lmax_abs(c->p, beta);
    if (v < c->floor_value * (1 - 1e-6))
        fail_msg("a random interpolator has lambda_max %.10g below the SDP minimum %.10g", v, c->floor_value);
    c->checked++;
}

static void min_sharpness_from_dsdp_is_feasible_and_beats_random_interpolators_and_min_l1(void **state) {
    (void)state;
    for (int rep = 0; rep < 3; rep++) {
        dln_problem P;
        int n = 2 + rep, d = 6 + 2 * rep;
        dln_problem_make(&P, n, d, 70 + rep, DLN_Y_TEACHER);
        double beta[16], value, l1sol[16];
        DLN_OK(ns_dln_min_sharpness(&P.t, 0, beta, &value));
        assert_true(resid(&P, beta) < 1e-8);
        TU_ASSERT_REL(value, lmax_abs(&P, beta), 1e-12);
        DLN_OK(ns_dln_min_weighted_l1(&P.t, NULL, 0, l1sol));
        assert_true(value <= lmax_abs(&P, l1sol) * (1 + 1e-7));
        sharp_check c = {&P, value, 0};
        random_interpolators(&P, beta, 1000, 7 + rep, not_sharper_than_min, &c);
        assert_int_equal(c.checked, 1000);
        dln_problem_free(&P);
    }
}

// With beta >= 0 (shared weights) random feasible points are convex combinations of vertices.
typedef struct {
    double v[64][16];
    int count, d;
} vertex_list;
static void collect_vertex(void *ctx, const double *beta) {
    vertex_list *l = ctx;
    if (l->count < 64) memcpy(l->v[l->count++], beta, sizeof(double) * l->d);
}

// A random feasible point: the vertices mixed with Dirichlet(1) weights.
static void random_mixture(const vertex_list *L, ns_rng *r, double *b) {
    double w[64], s = 0;
    for (int k = 0; k < L->count; k++) s += (w[k] = -log(1 - ns_rng_uniform(r)));
    for (int i = 0; i < L->d; i++) b[i] = 0;
    for (int k = 0; k < L->count; k++)
        for (int i = 0; i < L->d; i++) b[i] += w[k] / s * L->v[k][i];
}

static void min_sharpness_with_nonnegative_beta_beats_random_feasible_points(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 2, 7, 81, DLN_Y_NONNEG_TEACHER);
    double beta[7], value;
    DLN_OK(ns_dln_min_sharpness(&P.t, 1, beta, &value));
    assert_true(resid(&P, beta) < 1e-8);
    for (int i = 0; i < 7; i++) assert_true(beta[i] >= 0);
    vertex_list L = {.d = 7};
    for_each_vertex(&P, 1, collect_vertex, &L);
    assert_true(L.count >= 2);
    ns_rng r;
    ns_rng_seed(&r, 3, NS_STREAM_TEST);
    for (int c = 0; c < 1000; c++) {
        double b[7];
        random_mixture(&L, &r, b);
        if (lmax_abs(&P, b) < value * (1 - 1e-6)) fail_msg("feasible point sharper-minimum than the SDP's %.10g", value);
    }
    dln_problem_free(&P);
}

// When d = n + 1 the interpolators form a line beta0 + z N (a segment with beta >= 0) and
// lambda_max(X diag|beta| X^T) is convex in z: golden-section search gives the exact minimum.
static double line_value(const dln_problem *p, const double *b0, const double *N, double z) {
    double b[16];
    for (int i = 0; i < p->d; i++) b[i] = b0[i] + z * N[i];
    return lmax_abs(p, b);
}

static void min_sharpness_matches_a_line_search_when_interpolators_form_a_line(void **state) {
    (void)state;
    for (int nonneg = 0; nonneg <= 1; nonneg++)
        for (int rep = 0; rep < 3; rep++) {
            dln_problem P;
            int n = 2 + rep % 2, d = n + 1;
            dln_problem_make(&P, n, d, 300 + rep, DLN_Y_NONNEG_TEACHER);
            double VT[64], b0[16], N[16];
            right_singular_vectors(&P, VT);
            for (int i = 0; i < d; i++) N[i] = VT[n * d + i];
            DLN_OK(ns_dln_min_l2(&P.t, b0));
            double lo = -1e3, hi = 1e3;
            if (nonneg) {  // the segment where b0 + z N >= 0
                for (int i = 0; i < d; i++) {
                    if (N[i] > 0) lo = fmax(lo, -b0[i] / N[i]);
                    if (N[i] < 0) hi = fmin(hi, -b0[i] / N[i]);
                }
                assert_true(lo <= hi);
            }
            const double g = (sqrt(5.0) - 1) / 2;
            for (int it = 0; it < 200; it++) {
                double a = hi - g * (hi - lo), b = lo + g * (hi - lo);
                if (line_value(&P, b0, N, a) < line_value(&P, b0, N, b)) hi = b;
                else lo = a;
            }
            double best = line_value(&P, b0, N, 0.5 * (lo + hi)), beta[16], value;
            DLN_OK(ns_dln_min_sharpness(&P.t, nonneg, beta, &value));
            TU_ASSERT_REL(value, best, 1e-6);
            dln_problem_free(&P);
        }
}

// Local optimality on the feasible set: no small feasible move lowers lambda_max. Signed:
// beta + eps N z. Nonnegative: (1 - eps) beta + eps q towards random feasible points q
// (Dirichlet mixtures of the vertices), which stay feasible by convexity. Positive X makes
// the optimum with beta >= 0 often use more than n coordinates, i.e. not a vertex.
static void min_sharpness_is_locally_optimal_among_feasible_moves(void **state) {
    (void)state;
    for (int nonneg = 0; nonneg <= 1; nonneg++)
        for (int rep = 0; rep < 6; rep++) {
            int n = 2, d = 5;
            dln_problem P;
            dln_problem_make(&P, n, d, 500 + rep, DLN_Y_NONNEG_TEACHER | DLN_POSITIVE_X);
            double beta[5], value;
            DLN_OK(ns_dln_min_sharpness(&P.t, nonneg, beta, &value));
            double VT[25];
            right_singular_vectors(&P, VT);
            vertex_list L = {.d = d};
            for_each_vertex(&P, 1, collect_vertex, &L);
            ns_rng r;
            ns_rng_seed(&r, 600 + rep, NS_STREAM_TEST);
            for (int c = 0; c < 2000; c++) {
                double eps = pow(10.0, ns_rng_uniform_in(&r, -4, -1)), b[5];
                if (nonneg) {
                    double q[5];
                    random_mixture(&L, &r, q);
                    for (int i = 0; i < d; i++) b[i] = (1 - eps) * beta[i] + eps * q[i];
                } else {
                    memcpy(b, beta, sizeof b);
                    for (int k = n; k < d; k++) {
                        double z = eps * ns_rng_normal(&r);
                        for (int i = 0; i < d; i++) b[i] += z * VT[k * d + i];
                    }
                }
                if (lmax_abs(&P, b) < value * (1 - 1e-6))
                    fail_msg("nonneg=%d rep %d: a feasible move lowers lambda_max from %.10g to %.10g", nonneg, rep, value,
                             lmax_abs(&P, b));
            }
            dln_problem_free(&P);
        }
}

// n = 1, x > 0: sum_i |beta_i| x_i^2 >= x_min sum_i |beta_i| x_i >= x_min |y|, with equality
// iff all mass sits on the smallest x_i. So the minimum-sharpness interpolator is
// beta = (y / x_min) e_argmin (for shared weights and for u*u - v*v), and the min-l1 one
// puts all mass on the largest x_i.
static void single_point_minimizers_put_all_mass_on_the_extreme_coordinates(void **state) {
    (void)state;
    double x[5] = {1.3, 0.4, 2.2, 0.9, 1.7}, y = 1.5, beta[5], value;
    ns_dln_data t = {1, 5, x, &y};
    for (int nonneg = 0; nonneg <= 1; nonneg++) {
        DLN_OK(ns_dln_min_sharpness(&t, nonneg, beta, &value));
        for (int i = 0; i < 5; i++) TU_ASSERT_REL(beta[i] + 1, (i == 1 ? y / 0.4 : 0) + 1, 1e-12);
        TU_ASSERT_REL(value, y * 0.4, 1e-12);
        DLN_OK(ns_dln_min_weighted_l1(&t, NULL, nonneg, beta));
        for (int i = 0; i < 5; i++) TU_ASSERT_REL(beta[i] + 1, (i == 2 ? y / 2.2 : 0) + 1, 1e-12);
    }
    ns_dln_model m = {NS_DLN_SHARED, 2, 0.1};
    double s;
    double bs[5] = {0, y / 0.4, 0, 0, 0};
    DLN_OK(ns_dln_sharpness_of_beta(&m, &t, bs, &s));
    TU_ASSERT_REL(s, 4 * y * 0.4, 1e-12);  // 4 sum beta_i x_i^2
}

typedef struct {
    const dln_problem *p;
    const double *bs, *sig;
    double best;
} gen_check;
static void not_better_generalizing(void *ctx, const double *beta) {
    gen_check *c = ctx;
    double e = ns_dln_gen_err(c->p->d, beta, c->bs, c->sig, 0);
    if (e < c->best * (1 - 1e-9)) fail_msg("a random interpolator generalizes better (%.12g) than gen_opt (%.12g)", e, c->best);
}

static void gen_opt_interpolator_minimizes_the_generalization_error(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 3, 8, 91, DLN_Y_NONNEG_TEACHER);
    double bs[8], sig[8], beta[8], v[8];
    ns_rng r;
    ns_rng_seed(&r, 5, NS_STREAM_TEST);
    for (int i = 0; i < 8; i++) {
        bs[i] = ns_rng_normal(&r);
        sig[i] = 0.5 + ns_rng_uniform(&r);
    }
    DLN_OK(ns_dln_gen_opt(&P.t, sig, bs, 0, beta));
    assert_true(resid(&P, beta) < 1e-10);
    gen_check c = {&P, bs, sig, ns_dln_gen_err(8, beta, bs, sig, 0)};
    random_interpolators(&P, beta, 1000, 9, not_better_generalizing, &c);
    DLN_OK(ns_dln_min_weighted_l1(&P.t, NULL, 0, v));
    assert_true(ns_dln_gen_err(8, v, bs, sig, 0) >= c.best);
    TU_ASSERT_REL(ns_dln_gen_err(8, beta, bs, sig, 0.5), c.best + 0.25, 1e-14);  // + sigma^2

    // beta >= 0: better than every convex combination of nonnegative vertices
    double bn[8];
    DLN_OK(ns_dln_gen_opt(&P.t, sig, bs, 1, bn));
    assert_true(resid(&P, bn) < 1e-8);
    double best = ns_dln_gen_err(8, bn, bs, sig, 0);
    assert_true(best >= c.best - 1e-12);  // constrained >= unconstrained
    vertex_list L = {.d = 8};
    for_each_vertex(&P, 1, collect_vertex, &L);
    for (int q = 0; q < 1000; q++) {
        double b[8];
        random_mixture(&L, &r, b);
        assert_true(ns_dln_gen_err(8, b, bs, sig, 0) >= best * (1 - 1e-9));
    }
    dln_problem_free(&P);
}

// Woodworth's potential Q_alpha(beta) = sum alpha^2 q(beta_i / alpha^2), q(z) = 2 - sqrt(4 + z^2) + z asinh(z/2).
static double q_alpha(int d, double alpha, const double *beta) {
    double a2 = alpha * alpha, Q = 0;
    for (int i = 0; i < d; i++) {
        double z = beta[i] / a2;
        Q += a2 * (2 - sqrt(4 + z * z) + z * asinh(z / 2));
    }
    return Q;
}
typedef struct {
    int d;
    double alpha, best;
} q_check;
static void not_lower_q(void *ctx, const double *beta) {
    q_check *c = ctx;
    double Q = q_alpha(c->d, c->alpha, beta);
    if (Q < c->best * (1 - 1e-10)) fail_msg("a random interpolator has Q_alpha %.12g below the solution's %.12g", Q, c->best);
}

// beta_i = c_i sinh(z_i) with z in the row space of X and X beta = y is the stationarity
// condition of the hypentropy problem; check both, and that the value is minimal.
static void hypentropy_solution_interpolates_and_is_stationary(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 3, 7, 95, DLN_Y_TEACHER);
    ns_dln_model m = {NS_DLN_PM, 2, 0.05};
    double beta[7];
    DLN_OK(ns_dln_flow_prediction(&m, &P.t, NULL, beta));
    assert_true(resid(&P, beta) <= 1e-10 * fmax(1, fabs(P.y[0])) * 10);
    // z = asinh(beta / (2 alpha^2)) must lie in the row space of X: project and compare.
    double z[7], A[21], b[7];
    for (int i = 0; i < 7; i++) z[i] = asinh(beta[i] / (2 * 0.05 * 0.05));
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 7; i++) A[i * 3 + k] = P.X[k * 7 + i];  // X^T (7 x 3)
    memcpy(b, z, sizeof z);
    assert_int_equal(LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', 7, 3, 1, A, 3, b, 1), 0);
    double off = 0;
    for (int i = 0; i < 7; i++) {
        double zi = 0;
        for (int k = 0; k < 3; k++) zi += P.X[k * 7 + i] * b[k];
        off = fmax(off, fabs(zi - z[i]));
    }
    assert_true(off < 1e-8);
    // and Q_alpha is smaller there than at 1000 random interpolators
    q_check c = {7, 0.05, q_alpha(7, 0.05, beta)};
    random_interpolators(&P, beta, 1000, 11, not_lower_q, &c);
    dln_problem_free(&P);
}

// More examples than dimensions with generic y: no interpolator exists, and every
// reference says so in a sentence instead of returning garbage.
static void no_interpolator_is_reported_by_every_reference(void **state) {
    (void)state;
    double X[6] = {1, 2, 3, 1, 0, 1}, y[3] = {1, 2, 5}, beta[2], v;
    ns_dln_data t = {3, 2, X, y};
    assert_int_equal(ns_dln_min_l2(&t, beta), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "no interpolator"));
    assert_int_equal(ns_dln_min_sharpness(&t, 0, beta, &v), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "no interpolator"));
    assert_int_not_equal(ns_dln_min_weighted_l1(&t, NULL, 0, beta), 0);
    ns_dln_model m = {NS_DLN_PM, 2, 0.5};
    assert_int_not_equal(ns_dln_flow_prediction(&m, &t, NULL, beta), 0);
    double bs[2] = {1, 1};
    assert_int_not_equal(ns_dln_gen_opt(&t, NULL, bs, 0, beta), 0);
}

// A repeated example makes X rank deficient but keeps interpolators: all references work.
static void rank_deficient_data_with_interpolators_is_handled(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 3, 6, 77, DLN_Y_NONNEG_TEACHER);
    for (int i = 0; i < 6; i++) P.X[2 * 6 + i] = P.X[i];
    P.y[2] = P.y[0];
    double beta[6], v;
    DLN_OK(ns_dln_min_l2(&P.t, beta));
    assert_true(resid(&P, beta) < 1e-10);
    DLN_OK(ns_dln_min_sharpness(&P.t, 0, beta, &v));
    assert_true(resid(&P, beta) < 1e-8);
    DLN_OK(ns_dln_min_sharpness(&P.t, 1, beta, &v));
    assert_true(resid(&P, beta) < 1e-8);
    ns_dln_model m = {NS_DLN_PM, 2, 0.3};
    DLN_OK(ns_dln_flow_prediction(&m, &P.t, NULL, beta));
    assert_true(resid(&P, beta) < 1e-9);
    dln_problem_free(&P);
}

// The flow prediction of Woodworth et al.'s setting (n = 100, d = 1000) at alpha = 0.01, with
// one and with two OpenBLAS threads: near the solution the dual's decrease is below its
// rounding, and the line search must still let Newton finish (it stalled at 3e-8 with two
// threads before it also accepted a halved residual).
static void flow_prediction_reaches_the_tolerance_with_any_thread_count(void **state) {
    (void)state;
    ns_dln_task_opts o;
    ns_dln_task_opts_default(&o);
    o.kind = NS_TASK_SPARSE;
    o.preset = "woodworth";
    o.noise = 0;
    ns_dln_task task;
    DLN_OK(ns_dln_task_make(&o, &task));
    ns_dln_data t = ns_dln_task_data(&task);
    ns_dln_model m = {NS_DLN_PM, 2, 0.01};
    double *beta = test_calloc((size_t)t.d, sizeof *beta);
    int before = openblas_get_num_threads();
    for (int threads = 1; threads <= 2; threads++) {
        openblas_set_num_threads(threads);
        DLN_OK(ns_dln_flow_prediction(&m, &t, NULL, beta));
        double res = 0;
        for (int k = 0; k < t.n; k++) {
            double x = -t.y[k];
            for (int i = 0; i < t.d; i++) x += t.X[(size_t)k * t.d + i] * beta[i];
            res = fmax(res, fabs(x));
        }
        assert_true(res <= 1e-9);
    }
    openblas_set_num_threads(before);
    test_free(beta);
    ns_dln_task_free(&task);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flow_prediction_reaches_the_tolerance_with_any_thread_count),
        cmocka_unit_test(min_l1_from_glpk_equals_brute_force_over_supports),
        cmocka_unit_test(min_sharpness_from_dsdp_is_feasible_and_beats_random_interpolators_and_min_l1),
        cmocka_unit_test(min_sharpness_with_nonnegative_beta_beats_random_feasible_points),
        cmocka_unit_test(min_sharpness_matches_a_line_search_when_interpolators_form_a_line),
        cmocka_unit_test(min_sharpness_is_locally_optimal_among_feasible_moves),
        cmocka_unit_test(single_point_minimizers_put_all_mass_on_the_extreme_coordinates),
        cmocka_unit_test(gen_opt_interpolator_minimizes_the_generalization_error),
        cmocka_unit_test(hypentropy_solution_interpolates_and_is_stationary),
        cmocka_unit_test(no_interpolator_is_reported_by_every_reference),
        cmocka_unit_test(rank_deficient_data_with_interpolators_is_handled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
