// Gradient descent and gradient flow (train.h) on a quadratic: a linear model (fc-linear)
// with MSE, whose Hessian H is constant and known in closed form from the data, so the
// stability threshold 2/lambda_max and the exact flow exp(-H t) are known.
#include <lapacke.h>
#include "testutil.h"
#include "normsharp/train.h"

#define N_EX 16
#define D_IN 3
#define K_OUT 2

typedef struct {
    ns_dataset ds;
    ns_data_opts data;
    ns_model *m;
    size_t n;              // parameters
    double *H;             // n x n, dense
    double *evals, *evecs; // eigen-decomposition of H (columns of evecs)
    double lambda_max;
    real *theta0;
    char dir[256];         // the last run's directory
    ns_jval summary;       // its summary.json, once read by last_summary
} quad;

// Synthetic regression with targets from a linear teacher, so the minimum loss is 0.
static void quad_init(quad *q) {
    memset(q, 0, sizeof *q);
    ns_dataset *ds = &q->ds;
    snprintf(ds->name, sizeof ds->name, "synthetic");
    ds->c = 1, ds->h = 1, ds->w = D_IN, ds->d = D_IN, ds->k = K_OUT, ds->n = N_EX, ds->n_test = 0;
    ds->x_train = calloc(N_EX * D_IN, sizeof(real));
    ds->t_train = calloc(N_EX * K_OUT, sizeof(real));
    ds->y_train = calloc(N_EX, sizeof(int));
    uint64_t s = 12345;
    for (int i = 0; i < N_EX * D_IN; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        ds->x_train[i] = (real)((double)(s >> 11) / 9007199254740992.0 * 2 - 1);
    }
    const double A[K_OUT][D_IN] = {{0.5, -1.0, 0.25}, {1.5, 0.3, -0.7}}, b[K_OUT] = {0.2, -0.4};
    for (int i = 0; i < N_EX; i++) {
        for (int o = 0; o < K_OUT; o++) {
            double v = b[o];
            for (int j = 0; j < D_IN; j++) v += A[o][j] * ds->x_train[i * D_IN + j];
            ds->t_train[i * K_OUT + o] = (real)v;
        }
        ds->y_train[i] = ds->t_train[i * K_OUT] > ds->t_train[i * K_OUT + 1] ? 0 : 1;
    }
    ns_data_opts_default(&q->data);
    q->data.loss = NS_LOSS_MSE;
    ns_model_config cfg = {.arch = "fc-linear", .param = "standard", .init_scale = 1, .seed = 3,
                           .c = 1, .h = 1, .w = D_IN, .k = K_OUT};
    assert_int_equal(ns_model_create(&cfg, &q->m), 0);
    q->n = ns_model_nparams(q->m);
    assert_int_equal(q->n, (size_t)(D_IN + 1) * K_OUT);
    q->theta0 = malloc(q->n * sizeof(real));
    memcpy(q->theta0, ns_model_theta(q->m), q->n * sizeof(real));
    // the dense Hessian, column by column from exact HVPs (constant for a quadratic)
    ns_batch b0 = ns_batch_train(ds, NS_LOSS_MSE);
    q->H = calloc(q->n * q->n, sizeof(double));
    real *e = calloc(q->n, sizeof(real)), *he = calloc(q->n, sizeof(real));
    for (size_t c = 0; c < q->n; c++) {
        memset(e, 0, q->n * sizeof(real));
        e[c] = 1;
        assert_int_equal(ns_model_hvp(q->m, &b0, e, he), 0);
        for (size_t r = 0; r < q->n; r++) q->H[r * q->n + c] = he[r];
    }
    for (size_t r = 0; r < q->n; r++)  // symmetrize the float rounding away
        for (size_t c = 0; c < r; c++) q->H[r * q->n + c] = q->H[c * q->n + r] = 0.5 * (q->H[r * q->n + c] + q->H[c * q->n + r]);
    q->evecs = malloc(q->n * q->n * sizeof(double));
    q->evals = malloc(q->n * sizeof(double));
    memcpy(q->evecs, q->H, q->n * q->n * sizeof(double));
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (int)q->n, q->evecs, (int)q->n, q->evals), 0);
    q->lambda_max = q->evals[q->n - 1];
    assert_true(q->evals[0] > 1e-3);  // positive definite: one minimizer
    free(e);
    free(he);
}

static void quad_free(quad *q) {
    ns_model_free(q->m);
    free(q->ds.x_train);
    free(q->ds.t_train);
    free(q->ds.y_train);
    free(q->H);
    free(q->evals);
    free(q->evecs);
    free(q->theta0);
    ns_jval_free(&q->summary);
}

// Each test gets a fresh quadratic (its model at theta_0).
static int quad_setup(void **state) {
    quad *q = malloc(sizeof *q);
    if (!q) return -1;
    quad_init(q);
    *state = q;
    return 0;
}

static int quad_teardown(void **state) {
    quad_free(*state);
    free(*state);
    return 0;
}

static ns_train_opts quick_opts(double lr) {
    ns_train_opts o;
    ns_train_opts_default(&o);
    o.lr = lr;
    o.max_steps = 20000;
    o.log_every = 50;
    o.final.eig.k = 2;
    o.final.trace_probes = 0;
    return o;
}

// GD from theta_0 into a fresh directory; the run must end with `status`.
static void train_expect(quad *q, const ns_train_opts *o, const char *status, ns_train_result *r) {
    memcpy(ns_model_theta(q->m), q->theta0, q->n * sizeof(real));
    snprintf(q->dir, sizeof q->dir, "%s", tu_tmpdir());
    assert_int_equal(ns_train_run(q->m, &q->ds, &q->data, o, q->dir, NULL, r), 0);
    assert_string_equal(ns_status_name(r->status), status);
}

// The summary.json of the last run.
static const ns_jval *last_summary(quad *q) {
    char p[512];
    snprintf(p, sizeof p, "%s/summary.json", q->dir);
    ns_jval_free(&q->summary);
    assert_int_equal(ns_json_parse_file(p, &q->summary), 0);
    return &q->summary;
}

#ifdef NS_DOUBLE
#define GOAL 1e-12
#else
#define GOAL 1e-7
#endif

static void gd_converges_just_below_and_diverges_just_above_two_over_lambda(void **state) {
    quad *q = *state;
    ns_train_result r;
    ns_train_opts o = quick_opts(0.99 * 2 / q->lambda_max);
    o.loss_goal = GOAL;
    train_expect(q, &o, "converged", &r);
    assert_true(r.final_loss <= GOAL);
    ns_train_result_free(&r);
    o.lr = 1.01 * 2 / q->lambda_max;
    train_expect(q, &o, "diverged", &r);
    assert_true(r.diverged_at > 0 && r.diverged_at == r.steps);
    ns_train_result_free(&r);
}

// Heavy ball on a quadratic is stable iff eta * lambda < 2 (1 + mu).
static void heavy_ball_threshold_is_two_times_one_plus_mu_over_lambda(void **state) {
    quad *q = *state;
    ns_train_result r;
    double thr = 2 * (1 + 0.5) / q->lambda_max;
    ns_train_opts o = quick_opts(0.99 * thr);
    o.momentum = 0.5;
    o.loss_goal = GOAL;
    train_expect(q, &o, "converged", &r);
    ns_train_result_free(&r);
    o = quick_opts(1.01 * thr);
    o.momentum = 0.5;
    train_expect(q, &o, "diverged", &r);
    ns_train_result_free(&r);
}

static void max_steps_stops_after_exactly_that_many_updates(void **state) {
    quad *q = *state;
    ns_train_result r;
    ns_train_opts o = quick_opts(0.5 / q->lambda_max);
    o.max_steps = 37;
    train_expect(q, &o, "max_steps", &r);
    assert_int_equal(r.steps, 37);
    ns_train_result_free(&r);
}

static void loss_goal_stops_at_the_first_step_at_or_below_it(void **state) {
    quad *q = *state;
    ns_train_result r, r2;
    ns_train_opts o = quick_opts(0.5 / q->lambda_max);
    o.loss_goal = 1e-3;
    train_expect(q, &o, "converged", &r);
    assert_true(r.final_loss <= 1e-3);
    // one step fewer must still be above the goal
    o = quick_opts(0.5 / q->lambda_max);
    o.max_steps = r.steps - 1;
    train_expect(q, &o, "max_steps", &r2);
    assert_true(r2.final_loss > 1e-3);
    ns_train_result_free(&r);
    ns_train_result_free(&r2);
}

static void acc_goal_stops_once_the_training_accuracy_reaches_it(void **state) {
    quad *q = *state;
    ns_train_result r;
    ns_train_opts o = quick_opts(0.5 / q->lambda_max);
    o.acc_goal = 1.0;
    train_expect(q, &o, "acc_goal", &r);
    assert_true(ns_jnum(ns_jget(last_summary(q), "final"), "train_acc", 0) >= 1.0);
    assert_true(r.steps < o.max_steps);
    ns_train_result_free(&r);
}

static void diverge_factor_sets_when_a_growing_loss_counts_as_diverged(void **state) {
    quad *q = *state;
    ns_train_result r10, r1000;
    ns_train_opts o = quick_opts(1.05 * 2 / q->lambda_max);
    o.diverge_factor = 10;
    train_expect(q, &o, "diverged", &r10);
    const ns_jval *s = last_summary(q);
    assert_true(ns_jnum(ns_jget(s, "final"), "train_loss", 0) > 10 * ns_jnum(s, "initial_loss", 1e300));
    o.diverge_factor = 1000;
    train_expect(q, &o, "diverged", &r1000);
    assert_true(r10.diverged_at < r1000.diverged_at);
    ns_train_result_free(&r10);
    ns_train_result_free(&r1000);
}

static void averaged_and_decayed_blocks_are_written_when_asked(void **state) {
    quad *q = *state;
    ns_train_result r;
    ns_train_opts o = quick_opts(0.5 / q->lambda_max);
    o.max_steps = 100;
    o.avg_last = 10;
    o.decay_steps = 20;
    train_expect(q, &o, "max_steps", &r);
    const ns_jval *s = last_summary(q);
    const ns_jval *a = ns_jget(s, "averaged"), *d = ns_jget(s, "decayed"), *f = ns_jget(s, "final");
    assert_true(a && a->type == NS_JOBJ && d && d->type == NS_JOBJ);
    assert_int_equal((int)ns_jnum(s, "averaged_m", 0), 10);
    // on a converging quadratic: the decayed phase lowers the loss further
    assert_true(ns_jnum(d, "train_loss", 1) < ns_jnum(f, "train_loss", 0));
    ns_train_result_free(&r);
}

static void minibatch_sgd_is_reproducible_for_a_seed(void **state) {
    quad *q = *state;
    ns_train_result r1, r2, r3;
    ns_train_opts o = quick_opts(0.5 / q->lambda_max);
    o.batch = 5;
    o.max_steps = 60;
    o.seed = 7;
    train_expect(q, &o, "max_steps", &r1);
    train_expect(q, &o, "max_steps", &r2);
    o.seed = 8;
    train_expect(q, &o, "max_steps", &r3);
    assert_true(r1.final_loss == r2.final_loss);
    assert_true(r1.final_loss != r3.final_loss);
    ns_train_result_free(&r1);
    ns_train_result_free(&r2);
    ns_train_result_free(&r3);
}

// theta(T) = theta* + V exp(-Lambda T) V^T (theta_0 - theta*), theta* = H^{-1} b, b = -grad L(0).
static void rk4_flow_matches_the_exact_exponential_solution_of_a_quadratic(void **state) {
    quad *q = *state;
    size_t n = q->n;
    ns_batch b0 = ns_batch_train(&q->ds, NS_LOSS_MSE);
    real *g = calloc(n, sizeof(real));
    double *bvec = calloc(n, sizeof(double)), *star = calloc(n, sizeof(double)), *want = calloc(n, sizeof(double));
    memset(ns_model_theta(q->m), 0, n * sizeof(real));
    double l, a;
    assert_int_equal(ns_model_grad(q->m, &b0, g, &l, &a), 0);
    for (size_t i = 0; i < n; i++) bvec[i] = -(double)g[i];
    double T = 3.0 / q->evals[0];  // long enough for every mode to move, short of convergence
    for (size_t k = 0; k < n; k++) {  // project on eigenvectors
        double cb = 0, c0 = 0;
        for (size_t i = 0; i < n; i++) cb += q->evecs[i * n + k] * bvec[i];
        for (size_t i = 0; i < n; i++) star[i] += q->evecs[i * n + k] * cb / q->evals[k];
        (void)c0;
    }
    for (size_t k = 0; k < n; k++) {
        double c = 0;
        for (size_t i = 0; i < n; i++) c += q->evecs[i * n + k] * (q->theta0[i] - star[i]);
        for (size_t i = 0; i < n; i++) want[i] += q->evecs[i * n + k] * c * exp(-q->evals[k] * T);
    }
    for (size_t i = 0; i < n; i++) want[i] += star[i];

    memcpy(ns_model_theta(q->m), q->theta0, n * sizeof(real));
    ns_flow_opts o;
    ns_flow_opts_default(&o);
    o.rk_c = 0.1;
    o.eig_every = 1;
    o.max_time = T;
    o.final.eig.k = 1;
    o.final.trace_probes = 0;
    ns_flow_result r;
    assert_int_equal(ns_flow_run(q->m, &q->ds, &q->data, &o, tu_tmpdir(), NULL, &r), 0);
    assert_int_equal(r.status, NS_MAX_TIME);
    assert_true(r.time == T);
    TU_ASSERT_REL(r.s_gf, q->lambda_max, 1e-4);
    TU_ASSERT_REL(r.eta_c, 2 / q->lambda_max, 1e-4);
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = ns_model_theta(q->m)[i] - want[i];
        err += d * d;
        norm += want[i] * want[i];
    }
#ifdef NS_DOUBLE
    double tol = 1e-7;
#else
    double tol = 1e-4;
#endif
    if (!(sqrt(err / norm) <= tol)) fail_msg("flow vs exact: relative error %.3g > %.3g", sqrt(err / norm), tol);
    // and the flow is not trivially at the minimizer: it moved, but has not converged
    double away = 0;
    for (size_t i = 0; i < n; i++) away += (want[i] - star[i]) * (want[i] - star[i]);
    assert_true(sqrt(away / norm) > 1e-3);
    ns_flow_result_free(&r);
    free(g);
    free(bvec);
    free(star);
    free(want);
}

static void flow_stops_at_the_loss_goal_and_reports_eta_c(void **state) {
    quad *q = *state;
    ns_flow_opts o;
    ns_flow_opts_default(&o);
    o.loss_goal = 1e-3;
    o.final.trace_probes = 0;
    ns_flow_result r;
    assert_int_equal(ns_flow_run(q->m, &q->ds, &q->data, &o, tu_tmpdir(), NULL, &r), 0);
    assert_int_equal(r.status, NS_CONVERGED);
    assert_true(r.final_loss <= 1e-3);
    TU_ASSERT_REL(r.eta_c, 2 / q->lambda_max, 1e-3);
    ns_flow_result_free(&r);
}

#define QUAD_TEST(f) cmocka_unit_test_setup_teardown(f, quad_setup, quad_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        QUAD_TEST(gd_converges_just_below_and_diverges_just_above_two_over_lambda),
        QUAD_TEST(heavy_ball_threshold_is_two_times_one_plus_mu_over_lambda),
        QUAD_TEST(max_steps_stops_after_exactly_that_many_updates),
        QUAD_TEST(loss_goal_stops_at_the_first_step_at_or_below_it),
        QUAD_TEST(acc_goal_stops_once_the_training_accuracy_reaches_it),
        QUAD_TEST(diverge_factor_sets_when_a_growing_loss_counts_as_diverged),
        QUAD_TEST(averaged_and_decayed_blocks_are_written_when_asked),
        QUAD_TEST(minibatch_sgd_is_reproducible_for_a_seed),
        QUAD_TEST(rk4_flow_matches_the_exact_exponential_solution_of_a_quadratic),
        QUAD_TEST(flow_stops_at_the_loss_goal_and_reports_eta_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
