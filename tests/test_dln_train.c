// test_dln_train.c — GD and gradient flow on DLNs: the small-step limit is the hypentropy
// (mirror) prediction, Even et al.'s conserved product holds along GD, GD cannot settle
// where the sharpness exceeds 2/eta, and divergence is a result.
#include "dln_fixtures.h"

static double rel_dist(int d, const double *a, const double *b) { return ns_dln_dist(d, a, b) / ns_dln_l2(d, b); }

static void gd_with_tiny_step_and_small_alpha_converges_to_the_hypentropy_prediction(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 5, 10, 1, DLN_Y_SPARSE);
    ns_dln_train_opts o;
    ns_dln_train_opts_default(&o);
    o.loss_goal = 1e-22;
    o.max_steps = 400000;
    const ns_dln_model ms[2] = {{NS_DLN_PM, 2, 0.05}, {NS_DLN_UV, 2, 0.05}};
    for (int q = 0; q < 2; q++) {
        double pred[10];
        DLN_OK(ns_dln_flow_prediction(&ms[q], &P.t, NULL, pred));
        o.eta = 0.01;
        ns_dln_train_result r;
        DLN_OK(ns_dln_train(&ms[q], &P.t, &o, &r));
        assert_int_equal(r.status, NS_CONVERGED);
        double e = rel_dist(10, r.beta, pred);
        if (!(e < 1e-3)) fail_msg("model %d: GD ends %.3g (relative) from the hypentropy prediction", q, e);
        // the Even et al. prediction at the run's alpha_inf is at least as close
        double even[10];
        DLN_OK(ns_dln_flow_prediction(&ms[q], &P.t, r.log_alpha_inf_sq, even));
        assert_true(rel_dist(10, r.beta, even) <= e * 1.01 + 1e-12);
        ns_dln_train_result_free(&r);
    }
    // shared weights, one data point: GD -> beta = alpha^2 exp(nu x)
    double x[4] = {0.5, 1.0, 1.5, 2.0}, y = 2.0, pred[4];
    ns_dln_data t1 = {1, 4, x, &y};
    ns_dln_model sh = {NS_DLN_SHARED, 2, 0.05};
    DLN_OK(ns_dln_flow_prediction(&sh, &t1, NULL, pred));
    o.eta = 2e-4;  // the GD-flow gap of w*w is first order in eta (ln(1 - 2 eta g) vs -2 eta g)
    ns_dln_train_result r;
    DLN_OK(ns_dln_train(&sh, &t1, &o, &r));
    assert_int_equal(r.status, NS_CONVERGED);
    if (!(rel_dist(4, r.beta, pred) < 1e-3)) fail_msg("shared: GD ends %.3g from the prediction", rel_dist(4, r.beta, pred));
    ns_dln_train_result_free(&r);
    dln_problem_free(&P);
}

// u' = u - eta v g, v' = v - eta u g  =>  u'^2 - v'^2 = (u^2 - v^2)(1 - eta^2 g^2).
static void uv_product_identity_holds_along_gd(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 4, 8, 2, DLN_Y_SPARSE);
    ns_dln_model m = {NS_DLN_UV, 2, 0.3};
    int d = 8;
    double theta[16], grad[16], prod[8];
    ns_dln_point pt;
    DLN_OK(ns_dln_point_alloc(&pt, 4, d));
    ns_dln_init(&m, d, theta);
    for (int i = 0; i < d; i++) prod[i] = 1;
    double eta = 0.2, worst = 0;
    for (int k = 0; k < 300; k++) {
        ns_dln_eval(&m, &P.t, theta, &pt);
        for (int i = 0; i < d; i++) {
            double lhs = theta[i] * theta[i] - theta[d + i] * theta[d + i], rhs = 2 * 0.09 * prod[i];
            worst = fmax(worst, fabs(lhs - rhs) / fabs(rhs));
        }
        for (int i = 0; i < d; i++) prod[i] *= 1 - eta * eta * pt.g[i] * pt.g[i];
        ns_dln_gd_step(&m, d, theta, &pt, eta, grad);
    }
    if (!(worst <= 1e-12)) fail_msg("u^2 - v^2 departs from 2 alpha^2 prod(1 - eta^2 g^2) by %.3g (relative)", worst);
    ns_dln_point_free(&pt);
    dln_problem_free(&P);
}

// The accumulated product (log alpha_inf^2) equals the read-off at the end of the run.
static void alpha_inf_from_the_run_equals_the_conserved_quantity(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 4, 8, 3, DLN_Y_SPARSE);
    const ns_dln_model ms[2] = {{NS_DLN_UV, 2, 0.2}, {NS_DLN_PM, 2, 0.2}};
    ns_dln_train_opts o;
    ns_dln_train_opts_default(&o);
    o.eta = 0.1;
    o.max_steps = 3000;
    for (int q = 0; q < 2; q++) {
        ns_dln_train_result r;
        DLN_OK(ns_dln_train(&ms[q], &P.t, &o, &r));
        assert_int_not_equal(r.status, NS_DIVERGED);
        for (int i = 0; i < 8; i++) {
            double u = r.theta[i], v = r.theta[8 + i];
            double read = q == 0 ? fabs(u * u - v * v) / 2 : fabs(u * v);
            TU_ASSERT_REL(exp(r.log_alpha_inf_sq[i]), read, 1e-9);
            assert_true(r.log_alpha_inf_sq[i] <= 2 * log(0.2) + 1e-12);  // the product only shrinks here
        }
        ns_dln_train_result_free(&r);
    }
    dln_problem_free(&P);
}

static double final_sharpness(const ns_dln_model *m, const ns_dln_data *t, const ns_dln_train_result *r) {
    ns_dln_point pt;
    dln_point_at(&pt, m, t, r->theta);
    ns_dln_sharp s;
    DLN_OK(ns_dln_sharpness(m, t, r->theta, &pt, 1000, &s));
    ns_dln_point_free(&pt);
    return s.sharpness;
}

// GD at eta = 1.1 * 2 / S(limit of small-step GD) cannot converge to that limit (it is
// unstable there): it diverges, or converges to a flatter point with S <= 2/eta.
static void gd_just_above_two_over_the_limits_sharpness_does_not_settle_there(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 5, 10, 4, DLN_Y_SPARSE);
    const ns_dln_model ms[3] = {{NS_DLN_PM, 2, 0.5}, {NS_DLN_UV, 2, 0.5}, {NS_DLN_SHARED, 2, 0.5}};
    double x[3] = {0.5, 1.0, 2.0}, y = 1.0;
    ns_dln_data t1 = {1, 3, x, &y};
    ns_dln_train_opts o;
    ns_dln_train_opts_default(&o);
    o.loss_goal = 1e-16;
    o.max_steps = 200000;
    for (int q = 0; q < 3; q++) {
        const ns_dln_data *t = q == 2 ? &t1 : &P.t;
        ns_dln_train_result small, big;
        o.eta = 0.01;
        DLN_OK(ns_dln_train(&ms[q], t, &o, &small));
        assert_int_equal(small.status, NS_CONVERGED);
        double S0 = final_sharpness(&ms[q], t, &small);
        assert_true(0.01 < 2 / S0);  // the small step was stable there
        o.eta = 1.1 * 2 / S0;
        DLN_OK(ns_dln_train(&ms[q], t, &o, &big));
        if (big.status != NS_DIVERGED) {
            double S1 = final_sharpness(&ms[q], t, &big);
            if (big.status == NS_CONVERGED && !(S1 <= 2 / o.eta * (1 + 1e-3)))
                fail_msg("model %d: converged at sharpness %.6g above 2/eta = %.6g", q, S1, 2 / o.eta);
            if (!(ns_dln_dist(t->d, big.beta, small.beta) > 1e-3))
                fail_msg("model %d: GD at eta = %.4g settled at the small-step limit (sharpness %.4g)", q, o.eta, S0);
            assert_true(S1 < S0);
        }
        ns_dln_train_result_free(&small);
        ns_dln_train_result_free(&big);
    }
    dln_problem_free(&P);
}

static void divergence_is_a_result_with_its_step(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 5, 10, 5, DLN_Y_SPARSE);
    ns_dln_model m = {NS_DLN_PM, 2, 1.0};
    ns_dln_train_opts o;
    ns_dln_train_opts_default(&o);
    o.eta = 50;
    ns_dln_train_result r;
    DLN_OK(ns_dln_train(&m, &P.t, &o, &r));
    assert_int_equal(r.status, NS_DIVERGED);
    assert_true(r.diverged_at >= 1);
    assert_int_equal(r.steps, r.diverged_at);
    assert_string_equal(ns_status_name(r.status), "diverged");
    ns_dln_train_result_free(&r);
    o.eta = -1;
    assert_int_equal(ns_dln_train(&m, &P.t, &o, &r), NS_EINVAL);
    dln_problem_free(&P);
}

// RK4 gradient flow reaches the mirror prediction (exact for the flow, up to the RK4 error), with the largest
// sharpness along the way at least the final one.
// Small-step GD ends where the flow does, with the flow's realization of beta: for both
// two-factor models the sharpness there is the on-flow formula at alpha^2, and at the run's own
// conserved alpha_inf^2 it is exact for GD too.
static void sharpness_on_flow_is_where_small_step_gd_ends(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 4, 9, 3, DLN_Y_SPARSE);
    const ns_dln_model ms[2] = {{NS_DLN_PM, 2, 0.3}, {NS_DLN_UV, 2, 0.3}};
    for (int q = 0; q < 2; q++) {
        ns_dln_train_opts o;
        ns_dln_train_opts_default(&o);
        o.loss_goal = 1e-24;
        o.max_steps = 400000;
        o.eta = 0.002;
        ns_dln_train_result r;
        DLN_OK(ns_dln_train(&ms[q], &P.t, &o, &r));
        assert_int_equal(r.status, NS_CONVERGED);
        double s_end = final_sharpness(&ms[q], &P.t, &r), s_alpha, s_inf;
        DLN_OK(ns_dln_sharpness_on_flow(&ms[q], &P.t, r.beta, NULL, &s_alpha));
        DLN_OK(ns_dln_sharpness_on_flow(&ms[q], &P.t, r.beta, r.log_alpha_inf_sq, &s_inf));
        TU_ASSERT_REL(s_inf, s_end, 1e-6);
        TU_ASSERT_REL(s_alpha, s_end, 1e-3);
        ns_dln_train_result_free(&r);
    }
    dln_problem_free(&P);
}

static void gradient_flow_reaches_the_hypentropy_prediction(void **state) {
    (void)state;
    dln_problem P;
    dln_problem_make(&P, 5, 10, 6, DLN_Y_SPARSE);
    ns_dln_model m = {NS_DLN_PM, 2, 0.1};
    ns_dln_train_opts o;
    ns_dln_train_opts_default(&o);
    o.flow = 1;
    o.loss_goal = 1e-22;
    o.log_every = 50;
    ns_dln_train_result r;
    DLN_OK(ns_dln_train(&m, &P.t, &o, &r));
    assert_int_equal(r.status, NS_CONVERGED);
    double pred[10];
    DLN_OK(ns_dln_flow_prediction(&m, &P.t, NULL, pred));
    if (!(rel_dist(10, r.beta, pred) < 1e-5)) fail_msg("flow ends %.3g from the prediction", rel_dist(10, r.beta, pred));
    double s_end = final_sharpness(&m, &P.t, &r);
    assert_true(r.s_max >= s_end * (1 - 1e-6));
    // The sharpness the theory gives the flow's solution is the one the flow ends at (through
    // the conserved u_i v_i = alpha^2), not the flattest realization of that beta, which is lower.
    double s_on_flow, s_flattest;
    DLN_OK(ns_dln_sharpness_on_flow(&m, &P.t, pred, NULL, &s_on_flow));
    DLN_OK(ns_dln_sharpness_of_beta(&m, &P.t, pred, &s_flattest));
    TU_ASSERT_REL(s_on_flow, s_end, 1e-5);
    assert_true(s_flattest < s_end * (1 - 1e-3));
    assert_true(r.time > 0);
    assert_non_null(strstr(r.traj.data, "step,time,h,train_loss,l1,l2,sharpness\n0,0,"));
    ns_dln_train_result_free(&r);
    dln_problem_free(&P);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gd_with_tiny_step_and_small_alpha_converges_to_the_hypentropy_prediction),
        cmocka_unit_test(uv_product_identity_holds_along_gd),
        cmocka_unit_test(alpha_inf_from_the_run_equals_the_conserved_quantity),
        cmocka_unit_test(gd_just_above_two_over_the_limits_sharpness_does_not_settle_there),
        cmocka_unit_test(divergence_is_a_result_with_its_step),
        cmocka_unit_test(gradient_flow_reaches_the_hypentropy_prediction),
        cmocka_unit_test(sharpness_on_flow_is_where_small_step_gd_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
