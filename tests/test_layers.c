// test_layers.c — every layer's backward and tangent passes against central finite
// differences of its forward pass (double build), and the float tanh's accuracy.
#include "testutil.h"
#include "../src/model/layers.h"
#include "normsharp/rng.h"

// ---- a layer under test: y = F(x, p), p = weights and biases in one vector ---------------
typedef struct {
    long nx, np, ny;
    void *ctx;
    void (*fwd)(void *ctx, real *y, const real *x, const real *p);
    // gx = (dF/dx)^T gy (overwrite), gp += (dF/dp)^T gy
    void (*bwd)(void *ctx, real *gx, real *gp, const real *gy, const real *x, const real *p);
    // Ry = dF/dx Rx + dF/dp V
    void (*rfwd)(void *ctx, real *ry, const real *x, const real *rx, const real *p,
                 const real *v);
    // gx, R{gx} (overwrite) and hp += R{gp}
    void (*rbwd)(void *ctx, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                 const real *x, const real *rx, const real *p, const real *v);
    void (*shape_x)(void *ctx, real *x);  // optional: makes the random x special (a constant channel)
    double tol;  // of the finite-difference checks; 0: 1e-6
} layer_ut;

static real *rnd(long n, ns_rng *r, double scale) {
    real *v = test_malloc(sizeof *v * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) v[i] = (real)(scale * ns_rng_normal(r));
    return v;
}

static real *zeros(long n) {
    real *v = test_calloc((size_t)(n ? n : 1), sizeof *v);
    return v;
}

#define ASSERT_VEC_CLOSE(a, b, n, tol)                                                    \
    do {                                                                                  \
        double e_ = tu_vec_rel_err(a, b, (size_t)(n));                                    \
        if (!(e_ <= (tol))) fail_msg("%s vs %s: relative error %.3g > %.3g", #a, #b, e_,  \
                                     (double)(tol));                                      \
    } while (0)

static const double EPS = 1e-5;

// out := a + t d
static void along(real *out, const real *a, const real *d, double t, long n) {
    for (long i = 0; i < n; i++) out[i] = a[i] + (real)t * d[i];
}

// out := (plus - minus) / (2 eps): the central difference of values at +eps and -eps
static void central(real *out, const real *plus, const real *minus, long n) {
    for (long i = 0; i < n; i++) out[i] = (plus[i] - minus[i]) / (real)(2 * EPS);
}

// y(x + t Rx, p + t V) at t = +eps and -eps: the central difference of F along (Rx, V)
static void fd_forward(const layer_ut *L, real *out, const real *x, const real *rx,
                       const real *p, const real *v) {
    real *xp = zeros(L->nx), *pp = zeros(L->np), *y1 = zeros(L->ny), *y2 = zeros(L->ny);
    for (int s = 0; s < 2; s++) {
        double t = s ? -EPS : EPS;
        along(xp, x, rx, t, L->nx);
        along(pp, p, v, t, L->np);
        L->fwd(L->ctx, s ? y2 : y1, xp, pp);
    }
    central(out, y1, y2, L->ny);
    test_free(xp), test_free(pp), test_free(y1), test_free(y2);
}

// out_i = <gy, dF/dz_i> by central differences, z the coordinates of x (wrt_x) or of p:
// the gradient of J = <gy, F(x, p)>.
static void fd_gradient(const layer_ut *L, real *out, int wrt_x, const real *gy, const real *x,
                        const real *p) {
    long n = wrt_x ? L->nx : L->np;
    real *e = zeros(n), *none = zeros(wrt_x ? L->np : L->nx), *dy = zeros(L->ny);
    for (long i = 0; i < n; i++) {
        e[i] = 1;
        fd_forward(L, dy, x, wrt_x ? e : none, p, wrt_x ? none : e);
        double s = 0;
        for (long j = 0; j < L->ny; j++) s += (double)gy[j] * dy[j];
        out[i] = (real)s;
        e[i] = 0;
    }
    test_free(e), test_free(none), test_free(dy);
}

// The checks every layer must pass, on random (generic) x, p, directions and cotangents.
static void check_layer(const layer_ut *L, uint64_t seed, double xscale) {
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_TEST);
    real *x = rnd(L->nx, &r, xscale), *p = rnd(L->np, &r, 0.5), *gy = rnd(L->ny, &r, 1);
    if (L->shape_x) L->shape_x(L->ctx, x);
    real *rx = rnd(L->nx, &r, 1), *v = rnd(L->np, &r, 1), *rgy = rnd(L->ny, &r, 1);
    real *gx = zeros(L->nx), *gp = zeros(L->np), *y = zeros(L->ny);
    double tol = L->tol > 0 ? L->tol : 1e-6;

    // 1. backward = gradient of J = <gy, F(x,p)>: FD along each coordinate of x and p
    L->bwd(L->ctx, gx, gp, gy, x, p);
    real *fdx = zeros(L->nx), *fdp = zeros(L->np);
    fd_gradient(L, fdx, 1, gy, x, p);
    fd_gradient(L, fdp, 0, gy, x, p);
    ASSERT_VEC_CLOSE(gx, fdx, L->nx, tol);
    if (L->np) ASSERT_VEC_CLOSE(gp, fdp, L->np, tol);

    // 2. rforward = directional derivative of F along (Rx, V)
    real *ry = zeros(L->ny), *fdry = zeros(L->ny);
    L->rfwd(L->ctx, ry, x, rx, p, v);
    fd_forward(L, fdry, x, rx, p, v);
    ASSERT_VEC_CLOSE(ry, fdry, L->ny, tol);

    // 3. rbackward = directional derivative of the backward pass along (Rx, V, R{gy})
    real *gx2 = zeros(L->nx), *rgx = zeros(L->nx), *hp = zeros(L->np);
    L->rbwd(L->ctx, gx2, rgx, hp, gy, rgy, x, rx, p, v);
    ASSERT_VEC_CLOSE(gx2, gx, L->nx, 1e-12);
    real *xs = zeros(L->nx), *ps = zeros(L->np), *gys = zeros(L->ny);
    real *gxa = zeros(L->nx), *gxb = zeros(L->nx), *gpa = zeros(L->np), *gpb = zeros(L->np);
    for (int s = 0; s < 2; s++) {
        double t = s ? -EPS : EPS;
        along(xs, x, rx, t, L->nx);
        along(ps, p, v, t, L->np);
        along(gys, gy, rgy, t, L->ny);
        L->bwd(L->ctx, s ? gxb : gxa, s ? gpb : gpa, gys, xs, ps);
    }
    central(gxa, gxa, gxb, L->nx);
    central(gpa, gpa, gpb, L->np);
    ASSERT_VEC_CLOSE(rgx, gxa, L->nx, tol);
    if (L->np) ASSERT_VEC_CLOSE(hp, gpa, L->np, tol);

    real *all[] = {x, p, gy, rx, v, rgy, gx, gp, y, fdx, fdp, ry, fdry,
                   gx2, rgx, hp, xs, ps, gys, gxa, gxb, gpa, gpb};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) test_free(all[i]);
}

// ---- dense --------------------------------------------------------------------------------
typedef struct {
    long n;
    int in, out;
    real wmul;
} dense_ctx;

static void dense_fwd(void *c, real *y, const real *x, const real *p) {
    dense_ctx *d = c;
    ns_dense_forward(y, x, p, p + d->in * d->out, d->wmul, d->n, d->in, d->out);
}
static void dense_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    dense_ctx *d = c;
    ns_dense_backward(gx, gp, gp + d->in * d->out, gy, x, p, d->wmul, d->n, d->in, d->out);
}
static void dense_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                       const real *v) {
    dense_ctx *d = c;
    ns_dense_rforward(ry, x, rx, p, v, v + d->in * d->out, d->wmul, d->n, d->in, d->out);
}
static void dense_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                       const real *x, const real *rx, const real *p, const real *v) {
    dense_ctx *d = c;
    ns_dense_rbackward(gx, rgx, hp, hp + d->in * d->out, gy, rgy, x, rx, p, v, d->wmul, d->n,
                       d->in, d->out);
}

static void dense_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    dense_ctx d = {.n = 5, .in = 4, .out = 3, .wmul = 1};
    layer_ut L = {5 * 4, 4 * 3 + 3, 5 * 3, &d, dense_fwd, dense_bwd, dense_rfwd, dense_rbwd, NULL, 0};
    check_layer(&L, 1, 1);
    d.wmul = (real)0.37;  // an ntk-style forward multiplier
    check_layer(&L, 2, 1);
}

// The forward pass is the plain matrix product: checked against a hand loop.
static void dense_forward_computes_wmul_x_wT_plus_b(void **state) {
    (void)state;
    real x[2 * 3] = {1, 2, 3, -1, 0.5, 2};
    real w[2 * 3] = {0.5, -1, 2, 1, 1, 1};
    real b[2] = {0.25, -0.5};
    real y[4];
    ns_dense_forward(y, x, w, b, 2, 2, 3, 2);
    real want[4] = {2 * (0.5 - 2 + 6) + 0.25, 2 * (1 + 2 + 3) - 0.5,
                    2 * (-0.5 - 0.5 + 4) + 0.25, 2 * (-1 + 0.5 + 2) - 0.5};
    for (int i = 0; i < 4; i++) assert_true(fabs(y[i] - want[i]) < 1e-5);
}

// ---- activations ---------------------------------------------------------------------------
typedef struct {
    ns_act_kind k;
    long len;
    real *a;  // forward output kept for the derivative passes
} act_ctx;

static void act_fwd(void *c, real *y, const real *x, const real *p) {
    (void)p;
    act_ctx *a = c;
    ns_act_forward(a->k, y, x, (size_t)a->len);
}
static void act_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    (void)gp, (void)p;
    act_ctx *a = c;
    ns_act_forward(a->k, a->a, x, (size_t)a->len);
    ns_act_backward(a->k, gx, gy, x, a->a, (size_t)a->len);
}
static void act_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                     const real *v) {
    (void)p, (void)v;
    act_ctx *a = c;
    ns_act_forward(a->k, a->a, x, (size_t)a->len);
    ns_act_rforward(a->k, ry, rx, x, a->a, (size_t)a->len);
}
static void act_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                     const real *x, const real *rx, const real *p, const real *v) {
    (void)hp, (void)p, (void)v;
    act_ctx *a = c;
    ns_act_forward(a->k, a->a, x, (size_t)a->len);
    ns_act_rbackward(a->k, gx, rgx, gy, rgy, x, rx, a->a, (size_t)a->len);
}

static void check_activation(ns_act_kind k, uint64_t seed) {
    act_ctx a = {.k = k, .len = 40};
    a.a = zeros(a.len);
    layer_ut L = {a.len, 0, a.len, &a, act_fwd, act_bwd, act_rfwd, act_rbwd, NULL, 0};
    check_layer(&L, seed, 2);  // values over both branches of relu and elu
    test_free(a.a);
}

static void every_activation_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    ns_act_kind kinds[] = {NS_ACT_LINEAR, NS_ACT_RELU, NS_ACT_TANH, NS_ACT_ELU, NS_ACT_SOFTPLUS,
                           NS_ACT_GELU};
    for (int i = 0; i < 6; i++) check_activation(kinds[i], 10 + (uint64_t)i);
}

// The activations' values at known points (gelu is the exact erf form, as PyTorch's default).
static void activations_have_their_textbook_values(void **state) {
    (void)state;
    real z[4] = {-1.5, -0.2, 0.3, 2.0}, a[4];
    double tol = sizeof(real) == 4 ? 3e-7 : 1e-15;
    ns_act_forward(NS_ACT_GELU, a, z, 4);
    for (int i = 0; i < 4; i++)
        TU_ASSERT_REL(a[i], z[i] * 0.5 * (1 + erf(z[i] / sqrt(2.0))), tol * 4);
    ns_act_forward(NS_ACT_SOFTPLUS, a, z, 4);
    for (int i = 0; i < 4; i++) TU_ASSERT_REL(a[i], log1p(exp((double)z[i])), tol * 4);
    ns_act_forward(NS_ACT_ELU, a, z, 4);
    for (int i = 0; i < 4; i++) TU_ASSERT_REL(a[i], z[i] > 0 ? z[i] : expm1((double)z[i]), tol * 4);
    ns_act_forward(NS_ACT_RELU, a, z, 4);
    for (int i = 0; i < 4; i++) assert_true(a[i] == (z[i] > 0 ? z[i] : 0));
    ns_act_forward(NS_ACT_LINEAR, a, z, 4);
    for (int i = 0; i < 4; i++) assert_true(a[i] == z[i]);
}

// sigma'(z) and sigma''(z) as the passes apply them: gz = sigma' ga with ga = 1, and
// R{gz} = sigma' R{ga} + sigma'' Rz ga with R{ga} = 0, Rz = 1, ga = 1.
static void act_derivatives_at(ns_act_kind k, real z, double *d1, double *d2) {
    real a, ga = 1, rga = 0, rz = 1, gz, rgz;
    ns_act_forward(k, &a, &z, 1);
    ns_act_backward(k, &gz, &ga, &z, &a, 1);
    *d1 = gz;
    ns_act_rbackward(k, &gz, &rgz, &ga, &rga, &z, &rz, &a, 1);
    *d2 = rgz;
}

// The first and second derivatives at every kink, tie and branch point, as PyTorch 1.13's
// autograd gives them (double backward, float64; the table in docs/CONVENTIONS.md), worked by
// hand: relu'(0) = 0; elu'(0) = 1 and elu''(0) = 0 (the e^z branch only for z < 0 in the
// second derivative); softplus is linear above 20, and at 20 its first derivative is the
// sigmoid's while its second is 0; gelu, tanh and linear are smooth at 0.
static void activation_derivatives_at_kinks_follow_pytorch(void **state) {
    (void)state;
    const double s20 = 1 / (1 + exp(-20.0));  // sigmoid(20)
    const struct {
        ns_act_kind k;
        double z, value, d1, d2;
    } pts[] = {
        {NS_ACT_RELU, 0, 0, 0, 0},
        {NS_ACT_RELU, -0.0, 0, 0, 0},
        {NS_ACT_RELU, 0.5, 0.5, 1, 0},
        {NS_ACT_ELU, 0, 0, 1, 0},
        {NS_ACT_ELU, -0.0, 0, 1, 0},
        {NS_ACT_ELU, -1, expm1(-1.0), exp(-1.0), exp(-1.0)},
        {NS_ACT_ELU, 1, 1, 1, 0},
        {NS_ACT_SOFTPLUS, 0, log(2.0), 0.5, 0.25},
        {NS_ACT_SOFTPLUS, 20, 20 + log1p(exp(-20.0)), s20, 0},
        {NS_ACT_SOFTPLUS, 20.5, 20.5, 1, 0},
        {NS_ACT_SOFTPLUS, 30, 30, 1, 0},
        {NS_ACT_SOFTPLUS, 19.5, 19.5 + log1p(exp(-19.5)), 1 / (1 + exp(-19.5)),
         exp(-19.5) / ((1 + exp(-19.5)) * (1 + exp(-19.5)))},
        {NS_ACT_GELU, 0, 0, 0.5, 0.79788456080286535588},  // sigma''(0) = 2 phi(0)
        {NS_ACT_TANH, 0, 0, 1, 0},
        {NS_ACT_LINEAR, 0, 0, 1, 0},
    };
    double tol = sizeof(real) == 4 ? 1e-6 : 1e-15;
    int wrong = 0;  // every point is checked and each wrong one named, then the test fails
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++) {
        real z = (real)pts[i].z, a;
        double d1, d2;
        ns_act_forward(pts[i].k, &a, &z, 1);
        act_derivatives_at(pts[i].k, z, &d1, &d2);
        const char *name = ns_act_name(pts[i].k);
        if (fabs(a - pts[i].value) > tol * fmax(1, fabs(pts[i].value)))
            wrong++, print_error("%s(%g) = %.17g, by hand %.17g\n", name, pts[i].z, (double)a,
                                 pts[i].value);
        if (fabs(d1 - pts[i].d1) > tol)
            wrong++, print_error("%s'(%g) = %.17g, PyTorch %.17g\n", name, pts[i].z, d1, pts[i].d1);
        if (fabs(d2 - pts[i].d2) > tol)
            wrong++, print_error("%s''(%g) = %.17g, PyTorch %.17g\n", name, pts[i].z, d2,
                                 pts[i].d2);
    }
    assert_int_equal(wrong, 0);
}

// ReLU's derivative passes (explicit vectors plus a scalar tail) against the definition
// sigma' v = [z > 0] * v, value for value: every length up to 21 (so every tail), in place
// and not, with z = 0, signed zeros and NaN among the values.
static void relu_derivative_passes_equal_the_definition_in_place_or_not(void **state) {
    (void)state;
    enum { N = 21 };
    real z[N], v[N], w[N], out[N], rout[N], g[N], rg[N];
    for (int i = 0; i < N; i++) {
        z[i] = (real)((i * 7 % 11) - 5) * (real)0.5;  // includes 0
        v[i] = (real)((i * 5 % 9) - 4) * (real)0.25;
        w[i] = (real)((i * 3 % 7) - 3);
    }
    z[4] = (real)-0.0;
    v[6] = (real)NAN;
    z[9] = (real)NAN;
    for (int len = 0; len <= N; len++) {
        ns_act_backward(NS_ACT_RELU, out, v, z, NULL, (size_t)len);
        ns_act_rforward(NS_ACT_RELU, rout, v, z, NULL, (size_t)len);
        memcpy(g, v, sizeof g);
        memcpy(rg, w, sizeof rg);
        ns_act_rbackward(NS_ACT_RELU, g, rg, g, rg, z, NULL, NULL, (size_t)len);  // in place
        for (int i = 0; i < len; i++) {
            real want = (z[i] > 0 ? 1 : 0) * v[i], rwant = (z[i] > 0 ? 1 : 0) * w[i];
            assert_memory_equal(&out[i], &want, sizeof want);
            assert_memory_equal(&rout[i], &want, sizeof want);
            assert_memory_equal(&g[i], &want, sizeof want);
            assert_memory_equal(&rg[i], &rwant, sizeof rwant);
        }
    }
}

// float: the vectorized tanh is within 3 ulp of the exact value everywhere (and propagates
// NaN, saturates at +-1); double: it is libm's tanh.
static void tanh_is_accurate_to_a_few_ulp(void **state) {
    (void)state;
    enum { N = 200003 };
    real *z = test_malloc(sizeof *z * N), *a = test_malloc(sizeof *a * N);
    ns_rng r;
    ns_rng_seed(&r, 3, NS_STREAM_TEST);
    for (int i = 0; i < N; i++) {
        double mag = exp(ns_rng_uniform_in(&r, log(1e-30), log(30.0)));  // log-uniform |z|
        z[i] = (real)(ns_rng_uniform(&r) < 0.5 ? -mag : mag);
    }
    z[0] = 0, z[1] = (real)-0.0, z[2] = (real)0.5, z[3] = (real)-0.5, z[4] = (real)INFINITY;
    z[5] = (real)-INFINITY, z[6] = (real)NAN, z[7] = (real)9.0, z[8] = (real)1e6;
    ns_act_forward(NS_ACT_TANH, a, z, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double ref = tanh((double)z[i]);
        if (isnan(ref)) {
            assert_true(isnan(a[i]));
            continue;
        }
        // the spacing of `real` numbers at ref (subnormals: the smallest spacing)
        int bits = sizeof(real) == 4 ? 24 : 53, emin = sizeof(real) == 4 ? -126 : -1022;
        int ex = ref == 0 ? emin : ilogb(ref);
        double ulp = ldexp(1.0, (ex < emin ? emin : ex) - (bits - 1));
        worst = fmax(worst, fabs(a[i] - ref) / ulp);
    }
    assert_true(signbit(a[1]));
    assert_true(a[4] == 1 && a[5] == -1);
    print_message("tanh (%s): worst error %.2f ulp\n", NS_REAL_NAME, worst);
    if (sizeof(real) == 4) {
        if (worst > 3) fail_msg("float tanh is off by %.2f ulp", worst);
    } else {
        if (worst > 0.5) fail_msg("double tanh is off by %.2f ulp", worst);
    }
    test_free(z), test_free(a);
}

// ---- convolution ---------------------------------------------------------------------------
typedef struct {
    long n;
    ns_conv_shape s;
    real *cols, *rcols, *ws;  // patches of x and of Rx; the reordered weights
} conv_ctx;

static long conv_nw(const conv_ctx *c) { return (long)c->s.co * c->s.c * 9; }

// The caller's part of every pass: the patches of the inputs (none for a direct layer).
static void conv_patches(conv_ctx *k, const real *x, const real *rx) {
    ns_conv3x3_patches(k->cols, x, k->n, &k->s);
    if (rx) ns_conv3x3_patches(k->rcols, rx, k->n, &k->s);
}
static void conv_fwd(void *c, real *y, const real *x, const real *p) {
    conv_ctx *k = c;
    conv_patches(k, x, NULL);
    ns_conv3x3_forward(y, x, k->cols, p, p + conv_nw(k), (real)0.8, k->n, &k->s, k->ws);
}
static void conv_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    conv_ctx *k = c;
    conv_patches(k, x, NULL);
    ns_conv3x3_backward(gx, gp, gp + conv_nw(k), gy, x, k->cols, p, (real)0.8, k->n, &k->s,
                        k->ws);
}
static void conv_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                      const real *v) {
    conv_ctx *k = c;
    conv_patches(k, x, rx);
    ns_conv3x3_rforward(ry, x, rx, k->cols, k->rcols, p, v, v + conv_nw(k), (real)0.8, k->n,
                        &k->s, k->ws);
}
static void conv_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                      const real *x, const real *rx, const real *p, const real *v) {
    conv_ctx *k = c;
    conv_patches(k, x, rx);
    ns_conv3x3_rbackward(gx, rgx, hp, hp + conv_nw(k), gy, rgy, x, rx, k->cols, k->rcols, p, v,
                         (real)0.8, k->n, &k->s, k->ws);
}

// Buffers sized exactly as the layer asks (so that ASan sees any overrun).
static void check_conv_hw(int c, int co, int nchw, int h, int w, uint64_t seed) {
    conv_ctx k = {.n = 3, .s = {.c = c, .h = h, .w = w, .co = co, .nchw = nchw}};
    long patches = (long)ns_conv3x3_patch_size(&k.s, 1) * k.n;
    k.cols = zeros(patches), k.rcols = zeros(patches);
    k.ws = zeros((long)ns_conv3x3_workspace(&k.s));
    long hw = (long)k.s.h * k.s.w;
    layer_ut L = {k.n * hw * k.s.c, conv_nw(&k) + k.s.co, k.n * hw * k.s.co, &k,
                  conv_fwd, conv_bwd, conv_rfwd, conv_rbwd, NULL, 0};
    check_layer(&L, seed, 1);
    test_free(k.cols), test_free(k.rcols), test_free(k.ws);
}
static void check_conv(int c, int co, int nchw, uint64_t seed) { check_conv_hw(c, co, nchw, 4, 5, seed); }

// Few input channels take the direct sums, many the patches and GEMMs; both layouts, and
// more or fewer outputs than inputs (the input gradient's patches have co channels).
static void conv3x3_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    for (int nchw = 0; nchw < 2; nchw++) {
        check_conv(1, 3, nchw, 20 + (uint64_t)nchw);   // direct, a grey image
        check_conv(2, 11, nchw, 22 + (uint64_t)nchw);  // direct, outputs past a whole vector
        check_conv(5, 3, nchw, 24 + (uint64_t)nchw);   // patches, fewer outputs
        check_conv(4, 6, nchw, 26 + (uint64_t)nchw);   // patches, more outputs
    }
    // channels in whole blocks, channels last: the implicit GEMM where the CPU has AVX2 and
    // FMA (3 x 3 x 5 = 45 pixels and 32 outputs leave a short tile of each)
    ns_conv_shape s = {.c = 16, .h = 3, .w = 5, .co = 32, .nchw = 0};
    print_message("16 -> 32 channels: %s\n", ns_conv3x3_implicit(&s) ? "implicit GEMM" : "patches");
    check_conv_hw(16, 32, 0, 3, 5, 28);
    check_conv_hw(1, 32, 1, 3, 5, 29);  // a grey image: its forward sums by the same kernel
}

// The implicit GEMM gives what the patches and sgemm give, in every pass (the two sum in
// different orders, so to rounding): a pixel count and an output count that leave short tiles.
// c -> co channels on an h x w image. A grey image's layer (1 -> 32 channels) takes the
// kernels for its forward sums and weight gradient, and is compared with the direct sums.
static void check_implicit(int c, int co, int nchw, int h, int w) {
    conv_ctx k = {.n = 3, .s = {.c = c, .h = h, .w = w, .co = co, .nchw = nchw}};
    long patches = (long)ns_conv3x3_patch_size(&k.s, 1) * k.n;
    k.cols = zeros(patches), k.rcols = zeros(patches);
    k.ws = zeros((long)ns_conv3x3_workspace(&k.s));
    long nx = k.n * h * w * c, ny = k.n * h * w * co, np = conv_nw(&k) + co;
    ns_rng r;
    ns_rng_seed(&r, 30, NS_STREAM_TEST);
    real *x = rnd(nx, &r, 1), *p = rnd(np, &r, 0.5), *gy = rnd(ny, &r, 1), *rx = rnd(nx, &r, 1);
    real *v = rnd(np, &r, 1), *rgy = rnd(ny, &r, 1), *out[2][7];
    long len[7] = {ny, nx, np, ny, nx, nx, np};
    for (int path = 0; path < 2; path++) {  // 0: implicit, 1: patches (or direct sums)
        ns_conv3x3_no_implicit = path;
        real **o = out[path];
        for (int i = 0; i < 7; i++) o[i] = zeros(len[i]);
        conv_fwd(&k, o[0], x, p);
        conv_bwd(&k, o[1], o[2], gy, x, p);
        conv_rfwd(&k, o[3], x, rx, p, v);
        conv_rbwd(&k, o[4], o[5], o[6], gy, rgy, x, rx, p, v);
    }
    ns_conv3x3_no_implicit = 0;
    // the largest difference relative to the largest value: sums of 144 or more terms of
    // both signs differ by a few units in the last place of their terms
    double tol = sizeof(real) == 4 ? 1e-5 : 1e-13;
    const char *name[7] = {"y", "gx", "gW, gb", "Ry", "gx (rbackward)", "R{gx}", "hW, hb"};
    for (int i = 0; i < 7; i++) {
        double diff = 0, big = 0;
        for (long j = 0; j < len[i]; j++) {
            diff = fmax(diff, fabs((double)out[0][i][j] - out[1][i][j]));
            big = fmax(big, fabs((double)out[1][i][j]));
        }
        print_message("%2d channels, %-15s implicit vs patches: %.2g of the largest value\n", c,
                      name[i], diff / big);
        if (!(diff <= tol * big))
            fail_msg("%d channels, %s: implicit vs patches differ by %.3g of the largest value "
                     "> %.3g", c, name[i], diff / big, tol);
        for (int path = 0; path < 2; path++) test_free(out[path][i]);
    }
    real *all[] = {x, p, gy, rx, v, rgy, k.cols, k.rcols, k.ws};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) test_free(all[i]);
}

static void conv3x3_implicit_gemm_agrees_with_the_patches(void **state) {
    (void)state;
    ns_conv_shape s = {.c = 16, .h = 3, .w = 5, .co = 32, .nchw = 0};
    if (!ns_conv3x3_implicit(&s)) {
        print_message("this CPU has no AVX2 and FMA: no implicit GEMM to test\n");
        skip();
    }
    check_implicit(16, 32, 0, 3, 5);
    check_implicit(32, 16, 0, 3, 5);  // fewer outputs: gy's padded copy is the smaller
    check_implicit(1, 32, 1, 3, 5);
    // Wider images: the weight gradient sums over pixels in strips of rows that fit in L1
    // (conv3x3.c's strip_rows), so that each image takes several strips and a short last one
    // in both builds: 16 -> 32 channels on 7 x 16 in strips of 6 rows (float) or 3 (double),
    // 1 -> 32 on 5 x 40 in strips of 4 or 2.
    check_implicit(16, 32, 0, 7, 16);
    check_implicit(1, 32, 1, 5, 40);
}

// A 3x3 convolution with zero padding, against the textbook sum, PyTorch's layouts: direct
// sums (2 input channels) and patches (5).
static void conv3x3_is_the_padded_cross_correlation(void **state) {
    (void)state;
    for (int c = 2; c <= 5; c += 3) {
        ns_conv_shape s = {.c = c, .h = 3, .w = 4, .co = 2, .nchw = 1};
        ns_rng r;
        ns_rng_seed(&r, 4, NS_STREAM_TEST);
        real *x = rnd(c * 3 * 4, &r, 1), *w = rnd(2 * c * 9, &r, 1), b[2] = {0.5, -0.25};
        real *cols = zeros((long)ns_conv3x3_patch_size(&s, 0));
        real *ws = zeros((long)ns_conv3x3_workspace(&s)), y[3 * 4 * 2];
        ns_conv3x3_patches(cols, x, 1, &s);
        ns_conv3x3_forward(y, x, cols, w, b, 1, 1, &s, ws);
        for (int co = 0; co < 2; co++)
            for (int yy = 0; yy < 3; yy++)
                for (int xx = 0; xx < 4; xx++) {
                    double want = b[co];
                    for (int ci = 0; ci < c; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int iy = yy + ky - 1, ix = xx + kx - 1;
                                if (iy < 0 || iy >= 3 || ix < 0 || ix >= 4) continue;
                                want += w[((co * c + ci) * 3 + ky) * 3 + kx] *
                                        x[(ci * 3 + iy) * 4 + ix];
                            }
                    assert_true(fabs(y[(yy * 4 + xx) * 2 + co] - want) < 1e-5);  // output (h,w,c)
                }
        test_free(x), test_free(w), test_free(cols), test_free(ws);
    }
}

// ---- pooling and flatten ------------------------------------------------------------------
typedef struct {
    ns_pool_kind k;
    long n;
    int h, w, c;
    unsigned char *arg;
} pool_ctx;

static long pool_nx(const pool_ctx *q) { return q->n * q->h * q->w * q->c; }
static long pool_ny(const pool_ctx *q) { return q->n * (q->h / 2) * (q->w / 2) * q->c; }

static void pool_fwd(void *c, real *y, const real *x, const real *p) {
    (void)p;
    pool_ctx *q = c;
    ns_pool_forward(q->k, y, q->arg, x, q->n, q->h, q->w, q->c);
}
// The outputs the passes overwrite start as NaN, so that a value they fail to write shows.
static void poison(real *v, long n) {
    for (long i = 0; i < n; i++) v[i] = (real)NAN;
}
static void pool_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    (void)gp;
    pool_ctx *q = c;
    real *y = zeros(pool_ny(q));
    pool_fwd(c, y, x, p);
    poison(gx, pool_nx(q));
    ns_pool_backward(q->k, gx, gy, q->arg, q->n, q->h, q->w, q->c);
    test_free(y);
}
static void pool_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                      const real *v) {
    (void)v;
    pool_ctx *q = c;
    real *y = zeros(pool_ny(q));
    pool_fwd(c, y, x, p);
    ns_pool_rforward(q->k, ry, rx, q->arg, q->n, q->h, q->w, q->c);
    test_free(y);
}
static void pool_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                      const real *x, const real *rx, const real *p, const real *v) {
    (void)hp, (void)rx, (void)v;
    pool_ctx *q = c;
    real *y = zeros(pool_ny(q));
    pool_fwd(c, y, x, p);
    poison(gx, pool_nx(q)), poison(rgx, pool_nx(q));
    ns_pool_rbackward(q->k, gx, rgx, gy, rgy, q->arg, q->n, q->h, q->w, q->c);
    test_free(y);
}

// Average and max on an odd height (the last row is dropped) and on even sides (every input
// in a window, so nothing is cleared first).
static void pooling_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    for (int k = 0; k < 2; k++)
        for (int h = 4; h <= 5; h++) {
            pool_ctx q = {.k = k ? NS_POOL_MAX : NS_POOL_AVG, .n = 2, .h = h, .w = 4, .c = 3};
            q.arg = test_malloc((size_t)pool_ny(&q));
            layer_ut L = {pool_nx(&q), 0, pool_ny(&q), &q, pool_fwd, pool_bwd, pool_rfwd,
                          pool_rbwd, NULL, 0};
            check_layer(&L, 30 + (uint64_t)(2 * k + h - 4), 1);
            test_free(q.arg);
        }
}

static void maxpool_routes_through_the_first_maximum(void **state) {
    (void)state;
    // one example, 2x2 window, 1 channel: max at position 2 (row 1, col 0), tie with 3
    real x[4] = {0.5, -1, 2, 2}, y[1], gx[4], gy[1] = {3};
    unsigned char arg[1];
    ns_pool_forward(NS_POOL_MAX, y, arg, x, 1, 2, 2, 1);
    assert_true(y[0] == 2 && arg[0] == 2);
    ns_pool_backward(NS_POOL_MAX, gx, gy, arg, 1, 2, 2, 1);
    assert_true(gx[0] == 0 && gx[1] == 0 && gx[2] == 3 && gx[3] == 0);
    ns_pool_forward(NS_POOL_AVG, y, NULL, x, 1, 2, 2, 1);
    assert_true(fabs(y[0] - 0.875) < 1e-7);
    // PyTorch's max_pool2d on the same windows: a four-way tie (at 0 too) routes to the
    // first position; a NaN anywhere wins (the last NaN), so the pool never hides it.
    const struct {
        real x[4];
        int arg;
    } cases[] = {{{1, 1, 1, 1}, 0}, {{0, 0, 0, 0}, 0}, {{0, 2, 2, 1}, 1},
                 {{1, NAN, 2, NAN}, 3}, {{NAN, 3, 1, 1}, 0}, {{1, 2, NAN, 3}, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ns_pool_forward(NS_POOL_MAX, y, arg, cases[i].x, 1, 2, 2, 1);
        if (arg[0] != cases[i].arg)
            fail_msg("window %zu: the max is routed to %d, PyTorch routes it to %d", i,
                     (int)arg[0], cases[i].arg);
        real want = cases[i].x[cases[i].arg];
        assert_memory_equal(y, &want, sizeof want);
    }
}

// ReLU then pooling (max and average) in one backward pass gives, to the bit, what ReLU's
// backward after the pool's gives: zeros of both signs, ties, NaN, an odd edge (5 x 3 images,
// 9 channels: whole vectors and a tail).
static void relu_and_pool_backward_at_once_equal_the_two_passes(void **state) {
    (void)state;
    enum { N = 2, H = 5, W = 3, C = 9, IN = N * H * W * C, OUT = N * (H / 2) * (W / 2) * C };
    ns_rng r;
    ns_rng_seed(&r, 31, NS_STREAM_TEST);
    real z[IN], a[IN], y[OUT], gy[OUT], two[IN], one[IN];
    unsigned char arg[OUT];
    const real special[] = {0, -0.0, NAN, 1, -1, 0.25};
    // the first example: every 4th value special, a tie of 0.5 and -0 in its first row; the
    // second: no value above 0, so that its windows route a gradient to z <= 0 (-g * 0 = -0)
    for (int i = 0; i < IN; i++) {
        z[i] = i < 9 ? (real)(i % 2 ? 0.5 : -0.0) : i % 4 ? (real)ns_rng_normal(&r) : special[i / 4 % 6];
        if (i >= IN / 2) z[i] = i % 7 ? -(real)fabs(ns_rng_normal(&r)) : (real)-0.0;
    }
    for (int i = 0; i < OUT; i++) gy[i] = (real)ns_rng_normal(&r);
    ns_act_forward(NS_ACT_RELU, a, z, IN);
    for (int k = 0; k < 2; k++) {
        ns_pool_kind kind = k ? NS_POOL_AVG : NS_POOL_MAX;
        ns_pool_forward(kind, y, arg, a, N, H, W, C);
        ns_pool_backward(kind, two, gy, arg, N, H, W, C);
        ns_act_backward(NS_ACT_RELU, two, two, z, a, IN);
        memset(one, 0x7f, sizeof one);  // the odd edge must be overwritten too
        ns_pool_relu_backward(kind, one, gy, arg, k ? NULL : y, k ? z : NULL, N, H, W, C);
        for (int i = 0; i < IN; i++)
            if (memcmp(&one[i], &two[i], sizeof one[i]) != 0)
                fail_msg("%s pool, input %d (z = %g): %g at once, %g in two passes",
                         k ? "average" : "max", i, (double)z[i], (double)one[i], (double)two[i]);
        // the R-forward pass: P([z > 0] Rz) for a tangent Rz of both signs
        real rz[IN], ra[IN], ry1[OUT], ry2[OUT];
        for (int i = 0; i < IN; i++) rz[i] = (real)ns_rng_normal(&r);
        ns_act_rforward(NS_ACT_RELU, ra, rz, z, a, IN);
        ns_pool_rforward(kind, ry2, ra, arg, N, H, W, C);
        ns_pool_relu_rforward(kind, ry1, rz, z, arg, N, H, W, C);
        for (int i = 0; i < OUT; i++)
            if (memcmp(&ry1[i], &ry2[i], sizeof ry1[i]) != 0)
                fail_msg("%s pool, R-forward output %d: %g at once, %g in two passes",
                         k ? "average" : "max", i, (double)ry1[i], (double)ry2[i]);
    }
}

static void flatten_uses_pytorch_channel_height_width_order(void **state) {
    (void)state;
    // channels-last (h=2, w=3, c=2): value = 100 c + 10 y + x
    real x[12], y[12], back[12];
    for (int yy = 0; yy < 2; yy++)
        for (int xx = 0; xx < 3; xx++)
            for (int c = 0; c < 2; c++) x[(yy * 3 + xx) * 2 + c] = (real)(100 * c + 10 * yy + xx);
    ns_flatten_forward(y, x, 1, 2, 3, 2);
    for (int c = 0; c < 2; c++)
        for (int yy = 0; yy < 2; yy++)
            for (int xx = 0; xx < 3; xx++)
                assert_true(y[(c * 2 + yy) * 3 + xx] == (real)(100 * c + 10 * yy + xx));
    ns_flatten_backward(back, y, 1, 2, 3, 2);  // the inverse permutation
    assert_memory_equal(back, x, sizeof x);
}


// ---- residual addition ---------------------------------------------------------------------
// The layer under test takes [x (m,co), s (m,c)] as its input and [P, pb] as parameters.
typedef struct {
    long m;
    int c, co, proj;
} res_ctx;

static const real *res_p(const res_ctx *r, const real *p) { return r->proj ? p : NULL; }

static void res_fwd(void *c, real *y, const real *x, const real *p) {
    res_ctx *r = c;
    ns_residual_forward(y, x, x + r->m * r->co, res_p(r, p), (real)0.7, r->m, r->c, r->co);
}
static void res_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    res_ctx *r = c;
    ns_residual_backward(gx, gx + r->m * r->co, r->proj ? gp : NULL, gy, x + r->m * r->co,
                         res_p(r, p), (real)0.7, r->m, r->c, r->co);
}
static void res_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                     const real *v) {
    res_ctx *r = c;
    ns_residual_rforward(ry, rx, x + r->m * r->co, rx + r->m * r->co, res_p(r, p), v, (real)0.7,
                         r->m, r->c, r->co);
}
static void res_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                     const real *x, const real *rx, const real *p, const real *v) {
    res_ctx *r = c;
    long o = r->m * r->co;
    ns_residual_rbackward(gx, rgx, gx + o, rgx + o, r->proj ? hp : NULL, gy, rgy, x + o, rx + o,
                          res_p(r, p), v, (real)0.7, r->m, r->c, r->co);
}

static void residual_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    res_ctx ident = {.m = 6, .c = 3, .co = 3, .proj = 0}, proj = {.m = 5, .c = 2, .co = 4, .proj = 1};
    layer_ut L = {ident.m * 6, 0, ident.m * 3, &ident, res_fwd, res_bwd, res_rfwd, res_rbwd, NULL, 0};
    check_layer(&L, 60, 1);
    layer_ut Lp = {proj.m * (4 + 2), 4 * 2 + 4, proj.m * 4, &proj, res_fwd, res_bwd, res_rfwd,
                   res_rbwd, NULL, 0};
    check_layer(&Lp, 61, 1);
}

// ---- batch norm and layer norm ------------------------------------------------------------
typedef struct {
    ns_norm_kind k;
    long m;
    int c;
    real *xh, *r, *rxh, *a;  // saved values
} norm_ctx;

static void norm_fwd(void *c, real *y, const real *x, const real *p) {
    norm_ctx *q = c;
    ns_norm_forward(q->k, y, q->xh, q->r, NULL, x, p, p + q->c, q->m, q->c);
}
static void norm_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    norm_ctx *q = c;
    real *y = zeros(q->m * q->c);
    norm_fwd(c, y, x, p);
    ns_norm_backward(q->k, gx, gp, gp + q->c, gy, q->xh, q->r, p, q->m, q->c);
    test_free(y);
}
static void norm_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                      const real *v) {
    norm_ctx *q = c;
    real *y = zeros(q->m * q->c);
    norm_fwd(c, y, x, p);
    ns_norm_rforward(q->k, ry, q->rxh, q->a, rx, q->xh, q->r, p, v, v + q->c, q->m, q->c);
    test_free(y);
}
static void norm_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                      const real *x, const real *rx, const real *p, const real *v) {
    norm_ctx *q = c;
    real *ry = zeros(q->m * q->c);
    norm_rfwd(c, ry, x, rx, p, v);
    ns_norm_rbackward(q->k, gx, rgx, hp, hp + q->c, gy, rgy, q->xh, q->r, q->rxh, q->a, p, v,
                      q->m, q->c);
    test_free(ry);
}
// column 1 of x constant: a channel that batch norm divides by sqrt(0 + eps)
static void constant_channel(void *c, real *x) {
    norm_ctx *q = c;
    for (long i = 0; i < q->m; i++) x[i * q->c + 1] = (real)0.3;
}

static void check_norm(ns_norm_kind k, long m, int c, int constant, uint64_t seed) {
    norm_ctx q = {.k = k, .m = m, .c = c};
    long groups = ns_norm_groups(k, m, c);
    q.xh = zeros(m * c), q.rxh = zeros(m * c), q.r = zeros(groups), q.a = zeros(groups);
    // A constant channel has r = 1/sqrt(eps): the central differences' error, which grows
    // as (EPS / the group's spread)^2, is then ~1e-5 relative; the passes themselves are exact.
    layer_ut L = {m * c, 2L * c, m * c, &q, norm_fwd, norm_bwd, norm_rfwd, norm_rbwd,
                  constant ? constant_channel : NULL, constant ? 1e-4 : 0};
    check_layer(&L, seed, 1.5);
    test_free(q.xh), test_free(q.rxh), test_free(q.r), test_free(q.a);
}

static void batch_and_layer_norm_match_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_norm(NS_NORM_BATCH, 7, 3, 0, 70);
    check_norm(NS_NORM_BATCH, 12, 2, 0, 71);
    check_norm(NS_NORM_BATCH, 6, 3, 1, 72);  // a constant channel
    check_norm(NS_NORM_LAYER, 5, 4, 0, 73);
    check_norm(NS_NORM_LAYER, 3, 7, 0, 74);
    check_norm(NS_NORM_LAYER, 4, 3, 0, 75);
}

// LayerNorm of the row (1, 2, 3, 4): mean 2.5, biased variance 1.25, so
// xh = (x - 2.5) / sqrt(1.25 + 1e-5) = (-1.5, -0.5, 0.5, 1.5) * 0.894423...; then y = gamma xh + beta.
static void layer_norm_of_a_hand_worked_row(void **state) {
    (void)state;
    real x[4] = {1, 2, 3, 4}, gamma[4] = {1, 2, 1, -1}, beta[4] = {0, 0, 1, 0.5};
    real y[4], xh[4], r[1];
    ns_norm_forward(NS_NORM_LAYER, y, xh, r, NULL, x, gamma, beta, 1, 4);
    double rr = 0.894423613; // 1 / sqrt(1.25001)
    double want[4] = {-1.5 * rr, 2 * -0.5 * rr, 0.5 * rr + 1, -1.5 * rr + 0.5};
    TU_ASSERT_REL(r[0], rr, 1e-6);
    for (int i = 0; i < 4; i++) TU_ASSERT_REL(y[i], want[i], 1e-6);
}

// ---- multi-head self-attention -------------------------------------------------------------
typedef struct {
    long n;
    ns_attn_shape s;
    real *save, *rsave, *ws;
} attn_ctx;

static long attn_np(const attn_ctx *a) { return 4L * a->s.d * a->s.d + 4L * a->s.d; }

static void attn_fwd(void *c, real *y, const real *x, const real *p) {
    attn_ctx *a = c;
    ns_attention_forward(y, a->save, x, p, (real)0.9, a->n, &a->s);
}
static void attn_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    attn_ctx *a = c;
    real *y = zeros(a->n * a->s.t * a->s.d);
    attn_fwd(c, y, x, p);
    ns_attention_backward(gx, gp, gy, x, a->save, p, (real)0.9, a->n, &a->s, a->ws);
    test_free(y);
}
static void attn_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                      const real *v) {
    attn_ctx *a = c;
    real *y = zeros(a->n * a->s.t * a->s.d);
    attn_fwd(c, y, x, p);
    ns_attention_rforward(ry, a->rsave, x, rx, a->save, p, v, (real)0.9, a->n, &a->s);
    test_free(y);
}
static void attn_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                      const real *x, const real *rx, const real *p, const real *v) {
    attn_ctx *a = c;
    real *ry = zeros(a->n * a->s.t * a->s.d);
    attn_rfwd(c, ry, x, rx, p, v);
    ns_attention_rbackward(gx, rgx, hp, gy, rgy, x, rx, a->save, a->rsave, p, v, (real)0.9,
                           a->n, &a->s, a->ws);
    test_free(ry);
}

static void check_attention(long n, int t, int d, int heads, uint64_t seed) {
    attn_ctx a = {.n = n, .s = {.t = t, .d = d, .heads = heads}};
    a.s.scale = (real)(1 / sqrt((double)d / heads));
    a.save = zeros(n * (long)ns_attention_saved(&a.s));
    a.rsave = zeros(n * (long)ns_attention_saved(&a.s));
    a.ws = zeros((long)ns_attention_scratch(&a.s, n));
    long len = n * t * d;
    layer_ut L = {len, attn_np(&a), len, &a, attn_fwd, attn_bwd, attn_rfwd, attn_rbwd, NULL, 0};
    check_layer(&L, seed, 1);
    test_free(a.save), test_free(a.rsave), test_free(a.ws);
}

static void attention_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_attention(2, 3, 4, 2, 80);
    check_attention(3, 1, 4, 2, 81);  // a single token: softmax of one score
    check_attention(2, 4, 3, 1, 82);  // a single head
    check_attention(1, 5, 6, 3, 83);
}

// Tokens 1 and 2 with q = k = v = x (d = 1, one head, scale 1): the scores are x_i x_j,
// P = [softmax(1, 2); softmax(2, 4)] = [1/(1+e), e/(1+e); 1/(1+e^2), e^2/(1+e^2)], y = P x.
static void attention_of_a_hand_worked_pair(void **state) {
    (void)state;
    real x[2] = {1, 2}, p[4 + 4] = {1, 1, 1, 0, 0, 0, 1, 0}, y[2];
    ns_attn_shape s = {.t = 2, .d = 1, .heads = 1, .scale = 1};
    real save[12];  // qkv (2x3), P (2x2), O (2x1)
    assert_int_equal(ns_attention_saved(&s), 12);
    ns_attention_forward(y, save, x, p, 1, 1, &s);
    double e = exp(1.0), e2 = exp(2.0);
    double tol = sizeof(real) == 8 ? 1e-12 : 1e-6;
    TU_ASSERT_REL(y[0], (1 + 2 * e) / (1 + e), tol);
    TU_ASSERT_REL(y[1], (1 + 2 * e2) / (1 + e2), tol);
}

// ---- patch embedding and mean pooling -------------------------------------------------------
typedef struct {
    long n;
    ns_patch_shape s;
    real *ws;
} patch_ctx;

static void patch_fwd(void *c, real *y, const real *x, const real *p) {
    patch_ctx *q = c;
    ns_patch_forward(y, x, p, (real)0.6, q->n, &q->s, q->ws);
}
static void patch_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    patch_ctx *q = c;
    ns_patch_backward(gx, gp, gy, x, p, (real)0.6, q->n, &q->s, q->ws);
}
static void patch_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                       const real *v) {
    patch_ctx *q = c;
    ns_patch_rforward(ry, x, rx, p, v, (real)0.6, q->n, &q->s, q->ws);
}
static void patch_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                       const real *x, const real *rx, const real *p, const real *v) {
    patch_ctx *q = c;
    ns_patch_rbackward(gx, rgx, hp, gy, rgy, x, rx, p, v, (real)0.6, q->n, &q->s, q->ws);
}

static void check_patch(long n, int c, int h, int w, int P, int d, uint64_t seed) {
    patch_ctx q = {.n = n, .s = {.c = c, .h = h, .w = w, .p = P, .d = d}};
    q.ws = zeros((long)ns_patch_scratch(&q.s, n));
    long t = (long)(h / P) * (w / P);
    layer_ut L = {n * c * h * w, t * d + (long)d * c * P * P + d, n * t * d, &q, patch_fwd,
                  patch_bwd, patch_rfwd, patch_rbwd, NULL, 0};
    check_layer(&L, seed, 1);
    test_free(q.ws);
}

static void patch_embedding_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_patch(2, 1, 4, 6, 2, 3, 90);
    check_patch(1, 2, 3, 3, 3, 2, 91);  // one patch covering the image
    check_patch(2, 3, 2, 2, 1, 2, 92);  // 1x1 patches
}

// Patch k of a 1x4x4 image with P = 2 is the k-th 2x2 block, row by row, read row-major:
// with W = e_j (one-hot) the token's output is that block's pixel j.
static void patches_are_cut_row_by_row_as_pytorch_does(void **state) {
    (void)state;
    ns_patch_shape s = {.c = 1, .h = 4, .w = 4, .p = 2, .d = 1};
    real x[16], p[4 + 4 + 1] = {0}, y[4], ws[64];
    for (int i = 0; i < 16; i++) x[i] = (real)i;
    p[4 + 1] = 1;  // W selects the patch's pixel (0, 1)
    ns_patch_forward(y, x, p, 1, 1, &s, ws);
    real want[4] = {1, 3, 9, 11};
    for (int k = 0; k < 4; k++) assert_true(y[k] == want[k]);
}

typedef struct {
    long n;
    int t, c;
} mean_ctx;

static void mean_fwd(void *c, real *y, const real *x, const real *p) {
    (void)p;
    mean_ctx *q = c;
    ns_meanpool_forward(y, x, q->n, q->t, q->c);
}
static void mean_bwd(void *c, real *gx, real *gp, const real *gy, const real *x, const real *p) {
    (void)gp, (void)x, (void)p;
    mean_ctx *q = c;
    ns_meanpool_backward(gx, gy, q->n, q->t, q->c);
}
static void mean_rfwd(void *c, real *ry, const real *x, const real *rx, const real *p,
                      const real *v) {
    (void)x, (void)p, (void)v;
    mean_ctx *q = c;
    ns_meanpool_rforward(ry, rx, q->n, q->t, q->c);
}
static void mean_rbwd(void *c, real *gx, real *rgx, real *hp, const real *gy, const real *rgy,
                      const real *x, const real *rx, const real *p, const real *v) {
    (void)hp, (void)x, (void)rx, (void)p, (void)v;
    mean_ctx *q = c;
    ns_meanpool_rbackward(gx, rgx, gy, rgy, q->n, q->t, q->c);
}

static void mean_pooling_matches_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    mean_ctx q = {.n = 3, .t = 4, .c = 2};
    layer_ut L = {3 * 4 * 2, 0, 3 * 2, &q, mean_fwd, mean_bwd, mean_rfwd, mean_rbwd, NULL, 0};
    check_layer(&L, 95, 1);
}

// ---- losses --------------------------------------------------------------------------------
static void check_loss(ns_loss_kind kind, uint64_t seed) {
    enum { N = 4, K = 3 };
    ns_rng r;
    ns_rng_seed(&r, seed, NS_STREAM_TEST);
    real *f = rnd(N * K, &r, 1.5), *rf = rnd(N * K, &r, 1), t[N * K] = {0};
    int y[N];
    for (int i = 0; i < N; i++) t[i * K + (y[i] = (int)ns_rng_below(&r, K))] = 1;
    real g[N * K], rg[N * K], fd[N * K], ga[N * K], gb[N * K], fp[N * K];
    double scale = 1.0 / N, sum = 0, s1, s2;
    long correct = 0;
    assert_int_equal(ns_loss_eval(kind, g, rg, f, rf, y, t, N, K, scale, &sum, &correct), 0);
    for (int i = 0; i < N * K; i++) {  // gradient: FD of scale * sum
        memcpy(fp, f, sizeof fp);
        fp[i] = f[i] + (real)EPS;
        s1 = 0, ns_loss_eval(kind, NULL, NULL, fp, NULL, y, t, N, K, scale, &s1, &correct);
        fp[i] = f[i] - (real)EPS;
        s2 = 0, ns_loss_eval(kind, NULL, NULL, fp, NULL, y, t, N, K, scale, &s2, &correct);
        fd[i] = (real)(scale * (s1 - s2) / (2 * EPS));
    }
    ASSERT_VEC_CLOSE(g, fd, N * K, 1e-6);
    for (int s = 0; s < 2; s++) {  // tangent: FD of g along Rf
        along(fp, f, rf, s ? -EPS : EPS, N * K);
        s1 = 0, ns_loss_eval(kind, s ? gb : ga, NULL, fp, NULL, y, t, N, K, scale, &s1, &correct);
    }
    central(fd, ga, gb, N * K);
    ASSERT_VEC_CLOSE(rg, fd, N * K, 1e-6);
    test_free(f), test_free(rf);
}

static void losses_match_finite_differences(void **state) {
    (void)state;
    TU_REQUIRE_DOUBLE();
    check_loss(NS_LOSS_MSE, 40);
    check_loss(NS_LOSS_CE, 41);
}

// docs/CONVENTIONS.md, losses by hand: two examples, two classes.
static void losses_are_scaled_as_the_spec_says(void **state) {
    (void)state;
    real f[4] = {1, 3, 0.5, -0.5}, t[4] = {1, 0, 1, 0};
    int y[2] = {0, 0};
    double sum = 0;
    long correct = 0;
    assert_int_equal(ns_loss_eval(NS_LOSS_MSE, NULL, NULL, f, NULL, y, t, 2, 2, 0.5, &sum, &correct), 0);
    TU_ASSERT_REL(sum / 2, 0.5 * (0.5 * (0 + 9) + 0.5 * (0.25 + 0.25)), 1e-12);
    assert_int_equal(correct, 1);
    sum = 0, correct = 0;
    assert_int_equal(ns_loss_eval(NS_LOSS_CE, NULL, NULL, f, NULL, y, NULL, 2, 2, 0.5, &sum, &correct), 0);
    double l0 = log(exp(1.0) + exp(3.0)) - 1, l1 = log(exp(0.5) + exp(-0.5)) - 0.5;
    TU_ASSERT_REL(sum / 2, 0.5 * (l0 + l1), 1e-7);
    assert_int_equal(correct, 1);
    // MSE without labels takes them from the one-hot targets
    sum = 0, correct = 0;
    assert_int_equal(ns_loss_eval(NS_LOSS_MSE, NULL, NULL, f, NULL, NULL, t, 2, 2, 0.5, &sum, &correct), 0);
    assert_int_equal(correct, 1);
}

static void loss_rejects_missing_targets_and_bad_labels(void **state) {
    (void)state;
    real f[2] = {1, 2};
    int bad[1] = {5};
    double sum = 0;
    long correct = 0;
    assert_int_equal(ns_loss_eval(NS_LOSS_MSE, NULL, NULL, f, NULL, NULL, NULL, 1, 2, 1, &sum, &correct), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "targets"));
    assert_int_equal(ns_loss_eval(NS_LOSS_CE, NULL, NULL, f, NULL, NULL, NULL, 1, 2, 1, &sum, &correct), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "labels"));
    assert_int_equal(ns_loss_eval(NS_LOSS_CE, NULL, NULL, f, NULL, bad, NULL, 1, 2, 1, &sum, &correct), NS_EINVAL);
    assert_non_null(strstr(ns_errmsg(), "label (5)"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dense_forward_computes_wmul_x_wT_plus_b),
        cmocka_unit_test(dense_matches_finite_differences),
        cmocka_unit_test(every_activation_matches_finite_differences),
        cmocka_unit_test(activations_have_their_textbook_values),
        cmocka_unit_test(activation_derivatives_at_kinks_follow_pytorch),
        cmocka_unit_test(relu_derivative_passes_equal_the_definition_in_place_or_not),
        cmocka_unit_test(tanh_is_accurate_to_a_few_ulp),
        cmocka_unit_test(conv3x3_matches_finite_differences),
        cmocka_unit_test(conv3x3_is_the_padded_cross_correlation),
        cmocka_unit_test(conv3x3_implicit_gemm_agrees_with_the_patches),
        cmocka_unit_test(pooling_matches_finite_differences),
        cmocka_unit_test(maxpool_routes_through_the_first_maximum),
        cmocka_unit_test(relu_and_pool_backward_at_once_equal_the_two_passes),
        cmocka_unit_test(flatten_uses_pytorch_channel_height_width_order),
        cmocka_unit_test(residual_matches_finite_differences),
        cmocka_unit_test(batch_and_layer_norm_match_finite_differences),
        cmocka_unit_test(layer_norm_of_a_hand_worked_row),
        cmocka_unit_test(attention_matches_finite_differences),
        cmocka_unit_test(attention_of_a_hand_worked_pair),
        cmocka_unit_test(patch_embedding_matches_finite_differences),
        cmocka_unit_test(patches_are_cut_row_by_row_as_pytorch_does),
        cmocka_unit_test(mean_pooling_matches_finite_differences),
        cmocka_unit_test(losses_match_finite_differences),
        cmocka_unit_test(losses_are_scaled_as_the_spec_says),
        cmocka_unit_test(loss_rejects_missing_targets_and_bad_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
