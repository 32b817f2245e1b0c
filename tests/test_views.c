// The curvature views (views.h, measure.h) against exact values on small networks: the
// adaptive sharpness against LAPACK on the dense D H D and its invariance under a
// function-preserving rescaling of a relu net; per-layer blocks against LAPACK on dense
// sub-blocks; SLQ against the exact smoothed density; weight decay against H + lambda I and
// against the GD update it defines.
#include "testutil.h"
#include <lapacke.h>
#include "normsharp/measure.h"
#include "normsharp/rng.h"
#include "normsharp/train.h"
#include "normsharp/views.h"

// ---- a small network on random data ------------------------------------------------------
typedef struct {
    ns_dataset ds;
    ns_model *m;
    ns_batch b;
    size_t n;
} net;

// ARCH on 30 random 4-feature points with 3 classes (MSE), theta moved off theta_0 by a
// seeded jitter so that the Hessian is indefinite.
static net net_make(const char *arch, uint64_t seed) {
    net s = {0};
    ns_dataset *ds = &s.ds;
    snprintf(ds->name, sizeof ds->name, "synthetic");
    ds->c = 1, ds->h = 1, ds->w = 4, ds->d = 4, ds->k = 3, ds->n = 30;
    ds->x_train = malloc(30 * 4 * sizeof(real));
    ds->t_train = calloc(30 * 3, sizeof(real));
    ds->y_train = malloc(30 * sizeof(int));
    ns_rng rng;
    ns_rng_seed(&rng, seed, 97);
    for (int i = 0; i < 30 * 4; i++) ds->x_train[i] = (real)ns_rng_normal(&rng);
    for (int i = 0; i < 30; i++) {
        ds->y_train[i] = (int)ns_rng_below(&rng, 3);
        ds->t_train[i * 3 + ds->y_train[i]] = 1;
    }
    ns_model_config cfg = {.init_scale = 1.0, .seed = seed, .c = 1, .h = 1, .w = 4, .k = 3};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "standard");
    if (ns_model_create(&cfg, &s.m)) fail_msg("ns_model_create: %s", ns_errmsg());
    s.n = ns_model_nparams(s.m);
    real *theta = ns_model_theta(s.m);
    for (size_t j = 0; j < s.n; j++) theta[j] += (real)(0.3 * ns_rng_normal(&rng));
    s.b = ns_batch_train(ds, NS_LOSS_MSE);
    return s;
}

static void net_free(net *s) {
    ns_model_free(s->m);
    free(s->ds.x_train);
    free(s->ds.t_train);
    free(s->ds.y_train);
}

// The dense matrix of any operator of dimension n (column j = f(e_j)), symmetrized.
static double *dense_of(ns_matvec_fn f, void *ctx, size_t n) {
    double *a = malloc(n * n * sizeof(double)), *e = calloc(n, sizeof(double)), *col = malloc(n * sizeof(double));
    for (size_t j = 0; j < n; j++) {
        e[j] = 1;
        assert_int_equal(f(ctx, e, col, n), 0);
        for (size_t i = 0; i < n; i++) a[i * n + j] = col[i];
        e[j] = 0;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) a[i * n + j] = a[j * n + i] = 0.5 * (a[i * n + j] + a[j * n + i]);
    free(e);
    free(col);
    return a;
}

// Ascending eigenvalues of the dense symmetric n x n matrix a (LAPACK dsyev); a is kept.
static double *dense_eigenvalues(const double *a, size_t n) {
    double *copy = malloc(n * n * sizeof(double)), *w = malloc(n * sizeof(double));
    memcpy(copy, a, n * n * sizeof(double));
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', (int)n, copy, (int)n, w), 0);
    free(copy);
    return w;
}

static ns_measure_opts tight_opts(void) {
    ns_measure_opts o;
    ns_measure_opts_default(&o);
    o.eig.tol = 1e-10;
    o.eig.max_iter = 300;
    return o;
}

// ---- adaptive sharpness ----------------------------------------------------------------

static double adaptive_sharpness(net *s, double eps, double *plain) {
    ns_measure_opts o = tight_opts();
    o.views.adaptive = 1;
    o.views.adaptive_eps = eps;
    ns_view_result v;
    assert_int_equal(ns_measure_views(s->m, &s->b, &o, &v), 0);
    assert_true(v.have_adaptive && v.adaptive.converged);
    double a = v.adaptive.sharpness;
    ns_view_result_free(&v);
    if (plain) {
        ns_eig_result e;
        assert_int_equal(ns_measure_eig(s->m, &s->b, &o, &e), 0);
        *plain = e.sharpness;
        ns_eig_result_free(&e);
    }
    return a;
}

static void adaptive_sharpness_matches_lapack_on_the_dense_scaled_hessian(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-tanh-4", 1);
    ns_hessian_op h;
    assert_int_equal(ns_hessian_op_init(&h, s.m, &s.b), 0);
    double eps = 0.05, *d = malloc(s.n * sizeof(double));
    for (size_t j = 0; j < s.n; j++) d[j] = fabs(ns_model_theta(s.m)[j]) + eps;
    ns_scaled_op op;
    assert_int_equal(ns_scaled_op_init(&op, ns_hessian_matvec, &h, d, s.n), 0);
    double *a = dense_of(ns_scaled_matvec, &op, s.n), *H = dense_of(ns_hessian_matvec, &h, s.n);
    for (size_t i = 0; i < s.n; i++)  // the operator is D H D entry by entry
        for (size_t j = 0; j < s.n; j++) assert_true(fabs(a[i * s.n + j] - d[i] * H[i * s.n + j] * d[j]) <= 1e-12);
    double *w = dense_eigenvalues(a, s.n);
    double want = fmax(fabs(w[0]), fabs(w[s.n - 1]));
    TU_ASSERT_REL(adaptive_sharpness(&s, eps, NULL), want, 1e-8);
    free(w);
    free(a);
    free(H);
    free(d);
    ns_scaled_op_free(&op);
    ns_hessian_op_free(&h);
    net_free(&s);
}

// fc1 (weight and bias) times c and fc2.weight divided by c: relu(c z) = c relu(z) for c > 0,
// so the network function, hence the loss, is unchanged; the sharpness is not.
static void rescale_relu_layers(ns_model *m, double c) {
    real *theta = ns_model_theta(m);
    for (int t = 0; t < ns_model_ntensors(m); t++) {
        const ns_tensor_info *ti = ns_model_tensor(m, t);
        double f = !strncmp(ti->name, "fc1.", 4) ? c : !strcmp(ti->name, "fc2.weight") ? 1 / c : 1;
        for (size_t i = 0; i < ti->size; i++) theta[ti->offset + i] = (real)(theta[ti->offset + i] * f);
    }
}

static void adaptive_sharpness_is_invariant_under_a_function_preserving_relu_rescaling(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-relu-6-5", 2);
    double loss0, loss1, plain0, plain1;
    assert_int_equal(ns_model_loss(s.m, &s.b, &loss0, NULL), 0);
    double exact0 = adaptive_sharpness(&s, 0, &plain0), default0 = adaptive_sharpness(&s, NS_ADAPTIVE_EPS, NULL);
    rescale_relu_layers(s.m, 4.0);
    assert_int_equal(ns_model_loss(s.m, &s.b, &loss1, NULL), 0);
    TU_ASSERT_REL(loss1, loss0, 1e-12);  // the same function
    double exact1 = adaptive_sharpness(&s, 0, &plain1), default1 = adaptive_sharpness(&s, NS_ADAPTIVE_EPS, NULL);
    assert_true(tu_rel(plain1, plain0, 1e-300) > 0.5);  // the paper's S moves a lot
    TU_ASSERT_REL(exact1, exact0, 1e-8);                // D H D does not (eps = 0)
    TU_ASSERT_REL(default1, default0, 1e-4);            // nor, to O(eps/|theta|), with the default eps
    net_free(&s);
}

// ---- per-layer curvature -----------------------------------------------------------------

static void per_layer_blocks_match_lapack_on_dense_sub_blocks(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-tanh-5-4", 3);
    ns_hessian_op h;
    assert_int_equal(ns_hessian_op_init(&h, s.m, &s.b), 0);
    double *H = dense_of(ns_hessian_matvec, &h, s.n);
    ns_measure_opts o = tight_opts();
    o.views.per_layer = 1;
    o.trace_probes = 8;  // biases (<= 8 entries) get the exact trace, weights Hutchinson
    ns_view_result v;
    assert_int_equal(ns_measure_views(s.m, &s.b, &o, &v), 0);
    assert_int_equal(v.nlayers, ns_model_ntensors(s.m));
    for (int t = 0; t < v.nlayers; t++) {
        const ns_tensor_info *ti = ns_model_tensor(s.m, t);
        size_t k = ti->size, off = ti->offset;
        double *blk = malloc(k * k * sizeof(double)), tr = 0;
        for (size_t i = 0; i < k; i++) {
            for (size_t j = 0; j < k; j++) blk[i * k + j] = H[(off + i) * s.n + off + j];
            tr += blk[i * k + i];
        }
        double *w = dense_eigenvalues(blk, k);
        assert_true(v.layer_converged[t]);
        TU_ASSERT_REL(v.layer_lambda_max[t], w[k - 1], 1e-8);
        TU_ASSERT_REL(v.layer_sharpness[t], fmax(fabs(w[0]), fabs(w[k - 1])), 1e-8);
        assert_int_equal(v.layer_trace_exact[t], k <= 8);
        if (k <= 8) assert_true(fabs(v.layer_trace[t] - tr) <= 1e-10 * (1 + fabs(tr)));
        else assert_true(isfinite(v.layer_trace[t]));
        free(w);
        free(blk);
    }
    ns_view_result_free(&v);
    free(H);
    ns_hessian_op_free(&h);
    net_free(&s);
}

// ---- stochastic Lanczos quadrature ------------------------------------------------------

static double gauss(double x, double sigma) { return exp(-0.5 * x * x / (sigma * sigma)) / (sigma * sqrt(2 * M_PI)); }

// With m = n steps the quadrature of one probe is exact: sum_i w_i g(theta_i) equals
// v^T g(H) v / ||v||^2 for g = the Gaussian kernel at t, computed from LAPACK's eigenpairs.
static void slq_quadrature_of_one_probe_is_exact_with_n_steps(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-tanh-3", 4);
    ns_hessian_op h;
    assert_int_equal(ns_hessian_op_init(&h, s.m, &s.b), 0);
    int n = (int)s.n;
    double *H = dense_of(ns_hessian_matvec, &h, s.n), *w = malloc(n * sizeof(double));
    assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', n, H, n, w), 0);  // H := eigenvectors
    ns_slq_opts o = {.probes = 1, .steps = n, .seed = 9};
    ns_slq_result r;
    assert_int_equal(ns_slq(ns_hessian_matvec, &h, s.n, &o, &r), 0);
    ns_rng rng;  // the same probe
    ns_rng_seed(&rng, 9, NS_STREAM_SLQ);
    double *v = malloc(n * sizeof(double)), vv = 0;
    for (int i = 0; i < n; i++) {
        v[i] = ns_rng_normal(&rng);
        vv += v[i] * v[i];
    }
    double sigma = 0.05 * fmax(fabs(w[0]), fabs(w[n - 1]));
    for (double t = w[0] - 0.1; t <= w[n - 1] + 0.1; t += (w[n - 1] - w[0]) / 37) {
        double want = 0;
        for (int k = 0; k < n; k++) {
            double c = 0;
            for (int i = 0; i < n; i++) c += H[i * n + k] * v[i];
            want += c * c / vv * gauss(t - w[k], sigma);
        }
        assert_true(fabs(ns_slq_density(&r, t, sigma) - want) <= 1e-8 * (1 + want));
    }
    free(v);
    free(w);
    free(H);
    ns_slq_result_free(&r);
    ns_hessian_op_free(&h);
    net_free(&s);
}

// The smoothed density from many probes against the exact one, (1/n) sum_j N(t; lambda_j,
// sigma^2): their L1 distance on a fine grid is small, and both integrate to 1.
static void slq_density_matches_the_exact_smoothed_density(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-tanh-3", 5);
    ns_measure_opts o = tight_opts();
    o.views.density_probes = 400;
    o.views.density_steps = 12;  // far fewer than n: the quadrature's own accuracy is tested
    ns_view_result v;
    assert_int_equal(ns_measure_views(s.m, &s.b, &o, &v), 0);
    ns_hessian_op h;
    assert_int_equal(ns_hessian_op_init(&h, s.m, &s.b), 0);
    double *H = dense_of(ns_hessian_matvec, &h, s.n), *w = dense_eigenvalues(H, s.n);
    int n = (int)s.n;
    double sigma = 0.05 * fmax(fabs(w[0]), fabs(w[n - 1]));
    v.density_sigma = sigma;
    double lo = w[0] - 5 * sigma, hi = w[n - 1] + 5 * sigma, dt = (hi - lo) / 2000, l1 = 0, mass = 0, mass_exact = 0;
    for (double t = lo; t <= hi; t += dt) {
        double exact = 0;
        for (int j = 0; j < n; j++) exact += gauss(t - w[j], sigma) / n;
        double est = ns_slq_density(&v.slq, t, sigma);
        l1 += fabs(est - exact) * dt;
        mass += est * dt;
        mass_exact += exact * dt;
    }
    assert_true(fabs(mass - 1) < 1e-3 && fabs(mass_exact - 1) < 1e-3);
    assert_true(l1 < 0.1);
    // and a wrong spectrum (shifted by one bandwidth) is far: the test can fail
    double l1_shift = 0;
    for (double t = lo; t <= hi; t += dt) {
        double exact = 0;
        for (int j = 0; j < n; j++) exact += gauss(t - w[j] - 2 * sigma, sigma) / n;
        l1_shift += fabs(ns_slq_density(&v.slq, t, sigma) - exact) * dt;
    }
    assert_true(l1_shift > 3 * l1);
    free(w);
    free(H);
    ns_hessian_op_free(&h);
    ns_view_result_free(&v);
    net_free(&s);
}

static void slq_reports_bad_options(void **state) {
    (void)state;
    net s = net_make("fc-tanh-3", 6);
    ns_hessian_op h;
    assert_int_equal(ns_hessian_op_init(&h, s.m, &s.b), 0);
    ns_slq_result r;
    ns_slq_opts o = {.probes = 0, .steps = 5};
    assert_int_equal(ns_slq(ns_hessian_matvec, &h, s.n, &o, &r), NS_EINVAL);
    o = (ns_slq_opts){.probes = 2, .steps = 0};
    assert_int_equal(ns_slq(ns_hessian_matvec, &h, s.n, &o, &r), NS_EINVAL);
    ns_block_op b;
    assert_int_equal(ns_block_op_init(&b, ns_hessian_matvec, &h, s.n, s.n - 2, 3), NS_EINVAL);
    ns_hessian_op_free(&h);
    net_free(&s);
}

// ---- weight decay ----------------------------------------------------------------------

static void weight_decay_shifts_the_hessian_by_lambda_and_the_objective_by_half_lambda_l2_squared(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-tanh-5", 7);
    ns_measure_opts o = tight_opts();
    ns_measurement a, b;
    o.trace_probes = 3;
    assert_int_equal(ns_measure(s.m, &s.b, NULL, &o, &a), 0);
    o.weight_decay = 0.3;
    assert_int_equal(ns_measure(s.m, &s.b, NULL, &o, &b), 0);
    assert_true(isnan(a.objective));
    TU_ASSERT_REL(b.train_loss, a.train_loss, 0);  // the data loss is recorded as it was
    TU_ASSERT_REL(b.objective, a.train_loss + 0.15 * a.l2 * a.l2, 1e-14);
    TU_ASSERT_REL(b.eig.lambda_max, a.eig.lambda_max + 0.3, 1e-8);
    TU_ASSERT_REL(b.eig.lambda_min, a.eig.lambda_min + 0.3, 1e-6);
    TU_ASSERT_REL(b.trace, a.trace + 0.3 * (double)s.n, 1e-10);  // same probes
    ns_measurement_free(&a);
    ns_measurement_free(&b);
    net_free(&s);
}

// One GD step with weight decay lambda moves theta by the extra -eta lambda theta_0.
static void weight_decay_adds_lambda_theta_to_the_gd_step(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    net s = net_make("fc-tanh-5", 8);
    size_t n = s.n;
    real *theta0 = malloc(n * sizeof(real)), *plain = malloc(n * sizeof(real));
    memcpy(theta0, ns_model_theta(s.m), n * sizeof(real));
    ns_data_opts data;
    ns_data_opts_default(&data);
    data.loss = NS_LOSS_MSE;
    double eta = 0.1, lambda = 0.05;
    for (int k = 0; k < 2; k++) {
        ns_train_opts o;
        ns_train_opts_default(&o);
        o.lr = eta;
        o.max_steps = 1;
        o.log_every = 0;
        o.final.method = NS_EIG_NONE;
        o.final.trace_probes = 0;
        o.weight_decay = k ? lambda : 0;
        memcpy(ns_model_theta(s.m), theta0, n * sizeof(real));
        ns_train_result r;
        assert_int_equal(ns_train_run(s.m, &s.ds, &data, &o, tu_tmpdir(), NULL, &r), 0);
        if (k) assert_non_null(strstr(r.summary.data, "\"weight_decay\": 0.05"));
        else assert_null(strstr(r.summary.data, "weight_decay"));  // the default output is unchanged
        ns_train_result_free(&r);
        if (!k) memcpy(plain, ns_model_theta(s.m), n * sizeof(real));
    }
    for (size_t j = 0; j < n; j++)
        assert_true(fabs((ns_model_theta(s.m)[j] - plain[j]) - (-eta * lambda * theta0[j])) <= 1e-14);
    free(theta0);
    free(plain);
    net_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adaptive_sharpness_matches_lapack_on_the_dense_scaled_hessian),
        cmocka_unit_test(adaptive_sharpness_is_invariant_under_a_function_preserving_relu_rescaling),
        cmocka_unit_test(per_layer_blocks_match_lapack_on_dense_sub_blocks),
        cmocka_unit_test(slq_quadrature_of_one_probe_is_exact_with_n_steps),
        cmocka_unit_test(slq_density_matches_the_exact_smoothed_density),
        cmocka_unit_test(slq_reports_bad_options),
        cmocka_unit_test(weight_decay_shifts_the_hessian_by_lambda_and_the_objective_by_half_lambda_l2_squared),
        cmocka_unit_test(weight_decay_adds_lambda_theta_to_the_gd_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
