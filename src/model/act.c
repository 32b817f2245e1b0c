// act.c — elementwise activations a = sigma(z) with first and second derivatives:
//   linear    sigma = z                        sigma' = 1            sigma'' = 0
//   relu      sigma = max(z, 0)                sigma' = [z > 0]      sigma'' = 0
//   tanh      sigma = tanh z                   sigma' = 1 - a^2      sigma'' = -2 a sigma'
//   elu       sigma = z (z > 0), e^z - 1       sigma' = 1, e^z       sigma'' = 0 (z >= 0), e^z
//   softplus  sigma = log(1 + e^z) (z <= 20), z (z > 20)
//                                              sigma' = s = 1/(1+e^-z) (z <= 20), 1
//                                              sigma'' = s (1 - s) (z < 20), 0
//   gelu      sigma = z Phi(z) (exact erf)     sigma' = Phi + z phi  sigma'' = phi (2 - z^2)
// (Phi, phi: the standard normal cdf and density; elu has alpha = 1.) At the kinks these are
// PyTorch's conventions, so that a Hessian agrees with PyTorch's double backward at exact
// zeros too, not only almost everywhere (docs/CONVENTIONS.md has the table):
//   relu'(0) = 0; elu'(0) = 1 and elu''(0) = 0 (PyTorch's elu_backward takes the e^z branch
//   for z <= 0, its double backward the e^z branch only for z < 0); softplus (beta = 1,
//   threshold = 20) is the identity above z = 20, and at z = 20 exactly its first derivative
//   is the sigmoid's while its second is 0 (the double backward tests z < 20).
// The backward and tangent passes are these derivatives applied elementwise:
//   gz = sigma' ga,   Ra = sigma' Rz,   R{gz} = sigma' R{ga} + sigma'' Rz ga.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "layers.h"

static const char *const act_names[] = {"linear", "relu", "tanh", "elu", "softplus", "gelu"};

int ns_act_parse(const char *s, ns_act_kind *out) {
    for (int i = 0; i < (int)(sizeof act_names / sizeof *act_names); i++)
        if (strcmp(s, act_names[i]) == 0) {
            *out = (ns_act_kind)i;
            return 0;
        }
    return -1;
}

const char *ns_act_name(ns_act_kind k) {
    return (unsigned)k < sizeof act_names / sizeof *act_names ? act_names[k] : "?";
}

#define INV_SQRT2 0.70710678118654752440
#define SOFTPLUS_THRESHOLD 20  // PyTorch's default: softplus is linear above it
#define INV_SQRT2PI 0.39894228040143267794

static inline double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

// max(z, 0), keeping NaN, without a branch (the signs of pre-activations are a coin flip,
// which a branch predictor cannot learn): z's bits, masked to zero where z <= 0.
static inline real relu(real z) {
#ifdef NS_DOUBLE
    typedef uint64_t bits;
#else
    typedef uint32_t bits;
#endif
    bits b;
    memcpy(&b, &z, sizeof b);
    b &= (bits)0 - (bits)!(z <= 0);
    memcpy(&z, &b, sizeof z);
    return z;
}

// sigma(z). Scalar; the float build's tanh has a vectorized path below.
static inline real act_value(ns_act_kind k, real z) {
    double x = z;
    switch (k) {
    case NS_ACT_RELU: return relu(z);
    case NS_ACT_TANH: return (real)tanh(x);
    case NS_ACT_ELU: return z > 0 ? z : (real)expm1(x);
    case NS_ACT_SOFTPLUS:
        return z > SOFTPLUS_THRESHOLD ? z : (real)(fmax(x, 0.0) + log1p(exp(-fabs(x))));
    case NS_ACT_GELU: return (real)(x * 0.5 * erfc(-x * INV_SQRT2));
    case NS_ACT_LINEAR: break;
    }
    return z;
}

// sigma'(z) and sigma''(z), given a = sigma(z) from the forward pass (tanh uses only a).
static inline void act_derivs(ns_act_kind k, real z, real a, real *d1, real *d2) {
    double x = z;
    switch (k) {
    case NS_ACT_RELU:
        *d1 = z > 0 ? 1 : 0;
        *d2 = 0;
        return;
    case NS_ACT_TANH:
        *d1 = 1 - a * a;
        *d2 = -2 * a * *d1;
        return;
    case NS_ACT_ELU: {
        real e = z > 0 ? 1 : (real)exp(x);
        *d1 = e;
        *d2 = z < 0 ? e : 0;
        return;
    }
    case NS_ACT_SOFTPLUS: {
        double s = z > SOFTPLUS_THRESHOLD ? 1.0 : sigmoid(x);
        *d1 = (real)s;
        *d2 = z < SOFTPLUS_THRESHOLD ? (real)(s * (1.0 - s)) : 0;
        return;
    }
    case NS_ACT_GELU: {
        double phi = INV_SQRT2PI * exp(-0.5 * x * x);
        *d1 = (real)(0.5 * erfc(-x * INV_SQRT2) + x * phi);
        *d2 = (real)(phi * (2.0 - x * x));
        return;
    }
    case NS_ACT_LINEAR: break;
    }
    *d1 = 1;
    *d2 = 0;
}

// The loops below are written once and instantiated per activation (the kind is a
// constant inside each case), so no branch on the kind remains in the inner loop.
#define ACT_DISPATCH(k, LOOP, ...)                                                        \
    switch (k) {                                                                          \
    case NS_ACT_LINEAR: LOOP(NS_ACT_LINEAR, __VA_ARGS__); break;                          \
    case NS_ACT_RELU: LOOP(NS_ACT_RELU, __VA_ARGS__); break;                              \
    case NS_ACT_TANH: LOOP(NS_ACT_TANH, __VA_ARGS__); break;                              \
    case NS_ACT_ELU: LOOP(NS_ACT_ELU, __VA_ARGS__); break;                                \
    case NS_ACT_SOFTPLUS: LOOP(NS_ACT_SOFTPLUS, __VA_ARGS__); break;                      \
    case NS_ACT_GELU: LOOP(NS_ACT_GELU, __VA_ARGS__); break;                              \
    }

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void forward_loop(ns_act_kind k, real *a, const real *z, size_t len) {
    for (size_t i = 0; i < len; i++) a[i] = act_value(k, z[i]);
}

// ---- ReLU's derivative passes, a vector at a time ----------------------------------------
// They run in place (gz == ga): GCC's vectorizer then finds the pointers overlapping, takes
// its scalar fallback, and the branch on the sign of z mispredicts half the time; in a CNN
// this one pass took 16 % of an HVP. Explicit vectors (GCC extensions) load a block before
// storing it, which is right in place too, and compute sigma' v = [z > 0] * v exactly as the
// scalar loop does (0 * v, not a mask, so signed zeros and NaN come out the same).

// out = [z > 0] * v, elementwise; out may be v. Also compiled for AVX2.
NS_VECTOR_CLONES static void relu_scale(real *out, const real *v, const real *z, size_t len) {
    size_t i = 0;
    for (; i + VLEN <= len; i += VLEN) {
        vreal vz, vv;
        memcpy(&vz, z + i, sizeof vz);
        memcpy(&vv, v + i, sizeof vv);
        vv = NS_RELU_TIMES_V(vz, vv);
        memcpy(out + i, &vv, sizeof vv);
    }
    for (; i < len; i++) out[i] = ns_relu_times(z[i], v[i]);
}

ALWAYS_INLINE void backward_loop(ns_act_kind k, real *gz, const real *ga, const real *z,
                                 const real *a, size_t len) {
    if (k == NS_ACT_RELU) {
        relu_scale(gz, ga, z, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        real d1, d2;
        act_derivs(k, z[i], a[i], &d1, &d2);
        gz[i] = d1 * ga[i];
    }
}

ALWAYS_INLINE void rbackward_loop(ns_act_kind k, real *gz, real *rgz, const real *ga,
                                  const real *rga, const real *z, const real *rz,
                                  const real *a, size_t len) {
    if (k == NS_ACT_RELU) {  // sigma'' = 0: R{gz} = sigma' R{ga}
        if (gz) relu_scale(gz, ga, z, len);
        relu_scale(rgz, rga, z, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {  // GCC unswitches the loop on gz
        real d1, d2, g = ga[i];
        act_derivs(k, z[i], a[i], &d1, &d2);
        real rg = d1 * rga[i];
        if (k != NS_ACT_LINEAR) rg += d2 * rz[i] * g;  // else sigma'' = 0
        rgz[i] = rg;
        if (gz) gz[i] = d1 * g;
    }
}

#ifndef NS_DOUBLE
// ---- float tanh, vectorized -------------------------------------------------------------
// glibc's tanhf costs ~13 ns, which alone would take a third of a gradient of the reference
// workload. This version, 8 lanes at a time with GCC vector extensions, is within a few
// ulp of the correctly rounded tanh (checked in tests/test_layers.c):
//   |x| < 0.5:  odd Taylor series x + c3 x^3 + ... + c15 x^15 (truncation < 1e-8 relative);
//   |x| >= 0.5: (1 - e) / (1 + e) with e = exp(-2|x|) in (0, 0.37], no cancellation;
//   |x| > 9 is clamped to 9, where tanh rounds to +-1 in float. NaN propagates.
// exp(y) for y in [-18, -1]: y = k ln2 + r, |r| <= ln2/2, degree-7 Taylor in r, times 2^k.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

// mask ? a : b, lane by lane (C has no vector ?: operator)
#define V8_SELECT(mask, a, b) ((v8f)(((v8i)(a) & (mask)) | ((v8i)(b) & ~(mask))))

// out[0..8) = tanh(in[0..8)). Takes pointers, not vectors, so that no vector crosses a call.
static inline __attribute__((always_inline)) void v8_tanh(float *out, const float *in) {
    v8f x;
    memcpy(&x, in, sizeof x);
    const v8f one = {1, 1, 1, 1, 1, 1, 1, 1};
    v8i bits = (v8i)x;
    v8i sign = bits & INT32_MIN;
    v8f ax = (v8f)(bits & INT32_MAX);
    v8f nine = one * 9.0f;
    ax = V8_SELECT(ax > nine, nine, ax);

    v8f s = ax * ax;  // Taylor coefficients of tanh: 2^2n (2^2n - 1) B_2n / (2n)!
    v8f p = one * (float)(-929569.0 / 638512875.0);
    p = p * s + (float)(21844.0 / 6081075.0);
    p = p * s + (float)(-1382.0 / 155925.0);
    p = p * s + (float)(62.0 / 2835.0);
    p = p * s + (float)(-17.0 / 315.0);
    p = p * s + (float)(2.0 / 15.0);
    p = p * s + (float)(-1.0 / 3.0);
    v8f small = ax + ax * s * p;

    v8f y = ax * -2.0f;
    v8f t = y * (float)1.44269504088896340736 - 0.5f;  // y/ln2 rounded to nearest (y <= 0)
    v8i k = __builtin_convertvector(t, v8i);
    v8f kf = __builtin_convertvector(k, v8f);
    v8f r = y - kf * 0.693145751953125f;    // ln2 = hi + lo, hi with 15 significant
    r = r - kf * 1.4286068202862268e-06f;   // bits: kf * hi is exact for |k| <= 26
    v8f e = one * (float)(1.0 / 5040.0);
    e = e * r + (float)(1.0 / 720.0);
    e = e * r + (float)(1.0 / 120.0);
    e = e * r + (float)(1.0 / 24.0);
    e = e * r + (float)(1.0 / 6.0);
    e = e * r + 0.5f;
    e = e * r + 1.0f;
    e = e * r + 1.0f;
    e = e * (v8f)((k + 127) << 23);         // times 2^k
    v8f big = (one - e) / (one + e);

    v8f res = V8_SELECT(ax < one * 0.5f, small, big);
    res = (v8f)((v8i)res | sign);
    memcpy(out, &res, sizeof res);
}

// On x86-64 the loop is also compiled for AVX2 (8 lanes in one register) and the better
// version is picked when the program loads; elsewhere GCC lowers the vectors as it can.
NS_VECTOR_CLONES static void tanh_forward_float(float *a, const float *z, size_t len) {
    size_t i = 0;
    for (; i + 8 <= len; i += 8) v8_tanh(a + i, z + i);
    if (i < len) {  // the tail, through a zero-padded block
        float in[8] = {0}, out[8];
        memcpy(in, z + i, (len - i) * sizeof *z);
        v8_tanh(out, in);
        memcpy(a + i, out, (len - i) * sizeof *a);
    }
}
#endif

// ReLU's forward pass, also compiled for AVX2 (GCC vectorizes relu's bit masks).
NS_VECTOR_CLONES static void relu_forward(real *a, const real *z, size_t len) {
    for (size_t i = 0; i < len; i++) a[i] = relu(z[i]);
}

static void act_forward(ns_act_kind k, real *a, const real *z, size_t len) {
    if (k == NS_ACT_RELU) {
        relu_forward(a, z, len);
        return;
    }
#ifndef NS_DOUBLE
    if (k == NS_ACT_TANH) {
        tanh_forward_float(a, z, len);
        return;
    }
#endif
    ACT_DISPATCH(k, forward_loop, a, z, len)
}

static void act_backward(ns_act_kind k, real *gz, const real *ga, const real *z, const real *a,
                         size_t len) {
    ACT_DISPATCH(k, backward_loop, gz, ga, z, a, len)
}

static void act_rbackward(ns_act_kind k, real *gz, real *rgz, const real *ga, const real *rga,
                          const real *z, const real *rz, const real *a, size_t len) {
    ACT_DISPATCH(k, rbackward_loop, gz, rgz, ga, rga, z, rz, a, len)
}

// ---- the passes, split over threads (ns_parallel_for) -----------------------------------------
// Every pass is elementwise, so a range of values is computed as the whole pass would compute
// it: the same bits for any split. Ranges are whole cache lines (NS_LINE values).
typedef struct {
    int pass;  // 0 forward, 1 backward (and R-forward, the same map), 2 R-backward
    ns_act_kind k;
    real *out, *out2;
    const real *in, *in2, *z, *rz, *a;
    size_t len;
} act_job;

static void act_range(void *arg, long lo, long hi) {
    const act_job *j = arg;
    size_t i = (size_t)lo * NS_LINE, end = (size_t)hi * NS_LINE;
    if (end > j->len) end = j->len;
    if (j->pass == 0)
        act_forward(j->k, j->out + i, j->in + i, end - i);
    else if (j->pass == 1)
        act_backward(j->k, j->out + i, j->in + i, NS_OFFSET(j->z, i), NS_OFFSET(j->a, i),
                     end - i);
    else
        act_rbackward(j->k, NS_OFFSET(j->out, i), j->out2 + i, j->in + i, j->in2 + i,
                      NS_OFFSET(j->z, i), NS_OFFSET(j->rz, i), NS_OFFSET(j->a, i), end - i);
}

static void act_run(act_job j) {
    ns_parallel_for(act_range, &j, (long)((j.len + NS_LINE - 1) / NS_LINE),
                    ns_elementwise_grain(NS_LINE));
}

void ns_act_forward(ns_act_kind k, real *a, const real *z, size_t len) {
    act_run((act_job){.pass = 0, .k = k, .out = a, .in = z, .len = len});
}

void ns_act_backward(ns_act_kind k, real *gz, const real *ga, const real *z, const real *a,
                     size_t len) {
    act_run((act_job){.pass = 1, .k = k, .out = gz, .in = ga, .z = z, .a = a, .len = len});
}

void ns_act_rforward(ns_act_kind k, real *ra, const real *rz, const real *z, const real *a,
                     size_t len) {  // the same map as the backward pass: Ra = sigma' Rz
    act_run((act_job){.pass = 1, .k = k, .out = ra, .in = rz, .z = z, .a = a, .len = len});
}

void ns_act_rbackward(ns_act_kind k, real *gz, real *rgz, const real *ga, const real *rga,
                      const real *z, const real *rz, const real *a, size_t len) {
    act_run((act_job){.pass = 2, .k = k, .out = gz, .out2 = rgz, .in = ga, .in2 = rga, .z = z,
                      .rz = rz, .a = a, .len = len});
}
