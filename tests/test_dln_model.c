// test_dln_model.c — the DLN calculus: closed-form gradients and Hessians against finite
// differences, HVPs against the dense Hessian, and both sharpness routes against each other.
#include "dln_fixtures.h"

// A generic (non-initial, non-interpolating) parameter point.
static void random_theta(const ns_dln_model *m, int d, uint64_t seed, double *theta) {
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_INIT);
    for (int a = 0; a < ns_dln_nparams(m, d); a++) theta[a] = 0.8 * ns_rng_normal(&r);
}

static double loss_at(const ns_dln_model *m, const ns_dln_data *t, const double *theta) {
    ns_dln_point pt;
    dln_point_at(&pt, m, t, theta);
    double L = pt.loss;
    ns_dln_point_free(&pt);
    return L;
}

static const ns_dln_model models[] = {
    {NS_DLN_SHARED, 2, 0.3}, {NS_DLN_PM, 2, 0.3}, {NS_DLN_PM, 3, 0.3}, {NS_DLN_UV, 2, 0.3},
};
#define NMODELS ((int)(sizeof models / sizeof models[0]))

// grad and H against central differences of the loss (and of the gradient).
static void gradient_and_hessian_match_finite_differences(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 4, 6, 11, DLN_Y_NOISE);
    for (int mi = 0; mi < NMODELS; mi++) {
        const ns_dln_model *m = &models[mi];
        int d = P.d, p = ns_dln_nparams(m, d);
        double *theta = malloc(sizeof(double) * p), *grad = malloc(sizeof(double) * p);
        double *gp = malloc(sizeof(double) * p), *gm = malloc(sizeof(double) * p);
        double *H = malloc(sizeof(double) * p * p);
        random_theta(m, d, 5 + mi, theta);
        ns_dln_point pt;
        dln_point_at(&pt, m, &P.t, theta);
        ns_dln_grad(m, d, theta, &pt, grad);
        DLN_OK(ns_dln_hessian(m, &P.t, theta, &pt, H));
        const double h = 1e-5;
        for (int a = 0; a < p; a++) {
            double keep = theta[a];
            theta[a] = keep + h;
            double Lp = loss_at(m, &P.t, theta);
            ns_dln_eval(m, &P.t, theta, &pt);
            ns_dln_grad(m, d, theta, &pt, gp);
            theta[a] = keep - h;
            double Lm = loss_at(m, &P.t, theta);
            ns_dln_eval(m, &P.t, theta, &pt);
            ns_dln_grad(m, d, theta, &pt, gm);
            theta[a] = keep;
            double fd = (Lp - Lm) / (2 * h);
            if (fabs(fd - grad[a]) > 1e-7 * (1 + fabs(grad[a])))
                fail_msg("model %d: dL/dtheta_%d = %.12g, finite difference %.12g", mi, a, grad[a], fd);
            for (int b = 0; b < p; b++) {
                double fdh = (gp[b] - gm[b]) / (2 * h);
                if (fabs(fdh - H[(size_t)b * p + a]) > 1e-6 * (1 + fabs(fdh)))
                    fail_msg("model %d: H[%d][%d] = %.12g, finite difference %.12g", mi, b, a, H[(size_t)b * p + a], fdh);
            }
        }
        ns_dln_point_free(&pt);
        free(theta);
        free(grad);
        free(gp);
        free(gm);
        free(H);
    }
    dln_problem_free(&P);
}

static void hvp_matches_dense_hessian(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 5, 7, 12, DLN_Y_NOISE);
    ns_rng r;
    ns_rng_seed(&r, 99, NS_STREAM_TEST);
    for (int mi = 0; mi < NMODELS; mi++) {
        const ns_dln_model *m = &models[mi];
        int d = P.d, p = ns_dln_nparams(m, d);
        double *theta = malloc(sizeof(double) * p), *H = malloc(sizeof(double) * p * p);
        double *v = malloc(sizeof(double) * p), *hv = malloc(sizeof(double) * p);
        double *work = malloc(sizeof(double) * (P.n + d));
        random_theta(m, d, 21 + mi, theta);
        ns_dln_point pt;
        dln_point_at(&pt, m, &P.t, theta);
        DLN_OK(ns_dln_hessian(m, &P.t, theta, &pt, H));
        for (int rep = 0; rep < 3; rep++) {
            for (int a = 0; a < p; a++) v[a] = ns_rng_normal(&r);
            ns_dln_hvp(m, &P.t, theta, &pt, v, hv, work);
            for (int a = 0; a < p; a++) {
                double s = 0;
                for (int b = 0; b < p; b++) s += H[(size_t)a * p + b] * v[b];
                if (fabs(s - hv[a]) > 1e-12 * (1 + fabs(s))) fail_msg("model %d: (Hv)_%d = %.15g, dense %.15g", mi, a, hv[a], s);
            }
        }
        ns_dln_point_free(&pt);
        free(theta);
        free(H);
        free(v);
        free(hv);
        free(work);
    }
    dln_problem_free(&P);
}

// The secular route is exact for lambda_max at any point, so it must agree with dense
// eigenvalues away from interpolators too (where the n x n reduction alone is wrong).
static void secular_sharpness_matches_dense_at_non_interpolators(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 3, 9, 13, DLN_Y_NOISE);
    for (int mi = 0; mi < NMODELS; mi++) {
        const ns_dln_model *m = &models[mi];
        int d = P.d, p = ns_dln_nparams(m, d);
        double *theta = malloc(sizeof(double) * p);
        for (int rep = 0; rep < 4; rep++) {
            random_theta(m, d, 100 * mi + rep, theta);
            ns_dln_point pt;
            dln_point_at(&pt, m, &P.t, theta);
            ns_dln_sharp dense, sec;
            DLN_OK(ns_dln_sharpness(m, &P.t, theta, &pt, 100000, &dense));
            DLN_OK(ns_dln_sharpness(m, &P.t, theta, &pt, 0, &sec));
            assert_string_equal(dense.method, "dense");
            assert_string_equal(sec.method, "secular");
            TU_ASSERT_REL(sec.lambda_max, dense.lambda_max, 1e-10);
            TU_ASSERT_REL(sec.trace, dense.trace, 1e-10);
            assert_true(sec.lambda_min <= dense.lambda_min + 1e-12);  // a lower bound
            if (sec.exact) TU_ASSERT_REL(sec.sharpness, dense.sharpness, 1e-10);
            else assert_true(sec.sharpness >= dense.sharpness * (1 - 1e-12));  // an upper bound
            ns_dln_point_free(&pt);
        }
        free(theta);
    }
    dln_problem_free(&P);
}

// The commands' policy (secular unless not certified, then dense) must give the dense
// sharpness at every point, on a problem large enough (p = 400) to leave the dense-only range.
static void auto_sharpness_equals_dense_sharpness(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 4, 200, 15, DLN_Y_NOISE);
    ns_dln_model m = {NS_DLN_PM, 2, 0.1};
    double theta[400];
    int secular = 0;
    for (int rep = 0; rep < 6; rep++) {
        random_theta(&m, 200, 40 + rep, theta);
        for (int a = 0; a < 400; a++) theta[a] *= rep < 3 ? 1.0 : 0.1;  // large and small gradients
        ns_dln_point pt;
        dln_point_at(&pt, &m, &P.t, theta);
        ns_dln_sharp dense, aut;
        DLN_OK(ns_dln_sharpness(&m, &P.t, theta, &pt, 100000, &dense));
        DLN_OK(ns_dln_sharpness_auto(&m, &P.t, theta, &pt, NS_DLN_DENSE_MAX, &aut));
        TU_ASSERT_REL(aut.sharpness, dense.sharpness, 1e-10);
        assert_true(aut.exact);
        secular += !strcmp(aut.method, "secular");
        ns_dln_point_free(&pt);
    }
    assert_true(secular > 0);
    dln_problem_free(&P);
}

// At an interpolator g = 0, so the Hessian is (1/n) J^T J and the sharpness is
// (1/n) lambda_max(X diag(|j|^2) X^T): for shared weights and one data point 4 sum beta_i x_i^2.
static void sharpness_at_interpolator_is_the_n_by_n_reduction(void **state) {
    (void)state;
    double x[4] = {0.5, 1.0, 1.5, 2.0}, w[4] = {0.3, 0.7, 0.2, 0.9}, y = 0;
    for (int i = 0; i < 4; i++) y += w[i] * w[i] * x[i];
    ns_dln_data t = {1, 4, x, &y};
    ns_dln_model m = {NS_DLN_SHARED, 2, 1.0};
    ns_dln_point pt;
    dln_point_at(&pt, &m, &t, w);
    assert_true(pt.loss < 1e-30);
    ns_dln_sharp s;
    DLN_OK(ns_dln_sharpness(&m, &t, w, &pt, 100, &s));
    double expect = 0, beta[4];
    for (int i = 0; i < 4; i++) {
        beta[i] = w[i] * w[i];
        expect += 4 * beta[i] * x[i] * x[i];
    }
    TU_ASSERT_REL(s.sharpness, expect, 1e-13);
    double viabeta;
    DLN_OK(ns_dln_sharpness_of_beta(&m, &t, beta, &viabeta));
    TU_ASSERT_REL(viabeta, expect, 1e-13);
    ns_dln_point_free(&pt);
}

// The minimal-norm realization of beta for PM is u = sqrt(beta+), v = sqrt(beta-); its
// Hessian's top eigenvalue must equal the closed form (4/n) lambda_max(X diag|beta| X^T).
static void sharpness_of_beta_matches_the_realizing_parameters(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 3, 6, 14, DLN_Y_NOISE);
    ns_dln_model m = {NS_DLN_PM, 2, 1.0}, mu = {NS_DLN_UV, 2, 1.0};
    double beta[6] = {0.5, -0.2, 0, 1.1, -0.7, 0.05}, theta[12], thu[12];
    for (int i = 0; i < 6; i++) {
        theta[i] = sqrt(fmax(beta[i], 0));
        theta[6 + i] = sqrt(fmax(-beta[i], 0));
        thu[i] = sqrt(fabs(beta[i]));
        thu[6 + i] = beta[i] >= 0 ? thu[i] : -thu[i];
    }
    // make beta an interpolator: y := X beta
    for (int k = 0; k < 3; k++) {
        P.y[k] = 0;
        for (int i = 0; i < 6; i++) P.y[k] += P.X[k * 6 + i] * beta[i];
    }
    ns_dln_point pt;
    DLN_OK(ns_dln_point_alloc(&pt, 3, 6));
    const ns_dln_model *ms[2] = {&m, &mu};
    const double *ths[2] = {theta, thu};
    for (int q = 0; q < 2; q++) {
        ns_dln_eval(ms[q], &P.t, ths[q], &pt);
        assert_true(pt.loss < 1e-28);
        ns_dln_sharp s;
        double closed;
        DLN_OK(ns_dln_sharpness(ms[q], &P.t, ths[q], &pt, 100, &s));
        DLN_OK(ns_dln_sharpness_of_beta(ms[q], &P.t, beta, &closed));
        TU_ASSERT_REL(s.sharpness, closed, 1e-12);
    }
    ns_dln_point_free(&pt);
    dln_problem_free(&P);
}

static void model_names_and_bad_parameters_are_rejected(void **state) {
    (void)state;
    ns_dln_kind k;
    DLN_OK(ns_dln_model_parse("woodworth", &k));
    assert_int_equal(k, NS_DLN_PM);
    DLN_OK(ns_dln_model_parse("even", &k));
    assert_int_equal(k, NS_DLN_UV);
    assert_int_equal(ns_dln_model_parse("mlp", &k), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--model"));
    ns_dln_model m = {NS_DLN_PM, 2, -0.1};
    assert_int_equal(ns_dln_model_check(&m), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--alpha"));
    m.alpha = 0.1;
    m.depth = 1;
    assert_int_equal(ns_dln_model_check(&m), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "--depth"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gradient_and_hessian_match_finite_differences),
        cmocka_unit_test(hvp_matches_dense_hessian),
        cmocka_unit_test(secular_sharpness_matches_dense_at_non_interpolators),
        cmocka_unit_test(auto_sharpness_equals_dense_sharpness),
        cmocka_unit_test(sharpness_at_interpolator_is_the_n_by_n_reduction),
        cmocka_unit_test(sharpness_of_beta_matches_the_realizing_parameters),
        cmocka_unit_test(model_names_and_bad_parameters_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
