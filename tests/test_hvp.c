// test_hvp.c — the model's gradient and exact Hessian-vector product (R-operator) against
// finite differences, hand-computed Hessians, and the symmetry of the Hessian they build.
#include <cblas.h>
#include <lapacke.h>
#include <sys/wait.h>
#include <unistd.h>
#include "testutil.h"
#include "../src/model/layers.h"
#include "normsharp/curvature.h"
#include "normsharp/measure.h"
#include "normsharp/model.h"
#include "normsharp/rng.h"

typedef struct {
    ns_model *m;
    ns_batch b;
    real *x, *t;
    int *y;
    size_t p;
} setup;

static setup make(const char *arch, const char *param, int c, int h, int w, int k, long n,
                  ns_loss_kind loss, uint64_t seed) {
    setup s;
    memset(&s, 0, sizeof s);
    ns_model_config cfg = {.init_scale = 1, .seed = seed, .c = c, .h = h, .w = w, .k = k};
    snprintf(cfg.arch, sizeof cfg.arch, "%s", arch);
    snprintf(cfg.param, sizeof cfg.param, "%s", param);
    if (ns_model_create(&cfg, &s.m)) fail_msg("%s: %s", arch, ns_errmsg());
    long d = (long)c * h * w;
    s.p = ns_model_nparams(s.m);
    s.x = test_malloc(sizeof *s.x * (size_t)(n * d));
    s.t = test_calloc((size_t)(n * k), sizeof *s.t);
    s.y = test_malloc(sizeof *s.y * (size_t)n);
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_TEST);
    for (long i = 0; i < n * d; i++) s.x[i] = (real)ns_rng_normal(&r);
    for (long i = 0; i < n; i++) s.t[i * k + (s.y[i] = (int)ns_rng_below(&r, (uint64_t)k))] = 1;
    s.b = (ns_batch){.x = s.x, .y = s.y, .t = s.t, .n = n, .loss = loss};
    return s;
}

static void release(setup *s) {
    ns_model_free(s->m);
    test_free(s->x), test_free(s->t), test_free(s->y);
}

static real *vec(size_t n) { return test_calloc(n ? n : 1, sizeof(real)); }

static real *random_vec(size_t n, uint64_t seed) {
    real *v = vec(n);
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_TEST);
    for (size_t i = 0; i < n; i++) v[i] = (real)ns_rng_normal(&r);
    return v;
}

#define ASSERT_VEC_CLOSE(what, a, b, n, tol)                                              \
    do {                                                                                  \
        double e_ = tu_vec_rel_err(a, b, n);                                              \
        if (!(e_ <= (tol))) fail_msg("%s: relative error %.3g > %.3g", what, e_, (double)(tol)); \
    } while (0)

// Central differences of the loss along each coordinate.
static void fd_gradient(setup *s, real *out, double eps) {
    real *th = ns_model_theta(s->m);
    for (size_t i = 0; i < s->p; i++) {
        real keep = th[i];
        double lp, lm;
        th[i] = keep + (real)eps;
        assert_int_equal(ns_model_loss(s->m, &s->b, &lp, NULL), 0);
        th[i] = keep - (real)eps;
        assert_int_equal(ns_model_loss(s->m, &s->b, &lm, NULL), 0);
        th[i] = keep;
        out[i] = (real)((lp - lm) / (2 * eps));
    }
}

// Central differences of the gradient along v: (g(theta + eps v) - g(theta - eps v)) / 2eps.
static void fd_hvp(setup *s, const real *v, real *out, double eps) {
    real *th = ns_model_theta(s->m), *keep = vec(s->p), *gp = vec(s->p), *gm = vec(s->p);
    memcpy(keep, th, sizeof *th * s->p);
    for (size_t i = 0; i < s->p; i++) th[i] = keep[i] + (real)eps * v[i];
    assert_int_equal(ns_model_grad(s->m, &s->b, gp, NULL, NULL), 0);
    for (size_t i = 0; i < s->p; i++) th[i] = keep[i] - (real)eps * v[i];
    assert_int_equal(ns_model_grad(s->m, &s->b, gm, NULL, NULL), 0);
    memcpy(th, keep, sizeof *th * s->p);
    for (size_t i = 0; i < s->p; i++) out[i] = (gp[i] - gm[i]) / (real)(2 * eps);
    test_free(keep), test_free(gp), test_free(gm);
}

static const char *loss_name(ns_loss_kind l) { return l == NS_LOSS_MSE ? "mse" : "ce"; }

// gradient vs FD of the loss, and H v vs FD of the gradient, for one model and both losses
static void check_model(const char *arch, const char *param, int c, int h, int w, long n,
                        uint64_t seed) {
    for (int li = 0; li < 2; li++) {
        ns_loss_kind loss = li ? NS_LOSS_CE : NS_LOSS_MSE;
        setup s = make(arch, param, c, h, w, 3, n, loss, seed);
        char what[160];
        real *g = vec(s.p), *fd = vec(s.p), *hv = vec(s.p);
        real *v = random_vec(s.p, seed + 100);
        double loss_g, loss_l, acc_g, acc_l;
        assert_int_equal(ns_model_grad(s.m, &s.b, g, &loss_g, &acc_g), 0);
        assert_int_equal(ns_model_loss(s.m, &s.b, &loss_l, &acc_l), 0);
        assert_true(loss_g == loss_l && acc_g == acc_l);
        fd_gradient(&s, fd, 1e-5);
        snprintf(what, sizeof what, "gradient of %s (%s, %s)", arch, param, loss_name(loss));
        ASSERT_VEC_CLOSE(what, g, fd, s.p, 1e-6);
        assert_int_equal(ns_model_hvp(s.m, &s.b, v, hv), 0);
        fd_hvp(&s, v, fd, 1e-6);
        snprintf(what, sizeof what, "H v of %s (%s, %s)", arch, param, loss_name(loss));
        ASSERT_VEC_CLOSE(what, hv, fd, s.p, 1e-6);
        test_free(g), test_free(fd), test_free(hv), test_free(v);
        release(&s);
    }
}

// The float build too (its vectorized tanh is what users run): differences of float
// gradients at a step large enough that rounding (~1e-7 / eps) stays below the tolerance.
static void hvp_matches_finite_differences_in_the_build_precision(void **state) {
    (void)state;
    const char *archs[] = {"fc-tanh-5-4", "fc-softplus-4", "fc-gelu-4", "cnn-tanh-2-avgpool"};
    double eps = sizeof(real) == 8 ? 1e-6 : 1e-3, tol = sizeof(real) == 8 ? 1e-6 : 1e-2;
    for (int a = 0; a < 4; a++) {
        int conv = a == 3;
        setup s = make(archs[a], "standard", 1, conv ? 4 : 2, conv ? 4 : 3, 3, 9, NS_LOSS_CE, 11);
        real *hv = vec(s.p), *fd = vec(s.p), *v = random_vec(s.p, 12);
        assert_int_equal(ns_model_hvp(s.m, &s.b, v, hv), 0);
        fd_hvp(&s, v, fd, eps);
        ASSERT_VEC_CLOSE(archs[a], hv, fd, s.p, tol);
        test_free(hv), test_free(fd), test_free(v);
        release(&s);
    }
}

static void gradient_and_hvp_match_finite_differences_for_tanh_mlp(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("fc-tanh-5-4", "standard", 1, 2, 3, 7, 1);
}

static void gradient_and_hvp_match_finite_differences_for_relu_mlp(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("fc-relu-6-5", "standard", 1, 2, 3, 7, 2);  // generic inputs: no kinks hit
}

static void gradient_and_hvp_match_finite_differences_for_softplus_elu_gelu_linear_mlps(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("fc-softplus-5-4", "standard", 1, 2, 3, 7, 3);
    check_model("fc-elu-5", "standard", 1, 2, 3, 7, 4);
    check_model("fc-gelu-4-4", "standard", 1, 2, 3, 7, 5);
    check_model("fc-linear-3", "standard", 1, 2, 3, 7, 6);
    check_model("fc-tanh", "standard", 1, 2, 3, 7, 7);  // no hidden layer: a linear model
}

static void gradient_and_hvp_match_finite_differences_under_ntk_and_mup(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("fc-tanh-5-4", "ntk", 1, 2, 3, 7, 8);
    check_model("fc-tanh-5-4", "mup", 1, 2, 3, 7, 9);
}

static void gradient_and_hvp_match_finite_differences_for_small_cnns(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("cnn-tanh-2-avgpool", "standard", 1, 6, 6, 3, 10);
    check_model("cnn-tanh-2-maxpool", "standard", 1, 6, 6, 3, 11);
    check_model("cnn-relu-2-3-maxpool", "standard", 2, 6, 5, 2, 12);  // odd width, 2 blocks
    check_model("cnn-softplus-2-2", "ntk", 1, 5, 6, 2, 13);
    // ReLU and average pooling; conv2 has 4 input channels: patches and GEMMs (seed 14
    // puts a pre-activation within the finite differences' step of the ReLU's kink)
    check_model("cnn-relu-4-3", "standard", 1, 6, 6, 3, 15);
    // 8 channels: in the double build a whole block, so the implicit GEMM (and, for the grey
    // first layer, its kernel) where the CPU has FMA, with ReLU's backward inside the pool's
    check_model("cnn-relu-8-8", "standard", 1, 6, 6, 3, 16);
    check_model("cnn-relu-8-8-maxpool", "standard", 1, 6, 6, 3, 17);
}

// ResNets (identity and 1x1 shortcuts, average-pool down-sampling, batch norm) and ViTs
// (patch and position embedding, layer norm, attention, GELU MLP, mean over tokens).
static void gradient_and_hvp_match_finite_differences_for_resnets(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("resnet-tanh-2-3", "standard", 1, 4, 4, 5, 60);
    check_model("resnet-relu-2-3-bn", "standard", 2, 4, 4, 6, 61);
    check_model("resnet-softplus-3-b2-bn", "ntk", 1, 3, 3, 4, 62);
    check_model("resnet-elu-2-3", "mup", 1, 4, 2, 3, 63);
}

static void gradient_and_hvp_match_finite_differences_for_vits(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_model("vit-P2-D4-L1-H2", "standard", 1, 4, 4, 3, 70);
    check_model("vit-P2-D6-L2-H3", "ntk", 2, 2, 4, 2, 71);
    check_model("vit-P4-D4-L1-H1", "mup", 1, 4, 4, 3, 72);  // a single token, a single head
}

// f = w x + b, MSE: L = mean 0.5 (w x_i + b - 1)^2, so H = mean [[x^2, x], [x, 1]].
static void linear_model_has_the_hand_computed_hessian(void **state) {
    (void)state;
    setup s = make("fc-linear", "standard", 1, 1, 1, 1, 3, NS_LOSS_MSE, 20);
    assert_int_equal((int)s.p, 2);
    double xx[3] = {0.5, -2, 2.5}, sx = 0, sxx = 0;
    for (int i = 0; i < 3; i++) s.x[i] = (real)xx[i], sx += xx[i] / 3, sxx += xx[i] * xx[i] / 3;
    real e[2][2] = {{1, 0}, {0, 1}}, hv[2];
    double want[2][2] = {{sxx, sx}, {sx, 1}};
    for (int j = 0; j < 2; j++) {
        assert_int_equal(ns_model_hvp(s.m, &s.b, e[j], hv), 0);
        for (int i = 0; i < 2; i++) TU_ASSERT_REL(hv[i], want[i][j], sizeof(real) == 8 ? 1e-14 : 1e-6);
    }
    release(&s);
}

// One hidden unit, f = w2 sigma(w1 x + b1) + b2 on one example with MSE: every column of
// the Hessian (one HVP with e_j each) equals J^T J + r d2f, worked by hand, r = f - y.
static void assert_unit_hessian(setup *s, const double J[4], const double D[4][4], double r) {
    real e[4], hv[4];
    for (int j = 0; j < 4; j++) {
        for (int i = 0; i < 4; i++) e[i] = i == j;
        assert_int_equal(ns_model_hvp(s->m, &s->b, e, hv), 0);
        for (int i = 0; i < 4; i++) {
            double want = J[i] * J[j] + r * D[i][j];
            if (fabs(hv[i] - want) > (sizeof(real) == 8 ? 1e-14 : 1e-6))
                fail_msg("H[%d][%d] = %.17g, by hand %.17g", i, j, (double)hv[i], want);
        }
    }
}

// f = w2 tanh(w1 x + b1) + b2 on one example with target y, MSE: L = 0.5 (f - y)^2,
// H = J^T J + (f - y) d2f, with a = tanh(u), s = 1 - a^2, s' = -2 a s:
//   J = (w2 s x, w2 s, a, 1);  d2f[w1][w1] = w2 s' x^2, [w1][b1] = w2 s' x, [w1][w2] = s x,
//   [b1][b1] = w2 s', [b1][w2] = s, every other entry 0.
static void tanh_unit_has_the_hand_computed_hessian(void **state) {
    (void)state;
    setup s = make("fc-tanh-1", "standard", 1, 1, 1, 1, 1, NS_LOSS_MSE, 21);
    assert_int_equal((int)s.p, 4);  // fc1.weight, fc1.bias, fc2.weight, fc2.bias
    double x = 0.7, y = 1, w1 = 1.3, b1 = -0.4, w2 = 0.8, b2 = 0.1;
    s.x[0] = (real)x;
    real *th = ns_model_theta(s.m);
    th[0] = (real)w1, th[1] = (real)b1, th[2] = (real)w2, th[3] = (real)b2;
    double a = tanh(w1 * x + b1), sd = 1 - a * a, s2 = -2 * a * sd, r = w2 * a + b2 - y;
    double J[4] = {w2 * sd * x, w2 * sd, a, 1};
    double D[4][4] = {{w2 * s2 * x * x, w2 * s2 * x, sd * x, 0},
                      {w2 * s2 * x, w2 * s2, sd, 0},
                      {sd * x, sd, 0, 0},
                      {0, 0, 0, 0}};
    assert_unit_hessian(&s, J, D, r);
    release(&s);
}

// f = w2 elu(w1 x + b1) + b2 with the pre-activation exactly 0 (w1 x + b1 = 2 * 0.5 - 1):
// PyTorch's convention there is elu'(0) = 1, elu''(0) = 0, so with the tanh unit's notation
// (a = 0, s = 1, s' = 0) H = J^T J + (f - y) d2f with J = (w2 x, w2, 0, 1) and the only
// nonzero entries of d2f: [w1][w2] = x, [b1][w2] = 1. (Taking elu''(0) = 1, the e^z branch,
// adds (f - y) w2 [[x^2, x], [x, 1]] to the (w1, b1) block.)
static void elu_unit_at_its_kink_has_pytorchs_hessian(void **state) {
    (void)state;
    setup s = make("fc-elu-1", "standard", 1, 1, 1, 1, 1, NS_LOSS_MSE, 22);
    double x = 0.5, y = 1, w1 = 2, b1 = -1, w2 = 0.8, b2 = 0.1;
    s.x[0] = (real)x;
    real *th = ns_model_theta(s.m);
    th[0] = (real)w1, th[1] = (real)b1, th[2] = (real)w2, th[3] = (real)b2;
    double r = b2 - y;
    double J[4] = {w2 * x, w2, 0, 1};
    double D[4][4] = {{0, 0, x, 0}, {0, 0, 1, 0}, {x, 1, 0, 0}, {0, 0, 0, 0}};
    assert_unit_hessian(&s, J, D, r);
    release(&s);
}

// The dense Hessian (p x p, row-major), one HVP per column; fails unless it is symmetric
// to max |H - H^T| <= tol max |H|.
static double *dense_hessian(setup *s, double tol) {
    int p = (int)s->p;
    double *H = test_malloc(sizeof *H * (size_t)p * p);
    real *e = vec(s->p), *col = vec(s->p);
    for (int j = 0; j < p; j++) {
        e[j] = 1;
        assert_int_equal(ns_model_hvp(s->m, &s->b, e, col), 0);
        e[j] = 0;
        for (int i = 0; i < p; i++) H[(size_t)i * p + j] = col[i];
    }
    double big = 0, asym = 0;
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) {
            big = fmax(big, fabs(H[(size_t)i * p + j]));
            asym = fmax(asym, fabs(H[(size_t)i * p + j] - H[(size_t)j * p + i]));
        }
    if (asym > tol * big)
        fail_msg("%s: max |H - H^T| = %.3g, max |H| = %.3g", ns_model_cfg(s->m)->arch, asym, big);
    test_free(e), test_free(col);
    return H;
}

// The dense Hessian of a 139-parameter net, one HVP per column: symmetric, and its spectrum.
static void dense_hessian_from_hvps_is_symmetric(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    for (int li = 0; li < 2; li++) {
        ns_loss_kind loss = li ? NS_LOSS_CE : NS_LOSS_MSE;
        setup s = make("fc-tanh-8-8", "standard", 1, 2, 2, 3, 20, loss, 30);
        int p = (int)s.p;
        assert_int_equal(p, 4 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);
        double *H = dense_hessian(&s, 1e-10), *ev = test_malloc(sizeof *ev * (size_t)p);
        double trace = 0;
        for (int i = 0; i < p; i++) trace += H[(size_t)i * p + i];
        assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', p, H, p, ev), 0);
        double sum = 0;
        for (int i = 0; i < p; i++) sum += ev[i];
        TU_ASSERT_REL(sum, trace, 1e-9);
        print_message("fc-tanh-8-8, %s, n=20: lambda_max %.12g, next %.12g %.12g, lambda_min "
                      "%.12g, trace %.12g\n", loss_name(loss), ev[p - 1], ev[p - 2], ev[p - 3],
                      ev[0], trace);
        test_free(H), test_free(ev);
        release(&s);
    }
}

// The dense Hessian of a tiny ResNet (with batch norm) and a tiny ViT, one HVP per column:
// symmetric, and Lanczos on the HVPs finds its extreme eigenvalues.
static void dense_hessians_of_a_resnet_and_a_vit_are_symmetric_and_match_lanczos(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    struct { const char *arch; int c, h, w; } nets[] = {{"resnet-tanh-2-3-bn", 1, 4, 4},
                                                         {"vit-P2-D4-L1-H2", 1, 4, 4}};
    for (int a = 0; a < 2; a++) {
        setup s = make(nets[a].arch, "standard", nets[a].c, nets[a].h, nets[a].w, 3, 12,
                       NS_LOSS_CE, 90 + (uint64_t)a);
        int p = (int)s.p;
        double *H = dense_hessian(&s, 1e-9), *ev = test_malloc(sizeof *ev * (size_t)p);
        assert_int_equal(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', p, H, p, ev), 0);
        ns_hessian_op op;
        assert_int_equal(ns_hessian_op_init(&op, s.m, &s.b), 0);
        ns_lanczos_opts o;
        ns_lanczos_opts_default(&o);
        o.max_iter = p;
        o.tol = 1e-8;
        o.lambda_min_full = 1;  // both ends, not only as far as they decide S
        ns_eig_result r;
        assert_int_equal(ns_lanczos(ns_hessian_matvec, &op, s.p, &o, &r), 0);
        print_message("%s (%d parameters): lambda_max %.10g (Lanczos %.10g), lambda_min %.10g "
                      "(Lanczos %.10g)\n", nets[a].arch, p, ev[p - 1], r.lambda_max, ev[0],
                      r.lambda_min);
        TU_ASSERT_REL(r.lambda_max, ev[p - 1], 1e-7);
        TU_ASSERT_REL(r.lambda_min, ev[0], 1e-7);
        ns_eig_result_free(&r);
        ns_hessian_op_free(&op);
        test_free(H), test_free(ev);
        release(&s);
    }
}

// Passes over the batch in chunks give the loss, gradient and H v of the whole batch.
static void results_do_not_depend_on_the_chunk_size(void **state) {
    (void)state;
    // (batch norm couples the examples: its models ignore the chunk size)
    const char *archs[] = {"fc-gelu-6-5", "cnn-elu-2-maxpool", "resnet-relu-2-3-bn", "vit-P2-D4-L1-H2"};
    for (int a = 0; a < 4; a++) {
        setup s = make(archs[a], "standard", 1, 4, 4, 3, 11, NS_LOSS_CE, 40);
        real *g1 = vec(s.p), *g2 = vec(s.p), *h1 = vec(s.p), *h2 = vec(s.p);
        real *v = random_vec(s.p, 41);
        double l1, l2, a1, a2;
        unsetenv("NS_MODEL_CHUNK");
        assert_int_equal(ns_model_grad(s.m, &s.b, g1, &l1, &a1), 0);
        assert_int_equal(ns_model_hvp(s.m, &s.b, v, h1), 0);
        setenv("NS_MODEL_CHUNK", "3", 1);
        assert_int_equal(ns_model_grad(s.m, &s.b, g2, &l2, &a2), 0);
        assert_int_equal(ns_model_hvp(s.m, &s.b, v, h2), 0);
        unsetenv("NS_MODEL_CHUNK");
        double tol = sizeof(real) == 8 ? 1e-12 : 1e-4;
        TU_ASSERT_REL(l1, l2, tol);
        assert_true(a1 == a2);
        ASSERT_VEC_CLOSE("chunked gradient", g2, g1, s.p, tol);
        ASSERT_VEC_CLOSE("chunked H v", h2, h1, s.p, tol);
        test_free(g1), test_free(g2), test_free(h1), test_free(h2), test_free(v);
        release(&s);
    }
}

// The primal cache of H v: the same bits with it off, with room for some chunks and for all;
// a product after theta or the batch's data changed (in place) is that of the new point.
// ResNets (residual additions, a 1x1 shortcut, batch norm over the whole batch) and a ViT
// (layer norm and attention, whose per-chunk saved values are recomputed, in 4 chunks).
static void hvp_is_the_same_bits_with_and_without_the_primal_cache(void **state) {
    (void)state;
    const char *archs[] = {"fc-tanh-6-5",     "cnn-relu-2-3-maxpool", "cnn-elu-2",
                           "resnet-tanh-2-3", "resnet-relu-2-3-bn",   "vit-P2-D4-L1-H2",
                           "cnn-relu-16-16"};  // the implicit GEMM where the CPU has FMA
    const size_t budgets[] = {0, 2000, 6000, 20000, (size_t)1 << 30};
    int partial = 0;
    setenv("NS_MODEL_CHUNK", "3", 1);
    for (int a = 0; a < 7; a++)
        for (int li = 0; li < 2; li++) {
            ns_loss_kind loss = li ? NS_LOSS_CE : NS_LOSS_MSE;
            setup ref = make(archs[a], "standard", 1, 4, 4, 3, 11, loss, 60);
            ns_model_set_hvp_cache(ref.m, 0);
            real *u = random_vec(ref.p, 61), *w = random_vec(ref.p, 62);
            real *want[4], *got = vec(ref.p);
            for (int i = 0; i < 4; i++) want[i] = vec(ref.p);
            // u, w, u at theta; u after a change of theta; u after a change of the data
            assert_int_equal(ns_model_hvp(ref.m, &ref.b, u, want[0]), 0);
            assert_int_equal(ns_model_hvp(ref.m, &ref.b, w, want[1]), 0);
            ns_model_theta(ref.m)[ref.p - 1] += (real)0.25;
            assert_int_equal(ns_model_hvp(ref.m, &ref.b, u, want[2]), 0);
            ref.x[17] += 1;
            assert_int_equal(ns_model_hvp(ref.m, &ref.b, u, want[3]), 0);
            for (int bi = 0; bi < 5; bi++) {
                setup s = make(archs[a], "standard", 1, 4, 4, 3, 11, loss, 60);
                ns_model_set_hvp_cache(s.m, budgets[bi]);
                const real *in[5] = {u, w, u, u, u};
                const int expect[5] = {0, 1, 0, 2, 3};
                for (int step = 0; step < 5; step++) {
                    if (step == 3) ns_model_theta(s.m)[s.p - 1] += (real)0.25;
                    if (step == 4) s.x[17] += 1;
                    assert_int_equal(ns_model_hvp(s.m, &s.b, in[step], got), 0);
                    if (memcmp(got, want[expect[step]], sizeof *got * s.p))
                        fail_msg("%s (%s), cache of %zu bytes, product %d: not the same bits",
                                 archs[a], loss_name(loss), budgets[bi], step);
                }
                long kept = ns_model_hvp_cache_examples(s.m);
                if (bi == 0) assert_int_equal(kept, 0);
                if (bi == 4) assert_int_equal(kept, 11);
                partial += kept > 0 && kept < 11;
                release(&s);
            }
            for (int i = 0; i < 4; i++) test_free(want[i]);
            test_free(u), test_free(w), test_free(got);
            release(&ref);
        }
    unsetenv("NS_MODEL_CHUNK");
    assert_true(partial > 0);  // some budget held only part of the batch
}

// The loss, gradient and H v of one (theta, batch), at `threads` threads (OpenBLAS's setting,
// which the library's own threads follow). H v twice: the second from the primal cache, the
// same bits. The setting is the caller's again after each pass.
static void passes_at(setup *s, int threads, const real *v, real *g, real *hv, double *loss) {
    int before = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    double acc;
    real *again = vec(s->p);
    assert_int_equal(ns_model_grad(s->m, &s->b, g, loss, &acc), 0);
    assert_int_equal(ns_model_hvp(s->m, &s->b, v, hv), 0);
    assert_int_equal(ns_model_hvp(s->m, &s->b, v, again), 0);
    if (memcmp(again, hv, sizeof *hv * s->p))
        fail_msg("at %d threads, H v from the primal cache is not the same bits", threads);
    if (openblas_get_num_threads() != threads)  // a pass over groups sets it to 1 meanwhile
        fail_msg("after the passes OpenBLAS has %d threads, not %d", openblas_get_num_threads(),
                 threads);
    test_free(again);
    openblas_set_num_threads(before);
}

// The library splits a layer's sums and elementwise passes over threads so that each value is
// computed by one thread in one order (src/model/parallel.c), and gives a convolutional net's
// threads whole groups of chunks whose sums it adds in order (src/model/model.c): the same
// bits at any thread count. Every part of a split job takes at least one range itself, so
// each split crosses threads. Sizes that split: the convolutions' 28 x 28 and 14 x 14 maps in
// chunks of 4 examples (grey first layer, implicit GEMM, pools, ReLU and tanh), a ResNet's
// 16-channel blocks, in batches of one group. Groups over threads: the same nets in chunks of
// 1 example (groups of 4), and batches of 3 and of 10 groups (37 examples, with the groups'
// slots reused; chunks of 4 and of 1), among them a ResNet's, whose 1x1 shortcuts are
// OpenBLAS's products (run on one OpenBLAS thread within a group). (Not MLPs: OpenBLAS's
// threaded GEMMs, which do their products, give other last bits at other thread counts. A
// CNN's head is too small for OpenBLAS to thread.)
static void gradient_and_hvp_are_the_same_bits_at_any_thread_count(void **state) {
    (void)state;
    const struct {
        const char *arch;
        int c, hw;
        long n;
    } nets[] = {{"cnn-relu-32-32", 1, 28, 9},
                {"cnn-relu-32-32-maxpool", 1, 28, 5},
                {"resnet-relu-16-32", 3, 16, 4},
                {"cnn-tanh-16-16", 1, 28, 6},
                {"cnn-relu-16-16-maxpool", 1, 28, 37},
                {"resnet-relu-16-32", 3, 16, 37}};
    const int threads[] = {2, 3, 5};
    const char *chunks[] = {NULL, "1"};
    for (int ci = 0; ci < 2; ci++)
        for (size_t a = 0; a < sizeof nets / sizeof *nets; a++) {
            if (chunks[ci]) setenv("NS_MODEL_CHUNK", chunks[ci], 1);
            setup s = make(nets[a].arch, "standard", nets[a].c, nets[a].hw, nets[a].hw, 10,
                           nets[a].n, NS_LOSS_CE, 70);
            real *v = random_vec(s.p, 71), *g1 = vec(s.p), *h1 = vec(s.p), *g = vec(s.p),
                 *h = vec(s.p);
            double l1, l;
            passes_at(&s, 1, v, g1, h1, &l1);
            for (int t = 0; t < 3; t++) {
                passes_at(&s, threads[t], v, g, h, &l);
                if (memcmp(&l, &l1, sizeof l) || memcmp(g, g1, sizeof *g * s.p) ||
                    memcmp(h, h1, sizeof *h * s.p))
                    fail_msg("%s (n = %ld, chunks of %s) at %d threads: not the same bits as at 1 "
                             "(loss %.17g vs %.17g)", nets[a].arch, nets[a].n,
                             chunks[ci] ? chunks[ci] : "4", threads[t], l, l1);
            }
            unsetenv("NS_MODEL_CHUNK");
            test_free(v), test_free(g1), test_free(h1), test_free(g), test_free(h);
            release(&s);
        }
}

// A batch-norm net's loss in evaluation mode passes over the test batch in chunks (with the
// training batch's statistics), so its threads take groups: the same bits at 1, 2, 3 and 5
// threads, on a test batch of 3 groups. (A net small enough that OpenBLAS threads none of its
// products: the training batch's pass, one chunk, keeps OpenBLAS's setting, and a threaded
// 1x1 shortcut of a larger net gives its statistics other last bits at other counts.)
static void evaluation_loss_of_a_batch_norm_net_is_the_same_bits_at_any_thread_count(void **state) {
    (void)state;
    setup s = make("resnet-relu-4-8-bn", "standard", 3, 8, 8, 10, 20, NS_LOSS_CE, 75);
    setup t = make("resnet-relu-4-8-bn", "standard", 3, 8, 8, 10, 37, NS_LOSS_CE, 76);
    int before = openblas_get_num_threads();
    const int threads[] = {1, 2, 3, 5};
    double l1 = 0, a1 = 0;
    for (int i = 0; i < 4; i++) {
        openblas_set_num_threads(threads[i]);
        double l, a;
        assert_int_equal(ns_model_eval_loss(s.m, &s.b, &t.b, &l, &a), 0);
        if (i == 0) l1 = l, a1 = a;
        if (memcmp(&l, &l1, sizeof l) || a != a1)
            fail_msg("at %d threads the evaluation loss is %.17g, at 1 %.17g", threads[i], l, l1);
    }
    openblas_set_num_threads(before);
    release(&s);
    release(&t);
}

// A pass whose threads take groups of chunks reports the error of the first group that fails,
// whichever thread computed it: labels out of range in groups 1 and 2 (of 16 examples each),
// at 1, 2 and 3 threads. (The error's sentence is kept per thread: the caller's must say it.)
static void an_error_in_another_threads_group_reaches_the_caller(void **state) {
    (void)state;
    setup s = make("cnn-relu-16-16", "standard", 1, 28, 28, 10, 37, NS_LOSS_CE, 74);
    s.y[20] = 11, s.y[34] = 12;
    real *g = vec(s.p);
    int before = openblas_get_num_threads();
    for (int t = 1; t <= 3; t++) {
        openblas_set_num_threads(t);
        ns_clear_error();
        double loss, acc;
        assert_int_equal(ns_model_grad(s.m, &s.b, g, &loss, &acc), NS_EINVAL);
        if (!strstr(ns_errmsg(), "label (11)"))
            fail_msg("at %d threads the error reads \"%s\"", t, ns_errmsg());
    }
    openblas_set_num_threads(before);
    test_free(g);
    release(&s);
}

// A child of fork() has none of its parent's worker threads: it starts its own and computes
// the same bits (a sweep forks its runs after the parent may have used threads).
static void threads_work_in_a_forked_child(void **state) {
    (void)state;
    setup s = make("cnn-relu-32-32", "standard", 1, 28, 28, 10, 8, NS_LOSS_MSE, 72);
    real *v = random_vec(s.p, 73), *g1 = vec(s.p), *h1 = vec(s.p), *g = vec(s.p), *h = vec(s.p);
    double l1, l;
    passes_at(&s, 2, v, g1, h1, &l1);  // the parent's pool exists from here
    assert_true(ns_parallel_workers() > 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);  // a child waiting on its parent's workers would hang: end it
        if (ns_parallel_workers() != 0) _exit(4);
        passes_at(&s, 2, v, g, h, &l);
        if (ns_parallel_workers() == 0) _exit(5);  // it split its jobs over workers of its own
        _exit(memcmp(g, g1, sizeof *g * s.p) || memcmp(h, h1, sizeof *h * s.p) ? 3 : 0);
    }
    assert_true(pid > 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    const char *why[] = {"", "", "", "got other bits", "kept its parent's workers",
                         "started no workers"};
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        fail_msg("the forked child %s",
                 WIFEXITED(status) && WEXITSTATUS(status) <= 5 ? why[WEXITSTATUS(status)]
                                                               : "hung or crashed");
    test_free(v), test_free(g1), test_free(h1), test_free(g), test_free(h);
    release(&s);
}

// H v is linear in v: H (2 u - 3 w) = 2 H u - 3 H w, in float as well as in double.
static void hvp_is_linear_in_v(void **state) {
    (void)state;
    setup s = make("fc-tanh-7-5", "standard", 1, 3, 3, 4, 9, NS_LOSS_MSE, 50);
    real *u = random_vec(s.p, 51), *w = random_vec(s.p, 52), *c = vec(s.p);
    real *hu = vec(s.p), *hw = vec(s.p), *hc = vec(s.p), *want = vec(s.p);
    for (size_t i = 0; i < s.p; i++) c[i] = 2 * u[i] - 3 * w[i];
    assert_int_equal(ns_model_hvp(s.m, &s.b, u, hu), 0);
    assert_int_equal(ns_model_hvp(s.m, &s.b, w, hw), 0);
    assert_int_equal(ns_model_hvp(s.m, &s.b, c, hc), 0);
    for (size_t i = 0; i < s.p; i++) want[i] = 2 * hu[i] - 3 * hw[i];
    ASSERT_VEC_CLOSE("H (2u - 3w)", hc, want, s.p, sizeof(real) == 8 ? 1e-12 : 1e-4);
    test_free(u), test_free(w), test_free(c), test_free(hu), test_free(hw), test_free(hc),
        test_free(want);
    release(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hvp_matches_finite_differences_in_the_build_precision),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_for_tanh_mlp),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_for_relu_mlp),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_for_softplus_elu_gelu_linear_mlps),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_under_ntk_and_mup),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_for_small_cnns),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_for_resnets),
        cmocka_unit_test(gradient_and_hvp_match_finite_differences_for_vits),
        cmocka_unit_test(linear_model_has_the_hand_computed_hessian),
        cmocka_unit_test(tanh_unit_has_the_hand_computed_hessian),
        cmocka_unit_test(elu_unit_at_its_kink_has_pytorchs_hessian),
        cmocka_unit_test(dense_hessian_from_hvps_is_symmetric),
        cmocka_unit_test(dense_hessians_of_a_resnet_and_a_vit_are_symmetric_and_match_lanczos),
        cmocka_unit_test(results_do_not_depend_on_the_chunk_size),
        cmocka_unit_test(hvp_is_linear_in_v),
        cmocka_unit_test(hvp_is_the_same_bits_with_and_without_the_primal_cache),
        cmocka_unit_test(gradient_and_hvp_are_the_same_bits_at_any_thread_count),
        cmocka_unit_test(evaluation_loss_of_a_batch_norm_net_is_the_same_bits_at_any_thread_count),
        cmocka_unit_test(an_error_in_another_threads_group_reaches_the_caller),
        cmocka_unit_test(threads_work_in_a_forked_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
