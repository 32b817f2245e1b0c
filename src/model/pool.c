// pool.c — 2x2 pooling with stride 2 on channels-last tensors x (n,h,w,c) -> y (n,h/2,w/2,c).
//   avg: y = (x00 + x01 + x10 + x11) / 4                 (linear)
//   max: y = x_arg, arg = first position of the maximum   (linear once arg is fixed)
// The window is scanned row-major (00, 01, 10, 11), PyTorch's order: a tie goes to the first
// maximum, and a NaN wins over any number (the last NaN, as in PyTorch), so the pool never
// hides a NaN from the loss.
// Since both maps are linear in x for a fixed routing, the tangent passes are the same
// maps: Ry = P Rx, and the backward pass is the transpose: gx = P^T gy, R{gx} = P^T R{gy}.
// Max pooling is piecewise linear, so its second derivative is zero almost everywhere and
// the routing recorded by the forward pass is all that the Hessian needs.
#include <string.h>
#include "layers.h"

// Offset (in values) of window position q (0..3, row-major) from the window's top-left.
static inline long window_offset(int q, int w, int c) {
    return (long)(q >> 1) * w * c + (long)(q & 1) * c;
}

// Runs the statement (...) for every window: o0 = the index in y of its first channel, i0 =
// the index in x of its top-left input's first channel.
#define FOR_EACH_WINDOW_START(n, h, w, c, ...)                                         \
    do {                                                                                \
        int h2_ = (h) / 2, w2_ = (w) / 2;                                               \
        for (long e_ = 0; e_ < (n); e_++)                                               \
            for (int oy_ = 0; oy_ < h2_; oy_++)                                         \
                for (int ox_ = 0; ox_ < w2_; ox_++) {                                   \
                    long o0 = ((e_ * h2_ + oy_) * w2_ + ox_) * (c);                     \
                    long i0 = ((e_ * (h) + 2 * oy_) * (w) + 2 * ox_) * (long)(c);       \
                    __VA_ARGS__;                                                        \
                }                                                                       \
    } while (0)

// Runs the statement (...) for every output value: o = its index in y, i = index of the window's
// top-left input in x, with ch the channel.
#define FOR_EACH_WINDOW(n, h, w, c, ...)                                               \
    FOR_EACH_WINDOW_START(n, h, w, c, {                                                 \
        for (int ch = 0; ch < (c); ch++) {                                              \
            long o = o0 + ch, i = i0 + ch;                                              \
            __VA_ARGS__;                                                                \
        }                                                                               \
    })

// The window's four inputs as offsets from its top-left (0, d01, d10, d11).
#define WINDOW_OFFSETS(w, c) \
    {0, window_offset(1, w, c), window_offset(2, w, c), window_offset(3, w, c)}

static void serial_forward(ns_pool_kind k, real *y, unsigned char *arg, const real *x, long n,
                           int h, int w, int c) {
    long d01 = window_offset(1, w, c), d10 = window_offset(2, w, c), d11 = window_offset(3, w, c);
    if (k == NS_POOL_AVG) {
        FOR_EACH_WINDOW(n, h, w, c, y[o] = (real)0.25 * (x[i] + x[i + d01] + x[i + d10] + x[i + d11]));
        return;
    }
    FOR_EACH_WINDOW(n, h, w, c, {
        real m = x[i], v;
        unsigned char best = 0;
        if ((v = x[i + d01]) > m || v != v) m = v, best = 1;
        if ((v = x[i + d10]) > m || v != v) m = v, best = 2;
        if ((v = x[i + d11]) > m || v != v) m = v, best = 3;
        y[o] = m;
        arg[o] = best;
    });
}

static void serial_rforward(ns_pool_kind k, real *ry, const real *rx, const unsigned char *arg,
                            long n, int h, int w, int c) {
    if (k == NS_POOL_AVG) {
        serial_forward(k, ry, NULL, rx, n, h, w, c);
        return;
    }
    FOR_EACH_WINDOW(n, h, w, c, ry[o] = rx[i + window_offset(arg[o], w, c)]);
}

// gx (n,h,w,c) is overwritten; inputs outside every window (odd edges) get 0. Every window
// writes all four of its inputs, so only those edges need clearing first.
static void serial_backward(ns_pool_kind k, real *gx, const real *gy, const unsigned char *arg,
                            long n, int h, int w, int c) {
    if (h % 2 || w % 2) memset(gx, 0, sizeof *gx * (size_t)n * h * w * c);
    long d01 = window_offset(1, w, c), d10 = window_offset(2, w, c), d11 = window_offset(3, w, c);
    if (k == NS_POOL_AVG) {
        FOR_EACH_WINDOW(n, h, w, c, {
            real q = (real)0.25 * gy[o];
            gx[i] = q;
            gx[i + d01] = q;
            gx[i + d10] = q;
            gx[i + d11] = q;
        });
        return;
    }
    FOR_EACH_WINDOW(n, h, w, c, {
        real g = gy[o];
        unsigned char a = arg[o];
        gx[i] = a == 0 ? g : 0;
        gx[i + d01] = a == 1 ? g : 0;
        gx[i + d10] = a == 2 ? g : 0;
        gx[i + d11] = a == 3 ? g : 0;
    });
}

// ns_pool_relu_backward for average pooling: [z > 0] * g for each input, g = gy / 4, a vector
// of channels at a time (a branch on z's sign would mispredict half the time).
NS_VECTOR_CLONES static void relu_avg_backward(real *gz, const real *gy, const real *z, long n,
                                               int h, int w, int c) {
    const long d[4] = WINDOW_OFFSETS(w, c);
    FOR_EACH_WINDOW_START(n, h, w, c, {
        int ch = 0;
        for (; ch + VLEN <= c; ch += VLEN) {
            vreal q, vz;
            memcpy(&q, gy + o0 + ch, sizeof q);
            q *= (real)0.25;
            for (int p = 0; p < 4; p++) {
                memcpy(&vz, z + i0 + d[p] + ch, sizeof vz);
                vreal out = NS_RELU_TIMES_V(vz, q);
                memcpy(gz + i0 + d[p] + ch, &out, sizeof out);
            }
        }
        for (; ch < c; ch++) {
            real q = (real)0.25 * gy[o0 + ch];
            for (int p = 0; p < 4; p++) gz[i0 + d[p] + ch] = ns_relu_times(z[i0 + d[p] + ch], q);
        }
    });
}

// ns_pool_relu_rforward for average pooling: 0.25 ([z > 0] Rz summed over the window, in
// ns_pool_forward's order), a vector of channels at a time.
NS_VECTOR_CLONES static void relu_avg_rforward(real *ry, const real *rz, const real *z, long n,
                                               int h, int w, int c) {
    const long d[4] = WINDOW_OFFSETS(w, c);
    FOR_EACH_WINDOW_START(n, h, w, c, {
        int ch = 0;
        for (; ch + VLEN <= c; ch += VLEN) {
            vreal a[4], vz, vr;
            for (int p = 0; p < 4; p++) {
                memcpy(&vz, z + i0 + d[p] + ch, sizeof vz);
                memcpy(&vr, rz + i0 + d[p] + ch, sizeof vr);
                a[p] = NS_RELU_TIMES_V(vz, vr);
            }
            vreal out = (real)0.25 * (a[0] + a[1] + a[2] + a[3]);
            memcpy(ry + o0 + ch, &out, sizeof out);
        }
        for (; ch < c; ch++) {
            real a[4];
            for (int p = 0; p < 4; p++) a[p] = ns_relu_times(z[i0 + d[p] + ch], rz[i0 + d[p] + ch]);
            ry[o0 + ch] = (real)0.25 * (a[0] + a[1] + a[2] + a[3]);
        }
    });
}

// ReLU followed by pooling, in one R-forward pass: ry = P([z > 0] Rz), to the bit what act.c's
// ReLU tangent and then ns_pool_rforward give, without forming the ReLU's tangent.
static void serial_relu_rforward(ns_pool_kind k, real *ry, const real *rz, const real *z,
                                 const unsigned char *arg, long n, int h, int w, int c) {
    if (k == NS_POOL_AVG) {
        relu_avg_rforward(ry, rz, z, n, h, w, c);
        return;
    }
    FOR_EACH_WINDOW(n, h, w, c, {
        long j = i + window_offset(arg[o], w, c);
        ry[o] = ns_relu_times(z[j], rz[j]);
    });
}

// ReLU followed by pooling, a = relu(z) (n,h,w,c) -> y (n,h/2,w/2,c), in one backward pass:
// gz = [z > 0] (P^T gy), elementwise, as act.c's ReLU after ns_pool_backward would give it,
// to the bit. Max pooling: only the input a window routes to gets a gradient, and there z > 0
// exactly when y > 0 (y is that input's relu, which keeps NaN), so z is not read (it may be
// NULL). Average pooling reads z.
static void serial_relu_backward(ns_pool_kind k, real *gz, const real *gy,
                                 const unsigned char *arg, const real *y, const real *z, long n,
                                 int h, int w, int c) {
    if (h % 2 || w % 2) memset(gz, 0, sizeof *gz * (size_t)n * h * w * c);
    long d01 = window_offset(1, w, c), d10 = window_offset(2, w, c), d11 = window_offset(3, w, c);
    if (k == NS_POOL_AVG) {
        relu_avg_backward(gz, gy, z, n, h, w, c);
        return;
    }
    FOR_EACH_WINDOW(n, h, w, c, {
        real g = ns_relu_times(y[o], gy[o]);  // y > 0 exactly where the routed z > 0
        unsigned char a = arg[o];
        gz[i] = a == 0 ? g : 0;
        gz[i + d01] = a == 1 ? g : 0;
        gz[i + d10] = a == 2 ? g : 0;
        gz[i + d11] = a == 3 ? g : 0;
    });
}

// ---- the passes, split over threads by examples (ns_parallel_for) ------------------------------
// Each example's outputs are computed as the whole pass computes them: the same bits for any
// split.
typedef enum { FORWARD, RFORWARD, BACKWARD, RELU_RFORWARD, RELU_BACKWARD } pool_pass;
typedef struct {
    pool_pass pass;
    ns_pool_kind k;
    real *out;
    unsigned char *arg_out;
    const real *in, *y, *z;  // in: x, Rx, gy or Rz
    const unsigned char *arg;
    long n;
    int h, w, c;
} pool_job;


static void pool_range(void *ctx, long lo, long hi) {
    const pool_job *j = ctx;
    size_t in = (size_t)j->h * j->w * j->c, out = (size_t)(j->h / 2) * (j->w / 2) * j->c;
    size_t i = (size_t)lo * in, o = (size_t)lo * out;
    long n = hi - lo;
    int h = j->h, w = j->w, c = j->c;
    const unsigned char *arg = NS_OFFSET(j->arg, o);
    switch (j->pass) {
    case FORWARD:
        serial_forward(j->k, j->out + o, NS_OFFSET(j->arg_out, o), j->in + i, n, h, w, c);
        break;
    case RFORWARD: serial_rforward(j->k, j->out + o, j->in + i, arg, n, h, w, c); break;
    case BACKWARD: serial_backward(j->k, j->out + i, j->in + o, arg, n, h, w, c); break;
    case RELU_RFORWARD:
        serial_relu_rforward(j->k, j->out + o, j->in + i, j->z + i, arg, n, h, w, c);
        break;
    case RELU_BACKWARD:
        serial_relu_backward(j->k, j->out + i, j->in + o, arg, NS_OFFSET(j->y, o),
                             NS_OFFSET(j->z, i), n, h, w, c);
        break;
    }
}

static void pool_run(pool_job j) {
    long per = (long)j.h * j.w * j.c;
    ns_parallel_for(pool_range, &j, j.n, ns_elementwise_grain(per));
}

void ns_pool_forward(ns_pool_kind k, real *y, unsigned char *arg, const real *x, long n, int h,
                     int w, int c) {
    pool_run((pool_job){.pass = FORWARD, .k = k, .out = y, .arg_out = arg, .in = x, .n = n, .h = h,
                        .w = w, .c = c});
}

void ns_pool_rforward(ns_pool_kind k, real *ry, const real *rx, const unsigned char *arg, long n,
                      int h, int w, int c) {
    pool_run((pool_job){.pass = RFORWARD, .k = k, .out = ry, .in = rx, .arg = arg, .n = n, .h = h,
                        .w = w, .c = c});
}

void ns_pool_backward(ns_pool_kind k, real *gx, const real *gy, const unsigned char *arg, long n,
                      int h, int w, int c) {
    pool_run((pool_job){.pass = BACKWARD, .k = k, .out = gx, .in = gy, .arg = arg, .n = n, .h = h,
                        .w = w, .c = c});
}

void ns_pool_relu_rforward(ns_pool_kind k, real *ry, const real *rz, const real *z,
                           const unsigned char *arg, long n, int h, int w, int c) {
    pool_run((pool_job){.pass = RELU_RFORWARD, .k = k, .out = ry, .in = rz, .z = z, .arg = arg,
                        .n = n, .h = h, .w = w, .c = c});
}

void ns_pool_relu_backward(ns_pool_kind k, real *gz, const real *gy, const unsigned char *arg,
                           const real *y, const real *z, long n, int h, int w, int c) {
    pool_run((pool_job){.pass = RELU_BACKWARD, .k = k, .out = gz, .in = gy, .arg = arg, .y = y,
                        .z = z, .n = n, .h = h, .w = w, .c = c});
}

void ns_pool_rbackward(ns_pool_kind k, real *gx, real *rgx, const real *gy, const real *rgy,
                       const unsigned char *arg, long n, int h, int w, int c) {
    if (gx) ns_pool_backward(k, gx, gy, arg, n, h, w, c);
    ns_pool_backward(k, rgx, rgy, arg, n, h, w, c);
}
